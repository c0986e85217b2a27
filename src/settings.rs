//! The shared reader of settings: walks a YAML or JSON tree, takes the keys a component
//! asks for, reads the common shapes (strings, durations, patterns, secrets, URLs) and
//! collects **every** error with its path (`providers[0].apps[1].port: must be 1..65535`).
//! Each component reads its own section with it; this module knows none of them and imports
//! nothing of the crate but the shared vocabulary and the secret type.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::model::{Activity, Pattern, Plain, PolicyOverride, Strategy, parse_duration};
use crate::secret::Secret;

/// YAML text (of `name`, for the message) as a tree; the error says where and what is
/// wrong, `<name>: invalid YAML: line L column C: ...`, and never quotes the text (the
/// parser's later lines do; the text may hold a credential).
pub fn read_yaml(name: &str, text: &str) -> Result<Value, String> {
    parse_yaml(text).map_err(|error| {
        let first = error.to_string();
        let first = first
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ");
        format!("{name}: invalid YAML: {first}")
    })
}

/// YAML 1.2 core schema for booleans: `yes`, `no`, `y`, `on` stay strings (a command named
/// `y` or a country code `NO` is not a boolean).
pub fn parse_yaml(text: &str) -> Result<Value, serde_saphyr::Error> {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    serde_saphyr::from_str_with_options(text, options)
}

/// One configuration error, with the place it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where: a path in the file (`providers[0].apps[1].port`), with the environment variable
    /// or flag that set it when it did not come from the file.
    pub path: String,
    /// What is wrong, and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every error found in one configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.len();
        writeln!(
            f,
            "invalid configuration ({count} error{}):",
            if count == 1 { "" } else { "s" }
        )?;
        for error in &self.0 {
            writeln!(f, "  - {error}")?;
        }
        Ok(())
    }
}

/// Collects errors while the tree is walked.
pub struct Reader<'a> {
    /// Every error found so far, in the order found.
    pub errors: Vec<ConfigError>,
    /// Where values came from (environment variables, flags).
    pub provenance: &'a Provenance,
    /// Set while a space document from the admin API is read: what a tenant may not ask
    /// of the engine's host is refused (commands, files, other API addresses).
    pub api: Option<ApiRules>,
}

/// What a space document from the admin API may contain beyond the config file's rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiRules {
    /// Providers may name their own API addresses (`hosted.custom_api_urls`).
    pub custom_api_urls: bool,
    /// Webhooks may be at internal addresses (`hosted.private_upstreams`).
    pub private_addresses: bool,
}

/// Where values came from, so errors point at the real source and never echo what came from
/// the environment (it may be a secret).
#[derive(Debug, Default)]
pub struct Provenance {
    /// Path -> the environment variable or flag that set it.
    pub origins: HashMap<String, String>,
    /// Paths already reported by an earlier stage (failed interpolation): not reported twice.
    pub reported: HashSet<String>,
    /// Path -> its value, for values that came from the environment.
    pub from_env: HashMap<String, String>,
    /// `PAASTIS_ADMIN_TOKEN`, used when `admin.token` is not set.
    pub admin_token: Option<Secret>,
    /// `PAASTIS_MASTER_KEY`, the key of hosted mode (read only when `hosted` is set).
    pub master_key: Option<Secret>,
}

/// Values shorter than this are not hidden in messages (hiding `1` would garble them; such a
/// value is no secret).
const MIN_HIDDEN_LEN: usize = 4;

impl<'a> Reader<'a> {
    pub fn new(provenance: &'a Provenance) -> Self {
        Reader {
            errors: Vec::new(),
            provenance,
            api: None,
        }
    }

    /// The section `key` of `fields`, read by `read`; its default when absent (or `null`).
    pub fn section<T: Default>(
        &mut self,
        fields: &mut Fields<'_>,
        key: &str,
        read: impl FnOnce(&mut Self, &Value, &str) -> T,
    ) -> T {
        match fields.take(key) {
            Some((value, path)) => read(self, value, &path),
            None => T::default(),
        }
    }

    pub fn error(&mut self, path: &str, message: impl Into<String>) {
        if self.provenance.reported.contains(path) {
            return;
        }
        let mut message = message.into();
        if let Some(value) = self.provenance.from_env.get(path)
            && value.len() >= MIN_HIDDEN_LEN
        {
            message = message.replace(value.as_str(), "<value from the environment>");
        }
        let path = match self.provenance.origins.get(path) {
            Some(origin) => format!("{path} (from {origin})"),
            None => path.to_owned(),
        };
        self.errors.push(ConfigError { path, message });
    }

