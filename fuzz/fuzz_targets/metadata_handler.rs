//! The metadata service's core (`corral_metadata::handle`) on any request from an untrusted
//! guest: any method, path, token, TTL and `X-Forwarded-For`, against a fixed instance
//! (`example::instance_view`) whose options (tokens optional or required, endpoint on or off,
//! hop limit, tags in metadata) and one extra tag the input chooses.
//!
//! Checked, beyond "it returns":
//! - the status is one the handler documents (200, 400, 401, 403, 404, 405); every error is
//!   IMDS's HTML page for that status and nothing else; only a token PUT sets a TTL or an IP TTL;
//! - the endpoint off: 403 to everything;
//! - no data without a valid token when tokens are required, nor with a token that is invalid,
//!   expired or another instance's, whatever the setting;
//! - a token PUT succeeds exactly when it is a PUT of `/latest/api/token` (no trailing slash)
//!   without `X-Forwarded-For` and with a TTL of 1..=21600 in at most five decimal digits; the
//!   token it returns is valid for this instance for that long and no longer, and for no other
//!   instance; its IP TTL is the hop limit;
//! - the answer does not depend on what it should not: HEAD is answered as GET, a query string
//!   is ignored, every version serves the same tree as `latest`, and with tokens optional a
//!   valid token changes nothing;
//! - with tags in metadata on, the extra tag is served at its (percent-encoded) path.

#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbitrary::Arbitrary;
use corral_metadata::example::instance_view;
use corral_metadata::message::error_page;
use corral_metadata::tree::VERSIONS;
use corral_metadata::{
    handle, ContentType, HttpTokens, ImdsRequest, ImdsResponse, InstanceView, Method, Status, Toggle, TokenKey, MAX_TOKEN_TTL_SECS,
    MIN_TOKEN_TTL_SECS,
};
use libfuzzer_sys::fuzz_target;
use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};

const INSTANCE: &str = "i-0aaaaaaaaaaaaaaaa";
const OTHER_INSTANCE: &str = "i-0bbbbbbbbbbbbbbbb";

/// Real paths to start from; the input may add to them.
const PATHS: &[&str] = &[
    "/",
    "/latest",
    "/latest/",
    "/latest/api/token",
    "/latest/api/token/",
    "/latest/meta-data/",
    "/latest/meta-data/instance-id",
    "/latest/meta-data/public-keys/0/openssh-key",
    "/latest/meta-data/network/interfaces/macs/",
    "/latest/meta-data/tags/instance/",
    "/latest/meta-data/iam/security-credentials/",
    "/latest/user-data",
    "/latest/dynamic/instance-identity/document",
    "/2009-04-04/meta-data/",
    "/2021-03-23/meta-data/placement/region",
];

