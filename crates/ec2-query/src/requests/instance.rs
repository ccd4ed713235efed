//! Request types of the instance actions; shared types are in `requests.rs`.

use super::*;
use serde::Deserialize;

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
request!(GetInstanceUefiData { instance_id: Option<String> });
request!(DescribeInstanceTypeOfferings {
    location_type: Option<String>,
    filters: Vec<Filter>,
    max_results: Option<i64>,
    next_token: Option<String>,
});

request!(UnmonitorInstances { instance_ids: Vec<String> });
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
