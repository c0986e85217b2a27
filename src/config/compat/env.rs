//! The original engine's environment variables, one function per group (listener,
//! provider and its platform's variables, registry, discovery, idle time, hooks, system
//! API, events), each turning the variables it reads into [`Entry`]s and [`Notice`]s.
//!
//! It reads the environment it is given (never the process's) and writes no configuration:
//! [`apply`](super::apply) does.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use serde_json::{Map, Value};

use super::{Entry, Mapped, Notice, var};
use crate::config::format_duration;

/// Variables only the original engine reads (the generic `HOST`, `PORT`, `REDIS_URL`,
/// `DATABASE_URL` and `LOG_LEVEL` are left out: platforms set them for any app).
const ORIGINAL_VARIABLES: &[&str] = &[
    "PROVIDER_NAME",
    "PROVIDER_REGION",
    "PROVIDER_SCALINGO_API_TOKEN",
    "PROVIDER_SCALINGO_OPERATION_TIMEOUT",
    "PROVIDER_HEROKU_API_TOKEN",
    "PROVIDER_HEROKU_OPERATION_TIMEOUT",
    "PROVIDER_CLEVER_API_HOST",
    "PROVIDER_CLEVER_OAUTH_CONSUMER_KEY",
    "PROVIDER_CLEVER_OAUTH_CONSUMER_SECRET",
    "PROVIDER_CLEVER_TOKEN",
    "PROVIDER_CLEVER_SECRET",
    "PROVIDER_CLEVER_OPERATION_TIMEOUT",
    "REGISTRY_TYPE",
    "REGISTRY_IGNORED_APPS",
    "REGISTRY_REDIS_URL",
    "START_AND_STOP_CHECKING_INTERVAL_CRON",
    "START_AND_STOP_MAX_IDLE_TIME",
    "HOOKS_BEFORE_START",
    "HOOKS_AFTER_START",
    "HOOKS_BEFORE_STOP",
    "HOOKS_AFTER_STOP",
    "ROUTING_SYSTEM_API_ENABLED",
    "ROUTING_SYSTEM_API_TOKEN",
    "EVENTS_STORE_TYPE",
];

/// Whether the environment sets any variable only the original engine reads: then
/// `paastis` runs without a configuration file, as the original did.
pub fn uses_original_env(env: &HashMap<String, String>) -> bool {
    ORIGINAL_VARIABLES
        .iter()
        .any(|name| var(env, name).is_some())
}

/// `HOST` and `PORT` -> `listen` (defaults 0.0.0.0 and 3000, as in the original engine).
pub(super) fn listen(env: &HashMap<String, String>, mapped: &mut Mapped) {
    let host = var(env, "HOST").map(str::trim);
    let port = var(env, "PORT").map(str::trim);
    let origin = match (host, port) {
        (None, None) => return,
        (Some(_), Some(_)) => "HOST, PORT",
        (Some(_), None) => "HOST",
        (None, Some(_)) => "PORT",
    };
    let mut entry = Entry::new(&["listen"], origin);
    let port_number = match port {
        None => Some(3000),
        Some(text) => match text.parse::<u16>() {
            Ok(number) => Some(number),
            Err(_) => {
                entry.error(
                    "listen",
                    "PORT",
                    format!("`{text}` is not a port number (0..65535)"),
                );
                None
            }
        },
    };
    if let Some(port) = port_number {
        match resolve(host.unwrap_or("0.0.0.0"), port) {
            Ok(addr) => entry.value = Value::String(addr.to_string()),
            Err(message) => entry.error("listen", "HOST", message),
        }
    }
    mapped.entries.push(entry);
}

/// An address to listen on: an IP address, `localhost`, or a name resolved as the original
/// engine's server did.
fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    let found: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|error| format!("cannot resolve the host name `{host}`: {error}"))?
        .collect();
    found
        .iter()
        .find(|addr| addr.is_ipv4())
        .or_else(|| found.first())
        .copied()
        .ok_or_else(|| format!("the host name `{host}` has no address"))
}

