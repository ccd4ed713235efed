//! Snapshots, images and layer chains through the signed API, on the simulated agent (whose
//! pool keeps layers in memory): the decisions, the states, the errors and what the agent is
//! asked to do; volumes are in `volumes.rs`. What the disks hold is tested on real guests in
//! `crates/cli/tests/e2e_storage.rs`.

use corral_agent::sim::SimOp;
use corral_agent_api::LayerId;
use corral_testkit::TestContext;

#[tokio::test]
async fn snapshots_freeze_layers_and_volumes_grow_from_them() {
    let ctx = TestContext::new().await;
    let id = ctx.run(1, &[("Placement.AvailabilityZone", "local-1a")]).await.remove(0);
    ctx.wait_state(&id, "running").await;
    let vol = ctx.volume("4", "local-1a").await;
    ctx.call("AttachVolume", &[("VolumeId", &vol), ("InstanceId", &id), ("Device", "/dev/sdf")]).await.ok();
    let top_before = ctx.agent.vm(&id).unwrap().disks.iter().find(|d| d.volume_id == vol).unwrap().layer.clone();

    let r = ctx
        .call(
            "CreateSnapshot",
            &[
                ("VolumeId", &vol),
                ("Description", "nightly"),
                ("TagSpecification.1.ResourceType", "snapshot"),
                ("TagSpecification.1.Tag.1.Key", "k"),
                ("TagSpecification.1.Tag.1.Value", "v"),
            ],
        )
        .await;
    let snap = r.ok().text("snapshotId").unwrap();
    assert_eq!(r.text("status").as_deref(), Some("completed"));
    assert_eq!(r.text("volumeSize").as_deref(), Some("4"));
    // Live: the running VM now writes to a new top layer on the frozen one.
    let disk = ctx.agent.vm(&id).unwrap().disks.into_iter().find(|d| d.volume_id == vol).unwrap();
    assert_ne!(disk.layer, top_before);
    assert_eq!(disk.backing.as_ref(), Some(&top_before));

    let r = ctx.call("DescribeSnapshots", &[("Owner.1", "self"), ("Filter.1.Name", "volume-id"), ("Filter.1.Value.1", &vol)]).await;
    assert_eq!(r.ok().texts("snapshotId"), vec![snap.clone()]);
    let r = ctx.call("DescribeSnapshots", &[("Filter.1.Name", "tag:k"), ("Filter.1.Value.1", "v")]).await;
    assert_eq!(r.ok().texts("snapshotId"), vec![snap.clone()]);
    ctx.call("DescribeSnapshots", &[("SnapshotId.1", "snap-0123456789abcdef0")]).await.err("InvalidSnapshot.NotFound");
    ctx.call("DescribeSnapshots", &[("SnapshotId.1", "snap-zz")]).await.err("InvalidSnapshotID.Malformed");

    // A volume from the snapshot is an overlay on the frozen layer, at least as big.
    ctx.call("CreateVolume", &[("SnapshotId", &snap), ("AvailabilityZone", "local-1a"), ("Size", "2")]).await.err("InvalidParameterValue");
    let r = ctx.call("CreateVolume", &[("SnapshotId", &snap), ("AvailabilityZone", "local-1a")]).await;
    let restored = r.ok().text("volumeId").unwrap();
    assert_eq!(r.text("size").as_deref(), Some("4"));
    assert_eq!(r.text("snapshotId").as_deref(), Some(snap.as_str()));
    let layers = ctx.agent.layers();
    let top_layer = |v: &str| {
        let store = ctx.control.store().clone();
        let rec = store.read(|tx| tx.doc_get::<corral_store::VolumeRecord>(v)).unwrap().unwrap();
        LayerId::parse(&rec.layer).unwrap()
    };
    assert_eq!(layers[&top_layer(&restored)].backing.as_ref(), Some(&top_before));

    // A copy shares the layer; deleting the original leaves the copy usable.
    let r = ctx.call("CopySnapshot", &[("SourceSnapshotId", &snap), ("SourceRegion", "local-1")]).await;
    let copy = r.ok().text("snapshotId").unwrap();
    let n = ctx.agent.layers().len();
    // Copies between regions are not built yet; a name that is no region is refused.
    ctx.call("CopySnapshot", &[("SourceSnapshotId", &snap), ("SourceRegion", "us-east-1")]).await.err("UnsupportedOperation");
    ctx.call("CopySnapshot", &[("SourceSnapshotId", &snap), ("SourceRegion", "mars-north-9")]).await.err("InvalidParameterValue");
    ctx.call("DeleteSnapshot", &[("SnapshotId", &snap)]).await.ok();
    assert_eq!(ctx.agent.layers().len(), n, "the frozen layer is still used");
    ctx.call("CreateVolume", &[("SnapshotId", &copy), ("AvailabilityZone", "local-1a"), ("Size", "8")]).await.ok();

    // Growing: live through the agent while attached to a running instance.
    let r = ctx.call("ModifyVolume", &[("VolumeId", &vol), ("Size", "6")]).await;
    assert_eq!(r.ok().text("modificationState").as_deref(), Some("completed"));
    assert_eq!(r.text("targetSize").as_deref(), Some("6"));
    assert_eq!(ctx.agent.vm(&id).unwrap().disks.iter().find(|d| d.volume_id == vol).unwrap().size_bytes, 6 << 30);
    ctx.call("ModifyVolume", &[("VolumeId", &vol), ("Size", "5")]).await.err("InvalidParameterValue");
    let r = ctx.call("DescribeVolumesModifications", &[("VolumeId.1", &vol)]).await;
    assert_eq!(r.ok().text("originalSize").as_deref(), Some("4"));
    let r = ctx.call("DescribeVolumes", &[("VolumeId.1", &vol)]).await;
    assert_eq!(r.ok().text("size").as_deref(), Some("6"));
}

