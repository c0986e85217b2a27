//! What both databases share: times and durations as milliseconds, events as a `kind` and
//! a JSON `details`, the events cursor, the rows as read, and the SQL built at run time (the
//! events filter and the batch insert), which differs between databases only by its
//! placeholders.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sqlx::query::Query;
use sqlx::{Database, Encode, QueryBuilder, Type};

use super::{
    CatalogEntry, EventPage, EventQuery, MAX_EVENT_KINDS, StoreError, StoredEvent, StoredSpace,
    StoredToken,
};
use crate::events::{Event, EventKind};
use crate::model::AppKey;
use crate::model::Formation;

/// Milliseconds since the Unix epoch (negative before it), saturating.
pub(crate) fn millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// The time `ms` milliseconds after (or before) the Unix epoch.
pub(crate) fn time(ms: i64) -> SystemTime {
    let offset = Duration::from_millis(ms.unsigned_abs());
    let time = if ms >= 0 {
        UNIX_EPOCH.checked_add(offset)
    } else {
        UNIX_EPOCH.checked_sub(offset)
    };
    time.unwrap_or(UNIX_EPOCH)
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A stored millisecond count as a duration (negative counts as zero).
pub(crate) fn duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// A row of `spaces`.
#[derive(sqlx::FromRow)]
pub(crate) struct SpaceRow {
    id: String,
    settings: String,
    providers: String,
    revision: i64,
    created_at: i64,
    updated_at: i64,
}

/// A row of `space_tokens`.
#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    space: String,
    id: String,
    hash: String,
    created_at: i64,
}

/// Stored spaces from their rows and their tokens' rows.
pub(crate) fn stored_spaces(spaces: Vec<SpaceRow>, tokens: Vec<TokenRow>) -> Vec<StoredSpace> {
    let mut by_space: HashMap<String, Vec<StoredToken>> = HashMap::new();
    for token in tokens {
        by_space.entry(token.space).or_default().push(StoredToken {
            id: token.id,
            hash: token.hash,
            created_at: time(token.created_at),
        });
    }
    spaces
        .into_iter()
        .map(|row| StoredSpace {
            tokens: by_space.remove(&row.id).unwrap_or_default(),
            id: row.id,
            settings: row.settings,
            providers: row.providers,
            revision: row.revision,
            created_at: time(row.created_at),
            updated_at: time(row.updated_at),
        })
        .collect()
}

/// A formation as the JSON text stored in the catalog.
pub(crate) fn formation_json(formation: Option<&Formation>) -> Result<Option<String>, StoreError> {
    formation
        .map(|formation| {
            serde_json::to_string(formation).map_err(|error| StoreError::Encode {
                what: "a formation",
                reason: error.to_string(),
            })
        })
        .transpose()
}

/// An event as its columns.
pub(crate) struct EncodedEvent<'a> {
    /// Its time, in milliseconds.
    pub at: i64,
    /// The app it concerns.
    pub app: &'a AppKey,
    /// The variant's snake_case name.
    pub kind: String,
    /// The variant's fields as a JSON object.
    pub details: String,
}

/// Splits an event into its columns: the `kind` tag goes to its own column, the other fields
/// stay in `details`.
pub(crate) fn encode_event(event: &Event) -> Result<EncodedEvent<'_>, StoreError> {
    let encode_error = |reason: String| StoreError::Encode {
        what: "an event",
        reason,
    };
    let value =
        serde_json::to_value(&event.kind).map_err(|error| encode_error(error.to_string()))?;
    let Value::Object(mut fields) = value else {
        return Err(encode_error("not a JSON object".to_owned()));
    };
    let Some(Value::String(kind)) = fields.remove("kind") else {
        return Err(encode_error("no `kind` tag".to_owned()));
    };
    let details = serde_json::to_string(&Value::Object(fields))
        .map_err(|error| encode_error(error.to_string()))?;
    Ok(EncodedEvent {
        at: millis(event.at),
        app: &event.app,
        kind,
        details,
    })
}

