//! SigV4 tests: round trips through [`sign`] in the header form and every refusal with its EC2
//! code; AWS's published vectors in `tests/vectors.rs`, presigned URLs in `tests/presigned.rs`.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use hmac::Mac;

use super::*;

mod presigned;
mod vectors;

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const VECTOR_TIME: &str = "20150830T123600Z";

fn at(stamp: &str) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ").unwrap().and_utc()
}

fn headers(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn lookup(akid: &str) -> Option<String> {
    (akid == AKID).then(|| SECRET.to_string())
}

fn signature_of(authorization: &str) -> &str {
    authorization.rsplit_once("Signature=").unwrap().1
}

// ---- round trips and refusals, for the EC2 endpoint ----

const NOW: &str = "20261126T101500Z";
const REGION: &str = "corral-1";
const BODY: &[u8] = b"Action=DescribeInstances&Version=2016-11-15";

fn params(service: &'static str) -> SigningParams<'static> {
    SigningParams { access_key_id: AKID, secret_access_key: SECRET, region: REGION, service, time: at(NOW) }
}

/// A POST as the AWS CLI sends it, signed in the header form; returns all its headers.
fn signed_post(params: &SigningParams, body: &[u8]) -> Vec<(String, String)> {
    let mut hdrs = headers(&[("host", "corral.example:8773"), ("content-type", "application/x-www-form-urlencoded; charset=utf-8")]);
    let req = SignedRequest { method: "POST", path: "/", query: "", headers: &hdrs, body };
    let added = sign(&req, params);
    hdrs.extend(added);
    hdrs
}

fn post<'a>(hdrs: &'a [(String, String)], body: &'a [u8]) -> SignedRequest<'a> {
    SignedRequest { method: "POST", path: "/", query: "", headers: hdrs, body }
}

fn verify_at(req: &SignedRequest, now: DateTime<Utc>) -> Result<Verified, AuthError> {
    verify(req, now, lookup, REGION)
}

fn set_header(hdrs: &mut [(String, String)], name: &str, value: &str) {
    hdrs.iter_mut().find(|(n, _)| n == name).unwrap().1 = value.to_string();
}

#[test]
fn header_form_round_trip_for_ec2_and_sts() {
    for service in ["ec2", "sts"] {
        let hdrs = signed_post(&params(service), BODY);
        let ok = verify_at(&post(&hdrs, BODY), at(NOW)).unwrap();
        assert_eq!(ok, Verified { access_key_id: AKID.into(), region: REGION.into(), service: service.into() });
    }
}

#[test]
fn tampering_is_refused() {
    let hdrs = signed_post(&params("ec2"), BODY);
    let mut body = BODY.to_vec();
    body[7] ^= 1;
    let err = verify_at(&post(&hdrs, &body), at(NOW)).unwrap_err();
    assert_eq!(err.code(), "SignatureDoesNotMatch");
    assert!(err.to_string().starts_with("The request signature we calculated does not match"), "{err}");

    let mut changed = hdrs.clone();
    set_header(&mut changed, "content-type", "text/plain");
    assert_eq!(verify_at(&post(&changed, BODY), at(NOW)).unwrap_err().code(), "SignatureDoesNotMatch");

    let req = SignedRequest { path: "/other", ..post(&hdrs, BODY) };
    assert_eq!(verify_at(&req, at(NOW)).unwrap_err().code(), "SignatureDoesNotMatch");
    let req = SignedRequest { query: "Action=TerminateInstances", ..post(&hdrs, BODY) };
    assert_eq!(verify_at(&req, at(NOW)).unwrap_err().code(), "SignatureDoesNotMatch");
    let req = SignedRequest { method: "PUT", ..post(&hdrs, BODY) };
    assert_eq!(verify_at(&req, at(NOW)).unwrap_err().code(), "SignatureDoesNotMatch");
}

#[test]
fn unsigned_headers_may_change() {
    let mut hdrs = signed_post(&params("ec2"), BODY);
    hdrs.push(("user-agent".into(), "aws-cli/2".into()));
    verify_at(&post(&hdrs, BODY), at(NOW)).unwrap();
}

#[test]
fn wrong_secret_and_unknown_key() {
    let mut p = params("ec2");
    p.secret_access_key = "another-secret";
    let hdrs = signed_post(&p, BODY);
    let err = verify_at(&post(&hdrs, BODY), at(NOW)).unwrap_err();
    assert!(matches!(err, AuthError::SignatureDoesNotMatch { .. }), "{err:?}");

    p = params("ec2");
    p.access_key_id = "AKIDUNKNOWN";
    let hdrs = signed_post(&p, BODY);
    let err = verify_at(&post(&hdrs, BODY), at(NOW)).unwrap_err();
    assert_eq!(err, AuthError::InvalidClientTokenId { access_key_id: "AKIDUNKNOWN".into() });
    assert_eq!(err.code(), "AuthFailure");
    assert_eq!(err.to_string(), "AWS was not able to validate the provided access credentials");
}

#[test]
fn clock_skew_limit_is_fifteen_minutes() {
    let hdrs = signed_post(&params("ec2"), BODY);
    let req = post(&hdrs, BODY);
    for minutes in [-15, 15] {
        verify_at(&req, at(NOW) + Duration::minutes(minutes)).unwrap();
    }
    let err = verify_at(&req, at(NOW) + Duration::minutes(16)).unwrap_err();
    assert_eq!(err.code(), "RequestExpired");
    assert_eq!(
        err.to_string(),
        "Signature expired: 20261126T101500Z is now earlier than 20261126T101600Z \
         (20261126T103100Z - 15 min.)"
    );
    let err = verify_at(&req, at(NOW) - Duration::minutes(16)).unwrap_err();
    assert_eq!(err.code(), "RequestExpired");
    assert!(err.to_string().starts_with("Signature not yet current"), "{err}");
}

#[test]
fn scope_must_match_region_service_and_date() {
    let mut p = params("ec2");
    p.region = "us-east-1";
    let hdrs = signed_post(&p, BODY);
    let err = verify_at(&post(&hdrs, BODY), at(NOW)).unwrap_err();
    assert_eq!(err.code(), "SignatureDoesNotMatch");
    assert_eq!(err.to_string(), "Credential should be scoped to a valid region, not 'us-east-1'.");

    let hdrs = signed_post(&params("s3"), BODY);
    let err = verify_at(&post(&hdrs, BODY), at(NOW)).unwrap_err();
    assert_eq!(err.to_string(), "Credential should be scoped to correct service: 'ec2'.");

    // Signed just before midnight with the previous day's scope, X-Amz-Date after it.
    let mut hdrs = signed_post(&params("ec2"), BODY);
    set_header(&mut hdrs, "x-amz-date", "20261127T000100Z");
    let err = verify_at(&post(&hdrs, BODY), at("20261127T000100Z")).unwrap_err();
    assert_eq!(err.code(), "SignatureDoesNotMatch");
    assert_eq!(
        err.to_string(),
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from \
         HTTP: '20261126' != '20261127', from '20261127T000100Z'."
    );

    let mut hdrs = signed_post(&params("ec2"), BODY);
    let auth = header(&hdrs, "authorization").replace("/aws4_request", "/aws4_reqest");
    set_header(&mut hdrs, "authorization", &auth);
    let err = verify_at(&post(&hdrs, BODY), at(NOW)).unwrap_err();
    assert_eq!(err.to_string(), "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws4_reqest'.");
}

fn header<'h>(hdrs: &'h [(String, String)], name: &str) -> &'h str {
    canonical::header_value(hdrs, name).unwrap()
}

