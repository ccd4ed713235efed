//! Security groups and their rules. Rules are stored one per peer (a CIDR or a group), as
//! DescribeSecurityGroupRules shows them; IpPermissions are grouped from them for
//! DescribeSecurityGroups. Every rule change bumps the group's generation, which the data
//! path uses to apply only newer rule sets.

use crate::describe::{Describe, Described, FilterLine, TagMap};
use crate::lookup::{get, parse_id};
use crate::{tag, Control};
use corral_ec2_query::requests as rq;
use corral_store::{EniRecord, SecurityGroupRecord, SgRule, TagRecord, Tx, VpcRecord};
use corral_types::{Cidr, Error, ErrorCode, IdKind, ResourceId, Result};

/// A rule with the id of the group it belongs to.
pub type GroupRule = (String, SgRule);

pub struct SecurityGroup {
    pub rec: SecurityGroupRecord,
    pub tags: Vec<TagRecord>,
    /// (id, name) of the groups its rules name, when described.
    pub peers: Vec<(String, String)>,
}

impl Described for SecurityGroup {
    type Record = SecurityGroupRecord;
    const KIND: IdKind = IdKind::SecurityGroup;
    fn record_id(rec: &SecurityGroupRecord) -> &str {
        &rec.group_id
    }
    fn assemble(tx: &corral_store::Tx<'_>, recs: Vec<SecurityGroupRecord>, tags: &mut TagMap) -> Result<Vec<SecurityGroup>> {
        let named: Vec<String> = recs.iter().flat_map(|g| g.rules.iter().filter_map(|r| r.referenced_group_id.clone())).collect();
        let peers: Vec<(String, String)> = if named.is_empty() {
            vec![]
        } else {
            corral_store::Listed::with_ids(tx, &named)?
                .into_iter()
                .map(|(_, g): (i64, SecurityGroupRecord)| (g.group_id, g.group_name))
                .collect()
        };
        Ok(recs
            .into_iter()
            .map(|rec| {
                let mine =
                    peers.iter().filter(|(id, _)| rec.rules.iter().any(|r| r.referenced_group_id.as_ref() == Some(id))).cloned().collect();
                SecurityGroup { tags: tags.remove(&rec.group_id).unwrap_or_default(), rec, peers: mine }
            })
            .collect())
    }
    fn id(&self) -> &str {
        &self.rec.group_id
    }
    fn tags(&self) -> &[TagRecord] {
        &self.tags
    }
}

/// One field of a group's rules in one direction, for the `ip-permission.*` filters. No IPv6
/// or prefix-list rule exists here: those filters match nothing.
fn rule_field(g: &SecurityGroup, egress: bool, what: &str) -> Vec<String> {
    g.rec
        .rules
        .iter()
        .filter(|r| r.is_egress == egress)
        .filter_map(|r| match what {
            "protocol" => Some(r.ip_protocol.clone()),
            "from-port" => Some(r.from_port.to_string()),
            "to-port" => Some(r.to_port.to_string()),
            "cidr" => r.cidr_ipv4.clone(),
            "group-id" => r.referenced_group_id.clone(),
            "group-name" => r.referenced_group_id.as_ref().and_then(|p| g.peers.iter().find(|(id, _)| id == p).map(|(_, n)| n.clone())),
            _ => None,
        })
        .collect()
}

