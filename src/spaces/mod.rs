//! Spaces at run time: every tenant the engine serves besides the default one, and, in
//! hosted mode, the ones created through the admin API (stored in the database with their
//! provider secrets sealed under the master key and their tokens hashed).
//!
//! [`Spaces`] owns the running spaces and publishes two read-only tables that requests use
//! without waiting: the proxy's (which domains belong to which space) and the admin API's
//! (which token acts on which space, [`SpaceAccess`]). A change (create, update, delete, a
//! token issued or revoked) is made under one lock: checked, written to the database, then
//! published; requests in flight finish with the space they started with. Every stored space
//! reaches the engine by one path, `Spaces::install`, at start, after an API call, and when
//! another instance changed it (read again every `hosted.sync_every`).
//!
//! Here: the table of running spaces and what it publishes; [`hosted`]: the stored spaces
//! (the master key, create, update, delete, sync with the database); [`tokens`]: what a
//! space's token may reach, and issuing and revoking them; `document`: a stored space's
//! document (secrets split out, merge patches).
//!
//! It decides which spaces run and what they may hold; what their apps do is their
//! lifecycle's business. It builds no component from settings itself: the engine (the
//! composition root) hands it the config file's spaces built and a [`Build`] for the
//! others. It never imports the admin API, which sits above it.

pub(crate) mod document;
pub mod hosted;
pub mod settings;
pub mod tokens;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use serde_json::Value;
use tokio::sync::Mutex;

pub use crate::secret::seal::{self, MasterKey, SealError};
pub use hosted::rekey;
pub use tokens::{IssuedToken, SpaceAccess};

use crate::address::UpstreamScope;
use crate::catalog::Catalog;
use crate::lifecycle::Lifecycle;
use crate::model::DEFAULT_SPACE;
use crate::providers::ProviderError;
use crate::proxy::{SpaceRoute, SpaceTable};
use crate::registry::Registry;
use crate::scheduler::Scheduler;
use crate::settings::ConfigErrors;
use crate::store::{Store, StoreError, StoredToken};
use settings::{Hosted, SpaceConfig};

/// Where a running space comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The config file's `spaces:` (changed by editing the file).
    Config,
    /// The admin API (stored in the database).
    Api,
}

impl Origin {
    /// `config` or `api`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Config => "config",
            Origin::Api => "api",
        }
    }
}

/// One running space.
struct Space {
    /// Its settings, typed.
    config: SpaceConfig,
    /// Where it comes from.
    origin: Origin,
    /// Its apps, routes and wakes.
    lifecycle: Arc<Lifecycle>,
    /// Writes its catalog and events.
    catalog: Catalog,
    /// Its discovery, idle check and schedules, once the engine serves.
    scheduler: Option<Scheduler>,
    /// Stored spaces: the whole document (credentials included, for merge patches) and
    /// its row's metadata.
    stored: Option<Stored>,
}

/// What a stored space carries besides its typed settings.
struct Stored {
    /// The document as given (credentials included): never shown, never logged.
    document: Value,
    /// The row's revision.
    revision: i64,
    /// When it was created.
    created_at: SystemTime,
    /// When it last changed.
    updated_at: SystemTime,
    /// Its tokens, as hashes.
    tokens: Vec<StoredToken>,
    /// The row's settings and sealed providers as stored: written again as they are when
    /// only the tokens change, so other instances see that nothing else did.
    row: (String, String),
}

