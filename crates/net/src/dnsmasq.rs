//! dnsmasq, one per VPC namespace: static DHCP leases and the VPC's DNS names.
//!
//! The files (pure functions of the spec, see [`files`]) live in the namespace's state
//! directory: `dnsmasq.conf` (fixed per VPC: subnets, options), `dhcp-hosts` and `hosts` (one
//! line per port; re-read on SIGHUP). The process is started daemonized inside the namespace,
//! tracked by its pid file, and only ever signalled after `/proc/<pid>/cmdline` shows it is
//! dnsmasq with our config file (a pid can be reused).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::names::PORT_PREFIX;
use crate::nft::dns_ip;
use crate::spec::{mac_to_string, private_dns_name, NetConfig, VpcSpec};
use crate::{host, NetError};

/// DHCP lease time. Leases are static, so this only bounds how long a guest keeps an address
/// after its port is gone; EC2 hands out one hour.
const LEASE_TIME: &str = "1h";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Files {
    pub conf: String,
    pub dhcp_hosts: String,
    pub hosts: String,
}

pub(crate) fn conf_path(dir: &Path) -> PathBuf {
    dir.join("dnsmasq.conf")
}
fn pid_path(dir: &Path) -> PathBuf {
    dir.join("dnsmasq.pid")
}

/// The three files for one VPC namespace whose state directory is `dir`.
pub(crate) fn files(vpc: &VpcSpec, config: &NetConfig, dir: &Path) -> Files {
    let domain = format!("{}.compute.internal", config.region);
    let dns = dns_ip(vpc);
    let d = dir.display();
    let mut conf = String::new();
    let _ = writeln!(conf, "# corral-net: DHCP and DNS of {}; generated, do not edit", vpc.vpc_id);
    for line in
        ["no-resolv", "no-hosts", "domain-needed", "bogus-priv", "leasefile-ro", "dhcp-authoritative", "user=nobody", "group=nogroup"]
    {
        let _ = writeln!(conf, "{line}");
    }
    let _ = writeln!(conf, "interface={PORT_PREFIX}*");
    let _ = writeln!(conf, "domain={domain}");
    let _ = writeln!(conf, "local=/{domain}/");
    let _ = writeln!(conf, "pid-file={d}/dnsmasq.pid");
    let _ = writeln!(conf, "log-facility={d}/dnsmasq.log");
    let _ = writeln!(conf, "dhcp-hostsfile={d}/dhcp-hosts");
    let _ = writeln!(conf, "addn-hosts={d}/hosts");
    let mut subnets: Vec<_> = vpc.subnets.iter().collect();
    subnets.sort_by(|a, b| a.subnet_id.cmp(&b.subnet_id));
    for s in subnets {
        let net = s.cidr.network();
        let gw = net.nth(1).expect("subnets are /28 or larger");
        let _ = writeln!(conf, "dhcp-range=set:{},{},static,{},{LEASE_TIME}", s.subnet_id, net.addr(), net.mask());
        let _ = writeln!(conf, "dhcp-option=tag:{},option:router,{gw}", s.subnet_id);
    }
    let _ = writeln!(conf, "dhcp-option=option:dns-server,{dns}");
    let _ = writeln!(conf, "dhcp-option=option:domain-name,{domain}");
    let _ = writeln!(conf, "dhcp-option=option:mtu,{}", config.mtu);

    let mut ports: Vec<_> = vpc.ports.iter().collect();
    ports.sort_by_key(|p| p.ip);
    let mut dhcp_hosts = String::new();
    let mut hosts = String::new();
    for p in ports {
        let private = private_dns_name(p.ip, &config.region);
        let short = private.split('.').next().unwrap_or_default().to_string();
        let _ = writeln!(dhcp_hosts, "{},{},{}", mac_to_string(&p.mac), p.ip, p.hostname.split('.').next().unwrap_or(&short));
        // The first name is the PTR answer: EC2's private DNS name.
        let mut names = vec![private.clone(), short.clone()];
        for extra in [p.hostname.clone(), format!("{}.{domain}", p.hostname)] {
            if !names.contains(&extra) && !extra.starts_with(&format!("{short}.")) {
                names.push(extra);
            }
        }
        let _ = writeln!(hosts, "{} {}", p.ip, names.join(" "));
    }
    Files { conf, dhcp_hosts, hosts }
}

