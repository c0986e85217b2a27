//! The Sablier-compatible API: `GET /api/strategies/{dynamic,blocking,poke}`, what
//! Sablier's reverse-proxy plugins (Traefik, Caddy, Proxy-Wasm for nginx, Envoy, Istio,
//! APISIX) call before they forward, so they work with this engine as their backend.
//!
//! The contract is Sablier's published OpenAPI document (`docs/static/swagger.yaml`) and its
//! handlers (`internal/api/start_*.go`): `names` (repeatable; `optional:` marks one that
//! does not gate the session) or `group`, exactly one; `session_duration` as a Go duration;
//! the `X-Sablier-Session-Status: ready|not-ready` header on every session answer (what the
//! plugins read); errors as RFC 7807 documents. Names are the apps' route keys (`app`, or
//! `app--provider` when several providers have one); a group is a platform group (a
//! container group), else an app with the apps linked to it. The session keeps each app
//! awake at least that long ([`crate::lifecycle::Lifecycle::hold_session`]).
//!
//! The default space's apps only. It never forwards a request.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::caller::{Gate, client_ip, query};
use super::settings::{MAX_SESSION, Sablier};
use crate::events::WakeCause;
use crate::html::escape;
use crate::lifecycle::route::Route;
use crate::lifecycle::{App, Lifecycle, WakeError};
use crate::model::State as AppState;

/// The header every session answer carries.
pub const STATUS_HEADER: &str = "x-sablier-session-status";

/// The waiting page's looks, by Sablier's theme names: a light card or a dark terminal.
const THEMES: &[(&str, Look)] = &[
    ("paastis", Look::Light),
    ("ghost", Look::Light),
    ("shuffle", Look::Light),
    ("hacker-terminal", Look::Dark),
    ("matrix", Look::Dark),
];

/// The dynamic page's default theme (Sablier's default, `hacker-terminal`, is accepted too).
const DEFAULT_THEME: &str = "paastis";

/// How a theme looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    /// Dark text on a light card.
    Light,
    /// Light monospace text on black.
    Dark,
}

/// An RFC 7807 problem document (`application/problem+json`), shaped as Sablier's.
#[derive(Debug)]
pub struct Problem {
    /// HTTP status.
    status: StatusCode,
    /// Sablier's error id (`validation-error`, `group-not-found`, `timeout`...).
    id: &'static str,
    /// One sentence.
    detail: String,
    /// Extension members (`availableGroups`, `instances`...).
    extra: serde_json::Map<String, Value>,
}

