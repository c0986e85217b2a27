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
//!
//! Here: whether the original engine is in use, the entries and [`map`], and [`apply`] with
//! its report ([`Compat`]); `env`: its environment variables, one function per group;
//! `rules`: its rules file; `render`: the report as annotated YAML, secrets hidden;
//! `notice`: what the mapping tells.
//!
//! It only fills keys of the new configuration: reading and checking them is the
//! configuration's job, as for any other source.

mod env;
mod notice;
mod render;
mod rules;

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value};

use super::ConfigError;
use crate::settings::Provenance;

pub use env::uses_original_env;
pub use notice::{Level, Notice};

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
    env::listen(env, &mut mapped);
    env::provider(env, &mut mapped);
    env::registry(env, &mut mapped);
    env::discovery(env, &mut mapped);
    env::idle(env, &mut mapped);
    env::hooks(env, &mut mapped);
    env::system_api(env, &mut mapped);
    env::events(env, &mut mapped);
    if let Some(rules) = rules {
        rules::original_rules(rules, &mut mapped);
    }
    mapped
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

    /// Whether a setting only the original engine has was used: `HOST` and `PORT` alone
    /// (every platform sets `PORT`) are the environment's, reported as such.
    pub fn uses_original_settings(&self) -> bool {
        self.fragment
            .as_object()
            .is_some_and(|map| map.keys().any(|key| key != "listen"))
    }

    /// The keys filled from the original engine's settings, as YAML, each annotated with
    /// where it came from. Secrets (tokens, secrets, passwords in URLs, hook commands) are
    /// replaced by `<redacted>`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Value::Object(map) = &self.fragment {
            render::render_map(map, "", 0, None, &self.origins, &mut out);
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;
    use serde_json::json;

    pub(super) fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Maps `vars` (and `rules`) onto the new-style `yaml`: the tree, the report, the errors.
    pub(super) fn run(yaml: &str, vars: &[(&str, &str)], rules: Option<&Value>) -> Outcome {
        let mut tree = crate::settings::parse_yaml(yaml).expect("yaml");
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

    pub(super) struct Outcome {
        pub(super) tree: Value,
        pub(super) compat: Compat,
        pub(super) errors: Vec<String>,
        pub(super) provenance: Provenance,
    }

    impl Outcome {
        pub(super) fn messages(&self) -> Vec<String> {
            self.compat
                .notices
                .iter()
                .map(ToString::to_string)
                .collect()
        }
    }

    pub(super) fn original(text: &str) -> Value {
        let mut tree = crate::settings::parse_yaml(text).expect("yaml");
        take_original_rules(&mut tree).expect("an original rules file")
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
            let tree = crate::settings::parse_yaml(text).expect("yaml");
            assert_eq!(is_original_rules(&tree), expected, "{what}");
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
}
