//! The durable store: the catalog of every app ever seen, and the event history.
//!
//! One object-safe trait, [`Store`], with two implementations: [`sqlite`] (a local file, the
//! default: embedded, zero setup) and [`postgres`] (a server, for several instances). [`open`]
//! picks one from the `database.url` and runs the embedded migrations
//! (`migrations/sqlite/`, `migrations/postgres/`).
//!
//! The store never decides anything: it writes what it is told and answers queries. Whether
//! an app sleeps, when events are pruned and what an ETA is belong to the engine. Times are
//! kept as whole milliseconds since the Unix epoch, durations as whole milliseconds.
//!
//! Rows of the catalog are created by [`Store::app_seen`] only (discovery sees every app
//! before anything else happens to it); the other writes about one app answer
//! [`StoreError::UnknownApp`] for an app never seen.

pub mod postgres;
pub mod settings;
pub mod sqlite;

mod codec;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::events::Event;
use crate::model::AppKey;
use crate::model::Formation;

pub use crate::secret::redact::redact_url;

/// How many start durations are kept per app (the newest ones).
pub const START_HISTORY: usize = 20;

/// The page size of [`Store::events`] when the query names none.
pub const DEFAULT_EVENTS_LIMIT: u32 = 50;

/// The largest page of [`Store::events`]; larger limits are lowered to it.
pub const MAX_EVENTS_LIMIT: u32 = 500;

/// The most kinds one events query may name (there are about a dozen).
pub const MAX_EVENT_KINDS: usize = 64;

/// What discovery saw of an app, for [`Store::app_seen`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeenApp {
    /// Where its requests go, when the provider says.
    pub upstream: Option<String>,
    /// Whether it was running when seen.
    pub running: bool,
}

/// One app of the catalog, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// Space, provider and name: what identifies the app.
    pub key: AppKey,
    /// Where its requests went when last seen.
    pub upstream: Option<String>,
    /// Whether it was running when last seen by discovery.
    pub running: bool,
    /// When discovery saw it for the first time.
    pub first_seen: SystemTime,
    /// When discovery saw it last.
    pub last_seen: SystemTime,
    /// When it was found gone from its provider; `None` while it exists (or came back).
    pub deleted_at: Option<SystemTime>,
    /// The formation remembered at its last stop, restored on wake.
    pub formation: Option<Formation>,
    /// Its newest start durations (at most [`START_HISTORY`]), oldest first: for ETAs.
    pub start_durations: Vec<Duration>,
    /// Since when it is asleep; `None` while awake. Survives restarts.
    pub asleep_since: Option<SystemTime>,
    /// Time asleep in every finished sleep (the current one is not included).
    pub asleep_total: Duration,
    /// Its last activity as last flushed; never moves back.
    pub last_activity: Option<SystemTime>,
}

/// A filter and a page position over the stored events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only this space.
    pub space: Option<String>,
    /// Only this provider id.
    pub provider: Option<String>,
    /// Only apps of this name.
    pub app: Option<String>,
    /// Only these kinds (snake_case names such as `wake_requested`); empty means all; at
    /// most [`MAX_EVENT_KINDS`].
    pub kinds: Vec<String>,
    /// Only events at or after this time.
    pub since: Option<SystemTime>,
    /// Only events strictly before this time.
    pub until: Option<SystemTime>,
    /// Page size: [`DEFAULT_EVENTS_LIMIT`] when `None`, at most [`MAX_EVENTS_LIMIT`], at
    /// least 1.
    pub limit: Option<u32>,
    /// Where the previous page ended ([`EventPage::next_cursor`]); `None` for the first page.
    pub cursor: Option<String>,
    /// Only events with an id greater than this one, and the page in id order (oldest
    /// first) instead of newest first: how a follower of the history (the live event
    /// stream) asks for what was written since the last event it saw. Ids grow in the
    /// order events are committed, on both databases, so a follower that asks again with
    /// the last id it got misses none and sees none twice. Not with a `cursor`; the page
    /// has no next cursor (ask again with `after` = the last id).
    pub after: Option<i64>,
}

impl EventQuery {
    /// The page size this query asks for, within bounds.
    pub fn page_size(&self) -> u32 {
        self.limit
            .unwrap_or(DEFAULT_EVENTS_LIMIT)
            .clamp(1, MAX_EVENTS_LIMIT)
    }
}

/// An event as stored, with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its row id: unique, never reused.
    pub id: i64,
    /// The event (times and durations to the millisecond).
    pub event: Event,
}

