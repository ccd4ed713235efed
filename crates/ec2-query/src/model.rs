//! Read-only access to botocore's EC2 service model, loaded once.

use serde_json::Value;
use std::sync::LazyLock;

static MODEL_JSON: &str = include_str!("../model/ec2-2016-11-15.json");
static MODEL: LazyLock<Model> =
    LazyLock::new(|| Model { root: serde_json::from_str(MODEL_JSON).expect("embedded EC2 model is valid JSON") });

pub struct Model {
    root: Value,
}

/// The model's shapes by name, hashed: encoding a long listing looks one up per element.
static SHAPES: LazyLock<std::collections::HashMap<&'static str, (&'static str, &'static Value)>> = LazyLock::new(|| {
    MODEL.root["shapes"].as_object().map(|m| m.iter().map(|(k, v)| (k.as_str(), (k.as_str(), v))).collect()).unwrap_or_default()
});

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
}

/// A structure member: its botocore name and how it is named on the wire.
#[derive(Clone, Copy)]
pub struct Member<'m> {
    pub name: &'m str,
    raw: &'m Value,
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
        // The one Model is MODEL, whose shapes SHAPES indexes.
        let (name, raw) = SHAPES.get(name)?;
        Some(Shape { name, raw })
    }
}

impl<'m> Shape<'m> {
    pub fn kind(&self) -> ShapeKind {
        match self.raw["type"].as_str().unwrap_or("string") {
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

    pub fn members(&self) -> impl Iterator<Item = Member<'m>> {
        self.raw["members"].as_object().into_iter().flat_map(|m| m.iter().map(|(name, raw)| Member { name, raw }))
    }

    pub fn member(&self, name: &str) -> Option<Member<'m>> {
        let (name, raw) = self.raw["members"].as_object()?.get_key_value(name)?;
        Some(Member { name, raw })
    }

    pub fn required(&self) -> impl Iterator<Item = &'m str> {
        self.raw["required"].as_array().into_iter().flatten().filter_map(|v| v.as_str())
    }

    /// For a list: the element shape and the element's XML name (EC2 uses `item`).
    pub fn list_member(&self) -> Option<(Shape<'m>, &'m str)> {
        let m = &self.raw["member"];
        let shape = Model::get().shape(m["shape"].as_str()?)?;
        // SAFETY of lifetimes: the model is 'static, so its shapes outlive any borrow.
        let shape: Shape<'m> = Shape { name: shape.name, raw: shape.raw };
        Some((shape, m["locationName"].as_str().unwrap_or("item")))
    }

    /// An integer property of the shape (`min`, `max`).
    pub fn raw_i64(&self, key: &str) -> Option<i64> {
        self.raw[key].as_i64()
    }

    pub fn enum_values(&self) -> Option<Vec<&'m str>> {
        Some(self.raw["enum"].as_array()?.iter().filter_map(|v| v.as_str()).collect())
    }
}

impl<'m> Member<'m> {
    pub fn shape(&self) -> Shape<'m> {
        let name = self.raw["shape"].as_str().expect("member has a shape");
        let s = Model::get().shape(name).expect("member shape exists in model");
        Shape { name: s.name, raw: s.raw }
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
        self.raw["locationName"].as_str().unwrap_or(self.name)
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
