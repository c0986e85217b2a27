//! Traces over OTLP, end to end: the whole engine, a real `process` app, and a real
//! collector on 127.0.0.1 (tests/support/otlp.rs) that decodes the protobuf payloads with
//! the protocol's own message types. The tests check the spans, their parent links across
//! the client, the engine and the upstream (W3C `traceparent`), sampling, retries against a
//! collector that is down for a while, and that traces off change nothing.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use support::otlp::{Collector, Span};
use support::{TestClient, TestEngine, local_apps};

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn traceparent(sampled: bool) -> String {
    format!(
        "00-{CLIENT_TRACE}-{CLIENT_SPAN}-{}",
        if sampled { "01" } else { "00" }
    )
}

fn env(collector: &Collector, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url()),
        // Small batches, sent soon: the tests wait less.
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (key, value) in extra {
        env.insert((*key).to_owned(), (*value).to_owned());
    }
    env
}

/// The `traceparent` the upstream app received (its `/headers` route echoes them).
fn upstream_traceparent(headers: &serde_json::Value) -> Option<String> {
    headers["traceparent"][0].as_str().map(str::to_owned)
}

/// The engine with one `process` app, `hello`, sending its spans to `collector`.
async fn start(collector: &Collector, extra: &[(&str, &str)]) -> TestEngine {
    TestEngine::start_with_env(&local_apps(&[("hello", "")]), &env(collector, extra)).await
}

/// `GET http://hello.localhost<path>` with this `traceparent`.
async fn get_traced(client: &TestClient, path: &str, traceparent: &str) -> support::Answer {
    client
        .send(
            "GET",
            "hello.localhost",
            path,
            &[("traceparent", traceparent)],
            Bytes::new(),
        )
        .await
}

