//! The metadata service end to end, in network namespaces this test creates and removes.
//!
//! ```text
//!   svc namespace                     inst namespace                  ctr namespace
//!   lo: 169.254.169.254/32            vi: 10.9.0.5 (instance A)       ci: 10.9.1.2 (instance C,
//!   server bound to :80               10.9.0.6 (unknown to the            one hop further: a
//!   vs: 10.9.0.1/24 <---- veth ---->  directory), 10.9.0.7 (B)           "container")
//!                                     vc: 10.9.1.1/24 <--- veth ---> 169.254.169.254 via 10.9.1.1
//!                                     forwards; 169.254.169.254 via 10.9.0.1
//! ```
//!
//! Needs root, `ip` and `curl`; otherwise it says so and passes. Nothing touches the root
//! namespace: veths are created directly inside the test namespaces, and every namespace is
//! deleted by a guard even when an assertion fails. Setting `CORRAL_CLOUDINIT_SRC` to a
//! directory holding cloud-init 22.4's `cloudinit` package (and `CORRAL_CLOUDINIT_PYTHON` to a
//! python with its imports, `configobj` among them) also runs cloud-init's own Ec2 data source.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use corral_metadata::example::instance_view;
use corral_metadata::{bind_in_netns, HttpTokens, InstanceDirectory, InstanceView, MetadataServer, TokenKey, IMDS_ADDR, IMDS_PORT};

const VPC: &str = "vpc-0test";

/// A network namespace that is deleted when dropped.
struct Netns(String);

