//! IMDSv2 session tokens.
//!
//! A token is self-contained: `base64url(version | expiry | tag)` where `expiry` is the end of
//! its life in Unix milliseconds and `tag` is HMAC-SHA256 over the instance id and the expiry,
//! keyed by a secret that only the service holds. So:
//! - a token is bound to the instance it was issued to (a token of instance A fails the MAC
//!   check when instance B presents it, even if B learnt it somehow);
//! - nothing is stored per token, so an untrusted guest that PUTs in a loop costs no memory;
//! - a token cannot be extended or forged without the key.
//!
//! Tokens cannot be revoked before they expire (AWS's cannot either; the longest life is
//! 21600 s). Give every service of one agent the same [`TokenKey`] so that tokens stay valid
//! whichever VPC namespace's listener answers; a new key (agent restart) invalidates every token,
//! and clients such as cloud-init and the SDKs fetch a new one on 401.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The smallest and largest `X-aws-ec2-metadata-token-ttl-seconds` AWS accepts (the IMDSv2
/// documentation: "a minimum of one second and a maximum of six hours").
pub const MIN_TOKEN_TTL_SECS: u32 = 1;
pub const MAX_TOKEN_TTL_SECS: u32 = 21_600;

const TOKEN_VERSION: u8 = 1;
/// Bytes of HMAC-SHA256 kept in a token: 192 bits is far beyond guessing.
const TAG_LEN: usize = 24;
const TOKEN_LEN: usize = 1 + 8 + TAG_LEN;
/// Separates the purpose of this MAC from any other use of the key.
const DOMAIN: &[u8] = b"corral-imds-token-v1\0";

/// The secret that signs and checks tokens.
#[derive(Clone)]
pub struct TokenKey {
    key: [u8; 32],
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// Why a presented token was refused (all of them answer 401; the reason is for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is not well-formed")]
    Malformed,
    #[error("token was not issued to this instance")]
    WrongInstance,
    #[error("token has expired")]
    Expired,
}

fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis() as u64
}

impl TokenKey {
    /// A fresh random key from the operating system's generator.
    pub fn random() -> Self {
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        TokenKey { key }
    }

    /// A fixed key (tests; an agent that wants tokens to survive its restart).
    pub fn from_bytes(key: [u8; 32]) -> Self {
        TokenKey { key }
    }

    fn tag(&self, instance_id: &str, expiry_ms: u64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(DOMAIN);
        mac.update(instance_id.as_bytes());
        mac.update(&[0]);
        mac.update(&expiry_ms.to_be_bytes());
        mac
    }

    /// Issues a token for `instance_id` living `ttl_secs` from `now`.
    pub fn issue(&self, instance_id: &str, ttl_secs: u32, now: SystemTime) -> String {
        let expiry_ms = unix_millis(now) + u64::from(ttl_secs) * 1000;
        let tag = self.tag(instance_id, expiry_ms).finalize().into_bytes();
        let mut raw = Vec::with_capacity(TOKEN_LEN);
        raw.push(TOKEN_VERSION);
        raw.extend_from_slice(&expiry_ms.to_be_bytes());
        raw.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks `token` for `instance_id` at `now`; returns the whole seconds it has left
    /// (at least 1 while it is valid).
    pub fn verify(&self, token: &str, instance_id: &str, now: SystemTime) -> Result<u64, TokenError> {
        // A token is 44 characters; refuse anything much longer before decoding it.
        if token.len() > 64 {
            return Err(TokenError::Malformed);
        }
        let raw = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| TokenError::Malformed)?;
        if raw.len() != TOKEN_LEN || raw[0] != TOKEN_VERSION {
            return Err(TokenError::Malformed);
        }
        let expiry_ms = u64::from_be_bytes(raw[1..9].try_into().expect("8 bytes"));
        self.tag(instance_id, expiry_ms).verify_truncated_left(&raw[9..]).map_err(|_| TokenError::WrongInstance)?;
        let now_ms = unix_millis(now);
        if now_ms >= expiry_ms {
            return Err(TokenError::Expired);
        }
        Ok((expiry_ms - now_ms).div_ceil(1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    #[test]
    fn token_round_trips_and_expires() {
        let key = TokenKey::from_bytes([7; 32]);
        let tok = key.issue("i-0123456789abcdef0", 60, t(0));
        assert_eq!(key.verify(&tok, "i-0123456789abcdef0", t(0)), Ok(60));
        assert_eq!(key.verify(&tok, "i-0123456789abcdef0", t(59)), Ok(1));
        assert_eq!(key.verify(&tok, "i-0123456789abcdef0", t(60)), Err(TokenError::Expired));
    }

    #[test]
    fn token_is_bound_to_instance_and_key() {
        let key = TokenKey::from_bytes([7; 32]);
        let tok = key.issue("i-aaaaaaaaaaaaaaaaa", 60, t(0));
        assert_eq!(key.verify(&tok, "i-bbbbbbbbbbbbbbbbb", t(1)), Err(TokenError::WrongInstance));
        let other = TokenKey::from_bytes([8; 32]);
        assert_eq!(other.verify(&tok, "i-aaaaaaaaaaaaaaaaa", t(1)), Err(TokenError::WrongInstance));
    }

    #[test]
    fn tampered_or_garbage_tokens_are_refused() {
        let key = TokenKey::from_bytes([7; 32]);
        let tok = key.issue("i-a", 60, t(0));
        // Push the expiry forward: the tag no longer matches.
        let mut raw = URL_SAFE_NO_PAD.decode(&tok).unwrap();
        raw[5] ^= 0x40;
        let forged = URL_SAFE_NO_PAD.encode(raw);
        assert_eq!(key.verify(&forged, "i-a", t(1)), Err(TokenError::WrongInstance));
        for junk in ["", "x", "!!!!", &"A".repeat(44), &"A".repeat(500)] {
            assert!(key.verify(junk, "i-a", t(1)).is_err(), "{junk}");
        }
    }
}
