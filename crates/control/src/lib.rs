//! The control plane: it decides. Every API action lands here as a typed request; this crate
//! validates it against the store's state, commits the change in one transaction and leaves
//! the host work to the reconciler, which drives the agent until actual state matches desired.
//!
//! It never sees HTTP or XML (that is `corral-api`) and never touches the host (that is the
//! agent, reached only through `corral_agent_api::Agent`).

pub mod account;
pub mod address;
pub mod address_attribute;
mod alloc;
mod attribute;
mod chain;
pub mod cloud;
pub mod consistency;
pub mod describe;
mod device;
pub mod eni;
pub mod filter;
mod fleet_work;
pub mod gateway;
mod host;
mod host_cache;
pub mod idempotency;
pub mod image;
mod image_attribute;
mod image_built;
mod image_copy;
mod image_create;
mod image_deprecation;
pub mod instance;
pub mod keypair;
mod layer;
mod lookup;
pub mod network_acl;
mod permission;
pub mod placement_group;
pub mod quota;
pub mod reconcile;
mod reconcile_decide;
mod reconcile_queue;
pub mod region;
mod route;
pub mod security_group;
mod security_group_rule;
mod security_group_rule_describe;
pub mod snapshot;
mod snapshot_attribute;
mod storage_recover;
pub mod subnet;
pub mod sweep;
pub mod tag;
mod vector_edit;
pub mod volume;
mod volume_attach;
mod volume_launch;
mod volume_modify;
mod volume_status;
mod volume_type;
pub mod vpc;

use corral_agent_api::{Agent, Storage};
use corral_store::Store;
use corral_types::Result;
use std::sync::Arc;
use tokio::sync::Notify;

pub use account::{access_key_create, access_key_revoke, bootstrap, Seed};
pub use cloud::{Cloud, RegionFactory, RegionStatus};
pub use instance::{Instance, Reservation, StateChange};

/// Limits with where the number came from.
pub mod limits {
    /// Instances (not terminated) one host runs. Under TCG an idle guest costs about 210 MiB of
    /// RSS (HOST-NOTES.md), so 64 fit in the 24 GiB of the development machines with room left.
    pub const MAX_INSTANCES_QEMU: usize = 64;
    /// The simulated hypervisor holds VMs in memory only; this bounds scale tests.
    pub const MAX_INSTANCES_SIM: usize = 100_000;
    /// GetConsoleOutput returns at most the last 64 KiB, as EC2 does.
    pub const CONSOLE_OUTPUT_BYTES: usize = 64 * 1024;
    /// EC2's limit on user data: 16 KiB before base64.
    pub const USER_DATA_BYTES: usize = 16 * 1024;
    /// Tags per resource, as on EC2.
    pub const TAGS_PER_RESOURCE: usize = 50;
    /// Terminated instances stay visible for an hour, as on EC2.
    pub const TERMINATED_VISIBLE_SECS: i64 = 3600;
    /// Descriptions (of groups, rules, snapshots, images) are at most 255 characters on EC2.
    pub const DESCRIPTION_CHARS: usize = 255;