#[tokio::test]
async fn a_failed_snapshot_ends_in_error_and_changes_nothing() {
    let ctx = TestContext::new().await;
    let id = ctx.run(1, &[("Placement.AvailabilityZone", "local-1a")]).await.remove(0);
    ctx.wait_state(&id, "running").await;
    let vol = ctx.volume("1", "local-1a").await;
    ctx.call("AttachVolume", &[("VolumeId", &vol), ("InstanceId", &id), ("Device", "/dev/sdf")]).await.ok();
    let before = ctx.agent.layers();
    ctx.agent.fail_next(SimOp::DiskSnapshot, "No space left on device");
    let r = ctx.call("CreateSnapshot", &[("VolumeId", &vol)]).await;
    let snap = r.ok().text("snapshotId").unwrap();
    assert_eq!(r.text("status").as_deref(), Some("error"));
    assert_eq!(ctx.agent.layers(), before, "no layer added");
    ctx.call("CreateVolume", &[("SnapshotId", &snap), ("AvailabilityZone", "local-1a")]).await.err("IncorrectState");
    // The volume still works and snapshots again.
    let r = ctx.call("CreateSnapshot", &[("VolumeId", &vol)]).await;
    assert_eq!(r.ok().text("status").as_deref(), Some("completed"));
    ctx.call("DeleteSnapshot", &[("SnapshotId", &snap)]).await.ok();
}

