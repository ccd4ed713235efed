//! The instance identity document (`dynamic/instance-identity/document`), rendered the way
//! IMDS renders it: two-space indent, ` : ` between key and value, keys in IMDS's order, the
//! fields Corral has no notion of (billing and marketplace codes, kernel and ramdisk ids) as
//! `null`. SDKs read `region` from it; cloud-init reads `instanceId`, `region` and
//! `availabilityZone`.
//!
//! The signed forms (`signature`, `pkcs7`, `rsa2048`) are not served: Corral has no signing
//! certificate a client could know, so they are neither listed nor found (404).

use crate::view::InstanceView;

/// The `version` field AWS has served since 2017.
const DOCUMENT_VERSION: &str = "2017-09-30";

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The document's text.
pub fn identity_document(view: &InstanceView) -> String {
    let private_ip = view.private_ip().map(|ip| json_str(&ip.to_string())).unwrap_or_else(|| "null".into());
    let fields: [(&str, String); 15] = [
        ("accountId", json_str(&view.account_id)),
        ("architecture", json_str(&view.architecture)),
        ("availabilityZone", json_str(&view.availability_zone)),
        ("billingProducts", "null".into()),
        ("devpayProductCodes", "null".into()),
        ("marketplaceProductCodes", "null".into()),
        ("imageId", json_str(&view.image_id)),
        ("instanceId", json_str(&view.instance_id)),
        ("instanceType", json_str(&view.instance_type)),
        ("kernelId", "null".into()),
        ("pendingTime", json_str(&view.pending_time.format("%Y-%m-%dT%H:%M:%SZ").to_string())),
        ("privateIp", private_ip),
        ("ramdiskId", "null".into()),
        ("region", json_str(&view.region)),
        ("version", json_str(DOCUMENT_VERSION)),
    ];
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("  \"{k}\" : {v}")).collect();
    format!("{{\n{}\n}}", body.join(",\n"))
}
