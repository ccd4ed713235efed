//! DescribeSecurityGroupRules: rules are kept inside their group's record, so a rule's
//! position is its group's position and its place in the group, and a page reads the groups
//! that hold it.

use crate::describe::{Describe, Described, FilterLine, TagMap};
use crate::filter::Tagged;
use crate::security_group::GroupRule;
use crate::Control;
use corral_ec2_query::requests as rq;
use corral_store::{Listed, SecurityGroupRecord, SgRule, TagRecord, Tx};
use corral_types::{IdKind, Result};

/// Rules per group position: more than any group can hold (rules-per-group tops out far lower).
const SLOT_BITS: u32 = 12;

/// A rule with the group that holds it.
pub struct RuleRow {
    pub group_id: String,
    pub rule: SgRule,
}

fn rows(groups: Vec<(i64, SecurityGroupRecord)>) -> Vec<(i64, RuleRow)> {
    groups
        .into_iter()
        .flat_map(|(seq, g)| {
            let group_id = g.group_id;
            g.rules
                .into_iter()
                .enumerate()
                .map(move |(i, rule)| ((seq << SLOT_BITS) | i as i64, RuleRow { group_id: group_id.clone(), rule }))
        })
        .collect()
}

impl Listed for RuleRow {
    /// Conditions are left to the caller's filters (rules are few per group).
    fn page_where(tx: &Tx<'_>, after: i64, limit: usize, _: &[corral_store::Cond]) -> corral_store::Result<Vec<(i64, RuleRow)>> {
        // The group of `after` may hold rules past it: start from that group.
        let mut from = (after >> SLOT_BITS) - 1;
        let mut out = Vec::new();
        loop {
            let groups = SecurityGroupRecord::page(tx, from, 100)?;
            let done = groups.len() < 100;
            if let Some((seq, _)) = groups.last() {
                from = *seq;
            }
            out.extend(rows(groups).into_iter().filter(|(pos, _)| *pos > after));
            if done || out.len() >= limit {
                out.truncate(limit);
                return Ok(out);
            }
        }
    }

    fn with_ids(tx: &Tx<'_>, ids: &[String]) -> corral_store::Result<Vec<(i64, RuleRow)>> {
        Ok(rows(tx.security_groups_with_rules(ids)?).into_iter().filter(|(_, r)| ids.contains(&r.rule.rule_id)).collect())
    }
}

/// A rule as described: with its group and its tags.
pub struct Rule {
    pub row: RuleRow,
    pub tags: Vec<TagRecord>,
}

impl Described for Rule {
    type Record = RuleRow;
    const KIND: IdKind = IdKind::SecurityGroupRule;
    fn record_id(rec: &RuleRow) -> &str {
        &rec.rule.rule_id
    }
    fn assemble(_: &Tx<'_>, recs: Vec<RuleRow>, tags: &mut TagMap) -> Result<Vec<Rule>> {
        Ok(recs.into_iter().map(|row| Rule { tags: tags.remove(&row.rule.rule_id).unwrap_or_default(), row }).collect())
    }
    fn id(&self) -> &str {
        &self.row.rule.rule_id
    }
    fn tags(&self) -> &[TagRecord] {
        &self.tags
    }
}

const RULE_FILTERS: &[FilterLine<Rule>] =
    &[("group-id", |r, _| vec![r.row.group_id.clone()]), ("security-group-rule-id", |r, _| vec![r.row.rule.rule_id.clone()])];

impl Control {
    pub fn security_group_rules_describe(&self, req: &rq::DescribeSecurityGroupRules) -> Result<(Vec<Tagged<GroupRule>>, Option<String>)> {
        let d = Describe::new(&req.security_group_rule_ids, &req.filters, req.dry_run, req.max_results, req.next_token.as_deref());
        let (items, next) = self.describe(&d.table(RULE_FILTERS), |_| true)?;
        Ok((items.into_iter().map(|r| ((r.row.group_id, r.row.rule), r.tags)).collect(), next))
    }
}
