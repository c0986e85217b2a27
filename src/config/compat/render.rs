//! The report of what the original engine's settings filled, as YAML annotated with the
//! variable each key came from ([`Compat::render`](super::Compat::render)). Secrets (tokens,
//! secrets, passwords in URLs, hook commands) are never shown.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::secret::redact::redact_url_shown;

use crate::providers::SECRET_KEYS;

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

pub(super) fn render_map(
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
                        Value::String(text) => {
                            scalar(&Value::String(redact_url_shown(text, REDACTED)))
                        }
                        other => scalar(other),
                    }
                };
                out.push_str(&format!("{pad}{key}: {shown}{comment}\n"));
            }
        }
    }
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
    use super::super::tests::run;

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
        assert!(outcome.compat.uses_original_settings());
        let port_only = run("", &[("PORT", "8080")], None).compat;
        assert!(port_only.is_used() && !port_only.uses_original_settings());
    }
}
