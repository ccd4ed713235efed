//! Key pair responses.

use corral_control::keypair::{CreatedKeyPair, KeyPair};
use serde_json::{json, Value};

pub fn created(k: &CreatedKeyPair) -> Value {
    json!({
        "KeyName": k.key.rec.key_name,
        "KeyFingerprint": k.key.rec.fingerprint,
        "KeyMaterial": k.private_key_pem,
        "KeyPairId": k.key.rec.key_pair_id,
        "Tags": super::tags(&k.key.tags),
    })
}

pub fn imported(k: &KeyPair) -> Value {
    json!({
        "KeyName": k.rec.key_name,
        "KeyFingerprint": k.rec.fingerprint,
        "KeyPairId": k.rec.key_pair_id,
        "Tags": super::tags(&k.tags),
    })
}

pub fn describe(keys: &[KeyPair], include_public_key: bool) -> Value {
    let items: Vec<Value> = keys
        .iter()
        .map(|k| {
            let mut v = json!({
                "KeyPairId": k.rec.key_pair_id,
                "KeyFingerprint": k.rec.fingerprint,
                "KeyName": k.rec.key_name,
                "KeyType": k.rec.key_type,
                "Tags": super::tags(&k.tags),
                "CreateTime": k.rec.created_at,
            });
            if include_public_key {
                v["PublicKey"] = json!(k.rec.public_key);
            }
            v
        })
        .collect();
    json!({ "KeyPairs": items })
}

pub fn deleted(id: Option<String>) -> Value {
    json!({ "Return": true, "KeyPairId": id })
}
