//! Discovery: listing every provider (or reading the leader's listing of a shared one) and
//! bringing the set of managed apps in line with it (new apps registered with their
//! policy, vanished ones dropped, states corrected), checking apps whose listing did not
//! tell their state, exits providers report, and rebuilding the route table when the set
//! changes. It starts and stops nothing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::watch;
use tokio::time::Instant;

use super::app::{AppConf, Listed};
use super::app::{SEEN_REFRESH, START_HISTORY, SeenWritten, touch};
use super::route::RouteTable;
use super::{App, Lifecycle, Phase, Record, lock};
use crate::events::EventKind;
use crate::model::{AppKey, State, Upstream};
use crate::providers::{AppExited, AppInfo, AppStatus, Provider};
use crate::store::SeenApp;

/// On-demand discoveries (for a host no app answers to) are at most this frequent.
pub const REDISCOVER_EVERY: Duration = Duration::from_secs(10);

impl Lifecycle {
    /// Lists every provider's apps and brings the registry in line: new apps are managed,
    /// apps found running are awake (activity = now), apps found stopped are asleep, vanished
    /// apps are dropped. A provider that fails keeps its apps as they were.
    pub async fn discover(self: &Arc<Self>) {
        self.discover_with(false).await;
    }

    /// [`Lifecycle::discover`], asking every provider itself even when this instance is
    /// not the leader (on-demand discovery for a host no app answers to yet).
    pub(super) async fn discover_with(self: &Arc<Self>, ask_providers: bool) {
        // What each app's state was when the listings were asked for: an app that changed
        // since (a wake or stop of ours finished) is not corrected by a stale listing.
        let before: HashMap<AppKey, u64> = self
            .apps()
            .iter()
            .map(|app| (app.key.clone(), app.transitions.load(Ordering::SeqCst)))
            .collect();
        let leader = self.registry.is_leader();
        let shared = self.registry.is_shared();
        let mut listings = tokio::task::JoinSet::new();
        for provider in self.providers.load().iter() {
            let provider = Arc::clone(provider);
            let registry = Arc::clone(&self.registry);
            let space = Arc::clone(&self.space);
            // Shared providers: the leader lists them and stores the listing; the other
            // instances read it (and list themselves only when there is none yet).
            let follow = shared && !provider.is_local() && !leader;
            listings.spawn(async move {
                if follow
                    && !ask_providers
                    && let Some(listing) = registry.listing(&space, provider.id()).await
                {
                    return (provider, Ok(listing), false);
                }
                let listing = provider.list_apps().await;
                if shared
                    && leader
                    && !provider.is_local()
                    && let Ok(listing) = &listing
                {
                    registry.put_listing(&space, provider.id(), listing).await;
                }
                (provider, listing, !follow)
            });
        }
        let mut changed = false;
        let mut announce = Vec::new();
        while let Some(joined) = listings.join_next().await {
            let Ok((provider, listing, authority)) = joined else {
                continue;
            };
            if authority || !shared || provider.is_local() {
                self.metrics
                    .provider_call(provider.id(), "list", listing.is_ok());
            }
            match listing {
                Ok(apps) => {
                    changed |=
                        self.apply_listing(&provider, apps, &before, authority, &mut announce)
                }
                Err(error) => {
                    let message = format!("listing apps failed: {error}");
                    self.metrics.provider_error(provider.id(), message.clone());
                    self.events.emit(
                        &AppKey::new(&self.space, provider.id(), ""),
                        EventKind::ProviderError { message },
                    )
                }
            }
        }
        if changed {
            self.rebuild_routes();
        }
        self.announce(announce).await;
    }

