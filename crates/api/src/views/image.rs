//! DescribeImages.

use corral_control::image::Image;
use serde_json::{json, Value};

pub fn describe(images: &[Image], next: Option<String>) -> Value {
    let items: Vec<Value> = images
        .iter()
        .map(|i| {
            let r = &i.rec;
            let size_gib = r.size_bytes.div_ceil(1 << 30).max(1);
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
                "BlockDeviceMappings": [{
                    "DeviceName": r.root_device_name,
                    "Ebs": {
                        "DeleteOnTermination": true,
                        "SnapshotId": "",
                        "VolumeSize": size_gib,
                        "VolumeType": "gp3",
                        "Encrypted": false,
                    }
                }],
                "VirtualizationType": "hvm",
                "Hypervisor": "xen",
                "EnaSupport": true,
                "SriovNetSupport": "simple",
                "BootMode": "legacy-bios",
                "Tags": super::tags(&i.tags),
            })
        })
        .collect();
    super::with_next(json!({ "Images": items }), next)
}
