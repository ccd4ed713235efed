//! Network resources as documents: VPCs, subnets, security groups with their rules, network
//! interfaces.

use crate::doc::Doc;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpcRecord {
    pub vpc_id: String,
    pub cidr: String,
    pub is_default: bool,
    pub state: String,
    pub enable_dns_support: bool,
    pub enable_dns_hostnames: bool,
    pub instance_tenancy: String,
    pub created_at: String,
    #[serde(default)]
    pub enable_network_address_usage_metrics: bool,
}

impl Doc for VpcRecord {
    const KIND: &'static str = "vpc";
    fn id(&self) -> &str {
        &self.vpc_id
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetRecord {
    pub subnet_id: String,
    pub vpc_id: String,
    pub cidr: String,
    pub availability_zone: String,
    pub default_for_az: bool,
    pub map_public_ip_on_launch: bool,
    pub state: String,
    /// How instances launched here are named: "ip-name" or "resource-name".
    #[serde(default = "ip_name")]
    pub private_dns_hostname_type: String,
    #[serde(default)]
    pub enable_resource_name_dns_a_record: bool,
}

fn ip_name() -> String {
    "ip-name".into()
}

impl Doc for SubnetRecord {
    const KIND: &'static str = "subnet";
    fn id(&self) -> &str {
        &self.subnet_id
    }
    fn parent(&self) -> Option<&str> {
        Some(&self.vpc_id)
    }
}

/// One security group rule, as DescribeSecurityGroupRules shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SgRule {
    pub rule_id: String,
    pub is_egress: bool,
    /// "-1", "tcp", "udp", "icmp" (names; numbers are normalised by the control plane).
    pub ip_protocol: String,
    pub from_port: i64,
    pub to_port: i64,
    pub cidr_ipv4: Option<String>,
    pub referenced_group_id: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroupRecord {
    pub group_id: String,
    pub group_name: String,
    pub description: String,
    pub vpc_id: String,
    pub rules: Vec<SgRule>,
    /// Bumped on every rule change; the agent applies only newer generations.
    pub generation: u64,
}

impl Doc for SecurityGroupRecord {
    const KIND: &'static str = "security-group";
    fn id(&self) -> &str {
        &self.group_id
    }
    fn parent(&self) -> Option<&str> {
        Some(&self.vpc_id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternetGatewayRecord {
    pub igw_id: String,
    pub vpc_id: Option<String>,
}

impl Doc for InternetGatewayRecord {
    const KIND: &'static str = "internet-gateway";
    fn id(&self) -> &str {
        &self.igw_id
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRecord {
    pub destination: String,
    /// "local" or an internet gateway id; empty when the route leads to an interface.
    pub gateway_id: String,
    /// The interface (and its instance) the route leads to, for routes through an instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_interface_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// CreateRouteTable, CreateRoute.
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteTableAssociationRecord {
    pub association_id: String,
    pub subnet_id: Option<String>,
    pub main: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteTableRecord {
    pub route_table_id: String,
    pub vpc_id: String,
    pub routes: Vec<RouteRecord>,
    pub associations: Vec<RouteTableAssociationRecord>,
}

impl Doc for RouteTableRecord {
    const KIND: &'static str = "route-table";
    fn id(&self) -> &str {
        &self.route_table_id
    }
    fn parent(&self) -> Option<&str> {
        Some(&self.vpc_id)
    }
}

/// A network ACL entry: a numbered rule evaluated in order, first match wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclEntry {
    pub rule_number: i64,
    /// "-1" for all, or a protocol number.
    pub protocol: String,
    /// "allow" or "deny".
    pub rule_action: String,
    pub egress: bool,
    pub cidr_block: String,
}

/// A network ACL. Every VPC has its default one (allow all, as on AWS), associated with every
/// subnet that no other ACL claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAclRecord {
    pub network_acl_id: String,
    pub vpc_id: String,
    pub is_default: bool,
    pub entries: Vec<AclEntry>,
}

impl Doc for NetworkAclRecord {
    const KIND: &'static str = "network-acl";
    fn id(&self) -> &str {
        &self.network_acl_id
    }
    fn parent(&self) -> Option<&str> {
        Some(&self.vpc_id)
    }
}

impl crate::Tx<'_> {
    /// The interfaces of an instance, through an index on the instance id (a launch and every
    /// reconciler pass ask this per instance; decoding every interface made that O(fleet)).
    /// The interfaces of these instances (a page's).
    /// The interfaces of these instances, in no particular order.
    pub fn eni_list_for_instances(&self, instance_ids: &[String]) -> crate::Result<Vec<EniRecord>> {
        self.docs_in::<EniRecord, _>("json_extract(d.body, '$.instance_id')", instance_ids, false)
    }

    pub fn eni_list_for_instance(&self, instance_id: &str) -> crate::Result<Vec<EniRecord>> {
        self.doc_list_where::<EniRecord>("json_extract(body, '$.instance_id') = ?2", instance_id)
    }
}

/// An elastic IP address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressRecord {
    pub allocation_id: String,
    pub public_ip: String,
    pub association_id: Option<String>,
    pub eni_id: Option<String>,
    pub instance_id: Option<String>,
    pub private_ip: Option<String>,
    /// The reverse DNS name set with ModifyAddressAttribute (None: the default one).
    #[serde(default)]
    pub ptr_record: Option<String>,
}

impl Doc for AddressRecord {
    const KIND: &'static str = "address";
    fn id(&self) -> &str {
        &self.allocation_id
    }
}

/// A network interface. An instance's primary interface is created with it and goes with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EniRecord {
    pub eni_id: String,
    pub subnet_id: String,
    pub vpc_id: String,
    pub availability_zone: String,
    pub private_ip: String,
    pub mac: String,
    pub private_dns_name: String,
    pub groups: Vec<String>,
    pub description: String,
    pub instance_id: Option<String>,
    pub device_index: u32,
    pub attachment_id: Option<String>,
    pub attach_time: Option<String>,
    pub delete_on_termination: bool,
    pub status: String,
    pub source_dest_check: bool,
    /// The public address: an elastic IP's, or one from the pool given at launch.
    #[serde(default)]
    pub public_ip: Option<String>,
    /// The elastic IP allocation behind `public_ip`, if it is one.
    #[serde(default)]
    pub public_ip_allocation: Option<String>,
    /// It gets a public IP from the pool whenever its instance runs (released at stop, a new
    /// one at start, as on EC2).
    #[serde(default)]
    pub auto_public_ip: bool,
}

impl Doc for EniRecord {
    const KIND: &'static str = "network-interface";
    fn id(&self) -> &str {
        &self.eni_id
    }
    fn parent(&self) -> Option<&str> {
        Some(&self.subnet_id)
    }
}
