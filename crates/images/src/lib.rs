//! Builds Corral's default images from Debian packages and keeps them in a cache directory.
//!
//! Two images exist: `corral-minimal` (static busybox on a small ext4 disk, boots in a few
//! seconds under TCG; its own init does DHCP, reads the EC2 metadata service, installs the key
//! pair for `admin`, runs user-data once per instance and starts dropbear) and `corral-debian-12` (Debian 12 with systemd, OpenSSH and cloud-init,
//! bootstrapped with `mmdebstrap`). Both come with an uncompressed `vmlinux` (booted through its
//! PVH entry on `-M microvm`) and a tiny busybox initramfs that loads the virtio modules and
//! `switch_root`s to the disk. Nothing here touches a database: the caller registers the
//! [`BuiltImage`] it gets back.
//!
//! A third disk, built by [`bootable::build_bootable_debian`], is not a default image: an
//! ordinary Debian 12 cloud disk with GRUB in its MBR and stock cloud-init, the kind of file a
//! user brings to `corral images import` (the tests import it).
//!
//! Cache layout: `<cache_dir>/<name>-<first 12 hex digits of the recipe hash>/` holds
//! `root.qcow2`, `vmlinux`, `initrd.img` and, written last and atomically, `manifest.json`.
//! A build runs in `<cache_dir>/.build-<name>-<pid>/` and is renamed into place only when
//! complete, so a crash never leaves a half image that looks complete. Downloaded packages are
//! kept in `<cache_dir>/debs/`. Older versions of an image are never deleted here. (Corral copies
//! a built disk into its storage pool when it registers it, so instances never depend on the
//! cache.)

mod apt;
pub mod bootable;
mod cpio;
mod debian;
mod disk;
mod elf;
mod initramfs;
mod kernel;
mod minimal;
mod modules;
mod recipe;
mod stage;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use bootable::{build_bootable_debian, cached_bootable_debian};
pub use recipe::recipe_hash_of;

/// An image ready to boot, as found in (or just added to) the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltImage {
    /// `corral-minimal` or `corral-debian-12`.
    pub name: String,
    pub description: String,
    /// Hex SHA-256 of the recipe (scripts, package list, build parameters, recipe revision).
    pub recipe_hash: String,
    /// The qcow2 root disk (whole-disk ext4, no partition table).
    pub base_disk: PathBuf,
    /// Uncompressed `vmlinux` (ELF with a PVH note) for `-M microvm` direct boot.
    pub kernel: Option<PathBuf>,
    /// Uncompressed newc cpio that loads the virtio modules and mounts `root=`.
    pub initrd: Option<PathBuf>,
    /// Kernel command line without the console and TSC options the VMM adds.
    pub cmdline: String,
    /// Virtual size of `base_disk` in bytes.
    pub size_bytes: u64,
}

/// The images `corral images build` builds, in build order.
pub const DEFAULT_IMAGES: &[&str] = &["corral-minimal", "corral-debian-12"];

/// Everything that can go wrong while building or reading an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("unknown image `{name}` (known: {known})")]
    UnknownImage { name: String, known: String },
    #[error("could not {action} `{path}`")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{step} failed")]
    Command {
        step: String,
        #[source]
        source: Box<corral_exec::ExecError>,
    },
    #[error("package `{package}`: {reason}")]
    Package {
        package: String,
        reason: String,
        #[source]
        source: Option<Box<corral_exec::ExecError>>,
    },
    #[error("kernel `{path}`: {reason}")]
    Kernel { path: PathBuf, reason: String },
    #[error("kernel module `{module}` under `{dir}`: {reason}")]
    Module { module: String, dir: PathBuf, reason: String },
    #[error("manifest `{path}`")]
    Manifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("`{command}` printed output that could not be understood: {reason}")]
    Output { command: String, reason: String },
    #[error("building `{image}` needs root ({reason})")]
    NeedsRoot { image: String, reason: String },
    #[error("build task for `{image}` stopped")]
    Join {
        image: String,
        #[source]
        source: tokio::task::JoinError,
    },
}

impl ImageError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ImageError::Io { action, path, source }
    }

    pub(crate) fn command(step: impl Into<String>) -> impl FnOnce(corral_exec::ExecError) -> Self {
        let step = step.into();
        move |source| ImageError::Command { step, source: Box::new(source) }
    }
}

