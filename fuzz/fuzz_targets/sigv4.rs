//! SigV4 (`corral_auth::sigv4`): the parser and verifier on any request, and sign/verify
//! round trips with single-character tampering.
//!
//! Input: 8 control bytes, then a request as text, so that seeds are readable requests:
//!
//! ```text
//!   METHOD PATH[?QUERY]\n   (a trailing \r on any head line is dropped)
//!   Name: value\n ...        (the value trimmed of spaces and tabs, as HTTP does)
//!   \n
//!   body
//! ```
//!
//! 1. The request as given goes through `verify` (at a fixed time, with one known key): it
//!    returns; a success names the known key, the endpoint's region and a served service; no
//!    error, client-visible or logged, carries the secret.
//! 2. The same request, less what signing supplies (`authorization`, `x-amz-date`,
//!    `x-amz-content-sha256`, `X-Amz-*` query parameters) and with a `host`, is signed by the
//!    project's `sign` (header form) or `presign` (query form), for a time, region, service and
//!    expiry the control bytes choose, and verified: the outcome is exactly the one the rules
//!    give (wrong service or region: `InvalidScope`; outside the clock skew or past the expiry:
//!    `RequestExpired`; another secret, or a presigned request with a body:
//!    `SignatureDoesNotMatch`; otherwise success for that key, region and service).
//! 3. A request that verified, with one character of the signed material changed (method,
//!    path, query, a header value, a body byte, the signature), is refused, unless the change
//!    is one SigV4's canonical form does not see (whitespace within a header value; a query
//!    that decodes to the same parameters; hex case in the signature).

#![no_main]

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use corral_auth::sigv4::{
    self, presign, query_pairs, sign, AuthError, SignedRequest, SigningParams, MAX_CLOCK_SKEW_MINUTES, MAX_PRESIGN_EXPIRES_SECS, SERVICES,
};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const OTHER_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ";
const REGION: &str = "us-east-1";

/// The AWS test suite's time, 2015-08-30T12:36:00Z: the seeds are signed for it.
fn now() -> DateTime<Utc> {
    NaiveDateTime::parse_from_str("20150830T123600Z", "%Y%m%dT%H%M%SZ").expect("valid").and_utc()
}

fn lookup(id: &str) -> Option<String> {
    (id == AKID).then(|| SECRET.to_string())
}

struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn signed(&self) -> SignedRequest<'_> {
        SignedRequest { method: &self.method, path: &self.path, query: &self.query, headers: &self.headers, body: &self.body }
    }
}

fn parse_request(data: &[u8]) -> Request {
    let split = data.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(i) => (&data[..i], data[i + 2..].to_vec()),
        None => (data, Vec::new()),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().unwrap_or("");
    let (method, target) = first.split_once(' ').unwrap_or((first, "/"));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.to_string(), v.trim_matches([' ', '\t']).to_string())).collect();
    Request { method: method.to_string(), path: path.to_string(), query: query.to_string(), headers, body }
}

fn no_secret(e: &AuthError, input_has_secret: bool) {
    if !input_has_secret {
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains(SECRET), "an error carries the secret: {shown}");
    }
}

/// The control bytes.
struct Ctl {
    presigned: bool,
    wrong_secret: bool,
    region: &'static str,
    service: &'static str,
    tamper: bool,
    content_sha: Option<bool>,
    offset_secs: i64,
    target: u8,
    position: usize,
    replacement: u8,
    expires: u32,
}

impl Ctl {
    fn read(c: [u8; 8]) -> Ctl {
        Ctl {
            presigned: c[0] & 1 != 0,
            wrong_secret: c[0] & 2 != 0,
            region: [REGION, REGION, "eu-west-1", ""][usize::from((c[0] >> 2) & 3)],
            service: ["ec2", "sts", "s3", "ec2"][usize::from((c[0] >> 4) & 3)],
            tamper: c[0] & 0x40 != 0,
            content_sha: (c[0] & 0x80 != 0).then_some(c[3] & 0x80 != 0),
            offset_secs: i64::from(i16::from_le_bytes([c[1], c[2]])),
            target: c[3] & 0x7f,
            position: usize::from(u16::from_le_bytes([c[4], c[5]])),
            replacement: c[6],
            expires: u32::from(c[7]) * 3000,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let ctl = Ctl::read(data[..8].try_into().expect("8 bytes"));
    let req = parse_request(&data[8..]);
    let input_has_secret = data.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());

    // 1. As given.
    match sigv4::verify(&req.signed(), now(), lookup, REGION) {
        Ok(v) => {
            assert_eq!(v.access_key_id, AKID);
            assert_eq!(v.region, REGION);
            assert!(SERVICES.contains(&v.service.as_str()));
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            no_secret(&e, input_has_secret);
        }
    }

    // 2. Signed by the project's own client half.
    round_trip(req, &ctl, input_has_secret);
});

