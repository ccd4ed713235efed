//! corral-minimal as a networked EC2 guest: DHCP, the instance metadata service (IMDSv2), the
//! key pair for `admin`, user-data run once per instance, and SSH into it (with passwordless
//! sudo for `admin`).
//!
//! Everything happens inside a network namespace this test creates (`cimg-<random>`) and
//! removes again, even on failure: a tap device for the guest with the router address
//! 10.77.0.1/24, dnsmasq handing out a fixed lease (10.77.0.5, MTU 1450), a fake metadata
//! service (tests/fake_imds.py) on 169.254.169.254:80, and QEMU itself, started with
//! `ip netns exec`. No traffic leaves the namespace; the host's interfaces, routes and nftables
//! are never touched. Every process is started here and killed by its pid.
//!
//! Needs root, qemu-system-x86_64, dnsmasq (dnsmasq-base), python3 and the OpenSSH client.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const GUEST_IP: &str = "10.77.0.5";
const GUEST_MAC: &str = "02:00:00:00:00:05";
const INSTANCE_ID: &str = "i-0c1a55e5deadbeef0";
const LOCAL_HOSTNAME: &str = "ip-10-77-0-5.local-1.compute.internal";

const USER_DATA: &str = r#"#!/bin/sh
n=$(($(cat /var/lib/cimg-runs 2>/dev/null || echo 0) + 1))
echo "$n" > /var/lib/cimg-runs
echo "CORRAL-USERDATA-MARKER run=$n host=$(hostname) uid=$(id -u)"
touch /var/tmp/cimg-user-data-ran
printf '#!/bin/sh\necho hello\n' > /var/tmp/hello.sh
chmod 755 /var/tmp/hello.sh
nc -ll -p 8080 -e /var/tmp/hello.sh &
echo "listener started on 8080"
"#;

/// A network namespace owned by the test; deleted (with its tap) on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn create() -> Netns {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("cimg-{:08x}", nanos ^ (std::process::id() << 8));
        corral_exec::run_blocking("ip", &["netns", "add", &name]).expect("create the test namespace");
        Netns { name }
    }

    fn ip(&self, args: &[&str]) {
        let mut argv = vec!["-n", &self.name];
        argv.extend_from_slice(args);
        corral_exec::run_blocking("ip", &argv).unwrap_or_else(|e| panic!("{e}"));
    }

    /// `ip netns exec NS`: ip execs the program that follows, so a child's pid is the program's.
    fn prefix(&self) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.name.clone()]
    }

    fn exec(&self, program: &str) -> Vec<String> {
        let mut v = self.prefix();
        v.push(program.into());
        v
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // The persistent tap first (so it cannot outlive the namespace), then the namespace.
        let _ = corral_exec::run_blocking("ip", &["-n", &self.name, "tuntap", "del", "dev", "tap0", "mode", "tap"]);
        if let Err(e) = corral_exec::run_blocking("ip", &["netns", "del", &self.name]) {
            eprintln!("[images] could not delete namespace {}: {e}", self.name);
        }
    }
}

/// A helper process started by the test; killed (SIGKILL, by its pid) and reaped on drop.
struct Helper {
    what: &'static str,
    child: std::process::Child,
}

impl Helper {
    fn spawn(what: &'static str, argv: &[String], log: &Path) -> Helper {
        let out = std::fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        let child = corral_exec::std_command(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        Helper { what, child }
    }

    fn assert_running(&mut self, log: &Path) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early ({status}): {}", self.what, std::fs::read_to_string(log).unwrap_or_default());
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn have(program: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file())).unwrap_or(false)
}

fn s(v: &str) -> String {
    v.to_string()
}

