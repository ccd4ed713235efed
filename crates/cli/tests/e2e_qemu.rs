//! End to end on real QEMU: the `corral` binary serves the API with the QEMU hypervisor, and
//! a `corral-minimal` guest is launched, stopped, started, rebooted, re-adopted after the
//! Corral process is SIGKILLed, and terminated, each step checked against the guest's own
//! console and the host's process table.
//!
//! Needs qemu-system-x86_64 and the corral-minimal image (built into the image cache on first
//! run, reused afterwards). Set CORRAL_SKIP_E2E=1 to skip on a host without QEMU.

mod common;

use common::*;
use corral_testkit::wait_for;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn minimal_guest_lifecycle_on_qemu() {
    if skip() {
        return;
    }
    let mut cloud = Cloud::start("minimal");
    let c = cloud.c.clone();

    let image = cloud.image("corral-minimal").await;

    let r = c.call("RunInstances", &[("ImageId", &image), ("MinCount", "1"), ("MaxCount", "1"), ("InstanceType", "t3.nano")]).await;
    let id = r.ok().text("instanceId").unwrap();
    assert_eq!(state_of(&c, &id).await, "pending");
    wait_state(&c, &id, "running", BOOT_DEADLINE).await;
    let pids = pids_with(&id);
    assert_eq!(pids.len(), 1, "one QEMU process carries the instance id: {pids:?}");
    let pid = pids[0];

    // The guest's own kernel and init wrote to the console.
    let out = wait_markers(&c, &id, 1).await;
    assert!(out.contains("Linux version"), "kernel lines in the console:\n{out}");

    // Reboot: the same process, a second boot on the console.
    c.call("RebootInstances", &[("InstanceId.1", &id)]).await.ok();
    wait_markers(&c, &id, 2).await;
    assert_eq!(pids_with(&id), vec![pid], "reboot keeps the process");
    assert_eq!(state_of(&c, &id).await, "running");

    // Stop by ACPI power-down: the process goes away, the instance is stopped.
    c.call("StopInstances", &[("InstanceId.1", &id)]).await.ok();
    wait_state(&c, &id, "stopped", Duration::from_secs(60)).await;
    assert!(pids_with(&id).is_empty(), "no QEMU process after stop");

    // Start again: a new process, and a console that starts over with the new boot.
    c.call("StartInstances", &[("InstanceId.1", &id)]).await.ok();
    wait_state(&c, &id, "running", BOOT_DEADLINE).await;
    let out = wait_markers(&c, &id, 1).await;
    assert_eq!(out.matches(MARKER).count(), 1, "a power-on starts a fresh console:\n{out}");
    let pid2 = pids_with(&id);
    assert_eq!(pid2.len(), 1);

    // SIGKILL Corral: the guest keeps running and is re-adopted by the next start.
    cloud.kill_server();
    assert_eq!(pids_with(&id), pid2, "the VM survives Corral being killed");
    cloud.restart_server();
    let c = cloud.c.clone();
    let (net, state) = (&cloud.net, cloud.state.clone());
    wait_state(&c, &id, "running", Duration::from_secs(30)).await;
    assert_eq!(pids_with(&id), pid2, "re-adopted, not restarted");

    // Forced stop of the re-adopted VM, then terminate: nothing is left.
    c.call("StopInstances", &[("InstanceId.1", &id), ("Force", "true")]).await.ok();
    wait_state(&c, &id, "stopped", Duration::from_secs(30)).await;
    assert!(pids_with(&id).is_empty());
    c.call("StartInstances", &[("InstanceId.1", &id)]).await.ok();
    wait_state(&c, &id, "running", BOOT_DEADLINE).await;
    c.call("TerminateInstances", &[("InstanceId.1", &id)]).await.ok();
    wait_state(&c, &id, "terminated", Duration::from_secs(60)).await;
    assert!(pids_with(&id).is_empty(), "no QEMU process after terminate");
    let leftovers: Vec<_> = walk(&state).into_iter().filter(|p| p.to_string_lossy().contains(&id)).collect();
    assert!(leftovers.is_empty(), "terminate leaves no files: {leftovers:?}");
    wait_for("the VPC namespace to go with its last instance", Duration::from_secs(60), || async {
        net.namespaces().is_empty().then_some(())
    })
    .await;
}

/// A VM whose QEMU process ends without Corral asking (as it does when the guest powers itself
/// off; the agent's own tests cover a real guest poweroff) follows InstanceInitiatedShutdownBehavior.
#[tokio::test(flavor = "multi_thread")]
async fn vm_ending_on_its_own_follows_shutdown_behaviour() {
    if skip() {
        return;
    }
    let cloud = Cloud::start("minimal");
    let (c, state) = (cloud.c.clone(), cloud.state.clone());
    let image = cloud.image("corral-minimal").await;
    let mut ids = Vec::new();
    let mut roots = Vec::new();
    for behaviour in ["stop", "terminate"] {
        let r = c
            .call(
                "RunInstances",
                &[("ImageId", &image), ("MinCount", "1"), ("MaxCount", "1"), ("InstanceInitiatedShutdownBehavior", behaviour)],
            )
            .await;
        ids.push(r.ok().text("instanceId").unwrap());
        roots.push(r.text("volumeId").expect("the root volume is listed at launch"));
    }
    for id in &ids {
        wait_state(&c, id, "running", BOOT_DEADLINE).await;
        wait_markers(&c, id, 1).await;
        for pid in pids_with(id) {
            corral_exec::run_blocking("kill", &["-TERM", &pid.to_string()]).unwrap();
        }
    }
    wait_state(&c, &ids[0], "stopped", Duration::from_secs(30)).await;
    wait_state(&c, &ids[1], "terminated", Duration::from_secs(30)).await;
    let r = c.call("DescribeInstances", &[("InstanceId.1", &ids[0])]).await;
    assert!(r.ok().body.contains("Client.InstanceInitiatedShutdown"), "{}", r.body);
    assert!(!state.join("vms").join(&ids[1]).exists(), "terminated: its files are gone");
    let r = c.call("DescribeVolumes", &[("VolumeId.1", &roots[0])]).await;
    assert!(r.ok().texts("status").contains(&"in-use".to_string()), "stopped: its root volume stays: {}", r.body);
    c.call("DescribeVolumes", &[("VolumeId.1", &roots[1])]).await.err("InvalidVolume.NotFound");
    let layers = walk(&state.join("pool")).into_iter().filter(|p| p.extension().is_some_and(|e| e == "qcow2")).count();
    assert_eq!(layers, 2, "the image's layer and the stopped instance's root; the terminated one's is gone");
    c.call("TerminateInstances", &[("InstanceId.1", &ids[0])]).await.ok();
    wait_state(&c, &ids[0], "terminated", Duration::from_secs(30)).await;
}
