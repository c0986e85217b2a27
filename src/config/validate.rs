//! Validation: walks the YAML tree once, collects every error with its path, and builds the
//! typed [`Config`] only when there is none. Unknown keys are errors.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use super::{Admin, Config, ConfigErrors, Discovery, Limits, TlsListener};
use crate::model::{Activity, Plain, Policy};
use crate::providers::ProviderConfig;
use crate::proxy::forward::UpstreamTimeouts;
use crate::registry::{RedisConfig, RegistryConfig, defaults as registry_defaults};
use crate::secret::Secret;
use crate::settings::{ApiRules, Fields, Provenance, Reader, child, is_label, kind};

/// Sections of `reference/config.md` that later versions implement: named so the error says
/// so instead of calling them typos.
const NOT_YET_SUPPORTED: &[&str] = &[];

impl Reader<'_> {
    /// Validates the whole tree.
    pub(super) fn config(mut self, root: &Value) -> Result<Config, ConfigErrors> {
        let empty = Map::new();
        let root_map = match root {
            Value::Null => &empty,
            Value::Object(map) => map,
            _ => {
                self.error("", "the configuration must be a mapping of keys to values");
                return Err(ConfigErrors(self.errors));
            }
        };
        let mut top = Fields::new(root_map, "");
        let listen = top
            .take("listen")
            .and_then(|(v, p)| self.socket_addr(v, &p))
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 3000)));
        let domains = top
            .take("domains")
            .map(|(v, p)| self.domains(v, &p))
            .unwrap_or_default();
        let Tenant {
            defaults,
            discovery,
            providers,
            activity,
            rules,
            hooks,
            schedules,
            plan,
            on_limit,
        } = self.tenant(&mut top, "providers");
        let ProxySection {
            drain: shutdown_timeout,
            workers,
            upstream_ca_file,
            limits,
            upstream_timeouts,
            preserve_host,
            trusted_proxies,
        } = top
            .take("proxy")
            .map(|(v, p)| self.proxy(v, &p))
            .unwrap_or_default();
        let tls = top.take("tls").and_then(|(v, p)| self.tls(v, &p));
        let database_url = top
            .take("database")
            .and_then(|(v, p)| self.database(v, &p))
            .unwrap_or_else(|| super::DEFAULT_DATABASE_URL.to_owned());
        let events_retention = top
            .take("events")
            .and_then(|(v, p)| self.events(v, &p))
            .unwrap_or(super::DEFAULT_EVENTS_RETENTION);
        let registry = top
            .take("registry")
            .map(|(v, p)| self.registry(v, &p))
            .unwrap_or_default();
        let savings = top
            .take("savings")
            .map(|(v, p)| self.savings(v, &p))
            .unwrap_or_default();
        let spaces = top
            .take("spaces")
            .map(|(v, p)| self.spaces(v, &p, &domains))
            .unwrap_or_default();
        let admin = match top.take("admin") {
            Some((v, p)) => self.admin(v, &p),
            None => self.admin(&Value::Object(Map::new()), "admin"),
        };
        let hosted = top
            .take("hosted")
            .and_then(|(v, p)| self.hosted(v, &p, &admin));
        self.finish(top, NOT_YET_SUPPORTED);

        if self.errors.is_empty() {
            Ok(Config {
                listen,
                domains,
                defaults,
                discovery,
                providers,
                shutdown_timeout,
                workers,
                upstream_ca_file,
                activity,
                limits,
                upstream_timeouts,
                preserve_host,
                trusted_proxies,
                tls,
                rules,
                database_url: Secret::new(database_url),
                events_retention,
                registry,
                admin,
                hooks,
                schedules,
                savings,
                plan,
                on_limit,
                spaces,
                hosted,
            })
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    /// `hosted`: `true`, or a mapping of its settings (`false`: off). Needs
    /// `PAASTIS_MASTER_KEY` and an admin token.
    fn hosted(&mut self, value: &Value, path: &str, admin: &Admin) -> Option<super::Hosted> {
        let mut custom_api_urls = false;
        let mut private_upstreams = false;
        let mut sync_every = super::DEFAULT_HOSTED_SYNC;
        match value {
            Value::Bool(false) => return None,
            Value::Bool(true) => {}
            Value::Object(_) => {
                let mut fields = self.mapping(value, path)?;
                custom_api_urls = match fields.take("custom_api_urls") {
                    None => false,
                    Some((Value::Bool(b), _)) => *b,
                    Some((other, p)) => {
                        self.error(&p, format!("expected true or false, found {}", kind(other)));
                        false
                    }
                };
                private_upstreams = match fields.take("private_upstreams") {
                    None => false,
                    Some((Value::Bool(b), _)) => *b,
                    Some((other, p)) => {
                        self.error(&p, format!("expected true or false, found {}", kind(other)));
                        false
                    }
                };
                if let Some(every) = fields
                    .take("sync_every")
                    .and_then(|(v, p)| self.positive_duration(v, &p))
                {
                    sync_every = every;
                }
                self.finish(fields, &[]);
            }
            other => {
                self.error(
                    path,
                    format!("expected true, false or a mapping, found {}", kind(other)),
                );
                return None;
            }
        }
        if admin.token.is_none() {
            self.error(
                path,
                "hosted mode needs admin.token (or PAASTIS_ADMIN_TOKEN): only the admin creates spaces",
            );
        }
        let key = match &self.provenance.master_key {
            None => {
                self.error(
                    path,
                    "hosted mode needs PAASTIS_MASTER_KEY, the key that seals provider secrets \
                     (32 random bytes in base64: `openssl rand -base64 32`); keep it safe, \
                     the stored secrets cannot be read without it",
                );
                None
            }
            Some(text) => match crate::spaces::MasterKey::parse(text.expose()) {
                Ok(key) => Some(key),
                Err(message) => {
                    self.error(path, format!("PAASTIS_MASTER_KEY {message}"));
                    None
                }
            },
        };
        Some(super::Hosted {
            key: key?,
            custom_api_urls,
            private_upstreams,
            sync_every,
        })
    }

    fn discovery(&mut self, value: &Value, path: &str) -> Discovery {
        let mut discovery = Discovery::default();
        let Some(mut fields) = self.mapping(value, path) else {
            return discovery;
        };
        let every = fields.take("every");
        let every_given = every.is_some();
        if let Some(every) = every.and_then(|(v, p)| self.positive_duration(v, &p)) {
            discovery.every = every;
        }
        if let Some((v, p)) = fields.take("cron") {
            if every_given {
                self.error(&p, "give `every` or `cron`, not both");
            } else if let Some(cron) = self.cron(v, &p) {
                discovery.cron = Some(cron);
            }
        }
        if let Some((v, p)) = fields.take("include") {
            discovery.filter.include = self.patterns(v, &p, Plain::Whole);
            // `*` alone is every app: the same as no include list (and cheaper).
            if discovery
                .filter
                .include
                .iter()
                .any(|pattern| pattern.as_str() == "*")
            {
                discovery.filter.include.clear();
            }
        }
        if let Some((v, p)) = fields.take("exclude") {
            discovery.filter.exclude = self.patterns(v, &p, Plain::Whole);
        }
        discovery.filter.self_app = match fields.take("self_app") {
            None | Some((Value::Null, _)) => None,
            Some((v, p)) => self.non_empty_string(v, &p),
        };
        self.finish(fields, &[]);
        discovery
    }

    /// `database`: where the catalog and events live. The URL is checked when the engine
    /// opens it (the error then names what is wrong, password hidden).
    fn database(&mut self, value: &Value, path: &str) -> Option<String> {
        let mut fields = self.mapping(value, path)?;
        let url = fields
            .take("url")
            .and_then(|(v, p)| self.non_empty_string(v, &p));
        self.finish(fields, &[]);
        url
    }

    /// `registry`: `memory` (one instance) or `redis` (several instances sharing it).
    fn registry(&mut self, value: &Value, path: &str) -> RegistryConfig {
        let Some(mut fields) = self.mapping(value, path) else {
            return RegistryConfig::Memory;
        };
        let kind = match fields.take("type") {
            Some((v, p)) => self.string(v, &p).map(|kind| (kind, p)),
            None => Some(("memory".to_owned(), String::new())),
        };
        let redis_keys = ["url", "url_file", "prefix", "flush_every", "lease"];
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

    /// `admin`: the admin API's listener and token, and the original engine's system API.
    fn admin(&mut self, value: &Value, path: &str) -> Admin {
        let mut admin = Admin::default();
        let Some(mut fields) = self.mapping(value, path) else {
            return admin;
        };
        let listen_path = format!("{path}.listen");
        if let Some(listen) = fields
            .take("listen")
            .and_then(|(v, p)| self.socket_addr(v, &p))
        {
            admin.listen = listen;
        }
        admin.token = self.secret(&mut fields, "token", path);
        if admin.token.is_none()
            && let Some(token) = self.provenance.admin_token.clone()
        {
            admin.token = Some(token);
        }
        admin.metrics_auth = match fields.take("metrics_auth") {
            None => false,
            Some((Value::Bool(b), _)) => *b,
            Some((other, p)) => {
                self.error(&p, format!("expected true or false, found {}", kind(other)));
                false
            }
        };
        if let Some((value, system_path)) = fields.take("system_api")
            && let Some(mut system) = self.mapping(value, &system_path)
        {
            let enabled = match system.take("enabled") {
                None => false,
                Some((Value::Bool(b), _)) => *b,
                Some((other, p)) => {
                    self.error(&p, format!("expected true or false, found {}", kind(other)));
                    false
                }
            };
            let token = self.secret(&mut system, "token", &system_path);
            if enabled && token.is_none() {
                self.error(
                    &format!("{system_path}.token"),
                    "is required when the system API is enabled (or token_file)",
                );
            }
            self.finish(system, &[]);
            admin.system_api = token.filter(|_| enabled);
        }
        if admin.token.is_none() && !admin.listen.ip().is_loopback() {
            self.error(
                &listen_path,
                format!(
                    "{} is not a loopback address: set admin.token (or PAASTIS_ADMIN_TOKEN), \
                     the admin API must not be open to the network without one",
                    admin.listen
                ),
            );
        }
        self.finish(fields, &[]);
        admin
    }

    /// `hooks` (global or a rule's): shell commands around transitions, their timeout and
    /// their environment.
    fn hooks(&mut self, value: &Value, path: &str) -> crate::hooks::Hooks {
        let mut hooks = crate::hooks::Hooks::default();
        if self.api.is_some() {
            self.error(
                path,
                "hooks run shell commands on the engine's host: not allowed in spaces created through the API",
            );
            return hooks;
        }
        let Some(mut fields) = self.mapping(value, path) else {
            return hooks;
        };
        let mut command = |fields: &mut Fields<'_>, key: &str| match fields.take(key) {
            None | Some((Value::Null, _)) => None,
            Some((v, p)) => self.non_empty_string(v, &p),
        };
        hooks.before_start = command(&mut fields, "before_start");
        hooks.after_start = command(&mut fields, "after_start");
        hooks.before_stop = command(&mut fields, "before_stop");
        hooks.after_stop = command(&mut fields, "after_stop");
        hooks.timeout = fields
            .take("timeout")
            .and_then(|(v, p)| self.positive_duration(v, &p));
        hooks.env = fields
            .take("env")
            .map(|(v, p)| self.env_map(v, &p))
            .unwrap_or_default();
        self.finish(fields, &[]);
        hooks
    }

    /// `schedules`: a list of sleep / wake / keep-awake entries.
    fn schedules(&mut self, value: &Value, path: &str) -> Vec<crate::schedules::Schedule> {
        let Some(items) = self.list(value, path) else {
            return Vec::new();
        };
        let mut schedules = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            let Some(mut fields) = self.mapping(item, &item_path) else {
                continue;
            };
            let errors_before = self.errors.len();
            let (apps, label) = match fields.take("apps") {
                Some((Value::String(text), p)) => (
                    self.patterns(
                        &Value::Array(vec![Value::String(text.clone())]),
                        &p,
                        Plain::Whole,
                    ),
                    text.clone(),
                ),
                Some((v, p)) => {
                    let patterns = self.patterns(v, &p, Plain::Whole);
                    let label = patterns
                        .iter()
                        .map(|pattern| pattern.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    (patterns, label)
                }
                None => {
                    self.error(
                        &format!("{item_path}.apps"),
                        "is required (app names: a glob such as `review-*`, `re:` for a regex, or a list)",
                    );
                    (Vec::new(), String::new())
                }
            };
            let sleep = fields.take("sleep").and_then(|(v, p)| self.cron(v, &p));
            let wake = fields.take("wake").and_then(|(v, p)| self.cron(v, &p));
            let keep_awake = fields
                .take("keep_awake")
                .map(|(v, p)| self.windows(v, &p))
                .unwrap_or_default();
            let timezone = match fields.take("timezone") {
                None | Some((Value::Null, _)) => chrono_tz::Tz::UTC,
                Some((v, p)) => self
                    .string(v, &p)
                    .and_then(|text| match text.trim().parse::<chrono_tz::Tz>() {
                        Ok(tz) => Some(tz),
                        Err(_) => {
                            self.error(
                                &p,
                                format!(
                                    "`{text}` is not a time zone (expected an IANA name such as \
                                     Europe/Paris or America/New_York, or UTC)"
                                ),
                            );
                            None
                        }
                    })
                    .unwrap_or(chrono_tz::Tz::UTC),
            };
            let wake_on_request = match fields.take("wake_on_request") {
                None | Some((Value::Null, _)) => true,
                Some((Value::Bool(b), _)) => *b,
                Some((v, p)) => {
                    self.error(&p, format!("expected true or false, found {}", kind(v)));
                    true
                }
            };
            if sleep.is_none()
                && wake.is_none()
                && keep_awake.is_empty()
                && self.errors.len() == errors_before
            {
                self.error(
                    &item_path,
                    "does nothing: give `sleep`, `wake` or `keep_awake`",
                );
            }
            self.finish(fields, &[]);
            if self.errors.len() == errors_before {
                schedules.push(crate::schedules::Schedule {
                    apps,
                    label,
                    sleep,
                    wake,
                    keep_awake,
                    timezone,
                    wake_on_request,
                });
            }
        }
        schedules
    }

    /// `savings`: price tables, their currency, and gCO2e per container-hour.
    fn savings(&mut self, value: &Value, path: &str) -> crate::savings::SavingsConfig {
        let mut savings = crate::savings::SavingsConfig::default();
        let Some(mut fields) = self.mapping(value, path) else {
            return savings;
        };
        if let Some((v, p)) = fields.take("prices") {
            match v {
                Value::Object(providers) => {
                    for (provider, sizes) in providers {
                        let provider_path = format!("{p}.{provider}");
                        let Value::Object(sizes) = sizes else {
                            self.error(
                                &provider_path,
                                format!(
                                    "expected a mapping of sizes to prices per container-hour \
                                     (e.g. {{M: 0.02}}), found {}",
                                    kind(sizes)
                                ),
                            );
                            continue;
                        };
                        let mut table = std::collections::BTreeMap::new();
                        for (size, price) in sizes {
                            if let Some(price) =
                                self.amount(price, &format!("{provider_path}.{size}"))
                            {
                                table.insert(size.clone(), price);
                            }
                        }
                        savings.prices.insert(provider.clone(), table);
                    }
                }
                other => self.error(
                    &p,
                    format!(
                        "expected a mapping of provider types or ids to price tables, found {}",
                        kind(other)
                    ),
                ),
            }
        }
        if let Some((v, p)) = fields.take("currency")
            && let Some(text) = self.string(v, &p)
        {
            let code = text.trim().to_ascii_uppercase();
            if code.len() == 3 && code.chars().all(|c| c.is_ascii_alphabetic()) {
                savings.currency = code;
            } else {
                self.error(
                    &p,
                    format!("`{text}` is not a currency code (ISO 4217, e.g. EUR, USD)"),
                );
            }
        }
        savings.gco2e_per_container_hour = match fields.take("gco2e_per_container_hour") {
            None | Some((Value::Null, _)) => None,
            Some((v, p)) => self.amount(v, &p),
        };
        self.finish(fields, &[]);
        savings
    }

    /// `spaces`: tenants, each with its own domains (unique across spaces and the top-level
    /// `domains`), providers, rules, schedules, plan and tokens.
    fn spaces(
        &mut self,
        value: &Value,
        path: &str,
        top_domains: &[String],
    ) -> Vec<super::SpaceConfig> {
        let Some(items) = self.list(value, path) else {
            return Vec::new();
        };
        let mut spaces: Vec<super::SpaceConfig> = Vec::new();
        let mut domain_owners: std::collections::HashMap<String, String> = top_domains
            .iter()
            .map(|d| (d.clone(), "the top-level `domains`".to_owned()))
            .collect();
        let mut ids: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            if let Some(space) = self.space(item, &item_path, &mut ids, &mut domain_owners) {
                spaces.push(space);
            }
        }
        spaces
    }

    /// One space entry; `ids` and `domain_owners` hold what earlier entries (or the
    /// running engine) took, and get this entry's.
    fn space(
        &mut self,
        item: &Value,
        item_path: &str,
        ids: &mut HashMap<String, String>,
        domain_owners: &mut HashMap<String, String>,
    ) -> Option<super::SpaceConfig> {
        let mut fields = self.mapping(item, item_path)?;
        let errors_before = self.errors.len();
        let owner = if item_path.is_empty() {
            "this space".to_owned()
        } else {
            format!("`{item_path}`")
        };
        let id = match fields.take("id") {
            Some((v, p)) => self.string(v, &p).and_then(|id| {
                let id = id.trim().to_owned();
                if id == crate::model::DEFAULT_SPACE {
                    self.error(&p, "`default` is the top-level configuration's space");
                    None
                } else if !is_label(&id) {
                    self.error(
                        &p,
                        format!("`{id}` is not a space id (lowercase letters, digits, `-`)"),
                    );
                    None
                } else if let Some(first) = ids.get(&id) {
                    self.error(&p, format!("duplicate space id `{id}` (first at {first})"));
                    None
                } else {
                    ids.insert(id.clone(), p.clone());
                    Some(id)
                }
            }),
            None => {
                self.error(
                    &child(item_path, "id"),
                    "is required (a DNS label, e.g. acme)",
                );
                None
            }
        };
        let domains = match fields.take("domains") {
            Some((v, p)) => {
                let domains = self.domains(v, &p);
                if domains.is_empty() && self.errors.len() == errors_before {
                    self.error(&p, "must list at least one domain (the space's hosts)");
                }
                for (n, domain) in domains.iter().enumerate() {
                    let at = format!("{p}[{n}]");
                    // A tenant's domain above or under another space's would take some
                    // of that space's hosts (the longest domain decides).
                    if self.api.is_some()
                        && let Some((other, first)) = domain_owners.iter().find(|(other, first)| {
                            **first != owner
                                && (domain.ends_with(&format!(".{other}"))
                                    || other.ends_with(&format!(".{domain}")))
                        })
                    {
                        let message = format!(
                            "`{domain}` would share hosts with `{other}`, a domain of {first}"
                        );
                        self.error(&at, message);
                        continue;
                    }
                    match domain_owners.get(domain) {
                        Some(first) => {
                            self.error(&at, format!("`{domain}` is already a domain of {first}"))
                        }
                        None => {
                            domain_owners.insert(domain.clone(), owner.clone());
                        }
                    }
                }
                domains
            }
            None => {
                self.error(
                    &child(item_path, "domains"),
                    "is required (the space's base domains, e.g. [acme.example.com])",
                );
                Vec::new()
            }
        };
        let Tenant {
            defaults,
            discovery,
            providers,
            activity,
            rules,
            hooks,
            schedules,
            plan,
            on_limit,
        } = self.tenant(&mut fields, &child(item_path, "providers"));
        let tokens = match fields.take("tokens") {
            None => Vec::new(),
            Some((_, p)) if self.api.is_some() => {
                self.error(
                    &p,
                    "tokens are issued by the engine (POST /api/v1/spaces/{id}/tokens), not given",
                );
                Vec::new()
            }
            Some((v, p)) => self.tokens(v, &p),
        };
        self.finish(fields, &[]);
        if let (Some(id), true) = (id, self.errors.len() == errors_before) {
            return Some(super::SpaceConfig {
                id,
                domains,
                providers,
                rules,
                schedules,
                discovery,
                defaults,
                activity,
                hooks,
                plan,
                on_limit,
                tokens,
            });
        }
        None
    }

    /// What the top level (the default space) and each space have alike: their
    /// providers, rules, schedules, discovery, defaults, activity, hooks and plan. A plan's
    /// provider count is checked here (its error at `providers_path`).
    fn tenant(&mut self, fields: &mut Fields<'_>, providers_path: &str) -> Tenant {
        let defaults = match fields.take("defaults") {
            Some((v, p)) => {
                let overrides = self.policy_section(v, &p, &[]);
                Policy::default().with(&overrides)
            }
            None => Policy::default(),
        };
        let discovery = fields
            .take("discovery")
            .map(|(v, p)| self.discovery(v, &p))
            .unwrap_or_default();
        let providers = fields
            .take("providers")
            .map(|(v, p)| self.providers(v, &p))
            .unwrap_or_default();
        let activity = fields
            .take("activity")
            .map(|(v, p)| self.activity(v, &p))
            .unwrap_or_default();
        let rules = fields
            .take("rules")
            .map(|(v, p)| self.rules(v, &p))
            .unwrap_or_default();
        let hooks = fields
            .take("hooks")
            .map(|(v, p)| self.hooks(v, &p))
            .unwrap_or_default();
        let schedules = fields
            .take("schedules")
            .map(|(v, p)| self.schedules(v, &p))
            .unwrap_or_default();
        let plan = fields
            .take("plan")
            .and_then(|(v, p)| self.plan(v, &p))
            .unwrap_or_default();
        if let Some(allowed) = plan.providers
            && providers.len() > allowed
        {
            self.error(
                providers_path,
                format!(
                    "{} provider accounts, but the plan {plan} allows {allowed}",
                    providers.len()
                ),
            );
        }
        let on_limit = match fields.take("on_limit") {
            None => crate::plan::OnLimit::default(),
            Some((v, p)) => self.on_limit(v, &p),
        };
        Tenant {
            defaults,
            discovery,
            providers,
            activity,
            rules,
            hooks,
            schedules,
            plan,
            on_limit,
        }
    }

    /// A space's API tokens: secrets of 16 characters or more.
    fn tokens(&mut self, value: &Value, path: &str) -> Vec<Secret> {
        let Some(items) = self.list(value, path) else {
            return Vec::new();
        };
        let mut tokens = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            match item.as_str().map(str::trim) {
                Some(token) if token.len() >= 16 => tokens.push(Secret::new(token)),
                // The value itself is never repeated: it is a secret.
                Some(_) => self.error(&item_path, "must be at least 16 characters"),
                None => self.error(
                    &item_path,
                    format!("expected a string, found {}", kind(item)),
                ),
            }
        }
        tokens
    }

    /// `on_limit`: `reject` or `evict_lru`.
    fn on_limit(&mut self, value: &Value, path: &str) -> crate::plan::OnLimit {
        match self.string(value, path).as_deref().map(str::trim) {
            Some("reject") => crate::plan::OnLimit::Reject,
            Some("evict_lru") => crate::plan::OnLimit::EvictLru,
            Some(other) => {
                self.error(path, format!("`{other}` is not one of: reject, evict_lru"));
                crate::plan::OnLimit::default()
            }
            None => crate::plan::OnLimit::default(),
        }
    }

    /// `plan`: a built-in plan's name, or `{providers: N, running_apps_per_provider: M}`.
    fn plan(&mut self, value: &Value, path: &str) -> Option<crate::plan::Plan> {
        if let Value::Object(_) = value {
            let mut fields = self.mapping(value, path)?;
            let mut count = |fields: &mut Fields<'_>, key: &str| match fields.take(key) {
                None => None,
                Some((v, p)) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
                    Some(n) if n >= 1 => Some(n),
                    _ => {
                        self.error(
                            &p,
                            "must be a whole number >= 1 (leave it out for no limit)",
                        );
                        None
                    }
                },
            };
            let providers = count(&mut fields, "providers");
            let running_apps_per_provider = count(&mut fields, "running_apps_per_provider");
            self.finish(fields, &[]);
            return Some(crate::plan::Plan {
                name: "custom".to_owned(),
                providers,
                running_apps_per_provider,
            });
        }
        let name = self.string(value, path)?;
        match crate::plan::Plan::named(name.trim()) {
            Some(plan) => Some(plan),
            None => {
                self.error(
                    path,
                    format!(
                        "`{name}` is not a plan (expected one of: {}, or {{providers: N, \
                         running_apps_per_provider: M}})",
                        crate::plan::Plan::NAMES.join(", ")
                    ),
                );
                None
            }
        }
    }

    /// `keep_awake`: a list of `{from: "08:00", to: "19:00", days: mon-fri}`.
    fn windows(&mut self, value: &Value, path: &str) -> Vec<crate::schedules::Window> {
        let Some(items) = self.list(value, path) else {
            return Vec::new();
        };
        let mut windows = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            let Some(mut fields) = self.mapping(item, &item_path) else {
                continue;
            };
            let mut time = |fields: &mut Fields<'_>, key: &str| match fields.take(key) {
                Some((v, p)) => self.string(v, &p).and_then(|text| {
                    crate::schedules::time_of_day(&text, key == "to")
                        .map_err(|message| self.error(&p, message))
                        .ok()
                }),
                None => {
                    self.error(
                        &format!("{item_path}.{key}"),
                        "is required (HH:MM, local time)",
                    );
                    None
                }
            };
            let from = time(&mut fields, "from");
            let to = time(&mut fields, "to");
            let days = match fields.take("days") {
                None | Some((Value::Null, _)) => Some(crate::schedules::Days::ALL),
                Some((Value::Array(items), p)) => {
                    let names: Vec<String> = items
                        .iter()
                        .filter_map(|item| item.as_str().map(str::to_owned))
                        .collect();
                    if names.len() != items.len() {
                        self.error(&p, "expected day names such as mon, tue or a range mon-fri");
                        None
                    } else {
                        crate::schedules::Days::parse(&names.join(","))
                            .map_err(|message| self.error(&p, message))
                            .ok()
                    }
                }
                Some((v, p)) => self.string(v, &p).and_then(|text| {
                    crate::schedules::Days::parse(&text)
                        .map_err(|message| self.error(&p, message))
                        .ok()
                }),
            };
            self.finish(fields, &[]);
            if let (Some(from), Some(to), Some(days)) = (from, to, days) {
                match crate::schedules::Window::from_minutes(from, to, days) {
                    Ok(window) => windows.push(window),
                    Err(message) => self.error(&item_path, message),
                }
            }
        }
        windows
    }

    /// `events`: how long they are kept.
    fn events(&mut self, value: &Value, path: &str) -> Option<Duration> {
        let mut fields = self.mapping(value, path)?;
        let retention = fields
            .take("retention")
            .and_then(|(v, p)| self.positive_duration(v, &p));
        self.finish(fields, &[]);
        retention
    }

    /// `rules`: a list of per-app rules, each with a regex `pattern` (whole name).
    fn rules(&mut self, value: &Value, path: &str) -> crate::rules::Rules {
        let Some(items) = self.list(value, path) else {
            return crate::rules::Rules::default();
        };
        let mut rules = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            let Some(mut fields) = self.mapping(item, &item_path) else {
                continue;
            };
            let rule = match fields.take("pattern") {
                Some((v, p)) => self.string(v, &p).and_then(|text| {
                    crate::rules::Rule::new(&text)
                        .map_err(|message| self.error(&p, message))
                        .ok()
                }),
                None => {
                    self.error(
                        &format!("{item_path}.pattern"),
                        "is required (a regex matched against the whole app name)",
                    );
                    None
                }
            };
            let policy = self.policy_fields(&mut fields);
            let linked_apps = fields.take("linked_apps").map(|(v, p)| self.names(v, &p));
            let alias = fields
                .take("alias")
                .and_then(|(v, p)| self.non_empty_string(v, &p));
            let formation = fields
                .take("formation")
                .and_then(|(v, p)| self.formation(v, &p));
            let hooks = fields.take("hooks").map(|(v, p)| self.hooks(v, &p));
            self.finish(fields, &[]);
            if let Some(mut rule) = rule {
                rule.policy = policy;
                rule.linked_apps = linked_apps;
                rule.alias = alias;
                rule.formation = formation;
                rule.hooks = hooks;
                rules.push(rule);
            }
        }
        crate::rules::Rules(rules)
    }

    /// `tls`: the HTTPS listener. The files are read when the engine starts (and on
    /// SIGHUP), not here.
    fn tls(&mut self, value: &Value, path: &str) -> Option<TlsListener> {
        if value.is_null() {
            return None;
        }
        let mut fields = self.mapping(value, path)?;
        let listen = fields
            .take("listen")
            .and_then(|(v, p)| self.socket_addr(v, &p))
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 3443)));
        let mut file = |name: &str| match fields.take(name) {
            Some((v, p)) => self.non_empty_string(v, &p).map(PathBuf::from),
            None => {
                self.error(
                    &format!("{path}.{name}"),
                    "is required (path of a PEM file)",
                );
                None
            }
        };
        let cert = file("cert");
        let key = file("key");
        self.finish(fields, &[]);
        Some(TlsListener {
            listen,
            cert: cert?,
            key: key?,
        })
    }

    /// `proxy`: drain timeout, worker threads, upstream CA file, client limits.
    fn proxy(&mut self, value: &Value, path: &str) -> ProxySection {
        let Some(mut fields) = self.mapping(value, path) else {
            return ProxySection::default();
        };
        let preserve_host = match fields.take("preserve_host") {
            None => false,
            Some((Value::Bool(b), _)) => *b,
            Some((other, p)) => {
                self.error(&p, format!("expected true or false, found {}", kind(other)));
                false
            }
        };
        let upstream_defaults = UpstreamTimeouts::default();
        let upstream_timeouts = UpstreamTimeouts {
            connect: fields
                .take("connect_timeout")
                .and_then(|(v, p)| self.positive_duration(v, &p))
                .unwrap_or(upstream_defaults.connect),
            response_header: fields
                .take("response_header_timeout")
                .and_then(|(v, p)| self.positive_duration(v, &p))
                .unwrap_or(upstream_defaults.response_header),
            idle: fields
                .take("idle_timeout")
                .and_then(|(v, p)| self.positive_duration(v, &p))
                .unwrap_or(upstream_defaults.idle),
        };
        let defaults = Limits::default();
        let limits = Limits {
            header_read_timeout: fields
                .take("header_read_timeout")
                .and_then(|(v, p)| self.positive_duration(v, &p))
                .unwrap_or(defaults.header_read_timeout),
            max_header_bytes: fields
                .take("max_header_bytes")
                .and_then(|(v, p)| self.count(v, &p, 8192..=16 * 1024 * 1024))
                .unwrap_or(defaults.max_header_bytes),
            max_connections: fields
                .take("max_connections")
                .and_then(|(v, p)| self.count(v, &p, 1..=10_000_000))
                .unwrap_or(defaults.max_connections),
            max_connections_per_ip: fields
                .take("max_connections_per_ip")
                .and_then(|(v, p)| self.count(v, &p, 1..=10_000_000))
                .unwrap_or(defaults.max_connections_per_ip),
            client_idle_timeout: fields
                .take("client_idle_timeout")
                .and_then(|(v, p)| self.positive_duration(v, &p))
                .unwrap_or(defaults.client_idle_timeout),
            body_progress: crate::proxy::body::BodyProgress {
                timeout: fields
                    .take("request_body_timeout")
                    .and_then(|(v, p)| self.positive_duration(v, &p))
                    .unwrap_or(defaults.body_progress.timeout),
                min_rate: fields
                    .take("min_request_body_rate")
                    .and_then(|(v, p)| self.count(v, &p, 0..=1 << 40))
                    .map_or(defaults.body_progress.min_rate, |n| n as u64),
            },
        };
        let drain = fields
            .take("drain_timeout")
            .and_then(|(v, p)| self.duration(v, &p))
            .unwrap_or(DEFAULT_DRAIN);
        let workers = fields
            .take("workers")
            .and_then(|(v, p)| self.count(v, &p, 1..=1024))
            .unwrap_or_else(default_workers);
        let mut trusted = Vec::new();
        if let Some((value, list_path)) = fields.take("trusted_proxies")
            && let Some(items) = self.list(value, &list_path)
        {
            for (index, item) in items.iter().enumerate() {
                let item_path = format!("{list_path}[{index}]");
                let Some(text) = self.string(item, &item_path) else {
                    continue;
                };
                match crate::proxy::forwarded::parse_range(text.trim()) {
                    Ok(net) => trusted.push(net),
                    Err(message) => self.error(&item_path, message),
                }
            }
        }
        let upstream_ca_file = fields
            .take("upstream_ca_file")
            .and_then(|(v, p)| self.non_empty_string(v, &p))
            .map(PathBuf::from);
        self.finish(fields, &[]);
        ProxySection {
            drain,
            workers,
            upstream_ca_file,
            limits,
            upstream_timeouts,
            preserve_host,
            trusted_proxies: crate::proxy::forwarded::TrustedProxies::new(trusted),
        }
    }
}

