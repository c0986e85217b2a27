//! The composition root: builds every component from the validated [`Config`] (the
//! registry, the store and its catalog, each space's lifecycle and providers, the spaces
//! runtime, the scheduler, the proxy, the admin API) and runs them until shutdown.
//!
//! It is the one place that knows how the parts fit; it holds no logic of its own beyond
//! start and stop order. Nothing but the crate root and the binary imports it.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::{Config, SpaceConfig};
use crate::lifecycle::Lifecycle;
use crate::model::DEFAULT_SPACE;
use crate::providers::ProviderError;
use crate::proxy::{self, Proxy};
use crate::registry::{self, Registry};
use crate::scheduler::Scheduler;
use crate::spaces::{self, BuildError, MasterKey};
use crate::{address, admin, catalog, child_env, gate, store, table};

mod reload;

pub use reload::{ConfigSource, LoadFn, Trigger};

/// Apps listed per space in the log at start (all of them: `paastis apps`, the dashboard).
pub const LOGGED_APPS: usize = 50;

/// The sockets the engine serves, bound by the caller.
#[derive(Debug)]
pub struct Listeners {
    /// The proxy listener.
    pub proxy: TcpListener,
    /// The TLS proxy listener (`tls.listen`); served only when the config has `tls`.
    pub tls: Option<TcpListener>,
    /// The admin API, dashboard and metrics listener (`admin.listen`); none: not served.
    pub admin: Option<TcpListener>,
    /// The gate's own listener (`gate.listen`); none: the gate is served on the admin
    /// listener and under `admin.host` only.
    pub gate: Option<TcpListener>,
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
    /// The database cannot be opened or read. Not a `source`: the message already holds it,
    /// and the binary prints the chain (`{:#}`), which would say it twice.
    #[error("database: {0}")]
    Store(store::StoreError),
    /// The registry's settings are unusable.
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
    /// Hosted mode's master key does not open the database's spaces.
    #[error("hosted mode: {0}")]
    MasterKey(String),
    /// The traces' exporter cannot be set up (its TLS settings).
    #[error(transparent)]
    Traces(#[from] crate::traces::ExportError),
    /// A provider could not be set up from its config.
    #[error("provider `{id}`: {error}")]
    Provider {
        /// The provider's id.
        id: String,
        /// What failed.
        error: ProviderError,
    },
}

impl From<store::StoreError> for RunError {
    fn from(error: store::StoreError) -> Self {
        RunError::Store(error)
    }
}

impl From<BuildError> for RunError {
    fn from(BuildError { id, error }: BuildError) -> RunError {
        RunError::Provider { id, error }
    }
}

impl From<spaces::OpenError> for RunError {
    fn from(error: spaces::OpenError) -> RunError {
        match error {
            spaces::OpenError::Store(error) => RunError::Store(error),
            spaces::OpenError::MasterKey(message) => RunError::MasterKey(message),
        }
    }
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
    /// Where the configuration is read again from, for reloads (none: it cannot be).
    source: Option<ConfigSource>,
    /// The running configuration's revision and reloads, as the admin API shows them.
    config_status: Arc<admin::config::ConfigStatus>,
    /// The admin API's live event streams (ended when the engine stops).
    streams: Arc<admin::stream::Streams>,
    /// Where spans go (off unless the `OTEL_*` variables ask for traces).
    tracer: crate::traces::Tracer,
    /// Sends the spans; flushed when the engine stops.
    exporter: Option<crate::traces::Exporter>,
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
        child_env::withhold_variables(crate::config::SECRET_VARIABLES);
        let tls = proxy::forward::upstream_tls(config.upstream_ca_file.as_deref())?;
        let server_tls = match &config.tls {
            Some(listener) => Some(Arc::new(proxy::tls::ServerTls::load(
                &listener.cert,
                &listener.key,
            )?)),
            None => None,
        };
        let (tracer, exporter) = match &config.traces {
            Some(settings) => {
                let (tracer, exporter) = crate::traces::Tracer::start(settings.clone())?;
                (tracer, Some(exporter))
            }
            None => (crate::traces::Tracer::off(), None),
        };
        let registry = config.registry.build()?;
        let lifecycle = space_lifecycle(
            &config.default_space(),
            &registry,
            address::UpstreamScope::Any,
            &tracer,
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
        let default = spaces::SpaceAccess {
            id: DEFAULT_SPACE.to_owned(),
            lifecycle: Arc::clone(&lifecycle),
            domains: Arc::new(config.domains.clone()),
            tokens: Vec::new(),
        };
        let mut configured = Vec::with_capacity(config.spaces.len());
        for space in &config.spaces {
            let lifecycle =
                space_lifecycle(space, &registry, address::UpstreamScope::Any, &tracer)?;
            configured.push((space.clone(), lifecycle));
        }
        let build: spaces::Build = {
            let registry = Arc::clone(&registry);
            let tracer = tracer.clone();
            Arc::new(move |space, upstreams| space_lifecycle(space, &registry, upstreams, &tracer))
        };
        let spaces = Arc::new(
            spaces::Spaces::start(spaces::Parts {
                configured,
                hosted: config.hosted.clone(),
                retention: config.events_retention,
                default,
                build,
                registry: Arc::clone(&registry),
                store: Arc::clone(&store),
            })
            .await?,
        );
        // A moment for the registry to connect and settle who leads, so the first
        // discovery is the leader's (it never waits long for a Redis that is not there).
        registry.settle(registry::SETTLE_WITHIN).await;
        lifecycle.discover().await;
        // Where each schedule stands (a sleep window that refuses wakes, say) is known
        // before the first request, not from the scheduler's first tick on.
        lifecycle.apply_schedules();
        spaces.discover().await;
        let config_status = Arc::new(admin::config::ConfigStatus::new(crate::wire::ConfigView {
            revision: config.revision.clone(),
            loaded_at: crate::model::rfc3339(std::time::SystemTime::now()),
            file: None,
            watched: false,
            last_reload: None,
        }));
        Ok(Engine {
            source: None,
            config_status,
            streams: Arc::new(admin::stream::Streams::new(
                config.admin.events_stream.clone(),
            )),
            config,
            lifecycle,
            spaces,
            tls,
            server_tls,
            catalog,
            registry_task,
            tracer,
            exporter,
        })
    }

