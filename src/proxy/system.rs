//! The original engine's "system API", on the proxy port, for its users' scripts: requests
//! with `PaastisProxyTarget: system` and the right `PaastisProxySystemApiToken` reach
//! `GET /apps`, `DELETE /apps` and `GET /events`, answered with the original JSON field
//! names. Off unless `admin.system_api` is enabled (then a request without the header is
//! proxied as any other). A wrong or missing token gets 401 and nothing else. It belongs to
//! the default space: it lists, clears and reports that space's apps only.
//!
//! It reads the lifecycle and the store; `DELETE /apps` goes through the lifecycle.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::events::{EventKind, WakeCause};
use crate::lifecycle::Lifecycle;
use crate::model::State;
use crate::secret::Secret;
use crate::store::{EventQuery, Store};

/// The header that sends a request to the system API.
pub const TARGET_HEADER: &str = "paastisproxytarget";

/// The header carrying the system API's token.
pub const TOKEN_HEADER: &str = "paastisproxysystemapitoken";

/// Whether a request is meant for the system API.
pub fn is_system<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(TARGET_HEADER)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"system"))
}

/// What the system API needs.
#[derive(Clone)]
pub struct SystemApi {
    /// Its token.
    pub token: Secret,
    /// Apps and the registry.
    pub lifecycle: Arc<Lifecycle>,
    /// The event history.
    pub store: Arc<dyn Store>,
}

impl std::fmt::Debug for SystemApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemApi")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

fn json_response(status: StatusCode, body: Option<Value>) -> Response<Full<Bytes>> {
    let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl SystemApi {
    /// Answers one system API request.
    pub async fn handle<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        let given = request
            .headers()
            .get(TOKEN_HEADER)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if !crate::secret::constant_time_eq(given, self.token.expose().as_bytes()) {
            return json_response(
                StatusCode::UNAUTHORIZED,
                Some(json!({"error": {"code": "unauthorized",
                    "message": "Wrong or missing Paastis proxy system API token"}})),
            );
        }
        match (request.method(), request.uri().path()) {
            (&Method::GET, "/apps") => json_response(StatusCode::OK, Some(self.apps())),
            (&Method::DELETE, "/apps") => {
                self.lifecycle.clear().await;
                json_response(StatusCode::NO_CONTENT, None)
            }
            (&Method::GET, "/events") => match self.events().await {
                Ok(events) => json_response(StatusCode::OK, Some(events)),
                Err(message) => json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(json!({"error": {"code": "unavailable", "message": message}})),
                ),
            },
            _ => json_response(
                StatusCode::NOT_FOUND,
                Some(json!({"error": {"code": "not_found",
                    "message": "the system API has GET /apps, DELETE /apps and GET /events"}})),
            ),
        }
    }

    /// Provider id -> platform (`scalingo`), as the original named providers.
    fn provider_kinds(&self) -> std::collections::HashMap<String, &'static str> {
        self.lifecycle
            .providers()
            .iter()
            .map(|p| (p.id().to_owned(), p.kind()))
            .collect()
    }

    /// `GET /apps`: every managed app, as the original listed them.
    fn apps(&self) -> Value {
        let clock = self.lifecycle.clock();
        let kinds = self.provider_kinds();
        let apps: Vec<Value> = self
            .lifecycle
            .apps()
            .iter()
            .map(|app| {
                let status = match app.state() {
                    State::Awake => "running",
                    State::Waking => "starting",
                    State::Stopping => "stopping",
                    State::Asleep => "stopped",
                    State::Failed => "crashed",
                };
                json!({
                    "id": app.key.name.as_ref(),
                    "name": app.key.name.as_ref(),
                    "status": status,
                    "url": app.upstream().map(|u| u.to_string()),
                    "region": Value::Null,
                    "created_at": Value::Null,
                    "updated_at": Value::Null,
                    "last_deployed_at": Value::Null,
                    "git_url": Value::Null,
                    "force_https": Value::Null,
                    "sticky_session": Value::Null,
                    "is_monitored": true,
                    "provider": kinds.get(app.provider_id()).copied().unwrap_or("unknown"),
                    "max_idle_time": app.conf().policy.max_idle.map(|d| d.as_secs() / 60),
                    "last_accessed_at": crate::model::rfc3339(clock.wall(app.last_activity_ms())),
                })
            })
            .collect();
        Value::Array(apps)
    }

    /// `GET /events`: the latest events of its own space (the default one), oldest first,
    /// as `{name, appKey, occurredAt}`; other spaces' are none of its business.
    async fn events(&self) -> Result<Value, String> {
        let page = self
            .store
            .events(&EventQuery {
                space: Some(self.lifecycle.space().to_owned()),
                limit: Some(crate::store::MAX_EVENTS_LIMIT),
                ..EventQuery::default()
            })
            .await
            .map_err(|error| error.to_string())?;
        let kinds = self.provider_kinds();
        let mut events: Vec<Value> = page
            .events
            .iter()
            .filter_map(|stored| {
                let event = &stored.event;
                let name = match &event.kind {
                    EventKind::Discovered { .. } | EventKind::Registered => "app_detected",
                    EventKind::WakeRequested {
                        cause: WakeCause::Request { .. },
                    } => "app_accessed",
                    EventKind::Started { .. } => "app_restarted",
                    EventKind::Stopped { .. } => "app_paused",
                    EventKind::Deleted => "app_removed",
                    _ => return None,
                };
                let kind = kinds
                    .get(event.app.provider.as_ref())
                    .copied()
                    .unwrap_or("");
                Some(json!({
                    "name": name,
                    "appKey": format!("{kind}:{}:{}", event.app.provider, event.app.name),
                    "occurredAt": crate::model::rfc3339(event.at),
                }))
            })
            .collect();
        events.reverse();
        Ok(Value::Array(events))
    }
}
