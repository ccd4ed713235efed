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

#[tokio::test]
async fn a_pass_with_nothing_changed_looks_at_no_instance() {
    let ctx = TestContext::new().await;
    let ids = ctx.run(40, &[]).await;
    for id in &ids {
        ctx.wait_state(id, "running").await;
    }
    settle(&ctx).await;
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
