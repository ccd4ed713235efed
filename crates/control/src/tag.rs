//! Tags: CreateTags, DeleteTags, DescribeTags, and TagSpecifications at creation time.

use crate::{filter, limits, Control};
use corral_ec2_query::requests as rq;
use corral_store::{TagRecord, Tx};
use corral_types::{Error, ErrorCode, IdKind, ResourceId, Result};

fn check_tag(key: &str, value: &str) -> Result<()> {
    if key.is_empty() || key.chars().count() > 128 {
        return Err(Error::invalid_value("Tag.Key", key, "Tag keys must be 1 to 128 characters."));
    }
    if key.starts_with("aws:") {
        return Err(Error::invalid_value("Tag.Key", key, "Tag keys starting with 'aws:' are reserved for internal use"));
    }
    if value.chars().count() > 256 {
        return Err(Error::invalid_value("Tag.Value", value, "Tag values must be at most 256 characters."));
    }
    // Letters, numbers, spaces and punctuation, as AWS documents: no control characters
    // (which XML cannot carry, and which broke every DescribeTags once stored).
    for (param, text) in [("Tag.Key", key), ("Tag.Value", value)] {
        if text.chars().any(char::is_control) {
            return Err(Error::invalid_value(param, text, "Tags may not contain control characters."));
        }
    }
    Ok(())
}

/// The tags of `specs` for resource type `wanted`; refuses resource types not in `allowed`.
pub fn from_specifications(specs: &[rq::TagSpecification], wanted: &str, allowed: &[&str]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for s in specs {
        let rt = s.resource_type.as_deref().ok_or_else(|| Error::missing("TagSpecification.N.ResourceType"))?;
        if !allowed.contains(&rt) {
            return Err(Error::invalid_value("TagSpecification.N.ResourceType", rt, "This resource type is not supported here."));
        }
        if rt != wanted {
            continue;
        }
        for t in &s.tags {
            let key = t.key.clone().ok_or_else(|| Error::missing("Tag.Key"))?;
            let value = t.value.clone().unwrap_or_default();
            check_tag(&key, &value)?;
            out.retain(|(k, _): &(String, String)| *k != key);
            out.push((key, value));
        }
    }
    if out.len() > limits::TAGS_PER_RESOURCE {
        return Err(Error::new(ErrorCode::TagLimitExceeded, "A resource can have at most 50 tags."));
    }
    Ok(out)
}

/// Writes `tags` on a resource inside `tx`; returns them as records.
pub fn insert(tx: &Tx<'_>, resource_id: &str, resource_type: &str, tags: &[(String, String)]) -> Result<Vec<TagRecord>> {
    let mut out = Vec::with_capacity(tags.len());
    for (k, v) in tags {
        let t = TagRecord { resource_id: resource_id.into(), resource_type: resource_type.into(), key: k.clone(), value: v.clone() };
        tx.tag_set(&t)?;
        out.push(t);
    }
    Ok(out)
}

impl Control {
    /// The resources a CreateTags or DeleteTags names, with their tag resource types: every
    /// kind the registry ([`corral_types::KINDS`]) gives a tag type takes tags.
    fn tag_targets(&self, tx: &Tx<'_>, resources: &[String]) -> Result<Vec<(String, &'static str)>> {
        if resources.is_empty() {
            return Err(Error::missing("ResourceId"));
        }
        let mut out = Vec::new();
        let mut missing: Vec<(IdKind, &str)> = Vec::new();
        for id in resources {
            let Some(info) = IdKind::of_id(id).map(IdKind::info).filter(|i| i.tag_type.is_some()) else {
                return Err(Error::new(ErrorCode::InvalidId, format!("The ID '{id}' is not valid")));
            };
            if ResourceId::parse(info.kind, id).is_none() {
                return Err(Error::malformed(info.kind, id));
            }
            if !tx.resource_exists(info.record, id)? {
                missing.push((info.kind, id));
                continue;
            }
            out.push((id.clone(), info.tag_type.unwrap_or_default()));
        }
        if let Some((kind, _)) = missing.first() {
            let same: Vec<&str> = missing.iter().filter(|(k, _)| k == kind).map(|(_, id)| *id).collect();
            return Err(Error::not_found(*kind, &same.join(", ")));
        }
        Ok(out)
    }

    pub fn tags_create(&self, req: &rq::CreateTags) -> Result<()> {
        if req.tags.is_empty() {
            return Err(Error::missing("Tag"));
        }
        let mut pairs = Vec::new();
        for t in &req.tags {
            let key = t.key.clone().ok_or_else(|| Error::missing("Tag.N.Key"))?;
            let value = t.value.clone().unwrap_or_default();
            check_tag(&key, &value)?;
            pairs.push((key, value));
        }
        let instances = self.store.transaction(|tx| {
            let targets = self.tag_targets(tx, &req.resources)?;
            if req.dry_run {
                return Err(Error::dry_run());
            }
            let instances = instance_ids(&targets);
            for (id, rt) in targets {
                insert(tx, &id, rt, &pairs)?;
                let n = tx.tag_list_for(&id)?.len();
                if n > self.config.quotas.get("tags-per-resource") as usize {
                    return Err(Error::new(
                        ErrorCode::TagLimitExceeded,
                        format!("The maximum number of tags for resource {id} has been reached."),
                    ));
                }
            }
            Ok(instances)
        })?;
        self.instance_tags_changed(instances);
        Ok(())
    }

    /// An instance's tags are in its metadata (when its options show them): their part of the
    /// host's desired state is recomputed now.
    fn instance_tags_changed(&self, instances: Vec<String>) {
        if !instances.is_empty() {
            self.host_mark(instances);
        }
    }

    /// Without tags, deletes every tag; a tag with a value deletes only on a match.
    pub fn tags_delete(&self, req: &rq::DeleteTags) -> Result<()> {
        let instances = self.store.transaction(|tx| {
            let targets = self.tag_targets(tx, &req.resources)?;
            if req.dry_run {
                return Err(Error::dry_run());
            }
            let instances = instance_ids(&targets);
            for (id, _) in targets {
                if req.tags.is_empty() {
                    tx.tag_delete_all(&id)?;
                }
                for t in &req.tags {
                    let key = t.key.as_deref().ok_or_else(|| Error::missing("Tag.N.Key"))?;
                    tx.tag_delete(&id, key, t.value.as_deref())?;
                }
            }
            Ok(instances)
        })?;
        self.instance_tags_changed(instances);
        Ok(())
    }

    pub fn tags_describe(&self, req: &rq::DescribeTags) -> Result<(Vec<TagRecord>, Option<String>)> {
        filter::check(&req.filters, &["key", "value", "resource-id", "resource-type"], false)?;
        if req.dry_run {
            return Err(Error::dry_run());
        }
        let all = self.store.read(|tx| tx.tag_list())?;
        let items: Vec<TagRecord> = all
            .into_iter()
            .filter(|t| {
                filter::matches(&req.filters, &[], |n| match n {
                    "key" => vec![t.key.clone()],
                    "value" => vec![t.value.clone()],
                    "resource-id" => vec![t.resource_id.clone()],
                    "resource-type" => vec![t.resource_type.clone()],
                    _ => vec![],
                })
            })
            .collect();
        filter::page(items, req.max_results, req.next_token.as_deref(), (5, 1000))
    }
}

/// The instances among tag targets.
fn instance_ids(targets: &[(String, &str)]) -> Vec<String> {
    targets.iter().filter(|(_, rt)| *rt == "instance").map(|(id, _)| id.clone()).collect()
}
