//! Paastis puts idle PaaS apps to sleep and wakes them on the first request.
//!
//! # Layout
//!
//! * [`config`]: the `paastis.yml` file model, its sources and its validation into typed
//!   values (every error collected, with its path).
//! * [`providers`]: one trait for every platform account, one module per platform
//!   ([`providers::process`]: local commands, the embedded default).
//! * [`lifecycle`]: the registry of managed apps and their state machine (Asleep, Waking,
//!   Awake, Stopping, Failed); the only place that starts and stops apps.
//! * [`patterns`]: globs and `re:` regexes from the config.
//! * [`proxy`]: the request path as named phases (route, admit, touch, wake, forward).
//! * [`scheduler`]: discovery, the idle check, and exits reported by providers.
//! * [`events`]: typed records of every transition.
//! * [`secret`]: the redacting string type every credential is held in.
//! * [`table`]: the plain-text table of managed apps.
//!
//! [`run`] takes an already-validated [`Config`] and already-bound listeners, so tests bind
//! port 0 and the binary stays thin.

pub mod config;
pub mod events;
pub mod lifecycle;
pub mod patterns;
pub mod providers;
pub mod proxy;
pub mod scheduler;
pub mod secret;
pub mod table;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use config::Config;
use lifecycle::Lifecycle;
use providers::ProviderError;
use proxy::Proxy;
use scheduler::Scheduler;

/// The implicit space of single-user setups.
pub const DEFAULT_SPACE: &str = "default";

/// The sockets the engine serves, bound by the caller.
#[derive(Debug)]
pub struct Listeners {
    /// The proxy listener.
    pub proxy: TcpListener,
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
    /// Apps, routes and wakes.
    lifecycle: Arc<Lifecycle>,
    /// TLS settings for `https` upstreams, checked at start.
    tls: proxy::forward::UpstreamTls,
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
        let tls = proxy::forward::upstream_tls(config.upstream_ca_file.as_deref())?;
        let mut providers = Vec::with_capacity(config.providers.len());
        for provider in &config.providers {
            providers.push(provider.build().map_err(|error| RunError::Provider {
                id: provider.id().to_owned(),
                error,
            })?);
        }
        let lifecycle = Lifecycle::new(providers, config.defaults.clone());
        lifecycle.discover().await;
        Ok(Engine {
            config,
            lifecycle,
            tls,
        })
    }

    /// The lifecycle (registry, routes, events).
    pub fn lifecycle(&self) -> &Arc<Lifecycle> {
        &self.lifecycle
    }

    /// The managed apps as a table.
    pub fn apps_table(&self) -> String {
        table::apps_table(&self.lifecycle.apps(), &self.config.domains)
    }

    /// Serves until `shutdown` completes: stops accepting, drains in-flight requests (at most
    /// `proxy.drain_timeout`), stops the background loops, then stops what providers started
    /// locally.
    pub async fn serve(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), RunError> {
        let scheduler = Scheduler::start(&self.lifecycle, self.config.discovery.every);
        let proxy = Arc::new(Proxy::new(
            Arc::clone(&self.lifecycle),
            self.config.domains.clone(),
            self.tls.clone(),
            self.config.activity.clone(),
            self.config.limits,
            self.config.upstream_timeouts,
            self.config.preserve_host,
        ));
        let served = proxy
            .serve(
                listeners.proxy,
                shutdown,
                self.config.shutdown_timeout,
                self.config.workers,
            )
            .await;
        scheduler.stop().await;
        self.lifecycle.shutdown().await;
        tracing::info!("stopped");
        served.map_err(RunError::Proxy)
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
