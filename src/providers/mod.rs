//! Providers: one configured account on one platform, behind one object-safe trait.
//!
//! A provider only talks to its platform (or, for `process`, to local processes): it lists
//! apps, reports their state, starts and stops them. It never decides *when* to do so and
//! never touches the registry; that is the lifecycle's job.
//!
//! A platform is one file, `providers/<platform>.rs`: its config type and how it is read
//! and checked, which of its keys are credentials, its facts (own-app variable, prices, grid)
//! and its client, tied together by [`Platform`]. This module registers each platform in one
//! line of `platforms!` and answers for all of them: the `providers:` list (each entry's
//! `id` and `type`, the rest read by its platform), [`SECRET_KEYS`], [`ENDPOINT_KEYS`],
//! [`registration`] (a type's facts), [`own_app_variables`] and the add-on URL variables
//! ([`database_url_variables`], [`redis_url_variables`]). The generic code asks here and
//! names no platform.

pub mod api;
pub mod clever_cloud;
pub mod docker;
#[cfg(test)]
pub mod fake;
pub mod fly;
pub mod formation;
pub mod heroku;
pub mod kubernetes;
pub mod platform;
pub mod process;
pub mod render;
pub mod scalingo;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::broadcast;

pub use formation::Started;
pub use platform::{AddOnVariables, Facts, Platform, PriceTable};

use crate::model::{Formation, PolicyOverride, Upstream};
use crate::settings::{Fields, Reader, is_label};

