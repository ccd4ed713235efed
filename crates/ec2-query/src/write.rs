//! A response written member by member, checked against the model as it goes, straight into
//! EC2's XML, or into the JSON value [`crate::encode`] takes (for filters answered from the
//! rendered item, and for views that embed another).
//!
//! One view function serves both: it calls [`Obj::str`], [`Obj::obj`], [`Obj::list`]... with
//! botocore member names, and the writer resolves each against the shape it is writing (its
//! XML name, and whether the value is of the member's kind). A long listing written this way
//! builds no tree: a page of 100 instances built and dropped about 60,000 JSON nodes before it
//! was encoded.

use crate::encode::{begin, close, empty, end, open, EncodeError};
use crate::model::{Model, Shape, ShapeKind};
use crate::xml::escape_into;
use serde_json::{Map, Value};

enum To<'a> {
    Xml(&'a mut String),
    Json(Map<String, Value>),
}

/// A structure being written: its shape, and where it goes.
pub struct Obj<'a> {
    shape: Shape<'static>,
    to: To<'a>,
    err: Option<EncodeError>,
}

/// The XML response of `action`, its output structure written by `f`.
pub fn response(action: &str, request_id: &str, f: impl FnOnce(&mut Obj<'_>)) -> Result<String, EncodeError> {
    let shape = Model::get().output(action).ok_or_else(|| EncodeError::UnknownAction(action.to_string()))?;
    let mut out = String::with_capacity(16 * 1024);
    begin(&mut out, action, request_id);
    let mut root = Obj { shape, to: To::Xml(&mut out), err: None };
    f(&mut root);
    if let Some(e) = root.err {
        return Err(e);
    }
    end(&mut out, action);
    Ok(out)
}

/// A structure's members written as XML ahead of time, to be placed where a structure of the
/// same shape is written ([`Obj::fragment`]): a rendering kept and written again as it is.
#[derive(Debug, Clone)]
pub struct Fragment {
    shape: &'static str,
    xml: std::sync::Arc<str>,
}

/// The members of a structure of shape `shape`, written by `f` as XML, for [`Obj::fragment`].
pub fn fragment(shape: &str, f: impl FnOnce(&mut Obj<'_>)) -> Result<Fragment, EncodeError> {
    let shape = Model::get().shape(shape).ok_or_else(|| EncodeError::UnknownMember { shape: shape.into(), member: String::new() })?;
    let mut out = String::with_capacity(4 * 1024);
    let mut obj = Obj { shape, to: To::Xml(&mut out), err: None };
    f(&mut obj);
    if let Some(e) = obj.err {
        return Err(e);
    }
    Ok(Fragment { shape: shape.name, xml: out.into() })
}

/// The JSON value (keyed by member names) of a structure of shape `shape`, written by `f`.
pub fn value(shape: &str, f: impl FnOnce(&mut Obj<'_>)) -> Result<Value, EncodeError> {
    let shape = Model::get().shape(shape).ok_or_else(|| EncodeError::UnknownMember { shape: shape.into(), member: String::new() })?;
    let mut obj = Obj { shape, to: To::Json(Map::new()), err: None };
    f(&mut obj);
    obj.finish()
}

impl<'a> Obj<'a> {
    fn finish(self) -> Result<Value, EncodeError> {
        match (self.err, self.to) {
            (Some(e), _) => Err(e),
            (None, To::Json(map)) => Ok(Value::Object(map)),
            (None, To::Xml(_)) => Ok(Value::Null),
        }
    }

    fn fail(&mut self, e: EncodeError) {
        self.err.get_or_insert(e);
    }

    /// The member `name` when the shape has it and it is of one of `kinds`.
    fn member(&mut self, name: &str, kinds: &[ShapeKind], expected: &'static str) -> Option<(&'static str, Shape<'static>)> {
        let Some(m) = self.shape.member(name) else {
            self.fail(EncodeError::UnknownMember { shape: self.shape.name.to_string(), member: name.to_string() });
            return None;
        };
        let shape = m.shape();
        if !kinds.contains(&shape.kind()) {
            self.fail(EncodeError::WrongType { path: format!("{}.{name}", self.shape.name), expected });
            return None;
        }
        Some((m.xml_name(), shape))
    }

    /// A child structure of `shape`, written by `f`: its JSON value, or Null when written as XML.
    fn child(&mut self, shape: Shape<'static>, f: impl FnOnce(&mut Obj<'_>)) -> Option<Value> {
        let to = match &mut self.to {
            To::Xml(out) => To::Xml(out),
            To::Json(_) => To::Json(Map::new()),
        };
        let mut child = Obj { shape, to, err: None };
        f(&mut child);
        match child.finish() {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    fn leaf(&mut self, name: &str, xml_name: &str, text: &str, json: impl FnOnce() -> Value) {
        match &mut self.to {
            To::Xml(out) if text.is_empty() => empty(out, xml_name),
            To::Xml(out) => {
                open(out, xml_name);
                escape_into(out, text);
                close(out, xml_name);
            }
            To::Json(map) => {
                map.insert(name.to_string(), json());
            }
        }
    }

    pub fn str(&mut self, name: &str, v: &str) -> &mut Self {
        if let Some((xml, _)) = self.member(name, &[ShapeKind::String, ShapeKind::Timestamp, ShapeKind::Blob], "string") {
            self.leaf(name, xml, v, || Value::String(v.to_string()));
        }
        self
    }

    /// The members `f` holds, written here as they were written there. `f` must have been made
    /// for this structure's shape, and only XML takes it.
    pub fn fragment(&mut self, f: &Fragment) -> &mut Self {
        match &mut self.to {
            To::Xml(out) if f.shape == self.shape.name => out.push_str(&f.xml),
            _ => self.fail(EncodeError::WrongType {
                path: format!("{} (a fragment of {})", self.shape.name, f.shape),
                expected: "XML of this shape",
            }),
        }
        self
    }

    /// A string member left out when there is none.
    pub fn opt_str(&mut self, name: &str, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.str(name, v),
            None => self,
        }
    }

    pub fn bool(&mut self, name: &str, v: bool) -> &mut Self {
        if let Some((xml, _)) = self.member(name, &[ShapeKind::Boolean], "boolean") {
            self.leaf(name, xml, if v { "true" } else { "false" }, || Value::Bool(v));
        }
        self
    }

    pub fn int(&mut self, name: &str, v: i64) -> &mut Self {
        if let Some((xml, _)) = self.member(name, &[ShapeKind::Integer, ShapeKind::Long], "integer") {
            self.leaf(name, xml, &v.to_string(), || Value::from(v));
        }
        self
    }

    /// A structure member, written by `f`.
    pub fn obj(&mut self, name: &str, f: impl FnOnce(&mut Obj<'_>)) -> &mut Self {
        let Some((xml, shape)) = self.member(name, &[ShapeKind::Structure], "structure") else { return self };
        if let To::Xml(out) = &mut self.to {
            open(out, xml);
        }
        let v = self.child(shape, f);
        match &mut self.to {
            To::Xml(out) => close(out, xml),
            To::Json(map) => {
                if let Some(v) = v {
                    map.insert(name.to_string(), v);
                }
            }
        }
        self
    }

    /// A list of structures, each written by `f`.
    pub fn list<I: IntoIterator>(&mut self, name: &str, items: I, mut f: impl FnMut(&mut Obj<'_>, I::Item)) -> &mut Self {
        let Some((xml, shape)) = self.member(name, &[ShapeKind::List], "list") else { return self };
        let (item_shape, item_xml) = shape.list_member().expect("a list has a member");
        if item_shape.kind() != ShapeKind::Structure {
            self.fail(EncodeError::WrongType { path: format!("{}.{name}[]", self.shape.name), expected: "structure" });
            return self;
        }
        let mut items = items.into_iter().peekable();
        let mut values = Vec::new();
        match &mut self.to {
            To::Xml(out) if items.peek().is_none() => {
                empty(out, xml);
                return self;
            }
            To::Xml(out) => open(out, xml),
            To::Json(_) => {}
        }
        for item in items {
            if let To::Xml(out) = &mut self.to {
                open(out, item_xml);
            }
            let v = self.child(item_shape, |o| f(o, item));
            match &mut self.to {
                To::Xml(out) => close(out, item_xml),
                To::Json(_) => values.extend(v),
            }
        }
        match &mut self.to {
            To::Xml(out) => close(out, xml),
            To::Json(map) => {
                map.insert(name.to_string(), Value::Array(values));
            }
        }
        self
    }

    /// An empty list (of anything).
    pub fn empty(&mut self, name: &str) -> &mut Self {
        if let Some((xml, _)) = self.member(name, &[ShapeKind::List], "list") {
            match &mut self.to {
                To::Xml(out) => empty(out, xml),
                To::Json(map) => {
                    map.insert(name.to_string(), Value::Array(vec![]));
                }
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::encode;

    fn reservation(o: &mut Obj<'_>) {
        o.list("Reservations", [1], |r, _| {
            r.str("ReservationId", "r-1").str("OwnerId", "123").list("Groups", Vec::<()>::new(), |_, _| {});
            r.list("Instances", ["i-1"], |i, id| {
                i.str("InstanceId", id)
                    .obj("State", |s| {
                        s.int("Code", 16).str("Name", "running");
                    })
                    .bool("EbsOptimized", false)
                    .list("Tags", [("Name", "a&b")], |t, (k, v)| {
                        t.str("Key", k).str("Value", v);
                    })
                    .str("PrivateDnsName", "");
            });
        });
    }

    fn instance(i: &mut Obj<'_>) {
        i.str("InstanceId", "i-1").obj("State", |s| {
            s.int("Code", 16).str("Name", "running");
        });
    }

    #[test]
    fn a_fragment_is_written_where_its_shape_is_and_nowhere_else() {
        let f = fragment("Instance", instance).unwrap();
        let list = |o: &mut Obj<'_>, place: &dyn Fn(&mut Obj<'_>)| {
            o.list("Reservations", [1], |r, _| {
                r.str("ReservationId", "r-1").list("Instances", [1], |i, _| place(i));
            });
        };
        let direct = response("DescribeInstances", "req-1", |o| list(o, &instance)).unwrap();
        let placed = response("DescribeInstances", "req-1", |o| list(o, &|i| _ = i.fragment(&f))).unwrap();
        assert_eq!(placed, direct);
        // In another shape, or into a JSON value, it is an error, not misplaced XML.
        let err = response("DescribeInstances", "req-1", |o| _ = o.fragment(&f)).unwrap_err();
        assert!(matches!(err, EncodeError::WrongType { .. }), "{err:?}");
        let err = value("Instance", |o| _ = o.fragment(&f)).unwrap_err();
        assert!(matches!(err, EncodeError::WrongType { .. }), "{err:?}");
        // A fragment with an error in it is refused when it is made.
        assert!(fragment("Instance", |o| _ = o.str("NoSuchMember", "x")).is_err());
    }

    #[test]
    fn writes_what_the_encoder_writes_for_the_same_value() {
        let direct = response("DescribeInstances", "req-1", reservation).unwrap();
        let v = value("DescribeInstancesResult", reservation).unwrap();
        let encoded = encode("DescribeInstances", "req-1", &v).unwrap();
        assert!(direct.contains("<reservationSet><item>"), "{direct}");
        assert!(direct.contains("<groupSet/>"), "{direct}");
        assert!(direct.contains("<instanceState><code>16</code><name>running</name></instanceState>"), "{direct}");
        assert!(direct.contains("<tagSet><item><key>Name</key><value>a&amp;b</value></item></tagSet>"), "{direct}");
        assert!(direct.contains("<privateDnsName/>"), "{direct}");
        // The same elements, in the encoder's (member name) order or the writer's.
        let mut a: Vec<&str> = direct.split('<').collect();
        let mut b: Vec<&str> = encoded.split('<').collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }

    #[test]
    fn a_member_the_model_lacks_or_of_another_kind_is_an_error() {
        let e = response("DescribeInstances", "r", |o| {
            o.str("Reservation", "x");
        })
        .unwrap_err();
        assert!(matches!(e, EncodeError::UnknownMember { .. }), "{e:?}");
        let e = value("Instance", |o| {
            o.obj("State", |s| {
                s.str("Code", "16");
            });
        })
        .unwrap_err();
        assert!(matches!(e, EncodeError::WrongType { .. }), "{e:?}");
        let e = value("Instance", |o| {
            o.bool("InstanceId", true);
        })
        .unwrap_err();
        assert!(matches!(e, EncodeError::WrongType { .. }), "{e:?}");
    }

    #[test]
    fn numbers_and_empty_lists() {
        let v = value("Instance", |o| {
            o.int("AmiLaunchIndex", -12).empty("ProductCodes");
        })
        .unwrap();
        assert_eq!(v, serde_json::json!({"AmiLaunchIndex": -12, "ProductCodes": []}));
        // InstanceId is no list.
        assert!(value("Instance", |o| {
            o.empty("InstanceId");
        })
        .is_err());
        let xml = response("DescribeInstances", "r", |o| {
            o.list("Reservations", [()], |r, _| {
                r.list("Instances", [()], |i, _| {
                    i.int("AmiLaunchIndex", -12).empty("ProductCodes").obj("Monitoring", |m| {
                        m.str("State", "disabled");
                    });
                });
            });
        })
        .unwrap();
        assert!(xml.contains("<amiLaunchIndex>-12</amiLaunchIndex>"), "{xml}");
        assert!(xml.contains("<productCodes/>"), "{xml}");
        assert!(xml.contains("<monitoring><state>disabled</state></monitoring>"), "{xml}");
    }
}