#[test]
fn missing_authentication() {
    let hdrs = headers(&[("host", "corral.example")]);
    let err = verify_at(&post(&hdrs, BODY), at(NOW)).unwrap_err();
    assert_eq!(err, AuthError::MissingAuthenticationToken);
    assert_eq!(err.code(), "MissingAuthenticationToken");
}

#[test]
fn malformed_authorization_header() {
    let base = signed_post(&params("ec2"), BODY);
    let with_auth = |auth: &str, drop_date: bool| {
        let mut hdrs = base.clone();
        set_header(&mut hdrs, "authorization", auth);
        if drop_date {
            hdrs.retain(|(n, _)| n != "x-amz-date");
        }
        verify_at(&post(&hdrs, BODY), at(NOW)).unwrap_err()
    };

    let err = with_auth("Bearer abc", true);
    assert_eq!(err.code(), "IncompleteSignature");
    assert_eq!(err.to_string(), "'abc' not a valid key=value pair (missing equal-sign) in Authorization header: 'Bearer abc'.");

    let err = with_auth("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/corral-1/ec2/aws4_request", true);
    assert_eq!(
        err.to_string(),
        "Authorization header requires 'Signature' parameter. Authorization header requires \
         'SignedHeaders' parameter. Authorization header requires existence of either a \
         'X-Amz-Date' or a 'Date' header. Authorization=AWS4-HMAC-SHA256 \
         Credential=AKIDEXAMPLE/20261126/corral-1/ec2/aws4_request"
    );

    let err = with_auth("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/ec2, SignedHeaders=host, Signature=00", false);
    assert_eq!(err.code(), "IncompleteSignature");
    assert!(err.to_string().starts_with("Credential must have exactly 5 slash-delimited elements"), "{err}");

    let signed = header(&base, "authorization").to_string();
    let err = with_auth(&signed.replace("SignedHeaders=content-type;host;", "SignedHeaders=content-type;"), false);
    assert_eq!(err.to_string(), "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");

    let err = with_auth(&signed.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"), false);
    assert_eq!(err.code(), "IncompleteSignature");

    // A signature that is not even hex is simply wrong.
    let err = with_auth(&format!("{}zz", &signed[..signed.len() - 2]), false);
    assert_eq!(err.code(), "SignatureDoesNotMatch");

    let mut hdrs = base.clone();
    set_header(&mut hdrs, "x-amz-date", "2026-11-26T10:15:00Z");
    let err = verify_at(&post(&hdrs, BODY), at(NOW)).unwrap_err();
    assert_eq!(err.code(), "IncompleteSignature");
    assert!(err.to_string().starts_with("Date must be in ISO-8601 'basic format'"), "{err}");
}

#[test]
fn authorization_header_spacing_is_flexible() {
    let mut hdrs = signed_post(&params("ec2"), BODY);
    let squeezed = header(&hdrs, "authorization").replace(", ", ",");
    set_header(&mut hdrs, "authorization", &squeezed);
    verify_at(&post(&hdrs, BODY), at(NOW)).unwrap();
}

/// The signature over `req` with exactly these signed headers and payload hash, computed
/// from the parts rather than through `sign`, for requests `sign` does not make.
fn signature_over(req: &SignedRequest, signed: &[&str], payload: &str, presigned: bool, service: &str) -> String {
    let signed: Vec<String> = signed.iter().map(|s| s.to_string()).collect();
    let canonical = canonical::request(req, &signed, presigned, payload).unwrap();
    let stamp = format_timestamp(at(NOW));
    let scope = format!("{}/{REGION}/{service}/aws4_request", &stamp[..8]);
    let mut mac = signing_key(SECRET, &stamp[..8], REGION, service);
    mac.update(string_to_sign(&stamp, &scope, &canonical).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn empty_hash() -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b""))
}

