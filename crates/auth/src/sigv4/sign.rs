//! The client half of SigV4: signing a request in the header form, or presigning it into
//! query parameters. Used by tests to round-trip through [`super::verify`], and by Corral's
//! own clients.

use chrono::{DateTime, Utc};
use hmac::Mac;

use super::canonical::{self, header_value};
use super::{format_timestamp, signing_key, string_to_sign, SignedRequest, ALGORITHM, UNSIGNED_PAYLOAD};

/// Who signs, for what scope, and when.
#[derive(Debug, Clone, Copy)]
pub struct SigningParams<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub time: DateTime<Utc>,
}

impl SigningParams<'_> {
    fn scope(&self) -> String {
        format!("{}/{}/{}/aws4_request", &format_timestamp(self.time)[..8], self.region, self.service)
    }

    fn signature(&self, canonical_request: &str) -> String {
        let stamp = format_timestamp(self.time);
        let mut mac = signing_key(self.secret_access_key, &stamp[..8], self.region, self.service);
        mac.update(string_to_sign(&stamp, &self.scope(), canonical_request).as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// Signs `req` in the header form and returns the headers to add to it: `x-amz-date` (unless
/// `req` already has one, which must then say `params.time`) and `authorization`. Every header in `req` is signed, so it must include `host`. The payload
/// hash is the body's SHA-256, or the `x-amz-content-sha256` header's value when present.
pub fn sign(req: &SignedRequest, params: &SigningParams) -> Vec<(String, String)> {
    let mut added = Vec::new();
    if header_value(req.headers, "x-amz-date").is_none() {
        added.push(("x-amz-date".to_string(), format_timestamp(params.time)));
    }
    let headers: Vec<(String, String)> = req.headers.iter().chain(&added).cloned().collect();
    let signed_headers = signed_header_names(&headers);
    let payload_hash = header_value(&headers, "x-amz-content-sha256")
        .map(str::to_string)
        .unwrap_or_else(|| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(req.body)));
    let full = SignedRequest { headers: &headers, ..*req };
    let canonical = canonical::request(&full, &signed_headers, false, &payload_hash).expect("every signed header comes from the request");
    let authorization = format!(
        "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={}",
        params.access_key_id,
        params.scope(),
        signed_headers.join(";"),
        params.signature(&canonical),
    );
    added.push(("authorization".to_string(), authorization));
    added
}

/// Presigns `req` for `expires_secs` seconds and returns the complete query string to send
/// (the original query followed by the `X-Amz-*` parameters, without `?`). Every header in
/// `req` is signed, so it must include `host`. The payload is `UNSIGNED-PAYLOAD`, as SDKs do,
/// which [`super::verify`] accepts only for an empty body.
pub fn presign(req: &SignedRequest, params: &SigningParams, expires_secs: u32) -> String {
    let signed_headers = signed_header_names(req.headers);
    let credential = format!("{}/{}", params.access_key_id, params.scope());
    let mut query = req.query.to_string();
    for (key, value) in [
        ("X-Amz-Algorithm", ALGORITHM.to_string()),
        ("X-Amz-Credential", credential),
        ("X-Amz-Date", format_timestamp(params.time)),
        ("X-Amz-Expires", expires_secs.to_string()),
        ("X-Amz-SignedHeaders", signed_headers.join(";")),
    ] {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(key);
        query.push('=');
        query.push_str(&canonical::encode(value.as_bytes()));
    }
    let unsigned = SignedRequest { query: &query, ..*req };
    let canonical =
        canonical::request(&unsigned, &signed_headers, true, UNSIGNED_PAYLOAD).expect("every signed header comes from the request");
    format!("{query}&X-Amz-Signature={}", params.signature(&canonical))
}

/// The lowercase, sorted, de-duplicated names of `headers`, less any `authorization`.
fn signed_header_names(headers: &[(String, String)]) -> Vec<String> {
    let mut names: Vec<String> = headers.iter().map(|(n, _)| n.to_ascii_lowercase()).filter(|n| n != "authorization").collect();
    names.sort();
    names.dedup();
    names
}
