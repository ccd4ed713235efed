//! The HTTP side: accepts connections on a listener the agent bound inside one VPC's network
//! namespace (see [`crate::netns`]), identifies the calling instance by the connection's source
//! address, turns each request into an [`ImdsRequest`], lets [`handle`] decide, and writes the
//! answer. It decides nothing itself except who is asking.
//!
//! Who is asking: the source address of the TCP connection, looked up in the agent's
//! [`InstanceDirectory`] for this VPC. The agent's anti-spoofing rules make that address
//! trustworthy (an instance cannot send from an address that is not its own), and the listener
//! only accepts connections addressed to 169.254.169.254 because it is bound to that address,
//! not to a wildcard. A source the directory does not know gets 403 and nothing else.
//!
//! Hop limit: before the token PUT's answer is written, the connection's IP TTL is set to the
//! instance's `HttpPutResponseHopLimit`, and the connection is closed after it, so the token dies
//! in transit past that many hops (a container behind a bridge in the instance) while plain GETs
//! on other connections keep the default TTL, as on AWS.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, SERVER};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::handler::handle;
use crate::message::{ImdsRequest, ImdsResponse, Method, Status};
use crate::token::TokenKey;
use crate::view::InstanceView;

/// The well-known address the service answers on.
pub const IMDS_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// Its port.
pub const IMDS_PORT: u16 = 80;

/// Connections served at once by one VPC's service. A booting guest opens a handful (cloud-init
/// crawls over one or two); this bounds what a hostile guest can hold open.
const MAX_CONNECTIONS: usize = 256;
/// Connections one guest may hold at once, so one guest cannot take the service from the
/// others of its VPC.
const MAX_PER_GUEST: usize = 16;
/// A client that has not sent a whole request head within this long is dropped (also bounds an
/// idle keep-alive connection).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head buffered; real IMDS requests are a few hundred bytes.
const MAX_BUF_SIZE: usize = 16 * 1024;
/// Pause after a failed `accept` (out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// `X-aws-ec2-metadata-token`
pub const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
/// `X-aws-ec2-metadata-token-ttl-seconds`
pub const TOKEN_TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";

/// How the service learns which instance is calling. The agent implements it from the desired
/// state it holds; it must be cheap (it is asked on every request) and must not block.
pub trait InstanceDirectory: Send + Sync + 'static {
    /// The instance of VPC `vpc_id` whose interface has private address `ip`, if any.
    fn view_by_ip(&self, vpc_id: &str, ip: Ipv4Addr) -> Option<std::sync::Arc<InstanceView>>;
}

/// The time source (tests inject one to expire tokens).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// One VPC's metadata service.
#[derive(Clone)]
pub struct MetadataServer {
    vpc_id: Arc<str>,
    directory: Arc<dyn InstanceDirectory>,
    tokens: Arc<TokenKey>,
    clock: Clock,
}

impl MetadataServer {
    pub fn new(vpc_id: impl Into<String>, directory: Arc<dyn InstanceDirectory>, tokens: TokenKey) -> Self {
        MetadataServer { vpc_id: vpc_id.into().into(), directory, tokens: Arc::new(tokens), clock: Arc::new(SystemTime::now) }
    }

    /// Replaces the wall clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Serves `listener` until `shutdown` completes; open connections are dropped then.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let per_guest = corral_types::slots::PerAddress::default();
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            while connections.try_join_next().is_some() {}
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(vpc = %self.vpc_id, error = %e, "metadata service: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                tracing::warn!(vpc = %self.vpc_id, %peer, "metadata service: too many connections, dropping one");
                continue;
            };
            let Some(slot) = per_guest.take(peer.ip().to_canonical(), MAX_PER_GUEST) else {
                tracing::warn!(vpc = %self.vpc_id, %peer, "metadata service: too many connections from one guest, dropping one");
                continue;
            };
            let this = self.clone();
            connections.spawn(async move {
                this.serve_connection(stream, peer).await;
                drop((permit, slot));
            });
        }
    }

    async fn serve_connection(self, stream: TcpStream, peer: SocketAddr) {
        let ip = match peer.ip().to_canonical() {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(_) => return,
        };
        // A second handle on the same socket, to set its TTL while hyper owns the stream.
        let socket = match stream.as_fd().try_clone_to_owned() {
            Ok(fd) => Arc::new(fd),
            Err(e) => {
                tracing::warn!(vpc = %self.vpc_id, %peer, error = %e, "metadata service: cannot duplicate socket");
                return;
            }
        };
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let response = self.respond(ip, &socket, &req);
            async move { Ok::<_, Infallible>(response) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(MAX_BUF_SIZE)
            .serve_connection(TokioIo::new(stream), service);
        if let Err(e) = conn.await {
            tracing::debug!(%peer, error = %e, "metadata service: connection ended with an error");
        }
    }

    fn respond(&self, ip: Ipv4Addr, socket: &OwnedFd, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let Some(view) = self.directory.view_by_ip(&self.vpc_id, ip) else {
            tracing::warn!(vpc = %self.vpc_id, %ip, path = req.uri().path(), "metadata request from an unknown address");
            return render(ImdsResponse::error(Status::Forbidden));
        };
        let request = to_imds_request(req);
        let response = handle(&request, &view, &self.tokens, (self.clock)());
        if let Some(ttl) = response.ip_ttl {
            if let Err(e) = socket2::SockRef::from(socket).set_ttl_v4(u32::from(ttl)) {
                // Never hand out a token that could travel further than the hop limit allows.
                tracing::error!(instance = %view.instance_id, error = %e, "cannot set the hop limit; token withheld");
                return render(ImdsResponse::error(Status::ServiceUnavailable));
            }
        }
        render(response)
    }
}

fn header(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers().get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The HTTP layer's only job: pick out what IMDS looks at.
fn to_imds_request(req: &Request<Incoming>) -> ImdsRequest {
    ImdsRequest {
        method: Method::parse(req.method().as_str()),
        path: req.uri().path().to_string(),
        token: header(req, TOKEN_HEADER),
        token_ttl_seconds: header(req, TOKEN_TTL_HEADER),
        forwarded_for: header(req, "x-forwarded-for"),
    }
}

/// Writes a core response as HTTP. (For HEAD, hyper sends the headers and drops the body.)
fn render(resp: ImdsResponse) -> Response<Full<Bytes>> {
    let mut out = Response::new(Full::new(Bytes::from(resp.body)));
    *out.status_mut() = StatusCode::from_u16(resp.status.code()).expect("IMDS statuses are valid");
    let headers = out.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(resp.content_type.as_str()));
    headers.insert(SERVER, HeaderValue::from_static("EC2ws"));
    if let Some(ttl) = resp.token_ttl_seconds {
        headers.insert(TOKEN_TTL_HEADER, HeaderValue::from(ttl));
    }
    if resp.ip_ttl.is_some() {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    out
}
