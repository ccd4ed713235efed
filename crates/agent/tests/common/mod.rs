//! What the QEMU agent's real-guest tests share: the throwaway guest, built once by
//! `fixtures/build-test-guest.sh` into a cache directory (`$CORRAL_IMAGE_CACHE/agent-test-guest-v3`,
//! default `/var/cache/corral/test-fixtures/agent-test-guest-v3`), a context with a fresh state
//! directory and storage pool per test, a reaper for leftover QEMU processes, and waits on
//! conditions with deadlines.
//!
//! A guard kills, by pid, any QEMU process still carrying one of the test's instance ids when a
//! test ends (they are unique per test run), so a failing test leaks nothing.
//!
//! Without QEMU on the host these tests say so and pass; set `CORRAL_REQUIRE_QEMU=1` to make
//! that a failure instead.
#![allow(dead_code)] // each test binary uses its own part of this

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use corral_agent::qemu::{QemuAgent, QemuConfig};
use corral_agent_api::{Agent, AgentError, BootMode, DiskBus, DiskSpec, LayerId, Storage, VmSpec, VmState};

pub const UP: &str = "CORRAL-TEST-GUEST-UP";
pub const WAITING: &str = "CORRAL-TEST-WAITING";
pub const POWER_BUTTON: &str = "CORRAL-TEST-POWER-BUTTON";
pub const POWEROFF: &str = "CORRAL-TEST-POWEROFF";

/// HOST-NOTES: the tiny guest reaches its first console line in 2.7 s under TCG when alone;
/// these tests run side by side on 2 cores, so allow a lot more.
pub const BOOT_DEADLINE: Duration = Duration::from_secs(120);
/// QEMU reports "running" within a second of starting, whatever the guest does.
pub const RUNNING_DEADLINE: Duration = Duration::from_secs(30);
/// A process ending after power-off, quit or SIGKILL.
pub const STOPPED_DEADLINE: Duration = Duration::from_secs(60);
/// The agents' stop timeout: shorter than STOPPED_DEADLINE, so a guest that missed the power
/// button fails on the assertion that says so rather than on a deadline.
pub const GRACEFUL_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The guest noticing a hot-plugged or unplugged disk (it polls /sys/block every 0.3 s).
pub const DISK_DEADLINE: Duration = Duration::from_secs(60);

/// The layer every test pool imports the fixture's base disk as (the "image").
pub fn base_layer() -> LayerId {
    LayerId::parse("l00000000000000ba5").unwrap()
}

/// Size of the fixture's base disk, and so of every root disk.
pub const ROOT_SIZE: u64 = 64 << 20;

// ---- fixture ---------------------------------------------------------------------------

pub struct Guest {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub base_disk: PathBuf,
}

pub fn guest() -> Option<&'static Guest> {
    static GUEST: OnceLock<Option<Guest>> = OnceLock::new();
    GUEST
        .get_or_init(|| {
            let required = std::env::var("CORRAL_REQUIRE_QEMU").is_ok_and(|v| v == "1");
            for tool in ["qemu-system-x86_64", "qemu-img"] {
                if let Err(e) = corral_exec::run_blocking(tool, &["--version"]) {
                    assert!(!required, "CORRAL_REQUIRE_QEMU=1 but {tool} does not run: {e}");
                    eprintln!("SKIPPING QEMU end-to-end tests: {tool} does not run here ({e})");
                    return None;
                }
            }
            // The directory carries the fixture version, so checkouts of different versions
            // never rebuild each other's guest.
            let cache = std::env::var_os("CORRAL_IMAGE_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/var/cache/corral/test-fixtures"))
                .join("agent-test-guest-v3");
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/build-test-guest.sh");
            if let Err(e) = corral_exec::run_blocking("sh", &[script.as_os_str(), cache.as_os_str()]) {
                panic!("building the test guest failed: {e}");
            }
            Some(Guest { kernel: cache.join("vmlinux"), initrd: cache.join("initrd.cpio"), base_disk: cache.join("base.qcow2") })
        })
        .as_ref()
}

