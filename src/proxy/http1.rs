//! Phase **accept**, HTTP/1.1 on a plain connection: the engine's own server for the common
//! request, HTTP/1.1 without a body or an upgrade. Its head is read with `httparse` into
//! one buffer that the header values then share (no copy), and the answer's head and its
//! first body bytes go out in one write. A connection waiting for its next request holds no
//! buffer at all.
//!
//! Anything else (a request with a body, an upgrade, `CONNECT`, HTTP/1.0, `Expect`, a head
//! that cannot be read or is larger than `proxy.max_header_bytes`) and the connection goes,
//! with the bytes already read, to hyper's HTTP/1.1 server for the rest of its life: that
//! request is answered exactly as before. The deadlines are those of [`super::conn`]: the
//! head, and the wait for it on a kept-alive connection, within `proxy.header_read_timeout`
//! (here up to half as long again: the connection's one timer is moved only when less than
//! that is left, rather than armed at every request).
//!
//! Like hyper's server, it stops the request in progress when the client closes its side,
//! adds `Date` when the answer has none, frames the body by its `Content-Length` (or its
//! known size), else chunked (trailers included), and closes after the answer when the
//! request asked for it or the engine is stopping.
//!
//! This module reads and writes HTTP/1.1; it must not route, wake or forward: every request
//! goes to the proxy worker's `handle`, the same as hyper's server gives it.

use std::cell::RefCell;
use std::io::{IoSlice, Write as _};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::body::RequestBody;
use super::buffers::{self, Use};
use super::forward::direct::answer_has_no_body;
use super::forward::{ClientSide, RawFields};
use super::{ProxyBody, Worker};

/// Headers a request may have (as many as hyper's server takes; more: hyper answers 431).
const MAX_HEADERS: usize = 100;
/// Room made for a request head at first; doubled while a head is longer.
const FIRST_READ: usize = Use::RequestHead.size();
/// Body bytes up to this size are copied after the head, so that both go in one write.
const COALESCE: usize = 16 * 1024;

/// How a connection left this server.
#[derive(Debug)]
pub(super) enum Ended {
    /// It is closed, or is to be.
    Closed,
    /// Its next request is not one for this server: hyper's takes the connection from these
    /// bytes (that request's head, whole or in part, and what followed).
    HandOff(Bytes),
}

/// What a request head read so far is.
// Returned once per request and taken apart at once: boxing the request would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Head {
    /// A request for this server.
    Request {
        /// The request.
        request: Request<RequestBody>,
        /// The head's length in the bytes read.
        length: usize,
        /// The client asked for the connection to be closed after the answer.
        close: bool,
    },
    /// Not whole yet.
    Partial,
    /// For hyper's server: not readable, or not a request this server takes.
    Other,
}