#[tokio::test]
async fn images_from_instances_snapshots_and_copies() {
    let ctx = TestContext::new().await;
    let id = ctx
        .run(
            1,
            &[
                ("Placement.AvailabilityZone", "local-1a"),
                ("BlockDeviceMapping.1.DeviceName", "/dev/sdf"),
                ("BlockDeviceMapping.1.Ebs.VolumeSize", "3"),
            ],
        )
        .await
        .remove(0);
    ctx.wait_state(&id, "running").await;
    let r = ctx.call("CreateImage", &[("InstanceId", &id), ("Name", "web-v1"), ("NoReboot", "true"), ("Description", "web server")]).await;
    let ami = r.ok().text("imageId").unwrap();
    ctx.call("CreateImage", &[("InstanceId", &id), ("Name", "web-v1"), ("NoReboot", "true")]).await.err("InvalidAMIName.Duplicate");
    ctx.call("CreateImage", &[("InstanceId", &id), ("Name", "x")]).await.err("InvalidAMIName.Malformed");
    let r = ctx.call("DescribeImages", &[("ImageId.1", &ami)]).await;
    assert_eq!(r.ok().text("imageState").as_deref(), Some("available"));
    assert_eq!(r.texts("deviceName"), vec!["/dev/xvda", "/dev/sdf"]);
    let snaps = r.texts("snapshotId");
    assert_eq!(snaps.len(), 2, "{}", r.body);
    assert_eq!(r.texts("volumeSize")[1], "3");
    let r = ctx.call("DescribeImages", &[("Owner.1", "self"), ("Filter.1.Name", "name"), ("Filter.1.Value.1", "web-*")]).await;
    assert_eq!(r.ok().texts("imageId"), vec![ami.clone()]);

    // Launching from it gives the same two volumes, overlays on the image's snapshots.
    let copy_of = ctx.run(1, &[("ImageId", &ami), ("Placement.AvailabilityZone", "local-1a")]).await.remove(0);
    ctx.wait_state(&copy_of, "running").await;
    let disks = ctx.agent.vm(&copy_of).unwrap().spec.disks;
    assert_eq!(disks.len(), 2);
    assert!(
        matches!(ctx.agent.vm(&copy_of).unwrap().spec.boot, corral_agent_api::BootMode::DirectKernel { .. }),
        "boots the source image's kernel"
    );

    ctx.call("DeleteSnapshot", &[("SnapshotId", &snaps[0])]).await.err("InvalidSnapshot.InUse");

    // RegisterImage from the root snapshot; CopyImage; attributes.
    let r = ctx
        .call(
            "RegisterImage",
            &[
                ("Name", "from-snap"),
                ("RootDeviceName", "/dev/xvda"),
                ("Architecture", "x86_64"),
                ("VirtualizationType", "hvm"),
                ("BlockDeviceMapping.1.DeviceName", "/dev/xvda"),
                ("BlockDeviceMapping.1.Ebs.SnapshotId", &snaps[0]),
            ],
        )
        .await;
    let registered = r.ok().text("imageId").unwrap();
    ctx.call("RegisterImage", &[("Name", "no-root"), ("RootDeviceName", "/dev/xvda")]).await.err("InvalidBlockDeviceMapping");
    let r = ctx.call("CopyImage", &[("SourceImageId", &ami), ("SourceRegion", "local-1"), ("Name", "web-v1-copy")]).await;
    let copied = r.ok().text("imageId").unwrap();
    let r = ctx.call("DescribeImages", &[("ImageId.1", &copied)]).await;
    let copied_snaps = r.ok().texts("snapshotId");
    assert_eq!(copied_snaps.len(), 2);
    assert!(copied_snaps.iter().all(|s| !snaps.contains(s)), "new snapshots");
    assert_eq!(r.text("description").as_deref(), Some("web server"));

    ctx.call("ModifyImageAttribute", &[("ImageId", &ami), ("Description.Value", "web server v1")]).await.ok();
    ctx.call("ModifyImageAttribute", &[("ImageId", &ami), ("LaunchPermission.Add.1.Group", "all")]).await.ok();
    let r = ctx.call("DescribeImageAttribute", &[("ImageId", &ami), ("Attribute", "launchPermission")]).await;
    assert!(r.ok().body.contains("<group>all</group>"), "{}", r.body);
    let r = ctx.call("DescribeImages", &[("ImageId.1", &ami)]).await;
    assert_eq!(r.ok().text("isPublic").as_deref(), Some("true"));
    ctx.call("ModifyImageAttribute", &[("ImageId", &ami), ("LaunchPermission.Remove.1.Group", "all")]).await.ok();
    let r = ctx.call("DescribeImageAttribute", &[("ImageId", &ami), ("Attribute", "description")]).await;
    assert!(r.ok().body.contains("web server v1"), "{}", r.body);
    ctx.call("DescribeImageAttribute", &[("ImageId", &ami), ("Attribute", "colour")]).await.err("InvalidParameterValue");

    // Deregistering keeps the snapshots (unless asked); then they can go, and the layers
    // nothing uses any more go with them.
    ctx.call("DeregisterImage", &[("ImageId", &registered)]).await.ok();
    ctx.call("DeregisterImage", &[("ImageId", &copied), ("DeleteAssociatedSnapshots", "true")]).await.ok();
    let r = ctx.call("DescribeSnapshots", &[("SnapshotId.1", &copied_snaps[0])]).await;
    r.err("InvalidSnapshot.NotFound");
    ctx.call("DeregisterImage", &[("ImageId", &ami)]).await.ok();
    ctx.call("DescribeImages", &[("ImageId.1", &ami)]).await.err("InvalidAMIID.NotFound");
    for s in &snaps {
        ctx.call("DeleteSnapshot", &[("SnapshotId", s)]).await.ok();
    }
    // The instances launched from it still hold their chains.
    ctx.call("TerminateInstances", &[("InstanceId.1", &copy_of), ("InstanceId.2", &id)]).await.ok();
    ctx.wait_state(&copy_of, "terminated").await;
    ctx.wait_state(&id, "terminated").await;
    let store = ctx.control.store().clone();
    let records = store.read(|tx| tx.doc_list::<corral_store::LayerRecord>()).unwrap();
    let sim: std::collections::HashSet<LayerId> = ctx.agent.layers().into_keys().collect();
    for r in &records {
        assert!(sim.contains(&LayerId::parse(&r.layer_id).unwrap()), "record without a layer: {}", r.layer_id);
    }
    assert_eq!(records.len(), 2, "only the two default images' layers are left: {records:?}");
}

