//! The response body as it streams back: it keeps its request counted as in progress, gives
//! its connection back to the pool once fully read, and cuts off a silent upstream.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::Lease;
use super::direct::{DirectBody, DirectBodyError};
use crate::lifecycle::InFlight;

/// Why a response body stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The upstream connection failed mid-body.
    #[error("the upstream failed mid-response: {0}")]
    Upstream(#[from] hyper::Error),
    /// The upstream connection failed mid-body, or the body was malformed (a bodiless
    /// request's answer, read by the proxy itself).
    #[error("the upstream failed mid-response: {0}")]
    Direct(#[from] DirectBodyError),
    /// The upstream sent nothing for `proxy.idle_timeout`.
    #[error("the upstream sent nothing for {}s", .0.as_secs())]
    Idle(Duration),
}

/// An upstream's answer body: from hyper's client, or read by the request itself.
#[derive(Debug)]
pub enum UpstreamBody {
    /// Through hyper's client (requests with a body, upgrades, HTTP/2).
    Hyper(Incoming),
    /// On a connection driven by its request (bodiless requests over HTTP/1.1).
    Direct(DirectBody),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            UpstreamBody::Hyper(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(BodyError::Upstream))),
            UpstreamBody::Direct(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(BodyError::Direct))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Hyper(body) => body.is_end_stream(),
            UpstreamBody::Direct(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Hyper(body) => body.size_hint(),
            UpstreamBody::Direct(body) => body.size_hint(),
        }
    }
}

/// An upstream response body that keeps its request counted as in progress until the body
/// is done or dropped (so an app is never stopped under a response being streamed), gives
/// its upstream connection back to the pool once fully read, and cuts off an upstream that
/// stays silent for longer than `proxy.idle_timeout`.
#[derive(Debug)]
pub struct TrackedBody {
    /// The upstream's body, streamed as it comes.
    inner: UpstreamBody,
    /// Released with the body (`None` when a tunnel holds it instead).
    _in_flight: Option<InFlight>,
    /// The connection, until the body ends (a body dropped early takes it down with it).
    lease: Option<Lease>,
    /// Longest silence allowed between two pieces of the body.
    idle: Duration,
    /// Armed the first time the upstream keeps the body waiting (most bodies never do, so
    /// most responses never touch the timer).
    silence: Option<Pin<Box<tokio::time::Sleep>>>,
    /// A piece arrived since the timer was last armed: re-arm before waiting again.
    progressed: bool,
}

impl TrackedBody {
    /// Wraps an upstream body.
    pub fn new(
        inner: UpstreamBody,
        in_flight: Option<InFlight>,
        lease: Option<Lease>,
        idle: Duration,
    ) -> TrackedBody {
        let mut body = TrackedBody {
            inner,
            _in_flight: in_flight,
            lease,
            idle,
            silence: None,
            progressed: false,
        };
        if body.inner.is_end_stream() {
            body.release();
        }
        body
    }

    /// Takes the answer's fields kept as the upstream wrote them, when they are (the
    /// response's map is then empty): whoever takes them writes them, or puts them in the
    /// map ([`super::RawFields::into_map`]).
    pub fn take_fields(&mut self) -> Option<super::RawFields> {
        match &mut self.inner {
            UpstreamBody::Direct(body) => body.take_fields(),
            UpstreamBody::Hyper(_) => None,
        }
    }

    fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.release();
        }
    }

    /// Called when the upstream has nothing yet: whether it has been silent too long.
    fn silent_too_long(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = Instant::now() + self.idle;
        let progressed = std::mem::take(&mut self.progressed);
        let silence = match &mut self.silence {
            Some(silence) => {
                if progressed {
                    silence.as_mut().reset(deadline);
                }
                silence
            }
            None => self
                .silence
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        silence.as_mut().poll(cx).is_ready()
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match polled {
            Poll::Ready(None) => {
                self.release();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                if self.inner.is_end_stream() {
                    self.release();
                }
                self.progressed = true;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                self.lease = None;
                Poll::Ready(Some(Err(error)))
            }
            Poll::Pending => {
                if self.silent_too_long(cx) {
                    // The connection goes down with the lease: it is mid-response.
                    self.lease = None;
                    tracing::debug!(idle = ?self.idle, "upstream silent too long; response cut off");
                    return Poll::Ready(Some(Err(BodyError::Idle(self.idle))));
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
