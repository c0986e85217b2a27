//! Request bodies on their way upstream: the client's body under a progress deadline, or no
//! body at all (then the request can be sent again on another connection).
//!
//! A client that trickles its body (one byte every few seconds) would otherwise hold its
//! connection, its upstream connection and its app's "request in progress" mark forever, so
//! the app never sleeps. [`ClientBody`] fails once the client has sent nothing for
//! `proxy.request_body_timeout`, or once its average rate since the body began falls under
//! `proxy.min_request_body_rate` (after the first `request_body_timeout`). The deadline runs
//! only while the upstream asks for more: an upstream that reads slowly is not the client's
//! fault. Why a body failed is kept for the forward phase, so the answer blames the right side.
//! This module does not decide where a request goes.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

/// How a client's request body may progress (`proxy.request_body_timeout`,
/// `proxy.min_request_body_rate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyProgress {
    /// Longest silence between two pieces of the body; also the grace period before the
    /// average rate is checked.
    pub timeout: Duration,
    /// Lowest average rate, in bytes per second, once `timeout` has passed; 0: not checked.
    pub min_rate: u64,
}

impl Default for BodyProgress {
    fn default() -> Self {
        BodyProgress {
            timeout: Duration::from_secs(30),
            min_rate: 1024,
        }
    }
}

/// Why a client's request body ended before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientBodyError {
    /// Not HTTP: a bad chunk size, a body shorter than its `Content-Length`, a bad frame.
    #[error("the request body is malformed or was cut short")]
    Malformed,
    /// The client sent it too slowly (silent too long, or under the minimum rate).
    #[error("the request body was sent too slowly")]
    TooSlow,
}

/// What the forward phase learns about the client's body once the exchange failed. A
/// request without a body has nothing to learn: its outcome (the default) holds no cell, so
/// it costs no allocation.
#[derive(Debug, Clone, Default)]
pub struct BodyOutcome(Option<Arc<AtomicU8>>);

impl BodyOutcome {
    const MALFORMED: u8 = 1;
    const TOO_SLOW: u8 = 2;

    /// The outcome of a body that is sent, told by its [`ClientBody`].
    pub fn tracked() -> BodyOutcome {
        BodyOutcome(Some(Arc::default()))
    }

    fn set(&self, error: ClientBodyError) {
        let value = match error {
            ClientBodyError::Malformed => Self::MALFORMED,
            ClientBodyError::TooSlow => Self::TOO_SLOW,
        };
        if let Some(cell) = &self.0 {
            cell.store(value, Ordering::Relaxed);
        }
    }

    /// The client's fault, if the body failed.
    pub fn failure(&self) -> Option<ClientBodyError> {
        match self.0.as_ref()?.load(Ordering::Relaxed) {
            Self::MALFORMED => Some(ClientBodyError::Malformed),
            Self::TOO_SLOW => Some(ClientBodyError::TooSlow),
            _ => None,
        }
    }
}

/// The client's request body under its progress deadline.
#[derive(Debug)]
pub struct ClientBody {
    /// The body as the client sends it.
    inner: Incoming,
    /// Its deadlines.
    progress: BodyProgress,
    /// When the upstream first asked for it (the rate is measured from there).
    started: Option<Instant>,
    /// When the last piece came (or the start).
    last: Instant,
    /// Bytes received so far.
    received: u64,
    /// Armed when the client keeps the upstream waiting.
    timer: Option<Pin<Box<Sleep>>>,
    /// Shared with the forward phase.
    outcome: BodyOutcome,
}

impl ClientBody {
    /// The client's `inner` body; `outcome` tells the forward phase why it failed.
    pub fn new(inner: Incoming, progress: BodyProgress, outcome: BodyOutcome) -> ClientBody {
        ClientBody {
            inner,
            progress,
            started: None,
            last: Instant::now(),
            received: 0,
            timer: None,
            outcome,
        }
    }
}

/// When a client is late with its body: silent for `timeout` since `last`, or, with a
/// minimum rate, once `received` bytes no longer cover the time since `started`.
fn late_at(progress: BodyProgress, started: Instant, last: Instant, received: u64) -> Instant {
    let silent = last + progress.timeout;
    if progress.min_rate == 0 {
        return silent;
    }
    // At `min_rate`, what was received covers this long from the start.
    let covered = Duration::from_secs_f64(received as f64 / progress.min_rate as f64);
    silent.min(started + covered.max(progress.timeout))
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let started = *self.started.get_or_insert_with(Instant::now);
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.received += data.len() as u64;
                    self.last = Instant::now();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                tracing::debug!(%error, "client request body failed");
                self.outcome.set(ClientBodyError::Malformed);
                Poll::Ready(Some(Err(ClientBodyError::Malformed)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = late_at(self.progress, started, self.last, self.received);
                let timer = match &mut self.timer {
                    Some(timer) => {
                        if timer.deadline() != deadline {
                            timer.as_mut().reset(deadline);
                        }
                        timer
                    }
                    None => self
                        .timer
                        .insert(Box::pin(tokio::time::sleep_until(deadline))),
                };
                if timer.as_mut().poll(cx).is_ready() {
                    self.outcome.set(ClientBodyError::TooSlow);
                    return Poll::Ready(Some(Err(ClientBodyError::TooSlow)));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A client's request body as the proxy gets it: hyper's, or none at all (a request the
/// engine's own HTTP/1.1 server read, which takes only bodiless ones).
#[derive(Debug)]
pub enum RequestBody {
    /// Read by hyper's server (HTTP/2, or an HTTP/1.1 request with a body).
    Hyper(Incoming),
    /// No body.
    Empty,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Hyper(body) => Pin::new(body).poll_frame(cx),
            RequestBody::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Hyper(body) => body.is_end_stream(),
            RequestBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Hyper(body) => body.size_hint(),
            RequestBody::Empty => SizeHint::with_exact(0),
        }
    }
}

/// The body of a request sent upstream.
#[derive(Debug)]
pub enum Outgoing {
    /// The client's, streamed.
    Client(ClientBody),
    /// None: such a request can be sent again as it is.
    Empty,
}

impl Body for Outgoing {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        match self.get_mut() {
            Outgoing::Client(body) => Pin::new(body).poll_frame(cx),
            Outgoing::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Outgoing::Client(body) => body.is_end_stream(),
            Outgoing::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Outgoing::Client(body) => body.size_hint(),
            Outgoing::Empty => SizeHint::with_exact(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_late_when_silent_or_under_the_average_rate() {
        let start = Instant::now();
        let secs = Duration::from_secs;
        let progress = BodyProgress {
            timeout: secs(10),
            min_rate: 100,
        };
        // Nothing yet: the grace period.
        assert_eq!(late_at(progress, start, start, 0), start + secs(10));
        // 5,000 bytes at 100 B/s cover 50 s, but silence since 20 s ends it at 30 s.
        assert_eq!(
            late_at(progress, start, start + secs(20), 5000),
            start + secs(30)
        );
        // 1,500 bytes cover 15 s: a trickle that keeps talking is still cut at 15 s.
        assert_eq!(
            late_at(progress, start, start + secs(14), 1500),
            start + secs(15)
        );
        // No minimum rate: silence alone.
        let silence_only = BodyProgress {
            min_rate: 0,
            ..progress
        };
        assert_eq!(
            late_at(silence_only, start, start + secs(14), 1),
            start + secs(24)
        );
    }
}
