//! EC2 filter names are, for the most part, the response members they test, written in
//! kebab case: `metadata-options.http-tokens` is `MetadataOptions.HttpTokens` of an
//! `Instance`, `network-interface.attachment.device-index` is
//! `NetworkInterfaces[].Attachment.DeviceIndex`. This module finds, in botocore's model, the
//! member path a filter name stands for in a response item's shape, and reads that path's
//! values from a rendered item (a JSON value keyed by member names, as views produce). So a
//! Describe whose view renders a member answers the filter on it, with no line of its own.
//!
//! The match is exact where it can be: a segment is a member's kebab name, or its plural
//! (`network-interface` for `NetworkInterfaces`), or several members deep at once
//! (`monitoring-state` for `Monitoring.State`); failing those, a member whose kebab name ends
//! with the segment, when exactly one does (`launch-index` for `AmiLaunchIndex`). A name that
//! resolves to nothing is not a filter of that shape.

use crate::model::{Model, Shape, ShapeKind};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

/// `PrivateIpAddresses` → `private-ip-addresses`.
pub fn kebab(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let chars: Vec<char> = name.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev_lower = chars[i - 1].is_ascii_lowercase() || chars[i - 1].is_ascii_digit();
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev_lower || (next_lower && chars[i - 1].is_ascii_uppercase()) {
                out.push('-');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Through any list to its element's shape.
pub fn element(mut shape: Shape<'_>) -> Shape<'_> {
    while shape.kind() == ShapeKind::List {
        match shape.list_member() {
            Some((item, _)) => shape = item,
            None => break,
        }
    }
    shape
}

/// Filter names that are not their member's name.
const ALIASES: &[(&str, &str, &str)] = &[
    ("Instance", "dns-name", "PublicDnsName"),
    ("Instance", "reason", "StateTransitionReason"),
    ("Instance", "availability-zone-id", "Placement.AvailabilityZoneId"),
    ("InstanceStatus", "instance-status.reachability", "InstanceStatus.Details.Status"),
    ("InstanceStatus", "system-status.reachability", "SystemStatus.Details.Status"),
];

/// Segments that stand for one member where several would match: an interface's `addresses`
/// are its private IP addresses.
const SEGMENT_ALIASES: &[(&str, &str)] = &[("addresses", "PrivateIpAddresses")];

/// A kebab name without its dashes: `vcpu-info` and `v-cpu-info` (VCpuInfo), `in-mbps` and
/// `in-m-bps` (InMBps) are the same words.
fn squashed(s: &str) -> String {
    s.replace('-', "")
}

/// Paths found kept at most: the names that resolve are bounded by the model (each member's
/// few spellings), so this only stops a flood of made-up names that happen to resolve.
const KEPT_MAX: usize = 4096;

/// The member path `filter` stands for in items of shape `item_shape`, if any. Paths found
/// are kept: finding one walks the shape's members, spelling each in kebab case, and the
/// same few names come in every filtered Describe (and for every item they filter in memory).
pub fn resolve(item_shape: &str, filter: &str) -> Option<Vec<String>> {
    type Kept = HashMap<(String, String), Vec<String>>;
    static KEPT: OnceLock<RwLock<Kept>> = OnceLock::new();
    let kept = KEPT.get_or_init(Default::default);
    let key = (item_shape.to_string(), filter.to_string());
    if let Some(path) = kept.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Some(path.clone());
    }
    let path = find(item_shape, filter)?;
    let mut kept = kept.write().unwrap_or_else(|e| e.into_inner());
    if kept.len() < KEPT_MAX {
        kept.insert(key, path.clone());
    }
    Some(path)
}

fn find(item_shape: &str, filter: &str) -> Option<Vec<String>> {
    if let Some((_, _, path)) = ALIASES.iter().find(|(s, f, _)| *s == item_shape && *f == filter) {
        return Some(path.split('.').map(str::to_string).collect());
    }
    let shape = Model::get().shape(item_shape)?;
    let words: Vec<&str> = filter.split('.').collect();
    resolve_in(shape, &words)
}

fn resolve_in(shape: Shape<'_>, segments: &[&str]) -> Option<Vec<String>> {
    let mut path = resolve_segments(shape, segments)?;
    // A path ending on a structure (`CidrBlockState`) means its member of the segment's last
    // word (`state`: CidrBlockState.State).
    if let Some(word) = segments.last().and_then(|l| l.rsplit('-').next()) {
        if let Some(end) = shape_of(shape, &path) {
            let end = element(end);
            if end.kind() == ShapeKind::Structure {
                let whole = segments.last().copied().unwrap_or(word);
                let m = end.members().find(|m| kebab(m.name) == whole).or_else(|| end.members().find(|m| kebab(m.name) == word))?;
                path.push(m.name.to_string());
            }
        }
    }
    Some(path)
}

/// The shape a member path leads to.
fn shape_of<'m>(mut shape: Shape<'m>, path: &[String]) -> Option<Shape<'m>> {
    for p in path {
        shape = element(shape).member(p)?.shape();
    }
    Some(shape)
}

