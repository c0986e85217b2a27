//! The registry of managed apps and their lifecycle: the only place that starts and stops
//! apps and changes their state.
//!
//! States: `Asleep -> Waking -> Awake -> Stopping -> Asleep`, and `Failed` when a wake could
//! not complete. Each transition is done here, atomically (check-and-set on the app's phase),
//! and emits an [`Event`](crate::events::Event). Requests, the scheduler and discovery all go
//! through the same functions. The request path reads an app's state and upstream without
//! locks held across an await and without provider calls.
//!
//! This file holds [`Lifecycle`] itself: its settings, construction and accessors, and the
//! running of hooks that wakes and stops share. Each job is a file of its own, adding its
//! methods to it:
//!
//! * `app`: one managed app's hot state ([`App`], [`Phase`]), the marks of requests in
//!   progress ([`InFlight`]) and the engine's [`Clock`].
//! * `wake`: waking: within the plan's limits, once across instances, the start and its
//!   hooks, readiness.
//! * `probe`: the `health_path` probe of a starting app.
//! * `stop`: the idle check, stopping (hooks, the shared lease) and pins.
//! * `schedule`: what the schedules' windows and wake times make the lifecycle do.
//! * `discovery`: listing the providers and bringing the set of apps in line with them.
//! * `mirror`: what this instance shares with the others through the registry, and what it
//!   takes from theirs.
//! * [`route`]: the route table (route key -> app), rebuilt when the set of apps changes.
//! * `record`: what goes to the durable catalog, and what it gave back at start.
//! * `reconfigure`: a configuration reload: new settings and accounts, the apps' state kept.
//!
//! It imports only the modules below it (model, events, providers, registry, store, hooks,
//! metrics, schedules, plan, rules, address, webhooks): never the proxy, the admin API, the
//! scheduler, the spaces, the catalog or the config, which all sit above it.

mod app;
mod discovery;
mod mirror;
mod probe;
mod reconfigure;
mod record;
pub mod route;
mod schedule;
mod stop;
#[cfg(test)]
mod tests;
mod wake;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio::time::Instant;

use crate::events::{EventKind, EventLog};
use crate::model::{AppKey, Policy};
use crate::providers::Provider;
use crate::registry::{MemoryRegistry, Registry};
use crate::rules::{Filter, Rules};
use crate::store::CatalogEntry;
use route::RouteTable;

pub use app::{App, AppConf, Clock, InFlight, Phase};
pub use discovery::REDISCOVER_EVERY;
pub use reconfigure::{RELOAD_KEYS, Reconfigured, ReloadSettings, RemovedApps};
pub use record::Record;
pub use stop::IDLE_CHECK_EVERY;
pub use wake::WakeError;

/// What decides which apps are managed and with which policy.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Policy for apps that do not override it.
    pub defaults: Policy,
    /// Per-app rules (policy, aliases, linked apps, formation).
    pub rules: Rules,
    /// Which listed apps are managed at all.
    pub filter: Filter,
    /// Global hooks (rules override them per app).
    pub hooks: crate::hooks::Hooks,
    /// Sleep, wake and keep-awake times.
    pub schedules: Vec<crate::schedules::Schedule>,
    /// The space these apps belong to (empty: `default`).
    pub space: String,
    /// How many apps of each provider may run at once.
    pub plan: crate::plan::Plan,
    /// Requests that never wake an app nor count as activity (the proxy reads them here).
    pub activity: crate::model::Activity,
    /// What a wake beyond the plan does.
    pub on_limit: crate::plan::OnLimit,
    /// The wall-clock time the engine's clock starts at, instead of the system's: wall
    /// time then follows tokio's clock, so tests can run a simulated week with paused time.
    pub wall_start: Option<SystemTime>,
    /// Where the apps' upstreams may be (`health_path` probes included): a hosted tenant's
    /// at public addresses only.
    pub upstreams: crate::address::UpstreamScope,
    /// How the space's visitor pages look (`page`); rules lay theirs over it per app.
    pub page: crate::pages::PageSettings,
    /// Where the space's events are sent (its webhooks and its rules'), from the start on.
    pub webhooks: Vec<crate::webhooks::Target>,
}

