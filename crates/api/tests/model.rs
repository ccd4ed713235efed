//! Request structs against botocore's EC2 model, for every action served:
//! - every member a struct reads exists in the model (a misspelt member would never be set);
//! - every member the model defines that a struct does not read is refused when a request
//!   gives it a value that asks for something, so no parameter is silently ignored.

use corral_api::dispatch::{check_handled, schema, ACTIONS};
use corral_ec2_query::filter_path::element;
use corral_ec2_query::model::{Shape, ShapeKind};
use corral_ec2_query::schema::Schema;
use corral_ec2_query::Model;
use corral_types::ErrorCode;
use serde_json::{json, Value};

/// The model shape a dotted member path leads to (lists are transparent, as in the schema).
fn shape_at<'m>(mut shape: Shape<'m>, path: &str) -> Option<Shape<'m>> {
    for part in path.split('.') {
        shape = element(shape).member(part)?.shape();
    }
    Some(shape)
}

#[test]
fn every_member_a_struct_reads_is_in_the_model() {
    let model = Model::get();
    let mut wrong = Vec::new();
    for action in ACTIONS {
        let input = model.input(action).expect("served actions have inputs");
        let s = schema(action).expect("schema");
        for path in s.paths() {
            if shape_at(input, &path).is_none() {
                wrong.push(format!("{action}: {path}"));
            }
        }
    }
    assert!(wrong.is_empty(), "request structs name members botocore's model lacks:\n{}", wrong.join("\n"));
}

/// A value for `shape` that asks for something.
fn sample(shape: Shape<'_>, depth: usize) -> Value {
    match shape.kind() {
        ShapeKind::Boolean => json!(true),
        ShapeKind::Integer | ShapeKind::Long => json!(1),
        ShapeKind::Double | ShapeKind::Float => json!(1.5),
        ShapeKind::List => match shape.list_member() {
            Some((item, _)) => json!([sample(item, depth)]),
            None => json!(["x"]),
        },
        // One member is enough to ask for something.
        ShapeKind::Structure if depth < 4 => match shape.members().next() {
            Some(m) => json!({ m.name: sample(m.shape(), depth + 1) }),
            None => json!({ "x": "x" }),
        },
        ShapeKind::Structure | ShapeKind::Map => json!({ "x": "x" }),
        _ => json!("x"),
    }
}

/// Model members (dotted paths) under `shape` that `schema` does not read, not descending into
/// members it does not read at all.
fn unread<'m>(shape: Shape<'m>, schema: &Schema, prefix: &str, out: &mut Vec<(String, Shape<'m>)>) {
    if schema.open {
        return;
    }
    for m in element(shape).members() {
        let path = if prefix.is_empty() { m.name.to_string() } else { format!("{prefix}.{}", m.name) };
        match schema.fields.get(m.name) {
            Some(child) if !child.fields.is_empty() || child.open => unread(m.shape(), child, &path, out),
            Some(_) => {}
            None => out.push((path, m.shape())),
        }
    }
}

/// A request with only `path` set: `{"A": [{"B": value}]}` for `A.B` where A is a list.
fn request_with(shape: Shape<'_>, parts: &[&str], value: Value) -> Value {
    let Some((first, rest)) = parts.split_first() else { return value };
    let mut lists = 0;
    let mut s = shape;
    while s.kind() == ShapeKind::List {
        s = element(s);
        lists += 1;
    }
    let member = s.member(first).expect("member exists");
    let mut inner = json!({ *first: request_with(member.shape(), rest, value) });
    for _ in 0..lists {
        inner = json!([inner]);
    }
    inner
}

#[test]
fn every_member_a_struct_does_not_read_is_refused() {
    let model = Model::get();
    let mut silently_ignored = Vec::new();
    let mut refused = 0;
    for action in ACTIONS {
        let input = model.input(action).expect("input");
        let mut members = Vec::new();
        unread(input, schema(action).expect("schema"), "", &mut members);
        for (path, shape) in members {
            let parts: Vec<&str> = path.split('.').collect();
            let req = request_with(input, &parts, sample(shape, 0));
            match check_handled(action, &req) {
                Err(e) if e.code == ErrorCode::Unsupported && e.message.contains(&path) => refused += 1,
                other => silently_ignored.push(format!("{action}: {path} -> {other:?}")),
            }
        }
    }
    assert!(silently_ignored.is_empty(), "members neither read nor refused:\n{}", silently_ignored.join("\n"));
    assert!(refused > 0, "the model has members Corral does not read yet; each must be refused");
    eprintln!("{refused} model members of served actions are not implemented and are refused");
}
