//! Volumes, attachments, volume modifications and snapshots.

use corral_control::snapshot::Snapshot;
use corral_control::volume::{Volume, VolumeStatus};
use corral_ec2_query::write::Obj;
use corral_store::{SnapshotRecord, VolumeModification, VolumeRecord};
use serde_json::{json, Value};

pub fn volume(v: &Volume) -> Value {
    let r = &v.rec;
    let mut out = json!({
        "VolumeId": r.volume_id,
        "Size": r.size_gib,
        "AvailabilityZone": r.availability_zone,
        "State": r.state,
        "CreateTime": r.created_at,
        "VolumeType": r.volume_type,
        "Encrypted": false,
        "MultiAttachEnabled": false,
        "SnapshotId": r.snapshot_id.clone().unwrap_or_default(),
        "Attachments": r.attachment.iter().map(|_| attachment(r)).collect::<Vec<_>>(),
        "Tags": super::tags(&v.tags),
    });
    if let Some(i) = r.iops {
        out["Iops"] = json!(i);
    }
    if let Some(t) = r.throughput {
        out["Throughput"] = json!(t);
    }
    out
}

/// The attachment of a volume (AttachVolume's and DetachVolume's response, and each entry of
/// a volume's `Attachments`).
pub fn attachment(r: &VolumeRecord) -> Value {
    match &r.attachment {
        Some(a) => json!({
            "VolumeId": r.volume_id,
            "InstanceId": a.instance_id,
            "Device": a.device,
            "State": a.state,
            "AttachTime": a.attach_time,
            "DeleteOnTermination": a.delete_on_termination,
        }),
        None => json!({ "VolumeId": r.volume_id, "State": "detached" }),
    }
}

pub fn volumes(items: &[Volume], next: Option<String>) -> Value {
    super::with_next(json!({ "Volumes": items.iter().map(volume).collect::<Vec<_>>() }), next)
}

pub fn modification(volume_id: &str, m: &VolumeModification) -> Value {
    let mut out = json!({
        "VolumeId": volume_id,
        "ModificationState": m.state,
        "TargetSize": m.target_size_gib,
        "OriginalSize": m.original_size_gib,
        "TargetVolumeType": m.target_volume_type,
        "OriginalVolumeType": m.original_volume_type,
        "TargetMultiAttachEnabled": false,
        "OriginalMultiAttachEnabled": false,
        "Progress": if m.state == "completed" { 100 } else { 0 },
        "StartTime": m.start_time,
    });
    let opt = |v: Option<i64>| v.map(|x| json!(x));
    for (k, v) in [
        ("TargetIops", opt(m.target_iops)),
        ("OriginalIops", opt(m.original_iops)),
        ("TargetThroughput", opt(m.target_throughput)),
        ("OriginalThroughput", opt(m.original_throughput)),
        ("EndTime", m.end_time.as_ref().map(|t| json!(t))),
        ("StatusMessage", m.status_message.as_ref().map(|t| json!(t))),
    ] {
        if let Some(v) = v {
            out[k] = v;
        }
    }
    out
}

pub fn modifications(items: &[VolumeRecord], next: Option<String>) -> Value {
    let list: Vec<Value> = items.iter().filter_map(|v| v.modification.as_ref().map(|m| modification(&v.volume_id, m))).collect();
    super::with_next(json!({ "VolumesModifications": list }), next)
}

pub fn snapshot(s: &Snapshot) -> Value {
    let r: &SnapshotRecord = &s.rec;
    let mut out = json!({
        "SnapshotId": r.snapshot_id,
        "VolumeId": r.volume_id,
        "VolumeSize": r.volume_size_gib,
        "State": r.state,
        "StartTime": r.started_at,
        "Progress": corral_control::snapshot::progress(r),
        "OwnerId": r.owner_id,
        "Description": r.description,
        "Encrypted": false,
        "StorageTier": "standard",
        "Tags": super::tags(&s.tags),
    });
    if let Some(m) = &r.state_message {
        out["StateMessage"] = json!(m);
    }
    if let Some(t) = &r.completed_at {
        out["CompletionTime"] = json!(t);
    }
    out
}

pub fn snapshots(items: &[Snapshot], next: Option<String>) -> Value {
    super::with_next(json!({ "Snapshots": items.iter().map(snapshot).collect::<Vec<_>>() }), next)
}

/// A snapshot's storage tier: every snapshot stays in the standard tier (none is archived).
pub fn snapshot_tier_status(s: &Snapshot) -> Value {
    json!({
        "SnapshotId": s.rec.snapshot_id,
        "VolumeId": s.rec.volume_id,
        "Status": s.rec.state,
        "OwnerId": s.rec.owner_id,
        "Tags": super::tags(&s.tags),
        "StorageTier": "standard",
    })
}

pub fn snapshot_tier_statuses(items: &[Snapshot], next: Option<String>) -> Value {
    super::with_next(json!({ "SnapshotTierStatuses": items.iter().map(snapshot_tier_status).collect::<Vec<_>>() }), next)
}

/// An instance's `BlockDeviceMappings`.
pub fn instance_mappings(o: &mut Obj<'_>, volumes: &[VolumeRecord]) {
    o.list("BlockDeviceMappings", volumes.iter().filter_map(|v| Some((v, v.attachment.as_ref()?))), |m, (v, a)| {
        m.str("DeviceName", &a.device).obj("Ebs", |e| {
            e.str("VolumeId", &v.volume_id)
                .str("Status", &a.state)
                .str("AttachTime", &a.attach_time)
                .bool("DeleteOnTermination", a.delete_on_termination);
        });
    });
}

pub fn volume_statuses(items: &[VolumeStatus], next: Option<String>) -> Value {
    let list: Vec<Value> = items
        .iter()
        .map(|s| {
            json!({
                "VolumeId": s.volume_id,
                "AvailabilityZone": s.availability_zone,
                "VolumeStatus": {
                    "Status": s.status,
                    "Details": [
                        { "Name": "io-enabled", "Status": s.io_enabled },
                        { "Name": "io-performance", "Status": "not-applicable" },
                    ],
                },
                "Actions": [],
                "Events": [],
            })
        })
        .collect();
    super::with_next(json!({ "VolumeStatuses": list }), next)
}

pub fn volume_attribute(v: &VolumeRecord, attribute: &str) -> Value {
    match attribute {
        "autoEnableIO" => json!({ "VolumeId": v.volume_id, "AutoEnableIO": { "Value": v.auto_enable_io } }),
        _ => json!({ "VolumeId": v.volume_id, "ProductCodes": [] }),
    }
}

pub fn snapshot_attribute(s: &SnapshotRecord, attribute: &str) -> Value {
    match attribute {
        "createVolumePermission" => {
            let mut perms: Vec<Value> = s.volume_users.iter().map(|u| json!({ "UserId": u })).collect();
            if s.public {
                perms.insert(0, json!({ "Group": "all" }));
            }
            json!({ "SnapshotId": s.snapshot_id, "CreateVolumePermissions": perms })
        }
        _ => json!({ "SnapshotId": s.snapshot_id, "ProductCodes": [] }),
    }
}
