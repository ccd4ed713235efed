//! Accepting connections with limits: how many at once, how many from one client address, and
//! how long a client may take to send a request's headers and then its body. A slow or greedy client gets its
//! connection closed instead of holding the API (`axum::serve` had none of these).

use axum::Router;
use corral_types::slots::PerAddress;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The limits one API listener enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once, from everyone.
    pub connections: usize,
    /// Connections open at once from one client address (every test and CLI of a host comes
    /// from loopback, so this is generous).
    pub per_client: usize,
    /// Time to send a request's headers, from the connection's start or the previous response.
    pub header_read: Duration,
    /// Time to send a request's body, from the end of its headers.
    pub body_read: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { connections: 4096, per_client: 1024, header_read: Duration::from_secs(30), body_read: Duration::from_secs(30) }
    }
}

/// How long shutting down waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(5);
/// A pause after a failed accept (out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then gives requests
/// in flight a few seconds.
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, shutdown: impl Future<Output = ()>) {
    let all = Arc::new(Semaphore::new(limits.connections));
    let per_client = PerAddress::default();
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
                tracing::warn!(error = %e, "API: accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = all.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "API: too many connections, closing one");
            continue;
        };
        let Some(slot) = per_client.take(peer.ip().to_canonical(), limits.per_client) else {
            tracing::warn!(%peer, "API: too many connections from one client, closing one");
            continue;
        };
        let app = app.clone();
        let body_read = limits.body_read;
        let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            use tower::ServiceExt;
            app.clone().oneshot(req.map(|b| crate::body_deadline::Deadline::new(b, body_read)))
        });
        connections.spawn(async move {
            // HTTP/1.1 only (the Query API needs nothing more): a protocol sniffer would wait
            // for a first byte with no timeout at all.
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "API: connection ended with an error");
            }
            drop((permit, slot));
        });
    }
    let _ = tokio::time::timeout(DRAIN, async { while connections.join_next().await.is_some() {} }).await;
}
