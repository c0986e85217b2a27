//! Spaces at run time: every tenant the engine serves besides the default one, and, in
//! hosted mode, the ones created through the admin API (stored in the database with their
//! provider secrets sealed under the master key and their tokens hashed).
//!
//! [`Spaces`] owns the running spaces and publishes two read-only tables that requests use
//! without waiting: the proxy's (which domains belong to which space) and the admin API's
//! (which token acts on which space). A change (create, update, delete, a token issued or
//! revoked) is made under one lock: checked, written to the database, then published;
//! requests in flight finish with the space they started with. Every stored space reaches
//! the engine by one path, [`Spaces::install`], at start, after an API call, and when
//! another instance changed it (read again every `hosted.sync_every`).
//!
//! It decides which spaces run and what they may hold; what their apps do is their
//! lifecycle's business.

pub(crate) mod document;
pub mod settings;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use serde_json::Value;
use tokio::sync::Mutex;

pub use crate::secret::seal::{self, MasterKey, SealError};

use crate::admin::SpaceAccess;
use crate::catalog::Catalog;
use crate::lifecycle::{self, Lifecycle};
use crate::proxy::{SpaceRoute, SpaceTable};
use crate::registry::Registry;
use crate::scheduler::Scheduler;
use crate::settings::{ApiRules, ConfigError, ConfigErrors};
use crate::store::{Store, StoreError, StoredSpace, StoredToken};
use crate::{DEFAULT_SPACE, RunError};
use settings::{Hosted, SpaceConfig};

/// What the master key check seals (and must open again at every start).
const KEY_CHECK: &[u8] = b"paastis master key check";

/// The context the key check is sealed in.
const KEY_CHECK_CONTEXT: &str = "paastis master key check";

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

/// A token just issued: shown once, then only its hash is kept.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// Its public id, to revoke it.
    pub id: String,
    /// The token.
    pub token: crate::secret::Secret,
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

/// A space's lifecycle from its settings, with its providers built (outside the default
/// space, a provider's error names it `<space>/<provider>`): the one builder of every
/// space, from the file or from the API.
pub fn lifecycle(
    space: &SpaceConfig,
    registry: &Arc<dyn Registry>,
    upstreams: crate::address::UpstreamScope,
) -> Result<Arc<Lifecycle>, RunError> {
    let mut providers = Vec::with_capacity(space.providers.len());
    for provider in &space.providers {
        providers.push(provider.build().map_err(|error| RunError::Provider {
            id: if space.id == DEFAULT_SPACE {
                provider.id().to_owned()
            } else {
                format!("{}/{}", space.id, provider.id())
            },
            error,
        })?);
    }
    Ok(Lifecycle::with_registry(
        providers,
        lifecycle::Settings {
            defaults: space.defaults.clone(),
            rules: space.rules.clone(),
            filter: space.discovery.filter.clone(),
            hooks: space.hooks.clone(),
            schedules: space.schedules.clone(),
            plan: space.plan.clone(),
            on_limit: space.on_limit,
            space: space.id.clone(),
            upstreams,
            ..lifecycle::Settings::default()
        },
        Arc::clone(registry),
    ))
}

/// Checks that `key` is the database's master key (sealing the check value the first time
/// hosted mode runs); returns the check as stored.
async fn open_key_check(key: &MasterKey, store: &Arc<dyn Store>) -> Result<String, RunError> {
    let probe = key
        .seal(KEY_CHECK_CONTEXT, KEY_CHECK)
        .map_err(|error| RunError::MasterKey(error.to_string()))?;
    let kept = store.key_check(&probe).await?;
    if key.open(KEY_CHECK_CONTEXT, &kept).as_deref() != Ok(KEY_CHECK) {
        return Err(RunError::MasterKey(
            "PAASTIS_MASTER_KEY is not the key this database's spaces were sealed with; \
             start with that key (the stored provider secrets cannot be read without it)"
                .to_owned(),
        ));
    }
    Ok(kept)
}

