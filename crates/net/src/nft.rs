//! The nftables ruleset of one VPC namespace, generated as text by a pure function of the
//! [`VpcSpec`], and applied whole with one `nft -f` (one kernel transaction: the table is
//! deleted and rebuilt atomically, so a rule change is live on running instances without a
//! window where nothing or half the rules apply; conntrack entries live outside the table, so
//! established connections survive).
//!
//! Layout of table `inet corral` (one per VPC namespace):
//!
//! ```text
//!  prerouting  port-guard (priority raw, before conntrack): a packet from a port must carry
//!                      the port's MAC and IP (set `port-addrs`), DHCP discovery excepted;
//!                      nothing but IPv4 from a port. Spoofed packets never reach conntrack.
//!                      A port whose source/destination check is off (set `port-forwarders`)
//!                      must carry its MAC only: its instance forwards others' packets.
//!  prerouting  nat-pre public IP -> private IP (map `public-dnat`) for traffic from the host link
//!  input       local-in policy drop: DHCP, DNS to the VPC's .2, metadata 169.254.169.254:80
//!                      and ping, from ports only
//!  forward     fwd-egress (priority 0) policy drop: ct established/related accept, invalid drop;
//!                      `iifname vmap @port-egress` -> port-<if>-out -> jump <sg>-out ...; drop
//!  forward     fwd-ingress (priority 10) policy drop: the same for the receiving port,
//!                      `oifname vmap @port-ingress` -> port-<if>-in -> jump <sg>-in ...; drop
//!  postrouting nat-post private IP -> public IP (map `public-snat`) towards the host link
//! ```
//!
//! A forwarded packet between two ports passes the sender's egress groups, then (as an
//! `accept` in one base chain hands the packet on to the next base chain of the same hook) the
//! receiver's ingress groups: each group chain ends in `accept` on a match, and falling off all
//! of a port's groups drops. Group references match `ip saddr @<sg>-members` (`daddr` for
//! egress), a set of the private IPs of the group's members.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::names::{port_ifname, PORT_PREFIX, UPLINK_IFNAME};
use crate::spec::{mac_to_string, PortSpec, Protocol, RuleSpec, VpcSpec};

/// The name of the one table per VPC namespace.
pub const TABLE: &str = "corral";
/// Where the instance metadata service answers, inside every VPC namespace.
pub const METADATA_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// nftables keeps comments up to 128 bytes (NFT_USERDATA_MAXLEN is larger, `nft` cuts here).
const MAX_COMMENT: usize = 128;

/// AmazonProvidedDNS: the VPC's base address plus two.
pub fn dns_ip(vpc: &VpcSpec) -> Ipv4Addr {
    vpc.cidr.nth(2).expect("a VPC CIDR of /28 or larger has a .2")
}

/// The ports whose public IP is live: the port has one and its subnet routes to an internet
/// gateway. Pairs of (private, public).
pub fn nat_pairs(vpc: &VpcSpec) -> Vec<(Ipv4Addr, Ipv4Addr)> {
    let mut v: Vec<_> = vpc
        .ports
        .iter()
        .filter_map(|p| {
            let public = p.public_ip?;
            let subnet = vpc.subnets.iter().find(|s| s.subnet_id == p.subnet_id)?;
            subnet.routes_to_igw.then_some((p.ip, public))
        })
        .collect();
    v.sort();
    v
}

/// An nftables comment: printable ASCII without quotes or backslashes, cut to 128 bytes.
fn comment(text: &str) -> String {
    let clean: String =
        text.chars().map(|c| if (' '..='~').contains(&c) && c != '"' && c != '\\' { c } else { '_' }).take(MAX_COMMENT).collect();
    format!(" comment \"{clean}\"")
}

/// The match on protocol and ports of one rule, `""` for "anything".
fn proto_match(rule: &RuleSpec) -> String {
    let port = |p: Option<i32>| p.filter(|&p| p >= 0);
    match rule.protocol {
        Protocol::All => String::new(),
        Protocol::Tcp | Protocol::Udp => {
            let name = if rule.protocol == Protocol::Tcp { "tcp" } else { "udp" };
            match (port(rule.from_port), port(rule.to_port)) {
                (None, None) => format!("meta l4proto {name}"),
                (Some(0), Some(65535)) => format!("meta l4proto {name}"),
                (Some(f), None) | (None, Some(f)) => format!("{name} dport {f}"),
                (Some(f), Some(t)) if f == t => format!("{name} dport {f}"),
                (Some(f), Some(t)) => format!("{name} dport {f}-{t}"),
            }
        }
        Protocol::Icmp => match (port(rule.from_port), port(rule.to_port)) {
            (None, None) => "meta l4proto icmp".to_string(),
            // Any type, one code: the control plane refuses it (as AWS does); should it ever
            // arrive, it allows that code only, never all of ICMP.
            (None, Some(c)) => format!("icmp code {c}"),
            (Some(t), None) => format!("icmp type {t}"),
            (Some(t), Some(c)) => format!("icmp type {t} icmp code {c}"),
        },
        Protocol::Number(n) => format!("meta l4proto {n}"),
    }
}

