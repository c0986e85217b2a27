//! The PostgreSQL store: a server shared by several engine instances.
//!
//! Opening connects once by hand before building the pool, so that an unreachable server or
//! refused credentials are reported at once and in plain words (the pool would retry until
//! its timeout and say only that it timed out). Messages never carry the URL's password.
//!
//! Events are appended under a transaction-scoped advisory lock ([`EVENTS_LOCK`]), so their
//! ids are committed in the order they are handed out: a reader that saw id n will never
//! later find a smaller one appear (what [`EventQuery::after`] relies on, with several
//! instances writing at once).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Encode, Postgres, Type};

use super::codec::{self, AppRow, EventRow, StartRow};
use super::{
    CatalogEntry, EventPage, EventQuery, START_HISTORY, SeenApp, Store, StoreError, StoredSpace,
};
use crate::events::Event;
use crate::model::AppKey;
use crate::model::Formation;
use crate::secret::redact::{redact_url, scrub, url_secrets};

/// How long opening waits for the server to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections per engine instance.
const MAX_CONNECTIONS: u32 = 8;

/// Rows deleted per statement when pruning (row locks only: writers are not held up, this
/// only bounds each statement's work).
pub const PRUNE_BATCH: i64 = 5_000;

/// The advisory lock (`pg_advisory_xact_lock`) every events insert takes for its
/// transaction: appends are one after the other, so ids become visible in increasing order.
pub const EVENTS_LOCK: i64 = 0x7061_6173_7469_7301;

/// The schema, embedded.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// A PostgreSQL database.
pub struct PgStore {
    /// The URL with its password redacted, for messages.
    url: String,
    /// The URL's secrets, scrubbed from every error message.
    secrets: Vec<String>,
    /// The connections.
    pool: PgPool,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `postgres://…` (or `postgresql://…`) and brings the schema up to date.
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        let secrets = url_secrets(url);
        let options = PgConnectOptions::from_str(url).map_err(|error| StoreError::Open {
            path: redact_url(url),
            reason: scrub(&error.to_string(), &secrets),
        })?;
        let address = match options.get_socket() {
            Some(socket) => socket.display().to_string(),
            None => format!("{}:{}", options.get_host(), options.get_port()),
        };
        let failure = |error: sqlx::Error| connect_failure(&address, &secrets, error);
        match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
            Ok(Ok(connection)) => {
                let _ = connection.close().await;
            }
            Ok(Err(error)) => return Err(failure(error)),
            Err(_) => {
                return Err(StoreError::Unreachable {
                    address,
                    reason: format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
                });
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(failure)?;
        if let Err(error) = MIGRATOR.run(&pool).await {
            pool.close().await;
            return Err(match error {
                MigrateError::Execute(error) => failure(error),
                other => StoreError::Migrate(scrub(&other.to_string(), &secrets)),
            });
        }
        Ok(PgStore {
            url: redact_url(url),
            secrets,
            pool,
        })
    }

    fn db_error(&self, error: sqlx::Error) -> StoreError {
        StoreError::Database(scrub(&error.to_string(), &self.secrets))
    }

    /// Runs `sql`, an update of one app whose parameters are `value` then the app's key;
    /// [`StoreError::UnknownApp`] when it touched no row.
    async fn update_app<T>(
        &self,
        sql: &'static str,
        value: T,
        key: &AppKey,
    ) -> Result<(), StoreError>
    where
        T: for<'q> Encode<'q, Postgres> + Type<Postgres> + Send,
    {
        let done = codec::bind_key(sqlx::query(sql).bind(value), key)
            .execute(&self.pool)
            .await
            .map_err(|e| self.db_error(e))?;
        codec::one_app(done.rows_affected(), key)
    }
}

/// Creates an app's row or updates what discovery saw of it.
const APP_SEEN: &str = "INSERT INTO apps (space, provider, name, upstream, running, first_seen, last_seen) \
     VALUES ($1, $2, $3, $4, $5, $6, $6) \
     ON CONFLICT (space, provider, name) DO UPDATE SET \
     upstream = excluded.upstream, running = excluded.running, \
     last_seen = excluded.last_seen, deleted_at = NULL";

/// The app went to sleep (an earlier `asleep_since` is kept).
const ASLEEP: &str = "UPDATE apps SET asleep_since = coalesce(asleep_since, $1) \
     WHERE space = $2 AND provider = $3 AND name = $4";

/// The app woke: its time asleep added up.
const AWAKE: &str = "UPDATE apps SET asleep_total = asleep_total + \
     CASE WHEN asleep_since IS NULL THEN 0 ELSE GREATEST(0, $1 - asleep_since) END, \
     asleep_since = NULL \
     WHERE space = $2 AND provider = $3 AND name = $4";