/// Replaces the master key (`paastis rekey`): every stored space's providers are opened
/// with the current key and sealed with `new`, and the key check with them, in one
/// transaction; a space that does not open, or one changed meanwhile, leaves everything
/// as it was. Returns how many spaces were sealed again. Running instances keep serving
/// but refuse changes until restarted with the new key.
pub async fn rekey(config: &crate::Config, new: &MasterKey) -> Result<usize, RunError> {
    let hosted = config.hosted.as_ref().ok_or_else(|| {
        RunError::MasterKey("rekey needs hosted mode (`hosted: true`)".to_owned())
    })?;
    let store = crate::store::open(config.database_url.expose()).await?;
    let result = async {
        open_key_check(&hosted.key, &store).await?;
        let mut rows = Vec::new();
        for space in store.stored_spaces().await? {
            let providers = hosted
                .key
                .open(&context(&space.id), &space.providers)
                .map_err(|error| {
                    RunError::MasterKey(format!(
                        "space `{}` does not open with the current key ({error}): nothing changed",
                        space.id
                    ))
                })?;
            let sealed = new
                .seal(&context(&space.id), &providers)
                .map_err(|error| RunError::MasterKey(error.to_string()))?;
            rows.push((space.id, space.revision, sealed));
        }
        let check = new
            .seal(KEY_CHECK_CONTEXT, KEY_CHECK)
            .map_err(|error| RunError::MasterKey(error.to_string()))?;
        store.rekey(&check, &rows).await?;
        Ok(rows.len())
    }
    .await;
    store.close().await;
    result
}

/// The sealing context of a space's providers: a sealed document opens for its own space
/// only.
fn context(id: &str) -> String {
    format!("paastis space {id} providers")
}

