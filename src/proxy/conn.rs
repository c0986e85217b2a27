//! Phase **accept**: client connections, from the listener to the HTTP server (on a plain
//! listener, HTTP/1.1 starts on the engine's own server, [`super::http1`], and goes on
//! hyper's from the first request that one does not take; TLS and HTTP/2: hyper's), each
//! phase under a deadline so that no client can hold one for nothing:
//!
//! | phase | deadline |
//! |---|---|
//! | TLS handshake | `proxy.header_read_timeout` from accept |
//! | first bytes, protocol detection (HTTP/1 or the HTTP/2 preface) | `proxy.header_read_timeout` from accept (after TLS: from the handshake) |
//! | HTTP/1.1 request head, and the wait for the next one on a kept-alive connection | `proxy.header_read_timeout` (the engine's own server: up to half as long again) |
//! | request body | [`super::body`]: `proxy.request_body_timeout`, `proxy.min_request_body_rate` |
//! | HTTP/2 connection with no request in progress | `proxy.client_idle_timeout` |
//! | HTTP/2 peer that stops answering pings | [`H2_KEEP_ALIVE`] |
//!
//! One client IP (an IPv6 client: its /64) holds at most `proxy.max_connections_per_ip`
//! connections (`proxy.trusted_proxies` are not counted): beyond, new ones are closed at
//! once, so one client cannot take every place of `proxy.max_connections`. This module does
//! not look at requests.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use super::body::RequestBody;
use super::forward::ClientSide;
use super::io::{Protocol, Rewind, detect};
use super::{ProxyBody, Worker};

/// HTTP/2 keep-alive: a ping after this long without a frame from the client, and the
/// connection is closed when the ping is not answered within as long again.
pub const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// A connection accepted by the engine, on its way to a worker.
pub(super) struct Accepted {
    /// The socket (a std one: it changes runtime).
    pub stream: std::net::TcpStream,
    /// The client's address.
    pub peer: SocketAddr,
    /// Whether it came to the TLS listener (the worker does the handshake).
    pub secure: bool,
    /// Its place among `proxy.max_connections`, freed when it closes.
    pub slot: tokio::sync::OwnedSemaphorePermit,
    /// Its place among its IP's `proxy.max_connections_per_ip` (none for trusted proxies).
    pub ip_slot: Option<IpSlot>,
}

/// Open connections by client IP (an IPv6 address: its /64, which one host usually has).
#[derive(Debug, Clone)]
pub(super) struct PerIp {
    /// Counts; an IP with none has no entry.
    open: Arc<Mutex<HashMap<IpAddr, usize, foldhash::fast::RandomState>>>,
    /// At most this many per IP.
    cap: usize,
}

/// A connection's place among its IP's; given back when dropped.
#[derive(Debug)]
pub(super) struct IpSlot {
    /// The counts.
    open: Arc<Mutex<HashMap<IpAddr, usize, foldhash::fast::RandomState>>>,
    /// Whose.
    key: IpAddr,
}

impl PerIp {
    /// Counts with this cap.
    pub fn new(cap: usize) -> PerIp {
        PerIp {
            open: Arc::default(),
            cap,
        }
    }

    /// A place for one more connection from `ip`; `None`: it has its share.
    pub fn take(&self, ip: IpAddr) -> Option<IpSlot> {
        let key = ip_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key).or_default();
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            open: Arc::clone(&self.open),
            key,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// What the per-IP cap counts: an IPv4 address, or an IPv6 /64 (IPv4-mapped: the IPv4).
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let segments = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(
                    segments[0],
                    segments[1],
                    segments[2],
                    segments[3],
                    0,
                    0,
                    0,
                    0,
                ))
            }
        },
    }
}

/// Requests in progress on one HTTP/2 connection, for its idle deadline.
#[derive(Debug, Default)]
struct Streams {
    /// Requests whose response is not over.
    active: AtomicUsize,
    /// Told at every start and end.
    changed: Notify,
}

impl Streams {
    /// One more request, until the guard (held by its response body) is dropped.
    fn begin(self: &Arc<Self>) -> StreamGuard {
        self.active.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
        StreamGuard(Arc::clone(self))
    }

    /// Returns once no request has been in progress for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.active.load(Ordering::SeqCst) > 0 {
                changed.await;
                continue;
            }
            if tokio::time::timeout(idle, changed).await.is_err()
                && self.active.load(Ordering::SeqCst) == 0
            {
                return;
            }
        }
    }
}

