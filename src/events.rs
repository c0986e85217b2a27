//! Events: typed, timestamped records of what the engine did to which app and why.
//!
//! Every lifecycle transition emits one. They are logged and kept in a bounded in-memory log
//! (newest last); live subscribers get them as they happen, and watchers of the durable
//! history are told each time some were written there. This module only records: it never
//! acts on an event.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::model::AppKey;

/// What started a wake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WakeCause {
    /// A proxied request for the sleeping app. The path carries no query string (queries
    /// may hold secrets).
    Request {
        /// HTTP method.
        method: String,
        /// Request path, without its query.
        path: String,
        /// The client's `User-Agent`, if any.
        user_agent: Option<String>,
        /// The client's address as seen by the engine.
        client_ip: IpAddr,
    },
    /// An app it is linked to (`rules[].linked_apps`) was woken.
    Linked {
        /// The app that was woken.
        app: String,
    },
    /// A schedule's `wake` time (pre-warming before people arrive).
    Schedule {
        /// Which schedule (its `apps` pattern).
        schedule: String,
    },
    /// The admin API or the CLI.
    Api {
        /// Who asked (the token's name), when known.
        by: Option<String>,
    },
}

impl fmt::Display for WakeCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WakeCause::Request {
                method,
                path,
                client_ip,
                ..
            } => write!(f, "request {method} {path} from {client_ip}"),
            WakeCause::Linked { app } => write!(f, "linked to {app}, which was woken"),
            WakeCause::Schedule { schedule } => write!(f, "schedule {schedule}"),
            WakeCause::Api { by: Some(by) } => write!(f, "API request by {by}"),
            WakeCause::Api { by: None } => f.write_str("API request"),
        }
    }
}

/// What started a stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StopCause {
    /// No activity for longer than the app's `max_idle`.
    Idle {
        /// How long the app had been idle.
        #[serde(rename = "idle_for_ms", with = "duration_ms")]
        idle_for: Duration,
    },
    /// A wake that could not complete; the half-started app is stopped again.
    WakeFailed,
    /// A schedule's `sleep` time.
    Schedule {
        /// Which schedule (its `apps` pattern).
        schedule: String,
    },
    /// The admin API or the CLI.
    Api {
        /// Who asked (the token's name), when known.
        by: Option<String>,
    },
    /// The space's plan allows fewer running apps: the least recently active one makes
    /// room for another (`on_limit: evict_lru`).
    PlanLimit {
        /// The app that needed the room.
        for_app: String,
    },
    /// A configuration reload no longer manages the app (`reload.removed_apps: stop`).
    Unmanaged,
}

impl fmt::Display for StopCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopCause::Idle { idle_for } => write!(f, "idle for {}s", idle_for.as_secs()),
            StopCause::WakeFailed => f.write_str("wake failed"),
            StopCause::Schedule { schedule } => write!(f, "schedule {schedule}"),
            StopCause::Api { by: Some(by) } => write!(f, "API request by {by}"),
            StopCause::Api { by: None } => f.write_str("API request"),
            StopCause::PlanLimit { for_app } => write!(f, "plan limit, to make room for {for_app}"),
            StopCause::Unmanaged => f.write_str("no longer in the configuration"),
        }
    }
}

