//! The SQLite store: one local file in WAL mode (readers never wait for the writer), the
//! default `database.url`. Also `sqlite::memory:`, a private in-memory database for tests.
//!
//! SQLite has one writer at a time. This process's writes queue on a fair lock (first come,
//! first served) rather than on SQLite's busy handler, which polls with growing sleeps: so a
//! single append waits at most for the statement in progress, never for a whole prune.
//! Other processes on the same file are waited for up to the busy timeout. One writer at a
//! time also means event ids are committed in increasing order (what
//! [`EventQuery::after`](super::EventQuery::after) relies on).
//!
//! Checkpoints (copying the write-ahead log into the database file and syncing it to disk)
//! run outside that queue too: SQLite's automatic checkpoint would run inside the write that
//! sets it off, and on a busy disk its sync can take seconds, during which every queued
//! writer would wait. So automatic checkpoints are off; every [`CHECKPOINT_EVERY`] writes
//! start a passive one in the background (writers go on meanwhile), and pruning runs one
//! after each batch. The log starts over at the first write after a checkpoint that caught
//! up; should writes never pause long enough for that, a write checkpoints inside the queue
//! once the log passes [`WAL_LIMIT`] pages.

use std::fmt;
use std::io;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Encode, Type};
use tokio::sync::{Mutex, MutexGuard};

use super::codec::{self, AppRow, EventRow, StartRow};
use super::{
    CatalogEntry, EventPage, EventQuery, START_HISTORY, SeenApp, Store, StoreError, StoredSpace,
};
use crate::events::Event;
use crate::model::AppKey;
use crate::model::Formation;

/// The URL of a private in-memory database.
pub const MEMORY_URL: &str = "sqlite::memory:";

/// How long a statement waits for another process holding the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections of a file database (readers run side by side in WAL mode).
const MAX_CONNECTIONS: u32 = 4;

/// Rows deleted per statement when pruning: each statement holds the write lock for a few
/// milliseconds (see `docs/src/benchmarks.md`, Store).
pub const PRUNE_BATCH: i64 = 2_000;

/// Writes between two background checkpoints.
pub const CHECKPOINT_EVERY: u32 = 100;

/// Pages of write-ahead log beyond which a write checkpoints inside the write queue (64 MiB
/// with 4 KiB pages).
pub const WAL_LIMIT: i64 = 16_384;

/// The schema, embedded.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// A SQLite database.
pub struct SqliteStore {
    /// The file (or `:memory:`), for messages.
    path: String,
    /// The connections.
    pool: SqlitePool,
    /// Queues this process's writes, fairly (see the module doc).
    write: Mutex<()>,
    /// Writes since the last background checkpoint was started.
    writes: AtomicU32,
    /// Whether a background checkpoint is running (one at a time).
    checkpointing: Arc<AtomicBool>,
    /// Pages in the write-ahead log at the last checkpoint (-1: not in WAL mode; 0 after a
    /// checkpoint in the write queue that copied it whole).
    wal_pages: Arc<AtomicI64>,
}

/// This process's turn to write (it holds the write queue); when it ends, it may start a
/// checkpoint in the background.
struct Turn<'a> {
    /// The store written to.
    store: &'a SqliteStore,
    /// The head of the queue.
    _queue: MutexGuard<'a, ()>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let store = self.store;
        if store.writes.fetch_add(1, Ordering::Relaxed) + 1 < CHECKPOINT_EVERY
            || store.checkpointing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        store.writes.store(0, Ordering::Relaxed);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            store.checkpointing.store(false, Ordering::Release);
            return;
        };
        let pool = store.pool.clone();
        let checkpointing = Arc::clone(&store.checkpointing);
        let wal_pages = Arc::clone(&store.wal_pages);
        runtime.spawn(async move {
            // Writes during a checkpoint leave a tail behind: a few more rounds catch up.
            for _ in 0..5 {
                let (whole, log) = checkpoint(&pool).await;
                wal_pages.store(log, Ordering::Relaxed);
                if whole || pool.is_closed() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            checkpointing.store(false, Ordering::Release);
        });
    }
}

