//! The bootable Debian 12 disk (`corral_images::build_bootable_debian`, what `corral images
//! import` is tested with): build it into the image cache (`$CORRAL_IMAGE_CACHE` or the
//! default), then boot it with bare QEMU as an imported image boots, from the disk alone:
//! `-M q35`, SeaBIOS, GRUB in the MBR, Debian's initramfs, and the EC2 SMBIOS identity, so
//! cloud-init's ds-identify picks the Ec2 data source.
//!
//! No network is attached: cloud-init would try the metadata service for its default
//! `max_wait` (120 s, in both its local and network stages) before going on, so the test stops
//! once cloud-init has picked the Ec2 data source and asked for a token. Growing the root and
//! taking key pair and user-data through the metadata service are tested under Corral, in
//! `crates/cli/tests/e2e_import.rs`. The first build takes minutes and needs root
//! (mmdebstrap, chroot); later runs find the disk in the cache.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

/// `-smbios` as Corral gives an instance on q35 (see `ec2_uuid` in the agent).
const EC2_UUID: &str = "ec2b0075-1d2e-4f5a-8b9c-0d1e2f3a4b5c";

#[tokio::test]
async fn builds_and_caches_the_bootable_debian_disk() {
    if !common::running_as_root("builds_and_caches_the_bootable_debian_disk") {
        return;
    }
    let cache = common::cache_dir();
    let t = Instant::now();
    let disk = corral_images::build_bootable_debian(&cache, &common::progress).await.unwrap();
    eprintln!("[images] bootable build or cache lookup took {:?}", t.elapsed());
    let (format, size) = qemu_img_info(&disk).await;
    assert_eq!(format, "qcow2");
    assert_eq!(size, corral_images::bootable::BOOTABLE_DISK_SIZE);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(disk.parent().unwrap().join("manifest.json")).unwrap()).unwrap();
    let packages = manifest["packages"].as_array().unwrap();
    for p in ["grub-pc", "cloud-init", "cloud-guest-utils", "openssh-server"] {
        assert!(packages.iter().any(|x| x[0] == p), "{p} missing: {manifest}");
    }
    assert_eq!(corral_images::cached_bootable_debian(&cache), Some(disk.clone()));
    let t = Instant::now();
    assert_eq!(corral_images::build_bootable_debian(&cache, &common::progress).await.unwrap(), disk);
    assert!(t.elapsed() < Duration::from_secs(2), "cache hit took {:?}", t.elapsed());
}

#[tokio::test]
async fn bootable_debian_boots_from_its_own_bootloader_into_cloud_init() {
    if !common::running_as_root("bootable_debian_boots_from_its_own_bootloader_into_cloud_init") {
        return;
    }
    let disk = corral_images::build_bootable_debian(&common::cache_dir(), &common::progress).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A 3 GiB volume over the 2 GiB image: cloud-init must grow partition and file system.
    let overlay = dir.path().join("root.qcow2");
    let mut create: Vec<&std::ffi::OsStr> = vec!["create".as_ref(), "-q".as_ref(), "-f".as_ref(), "qcow2".as_ref()];
    create.extend(["-b".as_ref(), disk.as_os_str(), "-F".as_ref(), "qcow2".as_ref(), overlay.as_os_str(), "3G".as_ref()]);
    corral_exec::run("qemu-img", &create).await.unwrap();
    let console = dir.path().join("console.log");
    let qmp = dir.path().join("qmp.sock");
    let argv: Vec<String> = vec![
        "-name".into(),
        "corral-image-test-bootable".into(),
        "-M".into(),
        "q35".into(),
        "-accel".into(),
        "tcg".into(),
        "-cpu".into(),
        "max".into(),
        "-m".into(),
        "1024".into(),
        "-smp".into(),
        "1".into(),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-nographic".into(),
        "-smbios".into(),
        format!("type=1,manufacturer=Amazon EC2,product=t3.micro,serial={EC2_UUID},uuid={EC2_UUID}"),
        "-drive".into(),
        format!("id=root,file={},format=qcow2,if=none", overlay.display()),
        "-device".into(),
        "virtio-blk-pci,drive=root,bootindex=0".into(),
        "-serial".into(),
        format!("file:{}", console.display()),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", qmp.display()),
    ];
    eprintln!("[images] qemu-system-x86_64 {}", argv.join(" "));
    let started = Instant::now();
    let child = corral_exec::command("qemu-system-x86_64")
        .args(&argv)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start qemu-system-x86_64");
    let mut guest = common::Guest { dir, child, console, qmp, started };

    let grub = guest.wait_console("Booting `Debian GNU/Linux'", Duration::from_secs(120)).await.unwrap();
    eprintln!("[images] GRUB booting the kernel {grub:?} after QEMU started");
    let root = guest.wait_console("EXT4-fs (vda1): mounted filesystem", Duration::from_secs(180)).await.unwrap();
    eprintln!("[images] root file system (vda1) mounted {root:?} after QEMU started");
    // ds-identify found Ec2 from SMBIOS, and cloud-init in its AWS mode asks for an IMDSv2 token.
    let token = guest.wait_console("/latest/api/token", Duration::from_secs(300)).await.unwrap();
    eprintln!("[images] cloud-init asked the Ec2 metadata service for a token {token:?} after QEMU started");

    let text = guest.console_text();
    assert!(text.contains("root=UUID="), "kernel not booted by the image's GRUB:\n{text}");
    assert!(text.contains("169.254.169.254"), "Ec2 data source not used:\n{text}");
    let reply = guest.qmp("quit").await;
    assert!(reply.contains("\"return\""), "{reply}");
    guest.wait_exit(Duration::from_secs(60)).await.unwrap();
}

async fn qemu_img_info(path: &Path) -> (String, u64) {
    let out =
        corral_exec::run("qemu-img", &["info".as_ref(), "--output=json".as_ref(), path.as_os_str()] as &[&std::ffi::OsStr]).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (v["format"].as_str().unwrap().to_string(), v["virtual-size"].as_u64().unwrap())
}
