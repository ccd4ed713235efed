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

mod instance;
mod network;
mod storage;

pub use instance::*;
pub use network::*;
pub use storage::*;

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