/// Declares the closed [`ProviderConfig`] (one variant per platform) and the table of
/// [`PLATFORMS`] from one line per platform: `Variant(module::ConfigType)`, where the config
/// type implements [`Platform`].
macro_rules! platforms {
    ($($(#[$doc:meta])* $variant:ident($module:ident::$config:ident),)*) => {
        /// The closed set of provider configurations, one variant per platform.
        #[derive(Debug, Clone)]
        pub enum ProviderConfig {
            $($(#[$doc])* $variant($module::$config),)*
        }

        impl ProviderConfig {
            /// The provider's id, unique in its space.
            pub fn id(&self) -> &str {
                match self {
                    $(ProviderConfig::$variant(config) => &config.id,)*
                }
            }

            /// Its type as the config names it (`process`, `scalingo`, ...).
            pub fn kind(&self) -> &'static str {
                match self {
                    $(ProviderConfig::$variant(_) => <$module::$config as Platform>::KIND,)*
                }
            }

            /// The credentials it holds (none for `process`).
            pub fn secrets(&self) -> Vec<&crate::secret::Secret> {
                match self {
                    $(ProviderConfig::$variant(config) => config.secrets(),)*
                }
            }

            /// Builds the provider client.
            pub fn build(&self) -> Result<Arc<dyn Provider>, ProviderError> {
                match self {
                    $(ProviderConfig::$variant(config) => config.build(),)*
                }
            }

            /// Builds the provider client for a reloaded configuration of the account
            /// `previous` runs (see [`Platform::build_after`]).
            pub fn build_after(
                &self,
                previous: &Arc<dyn Provider>,
            ) -> Result<Arc<dyn Provider>, ProviderError> {
                match self {
                    $(ProviderConfig::$variant(config) => config.build_after(previous),)*
                }
            }

            /// Sets the provider's id (read apart from the rest of its entry).
            fn set_id(&mut self, id: String) {
                match self {
                    $(ProviderConfig::$variant(config) => config.id = id,)*
                }
            }
        }

        $(impl From<$module::$config> for ProviderConfig {
            fn from(config: $module::$config) -> ProviderConfig {
                ProviderConfig::$variant(config)
            }
        })*

        /// Every platform, in registration order.
        pub static PLATFORMS: &[Registration] = &[$(Registration {
            kind: <$module::$config as Platform>::KIND,
            read: read_as::<$module::$config>,
            facts: <$module::$config as Platform>::FACTS,
            doc: <$module::$config as Platform>::DOC,
            keys: <$module::$config as Platform>::KEYS,
            addons: <$module::$config as Platform>::ADDON_VARIABLES,
        },)*];

        /// Keys of provider entries that hold credentials, of every platform: sealed at
        /// rest, never shown.
        pub static SECRET_KEYS: &[&str] = {
            const LISTS: &[&[&str]] = &[$(<$module::$config as Platform>::SECRET_KEYS,)*];
            static UNION: ([&str; platform::total(LISTS)], usize) = platform::union(LISTS);
            UNION.0.split_at(UNION.1).0
        };

        /// Keys of provider entries that decide where the credentials are sent, of every
        /// platform: a change of one drops the stored credentials of a space changed through
        /// the API (they are given again).
        pub static ENDPOINT_KEYS: &[&str] = {
            const LISTS: &[&[&str]] = &[$(<$module::$config as Platform>::ENDPOINT_KEYS,)*];
            static UNION: ([&str; platform::total(LISTS)], usize) = platform::union(LISTS);
            UNION.0.split_at(UNION.1).0
        };
    };
}

// The registration: one line per platform (its file implements `Platform`).
platforms! {
    /// Local commands (the embedded default).
    Process(process::ProcessConfig),
    /// A Scalingo account.
    Scalingo(scalingo::ScalingoConfig),
    /// A Heroku account.
    Heroku(heroku::HerokuConfig),
    /// A Clever Cloud account.
    CleverCloud(clever_cloud::CleverConfig),
    /// A Render workspace's services.
    Render(render::RenderConfig),
    /// A Fly.io organisation's apps (Machines).
    Fly(fly::FlyConfig),
    /// A Kubernetes cluster's Deployments and StatefulSets.
    Kubernetes(kubernetes::KubernetesConfig),
    /// Docker or Podman containers.
    Docker(docker::DockerConfig),
}

/// One registered platform, as the generic code asks it.
#[derive(Debug)]
pub struct Registration {
    /// Its `type:` in the config.
    pub kind: &'static str,
    /// Reads one `providers:` entry of this type (see [`Platform::read`]).
    read: ReadEntry,
    /// What it states about itself.
    pub facts: Facts,
    /// What an account on it is (see [`Platform::DOC`]).
    pub doc: &'static str,
    /// Its entries' keys besides `id` and `type` (see [`Platform::KEYS`]).
    pub keys: &'static [crate::settings::Key],
    /// The variables its add-ons set to their URLs.
    pub addons: AddOnVariables,
}

/// [`Platform::read`], into a [`ProviderConfig`].
type ReadEntry = fn(&mut Reader<'_>, &mut Fields<'_>, &str, &str) -> Option<ProviderConfig>;

/// [`Platform::read`] for `P`, into a [`ProviderConfig`].
fn read_as<P: Platform + Into<ProviderConfig>>(
    reader: &mut Reader<'_>,
    fields: &mut Fields<'_>,
    path: &str,
    kind_path: &str,
) -> Option<ProviderConfig> {
    P::read(reader, fields, path, kind_path).map(Into::into)
}

/// The registered platform of this `type:`.
pub fn registration(kind: &str) -> Option<&'static Registration> {
    PLATFORMS.iter().find(|platform| platform.kind == kind)
}

/// The variables the platforms set to the running app's name or id, in registration order.
pub fn own_app_variables() -> impl Iterator<Item = &'static str> {
    PLATFORMS
        .iter()
        .filter_map(|platform| platform.facts.own_app_variable)
}

/// The variables that may hold a PostgreSQL URL for the engine's database, when it runs
/// from the environment alone: the generic `DATABASE_URL`, then each platform's add-on
/// variables in registration order.
pub fn database_url_variables() -> impl Iterator<Item = &'static str> {
    std::iter::once("DATABASE_URL").chain(
        PLATFORMS
            .iter()
            .flat_map(|platform| platform.addons.database.iter().copied()),
    )
}

/// The variables that may hold a Redis URL for the engine's registry, when it runs from
/// the environment alone: the generic `REDIS_URL`, then each platform's add-on variables.
pub fn redis_url_variables() -> impl Iterator<Item = &'static str> {
    std::iter::once("REDIS_URL").chain(
        PLATFORMS
            .iter()
            .flat_map(|platform| platform.addons.redis.iter().copied()),
    )
}

