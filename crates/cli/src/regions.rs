//! The hosts of the regions `corral serve` runs: each region gets its own hypervisor agent
//! and storage, so regions share nothing but the account.
//!
//! - `--hypervisor sim`: a simulated agent per region, in memory.
//! - `--hypervisor qemu`: a QEMU agent per region on this host, each with its own VM and pool
//!   directories (`STATE_DIR/regions/NAME/`; the home region keeps `STATE_DIR/vms` and
//!   `pool`), its own namespace prefix (the home region the operator's, the others
//!   `<prefix><zone-id stem>-`, e.g. `corral-usw2-`), and
//!   its own slice of the public pool and of the host link pool, so two regions' networks
//!   never meet, even with the same VPC CIDRs.
//!
//! Other regions are opened on first use ([`factory`]): their store
//! (`STATE_DIR/regions/NAME/corral.db`) gets the home region's account, and the default
//! images are registered in them.

use crate::serve::{Hypervisor, ServeArgs, SimDelays};
use anyhow::Context as _;
use corral_agent::qemu::{QemuAgent, QemuConfig};
use corral_agent::sim::SimAgent;
use corral_agent_api::{Agent, Storage};
use corral_control::{Control, ControlConfig};
use corral_types::Cidr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What a region runs on.
pub struct RegionHost {
    pub agent: Arc<dyn Agent>,
    pub storage: Arc<dyn Storage>,
    pub host: String,
    pub max_instances: usize,
    /// The region's public IPs (its slice of `--public-pool` when several regions share it).
    pub public_pool: Cidr,
}

/// How to open a region's host; shared by the home region and the ones opened later.
pub struct Hosts {
    hypervisor: Hypervisor,
    /// The home region keeps the operator's namespace prefix and the state directory's own
    /// `vms`, `pool` and `net`.
    home: String,
    regions: Vec<String>,
    netns_prefix: String,
    host_netns: Option<String>,
    guest_host_ports: Vec<u16>,
    public_pool: Cidr,
    stop_timeout: Duration,
    sim_delays: SimDelays,
    durability: corral_store::Durability,
}

/// The host link pool of corral-net (`NetConfig`'s default), sliced per region like the
/// public pool.
const LINK_POOL: &str = "100.127.0.0/16";

/// The `index`th of `count` equal slices of `pool` (the whole pool for one region).
pub fn slice(pool: Cidr, index: usize, count: usize) -> Option<Cidr> {
    let bits = usize::BITS - count.saturating_sub(1).leading_zeros();
    let prefix = pool.prefix_len().checked_add(bits as u8).filter(|p| *p <= 30)?;
    let step = pool.size() >> bits;
    let base = u64::from(u32::from(pool.network_addr())) + step * index as u64;
    Cidr::new(std::net::Ipv4Addr::from(u32::try_from(base).ok()?), prefix)
}

impl Hosts {
    pub fn new(args: &ServeArgs, regions: &[String]) -> anyhow::Result<Hosts> {
        let public_pool = args
            .public_pool
            .parse::<Cidr>()
            .map_err(|_| anyhow::anyhow!("--public-pool {} is not an IPv4 CIDR block", args.public_pool))?
            .network();
        Ok(Hosts {
            hypervisor: args.hypervisor,
            home: args.region.clone(),
            regions: regions.to_vec(),
            netns_prefix: args.netns_prefix.clone(),
            host_netns: args.host_netns.clone(),
            guest_host_ports: args.guest_host_ports.clone(),
            public_pool,
            stop_timeout: Duration::from_secs(args.stop_timeout_secs),
            sim_delays: args.sim_delays,
            durability: args.durability(),
        })
    }

    /// How durable each region's store is (the home region's, as `serve` was told).
    pub fn durability(&self) -> corral_store::Durability {
        self.durability
    }

    /// The region's slice of a pool shared by the regions of this host.
    fn slice_of(&self, pool: Cidr, region: &str) -> anyhow::Result<Cidr> {
        if self.hypervisor == Hypervisor::Sim || self.regions.len() == 1 {
            return Ok(pool);
        }
        let index = self.regions.iter().position(|r| r == region).context("region not served")?;
        slice(pool, index, self.regions.len()).with_context(|| format!("{pool} is too small to share among {} regions", self.regions.len()))
    }