fn resolve_segments(shape: Shape<'_>, segments: &[&str]) -> Option<Vec<String>> {
    let Some((first, rest)) = segments.split_first() else { return Some(vec![]) };
    let shape = element(shape);
    if shape.kind() != ShapeKind::Structure {
        return None;
    }
    let members: Vec<_> = shape.members().collect();
    if let Some((_, name)) = SEGMENT_ALIASES.iter().find(|(seg, _)| seg == first) {
        if let Some(m) = members.iter().find(|m| m.name == *name) {
            if let Some(mut tail) = resolve_in(m.shape(), rest) {
                tail.insert(0, m.name.to_string());
                return Some(tail);
            }
        }
    }
    // A segment naming one member (or its plural).
    for m in &members {
        let k = squashed(&kebab(m.name));
        let first = squashed(first);
        if k == first || k == format!("{first}s") || k == format!("{first}set") || k == format!("{first}es") {
            if let Some(mut tail) = resolve_in(m.shape(), rest) {
                tail.insert(0, m.name.to_string());
                return Some(tail);
            }
        }
    }
    // A segment naming several members deep (`monitoring-state`).
    for m in &members {
        let k = kebab(m.name);
        for prefix in [k.clone(), k.trim_end_matches('s').to_string()] {
            if let Some(inner) = first.strip_prefix(&format!("{prefix}-")) {
                let mut more = vec![inner];
                more.extend_from_slice(rest);
                if let Some(mut tail) = resolve_in(m.shape(), &more) {
                    tail.insert(0, m.name.to_string());
                    return Some(tail);
                }
            }
        }
    }
    // Then: the one member whose name ends with the segment.
    let suffix = format!("-{first}");
    let ends: Vec<_> = members.iter().filter(|m| kebab(m.name).ends_with(&suffix)).collect();
    if let [m] = ends[..] {
        if let Some(mut tail) = resolve_in(m.shape(), rest) {
            tail.insert(0, m.name.to_string());
            return Some(tail);
        }
    }
    // Last: the one structure member the whole rest resolves in (`block-device-mapping.
    // volume-id` is BlockDeviceMappings.Ebs.VolumeId, `tenancy` Placement.Tenancy).
    let inner: Vec<(String, Vec<String>)> = members
        .iter()
        .filter(|m| m.shape().kind() == ShapeKind::Structure)
        .filter_map(|m| resolve_direct(m.shape(), segments).map(|tail| (m.name.to_string(), tail)))
        .collect();
    if let [(name, tail)] = &inner[..] {
        let mut path = vec![name.clone()];
        path.extend(tail.iter().cloned());
        return Some(path);
    }
    None
}

/// [`resolve_in`] without the skip-a-level rule (so skipping stays one level deep).
fn resolve_direct(shape: Shape<'_>, segments: &[&str]) -> Option<Vec<String>> {
    let (first, rest) = segments.split_first()?;
    let shape = element(shape);
    shape.members().find(|m| kebab(m.name) == *first).and_then(|m| {
        let mut tail = resolve_in(m.shape(), rest)?;
        tail.insert(0, m.name.to_string());
        Some(tail)
    })
}

/// The values at `path` in a rendered item, through lists, as EC2's filters compare them
/// (booleans and numbers as text).
pub fn values_at(item: &Value, path: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    collect(item, path, &mut out);
    out
}

