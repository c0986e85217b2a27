//! The gate: the engine as the decision maker behind a proxy that teams already run (nginx,
//! Caddy, Traefik, or Sablier's plugins for them). That proxy asks before it forwards; the
//! gate routes the request it describes exactly as the proxy phases would
//! ([`crate::proxy::Proxy::admit`]: spaces, rules, aliases, linked apps, activity rules,
//! schedules, plans), counts the activity, wakes what sleeps, and answers instead of
//! forwarding.
//!
//! * [`caller`]: the gate's state, and who asks (peer, token, the client behind them).
//! * [`forward_auth`]: `/forward-auth` and its variants, for nginx's `auth_request`,
//!   Caddy's `forward_auth` and Traefik's `forwardAuth`.
//! * [`strategies`]: `/api/strategies/{dynamic,blocking,poke}`, the API of Sablier that its
//!   reverse-proxy plugins call.
//!
//! Served on the admin listener, under the `admin.host` names, and on `gate.listen`; only
//! to peers in `proxy.trusted_proxies` or callers with `gate.token`. It never forwards a
//! request, never reads a request body, and decides nothing the lifecycle does not.

pub mod caller;
pub mod forward_auth;
pub mod settings;
pub mod strategies;

pub use caller::Gate;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http::StatusCode;
use tokio::net::TcpListener;

use caller::{has_token, peer};

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

/// Serves the gate's endpoints (`router`, from [`router`]) alone on `listener`
/// (`gate.listen`) until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
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
