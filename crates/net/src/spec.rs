//! The plain-data description of what the network on this host should look like, as the
//! control plane sends it, plus its validation. No store knowledge, no host access.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::NetError;

/// Host-wide settings of the data path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// Every namespace this driver owns is `<ns_prefix><vpc-id>`; anything else is never
    /// touched. Tests use a unique prefix each.
    pub ns_prefix: String,
    /// One directory per VPC namespace under it: dnsmasq's config, hosts files, pid file, log,
    /// and the last nftables script applied.
    pub state_dir: PathBuf,
    /// For EC2-style private names: `ip-10-0-1-5.<region>.compute.internal`.
    pub region: String,
    /// Addresses public and elastic IPs are drawn from (by the control plane). Only used here
    /// to check what it sends. Default: 198.51.100.0/24 (TEST-NET-2, never routed outward).
    pub public_pool: Cidr,
    /// One /31 per VPC namespace is taken from it for the host<->namespace veth link.
    pub link_pool: Cidr,
    /// The host interface towards the outside world. `None` (the default, and always in
    /// tests): no instance has any path out. Not implemented beyond refusing to start.
    pub uplink: Option<String>,
    /// The namespace that plays "the host" (holds the host end of each VPC's veth and the
    /// routes to public IPs). `None`: the host's own namespace. Tests name one they created.
    pub host_netns: Option<String>,
    /// MTU handed out by DHCP: 1450 leaves room for the VXLAN overlay between hosts.
    pub mtu: u16,
    /// TCP ports on the host itself that guests may reach through their VPC's link (none by
    /// default: everything a guest sends to the host is dropped, replies to the host's own
    /// connections excepted).
    pub guest_host_tcp_ports: Vec<u16>,
}

/// Where the driver of a cloud whose (region's) state lives in `state_dir` keeps what dnsmasq
/// reads (its configuration and host files, re-read as `nobody` on every change): under
/// `/run/corral`, outside the state directory, which stays private to its owner (0700).
/// Runtime, like the namespaces it serves: both are gone after a reboot and made again by the
/// first apply. One directory per state directory (a hash of its absolute path), so two
/// clouds on one host never share one.
pub fn runtime_dir(state_dir: &std::path::Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let abs = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let mut h: u64 = 0xcbf29ce484222325;
    for b in abs.as_os_str().as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    PathBuf::from("/run/corral").join(format!("net-{h:016x}"))
}

impl NetConfig {
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        NetConfig {
            ns_prefix: "corral-".into(),
            state_dir: state_dir.into(),
            region: "local-1".into(),
            public_pool: Cidr::new(Ipv4Addr::new(198, 51, 100, 0), 24).expect("valid"),
            link_pool: Cidr::new(Ipv4Addr::new(100, 127, 0, 0), 16).expect("valid"),
            uplink: None,
            host_netns: None,
            mtu: 1450,
            guest_host_tcp_ports: Vec::new(),
        }
    }
}

pub use corral_agent_api::net::{
    mac_to_string, parse_mac, private_dns_name, Cidr, DesiredNet, GroupSpec, NetReport, PortLink, PortRoute, PortSpec, Protocol, RuleSpec,
    SubnetSpec, VpcReport, VpcSpec,
};

/// Ids end up in interface names, nftables identifiers and file names: only letters, digits
/// and `-`, starting with a letter, at most 64 characters.
pub(crate) fn check_id(kind: &str, id: &str) -> Result<(), NetError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.as_bytes()[0].is_ascii_alphabetic()
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(NetError::Invalid(format!("{kind} id `{id}` must be letters, digits and '-', starting with a letter")))
    }
}

/// Group ids name nftables chains and sets (`<id>-in`, `<id>-members`); requiring EC2's
/// `sg-` keeps them apart from the per-port chains (`port-...`).
fn check_group_id(id: &str) -> Result<(), NetError> {
    check_id("security group", id)?;
    if id.starts_with("sg-") {
        Ok(())
    } else {
        Err(NetError::Invalid(format!("security group id `{id}` must start with `sg-`")))
    }
}

/// A DNS label sequence: letters, digits, `-` and `.`, 1..=253 characters.
fn check_hostname(name: &str) -> Result<(), NetError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !name.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(NetError::Invalid(format!("host name `{name}` is not a DNS name")))
    }
}

fn check_port_range(rule: &RuleSpec, what: &str) -> Result<(), NetError> {
    let in_range = |p: Option<i32>, max: i32| p.is_none_or(|p| (-1..=max).contains(&p));
    let ok = match rule.protocol {
        Protocol::Tcp | Protocol::Udp => {
            in_range(rule.from_port, 65535)
                && in_range(rule.to_port, 65535)
                && match (rule.from_port, rule.to_port) {
                    (Some(f), Some(t)) if f >= 0 && t >= 0 => f <= t,
                    _ => true,
                }
        }
        Protocol::Icmp => in_range(rule.from_port, 255) && in_range(rule.to_port, 255),
        Protocol::All | Protocol::Number(_) => true,
    };
    if ok {
        Ok(())
    } else {
        Err(NetError::Invalid(format!("{what}: bad port range {:?}..{:?}", rule.from_port, rule.to_port)))
    }
}

