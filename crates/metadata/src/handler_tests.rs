//! The core against every path and every token rule.

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::handle;
use crate::example::instance_view;
use crate::message::{ContentType, ImdsRequest, ImdsResponse, Method, Status};
use crate::token::TokenKey;
use crate::view::{HttpTokens, InstanceView, Toggle};

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn key() -> TokenKey {
    TokenKey::from_bytes([42; 32])
}

fn view() -> InstanceView {
    instance_view("i-0aaaaaaaaaaaaaaaa", Ipv4Addr::new(10, 0, 1, 5))
}

fn get(view: &InstanceView, path: &str) -> ImdsResponse {
    handle(&ImdsRequest::get(path), view, &key(), now())
}

fn put_token(view: &InstanceView, ttl: &str, at: SystemTime) -> ImdsResponse {
    handle(&ImdsRequest::new(Method::Put, "/latest/api/token").with_ttl(ttl), view, &key(), at)
}

fn ok_text(resp: ImdsResponse) -> String {
    assert_eq!(resp.status, Status::Ok, "{}", resp.text());
    resp.text()
}

fn assert_status(resp: &ImdsResponse, status: Status) {
    assert_eq!(resp.status, status, "{}", resp.text());
    if status != Status::Ok {
        assert_eq!(resp.content_type, ContentType::Html);
        let title = format!("<title>{} - {}</title>", status.code(), status.reason());
        assert!(resp.text().contains(&title), "{}", resp.text());
    }
}

#[test]
fn root_lists_versions_with_latest_last() {
    let body = ok_text(get(&view(), "/"));
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.first(), Some(&"1.0"));
    assert_eq!(lines.last(), Some(&"latest"));
    for v in ["2009-04-04", "2016-09-02", "2018-09-24", "2021-03-23"] {
        assert!(lines.contains(&v), "{v} missing from {body}");
    }
    assert!(!body.ends_with('\n'));
}

#[test]
fn version_directory_lists_without_slashes() {
    let v = view();
    assert_eq!(ok_text(get(&v, "/latest/")), "dynamic\nmeta-data\nuser-data");
    assert_eq!(ok_text(get(&v, "/latest")), "dynamic\nmeta-data\nuser-data");
    let mut no_ud = view();
    no_ud.user_data = None;
    assert_eq!(ok_text(get(&no_ud, "/latest/")), "dynamic\nmeta-data");
}

#[test]
fn meta_data_listing_is_sorted_with_directories_slashed() {
    let body = ok_text(get(&view(), "/latest/meta-data/"));
    let expected = [
        "ami-id",
        "ami-launch-index",
        "ami-manifest-path",
        "block-device-mapping/",
        "hostname",
        "instance-action",
        "instance-id",
        "instance-life-cycle",
        "instance-type",
        "local-hostname",
        "local-ipv4",
        "mac",
        "network/",
        "placement/",
        "public-hostname",
        "public-ipv4",
        "public-keys/",
        "reservation-id",
        "security-groups",
        "services/",
    ];
    assert_eq!(body, expected.join("\n"));
    // Without the trailing slash a directory answers the same.
    assert_eq!(ok_text(get(&view(), "/latest/meta-data")), body);
}

#[test]
fn scalar_values() {
    let v = view();
    let cases = [
        ("instance-id", "i-0aaaaaaaaaaaaaaaa"),
        ("ami-id", "ami-0123456789abcdef0"),
        ("ami-launch-index", "0"),
        ("ami-manifest-path", "(unknown)"),
        ("instance-type", "t3.micro"),
        ("instance-action", "none"),
        ("instance-life-cycle", "on-demand"),
        ("local-ipv4", "10.0.1.5"),
        ("public-ipv4", "198.51.100.5"),
        ("local-hostname", "ip-10-0-1-5.local-1.compute.internal"),
        ("hostname", "ip-10-0-1-5.local-1.compute.internal"),
        ("public-hostname", "ec2-198-51-100-5.local-1.compute.amazonaws.com"),
        ("mac", "02:00:0a:00:01:05"),
        ("reservation-id", "r-0123456789abcdef0"),
        ("security-groups", "default\nweb"),
        ("placement/", "availability-zone\navailability-zone-id\nregion"),
        ("placement/availability-zone", "local-1a"),
        ("placement/availability-zone-id", "local1-az1"),
        ("placement/region", "local-1"),
        ("block-device-mapping/", "ami\nroot"),
        ("block-device-mapping/ami", "/dev/xvda"),
        ("block-device-mapping/root", "/dev/xvda"),
        ("services/domain", "amazonaws.com"),
        ("services/partition", "aws"),
    ];
    for (path, want) in cases {
        let resp = get(&v, &format!("/latest/meta-data/{path}"));
        assert_eq!(resp.content_type, ContentType::Text, "{path}");
        assert_eq!(ok_text(resp), want, "{path}");
    }
}

