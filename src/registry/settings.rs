//! How the `registry` section is read (with the shared [`Reader`]) into a
//! [`RegistryConfig`]: `memory`, or `redis` with its URL, key prefix, flush period and
//! lease. Reading only: nothing here connects.

use std::time::Duration;

use serde_json::Value;

use super::{RedisConfig, RegistryConfig, defaults as registry_defaults};
use crate::secret::Secret;
use crate::settings::Reader;

impl Reader<'_> {
    /// `registry`: `memory` (one instance) or `redis` (several instances sharing it).
    pub(crate) fn registry(&mut self, value: &Value, path: &str) -> RegistryConfig {
        let Some(mut fields) = self.mapping(value, path) else {
            return RegistryConfig::Memory;
        };
        let kind = match fields.take("type") {
            Some((v, p)) => self.string(v, &p).map(|kind| (kind, p)),
            None => Some(("memory".to_owned(), String::new())),
        };
        let redis_keys = [
            "url",
            "url_file",
            "tls_verify",
            "prefix",
            "flush_every",
            "lease",
        ];
        let config = match kind {
            Some((kind, _)) if kind.trim() == "memory" => {
                for key in redis_keys {
                    if let Some((_, p)) = fields.take(key) {
                        self.error(&p, "is only used with `type: redis`");
                    }
                }
                RegistryConfig::Memory
            }
            Some((kind, _)) if kind.trim() == "redis" => {
                let url = self
                    .secret(&mut fields, "url", path)
                    .unwrap_or_else(|| Secret::new(registry_defaults::URL));
                let url_path = format!("{path}.url");
                let scheme_ok = ["redis://", "rediss://", "redis+unix://", "unix://"]
                    .iter()
                    .any(|scheme| url.expose().starts_with(scheme));
                if !scheme_ok {
                    self.error(
                        &url_path,
                        "must be a redis:// (or rediss://, unix://) URL, e.g. redis://127.0.0.1:6379",
                    );
                }
                // A hosted Redis with a self-signed certificate: encrypted, but its
                // certificate not checked, which the client spells `#insecure`.
                let url = match fields.take("tls_verify") {
                    Some((v, p)) => match v {
                        Value::Bool(false) if !url.expose().starts_with("rediss://") => {
                            self.error(&p, "`false` only applies to a rediss:// (TLS) url");
                            url
                        }
                        Value::Bool(false) if url.expose().contains('#') => {
                            self.error(&p, "`false`, but the url already has a #fragment");
                            url
                        }
                        Value::Bool(false) => Secret::new(format!("{}#insecure", url.expose())),
                        Value::Bool(true) => url,
                        other => {
                            self.error(
                                &p,
                                format!(
                                    "expected true or false, found {}",
                                    crate::settings::kind(other)
                                ),
                            );
                            url
                        }
                    },
                    None => url,
                };
                let prefix = match fields.take("prefix") {
                    Some((v, p)) => self.non_empty_string(v, &p).and_then(|prefix| {
                        let bad = prefix
                            .chars()
                            .any(|c| c.is_whitespace() || c == '*' || c == '?' || c == '[');
                        if bad {
                            self.error(&p, "must not hold spaces or glob characters (* ? [)");
                            None
                        } else {
                            Some(prefix.trim_end_matches(':').to_owned())
                        }
                    }),
                    None => Some(registry_defaults::PREFIX.to_owned()),
                };
                let flush_every = fields
                    .take("flush_every")
                    .and_then(|(v, p)| self.positive_duration(v, &p))
                    .unwrap_or(registry_defaults::FLUSH_EVERY);
                let lease = match fields.take("lease") {
                    Some((v, p)) => self.positive_duration(v, &p).and_then(|lease| {
                        if lease < Duration::from_millis(300) {
                            self.error(&p, "must be at least 300ms");
                            None
                        } else {
                            Some(lease)
                        }
                    }),
                    None => Some(registry_defaults::LEASE),
                };
                RegistryConfig::Redis(RedisConfig {
                    url,
                    prefix: prefix.unwrap_or_else(|| registry_defaults::PREFIX.to_owned()),
                    flush_every,
                    lease: lease.unwrap_or(registry_defaults::LEASE),
                })
            }
            Some((kind, p)) => {
                let p = if p.is_empty() {
                    format!("{path}.type")
                } else {
                    p
                };
                self.error(
                    &p,
                    format!("`{kind}` is not a registry type (expected memory or redis)"),
                );
                fields.take_all();
                RegistryConfig::Memory
            }
            None => {
                fields.take_all();
                RegistryConfig::Memory
            }
        };
        self.finish(fields, &[]);
        config
    }
}

use crate::settings::{Key, Kind};

/// The keys of `registry`, as `Reader::registry` takes them.
pub const REGISTRY_KEYS: &[Key] = &[
    Key::new(
        "type",
        Kind::Enum(&["memory", "redis"]),
        "`memory`: one instance. `redis`: several instances share the hot state (with \
         database.url on PostgreSQL).",
    )
    .default("memory"),
    Key::new(
        "url",
        Kind::Secret,
        "Redis only: redis://[user:password@]host:port[/db], rediss:// for TLS, or unix://.",
    )
    .default("redis://127.0.0.1:6379"),
    Key::new(
        "tls_verify",
        Kind::Boolean,
        "Redis only, rediss:// URLs: `false` encrypts without checking the server's \
         certificate, for a hosted Redis whose certificate is self-signed.",
    )
    .default("true"),
    Key::new(
        "prefix",
        Kind::Text("key prefix"),
        "Redis only: every key the engine touches starts with `<prefix>:`.",
    )
    .default("paastis"),
    Key::new(
        "flush_every",
        Kind::Duration,
        "Redis only: activity write-behind and state sync period.",
    )
    .default("1s"),
    Key::new(
        "lease",
        Kind::Duration,
        "Redis only: leader and per-app lease (300ms at least); a dead leader is replaced \
         within about 1.3x this.",
    )
    .default("10s"),
];