impl std::fmt::Debug for Space {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Space")
            .field("id", &self.config.id)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// A space checked and built, not running yet.
struct Prepared {
    /// Its settings, typed.
    config: SpaceConfig,
    /// Its runtime, providers built.
    lifecycle: Arc<Lifecycle>,
    /// The document it comes from (credentials included): never shown, never logged.
    document: Value,
}

/// A space as the admin API shows it (no credential, no token in it).
#[derive(Debug, Clone)]
pub struct SpaceInfo {
    /// Its id.
    pub id: String,
    /// Where it comes from.
    pub origin: Origin,
    /// Its base domains.
    pub domains: Vec<String>,
    /// Its plan.
    pub plan: crate::plan::Plan,
    /// What a wake beyond the plan does.
    pub on_limit: crate::plan::OnLimit,
    /// Its provider accounts: id and type.
    pub providers: Vec<(String, &'static str)>,
    /// Stored spaces: the document, credentials left out (named under `secrets`).
    pub document: Option<Value>,
    /// Stored spaces: the tokens' ids and when they were issued.
    pub tokens: Vec<(String, SystemTime)>,
    /// Config spaces: how many tokens the file gives.
    pub config_tokens: usize,
    /// How many apps it manages now.
    pub apps: usize,
    /// Stored spaces: revision, creation and last change.
    pub revision: Option<i64>,
    /// When it was created (stored spaces).
    pub created_at: Option<SystemTime>,
    /// When it last changed (stored spaces).
    pub updated_at: Option<SystemTime>,
}

/// Why a change to the spaces was refused.
#[derive(Debug, thiserror::Error)]
pub enum SpaceError {
    /// Hosted mode is off: spaces come from the config file only.
    #[error(
        "hosted mode is off: spaces come from the config file (set `hosted: true` and PAASTIS_MASTER_KEY to manage them through the API)"
    )]
    NotHosted,
    /// No such space.
    #[error("no space `{0}`")]
    NotFound(String),
    /// The space comes from the config file: it is changed there.
    #[error("space `{0}` comes from the config file: change it there")]
    FromConfig(String),
    /// The id is taken.
    #[error("{0}")]
    Conflict(String),
    /// The document is not a valid space (every error, with its path).
    #[error("invalid space: {0}")]
    Invalid(ConfigErrors),
    /// No such token in that space.
    #[error("space `{space}` has no token `{token}`")]
    UnknownToken {
        /// The space.
        space: String,
        /// The token id asked for.
        token: String,
    },
    /// The database failed; nothing changed.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// Sealing failed; nothing changed.
    #[error("{0}")]
    Seal(#[from] SealError),
    /// A stored space cannot be read back (a damaged row).
    #[error("stored space cannot be read: {0}")]
    Damaged(String),
}

/// Builds a space's lifecycle from its settings, its providers built, for apps at these
/// upstreams (outside the default space, a provider's error names it
/// `<space>/<provider>`): given by the engine, the one builder of every space.
pub type Build =
    Arc<dyn Fn(&SpaceConfig, UpstreamScope) -> Result<Arc<Lifecycle>, BuildError> + Send + Sync>;

/// Why a space's runtime could not be built: one of its providers cannot be set up from
/// its settings.
#[derive(Debug, thiserror::Error)]
#[error("provider `{id}`: {error}")]
pub struct BuildError {
    /// The provider's id (`<space>/<provider>` outside the default space).
    pub id: String,
    /// What failed.
    pub error: ProviderError,
}

/// Why the stored spaces cannot be opened (at start, or to seal them again).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The database cannot be opened or read.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// Hosted mode's master key does not open the database's spaces.
    #[error("hosted mode: {0}")]
    MasterKey(String),
}

/// What the engine hands the spaces at start: the config file's spaces built, and what
/// the others are built and kept with.
pub struct Parts {
    /// The config file's spaces (file order), each with its lifecycle built.
    pub configured: Vec<(SpaceConfig, Arc<Lifecycle>)>,
    /// Hosted mode's key and limits; `None`: config spaces only.
    pub hosted: Option<Hosted>,
    /// How long events are kept (for each space's catalog).
    pub retention: Duration,
    /// The default space, as the admin API sees it.
    pub default: SpaceAccess,
    /// Builds the runtime of a space created or changed through the API.
    pub build: Build,
    /// Shared by every space's lifecycle.
    pub registry: Arc<dyn Registry>,
    /// Where stored spaces, catalogs and events live.
    pub store: Arc<dyn Store>,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("hosted", &self.hosted.is_some())
            .finish_non_exhaustive()
    }
}