    /// Reports the keys of a mapping that nothing took.
    pub fn finish(&mut self, fields: Fields<'_>, later: &[&str]) {
        let expected = fields.taken.clone();
        for (key, path) in fields.rest() {
            if later.contains(&key) {
                self.error(&path, "is not supported by this version of paastis yet");
            } else {
                let mut names: Vec<&str> = expected.iter().map(String::as_str).collect();
                names.sort_unstable();
                self.error(
                    &path,
                    format!("unknown key (expected one of: {})", names.join(", ")),
                );
            }
        }
    }

    pub fn mapping<'v>(&mut self, value: &'v Value, path: &str) -> Option<Fields<'v>> {
        match value {
            Value::Object(map) => Some(Fields::new(map, path)),
            other => {
                self.error(path, format!("expected a mapping, found {}", kind(other)));
                None
            }
        }
    }

    pub fn string(&mut self, value: &Value, path: &str) -> Option<String> {
        match value {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            other => {
                self.error(path, format!("expected a string, found {}", kind(other)));
                None
            }
        }
    }

    pub fn non_empty_string(&mut self, value: &Value, path: &str) -> Option<String> {
        let text = self.string(value, path)?;
        if text.trim().is_empty() {
            self.error(path, "must not be empty");
            None
        } else {
            Some(text)
        }
    }

    pub fn socket_addr(&mut self, value: &Value, path: &str) -> Option<SocketAddr> {
        let text = self.string(value, path)?;
        match text.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.error(
                    path,
                    format!(
                        "`{text}` is not an address (expected e.g. 0.0.0.0:3000 or [::1]:3000)"
                    ),
                );
                None
            }
        }
    }

    pub fn duration(&mut self, value: &Value, path: &str) -> Option<Duration> {
        let text = self.string(value, path)?;
        match parse_duration(&text) {
            Ok(duration) => Some(duration),
            Err(message) => {
                self.error(path, message);
                None
            }
        }
    }

    /// A duration that must be > 0.
    pub fn positive_duration(&mut self, value: &Value, path: &str) -> Option<Duration> {
        let duration = self.duration(value, path)?;
        if duration.is_zero() {
            self.error(path, "must be longer than 0s");
            return None;
        }
        Some(duration)
    }

    /// A duration or `never`; `Some(None)` is `never`.
    pub fn duration_or_never(&mut self, value: &Value, path: &str) -> Option<Option<Duration>> {
        if value.as_str().map(str::trim) == Some("never") {
            return Some(None);
        }
        self.positive_duration(value, path).map(Some)
    }

    pub fn list<'v>(&mut self, value: &'v Value, path: &str) -> Option<&'v Vec<Value>> {
        match value {
            Value::Array(items) => Some(items),
            other => {
                self.error(path, format!("expected a list, found {}", kind(other)));
                None
            }
        }
    }

    pub fn domains(&mut self, value: &Value, path: &str) -> Vec<String> {
        let Some(items) = self.list(value, path) else {
            return Vec::new();
        };
        let mut domains = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            let Some(text) = self.string(item, &item_path) else {
                continue;
            };
            let domain = text.trim().trim_start_matches('.').trim_end_matches('.');
            let domain = domain.to_ascii_lowercase();
            if !is_host_name(&domain) {
                self.error(&item_path, format!("`{text}` is not a domain name"));
                continue;
            }
            if domains.contains(&domain) {
                self.error(&item_path, format!("duplicate domain `{domain}`"));
                continue;
            }
            domains.push(domain);
        }
        domains
    }

    /// `defaults` and the per-app policy keys. `extra` lists the other keys the caller takes
    /// from the same mapping (so they are not reported as unknown).
    pub fn policy_section(&mut self, value: &Value, path: &str, extra: &[&str]) -> PolicyOverride {
        let Some(mut fields) = self.mapping(value, path) else {
            return PolicyOverride::default();
        };
        let overrides = self.policy_fields(&mut fields);
        for key in extra {
            fields.take(key);
        }
        self.finish(fields, &[]);
        overrides
    }

    pub fn policy_fields(&mut self, fields: &mut Fields<'_>) -> PolicyOverride {
        PolicyOverride {
            max_idle: fields
                .take("max_idle")
                .and_then(|(v, p)| self.duration_or_never(v, &p)),
            wake_timeout: fields
                .take("wake_timeout")
                .and_then(|(v, p)| self.positive_duration(v, &p)),
            strategy: fields
                .take("strategy")
                .and_then(|(v, p)| self.strategy(v, &p)),
            health_path: fields
                .take("health_path")
                .and_then(|(v, p)| self.health_path(v, &p)),
        }
    }

    pub fn strategy(&mut self, value: &Value, path: &str) -> Option<Strategy> {
        let text = self.string(value, path)?;
        match text.as_str() {
            "hold" => Some(Strategy::Hold),
            "page" => Some(Strategy::Page),
            "auto" => Some(Strategy::Auto),
            _ => {
                self.error(
                    path,
                    format!("`{text}` is not a strategy (expected auto, hold or page)"),
                );
                None
            }
        }
    }

    pub fn health_path(&mut self, value: &Value, path: &str) -> Option<String> {
        let text = self.string(value, path)?;
        if !text.starts_with('/') || text.parse::<http::uri::PathAndQuery>().is_err() {
            self.error(
                path,
                format!("`{text}` is not a path (expected e.g. /health)"),
            );
            return None;
        }
        Some(text)
    }

    pub fn activity(&mut self, value: &Value, path: &str) -> Activity {
        let Some(mut fields) = self.mapping(value, path) else {
            return Activity::default();
        };
        let activity = Activity {
            ignore_user_agents: fields
                .take("ignore_user_agents")
                .map(|(v, p)| self.patterns(v, &p, Plain::Anywhere))
                .unwrap_or_default(),
            ignore_paths: fields
                .take("ignore_paths")
                .map(|(v, p)| self.patterns(v, &p, Plain::Whole))
                .unwrap_or_default(),
        };
        self.finish(fields, &[]);
        activity
    }

    pub fn patterns(&mut self, value: &Value, path: &str, plain: Plain) -> Vec<Pattern> {
        let Some(items) = self.list(value, path) else {
            return Vec::new();
        };
        let mut patterns = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            let Some(text) = self.string(item, &item_path) else {
                continue;
            };
            match Pattern::parse(&text, plain) {
                Ok(pattern) => patterns.push(pattern),
                Err(message) => self.error(&item_path, message),
            }
        }
        patterns
    }

    /// A number >= 0 (a price, a mass).
    pub fn amount(&mut self, value: &Value, path: &str) -> Option<f64> {
        match value.as_f64() {
            Some(number) if number.is_finite() && number >= 0.0 => Some(number),
            Some(_) => {
                self.error(path, "must be a number >= 0");
                None
            }
            None => {
                self.error(path, format!("expected a number, found {}", kind(value)));
                None
            }
        }
    }

    /// A list of non-empty strings.
    pub fn names(&mut self, value: &Value, path: &str) -> Vec<String> {
        let Some(items) = self.list(value, path) else {
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| self.non_empty_string(item, &format!("{path}[{index}]")))
            .collect()
    }

    /// `{process type: count}`, e.g. `{web: 1, worker: 2}`.
    pub fn formation(&mut self, value: &Value, path: &str) -> Option<crate::model::Formation> {
        let Value::Object(map) = value else {
            self.error(
                path,
                format!(
                    "expected a mapping of process types to counts (e.g. {{web: 1}}), found {}",
                    kind(value)
                ),
            );
            return None;
        };
        let mut formation = crate::model::Formation::new();
        for (process, count) in map {
            let count_path = format!("{path}.{process}");
            if let Some(count) = self.count(count, &count_path, 0..=1000) {
                formation.insert(process.clone(), u32::try_from(count).unwrap_or(u32::MAX));
            }
        }
        Some(formation)
    }

    pub fn count(
        &mut self,
        value: &Value,
        path: &str,
        range: std::ops::RangeInclusive<usize>,
    ) -> Option<usize> {
        let found = value.as_u64().and_then(|n| usize::try_from(n).ok());
        match found {
            Some(n) if range.contains(&n) => Some(n),
            _ => {
                self.error(
                    path,
                    format!("must be a whole number {}..{}", range.start(), range.end()),
                );
                None
            }
        }
    }

    /// A secret given as `key` or read from the file named by `key_file` (trimmed). Its
    /// value never appears in an error.
    pub fn secret(&mut self, fields: &mut Fields<'_>, key: &str, parent: &str) -> Option<Secret> {
        let file_key = format!("{key}_file");
        let direct = fields.take(key);
        let file = fields.take(&file_key);
        if let (Some((_, p)), true) = (&file, self.api.is_some()) {
            self.error(
                p,
                format!("files are not read for spaces created through the API: give {key}"),
            );
            return None;
        }
        match (direct, file) {
            (Some((_, p)), Some(_)) => {
                self.error(&p, format!("set either {key} or {file_key}, not both"));
                None
            }
            (Some((value, p)), None) => match value {
                Value::String(text) if !text.trim().is_empty() => Some(Secret::new(text.trim())),
                Value::String(_) => {
                    self.error(&p, "must not be empty");
                    None
                }
                other => {
                    self.error(&p, format!("expected a string, found {}", kind(other)));
                    None
                }
            },
            (None, Some((value, p))) => {
                let file = self.non_empty_string(value, &p)?;
                match std::fs::read_to_string(&file) {
                    Ok(text) if !text.trim().is_empty() => Some(Secret::new(text.trim())),
                    Ok(_) => {
                        self.error(&p, format!("{file} is empty"));
                        None
                    }
                    Err(error) => {
                        self.error(&p, format!("cannot read {file}: {error}"));
                        None
                    }
                }
            }
            (None, None) => {
                let _ = parent;
                None
            }
        }
    }

    pub fn required_secret(
        &mut self,
        fields: &mut Fields<'_>,
        key: &str,
        parent: &str,
    ) -> Option<Secret> {
        let secret = self.secret(fields, key, parent);
        if secret.is_none() && !fields.has(key) && !fields.has(&format!("{key}_file")) {
            let message = match self.api {
                Some(_) => "missing".to_owned(),
                None => format!("missing (or {key}_file)"),
            };
            self.error(&child(parent, key), message);
        }
        secret
    }

    /// An `http(s)://` base URL, without a trailing slash (`{region}` allowed in it).
    pub fn base_url(&mut self, fields: &mut Fields<'_>, key: &str) -> Option<String> {
        let (value, path) = fields.take(key)?;
        if self.api.is_some_and(|api| !api.custom_api_urls) {
            self.error(
                &path,
                "spaces created through the API use the platform's own API \
                 (hosted.custom_api_urls is off)",
            );
            return None;
        }
        let text = self.string(value, &path)?;
        let valid = text
            .replace("{region}", "region")
            .parse::<http::Uri>()
            .ok()
            .filter(|uri| {
                matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some()
            })
            .is_some();
        if !valid {
            self.error(&path, format!("`{text}` is not an http(s) URL"));
            return None;
        }
        Some(text.trim_end_matches('/').to_owned())
    }

    /// A provider's `rate_limit` (API calls per rolling minute); see [`rate_limit_key`].
    pub fn rate_limit(&mut self, fields: &mut Fields<'_>, default: usize) -> usize {
        fields
            .take("rate_limit")
            .and_then(|(v, p)| self.count(v, &p, 1..=100_000))
            .unwrap_or(default)
    }

    pub fn port(&mut self, value: &Value, path: &str) -> Option<u16> {
        let number = match value {
            Value::Number(number) => number.as_i64(),
            Value::String(text) => text.trim().parse::<i64>().ok(),
            _ => None,
        };
        match number {
            Some(port @ 1..=65535) => u16::try_from(port).ok(),
            Some(_) => {
                self.error(path, "must be 1..65535");
                None
            }
            None => {
                self.error(
                    path,
                    format!("expected a port number 1..65535, found {}", kind(value)),
                );
                None
            }
        }
    }

    pub fn env_map(&mut self, value: &Value, path: &str) -> BTreeMap<String, String> {
        let Some(fields) = self.mapping(value, path) else {
            return BTreeMap::new();
        };
        let mut env = BTreeMap::new();
        for (key, value) in fields.map {
            let key_path = format!("{path}.{key}");
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                self.error(&key_path, "is not a valid environment variable name");
                continue;
            }
            let text = match value {
                Value::Bool(b) => Some(b.to_string()),
                other => self.string(other, &key_path),
            };
            if let Some(text) = text {
                env.insert(key.clone(), text);
            }
        }
        env
    }
}