/// The lines of one group chain: one rule per peer (CIDR or group) of each permission.
/// `peer_field` is `saddr` for ingress, `daddr` for egress.
fn group_rules(rules: &[RuleSpec], peer_field: &str) -> Vec<String> {
    let mut out = Vec::new();
    for rule in rules {
        let proto = proto_match(rule);
        let join = |peer: String| {
            [peer.as_str(), proto.as_str(), "accept"].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join(" ")
        };
        for (cidr, desc) in &rule.cidrs {
            let peer = if cidr.prefix_len() == 0 {
                String::new()
            } else if cidr.prefix_len() == 32 {
                format!("ip {peer_field} {}", cidr.addr())
            } else {
                format!("ip {peer_field} {}", cidr.network())
            };
            let mut line = join(peer);
            if let Some(d) = desc.as_deref().filter(|d| !d.is_empty()) {
                line.push_str(&comment(d));
            }
            out.push(line);
        }
        for (group, desc) in &rule.groups {
            let mut line = join(format!("ip {peer_field} @{group}-members"));
            if let Some(d) = desc.as_deref().filter(|d| !d.is_empty()) {
                line.push_str(&comment(d));
            }
            out.push(line);
        }
    }
    out
}

fn elements<I: IntoIterator<Item = String>>(items: I) -> String {
    let v: Vec<String> = items.into_iter().collect();
    if v.is_empty() {
        String::new()
    } else {
        format!("\t\telements = {{ {} }}\n", v.join(", "))
    }
}

