//! Sources of the configuration, in increasing precedence: the YAML file (or, with no file,
//! `PAASTIS_CONFIG_YAML`), `${ENV}` interpolation inside it, `PAASTIS_*` environment
//! overrides (`PAASTIS_PROVIDERS__0__TYPE`: numeric keys index lists), then CLI flags; below
//! them all, the original engine's variables (`config/compat`) and, when the configuration
//! comes from the environment alone, the platforms' add-on URLs (`DATABASE_URL`,
//! `REDIS_URL`, ...). It reads the environment it is given, never the process's, and
//! reports every value it took from it ([`EnvValue`]), secrets redacted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::compat::{self, Compat};
use super::{Config, ConfigError, ConfigErrors};
use crate::settings::{Provenance, Reader, parse_yaml, read_yaml};

/// Where the YAML text comes from, for error messages.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file on disk.
    File(PathBuf),
    /// Text given directly (tests, embedded configs).
    Text(String),
    /// The environment alone: `PAASTIS_CONFIG_YAML`, or nothing.
    Env,
}

/// Values given as CLI flags; they win over the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`: address of the proxy listener.
    pub listen: Option<String>,
}

/// Top-level keys an environment variable `PAASTIS_<KEY>[__<SUBKEY>...]` may set.
const ENV_SETTABLE: &[&str] = &[
    "listen",
    "providers",
    "domains",
    "defaults",
    "discovery",
    "proxy",
    "database",
    "events",
    "registry",
    "admin",
    "gate",
    "reload",
    "hosted",
];

/// `PAASTIS_*` variables that are not config keys (read elsewhere, or by later versions).
const ENV_RESERVED: &[&str] = &[
    "PAASTIS_CONFIG",
    "PAASTIS_CONFIG_YAML",
    "PAASTIS_API_URL",
    "PAASTIS_MASTER_KEY",
    "PAASTIS_NEW_MASTER_KEY",
    "PAASTIS_ADMIN_TOKEN",
    "PAASTIS_SPACE",
];

/// The loaded configuration, with what is worth telling the user but not fatal.
#[derive(Debug)]
pub struct Loaded {
    /// The validated configuration.
    pub config: Config,
    /// Environment variables that look like overrides but set nothing.
    pub warnings: Vec<String>,
    /// What the original engine's variables and rules file set, and notices about them.
    pub compat: Compat,
    /// Every value taken from the environment (overrides, `PORT`, add-on URLs, the admin
    /// token, the own app), secrets redacted, for `paastis check` and the log.
    pub environment: Vec<EnvValue>,
}

/// One value the configuration took from an environment variable, as shown to people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvValue {
    /// What it set: a path (`listen`, `providers[0].token`), `database`, `registry`,
    /// `own app:`.
    pub what: String,
    /// The value, credentials as `***` and passwords in URLs hidden.
    pub shown: String,
    /// The variable it came from.
    pub variable: String,
}

impl std::fmt::Display for EnvValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.what, self.shown, self.variable)
    }
}

/// The variable that holds the whole configuration file when there is no file.
pub const CONFIG_YAML_VARIABLE: &str = "PAASTIS_CONFIG_YAML";

/// Whether, with no configuration file, the environment configures the engine: it holds
/// `PAASTIS_CONFIG_YAML`, declares something to manage (`PAASTIS_PROVIDERS...`, or hosted
/// mode's `PAASTIS_HOSTED`), or sets a variable only the original engine reads. Otherwise
/// (`PORT` and a database alone: every platform sets them) the missing file is the error.
pub fn configures_engine(env: &HashMap<String, String>) -> bool {
    let set = |name: &str| env.get(name).is_some_and(|value| !value.trim().is_empty());
    set(CONFIG_YAML_VARIABLE)
        || set("PAASTIS_HOSTED")
        || compat::uses_original_env(env)
        || env.iter().any(|(name, value)| {
            !value.trim().is_empty()
                && (name == "PAASTIS_PROVIDERS" || name.starts_with("PAASTIS_PROVIDERS__"))
        })
}

/// Loads and validates the configuration file at `path`, with `env` (usually the process
/// environment) and CLI `overrides`.
pub fn load(
    path: &Path,
    env: &HashMap<String, String>,
    overrides: &Overrides,
) -> Result<Loaded, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        ConfigErrors(vec![ConfigError {
            path: String::new(),
            message: format!("cannot read {}: {error}", path.display()),
        }])
    })?;
    load_source(&Source::File(path.to_owned()), &text, env, overrides, false)
}

/// Like [`load`], from YAML text.
pub fn load_str(
    text: &str,
    env: &HashMap<String, String>,
    overrides: &Overrides,
) -> Result<Loaded, ConfigErrors> {
    load_source(&Source::Text(text.to_owned()), text, env, overrides, false)
}

/// The configuration from the environment alone (no file): `PAASTIS_CONFIG_YAML` as the
/// file when set, then as [`load`], and the platforms' add-on URLs for the database and the
/// registry when nothing else configures them.
pub fn load_env(
    env: &HashMap<String, String>,
    overrides: &Overrides,
) -> Result<Loaded, ConfigErrors> {
    let text = env
        .get(CONFIG_YAML_VARIABLE)
        .map(String::as_str)
        .unwrap_or("");
    load_source(&Source::Env, text, env, overrides, true)
}

