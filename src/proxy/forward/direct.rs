//! Bodiless requests (most of them: `GET`, `HEAD`, `DELETE`...) on upstream HTTP/1.1
//! connections driven by the request itself: the request's head is written, the response's
//! head read and parsed (`httparse`) and its body decoded, all in the request's own task.
//! A connection behind hyper's client has a task of its own and a channel to it, which
//! cost about a third of the proxy's instructions per request. Requests with a body and
//! upgrades stay on hyper's client; this module never sends a body.
//!
//! Framing follows RFC 9112 §6: no body for `HEAD` nor for 1xx, 204 and 304 answers;
//! `Transfer-Encoding` ending in `chunked` before `Content-Length` (all of whose values
//! must agree); otherwise the body runs until the upstream closes, and the connection is
//! not reused. Interim (1xx) answers are skipped. A connection is reused only when its
//! last answer was read to its end and the upstream did not ask to close it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::Authority;
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::headers::Added;
use super::pool::{Lane, Pool};
use super::raw::{self, Kind, Name, RawField, RawFields};
use crate::proxy::body::Outgoing;
use crate::proxy::buffers::{self, Use};
use crate::proxy::io::FreshStream;

/// Most header fields in an answer's head (as hyper's client).
const MAX_HEADERS: usize = 100;

/// Longest answer head, in bytes (as hyper's client: about 400 KiB).
const MAX_HEAD: usize = 400 * 1024;

/// Longest chunk-size line of a chunked body (its extensions are ignored, not unbounded).
const MAX_CHUNK_LINE: usize = 4096;

/// The byte stream of an upstream connection: TCP, or TLS over it.
pub(super) enum UpstreamIo {
    /// `http` upstreams.
    Plain(FreshStream),
    /// `https` upstreams that chose HTTP/1.1 (boxed: TLS state is large, and rarer).
    Tls(Box<tokio_rustls::client::TlsStream<FreshStream>>),
    /// An answer given in advance, for the fuzz target (what is written is dropped).
    #[cfg(feature = "fuzzing")]
    Given(std::io::Cursor<Vec<u8>>),
}

impl AsyncRead for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_read(cx, buf),
            UpstreamIo::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
            #[cfg(feature = "fuzzing")]
            UpstreamIo::Given(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_write(cx, buf),
            UpstreamIo::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, buf),
            #[cfg(feature = "fuzzing")]
            UpstreamIo::Given(_) => Poll::Ready(Ok(buf.len())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_flush(cx),
            UpstreamIo::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
            #[cfg(feature = "fuzzing")]
            UpstreamIo::Given(_) => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_shutdown(cx),
            UpstreamIo::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
            #[cfg(feature = "fuzzing")]
            UpstreamIo::Given(_) => Poll::Ready(Ok(())),
        }
    }
}

/// An upstream HTTP/1.1 connection without a task of its own: idle in the pool, or owned
/// by the one request (then its response body) using it.
pub(super) struct Direct {
    /// The connection.
    io: UpstreamIo,
    /// Bytes read and not yet used (the head being parsed, then the body's start).
    buffer: BytesMut,
    /// The wait for an answer's head (`proxy.response_header_timeout`): one timer for the
    /// connection's life, moved at each request. Moving a registered timer later costs
    /// next to nothing, where a timer armed and cancelled per request costs about 3 % of
    /// the request's instructions (`scripts/bench-instructions.sh`).
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The upstream it goes to, under which it goes back to its pool: set once when it is
    /// made. A copy taken per request from the upstream, which every worker shares, would
    /// count references on a cache line their CPUs pass around at every request.
    authority: Authority,
    /// Which requests it may carry besides its authority's (scheme, space's scope): the
    /// rest of its pool's key.
    lane: Lane,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct").finish_non_exhaustive()
    }
}

/// Why a request on a [`Direct`] connection got no usable answer.
#[derive(Debug, thiserror::Error)]
pub(super) enum DirectError {
    /// Writing the request failed: the upstream did not take it.
    #[error("the connection failed before the request was sent: {0}")]
    Unsent(std::io::Error),
    /// The request was written, and the connection ended before any byte of an answer.
    #[error("the connection ended without an answer: {0}")]
    NoAnswer(std::io::Error),
    /// The connection failed in the answer's head.
    #[error("the connection failed in the answer's head: {0}")]
    Broken(std::io::Error),
    /// The answer's head is not HTTP/1.x, or its framing is contradictory.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// No whole answer head within the time allowed.
    #[error("no answer within {}s", .0.as_secs_f32())]
    TimedOut(std::time::Duration),
}

