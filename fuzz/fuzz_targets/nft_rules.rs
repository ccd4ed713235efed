//! The nftables generator (`corral_net::nft::ruleset`): any set of security groups and ports in,
//! a ruleset that lets through exactly what the groups say out.
//!
//! The input builds a VPC that `corral_net::validate` accepts: up to 4 groups with ingress and
//! egress rules (tcp, udp, icmp, all, protocol numbers; port ranges and ICMP type/code as the
//! control plane sends them; peer CIDRs of any length, with or without host bits; peer groups,
//! listed or not; descriptions with any text), remote members, and up to 5 ports in those
//! groups, some with public IPs, in a subnet with or without an internet gateway. Then packets:
//! an in-interface (a port, the uplink, a port the ruleset does not know), an out-interface (a
//! port, the uplink), protocol, addresses, destination port, ICMP type and code, many picked at
//! the rules' edges.
//!
//! The generated text is parsed by the small evaluator in `nft_eval.rs`, which knows the nftables the
//! forward hook uses (base chains by priority, policies, `accept`/`drop`/`jump`/`goto`,
//! verdict maps, named sets, `ip saddr|daddr`, `meta l4proto`, `tcp|udp dport`, `icmp type|code`,
//! interface names with `*`); every packet is new (conntrack has not seen it). Its verdict must
//! equal the direct reading of the groups, as the module header of `nft.rs` describes it:
//!
//! ```text
//!   allowed = egress(in-interface) && ingress(out-interface)
//!   egress(port)  = some egress rule of one of its groups matches, the peer being daddr
//!   egress(uplink) = true;  egress(unknown port) = false
//!   ingress(port) = some ingress rule of one of its groups matches, the peer being saddr
//!   ingress(uplink) = saddr is the private IP of a port with a live public IP
//!   a rule matches = its protocol (and ports, or ICMP type and code; -1 or none: any) and a
//!                    peer CIDR containing the peer, or a peer group with the peer as member
//! ```
//!
//! Also: the text is deterministic, and every set, map and chain it names exists. With
//! `NFT_RULES_DUMP=DIR` every ruleset is written to DIR, for `nft -c -f` (RELIABILITY.md).

#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use arbitrary::{Result, Unstructured};
use corral_net::names::port_ifname;
use corral_net::nft::ruleset;
use corral_net::{validate, Cidr, DesiredNet, GroupSpec, NetConfig, PortLink, PortSpec, Protocol, RuleSpec, SubnetSpec, VpcSpec};
use libfuzzer_sys::fuzz_target;

// ---------------------------------------------------------------------------------------------
// The spec.

const GROUPS: usize = 4;
const UNLISTED_GROUP: &str = "sg-unlisted";

fn group_id(i: usize) -> String {
    format!("sg-{i:x}")
}

/// A port bound as the control plane sends it (`control/src/security_group.rs` `ports`, then
/// `control/src/host.rs` `rule_specs`): tcp/udp both bounds 0..=65535 with from <= to, or none;
/// icmp type and code each -1..=255 (type -1 with a code too, which the control plane refuses
/// but `RuleSpec` allows); all and numbers none (or, for numbers, anything: AWS ignores ports
/// for other protocols).
fn ports_of(u: &mut Unstructured<'_>, p: Protocol) -> Result<(Option<i32>, Option<i32>)> {
    let any = |u: &mut Unstructured<'_>| -> Result<Option<i32>> { Ok(if u.arbitrary()? { None } else { Some(-1) }) };
    Ok(match p {
        Protocol::Tcp | Protocol::Udp => {
            if u.ratio(1, 4)? {
                (any(u)?, any(u)?)
            } else {
                let (a, b): (u16, u16) =
                    if u.arbitrary()? { (u.arbitrary()?, u.arbitrary()?) } else { (u.int_in_range(0..=1024)?, u.int_in_range(0..=1024)?) };
                (Some(i32::from(a.min(b))), Some(i32::from(a.max(b))))
            }
        }
        Protocol::Icmp => {
            let one = |u: &mut Unstructured<'_>| -> Result<Option<i32>> {
                Ok(match u.int_in_range(0..=3)? {
                    0 => None,
                    1 => Some(-1),
                    _ => Some(i32::from(u.int_in_range(0..=16u8)? * if u.arbitrary()? { 1 } else { 15 })),
                })
            };
            (one(u)?, one(u)?)
        }
        Protocol::All => (None, None),
        Protocol::Number(n) if ![1, 6, 17].contains(&n) && u.ratio(1, 4)? => {
            (Some(u.int_in_range(-1..=65535)?), Some(u.int_in_range(-1..=65535)?))
        }
        Protocol::Number(_) => (None, None),
    })
}