/// Every space besides the default one, and what requests read of them.
pub struct Spaces {
    /// The running spaces, config ones first (file order), then stored ones (by id). Its
    /// lock makes changes one at a time.
    running: Mutex<Vec<Space>>,
    /// What the proxy routes with (published after every change).
    routes: Arc<ArcSwap<SpaceTable>>,
    /// What the admin API scopes with, the default space first (published with `routes`).
    access: ArcSwap<Vec<SpaceAccess>>,
    /// The default space, as the admin API sees it.
    default: SpaceAccess,
    /// Hosted mode's key and limits; `None`: config spaces only.
    hosted: Option<Hosted>,
    /// Builds the runtime of a space created or changed through the API.
    build: Build,
    /// Shared by every space's lifecycle.
    registry: Arc<dyn Registry>,
    /// Where stored spaces, catalogs and events live.
    store: Arc<dyn Store>,
    /// How long events are kept (for each space's catalog).
    retention: Duration,
    /// Whether the engine serves: spaces installed from then on start their scheduler.
    serving: AtomicBool,
    /// Stored spaces that could not be started, by id, with the revision that failed: not
    /// tried (nor logged) again until it changes.
    refused: std::sync::Mutex<HashMap<String, i64>>,
    /// The master key check as it was when this instance opened it: every write carries it,
    /// so none happens under an old key after `paastis rekey` (empty: not hosted).
    key_check: String,
}

impl std::fmt::Debug for Spaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spaces")
            .field("hosted", &self.hosted.is_some())
            .finish_non_exhaustive()
    }
}

impl Spaces {
    /// Starts the config file's spaces (built by the caller) and, in hosted mode, checks the
    /// master key and
    /// starts the stored spaces (one that cannot be read is logged and left out; the
    /// others run). Nothing is discovered yet: see [`Spaces::discover`].
    pub async fn start(parts: Parts) -> Result<Spaces, OpenError> {
        let Parts {
            configured,
            hosted,
            retention,
            default,
            build,
            registry,
            store,
        } = parts;
        let (registry, store) = (&registry, &store);
        let mut running = Vec::with_capacity(configured.len());
        for (space, lifecycle) in configured {
            let catalog = Catalog::start(Arc::clone(store), &lifecycle, retention).await?;
            running.push(Space {
                config: space,
                origin: Origin::Config,
                lifecycle,
                catalog,
                scheduler: None,
                stored: None,
            });
        }
        let key_check = match &hosted {
            Some(hosted) => hosted::open_key_check(&hosted.key, store).await?,
            None => String::new(),
        };
        let spaces = Spaces {
            running: Mutex::new(Vec::new()),
            routes: Arc::new(ArcSwap::from_pointee(SpaceTable::default())),
            access: ArcSwap::from_pointee(vec![default.clone()]),
            default,
            hosted,
            build,
            registry: Arc::clone(registry),
            store: Arc::clone(store),
            retention,
            serving: AtomicBool::new(false),
            refused: std::sync::Mutex::new(HashMap::new()),
            key_check,
        };
        {
            let mut guard = spaces.running.lock().await;
            *guard = running;
            if spaces.hosted.is_none() {
                let stored = store.stored_spaces().await?.len();
                if stored > 0 {
                    tracing::warn!(
                        stored,
                        "the database holds spaces created through the API, but hosted mode is off: they are not served"
                    );
                }
            } else {
                for stored in store.stored_spaces().await? {
                    let (id, revision) = (stored.id.clone(), stored.revision);
                    if guard.iter().any(|space| space.config.id == id) {
                        spaces.refuse(&id, revision, "a space of the config file has its id");
                    } else if let Err(error) = spaces.install(&mut guard, stored, false).await {
                        spaces.refuse(&id, revision, &error.to_string());
                    }
                }
            }
            spaces.publish(&guard);
        }
        Ok(spaces)
    }

