//! Configuration: the `paastis.yml` file model, its sources (file, `${ENV}` interpolation,
//! `PAASTIS_*` overrides, CLI flags) and its validation into typed values.
//!
//! Loading happens in three stages: the file becomes a YAML tree, the tree is validated (every
//! error collected, each with its path, e.g. `providers[0].apps[1].port: must be 1..65535`), and
//! only a tree without errors becomes a [`Config`]. This module never starts anything: it only
//! reads text and environment variables and returns values or errors.

mod compat;
pub mod dotenv;
mod load;
mod validate;

use std::net::SocketAddr;
use std::time::Duration;

pub use crate::model::{format_duration, parse_duration};
pub use crate::settings::ApiRules;
pub use compat::{Compat, Level, Notice, SECRET_VARIABLES, is_original_rules, uses_original_env};
pub use load::{Loaded, Overrides, Source, load, load_str, read_yaml};

/// Reads a space document of the admin API (the shape of a `spaces:` entry) into a
/// [`SpaceConfig`]; `domains_taken` maps the other spaces' domains to their owner. No
/// `${VAR}` is expanded, no file is read, and commands (hooks, `process` providers) are
/// refused.
pub fn api_space(
    document: &serde_json::Value,
    rules: ApiRules,
    domains_taken: &std::collections::HashMap<String, String>,
) -> Result<SpaceConfig, ConfigErrors> {
    validate::api_space(document, rules, domains_taken)
}

use crate::model::{Activity, Policy};
use crate::providers::ProviderConfig;
pub use crate::settings::{ConfigError, ConfigErrors};

/// The whole, validated configuration of one engine.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address of the proxy listener (`listen`, env `PAASTIS_LISTEN`, flag `--listen`).
    pub listen: SocketAddr,
    /// Base domains of the default space, lowercased, without a leading dot. Empty: the first
    /// DNS label of the Host is the route key.
    pub domains: Vec<String>,
    /// Per-app policy used where an app does not override it.
    pub defaults: Policy,
    /// How often each provider's apps are listed.
    pub discovery: Discovery,
    /// Every provider account, in file order (ids are unique).
    pub providers: Vec<ProviderConfig>,
    /// How long in-flight requests may take to finish once shutdown begins
    /// (`proxy.drain_timeout`).
    pub shutdown_timeout: Duration,
    /// Proxy worker threads (`proxy.workers`, default: one per CPU).
    pub workers: usize,
    /// Extra CA certificates (PEM) trusted for `https` upstreams (`proxy.upstream_ca_file`).
    pub upstream_ca_file: Option<std::path::PathBuf>,
    /// Requests that never wake an app and never count as activity.
    pub activity: Activity,
    /// Client-side limits of the proxy listener.
    pub limits: Limits,
    /// How long the proxy waits on upstreams.
    pub upstream_timeouts: crate::proxy::forward::UpstreamTimeouts,
    /// Send the client's `Host` upstream instead of the upstream's (`proxy.preserve_host`).
    pub preserve_host: bool,
    /// Peers whose `X-Forwarded-*` headers are believed (`proxy.trusted_proxies`).
    pub trusted_proxies: crate::proxy::forwarded::TrustedProxies,
    /// The optional HTTPS listener (`tls`).
    pub tls: Option<TlsListener>,
    /// Per-app rules (`rules`), in file order.
    pub rules: crate::rules::Rules,
    /// Where the catalog and the event history live (`database.url`, default
    /// `sqlite://paastis.db`); held as a secret (it may carry a password).
    pub database_url: crate::secret::Secret,
    /// How long events are kept (`events.retention`, default 90 days).
    pub events_retention: Duration,
    /// Where the hot state is shared between instances (`registry`, default `memory`).
    pub registry: crate::registry::RegistryConfig,
    /// The admin API (`admin`).
    pub admin: Admin,
    /// Global hooks (`hooks`); rules may override them per app.
    pub hooks: crate::hooks::Hooks,
    /// Sleep, wake and keep-awake times (`schedules`).
    pub schedules: Vec<crate::schedules::Schedule>,
    /// Prices and carbon figures for the savings estimates (`savings`).
    pub savings: crate::savings::SavingsConfig,
    /// The limits of the (default) space (`plan`, default `unlimited`).
    pub plan: crate::plan::Plan,
    /// What a wake beyond the plan's running apps does (`on_limit`, default `reject`).
    pub on_limit: crate::plan::OnLimit,
    /// Tenants besides the default space (`spaces`), each with its own domains and apps.
    pub spaces: Vec<SpaceConfig>,
    /// Hosted mode (`hosted`): spaces created through the admin API, stored in the database
    /// with their secrets sealed; `None`: spaces come from this file only.
    pub hosted: Option<Hosted>,
}

/// `hosted`: spaces managed through the admin API.
#[derive(Debug, Clone)]
pub struct Hosted {
    /// Seals provider secrets in the database (`PAASTIS_MASTER_KEY`, required).
    pub key: crate::spaces::MasterKey,
    /// Whether API-created spaces may point providers at other API addresses
    /// (`hosted.custom_api_urls`, default false: the platforms' public APIs only, so a
    /// tenant cannot make the engine call hosts of its network).
    pub custom_api_urls: bool,
    /// Whether API-created spaces' apps may be at internal addresses (loopback, private,
    /// link-local, metadata; `hosted.private_upstreams`, default false: public ones only).
    pub private_upstreams: bool,
    /// How often the stored spaces are read again, for changes made through another
    /// instance (`hosted.sync_every`, default 5 s).
    pub sync_every: Duration,
}

/// The default `hosted.sync_every`.
pub const DEFAULT_HOSTED_SYNC: Duration = Duration::from_secs(5);

