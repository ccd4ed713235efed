//! Volumes through the signed API, on the simulated agent: root volumes made at launch, launch
//! mappings, live attach and detach, and their errors. Snapshots, images and layer chains are
//! in `storage.rs`; what the disks hold is tested on real guests in
//! `crates/cli/tests/e2e_storage.rs`.

use corral_agent::sim::SimOp;
use corral_agent_api::DiskBus;
use corral_testkit::TestContext;

fn zone_of(r: &corral_testkit::Response) -> String {
    r.text("availabilityZone").unwrap()
}

#[tokio::test]
async fn root_volumes_are_created_listed_and_deleted_on_termination() {
    let ctx = TestContext::new().await;
    let image = ctx.image("corral-minimal");
    let r = ctx
        .call(
            "RunInstances",
            &[
                ("ImageId", &image),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("BlockDeviceMapping.1.DeviceName", "/dev/xvda"),
                ("BlockDeviceMapping.1.Ebs.VolumeSize", "20"),
                ("BlockDeviceMapping.2.DeviceName", "/dev/sdf"),
                ("BlockDeviceMapping.2.Ebs.VolumeSize", "5"),
                ("BlockDeviceMapping.2.Ebs.DeleteOnTermination", "false"),
                ("TagSpecification.1.ResourceType", "volume"),
                ("TagSpecification.1.Tag.1.Key", "team"),
                ("TagSpecification.1.Tag.1.Value", "db"),
            ],
        )
        .await;
    let id = r.ok().text("instanceId").unwrap();
    assert_eq!(r.texts("deviceName"), vec!["/dev/xvda", "/dev/sdf"], "{}", r.body);
    ctx.wait_state(&id, "running").await;

    // The VM got both disks: the root as the boot disk, /dev/sdf at SCSI target 5, each a
    // new top layer on its own.
    let vm = ctx.agent.vm(&id).unwrap();
    assert_eq!(vm.spec.disks.len(), 2);
    assert_eq!(vm.spec.disks[0].bus, DiskBus::Root);
    assert_eq!(vm.spec.disks[0].size_bytes, 20 << 30);
    assert!(vm.spec.disks[0].backing.is_some(), "the root is an overlay on the image's snapshot");
    assert_eq!(vm.spec.disks[1].bus, DiskBus::Scsi { target: 5 });
    assert_eq!(vm.spec.disks[1].backing, None);

    let r = ctx.call("DescribeVolumes", &[("Filter.1.Name", "attachment.instance-id"), ("Filter.1.Value.1", &id)]).await;
    let mut vols = r.ok().texts("volumeId");
    vols.dedup(); // each volume's id is also in its attachment
    assert_eq!(vols.len(), 2, "{}", r.body);
    // `status` is both the attachment's and the volume's.
    assert_eq!(r.texts("status"), vec!["attached", "in-use", "attached", "in-use"]);
    assert_eq!(r.texts("size"), vec!["20", "5"]);
    let r = ctx.call("DescribeVolumes", &[("Filter.1.Name", "tag:team"), ("Filter.1.Value.1", "db")]).await;
    assert_eq!(r.ok().texts("volumeId").len(), 4, "volume tags at launch (two volumes, each id twice)");
    let root = vm.spec.disks[0].volume_id.clone();
    let data = vm.spec.disks[1].volume_id.clone();

    // The root cannot be detached while the instance runs; nor deleted while attached.
    ctx.call("DetachVolume", &[("VolumeId", &root)]).await.err("IncorrectState");
    ctx.call("DeleteVolume", &[("VolumeId", &data)]).await.err("VolumeInUse");

    let layers_before = ctx.agent.layers().len();
    ctx.call("TerminateInstances", &[("InstanceId.1", &id)]).await.ok();
    ctx.wait_state(&id, "terminated").await;
    ctx.call("DescribeVolumes", &[("VolumeId.1", &root)]).await.err("InvalidVolume.NotFound");
    let r = ctx.call("DescribeVolumes", &[("VolumeId.1", &data)]).await;
    assert_eq!(r.ok().text("status").as_deref(), Some("available"), "DeleteOnTermination false keeps it");
    assert!(r.texts("instanceId").is_empty(), "no attachment left: {}", r.body);
    assert_eq!(ctx.agent.layers().len(), layers_before - 1, "the root's layer is gone, the image's stays");

    ctx.call("DeleteVolume", &[("VolumeId", &data)]).await.ok();
    assert_eq!(ctx.agent.layers().len(), layers_before - 2);
    ctx.call("DeleteVolume", &[("VolumeId", &data)]).await.err("InvalidVolume.NotFound");
}

