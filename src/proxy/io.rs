//! Byte streams under the proxy's connections: an upstream connection whose first exchange
//! is guarded ([`FreshStream`]), and a client connection whose first bytes were read to tell
//! its protocol and are read again by the HTTP server ([`Rewind`]). Nothing here knows HTTP.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A new upstream TCP connection. While `guarded`, what it sends must be acknowledged by
/// the peer's TCP stack within a short time (`TCP_USER_TIMEOUT`), or the connection fails
/// with `TimedOut`; the guard is lifted once the first byte of an answer arrives, so slow
/// apps and long uploads are never cut by it.
#[derive(Debug)]
pub struct FreshStream {
    /// The connection.
    stream: TcpStream,
    /// The guard is still set.
    guarded: bool,
}

impl FreshStream {
    /// `stream`, guarded for `ack_timeout` when `guarded` (a platform that cannot set it
    /// gets an unguarded stream: the request then waits for its usual timeouts).
    pub fn new(stream: TcpStream, guarded: bool, ack_timeout: Duration) -> FreshStream {
        let guarded = guarded
            && socket2::SockRef::from(&stream)
                .set_tcp_user_timeout(Some(ack_timeout))
                .is_ok();
        FreshStream { stream, guarded }
    }
}

impl AsyncRead for FreshStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if self.guarded && matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.guarded = false;
            let _ = socket2::SockRef::from(&self.stream).set_tcp_user_timeout(None);
        }
        polled
    }
}

impl AsyncWrite for FreshStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A client connection whose first bytes were already read: they are read again first.
#[derive(Debug)]
pub struct Rewind<T> {
    /// What was read ahead, not yet read again.
    prefix: Bytes,
    /// The connection.
    inner: T,
}

impl<T> Rewind<T> {
    /// `inner`, with `prefix` read before it.
    pub fn new(prefix: Bytes, inner: T) -> Rewind<T> {
        Rewind { prefix, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            if self.prefix.is_empty() {
                // Read again in full: its buffer is not held for the connection's life.
                self.prefix = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The HTTP/2 connection preface a client sends first (RFC 9113 3.4).
pub const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes of a client connection say it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.x.
    Http1,
    /// HTTP/2 with prior knowledge.
    Http2,
}

/// Reads from `io` until its first bytes tell HTTP/1 from the HTTP/2 preface. `None`: the
/// client closed first. The caller bounds the time it may take.
pub async fn detect<T: AsyncRead + Unpin>(
    io: &mut T,
) -> std::io::Result<Option<(Protocol, Bytes)>> {
    use tokio::io::AsyncReadExt;
    let mut read = Vec::with_capacity(H2_PREFACE.len());
    loop {
        let mut chunk = [0u8; 24];
        let wanted = H2_PREFACE.len() - read.len();
        let n = io.read(&mut chunk[..wanted]).await?;
        if n == 0 {
            return Ok(None);
        }
        read.extend_from_slice(&chunk[..n]);
        if read[..] != H2_PREFACE[..read.len()] {
            return Ok(Some((Protocol::Http1, Bytes::from(read))));
        }
        if read.len() == H2_PREFACE.len() {
            return Ok(Some((Protocol::Http2, Bytes::from(read))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn the_first_bytes_tell_the_protocol_and_are_read_again() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client
            .write_all(b"PRI * HTTP/2.0\r\n")
            .await
            .expect("write");
        client
            .write_all(b"\r\nSM\r\n\r\nrest")
            .await
            .expect("write");
        let (protocol, prefix) = detect(&mut server).await.expect("read").expect("bytes");
        assert_eq!(protocol, Protocol::Http2);
        let mut rewound = Rewind::new(prefix, server);
        let mut all = vec![0u8; 28];
        rewound.read_exact(&mut all).await.expect("read");
        assert_eq!(&all[..], b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nrest");

        let (mut client, mut server) = tokio::io::duplex(64);
        client
            .write_all(b"POST / HTTP/1.1\r\n")
            .await
            .expect("write");
        let (protocol, prefix) = detect(&mut server).await.expect("read").expect("bytes");
        assert_eq!(protocol, Protocol::Http1);
        assert!(b"POST / HTTP/1.1\r\n".starts_with(&prefix));

        let (client, mut server) = tokio::io::duplex(64);
        drop(client);
        assert!(detect(&mut server).await.expect("read").is_none());
    }
}
