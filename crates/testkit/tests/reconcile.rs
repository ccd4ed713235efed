//! The reconciler follows changes: a pass with nothing changed looks at no instance, whatever
//! the fleet holds, and a change to one instance makes the next pass look at that one.

use corral_testkit::{wait_for, TestContext};
use std::time::Duration;

/// Runs passes until one looks at nothing (the background reconciler may still be handling
/// the launch), failing if none does before the deadline.
async fn settle(ctx: &TestContext) {
    wait_for("a pass that looks at no instance", Duration::from_secs(10), || async {
        (ctx.control.reconcile_once().await.expect("pass").examined == 0).then_some(())
    })
    .await
}

/// `n` instances launched and running, with the reconciler settled.
async fn settled_fleet(ctx: &TestContext, n: usize) -> Vec<String> {
    let ids = ctx.run(n, &[]).await;
    for id in &ids {
        ctx.wait_state(id, "running").await;
    }
    settle(ctx).await;
    ids
}

#[tokio::test]
async fn a_pass_with_nothing_changed_looks_at_no_instance() {
    let ctx = TestContext::new().await;
    let ids = settled_fleet(&ctx, 40).await;
    for _ in 0..3 {
        let pass = ctx.control.reconcile_once().await.unwrap();
        assert_eq!((pass.examined, pass.actions), (0, 0), "{pass:?}");
    }

    // Stopping one instance: the passes that follow look at it (and its VM), not the fleet.
    ctx.call("StopInstances", &[("InstanceId.1", &ids[7])]).await.ok();
    // (The background reconciler may take some of these turns: either way no pass looks at more.)
    for _ in 0..5 {
        let pass = ctx.control.reconcile_once().await.unwrap();
        assert!(pass.examined <= 1, "a pass after one stop looked at {} instances", pass.examined);
    }
    ctx.wait_state(&ids[7], "stopped").await;
    settle(&ctx).await;
}

/// The backstop pass (the first after start, then every 30 s) reads no instance that is as
/// a pass last found it, whatever the fleet holds, and still finds a change no event reported.
#[tokio::test]
async fn the_backstop_pass_reads_only_the_instances_that_changed() {
    let ctx = TestContext::new().await;
    let ids = settled_fleet(&ctx, 40).await;
    let backstop = || async {
        ctx.control.reconcile_everything_next();
        let pass = ctx.control.reconcile_once().await.expect("pass");
        pass.backstop.then_some(pass)
    };
    // (The background reconciler may take the backstop turn: then ask again.)
    let pass = wait_for("a backstop pass", Duration::from_secs(10), backstop).await;
    assert_eq!((pass.examined, pass.actions), (0, 0), "{pass:?}");

    // A stop written to the store behind the control plane's back: nothing marks it.
    ctx.control
        .store()
        .transaction(|tx| {
            let mut r = tx.instance_get(&ids[7])?.expect("the instance");
            r.desired = corral_store::Desired::Stopped;
            tx.instance_update(&r)
        })
        .unwrap();
    let pass = wait_for("a backstop pass", Duration::from_secs(10), backstop).await;
    assert!(pass.examined <= 1, "{pass:?}");
    ctx.wait_state(&ids[7], "stopped").await;
}

/// The desired host state follows changes too: with 40 instances running, a launch, a tag or
/// a stop recomputes that one instance's part of it (a few times as its state moves), never
/// the host's.
#[tokio::test]
async fn a_change_to_one_instance_recomputes_its_part_of_the_host_state_only() {
    let ctx = TestContext::new().await;
    let ids = settled_fleet(&ctx, 40).await;
    let pass = ctx.control.reconcile_once().await.unwrap();
    assert_eq!(pass.host_parts, 0, "{pass:?}");
    let mut seen = ctx.control.host_parts_computed();

    let one = ctx.run(1, &[]).await;
    ctx.wait_state(&one[0], "running").await;
    seen = few_parts(&ctx, seen, "one launch").await;
    ctx.call("CreateTags", &[("ResourceId.1", &ids[3]), ("Tag.1.Key", "role"), ("Tag.1.Value", "web")]).await.ok();
    seen = few_parts(&ctx, seen, "one tag").await;
    ctx.call("StopInstances", &[("InstanceId.1", &ids[5])]).await.ok();
    ctx.wait_state(&ids[5], "stopped").await;
    few_parts(&ctx, seen, "one stop").await;

    // The state the agent holds is still the whole host's: every instance has its view.
    let host = ctx.agent.host().0.expect("a desired state was applied");
    let mut viewed: Vec<&str> = host.instances.iter().map(|v| v.instance_id.as_str()).collect();
    viewed.sort();
    let mut want: Vec<&str> = ids.iter().chain(&one).map(String::as_str).collect();
    want.sort();
    assert_eq!(viewed, want);
    let tagged = host.instances.iter().find(|v| v.instance_id == ids[3]).unwrap();
    assert!(tagged.tags.iter().any(|(k, v)| k == "role" && v == "web"), "{:?}", tagged.tags);
}

/// Settles, then checks that the parts computed since `before` are a few (one instance's,
/// once per state it went through), not the 41 of the host; returns the count now.
async fn few_parts(ctx: &TestContext, before: u64, after: &str) -> u64 {
    settle(ctx).await;
    let now = ctx.control.host_parts_computed();
    assert!(now - before <= 4, "after {after} the host state recomputed {} instances' parts", now - before);
    now
}

/// Recomputing every part (after a rule change) reads the instances a page per transaction:
/// with two pages of them (990: the test cloud fits 1,000), every instance is computed once
/// and the state the agent holds still has every view and every port.
#[tokio::test]
async fn recomputing_the_whole_host_page_by_page_keeps_every_instance() {
    let ctx = TestContext::new().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.extend(ctx.run(330, &[]).await);
    }
    for id in &ids {
        ctx.wait_state(id, "running").await;
    }
    settle(&ctx).await;
    let before = ctx.control.host_parts_computed();
    let group = ctx.call("DescribeSecurityGroups", &[]).await.ok().text("groupId").expect("the default group");
    ctx.call(
        "AuthorizeSecurityGroupIngress",
        &[
            ("GroupId", &group),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "22"),
            ("IpPermissions.1.ToPort", "22"),
            ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/8"),
        ],
    )
    .await
    .ok();
    settle(&ctx).await;
    assert_eq!(ctx.control.host_parts_computed() - before, ids.len() as u64, "every part computed once");
    let host = ctx.agent.host().0.expect("a desired state was applied");
    let mut viewed: Vec<&str> = host.instances.iter().map(|v| v.instance_id.as_str()).collect();
    let mut ported: Vec<&str> = host.net.vpcs.iter().flat_map(|v| v.ports.iter().map(|p| p.instance_id.as_str())).collect();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    viewed.sort();
    ported.sort();
    want.sort();
    assert_eq!(viewed, want);
    assert_eq!(ported, want);
    let rules = &host.net.vpcs[0].groups.iter().find(|g| g.group_id == group).expect("the group").ingress;
    assert!(rules.iter().any(|r| format!("{r:?}").contains("10.0.0.0")), "the new rule reached the host: {rules:?}");
}