/// What happened.
///
/// Serialised (for the store and the API) as an object tagged by `kind`, the variant's name
/// in snake_case (`wake_requested`), with its fields beside it; durations are whole
/// milliseconds in fields ending in `_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// Seen for the first time by discovery.
    Discovered {
        /// Whether it was running when first seen.
        running: bool,
    },
    /// Found running by discovery while the engine thought it asleep: now managed as awake,
    /// with activity = now.
    Registered,
    /// A wake began.
    WakeRequested {
        /// Why.
        cause: WakeCause,
    },
    /// The app is up and requests flow.
    Started {
        /// From the wake request to ready.
        #[serde(rename = "duration_ms", with = "duration_ms")]
        duration: Duration,
        /// What the wake changed of what the engine remembered, to match the platform (a
        /// process type removed while the app slept, a new address); absent when nothing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reconciled: Option<crate::model::Reconciled>,
    },
    /// A wake was refused: the plan allows no more running apps on the app's provider, and
    /// none could be stopped to make room (its requests got 429). Recorded at most once a
    /// minute per app, however many requests are refused.
    WakeRefused {
        /// The limit, as the refused requests were told.
        reason: String,
    },
    /// The wake failed; held requests got 503.
    StartFailed {
        /// Why, as the provider or the readiness check said.
        reason: String,
    },
    /// A stop began.
    StopRequested {
        /// Why.
        cause: StopCause,
    },
    /// The app is stopped (savings count from here).
    Stopped {
        /// The process types and amounts that were running (what would run but for the
        /// stop), when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        formation: Option<crate::model::Formation>,
        /// Their sizes as the platform names them, where known.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        sizes: BTreeMap<String, String>,
    },
    /// A `before_stop` hook refused the stop (non-zero exit): the app stays awake and the
    /// stop is tried again later.
    StopVetoed {
        /// What the hook said (its exit status and the end of its output).
        reason: String,
    },
    /// A hook failed (other than a vetoing `before_stop`); what it was part of went on.
    HookFailed {
        /// Which hook (`before_start`, `after_start`, `after_stop`).
        hook: String,
        /// How it ended and the end of its output.
        reason: String,
    },
    /// The provider could not stop the app; it stays awake and the stop is retried later.
    StopFailed {
        /// The provider's error.
        reason: String,
    },
    /// The app stopped without being asked to (its process exited, or discovery found it
    /// stopped).
    Exited {
        /// What the provider said.
        reason: String,
    },
    /// The app no longer exists on its provider.
    Deleted,
    /// A configuration reload no longer manages the app (its provider, or the rule or
    /// `discovery` filter that let it in, is gone): it is forgotten. `running`: it was
    /// awake and is left running (`reload.removed_apps: keep_running`); the stop that
    /// `reload.removed_apps: stop` asks for follows as its own events.
    Unmanaged {
        /// Whether it was left running.
        running: bool,
    },
    /// The configuration was reloaded and applied (the event's app is the space's, with no
    /// provider and no name).
    ConfigReloaded {
        /// The new configuration's revision.
        revision: String,
        /// What changed, one line each (`rules`, `providers[1] (added)`, ...).
        changes: Vec<String>,
    },
    /// A configuration reload was refused: the running configuration stays.
    ConfigRejected {
        /// Every error, with its path.
        errors: Vec<String>,
    },
    /// A provider call failed outside a wake or stop (e.g. discovery).
    ProviderError {
        /// The error.
        message: String,
    },
}

/// One record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Wall-clock time it happened.
    pub at: SystemTime,
    /// The app it concerns (for provider-wide events, the name is empty).
    pub app: AppKey,
    /// What happened.
    pub kind: EventKind,
}

/// Bounded in-memory event log with live subscribers.
#[derive(Debug)]
pub struct EventLog {
    /// Newest last; oldest dropped beyond `capacity`.
    recent: Mutex<VecDeque<Event>>,
    /// How many events are kept.
    capacity: usize,
    /// Live feed for whoever wants events as they happen.
    feed: broadcast::Sender<Event>,
    /// Called with every event, in order, before anyone else sees it (the durable history
    /// writer: it must only queue the event, never block).
    sink: std::sync::OnceLock<Sink>,
    /// Counts the writes of events to the durable history (by whoever the sink hands them
    /// to), for those who follow the history.
    stored: tokio::sync::watch::Sender<u64>,
}

/// A function every emitted event is handed to.
pub struct Sink(pub Box<dyn Fn(&Event) + Send + Sync>);

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sink")
    }
}