impl Spaces {
    /// Starts the config file's spaces and, in hosted mode, checks the master key and
    /// starts the stored spaces (one that cannot be read is logged and left out; the
    /// others run). Nothing is discovered yet: see [`Spaces::discover`].
    pub async fn start(
        config: &crate::Config,
        default: SpaceAccess,
        registry: &Arc<dyn Registry>,
        store: &Arc<dyn Store>,
    ) -> Result<Spaces, RunError> {
        let mut running = Vec::with_capacity(config.spaces.len());
        for space in &config.spaces {
            let lifecycle = lifecycle(space, registry, crate::address::UpstreamScope::Any)?;
            let catalog =
                Catalog::start(Arc::clone(store), &lifecycle, config.events_retention).await?;
            running.push(Space {
                config: space.clone(),
                origin: Origin::Config,
                lifecycle,
                catalog,
                scheduler: None,
                stored: None,
            });
        }
        let key_check = match &config.hosted {
            Some(hosted) => open_key_check(&hosted.key, store).await?,
            None => String::new(),
        };
        let spaces = Spaces {
            running: Mutex::new(Vec::new()),
            routes: Arc::new(ArcSwap::from_pointee(SpaceTable::default())),
            access: ArcSwap::from_pointee(vec![default.clone()]),
            default,
            hosted: config.hosted.clone(),
            registry: Arc::clone(registry),
            store: Arc::clone(store),
            retention: config.events_retention,
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

    /// Reads the stored spaces again every `hosted.sync_every`, and at once when another
    /// instance announces a change through the registry (Redis), for changes made through
    /// another instance (hosted mode only; `None` otherwise).
    pub fn start_sync(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let every = self.hosted.as_ref()?.sync_every;
        let spaces = Arc::clone(self);
        let mut notices = self.registry.notices();
        Some(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                let announced = async {
                    match notices.as_mut() {
                        Some(notices) => notices.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = ticks.tick() => {}
                    notice = announced => match notice {
                        Ok(crate::registry::Notice::Spaces | crate::registry::Notice::Reset) => {}
                        Ok(_) => continue,
                        // Missed notices: reading everything again covers them.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            notices = None;
                            continue;
                        }
                    },
                }
                if let Err(error) = spaces.sync().await {
                    tracing::warn!(%error, "stored spaces not read again; next try in {every:?}");
                }
            }
        }))
    }

    /// Brings the running stored spaces in line with the database: new and changed ones
    /// (by revision) installed, deleted ones stopped.
    pub async fn sync(&self) -> Result<(), SpaceError> {
        if self.hosted.is_none() {
            return Ok(());
        }
        let mut running = self.running.lock().await;
        let stored = self.store.stored_spaces().await?;
        let mut changed = false;
        let gone: Vec<String> = running
            .iter()
            .filter(|space| space.origin == Origin::Api)
            .filter(|space| !stored.iter().any(|s| s.id == space.config.id))
            .map(|space| space.config.id.clone())
            .collect();
        for id in gone {
            if let Some(space) = take(&mut running, &id) {
                changed = true;
                self.publish(&running);
                tracing::info!(space = %id, "space deleted (through another instance)");
                stop(space).await;
            }
        }
        for stored in stored {
            if self.is_refused(&stored.id, stored.revision) {
                continue;
            }
            let (id, revision) = (stored.id.clone(), stored.revision);
            let row = (stored.settings.clone(), stored.providers.clone());
            let current = running.iter_mut().find(|space| space.config.id == id);
            match current.map(|space| (space.origin, space.stored.as_mut())) {
                Some((Origin::Config, _)) => {
                    self.refuse(&id, revision, "a space of the config file has its id");
                }
                Some((_, Some(ours))) if ours.revision >= revision => {}
                // Only its tokens changed: no need to rebuild it.
                Some((_, Some(ours))) if ours.row == row => {
                    ours.tokens = stored.tokens;
                    ours.revision = revision;
                    ours.updated_at = stored.updated_at;
                    changed = true;
                }
                _ => match self.install(&mut running, stored, true).await {
                    Ok(()) => {
                        changed = true;
                        tracing::info!(space = %id, "space changed (through another instance)");
                    }
                    Err(error) => self.refuse(&id, revision, &error.to_string()),
                },
            }
        }
        if changed {
            self.publish(&running);
        }
        Ok(())
    }

    /// Remembers that this revision of a stored space could not be started, and says why
    /// (once per revision).
    fn refuse(&self, id: &str, revision: i64, why: &str) {
        tracing::error!(space = %id, revision, error = %why, "stored space not started");
        self.refused
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id.to_owned(), revision);
    }

    /// Whether this revision of a stored space was already refused.
    fn is_refused(&self, id: &str, revision: i64) -> bool {
        self.refused
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(id)
            .is_some_and(|refused| *refused == revision)
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

    /// Creates a space from its document (hosted mode): checked, stored, discovered, then
    /// routed. Returns it with its first token.
    pub async fn create(&self, document: Value) -> Result<(SpaceInfo, IssuedToken), SpaceError> {
        let hosted = self.hosted.as_ref().ok_or(SpaceError::NotHosted)?;
        let mut running = self.running.lock().await;
        let id = document
            .get("id")
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        if id == DEFAULT_SPACE || running.iter().any(|space| space.config.id == id) {
            return Err(SpaceError::Conflict(format!("space `{id}` exists")));
        }
        if self.store.stored_spaces().await?.iter().any(|s| s.id == id) {
            return Err(SpaceError::Conflict(format!(
                "a stored space `{id}` exists but could not be started (see the logs): delete it first"
            )));
        }
        let prepared = self.prepare(&running, document, hosted, None)?;
        let (token_id, token) = seal::new_token()?;
        let now = SystemTime::now();
        let stored = self.seal(
            &id,
            &prepared.document,
            1,
            now,
            vec![StoredToken {
                id: token_id.clone(),
                hash: seal::hash_text(&seal::token_hash(token.expose())),
                created_at: now,
            }],
        )?;
        self.store.put_space(&stored, &self.key_check).await?;
        if let Err(error) = self.run(&mut running, prepared, stored, true).await {
            // Checked and built above: only a failure to start (the database) gets here.
            let _ = self.store.delete_space(&id).await;
            return Err(error);
        }
        self.publish(&running);
        self.registry.announce_spaces().await;
        tracing::info!(space = %id, "space created");
        let shown = running
            .iter()
            .find(|space| space.config.id == id)
            .map(info)
            .ok_or_else(|| SpaceError::NotFound(id.clone()))?;
        Ok((
            shown,
            IssuedToken {
                id: token_id,
                token,
            },
        ))
    }

    /// Changes a stored space by a JSON merge patch of its document (credentials left out
    /// of a provider entry are kept). Its runtime is rebuilt: apps are rediscovered, their
    /// remembered state comes from the catalog.
    pub async fn update(&self, id: &str, patch: &Value) -> Result<SpaceInfo, SpaceError> {
        let hosted = self.hosted.as_ref().ok_or(SpaceError::NotHosted)?;
        let mut running = self.running.lock().await;
        let (current, revision, created_at, tokens) = match self.find(&running, id)? {
            Space {
                stored: Some(stored),
                ..
            } => (
                stored.document.clone(),
                stored.revision,
                stored.created_at,
                stored.tokens.clone(),
            ),
            _ => return Err(SpaceError::FromConfig(id.to_owned())),
        };
        if let Some(asked) = patch.get("id")
            && asked.as_str() != Some(id)
        {
            return Err(SpaceError::Invalid(ConfigErrors(vec![ConfigError {
                path: "id".to_owned(),
                message: "a space's id cannot change (create another space)".to_owned(),
            }])));
        }
        let next = document::patched(&current, patch)
            .map_err(|errors| SpaceError::Invalid(ConfigErrors(errors)))?;
        let prepared = self.prepare(&running, next, hosted, Some(id))?;
        let stored = self.seal(id, &prepared.document, revision + 1, created_at, tokens)?;
        self.store.put_space(&stored, &self.key_check).await?;
        self.run(&mut running, prepared, stored, true).await?;
        self.publish(&running);
        self.registry.announce_spaces().await;
        tracing::info!(space = %id, "space changed");
        running
            .iter()
            .find(|space| space.config.id == id)
            .map(info)
            .ok_or_else(|| SpaceError::NotFound(id.to_owned()))
    }

    /// Deletes a stored space: no longer routed, its scheduler stopped, its row, tokens
    /// and catalog removed (its apps are left as they are on their platform).
    pub async fn delete(&self, id: &str) -> Result<(), SpaceError> {
        self.hosted.as_ref().ok_or(SpaceError::NotHosted)?;
        let mut running = self.running.lock().await;
        match self.find(&running, id) {
            Ok(space) if space.origin == Origin::Config => {
                return Err(SpaceError::FromConfig(id.to_owned()));
            }
            Ok(_) => {
                self.store.delete_space(id).await?;
            }
            // Stored but not running (it could not be started): deleted all the same.
            Err(SpaceError::NotFound(_)) if self.store.delete_space(id).await? => {}
            Err(error) => return Err(error),
        }
        self.refused
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(id);
        self.registry.announce_spaces().await;
        if let Some(space) = take(&mut running, id) {
            self.publish(&running);
            tracing::info!(space = %id, "space deleted");
            stop(space).await;
        }
        Ok(())
    }

    /// Issues a new token for a stored space.
    pub async fn issue_token(&self, id: &str) -> Result<IssuedToken, SpaceError> {
        let (token_id, token) = seal::new_token()?;
        let hash = seal::hash_text(&seal::token_hash(token.expose()));
        self.change_tokens(id, |tokens| {
            tokens.push(StoredToken {
                id: token_id.clone(),
                hash,
                created_at: SystemTime::now(),
            });
            Ok(())
        })
        .await?;
        Ok(IssuedToken {
            id: token_id,
            token,
        })
    }

    /// Revokes a token of a stored space: refused from the next request on.
    pub async fn revoke_token(&self, id: &str, token: &str) -> Result<(), SpaceError> {
        self.change_tokens(id, |tokens| {
            let before = tokens.len();
            tokens.retain(|t| t.id != token);
            if tokens.len() == before {
                return Err(SpaceError::UnknownToken {
                    space: id.to_owned(),
                    token: token.to_owned(),
                });
            }
            Ok(())
        })
        .await
    }

    async fn change_tokens(
        &self,
        id: &str,
        change: impl FnOnce(&mut Vec<StoredToken>) -> Result<(), SpaceError>,
    ) -> Result<(), SpaceError> {
        self.hosted.as_ref().ok_or(SpaceError::NotHosted)?;
        let mut running = self.running.lock().await;
        let space = self.find(&running, id)?;
        let Some(stored) = &space.stored else {
            return Err(SpaceError::FromConfig(id.to_owned()));
        };
        let mut tokens = stored.tokens.clone();
        change(&mut tokens)?;
        let row = StoredSpace {
            id: id.to_owned(),
            settings: stored.row.0.clone(),
            providers: stored.row.1.clone(),
            revision: stored.revision + 1,
            created_at: stored.created_at,
            updated_at: SystemTime::now(),
            tokens,
        };
        self.store.put_space(&row, &self.key_check).await?;
        if let Some(space) = running.iter_mut().find(|space| space.config.id == id)
            && let Some(stored) = &mut space.stored
        {
            stored.tokens = row.tokens;
            stored.revision = row.revision;
            stored.updated_at = row.updated_at;
        }
        self.publish(&running);
        self.registry.announce_spaces().await;
        Ok(())
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

    /// Checks a document as a space the API may run: valid, and its domains nobody else's
    /// (nor above or under another space's, which would take some of its hosts).
    fn check(
        &self,
        running: &[Space],
        document: &Value,
        hosted: &Hosted,
        except: Option<&str>,
    ) -> Result<SpaceConfig, SpaceError> {
        let mut taken: HashMap<String, String> = HashMap::new();
        for domain in self.default.domains.iter() {
            taken.insert(domain.clone(), "the default space".to_owned());
        }
        for space in running
            .iter()
            .filter(|s| Some(s.config.id.as_str()) != except)
        {
            for domain in &space.config.domains {
                taken.insert(domain.clone(), format!("space `{}`", space.config.id));
            }
        }
        let rules = ApiRules {
            custom_api_urls: hosted.custom_api_urls,
        };
        settings::api_space(document, rules, &taken).map_err(SpaceError::Invalid)
    }

    /// A document checked ([`Spaces::check`]) and its runtime built (providers included),
    /// ready to [`Spaces::run`]: done once per change.
    fn prepare(
        &self,
        running: &[Space],
        document: Value,
        hosted: &Hosted,
        except: Option<&str>,
    ) -> Result<Prepared, SpaceError> {
        let config = self.check(running, &document, hosted, except)?;
        let lifecycle =
            lifecycle(&config, &self.registry, self.tenant_scope()).map_err(|error| {
                let index = match &error {
                    RunError::Provider { id, .. } => config
                        .providers
                        .iter()
                        .position(|p| *id == format!("{}/{}", config.id, p.id())),
                    _ => None,
                };
                SpaceError::Invalid(ConfigErrors(vec![ConfigError {
                    path: index
                        .map_or_else(|| "providers".to_owned(), |i| format!("providers[{i}]")),
                    message: error.to_string(),
                }]))
            })?;
        Ok(Prepared {
            config,
            lifecycle,
            document,
        })
    }

    /// A space's row: its settings in clear, its providers sealed.
    fn seal(
        &self,
        id: &str,
        document: &Value,
        revision: i64,
        created_at: SystemTime,
        tokens: Vec<StoredToken>,
    ) -> Result<StoredSpace, SpaceError> {
        let hosted = self.hosted.as_ref().ok_or(SpaceError::NotHosted)?;
        let (settings, providers) = document::split(document);
        Ok(StoredSpace {
            id: id.to_owned(),
            settings: settings.to_string(),
            providers: hosted
                .key
                .seal(&context(id), providers.to_string().as_bytes())?,
            revision,
            created_at,
            updated_at: SystemTime::now(),
            tokens,
        })
    }

    /// Starts a stored space (replacing the running one of that id, if any): opened,
    /// checked, built, then run ([`Spaces::run`]). The caller publishes.
    async fn install(
        &self,
        running: &mut Vec<Space>,
        stored: StoredSpace,
        now: bool,
    ) -> Result<(), SpaceError> {
        let hosted = self.hosted.as_ref().ok_or(SpaceError::NotHosted)?;
        let settings: Value = serde_json::from_str(&stored.settings)
            .map_err(|error| SpaceError::Damaged(format!("its settings are not JSON: {error}")))?;
        let providers = hosted.key.open(&context(&stored.id), &stored.providers)?;
        let providers: Value = serde_json::from_slice(&providers)
            .map_err(|error| SpaceError::Damaged(format!("its providers are not JSON: {error}")))?;
        let document = document::join(settings, providers);
        let prepared = self.prepare(running, document, hosted, Some(&stored.id))?;
        self.run(running, prepared, stored, now).await
    }

    /// Runs a prepared space as the one stored in `stored` (replacing the running one of
    /// that id, if any): its catalog started, and, with `now`, discovered and scheduled
    /// (when serving). The caller publishes.
    async fn run(
        &self,
        running: &mut Vec<Space>,
        prepared: Prepared,
        stored: StoredSpace,
        now: bool,
    ) -> Result<(), SpaceError> {
        let Prepared {
            config,
            lifecycle,
            document,
        } = prepared;
        // The one it replaces stops first: one catalog writer per space at a time.
        if let Some(old) = take(running, &stored.id) {
            self.publish(running);
            stop(old).await;
        }
        let catalog = Catalog::start(Arc::clone(&self.store), &lifecycle, self.retention).await?;
        if now {
            lifecycle.discover().await;
            lifecycle.apply_schedules();
        }
        let scheduler = (now && self.serving.load(Ordering::SeqCst))
            .then(|| Scheduler::start(&lifecycle, &config.discovery));
        running.push(Space {
            config,
            origin: Origin::Api,
            lifecycle,
            catalog,
            scheduler,
            stored: Some(Stored {
                document,
                revision: stored.revision,
                created_at: stored.created_at,
                updated_at: stored.updated_at,
                tokens: stored.tokens,
                row: (stored.settings, stored.providers),
            }),
        });
        Ok(())
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
                    activity: space.config.activity.clone(),
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
