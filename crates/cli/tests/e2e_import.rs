//! `corral images import` end to end: a Debian 12 disk image with its own bootloader (GRUB in
//! the MBR, one ext4 partition, Debian's kernel and initramfs, stock cloud-init; built from
//! Debian packages by `corral_images::build_bootable_debian` and cached) is imported into the
//! test's state directory with the `corral` binary, as qcow2 and as raw. The qcow2 one is
//! launched through the API with a key pair, user-data and a root volume bigger than the
//! image: it boots on q35 through SeaBIOS and its own GRUB, cloud-init detects the Ec2 data
//! source from the SMBIOS identity, installs the key for `admin`, runs the user-data and grows
//! the root partition and file system. SSH runs from the test's own host namespace (see
//! `common::TestNet`); nothing touches the host's network.
//!
//! Needs root, qemu-system-x86_64 and, for the first build of the disk, mmdebstrap and a
//! Debian mirror (a few minutes; cached afterwards in the image cache).

mod common;

use base64::Engine;
use common::*;
use corral_testkit::wait_for;
use std::time::Duration;

const USER_DATA: &str = "#!/bin/sh\necho imported-user-data-ran > /var/lib/corral-import-marker\n";

/// Runs `corral images import` against the test's state directory; returns the image id.
async fn import(cloud: &Cloud, file: &std::path::Path, name: &str) -> String {
    let state = cloud.state.display().to_string();
    let file = file.display().to_string();
    let args = ["images", "import", &file, "--name", name, "--description", "imported by e2e_import", "--state-dir", &state];
    let out = corral_exec::run(env!("CARGO_BIN_EXE_corral"), &args).await.unwrap_or_else(|e| panic!("corral images import: {e}"));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(id.starts_with("ami-") && !id.contains(char::is_whitespace), "import printed {id:?}");
    id
}

