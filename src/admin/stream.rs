//! The live event stream, `GET /api/v1/events/stream`: the event history followed as it
//! grows, as Server-Sent Events.
//!
//! The stream follows the store, not the engine's in-memory feed: every event it sends was
//! read from the store, with its id (`id:` in the stream), in id order, so instances
//! sharing a database all show every instance's events, in the same order, and a client
//! that reconnects with `Last-Event-ID` (or `?after=`) gets exactly what it missed. The
//! space's own writes wake the follower at once ([`crate::events::EventLog::stored`]); a
//! short poll ([`POLL_EVERY`]) finds the other instances'.
//!
//! Each client has its own follower task and a bounded buffer (`admin.events_stream`): the
//! follower reads the next events only when there is room, so a client never holds up the
//! engine, and one that takes no event for a whole heartbeat while its buffer is full is
//! dropped, with a last `event: error` saying why (what it had in its buffer comes first).
//! Idle streams get a comment line every heartbeat. Streams end when the engine stops.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Extension;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use utoipa::{IntoParams, ToSchema};

use super::settings::EventsStream;
use super::{AdminState, ApiError, ApiQuery as Query};
use crate::store::{EventQuery, MAX_EVENTS_LIMIT, StoreError};

/// How often a follower reads the store when nothing woke it (other instances' events).
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// How long a client waits before reconnecting (the stream's `retry:`), in milliseconds.
pub const RETRY_MS: u64 = 2_000;

/// What every stream shares: its settings and the engine's stop.
#[derive(Debug)]
pub struct Streams {
    /// Heartbeat and buffer.
    settings: EventsStream,
    /// Turns true when the engine stops: every stream ends.
    stop: watch::Sender<bool>,
}

impl Streams {
    /// Streams with these settings.
    pub fn new(settings: EventsStream) -> Streams {
        Streams {
            settings,
            stop: watch::Sender::new(false),
        }
    }

    /// Ends every stream (the engine is stopping): each gets a last `event: error` with
    /// code `stopping`, so clients reconnect to another instance or once it is back.
    pub fn close_all(&self) {
        self.stop.send_replace(true);
    }
}

impl Default for Streams {
    fn default() -> Self {
        Streams::new(EventsStream::default())
    }
}

/// Filters and start of `GET /api/v1/events/stream`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Only this provider id.
    pub provider: Option<String>,
    /// Only this app name.
    pub app: Option<String>,
    /// Only these kinds, comma-separated (`wake_requested,stopped`).
    pub kind: Option<String>,
    /// Start after this event id (as `Last-Event-ID` does, which wins when both are given);
    /// default: only events from now on.
    #[param(minimum = 0)]
    pub after: Option<i64>,
}

/// One message of the stream, as Server-Sent Events clients parse it (the OpenAPI
/// document's description of the stream's items).
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamMessage {
    /// The event's id (events only): what `Last-Event-ID` names.
    pub id: Option<String>,
    /// `message` for an event (the default), `error` for the last message of a stream the
    /// engine ended (a client too slow, or the engine stopping).
    pub event: Option<String>,
    /// An event as `GET /api/v1/events` shows it (JSON), or for `error`
    /// `{"error": {"code", "message"}}`.
    pub data: String,
}

/// Why a follower ended the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ending {
    /// `too_slow` or `stopping`.
    code: &'static str,
    /// For people.
    message: String,
}