    /// Applies one provider's listing; true when the set of apps changed.
    ///
    /// Without `authority` (an instance that follows the leader's listing of a shared
    /// provider), apps are added and removed silently and states are left to the shared
    /// state: the leader records and announces what changed. Changes to announce go to
    /// `announce`.
    fn apply_listing(
        &self,
        provider: &Arc<dyn Provider>,
        listing: Vec<AppInfo>,
        before: &HashMap<AppKey, u64>,
        authority: bool,
        announce: &mut Vec<(Arc<App>, Option<State>)>,
    ) -> bool {
        let coordinated = self.registry.is_shared() && !provider.is_local();
        let now = self.clock.now_ms();
        let settings = self.settings.load_full();
        let schedules = self.schedules.load_full();
        let provider_id: Arc<str> = provider.id().into();
        let look = self.look();
        // The configuration shared by the apps nothing sets apart.
        let mut plain = None;
        let mut apps = lock(&self.apps);
        let mut seen = HashSet::with_capacity(listing.len());
        let mut changed = false;
        for info in listing {
            if !settings.filter.manages(&info.name, &info.aliases) {
                continue;
            }
            // The space's and provider's names shared, only the app's own allocated.
            let key = AppKey {
                space: Arc::clone(&self.space),
                provider: Arc::clone(&provider_id),
                name: info.name.as_str().into(),
            };
            seen.insert(key.clone());
            let running = info.status == AppStatus::Running;
            let Some(app) = apps.get(&key) else {
                let state = if running { State::Awake } else { State::Asleep };
                let upstream = info.upstream.map(Arc::new);
                // Seen first: the catalog's other records about it need its entry.
                let seen_written =
                    authority.then(|| self.send_seen(&key, upstream.clone(), running, now));
                // What the catalog remembers from before (an earlier run of the engine).
                let remembered = lock(&self.remembered).remove(&key);
                let listed = info
                    .formation
                    .values()
                    .any(|n| *n > 0)
                    .then(|| info.formation.clone());
                if authority
                    && let Some(listed) = &listed
                    && remembered.as_ref().and_then(|r| r.formation.as_ref()) != Some(listed)
                {
                    self.record(|| Record::Formation {
                        key: key.clone(),
                        formation: Some(listed.clone()),
                    });
                }
                let formation =
                    listed.or_else(|| remembered.as_ref().and_then(|r| r.formation.clone()));
                let start_durations: VecDeque<Duration> = remembered
                    .as_ref()
                    .map(|r| {
                        let skip = r.start_durations.len().saturating_sub(START_HISTORY);
                        r.start_durations.iter().skip(skip).copied().collect()
                    })
                    .unwrap_or_default();
                // An app awake before a restart keeps its idle time: it is stopped when it
                // would have been.
                let last_activity = remembered
                    .as_ref()
                    .and_then(|r| r.last_activity)
                    .map_or(now, |at| self.clock.from_wall(at));
                let listed = Listed {
                    policy: info.policy.clone(),
                    aliases: info.aliases.clone(),
                };
                let conf = resolve(
                    &settings, &schedules, &look, &info.name, &listed, &mut plain,
                );
                let app = Arc::new(App {
                    key: key.clone(),
                    provider: Mutex::new(Arc::clone(provider)),
                    listed: ArcSwap::from_pointee(listed),
                    conf: ArcSwap::new(conf),
                    phase: watch::Sender::new(Phase {
                        state,
                        reason: None,
                        since: Instant::now(),
                    }),
                    state: AtomicU8::new(state as u8),
                    last_activity: AtomicU64::new(last_activity),
                    in_flight: AtomicUsize::new(0),
                    upstream: ArcSwapOption::from(upstream),
                    formation: Mutex::new(formation),
                    start_durations: Mutex::new(start_durations),
                    stop_retry_at: AtomicU64::new(0),
                    refused_at: AtomicU64::new(0),
                    transitions: AtomicU64::new(0),
                    unverified: std::sync::atomic::AtomicBool::new(
                        info.status == AppStatus::Unknown,
                    ),
                    group: ArcSwap::from_pointee(info.linked.clone()),
                    group_name: ArcSwapOption::from(info.group.clone().map(Arc::new)),
                    linked: ArcSwap::from_pointee(Vec::new()),
                    any_linked: std::sync::atomic::AtomicBool::new(false),
                    flushed_activity: AtomicU64::new(last_activity),
                    coordinated,
                    remote_seq: AtomicU64::new(0),
                    busy: std::sync::atomic::AtomicBool::new(false),
                    unpublished: std::sync::atomic::AtomicBool::new(false),
                    // Being registered is not activity to share: only requests are.
                    shared_activity: AtomicU64::new(last_activity),
                    requests: crate::metrics::RequestCounts::default(),
                    pinned_until: AtomicU64::new(0),
                    last_wake: Mutex::new(None),
                    awake_index: Arc::clone(&self.awake),
                    seen_written: Mutex::new(seen_written),
                });
                if state == State::Awake {
                    self.awake.insert(&key);
                }
                apps.insert(key.clone(), app);
                if authority {
                    self.events.emit(&key, EventKind::Discovered { running });
                }
                changed = true;
                continue;
            };
            let upstream = info.upstream.map(|upstream| match app.upstream() {
                Some(known) if *known == upstream => known,
                _ => {
                    let upstream = Arc::new(upstream);
                    app.upstream.store(Some(Arc::clone(&upstream)));
                    upstream
                }
            });
            if authority {
                self.record_seen(app, upstream, running, now);
            }
            if app.group_name().as_deref() != info.group.as_ref() {
                app.group_name.store(info.group.clone().map(Arc::new));
            }
            if **app.group.load() != info.linked {
                app.group.store(Arc::new(info.linked.clone()));
                changed = true;
            }
            // The platform's own keys changed (a container's labels, a process entry's
            // policy after a reload): the app's configuration is resolved again.
            let same = {
                let known = app.listed.load();
                known.policy == info.policy && known.aliases == info.aliases
            };
            if !same {
                let listed = Listed {
                    policy: info.policy.clone(),
                    aliases: info.aliases.clone(),
                };
                let conf = resolve(
                    &settings, &schedules, &look, &info.name, &listed, &mut plain,
                );
                changed |= conf.aliases != app.conf().aliases;
                app.listed.store(Arc::new(listed));
                app.conf.store(conf);
            }
            if !authority {
                continue;
            }
            if running && info.formation.values().any(|n| *n > 0) {
                self.remember_formation(app, info.formation.clone());
            }
            if before.get(&key) != Some(&app.transitions.load(Ordering::SeqCst))
                || app.busy.load(Ordering::SeqCst)
            {
                continue;
            }
            match info.status {
                AppStatus::Running => {
                    if app.state() == State::Asleep || app.state() == State::Failed {
                        touch(app, now);
                        // The event before the waiters wake (as a wake's `Started`).
                        let told = || self.events.emit(&key, EventKind::Registered);
                        if app.transition_told(
                            &[State::Asleep, State::Failed],
                            State::Awake,
                            None,
                            told,
                        ) && coordinated
                        {
                            announce.push((Arc::clone(app), Some(State::Awake)));
                        }
                    }
                }
                AppStatus::Stopped | AppStatus::Failed(_) => {
                    let reason = match &info.status {
                        AppStatus::Failed(reason) => reason.clone(),
                        _ => "found stopped".to_owned(),
                    };
                    let told = || self.events.emit(&key, EventKind::Exited { reason });
                    if app.transition_told(&[State::Awake], State::Asleep, None, told)
                        && coordinated
                    {
                        announce.push((Arc::clone(app), Some(State::Asleep)));
                    }
                }
                AppStatus::Starting | AppStatus::Unknown => {}
            }
        }
        let vanished: Vec<AppKey> = apps
            .keys()
            .filter(|key| &*key.provider == provider.id() && !seen.contains(*key))
            .cloned()
            .collect();
        for key in vanished {
            if let Some(app) = apps.remove(&key)
                && authority
            {
                self.events.emit(&key, EventKind::Deleted);
                if coordinated {
                    announce.push((app, None));
                }
            }
            changed = true;
        }
        changed
    }

