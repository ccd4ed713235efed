//! DescribeImages and image attributes.

use corral_control::image::Image;
use corral_store::ImageRecord;
use serde_json::{json, Value};

/// An image's `BlockDeviceMappings`.
pub fn mappings(r: &ImageRecord) -> Value {
    Value::Array(
        r.block_devices
            .iter()
            .map(|b| {
                let mut ebs = json!({
                    "DeleteOnTermination": b.delete_on_termination,
                    "VolumeSize": b.volume_size_gib,
                    "VolumeType": b.volume_type,
                    "Encrypted": false,
                });
                if let Some(s) = &b.snapshot_id {
                    ebs["SnapshotId"] = json!(s);
                }
                json!({ "DeviceName": b.device_name, "Ebs": ebs })
            })
            .collect(),
    )
}

/// DescribeImageAttribute's response for `attribute`.
pub fn attribute(r: &ImageRecord, attribute: &str) -> Value {
    let mut out = json!({ "ImageId": r.image_id });
    match attribute {
        "description" => out["Description"] = json!({ "Value": r.description }),
        "launchPermission" => {
            let mut perms: Vec<Value> = r.launch_users.iter().map(|u| json!({ "UserId": u })).collect();
            if r.is_public {
                perms.insert(0, json!({ "Group": "all" }));
            }
            out["LaunchPermissions"] = Value::Array(perms);
        }
        "blockDeviceMapping" => out["BlockDeviceMappings"] = mappings(r),
        "kernel" => out["KernelId"] = json!({}),
        "ramdisk" => out["RamdiskId"] = json!({}),
        "productCodes" => out["ProductCodes"] = json!([]),
        "sriovNetSupport" => out["SriovNetSupport"] = json!({ "Value": "simple" }),
        "bootMode" => out["BootMode"] = json!({ "Value": "legacy-bios" }),
        "imdsSupport" => out["ImdsSupport"] = json!({}),
        "lastLaunchedTime" => out["LastLaunchedTime"] = json!({}),
        "deregistrationProtection" => out["DeregistrationProtection"] = json!({ "Value": "disabled" }),
        _ => {}
    }
    out
}

pub fn describe(images: &[Image], next: Option<String>) -> Value {
    let items: Vec<Value> = images.iter().map(|i| image(&i.rec, &i.tags)).collect();
    super::with_next(json!({ "Images": items }), next)
}

/// One image as DescribeImages shows it.
pub fn image(r: &ImageRecord, tags: &[corral_store::TagRecord]) -> Value {
    json!({
        "ImageId": r.image_id,
        "ImageLocation": format!("{}/{}", r.owner_id, r.name),
        "State": r.state,
        "OwnerId": r.owner_id,
        "CreationDate": r.created_at,
        "Public": r.is_public,
        "ProductCodes": [],
        "Architecture": "x86_64",
        "ImageType": "machine",
        "PlatformDetails": "Linux/UNIX",
        "UsageOperation": "RunInstances",
        "Name": r.name,
        "Description": r.description,
        "RootDeviceType": "ebs",
        "RootDeviceName": r.root_device_name,
        "BlockDeviceMappings": mappings(r),
        "VirtualizationType": "hvm",
        "Hypervisor": "xen",
        "EnaSupport": true,
        "SriovNetSupport": "simple",
        "BootMode": "legacy-bios",
        "Tags": super::tags(tags),
        "DeprecationTime": r.deprecation_time,
    })
}
