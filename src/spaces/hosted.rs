//! Stored spaces (hosted mode): the master key (checked at start, replaced by `paastis
//! rekey`), creating, changing and deleting spaces through the admin API, and keeping the
//! running ones in line with the database (changes made through another instance).
//!
//! A space's provider settings and webhooks are sealed under the master key, in a context
//! of their own space; they are opened only here. It never builds a space's runtime itself: it uses the
//! [`Build`](super::Build) the engine gave.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use serde_json::Value;

use super::settings::{self, Hosted, SpaceConfig};
use super::{
    IssuedToken, MasterKey, OpenError, Origin, Prepared, Space, SpaceError, SpaceInfo, Spaces,
    Stored, document, info, seal, stop, take,
};
use crate::catalog::Catalog;
use crate::model::DEFAULT_SPACE;
use crate::scheduler::Scheduler;
use crate::settings::{ApiRules, ConfigError, ConfigErrors};
use crate::store::{Store, StoredSpace, StoredToken};

/// What the master key check seals (and must open again at every start).
const KEY_CHECK: &[u8] = b"paastis master key check";

/// The context the key check is sealed in.
const KEY_CHECK_CONTEXT: &str = "paastis master key check";

/// Checks that `key` is the database's master key (sealing the check value the first time
/// hosted mode runs); returns the check as stored.
pub(super) async fn open_key_check(
    key: &MasterKey,
    store: &Arc<dyn Store>,
) -> Result<String, OpenError> {
    let probe = key
        .seal(KEY_CHECK_CONTEXT, KEY_CHECK)
        .map_err(|error| OpenError::MasterKey(error.to_string()))?;
    let kept = store.key_check(&probe).await?;
    if key.open(KEY_CHECK_CONTEXT, &kept).as_deref() != Ok(KEY_CHECK) {
        return Err(OpenError::MasterKey(
            "PAASTIS_MASTER_KEY is not the key this database's spaces were sealed with; \
             start with that key (the stored provider secrets cannot be read without it)"
                .to_owned(),
        ));
    }
    Ok(kept)
}

/// Replaces the master key (`paastis rekey`) in this database: every stored space's
/// providers are opened with the current key and sealed with `new`, and the key check
/// with them, in one transaction; a space that does not open, or one changed meanwhile, leaves everything
/// as it was. Returns how many spaces were sealed again. Running instances keep serving
/// but refuse changes until restarted with the new key.
pub async fn rekey(
    store: &Arc<dyn Store>,
    current: &MasterKey,
    new: &MasterKey,
) -> Result<usize, OpenError> {
    open_key_check(current, store).await?;
    let mut rows = Vec::new();
    for space in store.stored_spaces().await? {
        let providers = current
            .open(&context(&space.id), &space.providers)
            .map_err(|error| {
                OpenError::MasterKey(format!(
                    "space `{}` does not open with the current key ({error}): nothing changed",
                    space.id
                ))
            })?;
        let sealed = new
            .seal(&context(&space.id), &providers)
            .map_err(|error| OpenError::MasterKey(error.to_string()))?;
        rows.push((space.id, space.revision, sealed));
    }
    let check = new
        .seal(KEY_CHECK_CONTEXT, KEY_CHECK)
        .map_err(|error| OpenError::MasterKey(error.to_string()))?;
    store.rekey(&check, &rows).await?;
    Ok(rows.len())
}

/// The sealing context of a space's providers: a sealed document opens for its own space
/// only.
fn context(id: &str) -> String {
    format!("paastis space {id} providers")
}

impl Spaces {
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
    pub(super) fn refuse(&self, id: &str, revision: i64, why: &str) {
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
            private_addresses: hosted.private_upstreams,
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
        let lifecycle = (self.build)(&config, self.tenant_scope()).map_err(|error| {
            let index = config
                .providers
                .iter()
                .position(|p| error.id == format!("{}/{}", config.id, p.id()));
            SpaceError::Invalid(ConfigErrors(vec![ConfigError {
                path: index.map_or_else(|| "providers".to_owned(), |i| format!("providers[{i}]")),
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
    pub(super) async fn install(
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
}
