//! `corral-net`: the agent's data path for VPCs on one host. It turns a plain description of
//! the VPCs, ports and security groups wanted on this host ([`DesiredNet`]) into kernel state,
//! and removes whatever is not wanted, idempotently ([`NetDriver::apply`]).
//!
//! ```text
//!   host namespace (or NetConfig::host_netns in tests)
//!     cv<hash> ──veth── up0 ┐   198.51.100.7/32 via <ns end>   (public IPs whose subnet routes to an IGW)
//!                           │
//!   namespace <prefix><vpc-id>   ip_forward=1, nftables table inet corral, dnsmasq
//!     lo: 10.0.0.2/32 (DNS)  169.254.169.254/32 (metadata)
//!     tpXXXXXXXXXXXX  10.0.1.1/32 (subnet gateway), proxy_arp, route 10.0.1.5/32 ──> guest (QEMU tap or test veth)
//!     tpYYYYYYYYYYYY  10.0.1.1/32,                   route 10.0.1.6/32 ──> guest
//! ```
//!
//! Decisions and their reasons:
//! - **One namespace per VPC per host** (`<prefix><vpc-id>`): full isolation, overlapping CIDRs
//!   allowed, and a conntrack table per VPC (HOST-NOTES: overlapping VPCs sharing conntrack
//!   open holes).
//! - **Routed, not bridged, ports**: each port is a point-to-point link with a /32 route to
//!   the instance, so `iifname`/`oifname` in nftables name the port (with a bridge, `inet`
//!   rules see the bridge). ARP: the subnet gateway `.1` is a /32 address on every port
//!   (answered as a local address), other instances are answered by `proxy_arp` with
//!   `proxy_delay=0` (otherwise the first packet waits about 0.5 s). ARP spoofing by a guest
//!   is harmless: neighbour entries are per port and forwarding follows the /32 routes.
//! - **The gateway address sits on each port, not on `lo`**: dnsmasq answers DHCP only on an
//!   interface that has an address inside the range's network (with the explicit netmask of
//!   `dhcp-range=...,static,<mask>`, a /32 gateway qualifies). Measured: a lease in well under a
//!   second. DNS (`VPC base + 2`, AmazonProvidedDNS) and metadata (169.254.169.254) sit on `lo`.
//! - **dnsmasq, one per VPC namespace**, static leases only (`dhcp-hostsfile`), names from an
//!   `addn-hosts` file (A and PTR for `ip-a-b-c-d.<region>.compute.internal`, the short name
//!   and the instance hostname), no upstream (`no-resolv`), unknown names under
//!   `<region>.compute.internal` answered NXDOMAIN locally. It runs inside the namespace so it
//!   cannot listen anywhere else, and nftables admits DHCP/DNS from ports only. Additions are
//!   applied with SIGHUP (it re-reads both files); a removal restarts it, because dnsmasq keeps
//!   a removed host's lease in memory and would refuse the address to a new MAC.
//!   `leasefile-ro`: leases are a pure function of the spec, so nothing is stored.
//! - **nftables**: one table per namespace, regenerated whole by a pure function
//!   ([`nft::ruleset`]) and applied in one `nft -f` transaction; see [`nft`] for the layout.
//! - **Public and elastic IPs**: 1:1 NAT in the namespace (maps `public-dnat`/`public-snat`)
//!   for ports whose subnet routes to an internet gateway; the host gets a /32 route per such
//!   address over the VPC's veth (a /31 from `link_pool`). Every VPC namespace also gets /32
//!   routes to all live public IPs on this host (so instances reach each other's public IPs,
//!   source-NATed to their own), and **no default route**: without an uplink there is no path
//!   out, not even for unassigned pool addresses. The host's own forwarding setting is not
//!   touched (instance-to-public-IP-in-another-VPC needs it on; host-to-instance does not).
//! - **Metadata service hook**: 169.254.169.254/32 sits on `lo` of every VPC namespace and the
//!   `local-in` chain admits TCP 80 to it from ports only, so the metadata service (not in this
//!   crate) can listen there inside the namespace and identify the caller by source IP, which
//!   the `port-guard` chain makes trustworthy (MAC + IP + port must match).
//! - **Uplink**: not implemented; [`LinuxNet::new`] refuses a config naming one, so no
//!   instance can get a path out by accident.
//! - **Convergence**: [`NetDriver::apply`] takes the full desired state and converges: what is
//!   missing is created, what is not desired (namespaces with our prefix, ports, dnsmasq, state
//!   directories) is removed. Kernel state is the record; nothing else is persisted except the
//!   files dnsmasq reads and its pid file, which is only trusted when `/proc/<pid>/cmdline`
//!   names our config file.

mod dnsmasq;
mod fake;
mod host;
pub mod host_guard;
mod linux;
pub mod names;
pub mod nft;
mod spec;

pub use corral_exec::ExecError;
pub use fake::FakeNet;
pub use linux::LinuxNet;
pub use spec::{
    mac_to_string, parse_mac, private_dns_name, runtime_dir, validate, Cidr, DesiredNet, GroupSpec, NetConfig, NetReport, PortLink,
    PortRoute, PortSpec, Protocol, RuleSpec, SubnetSpec, VpcReport, VpcSpec,
};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("invalid network spec: {0}")]
    Invalid(String),
    #[error("{context}")]
    Exec {
        context: String,
        #[source]
        source: ExecError,
    },
    #[error("{context}: {path}")]
    Io {
        context: String,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("uplink `{0}` is configured, but uplink NAT is not implemented")]
    UplinkUnsupported(String),
    #[error("injected failure: {0}")]
    Injected(String),
}

/// The data path as the agent sees it. Real: [`LinuxNet`]; fake: [`FakeNet`].
#[async_trait::async_trait]
pub trait NetDriver: Send + Sync {
    /// Converges the host to `desired` (everything on this host; what is absent is removed).
    /// Idempotent; safe to call after a crash, on a timer, and concurrently (calls serialise).
    async fn apply(&self, desired: &DesiredNet) -> Result<NetReport, NetError>;
    /// The namespace QEMU for an instance of this VPC must run in.
    fn netns_for(&self, vpc_id: &str) -> String;
    /// The tap QEMU must attach to for this ENI (created by `apply`, persistent).
    fn tap_for(&self, eni_id: &str) -> String;
}