/// Events as they are recorded, as Server-Sent Events (`text/event-stream`): each event is
/// `id: <id>` and `data: <the event as GET /api/v1/events shows it>`; idle streams get a
/// comment line every `admin.events_stream.heartbeat`; a client that falls behind by more
/// than `admin.events_stream.buffer` events for a heartbeat gets `event: error` (code
/// `too_slow`) and the stream ends; it may reconnect with `Last-Event-ID`. Scoped and
/// filtered like `GET /api/v1/events`.
#[utoipa::path(get, path = "/api/v1/events/stream",
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "The id of the last event received: the stream starts after it")
    ),
    responses(
        (status = 200, description = "Server-Sent Events, one per event, in id order", body = StreamMessage, content_type = "text/event-stream"),
        (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody),
        (status = 503, body = super::ErrorBody)
    )
)]
pub async fn events_stream(
    Extension(state): Extension<AdminState>,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> Result<Response, ApiError> {
    stream(&state, &headers, query).await
}

/// The stream for a state already scoped to its space (the API's, or the dashboard's).
pub async fn stream(
    state: &AdminState,
    headers: &HeaderMap,
    query: StreamQuery,
) -> Result<Response, ApiError> {
    let from_header = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<i64>().ok())
                .filter(|id| *id >= 0)
                .ok_or_else(|| {
                    ApiError::bad_request("Last-Event-ID: must be an event id (a whole number)")
                })?,
        ),
    };
    if query.after.is_some_and(|after| after < 0) {
        return Err(ApiError::bad_request(
            "after: must be an event id (a whole number)",
        ));
    }
    let kinds = super::api::event_kinds(query.kind.as_deref());
    if kinds.len() > crate::store::MAX_EVENT_KINDS {
        return Err(ApiError::bad_request(format!(
            "kind: at most {} kinds",
            crate::store::MAX_EVENT_KINDS
        )));
    }
    // Woken by this space's writes from now on: nothing written after the start point is
    // missed.
    let stored = state.lifecycle.events().stored();
    let after = match from_header.or(query.after) {
        Some(after) => after,
        None => state
            .store
            .last_event_id()
            .await
            .map_err(|error| ApiError::unavailable(error.to_string()))?,
    };
    let filter = EventQuery {
        space: Some(state.space.clone()),
        provider: query.provider.filter(|p| !p.is_empty()),
        app: query.app.filter(|a| !a.is_empty()),
        kinds,
        limit: Some(MAX_EVENTS_LIMIT),
        ..EventQuery::default()
    };
    let settings = state.streams.settings.clone();
    let (frames, receiver) = mpsc::channel(settings.buffer);
    let ending = Arc::new(Mutex::new(None));
    let follower = Follower {
        lifecycle: Arc::clone(&state.lifecycle),
        store: Arc::clone(&state.store),
        filter,
        after,
        frames,
        stored,
        stop: state.streams.stop.subscribe(),
        heartbeat: settings.heartbeat,
        ending: Arc::clone(&ending),
        space: state.space.clone(),
    };
    tokio::spawn(follower.run());
    let opening = Bytes::from(format!(
        "retry: {RETRY_MS}\n: following events after {after}\n\n"
    ));
    let body = futures_util::stream::unfold(
        Reader {
            opening: Some(opening),
            receiver,
            ending,
            done: false,
        },
        Reader::next,
    );
    let mut response = axum::body::Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies such as nginx would otherwise buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The response body's side: the frames, then (when the follower gave up) why.
struct Reader {
    /// The first lines (`retry:` and a comment), sent at once.
    opening: Option<Bytes>,
    /// The client's buffer.
    receiver: mpsc::Receiver<Bytes>,
    /// Why the follower ended the stream, if it did.
    ending: Arc<Mutex<Option<Ending>>>,
    /// The stream is over.
    done: bool,
}

impl Reader {
    async fn next(mut self) -> Option<(Result<Bytes, std::convert::Infallible>, Reader)> {
        if let Some(opening) = self.opening.take() {
            return Some((Ok(opening), self));
        }
        if self.done {
            return None;
        }
        match self.receiver.recv().await {
            Some(text) => Some((Ok(text), self)),
            None => {
                self.done = true;
                let ending = self
                    .ending
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .take()?;
                let body = serde_json::json!({
                    "error": {"code": ending.code, "message": ending.message}
                });
                Some((
                    Ok(Bytes::from(format!("event: error\ndata: {body}\n\n"))),
                    self,
                ))
            }
        }
    }
}

/// One client's follower of the history.
struct Follower {
    /// The space's lifecycle (its metrics).
    lifecycle: Arc<crate::lifecycle::Lifecycle>,
    /// Where events are read.
    store: Arc<dyn crate::store::Store>,
    /// The client's filters (and page size).
    filter: EventQuery,
    /// The id of the last event sent (or the start point).
    after: i64,
    /// The client's buffer.
    frames: mpsc::Sender<Bytes>,
    /// Changes when this space's events were written.
    stored: watch::Receiver<u64>,
    /// Turns true when the engine stops.
    stop: watch::Receiver<bool>,
    /// Heartbeat period, and how long a full buffer may stay full.
    heartbeat: Duration,
    /// Why it ended the stream, for the reader.
    ending: Arc<Mutex<Option<Ending>>>,
    /// For the logs.
    space: String,
}

/// Why a follower stops.
#[derive(Debug, thiserror::Error)]
enum Stop {
    /// The client is gone.
    #[error("client gone")]
    Gone,
    /// The client took nothing for a heartbeat with a full buffer.
    #[error("client too slow")]
    TooSlow,
    /// The engine is stopping.
    #[error("engine stopping")]
    Stopping,
}

