//! Compatibility with the original engine: its environment variables (`PORT`,
//! `PROVIDER_NAME`, `PROVIDER_SCALINGO_API_TOKEN`, `START_AND_STOP_MAX_IDLE_TIME`, ...) and
//! its `paastis.yml` rules file (`rules:` with `pattern`, `app_name`, `app_max_idle_time`
//! in minutes, `linked_apps`) become keys of the new configuration, so that its users can
//! switch by replacing the binary.
//!
//! [`map`] is pure: from the environment and the original rules, it builds [`Entry`]s (a
//! value for one key of the new configuration, with the variables it came from) and
//! [`Notice`]s (what changes meaning, what is ignored). [`apply`] then fills, key by key,
//! only what the configuration file, the `PAASTIS_*` overrides and the flags leave unset;
//! lists (`providers`, `rules`, `discovery.exclude`) are filled whole or not at all.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use serde_json::{Map, Value};

use super::{ConfigError, format_duration};
use crate::providers::SECRET_KEYS;
use crate::settings::Provenance;

/// How much a [`Notice`] matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// The behaviour differs from the original engine's, or a setting is not honoured.
    Warning,
    /// Worth knowing; nothing to fix.
    Info,
}

/// Something `paastis check` and the log tell about the mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// How much it matters.
    pub level: Level,
    /// What it says (never a secret value).
    pub message: String,
}

impl Notice {
    fn warning(message: impl Into<String>) -> Notice {
        Notice {
            level: Level::Warning,
            message: message.into(),
        }
    }

    fn info(message: impl Into<String>) -> Notice {
        Notice {
            level: Level::Info,
            message: message.into(),
        }
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.level {
            Level::Warning => write!(f, "warning: {}", self.message),
            Level::Info => write!(f, "note: {}", self.message),
        }
    }
}

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

/// Variables of the original engine (and of the platforms it ran on) that hold credentials
/// or connection strings: their values never reach the commands the engine runs (handed to
/// [`crate::child_env::withhold_variables`] when the engine starts).
pub const SECRET_VARIABLES: &[&str] = &[
    "PROVIDER_SCALINGO_API_TOKEN",
    "PROVIDER_HEROKU_API_TOKEN",
    "PROVIDER_CLEVER_OAUTH_CONSUMER_KEY",
    "PROVIDER_CLEVER_OAUTH_CONSUMER_SECRET",
    "PROVIDER_CLEVER_TOKEN",
    "PROVIDER_CLEVER_SECRET",
    "REGISTRY_REDIS_URL",
    "REDIS_URL",
    "DATABASE_URL",
    "ROUTING_SYSTEM_API_TOKEN",
];

/// Whether the environment sets any variable only the original engine reads: then
/// `paastis` runs without a configuration file, as the original did.
pub fn uses_original_env(env: &HashMap<String, String>) -> bool {
    ORIGINAL_VARIABLES
        .iter()
        .any(|name| var(env, name).is_some())
}

/// Keys a rule of the original rules file may have. `group_name`, `provider_name`,
/// `provider_zone` and `name` appear in its sample file but were never read.
const ORIGINAL_RULE_KEYS: &[&str] = &[
    "pattern",
    "app_name",
    "app_max_idle_time",
    "linked_apps",
    "group_name",
    "provider_name",
    "provider_zone",
    "name",
];

/// Whether `tree` is the original engine's rules file: a mapping whose only key is `rules`,
/// a list of rules using only the original's keys. (A new-style file with only such rules
/// means the same once converted, so reading it either way is safe.)
pub fn is_original_rules(tree: &Value) -> bool {
    let Value::Object(map) = tree else {
        return false;
    };
    if map.len() != 1 {
        return false;
    }
    match map.get("rules") {
        Some(Value::Null) => true,
        Some(Value::Array(rules)) => rules.iter().all(|rule| match rule {
            Value::Object(keys) => keys
                .keys()
                .all(|key| ORIGINAL_RULE_KEYS.contains(&key.as_str())),
            _ => false,
        }),
        _ => false,
    }
}

/// When `tree` is the original engine's rules file, takes its rules out (leaving an empty
/// configuration) and returns them.
pub(super) fn take_original_rules(tree: &mut Value) -> Option<Value> {
    if !is_original_rules(tree) {
        return None;
    }
    let rules = tree
        .as_object_mut()
        .and_then(|map| map.remove("rules"))
        .unwrap_or(Value::Null);
    Some(match rules {
        Value::Null => Value::Array(Vec::new()),
        rules => rules,
    })
}

/// One value for one key of the new configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Where it goes, e.g. `["defaults", "max_idle"]`.
    pub keys: Vec<&'static str>,
    /// The value (`Null` when `errors` says why there is none).
    pub value: Value,
    /// What it came from, e.g. `PROVIDER_SCALINGO_API_TOKEN` (for messages).
    pub origin: String,
    /// Paths inside the configuration (`providers[0].token`) and what set them.
    pub origins: Vec<(String, String)>,
    /// Paths whose values came from the environment: never echoed in errors.
    pub from_env: Vec<(String, String)>,
    /// What is wrong with the variables, reported only when the entry is used.
    pub errors: Vec<ConfigError>,
    /// Told only when the entry is used.
    pub notes: Vec<Notice>,
    /// Used only when the entry at these keys is used too (the operation timeout of a
    /// provider goes with that provider).
    pub requires: Option<Vec<&'static str>>,
}

impl Entry {
    fn new(keys: &[&'static str], origin: impl Into<String>) -> Entry {
        let origin = origin.into();
        Entry {
            keys: keys.to_vec(),
            value: Value::Null,
            origins: vec![(keys.join("."), origin.clone())],
            origin,
            from_env: Vec::new(),
            errors: Vec::new(),
            notes: Vec::new(),
            requires: None,
        }
    }

    fn path(&self) -> String {
        self.keys.join(".")
    }

    fn error(&mut self, path: &str, origin: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: format!("{path} (from {origin})"),
            message: message.into(),
        });
    }

    /// The whole value came from `raw` in the environment.
    fn secret_value(mut self, raw: &str) -> Entry {
        self.from_env.push((self.path(), raw.to_owned()));
        self
    }
}