#[test]
fn date_header_instead_of_x_amz_date() {
    let mut hdrs = headers(&[("host", "corral.example"), ("date", "Thu, 26 Nov 2026 10:15:00 GMT")]);
    let req = SignedRequest { method: "GET", path: "/", query: "Action=DescribeRegions", headers: &hdrs, body: b"" };
    let sig = signature_over(&req, &["date", "host"], &empty_hash(), false, "ec2");
    hdrs.push((
        "authorization".into(),
        format!("{ALGORITHM} Credential={AKID}/20261126/{REGION}/ec2/aws4_request, SignedHeaders=date;host, Signature={sig}"),
    ));
    let req = SignedRequest { method: "GET", path: "/", query: "Action=DescribeRegions", headers: &hdrs, body: b"" };
    verify_at(&req, at(NOW)).unwrap();
    assert_eq!(verify_at(&req, at(NOW) + Duration::minutes(16)).unwrap_err().code(), "RequestExpired");
}

#[test]
fn content_sha256_header_must_match_the_body() {
    let body_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(BODY));
    let mut hdrs = headers(&[("host", "corral.example"), ("x-amz-content-sha256", &body_hash)]);
    let req = SignedRequest { method: "POST", path: "/", query: "", headers: &hdrs, body: BODY };
    let added = sign(&req, &params("ec2"));
    hdrs.extend(added);
    verify_at(&post(&hdrs, BODY), at(NOW)).unwrap();
    let err = verify_at(&post(&hdrs, b"Action=RunInstances"), at(NOW)).unwrap_err();
    assert!(matches!(&err, AuthError::SignatureDoesNotMatch { detail } if detail.contains("x-amz-content-sha256")), "{err:?}");

    // UNSIGNED-PAYLOAD would leave the body unauthenticated: refused unless it is empty.
    let mut hdrs = headers(&[("host", "corral.example"), ("x-amz-content-sha256", UNSIGNED_PAYLOAD)]);
    let req = SignedRequest { method: "POST", path: "/", query: "", headers: &hdrs, body: BODY };
    let added = sign(&req, &params("ec2"));
    hdrs.extend(added);
    assert_eq!(verify_at(&post(&hdrs, BODY), at(NOW)).unwrap_err().code(), "SignatureDoesNotMatch");
}

