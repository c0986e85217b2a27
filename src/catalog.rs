//! The engine's durable memory, between the lifecycle and the [`store`](crate::store): at
//! start it hands the lifecycle what the catalog remembers (formations, start durations,
//! last activity); while the engine runs it writes what happens (apps seen, formations,
//! events, activity) in the background, in order, batched, and prunes old events.
//!
//! Nothing here is on the request path: the lifecycle only queues records, and a slow or
//! failing database delays the history, never a request. It decides nothing about apps.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::events::{Event, EventKind};
use crate::lifecycle::{Lifecycle, Record};
use crate::model::AppKey;
use crate::store::{SeenApp, Store, StoreError};

/// How often changed activity is written (an engine killed without warning loses at most
/// this much of it).
pub const ACTIVITY_FLUSH_EVERY: Duration = Duration::from_secs(2);

/// How often old events are pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Records written in one go, at most.
const BATCH: usize = 512;

/// Attempts at a write the database refused for a passing reason, before it is dropped
/// (and logged).
const ATTEMPTS: u32 = 3;

/// The background writers; [`Catalog::finish`] writes what is queued and stops them.
#[derive(Debug)]
pub struct Catalog {
    /// Writes records in order.
    writer: JoinHandle<()>,
    /// Writes activity changes and prunes events.
    ticker: JoinHandle<()>,
    /// Where activity comes from (read once more at the end).
    lifecycle: Arc<Lifecycle>,
    /// The queue the lifecycle writes to, for the final barrier.
    records: mpsc::UnboundedSender<Record>,
    /// The store.
    store: Arc<dyn Store>,
}

impl Catalog {
    /// Hands the lifecycle what `store` remembers, then starts writing to it. Call before
    /// the first discovery.
    pub async fn start(
        store: Arc<dyn Store>,
        lifecycle: &Arc<Lifecycle>,
        retention: Duration,
    ) -> Result<Catalog, StoreError> {
        lifecycle.remember(store.catalog(Some(lifecycle.space())).await?);
        let (records, queue) = mpsc::unbounded_channel();
        lifecycle.record_to(records.clone());
        let writer = tokio::spawn(write(Arc::clone(&store), Arc::clone(lifecycle), queue));
        let ticker = tokio::spawn(tick(Arc::clone(&store), Arc::clone(lifecycle), retention));
        Ok(Catalog {
            writer,
            ticker,
            lifecycle: Arc::clone(lifecycle),
            records,
            store,
        })
    }

    /// The store it writes to.
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// Writes what is queued and the last activity (bounded by a few seconds for a
    /// database that does not answer), then stops. The store stays open: other spaces
    /// write to it too (the engine closes it last).
    pub async fn finish(self) {
        self.ticker.abort();
        let _ = self.ticker.await;
        let (done, written) = tokio::sync::oneshot::channel();
        if self.records.send(Record::Barrier(done)).is_ok()
            && tokio::time::timeout(Duration::from_secs(10), written)
                .await
                .is_err()
        {
            tracing::warn!("the database did not take the last records in time");
        }
        self.writer.abort();
        flush_activity(&*self.store, &self.lifecycle).await;
    }
}

/// Applies what is queued: the apps seen in one transaction, then the events in one insert
/// (and what they say about the catalog), other catalog changes one by one in their place.
/// An app seen is written before the events queued with it (a discovery sends each new app's
/// record, then its event: a large account's first discovery is two transactions, not two
/// statements per app), except after its own deletion, which stays first.
/// Each write of events is announced on the lifecycle's event log (followers of the
/// history read it then).
async fn write(
    store: Arc<dyn Store>,
    lifecycle: Arc<Lifecycle>,
    mut queue: mpsc::UnboundedReceiver<Record>,
) {
    let log = lifecycle.events();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        if queue.recv_many(&mut batch, BATCH).await == 0 {
            return;
        }
        let mut events: Vec<Event> = Vec::new();
        let mut seen = Vec::new();
        for record in batch.drain(..) {
            match record {
                Record::Event(event) => events.push(event),
                Record::Seen { key, seen: app, at } => {
                    let deleted_before = events.iter().any(|event| {
                        event.app == key
                            && matches!(
                                event.kind,
                                EventKind::Deleted | EventKind::Unmanaged { .. }
                            )
                    });
                    if deleted_before {
                        see(&*store, &mut seen).await;
                        append(&*store, &mut events, log).await;
                    }
                    seen.push((key, app, at));
                }
                other => {
                    see(&*store, &mut seen).await;
                    append(&*store, &mut events, log).await;
                    apply(&*store, other).await;
                }
            }
        }
        see(&*store, &mut seen).await;
        append(&*store, &mut events, log).await;
    }
}

