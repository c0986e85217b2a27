//! Upstream connections: the pool of idle HTTP/1.1 connections and the shared HTTP/2 ones,
//! by [`Lane`] and upstream authority, and the opening of new ones (TCP to an address the
//! space may reach, TLS and ALPN for `https`; for requests with a body and upgrades,
//! hyper's HTTP handshake, each connection then driven by a task of its own; for bodiless
//! requests, a [`Direct`] connection driven by its request). It does not send requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::Authority;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::direct::{Direct, UpstreamIo};
use super::{ForwardError, Forwarder, UpstreamScope};
use crate::model::Upstream;
use crate::proxy::body::Outgoing;

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
pub(super) const FIRST_EXCHANGE_ACK_TIMEOUT: Duration = Duration::from_secs(1);

/// Just after a wake, the first attempt to open a connection waits this long for the
/// upstream's answer before a new attempt replaces it (each next one twice as long, up to
/// `proxy.connect_timeout`). An app server whose listen backlog is full drops the
/// connection's first packet without a word, and the system sends it again only after a
/// second: a burst of requests released by a wake would wait that second for nothing.
pub(super) const FIRST_CONNECT_PATIENCE: Duration = Duration::from_millis(50);

/// Which connections may carry a request, besides going to its upstream's authority. The
/// same authority over `http` and over `https` is two servers (ports 80 and 443, and one
/// speaks TLS); and a connection opened for a space that may reach internal addresses was
/// never checked against a tenant's narrower scope, so it must not carry a tenant's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Lane {
    /// The upstream's scheme is `https`.
    tls: bool,
    /// The addresses the connection's space may reach.
    scope: UpstreamScope,
}

impl Lane {
    /// How many lanes there are (each pool has a map per lane).
    const COUNT: usize = 4;

    /// Plain HTTP from an operator's space (tests and fuzzing of a connection alone).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(super) const PLAIN: Lane = Lane {
        tls: false,
        scope: UpstreamScope::Any,
    };

    /// The lane of requests to `upstream` from a space with `scope`.
    pub(super) fn of(upstream: &Upstream, scope: UpstreamScope) -> Lane {
        Lane {
            tls: upstream.scheme == http::uri::Scheme::HTTPS,
            scope,
        }
    }

    /// Its map's place in a pool.
    fn index(self) -> usize {
        usize::from(self.tls) * 2 + usize::from(self.scope == UpstreamScope::Public)
    }
}

/// Connections of one lane by upstream authority.
type ByAuthority<C> = HashMap<Box<str>, C, foldhash::fast::RandomState>;

/// Connections by [`Lane`], then by upstream authority (looked up with the authority as it
/// is: no key is built per request).
#[derive(Debug)]
pub(super) struct Lanes<C> {
    /// One map per lane, at [`Lane::index`].
    maps: [ByAuthority<C>; Lane::COUNT],
}

impl<C> Default for Lanes<C> {
    fn default() -> Self {
        Lanes {
            maps: std::array::from_fn(|_| ByAuthority::default()),
        }
    }
}

impl<C> Lanes<C> {
    /// The connections of `lane`.
    pub(super) fn lane(&mut self, lane: Lane) -> &mut ByAuthority<C> {
        &mut self.maps[lane.index()]
    }
}

/// Idle HTTP/1.1 connections, newest last.
pub(super) type Pool = Lanes<Vec<IdleConnection>>;

/// HTTP/2 connections.
pub(super) type Multiplexed = Lanes<SharedConnection>;

/// An HTTP/2 connection: any number of requests at once.
#[derive(Debug)]
pub(super) struct SharedConnection {
    /// Sends requests on it (cloned for each request).
    sender: http2::SendRequest<Outgoing>,
    /// When a request last went on it.
    used: Instant,
}

/// A fresh upstream connection, in the protocol the upstream chose.
pub(super) enum Connection {
    /// HTTP/1.1 through hyper's client: one request at a time.
    Http1(http1::SendRequest<Outgoing>),
    /// HTTP/1.1 driven by its request (bodiless requests).
    Direct(Box<Direct>),
    /// HTTP/2 (negotiated by ALPN): shared.
    Http2(http2::SendRequest<Outgoing>),
}

