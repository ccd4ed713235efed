//! What the metadata service knows about one instance: plain data that the agent fills from the
//! desired state the control plane pushed, and nothing else. The service never looks anything
//! up on its own; an [`InstanceView`] is the whole truth for one request.

use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};

/// `HttpTokens` of EC2's `InstanceMetadataOptions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpTokens {
    /// IMDSv1 and IMDSv2 both work (a GET without a token is answered).
    #[default]
    Optional,
    /// Only IMDSv2: every GET must carry a valid token.
    Required,
}

/// `HttpEndpoint` and `InstanceMetadataTags` of EC2's `InstanceMetadataOptions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Toggle {
    #[default]
    Enabled,
    Disabled,
}

/// EC2's `InstanceMetadataOptions` as the service applies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataOptions {
    pub http_tokens: HttpTokens,
    pub http_endpoint: Toggle,
    /// `HttpPutResponseHopLimit`, 1..=64: the IP TTL of the token PUT response.
    pub hop_limit: u8,
    /// `InstanceMetadataTags`: whether `meta-data/tags/instance/` is served. AWS's default is
    /// disabled.
    pub instance_metadata_tags: Toggle,
}

impl Default for MetadataOptions {
    /// AWS's defaults for an instance launched without `MetadataOptions` (and without an AMI
    /// that asks for IMDSv2): tokens optional, endpoint enabled, hop limit 1, tags disabled.
    fn default() -> Self {
        MetadataOptions {
            http_tokens: HttpTokens::Optional,
            http_endpoint: Toggle::Enabled,
            hop_limit: 1,
            instance_metadata_tags: Toggle::Disabled,
        }
    }
}

/// One security group of an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    pub id: String,
    pub name: String,
}

/// One network interface (ENI) of the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceView {
    /// `eni-...`
    pub interface_id: String,
    /// `DeviceIndex`; 0 is the primary interface whose values appear at the top of `meta-data/`.
    pub device_number: u32,
    /// Lower-case, colon-separated, as EC2 prints it: `02:a1:b2:c3:d4:e5`.
    pub mac: String,
    /// Private addresses, the primary first.
    pub private_ips: Vec<Ipv4Addr>,
    pub public_ip: Option<Ipv4Addr>,
    pub public_hostname: Option<String>,
    /// `ip-10-0-1-5.<region>.compute.internal`
    pub local_hostname: String,
    pub subnet_id: String,
    /// `10.0.1.0/24`
    pub subnet_cidr: String,
    pub vpc_id: String,
    /// The VPC's CIDR blocks, the primary first.
    pub vpc_cidrs: Vec<String>,
    pub security_groups: Vec<GroupRef>,
}

/// A key pair's public half as `public-keys/` serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub name: String,
    /// The OpenSSH line, e.g. `ssh-ed25519 AAAA... name`.
    pub openssh_key: String,
}

/// Everything the service may tell one instance about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceView {
    pub instance_id: String,
    pub image_id: String,
    pub instance_type: String,
    pub launch_index: u32,
    pub reservation_id: String,
    pub account_id: String,
    pub region: String,
    pub availability_zone: String,
    /// e.g. `use1-az1` on AWS; Corral's control plane names its own.
    pub availability_zone_id: String,
    /// `x86_64` or `arm64`, as in the identity document.
    pub architecture: String,
    /// `hostname` and `local-hostname`: `ip-10-0-1-5.<region>.compute.internal`.
    pub hostname: String,
    /// Network interfaces; the one with device number 0 is the primary.
    pub interfaces: Vec<InterfaceView>,
    pub public_keys: Vec<PublicKey>,
    /// Raw bytes, as the user gave them before base64 (`None`: `user-data` answers 404).
    pub user_data: Option<Vec<u8>>,
    pub launch_time: DateTime<Utc>,
    /// `pendingTime` of the identity document: when the instance last entered `pending`.
    pub pending_time: DateTime<Utc>,
    /// `block-device-mapping/ami` and `root`, e.g. `/dev/xvda`.
    pub root_device_name: String,
    /// Further `block-device-mapping/` entries: (`ebs1`, `sdb`), ...
    pub block_devices: Vec<(String, String)>,
    /// The instance's tags (served only when `instance_metadata_tags` is enabled).
    pub tags: Vec<(String, String)>,
    pub options: MetadataOptions,
}

impl InstanceView {
    /// The interface with device number 0 (or the first one, if none claims 0).
    pub fn primary_interface(&self) -> Option<&InterfaceView> {
        self.interfaces.iter().find(|i| i.device_number == 0).or_else(|| self.interfaces.first())
    }

    /// The primary private IPv4 address.
    pub fn private_ip(&self) -> Option<Ipv4Addr> {
        self.primary_interface().and_then(|i| i.private_ips.first().copied())
    }
}