/// The event kind back from its columns.
pub(crate) fn decode_kind(kind: &str, details: &str) -> Result<EventKind, String> {
    let mut fields: Map<String, Value> =
        serde_json::from_str(details).map_err(|error| format!("details: {error}"))?;
    fields.insert("kind".to_owned(), Value::String(kind.to_owned()));
    serde_json::from_value(Value::Object(fields)).map_err(|error| error.to_string())
}

/// The opaque cursor of the page that ends at this event.
pub(crate) fn encode_cursor(at: i64, id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{at}.{id}"))
}

/// The `(at, id)` a cursor points at.
pub(crate) fn decode_cursor(cursor: &str) -> Result<(i64, i64), StoreError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| StoreError::BadCursor)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| StoreError::BadCursor)?;
    let (at, id) = text.split_once('.').ok_or(StoreError::BadCursor)?;
    match (at.parse(), id.parse()) {
        (Ok(at), Ok(id)) => Ok((at, id)),
        _ => Err(StoreError::BadCursor),
    }
}

/// An `events` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct EventRow {
    /// Row id.
    pub id: i64,
    /// Time in milliseconds.
    pub at: i64,
    /// Space.
    pub space: String,
    /// Provider id.
    pub provider: String,
    /// App name.
    pub app: String,
    /// Variant name.
    pub kind: String,
    /// Variant fields, JSON.
    pub details: String,
}

/// A page from the rows of a query that asked for one row more than the page size (to tell
/// whether a next page exists). Rows that no longer decode (a kind written by a newer
/// version) are skipped with a warning; they still count for the cursor.
/// With `follow` (a query with [`EventQuery::after`]) the page has no next cursor.
pub(crate) fn page(mut rows: Vec<EventRow>, page_size: u32, follow: bool) -> EventPage {
    let page_size = usize::try_from(page_size).unwrap_or(usize::MAX);
    let next_cursor = if rows.len() > page_size {
        rows.truncate(page_size);
        rows.last()
            .filter(|_| !follow)
            .map(|row| encode_cursor(row.at, row.id))
    } else {
        None
    };
    let events = rows
        .into_iter()
        .filter_map(|row| match decode_kind(&row.kind, &row.details) {
            Ok(kind) => Some(StoredEvent {
                id: row.id,
                event: Event {
                    at: time(row.at),
                    app: AppKey::new(&row.space, &row.provider, &row.app),
                    kind,
                },
            }),
            Err(error) => {
                tracing::warn!(id = row.id, kind = %row.kind, %error, "stored event skipped: unreadable");
                None
            }
        })
        .collect();
    EventPage {
        events,
        next_cursor,
    }
}

/// An `apps` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AppRow {
    /// Space.
    pub space: String,
    /// Provider id.
    pub provider: String,
    /// App name.
    pub name: String,
    /// Upstream when last seen.
    pub upstream: Option<String>,
    /// Running when last seen.
    pub running: bool,
    /// First seen, ms.
    pub first_seen: i64,
    /// Last seen, ms.
    pub last_seen: i64,
    /// Deleted at, ms.
    pub deleted_at: Option<i64>,
    /// Formation, JSON.
    pub formation: Option<String>,
    /// Asleep since, ms.
    pub asleep_since: Option<i64>,
    /// Finished sleeps, ms.
    pub asleep_total: i64,
    /// Last activity, ms.
    pub last_activity: Option<i64>,
}

/// An `app_starts` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct StartRow {
    /// Space.
    pub space: String,
    /// Provider id.
    pub provider: String,
    /// App name.
    pub name: String,
    /// Start duration, ms.
    pub duration_ms: i64,
}