fn one<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one `{name}` span expected in {spans:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_wakes_its_app_is_one_trace_from_the_client_to_the_upstream() {
    let collector = Collector::start().await;
    let engine = start(
        &collector,
        &[("OTEL_EXPORTER_OTLP_HEADERS", "x-collector-key=key%20one")],
    )
    .await;
    let client = TestClient::new(engine.addr);
    let answer = get_traced(&client, "/headers?q=secret-query", &traceparent(true)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let upstream = upstream_traceparent(&answer.json()).expect("the upstream got a traceparent");

    let spans = collector
        .wait_for("the request, its wake and the start call", |spans| {
            ["GET", "wake", "provider start", "provider status"]
                .iter()
                .all(|name| spans.iter().any(|s| s.name == *name))
        })
        .await;
    let request = one(&spans, "GET");
    // The client's trace goes on: its span is the request span's parent.
    assert_eq!(request.trace_id, CLIENT_TRACE);
    assert_eq!(request.parent_span_id, CLIENT_SPAN);
    assert_eq!(request.kind, 2, "a server span");
    // The upstream's parent is the request span.
    assert_eq!(
        upstream,
        format!("00-{CLIENT_TRACE}-{}-01", request.span_id)
    );
    assert_eq!(request.attribute("http.request.method"), Some("GET"));
    assert_eq!(request.attribute("url.path"), Some("/headers"));
    assert_eq!(request.attribute("http.response.status_code"), Some("200"));
    assert_eq!(request.attribute("paastis.app"), Some("hello"));
    assert_eq!(request.attribute("paastis.provider"), Some("local"));
    assert_eq!(request.attribute("paastis.space"), Some("default"));
    assert_eq!(request.attribute("paastis.wake.waited"), Some("true"));
    let waited: u64 = request
        .attribute("paastis.wake.waited_ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!(waited <= (request.end - request.start) / 1_000_000 + 1);
    // Never a query string.
    assert!(!format!("{spans:?}").contains("secret-query"));
    // The wake is the request's child, the provider calls the wake's.
    let wake = one(&spans, "wake");
    assert_eq!(wake.trace_id, CLIENT_TRACE);
    assert_eq!(wake.parent_span_id, request.span_id);
    assert_eq!(wake.kind, 1, "an internal span");
    assert_eq!(wake.attribute("paastis.outcome"), Some("started"));
    assert_eq!(wake.attribute("paastis.app"), Some("hello"));
    let start = one(&spans, "provider start");
    assert_eq!(start.parent_span_id, wake.span_id);
    assert_eq!(start.kind, 3, "a client span");
    assert_eq!(start.attribute("paastis.provider.type"), Some("process"));
    for status in spans.iter().filter(|s| s.name == "provider status") {
        assert_eq!(status.parent_span_id, wake.span_id);
        assert!(status.start >= start.end);
    }
    assert!(wake.start >= request.start);
    // What every span is about.
    assert_eq!(request.resource["service.name"], "paastis");
    assert_eq!(
        request.resource["service.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(request.scope, "paastis");
    // The export carried the configured field.
    let heads = collector.heads();
    assert_eq!(heads[0]["x-collector-key"], "key one");
    assert!(
        heads[0]["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("paastis/")
    );

    // Awake now: a request without a traceparent starts a trace of its own.
    let answer = client.get("hello.localhost", "/headers").await;
    let upstream = upstream_traceparent(&answer.json()).expect("a new trace");
    let spans = collector
        .wait_for("the second request", |spans| {
            spans.iter().filter(|s| s.name == "GET").count() == 2
        })
        .await;
    let second = spans
        .iter()
        .find(|s| s.name == "GET" && s.trace_id != CLIENT_TRACE)
        .expect("a new trace");
    assert_eq!(second.parent_span_id, "");
    assert_eq!(
        upstream,
        format!("00-{}-{}-01", second.trace_id, second.span_id)
    );
    assert_eq!(second.attribute("paastis.wake.waited"), None);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_and_the_stops_they_begin_are_traced_over_grpc() {
    let collector = Collector::start().await;
    let engine = start(&collector, &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("hello.localhost", "/").await.status, 200);
    let admin = TestClient::new(engine.admin_addr);
    let answer = admin
        .send(
            "POST",
            "localhost",
            "/api/v1/apps/local/hello/stop",
            &[("traceparent", &traceparent(true))],
            Bytes::new(),
        )
        .await;
    assert!(
        answer.status.is_success(),
        "{} {}",
        answer.status,
        answer.text()
    );
    let spans = collector
        .wait_for("the admin call, its stop and the stop call", |spans| {
            spans.iter().any(|s| s.name == "provider stop")
                && spans.iter().any(|s| s.name.starts_with("POST "))
        })
        .await;
    let call = one(&spans, "POST /api/v1/apps/{provider}/{app}/stop");
    assert_eq!(call.trace_id, CLIENT_TRACE);
    assert_eq!(call.parent_span_id, CLIENT_SPAN);
    assert_eq!(call.kind, 2);
    assert_eq!(
        call.attribute("http.route"),
        Some("/api/v1/apps/{provider}/{app}/stop")
    );
    assert_eq!(
        call.attribute("http.response.status_code"),
        Some(answer.status.as_str())
    );
    let stop = one(&spans, "stop");
    assert_eq!(stop.trace_id, CLIENT_TRACE);
    assert_eq!(stop.parent_span_id, call.span_id);
    assert_eq!(stop.attribute("paastis.app"), Some("hello"));
    let provider_stop = one(&spans, "provider stop");
    assert_eq!(provider_stop.parent_span_id, stop.span_id);
    assert_eq!(provider_stop.status_code, 0, "the stop call succeeded");
    // The request that woke the app earlier is a trace of its own, exported over gRPC too.
    let wake = one(&spans, "wake");
    let request = one(&spans, "GET");
    assert_eq!(wake.parent_span_id, request.span_id);
    assert_ne!(request.trace_id, CLIENT_TRACE);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sampler_decides_and_the_callers_decision_is_followed() {
    let collector = Collector::start().await;
    // Traces that start here are not recorded; a caller's sampled trace is.
    let engine = start(
        &collector,
        &[("OTEL_TRACES_SAMPLER", "parentbased_always_off")],
    )
    .await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("hello.localhost", "/").await.status, 200);
    // Not recorded, yet propagated: the upstream sees the trace, flagged not sampled.
    let answer = client.get("hello.localhost", "/headers").await;
    let upstream = upstream_traceparent(&answer.json()).expect("propagated");
    assert!(
        upstream.starts_with("00-") && upstream.ends_with("-00"),
        "{upstream}"
    );
    // A caller's unsampled trace: propagated with its id, not recorded.
    let answer = get_traced(&client, "/headers", &traceparent(false)).await;
    let upstream = upstream_traceparent(&answer.json()).unwrap();
    assert!(
        upstream.starts_with(&format!("00-{CLIENT_TRACE}-")),
        "{upstream}"
    );
    assert!(upstream.ends_with("-00"));
    assert!(
        !upstream.contains(CLIENT_SPAN),
        "the engine's span is the parent"
    );
    // A caller's sampled trace is recorded.
    get_traced(&client, "/headers", &traceparent(true)).await;
    collector
        .wait_for("the sampled request", |spans| !spans.is_empty())
        .await;
    // Give a wrongly recorded span the time to arrive too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spans = collector.spans();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0].trace_id, CLIENT_TRACE);
    assert_eq!(spans[0].flags & 1, 1, "flagged sampled");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_for_a_while_loses_nothing_and_slows_nothing() {
    let collector = Collector::start().await;
    collector.refuse_next(3);
    let engine = start(&collector, &[]).await;
    let client = TestClient::new(engine.addr);
    for _ in 0..5 {
        assert_eq!(client.get("hello.localhost", "/").await.status, 200);
    }
    let spans = collector
        .wait_for("the five requests, after the retries", |spans| {
            spans.iter().filter(|s| s.name == "GET").count() == 5
        })
        .await;
    assert_eq!(collector.refused(), 3);
    assert_eq!(spans.iter().filter(|s| s.name == "wake").count(), 1);
    engine.stop().await;

    // No collector at all: requests are answered as ever, and the engine stops on time.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let engine = TestEngine::start_with_env(
        &local_apps(&[("hello", "")]),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", nowhere.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "10"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "4"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    )
    .await;
    let client = TestClient::new(engine.addr);
    for _ in 0..50 {
        assert_eq!(client.get("hello.localhost", "/").await.status, 200);
    }
    // What did not fit is counted, in the metrics (the exporter holds at most a batch of 2
    // while it retries, and the queue 4).
    let metrics = TestClient::new(engine.admin_addr)
        .get("localhost", "/metrics")
        .await
        .text();
    let dropped: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("paastis_trace_spans_dropped_total "))
        .unwrap_or_else(|| panic!("no dropped spans metric in {metrics}"))
        .parse()
        .expect("a count");
    assert!(dropped >= 40, "{dropped} dropped");
    assert!(metrics.contains("# TYPE paastis_trace_spans_lost_total counter"));
    // The exporter gets 5 s to send what is left, then gives up.
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_traces_off_a_clients_traceparent_passes_through_untouched() {
    let engine = TestEngine::start(&local_apps(&[("hello", "")])).await;
    let metrics = TestClient::new(engine.admin_addr)
        .get("localhost", "/metrics")
        .await
        .text();
    assert!(
        !metrics.contains("paastis_trace_"),
        "no trace metrics when off"
    );
    let client = TestClient::new(engine.addr);
    let answer = get_traced(&client, "/headers", &traceparent(true)).await;
    assert_eq!(
        upstream_traceparent(&answer.json()),
        Some(traceparent(true))
    );
    let answer = client.get("hello.localhost", "/headers").await;
    assert_eq!(upstream_traceparent(&answer.json()), None);
    // A malformed one is the client's business: passed on as it is.
    let answer = get_traced(&client, "/headers", "nonsense").await;
    assert_eq!(
        upstream_traceparent(&answer.json()).as_deref(),
        Some("nonsense")
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_span_lasts_until_its_answer_is_through() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let collector = Collector::start().await;
    let engine = start(&collector, &[]).await;
    let client = TestClient::new(engine.addr);
    // Three events 300 ms apart: the answer's head comes at once, its body over 900 ms.
    let answer = get_traced(&client, "/sse?n=3&gap_ms=300", &traceparent(true)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(answer.text().contains("data: event 2"), "{}", answer.text());
    let spans = collector
        .wait_for("the request", |spans| spans.iter().any(|s| s.name == "GET"))
        .await;
    let request = one(&spans, "GET");
    let lasted_ms = (request.end - request.start) / 1_000_000;
    assert!(
        lasted_ms >= 600,
        "the span ended with the head, {lasted_ms} ms in"
    );
    assert_eq!(request.attribute("paastis.response.complete"), None);
    assert_eq!(request.attribute("error.type"), None);

    // A client that goes away mid-body: the span ends then, and says so.
    let mut stream = tokio::net::TcpStream::connect(engine.addr)
        .await
        .expect("connect");
    stream
        .write_all(b"GET /sse?n=20&gap_ms=200 HTTP/1.1\r\nHost: hello.localhost\r\n\r\n")
        .await
        .expect("write");
    let mut head = Vec::new();
    let mut piece = [0u8; 1024];
    while !String::from_utf8_lossy(&head).contains("data: event 0") {
        let read = stream.read(&mut piece).await.expect("read");
        assert!(read > 0, "closed early: {}", String::from_utf8_lossy(&head));
        head.extend_from_slice(&piece[..read]);
    }
    drop(stream);
    let spans = collector
        .wait_for("the abandoned request", |spans| {
            spans.iter().filter(|s| s.name == "GET").count() == 2
        })
        .await;
    let abandoned = spans
        .iter()
        .find(|s| {
            s.name == "GET"
                && s.attribute("url.path") == Some("/sse")
                && s.trace_id != request.trace_id
        })
        .expect("the abandoned request's span");
    assert_eq!(
        abandoned.attribute("paastis.response.complete"),
        Some("false")
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_are_compressed_with_gzip_when_asked_over_http_and_grpc() {
    for protocol in ["http/protobuf", "grpc"] {
        let collector = Collector::start().await;
        let engine = start(
            &collector,
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ],
        )
        .await;
        let client = TestClient::new(engine.addr);
        let answer = get_traced(&client, "/headers", &traceparent(true)).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        let spans = collector
            .wait_for("the request and its wake", |spans| {
                ["GET", "wake"]
                    .iter()
                    .all(|name| spans.iter().any(|s| s.name == *name))
            })
            .await;
        assert_eq!(one(&spans, "GET").trace_id, CLIENT_TRACE, "{protocol}");
        let heads = collector.heads();
        let field = if protocol == "grpc" {
            "grpc-encoding"
        } else {
            "content-encoding"
        };
        assert!(
            heads.iter().all(|head| head[field] == "gzip"),
            "{protocol}: {heads:?}"
        );
        engine.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_traceparent_starts_a_new_trace() {
    let collector = Collector::start().await;
    let engine = start(&collector, &[]).await;
    let client = TestClient::new(engine.addr);
    let bad = format!("00-{}-{CLIENT_SPAN}-01", CLIENT_TRACE.to_uppercase());
    let answer = get_traced(&client, "/headers", &bad).await;
    let upstream = upstream_traceparent(&answer.json()).unwrap();
    let spans = collector
        .wait_for("the request", |spans| spans.iter().any(|s| s.name == "GET"))
        .await;
    let request = one(&spans, "GET");
    assert_ne!(request.trace_id, CLIENT_TRACE);
    assert_eq!(request.parent_span_id, "");
    assert_eq!(
        upstream,
        format!("00-{}-{}-01", request.trace_id, request.span_id)
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collectors_key_never_reaches_the_logs_or_the_checks() {
    const KEY: &str = "k3y-s3cret-value";
    let dir = support::TempDir::new("traces-secret");
    let path = dir.path("paastis.yml");
    std::fs::write(
        &path,
        format!(
            "{}database: {{url: \"sqlite://{}\"}}\n",
            local_apps(&[("hello", "")]),
            dir.path("paastis.db").display()
        ),
    )
    .expect("write config");
    // A collector that refuses everything: the exporter logs its failures (and retries).
    let collector = Collector::start().await;
    collector.refuse_next(usize::MAX);
    let headers = format!("authorization=Bearer%20{KEY}");
    let url = collector.url();
    let env = [
        ("LOG_LEVEL", "trace"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", url.as_str()),
        ("OTEL_EXPORTER_OTLP_HEADERS", headers.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "300"),
    ];
    let mut served = support::serve(&path, &env).await;
    let client = TestClient::new(served.addr);
    for _ in 0..3 {
        assert_eq!(client.get("hello.localhost", "/").await.status, 200);
    }
    // Until the failure is logged.
    for _ in 0..200 {
        if served.logs().contains("spans not exported") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    served.stop().await;
    let logs = served.logs();
    assert!(logs.contains("traces: on"), "{logs}");
    assert!(logs.contains("spans not exported"), "{logs}");
    // The key was sent, where it belongs.
    assert_eq!(
        collector.heads()[0]["authorization"],
        format!("Bearer {KEY}").as_str()
    );
    let check = support::paastis()
        .args(["check", "--config", &path.to_string_lossy()])
        .envs(env)
        .output()
        .await
        .expect("run paastis check");
    let checked = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{checked}");
    assert!(checked.contains(&url), "{checked}");
    // A malformed list is refused without showing its values.
    let bad = support::paastis()
        .args(["check", "--config", &path.to_string_lossy()])
        .envs(env)
        .env("OTEL_EXPORTER_OTLP_HEADERS", format!("authorization:{KEY}"))
        .env("OTEL_TRACES_SAMPLER", "sometimes")
        .output()
        .await
        .expect("run paastis check");
    let refused =
        String::from_utf8_lossy(&bad.stdout).into_owned() + &String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{refused}");
    assert!(refused.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{refused}");
    assert!(refused.contains("OTEL_TRACES_SAMPLER"), "{refused}");
    support::assert_no_secret(&[&logs, &checked, &refused], &[KEY]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gates_answers_and_the_wakes_they_begin_are_traced() {
    let collector = Collector::start().await;
    let engine = TestEngine::start_with_env(
        &format!(
            "proxy: {{trusted_proxies: [127.0.0.1/32]}}\n\
             gate: {{forward_auth: true, listen: 127.0.0.1:1}}\n{}",
            local_apps(&[("web", "")])
        ),
        &env(&collector, &[]),
    )
    .await;
    // nginx's auth_request passes the client's fields on, `traceparent` among them.
    let gate = TestClient::new(engine.gate_addr.expect("gate listener"));
    let answer = gate
        .send(
            "GET",
            "localhost",
            "/forward-auth",
            &[
                ("x-forwarded-host", "web.localhost"),
                ("x-forwarded-uri", "/"),
                ("traceparent", &traceparent(true)),
            ],
            Bytes::new(),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let spans = collector
        .wait_for("the gate's answer and its wake", |spans| {
            spans.iter().any(|s| s.name == "GET /forward-auth")
                && spans.iter().any(|s| s.name == "provider start")
        })
        .await;
    let call = one(&spans, "GET /forward-auth");
    assert_eq!(call.trace_id, CLIENT_TRACE);
    assert_eq!(call.parent_span_id, CLIENT_SPAN);
    let wake = one(&spans, "wake");
    assert_eq!(wake.parent_span_id, call.span_id);
    assert_eq!(one(&spans, "provider start").parent_span_id, wake.span_id);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_are_spans_of_the_wake_or_stop_they_belong_to() {
    let collector = Collector::start().await;
    let engine = TestEngine::start_with_env(
        &format!(
            "hooks: {{before_start: 'true', before_stop: 'echo busy; exit 3'}}\n{}",
            local_apps(&[("hello", "")])
        ),
        &env(&collector, &[]),
    )
    .await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("hello.localhost", "/").await.status, 200);
    let admin = TestClient::new(engine.admin_addr);
    let answer = admin
        .send(
            "POST",
            "localhost",
            "/api/v1/apps/local/hello/stop",
            &[],
            Bytes::new(),
        )
        .await;
    assert!(answer.status.is_success(), "{}", answer.text());
    let spans = collector
        .wait_for("both hooks and the vetoed stop", |spans| {
            spans.iter().any(|s| s.name == "hook before_stop")
                && spans.iter().any(|s| s.name == "stop")
                && spans.iter().any(|s| s.name == "hook before_start")
        })
        .await;
    let wake = one(&spans, "wake");
    let before_start = one(&spans, "hook before_start");
    assert_eq!(before_start.parent_span_id, wake.span_id);
    assert_eq!(before_start.status_code, 0);
    let stop = one(&spans, "stop");
    assert_eq!(stop.attribute("paastis.outcome"), Some("vetoed"));
    let before_stop = one(&spans, "hook before_stop");
    assert_eq!(before_stop.parent_span_id, stop.span_id);
    assert_eq!(before_stop.status_code, 2, "a vetoing hook is an error");
    assert!(before_stop.end <= stop.end);
    // Hooks that are not configured make no span.
    assert!(!spans.iter().any(|s| s.name == "hook after_start"));
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_wake_is_an_error_in_the_request_and_the_wake() {
    let collector = Collector::start().await;
    let engine = TestEngine::start_with_env(
        "defaults: {wake_timeout: 5s, strategy: hold}\nproviders:\n  - id: local\n    \
         type: process\n    apps:\n      - {name: crash, command: 'echo boom >&2; exit 3'}\n",
        &env(&collector, &[]),
    )
    .await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("crash.localhost", "/").await.status, 503);
    let spans = collector
        .wait_for("the request and its failed wake", |spans| {
            spans.iter().any(|s| s.name == "GET") && spans.iter().any(|s| s.name == "wake")
        })
        .await;
    let request = one(&spans, "GET");
    assert_eq!(request.status_code, 2, "a 503 is an error");
    assert_eq!(request.attribute("error.type"), Some("wake_failed"));
    assert_eq!(request.attribute("http.response.status_code"), Some("503"));
    let wake = one(&spans, "wake");
    assert_eq!(wake.parent_span_id, request.span_id);
    assert_eq!(wake.status_code, 2);
    assert!(!wake.status_message.is_empty());
    engine.stop().await;
}
