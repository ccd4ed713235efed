//! The data path for real, in namespaces each test creates and removes: simulated guests
//! (namespaces on veth ports) get DHCP leases and DNS answers, and security groups, spoofing
//! guards, VPC isolation and public IPs are checked with real TCP connections. A dropped
//! connection must time out (not be refused): that is what "denied" means here.

mod lab;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use corral_net::NetDriver;
use lab::*;

const SHORT: Duration = Duration::from_millis(700);

#[tokio::test]
async fn lease_dns_and_security_groups_change_live() {
    let Some(mut lab) = lab("lease_dns_and_security_groups_change_live") else { return };
    let d = lab.driver();
    let (ga, gb) = (lab.guest("a"), lab.guest("b"));
    let a = port(&ga, 0xa, 5, &["sg-a"]);
    let mut b = port(&gb, 0xb, 6, &["sg-b"]);
    b.hostname = "bee".into();
    let v = |a_in: Vec<corral_net::RuleSpec>| {
        desired(vec![vpc("vpc-1", vec![a.clone(), b.clone()], vec![group("sg-a", a_in), group("sg-b", vec![])])])
    };
    apply(&d, &v(vec![])).await;

    // DHCP: fixed lease, gateway .1, DNS .2, MTU 1450, EC2's domain.
    let lease = lab.dhcp(&ga).await;
    assert_eq!(lease["ip"], "10.0.1.5");
    assert_eq!(lease["mask"], "24");
    assert_eq!(lease["router"], "10.0.1.1");
    assert_eq!(lease["dns"], "10.0.0.2");
    assert_eq!(lease["mtu"], "1450");
    assert_eq!(lease["domain"], "local-1.compute.internal");
    assert_eq!(lab.dhcp(&gb).await["ip"], "10.0.1.6");

    // DNS inside the VPC: EC2 names, the host name, PTR.
    let bb = lab.bb();
    let (ok, out) = lab.sh(&ga, &[&bb, "nslookup", "ip-10-0-1-6.local-1.compute.internal", "10.0.0.2"]).await;
    assert!(ok && out.contains("10.0.1.6"), "{out}");
    let (ok, out) = lab.sh(&ga, &[&bb, "nslookup", "bee", "10.0.0.2"]).await;
    assert!(ok && out.contains("10.0.1.6"), "{out}");
    let (ok, out) = lab.sh(&ga, &[&bb, "nslookup", "10.0.1.5", "10.0.0.2"]).await;
    assert!(ok && out.contains("ip-10-0-1-5.local-1.compute.internal"), "{out}");
    let (ok, out) = lab.sh(&ga, &[&bb, "nslookup", "example.com", "10.0.0.2"]).await;
    assert!(!ok || !out.contains("Address: "), "no upstream: {out}");

    // The gateway answers ping; DNS is not served on the gateway address.
    let (ok, out) = lab.sh(&ga, &[&bb, "ping", "-c", "1", "-W", "2", "10.0.1.1"]).await;
    assert!(ok, "{out}");

    lab.listen(&ga, 8080).await;
    lab.listen(&gb, 8080).await;
    let (ia, ib) = (Ipv4Addr::new(10, 0, 1, 5), Ipv4Addr::new(10, 0, 1, 6));
    // No ingress rule in sg-a: dropped (a timeout, not a refusal).
    let t = Instant::now();
    assert_eq!(lab.probe(&gb, ia, 8080, SHORT).await, "timeout");
    assert!(t.elapsed() >= SHORT);
    // sg-b has no ingress either.
    assert_eq!(lab.probe(&ga, ib, 8080, SHORT).await, "timeout");

    // Allow 8080 from members of sg-b: live at once.
    apply(&d, &v(vec![tcp_from_group(8080, "sg-b")])).await;
    let t = Instant::now();
    let first = lab.probe(&gb, ia, 8080, Duration::from_secs(2)).await;
    eprintln!("MEASURE first probe after authorize: {first} in {:?}", t.elapsed());
    assert_eq!(first, "open");
    // Other ports stay closed, and the other direction too.
    assert_eq!(lab.probe(&gb, ia, 8081, SHORT).await, "timeout");
    assert_eq!(lab.probe(&ga, ib, 8080, SHORT).await, "timeout");

    // Revoke: dropped again.
    apply(&d, &v(vec![])).await;
    assert_eq!(lab.probe(&gb, ia, 8080, SHORT).await, "timeout");

    // A CIDR rule naming B's address.
    apply(&d, &v(vec![tcp_from_cidr(8080, "10.0.1.6/32")])).await;
    assert_eq!(lab.probe(&gb, ia, 8080, SHORT).await, "open");
    // A CIDR rule naming someone else.
    apply(&d, &v(vec![tcp_from_cidr(8080, "10.0.1.7/32")])).await;
    assert_eq!(lab.probe(&gb, ia, 8080, SHORT).await, "timeout");

    // Egress enforced: B's group loses its allow-all egress; A still allows B in.
    let mut sg_b = group("sg-b", vec![]);
    sg_b.egress.clear();
    let d_noegress =
        desired(vec![vpc("vpc-1", vec![a.clone(), b.clone()], vec![group("sg-a", vec![tcp_from_group(8080, "sg-b")]), sg_b.clone()])]);
    apply(&d, &d_noegress).await;
    assert_eq!(lab.probe(&gb, ia, 8080, SHORT).await, "timeout");
    // Egress to port 8080 only.
    sg_b.egress.push(tcp_from_cidr(8080, "10.0.1.0/24"));
    let d_egress = desired(vec![vpc("vpc-1", vec![a.clone(), b.clone()], vec![group("sg-a", vec![tcp_from_group(8080, "sg-b")]), sg_b])]);
    apply(&d, &d_egress).await;
    assert_eq!(lab.probe(&gb, ia, 8080, SHORT).await, "open");

    // Changing B's groups while it runs: B leaves sg-b, joins sg-a (which sg-a's rule does
    // not name): dropped.
    let mut b2 = b.clone();
    b2.groups = vec!["sg-a".into()];
    apply(
        &d,
        &desired(vec![vpc("vpc-1", vec![a.clone(), b2], vec![group("sg-a", vec![tcp_from_group(8080, "sg-b")]), group("sg-b", vec![])])]),
    )
    .await;
    assert_eq!(lab.probe(&gb, ia, 8080, SHORT).await, "timeout");

    apply(&d, &desired(vec![])).await;
    assert!(lab.namespaces().iter().all(|n| !n.starts_with(&d.config().ns_prefix)));
}