/// A crash between a storage step's two transactions: at start the control plane settles
/// what it finds half done, from what the pool really holds.
#[tokio::test]
async fn steps_left_halfway_are_settled_at_start() {
    use corral_agent_api::Storage;
    use corral_store::{SnapshotRecord, VolumeAttachment, VolumeRecord};
    let ctx = TestContext::new().await;
    let vol = ctx.volume("1", "local-1a").await;
    let other = ctx.volume("1", "local-1a").await;
    let store = ctx.control.store().clone();
    let v: VolumeRecord = store.read(|tx| tx.doc_get(&vol)).unwrap().unwrap();
    let old_top = LayerId::parse(&v.layer).unwrap();
    // A snapshot whose host step happened (its new top layer is in the pool), one whose step
    // did not, and an attachment left `attaching`.
    let done_top = LayerId::random();
    ctx.agent.layer_create(&done_top, Some(&old_top), 1 << 30).await.unwrap();
    let pending = |id: &str, top: &LayerId| SnapshotRecord {
        snapshot_id: id.into(),
        volume_id: vol.clone(),
        volume_size_gib: 1,
        owner_id: "123456789012".into(),
        description: String::new(),
        state: "pending".into(),
        state_message: None,
        started_at: "2026-11-26T00:00:00.000Z".into(),
        completed_at: None,
        layer: None,
        pending_top: Some(top.to_string()),
        boot: None,
        public: false,
        volume_users: vec![],
    };
    let id = ctx.run(1, &[("Placement.AvailabilityZone", "local-1a")]).await.remove(0);
    ctx.wait_state(&id, "running").await;
    store
        .transaction(|tx| {
            tx.doc_put(&pending("snap-0000000000000000a", &done_top))?;
            tx.doc_put(&pending("snap-0000000000000000b", &LayerId::random()))?;
            let mut o: VolumeRecord = tx.doc_get(&other)?.unwrap();
            o.state = "in-use".into();
            o.attachment = Some(VolumeAttachment {
                instance_id: id.clone(),
                device: "/dev/sdf".into(),
                state: "attaching".into(),
                attach_time: "2026-11-26T00:00:00.000Z".into(),
                delete_on_termination: false,
            });
            tx.doc_put(&o)
        })
        .unwrap();

    // And a live one: a volume attached to the running instance, whose snapshot was recorded
    // but never reached the VM; asked again, the VM takes it.
    let live = ctx.volume("1", "local-1a").await;
    ctx.call("AttachVolume", &[("VolumeId", &live), ("InstanceId", &id), ("Device", "/dev/sdg")]).await.ok();
    let live_top = LayerId::random();
    store
        .transaction(|tx| {
            let mut p = pending("snap-0000000000000000c", &live_top);
            p.volume_id = live.clone();
            tx.doc_put(&p)
        })
        .unwrap();

    ctx.control.storage_recover().await.unwrap();
    let r = ctx
        .call(
            "DescribeSnapshots",
            &[
                ("SnapshotId.1", "snap-0000000000000000a"),
                ("SnapshotId.2", "snap-0000000000000000b"),
                ("SnapshotId.3", "snap-0000000000000000c"),
            ],
        )
        .await;
    assert_eq!(r.ok().texts("status"), vec!["completed", "error", "completed"], "{}", r.body);
    let disk = ctx.agent.vm(&id).unwrap().disks.into_iter().find(|d| d.volume_id == live).unwrap();
    assert_eq!(disk.layer, live_top, "the VM writes to the snapshot's new top layer");
    let v: VolumeRecord = store.read(|tx| tx.doc_get(&live)).unwrap().unwrap();
    assert_eq!(v.layer, live_top.to_string());
    let v: VolumeRecord = store.read(|tx| tx.doc_get(&vol)).unwrap().unwrap();
    assert_eq!(v.layer, done_top.to_string(), "the volume writes to the layer the host step made");
    let r = ctx.call("DescribeVolumes", &[("VolumeId.1", &other)]).await;
    assert_eq!(r.ok().text("status").as_deref(), Some("available"));
    // The completed snapshot is usable.
    ctx.call("CreateVolume", &[("SnapshotId", "snap-0000000000000000a"), ("AvailabilityZone", "local-1a")]).await.ok();
}

