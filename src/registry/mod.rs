//! The registry's shared side: what several engine instances must agree on. Each instance
//! keeps the hot state of its apps in memory (the [`lifecycle`](crate::lifecycle)); this
//! module tells it whether it is the leader, hands out per-app leases (so one instance wakes
//! or stops an app), carries state changes and activity between instances, and shares the
//! leader's provider listings.
//!
//! Two implementations behind one trait: [`MemoryRegistry`] (one instance: always the
//! leader, every lease granted at once) and [`redis::RedisRegistry`] (several instances).
//! The registry stores and answers; the lifecycle decides. Nothing here is on the request
//! path: activity is written behind, in batches.

pub mod redis;
mod settings;

pub use settings::REGISTRY_KEYS;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{broadcast, watch};

use crate::model::{AppKey, State};
use crate::providers::AppInfo;
use crate::secret::Secret;

/// How long the engine waits at start for the registry to connect and settle who leads.
pub const SETTLE_WITHIN: Duration = Duration::from_secs(2);

/// `registry` in the config.
#[derive(Debug, Clone, Default)]
pub enum RegistryConfig {
    /// One instance: the state lives in this process only.
    #[default]
    Memory,
    /// Several instances share a Redis server.
    Redis(RedisConfig),
}

impl RegistryConfig {
    /// Builds the registry (connections are made in the background, see
    /// [`Registry::run`]).
    pub fn build(&self) -> Result<Arc<dyn Registry>, RegistryError> {
        match self {
            RegistryConfig::Memory => Ok(Arc::new(MemoryRegistry::default())),
            RegistryConfig::Redis(config) => Ok(Arc::new(redis::RedisRegistry::new(config)?)),
        }
    }
}

/// `registry: {type: redis, ...}`.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `registry.url`: `redis://[user:password@]host:port[/db]` (may hold a password).
    pub url: Secret,
    /// `registry.prefix`: every key starts with `<prefix>:`.
    pub prefix: String,
    /// `registry.flush_every`: how often activity is written behind and shared state read.
    pub flush_every: Duration,
    /// `registry.lease`: how long a leader or an app lease lasts without renewal; a dead
    /// leader is replaced within about 1.3 times this.
    pub lease: Duration,
}

/// The defaults of `registry` keys.
pub mod defaults {
    use std::time::Duration;

    /// `registry.url`.
    pub const URL: &str = "redis://127.0.0.1:6379";
    /// `registry.prefix`.
    pub const PREFIX: &str = "paastis";
    /// `registry.flush_every`.
    pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
    /// `registry.lease`.
    pub const LEASE: Duration = Duration::from_secs(10);
}

/// Why the registry could not be built (its URL is unusable). Never holds the URL's
/// password.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// The URL was refused by the client.
    #[error("registry.url `{url}` is not usable: {reason}")]
    BadUrl {
        /// The URL with its password hidden.
        url: String,
        /// What the client said.
        reason: String,
    },
}

/// How the registry is doing, for `/ready` and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// False while the shared state cannot be reached: the instance serves from its own
    /// state, wakes alone and stops nothing.
    pub ok: bool,
    /// What to tell an operator (`redis: connected, leader`, `redis: unreachable: ...`).
    pub detail: String,
}

/// What an instance gets when it asks to wake or stop an app.
#[derive(Debug)]
pub enum Claim {
    /// This instance holds the app's lease until it finishes (renewed meanwhile).
    Granted(Lease),
    /// Another instance woke the app already (wake only).
    AlreadyAwake,
    /// Another instance is waking or stopping the app.
    Busy,
    /// The app was active elsewhere after the idle limit (stop only), at this time.
    Active(SystemTime),
    /// The shared state cannot be reached: the instance acts on its own.
    Unavailable,
}

/// What became of the outcome of a wake or stop ([`Registry::finish`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Written, with this change counter.
    Written(u64),
    /// Not written: the lease expired and another instance took the app over (or changed
    /// its state) since. The shared state is that instance's; this one must not share its
    /// outcome later either.
    LeaseLost,
    /// Not written: the shared state cannot be reached.
    Unavailable,
}