fn collect(v: &Value, path: &[String], out: &mut Vec<String>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| collect(i, path, out)),
        _ => match path.split_first() {
            Some((first, rest)) => {
                if let Some(next) = v.get(first) {
                    collect(next, rest, out);
                }
            }
            None => match v {
                Value::String(s) => out.push(s.clone()),
                Value::Bool(b) => out.push(b.to_string()),
                Value::Number(n) => out.push(n.to_string()),
                _ => {}
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(shape: &str, f: &str) -> Option<String> {
        resolve(shape, f).map(|p| p.join("."))
    }

    #[test]
    fn filter_names_find_their_members() {
        assert_eq!(kebab("PrivateIpAddresses"), "private-ip-addresses");
        assert_eq!(kebab("VCpuInfo"), "v-cpu-info");
        assert_eq!(kebab("EbsOptimized"), "ebs-optimized");
        assert_eq!(r("Instance", "metadata-options.http-tokens").as_deref(), Some("MetadataOptions.HttpTokens"));
        assert_eq!(r("Instance", "network-interface.attachment.device-index").as_deref(), Some("NetworkInterfaces.Attachment.DeviceIndex"));
        assert_eq!(r("Instance", "monitoring-state").as_deref(), Some("Monitoring.State"));
        assert_eq!(r("Instance", "hypervisor").as_deref(), Some("Hypervisor"));
        assert_eq!(r("Instance", "launch-index").as_deref(), Some("AmiLaunchIndex"));
        assert_eq!(r("Instance", "no-such-thing"), None);
        assert_eq!(r("InstanceTypeInfo", "vcpu-info.default-cores").as_deref(), Some("VCpuInfo.DefaultCores"));
        assert_eq!(
            r("InstanceTypeInfo", "ebs-info.ebs-optimized-info.baseline-throughput-in-mbps").as_deref(),
            Some("EbsInfo.EbsOptimizedInfo.BaselineThroughputInMBps")
        );
        assert_eq!(r("Instance", "network-interface.addresses.primary").as_deref(), Some("NetworkInterfaces.PrivateIpAddresses.Primary"));
        assert_eq!(r("Instance", "network-interface.ipv6-address").as_deref(), Some("NetworkInterfaces.Ipv6Addresses.Ipv6Address"));
        assert_eq!(r("InstanceTypeInfo", "bare-metal").as_deref(), Some("BareMetal"));
        assert_eq!(r("InstanceTypeInfo", "network-info.ena-support").as_deref(), Some("NetworkInfo.EnaSupport"));
        assert_eq!(r("Instance", "block-device-mapping.volume-id").as_deref(), Some("BlockDeviceMappings.Ebs.VolumeId"));
        assert_eq!(r("Instance", "tenancy").as_deref(), Some("Placement.Tenancy"));
        assert_eq!(r("Instance", "dns-name").as_deref(), Some("PublicDnsName"));
        assert_eq!(r("Vpc", "cidr-block-association.state").as_deref(), Some("CidrBlockAssociationSet.CidrBlockState.State"));
    }

    #[test]
    fn a_kept_path_is_the_one_found_and_its_shape_is_part_of_its_key() {
        for _ in 0..2 {
            assert_eq!(r("Instance", "monitoring-state"), find("Instance", "monitoring-state").map(|p| p.join(".")));
            assert_eq!(r("Vpc", "owner-id").as_deref(), Some("OwnerId"));
            assert_eq!(r("Instance", "owner-id"), None);
            assert_eq!(r("Instance", "no-such-thing"), None);
        }
    }

    #[test]
    fn values_are_read_through_lists() {
        let item =
            json!({"NetworkInterfaces": [{"Attachment": {"DeviceIndex": 0}}, {"Attachment": {"DeviceIndex": 1}}], "EbsOptimized": false});
        let p = resolve("Instance", "network-interface.attachment.device-index").unwrap();
        assert_eq!(values_at(&item, &p), vec!["0", "1"]);
        assert_eq!(values_at(&item, &["EbsOptimized".to_string()]), vec!["false"]);
    }
}
