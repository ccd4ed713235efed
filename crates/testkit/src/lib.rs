//! The test context every integration test builds: a fresh store, the control plane with a
//! simulated agent, the API on a free loopback port, and a client that signs requests with
//! SigV4 the way the SDKs do. Also the helpers to wait on conditions with a deadline.

mod rng;
pub use rng::Rng;

use corral_agent::sim::SimAgent;
use corral_control::{Cloud, Control, ControlConfig, Seed};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const REGION: &str = "local-1";
pub const ACCESS_KEY: &str = "AKIACORRALTESTKEY001";
pub const SECRET_KEY: &str = "corral/test/secret/key/0123456789abcdefgh";
pub const ACCOUNT: &str = "123456789012";

pub struct TestContextBuilder {
    auto_advance: bool,
    db: Option<PathBuf>,
    max_instances: usize,
    images: bool,
    regions: Vec<String>,
    limits: Vec<String>,
}

pub struct TestContext {
    pub addr: SocketAddr,
    /// The home region's control plane.
    pub control: Arc<Control>,
    /// Every region served (see [`TestContextBuilder::regions`]).
    pub cloud: Arc<Cloud>,
    pub agent: Arc<SimAgent>,
    pub client: Client,
    /// The registered test images: (name, id).
    pub images: Vec<(String, String)>,
    _dir: Option<tempfile::TempDir>,
    server: tokio::task::JoinHandle<()>,
    reconciler: tokio::task::JoinHandle<()>,
}

impl Drop for TestContext {
    fn drop(&mut self) {
        self.server.abort();
        self.reconciler.abort();
    }
}

impl TestContext {
    pub fn builder() -> TestContextBuilder {
        TestContextBuilder { auto_advance: true, db: None, max_instances: 1000, images: true, regions: vec![], limits: vec![] }
    }

    pub async fn new() -> TestContext {
        Self::builder().build().await
    }

    pub fn image(&self, name: &str) -> String {
        self.images.iter().find(|(n, _)| n == name).map(|(_, id)| id.clone()).expect("test image registered")
    }

    pub async fn call(&self, action: &str, params: &[(&str, &str)]) -> Response {
        self.client.call(action, params).await
    }
}

impl TestContextBuilder {
    /// VMs wait in Starting/Stopping until the test calls `agent.advance(id)`.
    pub fn manual_advance(mut self) -> Self {
        self.auto_advance = false;
        self
    }

    /// Use this SQLite file (to test restarts) instead of a fresh temporary one.
    pub fn db(mut self, path: PathBuf) -> Self {
        self.db = Some(path);
        self
    }

    /// Serve these regions of the aws partition too, each opened on first use with an
    /// in-memory store and a simulated agent of its own.
    pub fn regions(mut self, regions: &[&str]) -> Self {
        self.regions = regions.iter().map(|r| r.to_string()).collect();
        self
    }

    /// Quotas other than AWS's defaults (`NAME=N`, as `corral serve --limit`).
    pub fn limit(mut self, setting: &str) -> Self {
        self.limits.push(setting.to_string());
        self
    }

    pub fn max_instances(mut self, n: usize) -> Self {
        self.max_instances = n;
        self
    }

