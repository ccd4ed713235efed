use super::*;
use crate::spec::{GroupSpec, PortLink, SubnetSpec};
use crate::Cidr;

fn net(s: &str) -> Cidr {
    s.parse().unwrap()
}

fn port(eni: &str, last: u8, groups: &[&str]) -> PortSpec {
    PortSpec {
        eni_id: eni.into(),
        instance_id: format!("i-{last:017x}"),
        subnet_id: "subnet-a".into(),
        mac: [2, 0, 0, 0, 0, last],
        ip: Ipv4Addr::new(10, 0, 1, last),
        hostname: format!("ip-10-0-1-{last}"),
        public_ip: None,
        groups: groups.iter().map(|g| g.to_string()).collect(),
        link: PortLink::Tap,
        source_dest_check: true,
    }
}

fn rule(protocol: Protocol, from: Option<i32>, to: Option<i32>, cidr: &str) -> RuleSpec {
    RuleSpec { protocol, from_port: from, to_port: to, cidrs: vec![(net(cidr), None)], groups: vec![] }
}

fn vpc() -> VpcSpec {
    VpcSpec {
        vpc_id: "vpc-1".into(),
        cidr: net("10.0.0.0/16"),
        subnets: vec![SubnetSpec { subnet_id: "subnet-a".into(), cidr: net("10.0.1.0/24"), routes_to_igw: false }],
        ports: vec![port("eni-00000000000a", 5, &["sg-web"]).into(), port("eni-00000000000b", 6, &["sg-db", "sg-web"]).into()].into(),
        groups: vec![
            GroupSpec {
                group_id: "sg-web".into(),
                ingress: vec![RuleSpec {
                    protocol: Protocol::Tcp,
                    from_port: Some(80),
                    to_port: Some(80),
                    cidrs: vec![(net("0.0.0.0/0"), Some("web \"from\" anywhere".into()))],
                    groups: vec![],
                }],
                egress: vec![rule(Protocol::All, None, None, "0.0.0.0/0")],
                remote_members: vec![],
            },
            GroupSpec {
                group_id: "sg-db".into(),
                ingress: vec![RuleSpec {
                    protocol: Protocol::Tcp,
                    from_port: Some(5432),
                    to_port: Some(5432),
                    cidrs: vec![],
                    groups: vec![("sg-web".into(), Some("app servers".into()))],
                }],
                egress: vec![],
                remote_members: vec![Ipv4Addr::new(10, 0, 9, 9)],
            },
        ],
        routes: vec![],
    }
}

fn chain<'a>(script: &'a str, name: &str) -> &'a str {
    let start = script.find(&format!("\tchain {name} {{\n")).unwrap_or_else(|| panic!("no chain {name} in\n{script}"));
    let rest = &script[start..];
    &rest[..rest.find("\n\t}\n").unwrap() + 4]
}

#[test]
fn script_replaces_the_table_in_one_transaction() {
    let s = ruleset(&vpc());
    let lines: Vec<&str> = s.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines[0], "table inet corral");
    assert_eq!(lines[1], "delete table inet corral");
    assert_eq!(lines[2], "table inet corral {");
    assert_eq!(*lines.last().unwrap(), "}");
    assert_eq!(s, ruleset(&vpc()), "deterministic");
}

#[test]
fn port_addresses_and_memberships() {
    let s = ruleset(&vpc());
    assert!(
        s.contains("elements = { \"tp00000000000a\" . 02:00:00:00:00:05 . 10.0.1.5, \"tp00000000000b\" . 02:00:00:00:00:06 . 10.0.1.6 }"),
        "{s}"
    );
    assert!(s.contains("set sg-web-members {\n\t\ttype ipv4_addr\n\t\telements = { 10.0.1.5, 10.0.1.6 }"), "{s}");
    // remote members join local ones
    assert!(s.contains("set sg-db-members {\n\t\ttype ipv4_addr\n\t\telements = { 10.0.1.6, 10.0.9.9 }"), "{s}");
}

