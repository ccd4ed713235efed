//! A Debian 12 cloud disk image that carries its own bootloader, as a third party would hand
//! one to `corral images import`: an MBR partition table with one ext4 root partition, GRUB
//! (`grub-pc`, BIOS) in the MBR and the gap after it, the Debian cloud kernel with Debian's own
//! initramfs, cloud-init with its default data source detection (ds-identify picks Ec2 from
//! the SMBIOS identity `-M q35` gives), growpart and resizefs for the root file system, and
//! the serial console on ttyS0. Nothing in it knows about Corral; its default user is `admin`,
//! as in Debian's images for EC2.
//!
//! How the disk is made, with no loop device, mount or partition node (the build host may have
//! none): `mmdebstrap` bootstraps the tree with `grub-pc` inside it; `grub-mkimage`, run in
//! the tree with `chroot`, makes GRUB's core image, which finds the root file system by UUID;
//! `mkfs.ext4 -E offset=1MiB -d TREE` writes the file system straight into the partition's
//! place in a sparse raw file; then the MBR (GRUB's `boot.img` with the partition table) goes
//! into sector 0 and the core image into sectors 1.., exactly where `grub-install` would put
//! them. `grub.cfg` is written by hand; `/etc/default/grub.d/` holds the same settings, so an
//! `update-grub` inside a running instance (after a kernel upgrade) makes an equivalent one.
//!
//! Cache layout, like the default images: `<cache_dir>/debian-12-bios-<hash12>/` holds
//! `disk.qcow2` and, written last, `manifest.json`; the build runs in
//! `<cache_dir>/.build-debian-12-bios-<pid>/` and is renamed into place when complete.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::recipe::{DEBIAN_SUITE, DEBIAN_VARIANT};
use crate::stage::{self, in_tree};
use crate::ImageError;

/// The name of the image directory in the cache (and in messages).
pub const BOOTABLE_DEBIAN_NAME: &str = "debian-12-bios";

/// Bumped by hand whenever the code below changes what it builds.
const REVISION: u32 = 1;

/// Virtual size of the disk; cloud-init grows the partition and file system to the volume's.
pub const BOOTABLE_DISK_SIZE: u64 = 2 << 30;

const SECTOR: u64 = 512;
/// The root partition starts at 1 MiB, as partitioning tools align it; GRUB's core image
/// lives in the gap before it.
const PART_START_SECTOR: u64 = 2048;

/// What `mmdebstrap` installs: the packages of `corral-debian-12`, plus the bootloader and
/// growpart (Debian's cloud images have both).
const PACKAGES: &[&str] = &[
    "systemd-sysv",
    "udev",
    "dbus",
    "linux-image-cloud-amd64",
    "grub-pc",
    "openssh-server",
    "cloud-init",
    "cloud-guest-utils",
    "sudo",
    "ifupdown",
    "isc-dhcp-client",
    "iproute2",
    "iputils-ping",
    "netbase",
    "e2fsprogs",
    "procps",
    "less",
    "ca-certificates",
];

/// grub-pc's postinst would ask which devices to install GRUB to; there are none in a build
/// tree (GRUB is placed below), so say that no device is wanted.
const GRUB_DEBCONF: &str = "grub-pc grub-pc/install_devices_empty boolean true";

/// Modules built into GRUB's core image: enough to read the root file system and find it.
const GRUB_CORE_MODULES: &[&str] = &["biosdisk", "part_msdos", "ext2", "search_fs_uuid"];

/// The kernel command line: Debian cloud images' console settings (the last `console=` is
/// `/dev/console`, so systemd and the serial getty use ttyS0).
const KERNEL_CMDLINE: &str = "ro console=tty0 console=ttyS0,115200";