/// A passive checkpoint: copies the write-ahead log into the database file as far as
/// readers allow, without blocking writers. Returns whether it copied the whole log, and
/// how long the log is (pages; -1 when not in WAL mode). The log starts over at the next
/// write only if no write came in meanwhile.
async fn checkpoint(pool: &SqlitePool) -> (bool, i64) {
    // fetch_all, not fetch_one: the statement must run to its end, or the connection keeps
    // a read snapshot, which stops the log from starting over.
    match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_all(pool)
        .await
    {
        Ok(rows) => match rows.first() {
            Some(&(busy, log, copied)) => (busy == 0 && log == copied, log),
            None => (false, 0),
        },
        Err(error) => {
            if !pool.is_closed() {
                tracing::warn!(%error, "SQLite checkpoint failed; another one follows later writes");
            }
            (false, 0)
        }
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it and its folders when missing) the database file at `path`, relative
    /// to the working directory, and brings its schema up to date.
    pub async fn open_file(path: &str) -> Result<SqliteStore, StoreError> {
        let open_error = |reason: String| StoreError::Open {
            path: path.to_owned(),
            reason,
        };
        if path.is_empty() {
            return Err(open_error(
                "no file name after sqlite:// (e.g. sqlite://paastis.db)".to_owned(),
            ));
        }
        let file = Path::new(path);
        if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent).await.map_err(|error| {
                open_error(format!(
                    "cannot create the folder {}: {}",
                    parent.display(),
                    io_reason(&error)
                ))
            })?;
        }
        // Opened once by hand first: the operating system says plainly what SQLite reports
        // as "unable to open database file".
        tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(file)
            .await
            .map_err(|error| open_error(io_reason(&error)))?;
        let options = SqliteConnectOptions::new()
            .filename(file)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Checkpoints run outside the write queue (see the module doc).
            .pragma("wal_autocheckpoint", "0");
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|error| open_failure(path, error))?;
        SqliteStore::migrated(path, pool).await
    }

    /// A private in-memory database: one connection, kept open for the store's life (the
    /// database goes with it).
    pub async fn open_memory() -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(MEMORY_URL)
            .map_err(|error| StoreError::Database(error.to_string()))?
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|error| open_failure(":memory:", error))?;
        SqliteStore::migrated(":memory:", pool).await
    }

    async fn migrated(path: &str, pool: SqlitePool) -> Result<SqliteStore, StoreError> {
        if let Err(error) = MIGRATOR.run(&pool).await {
            pool.close().await;
            return Err(match error {
                MigrateError::Execute(error) => open_failure(path, error),
                other => StoreError::Migrate(other.to_string()),
            });
        }
        Ok(SqliteStore {
            path: path.to_owned(),
            pool,
            write: Mutex::new(()),
            writes: AtomicU32::new(0),
            checkpointing: Arc::new(AtomicBool::new(false)),
            wal_pages: Arc::new(AtomicI64::new(0)),
        })
    }
}

impl SqliteStore {
    /// Waits for this process's turn to write.
    async fn turn(&self) -> Turn<'_> {
        let queue = self.write.lock().await;
        if self.wal_pages.load(Ordering::Relaxed) > WAL_LIMIT {
            // Writes came in during every background checkpoint, so the log never started
            // over: this one runs in the queue, and this write starts it over.
            let (whole, log) = checkpoint(&self.pool).await;
            self.wal_pages
                .store(if whole { 0 } else { log }, Ordering::Relaxed);
        }
        Turn {
            store: self,
            _queue: queue,
        }
    }
}

/// What an open or migration failure means for the person who configured the path.
fn open_failure(path: &str, error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // SQLITE_NOTADB, SQLITE_CORRUPT
            Some("26") | Some("11") => StoreError::NotSqlite {
                path: path.to_owned(),
                reason: db.message().to_owned(),
            },
            // SQLITE_CANTOPEN, SQLITE_READONLY, SQLITE_PERM, SQLITE_IOERR and their extended codes
            Some(code) if [14, 8, 3, 10].contains(&(code.parse::<i32>().unwrap_or(0) & 0xff)) => {
                StoreError::Open {
                    path: path.to_owned(),
                    reason: db.message().to_owned(),
                }
            }
            _ => StoreError::Database(error.to_string()),
        },
        sqlx::Error::Io(io) => StoreError::Open {
            path: path.to_owned(),
            reason: io_reason(io),
        },
        _ => StoreError::Database(error.to_string()),
    }
}