/// The catalog from its rows; `starts` in id order. Sorted by space, provider and name
/// (byte order, whatever the database's collation). A formation that no longer parses is
/// dropped with a warning (the app then wakes with its rule's formation).
pub(crate) fn catalog(apps: Vec<AppRow>, starts: Vec<StartRow>) -> Vec<CatalogEntry> {
    let mut durations: HashMap<(String, String, String), Vec<Duration>> = HashMap::new();
    for start in starts {
        durations
            .entry((start.space, start.provider, start.name))
            .or_default()
            .push(duration(start.duration_ms));
    }
    let mut entries: Vec<CatalogEntry> = apps
        .into_iter()
        .map(|row| {
            let key = AppKey::new(&row.space, &row.provider, &row.name);
            let formation = row.formation.as_deref().and_then(|json| {
                serde_json::from_str::<Formation>(json)
                    .inspect_err(|error| {
                        tracing::warn!(app = %key, %error, "stored formation ignored: unreadable");
                    })
                    .ok()
            });
            let start_durations = durations
                .remove(&(row.space, row.provider, row.name))
                .unwrap_or_default();
            CatalogEntry {
                key,
                upstream: row.upstream,
                running: row.running,
                first_seen: time(row.first_seen),
                last_seen: time(row.last_seen),
                deleted_at: row.deleted_at.map(time),
                formation,
                start_durations,
                asleep_since: row.asleep_since.map(time),
                asleep_total: duration(row.asleep_total),
                last_activity: row.last_activity.map(time),
            }
        })
        .collect();
    entries.sort_by(|a, b| {
        (&a.key.space, &a.key.provider, &a.key.name).cmp(&(
            &b.key.space,
            &b.key.provider,
            &b.key.name,
        ))
    });
    entries
}

/// Binds an app's key (space, provider, name, in that order): the parameters every statement
/// about one app has in its `WHERE space = … AND provider = … AND name = …`.
pub(crate) fn bind_key<'q, DB>(
    query: Query<'q, DB, <DB as Database>::Arguments>,
    key: &AppKey,
) -> Query<'q, DB, <DB as Database>::Arguments>
where
    DB: Database,
    for<'s> &'s str: Encode<'s, DB> + Type<DB>,
{
    query
        .bind(&*key.space)
        .bind(&*key.provider)
        .bind(&*key.name)
}

/// What a statement about one app did: [`StoreError::UnknownApp`] when it touched no row
/// (the app was never seen).
pub(crate) fn one_app(rows_affected: u64, key: &AppKey) -> Result<(), StoreError> {
    if rows_affected == 0 {
        return Err(StoreError::UnknownApp(key.to_string()));
    }
    Ok(())
}

/// `SELECT … FROM events WHERE <filters> ORDER BY at DESC, id DESC LIMIT <page + 1>`
/// (`ORDER BY id` with [`EventQuery::after`]). `select` is the part up to and including
/// `FROM events`.
pub(crate) fn events_query<DB>(
    select: &'static str,
    query: &EventQuery,
) -> Result<QueryBuilder<DB>, StoreError>
where
    DB: Database,
    <DB as Database>::Arguments: Default,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    for<'s> &'s str: Encode<'s, DB> + Type<DB>,
{
    let cursor = query.cursor.as_deref().map(decode_cursor).transpose()?;
    if cursor.is_some() && query.after.is_some() {
        return Err(StoreError::BadQuery(
            "a cursor and `after` cannot be combined".to_owned(),
        ));
    }
    if query.kinds.len() > MAX_EVENT_KINDS {
        return Err(StoreError::BadQuery(format!(
            "{} kinds named, at most {MAX_EVENT_KINDS}",
            query.kinds.len()
        )));
    }
    let mut builder = QueryBuilder::<DB>::new(select);
    let mut first = true;
    let mut and = |builder: &mut QueryBuilder<DB>| {
        builder.push(if first { " WHERE " } else { " AND " });
        first = false;
    };
    if let Some(space) = &query.space {
        and(&mut builder);
        builder.push("space = ").push_bind(space.as_str());
    }
    if let Some(provider) = &query.provider {
        and(&mut builder);
        builder.push("provider = ").push_bind(provider.as_str());
    }
    if let Some(app) = &query.app {
        and(&mut builder);
        builder.push("app = ").push_bind(app.as_str());
    }
    if !query.kinds.is_empty() {
        and(&mut builder);
        builder.push("kind IN (");
        let mut kinds = builder.separated(", ");
        for kind in &query.kinds {
            kinds.push_bind(kind.as_str());
        }
        builder.push(")");
    }
    if let Some(since) = query.since {
        and(&mut builder);
        builder.push("at >= ").push_bind(millis(since));
    }
    if let Some(until) = query.until {
        and(&mut builder);
        builder.push("at < ").push_bind(millis(until));
    }
    if let Some((at, id)) = cursor {
        // Written so that `at <= …` bounds an index range scan.
        and(&mut builder);
        builder
            .push("at <= ")
            .push_bind(at)
            .push(" AND (at < ")
            .push_bind(at)
            .push(" OR id < ")
            .push_bind(id)
            .push(")");
    }
    if let Some(after) = query.after {
        and(&mut builder);
        builder.push("id > ").push_bind(after);
        builder.push(" ORDER BY id");
    } else {
        builder.push(" ORDER BY at DESC, id DESC");
    }
    builder.push(format_args!(" LIMIT {}", u64::from(query.page_size()) + 1));
    Ok(builder)
}