/// What [`map`] found: entries for the new configuration and notices about them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapped {
    /// Values for keys of the new configuration, in the order they are applied.
    pub entries: Vec<Entry>,
    /// Told whatever the configuration file sets.
    pub notices: Vec<Notice>,
    /// Patterns of the original rules, for [`Compat::pattern_changes`].
    pub patterns: Vec<(usize, String)>,
}

/// The value of `name`, when set and not blank (the original engine read `""` as unset).
fn var<'a>(env: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    env.get(name)
        .map(String::as_str)
        .filter(|value| !value.trim().is_empty())
}

/// Maps the original engine's variables in `env` and its `rules` (from
/// [`take_original_rules`]) onto the new configuration.
pub fn map(env: &HashMap<String, String>, rules: Option<&Value>) -> Mapped {
    let mut mapped = Mapped::default();
    listen(env, &mut mapped);
    provider(env, &mut mapped);
    registry(env, &mut mapped);
    discovery(env, &mut mapped);
    idle(env, &mut mapped);
    hooks(env, &mut mapped);
    system_api(env, &mut mapped);
    events(env, &mut mapped);
    if let Some(rules) = rules {
        original_rules(rules, &mut mapped);
    }
    mapped
}

/// `HOST` and `PORT` -> `listen` (defaults 0.0.0.0 and 3000, as in the original engine).
fn listen(env: &HashMap<String, String>, mapped: &mut Mapped) {
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
fn provider(env: &HashMap<String, String>, mapped: &mut Mapped) {
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
fn registry(env: &HashMap<String, String>, mapped: &mut Mapped) {
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
fn discovery(env: &HashMap<String, String>, mapped: &mut Mapped) {
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
fn idle(env: &HashMap<String, String>, mapped: &mut Mapped) {
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
fn hooks(env: &HashMap<String, String>, mapped: &mut Mapped) {
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
fn system_api(env: &HashMap<String, String>, mapped: &mut Mapped) {
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
fn events(env: &HashMap<String, String>, mapped: &mut Mapped) {
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

/// The original rules file -> `rules`.
fn original_rules(rules: &Value, mapped: &mut Mapped) {
    let mut entry = Entry::new(&["rules"], "the original rules file");
    let Some(items) = rules.as_array() else {
        return;
    };
    let mut converted = Vec::new();
    for (index, rule) in items.iter().enumerate() {
        let at = format!("rules[{index}]");
        let from = |key: &str| format!("original {at}.{key}");
        entry.origins.push((at.clone(), format!("original {at}")));
        let Some(fields) = rule.as_object() else {
            // Left for validation to report (`expected a mapping`).
            converted.push(rule.clone());
            continue;
        };
        let mut out = Map::new();
        match fields.get("pattern") {
            Some(Value::String(pattern)) if !pattern.is_empty() => {
                out.insert("pattern".to_owned(), Value::String(pattern.clone()));
                entry
                    .origins
                    .push((format!("{at}.pattern"), from("pattern")));
                mapped.patterns.push((index, pattern.clone()));
                if let Some(message) = anchoring_notice(index, pattern) {
                    entry.notes.push(Notice::warning(message));
                }
            }
            Some(Value::Number(number)) => {
                // YAML read `pattern: 123` as a number; the original engine's RegExp read
                // it as text.
                let pattern = number.to_string();
                out.insert("pattern".to_owned(), Value::String(pattern.clone()));
                entry
                    .origins
                    .push((format!("{at}.pattern"), from("pattern")));
                mapped.patterns.push((index, pattern.clone()));
                if let Some(message) = anchoring_notice(index, &pattern) {
                    entry.notes.push(Notice::warning(message));
                }
            }
            _ => entry.errors.push(ConfigError {
                path: format!("{at}.pattern (from {})", from("pattern")),
                message:
                    "is required (a regex; the original engine matched it anywhere in the app name)"
                        .to_owned(),
            }),
        }
        if let Some(minutes) = fields.get("app_max_idle_time") {
            let path = format!("{at}.max_idle");
            entry
                .origins
                .push((path.clone(), from("app_max_idle_time")));
            match idle_minutes(minutes) {
                Ok((value, note)) => {
                    out.insert("max_idle".to_owned(), Value::String(value));
                    if let Some(note) = note {
                        entry.notes.push(Notice::info(format!(
                            "original {at}.app_max_idle_time: {note}"
                        )));
                    }
                }
                Err(message) => entry.errors.push(ConfigError {
                    path: format!("{path} (from {})", from("app_max_idle_time")),
                    message,
                }),
            }
        }
        if let Some(linked) = fields.get("linked_apps") {
            let path = format!("{at}.linked_apps");
            entry.origins.push((path.clone(), from("linked_apps")));
            match linked {
                Value::Array(names) => {
                    let mut out_names = Vec::new();
                    for (position, name) in names.iter().enumerate() {
                        entry.origins.push((
                            format!("{path}[{position}]"),
                            format!("original {at}.linked_apps[{position}]"),
                        ));
                        match name {
                            Value::String(name) => {
                                out_names.push(Value::String(braced_captures(name)));
                            }
                            other => out_names.push(other.clone()),
                        }
                    }
                    out.insert("linked_apps".to_owned(), Value::Array(out_names));
                }
                Value::Null => {}
                other => {
                    out.insert("linked_apps".to_owned(), other.clone());
                }
            }
        }
        if fields.contains_key("app_name") {
            entry.notes.push(Notice::warning(format!(
                "original {at}.app_name is ignored: the original engine only used it to rename \
                 the app's entry in its registry, which paastis does not have"
            )));
        }
        for key in ["group_name", "provider_name", "provider_zone", "name"] {
            if fields.contains_key(key) {
                entry.notes.push(Notice::info(format!(
                    "original {at}.{key} is ignored (the original engine never read it either)"
                )));
            }
        }
        converted.push(Value::Object(out));
    }
    entry.value = Value::Array(converted);
    mapped.entries.push(entry);
}

/// `app_max_idle_time` (minutes, a number or numeric text) as a duration, with a note
/// when its meaning had to be adapted.
fn idle_minutes(value: &Value) -> Result<(String, Option<String>), String> {
    let minutes = match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok(),
        _ => None,
    };
    let Some(minutes) = minutes.filter(|m| m.is_finite() && *m >= 0.0) else {
        return Err(format!(
            "`{}` is not a number of minutes (the original engine's unit)",
            match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            }
        ));
    };
    if minutes == 0.0 {
        return Ok((
            "1m".to_owned(),
            Some(
                "0 stopped the app at every check (each minute) in the original engine; it becomes max_idle: 1m"
                    .to_owned(),
            ),
        ));
    }
    if minutes.fract() == 0.0 && minutes <= 1e9 {
        return Ok((format!("{minutes}m"), None));
    }
    // Clamped to 1..1e12, so the conversion is exact.
    let seconds = (minutes * 60.0).round().clamp(1.0, 1e12) as u64;
    Ok((format_duration(Duration::from_secs(seconds)), None))
}

/// The original engine replaced `$1` literally, so `pr$1front` worked; in paastis `$1front`
/// would name a capture group `1front`: write such captures as `${1}`.
fn braced_captures(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let bytes = template.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'$' {
            let digits = bytes[index + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let next = bytes.get(index + 1 + digits);
            if digits > 0 && next.is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_') {
                out.push_str("${");
                out.push_str(&template[index + 1..index + 1 + digits]);
                out.push('}');
                index += 1 + digits;
                continue;
            }
        }
        let char_len = template[index..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&template[index..index + char_len]);
        index += char_len;
    }
    out
}

/// How a regex is anchored: whether it already matches only whole names (or anything
/// containing a match, with `.*` at both ends), which the original engine's unanchored
/// search and paastis's whole-name match agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Anchoring {
    start: bool,
    end: bool,
    /// A `|` outside any group: anchors at the ends then bind one branch only.
    alternation: bool,
}

fn anchoring(pattern: &str) -> Anchoring {
    let chars: Vec<char> = pattern.chars().collect();
    let escaped_at = |position: usize| {
        chars[..position]
            .iter()
            .rev()
            .take_while(|c| **c == '\\')
            .count()
            % 2
            == 1
    };
    let mut depth = 0usize;
    let mut class = false;
    let mut alternation = false;
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        if c == '\\' {
            index += 2;
            continue;
        }
        if class {
            if c == ']' {
                class = false;
            }
        } else {
            match c {
                '[' => {
                    class = true;
                    // `[]...]` and `[^]...]`: a leading `]` is a literal.
                    if chars.get(index + 1) == Some(&'^') {
                        index += 1;
                    }
                    if chars.get(index + 1) == Some(&']') {
                        index += 1;
                    }
                }
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                '|' if depth == 0 => alternation = true,
                _ => {}
            }
        }
        index += 1;
    }
    let start = pattern.starts_with('^') || pattern.starts_with("\\A") || pattern.starts_with(".*");
    let len = chars.len();
    let end = (len >= 1 && chars[len - 1] == '$' && !escaped_at(len - 1))
        || pattern.ends_with("\\z") && !escaped_at(len - 2)
        || (len >= 2 && chars[len - 1] == '*' && chars[len - 2] == '.' && !escaped_at(len - 2));
    Anchoring {
        start,
        end,
        alternation,
    }
}

/// The warning for a rule whose pattern now matches fewer apps, with the pattern that
/// keeps the original meaning; `None` when anchoring changes nothing.
fn anchoring_notice(index: usize, pattern: &str) -> Option<String> {
    let anchoring = anchoring(pattern);
    if anchoring.start && anchoring.end && !anchoring.alternation {
        return None;
    }
    let (prefix, suffix) = if anchoring.alternation {
        (".*", ".*")
    } else {
        (
            if anchoring.start { "" } else { ".*" },
            if anchoring.end { "" } else { ".*" },
        )
    };
    let kept = if anchoring.alternation {
        format!("{prefix}(?:{pattern}){suffix}")
    } else {
        format!("{prefix}{pattern}{suffix}")
    };
    let literal = pattern
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let example = if !literal {
        String::new()
    } else if !anchoring.end {
        format!(" (e.g. it no longer matches `{pattern}-x`)")
    } else {
        format!(" (e.g. it no longer matches `x-{pattern}`)")
    };
    Some(format!(
        "original rules[{index}].pattern `{pattern}` matched anywhere in an app name in the \
         original engine; paastis matches whole names, so names that only contain a match \
         are no longer affected{example}; write `{kept}` to keep the original meaning"
    ))
}

/// What the compatibility layer did to one configuration: kept by [`super::Loaded`] for
/// `paastis check` and the log.
#[derive(Debug, Clone, Default)]
pub struct Compat {
    /// Warnings and notes about the mapping.
    pub notices: Vec<Notice>,
    /// The keys the original engine's settings filled, as a configuration tree.
    fragment: Value,
    /// Path in `fragment` -> the variable (or rules file entry) it came from.
    origins: BTreeMap<String, String>,
    /// Patterns of the original rules file, by index.
    patterns: Vec<(usize, String)>,
}

impl Compat {
    /// Whether any setting of the original engine was used.
    pub fn is_used(&self) -> bool {
        self.fragment.as_object().is_some_and(|map| !map.is_empty())
    }

    /// The keys filled from the original engine's settings, as YAML, each annotated with
    /// where it came from. Secrets (tokens, secrets, passwords in URLs, hook commands) are
    /// replaced by `<redacted>`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Value::Object(map) = &self.fragment {
            render_map(map, "", 0, None, &self.origins, &mut out);
        }
        out
    }

    /// For apps that exist (`names`, e.g. from discovery), one line per original rule whose
    /// pattern matched some of them in the original engine but no longer does.
    pub fn pattern_changes<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let names: Vec<&str> = names.into_iter().collect();
        let mut lines = Vec::new();
        for (index, pattern) in &self.patterns {
            let (Ok(anywhere), Ok(whole)) = (
                regex::Regex::new(pattern),
                regex::Regex::new(&format!("^(?:{pattern})$")),
            ) else {
                continue;
            };
            let mut lost: Vec<&str> = names
                .iter()
                .copied()
                .filter(|name| anywhere.is_match(name) && !whole.is_match(name))
                .collect();
            if lost.is_empty() {
                continue;
            }
            lost.sort_unstable();
            lost.dedup();
            const SHOWN: usize = 10;
            let more = lost.len().saturating_sub(SHOWN);
            let mut list = lost
                .iter()
                .take(SHOWN)
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", ");
            if more > 0 {
                list.push_str(&format!(" and {more} more"));
            }
            lines.push(format!(
                "original rules[{index}].pattern `{pattern}` matched {list} in the original engine; it no longer does (whole-name match)"
            ));
        }
        lines
    }
}