/// `PROVIDER_NAME` and the chosen provider's variables -> one `providers` entry.
pub(super) fn provider(env: &HashMap<String, String>, mapped: &mut Mapped) {
    let (kind, origin) = match var(env, "PROVIDER_NAME") {
        Some(name) => (name.trim().to_owned(), "PROVIDER_NAME"),
        // The original engine's default provider.
        None if var(env, "PROVIDER_SCALINGO_API_TOKEN").is_some() => {
            ("scalingo".to_owned(), "PROVIDER_SCALINGO_API_TOKEN")
        }
        None => {
            for (name, kind) in [
                ("PROVIDER_HEROKU_API_TOKEN", "heroku"),
                ("PROVIDER_CLEVER_OAUTH_CONSUMER_KEY", "clever-cloud"),
                ("PROVIDER_CLEVER_TOKEN", "clever-cloud"),
            ] {
                if var(env, name).is_some() {
                    mapped.notices.push(Notice::warning(format!(
                        "{name} is set but PROVIDER_NAME is not, so no provider is configured \
                         from the environment (the original engine then used scalingo): set \
                         PROVIDER_NAME={kind}"
                    )));
                    break;
                }
            }
            return;
        }
    };
    let mut entry = Entry::new(&["providers"], origin);
    let mut fields = Map::new();
    let base = "providers[0]";
    entry.origins.push((base.to_owned(), origin.to_owned()));
    let mut field = |entry: &mut Entry, key: &str, name: &str, secret: bool| {
        let path = format!("{base}.{key}");
        entry.origins.push((path.clone(), name.to_owned()));
        if let Some(value) = var(env, name) {
            let value = value.trim();
            fields.insert(key.to_owned(), Value::String(value.to_owned()));
            if secret {
                entry.from_env.push((path, value.to_owned()));
            }
        }
    };
    let timeout = match kind.as_str() {
        "scalingo" => {
            field(&mut entry, "token", "PROVIDER_SCALINGO_API_TOKEN", true);
            field(&mut entry, "api_url", "PROVIDER_SCALINGO_API_URL", false);
            field(&mut entry, "auth_url", "PROVIDER_SCALINGO_AUTH_URL", false);
            Some("PROVIDER_SCALINGO_OPERATION_TIMEOUT")
        }
        "heroku" => {
            field(&mut entry, "token", "PROVIDER_HEROKU_API_TOKEN", true);
            field(&mut entry, "api_url", "PROVIDER_HEROKU_API_URL", false);
            Some("PROVIDER_HEROKU_OPERATION_TIMEOUT")
        }
        "clever-cloud" => {
            for (key, name) in [
                ("consumer_key", "PROVIDER_CLEVER_OAUTH_CONSUMER_KEY"),
                ("consumer_secret", "PROVIDER_CLEVER_OAUTH_CONSUMER_SECRET"),
                ("token", "PROVIDER_CLEVER_TOKEN"),
                ("secret", "PROVIDER_CLEVER_SECRET"),
            ] {
                field(&mut entry, key, name, true);
            }
            field(&mut entry, "api_url", "PROVIDER_CLEVER_API_HOST", false);
            Some("PROVIDER_CLEVER_OPERATION_TIMEOUT")
        }
        other => {
            entry.error(
                "providers",
                origin,
                format!(
                    "`{other}` is not a provider of the original engine (expected scalingo, heroku or clever-cloud)"
                ),
            );
            None
        }
    };
    let Some(timeout) = timeout else {
        mapped.entries.push(entry);
        return;
    };
    // Ids must be unique; the provider's name is what `<app>--<id>` hosts use.
    let mut value = Map::new();
    value.insert("id".to_owned(), Value::String(kind.clone()));
    value.insert("type".to_owned(), Value::String(kind.clone()));
    if kind == "scalingo"
        && let Some(region) = scalingo_region(env, &mut entry)
    {
        value.insert("region".to_owned(), Value::String(region));
    } else if kind != "scalingo" && var(env, "PROVIDER_REGION").is_some() {
        entry.notes.push(Notice::info(format!(
            "PROVIDER_REGION has no effect on {kind} (it had none in the original engine either)"
        )));
    }
    value.extend(fields);
    entry.value = Value::Array(vec![Value::Object(value)]);
    mapped.entries.push(entry);

    if let Some(raw) = var(env, timeout) {
        let mut wake = Entry::new(&["defaults", "wake_timeout"], timeout);
        wake.requires = Some(vec!["providers"]);
        match raw.trim().parse::<u64>() {
            // The original engine read 0 as "use the default".
            Ok(0) => return,
            Ok(seconds) => {
                wake.value = Value::String(format_duration(Duration::from_secs(seconds)));
                wake.notes.push(Notice::info(format!(
                    "{timeout} (seconds) is used as defaults.wake_timeout: paastis has no \
                     per-provider operation timeout, it bounds each app's whole wake"
                )));
            }
            Err(_) => wake.error(
                "defaults.wake_timeout",
                timeout,
                format!("`{}` is not a whole number of seconds", raw.trim()),
            ),
        }
        mapped.entries.push(wake);
    }
}

