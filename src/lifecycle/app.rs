//! One managed app's hot state, read by every request: [`App`] and its [`Phase`], the
//! marks of requests in progress ([`InFlight`]), and the engine's [`Clock`]. State changes
//! happen through `App::transition`, called by the lifecycle's jobs only; this file
//! decides no change itself and never calls a provider or the registry.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Lifecycle, lock};
use crate::events::WakeCause;
use crate::metrics::RequestCounts;
use crate::model::{AppKey, Formation, Policy, State, Upstream};
use crate::providers::Provider;

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

/// Start durations kept per app (for ETAs).
pub(super) const START_HISTORY: usize = 10;

/// One managed app: its hot state, read by every request.
#[derive(Debug)]
pub struct App {
    /// Which app.
    pub key: AppKey,
    /// The provider account that runs it: replaced when a configuration reload rebuilds
    /// the account (its state here stays).
    pub(super) provider: Mutex<Arc<dyn Provider>>,
    /// What the provider's latest listing gives it (its own policy keys, extra route keys),
    /// kept to resolve it again when the configuration or the listing changes.
    pub(super) listed: ArcSwap<Listed>,
    /// What the configuration gives it (policy, aliases, hooks, schedules, links),
    /// replaced whole when the configuration is reloaded; read lock-free.
    pub(super) conf: ArcSwap<AppConf>,
    /// State and reason; subscribers are woken on every change (held requests wait on it).
    pub(super) phase: watch::Sender<Phase>,
    /// Mirror of `phase.state` for the request path's lock-free read (written under the
    /// phase's lock, so both always agree once a transition returns).
    pub(super) state: AtomicU8,
    /// Milliseconds since the engine clock's epoch at the last request.
    pub(super) last_activity: AtomicU64,
    /// Requests (and response bodies) in progress: an app is never stopped under them.
    pub(super) in_flight: AtomicUsize,
    /// Where requests go; updated by discovery.
    pub(super) upstream: ArcSwapOption<Upstream>,
    /// The formation to restore on wake (remembered at the last stop, or last seen
    /// running); `None` when nothing is known (the provider then starts what it can).
    pub(super) formation: Mutex<Option<Formation>>,
    /// Recent start durations, newest last.
    pub(super) start_durations: Mutex<VecDeque<Duration>>,
    /// Engine-clock milliseconds before which the idle check must not try to stop again.
    pub(super) stop_retry_at: AtomicU64,
    /// Engine-clock milliseconds of the last `wake_refused` event (0: none), so a flood of
    /// refused requests records one event a minute.
    pub(super) refused_at: AtomicU64,
    /// Counts state changes, so discovery can tell that a listing taken before a change is
    /// stale for this app.
    pub(super) transitions: AtomicU64,
    /// Registered as asleep from a listing that did not tell its state (Heroku): the
    /// scheduler asks the provider, a few apps per tick.
    pub(super) unverified: std::sync::atomic::AtomicBool,
    /// Names of the apps its platform groups with it (a container group), as the latest
    /// listing says: linked like `linked_names`, and followed when the group changes.
    pub(super) group: ArcSwap<Vec<String>>,
    /// The name of that group, as the latest listing says (asked for by name through the
    /// gate).
    pub(super) group_name: ArcSwapOption<String>,
    /// The apps of both, resolved whenever the set of apps changes (weak: apps come and go).
    pub(super) linked: ArcSwap<Vec<Weak<App>>>,
    /// Whether `linked` holds any app: read at every request, where the list itself would
    /// be one more lock-free load (two atomic read-modify-writes) for nothing in the
    /// common case of an app linked to none.
    pub(super) any_linked: std::sync::atomic::AtomicBool,
    /// `last_activity` as last written to the catalog (only changes are written).
    pub(super) flushed_activity: AtomicU64,
    /// Whether other instances share this app (a Redis registry and a platform provider;
    /// local processes are each instance's own).
    pub(super) coordinated: bool,
    /// The shared state's change counter this copy reflects.
    pub(super) remote_seq: AtomicU64,
    /// True while this instance wakes or stops the app: its own copy is the truth then, and
    /// announcements from other instances are not applied to it.
    pub(super) busy: std::sync::atomic::AtomicBool,
    /// A change made while the shared state was unreachable, to announce once it is back.
    pub(super) unpublished: std::sync::atomic::AtomicBool,
    /// `last_activity` as the shared state has it (written or read back), engine clock.
    pub(super) shared_activity: AtomicU64,
    /// Requests answered, by status class (`/metrics`).
    pub(super) requests: crate::metrics::RequestCounts,
    /// Engine-clock milliseconds until which the app is kept awake (`PUT .../pin`); 0: not
    /// pinned, `u64::MAX`: until unpinned.
    pub(super) pinned_until: AtomicU64,
    /// Why and when its latest wake was asked for.
    pub(super) last_wake: Mutex<Option<(SystemTime, WakeCause)>>,
    /// The lifecycle's index of awake apps, kept by every transition.
    pub(super) awake_index: Arc<AwakeIndex>,
    /// What discovery last wrote to the catalog about it: a listing that says the same is
    /// written again only once per [`SEEN_REFRESH`], so a large account at rest costs the
    /// database nothing.
    pub(super) seen_written: Mutex<Option<SeenWritten>>,
}

