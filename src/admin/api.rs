//! The JSON endpoints of the admin API, their views, and the OpenAPI document generated from
//! them (`/api/openapi.json`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::{AdminState, ApiError, ApiPath as Path, ApiQuery as Query, ErrorBody};
use crate::events::{StopCause, WakeCause};
use crate::lifecycle::App;
use crate::model::State as AppState;
use crate::model::Strategy;
use crate::model::rfc3339;
use crate::store::EventQuery;
use crate::wire::{
    AppList, AppView, CallCount, EventList, EventView, PolicyView, ProviderList, ProviderView,
    WakeView,
};

/// The OpenAPI document of the admin API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Paastis admin API",
        description = "See and steer the apps Paastis puts to sleep and wakes up.",
        license(name = "AGPL-3.0-or-later")
    ),
    paths(
        health, ready, metrics, apps_index, apps_show, apps_start, apps_stop, apps_pin,
        apps_unpin, events_index, super::stream::events_stream, providers_index, savings_index,
        super::spaces::spaces_index, super::spaces::spaces_create, super::spaces::spaces_show,
        super::spaces::spaces_update, super::spaces::spaces_delete,
        super::spaces::tokens_create, super::spaces::tokens_delete,
        super::config::config_show, super::config::config_reload, super::config::config_diff,
        super::webhooks::webhooks_index, super::webhooks::webhooks_deliveries
    ),
    components(schemas(
        ErrorBody, HealthView, ReadyView, CheckView, AppList, AppView, PolicyView, WakeView,
        PinRequest, EventList, EventView, super::stream::StreamMessage, ProviderList, ProviderView, CallCount,
        crate::savings::Report, crate::savings::Saved, crate::savings::Money,
        super::FieldError, crate::wire::SpaceView, crate::wire::SpaceProviderView,
        crate::wire::TokenView, crate::wire::SpaceList, crate::wire::IssuedTokenView,
        crate::wire::CreatedSpace, crate::wire::ConfigView, crate::wire::ReloadAttemptView,
        crate::wire::ReloadView, crate::wire::WebhookList, crate::wire::WebhookView,
        crate::wire::DeliveryList, crate::wire::DeliveryView
    )),
    modifiers(&BearerAuth, &SpaceParam),
    security(("bearer" = []))
)]
pub struct ApiDoc;

/// Declares the bearer token scheme.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Declares the `space` query parameter every `/api/v1` operation takes.
struct SpaceParam;

impl utoipa::Modify for SpaceParam {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{ObjectBuilder, Required, Type};
        let parameter = ParameterBuilder::new()
            .name("space")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(
                "The space to act on: the caller's own by default (`default` for the admin \
                 token). Another space than a space token's own is 404.",
            ))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[a-z0-9-]{1,63}$")),
            ))
            .build();
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let unknown_space = ResponseBuilder::new()
            .description("no such space, or not the caller's (or no such app)")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for (path, item) in openapi.paths.paths.iter_mut() {
            if path.starts_with("/api/v1/") {
                item.parameters
                    .get_or_insert_with(Vec::new)
                    .push(parameter.clone());
                for operation in [
                    &mut item.get,
                    &mut item.post,
                    &mut item.put,
                    &mut item.patch,
                    &mut item.delete,
                ]
                .into_iter()
                .flatten()
                {
                    operation
                        .responses
                        .responses
                        .entry("404".to_owned())
                        .or_insert_with(|| unknown_space.clone().into());
                }
            }
        }
    }
}

/// `GET /api/openapi.json`.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Liveness.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthView {
    /// Always `ok` while the process answers.
    pub status: String,
}

/// Liveness: the process answers (no auth).
#[utoipa::path(get, path = "/health", security(()), responses((status = 200, body = HealthView)))]
pub async fn health() -> Json<HealthView> {
    Json(HealthView {
        status: "ok".to_owned(),
    })
}

/// Readiness and its checks.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadyView {
    /// `ready`, or `degraded` when a check fails.
    pub status: String,
    /// Each dependency.
    pub checks: Vec<CheckView>,
    /// The running configuration's revision: instances that show different ones run
    /// different settings.
    pub config_revision: String,
}