impl Netns {
    fn create(role: &str) -> Netns {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("corral-imds-{}-{}-{role}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        corral_exec::run_blocking("ip", &["netns", "add", &name]).expect("ip netns add");
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <ns> args...`
    fn ip(&self, args: &[&str]) {
        let mut argv = vec!["-n", self.0.as_str()];
        argv.extend_from_slice(args);
        corral_exec::run_blocking("ip", &argv).expect("ip command in test namespace");
    }

    fn exec(&self, args: &[&str]) {
        let mut argv = vec!["netns", "exec", self.0.as_str()];
        argv.extend_from_slice(args);
        corral_exec::run_blocking("ip", &argv).expect("command in test namespace");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = corral_exec::run_blocking("ip", &["netns", "del", &self.0]) {
            eprintln!("could not delete test namespace {}: {e}", self.0);
        }
    }
}

/// The agent's side, in memory: private address -> view.
#[derive(Default)]
struct Directory(Mutex<HashMap<Ipv4Addr, InstanceView>>);

impl InstanceDirectory for Directory {
    fn view_by_ip(&self, vpc_id: &str, ip: Ipv4Addr) -> Option<std::sync::Arc<InstanceView>> {
        assert_eq!(vpc_id, VPC);
        self.0.lock().unwrap().get(&ip).cloned().map(std::sync::Arc::new)
    }
}

fn usable_here() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if !status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")) {
        return Err("not root".into());
    }
    for tool in ["ip", "curl"] {
        if corral_exec::run_blocking("sh", &["-c", &format!("command -v {tool}")]).is_err() {
            return Err(format!("`{tool}` is not installed"));
        }
    }
    Ok(())
}

/// What curl got: the HTTP status (0 when no answer came) and the body.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: String,
}

/// `curl` from namespace `ns` with source address `src` to the metadata service.
async fn curl(ns: &Netns, src: &str, path: &str, extra: &[&str]) -> Reply {
    let url = format!("http://169.254.169.254{path}");
    let mut argv = vec![
        "netns",
        "exec",
        &ns.0,
        "curl",
        "-sS",
        "--noproxy",
        "*",
        "--max-time",
        "3",
        "--interface",
        src,
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
    ];
    argv.extend_from_slice(extra);
    argv.push(&url);
    match corral_exec::run("ip", &argv).await {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let (body, code) = text.rsplit_once('\n').expect("curl prints the status last");
            Reply { status: code.trim().parse().expect("status code"), body: body.to_string() }
        }
        Err(e) => Reply { status: 0, body: e.to_string() },
    }
}

async fn token(ns: &Netns, src: &str, ttl: &str) -> Reply {
    curl(ns, src, "/latest/api/token", &["-X", "PUT", "-H", &format!("X-aws-ec2-metadata-token-ttl-seconds: {ttl}")]).await
}

async fn get_with_token(ns: &Netns, src: &str, path: &str, token: &str) -> Reply {
    curl(ns, src, path, &["-H", &format!("X-aws-ec2-metadata-token: {token}")]).await
}

/// Whether `/proc/net/tcp` text shows a listener on 169.254.169.254:80.
fn has_imds_listener(proc_net_tcp: &str) -> bool {
    // Addresses are printed as the in-memory u32 in hex; 169.254.169.254 reads the same either
    // way round. State 0A is LISTEN.
    proc_net_tcp.lines().any(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        cols.get(1) == Some(&"FEA9FEA9:0050") && cols.get(3) == Some(&"0A")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imds_in_namespaces() {
    if let Err(why) = usable_here() {
        eprintln!("skipping the namespace test: {why}");
        return;
    }

    // Namespaces first, so their guards drop last (after the server stops).
    let svc = Netns::create("svc");
    let inst = Netns::create("inst");
    let ctr = Netns::create("ctr");
    svc.ip(&["addr", "add", "169.254.169.254/32", "dev", "lo"]);
    svc.ip(&["link", "add", "vs", "type", "veth", "peer", "name", "vi", "netns", &inst.0]);
    svc.ip(&["addr", "add", "10.9.0.1/24", "dev", "vs"]);
    svc.ip(&["link", "set", "vs", "up"]);
    svc.ip(&["route", "add", "10.9.1.0/24", "via", "10.9.0.5"]);
    for a in ["10.9.0.5/24", "10.9.0.6/24", "10.9.0.7/24"] {
        inst.ip(&["addr", "add", a, "dev", "vi"]);
    }
    inst.ip(&["link", "set", "vi", "up"]);
    inst.ip(&["route", "add", "169.254.169.254/32", "via", "10.9.0.1"]);
    inst.ip(&["link", "add", "vc", "type", "veth", "peer", "name", "ci", "netns", &ctr.0]);
    inst.ip(&["addr", "add", "10.9.1.1/24", "dev", "vc"]);
    inst.ip(&["link", "set", "vc", "up"]);
    inst.exec(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    ctr.ip(&["addr", "add", "10.9.1.2/24", "dev", "ci"]);
    ctr.ip(&["link", "set", "ci", "up"]);
    ctr.ip(&["route", "add", "169.254.169.254/32", "via", "10.9.1.1"]);

    let a_ip = Ipv4Addr::new(10, 9, 0, 5);
    let b_ip = Ipv4Addr::new(10, 9, 0, 7);
    let c_ip = Ipv4Addr::new(10, 9, 1, 2);
    let directory = Arc::new(Directory::default());
    {
        let mut views = directory.0.lock().unwrap();
        views.insert(a_ip, instance_view("i-0aaaaaaaaaaaaaaaa", a_ip));
        let mut b = instance_view("i-0bbbbbbbbbbbbbbbb", b_ip);
        b.options.http_tokens = HttpTokens::Required;
        views.insert(b_ip, b);
        views.insert(c_ip, instance_view("i-0cccccccccccccccc", c_ip));
    }

    let listener = bind_in_netns(&svc.0, SocketAddr::from((IMDS_ADDR, IMDS_PORT))).await.expect("bind in namespace");
    let server = MetadataServer::new(VPC, directory.clone(), TokenKey::random());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(listener, async {
        let _ = stop_rx.await;
    }));

    // The listening socket lives in the service namespace, not in the root one.
    let root_tcp = std::fs::read_to_string("/proc/self/net/tcp").unwrap();
    assert!(!has_imds_listener(&root_tcp), "listener leaked into the root namespace");
    let svc_tcp = corral_exec::run("ip", &["netns", "exec", &svc.0, "cat", "/proc/net/tcp"]).await.unwrap();
    assert!(has_imds_listener(&String::from_utf8_lossy(&svc_tcp.stdout)));

    // IMDSv2 from instance A.
    let t = token(&inst, "10.9.0.5", "60").await;
    assert_eq!(t.status, 200, "{t:?}");
    let tok_a = t.body;
    let r = get_with_token(&inst, "10.9.0.5", "/latest/meta-data/instance-id", &tok_a).await;
    assert_eq!((r.status, r.body.as_str()), (200, "i-0aaaaaaaaaaaaaaaa"));
    let r = get_with_token(&inst, "10.9.0.5", "/latest/dynamic/instance-identity/document", &tok_a).await;
    let doc: serde_json::Value = serde_json::from_str(&r.body).expect("identity document is JSON");
    assert_eq!(doc["privateIp"], "10.9.0.5");
    let r = get_with_token(&inst, "10.9.0.5", "/latest/user-data", &tok_a).await;
    assert_eq!(r.body, "#!/bin/sh\necho hello > /tmp/marker\n");
    let r = get_with_token(&inst, "10.9.0.5", "/latest/meta-data/nope", &tok_a).await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("<title>404 - Not Found</title>"), "{}", r.body);

    // IMDSv1 from A (tokens optional); a bad token is still refused.
    let r = curl(&inst, "10.9.0.5", "/latest/meta-data/local-ipv4", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "10.9.0.5"));
    let r = get_with_token(&inst, "10.9.0.5", "/latest/meta-data/local-ipv4", "bogus").await;
    assert_eq!(r.status, 401);

    // Token rules on the wire.
    assert_eq!(token(&inst, "10.9.0.5", "0").await.status, 400);
    assert_eq!(token(&inst, "10.9.0.5", "21601").await.status, 400);
    let r = curl(&inst, "10.9.0.5", "/latest/api/token", &["-X", "PUT"]).await;
    assert_eq!(r.status, 400);
    let r = curl(
        &inst,
        "10.9.0.5",
        "/latest/api/token",
        &["-X", "PUT", "-H", "X-aws-ec2-metadata-token-ttl-seconds: 60", "-H", "X-Forwarded-For: 1.2.3.4"],
    )
    .await;
    assert_eq!(r.status, 403);
    let r = curl(&inst, "10.9.0.5", "/latest/meta-data/", &["-X", "POST"]).await;
    assert_eq!(r.status, 405);

    // Instance B requires tokens, and A's token is not B's.
    assert_eq!(curl(&inst, "10.9.0.7", "/latest/meta-data/instance-id", &[]).await.status, 401);
    assert_eq!(get_with_token(&inst, "10.9.0.7", "/latest/meta-data/instance-id", &tok_a).await.status, 401);
    let tok_b = token(&inst, "10.9.0.7", "60").await.body;
    let r = get_with_token(&inst, "10.9.0.7", "/latest/meta-data/instance-id", &tok_b).await;
    assert_eq!((r.status, r.body.as_str()), (200, "i-0bbbbbbbbbbbbbbbb"));
    // And B's token does nothing for A.
    assert_eq!(get_with_token(&inst, "10.9.0.5", "/latest/meta-data/instance-id", &tok_b).await.status, 401);

    // An address the directory does not know gets nothing.
    let r = curl(&inst, "10.9.0.6", "/latest/meta-data/instance-id", &[]).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(token(&inst, "10.9.0.6", "60").await.status, 403);

    // The listener answers only as 169.254.169.254, not on the service namespace's other address.
    let direct =
        corral_exec::run("ip", &["netns", "exec", &inst.0, "curl", "-sS", "--noproxy", "*", "--max-time", "3", "http://10.9.0.1/latest/"])
            .await;
    assert!(direct.is_err(), "reachable as 10.9.0.1: {direct:?}");

    // Hop limit: C sits one router further away. With hop limit 1 the token never arrives, while
    // IMDSv1 (default TTL) does; with hop limit 2 the token arrives.
    let r = curl(&ctr, "10.9.1.2", "/latest/meta-data/instance-id", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "i-0cccccccccccccccc"));
    let r = token(&ctr, "10.9.1.2", "60").await;
    assert_eq!(r.status, 0, "token crossed a hop with hop limit 1: {r:?}");
    directory.0.lock().unwrap().get_mut(&c_ip).unwrap().options.hop_limit = 2;
    let r = token(&ctr, "10.9.1.2", "60").await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = get_with_token(&ctr, "10.9.1.2", "/latest/meta-data/instance-id", &r.body).await;
    assert_eq!(r.status, 200);

    cloud_init_data_source(&inst).await;

    // The endpoint can be turned off live.
    directory.0.lock().unwrap().get_mut(&a_ip).unwrap().options.http_endpoint = corral_metadata::Toggle::Disabled;
    assert_eq!(curl(&inst, "10.9.0.5", "/latest/meta-data/instance-id", &[]).await.status, 403);

    let _ = stop_tx.send(());
    serving.await.unwrap();
}

/// cloud-init 22.4's Ec2 data source, in both of its modes, as instance A.
async fn cloud_init_data_source(inst: &Netns) {
    let Ok(src) = std::env::var("CORRAL_CLOUDINIT_SRC") else {
        eprintln!("CORRAL_CLOUDINIT_SRC not set: not running cloud-init's Ec2 data source");
        return;
    };
    let python = std::env::var("CORRAL_CLOUDINIT_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cloudinit_ec2.py");
    let script = script.to_str().unwrap();
    let pythonpath = format!("PYTHONPATH={src}");
    for mode in ["aws", "unknown"] {
        let out = corral_exec::run("ip", &["netns", "exec", &inst.0, "env", &pythonpath, "no_proxy=*", &python, script, mode])
            .await
            .expect("cloud-init's data source ran");
        let text = String::from_utf8_lossy(&out.stdout);
        let seen: serde_json::Value = serde_json::from_str(text.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(seen["ok"], true, "{mode}: {seen}");
        assert_eq!(seen["used_token"], mode == "aws", "{mode}: {seen}");
        assert_eq!(seen["api_version"], "2021-03-23", "{mode}: {seen}");
        assert_eq!(seen["instance_id"], "i-0aaaaaaaaaaaaaaaa", "{mode}: {seen}");
        assert_eq!(seen["local_ipv4"], "10.9.0.5", "{mode}: {seen}");
        assert_eq!(seen["hostname"], "ip-10-9-0-5.local-1.compute.internal", "{mode}: {seen}");
        assert_eq!(seen["userdata"], "#!/bin/sh\necho hello > /tmp/marker\n", "{mode}: {seen}");
        assert_eq!(seen["security_groups"], serde_json::json!(["default", "web"]), "{mode}: {seen}");
        let keys = seen["public_keys"].as_array().expect("keys");
        assert!(keys.iter().any(|k| k.as_str().unwrap_or("").starts_with("ssh-ed25519 ")), "{mode}: {seen}");
        let mac = &seen["macs"]["02:00:0a:09:00:05"];
        assert_eq!(mac["local-ipv4s"], "10.9.0.5", "{mode}: {seen}");
        assert_eq!(mac["device-number"], "0", "{mode}: {seen}");
        if mode == "aws" {
            assert_eq!(seen["identity"]["instanceId"], "i-0aaaaaaaaaaaaaaaa", "{seen}");
            assert_eq!(seen["region"], "local-1", "{seen}");
            assert_eq!(seen["availability_zone"], "local-1a", "{seen}");
        }
    }
}