#[test]
fn dated_versions_serve_the_same_tree() {
    let v = view();
    for version in ["2009-04-04", "2016-09-02", "2018-09-24", "2021-03-23", "1.0"] {
        assert_eq!(ok_text(get(&v, &format!("/{version}/meta-data/instance-id"))), "i-0aaaaaaaaaaaaaaaa");
    }
    assert_status(&get(&v, "/2099-01-01/meta-data/instance-id"), Status::NotFound);
}

#[test]
fn no_public_address_means_404_and_unlisted() {
    let mut v = view();
    v.interfaces[0].public_ip = None;
    v.interfaces[0].public_hostname = None;
    assert_status(&get(&v, "/latest/meta-data/public-ipv4"), Status::NotFound);
    assert_status(&get(&v, "/latest/meta-data/public-hostname"), Status::NotFound);
    let listing = ok_text(get(&v, "/latest/meta-data/"));
    assert!(!listing.contains("public-ipv4") && !listing.contains("public-hostname"), "{listing}");
    let mac = ok_text(get(&v, "/latest/meta-data/network/interfaces/macs/02:00:0a:00:01:05/"));
    assert!(!mac.contains("public") && !mac.contains("ipv4-associations"), "{mac}");
}

#[test]
fn network_interfaces() {
    let v = view();
    assert_eq!(ok_text(get(&v, "/latest/meta-data/network/")), "interfaces/");
    assert_eq!(ok_text(get(&v, "/latest/meta-data/network/interfaces/")), "macs/");
    assert_eq!(ok_text(get(&v, "/latest/meta-data/network/interfaces/macs/")), "02:00:0a:00:01:05/");
    let base = "/latest/meta-data/network/interfaces/macs/02:00:0a:00:01:05/";
    let listing = ok_text(get(&v, base));
    assert_eq!(
        listing,
        [
            "device-number",
            "interface-id",
            "ipv4-associations/",
            "local-hostname",
            "local-ipv4s",
            "mac",
            "owner-id",
            "public-hostname",
            "public-ipv4s",
            "security-group-ids",
            "security-groups",
            "subnet-id",
            "subnet-ipv4-cidr-block",
            "vpc-id",
            "vpc-ipv4-cidr-block",
            "vpc-ipv4-cidr-blocks",
        ]
        .join("\n")
    );
    let cases = [
        ("device-number", "0"),
        ("interface-id", "eni-0123456789abcdef0"),
        ("local-ipv4s", "10.0.1.5"),
        ("local-hostname", "ip-10-0-1-5.local-1.compute.internal"),
        ("mac", "02:00:0a:00:01:05"),
        ("owner-id", "123456789012"),
        ("security-group-ids", "sg-0123456789abcdef0\nsg-0fedcba9876543210"),
        ("security-groups", "default\nweb"),
        ("subnet-id", "subnet-0123456789abcdef0"),
        ("subnet-ipv4-cidr-block", "10.0.1.0/24"),
        ("vpc-id", "vpc-0123456789abcdef0"),
        ("vpc-ipv4-cidr-block", "10.0.0.0/16"),
        ("vpc-ipv4-cidr-blocks", "10.0.0.0/16"),
        ("public-ipv4s", "198.51.100.5"),
        ("ipv4-associations/", "198.51.100.5"),
        ("ipv4-associations/198.51.100.5", "10.0.1.5"),
    ];
    for (leaf, want) in cases {
        assert_eq!(ok_text(get(&v, &format!("{base}{leaf}"))), want, "{leaf}");
    }
    assert_status(&get(&v, "/latest/meta-data/network/interfaces/macs/02:00:00:00:00:99/mac"), Status::NotFound);
}

