//! The admin API, dashboard and metrics, on their own listener (`admin.listen`), and on the
//! proxy listeners for the host names of `admin.host`.
//!
//! [`router`] builds every route over an [`AdminState`], so tests drive it with `oneshot`
//! and the engine serves it with [`serve`] (its own listener) and [`answer`] (the requests
//! the proxy hands over, marked [`crate::model::Https`] when they came over HTTPS: the
//! login cookie is then `Secure`). Bearer-token auth (constant-time comparison) on
//! everything but `/health`, `/ready`, the OpenAPI document and the login page; the
//! dashboard keeps the token in an HttpOnly, SameSite=Strict cookie, and its forms carry a
//! token bound to it. Without a token, [`guard`] refuses foreign Host names and writes from
//! other origins' pages. Errors are [`ApiError`]s, one JSON shape:
//! `{"error": {"code", "message"}}`.
//!
//! It reads the lifecycle and the store, and acts only through the lifecycle's functions
//! (the same ones requests and the scheduler use); it never calls a provider itself.

pub mod api;
pub mod config;
pub mod dashboard;
pub mod guard;
pub mod settings;
pub mod spaces;
pub mod stream;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::lifecycle::Lifecycle;
use crate::secret::{Secret, constant_time_eq};
use crate::store::Store;

/// Name of the dashboard's session cookie (it holds the token).
pub const COOKIE: &str = "paastis_token";

/// What the handlers work with.
#[derive(Clone)]
pub struct AdminState {
    /// Apps, routes, wakes, stops, pins, metrics.
    pub lifecycle: Arc<Lifecycle>,
    /// The durable event history.
    pub store: Arc<dyn Store>,
    /// Base domains, for the apps' hosts.
    pub domains: Arc<Vec<String>>,
    /// The token every call needs; `None`: open (loopback only, checked by the config).
    pub token: Option<Secret>,
    /// Whether `/metrics` needs the token.
    pub metrics_auth: bool,
    /// `admin.host`: names the proxy hands to this router, which the host guard accepts
    /// like loopback names.
    pub hosts: Arc<Vec<String>>,
    /// Prices and carbon figures for `/api/v1/savings` and the dashboard.
    pub savings: Arc<crate::savings::SavingsConfig>,
    /// The space this state is scoped to (`lifecycle`, `domains` are its own); the
    /// router's state is the default space's, and each request gets its caller's.
    pub space: String,
    /// Who the request is (the router's own state: the admin).
    pub caller: Caller,
    /// Every space: what requests are scoped to, and the spaces API.
    pub spaces: Arc<crate::spaces::Spaces>,
    /// The running configuration's revision, its reloads, and the reload itself.
    pub config: Arc<config::ConfigStatus>,
    /// The live event streams' settings, and their end when the engine stops.
    pub streams: Arc<stream::Streams>,
}

/// Who is calling: the admin (every space) or a space's token (that space only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The admin token (or no token configured).
    Admin,
    /// A token of the space of this id.
    Space(String),
}

impl AdminState {
    /// Who a token is: the admin, a space, or nobody.
    pub fn caller_of(&self, given: &str) -> Option<Caller> {
        let given = given.trim().as_bytes();
        if let Some(token) = &self.token
            && constant_time_eq(given, token.expose().as_bytes())
        {
            return Some(Caller::Admin);
        }
        // Space tokens are kept as hashes: the one given is hashed once, and every hash
        // is compared (no early exit), so timing tells nothing of which.
        let hash = crate::secret::seal::token_hash(&String::from_utf8_lossy(given));
        let mut found = None;
        for space in self.spaces.access().iter() {
            for token in &space.tokens {
                if constant_time_eq(&hash, token) && found.is_none() {
                    found = Some(Caller::Space(space.id.clone()));
                }
            }
        }
        found.or(self.token.is_none().then_some(Caller::Admin))
    }

    /// Who the request's bearer token is, when it is a token (not the open listener's
    /// default).
    pub fn bearer(&self, headers: &HeaderMap) -> Option<Caller> {
        headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(|value| value.strip_prefix("Bearer "))
            .filter_map(|given| self.caller_of(given))
            .find(|caller| self.token.is_some() || *caller != Caller::Admin)
    }