impl Problem {
    /// A problem of this status, id and detail.
    pub fn new(status: StatusCode, id: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            id,
            detail: detail.into(),
            extra: serde_json::Map::new(),
        }
    }

    fn with(mut self, key: &str, value: Value) -> Problem {
        self.extra.insert(key.to_owned(), value);
        self
    }

    fn validation(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "validation-error", detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut document = serde_json::Map::new();
        document.insert(
            "type".to_owned(),
            json!(format!("https://sablierapp.dev/#/errors?id={}", self.id)),
        );
        let title = match self.id {
            "validation-error" => "Validation Failed",
            "group-not-found" => "Group not found",
            "theme-not-found" => "Theme not found",
            "instance-not-managed" => "Instance not managed",
            _ => self.status.canonical_reason().unwrap_or("Error"),
        };
        document.insert("title".to_owned(), json!(title));
        document.insert("status".to_owned(), json!(self.status.as_u16()));
        document.insert("detail".to_owned(), json!(self.detail));
        document.extend(self.extra);
        let mut response = Response::new(Body::from(Value::Object(document).to_string()));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

/// A request's parameters, validated.
#[derive(Debug)]
struct Ask {
    /// The instances asked for by name (`optional:` stripped, flag kept), or the group's.
    names: Vec<(String, bool)>,
    /// The group asked for, if it was one.
    group: Option<String>,
    /// How long the apps stay awake at least.
    session: Duration,
    /// dynamic: the page's title.
    display_name: Option<String>,
    /// dynamic: its look.
    look: Look,
    /// dynamic: how often it reloads.
    refresh: Duration,
    /// dynamic: whether it lists each app.
    show_details: bool,
    /// blocking: how long to wait.
    timeout: Duration,
}

/// Reads and checks the query as Sablier's handlers bind it (unknown keys are ignored).
fn ask(request: &Parts, defaults: &Sablier) -> Result<Ask, Problem> {
    let pairs = query(&request.uri).map_err(Problem::validation)?;
    let mut ask = Ask {
        names: Vec::new(),
        group: None,
        session: defaults.session_duration,
        display_name: None,
        look: Look::Light,
        refresh: defaults.refresh_frequency,
        show_details: defaults.show_details,
        timeout: defaults.blocking_timeout,
    };
    let mut theme = DEFAULT_THEME.to_owned();
    for (key, value) in pairs {
        match key.as_str() {
            "names" => {
                let (name, optional) = match value.strip_prefix("optional:") {
                    Some(name) => (name.to_owned(), true),
                    None => (value, false),
                };
                if !name.is_empty() {
                    ask.names.push((name.to_ascii_lowercase(), optional));
                }
            }
            "group" if !value.is_empty() => ask.group = Some(value),
            "session_duration" => {
                ask.session = duration(&key, &value, |d| d <= MAX_SESSION, "up to 168h (e.g. 5m)")?;
            }
            "timeout" => {
                let accept = |d: Duration| !d.is_zero() && d <= Duration::from_secs(3600);
                ask.timeout = duration(&key, &value, accept, "between 1ns and 1h (e.g. 1m)")?;
            }
            "refresh_frequency" => {
                ask.refresh = duration(&key, &value, |d| !d.is_zero(), "(e.g. 5s)")?;
            }
            "show_details" => {
                ask.show_details = go_bool(&value).ok_or_else(|| {
                    Problem::validation(format!("show_details: `{value}` is not a boolean"))
                })?;
            }
            "display_name" => ask.display_name = Some(value).filter(|name| !name.is_empty()),
            "theme" if !value.is_empty() => theme = value,
            _ => {}
        }
    }
    match (ask.names.is_empty(), &ask.group) {
        (true, None) => {
            return Err(Problem::validation(
                "'names' or 'group' query parameter must be set",
            ));
        }
        (false, Some(_)) => {
            return Err(Problem::validation(
                "'names' and 'group' query parameters are both set, only one must be set",
            ));
        }
        _ => {}
    }
    ask.look = match THEMES.iter().find(|(name, _)| *name == theme) {
        Some((_, look)) => *look,
        None => {
            let names: Vec<&str> = THEMES.iter().map(|(name, _)| *name).collect();
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "theme-not-found",
                "The theme you requested does not exist among the built-in themes.",
            )
            .with("availableTheme", json!(names))
            .with("requestTheme", json!(theme))
            .with("error", json!(format!("theme {theme} not found"))));
        }
    };
    Ok(ask)
}

/// A duration parameter: a Go duration that `accept` takes, else a validation problem that
/// says what was `expected` of it.
fn duration(
    key: &str,
    value: &str,
    accept: impl Fn(Duration) -> bool,
    expected: &str,
) -> Result<Duration, Problem> {
    go_duration(value).filter(|d| accept(*d)).ok_or_else(|| {
        Problem::validation(format!("{key}: `{value}` is not a duration {expected}"))
    })
}

/// A Go duration (`300ms`, `1.5h`, `2h45m`, `0`); negative ones are refused.
pub fn go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(index, _)| index);
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += number * nanos_per_unit;
        rest = &rest[unit_len..];
    }
    // At most Go's own limit (about 290 years); beyond is not a duration there either.
    (total.is_finite() && total < 9.2e18).then(|| Duration::from_nanos(total as u64))
}

/// A Go boolean as `strconv.ParseBool` reads it.
fn go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// One instance of a session: the app asked for (none: not managed) and whether it gates.
struct Member {
    /// The name asked for.
    name: String,
    /// The app, when the name is one.
    app: Option<Arc<App>>,
    /// `optional:`: its readiness and errors do not gate the session.
    optional: bool,
    /// Why it cannot be ready (a wake refused or failed), when it cannot.
    error: Option<String>,
}