/// A request in progress on an HTTP/2 connection.
#[derive(Debug)]
struct StreamGuard(Arc<Streams>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

/// A response body that keeps its request counted as in progress on its connection.
#[derive(Debug)]
pub struct CountedBody {
    /// The response body.
    body: ProxyBody,
    /// Dropped with the body (none on HTTP/1.1 connections, which need no count).
    _stream: Option<StreamGuard>,
}

impl Body for CountedBody {
    type Data = Bytes;
    type Error = <ProxyBody as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Worker {
    /// Serves the connections dealt to this worker until the queue closes, then asks every
    /// open connection to finish and waits for them for at most `drain`.
    pub(super) async fn serve(
        self: Arc<Self>,
        mut connections: mpsc::UnboundedReceiver<Accepted>,
        drain: Duration,
    ) {
        let limits = self.proxy.limits;
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .keep_alive_interval(Some(H2_KEEP_ALIVE))
            .keep_alive_timeout(H2_KEEP_ALIVE)
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
        let builder = Arc::new(Builders { h1, h2 });
        // Told once when the engine stops; every connection then finishes gracefully.
        let (stop, stopped) = watch::channel(false);
        // Each connection holds a sender: the receiver ends once all are closed.
        let (open, mut all_closed) = mpsc::channel::<()>(1);
        while let Some(accepted) = connections.recv().await {
            let worker = Arc::clone(&self);
            let builder = Arc::clone(&builder);
            let stopped = stopped.clone();
            let open = open.clone();
            tokio::spawn(async move {
                worker.connection(accepted, &builder, stopped).await;
                drop(open);
            });
        }
        let _ = stop.send(true);
        drop(open);
        if tokio::time::timeout(drain, all_closed.recv())
            .await
            .is_err()
        {
            tracing::warn!(
                ?drain,
                "drain timeout reached; closing remaining connections"
            );
        }
    }

    /// One client connection, from TLS and protocol detection to its last response.
    async fn connection(
        self: Arc<Self>,
        accepted: Accepted,
        builder: &Builders,
        stopped: watch::Receiver<bool>,
    ) {
        let Accepted {
            stream,
            peer,
            secure,
            slot,
            ip_slot,
        } = accepted;
        let stream = match TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%peer, %error, "worker cannot take a connection");
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let limits = self.proxy.limits;
        let server_tls = self.proxy.server_tls.as_ref().filter(|_| secure);
        match server_tls {
            None => {
                let deadline = Instant::now() + limits.header_read_timeout;
                self.serve_plain(stream, peer, deadline, builder, stopped)
                    .await
            }
            Some(server_tls) => {
                let acceptor = server_tls.acceptor();
                let handshake =
                    tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream));
                match handshake.await {
                    Ok(Ok(stream)) => {
                        let deadline = Instant::now() + limits.header_read_timeout;
                        // Boxed: plain connections do not carry room for TLS state.
                        Box::pin(self.serve_io(stream, peer, secure, deadline, builder, stopped))
                            .await
                    }
                    Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            }
        }
        drop(ip_slot);
        drop(slot);
    }

    /// HTTP on a plain connection once its first bytes arrived (by `deadline`): HTTP/1.1
    /// on the engine's own server ([`super::http1`]) as long as its requests are for it,
    /// then on hyper's; HTTP/2 on hyper's.
    async fn serve_plain(
        self: Arc<Self>,
        mut stream: TcpStream,
        peer: SocketAddr,
        deadline: Instant,
        builder: &Builders,
        mut stopped: watch::Receiver<bool>,
    ) {
        let Some((protocol, prefix)) = first_bytes(&mut stream, peer, deadline).await else {
            return;
        };
        let client = Arc::new(self.client_side(peer, false));
        let prefix = match protocol {
            Protocol::Http2 => prefix,
            Protocol::Http1 => {
                let served = super::http1::serve(&self, &mut stream, prefix, &client, &mut stopped);
                match Box::pin(served).await {
                    super::http1::Ended::Closed => return,
                    super::http1::Ended::HandOff(rest) => rest,
                }
            }
        };
        Box::pin(self.serve_hyper(stream, protocol, prefix, client, builder, stopped)).await;
    }

    /// HTTP on `io` once its first bytes arrived (by `deadline`), until it closes, the
    /// engine stops, or (HTTP/2) it stays without a request for `proxy.client_idle_timeout`.
    async fn serve_io<T>(
        self: Arc<Self>,
        mut io: T,
        peer: SocketAddr,
        secure: bool,
        deadline: Instant,
        builder: &Builders,
        stopped: watch::Receiver<bool>,
    ) where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Some((protocol, prefix)) = first_bytes(&mut io, peer, deadline).await else {
            return;
        };
        let client = Arc::new(self.client_side(peer, secure));
        self.serve_hyper(io, protocol, prefix, client, builder, stopped)
            .await;
    }

    /// The client side of a connection from `peer` (`secure`: on the TLS listener).
    fn client_side(&self, peer: SocketAddr, secure: bool) -> ClientSide {
        let trusted = self.proxy.trusted.contains(peer.ip());
        ClientSide::new(peer, if secure { "https" } else { "http" }, trusted)
    }

    /// hyper's server for `protocol` on `io`, from the bytes `prefix` already read, until
    /// the connection closes, the engine stops, or (HTTP/2) it stays without a request for
    /// `proxy.client_idle_timeout`.
    async fn serve_hyper<T>(
        self: Arc<Self>,
        io: T,
        protocol: Protocol,
        prefix: Bytes,
        client: Arc<ClientSide>,
        builder: &Builders,
        stopped: watch::Receiver<bool>,
    ) where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = client.peer;
        let streams = (protocol == Protocol::Http2).then(|| Arc::new(Streams::default()));
        let worker = Arc::clone(&self);
        let counted = streams.clone();
        let service = service_fn(move |request| {
            let worker = Arc::clone(&worker);
            let client = Arc::clone(&client);
            let stream = counted.as_ref().map(Streams::begin);
            async move {
                let mut response = worker
                    .handle(request.map(RequestBody::Hyper), &client, None)
                    .await;
                super::fields_in_map(&mut response);
                Ok::<_, Infallible>(response.map(|body| CountedBody {
                    body,
                    _stream: stream,
                }))
            }
        });
        let io = TokioIo::new(Rewind::new(prefix, io));
        // The protocol is known: its own server, without a second detection. Each boxed,
        // so a connection's task is only as large as the server it runs (an HTTP/1.1
        // connection does not carry room for an HTTP/2 one, nor one waiting for its first
        // bytes room for either).
        match streams {
            Some(streams) => {
                let idle = self.proxy.limits.client_idle_timeout;
                let connection = builder.h2.serve_connection(io, service);
                Box::pin(drive(connection, streams.idle_for(idle), peer, stopped)).await;
            }
            None => {
                let connection = builder.h1.serve_connection(io, service).with_upgrades();
                Box::pin(drive(connection, std::future::pending(), peer, stopped)).await;
            }
        }
    }
}