#[tokio::test]
async fn spoofed_addresses_go_nowhere() {
    let Some(mut lab) = lab("spoofed_addresses_go_nowhere") else { return };
    let d = lab.driver();
    let (ga, gb) = (lab.guest("a"), lab.guest("b"));
    let all = vec![group("sg-open", vec![tcp_from_cidr(8080, "0.0.0.0/0")])];
    let n = desired(vec![vpc("vpc-1", vec![port(&ga, 0xa, 5, &["sg-open"]), port(&gb, 0xb, 6, &["sg-open"])], all)]);
    apply(&d, &n).await;
    lab.dhcp(&ga).await;
    lab.dhcp(&gb).await;
    lab.listen(&ga, 8080).await;
    let ia = Ipv4Addr::new(10, 0, 1, 5);
    assert_eq!(lab.probe(&gb, ia, 8080, SHORT).await, "open");

    // B takes another address (a free one, then A's neighbour's): nothing passes.
    for fake in ["10.0.1.7/24", "10.0.1.9/24"] {
        lab.sh(&gb, &["ip", "addr", "flush", "dev", "eth0"]).await;
        lab.sh(&gb, &["ip", "addr", "add", fake, "dev", "eth0"]).await;
        lab.sh(&gb, &["ip", "route", "replace", "default", "via", "10.0.1.1"]).await;
        assert_eq!(lab.probe(&gb, ia, 8080, SHORT).await, "timeout", "spoofed {fake}");
    }
    // Its own address but another MAC: nothing passes either.
    lab.sh(&gb, &["ip", "addr", "flush", "dev", "eth0"]).await;
    lab.sh(&gb, &["ip", "link", "set", "eth0", "address", "02:c0:00:00:00:99"]).await;
    lab.sh(&gb, &["ip", "addr", "add", "10.0.1.6/24", "dev", "eth0"]).await;
    lab.sh(&gb, &["ip", "route", "replace", "default", "via", "10.0.1.1"]).await;
    assert_eq!(lab.probe(&gb, ia, 8080, SHORT).await, "timeout", "spoofed MAC");
    // Back to the real MAC: works again.
    lab.sh(&gb, &["ip", "link", "set", "eth0", "address", "02:c0:00:00:00:06"]).await;
    wait_for("B back", Duration::from_secs(5), || async { lab.probe(&gb, ia, 8080, SHORT).await == "open" }).await;
    apply(&d, &desired(vec![])).await;
}

