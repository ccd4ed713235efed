//! JSON value keyed by botocore member names → EC2 XML response.
//!
//! Members are emitted under their `locationName`; lists as `<name><item>..</item></name>`.
//! Members absent (or null) in the value are left out, so "every member AWS returns" is the
//! handler's job; a key the model does not have is an [`EncodeError`], caught by tests.

use crate::model::{Model, Shape, ShapeKind};
use crate::xml::{escape, escape_into, DECLARATION};
use crate::XML_NAMESPACE;
use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EncodeError {
    #[error("unknown action {0}")]
    UnknownAction(String),
    #[error("shape {shape} has no member {member}")]
    UnknownMember { shape: String, member: String },
    #[error("member at {path} should be a {expected}")]
    WrongType { path: String, expected: &'static str },
}

/// Where an element is in the response, rendered only when an error names it (building the
/// path of every element was a large part of encoding a long listing).
#[derive(Clone, Copy)]
enum At<'a> {
    Root(&'a str),
    Member(&'a At<'a>, &'a str),
    Item(&'a At<'a>, usize),
}

impl At<'_> {
    fn render(&self) -> String {
        match self {
            At::Root(action) => action.to_string(),
            At::Member(parent, key) => format!("{}.{key}", parent.render()),
            At::Item(parent, i) => format!("{}[{i}]", parent.render()),
        }
    }

    fn wrong(&self, expected: &'static str) -> EncodeError {
        EncodeError::WrongType { path: self.render(), expected }
    }
}

/// Encodes the response of `action`. Actions without an output shape answer
/// `<return>true</return>`, as EC2 does.
pub fn encode(action: &str, request_id: &str, body: &Value) -> Result<String, EncodeError> {
    let model = Model::get();
    if !model.has_operation(action) {
        return Err(EncodeError::UnknownAction(action.to_string()));
    }
    let mut out = String::with_capacity(4096);
    begin(&mut out, action, request_id);
    match model.output(action) {
        Some(shape) => members(shape, body, &At::Root(action), &mut out)?,
        None => out.push_str("<return>true</return>"),
    }
    end(&mut out, action);
    Ok(out)
}

/// The XML declaration, the response element of `action` and its request id.
pub(crate) fn begin(out: &mut String, action: &str, request_id: &str) {
    out.push_str(DECLARATION);
    out.push_str(&format!("<{action}Response xmlns=\"{XML_NAMESPACE}\"><requestId>{}</requestId>", escape(request_id)));
}

pub(crate) fn end(out: &mut String, action: &str) {
    close(out, &format!("{action}Response"));
}

pub(crate) fn open(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
}

pub(crate) fn close(out: &mut String, name: &str) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

pub(crate) fn empty(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(name);
    out.push_str("/>");
}

/// `<name>text</name>`, the text written as given (already escaped, or a number).
fn leaf(out: &mut String, name: &str, text: &str) {
    open(out, name);
    out.push_str(text);
    close(out, name);
}

fn members(shape: Shape<'_>, body: &Value, at: &At<'_>, out: &mut String) -> Result<(), EncodeError> {
    let obj = body.as_object().ok_or_else(|| at.wrong("structure"))?;
    for (key, v) in obj {
        if v.is_null() {
            continue;
        }
        let member = shape.member(key).ok_or_else(|| EncodeError::UnknownMember { shape: shape.name.to_string(), member: key.clone() })?;
        element(member.xml_name(), member.shape(), v, &At::Member(at, key), out)?;
    }
    Ok(())
}

fn element(name: &str, shape: Shape<'_>, v: &Value, at: &At<'_>, out: &mut String) -> Result<(), EncodeError> {
    match shape.kind() {
        ShapeKind::Structure => {
            open(out, name);
            members(shape, v, at, out)?;
            close(out, name);
        }
        ShapeKind::List => {
            let items = v.as_array().ok_or_else(|| at.wrong("list"))?;
            let (item_shape, item_name) = shape.list_member().expect("list has a member");
            if items.is_empty() {
                empty(out, name);
            } else {
                open(out, name);
                for (i, item) in items.iter().enumerate() {
                    element(item_name, item_shape, item, &At::Item(at, i), out)?;
                }
                close(out, name);
            }
        }
        ShapeKind::Map => {
            let obj = v.as_object().ok_or_else(|| at.wrong("map"))?;
            open(out, name);
            for (k, val) in obj {
                out.push_str(&format!("<entry><key>{}</key><value>{}</value></entry>", escape(k), escape(&text(val))));
            }
            close(out, name);
        }
        ShapeKind::Boolean => {
            let b = v.as_bool().ok_or_else(|| at.wrong("boolean"))?;
            leaf(out, name, if b { "true" } else { "false" });
        }
        ShapeKind::Integer | ShapeKind::Long => {
            let n = v.as_i64().ok_or_else(|| at.wrong("integer"))?;
            leaf(out, name, &n.to_string());
        }
        ShapeKind::Double | ShapeKind::Float => {
            let n = v.as_f64().ok_or_else(|| at.wrong("number"))?;
            leaf(out, name, &n.to_string());
        }
        ShapeKind::String | ShapeKind::Timestamp | ShapeKind::Blob => {
            let s = v.as_str().ok_or_else(|| at.wrong("string"))?;
            if s.is_empty() {
                empty(out, name);
            } else {
                open(out, name);
                escape_into(out, s);
                close(out, name);
            }
        }
    }
    Ok(())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_lists_use_location_names() {
        let body = json!({"Reservations":[{"ReservationId":"r-1","OwnerId":"123","Groups":[],"Instances":[
            {"InstanceId":"i-1","State":{"Code":16,"Name":"running"},"EbsOptimized":false,
             "Tags":[{"Key":"Name","Value":"a&b"}]}]}]});
        let xml = encode("DescribeInstances", "req-1", &body).unwrap();
        assert!(xml.contains("<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>req-1</requestId>"));
        assert!(xml.contains("<reservationSet><item>"), "{xml}");
        assert!(xml.contains("<reservationId>r-1</reservationId>"), "{xml}");
        assert!(xml.contains("<groupSet/>"), "{xml}");
        assert!(xml.contains("<instanceState><code>16</code><name>running</name></instanceState>"), "{xml}");
        assert!(xml.contains("<ebsOptimized>false</ebsOptimized>"), "{xml}");
        assert!(xml.contains("<tagSet><item><key>Name</key><value>a&amp;b</value></item></tagSet>"), "{xml}");
    }

    #[test]
    fn misspelt_member_is_an_error() {
        let err = encode("DescribeInstances", "r", &json!({"Reservation":[]})).unwrap_err();
        assert!(matches!(err, EncodeError::UnknownMember { .. }));
        let err = encode("DescribeInstances", "r", &json!({"Reservations":"x"})).unwrap_err();
        assert!(matches!(err, EncodeError::WrongType { .. }));
    }

    #[test]
    fn no_output_shape_returns_true() {
        let xml = encode("CreateTags", "r", &json!({})).unwrap();
        assert!(xml.contains("<return>true</return>"));
    }
}
