//! Typed requests: one struct per action, with botocore's member names, deserialised from
//! what [`crate::decode`] produced. Members an action has in the model but Corral does not
//! implement yet are not listed; decoding accepted them, these structs ignore them.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Filter {
    pub name: String,
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct TagSpecification {
    pub resource_type: Option<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeValue<T> {
    pub value: Option<T>,
}

/// Fields every Describe call with pagination shares.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Page {
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

macro_rules! request {
    // The few actions whose model has no DryRun member.
    (no_dry_run $name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        #[derive(Debug, Clone, Default, Deserialize, PartialEq)]
        #[serde(rename_all = "PascalCase", default)]
        pub struct $name {
            $(pub $field: $ty,)*
        }
    };
    ($name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        #[derive(Debug, Clone, Default, Deserialize, PartialEq)]
        #[serde(rename_all = "PascalCase", default)]
        pub struct $name {
            pub dry_run: bool,
            $(pub $field: $ty,)*
        }
    };
}

request!(DescribeRegions { region_names: Vec<String>, filters: Vec<Filter>, all_regions: bool });
request!(DescribeAvailabilityZones { zone_names: Vec<String>, zone_ids: Vec<String>, filters: Vec<Filter>, all_availability_zones: bool });
request!(DescribeAccountAttributes { attribute_names: Vec<String> });
request!(DescribeInstanceTypes { instance_types: Vec<String>, filters: Vec<Filter>, max_results: Option<i64>, next_token: Option<String> });
request!(DescribeImages {
    image_ids: Vec<String>,
    owners: Vec<String>,
    executable_users: Vec<String>,
    filters: Vec<Filter>,
    max_results: Option<i64>,
    next_token: Option<String>,
});
request!(CreateKeyPair { key_name: Option<String>, key_type: Option<String>, key_format: Option<String>, tag_specifications: Vec<TagSpecification> });
request!(ImportKeyPair { key_name: Option<String>, public_key_material: Option<String>, tag_specifications: Vec<TagSpecification> });
request!(DescribeKeyPairs { key_names: Vec<String>, key_pair_ids: Vec<String>, filters: Vec<Filter>, include_public_key: bool });
request!(DeleteKeyPair { key_name: Option<String>, key_pair_id: Option<String> });

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Placement {
    pub availability_zone: Option<String>,
    pub tenancy: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct InstanceNetworkInterfaceSpecification {
    pub device_index: Option<i64>,
    pub subnet_id: Option<String>,
    pub groups: Vec<String>,
    pub private_ip_address: Option<String>,
    pub associate_public_ip_address: Option<bool>,
    pub delete_on_termination: Option<bool>,
    pub description: Option<String>,
    pub network_interface_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct EbsBlockDevice {
    pub delete_on_termination: Option<bool>,
    pub iops: Option<i64>,
    pub snapshot_id: Option<String>,
    pub volume_size: Option<i64>,
    pub volume_type: Option<String>,
    pub throughput: Option<i64>,
    pub encrypted: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct BlockDeviceMapping {
    pub device_name: Option<String>,
    pub virtual_name: Option<String>,
    pub ebs: Option<EbsBlockDevice>,
    pub no_device: Option<String>,
}

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

request!(RunInstances {
    metadata_options: Option<MetadataOptionsRequest>,
    subnet_id: Option<String>,
    security_group_ids: Vec<String>,
    security_groups: Vec<String>,
    private_ip_address: Option<String>,
    network_interfaces: Vec<InstanceNetworkInterfaceSpecification>,
    image_id: Option<String>,
    instance_type: Option<String>,
    min_count: Option<i64>,
    max_count: Option<i64>,
    key_name: Option<String>,
    user_data: Option<String>,
    client_token: Option<String>,
    tag_specifications: Vec<TagSpecification>,
    placement: Option<Placement>,
    instance_initiated_shutdown_behavior: Option<String>,
    disable_api_termination: Option<bool>,
    block_device_mappings: Vec<BlockDeviceMapping>,
    disable_api_stop: Option<bool>,
    ebs_optimized: Option<bool>,
    credit_specification: Option<CreditSpecificationRequest>,
    monitoring: Option<RunInstancesMonitoringEnabled>,
});

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreditSpecificationRequest {
    pub cpu_credits: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct RunInstancesMonitoringEnabled {
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct InstanceCreditSpecificationRequest {
    pub instance_id: Option<String>,
    pub cpu_credits: Option<String>,
}

request!(DescribeInstanceCreditSpecifications {
    instance_ids: Vec<String>,
    filters: Vec<Filter>,
    max_results: Option<i64>,
    next_token: Option<String>,
});
request!(ModifyInstanceCreditSpecification {
    client_token: Option<String>,
    instance_credit_specifications: Vec<InstanceCreditSpecificationRequest>,
});
request!(MonitorInstances { instance_ids: Vec<String> });
request!(EnableImageDeprecation { image_id: Option<String>, deprecate_at: Option<String> });
request!(DisableImageDeprecation { image_id: Option<String> });
request!(GetInstanceUefiData { instance_id: Option<String> });
request!(DescribeInstanceTypeOfferings {
    location_type: Option<String>,
    filters: Vec<Filter>,
    max_results: Option<i64>,
    next_token: Option<String>,
});
request!(DescribeNetworkAcls { network_acl_ids: Vec<String>, filters: Vec<Filter>, max_results: Option<i64>, next_token: Option<String> });
request!(UnmonitorInstances { instance_ids: Vec<String> });
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpRange {
    pub cidr_ip: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct UserIdGroupPair {
    pub group_id: Option<String>,
    pub group_name: Option<String>,
    pub user_id: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpPermission {
    pub ip_protocol: Option<String>,
    pub from_port: Option<i64>,
    pub to_port: Option<i64>,
    pub ip_ranges: Vec<IpRange>,
    pub user_id_group_pairs: Vec<UserIdGroupPair>,
    pub ipv6_ranges: Vec<serde_json::Value>,
    pub prefix_list_ids: Vec<serde_json::Value>,
}

request!(CreateVpc { cidr_block: Option<String>, instance_tenancy: Option<String>, tag_specifications: Vec<TagSpecification> });
request!(DescribeVpcs { vpc_ids: Vec<String>, filters: Vec<Filter>, max_results: Option<i64>, next_token: Option<String> });
request!(DeleteVpc { vpc_id: Option<String> });
request!(no_dry_run ModifyVpcAttribute {
    vpc_id: Option<String>,
    enable_dns_support: Option<AttributeValue<bool>>,
    enable_dns_hostnames: Option<AttributeValue<bool>>,
    enable_network_address_usage_metrics: Option<AttributeValue<bool>>,
});
request!(DescribeVpcAttribute { vpc_id: Option<String>, attribute: Option<String> });
request!(CreateSubnet {
    vpc_id: Option<String>,
    cidr_block: Option<String>,
    availability_zone: Option<String>,
    tag_specifications: Vec<TagSpecification>,
});
request!(DescribeSubnets { subnet_ids: Vec<String>, filters: Vec<Filter>, max_results: Option<i64>, next_token: Option<String> });
request!(DeleteSubnet { subnet_id: Option<String> });
request!(no_dry_run ModifySubnetAttribute {
    subnet_id: Option<String>,
    map_public_ip_on_launch: Option<AttributeValue<bool>>,
    assign_ipv6_address_on_creation: Option<AttributeValue<bool>>,
    map_customer_owned_ip_on_launch: Option<AttributeValue<bool>>,
    enable_dns64: Option<AttributeValue<bool>>,
    private_dns_hostname_type_on_launch: Option<String>,
    enable_resource_name_dns_a_record_on_launch: Option<AttributeValue<bool>>,
    // PascalCase of this name is the model's EnableResourceNameDnsAAAARecordOnLaunch.
    enable_resource_name_dns_a_a_a_a_record_on_launch: Option<AttributeValue<bool>>,
});
request!(CreateSecurityGroup {
    group_name: Option<String>,
    description: Option<String>,
    vpc_id: Option<String>,
    tag_specifications: Vec<TagSpecification>,
});
request!(DescribeSecurityGroups {
    group_ids: Vec<String>,
    group_names: Vec<String>,
    filters: Vec<Filter>,
    max_results: Option<i64>,
    next_token: Option<String>,
});
request!(DeleteSecurityGroup { group_id: Option<String>, group_name: Option<String> });

/// Authorize and Revoke, ingress and egress, share one shape.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct SecurityGroupRulesChange {
    pub dry_run: bool,
    pub group_id: Option<String>,
    pub group_name: Option<String>,
    pub ip_permissions: Vec<IpPermission>,
    pub ip_protocol: Option<String>,
    pub from_port: Option<i64>,
    pub to_port: Option<i64>,
    pub cidr_ip: Option<String>,
    pub source_security_group_name: Option<String>,
    pub security_group_rule_ids: Vec<String>,
    pub tag_specifications: Vec<TagSpecification>,
}

/// The four rule-change actions, each with exactly the members its model has, all read as a
/// [`SecurityGroupRulesChange`].
macro_rules! rules_change {
    ($($name:ident { $($field:ident : $ty:ty),* $(,)? })*) => {
        $(
            request!($name { $($field: $ty),* });
            impl From<$name> for SecurityGroupRulesChange {
                fn from(r: $name) -> Self {
                    SecurityGroupRulesChange { dry_run: r.dry_run, $($field: r.$field,)* ..Default::default() }
                }
            }
        )*
    };
}

rules_change! {
    AuthorizeSecurityGroupIngress {
        group_id: Option<String>, group_name: Option<String>, ip_permissions: Vec<IpPermission>, ip_protocol: Option<String>,
        from_port: Option<i64>, to_port: Option<i64>, cidr_ip: Option<String>, source_security_group_name: Option<String>,
        tag_specifications: Vec<TagSpecification>,
    }
    AuthorizeSecurityGroupEgress {
        group_id: Option<String>, ip_permissions: Vec<IpPermission>, ip_protocol: Option<String>, from_port: Option<i64>,
        to_port: Option<i64>, cidr_ip: Option<String>, source_security_group_name: Option<String>,
        tag_specifications: Vec<TagSpecification>,
    }
    RevokeSecurityGroupIngress {
        group_id: Option<String>, group_name: Option<String>, ip_permissions: Vec<IpPermission>, ip_protocol: Option<String>,
        from_port: Option<i64>, to_port: Option<i64>, cidr_ip: Option<String>, source_security_group_name: Option<String>,
        security_group_rule_ids: Vec<String>,
    }
    RevokeSecurityGroupEgress {
        group_id: Option<String>, ip_permissions: Vec<IpPermission>, ip_protocol: Option<String>, from_port: Option<i64>,
        to_port: Option<i64>, cidr_ip: Option<String>, source_security_group_name: Option<String>,
        security_group_rule_ids: Vec<String>,
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct SecurityGroupRuleDescription {
    pub security_group_rule_id: Option<String>,
    pub description: Option<String>,
}

request!(UpdateSecurityGroupRuleDescriptions {
    group_id: Option<String>,
    group_name: Option<String>,
    ip_permissions: Vec<IpPermission>,
    security_group_rule_descriptions: Vec<SecurityGroupRuleDescription>,
});
pub type UpdateSecurityGroupRuleDescriptionsIngress = UpdateSecurityGroupRuleDescriptions;
pub type UpdateSecurityGroupRuleDescriptionsEgress = UpdateSecurityGroupRuleDescriptions;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct SecurityGroupRuleRequest {
    pub ip_protocol: Option<String>,
    pub from_port: Option<i64>,
    pub to_port: Option<i64>,
    pub cidr_ipv4: Option<String>,
    pub cidr_ipv6: Option<String>,
    pub prefix_list_id: Option<String>,
    pub referenced_group_id: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct SecurityGroupRuleUpdate {
    pub security_group_rule_id: Option<String>,
    pub security_group_rule: Option<SecurityGroupRuleRequest>,
}

request!(ModifySecurityGroupRules { group_id: Option<String>, security_group_rules: Vec<SecurityGroupRuleUpdate> });

request!(DescribeSecurityGroupRules {
    security_group_rule_ids: Vec<String>,
    filters: Vec<Filter>,
    max_results: Option<i64>,
    next_token: Option<String>,
});
request!(DescribeNetworkInterfaces {
    network_interface_ids: Vec<String>,
    filters: Vec<Filter>,
    max_results: Option<i64>,
    next_token: Option<String>,
});

request!(CreateInternetGateway { tag_specifications: Vec<TagSpecification> });
request!(AttachInternetGateway { internet_gateway_id: Option<String>, vpc_id: Option<String> });
request!(DetachInternetGateway { internet_gateway_id: Option<String>, vpc_id: Option<String> });
request!(DeleteInternetGateway { internet_gateway_id: Option<String> });
request!(DescribeInternetGateways {
    internet_gateway_ids: Vec<String>,
    filters: Vec<Filter>,
    max_results: Option<i64>,
    next_token: Option<String>,
});
request!(CreateRouteTable { vpc_id: Option<String>, tag_specifications: Vec<TagSpecification>, client_token: Option<String> });
request!(DeleteRouteTable { route_table_id: Option<String> });
request!(CreateRoute {
    route_table_id: Option<String>,
    destination_cidr_block: Option<String>,
    gateway_id: Option<String>,
    network_interface_id: Option<String>,
    instance_id: Option<String>,
});
request!(DeleteRoute { route_table_id: Option<String>, destination_cidr_block: Option<String> });
request!(AssociateRouteTable { route_table_id: Option<String>, subnet_id: Option<String> });
request!(DisassociateRouteTable { association_id: Option<String> });
/// ReplaceRoute takes what CreateRoute takes (both models have these members).
pub type ReplaceRoute = CreateRoute;
request!(ReplaceRouteTableAssociation { association_id: Option<String>, route_table_id: Option<String> });
request!(DescribeRouteTables { route_table_ids: Vec<String>, filters: Vec<Filter>, max_results: Option<i64>, next_token: Option<String> });
request!(AllocateAddress { domain: Option<String>, address: Option<String>, tag_specifications: Vec<TagSpecification> });
request!(AssociateAddress {
    allocation_id: Option<String>,
    public_ip: Option<String>,
    instance_id: Option<String>,
    network_interface_id: Option<String>,
    private_ip_address: Option<String>,
    allow_reassociation: Option<bool>,
});
request!(DisassociateAddress { association_id: Option<String>, public_ip: Option<String> });
request!(ReleaseAddress { allocation_id: Option<String>, public_ip: Option<String>, network_border_group: Option<String> });
request!(DescribeAddressesAttribute {
    allocation_ids: Vec<String>,
    attribute: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
});
request!(ModifyAddressAttribute { allocation_id: Option<String>, domain_name: Option<String> });
request!(ResetAddressAttribute { allocation_id: Option<String>, attribute: Option<String> });
request!(DescribeAddresses { allocation_ids: Vec<String>, public_ips: Vec<String>, filters: Vec<Filter> });

request!(DescribeInstances { instance_ids: Vec<String>, filters: Vec<Filter>, max_results: Option<i64>, next_token: Option<String> });
request!(DescribeInstanceStatus {
    instance_ids: Vec<String>,
    filters: Vec<Filter>,
    max_results: Option<i64>,
    next_token: Option<String>,
    include_all_instances: bool,
});
request!(StartInstances { instance_ids: Vec<String> });
request!(StopInstances { instance_ids: Vec<String>, force: bool, hibernate: bool });
request!(RebootInstances { instance_ids: Vec<String> });
request!(TerminateInstances { instance_ids: Vec<String> });
request!(GetConsoleOutput { instance_id: Option<String>, latest: bool });
request!(CreateTags { resources: Vec<String>, tags: Vec<Tag> });
request!(DeleteTags { resources: Vec<String>, tags: Vec<Tag> });
request!(DescribeTags { filters: Vec<Filter>, max_results: Option<i64>, next_token: Option<String> });
request!(DescribeInstanceAttribute { instance_id: Option<String>, attribute: Option<String> });
request!(ModifyInstanceAttribute {
    instance_id: Option<String>,
    attribute: Option<String>,
    value: Option<String>,
    instance_type: Option<AttributeValue<String>>,
    user_data: Option<AttributeValue<String>>,
    disable_api_termination: Option<AttributeValue<bool>>,
    instance_initiated_shutdown_behavior: Option<AttributeValue<String>>,
    groups: Vec<String>,
    block_device_mappings: Vec<InstanceBlockDeviceMappingSpecification>,
    source_dest_check: Option<AttributeValue<bool>>,
    disable_api_stop: Option<AttributeValue<bool>>,
    ebs_optimized: Option<AttributeValue<bool>>,
    ena_support: Option<AttributeValue<bool>>,
    sriov_net_support: Option<AttributeValue<String>>,
    kernel: Option<AttributeValue<String>>,
    ramdisk: Option<AttributeValue<String>>,
});

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct EbsInstanceBlockDeviceSpecification {
    pub delete_on_termination: Option<bool>,
    pub volume_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct InstanceBlockDeviceMappingSpecification {
    pub device_name: Option<String>,
    pub ebs: Option<EbsInstanceBlockDeviceSpecification>,
    pub no_device: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct MetadataOptionsRequest {
    pub http_tokens: Option<String>,
    pub http_endpoint: Option<String>,
    pub http_put_response_hop_limit: Option<i64>,
    pub instance_metadata_tags: Option<String>,
}

request!(ModifyInstanceMetadataOptions {
    instance_id: Option<String>,
    http_tokens: Option<String>,
    http_endpoint: Option<String>,
    http_put_response_hop_limit: Option<i64>,
    instance_metadata_tags: Option<String>,
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode;

    #[test]
    fn decoded_form_deserialises() {
        let params: Vec<(String, String)> = [
            ("ImageId", "ami-1"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("TagSpecification.1.ResourceType", "instance"),
            ("TagSpecification.1.Tag.1.Key", "Name"),
            ("TagSpecification.1.Tag.1.Value", "web"),
            ("DisableApiTermination", "true"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let v = decode("RunInstances", &params).unwrap();
        let r: RunInstances = serde_json::from_value(v).unwrap();
        assert_eq!(r.image_id.as_deref(), Some("ami-1"));
        assert_eq!(r.tag_specifications[0].tags[0].value.as_deref(), Some("web"));
        assert_eq!(r.disable_api_termination, Some(true));
        assert!(!r.dry_run);

        let p: Vec<(String, String)> = vec![("InstanceId".into(), "i-1".into()), ("DisableApiTermination.Value".into(), "false".into())];
        let m: ModifyInstanceAttribute = serde_json::from_value(decode("ModifyInstanceAttribute", &p).unwrap()).unwrap();
        assert_eq!(m.disable_api_termination.unwrap().value, Some(false));
    }
}
