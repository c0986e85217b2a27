//! Providers: one configured account on one platform, behind one object-safe trait.
//!
//! A provider only talks to its platform (or, for `process`, to local processes): it lists
//! apps, reports their state, starts and stops them. It never decides *when* to do so and
//! never touches the registry; that is the lifecycle's job.

#[cfg(test)]
pub mod fake;
pub mod process;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::HeaderValue;
use http::uri::{Authority, Scheme};
use tokio::sync::broadcast;

use crate::config::PolicyOverride;

/// The closed set of provider configurations, one variant per platform.
#[derive(Debug, Clone)]
pub enum ProviderConfig {
    /// Local commands (the embedded default).
    Process(process::ProcessConfig),
}

impl ProviderConfig {
    /// The provider's id, unique in its space.
    pub fn id(&self) -> &str {
        match self {
            ProviderConfig::Process(config) => &config.id,
        }
    }

    /// Builds the provider client.
    pub fn build(&self) -> Result<Arc<dyn Provider>, ProviderError> {
        match self {
            ProviderConfig::Process(config) => Ok(Arc::new(process::ProcessProvider::new(config)?)),
        }
    }
}

/// Process types and their amounts (`web: 2, worker: 1`), restored exactly on wake.
pub type Formation = BTreeMap<String, u32>;

/// What a provider says about one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppStatus {
    /// Not running (scaled to zero, or never started).
    Stopped,
    /// Starting: accepted by the platform, not ready yet.
    Starting,
    /// Running and ready to receive requests.
    Running,
    /// Not running because something went wrong (crash, failed start); the reason says what.
    Failed(String),
}

/// Where requests for an app are forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host and port of the upstream.
    pub authority: Authority,
    /// `Host` header sent upstream, built once (PaaS routers route by it).
    host_header: HeaderValue,
}

impl Upstream {
    /// An upstream at this scheme and authority.
    pub fn new(scheme: Scheme, authority: Authority) -> Upstream {
        // An authority is always a valid header value; the fallback is never taken.
        let host_header = HeaderValue::from_str(authority.as_str())
            .unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        Upstream {
            scheme,
            authority,
            host_header,
        }
    }

    /// A plain-HTTP upstream on the loopback interface.
    pub fn local(port: u16) -> Upstream {
        let authority = Authority::try_from(format!("127.0.0.1:{port}"))
            .unwrap_or_else(|_| Authority::from_static("127.0.0.1"));
        Upstream::new(Scheme::HTTP, authority)
    }

    /// The `Host` header for requests to this upstream.
    pub fn host_header(&self) -> &HeaderValue {
        &self.host_header
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

/// One app as listed by its provider.
#[derive(Debug, Clone)]
pub struct AppInfo {
    /// The app's name on its platform (also its main route key).
    pub name: String,
    /// Its state now.
    pub status: AppStatus,
    /// Where to forward its requests; `None` when the platform does not say yet.
    pub upstream: Option<Upstream>,
    /// Its formation when running (or the one it would start with).
    pub formation: Formation,
    /// Per-app policy given by the provider's own config (process apps).
    pub policy: PolicyOverride,
}

/// An app that stopped without being asked to (crash, exit).
#[derive(Debug, Clone)]
pub struct AppExited {
    /// The app's name.
    pub app: String,
    /// What happened, e.g. `exited with status 1`.
    pub reason: String,
}

/// What went wrong talking to a provider, and whether trying again can help.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The app is not known to the provider.
    #[error("app `{0}` not found")]
    NotFound(String),
    /// The platform (or the local system) refused or failed the operation.
    #[error("{0}")]
    Failed(String),
}

impl ProviderError {
    /// Whether the same call may succeed later.
    pub fn retryable(&self) -> bool {
        match self {
            ProviderError::NotFound(_) => false,
            ProviderError::Failed(_) => true,
        }
    }
}

/// How often the lifecycle polls a starting app: the first interval, growing by half each
/// time up to the second.
#[derive(Debug, Clone, Copy)]
pub struct PollIntervals {
    /// First wait after the start call.
    pub first: Duration,
    /// Longest wait between two polls.
    pub max: Duration,
}

/// One provider account. Object-safe: the engine holds `Arc<dyn Provider>`.
#[async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    /// The provider's id, unique in its space (`local`, `scalingo-fr1`).
    fn id(&self) -> &str;

    /// The platform, as written in `type:` (`process`, `scalingo`).
    fn kind(&self) -> &'static str;

    /// Every app of the account, with its state, in one listing.
    async fn list_apps(&self) -> Result<Vec<AppInfo>, ProviderError>;

    /// The state of one app now.
    async fn status(&self, app: &str) -> Result<AppStatus, ProviderError>;

    /// Starts the app with this formation; returns once the platform accepted it.
    async fn start(&self, app: &str, formation: &Formation) -> Result<(), ProviderError>;

    /// Stops the app (scale to zero); returns once it is stopped or the platform accepted it.
    async fn stop(&self, app: &str) -> Result<(), ProviderError>;

    /// How often to poll a starting app.
    fn poll_intervals(&self) -> PollIntervals {
        PollIntervals {
            first: Duration::from_millis(250),
            max: Duration::from_secs(2),
        }
    }

    /// Apps that stop on their own, as they do, for providers that can tell (local
    /// processes); others are seen by discovery.
    fn exits(&self) -> Option<broadcast::Receiver<AppExited>> {
        None
    }

    /// Called once at engine shutdown: stop what this provider started and must not outlive
    /// the engine (local processes). Platforms keep their apps as they are.
    async fn shutdown(&self) {}
}
