//! Finding the signature in a request: the `Authorization` header, or the `X-Amz-*` query
//! parameters of a presigned URL. Malformed input becomes `IncompleteSignature` with AWS's
//! wording; this module checks form only, the scope and clock are checked by the caller.

use chrono::{DateTime, NaiveDateTime, Utc};

use super::canonical::{header_value, query_pairs, SIGNATURE_PARAM};
use super::{AuthError, SignedRequest, ALGORITHM, MAX_PRESIGN_EXPIRES_SECS};

/// The signature information of one request, well-formed but not yet checked.
#[derive(Debug)]
pub(super) struct Auth {
    pub credential: Credential,
    /// Lowercase names, in the order the client listed them.
    pub signed_headers: Vec<String>,
    /// Hex, as the client sent it.
    pub signature: String,
    /// When the client signed (`X-Amz-Date`, or `Date` for the header form).
    pub time: DateTime<Utc>,
    /// `X-Amz-Expires` of a presigned URL; `None` for the header form.
    pub expires_secs: Option<i64>,
}

impl Auth {
    pub fn presigned(&self) -> bool {
        self.expires_secs.is_some()
    }
}

/// `AKID/20150830/us-east-1/ec2/aws4_request`.
#[derive(Debug)]
pub(super) struct Credential {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
}

impl Credential {
    /// The credential scope: everything after the access key id.
    pub fn scope(&self) -> String {
        format!("{}/{}/{}/aws4_request", self.date, self.region, self.service)
    }
}

const TERMINATOR: &str = "aws4_request";

pub(super) fn extract(req: &SignedRequest) -> Result<Auth, AuthError> {
    let header = header_value(req.headers, "authorization");
    let presigned = query_pairs(req.query).any(|(k, _)| k == "X-Amz-Algorithm");
    match (header, presigned) {
        (Some(_), true) => Err(AuthError::IncompleteSignature(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the \
             Authorization header should be specified"
                .to_string(),
        )),
        (Some(h), false) => from_header(h, req),
        (None, true) => from_query(req),
        (None, false) => Err(AuthError::MissingAuthenticationToken),
    }
}

fn from_header(header: &str, req: &SignedRequest) -> Result<Auth, AuthError> {
    let header = header.trim();
    let (algorithm, rest) = header.split_once(char::is_whitespace).unwrap_or((header, ""));

    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = part.split_once('=') else {
            return Err(AuthError::IncompleteSignature(format!(
                "'{part}' not a valid key=value pair (missing equal-sign) in Authorization \
                 header: '{header}'."
            )));
        };
        let slot = match key.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.replace(value.trim()).is_some() {
            return Err(AuthError::IncompleteSignature(format!(
                "Authorization header has more than one '{key}' parameter. Authorization={header}"
            )));
        }
    }
    let date = header_value(req.headers, "x-amz-date")
        .map(|d| (d, parse_amz_date(d)))
        .or_else(|| header_value(req.headers, "date").map(|d| (d, parse_http_date(d))));

    let mut missing = String::new();
    for (name, absent) in
        [("Credential", credential.is_none()), ("Signature", signature.is_none()), ("SignedHeaders", signed_headers.is_none())]
    {
        if absent {
            missing.push_str(&format!("Authorization header requires '{name}' parameter. "));
        }
    }
    if date.is_none() {
        missing.push_str("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ");
    }
    if !missing.is_empty() {
        return Err(AuthError::IncompleteSignature(format!("{missing}Authorization={header}")));
    }
    if algorithm != ALGORITHM {
        return Err(unsupported_algorithm(algorithm));
    }
    let (credential, signed_headers, signature) =
        (credential.unwrap_or_default(), signed_headers.unwrap_or_default(), signature.unwrap_or_default());
    let (raw_date, time) = date.expect("checked above");
    Ok(Auth {
        credential: parse_credential(credential)?,
        signed_headers: parse_signed_headers(signed_headers)?,
        signature: signature.to_string(),
        time: time.ok_or_else(|| bad_date(raw_date))?,
        expires_secs: None,
    })
}