    /// The agent and storage of `region`, whose files live under `dir`.
    pub async fn open(&self, region: &str, dir: &Path) -> anyhow::Result<RegionHost> {
        let public_pool = self.slice_of(self.public_pool, region)?;
        let (agent, storage, max_instances): (Arc<dyn Agent>, Arc<dyn Storage>, usize) = match self.hypervisor {
            Hypervisor::Sim => {
                let sim = Arc::new(match self.sim_delays {
                    SimDelays::None => SimAgent::new(true),
                    SimDelays::Aws => SimAgent::with_delays(corral_agent::sim::SimDelays::AWS),
                });
                (sim.clone(), sim, corral_control::limits::MAX_INSTANCES_SIM)
            }
            Hypervisor::Qemu => {
                let mut config = QemuConfig::new(dir.join("vms"), dir.join(crate::POOL_DIR));
                config.stop_timeout = self.stop_timeout;
                let net_dir = corral_net::runtime_dir(dir);
                let old = dir.join("net");
                if old.is_dir() {
                    let stopped = corral_net::LinuxNet::retire_state_dir(&old).await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    tracing::info!(from = %old.display(), to = %net_dir.display(), dnsmasq = ?stopped, "network state moved out of the state directory");
                }
                let mut net = corral_net::NetConfig::new(net_dir);
                net.ns_prefix = if region == self.home { self.netns_prefix.clone() } else { self.region_prefix(region) };
                net.region = region.to_string();
                net.public_pool = public_pool;
                net.link_pool = self.slice_of(LINK_POOL.parse().expect("link pool"), region)?;
                net.host_netns = self.host_netns.clone();
                net.guest_host_tcp_ports = self.guest_host_ports.clone();
                config.net = Some(net);
                let agent = QemuAgent::new(config).await.map_err(|e| anyhow::anyhow!("starting the QEMU agent of {region}: {e}"))?;
                if agent.accel().as_str() == "tcg" {
                    tracing::warn!(region, "no hardware KVM on this host: guests run under TCG (software emulation), several times slower");
                }
                let agent = Arc::new(agent);
                (agent.clone(), agent, corral_control::limits::MAX_INSTANCES_QEMU)
            }
        };
        let host = agent.host_info().await.map(|h| h.hostname).unwrap_or_else(|_| "localhost".into());
        Ok(RegionHost { agent, storage, host, max_instances, public_pool })
    }

    /// A region's namespace prefix when several regions share this host: the operator's
    /// prefix and the region's short code (`corral-usw2-`).
    fn region_prefix(&self, region: &str) -> String {
        let short = corral_types::region::short_code(region).unwrap_or_else(|| region.replace('-', ""));
        format!("{}{short}-", self.netns_prefix)
    }
}

/// Opens the other regions on first use: each its own store with the home region's account,
/// its own host (see [`Hosts`]), and the default images registered.
pub fn factory(hosts: Arc<Hosts>, state_dir: std::path::PathBuf, account_id: String, home: ControlConfig) -> corral_control::RegionFactory {
    Arc::new(move |region: String| {
        let (hosts, state_dir, account_id, home) = (hosts.clone(), state_dir.clone(), account_id.clone(), home.clone());
        Box::pin(async move {
            let fail =
                |what: &str, e: &dyn std::fmt::Display| corral_types::Error::internal(format!("opening region {region}: {what}: {e}"));
            let dir = state_dir.join("regions").join(&region);
            std::fs::create_dir_all(&dir).map_err(|e| fail("creating its directory", &e))?;
            let store = Arc::new(
                corral_store::Store::open_durable(&dir.join("corral.db"), hosts.durability()).map_err(|e| fail("opening its store", &e))?,
            );
            corral_control::account::region_bootstrap(&store, &account_id)?;
            let h = hosts.open(&region, &dir).await.map_err(|e| fail("starting its host", &e))?;
            let config =
                ControlConfig { region: region.clone(), host: h.host, max_instances: h.max_instances, public_pool: h.public_pool, ..home };
            let control = Control::new(store, h.agent, h.storage, config)?;
            control.spawn_reconciler();
            let sim = hosts.hypervisor == Hypervisor::Sim;
            for name in corral_images::DEFAULT_IMAGES {
                crate::images::ensure(&control, name, sim).await.map_err(|e| fail("registering its images", &e))?;
            }
            Ok(control)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_slice_evenly() {
        let pool: Cidr = "198.18.0.0/15".parse().unwrap();
        assert_eq!(slice(pool, 0, 1).unwrap().to_string(), "198.18.0.0/15");
        assert_eq!(slice(pool, 1, 2).unwrap().to_string(), "198.19.0.0/16");
        assert_eq!(slice(pool, 2, 3).unwrap().to_string(), "198.19.0.0/17");
        assert_eq!(slice(pool, 34, 35).unwrap().prefix_len(), 21);
        assert!(slice("10.0.0.0/30".parse().unwrap(), 1, 2).is_none());
    }
}