/// `$CORRAL_IMAGE_CACHE`; else `/var/cache/corral/images` when running as root; else
/// `$XDG_CACHE_HOME/corral/images`, else `~/.cache/corral/images`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CORRAL_IMAGE_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if is_root() {
        return PathBuf::from("/var/cache/corral/images");
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("corral/images");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache/corral/images")
}

/// Whether this process runs with effective uid 0 (`/proc/self` is owned by the euid).
pub(crate) fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// What `manifest.json` holds. Paths are relative to the image directory so the cache can move.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub format: u32,
    pub name: String,
    pub description: String,
    pub recipe_hash: String,
    pub base_disk: String,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub cmdline: String,
    pub size_bytes: u64,
    pub kernel_version: String,
    /// Main Debian packages the image was made from (name, version): the kernel, busybox and,
    /// for the Debian image, systemd, OpenSSH and cloud-init (the rest is in its dpkg database).
    pub packages: Vec<(String, String)>,
    pub built_at_unix: u64,
    pub build_seconds: u64,
}

const MANIFEST_FORMAT: u32 = 1;
const MANIFEST: &str = "manifest.json";

/// What a recipe's build step produced inside the build directory (file names relative to it).
pub(crate) struct Output {
    pub base_disk: String,
    pub kernel: String,
    pub initrd: String,
    pub kernel_version: String,
    pub packages: Vec<(String, String)>,
    pub size_bytes: u64,
}

/// Paths and callbacks a recipe builds with.
pub(crate) struct BuildCtx<'a> {
    /// The cache directory (absolute).
    pub cache_dir: &'a Path,
    /// `<cache_dir>/debs`: downloaded packages, shared by all images.
    pub debs_dir: PathBuf,
    /// The directory that becomes the image directory.
    pub out_dir: PathBuf,
    /// Scratch space inside `out_dir`, removed before the rename.
    pub work_dir: PathBuf,
    pub recipe: &'static recipe::Recipe,
    pub progress: &'a (dyn Fn(&str) + Send + Sync),
}

fn image_dir(cache_dir: &Path, name: &str, hash: &str) -> PathBuf {
    cache_dir.join(format!("{name}-{}", &hash[..12]))
}

/// The already-built image for the current recipe, if the cache has it; never builds.
pub fn cached(name: &str, cache_dir: &Path) -> Option<BuiltImage> {
    let recipe = recipe::get(name).ok()?;
    let cache_dir = std::fs::canonicalize(cache_dir).ok()?;
    let hash = recipe::recipe_hash(recipe);
    let dir = image_dir(&cache_dir, name, &hash);
    let text = std::fs::read(dir.join(MANIFEST)).ok()?;
    let m: Manifest = serde_json::from_slice(&text).ok()?;
    if m.format != MANIFEST_FORMAT || m.recipe_hash != hash || m.name != name {
        return None;
    }
    let image = from_manifest(&dir, &m);
    let files = [Some(&image.base_disk), image.kernel.as_ref(), image.initrd.as_ref()];
    if files.into_iter().flatten().all(|f| f.is_file()) {
        Some(image)
    } else {
        None
    }
}

fn from_manifest(dir: &Path, m: &Manifest) -> BuiltImage {
    BuiltImage {
        name: m.name.clone(),
        description: m.description.clone(),
        recipe_hash: m.recipe_hash.clone(),
        base_disk: dir.join(&m.base_disk),
        kernel: m.kernel.as_ref().map(|k| dir.join(k)),
        initrd: m.initrd.as_ref().map(|i| dir.join(i)),
        cmdline: m.cmdline.clone(),
        size_bytes: m.size_bytes,
    }
}