/// Instance ids unique to this test run, so `/proc` scans find only our processes.
pub fn new_instance_id() -> String {
    format!("i-0{:016x}", unique())
}

/// A fresh volume id (`vol-` and 17 hex digits).
pub fn new_volume_id() -> String {
    format!("vol-0{:016x}", unique())
}

/// A fresh layer id.
pub fn new_layer() -> LayerId {
    LayerId::parse(&format!("l0{:016x}", unique())).unwrap()
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    nanos.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((std::process::id() as u64) << 20) ^ SEQ.fetch_add(1, Ordering::SeqCst)
}

/// Pids of QEMU processes whose command line names `instance_id`.
pub fn qemu_pids(instance_id: &str) -> Vec<i32> {
    let needle = format!("guest={instance_id}");
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<String> = cmdline.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if args.first().is_some_and(|a| a.contains("qemu-system")) && args.iter().any(|a| a == &needle) {
            pids.push(pid);
        }
    }
    pids
}

/// Kills, by pid, any QEMU still running one of its instance ids when dropped.
pub struct Reaper(std::sync::Mutex<Vec<String>>);

impl Reaper {
    pub fn id(&self) -> String {
        let id = new_instance_id();
        self.0.lock().unwrap().push(id.clone());
        id
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for id in self.0.lock().unwrap().iter() {
            for pid in qemu_pids(id) {
                eprintln!("reaping leftover QEMU pid {pid} for {id}");
                let _ = corral_exec::run_blocking("kill", &["-9", &pid.to_string()]);
            }
        }
    }
}

/// The root volume of instance `id`: its volume and layer ids derive from the instance id
/// (`i-0<16 hex>` → `vol-0<16 hex>`, `l0<16 hex>`), an overlay on the base layer.
pub fn root_disk(id: &str) -> DiskSpec {
    let body = id.strip_prefix("i-").unwrap();
    DiskSpec {
        volume_id: format!("vol-{body}"),
        layer: LayerId::parse(&format!("l{body}")).unwrap(),
        backing: Some(base_layer()),
        size_bytes: ROOT_SIZE,
        bus: DiskBus::Root,
    }
}

pub fn spec_for(guest: &Guest, id: &str, cmdline: &str) -> VmSpec {
    VmSpec {
        instance_id: id.to_string(),
        instance_type: "t3.nano".into(),
        vcpus: 1,
        memory_mib: 256,
        boot: BootMode::DirectKernel { kernel: guest.kernel.clone(), initrd: Some(guest.initrd.clone()), cmdline: cmdline.to_string() },
        disks: vec![root_disk(id)],
        nics: vec![],
    }
}

/// An agent on `state_dir` and `pool_dir` whose pool holds the base layer.
pub async fn agent_on(state_dir: &Path, pool_dir: &Path, stop_timeout: Duration) -> QemuAgent {
    let guest = guest().expect("callers checked QEMU is here");
    let config = QemuConfig { stop_timeout, ..QemuConfig::new(state_dir, pool_dir) };
    let agent = QemuAgent::new(config).await.expect("QemuAgent::new");
    agent.layer_import(&base_layer(), &guest.base_disk).await.expect("importing the base disk");
    agent
}

pub struct Ctx {
    _tmp: tempfile::TempDir,
    pub state_dir: PathBuf,
    pub pool_dir: PathBuf,
    pub guest: &'static Guest,
    pub reaper: Reaper,
}

impl Ctx {
    pub fn new() -> Option<Ctx> {
        let guest = guest()?;
        let tmp = tempfile::tempdir().unwrap();
        let state_dir = tmp.path().join("vms");
        let pool_dir = tmp.path().join("pool");
        Some(Ctx { _tmp: tmp, state_dir, pool_dir, guest, reaper: Reaper(Default::default()) })
    }

