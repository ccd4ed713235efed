//! End to end on real QEMU: the `corral` binary serves the API with the QEMU hypervisor, and
//! a `corral-minimal` guest is launched, stopped, started, rebooted, re-adopted after the
//! Corral process is SIGKILLed, and terminated, each step checked against the guest's own
//! console and the host's process table.
//!
//! Needs qemu-system-x86_64 and the corral-minimal image (built into the image cache on first
//! run, reused afterwards). Set CORRAL_SKIP_E2E=1 to skip on a host without QEMU.

use base64::Engine;
use corral_testkit::{wait_for, Client};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

const ACCESS_KEY: &str = "AKIAE2ETESTKEY000001";
const SECRET_KEY: &str = "e2e-secret-key-0123456789abcdefghijklmnop";
/// Under TCG a corral-minimal guest prints its marker in a few seconds (HOST-NOTES.md);
/// generous deadlines absorb a loaded CI machine.
const BOOT_DEADLINE: Duration = Duration::from_secs(90);
const MARKER: &str = "corral-minimal: init ready";

/// Kills, by pid, any QEMU process still running from this test's state directory, so a
/// failing test leaves no guest behind (they are built to outlive Corral).
struct QemuReaper(PathBuf);

impl Drop for QemuReaper {
    fn drop(&mut self) {
        for pid in pids_with(&self.0.display().to_string()) {
            if pids_with("qemu-system").contains(&pid) {
                let _ = corral_exec::run_blocking("kill", &["-9", &pid.to_string()]);
            }
        }
    }
}

struct Server {
    child: Child,
    client: Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(state_dir: &Path) -> Server {
    let _ = std::fs::remove_file(state_dir.join("endpoint"));
    let log = std::fs::OpenOptions::new().create(true).append(true).open(state_dir.join("serve.log")).unwrap();
    let child = corral_exec::std_command(env!("CARGO_BIN_EXE_corral"))
        .args(["serve", "--hypervisor", "qemu", "--listen", "127.0.0.1:0", "--images", "minimal", "--stop-timeout-secs", "30"])
        .arg("--state-dir")
        .arg(state_dir)
        .env("CORRAL_ACCOUNT_ID", "210987654321")
        .env("CORRAL_ACCESS_KEY_ID", ACCESS_KEY)
        .env("CORRAL_SECRET_ACCESS_KEY", SECRET_KEY)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start corral serve");
    let endpoint = wait_blocking("endpoint file", Duration::from_secs(30), || std::fs::read_to_string(state_dir.join("endpoint")).ok());
    let addr = endpoint.lines().next().unwrap().trim_start_matches("http://").parse().unwrap();
    Server { child, client: Client::new(addr, ACCESS_KEY, SECRET_KEY) }
}

fn wait_blocking<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// PIDs of processes whose command line names `needle`.
fn pids_with(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(needle) {
                out.push(pid);
            }
        }
    }
    out
}

async fn state_of(c: &Client, id: &str) -> String {
    let r = c.call("DescribeInstances", &[("InstanceId.1", id)]).await;
    r.ok();
    let doc = r.body.clone();
    let i = doc.find("<instanceState>").expect("instanceState");
    let rest = &doc[i..];
    let s = rest.find("<name>").unwrap() + 6;
    rest[s..s + rest[s..].find('<').unwrap()].to_string()
}

async fn wait_state(c: &Client, id: &str, want: &str, deadline: Duration) {
    wait_for(&format!("{id} {want}"), deadline, || async { (state_of(c, id).await == want).then_some(()) }).await
}

async fn console(c: &Client, id: &str) -> String {
    let r = c.call("GetConsoleOutput", &[("InstanceId", id)]).await;
    let b64 = r.ok().text("output").unwrap_or_default();
    String::from_utf8_lossy(&base64::engine::general_purpose::STANDARD.decode(b64).unwrap_or_default()).into_owned()
}

async fn wait_markers(c: &Client, id: &str, n: usize) -> String {
    wait_for(&format!("{n} boot marker(s) on {id}'s console"), BOOT_DEADLINE, || async {
        let out = console(c, id).await;
        (out.matches(MARKER).count() >= n).then_some(out)
    })
    .await
}

fn skip() -> bool {
    if std::env::var_os("CORRAL_SKIP_E2E").is_some() {
        eprintln!("CORRAL_SKIP_E2E set: skipping the real-QEMU test");
        return true;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn minimal_guest_lifecycle_on_qemu() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state: PathBuf = dir.path().to_path_buf();
    let _reaper = QemuReaper(state.clone());
    let server = start_server(&state);
    let c = server.client.clone();

    // The image is built (or found in the cache) by `serve`; wait until it is registered.
    let image = wait_for("corral-minimal registered", Duration::from_secs(900), || async {
        let r = c.call("DescribeImages", &[("Filter.1.Name", "name"), ("Filter.1.Value.1", "corral-minimal")]).await;
        r.text("imageId")
    })
    .await;

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
    drop(server);
    assert_eq!(pids_with(&id), pid2, "the VM survives Corral being killed");
    let server = start_server(&state);
    let c = server.client.clone();
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
}

/// A VM whose QEMU process ends without Corral asking (as it does when the guest powers itself
/// off; the agent's own tests cover a real guest poweroff) follows InstanceInitiatedShutdownBehavior.
#[tokio::test(flavor = "multi_thread")]
async fn vm_ending_on_its_own_follows_shutdown_behaviour() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state: PathBuf = dir.path().to_path_buf();
    let _reaper = QemuReaper(state.clone());
    let server = start_server(&state);
    let c = server.client.clone();
    let image = wait_for("corral-minimal registered", Duration::from_secs(900), || async {
        let r = c.call("DescribeImages", &[("Filter.1.Name", "name"), ("Filter.1.Value.1", "corral-minimal")]).await;
        r.text("imageId")
    })
    .await;
    let mut ids = Vec::new();
    for behaviour in ["stop", "terminate"] {
        let r = c
            .call(
                "RunInstances",
                &[("ImageId", &image), ("MinCount", "1"), ("MaxCount", "1"), ("InstanceInitiatedShutdownBehavior", behaviour)],
            )
            .await;
        ids.push(r.ok().text("instanceId").unwrap());
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
    assert!(state.join("vms").join(&ids[0]).join("root.qcow2").exists(), "stopped: its root volume stays");
    c.call("TerminateInstances", &[("InstanceId.1", &ids[0])]).await.ok();
    wait_state(&c, &ids[0], "terminated", Duration::from_secs(30)).await;
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}
