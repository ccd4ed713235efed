//! Cross-checks `corral_auth::sigv4::verify` against a real client: botocore (the signer
//! behind boto3 and the AWS CLI) signs requests through `botocore_sign.py`, and `verify`
//! must accept exactly those, and refuse them once anything signed has changed.
//!
//! Skipped, with a message, where python3 or botocore is not installed.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use corral_auth::sigv4::{verify, AuthError, SignedRequest, Verified};

const AKID: &str = "AKIACORRALTEST000001";
const SECRET: &str = "corral/secret+key/for/botocore/tests00000";
const REGION: &str = "corral-1";

struct Signed {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Signed {
    fn request(&self) -> SignedRequest<'_> {
        SignedRequest { method: &self.method, path: &self.path, query: &self.query, headers: &self.headers, body: &self.body }
    }

    /// When botocore signed: X-Amz-Date from the headers or the presigned query.
    fn signed_at(&self) -> DateTime<Utc> {
        let stamp = self
            .headers
            .iter()
            .find(|(n, _)| n == "x-amz-date")
            .map(|(_, v)| v.clone())
            .or_else(|| self.query.split('&').find_map(|p| p.strip_prefix("X-Amz-Date=").map(str::to_string)))
            .expect("botocore sets X-Amz-Date");
        NaiveDateTime::parse_from_str(&stamp, "%Y%m%dT%H%M%SZ").unwrap().and_utc()
    }
}

fn botocore_available() -> bool {
    match corral_exec::run_blocking("python3", &["-c", "import botocore"]) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("SKIPPED: the botocore cross-check needs python3 with botocore ({e})");
            false
        }
    }
}

fn botocore_sign(mode: &str, method: &str, url: &str, body: &str, secret: &str, service: &str) -> Signed {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/botocore_sign.py");
    let out = corral_exec::run_blocking("python3", &[script, mode, method, url, body, AKID, secret, REGION, service, "300"])
        .expect("botocore_sign.py runs");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("botocore_sign.py prints JSON");
    let url = json["url"].as_str().unwrap();
    let after_scheme = &url[url.find("://").unwrap() + 3..];
    let path_and_query = &after_scheme[after_scheme.find('/').unwrap()..];
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    Signed {
        method: json["method"].as_str().unwrap().to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers: json["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h[0].as_str().unwrap().to_string(), h[1].as_str().unwrap().to_string()))
            .collect(),
        body: json["body"].as_str().unwrap().as_bytes().to_vec(),
    }
}

fn check(req: &SignedRequest, now: DateTime<Utc>) -> Result<Verified, AuthError> {
    verify(req, now, |akid| (akid == AKID).then(|| SECRET.to_string()), REGION)
}

/// Accepted as signed; refused with the body changed by one byte, with another secret, and
/// 16 minutes later (header form) or after its 300 s expiry (presigned).
fn accept_then_refuse(mode: &str, method: &str, url: &str, body: &str, service: &str) {
    let signed = botocore_sign(mode, method, url, body, SECRET, service);
    let now = signed.signed_at();
    let ok = check(&signed.request(), now).unwrap_or_else(|e| panic!("{mode} {url}: {e:?}"));
    assert_eq!(ok, Verified { access_key_id: AKID.into(), region: REGION.into(), service: service.into() });

    // One byte changed; an empty body gains one.
    let mut body = signed.body.clone();
    match body.get_mut(3) {
        Some(b) => *b ^= 0x01,
        None => body.push(b'x'),
    }
    let tampered = SignedRequest { body: &body, ..signed.request() };
    assert_eq!(check(&tampered, now).unwrap_err().code(), "SignatureDoesNotMatch", "{mode} {url}: body changed");

    let other = botocore_sign(mode, method, url, body_str(&signed), "another-secret-key", service);
    let err = check(&other.request(), other.signed_at()).unwrap_err();
    assert!(matches!(err, AuthError::SignatureDoesNotMatch { .. }), "{mode} {url}: other secret: {err:?}");

    let later = if mode == "presign" { Duration::seconds(301) } else { Duration::minutes(16) };
    let err = check(&signed.request(), now + later).unwrap_err();
    assert_eq!(err.code(), "RequestExpired", "{mode} {url}: {err}");
    if mode == "header" {
        let err = check(&signed.request(), now - Duration::minutes(16)).unwrap_err();
        assert_eq!(err.code(), "RequestExpired", "{mode} {url}: {err}");
    }
}

fn body_str(s: &Signed) -> &str {
    std::str::from_utf8(&s.body).unwrap()
}

#[test]
fn botocore_header_signed_post() {
    if !botocore_available() {
        return;
    }
    accept_then_refuse(
        "header",
        "POST",
        "http://corral.example:8773/",
        "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag%3AName&Filter.1.Value.1=web+server",
        "ec2",
    );
    accept_then_refuse("header", "POST", "http://corral.example:8773/", "Action=GetCallerIdentity&Version=2011-06-15", "sts");
}

#[test]
fn botocore_header_signed_get_with_awkward_path_and_query() {
    if !botocore_available() {
        return;
    }
    accept_then_refuse(
        "header",
        "GET",
        "http://corral.example:8773/some%20path/./x//y?Version=2016-11-15&Action=DescribeImages&Owner.1=self&Filter.1.Value.1=a%20b%2Fc~%C3%A9",
        "",
        "ec2",
    );
}

#[test]
fn botocore_presigned_get() {
    if !botocore_available() {
        return;
    }
    accept_then_refuse("presign", "GET", "http://corral.example:8773/?Action=DescribeRegions&Version=2016-11-15", "", "ec2");
    // The shape `aws eks get-token`-style tokens use: a presigned STS GetCallerIdentity.
    accept_then_refuse("presign", "GET", "http://corral.example:8773/?Action=GetCallerIdentity&Version=2011-06-15", "", "sts");
}