/// Fills, key by key, what `tree` leaves unset with the entries of `mapped`, records where
/// each came from in `provenance`, and adds the errors of the entries used to `errors`.
pub(super) fn apply(
    tree: &mut Value,
    mapped: Mapped,
    provenance: &mut Provenance,
    errors: &mut Vec<ConfigError>,
) -> Compat {
    let mut compat = Compat {
        notices: mapped.notices,
        fragment: Value::Object(Map::new()),
        origins: BTreeMap::new(),
        patterns: mapped.patterns,
    };
    let mut used: HashSet<Vec<&'static str>> = HashSet::new();
    for entry in mapped.entries {
        if let Some(required) = &entry.requires
            && !used.contains(required)
        {
            continue;
        }
        if let Some(taken) = taken_at(tree, &entry.keys) {
            compat.notices.push(Notice::info(format!(
                "{} is not used: the configuration sets `{taken}`",
                entry.origin
            )));
            continue;
        }
        used.insert(entry.keys.clone());
        compat.notices.extend(entry.notes);
        if !entry.errors.is_empty() {
            errors.extend(entry.errors);
            continue;
        }
        // A section the configuration did not have is named after the first variable that
        // creates it (`hooks (from HOOKS_BEFORE_START): ...`).
        for depth in 1..entry.keys.len() {
            if taken_at(tree, &entry.keys[..depth]).is_none() {
                provenance
                    .origins
                    .entry(entry.keys[..depth].join("."))
                    .or_insert_with(|| entry.origin.clone());
            }
        }
        set(tree, &entry.keys, entry.value.clone());
        set(&mut compat.fragment, &entry.keys, entry.value);
        for (path, origin) in entry.origins {
            provenance.origins.insert(path.clone(), origin.clone());
            compat.origins.insert(path, origin);
        }
        for (path, value) in entry.from_env {
            provenance.from_env.insert(path, value);
        }
    }
    compat
}

