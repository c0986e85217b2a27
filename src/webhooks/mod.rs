//! Webhooks: the space's events sent as HTTP POSTs to the user's receivers (`webhooks:`,
//! globally, per space and per rule).
//!
//! Each webhook names a URL, the event kinds it wants, a format (`json`, `slack`,
//! `discord`) and, optionally, a secret that signs every delivery (see [`sign`]): header
//! `Paastis-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, so a receiver
//! can check the body and refuse replays (old `t`). Deliveries are made in the background
//! ([`deliver`]): an event only queues them, so a wake or a stop never waits for a receiver;
//! a failing receiver is retried with a growing, jittered delay for at most `retry_for`; a
//! dead one costs a bounded queue (the oldest dropped, counted and logged) and a bounded
//! list of recent deliveries (what the admin API shows).
//!
//! The `webhooks` section is read here, with the shared [`crate::settings::Reader`]. In a
//! space created through the API, a URL must not point at an internal address (loopback,
//! private, link-local...: [`crate::address`]), and its deliveries are made only to public
//! addresses, as for the space's upstreams.

pub mod deliver;
pub mod sign;

use std::time::Duration;

use serde_json::Value;

use crate::secret::Secret;
use crate::settings::{Fields, Reader};

pub use deliver::{Delivery, DeliveryStatus, Target, Webhooks};

/// The default `retry_for`.
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(600);

/// The default `timeout` of one attempt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default `queue`: deliveries waiting for a receiver, at most.
pub const DEFAULT_QUEUE: usize = 1000;

/// The event kinds a webhook may ask for (the `kind` of the events).
pub const EVENT_KINDS: &[&str] = &[
    "discovered",
    "registered",
    "wake_requested",
    "wake_refused",
    "started",
    "start_failed",
    "stop_requested",
    "stopped",
    "stop_vetoed",
    "hook_failed",
    "stop_failed",
    "exited",
    "deleted",
    "unmanaged",
    "config_reloaded",
    "config_rejected",
    "provider_error",
];

/// Names of `events` that stand for others: `wake_failed` is `start_failed`, `plan_limit`
/// a wake the plan refused (`wake_refused`) or a stop to make room under it
/// (`stop_requested` with that cause).
pub const EVENT_ALIASES: &[&str] = &["wake_failed", "plan_limit"];

/// How a delivery's body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The event as JSON, with a sentence saying what happened.
    #[default]
    Json,
    /// A Slack incoming webhook message: `{"text": ...}`.
    Slack,
    /// A Discord incoming webhook message: `{"content": ...}`.
    Discord,
}

impl Format {
    /// Its name in the config.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Slack => "slack",
            Format::Discord => "discord",
        }
    }
}

/// One `webhooks:` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Its id, unique in its space (the admin API's `/api/v1/webhooks/{id}`).
    pub id: String,
    /// Where deliveries are POSTed. Held as a secret: chat services put their credential
    /// in the URL itself.
    pub url: Secret,
    /// The event kinds sent (see [`EVENT_KINDS`], [`EVENT_ALIASES`]); empty: every kind.
    pub events: Vec<String>,
    /// How the body is written.
    pub format: Format,
    /// Signs each delivery when set.
    pub secret: Option<Secret>,
    /// For how long a failing delivery is tried again.
    pub retry_for: Duration,
    /// The time limit of one attempt.
    pub timeout: Duration,
    /// Deliveries waiting, at most (then the oldest is dropped).
    pub queue: usize,
}

impl Webhook {
    /// Whether it wants events of this kind (`cause`: a stop's cause, for `plan_limit`).
    pub fn wants(&self, kind: &str, cause: Option<&str>) -> bool {
        self.events.is_empty()
            || self.events.iter().any(|wanted| {
                wanted == kind
                    || (wanted == "wake_failed" && kind == "start_failed")
                    || (wanted == "plan_limit"
                        && (kind == "wake_refused"
                            || (kind == "stop_requested" && cause == Some("plan_limit"))))
            })
    }

    /// The scheme, host and port of its URL: what may be shown of it.
    pub fn origin(&self) -> String {
        origin(self.url.expose())
    }
}

/// `scheme://host[:port]` of a URL (nothing of its user part, path or query).
pub fn origin(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(uri) => format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority()
                .map(|a| a.as_str().rsplit('@').next().unwrap_or_default().to_owned())
                .unwrap_or_default()
        ),
        Err(_) => String::new(),
    }
}

