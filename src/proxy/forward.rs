//! Phase **forward**: streams the request to the upstream and the response back, through a
//! pool of upstream connections: HTTP/1.1, or HTTP/2 when an `https` upstream offers it by
//! ALPN (one multiplexed connection per upstream, shared by every request of the worker).
//! Hop-by-hop headers are removed both ways; `X-Forwarded-*` and `Via` are set; `Host`
//! becomes the upstream's (PaaS routers route by Host). Bodies are never buffered. This
//! module does not decide where to forward: it is given the upstream.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{Request, Response, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use super::body::{BodyOutcome, BodyProgress, ClientBody, ClientBodyError, Outgoing};
pub use crate::address::UpstreamScope;
use crate::lifecycle::InFlight;
use crate::model::Upstream;

/// Idle upstream connections are closed before typical upstream keep-alive timeouts (Node's
/// is 5 s), so a reused connection is rarely one the upstream is closing.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// Idle connections kept per upstream.
const POOL_MAX_IDLE: usize = 256;

/// An HTTP/2 upstream connection unused for this long is replaced rather than reused
/// (HTTP/2 servers keep connections much longer than HTTP/1.1 ones, and say so with GOAWAY
/// before closing, which is handled on its own).
const H2_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the request on a fresh upstream connection may stay unacknowledged by the
/// upstream's TCP stack before the connection is given up (`TCP_USER_TIMEOUT`, until the
/// first byte of the answer). A server whose listen backlog overflowed (a burst of requests
/// released by a wake, against an app server with a small backlog) can complete a handshake
/// and then never take the connection: the request would wait for
/// `response_header_timeout` and fail. Bytes that were never acknowledged never reached the
/// app, so such a request (without a body) is sent again on a new connection.
const FIRST_EXCHANGE_ACK_TIMEOUT: Duration = Duration::from_secs(1);

/// Just after a wake, requests on fresh connections to one upstream at once, per worker:
/// the held requests are released together, and an app server with a small listen backlog
/// would drop most of a burst of new connections. Each keeps its place until the first
/// byte of its answer, or [`RAMP_HOLD`].
const RAMP_CONNECTIONS: usize = 4;

/// Longest a request keeps its place among [`RAMP_CONNECTIONS`] (a slow answer does not
/// hold the others back for longer).
const RAMP_HOLD: Duration = Duration::from_millis(50);

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

/// Headers that concern one connection only (RFC 9110 7.6.1), never forwarded. `Upgrade`
/// too: upgrades are not proxied yet.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::UPGRADE,
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

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

impl ForwardError {
    /// What a visitor is told: the kind of failure, never an address nor a server's words.
    pub fn public(&self) -> &'static str {
        match self {
            ForwardError::Connect(_) => "no connection could be made to it",
            ForwardError::NotListening(_) => "it is not listening",
            ForwardError::Tls(_) => "its TLS certificate or handshake was refused",
            ForwardError::Internal(_) => "its address is not one this space may reach",
            ForwardError::Exchange(_) => "its server failed to answer",
            ForwardError::Timeout(_) => "it sent no response in time",
            ForwardError::ClientBody(ClientBodyError::Malformed) => {
                "the request body is malformed or was cut short"
            }
            ForwardError::ClientBody(ClientBodyError::TooSlow) => {
                "the request body was sent too slowly"
            }
        }
    }
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

/// Why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No connection could be made to the upstream.
    #[error("cannot connect to the upstream: {0}")]
    Connect(String),
    /// Nothing listens at the upstream's address (refused or reset at once): an app just
    /// woken may not listen yet, so retrying can help.
    #[error("nothing listens at the upstream's address: {0}")]
    NotListening(String),
    /// The upstream resolves only to addresses its space may not reach.
    #[error("{0} resolves only to internal addresses, which this space may not reach")]
    Internal(String),
    /// The upstream's TLS handshake failed (its certificate was refused, ...).
    #[error("the upstream's TLS handshake failed: {0}")]
    Tls(String),
    /// The connection was made but the exchange failed (reset, bad response, ...).
    #[error("the upstream failed: {0}")]
    Exchange(String),
    /// The upstream took too long to answer.
    #[error("the upstream sent no response within {}s", .0.as_secs())]
    Timeout(Duration),
    /// The client's request body failed (malformed, or too slow): the client's fault.
    #[error("{0}")]
    ClientBody(ClientBodyError),
}