    /// Sends the catalog what discovery saw of the app, when it differs from what was
    /// last sent or that is older than [`SEEN_REFRESH`].
    /// (`upstream`: the listing's, shared with the app's when they are the same.)
    fn record_seen(&self, app: &App, upstream: Option<Arc<Upstream>>, running: bool, now: u64) {
        let refresh = u64::try_from(SEEN_REFRESH.as_millis()).unwrap_or(u64::MAX);
        let mut written = lock(&app.seen_written);
        if written.as_ref().is_some_and(|written| {
            written.running == running
                && written.upstream == upstream
                && now.saturating_sub(written.at) < refresh
        }) {
            return;
        }
        *written = Some(self.send_seen(&app.key, upstream, running, now));
    }

    /// Sends the catalog what discovery saw of the app; returns what was sent.
    fn send_seen(
        &self,
        key: &AppKey,
        upstream: Option<Arc<Upstream>>,
        running: bool,
        now: u64,
    ) -> SeenWritten {
        self.record(|| Record::Seen {
            key: key.clone(),
            seen: SeenApp {
                upstream: upstream.as_deref().map(ToString::to_string),
                running,
            },
            at: SystemTime::now(),
        });
        SeenWritten {
            upstream,
            running,
            at: now,
        }
    }

    /// Asks the provider the state of up to `limit` apps registered from listings that did
    /// not tell it (see [`AppStatus::Unknown`]): a running one becomes awake with activity =
    /// now, so it is stopped after its idle time like any app started outside the engine.
    /// Returns how many were checked.
    pub async fn verify_unknown(self: &Arc<Self>, limit: usize) -> usize {
        let pending: Vec<Arc<App>> = self
            .apps()
            .into_iter()
            .filter(|app| app.unverified.load(Ordering::SeqCst))
            .take(limit)
            .collect();
        for app in &pending {
            if app.state() != State::Asleep {
                app.unverified.store(false, Ordering::SeqCst);
                continue;
            }
            let transitions = app.transitions.load(Ordering::SeqCst);
            match app.provider().status(&app.key.name).await {
                Ok(AppStatus::Running) => {
                    app.unverified.store(false, Ordering::SeqCst);
                    // Not if a wake or stop of ours happened meanwhile.
                    if app.transitions.load(Ordering::SeqCst) == transitions {
                        touch(app, self.clock.now_ms());
                        let told = || self.events.emit(&app.key, EventKind::Registered);
                        if app.transition_told(&[State::Asleep], State::Awake, None, told)
                            && app.coordinated
                        {
                            self.announce(vec![(Arc::clone(app), Some(State::Awake))])
                                .await;
                        }
                    }
                }
                Ok(AppStatus::Stopped | AppStatus::Failed(_)) => {
                    app.unverified.store(false, Ordering::SeqCst);
                }
                Ok(AppStatus::Starting | AppStatus::Unknown) => {}
                Err(error) => {
                    tracing::debug!(app = %app.key, %error, "cannot verify the state yet");
                }
            }
        }
        pending.len()
    }