#[tokio::test]
async fn vpcs_with_the_same_cidr_cannot_reach_each_other() {
    let Some(mut lab) = lab("vpcs_with_the_same_cidr_cannot_reach_each_other") else { return };
    let d = lab.driver();
    let (g1, g2, g3) = (lab.guest("one"), lab.guest("two"), lab.guest("three"));
    let open = || vec![group("sg-open", vec![tcp_from_cidr(8080, "0.0.0.0/0")])];
    // vpc-1 holds 10.0.1.5; vpc-2 holds 10.0.1.5 (same address) and 10.0.1.6.
    let n = desired(vec![
        vpc("vpc-1", vec![port(&g1, 0x1, 5, &["sg-open"])], open()),
        vpc("vpc-2", vec![port(&g2, 0x2, 5, &["sg-open"]), port(&g3, 0x3, 6, &["sg-open"])], open()),
    ]);
    let r = apply(&d, &n).await;
    assert_eq!(r.vpcs.len(), 2);
    for g in [&g1, &g2, &g3] {
        lab.dhcp(g).await;
    }
    lab.listen(&g2, 8080).await;
    lab.listen(&g3, 8080).await;
    // Inside vpc-2 the group allows it.
    assert_eq!(lab.probe(&g2, Ipv4Addr::new(10, 0, 1, 6), 8080, SHORT).await, "open");
    // From vpc-1, 10.0.1.6 does not exist and 10.0.1.5 is the guest itself.
    assert_ne!(lab.probe(&g1, Ipv4Addr::new(10, 0, 1, 6), 8080, SHORT).await, "open");
    assert_eq!(lab.probe(&g1, Ipv4Addr::new(10, 0, 1, 5), 8080, SHORT).await, "refused", "its own address, no listener");
    // DNS in vpc-1 does not know vpc-2's names.
    let bb = lab.bb();
    let (_, out) = lab.sh(&g1, &[&bb, "nslookup", "ip-10-0-1-6.local-1.compute.internal", "10.0.0.2"]).await;
    assert!(!out.contains("Address: 10.0.1.6") && !out.contains("Address 1: 10.0.1.6"), "{out}");
    apply(&d, &desired(vec![])).await;
}

#[tokio::test]
async fn public_ip_needs_an_igw_route_and_a_group_rule() {
    let Some(mut lab) = lab("public_ip_needs_an_igw_route_and_a_group_rule") else { return };
    let d = lab.driver();
    let ga = lab.guest("a");
    let public = Ipv4Addr::new(198, 51, 100, 5);
    let mut p = port(&ga, 0xa, 5, &["sg-a"]);
    p.public_ip = Some(public);
    let spec = |igw: bool, rules: Vec<corral_net::RuleSpec>| {
        let mut v = vpc("vpc-1", vec![p.clone()], vec![group("sg-a", rules)]);
        v.subnets[0].routes_to_igw = igw;
        desired(vec![v])
    };
    apply(&d, &spec(false, vec![tcp_from_cidr(8080, "0.0.0.0/0")])).await;
    lab.dhcp(&ga).await;
    lab.listen(&ga, 8080).await;
    let host = lab.host_ns.clone();
    // No IGW route: the host has no route to the public IP at all.
    assert_ne!(lab.probe(&host, public, 8080, SHORT).await, "open");
    // IGW and a rule: reachable.
    apply(&d, &spec(true, vec![tcp_from_cidr(8080, "0.0.0.0/0")])).await;
    assert_eq!(lab.probe(&host, public, 8080, Duration::from_secs(2)).await, "open");
    // IGW but no rule: dropped.
    apply(&d, &spec(true, vec![])).await;
    assert_eq!(lab.probe(&host, public, 8080, SHORT).await, "timeout");
    // The private address is never reachable from the host.
    apply(&d, &spec(true, vec![tcp_from_cidr(8080, "0.0.0.0/0")])).await;
    assert_ne!(lab.probe(&host, Ipv4Addr::new(10, 0, 1, 5), 8080, SHORT).await, "open");
    // The guest sees the host's link address as the source; its own outbound traffic is
    // source-NATed to the public IP (seen from the guest: a connection to the host link works
    // only for replies; there is no default route out of the namespace).
    let (_, routes) = lab.sh(&d.netns_for("vpc-1"), &["ip", "route"]).await;
    assert!(!routes.contains("default"), "no way out: {routes}");
    // Taking the IGW route away removes the host route again.
    apply(&d, &spec(false, vec![tcp_from_cidr(8080, "0.0.0.0/0")])).await;
    let (_, host_routes) = lab.sh(&host, &["ip", "route"]).await;
    assert!(!host_routes.contains("198.51.100.5"), "{host_routes}");
    apply(&d, &desired(vec![])).await;
}