fn load_source(
    source: &Source,
    text: &str,
    env: &HashMap<String, String>,
    overrides: &Overrides,
    from_env: bool,
) -> Result<Loaded, ConfigErrors> {
    let name = match source {
        Source::File(path) => path.display().to_string(),
        Source::Text(_) => "<config>".to_owned(),
        Source::Env => CONFIG_YAML_VARIABLE.to_owned(),
    };
    let mut tree: Value = read_yaml(&name, text).map_err(|message| {
        ConfigErrors(vec![ConfigError {
            path: String::new(),
            message,
        }])
    })?;
    // The original engine's rules file is converted below, not read as a new-style file.
    let original_rules = compat::take_original_rules(&mut tree);
    let mut errors = Vec::new();
    let mut provenance = Provenance::default();
    interpolate(&mut tree, "", env, &mut errors, &mut provenance.from_env);

    let mut warnings = Vec::new();
    let mut environment = Vec::new();
    let mut env_overrides: Vec<(Vec<String>, &String, &String)> = Vec::new();
    for (name, raw) in env.iter().filter(|(name, _)| name.starts_with("PAASTIS_")) {
        if ENV_RESERVED.contains(&name.as_str()) {
            continue;
        }
        let keys: Vec<String> = name["PAASTIS_".len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if keys.iter().any(String::is_empty) || !ENV_SETTABLE.contains(&keys[0].as_str()) {
            warnings.push(format!(
                "environment variable {name} sets no configuration key"
            ));
            continue;
        }
        env_overrides.push((keys, name, raw));
    }
    // A whole section before its keys, and list entries in index order (`10` after `9`).
    env_overrides.sort_by(|a, b| compare_keys(&a.0, &b.0).then_with(|| a.1.cmp(b.1)));
    warnings.sort();
    for (keys, name, raw) in env_overrides {
        let path = path_of(&keys);
        let value = env_value(raw);
        if let Err(message) = set_path(&mut tree, &keys, value.clone()) {
            errors.push(ConfigError {
                path: format!("{path} (from {name})"),
                message,
            });
            continue;
        }
        environment.push(EnvValue {
            what: path.clone(),
            shown: shown(&keys, &value),
            variable: name.clone(),
        });
        provenance.from_env.insert(path.clone(), raw.clone());
        provenance.origins.insert(path, name.clone());
    }
    if let Some(listen) = &overrides.listen {
        let keys = ["listen".to_owned()];
        if let Err(message) = set_path(&mut tree, &keys, Value::String(listen.clone())) {
            errors.push(ConfigError {
                path: "listen (from --listen)".to_owned(),
                message,
            });
        }
        provenance
            .origins
            .insert("listen".to_owned(), "--listen".to_owned());
        environment.retain(|value| value.what != "listen");
    }

    // The original engine's settings fill only what the above leaves unset.
    let mapped = compat::map(env, original_rules.as_ref());
    let compat = compat::apply(&mut tree, mapped, &mut provenance, &mut errors);
    // `PORT` (and `HOST`): what every platform sets, mapped with the original's variables.
    if let Some(origin) = provenance.origins.get("listen")
        && ["PORT", "HOST", "HOST, PORT"].contains(&origin.as_str())
        && let Some(Value::String(listen)) = tree.get("listen")
    {
        environment.push(EnvValue {
            what: "listen".to_owned(),
            shown: listen.clone(),
            variable: origin.clone(),
        });
    }
    if from_env {
        addons(env, &mut tree, &mut provenance, &mut environment);
    }

    provenance.reported = errors.iter().map(|e| e.path.clone()).collect();
    provenance.admin_token = env
        .get("PAASTIS_ADMIN_TOKEN")
        .map(|token| token.trim())
        .filter(|token| !token.is_empty())
        .map(crate::secret::Secret::new);
    provenance.master_key = env
        .get("PAASTIS_MASTER_KEY")
        .filter(|key| !key.trim().is_empty())
        .map(crate::secret::Secret::new);
    let validated = Reader::new(&provenance).config(&tree);
    // Traces: the standard `OTEL_*` variables, not the file.
    let traces = crate::traces::settings::from_env(env).unwrap_or_else(|more| {
        errors.extend(more);
        None
    });
    if let Some(traces) = &traces {
        environment.push(EnvValue {
            what: "traces:".to_owned(),
            shown: format!(
                "{} ({}{})",
                traces.shown_endpoint(),
                traces.protocol,
                match traces.compression {
                    crate::traces::settings::Compression::Gzip => ", gzip",
                    crate::traces::settings::Compression::None => "",
                }
            ),
            variable: "OTEL_*".to_owned(),
        });
    }
    match validated {
        Ok(mut config) if errors.is_empty() => {
            config.traces = traces;
            if config.admin.token.is_some()
                && provenance.admin_token.is_some()
                && taken(&tree, &["admin", "token"]).is_none()
                && taken(&tree, &["admin", "token_file"]).is_none()
            {
                environment.push(EnvValue {
                    what: "admin.token".to_owned(),
                    shown: HIDDEN.to_owned(),
                    variable: "PAASTIS_ADMIN_TOKEN".to_owned(),
                });
            }
            if config.discovery.filter.self_app.is_none()
                && let Some((variable, app)) = own_app(env)
            {
                environment.push(EnvValue {
                    what: "own app:".to_owned(),
                    shown: app.clone(),
                    variable: variable.to_owned(),
                });
                config.discovery.filter.self_app = Some(app);
            }
            config.revision = revision(&tree, &provenance, &config);
            Ok(Loaded {
                config,
                warnings,
                compat,
                environment,
            })
        }
        Ok(_) => Err(ConfigErrors(errors)),
        Err(ConfigErrors(more)) => {
            errors.extend(more);
            Err(ConfigErrors(errors))
        }
    }
}

/// The configuration's revision: the first 12 hex digits of a SHA-256 over what it was made
/// of (the tree after interpolation, environment keys and `--listen`, the token and master
/// key given by their variables, the engine's own app). Two instances with the same inputs
/// get the same revision; a hash this short reveals nothing of the secrets in it.
fn revision(tree: &Value, provenance: &Provenance, config: &crate::Config) -> String {
    let mut input = tree.to_string().into_bytes();
    for part in [
        provenance.admin_token.as_ref().map(|token| token.expose()),
        provenance.master_key.as_ref().map(|key| key.expose()),
        config.discovery.filter.self_app.as_deref(),
    ] {
        input.push(0);
        input.extend_from_slice(part.unwrap_or("").as_bytes());
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
    digest.as_ref()[..6]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The engine's own app when it runs on a platform, from the variable each platform sets to
/// the app's name or id (each platform's `own_app_variable`, in registration order): it is
/// never managed, or it would put itself to sleep.
fn own_app(env: &HashMap<String, String>) -> Option<(&'static str, String)> {
    first_set(env, crate::providers::own_app_variables())
}

/// The first of `names` set (and not blank) in `env`, with its trimmed value.
fn first_set(
    env: &HashMap<String, String>,
    mut names: impl Iterator<Item = &'static str>,
) -> Option<(&'static str, String)> {
    names.find_map(|name| {
        env.get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
            .map(|value| (name, value.to_owned()))
    })
}

/// A credential as shown.
const HIDDEN: &str = "***";

/// The platforms' add-on URLs, when the configuration comes from the environment alone:
/// a PostgreSQL URL becomes `database.url` when nothing sets it, a Redis URL the registry
/// (`type: redis`) when nothing configures one.
fn addons(
    env: &HashMap<String, String>,
    tree: &mut Value,
    provenance: &mut Provenance,
    environment: &mut Vec<EnvValue>,
) {
    if taken(tree, &["database", "url"]).is_none()
        && let Some((name, url)) = first_set(env, crate::providers::database_url_variables())
    {
        let keys = ["database".to_owned(), "url".to_owned()];
        if set_path(tree, &keys, Value::String(url.clone())).is_ok() {
            environment.push(EnvValue {
                what: "database".to_owned(),
                shown: crate::secret::redact::redact_url(&url),
                variable: name.to_owned(),
            });
            provenance
                .origins
                .insert("database.url".to_owned(), name.to_owned());
            provenance.from_env.insert("database.url".to_owned(), url);
        }
    }
    // Other registry keys (`PAASTIS_REGISTRY__TLS_VERIFY=false`, a prefix) may come with it.
    let registry_chosen = ["type", "url", "url_file"]
        .iter()
        .any(|key| taken(tree, &["registry", key]).is_some());
    if !registry_chosen
        && let Some((name, url)) = first_set(env, crate::providers::redis_url_variables())
    {
        let set = ["type", "url"].into_iter().zip([
            Value::String("redis".to_owned()),
            Value::String(url.clone()),
        ]);
        let all_set = set
            .map(|(key, value)| set_path(tree, &["registry".to_owned(), key.to_owned()], value))
            .all(|done| done.is_ok());
        if all_set {
            environment.push(EnvValue {
                what: "registry".to_owned(),
                shown: format!("redis {}", crate::secret::redact::redact_url(&url)),
                variable: name.to_owned(),
            });
            provenance
                .origins
                .insert("registry".to_owned(), name.to_owned());
            provenance
                .origins
                .insert("registry.url".to_owned(), name.to_owned());
            provenance.from_env.insert("registry.url".to_owned(), url);
        }
    }
}

/// Whether `tree` sets something (not `null`) at `keys`.
fn taken<'t>(tree: &'t Value, keys: &[&str]) -> Option<&'t Value> {
    let mut node = tree;
    for key in keys {
        node = node.as_object()?.get(*key)?;
    }
    (!node.is_null()).then_some(node)
}

/// An override's keys as a path of the configuration (`providers[0].token`).
fn path_of(keys: &[String]) -> String {
    keys.iter().fold(String::new(), |path, key| {
        if index_of(key).is_some() {
            format!("{path}[{key}]")
        } else {
            crate::settings::child(&path, key)
        }
    })
}

/// A numeric key (`0`, `12`): an index into a list.
fn index_of(key: &str) -> Option<usize> {
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse().ok()
}

/// Orders override keys, indices by number.
fn compare_keys(a: &[String], b: &[String]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        let order = match (index_of(x), index_of(y)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if order.is_ne() {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// Keys whose values are credentials, never shown.
fn is_secret_key(key: &str) -> bool {
    crate::providers::SECRET_KEYS.contains(&key)
        || matches!(key, "token" | "secret" | "password" | "master_key")
}

/// An override's value as shown: `***` for a credential, URLs without their password,
/// and inside a mapping the same for each of its keys.
fn shown(keys: &[String], value: &Value) -> String {
    if keys.iter().any(|key| is_secret_key(key)) {
        return HIDDEN.to_owned();
    }
    fn hide(value: &mut Value) {
        match value {
            Value::String(text) => *text = crate::secret::redact::redact_url(text),
            Value::Array(items) => items.iter_mut().for_each(hide),
            Value::Object(map) => {
                for (key, item) in map.iter_mut() {
                    if is_secret_key(key) {
                        *item = Value::String(HIDDEN.to_owned());
                    } else {
                        hide(item);
                    }
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    let mut value = value.clone();
    hide(&mut value);
    match value {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

/// An environment value is read as YAML (so `[a, b]` is a list and `3` a number), or taken
/// as plain text when it is not valid YAML.
/// An override's value: YAML, so lists and mappings can be written in flow style
/// (`[a, b]`, `{web: 1}`); anything else that YAML would read as a mapping or a list
/// (`sqlite::memory:` reads as `{sqlite: ":memory:"}`) stays the string it was written as.
fn env_value(raw: &str) -> Value {
    let flow = raw.trim_start().starts_with(['{', '[']);
    match parse_yaml(raw) {
        Ok(Value::Null) | Err(_) => Value::String(raw.to_owned()),
        Ok(Value::Object(_) | Value::Array(_)) if !flow => Value::String(raw.to_owned()),
        Ok(value) => value,
    }
}

/// Sets `value` at `keys` in `tree`, creating the mappings (and, for numeric keys, the
/// lists) on the way. A list entry is set or appended: an index past the end leaves a gap,
/// an error (indices are contiguous from 0).
fn set_path(tree: &mut Value, keys: &[String], value: Value) -> Result<(), String> {
    let fresh = |depth: usize| match keys.get(depth).and_then(|key| index_of(key)) {
        Some(_) => Value::Array(Vec::new()),
        None => Value::Object(Map::new()),
    };
    if tree.is_null() {
        *tree = fresh(0);
    }
    let mut node = tree;
    let mut value = Some(value);
    for (depth, key) in keys.iter().enumerate() {
        let last = depth + 1 == keys.len();
        let here = || path_of(&keys[..depth]);
        let child = match (index_of(key), node) {
            (Some(index), Value::Array(items)) => {
                if index > items.len() {
                    return Err(format!(
                        "index {index} leaves a gap: `{}` has {} entr{} (indices are contiguous from 0)",
                        here(),
                        items.len(),
                        if items.len() == 1 { "y" } else { "ies" }
                    ));
                }
                if index == items.len() {
                    items.push(Value::Null);
                }
                items
                    .get_mut(index)
                    .ok_or_else(|| format!("index {index} is out of range"))?
            }
            (None, Value::Object(map)) => map.entry(key.clone()).or_insert(Value::Null),
            (Some(_), _) => {
                return Err(format!("cannot be set: `{}` is not a list", here()));
            }
            (None, _) => {
                return Err(format!(
                    "cannot be set: `{}` in the file is not a mapping",
                    here()
                ));
            }
        };
        if last {
            *child = value.take().unwrap_or(Value::Null);
            return Ok(());
        }
        if child.is_null() {
            *child = fresh(depth + 1);
        }
        node = child;
    }
    Ok(())
}

/// Replaces `${NAME}` and `${NAME:-default}` in every string of the tree; `$${` stays a
/// literal `${`. An unset variable without a default is an error at that value's path.
fn interpolate(
    value: &mut Value,
    path: &str,
    env: &HashMap<String, String>,
    errors: &mut Vec<ConfigError>,
    from_env: &mut HashMap<String, String>,
) {
    match value {
        Value::String(text) => {
            if text.contains("${") {
                match expand(text, env) {
                    Ok(expanded) => {
                        from_env.insert(path.to_owned(), expanded.clone());
                        *text = expanded;
                    }
                    Err(message) => errors.push(ConfigError {
                        path: path.to_owned(),
                        message,
                    }),
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                interpolate(item, &format!("{path}[{index}]"), env, errors, from_env);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let child = crate::settings::child(path, key);
                interpolate(item, &child, env, errors, from_env);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn expand(text: &str, env: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| "unclosed `${` (write `$${` for a literal)".to_owned())?;
            let inner = &after[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            let valid_name =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid_name {
                return Err(format!("`${{{inner}}}` is not a valid variable reference"));
            }
            match (env.get(name), default) {
                (Some(found), _) => out.push_str(found),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(format!("environment variable {name} is not set"));
                }
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn messages(result: Result<Loaded, ConfigErrors>) -> Vec<String> {
        result
            .expect_err("invalid")
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn an_empty_key_is_named_in_its_errors() {
        let errors = messages(load_str(
            "\"\": \"${NOPE}\"\nadmin: {\"\": x}\n",
            &env(&[]),
            &Overrides::default(),
        ));
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(errors[0].starts_with("\"\": environment variable NOPE is not set"));
        assert!(
            errors[1].starts_with("admin.\"\": unknown key"),
            "{errors:#?}"
        );
        let document = serde_json::json!({"id": "acme", "": 1});
        let errors = super::super::api_space(&document, Default::default(), &HashMap::new())
            .expect_err("an unknown key");
        assert!(errors.0.iter().all(|e| !e.path.is_empty()), "{errors:?}");
        assert!(errors.0.iter().any(|e| e.path == "\"\""), "{errors:?}");
    }

    #[test]
    fn interpolates_env_with_defaults_and_escapes() {
        let vars = env(&[("PORT_A", "4001"), ("HOSTNAME_X", "ex.com")]);
        let loaded = load_str(
            "listen: 127.0.0.1:${PORT_A}\ndomains: ['${HOSTNAME_X}', '${MISSING:-b.com}']\ndefaults: {health_path: '/a$${b}'}\n",
            &vars,
            &Overrides::default(),
        )
        .expect("valid");
        assert_eq!(loaded.config.listen.port(), 4001);
        assert_eq!(loaded.config.domains, vec!["ex.com", "b.com"]);
        assert_eq!(
            loaded.config.defaults.health_path.as_deref(),
            Some("/a${b}")
        );
    }

    #[test]
    fn hosted_mode_needs_its_key_and_an_admin_token() {
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let loaded = load_str(
            "admin: {token: admin-token-0123456789}\nhosted: true\n",
            &env(&[("PAASTIS_MASTER_KEY", key)]),
            &Overrides::default(),
        )
        .expect("valid");
        let hosted = loaded.config.hosted.expect("hosted");
        assert!(!hosted.custom_api_urls);
        assert_eq!(hosted.sync_every, crate::config::DEFAULT_HOSTED_SYNC);
        assert!(!format!("{hosted:?}").contains(key));
        // Also from the environment alone, and off with `false`.
        let loaded = load_str(
            "",
            &env(&[
                ("PAASTIS_MASTER_KEY", key),
                ("PAASTIS_HOSTED", "{custom_api_urls: true, sync_every: 2s}"),
                ("PAASTIS_ADMIN_TOKEN", "admin-token-0123456789"),
                ("PAASTIS_SPACE", "acme"),
            ]),
            &Overrides::default(),
        )
        .expect("valid");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let hosted = loaded.config.hosted.expect("hosted");
        assert!(hosted.custom_api_urls);
        assert_eq!(hosted.sync_every, Duration::from_secs(2));
        let off = load_str("hosted: false\n", &HashMap::new(), &Overrides::default());
        assert!(off.expect("valid").config.hosted.is_none());
        // Every problem at once, the key never repeated.
        let errors = messages(load_str(
            "hosted: {custom_api_urls: 1, sync: 2s}\n",
            &env(&[("PAASTIS_MASTER_KEY", "c2hvcnQta2V5")]),
            &Overrides::default(),
        ));
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].starts_with("hosted.custom_api_urls: expected true or false"));
        assert!(errors[1].starts_with("hosted.sync: unknown key"));
        assert!(errors[2].contains("needs admin.token"));
        assert!(errors[3].contains("PAASTIS_MASTER_KEY must be 32 bytes"));
        assert!(!errors.join(" ").contains("c2hvcnQta2V5"));
        let errors = messages(load_str(
            "admin: {token: admin-token-0123456789}\nhosted: yes-please\n",
            &env(&[("PAASTIS_MASTER_KEY", key)]),
            &Overrides::default(),
        ));
        assert_eq!(
            errors,
            ["hosted: expected true, false or a mapping, found a string"]
        );
    }

    #[test]
    fn override_values_are_yaml_in_flow_style_only() {
        assert_eq!(
            env_value("sqlite::memory:"),
            Value::String("sqlite::memory:".into())
        );
        assert_eq!(env_value("- a"), Value::String("- a".into()));
        assert_eq!(env_value("[a, b]"), serde_json::json!(["a", "b"]));
        assert_eq!(env_value("{web: 1}"), serde_json::json!({"web": 1}));
        assert_eq!(env_value("90s"), Value::String("90s".into()));
        assert_eq!(env_value("true"), Value::Bool(true));
    }

    #[test]
    fn the_engines_own_app_is_detected_unless_configured() {
        let load = |yaml: &str, vars: &[(&str, &str)]| {
            load_str(yaml, &env(vars), &Overrides::default())
                .expect("valid")
                .config
                .discovery
                .filter
                .self_app
        };
        assert_eq!(load("", &[]), None);
        assert_eq!(
            load("", &[("APP", "my-paastis")]),
            Some("my-paastis".into())
        );
        assert_eq!(
            load("", &[("HEROKU_APP_NAME", "proxy")]),
            Some("proxy".into())
        );
        assert_eq!(load("", &[("APP_ID", "app_123")]), Some("app_123".into()));
        assert_eq!(
            load("discovery: {self_app: mine}", &[("APP", "other")]),
            Some("mine".into())
        );
    }

    #[test]
    fn providers_are_declared_by_index_from_the_environment() {
        let token = "tk-us-0123456789abcdef";
        let mut vars = vec![
            ("PAASTIS_PROVIDERS__0__TYPE", "scalingo"),
            ("PAASTIS_PROVIDERS__0__ID", "scalingo"),
            ("PAASTIS_PROVIDERS__0__TOKEN", token),
            ("PAASTIS_PROVIDERS__0__API_URL", "http://127.0.0.1:9/"),
        ];
        // Index 10 is applied after 9, not after 1.
        let ids: Vec<String> = (1..=10).map(|i| format!("local{i}")).collect();
        let names: Vec<(String, String)> = (1..=10)
            .flat_map(|i| {
                [
                    (
                        format!("PAASTIS_PROVIDERS__{i}__TYPE"),
                        "process".to_owned(),
                    ),
                    (format!("PAASTIS_PROVIDERS__{i}__ID"), ids[i - 1].clone()),
                    (format!("PAASTIS_PROVIDERS__{i}__APPS"), "[]".to_owned()),
                ]
            })
            .collect();
        vars.extend(names.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        vars.push(("PAASTIS_ADMIN__HOST", "Paastis.Example.com"));
        vars.push(("PAASTIS_ADMIN__TOKEN", "admin-token-0123456789"));
        let loaded = load_env(&env(&vars), &Overrides::default()).expect("valid");
        let config = &loaded.config;
        assert_eq!(config.providers.len(), 11);
        assert_eq!(config.providers[0].kind(), "scalingo");
        assert_eq!(config.providers[10].id(), "local10");
        assert_eq!(config.admin.hosts, vec!["paastis.example.com"]);
        let report: Vec<String> = loaded.environment.iter().map(ToString::to_string).collect();
        assert!(
            report.contains(&"providers[0].token *** (PAASTIS_PROVIDERS__0__TOKEN)".to_owned()),
            "{report:#?}"
        );
        assert!(
            report.contains(&"admin.host Paastis.Example.com (PAASTIS_ADMIN__HOST)".to_owned()),
            "{report:#?}"
        );
        let all = format!("{report:?} {:?}", loaded.config);
        assert!(
            !all.contains(token) && !all.contains("admin-token-0123"),
            "{all}"
        );
    }

    #[test]
    fn list_indices_must_be_contiguous() {
        let errors = messages(load_str(
            "",
            &env(&[
                ("PAASTIS_PROVIDERS__0__TYPE", "process"),
                ("PAASTIS_PROVIDERS__0__ID", "local"),
                ("PAASTIS_PROVIDERS__0__APPS", "[]"),
                ("PAASTIS_PROVIDERS__2__TYPE", "process"),
            ]),
            &Overrides::default(),
        ));
        assert_eq!(
            errors,
            [
                "providers[2].type (from PAASTIS_PROVIDERS__2__TYPE): index 2 leaves a gap: \
              `providers` has 1 entry (indices are contiguous from 0)"
            ]
        );
        let errors = messages(load_str(
            "",
            &env(&[("PAASTIS_PROVIDERS__1__TYPE", "process")]),
            &Overrides::default(),
        ));
        assert!(errors[0].contains("has 0 entries"), "{errors:?}");
        // An entry of the file's list can be completed (a token kept out of the file).
        let loaded = load_str(
            "providers: [{id: s, type: scalingo}]\n",
            &env(&[("PAASTIS_PROVIDERS__0__TOKEN", "tk-us-secret-0001")]),
            &Overrides::default(),
        )
        .expect("valid");
        assert_eq!(loaded.config.providers[0].secrets().len(), 1);
        // A list where the file has a mapping.
        let errors = messages(load_str(
            "providers: {a: 1}\n",
            &env(&[("PAASTIS_PROVIDERS__0__TYPE", "process")]),
            &Overrides::default(),
        ));
        assert!(
            errors[0].starts_with("providers[0].type (from PAASTIS_PROVIDERS__0__TYPE): cannot be set: `providers` is not a list"),
            "{errors:?}"
        );
    }

    #[test]
    fn add_on_urls_configure_what_nothing_else_does_from_the_environment_only() {
        let db = "postgres://user:pg-secret-pass@db.internal:5432/paastis";
        let redis = "redis://:redis-secret-pass@cache.internal:6379";
        let vars = env(&[
            ("DATABASE_URL", db),
            ("REDIS_URL", redis),
            ("PORT", "8080"),
            ("APP", "my-paastis"),
            ("PAASTIS_ADMIN_TOKEN", "admin-token-0123456789"),
        ]);
        let loaded = load_env(&vars, &Overrides::default()).expect("valid");
        assert_eq!(loaded.config.database_url.expose(), db);
        let crate::registry::RegistryConfig::Redis(registry) = &loaded.config.registry else {
            panic!("a redis registry");
        };
        assert_eq!(registry.url.expose(), redis);
        assert_eq!(loaded.config.listen.port(), 8080);
        let report: Vec<String> = loaded.environment.iter().map(ToString::to_string).collect();
        assert_eq!(
            report,
            [
                "listen 0.0.0.0:8080 (PORT)",
                "database postgres://user:***@db.internal:5432/paastis (DATABASE_URL)",
                "registry redis redis://:***@cache.internal:6379 (REDIS_URL)",
                "admin.token *** (PAASTIS_ADMIN_TOKEN)",
                "own app: my-paastis (APP)",
            ]
        );
        // Other registry keys may come with the add-on's URL (Heroku's self-signed Redis).
        let mut insecure = vars.clone();
        insecure.insert(
            "REDIS_URL".to_owned(),
            "rediss://:pw@cache.internal:6380".to_owned(),
        );
        insecure.insert(
            "PAASTIS_REGISTRY__TLS_VERIFY".to_owned(),
            "false".to_owned(),
        );
        let loaded = load_env(&insecure, &Overrides::default()).expect("valid");
        let crate::registry::RegistryConfig::Redis(registry) = &loaded.config.registry else {
            panic!("a redis registry");
        };
        assert_eq!(
            registry.url.expose(),
            "rediss://:pw@cache.internal:6380#insecure"
        );
        // A file's settings (here PAASTIS_CONFIG_YAML) win; a file on disk takes no add-on.
        let mut with_yaml = vars.clone();
        with_yaml.insert(
            "PAASTIS_CONFIG_YAML".to_owned(),
            "registry: {type: memory}\ndatabase: {url: 'sqlite::memory:'}\n".to_owned(),
        );
        let loaded = load_env(&with_yaml, &Overrides::default()).expect("valid");
        assert_eq!(loaded.config.database_url.expose(), "sqlite::memory:");
        assert!(matches!(
            loaded.config.registry,
            crate::registry::RegistryConfig::Memory
        ));
        let loaded = load_str("", &vars, &Overrides::default()).expect("valid");
        assert_eq!(
            loaded.config.database_url.expose(),
            crate::config::DEFAULT_DATABASE_URL
        );
        // The platforms' own names, when the generic ones are not set.
        let loaded = load_env(
            &env(&[
                ("SCALINGO_POSTGRESQL_URL", "postgres://a:b@scalingo-db/x"),
                ("SCALINGO_REDIS_URL", "redis://scalingo-redis:6379"),
            ]),
            &Overrides::default(),
        )
        .expect("valid");
        assert_eq!(
            loaded.config.database_url.expose(),
            "postgres://a:b@scalingo-db/x"
        );
        assert!(matches!(
            loaded.config.registry,
            crate::registry::RegistryConfig::Redis(_)
        ));
        let loaded = load_env(
            &env(&[("POSTGRESQL_ADDON_URI", "postgresql://u:p@clever-db/x")]),
            &Overrides::default(),
        )
        .expect("valid");
        assert_eq!(
            loaded.config.database_url.expose(),
            "postgresql://u:p@clever-db/x"
        );
        // A bad YAML names the variable.
        let errors = messages(load_env(
            &env(&[("PAASTIS_CONFIG_YAML", "a: [1,\n")]),
            &Overrides::default(),
        ));
        assert!(
            errors[0].starts_with("PAASTIS_CONFIG_YAML: invalid YAML"),
            "{errors:?}"
        );
    }

    #[test]
    fn the_admin_host_and_listener_from_the_environment() {
        let loaded = load_env(
            &env(&[
                ("PAASTIS_ADMIN__LISTEN", "off"),
                ("PAASTIS_ADMIN__HOST", "[a.example.com, b.example.com.]"),
                ("PAASTIS_ADMIN_TOKEN", "admin-token-0123456789"),
            ]),
            &Overrides::default(),
        )
        .expect("valid");
        assert_eq!(loaded.config.admin.listen, None);
        assert_eq!(
            loaded.config.admin.hosts,
            ["a.example.com", "b.example.com"]
        );
        let report: Vec<String> = loaded.environment.iter().map(ToString::to_string).collect();
        assert_eq!(
            report,
            [
                "admin.host [\"a.example.com\",\"b.example.com.\"] (PAASTIS_ADMIN__HOST)",
                "admin.listen off (PAASTIS_ADMIN__LISTEN)",
                "admin.token *** (PAASTIS_ADMIN_TOKEN)",
            ]
        );
        // On a network address, not without a token.
        let errors = messages(load_env(
            &env(&[("PAASTIS_ADMIN__HOST", "paastis.example.com")]),
            &Overrides::default(),
        ));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(
                "admin.host (from PAASTIS_ADMIN__HOST): the proxy listens on 0.0.0.0:3000"
            ),
            "{errors:?}"
        );
        // On loopback, it may stay open; a host name is checked.
        let loaded = load_str(
            "listen: 127.0.0.1:3000\nadmin: {host: paastis.localhost}\n",
            &env(&[]),
            &Overrides::default(),
        )
        .expect("valid");
        assert_eq!(loaded.config.admin.hosts, ["paastis.localhost"]);
        let errors = messages(load_str(
            "listen: 127.0.0.1:3000\nadmin: {host: 'https://x.test/'}\n",
            &env(&[]),
            &Overrides::default(),
        ));
        assert!(
            errors[0].starts_with("admin.host: `https://x.test/` is not a host name"),
            "{errors:?}"
        );
    }

    #[test]
    fn the_environment_configures_the_engine_only_with_a_setting() {
        assert!(!configures_engine(&env(&[
            ("PORT", "8080"),
            ("DATABASE_URL", "postgres://x")
        ])));
        assert!(!configures_engine(&env(&[("PAASTIS_ADMIN_TOKEN", "t")])));
        assert!(!configures_engine(&env(&[
            ("PAASTIS_DATABASE__URL", "sqlite::memory:"),
            ("PAASTIS_LISTEN", "127.0.0.1:0"),
        ])));
        assert!(configures_engine(&env(&[("PAASTIS_HOSTED", "true")])));
        assert!(configures_engine(&env(&[("PAASTIS_PROVIDERS", "[]")])));
        assert!(configures_engine(&env(&[(
            "PAASTIS_PROVIDERS__0__TYPE",
            "scalingo"
        )])));
        assert!(configures_engine(&env(&[(
            "PAASTIS_CONFIG_YAML",
            "listen: 0.0.0.0:1"
        )])));
        assert!(configures_engine(&env(&[("PROVIDER_NAME", "scalingo")])));
    }

    #[test]
    fn missing_variable_names_the_path() {
        let errors = messages(load_str(
            "defaults: {max_idle: '${IDLE}'}\n",
            &env(&[]),
            &Overrides::default(),
        ));
        assert_eq!(
            errors,
            vec!["defaults.max_idle: environment variable IDLE is not set"]
        );
    }

    #[test]
    fn env_overrides_and_flags_win_in_order() {
        let vars = env(&[
            ("PAASTIS_LISTEN", "127.0.0.1:5000"),
            ("PAASTIS_DEFAULTS__MAX_IDLE", "never"),
            ("PAASTIS_DOMAINS", "[a.com, b.com]"),
            ("PAASTIS_CONFIG", "ignored.yml"),
            ("PAASTIS_NOPE", "x"),
        ]);
        let loaded = load_str(
            "listen: 127.0.0.1:4000\ndefaults: {max_idle: 5m, wake_timeout: 9s}\n",
            &vars,
            &Overrides::default(),
        )
        .expect("valid");
        assert_eq!(loaded.config.listen.port(), 5000);
        assert_eq!(loaded.config.defaults.max_idle, None);
        assert_eq!(loaded.config.defaults.wake_timeout, Duration::from_secs(9));
        assert_eq!(loaded.config.domains, vec!["a.com", "b.com"]);
        assert_eq!(
            loaded.warnings,
            vec!["environment variable PAASTIS_NOPE sets no configuration key"]
        );

        let flags = Overrides {
            listen: Some("127.0.0.1:6000".to_owned()),
        };
        let loaded = load_str("listen: 127.0.0.1:4000\n", &vars, &flags).expect("valid");
        assert_eq!(loaded.config.listen.port(), 6000);
    }

    #[test]
    fn errors_from_env_and_flags_name_their_source() {
        let vars = env(&[("PAASTIS_DEFAULTS__MAX_IDLE", "soon")]);
        let flags = Overrides {
            listen: Some("here".to_owned()),
        };
        let errors = messages(load_str("", &vars, &flags));
        assert!(errors.contains(
            &"defaults.max_idle (from PAASTIS_DEFAULTS__MAX_IDLE): `<value from the environment>` is not a duration (expected e.g. 250ms, 90s, 15m, 2h, 7d)".to_owned()
        ), "{errors:?}");
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("listen (from --listen): `here`")),
            "{errors:?}"
        );
    }

    #[test]
    fn values_from_the_environment_are_not_echoed_in_errors() {
        let vars = env(&[
            ("SECRET_LISTEN", "hunter2-top-secret"),
            ("PAASTIS_DEFAULTS__MAX_IDLE", "another-secret"),
        ]);
        let errors = messages(load_str(
            "listen: '${SECRET_LISTEN}'\n",
            &vars,
            &Overrides::default(),
        ));
        assert_eq!(errors.len(), 2, "{errors:?}");
        for error in &errors {
            assert!(!error.contains("secret"), "{error}");
            assert!(error.contains("<value from the environment>"), "{error}");
        }
    }

    #[test]
    fn bad_yaml_says_where() {
        let errors = messages(load_str("a: [1,\n", &env(&[]), &Overrides::default()));
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("<config>: invalid YAML: line 1 column 4"),
            "{errors:?}"
        );
    }
}