#[test]
fn public_keys_follow_the_index_equals_name_convention() {
    let v = view();
    assert_eq!(ok_text(get(&v, "/latest/meta-data/public-keys/")), "0=my-key");
    assert_eq!(ok_text(get(&v, "/latest/meta-data/public-keys/0/")), "openssh-key");
    assert_eq!(ok_text(get(&v, "/latest/meta-data/public-keys/0")), "openssh-key");
    assert_eq!(ok_text(get(&v, "/latest/meta-data/public-keys/0/openssh-key")), v.public_keys[0].openssh_key);
    assert_status(&get(&v, "/latest/meta-data/public-keys/1/openssh-key"), Status::NotFound);
    assert_status(&get(&v, "/latest/meta-data/public-keys/my-key"), Status::NotFound);
    let mut none = view();
    none.public_keys.clear();
    assert_status(&get(&none, "/latest/meta-data/public-keys/"), Status::NotFound);
    assert!(!ok_text(get(&none, "/latest/meta-data/")).contains("public-keys"));
}

#[test]
fn user_data_is_raw_bytes_or_404() {
    let mut v = view();
    v.user_data = Some(vec![0xff, 0x00, b'#', b'!']);
    let resp = get(&v, "/latest/user-data");
    assert_eq!(resp.status, Status::Ok);
    assert_eq!(resp.content_type, ContentType::OctetStream);
    assert_eq!(resp.body, vec![0xff, 0x00, b'#', b'!']);
    assert_eq!(get(&v, "/2009-04-04/user-data").body, vec![0xff, 0x00, b'#', b'!']);
    v.user_data = None;
    assert_status(&get(&v, "/latest/user-data"), Status::NotFound);
}

#[test]
fn identity_document_is_exactly_awss_shape() {
    let body = ok_text(get(&view(), "/latest/dynamic/instance-identity/document"));
    let expected = r#"{
  "accountId" : "123456789012",
  "architecture" : "x86_64",
  "availabilityZone" : "local-1a",
  "billingProducts" : null,
  "devpayProductCodes" : null,
  "marketplaceProductCodes" : null,
  "imageId" : "ami-0123456789abcdef0",
  "instanceId" : "i-0aaaaaaaaaaaaaaaa",
  "instanceType" : "t3.micro",
  "kernelId" : null,
  "pendingTime" : "2024-05-06T07:08:09Z",
  "privateIp" : "10.0.1.5",
  "ramdiskId" : null,
  "region" : "local-1",
  "version" : "2017-09-30"
}"#;
    assert_eq!(body, expected);
    let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(parsed["region"], "local-1");
}

#[test]
fn dynamic_lists_only_the_document_and_signatures_are_not_found() {
    let v = view();
    assert_eq!(ok_text(get(&v, "/latest/dynamic/")), "instance-identity/");
    assert_eq!(ok_text(get(&v, "/latest/dynamic/instance-identity/")), "document");
    for p in ["signature", "pkcs7", "rsa2048"] {
        assert_status(&get(&v, &format!("/latest/dynamic/instance-identity/{p}")), Status::NotFound);
    }
}

#[test]
fn tags_only_when_enabled() {
    let mut v = view();
    assert_status(&get(&v, "/latest/meta-data/tags/instance/Name"), Status::NotFound);
    assert!(!ok_text(get(&v, "/latest/meta-data/")).contains("tags"));
    v.options.instance_metadata_tags = Toggle::Enabled;
    v.tags.push(("bad/key".into(), "x".into()));
    assert!(ok_text(get(&v, "/latest/meta-data/")).contains("\ntags/"));
    assert_eq!(ok_text(get(&v, "/latest/meta-data/tags/")), "instance/");
    assert_eq!(ok_text(get(&v, "/latest/meta-data/tags/instance/")), "Name\nteam");
    assert_eq!(ok_text(get(&v, "/latest/meta-data/tags/instance/Name")), "web-1");
    assert_eq!(ok_text(get(&v, "/latest/meta-data/tags/instance/%4Eame")), "web-1", "percent-decoded");
}