/// Returns the image from the cache, building it first when the cache lacks the current recipe.
///
/// Builds of the same image are serialised with a lock file in `cache_dir`; the build runs in
/// a temporary directory there and is renamed into place once `manifest.json` is written.
pub async fn build(name: &str, cache_dir: &Path, progress: &(dyn Fn(&str) + Send + Sync)) -> Result<BuiltImage, ImageError> {
    let recipe = recipe::get(name)?;
    tokio::fs::create_dir_all(cache_dir).await.map_err(ImageError::io("create", cache_dir))?;
    let cache_dir = tokio::fs::canonicalize(cache_dir).await.map_err(ImageError::io("resolve", cache_dir))?;
    if let Some(image) = cached(name, &cache_dir) {
        progress(&format!("{name}: up to date in the cache"));
        return Ok(image);
    }

    let lock_path = cache_dir.join(format!(".{name}.lock"));
    let _lock = lock(&lock_path, name).await?;
    if let Some(image) = cached(name, &cache_dir) {
        progress(&format!("{name}: built meanwhile by a concurrent build"));
        return Ok(image);
    }
    remove_stale_builds(&cache_dir, name).await;

    let hash = recipe::recipe_hash(recipe);
    let out_dir = cache_dir.join(format!(".build-{name}-{}", std::process::id()));
    let ctx = BuildCtx {
        cache_dir: &cache_dir,
        debs_dir: cache_dir.join("debs"),
        work_dir: out_dir.join("work"),
        out_dir: out_dir.clone(),
        recipe,
        progress,
    };
    progress(&format!("{name}: building (recipe {})", &hash[..12]));
    tracing::info!(image = name, recipe = &hash[..12], dir = %out_dir.display(), "building image");
    let started = Instant::now();
    let result = async {
        tokio::fs::create_dir_all(&ctx.work_dir).await.map_err(ImageError::io("create", &ctx.work_dir))?;
        tokio::fs::create_dir_all(&ctx.debs_dir).await.map_err(ImageError::io("create", &ctx.debs_dir))?;
        let output = match recipe.kind {
            recipe::Kind::Minimal => minimal::build(&ctx).await?,
            recipe::Kind::Debian => debian::build(&ctx).await?,
        };
        remove_tree(&ctx.work_dir).await?;
        finish(&ctx, &hash, output, started).await
    }
    .await;
    match result {
        Ok(image) => {
            progress(&format!("{name}: done in {} s", started.elapsed().as_secs()));
            tracing::info!(image = name, seconds = started.elapsed().as_secs(), "image built");
            Ok(image)
        }
        Err(e) => {
            let _ = remove_tree(&out_dir).await;
            Err(e)
        }
    }
}

/// Writes the manifest (last, atomically) and renames the build directory into place.
async fn finish(ctx: &BuildCtx<'_>, hash: &str, out: Output, started: Instant) -> Result<BuiltImage, ImageError> {
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        name: ctx.recipe.name.to_string(),
        description: ctx.recipe.description.to_string(),
        recipe_hash: hash.to_string(),
        base_disk: out.base_disk,
        kernel: Some(out.kernel),
        initrd: Some(out.initrd),
        cmdline: ctx.recipe.cmdline.to_string(),
        size_bytes: out.size_bytes,
        kernel_version: out.kernel_version,
        packages: out.packages,
        built_at_unix: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        build_seconds: started.elapsed().as_secs(),
    };
    let final_dir = image_dir(ctx.cache_dir, ctx.recipe.name, hash);
    let out_dir = ctx.out_dir.clone();
    let image = from_manifest(&final_dir, &manifest);
    tokio::task::spawn_blocking(move || -> Result<(), ImageError> {
        let text = serde_json::to_vec_pretty(&manifest).map_err(|source| ImageError::Manifest { path: out_dir.join(MANIFEST), source })?;
        publish_build(&out_dir, &final_dir, &text)
    })
    .await
    .map_err(|source| ImageError::Join { image: ctx.recipe.name.to_string(), source })??;
    Ok(image)
}

/// Makes a finished build durable and visible (blocking): its files are synced, the manifest
/// written last and atomically, a damaged directory of the same recipe moved aside, the build
/// renamed into place and the cache directory synced. A crash at any point leaves either no
/// image or a complete one.
pub(crate) fn publish_build(out_dir: &Path, final_dir: &Path, manifest: &[u8]) -> Result<(), ImageError> {
    // Make the image files durable before the manifest claims they are complete.
    for entry in std::fs::read_dir(out_dir).map_err(ImageError::io("list", out_dir))? {
        let path = entry.map_err(ImageError::io("list", out_dir))?.path();
        if path.is_file() {
            std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(ImageError::io("sync", &path))?;
        }
    }
    stage::write_atomic(&out_dir.join(MANIFEST), manifest)?;
    if final_dir.exists() {
        // An incomplete or damaged directory for this recipe (the cache lookup rejected it).
        let doomed = out_dir.with_file_name(format!(".damaged-{}", std::process::id()));
        std::fs::rename(final_dir, &doomed).map_err(ImageError::io("move aside", final_dir))?;
        let _ = std::fs::remove_dir_all(&doomed);
    }
    std::fs::rename(out_dir, final_dir).map_err(ImageError::io("rename into place", final_dir))?;
    if let Some(parent) = final_dir.parent() {
        let _ = std::fs::File::open(parent).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// Holds an exclusive lock on `path` until dropped.
async fn lock(path: &Path, image: &str) -> Result<std::fs::File, ImageError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(ImageError::io("open lock file", &path))?;
        file.lock().map_err(ImageError::io("lock", &path))?;
        Ok(file)
    })
    .await
    .map_err(|source| ImageError::Join { image: image.to_string(), source })?
}

