//! What the API-client subcommands print for people: plain-text tables (like
//! [`crate::table`]), `key: value` lines, local times and short durations.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::wire::{AppView, EventView, ProviderView};
use crate::wire::{IssuedTokenView, SpaceView};

use crate::table::render as table;

/// `42s`, `14m 3s`, `2h 5m`, `3d 4h`.
pub fn short_duration(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds % 86_400 / 3_600,
        seconds % 3_600 / 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) if s == 0 => format!("{m}m"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) if m == 0 => format!("{h}h"),
        (0, _, _) => format!("{h}h {m}m"),
        _ if h == 0 => format!("{d}d"),
        _ => format!("{d}d {h}h"),
    }
}

/// An RFC 3339 time from the API as a `SystemTime`.
fn parse(at: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|at| SystemTime::from(at.with_timezone(&chrono::Utc)))
}

/// An RFC 3339 time from the API in local time (`2026-01-02 15:04:05`); as given when it does
/// not parse.
pub fn local_time(at: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(at) {
        Ok(at) => at
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => at.to_owned(),
    }
}

/// `3m 2s ago` (`just now` for a time ahead of this machine's clock).
fn ago(at: &str, now: SystemTime) -> String {
    match parse(at).map(|at| now.duration_since(at)) {
        Some(Ok(elapsed)) if elapsed >= Duration::from_secs(1) => {
            format!("{} ago", short_duration(elapsed.as_secs()))
        }
        Some(_) => "just now".to_owned(),
        None => at.to_owned(),
    }
}

/// When the idle check will stop the app: a duration, `pinned`, `never`, or `-`.
pub fn sleeps_in(app: &AppView) -> String {
    if app.pinned_until.is_some() {
        return "pinned".to_owned();
    }
    match app.sleeps_in_seconds {
        Some(seconds) => short_duration(seconds),
        None if app.state == "awake" && app.policy.max_idle_seconds.is_none() => "never".to_owned(),
        None => "-".to_owned(),
    }
}

/// `3m ago (api)`, or `-`.
fn last_wake(app: &AppView, now: SystemTime) -> String {
    match &app.last_wake {
        Some(wake) => format!("{} ({})", ago(&wake.at, now), wake.cause),
        None => "-".to_owned(),
    }
}

