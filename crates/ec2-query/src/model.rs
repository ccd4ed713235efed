//! Read-only access to botocore's EC2 service model, loaded once.

use rustc_hash::FxHashMap;
use serde_json::Value;
use std::sync::LazyLock;

static MODEL_JSON: &str = include_str!("../model/ec2-2016-11-15.json");
static MODEL: LazyLock<Model> =
    LazyLock::new(|| Model { root: serde_json::from_str(MODEL_JSON).expect("embedded EC2 model is valid JSON") });

pub struct Model {
    root: Value,
}

/// Every shape of the model, with what encoding and decoding ask of it for each element
/// worked out once: its kind, its members by name (each with its XML name and shape), a list's
/// element. A long listing asks these questions per element.
struct Compiled {
    shapes: Vec<ShapeInfo>,
    by_name: FxHashMap<&'static str, usize>,
}

struct ShapeInfo {
    name: &'static str,
    raw: &'static Value,
    kind: ShapeKind,
    /// Hashed with Fx, not SipHash: these keys are the code's, and a response of 100 instances
    /// looks up some 10,000 members.
    members: FxHashMap<&'static str, MemberInfo>,
    /// A list's element shape and element name.
    list: Option<(usize, &'static str)>,
}

struct MemberInfo {
    name: &'static str,
    raw: &'static Value,
    xml_name: &'static str,
    shape: usize,
}

static COMPILED: LazyLock<Compiled> = LazyLock::new(|| {
    let shapes = MODEL.root["shapes"].as_object().expect("the model has shapes");
    let by_name: FxHashMap<&'static str, usize> = shapes.keys().enumerate().map(|(i, k)| (k.as_str(), i)).collect();
    let index = |v: &Value| v["shape"].as_str().and_then(|n| by_name.get(n).copied());
    let shapes = shapes
        .iter()
        .map(|(name, raw)| ShapeInfo {
            name,
            raw,
            kind: kind_of(raw["type"].as_str().unwrap_or("string")),
            members: raw["members"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(m, mraw)| {
                    let xml_name = mraw["locationName"].as_str().unwrap_or(m);
                    Some((m.as_str(), MemberInfo { name: m, raw: mraw, xml_name, shape: index(mraw)? }))
                })
                .collect(),
            list: index(&raw["member"]).map(|i| (i, raw["member"]["locationName"].as_str().unwrap_or("item"))),
        })
        .collect();
    Compiled { shapes, by_name }
});

fn kind_of(t: &str) -> ShapeKind {
    match t {
        "structure" => ShapeKind::Structure,
        "list" => ShapeKind::List,
        "map" => ShapeKind::Map,
        "integer" => ShapeKind::Integer,
        "long" => ShapeKind::Long,
        "boolean" => ShapeKind::Boolean,
        "double" => ShapeKind::Double,
        "float" => ShapeKind::Float,
        "timestamp" => ShapeKind::Timestamp,
        "blob" => ShapeKind::Blob,
        _ => ShapeKind::String,
    }
}

/// A shape's kind as the model names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeKind {
    Structure,
    List,
    Map,
    String,
    Integer,
    Long,
    Boolean,
    Double,
    Float,
    Timestamp,
    Blob,
}

#[derive(Clone, Copy)]
pub struct Shape<'m> {
    pub name: &'m str,
    raw: &'m Value,
    info: &'static ShapeInfo,
}

/// A structure member: its botocore name and how it is named on the wire.
#[derive(Clone, Copy)]
pub struct Member<'m> {
    pub name: &'m str,
    raw: &'m Value,
    info: &'static MemberInfo,
}

impl ShapeInfo {
    fn shape(&'static self) -> Shape<'static> {
        Shape { name: self.name, raw: self.raw, info: self }
    }
}

impl Model {
    pub fn get() -> &'static Model {
        &MODEL
    }

    pub fn has_operation(&self, action: &str) -> bool {
        self.root["operations"].get(action).is_some()
    }

    pub fn input(&self, action: &str) -> Option<Shape<'_>> {
        let name = self.root["operations"].get(action)?["input"]["shape"].as_str()?;
        self.shape(name)
    }

    pub fn output(&self, action: &str) -> Option<Shape<'_>> {
        let name = self.root["operations"].get(action)?["output"]["shape"].as_str()?;
        self.shape(name)
    }

    pub fn shape(&self, name: &str) -> Option<Shape<'_>> {
        // The one Model is MODEL, whose shapes COMPILED indexes.
        let c: &'static Compiled = &COMPILED;
        Some(c.shapes[*c.by_name.get(name)?].shape())
    }
}

impl<'m> Shape<'m> {
    pub fn kind(&self) -> ShapeKind {
        self.info.kind
    }

    /// The members in the model's order.
    pub fn members(&self) -> impl Iterator<Item = Member<'m>> {
        let info = self.info;
        self.raw["members"]
            .as_object()
            .into_iter()
            .flat_map(move |m| m.keys().filter_map(move |k| info.members.get(k.as_str()).map(MemberInfo::member)))
    }

    pub fn member(&self, name: &str) -> Option<Member<'m>> {
        self.info.members.get(name).map(MemberInfo::member)
    }

    pub fn required(&self) -> impl Iterator<Item = &'m str> {
        self.raw["required"].as_array().into_iter().flatten().filter_map(|v| v.as_str())
    }

    /// For a list: the element shape and the element's XML name (EC2 uses `item`).
    pub fn list_member(&self) -> Option<(Shape<'m>, &'m str)> {
        let (shape, item) = self.info.list?;
        Some((COMPILED.shapes[shape].shape(), item))
    }

    /// An integer property of the shape (`min`, `max`).
    pub fn raw_i64(&self, key: &str) -> Option<i64> {
        self.raw[key].as_i64()
    }

    pub fn enum_values(&self) -> Option<Vec<&'m str>> {
        Some(self.raw["enum"].as_array()?.iter().filter_map(|v| v.as_str()).collect())
    }
}

impl MemberInfo {
    fn member(&'static self) -> Member<'static> {
        Member { name: self.name, raw: self.raw, info: self }
    }
}

impl<'m> Member<'m> {
    pub fn shape(&self) -> Shape<'m> {
        COMPILED.shapes[self.info.shape].shape()
    }

    /// The name in a Query request: `queryName`, else `locationName` capitalised, else the
    /// member name (botocore's EC2 serializer rule).
    pub fn query_name(&self) -> String {
        if let Some(q) = self.raw["queryName"].as_str() {
            return q.to_string();
        }
        match self.raw["locationName"].as_str() {
            Some(l) => {
                let mut c = l.chars();
                match c.next() {
                    Some(f) => f.to_uppercase().chain(c).collect(),
                    None => String::new(),
                }
            }
            None => self.name.to_string(),
        }
    }

    /// The element name in an XML response.
    pub fn xml_name(&self) -> &'m str {
        self.info.xml_name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_botocore() {
        let m = Model::get();
        let input = m.input("DescribeInstances").unwrap();
        let ids = input.member("InstanceIds").unwrap();
        assert_eq!(ids.query_name(), "InstanceId");
        assert_eq!(input.member("Filters").unwrap().query_name(), "Filter");
        let out = m.output("DescribeInstances").unwrap();
        assert_eq!(out.member("Reservations").unwrap().xml_name(), "reservationSet");
        let (_, item) = out.member("Reservations").unwrap().shape().list_member().unwrap();
        assert_eq!(item, "item");
        assert!(m.has_operation("RunInstances"));
        assert!(!m.has_operation("LaunchRockets"));
    }
}
