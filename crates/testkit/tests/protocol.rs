//! The wire protocol: authentication, GET and POST, the error envelope, unknown actions and
//! parameters, STS at the same endpoint, and state surviving a restart.

use corral_testkit::{raw_http, Client, TestContext, ACCESS_KEY, SECRET_KEY};

#[tokio::test]
async fn signatures_are_checked() {
    let ctx = TestContext::new().await;
    ctx.call("DescribeRegions", &[]).await.ok();

    let wrong_secret = Client::new(ctx.addr, ACCESS_KEY, "not-the-secret");
    let r = wrong_secret.call("DescribeRegions", &[]).await;
    assert_eq!(r.status, 403);
    r.err("SignatureDoesNotMatch");

    let unknown = Client::new(ctx.addr, "AKIAUNKNOWNUNKNOWN00", SECRET_KEY);
    let r = unknown.call("DescribeRegions", &[]).await;
    assert_eq!(r.status, 401);
    r.err("AuthFailure");

    let mut skewed = ctx.client.clone();
    skewed.skew = chrono::Duration::minutes(16);
    skewed.call("DescribeRegions", &[]).await.err("RequestExpired");
    skewed.skew = chrono::Duration::minutes(-14);
    skewed.call("DescribeRegions", &[]).await.ok();

    // A region of AWS this cloud does not serve answers as a region not enabled does; a name
    // that is no region at all as a badly scoped credential.
    let mut other_region = ctx.client.clone();
    other_region.region = "us-east-1".into();
    let r = other_region.call("DescribeRegions", &[]).await;
    assert_eq!(r.status, 401);
    r.err("AuthFailure");
    other_region.region = "mars-north-9".into();
    other_region.call("DescribeRegions", &[]).await.err("SignatureDoesNotMatch");

    let r = raw_http(ctx.addr, "GET", "/?Action=DescribeRegions&Version=2016-11-15", &[], b"").await;
    r.err("MissingAuthenticationToken");
    let bad = vec![("authorization".to_string(), "AWS4-HMAC-SHA256 Credential=broken".to_string())];
    raw_http(ctx.addr, "GET", "/?Action=DescribeRegions", &bad, b"").await.err("IncompleteSignature");
}

#[tokio::test]
async fn presigned_get_works() {
    let ctx = TestContext::new().await;
    let host = ctx.addr.to_string();
    let headers = vec![("host".to_string(), host)];
    let query = "Action=DescribeAvailabilityZones&Version=2016-11-15";
    let req = corral_auth::sigv4::SignedRequest { method: "GET", path: "/", query, headers: &headers, body: b"" };
    let params = corral_auth::sigv4::SigningParams {
        access_key_id: ACCESS_KEY,
        secret_access_key: SECRET_KEY,
        region: "local-1",
        service: "ec2",
        time: chrono::Utc::now(),
    };
    let signed_query = corral_auth::sigv4::presign(&req, &params, 300);
    let r = raw_http(ctx.addr, "GET", &format!("/?{signed_query}"), &headers, b"").await;
    assert_eq!(r.ok().texts("zoneName"), vec!["local-1a", "local-1b", "local-1c"]);
    // Tampering with the query breaks it.
    let tampered = signed_query.replace("DescribeAvailabilityZones", "DescribeRegions");
    raw_http(ctx.addr, "GET", &format!("/?{tampered}"), &headers, b"").await.err("SignatureDoesNotMatch");

    // A `+` in the query is signed as a plus, and acted on as one (not as a space).
    let query = "Action=DescribeKeyPairs&Version=2016-11-15&KeyName.1=a+b";
    let req = corral_auth::sigv4::SignedRequest { method: "GET", path: "/", query, headers: &headers, body: b"" };
    let signed_query = corral_auth::sigv4::presign(&req, &params, 300);
    let r = raw_http(ctx.addr, "GET", &format!("/?{signed_query}"), &headers, b"").await;
    r.err("InvalidKeyPair.NotFound");
    assert!(r.body.contains("&apos;a+b&apos;"), "{}", r.body);
}

#[tokio::test]
async fn error_envelope_and_unknowns() {
    let ctx = TestContext::new().await;
    let r = ctx.call("LaunchRockets", &[]).await;
    assert_eq!(r.status, 400);
    r.err("InvalidAction");
    assert!(r.body.starts_with("<?xml"));
    assert!(r.body.contains("<Response><Errors><Error><Code>InvalidAction</Code><Message>"), "{}", r.body);
    assert_eq!(r.text("RequestID").map(|s| s.len()), Some(36));
    ctx.call("DescribeInstances", &[("Bogus", "1")]).await.err("UnknownParameter");
    ctx.call("DescribeInstances", &[("MaxResults", "lots")]).await.err("InvalidParameterValue");
    ctx.call("GetConsoleOutput", &[]).await.err("MissingParameter");
    let r = ctx.call("DescribeRegions", &[]).await;
    assert!(r.ok().body.contains("<DescribeRegionsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>"));
}

