//! The AWS SigV4 test suite's vectors: `sign` must produce each one's signature, and the
//! request carrying it must verify.

use super::*;

/// One vector from the AWS SigV4 test suite: `sign` must produce `signature`, and the request
/// carrying it must verify.
struct Vector {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    query: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static [u8],
    service: &'static str,
    signature: &'static str,
}

fn check_vector(v: &Vector) {
    let hdrs = headers(v.headers);
    let req = SignedRequest { method: v.method, path: v.path, query: v.query, headers: &hdrs, body: v.body };
    let params =
        SigningParams { access_key_id: AKID, secret_access_key: SECRET, region: "us-east-1", service: v.service, time: at(VECTOR_TIME) };
    let added = sign(&req, &params);
    assert_eq!(added.len(), 1, "{}: x-amz-date was given, only authorization is added", v.name);
    assert_eq!(signature_of(&added[0].1), v.signature, "{}", v.name);

    let mut signed = hdrs.clone();
    signed.extend(added);
    let req = SignedRequest { headers: &signed, ..req };
    let ok = verify_for_services(&req, at(VECTOR_TIME), lookup, &"us-east-1", &[v.service]).unwrap_or_else(|e| panic!("{}: {e:?}", v.name));
    assert_eq!(ok.access_key_id, AKID);
}

const VANILLA_HEADERS: &[(&str, &str)] = &[("host", "example.amazonaws.com"), ("x-amz-date", VECTOR_TIME)];

#[test]
fn aws_test_suite_vectors() {
    let vectors = [
        Vector {
            name: "get-vanilla",
            method: "GET",
            path: "/",
            query: "",
            headers: VANILLA_HEADERS,
            body: b"",
            service: "service",
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        },
        Vector {
            name: "iam-listusers (AWS General Reference example)",
            method: "GET",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            headers: &[
                ("content-type", "application/x-www-form-urlencoded; charset=utf-8"),
                ("host", "iam.amazonaws.com"),
                ("x-amz-date", VECTOR_TIME),
            ],
            body: b"",
            service: "iam",
            signature: "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
        },
        Vector {
            name: "get-vanilla-query-order-key-case",
            method: "GET",
            path: "/",
            query: "Param2=value2&Param1=value1",
            headers: VANILLA_HEADERS,
            body: b"",
            service: "service",
            signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        },
        Vector {
            name: "get-vanilla-empty-query-key",
            method: "GET",
            path: "/",
            query: "Param1=value1",
            headers: VANILLA_HEADERS,
            body: b"",
            service: "service",
            signature: "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
        },
        Vector {
            name: "get-unreserved",
            method: "GET",
            path: "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            query: "",
            headers: VANILLA_HEADERS,
            body: b"",
            service: "service",
            signature: "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
        },
        Vector {
            name: "get-utf8",
            method: "GET",
            path: "/\u{1234}",
            query: "",
            headers: VANILLA_HEADERS,
            body: b"",
            service: "service",
            signature: "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
        },
        Vector {
            name: "get-space",
            method: "GET",
            path: "/example space/",
            query: "",
            headers: VANILLA_HEADERS,
            body: b"",
            service: "service",
            signature: "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
        },
        Vector {
            name: "post-vanilla",
            method: "POST",
            path: "/",
            query: "",
            headers: VANILLA_HEADERS,
            body: b"",
            service: "service",
            signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        },
        Vector {
            name: "post-vanilla-query",
            method: "POST",
            path: "/",
            query: "Param1=value1",
            headers: VANILLA_HEADERS,
            body: b"",
            service: "service",
            signature: "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
        },
        Vector {
            name: "post-x-www-form-urlencoded",
            method: "POST",
            path: "/",
            query: "",
            headers: &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("host", "example.amazonaws.com"),
                ("x-amz-date", VECTOR_TIME),
            ],
            body: b"Param1=value1",
            service: "service",
            signature: "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
        },
        Vector {
            name: "post-header-key-sort",
            method: "POST",
            path: "/",
            query: "",
            headers: &[("host", "example.amazonaws.com"), ("my-header1", "value1"), ("x-amz-date", VECTOR_TIME)],
            body: b"",
            service: "service",
            signature: "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
        },
        Vector {
            name: "post-header-value-case",
            method: "POST",
            path: "/",
            query: "",
            headers: &[("host", "example.amazonaws.com"), ("my-header1", "VALUE1"), ("x-amz-date", VECTOR_TIME)],
            body: b"",
            service: "service",
            signature: "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
        },
        Vector {
            name: "get-header-value-trim",
            method: "GET",
            path: "/",
            query: "",
            headers: &[
                ("host", "example.amazonaws.com"),
                ("my-header1", " value1"),
                ("my-header2", " \"a   b   c\""),
                ("x-amz-date", VECTOR_TIME),
            ],
            body: b"",
            service: "service",
            signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
        },
        Vector {
            name: "get-header-key-duplicate",
            method: "GET",
            path: "/",
            query: "",
            headers: &[
                ("host", "example.amazonaws.com"),
                ("my-header1", "value2"),
                ("my-header1", "value2"),
                ("my-header1", "value1"),
                ("x-amz-date", VECTOR_TIME),
            ],
            body: b"",
            service: "service",
            signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
        },
    ];
    let mut failed = Vec::new();
    for v in &vectors {
        if std::panic::catch_unwind(|| check_vector(v)).is_err() {
            failed.push(v.name);
        }
    }
    assert!(failed.is_empty(), "failed vectors: {failed:?}");
}