/// The keys of a lifecycle's awake apps: what the idle check walks, so that its cost
/// follows the apps awake, not the apps managed. Transitions add and remove keys (under the
/// app's phase lock); the idle check drops the keys of apps no longer awake or gone (under
/// this lock, after reading the state). Lock order: the apps map, then an app's phase, then
/// this index.
#[derive(Debug, Default)]
pub(super) struct AwakeIndex(Mutex<HashSet<AppKey>>);

impl AwakeIndex {
    pub(super) fn insert(&self, key: &AppKey) {
        lock(&self.0).insert(key.clone());
    }

    fn remove(&self, key: &AppKey) {
        lock(&self.0).remove(key);
    }

    /// The keys, locked.
    pub(super) fn keys(&self) -> std::sync::MutexGuard<'_, HashSet<AppKey>> {
        lock(&self.0)
    }
}

/// How often the catalog's "last seen" of an app that did not change is written again.
pub(super) const SEEN_REFRESH: Duration = Duration::from_secs(3600);

/// What was written to the catalog when discovery last listed an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SeenWritten {
    /// Its upstream then (the app's own, shared).
    pub(super) upstream: Option<Arc<Upstream>>,
    /// Whether it was running.
    pub(super) running: bool,
    /// When it was written (engine clock, milliseconds).
    pub(super) at: u64,
}

/// What the provider's latest listing says of an app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Listed {
    /// Policy keys the platform gives it (container labels, say).
    pub(super) policy: crate::model::PolicyOverride,
    /// Extra route keys the provider gives (Clever Cloud ids).
    pub(super) aliases: Vec<String>,
}