/// The registry and the state machine for every managed app of the engine.
#[derive(Debug)]
pub struct Lifecycle {
    /// The engine's clock.
    clock: Clock,
    /// Every provider account, in config order; replaced by a configuration reload.
    providers: ArcSwap<Vec<Arc<dyn Provider>>>,
    /// Defaults, rules and the discovery filter; replaced by a configuration reload.
    settings: ArcSwap<Settings>,
    /// When the last on-demand discovery ran; held while one runs, so concurrent callers
    /// wait for it instead of starting their own.
    rediscovered: tokio::sync::Mutex<Option<Instant>>,
    /// What the catalog remembers of apps not registered yet (formation, start durations,
    /// last activity), taken when discovery registers them.
    remembered: Mutex<HashMap<AppKey, CatalogEntry>>,
    /// Where records for the durable catalog go (none without a store).
    records: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Record>>,
    /// Managed apps; changed only by discovery.
    apps: Mutex<BTreeMap<AppKey, Arc<App>>>,
    /// The keys of the awake ones (shared with each app, which keeps it up to date).
    awake: Arc<app::AwakeIndex>,
    /// Route key -> app, rebuilt when the set of apps changes; read by every request.
    routes: ArcSwap<RouteTable>,
    /// What happened.
    events: EventLog,
    /// Client for `health_path` probes.
    probe: probe::ProbeClient,
    /// The engine's runtime: wakes and stops run there, whichever thread asked for them
    /// (proxy workers have runtimes of their own that end before the engine's).
    runtime: tokio::runtime::Handle,
    /// What this instance shares with the others (leases, leadership, activity).
    registry: Arc<dyn Registry>,
    /// Counters and histograms for `/metrics`.
    metrics: Arc<crate::metrics::Metrics>,
    /// The schedules and where each stands; replaced by a configuration reload.
    schedules: ArcSwap<crate::schedules::Tracker>,
    /// Held while the configuration is replaced, so two reloads do not interleave.
    reconfiguring: tokio::sync::Mutex<()>,
    /// Local accounts a reload removed: what they started is still stopped at shutdown.
    retired: Mutex<Vec<Arc<dyn Provider>>>,
    /// Held while a wake is checked against the plan and begun, so two wakes cannot both
    /// take the last place.
    wake_gate: Mutex<()>,
    /// The space of every app here (keys, events, registry entries carry it).
    space: Arc<str>,
    /// The space's look (its `page` settings, ready to render).
    look: ArcSwap<crate::pages::Look>,
    /// Sends the space's events to its webhooks.
    webhooks: ArcSwap<crate::webhooks::Webhooks>,
    /// Where wakes and stops are traced (set once by the composition root; unset: off).
    tracer: std::sync::OnceLock<crate::traces::Tracer>,
}

