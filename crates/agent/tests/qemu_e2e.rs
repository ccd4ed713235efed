//! End-to-end tests of `QemuAgent`'s VM lifecycle: real QEMU processes boot a tiny busybox
//! guest (see `common` for the fixture), under whatever accelerator the host really has (TCG
//! on the development machines).
//!
//! What is checked is what the host shows: QEMU processes in `/proc`, files in the state
//! directory and the storage pool, markers the guest prints on its serial console. Every wait
//! is on a condition with a deadline.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use corral_agent::qemu::{ec2_uuid, Accel};
use corral_agent_api::{Agent, AgentError, BootMode, VmState};

// ---- tests -------------------------------------------------------------------------------

#[tokio::test]
async fn lifecycle_start_reboot_stop_start_destroy() {
    let Some(ctx) = Ctx::new() else { return };
    let agent = ctx.agent(GRACEFUL_STOP_TIMEOUT).await;
    let id = ctx.reaper.id();
    let info = agent.host_info().await.unwrap();
    assert!(info.accelerator == "kvm" || info.accelerator == "tcg");
    assert!(info.vcpus >= 1 && info.memory_mib > 0 && !info.hostname.is_empty(), "{info:?}");

    // start -> Running, and the guest's first line on the console.
    let t0 = Instant::now();
    agent.vm_start(&ctx.spec(&id, "")).await.unwrap();
    wait_state(&agent, &id, VmState::Running, RUNNING_DEADLINE).await;
    let to_running = t0.elapsed();
    wait_console(&agent, &id, "\n", 1, BOOT_DEADLINE).await;
    let to_first_line = t0.elapsed();
    wait_console(&agent, &id, UP, 1, BOOT_DEADLINE).await;
    let to_marker = t0.elapsed();
    wait_console(&agent, &id, WAITING, 1, BOOT_DEADLINE).await;
    let pid = ctx.pid(&id).expect("pid file");
    assert_eq!(qemu_pids(&id), vec![pid]);
    for f in ["console.log", "qmp.sock", "qemu.pid", "vm.json"] {
        assert!(ctx.vm_dir(&id).join(f).exists(), "{f} missing");
    }
    let root = root_disk(&id);
    assert!(ctx.layer_path(&root.layer).exists(), "the root volume's top layer is in the pool");
    assert!(!ctx.vm_dir(&id).join("root.qcow2").exists(), "no disk in the VM directory");
    assert_eq!(agent.vm_spec(&id).unwrap(), Some(ctx.spec(&id, "")));
    eprintln!(
        "[figures] accel={} Running after {to_running:?}, first console line (kernel) after {to_first_line:?}, \
         init's marker after {to_marker:?}, idle RSS {} MiB",
        info.accelerator,
        rss_kib(pid) / 1024
    );

    // start on a running VM is a no-op.
    let g_running = generation(&agent, &id).await;
    agent.vm_start(&ctx.spec(&id, "")).await.unwrap();
    assert_eq!(ctx.pid(&id), Some(pid));
    assert_eq!(generation(&agent, &id).await, g_running);

    // reboot: the guest boots again in the same process.
    agent.vm_reboot(&id).await.unwrap();
    wait_console(&agent, &id, UP, 2, BOOT_DEADLINE).await;
    wait_console(&agent, &id, WAITING, 2, BOOT_DEADLINE).await;
    assert_eq!(ctx.pid(&id), Some(pid));
    assert_eq!(qemu_pids(&id), vec![pid]);
    assert_eq!(state(&agent, &id).await, Some(VmState::Running));

    // stop (ACPI power button; the guest acts on it) -> Stopped, process gone, volume kept.
    agent.vm_stop(&id, false).await.unwrap();
    assert!(matches!(state(&agent, &id).await, Some(VmState::Stopping | VmState::Stopped)));
    wait_state(&agent, &id, VmState::Stopped, STOPPED_DEADLINE).await;
    assert!(console(&agent, &id).await.contains(POWER_BUTTON), "the guest saw the power button");
    assert!(qemu_pids(&id).is_empty());
    assert!(ctx.layer_path(&root.layer).exists());
    assert!(!ctx.vm_dir(&id).join("qemu.pid").exists());
    let g_stopped = generation(&agent, &id).await;
    assert!(g_stopped > g_running);
    agent.vm_stop(&id, false).await.unwrap(); // stopping a stopped VM is fine
    assert!(matches!(agent.vm_reboot(&id).await, Err(AgentError::WrongState { .. })));

    // start again: a new process on the same volume; a power-on starts a fresh console.
    agent.vm_start(&ctx.spec(&id, "")).await.unwrap();
    wait_state(&agent, &id, VmState::Running, RUNNING_DEADLINE).await;
    let pid2 = ctx.pid(&id).unwrap();
    assert_ne!(pid2, pid);
    wait_console(&agent, &id, UP, 1, BOOT_DEADLINE).await;
    assert_eq!(console(&agent, &id).await.matches(UP).count(), 1, "the console starts over at power-on");

    // forced stop: at once.
    let t = Instant::now();
    agent.vm_stop(&id, true).await.unwrap();
    wait_state(&agent, &id, VmState::Stopped, STOPPED_DEADLINE).await;
    let forced = t.elapsed();
    assert!(forced < Duration::from_secs(10), "forced stop took {forced:?}");
    assert!(qemu_pids(&id).is_empty());
    eprintln!("[figures] forced stop took {forced:?}");

    // start once more, then destroy while running: nothing left of the VM; its volumes
    // outlive it (deleting layers is the control plane's call).
    agent.vm_start(&ctx.spec(&id, "")).await.unwrap();
    wait_state(&agent, &id, VmState::Running, RUNNING_DEADLINE).await;
    agent.vm_destroy(&id).await.unwrap();
    assert!(qemu_pids(&id).is_empty(), "no QEMU left for {id}");
    assert!(!ctx.vm_dir(&id).exists(), "VM directory removed");
    assert!(ctx.layer_path(&root.layer).exists(), "the root volume's layer is kept");
    assert_eq!(state(&agent, &id).await, None);
    assert!(matches!(agent.vm_console(&id).await, Err(AgentError::NoSuchVm(_))));
    agent.vm_destroy(&id).await.unwrap(); // idempotent
    assert!(matches!(agent.vm_stop(&id, true).await, Err(AgentError::NoSuchVm(_))));
}