fn description(u: &mut Unstructured<'_>) -> Result<Option<String>> {
    Ok(if u.ratio(1, 4)? { Some(u.arbitrary()?) } else { None })
}

fn rule(u: &mut Unstructured<'_>) -> Result<RuleSpec> {
    // As `Protocol::parse` gives them: 1, 6 and 17 are icmp, tcp and udp.
    let protocol = match u.int_in_range(0..=5)? {
        0 => Protocol::All,
        1 | 5 => Protocol::Tcp,
        2 => Protocol::Udp,
        3 => Protocol::Icmp,
        _ => match u.arbitrary::<u8>()? {
            1 => Protocol::Icmp,
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            n => Protocol::Number(n),
        },
    };
    let (from_port, to_port) = ports_of(u, protocol)?;
    let mut cidrs = Vec::new();
    for _ in 0..u.int_in_range(0..=2)? {
        let addr = if u.arbitrary()? { Ipv4Addr::from(u.arbitrary::<u32>()?) } else { Ipv4Addr::new(10, 0, 1, u.arbitrary()?) };
        let len = if u.arbitrary()? { u.int_in_range(0..=32)? } else { [0, 8, 16, 24, 30, 32][u.choose_index(6)?] };
        cidrs.push((Cidr::new(addr, len).expect("len <= 32"), description(u)?));
    }
    let mut groups = Vec::new();
    for _ in 0..u.int_in_range(0..=2)? {
        let g = u.int_in_range(0..=GROUPS)?;
        let id = if g == GROUPS { UNLISTED_GROUP.to_string() } else { group_id(g) };
        groups.push((id, description(u)?));
    }
    Ok(RuleSpec { protocol, from_port, to_port, cidrs, groups })
}

fn vpc(u: &mut Unstructured<'_>) -> Result<VpcSpec> {
    let n_groups = u.int_in_range(1..=GROUPS)?;
    let mut groups = Vec::new();
    for i in 0..n_groups {
        let mut ingress = Vec::new();
        for _ in 0..u.int_in_range(0..=3)? {
            ingress.push(rule(u)?);
        }
        let mut egress = Vec::new();
        for _ in 0..u.int_in_range(0..=3)? {
            egress.push(rule(u)?);
        }
        let mut remote_members = Vec::new();
        for _ in 0..u.int_in_range(0..=2)? {
            remote_members.push(Ipv4Addr::new(10, 0, u.int_in_range(1..=2)?, u.arbitrary()?));
        }
        groups.push(GroupSpec { group_id: group_id(i), ingress, egress, remote_members });
    }
    let mut ports = Vec::new();
    let mut used = BTreeSet::new();
    for i in 0..u.int_in_range(1..=5usize)? {
        let (subnet, third) = if u.ratio(1, 4)? { ("subnet-b", 2) } else { ("subnet-a", 1) };
        let host = u.int_in_range(4..=254u8)?;
        if !used.insert((third, host)) {
            continue;
        }
        let mut in_groups = Vec::new();
        for _ in 0..u.int_in_range(0..=2)? {
            in_groups.push(group_id(u.choose_index(n_groups)?));
        }
        ports.push(Arc::new(PortSpec {
            eni_id: format!("eni-{:017x}", 0xa00 + i),
            instance_id: format!("i-{:017x}", 0xa00 + i),
            subnet_id: subnet.into(),
            mac: [2, 0, 0, 0, third, host],
            ip: Ipv4Addr::new(10, 0, third, host),
            hostname: format!("ip-10-0-{third}-{host}"),
            public_ip: if u.arbitrary()? { Some(Ipv4Addr::new(198, 51, 100, 10 + i as u8)) } else { None },
            groups: in_groups,
            link: PortLink::Tap,
            source_dest_check: u.arbitrary()?,
        }));
    }
    Ok(VpcSpec {
        vpc_id: "vpc-1".into(),
        cidr: "10.0.0.0/16".parse().expect("valid"),
        subnets: vec![
            SubnetSpec { subnet_id: "subnet-a".into(), cidr: "10.0.1.0/24".parse().expect("valid"), routes_to_igw: u.arbitrary()? },
            SubnetSpec { subnet_id: "subnet-b".into(), cidr: "10.0.2.0/24".parse().expect("valid"), routes_to_igw: false },
        ],
        ports: ports.into(),
        groups,
        routes: vec![],
    })
}