#[test]
fn ports_dispatch_to_their_groups_then_drop() {
    let s = ruleset(&vpc());
    assert!(s.contains("\"tp00000000000a\" : goto port-tp00000000000a-out"));
    assert!(s.contains("\"tp00000000000b\" : goto port-tp00000000000b-in"));
    assert_eq!(
        chain(&s, "port-tp00000000000b-in"),
        "\tchain port-tp00000000000b-in {\n\t\tjump sg-db-in\n\t\tjump sg-web-in\n\t\tdrop\n\t}\n"
    );
    assert_eq!(chain(&s, "port-tp00000000000a-out"), "\tchain port-tp00000000000a-out {\n\t\tjump sg-web-out\n\t\tdrop\n\t}\n");
}

#[test]
fn group_rules_render_peers_protocols_and_comments() {
    let s = ruleset(&vpc());
    assert_eq!(chain(&s, "sg-web-in"), "\tchain sg-web-in {\n\t\ttcp dport 80 accept comment \"web _from_ anywhere\"\n\t}\n");
    assert_eq!(chain(&s, "sg-web-out"), "\tchain sg-web-out {\n\t\taccept\n\t}\n");
    assert_eq!(
        chain(&s, "sg-db-in"),
        "\tchain sg-db-in {\n\t\tip saddr @sg-web-members tcp dport 5432 accept comment \"app servers\"\n\t}\n"
    );
    assert_eq!(chain(&s, "sg-db-out"), "\tchain sg-db-out {\n\t}\n");
}

#[test]
fn protocol_and_port_forms() {
    let cases = [
        (rule(Protocol::Tcp, Some(22), Some(22), "10.0.0.0/16"), "ip saddr 10.0.0.0/16 tcp dport 22 accept"),
        (rule(Protocol::Tcp, Some(1000), Some(2000), "10.0.1.7/32"), "ip saddr 10.0.1.7 tcp dport 1000-2000 accept"),
        (rule(Protocol::Udp, Some(0), Some(65535), "0.0.0.0/0"), "meta l4proto udp accept"),
        (rule(Protocol::Udp, Some(-1), Some(-1), "0.0.0.0/0"), "meta l4proto udp accept"),
        (rule(Protocol::Icmp, Some(-1), Some(-1), "0.0.0.0/0"), "meta l4proto icmp accept"),
        (rule(Protocol::Icmp, Some(8), Some(-1), "0.0.0.0/0"), "icmp type 8 accept"),
        (rule(Protocol::Icmp, Some(3), Some(4), "0.0.0.0/0"), "icmp type 3 icmp code 4 accept"),
        (rule(Protocol::All, Some(22), Some(22), "192.168.0.9/24"), "ip saddr 192.168.0.0/24 accept"),
        (rule(Protocol::Number(47), None, None, "0.0.0.0/0"), "meta l4proto 47 accept"),
    ];
    for (r, want) in cases {
        assert_eq!(group_rules(std::slice::from_ref(&r), "saddr"), vec![want.to_string()], "{r:?}");
    }
    assert_eq!(
        group_rules(&[rule(Protocol::Tcp, Some(443), Some(443), "10.1.0.0/16")], "daddr"),
        vec!["ip daddr 10.1.0.0/16 tcp dport 443 accept"]
    );
}

/// Found by `fuzz/fuzz_targets/nft_rules.rs`: ICMP of any type but one code (`FromPort=-1,
/// ToPort=11`, which the control plane then accepted; it now refuses it, as AWS does) was
/// rendered `meta l4proto icmp`, letting
/// every ICMP type and code through.
#[test]
fn icmp_of_any_type_with_one_code_matches_that_code() {
    let r = rule(Protocol::Icmp, Some(-1), Some(11), "0.0.0.0/0");
    assert_eq!(group_rules(std::slice::from_ref(&r), "saddr"), vec!["icmp code 11 accept".to_string()]);
    let r = rule(Protocol::Icmp, None, Some(0), "10.0.0.0/8");
    assert_eq!(group_rules(std::slice::from_ref(&r), "saddr"), vec!["ip saddr 10.0.0.0/8 icmp code 0 accept".to_string()]);
}