/// The upstream connection pool of one proxy worker: HTTP/1.1 connections kept per
/// upstream, each driven by its own task, reused once their last response is fully read;
/// and one HTTP/2 connection per upstream that negotiated it, shared by concurrent requests.
#[derive(Clone)]
pub struct Forwarder {
    /// Idle connections by upstream authority, newest last.
    pool: Arc<Mutex<Pool>>,
    /// Open HTTP/2 connections by upstream authority.
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

/// Why the upstream TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("upstream TLS: {0}")]
pub struct TlsError(String);

/// TLS client settings for upstreams, one per ALPN offer.
#[derive(Clone)]
pub struct UpstreamTls {
    /// Offers `h2` then `http/1.1`: ordinary requests.
    any: TlsConnector,
    /// Offers `http/1.1` only: upgrades (WebSockets), which need an HTTP/1.1 connection.
    http1: TlsConnector,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls").finish_non_exhaustive()
    }
}

/// TLS client settings for upstreams: the webpki roots, plus the certificates of
/// `extra_ca_file` (PEM) when given.
pub fn upstream_tls(extra_ca_file: Option<&std::path::Path>) -> Result<UpstreamTls, TlsError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca_file {
        let certificates = CertificateDer::pem_file_iter(path)
            .map_err(|error| TlsError(format!("cannot read {}: {error}", path.display())))?;
        let mut added = 0;
        for certificate in certificates {
            let certificate =
                certificate.map_err(|error| TlsError(format!("{}: {error}", path.display())))?;
            roots
                .add(certificate)
                .map_err(|error| TlsError(format!("{}: {error}", path.display())))?;
            added += 1;
        }
        if added == 0 {
            return Err(TlsError(format!("{} holds no certificate", path.display())));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http1 = config.clone();
    http1.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(UpstreamTls {
        any: TlsConnector::from(Arc::new(config)),
        http1: TlsConnector::from(Arc::new(http1)),
    })
}

/// Idle connections by upstream authority.
type Pool = HashMap<Box<str>, Vec<IdleConnection>, foldhash::fast::RandomState>;

/// Places for requests on fresh connections just after a wake, by upstream authority.
type Ramps = HashMap<Box<str>, Arc<tokio::sync::Semaphore>, foldhash::fast::RandomState>;

/// HTTP/2 connections by upstream authority.
type Multiplexed = HashMap<Box<str>, SharedConnection, foldhash::fast::RandomState>;

/// An HTTP/2 connection: any number of requests at once.
#[derive(Debug)]
struct SharedConnection {
    /// Sends requests on it (cloned for each request).
    sender: http2::SendRequest<Outgoing>,
    /// When a request last went on it.
    used: Instant,
}

/// A fresh upstream connection, in the protocol the upstream chose.
enum Connection {
    /// HTTP/1.1: one request at a time.
    Http1(http1::SendRequest<Outgoing>),
    /// HTTP/2 (negotiated by ALPN): shared.
    Http2(http2::SendRequest<Outgoing>),
}

/// A connection ready for its next request.
#[derive(Debug)]
struct IdleConnection {
    /// Sends requests on the connection.
    sender: http1::SendRequest<Outgoing>,
    /// When it was put back.
    since: Instant,
}

/// An HTTP/1.1 connection in use, returned to the pool when its response body ends
/// (HTTP/2 connections are shared and never leased).
#[derive(Debug)]
pub struct Lease {
    /// The pool it goes back to.
    pool: Arc<Mutex<Pool>>,
    /// Which upstream.
    authority: Authority,
    /// The connection.
    sender: http1::SendRequest<Outgoing>,
}

impl Lease {
    fn release(self) {
        if self.sender.is_closed() {
            return;
        }
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let idle = match pool.get_mut(self.authority.as_str()) {
            Some(idle) => idle,
            None => pool.entry(self.authority.as_str().into()).or_default(),
        };
        if idle.len() < POOL_MAX_IDLE {
            idle.push(IdleConnection {
                sender: self.sender,
                since: Instant::now(),
            });
        }
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

    /// A place among the requests on fresh connections to `authority` just after a wake.
    async fn ramp(&self, authority: &Authority) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let ramp = {
            let mut ramps = self.ramps.lock().unwrap_or_else(|p| p.into_inner());
            let ramp = ramps
                .entry(authority.as_str().into())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(RAMP_CONNECTIONS)));
            Arc::clone(ramp)
        };
        ramp.acquire_owned().await.ok()
    }

    /// An idle connection to `authority`, if one is still usable.
    async fn checkout(&self, authority: &Authority) -> Option<http1::SendRequest<Outgoing>> {
        loop {
            let idle = {
                let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
                pool.get_mut(authority.as_str())?.pop()?
            };
            if idle.since.elapsed() >= POOL_IDLE_TIMEOUT || idle.sender.is_closed() {
                continue;
            }
            let mut sender = idle.sender;
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    /// The open HTTP/2 connection to `authority`, if there is a usable one.
    fn shared(&self, authority: &Authority) -> Option<http2::SendRequest<Outgoing>> {
        let mut multiplexed = self.multiplexed.lock().unwrap_or_else(|p| p.into_inner());
        let shared = multiplexed.get_mut(authority.as_str())?;
        if shared.sender.is_closed() || shared.used.elapsed() >= H2_IDLE_TIMEOUT {
            multiplexed.remove(authority.as_str());
            return None;
        }
        shared.used = Instant::now();
        Some(shared.sender.clone())
    }

    /// Forgets `authority`'s HTTP/2 connection if it is still `sender`'s (it failed).
    fn forget_shared(&self, authority: &Authority, sender: &http2::SendRequest<Outgoing>) {
        let mut multiplexed = self.multiplexed.lock().unwrap_or_else(|p| p.into_inner());
        if multiplexed
            .get(authority.as_str())
            .is_some_and(|shared| shared.sender.is_closed() || sender.is_closed())
        {
            multiplexed.remove(authority.as_str());
        }
    }

    /// A new connection for ordinary requests; an HTTP/2 one is shared from now on.
    /// `replayable`: the request has no body, so its first exchange is guarded by
    /// [`FIRST_EXCHANGE_ACK_TIMEOUT`].
    async fn connect(
        &self,
        upstream: &Upstream,
        replayable: bool,
        scope: UpstreamScope,
    ) -> Result<Connection, ForwardError> {
        let connection = self
            .connect_with(upstream, false, replayable, scope)
            .await?;
        if let Connection::Http2(sender) = &connection {
            let mut multiplexed = self.multiplexed.lock().unwrap_or_else(|p| p.into_inner());
            multiplexed.insert(
                upstream.authority.as_str().into(),
                SharedConnection {
                    sender: sender.clone(),
                    used: Instant::now(),
                },
            );
        }
        Ok(connection)
    }

    /// A new connection; `upgrades`: HTTP/1.1 only, and its task hands the socket over
    /// after a 101; `guarded`: given up when its first request stays unacknowledged
    /// ([`FIRST_EXCHANGE_ACK_TIMEOUT`]).
    async fn connect_with(
        &self,
        upstream: &Upstream,
        upgrades: bool,
        guarded: bool,
        scope: UpstreamScope,
    ) -> Result<Connection, ForwardError> {
        let address = upstream.authority.as_str();
        let (host, port) = upstream.address();
        let stream = match tokio::time::timeout(self.timeouts.connect, open(host, port, scope))
            .await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(Opened::Internal)) => {
                return Err(ForwardError::Internal(address.to_owned()));
            }
            Ok(Err(Opened::Failed(error))) => {
                let message = format!("{address}: {error}");
                return Err(match error.kind() {
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset => {
                        ForwardError::NotListening(message)
                    }
                    _ => ForwardError::Connect(message),
                });
            }
            Err(_) => {
                return Err(ForwardError::Connect(format!(
                    "{address}: no connection after {}s",
                    self.timeouts.connect.as_secs()
                )));
            }
        };
        let _ = stream.set_nodelay(true);
        let stream = super::io::FreshStream::new(stream, guarded, FIRST_EXCHANGE_ACK_TIMEOUT);
        if upstream.scheme != http::uri::Scheme::HTTPS {
            return handshake(stream, address, upgrades)
                .await
                .map(Connection::Http1);
        }
        let server_name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|error| ForwardError::Connect(format!("{address}: {error}")))?;
        let connector = if upgrades {
            &self.tls.http1
        } else {
            &self.tls.any
        };
        let tls = tokio::time::timeout(
            self.timeouts.connect,
            connector.connect(server_name, stream),
        )
        .await
        .map_err(|_| ForwardError::Connect(format!("{address}: TLS handshake timed out")))?
        .map_err(|error| ForwardError::Tls(format!("{address}: {error}")))?;
        if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
            return handshake_h2(tls, address).await.map(Connection::Http2);
        }
        handshake(tls, address, upgrades)
            .await
            .map(Connection::Http1)
    }

    /// The request as it goes upstream: origin-form target, HTTP/1.1, hop-by-hop headers
    /// removed, `X-Forwarded-*`, `Via` and the upstream's `Host` set.
    fn prepare(
        &self,
        request: Request<Incoming>,
        upstream: &Upstream,
        client: &ClientSide,
    ) -> (
        Request<Outgoing>,
        Option<(&'static str, HeaderValue)>,
        BodyOutcome,
    ) {
        let (mut parts, body) = request.into_parts();
        let outcome = BodyOutcome::default();
        let body = if body.is_end_stream() {
            Outgoing::Empty
        } else {
            Outgoing::Client(ClientBody::new(body, self.body_progress, outcome.clone()))
        };
        // The host the client asked for, as it wrote it (HTTP/2 and absolute-form requests
        // carry it in the target).
        let forwarded_host = match parts.uri.authority() {
            Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
            None => parts.headers.get(header::HOST).cloned(),
        };
        // HTTP/1.1 requests to an origin server carry the origin form: path and query only.
        parts.uri = Uri::from(
            parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
        let via = via_value(parts.version);
        parts.version = Version::HTTP_11;

        let headers = &mut parts.headers;
        remove_hop_by_hop(headers);
        append_forwarded_for(headers, &client.ip);
        // A trusted proxy says how the client reached it; anyone else is told by the
        // listener it came to.
        let proto = match headers.get(&X_FORWARDED_PROTO).map(HeaderValue::as_bytes) {
            Some(b"https") if client.trusted => "https",
            Some(b"http") if client.trusted => "http",
            _ => {
                headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(client.proto));
                client.proto
            }
        };
        let forwarded_host = match headers.get(&X_FORWARDED_HOST) {
            Some(host) if client.trusted => Some(host.clone()),
            _ => forwarded_host,
        };
        if let Some(host) = &forwarded_host {
            headers.insert(X_FORWARDED_HOST, host.clone());
            // `Origin` is rewritten only when it is the request's own origin (a browser
            // talking to this host): any other origin passes as it is, so no CORS hole opens.
            let own = headers
                .get(header::ORIGIN)
                .is_some_and(|origin| same_origin(origin, proto, host));
            if own
                && !self.preserve_host
                && let Ok(origin) = HeaderValue::from_str(&upstream.to_string())
            {
                headers.insert(header::ORIGIN, origin);
            }
        }
        headers.append(header::VIA, via);
        match (&forwarded_host, self.preserve_host) {
            (Some(host), true) => headers.insert(header::HOST, host.clone()),
            _ => headers.insert(header::HOST, upstream.host_header().clone()),
        };
        let client_origin = forwarded_host.map(|host| (proto, host));
        (Request::from_parts(parts, body), client_origin, outcome)
    }

    /// The response as the client gets it: hop-by-hop headers removed, `Via` added, and
    /// `Location` / `Content-Location` pointing at the upstream's own URL moved to the host
    /// the client used.
    fn clean_response(
        &self,
        response: &mut Response<Incoming>,
        upstream: &Upstream,
        client_origin: Option<&(&'static str, HeaderValue)>,
    ) {
        let via = via_value(response.version());
        let headers = response.headers_mut();
        remove_hop_by_hop(headers);
        headers.append(header::VIA, via);
        let Some((proto, client_host)) =
            client_origin.and_then(|(proto, h)| Some((*proto, h.to_str().ok()?)))
        else {
            return;
        };
        let upstream_origin = upstream.to_string();
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            let rewritten = headers
                .get(&name)
                .and_then(|value| value.to_str().ok())
                .and_then(|location| {
                    rewrite_location(location, &upstream_origin, proto, client_host)
                });
            if let Some(value) = rewritten.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(name, value);
            }
        }
    }

    /// Sends an upgrade request (WebSocket and the like) on a connection of its own. A 101
    /// answer comes with the [`Tunnel`] that joins both sides once the caller has answered
    /// the client; any other answer is a plain response.
    pub async fn forward_upgrade(
        &self,
        mut request: Request<Incoming>,
        upstream: &Upstream,
        client: &ClientSide,
        scope: UpstreamScope,
    ) -> Result<(Response<Incoming>, Option<Tunnel>), ForwardError> {
        let client_side = hyper::upgrade::on(&mut request);
        let protocol = request.headers().get(header::UPGRADE).cloned();
        let (mut request, client_host, outcome) = self.prepare(request, upstream, client);
        if let Some(protocol) = protocol {
            let headers = request.headers_mut();
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, protocol);
        }
        let Connection::Http1(mut sender) =
            Box::pin(self.connect_with(upstream, true, false, scope)).await?
        else {
            return Err(ForwardError::Connect(format!(
                "{}: HTTP/2 chosen for an upgrade",
                upstream.authority
            )));
        };
        let mut response =
            tokio::time::timeout(self.timeouts.response_header, sender.send_request(request))
                .await
                .map_err(|_| ForwardError::Timeout(self.timeouts.response_header))?
                .map_err(|error| exchange_failed(&error, &outcome))?;
        let switching = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
        let protocol = response.headers().get(header::UPGRADE).cloned();
        self.clean_response(&mut response, upstream, client_host.as_ref());
        let headers = response.headers_mut();
        if !switching {
            return Ok((response, None));
        }
        if let Some(protocol) = protocol {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, protocol);
        }
        let upstream_side = hyper::upgrade::on(&mut response);
        Ok((
            response,
            Some(Tunnel {
                client: client_side,
                upstream: upstream_side,
            }),
        ))
    }

    /// Sends the request to `upstream` and returns its response, headers cleaned, with the
    /// connection lease to hand to the response body (none for HTTP/2).
    ///
    /// Until `retry_until()` (some time just after a wake), a new connection that is refused,
    /// or closed before it takes the request, is tried again after a growing pause: a
    /// platform may say "running" a moment before the app listens. Nothing of the request
    /// has been sent when that happens, so any request can be retried.
    pub async fn forward(
        &self,
        request: Request<Incoming>,
        upstream: &Upstream,
        client: &ClientSide,
        retry_until: impl Fn() -> Option<Instant>,
        scope: UpstreamScope,
    ) -> Result<(Response<Incoming>, Option<Lease>), ForwardError> {
        let (mut request, client_host, outcome) = self.prepare(request, upstream, client);
        // Fresh connections made for this request: an upstream that keeps closing them
        // before taking the request is given up on (outside the time just after a wake).
        let mut fresh = 0;
        let mut pause = RetryPause::new(retry_until);
        let (mut response, sender) = loop {
            if fresh >= MAX_FRESH_CONNECTIONS && !pause.wait().await {
                return Err(ForwardError::Exchange(format!(
                    "{}: every new connection closed before taking the request",
                    upstream.authority
                )));
            }
            // An upstream that chose HTTP/2 has one connection for everything.
            if let Some(mut shared) = self.shared(&upstream.authority) {
                let sent = self
                    .send_h2(&mut shared, request, upstream, &outcome)
                    .await?;
                match sent {
                    Ok(response) => break (response, None),
                    // Closed (GOAWAY) before taking the request: nothing was sent.
                    Err(unsent) => {
                        self.forget_shared(&upstream.authority, &shared);
                        request = unsent;
                        continue;
                    }
                }
            }
            let replayable = matches!(request.body(), Outgoing::Empty);
            let (mut sender, reused) = match self.checkout(&upstream.authority).await {
                Some(sender) => (sender, true),
                // New connections are rare: boxed, so the common path's future stays small.
                None => {
                    match Box::pin(self.connect(upstream, replayable, scope)).await {
                        Ok(Connection::Http1(sender)) => {
                            fresh += 1;
                            (sender, false)
                        }
                        // Shared from now on: the next turn sends on it.
                        Ok(Connection::Http2(_)) => {
                            fresh += 1;
                            continue;
                        }
                        Err(error @ ForwardError::NotListening(_)) => {
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
            // A fresh connection's request without a body is kept, to be sent again
            // should the upstream never acknowledge it.
            let copy = if reused {
                None
            } else {
                super::body::copy_bodiless(&request)
            };
            // Just after a wake, new connections go a few at a time.
            let place = match (reused, pause.active()) {
                (false, true) => self.ramp(&upstream.authority).await,
                _ => None,
            };
            let exchange = async {
                let send = sender.try_send_request(request);
                let Some(place) = place else {
                    return send.await;
                };
                tokio::pin!(send);
                tokio::select! {
                    sent = &mut send => sent,
                    () = tokio::time::sleep(RAMP_HOLD) => {
                        drop(place);
                        send.await
                    }
                }
            };
            let sent = tokio::time::timeout(self.timeouts.response_header, exchange)
                .await
                .map_err(|_| ForwardError::Timeout(self.timeouts.response_header))?;
            match sent {
                Ok(response) => break (response, Some(sender)),
                Err(mut error) => match (error.take_message(), copy) {
                    // A reused connection the upstream closed before taking the request:
                    // nothing was sent, so any request can go on a fresh connection.
                    (Some(unsent), _) if reused => request = unsent,
                    // A fresh one closed before taking it, just after a wake.
                    (Some(unsent), _) if pause.wait().await => request = unsent,
                    // Sent, but never acknowledged by the upstream's TCP stack: the app
                    // never read it.
                    (None, Some(copy)) if never_acknowledged(error.error()) => {
                        tracing::debug!(
                            upstream = %upstream.authority,
                            "upstream never took the connection; sending the request again"
                        );
                        // Requests lost together come back spread out, or they would fill
                        // the same backlog again.
                        let spread = 50 << fresh.min(4);
                        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..spread))).await;
                        request = copy;
                    }
                    _ => return Err(exchange_failed(error.error(), &outcome)),
                },
            }
        };
        self.clean_response(&mut response, upstream, client_host.as_ref());
        let lease = sender.map(|sender| Lease {
            pool: Arc::clone(&self.pool),
            authority: upstream.authority.clone(),
            sender,
        });
        Ok((response, lease))
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
        let sent = tokio::time::timeout(
            self.timeouts.response_header,
            sender.try_send_request(request),
        )
        .await
        .map_err(|_| ForwardError::Timeout(self.timeouts.response_header))?;
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

/// The growing pauses between attempts to reach an upstream that is not listening yet.
struct RetryPause<F> {
    /// Until when retrying may help; asked only on failure, so the common path reads
    /// nothing more.
    until: F,
    /// The next pause: 50 ms, doubling up to 1 s.
    next: Duration,
}

impl<F: Fn() -> Option<Instant>> RetryPause<F> {
    fn new(until: F) -> Self {
        RetryPause {
            until,
            next: Duration::from_millis(50),
        }
    }

    /// Whether this is the time just after a wake.
    fn active(&self) -> bool {
        (self.until)().is_some_and(|until| Instant::now() < until)
    }

    /// Waits before the next attempt, if it would still start within the deadline.
    async fn wait(&mut self) -> bool {
        match (self.until)() {
            Some(until) if Instant::now() + self.next < until => {
                tokio::time::sleep(self.next).await;
                self.next = (self.next * 2).min(Duration::from_secs(1));
                true
            }
            _ => false,
        }
    }
}

/// Why no connection was opened.
enum Opened {
    /// Every address of the host is internal, and the scope is public.
    Internal,
    /// Resolution or connection failed.
    Failed(std::io::Error),
}

/// A TCP connection to `host:port`, to one of its addresses that `scope` allows (resolved
/// once, here: the check and the connection use the same addresses).
async fn open(host: &str, port: u16, scope: UpstreamScope) -> Result<TcpStream, Opened> {
    if scope == UpstreamScope::Any {
        return TcpStream::connect((host, port))
            .await
            .map_err(Opened::Failed);
    }
    let resolved = tokio::net::lookup_host((host, port))
        .await
        .map_err(Opened::Failed)?;
    let allowed = scope.allowed(resolved);
    if allowed.is_empty() {
        return Err(Opened::Internal);
    }
    TcpStream::connect(&allowed[..])
        .await
        .map_err(Opened::Failed)
}

/// HTTP/2 over `io` (negotiated by ALPN), its connection driven by a task of its own.
async fn handshake_h2<T>(io: T, address: &str) -> Result<http2::SendRequest<Outgoing>, ForwardError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(TokioIo::new(io))
        .await
        .map_err(|error| ForwardError::Connect(format!("{address}: HTTP/2: {error}")))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(error = %error, "upstream HTTP/2 connection ended with an error");
        }
    });
    Ok(sender)
}

