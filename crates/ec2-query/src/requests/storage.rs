//! Request types of the volume, snapshot, image and placement group actions; shared types are in `requests.rs`.

use super::*;
use serde::Deserialize;

request!(CreateVolume {
    availability_zone: Option<String>,
    availability_zone_id: Option<String>,
    size: Option<i64>,
    snapshot_id: Option<String>,
    volume_type: Option<String>,
    iops: Option<i64>,
    throughput: Option<i64>,
    encrypted: Option<bool>,
    multi_attach_enabled: Option<bool>,
    tag_specifications: Vec<TagSpecification>,
    client_token: Option<String>,
});
request!(DescribeVolumes { volume_ids: Vec<String>, filters: Vec<Filter>, max_results: Option<i64>, next_token: Option<String> });
request!(DeleteVolume { volume_id: Option<String> });
request!(AttachVolume { volume_id: Option<String>, instance_id: Option<String>, device: Option<String> });
request!(DetachVolume { volume_id: Option<String>, instance_id: Option<String>, device: Option<String>, force: Option<bool> });
request!(ModifyVolume { volume_id: Option<String>, size: Option<i64>, volume_type: Option<String>, iops: Option<i64>, throughput: Option<i64> });
request!(DescribeVolumesModifications { volume_ids: Vec<String>, filters: Vec<Filter>, max_results: Option<i64>, next_token: Option<String> });
request!(CreateSnapshot { volume_id: Option<String>, description: Option<String>, tag_specifications: Vec<TagSpecification> });
request!(DescribeSnapshots {
    snapshot_ids: Vec<String>,
    owner_ids: Vec<String>,
    restorable_by_user_ids: Vec<String>,
    filters: Vec<Filter>,
    max_results: Option<i64>,
    next_token: Option<String>,
});
request!(DeleteSnapshot { snapshot_id: Option<String> });
request!(CopySnapshot {
    source_snapshot_id: Option<String>,
    source_region: Option<String>,
    description: Option<String>,
    destination_region: Option<String>,
    // botocore fills this in (a URL presigned for the source region); the caller is already
    // authenticated here, so it is read and not needed.
    presigned_url: Option<String>,
    encrypted: Option<bool>,
    tag_specifications: Vec<TagSpecification>,
});
request!(CreateImage {
    instance_id: Option<String>,
    name: Option<String>,
    description: Option<String>,
    no_reboot: Option<bool>,
    block_device_mappings: Vec<BlockDeviceMapping>,
    tag_specifications: Vec<TagSpecification>,
});
request!(RegisterImage {
    name: Option<String>,
    description: Option<String>,
    architecture: Option<String>,
    root_device_name: Option<String>,
    block_device_mappings: Vec<BlockDeviceMapping>,
    virtualization_type: Option<String>,
    image_location: Option<String>,
    kernel_id: Option<String>,
    ramdisk_id: Option<String>,
    boot_mode: Option<String>,
    ena_support: Option<bool>,
    sriov_net_support: Option<String>,
    imds_support: Option<String>,
    tag_specifications: Vec<TagSpecification>,
});
request!(DeregisterImage { image_id: Option<String>, delete_associated_snapshots: Option<bool> });
request!(CopyImage {
    source_image_id: Option<String>,
    source_region: Option<String>,
    name: Option<String>,
    description: Option<String>,
    encrypted: Option<bool>,
    copy_image_tags: Option<bool>,
    tag_specifications: Vec<TagSpecification>,
    client_token: Option<String>,
});
request!(CreatePlacementGroup {
    group_name: Option<String>,
    strategy: Option<String>,
    partition_count: Option<i64>,
    spread_level: Option<String>,
    tag_specifications: Vec<TagSpecification>,
});
request!(DeletePlacementGroup { group_name: Option<String> });
request!(DescribePlacementGroups { group_names: Vec<String>, group_ids: Vec<String>, filters: Vec<Filter> });
request!(DescribeSnapshotTierStatus { filters: Vec<Filter>, max_results: Option<i64>, next_token: Option<String> });
request!(DescribeVolumeStatus { volume_ids: Vec<String>, filters: Vec<Filter>, max_results: Option<i64>, next_token: Option<String> });
request!(DescribeVolumeAttribute { volume_id: Option<String>, attribute: Option<String> });
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ModifyVolumeAttribute {
    pub dry_run: bool,
    pub volume_id: Option<String>,
    #[serde(rename = "AutoEnableIO")]
    pub auto_enable_io: Option<AttributeValue<bool>>,
}
request!(DescribeSnapshotAttribute { snapshot_id: Option<String>, attribute: Option<String> });
request!(ResetSnapshotAttribute { snapshot_id: Option<String>, attribute: Option<String> });
request!(ResetImageAttribute { image_id: Option<String>, attribute: Option<String> });

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateVolumePermissionModifications {
    pub add: Vec<LaunchPermission>,
    pub remove: Vec<LaunchPermission>,
}

request!(ModifySnapshotAttribute {
    snapshot_id: Option<String>,
    attribute: Option<String>,
    operation_type: Option<String>,
    user_ids: Vec<String>,
    group_names: Vec<String>,
    create_volume_permission: Option<CreateVolumePermissionModifications>,
});
request!(DescribeImageAttribute { image_id: Option<String>, attribute: Option<String> });

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct LaunchPermission {
    pub group: Option<String>,
    pub user_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct LaunchPermissionModifications {
    pub add: Vec<LaunchPermission>,
    pub remove: Vec<LaunchPermission>,
}

request!(ModifyImageAttribute {
    image_id: Option<String>,
    attribute: Option<String>,
    description: Option<AttributeValue<String>>,
    launch_permission: Option<LaunchPermissionModifications>,
    operation_type: Option<String>,
    user_ids: Vec<String>,
    user_groups: Vec<String>,
    value: Option<String>,
});
request!(EnableImageDeprecation { image_id: Option<String>, deprecate_at: Option<String> });
request!(DisableImageDeprecation { image_id: Option<String> });
