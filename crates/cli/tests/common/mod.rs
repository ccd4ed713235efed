//! What the end-to-end tests share: starting `corral serve` on real QEMU inside test-owned
//! namespaces, and reading instance state and console through the API.

#![allow(dead_code)]

pub mod crash;

use base64::Engine;
use corral_testkit::{wait_for, Client};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

pub const ACCESS_KEY: &str = "AKIAE2ETESTKEY000001";
pub const SECRET_KEY: &str = "e2e-secret-key-0123456789abcdefghijklmnop";
/// Under TCG a corral-minimal guest prints its marker in a few seconds (HOST-NOTES.md);
/// generous deadlines absorb a loaded CI machine.
pub const BOOT_DEADLINE: Duration = Duration::from_secs(90);
pub const MARKER: &str = "corral-minimal: init ready";

/// The network namespaces of one test: its own prefix for Corral's VPC namespaces, and a
/// namespace of its own that plays the host for public IPs. On drop it kills, by pid, any
/// QEMU process still running from the test's state directory (guests are built to outlive
/// Corral) and every process in its namespaces, then deletes the namespaces, so a failing
/// test leaves nothing behind.
pub struct TestNet {
    pub state: PathBuf,
    pub prefix: String,
    pub host_ns: String,
}

impl TestNet {
    pub fn new(state: &Path) -> TestNet {
        let tag: String = format!(
            "{:08x}",
            std::process::id() ^ (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos())
        );
        let host_ns = format!("ce2e-host-{tag}");
        corral_exec::run_blocking("ip", &["netns", "add", &host_ns]).expect("create the test's host namespace");
        let _ = corral_exec::run_blocking("ip", &["-n", &host_ns, "link", "set", "lo", "up"]);
        TestNet { state: state.to_path_buf(), prefix: format!("ce2e-{tag}-"), host_ns }
    }

    pub fn namespaces(&self) -> Vec<String> {
        let out = corral_exec::run_blocking("ip", &["netns", "list"])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out.lines().filter_map(|l| l.split_whitespace().next()).filter(|n| n.starts_with(&self.prefix)).map(str::to_string).collect()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for pid in pids_with(&self.state.display().to_string()) {
            if pids_with("qemu-system").contains(&pid) {
                let _ = corral_exec::run_blocking("kill", &["-9", &pid.to_string()]);
            }
        }
        let mut all = self.namespaces();
        all.push(self.host_ns.clone());
        for ns in all {
            if let Ok(out) = corral_exec::run_blocking("ip", &["netns", "pids", &ns]) {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = corral_exec::run_blocking("kill", &["-9", pid]);
                }
            }
            let _ = corral_exec::run_blocking("ip", &["netns", "del", &ns]);
        }
        // What dnsmasq read, kept outside the state directory (the home region's; other
        // regions' under STATE/regions/NAME).
        let mut dirs = vec![self.state.clone()];
        if let Ok(regions) = std::fs::read_dir(self.state.join("regions")) {
            dirs.extend(regions.flatten().map(|e| e.path()));
        }
        for d in dirs {
            let _ = std::fs::remove_dir_all(corral_net::runtime_dir(&d));
        }
    }
}

