//! The XML side of `corral_ec2_query`: `xml::escape` and `xml::error_envelope` on any string,
//! and `encode` and the writer (`write::response`, `write::value`) on any value the model
//! allows, generated from the fuzz input by walking the output shape of an action the input
//! picks.
//!
//! Checked, with roxmltree as the reader:
//! - the output is well-formed XML;
//! - read back, it is the value: the response element and namespace, `requestId`, then each
//!   member as the element the model names, lists as their `item` elements, and every text as
//!   given, but for what XML cannot carry (control characters other than tab, newline and
//!   carriage return, U+FFFE, U+FFFF), which reads back as U+FFFD (`xml::escape_into`); a
//!   carriage return survives (it is written as `&#13;`);
//! - a value of the wrong kind or with a member the model lacks is an `EncodeError`, not
//!   output;
//! - the writer, given the same value member by member, writes exactly what `encode` writes,
//!   and in JSON mode gives the value back.

#![no_main]

use arbitrary::{Result, Unstructured};
use corral_ec2_query::model::{Model, Shape, ShapeKind};
use corral_ec2_query::write::{self, Obj};
use corral_ec2_query::{encode, xml, EncodeError, XML_NAMESPACE};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use std::sync::LazyLock;

/// Every operation of the embedded model, in its order.
static OPERATIONS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let raw: Value = serde_json::from_str(include_str!("../../crates/ec2-query/model/ec2-2016-11-15.json")).expect("the model is JSON");
    raw["operations"].as_object().expect("operations").keys().cloned().collect()
});

/// What a text reads back as.
fn readback(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => '\u{fffd}',
            c => c,
        })
        .collect()
}

fn parse(xml: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("not well-formed ({e}): {xml:?}"))
}

/// The element's text, `""` when it has none; it must have no child elements.
fn leaf_text(n: roxmltree::Node<'_, '_>) -> String {
    assert!(n.children().all(|c| c.is_text()), "<{}> should be a leaf", n.tag_name().name());
    n.children().filter_map(|c| c.text()).collect()
}

fn elements<'a, 'i>(n: roxmltree::Node<'a, 'i>) -> Vec<roxmltree::Node<'a, 'i>> {
    assert!(n.children().all(|c| c.is_element()), "<{}> holds text between elements", n.tag_name().name());
    n.children().collect()
}

/// A leaf value generated for a leaf shape, and the text it is written as.
fn scalar(u: &mut Unstructured<'_>, kind: ShapeKind) -> Result<Value> {
    Ok(match kind {
        ShapeKind::Boolean => Value::Bool(u.arbitrary()?),
        ShapeKind::Integer | ShapeKind::Long => Value::from(u.arbitrary::<i64>()?),
        ShapeKind::Double | ShapeKind::Float => {
            let f: f64 = u.arbitrary()?;
            serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::from(0))
        }
        _ => Value::String(u.arbitrary()?),
    })
}

/// What a generated value needs of the writer.
#[derive(Default)]
struct Gen {
    /// A list of non-structures, a double: values the writer has no call for.
    writer_cannot: bool,
}

/// A value of `shape`, members and list lengths chosen by `u`, and whether it is wrong: now and
/// then (when `u` says so) a value of the wrong kind or a member the model lacks.
fn value(u: &mut Unstructured<'_>, shape: Shape<'_>, depth: usize, g: &mut Gen) -> Result<(Value, bool)> {
    if u.ratio(1, 64)? {
        let v = match shape.kind() {
            ShapeKind::String | ShapeKind::Timestamp | ShapeKind::Blob => Value::from(1),
            ShapeKind::List | ShapeKind::Structure => Value::String("x".into()),
            _ => Value::Array(vec![]),
        };
        return Ok((v, true));
    }
    Ok(match shape.kind() {
        ShapeKind::Structure => {
            let (obj, wrong) = structure(u, shape, depth, g)?;
            (Value::Object(obj), wrong)
        }
        ShapeKind::List => {
            let (item, _) = shape.list_member().expect("a list has a member");
            let n = if depth >= 5 { 0 } else { u.int_in_range(0..=3)? };
            if n > 0 && item.kind() != ShapeKind::Structure {
                g.writer_cannot = true;
            }
            let (mut items, mut wrong) = (Vec::with_capacity(n), false);
            for _ in 0..n {
                let (v, w) = value(u, item, depth + 1, g)?;
                items.push(v);
                wrong |= w;
            }
            (Value::Array(items), wrong)
        }
        ShapeKind::Map => {
            g.writer_cannot = true;
            let mut m = Map::new();
            for _ in 0..u.int_in_range(0..=2)? {
                m.insert(u.arbitrary()?, Value::String(u.arbitrary()?));
            }
            (Value::Object(m), false)
        }
        k @ (ShapeKind::Double | ShapeKind::Float) => {
            g.writer_cannot = true;
            (scalar(u, k)?, false)
        }
        k => (scalar(u, k)?, false),
    })
}