/// Scalingo regions known to paastis, and the spellings the original engine's sample
/// file used for them.
const SCALINGO_REGIONS: &[(&str, &str)] = &[
    ("osc-fr1", "osc-fr1"),
    ("osc-fr-1", "osc-fr1"),
    ("osc-secnum-fr1", "osc-secnum-fr1"),
    ("osc-secnum-fr-1", "osc-secnum-fr1"),
];

/// `PROVIDER_REGION` for Scalingo. The original engine always called the osc-fr1 API,
/// whatever the variable said; a known region is honoured here, anything else is ignored.
fn scalingo_region(env: &HashMap<String, String>, entry: &mut Entry) -> Option<String> {
    let raw = var(env, "PROVIDER_REGION")?.trim();
    let found = SCALINGO_REGIONS
        .iter()
        .find(|(spelling, _)| spelling.eq_ignore_ascii_case(raw))
        .map(|(_, region)| *region);
    let Some(region) = found else {
        entry.notes.push(Notice::warning(format!(
            "PROVIDER_REGION `{raw}` is not a Scalingo region: osc-fr1 is used, as the original engine always did"
        )));
        return None;
    };
    entry.origins.push((
        "providers[0].region".to_owned(),
        "PROVIDER_REGION".to_owned(),
    ));
    if region != raw {
        entry.notes.push(Notice::info(format!(
            "PROVIDER_REGION `{raw}` is read as the Scalingo region {region}"
        )));
    }
    if region != "osc-fr1" {
        entry.notes.push(Notice::warning(format!(
            "the original engine listed the apps of osc-fr1 whatever PROVIDER_REGION said; paastis lists those of {region}"
        )));
    }
    Some(region.to_owned())
}

/// `REGISTRY_TYPE`, `REGISTRY_REDIS_URL` / `REDIS_URL` -> `registry`.
pub(super) fn registry(env: &HashMap<String, String>, mapped: &mut Mapped) {
    let kind = var(env, "REGISTRY_TYPE").map(|kind| kind.trim().to_ascii_lowercase());
    match kind.as_deref() {
        None | Some("in-memory" | "memory") => {
            if var(env, "REGISTRY_REDIS_URL").is_some() {
                mapped.notices.push(Notice::info(
                    "REGISTRY_REDIS_URL is not used: REGISTRY_TYPE is not redis (as in the original engine)",
                ));
            }
        }
        Some("redis") => {
            let mut entry = Entry::new(&["registry", "type"], "REGISTRY_TYPE");
            entry.value = Value::String("redis".to_owned());
            mapped.entries.push(entry);
            let url = ["REGISTRY_REDIS_URL", "REDIS_URL"]
                .into_iter()
                .find_map(|name| var(env, name).map(|url| (name, url.trim())));
            if let Some((name, url)) = url {
                let mut entry = Entry::new(&["registry", "url"], name);
                entry.value = Value::String(url.to_owned());
                mapped.entries.push(entry.secret_value(url));
            }
        }
        Some(other) => {
            let mut entry = Entry::new(&["registry", "type"], "REGISTRY_TYPE");
            entry.error(
                "registry.type",
                "REGISTRY_TYPE",
                format!("`{other}` is not a registry type (expected in-memory or redis)"),
            );
            mapped.entries.push(entry);
        }
    }
}