/// A hook's span (`hook before_start`, ...), under the wake's or stop's.
fn hook_span(parent: &crate::traces::Span, hook: crate::hooks::Hook) -> crate::traces::Span {
    if !parent.is_recording() {
        return crate::traces::Span::none();
    }
    parent.child(
        format!("hook {}", hook.name()),
        crate::traces::Kind::Internal,
    )
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Lifecycle {
    /// A lifecycle over these providers, with no app known yet (see [`Lifecycle::discover`]).
    /// Must be called within the engine's runtime.
    pub fn new(providers: Vec<Arc<dyn Provider>>, settings: Settings) -> Arc<Lifecycle> {
        Lifecycle::with_registry(providers, settings, Arc::new(MemoryRegistry::default()))
    }

    /// [`Lifecycle::new`] sharing its state through `registry`.
    pub fn with_registry(
        providers: Vec<Arc<dyn Provider>>,
        settings: Settings,
        registry: Arc<dyn Registry>,
    ) -> Arc<Lifecycle> {
        let targets = settings.webhooks.clone();
        let scope = settings.upstreams;
        let lifecycle = Arc::new(Lifecycle {
            webhooks: ArcSwap::new(crate::webhooks::Webhooks::none(&settings.space)),
            clock: Clock::new(settings.wall_start),
            schedules: ArcSwap::from_pointee(crate::schedules::Tracker::new(
                settings.schedules.clone(),
            )),
            reconfiguring: tokio::sync::Mutex::new(()),
            retired: Mutex::new(Vec::new()),
            wake_gate: Mutex::new(()),
            look: ArcSwap::new(crate::pages::Look::new(&settings.page)),
            space: if settings.space.is_empty() {
                crate::model::DEFAULT_SPACE.into()
            } else {
                settings.space.as_str().into()
            },
            providers: ArcSwap::from_pointee(providers),
            settings: ArcSwap::from_pointee(settings),
            rediscovered: tokio::sync::Mutex::new(None),
            remembered: Mutex::new(HashMap::new()),
            records: std::sync::OnceLock::new(),
            apps: Mutex::new(BTreeMap::new()),
            awake: Arc::default(),
            routes: ArcSwap::from_pointee(RouteTable::default()),
            events: EventLog::new(1000),
            probe: probe::client(),
            runtime: tokio::runtime::Handle::current(),
            registry,
            metrics: Arc::default(),
            tracer: std::sync::OnceLock::new(),
        });
        let webhooks = crate::webhooks::Webhooks::start(
            &lifecycle.space,
            targets,
            &lifecycle.events,
            Arc::clone(&lifecycle.metrics),
            scope,
        );
        lifecycle.webhooks.store(webhooks);
        lifecycle
    }

    /// Traces this space's wakes and stops with `tracer` (once; later calls change nothing).
    pub fn trace_with(&self, tracer: crate::traces::Tracer) {
        let _ = self.tracer.set(tracer);
    }

    /// Where wakes and stops are traced.
    pub fn tracer(&self) -> &crate::traces::Tracer {
        static OFF: crate::traces::Tracer = crate::traces::Tracer::off();
        self.tracer.get().unwrap_or(&OFF)
    }

    /// The space's webhooks and their deliveries.
    pub fn webhooks(&self) -> Arc<crate::webhooks::Webhooks> {
        self.webhooks.load_full()
    }

    /// Delivers to `targets` from now on, unless they are the current ones (the previous
    /// webhooks still send what they queued).
    fn replace_webhooks(
        &self,
        targets: &[crate::webhooks::Target],
        scope: crate::address::UpstreamScope,
    ) {
        if self.webhooks.load().same(targets) {
            return;
        }
        self.webhooks.store(crate::webhooks::Webhooks::start(
            &self.space,
            targets.to_vec(),
            &self.events,
            Arc::clone(&self.metrics),
            scope,
        ));
    }

    /// How the space's visitor pages look (an unknown host's 404, the login page).
    pub fn look(&self) -> Arc<crate::pages::Look> {
        self.look.load_full()
    }

    /// The event log.
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// The route table now, for a moment (not to be held across waits): read without
    /// counting a reference, which every proxy worker would otherwise write at every
    /// request.
    pub fn routes(&self) -> arc_swap::Guard<Arc<RouteTable>> {
        self.routes.load()
    }

    /// Every managed app, by key.
    pub fn apps(&self) -> Vec<Arc<App>> {
        lock(&self.apps).values().cloned().collect()
    }

    /// The awake apps (the idle check's work), dropping from the index the keys of apps
    /// that are no longer awake or no longer managed.
    pub(super) fn awake_apps(&self) -> Vec<Arc<App>> {
        let apps = lock(&self.apps);
        let mut keys = self.awake.keys();
        let mut awake = Vec::with_capacity(keys.len());
        keys.retain(|key| match apps.get(key) {
            Some(app) if app.state() == crate::model::State::Awake => {
                awake.push(Arc::clone(app));
                true
            }
            _ => false,
        });
        awake
    }

    /// The provider accounts now.
    pub fn providers(&self) -> Arc<Vec<Arc<dyn Provider>>> {
        self.providers.load_full()
    }

    /// The settings now, for a short read on the request path (no reference count taken;
    /// not to be held across an await).
    pub fn settings_now(&self) -> arc_swap::Guard<Arc<Settings>> {
        self.settings.load()
    }

    /// Its space's plan.
    pub fn plan(&self) -> crate::plan::Plan {
        self.settings.load().plan.clone()
    }

    /// What a wake beyond the plan does.
    pub fn on_limit(&self) -> crate::plan::OnLimit {
        self.settings.load().on_limit
    }

    /// The space its apps belong to.
    pub fn space(&self) -> &str {
        &self.space
    }

    /// The registry's shared side.
    pub fn registry(&self) -> &Arc<dyn Registry> {
        &self.registry
    }

    /// The engine's metrics.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// The engine's clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The app with this provider id and name.
    pub fn app(&self, provider: &str, name: &str) -> Option<Arc<App>> {
        lock(&self.apps)
            .get(&AppKey::new(&self.space, provider, name))
            .cloned()
    }

    /// Runs a hook whose failure is recorded and does not stop what it is part of.
    async fn hook(
        &self,
        app: &App,
        hook: crate::hooks::Hook,
        cause: &str,
        span: &crate::traces::Span,
    ) {
        let hooks = app.conf().hooks.clone();
        let mut traced = hook_span(span, hook);
        let Some(run) = crate::hooks::run(&hooks, hook, &app.key, cause).await else {
            // No such hook: no span.
            traced.discard();
            return;
        };
        if !run.succeeded() {
            traced.fail(run.reason());
            self.events.emit(
                &app.key,
                EventKind::HookFailed {
                    hook: hook.name().to_owned(),
                    reason: run.reason(),
                },
            );
        }
    }

    /// Engine shutdown: each provider stops what must not outlive the engine.
    pub async fn shutdown(&self) {
        let retired = std::mem::take(&mut *lock(&self.retired));
        for provider in self.providers.load().iter().chain(&retired) {
            provider.shutdown().await;
        }
    }
}
