//! Providers: one configured account on one platform, behind one object-safe trait.
//!
//! A provider only talks to its platform (or, for `process`, to local processes): it lists
//! apps, reports their state, starts and stops them. It never decides *when* to do so and
//! never touches the registry; that is the lifecycle's job.

pub mod api;
pub mod clever_cloud;
#[cfg(test)]
pub mod fake;
pub mod formation;
pub mod heroku;
pub mod process;
pub mod scalingo;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::model::PolicyOverride;

use crate::model::{Formation, Upstream};
pub use formation::Started;

/// The closed set of provider configurations, one variant per platform.
#[derive(Debug, Clone)]
pub enum ProviderConfig {
    /// Local commands (the embedded default).
    Process(process::ProcessConfig),
    /// A Scalingo account.
    Scalingo(scalingo::ScalingoConfig),
    /// A Heroku account.
    Heroku(heroku::HerokuConfig),
    /// A Clever Cloud account.
    CleverCloud(clever_cloud::CleverConfig),
}

impl ProviderConfig {
    /// The provider's id, unique in its space.
    pub fn id(&self) -> &str {
        match self {
            ProviderConfig::Process(config) => &config.id,
            ProviderConfig::Scalingo(config) => &config.id,
            ProviderConfig::Heroku(config) => &config.id,
            ProviderConfig::CleverCloud(config) => &config.id,
        }
    }

    /// Its type as the config names it (`process`, `scalingo`, `heroku`, `clever-cloud`).
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderConfig::Process(_) => "process",
            ProviderConfig::Scalingo(_) => "scalingo",
            ProviderConfig::Heroku(_) => "heroku",
            ProviderConfig::CleverCloud(_) => "clever-cloud",
        }
    }

    /// The credentials it holds (none for `process`).
    pub fn secrets(&self) -> Vec<&crate::secret::Secret> {
        match self {
            ProviderConfig::Process(_) => Vec::new(),
            ProviderConfig::Scalingo(config) => vec![&config.token],
            ProviderConfig::Heroku(config) => vec![&config.token],
            ProviderConfig::CleverCloud(config) => match &config.auth {
                clever_cloud::CleverAuth::OAuth {
                    consumer_key,
                    consumer_secret,
                    token,
                    secret,
                } => vec![consumer_key, consumer_secret, token, secret],
                clever_cloud::CleverAuth::ApiToken(token) => vec![token],
            },
        }
    }

    /// Builds the provider client.
    pub fn build(&self) -> Result<Arc<dyn Provider>, ProviderError> {
        match self {
            ProviderConfig::Process(config) => Ok(Arc::new(process::ProcessProvider::new(config)?)),
            ProviderConfig::Scalingo(config) => Ok(Arc::new(scalingo::Scalingo::new(config)?)),
            ProviderConfig::Heroku(config) => Ok(Arc::new(heroku::Heroku::new(config)?)),
            ProviderConfig::CleverCloud(config) => {
                Ok(Arc::new(clever_cloud::CleverCloud::new(config)?))
            }
        }
    }
}

/// What ran until a stop: kept to restore on wake, and to price the time asleep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stopped {
    /// The process types and amounts that ran, when the platform forgets them on a stop
    /// (`None`: nothing to remember, or not known).
    pub formation: Option<Formation>,
    /// Each process type's size as the platform names it (`M`, `Standard-1X`), where the
    /// platform says.
    pub sizes: BTreeMap<String, String>,
}

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
    /// The listing does not tell (Heroku's app list carries no state): the engine leaves a
    /// known app as it is and checks a new one when a request needs it.
    Unknown,
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
    /// Extra route keys besides the name (Clever Cloud's `app_<uuid>` and `app-<uuid>`).
    pub aliases: Vec<String>,
}

/// An app that stopped without being asked to (crash, exit).
#[derive(Debug, Clone)]
pub struct AppExited {
    /// The app's name.
    pub app: String,
    /// What happened, e.g. `exited with status 1`.
    pub reason: String,
}

/// What went wrong talking to a provider, and whether trying again can help. Messages never
/// carry a credential.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The app is not known to the provider.
    #[error("app `{0}` not found")]
    NotFound(String),
    /// The credentials were refused.
    #[error("bad credentials: {0}")]
    Unauthorized(String),
    /// The platform's rate limit was hit (and retries did not get through).
    #[error("rate limited by the platform{}", .retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// What the platform said to wait, if it did.
        retry_after: Option<Duration>,
    },
    /// The platform could not be reached (connection, TLS, timeout).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The platform refused the request (4xx): retrying the same call will not help.
    #[error("refused: {0}")]
    Rejected(String),
    /// The platform (or the local system) failed the operation.
    #[error("{0}")]
    Failed(String),
}

impl ProviderError {
    /// Whether the same call may succeed later.
    pub fn retryable(&self) -> bool {
        match self {
            ProviderError::NotFound(_)
            | ProviderError::Unauthorized(_)
            | ProviderError::Rejected(_) => false,
            ProviderError::RateLimited { .. }
            | ProviderError::Unreachable(_)
            | ProviderError::Failed(_) => true,
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

    /// Starts the app with this formation (or, when none is known, with what it has, or
    /// one web process); returns once the platform accepted it. The platform is the truth:
    /// process types it no longer has are not started, and what the start learned of the app
    /// (such as a new address) is returned.
    async fn start(
        &self,
        app: &str,
        formation: Option<&Formation>,
    ) -> Result<Started, ProviderError>;

    /// Stops the app (scale to zero); returns once it is stopped or the platform accepted it,
    /// with what ran (to restore on wake, and to price the time asleep).
    async fn stop(&self, app: &str) -> Result<Stopped, ProviderError>;

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

    /// True when its apps belong to this engine instance alone (local processes): with
    /// several instances, each manages its own and shares nothing about them.
    fn is_local(&self) -> bool {
        false
    }

    /// The account's calls per minute and the calls of the last minute, when the engine
    /// limits them.
    fn rate_limit(&self) -> Option<(usize, usize)> {
        None
    }
}
