//! Phase **forward**: streams the request to the upstream and the response back, through a
//! pool of upstream connections: HTTP/1.1, or HTTP/2 when an `https` upstream offers it by
//! ALPN (one multiplexed connection per upstream, shared by every request of the worker).
//! Hop-by-hop headers are removed both ways; `X-Forwarded-*` and `Via` are set; `Host`
//! becomes the upstream's (PaaS routers route by Host). Bodies are never buffered. This
//! module does not decide where to forward: it is given the upstream.
//!
//! This file holds the forwarder and its send loop (which connection a request goes on, and
//! when it is sent again); its parts live beside it in `forward/`: the connection pool and
//! the opening of connections (`pool`), upstream TLS (`upstream_tls`), the ramp and the
//! pauses just after a wake (`ramp`), the request and response headers (`headers`),
//! bodiless requests on HTTP/1.1 connections driven by the request itself (`direct`; hyper's
//! client takes requests with a body, upgrades and HTTP/2), upgrades (`upgrade`), the
//! response body (`response`) and why forwarding failed (`error`).

pub(crate) mod direct;
mod error;
mod headers;
mod pool;
mod ramp;
mod raw;
mod response;
mod upgrade;
mod upstream_tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt as _;
use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use tokio::time::Instant;

use super::body::{BodyOutcome, BodyProgress, Outgoing, RequestBody};
pub use crate::address::UpstreamScope;
use crate::model::Upstream;
pub use direct::DirectBodyError;
use direct::DirectError;
pub use error::ForwardError;
use error::exchange_failed;
pub use headers::{is_upgrade, remove_hop_by_hop};
pub use pool::Lease;
use pool::{Connection, Idle, Lane, Multiplexed, Pool};
use ramp::{RAMP_HOLD, Ramps, RetryPause};
pub use raw::RawFields;
pub use response::{BodyError, TrackedBody, UpstreamBody};
pub use upgrade::Tunnel;
pub use upstream_tls::{TlsError, UpstreamTls, upstream_tls};

/// Fresh connections one request may use before it fails, outside the time just after a
/// wake (which retries until its deadline).
const MAX_FRESH_CONNECTIONS: usize = 3;

/// How long the forward phase waits on an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamTimeouts {
    /// Connecting (TCP, and TLS for `https`), `proxy.connect_timeout`.
    pub connect: Duration,
    /// From the request sent to the response's headers, `proxy.response_header_timeout`.
    pub response_header: Duration,
    /// Longest wait for the next piece of a response body, `proxy.idle_timeout`: an
    /// upstream silent for longer is cut off (server-sent event streams send heartbeats
    /// more often than that). Upgraded connections (WebSockets) are not bounded by it.
    pub idle: Duration,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        UpstreamTimeouts {
            connect: Duration::from_secs(5),
            response_header: Duration::from_secs(60),
            idle: Duration::from_secs(90),
        }
    }
}

/// The client side of one connection, known once for all its requests.
#[derive(Debug, Clone)]
pub struct ClientSide {
    /// The client's address.
    pub peer: SocketAddr,
    /// The client's IP as an `X-Forwarded-For` entry, built once.
    pub ip: HeaderValue,
    /// `http` or `https`: how the client reached the engine.
    pub proto: &'static str,
    /// The peer is a trusted proxy (`proxy.trusted_proxies`): its `X-Forwarded-Proto` and
    /// `X-Forwarded-Host` are kept.
    pub trusted: bool,
}

impl ClientSide {
    /// The client side of a connection from `peer`, `trusted` when it is a trusted proxy.
    pub fn new(peer: SocketAddr, proto: &'static str, trusted: bool) -> ClientSide {
        let ip = HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        ClientSide {
            peer,
            ip,
            proto,
            trusted,
        }
    }
}

/// The upstream connection pool of one proxy worker: HTTP/1.1 connections kept per
/// upstream, each driven by its own task, reused once their last response is fully read;
/// and one HTTP/2 connection per upstream that negotiated it, shared by concurrent requests.
#[derive(Clone)]
pub struct Forwarder {
    /// Idle connections by lane and upstream authority, newest last.
    pool: Arc<Mutex<Pool>>,
    /// Open HTTP/2 connections by lane and upstream authority.
    multiplexed: Arc<Mutex<Multiplexed>>,
    /// TLS for `https` upstreams (shared by every worker).
    tls: UpstreamTls,
    /// How long to wait on upstreams.
    timeouts: UpstreamTimeouts,
    /// Send the client's `Host` upstream instead of the upstream's own.
    preserve_host: bool,
    /// How a client's request body must progress.
    body_progress: BodyProgress,
    /// Places for requests on fresh connections just after a wake, by upstream authority.
    ramps: Arc<Mutex<Ramps>>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").finish_non_exhaustive()
    }
}

