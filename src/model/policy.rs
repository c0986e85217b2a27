//! What the engine does with one app (idle time, wake timeout, how requests wait, readiness)
//! and which requests do not count as activity.

use std::fmt;
use std::time::Duration;

/// `activity`: requests that do not count (uptime monitors, health checks).
#[derive(Debug, Clone, Default)]
pub struct Activity {
    /// User agents (plain text matches anywhere, ignoring case; globs; `re:` regexes).
    pub ignore_user_agents: Vec<crate::model::Pattern>,
    /// Paths (globs on the whole path, or `re:` regexes).
    pub ignore_paths: Vec<crate::model::Pattern>,
}

impl Activity {
    /// Whether a request with this user agent and path is to be ignored.
    pub fn ignores(&self, user_agent: Option<&str>, path: &str) -> bool {
        self.ignore_paths.iter().any(|p| p.matches(path))
            || user_agent
                .is_some_and(|agent| self.ignore_user_agents.iter().any(|p| p.matches(agent)))
    }

    /// Whether anything is ignored at all (the request path skips the checks otherwise).
    pub fn is_empty(&self) -> bool {
        self.ignore_paths.is_empty() && self.ignore_user_agents.is_empty()
    }
}

/// What the engine does with one app: when it sleeps, how long a wake may take, how requests
/// wait, and how readiness is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Idle time after which an awake app is stopped; `None` is `never`.
    pub max_idle: Option<Duration>,
    /// How long a wake may take before requests get 503 and the app is marked Failed.
    pub wake_timeout: Duration,
    /// How requests wait for a sleeping app.
    pub strategy: Strategy,
    /// Path probed on the upstream until it answers < 500 before held requests are released.
    pub health_path: Option<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_idle: Some(Duration::from_secs(15 * 60)),
            wake_timeout: Duration::from_secs(120),
            strategy: Strategy::Auto,
            health_path: None,
        }
    }
}

/// Per-app overrides of [`Policy`]; a `None` field keeps the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyOverride {
    /// Overrides [`Policy::max_idle`]; `Some(None)` is `never`.
    pub max_idle: Option<Option<Duration>>,
    /// Overrides [`Policy::wake_timeout`].
    pub wake_timeout: Option<Duration>,
    /// Overrides [`Policy::strategy`].
    pub strategy: Option<Strategy>,
    /// Overrides [`Policy::health_path`].
    pub health_path: Option<String>,
}

impl PolicyOverride {
    /// These overrides, then `later` ones on top (key by key).
    pub fn then(&self, later: &PolicyOverride) -> PolicyOverride {
        PolicyOverride {
            max_idle: later.max_idle.or(self.max_idle),
            wake_timeout: later.wake_timeout.or(self.wake_timeout),
            strategy: later.strategy.or(self.strategy),
            health_path: later
                .health_path
                .clone()
                .or_else(|| self.health_path.clone()),
        }
    }
}

impl Policy {
    /// This policy with an app's overrides applied.
    pub fn with(&self, overrides: &PolicyOverride) -> Policy {
        Policy {
            max_idle: overrides.max_idle.unwrap_or(self.max_idle),
            wake_timeout: overrides.wake_timeout.unwrap_or(self.wake_timeout),
            strategy: overrides.strategy.unwrap_or(self.strategy),
            health_path: overrides
                .health_path
                .clone()
                .or_else(|| self.health_path.clone()),
        }
    }

    /// `15m`, or `never`: how `paastis check` and the startup table show the idle policy.
    pub fn max_idle_text(&self) -> String {
        self.max_idle
            .map(super::format_duration)
            .unwrap_or_else(|| "never".to_owned())
    }
}

/// How a request for a sleeping app waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The request is held until the app is awake or `wake_timeout` runs out (then 503).
    Hold,
    /// Browser navigations get a waiting page at once (503, refreshing itself); other
    /// requests hold.
    Page,
    /// The default: `page` for browser navigations, `hold` for everything else.
    Auto,
}

impl Strategy {
    /// Whether a request with this method and `Accept` gets the waiting page.
    pub fn shows_page(self, method: &http::Method, accepts_html: bool) -> bool {
        let navigation =
            accepts_html && (method == http::Method::GET || method == http::Method::HEAD);
        match self {
            Strategy::Hold => false,
            Strategy::Page | Strategy::Auto => navigation,
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::Hold => f.write_str("hold"),
            Strategy::Page => f.write_str("page"),
            Strategy::Auto => f.write_str("auto"),
        }
    }
}