/// An instance outlives its image: it starts again after the image is deregistered, booting
/// the same way (the root volume carries how).
#[tokio::test]
async fn instances_start_after_their_image_is_deregistered() {
    let ctx = TestContext::new().await;
    let id = ctx.run(1, &[]).await.remove(0);
    ctx.wait_state(&id, "running").await;
    let r = ctx.call("CreateImage", &[("InstanceId", &id), ("Name", "short-lived"), ("NoReboot", "true")]).await;
    let ami = r.ok().text("imageId").unwrap();
    let second = ctx.run(1, &[("ImageId", &ami)]).await.remove(0);
    ctx.wait_state(&second, "running").await;
    ctx.call("DeregisterImage", &[("ImageId", &ami)]).await.ok();
    ctx.call("StopInstances", &[("InstanceId.1", &second)]).await.ok();
    ctx.wait_state(&second, "stopped").await;
    ctx.call("StartInstances", &[("InstanceId.1", &second)]).await.ok();
    ctx.wait_state(&second, "running").await;
    let vm = ctx.agent.vm(&second).unwrap();
    assert!(matches!(vm.spec.boot, corral_agent_api::BootMode::DirectKernel { .. }), "{:?}", vm.spec.boot);
    assert_eq!(vm.boots, 2);
    let r = ctx.call("DescribeInstances", &[("InstanceId.1", &second)]).await;
    assert_eq!(r.ok().text("rootDeviceName").as_deref(), Some("/dev/xvda"));
}

/// Without NoReboot, as on EC2, CreateImage shuts a running instance down, snapshots its
/// volumes while nothing writes to them, and starts it again; the image is pending meanwhile.
#[tokio::test]
async fn create_image_without_no_reboot_stops_and_restarts_the_instance() {
    let ctx = TestContext::new().await;
    let id = ctx.run(1, &[]).await.remove(0);
    ctx.wait_state(&id, "running").await;
    let boots = ctx.agent.vm(&id).unwrap().boots;
    let r = ctx.call("CreateImage", &[("InstanceId", &id), ("Name", "clean-fs")]).await;
    let ami = r.ok().text("imageId").unwrap();
    corral_testkit::wait_for("the image available", std::time::Duration::from_secs(10), || async {
        let r = ctx.call("DescribeImages", &[("ImageId.1", &ami)]).await;
        (r.text("imageState").as_deref() == Some("available")).then_some(())
    })
    .await;
    ctx.wait_state(&id, "running").await;
    assert_eq!(ctx.agent.vm(&id).unwrap().boots, boots + 1, "stopped and started once");
    let r = ctx.call("DescribeImages", &[("ImageId.1", &ami)]).await;
    assert_eq!(r.ok().texts("snapshotId").len(), 1);
    // The snapshots were taken offline: no live snapshot went through the agent, so the VM's
    // disk is the one the restart opened, an overlay on the snapshot's layer.
    let disk = ctx.agent.vm(&id).unwrap().spec.disks[0].clone();
    let snap = r.text("snapshotId").unwrap();
    let store = ctx.control.store().clone();
    let rec = store.read(|tx| tx.doc_get::<corral_store::SnapshotRecord>(&snap)).unwrap().unwrap();
    assert_eq!(disk.backing.map(|l| l.to_string()), rec.layer);
}

