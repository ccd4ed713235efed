//! The pure core: one request, the calling instance's view, the token key and the time in; the
//! response out. No I/O, no clock, no HTTP library.
//!
//! The rules, in the order they apply (AWS's IMDS documentation, "Instance metadata" error
//! codes: 400 for an invalid PUT, 401 for a missing or invalid token, 403 when the request is
//! not allowed or IMDS is turned off, 404 for what does not exist):
//!
//! ```text
//!  endpoint disabled ------------------------------------------------> 403
//!  PUT  /latest/api/token
//!        X-Forwarded-For present ------------------------------------> 403
//!        TTL header missing, not a number, outside 1..=21600 --------> 400
//!        otherwise --------> 200, token, TTL echoed, IP TTL = hop limit
//!  any other method on /latest/api/token, PUT elsewhere, POST, ... --> 405
//!  GET/HEAD
//!        token header present but invalid, expired or another's -----> 401
//!        no token header and HttpTokens=required --------------------> 401
//!        path found ---------------------------------------------------> 200
//!        otherwise ----------------------------------------------------> 404
//! ```

use std::time::SystemTime;

use percent_encoding::percent_decode_str;

use crate::message::{ContentType, ImdsRequest, ImdsResponse, Method, Status};
use crate::token::{TokenKey, MAX_TOKEN_TTL_SECS, MIN_TOKEN_TTL_SECS};
use crate::tree::{resolve, version_tree, Lookup, Node, VERSIONS};
use crate::view::{HttpTokens, InstanceView, Toggle};

/// The longest request path looked at; anything longer is not found. (The deepest real path,
/// `meta-data/network/interfaces/macs/<mac>/ipv4-associations/<ip>`, is under 120 bytes; tag
/// keys add at most 128.)
const MAX_PATH_LEN: usize = 1024;

/// Answers one request from the instance `view` describes.
pub fn handle(req: &ImdsRequest, view: &InstanceView, tokens: &TokenKey, now: SystemTime) -> ImdsResponse {
    if view.options.http_endpoint == Toggle::Disabled {
        return ImdsResponse::error(Status::Forbidden);
    }
    let Some(path) = parse_path(&req.path) else {
        return ImdsResponse::error(Status::NotFound);
    };

    if path.segments == ["latest", "api", "token"] {
        return match req.method {
            Method::Put if !path.trailing_slash => issue_token(req, view, tokens, now),
            _ => ImdsResponse::error(Status::MethodNotAllowed),
        };
    }
    match req.method {
        Method::Get | Method::Head => {}
        Method::Put | Method::Other(_) => return ImdsResponse::error(Status::MethodNotAllowed),
    }

    match (&req.token, view.options.http_tokens) {
        (Some(token), _) => {
            if let Err(e) = tokens.verify(token, &view.instance_id, now) {
                tracing::debug!(instance = %view.instance_id, error = %e, "metadata token refused");
                return ImdsResponse::error(Status::Unauthorized);
            }
        }
        (None, HttpTokens::Required) => return ImdsResponse::error(Status::Unauthorized),
        (None, HttpTokens::Optional) => {}
    }

    lookup(&path, view)
}

fn issue_token(req: &ImdsRequest, view: &InstanceView, tokens: &TokenKey, now: SystemTime) -> ImdsResponse {
    // IMDSv2 refuses token requests that went through a proxy (AWS: "PUT requests that
    // contain an X-Forwarded-For header are not accepted").
    if req.forwarded_for.is_some() {
        return ImdsResponse::error(Status::Forbidden);
    }
    let Some(ttl) = req.token_ttl_seconds.as_deref().and_then(parse_ttl) else {
        return ImdsResponse::error(Status::BadRequest);
    };
    let token = tokens.issue(&view.instance_id, ttl, now);
    ImdsResponse {
        status: Status::Ok,
        content_type: ContentType::Text,
        body: token.into_bytes(),
        token_ttl_seconds: Some(ttl),
        ip_ttl: Some(view.options.hop_limit.clamp(1, 64)),
    }
}

/// `1`..=`21600`, decimal digits only.
fn parse_ttl(raw: &str) -> Option<u32> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 5 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ttl: u32 = raw.parse().ok()?;
    (MIN_TOKEN_TTL_SECS..=MAX_TOKEN_TTL_SECS).contains(&ttl).then_some(ttl)
}

struct Path {
    segments: Vec<String>,
    trailing_slash: bool,
}

/// Splits `/a/b/?q` into decoded segments; `None` for what cannot be a metadata path (no
/// leading slash, an empty or undecodable segment, too long).
fn parse_path(raw: &str) -> Option<Path> {
    let raw = raw.split(['?', '#']).next().unwrap_or("");
    if raw.len() > MAX_PATH_LEN {
        return None;
    }
    let rest = raw.strip_prefix('/')?;
    let trailing_slash = rest.ends_with('/');
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Some(Path { segments: Vec::new(), trailing_slash });
    }
    let mut segments = Vec::new();
    for seg in rest.split('/') {
        let decoded = percent_decode_str(seg).decode_utf8().ok()?;
        if decoded.is_empty() {
            return None;
        }
        segments.push(decoded.into_owned());
    }
    Some(Path { segments, trailing_slash })
}

fn lookup(path: &Path, view: &InstanceView) -> ImdsResponse {
    let Some((version, rest)) = path.segments.split_first() else {
        return ImdsResponse::ok(ContentType::Text, VERSIONS.join("\n").into_bytes());
    };
    if !VERSIONS.contains(&version.as_str()) {
        return ImdsResponse::error(Status::NotFound);
    }
    let tree = version_tree(view);
    match resolve(&tree, rest, path.trailing_slash) {
        Lookup::Found(Node::Dir(d)) => ImdsResponse::ok(ContentType::Text, d.listing().into_bytes()),
        Lookup::Found(Node::Value(ct, bytes)) => ImdsResponse::ok(*ct, bytes.clone()),
        Lookup::NotFound => ImdsResponse::error(Status::NotFound),
    }
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;