/// The apps of a request: by name (an unknown, non-optional name is a 404), or a group's.
fn members(lifecycle: &Lifecycle, ask: &Ask) -> Result<Vec<Member>, Problem> {
    let routes = lifecycle.routes();
    let find = |name: &str| match routes.get(name) {
        Some(Route::App(app)) => Ok(Arc::clone(app)),
        Some(Route::Ambiguous(keys)) => Err(format!(
            "`{name}` names several apps; use one of: {}",
            keys.join(", ")
        )),
        None => Err(format!("`{name}` is not an app managed here")),
    };
    if let Some(group) = &ask.group {
        let apps = group_apps(lifecycle, group, &find);
        if apps.is_empty() {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "group-not-found",
                "The group you requested does not exist. It is possible that the group has \
                 not been scanned yet.",
            )
            .with("availableGroups", json!(groups(lifecycle)))
            .with("requestGroup", json!(group))
            .with("error", json!(format!("group {group} not found"))));
        }
        return Ok(apps
            .into_iter()
            .map(|app| Member {
                name: app.key.name.to_string(),
                app: Some(app),
                optional: false,
                error: None,
            })
            .collect());
    }
    let mut members: Vec<Member> = Vec::new();
    for (name, optional) in &ask.names {
        if members.iter().any(|member| member.name == *name) {
            continue;
        }
        match find(name) {
            Ok(app) => members.push(Member {
                name: name.clone(),
                app: Some(app),
                optional: *optional,
                error: None,
            }),
            Err(error) if *optional => members.push(Member {
                name: name.clone(),
                app: None,
                optional: true,
                error: Some(error),
            }),
            Err(error) => {
                return Err(Problem::new(
                    StatusCode::NOT_FOUND,
                    "instance-not-managed",
                    format!("instance {name:?} is not managed here: {error}"),
                )
                .with("instance", json!(name))
                .with("error", json!(error)));
            }
        }
    }
    Ok(members)
}

/// A group's apps: the platform group of that name, else the app of that name with the
/// apps linked to it (`rules[].linked_apps`, its platform group).
fn group_apps(
    lifecycle: &Lifecycle,
    group: &str,
    find: &dyn Fn(&str) -> Result<Arc<App>, String>,
) -> Vec<Arc<App>> {
    let mut apps: Vec<Arc<App>> = lifecycle
        .apps()
        .into_iter()
        .filter(|app| app.group_name().is_some_and(|name| name.as_str() == group))
        .collect();
    if apps.is_empty()
        && let Ok(app) = find(&group.to_ascii_lowercase())
    {
        apps = std::iter::once(Arc::clone(&app))
            .chain(app.linked())
            .collect();
    }
    apps.sort_by(|a, b| a.key.name.cmp(&b.key.name));
    apps.dedup_by(|a, b| Arc::ptr_eq(a, b));
    apps
}