/// Serves the requests of one plain HTTP/1.1 connection, from the bytes `first` already
/// read, until it closes or one of its requests is for hyper's server.
pub(super) async fn serve(
    worker: &Worker,
    stream: &mut TcpStream,
    first: Bytes,
    client: &ClientSide,
    stopped: &mut watch::Receiver<bool>,
) -> Ended {
    let limits = worker.proxy.limits;
    let timeout = limits.header_read_timeout;
    let mut buf = buffers::take(Use::RequestHead);
    buf.extend_from_slice(&first);
    // One timer for the connection's life, moved only when less than `timeout` is left: a
    // busy connection does not arm a timer at every request, and each head still gets
    // between `timeout` and half as long again.
    let mut deadline = Box::pin(tokio::time::sleep(timeout + timeout / 2));
    // Told once, when the engine stops. One wait for the connection's life: a wait begun
    // at every request would join and leave the engine-wide list of waiters each time.
    let mut stop = stopped.clone();
    let mut stopping = std::pin::pin!(stop.changed());
    loop {
        let now = Instant::now();
        if deadline.deadline() < now + timeout {
            deadline.as_mut().reset(now + timeout + timeout / 2);
        }
        let (handling, head, close) = loop {
            if !buf.is_empty() {
                let bytes = buf.split().freeze();
                match read_head(&bytes) {
                    Head::Request {
                        request,
                        length,
                        close,
                    } => {
                        if let Some(rest) = bytes.get(length..).filter(|rest| !rest.is_empty()) {
                            // Pipelined: the next request is already here.
                            buf.extend_from_slice(rest);
                        }
                        let head = request.method() == Method::HEAD;
                        // The request goes into its handling here, where it was read: each
                        // hand-over on the way would copy it whole. Boxed: a connection
                        // between requests then holds no room for one in progress. The
                        // room is taken first and the future made in it: made first, then
                        // boxed, all of its room (about 4 KiB) would be copied, where only
                        // the request and three references are written.
                        let handling = Box::into_pin(Box::write(
                            Box::new_uninit(),
                            worker.handle(request, client, None),
                        ));
                        break (handling, head, close);
                    }
                    Head::Partial if bytes.len() < limits.max_header_bytes => {
                        buf = BytesMut::from(bytes);
                    }
                    Head::Partial | Head::Other => return Ended::HandOff(bytes),
                }
            }
            if !read_more(
                stream,
                &mut buf,
                deadline.as_mut(),
                stopped,
                stopping.as_mut(),
            )
            .await
            {
                return Ended::Closed;
            }
        };
        let Some(response) = answer(stream, handling, client).await else {
            return Ended::Closed;
        };
        // The engine stopping: this answer is the connection's last.
        let close = close || *stopped.borrow();
        let kept = write_response(stream, response, head, close).await;
        if !kept || close {
            let _ = stream.shutdown().await;
            return Ended::Closed;
        }
        if buf.is_empty() {
            // Waiting for the next request holds no buffer: it goes back to the thread's
            // kept ones, for the next request that comes on any connection.
            buffers::give(Use::RequestHead, std::mem::take(&mut buf));
        }
    }
}

/// Reads more of a request head into `buf`, before `deadline` ends. `false`: the
/// connection is to be closed (the client closed it or was too slow, or the engine is
/// stopping while it waits for a request).
///
/// The read goes through `AsyncRead`, which takes a read that did not fill the room given
/// as proof that the socket is drained: the watch on the client while its request is in
/// progress then waits for the socket's next event instead of trying a read that can only
/// find nothing (one system call per request fewer; `scripts/bench-syscalls.sh`).
async fn read_more(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    mut deadline: Pin<&mut tokio::time::Sleep>,
    stopped: &watch::Receiver<bool>,
    stopping: Pin<&mut impl Future<Output = Result<(), watch::error::RecvError>>>,
) -> bool {
    let waiting = buf.is_empty();
    if waiting && *stopped.borrow() {
        return false;
    }
    if buf.capacity() != 0 && buf.capacity() - buf.len() < FIRST_READ / 4 {
        buf.reserve(buf.len().max(FIRST_READ));
    }
    let read = async {
        if buf.capacity() == 0 {
            // Bytes first, then a buffer: a connection waiting for its next request holds
            // none. The wait is the socket's reader slot, as reads are.
            std::future::poll_fn(|cx| stream.poll_read_ready(cx)).await?;
            *buf = buffers::take(Use::RequestHead);
        }
        stream.read_buf(buf).await
    };
    tokio::select! {
        biased;
        read = read => matches!(read, Ok(n) if n > 0),
        () = &mut deadline => {
            tracing::debug!("no request within header_read_timeout; closed");
            false
        }
        // The engine stops: a connection between requests closes.
        _ = stopping, if waiting => false,
    }
}

/// The answer of a request's `handling`; `None` when the client closed its side first (the
/// request is then dropped, and with it what it held upstream).
async fn answer(
    stream: &TcpStream,
    mut handling: Pin<Box<impl Future<Output = Response<ProxyBody>>>>,
    client: &ClientSide,
) -> Option<Response<ProxyBody>> {
    let mut watching = true;
    loop {
        tokio::select! {
            biased;
            response = &mut handling => return Some(response),
            gone = client_gone(stream), if watching => {
                if gone {
                    tracing::debug!(peer = %client.peer, "client left before its answer");
                    return None;
                }
                // The next request came early; it waits in the socket.
                watching = false;
            }
        }
    }
}

/// Waits until the client sends or closes: `true` when it closed (or failed), `false` when
/// bytes came (left unread).
///
/// Polled through the socket's one reader slot (`poll_peek`), as reads are: a `peek` future
/// would join the socket's list of waiters and leave it at every request.
async fn client_gone(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    let mut probe = tokio::io::ReadBuf::new(&mut probe);
    let peeked = std::future::poll_fn(|cx| stream.poll_peek(cx, &mut probe)).await;
    !matches!(peeked, Ok(n) if n > 0)
}