    /// A description as EC2 takes it: at most [`DESCRIPTION_CHARS`] characters, and no control
    /// characters (XML cannot carry them back).
    pub fn description(param: &str, text: Option<&str>) -> corral_types::Result<()> {
        let Some(text) = text else { return Ok(()) };
        if text.chars().count() > DESCRIPTION_CHARS || text.chars().any(char::is_control) {
            let shown: String = text.chars().take(64).collect();
            return Err(corral_types::Error::invalid_value(
                param,
                &shown,
                &format!("Descriptions are at most {DESCRIPTION_CHARS} characters, without control characters."),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// The region this control plane runs.
    pub region: String,
    /// Every region the cloud serves (this one among them), for DescribeRegions.
    pub regions: Vec<String>,
    /// The one host this control plane drives (multi-host placement comes later).
    pub host: String,
    pub max_instances: usize,
    /// Where public and elastic IPs come from.
    pub public_pool: corral_types::Cidr,
    /// AWS's quotas, as the operator set them.
    pub quotas: quota::Quotas,
    /// Reads of instance states wait until the reconciler has nothing left to do, so a state
    /// change shows by the next Describe (the simulated hypervisor without delays, as CI
    /// suites written against EC2 doubles expect).
    pub settled_reads: bool,
    /// How old a pool file without a record must be before the sweep removes it
    /// ([`sweep::SWEEP_GRACE`] by default).
    pub sweep_grace: std::time::Duration,
}

/// The default public pool: 198.18.0.0/15, the range RFC 2544 sets aside for benchmarks, so it
/// is routed nowhere and leaves room for many instances.
pub const DEFAULT_PUBLIC_POOL: &str = "198.18.0.0/15";

impl ControlConfig {
    /// The names of this region's zones.
    pub fn zones(&self) -> Vec<String> {
        corral_types::region::zones(&self.region).into_iter().map(|z| z.name).collect()
    }
}

pub struct Control {
    pub(crate) store: Arc<Store>,
    pub(crate) agent: Arc<dyn Agent>,
    /// The storage pool volumes, snapshots and images live in.
    pub(crate) storage: Arc<dyn Storage>,
    /// Held while the disks of a VM change (attach, detach, snapshot, grow) and while the
    /// reconciler starts a VM, so a VM never starts on a layer a snapshot is freezing.
    pub(crate) disk_lock: tokio::sync::Mutex<()>,
    /// The layers whose chains may have become shorter-able (see `chain.rs`).
    pub(crate) chain_work: std::sync::Mutex<chain::ChainWork>,
    /// Held by the one chain-shortening pass that runs at a time.
    pub(crate) chain_pass: tokio::sync::Mutex<()>,
    pub(crate) config: ControlConfig,
    pub(crate) account_id: String,
    /// Wakes the reconciler after a change.
    pub(crate) kick: Arc<Notify>,
    /// When the desired host state was last applied (`None` until it was, and after a
    /// failed try).
    pub(crate) host_applied: tokio::sync::Mutex<Option<std::time::Instant>>,
    /// This control plane itself, for work it hands to background tasks.
    pub(crate) me: std::sync::Weak<Control>,
    /// What the next pass recomputes of the desired host state (see `host_cache.rs`).
    pub(crate) host_marks: std::sync::Mutex<host_cache::HostMarks>,
    /// The parts of the desired host state as last computed.
    pub(crate) host_cache: std::sync::Mutex<host_cache::HostCache>,
    /// Where each address range's search for a free address starts.
    pub(crate) cursors: alloc::Cursors,
    /// The instances the reconciler's next pass looks at.
    pub(crate) work: reconcile_queue::WorkQueue,
    /// Whether the last reconciler pass left nothing to do (see [`Control::settle`]).
    pub(crate) settled: tokio::sync::watch::Sender<bool>,
}

impl Control {
    pub fn new(store: Arc<Store>, agent: Arc<dyn Agent>, storage: Arc<dyn Storage>, config: ControlConfig) -> Result<Arc<Control>> {
        let account_id = store
            .read(|tx| tx.meta_get(account::ACCOUNT_ID_KEY))?
            .ok_or_else(|| corral_types::Error::internal("store has no account id: run bootstrap first"))?;
        let control = Arc::new_cyclic(|me| Control {
            me: me.clone(),
            store,
            agent,
            storage,
            disk_lock: tokio::sync::Mutex::new(()),
            chain_work: std::sync::Mutex::new(chain::ChainWork::everything()),
            chain_pass: tokio::sync::Mutex::new(()),
            config,
            account_id,
            kick: Arc::new(Notify::new()),
            host_applied: tokio::sync::Mutex::new(None),
            host_marks: std::sync::Mutex::default(),
            host_cache: std::sync::Mutex::default(),
            cursors: alloc::Cursors::default(),
            work: reconcile_queue::WorkQueue::new(),
            settled: tokio::sync::watch::Sender::new(false),
        });
        control.default_vpc_ensure()?;
        control.network_acls_ensure()?;
        Ok(control)
    }

    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    pub fn region(&self) -> &str {
        &self.config.region
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// What the storage pool holds (for `corral doctor`).
    pub async fn storage_usage(&self) -> Result<corral_agent_api::PoolUsage> {
        self.storage.usage().await.map_err(|e| corral_types::Error::internal(format!("reading the storage pool: {e}")))
    }

    pub(crate) fn kick(&self) {
        self.kick.notify_one();
    }

    /// Wakes the reconciler to look at these instances (their desired state changed).
    pub(crate) fn kick_instances(&self, ids: impl IntoIterator<Item = String>) {
        let ids: Vec<String> = ids.into_iter().collect();
        // The host state first: a pass that sees the instance sees its part marked too.
        self.host_mark(ids.iter().cloned());
        self.work.mark(ids);
        self.settled.send_replace(false);
        self.kick.notify_one();
    }

    /// With [`ControlConfig::settled_reads`], waits (at most two seconds) until the reconciler
    /// has carried out every change made so far; otherwise returns at once.
    pub async fn settle(&self) {
        if !self.config.settled_reads || *self.settled.borrow() {
            return;
        }
        let mut rx = self.settled.subscribe();
        self.kick.notify_one();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), rx.wait_for(|s| *s)).await;
    }

    /// Kicks the reconciler after a change the host's networks or metadata must follow now
    /// (rules, addresses, routes, metadata options), not only at the next periodic resync.
    pub(crate) fn kick_host(&self) {
        self.host_mark_all();
        self.kick.notify_one();
    }
}

/// Current time as EC2 formats it (`2026-11-26T10:50:00.000Z`).
pub fn now_iso() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}
