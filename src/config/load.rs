//! Sources of the configuration, in increasing precedence: the YAML file, `${ENV}`
//! interpolation inside it, `PAASTIS_*` environment overrides, then CLI flags.

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
    "domains",
    "defaults",
    "discovery",
    "proxy",
    "database",
    "events",
    "registry",
    "admin",
    "hosted",
];

/// `PAASTIS_*` variables that are not config keys (read elsewhere, or by later versions).
const ENV_RESERVED: &[&str] = &[
    "PAASTIS_CONFIG",
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
    load_source(&Source::File(path.to_owned()), &text, env, overrides)
}

/// Like [`load`], from YAML text.
pub fn load_str(
    text: &str,
    env: &HashMap<String, String>,
    overrides: &Overrides,
) -> Result<Loaded, ConfigErrors> {
    load_source(&Source::Text(text.to_owned()), text, env, overrides)
}

fn load_source(
    source: &Source,
    text: &str,
    env: &HashMap<String, String>,
    overrides: &Overrides,
) -> Result<Loaded, ConfigErrors> {
    let name = match source {
        Source::File(path) => path.display().to_string(),
        Source::Text(_) => "<config>".to_owned(),
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
    let mut env_overrides: Vec<(&String, &String)> = env
        .iter()
        .filter(|(name, _)| name.starts_with("PAASTIS_"))
        .collect();
    env_overrides.sort();
    for (name, raw) in env_overrides {
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
        let path = keys.join(".");
        if let Err(message) = set_path(&mut tree, &keys, env_value(raw)) {
            errors.push(ConfigError {
                path: format!("{path} (from {name})"),
                message,
            });
            continue;
        }
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
    }

    // The original engine's settings fill only what the above leaves unset.
    let mapped = compat::map(env, original_rules.as_ref());
    let compat = compat::apply(&mut tree, mapped, &mut provenance, &mut errors);

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
    match validated {
        Ok(mut config) if errors.is_empty() => {
            if config.discovery.filter.self_app.is_none() {
                config.discovery.filter.self_app = own_app(env);
            }
            Ok(Loaded {
                config,
                warnings,
                compat,
            })
        }
        Ok(_) => Err(ConfigErrors(errors)),
        Err(ConfigErrors(more)) => {
            errors.extend(more);
            Err(ConfigErrors(errors))
        }
    }
}

/// The engine's own app when it runs on a platform, from the variable each platform sets to
/// the app's name or id (each platform's `own_app_variable`, in registration order): it is
/// never managed, or it would put itself to sleep.
fn own_app(env: &HashMap<String, String>) -> Option<String> {
    crate::providers::own_app_variables()
        .filter_map(|name| env.get(name))
        .map(|value| value.trim())
        .find(|value| !value.is_empty())
        .map(str::to_owned)
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

fn set_path(tree: &mut Value, keys: &[String], value: Value) -> Result<(), String> {
    if tree.is_null() {
        *tree = Value::Object(Map::new());
    }
    let mut node = tree;
    for (depth, key) in keys.iter().enumerate() {
        let Value::Object(map) = node else {
            return Err(format!(
                "cannot be set: `{}` in the file is not a mapping",
                keys[..depth].join(".")
            ));
        };
        if depth + 1 == keys.len() {
            map.insert(key.clone(), value);
            return Ok(());
        }
        let child = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if child.is_null() {
            *child = Value::Object(Map::new());
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