    /// Discovers every running space's apps once (before serving).
    pub async fn discover(&self) {
        let lifecycles: Vec<Arc<Lifecycle>> = self
            .running
            .lock()
            .await
            .iter()
            .map(|space| Arc::clone(&space.lifecycle))
            .collect();
        for lifecycle in lifecycles {
            lifecycle.discover().await;
            // Where each schedule stands, before the first request can ask.
            lifecycle.apply_schedules();
        }
    }

    /// Starts every space's scheduler; spaces installed later start theirs at once.
    pub async fn serve(&self) {
        let mut running = self.running.lock().await;
        self.serving.store(true, Ordering::SeqCst);
        for space in running.iter_mut() {
            if space.scheduler.is_none() {
                space.scheduler = Some(Scheduler::start(&space.lifecycle, &space.config.discovery));
            }
        }
    }

    /// A configuration reload of the file's space `config.id` (its domains and tokens
    /// unchanged: the caller checks): its lifecycle takes the new settings and accounts
    /// (apps keep their state) and its scheduler starts again with the new discovery
    /// settings. `None` when no space of that id comes from the file.
    pub async fn reconfigure(
        &self,
        config: SpaceConfig,
        providers: Vec<Arc<dyn crate::providers::Provider>>,
        settings: crate::lifecycle::Settings,
        removed: crate::lifecycle::RemovedApps,
    ) -> Option<crate::lifecycle::Reconfigured> {
        let mut running = self.running.lock().await;
        let space = running
            .iter_mut()
            .find(|space| space.config.id == config.id && space.origin == Origin::Config)?;
        let scheduler = space.scheduler.take();
        if let Some(scheduler) = scheduler {
            scheduler.stop().await;
        }
        let done = space
            .lifecycle
            .reconfigure(providers, settings, removed)
            .await;
        space.config = config;
        if self.serving.load(Ordering::SeqCst) {
            space.scheduler = Some(Scheduler::start(&space.lifecycle, &space.config.discovery));
        }
        Some(done)
    }

    /// Stops every space: schedulers first, then what providers started, then the last
    /// catalog writes.
    pub async fn shutdown(&self) {
        let spaces: Vec<Space> = std::mem::take(&mut *self.running.lock().await);
        self.publish(&[]);
        for space in spaces {
            stop(space).await;
        }
    }

    /// What the proxy routes with.
    pub fn routes(&self) -> Arc<ArcSwap<SpaceTable>> {
        Arc::clone(&self.routes)
    }

    /// What the admin API scopes with: every space, the default one first.
    pub fn access(&self) -> Arc<Vec<SpaceAccess>> {
        self.access.load_full()
    }

    /// Whether spaces can be created through the API.
    pub fn is_hosted(&self) -> bool {
        self.hosted.is_some()
    }

    /// Every running space but the default one: id and lifecycle.
    pub fn lifecycles(&self) -> Vec<(String, Arc<Lifecycle>)> {
        self.access()
            .iter()
            .skip(1)
            .map(|space| (space.id.clone(), Arc::clone(&space.lifecycle)))
            .collect()
    }

    /// Every space as the API shows it, the default one first.
    pub async fn list(&self) -> Vec<SpaceInfo> {
        let running = self.running.lock().await;
        std::iter::once(self.default_info())
            .chain(running.iter().map(info))
            .collect()
    }

    /// One space as the API shows it.
    pub async fn show(&self, id: &str) -> Option<SpaceInfo> {
        if id == DEFAULT_SPACE {
            return Some(self.default_info());
        }
        self.running
            .lock()
            .await
            .iter()
            .find(|space| space.config.id == id)
            .map(info)
    }