    /// Who the request is, from its bearer token (or, with `cookie`, the dashboard's).
    pub fn caller(&self, headers: &HeaderMap, cookie: bool) -> Option<Caller> {
        if let Some(caller) = self.bearer(headers) {
            return Some(caller);
        }
        if cookie
            && let Some(given) = cookie_value(headers, COOKIE)
            && let Some(caller) = self.caller_of(given)
            && (self.token.is_some() || caller != Caller::Admin)
        {
            return Some(caller);
        }
        self.token.is_none().then_some(Caller::Admin)
    }

    /// This state scoped to one space: the `space` query parameter's (default: the
    /// caller's own, `default` for the admin). 401 without a valid token; 404 for a space
    /// that does not exist or is not the caller's (never 403: other spaces are not there).
    pub fn scoped(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        cookie: bool,
    ) -> Result<AdminState, ApiError> {
        let caller = self
            .caller(headers, cookie)
            .ok_or_else(ApiError::unauthorized)?;
        // Space ids are plain DNS labels: taken as written (an encoded one names no space).
        let asked = query.and_then(|query| {
            query
                .split('&')
                .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
                .find(|(key, _)| *key == "space")
                .map(|(_, value)| value.to_owned())
        });
        let spaces = self.spaces.access();
        let wanted = match (&caller, asked.as_deref()) {
            (Caller::Space(own), None) => own.as_str(),
            (Caller::Space(own), Some(asked)) if asked == own => own.as_str(),
            (Caller::Space(_), Some(asked)) => return Err(ApiError::unknown_space(asked)),
            (Caller::Admin, None) => crate::model::DEFAULT_SPACE,
            (Caller::Admin, Some(asked)) => asked,
        };
        let space = spaces
            .iter()
            .find(|space| space.id == wanted)
            .ok_or_else(|| ApiError::unknown_space(wanted))?;
        let mut scoped = self.clone();
        scoped.lifecycle = Arc::clone(&space.lifecycle);
        scoped.domains = Arc::clone(&space.domains);
        scoped.space = space.id.clone();
        scoped.caller = caller;
        Ok(scoped)
    }
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("token", &self.token)
            .field("metrics_auth", &self.metrics_auth)
            .finish_non_exhaustive()
    }
}

/// An error answer of the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// A stable machine-readable code (`unauthorized`, `unknown_app`, ...).
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// Each problem of a refused document, with its path (`invalid_space`).
    pub errors: Vec<FieldError>,
}

/// One problem of a refused document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Where, e.g. `providers[0].token` (empty: the document itself).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// The JSON body of an error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error's code and message.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `unauthorized`, `unknown_app`, `unknown_space`,
    /// `bad_request`, `conflict`, `plan_limit`, `unavailable`, `not_found`, `admin_only`,
    /// `not_hosted`, `from_config`, `invalid_space`, `unknown_token`, `forbidden_host`,
    /// `cross_site`, `bad_form_token`.
    pub code: String,
    /// For people.
    pub message: String,
    /// Each problem of a refused document, with its path (`invalid_space` only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl ApiError {
    /// 400 with this message.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
            errors: Vec::new(),
        }
    }

    /// 404: no such app.
    pub fn unknown_app(provider: &str, app: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "unknown_app",
            message: format!("no app `{app}` on provider `{provider}`"),
            errors: Vec::new(),
        }
    }

    /// 401: missing or wrong token.
    pub fn unauthorized() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "missing or invalid token (send Authorization: Bearer <admin.token>)"
                .to_owned(),
            errors: Vec::new(),
        }
    }

    /// 404: no such space (or not the caller's: the same answer).
    pub fn unknown_space(space: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "unknown_space",
            message: format!("no space `{space}`"),
            errors: Vec::new(),
        }
    }

    /// 409 with this message.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::CONFLICT,
            code: "conflict",
            message: message.into(),
            errors: Vec::new(),
        }
    }

    /// 429: the plan allows no more running apps.
    pub fn plan_limit(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "plan_limit",
            message: message.into(),
            errors: Vec::new(),
        }
    }

    /// The answer for a failed wake: 429 beyond the plan, else 503.
    pub fn wake(app: &str, error: &crate::lifecycle::WakeError) -> ApiError {
        match error {
            crate::lifecycle::WakeError::Limit(_) => {
                ApiError::plan_limit(format!("{app}: {error}"))
            }
            _ => ApiError::unavailable(format!("{app}: {error}")),
        }
    }

    /// 503 with this message.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: message.into(),
            errors: Vec::new(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                errors: self.errors,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"paastis\""),
            );
        }
        response
    }
}

