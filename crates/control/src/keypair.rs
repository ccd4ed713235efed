//! Key pairs: created here (private half returned once, never stored) or imported.

use crate::describe::{Describe, FilterLine};
use crate::{tag, Control};
use corral_auth::keypair::{self as material, KeyType};
use corral_ec2_query::requests as rq;
use corral_store::{KeyPairRecord, TagRecord};
use corral_types::{Error, ErrorCode, IdKind, ResourceId, Result};

pub struct KeyPair {
    pub rec: KeyPairRecord,
    pub tags: Vec<TagRecord>,
}

crate::described_as_tagged!(KeyPair, KeyPairRecord, IdKind::KeyPair, key_pair_id);

const KEY_PAIR_FILTERS: &[FilterLine<KeyPair>] = &[
    ("key-pair-id", |k, _| vec![k.rec.key_pair_id.clone()]),
    ("key-name", |k, _| vec![k.rec.key_name.clone()]),
    ("fingerprint", |k, _| vec![k.rec.fingerprint.clone()]),
    ("key-type", |k, _| vec![k.rec.key_type.clone()]),
];

pub struct CreatedKeyPair {
    pub key: KeyPair,
    pub private_key_pem: String,
}

const KEY_NAME_MAX: usize = 255;

fn check_name(name: Option<&str>) -> Result<&str> {
    let name = name.ok_or_else(|| Error::missing("KeyName"))?;
    if name.is_empty() || name.len() > KEY_NAME_MAX || !name.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
        return Err(Error::invalid_value("KeyName", name, "Key names must be 1-255 ASCII characters."));
    }
    Ok(name)
}

impl Control {
    pub fn keypair_create(&self, req: &rq::CreateKeyPair) -> Result<CreatedKeyPair> {
        let name = check_name(req.key_name.as_deref())?;
        let kind = match req.key_type.as_deref().unwrap_or("rsa") {
            "rsa" => KeyType::Rsa,
            "ed25519" => KeyType::Ed25519,
            other => return Err(Error::invalid_value("KeyType", other, "Valid values are rsa and ed25519.")),
        };
        match req.key_format.as_deref().unwrap_or("pem") {
            "pem" => {}
            other => return Err(Error::invalid_value("KeyFormat", other, "Only pem is supported.")),
        }
        let tags = tag::from_specifications(&req.tag_specifications, "key-pair", &["key-pair"])?;
        if self.store.read(|tx| tx.keypair_get_by_name(name))?.is_some() {
            return Err(duplicate(name));
        }
        if req.dry_run {
            return Err(Error::dry_run());
        }
        let generated = material::generate(kind).map_err(Error::internal)?;
        let rec = KeyPairRecord {
            key_pair_id: ResourceId::generate(IdKind::KeyPair).into_string(),
            key_name: name.to_string(),
            key_type: key_type_name(kind).into(),
            fingerprint: generated.fingerprint,
            public_key: generated.public_openssh,
            created_at: crate::now_iso(),
        };
        let tags = self.keypair_insert(&rec, tags)?;
        Ok(CreatedKeyPair { key: KeyPair { rec, tags }, private_key_pem: generated.private_key_pem })
    }

