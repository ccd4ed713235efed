//! Presigned URLs (the query form): round trips, expiry, tampering, their parameters.

use super::*;

fn presigned_get(p: &SigningParams, expires: u32) -> (Vec<(String, String)>, String) {
    let hdrs = headers(&[("host", "corral.example:8773")]);
    let req = SignedRequest { method: "GET", path: "/", query: "Action=DescribeRegions&Version=2016-11-15", headers: &hdrs, body: b"" };
    let query = presign(&req, p, expires);
    (hdrs, query)
}

fn get<'a>(hdrs: &'a [(String, String)], query: &'a str) -> SignedRequest<'a> {
    SignedRequest { method: "GET", path: "/", query, headers: hdrs, body: b"" }
}

#[test]
fn presigned_round_trip_and_expiry() {
    let (hdrs, query) = presigned_get(&params("ec2"), 300);
    assert!(query.starts_with("Action=DescribeRegions&Version=2016-11-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261126%2Fcorral-1%2Fec2%2Faws4_request&"), "{query}");
    let ok = verify_at(&get(&hdrs, &query), at(NOW)).unwrap();
    assert_eq!(ok.service, "ec2");
    // Valid through the whole window, not the 15-minute skew: it is the expiry that counts.
    verify_at(&get(&hdrs, &query), at(NOW) + Duration::seconds(300)).unwrap();
    let err = verify_at(&get(&hdrs, &query), at(NOW) + Duration::seconds(301)).unwrap_err();
    assert_eq!(err, AuthError::RequestExpired("Request has expired".into()));
    assert_eq!(err.code(), "RequestExpired");

    let (hdrs, query) = presigned_get(&params("ec2"), 3600);
    verify_at(&get(&hdrs, &query), at(NOW) + Duration::minutes(59)).unwrap();
    let err = verify_at(&get(&hdrs, &query), at(NOW) - Duration::minutes(16)).unwrap_err();
    assert_eq!(err.code(), "RequestExpired");
}

#[test]
fn presigned_tampering_is_refused() {
    let (hdrs, query) = presigned_get(&params("ec2"), 300);
    let changed = query.replace("DescribeRegions", "DescribeInstances");
    assert_eq!(verify_at(&get(&hdrs, &changed), at(NOW)).unwrap_err().code(), "SignatureDoesNotMatch");
    let changed = query.replace("X-Amz-Expires=300", "X-Amz-Expires=600");
    assert_eq!(verify_at(&get(&hdrs, &changed), at(NOW)).unwrap_err().code(), "SignatureDoesNotMatch");
    // A presigned URL carries no body hash, so it cannot carry a body.
    let req = SignedRequest { method: "GET", body: b"Action=TerminateInstances", ..get(&hdrs, &query) };
    assert_eq!(verify_at(&req, at(NOW)).unwrap_err().code(), "SignatureDoesNotMatch");
    let mut p = params("ec2");
    p.secret_access_key = "nope";
    let (hdrs, query) = presigned_get(&p, 300);
    assert_eq!(verify_at(&get(&hdrs, &query), at(NOW)).unwrap_err().code(), "SignatureDoesNotMatch");
}

#[test]
fn presigned_parameters_are_checked() {
    let (hdrs, query) = presigned_get(&params("ec2"), 300);
    let without_date: String = query.split('&').filter(|p| !p.starts_with("X-Amz-Date=")).collect::<Vec<_>>().join("&");
    let err = verify_at(&get(&hdrs, &without_date), at(NOW)).unwrap_err();
    assert_eq!(err.code(), "IncompleteSignature");
    assert_eq!(err.to_string(), "AWS query-string parameters must include 'X-Amz-Date'. Re-examine the query-string parameters.");

    let long = query.replace("X-Amz-Expires=300", "X-Amz-Expires=604801");
    let err = verify_at(&get(&hdrs, &long), at(NOW)).unwrap_err();
    assert_eq!(err.to_string(), "X-Amz-Expires must be less than a week (in seconds) that is 604800");

    let twice = format!("{query}&X-Amz-Signature=00");
    assert_eq!(verify_at(&get(&hdrs, &twice), at(NOW)).unwrap_err().code(), "IncompleteSignature");

    let mut both = hdrs.clone();
    both.push(("authorization".into(), "AWS4-HMAC-SHA256 Credential=x".into()));
    let err = verify_at(&get(&both, &query), at(NOW)).unwrap_err();
    assert!(err.to_string().starts_with("Only one auth mechanism allowed"), "{err}");
}

#[test]
fn presigned_with_empty_payload_hash_also_verifies() {
    // AWS's general reference presigns non-S3 requests over the empty body's hash, where SDKs
    // use UNSIGNED-PAYLOAD; both are accepted for an empty body.
    let (hdrs, query) = presigned_get(&params("sts"), 60);
    let unsigned_query = query.rsplit_once("&X-Amz-Signature=").unwrap().0;
    let sig = signature_over(&get(&hdrs, unsigned_query), &["host"], &empty_hash(), true, "sts");
    let full = format!("{unsigned_query}&X-Amz-Signature={sig}");
    assert_eq!(verify_at(&get(&hdrs, &full), at(NOW)).unwrap().service, "sts");
}