/// One dependency's state.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckView {
    /// `database`, `registry`, or `provider:<id>`.
    pub name: String,
    /// Whether it works.
    pub ok: bool,
    /// What it is, or what is wrong.
    pub detail: String,
}

/// Readiness: the database, the registry and each provider (no auth). 503 when one fails.
#[utoipa::path(get, path = "/ready", security(()), responses(
    (status = 200, body = ReadyView), (status = 503, body = ReadyView)
))]
pub async fn ready(State(state): State<AdminState>) -> (StatusCode, Json<ReadyView>) {
    let mut checks = Vec::new();
    let database = tokio::time::timeout(Duration::from_secs(3), state.store.health()).await;
    checks.push(CheckView {
        name: "database".to_owned(),
        ok: matches!(database, Ok(Ok(()))),
        detail: match database {
            Ok(Ok(())) => state.store.backend().to_owned(),
            Ok(Err(error)) => error.to_string(),
            Err(_) => "no answer within 3 s".to_owned(),
        },
    });
    let registry = state.lifecycle.registry().health();
    checks.push(CheckView {
        name: "registry".to_owned(),
        ok: registry.ok,
        detail: registry.detail,
    });
    let errors = state.lifecycle.metrics().provider_errors();
    for provider in state.lifecycle.providers().iter() {
        let last = errors.get(provider.id());
        let ok = last.is_none_or(|error| !error.current);
        checks.push(CheckView {
            name: format!("provider:{}", provider.id()),
            ok,
            detail: match last {
                Some(error) if error.current => error.message.clone(),
                _ => provider.kind().to_owned(),
            },
        });
    }
    let ok = checks.iter().all(|check| check.ok);
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let view = ReadyView {
        status: if ok { "ready" } else { "degraded" }.to_owned(),
        checks,
        config_revision: state.config.view.load().revision.clone(),
    };
    (status, Json(view))
}