/// What a failed connection means: nothing answers, or the server said no.
fn connect_failure(address: &str, secrets: &[String], error: sqlx::Error) -> StoreError {
    let address = address.to_owned();
    match &error {
        sqlx::Error::Io(io) => StoreError::Unreachable {
            address,
            reason: scrub(&io.to_string(), secrets),
        },
        sqlx::Error::PoolTimedOut => StoreError::Unreachable {
            address,
            reason: "no connection within the timeout".to_owned(),
        },
        sqlx::Error::Database(db) => StoreError::Refused {
            address,
            reason: scrub(db.message(), secrets),
        },
        _ => StoreError::Refused {
            address,
            reason: scrub(&error.to_string(), secrets),
        },
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn app_seen(
        &self,
        key: &AppKey,
        seen: &SeenApp,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        let at = codec::millis(at);
        codec::bind_key(sqlx::query(APP_SEEN), key)
            .bind(seen.upstream.as_deref())
            .bind(seen.running)
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(|e| self.db_error(e))?;
        Ok(())
    }

    async fn apps_seen(&self, seen: &[(AppKey, SeenApp, SystemTime)]) -> Result<(), StoreError> {
        if seen.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(|e| self.db_error(e))?;
        for (key, seen, at) in seen {
            codec::bind_key(sqlx::query(APP_SEEN), key)
                .bind(seen.upstream.as_deref())
                .bind(seen.running)
                .bind(codec::millis(*at))
                .execute(&mut *tx)
                .await
                .map_err(|e| self.db_error(e))?;
        }
        tx.commit().await.map_err(|e| self.db_error(e))
    }

    async fn app_deleted(&self, key: &AppKey, at: SystemTime) -> Result<(), StoreError> {
        self.update_app(
            "UPDATE apps SET deleted_at = coalesce(deleted_at, $1) \
             WHERE space = $2 AND provider = $3 AND name = $4",
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
            "UPDATE apps SET formation = $1 WHERE space = $2 AND provider = $3 AND name = $4",
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
        let mut tx = self.pool.begin().await.map_err(|e| self.db_error(e))?;
        // Locks the app's row: two starts recorded at once keep exactly the newest ones.
        let insert = sqlx::query(
            "INSERT INTO app_starts (space, provider, name, at, duration_ms) \
             SELECT space, provider, name, $1, $2 FROM apps \
             WHERE space = $3 AND provider = $4 AND name = $5 FOR UPDATE",
        )
        .bind(codec::millis(at))
        .bind(codec::duration_millis(duration));
        let done = codec::bind_key(insert, key)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db_error(e))?;
        codec::one_app(done.rows_affected(), key)?;
        codec::bind_key(
            sqlx::query(
                "DELETE FROM app_starts WHERE space = $1 AND provider = $2 AND name = $3 \
                 AND id NOT IN (SELECT id FROM app_starts \
                 WHERE space = $1 AND provider = $2 AND name = $3 ORDER BY id DESC LIMIT $4)",
            ),
            key,
        )
        .bind(START_HISTORY as i64)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.db_error(e))?;
        tx.commit().await.map_err(|e| self.db_error(e))
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
        let mut tx = self.pool.begin().await.map_err(|e| self.db_error(e))?;
        let mut written = 0;
        for (key, asleep, at) in states {
            let sql = if *asleep { ASLEEP } else { AWAKE };
            let done = codec::bind_key(sqlx::query(sql).bind(codec::millis(*at)), key)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.db_error(e))?;
            written += done.rows_affected();
        }
        tx.commit().await.map_err(|e| self.db_error(e))?;
        Ok(written)
    }

    async fn record_activity(&self, activity: &[(AppKey, SystemTime)]) -> Result<u64, StoreError> {
        if activity.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await.map_err(|e| self.db_error(e))?;
        let mut written = 0;
        for (key, at) in activity {
            let update = sqlx::query(
                "UPDATE apps SET last_activity = GREATEST(last_activity, $1) \
                 WHERE space = $2 AND provider = $3 AND name = $4",
            )
            .bind(codec::millis(*at));
            written += codec::bind_key(update, key)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.db_error(e))?
                .rows_affected();
        }
        tx.commit().await.map_err(|e| self.db_error(e))?;
        Ok(written)
    }

    async fn catalog(&self, space: Option<&str>) -> Result<Vec<CatalogEntry>, StoreError> {
        // One snapshot for both queries.
        let mut tx = self.pool.begin().await.map_err(|e| self.db_error(e))?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db_error(e))?;
        let apps = sqlx::query_as::<_, AppRow>(
            "SELECT space, provider, name, upstream, running, first_seen, last_seen, \
             deleted_at, formation, asleep_since, asleep_total, last_activity FROM apps \
             WHERE $1::text IS NULL OR space = $1",
        )
        .bind(space)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.db_error(e))?;
        let starts = sqlx::query_as::<_, StartRow>(
            "SELECT space, provider, name, duration_ms FROM app_starts \
             WHERE $1::text IS NULL OR space = $1 ORDER BY id",
        )
        .bind(space)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.db_error(e))?;
        tx.commit().await.map_err(|e| self.db_error(e))?;
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
        let mut tx = self.pool.begin().await.map_err(|e| self.db_error(e))?;
        // Ids are handed out when rows are inserted but seen at commit: one append at a
        // time, so they are seen in order.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(EVENTS_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db_error(e))?;
        for chunk in encoded.chunks(codec::INSERT_CHUNK) {
            codec::insert_events::<sqlx::Postgres>(chunk)
                .build()
                .execute(&mut *tx)
                .await
                .map_err(|e| self.db_error(e))?;
        }
        tx.commit().await.map_err(|e| self.db_error(e))
    }

    async fn events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let mut builder = codec::events_query::<sqlx::Postgres>(
            "SELECT id, at, space, provider, app, kind, details FROM events",
            query,
        )?;
        let rows = builder
            .build_query_as::<EventRow>()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.db_error(e))?;
        Ok(codec::page(rows, query.page_size(), query.after.is_some()))
    }

    async fn last_event_id(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(id), 0) FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.db_error(e))
    }

    async fn prune_events(&self, older_than: SystemTime) -> Result<u64, StoreError> {
        let older_than = codec::millis(older_than);
        let mut deleted = 0;
        loop {
            let batch = sqlx::query(
                "DELETE FROM events WHERE id IN \
                 (SELECT id FROM events WHERE at < $1 LIMIT $2)",
            )
            .bind(older_than)
            .bind(PRUNE_BATCH)
            .execute(&self.pool)
            .await
            .map_err(|e| self.db_error(e))?
            .rows_affected();
            deleted += batch;
            if batch < PRUNE_BATCH as u64 {
                return Ok(deleted);
            }
            tokio::task::yield_now().await;
        }
    }

    async fn key_check(&self, sealed: &str) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO master_key_check (id, sealed) VALUES (1, $1) ON CONFLICT DO NOTHING",
        )
        .bind(sealed)
        .execute(&self.pool)
        .await
        .map_err(|e| self.db_error(e))?;
        sqlx::query_scalar::<_, String>("SELECT sealed FROM master_key_check WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.db_error(e))
    }

    async fn stored_spaces(&self) -> Result<Vec<StoredSpace>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.db_error(e))?;
        let spaces = sqlx::query_as::<_, codec::SpaceRow>(
            "SELECT id, settings, providers, revision, created_at, updated_at FROM spaces ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.db_error(e))?;
        let tokens = sqlx::query_as::<_, codec::TokenRow>(
            "SELECT space, id, hash, created_at FROM space_tokens ORDER BY space, created_at, id",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.db_error(e))?;
        tx.commit().await.map_err(|e| self.db_error(e))?;
        Ok(codec::stored_spaces(spaces, tokens))
    }

    async fn put_space(&self, space: &StoredSpace, key_check: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.db_error(e))?;
        // FOR UPDATE: a rekey (which updates that row) and this write go one after the other.
        let current = sqlx::query_scalar::<_, String>(
            "SELECT sealed FROM master_key_check WHERE id = 1 FOR UPDATE",
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.db_error(e))?;
        if current.as_deref() != Some(key_check) {
            return Err(StoreError::KeyChanged);
        }
        sqlx::query(
            "INSERT INTO spaces (id, settings, providers, revision, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET \
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
        .map_err(|e| self.db_error(e))?;
        sqlx::query("DELETE FROM space_tokens WHERE space = $1")
            .bind(&space.id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db_error(e))?;
        for token in &space.tokens {
            sqlx::query(
                "INSERT INTO space_tokens (space, id, hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&space.id)
            .bind(&token.id)
            .bind(&token.hash)
            .bind(codec::millis(token.created_at))
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db_error(e))?;
        }
        tx.commit().await.map_err(|e| self.db_error(e))
    }

    async fn delete_space(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.db_error(e))?;
        let deleted = sqlx::query("DELETE FROM spaces WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db_error(e))?
            .rows_affected();
        sqlx::query("DELETE FROM apps WHERE space = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db_error(e))?;
        tx.commit().await.map_err(|e| self.db_error(e))?;
        Ok(deleted > 0)
    }

    async fn rekey(&self, check: &str, spaces: &[(String, i64, String)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.db_error(e))?;
        sqlx::query("UPDATE master_key_check SET sealed = $1 WHERE id = 1")
            .bind(check)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db_error(e))?;
        for (id, revision, providers) in spaces {
            let done =
                sqlx::query("UPDATE spaces SET providers = $1 WHERE id = $2 AND revision = $3")
                    .bind(providers)
                    .bind(id)
                    .bind(revision)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.db_error(e))?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Database(format!(
                    "space `{id}` changed while the key was being replaced: nothing was written, try again"
                )));
            }
        }
        tx.commit().await.map_err(|e| self.db_error(e))
    }

    async fn health(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(|e| self.db_error(e))?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
