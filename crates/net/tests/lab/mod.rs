//! A test laboratory: a unique namespace prefix, a "host" namespace, simulated guests (a
//! namespace each, wired to the VPC by a veth port), and a guard that removes every namespace
//! the test made and ends the processes inside them (all started by the test) even when the
//! test fails. Nothing here touches the real host's interfaces, routes or nftables.

#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use corral_net::{
    Cidr, DesiredNet, GroupSpec, LinuxNet, NetConfig, NetDriver, PortLink, PortSpec, Protocol, RuleSpec, SubnetSpec, VpcSpec,
};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// A busybox binary: from PATH, or extracted once from the image cache's busybox-static deb.
pub fn busybox() -> Option<PathBuf> {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("busybox");
        if p.exists() {
            return Some(p);
        }
    }
    let target = std::env::temp_dir().join("corral-net-test-busybox");
    let bin = target.join("bin/busybox");
    if bin.exists() {
        return Some(bin);
    }
    let deb = std::fs::read_dir("/var/cache/corral/images/debs")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("busybox-static_")))?;
    let tmp = std::env::temp_dir().join(format!("corral-net-test-busybox.{}", std::process::id()));
    corral_exec::run_blocking("dpkg-deb", &[std::ffi::OsStr::new("-x"), deb.as_os_str(), tmp.as_os_str()]).ok()?;
    let _ = std::fs::rename(&tmp, &target);
    let _ = std::fs::remove_dir_all(&tmp);
    bin.exists().then_some(bin)
}

/// Skips (returns None) unless root with busybox, python3 and dnsmasq available.
pub fn lab(name: &str) -> Option<Lab> {
    if !is_root() {
        eprintln!("skipping {name}: needs root");
        return None;
    }
    let Some(bb) = busybox() else {
        eprintln!("skipping {name}: no busybox");
        return None;
    };
    Some(Lab::new(bb))
}

pub struct Lab {
    /// Every namespace of this lab starts with this.
    pub root: String,
    pub host_ns: String,
    pub state: tempfile::TempDir,
    pub busybox: PathBuf,
    pub children: Vec<tokio::process::Child>,
}

impl Lab {
    fn new(busybox: PathBuf) -> Lab {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let root = format!("cnt{}x{n}-", std::process::id());
        let host_ns = format!("{root}h");
        corral_exec::run_blocking("ip", &["netns", "add", &host_ns]).expect("create host namespace");
        corral_exec::run_blocking("ip", &["-n", &host_ns, "link", "set", "lo", "up"]).unwrap();
        let state = tempfile::Builder::new().prefix("corral-net-test").tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Lab { root, host_ns, state, busybox, children: Vec::new() }
    }

    pub fn config(&self) -> NetConfig {
        let mut c = NetConfig::new(self.state.path());
        c.ns_prefix = format!("{}v-", self.root);
        c.host_netns = Some(self.host_ns.clone());
        c
    }

    pub fn driver(&self) -> LinuxNet {
        LinuxNet::new(self.config()).unwrap()
    }

    /// A namespace playing a guest; its eth0 is made by the driver (a veth port).
    pub fn guest(&self, name: &str) -> String {
        let ns = format!("{}g-{name}", self.root);
        corral_exec::run_blocking("ip", &["netns", "add", &ns]).expect("create guest namespace");
        corral_exec::run_blocking("ip", &["-n", &ns, "link", "set", "lo", "up"]).unwrap();
        ns
    }

