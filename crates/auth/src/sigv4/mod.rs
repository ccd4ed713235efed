//! AWS Signature Version 4 verification, server side.
//!
//! A request proves it was made by the holder of a secret access key by carrying an
//! HMAC-SHA256 over a canonical form of itself, either in the `Authorization` header or in
//! `X-Amz-*` query parameters (a presigned URL). [`verify`] parses whichever form is present,
//! checks the credential scope (date, region, service) and the clock, rebuilds the canonical
//! request exactly as AWS specifies, and compares signatures in constant time.
//!
//! ```text
//!   SignedRequest ──parse──> Auth { credential scope, signed headers, signature, time }
//!        │                        │ scope + clock checks, secret lookup
//!        └──────canonical request ┴──> string to sign ──HMAC(signing key)──> compare
//! ```
//!
//! Both `ec2` and `sts` are served at the one endpoint, so either service is accepted in the
//! scope and returned in [`Verified`]. The body is always authenticated: the payload hash in
//! the canonical request must be the body's SHA-256, except that an empty body may be signed
//! as `UNSIGNED-PAYLOAD` (what SDKs put in presigned URLs).
//!
//! [`sign`] and [`presign`] are the client half, for tests and for Corral's own clients.

mod canonical;
mod key_cache;
mod parse;
mod sign;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Duration, Utc};
use hmac::Mac;

pub use canonical::query_pairs;
pub use sign::{presign, sign, SigningParams};

/// The only signing algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// How far a header-signed request's timestamp may be from our clock, either way. AWS's
/// SigV4 services allow 15 minutes ("Signature expired: ... (... - 15 min.)").
pub const MAX_CLOCK_SKEW_MINUTES: i64 = 15;

/// The longest a presigned URL may stay valid: AWS's limit on `X-Amz-Expires`, seven days.
pub const MAX_PRESIGN_EXPIRES_SECS: i64 = 7 * 24 * 60 * 60;

/// Services whose credential scope this endpoint accepts.
pub const SERVICES: &[&str] = &["ec2", "sts"];

/// The payload hash a client may sign instead of the body's digest.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// An HTTP request as received, in the parts SigV4 signs.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// Upper-case method, e.g. `POST`.
    pub method: &'a str,
    /// The path as received, still percent-encoded, e.g. `/`.
    pub path: &'a str,
    /// The raw query string without the `?`; empty when there is none.
    pub query: &'a str,
    /// All headers in the order received; names are compared case-insensitively, and a name
    /// that appears more than once has its values joined with `,` as the spec says.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// Who signed a request that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub access_key_id: String,
    /// The region in the credential scope (one the endpoint accepts).
    pub region: String,
    /// `ec2` or `sts`, from the credential scope.
    pub service: String,
}

/// Why a request did not authenticate. `Display` is the message a client may see; variants
/// that need more for a log carry it in fields that `Display` leaves out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Neither an `Authorization` header nor an `X-Amz-Algorithm` query parameter.
    #[error("Request is missing Authentication Token")]
    MissingAuthenticationToken,
    /// The signature information is there but malformed or incomplete.
    #[error("{0}")]
    IncompleteSignature(String),
    /// The access key id is not one we know. EC2 answers `AuthFailure`.
    #[error("AWS was not able to validate the provided access credentials")]
    InvalidClientTokenId { access_key_id: String },
    /// The credential scope names another region, another service, a date other than the
    /// request's, or a bad terminator. The message says which, as AWS's does.
    #[error("{0}")]
    InvalidScope(String),
    /// The signature is wrong: another secret, a tampered request, or a client that
    /// canonicalises differently. `detail` (for the log) says what was compared.
    #[error(
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method. Consult the service \
         documentation for details."
    )]
    SignatureDoesNotMatch { detail: String },
    /// The timestamp is too far from our clock, or a presigned URL has expired.
    #[error("{0}")]
    RequestExpired(String),
    /// Signed for a region that exists but this endpoint does not serve: AWS answers a
    /// region an account has not enabled this way.
    #[error("AWS was not able to validate the provided access credentials")]
    RegionNotEnabled { region: String },
}

/// Which regions an endpoint accepts in a credential scope: one region (`&str`), or a
/// function that says why a region is refused.
pub trait RegionCheck {
    fn check(&self, region: &str) -> Result<(), AuthError>;
}

impl RegionCheck for &str {
    fn check(&self, region: &str) -> Result<(), AuthError> {
        if region == *self {
            Ok(())
        } else {
            Err(invalid_region(region))
        }
    }
}

impl<F: Fn(&str) -> Result<(), AuthError>> RegionCheck for F {
    fn check(&self, region: &str) -> Result<(), AuthError> {
        self(region)
    }
}

/// The answer for a credential scoped to a region that is no region at all.
pub fn invalid_region(region: &str) -> AuthError {
    AuthError::InvalidScope(format!("Credential should be scoped to a valid region, not '{region}'."))
}

impl AuthError {
    /// The EC2 error code a client receives for this error.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingAuthenticationToken => "MissingAuthenticationToken",
            AuthError::IncompleteSignature(_) => "IncompleteSignature",
            AuthError::InvalidClientTokenId { .. } => "AuthFailure",
            // STS and the other Query services answer a badly scoped credential with
            // SignatureDoesNotMatch and a message naming the problem.
            AuthError::InvalidScope(_) => "SignatureDoesNotMatch",
            AuthError::SignatureDoesNotMatch { .. } => "SignatureDoesNotMatch",
            AuthError::RequestExpired(_) => "RequestExpired",
            AuthError::RegionNotEnabled { .. } => "AuthFailure",
        }
    }
}