/// `paastis apps list`: APP, PROVIDER, STATE, SLEEPS IN, LAST WAKE.
pub fn apps_table(apps: &[AppView], now: SystemTime) -> String {
    let mut rows = vec![
        ["APP", "PROVIDER", "STATE", "SLEEPS IN", "LAST WAKE"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for app in apps {
        rows.push(vec![
            app.name.clone(),
            app.provider.clone(),
            app.state.clone(),
            sleeps_in(app),
            last_wake(app, now),
        ]);
    }
    let mut out = table(&rows);
    if apps.is_empty() {
        out.push_str("(no app)\n");
    }
    out
}

/// `paastis apps show`: one `key: value` line per fact.
pub fn app_details(app: &AppView, now: SystemTime) -> String {
    let mut lines: Vec<(&str, String)> = vec![
        ("app", app.name.clone()),
        ("provider", app.provider.clone()),
        ("state", app.state.clone()),
    ];
    if let Some(reason) = &app.reason {
        lines.push(("reason", reason.clone()));
    }
    lines.push(("hosts", app.hosts.join(", ")));
    lines.push(("max idle", app.policy.max_idle.clone()));
    lines.push(("sleeps in", sleeps_in(app)));
    lines.push((
        "pinned until",
        match app.pinned_until.as_deref() {
            None => "-".to_owned(),
            Some("forever") => "forever (until unpinned)".to_owned(),
            Some(at) => local_time(at),
        },
    ));
    lines.push((
        "last activity",
        format!(
            "{} ({})",
            local_time(&app.last_activity),
            ago(&app.last_activity, now)
        ),
    ));
    lines.push((
        "last wake",
        match &app.last_wake {
            Some(wake) => format!("{}: {}", local_time(&wake.at), wake.description),
            None => "-".to_owned(),
        },
    ));
    lines.push(("strategy", app.policy.strategy.clone()));
    lines.push((
        "wake timeout",
        short_duration(app.policy.wake_timeout_seconds),
    ));
    lines.push((
        "health path",
        app.policy
            .health_path
            .clone()
            .unwrap_or_else(|| "-".to_owned()),
    ));
    lines.push((
        "formation",
        if app.formation.is_empty() {
            "-".to_owned()
        } else {
            app.formation
                .iter()
                .map(|(kind, count)| format!("{kind}={count}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
    ));
    lines.push((
        "start eta",
        app.eta_seconds
            .map_or_else(|| "-".to_owned(), |eta| format!("{eta:.1}s")),
    ));
    lines.push(("in flight", app.in_flight.to_string()));
    let width = lines.iter().map(|(key, _)| key.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (key, value) in lines {
        out.push_str(&format!("{:<width$} {value}\n", format!("{key}:")));
    }
    out
}

/// `paastis providers`: ID, TYPE, APPS, HEALTH, LAST ERROR.
pub fn providers_table(providers: &[ProviderView]) -> String {
    let mut rows = vec![
        ["ID", "TYPE", "APPS", "HEALTH", "LAST ERROR"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for provider in providers {
        rows.push(vec![
            provider.id.clone(),
            provider.kind.clone(),
            provider.apps.to_string(),
            if provider.healthy { "ok" } else { "failing" }.to_owned(),
            match (&provider.last_error, &provider.last_error_at) {
                (Some(error), Some(at)) => format!("{error} ({})", local_time(at)),
                (Some(error), None) => error.clone(),
                (None, _) => "-".to_owned(),
            },
        ]);
    }
    let mut out = table(&rows);
    if providers.is_empty() {
        out.push_str("(no provider)\n");
    }
    out
}

/// The webhooks: where each sends (scheme and host), what, and its counts.
pub fn webhooks_table(webhooks: &[crate::wire::WebhookView]) -> String {
    let mut rows = vec![
        [
            "ID",
            "TARGET",
            "EVENTS",
            "FORMAT",
            "SIGNED",
            "RULE",
            "QUEUED",
            "DELIVERED",
            "FAILED",
            "DROPPED",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for webhook in webhooks {
        rows.push(vec![
            webhook.id.clone(),
            webhook.target.clone(),
            if webhook.events.is_empty() {
                "(all)".to_owned()
            } else {
                webhook.events.join(",")
            },
            webhook.format.clone(),
            if webhook.signed { "yes" } else { "no" }.to_owned(),
            webhook.rule.clone().unwrap_or_else(|| "-".to_owned()),
            webhook.queued.to_string(),
            webhook.delivered.to_string(),
            webhook.failed.to_string(),
            webhook.dropped.to_string(),
        ]);
    }
    let mut out = table(&rows);
    if webhooks.is_empty() {
        out.push_str("(no webhook)\n");
    }
    out
}

/// A webhook's deliveries, newest first.
pub fn deliveries_table(deliveries: &[crate::wire::DeliveryView]) -> String {
    let mut rows = vec![
        [
            "CREATED",
            "KIND",
            "APP",
            "STATUS",
            "ATTEMPTS",
            "HTTP",
            "LAST ERROR",
            "ID",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for delivery in deliveries {
        rows.push(vec![
            local_time(&delivery.created_at),
            delivery.kind.clone(),
            if delivery.app.is_empty() {
                "-".to_owned()
            } else {
                delivery.app.clone()
            },
            delivery.status.clone(),
            delivery.attempts.to_string(),
            delivery
                .response_status
                .map_or_else(|| "-".to_owned(), |status| status.to_string()),
            delivery
                .last_error
                .clone()
                .unwrap_or_else(|| "-".to_owned()),
            delivery.id.clone(),
        ]);
    }
    let mut out = table(&rows);
    if deliveries.is_empty() {
        out.push_str("(no delivery yet)\n");
    }
    out
}

/// The savings report: one line per app (or provider), a total, and what the figures are.
pub fn savings_table(report: &crate::savings::Report) -> String {
    let by_app = report.group_by == "app";
    let mut header = vec!["PROVIDER"];
    if by_app {
        header.push("APP");
    }
    header.extend(["ASLEEP", "CONTAINER-HOURS", "SAVED", "CO2E"]);
    let mut rows = vec![header.into_iter().map(str::to_owned).collect::<Vec<_>>()];
    let line = |saved: &crate::savings::Saved, provider: &str, app: Option<&str>| {
        let mut row = vec![provider.to_owned()];
        if by_app {
            row.push(app.unwrap_or("").to_owned());
        }
        row.push(format!("{:.1} h", saved.hours_asleep));
        row.push(format!("{:.1}", saved.container_hours));
        row.push(crate::savings::money_text(&saved.money, "-"));
        row.push(crate::savings::grams(saved.gco2e));
        row
    };
    for saved in &report.items {
        rows.push(line(saved, &saved.provider, saved.app.as_deref()));
    }
    rows.push(line(&report.total, "TOTAL", Some("")));
    let mut out = table(&rows);
    out.push_str(&format!(
        "\nEstimates from {} to {}: hours asleep × what ran before each stop × prices \
         (savings.prices, or a cited built-in table); CO2e counts energy only.\n",
        local_time(&report.from),
        local_time(&report.to)
    ));
    if report.total.unpriced_container_hours > 0.0 {
        out.push_str(&format!(
            "{:.1} container-hours have no known price (not in SAVED): set savings.prices.\n",
            report.total.unpriced_container_hours
        ));
    }
    out
}

/// `paastis spaces list`: ID, ORIGIN, DOMAINS, PLAN, PROVIDERS, APPS, TOKENS.
pub fn spaces_table(spaces: &[SpaceView], hosted: bool) -> String {
    let mut rows = vec![
        [
            "ID",
            "ORIGIN",
            "DOMAINS",
            "PLAN",
            "PROVIDERS",
            "APPS",
            "TOKENS",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for space in spaces {
        let providers: Vec<&str> = space.providers.iter().map(|p| p.id.as_str()).collect();
        rows.push(vec![
            space.id.clone(),
            space.origin.clone(),
            list_or_dash(&space.domains),
            space.plan.clone(),
            list_or_dash(&providers),
            space.apps.to_string(),
            (space.tokens.len() + space.config_tokens).to_string(),
        ]);
    }
    let mut out = table(&rows);
    if spaces.is_empty() {
        out.push_str("(no space)\n");
    }
    if !hosted {
        out.push_str("(hosted mode is off: spaces come from the config file only)\n");
    }
    out
}

/// `a, b`, or `-` for none.
fn list_or_dash<T: AsRef<str>>(items: &[T]) -> String {
    if items.is_empty() {
        return "-".to_owned();
    }
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `key: value` lines, aligned.
fn key_values(lines: &[(&str, String)]) -> String {
    let width = lines.iter().map(|(key, _)| key.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (key, value) in lines {
        out.push_str(&format!("{:<width$} {value}\n", format!("{key}:")));
    }
    out
}

/// The names of the credentials set for provider `id`, from the document's `secrets`; none
/// when the document does not say (a config file space).
fn secrets_set(document: Option<&Value>, id: &str) -> Option<Vec<String>> {
    let entry = document?
        .get("providers")?
        .as_array()?
        .iter()
        .find(|entry| entry.get("id").and_then(Value::as_str) == Some(id))?;
    let names = entry.get("secrets")?.as_array()?;
    Some(
        names
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
    )
}

/// `paastis spaces show`: its settings, providers, tokens, and its document.
pub fn space_details(space: &SpaceView) -> String {
    let limit =
        |limit: Option<usize>| limit.map_or_else(|| "no limit".to_owned(), |n| n.to_string());
    let mut lines: Vec<(&str, String)> = vec![
        ("space", space.id.clone()),
        ("origin", space.origin.clone()),
        ("domains", list_or_dash(&space.domains)),
        ("plan", space.plan.clone()),
        ("max providers", limit(space.plan_providers)),
        (
            "max running apps",
            format!(
                "{} per provider",
                limit(space.plan_running_apps_per_provider)
            ),
        ),
        ("on limit", space.on_limit.clone()),
        ("apps", space.apps.to_string()),
    ];
    if let Some(revision) = space.revision {
        lines.push(("revision", revision.to_string()));
    }
    if let Some(at) = &space.created_at {
        lines.push(("created", local_time(at)));
    }
    if let Some(at) = &space.updated_at {
        lines.push(("updated", local_time(at)));
    }
    if space.config_tokens > 0 {
        lines.push(("config tokens", space.config_tokens.to_string()));
    }
    let mut out = key_values(&lines);

    out.push_str("\nProviders:\n");
    if space.providers.is_empty() {
        out.push_str("(no provider)\n");
    } else {
        let mut rows = vec![["ID", "TYPE", "SECRETS SET"].map(str::to_owned).to_vec()];
        for provider in &space.providers {
            let secrets = match secrets_set(space.document.as_ref(), &provider.id) {
                Some(names) if names.is_empty() => "none".to_owned(),
                Some(names) => names.join(", "),
                None => "-".to_owned(),
            };
            rows.push(vec![provider.id.clone(), provider.kind.clone(), secrets]);
        }
        out.push_str(&table(&rows));
    }

    out.push_str("\nTokens:\n");
    if space.tokens.is_empty() {
        out.push_str(if space.config_tokens > 0 {
            "(only the config file's)\n"
        } else {
            "(no token)\n"
        });
    } else {
        let mut rows = vec![["ID", "CREATED"].map(str::to_owned).to_vec()];
        for token in &space.tokens {
            rows.push(vec![token.id.clone(), local_time(&token.created_at)]);
        }
        out.push_str(&table(&rows));
    }

    if let Some(document) = &space.document
        && let Ok(text) = serde_json::to_string_pretty(document)
    {
        out.push_str("\nDocument (credentials left out):\n");
        out.push_str(&text);
        out.push('\n');
    }
    out
}

/// A token just issued, and that it is shown this once.
pub fn issued_token(space: &str, token: &IssuedTokenView) -> String {
    format!(
        "token id: {}\ntoken:    {}\nThis token is shown once: keep it now (`paastis spaces token {space}` issues another).\n",
        token.id, token.token
    )
}

/// An event's details as `key=value` pairs: nested values under dotted keys, a tagged one
/// (`{"type": "api", ...}`) as its type, strings with spaces quoted, nulls left out.
fn details(details: &Value) -> String {
    let mut pairs = Vec::new();
    flatten("", details, &mut pairs);
    pairs.join(" ")
}

fn flatten(prefix: &str, value: &Value, out: &mut Vec<String>) {
    let word = |text: &str| {
        if !text.is_empty() && !text.contains(char::is_whitespace) && !text.contains('"') {
            text.to_owned()
        } else {
            Value::String(text.to_owned()).to_string()
        }
    };
    match value {
        Value::Null => {}
        Value::Object(map) => {
            let tag = map
                .get("type")
                .and_then(Value::as_str)
                .filter(|_| !prefix.is_empty());
            if let Some(tag) = tag {
                out.push(format!("{prefix}={}", word(tag)));
            }
            for (key, value) in map {
                if tag.is_some() && key == "type" {
                    continue;
                }
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&name, value, out);
            }
        }
        Value::String(text) if !prefix.is_empty() => out.push(format!("{prefix}={}", word(text))),
        other if !prefix.is_empty() => out.push(format!("{prefix}={other}")),
        other => out.push(other.to_string()),
    }
}

/// Prints events as they come: TIME, APP, KIND, DETAILS in columns that keep their width
/// from one batch to the next (`--follow`), or one JSON document per line.
#[derive(Debug)]
pub struct EventPrinter {
    /// One compact JSON event per line instead of columns.
    json: bool,
    /// The APP column's width so far (it only grows, so a follow stays aligned).
    app_width: usize,
}

/// The KIND column's width: the longest kind (`wake_requested`, `provider_error`).
const KIND_WIDTH: usize = 14;

/// The TIME column's width (`2026-01-02 15:04:05`).
const TIME_WIDTH: usize = 19;

impl EventPrinter {
    /// A printer of columns, or of JSON lines.
    pub fn new(json: bool) -> EventPrinter {
        EventPrinter {
            json,
            app_width: 12,
        }
    }

    /// `events` (oldest first) as text; with `header`, the column names first.
    pub fn print(&mut self, events: &[EventView], header: bool) -> String {
        let mut out = String::new();
        if self.json {
            for event in events {
                if let Ok(line) = serde_json::to_string(event) {
                    out.push_str(&line);
                    out.push('\n');
                }
            }
            return out;
        }
        let app = |event: &EventView| {
            if event.app.is_empty() {
                event.provider.clone()
            } else {
                format!("{}/{}", event.provider, event.app)
            }
        };
        for event in events {
            self.app_width = self.app_width.max(app(event).chars().count());
        }
        let width = self.app_width;
        if header {
            out.push_str(&format!(
                "{:<TIME_WIDTH$}  {:<width$}  {:<KIND_WIDTH$}  DETAILS\n",
                "TIME", "APP", "KIND"
            ));
        }
        for event in events {
            let line = format!(
                "{:<TIME_WIDTH$}  {:<width$}  {:<KIND_WIDTH$}  {}",
                local_time(&event.at),
                app(event),
                event.kind,
                details(&event.details)
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
        if header && events.is_empty() {
            out.push_str("(no event)\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_are_short() {
        assert_eq!(short_duration(0), "0s");
        assert_eq!(short_duration(42), "42s");
        assert_eq!(short_duration(60), "1m");
        assert_eq!(short_duration(843), "14m 3s");
        assert_eq!(short_duration(7_500), "2h 5m");
        assert_eq!(short_duration(7_200), "2h");
        assert_eq!(short_duration(3 * 86_400 + 4 * 3_600 + 5), "3d 4h");
    }

    #[test]
    fn tables_align_and_trim() {
        let rows = vec![
            vec!["A".to_owned(), "BB".to_owned(), "C".to_owned()],
            vec!["long".to_owned(), "x".to_owned(), String::new()],
        ];
        assert_eq!(table(&rows), "A     BB  C\nlong  x\n");
    }

    #[test]
    fn details_are_key_value_pairs() {
        let value = json!({"cause": "api", "duration_ms": 120, "reason": "exit 1", "by": null});
        assert_eq!(
            details(&value),
            "cause=api duration_ms=120 reason=\"exit 1\""
        );
        let nested = json!({"cause": {"type": "request", "host": "web.localhost", "by": null},
            "formation": {"web": 1}});
        assert_eq!(
            details(&nested),
            "cause=request cause.host=web.localhost formation.web=1"
        );
    }

    fn space(document: Option<Value>) -> SpaceView {
        serde_json::from_value(json!({
            "id": "acme", "origin": "api", "domains": ["acme.test"], "plan": "free",
            "plan_providers": 1, "plan_running_apps_per_provider": null,
            "on_limit": "reject", "providers": [{"id": "hk", "type": "heroku"}],
            "apps": 2, "tokens": [{"id": "tok_1", "created_at": "2026-01-02T03:04:05.000Z"}],
            "config_tokens": 0, "document": document, "revision": 1,
            "created_at": "2026-01-02T03:04:05.000Z", "updated_at": "2026-01-02T03:04:05.000Z"
        }))
        .expect("a space view")
    }

    #[test]
    fn spaces_list_and_show() {
        let document = json!({"id": "acme", "providers": [{"id": "hk", "type": "heroku", "secrets": ["token"]}]});
        let shown = space(Some(document));
        let list = spaces_table(std::slice::from_ref(&shown), true);
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines.len(), 2, "{list}");
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["acme", "api", "acme.test", "free", "hk", "2", "1"]
        );
        assert!(spaces_table(&[], false).contains("hosted mode is off"));
        let details = space_details(&shown);
        assert!(details.contains("max providers:"), "{details}");
        assert!(details.contains("no limit per provider"), "{details}");
        let provider = details
            .lines()
            .find(|line| line.starts_with("hk "))
            .expect("provider line");
        assert_eq!(
            provider.split_whitespace().collect::<Vec<_>>(),
            ["hk", "heroku", "token"]
        );
        assert!(details.contains("tok_1"), "{details}");
        assert!(details.contains("\"secrets\""), "{details}");
        let bare = space_details(&space(None));
        assert!(!bare.contains("Document"), "{bare}");
        assert!(
            bare.lines()
                .any(|line| line.split_whitespace().collect::<Vec<_>>() == ["hk", "heroku", "-"]),
            "{bare}"
        );
    }

    #[test]
    fn times_in_the_future_are_just_now() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(ago("2023-11-14T22:13:20.000Z", now), "just now");
        assert_eq!(ago("2023-11-14T22:10:20.000Z", now), "3m ago");
        assert_eq!(ago("garbage", now), "garbage");
    }
}
