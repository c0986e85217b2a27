//! Upstream connections: the pool of idle HTTP/1.1 connections and the shared HTTP/2 ones,
//! by upstream authority, and the opening of new ones (TCP to an address the space may
//! reach, TLS and ALPN for `https`, the HTTP handshake, each driven by a task of its own).
//! It does not send requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::Authority;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::Instant;

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

/// Idle connections by upstream authority.
pub(super) type Pool = HashMap<Box<str>, Vec<IdleConnection>, foldhash::fast::RandomState>;

/// HTTP/2 connections by upstream authority.
pub(super) type Multiplexed = HashMap<Box<str>, SharedConnection, foldhash::fast::RandomState>;

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
    /// HTTP/1.1: one request at a time.
    Http1(http1::SendRequest<Outgoing>),
    /// HTTP/2 (negotiated by ALPN): shared.
    Http2(http2::SendRequest<Outgoing>),
}

/// A connection ready for its next request.
#[derive(Debug)]
pub(super) struct IdleConnection {
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
    pub(super) pool: Arc<Mutex<Pool>>,
    /// Which upstream.
    pub(super) authority: Authority,
    /// The connection.
    pub(super) sender: http1::SendRequest<Outgoing>,
}

impl Lease {
    pub(super) fn release(self) {
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
    /// An idle connection to `authority`, if one is still usable.
    pub(super) async fn checkout(
        &self,
        authority: &Authority,
    ) -> Option<http1::SendRequest<Outgoing>> {
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
    pub(super) fn shared(&self, authority: &Authority) -> Option<http2::SendRequest<Outgoing>> {
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
    pub(super) fn forget_shared(
        &self,
        authority: &Authority,
        sender: &http2::SendRequest<Outgoing>,
    ) {
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
    pub(super) async fn connect(
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
    pub(super) async fn connect_with(
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
        let stream =
            crate::proxy::io::FreshStream::new(stream, guarded, FIRST_EXCHANGE_ACK_TIMEOUT);
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