    pub async fn build(self) -> TestContext {
        let (dir, db) = match self.db {
            Some(p) => (None, p),
            None => {
                let d = tempfile::tempdir().expect("temp dir");
                let p = d.path().join("corral.db");
                (Some(d), p)
            }
        };
        let store = Arc::new(corral_store::Store::open(&db).expect("open store"));
        let seed =
            Seed { account_id: Some(ACCOUNT.into()), access_key_id: Some(ACCESS_KEY.into()), secret_access_key: Some(SECRET_KEY.into()) };
        corral_control::bootstrap(&store, &seed).expect("bootstrap");
        let agent = Arc::new(SimAgent::new(self.auto_advance));
        let regions = corral_control::cloud::served_regions(REGION, &self.regions.join(",")).expect("regions");
        let config = ControlConfig {
            region: REGION.into(),
            regions: regions.clone(),
            host: "sim".into(),
            max_instances: self.max_instances,
            public_pool: corral_control::DEFAULT_PUBLIC_POOL.parse().expect("pool"),
            quotas: corral_control::quota::Quotas::parse(&self.limits).expect("limits"),
            settled_reads: false,
            sweep_grace: corral_control::sweep::SWEEP_GRACE,
        };
        let control = Control::new(store, agent.clone(), agent.clone(), config.clone()).expect("control");
        let mut images = Vec::new();
        if self.images {
            for name in ["corral-minimal", "corral-debian-12"] {
                let id = control
                    .image_register_built(corral_control::image::NewImage {
                        name: name.into(),
                        description: format!("{name} for tests"),
                        base_disk: format!("/nonexistent/{name}.qcow2"),
                        kernel: Some("/nonexistent/vmlinux".into()),
                        initrd: None,
                        cmdline: "root=/dev/vda".into(),
                        size_bytes: 1 << 30,
                        recipe_hash: "test".into(),
                    })
                    .await
                    .expect("register image");
                images.push((name.to_string(), id));
            }
        }
        let reconciler = control.spawn_reconciler();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cloud = Cloud::new(control.clone(), regions, region_factory(config));
        let app = corral_api::router(corral_api::ApiState { cloud: cloud.clone() });
        let server = tokio::spawn(async move {
            corral_api::serve(listener, app, corral_api::Limits::default(), std::future::pending()).await;
        });
        TestContext {
            addr,
            control,
            cloud,
            agent,
            client: Client::new(addr, ACCESS_KEY, SECRET_KEY),
            images,
            _dir: dir,
            server,
            reconciler,
        }
    }
}

/// Opens another region: an in-memory store with the test account, a simulated agent.
fn region_factory(home: ControlConfig) -> corral_control::RegionFactory {
    Arc::new(move |region: String| {
        let home = home.clone();
        Box::pin(async move {
            let store = Arc::new(corral_store::Store::open_in_memory().map_err(corral_types::Error::from)?);
            corral_control::account::region_bootstrap(&store, ACCOUNT)?;
            let agent = Arc::new(SimAgent::new(true));
            let control = Control::new(store, agent.clone(), agent, ControlConfig { region, ..home })?;
            control.spawn_reconciler();
            Ok(control)
        })
    })
}

/// A SigV4-signing EC2 Query client over plain HTTP/1.1.
#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    pub service: String,
    /// Signing time offset from now (tests of clock skew).
    pub skew: chrono::Duration,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    /// Text of the first element named `tag` anywhere in the body.
    pub fn text(&self, tag: &str) -> Option<String> {
        let doc = roxmltree::Document::parse(&self.body).ok()?;
        doc.descendants().find(|n| n.tag_name().name() == tag).map(|n| n.text().unwrap_or("").to_string())
    }

    /// Texts of every element named `tag`.
    pub fn texts(&self, tag: &str) -> Vec<String> {
        let Ok(doc) = roxmltree::Document::parse(&self.body) else { return vec![] };
        doc.descendants().filter(|n| n.tag_name().name() == tag).map(|n| n.text().unwrap_or("").to_string()).collect()
    }

    /// The EC2 error code, if this is an error response.
    pub fn code(&self) -> Option<String> {
        self.text("Code")
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(self.status, 200, "expected success, got {}: {}", self.status, self.body);
        self
    }

    #[track_caller]
    pub fn err(&self, code: &str) -> &Self {
        assert_ne!(self.status, 200, "expected {code}, got success: {}", self.body);
        assert_eq!(self.code().as_deref(), Some(code), "body: {}", self.body);
        self
    }
}

impl Client {
    pub fn new(addr: SocketAddr, access_key: &str, secret_key: &str) -> Client {
        Client {
            addr,
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            region: REGION.into(),
            service: "ec2".into(),
            skew: chrono::Duration::zero(),
        }
    }