/// Metrics in the Prometheus text format (token needed with `admin.metrics_auth`).
#[utoipa::path(get, path = "/metrics", security((), ("bearer" = [])), responses(
    (status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain"),
    (status = 401, body = ErrorBody)
))]
pub async fn metrics(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    // A space's token sees its space's metrics; without `metrics_auth` anyone may read
    // the default space's.
    let state = match state.scoped(&headers, None, false) {
        Ok(scoped) => scoped,
        Err(_) if !state.metrics_auth => state,
        Err(error) => return error.into_response(),
    };
    let mut text = state
        .lifecycle
        .metrics()
        .render(&state.lifecycle.apps(), state.lifecycle.clock().now_ms());
    if state.space == crate::model::DEFAULT_SPACE {
        text.push_str(&state.config.metrics());
        text.push_str(&state.lifecycle.tracer().metrics());
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Filters of `GET /api/v1/apps`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AppsQuery {
    /// Only this provider id.
    pub provider: Option<String>,
    /// Only apps in this state.
    #[param(value_type = Option<String>, pattern = "^(asleep|waking|awake|stopping|failed)?$")]
    pub state: Option<String>,
    /// Only names matching this glob (`review-*`) or `re:` regex.
    pub name: Option<String>,
}

impl AppView {
    fn of(state: &AdminState, app: &App) -> AppView {
        let clock = state.lifecycle.clock();
        let now = clock.now_ms();
        let last = app.last_activity_ms();
        let idle_ms = now.saturating_sub(last);
        let pinned = app.pinned_until_ms().filter(|until| *until > now);
        let conf = app.conf();
        let policy = &conf.policy;
        let sleeps_in_seconds = app.sleeps_in_seconds(now);
        let mut keys = vec![app.key.name.to_string()];
        keys.extend(app.conf().aliases.iter().cloned());
        keys.push(crate::lifecycle::route::qualified(app));
        let hosts = keys
            .into_iter()
            .map(|key| match state.domains.first() {
                Some(domain) => format!("{key}.{domain}"),
                None => format!("{key}.*"),
            })
            .collect();
        let phase = app.phase();
        AppView {
            provider: app.key.provider.to_string(),
            name: app.key.name.to_string(),
            state: phase.state.to_string(),
            reason: phase.reason.map(|r| r.to_string()),
            hosts,
            policy: PolicyView {
                max_idle: policy.max_idle_text(),
                max_idle_seconds: policy.max_idle.map(|d| d.as_secs()),
                wake_timeout_seconds: policy.wake_timeout.as_secs(),
                strategy: match policy.strategy {
                    Strategy::Hold => "hold",
                    Strategy::Page => "page",
                    Strategy::Auto => "auto",
                }
                .to_owned(),
                health_path: policy.health_path.clone(),
            },
            last_activity: rfc3339(clock.wall(last)),
            idle_seconds: idle_ms / 1000,
            sleeps_in_seconds,
            pinned_until: pinned.map(|until| {
                if until == u64::MAX {
                    "forever".to_owned()
                } else {
                    rfc3339(SystemTime::now() + Duration::from_millis(until - now))
                }
            }),
            last_wake: app.last_wake().map(|(at, cause)| WakeView {
                at: rfc3339(at),
                cause: match &cause {
                    WakeCause::Request { .. } => "request",
                    WakeCause::Linked { .. } => "linked",
                    WakeCause::Schedule { .. } => "schedule",
                    WakeCause::Api { .. } => "api",
                }
                .to_owned(),
                description: cause.to_string(),
            }),
            formation: app.formation().unwrap_or_default(),
            eta_seconds: app
                .eta()
                .map(|eta| (eta.as_secs_f64() * 10.0).round() / 10.0),
            in_flight: app.in_flight(),
        }
    }
}

fn find(state: &AdminState, provider: &str, name: &str) -> Result<Arc<App>, ApiError> {
    state
        .lifecycle
        .app(provider, name)
        .ok_or_else(|| ApiError::unknown_app(provider, name))
}

/// Every managed app, filtered.
#[utoipa::path(get, path = "/api/v1/apps", params(AppsQuery), responses(
    (status = 200, body = AppList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)
))]
pub async fn apps_index(
    Extension(state): Extension<AdminState>,
    Query(query): Query<AppsQuery>,
) -> Result<Json<AppList>, ApiError> {
    let wanted_state = match query.state.as_deref() {
        None | Some("") => None,
        Some(word) => Some(parse_state(word).ok_or_else(|| {
            ApiError::bad_request(format!(
                "state `{word}` is not one of asleep, waking, awake, stopping, failed"
            ))
        })?),
    };
    let pattern = match query.name.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            crate::model::Pattern::parse(text, crate::model::Plain::Whole)
                .map_err(|message| ApiError::bad_request(format!("name: {message}")))?,
        ),
    };
    let apps = state
        .lifecycle
        .apps()
        .into_iter()
        .filter(|app| {
            query
                .provider
                .as_deref()
                .is_none_or(|p| p.is_empty() || app.provider_id() == p)
        })
        .filter(|app| wanted_state.is_none_or(|s| app.state() == s))
        .filter(|app| pattern.as_ref().is_none_or(|p| p.matches(&app.key.name)))
        .map(|app| AppView::of(&state, &app))
        .collect();
    Ok(Json(AppList { apps }))
}

fn parse_state(word: &str) -> Option<AppState> {
    Some(match word {
        "asleep" => AppState::Asleep,
        "waking" => AppState::Waking,
        "awake" => AppState::Awake,
        "stopping" => AppState::Stopping,
        "failed" => AppState::Failed,
        _ => return None,
    })
}