/// Where a connection goes back once its answer is read to its end (under its own
/// upstream's authority).
#[derive(Debug, Clone)]
pub(super) struct Home {
    /// The worker's pool.
    pub pool: Arc<Mutex<Pool>>,
}

impl Direct {
    /// A connection of `lane` to `authority` over `io`, nothing read yet. Boxed for its
    /// life: it goes from the pool to a request, its answer's body and back at every
    /// request, a pointer moved each time rather than the whole connection copied.
    pub(super) fn new(io: UpstreamIo, lane: Lane, authority: Authority) -> Box<Direct> {
        Box::new(Direct {
            io,
            buffer: BytesMut::new(),
            deadline: None,
            authority,
            lane,
        })
    }

    /// The upstream it goes to (its pool's key in its lane).
    pub(super) fn authority(&self) -> &str {
        self.authority.as_str()
    }

    /// Which requests it may carry (its pool's lane).
    pub(super) fn lane(&self) -> Lane {
        self.lane
    }

    /// The connection's byte stream, for hyper's client (a request with a body on a
    /// pooled connection); `None` when bytes were left unread.
    pub(super) fn into_io(self) -> Option<UpstreamIo> {
        self.buffer.is_empty().then_some(self.io)
    }

    /// Whether an idle connection can take a request: the upstream neither closed it nor
    /// sent anything unasked (one read that must find nothing to read).
    pub(super) fn is_usable(&mut self) -> bool {
        if !self.buffer.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        let mut probe = ReadBuf::new(&mut probe);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        matches!(
            Pin::new(&mut self.io).poll_read(&mut cx, &mut probe),
            Poll::Pending
        )
    }

    /// Sends `request` (which has no body, and is given the fields `added` when they are
    /// not in its map yet) and reads the head of its answer, within
    /// `limit` when there is one. The body streams from the connection; once read to its
    /// end, the connection goes back `home` when it may be reused.
    pub(super) async fn send(
        mut self: Box<Self>,
        request: &Request<Outgoing>,
        added: Option<&Added<'_>>,
        home: Home,
        limit: Option<std::time::Duration>,
    ) -> Result<Response<DirectBody>, DirectError> {
        let answered = match limit {
            Some(limit) => {
                let mut deadline = self
                    .deadline
                    .take()
                    .unwrap_or_else(|| Box::pin(tokio::time::sleep(limit)));
                deadline.as_mut().reset(tokio::time::Instant::now() + limit);
                let answered = tokio::select! {
                    biased;
                    answered = self.exchange(request, added) => answered,
                    () = deadline.as_mut() => Err(DirectError::TimedOut(limit)),
                };
                self.deadline = Some(deadline);
                answered
            }
            None => self.exchange(request, added).await,
        };
        let (answered, fields, raw) = answered?;
        let (mut parts, ()) = answered.into_parts();
        let framing = framing(request.method(), parts.status, &fields)?;
        let mut reusable = framing != Framing::Close && fields.keeps_alive(parts.version);
        // Both: the length is not to be trusted, nor the connection (RFC 9112 §6.1).
        if fields.chunked.is_some() && fields.length.is_some() {
            parts.headers.remove(header::CONTENT_LENGTH);
            reusable = false;
        }
        let body = DirectBody::new(self, framing, reusable.then_some(home), raw);
        Ok(Response::from_parts(parts, body))
    }

    /// Writes `request`'s head and reads its answer's head, interim answers skipped.
    async fn exchange(
        &mut self,
        request: &Request<Outgoing>,
        added: Option<&Added<'_>>,
    ) -> Result<Head, DirectError> {
        let head = request_head(request, added);
        if let Err(error) = self.write(&head).await {
            return Err(DirectError::Unsent(error));
        }
        loop {
            let (answered, fields, raw) = self.read_head().await?;
            // Interim answers (100 Continue, 103 Early Hints) are not forwarded.
            if answered.status().is_informational() {
                if answered.status() == StatusCode::SWITCHING_PROTOCOLS {
                    return Err(DirectError::Malformed(
                        "101 Switching Protocols to a request that asked for no upgrade".into(),
                    ));
                }
                continue;
            }
            return Ok((answered, fields, raw));
        }
    }