impl Forwarder {
    /// A forwarder with an empty pool.
    pub fn new(
        tls: UpstreamTls,
        timeouts: UpstreamTimeouts,
        preserve_host: bool,
        body_progress: BodyProgress,
    ) -> Forwarder {
        Forwarder {
            pool: Arc::default(),
            multiplexed: Arc::default(),
            tls,
            timeouts,
            preserve_host,
            body_progress,
            ramps: Arc::default(),
        }
    }

    /// Waits for the response's headers to `exchange` (a request being sent), at most
    /// `proxy.response_header_timeout`. A plain future (no `async fn` around it): the
    /// exchange, which holds the request, is not moved once more on every request.
    fn response_header<F: Future>(
        &self,
        exchange: F,
    ) -> impl Future<Output = Result<F::Output, ForwardError>> {
        let limit = self.timeouts.response_header;
        tokio::time::timeout(limit, exchange)
            .map(move |sent| sent.map_err(|_| ForwardError::Timeout(limit)))
    }

    /// Sends the request to `upstream` and returns its response, headers cleaned, with the
    /// connection lease to hand to the response body (none for HTTP/2).
    ///
    /// Until `retry_until()` (some time just after a wake), a new connection that is refused,
    /// or closed before it takes the request, is tried again after a growing pause: a
    /// platform may say "running" a moment before the app listens. Nothing of the request
    /// has been sent when that happens, so any request can be retried. A bodiless request
    /// the upstream's TCP stack never acknowledged on a fresh connection (the app never
    /// read it) is sent again on another; so is an idempotent one whose kept-alive
    /// connection closed before any answer.
    #[expect(
        clippy::manual_async_fn,
        reason = "an `async fn` copies the request into its body once more (measured)"
    )]
    pub fn forward(
        &self,
        request: Request<RequestBody>,
        upstream: &Upstream,
        client: &ClientSide,
        retry_until: impl Fn() -> Option<Instant>,
        scope: UpstreamScope,
    ) -> impl Future<Output = Result<(Response<UpstreamBody>, Option<Lease>), ForwardError>> {
        // Not an `async fn`: the request is not copied into the body's locals (see
        // `Worker::handle`).
        async move {
            // The fields the proxy sets stay apart until a request goes to hyper's client: a
            // direct connection writes them without putting them in the request's map.
            let (mut request, added, client_host, outcome) =
                self.prepare_apart(request, upstream, client);
            let mut added = Some(added);
            // Which connections may carry it: to this upstream's scheme, opened for a space
            // with this scope.
            let lane = Lane::of(upstream, scope);
            // Fresh connections made for this request: an upstream that keeps closing them
            // before taking the request is given up on (outside the time just after a wake).
            let mut fresh = 0;
            let mut pause = RetryPause::new(retry_until);
            // Just after a wake: how long the next new connection may go unanswered.
            let mut patience = pool::FIRST_CONNECT_PATIENCE;
            let (mut response, sender) = loop {
                if fresh >= MAX_FRESH_CONNECTIONS && !pause.wait().await {
                    return Err(ForwardError::Exchange(format!(
                        "{}: every new connection closed before taking the request",
                        upstream.authority
                    )));
                }
                // An upstream that chose HTTP/2 has one connection for everything (only
                // `https` ones can: HTTP/2 is chosen by ALPN). A plain one is not looked up:
                // the lookup takes a lock.
                if upstream.scheme == http::uri::Scheme::HTTPS
                    && let Some(mut shared) = self.shared(lane, &upstream.authority)
                {
                    // Boxed: its future is as large as the rest of this one's together.
                    if let Some(added) = added.take() {
                        added.apply(request.headers_mut());
                    }
                    let sent =
                        Box::pin(self.send_h2(&mut shared, request, upstream, &outcome)).await?;
                    match sent {
                        Ok(response) => break (response.map(UpstreamBody::Hyper), None),
                        // Closed (GOAWAY) before taking the request: nothing was sent.
                        Err(unsent) => {
                            self.forget_shared(lane, &upstream.authority, &shared);
                            request = unsent;
                            continue;
                        }
                    }
                }
                let bodiless = matches!(request.body(), Outgoing::Empty);
                // Just after a wake, a place among the few requests opening connections to
                // the upstream at once, kept from before connecting to the first byte of the
                // answer (or [`RAMP_HOLD`]): a burst would overflow a small listen backlog.
                let mut place = None;
                let mut idle = self.checkout(lane, &upstream.authority, bodiless).await;
                if idle.is_none() && pause.active() {
                    place = self.ramp(&upstream.authority).await;
                    // A connection may have come back while this request waited.
                    idle = self.checkout(lane, &upstream.authority, bodiless).await;
                }
                let (connection, reused) = match idle {
                    Some(idle) => {
                        place = None;
                        (idle, true)
                    }
                    // New connections are rare: boxed, so the common path's future stays small.
                    None => {
                        // Just after a wake, a connection left unanswered is replaced soon.
                        let quick = place.is_some().then_some(patience);
                        match Box::pin(self.connect(upstream, bodiless, scope, quick)).await {
                            Ok(Connection::Http1(sender)) => {
                                fresh += 1;
                                (Idle::Hyper(sender), false)
                            }
                            Ok(Connection::Direct(direct)) => {
                                fresh += 1;
                                (Idle::Direct(direct), false)
                            }
                            // Shared from now on: the next turn sends on it.
                            Ok(Connection::Http2(_)) => {
                                fresh += 1;
                                continue;
                            }
                            Err(error @ ForwardError::Unanswered(_)) => {
                                // The attempt itself waited: the next one goes at once.
                                tracing::debug!(%error, "upstream busy, connecting again");
                                patience = (patience * 2).min(self.timeouts.connect);
                                continue;
                            }
                            Err(error @ ForwardError::NotListening(_)) => {
                                // Nothing to hold the others back for while pausing.
                                drop(place.take());
                                if pause.wait().await {
                                    tracing::debug!(%error, "upstream not ready yet, retrying");
                                    continue;
                                }
                                return Err(error);
                            }
                            Err(error) => return Err(error),
                        }
                    }
                };
                let mut sender = match connection {
                    Idle::Hyper(sender) => sender,
                    Idle::Direct(direct) => {
                        let home = direct::Home {
                            pool: Arc::clone(&self.pool),
                        };
                        // The connection keeps the one timer that bounds its answers' heads.
                        let limit = self.timeouts.response_header;
                        let send = direct.send(&request, added.as_ref(), home, Some(limit));
                        let sent = match place {
                            None => send.await,
                            // Rare: boxed, as below.
                            Some(place) => Box::pin(holding(send, place)).await,
                        };
                        let error = match sent {
                            Ok(response) => {
                                break (response.map(UpstreamBody::Direct), None);
                            }
                            Err(error) => error,
                        };
                        match error {
                            // A reused connection the upstream had closed: nothing was taken.
                            DirectError::Unsent(_) if reused => continue,
                            // A fresh one closed before taking it, just after a wake.
                            DirectError::Unsent(_) if pause.wait().await => continue,
                            // Never acknowledged by the upstream's TCP stack: the app never
                            // read it. Requests lost together come back spread out, or they
                            // would fill the same backlog again.
                            DirectError::NoAnswer(cause)
                                if !reused && cause.kind() == std::io::ErrorKind::TimedOut =>
                            {
                                tracing::debug!(
                                    upstream = %upstream.authority,
                                    "upstream never took the connection; sending the request again"
                                );
                                resend_pause(fresh).await;
                                continue;
                            }
                            // A kept-alive connection closed as the request went: an
                            // idempotent request may go again (RFC 9110 §9.2.2).
                            DirectError::NoAnswer(_)
                                if reused && request.method().is_idempotent() =>
                            {
                                continue;
                            }
                            DirectError::TimedOut(limit) => {
                                return Err(ForwardError::Timeout(limit));
                            }
                            error => {
                                return Err(ForwardError::Exchange(format!(
                                    "{}: {error}",
                                    upstream.authority
                                )));
                            }
                        }
                    }
                };
                // Here on hyper's client: a request with a body, or a bodiless one on a pooled
                // connection a request with a body left.
                if let Some(added) = added.take() {
                    added.apply(request.headers_mut());
                }
                let send = sender.try_send_request(request);
                let sent = match place {
                    None => self.response_header(send).await?,
                    // Rare (new connections just after a wake): boxed, so the common path's
                    // future stays small (hyper moves it once per request).
                    Some(place) => Box::pin(self.response_header(holding(send, place))).await?,
                };
                match sent {
                    Ok(response) => break (response.map(UpstreamBody::Hyper), Some(sender)),
                    Err(mut error) => match error.take_message() {
                        // A reused connection the upstream closed before taking the request:
                        // nothing was sent, so any request can go on a fresh connection.
                        Some(unsent) if reused => request = unsent,
                        // A fresh one closed before taking it, just after a wake.
                        Some(unsent) if pause.wait().await => request = unsent,
                        _ => return Err(exchange_failed(error.error(), &outcome)),
                    },
                }
            };
            // Fields kept as the upstream wrote them need no cleaning (see `raw`): only `Via`.
            let version = response.version();
            let fields = match response.body_mut() {
                UpstreamBody::Direct(body) => body.fields_mut(),
                UpstreamBody::Hyper(_) => None,
            };
            match fields {
                Some(fields) => fields.set_via(headers::via_text(version)),
                None => self.clean_response(&mut response, upstream, client_host.as_ref()),
            }
            let lease = sender.map(|sender| Lease {
                pool: Arc::clone(&self.pool),
                lane,
                authority: upstream.authority.clone(),
                sender,
            });
            Ok((response, lease))
        }
    }

    /// Sends on an HTTP/2 connection. The request goes in HTTP/2 form (the upstream's
    /// authority in the target, no `Host` header); a request the connection refused before
    /// taking it comes back, in HTTP/1.1 form again, to go elsewhere.
    async fn send_h2(
        &self,
        sender: &mut http2::SendRequest<Outgoing>,
        mut request: Request<Outgoing>,
        upstream: &Upstream,
        outcome: &BodyOutcome,
    ) -> Result<Result<Response<Incoming>, Request<Outgoing>>, ForwardError> {
        let host = request.headers_mut().remove(header::HOST);
        let authority = host
            .as_ref()
            .and_then(|host| Authority::try_from(host.as_bytes()).ok())
            .unwrap_or_else(|| upstream.authority.clone());
        let mut target = http::uri::Parts::default();
        target.scheme = Some(upstream.scheme.clone());
        target.authority = Some(authority);
        target.path_and_query = request.uri().path_and_query().cloned();
        match Uri::from_parts(target) {
            Ok(uri) => *request.uri_mut() = uri,
            Err(error) => return Err(ForwardError::Exchange(format!("bad target: {error}"))),
        }
        *request.version_mut() = Version::HTTP_2;
        let sent = self
            .response_header(sender.try_send_request(request))
            .await?;
        match sent {
            Ok(response) => Ok(Ok(response)),
            Err(mut error) => match error.take_message() {
                Some(mut unsent) if sender.is_closed() => {
                    *unsent.version_mut() = Version::HTTP_11;
                    let path = unsent
                        .uri()
                        .path_and_query()
                        .cloned()
                        .unwrap_or_else(|| PathAndQuery::from_static("/"));
                    *unsent.uri_mut() = Uri::from(path);
                    if let Some(host) = host {
                        unsent.headers_mut().insert(header::HOST, host);
                    }
                    Ok(Err(unsent))
                }
                _ => Err(exchange_failed(error.error(), outcome)),
            },
        }
    }
}

/// Before sending again a request the upstream never acknowledged, after `fresh` new
/// connections: a random pause (up to 100 ms, then up to 800 ms), so requests lost
/// together come back spread out instead of filling the same backlog again.
async fn resend_pause(fresh: usize) {
    let spread = 50 << fresh.min(4);
    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..spread))).await;
}

/// `send`, holding a ramp `place` until it completes or for [`RAMP_HOLD`] at most: an
/// upstream slow to answer does not keep the next connections waiting.
async fn holding<F: Future>(send: F, place: tokio::sync::OwnedSemaphorePermit) -> F::Output {
    tokio::pin!(send);
    tokio::select! {
        sent = &mut send => sent,
        () = tokio::time::sleep(RAMP_HOLD) => {
            drop(place);
            send.await
        }
    }
}
