//! [`LinuxNet`]: the real driver. Converges namespaces, links, addresses, routes, sysctls,
//! nftables and dnsmasq to a [`DesiredNet`]; see the crate docs for the design.
//!
//! Order inside one VPC, chosen so no port is ever reachable without its rules:
//! namespace and sysctls -> nftables (the new table names ports before their links exist; a
//! link without rules matches `iifname "tp*" drop`) -> links removed, links created ->
//! addresses -> per-port sysctls -> routes (last: a port without its route is "unfinished"
//! and gets finished by the next apply) -> host link and public IP routes -> dnsmasq.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::dnsmasq::{self, Reload};
use crate::names::{host_link_ifname, netns_name, port_ifname, PORT_PREFIX, UPLINK_IFNAME};
use crate::nft::{self, dns_ip, nat_pairs, METADATA_IP};
use crate::spec::{mac_to_string, DesiredNet, NetConfig, NetReport, PortLink, VpcReport, VpcSpec};
use crate::Cidr;
use crate::{host, host_guard, NetDriver, NetError};

pub struct LinuxNet {
    config: NetConfig,
    /// Serialises `apply`; holds the last nftables script applied per namespace, so an
    /// unchanged table is not reloaded on every reconcile tick (empty after a restart, so the
    /// first apply always loads it).
    state: tokio::sync::Mutex<HashMap<String, String>>,
}

fn io_err(context: &str, path: &Path) -> impl FnOnce(std::io::Error) -> NetError {
    let (context, path) = (context.to_string(), path.to_path_buf());
    move |source| NetError::Io { context, path, source }
}

/// Whether user `nobody` (dnsmasq after dropping privileges) can reach files in `dir`; if not,
/// a SIGHUP would make it fail to re-read them, so changes restart it instead.
fn others_can_traverse(dir: &Path) -> bool {
    dir.ancestors().all(|a| std::fs::metadata(a).map(|m| m.permissions().mode() & 0o001 != 0).unwrap_or(false))
}

impl LinuxNet {
    /// Refuses a configured uplink: uplink NAT is not implemented, and nothing may get a path
    /// out by accident.
    pub fn new(config: NetConfig) -> Result<Self, NetError> {
        if let Some(up) = &config.uplink {
            return Err(NetError::UplinkUnsupported(up.clone()));
        }
        Ok(LinuxNet { config, state: tokio::sync::Mutex::new(HashMap::new()) })
    }

