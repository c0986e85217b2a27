//! The registry of managed apps and their lifecycle: the only place that starts and stops
//! apps and changes their state.
//!
//! States: `Asleep -> Waking -> Awake -> Stopping -> Asleep`, and `Failed` when a wake could
//! not complete. Each transition is done here, atomically (check-and-set on the app's phase),
//! and emits an [`Event`](crate::events::Event). Requests, the scheduler and discovery all go
//! through the same functions. The request path reads an app's state and upstream without
//! locks held across an await and without provider calls.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{broadcast, watch};
use tokio::time::{Instant, sleep, timeout_at};

use crate::events::{EventKind, EventLog, StopCause, WakeCause};
use crate::model::Policy;
use crate::model::{AppKey, Formation, State, Upstream};
use crate::providers::{AppExited, AppInfo, AppStatus, Provider};
use crate::proxy::route::RouteTable;
use crate::registry::{Claim, Lease, MemoryRegistry, Notice, Registry, Shared};
use crate::rules::{Filter, Rules};
use crate::store::{CatalogEntry, SeenApp};

/// What the lifecycle hands to the durable catalog (besides events), in order.
#[derive(Debug)]
pub enum Record {
    /// Discovery listed the app (sent before any event about it).
    Seen {
        /// Which app.
        key: AppKey,
        /// What was seen.
        seen: SeenApp,
        /// When.
        at: SystemTime,
    },
    /// The formation to restore on the next wake changed.
    Formation {
        /// Which app.
        key: AppKey,
        /// The new one.
        formation: Option<Formation>,
    },
    /// An event (from the event log's sink).
    Event(crate::events::Event),
    /// Answered once everything queued before it is written.
    Barrier(tokio::sync::oneshot::Sender<()>),
}

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
    /// What a wake beyond the plan does.
    pub on_limit: crate::plan::OnLimit,
    /// The wall-clock time the engine's clock starts at, instead of the system's: wall
    /// time then follows tokio's clock, so tests can run a simulated week with paused time.
    pub wall_start: Option<SystemTime>,
    /// Where the apps' upstreams may be (`health_path` probes included): a hosted tenant's
    /// at public addresses only.
    pub upstreams: crate::address::UpstreamScope,
}

/// On-demand discoveries (for a host no app answers to) are at most this frequent.
pub const REDISCOVER_EVERY: Duration = Duration::from_secs(10);

/// An app's state with what explains it.
#[derive(Debug, Clone)]
pub struct Phase {
    /// The state.
    pub state: State,
    /// Why the app is `Failed` (the provider's or the readiness check's words).
    pub reason: Option<Arc<str>>,
    /// When the app entered this state.
    pub since: Instant,
}

/// Why a request could not be given an awake app.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WakeError {
    /// The app was not ready before the request's wake deadline.
    #[error("the app did not become ready within {}s", .0.as_secs())]
    Timeout(Duration),
    /// The wake failed.
    #[error("the app could not be started: {0}")]
    Failed(Arc<str>),
    /// The app is awake but its provider gave no address to forward to.
    #[error("the provider gives no address for this app")]
    NoUpstream,
    /// The plan allows no more running apps on this provider (and none could be stopped
    /// to make room).
    #[error("{0}")]
    Limit(Arc<str>),
}

/// Start durations kept per app (for ETAs).
const START_HISTORY: usize = 10;

/// How long after a start a provider saying "stopped" is taken as "not started yet".
const STOPPED_GRACE: Duration = Duration::from_secs(10);

/// After a failed stop, how long before the idle check tries again.
const STOP_RETRY_DELAY: Duration = Duration::from_secs(30);

/// One managed app: its hot state, read by every request.
#[derive(Debug)]
pub struct App {
    /// Which app.
    pub key: AppKey,
    /// The provider account that runs it.
    provider: Arc<dyn Provider>,
    /// Extra route keys the provider gives (Clever Cloud ids).
    pub aliases: Vec<String>,
    /// Its effective policy (defaults with its overrides applied).
    pub policy: Policy,
    /// State and reason; subscribers are woken on every change (held requests wait on it).
    phase: watch::Sender<Phase>,
    /// Mirror of `phase.state` for the request path's lock-free read (written under the
    /// phase's lock, so both always agree once a transition returns).
    state: AtomicU8,
    /// Milliseconds since the engine clock's epoch at the last request.
    last_activity: AtomicU64,
    /// Requests (and response bodies) in progress: an app is never stopped under them.
    in_flight: AtomicUsize,
    /// Where requests go; updated by discovery.
    upstream: ArcSwapOption<Upstream>,
    /// The formation to restore on wake (remembered at the last stop, or last seen
    /// running); `None` when nothing is known (the provider then starts what it can).
    formation: Mutex<Option<Formation>>,
    /// Recent start durations, newest last.
    start_durations: Mutex<VecDeque<Duration>>,
    /// Engine-clock milliseconds before which the idle check must not try to stop again.
    stop_retry_at: AtomicU64,
    /// Counts state changes, so discovery can tell that a listing taken before a change is
    /// stale for this app.
    transitions: AtomicU64,
    /// Registered as asleep from a listing that did not tell its state (Heroku): the
    /// scheduler asks the provider, a few apps per tick.
    unverified: std::sync::atomic::AtomicBool,
    /// The formation a rule gives, started when none is remembered.
    default_formation: Option<Formation>,
    /// Names of the apps woken and kept awake with this one (`rules[].linked_apps`).
    pub linked_names: Vec<String>,
    /// Those apps, resolved whenever the set of apps changes (weak: apps come and go).
    linked: ArcSwap<Vec<Weak<App>>>,
    /// `last_activity` as last written to the catalog (only changes are written).
    flushed_activity: AtomicU64,
    /// Whether other instances share this app (a Redis registry and a platform provider;
    /// local processes are each instance's own).
    coordinated: bool,
    /// The shared state's change counter this copy reflects.
    remote_seq: AtomicU64,
    /// True while this instance wakes or stops the app: its own copy is the truth then, and
    /// announcements from other instances are not applied to it.
    busy: std::sync::atomic::AtomicBool,
    /// A change made while the shared state was unreachable, to announce once it is back.
    unpublished: std::sync::atomic::AtomicBool,
    /// `last_activity` as the shared state has it (written or read back), engine clock.
    shared_activity: AtomicU64,
    /// Requests answered, by status class (`/metrics`).
    requests: crate::metrics::RequestCounts,
    /// Engine-clock milliseconds until which the app is kept awake (`PUT .../pin`); 0: not
    /// pinned, `u64::MAX`: until unpinned.
    pinned_until: AtomicU64,
    /// Why and when its latest wake was asked for.
    last_wake: Mutex<Option<(SystemTime, WakeCause)>>,
    /// Its hooks (global ones, then its rules').
    hooks: crate::hooks::Hooks,
    /// Indices of the schedules that apply to it (matched once, at registration).
    schedules: Vec<usize>,
}

impl App {
    /// The current state (lock-free).
    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::SeqCst))
    }

    /// The current state and reason.
    pub fn phase(&self) -> Phase {
        self.phase.borrow().clone()
    }

    /// Where requests go, if known.
    pub fn upstream(&self) -> Option<Arc<Upstream>> {
        self.upstream.load_full()
    }

    /// The provider id.
    pub fn provider_id(&self) -> &str {
        self.provider.id()
    }

    /// Recent start durations, oldest first.
    pub fn start_durations(&self) -> Vec<Duration> {
        lock(&self.start_durations).iter().copied().collect()
    }

    /// How long a start usually takes: the mean of the recent ones.
    pub fn eta(&self) -> Option<Duration> {
        let durations = lock(&self.start_durations);
        let count = u32::try_from(durations.len()).ok().filter(|n| *n > 0)?;
        Some(durations.iter().sum::<Duration>() / count)
    }

    /// The linked apps that exist now.
    pub fn linked(&self) -> Vec<Arc<App>> {
        self.linked
            .load()
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// Requests in progress.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Whether other instances share this app's state.
    pub fn coordinated(&self) -> bool {
        self.coordinated
    }

    /// Requests answered for it, by status class.
    pub fn requests(&self) -> &crate::metrics::RequestCounts {
        &self.requests
    }

    /// The formation its next wake starts (remembered, or the rule's).
    pub fn formation(&self) -> Option<Formation> {
        lock(&self.formation)
            .clone()
            .or_else(|| self.default_formation.clone())
    }

    /// Why and when its latest wake was asked for.
    pub fn last_wake(&self) -> Option<(SystemTime, WakeCause)> {
        lock(&self.last_wake).clone()
    }

    /// Engine-clock milliseconds of its last activity.
    pub fn last_activity_ms(&self) -> u64 {
        self.last_activity.load(Ordering::SeqCst)
    }

    /// Engine-clock milliseconds until which it is pinned awake (`u64::MAX`: until
    /// unpinned), if it is.
    pub fn pinned_until_ms(&self) -> Option<u64> {
        Some(self.pinned_until.load(Ordering::SeqCst)).filter(|ms| *ms > 0)
    }

    /// Atomically moves from one of `from` to `to`; false (and nothing changed) otherwise.
    fn transition(&self, from: &[State], to: State, reason: Option<Arc<str>>) -> bool {
        self.phase.send_if_modified(|phase| {
            if from.contains(&phase.state) {
                phase.state = to;
                phase.reason = reason;
                phase.since = Instant::now();
                self.state.store(to as u8, Ordering::SeqCst);
                self.transitions.fetch_add(1, Ordering::SeqCst);
                true
            } else {
                false
            }
        })
    }
}

