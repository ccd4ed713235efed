//! Instance lifecycle through the API with the simulated agent, every intermediate state
//! observed by advancing the agent by hand.

use corral_testkit::{wait_for, TestContext};
use std::time::Duration;

#[tokio::test]
async fn lifecycle_follows_the_vm() {
    let ctx = TestContext::builder().manual_advance().build().await;
    let ids = ctx.run(1, &[("InstanceType", "t3.nano")]).await;
    let id = &ids[0];
    // The VM is starting: pending until the agent says it runs.
    wait_for("VM created", Duration::from_secs(5), || async { ctx.agent.vm(id) }).await;
    assert_eq!(ctx.state_of(id).await, "pending");
    let vm = ctx.agent.vm(id).unwrap();
    assert_eq!((vm.spec.vcpus, vm.spec.memory_mib), (2, 512), "t3.nano sizes the VM");
    ctx.agent.advance(id);
    ctx.wait_state(id, "running").await;

    let r = ctx.call("StopInstances", &[("InstanceId.1", id)]).await;
    r.ok();
    assert_eq!(r.texts("name"), vec!["stopping", "running"], "current then previous: {}", r.body);
    wait_for("stop requested", Duration::from_secs(5), || async {
        (ctx.agent.vm(id).unwrap().state == corral_agent_api::VmState::Stopping).then_some(())
    })
    .await;
    assert_eq!(ctx.state_of(id).await, "stopping");
    ctx.agent.advance(id);
    ctx.wait_state(id, "stopped").await;

    ctx.call("StartInstances", &[("InstanceId.1", id)]).await.ok();
    wait_for("restarted", Duration::from_secs(5), || async {
        (ctx.agent.vm(id).unwrap().state == corral_agent_api::VmState::Starting).then_some(())
    })
    .await;
    assert_eq!(ctx.state_of(id).await, "pending");
    ctx.agent.advance(id);
    ctx.wait_state(id, "running").await;
    assert_eq!(ctx.agent.vm(id).unwrap().boots, 2);

    ctx.call("RebootInstances", &[("InstanceId.1", id)]).await.ok();
    assert_eq!(ctx.agent.vm(id).unwrap().reboots, 1);

    let r = ctx.call("TerminateInstances", &[("InstanceId.1", id)]).await;
    r.ok();
    assert_eq!(r.texts("name"), vec!["shutting-down", "running"]);
    ctx.wait_state(id, "terminated").await;
    assert!(ctx.agent.vm(id).is_none(), "terminate leaves no VM");
    // Terminated instances stay visible; starting one is refused.
    ctx.call("StartInstances", &[("InstanceId.1", id)]).await.err("IncorrectInstanceState");
}

#[tokio::test]
async fn force_stop_while_stopping() {
    let ctx = TestContext::builder().manual_advance().build().await;
    let id = ctx.run(1, &[]).await.remove(0);
    wait_for("VM", Duration::from_secs(5), || async { ctx.agent.vm(&id) }).await;
    ctx.agent.advance(&id);
    ctx.wait_state(&id, "running").await;
    ctx.call("StopInstances", &[("InstanceId.1", &id)]).await.ok();
    wait_for("stopping", Duration::from_secs(5), || async {
        (ctx.agent.vm(&id).unwrap().state == corral_agent_api::VmState::Stopping).then_some(())
    })
    .await;
    // The guest ignores the power button; Force ends it without advancing by hand.
    ctx.call("StopInstances", &[("InstanceId.1", &id), ("Force", "true")]).await.ok();
    ctx.wait_state(&id, "stopped").await;
}

#[tokio::test]
async fn guest_poweroff_follows_shutdown_behaviour() {
    let ctx = TestContext::new().await;
    let stop = ctx.run(1, &[]).await.remove(0);
    let term = ctx.run(1, &[("InstanceInitiatedShutdownBehavior", "terminate")]).await.remove(0);
    ctx.wait_state(&stop, "running").await;
    ctx.wait_state(&term, "running").await;
    assert!(ctx.agent.guest_poweroff(&stop));
    assert!(ctx.agent.guest_poweroff(&term));
    ctx.wait_state(&stop, "stopped").await;
    ctx.wait_state(&term, "terminated").await;
    let r = ctx.call("DescribeInstances", &[("InstanceId.1", &stop)]).await;
    assert_eq!(r.text("code").as_deref(), Some("80"));
    assert!(r.body.contains("Client.InstanceInitiatedShutdown"), "{}", r.body);
    assert!(ctx.agent.vm(&term).is_none());
}

