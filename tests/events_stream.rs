//! The live event stream (`GET /api/v1/events/stream`), black-box: the whole engine on
//! 127.0.0.1:0 with real `process` apps, read by a real HTTP client as it arrives. Events
//! arrive live with their ids; a reconnect with `Last-Event-ID` replays what was missed,
//! once; filters and space scoping; heartbeats; a client that never reads is dropped with
//! a reason while the engine keeps serving; two instances sharing a database (a SQLite file,
//! and PostgreSQL) each stream the other's events; the dashboard's live script and its
//! stream.
//!
//! Nothing here is timed: each wait is for a condition, with a generous bound that only
//! turns a hang into a failure.

mod support;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde_json::Value;
use support::{TempDir, TestEngine, local_apps};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "stream-tok-Secret-7788";
const ACME: &str = "acme-stream-token-0123456789";

/// The longest any one wait may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);

fn config(extra: &str) -> String {
    format!(
        "admin: {{token: {TOKEN}{extra}}}\n{}",
        local_apps(&[("web", ""), ("api", "")])
    )
}

/// One block of the stream: its fields and comments.
#[derive(Debug, Clone, Default)]
struct Frame {
    id: Option<i64>,
    event: Option<String>,
    data: String,
    comments: Vec<String>,
}

impl Frame {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {}", self.data))
    }
}

/// Cuts stream text into frames (blocks ending with an empty line).
fn frames(buffer: &mut String) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some(end) = buffer.find("\n\n") {
        let block: String = buffer.drain(..end + 2).collect();
        let mut frame = Frame::default();
        for line in block.lines() {
            if let Some(comment) = line.strip_prefix(':') {
                frame.comments.push(comment.trim().to_owned());
            } else if let Some(id) = line.strip_prefix("id: ") {
                frame.id = Some(id.parse().expect("numeric id"));
            } else if let Some(event) = line.strip_prefix("event: ") {
                frame.event = Some(event.to_owned());
            } else if let Some(data) = line.strip_prefix("data: ") {
                frame.data.push_str(data);
            }
        }
        out.push(frame);
    }
    out
}

/// A stream being read.
struct Stream {
    response: reqwest::Response,
    buffer: String,
    pending: VecDeque<Frame>,
}

impl Stream {
    /// `GET <path>` on `addr` (the admin listener) with these headers: must be a stream.
    async fn open(addr: std::net::SocketAddr, path: &str, headers: &[(&str, String)]) -> Stream {
        let mut request = reqwest::Client::new().get(format!("http://{addr}{path}"));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.expect("stream answers");
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        Stream {
            response,
            buffer: String::new(),
            pending: VecDeque::new(),
        }
    }

    /// The API's stream for `token`, with a query and a `Last-Event-ID`.
    async fn api(
        addr: std::net::SocketAddr,
        token: &str,
        query: &str,
        last: Option<i64>,
    ) -> Stream {
        let mut headers = vec![("authorization", format!("Bearer {token}"))];
        if let Some(last) = last {
            headers.push(("last-event-id", last.to_string()));
        }
        Stream::open(addr, &format!("/api/v1/events/stream{query}"), &headers).await
    }

    /// The next frame; `None` when the stream ended.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Some(frame);
            }
            let chunk = tokio::time::timeout(PATIENCE, self.response.chunk())
                .await
                .expect("the stream said nothing for a long time")
                .expect("stream readable")?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            self.pending.extend(frames(&mut self.buffer));
        }
    }

    /// The events (data frames) until `done` says the ones so far are enough.
    async fn events_until(&mut self, done: impl Fn(&[Frame]) -> bool) -> Vec<Frame> {
        let mut events = Vec::new();
        while !done(&events) {
            let frame = self.next().await.expect("the stream ended early");
            if frame.id.is_some() {
                events.push(frame);
            }
        }
        events
    }
}

/// Whether the events hold one of this app and kind.
fn has(events: &[Frame], app: &str, kind: &str) -> bool {
    events
        .iter()
        .any(|e| e.json()["app"] == app && e.json()["kind"] == kind)
}

