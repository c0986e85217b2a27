//! The response body as it streams back: it keeps its request counted as in progress (and
//! its span, when traced, open), gives its connection back to the pool once fully read, and
//! cuts off a silent upstream.

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
use crate::traces::Span;

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
    /// The request's span when it is traced: it ends with the body, so it covers the
    /// answer's whole transfer, not its head only (`None` on the untraced path: boxed, so
    /// the common body stays as small as it was).
    span: Option<Box<Span>>,
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
            span: None,
        };
        if body.inner.is_end_stream() {
            body.release();
        }
        body
    }

    /// Keeps the request's `span` open until the body ends: at its last piece, at its
    /// failure (recorded as the span's error), or when it is dropped before its end (the
    /// client went away: recorded as `paastis.response.complete = false`). A body already
    /// at its end ends the span now.
    pub fn end_span_with_body(&mut self, span: Span) {
        if !self.inner.is_end_stream() {
            self.span = Some(Box::new(span));
        }
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

    /// The body failed: its span (if any) ends as failed, with why.
    fn span_failed(&mut self, error: &BodyError) {
        if let Some(mut span) = self.span.take() {
            span.set("error.type", "response_body");
            span.fail(error.to_string());
        }
    }

    fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.release();
        }
        // The answer is whole: its span ends here.
        self.span = None;
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
                self.span_failed(&error);
                Poll::Ready(Some(Err(error)))
            }
            Poll::Pending => {
                if self.silent_too_long(cx) {
                    // The connection goes down with the lease: it is mid-response.
                    self.lease = None;
                    tracing::debug!(idle = ?self.idle, "upstream silent too long; response cut off");
                    let error = BodyError::Idle(self.idle);
                    self.span_failed(&error);
                    return Poll::Ready(Some(Err(error)));
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

impl Drop for TrackedBody {
    /// A span still open here: the body was dropped before its end (the client went away).
    fn drop(&mut self) {
        if let Some(span) = &mut self.span
            && !self.inner.is_end_stream()
        {
            span.set("paastis.response.complete", false);
        }
    }
}
