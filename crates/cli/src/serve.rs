//! `corral serve`: the store, the control plane, the local agent and the API in one process.

use crate::StateArgs;
use anyhow::Context;
use corral_control::{Control, ControlConfig, Seed};
use std::path::Path;
use std::sync::Arc;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hypervisor {
    Qemu,
    Sim,
}

/// How long the simulated hypervisor's VMs take to change state.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimDelays {
    /// None: a launch is running by the next DescribeInstances, a stop stopped.
    None,
    /// About as long as EC2 (pending 8 s, stopping 6 s).
    Aws,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageSet {
    /// corral-minimal and corral-debian-12.
    All,
    /// corral-minimal only (fast first start).
    Minimal,
    /// Build nothing; use `corral images build` later.
    None,
}

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address for the EC2 endpoint (port 0 picks a free one; the chosen one is printed and
    /// written to STATE_DIR/endpoint).
    #[arg(long, env = "CORRAL_LISTEN", default_value = "127.0.0.1:8773")]
    pub listen: String,
    #[command(flatten)]
    pub state: StateArgs,
    #[arg(long, value_enum, env = "CORRAL_HYPERVISOR", default_value = "qemu")]
    pub hypervisor: Hypervisor,
    /// The home region: the one `corral credentials` names, whose store holds the account.
    #[arg(long, env = "CORRAL_REGION", default_value = "local-1")]
    pub region: String,
    /// More regions to serve besides the home region: a comma-separated list of regions of
    /// the aws partition, or `all`. Default: `all` with `--hypervisor sim`, none with qemu.
    #[arg(long, env = "CORRAL_REGIONS")]
    pub regions: Option<String>,
    /// Store location: a SQLite file path (default STATE_DIR/corral.db). PostgreSQL URLs are
    /// for the multi-host set-up, not built yet.
    #[arg(long, env = "CORRAL_DB")]
    pub db: Option<String>,
    /// Seeds the 12-digit account id on first start.
    #[arg(long, env = "CORRAL_ACCOUNT_ID")]
    pub account_id: Option<String>,
    /// Seeds the root access key id (give the secret too).
    #[arg(long, env = "CORRAL_ACCESS_KEY_ID")]
    pub access_key_id: Option<String>,
    #[arg(long, env = "CORRAL_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_access_key: Option<String>,
    /// Which default images to build (once, cached) and register at start.
    #[arg(long, value_enum, env = "CORRAL_IMAGES", default_value = "all")]
    pub images: ImageSet,
    /// Where public and elastic IPs come from. Addresses from it are reachable from this host
    /// only (no uplink is configured).
    #[arg(long, env = "CORRAL_PUBLIC_POOL", default_value = corral_control::DEFAULT_PUBLIC_POOL)]
    pub public_pool: String,
    /// Prefix of the network namespaces Corral makes (one per VPC): tests give each run its own.
    /// Default: one kept in the state directory, unique to it (`corral-XXXXXX-`), so two clouds
    /// on one host never take each other's namespaces for leftovers (`corral-` for a state
    /// directory made before).
    #[arg(long, env = "CORRAL_NETNS_PREFIX", default_value = DEFAULT_NETNS_PREFIX)]
    pub netns_prefix: String,
    /// The namespace that plays the host for public and elastic IPs (holds the routes to
    /// them). Default: the host's own. Tests name a namespace they made.
    #[arg(long, env = "CORRAL_HOST_NETNS")]
    pub host_netns: Option<String>,
    /// TCP ports on this host that guests may reach (comma-separated). Default: none; whatever
    /// a guest sends to the host itself is dropped, replies to the host's own connections
    /// (SSH to a public IP) excepted.
    #[arg(long, env = "CORRAL_GUEST_HOST_PORTS", value_delimiter = ',')]
    pub guest_host_ports: Vec<u16>,
    /// Changes one of AWS's default quotas, `NAME=N` (repeatable, or comma-separated in
    /// CORRAL_LIMITS): elastic-ips, vpcs, subnets-per-vpc, internet-gateways,
    /// route-tables-per-vpc, routes-per-table, security-groups, rules-per-group,
    /// tags-per-resource.
    #[arg(long = "limit", env = "CORRAL_LIMITS", value_delimiter = ',')]
    pub limits: Vec<String>,
    /// With `--hypervisor sim`: how long VMs take to boot and shut down.
    #[arg(long, value_enum, env = "CORRAL_SIM_DELAYS", default_value = "none")]
    pub sim_delays: SimDelays,
    /// Seconds a guest gets to power off after an ACPI request before the stop is forced.
    #[arg(long, env = "CORRAL_STOP_TIMEOUT_SECS", default_value_t = 60)]
    pub stop_timeout_secs: u64,
    /// Whether each commit is fsynced before the API answers (`full`) or at checkpoints only
    /// (`normal`: a power loss may lose the last changes). Default: `full` with QEMU, whose
    /// host steps follow the commits; `normal` with the simulated hypervisor, a CI double.
    #[arg(long, value_enum, env = "CORRAL_DURABILITY")]
    pub durability: Option<DurabilityArg>,
    /// Seconds a file in the storage pool that no record names (what a crash left between a
    /// file and its record) is left alone before the sweep removes it. The sweep runs after
    /// start and then every grace period (at most every 10 minutes).
    #[arg(long, env = "CORRAL_SWEEP_GRACE_SECS", default_value_t = 600)]
    pub sweep_grace_secs: u64,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurabilityArg {
    Full,
    Normal,
}

impl ServeArgs {
    /// The store's durability: the operator's, or the hypervisor's default.
    pub fn durability(&self) -> corral_store::Durability {
        match (self.durability, self.hypervisor) {
            (Some(DurabilityArg::Full), _) | (None, Hypervisor::Qemu) => corral_store::Durability::Full,
            (Some(DurabilityArg::Normal), _) | (None, Hypervisor::Sim) => corral_store::Durability::Normal,
        }
    }
}

const ENDPOINT_FILE: &str = "endpoint";
const DEFAULT_NETNS_PREFIX: &str = "corral-";
const NETNS_PREFIX_FILE: &str = "netns-prefix";

/// The namespace prefix of the cloud in `state_dir`: the operator's when given; else the one
/// kept in the state directory; else, for a new state directory, a new one unique to it (and
/// `corral-`, the names its namespaces already have, for one made before this existed).
fn netns_prefix(state_dir: &Path, given: &str, existing_store: bool) -> anyhow::Result<String> {
    if given != DEFAULT_NETNS_PREFIX {
        return Ok(given.to_string());
    }
    let file = state_dir.join(NETNS_PREFIX_FILE);
    let usable = |p: &str| !p.is_empty() && p.len() <= 32 && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if let Ok(kept) = std::fs::read_to_string(&file) {
        let kept = kept.trim();
        if usable(kept) {
            return Ok(kept.to_string());
        }
    }
    let prefix = match existing_store {
        true => DEFAULT_NETNS_PREFIX.to_string(),
        false => format!("corral-{:06x}-", rand::random::<u32>() & 0xff_ffff),
    };
    std::fs::write(&file, format!("{prefix}\n")).with_context(|| format!("writing {}", file.display()))?;
    Ok(prefix)
}

/// (endpoint URL, region) written by a running or last `corral serve`.
pub fn read_endpoint(state_dir: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(state_dir.join(ENDPOINT_FILE)).ok()?;
    let mut lines = text.lines();
    Some((lines.next()?.to_string(), lines.next()?.to_string()))
}

pub async fn run(mut args: ServeArgs) -> anyhow::Result<()> {
    let state_dir = &args.state.state_dir;
    std::fs::create_dir_all(state_dir).with_context(|| format!("creating {}", state_dir.display()))?;
    make_private(state_dir)?;
    let _held = hold(state_dir)?;
    let db_path = match &args.db {
        Some(db) if db.starts_with("postgres") => anyhow::bail!("PostgreSQL stores arrive with multi-host support; use SQLite for now"),
        Some(db) => std::path::PathBuf::from(db.strip_prefix("sqlite://").unwrap_or(db)),
        None => state_dir.join("corral.db"),
    };
    args.netns_prefix = netns_prefix(state_dir, &args.netns_prefix, db_path.exists())?;
    let store = Arc::new(corral_store::Store::open_durable(&db_path, args.durability())?);
    let seed = Seed {
        account_id: args.account_id.clone(),
        access_key_id: args.access_key_id.clone(),
        secret_access_key: args.secret_access_key.clone(),
    };
    let (account_id, _key) = corral_control::bootstrap(&store, &seed).map_err(|e| anyhow::anyhow!("{e}: {:?}", e.internal))?;

    let spec = args.regions.clone().unwrap_or_else(|| if args.hypervisor == Hypervisor::Sim { "all".into() } else { String::new() });
    let regions =
        corral_control::cloud::served_regions(&args.region, &spec).map_err(|e| anyhow::anyhow!("{}", e.internal.unwrap_or(e.message)))?;
    let quotas = corral_control::quota::Quotas::parse(&args.limits).map_err(|e| anyhow::anyhow!(e))?;
    let hosts = Arc::new(crate::regions::Hosts::new(&args, &regions)?);
    let home = hosts.open(&args.region, state_dir).await?;
    let config = ControlConfig {
        region: args.region.clone(),
        regions: regions.clone(),
        host: home.host.clone(),
        max_instances: home.max_instances,
        public_pool: home.public_pool,
        quotas,
        settled_reads: args.hypervisor == Hypervisor::Sim && args.sim_delays == SimDelays::None,
        sweep_grace: std::time::Duration::from_secs(args.sweep_grace_secs),
    };
    let control = Control::new(store, home.agent, home.storage, config.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
    control.spawn_reconciler();
    let factory = crate::regions::factory(hosts, state_dir.clone(), account_id.clone(), config);
    let cloud = corral_control::Cloud::new(control.clone(), regions.clone(), factory);

    let listener = tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let endpoint = format!("http://{addr}");
    std::fs::write(state_dir.join(ENDPOINT_FILE), format!("{endpoint}\n{}\n", args.region))?;
    eprintln!(
        "Corral {} serving the EC2 API at {endpoint} (region {}, {} regions in all, account {account_id})",
        env!("CARGO_PKG_VERSION"),
        args.region,
        regions.len()
    );
    eprintln!("  use it:  eval \"$(corral credentials --env --state-dir {})\"", state_dir.display());

    let images = match args.images {
        ImageSet::All => corral_images::DEFAULT_IMAGES.to_vec(),
        ImageSet::Minimal => vec!["corral-minimal"],
        ImageSet::None => vec![],
    };
    let sim = args.hypervisor == Hypervisor::Sim;
    let c = Arc::clone(&control);
    tokio::spawn(async move {
        for name in images {
            if let Err(e) = crate::images::ensure(&c, name, sim).await {
                tracing::error!(image = name, error = %e, "building the image failed; `corral images build` retries");
            }
        }
    });

    let app = corral_api::router(corral_api::ApiState { cloud });
    corral_api::serve(listener, app, corral_api::Limits::default(), shutdown()).await;
    eprintln!("Corral stopped; running instances keep running and are re-adopted at the next start");
    Ok(())
}

/// Held for as long as `corral serve` runs: a second one on the same state directory would
/// drive the same VMs, namespaces and store as if they were its own. The lock goes with the
/// process, however it ends.
fn hold(state_dir: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = state_dir.join("serve.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another `corral serve` is running on {} (it holds {}); stop it first, or give this one another --state-dir",
            state_dir.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

/// The state directory is its owner's alone (0700): it holds the store (with the secret keys),
/// the VMs' consoles and the disks. Nothing that runs as another user reads it (dnsmasq's
/// files are under /run, see `regions::net_runtime_dir`).
pub(crate) fn make_private(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("making {} private (0700)", dir.display()))
}

async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod netns_prefix_tests {
    use super::*;

    #[test]
    fn each_new_state_directory_gets_its_own_prefix_and_keeps_it() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let pa = netns_prefix(a.path(), DEFAULT_NETNS_PREFIX, false).unwrap();
        let pb = netns_prefix(b.path(), DEFAULT_NETNS_PREFIX, false).unwrap();
        assert!(pa.starts_with("corral-") && pa.len() == "corral-123456-".len(), "{pa}");
        assert_ne!(pa, pb, "two clouds, two prefixes");
        assert_eq!(netns_prefix(a.path(), DEFAULT_NETNS_PREFIX, true).unwrap(), pa, "kept across restarts");
    }

    #[test]
    fn an_existing_cloud_keeps_corral_and_an_operator_prefix_wins() {
        let old = tempfile::tempdir().unwrap();
        assert_eq!(netns_prefix(old.path(), DEFAULT_NETNS_PREFIX, true).unwrap(), "corral-");
        assert_eq!(netns_prefix(old.path(), DEFAULT_NETNS_PREFIX, false).unwrap(), "corral-", "kept once written");
        let other = tempfile::tempdir().unwrap();
        assert_eq!(netns_prefix(other.path(), "test-x-", false).unwrap(), "test-x-");
        assert!(!other.path().join(NETNS_PREFIX_FILE).exists(), "an operator's prefix is not written down");
    }
}