    /// An app's process ended on its own: an awake app is now asleep. A waking app is left to
    /// its wake, which sees the exit through the provider's status.
    pub fn app_exited(&self, provider_id: &str, exit: AppExited) {
        let key = AppKey::new(&self.space, provider_id, &exit.app);
        let Some(app) = lock(&self.apps).get(&key).cloned() else {
            return;
        };
        let told = || {
            let reason = exit.reason;
            self.events.emit(&key, EventKind::Exited { reason });
        };
        app.transition_told(&[State::Awake], State::Asleep, None, told);
    }

    pub(super) fn rebuild_routes(&self) {
        let apps = self.apps();
        // Linked apps: the same provider first, else the one app of that name elsewhere.
        let find = |app: &App, name: &str| -> Option<Weak<App>> {
            let mut named = apps.iter().filter(|other| &*other.key.name == name);
            let found = match named
                .clone()
                .find(|other| other.key.provider == app.key.provider)
            {
                Some(same_provider) => Some(same_provider),
                None => match (named.next(), named.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                },
            };
            found.map(Arc::downgrade)
        };
        for app in &apps {
            let group = app.group.load();
            let conf = app.conf();
            // Nothing linked before nor now (the flag set with the list: no read of the list).
            if conf.linked_names.is_empty()
                && group.is_empty()
                && !app.any_linked.load(Ordering::Acquire)
            {
                continue;
            }
            let linked = conf
                .linked_names
                .iter()
                .chain(
                    group
                        .iter()
                        .filter(|name| !conf.linked_names.contains(name)),
                )
                .filter(|name| **name != *app.key.name)
                .filter_map(|name| find(app, name))
                .collect::<Vec<_>>();
            let any = !linked.is_empty();
            app.linked.store(Arc::new(linked));
            app.any_linked.store(any, Ordering::Release);
        }
        self.routes.store(Arc::new(RouteTable::build(&apps)));
    }