#[derive(Arbitrary, Debug)]
enum MethodIn {
    Get,
    Head,
    Put,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum TokenIn {
    None,
    /// Issued by the service's key to `instance` (this one or another), `ttl` seconds long,
    /// `age` seconds ago (negative: in the future).
    Issued {
        other_instance: bool,
        ttl: u16,
        age: i32,
    },
    /// Issued by another key.
    Forged {
        ttl: u16,
    },
    Raw(String),
}

#[derive(Arbitrary, Debug)]
struct Input {
    method: MethodIn,
    path_base: u8,
    path_tail: String,
    token: TokenIn,
    ttl: Option<String>,
    forwarded_for: Option<String>,
    tokens_required: bool,
    endpoint_disabled: bool,
    hop_limit: u8,
    tags_enabled: bool,
    tag: (String, String),
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn key() -> TokenKey {
    TokenKey::from_bytes([42; 32])
}

fn view(input: &Input) -> InstanceView {
    let mut v = instance_view(INSTANCE, Ipv4Addr::new(10, 0, 1, 5));
    v.options.http_tokens = if input.tokens_required { HttpTokens::Required } else { HttpTokens::Optional };
    v.options.http_endpoint = if input.endpoint_disabled { Toggle::Disabled } else { Toggle::Enabled };
    v.options.hop_limit = input.hop_limit;
    v.options.instance_metadata_tags = if input.tags_enabled { Toggle::Enabled } else { Toggle::Disabled };
    v.tags.push(input.tag.clone());
    v
}

/// Whether `path` (query and fragment cut, a trailing slash allowed) is `/latest/api/token`,
/// however percent-encoded.
fn is_token_path(path: &str) -> bool {
    let p = path.split(['?', '#']).next().unwrap_or("");
    let p = p.strip_suffix('/').unwrap_or(p);
    let segs: Option<Vec<String>> =
        p.strip_prefix('/').map(|r| r.split('/').map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned()).collect());
    segs.is_some_and(|s| s == ["latest", "api", "token"])
}

fn documented(status: Status) -> bool {
    matches!(status.code(), 200 | 400 | 401 | 403 | 404 | 405)
}

fn token_header(input: &TokenIn) -> Option<String> {
    match input {
        TokenIn::None => None,
        TokenIn::Issued { other_instance, ttl, age } => {
            let issued_at = if *age >= 0 {
                now() - Duration::from_secs(u64::from(age.unsigned_abs()))
            } else {
                now() + Duration::from_secs(u64::from(age.unsigned_abs()))
            };
            Some(key().issue(if *other_instance { OTHER_INSTANCE } else { INSTANCE }, u32::from(*ttl), issued_at))
        }
        TokenIn::Forged { ttl } => Some(TokenKey::from_bytes([7; 32]).issue(INSTANCE, u32::from(*ttl), now())),
        TokenIn::Raw(s) => Some(s.clone()),
    }
}

/// The TTL rule, written out: 1..=21600 in at most five decimal digits (the handler cuts
/// longer values before parsing, so `000060` is refused), surrounding whitespace allowed.
fn ttl_ok(raw: &str) -> Option<u32> {
    let t = raw.trim();
    if t.is_empty() || t.len() > 5 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u32 = t.parse().ok()?;
    (MIN_TOKEN_TTL_SECS..=MAX_TOKEN_TTL_SECS).contains(&n).then_some(n)
}

fn check_shape(resp: &ImdsResponse, req: &ImdsRequest) {
    assert!(documented(resp.status), "undocumented status {:?}", resp.status);
    if resp.status != Status::Ok {
        assert_eq!(resp.content_type, ContentType::Html);
        assert_eq!(resp.body, error_page(resp.status).into_bytes());
        assert_eq!((resp.token_ttl_seconds, resp.ip_ttl), (None, None));
    }
    if resp.token_ttl_seconds.is_some() || resp.ip_ttl.is_some() {
        assert!(req.method == Method::Put && resp.status == Status::Ok);
    }
}

fuzz_target!(|input: Input| {
    let view = view(&input);
    let key = key();
    let base = PATHS[usize::from(input.path_base) % PATHS.len()];
    let path = format!("{base}{}", input.path_tail);
    let method = match &input.method {
        MethodIn::Get => Method::Get,
        MethodIn::Head => Method::Head,
        MethodIn::Put => Method::Put,
        MethodIn::Other(m) => Method::parse(m),
    };
    let token = token_header(&input.token);
    let req = ImdsRequest {
        method: method.clone(),
        path: path.clone(),
        token: token.clone(),
        token_ttl_seconds: input.ttl.clone(),
        forwarded_for: input.forwarded_for.clone(),
    };
    let resp = handle(&req, &view, &key, now());
    check_shape(&resp, &req);

    if input.endpoint_disabled {
        assert_eq!(resp.status, Status::Forbidden);
        return;
    }

    let token_valid = token.as_deref().is_some_and(|t| key.verify(t, INSTANCE, now()).is_ok());
    match method {
        Method::Get | Method::Head => {
            if resp.status == Status::Ok {
                assert!(!is_token_path(&path), "a GET of the token path answered");
                match &token {
                    Some(_) => assert!(token_valid, "data for an invalid token"),
                    None => assert!(!input.tokens_required, "data without a token while tokens are required"),
                }
            }
            if token.is_some() && !token_valid {
                assert!(resp.status != Status::Ok, "an invalid token was accepted");
            }
        }
        Method::Put => {
            let expected_ttl = input.ttl.as_deref().and_then(ttl_ok);
            let well_formed = is_token_path(&path) && !path.split(['?', '#']).next().unwrap_or("").ends_with('/');
            if resp.status == Status::Ok {
                assert!(well_formed, "a PUT elsewhere than the token path answered: {path:?}");
                assert!(input.forwarded_for.is_none(), "a token through a proxy");
                let ttl = expected_ttl.expect("a token for a bad TTL");
                assert_eq!(resp.token_ttl_seconds, Some(ttl));
                assert_eq!(resp.ip_ttl, Some(input.hop_limit.clamp(1, 64)));
                let issued = String::from_utf8(resp.body.clone()).expect("a token is text");
                assert_eq!(key.verify(&issued, INSTANCE, now()), Ok(u64::from(ttl)));
                assert!(key.verify(&issued, OTHER_INSTANCE, now()).is_err());
                assert!(key.verify(&issued, INSTANCE, now() + Duration::from_secs(u64::from(ttl))).is_err());
            } else if well_formed && path.len() <= 1024 && input.forwarded_for.is_none() && expected_ttl.is_some() {
                panic!("a well-formed token PUT was refused: {:?}", resp.status);
            }
        }
        Method::Other(_) => assert_ne!(resp.status, Status::Ok),
    }

    // What must not matter.
    if matches!(req.method, Method::Get | Method::Head) {
        let other = Method::Head;
        let again =
            handle(&ImdsRequest { method: if req.method == Method::Get { other } else { Method::Get }, ..req.clone() }, &view, &key, now());
        assert_eq!(again, resp, "HEAD and GET differ");
    }
    if !path.contains(['?', '#']) {
        let again = handle(&ImdsRequest { path: format!("{path}?{}", input.path_tail), ..req.clone() }, &view, &key, now());
        assert_eq!(again, resp, "a query string changed the answer");
    }
    if let Some(rest) = path.strip_prefix("/latest/") {
        if !is_token_path(&path) {
            for v in [VERSIONS[0], "2009-04-04", "2021-03-23"] {
                let again = handle(&ImdsRequest { path: format!("/{v}/{rest}"), ..req.clone() }, &view, &key, now());
                if format!("/{v}/{rest}").len() <= 1024 && path.len() <= 1024 {
                    assert_eq!(again, resp, "/{v}/ differs from /latest/");
                }
            }
        }
    }
    if !input.tokens_required && token_valid {
        let again = handle(&ImdsRequest { token: None, ..req.clone() }, &view, &key, now());
        assert_eq!(again, resp, "a valid token changed an answer while tokens are optional");
    }

    // The extra tag, served where it should be.
    let (k, v) = &input.tag;
    let servable = !k.is_empty() && !k.contains('/') && !k.contains(' ') && k != "." && k != ".." && k != "_index";
    let tag_path = format!("/latest/meta-data/tags/instance/{}", utf8_percent_encode(k, NON_ALPHANUMERIC));
    if input.tags_enabled && servable && tag_path.len() <= 1024 {
        let tag_req =
            ImdsRequest { method: Method::Get, path: tag_path, token: token.clone(), token_ttl_seconds: None, forwarded_for: None };
        let got = handle(&tag_req, &view, &key, now());
        if token_valid || (token.is_none() && !input.tokens_required) {
            assert_eq!(got.status, Status::Ok, "tag {k:?} not served");
            assert_eq!(got.body, v.as_bytes());
        } else {
            assert_eq!(got.status, Status::Unauthorized);
        }
    }
});