#[test]
fn a_rule_with_several_peers_gives_one_line_each() {
    let r = RuleSpec {
        protocol: Protocol::Tcp,
        from_port: Some(22),
        to_port: Some(22),
        cidrs: vec![(net("10.0.0.0/8"), None), (net("172.16.0.0/12"), Some("office".into()))],
        groups: vec![("sg-x".into(), None)],
    };
    assert_eq!(
        group_rules(&[r], "saddr"),
        vec![
            "ip saddr 10.0.0.0/8 tcp dport 22 accept",
            "ip saddr 172.16.0.0/12 tcp dport 22 accept comment \"office\"",
            "ip saddr @sg-x-members tcp dport 22 accept",
        ]
    );
}

#[test]
fn referenced_group_without_spec_gets_an_empty_set() {
    let mut v = vpc();
    v.groups[0].ingress[0].groups.push(("sg-elsewhere".into(), None));
    let s = ruleset(&v);
    assert!(s.contains("set sg-elsewhere-members {\n\t\ttype ipv4_addr\n\t}\n"), "{s}");
    assert!(!s.contains("chain sg-elsewhere-in"));
}

#[test]
fn comments_are_sanitised_and_bounded() {
    let c = comment(&format!("a\\b\"c\nd é {}", "x".repeat(300)));
    assert!(c.starts_with(" comment \"a_b_c_d _ x"));
    assert_eq!(c.len(), " comment \"\"".len() + MAX_COMMENT);
}

#[test]
fn nat_only_where_the_subnet_routes_to_an_igw() {
    let mut v = vpc();
    std::sync::Arc::make_mut(&mut v.ports[0]).public_ip = Some(Ipv4Addr::new(198, 51, 100, 7));
    let s = ruleset(&v);
    assert!(!s.contains("198.51.100.7"), "no IGW route, no NAT");
    v.subnets[0].routes_to_igw = true;
    let s = ruleset(&v);
    assert!(s.contains("elements = { 198.51.100.7 : 10.0.1.5 }"), "{s}");
    assert!(s.contains("elements = { 10.0.1.5 : 198.51.100.7 }"), "{s}");
    assert!(s.contains("set igw-private {\n\t\ttype ipv4_addr\n\t\telements = { 10.0.1.5 }"), "{s}");
}

#[test]
fn base_chains_guard_the_namespace() {
    let s = ruleset(&vpc());
    let guard = chain(&s, "port-guard");
    assert!(guard.contains("priority raw; policy accept;"));
    assert!(guard.contains("iifname \"tp*\" iifname . ether saddr . ip saddr != @port-addrs drop"));
    let input = chain(&s, "local-in");
    assert!(input.contains("policy drop;"));
    assert!(input.contains("ip daddr 10.0.0.2 udp dport 53 accept"));
    assert!(input.contains("ip daddr 169.254.169.254 tcp dport 80 accept"));
    assert!(!input.contains("up0"), "nothing from the host link reaches the namespace itself");
    let egress = chain(&s, "fwd-egress");
    assert!(egress.contains("hook forward priority filter; policy drop;"));
    assert!(egress.contains("ct state vmap { established : accept, related : accept, invalid : drop }"));
    let ingress = chain(&s, "fwd-ingress");
    assert!(ingress.contains("hook forward priority 10; policy drop;"));
}

#[test]
fn no_ports_still_gives_a_valid_closed_table() {
    let mut v = vpc();
    v.ports.clear();
    let s = ruleset(&v);
    assert!(s.contains("map port-egress {\n\t\ttype ifname : verdict\n\t}\n"));
    assert!(s.contains("iifname \"tp*\" drop"));
}