/// A header name a real request can carry (an HTTP token).
fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header value a real request can carry: no control characters but tab.
fn is_field_value(v: &str) -> bool {
    !v.chars().any(|c| c.is_control() && c != '\t')
}

fn round_trip(mut req: Request, ctl: &Ctl, input_has_secret: bool) {
    const SUPPLIED: [&str; 3] = ["authorization", "x-amz-date", "x-amz-content-sha256"];
    req.headers.retain(|(n, v)| is_token(n) && is_field_value(v) && !SUPPLIED.iter().any(|s| n.eq_ignore_ascii_case(s)));
    if !req.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req.headers.push(("host".into(), "ec2.us-east-1.amazonaws.com".into()));
    }
    // `X-Amz-*` parameters are the presigned form's own.
    req.query = req.query.split('&').filter(|p| !query_pairs(p).any(|(k, _)| k.starts_with("X-Amz-"))).collect::<Vec<_>>().join("&");
    if !ctl.presigned {
        if let Some(upper) = ctl.content_sha {
            let h = if req.body.is_empty() && upper { sigv4::UNSIGNED_PAYLOAD.to_string() } else { hex::encode(Sha256::digest(&req.body)) };
            let h = if upper { h.to_ascii_uppercase() } else { h };
            req.headers.push(("x-amz-content-sha256".into(), h));
        }
    }

    let time = now() + Duration::seconds(ctl.offset_secs);
    let params = SigningParams { access_key_id: AKID, secret_access_key: SECRET, region: ctl.region, service: ctl.service, time };
    if ctl.presigned {
        req.query = presign(&req.signed(), &params, ctl.expires);
    } else {
        let added = sign(&req.signed(), &params);
        req.headers.extend(added);
    }

    let secret = if ctl.wrong_secret { OTHER_SECRET } else { SECRET };
    let lookup = |id: &str| (id == AKID).then(|| secret.to_string());
    let got = sigv4::verify(&req.signed(), now(), lookup, REGION);

    let skew = MAX_CLOCK_SKEW_MINUTES * 60;
    let expected: Result<(), &str> = if ctl.presigned && i64::from(ctl.expires) > MAX_PRESIGN_EXPIRES_SECS {
        Err("IncompleteSignature")
    } else if !SERVICES.contains(&ctl.service) || ctl.region != REGION {
        Err("SignatureDoesNotMatch") // InvalidScope's code
    } else if ctl.offset_secs > skew || (!ctl.presigned && ctl.offset_secs < -skew) {
        Err("RequestExpired")
    } else if ctl.presigned && -ctl.offset_secs > i64::from(ctl.expires) {
        Err("RequestExpired")
    } else if ctl.wrong_secret || (ctl.presigned && !req.body.is_empty()) {
        Err("SignatureDoesNotMatch")
    } else {
        Ok(())
    };
    match (&got, expected) {
        (Ok(v), Ok(())) => {
            assert_eq!((v.access_key_id.as_str(), v.region.as_str(), v.service.as_str()), (AKID, REGION, ctl.service));
        }
        (Err(e), Err(code)) => {
            assert_eq!(e.code(), code, "{e:?}");
            let scope_wrong = !SERVICES.contains(&ctl.service) || ctl.region != REGION;
            if scope_wrong && code != "IncompleteSignature" {
                assert!(matches!(e, AuthError::InvalidScope(_)), "{e:?}");
            }
            no_secret(e, input_has_secret);
        }
        (got, expected) => panic!("verify gave {got:?}, the rules say {expected:?}"),
    }

    if got.is_ok() && ctl.tamper {
        tamper(req, ctl, input_has_secret);
    }
}

fn pick(set: &[u8], b: u8) -> char {
    char::from(set[usize::from(b) % set.len()])
}

/// `s` with its `n`th (modulo) character among those `eligible` replaced by `new`; `None`
/// when there is none or `new` is what is there.
fn replace_char(s: &str, n: usize, new: char, eligible: impl Fn(char) -> bool) -> Option<String> {
    let positions: Vec<(usize, char)> = s.char_indices().filter(|(_, c)| eligible(*c)).collect();
    if positions.is_empty() {
        return None;
    }
    let (at, old) = positions[n % positions.len()];
    if old == new {
        return None;
    }
    let mut out = String::with_capacity(s.len() + 4);
    out.push_str(&s[..at]);
    out.push(new);
    out.push_str(&s[at + old.len_utf8()..]);
    Some(out)
}

