//! The desired network state of one host, as the control plane sends it to the agent: VPCs
//! with their subnets, ports (instance interfaces) and security groups. Plain data; the agent's
//! data path (`corral-net`) validates and applies it.

use std::net::Ipv4Addr;
use std::sync::Arc;

/// The workspace's one IPv4 prefix type, for every CIDR of the desired state.
pub use corral_types::Cidr;

/// Everything that should exist on this host. What is not here is removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredNet {
    pub vpcs: Vec<VpcSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcSpec {
    pub vpc_id: String,
    pub cidr: Cidr,
    pub subnets: Vec<SubnetSpec>,
    /// The ports of this VPC on this host. A VPC with none gets no namespace here. A
    /// persistent vector of shared ports: a desired state that changed in one port costs one
    /// port to build and shares the rest with the one before.
    pub ports: imbl::Vector<Arc<PortSpec>>,
    /// Every group a port here belongs to, and every group a rule here names (a group with no
    /// local member may still be referenced: its `remote_members` fill its set).
    pub groups: Vec<GroupSpec>,
    /// Routes through an instance (a NAT instance, a router): traffic for `destination` goes
    /// to that port, whose instance forwards it (its source/destination check off).
    pub routes: Vec<PortRoute>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRoute {
    pub destination: Cidr,
    /// A port of this VPC on this host.
    pub eni_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetSpec {
    pub subnet_id: String,
    pub cidr: Cidr,
    /// The subnet's route table sends 0.0.0.0/0 to an internet gateway attached to the VPC:
    /// only then do its ports' public IPs work.
    pub routes_to_igw: bool,
}

/// How a port's link is made. QEMU guests get a tap; tests simulate a guest with a veth
/// whose other end sits in a namespace the test made.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PortLink {
    #[default]
    Tap,
    /// A veth pair: the port end in the VPC namespace (named like a tap), the other end named
    /// `peer_ifname` in the existing namespace `peer_netns`, carrying the port's MAC.
    Veth { peer_netns: String, peer_ifname: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub eni_id: String,
    pub instance_id: String,
    pub subnet_id: String,
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    /// The instance's host name as DNS and DHCP give it (e.g. `ip-10-0-1-5`, or a custom
    /// one); EC2's private DNS name is always served as well.
    pub hostname: String,
    /// Served 1:1 NAT to `ip` when the subnet routes to an internet gateway.
    pub public_ip: Option<Ipv4Addr>,
    /// Security group ids, at least one (a port in no group passes nothing).
    pub groups: Vec<String>,
    pub link: PortLink,
    /// EC2's source/destination check: when off, the port may send packets from any address
    /// (its MAC still checked), so its instance can forward traffic that is not its own.
    pub source_dest_check: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    pub group_id: String,
    pub ingress: Vec<RuleSpec>,
    pub egress: Vec<RuleSpec>,
    /// Members on other hosts (their private IPs); local members come from the ports.
    pub remote_members: Vec<Ipv4Addr>,
}

/// EC2's `IpProtocol`: `-1` (all), `tcp`, `udp`, `icmp`, or a protocol number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    All,
    Tcp,
    Udp,
    Icmp,
    Number(u8),
}

impl Protocol {
    /// Parses EC2's spelling: `-1`, `tcp`/`6`, `udp`/`17`, `icmp`/`1`, or a number.
    pub fn parse(s: &str) -> Option<Protocol> {
        match s.to_ascii_lowercase().as_str() {
            "-1" | "all" => Some(Protocol::All),
            "tcp" | "6" => Some(Protocol::Tcp),
            "udp" | "17" => Some(Protocol::Udp),
            "icmp" | "1" => Some(Protocol::Icmp),
            other => other.parse::<u8>().ok().map(Protocol::Number),
        }
    }
}

/// One permission of a group. For tcp/udp `from_port..=to_port` is the port range (`None`,
/// `-1`, or 0..65535: all); for icmp `from_port` is the ICMP type and `to_port` the code
/// (`-1`: any), as in EC2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    pub protocol: Protocol,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    /// Peer CIDRs with their descriptions (they become nftables comments).
    pub cidrs: Vec<(Cidr, Option<String>)>,
    /// Peer security groups (matched through their member sets), with descriptions.
    pub groups: Vec<(String, Option<String>)>,
}

/// What `apply` did, for logs and for the agent's report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetReport {
    pub vpcs: Vec<VpcReport>,
    /// Namespaces, links and processes removed because nothing wanted them.
    pub removed: Vec<String>,
    /// Things that are not errors but deserve a log line (e.g. a namespace that still holds
    /// processes after its last port went).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcReport {
    pub vpc_id: String,
    pub netns: String,
    /// `(eni_id, link name)` per port.
    pub ports: Vec<(String, String)>,
}

/// `02:00:00:aa:bb:cc` form.
pub fn mac_to_string(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Parses `02:00:00:aa:bb:cc`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in out.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// EC2's private DNS name of an address: `ip-10-0-1-5.<region>.compute.internal`.
pub fn private_dns_name(ip: Ipv4Addr, region: &str) -> String {
    let o = ip.octets();
    format!("ip-{}-{}-{}-{}.{region}.compute.internal", o[0], o[1], o[2], o[3])
}
