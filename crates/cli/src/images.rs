//! `corral images build`, and the build-on-first-start that `corral serve` does.

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
}

pub async fn run(cmd: ImagesCommand) -> anyhow::Result<()> {
    match cmd {
        ImagesCommand::Build { state, only } => {
            std::fs::create_dir_all(&state.state_dir)?;
            let store = std::sync::Arc::new(corral_store::Store::open(&state.state_dir.join("corral.db"))?);
            corral_control::bootstrap(&store, &corral_control::Seed::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
            let agent = std::sync::Arc::new(corral_agent::sim::SimAgent::new(true));
            let control = Control::new(
                store,
                agent,
                corral_control::ControlConfig {
                    region: "local-1".into(),
                    host: "local".into(),
                    max_instances: 0,
                    public_pool: corral_control::DEFAULT_PUBLIC_POOL.parse().expect("pool"),
                },
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let names: Vec<String> =
                if only.is_empty() { corral_images::DEFAULT_IMAGES.iter().map(|s| s.to_string()).collect() } else { only };
            for name in names {
                let id = ensure(&control, &name, false).await?;
                println!("{name}\t{id}");
            }
            Ok(())
        }
    }
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
    let id = control.image_register_built(new).map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!("[images] {name} registered as {id}");
    Ok(id)
}