fn sorted_pairs(q: &str) -> Vec<(String, String)> {
    let mut v: Vec<_> = query_pairs(q).collect();
    v.sort();
    v
}

fn collapse(v: &str) -> String {
    v.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

const URL_CHARS: &[u8] = b"AZaz09-_.~!$&'()*+,;=:@%/";
const HEX_CHARS: &[u8] = b"0123456789abcdefABCDEFg";

fn tamper(mut req: Request, ctl: &Ctl, input_has_secret: bool) {
    let n = ctl.position;
    let r = ctl.replacement;
    // Whether the changed request must still verify.
    let still_valid: bool;
    match ctl.target % 6 {
        0 => {
            let Some(m) = replace_char(&req.method, n, pick(b"GETPOSUXZ-", r), |_| true) else { return };
            req.method = m;
            still_valid = false;
        }
        1 => {
            // Dot segments make different paths one (`/a/..` is `/b/..`); keep to paths without.
            if req.path.contains('.') {
                return;
            }
            let new = pick(b"AZaz09-_~!$&'()*+,;=:@%", r);
            let Some(p) = replace_char(&req.path, n, new, |c| c != '/') else { return };
            req.path = p;
            still_valid = false;
        }
        2 => {
            let Some(q) = replace_char(&req.query, n, pick(URL_CHARS, r), |_| true) else { return };
            let (before, after) = (sorted_pairs(&req.query), sorted_pairs(&q));
            // The signature is hex, read whatever its case.
            let sig = |v: &Vec<(String, String)>| v.iter().find(|(k, _)| k == "X-Amz-Signature").map(|(_, s)| s.to_ascii_lowercase());
            let rest = |v: &Vec<(String, String)>| v.iter().filter(|(k, _)| k != "X-Amz-Signature").cloned().collect::<Vec<_>>();
            let same_sig = sig(&before) == sig(&after) && after.iter().filter(|(k, _)| k == "X-Amz-Signature").count() == 1;
            still_valid = before == after || (ctl.presigned && rest(&before) == rest(&after) && same_sig);
            req.query = q;
        }
        3 => {
            let candidates: Vec<usize> =
                (0..req.headers.len()).filter(|&i| !req.headers[i].0.eq_ignore_ascii_case("authorization")).collect();
            if candidates.is_empty() {
                return;
            }
            let i = candidates[n % candidates.len()];
            let set: Vec<u8> = (0x20..0x7f).chain([b'\t']).collect();
            let old = req.headers[i].1.clone();
            let Some(v) = replace_char(&old, n / candidates.len().max(1), pick(&set, r), |_| true) else { return };
            // A header is signed as its value trimmed, each run of whitespace one space.
            still_valid = collapse(&old) == collapse(&v);
            req.headers[i].1 = v;
        }
        4 => {
            if req.body.is_empty() {
                return;
            }
            let i = n % req.body.len();
            req.body[i] ^= r | 1;
            still_valid = false;
        }
        _ => {
            let new = pick(HEX_CHARS, r);
            if ctl.presigned {
                let at = req.query.rfind("X-Amz-Signature=").expect("presigned") + "X-Amz-Signature=".len();
                let (head, sig) = req.query.split_at(at);
                let Some(s) = replace_char(sig, n, new, |_| true) else { return };
                still_valid = s.eq_ignore_ascii_case(sig);
                req.query = format!("{head}{s}");
            } else {
                let h = req.headers.iter_mut().find(|(n, _)| n == "authorization").expect("signed");
                let at = h.1.rfind("Signature=").expect("signed") + "Signature=".len();
                let (head, sig) = h.1.split_at(at);
                let Some(s) = replace_char(sig, n, new, |_| true) else { return };
                still_valid = s.eq_ignore_ascii_case(sig);
                h.1 = format!("{head}{s}");
            }
        }
    }
    match sigv4::verify(&req.signed(), now(), lookup, REGION) {
        Ok(_) => assert!(still_valid, "a changed request still verifies (target {})", ctl.target % 6),
        Err(e) => {
            assert!(!still_valid, "a change SigV4 does not see was refused (target {}): {e:?}", ctl.target % 6);
            no_secret(&e, input_has_secret);
        }
    }
}