/// Verifies a SigV4-signed request at time `now`. `lookup_secret` maps an access key id to
/// its secret access key; `expected_region` is the region this endpoint serves.
pub fn verify(
    req: &SignedRequest,
    now: DateTime<Utc>,
    lookup_secret: impl Fn(&str) -> Option<String>,
    expected_region: impl RegionCheck,
) -> Result<Verified, AuthError> {
    verify_for_services(req, now, lookup_secret, &expected_region, SERVICES)
}

/// [`verify`] with the accepted services as a parameter, so the AWS test vectors (signed
/// for service `service` or `iam`) can run through the same code.
fn verify_for_services(
    req: &SignedRequest,
    now: DateTime<Utc>,
    lookup_secret: impl Fn(&str) -> Option<String>,
    expected_region: &dyn RegionCheck,
    services: &[&str],
) -> Result<Verified, AuthError> {
    let auth = parse::extract(req)?;
    let cred = &auth.credential;

    if !services.contains(&cred.service.as_str()) {
        return Err(AuthError::InvalidScope(format!(
            "Credential should be scoped to correct service: '{}'.",
            services.first().copied().unwrap_or_default()
        )));
    }
    expected_region.check(&cred.region)?;
    let stamp = format_timestamp(auth.time);
    if cred.date != stamp[..8] {
        return Err(AuthError::InvalidScope(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '{}' != '{}', from '{stamp}'.",
            cred.date,
            &stamp[..8]
        )));
    }
    check_time(&auth, now)?;

    let secret =
        lookup_secret(&cred.access_key_id).ok_or_else(|| AuthError::InvalidClientTokenId { access_key_id: cred.access_key_id.clone() })?;
    let provided = hex::decode(&auth.signature).unwrap_or_default();
    let key = signing_key(&secret, &cred.date, &cred.region, &cred.service);

    let mut first_canonical = None;
    for payload_hash in payload_hashes(req, &auth)? {
        let canonical = canonical::request(req, &auth.signed_headers, auth.presigned(), &payload_hash)
            .map_err(|detail| AuthError::SignatureDoesNotMatch { detail })?;
        let to_sign = string_to_sign(&stamp, &cred.scope(), &canonical);
        let mut mac = key.clone();
        mac.update(to_sign.as_bytes());
        // verify_slice compares in constant time.
        if mac.verify_slice(&provided).is_ok() {
            return Ok(Verified { access_key_id: cred.access_key_id.clone(), region: cred.region.clone(), service: cred.service.clone() });
        }
        first_canonical.get_or_insert(canonical);
    }
    Err(AuthError::SignatureDoesNotMatch { detail: format!("canonical request:\n{}", first_canonical.unwrap_or_default()) })
}

/// Clock checks: a header-signed request must be within the skew of `now`; a presigned one
/// must not be from the future beyond the skew, nor past its expiry.
fn check_time(auth: &parse::Auth, now: DateTime<Utc>) -> Result<(), AuthError> {
    let skew = Duration::minutes(MAX_CLOCK_SKEW_MINUTES);
    if auth.time > now + skew {
        return Err(AuthError::RequestExpired(format!(
            "Signature not yet current: {} is still later than {} ({} + {MAX_CLOCK_SKEW_MINUTES} min.)",
            format_timestamp(auth.time),
            format_timestamp(now + skew),
            format_timestamp(now),
        )));
    }
    match auth.expires_secs {
        None if auth.time < now - skew => Err(AuthError::RequestExpired(format!(
            "Signature expired: {} is now earlier than {} ({} - {MAX_CLOCK_SKEW_MINUTES} min.)",
            format_timestamp(auth.time),
            format_timestamp(now - skew),
            format_timestamp(now),
        ))),
        Some(expires) if auth.time.checked_add_signed(Duration::seconds(expires)).is_none_or(|end| now > end) => {
            Err(AuthError::RequestExpired("Request has expired".to_string()))
        }
        _ => Ok(()),
    }
}

/// The payload hashes the client may have signed. Only the body's digest, or
/// `UNSIGNED-PAYLOAD` for an empty body, so a signature always covers the body.
fn payload_hashes(req: &SignedRequest, auth: &parse::Auth) -> Result<Vec<String>, AuthError> {
    let body_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(req.body));
    if let Some(claimed) = canonical::header_value(req.headers, "x-amz-content-sha256") {
        let claimed = claimed.trim();
        let ok = claimed.eq_ignore_ascii_case(&body_hash) || (claimed == UNSIGNED_PAYLOAD && req.body.is_empty());
        return if ok {
            Ok(vec![claimed.to_string()])
        } else {
            Err(AuthError::SignatureDoesNotMatch {
                detail: format!("x-amz-content-sha256 is {claimed:?} but the body hashes to {body_hash}"),
            })
        };
    }
    let mut hashes = vec![body_hash];
    if auth.presigned() && req.body.is_empty() {
        hashes.push(UNSIGNED_PAYLOAD.to_string());
    }
    Ok(hashes)
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The derived signing key, as a MAC ready to take the string to sign; kept per secret and
/// scope (see `key_cache.rs`).
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> HmacSha256 {
    static KEYS: std::sync::LazyLock<key_cache::KeyCache> = std::sync::LazyLock::new(key_cache::KeyCache::default);
    KEYS.get(secret, date, region, service).0
}

fn string_to_sign(stamp: &str, scope: &str, canonical_request: &str) -> String {
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(canonical_request.as_bytes()));
    format!("{ALGORITHM}\n{stamp}\n{scope}\n{digest}")
}

/// ISO 8601 basic format, as in `X-Amz-Date`: `20150830T123600Z`.
fn format_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}