#[tokio::test]
async fn failed_launch_terminates_and_leaks_nothing() {
    let ctx = TestContext::new().await;
    ctx.agent.fail_next(corral_agent::sim::SimOp::Start, "disk full");
    let id = ctx.run(1, &[]).await.remove(0);
    ctx.wait_state(&id, "terminated").await;
    let r = ctx.call("DescribeInstances", &[("InstanceId.1", &id)]).await;
    assert!(r.body.contains("Server.InternalError"), "{}", r.body);
    assert_eq!(ctx.agent.vm_count(), 0);
    // The next launch works.
    let ok = ctx.run(1, &[]).await.remove(0);
    ctx.wait_state(&ok, "running").await;
}

#[tokio::test]
async fn run_instances_counts_capacity_and_tokens() {
    let ctx = TestContext::builder().max_instances(3).build().await;
    let image = ctx.image("corral-minimal");
    // MaxCount above capacity launches what fits; MinCount above it fails.
    let r = ctx.call("RunInstances", &[("ImageId", &image), ("MinCount", "1"), ("MaxCount", "5")]).await;
    assert_eq!(r.ok().texts("instanceId").len(), 3);
    ctx.call("RunInstances", &[("ImageId", &image), ("MinCount", "1"), ("MaxCount", "1")]).await.err("InsufficientInstanceCapacity");
    // A terminated instance no longer counts; the one launched in its place does.
    let first = r.text("instanceId").unwrap();
    ctx.call("TerminateInstances", &[("InstanceId.1", &first)]).await.ok();
    ctx.wait_state(&first, "terminated").await;
    ctx.call("RunInstances", &[("ImageId", &image), ("MinCount", "1"), ("MaxCount", "1")]).await.ok();
    ctx.call("RunInstances", &[("ImageId", &image), ("MinCount", "1"), ("MaxCount", "1")]).await.err("InsufficientInstanceCapacity");

    let ctx = TestContext::new().await;
    let image = ctx.image("corral-minimal");
    let p = [("ImageId", image.as_str()), ("MinCount", "2"), ("MaxCount", "2"), ("ClientToken", "tok-1")];
    let a = ctx.call("RunInstances", &p).await;
    let b = ctx.call("RunInstances", &p).await;
    assert_eq!(a.ok().text("reservationId"), b.ok().text("reservationId"));
    assert_eq!(a.texts("instanceId"), b.texts("instanceId"));
    let all = ctx.call("DescribeInstances", &[]).await;
    assert_eq!(all.texts("instanceId").len(), 2, "the retry launched nothing new");
    ctx.call("RunInstances", &[("ImageId", &image), ("MinCount", "1"), ("MaxCount", "1"), ("ClientToken", "tok-1")])
        .await
        .err("IdempotentParameterMismatch");
}

#[tokio::test]
async fn run_instances_validates() {
    let ctx = TestContext::new().await;
    let image = ctx.image("corral-minimal");
    let base = |extra: &[(&'static str, &'static str)]| {
        let mut v: Vec<(&str, String)> = vec![("ImageId", image.clone()), ("MinCount", "1".into()), ("MaxCount", "1".into())];
        v.extend(extra.iter().map(|(k, val)| (*k, val.to_string())));
        v
    };
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![("MinCount", "1".into()), ("MaxCount", "1".into())], "MissingParameter"),
        (vec![("ImageId", "ami-12".into()), ("MinCount", "1".into()), ("MaxCount", "1".into())], "InvalidAMIID.Malformed"),
        (vec![("ImageId", "ami-0123456789abcdef0".into()), ("MinCount", "1".into()), ("MaxCount", "1".into())], "InvalidAMIID.NotFound"),
        (base(&[("InstanceType", "x9.huge")]), "InvalidParameterValue"),
        (base(&[("KeyName", "nope")]), "InvalidKeyPair.NotFound"),
        (base(&[("UserData", "%%%not base64")]), "InvalidUserData.Malformed"),
        (base(&[("Placement.AvailabilityZone", "mars-1a")]), "InvalidParameterValue"),
        (base(&[("InstanceInitiatedShutdownBehavior", "explode")]), "InvalidParameterValue"),
        (base(&[("MaxCount", "0")]), "InvalidParameterValue"),
        (base(&[("DryRun", "true")]), "DryRunOperation"),
    ];
    for (params, code) in cases {
        let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = ctx.call("RunInstances", &p).await;
        r.err(code);
        if code == "DryRunOperation" {
            assert_eq!(r.status, 412);
        }
    }
    assert!(ctx.call("DescribeInstances", &[]).await.texts("instanceId").is_empty(), "nothing launched by refused calls");
}