/// The protocol of a connection and its first bytes, read by `deadline`; `None`: it closed,
/// failed or stayed silent first.
async fn first_bytes<T: AsyncRead + Unpin>(
    io: &mut T,
    peer: SocketAddr,
    deadline: Instant,
) -> Option<(Protocol, Bytes)> {
    match tokio::time::timeout_at(deadline, detect(io)).await {
        Ok(Ok(detected)) => detected,
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "connection failed before its first request");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "no request within header_read_timeout; closed");
            None
        }
    }
}

/// The HTTP/1.1 and HTTP/2 servers' settings, shared by a worker's connections.
struct Builders {
    /// HTTP/1.1 (upgrades allowed).
    h1: http1::Builder,
    /// HTTP/2 with prior knowledge.
    h2: http2::Builder<TokioExecutor>,
}

/// A client connection being served, which can be asked to finish its requests and close.
trait Serving: Future<Output = Result<(), hyper::Error>> {
    /// Stops taking new requests; the future ends once those in progress are answered.
    fn shutdown(self: Pin<&mut Self>);
}

impl<I, S, B> Serving for http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn shutdown(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, B, E> Serving for http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn shutdown(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Serves `connection` until it ends; asks it to finish once the engine stops or `idle`
/// completes (HTTP/2: no request for `proxy.client_idle_timeout`).
async fn drive<C: Serving>(
    connection: C,
    idle: impl Future<Output = ()>,
    peer: SocketAddr,
    mut stopped: watch::Receiver<bool>,
) {
    tokio::pin!(connection);
    tokio::pin!(idle);
    let mut closing = false;
    loop {
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(error) = ended {
                    tracing::debug!(%peer, error = %error, "connection ended with an error");
                }
                return;
            }
            _ = stopped.changed(), if !closing => {
                connection.as_mut().shutdown();
                closing = true;
            }
            () = &mut idle, if !closing => {
                tracing::debug!(%peer, "HTTP/2 connection idle; closed");
                connection.as_mut().shutdown();
                closing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ip_gets_its_share_and_ipv6_counts_by_64() {
        let per_ip = PerIp::new(2);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let first = per_ip.take(a).expect("first");
        let second = per_ip.take(a).expect("second");
        assert!(per_ip.take(a).is_none());
        assert!(per_ip.take("192.0.2.2".parse().expect("ip")).is_some());
        drop(first);
        let third = per_ip.take(a).expect("a place came back");
        drop((second, third));
        assert!(per_ip.open.lock().expect("lock").get(&a).is_none());

        let host: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let neighbour: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let _one = per_ip.take(host).expect("one");
        let _two = per_ip.take(neighbour).expect("two");
        assert!(per_ip.take(host).is_none(), "one /64, one share");
        assert!(
            per_ip
                .take("2001:db8:1:3::1".parse().expect("ip"))
                .is_some()
        );
        assert_eq!(
            ip_key("::ffff:192.0.2.1".parse().expect("ip")),
            "192.0.2.1".parse::<IpAddr>().expect("ip")
        );
    }
}
