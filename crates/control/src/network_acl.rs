//! Network ACLs. Every VPC gets its default network ACL when it is made (allow all traffic in
//! and out, then AWS's catch-all deny), associated with each of its subnets, as on AWS. Until
//! custom ACLs exist, the default ACL is every subnet's, so it filters nothing: security
//! groups are what the data path enforces.

use crate::{filter, Control};
use corral_ec2_query::requests as rq;
use corral_store::{AclEntry, NetworkAclRecord, SubnetRecord, TagRecord, Tx, VpcRecord};
use corral_types::{Error, IdKind, ResourceId, Result};

pub struct NetworkAcl {
    pub rec: NetworkAclRecord,
    /// (association id, subnet id) of each subnet it filters.
    pub associations: Vec<(String, String)>,
    pub tags: Vec<TagRecord>,
}

/// AWS's default ACL: rule 100 allows everything, the `*` rule (32767) denies, both ways.
pub(crate) fn default_acl(vpc_id: &str) -> NetworkAclRecord {
    let entry = |rule_number, rule_action: &str, egress| AclEntry {
        rule_number,
        protocol: "-1".into(),
        rule_action: rule_action.into(),
        egress,
        cidr_block: "0.0.0.0/0".into(),
    };
    NetworkAclRecord {
        network_acl_id: ResourceId::generate(IdKind::NetworkAcl).into_string(),
        vpc_id: vpc_id.into(),
        is_default: true,
        entries: vec![entry(100, "allow", true), entry(32767, "deny", true), entry(100, "allow", false), entry(32767, "deny", false)],
    }
}

/// The id of the association between a subnet and its ACL: derived from the subnet, so it
/// stays the same for as long as the subnet does.
fn association_id(subnet_id: &str) -> String {
    format!("aclassoc-{}", subnet_id.trim_start_matches("subnet-"))
}

/// Removes a VPC's ACLs (with the VPC).
pub(crate) fn delete_for_vpc(tx: &Tx<'_>, vpc_id: &str) -> Result<()> {
    for acl in tx.doc_list_by_parent::<NetworkAclRecord>(vpc_id)? {
        tx.doc_delete::<NetworkAclRecord>(&acl.network_acl_id)?;
        tx.tag_delete_all(&acl.network_acl_id)?;
    }
    Ok(())
}

const FILTERS: &[&str] = &[
    "association.association-id",
    "association.network-acl-id",
    "association.subnet-id",
    "default",
    "entry.cidr",
    "entry.egress",
    "entry.icmp.code",
    "entry.icmp.type",
    "entry.ipv6-cidr",
    "entry.port-range.from",
    "entry.port-range.to",
    "entry.protocol",
    "entry.rule-action",
    "entry.rule-number",
    "network-acl-id",
    "owner-id",
    "vpc-id",
];

impl Control {
    /// Gives every VPC without one its default ACL (VPCs made before ACLs existed).
    pub(crate) fn network_acls_ensure(&self) -> Result<()> {
        self.store.transaction(|tx| {
            for vpc in tx.doc_list::<VpcRecord>()? {
                if tx.doc_list_by_parent::<NetworkAclRecord>(&vpc.vpc_id)?.is_empty() {
                    tx.doc_put(&default_acl(&vpc.vpc_id))?;
                }
            }
            Ok(())
        })
    }

    pub fn network_acl_describe(&self, req: &rq::DescribeNetworkAcls) -> Result<(Vec<NetworkAcl>, Option<String>)> {
        let q = filter::Query {
            kind: IdKind::NetworkAcl,
            ids: &req.network_acl_ids,
            filters: &req.filters,
            names: FILTERS,
            dry_run: req.dry_run,
            max_results: req.max_results,
            next_token: req.next_token.as_deref(),
            bounds: (5, 1000),
        };
        q.check()?;
        let (acls, subnets, tags) =
            self.store.read(|tx| Ok::<_, Error>((tx.doc_list::<NetworkAclRecord>()?, tx.doc_list::<SubnetRecord>()?, tx.tag_map()?)))?;
        let account = self.account_id.clone();
        let associations = |acl: &NetworkAclRecord| -> Vec<(String, String)> {
            if !acl.is_default {
                return vec![];
            }
            subnets.iter().filter(|s| s.vpc_id == acl.vpc_id).map(|s| (association_id(&s.subnet_id), s.subnet_id.clone())).collect()
        };
        let (page, next) = q.select(
            acls,
            &tags,
            |a| &a.network_acl_id,
            |_| true,
            |a, name| {
                let entries = a.entries.iter();
                match name {
                    "association.association-id" => associations(a).into_iter().map(|(id, _)| id).collect(),
                    "association.subnet-id" => associations(a).into_iter().map(|(_, s)| s).collect(),
                    "association.network-acl-id" if a.is_default && !associations(a).is_empty() => vec![a.network_acl_id.clone()],
                    "default" => vec![a.is_default.to_string()],
                    "entry.cidr" => entries.map(|e| e.cidr_block.clone()).collect(),
                    "entry.egress" => entries.map(|e| e.egress.to_string()).collect(),
                    "entry.protocol" => entries.map(|e| e.protocol.clone()).collect(),
                    "entry.rule-action" => entries.map(|e| e.rule_action.clone()).collect(),
                    "entry.rule-number" => entries.map(|e| e.rule_number.to_string()).collect(),
                    "network-acl-id" => vec![a.network_acl_id.clone()],
                    "owner-id" => vec![account.clone()],
                    "vpc-id" => vec![a.vpc_id.clone()],
                    _ => vec![],
                }
            },
        )?;
        let items = page.into_iter().map(|(rec, tags)| NetworkAcl { associations: associations(&rec), rec, tags }).collect();
        Ok((items, next))
    }
}