/// The groups there are, for a group-not-found answer.
fn groups(lifecycle: &Lifecycle) -> Vec<String> {
    let mut names: Vec<String> = lifecycle
        .apps()
        .iter()
        .filter_map(|app| app.group_name().map(|name| name.to_string()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Opens the session: each app's activity, its session, and a wake for what sleeps.
async fn open(gate: &Gate, request: &Parts, members: &mut [Member], session: Duration) {
    let lifecycle = &gate.proxy.space(None);
    let client_ip = client_ip(gate, request);
    for member in members.iter_mut() {
        let Some(app) = &member.app else { continue };
        drop(lifecycle.begin_request(app));
        lifecycle.hold_session(app, session).await;
        if matches!(app.state(), AppState::Asleep | AppState::Failed) {
            if let Some(refusal) = lifecycle.wake_refused(app) {
                member.error = Some(format!(
                    "asleep by its schedule ({}), and requests do not wake it",
                    refusal.schedule
                ));
                continue;
            }
            if let Err(error) = lifecycle.request_wake(app, || cause(request, client_ip)) {
                member.error = Some(error.to_string());
            }
        }
    }
}

/// What a wake's event records of the call that caused it.
fn cause(request: &Parts, client_ip: std::net::IpAddr) -> WakeCause {
    crate::proxy::wake::cause_of(&request.method, &request.uri, &request.headers, client_ip)
}

/// Sablier's status of an instance.
fn status(member: &Member) -> &'static str {
    match (&member.error, member.app.as_ref().map(|app| app.state())) {
        (Some(_), _) | (None, None) => "error",
        (None, Some(AppState::Awake)) => "ready",
        (None, Some(AppState::Waking)) => "starting",
        (None, Some(AppState::Failed)) => "error",
        (None, Some(AppState::Asleep | AppState::Stopping)) => "stopped",
    }
}

/// Whether every gating member is ready.
fn ready(members: &[Member]) -> bool {
    members
        .iter()
        .all(|member| member.optional || status(member) == "ready")
}

/// Sablier's `InstanceInfo` of a member.
fn instance(member: &Member) -> Value {
    let current = u32::from(status(member) == "ready");
    let desired = member
        .app
        .as_ref()
        .and_then(|app| app.formation())
        .map_or(1, |formation| formation.values().sum::<u32>().max(1));
    let mut info = json!({
        "name": member.name,
        "currentReplicas": current * desired,
        "desiredReplicas": desired,
        "status": status(member),
    });
    let reason = member.error.clone().or_else(|| {
        member
            .app
            .as_ref()
            .filter(|app| app.state() == AppState::Failed)
            .and_then(|app| app.phase().reason.map(|reason| reason.to_string()))
    });
    if let (Some(reason), Some(map)) = (reason, info.as_object_mut()) {
        map.insert("message".to_owned(), json!(reason));
    }
    info
}

/// The session document: `{"session": {"instances": {name: {instance, error}}, "status"}}`
/// (the published schema's map, and the `status` that Sablier's answers also carry).
fn session_document(members: &[Member]) -> Value {
    let mut instances = serde_json::Map::new();
    for member in members {
        let mut entry = json!({
            "instance": instance(member),
            "error": member.error,
        });
        if member.optional
            && let Some(map) = entry.as_object_mut()
        {
            map.insert("optional".to_owned(), json!(true));
        }
        instances.insert(member.name.clone(), entry);
    }
    let status = if ready(members) { "ready" } else { "not-ready" };
    json!({"session": {"instances": instances, "status": status}})
}

/// A session answer: JSON, with the status header.
fn session_answer(members: &[Member]) -> Response {
    let mut response = Response::new(Body::from(session_document(members).to_string()));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    with_status(response, ready(members))
}

fn with_status(mut response: Response, ready: bool) -> Response {
    let value = if ready { "ready" } else { "not-ready" };
    response
        .headers_mut()
        .insert(STATUS_HEADER, HeaderValue::from_static(value));
    response
}

/// The request's members, or the problem that stops it.
fn prepare(gate: &Gate, request: &Parts) -> Result<(Ask, Vec<Member>), Problem> {
    let defaults = gate.settings.sablier.unwrap_or_default();
    let ask = ask(request, &defaults)?;
    let members = members(gate.proxy.space(None), &ask)?;
    Ok((ask, members))
}

/// `GET /api/strategies/poke`: starts what sleeps and answers at once.
pub async fn poke(State(gate): State<Arc<Gate>>, request: Request) -> Response {
    let (request, _) = request.into_parts();
    let (ask, mut members) = match prepare(&gate, &request) {
        Ok(prepared) => prepared,
        Err(problem) => return problem.into_response(),
    };
    open(&gate, &request, &mut members, ask.session).await;
    session_answer(&members)
}

/// `GET /api/strategies/dynamic`: starts what sleeps and answers the waiting page (200),
/// which reloads itself until the plugin sees the session ready.
pub async fn dynamic(State(gate): State<Arc<Gate>>, request: Request) -> Response {
    let (request, _) = request.into_parts();
    let (ask, mut members) = match prepare(&gate, &request) {
        Ok(prepared) => prepared,
        Err(problem) => return problem.into_response(),
    };
    open(&gate, &request, &mut members, ask.session).await;
    let ready = ready(&members);
    let mut response = Response::new(Body::from(page(&ask, &members, ready)));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    with_status(response, ready)
}

/// `GET /api/strategies/blocking`: starts what sleeps and answers once every gating app is
/// ready (200), or when the timeout runs out (504, with each app's state).
pub async fn blocking(State(gate): State<Arc<Gate>>, request: Request) -> Response {
    let (request, _) = request.into_parts();
    let (ask, mut members) = match prepare(&gate, &request) {
        Ok(prepared) => prepared,
        Err(problem) => return problem.into_response(),
    };
    open(&gate, &request, &mut members, ask.session).await;
    let lifecycle = Arc::clone(gate.proxy.space(None));
    let deadline = Instant::now() + ask.timeout;
    let client_ip = client_ip(&gate, &request);
    // Only the gating apps are waited for: an optional one was started with the session,
    // and its readiness never holds the answer back.
    let waits = members.iter().map(|member| {
        let lifecycle = Arc::clone(&lifecycle);
        let app = member
            .app
            .clone()
            .filter(|_| !member.optional && member.error.is_none());
        let cause = cause(&request, client_ip);
        async move {
            match app {
                Some(app) => lifecycle
                    .ensure_awake(&app, || cause, deadline)
                    .await
                    .map(|_| ()),
                None => Ok(()),
            }
        }
    });
    let results = futures_util::future::join_all(waits).await;
    let mut timed_out = false;
    for (member, result) in members.iter_mut().zip(results) {
        match result {
            Ok(()) => {}
            Err(WakeError::Timeout(_)) => timed_out = true,
            Err(error) => member.error = Some(error.to_string()),
        }
    }
    if ready(&members) {
        return session_answer(&members);
    }
    let gating_error = members
        .iter()
        .any(|member| !member.optional && member.error.is_some());
    if timed_out && !gating_error {
        // As Sablier's ErrTimeout: the gating apps not ready, by name, each with its
        // status (and why, when known), in `instances` and at the end of `detail`.
        let mut pending: Vec<&Member> = members
            .iter()
            .filter(|member| !member.optional && status(member) != "ready")
            .collect();
        pending.sort_by(|a, b| a.name.cmp(&b.name));
        let details: Vec<Value> = pending
            .iter()
            .map(|member| {
                let mut detail = json!({"name": member.name, "status": status(member)});
                if let (Some(error), Some(map)) = (&member.error, detail.as_object_mut()) {
                    map.insert("error".to_owned(), json!(error));
                }
                detail
            })
            .collect();
        let reasons: Vec<String> = pending
            .iter()
            .map(|member| match &member.error {
                Some(error) => format!("{}: {error}", member.name),
                None => format!("{}: {}", member.name, status(member)),
            })
            .collect();
        let mut detail = format!(
            "session was not ready after {}",
            crate::model::format_duration(ask.timeout)
        );
        if !reasons.is_empty() {
            let _ = write!(detail, ": {}", reasons.join("; "));
        }
        let problem = Problem::new(StatusCode::GATEWAY_TIMEOUT, "timeout", detail)
            .with("instances", json!(details));
        return with_status(problem.into_response(), false);
    }
    let reasons: Vec<String> = members
        .iter()
        .filter(|member| !member.optional)
        .filter_map(|member| {
            member
                .error
                .as_ref()
                .map(|error| format!("{}: {error}", member.name))
        })
        .collect();
    let detail = if reasons.is_empty() {
        "session could not be made ready".to_owned()
    } else {
        reasons.join("; ")
    };
    let problem = Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal-error", detail);
    with_status(problem.into_response(), false)
}

/// The dynamic strategy's waiting page.
fn page(ask: &Ask, members: &[Member], ready: bool) -> String {
    let title = match &ask.display_name {
        Some(name) => escape(name).to_string(),
        None => escape(
            &members
                .iter()
                .map(|member| member.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        )
        .to_string(),
    };
    let refresh = ask.refresh.as_secs().max(1);
    let headline = if ready {
        format!("{title} is ready")
    } else {
        format!("Starting {title}…")
    };
    let mut details = String::new();
    if ask.show_details {
        details.push_str("<ul>\n");
        for member in members {
            let _ = writeln!(
                details,
                "<li><span>{}</span> <b>{}</b>{}</li>",
                escape(&member.name),
                status(member),
                member
                    .error
                    .as_deref()
                    .map(|error| format!(": {}", escape(error)))
                    .unwrap_or_default()
            );
        }
        details.push_str("</ul>\n");
    }
    let style = match ask.look {
        Look::Light => crate::proxy::pages::CARD_STYLE,
        Look::Dark => {
            "body{font-family:ui-monospace,monospace;margin:0;min-height:100vh;display:grid;place-items:center;background:#000;color:#3f3}\
             main{max-width:40rem;padding:2rem;margin:1rem;border:1px solid #3f3}"
        }
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{refresh}">
<title>{headline}</title>
<style>{style}
h1{{font-size:1.25rem;margin:0 0 .75rem}}p,li{{line-height:1.5}}small{{display:block;margin-top:1.5rem;opacity:.7}}
@media (prefers-reduced-motion: no-preference){{b{{transition:color .3s}}}}</style>
</head>
<body>
<main role="status" aria-live="polite">
<h1>{headline}</h1>
<p>These apps sleep when nobody uses them, to save money and energy. They are starting now;
this page reloads by itself every {refresh}s and shows them as soon as they are up.</p>
{details}<small>paastis</small>
</main>
</body>
</html>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_read_as_go_reads_them() {
        assert_eq!(go_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(go_duration("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(go_duration("2us"), Some(Duration::from_micros(2)));
        assert_eq!(go_duration("0"), Some(Duration::ZERO));
        for bad in ["", "5", "-5m", "5 m", "m", "1d", "abc", "1e3s"] {
            assert_eq!(go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn go_booleans_read_as_go_reads_them() {
        assert_eq!(go_bool("true"), Some(true));
        assert_eq!(go_bool("1"), Some(true));
        assert_eq!(go_bool("F"), Some(false));
        assert_eq!(go_bool("yes"), None);
    }
}