/// Control characters reach no response unescaped: tags with them are refused, and errors
/// that echo them (a NUL in an id) are still XML that parses (boto3 failed on every
/// DescribeTags once such a tag was stored). A parameter name of 100,000 dots is refused,
/// and the server goes on.
#[tokio::test]
async fn hostile_text_and_names_get_errors_that_parse() {
    let ctx = TestContext::new().await;
    let id = ctx.run(1, &[]).await.remove(0);
    let parses = |body: &str| roxmltree::Document::parse(body).map(|_| ()).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    for bad in ["a\u{1}b", "\0", "line\r\nbreak", "esc\u{1b}[31m"] {
        for (k, v) in [(bad, "v"), ("k", bad)] {
            let r = ctx.call("CreateTags", &[("ResourceId.1", &id), ("Tag.1.Key", k), ("Tag.1.Value", v)]).await;
            r.err("InvalidParameterValue");
            parses(&r.body);
        }
    }
    let r = ctx.call("DescribeTags", &[]).await;
    parses(&r.ok().body);
    let r = ctx.call("DescribeInstances", &[("InstanceId.1", "i-\0\u{7}")]).await;
    assert_eq!(r.status, 400);
    parses(&r.body);
    let deep = format!("Filter{}", ".".repeat(100_000));
    let r = ctx.call("DescribeInstances", &[(&deep, "1")]).await;
    r.err("UnknownParameter");
    parses(&r.body);
    ctx.call("DescribeInstances", &[("InstanceId.1", &id)]).await.ok();
}

/// A body over the limit (1 MiB) gets an EC2 error envelope with HTTP 413, not plain text.
#[tokio::test]
async fn a_body_over_the_limit_is_an_ec2_error() {
    let ctx = TestContext::new().await;
    let body = vec![b'a'; 1024 * 1024 + 1];
    let headers = vec![("content-type".to_string(), "application/x-www-form-urlencoded".to_string())];
    let r = raw_http(ctx.addr, "POST", "/", &headers, &body).await;
    assert_eq!(r.status, 413, "{}", r.body);
    r.err("RequestEntityTooLarge");
    ctx.call("DescribeRegions", &[]).await.ok();
}

/// The API's listener closes what a slow or greedy client holds: connections past the cap for
/// one client address, a connection whose headers do not arrive in time, and a body that
/// stops halfway (answered RequestTimeout); others are served throughout.
#[tokio::test]
async fn slow_and_greedy_clients_lose_their_connections() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ctx = TestContext::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = corral_api::Limits {
        connections: 16,
        per_client: 3,
        header_read: Duration::from_millis(300),
        body_read: Duration::from_millis(300),
    };
    let app = corral_api::router(corral_api::ApiState { cloud: ctx.cloud.clone() });
    tokio::spawn(corral_api::serve(listener, app, limits, std::future::pending()));

    /// Whether the server closes `stream` before `within` passes.
    async fn closed(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(within, stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                // A 408 or similar before closing: keep reading until it closes.
                Ok(Ok(_)) => continue,
            }
        }
    }

    // Three idle connections from one address are held; a fourth is closed at once.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let mut fourth = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(closed(&mut fourth, Duration::from_secs(5)).await, "a fourth connection from one client stayed open");

    // Headers that stop halfway: the connection goes after the header timeout, not never.
    let started = Instant::now();
    idle[0].write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-").await.unwrap();
    assert!(closed(&mut idle[0], Duration::from_secs(10)).await, "stalled headers kept the connection");
    assert!(started.elapsed() < Duration::from_secs(5), "closed only after {:?}", started.elapsed());
    // Idle ones go too (no request at all within the timeout).
    assert!(closed(&mut idle[1], Duration::from_secs(10)).await, "an idle connection stayed open");
    drop(idle);

    // Slots are given back: requests are served again.
    let client = corral_testkit::Client::new(addr, ACCESS_KEY, SECRET_KEY);
    corral_testkit::wait_for("a served request", Duration::from_secs(10), || async {
        (client.call("DescribeRegions", &[]).await.status == 200).then_some(())
    })
    .await;

    // A body that stops halfway: answered RequestTimeout (408) once the body deadline passes.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    slow.write_all(
        b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\nAction=Desc",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("<Code>RequestTimeout</Code>"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5), "answered only after {:?}", started.elapsed());
}

#[tokio::test]
async fn sts_caller_identity_at_the_same_endpoint() {
    let ctx = TestContext::new().await;
    let mut sts = ctx.client.clone();
    sts.service = "sts".into();
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", "GetCallerIdentity").append_pair("Version", "2011-06-15");
    let r = sts.post_signed(form.finish().as_bytes()).await;
    assert_eq!(r.ok().text("Account").as_deref(), Some(corral_testkit::ACCOUNT));
    assert_eq!(r.text("Arn"), Some(format!("arn:aws:iam::{}:root", corral_testkit::ACCOUNT)));
    assert!(r.body.contains("<GetCallerIdentityResult>"));
}

#[tokio::test]
async fn restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("corral.db");
    let (id, key_fp) = {
        let ctx = TestContext::builder().db(db.clone()).build().await;
        let fp = ctx.call("CreateKeyPair", &[("KeyName", "persist")]).await.ok().text("keyFingerprint").unwrap();
        let id = ctx.run(1, &[("TagSpecification.1.ResourceType", "instance"), ("TagSpecification.1.Tag.1.Key", "k")]).await.remove(0);
        ctx.wait_state(&id, "running").await;
        ctx.call("StopInstances", &[("InstanceId.1", &id)]).await.ok();
        ctx.wait_state(&id, "stopped").await;
        (id, fp)
    };
    let ctx = TestContext::builder().db(db).build().await;
    assert_eq!(ctx.state_of(&id).await, "stopped");
    let r = ctx.call("DescribeKeyPairs", &[("KeyName.1", "persist")]).await;
    assert_eq!(r.ok().text("keyFingerprint"), Some(key_fp));
    let r = ctx.call("DescribeTags", &[("Filter.1.Name", "resource-id"), ("Filter.1.Value.1", &id)]).await;
    assert_eq!(r.ok().texts("key"), vec!["k"]);
    ctx.call("StartInstances", &[("InstanceId.1", &id)]).await.ok();
    ctx.wait_state(&id, "running").await;
}
