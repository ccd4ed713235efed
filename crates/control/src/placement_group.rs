//! Placement groups (CreatePlacementGroup, DescribePlacementGroups, DeletePlacementGroup): a
//! named group with a strategy (`cluster`, `spread` or `partition`), as Terraform's
//! `aws_placement_group` and Ansible's `ec2_placement_group` manage them. Every host is one
//! rack here, so a group changes nothing about where instances run; it is kept, tagged and
//! described as on AWS.
//!
//! A whole resource kind in one file: its record (a store document), its rules and its filter
//! table, through the generic Describe path.

use crate::describe::{Describe, FilterLine};
use crate::{tag, Control};
use corral_ec2_query::requests as rq;
use corral_store::{Doc, TagRecord};
use corral_types::{Error, ErrorCode, IdKind, ResourceId, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementGroupRecord {
    pub group_id: String,
    pub group_name: String,
    pub strategy: String,
    /// Partitions of a `partition` group (AWS's default is 2).
    pub partition_count: Option<i64>,
    /// `rack` or `host` for a `spread` group.
    pub spread_level: Option<String>,
}

impl Doc for PlacementGroupRecord {
    const KIND: &'static str = "placement-group";
    fn id(&self) -> &str {
        &self.group_id
    }
}

pub struct PlacementGroup {
    pub rec: PlacementGroupRecord,
    pub tags: Vec<TagRecord>,
}

crate::described_as_tagged!(PlacementGroup, PlacementGroupRecord, IdKind::PlacementGroup, group_id);

/// DescribePlacementGroups' filters besides those its view answers. Every group is
/// `available` from its creation.
const FILTERS: &[FilterLine<PlacementGroup>] = &[
    ("group-name", |g, _| vec![g.rec.group_name.clone()]),
    ("state", |_, _| vec!["available".into()]),
    ("strategy", |g, _| vec![g.rec.strategy.clone()]),
    ("spread-level", |g, _| g.rec.spread_level.iter().cloned().collect()),
    ("group-arn", |g, s| vec![arn(g, s.region, s.account_id)]),
];

/// The group's ARN.
pub fn arn(g: &PlacementGroup, region: &str, account: &str) -> String {
    format!("arn:aws:ec2:{region}:{account}:placement-group/{}", g.rec.group_name)
}

fn unknown(name: &str) -> Error {
    Error::new(ErrorCode::NotFound(IdKind::PlacementGroup), format!("The Placement Group '{name}' is unknown."))
}

/// Checks a new group's settings as AWS does; returns (partition count, spread level).
fn settings(req: &rq::CreatePlacementGroup, strategy: &str) -> Result<(Option<i64>, Option<String>)> {
    if !["cluster", "spread", "partition"].contains(&strategy) {
        return Err(Error::invalid_value("strategy", strategy, "Valid values are cluster, spread and partition."));
    }
    let partitions = match (strategy, req.partition_count) {
        ("partition", None) => Some(2),
        ("partition", Some(n)) if (1..=7).contains(&n) => Some(n),
        ("partition", Some(n)) => return Err(Error::invalid_value("partitionCount", &n.to_string(), "Valid values are 1 to 7.")),
        (_, Some(_)) => return Err(Error::combination("PartitionCount applies only to the partition strategy.")),
        (_, None) => None,
    };
    let spread = match (strategy, req.spread_level.as_deref()) {
        ("spread", None) => Some("rack".to_string()),
        ("spread", Some(l @ ("rack" | "host"))) => Some(l.to_string()),
        ("spread", Some(l)) => return Err(Error::invalid_value("spreadLevel", l, "Valid values are host and rack.")),
        (_, Some(_)) => return Err(Error::combination("SpreadLevel applies only to the spread strategy.")),
        (_, None) => None,
    };
    Ok((partitions, spread))
}

impl Control {
    pub fn placement_group_create(&self, req: &rq::CreatePlacementGroup) -> Result<PlacementGroup> {
        let name = req.group_name.as_deref().ok_or_else(|| Error::missing("GroupName"))?;
        if name.is_empty() || name.len() > 255 || !name.is_ascii() {
            return Err(Error::invalid_value("groupName", name, "Names are 1 to 255 ASCII characters."));
        }
        let strategy = req.strategy.as_deref().ok_or_else(|| Error::missing("Strategy"))?;
        let (partition_count, spread_level) = settings(req, strategy)?;
        let tags = tag::from_specifications(&req.tag_specifications, "placement-group", &["placement-group"])?;
        if req.dry_run {
            return Err(Error::dry_run());
        }
        self.store.transaction(|tx| {
            if tx.doc_field_values::<PlacementGroupRecord>("group_name", None)?.iter().any(|n| n == name) {
                return Err(Error::new(
                    ErrorCode::Duplicate(IdKind::PlacementGroup),
                    format!("The Placement Group '{name}' already exists."),
                ));
            }
            let rec = PlacementGroupRecord {
                group_id: ResourceId::generate(IdKind::PlacementGroup).into_string(),
                group_name: name.to_string(),
                strategy: strategy.to_string(),
                partition_count,
                spread_level,
            };
            tx.doc_put(&rec)?;
            let tags = tag::insert(tx, &rec.group_id, "placement-group", &tags)?;
            Ok(PlacementGroup { rec, tags })
        })
    }

    pub fn placement_group_describe(&self, req: &rq::DescribePlacementGroups) -> Result<Vec<PlacementGroup>> {
        if !req.group_names.is_empty() {
            let names = self.store.read(|tx| tx.doc_field_values::<PlacementGroupRecord>("group_name", None))?;
            if let Some(missing) = req.group_names.iter().find(|n| !names.contains(n)) {
                return Err(unknown(missing));
            }
        }
        let d = Describe::new(&req.group_ids, &req.filters, req.dry_run, None, None).table(FILTERS);
        let (items, _) = self.describe(&d, |g| req.group_names.is_empty() || req.group_names.contains(&g.rec.group_name))?;
        Ok(items)
    }

    pub fn placement_group_delete(&self, req: &rq::DeletePlacementGroup) -> Result<()> {
        let name = req.group_name.as_deref().ok_or_else(|| Error::missing("GroupName"))?;
        self.store.transaction(|tx| {
            // A region holds at most 500 groups (AWS's quota): finding one by name reads them.
            let g = tx.doc_list::<PlacementGroupRecord>()?.into_iter().find(|g| g.group_name == name).ok_or_else(|| unknown(name))?;
            if req.dry_run {
                return Err(Error::dry_run());
            }
            tx.doc_delete::<PlacementGroupRecord>(&g.group_id)?;
            tx.tag_delete_all(&g.group_id)?;
            Ok(())
        })
    }
}
