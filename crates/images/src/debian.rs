//! Builds `corral-debian-12`: `mmdebstrap` bootstraps Debian 12 (minbase plus systemd, udev,
//! OpenSSH, cloud-init, ifupdown/dhclient and the cloud kernel), Corral's cloud-init settings
//! are written into it, per-machine state (SSH host keys, machine-id) is removed, and the tree
//! becomes an ext4 qcow2 disk. The kernel and modules for direct boot come from the tree itself,
//! so they always match what is installed inside.

use std::path::Path;

use crate::recipe::{DEBIAN_SUITE, DEBIAN_VARIANT};
use crate::stage::{self, in_tree};
use crate::{minimal, BuildCtx, ImageError, Output};

/// The Debian mirror (`$CORRAL_DEBIAN_MIRROR` or deb.debian.org); not part of the recipe.
pub(crate) fn mirror() -> String {
    std::env::var("CORRAL_DEBIAN_MIRROR").ok().filter(|m| !m.is_empty()).unwrap_or_else(|| "http://deb.debian.org/debian".into())
}

pub(crate) fn security_mirror() -> String {
    std::env::var("CORRAL_DEBIAN_SECURITY_MIRROR")
        .ok()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "http://deb.debian.org/debian-security".into())
}

/// Files dpkg does not unpack into the image (documentation and translations).
pub(crate) const DPKG_EXCLUDES: &[&str] = &[
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/lintian/*",
];

pub(crate) async fn build(ctx: &BuildCtx<'_>) -> Result<Output, ImageError> {
    if !crate::is_root() {
        return Err(ImageError::NeedsRoot {
            image: ctx.recipe.name.into(),
            reason: "mmdebstrap --mode=root and file ownership in the ext4 image".into(),
        });
    }
    let packages = minimal::fetch_packages(ctx).await?;
    let busybox = packages[0].1.join("bin/busybox");
    let applets = stage::busybox_applets(&busybox).await?;

    let root = ctx.work_dir.join("rootfs");
    (ctx.progress)(&format!(
        "bootstrapping Debian 12 ({DEBIAN_SUITE}, {}) with mmdebstrap: takes a few minutes",
        ctx.recipe.debootstrap_packages.join(" ")
    ));
    mmdebstrap(ctx, &root).await?;

    (ctx.progress)("configuring cloud-init, SSH and fstab");
    configure(ctx, &root).await?;
    let (version, _) = minimal::kernel_and_initramfs(ctx, &root, &busybox, &applets).await?;
    let mut versions = installed_versions(&root, &[&format!("linux-image-{version}"), "systemd", "openssh-server", "cloud-init"]).await?;
    versions.extend(packages.iter().map(|(p, _)| (p.name.clone(), p.version.clone())));

    (ctx.progress)("making root file system");
    minimal::finish(ctx, &root, version, versions).await
}

async fn mmdebstrap(ctx: &BuildCtx<'_>, root: &Path) -> Result<(), ImageError> {
    bootstrap(root, &ctx.recipe.debootstrap_packages.join(","), &[]).await
}

/// `mmdebstrap` of Debian 12 (minbase plus `packages`, comma-separated) into directory `root`,
/// without documentation, from the mirrors; `extra` are more mmdebstrap options (hooks).
pub(crate) async fn bootstrap(root: &Path, packages: &str, extra: &[String]) -> Result<(), ImageError> {
    let mirror = mirror();
    let mut args: Vec<String> = vec![
        "--mode=root".into(),
        format!("--variant={DEBIAN_VARIANT}"),
        "--format=directory".into(),
        "--quiet".into(),
        format!("--include={packages}"),
        "--aptopt=Acquire::Retries \"3\"".into(),
    ];
    args.extend_from_slice(extra);
    args.extend(DPKG_EXCLUDES.iter().map(|e| format!("--dpkgopt={e}")));
    args.push(DEBIAN_SUITE.into());
    args.push(root.to_string_lossy().into_owned());
    args.push(format!("deb {mirror} {DEBIAN_SUITE} main"));
    args.push(format!("deb {mirror} {DEBIAN_SUITE}-updates main"));
    args.push(format!("deb {} {DEBIAN_SUITE}-security main", security_mirror()));
    corral_exec::run("mmdebstrap", &args).await.map_err(ImageError::command(format!("bootstrapping Debian into {}", root.display())))?;
    Ok(())
}

/// Writes the recipe's files and removes what must differ per instance.
async fn configure(ctx: &BuildCtx<'_>, root: &Path) -> Result<(), ImageError> {
    let root = root.to_path_buf();
    let recipe = ctx.recipe;
    tokio::task::spawn_blocking(move || -> Result<(), ImageError> {
        for asset in recipe.assets {
            stage::write_file(&in_tree(&root, asset.path), asset.content.as_bytes(), asset.mode)?;
        }
        scrub_instance_identity(&root)?;
        Ok(())
    })
    .await
    .map_err(|source| ImageError::Join { image: recipe.name.to_string(), source })?
}

/// Versions of some packages in the tree's dpkg database, for the manifest.
pub(crate) async fn installed_versions(root: &Path, names: &[&str]) -> Result<Vec<(String, String)>, ImageError> {
    let admindir = format!("--admindir={}", root.join("var/lib/dpkg").display());
    let mut args = vec![admindir.as_str(), "-W", "-f=${Package} ${Version}\\n"];
    args.extend(names.iter().copied());
    let out = corral_exec::run("dpkg-query", &args).await.map_err(ImageError::command("reading package versions from the image"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect())
}

/// Removes what must differ per instance from a Debian tree about to become an image: SSH host
/// keys (cloud-init or the ssh unit's ExecStartPre make new ones), machine-id (systemd makes one
/// on first boot when the file is empty), and apt's lists and caches.
pub(crate) fn scrub_instance_identity(root: &Path) -> Result<(), ImageError> {
    let ssh = root.join("etc/ssh");
    for entry in std::fs::read_dir(&ssh).map_err(ImageError::io("list", &ssh))? {
        let path = entry.map_err(ImageError::io("list", &ssh))?.path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("ssh_host_")) {
            std::fs::remove_file(&path).map_err(ImageError::io("remove", &path))?;
        }
    }
    stage::write_file(&root.join("etc/machine-id"), b"", 0o444)?;
    for stale in ["var/lib/dbus/machine-id", "etc/resolv.conf"] {
        let p = root.join(stale);
        if p.symlink_metadata().is_ok() {
            std::fs::remove_file(&p).map_err(ImageError::io("remove", &p))?;
        }
    }
    for dir in ["var/lib/apt/lists", "var/cache/apt", "var/log/apt"] {
        let d = root.join(dir);
        if !d.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&d).map_err(ImageError::io("list", &d))? {
            let path = entry.map_err(ImageError::io("list", &d))?.path();
            if path.is_file() {
                std::fs::remove_file(&path).map_err(ImageError::io("remove", &path))?;
            }
        }
    }
    Ok(())
}