#[tokio::test]
async fn volume_status_and_attributes_of_volumes_snapshots_and_images() {
    let ctx = TestContext::new().await;
    let vol = ctx.volume("1", "local-1a").await;
    let r = ctx.call("DescribeVolumeStatus", &[("VolumeId.1", &vol)]).await;
    assert_eq!(r.ok().texts("status"), vec!["passed", "not-applicable", "ok"], "details, then the volume's: {}", r.body);
    let r = ctx.call("DescribeVolumeStatus", &[("Filter.1.Name", "volume-status.status"), ("Filter.1.Value.1", "impaired")]).await;
    assert!(r.ok().texts("volumeId").is_empty());
    ctx.call("DescribeVolumeStatus", &[("VolumeId.1", "vol-0123456789abcdef0")]).await.err("InvalidVolume.NotFound");

    let r = ctx.call("DescribeVolumeAttribute", &[("VolumeId", &vol), ("Attribute", "autoEnableIO")]).await;
    assert!(r.ok().body.contains("<autoEnableIO><value>false</value></autoEnableIO>"), "{}", r.body);
    ctx.call("ModifyVolumeAttribute", &[("VolumeId", &vol), ("AutoEnableIO.Value", "true")]).await.ok();
    let r = ctx.call("DescribeVolumeAttribute", &[("VolumeId", &vol), ("Attribute", "autoEnableIO")]).await;
    assert!(r.ok().body.contains("<autoEnableIO><value>true</value></autoEnableIO>"), "{}", r.body);
    ctx.call("DescribeVolumeAttribute", &[("VolumeId", &vol), ("Attribute", "size")]).await.err("InvalidParameterValue");

    let snap = ctx.call("CreateSnapshot", &[("VolumeId", &vol)]).await.ok().text("snapshotId").unwrap();
    assert_eq!(perms(&ctx, &snap).await, (vec![], vec![]));
    ctx.call(
        "ModifySnapshotAttribute",
        &[("SnapshotId", &snap), ("Attribute", "createVolumePermission"), ("OperationType", "add"), ("UserId.1", "111122223333")],
    )
    .await
    .ok();
    ctx.call("ModifySnapshotAttribute", &[("SnapshotId", &snap), ("CreateVolumePermission.Add.1.Group", "all")]).await.ok();
    assert_eq!(perms(&ctx, &snap).await, (vec!["all".to_string()], vec!["111122223333".to_string()]));
    ctx.call("ModifySnapshotAttribute", &[("SnapshotId", &snap), ("CreateVolumePermission.Add.1.UserId", "12")])
        .await
        .err("InvalidParameterValue");
    ctx.call("ResetSnapshotAttribute", &[("SnapshotId", &snap), ("Attribute", "createVolumePermission")]).await.ok();
    assert_eq!(perms(&ctx, &snap).await, (vec![], vec![]));

    let image = ctx.image("corral-minimal");
    ctx.call("ModifyImageAttribute", &[("ImageId", &image), ("LaunchPermission.Add.1.Group", "all")]).await.ok();
    ctx.call("ResetImageAttribute", &[("ImageId", &image), ("Attribute", "launchPermission")]).await.ok();
    let r = ctx.call("DescribeImages", &[("ImageId.1", &image)]).await;
    assert_eq!(r.ok().text("isPublic").as_deref(), Some("false"));
    ctx.call("ResetImageAttribute", &[("ImageId", &image), ("Attribute", "description")]).await.err("InvalidParameterValue");
}

async fn perms(ctx: &TestContext, snap: &str) -> (Vec<String>, Vec<String>) {
    let r = ctx.call("DescribeSnapshotAttribute", &[("SnapshotId", snap), ("Attribute", "createVolumePermission")]).await;
    r.ok();
    (r.texts("group"), r.texts("userId"))
}