/// One app.
#[utoipa::path(get, path = "/api/v1/apps/{provider}/{app}",
    params(("provider" = String, Path, description = "provider id"), ("app" = String, Path, description = "app name")),
    responses((status = 200, body = AppView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn apps_show(
    Extension(state): Extension<AdminState>,
    Path((provider, name)): Path<(String, String)>,
) -> Result<Json<AppView>, ApiError> {
    let app = find(&state, &provider, &name)?;
    Ok(Json(AppView::of(&state, &app)))
}

/// Options of `POST .../start`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StartQuery {
    /// Answer once the app is awake (or its wake failed) instead of at once.
    pub wait: Option<bool>,
}

/// Wakes an app (as a request would, cause `api`). 202 at once, or 200 once awake with
/// `?wait=true`; 503 when the wake fails.
#[utoipa::path(post, path = "/api/v1/apps/{provider}/{app}/start",
    params(("provider" = String, Path, description = "provider id"), ("app" = String, Path, description = "app name"), StartQuery),
    responses(
        (status = 200, description = "awake", body = AppView),
        (status = 202, description = "waking", body = AppView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody)
    )
)]
pub async fn apps_start(
    Extension(state): Extension<AdminState>,
    Path((provider, name)): Path<(String, String)>,
    Query(query): Query<StartQuery>,
) -> Result<(StatusCode, Json<AppView>), ApiError> {
    let app = find(&state, &provider, &name)?;
    let cause = || WakeCause::Api { by: None };
    if query.wait.unwrap_or(false) {
        let deadline = tokio::time::Instant::now() + app.conf().policy.wake_timeout;
        state
            .lifecycle
            .ensure_awake(&app, cause, deadline)
            .await
            .map_err(|error| ApiError::wake(&name, &error))?;
        return Ok((StatusCode::OK, Json(AppView::of(&state, &app))));
    }
    if app.state() == AppState::Stopping {
        return Err(ApiError::conflict(format!(
            "{name} is being stopped; try again"
        )));
    }
    state
        .lifecycle
        .request_wake(&app, cause)
        .map_err(|error| ApiError::wake(&name, &error))?;
    let status = if app.state() == AppState::Awake {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(AppView::of(&state, &app))))
}

/// Stops an awake app now, whatever its idle time (cause `api`). 202; 409 when it is not
/// awake.
#[utoipa::path(post, path = "/api/v1/apps/{provider}/{app}/stop",
    params(("provider" = String, Path, description = "provider id"), ("app" = String, Path, description = "app name")),
    responses(
        (status = 202, description = "stopping", body = AppView),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)
    )
)]
pub async fn apps_stop(
    Extension(state): Extension<AdminState>,
    Path((provider, name)): Path<(String, String)>,
) -> Result<(StatusCode, Json<AppView>), ApiError> {
    let app = find(&state, &provider, &name)?;
    if !state.lifecycle.stop_now(&app, StopCause::Api { by: None }) {
        return Err(ApiError::conflict(format!(
            "{name} is {}: only an awake app can be stopped",
            app.state()
        )));
    }
    Ok((StatusCode::ACCEPTED, Json(AppView::of(&state, &app))))
}

/// Body of `PUT .../pin`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PinRequest {
    /// Keep it awake until this time (RFC 3339); absent or null: until unpinned.
    pub until: Option<String>,
}

