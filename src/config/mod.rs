//! Configuration: the `paastis.yml` file model, its sources (file, `${ENV}` interpolation,
//! `PAASTIS_*` overrides, CLI flags) and its validation into typed values.
//!
//! Loading happens in three stages: the file becomes a YAML tree, the tree is validated (every
//! error collected, each with its path, e.g. `providers[0].apps[1].port: must be 1..65535`), and
//! only a tree without errors becomes a [`Config`]. This module never starts anything: it only
//! reads text and environment variables and returns values or errors.
//!
//! It is the composition root of the settings: each component owns its settings type and
//! how its section is read (proxy, admin, registry, store, hooks, rules, plan, schedules,
//! savings, scheduler, spaces), with the shared [`crate::settings::Reader`]; this module
//! reads the top level, the provider accounts and the original engine's variables, and
//! composes the rest into [`Config`]. A component's settings never import this module.
//!
//! [`reference`](mod@reference) composes the keys each component declares into the whole tree, for the JSON
//! Schema (`paastis config schema`) and the generated configuration reference.

mod compat;
pub mod dotenv;
mod load;
pub mod reference;
mod validate;

use std::net::SocketAddr;
use std::time::Duration;

// The components' settings, named here too so the crate's public paths stay.
pub use crate::admin::settings::Admin;
pub use crate::model::{format_duration, parse_duration};
pub use crate::proxy::settings::{Limits, TlsListener};
pub use crate::scheduler::Discovery;
pub use crate::settings::read_yaml;
pub use crate::settings::{ApiRules, ConfigError, ConfigErrors};
pub use crate::spaces::settings::{DEFAULT_HOSTED_SYNC, Hosted, SpaceConfig, api_space};
pub use crate::store::settings::{DEFAULT_DATABASE_URL, DEFAULT_EVENTS_RETENTION};
pub use compat::{Compat, Level, Notice, SECRET_VARIABLES, is_original_rules, uses_original_env};
pub use load::{
    CONFIG_YAML_VARIABLE, EnvValue, Loaded, Overrides, Source, configures_engine, load, load_env,
    load_str,
};

use crate::model::{Activity, Policy};
use crate::providers::ProviderConfig;

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
    /// Forward-auth and the Sablier-compatible API (`gate`), off by default.
    pub gate: crate::gate::settings::Gate,
    /// How the running engine takes a changed configuration (`reload`).
    pub reload: crate::lifecycle::ReloadSettings,
    /// A short hash of everything this configuration was made of (the file after
    /// interpolation, the environment's keys, `--listen`): equal on every instance that
    /// loaded the same settings, so drift shows. Empty for a configuration not loaded from
    /// a source.
    pub revision: String,
    /// Global hooks (`hooks`); rules may override them per app.
    pub hooks: crate::hooks::Hooks,
    /// The default space's webhooks (`webhooks`); rules may add theirs.
    pub webhooks: Vec<crate::webhooks::Webhook>,
    /// Sleep, wake and keep-awake times (`schedules`).
    pub schedules: Vec<crate::schedules::Schedule>,
    /// Prices and carbon figures for the savings estimates (`savings`).
    pub savings: crate::savings::SavingsConfig,
    /// The limits of the (default) space (`plan`, default `unlimited`).
    pub plan: crate::plan::Plan,
    /// What a wake beyond the plan's running apps does (`on_limit`, default `reject`).
    pub on_limit: crate::plan::OnLimit,
    /// How the default space's visitor pages look (`page`).
    pub page: crate::pages::PageSettings,
    /// Tenants besides the default space (`spaces`), each with its own domains and apps.
    pub spaces: Vec<SpaceConfig>,
    /// Hosted mode (`hosted`): spaces created through the admin API, stored in the database
    /// with their secrets sealed; `None`: spaces come from this file only.
    pub hosted: Option<Hosted>,
    /// Where spans are sent, from the standard `OTEL_*` variables; `None`: traces are off.
    pub traces: Option<crate::traces::Settings>,
}

impl Config {
    /// The proxy's settings (`proxy` keys), as the proxy takes them.
    pub fn proxy_settings(&self) -> crate::proxy::settings::Settings {
        crate::proxy::settings::Settings {
            shutdown_timeout: self.shutdown_timeout,
            workers: self.workers,
            upstream_ca_file: self.upstream_ca_file.clone(),
            limits: self.limits,
            upstream_timeouts: self.upstream_timeouts,
            preserve_host: self.preserve_host,
            trusted_proxies: self.trusted_proxies.clone(),
        }
    }

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
            webhooks: self.webhooks.clone(),
            plan: self.plan.clone(),
            on_limit: self.on_limit,
            tokens: Vec::new(),
            page: self.page.clone(),
        }
    }

    /// Every secret this configuration holds: tokens, credentials, webhooks' URLs and
    /// secrets, and the database and Redis URLs (they may carry a password).
    pub fn secrets(&self) -> Vec<crate::secret::Secret> {
        let mut secrets = vec![self.database_url.clone()];
        secrets.extend(self.admin.token.iter().cloned());
        secrets.extend(self.admin.system_api.iter().cloned());
        secrets.extend(self.gate.token.iter().cloned());
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
        let webhooks = std::iter::once((&self.webhooks, &self.rules))
            .chain(self.spaces.iter().map(|s| (&s.webhooks, &s.rules)));
        for (webhooks, rules) in webhooks {
            for webhook in webhooks
                .iter()
                .chain(rules.0.iter().flat_map(|r| &r.webhooks))
            {
                secrets.push(webhook.url.clone());
                secrets.extend(webhook.secret.iter().cloned());
            }
        }
        secrets
    }
}
