//! The dashboard: one server-rendered page (no JS framework) with every app, its state,
//! time until sleep and last wake cause, start/stop/pin buttons (plain forms), the savings
//! of the last 30 days (totals, a bar per day per app), the webhooks with their latest
//! deliveries, and recent events. Behind the admin token: a login form stores it in an
//! HttpOnly, SameSite=Strict cookie, and every form of the page carries a token bound to
//! that cookie ([`super::guard::form_token`]), checked on each POST. It acts through the
//! same lifecycle functions as the API.
//!
//! A little JavaScript keeps it live: it follows the event stream
//! ([`super::stream`], at `/dashboard/events` with the session cookie) to update the
//! apps' states and the recent events as they happen, and shows times in the reader's time
//! zone. Without JavaScript the page is complete and is reloaded by hand.

use std::fmt::Write;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::api::EventsQuery;
use super::{AdminState, COOKIE};
use crate::events::{StopCause, WakeCause};
use crate::html::escape;
use crate::wire::{AppView, DeliveryView, EventList, WebhookView};

const STYLE: &str = r#"
:root { color-scheme: light dark; --fg: #1d2330; --muted: #667085; --bg: #f6f7f9; --card: #fff;
  --line: #e3e6ea; --accent: #2f6fed; --ok: #0f8a4b; --warn: #b76e00; --bad: #c2341f; }
@media (prefers-color-scheme: dark) { :root { --fg: #e8eaed; --muted: #9aa3af; --bg: #15181d;
  --card: #1e2228; --line: #2e333b; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; justify-content: space-between; gap: 1rem;
  padding: .8rem 1.2rem; background: var(--card); border-bottom: 1px solid var(--line); }
header h1 { font-size: 1.1rem; margin: 0; }
main { max-width: 72rem; margin: 0 auto; padding: 1rem; }
.totals { display: flex; gap: .6rem; flex-wrap: wrap; margin: 0 0 1rem; }
.total { background: var(--card); border: 1px solid var(--line); border-radius: .6rem;
  padding: .5rem .9rem; } .total b { font-size: 1.2rem; margin-right: .3rem; }
table { width: 100%; border-collapse: collapse; background: var(--card);
  border: 1px solid var(--line); border-radius: .6rem; overflow: hidden; }
th, td { text-align: left; padding: .55rem .7rem; border-bottom: 1px solid var(--line);
  vertical-align: middle; }
th { font-size: .8rem; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
tr:last-child td { border-bottom: 0; }
.state { display: inline-block; padding: .1rem .55rem; border-radius: 1rem; font-size: .85rem;
  font-weight: 600; border: 1px solid currentColor; }
.awake { color: var(--ok); } .asleep { color: var(--muted); } .waking, .stopping { color: var(--warn); }
.failed { color: var(--bad); }
.muted { color: var(--muted); font-size: .9rem; }
form.inline { display: inline; margin: 0; }
button { font: inherit; font-size: .85rem; padding: .3rem .7rem; border-radius: .4rem;
  border: 1px solid var(--line); background: var(--bg); color: var(--fg); cursor: pointer; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
h2 { font-size: 1rem; margin: 1.6rem 0 .6rem; }
ul.events { list-style: none; padding: 0; margin: 0; background: var(--card);
  border: 1px solid var(--line); border-radius: .6rem; }
ul.events li { padding: .45rem .7rem; border-bottom: 1px solid var(--line); }
ul.events li:last-child { border-bottom: 0; }
.error { color: var(--bad); }
svg.days { display: block; } svg.days rect { fill: var(--accent); }
svg.days rect.none { fill: var(--line); }
.estimate { margin: .4rem 0 0; }
@media (max-width: 640px) {
  table, tbody, tr, td { display: block; width: 100%; } thead { display: none; }
  tr { border-bottom: 1px solid var(--line); padding: .4rem 0; }
  td { border: 0; padding: .2rem .8rem; }
  td[data-label]::before { content: attr(data-label) ": "; color: var(--muted); font-size: .85rem; }
}
"#;

/// Shows times in the reader's time zone, and follows the event stream: each event is
/// added to the recent events (its text set as text, never as HTML) and moves its app's
/// state; events that change the list of apps (or a stream that cannot be followed) reload
/// the page, unless the user is typing in it.
const LIVE: &str = r#"<script id="live">
(function () {
  function localTime(t) {
    var d = new Date(t.getAttribute('datetime'));
    if (!isNaN(d)) { t.textContent = d.toLocaleString(); t.title = t.getAttribute('datetime'); }
  }
  document.querySelectorAll('time[datetime]').forEach(localTime);
  function reload() {
    if (!document.querySelector('input:focus')) { location.replace(location.pathname); }
  }
  var list = document.querySelector('ul.events');
  if (!window.EventSource || !list) { setInterval(reload, 5000); return; }
  var states = { wake_requested: 'waking', started: 'awake', start_failed: 'failed',
    stop_requested: 'stopping', stopped: 'asleep', exited: 'asleep', registered: 'awake' };
  var reloads = { discovered: 1, deleted: 1, unmanaged: 1, config_reloaded: 1 };
  function totals() {
    var awake = 0, asleep = 0;
    document.querySelectorAll('span.state[data-state]').forEach(function (s) {
      var st = s.getAttribute('data-state');
      if (st === 'awake' || st === 'waking') { awake++; } else if (st === 'asleep') { asleep++; }
    });
    var a = document.querySelector('#total-awake b'), b = document.querySelector('#total-asleep b');
    if (a) { a.textContent = awake; } if (b) { b.textContent = asleep; }
  }
  function summary(details) {
    return Object.keys(details || {}).map(function (k) {
      var v = details[k];
      if (v && typeof v === 'object') { v = v.type || ''; }
      return v === '' || v === null ? '' : k + ': ' + v;
    }).filter(Boolean).join(', ');
  }
  var source = new EventSource('/dashboard/events?after=' + (list.getAttribute('data-after') || '0'));
  source.onmessage = function (message) {
    var e;
    try { e = JSON.parse(message.data); } catch (_) { return; }
    if (list.querySelector('li[data-id="' + e.id + '"]')) { return; }
    var empty = list.querySelector('li.muted'); if (empty) { empty.remove(); }
    var li = document.createElement('li'); li.setAttribute('data-id', e.id);
    var when = document.createElement('time'); when.setAttribute('datetime', e.at); localTime(when);
    var at = document.createElement('span'); at.className = 'muted'; at.appendChild(when);
    var who = document.createElement('b'); who.textContent = e.app || e.provider;
    var what = document.createElement('span'); what.className = 'muted'; what.textContent = summary(e.details);
    li.append(at, ' ', who, ' ' + e.kind.replace(/_/g, ' ') + ' ', what);
    list.insertBefore(li, list.firstChild);
    while (list.children.length > 50) { list.removeChild(list.lastChild); }
    if (reloads[e.kind]) { reload(); return; }
    var state = states[e.kind];
    var row = document.getElementById('app-' + e.app + '--' + e.provider);
    var badge = row && row.querySelector('span.state');
    if (state && badge) {
      badge.className = 'state ' + state; badge.setAttribute('data-state', state);
      badge.textContent = state.charAt(0).toUpperCase() + state.slice(1);
      totals();
    }
  };
  source.addEventListener('error', function (message) {
    // The server ended the stream (`event: error`): the browser reconnects by itself,
    // with Last-Event-ID.
    if (message.data) { console.warn('paastis event stream:', message.data); }
  });
})();
</script>"#;

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        escape(title)
    )
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /login`: the login page, in the default space's look and the visitor's language.
pub async fn login_page(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    no_store(Html(login_html(&state, &headers, false)).into_response())
}

/// The login form (`invalid`: the token just sent was refused), rendered by the default
/// space's look.
fn login_html(state: &AdminState, headers: &HeaderMap, invalid: bool) -> String {
    state
        .lifecycle
        .look()
        .login(&crate::pages::Visitor::of(headers), invalid)
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    /// The admin token.
    token: String,
}

/// `POST /login`: a right token becomes the session cookie.
/// The cookie is `Secure` when the request came over HTTPS, as the proxy saw it
/// ([`crate::model::Https`], set when it hands an `admin.host` request over).
pub async fn login(
    State(state): State<AdminState>,
    https: Option<axum::Extension<crate::model::Https>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    // The admin token, or a space's (its dashboard then shows that space only).
    let right = state.caller_of(&form.token).is_some();
    if !right {
        let mut response = Html(login_html(&state, &headers, true)).into_response();
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return no_store(response);
    }
    let mut response = Redirect::to("/").into_response();
    let secure = match https {
        Some(axum::Extension(crate::model::Https(true))) => "; Secure",
        _ => "",
    };
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000{secure}",
        form.token.trim()
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    no_store(response)
}

/// The fields of the page's action forms (start, stop, pin, unpin, sign out).
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    /// The form token of the session ([`super::guard::form_token`]).
    form_token: Option<String>,
}

/// The form token a request sent, if any (an absent or unreadable form sends none).
fn sent_token(form: &Result<Form<ActionForm>, FormRejection>) -> Option<&str> {
    form.as_ref()
        .ok()
        .and_then(|Form(form)| form.form_token.as_deref())
}

/// `POST /logout`: forgets the cookie.
pub async fn logout(
    State(state): State<AdminState>,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    if let Err(error) = super::guard::check_form_token(&state, &headers, sent_token(&form)) {
        return error.into_response();
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("paastis_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// `POST /dashboard/apps/{provider}/{app}/{action}`: start, stop, pin or unpin, then back
/// to the page.
pub async fn act(
    State(state): State<AdminState>,
    Path((provider, name, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let Ok(state) = state.scoped(&headers, None, true) else {
        return Redirect::to("/login").into_response();
    };
    if let Err(error) = super::guard::check_form_token(&state, &headers, sent_token(&form)) {
        return error.into_response();
    }
    let Some(app) = state.lifecycle.app(&provider, &name) else {
        return (StatusCode::NOT_FOUND, "no such app").into_response();
    };
    match action.as_str() {
        "start" => {
            if let Err(error) = state.lifecycle.request_wake(&app, || WakeCause::Api {
                by: Some("dashboard".to_owned()),
            }) {
                return (StatusCode::TOO_MANY_REQUESTS, format!("{name}: {error}")).into_response();
            }
        }
        "stop" => {
            state.lifecycle.stop_now(
                &app,
                StopCause::Api {
                    by: Some("dashboard".to_owned()),
                },
            );
        }
        "pin" => state.lifecycle.pin(&app, None).await,
        "unpin" => state.lifecycle.unpin(&app).await,
        _ => return (StatusCode::NOT_FOUND, "no such action").into_response(),
    }
    Redirect::to("/").into_response()
}

/// `GET /`: the dashboard, or the login form.
pub async fn page(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    let Ok(state) = state.scoped(&headers, None, true) else {
        return Redirect::to("/login").into_response();
    };
    let apps = match super::api::apps_index(
        axum::Extension(state.clone()),
        super::ApiQuery(super::api::AppsQuery {
            provider: None,
            state: None,
            name: None,
        }),
    )
    .await
    {
        Ok(axum::Json(list)) => list.apps,
        Err(_) => Vec::new(),
    };
    // Read before the events shown: the live script follows from here (and skips events
    // already on the page).
    let after = state.store.last_event_id().await.unwrap_or(0);
    let events = super::api::events_index(
        axum::Extension(state.clone()),
        super::ApiQuery(EventsQuery {
            provider: None,
            app: None,
            kind: None,
            since: None,
            until: None,
            limit: Some(15),
            cursor: None,
        }),
    )
    .await
    .map(|axum::Json(list)| list)
    .unwrap_or(EventList {
        events: Vec::new(),
        next_cursor: None,
    });
    let sections = Sections {
        savings: savings(&state).await,
        webhooks: webhooks(&state),
    };
    // With a session cookie, the forms carry its form token (the open dashboard has none).
    let form_token = super::cookie_value(&headers, COOKIE).map(super::guard::form_token);
    no_store(
        Html(render(
            &apps,
            &events,
            &sections,
            state.token.is_some(),
            form_token.as_deref(),
            &state.config.view.load(),
            after,
        ))
        .into_response(),
    )
}

/// What the page shows besides its apps and events.
struct Sections {
    /// The last 30 days' savings (`None`: the store could not tell).
    savings: Option<Savings>,
    /// The space's webhooks, each with its most recent deliveries.
    webhooks: Vec<(WebhookView, Vec<DeliveryView>)>,
}

/// Deliveries shown per webhook (all of them: `paastis webhooks <id>` or the API).
const DELIVERIES_SHOWN: usize = 5;

/// The space's webhooks and their latest deliveries, as the API shows them.
fn webhooks(state: &AdminState) -> Vec<(WebhookView, Vec<DeliveryView>)> {
    let running = state.lifecycle.webhooks();
    running
        .list()
        .iter()
        .map(|hook| {
            let deliveries = hook
                .deliveries()
                .into_iter()
                .take(DELIVERIES_SHOWN)
                .map(super::webhooks::delivery_view)
                .collect();
            (super::webhooks::webhook_view(hook), deliveries)
        })
        .collect()
}

/// The last 30 days: the report, and each app's hours asleep per day.
struct Savings {
    /// Totals and per-app figures.
    report: crate::savings::Report,
    /// (provider, app) -> hours asleep per day, oldest first.
    days: Vec<((String, String), Vec<f64>)>,
}

/// Days in the dashboard's savings chart.
const SAVINGS_DAYS: u32 = 30;

async fn savings(state: &AdminState) -> Option<Savings> {
    let now = state.lifecycle.clock().wall_now();
    let from = now.checked_sub(super::api::SAVINGS_PERIOD)?;
    let apps = super::api::savings_intervals(state, now).await.ok()?;
    let report = crate::savings::report(
        &state.savings,
        &apps,
        from,
        now,
        now,
        crate::savings::GroupBy::App,
    );
    let days = apps
        .iter()
        .map(|(app, intervals)| {
            (
                (app.provider.clone(), app.app.clone()),
                crate::savings::daily_hours(intervals, SAVINGS_DAYS, now),
            )
        })
        .collect();
    Some(Savings { report, days })
}

/// One bar per day, 24 h tall at most.
fn day_bars(hours: &[f64]) -> String {
    let (width, height) = (4usize, 24.0);
    let mut svg = format!(
        "<svg class=\"days\" width=\"{}\" height=\"24\" viewBox=\"0 0 {} 24\" role=\"img\" \
         aria-label=\"hours asleep per day, last {} days\">",
        hours.len() * width,
        hours.len() * width,
        hours.len()
    );
    for (index, value) in hours.iter().enumerate() {
        let bar = (value.clamp(0.0, 24.0) / 24.0 * height).max(1.0);
        let _ = write!(
            svg,
            "<rect{} x=\"{}\" y=\"{:.1}\" width=\"{}\" height=\"{bar:.1}\"><title>{value:.1} h</title></rect>",
            if *value > 0.0 { "" } else { " class=\"none\"" },
            index * width,
            height - bar,
            width - 1,
        );
    }
    svg.push_str("</svg>");
    svg
}

fn savings_section(body: &mut String, savings: &Savings) {
    let total = &savings.report.total;
    let money = crate::savings::money_text(&total.money, "no price known");
    let _ = write!(
        body,
        "<h2>Savings, last 30 days <span class=\"muted\">(estimates)</span></h2>\
         <div class=\"totals\" id=\"savings\">\
         <span class=\"total\"><b>{:.0}</b>hours asleep</span>\
         <span class=\"total\"><b>{:.0}</b>container-hours</span>\
         <span class=\"total\" id=\"savings-money\"><b>{}</b>saved</span>\
         <span class=\"total\"><b>{}</b>CO2e avoided</span></div>",
        total.hours_asleep,
        total.container_hours,
        escape(&money),
        escape(&crate::savings::grams(total.gco2e)),
    );
    body.push_str(
        "<table><thead><tr><th>App</th><th>Provider</th><th>Asleep</th><th>Saved</th>\
         <th>Per day</th></tr></thead><tbody>",
    );
    if savings.report.items.is_empty() {
        body.push_str("<tr><td colspan=\"5\" class=\"muted\">No app has slept yet.</td></tr>");
    }
    for item in &savings.report.items {
        let app = item.app.as_deref().unwrap_or("");
        let days = savings
            .days
            .iter()
            .find(|((provider, name), _)| *provider == item.provider && name == app)
            .map(|(_, days)| day_bars(days))
            .unwrap_or_default();
        let money = crate::savings::money_text(&item.money, "—");
        let _ = write!(
            body,
            "<tr class=\"saving\"><td data-label=\"App\"><b>{}</b></td><td data-label=\"Provider\">{}</td>\
             <td data-label=\"Asleep\">{:.1} h</td><td data-label=\"Saved\">{}</td>\
             <td data-label=\"Per day\">{days}</td></tr>",
            escape(app),
            escape(&item.provider),
            item.hours_asleep,
            escape(&money),
        );
    }
    body.push_str(
        "</tbody></table><p class=\"muted estimate\">Hours asleep × what ran before each stop × \
         the configured or published hourly prices; CO2e counts operational energy only. \
         Unknown prices count hours only.</p>",
    );
}

fn render(
    apps: &[AppView],
    events: &EventList,
    sections: &Sections,
    signed_in: bool,
    form_token: Option<&str>,
    config: &crate::wire::ConfigView,
    after: i64,
) -> String {
    let count = |state: &str| apps.iter().filter(|a| a.state == state).count();
    let mut body = String::new();
    let hidden = form_token
        .map(|token| {
            format!(
                "<input type=\"hidden\" name=\"form_token\" value=\"{}\">",
                escape(token)
            )
        })
        .unwrap_or_default();
    let logout = if signed_in {
        format!(
            "<form class=\"inline\" method=\"post\" action=\"/logout\">{hidden}\
             <button type=\"submit\">Sign out</button></form>"
        )
    } else {
        String::new()
    };
    let _ = write!(
        body,
        "<header><h1>Paastis</h1>{logout}</header><main>\
         <div class=\"totals\">\
         <span class=\"total\" id=\"total-awake\"><b>{}</b>awake</span>\
         <span class=\"total\" id=\"total-asleep\"><b>{}</b>asleep</span>\
         <span class=\"total\"><b>{}</b>apps</span></div>",
        count("awake") + count("waking"),
        count("asleep"),
        apps.len()
    );
    body.push_str(
        "<table><thead><tr><th>App</th><th>Provider</th><th>State</th><th>Sleeps in</th>\
         <th>Last wake</th><th></th></tr></thead><tbody>",
    );
    if apps.is_empty() {
        body.push_str("<tr><td colspan=\"6\" class=\"muted\">No app is managed.</td></tr>");
    }
    for app in apps {
        let id = format!("{}--{}", app.name, app.provider);
        let sleeps = match (&app.pinned_until, app.sleeps_in_seconds, app.state.as_str()) {
            (Some(until), _, _) if until == "forever" => "pinned".to_owned(),
            (Some(until), _, _) => format!("pinned until {until}"),
            (None, Some(seconds), _) => human(seconds),
            (None, None, "awake") => "never".to_owned(),
            _ => "—".to_owned(),
        };
        let wake = app
            .last_wake
            .as_ref()
            .map(|w| {
                format!(
                    "{} <span class=\"muted\">{}</span>",
                    escape(&w.description),
                    time(&w.at)
                )
            })
            .unwrap_or_else(|| "<span class=\"muted\">—</span>".to_owned());
        let action = |action: &str, label: &str, primary: bool| {
            format!(
                "<form class=\"inline\" method=\"post\" action=\"/dashboard/apps/{}/{}/{action}\">{hidden}\
                 <button type=\"submit\" name=\"{action}\" data-app=\"{}\"{}>{label}</button></form> ",
                escape(&app.provider),
                escape(&app.name),
                escape(&id),
                if primary { " class=\"primary\"" } else { "" }
            )
        };
        let mut buttons = String::new();
        match app.state.as_str() {
            "awake" => buttons.push_str(&action("stop", "Stop", false)),
            "asleep" | "failed" => buttons.push_str(&action("start", "Start", true)),
            _ => {}
        }
        if app.pinned_until.is_some() {
            buttons.push_str(&action("unpin", "Unpin", false));
        } else {
            buttons.push_str(&action("pin", "Pin", false));
        }
        let reason = app
            .reason
            .as_ref()
            .map(|r| format!(" <span class=\"muted\">{}</span>", escape(r)))
            .unwrap_or_default();
        let _ = write!(
            body,
            "<tr id=\"app-{id}\"><td data-label=\"App\"><b>{}</b><br><span class=\"muted\">{}</span></td>\
             <td data-label=\"Provider\">{}</td>\
             <td data-label=\"State\"><span class=\"state {}\" data-state=\"{}\">{}</span>{reason}</td>\
             <td data-label=\"Sleeps in\">{}</td><td data-label=\"Last wake\">{wake}</td>\
             <td>{buttons}</td></tr>",
            escape(&app.name),
            escape(app.hosts.first().map(String::as_str).unwrap_or("")),
            escape(&app.provider),
            escape(&app.state),
            escape(&app.state),
            escape(&capitalize(&app.state)),
            escape(&sleeps),
            id = escape(&id),
        );
    }
    body.push_str("</tbody></table>");
    if let Some(savings) = &sections.savings {
        savings_section(&mut body, savings);
    }
    if !sections.webhooks.is_empty() {
        webhooks_section(&mut body, &sections.webhooks);
    }
    let _ = write!(
        body,
        "<h2>Recent events</h2><ul class=\"events\" data-after=\"{after}\">"
    );
    if events.events.is_empty() {
        body.push_str("<li class=\"muted\">Nothing yet.</li>");
    }
    for event in &events.events {
        let _ = write!(
            body,
            "<li data-id=\"{}\"><span class=\"muted\">{}</span> <b>{}</b> {} <span class=\"muted\">{}</span></li>",
            event.id,
            time(&event.at),
            escape(if event.app.is_empty() {
                &event.provider
            } else {
                &event.app
            }),
            escape(&event.kind.replace('_', " ")),
            escape(&summary(&event.details)),
        );
    }
    body.push_str("</ul>");
    // Which configuration runs here: instances that show different revisions run different
    // settings.
    let reload = config
        .last_reload
        .as_ref()
        .map(|last| {
            format!(
                "; last reload {} ({}, {}){}",
                time(&last.at),
                escape(&last.result.replace('_', " ")),
                escape(&last.trigger),
                if last.errors.is_empty() {
                    String::new()
                } else {
                    format!(": {}", escape(&last.errors.join("; ")))
                }
            )
        })
        .unwrap_or_default();
    let _ = write!(
        body,
        "<p class=\"muted\" id=\"config\">Configuration <code>{}</code>, loaded {}{reload}</p>",
        escape(&config.revision),
        time(&config.loaded_at),
    );
    body.push_str("</main>");
    body.push_str(LIVE);
    layout("Paastis", &body)
}

/// The webhooks: where each sends (scheme and host only, as the API shows), what, its
/// counts, and its latest deliveries in a fold (no script needed).
fn webhooks_section(body: &mut String, webhooks: &[(WebhookView, Vec<DeliveryView>)]) {
    body.push_str(
        "<h2>Webhooks</h2><table class=\"webhooks\"><thead><tr><th>Webhook</th><th>Sends to</th>\
         <th>Events</th><th>Queued</th><th>Delivered</th><th>Failed</th><th>Dropped</th>\
         </tr></thead><tbody>",
    );
    for (hook, deliveries) in webhooks {
        let mut about = vec![hook.format.clone()];
        if hook.signed {
            about.push("signed".to_owned());
        }
        if let Some(rule) = &hook.rule {
            about.push(format!("rule {rule}"));
        }
        let _ = write!(
            body,
            "<tr class=\"webhook\" id=\"webhook-{id}\"><td data-label=\"Webhook\"><b>{id}</b> \
             <span class=\"muted\">{about}</span></td><td data-label=\"Sends to\"><code>{}</code></td>\
             <td data-label=\"Events\">{}</td><td data-label=\"Queued\">{}</td>\
             <td data-label=\"Delivered\">{}</td><td data-label=\"Failed\">{}</td>\
             <td data-label=\"Dropped\">{}</td></tr>",
            escape(&hook.target),
            escape(&hook.events.join(", ").replace('_', " ")),
            hook.queued,
            hook.delivered,
            hook.failed,
            hook.dropped,
            id = escape(&hook.id),
            about = escape(&about.join(", ")),
        );
        body.push_str("<tr class=\"deliveries\"><td colspan=\"7\">");
        if deliveries.is_empty() {
            body.push_str("<span class=\"muted\">No delivery yet.</span></td></tr>");
            continue;
        }
        let _ = write!(
            body,
            "<details><summary>Latest deliveries ({})</summary><ul class=\"deliveries\">",
            deliveries.len()
        );
        for delivery in deliveries {
            let answered = delivery
                .response_status
                .map(|status| format!(", answered {status}"))
                .unwrap_or_default();
            let error = delivery
                .last_error
                .as_deref()
                .map(|error| format!(": {}", escape(error)))
                .unwrap_or_default();
            let _ = write!(
                body,
                "<li><span class=\"muted\">{}</span> <b>{}</b> {} {} <span class=\"muted\">\
                 {} attempt{}{answered}{error}</span></li>",
                time(&delivery.created_at),
                escape(&delivery.status),
                escape(&delivery.kind.replace('_', " ")),
                escape(&delivery.app),
                delivery.attempts,
                if delivery.attempts == 1 { "" } else { "s" },
            );
        }
        body.push_str("</ul></details></td></tr>");
    }
    body.push_str("</tbody></table>");
}

/// `GET /dashboard/events`: the live event stream of the signed-in space (the session
/// cookie, which the browser's `EventSource` sends), for the page's script.
pub async fn events(
    State(state): State<AdminState>,
    headers: HeaderMap,
    super::ApiQuery(query): super::ApiQuery<super::stream::StreamQuery>,
) -> Response {
    let state = match state.scoped(&headers, None, true) {
        Ok(state) => state,
        Err(error) => return error.into_response(),
    };
    match super::stream::events_stream(axum::Extension(state), headers, super::ApiQuery(query))
        .await
    {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// A time, shown in the reader's own time zone once the page's script has run (UTC
/// before, and without JavaScript).
fn time(rfc3339: &str) -> String {
    let text = escape(rfc3339);
    format!("<time datetime=\"{text}\">{text}</time>")
}

/// A few words from an event's details.
fn summary(details: &serde_json::Value) -> String {
    let Some(map) = details.as_object() else {
        return String::new();
    };
    let mut parts = Vec::new();
    for (key, value) in map {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(inner) => inner
                .get("type")
                .and_then(|t| t.as_str())
                .unwrap_or("")
                .to_owned(),
            other => other.to_string(),
        };
        if !text.is_empty() {
            parts.push(format!("{key}: {text}"));
        }
    }
    parts.join(", ")
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `90` -> `1m 30s`.
fn human(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m {}s", seconds / 60, seconds % 60),
        _ => format!("{}h {}m", seconds / 3600, seconds % 3600 / 60),
    }
}