/// Removes build directories of `name` left by crashed or cancelled builds (we hold the lock,
/// so no live build owns them).
async fn remove_stale_builds(cache_dir: &Path, name: &str) {
    let prefix = format!(".build-{name}-");
    let damaged = ".damaged-";
    let Ok(mut entries) = tokio::fs::read_dir(cache_dir).await else { return };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let file_name = entry.file_name();
        let Some(n) = file_name.to_str() else { continue };
        if n.starts_with(&prefix) || n.starts_with(damaged) {
            tracing::info!(dir = %entry.path().display(), "removing an interrupted image build");
            let _ = remove_tree(&entry.path()).await;
        }
    }
}

async fn remove_tree(path: &Path) -> Result<(), ImageError> {
    match tokio::fs::remove_dir_all(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ImageError::Io { action: "remove", path: path.to_path_buf(), source: e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_is_none_for_an_empty_cache_and_unknown_names() {
        let dir = tempfile::tempdir().unwrap();
        assert!(cached("corral-minimal", dir.path()).is_none());
        assert!(cached("no-such-image", dir.path()).is_none());
    }

    #[test]
    fn cached_accepts_only_a_complete_manifest_for_the_current_recipe() {
        let dir = tempfile::tempdir().unwrap();
        let recipe = recipe::get("corral-minimal").unwrap();
        let hash = recipe::recipe_hash(recipe);
        let img = image_dir(dir.path(), "corral-minimal", &hash);
        std::fs::create_dir_all(&img).unwrap();
        for f in ["root.qcow2", "vmlinux", "initrd.img"] {
            std::fs::write(img.join(f), b"x").unwrap();
        }
        let mut m = Manifest {
            format: MANIFEST_FORMAT,
            name: "corral-minimal".into(),
            description: "d".into(),
            recipe_hash: "0".repeat(64),
            base_disk: "root.qcow2".into(),
            kernel: Some("vmlinux".into()),
            initrd: Some("initrd.img".into()),
            cmdline: "root=/dev/vda rw".into(),
            size_bytes: 1,
            kernel_version: "v".into(),
            packages: vec![],
            built_at_unix: 0,
            build_seconds: 0,
        };
        std::fs::write(img.join(MANIFEST), serde_json::to_vec(&m).unwrap()).unwrap();
        assert!(cached("corral-minimal", dir.path()).is_none(), "stale recipe hash accepted");
        m.recipe_hash = hash.clone();
        std::fs::write(img.join(MANIFEST), serde_json::to_vec(&m).unwrap()).unwrap();
        let got = cached("corral-minimal", dir.path()).expect("complete image");
        assert_eq!(got.base_disk, std::fs::canonicalize(&img).unwrap().join("root.qcow2"));
        assert_eq!(got.recipe_hash, hash);
        std::fs::remove_file(img.join("vmlinux")).unwrap();
        assert!(cached("corral-minimal", dir.path()).is_none(), "missing kernel accepted");
    }

    #[test]
    fn default_cache_dir_honours_the_environment_variable() {
        // Only reads the variable when set; do not mutate the environment (tests run in threads).
        let dir = default_cache_dir();
        match std::env::var_os("CORRAL_IMAGE_CACHE").filter(|d| !d.is_empty()) {
            Some(v) => assert_eq!(dir, PathBuf::from(v)),
            None => assert!(dir.ends_with("corral/images"), "{}", dir.display()),
        }
    }

    #[tokio::test]
    async fn unknown_image_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = build("corral-nope", dir.path(), &|_| {}).await.unwrap_err();
        assert!(matches!(err, ImageError::UnknownImage { .. }), "{err}");
    }
}