/// The path of what `tree` sets at `keys` (or above it, when a parent is not a mapping),
/// or `None` when that key is free. `null` counts as unset.
fn taken_at(tree: &Value, keys: &[&str]) -> Option<String> {
    let mut node = tree;
    for (depth, key) in keys.iter().enumerate() {
        match node {
            Value::Null => return None,
            Value::Object(map) => match map.get(*key) {
                None | Some(Value::Null) => return None,
                Some(child) => node = child,
            },
            _ => return Some(keys[..depth].join(".")),
        }
    }
    Some(keys.join("."))
}

fn set(tree: &mut Value, keys: &[&str], value: Value) {
    let mut node = tree;
    for key in &keys[..keys.len() - 1] {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let Value::Object(map) = node else {
            return;
        };
        node = map
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !node.is_object() {
        *node = Value::Object(Map::new());
    }
    if let (Value::Object(map), Some(last)) = (node, keys.last()) {
        map.insert((*last).to_owned(), value);
    }
}

/// Keys whose values are never shown, besides the providers' credentials
/// ([`crate::providers::SECRET_KEYS`]).
const NEVER_SHOWN: &[&str] = &[
    "password",
    "before_start",
    "after_start",
    "before_stop",
    "after_stop",
];

const REDACTED: &str = "<redacted>";

fn render_map(
    map: &Map<String, Value>,
    path: &str,
    indent: usize,
    inherited: Option<&str>,
    origins: &BTreeMap<String, String>,
    out: &mut String,
) {
    // Names first (`id`, `type`, `pattern`), then the other keys in order.
    let mut keys: Vec<(&String, &Value)> = map.iter().collect();
    keys.sort_by_key(|(key, _)| {
        let rank = ["id", "type", "pattern"]
            .iter()
            .position(|first| first == key)
            .unwrap_or(usize::MAX);
        (rank, key.as_str())
    });
    let mut first = true;
    for (key, value) in keys {
        let child = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        // The first key of a list item shares the `- ` line.
        let pad = if first && indent > 0 && path.ends_with(']') {
            String::new()
        } else {
            " ".repeat(indent)
        };
        first = false;
        let origin = origins.get(&child).map(String::as_str);
        let comment = match origin {
            Some(origin) if Some(origin) != inherited => format!("  # {origin}"),
            _ => String::new(),
        };
        let inherited = origin.or(inherited);
        match value {
            Value::Object(inner) => {
                out.push_str(&format!("{pad}{key}:{comment}\n"));
                render_map(inner, &child, indent + 2, inherited, origins, out);
            }
            Value::Array(items) if items.iter().any(|item| item.is_object()) => {
                out.push_str(&format!("{pad}{key}:{comment}\n"));
                for (index, item) in items.iter().enumerate() {
                    let item_path = format!("{child}[{index}]");
                    let item_origin = origins.get(&item_path).map(String::as_str);
                    out.push_str(&format!("{}- ", " ".repeat(indent + 2)));
                    match item {
                        Value::Object(inner) => {
                            let inherited = item_origin.or(inherited);
                            render_map(inner, &item_path, indent + 4, inherited, origins, out);
                        }
                        other => out.push_str(&format!("{}\n", scalar(other))),
                    }
                }
            }
            Value::Array(items) => {
                let items: Vec<String> = items.iter().map(scalar).collect();
                out.push_str(&format!("{pad}{key}: [{}]{comment}\n", items.join(", ")));
            }
            other => {
                let secret =
                    SECRET_KEYS.contains(&key.as_str()) || NEVER_SHOWN.contains(&key.as_str());
                let shown = if secret {
                    REDACTED.to_owned()
                } else {
                    match other {
                        Value::String(text) => scalar(&Value::String(redact_url(text))),
                        other => scalar(other),
                    }
                };
                out.push_str(&format!("{pad}{key}: {shown}{comment}\n"));
            }
        }
    }
}

/// A URL with its password (or its whole user part, when there is no password) hidden.
fn redact_url(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_owned();
    };
    let rest = &text[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return text.to_owned();
    };
    let user_info = &rest[..at];
    let hidden = match user_info.split_once(':') {
        Some((user, _)) => format!("{user}:{REDACTED}"),
        None => REDACTED.to_owned(),
    };
    format!("{}{hidden}{}", &text[..scheme_end + 3], &rest[at..])
}