/// DescribeSecurityGroups' filters. `owner-id` and `ip-permission.user-id` are the owner's
/// account, the only account here.
const GROUP_FILTERS: &[FilterLine<SecurityGroup>] = &[
    ("group-id", |g, _| vec![g.rec.group_id.clone()]),
    ("group-name", |g, _| vec![g.rec.group_name.clone()]),
    ("vpc-id", |g, _| vec![g.rec.vpc_id.clone()]),
    ("description", |g, _| vec![g.rec.description.clone()]),
    ("owner-id", |_, s| vec![s.account_id.to_string()]),
    ("ip-permission.protocol", |g, _| rule_field(g, false, "protocol")),
    ("ip-permission.from-port", |g, _| rule_field(g, false, "from-port")),
    ("ip-permission.to-port", |g, _| rule_field(g, false, "to-port")),
    ("ip-permission.cidr", |g, _| rule_field(g, false, "cidr")),
    ("ip-permission.group-id", |g, _| rule_field(g, false, "group-id")),
    ("ip-permission.group-name", |g, _| rule_field(g, false, "group-name")),
    ("ip-permission.user-id", |g, s| rule_field(g, false, "group-id").into_iter().map(|_| s.account_id.to_string()).collect()),
    ("ip-permission.ipv6-cidr", |_, _| vec![]),
    ("ip-permission.prefix-list-id", |_, _| vec![]),
    ("egress.ip-permission.protocol", |g, _| rule_field(g, true, "protocol")),
    ("egress.ip-permission.from-port", |g, _| rule_field(g, true, "from-port")),
    ("egress.ip-permission.to-port", |g, _| rule_field(g, true, "to-port")),
    ("egress.ip-permission.cidr", |g, _| rule_field(g, true, "cidr")),
    ("egress.ip-permission.group-id", |g, _| rule_field(g, true, "group-id")),
    ("egress.ip-permission.group-name", |g, _| rule_field(g, true, "group-name")),
    ("egress.ip-permission.user-id", |g, s| rule_field(g, true, "group-id").into_iter().map(|_| s.account_id.to_string()).collect()),
    ("egress.ip-permission.ipv6-cidr", |_, _| vec![]),
    ("egress.ip-permission.prefix-list-id", |_, _| vec![]),
];

/// The rules a change adds or removes, and the group it is on.
pub struct RuleChange {
    pub group_id: String,
    pub rules: Vec<SgRule>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Ingress,
    Egress,
}

pub(crate) fn default_group(vpc_id: &str) -> SecurityGroupRecord {
    let group_id = ResourceId::generate(IdKind::SecurityGroup).into_string();
    SecurityGroupRecord {
        rules: vec![
            rule(false, "-1", -1, -1, None, Some(group_id.clone()), None),
            rule(true, "-1", -1, -1, Some("0.0.0.0/0".into()), None, None),
        ],
        group_id,
        group_name: "default".into(),
        description: "default VPC security group".into(),
        vpc_id: vpc_id.to_string(),
        generation: 1,
    }
}

fn rule(egress: bool, proto: &str, from: i64, to: i64, cidr: Option<String>, group: Option<String>, description: Option<String>) -> SgRule {
    SgRule {
        rule_id: ResourceId::generate(IdKind::SecurityGroupRule).into_string(),
        is_egress: egress,
        ip_protocol: proto.into(),
        from_port: from,
        to_port: to,
        cidr_ipv4: cidr,
        referenced_group_id: group,
        description,
    }
}

pub(crate) fn same_rule(a: &SgRule, b: &SgRule) -> bool {
    (a.is_egress, &a.ip_protocol, a.from_port, a.to_port, &a.cidr_ipv4, &a.referenced_group_id)
        == (b.is_egress, &b.ip_protocol, b.from_port, b.to_port, &b.cidr_ipv4, &b.referenced_group_id)
}

/// EC2 accepts protocol names or numbers; -1 and "all" mean every protocol.
pub(crate) fn normalise_protocol(p: &str) -> Result<String> {
    Ok(match p.to_ascii_lowercase().as_str() {
        "-1" | "all" => "-1".into(),
        "tcp" => "tcp".into(),
        "udp" => "udp".into(),
        "icmp" => "icmp".into(),
        // Numbers are read as numbers (`006` is TCP) and written canonically, so a rule is
        // enforced as what it is stored as.
        n if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && n.parse::<u8>().is_ok() => match n.parse::<u8>().unwrap_or(0) {
            6 => "tcp".into(),
            17 => "udp".into(),
            1 => "icmp".into(),
            other => other.to_string(),
        },
        _ => return Err(Error::new(ErrorCode::InvalidParameterValue, format!("Invalid value '{p}' for IP protocol. Unknown protocol."))),
    })
}