/// Checks everything the host side relies on: ids safe to embed, ports inside their
/// subnets, subnets inside their VPC, unique VPCs/ports/IPs/MACs, known groups.
pub fn validate(desired: &DesiredNet, config: &NetConfig) -> Result<(), NetError> {
    {
        let mut vpc_ids = HashSet::new();
        let mut eni_ids = HashSet::new();
        let mut public = HashSet::new();
        for vpc in &desired.vpcs {
            check_id("VPC", &vpc.vpc_id)?;
            if !vpc_ids.insert(&vpc.vpc_id) {
                return Err(NetError::Invalid(format!("VPC {} given twice", vpc.vpc_id)));
            }
            if vpc.cidr.prefix_len() > 28 || vpc.cidr.prefix_len() < 8 {
                return Err(NetError::Invalid(format!("VPC {} CIDR {} must be /8../28", vpc.vpc_id, vpc.cidr)));
            }
            for s in &vpc.subnets {
                check_id("subnet", &s.subnet_id)?;
                if !vpc.cidr.contains_cidr(&s.cidr) || s.cidr.prefix_len() > 28 {
                    return Err(NetError::Invalid(format!("subnet {} {} is not a /28 or larger inside {}", s.subnet_id, s.cidr, vpc.cidr)));
                }
            }
            let mut group_ids = HashSet::new();
            for g in &vpc.groups {
                check_group_id(&g.group_id)?;
                if !group_ids.insert(g.group_id.as_str()) {
                    return Err(NetError::Invalid(format!("group {} given twice", g.group_id)));
                }
            }
            for g in &vpc.groups {
                for r in g.ingress.iter().chain(&g.egress) {
                    check_port_range(r, &g.group_id)?;
                    for (peer, _) in &r.groups {
                        check_group_id(peer)?;
                    }
                }
            }
            let mut ips = HashSet::new();
            let mut macs = HashSet::new();
            for p in &vpc.ports {
                check_id("ENI", &p.eni_id)?;
                check_id("instance", &p.instance_id)?;
                check_hostname(&p.hostname)?;
                if !eni_ids.insert(&p.eni_id) {
                    return Err(NetError::Invalid(format!("ENI {} given twice", p.eni_id)));
                }
                let subnet = vpc
                    .subnets
                    .iter()
                    .find(|s| s.subnet_id == p.subnet_id)
                    .ok_or_else(|| NetError::Invalid(format!("ENI {} names unknown subnet {}", p.eni_id, p.subnet_id)))?;
                // EC2 reserves the first four addresses and the last one of every subnet.
                let off = u32::from(p.ip).wrapping_sub(u32::from(subnet.cidr.network_addr()));
                if !subnet.cidr.contains(p.ip) || off < 4 || u64::from(off) == subnet.cidr.size() - 1 {
                    return Err(NetError::Invalid(format!("ENI {} address {} is not usable in {}", p.eni_id, p.ip, subnet.cidr)));
                }
                if !ips.insert(p.ip) || !macs.insert(p.mac) {
                    return Err(NetError::Invalid(format!("ENI {} repeats an address or MAC in {}", p.eni_id, vpc.vpc_id)));
                }
                if p.mac[0] & 1 == 1 {
                    return Err(NetError::Invalid(format!("ENI {} MAC is multicast", p.eni_id)));
                }
                for g in &p.groups {
                    if !group_ids.contains(g.as_str()) {
                        return Err(NetError::Invalid(format!("ENI {} is in group {g} that the VPC does not list", p.eni_id)));
                    }
                }
                if let Some(pub_ip) = p.public_ip {
                    if !config.public_pool.contains(pub_ip) {
                        return Err(NetError::Invalid(format!(
                            "ENI {} public IP {pub_ip} is outside the pool {}",
                            p.eni_id, config.public_pool
                        )));
                    }
                    if !public.insert(pub_ip) {
                        return Err(NetError::Invalid(format!("public IP {pub_ip} given twice")));
                    }
                }
            }
            for r in &vpc.routes {
                if !vpc.ports.iter().any(|p| p.eni_id == r.eni_id) {
                    return Err(NetError::Invalid(format!("route to {} names {}, not a port of {}", r.destination, r.eni_id, vpc.vpc_id)));
                }
                if !r.destination.is_network() {
                    return Err(NetError::Invalid(format!("route destination {} has host bits set", r.destination)));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let m = [2, 0, 0, 0xab, 0xcd, 0xef];
        assert_eq!(mac_to_string(&m), "02:00:00:ab:cd:ef");
        assert_eq!(parse_mac("02:00:00:ab:cd:ef"), Some(m));
        assert_eq!(parse_mac("02:00:00:ab:cd"), None);
        assert_eq!(parse_mac("02:00:00:ab:cd:ef:01"), None);
    }

    #[test]
    fn protocol_spellings() {
        assert_eq!(Protocol::parse("-1"), Some(Protocol::All));
        assert_eq!(Protocol::parse("TCP"), Some(Protocol::Tcp));
        assert_eq!(Protocol::parse("17"), Some(Protocol::Udp));
        assert_eq!(Protocol::parse("47"), Some(Protocol::Number(47)));
        assert_eq!(Protocol::parse("gre"), None);
    }

    #[test]
    fn private_names() {
        assert_eq!(private_dns_name(Ipv4Addr::new(10, 0, 1, 5), "local-1"), "ip-10-0-1-5.local-1.compute.internal");
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_id("x", "sg-0123abc").is_ok());
        for bad in ["", "0abc", "sg_1", "sg-1;drop", "sg 1", "sg-\"1"] {
            assert!(check_id("x", bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod validate_tests {
    use super::*;

    fn base() -> DesiredNet {
        DesiredNet {
            vpcs: vec![VpcSpec {
                vpc_id: "vpc-1".into(),
                cidr: "10.0.0.0/16".parse().unwrap(),
                subnets: vec![SubnetSpec { subnet_id: "subnet-1".into(), cidr: "10.0.1.0/24".parse().unwrap(), routes_to_igw: true }],
                ports: vec![std::sync::Arc::new(PortSpec {
                    eni_id: "eni-1".into(),
                    instance_id: "i-1".into(),
                    subnet_id: "subnet-1".into(),
                    mac: [2, 0, 0, 0, 0, 5],
                    ip: Ipv4Addr::new(10, 0, 1, 5),
                    hostname: "ip-10-0-1-5".into(),
                    public_ip: Some(Ipv4Addr::new(198, 51, 100, 5)),
                    groups: vec!["sg-1".into()],
                    link: PortLink::Tap,
                    source_dest_check: true,
                })]
                .into(),
                groups: vec![GroupSpec { group_id: "sg-1".into(), ingress: vec![], egress: vec![], remote_members: vec![] }],
                routes: vec![],
            }],
        }
    }

    fn rejects(f: impl FnOnce(&mut DesiredNet)) -> String {
        let mut d = base();
        f(&mut d);
        validate(&d, &NetConfig::new("/s")).expect_err("should be rejected").to_string()
    }

    #[test]
    fn accepts_a_sane_spec() {
        validate(&base(), &NetConfig::new("/s")).unwrap();
    }

    #[test]
    fn rejects_what_the_host_side_cannot_take() {
        rejects(|d| std::sync::Arc::make_mut(&mut d.vpcs[0].ports[0]).ip = Ipv4Addr::new(10, 0, 2, 5));
        rejects(|d| std::sync::Arc::make_mut(&mut d.vpcs[0].ports[0]).ip = Ipv4Addr::new(10, 0, 1, 1)); // reserved
        rejects(|d| std::sync::Arc::make_mut(&mut d.vpcs[0].ports[0]).ip = Ipv4Addr::new(10, 0, 1, 255)); // broadcast
        rejects(|d| std::sync::Arc::make_mut(&mut d.vpcs[0].ports[0]).subnet_id = "subnet-x".into());
        rejects(|d| std::sync::Arc::make_mut(&mut d.vpcs[0].ports[0]).groups = vec!["sg-unknown".into()]);
        rejects(|d| std::sync::Arc::make_mut(&mut d.vpcs[0].ports[0]).public_ip = Some(Ipv4Addr::new(8, 8, 8, 8)));
        rejects(|d| std::sync::Arc::make_mut(&mut d.vpcs[0].ports[0]).hostname = "a b".into());
        rejects(|d| std::sync::Arc::make_mut(&mut d.vpcs[0].ports[0]).mac = [1, 0, 0, 0, 0, 5]);
        rejects(|d| d.vpcs[0].subnets[0].cidr = "10.1.0.0/24".parse().unwrap());
        rejects(|d| d.vpcs[0].groups[0].group_id = "web".into());
        rejects(|d| d.vpcs[0].vpc_id = "vpc 1".into());
        rejects(|d| {
            let v = d.vpcs[0].clone();
            d.vpcs.push(v)
        });
        let msg = rejects(|d| {
            let mut p = (*d.vpcs[0].ports[0]).clone();
            p.eni_id = "eni-2".into();
            p.mac = [2, 0, 0, 0, 0, 6];
            p.public_ip = None;
            d.vpcs[0].ports.push_back(std::sync::Arc::new(p));
        });
        assert!(msg.contains("repeats"), "{msg}");
        rejects(|d| {
            d.vpcs[0].groups[0].ingress.push(RuleSpec {
                protocol: Protocol::Tcp,
                from_port: Some(90),
                to_port: Some(80),
                cidrs: vec![],
                groups: vec![],
            })
        });
    }
}