impl Follower {
    async fn run(mut self) {
        self.lifecycle.metrics().event_stream(true);
        let ending = match self.follow().await {
            Err(Stop::Gone) | Ok(()) => None,
            Err(Stop::TooSlow) => {
                self.lifecycle.metrics().event_stream_dropped();
                tracing::warn!(
                    space = %self.space,
                    last_id = self.after,
                    "event stream client dropped: it took no event for a heartbeat with its buffer full"
                );
                Some(Ending {
                    code: "too_slow",
                    message: format!(
                        "this client fell more than {} events behind for {}ms and was dropped; \
                         reconnect with Last-Event-ID: {} to go on from the last event sent",
                        self.frames.max_capacity(),
                        self.heartbeat.as_millis(),
                        self.after
                    ),
                })
            }
            Err(Stop::Stopping) => Some(Ending {
                code: "stopping",
                message: format!(
                    "the engine is stopping; reconnect with Last-Event-ID: {} to go on",
                    self.after
                ),
            }),
        };
        *self
            .ending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = ending;
        self.lifecycle.metrics().event_stream(false);
        // Dropping the sender ends the body once the buffer is read.
    }

    async fn follow(&mut self) -> Result<(), Stop> {
        let mut poll = tokio::time::interval(POLL_EVERY);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat =
            tokio::time::interval_at(tokio::time::Instant::now() + self.heartbeat, self.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        let mut space_gone = false;
        loop {
            if *self.stop.borrow() {
                return Err(Stop::Stopping);
            }
            // Read until caught up.
            loop {
                match self.read().await {
                    Ok(more) => {
                        failing = false;
                        if !more {
                            break;
                        }
                        heartbeat.reset();
                    }
                    Err(ReadError::Stop(stop)) => return Err(stop),
                    Err(ReadError::Store(error)) => {
                        if !failing {
                            tracing::warn!(space = %self.space, %error, "event stream: the store did not answer; trying again");
                        }
                        failing = true;
                        break;
                    }
                }
            }
            let heartbeat_due = tokio::select! {
                changed = self.stored.changed(), if !space_gone => {
                    // The space is gone when its log is: polls still find other
                    // instances' events.
                    space_gone = changed.is_err();
                    false
                }
                _ = poll.tick() => false,
                _ = heartbeat.tick() => true,
                _ = self.stop.wait_for(|stop| *stop) => return Err(Stop::Stopping),
                _ = self.frames.closed() => return Err(Stop::Gone),
            };
            if heartbeat_due {
                self.send(Bytes::from_static(b": heartbeat\n\n")).await?;
            }
        }
    }

    /// Reads one page after the last id sent and sends it; whether there may be more.
    async fn read(&mut self) -> Result<bool, ReadError> {
        let query = EventQuery {
            after: Some(self.after),
            ..self.filter.clone()
        };
        let page = tokio::select! {
            page = self.store.events(&query) => page.map_err(ReadError::Store)?,
            _ = self.frames.closed() => return Err(ReadError::Stop(Stop::Gone)),
        };
        let full = page.events.len() >= usize::try_from(MAX_EVENTS_LIMIT).unwrap_or(usize::MAX);
        for stored in page.events {
            let id = stored.id;
            if id <= self.after {
                continue;
            }
            let view = super::api::event_view(stored);
            let data = serde_json::to_string(&view).unwrap_or_else(|_| "{}".to_owned());
            self.send(Bytes::from(format!("id: {id}\ndata: {data}\n\n")))
                .await
                .map_err(ReadError::Stop)?;
            self.after = id;
        }
        Ok(full)
    }

    /// Puts a frame in the client's buffer, waiting at most a heartbeat for room.
    async fn send(&mut self, text: Bytes) -> Result<(), Stop> {
        let permit = tokio::select! {
            permit = tokio::time::timeout(self.heartbeat, self.frames.reserve()) => permit,
            _ = self.stop.wait_for(|stop| *stop) => return Err(Stop::Stopping),
        };
        match permit {
            Ok(Ok(permit)) => {
                permit.send(text);
                Ok(())
            }
            Ok(Err(_)) => Err(Stop::Gone),
            Err(_) => Err(Stop::TooSlow),
        }
    }
}

/// Why a read of the store ended the round.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    /// The follower must stop.
    #[error(transparent)]
    Stop(Stop),
    /// The store failed (tried again at the next poll).
    #[error(transparent)]
    Store(StoreError),
}