/// A guest with a public IP reaches the host end of its VPC's link, where anything listening
/// on a wildcard address would answer it. The host-side guard drops what guests send to the
/// host itself (replies to the host's own connections excepted) unless the operator allowed
/// the port; the guard's table goes with the last VPC.
#[tokio::test]
async fn guests_cannot_reach_the_hosts_own_services() {
    let Some(mut lab) = lab("guests_cannot_reach_the_hosts_own_services") else { return };
    let ga = lab.guest("a");
    let mut p = port(&ga, 0xa, 5, &["sg-a"]);
    p.public_ip = Some(Ipv4Addr::new(198, 51, 100, 5));
    let mut v = vpc("vpc-1", vec![p], vec![group("sg-a", vec![tcp_from_cidr(8080, "0.0.0.0/0")])]);
    v.subnets[0].routes_to_igw = true;
    let spec = desired(vec![v]);
    let d = lab.driver();
    apply(&d, &spec).await;
    lab.dhcp(&ga).await;
    lab.listen(&ga, 8080).await;
    let host = lab.host_ns.clone();
    lab.listen(&host, 2222).await;
    lab.listen(&host, 2223).await;
    let link = corral_net::names::host_link_ifname(&d.netns_for("vpc-1"));
    let (_, addrs) = lab.sh(&host, &["ip", "-4", "-o", "addr", "show", "dev", &link]).await;
    let host_end: Ipv4Addr =
        addrs.split_whitespace().skip_while(|w| *w != "inet").nth(1).and_then(|a| a.split('/').next()).unwrap().parse().unwrap();

    assert_eq!(lab.probe(&ga, host_end, 2222, SHORT).await, "timeout", "a guest reached a service of the host");
    let (pinged, _) = lab.sh(&ga, &[&lab.bb(), "ping", "-c", "1", "-W", "1", &host_end.to_string()]).await;
    assert!(!pinged, "a guest pinged the host");
    // The host's own connections to the guest still get their replies.
    assert_eq!(lab.probe(&host, Ipv4Addr::new(198, 51, 100, 5), 8080, Duration::from_secs(2)).await, "open");

    // An operator who allows a port opens that port only: the path was there all along, and the
    // guard is what closed it.
    let mut config = lab.config();
    config.guest_host_tcp_ports = vec![2222];
    let allowing = corral_net::LinuxNet::new(config).unwrap();
    apply(&allowing, &spec).await;
    assert_eq!(lab.probe(&ga, host_end, 2222, Duration::from_secs(2)).await, "open");
    assert_eq!(lab.probe(&ga, host_end, 2223, SHORT).await, "timeout");

    apply(&allowing, &desired(vec![])).await;
    let (_, tables) = lab.sh(&host, &["nft", "list", "tables"]).await;
    assert!(!tables.contains("corral-guard"), "the guard outlived the last VPC: {tables}");
}