fn from_query(req: &SignedRequest) -> Result<Auth, AuthError> {
    const PARAMS: [&str; 6] =
        ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", SIGNATURE_PARAM];
    let mut values: [Option<String>; 6] = Default::default();
    for (key, value) in query_pairs(req.query) {
        if let Some(i) = PARAMS.iter().position(|p| *p == key) {
            if values[i].replace(value).is_some() {
                return Err(AuthError::IncompleteSignature(format!("AWS query-string parameter '{key}' appears more than once.")));
            }
        }
    }
    let missing: Vec<String> = PARAMS.iter().zip(&values).filter(|(_, v)| v.is_none()).map(|(p, _)| format!("'{p}'")).collect();
    if !missing.is_empty() {
        return Err(AuthError::IncompleteSignature(format!(
            "AWS query-string parameters must include {}. Re-examine the query-string parameters.",
            missing.join(", ")
        )));
    }
    let [algorithm, credential, date, expires, signed_headers, signature] = values.map(Option::unwrap_or_default);
    if algorithm != ALGORITHM {
        return Err(unsupported_algorithm(&algorithm));
    }
    let expires_secs: i64 =
        expires.parse().map_err(|_| AuthError::IncompleteSignature(format!("X-Amz-Expires should be a number, not '{expires}'.")))?;
    if expires_secs < 0 {
        return Err(AuthError::IncompleteSignature("X-Amz-Expires must be non-negative".to_string()));
    }
    if expires_secs > MAX_PRESIGN_EXPIRES_SECS {
        return Err(AuthError::IncompleteSignature(format!(
            "X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGN_EXPIRES_SECS}"
        )));
    }
    Ok(Auth {
        credential: parse_credential(&credential)?,
        signed_headers: parse_signed_headers(&signed_headers)?,
        time: parse_amz_date(&date).ok_or_else(|| bad_date(&date))?,
        signature,
        expires_secs: Some(expires_secs),
    })
}

fn parse_credential(raw: &str) -> Result<Credential, AuthError> {
    let parts: Vec<&str> = raw.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts[..] else {
        return Err(AuthError::IncompleteSignature(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. \
             keyid/date/region/service/term, got '{raw}'"
        )));
    };
    if terminator != TERMINATOR {
        return Err(AuthError::InvalidScope(format!(
            "Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{terminator}'."
        )));
    }
    if access_key_id.is_empty() {
        return Err(AuthError::IncompleteSignature(format!("Credential has an empty access key id: '{raw}'")));
    }
    Ok(Credential {
        access_key_id: access_key_id.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
    })
}

/// `content-type;host;x-amz-date`: lowercase names, and `host` must be among them.
fn parse_signed_headers(raw: &str) -> Result<Vec<String>, AuthError> {
    let names: Vec<String> = raw.split(';').map(str::to_string).collect();
    if names.iter().any(|n| n.is_empty() || n.bytes().any(|b| b.is_ascii_uppercase())) {
        return Err(AuthError::IncompleteSignature(format!(
            "SignedHeaders must be a ';'-separated list of lowercase header names, got '{raw}'."
        )));
    }
    if !names.iter().any(|n| n == "host" || n == ":authority") {
        return Err(AuthError::IncompleteSignature(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".to_string(),
        ));
    }
    Ok(names)
}

fn parse_amz_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    // chrono's %Y takes a sign and any number of digits; the form is exactly 16 characters.
    if s.len() != 16 {
        return None;
    }
    NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ").ok().map(|t| t.and_utc())
}

/// The `Date` header: RFC 1123 (`Sun, 30 Aug 2015 12:36:00 GMT`), or the basic ISO form
/// some clients put there.
fn parse_http_date(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(s.trim()).ok().map(|t| t.with_timezone(&Utc)).or_else(|| parse_amz_date(s))
}

fn bad_date(raw: &str) -> AuthError {
    AuthError::IncompleteSignature(format!(
        "Date must be in ISO-8601 'basic format'. Got '{raw}'. See \
         http://en.wikipedia.org/wiki/ISO_8601"
    ))
}

fn unsupported_algorithm(algorithm: &str) -> AuthError {
    AuthError::IncompleteSignature(format!("Unsupported AWS 'algorithm': '{algorithm}'. Only '{ALGORITHM}' is supported."))
}