/// An I/O error in words a person configuring a path understands.
fn io_reason(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::NotADirectory => "a part of the path is a file, not a folder".to_owned(),
        io::ErrorKind::IsADirectory => "it is a folder, not a file".to_owned(),
        io::ErrorKind::ReadOnlyFilesystem => "read-only file system".to_owned(),
        io::ErrorKind::StorageFull => "no space left on the device".to_owned(),
        _ => error.to_string(),
    }
}

/// The catalog's columns, as [`AppRow`] reads them.
macro_rules! apps_select {
    () => {
        "SELECT space, provider, name, upstream, running, first_seen, last_seen, deleted_at, \
         formation, asleep_since, asleep_total, last_activity FROM apps"
    };
}

fn db_error(error: sqlx::Error) -> StoreError {
    StoreError::Database(error.to_string())
}

impl SqliteStore {
    /// Runs `sql`, an update of one app whose parameters are `value` then the app's key, in
    /// this process's turn to write; [`StoreError::UnknownApp`] when it touched no row.
    async fn update_app<T>(
        &self,
        sql: &'static str,
        value: T,
        key: &AppKey,
    ) -> Result<(), StoreError>
    where
        T: for<'q> Encode<'q, Sqlite> + Type<Sqlite> + Send,
    {
        let _turn = self.turn().await;
        let done = codec::bind_key(sqlx::query(sql).bind(value), key)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        codec::one_app(done.rows_affected(), key)
    }
}

/// Creates an app's row or updates what discovery saw of it.
const APP_SEEN: &str = "INSERT INTO apps (space, provider, name, upstream, running, first_seen, last_seen) \
     VALUES (?, ?, ?, ?, ?, ?, ?) \
     ON CONFLICT (space, provider, name) DO UPDATE SET \
     upstream = excluded.upstream, running = excluded.running, \
     last_seen = excluded.last_seen, deleted_at = NULL";

/// The app went to sleep (an earlier `asleep_since` is kept).
const ASLEEP: &str = "UPDATE apps SET asleep_since = coalesce(asleep_since, ?) \
     WHERE space = ? AND provider = ? AND name = ?";