#[tokio::test]
async fn describe_filters_and_pages() {
    let ctx = TestContext::new().await;
    ctx.call("CreateKeyPair", &[("KeyName", "k1"), ("KeyType", "ed25519")]).await.ok();
    let web = ctx
        .run(
            3,
            &[
                ("InstanceType", "t3.small"),
                ("KeyName", "k1"),
                ("TagSpecification.1.ResourceType", "instance"),
                ("TagSpecification.1.Tag.1.Key", "Role"),
                ("TagSpecification.1.Tag.1.Value", "web"),
                ("Placement.AvailabilityZone", "local-1b"),
            ],
        )
        .await;
    let other = ctx.run(9, &[]).await;
    for id in web.iter().chain(&other) {
        ctx.wait_state(id, "running").await;
    }
    let ids = |r: &corral_testkit::Response| {
        let mut v = r.texts("instanceId");
        v.sort();
        v
    };
    let mut want = web.clone();
    want.sort();
    for filter in [
        ("tag:Role", "web"),
        ("tag:Role", "w*"),
        ("tag-key", "Role"),
        ("tag-value", "web"),
        ("instance-type", "t3.small"),
        ("key-name", "k1"),
        ("availability-zone", "local-1b"),
    ] {
        let r = ctx.call("DescribeInstances", &[("Filter.1.Name", filter.0), ("Filter.1.Value.1", filter.1)]).await;
        assert_eq!(ids(r.ok()), want, "filter {filter:?}");
    }
    let r = ctx.call("DescribeInstances", &[("Filter.1.Name", "instance-state-name"), ("Filter.1.Value.1", "running")]).await;
    assert_eq!(r.texts("instanceId").len(), 12);
    ctx.call("DescribeInstances", &[("Filter.1.Name", "bogus"), ("Filter.1.Value.1", "x")]).await.err("InvalidParameterValue");

    // Pages of 5 cover all 12 exactly once.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut p = vec![("MaxResults", "5".to_string())];
        if let Some(t) = &token {
            p.push(("NextToken", t.clone()));
        }
        let pp: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = ctx.call("DescribeInstances", &pp).await;
        seen.extend(r.ok().texts("instanceId"));
        token = r.text("nextToken");
        if token.is_none() {
            break;
        }
    }
    seen.sort();
    let mut all: Vec<String> = web.iter().chain(&other).cloned().collect();
    all.sort();
    assert_eq!(seen, all);
    ctx.call("DescribeInstances", &[("MaxResults", "5"), ("InstanceId.1", &web[0])]).await.err("InvalidParameterCombination");
    ctx.call("DescribeInstances", &[("MaxResults", "3")]).await.err("InvalidParameterValue");
    ctx.call("DescribeInstances", &[("InstanceId.1", "i-123")]).await.err("InvalidInstanceID.Malformed");
    ctx.call("DescribeInstances", &[("InstanceId.1", "i-0123456789abcdef0")]).await.err("InvalidInstanceID.NotFound");

    // Instance status: only running ones unless asked for all.
    ctx.call("StopInstances", &[("InstanceId.1", &other[0])]).await.ok();
    ctx.wait_state(&other[0], "stopped").await;
    let r = ctx.call("DescribeInstanceStatus", &[]).await;
    assert_eq!(r.ok().texts("instanceId").len(), 11);
    let r = ctx.call("DescribeInstanceStatus", &[("IncludeAllInstances", "true")]).await;
    assert_eq!(r.ok().texts("instanceId").len(), 12);
}