/// cloud-init settings of Debian's images for EC2: user `admin`; no data source named, so
/// ds-identify detects it.
const CLOUD_CFG: &str = "\
# Debian cloud image settings (as in Debian's images for EC2: default user admin).
locale: C.UTF-8
manage_etc_hosts: true
ssh_pwauth: false
disable_root: true
system_info:
  default_user:
    name: admin
    lock_passwd: true
    gecos: Debian
    groups: [adm, sudo]
    sudo: [\"ALL=(ALL) NOPASSWD:ALL\"]
    shell: /bin/bash
";

const GRUB_DEFAULTS: &str = "\
# Cloud image: no menu, console on the serial port too.
GRUB_TIMEOUT=0
GRUB_CMDLINE_LINUX_DEFAULT=\"\"
GRUB_CMDLINE_LINUX=\"console=tty0 console=ttyS0,115200\"
GRUB_TERMINAL=\"console serial\"
GRUB_SERIAL_COMMAND=\"serial --speed=115200\"
";

/// `@ROOT_UUID@` is replaced by the root file system's UUID.
const FSTAB: &str = "\
# <file system>  <mount point>  <type>  <options>  <dump>  <pass>
UUID=@ROOT_UUID@  /  ext4  rw,discard,errors=remount-ro  0  1
";

/// `@ROOT_UUID@`, `@KERNEL_VERSION@` and `@CMDLINE@` are filled in.
const GRUB_CFG: &str = "\
# Written when the image was built; update-grub makes an equivalent one from /etc/default/grub.
serial --speed=115200
terminal_input console serial
terminal_output console serial
set default=0
set timeout=0
insmod part_msdos
insmod ext2
search --no-floppy --fs-uuid --set=root @ROOT_UUID@
menuentry 'Debian GNU/Linux' {
\tlinux /boot/vmlinuz-@KERNEL_VERSION@ root=UUID=@ROOT_UUID@ @CMDLINE@
\tinitrd /boot/initrd.img-@KERNEL_VERSION@
}
";

/// What GRUB's core image runs first: find the root file system, take modules and grub.cfg
/// from its `/boot/grub` (what grub-install embeds).
const GRUB_EARLY_CFG: &str = "search.fs_uuid @ROOT_UUID@ root\nset prefix=($root)/boot/grub\n";

const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// Files written into the tree: (path, mode, content).
const FILES: &[(&str, u32, &str)] = &[
    ("/etc/cloud/cloud.cfg.d/01_debian_cloud.cfg", 0o644, CLOUD_CFG),
    ("/etc/default/grub.d/10_cloud.cfg", 0o644, GRUB_DEFAULTS),
    ("/etc/hostname", 0o644, "localhost\n"),
    ("/etc/hosts", 0o644, HOSTS),
];

/// Hex SHA-256 over everything that decides what [`build_bootable_debian`] makes.
pub fn bootable_debian_recipe_hash() -> String {
    let mut h = Sha256::new();
    let mut field = |key: &str, value: &[u8]| {
        h.update((key.len() as u64).to_le_bytes());
        h.update(key.as_bytes());
        h.update((value.len() as u64).to_le_bytes());
        h.update(value);
    };
    field("revision", REVISION.to_string().as_bytes());
    field("crate", env!("CARGO_PKG_VERSION").as_bytes());
    field("name", BOOTABLE_DEBIAN_NAME.as_bytes());
    field("suite", DEBIAN_SUITE.as_bytes());
    field("variant", DEBIAN_VARIANT.as_bytes());
    field("packages", PACKAGES.join(",").as_bytes());
    field("debconf", GRUB_DEBCONF.as_bytes());
    field("dpkg_excludes", crate::debian::DPKG_EXCLUDES.join(",").as_bytes());
    field("grub_modules", GRUB_CORE_MODULES.join(",").as_bytes());
    field("cmdline", KERNEL_CMDLINE.as_bytes());
    field("disk_size", BOOTABLE_DISK_SIZE.to_string().as_bytes());
    field("part_start", PART_START_SECTOR.to_string().as_bytes());
    for (key, text) in [("fstab", FSTAB), ("grub_cfg", GRUB_CFG), ("grub_early", GRUB_EARLY_CFG)] {
        field(key, text.as_bytes());
    }
    for (path, mode, content) in FILES {
        field("file", path.as_bytes());
        field("mode", format!("{mode:o}").as_bytes());
        field("content", content.as_bytes());
    }
    hex::encode(h.finalize())
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    name: String,
    recipe_hash: String,
    /// File name of the disk inside the image directory.
    disk: String,
    disk_format: String,
    size_bytes: u64,
    root_uuid: String,
    kernel_version: String,
    packages: Vec<(String, String)>,
    built_at_unix: u64,
    build_seconds: u64,
}

const MANIFEST_FORMAT: u32 = 1;
const DISK: &str = "disk.qcow2";

fn image_dir(cache_dir: &Path, hash: &str) -> PathBuf {
    cache_dir.join(format!("{BOOTABLE_DEBIAN_NAME}-{}", &hash[..12]))
}

/// The disk for the current recipe if the cache has it complete; never builds.
pub fn cached_bootable_debian(cache_dir: &Path) -> Option<PathBuf> {
    let cache_dir = std::fs::canonicalize(cache_dir).ok()?;
    let hash = bootable_debian_recipe_hash();
    let dir = image_dir(&cache_dir, &hash);
    let m: Manifest = serde_json::from_slice(&std::fs::read(dir.join(crate::MANIFEST)).ok()?).ok()?;
    if m.format != MANIFEST_FORMAT || m.recipe_hash != hash || m.name != BOOTABLE_DEBIAN_NAME {
        return None;
    }
    let disk = dir.join(&m.disk);
    disk.is_file().then_some(disk)
}

/// Returns the qcow2 disk of the bootable Debian 12 image from the cache, building it first
/// when the cache lacks the current recipe (a few minutes; needs root and a Debian mirror).
/// Concurrent builds are serialised with a lock file in `cache_dir`.
pub async fn build_bootable_debian(cache_dir: &Path, progress: &(dyn Fn(&str) + Send + Sync)) -> Result<PathBuf, ImageError> {
    let name = BOOTABLE_DEBIAN_NAME;
    tokio::fs::create_dir_all(cache_dir).await.map_err(ImageError::io("create", cache_dir))?;
    let cache_dir = tokio::fs::canonicalize(cache_dir).await.map_err(ImageError::io("resolve", cache_dir))?;
    if let Some(disk) = cached_bootable_debian(&cache_dir) {
        progress(&format!("{name}: up to date in the cache"));
        return Ok(disk);
    }
    if !crate::is_root() {
        return Err(ImageError::NeedsRoot {
            image: name.into(),
            reason: "mmdebstrap --mode=root, chroot and file ownership in the ext4 image".into(),
        });
    }
    let _lock = crate::lock(&cache_dir.join(format!(".{name}.lock")), name).await?;
    if let Some(disk) = cached_bootable_debian(&cache_dir) {
        progress(&format!("{name}: built meanwhile by a concurrent build"));
        return Ok(disk);
    }
    crate::remove_stale_builds(&cache_dir, name).await;

    let hash = bootable_debian_recipe_hash();
    let out_dir = cache_dir.join(format!(".build-{name}-{}", std::process::id()));
    progress(&format!("{name}: building (recipe {})", &hash[..12]));
    tracing::info!(image = name, recipe = &hash[..12], dir = %out_dir.display(), "building image");
    let started = Instant::now();
    let result = async {
        let work = out_dir.join("work");
        tokio::fs::create_dir_all(&work).await.map_err(ImageError::io("create", &work))?;
        let manifest = build_into(&out_dir, &work, &hash, progress, started).await?;
        crate::remove_tree(&work).await?;
        finish(&cache_dir, &out_dir, &hash, manifest).await
    }
    .await;
    match result {
        Ok(disk) => {
            progress(&format!("{name}: done in {} s", started.elapsed().as_secs()));
            tracing::info!(image = name, seconds = started.elapsed().as_secs(), "image built");
            Ok(disk)
        }
        Err(e) => {
            let _ = crate::remove_tree(&out_dir).await;
            Err(e)
        }
    }
}

async fn build_into(
    out_dir: &Path,
    work: &Path,
    hash: &str,
    progress: &(dyn Fn(&str) + Send + Sync),
    started: Instant,
) -> Result<Manifest, ImageError> {
    let root = work.join("rootfs");
    progress(&format!("bootstrapping Debian 12 ({DEBIAN_SUITE}) with mmdebstrap: takes a few minutes"));
    mmdebstrap(&root).await?;
    let (_, kernel_version) = crate::minimal::find_vmlinuz(&root).await?;
    let root_uuid = crate::disk::uuid_from_hex(hash);

    progress(&format!("configuring cloud-init, fstab and GRUB (kernel {kernel_version})"));
    configure(&root, &root_uuid, &kernel_version).await?;
    let core = grub_core_image(&root, &root_uuid).await?;
    let boot_img_path = root.join("usr/lib/grub/i386-pc/boot.img");
    let boot_img = tokio::fs::read(&boot_img_path).await.map_err(ImageError::io("read", &boot_img_path))?;
    let packages = crate::debian::installed_versions(
        &root,
        &[&format!("linux-image-{kernel_version}"), "grub-pc", "systemd", "openssh-server", "cloud-init", "cloud-guest-utils"],
    )
    .await?;

    progress("making the disk: ext4 root partition at 1 MiB, GRUB in the MBR and the gap after it");
    let raw = work.join("disk.raw");
    make_disk(&root, &raw, &root_uuid, &boot_img, &core, hash).await?;
    progress("converting the disk to qcow2");
    let size_bytes = crate::disk::to_qcow2(&raw, &out_dir.join(DISK)).await?;
    Ok(Manifest {
        format: MANIFEST_FORMAT,
        name: BOOTABLE_DEBIAN_NAME.into(),
        recipe_hash: hash.into(),
        disk: DISK.into(),
        disk_format: "qcow2".into(),
        size_bytes,
        root_uuid,
        kernel_version,
        packages,
        built_at_unix: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        build_seconds: started.elapsed().as_secs(),
    })
}

async fn mmdebstrap(root: &Path) -> Result<(), ImageError> {
    // The hook runs after the essential packages (debconf among them), before the others.
    let hook = format!("--essential-hook=echo '{GRUB_DEBCONF}' | chroot \"$1\" debconf-set-selections");
    crate::debian::bootstrap(root, &PACKAGES.join(","), &[hook]).await
}

fn fill(template: &str, root_uuid: &str, kernel_version: &str) -> String {
    template.replace("@ROOT_UUID@", root_uuid).replace("@KERNEL_VERSION@", kernel_version).replace("@CMDLINE@", KERNEL_CMDLINE)
}

/// Writes the image's files, GRUB's modules and configuration, and removes what must differ
/// per instance (SSH host keys, machine-id) or is only build-time state (apt lists and caches).
async fn configure(root: &Path, root_uuid: &str, kernel_version: &str) -> Result<(), ImageError> {
    let (root, root_uuid, kernel_version) = (root.to_path_buf(), root_uuid.to_string(), kernel_version.to_string());
    tokio::task::spawn_blocking(move || -> Result<(), ImageError> {
        for (path, mode, content) in FILES {
            stage::write_file(&in_tree(&root, path), content.as_bytes(), *mode)?;
        }
        stage::write_file(&root.join("etc/fstab"), fill(FSTAB, &root_uuid, &kernel_version).as_bytes(), 0o644)?;
        // What grub-install copies: the modules (and their lists) GRUB loads at boot.
        let modules = root.join("usr/lib/grub/i386-pc");
        let dest = root.join("boot/grub/i386-pc");
        stage::mkdir(&dest, 0o755)?;
        for entry in std::fs::read_dir(&modules).map_err(ImageError::io("list", &modules))? {
            let path = entry.map_err(ImageError::io("list", &modules))?.path();
            let keep = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e == "mod" || e == "lst");
            if keep {
                stage::copy(&path, &dest.join(path.file_name().unwrap_or_default()))?;
            }
        }
        stage::write_file(&root.join("boot/grub/grub.cfg"), fill(GRUB_CFG, &root_uuid, &kernel_version).as_bytes(), 0o444)?;

        crate::debian::scrub_instance_identity(&root)?;
        Ok(())
    })
    .await
    .map_err(|source| ImageError::Join { image: BOOTABLE_DEBIAN_NAME.into(), source })?
}

