//! Views: control-plane results rendered as JSON keyed by botocore member names, ready for
//! the model-driven XML encoder. Members AWS always returns are always set, empty or false
//! ones included, because clients index them blindly.

pub mod image;
pub mod instance;
pub mod instance_cache;
pub mod keypair;
pub mod network;
pub mod network_acl;
pub mod region;
pub mod storage;
pub mod tag;

use corral_store::TagRecord;
use serde_json::{json, Value};

pub fn tags(tags: &[TagRecord]) -> Value {
    Value::Array(tags.iter().map(|t| json!({"Key": t.key, "Value": t.value})).collect())
}

/// Tags as the writer writes them, under `member` (`Tags`, or `TagSet`).
pub fn write_tags(o: &mut corral_ec2_query::write::Obj<'_>, member: &str, tags: &[TagRecord]) {
    o.list(member, tags, |t, tag| {
        t.str("Key", &tag.key).str("Value", &tag.value);
    });
}

/// Adds `NextToken` when there is one.
pub fn with_next(mut v: Value, next: Option<String>) -> Value {
    if let (Some(n), Some(obj)) = (next, v.as_object_mut()) {
        obj.insert("NextToken".into(), Value::String(n));
    }
    v
}
