//! End to end on real QEMU: block storage as a user sees it from inside `corral-minimal`
//! guests, over SSH with the key pair.
//!
//! - A volume attached live to instance A is written there, detached, attached live to B and
//!   read back.
//! - A live snapshot keeps the data of its moment; a volume made from it has that data.
//! - An image made from A (a file on its root) launches an instance with the file; a stop and
//!   start of A keeps it too.
//! - Terminating with DeleteOnTermination false keeps the volume; deleting everything frees
//!   the pool's files except the image the cloud started with.
//! - Snapshots taken and deleted again leave the volume's chain as short as before, live.
//! - Failures halfway: a QMP error during attach (the volume's disk file removed behind
//!   Corral's back) and a full pool during a snapshot leave consistent states, working
//!   instances and no orphaned files.
//!
//! Everything runs inside network namespaces the test makes; the pool is a small tmpfs the
//! test mounts, so it can fill it.

mod common;

use base64::Engine;
use common::*;
use corral_testkit::{wait_for, Client};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Root in the guest makes hot-plugged SCSI disks writable for `admin`, as a udev rule could on
/// a full distribution (busybox has no udev). A grown volume needs nothing: virtio-scsi tells
/// the guest's driver, which rescans the disk.
const USER_DATA: &str = "#!/bin/sh
(while :; do chmod 666 /dev/sd? 2>/dev/null; sleep 0.3; done) &
echo storage-user-data-ran
";

struct Guest {
    id: String,
    ip: String,
}

async fn launch(c: &Client, image: &str, sg: &str) -> String {
    let ud = base64::engine::general_purpose::STANDARD.encode(USER_DATA);
    let r = c
        .call(
            "RunInstances",
            &[
                ("ImageId", image),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("InstanceType", "t3.micro"),
                ("KeyName", "e2e"),
                ("SecurityGroupId.1", sg),
                ("Placement.AvailabilityZone", "local-1a"),
                ("UserData", &ud),
            ],
        )
        .await;
    r.ok().text("instanceId").unwrap()
}

/// Waits for SSH and user-data on `id`.
async fn ready(c: &Client, ns: &str, key: &Path, id: &str) -> Guest {
    wait_state(c, id, "running", BOOT_DEADLINE).await;
    let ip = c.call("DescribeInstances", &[("InstanceId.1", id)]).await.ok().text("ipAddress").expect("a public IP");
    wait_for(&format!("ssh and user-data on {id}"), BOOT_DEADLINE, || async {
        ssh(ns, key, &ip, "cat /var/log/user-data.log").await.ok().filter(|l| l.contains("storage-user-data-ran"))
    })
    .await;
    Guest { id: id.to_string(), ip }
}