    /// Where the configuration comes from, so it can be reloaded (SIGHUP, a change of the
    /// file, `POST /api/v1/config/reload`). Without one, a reload is refused.
    pub fn with_source(mut self, source: ConfigSource) -> Engine {
        let file = source.file.as_ref().map(|file| file.display().to_string());
        let watched = file.is_some() && self.config.reload.watch;
        let view = self.config_status.view.load_full();
        self.config_status
            .view
            .store(Arc::new(crate::wire::ConfigView {
                file,
                watched,
                ..crate::wire::ConfigView::clone(&view)
            }));
        self.source = Some(source);
        self
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
            hosts: Arc::new(self.config.admin.hosts.clone()),
            savings: Arc::new(self.config.savings.clone()),
            space: DEFAULT_SPACE.to_owned(),
            caller: admin::Caller::Admin,
            spaces: Arc::clone(&self.spaces),
            config: Arc::clone(&self.config_status),
            streams: Arc::clone(&self.streams),
        }
    }

    /// The proxy over every space's routes, set up from the `proxy` settings.
    fn proxy(&self) -> Proxy {
        Proxy::new(
            Arc::clone(&self.lifecycle),
            self.config.domains.clone(),
            &self.config.proxy_settings(),
            self.tls.clone(),
            self.server_tls.clone(),
        )
        .with_spaces(self.spaces.routes())
        .with_tracer(self.tracer.clone())
    }

    /// The admin router, with the gate's endpoints that are on.
    fn admin_router(&self, gate: Option<&Arc<gate::Gate>>) -> axum::Router {
        let router = admin::router(self.admin_state());
        let router = match gate {
            Some(gate) => router.merge(gate::router(Arc::clone(gate))),
            None => router,
        };
        crate::traces::traced(router, &self.tracer)
    }