impl Config {
    /// The top-level keys as the default space's.
    pub fn default_space(&self) -> SpaceConfig {
        SpaceConfig {
            id: crate::model::DEFAULT_SPACE.to_owned(),
            domains: self.domains.clone(),
            providers: self.providers.clone(),
            rules: self.rules.clone(),
            schedules: self.schedules.clone(),
            discovery: self.discovery.clone(),
            defaults: self.defaults.clone(),
            activity: self.activity.clone(),
            hooks: self.hooks.clone(),
            plan: self.plan.clone(),
            on_limit: self.on_limit,
            tokens: Vec::new(),
        }
    }

    /// Every secret this configuration holds: tokens, credentials, and the database and
    /// Redis URLs (they may carry a password).
    pub fn secrets(&self) -> Vec<crate::secret::Secret> {
        let mut secrets = vec![self.database_url.clone()];
        secrets.extend(self.admin.token.iter().cloned());
        secrets.extend(self.admin.system_api.iter().cloned());
        if let crate::registry::RegistryConfig::Redis(redis) = &self.registry {
            secrets.push(redis.url.clone());
        }
        let spaces = std::iter::once((&self.providers, &[][..]))
            .chain(self.spaces.iter().map(|s| (&s.providers, &s.tokens[..])));
        for (providers, tokens) in spaces {
            for provider in providers {
                secrets.extend(provider.secrets().into_iter().cloned());
            }
            secrets.extend(tokens.iter().cloned());
        }
        secrets
    }
}

/// One `spaces:` entry: a tenant's domains, provider accounts, rules, schedules and plan.
#[derive(Debug, Clone)]
pub struct SpaceConfig {
    /// Its id (a DNS label, unique, never `default`).
    pub id: String,
    /// Its base domains (lowercased): a host under one of them is routed to this space
    /// only (the longest matching domain of every space decides).
    pub domains: Vec<String>,
    /// Its provider accounts.
    pub providers: Vec<crate::providers::ProviderConfig>,
    /// Its per-app rules.
    pub rules: crate::rules::Rules,
    /// Its schedules.
    pub schedules: Vec<crate::schedules::Schedule>,
    /// How its providers are listed.
    pub discovery: Discovery,
    /// Its apps' default policy.
    pub defaults: Policy,
    /// Its requests that do not count as activity.
    pub activity: Activity,
    /// Its hooks.
    pub hooks: crate::hooks::Hooks,
    /// Its limits.
    pub plan: crate::plan::Plan,
    /// What a wake beyond its limits does.
    pub on_limit: crate::plan::OnLimit,
    /// API tokens scoped to this space.
    pub tokens: Vec<crate::secret::Secret>,
}

/// `admin`: the admin API, dashboard and metrics listener.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Where it listens (`admin.listen`, default `127.0.0.1:3001`).
    pub listen: SocketAddr,
    /// Bearer token every API call must carry (`admin.token`, or `PAASTIS_ADMIN_TOKEN`);
    /// none: open, which only a loopback `listen` allows.
    pub token: Option<crate::secret::Secret>,
    /// Whether `/metrics` needs the token too (`admin.metrics_auth`).
    pub metrics_auth: bool,
    /// The original engine's header-routed system API on the proxy port, with its token
    /// (`admin.system_api`); `None`: off.
    pub system_api: Option<crate::secret::Secret>,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            listen: SocketAddr::from(([127, 0, 0, 1], 3001)),
            token: None,
            metrics_auth: false,
            system_api: None,
        }
    }
}

/// The default `database.url`: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://paastis.db";

/// The default `events.retention`.
pub const DEFAULT_EVENTS_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// `tls`: a second proxy listener that terminates TLS (HTTP/2 or HTTP/1.1 by ALPN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListener {
    /// Where it listens (`tls.listen`, default `0.0.0.0:3443`).
    pub listen: SocketAddr,
    /// PEM certificate chain, leaf first (`tls.cert`); read again on SIGHUP.
    pub cert: std::path::PathBuf,
    /// PEM private key (`tls.key`); read again on SIGHUP.
    pub key: std::path::PathBuf,
}

/// Limits that protect the proxy from slow or oversized clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a client may take to send a request's headers (slowloris), `proxy.header_read_timeout`.
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers) accepted; larger gets 431,
    /// `proxy.max_header_bytes`.
    pub max_header_bytes: usize,
    /// Open client connections at most; more wait to be accepted, `proxy.max_connections`.
    pub max_connections: usize,
    /// Connections one client IP (IPv6: its /64) may hold, `proxy.max_connections_per_ip`.
    pub max_connections_per_ip: usize,
    /// How long an HTTP/2 connection may stay without a request in progress,
    /// `proxy.client_idle_timeout`.
    pub client_idle_timeout: Duration,
    /// How a request body must progress (`proxy.request_body_timeout`,
    /// `proxy.min_request_body_rate`): a trickled body is cut, and its app can sleep.
    pub body_progress: crate::proxy::body::BodyProgress,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_connections: 10_000,
            max_connections_per_ip: 512,
            client_idle_timeout: Duration::from_secs(60),
            body_progress: crate::proxy::body::BodyProgress::default(),
        }
    }
}

/// Discovery settings.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// Period of the discovery tick.
    pub every: Duration,
    /// Or the times of the discovery tick (`discovery.cron`, UTC), instead of `every`.
    pub cron: Option<croner::Cron>,
    /// Which apps are managed (`include`, `exclude`, `self_app`).
    pub filter: crate::rules::Filter,
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery {
            every: Duration::from_secs(60),
            cron: None,
            filter: crate::rules::Filter::default(),
        }
    }
}