pub(crate) fn ports(proto: &str, from: Option<i64>, to: Option<i64>) -> Result<(i64, i64)> {
    match proto {
        "tcp" | "udp" => {
            let (f, t) = match (from, to) {
                (Some(f), Some(t)) => (f, t),
                _ => {
                    return Err(Error::new(
                        ErrorCode::InvalidParameterValue,
                        "Invalid value for portRange. Must specify both from and to ports with TCP/UDP.",
                    ))
                }
            };
            if !(0..=65535).contains(&f) || !(0..=65535).contains(&t) || f > t {
                return Err(Error::new(
                    ErrorCode::InvalidParameterValue,
                    format!("Invalid value for portRange. Must be in [0, 65535] with from <= to (got {f}-{t})."),
                ));
            }
            Ok((f, t))
        }
        "icmp" => {
            let (f, t) = (from.unwrap_or(-1), to.unwrap_or(-1));
            if !(-1..=255).contains(&f) || !(-1..=255).contains(&t) {
                return Err(Error::new(ErrorCode::InvalidParameterValue, "Invalid ICMP type or code."));
            }
            // As AWS: "If the start port is -1 (all ICMP types), then the end port must be -1
            // (all ICMP codes)."
            if f == -1 && t != -1 {
                return Err(Error::new(
                    ErrorCode::InvalidParameterValue,
                    format!("Invalid ICMP code {t} for all ICMP types: with type -1, the code must be -1 too."),
                ));
            }
            Ok((f, t))
        }
        _ => Ok((-1, -1)),
    }
}

impl Control {
    fn vpc_or_default(&self, tx: &Tx<'_>, vpc_id: Option<&str>) -> Result<VpcRecord> {
        match vpc_id {
            Some(id) => get(tx, IdKind::Vpc, id),
            None => {
                let id = tx.meta_get("default_vpc")?.filter(|s| !s.is_empty()).ok_or_else(|| {
                    Error::new(
                        ErrorCode::MissingParameter,
                        "No default VPC for this user. GroupName is only supported for EC2-Classic and default VPC.",
                    )
                })?;
                get(tx, IdKind::Vpc, &id)
            }
        }
    }

    /// A group by id, or by name in the default VPC.
    pub(crate) fn group_lookup(&self, tx: &Tx<'_>, id: Option<&str>, name: Option<&str>) -> Result<SecurityGroupRecord> {
        match (id, name) {
            (Some(id), _) => get(tx, IdKind::SecurityGroup, id),
            (None, Some(name)) => {
                let vpc = self.vpc_or_default(tx, None)?;
                tx.doc_list_by_parent::<SecurityGroupRecord>(&vpc.vpc_id)?.into_iter().find(|g| g.group_name == name).ok_or_else(|| {
                    Error::new(
                        ErrorCode::NotFound(IdKind::SecurityGroup),
                        format!("The security group '{name}' does not exist in default VPC '{}'", vpc.vpc_id),
                    )
                })
            }
            (None, None) => Err(Error::missing("GroupId")),
        }
    }