/// GRUB's core image for BIOS, made by the tree's own `grub-mkimage` (run with `chroot`, so
/// the build host needs no GRUB), with the early configuration that finds the root by UUID.
async fn grub_core_image(root: &Path, root_uuid: &str) -> Result<Vec<u8>, ImageError> {
    let scratch = "tmp/corral-grub-core";
    let dir = root.join(scratch);
    stage::mkdir(&dir, 0o755)?;
    stage::write_file(&dir.join("early.cfg"), fill(GRUB_EARLY_CFG, root_uuid, "").as_bytes(), 0o644)?;
    let inside = format!("/{scratch}");
    let mut args: Vec<String> = vec![
        root.to_string_lossy().into_owned(),
        "grub-mkimage".into(),
        "--format=i386-pc".into(),
        format!("--output={inside}/core.img"),
        format!("--config={inside}/early.cfg"),
        "--prefix=/boot/grub".into(),
    ];
    args.extend(GRUB_CORE_MODULES.iter().map(|m| m.to_string()));
    corral_exec::run("chroot", &args).await.map_err(ImageError::command("making GRUB's core image (grub-mkimage in the image tree)"))?;
    let core_path = dir.join("core.img");
    let core = tokio::fs::read(&core_path).await.map_err(ImageError::io("read", &core_path))?;
    crate::remove_tree(&dir).await?;
    Ok(core)
}