/// A per-app lease held by this instance. Dropping it stops its renewal (the lease then
/// expires by itself); [`Registry::finish`] releases it at once.
pub struct Lease {
    /// Identifies this holder to the registry (random per lease).
    pub(crate) token: String,
    /// The lease's app.
    pub(crate) key: AppKey,
    /// Renews the lease while it is held; aborted on drop.
    pub(crate) keeper: Option<tokio::task::AbortHandle>,
    /// The shared state's change counter when the lease was taken.
    pub seq: u64,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("key", &self.key)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
        }
    }
}

impl Lease {
    /// A lease for a registry that needs none (one instance).
    pub fn local(key: &AppKey) -> Lease {
        Lease {
            token: String::new(),
            key: key.clone(),
            keeper: None,
            seq: 0,
        }
    }
}

/// An app's shared state, as the last instance that changed it wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    /// Its state; `None` when no instance wrote one (a new app, or a Redis that lost its
    /// data).
    pub state: Option<State>,
    /// Counts changes of `state`, so a stale copy can be told from a new one.
    pub seq: u64,
    /// Why the last wake failed.
    pub reason: Option<String>,
    /// The latest activity any instance saw.
    pub activity: Option<SystemTime>,
    /// Kept awake until this time (`PUT .../pin`); `Some(None)`: until unpinned; `None`:
    /// not pinned.
    pub pinned: Option<Option<SystemTime>>,
}

/// A state change announced by an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// An app changed state.
    State {
        /// Which app.
        key: AppKey,
        /// Its new state and change counter.
        shared: Shared,
        /// Announced by this very instance.
        own: bool,
    },
    /// The leader stored a new listing of this provider.
    Listing {
        /// The provider's space.
        space: String,
        /// The provider's id.
        provider: String,
    },
    /// The shared state was lost (Redis restarted empty) or reached again: every local
    /// copy must be compared anew.
    Reset,
    /// An instance changed the spaces stored in the database (hosted mode): read them
    /// again now rather than at the next `hosted.sync_every`.
    Spaces,
}

/// An app's activity to merge into the shared state (max semantics), or `None` to only read.
pub type ActivityUpdate = (AppKey, Option<SystemTime>);

/// The shared side of the registry.
#[async_trait::async_trait]
pub trait Registry: Send + Sync + fmt::Debug {
    /// True when several instances may run (state, leases and activity are shared).
    fn is_shared(&self) -> bool;

    /// Whether this instance may run discovery, idle stops and schedules now.
    fn is_leader(&self) -> bool;

    /// Changes of leadership (true: this instance just became the leader).
    fn leadership(&self) -> watch::Receiver<bool>;

    /// How the registry is doing.
    fn health(&self) -> Health;

    /// Changes announced by instances (none for the memory registry).
    fn notices(&self) -> Option<broadcast::Receiver<Notice>>;

    /// How often [`Registry::sync`] should run.
    fn flush_every(&self) -> Duration;

    /// Background work: connecting (with backoff), the leader lease, notifications. Runs
    /// until the engine stops; never fails.
    async fn run(self: Arc<Self>);

    /// Waits (at most `within`) until the first connection attempt is over and, when it
    /// worked, this instance tried once to become the leader.
    async fn settle(&self, within: Duration);

    /// Asks for the lease to wake `key`; on success the shared state says `waking`.
    async fn claim_wake(&self, key: &AppKey) -> Claim;

    /// Asks for the lease to stop `key`, idle since before `idle_before`; refused when an
    /// instance saw activity after it.
    async fn claim_stop(&self, key: &AppKey, idle_before: SystemTime) -> Claim;

    /// Records the outcome of a wake or stop and releases its lease, atomically and only
    /// while the lease still holds (or lapsed with nobody having changed the app since).
    async fn finish(
        &self,
        lease: Lease,
        state: State,
        reason: Option<&str>,
        activity: Option<SystemTime>,
    ) -> Finished;

