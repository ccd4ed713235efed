//! Query form → JSON value keyed by botocore member names.
//!
//! `Filter.1.Name=a&Filter.1.Value.1=b` becomes `{"Filters":[{"Name":"a","Values":["b"]}]}`
//! for DescribeInstances, because the model says `Filters` is serialised as `Filter`, is a
//! list (flattened, 1-based indices) of `Filter` structures whose `Values` serialise as
//! `Value`. Types are checked here (integers, booleans); meaning is checked by the caller.

use crate::model::{Model, Shape, ShapeKind};
use corral_types::{Error, ErrorCode};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The most dot-separated parts a parameter name may have. EC2's deepest names have about
/// seven (`LaunchTemplateData.NetworkInterface.1.PrivateIpAddresses.1.PrivateIpAddress`).
pub const MAX_NAME_PARTS: usize = 16;
/// The most items one list of a request may hold (AWS takes up to 1,000 ids in the calls that
/// document a bound: TerminateInstances, CreateTags' resources); a longer one is refused
/// before anything reads it.
pub const MAX_LIST_ITEMS: usize = 1000;
/// The most parameters one request may carry. The body limit (1 MiB) alone let a request of
/// 45,000 parameters cost half a second and 90 MiB before its first list was refused.
pub const MAX_PARAMS: usize = 10_000;
/// The most filter values one call may carry, over all its filters (EC2's
/// `FilterLimitExceeded`: "The maximum number of filter values specified on a single call is
/// 200").
pub const MAX_FILTER_VALUES: usize = 200;

#[derive(Default, Debug)]
struct Node {
    value: Option<String>,
    children: BTreeMap<String, Node>,
}

/// Decodes the parameters of `action` (everything but `Action`, `Version` and authentication
/// parameters, which the caller removes). Fails with `InvalidAction` for an unknown action,
/// `UnknownParameter` for a parameter the action lacks, `InvalidParameterValue` for a value of
/// the wrong type.
pub fn decode(action: &str, params: &[(String, String)]) -> Result<Value, Error> {
    let model = Model::get();
    if !model.has_operation(action) {
        return Err(Error::new(ErrorCode::InvalidAction, format!("The action {action} is not valid for this web service.")));
    }
    if params.len() > MAX_PARAMS {
        return Err(Error::new(
            ErrorCode::InvalidParameterValue,
            format!("The request carries {} parameters; at most {MAX_PARAMS} are accepted.", params.len()),
        ));
    }
    // A name deeper than any the model has is refused before the tree is built: the tree of
    // `Filter.........=1` (100,000 dots, well inside the body limit) overflowed the stack
    // building and dropping it.
    if let Some((k, _)) = params.iter().find(|(k, _)| k.split('.').nth(MAX_NAME_PARTS).is_some()) {
        let shown: String = k.chars().take(64).collect();
        return Err(unknown(&format!("{shown}...")));
    }
    let mut root = Node::default();
    for (k, v) in params {
        let mut node = &mut root;
        for part in k.split('.') {
            node = node.children.entry(part.to_string()).or_default();
        }
        node.value = Some(v.clone());
    }
    match model.input(action) {
        Some(shape) => {
            let v = structure(shape, root, "")?;
            let values: usize = v
                .get("Filters")
                .and_then(Value::as_array)
                .map(|fs| fs.iter().map(|f| f.get("Values").and_then(Value::as_array).map_or(0, Vec::len)).sum())
                .unwrap_or(0);
            if values > MAX_FILTER_VALUES {
                return Err(Error::new(
                    ErrorCode::LimitExceeded("FilterLimitExceeded"),
                    format!("The maximum number of filter values specified on a single call is {MAX_FILTER_VALUES}"),
                ));
            }
            Ok(v)
        }
        None if root.children.is_empty() => Ok(Value::Object(Map::new())),
        None => Err(unknown(root.children.keys().next().map(String::as_str).unwrap_or(""))),
    }
}

fn unknown(name: &str) -> Error {
    Error::new(ErrorCode::UnknownParameter, format!("The parameter {name} is not recognized"))
}