/// How long after `apply` returns a new ingress rule is enforced. Method: a prober in guest B
/// (started and ready before the change) tries a fresh TCP connection to A every ~5 ms (5 ms
/// connect timeout; a dropped SYN times out) and prints `open` at the first success; the test
/// reads that line. `return->open` is from `apply` returning to reading it (an upper bound on
/// the enforcement delay, including one probe period and the pipe), `start->open` from the
/// call to `apply` (the rule is committed part-way through it).
#[tokio::test]
async fn measure_rule_enforcement_latency() {
    let Some(mut lab) = lab("measure_rule_enforcement_latency") else { return };
    let d = lab.driver();
    let (ga, gb) = (lab.guest("a"), lab.guest("b"));
    let a = port(&ga, 0xa, 5, &["sg-a"]);
    let b = port(&gb, 0xb, 6, &["sg-b"]);
    let v = |rules| desired(vec![vpc("vpc-1", vec![a.clone(), b.clone()], vec![group("sg-a", rules), group("sg-b", vec![])])]);
    apply(&d, &v(vec![])).await;
    lab.dhcp(&ga).await;
    lab.dhcp(&gb).await;
    lab.listen(&ga, 8080).await;
    let code = "import socket\nprint('ready',flush=True)\nwhile True:\n  s=socket.socket()\n  s.settimeout(0.005)\n  try:\n    s.connect(('10.0.1.5',8080))\n    print('open',flush=True)\n    break\n  except OSError:\n    pass\n  finally:\n    s.close()\n";
    let mut rows = Vec::new();
    for _ in 0..5 {
        let mut cmd = corral_exec::command("ip");
        cmd.args(["netns", "exec", &gb, "python3", "-c", code]).stdout(std::process::Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn().unwrap();
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("ready"));
        tokio::time::sleep(Duration::from_millis(100)).await; // some failed attempts first
        let t0 = Instant::now();
        apply(&d, &v(vec![tcp_from_group(8080, "sg-b")])).await;
        let t1 = Instant::now();
        let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await.expect("rule enforced").unwrap();
        let t2 = Instant::now();
        assert_eq!(line.as_deref(), Some("open"));
        let _ = child.wait().await;
        rows.push(format!("apply {:?}, return->open {:?}, start->open {:?}", t1 - t0, t2 - t1, t2 - t0));
        apply(&d, &v(vec![])).await;
        assert_eq!(lab.probe(&gb, Ipv4Addr::new(10, 0, 1, 5), 8080, Duration::from_millis(300)).await, "timeout");
    }
    for r in &rows {
        eprintln!("MEASURE {r}");
    }
    apply(&d, &desired(vec![])).await;
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// A namespace file that no longer holds a namespace (its mount gone with whatever made it) is
/// recognised and the namespace made again; before, every apply failed at its first step.
#[tokio::test]
async fn a_stale_namespace_file_is_replaced() {
    let Some(lab) = lab("a_stale_namespace_file_is_replaced") else { return };
    let d = lab.driver();
    let g = lab.guest("one");
    let ns = d.netns_for("vpc-stale");
    std::fs::create_dir_all("/run/netns").unwrap();
    std::fs::write(format!("/run/netns/{ns}"), b"").unwrap();
    let (ok, _) = lab.sh(&ns, &["true"]).await;
    assert!(!ok, "the stale file is not a namespace to enter");
    let n = desired(vec![vpc("vpc-stale", vec![port(&g, 0x1, 5, &["sg-a"])], vec![group("sg-a", vec![])])]);
    let r = apply(&d, &n).await;
    assert_eq!(r.vpcs.len(), 1, "{r:?}");
    let (ok, links) = lab.sh(&ns, &["ip", "-o", "link"]).await;
    assert!(ok && links.contains(&d.tap_for(&n.vpcs[0].ports[0].eni_id)), "{links}");
    apply(&d, &desired(vec![])).await;
    assert!(!lab.namespaces().contains(&ns));
}

#[tokio::test]
async fn teardown_and_crash_reconcile_leave_nothing() {
    let Some(lab) = lab("teardown_and_crash_reconcile_leave_nothing") else { return };
    let cfg = lab.config();
    let (g1, g2, g3, g4) = (lab.guest("one"), lab.guest("two"), lab.guest("three"), lab.guest("four"));
    let mut p1 = port(&g1, 0x1, 5, &["sg-a"]);
    p1.public_ip = Some(Ipv4Addr::new(198, 51, 100, 5));
    let mut p2 = port(&g2, 0x2, 6, &["sg-a"]);
    p2.public_ip = Some(Ipv4Addr::new(198, 51, 100, 6));
    let mut v1 = vpc("vpc-1", vec![p1.clone(), p2.clone()], vec![group("sg-a", vec![])]);
    v1.subnets[0].routes_to_igw = true;
    let v2 = vpc("vpc-2", vec![port(&g3, 0x3, 5, &["sg-a"])], vec![group("sg-a", vec![])]);
    let v3 = vpc("vpc-3", vec![port(&g4, 0x4, 5, &["sg-a"])], vec![group("sg-a", vec![])]);

    let first = lab.driver();
    let t = Instant::now();
    apply(&first, &desired(vec![v1.clone(), v2.clone(), v3.clone()])).await;
    eprintln!("MEASURE apply() creating 3 VPC namespaces with 4 ports: {:?}", t.elapsed());
    let prefix = cfg.ns_prefix.clone();
    let ns = |v: &str| format!("{prefix}{v}");
    assert_eq!(ns("vpc-1"), first.netns_for("vpc-1"));
    let pid = |d: &corral_net::LinuxNet, v: &str| d.dnsmasq_pid(&ns(v)).expect("dnsmasq runs");
    let (pid1, pid2, pid3) = (pid(&first, "vpc-1"), pid(&first, "vpc-2"), pid(&first, "vpc-3"));
    let (_, host_routes) = lab.sh(&lab.host_ns, &["ip", "route"]).await;
    assert!(host_routes.contains("198.51.100.5") && host_routes.contains("198.51.100.6"), "{host_routes}");

    // Idempotent: the same state again changes nothing, dnsmasq keeps running.
    let t = Instant::now();
    let r = apply(&first, &desired(vec![v1.clone(), v2.clone(), v3.clone()])).await;
    eprintln!("MEASURE apply() of the same state again (no-op): {:?}", t.elapsed());
    assert!(r.removed.is_empty() && r.warnings.is_empty(), "{r:?}");
    assert_eq!(pid(&first, "vpc-1"), pid1);

    // "Crash": the driver goes away; debris appears (a stray tap, a state directory whose
    // namespace is gone). A new driver converges to a smaller desired state.
    drop(first);
    lab.sh(&ns("vpc-1"), &["ip", "tuntap", "add", "dev", "tpdeadbeef0001", "mode", "tap"]).await;
    let ghost = cfg.state_dir.join(format!("{}vpc-ghost", cfg.ns_prefix));
    std::fs::create_dir_all(&ghost).unwrap();
    let second = lab.driver();
    let mut v1_small = v1.clone();
    v1_small.ports.retain(|p| p.eni_id == p1.eni_id);
    let r = apply(&second, &desired(vec![v1_small.clone(), v2.clone()])).await;
    eprintln!("removed: {:?}\nwarnings: {:?}", r.removed, r.warnings);
    assert!(!lab.namespaces().contains(&ns("vpc-3")));
    assert!(!alive(pid3), "vpc-3's dnsmasq stopped");
    assert_eq!(second.dnsmasq_pid(&ns("vpc-2")), Some(pid2), "vpc-2's dnsmasq re-adopted, untouched");
    assert!(second.dnsmasq_pid(&ns("vpc-1")).is_some());
    assert!(!ghost.exists());
    let (_, links) = lab.sh(&ns("vpc-1"), &["ip", "-o", "link"]).await;
    assert!(!links.contains("tpdeadbeef0001") && !links.contains(&second.tap_for(&p2.eni_id)), "{links}");
    assert!(links.contains(&second.tap_for(&p1.eni_id)), "{links}");
    let (_, guest_links) = lab.sh(&g2, &["ip", "-o", "link"]).await;
    assert!(!guest_links.contains("eth0"), "the removed port's guest end went with it: {guest_links}");
    let (_, host_routes) = lab.sh(&lab.host_ns, &["ip", "route"]).await;
    assert!(host_routes.contains("198.51.100.5") && !host_routes.contains("198.51.100.6"), "{host_routes}");
    let (_, dhcp_hosts) = lab.sh(&ns("vpc-1"), &["cat", &cfg.state_dir.join(ns("vpc-1")).join("dhcp-hosts").to_string_lossy()]).await;
    assert!(dhcp_hosts.contains("10.0.1.5") && !dhcp_hosts.contains("10.0.1.6"), "lease gone: {dhcp_hosts}");
    let (_, rules) = lab.sh(&ns("vpc-1"), &["nft", "list", "table", "inet", "corral"]).await;
    assert!(!rules.contains("10.0.1.6") && !rules.contains(&second.tap_for(&p2.eni_id)), "{rules}");

    // A VPC whose last port goes loses its namespace; an empty desired state removes all.
    let mut v2_empty = v2.clone();
    v2_empty.ports.clear();
    apply(&second, &desired(vec![v1_small, v2_empty])).await;
    assert!(!lab.namespaces().contains(&ns("vpc-2")));
    assert!(!alive(pid2));
    apply(&second, &desired(vec![])).await;
    assert!(lab.namespaces().iter().all(|n| !n.starts_with(&cfg.ns_prefix)), "{:?}", lab.namespaces());
    let (_, host_links) = lab.sh(&lab.host_ns, &["ip", "-o", "link"]).await;
    assert!(!host_links.contains("cv"), "{host_links}");
    let (_, host_routes) = lab.sh(&lab.host_ns, &["ip", "route"]).await;
    assert!(host_routes.trim().is_empty(), "{host_routes}");
    // The driver's directory holds nothing of ours (once empty, the driver removes it).
    let left: Vec<_> = std::fs::read_dir(&cfg.state_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&cfg.ns_prefix))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(!alive(pid1) || second.dnsmasq_pid(&ns("vpc-1")).is_none());
}

