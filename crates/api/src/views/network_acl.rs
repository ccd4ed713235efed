//! Network ACLs.

use corral_control::network_acl::NetworkAcl;
use serde_json::{json, Value};

pub fn network_acls(items: &[NetworkAcl], owner: &str, next: Option<String>) -> Value {
    let acls: Vec<Value> = items
        .iter()
        .map(|a| {
            json!({
                "NetworkAclId": a.rec.network_acl_id,
                "VpcId": a.rec.vpc_id,
                "IsDefault": a.rec.is_default,
                "OwnerId": owner,
                "Entries": a.rec.entries.iter().map(|e| json!({
                    "RuleNumber": e.rule_number,
                    "Protocol": e.protocol,
                    "RuleAction": e.rule_action,
                    "Egress": e.egress,
                    "CidrBlock": e.cidr_block,
                })).collect::<Vec<_>>(),
                "Associations": a.associations.iter().map(|(id, subnet)| json!({
                    "NetworkAclAssociationId": id,
                    "NetworkAclId": a.rec.network_acl_id,
                    "SubnetId": subnet,
                })).collect::<Vec<_>>(),
                "Tags": super::tags(&a.tags),
            })
        })
        .collect();
    super::with_next(json!({ "NetworkAcls": acls }), next)
}
