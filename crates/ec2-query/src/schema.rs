//! What a typed request reads: the tree of member names a request struct's `Deserialize`
//! asks for, found by running it against a deserializer that records field names instead of
//! reading data. Two things use it:
//!
//! - [`unhandled`]: at run time, the members of a decoded request that its struct does not
//!   read. A member Corral would silently ignore is refused instead (unless its value is
//!   neutral: `false`, `0`, empty), so no request means something Corral did not do.
//! - tests that compare every request struct with botocore's model, so a struct cannot name a
//!   member the model lacks.
//!
//! Lists are transparent (a `Vec<T>` reads what `T` reads); maps and free-form values read
//! everything.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The members one struct (or the element of a list of structs) reads.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Schema {
    pub fields: BTreeMap<String, Schema>,
    /// A map or a free-form value: reads any member.
    pub open: bool,
}

impl Schema {
    /// The schema of `T`, as its `Deserialize` implementation reveals it.
    pub fn of<'de, T: Deserialize<'de>>() -> Schema {
        let mut root = Schema::default();
        // The sniffer feeds neutral values; a struct that refuses them still told its fields.
        let _ = T::deserialize(Sniffer { out: &mut root });
        root
    }

    /// Every member path (`NetworkInterfaces.Groups`), depth first.
    pub fn paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, child) in &self.fields {
            out.push(name.clone());
            out.extend(child.paths().into_iter().map(|p| format!("{name}.{p}")));
        }
        out
    }
}

/// Members of `value` (a decoded request) that `schema` does not read and whose value is not
/// neutral, as dotted paths with the value.
pub fn unhandled<'v>(value: &'v Value, schema: &Schema) -> Vec<(String, &'v Value)> {
    let mut out = Vec::new();
    walk(value, schema, "", &mut out);
    out
}

fn walk<'v>(value: &'v Value, schema: &Schema, path: &str, out: &mut Vec<(String, &'v Value)>) {
    if schema.open {
        return;
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match schema.fields.get(k) {
                    Some(child) => walk(v, child, &p, out),
                    None if !neutral(v) => out.push((p, v)),
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                walk(v, schema, path, out);
            }
        }
        _ => {}
    }
}

/// A value that asks for nothing: false, zero, empty, or made only of those.
pub fn neutral(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.iter().all(neutral),
        Value::Object(o) => o.values().all(neutral),
    }
}

#[derive(Debug)]
struct Stop(String);

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Stop(msg.to_string())
    }
}

struct Sniffer<'a> {
    out: &'a mut Schema,
}

macro_rules! neutral_scalars {
    ($($method:ident => $visit:ident($value:expr)),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
            visitor.$visit($value)
        })*
    };
}

impl<'de> Deserializer<'de> for Sniffer<'_> {
    type Error = Stop;

    neutral_scalars!(
        deserialize_bool => visit_bool(false),
        deserialize_i8 => visit_i64(0),
        deserialize_i16 => visit_i64(0),
        deserialize_i32 => visit_i64(0),
        deserialize_i64 => visit_i64(0),
        deserialize_u8 => visit_u64(0),
        deserialize_u16 => visit_u64(0),
        deserialize_u32 => visit_u64(0),
        deserialize_u64 => visit_u64(0),
        deserialize_f32 => visit_f64(0.0),
        deserialize_f64 => visit_f64(0.0),
        deserialize_char => visit_char('x'),
        deserialize_str => visit_str(""),
        deserialize_string => visit_str(""),
        deserialize_identifier => visit_str(""),
        deserialize_bytes => visit_bytes(&[]),
        deserialize_byte_buf => visit_bytes(&[]),
    );

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_unit()
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.out.open = true;
        visitor.visit_unit()
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_unit()
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.out.open = true;
        visitor.visit_map(Fields { names: &[], next: 0, out: self.out })
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_seq(One { out: Some(self.out) })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Stop> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(self, _name: &'static str, _len: usize, visitor: V) -> Result<V::Value, Stop> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        visitor.visit_map(Fields { names: fields, next: 0, out: self.out })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        Err(Stop("enums are not read from requests".into()))
    }
}

/// A struct's fields, each given once with a sniffer for its value.
struct Fields<'a> {
    names: &'static [&'static str],
    next: usize,
    out: &'a mut Schema,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Stop> {
        let Some(name) = self.names.get(self.next) else { return Ok(None) };
        seed.deserialize(de::value::BorrowedStrDeserializer::new(name)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        let name = self.names[self.next];
        self.next += 1;
        let child = self.out.fields.entry(name.to_string()).or_default();
        seed.deserialize(Sniffer { out: child })
    }
}

/// A list of one element, read with the list's own schema.
struct One<'a> {
    out: Option<&'a mut Schema>,
}

impl<'de> SeqAccess<'de> for One<'_> {
    type Error = Stop;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Stop> {
        match self.out.take() {
            Some(out) => seed.deserialize(Sniffer { out }).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::requests as rq;
    use serde_json::json;

    #[test]
    fn request_structs_tell_their_members() {
        let s = Schema::of::<rq::RunInstances>();
        assert!(s.fields.contains_key("ImageId") && s.fields.contains_key("DryRun"));
        assert!(s.paths().contains(&"TagSpecifications.Tags.Key".to_string()), "{:?}", s.paths());
        assert!(s.paths().contains(&"MetadataOptions.HttpTokens".to_string()));
    }

    #[test]
    fn unread_members_with_meaning_are_reported() {
        let s = Schema::of::<rq::DescribeKeyPairs>();
        let v = json!({"KeyNames": ["a"], "Filters": [{"Name": "x", "Values": ["y"], "Extra": "z"}], "Other": true, "Quiet": false});
        let got: Vec<String> = unhandled(&v, &s).into_iter().map(|(p, _)| p).collect();
        assert_eq!(got, vec!["Filters.Extra", "Other"]);
        assert!(neutral(&json!({"Configured": false, "List": [], "N": 0})));
        assert!(!neutral(&json!({"Configured": true})));
    }
}