/// The `proxy` section, typed.
struct ProxySection {
    drain: Duration,
    workers: usize,
    upstream_ca_file: Option<PathBuf>,
    limits: Limits,
    upstream_timeouts: UpstreamTimeouts,
    preserve_host: bool,
    trusted_proxies: crate::proxy::forwarded::TrustedProxies,
}

impl Default for ProxySection {
    fn default() -> Self {
        ProxySection {
            drain: DEFAULT_DRAIN,
            workers: default_workers(),
            upstream_ca_file: None,
            limits: Limits::default(),
            upstream_timeouts: UpstreamTimeouts::default(),
            preserve_host: false,
            trusted_proxies: Default::default(),
        }
    }
}

/// One proxy worker per CPU.
fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(std::num::NonZeroUsize::get)
        .unwrap_or(2)
}

/// Default bound on draining in-flight requests at shutdown (`proxy.drain_timeout`).
const DEFAULT_DRAIN: Duration = Duration::from_secs(30);

/// The keys of one mapping, taken one by one, so that what is left is what nobody expected.
/// The keys the top level and every space have alike (see [`Reader::tenant`]).
struct Tenant {
    /// `defaults`.
    defaults: Policy,
    /// `discovery`.
    discovery: Discovery,
    /// `providers`.
    providers: Vec<ProviderConfig>,
    /// `activity`.
    activity: Activity,
    /// `rules`.
    rules: crate::rules::Rules,
    /// `hooks`.
    hooks: crate::hooks::Hooks,
    /// `schedules`.
    schedules: Vec<crate::schedules::Schedule>,
    /// `plan`.
    plan: crate::plan::Plan,
    /// `on_limit`.
    on_limit: crate::plan::OnLimit,
}