#[tokio::test]
async fn launch_mappings_are_checked() {
    let ctx = TestContext::new().await;
    let image = ctx.image("corral-minimal");
    let base = [("ImageId", image.as_str()), ("MinCount", "1"), ("MaxCount", "1")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut v: Vec<(&str, &str)> = base.to_vec();
        v.extend_from_slice(extra);
        v
    };
    // Smaller than the image's snapshot (1 GiB here is the smallest; ask for 0).
    ctx.call("RunInstances", &with(&[("BlockDeviceMapping.1.DeviceName", "/dev/xvda"), ("BlockDeviceMapping.1.Ebs.VolumeSize", "0")]))
        .await
        .err("InvalidBlockDeviceMapping");
    ctx.call("RunInstances", &with(&[("BlockDeviceMapping.1.DeviceName", "/dev/xvda"), ("BlockDeviceMapping.1.NoDevice", "")]))
        .await
        .err("InvalidBlockDeviceMapping");
    ctx.call("RunInstances", &with(&[("BlockDeviceMapping.1.DeviceName", "/dev/sdg")])).await.ok();
    ctx.call(
        "RunInstances",
        &with(&[("BlockDeviceMapping.1.DeviceName", "/dev/sdg"), ("BlockDeviceMapping.1.Ebs.DeleteOnTermination", "true")]),
    )
    .await
    .err("InvalidBlockDeviceMapping");
    ctx.call("RunInstances", &with(&[("BlockDeviceMapping.1.DeviceName", "/dev/nvme1n1"), ("BlockDeviceMapping.1.Ebs.VolumeSize", "1")]))
        .await
        .err("InvalidBlockDeviceMapping");
    ctx.call(
        "RunInstances",
        &with(&[
            ("BlockDeviceMapping.1.DeviceName", "/dev/sdf"),
            ("BlockDeviceMapping.1.Ebs.VolumeSize", "1"),
            ("BlockDeviceMapping.2.DeviceName", "/dev/xvdf"),
            ("BlockDeviceMapping.2.Ebs.VolumeSize", "1"),
        ]),
    )
    .await
    .err("InvalidBlockDeviceMapping");
}

#[tokio::test]
async fn volumes_attach_and_detach_live_and_move_between_instances() {
    let ctx = TestContext::new().await;
    let ids = ctx.run(2, &[("Placement.AvailabilityZone", "local-1a")]).await;
    for id in &ids {
        ctx.wait_state(id, "running").await;
    }
    let r = ctx.call("CreateVolume", &[("Size", "2"), ("AvailabilityZone", "local-1a"), ("VolumeType", "gp3")]).await;
    let vol = r.ok().text("volumeId").unwrap();
    assert_eq!(r.text("status").as_deref(), Some("available"));
    assert_eq!(r.text("iops").as_deref(), Some("3000"));
    assert_eq!(r.text("throughput").as_deref(), Some("125"));
    assert_eq!(zone_of(&r), "local-1a");

    let r = ctx.call("AttachVolume", &[("VolumeId", &vol), ("InstanceId", &ids[0]), ("Device", "/dev/sdf")]).await;
    assert_eq!(r.ok().text("status").as_deref(), Some("attached"));
    let disks = ctx.agent.vm(&ids[0]).unwrap().disks;
    assert!(disks.iter().any(|d| d.volume_id == vol && d.bus == DiskBus::Scsi { target: 5 }), "hot-plugged: {disks:?}");
    let r = ctx.call("DescribeInstances", &[("InstanceId.1", &ids[0])]).await;
    assert!(r.ok().texts("volumeId").contains(&vol));
    assert!(r.texts("deviceName").contains(&"/dev/sdf".to_string()));

    ctx.call("AttachVolume", &[("VolumeId", &vol), ("InstanceId", &ids[1]), ("Device", "/dev/sdf")]).await.err("VolumeInUse");
    ctx.call("DeleteVolume", &[("VolumeId", &vol)]).await.err("VolumeInUse");
    let other = ctx.volume("1", "local-1a").await;
    ctx.call("AttachVolume", &[("VolumeId", &other), ("InstanceId", &ids[0]), ("Device", "/dev/xvdf")]).await.err("InvalidParameterValue");
    ctx.call("AttachVolume", &[("VolumeId", &other), ("InstanceId", &ids[0]), ("Device", "/dev/xvda")]).await.err("InvalidParameterValue");
    let far = ctx.volume("1", "local-1b").await;
    ctx.call("AttachVolume", &[("VolumeId", &far), ("InstanceId", &ids[0]), ("Device", "/dev/sdg")])
        .await
        .err("InvalidVolume.ZoneMismatch");

    ctx.call("DetachVolume", &[("VolumeId", &vol), ("InstanceId", &ids[1])]).await.err("InvalidAttachment.NotFound");
    let r = ctx.call("DetachVolume", &[("VolumeId", &vol)]).await;
    assert_eq!(r.ok().text("status").as_deref(), Some("detached"));
    assert!(!ctx.agent.vm(&ids[0]).unwrap().disks.iter().any(|d| d.volume_id == vol), "hot-unplugged");
    ctx.call("DetachVolume", &[("VolumeId", &vol)]).await.err("IncorrectState");

    ctx.call("AttachVolume", &[("VolumeId", &vol), ("InstanceId", &ids[1]), ("Device", "/dev/sdh")]).await.ok();
    let disks = ctx.agent.vm(&ids[1]).unwrap().disks;
    assert!(disks.iter().any(|d| d.volume_id == vol && d.bus == DiskBus::Scsi { target: 7 }));

    // A stopped instance takes the volume without the agent; it is there at the next start.
    ctx.call("StopInstances", &[("InstanceId.1", &ids[0])]).await.ok();
    ctx.wait_state(&ids[0], "stopped").await;
    ctx.call("AttachVolume", &[("VolumeId", &other), ("InstanceId", &ids[0]), ("Device", "/dev/sdb")]).await.ok();
    ctx.call("StartInstances", &[("InstanceId.1", &ids[0])]).await.ok();
    ctx.wait_state(&ids[0], "running").await;
    let disks = ctx.agent.vm(&ids[0]).unwrap().spec.disks;
    assert!(disks.iter().any(|d| d.volume_id == other && d.bus == DiskBus::Scsi { target: 1 }), "{disks:?}");
}