/// The keys of one mapping, as they are taken: what nothing took is reported by
/// [`Reader::finish`].
pub struct Fields<'v> {
    /// The mapping.
    map: &'v Map<String, Value>,
    /// Its path.
    path: String,
    /// The keys asked for, for the "expected one of" message.
    taken: Vec<String>,
    /// The keys found and taken.
    consumed: HashSet<&'v str>,
}

impl<'v> Fields<'v> {
    pub fn new(map: &'v Map<String, Value>, path: &str) -> Self {
        Fields {
            map,
            path: path.to_owned(),
            taken: Vec::new(),
            consumed: HashSet::new(),
        }
    }

    /// The path of `key` in this mapping.
    pub fn child_path(&self, key: &str) -> String {
        child(&self.path, key)
    }

    /// Whether the mapping has `key` (taken or not).
    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// The value of `key` with its path; `null` counts as absent.
    pub fn take(&mut self, key: &str) -> Option<(&'v Value, String)> {
        note_taken(&self.path, key);
        self.taken.push(key.to_owned());
        let (name, value) = self.map.get_key_value(key)?;
        self.consumed.insert(name.as_str());
        if value.is_null() {
            return None;
        }
        Some((value, self.child_path(key)))
    }

    /// Marks every key as seen (used when an earlier error makes the rest meaningless).
    pub fn take_all(&mut self) {
        for key in self.map.keys() {
            self.consumed.insert(key.as_str());
        }
    }

