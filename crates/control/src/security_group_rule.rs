//! Changing rules in place: UpdateSecurityGroupRuleDescriptionsIngress/Egress (a rule's
//! description, found by its permission or its id) and ModifySecurityGroupRules (a rule's
//! whole content, keeping its id). A content change bumps the group's generation, so the data
//! path applies it at once.

use crate::lookup::{get, parse_id};
use crate::security_group::{normalise_protocol, ports, same_rule, Direction};
use crate::Control;
use corral_ec2_query::requests as rq;
use corral_store::SecurityGroupRecord;
use corral_types::{Cidr, Error, ErrorCode, IdKind, Result};

fn not_found() -> Error {
    Error::new(ErrorCode::InvalidPermissionNotFound, "The specified rule does not exist in this security group.")
}

impl Control {
    pub fn security_group_rule_descriptions_update(&self, req: &rq::UpdateSecurityGroupRuleDescriptions, dir: Direction) -> Result<()> {
        let egress = dir == Direction::Egress;
        if req.ip_permissions.is_empty() == req.security_group_rule_descriptions.is_empty() {
            return Err(Error::combination("Exactly one of IpPermissions and SecurityGroupRuleDescriptions must be given."));
        }
        self.store.transaction(|tx| {
            let mut g = self.group_lookup(tx, req.group_id.as_deref(), req.group_name.as_deref())?;
            if req.ip_permissions.is_empty() {
                for d in &req.security_group_rule_descriptions {
                    let id = d.security_group_rule_id.as_deref().ok_or_else(|| Error::missing("SecurityGroupRuleId"))?;
                    parse_id(IdKind::SecurityGroupRule, id)?;
                    let r = g.rules.iter_mut().find(|r| r.rule_id == id && r.is_egress == egress).ok_or_else(not_found)?;
                    crate::limits::description("SecurityGroupRuleDescription.N.Description", d.description.as_deref())?;
                    r.description = d.description.clone();
                }
            } else {
                let change = rq::SecurityGroupRulesChange {
                    group_id: Some(g.group_id.clone()),
                    ip_permissions: req.ip_permissions.clone(),
                    ..Default::default()
                };
                for wanted in self.rules_of(tx, &g, &change, egress)? {
                    let r = g.rules.iter_mut().find(|r| same_rule(r, &wanted)).ok_or_else(not_found)?;
                    r.description = wanted.description.clone();
                }
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            tx.doc_put(&g)?;
            Ok(())
        })
    }

    pub fn security_group_rules_modify(&self, req: &rq::ModifySecurityGroupRules) -> Result<()> {
        let group_id = req.group_id.as_deref().ok_or_else(|| Error::missing("GroupId"))?;
        if req.security_group_rules.is_empty() {
            return Err(Error::missing("SecurityGroupRule"));
        }
        self.store.transaction(|tx| {
            let mut g: SecurityGroupRecord = get(tx, IdKind::SecurityGroup, group_id)?;
            for update in &req.security_group_rules {
                let id = update.security_group_rule_id.as_deref().ok_or_else(|| Error::missing("SecurityGroupRuleId"))?;
                parse_id(IdKind::SecurityGroupRule, id)?;
                let spec = update.security_group_rule.as_ref().ok_or_else(|| Error::missing("SecurityGroupRule"))?;
                let pos = g.rules.iter().position(|r| r.rule_id == id).ok_or_else(|| Error::not_found(IdKind::SecurityGroupRule, id))?;
                let mut r = g.rules[pos].clone();
                let proto = normalise_protocol(spec.ip_protocol.as_deref().ok_or_else(|| Error::missing("IpProtocol"))?)?;
                let (from, to) = ports(&proto, spec.from_port, spec.to_port)?;
                if spec.cidr_ipv6.is_some() || spec.prefix_list_id.is_some() {
                    return Err(Error::new(ErrorCode::Unsupported, "IPv6 ranges and prefix lists are not supported."));
                }
                let (cidr, group) = match (&spec.cidr_ipv4, &spec.referenced_group_id) {
                    (Some(c), None) => {
                        let cidr: Cidr =
                            c.parse().map_err(|_| Error::new(ErrorCode::InvalidParameterValue, format!("CIDR block {c} is malformed")))?;
                        (Some(cidr.network().to_string()), None)
                    }
                    (None, Some(other)) => {
                        let o: SecurityGroupRecord = get(tx, IdKind::SecurityGroup, other)?;
                        if o.vpc_id != g.vpc_id {
                            return Err(Error::new(ErrorCode::InvalidParameterValue, format!("Security group {other} is in another VPC.")));
                        }
                        (None, Some(o.group_id))
                    }
                    _ => return Err(Error::combination("Exactly one of CidrIpv4 and ReferencedGroupId must be given.")),
                };
                crate::limits::description("SecurityGroupRule.Description", spec.description.as_deref())?;
                (r.ip_protocol, r.from_port, r.to_port, r.cidr_ipv4, r.referenced_group_id, r.description) =
                    (proto, from, to, cidr, group, spec.description.clone());
                if g.rules.iter().enumerate().any(|(i, o)| i != pos && same_rule(o, &r)) {
                    return Err(Error::new(ErrorCode::InvalidPermissionDuplicate, format!("The rule {id} would duplicate another rule.")));
                }
                g.rules[pos] = r;
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            g.generation += 1;
            tx.doc_put(&g)?;
            Ok(())
        })?;
        self.kick_host();
        Ok(())
    }
}