/// What a change of the per-port files needs: nothing, a SIGHUP (lines only added), or a
/// restart (a line went: dnsmasq would keep the old lease in memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reload {
    None,
    Hup,
    Restart,
}

pub(crate) fn reload_needed(old: &Files, new: &Files) -> Reload {
    if old.conf != new.conf {
        return Reload::Restart;
    }
    let lines = |s: &str| s.lines().map(str::to_string).collect::<BTreeSet<_>>();
    let (oh, nh) = (lines(&old.dhcp_hosts), lines(&new.dhcp_hosts));
    let (oa, na) = (lines(&old.hosts), lines(&new.hosts));
    if !oh.is_subset(&nh) || !oa.is_subset(&na) {
        Reload::Restart
    } else if oh != nh || oa != na {
        Reload::Hup
    } else {
        Reload::None
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub(crate) fn read_files(dir: &Path) -> Files {
    Files { conf: read(&conf_path(dir)), dhcp_hosts: read(&dir.join("dhcp-hosts")), hosts: read(&dir.join("hosts")) }
}

fn write_atomic(path: &Path, text: &str) -> Result<(), NetError> {
    let tmp = path.with_extension("tmp");
    let io = |source| NetError::Io { context: "writing dnsmasq file".into(), path: path.to_path_buf(), source };
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

pub(crate) fn write_files(dir: &Path, f: &Files) -> Result<(), NetError> {
    write_atomic(&dir.join("dhcp-hosts"), &f.dhcp_hosts)?;
    write_atomic(&dir.join("hosts"), &f.hosts)?;
    write_atomic(&conf_path(dir), &f.conf)
}

/// The pid of the dnsmasq serving `dir`, if its pid file names a live dnsmasq started with
/// our config file.
pub(crate) fn running_pid(dir: &Path) -> Option<u32> {
    let pid: u32 = read(&pid_path(dir)).trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = cmdline.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let want = format!("--conf-file={}", conf_path(dir).display());
    let is_dnsmasq = args.first().is_some_and(|a| a.rsplit('/').next() == Some("dnsmasq"));
    (is_dnsmasq && args.contains(&want)).then_some(pid)
}

async fn signal(pid: u32, sig: &str) -> Result<(), NetError> {
    corral_exec::run("kill", &[format!("-{sig}"), pid.to_string()])
        .await
        .map_err(|source| NetError::Exec { context: format!("signalling dnsmasq {pid}"), source })?;
    Ok(())
}

pub(crate) async fn hup(pid: u32) -> Result<(), NetError> {
    signal(pid, "HUP").await
}

/// Stops the dnsmasq of `dir` if one runs: SIGTERM, then SIGKILL after 2 s. Returns its pid.
pub(crate) async fn stop(dir: &Path) -> Result<Option<u32>, NetError> {
    let Some(pid) = running_pid(dir) else { return Ok(None) };
    let _ = signal(pid, "TERM").await;
    let deadline = Instant::now() + Duration::from_secs(2);
    while Path::new(&format!("/proc/{pid}")).exists() {
        if Instant::now() > deadline {
            let _ = signal(pid, "KILL").await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = std::fs::remove_file(pid_path(dir));
    Ok(Some(pid))
}

/// Starts dnsmasq inside `ns`. It daemonizes once it is listening, so when this returns the
/// pid file exists (dnsmasq's parent exits only after the child reports a clean start).
pub(crate) async fn start(ns: &str, dir: &Path) -> Result<u32, NetError> {
    let conf = format!("--conf-file={}", conf_path(dir).display());
    host::in_ns(Some(ns), "dnsmasq", &[&conf]).await?;
    running_pid(dir).ok_or_else(|| NetError::Invalid(format!("dnsmasq in {ns} started but its pid file is not valid")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{PortLink, PortSpec, SubnetSpec};
    use std::net::Ipv4Addr;

    fn vpc() -> VpcSpec {
        VpcSpec {
            vpc_id: "vpc-1".into(),
            cidr: "10.0.0.0/16".parse().unwrap(),
            subnets: vec![
                SubnetSpec { subnet_id: "subnet-b".into(), cidr: "10.0.2.0/24".parse().unwrap(), routes_to_igw: false },
                SubnetSpec { subnet_id: "subnet-a".into(), cidr: "10.0.1.0/24".parse().unwrap(), routes_to_igw: false },
            ],
            ports: vec![std::sync::Arc::new(PortSpec {
                eni_id: "eni-1".into(),
                instance_id: "i-1".into(),
                subnet_id: "subnet-a".into(),
                mac: [2, 0, 0, 0, 0, 5],
                ip: Ipv4Addr::new(10, 0, 1, 5),
                hostname: "web1".into(),
                public_ip: None,
                groups: vec![],
                link: PortLink::Tap,
                source_dest_check: true,
            })]
            .into(),
            groups: vec![],
            routes: vec![],
        }
    }

    #[test]
    fn config_has_ranges_options_and_no_upstream() {
        let f = files(&vpc(), &NetConfig::new("/s"), Path::new("/s/ns"));
        let c = &f.conf;
        for want in [
            "no-resolv\n",
            "interface=tp*\n",
            "local=/local-1.compute.internal/\n",
            "dhcp-range=set:subnet-a,10.0.1.0,static,255.255.255.0,1h\n",
            "dhcp-option=tag:subnet-a,option:router,10.0.1.1\n",
            "dhcp-range=set:subnet-b,10.0.2.0,static,255.255.255.0,1h\n",
            "dhcp-option=option:dns-server,10.0.0.2\n",
            "dhcp-option=option:mtu,1450\n",
            "pid-file=/s/ns/dnsmasq.pid\n",
            "dhcp-hostsfile=/s/ns/dhcp-hosts\n",
        ] {
            assert!(c.contains(want), "{want} missing from\n{c}");
        }
        assert!(c.find("subnet-a").unwrap() < c.find("subnet-b").unwrap(), "sorted");
        assert!(!c.contains("server="));
    }

    #[test]
    fn per_port_lines() {
        let f = files(&vpc(), &NetConfig::new("/s"), Path::new("/s/ns"));
        assert_eq!(f.dhcp_hosts, "02:00:00:00:00:05,10.0.1.5,web1\n");
        assert_eq!(f.hosts, "10.0.1.5 ip-10-0-1-5.local-1.compute.internal ip-10-0-1-5 web1 web1.local-1.compute.internal\n");
        let mut v = vpc();
        std::sync::Arc::make_mut(&mut v.ports[0]).hostname = "ip-10-0-1-5".into();
        let f = files(&v, &NetConfig::new("/s"), Path::new("/s/ns"));
        assert_eq!(f.hosts, "10.0.1.5 ip-10-0-1-5.local-1.compute.internal ip-10-0-1-5\n");
    }

    #[test]
    fn additions_hup_removals_restart() {
        let cfg = NetConfig::new("/s");
        let dir = Path::new("/s/ns");
        let one = files(&vpc(), &cfg, dir);
        let mut v = vpc();
        let mut p2 = (*v.ports[0]).clone();
        p2.eni_id = "eni-2".into();
        p2.ip = Ipv4Addr::new(10, 0, 1, 6);
        p2.mac = [2, 0, 0, 0, 0, 6];
        v.ports.push_back(std::sync::Arc::new(p2));
        let two = files(&v, &cfg, dir);
        assert_eq!(reload_needed(&one, &one), Reload::None);
        assert_eq!(reload_needed(&one, &two), Reload::Hup);
        assert_eq!(reload_needed(&two, &one), Reload::Restart);
        let mut v3 = vpc();
        v3.subnets.pop();
        assert_eq!(reload_needed(&one, &files(&v3, &cfg, dir)), Reload::Restart);
    }
}