/// A structure of `shape`: some of its members (now and then one left out as `null`).
fn structure(u: &mut Unstructured<'_>, shape: Shape<'_>, depth: usize, g: &mut Gen) -> Result<(Map<String, Value>, bool)> {
    let members: Vec<_> = shape.members().collect();
    let mut obj = Map::new();
    let mut wrong: std::collections::BTreeSet<String> = Default::default();
    if !members.is_empty() && depth < 6 {
        for _ in 0..u.int_in_range(0..=5)? {
            let m = members[u.choose_index(members.len())?];
            let (v, w) = if u.ratio(1, 16)? { (Value::Null, false) } else { value(u, m.shape(), depth + 1, g)? };
            obj.insert(m.name.to_string(), v);
            if w {
                wrong.insert(m.name.to_string());
            } else {
                wrong.remove(m.name);
            }
        }
    }
    if u.ratio(1, 64)? {
        obj.insert("NoSuchMember\u{1}".into(), Value::from(1));
        wrong.insert(String::new());
    }
    Ok((obj, !wrong.is_empty()))
}

/// The element `n` (named `name`) holds `v`, a value of `shape`, as the encoder writes it.
fn check_element(n: roxmltree::Node<'_, '_>, name: &str, shape: Shape<'_>, v: &Value) {
    assert_eq!(n.tag_name().name(), name);
    assert_eq!(n.tag_name().namespace(), Some(XML_NAMESPACE));
    match shape.kind() {
        ShapeKind::Structure => check_members(n, shape, v.as_object().expect("checked by encode")),
        ShapeKind::List => {
            let (item, item_name) = shape.list_member().expect("a list has a member");
            let items = v.as_array().expect("checked by encode");
            let children = elements(n);
            assert_eq!(children.len(), items.len(), "<{name}>");
            for (c, i) in children.into_iter().zip(items) {
                check_element(c, item_name, item, i);
            }
        }
        ShapeKind::Map => {
            let obj = v.as_object().expect("checked by encode");
            let entries = elements(n);
            assert_eq!(entries.len(), obj.len());
            for (e, (k, val)) in entries.into_iter().zip(obj) {
                let kv = elements(e);
                assert_eq!(kv.len(), 2);
                assert_eq!(leaf_text(kv[0]), readback(k));
                assert_eq!(leaf_text(kv[1]), readback(val.as_str().expect("strings")));
            }
        }
        ShapeKind::Boolean => assert_eq!(leaf_text(n), v.as_bool().expect("checked").to_string()),
        ShapeKind::Integer | ShapeKind::Long => assert_eq!(leaf_text(n), v.as_i64().expect("checked").to_string()),
        ShapeKind::Double | ShapeKind::Float => {
            let back: f64 = leaf_text(n).parse().expect("a number");
            assert_eq!(back, v.as_f64().expect("checked"));
        }
        ShapeKind::String | ShapeKind::Timestamp | ShapeKind::Blob => assert_eq!(leaf_text(n), readback(v.as_str().expect("checked"))),
    }
}

/// `n`'s child elements are `obj`'s non-null members, in its order.
fn check_members(n: roxmltree::Node<'_, '_>, shape: Shape<'_>, obj: &Map<String, Value>) {
    let present: Vec<(&String, &Value)> = obj.iter().filter(|(_, v)| !v.is_null()).collect();
    let children = elements(n);
    assert_eq!(children.len(), present.len(), "<{}>", n.tag_name().name());
    for (c, (k, v)) in children.into_iter().zip(present) {
        let m = shape.member(k).expect("checked by encode");
        check_element(c, m.xml_name(), m.shape(), v);
    }
}