/// Keeps an app awake (the idle check leaves it alone) until a time or until unpinned.
#[utoipa::path(put, path = "/api/v1/apps/{provider}/{app}/pin",
    params(("provider" = String, Path, description = "provider id"), ("app" = String, Path, description = "app name")),
    request_body(content = PinRequest, description = "optional"),
    responses(
        (status = 200, body = AppView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)
    )
)]
pub async fn apps_pin(
    Extension(state): Extension<AdminState>,
    Path((provider, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<AppView>, ApiError> {
    let app = find(&state, &provider, &name)?;
    let request: PinRequest = if body.iter().all(u8::is_ascii_whitespace) {
        PinRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|error| ApiError::bad_request(format!("body: {error}")))?
    };
    let until = match request.until.as_deref() {
        None => None,
        Some(text) => {
            let at = chrono::DateTime::parse_from_rfc3339(text).map_err(|_| {
                ApiError::bad_request(format!(
                    "until: `{text}` is not an RFC 3339 time (e.g. 2026-12-24T18:00:00Z)"
                ))
            })?;
            let at = SystemTime::from(at.with_timezone(&chrono::Utc));
            if at <= SystemTime::now() {
                return Err(ApiError::bad_request("until: must be in the future"));
            }
            Some(at)
        }
    };
    state.lifecycle.pin(&app, until).await;
    Ok(Json(AppView::of(&state, &app)))
}

/// Lets the idle check stop the app again.
#[utoipa::path(delete, path = "/api/v1/apps/{provider}/{app}/pin",
    params(("provider" = String, Path, description = "provider id"), ("app" = String, Path, description = "app name")),
    responses((status = 200, body = AppView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn apps_unpin(
    Extension(state): Extension<AdminState>,
    Path((provider, name)): Path<(String, String)>,
) -> Result<Json<AppView>, ApiError> {
    let app = find(&state, &provider, &name)?;
    state.lifecycle.unpin(&app).await;
    Ok(Json(AppView::of(&state, &app)))
}

/// Filters of `GET /api/v1/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only this provider id.
    pub provider: Option<String>,
    /// Only this app name.
    pub app: Option<String>,
    /// Only these kinds, comma-separated (`wake_requested,stopped`).
    pub kind: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Only events before this time (RFC 3339).
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn parse_time(field: &str, text: Option<&str>) -> Result<Option<SystemTime>, ApiError> {
    match text {
        None | Some("") => Ok(None),
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .map(|at| Some(SystemTime::from(at.with_timezone(&chrono::Utc))))
            .map_err(|_| {
                ApiError::bad_request(format!("{field}: `{text}` is not an RFC 3339 time"))
            }),
    }
}

/// Period and grouping of `GET /api/v1/savings`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SavingsQuery {
    /// Start of the period (RFC 3339; default: 30 days before `to`).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// End of the period (RFC 3339; default: now).
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// `app` (default) or `provider`.
    pub group_by: Option<String>,
}

/// Hours asleep, and the money and CO2e they saved, as estimates.
#[utoipa::path(get, path = "/api/v1/savings", params(SavingsQuery), responses(
    (status = 200, body = crate::savings::Report), (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)
))]
pub async fn savings_index(
    Extension(state): Extension<AdminState>,
    Query(query): Query<SavingsQuery>,
) -> Result<Json<crate::savings::Report>, ApiError> {
    let group_by = match query.group_by.as_deref() {
        None | Some("") | Some("app") => crate::savings::GroupBy::App,
        Some("provider") => crate::savings::GroupBy::Provider,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "group_by: `{other}` is not one of: app, provider"
            )));
        }
    };
    let now = state.lifecycle.clock().wall_now();
    let to = parse_time("to", query.to.as_deref())?.unwrap_or(now);
    let from = parse_time("from", query.from.as_deref())?.unwrap_or_else(|| {
        to.checked_sub(SAVINGS_PERIOD)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    });
    if from >= to {
        return Err(ApiError::bad_request("from: must be before `to`"));
    }
    let apps = savings_intervals(&state, to).await?;
    Ok(Json(crate::savings::report(
        &state.savings,
        &apps,
        from,
        to,
        now,
        group_by,
    )))
}

/// The default savings period.
pub const SAVINGS_PERIOD: Duration = Duration::from_secs(30 * 86_400);

/// Every app's intervals asleep up to `to`, with its provider's type.
pub async fn savings_intervals(
    state: &AdminState,
    to: SystemTime,
) -> Result<Vec<(crate::savings::AppRef, Vec<crate::savings::Interval>)>, ApiError> {
    let by_app = crate::savings::collect(state.store.as_ref(), &state.space, to)
        .await
        .map_err(|error| ApiError::unavailable(error.to_string()))?;
    let providers = state.lifecycle.providers();
    let kinds: std::collections::HashMap<&str, &str> = providers
        .iter()
        .map(|provider| (provider.id(), provider.kind()))
        .collect();
    Ok(by_app
        .into_iter()
        .map(|((provider, app), intervals)| {
            let provider_type = kinds.get(provider.as_str()).copied().unwrap_or_default();
            (
                crate::savings::AppRef {
                    provider_type: provider_type.to_owned(),
                    provider,
                    app,
                },
                intervals,
            )
        })
        .collect())
}