/// Marks one request in progress for an app: created before the state is read, dropped when
/// the response body is done (or abandoned). Dropping it counts as activity.
#[derive(Debug)]
pub struct InFlight {
    /// The app the request is for.
    app: Arc<App>,
    /// Engine clock, to record the activity at the end.
    clock: Clock,
    /// False for requests that do not count as activity (monitors).
    activity: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.activity {
            touch(&self.app, self.clock.now_ms());
        }
        self.app.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Marks an app as being woken or stopped by this instance, until dropped.
struct Busy<'a>(&'a App);

impl<'a> Busy<'a> {
    fn mark(app: &'a App) -> Busy<'a> {
        app.busy.store(true, Ordering::SeqCst);
        Busy(app)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::SeqCst);
    }
}

/// Who brings an app up, as the registry decided.
enum Waker {
    /// This instance (with the app's lease, or alone while the shared state is unreachable).
    Us(Option<Lease>),
    /// Another instance did: the app is awake.
    Other,
    /// Another instance tried and failed, for this reason.
    OtherFailed(String),
    /// Another instance held the app past this wake's deadline.
    Timeout,
}

/// The `reason` label of a stop.
fn stop_reason(cause: &StopCause) -> &'static str {
    match cause {
        StopCause::Idle { .. } => "idle",
        StopCause::WakeFailed => "wake_failed",
        StopCause::Schedule { .. } => "schedule",
        StopCause::Api { .. } => "api",
        StopCause::PlanLimit { .. } => "plan_limit",
    }
}

/// How often a wake held by another instance is checked besides its announcements.
const REMOTE_WAKE_POLL: Duration = Duration::from_millis(250);

/// Engine-clock readings start this far from zero, so activity remembered from before the
/// engine started (the catalog) fits on the same clock (about 31 years).
const CLOCK_OFFSET_MS: u64 = 1_000_000_000_000;

/// Milliseconds since the engine started, from tokio's clock (so tests can pause time).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// The engine's start.
    epoch: Instant,
    /// The wall time at `epoch` when simulated (tests); `None`: the system's time.
    wall_start: Option<SystemTime>,
}

impl Clock {
    fn new(wall_start: Option<SystemTime>) -> Clock {
        Clock {
            epoch: Instant::now(),
            wall_start,
        }
    }

    /// The wall-clock time now (the system's, or the simulated one).
    pub fn wall_now(&self) -> SystemTime {
        match self.wall_start {
            Some(start) => start + self.epoch.elapsed(),
            None => SystemTime::now(),
        }
    }

    /// Milliseconds since the epoch, plus [`CLOCK_OFFSET_MS`].
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(CLOCK_OFFSET_MS)
    }

    /// The wall-clock time of an engine-clock reading.
    pub fn wall(&self, ms: u64) -> SystemTime {
        let ago = Duration::from_millis(self.now_ms().saturating_sub(ms));
        self.wall_now()
            .checked_sub(ago)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// The engine-clock reading of a wall-clock time (at most now).
    pub fn from_wall(&self, at: SystemTime) -> u64 {
        let ago = self.wall_now().duration_since(at).unwrap_or_default();
        self.now_ms()
            .saturating_sub(u64::try_from(ago.as_millis()).unwrap_or(u64::MAX))
    }
}

/// Whether one of the app's schedules is inside a keep-awake window.
fn kept_awake(app: &App, snapshot: &crate::schedules::Snapshot) -> bool {
    app.schedules
        .iter()
        .any(|index| snapshot.get(*index).is_some_and(|now| now.keep_awake))
}