/// Makes `raw`: a sparse file of [`BOOTABLE_DISK_SIZE`] with the ext4 root file system (the
/// contents of `root`) at [`PART_START_SECTOR`], then the MBR and GRUB's core image.
async fn make_disk(root: &Path, raw: &Path, root_uuid: &str, boot_img: &[u8], core: &[u8], hash: &str) -> Result<(), ImageError> {
    let sectors = BOOTABLE_DISK_SIZE / SECTOR;
    let mbr = mbr(boot_img, core, sectors, u32::from_str_radix(&hash[..8], 16).unwrap_or(0x0c0a_1ba7))?;
    let f = tokio::fs::File::create(raw).await.map_err(ImageError::io("create", raw))?;
    f.set_len(BOOTABLE_DISK_SIZE).await.map_err(ImageError::io("size", raw))?;
    drop(f);
    let block = 4096u64;
    let fs_blocks = (sectors - PART_START_SECTOR) * SECTOR / block;
    let extended = format!("offset={},lazy_itable_init=0,lazy_journal_init=0", PART_START_SECTOR * SECTOR);
    let args: Vec<String> = vec![
        "-q".into(),
        "-F".into(),
        "-t".into(),
        "ext4".into(),
        "-b".into(),
        block.to_string(),
        "-L".into(),
        "root".into(),
        "-U".into(),
        root_uuid.into(),
        "-E".into(),
        extended,
        "-d".into(),
        root.to_string_lossy().into_owned(),
        raw.to_string_lossy().into_owned(),
        fs_blocks.to_string(),
    ];
    corral_exec::run("mkfs.ext4", &args)
        .await
        .map_err(ImageError::command(format!("making the ext4 root partition from {}", root.display())))?;

    let (raw, core) = (raw.to_path_buf(), core.to_vec());
    tokio::task::spawn_blocking(move || -> Result<(), ImageError> {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&raw).map_err(ImageError::io("open", &raw))?;
        f.write_all(&mbr).map_err(ImageError::io("write the MBR to", &raw))?;
        f.seek(SeekFrom::Start(SECTOR)).map_err(ImageError::io("seek in", &raw))?;
        f.write_all(&core).map_err(ImageError::io("write GRUB's core image to", &raw))?;
        f.sync_all().map_err(ImageError::io("sync", &raw))
    })
    .await
    .map_err(|source| ImageError::Join { image: BOOTABLE_DEBIAN_NAME.into(), source })?
}