fn sorted_ports(vpc: &VpcSpec) -> Vec<(String, &PortSpec)> {
    let mut v: Vec<_> = vpc.ports.iter().map(|p| (port_ifname(&p.eni_id), &**p)).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The whole `nft -f` script for one VPC namespace. Deterministic: the same spec gives the
/// same text (so "unchanged" is a string comparison).
pub fn ruleset(vpc: &VpcSpec) -> String {
    let ports = sorted_ports(vpc);
    let nat = nat_pairs(vpc);
    let dns = dns_ip(vpc);

    // Every group with a chain or a set: the VPC's groups and any group a rule names.
    let mut members: BTreeMap<&str, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    for g in &vpc.groups {
        members.entry(&g.group_id).or_default().extend(g.remote_members.iter().copied());
        for r in g.ingress.iter().chain(&g.egress) {
            for (peer, _) in &r.groups {
                members.entry(peer).or_default();
            }
        }
    }
    for p in &vpc.ports {
        for g in &p.groups {
            members.entry(g).or_default().insert(p.ip);
        }
    }
    let mut groups: Vec<_> = vpc.groups.iter().collect();
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));

    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "# corral-net: security groups and NAT of {} ({}); generated, do not edit", vpc.vpc_id, vpc.cidr);
    let _ = writeln!(w, "table inet {TABLE}");
    let _ = writeln!(w, "delete table inet {TABLE}");
    let _ = writeln!(w, "table inet {TABLE} {{");

    // Sets and maps.
    let _ = write!(
        w,
        "\tset port-addrs {{\n\t\ttype ifname . ether_addr . ipv4_addr\n{}\t}}\n",
        elements(ports.iter().map(|(ifn, p)| format!("\"{ifn}\" . {} . {}", mac_to_string(&p.mac), p.ip)))
    );
    // Ports whose source/destination check is off: their MAC is checked, not their source IP.
    let _ = write!(
        w,
        "\tset port-forwarders {{\n\t\ttype ifname . ether_addr\n{}\t}}\n",
        elements(ports.iter().filter(|(_, p)| !p.source_dest_check).map(|(ifn, p)| format!("\"{ifn}\" . {}", mac_to_string(&p.mac))))
    );
    for (g, ips) in &members {
        let _ = write!(w, "\tset {g}-members {{\n\t\ttype ipv4_addr\n{}\t}}\n", elements(ips.iter().map(|ip| ip.to_string())));
    }
    let _ = write!(
        w,
        "\tmap port-egress {{\n\t\ttype ifname : verdict\n{}\t}}\n",
        elements(ports.iter().map(|(ifn, _)| format!("\"{ifn}\" : goto port-{ifn}-out")))
    );
    let _ = write!(
        w,
        "\tmap port-ingress {{\n\t\ttype ifname : verdict\n{}\t}}\n",
        elements(ports.iter().map(|(ifn, _)| format!("\"{ifn}\" : goto port-{ifn}-in")))
    );
    let _ = write!(
        w,
        "\tmap public-dnat {{\n\t\ttype ipv4_addr : ipv4_addr\n{}\t}}\n",
        elements(nat.iter().map(|(pr, pu)| format!("{pu} : {pr}")))
    );
    let _ = write!(
        w,
        "\tmap public-snat {{\n\t\ttype ipv4_addr : ipv4_addr\n{}\t}}\n",
        elements(nat.iter().map(|(pr, pu)| format!("{pr} : {pu}")))
    );
    let _ = write!(w, "\tset igw-private {{\n\t\ttype ipv4_addr\n{}\t}}\n", elements(nat.iter().map(|(pr, _)| pr.to_string())));

    // Group chains.
    for g in &groups {
        let _ = writeln!(w, "\tchain {}-in {{", g.group_id);
        for line in group_rules(&g.ingress, "saddr") {
            let _ = writeln!(w, "\t\t{line}");
        }
        let _ = writeln!(w, "\t}}");
        let _ = writeln!(w, "\tchain {}-out {{", g.group_id);
        for line in group_rules(&g.egress, "daddr") {
            let _ = writeln!(w, "\t\t{line}");
        }
        let _ = writeln!(w, "\t}}");
    }

    // Port chains: the port's groups in the order given, then drop.
    for (ifn, p) in &ports {
        for dir in ["in", "out"] {
            let _ = writeln!(w, "\tchain port-{ifn}-{dir} {{");
            for g in &p.groups {
                let _ = writeln!(w, "\t\tjump {g}-{dir}");
            }
            let _ = writeln!(w, "\t\tdrop");
            let _ = writeln!(w, "\t}}");
        }
    }

    let any_port = format!("\"{PORT_PREFIX}*\"");
    let ct = "ct state vmap { established : accept, related : accept, invalid : drop }";
    let _ = write!(
        w,
        "\tchain port-guard {{\n\t\ttype filter hook prerouting priority raw; policy accept;\n\
         \t\tiifname {any_port} meta nfproto != ipv4 drop\n\
         \t\tiifname {any_port} ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept\n\
         \t\tiifname {any_port} iifname . ether saddr @port-forwarders accept\n\
         \t\tiifname {any_port} iifname . ether saddr . ip saddr != @port-addrs drop\n\t}}\n"
    );
    let _ = write!(
        w,
        "\tchain local-in {{\n\t\ttype filter hook input priority filter; policy drop;\n\
         \t\t{ct}\n\
         \t\tiifname \"lo\" accept\n\
         \t\tiifname {any_port} udp sport 68 udp dport 67 accept\n\
         \t\tiifname {any_port} ip daddr {dns} udp dport 53 accept\n\
         \t\tiifname {any_port} ip daddr {dns} tcp dport 53 accept\n\
         \t\tiifname {any_port} ip daddr {METADATA_IP} tcp dport 80 accept\n\
         \t\tiifname {any_port} icmp type echo-request accept\n\t}}\n"
    );
    let _ = write!(
        w,
        "\tchain fwd-egress {{\n\t\ttype filter hook forward priority filter; policy drop;\n\
         \t\t{ct}\n\
         \t\tiifname vmap @port-egress\n\
         \t\tiifname {any_port} drop\n\
         \t\taccept\n\t}}\n"
    );
    let _ = write!(
        w,
        "\tchain fwd-ingress {{\n\t\ttype filter hook forward priority 10; policy drop;\n\
         \t\t{ct}\n\
         \t\toifname vmap @port-ingress\n\
         \t\toifname \"{UPLINK_IFNAME}\" ip saddr @igw-private accept\n\t}}\n"
    );
    let _ = write!(
        w,
        "\tchain nat-pre {{\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\
         \t\tiifname \"{UPLINK_IFNAME}\" dnat ip to ip daddr map @public-dnat\n\t}}\n"
    );
    let _ = write!(
        w,
        "\tchain nat-post {{\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\toifname \"{UPLINK_IFNAME}\" snat ip to ip saddr map @public-snat\n\t}}\n"
    );
    let _ = writeln!(w, "}}");
    s
}

#[cfg(test)]
mod tests;
