//! `corral images build` and `corral images import`, and the build-on-first-start that
//! `corral serve` does.

use crate::StateArgs;
use corral_control::image::NewImage;
use corral_control::Control;

#[derive(clap::Subcommand)]
pub enum ImagesCommand {
    /// Builds (or finds, cached) the default images and registers them.
    Build {
        #[command(flatten)]
        state: StateArgs,
        /// Only this image (repeatable); default: all default images.
        #[arg(long = "only")]
        only: Vec<String>,
    },
    /// Imports a raw or qcow2 disk image that carries its own bootloader (booted on q35
    /// through its firmware, with an EC2 SMBIOS identity for cloud-init) and registers it as
    /// an image; prints the new image id.
    Import {
        #[command(flatten)]
        state: StateArgs,
        /// The disk image file (raw or qcow2; the format is detected).
        file: std::path::PathBuf,
        /// The image name (unique, as for RegisterImage/CreateImage).
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
}

pub async fn run(cmd: ImagesCommand) -> anyhow::Result<()> {
    match cmd {
        ImagesCommand::Build { state, only } => {
            let control = pool_control(&state)?;
            let names: Vec<String> =
                if only.is_empty() { corral_images::DEFAULT_IMAGES.iter().map(|s| s.to_string()).collect() } else { only };
            for name in names {
                let id = ensure(&control, &name, false).await?;
                println!("{name}\t{id}");
            }
            Ok(())
        }
        ImagesCommand::Import { state, file, name, description } => {
            let meta = std::fs::metadata(&file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            if !meta.is_file() {
                anyhow::bail!("{} is not a regular file", file.display());
            }
            let file = std::fs::canonicalize(&file)?;
            let control = pool_control(&state)?;
            eprintln!("[images] importing {} as {name}", file.display());
            let id = control.image_import(&name, &description, &file).await.map_err(|e| match &e.internal {
                Some(detail) => anyhow::anyhow!("{:?}: {} ({detail})", e.code, e.message),
                None => anyhow::anyhow!("{:?}: {}", e.code, e.message),
            })?;
            println!("{id}");
            Ok(())
        }
    }
}

/// A control plane over the state directory's store and storage pool, with no hypervisor:
/// what `images build` and `images import` need to add layers and register images while
/// `corral serve` may be running (the store is SQLite in WAL mode; the pool takes new files).
pub fn pool_control(state: &StateArgs) -> anyhow::Result<std::sync::Arc<Control>> {
    std::fs::create_dir_all(&state.state_dir)?;
    let store = std::sync::Arc::new(corral_store::Store::open(&state.state_dir.join("corral.db"))?);
    corral_control::bootstrap(&store, &corral_control::Seed::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let agent = std::sync::Arc::new(corral_agent::sim::SimAgent::new(true));
    let pool = std::sync::Arc::new(corral_agent::pool::Pool::new(state.state_dir.join(crate::POOL_DIR)));
    Control::new(
        store,
        agent,
        pool,
        corral_control::ControlConfig {
            region: "local-1".into(),
            regions: vec!["local-1".into()],
            host: "local".into(),
            max_instances: 0,
            public_pool: corral_control::DEFAULT_PUBLIC_POOL.parse().expect("pool"),
            quotas: Default::default(),
            settled_reads: false,
            sweep_grace: corral_control::sweep::SWEEP_GRACE,
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Makes sure image `name` is built (from cache when its recipe has not changed) and
/// registered; returns its image id. With `placeholder_ok` (the simulated hypervisor, which
/// never reads disks) an image not yet built is registered without artifacts instead.
pub async fn ensure(control: &Control, name: &str, placeholder_ok: bool) -> anyhow::Result<String> {
    let cache = corral_images::default_cache_dir();
    let built = match corral_images::cached(name, &cache) {
        Some(b) => Some(b),
        None if placeholder_ok => None,
        None => {
            eprintln!("[images] building {name} into {} (first start only; cached afterwards)", cache.display());
            let progress = |line: &str| eprintln!("[images] {line}");
            Some(corral_images::build(name, &cache, &progress).await?)
        }
    };
    let new = match built {
        Some(b) => NewImage {
            name: b.name.clone(),
            description: b.description.clone(),
            base_disk: b.base_disk.display().to_string(),
            kernel: b.kernel.as_ref().map(|p| p.display().to_string()),
            initrd: b.initrd.as_ref().map(|p| p.display().to_string()),
            cmdline: b.cmdline.clone(),
            size_bytes: b.size_bytes,
            recipe_hash: b.recipe_hash.clone(),
        },
        None => NewImage {
            name: name.to_string(),
            description: format!("{name} (simulated: not built)"),
            base_disk: String::new(),
            kernel: None,
            initrd: None,
            cmdline: String::new(),
            size_bytes: 8 << 30,
            recipe_hash: "simulated".into(),
        },
    };
    let id = control.image_register_built(new).await.map_err(|e| anyhow::anyhow!("{e}: {:?}", e.internal))?;
    eprintln!("[images] {name} registered as {id}");
    Ok(id)
}
