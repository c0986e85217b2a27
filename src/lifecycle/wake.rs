//! Waking: a wake begins within the plan's limits (refused, or the least recently active
//! apps stopped to make room), runs once per app across instances (the registry's lease
//! decides which one starts it), runs the start hooks, starts the app and waits until it
//! is ready (provider status, then the `health_path` probe). Requests wait on the app's
//! phase here. It does not decide when an app sleeps (see `stop`) nor list providers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use tokio::sync::broadcast;
use tokio::time::{Instant, sleep, timeout_at};

use super::app::{Busy, START_HISTORY, touch};
use super::{App, Lifecycle, lock};
use crate::events::{EventKind, StopCause, WakeCause};
use crate::model::{State, Upstream};
use crate::providers::AppStatus;
use crate::registry::{Claim, Lease, Notice};

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

/// How long after a start a provider saying "stopped" is taken as "not started yet".
const STOPPED_GRACE: Duration = Duration::from_secs(10);

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

/// How often a wake held by another instance is checked besides its announcements.
const REMOTE_WAKE_POLL: Duration = Duration::from_millis(250);

impl Lifecycle {
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
        let _gate = match self.settings.load().plan.running_apps_per_provider {
            Some(limit) => {
                let gate = lock(&self.wake_gate);
                if !from.contains(&app.state()) {
                    return Ok(false);
                }
                if let Err(refused) = self.make_room(app, limit) {
                    drop(gate);
                    self.refused(app, &refused);
                    return Err(refused);
                }
                Some(gate)
            }
            None => None,
        };
        if !app.transition(from, State::Waking, None) {
            return Ok(false);
        }
        // Recorded before this call returns: whoever asked (a request held, the API, the
        // gate's page) finds the wake in the history at once.
        let cause = cause();
        if let Some(cause) = &cause {
            *lock(&app.last_wake) = Some((SystemTime::now(), cause.clone()));
            self.events.emit(
                &app.key,
                EventKind::WakeRequested {
                    cause: cause.clone(),
                },
            );
        }
        // What asked for the wake (a request, an admin call) is its span's parent.
        let parent = crate::traces::current();
        self.runtime
            .spawn(Arc::clone(self).run_wake(Arc::clone(app), cause, parent));
        Ok(true)
    }

    /// Records a wake refused by the plan: a `wake_refused` event, at most once a minute
    /// per app.
    fn refused(&self, app: &App, refused: &WakeError) {
        const EVERY_MS: u64 = 60_000;
        let now = self.clock.now_ms().max(1);
        let last = app.refused_at.load(Ordering::SeqCst);
        if (last == 0 || now.saturating_sub(last) >= EVERY_MS)
            && app
                .refused_at
                .compare_exchange(last, now, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            self.events.emit(
                &app.key,
                EventKind::WakeRefused {
                    reason: refused.to_string(),
                },
            );
        }
    }

    /// Makes sure one more app of `app`'s provider may run within `limit`: refused
    /// (`on_limit: reject`, or nothing can be stopped), or the least recently active apps
    /// that can be stopped now are stopped first. Called under the wake gate.
    fn make_room(self: &Arc<Self>, app: &Arc<App>, limit: usize) -> Result<(), WakeError> {
        let provider = app.provider_id();
        let running: Vec<Arc<App>> = self
            .apps()
            .into_iter()
            .filter(|other| {
                other.provider_id() == provider
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
                    self.settings.load().plan,
                    running.len()
                )
                .into(),
            )
        };
        if self.settings.load().on_limit == crate::plan::OnLimit::Reject {
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
                let parent = crate::traces::current();
                self.runtime
                    .spawn(Arc::clone(self).run_stop(Arc::clone(victim), cause, parent));
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
                Err(_) => return Err(WakeError::Timeout(app.conf().policy.wake_timeout)),
            }
        }
    }

    async fn run_wake(
        self: Arc<Self>,
        app: Arc<App>,
        cause: Option<WakeCause>,
        parent: Option<crate::traces::SpanContext>,
    ) {
        let _busy = Busy::mark(&app);
        let started = Instant::now();
        let cause_text = cause.as_ref().map(ToString::to_string).unwrap_or_default();
        let mut span = self.app_span("wake", &app, parent);
        if span.is_recording() {
            span.set("paastis.cause", cause_text.clone());
        }
        // Linked apps wake with it, each on its own (this wake does not wait for them).
        for linked in app.linked() {
            if let Err(error) = self.request_wake(&linked, || WakeCause::Linked {
                app: app.key.name.to_string(),
            }) {
                tracing::warn!(app = %linked.key, %error, "linked app not woken");
            }
        }
        let deadline = started + app.conf().policy.wake_timeout;
        let lease = match self.waker(&app, deadline).await {
            Waker::Us(lease) => lease,
            Waker::Other => {
                span.set("paastis.outcome", "woken elsewhere");
                self.metrics.wake(
                    &app.key.provider,
                    crate::metrics::WakeResult::Elsewhere,
                    None,
                );
                touch(&app, self.clock.now_ms());
                if app.transition(&[State::Waking], State::Awake, None) {
                    tracing::debug!(app = %app.key, "woken by another instance");
                }
                return;
            }
            Waker::OtherFailed(reason) => {
                span.fail(format!("another instance failed: {reason}"));
                app.transition(&[State::Waking], State::Failed, Some(reason.into()));
                return;
            }
            Waker::Timeout => {
                let reason = format!(
                    "not ready after {}s (another instance was starting it)",
                    app.conf().policy.wake_timeout.as_secs()
                );
                span.fail(reason.clone());
                app.transition(&[State::Waking], State::Failed, Some(reason.into()));
                return;
            }
        };
        // Hooks run on the instance that holds the lease: once per wake.
        self.hook(&app, crate::hooks::Hook::BeforeStart, &cause_text, &span)
            .await;
        let outcome = self.bring_up(&app, deadline, &span).await;
        match outcome {
            Ok(reconciled) => {
                self.hook(&app, crate::hooks::Hook::AfterStart, &cause_text, &span)
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
                app.transition_told(&[State::Waking], State::Awake, None, || {
                    self.events.emit(
                        &app.key,
                        EventKind::Started {
                            duration,
                            reconciled,
                        },
                    );
                });
                self.metrics.wake(
                    &app.key.provider,
                    crate::metrics::WakeResult::Started,
                    Some(duration),
                );
                span.set("paastis.outcome", "started");
                self.finish(&app, lease, State::Awake, None).await;
            }
            Err(reason) => {
                span.fail(reason.clone());
                // Whatever was half-started is stopped again before the failure is announced,
                // so the next wake starts from a clean state (and with the same formation).
                let mut call = self.call_span(&span, "stop", &app);
                let stopped = app.provider().stop(&app.key.name).await;
                if let Err(error) = &stopped {
                    call.fail(error.to_string());
                }
                call.end();
                match stopped {
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
                let failed = Some(Arc::clone(&reason));
                app.transition_told(&[State::Waking], State::Failed, failed, || {
                    self.events.emit(
                        &app.key,
                        EventKind::StartFailed {
                            reason: reason.to_string(),
                        },
                    );
                });
                self.metrics
                    .wake(&app.key.provider, crate::metrics::WakeResult::Failed, None);
                self.finish(&app, lease, State::Failed, Some(&reason)).await;
            }
        }
    }

    /// A wake's or a stop's span, about `app`, under `parent` (what asked for it) or a root.
    pub(super) fn app_span(
        &self,
        name: &'static str,
        app: &App,
        parent: Option<crate::traces::SpanContext>,
    ) -> crate::traces::Span {
        let mut span = self
            .tracer()
            .span(name, crate::traces::Kind::Internal, parent, false);
        if span.is_recording() {
            span.set("paastis.space", Arc::clone(&app.key.space));
            span.set("paastis.provider", Arc::clone(&app.key.provider));
            span.set("paastis.app", Arc::clone(&app.key.name));
        }
        span
    }

    /// A provider call's span (`provider start`, ...), under a wake's or a stop's.
    pub(super) fn call_span(
        &self,
        parent: &crate::traces::Span,
        call: &'static str,
        app: &App,
    ) -> crate::traces::Span {
        let mut span = parent.child(
            match call {
                "start" => "provider start",
                "status" => "provider status",
                _ => "provider stop",
            },
            crate::traces::Kind::Client,
        );
        if span.is_recording() {
            span.set("paastis.provider", Arc::clone(&app.key.provider));
            span.set("paastis.provider.type", app.provider().kind());
            span.set("paastis.app", Arc::clone(&app.key.name));
        }
        span
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

    /// Starts the app and waits until it is ready (provider status, then `health_path`).
    /// Returns what the start changed of what was remembered, to match the platform.
    async fn bring_up(
        &self,
        app: &App,
        deadline: Instant,
        span: &crate::traces::Span,
    ) -> Result<Option<crate::model::Reconciled>, String> {
        let name = &app.key.name;
        let wake_timeout = app.conf().policy.wake_timeout;
        let timed_out =
            |what: &str| format!("not ready after {}s ({what})", wake_timeout.as_secs());
        let formation = lock(&app.formation)
            .clone()
            .or_else(|| app.conf().default_formation.clone());
        let mut call = self.call_span(span, "start", app);
        let started = timeout_at(deadline, app.provider().start(name, formation.as_ref())).await;
        match &started {
            Ok(Err(error)) => call.fail(error.to_string()),
            Err(_) => call.fail("no answer before the wake's deadline"),
            Ok(Ok(_)) => {}
        }
        call.end();
        if let Ok(result) = &started {
            self.metrics
                .provider_call(app.provider_id(), "start", result.is_ok());
            if let Err(error) = result {
                self.metrics
                    .provider_error(app.provider_id(), format!("start {name}: {error}"));
            }
        }
        let reconciled = match started {
            Ok(Ok(started)) => self.reconcile(app, started),
            Ok(Err(error)) => return Err(format!("start failed: {error}")),
            Err(_) => return Err(timed_out("the start call did not return")),
        };
        let accepted = Instant::now();
        let intervals = app.provider().poll_intervals();
        let mut wait = intervals.first;
        let mut last = "starting".to_owned();
        loop {
            let mut call = self.call_span(span, "status", app);
            let status = timeout_at(deadline, app.provider().status(name)).await;
            match &status {
                Ok(Ok(status)) if call.is_recording() => {
                    call.set("paastis.app.status", format!("{status:?}"))
                }
                Ok(Err(error)) => call.fail(error.to_string()),
                Err(_) => call.fail("no answer before the wake's deadline"),
                Ok(Ok(_)) => {}
            }
            call.end();
            if let Ok(result) = &status {
                self.metrics
                    .provider_call(app.provider_id(), "status", result.is_ok());
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
        let Some(path) = &app.conf().policy.health_path else {
            return Ok(reconciled);
        };
        let mut probe = span.child("health probe", crate::traces::Kind::Client);
        if probe.is_recording() {
            probe.set("url.path", path.clone());
        }
        if let Err(reason) = self
            .probe_health(app, path, deadline, intervals, last)
            .await
        {
            probe.fail(reason.clone());
            return Err(reason);
        }
        Ok(reconciled)
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
}