/// The depth of a volume's chain, from the store's layer records.
fn chain_depth(ctx: &TestContext, volume_id: &str) -> usize {
    let store = ctx.control.store().clone();
    store
        .read(|tx| {
            let v = tx.doc_get::<corral_store::VolumeRecord>(volume_id)?.unwrap();
            let mut depth = 0;
            let mut at = Some(v.layer);
            while let Some(l) = at {
                depth += 1;
                at = tx.doc_get::<corral_store::LayerRecord>(&l)?.unwrap().backing;
            }
            Ok::<_, corral_store::StoreError>(depth)
        })
        .unwrap()
}

/// Deleted snapshots' layers leave the middle of the chains they were in: through the running
/// VM when one has the chain open, offline when none does, never while two read a layer.
#[tokio::test]
async fn chains_shorten_when_snapshots_go() {
    let ctx = TestContext::new().await;
    let ids = ctx.run(2, &[("Placement.AvailabilityZone", "local-1a")]).await;
    for id in &ids {
        ctx.wait_state(id, "running").await;
    }
    let vol = ctx.volume("1", "local-1a").await;
    ctx.call("AttachVolume", &[("VolumeId", &vol), ("InstanceId", &ids[0]), ("Device", "/dev/sdf")]).await.ok();
    let mut snaps = Vec::new();
    for _ in 0..3 {
        snaps.push(ctx.call("CreateSnapshot", &[("VolumeId", &vol)]).await.ok().text("snapshotId").unwrap());
    }
    assert_eq!(chain_depth(&ctx, &vol), 4);

    // Live: the first two snapshots go; their layers are copied up through the VM.
    for s in &snaps[..2] {
        ctx.call("DeleteSnapshot", &[("SnapshotId", s)]).await.ok();
    }
    corral_testkit::wait_for("the chain to shorten", std::time::Duration::from_secs(10), || async {
        (chain_depth(&ctx, &vol) == 2).then_some(())
    })
    .await;
    let disk = ctx.agent.vm(&ids[0]).unwrap().disks.into_iter().find(|d| d.volume_id == vol).unwrap();
    let layers = ctx.agent.layers();
    let below = disk.backing.clone().expect("the top sits on the last snapshot's layer");
    assert_eq!(layers[&below].backing, None, "nothing below the last snapshot's layer any more");

    // A layer two VMs read stays until one lets go: a snapshot's layer under two volumes.
    let s4 = ctx.call("CreateSnapshot", &[("VolumeId", &vol)]).await.ok().text("snapshotId").unwrap();
    let other = ctx.call("CreateVolume", &[("SnapshotId", &s4), ("AvailabilityZone", "local-1a")]).await.ok().text("volumeId").unwrap();
    ctx.call("AttachVolume", &[("VolumeId", &other), ("InstanceId", &ids[1]), ("Device", "/dev/sdf")]).await.ok();
    ctx.call("DeleteSnapshot", &[("SnapshotId", &snaps[2])]).await.ok();
    ctx.control.chains_collapse().await.unwrap();
    assert_eq!(chain_depth(&ctx, &vol), 3, "the layer under the shared one stays while two VMs read it");
    ctx.call("DetachVolume", &[("VolumeId", &other)]).await.ok();
    ctx.control.chains_collapse().await.unwrap();
    assert_eq!(chain_depth(&ctx, &vol), 2);
    assert_eq!(chain_depth(&ctx, &other), 2);
    // Every record still has its layer, and no layer lost its backing.
    let sim = ctx.agent.layers();
    let store = ctx.control.store().clone();
    for r in store.read(|tx| tx.doc_list::<corral_store::LayerRecord>()).unwrap() {
        let l = &sim[&LayerId::parse(&r.layer_id).unwrap()];
        assert_eq!(l.backing.as_ref().map(|b| b.to_string()), r.backing, "layer {}", r.layer_id);
    }
}

