//! Network resources as documents: VPCs, subnets, security groups with their rules, network
//! interfaces.

use crate::doc::Doc;
use crate::list::json_list;
use crate::{Result, Tx};
use serde::{Deserialize, Serialize};

/// The SQL of [`Tx::subnet_interface_counts`]: one probe of the counters' key per subnet.
const INTERFACE_COUNTS: &str = "SELECT wanted, c.n FROM (SELECT value AS wanted FROM json_each(?1)) CROSS JOIN counters c
     WHERE c.name = 'interfaces:' || wanted";

impl Tx<'_> {
    /// How many network interfaces each of `subnets` holds (those with none are absent): kept
    /// by triggers as interfaces come and go (migration 14), so the count costs a lookup per
    /// subnet whatever the fleet.
    pub fn subnet_interface_counts(&self, subnets: &[String]) -> Result<std::collections::HashMap<String, u64>> {
        let mut st = self.tx.prepare_cached(INTERFACE_COUNTS)?;
        let rows = st.query_map([json_list(subnets)], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = std::collections::HashMap::new();
        for r in rows {
            let (subnet, n) = r?;
            if n > 0 {
                out.insert(subnet, u64::try_from(n).unwrap_or(0));
            }
        }
        Ok(out)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn eni(id: &str, subnet: &str) -> EniRecord {
        EniRecord {
            eni_id: id.into(),
            subnet_id: subnet.into(),
            vpc_id: "vpc-1".into(),
            availability_zone: "local-1a".into(),
            private_ip: "10.0.0.1".into(),
            mac: "02:00:00:00:00:01".into(),
            private_dns_name: String::new(),
            groups: vec![],
            description: String::new(),
            instance_id: None,
            device_index: 0,
            attachment_id: None,
            attach_time: None,
            delete_on_termination: true,
            status: "available".into(),
            source_dest_check: true,
            public_ip: None,
            public_ip_allocation: None,
            auto_public_ip: false,
        }
    }

    /// The counts follow interfaces made, moved to another subnet and deleted, and agree with
    /// counting the documents; a subnet left with none has no row.
    #[test]
    fn interface_counts_follow_the_interfaces() {
        let store = crate::Store::open_in_memory().unwrap();
        let subnets = ["subnet-a".to_string(), "subnet-b".to_string(), "subnet-c".to_string()];
        let check = |tx: &Tx<'_>, want: &[(&str, u64)]| {
            let got = tx.subnet_interface_counts(&subnets).unwrap();
            let want: std::collections::HashMap<String, u64> = want.iter().map(|(s, n)| (s.to_string(), *n)).collect();
            assert_eq!(got, want);
            let counted: i64 = tx.tx.query_row("SELECT COUNT(*) FROM docs WHERE kind = 'network-interface'", [], |r| r.get(0)).unwrap();
            assert_eq!(got.values().sum::<u64>(), counted as u64);
        };
        store
            .transaction(|tx| {
                for (id, subnet) in [("eni-1", "subnet-a"), ("eni-2", "subnet-a"), ("eni-3", "subnet-b")] {
                    tx.doc_put(&eni(id, subnet))?;
                }
                check(tx, &[("subnet-a", 2), ("subnet-b", 1)]);
                // Written again in place: no change.
                tx.doc_put(&eni("eni-1", "subnet-a"))?;
                check(tx, &[("subnet-a", 2), ("subnet-b", 1)]);
                tx.doc_put(&eni("eni-3", "subnet-c"))?;
                check(tx, &[("subnet-a", 2), ("subnet-c", 1)]);
                tx.doc_delete::<EniRecord>("eni-1")?;
                tx.doc_delete::<EniRecord>("eni-3")?;
                check(tx, &[("subnet-a", 1)]);
                let rows: i64 = tx.tx.query_row("SELECT COUNT(*) FROM counters WHERE name GLOB 'interfaces:*'", [], |r| r.get(0))?;
                assert_eq!(rows, 1, "a subnet with no interface keeps no row");
                Ok::<_, crate::StoreError>(())
            })
            .unwrap();
    }

    #[test]
    fn interface_counts_probe_the_counters_once_per_subnet() {
        crate::list::assert_probes(INTERFACE_COUNTS, "sqlite_autoindex_counters_1");
    }
}
