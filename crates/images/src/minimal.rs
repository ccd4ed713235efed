//! Builds `corral-minimal`: the Debian cloud kernel and static busybox (both fetched with apt),
//! a small ext4 root disk with a shell-script init that prints `corral-minimal: init ready`,
//! and the shared busybox initramfs.
//!
//! The init configures `eth0` with busybox `udhcpc`, reads the instance metadata (IMDSv2, else
//! v1), installs the key pair for `admin`, runs user-data once per instance and starts dropbear,
//! Debian's small SSH server. Busybox has none, so dropbear comes from the `dropbear-bin`
//! package, dynamically linked: [`install_dynamic_programs`] copies it with the closure of its
//! `DT_NEEDED` libraries and the dynamic loader, all from the recipe's fetched packages.
//!
//! `admin` becomes root without a password, as every EC2 image's default user does, through
//! Debian's own `sudo` (setuid root, its sudoers plugin and `libsudo_util` from the `sudo`
//! package, PAM's `pam_unix` from `libpam-modules`), installed the same way: see
//! [`install_sudo`]. The recipe's assets give it `/etc/sudoers.d/90-corral-admin`
//! (`admin ALL=(ALL) NOPASSWD:ALL`) and `/etc/pam.d/sudo`.

use std::collections::{BTreeSet, VecDeque};
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

    let trees: Vec<PathBuf> = packages.iter().map(|(_, dir)| dir.clone()).collect();
    let root2 = root.clone();
    let libs = tokio::task::spawn_blocking(move || -> Result<Vec<String>, ImageError> {
        let programs: Vec<&str> = SSH_PROGRAMS.iter().chain(SUDO_PROGRAMS).copied().collect();
        let libs = install_dynamic_programs(&root2, &trees, &programs)?;
        install_sudo(&root2, &trees)?;
        Ok(libs)
    })
    .await
    .map_err(|source| ImageError::Join { image: ctx.recipe.name.to_string(), source })??;
    (ctx.progress)(&format!("dropbear and sudo installed with {}", libs.join(" ")));

    let versions = packages.iter().map(|(p, _)| (p.name.clone(), p.version.clone())).collect();
    finish(ctx, &root, version, versions).await
}

