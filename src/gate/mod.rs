//! The gate: the engine as the decision maker behind a proxy that teams already run (nginx,
//! Caddy, Traefik, or Sablier's plugins for them). That proxy asks before it forwards; the
//! gate routes the request it describes exactly as the proxy phases would
//! ([`crate::proxy::Proxy::admit`]: spaces, rules, aliases, linked apps, activity rules,
//! schedules, plans), counts the activity, wakes what sleeps, and answers instead of
//! forwarding.
//!
//! * [`forward_auth`]: `/forward-auth` and its variants, for nginx's `auth_request`,
//!   Caddy's `forward_auth` and Traefik's `forwardAuth`.
//! * [`strategies`]: `/api/strategies/{dynamic,blocking,poke}`, the API of Sablier that its
//!   reverse-proxy plugins call.
//!
//! Served on the admin listener, under the `admin.host` names, and on `gate.listen`; only
//! to peers in `proxy.trusted_proxies` or callers with `gate.token`. It never forwards a
//! request, never reads a request body, and decides nothing the lifecycle does not.

pub mod forward_auth;
pub mod settings;
pub mod strategies;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http::StatusCode;
use http::request::Parts;
use tokio::net::TcpListener;

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

/// The gate's endpoints that are on (an empty router when none is).
pub fn router(gate: Arc<Gate>) -> Router {
    let mut router = Router::new();
    if gate.settings.forward_auth.is_some() {
        router = router
            .route("/forward-auth", any(forward_auth::check))
            .route("/forward-auth/nginx", any(forward_auth::nginx))
            .route("/forward-auth/page", any(forward_auth::page))
            .route("/forward-auth/keepalive", any(forward_auth::keepalive));
    }
    if gate.settings.sablier.is_some() {
        router = router
            .route("/api/strategies/dynamic", get(strategies::dynamic))
            .route("/api/strategies/blocking", get(strategies::blocking))
            .route("/api/strategies/poke", get(strategies::poke));
    }
    router
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&gate),
            admit_caller,
        ))
        .with_state(gate)
}

/// Serves the gate's endpoints alone on `listener` (`gate.listen`) until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    gate: Arc<Gate>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(gate).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// The peer a request came from: set by the proxy on a handed-over request, or by the
/// listener's connection info.
pub(crate) fn peer(extensions: &http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<crate::model::Peer>()
        .map(|peer| peer.0)
        .or_else(|| {
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0)
        })
}

/// Lets in trusted peers and holders of the token; everyone else gets 403 (the answer's
/// shape is the endpoint's: RFC 7807 on the Sablier-compatible paths).
async fn admit_caller(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let trusted = peer(request.extensions()).is_some_and(|peer| gate.trusted.contains(peer.ip()));
    if trusted || has_token(gate.settings.token.as_ref(), request.headers()) {
        return next.run(request).await;
    }
    let message = "only the proxies in proxy.trusted_proxies, or callers with gate.token, \
                   may call the gate";
    if request.uri().path().starts_with("/api/") {
        return strategies::Problem::new(StatusCode::FORBIDDEN, "forbidden", message)
            .into_response();
    }
    crate::proxy::ProxyError::Forbidden(message.to_owned())
        .page(false)
        .map(axum::body::Body::new)
}

/// Whether the request carries the gate's token (`Authorization: Bearer`).
fn has_token(token: Option<&Secret>, headers: &http::HeaderMap) -> bool {
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
pub(crate) fn query(uri: &http::Uri) -> Result<Vec<(String, String)>, String> {
    if uri.query().is_none() {
        return Ok(Vec::new());
    }
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|query| query.0)
        .map_err(|error| error.body_text())
}

/// The client of a request the gate is asked about: behind trusted proxies, the rightmost
/// untrusted `X-Forwarded-For` address; else the peer.
pub(crate) fn client_ip(gate: &Gate, request: &Parts) -> IpAddr {
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