#[tokio::test]
async fn guest_power_off_is_reported_stopped() {
    let Some(ctx) = Ctx::new() else { return };
    let agent = ctx.agent(GRACEFUL_STOP_TIMEOUT).await;
    let id = ctx.reaper.id();
    agent.vm_start(&ctx.spec(&id, "corral.test=poweroff")).await.unwrap();
    wait_console(&agent, &id, POWEROFF, 1, BOOT_DEADLINE).await;
    wait_state(&agent, &id, VmState::Stopped, STOPPED_DEADLINE).await;
    assert!(qemu_pids(&id).is_empty());
    assert!(ctx.layer_path(&root_disk(&id).layer).exists(), "root volume kept");
    assert!(console(&agent, &id).await.contains(UP));
    agent.vm_destroy(&id).await.unwrap();
    assert!(!ctx.vm_dir(&id).exists());
}

#[tokio::test]
async fn a_new_agent_re_adopts_running_and_stopped_vms() {
    let Some(ctx) = Ctx::new() else { return };
    let running = ctx.reaper.id();
    let stopped = ctx.reaper.id();
    let (pid, g_before) = {
        let agent = ctx.agent(GRACEFUL_STOP_TIMEOUT).await;
        agent.vm_start(&ctx.spec(&running, "")).await.unwrap();
        agent.vm_start(&ctx.spec(&stopped, "")).await.unwrap();
        wait_state(&agent, &stopped, VmState::Running, RUNNING_DEADLINE).await;
        agent.vm_stop(&stopped, true).await.unwrap();
        wait_state(&agent, &stopped, VmState::Stopped, STOPPED_DEADLINE).await;
        wait_state(&agent, &running, VmState::Running, RUNNING_DEADLINE).await;
        wait_console(&agent, &running, WAITING, 1, BOOT_DEADLINE).await;
        (ctx.pid(&running).unwrap(), generation(&agent, &running).await)
        // the agent is dropped here; its QEMU processes are not
    };
    assert_eq!(qemu_pids(&running), vec![pid], "QEMU outlives the agent");
    // A lost pid file does not make the running VM look stopped: /proc is searched too.
    std::fs::remove_file(ctx.vm_dir(&running).join("qemu.pid")).unwrap();

    let agent = ctx.agent(GRACEFUL_STOP_TIMEOUT).await;
    wait_state(&agent, &running, VmState::Running, RUNNING_DEADLINE).await;
    assert_eq!(state(&agent, &stopped).await, Some(VmState::Stopped));
    assert!(generation(&agent, &running).await > g_before, "generations never repeat across agents");

    // The re-adopted VM is fully controllable: graceful stop, start, destroy.
    agent.vm_stop(&running, false).await.unwrap();
    wait_state(&agent, &running, VmState::Stopped, STOPPED_DEADLINE).await;
    assert!(qemu_pids(&running).is_empty());
    agent.vm_start(&ctx.spec(&stopped, "")).await.unwrap();
    wait_state(&agent, &stopped, VmState::Running, RUNNING_DEADLINE).await;
    agent.vm_destroy(&stopped).await.unwrap();
    agent.vm_destroy(&running).await.unwrap();
    assert!(qemu_pids(&stopped).is_empty() && qemu_pids(&running).is_empty());
    assert!(agent.vm_list().await.unwrap().is_empty());
    assert_eq!(std::fs::read_dir(&ctx.state_dir).unwrap().count(), 0);
}