/// `a, b, c or d`: the registered types, for a message.
fn kinds() -> String {
    let kinds: Vec<&str> = PLATFORMS.iter().map(|platform| platform.kind).collect();
    match kinds.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

impl Reader<'_> {
    /// The `providers:` list: each entry's `id` and `type`, the rest read by its platform.
    pub(crate) fn providers(&mut self, value: &Value, path: &str) -> Vec<ProviderConfig> {
        let Some(items) = self.list(value, path) else {
            return Vec::new();
        };
        let mut providers = Vec::new();
        let mut ids: HashMap<String, String> = HashMap::new();
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            let Some(mut fields) = self.mapping(item, &item_path) else {
                continue;
            };
            let id = fields.take("id").and_then(|(v, p)| {
                let id = self.non_empty_string(v, &p)?;
                if !is_label(&id) {
                    self.error(
                        &p,
                        format!("`{id}` is not a valid id (lowercase letters, digits and '-')"),
                    );
                    return None;
                }
                if let Some(first) = ids.get(&id) {
                    self.error(
                        &p,
                        format!("duplicate provider id `{id}` (first at {first})"),
                    );
                    return None;
                }
                ids.insert(id.clone(), p);
                Some(id)
            });
            if id.is_none() && !fields.has("id") {
                self.error(&format!("{item_path}.id"), "missing");
            }
            let kind = match fields.take("type") {
                Some((v, p)) => self.string(v, &p).map(|t| (t, p)),
                None => {
                    self.error(&format!("{item_path}.type"), "missing (expected process)");
                    None
                }
            };
            let Some((kind, kind_path)) = kind else {
                fields.take_all();
                continue;
            };
            match registration(&kind) {
                Some(platform) => {
                    let config = (platform.read)(self, &mut fields, &item_path, &kind_path);
                    self.finish(fields, &[]);
                    if let (Some(id), Some(mut config)) = (id, config) {
                        config.set_id(id);
                        providers.push(config);
                    }
                }
                None => {
                    self.error(
                        &kind_path,
                        format!("`{kind}` is not a provider type (expected {})", kinds()),
                    );
                    fields.take_all();
                }
            }
        }
        providers
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
    /// Apps the platform groups with this one (a container group), by name: woken with it
    /// and kept awake by its activity, as `rules[].linked_apps` are.
    pub linked: Vec<String>,
    /// The name of that group (Docker's `paastis.group` label, Kubernetes'
    /// `paastis.io/group`), for callers that ask for a group by name.
    pub group: Option<String>,
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
pub trait Provider: std::any::Any + Send + Sync + fmt::Debug {
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

/// The keys every `providers:` entry has besides `type`, as `Reader::providers` takes them.
pub const PROVIDER_KEYS: &[crate::settings::Key] = &[crate::settings::Key::new(
    "id",
    crate::settings::Kind::Text("DNS label"),
    "Unique in its space (lowercase letters, digits, `-`); used in qualified hosts \
     `<app>--<id>`.",
)
.required()];

/// A `providers:` entry: tagged by `type`, one variant per registered platform.
pub const PROVIDER: crate::settings::Kind =
    crate::settings::Kind::Tagged(&crate::settings::Tagged {
        tag: "type",
        common: PROVIDER_KEYS,
        variants: provider_variants,
    });

/// Every registered platform as a variant of [`PROVIDER`].
fn provider_variants() -> Vec<crate::settings::Variant> {
    PLATFORMS
        .iter()
        .map(|platform| crate::settings::Variant {
            name: platform.kind,
            doc: platform.doc,
            keys: platform.keys,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registration_gives_every_platform_its_keys_in_order() {
        assert_eq!(
            kinds(),
            "process, scalingo, heroku, clever-cloud, render, fly, kubernetes or docker"
        );
        assert_eq!(
            SECRET_KEYS,
            [
                "token",
                "api_token",
                "consumer_key",
                "consumer_secret",
                "secret"
            ]
        );
        assert_eq!(ENDPOINT_KEYS, ["api_url", "auth_url", "region"]);
        assert_eq!(
            own_app_variables().collect::<Vec<_>>(),
            [
                "APP",
                "HEROKU_APP_NAME",
                "APP_ID",
                "RENDER_SERVICE_NAME",
                "FLY_APP_NAME"
            ]
        );
    }
}