#[tokio::test]
async fn attributes() {
    let ctx = TestContext::new().await;
    let id = ctx.run(1, &[("UserData", "ZWNobyBoaQ=="), ("DisableApiTermination", "true")]).await.remove(0);
    ctx.wait_state(&id, "running").await;
    let r = ctx.call("DescribeInstanceAttribute", &[("InstanceId", &id), ("Attribute", "userData")]).await;
    assert!(r.ok().body.contains("<userData><value>ZWNobyBoaQ==</value></userData>"), "{}", r.body);
    ctx.call("TerminateInstances", &[("InstanceId.1", &id)]).await.err("OperationNotPermitted");
    ctx.call("ModifyInstanceAttribute", &[("InstanceId", &id), ("InstanceType.Value", "m5.large")]).await.err("IncorrectInstanceState");
    ctx.call("StopInstances", &[("InstanceId.1", &id)]).await.ok();
    ctx.wait_state(&id, "stopped").await;
    ctx.call("ModifyInstanceAttribute", &[("InstanceId", &id), ("InstanceType.Value", "m5.large")]).await.ok();
    ctx.call("ModifyInstanceAttribute", &[("InstanceId", &id), ("Attribute", "instanceInitiatedShutdownBehavior"), ("Value", "terminate")])
        .await
        .ok();
    let r = ctx.call("DescribeInstanceAttribute", &[("InstanceId", &id), ("Attribute", "instanceInitiatedShutdownBehavior")]).await;
    assert_eq!(r.ok().text("value").as_deref(), Some("terminate"));
    ctx.call("StartInstances", &[("InstanceId.1", &id)]).await.ok();
    ctx.wait_state(&id, "running").await;
    let vm = ctx.agent.vm(&id).unwrap();
    assert_eq!((vm.spec.instance_type.as_str(), vm.spec.memory_mib), ("m5.large", 8192), "restart uses the new type");
    ctx.call("ModifyInstanceAttribute", &[("InstanceId", &id), ("DisableApiTermination.Value", "false")]).await.ok();
    ctx.call("TerminateInstances", &[("InstanceId.1", &id)]).await.ok();
    ctx.wait_state(&id, "terminated").await;
}

#[tokio::test]
async fn console_output_is_base64_of_the_guest_console() {
    use base64::Engine;
    let ctx = TestContext::new().await;
    let id = ctx.run(1, &[]).await.remove(0);
    ctx.wait_state(&id, "running").await;
    let r = ctx.call("GetConsoleOutput", &[("InstanceId", &id), ("Latest", "true")]).await;
    let out = base64::engine::general_purpose::STANDARD.decode(r.ok().text("output").unwrap()).unwrap();
    let text = String::from_utf8(out).unwrap();
    // It reads like a Debian guest's boot, with this instance's CPUs and its login prompt.
    assert!(text.contains("] Linux version 6.1.0"), "{text}");
    assert!(text.contains("smp: Brought up 1 node, 2 CPUs"), "{text}");
    assert!(text.contains("Cloud-init v. 22.4.2 finished") && text.trim_end().ends_with("login:"), "{text}");
    assert_eq!(text.matches("Linux version").count(), 1);
}

#[tokio::test]
async fn orphan_vms_are_destroyed() {
    use corral_agent_api::Agent;
    let ctx = TestContext::new().await;
    // A VM the store knows nothing of, as a crash between steps could leave.
    let spec = corral_agent_api::VmSpec {
        instance_id: "i-0123456789abcdef0".into(),
        instance_type: "t3.nano".into(),
        vcpus: 1,
        memory_mib: 128,
        boot: corral_agent_api::BootMode::Firmware,
        disks: vec![],
        nics: vec![],
    };
    ctx.agent.vm_start(&spec).await.unwrap();
    wait_for("orphan destroyed", Duration::from_secs(5), || async { ctx.agent.vm("i-0123456789abcdef0").is_none().then_some(()) }).await;
}
