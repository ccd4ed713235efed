//! Derived signing keys, kept. A SigV4 signing key is four HMACs of the secret over the
//! scope (date, region, service, `aws4_request`), the same for every request a key signs in a
//! day: deriving it again for each request was a third of verifying one. The secret is part
//! of what a key is kept under, so a key whose secret changes (or a key id revoked and made
//! again) is derived afresh; whether the key id is still valid is asked of the caller's
//! lookup on every request, as before.

use super::HmacSha256;
use hmac::Mac;
use std::collections::HashMap;
use std::sync::Mutex;

/// At most this many keys are kept; past it the cache starts empty again. A key serves a
/// (secret, day, region, service), so a cloud with a few users holds a handful.
const MAX_KEYS: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Scope {
    secret: String,
    date: String,
    region: String,
    service: String,
}

/// Signing keys by secret and scope, as MACs ready to take a string to sign.
#[derive(Default)]
pub(super) struct KeyCache {
    keys: Mutex<HashMap<Scope, HmacSha256>>,
}

impl KeyCache {
    /// The signing key of `secret` for this scope, and whether it was kept already.
    pub(super) fn get(&self, secret: &str, date: &str, region: &str, service: &str) -> (HmacSha256, bool) {
        let scope = Scope { secret: secret.to_string(), date: date.to_string(), region: region.to_string(), service: service.to_string() };
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = keys.get(&scope) {
            return (key.clone(), true);
        }
        let key = derive(secret, date, region, service);
        if keys.len() >= MAX_KEYS {
            keys.clear();
        }
        keys.insert(scope, key.clone());
        (key, false)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.lock().unwrap().len()
    }
}

/// The signing key as AWS specifies it: `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret,
/// date), region), service), "aws4_request")`.
pub(super) fn derive(secret: &str, date: &str, region: &str, service: &str) -> HmacSha256 {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    HmacSha256::new_from_slice(&k_signing).expect("HMAC accepts keys of any length")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(mut mac: HmacSha256) -> Vec<u8> {
        mac.update(b"string to sign");
        mac.finalize().into_bytes().to_vec()
    }

    #[test]
    fn a_kept_key_is_the_derived_one_and_is_derived_once() {
        let cache = KeyCache::default();
        let (first, hit) = cache.get("secret-a", "20261204", "local-1", "ec2");
        assert!(!hit);
        let (again, hit) = cache.get("secret-a", "20261204", "local-1", "ec2");
        assert!(hit);
        let derived = derive("secret-a", "20261204", "local-1", "ec2");
        assert_eq!(bytes(first), bytes(derived.clone()));
        assert_eq!(bytes(again), bytes(derived));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn each_part_of_the_scope_and_the_secret_keeps_a_key_of_its_own() {
        let cache = KeyCache::default();
        let base = bytes(cache.get("secret-a", "20261204", "local-1", "ec2").0);
        for (secret, date, region, service) in [
            ("secret-b", "20261204", "local-1", "ec2"),
            ("secret-a", "20261205", "local-1", "ec2"),
            ("secret-a", "20261204", "local-2", "ec2"),
            ("secret-a", "20261204", "local-1", "sts"),
        ] {
            let (key, hit) = cache.get(secret, date, region, service);
            assert!(!hit, "{secret} {date} {region} {service}");
            assert_ne!(bytes(key.clone()), base);
            assert_eq!(bytes(key), bytes(derive(secret, date, region, service)));
        }
        assert_eq!(cache.len(), 5);
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = KeyCache::default();
        for i in 0..MAX_KEYS + 10 {
            cache.get(&format!("secret-{i}"), "20261204", "local-1", "ec2");
        }
        assert!(cache.len() <= MAX_KEYS);
        assert!(cache.len() >= 10);
    }
}