    /// `admin.host`: the admin router (and the gate) answers the proxy's requests for those
    /// names (the proxy gets it as an opaque handler; it does not know the admin).
    fn admin_handoff(&self, router: axum::Router) -> Option<proxy::handoff::HandOff> {
        let hosts = self.config.admin.hosts.clone();
        if hosts.is_empty() {
            return None;
        }
        let handler: proxy::handoff::HandOffHandler =
            Arc::new(move |request| Box::pin(admin::answer(router.clone(), request)));
        Some(proxy::handoff::HandOff::new(hosts, handler))
    }

    /// The managed apps as a table.
    pub fn apps_table(&self) -> String {
        self.apps_table_head(usize::MAX)
    }

    /// [`Engine::apps_table`] with at most `limit` apps per space (for the log at start).
    pub fn apps_table_head(&self, limit: usize) -> String {
        let mut out = table::apps_table_head(&self.lifecycle.apps(), &self.config.domains, limit);
        for space in self.spaces.access().iter().skip(1) {
            out.push_str(&format!("\nspace {}:\n", space.id));
            out.push_str(&table::apps_table_head(
                &space.lifecycle.apps(),
                &space.domains,
                limit,
            ));
        }
        out
    }

    /// Serves until `shutdown` completes: stops accepting, drains in-flight requests (at most
    /// `proxy.drain_timeout`), stops the background loops, then stops what providers started
    /// locally.
    pub async fn serve(
        mut self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), RunError> {
        let scheduler = Scheduler::start(&self.lifecycle, &self.config.discovery);
        self.spaces.serve().await;
        let sync = self.spaces.start_sync();
        tracing::info!(registry = %self.lifecycle.registry().health().detail, "registry");
        let reloader = Arc::new(reload::Reloader::new(
            self.source.clone(),
            self.config.clone(),
            Arc::clone(&self.lifecycle),
            Arc::clone(&self.spaces),
            scheduler,
            Arc::clone(&self.config_status),
        ));
        if self.source.is_some() {
            let weak = Arc::downgrade(&reloader);
            let reload: admin::config::ReloadFn = Arc::new(move |text, apply| {
                let reloader = weak.upgrade();
                Box::pin(async move {
                    match reloader {
                        Some(reloader) => {
                            reloader.reload(text.as_deref(), apply, Trigger::Api).await
                        }
                        None => Err(admin::config::Refusal::Unavailable(
                            "the engine is stopping".to_owned(),
                        )),
                    }
                })
            });
            let _ = self.config_status.reload.set(reload);
        }
        let watcher = tokio::spawn(Arc::clone(&reloader).watch());
        let hangups = tokio::spawn(Arc::clone(&reloader).on_hangup(self.server_tls.clone()));
        if listeners.tls.is_some() && self.server_tls.is_none() {
            tracing::warn!("a TLS listener was given but the config has no `tls`: not served");
        }
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
        // The proxy's routes, for the gate; the proxy itself gets the admin router (with
        // the gate) for `admin.host`, once both are built.
        let routes = Arc::new(self.proxy());
        let gate = self.config.gate.enabled().then(|| {
            Arc::new(gate::Gate::new(
                Arc::clone(&routes),
                self.config.gate.clone(),
                self.config.trusted_proxies.clone(),
            ))
        });
        let (admin_stop, admin_stopped) = tokio::sync::watch::channel(false);
        let stopped = move |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let admin = listeners.admin.map(|listener| {
            let router = self.admin_router(gate.as_ref());
            let shutdown = stopped(admin_stopped.clone());
            tokio::spawn(async move {
                if let Err(error) = admin::serve(listener, router, shutdown).await {
                    tracing::error!(%error, "the admin listener failed");
                }
            })
        });
        let gate_task = match (listeners.gate, &gate) {
            (Some(listener), Some(gate)) => {
                let router = crate::traces::traced(gate::router(Arc::clone(gate)), &self.tracer);
                let shutdown = stopped(admin_stopped.clone());
                Some(tokio::spawn(async move {
                    if let Err(error) = gate::serve(listener, router, shutdown).await {
                        tracing::error!(%error, "the gate listener failed");
                    }
                }))
            }
            (Some(_), None) => {
                tracing::warn!(
                    "a gate listener was given but the config enables no gate: not served"
                );
                None
            }
            (None, _) => None,
        };
        let proxy = Arc::new(
            self.proxy()
                .with_system_api(system_api)
                .with_handoff(self.admin_handoff(self.admin_router(gate.as_ref()))),
        );
        // The live event streams end as the engine starts to stop, each with its last
        // message, before the proxy drains: through `admin.host` they are requests in
        // progress that would otherwise be cut off at the end of the drain.
        let streams = Arc::clone(&self.streams);
        let shutdown = async move {
            shutdown.await;
            streams.close_all();
        };
        let served = proxy
            .serve(
                listeners.proxy,
                listeners.tls.filter(|_| self.server_tls.is_some()),
                shutdown,
                self.config.shutdown_timeout,
                self.config.workers,
            )
            .await;
        watcher.abort();
        hangups.abort();
        self.streams.close_all();
        let _ = admin_stop.send(true);
        if let Some(admin) = admin {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), admin).await;
        }
        if let Some(gate_task) = gate_task {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), gate_task).await;
        }
        if let Some(sync) = sync {
            sync.abort();
        }
        reloader.stop_scheduler().await;
        self.spaces.shutdown().await;
        self.lifecycle.registry().release().await;
        self.registry_task.abort();
        self.lifecycle.shutdown().await;
        let store = self.catalog.store();
        self.catalog.finish().await;
        store.close().await;
        // Last: the spans of the stops above are sent too.
        if let Some(exporter) = self.exporter.take() {
            exporter.shutdown(std::time::Duration::from_secs(5)).await;
        }
        tracing::info!("stopped");
        served.map_err(RunError::Proxy)
    }
}