/// `REGISTRY_IGNORED_APPS` -> `discovery.exclude`; `START_AND_STOP_CHECKING_INTERVAL_CRON`
/// -> `discovery.every` (a plain period) or `discovery.cron`.
pub(super) fn discovery(env: &HashMap<String, String>, mapped: &mut Mapped) {
    if let Some(raw) = var(env, "REGISTRY_IGNORED_APPS") {
        let names: Vec<Value> = raw
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| Value::String(name.to_owned()))
            .collect();
        if !names.is_empty() {
            let mut entry = Entry::new(&["discovery", "exclude"], "REGISTRY_IGNORED_APPS");
            entry.value = Value::Array(names);
            mapped.entries.push(entry);
        }
    }
    if let Some(raw) = var(env, "START_AND_STOP_CHECKING_INTERVAL_CRON") {
        let expression = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        let name = "START_AND_STOP_CHECKING_INTERVAL_CRON";
        match cron_period(&expression) {
            Err(message) => {
                let mut entry = Entry::new(&["discovery", "cron"], name);
                entry.error("discovery.cron", name, message);
                mapped.entries.push(entry);
            }
            Ok(Some(period)) => {
                let mut entry = Entry::new(&["discovery", "every"], name);
                let every = format_duration(period);
                entry.value = Value::String(every.clone());
                entry.notes.push(Notice::info(format!(
                    "{name} `{expression}` becomes discovery.every: {every}; idle apps are \
                     checked every second, not only at discovery"
                )));
                mapped.entries.push(entry);
            }
            Ok(None) => {
                let mut entry = Entry::new(&["discovery", "cron"], name);
                entry.value = Value::String(expression.clone());
                entry.notes.push(Notice::info(format!(
                    "{name} `{expression}` becomes discovery.cron; idle apps are checked \
                     every second, not only at discovery"
                )));
                mapped.entries.push(entry);
            }
        }
    }
}

/// The period of a cron expression that only says "every N seconds / minutes / hours"
/// (N dividing the minute, hour or day, so the ticks are evenly spaced), or `None` for
/// any other schedule. 5 fields, or 6 with seconds first, as the original engine's
/// scheduler (node-cron) read them.
fn cron_period(expression: &str) -> Result<Option<Duration>, String> {
    let fields: Vec<&str> = expression.split(' ').collect();
    let fields: Vec<&str> = match fields.len() {
        5 => std::iter::once("0").chain(fields).collect(),
        6 => fields,
        _ => {
            return Err(format!(
                "`{expression}` is not a cron expression (5 fields, or 6 with seconds first)"
            ));
        }
    };
    if fields[3..].iter().any(|field| *field != "*") {
        return Ok(None);
    }
    let step = |field: &str, whole: u64| -> Option<u64> {
        match field {
            "*" => Some(1),
            _ => field
                .strip_prefix("*/")
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|n| *n > 0 && whole.is_multiple_of(*n)),
        }
    };
    let (seconds, minutes, hours) = (fields[0], fields[1], fields[2]);
    let period = if seconds != "0" {
        (minutes == "*" && hours == "*")
            .then(|| step(seconds, 60))
            .flatten()
            .map(Duration::from_secs)
    } else if minutes != "0" {
        (hours == "*")
            .then(|| step(minutes, 60))
            .flatten()
            .map(|n| Duration::from_secs(n * 60))
    } else {
        step(hours, 24).map(|n| Duration::from_secs(n * 3600))
    };
    Ok(period)
}

/// `START_AND_STOP_MAX_IDLE_TIME` (minutes) -> `defaults.max_idle`.
pub(super) fn idle(env: &HashMap<String, String>, mapped: &mut Mapped) {
    let name = "START_AND_STOP_MAX_IDLE_TIME";
    let Some(raw) = var(env, name) else {
        return;
    };
    let mut entry = Entry::new(&["defaults", "max_idle"], name);
    match raw.trim().parse::<u64>() {
        Ok(0) => {
            mapped.notices.push(Notice::info(format!(
                "{name}=0 meant the default (15 minutes) in the original engine; so it does here"
            )));
            return;
        }
        Ok(minutes) => entry.value = Value::String(format!("{minutes}m")),
        Err(_) => entry.error(
            "defaults.max_idle",
            name,
            format!("`{}` is not a whole number of minutes", raw.trim()),
        ),
    }
    mapped.entries.push(entry);
}