    /// Writes `bytes` and flushes them.
    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.io.write_all(bytes).await?;
        self.io.flush().await
    }

    /// Reads and parses one answer head (the body's first bytes stay in the buffer).
    async fn read_head(&mut self) -> Result<Head, DirectError> {
        loop {
            if !self.buffer.is_empty()
                && let Some(head) = parse_head(&mut self.buffer)?
            {
                return Ok(head);
            }
            if self.buffer.len() >= MAX_HEAD {
                return Err(DirectError::Malformed(format!(
                    "head larger than {} KiB",
                    MAX_HEAD / 1024
                )));
            }
            buffers::make_room(Use::Answer, &mut self.buffer);
            match self.io.read_buf(&mut self.buffer).await {
                Ok(0) if self.buffer.is_empty() => {
                    return Err(DirectError::NoAnswer(
                        std::io::ErrorKind::UnexpectedEof.into(),
                    ));
                }
                Ok(0) => {
                    return Err(DirectError::Broken(
                        std::io::ErrorKind::UnexpectedEof.into(),
                    ));
                }
                Ok(_) => {}
                Err(error) if self.buffer.is_empty() => return Err(DirectError::NoAnswer(error)),
                Err(error) => return Err(DirectError::Broken(error)),
            }
        }
    }
}

/// The request line and header fields of `request`, in HTTP/1.1 (its target is already in
/// origin form and its headers cleaned for the upstream), with the fields `added` by the
/// proxy: `Host` first, the others after the client's.
fn request_head(request: &Request<Outgoing>, added: Option<&Added<'_>>) -> Vec<u8> {
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |target| target.as_str());
    let headers = request.headers();
    let fields = added.map(Added::fields).unwrap_or_default();
    let mut size = request.method().as_str().len() + target.len() + 14;
    for (name, value) in headers {
        size += name.as_str().len() + value.len() + 4;
    }
    for (name, value) in &fields {
        if let Some(value) = value {
            size += name.len() + value.len() + 4;
        }
    }
    let mut head = Vec::with_capacity(size);
    head.extend_from_slice(request.method().as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    let mut write = |name: &str, value: &HeaderValue| {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    };
    // `Host` first, as clients write it; the client's fields the proxy's replace are left.
    let [(host, host_value), others @ ..] = &fields;
    if let Some(value) = host_value {
        write(host, value);
    }
    for (name, value) in headers {
        if !added.is_some_and(|added| added.replaces(name)) {
            write(name.as_str(), value);
        }
    }
    for (name, value) in others {
        if let Some(value) = value {
            write(name, value);
        }
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// What an answer's hop-by-hop fields say of its framing and of its connection, read as
/// the head is: these fields never reach the client, so they are not put in the head's
/// map only to be looked up and taken out of it again.
#[derive(Debug, Default)]
struct Fields {
    /// With `Transfer-Encoding`: whether the last coding of its last field is `chunked`.
    chunked: Option<bool>,
    /// With `Content-Length`: its value, or why it is not one (all values must agree).
    length: Option<Result<u64, &'static str>>,
    /// `Connection` says `close`.
    close: bool,
    /// `Connection` says `keep-alive`.
    keep_alive: bool,
}

impl Fields {
    /// Whether the upstream keeps the connection open after this answer.
    fn keeps_alive(&self, version: Version) -> bool {
        !self.close && (version == Version::HTTP_11 || self.keep_alive)
    }

    /// Adds a `Content-Length` field's value.
    fn add_length(&mut self, value: &[u8]) {
        if matches!(self.length, Some(Err(_))) {
            return;
        }
        for part in value.split(|&byte| byte == b',') {
            let part = part.trim_ascii();
            let read = if part.is_empty() {
                Err("bad Content-Length")
            } else {
                part.iter().try_fold(0u64, |sum, &byte| {
                    byte.is_ascii_digit()
                        .then(|| sum.checked_mul(10)?.checked_add(u64::from(byte - b'0')))
                        .flatten()
                        .ok_or("bad Content-Length")
                })
            };
            self.length = match (self.length, read) {
                (_, Err(why)) => Some(Err(why)),
                (Some(Ok(length)), Ok(value)) if length != value => {
                    Some(Err("conflicting Content-Length"))
                }
                (_, Ok(value)) => Some(Ok(value)),
            };
            if matches!(self.length, Some(Err(_))) {
                return;
            }
        }
    }

    /// Reads a `Connection` field's tokens: `true` when it names other fields than the
    /// standard hop-by-hop ones (the field then stays in the head, for
    /// [`super::headers::remove_hop_by_hop`] to remove what it names).
    fn add_connection(&mut self, value: &[u8]) -> bool {
        // A value that is not text says nothing readable: the connection is not reused.
        if !value
            .iter()
            .all(|&byte| byte == b'\t' || (b' '..=b'~').contains(&byte))
        {
            self.close = true;
        }
        let mut names_others = false;
        for token in value.split(|&byte| byte == b',') {
            let token = token.trim_ascii();
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if !token.is_empty() {
                names_others = true;
            }
        }
        names_others
    }
}

/// One answer head from the start of `buffer`, taken out of it; `None`: not whole yet.
/// An answer that needs no change but the proxy's `Via` keeps its fields as they were
/// written ([`RawFields`]) and comes with an empty map; any other has them in its map.
fn parse_head(buffer: &mut BytesMut) -> Result<Option<Head>, DirectError> {
    // Left uninitialised: writing 100 empty fields costs more than parsing a small head.
    let mut fields =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let length = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        buffer,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(DirectError::Malformed(error.to_string())),
    };
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let status = parsed
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| DirectError::Malformed("no valid status code".into()))?;
    let mut read = Fields::default();
    // Where each kept field's name and value are in the head, to share the head's bytes.
    let start = buffer.as_ptr() as usize;
    let place = |bytes: &[u8]| -> Result<(u32, u32), DirectError> {
        (bytes.as_ptr() as usize)
            .checked_sub(start)
            .filter(|from| from + bytes.len() <= length)
            .and_then(|from| {
                Some((
                    u32::try_from(from).ok()?,
                    u32::try_from(from + bytes.len()).ok()?,
                ))
            })
            .ok_or_else(|| DirectError::Malformed("a field outside its head".into()))
    };
    // Whether the fields can go to the client as they are (see `raw`).
    let mut as_written = true;
    let mut places = Vec::with_capacity(parsed.headers.len());
    for field in parsed.headers.iter() {
        let name = raw::name_of(field.name.as_bytes());
        let kind = match name {
            Name::Length => {
                read.add_length(field.value);
                Kind::Length
            }
            Name::Date => Kind::Date,
            Name::Location => {
                as_written = false;
                Kind::Other
            }
            Name::Connection => {
                if !read.add_connection(field.value) {
                    continue;
                }
                as_written = false;
                Kind::Other
            }
            Name::TransferEncoding => {
                // The last coding of the last field says whether the body is chunked;
                // with any other, it runs until the connection closes.
                let last = field.value.rsplit(|&byte| byte == b',').next();
                read.chunked =
                    Some(last.is_some_and(|coding| {
                        coding.trim_ascii().eq_ignore_ascii_case(b"chunked")
                    }));
                continue;
            }
            Name::HopByHop => continue,
            Name::Other => Kind::Other,
        };
        let (name_from, name_to) = place(field.name.as_bytes())?;
        let (value_from, value_to) = place(field.value)?;
        places.push(RawField {
            name_from,
            name_to,
            value_from,
            value_to,
            kind,
        });
    }
    // Both: the length goes (RFC 9112 §6.1), which the map does more simply.
    as_written &= !(read.chunked.is_some() && read.length.is_some());
    let head = buffer.split_to(length).freeze();
    let fields = RawFields::new(head, places);
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    if as_written {
        return Ok(Some((response, read, Some(fields))));
    }
    fields
        .into_map(response.headers_mut())
        .map_err(DirectError::Malformed)?;
    Ok(Some((response, read, None)))
}

