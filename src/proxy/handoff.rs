//! Requests for the admin's own host names (`admin.host`) on the proxy listener(s): handed
//! to a handler the composition root gives (the admin router), never routed to an app; its
//! answers stream back as they come (the live event stream never ends). The proxy does not know what answers them; it only tells the handler whether the
//! client came over HTTPS ([`crate::model::Https`]) and from which peer
//! ([`crate::model::Peer`]), as request extensions.
//!
//! It must not route, wake or forward anything, and must not trust a client's
//! `X-Forwarded-Proto` unless the peer is a trusted proxy.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;

use super::body::RequestBody;
use super::forward::ClientSide;

/// The body of a handed-off request's answer, streamed to the client as it comes.
pub type HandOffBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// The answer to a handed-off request, once its head is ready.
pub type HandOffFuture = Pin<Box<dyn Future<Output = Response<HandOffBody>> + Send>>;

/// What answers the requests for the hand-off's hosts.
pub type HandOffHandler = Arc<dyn Fn(Request<RequestBody>) -> HandOffFuture + Send + Sync>;

/// The host names answered by someone else than the apps, and who answers them.
#[derive(Clone)]
pub struct HandOff {
    /// The names (lowercased, no port, no trailing dot), as `admin.host` gives them.
    hosts: Vec<String>,
    /// Answers their requests.
    handler: HandOffHandler,
}

impl std::fmt::Debug for HandOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandOff")
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

impl HandOff {
    /// Requests for `hosts` go to `handler`.
    pub fn new(hosts: Vec<String>, handler: HandOffHandler) -> HandOff {
        HandOff { hosts, handler }
    }

    /// Whether the request is for one of the hosts (a request whose host cannot be read
    /// is not: the route phase answers it with its own error).
    pub fn wants<B>(&self, request: &Request<B>) -> bool {
        super::route::request_host(request)
            .is_ok_and(|host| self.hosts.iter().any(|name| *name == host))
    }

    /// Hands the request over, marked with how the client reached the engine.
    pub async fn handle(
        &self,
        mut request: Request<RequestBody>,
        client: &ClientSide,
    ) -> Response<HandOffBody> {
        let https = is_https(client, request.headers());
        request.extensions_mut().insert(crate::model::Https(https));
        request
            .extensions_mut()
            .insert(crate::model::Peer(client.peer));
        (self.handler)(request).await
    }
}

/// Whether the client came over HTTPS: the TLS listener, or a trusted proxy that says so
/// (the last `X-Forwarded-Proto` value, the one the nearest proxy wrote).
fn is_https(client: &ClientSide, headers: &http::HeaderMap) -> bool {
    if client.proto == "https" {
        return true;
    }
    client.trusted
        && headers
            .get_all("x-forwarded-proto")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .next_back()
            .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-proto", value.parse().expect("value"));
        }
        headers
    }

    #[test]
    fn https_is_believed_from_the_listener_or_a_trusted_proxy_only() {
        let peer = std::net::SocketAddr::from(([10, 0, 0, 1], 4000));
        let tls = ClientSide::new(peer, "https", false);
        let trusted = ClientSide::new(peer, "http", true);
        let anyone = ClientSide::new(peer, "http", false);
        assert!(is_https(&tls, &headers(&[])));
        assert!(is_https(&trusted, &headers(&["https"])));
        assert!(is_https(&trusted, &headers(&["http, HTTPS"])));
        assert!(!is_https(&trusted, &headers(&["https, http"])));
        assert!(!is_https(&trusted, &headers(&[])));
        assert!(!is_https(&anyone, &headers(&["https"])));
    }
}