const CHILD_STATE_DIR: &str = "CORRAL_E2E_CHILD_STATE_DIR";
const CHILD_POOL_DIR: &str = "CORRAL_E2E_CHILD_POOL_DIR";
const CHILD_INSTANCE_ID: &str = "CORRAL_E2E_CHILD_INSTANCE_ID";
const CHILD_READY: &str = "CORRAL-E2E-CHILD-READY";

/// Not a test on its own: the agent process that the next test SIGKILLs. Starts a VM, says
/// so on stdout, then waits forever.
#[tokio::test]
#[ignore = "run as a child process by an_agent_killed_with_sigkill_leaves_its_vm_to_the_next_one"]
async fn child_agent_starts_a_vm_and_waits() {
    let (Some(state_dir), Some(pool_dir), Some(id)) =
        (std::env::var_os(CHILD_STATE_DIR), std::env::var_os(CHILD_POOL_DIR), std::env::var(CHILD_INSTANCE_ID).ok())
    else {
        return;
    };
    let guest = guest().expect("the parent test checked QEMU is here");
    let agent = agent_on(Path::new(&state_dir), Path::new(&pool_dir), GRACEFUL_STOP_TIMEOUT).await;
    agent.vm_start(&spec_for(guest, &id, "")).await.unwrap();
    wait_state(&agent, &id, VmState::Running, RUNNING_DEADLINE).await;
    println!("{CHILD_READY}");
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn an_agent_killed_with_sigkill_leaves_its_vm_to_the_next_one() {
    use tokio::io::AsyncBufReadExt;
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.reaper.id();
    let mut child = corral_exec::command(std::env::current_exe().unwrap())
        .args(["--exact", "child_agent_starts_a_vm_and_waits", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_STATE_DIR, &ctx.state_dir)
        .env(CHILD_POOL_DIR, &ctx.pool_dir)
        .env(CHILD_INSTANCE_ID, &id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(RUNNING_DEADLINE + BOOT_DEADLINE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(CHILD_READY) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready.ok(), Some(true), "the child agent started its VM");
    let pid = ctx.pid(&id).unwrap();

    child.start_kill().unwrap(); // SIGKILL, to the child we spawned
    child.wait().await.unwrap();
    assert_eq!(qemu_pids(&id), vec![pid], "QEMU survives its agent being SIGKILLed");

    let agent = ctx.agent(GRACEFUL_STOP_TIMEOUT).await;
    wait_state(&agent, &id, VmState::Running, RUNNING_DEADLINE).await;
    wait_console(&agent, &id, UP, 1, BOOT_DEADLINE).await;
    agent.vm_destroy(&id).await.unwrap();
    assert!(qemu_pids(&id).is_empty());
    assert!(!ctx.vm_dir(&id).exists());
}

#[tokio::test]
async fn a_pid_file_naming_someone_else_is_not_adopted() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.reaper.id();
    // A VM directory whose pid file names a live process that is not its QEMU (this test).
    std::fs::create_dir_all(ctx.vm_dir(&id)).unwrap();
    std::fs::write(ctx.vm_dir(&id).join("qemu.pid"), std::process::id().to_string()).unwrap();
    let agent = ctx.agent(GRACEFUL_STOP_TIMEOUT).await;
    assert_eq!(state(&agent, &id).await, Some(VmState::Stopped));
    assert!(!ctx.vm_dir(&id).join("qemu.pid").exists(), "stale pid file removed");
    agent.vm_destroy(&id).await.unwrap(); // and we are still alive
    assert!(!ctx.vm_dir(&id).exists());
}

#[tokio::test]
async fn failed_starts_leave_no_process_and_no_pid_file() {
    let Some(ctx) = Ctx::new() else { return };
    let agent = ctx.agent(GRACEFUL_STOP_TIMEOUT).await;

    // The very first start fails: QEMU's complaint comes back, and nothing is left.
    let id = ctx.reaper.id();
    let mut bad = ctx.spec(&id, "");
    bad.boot = BootMode::DirectKernel { kernel: "/nonexistent/vmlinux".into(), initrd: None, cmdline: String::new() };
    let err = agent.vm_start(&bad).await.unwrap_err();
    let msg = error_chain(&err);
    eprintln!("[error] first start with a missing kernel: {msg}");
    assert!(msg.contains("/nonexistent/vmlinux"), "QEMU's stderr is in the error: {msg}");
    assert!(msg.contains(&id), "{msg}");
    assert!(!ctx.vm_dir(&id).exists(), "first start's files removed");
    assert!(qemu_pids(&id).is_empty());
    assert_eq!(state(&agent, &id).await, None);

    // A spec without a root disk is refused before anything is made.
    let mut no_root = ctx.spec(&id, "");
    no_root.disks.clear();
    let msg = error_chain(&agent.vm_start(&no_root).await.unwrap_err());
    assert!(msg.contains("root disk"), "{msg}");
    assert!(!ctx.vm_dir(&id).exists());

    // QEMU refusing its configuration outright is the same.
    let mut too_big = ctx.spec(&id, "");
    too_big.vcpus = 100_000;
    let msg = error_chain(&agent.vm_start(&too_big).await.unwrap_err());
    assert!(msg.to_lowercase().contains("cpu"), "{msg}");
    assert!(!ctx.vm_dir(&id).exists());

    // A later start of an existing VM fails: the volume stays, no pid file, still Stopped.
    let id2 = ctx.reaper.id();
    agent.vm_start(&ctx.spec(&id2, "")).await.unwrap();
    wait_state(&agent, &id2, VmState::Running, RUNNING_DEADLINE).await;
    agent.vm_stop(&id2, true).await.unwrap();
    wait_state(&agent, &id2, VmState::Stopped, STOPPED_DEADLINE).await;
    let mut bad2 = ctx.spec(&id2, "");
    bad2.boot = BootMode::DirectKernel { kernel: "/nonexistent/vmlinux".into(), initrd: None, cmdline: String::new() };
    let msg = error_chain(&agent.vm_start(&bad2).await.unwrap_err());
    assert!(msg.contains("/nonexistent/vmlinux"), "{msg}");
    assert!(ctx.layer_path(&root_disk(&id2).layer).exists(), "volume kept");
    assert!(!ctx.vm_dir(&id2).join("qemu.pid").exists());
    assert!(qemu_pids(&id2).is_empty());
    assert_eq!(state(&agent, &id2).await, Some(VmState::Stopped));
    agent.vm_destroy(&id2).await.unwrap();
    assert!(!ctx.vm_dir(&id2).exists());
}

#[tokio::test]
async fn firmware_boot_on_q35_and_stop_timeout_forces_an_unresponsive_guest() {
    let Some(ctx) = Ctx::new() else { return };
    // SeaBIOS finding nothing to boot on the empty disk ignores the power button: the stop
    // must be forced once the timeout runs out.
    let stop_timeout = Duration::from_secs(2);
    let agent = ctx.agent(stop_timeout).await;
    let id = ctx.reaper.id();
    let mut spec = ctx.spec(&id, "");
    spec.boot = BootMode::Firmware;
    agent.vm_start(&spec).await.unwrap();
    wait_state(&agent, &id, VmState::Running, RUNNING_DEADLINE).await;
    let pid = ctx.pid(&id).unwrap();
    let cmdline = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap()).replace('\0', " ");
    let u = ec2_uuid(&id);
    assert!(cmdline.contains(&format!("type=1,manufacturer=Amazon EC2,product=t3.nano,serial={u},uuid={u}")), "{cmdline}");
    assert!(cmdline.contains("-machine q35") && cmdline.contains("virtio-blk-pci"), "{cmdline}");

    let t = Instant::now();
    agent.vm_stop(&id, false).await.unwrap();
    assert_eq!(state(&agent, &id).await, Some(VmState::Stopping));
    wait_state(&agent, &id, VmState::Stopped, STOPPED_DEADLINE).await;
    assert!(t.elapsed() >= stop_timeout, "forced only after the timeout ({:?})", t.elapsed());
    assert!(qemu_pids(&id).is_empty());
    agent.vm_destroy(&id).await.unwrap();
    assert!(!ctx.vm_dir(&id).exists());
}

#[tokio::test]
async fn accelerator_detection_matches_the_host() {
    let Some(ctx) = Ctx::new() else { return };
    let agent = ctx.agent(GRACEFUL_STOP_TIMEOUT).await;
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let hw = cpuinfo.lines().any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    if !hw || Path::new("/sys/module/kvm_pvm").exists() {
        assert_eq!(agent.accel(), Accel::Tcg);
    }
    assert_eq!(agent.host_info().await.unwrap().accelerator, agent.accel().as_str());
}