#[test]
fn unknown_paths_are_404_with_imds_page() {
    let v = view();
    for path in [
        "/latest/meta-data/nope",
        "/latest/meta-data/instance-id/",
        "/latest/meta-data/instance-id/x",
        "/latest/meta-data//instance-id",
        "/latest/meta-data/../user-data",
        "/latest/meta-data/iam/security-credentials/",
        "/nope",
        "latest/meta-data/",
        "/latest/user-data/",
        "/latest/meta-data/%ff",
    ] {
        assert_status(&get(&v, path), Status::NotFound);
    }
    let huge = format!("/latest/meta-data/{}", "a/".repeat(1000));
    assert_status(&get(&v, &huge), Status::NotFound);
    // The query string is ignored.
    assert_eq!(ok_text(get(&v, "/latest/meta-data/instance-id?x=1")), "i-0aaaaaaaaaaaaaaaa");
}

#[test]
fn wrong_methods_are_405() {
    let v = view();
    for (method, path) in [
        (Method::Put, "/latest/meta-data/"),
        (Method::Other("POST".into()), "/latest/meta-data/instance-id"),
        (Method::Other("DELETE".into()), "/latest/api/token"),
        (Method::Get, "/latest/api/token"),
        (Method::Head, "/latest/api/token"),
    ] {
        let req = ImdsRequest::new(method, path).with_ttl("60");
        assert_status(&handle(&req, &v, &key(), now()), Status::MethodNotAllowed);
    }
    let head = handle(&ImdsRequest::new(Method::Head, "/latest/meta-data/instance-id"), &v, &key(), now());
    assert_eq!(head.status, Status::Ok);
}

#[test]
fn token_put_issues_a_token_with_the_hop_limit() {
    let mut v = view();
    v.options.hop_limit = 3;
    let resp = put_token(&v, "21600", now());
    assert_eq!(resp.status, Status::Ok);
    assert_eq!(resp.token_ttl_seconds, Some(21600));
    assert_eq!(resp.ip_ttl, Some(3));
    assert!(!resp.body.is_empty());
    // GETs carry no IP TTL of their own.
    assert_eq!(get(&v, "/latest/meta-data/instance-id").ip_ttl, None);
}

#[test]
fn token_ttl_bounds() {
    let v = view();
    for ok in ["1", "60", "21600", " 300 "] {
        assert_eq!(put_token(&v, ok, now()).status, Status::Ok, "{ok}");
    }
    for bad in ["0", "21601", "-1", "abc", "", "1.5", "99999999999999999999", "+5"] {
        assert_status(&put_token(&v, bad, now()), Status::BadRequest);
    }
    let missing = handle(&ImdsRequest::new(Method::Put, "/latest/api/token"), &v, &key(), now());
    assert_status(&missing, Status::BadRequest);
}

#[test]
fn token_put_through_a_proxy_is_forbidden() {
    let v = view();
    let req = ImdsRequest::new(Method::Put, "/latest/api/token").with_ttl("60").with_forwarded_for("10.0.1.9");
    assert_status(&handle(&req, &v, &key(), now()), Status::Forbidden);
    // A GET with the header is fine (only token PUTs are refused).
    let req = ImdsRequest::get("/latest/meta-data/instance-id").with_forwarded_for("10.0.1.9");
    assert_eq!(handle(&req, &v, &key(), now()).status, Status::Ok);
}