/// The first 64 bytes of the guest's `dev`, once it is there and writable.
async fn read_disk(ns: &str, key: &Path, g: &Guest, dev: &str) -> String {
    let cmd = format!("test -w {dev} && dd if={dev} bs=64 count=1 2>/dev/null | tr -d '\\000'");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(out) = ssh(ns, key, &g.ip, &cmd).await {
            return out;
        }
        if std::time::Instant::now() > deadline {
            let diag = ssh(ns, key, &g.ip, "ls -l /dev/sd* /sys/block; cat /var/log/user-data.log; dmesg | tail -20").await;
            panic!("{dev} did not become readable in {}: {diag:?}", g.id);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn write_disk(ns: &str, key: &Path, g: &Guest, dev: &str, text: &str) {
    read_disk(ns, key, g, dev).await;
    let cmd = format!("printf '%-64s' '{text}' | dd of={dev} bs=64 count=1 conv=notrunc 2>/dev/null && sync && echo written");
    let out = ssh(ns, key, &g.ip, &cmd).await.expect("write to the volume");
    assert!(out.contains("written"), "{out}");
}

async fn devices(ns: &str, key: &Path, g: &Guest) -> String {
    ssh(ns, key, &g.ip, "ls /sys/block").await.expect("ssh")
}

fn pool_files(pool: &Path) -> Vec<PathBuf> {
    walk(pool).into_iter().filter(|p| p.extension().is_some_and(|e| e == "qcow2")).collect()
}

async fn attach(c: &Client, vol: &str, id: &str, dev: &str) {
    let r = c.call("AttachVolume", &[("VolumeId", vol), ("InstanceId", id), ("Device", dev)]).await;
    assert_eq!(r.ok().text("status").as_deref(), Some("attached"), "{}", r.body);
}

async fn volume_state(c: &Client, vol: &str) -> String {
    c.call("DescribeVolumes", &[("VolumeId.1", vol)]).await.ok().text("status").unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn volumes_snapshots_and_images_on_real_guests() {
    if skip() {
        return;
    }
    let cloud = Cloud::start_with_pool("minimal", Some(192));
    let (c, net) = (cloud.c.clone(), &cloud.net);
    let pool = cloud.state.join("pool");
    let image = cloud.image("corral-minimal").await;
    let files_at_start = pool_files(&pool);
    let key = cloud.key_pair("e2e").await;
    let ns = net.host_ns.as_str();
    let sg = c.call("CreateSecurityGroup", &[("GroupName", "ssh"), ("GroupDescription", "e2e")]).await.ok().text("groupId").unwrap();
    c.call(
        "AuthorizeSecurityGroupIngress",
        &[("GroupId", &sg), ("IpProtocol", "tcp"), ("FromPort", "22"), ("ToPort", "22"), ("CidrIp", "0.0.0.0/0")],
    )
    .await
    .ok();

    let (ida, idb) = (launch(&c, &image, &sg).await, launch(&c, &image, &sg).await);
    let a = ready(&c, ns, &key, &ida).await;
    let b = ready(&c, ns, &key, &idb).await;
    assert!(!devices(ns, &key, &a).await.contains("sda"), "no data disk yet");

    // A volume written on A, moved live to B, read there.
    let vol = c.call("CreateVolume", &[("Size", "1"), ("AvailabilityZone", "local-1a")]).await.ok().text("volumeId").unwrap();
    attach(&c, &vol, &a.id, "/dev/sdf").await;
    write_disk(ns, &key, &a, "/dev/sda", "written-on-a").await;
    let r = c.call("DetachVolume", &[("VolumeId", &vol)]).await;
    r.ok();
    assert_eq!(volume_state(&c, &vol).await, "available");
    wait_for("sda gone from A", Duration::from_secs(30), || async { (!devices(ns, &key, &a).await.contains("sda")).then_some(()) }).await;
    attach(&c, &vol, &b.id, "/dev/sdf").await;
    assert_eq!(read_disk(ns, &key, &b, "/dev/sda").await.trim(), "written-on-a");

    // A live snapshot keeps the data of its moment.
    let r = c.call("CreateSnapshot", &[("VolumeId", &vol), ("Description", "e2e")]).await;
    let snap = r.ok().text("snapshotId").unwrap();
    assert_eq!(r.text("status").as_deref(), Some("completed"), "{}", r.body);
    write_disk(ns, &key, &b, "/dev/sda", "after-the-snapshot").await;
    let restored = c.call("CreateVolume", &[("SnapshotId", &snap), ("AvailabilityZone", "local-1a")]).await.ok().text("volumeId").unwrap();
    attach(&c, &restored, &a.id, "/dev/sdg").await;
    assert_eq!(read_disk(ns, &key, &a, "/dev/sda").await.trim(), "written-on-a", "the snapshot's data");
    assert_eq!(read_disk(ns, &key, &b, "/dev/sda").await.trim(), "after-the-snapshot", "the volume went on");

    // Growing a volume live: the guest sees the new size.
    c.call("ModifyVolume", &[("VolumeId", &restored), ("Size", "2")]).await.ok();
    wait_for("A to see 2 GiB", Duration::from_secs(30), || async {
        let sectors = ssh(ns, &key, &a.ip, "cat /sys/block/sda/size").await.ok()?;
        (sectors.trim() == (2u64 << 21).to_string()).then_some(())
    })
    .await;

    // A file on A's root: in an image made from A, and kept across A's stop and start.
    // CreateImage without NoReboot shuts A down cleanly first (as on EC2), so the file needs
    // no `sync` to be in the image; A runs again afterwards.
    let out = ssh(ns, &key, &a.ip, "echo root-data-of-a > ~/root-file && echo ok").await.expect("ssh");
    assert!(out.contains("ok"));
    let r = c.call("CreateImage", &[("InstanceId", &a.id), ("Name", "e2e-from-a")]).await;
    let ami = r.ok().text("imageId").unwrap();
    wait_for("the image available", Duration::from_secs(180), || async {
        let r = c.call("DescribeImages", &[("ImageId.1", &ami)]).await;
        (r.text("imageState").as_deref() == Some("available")).then_some(())
    })
    .await;
    let a = ready(&c, ns, &key, &a.id).await;
    let idc = launch(&c, &ami, &sg).await;
    let copy = ready(&c, ns, &key, &idc).await;
    let got = ssh(ns, &key, &copy.ip, "cat ~/root-file").await.expect("ssh into the copy");
    assert_eq!(got.trim(), "root-data-of-a");

    c.call("StopInstances", &[("InstanceId.1", &a.id)]).await.ok();
    wait_state(&c, &a.id, "stopped", Duration::from_secs(90)).await;
    c.call("StartInstances", &[("InstanceId.1", &a.id)]).await.ok();
    let a = ready(&c, ns, &key, &a.id).await;
    let got = ssh(ns, &key, &a.ip, "cat ~/root-file").await.expect("ssh after start");
    assert_eq!(got.trim(), "root-data-of-a", "root data kept across stop and start");
    // The volume restored from the snapshot (grown to 2 GiB) is attached again at start. (Its
    // device node is root's now: user-data, which opened it to admin, runs once per instance.)
    let sectors = wait_for("sda back in A after start", Duration::from_secs(60), || async {
        ssh(ns, &key, &a.ip, "cat /sys/block/sda/size").await.ok()
    })
    .await;
    assert_eq!(sectors.trim(), (2u64 << 21).to_string(), "attached volumes come back at start");

    // A QMP error during attach: the volume's disk file is damaged behind Corral's back, so
    // QEMU cannot open it. The volume stays available, the guest unchanged and running.
    let broken = c.call("CreateVolume", &[("Size", "1"), ("AvailabilityZone", "local-1a")]).await.ok().text("volumeId").unwrap();
    let newest = pool_files(&pool).into_iter().max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok()).unwrap();
    let good = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, b"this is not a qcow2 image").unwrap();
    let before = devices(ns, &key, &b).await;
    let r = c.call("AttachVolume", &[("VolumeId", &broken), ("InstanceId", &b.id), ("Device", "/dev/sdh")]).await;
    assert!(r.code().is_some(), "attaching a damaged disk must fail: {}", r.body);
    assert_eq!(volume_state(&c, &broken).await, "available");
    assert_eq!(devices(ns, &key, &b).await, before, "nothing new in the guest");
    assert_eq!(state_of(&c, &b.id).await, "running");
    std::fs::write(&newest, good).unwrap();
    c.call("DeleteVolume", &[("VolumeId", &broken)]).await.ok();
    assert!(!newest.exists(), "its file went with it");

    // A full pool during a live snapshot: the snapshot ends in error, the volume keeps
    // working on the same layer, no file is left.
    let filler = pool.join("filler");
    let _ = corral_exec::run("dd", &["if=/dev/zero", &format!("of={}", filler.display()), "bs=1M"]).await;
    let files_full = pool_files(&pool);
    let r = c.call("CreateSnapshot", &[("VolumeId", &vol)]).await;
    let failed = r.ok().text("snapshotId").unwrap();
    assert_eq!(r.text("status").as_deref(), Some("error"), "{}", r.body);
    assert_eq!(pool_files(&pool), files_full, "no layer left by the failed snapshot");
    std::fs::remove_file(&filler).unwrap();
    write_disk(ns, &key, &b, "/dev/sda", "still-writable").await;
    assert_eq!(read_disk(ns, &key, &b, "/dev/sda").await.trim(), "still-writable");
    c.call("DeleteSnapshot", &[("SnapshotId", &failed)]).await.ok();

    // Snapshots taken and deleted again leave no layers behind in the volume's chain: the
    // running VM copies them up into the layers above (block-stream) and their files go,
    // while the guest keeps reading and writing.
    let files_before = pool_files(&pool).len();
    let mut extra = Vec::new();
    for text in ["in-first-extra", "in-second-extra"] {
        write_disk(ns, &key, &b, "/dev/sda", text).await;
        extra.push(c.call("CreateSnapshot", &[("VolumeId", &vol)]).await.ok().text("snapshotId").unwrap());
    }
    write_disk(ns, &key, &b, "/dev/sda", "after-the-extras").await;
    assert_eq!(pool_files(&pool).len(), files_before + 2);
    for s in &extra {
        c.call("DeleteSnapshot", &[("SnapshotId", s)]).await.ok();
    }
    wait_for("the deleted snapshots' layers to go", Duration::from_secs(60), || async {
        (pool_files(&pool).len() == files_before).then_some(())
    })
    .await;
    assert_eq!(read_disk(ns, &key, &b, "/dev/sda").await.trim(), "after-the-extras");
    write_disk(ns, &key, &b, "/dev/sda", "after-the-collapse").await;
    assert_eq!(read_disk(ns, &key, &b, "/dev/sda").await.trim(), "after-the-collapse");

    // Terminate: the attached volumes (DeleteOnTermination false) stay; the roots go.
    for id in [&a.id, &b.id, &copy.id] {
        c.call("TerminateInstances", &[("InstanceId.1", id)]).await.ok();
    }
    for id in [&a.id, &b.id, &copy.id] {
        wait_state(&c, id, "terminated", Duration::from_secs(90)).await;
    }
    assert_eq!(volume_state(&c, &vol).await, "available");
    assert_eq!(volume_state(&c, &restored).await, "available");

    // Deleting everything frees the pool down to the image it started with.
    c.call("DeleteVolume", &[("VolumeId", &vol)]).await.ok();
    c.call("DeleteVolume", &[("VolumeId", &restored)]).await.ok();
    let r = c.call("DeregisterImage", &[("ImageId", &ami), ("DeleteAssociatedSnapshots", "true")]).await;
    r.ok();
    c.call("DeleteSnapshot", &[("SnapshotId", &snap)]).await.ok();
    assert_eq!(pool_files(&pool), files_at_start, "only the default image's layer is left");
    let doctor = corral_exec::run(env!("CARGO_BIN_EXE_corral"), &["doctor", "--state-dir", &cloud.state.display().to_string()]).await;
    let out = match doctor {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => e.to_string(),
    };
    assert!(out.contains("storage pool") && out.contains("1 layer file(s)"), "doctor shows the pool: {out}");
}
