//! An OTLP trace collector for the tests: a real HTTP server on 127.0.0.1:0 taking
//! `POST /v1/traces` (HTTP/protobuf, HTTP/1.1) and the gRPC `TraceService/Export` method
//! (HTTP/2 by prior knowledge), decoding each `ExportTraceServiceRequest` with the message
//! types generated from the OpenTelemetry protocol's own `.proto` files (not the engine's
//! encoder). It can be told to fail its next exports, as a collector that is down.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;
use tokio::net::TcpListener;

/// One decoded span, with what the tests look at.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// 1 internal, 2 server, 3 client.
    pub kind: i32,
    pub start: u64,
    pub end: u64,
    pub attributes: HashMap<String, String>,
    /// 0 unset, 1 ok, 2 error.
    pub status_code: i32,
    pub status_message: String,
    pub flags: u32,
    /// The resource's attributes (`service.name`, ...).
    pub resource: HashMap<String, String>,
    /// The instrumentation scope's name.
    pub scope: String,
}

impl Span {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// What the collector received.
#[derive(Debug, Default)]
struct Received {
    spans: Vec<Span>,
    /// Each export's request head (to check the fields sent with it).
    heads: Vec<HeaderMap>,
    /// Export requests answered with a failure so far.
    refused: usize,
    /// Exports still to refuse.
    refuse_next: usize,
}

/// The collector.
#[derive(Clone)]
pub struct Collector {
    pub addr: SocketAddr,
    received: Arc<Mutex<Received>>,
}

impl Collector {
    pub async fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind collector");
        let addr = listener.local_addr().expect("collector addr");
        let received = Arc::new(Mutex::new(Received::default()));
        let shared = Arc::clone(&received);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let received = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let received = Arc::clone(&received);
                        async move { Ok::<_, Infallible>(answer(request, &received).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Collector { addr, received }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers the next `count` exports with a failure a client should retry (HTTP 503,
    /// gRPC UNAVAILABLE).
    pub fn refuse_next(&self, count: usize) {
        self.received.lock().unwrap().refuse_next = count;
    }

    pub fn refused(&self) -> usize {
        self.received.lock().unwrap().refused
    }

    pub fn spans(&self) -> Vec<Span> {
        self.received.lock().unwrap().spans.clone()
    }

    pub fn heads(&self) -> Vec<HeaderMap> {
        self.received.lock().unwrap().heads.clone()
    }

    /// The spans, once `done` holds of them (within 20 s, else the test fails with what
    /// was received).
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        for _ in 0..400 {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("collector: never got {what}; received: {:#?}", self.spans());
    }
}

/// An answer with no body worth reading (the tests' failures and refusals).
fn plain(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(body(vec![]));
    *response.status_mut() = status;
    response
}

type Body =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

fn body(frames: Vec<Frame<Bytes>>) -> Body {
    StreamBody::new(futures_util::stream::iter(
        frames.into_iter().map(Ok).collect::<Vec<_>>(),
    ))
}

async fn answer(request: Request<Incoming>, received: &Mutex<Received>) -> Response<Body> {
    let grpc = match request.uri().path() {
        "/v1/traces" => false,
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export" => true,
        _ => return plain(StatusCode::NOT_FOUND),
    };
    let (parts, incoming) = request.into_parts();
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let expected = if grpc {
        "application/grpc"
    } else {
        "application/x-protobuf"
    };
    if parts.method != http::Method::POST || content_type != expected {
        return plain(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    if grpc && parts.version != http::Version::HTTP_2 {
        return plain(StatusCode::HTTP_VERSION_NOT_SUPPORTED);
    }
    let Ok(collected) = incoming.collect().await else {
        return plain(StatusCode::BAD_REQUEST);
    };
    let bytes = collected.to_bytes();
    {
        let mut received = received.lock().unwrap();
        received.heads.push(parts.headers.clone());
        if received.refuse_next > 0 {
            received.refuse_next -= 1;
            received.refused += 1;
            return if grpc {
                grpc_answer(14, "collector down")
            } else {
                plain(StatusCode::SERVICE_UNAVAILABLE)
            };
        }
    }
    let encoding = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let message = if grpc {
        // One message: a compressed flag (1 only with `grpc-encoding`), a 4-byte
        // big-endian length, the message.
        if bytes.len() < 5 || bytes[0] > 1 {
            return grpc_answer(3, "bad frame");
        }
        let length = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        if bytes.len() != 5 + length {
            return grpc_answer(3, "bad frame length");
        }
        match (bytes[0], encoding("grpc-encoding").as_deref()) {
            (0, _) => bytes.slice(5..),
            (1, Some("gzip")) => match gunzip(&bytes[5..]) {
                Some(message) => message,
                None => return grpc_answer(13, "bad gzip"),
            },
            // Compressed with no (or an unknown) encoding named: an error by the protocol.
            (_, Some(other)) => return grpc_answer(12, &format!("{other} not supported")),
            _ => return grpc_answer(13, "compressed message without grpc-encoding"),
        }
    } else {
        match encoding("content-encoding").as_deref() {
            None | Some("identity") => bytes,
            Some("gzip") => match gunzip(&bytes) {
                Some(message) => message,
                None => return plain(StatusCode::BAD_REQUEST),
            },
            Some(_) => return plain(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        }
    };
    let request = match ExportTraceServiceRequest::decode(message) {
        Ok(request) => request,
        Err(error) => {
            eprintln!("collector: undecodable export: {error}");
            return if grpc {
                grpc_answer(3, "undecodable")
            } else {
                plain(StatusCode::BAD_REQUEST)
            };
        }
    };
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|resource| attributes(&resource.attributes))
            .unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            let scope = scope_spans.scope.map(|s| s.name).unwrap_or_default();
            for span in scope_spans.spans {
                let status = span.status.unwrap_or_default();
                spans.push(Span {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    kind: span.kind,
                    start: span.start_time_unix_nano,
                    end: span.end_time_unix_nano,
                    attributes: attributes(&span.attributes),
                    status_code: status.code,
                    status_message: status.message,
                    flags: span.flags,
                    resource: resource.clone(),
                    scope: scope.clone(),
                });
            }
        }
    }
    received.lock().unwrap().spans.extend(spans);
    if grpc {
        grpc_answer(0, "")
    } else {
        // An empty ExportTraceServiceResponse.
        let mut response = Response::new(body(vec![Frame::data(Bytes::new())]));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            "application/x-protobuf".parse().unwrap(),
        );
        response
    }
}

/// A gzip body decompressed, `None` when it is not gzip.
fn gunzip(compressed: &[u8]) -> Option<Bytes> {
    use std::io::Read as _;
    let mut message = Vec::new();
    flate2::read::GzDecoder::new(compressed)
        .read_to_end(&mut message)
        .ok()?;
    Some(Bytes::from(message))
}

/// A gRPC answer: an empty response message (when OK) and the status in trailers.
fn grpc_answer(code: u32, message: &str) -> Response<Body> {
    let mut frames = Vec::new();
    if code == 0 {
        frames.push(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0])));
    }
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", code.to_string().parse().unwrap());
    if !message.is_empty() {
        trailers.insert("grpc-message", message.parse().unwrap());
    }
    frames.push(Frame::trailers(trailers));
    let mut response = Response::new(body(frames));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        "application/grpc".parse().unwrap(),
    );
    response
}

fn attributes(
    list: &[opentelemetry_proto::tonic::common::v1::KeyValue],
) -> HashMap<String, String> {
    list.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(text)) => text.clone(),
                Some(any_value::Value::IntValue(n)) => n.to_string(),
                Some(any_value::Value::BoolValue(b)) => b.to_string(),
                Some(any_value::Value::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
