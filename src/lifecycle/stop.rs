//! Stopping: the idle check, stops asked for (the admin API, making room within the plan)
//! and their run (the `before_stop` veto, the provider's stop, the formation to restore,
//! the shared lease that lets one instance stop a shared app), and pins that keep an app
//! awake. It never wakes an app (see `wake`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use super::app::{Busy, touch};
use super::schedule::kept_awake;
use super::{App, Lifecycle};
use crate::events::{EventKind, StopCause};
use crate::model::State;
use crate::registry::{Claim, Lease};

/// Period of the idle check and of the schedules: an app sleeps at most this long after
/// its `max_idle` or its schedule's `sleep` time.
pub const IDLE_CHECK_EVERY: Duration = Duration::from_secs(1);

/// After a failed stop, how long before the idle check tries again.
const STOP_RETRY_DELAY: Duration = Duration::from_secs(30);

/// The `reason` label of a stop.
fn stop_reason(cause: &StopCause) -> &'static str {
    match cause {
        StopCause::Idle { .. } => "idle",
        StopCause::WakeFailed => "wake_failed",
        StopCause::Schedule { .. } => "schedule",
        StopCause::Api { .. } => "api",
        StopCause::PlanLimit { .. } => "plan_limit",
        StopCause::Unmanaged => "unmanaged",
    }
}

impl Lifecycle {
    /// Keeps the app awake until `until` (`None`: until unpinned): the idle check leaves
    /// it alone. Pinning does not wake it. Shared with the other instances (the leader is
    /// the one that would stop it).
    pub async fn pin(&self, app: &App, until: Option<SystemTime>) {
        self.set_pin(app, Some(until));
        if app.coordinated && !self.registry.set_pin(&app.key, Some(until)).await {
            tracing::warn!(app = %app.key, "pin not shared: the registry cannot be reached");
        }
    }

    /// Keeps the app awake for at least `session` from now: a session opened through the
    /// gate (forward-auth, the Sablier-compatible API), for the traffic that another proxy
    /// carries without asking again (a long download, a WebSocket). It is a pin that only
    /// grows: a longer pin stays. When the pin ends in less than `session`, it is set to
    /// 1.5 × `session` from now, so a steady flow of hits moves it (and calls the shared
    /// state) at most once per half session. Zero: nothing.
    pub async fn hold_session(&self, app: &App, session: Duration) {
        if session.is_zero() {
            return;
        }
        let now = self.clock.now_ms();
        let session_ms = u64::try_from(session.as_millis()).unwrap_or(u64::MAX);
        if app.pinned_until.load(Ordering::SeqCst) >= now.saturating_add(session_ms) {
            return;
        }
        let Some(until) = self
            .clock
            .wall_now()
            .checked_add(session.saturating_add(session / 2))
        else {
            return;
        };
        self.pin(app, Some(until)).await;
    }

    /// Lets the idle check stop the app again.
    pub async fn unpin(&self, app: &App) {
        self.set_pin(app, None);
        if app.coordinated && !self.registry.set_pin(&app.key, None).await {
            tracing::warn!(app = %app.key, "unpin not shared: the registry cannot be reached");
        }
    }

    /// This instance's copy of a pin (`None`: not pinned; `Some(None)`: until unpinned).
    pub(super) fn set_pin(&self, app: &App, pinned: Option<Option<SystemTime>>) {
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
        let parent = crate::traces::current();
        self.runtime
            .spawn(Arc::clone(self).run_stop(Arc::clone(app), cause, parent));
        true
    }

    /// Stops every awake app idle for longer than its `max_idle` (never one with a request
    /// in progress, a pin, or inside a keep-awake window). Returns how many stops began.
    pub fn check_idle(self: &Arc<Self>) -> usize {
        let now = self.clock.now_ms();
        let leader = self.registry.is_leader();
        let snapshot = self.schedules.load().snapshot();
        let mut begun = 0;
        for app in self.awake_apps() {
            let Some(max_idle) = app.conf().policy.max_idle else {
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
    pub(super) fn begin_stop(
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
        let parent = crate::traces::current();
        self.runtime
            .spawn(Arc::clone(self).run_stop(app, cause(), parent));
        true
    }

    pub(super) async fn run_stop(
        self: Arc<Self>,
        app: Arc<App>,
        cause: StopCause,
        parent: Option<crate::traces::SpanContext>,
    ) {
        let _busy = Busy::mark(&app);
        let reason = stop_reason(&cause);
        let mut span = self.app_span("stop", &app, parent);
        if span.is_recording() {
            span.set("paastis.cause", cause.to_string());
        }
        let lease = if app.coordinated {
            match self.claim_stop(&app, &cause).await {
                Some(lease) => Some(lease),
                None => {
                    span.set("paastis.outcome", "not now");
                    app.transition(&[State::Stopping], State::Awake, None);
                    return;
                }
            }
        } else {
            None
        };
        let cause_text = cause.to_string();
        let mut traced = super::hook_span(&span, crate::hooks::Hook::BeforeStop);
        let run = crate::hooks::run(
            &app.conf().hooks,
            crate::hooks::Hook::BeforeStop,
            &app.key,
            &cause_text,
        )
        .await;
        match &run {
            None => traced.discard(),
            Some(run) => {
                if !run.succeeded() {
                    traced.fail(run.reason());
                }
                traced.end();
            }
        }
        if let Some(run) = run.filter(|run| !run.succeeded()) {
            span.set("paastis.outcome", "vetoed");
            // Vetoed: the app stays awake; the idle check tries again at its next tick.
            let retry_at =
                self.clock.now_ms() + u64::try_from(IDLE_CHECK_EVERY.as_millis()).unwrap_or(1000);
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
        let mut call = self.call_span(&span, "stop", &app);
        let stopped = app.provider().stop(&app.key.name).await;
        if let Err(error) = &stopped {
            call.fail(error.to_string());
            span.fail(error.to_string());
        }
        call.end();
        self.metrics
            .provider_call(app.provider_id(), "stop", stopped.is_ok());
        if let Err(error) = &stopped {
            self.metrics
                .provider_error(app.provider_id(), format!("stop {}: {error}", app.key.name));
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
                self.hook(&app, crate::hooks::Hook::AfterStop, &cause_text, &span)
                    .await;
                span.set("paastis.outcome", "stopped");
                let sizes = stopped.sizes;
                if app.transition_told(&[State::Stopping], State::Asleep, None, || {
                    self.events
                        .emit(&app.key, EventKind::Stopped { formation, sizes });
                }) {
                    self.metrics.stop(reason);
                }
                self.finish(&app, lease, State::Asleep, None).await;
            }
            Err(error) => {
                let retry_at = self.clock.now_ms()
                    + u64::try_from(STOP_RETRY_DELAY.as_millis()).unwrap_or(u64::MAX);
                app.stop_retry_at.store(retry_at, Ordering::SeqCst);
                app.transition_told(&[State::Stopping], State::Awake, None, || {
                    self.events.emit(
                        &app.key,
                        EventKind::StopFailed {
                            reason: error.to_string(),
                        },
                    );
                });
                self.finish(&app, lease, State::Awake, None).await;
            }
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
                    let snapshot = self.schedules.load().snapshot();
                    let window = app
                        .conf()
                        .schedules
                        .iter()
                        .find_map(|index| snapshot.get(*index)?.sleeping)?;
                    window.since.into()
                }
                _ => now.checked_sub(app.conf().policy.max_idle?)?,
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
}