    fn find<'r>(&self, running: &'r [Space], id: &str) -> Result<&'r Space, SpaceError> {
        if id == DEFAULT_SPACE {
            return Err(SpaceError::FromConfig(id.to_owned()));
        }
        running
            .iter()
            .find(|space| space.config.id == id)
            .ok_or_else(|| SpaceError::NotFound(id.to_owned()))
    }

    /// Where the apps of API-created spaces may be: public addresses only, unless
    /// `hosted.private_upstreams`.
    fn tenant_scope(&self) -> crate::address::UpstreamScope {
        match &self.hosted {
            Some(hosted) if hosted.private_upstreams => crate::address::UpstreamScope::Any,
            _ => crate::address::UpstreamScope::Public,
        }
    }

    /// Publishes the routing and token tables of these running spaces.
    fn publish(&self, running: &[Space]) {
        let routes = running
            .iter()
            .map(|space| {
                Arc::new(SpaceRoute {
                    id: space.config.id.clone(),
                    domains: space.config.domains.clone(),
                    lifecycle: Arc::clone(&space.lifecycle),
                    // A tenant's upstreams are its own servers, never the engine's network.
                    upstreams: match space.origin {
                        Origin::Api => self.tenant_scope(),
                        Origin::Config => crate::address::UpstreamScope::Any,
                    },
                })
            })
            .collect();
        let access = std::iter::once(self.default.clone())
            .chain(running.iter().map(|space| {
                let tokens = match &space.stored {
                    Some(stored) => stored
                        .tokens
                        .iter()
                        .filter_map(|token| seal::hash_from_text(&token.hash))
                        .collect(),
                    None => space
                        .config
                        .tokens
                        .iter()
                        .map(|token| seal::token_hash(token.expose()))
                        .collect(),
                };
                SpaceAccess {
                    id: space.config.id.clone(),
                    lifecycle: Arc::clone(&space.lifecycle),
                    domains: Arc::new(space.config.domains.clone()),
                    tokens,
                }
            }))
            .collect();
        self.routes.store(Arc::new(SpaceTable::new(routes)));
        self.access.store(Arc::new(access));
    }

    fn default_info(&self) -> SpaceInfo {
        let lifecycle = &self.default.lifecycle;
        SpaceInfo {
            id: DEFAULT_SPACE.to_owned(),
            origin: Origin::Config,
            domains: self.default.domains.to_vec(),
            plan: lifecycle.plan().clone(),
            on_limit: lifecycle.on_limit(),
            providers: lifecycle
                .providers()
                .iter()
                .map(|p| (p.id().to_owned(), p.kind()))
                .collect(),
            document: None,
            tokens: Vec::new(),
            config_tokens: 0,
            apps: lifecycle.apps().len(),
            revision: None,
            created_at: None,
            updated_at: None,
        }
    }
}

/// Takes the running space of this id out of the list.
fn take(running: &mut Vec<Space>, id: &str) -> Option<Space> {
    let index = running.iter().position(|space| space.config.id == id)?;
    Some(running.remove(index))
}

/// Stops a space that is no longer published.
async fn stop(space: Space) {
    if let Some(scheduler) = space.scheduler {
        scheduler.stop().await;
    }
    space.lifecycle.shutdown().await;
    space.catalog.finish().await;
}

fn info(space: &Space) -> SpaceInfo {
    SpaceInfo {
        id: space.config.id.clone(),
        origin: space.origin,
        domains: space.config.domains.clone(),
        plan: space.config.plan.clone(),
        on_limit: space.config.on_limit,
        providers: space
            .config
            .providers
            .iter()
            .map(|p| (p.id().to_owned(), p.kind()))
            .collect(),
        document: space
            .stored
            .as_ref()
            .map(|stored| document::public(&stored.document)),
        tokens: space
            .stored
            .as_ref()
            .map(|stored| {
                stored
                    .tokens
                    .iter()
                    .map(|t| (t.id.clone(), t.created_at))
                    .collect()
            })
            .unwrap_or_default(),
        config_tokens: space.config.tokens.len(),
        apps: space.lifecycle.apps().len(),
        revision: space.stored.as_ref().map(|s| s.revision),
        created_at: space.stored.as_ref().map(|s| s.created_at),
        updated_at: space.stored.as_ref().map(|s| s.updated_at),
    }
}