fn touch(app: &App, now: u64) {
    // A plain load first: most requests find the value already current and write nothing.
    if app.last_activity.load(Ordering::Relaxed) < now {
        app.last_activity.fetch_max(now, Ordering::Relaxed);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The registry and the state machine for every managed app of the engine.
#[derive(Debug)]
pub struct Lifecycle {
    /// The engine's clock.
    clock: Clock,
    /// Every provider account, in config order.
    providers: Vec<Arc<dyn Provider>>,
    /// Defaults, rules and the discovery filter.
    settings: Settings,
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
    /// Route key -> app, rebuilt when the set of apps changes; read by every request.
    routes: ArcSwap<RouteTable>,
    /// What happened.
    events: EventLog,
    /// Client for `health_path` probes.
    probe: Client<HttpConnector, Empty<Bytes>>,
    /// The engine's runtime: wakes and stops run there, whichever thread asked for them
    /// (proxy workers have runtimes of their own that end before the engine's).
    runtime: tokio::runtime::Handle,
    /// What this instance shares with the others (leases, leadership, activity).
    registry: Arc<dyn Registry>,
    /// Counters and histograms for `/metrics`.
    metrics: Arc<crate::metrics::Metrics>,
    /// The schedules and where each stands.
    schedules: crate::schedules::Tracker,
    /// Held while a wake is checked against the plan and begun, so two wakes cannot both
    /// take the last place.
    wake_gate: Mutex<()>,
    /// The space of every app here (keys, events, registry entries carry it).
    space: Arc<str>,
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
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let probe = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Arc::new(Lifecycle {
            clock: Clock::new(settings.wall_start),
            schedules: crate::schedules::Tracker::new(settings.schedules.clone()),
            wake_gate: Mutex::new(()),
            space: if settings.space.is_empty() {
                crate::model::DEFAULT_SPACE.into()
            } else {
                settings.space.as_str().into()
            },
            providers,
            settings,
            rediscovered: tokio::sync::Mutex::new(None),
            remembered: Mutex::new(HashMap::new()),
            records: std::sync::OnceLock::new(),
            apps: Mutex::new(BTreeMap::new()),
            routes: ArcSwap::from_pointee(RouteTable::default()),
            events: EventLog::new(1000),
            probe,
            runtime: tokio::runtime::Handle::current(),
            registry,
            metrics: Arc::default(),
        })
    }

    /// Remembers what the catalog knows of these apps, for when discovery registers them
    /// (call before the first discovery).
    pub fn remember(&self, entries: Vec<CatalogEntry>) {
        let mut remembered = lock(&self.remembered);
        for entry in entries.into_iter().filter(|e| e.deleted_at.is_none()) {
            remembered.insert(entry.key.clone(), entry);
        }
    }

    /// Sends catalog records (and every event) to `records` from now on (once).
    pub fn record_to(&self, records: tokio::sync::mpsc::UnboundedSender<Record>) {
        let events = records.clone();
        if self.records.set(records).is_ok() {
            self.events
                .set_sink(crate::events::Sink(Box::new(move |event| {
                    let _ = events.send(Record::Event(event.clone()));
                })));
        }
    }

    fn record(&self, record: impl FnOnce() -> Record) {
        if let Some(records) = self.records.get() {
            let _ = records.send(record());
        }
    }

    /// Apps whose last activity changed since the previous call, with its wall-clock time.
    pub fn activity_changes(&self) -> Vec<(AppKey, SystemTime)> {
        self.apps()
            .iter()
            .filter_map(|app| {
                let last = app.last_activity.load(Ordering::SeqCst);
                let flushed = app.flushed_activity.swap(last, Ordering::SeqCst);
                (last != flushed).then(|| (app.key.clone(), self.clock.wall(last)))
            })
            .collect()
    }

    /// The event log.
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// The route table now.
    pub fn routes(&self) -> Arc<RouteTable> {
        self.routes.load_full()
    }

    /// Every managed app, by key.
    pub fn apps(&self) -> Vec<Arc<App>> {
        lock(&self.apps).values().cloned().collect()
    }

    /// The provider accounts.
    pub fn providers(&self) -> &[Arc<dyn Provider>] {
        &self.providers
    }

    /// Its space's plan.
    pub fn plan(&self) -> &crate::plan::Plan {
        &self.settings.plan
    }

    /// What a wake beyond the plan does.
    pub fn on_limit(&self) -> crate::plan::OnLimit {
        self.settings.on_limit
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

    /// Keeps the app awake until `until` (`None`: until unpinned): the idle check leaves
    /// it alone. Pinning does not wake it. Shared with the other instances (the leader is
    /// the one that would stop it).
    pub async fn pin(&self, app: &App, until: Option<SystemTime>) {
        self.set_pin(app, Some(until));
        if app.coordinated && !self.registry.set_pin(&app.key, Some(until)).await {
            tracing::warn!(app = %app.key, "pin not shared: the registry cannot be reached");
        }
    }

    /// Lets the idle check stop the app again.
    pub async fn unpin(&self, app: &App) {
        self.set_pin(app, None);
        if app.coordinated && !self.registry.set_pin(&app.key, None).await {
            tracing::warn!(app = %app.key, "unpin not shared: the registry cannot be reached");
        }
    }

    /// This instance's copy of a pin (`None`: not pinned; `Some(None)`: until unpinned).
    fn set_pin(&self, app: &App, pinned: Option<Option<SystemTime>>) {
        let ms = match pinned {
            None => 0,
            Some(None) => u64::MAX,
            Some(Some(at)) => {
                let ahead = at.duration_since(self.clock.wall_now()).unwrap_or_default();
                self.clock
                    .now_ms()
                    .saturating_add(u64::try_from(ahead.as_millis()).unwrap_or(u64::MAX))
                    .max(1)
            }
        };
        app.pinned_until.store(ms, Ordering::SeqCst);
    }

    /// Stops an awake app now, whatever its idle time (the admin API). False when it is not
    /// awake (asleep, or already waking or stopping).
    pub fn stop_now(self: &Arc<Self>, app: &Arc<App>, cause: StopCause) -> bool {
        if !app.transition(&[State::Awake], State::Stopping, None) {
            return false;
        }
        self.runtime
            .spawn(Arc::clone(self).run_stop(Arc::clone(app), cause));
        true
    }

    /// Marks a request in progress and counts it as activity. Call before reading the state.
    pub fn begin_request(&self, app: &Arc<App>) -> InFlight {
        app.in_flight.fetch_add(1, Ordering::SeqCst);
        let now = self.clock.now_ms();
        touch(app, now);
        if !app.linked_names.is_empty() {
            for linked in app.linked.load().iter().filter_map(Weak::upgrade) {
                touch(&linked, now);
            }
        }
        InFlight {
            app: Arc::clone(app),
            clock: self.clock,
            activity: true,
        }
    }

    /// Marks a request in progress that does not count as activity (an uptime monitor's):
    /// the app is not stopped under it, but its idle time keeps running.
    pub fn begin_quiet_request(&self, app: &Arc<App>) -> InFlight {
        app.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight {
            app: Arc::clone(app),
            clock: self.clock,
            activity: false,
        }
    }

    /// Starts waking the app if it is asleep (or its last wake failed), without waiting.
    /// Err when the plan allows no more running apps on its provider.
    pub fn request_wake(
        self: &Arc<Self>,
        app: &Arc<App>,
        cause: impl FnOnce() -> WakeCause,
    ) -> Result<(), WakeError> {
        self.begin_wake(app, &[State::Asleep, State::Failed], || Some(cause()))
            .map(|_| ())
    }

    /// Moves the app from one of `from` to Waking and starts the wake, within the plan:
    /// beyond `running_apps_per_provider` the wake is refused, or (`on_limit: evict_lru`)
    /// the least recently active awake app of the provider is stopped first. Ok(true): this
    /// call began the wake; Ok(false): the app was not in `from`.
    fn begin_wake(
        self: &Arc<Self>,
        app: &Arc<App>,
        from: &[State],
        cause: impl FnOnce() -> Option<WakeCause>,
    ) -> Result<bool, WakeError> {
        // With a limit, the check and the transition are one step under the gate.
        let _gate = match self.settings.plan.running_apps_per_provider {
            Some(limit) => {
                let gate = lock(&self.wake_gate);
                if !from.contains(&app.state()) {
                    return Ok(false);
                }
                self.make_room(app, limit)?;
                Some(gate)
            }
            None => None,
        };
        if !app.transition(from, State::Waking, None) {
            return Ok(false);
        }
        self.runtime
            .spawn(Arc::clone(self).run_wake(Arc::clone(app), cause()));
        Ok(true)
    }

    /// Makes sure one more app of `app`'s provider may run within `limit`: refused
    /// (`on_limit: reject`, or nothing can be stopped), or the least recently active apps
    /// that can be stopped now are stopped first. Called under the wake gate.
    fn make_room(self: &Arc<Self>, app: &Arc<App>, limit: usize) -> Result<(), WakeError> {
        let provider = app.provider.id();
        let running: Vec<Arc<App>> = self
            .apps()
            .into_iter()
            .filter(|other| {
                other.provider.id() == provider
                    && !Arc::ptr_eq(other, app)
                    && matches!(other.state(), State::Awake | State::Waking)
            })
            .collect();
        if running.len() < limit {
            return Ok(());
        }
        let refused = || {
            WakeError::Limit(
                format!(
                    "the plan {} allows {limit} running apps on `{provider}`, and {} are \
                     running: stop one, or wait until one sleeps",
                    self.settings.plan,
                    running.len()
                )
                .into(),
            )
        };
        if self.settings.on_limit == crate::plan::OnLimit::Reject {
            return Err(refused());
        }
        // Room is made by stopping the least recently active apps that can be stopped
        // now (awake, not pinned, no request in progress).
        let now = self.clock.now_ms();
        let mut candidates: Vec<&Arc<App>> = running
            .iter()
            .filter(|other| {
                other.state() == State::Awake
                    && other.in_flight() == 0
                    && other.pinned_until.load(Ordering::SeqCst) <= now
            })
            .collect();
        candidates.sort_by_key(|other| other.last_activity.load(Ordering::SeqCst));
        let needed = running.len() + 1 - limit;
        let victims: Vec<&Arc<App>> = candidates.into_iter().take(needed).collect();
        if victims.len() < needed {
            return Err(refused());
        }
        for victim in victims {
            if victim.transition(&[State::Awake], State::Stopping, None) {
                let cause = StopCause::PlanLimit {
                    for_app: app.key.name.to_string(),
                };
                self.runtime
                    .spawn(Arc::clone(self).run_stop(Arc::clone(victim), cause));
            }
        }
        Ok(())
    }

    /// Returns the app's upstream once it is awake, waking it if needed (one wake at a time
    /// per app, whoever asks), or an error when `deadline` passes or the wake fails.
    pub async fn ensure_awake(
        self: &Arc<Self>,
        app: &Arc<App>,
        cause: impl FnOnce() -> WakeCause,
        deadline: Instant,
    ) -> Result<Arc<Upstream>, WakeError> {
        let mut cause = Some(cause);
        let mut phases = app.phase.subscribe();
        // Set once this request has seen a wake in progress: a failure after that is the
        // answer, while a failure found on arrival is a reason to try again.
        let mut saw_wake = false;
        loop {
            let phase = phases.borrow_and_update().clone();
            match phase.state {
                State::Awake => return app.upstream().ok_or(WakeError::NoUpstream),
                State::Failed if saw_wake => {
                    return Err(WakeError::Failed(
                        phase.reason.unwrap_or_else(|| "unknown reason".into()),
                    ));
                }
                State::Asleep | State::Failed => {
                    self.begin_wake(app, &[State::Asleep, State::Failed], || {
                        cause.take().map(|make| make())
                    })?;
                    saw_wake = true;
                    continue;
                }
                State::Waking => saw_wake = true,
                // Another instance is stopping it: this one wakes it as soon as that stop
                // is over (the wake waits for the app's lease).
                State::Stopping if app.coordinated && !app.busy.load(Ordering::SeqCst) => {
                    self.begin_wake(app, &[State::Stopping], || cause.take().map(|make| make()))?;
                    saw_wake = true;
                    continue;
                }
                State::Stopping => {}
            }
            match timeout_at(deadline, phases.changed()).await {
                Ok(Ok(())) => {}
                // The sender lives in the app, which we hold: it cannot be dropped.
                Ok(Err(_)) => return Err(WakeError::Failed("app removed".into())),
                Err(_) => return Err(WakeError::Timeout(app.policy.wake_timeout)),
            }
        }
    }

    async fn run_wake(self: Arc<Self>, app: Arc<App>, cause: Option<WakeCause>) {
        let _busy = Busy::mark(&app);
        let started = Instant::now();
        let cause_text = cause.as_ref().map(ToString::to_string).unwrap_or_default();
        if let Some(cause) = cause {
            *lock(&app.last_wake) = Some((SystemTime::now(), cause.clone()));
            self.events
                .emit(&app.key, EventKind::WakeRequested { cause });
        }
        // Linked apps wake with it, each on its own (this wake does not wait for them).
        for linked in app.linked() {
            if let Err(error) = self.request_wake(&linked, || WakeCause::Linked {
                app: app.key.name.to_string(),
            }) {
                tracing::warn!(app = %linked.key, %error, "linked app not woken");
            }
        }
        let deadline = started + app.policy.wake_timeout;
        let lease = match self.waker(&app, deadline).await {
            Waker::Us(lease) => lease,
            Waker::Other => {
                self.metrics
                    .wake(crate::metrics::WakeResult::Elsewhere, None);
                touch(&app, self.clock.now_ms());
                if app.transition(&[State::Waking], State::Awake, None) {
                    tracing::debug!(app = %app.key, "woken by another instance");
                }
                return;
            }
            Waker::OtherFailed(reason) => {
                app.transition(&[State::Waking], State::Failed, Some(reason.into()));
                return;
            }
            Waker::Timeout => {
                let reason = format!(
                    "not ready after {}s (another instance was starting it)",
                    app.policy.wake_timeout.as_secs()
                );
                app.transition(&[State::Waking], State::Failed, Some(reason.into()));
                return;
            }
        };
        // Hooks run on the instance that holds the lease: once per wake.
        self.hook(&app, crate::hooks::Hook::BeforeStart, &cause_text)
            .await;
        let outcome = self.bring_up(&app, deadline).await;
        match outcome {
            Ok(reconciled) => {
                self.hook(&app, crate::hooks::Hook::AfterStart, &cause_text)
                    .await;
                let duration = started.elapsed();
                let now = self.clock.now_ms();
                touch(&app, now);
                {
                    let mut durations = lock(&app.start_durations);
                    if durations.len() == START_HISTORY {
                        durations.pop_front();
                    }
                    durations.push_back(duration);
                }
                if app.transition(&[State::Waking], State::Awake, None) {
                    self.events.emit(
                        &app.key,
                        EventKind::Started {
                            duration,
                            reconciled,
                        },
                    );
                }
                self.metrics
                    .wake(crate::metrics::WakeResult::Started, Some(duration));
                self.finish(&app, lease, State::Awake, None).await;
            }
            Err(reason) => {
                // Whatever was half-started is stopped again before the failure is announced,
                // so the next wake starts from a clean state (and with the same formation).
                match app.provider.stop(&app.key.name).await {
                    Ok(crate::providers::Stopped {
                        formation: Some(formation),
                        ..
                    }) if formation.values().any(|n| *n > 0) => {
                        self.remember_formation(&app, formation);
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(app = %app.key, %error, "could not stop after failed wake")
                    }
                }
                let reason: Arc<str> = reason.into();
                if app.transition(&[State::Waking], State::Failed, Some(Arc::clone(&reason))) {
                    self.events.emit(
                        &app.key,
                        EventKind::StartFailed {
                            reason: reason.to_string(),
                        },
                    );
                }
                self.metrics.wake(crate::metrics::WakeResult::Failed, None);
                self.finish(&app, lease, State::Failed, Some(&reason)).await;
            }
        }
    }

    /// Decides who brings the app up: this instance when it gets the app's lease (or the
    /// shared state is unreachable), else it waits for the instance that holds it.
    async fn waker(&self, app: &App, deadline: Instant) -> Waker {
        if !app.coordinated {
            return Waker::Us(None);
        }
        let mut notices = self.registry.notices();
        // The change counter when another instance was first found holding the app.
        let mut busy_since: Option<u64> = None;
        loop {
            match self.registry.claim_wake(&app.key).await {
                Claim::Granted(lease) => {
                    app.remote_seq.fetch_max(lease.seq, Ordering::SeqCst);
                    return Waker::Us(Some(lease));
                }
                Claim::AlreadyAwake => return Waker::Other,
                Claim::Unavailable => {
                    // Alone: started here, announced once the shared state is back.
                    app.unpublished.store(true, Ordering::SeqCst);
                    return Waker::Us(None);
                }
                Claim::Busy | Claim::Active(_) => {}
            }
            if let Some(shared) = self.registry.shared(&app.key).await {
                match (shared.state, busy_since) {
                    (Some(State::Awake), _) => return Waker::Other,
                    (Some(State::Failed), Some(seq)) if shared.seq > seq => {
                        return Waker::OtherFailed(
                            shared.reason.unwrap_or_else(|| "start failed".to_owned()),
                        );
                    }
                    (_, None) => busy_since = Some(shared.seq),
                    _ => {}
                }
            }
            // Until an announcement about this app, or the next poll.
            let poll = Instant::now() + REMOTE_WAKE_POLL;
            let wait = async {
                match notices.as_mut() {
                    Some(notices) => loop {
                        match notices.recv().await {
                            Ok(Notice::State { key, .. }) if key == app.key => break,
                            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                            Err(broadcast::error::RecvError::Closed) => {
                                std::future::pending::<()>().await
                            }
                        }
                    },
                    None => std::future::pending::<()>().await,
                }
            };
            let _ = timeout_at(poll.min(deadline), wait).await;
            if Instant::now() >= deadline {
                return Waker::Timeout;
            }
        }
    }

    /// Announces the outcome of a wake or stop to the other instances (later, if the shared
    /// state cannot be reached now).
    async fn finish(&self, app: &App, lease: Option<Lease>, state: State, reason: Option<&str>) {
        if !app.coordinated {
            return;
        }
        let activity = Some(self.clock.wall(app.last_activity.load(Ordering::SeqCst)));
        let written = match lease {
            Some(lease) => self.registry.finish(lease, state, reason, activity).await,
            None => crate::registry::Finished::Unavailable,
        };
        match written {
            crate::registry::Finished::Written(seq) => {
                app.remote_seq.fetch_max(seq, Ordering::SeqCst);
            }
            // Another instance took the app over: its state stands (this copy follows it at
            // the next sync), and this outcome is never shared.
            crate::registry::Finished::LeaseLost => {}
            crate::registry::Finished::Unavailable => app.unpublished.store(true, Ordering::SeqCst),
        }
    }

    /// Starts the app and waits until it is ready (provider status, then `health_path`).
    /// Returns what the start changed of what was remembered, to match the platform.
    async fn bring_up(
        &self,
        app: &App,
        deadline: Instant,
    ) -> Result<Option<crate::model::Reconciled>, String> {
        let name = &app.key.name;
        let wake_timeout = app.policy.wake_timeout;
        let timed_out =
            |what: &str| format!("not ready after {}s ({what})", wake_timeout.as_secs());
        let formation = lock(&app.formation)
            .clone()
            .or_else(|| app.default_formation.clone());
        let started = timeout_at(deadline, app.provider.start(name, formation.as_ref())).await;
        if let Ok(result) = &started {
            self.metrics
                .provider_call(app.provider.id(), "start", result.is_ok());
            if let Err(error) = result {
                self.metrics
                    .provider_error(app.provider.id(), format!("start {name}: {error}"));
            }
        }
        let reconciled = match started {
            Ok(Ok(started)) => self.reconcile(app, started),
            Ok(Err(error)) => return Err(format!("start failed: {error}")),
            Err(_) => return Err(timed_out("the start call did not return")),
        };
        let accepted = Instant::now();
        let intervals = app.provider.poll_intervals();
        let mut wait = intervals.first;
        let mut last = "starting".to_owned();
        loop {
            let status = timeout_at(deadline, app.provider.status(name)).await;
            if let Ok(result) = &status {
                self.metrics
                    .provider_call(app.provider.id(), "status", result.is_ok());
            }
            match status {
                Ok(Ok(AppStatus::Running)) => break,
                Ok(Ok(AppStatus::Starting | AppStatus::Unknown)) => {
                    last = "still starting".to_owned()
                }
                // Platforms may still say "stopped" for a moment after accepting a start.
                Ok(Ok(AppStatus::Stopped)) if accepted.elapsed() < STOPPED_GRACE => {
                    last = "not started yet".to_owned()
                }
                Ok(Ok(AppStatus::Stopped)) => return Err("stopped while starting".to_owned()),
                Ok(Ok(AppStatus::Failed(reason))) => return Err(reason),
                Ok(Err(error)) if error.retryable() => last = format!("status: {error}"),
                Ok(Err(error)) => return Err(format!("status: {error}")),
                Err(_) => return Err(timed_out(&last)),
            }
            if timeout_at(deadline, sleep(wait)).await.is_err() {
                return Err(timed_out(&last));
            }
            wait = (wait * 3 / 2).min(intervals.max);
        }
        let Some(path) = &app.policy.health_path else {
            return Ok(reconciled);
        };
        let upstream = app
            .upstream()
            .ok_or_else(|| "the provider gives no address for this app".to_owned())?;
        // A tenant's app is probed at an address its scope allows, the one checked (by
        // address, with its host name in `Host`, so a name cannot change its answer between
        // the check and the probe).
        let uri = match self.settings.upstreams {
            crate::address::UpstreamScope::Any => format!("{upstream}{path}"),
            scope => {
                let (host, port) = upstream.address();
                let resolved = tokio::net::lookup_host((host, port))
                    .await
                    .map_err(|error| format!("health_path {path}: {host}: {error}"))?;
                let Some(address) = scope.allowed(resolved).into_iter().next() else {
                    return Err(format!(
                        "{host} resolves only to internal addresses, which this space may not reach"
                    ));
                };
                format!("{}://{address}{path}", upstream.scheme)
            }
        };
        let mut wait = intervals.first;
        loop {
            let request = http::Request::get(&uri)
                .header(http::header::HOST, upstream.host_header().clone())
                .header(http::header::USER_AGENT, "paastis-health-check")
                .body(Empty::new())
                .map_err(|error| format!("health_path {path}: {error}"))?;
            match timeout_at(deadline, self.probe.request(request)).await {
                Ok(Ok(response)) if response.status().as_u16() < 500 => return Ok(reconciled),
                Ok(Ok(response)) => {
                    last = format!("{path} answered {}", response.status().as_u16())
                }
                Ok(Err(error)) => last = format!("{path}: {error}"),
                Err(_) => return Err(timed_out(&last)),
            }
            if timeout_at(deadline, sleep(wait)).await.is_err() {
                return Err(timed_out(&last));
            }
            wait = (wait * 3 / 2).min(intervals.max);
        }
    }

    /// Applies the schedules at the clock's wall time: wakes the apps whose `wake` time
    /// came or whose keep-awake window opened (their linked apps with them), and stops the
    /// awake apps inside a sleep window that saw no activity since it began — unless
    /// pinned, kept awake by another window, or serving a request. An app used after the
    /// window began (a night request, an API start) is left to its idle timer. Shared apps
    /// are acted on by the leader only. Returns how many wakes and stops began.
    pub fn apply_schedules(self: &Arc<Self>) -> usize {
        use crate::schedules::Fired;
        if self.schedules.is_empty() {
            return 0;
        }
        let fired = self.schedules.tick(self.clock.wall_now().into());
        let snapshot = self.schedules.snapshot();
        let schedules = self.schedules.schedules();
        let leader = self.registry.is_leader();
        let mut begun = 0;
        for app in self.apps() {
            if app.schedules.is_empty() || (app.coordinated && !leader) {
                continue;
            }
            let woken_by = fired.iter().find_map(|fired| match fired {
                Fired::Wake(index) if app.schedules.contains(index) => Some(*index),
                _ => None,
            });
            if let Some(index) = woken_by {
                if matches!(app.state(), State::Asleep | State::Failed) {
                    let schedule = schedules[index].label.clone();
                    match self.request_wake(&app, || WakeCause::Schedule { schedule }) {
                        Ok(()) => begun += 1,
                        Err(error) => {
                            tracing::warn!(app = %app.key, %error, "scheduled wake not done")
                        }
                    }
                }
                continue;
            }
            if app.state() != State::Awake || kept_awake(&app, &snapshot) {
                continue;
            }
            let Some((index, since)) = app.schedules.iter().find_map(|index| {
                let window = snapshot.get(*index)?.sleeping?;
                Some((*index, self.clock.from_wall(window.since.into())))
            }) else {
                continue;
            };
            let cause = || StopCause::Schedule {
                schedule: schedules[index].label.clone(),
            };
            if self.begin_stop(app, since, cause) {
                begun += 1;
            }
        }
        begun
    }

    /// Why a request must not wake this app now: it is asleep by a schedule with
    /// `wake_on_request: false`, and neither a pin nor a keep-awake window overrides it.
    pub fn wake_refused(&self, app: &App) -> Option<crate::schedules::Refusal> {
        if app.schedules.is_empty() || app.pinned_until.load(Ordering::SeqCst) > self.clock.now_ms()
        {
            return None;
        }
        let snapshot = self.schedules.snapshot();
        if kept_awake(app, &snapshot) {
            return None;
        }
        let schedules = self.schedules.schedules();
        app.schedules.iter().find_map(|index| {
            let schedule = schedules.get(*index)?;
            if schedule.wake_on_request {
                return None;
            }
            let window = snapshot.get(*index)?.sleeping?;
            Some(crate::schedules::Refusal {
                schedule: schedule.label.clone(),
                until: window.until,
                timezone: schedule.timezone,
            })
        })
    }

    /// Stops every awake app idle for longer than its `max_idle` (never one with a request
    /// in progress, a pin, or inside a keep-awake window). Returns how many stops began.
    pub fn check_idle(self: &Arc<Self>) -> usize {
        let now = self.clock.now_ms();
        let leader = self.registry.is_leader();
        let snapshot = self.schedules.snapshot();
        let mut begun = 0;
        for app in self.apps() {
            let Some(max_idle) = app.policy.max_idle else {
                continue;
            };
            if kept_awake(&app, &snapshot) {
                continue;
            }
            // Shared apps are stopped by the leader only (none while no instance leads).
            if app.coordinated && !leader {
                continue;
            }
            let max_idle_ms = u64::try_from(max_idle.as_millis()).unwrap_or(u64::MAX);
            // Idle for `max_idle` or longer: no activity after `now - max_idle`.
            let quiet_since = now.saturating_sub(max_idle_ms).saturating_add(1);
            let idle_for =
                Duration::from_millis(now.saturating_sub(app.last_activity.load(Ordering::SeqCst)));
            if self.begin_stop(app, quiet_since, || StopCause::Idle { idle_for }) {
                begun += 1;
            }
        }
        begun
    }

    /// Begins stopping an awake app that is free to stop and had no activity at or after
    /// `quiet_since` (engine clock): no request in progress, not pinned, not waiting out a
    /// failed stop. The state is claimed first and the app checked again, since a request
    /// may begin in between: it increments `in_flight` before reading the state, so one of
    /// the two sees the other. True when the stop began.
    fn begin_stop(
        self: &Arc<Self>,
        app: Arc<App>,
        quiet_since: u64,
        cause: impl FnOnce() -> StopCause,
    ) -> bool {
        let now = self.clock.now_ms();
        let active = |app: &App| {
            app.in_flight() > 0 || app.last_activity.load(Ordering::SeqCst) >= quiet_since
        };
        if app.state() != State::Awake
            || active(&app)
            || app.pinned_until.load(Ordering::SeqCst) > now
            || now < app.stop_retry_at.load(Ordering::SeqCst)
            || !app.transition(&[State::Awake], State::Stopping, None)
        {
            return false;
        }
        if active(&app) {
            app.transition(&[State::Stopping], State::Awake, None);
            return false;
        }
        self.runtime.spawn(Arc::clone(self).run_stop(app, cause()));
        true
    }

    async fn run_stop(self: Arc<Self>, app: Arc<App>, cause: StopCause) {
        let _busy = Busy::mark(&app);
        let reason = stop_reason(&cause);
        let lease = if app.coordinated {
            match self.claim_stop(&app, &cause).await {
                Some(lease) => Some(lease),
                None => {
                    app.transition(&[State::Stopping], State::Awake, None);
                    return;
                }
            }
        } else {
            None
        };
        let cause_text = cause.to_string();
        if let Some(run) = crate::hooks::run(
            &app.hooks,
            crate::hooks::Hook::BeforeStop,
            &app.key,
            &cause_text,
        )
        .await
            && !run.succeeded()
        {
            // Vetoed: the app stays awake; the idle check tries again at its next tick.
            let retry_at = self.clock.now_ms()
                + u64::try_from(crate::scheduler::IDLE_CHECK_EVERY.as_millis()).unwrap_or(1000);
            app.stop_retry_at.store(retry_at, Ordering::SeqCst);
            app.transition(&[State::Stopping], State::Awake, None);
            self.events.emit(
                &app.key,
                EventKind::StopVetoed {
                    reason: format!("before_stop {}", run.reason()),
                },
            );
            self.finish(&app, lease, State::Awake, None).await;
            return;
        }
        self.events
            .emit(&app.key, EventKind::StopRequested { cause });
        let stopped = app.provider.stop(&app.key.name).await;
        self.metrics
            .provider_call(app.provider.id(), "stop", stopped.is_ok());
        if let Err(error) = &stopped {
            self.metrics
                .provider_error(app.provider.id(), format!("stop {}: {error}", app.key.name));
        }
        match stopped {
            Ok(stopped) => {
                let formation = stopped.formation.filter(|f| f.values().any(|n| *n > 0));
                if let Some(formation) = &formation {
                    self.remember_formation(&app, formation.clone());
                }
                // What would run but for the stop (savings count it): what the platform
                // said, else what is known of the app.
                let formation = formation.or_else(|| app.formation());
                self.hook(&app, crate::hooks::Hook::AfterStop, &cause_text)
                    .await;
                if app.transition(&[State::Stopping], State::Asleep, None) {
                    self.events.emit(
                        &app.key,
                        EventKind::Stopped {
                            formation,
                            sizes: stopped.sizes,
                        },
                    );
                    self.metrics.stop(reason);
                }
                self.finish(&app, lease, State::Asleep, None).await;
            }
            Err(error) => {
                let retry_at = self.clock.now_ms()
                    + u64::try_from(STOP_RETRY_DELAY.as_millis()).unwrap_or(u64::MAX);
                app.stop_retry_at.store(retry_at, Ordering::SeqCst);
                if app.transition(&[State::Stopping], State::Awake, None) {
                    self.events.emit(
                        &app.key,
                        EventKind::StopFailed {
                            reason: error.to_string(),
                        },
                    );
                }
                self.finish(&app, lease, State::Awake, None).await;
            }
        }
    }

    /// Runs a hook whose failure is recorded and does not stop what it is part of.
    async fn hook(&self, app: &App, hook: crate::hooks::Hook, cause: &str) {
        if let Some(run) = crate::hooks::run(&app.hooks, hook, &app.key, cause).await
            && !run.succeeded()
        {
            self.events.emit(
                &app.key,
                EventKind::HookFailed {
                    hook: hook.name().to_owned(),
                    reason: run.reason(),
                },
            );
        }
    }

    /// The lease to stop a shared app: only while this instance is still the leader (asked
    /// of the shared state, not remembered), and only if no instance saw activity within
    /// the app's `max_idle`. `None`: not now.
    ///
    /// A stop asked through the API, or making room within the plan, may be done by any
    /// instance, whatever the app's activity; it still waits for no other instance to hold
    /// the app. A schedule's stop
    /// needs no activity since its sleep window began.
    async fn claim_stop(&self, app: &App, cause: &StopCause) -> Option<Lease> {
        let now = self.clock.wall_now();
        let idle_before = if let StopCause::Api { .. } | StopCause::PlanLimit { .. } = cause {
            now + Duration::from_secs(86_400)
        } else {
            if !self.registry.confirm_leader().await {
                tracing::debug!(app = %app.key, "stop skipped: not the leader");
                return None;
            }
            match cause {
                StopCause::Schedule { .. } => {
                    let snapshot = self.schedules.snapshot();
                    let window = app
                        .schedules
                        .iter()
                        .find_map(|index| snapshot.get(*index)?.sleeping)?;
                    window.since.into()
                }
                _ => now.checked_sub(app.policy.max_idle?)?,
            }
        };
        match self.registry.claim_stop(&app.key, idle_before).await {
            Claim::Granted(lease) => {
                app.remote_seq.fetch_max(lease.seq, Ordering::SeqCst);
                Some(lease)
            }
            Claim::Active(at) => {
                let at = self.clock.from_wall(at);
                touch(app, at);
                app.shared_activity.fetch_max(at, Ordering::SeqCst);
                tracing::debug!(app = %app.key, "stop skipped: active on another instance");
                None
            }
            Claim::AlreadyAwake | Claim::Busy => {
                tracing::debug!(app = %app.key, "stop skipped: another instance holds the app");
                None
            }
            Claim::Unavailable => None,
        }
    }

    /// Keeps `formation` as the one to restore on the app's next wake (and in the catalog).
    fn remember_formation(&self, app: &App, formation: Formation) {
        let mut current = lock(&app.formation);
        if current.as_ref() != Some(&formation) {
            self.record(|| Record::Formation {
                key: app.key.clone(),
                formation: Some(formation.clone()),
            });
            *current = Some(formation);
        }
    }

    /// Takes in what a start learned from the platform, which is the truth: the formation it
    /// started in place of a remembered one naming process types that are gone (remembered
    /// from now on, in the catalog too), and the app's address when it moved. Returns what
    /// changed (also logged), for the `started` event.
    fn reconcile(
        &self,
        app: &App,
        started: crate::providers::Started,
    ) -> Option<crate::model::Reconciled> {
        let mut reconciled = started.reconciled;
        // A rule's formation is config, not memory: only a remembered one is replaced.
        let remembered = lock(&app.formation).is_some();
        if let Some(changed) = &reconciled
            && remembered
            && !changed.formation.is_empty()
        {
            self.remember_formation(app, changed.formation.clone());
        }
        if let Some(upstream) = started.upstream
            && app.upstream().as_deref() != Some(&upstream)
        {
            reconciled.get_or_insert_default().upstream = Some(upstream.to_string());
            app.upstream.store(Some(Arc::new(upstream)));
        }
        if let Some(changed) = &reconciled {
            tracing::info!(
                app = %app.key,
                dropped = ?changed.dropped,
                formation = ?changed.formation,
                left = ?changed.left,
                upstream = changed.upstream.as_deref().unwrap_or(""),
                "reconciled with the platform"
            );
        }
        reconciled
    }

    /// Lists every provider's apps and brings the registry in line: new apps are managed,
    /// apps found running are awake (activity = now), apps found stopped are asleep, vanished
    /// apps are dropped. A provider that fails keeps its apps as they were.
    pub async fn discover(self: &Arc<Self>) {
        self.discover_with(false).await;
    }

    /// [`Lifecycle::discover`], asking every provider itself even when this instance is
    /// not the leader (on-demand discovery for a host no app answers to yet).
    async fn discover_with(self: &Arc<Self>, ask_providers: bool) {
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
        for provider in &self.providers {
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

    /// Tells the other instances what discovery found: states it corrected (`Some`) and
    /// apps that vanished (`None`).
    async fn announce(&self, changes: Vec<(Arc<App>, Option<State>)>) {
        for (app, state) in changes {
            match state {
                Some(state) => {
                    let activity = Some(self.clock.wall(app.last_activity.load(Ordering::SeqCst)));
                    match self.registry.publish(&app.key, state, activity).await {
                        Some(seq) => {
                            app.remote_seq.fetch_max(seq, Ordering::SeqCst);
                        }
                        None => app.unpublished.store(true, Ordering::SeqCst),
                    }
                }
                None => self.registry.forget(&app.key).await,
            }
        }
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
        let mut apps = lock(&self.apps);
        let mut seen = HashSet::new();
        let mut changed = false;
        for info in listing {
            if !self.settings.filter.manages(&info.name, &info.aliases) {
                continue;
            }
            let key = AppKey::new(&self.space, provider.id(), &info.name);
            seen.insert(key.clone());
            let running = info.status == AppStatus::Running;
            if authority {
                self.record(|| Record::Seen {
                    key: key.clone(),
                    seen: SeenApp {
                        upstream: info.upstream.as_ref().map(ToString::to_string),
                        running,
                    },
                    at: SystemTime::now(),
                });
            }
            let Some(app) = apps.get(&key) else {
                let state = if running { State::Awake } else { State::Asleep };
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
                // Defaults, then the matching rules, then the app's own keys.
                let resolved = self.settings.rules.resolve(&info.name);
                let mut aliases = info.aliases.clone();
                aliases.extend(resolved.alias);
                let app = Arc::new(App {
                    key: key.clone(),
                    provider: Arc::clone(provider),
                    aliases,
                    policy: self
                        .settings
                        .defaults
                        .with(&resolved.policy.then(&info.policy)),
                    phase: watch::Sender::new(Phase {
                        state,
                        reason: None,
                        since: Instant::now(),
                    }),
                    state: AtomicU8::new(state as u8),
                    last_activity: AtomicU64::new(last_activity),
                    in_flight: AtomicUsize::new(0),
                    upstream: ArcSwapOption::from(info.upstream.map(Arc::new)),
                    formation: Mutex::new(formation),
                    start_durations: Mutex::new(start_durations),
                    stop_retry_at: AtomicU64::new(0),
                    transitions: AtomicU64::new(0),
                    unverified: std::sync::atomic::AtomicBool::new(
                        info.status == AppStatus::Unknown,
                    ),
                    default_formation: resolved.formation,
                    linked_names: resolved.linked_apps,
                    linked: ArcSwap::from_pointee(Vec::new()),
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
                    hooks: self.settings.hooks.then(&resolved.hooks),
                    schedules: self.schedules.matching(&info.name),
                });
                apps.insert(key.clone(), app);
                if authority {
                    self.events.emit(&key, EventKind::Discovered { running });
                }
                changed = true;
                continue;
            };
            if let Some(upstream) = info.upstream
                && app.upstream().as_deref() != Some(&upstream)
            {
                app.upstream.store(Some(Arc::new(upstream)));
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
                        if app.transition(&[State::Asleep, State::Failed], State::Awake, None) {
                            self.events.emit(&key, EventKind::Registered);
                            if coordinated {
                                announce.push((Arc::clone(app), Some(State::Awake)));
                            }
                        }
                    }
                }
                AppStatus::Stopped | AppStatus::Failed(_) => {
                    let reason = match &info.status {
                        AppStatus::Failed(reason) => reason.clone(),
                        _ => "found stopped".to_owned(),
                    };
                    if app.transition(&[State::Awake], State::Asleep, None) {
                        self.events.emit(&key, EventKind::Exited { reason });
                        if coordinated {
                            announce.push((Arc::clone(app), Some(State::Asleep)));
                        }
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
            match app.provider.status(&app.key.name).await {
                Ok(AppStatus::Running) => {
                    app.unverified.store(false, Ordering::SeqCst);
                    // Not if a wake or stop of ours happened meanwhile.
                    if app.transitions.load(Ordering::SeqCst) == transitions {
                        touch(app, self.clock.now_ms());
                        if app.transition(&[State::Asleep], State::Awake, None) {
                            self.events.emit(&app.key, EventKind::Registered);
                            if app.coordinated {
                                self.announce(vec![(Arc::clone(app), Some(State::Awake))])
                                    .await;
                            }
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
        if app.transition(&[State::Awake], State::Asleep, None) {
            self.events.emit(
                &key,
                EventKind::Exited {
                    reason: exit.reason,
                },
            );
        }
    }

    fn rebuild_routes(&self) {
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
        for app in apps.iter().filter(|app| !app.linked_names.is_empty()) {
            let linked = app
                .linked_names
                .iter()
                .filter_map(|name| find(app, name))
                .collect();
            app.linked.store(Arc::new(linked));
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

    /// Writes this instance's activity to the shared state (max semantics; apps with a
    /// request or connection open count as active now) and brings its copies of shared
    /// apps in line with what the other instances announced, in one round trip. Changes
    /// made while the shared state was unreachable are announced first; the leader fills
    /// in apps the shared state does not know (after Redis lost its data).
    pub async fn sync_registry(&self) {
        let apps: Vec<Arc<App>> = self.apps().into_iter().filter(|a| a.coordinated).collect();
        if apps.is_empty() {
            return;
        }
        for app in apps.iter().filter(|a| a.unpublished.load(Ordering::SeqCst)) {
            if app.busy.load(Ordering::SeqCst) {
                continue;
            }
            let state = app.state();
            if matches!(state, State::Waking | State::Stopping) {
                continue;
            }
            let activity = Some(self.clock.wall(app.last_activity.load(Ordering::SeqCst)));
            match self.registry.publish(&app.key, state, activity).await {
                Some(seq) => {
                    app.remote_seq.fetch_max(seq, Ordering::SeqCst);
                    app.unpublished.store(false, Ordering::SeqCst);
                }
                None => return,
            }
        }
        let now = self.clock.now_ms();
        let sent: Vec<u64> = apps
            .iter()
            .map(|app| {
                let last = app.last_activity.load(Ordering::SeqCst);
                if app.in_flight() > 0 {
                    now.max(last)
                } else {
                    last
                }
            })
            .collect();
        let updates: Vec<crate::registry::ActivityUpdate> = apps
            .iter()
            .zip(&sent)
            .map(|(app, &last)| {
                let dirty = last > app.shared_activity.load(Ordering::SeqCst);
                (app.key.clone(), dirty.then(|| self.clock.wall(last)))
            })
            .collect();
        let Some(shared) = self.registry.sync(&updates).await else {
            return;
        };
        let leader = self.registry.is_leader();
        let mut fill = Vec::new();
        for ((app, shared), (sent, update)) in
            apps.iter().zip(shared).zip(sent.iter().zip(&updates))
        {
            if update.1.is_some() {
                app.shared_activity.fetch_max(*sent, Ordering::SeqCst);
            }
            if shared.state.is_none() {
                let state = app.state();
                if leader
                    && !app.busy.load(Ordering::SeqCst)
                    && matches!(state, State::Asleep | State::Awake)
                {
                    fill.push((Arc::clone(app), Some(state)));
                }
            }
            self.mirror(app, &shared, true);
        }
        self.announce(fill).await;
    }

    /// Applies what another instance announced about an app to this instance's copy.
    ///
    /// With `pin` (a read of the whole shared record, not an announcement), the shared pin
    /// replaces this instance's.
    fn mirror(&self, app: &App, shared: &Shared, pin: bool) {
        if pin && shared.state.is_some() {
            self.set_pin(app, shared.pinned);
        }
        if let Some(at) = shared.activity {
            let at = self.clock.from_wall(at);
            touch(app, at);
            app.shared_activity.fetch_max(at, Ordering::SeqCst);
        }
        let Some(state) = shared.state else {
            return;
        };
        if app.busy.load(Ordering::SeqCst)
            || app.unpublished.load(Ordering::SeqCst)
            || shared.seq <= app.remote_seq.load(Ordering::SeqCst)
        {
            return;
        }
        app.remote_seq.store(shared.seq, Ordering::SeqCst);
        let changed = match state {
            State::Awake => app.transition(
                &[State::Asleep, State::Failed, State::Stopping],
                State::Awake,
                None,
            ),
            State::Asleep => app.transition(
                &[State::Awake, State::Stopping, State::Failed],
                State::Asleep,
                None,
            ),
            State::Stopping => app.transition(&[State::Awake], State::Stopping, None),
            State::Waking | State::Failed => false,
        };
        if changed {
            tracing::debug!(app = %app.key, %state, "state from another instance");
        }
    }

    /// Handles an announcement from the registry.
    pub async fn apply_notice(self: &Arc<Self>, notice: Notice) {
        match notice {
            Notice::State { key, shared, own } => {
                if own {
                    return;
                }
                let app = lock(&self.apps).get(&key).cloned();
                if let Some(app) = app.filter(|a| a.coordinated) {
                    self.mirror(&app, &shared, false);
                }
            }
            Notice::Listing { space, .. } => {
                if *space == *self.space && !self.registry.is_leader() {
                    self.discover().await;
                }
            }
            Notice::Reset => {
                for app in self.apps() {
                    app.remote_seq.store(0, Ordering::SeqCst);
                }
                self.sync_registry().await;
            }
            // The spaces read it (see `spaces::Spaces::start_sync`).
            Notice::Spaces => {}
        }
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

    /// Engine shutdown: each provider stops what must not outlive the engine.
    pub async fn shutdown(&self) {
        for provider in &self.providers {
            provider.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::fake::FakeProvider;
    use std::net::{IpAddr, Ipv4Addr};
    use tokio::time::advance;

    fn policy(max_idle: Option<Duration>) -> Policy {
        Policy {
            max_idle,
            ..Policy::default()
        }
    }

    async fn setup(
        apps: &[(&str, AppStatus)],
        max_idle: Option<Duration>,
    ) -> (Arc<Lifecycle>, Arc<FakeProvider>) {
        let fake = Arc::new(FakeProvider::new("fake", apps));
        let provider: Arc<dyn Provider> = fake.clone();
        let lifecycle = Lifecycle::new(
            vec![provider],
            Settings {
                defaults: policy(max_idle),
                ..Settings::default()
            },
        );
        lifecycle.discover().await;
        (lifecycle, fake)
    }

    fn app(lifecycle: &Lifecycle, name: &str) -> Arc<App> {
        lifecycle
            .apps()
            .into_iter()
            .find(|app| &*app.key.name == name)
            .expect("app")
    }

    fn kinds(lifecycle: &Lifecycle) -> Vec<EventKind> {
        lifecycle
            .events()
            .recent()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    /// Lets spawned stop/wake tasks run to completion under paused time.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    fn request_cause() -> WakeCause {
        WakeCause::Request {
            method: "GET".to_owned(),
            path: "/".to_owned(),
            user_agent: None,
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn idle_stop_happens_after_max_idle_and_not_before() {
        let (lifecycle, fake) = setup(
            &[("web", AppStatus::Running)],
            Some(Duration::from_secs(15 * 60)),
        )
        .await;
        let web = app(&lifecycle, "web");
        assert_eq!(web.state(), State::Awake);
        fake.with(|s| s.allow_stop = true);

        advance(Duration::from_secs(15 * 60 - 1)).await;
        assert_eq!(lifecycle.check_idle(), 0);
        assert_eq!(web.state(), State::Awake);

        advance(Duration::from_secs(2)).await;
        assert_eq!(lifecycle.check_idle(), 1);
        settle().await;
        assert_eq!(web.state(), State::Asleep);
        assert_eq!(fake.with(|s| s.stops), 1);
        assert!(matches!(
            kinds(&lifecycle).as_slice(),
            [
                EventKind::Discovered { running: true },
                EventKind::StopRequested {
                    cause: StopCause::Idle { .. }
                },
                EventKind::Stopped { .. }
            ]
        ));
        // Asleep apps are not stopped again.
        advance(Duration::from_secs(3600)).await;
        assert_eq!(lifecycle.check_idle(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn activity_and_requests_in_progress_keep_an_app_awake() {
        let (lifecycle, fake) = setup(
            &[("web", AppStatus::Running)],
            Some(Duration::from_secs(60)),
        )
        .await;
        let web = app(&lifecycle, "web");
        advance(Duration::from_secs(50)).await;
        drop(lifecycle.begin_request(&web));
        advance(Duration::from_secs(50)).await;
        assert_eq!(lifecycle.check_idle(), 0, "touched 50 s ago");

        let in_flight = lifecycle.begin_request(&web);
        advance(Duration::from_secs(600)).await;
        assert_eq!(lifecycle.check_idle(), 0, "a request is in progress");
        drop(in_flight);
        advance(Duration::from_secs(59)).await;
        assert_eq!(lifecycle.check_idle(), 0);
        fake.with(|s| s.allow_stop = true);
        advance(Duration::from_secs(2)).await;
        assert_eq!(lifecycle.check_idle(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn never_is_never_stopped() {
        let (lifecycle, _fake) = setup(&[("web", AppStatus::Running)], None).await;
        advance(Duration::from_secs(365 * 86_400)).await;
        assert_eq!(lifecycle.check_idle(), 0);
        assert_eq!(app(&lifecycle, "web").state(), State::Awake);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_wakes_start_once() {
        let (lifecycle, fake) = setup(&[("web", AppStatus::Stopped)], None).await;
        fake.with(|s| {
            s.allow_start = true;
            s.boot_polls = 5;
        });
        let web = app(&lifecycle, "web");
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut waiters = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let lifecycle = Arc::clone(&lifecycle);
            let web = Arc::clone(&web);
            waiters
                .spawn(async move { lifecycle.ensure_awake(&web, request_cause, deadline).await });
        }
        while let Some(result) = waiters.join_next().await {
            let upstream = result.expect("task").expect("awake");
            assert_eq!(upstream.authority.as_str(), "127.0.0.1:10000");
        }
        assert_eq!(fake.with(|s| s.starts), 1);
        assert_eq!(web.state(), State::Awake);
        assert_eq!(web.start_durations().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_past_its_timeout_fails_and_stops_what_it_started() {
        let (lifecycle, fake) = setup(&[("web", AppStatus::Stopped)], None).await;
        fake.with(|s| {
            s.allow_start = true;
            s.allow_stop = true;
            s.boot_polls = usize::MAX;
        });
        let web = app(&lifecycle, "web");
        let deadline = Instant::now() + Duration::from_secs(120);
        let result = lifecycle.ensure_awake(&web, request_cause, deadline).await;
        assert!(matches!(result, Err(WakeError::Timeout(_))), "{result:?}");
        settle().await;
        let phase = web.phase();
        assert_eq!(phase.state, State::Failed);
        assert!(
            phase
                .reason
                .as_deref()
                .unwrap_or("")
                .starts_with("not ready after 120s"),
            "{phase:?}"
        );
        assert_eq!(fake.with(|s| s.stops), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_stop_keeps_the_app_awake_and_retries_later() {
        let (lifecycle, fake) = setup(
            &[("web", AppStatus::Running)],
            Some(Duration::from_secs(60)),
        )
        .await;
        fake.with(|s| {
            s.allow_stop = true;
            s.fail_stop = true;
        });
        let web = app(&lifecycle, "web");
        advance(Duration::from_secs(61)).await;
        assert_eq!(lifecycle.check_idle(), 1);
        settle().await;
        assert_eq!(web.state(), State::Awake);
        assert!(
            kinds(&lifecycle)
                .iter()
                .any(|k| matches!(k, EventKind::StopFailed { .. }))
        );
        advance(Duration::from_secs(10)).await;
        assert_eq!(lifecycle.check_idle(), 0, "retry waits");
        fake.with(|s| s.fail_stop = false);
        advance(Duration::from_secs(25)).await;
        assert_eq!(lifecycle.check_idle(), 1);
        settle().await;
        assert_eq!(web.state(), State::Asleep);
    }

    #[tokio::test(start_paused = true)]
    async fn discovery_follows_the_provider() {
        let (lifecycle, fake) = setup(
            &[("a", AppStatus::Stopped), ("b", AppStatus::Running)],
            None,
        )
        .await;
        assert_eq!(app(&lifecycle, "a").state(), State::Asleep);
        assert!(lifecycle.routes().get("a").is_some());
        assert!(lifecycle.routes().get("a--fake").is_some());

        // Started outside the engine: registered as awake. Stopped outside: asleep.
        fake.with(|s| {
            s.apps.insert("a".to_owned(), (AppStatus::Running, 0));
            s.apps.insert("b".to_owned(), (AppStatus::Stopped, 0));
        });
        lifecycle.discover().await;
        assert_eq!(app(&lifecycle, "a").state(), State::Awake);
        assert_eq!(app(&lifecycle, "b").state(), State::Asleep);

        // A failing provider keeps its apps.
        fake.with(|s| s.fail_list = true);
        lifecycle.discover().await;
        assert_eq!(lifecycle.apps().len(), 2);
        assert!(
            kinds(&lifecycle)
                .iter()
                .any(|k| matches!(k, EventKind::ProviderError { .. }))
        );

        // A vanished app is dropped, with its routes.
        fake.with(|s| {
            s.fail_list = false;
            s.apps.remove("b");
        });
        lifecycle.discover().await;
        assert_eq!(lifecycle.apps().len(), 1);
        assert!(lifecycle.routes().get("b").is_none());
        assert!(kinds(&lifecycle).contains(&EventKind::Deleted));
    }

    #[tokio::test(start_paused = true)]
    async fn a_listing_taken_before_a_stop_does_not_wake_the_app_again() {
        let (lifecycle, fake) = setup(
            &[("web", AppStatus::Running)],
            Some(Duration::from_secs(60)),
        )
        .await;
        let web = app(&lifecycle, "web");
        fake.with(|s| {
            s.allow_stop = true;
            s.list_delay = Duration::from_secs(5);
        });
        advance(Duration::from_secs(61)).await;
        // The listing is asked for while the app runs, and arrives after it was stopped.
        let discovery = tokio::spawn({
            let lifecycle = Arc::clone(&lifecycle);
            async move { lifecycle.discover().await }
        });
        settle().await;
        assert_eq!(lifecycle.check_idle(), 1);
        settle().await;
        assert_eq!(web.state(), State::Asleep);
        advance(Duration::from_secs(5)).await;
        discovery.await.expect("discovery");
        assert_eq!(web.state(), State::Asleep, "a stale listing woke the app");
        assert!(!kinds(&lifecycle).contains(&EventKind::Registered));
        // A fresh listing still corrects the registry.
        fake.with(|s| {
            s.list_delay = Duration::ZERO;
            s.apps.insert("web".to_owned(), (AppStatus::Running, 0));
        });
        lifecycle.discover().await;
        assert_eq!(web.state(), State::Awake);
    }

    #[tokio::test(start_paused = true)]
    async fn same_name_in_two_providers_is_ambiguous() {
        let first: Arc<dyn Provider> =
            Arc::new(FakeProvider::new("one", &[("shop", AppStatus::Stopped)]));
        let second: Arc<dyn Provider> =
            Arc::new(FakeProvider::new("two", &[("shop", AppStatus::Stopped)]));
        let lifecycle = Lifecycle::new(vec![first, second], Settings::default());
        lifecycle.discover().await;
        let routes = lifecycle.routes();
        match routes.get("shop") {
            Some(crate::proxy::route::Route::Ambiguous(keys)) => {
                let mut keys = keys.clone();
                keys.sort();
                assert_eq!(keys, vec!["shop--one", "shop--two"]);
            }
            other => panic!("expected ambiguous, got {other:?}"),
        }
        assert!(matches!(
            routes.get("shop--two"),
            Some(crate::proxy::route::Route::App(app)) if &*app.key.provider == "two"
        ));
    }
}