/// One page of events, newest first (in id order with [`EventQuery::after`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPage {
    /// The events of this page, newest first (by time, then id).
    pub events: Vec<StoredEvent>,
    /// Pass it as [`EventQuery::cursor`] to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A space created through the admin API, as stored (hosted mode).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSpace {
    /// Its id.
    pub id: String,
    /// Its document without providers (JSON text, no secret in it).
    pub settings: String,
    /// Its providers' document, sealed under the master key (it holds the credentials).
    pub providers: String,
    /// Grows by one at every change (other instances compare it).
    pub revision: i64,
    /// When it was created.
    pub created_at: SystemTime,
    /// When it last changed.
    pub updated_at: SystemTime,
    /// Its API tokens, as hashes.
    pub tokens: Vec<StoredToken>,
}

impl fmt::Debug for StoredSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSpace")
            .field("id", &self.id)
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

/// A space token as stored: its public id and its SHA-256 (hex), never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// Public id (`tok_…`), to list and revoke it.
    pub id: String,
    /// SHA-256 of the token, 64 hex digits.
    pub hash: String,
    /// When it was issued.
    pub created_at: SystemTime,
}

/// Why the store could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no database this store knows.
    #[error(
        "unsupported database URL `{url}`: use sqlite://<path>, sqlite::memory:, \
         postgres://user:password@host:port/database or postgresql://…"
    )]
    UnsupportedUrl {
        /// The URL, password redacted.
        url: String,
    },
    /// The SQLite file (or its folder) cannot be created or opened.
    #[error("cannot create/open the database at {path}: {reason}")]
    Open {
        /// The database file.
        path: String,
        /// What went wrong, e.g. `permission denied`.
        reason: String,
    },
    /// The file exists but is not a SQLite database.
    #[error("{path} is not a usable SQLite database: {reason}")]
    NotSqlite {
        /// The file.
        path: String,
        /// What SQLite said.
        reason: String,
    },
    /// Nothing answers at the PostgreSQL address.
    #[error("cannot reach PostgreSQL at {address}: {reason}")]
    Unreachable {
        /// `host:port` (or the socket path).
        address: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// PostgreSQL answered but refused the connection (credentials, missing database).
    #[error("PostgreSQL at {address} refused the connection: {reason}")]
    Refused {
        /// `host:port` (or the socket path).
        address: String,
        /// What the server said (never the password).
        reason: String,
    },
    /// The schema could not be brought up to date.
    #[error("cannot update the database schema: {0}")]
    Migrate(String),
    /// A cursor that no page handed out.
    #[error("malformed events cursor")]
    BadCursor,
    /// An events query the store will not run (e.g. hundreds of kinds).
    #[error("invalid events query: {0}")]
    BadQuery(String),
    /// A write about an app the catalog has no row for.
    #[error("no app {0} in the catalog")]
    UnknownApp(String),
    /// A value could not be encoded for storage.
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// The database failed a query (or is unreachable now).
    #[error("database error: {0}")]
    Database(String),
    /// The master key was replaced (`paastis rekey`) since this instance started.
    #[error(
        "the master key was replaced since this instance started (paastis rekey): restart it with PAASTIS_MASTER_KEY set to the new key"
    )]
    KeyChanged,
}