    pub fn security_group_create(&self, req: &rq::CreateSecurityGroup) -> Result<SecurityGroup> {
        let name = req.group_name.as_deref().ok_or_else(|| Error::missing("GroupName"))?;
        let description = req.description.as_deref().ok_or_else(|| Error::missing("GroupDescription"))?;
        if name.is_empty() || name.len() > 255 || name.starts_with("sg-") {
            return Err(Error::invalid_value("GroupName", name, "Group names are 1-255 characters and may not start with sg-."));
        }
        crate::limits::description("GroupDescription", Some(description))?;
        let tags = tag::from_specifications(&req.tag_specifications, "security-group", &["security-group"])?;
        self.store.transaction(|tx| {
            let vpc = self.vpc_or_default(tx, req.vpc_id.as_deref())?;
            if tx.doc_list_by_parent::<SecurityGroupRecord>(&vpc.vpc_id)?.iter().any(|g| g.group_name == name) {
                return Err(Error::new(
                    ErrorCode::Duplicate(IdKind::SecurityGroup),
                    format!("The security group '{name}' already exists for VPC '{}'", vpc.vpc_id),
                ));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            self.config.quotas.check("security-groups", tx.doc_list::<SecurityGroupRecord>()?.len() + 1)?;
            let rec = SecurityGroupRecord {
                group_id: ResourceId::generate(IdKind::SecurityGroup).into_string(),
                group_name: name.into(),
                description: description.into(),
                vpc_id: vpc.vpc_id.clone(),
                rules: vec![rule(true, "-1", -1, -1, Some("0.0.0.0/0".into()), None, None)],
                generation: 1,
            };
            tx.doc_put(&rec)?;
            let tags = tag::insert(tx, &rec.group_id, "security-group", &tags)?;
            Ok(SecurityGroup { rec, tags, peers: vec![] })
        })
    }

    pub fn security_group_describe(&self, req: &rq::DescribeSecurityGroups) -> Result<(Vec<SecurityGroup>, Option<String>)> {
        let d = Describe::new(&req.group_ids, &req.filters, req.dry_run, req.max_results, req.next_token.as_deref());
        let d = d.table(GROUP_FILTERS);
        if !req.group_names.is_empty() {
            let names = self.store.read(|tx| tx.doc_field_values::<SecurityGroupRecord>("group_name", None))?;
            if let Some(missing) = req.group_names.iter().find(|n| !names.contains(n)) {
                return Err(Error::new(
                    ErrorCode::NotFound(IdKind::SecurityGroup),
                    format!("The security group '{missing}' does not exist"),
                ));
            }
        }
        self.describe(&d, |g| req.group_names.is_empty() || req.group_names.contains(&g.rec.group_name))
    }

    pub fn security_group_delete(&self, req: &rq::DeleteSecurityGroup) -> Result<String> {
        self.store.transaction(|tx| {
            let g = self.group_lookup(tx, req.group_id.as_deref(), req.group_name.as_deref())?;
            if g.group_name == "default" {
                return Err(Error::new(
                    ErrorCode::CannotDelete,
                    format!("the specified group: \"{}\" name: \"default\" cannot be deleted by a user", g.group_id),
                ));
            }
            let in_use = tx.doc_list::<EniRecord>()?.iter().any(|e| e.groups.contains(&g.group_id));
            let referenced = tx
                .doc_list::<SecurityGroupRecord>()?
                .iter()
                .any(|o| o.group_id != g.group_id && o.rules.iter().any(|r| r.referenced_group_id.as_deref() == Some(&g.group_id)));
            if in_use || referenced {
                return Err(Error::new(ErrorCode::DependencyViolation, format!("resource {} has a dependent object", g.group_id)));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            tx.doc_delete::<SecurityGroupRecord>(&g.group_id)?;
            tx.tag_delete_all(&g.group_id)?;
            Ok(g.group_id)
        })
    }

    /// The rules a change names, in the group's VPC.
    pub(crate) fn rules_of(
        &self,
        tx: &Tx<'_>,
        g: &SecurityGroupRecord,
        req: &rq::SecurityGroupRulesChange,
        egress: bool,
    ) -> Result<Vec<SgRule>> {
        let mut perms = req.ip_permissions.clone();
        if req.ip_protocol.is_some() || req.cidr_ip.is_some() || req.source_security_group_name.is_some() {
            if !perms.is_empty() {
                return Err(Error::combination("The parameter 'ipPermissions' may not be used in combination with 'ipProtocol'"));
            }
            perms.push(rq::IpPermission {
                ip_protocol: Some(req.ip_protocol.clone().unwrap_or_else(|| "-1".into())),
                from_port: req.from_port,
                to_port: req.to_port,
                ip_ranges: req.cidr_ip.iter().map(|c| rq::IpRange { cidr_ip: Some(c.clone()), description: None }).collect(),
                user_id_group_pairs: req
                    .source_security_group_name
                    .iter()
                    .map(|n| rq::UserIdGroupPair { group_name: Some(n.clone()), ..Default::default() })
                    .collect(),
                ..Default::default()
            });
        }
        let mut out = Vec::new();
        for p in &perms {
            let proto = normalise_protocol(p.ip_protocol.as_deref().ok_or_else(|| Error::missing("IpPermissions.N.IpProtocol"))?)?;
            let (from, to) = ports(&proto, p.from_port, p.to_port)?;
            if !p.ipv6_ranges.is_empty() || !p.prefix_list_ids.is_empty() {
                return Err(Error::new(ErrorCode::Unsupported, "IPv6 ranges and prefix lists are not supported."));
            }
            for r in &p.ip_ranges {
                let c = r.cidr_ip.as_deref().ok_or_else(|| Error::missing("CidrIp"))?;
                let cidr: Cidr =
                    c.parse().map_err(|_| Error::new(ErrorCode::InvalidParameterValue, format!("CIDR block {c} is malformed")))?;
                crate::limits::description("IpRanges.N.Description", r.description.as_deref())?;
                out.push(rule(egress, &proto, from, to, Some(cidr.network().to_string()), None, r.description.clone()));
            }
            for pair in &p.user_id_group_pairs {
                let other = match (&pair.group_id, &pair.group_name) {
                    (Some(id), _) => get::<SecurityGroupRecord>(tx, IdKind::SecurityGroup, id)?,
                    (None, Some(name)) => tx
                        .doc_list_by_parent::<SecurityGroupRecord>(&g.vpc_id)?
                        .into_iter()
                        .find(|o| &o.group_name == name)
                        .ok_or_else(|| {
                            Error::new(ErrorCode::NotFound(IdKind::SecurityGroup), format!("The security group '{name}' does not exist"))
                        })?,
                    (None, None) => return Err(Error::missing("GroupId")),
                };
                if other.vpc_id != g.vpc_id {
                    return Err(Error::new(
                        ErrorCode::InvalidParameterValue,
                        format!("Security group {} is in another VPC.", other.group_id),
                    ));
                }
                crate::limits::description("UserIdGroupPairs.N.Description", pair.description.as_deref())?;
                out.push(rule(egress, &proto, from, to, None, Some(other.group_id), pair.description.clone()));
            }
            if p.ip_ranges.is_empty() && p.user_id_group_pairs.is_empty() {
                return Err(Error::missing("IpPermissions.N.IpRanges or UserIdGroupPairs"));
            }
        }
        Ok(out)
    }

    pub fn security_group_authorize(&self, req: &rq::SecurityGroupRulesChange, dir: Direction) -> Result<RuleChange> {
        let egress = dir == Direction::Egress;
        if egress && req.group_id.is_none() {
            return Err(Error::missing("GroupId"));
        }
        let out = self.store.transaction(|tx| {
            let mut g = self.group_lookup(tx, req.group_id.as_deref(), req.group_name.as_deref())?;
            let new = self.rules_of(tx, &g, req, egress)?;
            if new.is_empty() {
                return Err(Error::missing("IpPermissions"));
            }
            for r in &new {
                if g.rules.iter().any(|e| same_rule(e, r)) || new.iter().filter(|o| same_rule(o, r)).count() > 1 {
                    let peer = r.cidr_ipv4.clone().or(r.referenced_group_id.clone()).unwrap_or_default();
                    return Err(Error::new(
                        ErrorCode::InvalidPermissionDuplicate,
                        format!(
                            "the specified rule \"peer: {peer}, {}, from port: {}, to port: {}, ALLOW\" already exists",
                            r.ip_protocol.to_uppercase(),
                            r.from_port,
                            r.to_port
                        ),
                    ));
                }
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            g.rules.extend(new.iter().cloned());
            self.config.quotas.check("rules-per-group", g.rules.iter().filter(|r| r.is_egress == egress).count())?;
            g.generation += 1;
            tx.doc_put(&g)?;
            Ok(RuleChange { group_id: g.group_id, rules: new })
        })?;
        self.kick_host();
        Ok(out)
    }

    pub fn security_group_revoke(&self, req: &rq::SecurityGroupRulesChange, dir: Direction) -> Result<RuleChange> {
        let egress = dir == Direction::Egress;
        let out = self.store.transaction(|tx| {
            let mut g = self.group_lookup(tx, req.group_id.as_deref(), req.group_name.as_deref())?;
            let mut gone = Vec::new();
            if !req.security_group_rule_ids.is_empty() {
                for id in &req.security_group_rule_ids {
                    parse_id(IdKind::SecurityGroupRule, id)?;
                    let r = g
                        .rules
                        .iter()
                        .find(|r| &r.rule_id == id && r.is_egress == egress)
                        .ok_or_else(|| Error::not_found(IdKind::SecurityGroupRule, id))?;
                    gone.push(r.clone());
                }
            } else if req.ip_permissions.iter().any(|p| !p.ipv6_ranges.is_empty() || !p.prefix_list_ids.is_empty()) {
                // No IPv6 or prefix-list rule can exist here, so there is none to revoke (the
                // answer Terraform's aws_security_group expects for the default ::/0 egress).
                return Err(Error::new(ErrorCode::InvalidPermissionNotFound, "The specified rule does not exist in this security group."));
            } else {
                for r in self.rules_of(tx, &g, req, egress)? {
                    let found = g.rules.iter().find(|e| same_rule(e, &r)).ok_or_else(|| {
                        Error::new(ErrorCode::InvalidPermissionNotFound, "The specified rule does not exist in this security group.")
                    })?;
                    gone.push(found.clone());
                }
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            g.rules.retain(|r| !gone.iter().any(|x| x.rule_id == r.rule_id));
            g.generation += 1;
            tx.doc_put(&g)?;
            Ok(RuleChange { group_id: g.group_id, rules: gone })
        })?;
        self.kick_host();
        Ok(out)
    }
}
