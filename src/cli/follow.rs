//! `paastis events --follow`: the live event stream followed, reconnecting with
//! `Last-Event-ID` when it drops; or, with an engine that has no stream (an older one, or
//! `admin.host`), the events list polled every second.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::client::Api;
use super::{CliError, emit, render, sse, view};
use crate::model::rfc3339;
use crate::wire::{EventList, EventView};

/// How far back each `--follow` poll looks behind the newest event seen: events are
/// written in the background, so one may land a little after a later one.
const FOLLOW_OVERLAP: Duration = Duration::from_secs(10);

/// At most this many pages per `--follow` poll.
const FOLLOW_PAGES: usize = 20;

/// How a follow of the stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Followed {
    /// Ctrl-C.
    Interrupted,
    /// The engine serves no stream at that URL (an older engine).
    Unsupported,
}

/// The id of the newest event of the space (0 when there is none).
pub(super) async fn newest_id(api: &Api) -> Result<i64, CliError> {
    let page: EventList = view(api.get(&["events"], &[("limit", "1".to_owned())]).await?)?;
    Ok(page.events.first().map_or(0, |event| event.id))
}

/// Prints the events of the live stream after `start`, reconnecting (with
/// `Last-Event-ID`) when the connection drops or the engine ends it, until Ctrl-C.
pub(super) async fn stream(
    api: &Api,
    filters: &[(&'static str, String)],
    start: i64,
    printer: &mut render::EventPrinter,
) -> Result<Followed, CliError> {
    let mut last = start;
    let mut lost = false;
    let mut connected_once = false;
    loop {
        let opened = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(Followed::Interrupted),
            opened = api.open_stream(&["events", "stream"], filters, last) => opened,
        };
        let mut response = match opened {
            Ok(response) => response,
            Err(CliError::NotFound(_)) if !connected_once => return Ok(Followed::Unsupported),
            Err(error @ CliError::Unreachable { .. }) => {
                if !lost {
                    let _ = writeln!(std::io::stderr(), "paastis: {error}; retrying");
                    lost = true;
                }
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return Ok(Followed::Interrupted),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
            Err(error) => return Err(error),
        };
        if lost {
            let _ = writeln!(std::io::stderr(), "paastis: the admin API answers again");
            lost = false;
        }
        connected_once = true;
        let mut parser = sse::Parser::default();
        loop {
            let chunk = tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(Followed::Interrupted),
                chunk = api.chunk(&mut response) => chunk,
            };
            let chunk = match chunk {
                Ok(Some(chunk)) => chunk,
                // Ended or cut: reconnect after the last event printed.
                Ok(None) | Err(_) => break,
            };
            let mut new = Vec::new();
            for message in parser.feed(&chunk) {
                match message.event.as_deref() {
                    None | Some("message") => {
                        let event: EventView = match serde_json::from_str(&message.data) {
                            Ok(event) => event,
                            Err(error) => {
                                return Err(CliError::BadAnswer(format!(
                                    "an event of the stream is not an event ({error})"
                                )));
                            }
                        };
                        if event.id > last {
                            last = event.id;
                            new.push(event);
                        }
                    }
                    Some("error") => {
                        let reason = serde_json::from_str::<Value>(&message.data)
                            .ok()
                            .and_then(|value| {
                                value
                                    .pointer("/error/message")
                                    .and_then(Value::as_str)
                                    .map(str::to_owned)
                            })
                            .unwrap_or(message.data);
                        let _ = writeln!(std::io::stderr(), "paastis: {reason}; reconnecting");
                    }
                    Some(_) => {}
                }
            }
            if !new.is_empty() {
                emit(&printer.print(&new, false))?;
            }
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(Followed::Interrupted),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// Follows by polling the events list every second (an engine without the live stream).
pub(super) async fn by_polling(
    api: &Api,
    filters: &[(&'static str, String)],
    since: Option<String>,
    first: Vec<EventView>,
    mut printer: render::EventPrinter,
) -> Result<(), CliError> {
    // Poll for events newer than those printed. `floor`: what was written before the first
    // page (and left out by its limit) is not new; `seen`: id -> time of what was printed,
    // kept while the polls can still return it.
    let floor = first.iter().map(|event| event.id).max().unwrap_or(0);
    let mut seen: HashMap<i64, String> = first
        .iter()
        .map(|event| (event.id, event.at.clone()))
        .collect();
    let mut newest = first.last().map(|event| event.at.clone());
    let mut lost = false;
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = ticks.tick() => {}
        }
        let window = match &newest {
            Some(at) => Some(before(at, FOLLOW_OVERLAP)),
            None => since.clone(),
        };
        let fresh = match poll(api, filters, window.as_deref()).await {
            Ok(events) => {
                if lost {
                    let _ = writeln!(std::io::stderr(), "paastis: the admin API answers again");
                    lost = false;
                }
                events
            }
            // The engine restarting is no reason to stop following.
            Err(error @ CliError::Unreachable { .. }) => {
                if !lost {
                    let _ = writeln!(std::io::stderr(), "paastis: {error}; retrying");
                    lost = true;
                }
                continue;
            }
            Err(error) => return Err(error),
        };
        let mut new: Vec<EventView> = fresh
            .into_iter()
            .filter(|event| event.id > floor && !seen.contains_key(&event.id))
            .collect();
        if new.is_empty() {
            continue;
        }
        new.sort_by(|a, b| (&a.at, a.id).cmp(&(&b.at, b.id)));
        for event in &new {
            seen.insert(event.id, event.at.clone());
            if newest.as_ref().is_none_or(|at| event.at > *at) {
                newest = Some(event.at.clone());
            }
        }
        // The API writes every time the same way (UTC, milliseconds): they sort as text.
        if let Some(at) = &newest {
            let horizon = before(at, FOLLOW_OVERLAP * 2);
            seen.retain(|_, at| *at >= horizon);
        }
        emit(&printer.print(&new, false))?;
    }
}

/// The events at or after `since` (every page of them), newest first.
async fn poll(
    api: &Api,
    filters: &[(&'static str, String)],
    since: Option<&str>,
) -> Result<Vec<EventView>, CliError> {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..FOLLOW_PAGES {
        let mut query = filters.to_vec();
        query.push(("limit", crate::store::MAX_EVENTS_LIMIT.to_string()));
        if let Some(since) = since {
            query.push(("since", since.to_owned()));
        }
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.clone()));
        }
        let page: EventList = view(api.get(&["events"], &query).await?)?;
        events.extend(page.events);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(events)
}

/// The RFC 3339 time `by` before `at` (`at` itself if it does not parse).
fn before(at: &str, by: Duration) -> String {
    chrono::DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|at| SystemTime::from(at.with_timezone(&chrono::Utc)))
        .and_then(|at| at.checked_sub(by))
        .map_or_else(|| at.to_owned(), rfc3339)
}
