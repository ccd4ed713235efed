//! A real QEMU (corral-minimal, TCG) started inside a VPC namespace attaches to the persistent
//! tap `apply` made for its port: the tap gets carrier while QEMU runs and loses it after.
//! If the image's init asks for a DHCP lease, dnsmasq's answer is reported (not required:
//! the image's network hook is someone else's work).

mod lab;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use corral_net::{NetDriver, PortLink};
use lab::*;

fn minimal_image() -> Option<PathBuf> {
    std::fs::read_dir("/var/cache/corral/images")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("corral-minimal-")) && p.join("vmlinux").exists())
}

fn tsc_khz() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = info.lines().find(|l| l.starts_with("cpu MHz"))?.split(':').nth(1)?.trim().parse().ok()?;
    Some((mhz * 1000.0) as u64)
}

async fn link_flags(ns: &str, ifname: &str) -> String {
    let out = corral_exec::run("ip", &["-n", ns, "-o", "link", "show", ifname]).await.expect("link exists");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn qemu_attaches_to_the_port_tap_inside_the_namespace() {
    let Some(mut lab) = lab("qemu_attaches_to_the_port_tap_inside_the_namespace") else { return };
    let (Some(image), Some(khz)) = (minimal_image(), tsc_khz()) else {
        eprintln!("skipping: no corral-minimal image or no cpu MHz");
        return;
    };
    if corral_exec::run("qemu-system-x86_64", &["--version"]).await.is_err() {
        eprintln!("skipping: no qemu-system-x86_64");
        return;
    }
    let d = lab.driver();
    let mut p = port("unused", 0x7, 5, &["sg-a"]);
    p.link = PortLink::Tap;
    let n = desired(vec![vpc("vpc-1", vec![p.clone()], vec![group("sg-a", vec![])])]);
    apply(&d, &n).await;
    let (ns, tap) = (d.netns_for("vpc-1"), d.tap_for(&p.eni_id));
    let before = link_flags(&ns, &tap).await;
    assert!(before.contains("NO-CARRIER"), "{before}");

    let dir = lab.state.path().join("vm");
    std::fs::create_dir_all(&dir).unwrap();
    let overlay = dir.join("root.qcow2");
    let base = image.join("root.qcow2");
    corral_exec::run(
        "qemu-img",
        &["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", &base.to_string_lossy(), &overlay.to_string_lossy()],
    )
    .await
    .unwrap();
    let console = dir.join("console.log");
    let append = format!("console=ttyS0 tsc_early_khz={khz} tsc=reliable root=/dev/vda rw");
    let mut cmd = corral_exec::command("ip");
    cmd.args(["netns", "exec", &ns, "qemu-system-x86_64", "-name", "guest=net-test", "-no-user-config", "-nodefaults", "-nographic"])
        .args(["-machine", "microvm,rtc=on,pic=off", "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "256M"])
        .arg("-kernel")
        .arg(image.join("vmlinux"))
        .arg("-initrd")
        .arg(image.join("initrd.img"))
        .args(["-append", &append])
        .args(["-drive", &format!("if=none,id=root,format=qcow2,file={}", overlay.display()), "-device", "virtio-blk-device,drive=root"])
        .args(["-netdev", &format!("tap,id=n0,ifname={tap},script=no,downscript=no")])
        .args(["-device", &format!("virtio-net-device,netdev=n0,mac={}", corral_net::mac_to_string(&p.mac))])
        .args(["-serial", &format!("file:{}", console.display())])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let child = cmd.spawn().expect("qemu");
    lab.children.push(child);
    wait_for("carrier on the tap", Duration::from_secs(30), || async { link_flags(&ns, &tap).await.contains("LOWER_UP") }).await;
    eprintln!("MEASURE tap carrier {:?} after starting QEMU", started.elapsed());

    // Opportunistic: does the guest's init take a lease? Wait for its login prompt (TCG
    // boot), then a few seconds more.
    let log = lab.state.path().join(&ns).join("dnsmasq.log");
    let booted = Instant::now() + Duration::from_secs(90);
    while Instant::now() < booted && !std::fs::read_to_string(&console).unwrap_or_default().contains("login:") {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let end = Instant::now() + Duration::from_secs(5);
    let mut leased = false;
    while Instant::now() < end {
        if std::fs::read_to_string(&log).unwrap_or_default().contains("DHCPACK") {
            leased = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "MEASURE guest DHCP lease: {}",
        if leased { format!("yes, {:?} after starting QEMU", started.elapsed()) } else { "none (the image's init does not ask)".into() }
    );
    let tail = std::fs::read_to_string(&console).unwrap_or_default();
    eprintln!("console tail:\n{}", tail.lines().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n"));

    // QEMU gone: no carrier; the tap (persistent) stays until apply removes it.
    let mut child = lab.children.pop().unwrap();
    child.kill().await.unwrap();
    let after = link_flags(&ns, &tap).await;
    assert!(after.contains("NO-CARRIER"), "{after}");
    apply(&d, &desired(vec![])).await;
    assert!(lab.namespaces().iter().all(|n| !n.starts_with(&d.config().ns_prefix)));
}