/// An HTTP/1.1 connection between two requests.
#[derive(Debug)]
pub(super) enum Idle {
    /// Driven by hyper's client (its task reads the connection meanwhile).
    Hyper(http1::SendRequest<Outgoing>),
    /// Driven by the request using it.
    Direct(Box<Direct>),
}

/// A connection ready for its next request.
#[derive(Debug)]
pub(super) struct IdleConnection {
    /// The connection.
    connection: Idle,
    /// When it was put back.
    since: Instant,
}

/// Puts a connection back in `pool`, under `lane` and `authority` (unless the pool has
/// enough).
pub(super) fn put_back(pool: &Mutex<Pool>, lane: Lane, authority: &Authority, connection: Idle) {
    put_back_keyed(
        pool,
        lane,
        (authority, connection),
        |(authority, _)| authority.as_str(),
        |(_, connection)| connection,
    );
}

/// As [`put_back`] for a direct connection, under its own lane and upstream's authority
/// (read where they are: no copy of them is made per request).
pub(super) fn put_back_direct(pool: &Mutex<Pool>, connection: Box<Direct>) {
    let lane = connection.lane();
    put_back_keyed(
        pool,
        lane,
        connection,
        |direct| direct.authority(),
        Idle::Direct,
    );
}

/// Puts `connection` back in `pool` under `lane` and the authority `key` reads of it, as
/// `idle` makes it (unless the pool has enough).
fn put_back_keyed<C>(
    pool: &Mutex<Pool>,
    lane: Lane,
    connection: C,
    key: impl Fn(&C) -> &str,
    idle: impl FnOnce(C) -> Idle,
) {
    let mut pool = pool.lock().unwrap_or_else(|p| p.into_inner());
    let pool = pool.lane(lane);
    let waiting = match pool.get_mut(key(&connection)) {
        Some(waiting) => waiting,
        None => pool.entry(key(&connection).into()).or_default(),
    };
    if waiting.len() < POOL_MAX_IDLE {
        waiting.push(IdleConnection {
            connection: idle(connection),
            since: Instant::now(),
        });
    }
}

/// An HTTP/1.1 connection in use, returned to the pool when its response body ends
/// (HTTP/2 connections are shared and never leased).
#[derive(Debug)]
pub struct Lease {
    /// The pool it goes back to.
    pub(super) pool: Arc<Mutex<Pool>>,
    /// Which kind of connection (see [`Lane`]).
    pub(super) lane: Lane,
    /// Which upstream.
    pub(super) authority: Authority,
    /// The connection.
    pub(super) sender: http1::SendRequest<Outgoing>,
}

impl Lease {
    pub(super) fn release(self) {
        if !self.sender.is_closed() {
            put_back(
                &self.pool,
                self.lane,
                &self.authority,
                Idle::Hyper(self.sender),
            );
        }
    }
}

impl Forwarder {
    /// An idle connection of `lane` to `authority`, if one is still usable. For a request
    /// with a body (not `bodiless`), always one driven by hyper's client: a direct one is
    /// handed over to it.
    pub(super) async fn checkout(
        &self,
        lane: Lane,
        authority: &Authority,
        bodiless: bool,
    ) -> Option<Idle> {
        loop {
            let idle = {
                let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
                pool.lane(lane).get_mut(authority.as_str())?.pop()?
            };
            if idle.since.elapsed() >= POOL_IDLE_TIMEOUT {
                continue;
            }
            match idle.connection {
                Idle::Hyper(mut sender) => {
                    if !sender.is_closed() && sender.ready().await.is_ok() {
                        return Some(Idle::Hyper(sender));
                    }
                }
                Idle::Direct(mut direct) => {
                    if !direct.is_usable() {
                        continue;
                    }
                    if bodiless {
                        return Some(Idle::Direct(direct));
                    }
                    if let Some(io) = (*direct).into_io()
                        && let Ok(sender) = handshake(io, authority.as_str(), false).await
                    {
                        return Some(Idle::Hyper(sender));
                    }
                }
            }
        }
    }

