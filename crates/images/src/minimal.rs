//! Builds `corral-minimal`: the Debian cloud kernel and static busybox (both fetched with apt),
//! a small ext4 root disk with a shell-script init that prints `corral-minimal: init ready`,
//! and the shared busybox initramfs.

use std::path::{Path, PathBuf};

use crate::recipe::ROOT_LABEL;
use crate::stage::{self, in_tree};
use crate::{apt, disk, initramfs, kernel, BuildCtx, ImageError, Output};

/// Fetches and unpacks the host packages of the recipe; returns (package, unpacked dir) pairs.
pub(crate) async fn fetch_packages(ctx: &BuildCtx<'_>) -> Result<Vec<(apt::Package, PathBuf)>, ImageError> {
    let mut out = Vec::new();
    for name in ctx.recipe.host_packages {
        (ctx.progress)(&format!("resolving {name}"));
        let package = apt::resolve(name, ctx.progress).await?;
        let deb = apt::fetch(&package, &ctx.debs_dir, &ctx.work_dir, ctx.progress).await?;
        (ctx.progress)(&format!("unpacking {} {}", package.name, package.version));
        let dest = ctx.work_dir.join(format!("pkg-{}", package.name));
        apt::extract(&deb, &dest).await?;
        out.push((package, dest));
    }
    Ok(out)
}

/// The `vmlinuz-<version>` under `<root>/boot`, and its version.
pub(crate) async fn find_vmlinuz(root: &Path) -> Result<(PathBuf, String), ImageError> {
    let boot = root.join("boot");
    let mut found = Vec::new();
    let mut entries = tokio::fs::read_dir(&boot).await.map_err(ImageError::io("list", &boot))?;
    while let Some(e) = entries.next_entry().await.map_err(ImageError::io("list", &boot))? {
        if let Some(v) = e.file_name().to_str().and_then(|n| n.strip_prefix("vmlinuz-")) {
            found.push((e.path(), v.to_string()));
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        n => Err(ImageError::Kernel { path: boot, reason: format!("expected one vmlinuz-*, found {n}") }),
    }
}

/// Extracts the uncompressed kernel into the image directory and builds the initramfs from the
/// kernel tree at `kernel_root` (an unpacked package or a whole root file system).
pub(crate) async fn kernel_and_initramfs(
    ctx: &BuildCtx<'_>,
    kernel_root: &Path,
    busybox: &Path,
    applets: &[String],
) -> Result<(String, crate::modules::ModuleIndex), ImageError> {
    let (vmlinuz, version) = find_vmlinuz(kernel_root).await?;
    (ctx.progress)(&format!("extracting an uncompressed vmlinux from vmlinuz-{version}"));
    let compression = kernel::extract_vmlinux(&vmlinuz, &ctx.out_dir.join("vmlinux")).await?;
    tracing::debug!(?compression, %version, "kernel extracted");
    let config = kernel_root.join(format!("boot/config-{version}"));
    if config.is_file() {
        stage::copy(&config, &ctx.out_dir.join("config"))?;
    }
    let index = crate::modules::ModuleIndex::open(kernel_root)?;
    let initrd = initramfs::build(busybox, applets, &index, &ctx.out_dir.join("initrd.img")).await?;
    (ctx.progress)(&format!(
        "initramfs: {} KiB with modules {}",
        initrd.bytes / 1024,
        initrd.modules.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(" ")
    ));
    Ok((version, index))
}

pub(crate) async fn build(ctx: &BuildCtx<'_>) -> Result<Output, ImageError> {
    let packages = fetch_packages(ctx).await?;
    let kernel_dir = &packages[0].1;
    let busybox = packages[1].1.join("bin/busybox");
    let applets = stage::busybox_applets(&busybox).await?;
    let (version, index) = kernel_and_initramfs(ctx, kernel_dir, &busybox, &applets).await?;

    (ctx.progress)("making root file system");
    let root = ctx.work_dir.join("rootfs");
    populate(ctx, &root, &busybox, &applets).await?;
    let mut wanted: Vec<&str> = crate::recipe::INITRAMFS_MODULES.to_vec();
    wanted.extend(ctx.recipe.disk_modules.iter().copied());
    let modules = index.closure(&wanted).await?;
    index.install(&modules, &root).await?;

    let hash = crate::recipe::recipe_hash(ctx.recipe);
    let raw = ctx.work_dir.join("root.raw");
    disk::make_ext4(&root, &raw, ctx.recipe.disk_size, ROOT_LABEL, &disk::uuid_from_hex(&hash)).await?;
    (ctx.progress)("converting the root disk to qcow2");
    let size_bytes = disk::to_qcow2(&raw, &ctx.out_dir.join("root.qcow2")).await?;

    Ok(Output {
        base_disk: "root.qcow2".into(),
        kernel: "vmlinux".into(),
        initrd: "initrd.img".into(),
        kernel_version: version,
        packages: packages.iter().map(|(p, _)| (p.name.clone(), p.version.clone())).collect(),
        size_bytes,
    })
}

/// Lays out the root file system: directories, busybox and its applet links, the recipe's
/// files (init, passwd, ...).
async fn populate(ctx: &BuildCtx<'_>, root: &Path, busybox: &Path, applets: &[String]) -> Result<(), ImageError> {
    let root = root.to_path_buf();
    let busybox = busybox.to_path_buf();
    let applets = applets.to_vec();
    let recipe = ctx.recipe;
    tokio::task::spawn_blocking(move || -> Result<(), ImageError> {
        for (dir, mode) in [
            ("", 0o755),
            ("bin", 0o755),
            ("sbin", 0o755),
            ("usr/bin", 0o755),
            ("usr/sbin", 0o755),
            ("etc", 0o755),
            ("dev", 0o755),
            ("proc", 0o555),
            ("sys", 0o555),
            ("run", 0o755),
            ("tmp", 0o1777),
            ("mnt", 0o755),
            ("root", 0o700),
            ("home", 0o755),
            ("home/admin", 0o755),
            ("var/log", 0o755),
            ("var/tmp", 0o1777),
            ("lib/modules", 0o755),
        ] {
            stage::mkdir(&root.join(dir), mode)?;
        }
        stage::symlink("../run", &root.join("var/run"))?;
        stage::copy(&busybox, &root.join("bin/busybox"))?;
        stage::set_mode(&root.join("bin/busybox"), 0o755)?;
        for applet in &applets {
            if applet == "sbin/init" || applet == "linuxrc" || applet == "bin/busybox" {
                continue;
            }
            let link = root.join(applet);
            if !link.exists() {
                stage::symlink(&stage::link_to_busybox(applet), &link)?;
            }
        }
        for asset in recipe.assets {
            stage::write_file(&in_tree(&root, asset.path), asset.content.as_bytes(), asset.mode)?;
        }
        if crate::is_root() {
            let home = root.join("home/admin");
            std::os::unix::fs::chown(&home, Some(1000), Some(1000)).map_err(ImageError::io("chown", &home))?;
        } else {
            tracing::warn!("not root: the image's files will be owned by the building user");
        }
        Ok(())
    })
    .await
    .map_err(|source| ImageError::Join { image: recipe.name.to_string(), source })?
}
