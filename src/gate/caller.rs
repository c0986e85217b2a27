//! Who is asking the gate, and about what: its shared state ([`Gate`]), the caller's peer
//! and token, the client behind the caller's proxy, the query. It decides nothing about
//! apps.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use http::request::Parts;

use super::settings;
use crate::proxy::Proxy;
use crate::proxy::forwarded::TrustedProxies;
use crate::secret::{Secret, constant_time_eq};

/// What the gate's handlers work with.
#[derive(Debug)]
pub struct Gate {
    /// Routes and admits requests as the proxy does (and holds every space's apps).
    pub proxy: Arc<Proxy>,
    /// `gate`: which endpoints, their defaults.
    pub settings: settings::Gate,
    /// Peers that may call without a token (`proxy.trusted_proxies`), whose
    /// `X-Forwarded-For` is believed.
    pub trusted: TrustedProxies,
}

impl Gate {
    /// The gate over this proxy's routes.
    pub fn new(proxy: Arc<Proxy>, settings: settings::Gate, trusted: TrustedProxies) -> Gate {
        Gate {
            proxy,
            settings,
            trusted,
        }
    }
}

/// The peer a request came from: set by the proxy on a handed-over request, or by the
/// listener's connection info.
pub(super) fn peer(extensions: &http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<crate::model::Peer>()
        .map(|peer| peer.0)
        .or_else(|| {
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0)
        })
}

/// Whether the request carries the gate's token (`Authorization: Bearer`).
pub(super) fn has_token(token: Option<&Secret>, headers: &http::HeaderMap) -> bool {
    let Some(token) = token else {
        return false;
    };
    headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| value.strip_prefix("Bearer "))
        .any(|given| constant_time_eq(given.trim().as_bytes(), token.expose().as_bytes()))
}

/// The query's pairs, decoded.
pub(super) fn query(uri: &http::Uri) -> Result<Vec<(String, String)>, String> {
    if uri.query().is_none() {
        return Ok(Vec::new());
    }
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|query| query.0)
        .map_err(|error| error.body_text())
}

/// The client of a request the gate is asked about: behind trusted proxies, the rightmost
/// untrusted `X-Forwarded-For` address; else the peer.
pub(super) fn client_ip(gate: &Gate, request: &Parts) -> IpAddr {
    let peer = peer(&request.extensions).map_or(IpAddr::from([127, 0, 0, 1]), |peer| peer.ip());
    gate.trusted.client_ip(peer, &request.headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_compared_whole() {
        let token = Secret::new("gate-token-0123");
        let mut headers = http::HeaderMap::new();
        assert!(!has_token(Some(&token), &headers));
        headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer gate-token-012"),
        );
        assert!(!has_token(Some(&token), &headers));
        headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer gate-token-0123"),
        );
        assert!(has_token(Some(&token), &headers));
        assert!(!has_token(None, &headers));
    }
}
