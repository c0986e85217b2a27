//! Paastis puts idle PaaS apps to sleep and wakes them on the first request.
//!
//! # Layout
//!
//! * [`admin`]: the admin API, dashboard and `/metrics` on their own listener.
//! * [`catalog`]: the engine's durable memory: what the store remembers goes to the
//!   lifecycle at start; what happens is written back in the background.
//! * [`child_env`]: what the commands the engine runs (`process` apps, hooks) get of its
//!   environment: a short allow-list, never a secret.
//! * [`cli`]: the `apps`, `events`, `providers`, `savings` and `spaces` subcommands, clients
//!   of the admin API.
//! * [`config`]: the `paastis.yml` file model, its sources and its validation into typed
//!   values (every error collected, with its path).
//! * [`providers`]: one trait for every platform account, one module per platform
//!   ([`providers::process`]: local commands, the embedded default).
//! * [`hooks`]: the user's shell commands around starts and stops (run and reported here,
//!   decided on by the lifecycle).
//! * [`lifecycle`]: the registry of managed apps and their state machine (Asleep, Waking,
//!   Awake, Stopping, Failed); the only place that starts and stops apps.
//! * [`metrics`]: counters and histograms for `/metrics` (Prometheus text format).
//! * [`patterns`]: globs and `re:` regexes from the config.
//! * [`plan`]: a space's limits (provider accounts, running apps per account) and what a
//!   wake beyond them does.
//! * [`rules`]: which apps are managed (`discovery.include` / `exclude`) and what each gets
//!   from `rules:` (policy, aliases, linked apps, formation).
//! * [`proxy`]: the request path as named phases (route, admit, touch, wake, forward).
//! * [`registry`]: what several instances share (leader lease, per-app leases, state
//!   changes, activity): nothing for one instance, Redis for several.
//! * [`scheduler`]: discovery, the idle check, schedules, and exits reported by providers.
//! * [`schedules`]: `schedules:` entries and where each stands at a given wall time (sleep
//!   windows, keep-awake windows, wake times); it tells, the lifecycle acts.
//! * [`events`]: typed records of every transition.
//! * `fuzzing` (feature `fuzzing`): entry points for the fuzz targets in `fuzz/`.
//! * [`secret`]: the redacting string type every credential is held in.
//! * [`spaces`]: the tenants besides the default space, running: from the config file, or
//!   (hosted mode) from the admin API and the database, secrets sealed, tokens hashed.
//! * [`store`]: the durable catalog and event history (SQLite file or PostgreSQL), behind
//!   one trait; it stores and answers, never decides.
//! * [`table`]: the plain-text table of managed apps.
//! * [`html`]: text made safe for HTML, for the proxy's error pages and the dashboard.
//! * [`wire`]: the admin API's JSON views of apps, events and providers, which the CLI reads
//!   back (so neither front door imports the other).
//!
//! [`run`] takes an already-validated [`Config`] and already-bound listeners, so tests bind
//! port 0 and the binary stays thin.

pub mod address;
pub mod admin;
pub mod catalog;
pub mod child_env;
pub mod cli;
pub mod config;
pub mod events;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod hooks;
pub mod html;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod providers;
pub mod proxy;
pub mod registry;
pub mod rules;
pub mod savings;
pub mod scheduler;
pub mod schedules;
pub mod secret;
pub mod settings;
pub mod spaces;
pub mod store;
pub mod table;
pub mod wire;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use config::Config;
use lifecycle::Lifecycle;
use providers::ProviderError;
use proxy::Proxy;
use scheduler::Scheduler;

pub use model::DEFAULT_SPACE;

/// The sockets the engine serves, bound by the caller.
#[derive(Debug)]
pub struct Listeners {
    /// The proxy listener.
    pub proxy: TcpListener,
    /// The TLS proxy listener (`tls.listen`); served only when the config has `tls`.
    pub tls: Option<TcpListener>,
    /// The admin API, dashboard and metrics listener (`admin.listen`); none: not served.
    pub admin: Option<TcpListener>,
}