#[tokio::test]
async fn a_failed_hot_plug_leaves_the_volume_available() {
    let ctx = TestContext::new().await;
    let id = ctx.run(1, &[("Placement.AvailabilityZone", "local-1a")]).await.remove(0);
    ctx.wait_state(&id, "running").await;
    let vol = ctx.volume("1", "local-1a").await;
    ctx.agent.fail_next(SimOp::DiskAttach, "QMP: device_add failed");
    ctx.call("AttachVolume", &[("VolumeId", &vol), ("InstanceId", &id), ("Device", "/dev/sdf")]).await.err("InternalError");
    let r = ctx.call("DescribeVolumes", &[("VolumeId.1", &vol)]).await;
    assert_eq!(r.ok().text("status").as_deref(), Some("available"));
    assert!(!ctx.agent.vm(&id).unwrap().disks.iter().any(|d| d.volume_id == vol));
    // And it works the next time.
    ctx.call("AttachVolume", &[("VolumeId", &vol), ("InstanceId", &id), ("Device", "/dev/sdf")]).await.ok();

    ctx.agent.fail_next(SimOp::DiskDetach, "QMP: device_del timed out");
    ctx.call("DetachVolume", &[("VolumeId", &vol)]).await.err("InternalError");
    let r = ctx.call("DescribeVolumes", &[("VolumeId.1", &vol)]).await;
    assert_eq!(r.ok().texts("status"), vec!["attached", "in-use"], "still attached after a failed detach");
}

#[tokio::test]
async fn create_volume_errors() {
    let ctx = TestContext::new().await;
    ctx.call("CreateVolume", &[("Size", "1")]).await.err("MissingParameter");
    ctx.call("CreateVolume", &[("AvailabilityZone", "local-1a")]).await.err("MissingParameter");
    ctx.call("CreateVolume", &[("Size", "1"), ("AvailabilityZone", "elsewhere-1a")]).await.err("InvalidZone.NotFound");
    ctx.call("CreateVolume", &[("Size", "0"), ("AvailabilityZone", "local-1a")]).await.err("InvalidParameterValue");
    ctx.call("CreateVolume", &[("Size", "20000"), ("AvailabilityZone", "local-1a")]).await.err("InvalidParameterValue");
    ctx.call("CreateVolume", &[("Size", "10"), ("AvailabilityZone", "local-1a"), ("VolumeType", "io1")])
        .await
        .err("InvalidParameterCombination");
    ctx.call("CreateVolume", &[("Size", "10"), ("AvailabilityZone", "local-1a"), ("VolumeType", "fast")]).await.err("UnknownVolumeType");
    ctx.call("CreateVolume", &[("Size", "10"), ("AvailabilityZone", "local-1a"), ("DryRun", "true")]).await.err("DryRunOperation");
    ctx.call("CreateVolume", &[("SnapshotId", "snap-0123456789abcdef0"), ("AvailabilityZone", "local-1a")])
        .await
        .err("InvalidSnapshot.NotFound");
    ctx.call("DescribeVolumes", &[("VolumeId.1", "vol-xyz")]).await.err("InvalidVolumeID.Malformed");
    ctx.call("DescribeVolumes", &[("VolumeId.1", "vol-0123456789abcdef0")]).await.err("InvalidVolume.NotFound");
    ctx.call("DescribeVolumes", &[("Filter.1.Name", "colour"), ("Filter.1.Value.1", "red")]).await.err("InvalidParameterValue");
    assert!(ctx.agent.layers().len() <= 2, "no layer from failed requests");

    // A host failure while making the disk leaves nothing behind.
    let before = ctx.agent.layers().len();
    ctx.agent.fail_next(SimOp::LayerCreate, "No space left on device");
    ctx.call("CreateVolume", &[("Size", "1"), ("AvailabilityZone", "local-1a")]).await.err("InsufficientVolumeCapacity");
    let r = ctx.call("DescribeVolumes", &[]).await;
    assert!(r.ok().texts("volumeId").is_empty(), "{}", r.body);
    assert_eq!(ctx.agent.layers().len(), before);
}