    /// The keys nothing took, with their paths, in file order.
    pub fn rest(&self) -> Vec<(&'v str, String)> {
        self.map
            .keys()
            .filter(|key| !self.consumed.contains(key.as_str()))
            .map(|key| (key.as_str(), self.child_path(key)))
            .collect()
    }
}

/// `parent.key`, or `key` at the top; an empty key is written `""`, so every path names
/// something.
pub fn child(parent: &str, key: &str) -> String {
    let key = if key.is_empty() { "\"\"" } else { key };
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// How a value's kind is named in messages.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// One DNS label as this engine routes it: lowercase letters, digits and '-', 1..=63 bytes,
/// not starting or ending with '-'.
pub fn is_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && !text.starts_with('-')
        && !text.ends_with('-')
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A host name made of [`is_label`]-like labels (underscores allowed, as some platforms use).
pub fn is_host_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        })
}

/// One key of a configuration mapping, as the reference, the JSON Schema and the drift
/// test see it. Each component declares the keys of its section next to the reader that
/// takes them; `config::reference` composes the tree.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// Its name in the mapping (a [`Kind::Secret`] also stands for `<name>_file`).
    pub name: &'static str,
    /// What its value may be.
    pub kind: Kind,
    /// Its default as a user would write it; `None`: no default (absent means off, or the
    /// key is required).
    pub default: Option<&'static str>,
    /// Whether the mapping must hold it (for a secret: it or its `_file`).
    pub required: bool,
    /// One or two sentences for the reference and the schema's `description`.
    pub doc: &'static str,
}