pub struct Server {
    pub child: Child,
    pub client: Client,
    pub log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Whether it was still running when the test ended, and if not how it ended (a signal
        // or an exit code): a server gone without a line in its log left only "connection
        // refused" to go on (e2e_import, once).
        let gone = self.child.try_wait().ok().flatten();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            if let Some(status) = gone {
                eprintln!("--- corral serve had already ended: {status} ---");
            }
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().filter(|l| !l.contains(" request ")).rev().take(60).collect();
            eprintln!("--- corral serve log (last lines) ---");
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

pub fn start_server(state_dir: &Path, net: &TestNet) -> Server {
    start_server_with(state_dir, net, "minimal")
}

/// `images`: which default images `serve` builds and registers (`minimal` or `all`).
pub fn start_server_with(state_dir: &Path, net: &TestNet, images: &str) -> Server {
    start_server_args(state_dir, net, images, &[])
}

/// Like [`start_server_with`], with more `corral serve` arguments.
pub fn start_server_args(state_dir: &Path, net: &TestNet, images: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--hypervisor", "qemu", "--stop-timeout-secs", "30", "--images", images];
    args.extend(["--netns-prefix", &net.prefix, "--host-netns", &net.host_ns]);
    args.extend_from_slice(extra);
    spawn_server(state_dir, &args, "info")
}

/// `corral serve --hypervisor sim` on `state_dir` (home region only), with the test's keys.
pub fn start_sim_server(state_dir: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--hypervisor", "sim", "--images", "minimal", "--regions", "local-1"];
    args.extend_from_slice(extra);
    spawn_server(state_dir, &args, "warn")
}

/// `corral serve ARGS` on `state_dir`, listening on a free port, with the test's account and
/// keys, logging at `log_level` to STATE/serve.log; returns once it has said where it listens.
fn spawn_server(state_dir: &Path, args: &[&str], log_level: &str) -> Server {
    let _ = std::fs::remove_file(state_dir.join("endpoint"));
    let log = std::fs::OpenOptions::new().create(true).append(true).open(state_dir.join("serve.log")).unwrap();
    let child = corral_exec::std_command(env!("CARGO_BIN_EXE_corral"))
        .args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(state_dir)
        .args(args)
        .env("CORRAL_ACCOUNT_ID", "210987654321")
        .env("CORRAL_ACCESS_KEY_ID", ACCESS_KEY)
        .env("CORRAL_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("CORRAL_LOG", std::env::var("CORRAL_LOG").unwrap_or_else(|_| log_level.to_string()))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start corral serve");
    let endpoint = wait_blocking("endpoint file", Duration::from_secs(30), || std::fs::read_to_string(state_dir.join("endpoint")).ok());
    let addr = endpoint.lines().next().unwrap().trim_start_matches("http://").parse().unwrap();
    Server { child, client: Client::new(addr, ACCESS_KEY, SECRET_KEY), log: state_dir.join("serve.log") }
}

pub fn wait_blocking<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
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
pub fn pids_with(needle: &str) -> Vec<u32> {
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

pub async fn state_of(c: &Client, id: &str) -> String {
    let r = c.call("DescribeInstances", &[("InstanceId.1", id)]).await;
    r.ok();
    let doc = r.body.clone();
    let i = doc.find("<instanceState>").expect("instanceState");
    let rest = &doc[i..];
    let s = rest.find("<name>").unwrap() + 6;
    rest[s..s + rest[s..].find('<').unwrap()].to_string()
}

pub async fn wait_state(c: &Client, id: &str, want: &str, deadline: Duration) {
    wait_for(&format!("{id} {want}"), deadline, || async { (state_of(c, id).await == want).then_some(()) }).await
}

pub async fn console(c: &Client, id: &str) -> String {
    let r = c.call("GetConsoleOutput", &[("InstanceId", id)]).await;
    let b64 = r.ok().text("output").unwrap_or_default();
    String::from_utf8_lossy(&base64::engine::general_purpose::STANDARD.decode(b64).unwrap_or_default()).into_owned()
}

pub async fn wait_markers(c: &Client, id: &str, n: usize) -> String {
    wait_for(&format!("{n} boot marker(s) on {id}'s console"), BOOT_DEADLINE, || async {
        let out = console(c, id).await;
        (out.matches(MARKER).count() >= n).then_some(out)
    })
    .await
}

pub fn skip() -> bool {
    if std::env::var_os("CORRAL_SKIP_E2E").is_some() {
        eprintln!("CORRAL_SKIP_E2E set: skipping the real-QEMU test");
        return true;
    }
    false
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
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

/// One test's cloud: `corral serve` on real QEMU in a fresh state directory, with its networks
/// in namespaces of the test's own. Fields drop in order: the server first, then the guests
/// and namespaces, then the files.
pub struct Cloud {
    pub c: Client,
    pub server: Server,
    pub net: TestNet,
    pub state: PathBuf,
    /// The storage pool's own small file system, when the test asked for one.
    pub pool_mount: Option<SmallMount>,
    /// The `corral serve` arguments it was started with, kept for restarts.
    extra: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Cloud {
    /// `images`: which default images `serve` registers (`minimal` or `all`).
    pub fn start(images: &str) -> Cloud {
        Cloud::start_with_pool(images, None)
    }

    /// Like [`Cloud::start`], with the storage pool on a tmpfs of `pool_mib` MiB when given.
    pub fn start_with_pool(images: &str, pool_mib: Option<u32>) -> Cloud {
        Cloud::start_full(images, pool_mib, &[])
    }

    /// Like [`Cloud::start`], with more `corral serve` arguments.
    pub fn start_args(images: &str, extra: &[&str]) -> Cloud {
        Cloud::start_full(images, None, extra)
    }

    fn start_full(images: &str, pool_mib: Option<u32>, extra: &[&str]) -> Cloud {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().to_path_buf();
        let pool_mount = pool_mib.map(|mib| SmallMount::new(&state.join("pool"), mib));
        let net = TestNet::new(&state);
        let server = start_server_args(&state, &net, images, extra);
        let extra = extra.iter().map(|a| a.to_string()).collect();
        Cloud { c: server.client.clone(), server, net, state, pool_mount, extra, _dir: dir }
    }

    /// Kills `corral serve` with SIGKILL (its guests keep running, as they are built to).
    pub fn kill_server(&mut self) {
        let _ = self.server.child.kill();
        let _ = self.server.child.wait();
    }

    /// Starts `corral serve` again on the same state (after [`Cloud::kill_server`]).
    pub fn restart_server(&mut self) {
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        self.server = start_server_args(&self.state, &self.net, "minimal", &extra);
        self.c = self.server.client.clone();
    }

    /// The id of default image `name`, once `serve` has built (or found cached) and registered it.
    pub async fn image(&self, name: &str) -> String {
        wait_for(&format!("{name} registered"), Duration::from_secs(1200), || async {
            self.c.call("DescribeImages", &[("Filter.1.Name", "name"), ("Filter.1.Value.1", name)]).await.text("imageId")
        })
        .await
    }

    /// Creates an ed25519 key pair and writes its private key (mode 600); returns the path.
    pub async fn key_pair(&self, name: &str) -> PathBuf {
        let r = self.c.call("CreateKeyPair", &[("KeyName", name), ("KeyType", "ed25519")]).await;
        let key = self.state.join(format!("{name}.pem"));
        std::fs::write(&key, r.ok().text("keyMaterial").unwrap()).unwrap();
        corral_exec::run_blocking("chmod", &["600", &key.display().to_string()]).unwrap();
        key
    }
}

/// Runs `argv` inside namespace `ns`.
pub async fn in_ns(ns: &str, argv: &[&str]) -> Result<String, String> {
    let mut all = vec!["netns", "exec", ns];
    all.extend_from_slice(argv);
    match corral_exec::run("ip", &all).await {
        Ok(out) => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs `command` over SSH as `admin` with the key pair, from namespace `ns`.
pub async fn ssh(ns: &str, key: &Path, ip: &str, command: &str) -> Result<String, String> {
    let key = key.display().to_string();
    let target = format!("admin@{ip}");
    in_ns(
        ns,
        &[
            "ssh",
            "-i",
            &key,
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
            &target,
            command,
        ],
    )
    .await
}

/// A tmpfs of a given size mounted over a directory for the length of a test (a storage
/// pool that fills up on demand); lazily unmounted on drop.
pub struct SmallMount {
    pub path: PathBuf,
}

impl SmallMount {
    pub fn new(path: &Path, mib: u32) -> SmallMount {
        std::fs::create_dir_all(path).unwrap();
        corral_exec::run_blocking("mount", &["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs", &path.display().to_string()])
            .expect("mount a tmpfs for the test");
        SmallMount { path: path.to_path_buf() }
    }
}

impl Drop for SmallMount {
    fn drop(&mut self) {
        let _ = corral_exec::run_blocking("umount", &["-l", &self.path.display().to_string()]);
    }
}