/// Makes the root tree the image's qcow2 disk (ext4, labelled, a UUID from the recipe) and
/// describes the result: the last step of every recipe that boots our kernel and initramfs.
pub(crate) async fn finish(
    ctx: &BuildCtx<'_>,
    root: &Path,
    kernel_version: String,
    packages: Vec<(String, String)>,
) -> Result<Output, ImageError> {
    let hash = crate::recipe::recipe_hash(ctx.recipe);
    let raw = ctx.work_dir.join("root.raw");
    disk::make_ext4(root, &raw, ctx.recipe.disk_size, ROOT_LABEL, &disk::uuid_from_hex(&hash)).await?;
    (ctx.progress)("converting the root disk to qcow2");
    let size_bytes = disk::to_qcow2(&raw, &ctx.out_dir.join("root.qcow2")).await?;
    Ok(Output {
        base_disk: "root.qcow2".into(),
        kernel: "vmlinux".into(),
        initrd: "initrd.img".into(),
        kernel_version,
        packages,
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
            ("var/lib/corral-init", 0o755),
            ("etc/dropbear", 0o700),
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

/// Dynamically linked programs corral-minimal carries (paths inside their packages and the
/// image): the SSH server, its key tool and client.
const SSH_PROGRAMS: &[&str] = &["usr/sbin/dropbear", "usr/bin/dropbearkey", "usr/bin/dbclient"];

/// sudo as Debian ships it (paths inside its packages and the image): the setuid front end,
/// its sudoers policy plugin (loaded with dlopen; both find `libsudo_util.so.0` through their
/// run path, `/usr/libexec/sudo`), and the PAM module `/etc/pam.d/sudo` names (libpam loads
/// modules from `/lib/x86_64-linux-gnu/security`).
const SUDO_PROGRAMS: &[&str] = &["usr/bin/sudo", "usr/libexec/sudo/sudoers.so", "lib/x86_64-linux-gnu/security/pam_unix.so"];

/// Completes the sudo that [`install_dynamic_programs`] copied: the front end setuid root
/// (the build runs as root, so the tree's files are root's), and Debian's `/etc/sudoers` from
/// the `sudo` package, mode 0440, whose `@includedir /etc/sudoers.d` reads the recipe's entry
/// for `admin`.
pub(crate) fn install_sudo(root: &Path, trees: &[PathBuf]) -> Result<(), ImageError> {
    let missing =
        |what: &str, reason: &str| ImageError::Package { package: "sudo".into(), reason: format!("{what}: {reason}"), source: None };
    let src = find_in_trees(trees, &["etc/sudoers".to_string()]).ok_or_else(|| missing("etc/sudoers", "not in the fetched packages"))?;
    let sudoers = std::fs::read(&src).map_err(ImageError::io("read", &src))?;
    let text = String::from_utf8_lossy(&sudoers);
    if !text.lines().any(|l| matches!(l.trim(), "@includedir /etc/sudoers.d" | "#includedir /etc/sudoers.d")) {
        return Err(missing("etc/sudoers", "does not include /etc/sudoers.d, where admin's entry is"));
    }
    stage::write_file(&root.join("etc/sudoers"), &sudoers, 0o440)?;
    let dropin = root.join("etc/sudoers.d");
    stage::mkdir(&dropin, 0o755)?;
    stage::set_mode(&root.join("usr/bin/sudo"), 0o4755)
}

/// Where Debian keeps multiarch shared libraries, in a package and in the image.
const LIB_DIRS: &[&str] = &["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"];
const IMAGE_LIB_DIR: &str = "lib/x86_64-linux-gnu";

/// An object's run path as image directories without the leading `/` (entries relative to
/// `$ORIGIN` or otherwise not absolute are left out: nothing the images carry uses them).
fn image_runpath(elf: &crate::elf::Elf<'_>) -> Vec<String> {
    elf.runpath().iter().filter_map(|d| d.strip_prefix('/')).map(|d| d.trim_end_matches('/').to_string()).collect()
}

/// Finds `rel` (a path inside a package) in the first unpacked package tree that has it.
fn find_in_trees(trees: &[PathBuf], rels: &[String]) -> Option<PathBuf> {
    trees.iter().flat_map(|t| rels.iter().map(move |r| t.join(r))).find(|p| p.is_file())
}

/// Copies `programs` (paths inside the unpacked packages `trees`; shared objects that are
/// loaded with dlopen count as programs too) into `root` at the same paths, with every shared
/// library they need (the `DT_NEEDED` closure): one found in a directory of the needing
/// object's run path goes to that directory, any other (found in the packages' multiarch
/// library directories) into `/lib/x86_64-linux-gnu`; and the dynamic loader they name as
/// interpreter (a symlink at that path when it lies elsewhere, as `/lib64/ld-linux-...` does).
/// Returns the sonames installed. Fails, naming the library, when no package has one.
pub(crate) fn install_dynamic_programs(root: &Path, trees: &[PathBuf], programs: &[&str]) -> Result<Vec<String>, ImageError> {
    // (soname, what needs it, the run path of what needs it: image directories without `/`)
    let mut queue: VecDeque<(String, String, Vec<String>)> = VecDeque::new();
    let mut interpreters = BTreeSet::new();
    let parse_error = |path: &Path, reason: String| ImageError::Package {
        package: path.display().to_string(),
        reason: format!("not an x86-64 ELF file ({reason})"),
        source: None,
    };
    for program in programs {
        let src = find_in_trees(trees, &[program.to_string()]).ok_or_else(|| ImageError::Package {
            package: program.to_string(),
            reason: "no fetched package contains it".into(),
            source: None,
        })?;
        let data = std::fs::read(&src).map_err(ImageError::io("read", &src))?;
        let elf = crate::elf::Elf::parse(&data).map_err(|r| parse_error(&src, r))?;
        if elf.machine != crate::elf::EM_X86_64 {
            return Err(parse_error(&src, format!("machine {}", elf.machine)));
        }
        let runpath = image_runpath(&elf);
        queue.extend(elf.needed().into_iter().map(|n| (n, program.to_string(), runpath.clone())));
        interpreters.extend(elf.interpreter());
        let mode = if Path::new(program).extension().is_some_and(|e| e == "so") { 0o644 } else { 0o755 };
        stage::write_file(&in_tree(root, program), &data, mode)?;
    }
    for interp in &interpreters {
        let name = interp.rsplit('/').next().unwrap_or(interp).to_string();
        queue.push_back((name, interp.clone(), Vec::new()));
    }

    let mut installed = BTreeSet::new();
    while let Some((soname, wanted_by, runpath)) = queue.pop_front() {
        if installed.contains(&soname) {
            continue;
        }
        let found = runpath
            .iter()
            .map(String::as_str)
            .chain(LIB_DIRS.iter().copied())
            .find_map(|dir| find_in_trees(trees, &[format!("{dir}/{soname}")]).map(|src| (dir, src)));
        let (dir, src) = found.ok_or_else(|| ImageError::Package {
            package: wanted_by.clone(),
            reason: format!("needs `{soname}`, which none of the fetched packages provides (add its package to the recipe)"),
            source: None,
        })?;
        let dest_dir = if runpath.iter().any(|d| d == dir) { dir } else { IMAGE_LIB_DIR };
        // Reading follows the packages' (relative) symlinks to the real file.
        let data = std::fs::read(&src).map_err(ImageError::io("read", &src))?;
        let elf = crate::elf::Elf::parse(&data).map_err(|r| parse_error(&src, r))?;
        let its_runpath = image_runpath(&elf);
        queue.extend(elf.needed().into_iter().map(|n| (n, soname.clone(), its_runpath.clone())));
        let mode = if soname.starts_with("ld-linux") { 0o755 } else { 0o644 };
        stage::write_file(&root.join(dest_dir).join(&soname), &data, mode)?;
        installed.insert(soname);
    }

    for interp in &interpreters {
        let rel = interp.trim_start_matches('/');
        let name = rel.rsplit('/').next().unwrap_or(rel);
        if rel == format!("{IMAGE_LIB_DIR}/{name}") {
            continue;
        }
        let depth = rel.split('/').count() - 1;
        let target = format!("{}{IMAGE_LIB_DIR}/{name}", "../".repeat(depth));
        let link = root.join(rel);
        if link.symlink_metadata().is_ok() {
            std::fs::remove_file(&link).map_err(ImageError::io("replace", &link))?;
        }
        stage::symlink(&target, &link)?;
    }
    Ok(installed.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Installs the host's own dynamically linked `/bin/sh` from a fake package tree made of
    /// the host's root, and checks libc and the loader (with its `/lib64` link) came along.
    #[test]
    fn installs_a_program_with_its_library_closure_and_loader() {
        let host_sh = Path::new("/bin/sh");
        let Ok(data) = std::fs::read(host_sh) else { return };
        let Ok(elf) = crate::elf::Elf::parse(&data) else { return };
        if elf.interpreter().is_none() || !Path::new("/lib/x86_64-linux-gnu/libc.so.6").exists() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let libs = install_dynamic_programs(&root, &[PathBuf::from("/")], &["bin/sh"]).unwrap();
        assert!(libs.iter().any(|l| l == "libc.so.6"), "{libs:?}");
        assert!(libs.iter().any(|l| l.starts_with("ld-linux")), "{libs:?}");
        assert!(root.join("bin/sh").is_file());
        assert!(root.join("lib/x86_64-linux-gnu/libc.so.6").is_file());
        let interp = elf.interpreter().unwrap();
        assert!(root.join(interp.trim_start_matches('/')).is_file(), "loader link {interp} dangles");

        let missing = install_dynamic_programs(&root, &[dir.path().to_path_buf()], &["root/bin/sh"]).unwrap_err();
        assert!(missing.to_string().contains("root/bin/sh"), "{missing}");
    }

    /// A program and a dlopened plugin whose run path names a private directory (as sudo's
    /// does): the library found there goes to that directory, the libraries it needs in turn
    /// (found in the multiarch directory) to `/lib/x86_64-linux-gnu`; plugins keep mode 0644.
    #[test]
    fn libraries_on_a_run_path_stay_in_its_directory() {
        use crate::elf::testing::shared_object;
        let dir = tempfile::tempdir().unwrap();
        let (pkg, libs_pkg, root) = (dir.path().join("pkg"), dir.path().join("libs"), dir.path().join("root"));
        let put = |tree: &Path, rel: &str, data: Vec<u8>| stage::write_file(&tree.join(rel), &data, 0o644).unwrap();
        put(&pkg, "usr/bin/prog", shared_object(&["libpriv.so.0"], Some("/usr/libexec/prog/")));
        put(&pkg, "usr/libexec/prog/plugin.so", shared_object(&["libpriv.so.0", "libz.so.1"], Some("/usr/libexec/prog")));
        put(&pkg, "usr/libexec/prog/libpriv.so.0", shared_object(&["libc.so.6"], None));
        put(&libs_pkg, "lib/x86_64-linux-gnu/libc.so.6", shared_object(&[], None));
        put(&libs_pkg, "usr/lib/x86_64-linux-gnu/libz.so.1", shared_object(&["libc.so.6"], None));
        let trees = [pkg, libs_pkg];
        let libs = install_dynamic_programs(&root, &trees, &["usr/bin/prog", "usr/libexec/prog/plugin.so"]).unwrap();
        assert_eq!(libs, ["libc.so.6", "libpriv.so.0", "libz.so.1"]);
        assert!(root.join("usr/libexec/prog/libpriv.so.0").is_file());
        assert!(!root.join("lib/x86_64-linux-gnu/libpriv.so.0").exists());
        assert!(root.join("lib/x86_64-linux-gnu/libc.so.6").is_file());
        assert!(root.join("lib/x86_64-linux-gnu/libz.so.1").is_file());
        use std::os::unix::fs::PermissionsExt;
        let mode = |rel: &str| std::fs::metadata(root.join(rel)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("usr/bin/prog"), 0o755);
        assert_eq!(mode("usr/libexec/prog/plugin.so"), 0o644);
    }

    /// sudo's finishing touches: setuid front end, Debian's sudoers (0440), and a refusal of a
    /// sudoers that would not read admin's drop-in.
    #[test]
    fn sudo_is_setuid_and_reads_the_drop_in_directory() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (pkg, root) = (dir.path().join("pkg"), dir.path().join("root"));
        stage::write_file(&pkg.join("etc/sudoers"), b"Defaults env_reset\n@includedir /etc/sudoers.d\n", 0o440).unwrap();
        stage::write_file(&root.join("usr/bin/sudo"), b"", 0o755).unwrap();
        install_sudo(&root, std::slice::from_ref(&pkg)).unwrap();
        let mode = |rel: &str| std::fs::metadata(root.join(rel)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("usr/bin/sudo"), 0o4755);
        assert_eq!(mode("etc/sudoers"), 0o440);
        assert_eq!(mode("etc/sudoers.d"), 0o755);

        stage::write_file(&pkg.join("etc/sudoers"), b"root ALL=(ALL) ALL\n", 0o440).unwrap();
        let err = install_sudo(&root, &[pkg]).unwrap_err();
        assert!(err.to_string().contains("sudoers.d"), "{err}");
    }
}