    /// The open HTTP/2 connection of `lane` to `authority`, if there is a usable one.
    pub(super) fn shared(
        &self,
        lane: Lane,
        authority: &Authority,
    ) -> Option<http2::SendRequest<Outgoing>> {
        let mut multiplexed = self.multiplexed.lock().unwrap_or_else(|p| p.into_inner());
        let multiplexed = multiplexed.lane(lane);
        let shared = multiplexed.get_mut(authority.as_str())?;
        if shared.sender.is_closed() || shared.used.elapsed() >= H2_IDLE_TIMEOUT {
            multiplexed.remove(authority.as_str());
            return None;
        }
        shared.used = Instant::now();
        Some(shared.sender.clone())
    }

    /// Forgets `lane`'s HTTP/2 connection to `authority` if it is still `sender`'s (it
    /// failed).
    pub(super) fn forget_shared(
        &self,
        lane: Lane,
        authority: &Authority,
        sender: &http2::SendRequest<Outgoing>,
    ) {
        let mut multiplexed = self.multiplexed.lock().unwrap_or_else(|p| p.into_inner());
        let multiplexed = multiplexed.lane(lane);
        if multiplexed
            .get(authority.as_str())
            .is_some_and(|shared| shared.sender.is_closed() || sender.is_closed())
        {
            multiplexed.remove(authority.as_str());
        }
    }

    /// A new connection for ordinary requests; an HTTP/2 one is shared from now on.
    /// `bodiless`: the request has no body, so its first exchange is guarded by
    /// [`FIRST_EXCHANGE_ACK_TIMEOUT`], and an HTTP/1.1 connection is a [`Direct`] one.
    /// `patience`: how long to wait for the upstream to answer the connection before giving
    /// up with [`ForwardError::Unanswered`] (at most `proxy.connect_timeout`; `None`: that
    /// timeout).
    pub(super) async fn connect(
        &self,
        upstream: &Upstream,
        bodiless: bool,
        scope: UpstreamScope,
        patience: Option<Duration>,
    ) -> Result<Connection, ForwardError> {
        let connection = self
            .connect_with(upstream, false, bodiless, scope, patience)
            .await?;
        if let Connection::Http2(sender) = &connection {
            let mut multiplexed = self.multiplexed.lock().unwrap_or_else(|p| p.into_inner());
            multiplexed.lane(Lane::of(upstream, scope)).insert(
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
    /// after a 101; `bodiless`: for a request without a body, given up when that request
    /// stays unacknowledged ([`FIRST_EXCHANGE_ACK_TIMEOUT`]), and over HTTP/1.1 a
    /// [`Direct`] connection; `patience`: as for [`Forwarder::connect`].
    pub(super) async fn connect_with(
        &self,
        upstream: &Upstream,
        upgrades: bool,
        bodiless: bool,
        scope: UpstreamScope,
        patience: Option<Duration>,
    ) -> Result<Connection, ForwardError> {
        let address = upstream.authority.as_str();
        let (host, port) = upstream.address();
        let wait = patience.map_or(self.timeouts.connect, |patience| {
            patience.min(self.timeouts.connect)
        });
        let stream = match tokio::time::timeout(wait, open(host, port, scope)).await {
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
            Err(_) if wait < self.timeouts.connect => {
                return Err(ForwardError::Unanswered(format!(
                    "{address}: no answer to the connection within {} ms",
                    wait.as_millis()
                )));
            }
            Err(_) => {
                return Err(ForwardError::Connect(format!(
                    "{address}: no connection after {}s",
                    self.timeouts.connect.as_secs()
                )));
            }
        };
        let _ = stream.set_nodelay(true);
        let stream =
            crate::proxy::io::FreshStream::new(stream, bodiless, FIRST_EXCHANGE_ACK_TIMEOUT);
        let direct = bodiless && !upgrades;
        if upstream.scheme != http::uri::Scheme::HTTPS {
            if direct {
                return Ok(Connection::Direct(Direct::new(
                    UpstreamIo::Plain(stream),
                    Lane::of(upstream, scope),
                    upstream.authority.clone(),
                )));
            }
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
        if direct {
            return Ok(Connection::Direct(Direct::new(
                UpstreamIo::Tls(Box::new(tls)),
                Lane::of(upstream, scope),
                upstream.authority.clone(),
            )));
        }
        handshake(tls, address, upgrades)
            .await
            .map(Connection::Http1)
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