    pub fn keypair_import(&self, req: &rq::ImportKeyPair) -> Result<KeyPair> {
        use base64::Engine;
        let name = check_name(req.key_name.as_deref())?;
        let b64 = req.public_key_material.as_deref().ok_or_else(|| Error::missing("PublicKeyMaterial"))?;
        let tags = tag::from_specifications(&req.tag_specifications, "key-pair", &["key-pair"])?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| Error::new(ErrorCode::InvalidKeyFormat, "Key is not in valid OpenSSH public key format"))?;
        let imported = import_any(&raw)
            .map_err(|e| Error::new(ErrorCode::InvalidKeyFormat, "Key is not in valid OpenSSH public key format").with_internal(e))?;
        if self.store.read(|tx| tx.keypair_get_by_name(name))?.is_some() {
            return Err(duplicate(name));
        }
        if req.dry_run {
            return Err(Error::dry_run());
        }
        let rec = KeyPairRecord {
            key_pair_id: ResourceId::generate(IdKind::KeyPair).into_string(),
            key_name: name.to_string(),
            key_type: key_type_name(imported.key_type).into(),
            fingerprint: imported.fingerprint,
            public_key: imported.public_openssh,
            created_at: crate::now_iso(),
        };
        let tags = self.keypair_insert(&rec, tags)?;
        Ok(KeyPair { rec, tags })
    }

    fn keypair_insert(&self, rec: &KeyPairRecord, tags: Vec<(String, String)>) -> Result<Vec<TagRecord>> {
        self.store.transaction(|tx| {
            if !tx.keypair_insert(rec)? {
                return Err(duplicate(&rec.key_name));
            }
            tag::insert(tx, &rec.key_pair_id, "key-pair", &tags)
        })
    }

    pub fn keypair_describe(&self, req: &rq::DescribeKeyPairs) -> Result<Vec<KeyPair>> {
        let d = Describe::new(&req.key_pair_ids, &req.filters, req.dry_run, None, None).table(KEY_PAIR_FILTERS);
        if !req.key_names.is_empty() {
            self.store.read(|tx| {
                for n in &req.key_names {
                    if tx.keypair_get_by_name(n)?.is_none() {
                        return Err(Error::not_found(IdKind::KeyPair, n));
                    }
                }
                Ok(())
            })?;
        }
        let (items, _) = self.describe(&d, |k| req.key_names.is_empty() || req.key_names.contains(&k.rec.key_name))?;
        Ok(items)
    }

    /// Deletes by name or id; deleting a name that does not exist succeeds, as on EC2.
    /// Returns the id deleted, if any.
    pub fn keypair_delete(&self, req: &rq::DeleteKeyPair) -> Result<Option<String>> {
        if req.key_name.is_none() && req.key_pair_id.is_none() {
            return Err(Error::missing("KeyName"));
        }
        if let Some(id) = &req.key_pair_id {
            if ResourceId::parse(IdKind::KeyPair, id).is_none() {
                return Err(Error::malformed(IdKind::KeyPair, id));
            }
        }
        self.store.transaction(|tx| {
            let rec = match (&req.key_pair_id, &req.key_name) {
                (Some(id), _) => Some(
                    tx.keypair_get(id)?
                        .ok_or_else(|| Error::new(ErrorCode::NotFound(IdKind::KeyPair), format!("The key pair '{id}' does not exist")))?,
                ),
                (None, Some(name)) => tx.keypair_get_by_name(name)?,
                (None, None) => None,
            };
            if req.dry_run {
                return Err(Error::dry_run());
            }
            if let Some(rec) = &rec {
                tx.keypair_delete(&rec.key_pair_id)?;
                tx.tag_delete_all(&rec.key_pair_id)?;
            }
            Ok(rec.map(|r| r.key_pair_id))
        })
    }
}

/// AWS accepts OpenSSH, RFC 4716 and base64-encoded DER (SubjectPublicKeyInfo) material. The
/// last is given to the parser as the PEM it is the body of.
fn import_any(raw: &[u8]) -> Result<material::ImportedKey, material::KeyError> {
    match material::import(raw) {
        Ok(k) => Ok(k),
        Err(e) => {
            let text = String::from_utf8_lossy(raw);
            let body: String = text.split_whitespace().collect();
            let looks_der =
                body.starts_with("MI") && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=');
            if !looks_der {
                return Err(e);
            }
            let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or("")).collect();
            let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"));
            material::import(pem.as_bytes()).map_err(|_| e)
        }
    }
}

fn duplicate(name: &str) -> Error {
    Error::new(ErrorCode::Duplicate(IdKind::KeyPair), format!("The keypair '{name}' already exists."))
}

fn key_type_name(k: KeyType) -> &'static str {
    match k {
        KeyType::Rsa => "rsa",
        KeyType::Ed25519 => "ed25519",
    }
}