/// Runs `ssh admin@GUEST_IP command` from inside the namespace with the test's key.
async fn ssh(ns: &Netns, key: &Path, command: &str) -> Result<String, String> {
    let mut argv = ns.exec("ssh");
    argv.extend([
        s("-i"),
        key.display().to_string(),
        s("-o"),
        s("StrictHostKeyChecking=no"),
        s("-o"),
        s("UserKnownHostsFile=/dev/null"),
        s("-o"),
        s("BatchMode=yes"),
        s("-o"),
        s("ConnectTimeout=30"),
        s("-o"),
        s("LogLevel=ERROR"),
        format!("admin@{GUEST_IP}"),
        s(command),
    ]);
    match corral_exec::run(&argv[0], &argv[1..]).await {
        Ok(out) => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// The console position of each marker, which must appear in this order.
fn assert_in_order(text: &str, markers: &[&str]) {
    let mut from = 0;
    for m in markers {
        match text[from..].find(m) {
            Some(i) => from += i + m.len(),
            None => panic!("`{m}` missing or out of order (after byte {from}) in the console:\n{text}"),
        }
    }
}

/// What the namespace offers the guest.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Imds {
    V2,
    V1Only,
}

/// A booted guest in its namespace with its helpers. Fields drop in declaration order: QEMU
/// first, then dnsmasq and the fake IMDS, then the namespace, then the files.
struct Env {
    guest: common::Guest,
    helpers: Vec<(Helper, PathBuf)>,
    ns: Netns,
    key: PathBuf,
    work: tempfile::TempDir,
}

impl Env {
    /// Namespace, tap with the router address, dnsmasq (when `dhcp`), the fake IMDS (when
    /// `imds` is some) and QEMU with a NIC on the tap.
    async fn start(dhcp: bool, imds: Option<Imds>) -> Env {
        let image = corral_images::build("corral-minimal", &common::cache_dir(), &common::progress).await.unwrap();
        let work = tempfile::tempdir().unwrap();
        let w = |name: &str| -> PathBuf { work.path().join(name) };
        let key = w("id_ed25519");
        corral_exec::run("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-C", "cimg-test", "-f", key.to_str().unwrap()]).await.unwrap();
        std::fs::write(w("user-data"), USER_DATA).unwrap();

        let ns = Netns::create();
        eprintln!("[images] namespace {}", ns.name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns.ip(&["addr", "add", "169.254.169.254/32", "dev", "lo"]);
        ns.ip(&["tuntap", "add", "dev", "tap0", "mode", "tap"]);
        ns.ip(&["addr", "add", "10.77.0.1/24", "dev", "tap0"]);
        ns.ip(&["link", "set", "tap0", "up"]);

        let mut helpers = Vec::new();
        if dhcp {
            let mut argv = ns.exec("dnsmasq");
            argv.extend([
                s("--keep-in-foreground"),
                s("--conf-file=/dev/null"),
                s("--no-resolv"),
                s("--no-hosts"),
                s("--port=0"),
                s("--interface=tap0"),
                s("--bind-interfaces"),
                s("--user=root"),
                s("--group=root"),
                s("--dhcp-range=10.77.0.0,static,255.255.255.0,12h"),
                format!("--dhcp-host={GUEST_MAC},{GUEST_IP},cimg-guest"),
                s("--dhcp-option=option:router,10.77.0.1"),
                s("--dhcp-option=option:mtu,1450"),
                s("--dhcp-option=option:dns-server,10.77.0.1"),
                format!("--dhcp-leasefile={}", w("leases").display()),
                format!("--pid-file={}", w("dnsmasq.pid").display()),
                s("--log-dhcp"),
                format!("--log-facility={}", w("dnsmasq.log").display()),
            ]);
            helpers.push((Helper::spawn("dnsmasq", &argv, &w("dnsmasq.out")), w("dnsmasq.out")));
        }
        if let Some(mode) = imds {
            let mut argv = ns.exec("python3");
            argv.extend([
                format!("{}/tests/fake_imds.py", env!("CARGO_MANIFEST_DIR")),
                s("169.254.169.254"),
                s(INSTANCE_ID),
                s(LOCAL_HOSTNAME),
                key.with_extension("pub").display().to_string(),
                w("user-data").display().to_string(),
                w("imds.log").display().to_string(),
            ]);
            if mode == Imds::V1Only {
                argv.push(s("v1-only"));
            }
            helpers.push((Helper::spawn("fake IMDS", &argv, &w("imds.out")), w("imds.out")));
        }

        let nic = [
            s("-netdev"),
            s("tap,id=n0,ifname=tap0,script=no,downscript=no"),
            s("-device"),
            format!("virtio-net-device,netdev=n0,mac={GUEST_MAC}"),
        ];
        let guest = common::boot_with(&image, 512, &ns.prefix(), &nic).await;
        Env { guest, helpers, ns, key, work }
    }

    /// Waits for each marker in turn, printing its time after QEMU started; then checks that
    /// the helpers still run and the markers are in this order on the console.
    async fn wait_markers(&mut self, markers: &[String], limit: Duration) -> String {
        for m in markers {
            let t = self.guest.wait_console(m, limit).await.unwrap();
            eprintln!("[images] {t:>10.3?}  {m}");
        }
        for (helper, log) in &mut self.helpers {
            helper.assert_running(log);
        }
        let console = self.guest.console_text();
        assert_in_order(&console, &markers.iter().map(String::as_str).collect::<Vec<_>>());
        console
    }

    async fn ssh(&self, command: &str) -> String {
        ssh(&self.ns, &self.key, command).await.unwrap_or_else(|e| panic!("{e}\nconsole:\n{}", self.guest.console_text()))
    }

    fn imds_log(&self) -> String {
        std::fs::read_to_string(self.work.path().join("imds.log")).unwrap_or_default()
    }

    async fn quit(mut self) {
        let reply = self.guest.qmp("quit").await;
        assert!(reply.contains("\"return\""), "{reply}");
        self.guest.wait_exit(Duration::from_secs(30)).await.unwrap();
    }
}

/// Whether this host can run these tests (root and the tools); says why not when skipping.
fn runnable(test: &str) -> bool {
    if !common::running_as_root(test) {
        return false;
    }
    for tool in ["dnsmasq", "ssh", "ssh-keygen", "python3", "qemu-system-x86_64", "bash"] {
        if !have(tool) {
            eprintln!("[images] SKIPPED {test}: no `{tool}`");
            return false;
        }
    }
    true
}

fn full_markers() -> Vec<String> {
    vec![
        format!("corral-minimal: network up {GUEST_IP}"),
        format!("corral-minimal: metadata ok {INSTANCE_ID}"),
        s("corral-minimal: sshd listening on port 22"),
        s("corral-minimal: user-data done rc=0"),
        s("corral-minimal: init ready"),
    ]
}

#[tokio::test]
async fn corral_minimal_configures_network_metadata_ssh_and_user_data_once() {
    if !runnable("corral_minimal_configures_network_metadata_ssh_and_user_data_once") {
        return;
    }
    let mut env = Env::start(true, Some(Imds::V2)).await;
    let console = env.wait_markers(&full_markers(), Duration::from_secs(180)).await;
    eprintln!("[images] console of the first boot:\n{console}");
    assert!(console.contains("corral-minimal: metadata: IMDSv2 session token"), "{console}");
    assert!(console.contains("CORRAL-USERDATA-MARKER run=1"), "user-data output is not on the console:\n{console}");
    assert!(console.contains("mtu 1450"), "{console}");

    // SSH as admin with the key pair; user-data's output is in its log; hostname from metadata.
    let t = Instant::now();
    let out = env.ssh("cat /var/log/user-data.log; hostname; id -un; ip link show eth0; cat /etc/resolv.conf; ip route").await;
    eprintln!("[images] first ssh command took {:?}:\n{out}", t.elapsed());
    assert_eq!(out.matches("CORRAL-USERDATA-MARKER run=1 host=ip-10-77-0-5 uid=0").count(), 1, "{out}");
    assert!(out.lines().any(|l| l == "ip-10-77-0-5"), "{out}");
    assert!(out.lines().any(|l| l == "admin"), "{out}");
    assert!(out.contains("mtu 1450"), "{out}");
    assert!(out.contains("nameserver 10.77.0.1"), "{out}");
    assert!(out.contains("default via 10.77.0.1 dev eth0"), "{out}");

    // admin becomes root without a password: Debian's sudo, setuid, with the NOPASSWD drop-in.
    let t = Instant::now();
    let out = env.ssh("out=$(sudo -n true 2>&1) && echo \"sudo -n true: ok [$out]\" && sudo -n id -u && sudo -n -l").await;
    eprintln!("[images] sudo over ssh took {:?}:\n{out}", t.elapsed());
    assert_eq!(out.lines().take(2).collect::<Vec<_>>(), ["sudo -n true: ok []", "0"], "succeeds, says nothing:\n{out}");
    assert!(out.contains("(ALL) NOPASSWD: ALL"), "{out}");

    // The listener user-data started answers from the namespace.
    let mut nc = env.ns.exec("bash");
    nc.extend([s("-c"), format!("exec 3<>/dev/tcp/{GUEST_IP}/8080 && timeout 10 cat <&3")]);
    let hello = corral_exec::run(&nc[0], &nc[1..]).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&hello.stdout).trim(), "hello");

    // The guest spoke IMDSv2: a token PUT, then every GET with the token.
    let imds_log = env.imds_log();
    assert!(imds_log.contains("PUT /latest/api/token ttl=21600"), "{imds_log}");
    for path in ["/latest/meta-data/instance-id", "/latest/meta-data/public-keys/0/openssh-key", "/latest/user-data"] {
        assert!(imds_log.contains(&format!("GET {path} token=yes")), "{path}:\n{imds_log}");
    }
    assert!(!imds_log.contains("token=no") && !imds_log.contains("token=bad"), "{imds_log}");

    // Reboot (hard reset): same instance id, so user-data must not run again.
    let reply = env.guest.qmp("system_reset").await;
    assert!(reply.contains("\"return\""), "{reply}");
    let reset_at = env.guest.started.elapsed();
    let t = env.guest.wait_console_count("corral-minimal: init ready", 2, Duration::from_secs(180)).await.unwrap();
    eprintln!("[images] after system_reset: init ready again in {:?}", t - reset_at);
    let console = env.guest.console_text();
    let second = &console[console.find("corral-minimal: init ready").unwrap() + 1..];
    assert!(second.contains(&format!("corral-minimal: user-data already ran for {INSTANCE_ID}")), "{second}");
    assert_eq!(console.matches("corral-minimal: user-data done").count(), 1, "{console}");
    let out = env.ssh("cat /var/log/user-data.log; cat /var/lib/cimg-runs").await;
    assert_eq!(out.matches("CORRAL-USERDATA-MARKER").count(), 1, "{out}");
    assert_eq!(out.lines().last(), Some("1"), "{out}");
    env.quit().await;
}