    /// Discovery on demand, for a host no app answers to (an app created a moment ago):
    /// at most once per [`REDISCOVER_EVERY`], one at a time (callers arriving meanwhile
    /// wait for it). Runs on the engine's runtime, whoever asks. Returns whether it ran.
    pub async fn rediscover(self: &Arc<Self>) -> bool {
        let mut last = self.rediscovered.lock().await;
        if last.is_some_and(|at| at.elapsed() < REDISCOVER_EVERY) {
            return false;
        }
        let lifecycle = Arc::clone(self);
        let _ = self
            .runtime
            .spawn(async move { lifecycle.discover_with(true).await })
            .await;
        *last = Some(Instant::now());
        true
    }

    /// Forgets every managed app (the original engine's `DELETE /apps`), then lists the
    /// providers again: apps come back as they are now (running ones with activity = now).
    /// The apps themselves are not touched.
    pub async fn clear(self: &Arc<Self>) {
        let removed: Vec<Arc<App>> = std::mem::take(&mut *lock(&self.apps))
            .into_values()
            .collect();
        self.rebuild_routes();
        for app in removed.iter().filter(|app| app.coordinated) {
            self.registry.forget(&app.key).await;
        }
        tracing::info!(apps = removed.len(), "registry cleared");
        self.discover().await;
    }
}

/// What the configuration gives the app `name` (defaults, then the matching rules, then the
/// app's own keys from its listing): at registration, and again at every reload. Apps that
/// no rule, schedule or listing key sets apart get the same one, kept in `plain` (most of
/// a large account: one copy instead of one per app).
pub(super) fn resolve(
    settings: &super::Settings,
    schedules: &crate::schedules::Tracker,
    space_look: &Arc<crate::pages::Look>,
    name: &str,
    listed: &Listed,
    plain: &mut Option<Arc<AppConf>>,
) -> Arc<AppConf> {
    let resolved = settings.rules.resolve(name);
    let matching = schedules.matching(name);
    let is_plain = matching.is_empty()
        && resolved == crate::rules::Resolved::default()
        && *listed == Listed::default();
    if is_plain && let Some(conf) = plain {
        return Arc::clone(conf);
    }
    // Its look: the space's, unless a rule says otherwise.
    let look = if resolved.page == crate::pages::PageSettings::default() {
        Arc::clone(space_look)
    } else {
        crate::pages::Look::new(&settings.page.then(&resolved.page))
    };
    let mut aliases = listed.aliases.clone();
    aliases.extend(resolved.alias);
    let conf = Arc::new(AppConf {
        policy: settings
            .defaults
            .with(&resolved.policy.then(&listed.policy)),
        aliases,
        linked_names: resolved.linked_apps,
        default_formation: resolved.formation,
        hooks: settings.hooks.then(&resolved.hooks),
        schedules: matching,
        look,
    });
    if is_plain {
        *plain = Some(Arc::clone(&conf));
    }
    conf
}