/// The durable catalog and event history. Object-safe: the engine holds `Arc<dyn Store>`.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Discovery saw the app at `at`: creates its row (first and last seen = `at`) or updates
    /// last seen, upstream and running; clears `deleted_at` (an app that came back).
    async fn app_seen(
        &self,
        key: &AppKey,
        seen: &SeenApp,
        at: SystemTime,
    ) -> Result<(), StoreError>;

    /// [`Store::app_seen`] for several apps, in one transaction (a discovery that found many
    /// apps at once: a large account at start).
    async fn apps_seen(&self, seen: &[(AppKey, SeenApp, SystemTime)]) -> Result<(), StoreError>;

    /// The app is gone from its provider since `at` (an earlier deletion time is kept).
    async fn app_deleted(&self, key: &AppKey, at: SystemTime) -> Result<(), StoreError>;

    /// Remembers the formation the app had at its last stop (`None` forgets it).
    async fn set_formation(
        &self,
        key: &AppKey,
        formation: Option<&Formation>,
    ) -> Result<(), StoreError>;

    /// Appends a start duration (a wake that finished at `at`), keeping the newest
    /// [`START_HISTORY`].
    async fn record_start(
        &self,
        key: &AppKey,
        duration: Duration,
        at: SystemTime,
    ) -> Result<(), StoreError>;

    /// The app went to sleep (`asleep`) or woke up at `at`: going to sleep sets
    /// `asleep_since` (an earlier one is kept); waking adds the time asleep to
    /// `asleep_total` and clears `asleep_since`.
    async fn record_state(
        &self,
        key: &AppKey,
        asleep: bool,
        at: SystemTime,
    ) -> Result<(), StoreError>;

    /// [`Store::record_state`] for several apps, in order, in one transaction. Apps without
    /// a catalog row are skipped. Returns how many were written.
    async fn record_states(&self, states: &[(AppKey, bool, SystemTime)])
    -> Result<u64, StoreError>;

    /// Raises the last activity of each app to the given time, in one transaction (a time
    /// older than the stored one changes nothing). Apps without a catalog row are skipped.
    /// Returns how many apps were written.
    async fn record_activity(&self, activity: &[(AppKey, SystemTime)]) -> Result<u64, StoreError>;

    /// Every app of the catalog (of one space, or all), ordered by space, provider, name.
    async fn catalog(&self, space: Option<&str>) -> Result<Vec<CatalogEntry>, StoreError>;

    /// Appends events, all in one transaction.
    async fn append_events(&self, events: &[Event]) -> Result<(), StoreError>;

    /// One page of events matching the query, newest first (with [`EventQuery::after`]:
    /// oldest first, by id).
    async fn events(&self, query: &EventQuery) -> Result<EventPage, StoreError>;

    /// The id of the newest event written (0 when none): where a follower of the history
    /// that wants only what comes next starts ([`EventQuery::after`]).
    async fn last_event_id(&self) -> Result<i64, StoreError>;

    /// Deletes the events older than `older_than`, a few thousand rows per statement so
    /// writers are never held up long; returns how many were deleted.
    async fn prune_events(&self, older_than: SystemTime) -> Result<u64, StoreError>;

    /// The master key check of hosted mode: a known text sealed under the key the first
    /// time hosted mode ran. Keeps `sealed` when there is none yet; returns the one kept.
    async fn key_check(&self, sealed: &str) -> Result<String, StoreError>;

    /// Every space created through the admin API, by id, with its tokens.
    async fn stored_spaces(&self) -> Result<Vec<StoredSpace>, StoreError>;

    /// Creates or replaces a stored space and its tokens (exactly `space.tokens`), in one
    /// transaction, provided the master key check is still `key_check` (the one this
    /// instance opened at start): after `paastis rekey`, an instance still on the old key
    /// gets [`StoreError::KeyChanged`] and writes nothing.
    async fn put_space(&self, space: &StoredSpace, key_check: &str) -> Result<(), StoreError>;

    /// Deletes a stored space, its tokens and its catalog rows (its events stay until
    /// `events.retention`); returns whether it was there.
    async fn delete_space(&self, id: &str) -> Result<bool, StoreError>;

    /// A new master key: the key check and every stored space's sealed providers replaced,
    /// in one transaction (all or nothing). `spaces` gives each space's id, the revision
    /// read (a space changed meanwhile fails the whole transaction: nothing is written) and
    /// its providers sealed under the new key.
    async fn rekey(&self, check: &str, spaces: &[(String, i64, String)]) -> Result<(), StoreError>;

    /// Whether the database answers.
    async fn health(&self) -> Result<(), StoreError>;

    /// Closes the connections (waits for queries in flight). Later calls fail.
    async fn close(&self);
}

/// Opens the store named by a `database.url` and brings its schema up to date.
///
/// * `sqlite://path/to/file.db`: relative to the working directory (`sqlite:///abs/path`
///   for an absolute path); the folders and the file are created when missing.
/// * `sqlite::memory:`: a private in-memory database (tests).
/// * `postgres://user:password@host:port/database` (or `postgresql://`).
///
/// Errors never contain the URL's password.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url == sqlite::MEMORY_URL {
        return Ok(Arc::new(sqlite::SqliteStore::open_memory().await?));
    }
    if let Some(path) = url.strip_prefix("sqlite://") {
        return Ok(Arc::new(sqlite::SqliteStore::open_file(path).await?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(postgres::PgStore::open(url).await?));
    }
    Err(StoreError::UnsupportedUrl {
        url: redact_url(url),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_space_debug_shows_neither_settings_nor_sealed_providers() {
        let space = StoredSpace {
            id: "acme".to_owned(),
            settings: r#"{"domains":["acme.test"]}"#.to_owned(),
            providers: "v1:c2VhbGVk".to_owned(),
            revision: 3,
            created_at: SystemTime::UNIX_EPOCH,
            updated_at: SystemTime::UNIX_EPOCH,
            tokens: Vec::new(),
        };
        let shown = format!("{space:?}");
        assert!(shown.contains("acme") && shown.contains('3'), "{shown}");
        assert!(
            !shown.contains("v1:") && !shown.contains("domains"),
            "{shown}"
        );
    }
}