#[tokio::test]
async fn corral_minimal_falls_back_to_imdsv1_when_the_token_put_fails() {
    if !runnable("corral_minimal_falls_back_to_imdsv1_when_the_token_put_fails") {
        return;
    }
    let mut env = Env::start(true, Some(Imds::V1Only)).await;
    let console = env.wait_markers(&full_markers(), Duration::from_secs(180)).await;
    assert!(console.contains("corral-minimal: metadata: IMDSv1"), "{console}");
    let imds_log = env.imds_log();
    assert!(imds_log.contains("GET /latest/meta-data/instance-id token=no"), "{imds_log}");
    assert!(!imds_log.contains("token=yes"), "{imds_log}");
    let out = env.ssh("cat /var/log/user-data.log").await;
    assert!(out.contains("CORRAL-USERDATA-MARKER run=1"), "{out}");
    env.quit().await;
}

/// A NIC but no DHCP server and no metadata service: init gives up within its bound and still
/// reaches `init ready`, with sshd started (udhcpc keeps trying in the background).
#[tokio::test]
async fn corral_minimal_boots_within_its_bound_without_dhcp() {
    if !runnable("corral_minimal_boots_within_its_bound_without_dhcp") {
        return;
    }
    let mut env = Env::start(false, None).await;
    let markers = [
        s("corral-minimal: network: no DHCP lease on eth0"),
        s("corral-minimal: sshd listening on port 22"),
        s("corral-minimal: init ready"),
    ];
    let console = env.wait_markers(&markers, Duration::from_secs(120)).await;
    assert!(!console.contains("corral-minimal: metadata ok"), "{console}");
    env.quit().await;
}
