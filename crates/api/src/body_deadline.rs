//! A request body with a deadline: a client that sends its headers and then trickles (or
//! stops sending) its body is cut off when the deadline passes, instead of holding a
//! connection and a task for as long as it likes. The handler answers `RequestTimeout`.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

/// The error a body gives once its deadline has passed.
#[derive(Debug)]
pub struct BodyTimeout(pub Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request body did not arrive within {:?}", self.0)
    }
}

impl std::error::Error for BodyTimeout {}

/// `inner`, failing with [`BodyTimeout`] if it has not ended within the deadline. The timer is
/// only made when the body makes a reader wait: a body that came with its headers (every
/// ordinary request) costs no timer at all.
pub struct Deadline<B> {
    inner: B,
    limit: Duration,
    at: tokio::time::Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<B> Deadline<B> {
    pub fn new(inner: B, limit: Duration) -> Deadline<B> {
        Deadline { inner, limit, at: tokio::time::Instant::now() + limit, sleep: None }
    }
}

impl<B> Body for Deadline<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let at = this.at;
        match this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at))).as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(this.limit))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What reading a body failed on, from the error's chain.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadFailure {
    TooLarge,
    TimedOut,
    Other,
}

pub fn classify(e: &(dyn std::error::Error + 'static)) -> ReadFailure {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<http_body_util::LengthLimitError>() {
            return ReadFailure::TooLarge;
        }
        if err.is::<BodyTimeout>() {
            return ReadFailure::TimedOut;
        }
        cur = err.source();
    }
    ReadFailure::Other
}