/// The event history (durable), filtered, newest first, by pages.
#[utoipa::path(get, path = "/api/v1/events", params(EventsQuery), responses(
    (status = 200, body = EventList), (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)
))]
pub async fn events_index(
    Extension(state): Extension<AdminState>,
    Query(query): Query<EventsQuery>,
) -> Result<Json<EventList>, ApiError> {
    let kinds = event_kinds(query.kind.as_deref());
    if let Some(limit) = query.limit
        && !(1..=crate::store::MAX_EVENTS_LIMIT).contains(&limit)
    {
        return Err(ApiError::bad_request(format!(
            "limit: must be 1..={}",
            crate::store::MAX_EVENTS_LIMIT
        )));
    }
    let store_query = EventQuery {
        space: Some(state.space.clone()),
        provider: query.provider.filter(|p| !p.is_empty()),
        app: query.app.filter(|a| !a.is_empty()),
        kinds,
        since: parse_time("since", query.since.as_deref())?,
        until: parse_time("until", query.until.as_deref())?,
        limit: query.limit,
        cursor: query.cursor.filter(|c| !c.is_empty()),
        after: None,
    };
    let page = state
        .store
        .events(&store_query)
        .await
        .map_err(|error| match error {
            crate::store::StoreError::BadCursor | crate::store::StoreError::BadQuery(_) => {
                ApiError::bad_request(error.to_string())
            }
            other => ApiError::unavailable(other.to_string()),
        })?;
    let events = page.events.into_iter().map(event_view).collect();
    Ok(Json(EventList {
        events,
        next_cursor: page.next_cursor,
    }))
}

/// A stored event as the API shows it (the list's items, the stream's data).
pub fn event_view(stored: crate::store::StoredEvent) -> EventView {
    let mut details =
        serde_json::to_value(&stored.event.kind).unwrap_or_else(|_| serde_json::json!({}));
    let kind = details
        .as_object_mut()
        .and_then(|map| map.remove("kind"))
        .and_then(|kind| kind.as_str().map(str::to_owned))
        .unwrap_or_default();
    EventView {
        id: stored.id,
        at: rfc3339(stored.event.at),
        space: stored.event.app.space.to_string(),
        provider: stored.event.app.provider.to_string(),
        app: stored.event.app.name.to_string(),
        kind,
        details,
    }
}

/// The `kind` filter of the events list and stream: comma-separated names.
pub fn event_kinds(kind: Option<&str>) -> Vec<String> {
    kind.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Every provider account: apps, health, last error, calls and rate-limit state.
#[utoipa::path(get, path = "/api/v1/providers", responses(
    (status = 200, body = ProviderList), (status = 401, body = ErrorBody)
))]
pub async fn providers_index(Extension(state): Extension<AdminState>) -> Json<ProviderList> {
    let apps = state.lifecycle.apps();
    let metrics = state.lifecycle.metrics();
    let errors = metrics.provider_errors();
    let calls = metrics.provider_call_counts();
    let providers = state
        .lifecycle
        .providers()
        .iter()
        .map(|provider| {
            let id = provider.id();
            let error = errors.get(id);
            let limit = provider.rate_limit();
            ProviderView {
                id: id.to_owned(),
                kind: provider.kind().to_owned(),
                apps: apps.iter().filter(|app| app.provider_id() == id).count(),
                healthy: error.is_none_or(|e| !e.current),
                last_error: error.map(|e| e.message.clone()),
                last_error_at: error.map(|e| rfc3339(e.at)),
                calls: calls
                    .iter()
                    .filter(|((provider, _, _), _)| provider == id)
                    .map(|((_, op, result), count)| CallCount {
                        op: (*op).to_owned(),
                        result: (*result).to_owned(),
                        count: *count,
                    })
                    .collect(),
                rate_limit_per_minute: limit.map(|(limit, _)| limit),
                calls_last_minute: limit.map(|(_, used)| used),
            }
        })
        .collect();
    Json(ProviderList { providers })
}