#[test]
fn token_expires_with_the_injected_clock() {
    let v = view();
    let token = put_token(&v, "10", now()).text();
    let get_at = |at: SystemTime| handle(&ImdsRequest::get("/latest/meta-data/instance-id").with_token(&token), &v, &key(), at);
    assert_eq!(get_at(now()).status, Status::Ok);
    assert_eq!(get_at(now() + Duration::from_millis(9_999)).status, Status::Ok);
    assert_status(&get_at(now() + Duration::from_secs(10)), Status::Unauthorized);
    assert_status(&get_at(now() + Duration::from_secs(3600)), Status::Unauthorized);
}

#[test]
fn optional_tokens_allow_v1_but_still_check_a_presented_token() {
    let v = view();
    assert_eq!(get(&v, "/latest/meta-data/instance-id").status, Status::Ok);
    let bad = handle(&ImdsRequest::get("/latest/meta-data/instance-id").with_token("garbage"), &v, &key(), now());
    assert_status(&bad, Status::Unauthorized);
}

#[test]
fn required_tokens_refuse_v1() {
    let mut v = view();
    v.options.http_tokens = HttpTokens::Required;
    assert_status(&get(&v, "/latest/meta-data/instance-id"), Status::Unauthorized);
    assert_status(&get(&v, "/"), Status::Unauthorized);
    assert_status(&get(&v, "/latest/meta-data/does-not-exist"), Status::Unauthorized);
    let token = put_token(&v, "60", now()).text();
    let req = ImdsRequest::get("/latest/meta-data/instance-id").with_token(token);
    assert_eq!(ok_text(handle(&req, &v, &key(), now())), "i-0aaaaaaaaaaaaaaaa");
}

#[test]
fn a_token_of_one_instance_is_refused_for_another() {
    let a = instance_view("i-0aaaaaaaaaaaaaaaa", Ipv4Addr::new(10, 0, 1, 5));
    let b = instance_view("i-0bbbbbbbbbbbbbbbb", Ipv4Addr::new(10, 0, 1, 6));
    let token_a = put_token(&a, "60", now()).text();
    let req = ImdsRequest::get("/latest/meta-data/instance-id").with_token(&token_a);
    assert_eq!(handle(&req, &a, &key(), now()).status, Status::Ok);
    assert_status(&handle(&req, &b, &key(), now()), Status::Unauthorized);
}

#[test]
fn disabled_endpoint_forbids_everything() {
    let mut v = view();
    v.options.http_endpoint = Toggle::Disabled;
    assert_status(&get(&v, "/latest/meta-data/instance-id"), Status::Forbidden);
    assert_status(&get(&v, "/"), Status::Forbidden);
    assert_status(&get(&v, "/nope"), Status::Forbidden);
    assert_status(&put_token(&v, "60", now()), Status::Forbidden);
}

/// The guest is untrusted: no request, however odd, may panic the core, and nothing but the
/// statuses IMDS uses comes back.
#[test]
fn arbitrary_requests_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x1d5);
    let alphabet: Vec<char> = "/latest/meta-data/api/token%0fF?#.=:-_ \u{e9}\u{0}abc0123456789".chars().collect();
    let mut v = view();
    v.options.instance_metadata_tags = Toggle::Enabled;
    let k = key();
    let valid = put_token(&v, "60", now()).text();
    for i in 0..20_000 {
        let len = rng.gen_range(0..80);
        let path: String = (0..len).map(|_| alphabet[rng.gen_range(0..alphabet.len())]).collect();
        let method = match i % 4 {
            0 => Method::Get,
            1 => Method::Put,
            2 => Method::Head,
            _ => Method::Other("PATCH".into()),
        };
        let mut req = ImdsRequest::new(method, path);
        if rng.gen_bool(0.5) {
            req.token_ttl_seconds = Some(rng.gen_range(-5i64..30_000).to_string());
        }
        if rng.gen_bool(0.3) {
            req.token = Some(if rng.gen_bool(0.5) { valid.clone() } else { "x".repeat(rng.gen_range(0..100)) });
        }
        v.options.http_tokens = if rng.gen_bool(0.5) { HttpTokens::Optional } else { HttpTokens::Required };
        let resp = handle(&req, &v, &k, now());
        assert_ne!(resp.status, Status::ServiceUnavailable, "{req:?}");
    }
}