/// A route through an instance takes traffic for its destination to that instance's port;
/// its answers (from addresses not its own) pass only while its source/destination check is
/// off, as on EC2.
#[tokio::test]
async fn routes_through_an_instance_and_its_source_dest_check() {
    let Some(mut lab) = lab("routes_through_an_instance_and_its_source_dest_check") else { return };
    let d = lab.driver();
    let (ga, gb) = (lab.guest("a"), lab.guest("b"));
    let a = port(&ga, 0xa, 5, &["sg-a"]);
    let mut b = port(&gb, 0xb, 6, &["sg-b"]);
    let groups = vec![group("sg-a", vec![]), group("sg-b", vec![tcp_from_cidr(8080, "10.0.0.0/16")])];
    let behind = Ipv4Addr::new(10, 99, 0, 5);
    let route = corral_net::PortRoute { destination: net("10.99.0.0/24"), eni_id: b.eni_id.clone() };
    let with = |b: &corral_net::PortSpec, routes: Vec<corral_net::PortRoute>| {
        let mut v = vpc("vpc-1", vec![a.clone(), b.clone()], groups.clone());
        v.routes = routes;
        desired(vec![v])
    };
    apply(&d, &with(&b, vec![route.clone()])).await;
    lab.dhcp(&ga).await;
    lab.dhcp(&gb).await;
    // B holds an address that is not its instance's (a network behind a router).
    let (ok, out) = lab.sh(&gb, &["ip", "addr", "add", "10.99.0.5/32", "dev", "lo"]).await;
    assert!(ok, "{out}");
    lab.listen(&gb, 8080).await;

    // The check on: B gets the connection but its answers, from 10.99.0.5, are dropped.
    assert_eq!(lab.probe(&ga, behind, 8080, SHORT).await, "timeout");
    // Off: they pass.
    b.source_dest_check = false;
    apply(&d, &with(&b, vec![route.clone()])).await;
    assert_eq!(lab.probe(&ga, behind, 8080, Duration::from_secs(3)).await, "open");
    // B still cannot claim another MAC, and its own address still works.
    assert_eq!(lab.probe(&ga, Ipv4Addr::new(10, 0, 1, 6), 8080, Duration::from_secs(3)).await, "open");
    // Without the route nothing leads there.
    apply(&d, &with(&b, vec![])).await;
    assert_ne!(lab.probe(&ga, behind, 8080, SHORT).await, "open");
    // And the route comes back with the next apply.
    apply(&d, &with(&b, vec![route])).await;
    assert_eq!(lab.probe(&ga, behind, 8080, Duration::from_secs(3)).await, "open");
}
