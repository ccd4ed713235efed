//! corral-minimal end to end: build it from Debian packages into the image cache
//! (`$CORRAL_IMAGE_CACHE` or the default), check the artifacts (sudo's files on the root disk
//! included) and the cache hit, then boot it exactly as the VMM does and check the readiness
//! marker and a clean ACPI power-off. (tests/minimal_network.rs runs sudo over SSH.)
//!
//! Needs apt access to a Debian 12 mirror (first build only) and qemu-system-x86_64.

mod common;

use std::time::{Duration, Instant};

#[tokio::test]
async fn builds_checks_and_caches_corral_minimal() {
    let cache = common::cache_dir();
    let t = Instant::now();
    let image = corral_images::build("corral-minimal", &cache, &common::progress).await.unwrap();
    eprintln!("[images] build or cache lookup took {:?}", t.elapsed());

    assert_eq!(image.name, "corral-minimal");
    assert_eq!(image.recipe_hash.len(), 64);
    assert_eq!(image.cmdline, "root=/dev/vda rw");
    let kernel = image.kernel.as_ref().expect("kernel");
    assert!(common::is_elf(kernel), "{} is not an ELF file", kernel.display());
    let initrd = image.initrd.as_ref().expect("initrd");
    assert!(std::fs::read(initrd).unwrap().starts_with(b"070701"), "initrd is not a newc cpio");

    let info =
        corral_exec::run("qemu-img", &["info".as_ref(), "--output=json".as_ref(), image.base_disk.as_os_str()] as &[&std::ffi::OsStr])
            .await
            .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"].as_u64(), Some(image.size_bytes));
    check_sudo_files(&image.base_disk).await;

    let dir = image.base_disk.parent().unwrap();
    assert!(dir.join("manifest.json").is_file());
    assert!(dir.file_name().unwrap().to_str().unwrap().starts_with("corral-minimal-"));
    assert_eq!(corral_images::cached("corral-minimal", &cache), Some(image.clone()));

    let t = Instant::now();
    let again = corral_images::build("corral-minimal", &cache, &common::progress).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(2), "cache hit took {:?}", t.elapsed());
    assert_eq!(again, image);
}

#[tokio::test]
async fn corral_minimal_boots_to_its_marker_and_powers_off_on_acpi_button() {
    let image = corral_images::build("corral-minimal", &common::cache_dir(), &common::progress).await.unwrap();
    let mut guest = common::boot(&image, 512).await;
    let ready = guest.wait_console("corral-minimal: init ready", Duration::from_secs(60)).await.unwrap();
    eprintln!("[images] corral-minimal reached its marker {ready:?} after QEMU started");

    // The power-button press must reach init through acpid and end in a clean power-off that
    // makes QEMU exit.
    let reply = guest.qmp("system_powerdown").await;
    assert!(reply.contains("\"return\""), "{reply}");
    let status = guest.wait_exit(Duration::from_secs(60)).await.unwrap();
    eprintln!("[images] QEMU exited {status} {:?} after start", guest.started.elapsed());
    assert!(status.success(), "{status}");
    assert!(guest.console_text().contains("corral-minimal: poweroff"), "{}", guest.console_text());
}

/// sudo's files on the root disk, read with debugfs from a raw copy: the front end setuid
/// root, its policy plugin and sudoers root's and not writable by others, admin's drop-in 0440.
async fn check_sudo_files(base_disk: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    let built_as_root = std::fs::metadata(base_disk).map(|m| m.uid() == 0).unwrap_or(false);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("root.raw");
    let args = ["convert", "-q", "-f", "qcow2", "-O", "raw", &base_disk.display().to_string(), &raw.display().to_string()];
    corral_exec::run("qemu-img", &args).await.unwrap();
    for (path, mode) in [
        ("/usr/bin/sudo", "04755"),
        ("/usr/libexec/sudo/sudoers.so", "0644"),
        ("/usr/libexec/sudo/libsudo_util.so.0", "0644"),
        ("/lib/x86_64-linux-gnu/security/pam_unix.so", "0644"),
        ("/etc/sudoers", "0440"),
        ("/etc/sudoers.d/90-corral-admin", "0440"),
        ("/etc/pam.d/sudo", "0644"),
    ] {
        let out = corral_exec::run("debugfs", &["-R", &format!("stat {path}"), &raw.display().to_string()]).await.unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| {
            let words: Vec<&str> = text.split_whitespace().collect();
            words.iter().position(|w| *w == name).and_then(|i| words.get(i + 1)).map(|w| w.to_string())
        };
        assert_eq!(field("Mode:").as_deref(), Some(mode), "{path}: {text}");
        assert_eq!(field("Type:").as_deref(), Some("regular"), "{path}: {text}");
        if built_as_root {
            assert_eq!((field("User:").as_deref(), field("Group:").as_deref()), (Some("0"), Some("0")), "{path}: {text}");
        }
    }
}