impl EventLog {
    /// A log keeping the last `capacity` events.
    pub fn new(capacity: usize) -> EventLog {
        let (feed, _) = broadcast::channel(capacity.max(16));
        EventLog {
            recent: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
            capacity,
            feed,
            sink: std::sync::OnceLock::new(),
            stored: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Records, logs and announces an event.
    pub fn emit(&self, app: &AppKey, kind: EventKind) {
        let event = Event {
            at: SystemTime::now(),
            app: app.clone(),
            kind,
        };
        log(&event);
        if let Some(sink) = self.sink.get() {
            (sink.0)(&event);
        }
        {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.len() == self.capacity {
                recent.pop_front();
            }
            recent.push_back(event.clone());
        }
        let _ = self.feed.send(event);
    }

    /// Hands every event from now on to `sink` (once; later calls are ignored and return
    /// false).
    pub fn set_sink(&self, sink: Sink) -> bool {
        self.sink.set(sink).is_ok()
    }

    /// The kept events, oldest first.
    pub fn recent(&self) -> Vec<Event> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().cloned().collect()
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.feed.subscribe()
    }

    /// Says that events handed to the sink were written to the durable history.
    pub fn mark_stored(&self) {
        self.stored
            .send_modify(|writes| *writes = writes.wrapping_add(1));
    }

    /// Changes each time events were written to the durable history ([`EventLog::mark_stored`]):
    /// a follower of the history reads it again then, rather than waiting for its next poll.
    pub fn stored(&self) -> tokio::sync::watch::Receiver<u64> {
        self.stored.subscribe()
    }
}

/// A [`Duration`] as whole milliseconds (sub-millisecond parts are dropped) in serialised
/// events.
mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

fn log(event: &Event) {
    let app = &event.app;
    match &event.kind {
        EventKind::Discovered { running } => {
            tracing::info!(%app, running, "discovered")
        }
        EventKind::Registered => tracing::info!(%app, "found running, now managed"),
        EventKind::WakeRequested { cause } => tracing::info!(%app, %cause, "waking"),
        EventKind::Started { duration, .. } => {
            tracing::info!(%app, duration_ms = duration.as_millis() as u64, "awake")
        }
        EventKind::WakeRefused { reason } => {
            tracing::warn!(%app, %reason, "wake refused by the plan")
        }
        EventKind::StartFailed { reason } => tracing::warn!(%app, %reason, "wake failed"),
        EventKind::StopRequested { cause } => tracing::info!(%app, %cause, "stopping"),
        EventKind::Stopped { .. } => tracing::info!(%app, "asleep"),
        EventKind::StopFailed { reason } => tracing::warn!(%app, %reason, "stop failed"),
        EventKind::HookFailed { hook, reason } => {
            tracing::warn!(%app, %hook, %reason, "hook failed")
        }
        EventKind::StopVetoed { reason } => tracing::info!(%app, %reason, "stop vetoed"),
        EventKind::Exited { reason } => tracing::warn!(%app, %reason, "stopped on its own"),
        EventKind::Deleted => tracing::info!(%app, "deleted on its provider"),
        EventKind::Unmanaged { running } => {
            tracing::info!(%app, left_running = running, "no longer managed: forgotten")
        }
        EventKind::ConfigReloaded { revision, changes } => tracing::info!(
            space = %app.space,
            %revision,
            changes = %changes.join("; "),
            "configuration reloaded"
        ),
        EventKind::ConfigRejected { errors } => tracing::error!(
            space = %app.space,
            errors = %errors.join("; "),
            "configuration reload refused; the running configuration stays"
        ),
        EventKind::ProviderError { message } => {
            tracing::warn!(provider = %app.provider, error = %message, "provider error")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_newest() {
        let log = EventLog::new(3);
        let key = AppKey::new("default", "local", "a");
        for n in 0..5 {
            log.emit(
                &key,
                EventKind::Exited {
                    reason: n.to_string(),
                },
            );
        }
        let reasons: Vec<String> = log
            .recent()
            .into_iter()
            .map(|e| match e.kind {
                EventKind::Exited { reason } => reason,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(reasons, vec!["2", "3", "4"]);
    }
}