#[test]
fn path_is_double_encoded_and_normalised() {
    let mut hdrs = headers(&[("host", "corral.example")]);
    let path = "/a%20b/./c//d/";
    let added = sign(&SignedRequest { method: "GET", path, query: "", headers: &hdrs, body: b"" }, &params("ec2"));
    hdrs.extend(added);
    let req = SignedRequest { method: "GET", path, query: "", headers: &hdrs, body: b"" };
    verify_at(&SignedRequest { headers: &hdrs, ..req }, at(NOW)).unwrap();
    // The same path written differently normalises the same.
    verify_at(&SignedRequest { headers: &hdrs, path: "/a%20b/c/x/../d/", ..req }, at(NOW)).unwrap();
    // But a differently encoded one does not.
    let err = verify_at(&SignedRequest { headers: &hdrs, path: "/a b/c/d/", ..req }, at(NOW)).unwrap_err();
    assert_eq!(err.code(), "SignatureDoesNotMatch");
}

// ---- hostile input ----

/// Malformed and random input must come back as an error, never a panic. (A cheap stand-in
/// for a fuzz target over the same entry point.)
#[test]
fn hostile_input_is_refused_without_panicking() {
    use rand::{Rng, SeedableRng};

    let nasty = [
        "",
        " ",
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 ",
        "AWS4-HMAC-SHA256 ,,,",
        "AWS4-HMAC-SHA256 Credential=, SignedHeaders=, Signature=",
        "AWS4-HMAC-SHA256 Credential=////, SignedHeaders=host, Signature=",
        "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, SignedHeaders=;;, Signature=zz",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/2026112\u{e9}/corral-1/ec2/aws4_request, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential==, =, Signature==",
        "\u{1F600} Credential=\u{1F600}",
    ];
    let dates = [
        "",
        "x",
        "20261126T101500Z",
        "+9999999T999999Z",
        "-0010101T000000Z",
        "99991231T235959Z",
        "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
    ];
    let queries = [
        "",
        "&&&",
        "X-Amz-Algorithm",
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%&X-Amz-Date=%ZZ&X-Amz-Expires=-1&X-Amz-SignedHeaders=host&X-Amz-Signature=",
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F99991231%2Fcorral-1%2Fec2%2Faws4_request&X-Amz-Date=99991231T235959Z&X-Amz-Expires=604800&X-Amz-SignedHeaders=host&X-Amz-Signature=00",
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=99999999999999999999999",
        "a=%FF%FE&b=%C3",
    ];
    let check = |auth: &str, date: &str, query: &str, path: &str| {
        let mut hdrs = headers(&[("host", "h"), ("x-amz-date", date), ("date", date)]);
        if !auth.is_empty() {
            hdrs.push(("authorization".into(), auth.into()));
        }
        let req = SignedRequest { method: "GET", path, query, headers: &hdrs, body: b"" };
        assert!(verify_at(&req, at(NOW)).is_err(), "{auth:?} {date:?} {query:?}");
    };
    for auth in nasty {
        for date in dates {
            for query in queries {
                check(auth, date, query, "/");
            }
        }
    }

    // Random mutations of a valid header-signed request.
    let hdrs = signed_post(&params("ec2"), BODY);
    let valid = header(&hdrs, "authorization").to_string();
    let alphabet: Vec<char> = "AWS4-HMAC-SHA256 Credential=/,;=abc0\u{e9}%. \t".chars().collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5167_7634);
    for _ in 0..2000 {
        let mut chars: Vec<char> = valid.chars().collect();
        for _ in 0..rng.gen_range(1..6) {
            let i = rng.gen_range(0..chars.len());
            match rng.gen_range(0..3) {
                0 => chars[i] = alphabet[rng.gen_range(0..alphabet.len())],
                1 => {
                    chars.remove(i);
                }
                _ => chars.insert(i, alphabet[rng.gen_range(0..alphabet.len())]),
            }
        }
        let mutated: String = chars.into_iter().collect();
        if mutated == valid {
            continue;
        }
        let mut changed = hdrs.clone();
        set_header(&mut changed, "authorization", &mutated);
        // A mutation may leave the signature valid (e.g. whitespace), but must not panic.
        let _ = verify_at(&post(&changed, BODY), at(NOW));
        let path: String = mutated.chars().take(20).collect();
        let _ = verify_at(&SignedRequest { path: &path, query: &mutated, ..post(&hdrs, BODY) }, at(NOW));
    }
}