#[tokio::test(flavor = "multi_thread")]
async fn imported_disk_with_its_own_bootloader_takes_key_pair_and_user_data() {
    if skip() {
        return;
    }
    let progress = |line: &str| eprintln!("[e2e_import] {line}");
    let disk = corral_images::build_bootable_debian(&corral_images::default_cache_dir(), &progress).await.expect("bootable Debian disk");

    let cloud = Cloud::start("minimal");
    let (c, net) = (cloud.c.clone(), &cloud.net);

    // qcow2, as built; and the same disk as raw.
    let t = std::time::Instant::now();
    let image = import(&cloud, &disk, "debian-12-imported").await;
    eprintln!("[e2e_import] qcow2 imported as {image} in {:?}", t.elapsed());
    let raw = cloud.state.join("bootable.raw");
    let convert = ["convert", "-q", "-O", "raw", &disk.display().to_string(), &raw.display().to_string()];
    corral_exec::run("qemu-img", &convert).await.unwrap();
    let t = std::time::Instant::now();
    let raw_image = import(&cloud, &raw, "debian-12-imported-raw").await;
    eprintln!("[e2e_import] raw imported as {raw_image} in {:?}", t.elapsed());
    std::fs::remove_file(&raw).unwrap();
    assert_ne!(image, raw_image);
    for (id, name) in [(&image, "debian-12-imported"), (&raw_image, "debian-12-imported-raw")] {
        let r = c.call("DescribeImages", &[("ImageId.1", id)]).await;
        r.ok();
        assert_eq!(r.text("name").as_deref(), Some(name), "{}", r.body);
        assert_eq!(r.text("imageState").as_deref(), Some("available"), "{}", r.body);
        assert_eq!(r.text("rootDeviceName").as_deref(), Some("/dev/xvda"), "{}", r.body);
    }
    // The name is taken now.
    let state = cloud.state.display().to_string();
    let again = corral_exec::run(
        env!("CARGO_BIN_EXE_corral"),
        &["images", "import", &disk.display().to_string(), "--name", "debian-12-imported", "--state-dir", &state],
    )
    .await;
    assert!(again.is_err(), "a second image with the same name was imported");

    let key = cloud.key_pair("imported").await;
    let sg = c.call("CreateSecurityGroup", &[("GroupName", "ssh"), ("GroupDescription", "ssh")]).await.ok().text("groupId").unwrap();
    c.call(
        "AuthorizeSecurityGroupIngress",
        &[("GroupId", &sg), ("IpProtocol", "tcp"), ("FromPort", "22"), ("ToPort", "22"), ("CidrIp", "0.0.0.0/0")],
    )
    .await
    .ok();
    let ud = base64::engine::general_purpose::STANDARD.encode(USER_DATA);
    let launched = std::time::Instant::now();
    let r = c
        .call(
            "RunInstances",
            &[
                ("ImageId", &image),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("InstanceType", "t3.small"),
                ("KeyName", "imported"),
                ("SecurityGroupId.1", &sg),
                ("UserData", &ud),
                // Bigger than the 2 GiB image: cloud-init grows partition and file system.
                ("BlockDeviceMapping.1.DeviceName", "/dev/xvda"),
                ("BlockDeviceMapping.1.Ebs.VolumeSize", "4"),
            ],
        )
        .await;
    let id = r.ok().text("instanceId").unwrap();
    wait_state(&c, &id, "running", BOOT_DEADLINE).await;
    let public = c.call("DescribeInstances", &[("InstanceId.1", &id)]).await.text("ipAddress").expect("public IP");

    // SeaBIOS, the image's GRUB, Debian's initramfs, systemd, cloud-init with the metadata
    // service: about a minute and a half under TCG; allow for a loaded machine.
    let marker = wait_for("SSH into the imported image and the user-data marker", Duration::from_secs(600), || async {
        ssh(&net.host_ns, &key, &public, "cat /var/lib/corral-import-marker").await.ok().filter(|s| s.contains("imported-user-data-ran"))
    })
    .await;
    assert!(marker.contains("imported-user-data-ran"));
    eprintln!("[e2e_import] SSH as admin and the user-data marker {:?} after RunInstances", launched.elapsed());

    let console = console(&c, &id).await;
    assert!(console.contains("Booting `Debian GNU/Linux'"), "not booted by the image's own GRUB:\n{console}");
    let cloud_id = ssh(&net.host_ns, &key, &public, "cloud-id").await.unwrap();
    assert_eq!(cloud_id.trim(), "aws", "cloud-init's data source (detected from SMBIOS)");
    let whoami = ssh(&net.host_ns, &key, &public, "id -un && sudo -n id -u").await.unwrap();
    assert_eq!(whoami.split_whitespace().collect::<Vec<_>>(), ["admin", "0"], "default user with sudo");
    let hostname = ssh(&net.host_ns, &key, &public, "hostname").await.unwrap();
    assert!(hostname.trim().starts_with("ip-172-31-"), "cloud-init set the EC2 host name: {hostname}");
    let size = ssh(&net.host_ns, &key, &public, "df -B1 --output=size / | tail -1").await.unwrap();
    let size: u64 = size.trim().parse().unwrap_or(0);
    assert!(size > 3 << 30, "the root file system was grown to the 4 GiB volume: {size} bytes");

    // A volume hot-plugged into this q35 guest: udev names it by its serial, the volume id
    // without the dash, as an EC2 Nitro guest names its NVMe volumes; detached, it goes.
    let zone = c.call("DescribeInstances", &[("InstanceId.1", &id)]).await.text("availabilityZone").unwrap();
    let vol = c.call("CreateVolume", &[("Size", "1"), ("AvailabilityZone", &zone)]).await.ok().text("volumeId").unwrap();
    c.call("AttachVolume", &[("VolumeId", &vol), ("InstanceId", &id), ("Device", "/dev/sdf")]).await.ok();
    let serial = vol.replace('-', "");
    wait_for("the volume in /dev/disk/by-id", Duration::from_secs(60), || async {
        ssh(&net.host_ns, &key, &public, "ls /dev/disk/by-id/").await.ok().filter(|s| s.contains(&serial))
    })
    .await;
    // Grown live: the guest sees the new size without being told.
    c.call("ModifyVolume", &[("VolumeId", &vol), ("Size", "2")]).await.ok();
    let size_cmd = format!("lsblk -bdno SIZE $(readlink -f /dev/disk/by-id/*{serial} | head -1)");
    wait_for("the grown volume's new size in the guest", Duration::from_secs(60), || async {
        let out = ssh(&net.host_ns, &key, &public, &size_cmd).await.ok()?;
        (out.trim() == (2u64 << 30).to_string()).then_some(())
    })
    .await;
    c.call("DetachVolume", &[("VolumeId", &vol)]).await.ok();
    wait_for("the volume gone from the guest", Duration::from_secs(60), || async {
        ssh(&net.host_ns, &key, &public, "ls /dev/disk/by-id/").await.ok().filter(|s| !s.contains(&serial))
    })
    .await;
    c.call("DeleteVolume", &[("VolumeId", &vol)]).await.ok();

    c.call("TerminateInstances", &[("InstanceId.1", &id)]).await.ok();
    wait_state(&c, &id, "terminated", Duration::from_secs(120)).await;
    wait_for("the VPC namespace to go with its last instance", Duration::from_secs(60), || async {
        net.namespaces().is_empty().then_some(())
    })
    .await;
}