fn structure(shape: Shape<'_>, mut node: Node, path: &str) -> Result<Value, Error> {
    let mut out = Map::new();
    for member in shape.members() {
        let qname = member.query_name();
        if let Some(child) = node.children.remove(&qname) {
            let child_path = join(path, &qname);
            out.insert(member.name.to_string(), value(member.shape(), child, &child_path)?);
        }
    }
    if let Some(extra) = node.children.keys().next() {
        return Err(unknown(&join(path, extra)));
    }
    Ok(Value::Object(out))
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn value(shape: Shape<'_>, node: Node, path: &str) -> Result<Value, Error> {
    match shape.kind() {
        ShapeKind::Structure => structure(shape, node, path),
        ShapeKind::List => {
            let (item_shape, _) = shape.list_member().expect("list has a member shape");
            let mut items: Vec<(u64, Node)> = Vec::new();
            for (k, child) in node.children {
                let idx: u64 = k.parse().ok().filter(|i| *i >= 1).ok_or_else(|| unknown(&join(path, &k)))?;
                items.push((idx, child));
            }
            if items.len() + usize::from(node.value.is_some()) > MAX_LIST_ITEMS {
                return Err(Error::new(
                    ErrorCode::InvalidParameterValue,
                    format!("The list {path} holds {} items; at most {MAX_LIST_ITEMS} are accepted in one request.", items.len()),
                ));
            }
            items.sort_by_key(|(i, _)| *i);
            let mut out = Vec::with_capacity(items.len() + 1);
            // `InstanceId=i-1` without an index: accepted as a one-element list.
            if let Some(v) = node.value {
                out.push(value(item_shape, Node { value: Some(v), children: BTreeMap::new() }, path)?);
            }
            for (i, child) in items {
                out.push(value(item_shape, child, &format!("{path}.{i}"))?);
            }
            Ok(Value::Array(out))
        }
        ShapeKind::Map => {
            // EC2 inputs barely use maps; keep the raw entries.
            let mut out = Map::new();
            for (k, child) in node.children {
                out.insert(k, Value::String(child.value.unwrap_or_default()));
            }
            Ok(Value::Object(out))
        }
        kind => {
            if !node.children.is_empty() {
                let first = node.children.keys().next().cloned().unwrap_or_default();
                return Err(unknown(&join(path, &first)));
            }
            let raw = node.value.unwrap_or_default();
            let v = scalar(kind, raw, path)?;
            in_range(shape, &v, path)?;
            Ok(v)
        }
    }
}

/// The `min`/`max` a model gives an integer shape, enforced as AWS enforces them (the
/// `MaxResults` of most newer Describe calls; ports; protocol numbers).
fn in_range(shape: Shape<'_>, v: &Value, path: &str) -> Result<(), Error> {
    let Some(n) = v.as_i64() else { return Ok(()) };
    let (min, max) = (shape.raw_i64("min"), shape.raw_i64("max"));
    let why = match (min, max) {
        (Some(lo), _) if n < lo => format!("Expecting a value greater than or equal to {lo}."),
        (_, Some(hi)) if n > hi => format!("Expecting a value less than or equal to {hi}."),
        _ => return Ok(()),
    };
    let name = path.rsplit('.').next().unwrap_or(path);
    let mut name = name.to_string();
    if let Some(first) = name.get(0..1) {
        name.replace_range(0..1, &first.to_ascii_lowercase());
    }
    Err(Error::new(ErrorCode::InvalidParameterValue, format!("Value ( {n} ) for parameter {name} is invalid. {why}")))
}

fn scalar(kind: ShapeKind, raw: String, path: &str) -> Result<Value, Error> {
    match kind {
        ShapeKind::Integer | ShapeKind::Long => {
            raw.trim().parse::<i64>().map(Value::from).map_err(|_| Error::invalid_value(path, &raw, "Expected an integer."))
        }
        ShapeKind::Boolean => match raw.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(Error::invalid_value(path, &raw, "Expected a boolean (true or false).")),
        },
        ShapeKind::Double | ShapeKind::Float => raw
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| Error::invalid_value(path, &raw, "Expected a number.")),
        _ => Ok(Value::String(raw)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn lists_and_filter_values_are_bounded() {
        let ids = |n: usize| (1..=n).map(|i| (format!("InstanceId.{i}"), format!("i-{i:08x}"))).collect::<Vec<_>>();
        assert!(decode("TerminateInstances", &ids(MAX_LIST_ITEMS)).is_ok());
        let e = decode("TerminateInstances", &ids(MAX_LIST_ITEMS + 1)).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterValue);
        assert!(e.message.contains("InstanceId"), "{}", e.message);

        let filters = |per: usize, n: usize| {
            let mut p = Vec::new();
            for f in 1..=n {
                p.push((format!("Filter.{f}.Name"), "tag:k".to_string()));
                for v in 1..=per {
                    p.push((format!("Filter.{f}.Value.{v}"), format!("v{v}")));
                }
            }
            p
        };
        assert!(decode("DescribeInstances", &filters(100, 2)).is_ok());
        let e = decode("DescribeInstances", &filters(67, 3)).unwrap_err();
        assert_eq!(e.code, ErrorCode::LimitExceeded("FilterLimitExceeded"));

        // Past the parameter count, refused before anything is built (even names that would
        // each be refused later).
        let many: Vec<(String, String)> = (0..=MAX_PARAMS).map(|i| (format!("Nope{i}"), "x".into())).collect();
        let e = decode("DescribeInstances", &many).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterValue);
        assert!(e.message.contains("parameters"), "{}", e.message);
    }

    #[test]
    fn model_ranges_are_enforced() {
        let e = decode("DescribeVpcs", &p(&[("MaxResults", "1001")])).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterValue);
        assert!(e.message.contains("maxResults"), "{}", e.message);
        assert!(decode("DescribeVpcs", &p(&[("MaxResults", "4")])).is_err());
        assert!(decode("DescribeVpcs", &p(&[("MaxResults", "1000")])).is_ok());
        // No range in the model: the control plane clamps.
        assert!(decode("DescribeVolumes", &p(&[("MaxResults", "1000")])).is_ok());
    }

    #[test]
    fn filters_and_ids() {
        let v = decode(
            "DescribeInstances",
            &p(&[
                ("InstanceId.2", "i-2"),
                ("InstanceId.1", "i-1"),
                ("Filter.1.Name", "instance-state-name"),
                ("Filter.1.Value.1", "running"),
                ("Filter.1.Value.2", "pending"),
                ("MaxResults", "5"),
                ("DryRun", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"InstanceIds":["i-1","i-2"],"Filters":[{"Name":"instance-state-name","Values":["running","pending"]}],"MaxResults":5,"DryRun":true})
        );
    }

    #[test]
    fn indices_sort_numerically() {
        let mut pairs = vec![];
        for i in 1..=11 {
            pairs.push((format!("InstanceId.{i}"), format!("i-{i}")));
        }
        let v = decode("DescribeInstances", &pairs).unwrap();
        assert_eq!(v["InstanceIds"][9], "i-10");
        assert_eq!(v["InstanceIds"][10], "i-11");
    }

    #[test]
    fn nested_run_instances() {
        let v = decode(
            "RunInstances",
            &p(&[
                ("ImageId", "ami-1"),
                ("MinCount", "1"),
                ("MaxCount", "2"),
                ("TagSpecification.1.ResourceType", "instance"),
                ("TagSpecification.1.Tag.1.Key", "Name"),
                ("TagSpecification.1.Tag.1.Value", "web"),
                ("Placement.AvailabilityZone", "local-1a"),
            ]),
        )
        .unwrap();
        assert_eq!(v["TagSpecifications"][0]["Tags"][0]["Key"], "Name");
        assert_eq!(v["Placement"]["AvailabilityZone"], "local-1a");
        assert_eq!(v["MaxCount"], 2);
    }

    #[test]
    fn names_deeper_than_the_model_are_refused_without_building_them() {
        let deep = format!("Filter{}", ".".repeat(100_000));
        let e = decode("DescribeInstances", &p(&[(&deep, "1")])).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownParameter);
        assert!(e.message.len() < 200, "the name is not echoed whole: {} bytes", e.message.len());
        let deep = ["Filter"; 17].join(".");
        assert_eq!(decode("DescribeInstances", &p(&[(&deep, "1")])).unwrap_err().code, ErrorCode::UnknownParameter);
        // The deepest real names still decode.
        let v = decode(
            "CreateLaunchTemplate",
            &p(&[("LaunchTemplateName", "t"), ("LaunchTemplateData.NetworkInterface.1.PrivateIpAddresses.1.PrivateIpAddress", "10.0.0.5")]),
        )
        .unwrap();
        assert_eq!(v["LaunchTemplateData"]["NetworkInterfaces"][0]["PrivateIpAddresses"][0]["PrivateIpAddress"], "10.0.0.5");
    }

    #[test]
    fn errors() {
        assert_eq!(decode("Frobnicate", &[]).unwrap_err().code, ErrorCode::InvalidAction);
        assert_eq!(decode("DescribeInstances", &p(&[("Bogus", "1")])).unwrap_err().code, ErrorCode::UnknownParameter);
        assert_eq!(decode("DescribeInstances", &p(&[("MaxResults", "five")])).unwrap_err().code, ErrorCode::InvalidParameterValue);
        assert_eq!(decode("DescribeInstances", &p(&[("DryRun", "yes")])).unwrap_err().code, ErrorCode::InvalidParameterValue);
        assert_eq!(decode("DescribeInstances", &p(&[("InstanceId.x", "i-1")])).unwrap_err().code, ErrorCode::UnknownParameter);
    }
}

#[cfg(test)]
mod robustness {
    use super::decode;
    use rand::{Rng, SeedableRng};

    /// The decoder faces every request: random keys and values must give an error or a value,
    /// never a panic.
    #[test]
    fn random_forms_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let parts =
            ["Filter", "Value", "Name", "1", "0", "99999999999999999999", "", "InstanceId", "TagSpecification", "Tag", "Key", "x.y", "-1"];
        for _ in 0..5000 {
            let n = rng.gen_range(0..6);
            let params: Vec<(String, String)> = (0..n)
                .map(|_| {
                    let k: Vec<&str> = (0..rng.gen_range(1..5)).map(|_| parts[rng.gen_range(0..parts.len())]).collect();
                    (k.join("."), parts[rng.gen_range(0..parts.len())].to_string())
                })
                .collect();
            for action in ["DescribeInstances", "RunInstances", "CreateTags"] {
                let _ = decode(action, &params);
            }
        }
    }
}