// ---------------------------------------------------------------------------------------------
// The direct reading of the spec.

#[derive(Debug, Clone, Copy)]
pub(crate) struct Packet {
    proto: u8,
    saddr: Ipv4Addr,
    daddr: Ipv4Addr,
    dport: u16,
    icmp_type: u8,
    icmp_code: u8,
}

pub(crate) const TCP: u8 = 6;
pub(crate) const UDP: u8 = 17;
pub(crate) const ICMP: u8 = 1;

/// `None` and -1 mean "any".
fn bound(p: Option<i32>) -> Option<i32> {
    p.filter(|&p| p >= 0)
}

fn rule_matches(r: &RuleSpec, pkt: &Packet, peer: Ipv4Addr, members: &BTreeMap<String, BTreeSet<Ipv4Addr>>) -> bool {
    let proto = match r.protocol {
        Protocol::All => true,
        Protocol::Tcp | Protocol::Udp => {
            let want = if r.protocol == Protocol::Tcp { TCP } else { UDP };
            let in_range = match (bound(r.from_port), bound(r.to_port)) {
                (None, None) => true,
                (Some(f), Some(t)) => (f..=t).contains(&i32::from(pkt.dport)),
                _ => unreachable!("the control plane sends both bounds or neither"),
            };
            pkt.proto == want && in_range
        }
        Protocol::Icmp => {
            pkt.proto == ICMP
                && bound(r.from_port).is_none_or(|t| t == i32::from(pkt.icmp_type))
                && bound(r.to_port).is_none_or(|c| c == i32::from(pkt.icmp_code))
        }
        Protocol::Number(n) => pkt.proto == n,
    };
    let peer_ok =
        r.cidrs.iter().any(|(c, _)| c.contains(peer)) || r.groups.iter().any(|(g, _)| members.get(g).is_some_and(|m| m.contains(&peer)));
    proto && peer_ok
}