/// A scalar as YAML: plain when that reads back as the same string, single-quoted otherwise.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) if text.contains(REDACTED) && !text.contains('\'') => {
            if text == REDACTED {
                text.clone()
            } else {
                format!("'{text}'")
            }
        }
        Value::String(text) => {
            let plain = !text.is_empty()
                && text.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | ':' | '_' | '-' | '@')
                })
                && text
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '/' || c == '.')
                && text.parse::<f64>().is_err()
                && !matches!(
                    text.to_ascii_lowercase().as_str(),
                    "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~"
                );
            if plain {
                text.clone()
            } else {
                format!("'{}'", text.replace('\'', "''"))
            }
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Maps `vars` (and `rules`) onto the new-style `yaml`: the tree, the report, the errors.
    fn run(yaml: &str, vars: &[(&str, &str)], rules: Option<&Value>) -> Outcome {
        let mut tree = super::super::load::parse_yaml(yaml).expect("yaml");
        if tree.is_null() {
            tree = json!({});
        }
        let mut provenance = Provenance::default();
        let mut errors = Vec::new();
        let compat = apply(
            &mut tree,
            map(&env(vars), rules),
            &mut provenance,
            &mut errors,
        );
        Outcome {
            tree,
            compat,
            errors: errors.iter().map(ToString::to_string).collect(),
            provenance,
        }
    }

    struct Outcome {
        tree: Value,
        compat: Compat,
        errors: Vec<String>,
        provenance: Provenance,
    }

    impl Outcome {
        fn messages(&self) -> Vec<String> {
            self.compat
                .notices
                .iter()
                .map(ToString::to_string)
                .collect()
        }
    }

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
    fn notices_say_what_changes() {
        let has = |vars: &[(&str, &str)], expected: &str| {
            let outcome = run("", vars, None);
            let messages = outcome.messages();
            assert!(
                messages.iter().any(|m| m.contains(expected)),
                "{expected:?} not in {messages:?}"
            );
        };
        has(
            &[
                ("PROVIDER_NAME", "scalingo"),
                ("PROVIDER_SCALINGO_API_TOKEN", "t"),
                ("PROVIDER_SCALINGO_OPERATION_TIMEOUT", "45"),
            ],
            "note: PROVIDER_SCALINGO_OPERATION_TIMEOUT (seconds) is used as defaults.wake_timeout",
        );
        has(
            &[("PROVIDER_HEROKU_API_TOKEN", "t")],
            "warning: PROVIDER_HEROKU_API_TOKEN is set but PROVIDER_NAME is not",
        );
        has(
            &[
                ("PROVIDER_SCALINGO_API_TOKEN", "t"),
                ("PROVIDER_REGION", "nowhere"),
            ],
            "warning: PROVIDER_REGION `nowhere` is not a Scalingo region",
        );
        has(
            &[
                ("PROVIDER_SCALINGO_API_TOKEN", "t"),
                ("PROVIDER_REGION", "osc-secnum-fr1"),
            ],
            "paastis lists those of osc-secnum-fr1",
        );
        has(
            &[
                ("PROVIDER_NAME", "heroku"),
                ("PROVIDER_HEROKU_API_TOKEN", "t"),
                ("PROVIDER_REGION", "eu"),
            ],
            "PROVIDER_REGION has no effect on heroku",
        );
        has(
            &[("START_AND_STOP_CHECKING_INTERVAL_CRON", "*/5 * * * *")],
            "becomes discovery.every: 5m",
        );
        has(
            &[("EVENTS_STORE_TYPE", "in-memory")],
            "by default the SQLite file paastis.db",
        );
        has(
            &[("ROUTING_SYSTEM_API_ENABLED", "true")],
            "ROUTING_SYSTEM_API_TOKEN is not set",
        );
        has(
            &[("START_AND_STOP_MAX_IDLE_TIME", "0")],
            "meant the default (15 minutes)",
        );
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
    fn the_new_configuration_wins_key_by_key() {
        let yaml = "listen: 127.0.0.1:5000\ndefaults: {wake_timeout: 9s}\ndiscovery: {exclude: [admin]}\nproviders: [{id: local, type: process, apps: []}]\n";
        let outcome = run(
            yaml,
            &[
                ("HOST", "0.0.0.0"),
                ("PORT", "4000"),
                ("START_AND_STOP_MAX_IDLE_TIME", "30"),
                ("START_AND_STOP_CHECKING_INTERVAL_CRON", "*/2 * * * *"),
                ("REGISTRY_IGNORED_APPS", "paastis"),
                ("PROVIDER_NAME", "scalingo"),
                ("PROVIDER_SCALINGO_API_TOKEN", "tk-us-secret"),
                ("PROVIDER_SCALINGO_OPERATION_TIMEOUT", "45"),
            ],
            None,
        );
        assert_eq!(
            outcome.tree,
            json!({
                "listen": "127.0.0.1:5000",
                "defaults": {"wake_timeout": "9s", "max_idle": "30m"},
                "discovery": {"exclude": ["admin"], "every": "2m"},
                "providers": [{"id": "local", "type": "process", "apps": []}],
            })
        );
        let messages = outcome.messages();
        for expected in [
            "note: HOST, PORT is not used: the configuration sets `listen`",
            "note: REGISTRY_IGNORED_APPS is not used: the configuration sets `discovery.exclude`",
            "note: PROVIDER_NAME is not used: the configuration sets `providers`",
        ] {
            assert!(
                messages.contains(&expected.to_owned()),
                "{expected:?} not in {messages:?}"
            );
        }
        // The provider's timeout went with the provider, silently.
        assert!(
            !messages.iter().any(|m| m.contains("OPERATION_TIMEOUT")),
            "{messages:?}"
        );
        assert_eq!(
            outcome.compat.render(),
            "defaults:\n  max_idle: 30m  # START_AND_STOP_MAX_IDLE_TIME\ndiscovery:\n  every: 2m  # START_AND_STOP_CHECKING_INTERVAL_CRON\n"
        );

        // A section set to something else than a mapping is the configuration's too.
        let outcome = run("hooks: 3\n", &[("HOOKS_AFTER_STOP", "x")], None);
        assert_eq!(outcome.tree, json!({"hooks": 3}));
        assert_eq!(
            outcome.messages(),
            vec!["note: HOOKS_AFTER_STOP is not used: the configuration sets `hooks`"]
        );
    }

    #[test]
    fn provenance_names_the_variables_and_hides_their_values() {
        let outcome = run(
            "",
            &[
                ("PROVIDER_NAME", "clever-cloud"),
                ("PROVIDER_CLEVER_OAUTH_CONSUMER_KEY", "ck-value"),
                ("PROVIDER_CLEVER_TOKEN", "token-value"),
                ("HOOKS_BEFORE_STOP", "./notify.sh secret-hook"),
            ],
            None,
        );
        let origin = |path: &str| outcome.provenance.origins.get(path).map(String::as_str);
        assert_eq!(origin("providers"), Some("PROVIDER_NAME"));
        assert_eq!(origin("providers[0]"), Some("PROVIDER_NAME"));
        assert_eq!(
            origin("providers[0].consumer_key"),
            Some("PROVIDER_CLEVER_OAUTH_CONSUMER_KEY")
        );
        // Named even when unset, so "missing" says which variable to set.
        assert_eq!(
            origin("providers[0].consumer_secret"),
            Some("PROVIDER_CLEVER_OAUTH_CONSUMER_SECRET")
        );
        assert_eq!(origin("hooks"), Some("HOOKS_BEFORE_STOP"));
        assert_eq!(origin("hooks.before_stop"), Some("HOOKS_BEFORE_STOP"));
        let hidden = &outcome.provenance.from_env;
        let database = run(
            "",
            &[
                ("EVENTS_STORE_TYPE", "postgres"),
                ("DATABASE_URL", "postgres://u:hunter2@db/x"),
            ],
            None,
        );
        assert_eq!(
            database
                .provenance
                .from_env
                .get("database.url")
                .map(String::as_str),
            Some("postgres://u:hunter2@db/x")
        );
        assert_eq!(
            database
                .provenance
                .origins
                .get("database")
                .map(String::as_str),
            Some("DATABASE_URL")
        );
        assert_eq!(
            hidden.get("providers[0].token").map(String::as_str),
            Some("token-value")
        );
        assert_eq!(
            hidden.get("hooks.before_stop").map(String::as_str),
            Some("./notify.sh secret-hook")
        );
    }

    #[test]
    fn render_redacts_secrets_and_names_sources() {
        let outcome = run(
            "",
            &[
                ("HOST", "127.0.0.1"),
                ("PORT", "4000"),
                ("PROVIDER_NAME", "scalingo"),
                ("PROVIDER_SCALINGO_API_TOKEN", "tk-us-top-secret"),
                ("PROVIDER_REGION", "osc-fr1"),
                ("REGISTRY_TYPE", "redis"),
                ("REDIS_URL", "redis://:redis-pass@cache:6379"),
                ("REGISTRY_IGNORED_APPS", "paastis-proxy,foo"),
                ("START_AND_STOP_CHECKING_INTERVAL_CRON", "0 8 * * 1-5"),
                ("HOOKS_AFTER_STOP", "curl https://hooks.example/secret-path"),
                ("ROUTING_SYSTEM_API_ENABLED", "true"),
                ("ROUTING_SYSTEM_API_TOKEN", "system-secret"),
                ("EVENTS_STORE_TYPE", "postgres"),
                (
                    "DATABASE_URL",
                    "postgresql://paastis:db-pass@db:5432/paastis",
                ),
            ],
            None,
        );
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        let text = outcome.compat.render();
        for secret in [
            "top-secret",
            "redis-pass",
            "secret-path",
            "system-secret",
            "db-pass",
        ] {
            assert!(!text.contains(secret), "{secret} in:\n{text}");
        }
        assert_eq!(
            text,
            "\
admin:
  system_api:
    enabled: true  # ROUTING_SYSTEM_API_ENABLED
    token: <redacted>  # ROUTING_SYSTEM_API_TOKEN
database:
  url: 'postgresql://paastis:<redacted>@db:5432/paastis'  # DATABASE_URL
discovery:
  cron: '0 8 * * 1-5'  # START_AND_STOP_CHECKING_INTERVAL_CRON
  exclude: [paastis-proxy, foo]  # REGISTRY_IGNORED_APPS
hooks:
  after_stop: <redacted>  # HOOKS_AFTER_STOP
listen: 127.0.0.1:4000  # HOST, PORT
providers:  # PROVIDER_NAME
  - id: scalingo
    type: scalingo
    region: osc-fr1  # PROVIDER_REGION
    token: <redacted>  # PROVIDER_SCALINGO_API_TOKEN
registry:
  type: redis  # REGISTRY_TYPE
  url: 'redis://:<redacted>@cache:6379'  # REDIS_URL
"
        );
        assert!(outcome.compat.is_used());
        assert!(!run("", &[], None).compat.is_used());
    }

    #[test]
    fn urls_lose_their_passwords() {
        for (url, expected) in [
            ("redis://:pw@h:6379", "redis://:<redacted>@h:6379"),
            (
                "postgres://u:pw@h/db?x=@",
                "postgres://u:<redacted>@h/db?x=@",
            ),
            ("https://token@h/x", "https://<redacted>@h/x"),
            ("redis://h:6379", "redis://h:6379"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url(url), expected);
        }
    }

    fn original(text: &str) -> Value {
        let mut tree = super::super::load::parse_yaml(text).expect("yaml");
        take_original_rules(&mut tree).expect("an original rules file")
    }

    #[test]
    fn original_rules_become_rules() {
        let rules = original(include_str!(
            "../../tests/support/compat/original-paastis.yml"
        ));
        let outcome = run("", &[], Some(&rules));
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        assert_eq!(
            outcome.tree,
            json!({"rules": [
                {"pattern": "shop-pr(\\d+)-front", "linked_apps": ["shop-pr$1-back"], "max_idle": "30m"},
                {"pattern": "^docs-v(\\d+)$", "linked_apps": ["docs-v${1}search"], "max_idle": "1m"},
                {"pattern": "billing"},
                {"pattern": ".*-demo.*", "max_idle": "2m30s"},
            ]})
        );
        let messages = outcome.messages();
        let expected = [
            "warning: original rules[0].pattern `shop-pr(\\d+)-front` matched anywhere in an app name in the original engine; paastis matches whole names, so names that only contain a match are no longer affected; write `.*shop-pr(\\d+)-front.*` to keep the original meaning",
            "note: original rules[1].app_max_idle_time: 0 stopped the app at every check (each minute) in the original engine; it becomes max_idle: 1m",
            "warning: original rules[2].pattern `billing` matched anywhere in an app name in the original engine; paastis matches whole names, so names that only contain a match are no longer affected (e.g. it no longer matches `billing-x`); write `.*billing.*` to keep the original meaning",
            "warning: original rules[2].app_name is ignored: the original engine only used it to rename the app's entry in its registry, which paastis does not have",
            "note: original rules[3].group_name is ignored (the original engine never read it either)",
        ];
        assert_eq!(messages, expected);
        let origin = |path: &str| outcome.provenance.origins.get(path).cloned();
        assert_eq!(
            origin("rules[0].max_idle").as_deref(),
            Some("original rules[0].app_max_idle_time")
        );
        assert_eq!(
            origin("rules[1].linked_apps[0]").as_deref(),
            Some("original rules[1].linked_apps[0]")
        );
    }

    #[test]
    fn bad_original_rules_are_errors() {
        let rules = original(
            "rules:\n  - linked_apps: [a]\n  - pattern: a\n    app_max_idle_time: soon\n  - pattern: b\n    app_max_idle_time: -1\n",
        );
        let outcome = run("", &[], Some(&rules));
        assert_eq!(
            outcome.errors,
            vec![
                "rules[0].pattern (from original rules[0].pattern): is required (a regex; the original engine matched it anywhere in the app name)",
                "rules[1].max_idle (from original rules[1].app_max_idle_time): `soon` is not a number of minutes (the original engine's unit)",
                "rules[2].max_idle (from original rules[2].app_max_idle_time): `-1` is not a number of minutes (the original engine's unit)",
            ]
        );
    }

    #[test]
    fn original_rules_files_are_told_from_new_ones() {
        // (what, file, whether it is the original's)
        let cases = [
            (
                "original keys",
                "rules: [{pattern: a, app_max_idle_time: 5}]",
                true,
            ),
            (
                "pattern and links only",
                "rules: [{pattern: a, linked_apps: [b]}]",
                true,
            ),
            ("empty rules", "rules:\n", true),
            (
                "sample keys",
                "rules: [{pattern: a, group_name: g, name: n}]",
                true,
            ),
            ("new keys", "rules: [{pattern: a, max_idle: 5m}]", false),
            (
                "other sections",
                "rules: [{pattern: a}]\nlisten: 0.0.0.0:1",
                false,
            ),
            ("no rules", "listen: 0.0.0.0:1", false),
            ("empty file", "", false),
            ("rules not a list", "rules: {pattern: a}", false),
        ];
        for (what, text, expected) in cases {
            let tree = super::super::load::parse_yaml(text).expect("yaml");
            assert_eq!(is_original_rules(&tree), expected, "{what}");
        }
    }

    #[test]
    fn anchored_patterns_keep_their_meaning() {
        // (pattern, whether anchoring changes what it matches, the pattern keeping the
        // original meaning)
        let cases = [
            ("^review-.*$", false, ""),
            (".*fastify.*", false, ""),
            (r"\Apr-\d+\z", false, ""),
            ("^pr-.*", false, ""),
            ("review-.*", true, ".*review-.*"),
            (r"^pr-\d+", true, r"^pr-\d+.*"),
            ("front$", true, ".*front$"),
            (r"front\$", true, r".*front\$.*"),
            (r"a\.*", true, r".*a\.*.*"),
            ("a|b", true, ".*(?:a|b).*"),
            ("^(a|b)$", false, ""),
            ("^[|]$", false, ""),
        ];
        let names = [
            "review-1",
            "x-review-1",
            "pr-12",
            "pr-12-x",
            "x-pr-12",
            "front",
            "a-front",
            "front$",
            "a-front$-x",
            "a",
            "a.",
            "xa..y",
            "b",
            "ab",
            "|",
            "x|",
        ];
        for (pattern, changes, kept) in cases {
            let notice = anchoring_notice(0, pattern);
            assert_eq!(notice.is_some(), changes, "{pattern}: {notice:?}");
            let Some(notice) = notice else {
                continue;
            };
            assert!(
                notice.contains(&format!("write `{kept}`")),
                "{pattern}: {notice}"
            );
            // The suggested pattern, matched whole, selects what the original matched
            // anywhere.
            let anywhere = regex::Regex::new(pattern).expect("regex");
            let whole = regex::Regex::new(&format!("^(?:{kept})$")).expect("regex");
            for name in names {
                assert_eq!(
                    anywhere.is_match(name),
                    whole.is_match(name),
                    "{pattern} / {kept} on {name}"
                );
            }
        }
    }

    #[test]
    fn discovered_names_show_which_matches_are_lost() {
        let rules = original(
            "rules:\n  - pattern: 'shop-pr(\\d+)-front'\n  - pattern: '^docs$'\n  - pattern: '(('\n",
        );
        let compat = run("", &[], Some(&rules)).compat;
        let lines = compat.pattern_changes([
            "shop-pr1-front",
            "old-shop-pr2-front",
            "shop-pr3-front-v2",
            "docs",
            "docs-v2",
        ]);
        assert_eq!(
            lines,
            vec![
                "original rules[0].pattern `shop-pr(\\d+)-front` matched `old-shop-pr2-front`, `shop-pr3-front-v2` in the original engine; it no longer does (whole-name match)"
            ]
        );
    }

    #[test]
    fn captures_before_letters_are_braced() {
        for (template, expected) in [
            ("review-pr$1-back", "review-pr$1-back"),
            ("pr$1front", "pr${1}front"),
            ("$12x-$2", "${12}x-$2"),
            ("$name", "$name"),
            ("plain", "plain"),
            ("é$1é", "é$1é"),
        ] {
            assert_eq!(braced_captures(template), expected);
        }
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
    fn loading_fills_what_the_file_and_overrides_leave_unset() {
        use super::super::{Overrides, load_str};
        let vars = env(&[
            ("PORT", "4001"),
            ("START_AND_STOP_MAX_IDLE_TIME", "30"),
            ("START_AND_STOP_CHECKING_INTERVAL_CRON", "*/2 * * * *"),
            ("PAASTIS_DISCOVERY__EVERY", "10s"),
            ("PROVIDER_SCALINGO_API_TOKEN", "tk-us-0001"),
            ("PROVIDER_SCALINGO_OPERATION_TIMEOUT", "45"),
        ]);
        let loaded = load_str("defaults: {max_idle: 5m}\n", &vars, &Overrides::default())
            .unwrap_or_else(|errors| panic!("{errors}"));
        let config = loaded.config;
        assert_eq!(config.listen, SocketAddr::from(([0, 0, 0, 0], 4001)));
        assert_eq!(config.defaults.max_idle, Some(Duration::from_secs(300)));
        assert_eq!(config.defaults.wake_timeout, Duration::from_secs(45));
        assert_eq!(config.discovery.every, Duration::from_secs(10));
        assert_eq!(config.providers.len(), 1);
        assert_eq!(config.providers[0].id(), "scalingo");
        assert!(loaded.compat.is_used());
        assert!(
            loaded
                .compat
                .notices
                .iter()
                .any(|n| n.message
                    == "START_AND_STOP_MAX_IDLE_TIME is not used: the configuration sets `defaults.max_idle`"),
            "{:?}",
            loaded.compat.notices
        );

        // `--listen` wins over HOST and PORT too.
        let flags = Overrides {
            listen: Some("127.0.0.1:6000".to_owned()),
        };
        let loaded = load_str("", &vars, &flags).unwrap_or_else(|errors| panic!("{errors}"));
        assert_eq!(
            loaded.config.listen,
            SocketAddr::from(([127, 0, 0, 1], 6000))
        );
    }

    #[test]
    fn validation_errors_name_the_variables_and_hide_their_values() {
        use super::super::{Overrides, load_str};
        let errors = |vars: &[(&str, &str)]| -> Vec<String> {
            load_str("", &env(vars), &Overrides::default())
                .expect_err("invalid")
                .0
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            errors(&[("PROVIDER_NAME", "scalingo")]),
            vec!["providers[0].token (from PROVIDER_SCALINGO_API_TOKEN): missing (or token_file)"]
        );
        assert_eq!(
            errors(&[
                ("PROVIDER_NAME", "heroku"),
                ("PROVIDER_HEROKU_API_TOKEN", "hk-secret-0002"),
                ("PROVIDER_HEROKU_API_URL", "ftp://example.com"),
            ]),
            vec![
                "providers[0].api_url (from PROVIDER_HEROKU_API_URL): `ftp://example.com` is not an http(s) URL"
            ]
        );
        assert_eq!(
            errors(&[("PORT", "nope")]),
            vec!["listen (from PORT): `nope` is not a port number (0..65535)"]
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