    /// All namespaces whose name starts with the lab's root.
    pub fn namespaces(&self) -> Vec<String> {
        let out = corral_exec::run_blocking("ip", &["netns", "list"]).unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&self.root))
            .map(str::to_string)
            .collect()
    }

    /// Obtains a DHCP lease in a guest with busybox udhcpc; returns the variables the lease
    /// script saw (ip, mask, router, dns, mtu, hostname, domain).
    pub async fn dhcp(&self, guest: &str) -> std::collections::HashMap<String, String> {
        let dir = self.state.path().join(format!("dhcp-{guest}"));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("lease");
        let script = dir.join("script.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\ncase \"$1\" in bound|renew)\n  ip addr flush dev $interface\n  ip addr add $ip/$mask dev $interface\n  \
                 ip link set $interface mtu ${{mtu:-1500}}\n  ip route replace default via $router dev $interface\n  \
                 printf 'ip=%s\\nmask=%s\\nrouter=%s\\ndns=%s\\nmtu=%s\\nhostname=%s\\ndomain=%s\\n' \"$ip\" \"$mask\" \"$router\" \"$dns\" \"$mtu\" \"$hostname\" \"$domain\" > {}\n;;\nesac\n",
                out.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let bb = self.busybox.to_string_lossy().into_owned();
        let s = script.to_string_lossy().into_owned();
        corral_exec::run(
            "ip",
            &["netns", "exec", guest, &bb, "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5", "-T", "1", "-O", "mtu", "-s", &s],
        )
        .await
        .expect("udhcpc");
        std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect()
    }

    /// Starts a TCP server in `ns` on `port` that answers every connection with "hi".
    pub async fn listen(&mut self, ns: &str, port: u16) {
        let code = format!(
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',{port}))\ns.listen(64)\nprint('ready',flush=True)\nwhile True:\n  c,_=s.accept()\n  c.sendall(b'hi')\n  c.close()\n"
        );
        let mut cmd = corral_exec::command("ip");
        cmd.args(["netns", "exec", ns, "python3", "-c", &code]).stdout(Stdio::piped()).stderr(Stdio::null()).kill_on_drop(true);
        let mut child = cmd.spawn().expect("python3 listener");
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await.expect("listener ready").unwrap();
        assert_eq!(line.as_deref(), Some("ready"));
        self.children.push(child);
    }

    /// Connects from `ns` to `ip:port` with a timeout: "open" (and "hi" read), "timeout"
    /// (dropped), "refused", or another error.
    pub async fn probe(&self, ns: &str, ip: Ipv4Addr, port: u16, timeout: Duration) -> String {
        let code = format!(
            "import socket\ns=socket.socket()\ns.settimeout({})\ntry:\n  s.connect(('{ip}',{port}))\n  print('open' if s.recv(2)==b'hi' else 'open-nodata')\nexcept socket.timeout:\n  print('timeout')\nexcept ConnectionRefusedError:\n  print('refused')\nexcept OSError as e:\n  print('error',e.errno)\n",
            timeout.as_secs_f64()
        );
        let out = corral_exec::run("ip", &["netns", "exec", ns, "python3", "-c", &code]).await.expect("probe");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs a command in a namespace, returning (success, stdout+stderr).
    pub async fn sh(&self, ns: &str, args: &[&str]) -> (bool, String) {
        let mut argv = vec!["netns", "exec", ns];
        argv.extend_from_slice(args);
        match corral_exec::run("ip", &argv).await {
            Ok(o) => (true, String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)),
            Err(e) => (false, e.to_string()),
        }
    }

    pub fn bb(&self) -> String {
        self.busybox.to_string_lossy().into_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Our listeners first (kill_on_drop), then anything still running in our namespaces
        // (dnsmasq the driver started for this lab), then the namespaces.
        self.children.clear();
        for ns in self.namespaces() {
            if let Ok(out) = corral_exec::run_blocking("ip", &["netns", "pids", &ns]) {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = corral_exec::run_blocking("kill", &["-KILL", pid]);
                }
            }
            let _ = corral_exec::run_blocking("ip", &["netns", "del", &ns]);
        }
    }
}

pub async fn wait_for<F, Fut>(what: &str, deadline: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    loop {
        if f().await {
            return;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- spec builders ----

pub fn net(s: &str) -> Cidr {
    s.parse().unwrap()
}

pub fn allow_all_egress() -> RuleSpec {
    RuleSpec { protocol: Protocol::All, from_port: None, to_port: None, cidrs: vec![(net("0.0.0.0/0"), None)], groups: vec![] }
}

pub fn tcp_from_cidr(port: i32, cidr: &str) -> RuleSpec {
    RuleSpec {
        protocol: Protocol::Tcp,
        from_port: Some(port),
        to_port: Some(port),
        cidrs: vec![(net(cidr), Some("test".into()))],
        groups: vec![],
    }
}

pub fn tcp_from_group(port: i32, group: &str) -> RuleSpec {
    RuleSpec { protocol: Protocol::Tcp, from_port: Some(port), to_port: Some(port), cidrs: vec![], groups: vec![(group.into(), None)] }
}

pub fn group(id: &str, ingress: Vec<RuleSpec>) -> GroupSpec {
    GroupSpec { group_id: id.into(), ingress, egress: vec![allow_all_egress()], remote_members: vec![] }
}

/// A port wired to guest namespace `guest` (its eth0), at 10.0.1.<last>.
pub fn port(guest: &str, eni_hex: u32, last: u8, groups: &[&str]) -> PortSpec {
    PortSpec {
        eni_id: format!("eni-{eni_hex:017x}"),
        instance_id: format!("i-{eni_hex:017x}"),
        subnet_id: "subnet-1".into(),
        mac: [0x02, 0xc0, 0, 0, 0, last],
        ip: Ipv4Addr::new(10, 0, 1, last),
        hostname: format!("ip-10-0-1-{last}"),
        public_ip: None,
        groups: groups.iter().map(|g| g.to_string()).collect(),
        link: PortLink::Veth { peer_netns: guest.into(), peer_ifname: "eth0".into() },
        source_dest_check: true,
    }
}

pub fn vpc(id: &str, ports: Vec<PortSpec>, groups: Vec<GroupSpec>) -> VpcSpec {
    VpcSpec {
        vpc_id: id.into(),
        cidr: net("10.0.0.0/16"),
        subnets: vec![SubnetSpec { subnet_id: "subnet-1".into(), cidr: net("10.0.1.0/24"), routes_to_igw: false }],
        ports: ports.into_iter().map(std::sync::Arc::new).collect(),
        groups,
        routes: vec![],
    }
}

pub fn desired(vpcs: Vec<VpcSpec>) -> DesiredNet {
    DesiredNet { vpcs }
}

pub async fn apply(d: &LinuxNet, n: &DesiredNet) -> corral_net::NetReport {
    d.apply(n).await.unwrap_or_else(|e| {
        let mut chain = format!("{e}");
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            chain.push_str(&format!(": {s}"));
            src = s.source();
        }
        panic!("apply failed: {chain}")
    })
}