    pub async fn call(&self, action: &str, params: &[(&str, &str)]) -> Response {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", action);
        form.append_pair("Version", "2016-11-15");
        for (k, v) in params {
            form.append_pair(k, v);
        }
        let body = form.finish();
        self.post_signed(body.as_bytes()).await
    }

    /// [`Client::call`], with a connection that fails (a server killed mid-request) as an
    /// error instead of a panic.
    pub async fn try_call(&self, action: &str, params: &[(&str, &str)]) -> std::io::Result<Response> {
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("Action", action);
            form.append_pair("Version", "2016-11-15");
            for (k, v) in params {
                form.append_pair(k, v);
            }
            form.finish()
        };
        let headers = self.signed_headers(body.as_bytes());
        try_raw_http(self.addr, "POST", "/", &headers, body.as_bytes()).await
    }

    /// Signs and POSTs a raw form body.
    pub async fn post_signed(&self, body: &[u8]) -> Response {
        let all = self.signed_headers(body);
        raw_http(self.addr, "POST", "/", &all, body).await
    }

    /// The headers of a signed POST of `body`, signature included.
    fn signed_headers(&self, body: &[u8]) -> Vec<(String, String)> {
        let host = self.addr.to_string();
        let headers = vec![
            ("host".to_string(), host.clone()),
            ("content-type".to_string(), "application/x-www-form-urlencoded; charset=utf-8".to_string()),
        ];
        let req = corral_auth::sigv4::SignedRequest { method: "POST", path: "/", query: "", headers: &headers, body };
        let params = corral_auth::sigv4::SigningParams {
            access_key_id: &self.access_key,
            secret_access_key: &self.secret_key,
            region: &self.region,
            service: &self.service,
            time: chrono::Utc::now() + self.skew,
        };
        let mut all = headers.clone();
        all.extend(corral_auth::sigv4::sign(&req, &params));
        all
    }
}

/// Sends one HTTP/1.1 request and reads the whole response.
pub async fn raw_http(addr: SocketAddr, method: &str, target: &str, headers: &[(String, String)], body: &[u8]) -> Response {
    try_raw_http(addr, method, target, headers, body).await.expect("HTTP exchange")
}

/// [`raw_http`], with a failed connection as an error (a connection closed without an answer
/// is status 0).
pub async fn try_raw_http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("host: {addr}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    Ok(Response { status, body: if chunked { dechunk(body) } else { body.to_string() } })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Polls `cond` until it returns Some, failing after `deadline`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl TestContext {
    /// The EC2 state name of an instance, from DescribeInstances.
    pub async fn state_of(&self, id: &str) -> String {
        let r = self.call("DescribeInstances", &[("InstanceId.1", id)]).await;
        r.ok();
        let doc = roxmltree::Document::parse(&r.body).expect("xml");
        doc.descendants()
            .find(|n| n.tag_name().name() == "instanceState")
            .and_then(|n| n.children().find(|c| c.tag_name().name() == "name"))
            .and_then(|n| n.text())
            .unwrap_or("")
            .to_string()
    }

    pub async fn wait_state(&self, id: &str, state: &str) {
        let deadline = Duration::from_secs(10);
        wait_for(&format!("{id} to be {state}"), deadline, || async { (self.state_of(id).await == state).then_some(()) }).await
    }

    /// Creates a volume of `size` GiB in `zone`; returns its id.
    pub async fn volume(&self, size: &str, zone: &str) -> String {
        let r = self.call("CreateVolume", &[("Size", size), ("AvailabilityZone", zone)]).await;
        r.ok().text("volumeId").unwrap()
    }

    /// Launches `count` instances of corral-minimal; returns their ids.
    pub async fn run(&self, count: usize, extra: &[(&str, &str)]) -> Vec<String> {
        let image = self.image("corral-minimal");
        let n = count.to_string();
        let mut params = vec![("ImageId", image.as_str()), ("MinCount", n.as_str()), ("MaxCount", n.as_str())];
        params.extend_from_slice(extra);
        let r = self.call("RunInstances", &params).await;
        r.ok();
        r.texts("instanceId")
    }
}