/// Writes `obj` (a value of `shape` the writer can write) member by member.
fn write_members(o: &mut Obj<'_>, shape: Shape<'static>, obj: &Map<String, Value>) {
    for (k, v) in obj {
        if v.is_null() {
            continue;
        }
        let m = shape.member(k).expect("a member");
        let ms = m.shape();
        match ms.kind() {
            ShapeKind::String | ShapeKind::Timestamp | ShapeKind::Blob => {
                o.str(k, v.as_str().expect("a string"));
            }
            ShapeKind::Boolean => {
                o.bool(k, v.as_bool().expect("a bool"));
            }
            ShapeKind::Integer | ShapeKind::Long => {
                o.int(k, v.as_i64().expect("an integer"));
            }
            ShapeKind::Structure => {
                o.obj(k, |c| write_members(c, ms, v.as_object().expect("an object")));
            }
            ShapeKind::List => {
                let items = v.as_array().expect("a list");
                if items.is_empty() {
                    o.empty(k);
                } else {
                    let (item, _) = ms.list_member().expect("a list has a member");
                    o.list(k, items, |c, i| write_members(c, item, i.as_object().expect("structures")));
                }
            }
            ShapeKind::Map | ShapeKind::Double | ShapeKind::Float => unreachable!("the writer cannot write {k}"),
        }
    }
}

fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), without_nulls(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        v => v.clone(),
    }
}

fn check_text(s: &str) {
    let text = format!("<a>{}</a>", xml::escape(s));
    let doc = parse(&text);
    assert_eq!(doc.root_element().text().unwrap_or(""), readback(s));
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    // Any string, alone and in the error envelope.
    let (code, message, request_id): (String, String, String) = u.arbitrary()?;
    check_text(&message);
    let env = xml::error_envelope(&code, &message, &request_id);
    let doc = parse(&env);
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "Response");
    let text_of = |name: &str| leaf_text(root.descendants().find(|n| n.has_tag_name(name)).expect(name));
    assert_eq!([text_of("Code"), text_of("Message"), text_of("RequestID")], [readback(&code), readback(&message), readback(&request_id)]);

    // A response the model allows, or one it does not.
    let ops = &*OPERATIONS;
    let action = ops[u.choose_index(ops.len())?].as_str();
    let model = Model::get();
    let mut g = Gen::default();
    let (body, wrong) = match model.output(action) {
        Some(shape) => {
            let (obj, wrong) = structure(u, shape, 0, &mut g)?;
            (Value::Object(obj), wrong)
        }
        None => (Value::Object(Map::new()), false),
    };
    let encoded = encode(action, &request_id, &body);
    if wrong {
        let e = encoded.expect_err("a wrong value is refused");
        assert!(matches!(e, EncodeError::WrongType { .. } | EncodeError::UnknownMember { .. }), "{e:?}");
        return Ok(());
    }
    let xml = encoded.unwrap_or_else(|e| panic!("{action}: {e}: {body}"));
    let doc = parse(&xml);
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), format!("{action}Response"));
    let children = elements(root);
    let (first, rest) = children.split_first().expect("requestId");
    assert_eq!(first.tag_name().name(), "requestId");
    assert_eq!(leaf_text(*first), readback(&request_id));
    match model.output(action) {
        Some(shape) => {
            let obj = body.as_object().expect("an object");
            let present: Vec<_> = obj.iter().filter(|(_, v)| !v.is_null()).collect();
            assert_eq!(rest.len(), present.len());
            for (c, (k, v)) in rest.iter().zip(present) {
                let m = shape.member(k).expect("checked by encode");
                check_element(*c, m.xml_name(), m.shape(), v);
            }

            if !g.writer_cannot {
                let obj = obj.clone();
                let written = write::response(action, &request_id, |o| write_members(o, shape, &obj)).expect("the writer takes it");
                assert_eq!(written, xml, "the writer and the encoder differ");
                let json = write::value(shape.name, |o| write_members(o, shape, &obj)).expect("the writer takes it");
                assert_eq!(json, without_nulls(&body));
            }
        }
        None => {
            assert_eq!(rest.len(), 1);
            assert_eq!(rest[0].tag_name().name(), "return");
            assert_eq!(leaf_text(rest[0]), "true");
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
});