/// Writes the pending apps seen.
async fn see(store: &dyn Store, seen: &mut Vec<(AppKey, SeenApp, SystemTime)>) {
    if seen.is_empty() {
        return;
    }
    retry("apps", || store.apps_seen(seen)).await;
    seen.clear();
}

/// Writes the pending events, then what they say about the catalog (runs of state changes
/// in one transaction).
async fn append(store: &dyn Store, events: &mut Vec<Event>, log: &crate::events::EventLog) {
    if events.is_empty() {
        return;
    }
    retry("events", || store.append_events(events)).await;
    log.mark_stored();
    let mut states = Vec::new();
    for event in events.drain(..) {
        let key = &event.app;
        if key.name.is_empty() {
            continue;
        }
        let at = event.at;
        match &event.kind {
            EventKind::Started { duration, .. } => {
                retry("start", || store.record_start(key, *duration, at)).await;
                states.push((key.clone(), false, at));
            }
            EventKind::Registered => states.push((key.clone(), false, at)),
            EventKind::Discovered { running } => states.push((key.clone(), !running, at)),
            EventKind::Stopped { .. } | EventKind::Exited { .. } => {
                states.push((key.clone(), true, at))
            }
            EventKind::Deleted | EventKind::Unmanaged { .. } => {
                record_states(store, &mut states).await;
                retry("deletion", || store.app_deleted(key, at)).await
            }
            _ => {}
        }
    }
    record_states(store, &mut states).await;
}

/// Writes the pending state changes.
async fn record_states(store: &dyn Store, states: &mut Vec<(AppKey, bool, SystemTime)>) {
    if states.is_empty() {
        return;
    }
    retry("state", || store.record_states(states)).await;
    states.clear();
}

async fn apply(store: &dyn Store, record: Record) {
    match record {
        Record::Seen { key, seen, at } => {
            retry("app", || store.app_seen(&key, &seen, at)).await;
        }
        Record::Formation { key, formation } => {
            retry("formation", || {
                store.set_formation(&key, formation.as_ref())
            })
            .await;
        }
        Record::Barrier(done) => {
            let _ = done.send(());
        }
        Record::Event(_) => {}
    }
}

/// Runs a write, again after a pause when the database failed for a passing reason.
async fn retry<'a, F, Fut, T>(what: &str, mut write: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>> + 'a,
{
    for attempt in 1..=ATTEMPTS {
        match write().await {
            Ok(_) => return,
            Err(error @ StoreError::Database(_)) if attempt < ATTEMPTS => {
                tracing::warn!(%error, what, "catalog write failed; retrying");
                tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
            }
            Err(error) => {
                tracing::error!(%error, what, "catalog write lost");
                return;
            }
        }
    }
}

/// Writes activity changes every [`ACTIVITY_FLUSH_EVERY`] and prunes events older than
/// `retention` every [`PRUNE_EVERY`] (once soon after start too).
async fn tick(store: Arc<dyn Store>, lifecycle: Arc<Lifecycle>, retention: Duration) {
    let mut flushes = tokio::time::interval(ACTIVITY_FLUSH_EVERY);
    flushes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prunes = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(60),
        PRUNE_EVERY,
    );
    prunes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = flushes.tick() => flush_activity(&*store, &lifecycle).await,
            _ = prunes.tick() => {
                let before = SystemTime::now()
                    .checked_sub(retention)
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                match store.prune_events(before).await {
                    Ok(0) => {}
                    Ok(pruned) => tracing::info!(pruned, "old events pruned"),
                    Err(error) => tracing::warn!(%error, "pruning old events failed"),
                }
            }
        }
    }
}

async fn flush_activity(store: &dyn Store, lifecycle: &Lifecycle) {
    let changes = lifecycle.activity_changes();
    if !changes.is_empty() {
        retry("activity", || store.record_activity(&changes)).await;
    }
}