/// How an answer's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (`HEAD`, 1xx, 204, 304).
    None,
    /// This many bytes.
    Length(u64),
    /// Chunked.
    Chunked,
}

/// Writes `response` (`head`: to a `HEAD` request); `true` when the connection can take
/// the next request.
async fn write_response(
    stream: &mut TcpStream,
    response: Response<ProxyBody>,
    head: bool,
    close: bool,
) -> bool {
    let (parts, mut body) = response.into_parts();
    // An upstream's fields kept as it wrote them are copied as they are.
    let fields = super::take_fields(&mut body);
    let status = parts.status;
    // A known size is the stated one: an upstream's body is sized by its `Content-Length`
    // (checked on the way in), the engine's pages by their bytes.
    let framing = if answer_has_no_body(head, status) {
        Framing::None
    } else {
        match body.size_hint().exact() {
            Some(length) => Framing::Length(length),
            None => Framing::Chunked,
        }
    };
    // Room for the head and a small body, so that the buffer is not grown on the way.
    let small_body = match framing {
        Framing::Length(length) if length <= COALESCE as u64 => length as usize + 2,
        _ => 0,
    };
    let written = fields.as_ref().map_or(0, RawFields::written_len);
    let mut out = Vec::with_capacity(160 + 64 * parts.headers.len() + written + small_body);
    write_head(
        &mut out,
        status,
        &parts.headers,
        fields.as_ref(),
        framing,
        close,
    );
    if framing == Framing::None {
        return stream.write_all(&out).await.is_ok();
    }
    let mut sent: u64 = 0;
    let mut trailers = None;
    loop {
        // The next piece if it is there; else what is ready goes out before waiting.
        let frame = match std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx)))
            .await
        {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if !out.is_empty() {
                    if stream.write_all(&out).await.is_err() {
                        return false;
                    }
                    out.clear();
                }
                std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            }
        };
        let data = match frame.map(|frame| frame.map(Frame::into_data)) {
            None => break,
            Some(Ok(Ok(data))) => data,
            Some(Ok(Err(frame))) => {
                trailers = frame.into_trailers().ok();
                continue;
            }
            Some(Err(error)) => {
                // The answer is cut: the client learns it from the connection's close.
                let _ = stream.write_all(&out).await;
                tracing::debug!(%error, "response body failed; connection closed");
                return false;
            }
        };
        if data.is_empty() {
            continue;
        }
        let data = match framing {
            Framing::Length(length) => {
                let room = length.saturating_sub(sent);
                if data.len() as u64 > room {
                    // More than the answer said: what fits goes, then the connection closes.
                    let fits = data.slice(..usize::try_from(room).unwrap_or(usize::MAX));
                    out.extend_from_slice(&fits);
                    let _ = stream.write_all(&out).await;
                    tracing::debug!("response body longer than its length; connection closed");
                    return false;
                }
                sent += data.len() as u64;
                data
            }
            _ => {
                let _ = write!(out, "{:x}\r\n", data.len());
                data
            }
        };
        if data.len() <= COALESCE {
            out.extend_from_slice(&data);
        } else {
            if write_both(stream, &out, &data).await.is_err() {
                return false;
            }
            out.clear();
        }
        if framing == Framing::Chunked {
            out.extend_from_slice(b"\r\n");
        }
    }
    match framing {
        Framing::Length(length) if sent < length => {
            let _ = stream.write_all(&out).await;
            tracing::debug!("response body shorter than its length; connection closed");
            return false;
        }
        Framing::Chunked => {
            out.extend_from_slice(b"0\r\n");
            for (name, value) in trailers.iter().flatten() {
                write_field(&mut out, name, value);
            }
            out.extend_from_slice(b"\r\n");
        }
        _ => {}
    }
    drop(body);
    out.is_empty() || stream.write_all(&out).await.is_ok()
}

/// Writes `head` then `data` (one system call when the socket takes both).
async fn write_both(stream: &mut TcpStream, head: &[u8], data: &[u8]) -> std::io::Result<()> {
    let mut slices = [IoSlice::new(head), IoSlice::new(data)];
    let mut slices = &mut slices[..];
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let written = stream.write_vectored(slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, written);
    }
    Ok(())
}