impl Reader<'_> {
    /// `webhooks` (global, a space's or a rule's): a list of receivers of events.
    pub(crate) fn webhooks(&mut self, value: &Value, path: &str) -> Vec<Webhook> {
        let Some(items) = self.list(value, path) else {
            return Vec::new();
        };
        let mut webhooks: Vec<Webhook> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            let Some(mut fields) = self.mapping(item, &item_path) else {
                continue;
            };
            if let Some(webhook) = self.webhook(&mut fields, &item_path) {
                if webhooks.iter().any(|w| w.id == webhook.id) {
                    self.error(
                        &format!("{item_path}.id"),
                        format!("`{}` is already the id of another webhook", webhook.id),
                    );
                } else {
                    webhooks.push(webhook);
                }
            }
            self.finish(fields, &[]);
        }
        webhooks
    }

    fn webhook(&mut self, fields: &mut Fields<'_>, path: &str) -> Option<Webhook> {
        let errors_before = self.errors.len();
        let id = match fields.take("id") {
            Some((v, p)) => self.string(v, &p).and_then(|id| {
                if crate::settings::is_label(&id) {
                    Some(id)
                } else {
                    self.error(
                        &p,
                        format!("`{id}` is not a valid id (lowercase letters, digits and -)"),
                    );
                    None
                }
            }),
            None => {
                self.error(&format!("{path}.id"), "is required (e.g. ops)");
                None
            }
        };
        let url = match fields.take("url") {
            Some((v, p)) => self.webhook_url(v, &p),
            None => {
                self.error(&format!("{path}.url"), "is required (an http(s) URL)");
                None
            }
        };
        let events = match fields.take("events") {
            None => Vec::new(),
            Some((v, p)) => self.event_kinds(v, &p),
        };
        let format = match fields.take("format") {
            None => Format::Json,
            Some((v, p)) => match self.string(v, &p).as_deref() {
                Some("json") => Format::Json,
                Some("slack") => Format::Slack,
                Some("discord") => Format::Discord,
                Some(other) => {
                    self.error(
                        &p,
                        format!("`{other}` is not a format: json, slack or discord"),
                    );
                    Format::Json
                }
                None => Format::Json,
            },
        };
        let secret = self.secret(fields, "secret", path);
        let retry_for = fields
            .take("retry_for")
            .and_then(|(v, p)| self.duration(v, &p))
            .unwrap_or(DEFAULT_RETRY_FOR);
        let timeout = fields
            .take("timeout")
            .and_then(|(v, p)| self.positive_duration(v, &p))
            .unwrap_or(DEFAULT_TIMEOUT);
        let queue = fields
            .take("queue")
            .and_then(|(v, p)| self.count(v, &p, 1..=100_000))
            .unwrap_or(DEFAULT_QUEUE);
        if self.errors.len() != errors_before {
            return None;
        }
        Some(Webhook {
            id: id?,
            url: url?,
            events,
            format,
            secret,
            retry_for,
            timeout,
            queue,
        })
    }

    /// A webhook's `url`: `http(s)://`, and (for a space created through the API) not at
    /// an internal address.
    fn webhook_url(&mut self, value: &Value, path: &str) -> Option<Secret> {
        let text = self.string(value, path)?;
        let uri = text.parse::<http::Uri>().ok().filter(|uri| {
            matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some()
        });
        let Some(uri) = uri else {
            // The URL may hold a credential: it is not quoted.
            self.error(path, "must be an http(s) URL");
            return None;
        };
        if self.api.is_some_and(|api| !api.private_addresses) {
            let host = uri.host().unwrap_or_default();
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let internal = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => crate::address::is_internal(ip),
                Err(_) => {
                    let host = host.trim_end_matches('.').to_ascii_lowercase();
                    host == "localhost" || host.ends_with(".localhost")
                }
            };
            if internal {
                self.error(
                    path,
                    format!(
                        "{host} is an internal address: a space's webhooks may only reach \
                         public addresses (hosted.private_upstreams is off)"
                    ),
                );
                return None;
            }
        }
        Some(Secret::new(text))
    }

    fn event_kinds(&mut self, value: &Value, path: &str) -> Vec<String> {
        let Some(items) = self.list(value, path) else {
            return Vec::new();
        };
        let mut kinds = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            let Some(kind) = self.string(item, &item_path) else {
                continue;
            };
            if EVENT_KINDS.contains(&kind.as_str()) || EVENT_ALIASES.contains(&kind.as_str()) {
                kinds.push(kind);
            } else {
                self.error(
                    &item_path,
                    format!(
                        "`{kind}` is not an event kind: {}",
                        EVENT_KINDS
                            .iter()
                            .chain(EVENT_ALIASES)
                            .copied()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
        kinds
    }
}

/// The keys of one `webhooks:` entry, as `Reader::webhooks` takes them.
pub const WEBHOOK_KEYS: &[crate::settings::Key] = {
    use crate::settings::{Key, Kind};
    &[
        Key::new(
            "id",
            Kind::Text("id"),
            "Its name, unique in the space (lowercase letters, digits and -); the admin API \
             shows its deliveries at /api/v1/webhooks/{id}/deliveries.",
        )
        .required(),
        Key::new(
            "url",
            Kind::Url,
            "Where each delivery is POSTed. Shown nowhere but its scheme and host (chat \
             services put their credential in it). In a space created through the API, \
             it must be at a public address.",
        )
        .required(),
        Key::new(
            "events",
            Kind::List(&Kind::Text("event kind")),
            "The event kinds sent (started, stopped, start_failed, stop_vetoed, ...; \
             wake_failed is start_failed, plan_limit a wake refused by the plan or a stop to \
             make room under it); \
             absent: every kind.",
        ),
        Key::new(
            "format",
            Kind::Enum(&["json", "slack", "discord"]),
            "The body: the event as JSON, or a Slack (`text`) or Discord (`content`) \
             incoming webhook message.",
        )
        .default("json"),
        Key::new(
            "secret",
            Kind::Secret,
            "Signs each delivery: header `Paastis-Signature: t=<unix seconds>,v1=<hex \
             HMAC-SHA256 of \"<t>.<body>\">`.",
        ),
        Key::new(
            "retry_for",
            Kind::Duration,
            "For how long a failed delivery (an error, a timeout, a status other than 2xx) \
             is tried again, with a growing, jittered delay.",
        )
        .default("10m"),
        Key::new("timeout", Kind::Duration, "The time limit of one attempt.").default("10s"),
        Key::new(
            "queue",
            Kind::Integer {
                min: 1,
                max: 100_000,
            },
            "Deliveries waiting for the receiver, at most; beyond, the oldest is dropped \
             (counted in paastis_webhook_dropped_total and logged).",
        )
        .default("1000"),
    ]
};

/// `webhooks:` as the reference documents it.
pub const WEBHOOKS: crate::settings::Kind =
    crate::settings::Kind::List(&crate::settings::Kind::Section(&[WEBHOOK_KEYS]));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Provenance, parse_yaml};

    fn read(yaml: &str, api: bool) -> (Vec<Webhook>, Vec<String>) {
        let provenance = Provenance::default();
        let mut reader = Reader::new(&provenance);
        if api {
            reader.api = Some(crate::settings::ApiRules::default());
        }
        let value: Value = parse_yaml(yaml).expect("yaml");
        let webhooks = reader.webhooks(&value, "webhooks");
        let errors = reader.errors.iter().map(|e| e.to_string()).collect();
        (webhooks, errors)
    }

    #[test]
    fn every_error_is_collected_with_its_path() {
        let (_, errors) = read(
            "[{url: 'ftp://x', events: [started, nope], format: teams, retry_for: x, queue: 0}, \
             {id: A}, {id: a, url: 'http://a'}, {id: a, url: 'http://b'}]",
            false,
        );
        assert_eq!(
            errors,
            vec![
                "webhooks[0].id: is required (e.g. ops)",
                "webhooks[0].url: must be an http(s) URL",
                "webhooks[0].events[1]: `nope` is not an event kind: discovered, registered, \
                 wake_requested, wake_refused, started, start_failed, stop_requested, stopped, \
                 stop_vetoed, hook_failed, stop_failed, exited, deleted, unmanaged, config_reloaded, \
                 config_rejected, provider_error, wake_failed, plan_limit",
                "webhooks[0].format: `teams` is not a format: json, slack or discord",
                "webhooks[0].retry_for: `x` is not a duration (expected e.g. 250ms, 90s, 15m, 2h, 7d)",
                "webhooks[0].queue: must be a whole number 1..100000",
                "webhooks[1].id: `A` is not a valid id (lowercase letters, digits and -)",
                "webhooks[1].url: is required (an http(s) URL)",
                "webhooks[3].id: `a` is already the id of another webhook",
            ]
        );
    }

    #[test]
    fn a_space_from_the_api_may_not_reach_internal_addresses() {
        for url in [
            "http://127.0.0.1:9/x",
            "http://localhost/x",
            "http://[::1]/x",
            "http://169.254.169.254/latest",
            "http://10.1.2.3/",
        ] {
            let (webhooks, errors) = read(&format!("[{{id: a, url: '{url}'}}]"), true);
            assert!(webhooks.is_empty(), "{url}");
            assert_eq!(errors.len(), 1, "{url}: {errors:?}");
            assert!(errors[0].contains("internal address"), "{errors:?}");
        }
        let (webhooks, errors) = read("[{id: a, url: 'https://hooks.example.com/x'}]", true);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(webhooks.len(), 1);
        let (_, errors) = read("[{id: a, url: 'http://127.0.0.1:9/x'}]", false);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn secrets_and_urls_stay_out_of_debug_output() {
        let (webhooks, errors) = read(
            "[{id: a, url: 'https://hooks.example.com/services/T0/B0/s3cr3t-path', secret: hush-hush-value}]",
            false,
        );
        assert!(errors.is_empty(), "{errors:?}");
        let shown = format!("{webhooks:?}");
        assert!(!shown.contains("hush-hush-value"), "{shown}");
        assert!(!shown.contains("s3cr3t-path"), "{shown}");
        assert_eq!(webhooks[0].origin(), "https://hooks.example.com");
    }

    #[test]
    fn aliases_select_what_they_stand_for() {
        let (webhooks, _) = read(
            "[{id: a, url: 'http://x', events: [wake_failed, plan_limit]}]",
            false,
        );
        let webhook = &webhooks[0];
        assert!(webhook.wants("start_failed", None));
        assert!(webhook.wants("stop_requested", Some("plan_limit")));
        assert!(webhook.wants("wake_refused", None));
        assert!(!webhook.wants("stop_requested", Some("idle")));
        assert!(!webhook.wants("started", None));
    }
}