/// Reads a space document of the admin API: a `spaces:` entry, without what a tenant may
/// not ask of the engine's host (see [`ApiRules`]). `domains_taken` maps each domain of
/// the other spaces to a description of its owner. Every error is collected, with its path
/// in the document.
pub(super) fn api_space(
    document: &Value,
    rules: ApiRules,
    domains_taken: &HashMap<String, String>,
) -> Result<super::SpaceConfig, ConfigErrors> {
    let provenance = Provenance::default();
    let mut validator = Reader::new(&provenance);
    validator.api = Some(rules);
    let mut ids = HashMap::new();
    let mut owners = domains_taken.clone();
    if !document.is_object() {
        validator.error(
            "",
            format!("expected a mapping (a space), found {}", kind(document)),
        );
        return Err(ConfigErrors(validator.errors));
    }
    match validator.space(document, "", &mut ids, &mut owners) {
        Some(space) if validator.errors.is_empty() => Ok(space),
        _ => Err(ConfigErrors(validator.errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every expected message starts one of `errors`, and nothing else is reported.
    fn assert_exactly(errors: &[String], expected: &[&str]) {
        for needle in expected {
            assert!(
                errors.iter().any(|e| e.starts_with(needle)),
                "missing {needle:?} in {errors:#?}"
            );
        }
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    }

    fn validate(yaml: &str) -> Result<Config, Vec<String>> {
        let tree: Value = super::super::load::parse_yaml(yaml).expect("test yaml parses");
        let provenance = Provenance::default();
        Reader::new(&provenance)
            .config(&tree)
            .map_err(|errors| errors.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn empty_config_gets_the_defaults() {
        let config = validate("").expect("valid");
        assert_eq!(config.listen, SocketAddr::from(([0, 0, 0, 0], 3000)));
        assert_eq!(config.defaults, Policy::default());
        assert_eq!(config.discovery.every, Duration::from_secs(60));
        assert!(config.providers.is_empty());
    }

    #[test]
    fn full_process_provider_is_typed() {
        let config = validate(
            r#"
listen: 127.0.0.1:4000
domains: [Proxy.Example.com.]
defaults: {max_idle: 5m, wake_timeout: 30s, strategy: hold, health_path: /up}
discovery: {every: 10s}
proxy: {drain_timeout: 5s, workers: 3}
providers:
  - id: local
    type: process
    apps:
      - name: hello
        command: "python3 -m http.server {port}"
        port: 8081
        env: {GREETING: hi, DEBUG: true, N: 3}
        working_dir: /tmp
        max_idle: never
        stop_timeout: 2s
      - name: other
        command: "true"
"#,
        )
        .expect("valid");
        assert_eq!(config.listen.port(), 4000);
        assert_eq!(config.domains, vec!["proxy.example.com".to_owned()]);
        assert_eq!(config.defaults.max_idle, Some(Duration::from_secs(300)));
        assert_eq!(config.defaults.health_path.as_deref(), Some("/up"));
        assert_eq!(config.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(config.workers, 3);
        let ProviderConfig::Process(process) = &config.providers[0] else {
            panic!("expected a process provider");
        };
        assert_eq!(process.id, "local");
        let hello = &process.apps[0];
        assert_eq!(hello.port, Some(8081));
        assert_eq!(hello.env.get("DEBUG").map(String::as_str), Some("true"));
        assert_eq!(hello.env.get("N").map(String::as_str), Some("3"));
        assert_eq!(config.defaults.with(&hello.policy).max_idle, None);
        assert_eq!(process.apps[1].port, None);
    }

    #[test]
    fn every_error_is_collected_with_its_path() {
        let errors = validate(
            r#"
listen: nowhere
lisen: 1
defaults: {max_idle: 15, strategy: fast}
rules: [{max_idle: 5m}, {pattern: '(', alias: ''}]
providers:
  - id: local
    type: process
    apps:
      - name: a
        command: x
        port: 70000
      - name: a
        port: 0
      - {name: Bad_Name, command: y, colour: blue}
  - id: local
    type: scalingo
  - type: nope
  - {id: fly, type: fly}
"#,
        )
        .expect_err("invalid");
        let expected = [
            "listen: `nowhere` is not an address",
            "defaults.max_idle: `15` is not a duration",
            "defaults.strategy: `fast` is not a strategy",
            "lisen: unknown key (expected one of:",
            "rules[0].pattern: is required",
            "rules[1].pattern: `(` is not a valid regex",
            "rules[1].alias: ",
            "providers[0].apps[0].port: must be 1..65535",
            "providers[0].apps[1].name: duplicate app name `a` (first at providers[0].apps[0].name)",
            "providers[0].apps[1].command: missing",
            "providers[0].apps[1].port: must be 1..65535",
            "providers[0].apps[2].name: `Bad_Name` is not a valid app name",
            "providers[0].apps[2].colour: unknown key",
            "providers[1].id: duplicate provider id `local`",
            "providers[1].token: missing (or token_file)",
            "providers[2].id: missing",
            "providers[2].type: `nope` is not a provider type",
            "providers[3].type: `fly` providers are not supported by this version",
        ];
        assert_exactly(&errors, &expected);
    }

    #[test]
    fn registry_settings_are_checked_together() {
        let config = validate("registry: {type: redis}").expect("valid");
        let RegistryConfig::Redis(redis) = config.registry else {
            panic!("expected redis, got {:?}", config.registry);
        };
        assert_eq!(redis.url.expose(), registry_defaults::URL);
        assert_eq!(redis.prefix, "paastis");
        assert_eq!(redis.flush_every, Duration::from_secs(1));
        assert_eq!(redis.lease, Duration::from_secs(10));

        let config = validate(
            "registry: {type: redis, url: 'redis://:pw@10.0.0.9:6380/2', prefix: 'team:', flush_every: 250ms, lease: 3s}",
        )
        .expect("valid");
        let RegistryConfig::Redis(redis) = config.registry else {
            panic!("expected redis");
        };
        assert_eq!(redis.prefix, "team", "a trailing colon is not doubled");
        assert_eq!(redis.flush_every, Duration::from_millis(250));
        assert_eq!(redis.lease, Duration::from_secs(3));
        assert!(!format!("{redis:?}").contains("pw@"), "the URL is a secret");
        assert!(matches!(
            validate("registry: {type: memory}")
                .expect("valid")
                .registry,
            RegistryConfig::Memory
        ));

        let errors = validate(
            "registry: {type: redis, url: 'http://x', prefix: 'a b', flush_every: 0s, lease: 100ms, pool: 3}",
        )
        .expect_err("invalid");
        assert_exactly(
            &errors,
            &[
                "registry.url: must be a redis://",
                "registry.prefix: must not hold spaces or glob characters",
                "registry.flush_every: must be longer than 0s",
                "registry.lease: must be at least 300ms",
                "registry.pool: unknown key",
            ],
        );
        let errors = validate(
            "registry: {type: mongo}
",
        )
        .expect_err("invalid");
        assert_exactly(&errors, &["registry.type: `mongo` is not a registry type"]);
        let errors = validate(
            "registry: {type: memory, url: 'redis://x'}
",
        )
        .expect_err("invalid");
        assert_exactly(&errors, &["registry.url: is only used with `type: redis`"]);
    }

    #[test]
    fn wrong_shapes_are_named() {
        let errors = validate("providers: {id: x}\ndomains: example.com\n").expect_err("invalid");
        assert!(errors.contains(&"domains: expected a list, found a string".to_owned()));
        assert!(errors.contains(&"providers: expected a list, found a mapping".to_owned()));
        let errors = validate("- a\n- b\n").expect_err("invalid");
        assert_eq!(
            errors,
            vec!["the configuration must be a mapping of keys to values".to_owned()]
        );
    }

    #[test]
    fn platform_providers_are_typed_with_secrets() {
        let dir = std::env::temp_dir().join(format!("paastis-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let token_file = dir.join("heroku-token");
        std::fs::write(&token_file, "hrku-from-file\n").expect("write");
        let config = validate(&format!(
            r#"
providers:
  - {{id: scalingo-fr1, type: scalingo, token: tk-us-abc, region: [osc-fr1, osc-secnum-fr1], api_url: "http://127.0.0.1:9/{{region}}/", rate_limit: 30}}
  - {{id: heroku, type: heroku, token_file: "{}"}}
  - {{id: clever, type: clever-cloud, consumer_key: ck, consumer_secret: cs, token: t, secret: s, organisation: orga_1}}
  - {{id: bridge, type: clever-cloud, api_token: tok, upstream_scheme: http}}
"#,
            token_file.display()
        ))
        .expect("valid");
        let _ = std::fs::remove_dir_all(&dir);
        let [
            ProviderConfig::Scalingo(scalingo),
            ProviderConfig::Heroku(heroku),
            ProviderConfig::CleverCloud(clever),
            ProviderConfig::CleverCloud(bridge),
        ] = config.providers.as_slice()
        else {
            panic!("unexpected providers: {:?}", config.providers);
        };
        assert_eq!(scalingo.regions, ["osc-fr1", "osc-secnum-fr1"]);
        assert_eq!(
            scalingo.api_url.as_deref(),
            Some("http://127.0.0.1:9/{region}")
        );
        assert_eq!(scalingo.auth_url, "https://auth.scalingo.com");
        assert_eq!(scalingo.rate_limit, 30);
        assert_eq!(scalingo.token.expose(), "tk-us-abc");
        assert_eq!(heroku.token.expose(), "hrku-from-file");
        assert_eq!(heroku.api_url, "https://api.heroku.com");
        assert_eq!(clever.api_url, "https://api.clever-cloud.com");
        assert_eq!(clever.organisation.as_deref(), Some("orga_1"));
        assert_eq!(bridge.api_url, "https://api-bridge.clever-cloud.com");
        assert_eq!(bridge.upstream_scheme, http::uri::Scheme::HTTP);
        // Debug output of the whole config shows no secret.
        let debug = format!("{config:?}");
        for secret in ["tk-us-abc", "hrku-from-file", "\"cs\"", "\"tok\""] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }

    #[test]
    fn platform_provider_errors_are_collected() {
        let errors = validate(
            r#"
providers:
  - {id: s, type: scalingo, region: [Bad Region], auth_url: "ftp://x"}
  - {id: h, type: heroku, token: a, token_file: /nonexistent/token}
  - {id: c, type: clever-cloud, consumer_key: k}
  - {id: d, type: clever-cloud}
  - {id: e, type: heroku, token_file: /nonexistent/paastis-token}
  - {id: f, type: scalingo, token: t, region: [osc-fr1, osc-secnum-fr1], api_url: "http://x"}
  - {id: g, type: scalingo, token: t, region: [osc-fr1, osc-secnum-fr1], api_url: "http://x/{region}"}
"#,
        )
        .expect_err("invalid");
        let expected = [
            "providers[0].token: missing (or token_file)",
            "providers[0].region[0]: `Bad Region` is not a region name",
            "providers[0].auth_url: `ftp://x` is not an http(s) URL",
            "providers[1].token: set either token or token_file, not both",
            "providers[2].consumer_secret: missing",
            "providers[2].token: missing",
            "providers[2].secret: missing",
            "providers[3]: missing credentials",
            "providers[4].token_file: cannot read /nonexistent/paastis-token",
            "providers[5].api_url: serves one region",
        ];
        assert_exactly(&errors, &expected);
    }

    #[test]
    fn discovery_runs_every_period_or_on_a_cron() {
        let config = validate("discovery: {cron: '*/30 * * * * *'}").expect("valid");
        assert!(config.discovery.cron.is_some());
        let config = validate("discovery: {cron: '0 * * * *'}").expect("valid");
        assert!(config.discovery.cron.is_some());
        let errors = validate("discovery: {every: 10s, cron: '* * * * *'}").expect_err("invalid");
        assert_exactly(
            &errors,
            &["discovery.cron: give `every` or `cron`, not both"],
        );
        // An empty list item would leave a field matching nothing: every search for the
        // next time would scan the calendar for seconds.
        for cron in ["*/51 , * * * *", "0 1,,2 * * *", "0 8 * * 1,"] {
            let expected = format!(
                "discovery.cron: `{cron}` is not a cron expression (a list with an empty item"
            );
            let errors = validate(&format!("discovery: {{cron: '{cron}'}}")).expect_err("invalid");
            assert_exactly(&errors, &[&expected]);
            let errors = validate(&format!("schedules: [{{apps: x, sleep: '{cron}'}}]"))
                .expect_err("invalid");
            assert_exactly(
                &errors,
                &[&expected.replace("discovery.cron", "schedules[0].sleep")],
            );
        }
        let errors = validate("discovery: {cron: 'every minute'}").expect_err("invalid");
        assert_exactly(
            &errors,
            &["discovery.cron: `every minute` is not a cron expression"],
        );
    }

    #[test]
    fn discovery_filter_and_rules_are_typed() {
        let config = validate(
            r#"
discovery: {include: ["*"], exclude: ['tmp-*', 're:^old-\d+$'], self_app: paastis}
rules:
  - {pattern: 'review-(\d+)', linked_apps: ['db-$1'], alias: 'r$1', max_idle: never, formation: {web: 2}}
"#,
        )
        .expect("valid");
        let filter = &config.discovery.filter;
        assert!(filter.include.is_empty());
        assert!(filter.manages("review-1", &[]));
        assert!(!filter.manages("tmp-1", &[]));
        assert!(!filter.manages("old-12", &[]));
        assert!(!filter.manages("paastis", &[]));
        let resolved = config.rules.resolve("review-12");
        assert_eq!(resolved.linked_apps, vec!["db-12"]);
        assert_eq!(resolved.alias.as_deref(), Some("r12"));
        assert_eq!(resolved.policy.max_idle, Some(None));
        assert_eq!(resolved.formation, Some([("web".to_owned(), 2)].into()));

        let errors = validate(
            "discovery: {include: ['[']}\nrules: [{pattern: x, formation: {web: -1}, linked_apps: [''], hooks: {before_stop: 3, after_stop: '', timeout: 0s, nope: x}}, 3]",
        )
        .expect_err("invalid");
        assert_exactly(
            &errors,
            &[
                "discovery.include[0]: `[` is not a valid glob",
                "rules[0].formation.web: ",
                "rules[0].linked_apps[0]: ",
                "rules[0].hooks.after_stop: must not be empty",
                "rules[0].hooks.timeout: must be longer than 0s",
                "rules[0].hooks.nope: unknown key",
                "rules[1]: ",
            ],
        );
    }

    #[test]
    fn activity_patterns_are_checked() {
        let config =
            validate("activity: {ignore_user_agents: [UptimeRobot], ignore_paths: ['/status/*']}")
                .expect("valid");
        assert!(config.activity.ignores(Some("x UptimeRobot/2"), "/"));
        assert!(config.activity.ignores(None, "/status/db"));
        assert!(!config.activity.ignores(Some("curl"), "/"));
        let errors =
            validate("activity: {ignore_paths: ['re:(', ok], bogus: 1}").expect_err("invalid");
        assert!(
            errors[0].starts_with("activity.ignore_paths[0]: `re:(` is not a valid regex"),
            "{errors:?}"
        );
        assert!(
            errors[1].starts_with("activity.bogus: unknown key"),
            "{errors:?}"
        );
    }

    #[test]
    fn labels() {
        assert!(is_label("review-pr12-front"));
        assert!(!is_label("-x"));
        assert!(!is_label("a.b"));
        assert!(!is_label("UPPER"));
        assert!(!is_label(&"a".repeat(64)));
    }

    #[test]
    fn zero_timeouts_are_refused() {
        let errors = validate("defaults: {wake_timeout: 0s, max_idle: 0s}").expect_err("invalid");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().all(|e| e.ends_with("must be longer than 0s")));
    }

    #[test]
    fn schedules_are_read_and_every_mistake_is_reported() {
        let config = validate(
            "schedules:\n\
             \x20 - {apps: 'review-*', sleep: '0 20 * * 1-5', wake: '0 8 * * 1-5', timezone: Europe/Paris,\n\
             \x20    keep_awake: [{from: '08:00', to: '19:00', days: mon-fri}], wake_on_request: false}\n\
             \x20 - {apps: [demo, 're:^qa-'], keep_awake: [{from: '22:00', to: '02:00', days: [fri, sat]}]}\n",
        )
        .expect("valid");
        assert_eq!(config.schedules.len(), 2);
        let office = &config.schedules[0];
        assert_eq!(office.timezone, chrono_tz::Europe::Paris);
        assert!(!office.wake_on_request);
        assert!(office.matches("review-pr1") && !office.matches("demo"));
        assert_eq!(office.keep_awake.len(), 1);
        let other = &config.schedules[1];
        assert!(other.matches("demo") && other.matches("qa-7") && other.wake_on_request);
        assert_eq!(other.timezone, chrono_tz::UTC);

        let errors = validate(
            "schedules:\n\
             \x20 - {sleep: 'every night', timezone: Mars/Olympus}\n\
             \x20 - {apps: x, keep_awake: [{from: '8h', to: '19:00', days: someday}], wake_on_request: 1}\n\
             \x20 - {apps: y}\n\
             \x20 - {apps: z, wake: '0 8 * * *', bogus: 1}\n",
        )
        .expect_err("invalid");
        let expected = [
            "schedules[0].apps: is required",
            "schedules[0].sleep: `every night` is not a cron expression",
            "schedules[0].timezone: `Mars/Olympus` is not a time zone",
            "schedules[1].keep_awake[0].from: `8h` is not a time of day",
            "schedules[1].keep_awake[0].days: `someday` is not a day",
            "schedules[1].wake_on_request: expected true or false",
            "schedules[2]: does nothing",
            "schedules[3].bogus: unknown key",
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for (error, start) in errors.iter().zip(expected) {
            assert!(error.starts_with(start), "{error} / {start}");
        }
    }

    #[test]
    fn savings_are_read_and_checked() {
        let config = validate(
            "savings: {prices: {scalingo: {M: 0.02, L: 0.04}, my-heroku: {'*': 0.01}}, currency: usd, gco2e_per_container_hour: 0.5}",
        )
        .expect("valid");
        assert_eq!(config.savings.currency, "USD");
        assert_eq!(config.savings.prices["scalingo"]["L"], 0.04);
        assert_eq!(config.savings.prices["my-heroku"]["*"], 0.01);
        assert_eq!(config.savings.gco2e_per_container_hour, Some(0.5));
        let errors = validate(
            "savings: {prices: {scalingo: {M: -1, L: cheap}, heroku: 3}, currency: euro, gco2e_per_container_hour: lots, extra: 1}",
        )
        .expect_err("invalid");
        let expected = [
            "savings.prices.scalingo.M: must be a number >= 0",
            "savings.prices.scalingo.L: expected a number",
            "savings.prices.heroku: expected a mapping of sizes",
            "savings.currency: `euro` is not a currency code",
            "savings.gco2e_per_container_hour: expected a number",
            "savings.extra: unknown key",
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for start in expected {
            assert!(
                errors.iter().any(|e| e.starts_with(start)),
                "{start}: {errors:#?}"
            );
        }
    }

    #[test]
    fn spaces_are_read_and_every_mistake_is_reported() {
        let config = validate(
            "domains: [example.com]\n\
             spaces:\n\
             \x20 - {id: acme, domains: [Acme.Example.com.], plan: team, on_limit: evict_lru, tokens: [acme-token-0123456789],\n\
             \x20    providers: [{id: local, type: process, apps: [{name: web, command: 'true'}]}],\n\
             \x20    defaults: {max_idle: 5m}, schedules: [{apps: '*', sleep: '0 20 * * *'}]}\n",
        )
        .expect("valid");
        let acme = &config.spaces[0];
        assert_eq!(acme.id, "acme");
        assert_eq!(acme.domains, ["acme.example.com"]);
        assert_eq!(acme.plan.running_apps_per_provider, Some(15));
        assert_eq!(acme.on_limit, crate::plan::OnLimit::EvictLru);
        assert_eq!(acme.providers.len(), 1);
        assert_eq!(acme.defaults.max_idle, Some(Duration::from_secs(300)));
        assert_eq!(acme.schedules.len(), 1);
        assert_eq!(acme.tokens.len(), 1);

        let errors = validate(
            "domains: [example.com]\n\
             spaces:\n\
             \x20 - {id: default, domains: [a.test]}\n\
             \x20 - {id: Bad_Id, domains: [example.com]}\n\
             \x20 - {id: b}\n\
             \x20 - {id: c, domains: [c.test], tokens: [short-secret-x], plan: free,\n\
             \x20    providers: [{id: x, type: process, apps: [{name: a, command: 'true'}]}, {id: y, type: process, apps: [{name: b, command: 'true'}]}]}\n\
             \x20 - {id: c, domains: [c.test], colour: blue}\n",
        )
        .expect_err("invalid");
        let expected = [
            "spaces[0].id: `default` is the top-level",
            "spaces[1].id: `Bad_Id` is not a space id",
            "spaces[1].domains[0]: `example.com` is already a domain of the top-level `domains`",
            "spaces[2].domains: is required",
            "spaces[3].providers: 2 provider accounts, but the plan `free` allows 1",
            "spaces[3].tokens[0]: must be at least 16 characters",
            "spaces[4].id: duplicate space id `c`",
            "spaces[4].domains[0]: `c.test` is already a domain of `spaces[3]`",
            "spaces[4].colour: unknown key",
        ];
        for start in expected {
            assert!(
                errors.iter().any(|e| e.starts_with(start)),
                "{start}: {errors:#?}"
            );
        }
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        // A token is never repeated in an error.
        assert!(errors.iter().all(|e| !e.contains("short-secret-x")));
    }
}
