//! Registry mirroring: what this instance tells the others (the outcome of its wakes and
//! stops, states discovery corrected, its activity) and how its copies of shared apps
//! follow what they announce. Only apps shared with other instances (`coordinated`) take
//! part. It starts and stops nothing: a wake or stop seen elsewhere only changes the copy.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::app::touch;
use super::{App, Lifecycle, lock};
use crate::model::State;
use crate::registry::{Lease, Notice, Shared};

impl Lifecycle {
    /// Announces the outcome of a wake or stop to the other instances (later, if the shared
    /// state cannot be reached now).
    pub(super) async fn finish(
        &self,
        app: &App,
        lease: Option<Lease>,
        state: State,
        reason: Option<&str>,
    ) {
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

    /// Tells the other instances what discovery found: states it corrected (`Some`) and
    /// apps that vanished (`None`).
    pub(super) async fn announce(&self, changes: Vec<(Arc<App>, Option<State>)>) {
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
}
