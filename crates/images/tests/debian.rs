//! corral-debian-12 end to end: build it with mmdebstrap into the image cache
//! (`$CORRAL_IMAGE_CACHE` or the default), check the artifacts, boot it as the VMM does and
//! wait for sshd and the serial login prompt, then power it off with the ACPI button.
//!
//! The first build takes minutes (mmdebstrap from a Debian mirror) and needs root; later runs
//! find the image in the cache. No network is attached, so cloud-init gives up on the Ec2 data
//! source after its `max_wait` and falls back to the None data source.

mod common;

use std::time::{Duration, Instant};

#[tokio::test]
async fn builds_and_caches_corral_debian_12() {
    if !common::running_as_root("builds_and_caches_corral_debian_12") {
        return;
    }
    let cache = common::cache_dir();
    let t = Instant::now();
    let image = corral_images::build("corral-debian-12", &cache, &common::progress).await.unwrap();
    eprintln!("[images] build or cache lookup took {:?}", t.elapsed());
    assert_eq!(image.name, "corral-debian-12");
    assert!(common::is_elf(image.kernel.as_ref().unwrap()));
    assert!(image.size_bytes >= 2 << 30, "{}", image.size_bytes);
    let dir = image.base_disk.parent().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let packages = manifest["packages"].as_array().unwrap();
    assert!(packages.iter().any(|p| p[0] == "cloud-init"), "{manifest}");
    assert!(packages.iter().any(|p| p[0] == "openssh-server"), "{manifest}");
    assert_eq!(corral_images::cached("corral-debian-12", &cache), Some(image.clone()));
    let t = Instant::now();
    let again = corral_images::build("corral-debian-12", &cache, &common::progress).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(again, image);
}

#[tokio::test]
async fn corral_debian_12_boots_to_sshd_and_login_prompt_and_powers_off() {
    if !common::running_as_root("corral_debian_12_boots_to_sshd_and_login_prompt_and_powers_off") {
        return;
    }
    let image = corral_images::build("corral-debian-12", &common::cache_dir(), &common::progress).await.unwrap();
    let mut guest = common::boot(&image, 1024).await;
    let sshd = guest.wait_console("OpenBSD Secure Shell server", Duration::from_secs(300)).await.unwrap();
    eprintln!("[images] sshd started {sshd:?} after QEMU started");
    let login = guest.wait_console("login:", Duration::from_secs(300)).await.unwrap();
    eprintln!("[images] serial login prompt {login:?} after QEMU started");
    let text = guest.console_text();
    assert!(text.contains("Corral initramfs") || text.contains("corral-initramfs: mounted"), "{text}");

    let reply = guest.qmp("system_powerdown").await;
    assert!(reply.contains("\"return\""), "{reply}");
    let t = Instant::now();
    let status = guest.wait_exit(Duration::from_secs(120)).await.unwrap();
    eprintln!("[images] QEMU exited {status} {:?} after system_powerdown", t.elapsed());
    assert!(status.success(), "{status}");
}