/// What a crash leaves in the pool without a record (a layer deleted from the store before
/// its file, a layer made before its record) is swept once older than the grace period; a
/// young file (a write whose record is about to commit) and every layer a record names stay.
#[tokio::test]
async fn the_sweep_removes_old_layer_files_that_no_record_names() {
    use corral_agent_api::Storage;
    use std::time::Duration;
    let ctx = TestContext::new().await;
    let id = ctx.run(1, &[("Placement.AvailabilityZone", "local-1a")]).await.remove(0);
    ctx.wait_state(&id, "running").await;
    let vol = ctx.volume("2", "local-1a").await;
    ctx.call("AttachVolume", &[("VolumeId", &vol), ("InstanceId", &id), ("Device", "/dev/sdf")]).await.ok();
    ctx.call("CreateSnapshot", &[("VolumeId", &vol)]).await.ok();
    let named_before: Vec<LayerId> = ctx.agent.layer_files().await.unwrap().into_iter().map(|f| f.layer).collect();
    assert!(named_before.len() >= 3, "the root, the volume's top and the snapshot's layer: {named_before:?}");

    // Leftovers: a chain of two (the top must go before what it builds on) and one that is young.
    let (base, top, young) = (LayerId::random(), LayerId::random(), LayerId::random());
    ctx.agent.layer_create(&base, None, 1 << 30).await.unwrap();
    ctx.agent.layer_create(&top, Some(&base), 1 << 30).await.unwrap();
    ctx.agent.age_layers(Duration::from_secs(3600));
    ctx.agent.layer_create(&young, None, 1 << 30).await.unwrap();

    let swept = ctx.control.sweep_older_than(Duration::from_secs(600)).await.unwrap();
    let mut gone = swept.layers.clone();
    gone.sort();
    let mut expected = vec![base.clone(), top.clone()];
    expected.sort();
    assert_eq!(gone, expected, "{swept:?}");
    assert!(swept.failed.is_empty(), "{swept:?}");
    let left: Vec<LayerId> = ctx.agent.layer_files().await.unwrap().into_iter().map(|f| f.layer).collect();
    assert!(left.contains(&young), "a young file is left alone");
    for l in &named_before {
        assert!(left.contains(l), "layer {l}, which a record names, was swept");
    }
    // The volume and its snapshot still work as before.
    ctx.call("CreateSnapshot", &[("VolumeId", &vol)]).await.ok();

    // Once old enough, the young one goes too; a second sweep finds nothing more.
    ctx.agent.age_layers(Duration::from_secs(3600));
    assert_eq!(ctx.control.sweep_older_than(Duration::from_secs(600)).await.unwrap().layers, vec![young]);
    assert_eq!(ctx.control.sweep_older_than(Duration::from_secs(600)).await.unwrap(), Default::default());
}

/// The consistency check (`corral doctor --store`, and the crash-injection tests after every
/// kill) passes on a store the API built, and names a reference to a record that is gone.
#[tokio::test]
async fn the_consistency_check_finds_dangling_references() {
    let ctx = TestContext::new().await;
    let id = ctx.run(1, &[("Placement.AvailabilityZone", "local-1a"), ("ClientToken", "once")]).await.remove(0);
    ctx.wait_state(&id, "running").await;
    let vol = ctx.volume("2", "local-1a").await;
    ctx.call("AttachVolume", &[("VolumeId", &vol), ("InstanceId", &id), ("Device", "/dev/sdf")]).await.ok();
    ctx.call("CreateSnapshot", &[("VolumeId", &vol)]).await.ok();
    let check = || ctx.control.store().read(corral_control::consistency::problems).unwrap();
    assert_eq!(check(), Vec::<String>::new());

    let layer = ctx.control.store().read(|tx| tx.doc_get::<corral_store::VolumeRecord>(&vol)).unwrap().unwrap().layer;
    ctx.control.store().transaction(|tx| tx.doc_delete::<corral_store::LayerRecord>(&layer)).unwrap();
    let found = check();
    assert!(found.iter().any(|p| p.contains(&vol) && p.contains(&layer)), "{found:?}");

    // A second launch under the same ClientToken, as a lost idempotency record would allow.
    let mut twin = ctx.control.store().read(|tx| tx.instance_get(&id)).unwrap().unwrap();
    twin.instance_id = "i-0aaaaaaaaaaaaaaa0".into();
    twin.reservation_id = "r-0aaaaaaaaaaaaaaa0".into();
    twin.seq += 1000;
    ctx.control.store().transaction(|tx| tx.instance_insert(&twin)).unwrap();
    assert!(check().iter().any(|p| p.contains("ClientToken \"once\" launched twice")), "{:?}", check());
}