/// What the configuration gives one app: resolved at registration and again at every
/// configuration reload, then swapped in whole.
#[derive(Debug, Clone)]
pub struct AppConf {
    /// Its effective policy (defaults, then the matching rules, then its own keys).
    pub policy: Policy,
    /// Extra route keys: the provider's, then the rules' alias.
    pub aliases: Vec<String>,
    /// Names of the apps woken and kept awake with this one (`rules[].linked_apps`).
    pub linked_names: Vec<String>,
    /// The formation a rule gives, started when none is remembered.
    pub(super) default_formation: Option<Formation>,
    /// How its visitor pages look: its space's `page`, with its rules' laid over it.
    pub(super) look: Arc<crate::pages::Look>,
    /// Its hooks (global ones, then its rules').
    pub(super) hooks: crate::hooks::Hooks,
    /// Indices of the schedules that apply to it, in the lifecycle's schedules of the
    /// same configuration.
    pub(super) schedules: Vec<usize>,
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
        &self.key.provider
    }

    /// The provider account that runs it now.
    pub fn provider(&self) -> Arc<dyn Provider> {
        Arc::clone(&lock(&self.provider))
    }

    /// What the configuration gives it now (policy, aliases, links), lock-free.
    pub fn conf(&self) -> arc_swap::Guard<Arc<AppConf>> {
        self.conf.load()
    }

    /// Its effective policy now.
    pub fn policy(&self) -> Policy {
        self.conf.load().policy.clone()
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

    /// The name of the platform group it belongs to, if any.
    pub fn group_name(&self) -> Option<Arc<String>> {
        self.group_name.load_full()
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
            .or_else(|| self.conf.load().default_formation.clone())
    }

    /// How its visitor pages look (the waiting page, its error pages).
    pub fn look(&self) -> Arc<crate::pages::Look> {
        Arc::clone(&self.conf.load().look)
    }

    /// Why and when its latest wake was asked for.
    pub fn last_wake(&self) -> Option<(SystemTime, WakeCause)> {
        lock(&self.last_wake).clone()
    }

    /// Engine-clock milliseconds of its last activity.
    pub fn last_activity_ms(&self) -> u64 {
        self.last_activity.load(Ordering::SeqCst)
    }

    /// Seconds until it is put to sleep for being idle, at engine-clock `now_ms`: only an
    /// awake app with a `max_idle` that is not pinned awake has such a time.
    pub fn sleeps_in_seconds(&self, now_ms: u64) -> Option<u64> {
        let pinned = self.pinned_until_ms().is_some_and(|until| until > now_ms);
        let max_idle = self.conf().policy.max_idle?;
        if self.state() != State::Awake || pinned {
            return None;
        }
        let idle_ms = now_ms.saturating_sub(self.last_activity_ms());
        Some(
            u64::try_from(max_idle.as_millis())
                .unwrap_or(u64::MAX)
                .saturating_sub(idle_ms)
                / 1000,
        )
    }

    /// Engine-clock milliseconds until which it is pinned awake (`u64::MAX`: until
    /// unpinned), if it is.
    pub fn pinned_until_ms(&self) -> Option<u64> {
        Some(self.pinned_until.load(Ordering::SeqCst)).filter(|ms| *ms > 0)
    }

    /// Atomically moves from one of `from` to `to`; false (and nothing changed) otherwise.
    pub(super) fn transition(&self, from: &[State], to: State, reason: Option<Arc<str>>) -> bool {
        self.transition_told(from, to, reason, || {})
    }

    /// As [`App::transition`], and when the state changes, `tell` runs (to record its event)
    /// before anyone waiting on the state is woken: a request answered because its wake
    /// failed finds the failure already in the events.
    pub(super) fn transition_told(
        &self,
        from: &[State],
        to: State,
        reason: Option<Arc<str>>,
        tell: impl FnOnce(),
    ) -> bool {
        self.phase.send_if_modified(|phase| {
            if from.contains(&phase.state) {
                // Under the phase's lock, so the index follows this app's changes in order.
                if to == State::Awake {
                    self.awake_index.insert(&self.key);
                } else if phase.state == State::Awake {
                    self.awake_index.remove(&self.key);
                }
                phase.state = to;
                phase.reason = reason;
                phase.since = Instant::now();
                self.state.store(to as u8, Ordering::SeqCst);
                self.transitions.fetch_add(1, Ordering::SeqCst);
                // Under the phase's lock: `tell` must not read this app's phase.
                tell();
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
pub(super) struct Busy<'a>(&'a App);

impl<'a> Busy<'a> {
    pub(super) fn mark(app: &'a App) -> Busy<'a> {
        app.busy.store(true, Ordering::SeqCst);
        Busy(app)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::SeqCst);
    }
}

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
    pub(super) fn new(wall_start: Option<SystemTime>) -> Clock {
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

    /// Milliseconds since the epoch, plus `CLOCK_OFFSET_MS`.
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

/// Counts activity at `now` (engine clock) for the app: its last activity only moves on.
pub(super) fn touch(app: &App, now: u64) {
    // A plain load first: most requests find the value already current and write nothing.
    if app.last_activity.load(Ordering::Relaxed) < now {
        app.last_activity.fetch_max(now, Ordering::Relaxed);
    }
}

impl Lifecycle {
    /// Marks a request in progress and counts it as activity. Call before reading the state.
    pub fn begin_request(&self, app: &Arc<App>) -> InFlight {
        app.in_flight.fetch_add(1, Ordering::SeqCst);
        let now = self.clock.now_ms();
        touch(app, now);
        if app.any_linked.load(Ordering::Acquire) {
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
}

/// What `/metrics` counts of an app.
impl crate::metrics::MeteredApp for App {
    fn key(&self) -> &AppKey {
        &self.key
    }

    fn state(&self) -> State {
        App::state(self)
    }

    fn requests(&self) -> &RequestCounts {
        &self.requests
    }

    fn sleeps_in_seconds(&self, now_ms: u64) -> Option<u64> {
        App::sleeps_in_seconds(self, now_ms)
    }
}