/// Rows per `INSERT` of a batch of events (well under both databases' parameter limits).
pub(crate) const INSERT_CHUNK: usize = 500;

/// `INSERT INTO events … VALUES (…), (…)` for at most [`INSERT_CHUNK`] events.
pub(crate) fn insert_events<DB>(events: &[EncodedEvent<'_>]) -> QueryBuilder<DB>
where
    DB: Database,
    <DB as Database>::Arguments: Default,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    for<'s> &'s str: Encode<'s, DB> + Type<DB>,
{
    let mut builder =
        QueryBuilder::<DB>::new("INSERT INTO events (at, space, provider, app, kind, details) ");
    builder.push_values(events, |mut row, event| {
        row.push_bind(event.at)
            .push_bind(&*event.app.space)
            .push_bind(&*event.app.provider)
            .push_bind(&*event.app.name)
            .push_bind(event.kind.as_str())
            .push_bind(event.details.as_str());
    });
    builder
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{StopCause, WakeCause};

    #[test]
    fn times_round_trip_to_the_millisecond() {
        for ms in [0, 1, 1_700_000_000_123, -86_400_000, i64::MAX / 1000] {
            assert_eq!(millis(time(ms)), ms);
        }
        let now = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        assert_eq!(millis(now), 1_700_000_000_123);
        assert_eq!(duration(-5), Duration::ZERO);
        assert_eq!(duration_millis(Duration::from_micros(2_500)), 2);
    }

    #[test]
    fn events_are_a_kind_and_details() {
        let app = AppKey::new("default", "local", "web");
        let event = Event {
            at: time(1_000),
            app: app.clone(),
            kind: EventKind::WakeRequested {
                cause: WakeCause::Request {
                    method: "GET".into(),
                    path: "/".into(),
                    user_agent: None,
                    client_ip: "127.0.0.1".parse().expect("ip"),
                },
            },
        };
        let encoded = encode_event(&event).expect("encodes");
        assert_eq!(encoded.kind, "wake_requested");
        assert_eq!(
            encoded.details,
            r#"{"cause":{"client_ip":"127.0.0.1","method":"GET","path":"/","type":"request","user_agent":null}}"#
        );
        let stop = Event {
            at: time(1_000),
            app,
            kind: EventKind::StopRequested {
                cause: StopCause::Idle {
                    idle_for: Duration::from_secs(900),
                },
            },
        };
        let encoded = encode_event(&stop).expect("encodes");
        assert_eq!(encoded.kind, "stop_requested");
        assert_eq!(
            encoded.details,
            r#"{"cause":{"idle_for_ms":900000,"type":"idle"}}"#
        );
        assert_eq!(
            decode_kind(&encoded.kind, &encoded.details),
            Ok(stop.kind.clone())
        );
        assert!(decode_kind("from_the_future", "{}").is_err());
        assert!(decode_kind("stopped", "not json").is_err());
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = encode_cursor(1_700_000_000_000, 42);
        assert_eq!(decode_cursor(&cursor).ok(), Some((1_700_000_000_000, 42)));
        for bad in [
            "",
            "!!!",
            "bm90IGEgY3Vyc29y",
            "MS4y.x",
            &URL_SAFE_NO_PAD.encode("1.x"),
        ] {
            assert!(
                matches!(decode_cursor(bad), Err(StoreError::BadCursor)),
                "{bad}"
            );
        }
    }
}