/// `HOOKS_*` -> `hooks.*`.
pub(super) fn hooks(env: &HashMap<String, String>, mapped: &mut Mapped) {
    for (name, key) in [
        ("HOOKS_BEFORE_START", "before_start"),
        ("HOOKS_AFTER_START", "after_start"),
        ("HOOKS_BEFORE_STOP", "before_stop"),
        ("HOOKS_AFTER_STOP", "after_stop"),
    ] {
        if let Some(command) = var(env, name) {
            let mut entry = Entry::new(&["hooks", key], name);
            entry.value = Value::String(command.to_owned());
            mapped.entries.push(entry.secret_value(command));
        }
    }
}

/// `ROUTING_SYSTEM_API_ENABLED` / `ROUTING_SYSTEM_API_TOKEN` -> `admin.system_api`.
pub(super) fn system_api(env: &HashMap<String, String>, mapped: &mut Mapped) {
    let Some(raw) = var(env, "ROUTING_SYSTEM_API_ENABLED") else {
        return;
    };
    // The original engine's reading: only `true` (any case) enables it.
    if !raw.trim().eq_ignore_ascii_case("true") {
        if !raw.trim().eq_ignore_ascii_case("false") {
            mapped.notices.push(Notice::info(format!(
                "ROUTING_SYSTEM_API_ENABLED=`{}` is not `true`: the system API stays off, as in the original engine",
                raw.trim()
            )));
        }
        return;
    }
    let Some(token) = var(env, "ROUTING_SYSTEM_API_TOKEN") else {
        mapped.notices.push(Notice::warning(
            "ROUTING_SYSTEM_API_ENABLED is true but ROUTING_SYSTEM_API_TOKEN is not set: the \
             original engine refused every system API call then; the system API stays off",
        ));
        return;
    };
    let mut enabled = Entry::new(
        &["admin", "system_api", "enabled"],
        "ROUTING_SYSTEM_API_ENABLED",
    );
    enabled.value = Value::Bool(true);
    mapped.entries.push(enabled);
    let mut entry = Entry::new(
        &["admin", "system_api", "token"],
        "ROUTING_SYSTEM_API_TOKEN",
    );
    entry.value = Value::String(token.trim().to_owned());
    mapped.entries.push(entry.secret_value(token.trim()));
}