/// Query parameters, refused as an [`ApiError`] (JSON, 400) when they do not parse.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// Path parameters, refused as an [`ApiError`] (JSON, 400) when they do not parse.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| ApiPath(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}
/// Every route of the admin listener.
pub fn router(state: AdminState) -> Router {
    let protected = Router::new()
        .route("/api/v1/apps", get(api::apps_index))
        .route("/api/v1/apps/{provider}/{app}", get(api::apps_show))
        .route("/api/v1/apps/{provider}/{app}/start", post(api::apps_start))
        .route("/api/v1/apps/{provider}/{app}/stop", post(api::apps_stop))
        .route(
            "/api/v1/apps/{provider}/{app}/pin",
            put(api::apps_pin).delete(api::apps_unpin),
        )
        .route("/api/v1/events", get(api::events_index))
        .route("/api/v1/events/stream", get(stream::events_stream))
        .route("/api/v1/config", get(config::config_show))
        .route("/api/v1/config/reload", post(config::config_reload))
        .route("/api/v1/config/diff", post(config::config_diff))
        .route("/api/v1/providers", get(api::providers_index))
        .route("/api/v1/webhooks", get(webhooks::webhooks_index))
        .route(
            "/api/v1/webhooks/{id}/deliveries",
            get(webhooks::webhooks_deliveries),
        )
        .route("/api/v1/savings", get(api::savings_index))
        .route(
            "/api/v1/spaces",
            get(spaces::spaces_index).post(spaces::spaces_create),
        )
        .route(
            "/api/v1/spaces/{id}",
            get(spaces::spaces_show)
                .patch(spaces::spaces_update)
                .delete(spaces::spaces_delete),
        )
        .route("/api/v1/spaces/{id}/tokens", post(spaces::tokens_create))
        .route(
            "/api/v1/spaces/{id}/tokens/{token}",
            axum::routing::delete(spaces::tokens_delete),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ));
    Router::new()
        .route("/health", get(api::health))
        .route("/ready", get(api::ready))
        .route("/metrics", get(api::metrics))
        .route("/api/openapi.json", get(api::openapi))
        .route("/", get(dashboard::page))
        .route("/login", get(dashboard::login_page).post(dashboard::login))
        .route("/logout", post(dashboard::logout))
        .route(
            "/dashboard/apps/{provider}/{app}/{action}",
            post(dashboard::act),
        )
        .route("/dashboard/events", get(dashboard::events))
        .merge(protected)
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        message: "no such endpoint (see /api/openapi.json)".to_owned(),
        errors: Vec::new(),
    }
}

/// Refuses a request without a valid token, and hands the handlers the state of the
/// space it may act on (see [`AdminState::scoped`]): every protected route is scoped here,
/// so none can forget it.
async fn require_token(
    State(state): State<AdminState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let scoped = state.scoped(request.headers(), request.uri().query(), false)?;
    request.extensions_mut().insert(scoped);
    Ok(next.run(request).await)
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// One request through `router`, its answer streamed back as it comes (the live event
/// stream never ends): how the proxy's `admin.host` requests are answered.
pub async fn answer<B>(
    mut router: Router,
    request: axum::http::Request<B>,
) -> axum::http::Response<http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, axum::BoxError>>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    use http_body_util::BodyExt as _;
    use tower_service::Service as _;
    let response = match router.call(request.map(axum::body::Body::new)).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    response.map(|body| body.map_err(Into::into).boxed_unsync())
}

/// Serves `router` (the admin router, with what the composition root adds to it) on
/// `listener` until `shutdown` completes; handlers can read each peer's address
/// (`ConnectInfo`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret-and-more", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
        assert!(!constant_time_eq(b"sec", b"secret"));
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            header::HeaderValue::from_static("a=1; paastis_token=tok; b=2"),
        );
        assert_eq!(cookie_value(&headers, COOKIE), Some("tok"));
        assert_eq!(cookie_value(&headers, "c"), None);
    }
}