    pub async fn agent(&self, stop_timeout: Duration) -> QemuAgent {
        agent_on(&self.state_dir, &self.pool_dir, stop_timeout).await
    }

    pub fn spec(&self, id: &str, cmdline: &str) -> VmSpec {
        spec_for(self.guest, id, cmdline)
    }

    pub fn vm_dir(&self, id: &str) -> PathBuf {
        self.state_dir.join(id)
    }

    pub fn layer_path(&self, layer: &LayerId) -> PathBuf {
        self.pool_dir.join(format!("{layer}.qcow2"))
    }

    pub fn pid(&self, id: &str) -> Option<i32> {
        std::fs::read_to_string(self.vm_dir(id).join("qemu.pid")).ok()?.trim().parse().ok()
    }
}

// ---- waiting -----------------------------------------------------------------------------

pub async fn state(agent: &QemuAgent, id: &str) -> Option<VmState> {
    agent.vm_list().await.unwrap().into_iter().find(|s| s.instance_id == id).map(|s| s.state)
}

pub async fn generation(agent: &QemuAgent, id: &str) -> u64 {
    agent.vm_list().await.unwrap().into_iter().find(|s| s.instance_id == id).map(|s| s.generation).unwrap()
}

/// Waits for `want`, woken by the agent's `changes()` notifier (re-checking at least every
/// 200 ms so a missed wake-up costs little).
pub async fn wait_state(agent: &QemuAgent, id: &str, want: VmState, deadline: Duration) {
    let changes = agent.changes();
    let end = Instant::now() + deadline;
    loop {
        let notified = changes.notified();
        let now = state(agent, id).await;
        if now == Some(want) {
            return;
        }
        if Instant::now() >= end {
            panic!(
                "timed out after {deadline:?} waiting for {id} to be {want:?}; it is {now:?}; console ends:\n{}",
                console_tail(agent, id).await
            );
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
    }
}

pub async fn console(agent: &QemuAgent, id: &str) -> String {
    String::from_utf8_lossy(&agent.vm_console(id).await.unwrap()).into_owned()
}

pub async fn wait_console(agent: &QemuAgent, id: &str, marker: &str, count: usize, deadline: Duration) {
    let what = format!("{count} x {marker} on {id}'s console");
    let end = Instant::now() + deadline;
    loop {
        let text = console(agent, id).await;
        if text.matches(marker).count() >= count {
            return;
        }
        if Instant::now() >= end {
            panic!("timed out after {deadline:?} waiting for {what}; console ends:\n{}", console_tail(agent, id).await);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn console_tail(agent: &QemuAgent, id: &str) -> String {
    let text = match agent.vm_console(id).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return format!("(no console: {e})"),
    };
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

pub fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

pub fn error_chain(e: &AgentError) -> String {
    let mut s = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// The first `len` bytes of the disk whose top layer is `path`, read through its whole
/// backing chain (`qemu-img convert` to raw). The disk must not be open for writing.
pub fn disk_head(path: &Path, len: usize) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("disk.raw");
    corral_exec::run_blocking(
        "qemu-img",
        &[
            "convert".as_ref(),
            "-U".as_ref(),
            "-f".as_ref(),
            "qcow2".as_ref(),
            "-O".as_ref(),
            "raw".as_ref(),
            path.as_os_str(),
            raw.as_os_str(),
        ],
    )
    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut bytes = std::fs::read(&raw).unwrap();
    bytes.truncate(len);
    bytes
}

/// The guest's marker on the first sector of a disk it wrote (`CORRAL-DATA:<tag>:<dev>;`),
/// read from the host.
pub fn disk_marker(path: &Path) -> String {
    let head = disk_head(path, 512);
    let end = head.iter().position(|&b| b == 0).unwrap_or(head.len());
    String::from_utf8_lossy(&head[..end]).into_owned()
}