/// An answer's head: its status and version (and its fields when they are not kept as
/// written), what its hop-by-hop fields said, and the fields kept as written.
type Head = (Response<()>, Fields, Option<RawFields>);

/// How an answer's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes (none: no body).
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

/// Whether an answer with `status` (`head`: to a `HEAD` request) has no body, whatever its
/// headers say (RFC 9112 §6.3); both sides of the proxy frame answers by it.
pub(crate) fn answer_has_no_body(head: bool, status: StatusCode) -> bool {
    head || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// The framing of an answer to `method` with `status` and `fields` (RFC 9112 §6.3).
fn framing(method: &Method, status: StatusCode, fields: &Fields) -> Result<Framing, DirectError> {
    if answer_has_no_body(method == Method::HEAD, status) {
        return Ok(Framing::Length(0));
    }
    match (fields.chunked, fields.length) {
        (Some(true), _) => Ok(Framing::Chunked),
        (Some(false), _) | (None, None) => Ok(Framing::Close),
        (None, Some(Ok(length))) => Ok(Framing::Length(length)),
        (None, Some(Err(why))) => Err(DirectError::Malformed(why.into())),
    }
}

/// Where a chunked body's decoding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line.
    Size,
    /// In a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last chunk: the trailer fields and the final CRLF.
    Trailers,
}

/// Where a body's decoding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decode {
    /// This many bytes left.
    Length(u64),
    /// Chunked.
    Chunked(Chunk),
    /// Until the connection closes.
    Close,
    /// Read to its end (or failed).
    Done,
}

