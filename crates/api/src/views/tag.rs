//! DescribeTags.

use corral_store::TagRecord;
use serde_json::{json, Value};

pub fn describe(tags: &[TagRecord], next: Option<String>) -> Value {
    let items: Vec<Value> = tags
        .iter()
        .map(|t| json!({"Key": t.key, "Value": t.value, "ResourceId": t.resource_id, "ResourceType": t.resource_type}))
        .collect();
    super::with_next(json!({ "Tags": items }), next)
}