/// HTTP/1.1 over `io`, its connection driven by a task of its own.
async fn handshake<T>(
    io: T,
    address: &str,
    upgrades: bool,
) -> Result<http1::SendRequest<Outgoing>, ForwardError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(|error| ForwardError::Connect(format!("{address}: {error}")))?;
    tokio::spawn(async move {
        let ended = if upgrades {
            connection.with_upgrades().await
        } else {
            connection.await
        };
        if let Err(error) = ended {
            tracing::debug!(error = %error, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// Whether `origin` is `<proto>://<host>`: the origin of the request itself.
fn same_origin(origin: &HeaderValue, proto: &str, host: &HeaderValue) -> bool {
    let (Ok(origin), Ok(host)) = (origin.to_str(), host.to_str()) else {
        return false;
    };
    origin
        .strip_prefix(proto)
        .and_then(|rest| rest.strip_prefix("://"))
        .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
}

/// `location` with the upstream's origin replaced by the client's, when it starts with it.
fn rewrite_location(
    location: &str,
    upstream_origin: &str,
    proto: &str,
    host: &str,
) -> Option<String> {
    let head = location.get(..upstream_origin.len())?;
    if !head.eq_ignore_ascii_case(upstream_origin) {
        return None;
    }
    let rest = &location[upstream_origin.len()..];
    if !(rest.is_empty() || rest.starts_with(['/', '?', '#'])) {
        return None;
    }
    Some(format!("{proto}://{host}{rest}"))
}

/// Whether a request asks to switch protocols: an `Upgrade` header named by `Connection`.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// Both halves of an upgraded exchange, joined once the client has its 101.
#[derive(Debug)]
pub struct Tunnel {
    /// The client's connection, once hyper hands it over.
    client: hyper::upgrade::OnUpgrade,
    /// The upstream's connection, likewise.
    upstream: hyper::upgrade::OnUpgrade,
}

impl Tunnel {
    /// Copies bytes both ways until either side closes. `in_flight` keeps the app from being
    /// stopped under the open connection; dropped at the end, it counts as activity.
    pub async fn run(self, in_flight: InFlight) {
        let (client, upstream) = tokio::join!(self.client, self.upstream);
        match (client, upstream) {
            (Ok(client), Ok(upstream)) => {
                let mut client = TokioIo::new(client);
                let mut upstream = TokioIo::new(upstream);
                if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await
                {
                    tracing::debug!(%error, "upgraded connection ended with an error");
                }
            }
            (client, upstream) => {
                tracing::debug!(
                    client_ok = client.is_ok(),
                    upstream_ok = upstream.is_ok(),
                    "upgrade did not complete"
                );
            }
        }
        drop(in_flight);
    }
}

fn via_value(version: Version) -> HeaderValue {
    const VIA_2: HeaderValue = HeaderValue::from_static("2 paastis");
    const VIA_10: HeaderValue = HeaderValue::from_static("1.0 paastis");
    const VIA_11: HeaderValue = HeaderValue::from_static("1.1 paastis");
    match version {
        Version::HTTP_2 => VIA_2,
        Version::HTTP_10 => VIA_10,
        _ => VIA_11,
    }
}

/// Removes hop-by-hop headers, including those named in `Connection`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the (few) header names is cheaper than a lookup per hop-by-hop name,
    // and most messages carry none of them.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

fn append_forwarded_for(headers: &mut HeaderMap, ip: &HeaderValue) {
    let existing = headers
        .get(&X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty());
    let value = match existing {
        Some(existing) => {
            let joined = format!("{existing}, {}", ip.to_str().unwrap_or("unknown"));
            HeaderValue::from_str(&joined).unwrap_or_else(|_| ip.clone())
        }
        None => ip.clone(),
    };
    headers.insert(X_FORWARDED_FOR, value);
}

/// A failed exchange: the client's fault when its body failed, else the upstream's.
fn exchange_failed(error: &hyper::Error, outcome: &BodyOutcome) -> ForwardError {
    match outcome.failure() {
        Some(failure) => ForwardError::ClientBody(failure),
        None => ForwardError::Exchange(error_chain(error)),
    }
}

/// Whether the exchange failed because the upstream's TCP stack never acknowledged what was
/// sent ([`FIRST_EXCHANGE_ACK_TIMEOUT`] ran out): then the app never read the request.
fn never_acknowledged(error: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::TimedOut;
        }
        source = cause.source();
    }
    false
}

/// The error and its causes, in one line (hyper's top-level message alone says little).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Why a response body stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The upstream connection failed mid-body.
    #[error("the upstream failed mid-response: {0}")]
    Upstream(#[from] hyper::Error),
    /// The upstream sent nothing for `proxy.idle_timeout`.
    #[error("the upstream sent nothing for {}s", .0.as_secs())]
    Idle(Duration),
}

/// An upstream response body that keeps its request counted as in progress until the body
/// is done or dropped (so an app is never stopped under a response being streamed), gives
/// its upstream connection back to the pool once fully read, and cuts off an upstream that
/// stays silent for longer than `proxy.idle_timeout`.
#[derive(Debug)]
pub struct TrackedBody {
    /// The upstream's body, streamed as it comes.
    inner: Incoming,
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
        inner: Incoming,
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
                Poll::Ready(Some(Err(BodyError::Upstream(error))))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_with_those_named_in_connection() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret-hop"),
        );
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert("x-kept", HeaderValue::from_static("yes"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert_eq!(headers["x-kept"], "yes");

        // Nothing to remove: nothing changes.
        let mut plain = HeaderMap::new();
        plain.insert("x-kept", HeaderValue::from_static("yes"));
        remove_hop_by_hop(&mut plain);
        assert_eq!(plain.len(), 1);
    }

    #[test]
    fn locations_and_origins() {
        let up = "https://app-1.cleverapps.io";
        assert_eq!(
            rewrite_location(
                "https://app-1.cleverapps.io/login?x=1",
                up,
                "http",
                "api.localhost:3000"
            ),
            Some("http://api.localhost:3000/login?x=1".to_owned())
        );
        assert_eq!(
            rewrite_location("HTTPS://APP-1.cleverapps.io", up, "http", "a.localhost"),
            Some("http://a.localhost".to_owned())
        );
        assert_eq!(
            rewrite_location("https://app-1.cleverapps.io.evil.com/", up, "http", "a"),
            None
        );
        assert_eq!(
            rewrite_location("https://elsewhere.com/", up, "http", "a"),
            None
        );
        assert_eq!(rewrite_location("/relative", up, "http", "a"), None);
        let host = HeaderValue::from_static("api.localhost:3000");
        assert!(same_origin(
            &HeaderValue::from_static("http://api.localhost:3000"),
            "http",
            &host
        ));
        assert!(!same_origin(
            &HeaderValue::from_static("https://api.localhost:3000"),
            "http",
            &host
        ));
        assert!(!same_origin(
            &HeaderValue::from_static("http://evil.com"),
            "http",
            &host
        ));
    }

    #[test]
    fn upstream_ca_files_are_checked() {
        assert!(upstream_tls(None).is_ok());
        let missing = upstream_tls(Some(std::path::Path::new("/nonexistent/ca.pem")));
        assert!(missing.is_err_and(|e| e.to_string().contains("/nonexistent/ca.pem")));
        let empty = std::env::temp_dir().join(format!("paastis-empty-ca-{}", std::process::id()));
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let result = upstream_tls(Some(&empty));
        let _ = std::fs::remove_file(&empty);
        assert!(result.is_err_and(|e| e.to_string().contains("holds no certificate")));
    }

    fn client(peer: &str) -> ClientSide {
        ClientSide::new(peer.parse().expect("address"), "http", false)
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut headers = HeaderMap::new();
        append_forwarded_for(&mut headers, &client("10.0.0.1:5000").ip);
        assert_eq!(headers[X_FORWARDED_FOR], "10.0.0.1");
        append_forwarded_for(&mut headers, &client("127.0.0.1:5000").ip);
        assert_eq!(headers[X_FORWARDED_FOR], "10.0.0.1, 127.0.0.1");
    }
}
