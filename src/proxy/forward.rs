//! Phase **forward**: streams the request to the upstream and the response back, through a
//! pool of upstream connections. Hop-by-hop headers are removed both ways; `X-Forwarded-*`
//! and `Via` are set; `Host` becomes the upstream's (PaaS routers route by Host). Bodies are
//! never buffered. This module does not decide where to forward: it is given the upstream.

use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::lifecycle::InFlight;
use crate::providers::Upstream;

/// Idle upstream connections are closed before typical upstream keep-alive timeouts (Node's
/// is 5 s), so a reused connection is rarely one the upstream is closing.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// Headers that concern one connection only (RFC 9110 7.6.1), never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
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

/// What the forward phase knows about the client side of a request.
#[derive(Debug, Clone, Copy)]
pub struct ClientSide<'a> {
    /// The client's address.
    pub ip: IpAddr,
    /// `http` or `https`: how the client reached the engine.
    pub proto: &'static str,
    /// The Host the client asked for (lowercased, without port).
    pub host: &'a str,
}

/// Why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No connection could be made to the upstream.
    #[error("cannot connect to the upstream: {0}")]
    Connect(String),
    /// The connection was made but the exchange failed (reset, bad response, ...).
    #[error("the upstream failed: {0}")]
    Exchange(String),
}

/// The upstream connection pool.
#[derive(Debug, Clone)]
pub struct Forwarder {
    /// Pooled HTTP/1.1 client.
    client: Client<HttpConnector, Incoming>,
}

impl Default for Forwarder {
    fn default() -> Self {
        Self::new()
    }
}

impl Forwarder {
    /// A forwarder with its own connection pool.
    pub fn new() -> Forwarder {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Forwarder { client }
    }

    /// Sends the request to `upstream` and returns its response, headers cleaned.
    pub async fn forward(
        &self,
        request: Request<Incoming>,
        upstream: &Upstream,
        client: ClientSide<'_>,
    ) -> Result<Response<Incoming>, ForwardError> {
        let (mut parts, body) = request.into_parts();
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        parts.uri = Uri::builder()
            .scheme(upstream.scheme.clone())
            .authority(upstream.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|error| ForwardError::Exchange(format!("cannot build the target: {error}")))?;
        let via = via_value(parts.version);
        parts.version = Version::HTTP_11;

        let headers = &mut parts.headers;
        remove_hop_by_hop(headers);
        headers.remove(header::UPGRADE);
        append_forwarded_for(headers, client.ip);
        if !matches!(
            headers.get(&X_FORWARDED_PROTO).map(HeaderValue::as_bytes),
            Some(b"http" | b"https")
        ) {
            headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(client.proto));
        }
        if let Ok(host) = HeaderValue::from_str(client.host) {
            headers.insert(X_FORWARDED_HOST, host);
        }
        headers.append(header::VIA, via);
        if let Ok(host) = HeaderValue::from_str(upstream.authority.as_str()) {
            headers.insert(header::HOST, host);
        }

        let mut response = self
            .client
            .request(Request::from_parts(parts, body))
            .await
            .map_err(|error| {
                let detail = error_chain(&error);
                if error.is_connect() {
                    ForwardError::Connect(detail)
                } else {
                    ForwardError::Exchange(detail)
                }
            })?;
        let via = via_value(response.version());
        let headers = response.headers_mut();
        remove_hop_by_hop(headers);
        headers.remove(header::UPGRADE);
        headers.append(header::VIA, via);
        Ok(response)
    }
}

fn via_value(version: Version) -> HeaderValue {
    HeaderValue::from_static(match version {
        Version::HTTP_2 => "2 paastis",
        Version::HTTP_10 => "1.0 paastis",
        _ => "1.1 paastis",
    })
}

/// Removes hop-by-hop headers, including those named in `Connection`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
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

fn append_forwarded_for(headers: &mut HeaderMap, ip: IpAddr) {
    let ip = ip.to_string();
    let value = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.trim().is_empty() => format!("{existing}, {ip}"),
        _ => ip,
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(X_FORWARDED_FOR, value);
    }
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

/// An upstream response body that keeps its request counted as in progress until the body
/// is done or dropped (so an app is never stopped under a response being streamed).
#[derive(Debug)]
pub struct TrackedBody {
    /// The upstream's body, streamed as it comes.
    inner: Incoming,
    /// Released with the body.
    _in_flight: InFlight,
}

impl TrackedBody {
    /// Wraps an upstream body.
    pub fn new(inner: Incoming, in_flight: InFlight) -> TrackedBody {
        TrackedBody {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
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
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert_eq!(headers["x-kept"], "yes");
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut headers = HeaderMap::new();
        append_forwarded_for(&mut headers, IpAddr::from([10, 0, 0, 1]));
        assert_eq!(headers[X_FORWARDED_FOR], "10.0.0.1");
        append_forwarded_for(&mut headers, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(headers[X_FORWARDED_FOR], "10.0.0.1, 127.0.0.1");
    }
}