/// A space's lifecycle from its settings, with its providers built (outside the default
/// space, a provider's error names it `<space>/<provider>`): the one builder of every
/// space, from the file or from the API.
pub fn space_lifecycle(
    space: &SpaceConfig,
    registry: &Arc<dyn Registry>,
    upstreams: address::UpstreamScope,
    tracer: &crate::traces::Tracer,
) -> Result<Arc<Lifecycle>, BuildError> {
    let mut providers = Vec::with_capacity(space.providers.len());
    for provider in &space.providers {
        providers.push(provider.build().map_err(|error| BuildError {
            id: if space.id == DEFAULT_SPACE {
                provider.id().to_owned()
            } else {
                format!("{}/{}", space.id, provider.id())
            },
            error,
        })?);
    }
    let lifecycle = Lifecycle::with_registry(
        providers,
        space.lifecycle_settings(upstreams),
        Arc::clone(registry),
    );
    lifecycle.trace_with(tracer.clone());
    Ok(lifecycle)
}

/// Replaces the master key of the database's stored spaces (`paastis rekey`): see
/// [`spaces::rekey`]. Returns how many spaces were sealed again.
pub async fn rekey(config: &Config, new: &MasterKey) -> Result<usize, RunError> {
    let hosted = config.hosted.as_ref().ok_or_else(|| {
        RunError::MasterKey("rekey needs hosted mode (`hosted: true`)".to_owned())
    })?;
    let store = store::open(config.database_url.expose()).await?;
    let result = spaces::rekey(&store, &hosted.key, new).await;
    store.close().await;
    Ok(result?)
}

/// Starts the engine and serves until `shutdown` completes.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let engine = Engine::start(config).await?;
    tracing::info!("managed apps:\n{}", engine.apps_table_head(LOGGED_APPS));
    engine.serve(listeners, shutdown).await
}