/// Why an answer's body stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum DirectBodyError {
    /// The connection failed, or closed early.
    #[error("the upstream connection failed mid-body: {0}")]
    Io(#[from] std::io::Error),
    /// The chunked coding is broken.
    #[error("malformed chunked body: {0}")]
    Malformed(&'static str),
}

/// An answer's body, read from its [`Direct`] connection as the client takes it; the
/// connection goes back to its pool at the body's end (when it may be reused), or closes
/// with the body when dropped before.
pub struct DirectBody {
    /// The connection, until the body's end.
    connection: Option<Box<Direct>>,
    /// Where the decoding is.
    decode: Decode,
    /// Where the connection goes back at the end (`None`: it is not reused).
    home: Option<Home>,
    /// The answer's fields as the upstream wrote them, until its head is written (the
    /// response's map is empty meanwhile); `None` when they are in the map.
    fields: Option<RawFields>,
}

impl std::fmt::Debug for DirectBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectBody")
            .field("decode", &self.decode)
            .finish_non_exhaustive()
    }
}

impl DirectBody {
    fn new(
        connection: Box<Direct>,
        framing: Framing,
        home: Option<Home>,
        fields: Option<RawFields>,
    ) -> DirectBody {
        let decode = match framing {
            Framing::Length(length) => Decode::Length(length),
            Framing::Chunked => Decode::Chunked(Chunk::Size),
            Framing::Close => Decode::Close,
        };
        let mut body = DirectBody {
            connection: Some(connection),
            decode,
            home,
            fields,
        };
        if decode == Decode::Length(0) {
            body.finish();
        }
        body
    }

    /// The answer's fields kept as written, when they are (see [`RawFields`]).
    pub fn fields_mut(&mut self) -> Option<&mut RawFields> {
        self.fields.as_mut()
    }

    /// Takes the answer's fields kept as written: whoever takes them writes them, or puts
    /// them in the response's map.
    pub fn take_fields(&mut self) -> Option<RawFields> {
        self.fields.take()
    }

    /// The body is read to its end: the connection goes back to its pool.
    fn finish(&mut self) {
        self.decode = Decode::Done;
        let (Some(connection), Some(home)) = (self.connection.take(), self.home.take()) else {
            return;
        };
        // Bytes past the answer: the upstream sent more than it framed; not reusable.
        if !connection.buffer.is_empty() {
            return;
        }
        // An idle connection holds no buffer: it goes back to the thread's kept ones, for
        // the next answer read on any connection once the bytes it served are dropped.
        let mut connection = connection;
        buffers::give(Use::Answer, std::mem::take(&mut connection.buffer));
        super::pool::put_back_direct(&home.pool, connection);
    }

    /// The body failed: the connection closes.
    fn fail(
        &mut self,
        error: DirectBodyError,
    ) -> Poll<Option<Result<Frame<Bytes>, DirectBodyError>>> {
        self.decode = Decode::Done;
        self.connection = None;
        self.home = None;
        Poll::Ready(Some(Err(error)))
    }
}

/// Reads more into the connection's buffer: `Ready(Ok(0))` at its end.
fn poll_fill(connection: &mut Direct, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
    buffers::make_room(Use::Answer, &mut connection.buffer);
    let read = connection.io.read_buf(&mut connection.buffer);
    std::pin::pin!(read).poll(cx)
}