/// Why the engine could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The proxy's worker threads could not be set up.
    #[error("cannot start the proxy: {0}")]
    Proxy(std::io::Error),
    /// The TLS settings for upstreams are unusable.
    #[error(transparent)]
    Tls(#[from] proxy::forward::TlsError),
    /// The TLS listener's certificate or key is unusable.
    #[error(transparent)]
    ServerTls(#[from] proxy::tls::ServerTlsError),
    /// The database cannot be opened or read.
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
    /// The registry's settings are unusable.
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
    /// Hosted mode's master key does not open the database's spaces.
    #[error("hosted mode: {0}")]
    MasterKey(String),
    /// A provider could not be set up from its config.
    #[error("provider `{id}`: {error}")]
    Provider {
        /// The provider's id.
        id: String,
        /// What failed.
        error: ProviderError,
    },
}

/// A started engine: providers built, apps discovered once, not serving yet.
pub struct Engine {
    /// The configuration it runs.
    config: Config,
    /// Apps, routes and wakes of the default space.
    lifecycle: Arc<Lifecycle>,
    /// The other spaces: the config's, and in hosted mode the stored ones.
    spaces: Arc<spaces::Spaces>,
    /// TLS settings for `https` upstreams, checked at start.
    tls: proxy::forward::UpstreamTls,
    /// The TLS listener's certificate, read at start and again on SIGHUP.
    server_tls: Option<Arc<proxy::tls::ServerTls>>,
    /// Writes the catalog and the events in the background.
    catalog: catalog::Catalog,
    /// The registry's background work (connection, leader lease, notices).
    registry_task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Builds every provider and runs discovery once. Provider listing errors are reported
    /// as events and do not prevent starting.
    pub async fn start(config: Config) -> Result<Engine, RunError> {
        // No command the engine runs (process apps, hooks) inherits one of these.
        child_env::withhold(config.secrets());
        child_env::withhold_variables(config::SECRET_VARIABLES);
        let tls = proxy::forward::upstream_tls(config.upstream_ca_file.as_deref())?;
        let server_tls = match &config.tls {
            Some(listener) => Some(Arc::new(proxy::tls::ServerTls::load(
                &listener.cert,
                &listener.key,
            )?)),
            None => None,
        };
        let registry = config.registry.build()?;
        let lifecycle = spaces::lifecycle(
            &config.default_space(),
            &registry,
            address::UpstreamScope::Any,
        )?;
        if registry.is_shared() && lifecycle.providers().iter().any(|p| p.is_local()) {
            tracing::info!(
                "registry: `process` apps are each instance's own; only platform apps are shared"
            );
        }
        let registry_task = tokio::spawn(Arc::clone(&registry).run());
        let store = store::open(config.database_url.expose()).await?;
        let catalog =
            catalog::Catalog::start(Arc::clone(&store), &lifecycle, config.events_retention)
                .await?;
        let default = admin::SpaceAccess {
            id: DEFAULT_SPACE.to_owned(),
            lifecycle: Arc::clone(&lifecycle),
            domains: Arc::new(config.domains.clone()),
            tokens: Vec::new(),
        };
        let spaces = Arc::new(spaces::Spaces::start(&config, default, &registry, &store).await?);
        // A moment for the registry to connect and settle who leads, so the first
        // discovery is the leader's (it never waits long for a Redis that is not there).
        registry.settle(registry::SETTLE_WITHIN).await;
        lifecycle.discover().await;
        // Where each schedule stands (a sleep window that refuses wakes, say) is known
        // before the first request, not from the scheduler's first tick on.
        lifecycle.apply_schedules();
        spaces.discover().await;
        Ok(Engine {
            config,
            lifecycle,
            spaces,
            tls,
            server_tls,
            catalog,
            registry_task,
        })
    }

    /// The default space's lifecycle (registry, routes, events).
    pub fn lifecycle(&self) -> &Arc<Lifecycle> {
        &self.lifecycle
    }

    /// The other spaces' ids and lifecycles.
    pub fn spaces(&self) -> Vec<(String, Arc<Lifecycle>)> {
        self.spaces.lifecycles()
    }

    /// Reads the TLS listener's certificate and key again (what SIGHUP does); on failure
    /// the certificate in use stays.
    pub fn reload_tls(&self) -> Result<(), proxy::tls::ServerTlsError> {
        match &self.server_tls {
            Some(tls) => tls.reload(),
            None => Ok(()),
        }
    }

    /// What the admin API works with.
    pub fn admin_state(&self) -> admin::AdminState {
        admin::AdminState {
            lifecycle: Arc::clone(&self.lifecycle),
            store: self.catalog.store(),
            domains: Arc::new(self.config.domains.clone()),
            token: self.config.admin.token.clone(),
            metrics_auth: self.config.admin.metrics_auth,
            savings: Arc::new(self.config.savings.clone()),
            space: DEFAULT_SPACE.to_owned(),
            caller: admin::Caller::Admin,
            spaces: Arc::clone(&self.spaces),
        }
    }

    /// The managed apps as a table.
    pub fn apps_table(&self) -> String {
        let mut out = table::apps_table(&self.lifecycle.apps(), &self.config.domains);
        for space in self.spaces.access().iter().skip(1) {
            out.push_str(&format!("\nspace {}:\n", space.id));
            out.push_str(&table::apps_table(&space.lifecycle.apps(), &space.domains));
        }
        out
    }

    /// Serves until `shutdown` completes: stops accepting, drains in-flight requests (at most
    /// `proxy.drain_timeout`), stops the background loops, then stops what providers started
    /// locally.
    pub async fn serve(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), RunError> {
        let scheduler = Scheduler::start(&self.lifecycle, &self.config.discovery);
        self.spaces.serve().await;
        let sync = self.spaces.start_sync();
        tracing::info!(registry = %self.lifecycle.registry().health().detail, "registry");
        let reloader = self
            .server_tls
            .clone()
            .map(|tls| tokio::spawn(reload_on_sighup(tls)));
        if listeners.tls.is_some() && self.server_tls.is_none() {
            tracing::warn!("a TLS listener was given but the config has no `tls`: not served");
        }
        let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let admin = listeners.admin.map(|listener| {
            let state = self.admin_state();
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = admin_stopped.await;
                };
                if let Err(error) = admin::serve(listener, state, shutdown).await {
                    tracing::error!(%error, "the admin listener failed");
                }
            })
        });
        let system_api =
            self.config
                .admin
                .system_api
                .clone()
                .map(|token| proxy::system::SystemApi {
                    token,
                    lifecycle: Arc::clone(&self.lifecycle),
                    store: self.catalog.store(),
                });
        let proxy = Arc::new(
            Proxy::new(
                Arc::clone(&self.lifecycle),
                &self.config,
                self.tls.clone(),
                self.server_tls.clone(),
            )
            .with_system_api(system_api)
            .with_spaces(self.spaces.routes()),
        );
        let served = proxy
            .serve(
                listeners.proxy,
                listeners.tls.filter(|_| self.server_tls.is_some()),
                shutdown,
                self.config.shutdown_timeout,
                self.config.workers,
            )
            .await;
        if let Some(reloader) = reloader {
            reloader.abort();
        }
        let _ = admin_stop.send(());
        if let Some(admin) = admin {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), admin).await;
        }
        if let Some(sync) = sync {
            sync.abort();
        }
        scheduler.stop().await;
        self.spaces.shutdown().await;
        self.lifecycle.registry().release().await;
        self.registry_task.abort();
        self.lifecycle.shutdown().await;
        let store = self.catalog.store();
        self.catalog.finish().await;
        store.close().await;
        tracing::info!("stopped");
        served.map_err(RunError::Proxy)
    }
}

/// Reads the TLS listener's certificate again on every SIGHUP (certificate renewals).
async fn reload_on_sighup(tls: Arc<proxy::tls::ServerTls>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGHUP: the TLS certificate will not be reloaded");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
            Err(error) => {
                tracing::error!(%error, "SIGHUP: TLS certificate not reloaded; the previous one stays in use");
            }
        }
    }
}

/// Starts the engine and serves until `shutdown` completes.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let engine = Engine::start(config).await?;
    tracing::info!("managed apps:\n{}", engine.apps_table());
    engine.serve(listeners, shutdown).await
}