/// The app woke: its time asleep added up.
const AWAKE: &str = "UPDATE apps SET asleep_total = asleep_total + \
     CASE WHEN asleep_since IS NULL THEN 0 ELSE max(0, ? - asleep_since) END, \
     asleep_since = NULL \
     WHERE space = ? AND provider = ? AND name = ?";

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn app_seen(
        &self,
        key: &AppKey,
        seen: &SeenApp,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        let at = codec::millis(at);
        let _turn = self.turn().await;
        codec::bind_key(sqlx::query(APP_SEEN), key)
            .bind(seen.upstream.as_deref())
            .bind(seen.running)
            .bind(at)
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn apps_seen(&self, seen: &[(AppKey, SeenApp, SystemTime)]) -> Result<(), StoreError> {
        if seen.is_empty() {
            return Ok(());
        }
        let _turn = self.turn().await;
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        for (key, seen, at) in seen {
            let at = codec::millis(*at);
            codec::bind_key(sqlx::query(APP_SEEN), key)
                .bind(seen.upstream.as_deref())
                .bind(seen.running)
                .bind(at)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn app_deleted(&self, key: &AppKey, at: SystemTime) -> Result<(), StoreError> {
        self.update_app(
            "UPDATE apps SET deleted_at = coalesce(deleted_at, ?) \
             WHERE space = ? AND provider = ? AND name = ?",
            codec::millis(at),
            key,
        )
        .await
    }

    async fn set_formation(
        &self,
        key: &AppKey,
        formation: Option<&Formation>,
    ) -> Result<(), StoreError> {
        let json = codec::formation_json(formation)?;
        self.update_app(
            "UPDATE apps SET formation = ? WHERE space = ? AND provider = ? AND name = ?",
            json,
            key,
        )
        .await
    }

    async fn record_start(
        &self,
        key: &AppKey,
        duration: Duration,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        let _turn = self.turn().await;
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let insert = sqlx::query(
            "INSERT INTO app_starts (space, provider, name, at, duration_ms) \
             SELECT space, provider, name, ?, ? FROM apps \
             WHERE space = ? AND provider = ? AND name = ?",
        )
        .bind(codec::millis(at))
        .bind(codec::duration_millis(duration));
        let done = codec::bind_key(insert, key)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        codec::one_app(done.rows_affected(), key)?;
        let delete = sqlx::query(
            "DELETE FROM app_starts WHERE space = ? AND provider = ? AND name = ? \
             AND id NOT IN (SELECT id FROM app_starts \
             WHERE space = ? AND provider = ? AND name = ? ORDER BY id DESC LIMIT ?)",
        );
        codec::bind_key(codec::bind_key(delete, key), key)
            .bind(START_HISTORY as i64)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn record_state(
        &self,
        key: &AppKey,
        asleep: bool,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        let sql = if asleep { ASLEEP } else { AWAKE };
        self.update_app(sql, codec::millis(at), key).await
    }

    async fn record_states(
        &self,
        states: &[(AppKey, bool, SystemTime)],
    ) -> Result<u64, StoreError> {
        if states.is_empty() {
            return Ok(0);
        }
        let _turn = self.turn().await;
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let mut written = 0;
        for (key, asleep, at) in states {
            let sql = if *asleep { ASLEEP } else { AWAKE };
            let done = codec::bind_key(sqlx::query(sql).bind(codec::millis(*at)), key)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            written += done.rows_affected();
        }
        tx.commit().await.map_err(db_error)?;
        Ok(written)
    }

    async fn record_activity(&self, activity: &[(AppKey, SystemTime)]) -> Result<u64, StoreError> {
        if activity.is_empty() {
            return Ok(0);
        }
        let _turn = self.turn().await;
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let mut written = 0;
        for (key, at) in activity {
            let at = codec::millis(*at);
            let update = sqlx::query(
                "UPDATE apps SET last_activity = max(coalesce(last_activity, ?), ?) \
                 WHERE space = ? AND provider = ? AND name = ?",
            )
            .bind(at)
            .bind(at);
            written += codec::bind_key(update, key)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?
                .rows_affected();
        }
        tx.commit().await.map_err(db_error)?;
        Ok(written)
    }

    async fn catalog(&self, space: Option<&str>) -> Result<Vec<CatalogEntry>, StoreError> {
        // One read transaction: both queries see the same snapshot.
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let (apps, starts) = match space {
            Some(space) => (
                sqlx::query_as::<_, AppRow>(concat!(apps_select!(), " WHERE space = ?"))
                    .bind(space)
                    .fetch_all(&mut *tx)
                    .await,
                sqlx::query_as::<_, StartRow>(
                    "SELECT space, provider, name, duration_ms FROM app_starts \
                     WHERE space = ? ORDER BY id",
                )
                .bind(space)
                .fetch_all(&mut *tx)
                .await,
            ),
            None => (
                sqlx::query_as::<_, AppRow>(apps_select!())
                    .fetch_all(&mut *tx)
                    .await,
                sqlx::query_as::<_, StartRow>(
                    "SELECT space, provider, name, duration_ms FROM app_starts ORDER BY id",
                )
                .fetch_all(&mut *tx)
                .await,
            ),
        };
        let (apps, starts) = (apps.map_err(db_error)?, starts.map_err(db_error)?);
        tx.commit().await.map_err(db_error)?;
        Ok(codec::catalog(apps, starts))
    }

    async fn append_events(&self, events: &[Event]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let encoded = events
            .iter()
            .map(codec::encode_event)
            .collect::<Result<Vec<_>, _>>()?;
        let _turn = self.turn().await;
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        for chunk in encoded.chunks(codec::INSERT_CHUNK) {
            codec::insert_events::<sqlx::Sqlite>(chunk)
                .build()
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let mut builder = codec::events_query::<sqlx::Sqlite>(
            "SELECT id, at, space, provider, app, kind, details FROM events",
            query,
        )?;
        let rows = builder
            .build_query_as::<EventRow>()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(codec::page(rows, query.page_size(), query.after.is_some()))
    }

    async fn last_event_id(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(id), 0) FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn prune_events(&self, older_than: SystemTime) -> Result<u64, StoreError> {
        let older_than = codec::millis(older_than);
        let mut deleted = 0;
        loop {
            let batch = {
                let _turn = self.turn().await;
                sqlx::query(
                    "DELETE FROM events WHERE id IN \
                     (SELECT id FROM events WHERE at < ? LIMIT ?)",
                )
                .bind(older_than)
                .bind(PRUNE_BATCH)
                .execute(&self.pool)
                .await
                .map_err(db_error)?
                .rows_affected()
            };
            deleted += batch;
            // Outside the write queue: writers go on meanwhile.
            let (_, log) = checkpoint(&self.pool).await;
            self.wal_pages.store(log, Ordering::Relaxed);
            if batch < PRUNE_BATCH as u64 {
                return Ok(deleted);
            }
            // Writers queued meanwhile go first.
            tokio::task::yield_now().await;
        }
    }

    async fn key_check(&self, sealed: &str) -> Result<String, StoreError> {
        let _turn = self.turn().await;
        sqlx::query(
            "INSERT INTO master_key_check (id, sealed) VALUES (1, ?) ON CONFLICT DO NOTHING",
        )
        .bind(sealed)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        sqlx::query_scalar::<_, String>("SELECT sealed FROM master_key_check WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn stored_spaces(&self) -> Result<Vec<StoredSpace>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let spaces = sqlx::query_as::<_, codec::SpaceRow>(
            "SELECT id, settings, providers, revision, created_at, updated_at FROM spaces ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let tokens = sqlx::query_as::<_, codec::TokenRow>(
            "SELECT space, id, hash, created_at FROM space_tokens ORDER BY space, created_at, id",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(codec::stored_spaces(spaces, tokens))
    }

    async fn put_space(&self, space: &StoredSpace, key_check: &str) -> Result<(), StoreError> {
        let _turn = self.turn().await;
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let current =
            sqlx::query_scalar::<_, String>("SELECT sealed FROM master_key_check WHERE id = 1")
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
        if current.as_deref() != Some(key_check) {
            return Err(StoreError::KeyChanged);
        }
        sqlx::query(
            "INSERT INTO spaces (id, settings, providers, revision, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET \
             settings = excluded.settings, providers = excluded.providers, \
             revision = excluded.revision, updated_at = excluded.updated_at",
        )
        .bind(&space.id)
        .bind(&space.settings)
        .bind(&space.providers)
        .bind(space.revision)
        .bind(codec::millis(space.created_at))
        .bind(codec::millis(space.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query("DELETE FROM space_tokens WHERE space = ?")
            .bind(&space.id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        for token in &space.tokens {
            sqlx::query(
                "INSERT INTO space_tokens (space, id, hash, created_at) VALUES (?, ?, ?, ?)",
            )
            .bind(&space.id)
            .bind(&token.id)
            .bind(&token.hash)
            .bind(codec::millis(token.created_at))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn delete_space(&self, id: &str) -> Result<bool, StoreError> {
        let _turn = self.turn().await;
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let deleted = sqlx::query("DELETE FROM spaces WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        sqlx::query("DELETE FROM apps WHERE space = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(deleted > 0)
    }

    async fn rekey(&self, check: &str, spaces: &[(String, i64, String)]) -> Result<(), StoreError> {
        let _turn = self.turn().await;
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query("UPDATE master_key_check SET sealed = ? WHERE id = 1")
            .bind(check)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        for (id, revision, providers) in spaces {
            let done = sqlx::query("UPDATE spaces SET providers = ? WHERE id = ? AND revision = ?")
                .bind(providers)
                .bind(id)
                .bind(revision)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Database(format!(
                    "space `{id}` changed while the key was being replaced: nothing was written, try again"
                )));
            }
        }
        tx.commit().await.map_err(db_error)
    }

    async fn health(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