impl Body for DirectBody {
    type Data = Bytes;
    type Error = DirectBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, DirectBodyError>>> {
        let this = &mut *self;
        loop {
            let Some(connection) = this.connection.as_mut() else {
                return Poll::Ready(None);
            };
            let buffered = connection.buffer.len() as u64;
            match this.decode {
                Decode::Done => return Poll::Ready(None),
                Decode::Length(left) | Decode::Chunked(Chunk::Data(left)) if buffered > 0 => {
                    let take = left.min(buffered);
                    // `take` is at most the buffer's length, a usize.
                    let data = connection.buffer.split_to(take as usize).freeze();
                    let left = left - take;
                    match this.decode {
                        Decode::Length(_) if left == 0 => this.finish(),
                        Decode::Length(_) => this.decode = Decode::Length(left),
                        _ if left == 0 => this.decode = Decode::Chunked(Chunk::DataEnd),
                        _ => this.decode = Decode::Chunked(Chunk::Data(left)),
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Decode::Close if buffered > 0 => {
                    let data = connection.buffer.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Decode::Chunked(Chunk::Size) => {
                    if let Some(end) = connection.buffer.iter().position(|&b| b == b'\n') {
                        let line = connection.buffer.split_to(end + 1);
                        match chunk_size(&line) {
                            Some(0) => this.decode = Decode::Chunked(Chunk::Trailers),
                            Some(size) => this.decode = Decode::Chunked(Chunk::Data(size)),
                            None => return this.fail(DirectBodyError::Malformed("bad chunk size")),
                        }
                        continue;
                    }
                    if connection.buffer.len() > MAX_CHUNK_LINE {
                        return this.fail(DirectBodyError::Malformed("chunk size line too long"));
                    }
                }
                Decode::Chunked(Chunk::DataEnd) if buffered >= 2 => {
                    if &connection.buffer[..2] != b"\r\n" {
                        return this.fail(DirectBodyError::Malformed("no CRLF after a chunk"));
                    }
                    connection.buffer.advance(2);
                    this.decode = Decode::Chunked(Chunk::Size);
                    continue;
                }
                Decode::Chunked(Chunk::Trailers) => {
                    if connection.buffer.starts_with(b"\r\n") {
                        connection.buffer.advance(2);
                        this.finish();
                        return Poll::Ready(None);
                    }
                    if let Some(end) = find(&connection.buffer, b"\r\n\r\n") {
                        let block = connection.buffer.split_to(end + 4).freeze();
                        // Only a whole, sound body gives the connection back.
                        let Some(trailers) = trailers(&block) else {
                            return this.fail(DirectBodyError::Malformed("bad trailer fields"));
                        };
                        this.finish();
                        if trailers.is_empty() {
                            return Poll::Ready(None);
                        }
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    if connection.buffer.len() > MAX_HEAD {
                        return this.fail(DirectBodyError::Malformed("trailer fields too large"));
                    }
                }
                _ => {}
            }
            match poll_fill(connection, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) if this.decode == Decode::Close => {
                    this.decode = Decode::Done;
                    this.connection = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(0)) => {
                    return this.fail(DirectBodyError::Io(
                        std::io::ErrorKind::UnexpectedEof.into(),
                    ));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(error)) => return this.fail(DirectBodyError::Io(error)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decode == Decode::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.decode {
            Decode::Length(left) => SizeHint::with_exact(left),
            Decode::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// The fuzz target's entry (`paastis::fuzzing::proxy`).
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    use super::*;

    /// What was read of an answer.
    #[derive(Debug)]
    pub struct Read {
        /// The answer's head (interim answers skipped).
        pub head: Response<()>,
        /// Its body's bytes, as far as they were read.
        pub body: Vec<u8>,
        /// The trailer fields, when a chunked body had some.
        pub trailers: Option<HeaderMap>,
        /// Why the body stopped early, if it did.
        pub body_error: Option<String>,
        /// Whether the connection went back to the pool at the end.
        pub reused: bool,
    }

    /// Reads `answer` as the upstream's answer to a bodiless `method` request, the way a
    /// direct connection does: `Err` with the reason when its head is refused.
    pub fn read_answer(method: Method, answer: Vec<u8>) -> Result<Read, String> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let direct = Direct::new(
            UpstreamIo::Given(std::io::Cursor::new(answer)),
            Lane::PLAIN,
            Authority::from_static("upstream.test"),
        );
        let pool = Arc::new(Mutex::new(Pool::default()));
        let home = Home {
            pool: Arc::clone(&pool),
        };
        let mut request = Request::new(Outgoing::Empty);
        *request.method_mut() = method;
        // A given answer never makes anything wait: one poll finishes each step.
        let sent = std::pin::pin!(direct.send(&request, None, home, None)).poll(&mut cx);
        let response = match sent {
            Poll::Ready(Ok(response)) => response,
            Poll::Ready(Err(error)) => return Err(error.to_string()),
            Poll::Pending => return Err("the head waited".into()),
        };
        let (mut head, mut body) = response.into_parts();
        if let Some(fields) = body.take_fields() {
            fields.into_map(&mut head.headers)?;
        }
        let mut body = std::pin::pin!(body);
        let (mut data, mut trailers, mut body_error) = (Vec::new(), None, None);
        loop {
            match body.as_mut().poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(bytes) => data.extend_from_slice(&bytes),
                    Err(frame) => trailers = frame.into_trailers().ok(),
                },
                Poll::Ready(Some(Err(error))) => {
                    body_error = Some(error.to_string());
                    break;
                }
                Poll::Ready(None) => break,
                Poll::Pending => {
                    body_error = Some("the body waited".into());
                    break;
                }
            }
        }
        let reused = pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .lane(Lane::PLAIN)
            .get("upstream.test")
            .is_some_and(|idle| !idle.is_empty());
        Ok(Read {
            head: Response::from_parts(head, ()),
            body: data,
            trailers,
            body_error,
            reused,
        })
    }
}

/// The size in a chunk-size line (hex digits, then optional extensions), without its CRLF.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line
        .iter()
        .position(|&b| b == b';' || b == b' ' || b == b'\t')
        .map_or(line, |end| &line[..end]);
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let text = std::str::from_utf8(digits).ok()?;
    u64::from_str_radix(text, 16).ok()
}

/// Where `needle` first is in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The trailer fields of a chunked body (the block ends with its empty line).
fn trailers(block: &Bytes) -> Option<HeaderMap> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let httparse::Status::Complete((_, fields)) =
        httparse::parse_headers(block, &mut fields).ok()?
    else {
        return None;
    };
    let mut map = HeaderMap::with_capacity(fields.len());
    for field in fields {
        let name = HeaderName::from_bytes(field.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(field.value).ok()?;
        map.append(name, value);
    }
    Some(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::AsyncWriteExt;

    /// A connection whose upstream answers `answer` (in `pieces` bytes at a time) to
    /// whatever it is sent, then closes unless `keep` is set. Returns the answer and what
    /// the upstream received.
    async fn exchange(
        method: Method,
        answer: &'static [u8],
        pieces: usize,
    ) -> (
        Result<(Response<()>, Vec<Frame<Bytes>>), String>,
        Arc<Mutex<Pool>>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let upstream = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = Vec::new();
            let mut buffer = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let read = socket.read(&mut buffer).await.expect("read");
                assert!(read > 0, "request whole");
                request.extend_from_slice(&buffer[..read]);
            }
            // The proxy may close early (on a malformed answer): writes may fail then.
            for piece in answer.chunks(pieces) {
                if socket.write_all(piece).await.is_err() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            // Held open a moment: a connection to reuse must not be closed by then.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            String::from_utf8(request).expect("text")
        });
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let direct = Direct::new(
            UpstreamIo::Plain(FreshStream::new(
                stream,
                false,
                std::time::Duration::from_secs(1),
            )),
            Lane::PLAIN,
            Authority::from_static("upstream.test"),
        );
        let pool = Arc::new(Mutex::new(Pool::default()));
        let home = Home {
            pool: Arc::clone(&pool),
        };
        let request = Request::builder()
            .method(method)
            .uri("/path?q=1")
            .header("host", "upstream.test")
            .body(Outgoing::Empty)
            .expect("request");
        let result = match direct
            .send(
                &request,
                None,
                home,
                Some(std::time::Duration::from_secs(5)),
            )
            .await
        {
            Ok(response) => {
                let (mut parts, mut body) = response.into_parts();
                if let Some(fields) = body.take_fields() {
                    fields.into_map(&mut parts.headers).expect("valid fields");
                }
                let mut frames = Vec::new();
                let mut failure = None;
                while let Some(frame) = body.frame().await {
                    match frame {
                        Ok(frame) => frames.push(frame),
                        Err(error) => {
                            failure = Some(error.to_string());
                            break;
                        }
                    }
                }
                match failure {
                    Some(failure) => Err(failure),
                    None => Ok((Response::from_parts(parts, ()), frames)),
                }
            }
            Err(error) => Err(error.to_string()),
        };
        let received = upstream.await.expect("upstream");
        assert!(
            received.starts_with("GET /path?q=1 HTTP/1.1\r\nhost: upstream.test\r\n")
                || received.starts_with("HEAD /path?q=1 HTTP/1.1\r\n"),
            "{received}"
        );
        (result, pool)
    }

    fn data(frames: &[Frame<Bytes>]) -> Vec<u8> {
        frames
            .iter()
            .filter_map(|frame| frame.data_ref())
            .flat_map(|data| data.iter().copied())
            .collect()
    }

    fn pooled(pool: &Arc<Mutex<Pool>>) -> usize {
        pool.lock()
            .expect("pool")
            .lane(Lane::PLAIN)
            .get("upstream.test")
            .map_or(0, Vec::len)
    }

    #[tokio::test]
    async fn a_sized_answer_in_small_pieces_is_read_whole_and_its_connection_reused() {
        let (result, pool) = exchange(
            Method::GET,
            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Two: a\r\nX-Two: b\r\n\r\nhello world",
            3,
        )
        .await;
        let (head, frames) = result.expect("answer");
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers().get_all("x-two").iter().count(), 2);
        assert_eq!(data(&frames), b"hello world");
        assert_eq!(pooled(&pool), 1);
    }

    #[tokio::test]
    async fn a_chunked_answer_is_decoded_with_its_trailers() {
        let (result, pool) = exchange(
            Method::GET,
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n",
            4,
        )
        .await;
        let (head, frames) = result.expect("answer");
        assert_eq!(head.status(), 200);
        assert_eq!(data(&frames), b"hello world");
        let trailers = frames
            .iter()
            .find_map(|frame| frame.trailers_ref())
            .expect("trailers");
        assert_eq!(trailers.get("x-sum").expect("x-sum"), "42");
        assert_eq!(pooled(&pool), 1);
    }

    #[tokio::test]
    async fn a_chunked_answer_with_a_length_too_loses_the_length_and_its_connection() {
        let (result, pool) = exchange(
            Method::GET,
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            64,
        )
        .await;
        let (head, frames) = result.expect("answer");
        assert!(head.headers().get("content-length").is_none());
        assert_eq!(data(&frames), b"hello");
        assert_eq!(pooled(&pool), 0);
    }

    #[tokio::test]
    async fn an_answer_without_length_runs_until_close_and_is_not_reused() {
        let (result, pool) = exchange(
            Method::GET,
            b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
            5,
        )
        .await;
        let (head, frames) = result.expect("answer");
        assert_eq!(head.version(), Version::HTTP_10);
        assert_eq!(data(&frames), b"until the end");
        assert_eq!(pooled(&pool), 0);
    }

    #[tokio::test]
    async fn head_answers_and_close_requests_are_framed_by_the_rules() {
        let (result, pool) = exchange(
            Method::HEAD,
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
            64,
        )
        .await;
        let (head, frames) = result.expect("answer");
        assert_eq!(
            head.headers().get("content-length").expect("length"),
            "1000"
        );
        assert!(frames.is_empty());
        assert_eq!(pooled(&pool), 1);

        let (result, pool) = exchange(
            Method::GET,
            b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
            64,
        )
        .await;
        assert!(result.expect("answer").1.is_empty());
        assert_eq!(pooled(&pool), 0, "the upstream asked to close");
    }

    #[tokio::test]
    async fn hop_by_hop_fields_are_read_and_left_out_of_the_head() {
        let (result, pool) = exchange(
            Method::GET,
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nX-App: 1\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            64,
        )
        .await;
        let (head, frames) = result.expect("answer");
        let names: Vec<&str> = head.headers().keys().map(|name| name.as_str()).collect();
        assert_eq!(names, ["x-app"]);
        assert_eq!(data(&frames), b"ok");
        assert_eq!(pooled(&pool), 1);

        // `Connection` naming a field of its own stays, so that the field is removed by it.
        let (result, pool) = exchange(
            Method::GET,
            b"HTTP/1.1 200 OK\r\nConnection: X-Private\r\nX-Private: 1\r\nContent-Length: 000002\r\n\r\nok",
            64,
        )
        .await;
        let (head, _) = result.expect("answer");
        assert_eq!(head.headers().get("connection").expect("kept"), "X-Private");
        assert_eq!(pooled(&pool), 1);

        // A `Connection` that is not text, or an HTTP/1.0 answer without `keep-alive`: the
        // connection is not reused.
        for answer in [
            &b"HTTP/1.1 200 OK\r\nConnection: \xffclose\r\nContent-Length: 2\r\n\r\nok"[..],
            b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ] {
            let (result, pool) = exchange(Method::GET, answer, 64).await;
            assert_eq!(data(&result.expect("answer").1), b"ok");
            assert_eq!(pooled(&pool), 0);
        }
    }

    #[tokio::test]
    async fn broken_answers_are_errors() {
        for (answer, why) in [
            (
                &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"[..],
                "conflicting",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                "Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n",
                "Content-Length",
            ),
            (b"SSH-2.0-OpenSSH\r\n\r\n", "malformed"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort",
                "mid-body",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "chunk size",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
                "CRLF",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nnot a field\r\n\r\n",
                "trailer",
            ),
            (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "upgrade"),
            (b"", "without an answer"),
        ] {
            let (result, pool) = exchange(Method::GET, answer, 7).await;
            let error = result.expect_err(why);
            assert!(error.contains(why), "{why}: {error}");
            assert_eq!(pooled(&pool), 0);
        }
    }

    #[test]
    fn chunk_sizes_are_hex_with_optional_extensions() {
        assert_eq!(chunk_size(b"1a\r\n"), Some(26));
        assert_eq!(chunk_size(b"A;name=value\r\n"), Some(10));
        assert_eq!(chunk_size(b"0\n"), Some(0));
        assert_eq!(chunk_size(b"\r\n"), None);
        assert_eq!(chunk_size(b"x1\r\n"), None);
        assert_eq!(
            chunk_size(b"10000000000000000\r\n"),
            None,
            "more than 64 bits"
        );
    }
}