/// Ids strictly increasing, each the `id` of its data.
fn assert_in_order(events: &[Frame]) {
    for pair in events.windows(2) {
        assert!(pair[0].id < pair[1].id, "ids in order: {events:?}");
    }
    for event in events {
        assert_eq!(event.id, event.json()["id"].as_i64(), "{event:?}");
    }
}

async fn call(addr: std::net::SocketAddr, method: &str, path: &str, token: &str) -> Value {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let response = reqwest::Client::new()
        .request(method, format!("http://{addr}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("API answers");
    let status = response.status();
    let text = response.text().await.expect("body");
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Waits until the event list (newest first) satisfies `done`; gives it.
async fn wait_events(
    addr: std::net::SocketAddr,
    token: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let list = call(addr, "GET", "/api/v1/events?limit=500", token).await;
        let events = list["events"].as_array().cloned().unwrap_or_default();
        if done(&events) {
            return events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "events never came: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn listed(events: &[Value], app: &str, kind: &str) -> bool {
    events.iter().any(|e| e["app"] == app && e["kind"] == kind)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_live_with_their_store_ids_in_order() {
    let engine = TestEngine::start(&config("")).await;
    let mut stream = Stream::api(engine.admin_addr, TOKEN, "", None).await;
    call(
        engine.admin_addr,
        "POST",
        "/api/v1/apps/local/web/start?wait=true",
        TOKEN,
    )
    .await;
    let events = stream
        .events_until(|events| has(events, "web", "started"))
        .await;
    assert!(has(&events, "web", "wake_requested"), "{events:?}");
    assert_in_order(&events);
    // Only what happened after the stream opened: not the start's discoveries.
    assert!(!events.iter().any(|e| e.json()["kind"] == "discovered"));
    // The same ids as the history's.
    let listed = wait_events(engine.admin_addr, TOKEN, |l| listed(l, "web", "started")).await;
    for event in &events {
        assert!(
            listed.iter().any(|l| l["id"].as_i64() == event.id),
            "{event:?} in {listed:?}"
        );
    }
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_with_last_event_id_replays_what_was_missed_once() {
    let engine = TestEngine::start(&config("")).await;
    let addr = engine.admin_addr;
    let mut stream = Stream::api(addr, TOKEN, "", None).await;
    call(
        addr,
        "POST",
        "/api/v1/apps/local/web/start?wait=true",
        TOKEN,
    )
    .await;
    let before = stream
        .events_until(|events| has(events, "web", "started"))
        .await;
    let last = before.last().and_then(|e| e.id).expect("an id");
    drop(stream);

    // Meanwhile, with no stream open: a stop and another start.
    call(addr, "POST", "/api/v1/apps/local/web/stop", TOKEN).await;
    call(
        addr,
        "POST",
        "/api/v1/apps/local/api/start?wait=true",
        TOKEN,
    )
    .await;
    let history = wait_events(addr, TOKEN, |l| {
        listed(l, "web", "stopped") && listed(l, "api", "started")
    })
    .await;
    let mut missed: Vec<i64> = history
        .iter()
        .filter_map(|e| e["id"].as_i64())
        .filter(|id| *id > last)
        .collect();
    missed.sort_unstable();

    let mut again = Stream::api(addr, TOKEN, "", Some(last)).await;
    let replayed = again
        .events_until(|events| events.len() >= missed.len())
        .await;
    assert_in_order(&replayed);
    let ids: Vec<i64> = replayed.iter().filter_map(|e| e.id).collect();
    assert_eq!(ids, missed, "exactly what was missed, once");
    assert!(has(&replayed, "web", "stopped") && has(&replayed, "api", "started"));

    // `?after=` does the same; a Last-Event-ID that is no id is refused.
    let mut after = Stream::api(addr, TOKEN, &format!("?after={last}"), None).await;
    let replayed = after
        .events_until(|events| events.len() >= missed.len())
        .await;
    assert_eq!(
        replayed.iter().filter_map(|e| e.id).collect::<Vec<_>>(),
        missed
    );
    let refused = reqwest::Client::new()
        .get(format!("http://{addr}/api/v1/events/stream"))
        .bearer_auth(TOKEN)
        .header("last-event-id", "yesterday")
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "bad_request");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_spaces_scope_the_stream() {
    let command = support::upstream_command();
    let yaml = format!(
        "{}spaces:\n  - id: acme\n    domains: [acme.test]\n    tokens: [{ACME}]\n    \
         providers:\n      - id: local\n        type: process\n        apps:\n          \
         - {{name: web, command: \"{command}\", env: {{APP_NAME: acme-web}}}}\n",
        config("")
    );
    let engine = TestEngine::start(&yaml).await;
    let addr = engine.admin_addr;
    let mut admin = Stream::api(addr, TOKEN, "", None).await;
    let mut started_api = Stream::api(addr, TOKEN, "?app=api&kind=started", None).await;
    let mut acme = Stream::api(addr, ACME, "", None).await;
    // A space token asking for another space: 404, as for the list.
    let other = reqwest::Client::new()
        .get(format!("http://{addr}/api/v1/events/stream?space=default"))
        .bearer_auth(ACME)
        .send()
        .await
        .expect("answer");
    assert_eq!(other.status(), 404);
    let unauthorized = reqwest::Client::new()
        .get(format!("http://{addr}/api/v1/events/stream"))
        .send()
        .await
        .expect("answer");
    assert_eq!(unauthorized.status(), 401);

    call(addr, "POST", "/api/v1/apps/local/web/start?wait=true", ACME).await;
    call(
        addr,
        "POST",
        "/api/v1/apps/local/web/start?wait=true",
        TOKEN,
    )
    .await;
    call(
        addr,
        "POST",
        "/api/v1/apps/local/api/start?wait=true",
        TOKEN,
    )
    .await;

    let seen = acme
        .events_until(|events| has(events, "web", "started"))
        .await;
    assert!(seen.iter().all(|e| e.json()["space"] == "acme"), "{seen:?}");
    let seen = admin
        .events_until(|events| has(events, "api", "started"))
        .await;
    assert!(
        seen.iter().all(|e| e.json()["space"] == "default"),
        "{seen:?}"
    );
    assert!(has(&seen, "web", "started"));
    let only = started_api.events_until(|events| !events.is_empty()).await;
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].json()["app"], "api");
    assert_eq!(only[0].json()["kind"], "started");
    // Nothing else came before it: web's start (earlier) was filtered out.
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_gets_heartbeats() {
    let engine = TestEngine::start(&config(", events_stream: {heartbeat: 100ms}")).await;
    let mut stream = Stream::api(engine.admin_addr, TOKEN, "", None).await;
    let mut comments = Vec::new();
    while !comments.iter().any(|c: &String| c == "heartbeat") {
        let frame = stream.next().await.expect("the stream goes on");
        comments.extend(frame.comments);
    }
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_and_the_engine_keeps_serving() {
    let dir = TempDir::new("stream-slow");
    let good = format!(
        "{}reload: {{watch: false}}\n",
        config(", events_stream: {heartbeat: 200ms, buffer: 2}")
    );
    let path = dir.path("paastis.yml");
    std::fs::write(&path, &good).expect("write config");
    let engine = TestEngine::start_file(&path, &HashMap::new()).await;
    let addr = engine.admin_addr;

    // A client that asks for the stream with a small receive window, then never reads.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small buffer");
    let mut slow = socket.connect(addr).await.expect("connect");
    slow.write_all(
        format!(
            "GET /api/v1/events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Authorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .expect("ask");
    let mut reader = Stream::api(addr, TOKEN, "", None).await;

    // Big events (a refused reload lists every error) until the slow client is dropped.
    let bad: String = (0..2_000)
        .map(|n| format!("unknown_key_number_{n:05}: true\n"))
        .collect();
    std::fs::write(&path, format!("{good}{bad}")).expect("write a broken config");
    let client = reqwest::Client::new();
    let mut rounds = 0;
    let mut read = Vec::new();
    loop {
        let metrics = client
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        if metrics.contains("paastis_event_streams_dropped_total 1") {
            break;
        }
        rounds += 1;
        assert!(rounds < 2_000, "the slow client was never dropped");
        // The engine serves meanwhile: the reload is answered (refused)...
        let refused = client
            .post(format!("http://{addr}/api/v1/config/reload"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("reload answers");
        assert_eq!(refused.status(), 422);
        // ... and a client that reads gets each refusal as it comes.
        while read.len() < rounds {
            let frame = reader.next().await.expect("the reader's stream goes on");
            if frame.id.is_some() {
                read.push(frame);
            }
        }
    }
    call(addr, "GET", "/api/v1/apps", TOKEN).await;
    assert_in_order(&read);
    assert!(read.iter().all(|e| e.json()["kind"] == "config_rejected"));

    // The slow client, reading at last: what was in its buffer, then why it was dropped,
    // then the end.
    let mut text = Vec::new();
    tokio::time::timeout(PATIENCE, slow.read_to_end(&mut text))
        .await
        .expect("the dropped stream ends")
        .expect("read");
    let text = String::from_utf8_lossy(&text);
    let tail = &text[text.len().saturating_sub(2_000)..];
    assert!(tail.contains("event: error"), "{tail}");
    assert!(tail.contains("\"code\":\"too_slow\""), "{tail}");
    assert!(tail.contains("Last-Event-ID"), "{tail}");
    assert!(!text.contains(TOKEN));
    engine.stop().await;
}

/// Two instances on one database: each one's stream shows both one's events, in order, once.
async fn two_instances_share_their_events(url: &str) {
    let instance = |provider: &str| {
        format!(
            "admin: {{token: {TOKEN}}}\ndatabase: {{url: \"{url}\"}}\n{}",
            local_apps(&[("web", "")]).replace("id: local", &format!("id: {provider}"))
        )
    };
    let one = TestEngine::start(&instance("one")).await;
    let two = TestEngine::start(&instance("two")).await;
    let mut on_one = Stream::api(one.admin_addr, TOKEN, "", None).await;
    let mut on_two = Stream::api(two.admin_addr, TOKEN, "", None).await;
    call(
        one.admin_addr,
        "POST",
        "/api/v1/apps/one/web/start?wait=true",
        TOKEN,
    )
    .await;
    call(
        two.admin_addr,
        "POST",
        "/api/v1/apps/two/web/start?wait=true",
        TOKEN,
    )
    .await;
    let both = |events: &[Frame]| {
        events
            .iter()
            .any(|e| e.json()["provider"] == "one" && e.json()["kind"] == "started")
            && events
                .iter()
                .any(|e| e.json()["provider"] == "two" && e.json()["kind"] == "started")
    };
    let seen_one = on_one.events_until(both).await;
    let seen_two = on_two.events_until(both).await;
    assert_in_order(&seen_one);
    assert_in_order(&seen_two);
    let ids = |events: &[Frame]| -> Vec<i64> {
        events
            .iter()
            .filter(|e| e.json()["kind"] != "discovered")
            .filter_map(|e| e.id)
            .collect()
    };
    // The same events, in the same order, on both.
    let (a, b) = (ids(&seen_one), ids(&seen_two));
    let common = a.len().min(b.len());
    assert_eq!(a[..common], b[..common], "{seen_one:?}\n{seen_two:?}");
    one.stop().await;
    two.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_sqlite_file_stream_each_others_events() {
    let dir = TempDir::new("stream-shared");
    let url = format!("sqlite://{}", dir.path("shared.db").display());
    two_instances_share_their_events(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_database_stream_each_others_events() {
    let database = support::postgres::database().await;
    two_instances_share_their_events(&database.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_the_stream_and_renders_without_javascript() {
    // No token: the open dashboard (loopback only).
    let engine = TestEngine::start(&local_apps(&[("web", ""), ("api", "")])).await;
    let addr = engine.admin_addr;
    let page = reqwest::get(format!("http://{addr}/"))
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    // Complete without JavaScript: the rows, the events, the forms.
    assert!(page.contains("<tr id=\"app-web--local\">"), "{page}");
    assert!(page.contains("<tr id=\"app-api--local\">"), "{page}");
    assert!(page.contains("data-state=\"asleep\""), "{page}");
    assert!(page.contains("<li data-id=\""), "{page}");
    assert!(page.contains("action=\"/dashboard/apps/local/web/start\""));
    // And the live script, following the dashboard's stream from the page's last event.
    assert!(page.contains("<script id=\"live\">"), "{page}");
    assert!(page.contains("new EventSource('/dashboard/events?after='"));
    let after: i64 = page
        .split("data-after=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|id| id.parse().ok())
        .expect("data-after");
    let mut stream = Stream::open(addr, &format!("/dashboard/events?after={after}"), &[]).await;
    call(addr, "POST", "/api/v1/apps/local/api/start?wait=true", "").await;
    let events = stream
        .events_until(|events| has(events, "api", "started"))
        .await;
    assert!(events.iter().all(|e| e.id > Some(after)));
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_stream_needs_the_session_when_a_token_is_set() {
    let engine = TestEngine::start(&config("")).await;
    let addr = engine.admin_addr;
    let refused = reqwest::get(format!("http://{addr}/dashboard/events"))
        .await
        .expect("answer");
    assert_eq!(refused.status(), 401);
    let mut stream = Stream::open(
        addr,
        "/dashboard/events",
        &[("cookie", format!("paastis_token={TOKEN}"))],
    )
    .await;
    call(
        addr,
        "POST",
        "/api/v1/apps/local/web/start?wait=true",
        TOKEN,
    )
    .await;
    stream
        .events_until(|events| has(events, "web", "started"))
        .await;
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_with_a_reason_when_the_engine_stops() {
    let engine = TestEngine::start(&config("")).await;
    let mut stream = Stream::api(engine.admin_addr, TOKEN, "", None).await;
    // The stream is open (its first lines came) before the engine stops.
    let opening = stream.next().await.expect("the opening lines");
    assert!(
        opening
            .comments
            .iter()
            .any(|c| c.starts_with("following events after")),
        "{opening:?}"
    );
    engine.stop().await;
    let mut last = None;
    while let Some(frame) = stream.next().await {
        last = Some(frame);
    }
    let last = last.expect("a last message");
    assert_eq!(last.event.as_deref(), Some("error"), "{last:?}");
    assert_eq!(last.json()["error"]["code"], "stopping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_admin_host_on_the_proxy_listener_the_stream_flows_too() {
    let engine = TestEngine::start(&format!(
        "admin: {{token: {TOKEN}, host: admin.test}}\n{}",
        local_apps(&[("web", "")])
    ))
    .await;
    // The proxy's own listener, asked for the admin's host.
    let mut stream = Stream::open(
        engine.addr,
        "/api/v1/events/stream",
        &[
            ("host", "admin.test".to_owned()),
            ("authorization", format!("Bearer {TOKEN}")),
        ],
    )
    .await;
    // A request wakes the app: its events come through the stream as they happen.
    let proxy = support::TestClient::new(engine.addr);
    assert_eq!(proxy.get("web.localhost", "/").await.status, 200);
    let events = stream
        .events_until(|events| has(events, "web", "started"))
        .await;
    assert!(has(&events, "web", "wake_requested"), "{events:?}");
    assert_in_order(&events);
    engine.stop().await;
    let mut last = None;
    while let Some(frame) = stream.next().await {
        last = Some(frame);
    }
    let last = last.expect("a last message");
    assert_eq!(last.json()["error"]["code"], "stopping", "{last:?}");
}