    /// Stops the dnsmasq of every VPC directory under `dir` (a network state directory an
    /// older release kept elsewhere) and removes it; the namespaces stay, and the next apply
    /// starts their dnsmasq from this driver's directory.
    pub async fn retire_state_dir(dir: &Path) -> Result<Vec<u32>, NetError> {
        let mut stopped = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir) else { return Ok(stopped) };
        for e in entries.flatten() {
            if e.path().is_dir() {
                stopped.extend(dnsmasq::stop(&e.path()).await?);
            }
        }
        std::fs::remove_dir_all(dir).map_err(io_err("removing a retired network state directory", dir))?;
        Ok(stopped)
    }

    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    fn host_ns(&self) -> Option<&str> {
        self.config.host_netns.as_deref()
    }

    /// The state directory of one VPC namespace.
    pub fn ns_dir(&self, ns: &str) -> PathBuf {
        self.config.state_dir.join(ns)
    }

    /// Whether a namespace (or its state directory) is this driver's: `<prefix>vpc-…`, so a
    /// driver whose prefix extends this one's (another region's, `corral-usw2-`) is not.
    fn owns(&self, name: &str) -> bool {
        name.strip_prefix(self.config.ns_prefix.as_str()).is_some_and(|rest| rest.starts_with("vpc-"))
    }

    /// Namespaces on this host that belong to this driver (by prefix).
    pub async fn owned_namespaces(&self) -> Result<Vec<String>, NetError> {
        Ok(host::netns_list().await?.into_iter().filter(|n| self.owns(n)).collect())
    }

    /// The pid of the dnsmasq serving a namespace, if it runs (verified).
    pub fn dnsmasq_pid(&self, ns: &str) -> Option<u32> {
        dnsmasq::running_pid(&self.ns_dir(ns))
    }

    async fn apply_locked(&self, desired: &DesiredNet, applied: &mut HashMap<String, String>) -> Result<NetReport, NetError> {
        crate::spec::validate(desired, &self.config)?;
        let mut report = NetReport::default();
        // A VPC without ports on this host has no namespace here.
        let active: Vec<&VpcSpec> = desired.vpcs.iter().filter(|v| !v.ports.is_empty()).collect();
        let wanted: HashSet<String> = active.iter().map(|v| self.netns_for(&v.vpc_id)).collect();

        // Remove first: frees /31 link networks and public IPs for the VPCs that follow.
        let mut first_error: Option<NetError> = None;
        for ns in self.owned_namespaces().await? {
            if !wanted.contains(&ns) {
                applied.remove(&ns);
                if let Err(e) = self.remove_vpc(&ns, &mut report).await {
                    first_error.get_or_insert(e);
                }
            }
        }
        // State directories whose namespace is gone (a crash between the two): stop a
        // dnsmasq that may still run from it, drop the directory.
        if let Ok(entries) = std::fs::read_dir(&self.config.state_dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if self.owns(&name) && !wanted.contains(&name) {
                    if let Ok(Some(pid)) = dnsmasq::stop(&e.path()).await {
                        report.removed.push(format!("dnsmasq {pid} of {name}"));
                    }
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }

        // The host's side of the links first, so no link is up before its guard.
        let mut links: Vec<String> = wanted.iter().map(|ns| host_link_ifname(ns)).collect();
        links.sort();
        if let Err(e) = self.ensure_host_guard(&links, applied).await {
            first_error.get_or_insert(e);
        }

        let all_public: Vec<Ipv4Addr> = active.iter().flat_map(|v| nat_pairs(v).into_iter().map(|(_, p)| p)).collect();
        for vpc in active {
            match self.ensure_vpc(vpc, &all_public, applied, &mut report.removed).await {
                Ok(r) => report.vpcs.push(r),
                Err(e) => {
                    // Forget the cached script: the next apply reloads it.
                    applied.remove(&self.netns_for(&vpc.vpc_id));
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Puts the host-side guard in place for `links` (see `host_guard.rs`), or removes it when
    /// there are none; skipped when the last one applied is the same.
    async fn ensure_host_guard(&self, links: &[String], applied: &mut HashMap<String, String>) -> Result<(), NetError> {
        const KEY: &str = "\0host-guard";
        let table = host_guard::table_name(&self.config.ns_prefix);
        let script = if links.is_empty() { String::new() } else { host_guard::ruleset(&table, links, &self.config.guest_host_tcp_ports) };
        if applied.get(KEY) == Some(&script) {
            return Ok(());
        }
        let path = self.config.state_dir.join(format!("{table}.nft"));
        if links.is_empty() {
            // Gone already is fine (nothing was ever made, or a crash after its removal).
            let _ = host::in_ns(self.host_ns(), "nft", &["delete", "table", "inet", &table]).await;
            let _ = std::fs::remove_file(&path);
            // With no VPC left, the directory holds nothing either: leave no trace (a
            // directory still holding something stays).
            let _ = std::fs::remove_dir(&self.config.state_dir);
        } else {
            std::fs::create_dir_all(&self.config.state_dir)
                .map_err(io_err("creating the network state directory", &self.config.state_dir))?;
            std::fs::write(&path, &script).map_err(io_err("writing the host guard script", &path))?;
            host::nft_file(self.host_ns(), &path).await?;
        }
        applied.insert(KEY.to_string(), script);
        Ok(())
    }

    /// Tears one VPC namespace down: dnsmasq (verified pid), the host link (its routes go
    /// with it), the ports, the namespace, the state directory.
    async fn remove_vpc(&self, ns: &str, report: &mut NetReport) -> Result<(), NetError> {
        let dir = self.ns_dir(ns);
        if let Some(pid) = dnsmasq::stop(&dir).await? {
            report.removed.push(format!("dnsmasq {pid} of {ns}"));
        }
        let hl = host_link_ifname(ns);
        if host::links(self.host_ns()).await?.contains(&hl) {
            host::ip(self.host_ns(), &["link", "del", &hl]).await?;
            report.removed.push(format!("host link {hl}"));
        }
        for l in host::links(Some(ns)).await? {
            if l.starts_with(PORT_PREFIX) {
                host::ip(Some(ns), &["link", "del", &l]).await?;
                report.removed.push(format!("port {l} in {ns}"));
            }
        }
        let pids = host::ip(None, &["netns", "pids", ns]).await.unwrap_or_default();
        let pids = String::from_utf8_lossy(&pids).split_whitespace().collect::<Vec<_>>().join(" ");
        if !pids.is_empty() {
            report.warnings.push(format!("namespace {ns} still holds processes {pids}; it lives on until they exit"));
        }
        host::ip(None, &["netns", "del", ns]).await?;
        report.removed.push(format!("namespace {ns}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io_err("removing state directory", &dir))?;
        }
        Ok(())
    }

    async fn ensure_vpc(
        &self,
        vpc: &VpcSpec,
        all_public: &[Ipv4Addr],
        applied: &mut HashMap<String, String>,
        removed: &mut Vec<String>,
    ) -> Result<VpcReport, NetError> {
        let ns = self.netns_for(&vpc.vpc_id);
        let ns = ns.as_str();
        let dir = self.ns_dir(ns);
        std::fs::create_dir_all(&dir).map_err(io_err("creating state directory", &dir))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).map_err(io_err("chmod state directory", &dir))?;

        // 1. Namespace and its sysctls. A name whose file holds no namespace any more is
        // removed and made again: otherwise every step after this one fails on it, for good.
        let mut listed = host::netns_list().await?.iter().any(|n| n == ns);
        if listed && !host::netns_alive(ns) {
            tracing::warn!(netns = ns, "the namespace file holds no namespace; making the namespace again");
            let _ = host::ip(None, &["netns", "del", ns]).await;
            let stale = std::path::Path::new(host::NETNS_DIR).join(ns);
            if let Err(e) = std::fs::remove_file(&stale) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(io_err("removing a stale namespace file", &stale)(e));
                }
            }
            listed = false;
        }
        if !listed {
            host::ip(None, &["netns", "add", ns]).await?;
        }
        host::ip(Some(ns), &["link", "set", "lo", "up"]).await?;
        host::sysctl(
            ns,
            &["net.ipv4.ip_forward=1".into(), "net.ipv6.conf.all.disable_ipv6=1".into(), "net.ipv6.conf.default.disable_ipv6=1".into()],
        )
        .await?;

        // 2. nftables, whole table in one transaction.
        let script = nft::ruleset(vpc);
        if applied.get(ns) != Some(&script) {
            let path = dir.join("nftables.nft");
            std::fs::write(&path, &script).map_err(io_err("writing nftables script", &path))?;
            host::nft_file(Some(ns), &path).await?;
            applied.insert(ns.to_string(), script);
        }

        // 3. Port links.
        let mut ports: Vec<(String, &crate::spec::PortSpec)> = vpc.ports.iter().map(|p| (port_ifname(&p.eni_id), &**p)).collect();
        ports.sort_by(|a, b| a.0.cmp(&b.0));
        let wanted: HashSet<&str> = ports.iter().map(|(n, _)| n.as_str()).collect();
        let present = host::links(Some(ns)).await?;
        for l in &present {
            if l.starts_with(PORT_PREFIX) && !wanted.contains(l.as_str()) {
                host::ip(Some(ns), &["link", "del", l]).await?;
                removed.push(format!("port {l} in {ns}"));
            }
        }
        for (ifn, p) in &ports {
            if present.contains(ifn) {
                continue;
            }
            match &p.link {
                PortLink::Tap => {
                    host::ip(Some(ns), &["tuntap", "add", "dev", ifn, "mode", "tap"]).await?;
                }
                PortLink::Veth { peer_netns, peer_ifname } => {
                    host::ip(Some(ns), &["link", "add", ifn, "type", "veth", "peer", "name", peer_ifname, "netns", peer_netns]).await?;
                    let mac = mac_to_string(&p.mac);
                    host::ip(Some(peer_netns), &["link", "set", peer_ifname, "address", &mac, "up"]).await?;
                }
            }
        }

        // 4. Addresses: DNS and metadata on lo, the subnet gateway (/32) on each port.
        let addrs: HashSet<(String, Cidr)> = host::addrs(Some(ns)).await?.into_iter().collect();
        let mut batch = Vec::new();
        for ip in [dns_ip(vpc), METADATA_IP] {
            let a = Cidr::new(ip, 32).expect("/32");
            if !addrs.contains(&("lo".to_string(), a)) {
                batch.push(format!("addr add {a} dev lo"));
            }
        }
        for (ifn, p) in &ports {
            let subnet = vpc.subnets.iter().find(|s| s.subnet_id == p.subnet_id).expect("validated");
            let gw = Cidr::new(subnet.cidr.nth(1).expect("/28 or larger"), 32).expect("/32");
            if !addrs.contains(&(ifn.clone(), gw)) {
                batch.push(format!("addr add {gw} dev {ifn}"));
            }
            batch.push(format!("link set {ifn} up"));
        }
        host::ip_batch(Some(ns), &batch).await?;

        // 5. Per-port sysctls: proxy ARP for the other instances, answered at once.
        let mut settings = Vec::new();
        for (ifn, _) in &ports {
            settings.push(format!("net.ipv4.conf.{ifn}.proxy_arp=1"));
            settings.push(format!("net.ipv4.neigh.{ifn}.proxy_delay=0"));
        }
        host::sysctl(ns, &settings).await?;

        // 6. Host link (needs a /31) and routes.
        let link = self.ensure_host_link(ns, &present).await?;
        let routes = host::routes(Some(ns)).await?;
        // Routes through an instance: (destination as `ip route` prints it, port, its IP).
        let forwarded: Vec<(String, String, String)> = vpc
            .routes
            .iter()
            .filter_map(|r| {
                let (ifn, p) = ports.iter().find(|(_, p)| p.eni_id == r.eni_id)?;
                let dst = if r.destination.prefix_len() == 32 { r.destination.addr().to_string() } else { r.destination.to_string() };
                Some((dst, ifn.clone(), p.ip.to_string()))
            })
            .collect();
        let mut batch = Vec::new();
        for r in &routes {
            let Some(dev) = &r.dev else { continue };
            let stale_port = dev.starts_with(PORT_PREFIX)
                && r.protocol.as_deref() != Some("kernel")
                && !ports.iter().any(|(ifn, p)| ifn == dev && r.dst == p.ip.to_string())
                && !forwarded.iter().any(|(dst, ifn, _)| ifn == dev && r.dst == *dst);
            let stale_public = dev == UPLINK_IFNAME && r.gateway.is_some() && !all_public.iter().any(|ip| r.dst == ip.to_string());
            if stale_port || stale_public {
                batch.push(format!("route del {} dev {dev}", r.dst));
            }
        }
        for (ifn, p) in &ports {
            if !routes.iter().any(|r| r.dst == p.ip.to_string() && r.dev.as_deref() == Some(ifn)) {
                batch.push(format!("route replace {}/32 dev {ifn}", p.ip));
            }
        }
        for (dst, ifn, via) in &forwarded {
            if !routes.iter().any(|r| r.dst == *dst && r.dev.as_deref() == Some(ifn.as_str()) && r.gateway.as_deref() == Some(via.as_str()))
            {
                batch.push(format!("route replace {dst} via {via} dev {ifn} onlink"));
            }
        }
        for ip in all_public {
            if !routes.iter().any(|r| r.dst == ip.to_string() && r.dev.as_deref() == Some(UPLINK_IFNAME)) {
                batch.push(format!("route replace {ip}/32 via {} dev {UPLINK_IFNAME}", link.host_end));
            }
        }
        host::ip_batch(Some(ns), &batch).await?;

        // Host side: a route per live public IP of this VPC, nothing else over its link.
        let hl = host_link_ifname(ns);
        let mine: Vec<Ipv4Addr> = nat_pairs(vpc).into_iter().map(|(_, p)| p).collect();
        let host_routes = host::routes(self.host_ns()).await?;
        let mut batch = Vec::new();
        for r in host_routes.iter().filter(|r| r.dev.as_deref() == Some(hl.as_str()) && r.gateway.is_some()) {
            if !mine.iter().any(|ip| r.dst == ip.to_string()) {
                batch.push(format!("route del {} dev {hl}", r.dst));
            }
        }
        for ip in &mine {
            if !host_routes.iter().any(|r| r.dst == ip.to_string() && r.dev.as_deref() == Some(hl.as_str())) {
                batch.push(format!("route replace {ip}/32 via {} dev {hl}", link.ns_end));
            }
        }
        host::ip_batch(self.host_ns(), &batch).await?;

        // 7. dnsmasq.
        let new = dnsmasq::files(vpc, &self.config, &dir);
        let old = dnsmasq::read_files(&dir);
        let running = dnsmasq::running_pid(&dir);
        let mut reload = dnsmasq::reload_needed(&old, &new);
        if reload == Reload::Hup && !others_can_traverse(&dir) {
            reload = Reload::Restart;
        }
        if reload != Reload::None {
            dnsmasq::write_files(&dir, &new)?;
        }
        match (running, reload) {
            (None, _) => {
                dnsmasq::start(ns, &dir).await?;
            }
            (Some(pid), Reload::Restart) => {
                dnsmasq::stop(&dir).await?;
                removed.push(format!("dnsmasq {pid} of {ns} (restarted)"));
                dnsmasq::start(ns, &dir).await?;
            }
            (Some(pid), Reload::Hup) => dnsmasq::hup(pid).await?,
            (Some(_), Reload::None) => {}
        }

        Ok(VpcReport {
            vpc_id: vpc.vpc_id.clone(),
            netns: ns.to_string(),
            ports: ports.iter().map(|(n, p)| (p.eni_id.clone(), n.clone())).collect(),
        })
    }

    /// Makes sure the veth between host and namespace exists with its /31, returning the two
    /// addresses. A half-made pair (one end missing) is rebuilt.
    async fn ensure_host_link(&self, ns: &str, ns_links: &[String]) -> Result<HostLink, NetError> {
        let hl = host_link_ifname(ns);
        let host_addrs = host::addrs(self.host_ns()).await?;
        let host_links = host::links(self.host_ns()).await?;
        let ns_addrs = host::addrs(Some(ns)).await?;
        let host_end = host_addrs.iter().find(|(n, a)| *n == hl && a.prefix_len() == 31).map(|(_, a)| a.addr());
        let ns_end = ns_addrs.iter().find(|(n, a)| n == UPLINK_IFNAME && a.prefix_len() == 31).map(|(_, a)| a.addr());
        if let (Some(h), Some(n), true) = (host_end, ns_end, ns_links.iter().any(|l| l == UPLINK_IFNAME)) {
            return Ok(HostLink { host_end: h, ns_end: n });
        }
        if host_links.contains(&hl) {
            host::ip(self.host_ns(), &["link", "del", &hl]).await?;
        }
        // Any /31 of the pool not on a link of ours in the host namespace.
        let used: BTreeSet<Ipv4Addr> = host_addrs
            .iter()
            .filter(|(n, a)| n.starts_with(crate::names::HOST_LINK_PREFIX) && a.prefix_len() == 31)
            .map(|(_, a)| a.network_addr())
            .collect();
        let pool = self.config.link_pool.network();
        let base = (0..pool.size() / 2)
            .filter_map(|i| pool.nth(i * 2))
            .find(|a| !used.contains(a))
            .ok_or_else(|| NetError::Invalid(format!("link pool {} exhausted", self.config.link_pool)))?;
        let n = Ipv4Addr::from(u32::from(base) + 1);
        host::ip(self.host_ns(), &["link", "add", &hl, "type", "veth", "peer", "name", UPLINK_IFNAME, "netns", ns]).await?;
        host::ip_batch(self.host_ns(), &[format!("addr add {base}/31 dev {hl}"), format!("link set {hl} up")]).await?;
        host::ip_batch(Some(ns), &[format!("addr add {n}/31 dev {UPLINK_IFNAME}"), format!("link set {UPLINK_IFNAME} up")]).await?;
        Ok(HostLink { host_end: base, ns_end: n })
    }
}

struct HostLink {
    host_end: Ipv4Addr,
    ns_end: Ipv4Addr,
}

#[async_trait::async_trait]
impl NetDriver for LinuxNet {
    async fn apply(&self, desired: &DesiredNet) -> Result<NetReport, NetError> {
        let mut applied = self.state.lock().await;
        self.apply_locked(desired, &mut applied).await
    }

    fn netns_for(&self, vpc_id: &str) -> String {
        netns_name(&self.config.ns_prefix, vpc_id)
    }

    fn tap_for(&self, eni_id: &str) -> String {
        port_ifname(eni_id)
    }
}