/// `EVENTS_STORE_TYPE` / `DATABASE_URL` -> `database.url`.
pub(super) fn events(env: &HashMap<String, String>, mapped: &mut Mapped) {
    let name = "EVENTS_STORE_TYPE";
    let Some(kind) = var(env, name).map(|kind| kind.trim().to_ascii_lowercase()) else {
        return;
    };
    match kind.as_str() {
        "in-memory" | "memory" => mapped.notices.push(Notice::info(
            "EVENTS_STORE_TYPE=in-memory: paastis keeps events (and the catalog of apps) in \
             its database, by default the SQLite file paastis.db (database.url)",
        )),
        "postgres" | "postgresql" => {
            let mut entry = Entry::new(&["database", "url"], "DATABASE_URL");
            match var(env, "DATABASE_URL") {
                Some(url) => {
                    entry.value = Value::String(url.trim().to_owned());
                    entry = entry.secret_value(url.trim());
                }
                None => entry.error(
                    "database.url",
                    name,
                    format!("EVENTS_STORE_TYPE={kind} needs DATABASE_URL"),
                ),
            }
            mapped.entries.push(entry);
        }
        other => {
            let mut entry = Entry::new(&["database", "url"], name);
            entry.error(
                "database.url",
                name,
                format!("`{other}` is not an events store type (expected in-memory or postgres)"),
            );
            mapped.entries.push(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{env, run};
    use super::*;
    use serde_json::json;

    #[test]
    fn each_variable_maps_onto_its_key() {
        // (what, variables, expected tree)
        type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Value);
        let cases: Vec<Case> = vec![
            (
                "host and port",
                vec![("HOST", "127.0.0.1"), ("PORT", "4000")],
                json!({"listen": "127.0.0.1:4000"}),
            ),
            (
                "port alone",
                vec![("PORT", "8080")],
                json!({"listen": "0.0.0.0:8080"}),
            ),
            (
                "localhost",
                vec![("HOST", "localhost")],
                json!({"listen": "127.0.0.1:3000"}),
            ),
            (
                "ipv6",
                vec![("HOST", "::1")],
                json!({"listen": "[::1]:3000"}),
            ),
            (
                "scalingo",
                vec![
                    ("PROVIDER_NAME", "scalingo"),
                    ("PROVIDER_SCALINGO_API_TOKEN", "tk-us-1"),
                    ("PROVIDER_REGION", "osc-secnum-fr1"),
                ],
                json!({"providers": [{"id": "scalingo", "type": "scalingo", "token": "tk-us-1", "region": "osc-secnum-fr1"}]}),
            ),
            (
                "scalingo is the original default, its sample's region spelling",
                vec![
                    ("PROVIDER_SCALINGO_API_TOKEN", "tk-us-1"),
                    ("PROVIDER_REGION", "osc-fr-1"),
                ],
                json!({"providers": [{"id": "scalingo", "type": "scalingo", "token": "tk-us-1", "region": "osc-fr1"}]}),
            ),
            (
                "an unknown scalingo region is left out",
                vec![
                    ("PROVIDER_SCALINGO_API_TOKEN", "tk-us-1"),
                    ("PROVIDER_REGION", "to_be_defined"),
                ],
                json!({"providers": [{"id": "scalingo", "type": "scalingo", "token": "tk-us-1"}]}),
            ),
            (
                "scalingo API overrides",
                vec![
                    ("PROVIDER_SCALINGO_API_TOKEN", "tk-us-1"),
                    ("PROVIDER_SCALINGO_API_URL", "http://127.0.0.1:9"),
                    ("PROVIDER_SCALINGO_AUTH_URL", "http://127.0.0.1:8"),
                ],
                json!({"providers": [{"id": "scalingo", "type": "scalingo", "token": "tk-us-1", "api_url": "http://127.0.0.1:9", "auth_url": "http://127.0.0.1:8"}]}),
            ),
            (
                "heroku, with the other platforms' tokens of a copied sample",
                vec![
                    ("PROVIDER_NAME", "heroku"),
                    ("PROVIDER_HEROKU_API_TOKEN", "hk-1"),
                    ("PROVIDER_SCALINGO_API_TOKEN", "tk-us-xxx"),
                    ("PROVIDER_HEROKU_API_URL", "http://127.0.0.1:7"),
                ],
                json!({"providers": [{"id": "heroku", "type": "heroku", "token": "hk-1", "api_url": "http://127.0.0.1:7"}]}),
            ),
            (
                "clever cloud",
                vec![
                    ("PROVIDER_NAME", "clever-cloud"),
                    ("PROVIDER_CLEVER_API_HOST", "https://api.clever-cloud.com"),
                    ("PROVIDER_CLEVER_OAUTH_CONSUMER_KEY", "ck"),
                    ("PROVIDER_CLEVER_OAUTH_CONSUMER_SECRET", "cs"),
                    ("PROVIDER_CLEVER_TOKEN", "t"),
                    ("PROVIDER_CLEVER_SECRET", "s"),
                    ("PROVIDER_REGION", "par"),
                ],
                json!({"providers": [{"id": "clever-cloud", "type": "clever-cloud", "consumer_key": "ck", "consumer_secret": "cs", "token": "t", "secret": "s", "api_url": "https://api.clever-cloud.com"}]}),
            ),
            (
                "the chosen provider's operation timeout, in seconds",
                vec![
                    ("PROVIDER_NAME", "heroku"),
                    ("PROVIDER_HEROKU_API_TOKEN", "hk-1"),
                    ("PROVIDER_HEROKU_OPERATION_TIMEOUT", "45"),
                    ("PROVIDER_SCALINGO_OPERATION_TIMEOUT", "30"),
                ],
                json!({"providers": [{"id": "heroku", "type": "heroku", "token": "hk-1"}], "defaults": {"wake_timeout": "45s"}}),
            ),
            (
                "no provider, no timeout",
                vec![("PROVIDER_SCALINGO_OPERATION_TIMEOUT", "30")],
                json!({}),
            ),
            (
                "redis registry",
                vec![("REGISTRY_TYPE", "redis"), ("REDIS_URL", "redis://r:6379")],
                json!({"registry": {"type": "redis", "url": "redis://r:6379"}}),
            ),
            (
                "REGISTRY_REDIS_URL before REDIS_URL",
                vec![
                    ("REGISTRY_TYPE", "redis"),
                    ("REGISTRY_REDIS_URL", "redis://a:1"),
                    ("REDIS_URL", "redis://b:2"),
                ],
                json!({"registry": {"type": "redis", "url": "redis://a:1"}}),
            ),
            (
                "redis at its default address",
                vec![("REGISTRY_TYPE", "redis")],
                json!({"registry": {"type": "redis"}}),
            ),
            (
                "in-memory is the default",
                vec![("REGISTRY_TYPE", "in-memory"), ("REDIS_URL", "redis://b:2")],
                json!({}),
            ),
            (
                "ignored apps, with the spaces of the original's sample",
                vec![("REGISTRY_IGNORED_APPS", "paastis-proxy, foo, ,bar")],
                json!({"discovery": {"exclude": ["paastis-proxy", "foo", "bar"]}}),
            ),
            (
                "every minute",
                vec![("START_AND_STOP_CHECKING_INTERVAL_CRON", "* * * * *")],
                json!({"discovery": {"every": "1m"}}),
            ),
            (
                "every 5 minutes",
                vec![("START_AND_STOP_CHECKING_INTERVAL_CRON", "*/5  * * * *")],
                json!({"discovery": {"every": "5m"}}),
            ),
            (
                "every 30 seconds",
                vec![("START_AND_STOP_CHECKING_INTERVAL_CRON", "*/30 * * * * *")],
                json!({"discovery": {"every": "30s"}}),
            ),
            (
                "every 2 hours",
                vec![("START_AND_STOP_CHECKING_INTERVAL_CRON", "0 */2 * * *")],
                json!({"discovery": {"every": "2h"}}),
            ),
            (
                "office hours stay a cron",
                vec![("START_AND_STOP_CHECKING_INTERVAL_CRON", "*/10 8-19 * * 1-5")],
                json!({"discovery": {"cron": "*/10 8-19 * * 1-5"}}),
            ),
            (
                "uneven steps stay a cron",
                vec![("START_AND_STOP_CHECKING_INTERVAL_CRON", "*/7 * * * *")],
                json!({"discovery": {"cron": "*/7 * * * *"}}),
            ),
            (
                "max idle time in minutes",
                vec![("START_AND_STOP_MAX_IDLE_TIME", "30")],
                json!({"defaults": {"max_idle": "30m"}}),
            ),
            (
                "max idle time 0 was the default",
                vec![("START_AND_STOP_MAX_IDLE_TIME", "0")],
                json!({}),
            ),
            (
                "hooks",
                vec![
                    ("HOOKS_BEFORE_START", "./before-start.sh"),
                    ("HOOKS_AFTER_START", "echo started"),
                    ("HOOKS_BEFORE_STOP", "./check-no-jobs.sh"),
                    ("HOOKS_AFTER_STOP", "echo stopped"),
                ],
                json!({"hooks": {"before_start": "./before-start.sh", "after_start": "echo started", "before_stop": "./check-no-jobs.sh", "after_stop": "echo stopped"}}),
            ),
            (
                "system API",
                vec![
                    ("ROUTING_SYSTEM_API_ENABLED", "TRUE"),
                    ("ROUTING_SYSTEM_API_TOKEN", "abcd-1234"),
                ],
                json!({"admin": {"system_api": {"enabled": true, "token": "abcd-1234"}}}),
            ),
            (
                "system API off",
                vec![
                    ("ROUTING_SYSTEM_API_ENABLED", "false"),
                    ("ROUTING_SYSTEM_API_TOKEN", "abcd-1234"),
                ],
                json!({}),
            ),
            (
                "system API without a token",
                vec![("ROUTING_SYSTEM_API_ENABLED", "true")],
                json!({}),
            ),
            (
                "postgres events",
                vec![
                    ("EVENTS_STORE_TYPE", "postgres"),
                    ("DATABASE_URL", "postgresql://u:p@db:5432/paastis"),
                ],
                json!({"database": {"url": "postgresql://u:p@db:5432/paastis"}}),
            ),
            (
                "in-memory events",
                vec![
                    ("EVENTS_STORE_TYPE", "in-memory"),
                    ("DATABASE_URL", "postgresql://u:p@db:5432/app"),
                ],
                json!({}),
            ),
            (
                "a platform's DATABASE_URL alone",
                vec![("DATABASE_URL", "postgresql://u:p@db:5432/app")],
                json!({}),
            ),
            (
                "LOG_LEVEL is read by the binary",
                vec![("LOG_LEVEL", "debug")],
                json!({}),
            ),
            (
                "empty values are unset",
                vec![
                    ("PROVIDER_NAME", ""),
                    ("PORT", " "),
                    ("HOOKS_BEFORE_START", ""),
                    ("REGISTRY_IGNORED_APPS", ""),
                ],
                json!({}),
            ),
        ];
        for (what, vars, expected) in cases {
            let outcome = run("", &vars, None);
            assert_eq!(outcome.errors, Vec::<String>::new(), "{what}");
            assert_eq!(outcome.tree, expected, "{what}");
        }
    }

    #[test]
    fn bad_values_are_errors_naming_the_variable() {
        // (variables, expected error)
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("PORT", "http")],
                "listen (from PORT): `http` is not a port number (0..65535)",
            ),
            (
                &[
                    ("PROVIDER_NAME", "aws"),
                    ("PROVIDER_SCALINGO_API_TOKEN", "t"),
                ],
                "providers (from PROVIDER_NAME): `aws` is not a provider of the original engine",
            ),
            (
                &[
                    ("PROVIDER_SCALINGO_API_TOKEN", "t"),
                    ("PROVIDER_SCALINGO_OPERATION_TIMEOUT", "30s"),
                ],
                "defaults.wake_timeout (from PROVIDER_SCALINGO_OPERATION_TIMEOUT): `30s` is not a whole number of seconds",
            ),
            (
                &[("REGISTRY_TYPE", "mongo")],
                "registry.type (from REGISTRY_TYPE): `mongo` is not a registry type",
            ),
            (
                &[("START_AND_STOP_CHECKING_INTERVAL_CRON", "* * *")],
                "discovery.cron (from START_AND_STOP_CHECKING_INTERVAL_CRON): `* * *` is not a cron expression",
            ),
            (
                &[("START_AND_STOP_MAX_IDLE_TIME", "15m")],
                "defaults.max_idle (from START_AND_STOP_MAX_IDLE_TIME): `15m` is not a whole number of minutes",
            ),
            (
                &[("EVENTS_STORE_TYPE", "postgres")],
                "database.url (from EVENTS_STORE_TYPE): EVENTS_STORE_TYPE=postgres needs DATABASE_URL",
            ),
            (
                &[("EVENTS_STORE_TYPE", "mysql")],
                "database.url (from EVENTS_STORE_TYPE): `mysql` is not an events store type",
            ),
        ];
        for (vars, expected) in cases {
            let outcome = run("", vars, None);
            assert!(
                outcome.errors.iter().any(|e| e.starts_with(expected)),
                "{expected:?} not in {:?}",
                outcome.errors
            );
        }
        // A bad variable for a key the configuration sets is no error: it is not used.
        let outcome = run("listen: 127.0.0.1:3000\n", &[("PORT", "http")], None);
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    }

    #[test]
    fn hosts_resolve_like_the_original_server() {
        assert_eq!(
            resolve("localhost", 3000),
            Ok(SocketAddr::from(([127, 0, 0, 1], 3000)))
        );
        assert_eq!(
            resolve("[::1]", 80),
            Ok(SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 80)))
        );
        assert!(
            resolve("no-such-host.invalid", 80)
                .expect_err("unresolvable")
                .starts_with("cannot resolve the host name `no-such-host.invalid`")
        );
    }

    #[test]
    fn the_original_environment_is_recognised() {
        assert!(uses_original_env(&env(&[("PROVIDER_NAME", "heroku")])));
        assert!(uses_original_env(&env(&[(
            "START_AND_STOP_MAX_IDLE_TIME",
            "5"
        )])));
        // Platforms set these for every app: not a sign of the original engine.
        assert!(!uses_original_env(&env(&[
            ("PORT", "3000"),
            ("DATABASE_URL", "postgres://x"),
            ("REDIS_URL", "redis://x"),
            ("LOG_LEVEL", "info"),
            ("PROVIDER_NAME", ""),
        ])));
    }
}