fn members(vpc: &VpcSpec) -> BTreeMap<String, BTreeSet<Ipv4Addr>> {
    let mut m: BTreeMap<String, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    for g in &vpc.groups {
        m.entry(g.group_id.clone()).or_default().extend(g.remote_members.iter().copied());
    }
    for p in vpc.ports.iter() {
        for g in &p.groups {
            m.entry(g.clone()).or_default().insert(p.ip);
        }
    }
    m
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Iface {
    Port(usize),
    Uplink,
    /// A `tp...` interface that is no port of the spec.
    Stranger,
}

fn ifname(vpc: &VpcSpec, i: Iface) -> String {
    match i {
        Iface::Port(p) => port_ifname(&vpc.ports[p].eni_id),
        Iface::Uplink => "up0".into(),
        Iface::Stranger => "tpffffffffffff".into(),
    }
}

fn reference(vpc: &VpcSpec, members: &BTreeMap<String, BTreeSet<Ipv4Addr>>, from: Iface, to: Iface, pkt: &Packet) -> bool {
    let group = |id: &str| vpc.groups.iter().find(|g| g.group_id == id).expect("validated");
    let egress = match from {
        Iface::Port(p) => vpc.ports[p].groups.iter().any(|g| group(g).egress.iter().any(|r| rule_matches(r, pkt, pkt.daddr, members))),
        Iface::Uplink => true,
        Iface::Stranger => false,
    };
    let ingress = match to {
        Iface::Port(p) => vpc.ports[p].groups.iter().any(|g| group(g).ingress.iter().any(|r| rule_matches(r, pkt, pkt.saddr, members))),
        Iface::Uplink => vpc.ports.iter().any(|p| {
            p.ip == pkt.saddr && p.public_ip.is_some() && vpc.subnets.iter().any(|s| s.subnet_id == p.subnet_id && s.routes_to_igw)
        }),
        Iface::Stranger => unreachable!("not an out-interface here"),
    };
    egress && ingress
}

// The evaluator of the generated text is in `nft_eval.rs`.
mod nft_eval;
use nft_eval::{check_references, forward, parse, Flow};

// ---------------------------------------------------------------------------------------------
// Packets.

/// Addresses worth trying: the ports', the members', every rule CIDR's edges.
fn interesting(vpc: &VpcSpec) -> Vec<Ipv4Addr> {
    let mut v: Vec<Ipv4Addr> = vpc.ports.iter().map(|p| p.ip).collect();
    for g in &vpc.groups {
        v.extend(&g.remote_members);
        for r in g.ingress.iter().chain(&g.egress) {
            for (c, _) in &r.cidrs {
                let lo = u32::from(c.network_addr());
                let hi = lo.wrapping_add((c.size() - 1) as u32);
                for a in [lo.wrapping_sub(1), lo, hi, hi.wrapping_add(1)] {
                    v.push(Ipv4Addr::from(a));
                }
            }
        }
    }
    v.push(Ipv4Addr::new(8, 8, 8, 8));
    v
}

/// Destination ports worth trying: every range's edges.
fn edges(vpc: &VpcSpec) -> Vec<u16> {
    let mut v = vec![0, 22, 65535];
    for g in &vpc.groups {
        for r in g.ingress.iter().chain(&g.egress) {
            for p in [r.from_port, r.to_port].into_iter().flatten() {
                for q in [p - 1, p, p + 1] {
                    if let Ok(q) = u16::try_from(q) {
                        v.push(q);
                    }
                }
            }
        }
    }
    v
}

fn iface(u: &mut Unstructured<'_>, vpc: &VpcSpec, outgoing: bool) -> Result<Iface> {
    let n = vpc.ports.len();
    let k = u.int_in_range(0..=n + if outgoing { 0 } else { 1 })?;
    Ok(if k < n {
        Iface::Port(k)
    } else if k == n {
        Iface::Uplink
    } else {
        Iface::Stranger
    })
}

fn packet(u: &mut Unstructured<'_>, vpc: &VpcSpec, from: Iface, to: Iface, addrs: &[Ipv4Addr], ports: &[u16]) -> Result<Packet> {
    let own = |i: Iface, u: &mut Unstructured<'_>| -> Result<Ipv4Addr> {
        Ok(match i {
            Iface::Port(p) if !u.ratio(1, 3)? => vpc.ports[p].ip,
            _ if u.arbitrary()? => Ipv4Addr::from(u.arbitrary::<u32>()?),
            _ => addrs[u.choose_index(addrs.len())?],
        })
    };
    let saddr = own(from, u)?;
    let daddr = own(to, u)?;
    let proto = match u.int_in_range(0..=4)? {
        0 | 4 => TCP,
        1 => UDP,
        2 => ICMP,
        _ => u.arbitrary()?,
    };
    let dport = if u.arbitrary()? { ports[u.choose_index(ports.len())?] } else { u.arbitrary()? };
    let small = |u: &mut Unstructured<'_>| -> Result<u8> { Ok(if u.arbitrary()? { u.int_in_range(0..=16)? } else { u.arbitrary()? }) };
    Ok(Packet { proto, saddr, daddr, dport, icmp_type: small(u)?, icmp_code: small(u)? })
}

/// `NFT_RULES_DUMP=DIR`: write every generated ruleset there.
static DUMP: std::sync::LazyLock<Option<std::ffi::OsString>> = std::sync::LazyLock::new(|| std::env::var_os("NFT_RULES_DUMP"));

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let vpc = vpc(u)?;
    let desired = DesiredNet { vpcs: vec![vpc.clone()] };
    if validate(&desired, &NetConfig::new("/nonexistent")).is_err() {
        return Ok(());
    }
    let text = ruleset(&vpc);
    assert_eq!(text, ruleset(&vpc), "not deterministic");
    if let Some(dir) = &*DUMP {
        // For checking the texts with `nft -c -f` outside the fuzzer (RELIABILITY.md).
        let name = format!("{:016x}.nft", text.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3)));
        std::fs::write(std::path::Path::new(dir).join(name), &text).expect("dump");
    }
    let rs = parse(&text);
    check_references(&rs);

    let members = members(&vpc);
    let addrs = interesting(&vpc);
    let ports = edges(&vpc);
    for _ in 0..24 {
        if u.is_empty() {
            break;
        }
        let from = iface(u, &vpc, false)?;
        let to = iface(u, &vpc, true)?;
        let pkt = packet(u, &vpc, from, to, &addrs, &ports)?;
        let (iif, oif) = (ifname(&vpc, from), ifname(&vpc, to));
        let got = forward(&rs, &Flow { iif: &iif, oif: &oif, pkt });
        let want = reference(&vpc, &members, from, to, &pkt);
        assert_eq!(got, want, "{iif} -> {oif} {pkt:?}: the ruleset says {got}, the groups say {want}\n{:#?}\n{text}", vpc.groups);
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