/// The answer's status line and headers (its map's, then the `fields` kept as written),
/// framed as `framing` says.
fn write_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    fields: Option<&RawFields>,
    framing: Framing,
    close: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    // Kept fields have no framing field of their own but `Content-Length`.
    let mut dated = fields.is_some_and(|fields| fields.write(out, framing == Framing::None));
    for (name, value) in headers {
        // The framing is this server's; a bodiless answer keeps its `Content-Length`.
        let framing_header = *name == header::TRANSFER_ENCODING
            || *name == header::CONNECTION
            || (*name == header::CONTENT_LENGTH && framing != Framing::None);
        dated |= *name == header::DATE;
        if !framing_header {
            write_field(out, name, value);
        }
    }
    match framing {
        Framing::Length(length) => {
            out.extend_from_slice(b"content-length: ");
            write_decimal(out, length);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::None => {}
    }
    if !dated {
        out.extend_from_slice(b"date: ");
        DATE.with(|date| out.extend_from_slice(date.borrow_mut().now()));
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// `number` in decimal digits (without the formatting machinery: once per answer).
fn write_decimal(out: &mut Vec<u8>, mut number: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        // A digit: `number % 10` is below 10.
        digits[at] = b'0' + (number % 10) as u8;
        number /= 10;
        if number == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// One `name: value` line.
fn write_field(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

thread_local! {
    /// The `Date` of this second, formatted once per second per proxy thread.
    static DATE: RefCell<CachedDate> = const { RefCell::new(CachedDate { second: u64::MAX, text: Vec::new() }) };
}

/// An HTTP date, kept for the second it names.
#[derive(Debug)]
struct CachedDate {
    /// Seconds since the Unix epoch.
    second: u64,
    /// Its IMF-fixdate, as `Date` carries it.
    text: Vec<u8>,
}

impl CachedDate {
    /// The date of now.
    fn now(&mut self) -> &[u8] {
        let now = chrono::Utc::now();
        let second = u64::try_from(now.timestamp()).unwrap_or(0);
        if second != self.second {
            self.second = second;
            self.text = now
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string()
                .into_bytes();
        }
        &self.text
    }
}

/// Reads a request head from `bytes` (the header values share them).
fn read_head(bytes: &Bytes) -> Head {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let length = match parsed.parse_with_uninit_headers(bytes, &mut headers) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(_) => return Head::Other,
    };
    if parsed.version != Some(1) {
        return Head::Other;
    }
    let Some(Ok(method)) = parsed
        .method
        .map(|method| Method::from_bytes(method.as_bytes()))
    else {
        return Head::Other;
    };
    if method == Method::CONNECT {
        return Head::Other;
    }
    let Some(Ok(uri)) = parsed
        .path
        .map(|path| Uri::from_maybe_shared(bytes.slice_ref(path.as_bytes())))
    else {
        return Head::Other;
    };
    // Room for the client's fields alone: the forward phase keeps the fields it adds apart
    // from the map on the direct path (a map sized for them too is a larger allocation,
    // per request, than the grow the other paths pay once).
    let mut map = HeaderMap::with_capacity(parsed.headers.len());
    let mut close = false;
    for field in parsed.headers.iter() {
        let Ok(name) = HeaderName::from_bytes(field.name.as_bytes()) else {
            return Head::Other;
        };
        if name == header::CONTENT_LENGTH {
            if field.value.trim_ascii() != b"0" {
                return Head::Other;
            }
        } else if name == header::TRANSFER_ENCODING
            || name == header::UPGRADE
            || name == header::EXPECT
        {
            return Head::Other;
        } else if name == header::CONNECTION {
            close |= field
                .value
                .split(|&byte| byte == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
        let Ok(value) = HeaderValue::from_maybe_shared(bytes.slice_ref(field.value)) else {
            return Head::Other;
        };
        map.append(name, value);
    }
    let mut request = Request::new(RequestBody::Empty);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = map;
    Head::Request {
        request,
        length,
        close,
    }
}

/// The reading of request heads, for the fuzz targets.
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    use bytes::Bytes;

    /// A request head as the proxy's HTTP/1.1 server reads it.
    #[allow(clippy::large_enum_variant)]
    #[derive(Debug)]
    pub enum Read {
        /// Not whole yet.
        Partial,
        /// For hyper's server.
        ForHyper,
        /// A request for this server.
        Request {
            /// The request (its body is none).
            request: http::Request<()>,
            /// The head's length in the bytes given.
            length: usize,
            /// It asked for the connection to be closed.
            close: bool,
        },
    }

    /// Reads a request head from `bytes`, as a connection does.
    pub fn read_head(bytes: &[u8]) -> Read {
        match super::read_head(&Bytes::copy_from_slice(bytes)) {
            super::Head::Partial => Read::Partial,
            super::Head::Other => Read::ForHyper,
            super::Head::Request {
                request,
                length,
                close,
            } => Read::Request {
                request: request.map(|_| ()),
                length,
                close,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_written_in_decimal() {
        for number in [0, 7, 10, 16_384, 1_000_000_007, u64::MAX] {
            let mut out = b"x".to_vec();
            write_decimal(&mut out, number);
            assert_eq!(out, format!("x{number}").into_bytes());
        }
    }

    fn read(text: &str) -> Head {
        read_head(&Bytes::copy_from_slice(text.as_bytes()))
    }

    #[test]
    fn a_plain_request_is_read_with_its_headers_and_length() {
        let text =
            "GET /a?b=c HTTP/1.1\r\nHost: demo.example\r\nX-Two: 1\r\nx-two: 2\r\n\r\nGET /next";
        let Head::Request {
            request,
            length,
            close,
        } = read(text)
        else {
            panic!("a request");
        };
        assert_eq!(length, text.find("GET /next").expect("second"));
        assert!(!close);
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri(), "/a?b=c");
        assert_eq!(request.version(), Version::HTTP_11);
        assert_eq!(request.headers()["host"], "demo.example");
        let twos: Vec<_> = request.headers().get_all("x-two").iter().collect();
        assert_eq!(twos, ["1", "2"]);
        assert!(request.body().is_end_stream());
    }

    #[test]
    fn connection_close_is_seen_among_other_tokens() {
        let Head::Request { close, .. } =
            read("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n")
        else {
            panic!("a request");
        };
        assert!(close);
    }

    #[test]
    fn a_head_not_whole_yet_is_partial() {
        assert!(matches!(
            read("GET / HTTP/1.1\r\nHost: a\r\n"),
            Head::Partial
        ));
        assert!(matches!(read("GE"), Head::Partial));
    }

    #[test]
    fn what_this_server_does_not_take_goes_to_hyper() {
        for text in [
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
            "GET / HTTP/1.0\r\nHost: a\r\n\r\n",
            "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
            "GET / HTTP/1.1\r\nHo st: a\r\n\r\n",
            "GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
        ] {
            assert!(matches!(read(text), Head::Other), "{text:?}");
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        assert!(matches!(
            read(&format!("GET / HTTP/1.1\r\n{many}\r\n")),
            Head::Other
        ));
        // An empty body is no body.
        assert!(matches!(
            read("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"),
            Head::Request { .. }
        ));
    }

    #[test]
    fn an_answer_head_is_framed_by_this_server() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        headers.insert("connection", HeaderValue::from_static("keep-alive"));
        headers.insert(
            "date",
            HeaderValue::from_static("Thu, 01 Jan 2026 00:00:00 GMT"),
        );
        let mut out = Vec::new();
        write_head(
            &mut out,
            StatusCode::OK,
            &headers,
            None,
            Framing::Length(5),
            true,
        );
        assert_eq!(
            String::from_utf8(out).expect("text"),
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ndate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\
             content-length: 5\r\nconnection: close\r\n\r\n"
        );

        let mut headers = HeaderMap::new();
        headers.insert("content-length", HeaderValue::from_static("42"));
        let mut out = Vec::new();
        write_head(
            &mut out,
            StatusCode::OK,
            &headers,
            None,
            Framing::None,
            false,
        );
        let text = String::from_utf8(out).expect("text");
        assert!(text.contains("content-length: 42\r\n"), "{text}");
        assert!(text.contains("\r\ndate: "), "{text}");
        assert_eq!(text.matches("GMT").count(), 1, "{text}");
    }
}