    /// Records a state found by this instance (discovery, or a change made while the
    /// shared state was unreachable). Returns the new change counter.
    async fn publish(
        &self,
        key: &AppKey,
        state: State,
        activity: Option<SystemTime>,
    ) -> Option<u64>;

    /// The shared state of one app (`None` when unreachable).
    async fn shared(&self, key: &AppKey) -> Option<Shared>;

    /// Merges these activities (max semantics) and reads back every listed app's shared
    /// state, in one round trip. `None` when unreachable.
    async fn sync(&self, apps: &[ActivityUpdate]) -> Option<Vec<Shared>>;

    /// Shares an app's pin (see [`Shared::pinned`]); false when it could not be written.
    async fn set_pin(&self, key: &AppKey, pinned: Option<Option<SystemTime>>) -> bool;

    /// Forgets an app that vanished from its provider.
    async fn forget(&self, key: &AppKey);

    /// Checks with the shared state that this instance still holds the leader lease (done
    /// before each stop). False when unreachable.
    async fn confirm_leader(&self) -> bool;

    /// Stores the leader's listing of a provider for the other instances.
    async fn put_listing(&self, space: &str, provider: &str, listing: &[AppInfo]);

    /// The leader's latest listing of a provider, if there is one and it is readable.
    async fn listing(&self, space: &str, provider: &str) -> Option<Vec<AppInfo>>;

    /// Tells the other instances that the stored spaces changed ([`Notice::Spaces`]).
    async fn announce_spaces(&self);

    /// Gives up what this instance holds (leader lease) at shutdown.
    async fn release(&self);
}

/// The registry of a single instance: always the leader, every lease granted.
#[derive(Debug)]
pub struct MemoryRegistry {
    /// Always true; kept so [`Registry::leadership`] has a channel to hand out.
    leader: watch::Sender<bool>,
}

impl Default for MemoryRegistry {
    fn default() -> Self {
        MemoryRegistry {
            leader: watch::Sender::new(true),
        }
    }
}

#[async_trait::async_trait]
impl Registry for MemoryRegistry {
    fn is_shared(&self) -> bool {
        false
    }

    fn is_leader(&self) -> bool {
        true
    }

    fn leadership(&self) -> watch::Receiver<bool> {
        self.leader.subscribe()
    }

    fn health(&self) -> Health {
        Health {
            ok: true,
            detail: "memory".to_owned(),
        }
    }

    fn notices(&self) -> Option<broadcast::Receiver<Notice>> {
        None
    }

    fn flush_every(&self) -> Duration {
        defaults::FLUSH_EVERY
    }

    async fn run(self: Arc<Self>) {}

    async fn settle(&self, _within: Duration) {}

    async fn claim_wake(&self, key: &AppKey) -> Claim {
        Claim::Granted(Lease::local(key))
    }

    async fn claim_stop(&self, key: &AppKey, _idle_before: SystemTime) -> Claim {
        Claim::Granted(Lease::local(key))
    }

    async fn finish(
        &self,
        _lease: Lease,
        _state: State,
        _reason: Option<&str>,
        _activity: Option<SystemTime>,
    ) -> Finished {
        Finished::Written(0)
    }

    async fn publish(
        &self,
        _key: &AppKey,
        _state: State,
        _activity: Option<SystemTime>,
    ) -> Option<u64> {
        Some(0)
    }

    async fn shared(&self, _key: &AppKey) -> Option<Shared> {
        None
    }

    async fn sync(&self, _apps: &[ActivityUpdate]) -> Option<Vec<Shared>> {
        None
    }

    async fn set_pin(&self, _key: &AppKey, _pinned: Option<Option<SystemTime>>) -> bool {
        true
    }

    async fn forget(&self, _key: &AppKey) {}

    async fn confirm_leader(&self) -> bool {
        true
    }

    async fn put_listing(&self, _space: &str, _provider: &str, _listing: &[AppInfo]) {}

    async fn announce_spaces(&self) {}

    async fn listing(&self, _space: &str, _provider: &str) -> Option<Vec<AppInfo>> {
        None
    }

    async fn release(&self) {}
}
