//! The hand-off with the durable catalog: what the catalog remembered of apps (given once,
//! before the first discovery, taken when discovery registers them), and the [`Record`]s
//! the lifecycle sends it, in order. It never reads or writes the store itself: the catalog
//! does, on its side of the channel.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use super::{App, Lifecycle, lock};
use crate::model::{AppKey, Formation};
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

impl Lifecycle {
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

    pub(super) fn record(&self, record: impl FnOnce() -> Record) {
        if let Some(records) = self.records.get() {
            let _ = records.send(record());
        }
    }

    /// Apps whose last activity changed since the previous call, with its wall-clock time.
    pub fn activity_changes(&self) -> Vec<(AppKey, SystemTime)> {
        // Under the lock, without a copy of the whole list (it runs every few seconds).
        lock(&self.apps)
            .values()
            .filter_map(|app| {
                let last = app.last_activity.load(Ordering::SeqCst);
                let flushed = app.flushed_activity.swap(last, Ordering::SeqCst);
                (last != flushed).then(|| (app.key.clone(), self.clock.wall(last)))
            })
            .collect()
    }

    /// Keeps `formation` as the one to restore on the app's next wake (and in the catalog).
    pub(super) fn remember_formation(&self, app: &App, formation: Formation) {
        let mut current = lock(&app.formation);
        if current.as_ref() != Some(&formation) {
            self.record(|| Record::Formation {
                key: app.key.clone(),
                formation: Some(formation.clone()),
            });
            *current = Some(formation);
        }
    }
}