/// Sector 0: GRUB's `boot.img` (its code, reading the core image from sector 1), a disk
/// signature, one active Linux partition from [`PART_START_SECTOR`] to the end of the disk
/// (LBA only), and the boot signature. Patched as `grub-bios-setup` does for a hard disk.
fn mbr(boot_img: &[u8], core: &[u8], disk_sectors: u64, signature: u32) -> Result<[u8; 512], ImageError> {
    let bad = |reason: String| ImageError::Output { command: "grub-mkimage".into(), reason };
    if boot_img.len() != 512 {
        return Err(bad(format!("boot.img is {} bytes, not 512", boot_img.len())));
    }
    let gap = (PART_START_SECTOR - 1) * SECTOR;
    if core.is_empty() || core.len() as u64 > gap {
        return Err(bad(format!("core.img is {} bytes; the gap before the partition holds {gap}", core.len())));
    }
    let mut s = [0u8; 512];
    s[..440].copy_from_slice(&boot_img[..440]);
    // grub-bios-setup: the core image starts at sector 1 (boot.img's default), and for a hard
    // disk the jump over the boot-drive check becomes two NOPs (for BIOSes that pass DL badly).
    s[0x5c..0x64].copy_from_slice(&1u64.to_le_bytes());
    s[0x66] = 0x90;
    s[0x67] = 0x90;
    s[440..444].copy_from_slice(&signature.to_le_bytes());
    let count = u32::try_from(disk_sectors - PART_START_SECTOR).map_err(|_| bad("disk too large for MBR".into()))?;
    let entry = &mut s[446..462];
    entry[0] = 0x80; // active
    entry[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]); // CHS: beyond 1024 cylinders, use LBA
    entry[4] = 0x83; // Linux
    entry[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
    entry[8..12].copy_from_slice(&(PART_START_SECTOR as u32).to_le_bytes());
    entry[12..16].copy_from_slice(&count.to_le_bytes());
    s[510] = 0x55;
    s[511] = 0xaa;
    Ok(s)
}

