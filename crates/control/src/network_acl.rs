//! Network ACLs. Every VPC gets its default network ACL when it is made (allow all traffic in
//! and out, then AWS's catch-all deny), associated with each of its subnets, as on AWS. Until
//! custom ACLs exist, the default ACL is every subnet's, so it filters nothing: security
//! groups are what the data path enforces.

use crate::describe::{Describe, Described, FilterLine, TagMap};
use crate::Control;
use corral_ec2_query::requests as rq;
use corral_store::{AclEntry, NetworkAclRecord, SubnetRecord, TagRecord, Tx, VpcRecord};
use corral_types::{IdKind, ResourceId, Result};

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

impl Described for NetworkAcl {
    type Record = NetworkAclRecord;
    const KIND: IdKind = IdKind::NetworkAcl;
    fn record_id(rec: &NetworkAclRecord) -> &str {
        &rec.network_acl_id
    }
    /// A default ACL filters every subnet of its VPC.
    fn assemble(tx: &Tx<'_>, recs: Vec<NetworkAclRecord>, tags: &mut TagMap) -> Result<Vec<NetworkAcl>> {
        let vpcs: Vec<String> = recs.iter().filter(|a| a.is_default).map(|a| a.vpc_id.clone()).collect();
        let subnets = tx.doc_list_by_parents::<SubnetRecord>(&vpcs)?;
        Ok(recs
            .into_iter()
            .map(|rec| {
                let associations = match rec.is_default {
                    true => subnets
                        .iter()
                        .filter(|s| s.vpc_id == rec.vpc_id)
                        .map(|s| (association_id(&s.subnet_id), s.subnet_id.clone()))
                        .collect(),
                    false => vec![],
                };
                NetworkAcl { tags: tags.remove(&rec.network_acl_id).unwrap_or_default(), associations, rec }
            })
            .collect())
    }
    fn id(&self) -> &str {
        &self.rec.network_acl_id
    }
    fn tags(&self) -> &[TagRecord] {
        &self.tags
    }
}

fn entries<T>(a: &NetworkAcl, f: impl Fn(&AclEntry) -> T) -> Vec<T> {
    a.rec.entries.iter().map(f).collect()
}

/// DescribeNetworkAcls' filters. No entry has ICMP fields, an IPv6 block or a port range.
const FILTERS: &[FilterLine<NetworkAcl>] = &[
    ("association.association-id", |a, _| a.associations.iter().map(|(id, _)| id.clone()).collect()),
    ("association.network-acl-id", |a, _| a.associations.first().map(|_| a.rec.network_acl_id.clone()).into_iter().collect()),
    ("association.subnet-id", |a, _| a.associations.iter().map(|(_, s)| s.clone()).collect()),
    ("default", |a, _| vec![a.rec.is_default.to_string()]),
    ("entry.cidr", |a, _| entries(a, |e| e.cidr_block.clone())),
    ("entry.egress", |a, _| entries(a, |e| e.egress.to_string())),
    ("entry.icmp.code", |_, _| vec![]),
    ("entry.icmp.type", |_, _| vec![]),
    ("entry.ipv6-cidr", |_, _| vec![]),
    ("entry.port-range.from", |_, _| vec![]),
    ("entry.port-range.to", |_, _| vec![]),
    ("entry.protocol", |a, _| entries(a, |e| e.protocol.clone())),
    ("entry.rule-action", |a, _| entries(a, |e| e.rule_action.clone())),
    ("entry.rule-number", |a, _| entries(a, |e| e.rule_number.to_string())),
    ("network-acl-id", |a, _| vec![a.rec.network_acl_id.clone()]),
    ("owner-id", |_, s| vec![s.account_id.to_string()]),
    ("vpc-id", |a, _| vec![a.rec.vpc_id.clone()]),
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
        let d = Describe::new(&req.network_acl_ids, &req.filters, req.dry_run, req.max_results, req.next_token.as_deref());
        self.describe(&d.table(FILTERS), |_| true)
    }
}
