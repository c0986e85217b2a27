//! What the schedules make the lifecycle do: wakes at a schedule's `wake` time or when a
//! keep-awake window opens, stops inside sleep windows, and refusing a request's wake
//! while `wake_on_request: false` holds. The schedules themselves (where each stands at a
//! wall time) are `crate::schedules`'; this file only acts on them, through `wake` and
//! `stop`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{App, Lifecycle};
use crate::events::{StopCause, WakeCause};
use crate::model::State;

/// Whether one of the app's schedules is inside a keep-awake window.
pub(super) fn kept_awake(app: &App, snapshot: &crate::schedules::Snapshot) -> bool {
    app.conf()
        .schedules
        .iter()
        .any(|index| snapshot.get(*index).is_some_and(|now| now.keep_awake))
}

impl Lifecycle {
    /// Applies the schedules at the clock's wall time: wakes the apps whose `wake` time
    /// came or whose keep-awake window opened (their linked apps with them), and stops the
    /// awake apps inside a sleep window that saw no activity since it began — unless
    /// pinned, kept awake by another window, or serving a request. An app used after the
    /// window began (a night request, an API start) is left to its idle timer. Shared apps
    /// are acted on by the leader only. Returns how many wakes and stops began.
    pub fn apply_schedules(self: &Arc<Self>) -> usize {
        use crate::schedules::Fired;
        let tracker = self.schedules.load_full();
        if tracker.is_empty() {
            return 0;
        }
        let fired = tracker.tick(self.clock.wall_now().into());
        let snapshot = tracker.snapshot();
        let schedules = tracker.schedules();
        let leader = self.registry.is_leader();
        let mut begun = 0;
        for app in self.apps() {
            if app.conf().schedules.is_empty() || (app.coordinated && !leader) {
                continue;
            }
            let woken_by = fired.iter().find_map(|fired| match fired {
                Fired::Wake(index) if app.conf().schedules.contains(index) => Some(*index),
                _ => None,
            });
            if let Some(index) = woken_by {
                if matches!(app.state(), State::Asleep | State::Failed) {
                    let Some(schedule) = schedules.get(index).map(|s| s.label.clone()) else {
                        continue;
                    };
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
            let Some((index, since)) = app.conf().schedules.iter().find_map(|index| {
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
        if app.conf().schedules.is_empty()
            || app.pinned_until.load(Ordering::SeqCst) > self.clock.now_ms()
        {
            return None;
        }
        let tracker = self.schedules.load_full();
        let snapshot = tracker.snapshot();
        if kept_awake(app, &snapshot) {
            return None;
        }
        let schedules = tracker.schedules();
        app.conf().schedules.iter().find_map(|index| {
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
}