/// Writes the manifest (last, atomically) and renames the build directory into place.
async fn finish(cache_dir: &Path, out_dir: &Path, hash: &str, manifest: Manifest) -> Result<PathBuf, ImageError> {
    let final_dir = image_dir(cache_dir, hash);
    let out_dir = out_dir.to_path_buf();
    let disk = final_dir.join(&manifest.disk);
    tokio::task::spawn_blocking(move || -> Result<(), ImageError> {
        let text =
            serde_json::to_vec_pretty(&manifest).map_err(|source| ImageError::Manifest { path: out_dir.join(crate::MANIFEST), source })?;
        crate::publish_build(&out_dir, &final_dir, &text)
    })
    .await
    .map_err(|source| ImageError::Join { image: BOOTABLE_DEBIAN_NAME.into(), source })??;
    Ok(disk)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_boot_img() -> Vec<u8> {
        let mut b = vec![0xccu8; 512];
        b[0x5c..0x64].copy_from_slice(&1u64.to_le_bytes());
        b[0x66] = 0xeb;
        b[0x67] = 0x05;
        b
    }

    #[test]
    fn mbr_has_grub_code_one_active_partition_and_the_signature() {
        let sectors = BOOTABLE_DISK_SIZE / SECTOR;
        let m = mbr(&fake_boot_img(), &[1u8; 30_000], sectors, 0x1234_5678).unwrap();
        assert_eq!(&m[510..], &[0x55, 0xaa]);
        assert_eq!(m[0], 0xcc);
        assert_eq!(&m[0x66..0x68], &[0x90, 0x90], "boot drive check enabled");
        assert_eq!(u64::from_le_bytes(m[0x5c..0x64].try_into().unwrap()), 1, "core image at sector 1");
        assert_eq!(&m[440..444], &0x1234_5678u32.to_le_bytes());
        assert_eq!(m[446], 0x80);
        assert_eq!(m[450], 0x83);
        assert_eq!(u32::from_le_bytes(m[454..458].try_into().unwrap()), 2048);
        assert_eq!(u32::from_le_bytes(m[458..462].try_into().unwrap()) as u64, sectors - 2048);
        assert!(m[462..510].iter().all(|b| *b == 0), "only one partition");
    }

    #[test]
    fn mbr_refuses_a_core_image_that_does_not_fit_the_gap() {
        let sectors = BOOTABLE_DISK_SIZE / SECTOR;
        assert!(mbr(&fake_boot_img(), &vec![0u8; 2047 * 512 + 1], sectors, 0).is_err());
        assert!(mbr(&fake_boot_img(), &[], sectors, 0).is_err());
        assert!(mbr(&[0u8; 100], &[1u8; 10], sectors, 0).is_err());
    }

    #[test]
    fn templates_are_filled_and_the_image_names_no_data_source() {
        let cfg = fill(GRUB_CFG, "u-u-i-d", "6.1.0-9-cloud-amd64");
        assert!(cfg.contains("linux /boot/vmlinuz-6.1.0-9-cloud-amd64 root=UUID=u-u-i-d ro console=tty0 console=ttyS0,115200"));
        assert!(cfg.contains("initrd /boot/initrd.img-6.1.0-9-cloud-amd64"));
        assert!(!cfg.contains('@'));
        assert!(fill(FSTAB, "u-u-i-d", "").contains("UUID=u-u-i-d  /  ext4"));
        // ds-identify must detect the data source (Ec2 from SMBIOS), as on a stock image.
        assert!(!CLOUD_CFG.contains("datasource"));
        assert!(CLOUD_CFG.contains("name: admin"));
    }

    #[test]
    fn recipe_hash_is_stable_and_cache_lookup_is_empty_for_an_empty_dir() {
        let a = bootable_debian_recipe_hash();
        assert_eq!(a, bootable_debian_recipe_hash());
        assert_eq!(a.len(), 64);
        let dir = tempfile::tempdir().unwrap();
        assert!(cached_bootable_debian(dir.path()).is_none());
    }
}