impl Key {
    /// An optional key without a default.
    pub const fn new(name: &'static str, kind: Kind, doc: &'static str) -> Key {
        Key {
            name,
            kind,
            default: None,
            required: false,
            doc,
        }
    }

    /// The same key with a default.
    pub const fn default(mut self, default: &'static str) -> Key {
        self.default = Some(default);
        self
    }

    /// The same key, required.
    pub const fn required(mut self) -> Key {
        self.required = true;
        self
    }
}

/// What a key's value may be.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Text; the label says what it holds (`path`, `command`, `regex`, `host name`...).
    Text(&'static str),
    /// A whole number in `min..=max`.
    Integer {
        /// Smallest accepted.
        min: u64,
        /// Largest accepted.
        max: u64,
    },
    /// A number >= 0 (a price, a mass).
    Amount,
    /// `true` or `false`.
    Boolean,
    /// A duration such as `250ms`, `90s`, `15m`, `2h`, `7d` (or `1h30m`).
    Duration,
    /// A duration, or `never`.
    DurationOrNever,
    /// `host:port`, e.g. `0.0.0.0:3000` or `[::1]:3000`.
    Address,
    /// An `http(s)://` base URL.
    Url,
    /// A TCP port, 1..65535.
    Port,
    /// A credential: given as the key, or read from the file named by `<key>_file`.
    Secret,
    /// Text, environment variable values: strings, numbers and booleans.
    Scalar,
    /// One of these words.
    Enum(&'static [&'static str]),
    /// A list of values of one kind.
    List(&'static Kind),
    /// One value of a kind, or a list of them.
    OneOrList(&'static Kind),
    /// A mapping with fixed keys (the groups, in order); any other key is an error.
    Section(&'static [&'static [Key]]),
    /// A mapping with free keys (described by the label) to values of one kind.
    Map(&'static str, &'static Kind),
    /// Any of these shapes.
    Either(&'static [Kind]),
    /// A mapping whose `tag` key says which variant it is; each variant has the common
    /// keys and its own.
    Tagged(&'static Tagged),
}

/// A mapping tagged by one of its keys (the `providers:` entries, tagged by `type`).
#[derive(Debug, Clone, Copy)]
pub struct Tagged {
    /// The key that names the variant.
    pub tag: &'static str,
    /// Keys every variant has besides the tag.
    pub common: &'static [Key],
    /// The variants, as their owners declare them (a function: they are collected from a
    /// registration table).
    pub variants: fn() -> Vec<Variant>,
}

/// One variant of a [`Tagged`] mapping.
#[derive(Debug, Clone, Copy)]
pub struct Variant {
    /// Its tag's value (`scalingo`).
    pub name: &'static str,
    /// What it is, for the reference.
    pub doc: &'static str,
    /// Its own keys.
    pub keys: &'static [Key],
}

/// Duration text as the reader accepts it, for schemas.
pub const DURATION_PATTERN: &str = r"^\s*([0-9]+(ms|s|m|h|d))+\s*$";

/// The per-app policy keys, read by [`Reader::policy_fields`] (in `defaults`, rules and
/// `process` apps).
pub const POLICY_KEYS: &[Key] = &[
    Key::new(
        "max_idle",
        Kind::DurationOrNever,
        "Idle time after which an awake app is stopped; `never` keeps it awake.",
    )
    .default("15m"),
    Key::new(
        "wake_timeout",
        Kind::Duration,
        "How long a wake may take before waiting requests get 503 and the app is marked failed.",
    )
    .default("2m"),
    Key::new(
        "strategy",
        Kind::Enum(&["auto", "hold", "page"]),
        "How requests wait for a sleeping app: `hold` keeps them until it is up, `page` \
         answers with a waiting page, `auto` holds API calls and pages browsers.",
    )
    .default("auto"),
    Key::new(
        "health_path",
        Kind::Text("path"),
        "Path probed on the upstream until it answers < 500 before held requests are released.",
    ),
];

/// The `activity` keys, read by [`Reader::activity`].
pub const ACTIVITY_KEYS: &[Key] = &[
    Key::new(
        "ignore_user_agents",
        Kind::List(&Kind::Text("pattern")),
        "Requests whose User-Agent matches (anywhere; a glob, or `re:` for a regex) never \
         wake an app and never count as activity (uptime monitors, bots).",
    ),
    Key::new(
        "ignore_paths",
        Kind::List(&Kind::Text("pattern")),
        "Request paths (whole; a glob, or `re:` for a regex) that never wake an app and \
         never count as activity.",
    ),
];

thread_local! {
    /// The (mapping path, key) pairs taken on this thread while [`record_keys`] runs.
    static TAKEN: std::cell::RefCell<Option<std::collections::BTreeSet<(String, String)>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `read` and returns, with its result, every (mapping path, key) pair a [`Fields`]
/// was asked for on this thread meanwhile, present or not: the keys the readers know,
/// which the declared [`Key`]s must match.
pub fn record_keys<T>(
    read: impl FnOnce() -> T,
) -> (T, std::collections::BTreeSet<(String, String)>) {
    TAKEN.with(|taken| *taken.borrow_mut() = Some(Default::default()));
    let result = read();
    let taken = TAKEN
        .with(|taken| taken.borrow_mut().take())
        .unwrap_or_default();
    (result, taken)
}

/// Notes that `key` of the mapping at `path` was asked for, while [`record_keys`] runs.
fn note_taken(path: &str, key: &str) {
    TAKEN.with(|taken| {
        if let Ok(mut taken) = taken.try_borrow_mut()
            && let Some(set) = taken.as_mut()
        {
            set.insert((path.to_owned(), key.to_owned()));
        }
    });
}

/// The `rate_limit` key of a provider entry, as [`Reader::rate_limit`] reads it, with the
/// platform's `default` (written as the model writes defaults).
pub const fn rate_limit_key(default: &'static str) -> Key {
    Key::new(
        "rate_limit",
        Kind::Integer {
            min: 1,
            max: 100_000,
        },
        "API calls per rolling minute for this account (callers wait their turn).",
    )
    .default(default)
}
