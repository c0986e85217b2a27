//! Upgrades (WebSocket and the like): an upgrade request goes on an HTTP/1.1 connection of
//! its own, and a 101 answer joins both sides in a [`Tunnel`] that copies bytes both ways.
//! An open tunnel that waits holds no copy buffer: each read takes one of the thread's
//! ([`crate::proxy::buffers`]) and gives it back at once if nothing came, else once its
//! bytes are written.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;

use http::header::{self, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::exchange_failed;
use super::pool::Connection;
use super::{ClientSide, ForwardError, Forwarder, UpstreamScope};
use crate::lifecycle::InFlight;
use crate::model::Upstream;
use crate::proxy::body::RequestBody;
use crate::proxy::buffers::{self, Use};

impl Forwarder {
    /// Sends an upgrade request (WebSocket and the like) on a connection of its own. A 101
    /// answer comes with the [`Tunnel`] that joins both sides once the caller has answered
    /// the client; any other answer is a plain response.
    pub async fn forward_upgrade(
        &self,
        mut request: Request<RequestBody>,
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
            Box::pin(self.connect_with(upstream, true, false, scope, None)).await?
        else {
            return Err(ForwardError::Connect(format!(
                "{}: HTTP/2 chosen for an upgrade",
                upstream.authority
            )));
        };
        let mut response = self
            .response_header(sender.send_request(request))
            .await?
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
                if let Err(error) = join(TokioIo::new(client), TokioIo::new(upstream)).await {
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

/// Copies bytes both ways between `a` and `b` until both directions have ended (each end of
/// input passed on as a shutdown of the other side's writing), or either fails.
async fn join<A, B>(a: A, b: B) -> std::io::Result<()>
where
    A: AsyncRead + AsyncWrite,
    B: AsyncRead + AsyncWrite,
{
    let (mut a_read, mut a_write) = tokio::io::split(a);
    let (mut b_read, mut b_write) = tokio::io::split(b);
    tokio::try_join!(
        pass_on(&mut a_read, &mut b_write),
        pass_on(&mut b_read, &mut a_write)
    )?;
    Ok(())
}

/// Copies `from` to `to` until `from` ends, then shuts `to`'s writing down. Between reads
/// it holds no buffer.
async fn pass_on<R, W>(from: &mut R, to: &mut W) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        let mut buffer = std::future::poll_fn(|cx| {
            let mut buffer = buffers::take(Use::Tunnel);
            // One poll of a read into it: nothing read, it goes back before waiting.
            let read = pin!(from.read_buf(&mut buffer)).poll(cx);
            match read {
                Poll::Pending => {
                    buffers::give(Use::Tunnel, buffer);
                    Poll::Pending
                }
                Poll::Ready(Ok(_)) => Poll::Ready(Ok(buffer)),
                Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            }
        })
        .await?;
        if buffer.is_empty() {
            buffers::give(Use::Tunnel, buffer);
            return to.shutdown().await;
        }
        to.write_all(&buffer).await?;
        // A TLS side holds written bytes until flushed.
        to.flush().await?;
        buffer.clear();
        buffers::give(Use::Tunnel, buffer);
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::Context;

    use tokio::io::{DuplexStream, ReadBuf};

    use super::*;

    /// Bytes that say where they are: a shifted or lost chunk shows.
    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ seed)
            .collect::<Vec<u8>>()
    }

    #[tokio::test]
    async fn bytes_cross_both_ways_and_each_end_is_passed_on() {
        let (client, client_proxy) = tokio::io::duplex(4096);
        let (upstream_proxy, upstream) = tokio::io::duplex(4096);
        let tunnel = tokio::spawn(join(client_proxy, upstream_proxy));

        // More than a buffer's worth each way, both at once.
        let up = pattern(100_000, 0x5a);
        let down = pattern(70_000, 0xa5);
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let (mut upstream_read, mut upstream_write) = tokio::io::split(upstream);
        let sent_up = up.clone();
        let client_sends = tokio::spawn(async move {
            client_write
                .write_all(&sent_up)
                .await
                .expect("client writes");
            // The client is done sending: the upstream sees the end of its input...
            client_write.shutdown().await.expect("client shuts down");
        });
        let mut upstream_got = Vec::new();
        let sent_down = down.clone();
        let upstream_side = tokio::spawn(async move {
            upstream_write
                .write_all(&sent_down)
                .await
                .expect("upstream writes");
            upstream_read
                .read_to_end(&mut upstream_got)
                .await
                .expect("upstream reads");
            // ...and may still answer after it.
            upstream_write
                .write_all(b"after the end")
                .await
                .expect("upstream writes after the client's end");
            upstream_write
                .shutdown()
                .await
                .expect("upstream shuts down");
            upstream_got
        });
        let mut client_got = Vec::new();
        client_read
            .read_to_end(&mut client_got)
            .await
            .expect("client reads");
        client_sends.await.expect("client task");
        let upstream_got = upstream_side.await.expect("upstream task");

        assert_eq!(upstream_got, up);
        let mut expected = down;
        expected.extend_from_slice(b"after the end");
        assert_eq!(client_got, expected);
        tunnel
            .await
            .expect("tunnel task")
            .expect("both directions ended cleanly");
    }

    /// A reader that records where each read it is polled for would write, and has nothing.
    struct Quiet {
        /// The first byte of the room of each poll, as an address.
        rooms: Arc<Mutex<Vec<usize>>>,
    }

    impl AsyncRead for Quiet {
        fn poll_read(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let room = buf.initialize_unfilled().as_ptr() as usize;
            if let Ok(mut rooms) = self.rooms.lock() {
                rooms.push(room);
            }
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_waiting_tunnel_holds_no_buffer() {
        let rooms = Arc::new(Mutex::new(Vec::new()));
        let mut quiet = Quiet {
            rooms: Arc::clone(&rooms),
        };
        let (mut sink, _other): (DuplexStream, DuplexStream) = tokio::io::duplex(64);
        let mut waiting = Box::pin(pass_on(&mut quiet, &mut sink));
        let poll = std::future::poll_fn(|cx| Poll::Ready(waiting.as_mut().poll(cx))).await;
        assert!(poll.is_pending(), "nothing to read: it waits");
        let room = rooms
            .lock()
            .map(|rooms| rooms.first().copied())
            .ok()
            .flatten();
        let room = room.expect("the reader was polled with a buffer");
        // While it waits, the buffer it read into is back on the thread: the next one taken.
        let next = buffers::take(Use::Tunnel);
        assert_eq!(
            next.as_ptr() as usize,
            room,
            "the waiting tunnel's buffer was handed out again"
        );
    }
}
