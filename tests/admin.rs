//! The admin API: the router driven with `oneshot` over a real engine (real `process` apps),
//! every endpoint, auth failures included; `/metrics` parsed with a Prometheus text-format
//! parser while requests, wakes and stops happen through the served engine.

mod support;

use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use paastis::config::{Overrides, load_str};
use paastis::model::State;
use serde_json::{Value, json};
use support::{TestClient, TestEngine};
use tower::ServiceExt;

const TOKEN: &str = "admin-tok-Secret-0099";

fn config(max_idle: &str) -> String {
    format!(
        "defaults: {{max_idle: {max_idle}}}\nadmin: {{token: {TOKEN}}}\n{}",
        support::local_apps(&[("web", ""), ("api", ""), ("review-pr1", "")])
    )
}

/// A started engine (not serving) and its admin router's state.
async fn engine(max_idle: &str) -> paastis::Engine {
    let mut loaded = load_str(
        &config(max_idle),
        &std::collections::HashMap::new(),
        &Overrides::default(),
    )
    .expect("config");
    loaded.config.database_url = paastis::secret::Secret::new("sqlite::memory:");
    paastis::Engine::start(loaded.config)
        .await
        .expect("engine starts")
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn call(
    engine: &paastis::Engine,
    method: &str,
    uri: &str,
    auth: Option<(&str, &str)>,
    body: Option<Value>,
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some((name, value)) = auth {
        request = request.header(name, value);
    }
    let body = match body {
        Some(json) => {
            request = request.header("content-type", "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let response = paastis::admin::router(engine.admin_state())
        .oneshot(request.body(body).expect("request"))
        .await
        .expect("answer");
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .expect("body")
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

const BEARER: Option<(&str, &str)> = Some(("authorization", "Bearer admin-tok-Secret-0099"));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_refuses_a_missing_wrong_or_misplaced_token() {
    let engine = engine("15m").await;
    let endpoints = [
        ("GET", "/api/v1/apps"),
        ("GET", "/api/v1/apps/local/web"),
        ("POST", "/api/v1/apps/local/web/start"),
        ("POST", "/api/v1/apps/local/web/stop"),
        ("PUT", "/api/v1/apps/local/web/pin"),
        ("DELETE", "/api/v1/apps/local/web/pin"),
        ("GET", "/api/v1/events"),
        ("GET", "/api/v1/providers"),
        ("GET", "/api/v1/savings"),
    ];
    let wrong: [Option<(&str, &str)>; 6] = [
        None,
        Some(("authorization", "Bearer not-the-token")),
        Some(("authorization", "Bearer admin-tok-Secret-009")),
        Some(("authorization", "admin-tok-Secret-0099")),
        Some(("x-api-key", TOKEN)),
        Some(("cookie", "paastis_token=admin-tok-Secret-0099")),
    ];
    for (method, uri) in endpoints {
        for auth in wrong {
            let reply = call(&engine, method, uri, auth, None).await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{method} {uri} with {auth:?}"
            );
            assert_eq!(reply.json()["error"]["code"], "unauthorized");
            assert!(reply.headers.contains_key("www-authenticate"));
            assert!(!reply.text().contains(TOKEN));
        }
    }
    // Nothing was started or stopped by those.
    assert!(
        engine
            .lifecycle()
            .apps()
            .iter()
            .all(|a| a.state() == State::Asleep)
    );
    // Health, readiness and the OpenAPI document need no token.
    for uri in ["/health", "/ready", "/api/openapi.json", "/metrics"] {
        let reply = call(&engine, "GET", uri, None, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.text());
    }
    assert_eq!(
        call(&engine, "GET", "/health", None, None).await.json(),
        json!({"status": "ok"})
    );
    let ready = call(&engine, "GET", "/ready", None, None).await.json();
    assert_eq!(ready["status"], "ready");
    let names: Vec<&str> = ready["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["database", "registry", "provider:local"]);
    // Unknown endpoints: the same error shape.
    let reply = call(&engine, "GET", "/api/v1/nothing", BEARER, None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json()["error"]["code"], "not_found");
    engine.lifecycle().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_are_listed_filtered_shown_started_stopped_and_pinned() {
    let engine = engine("2s").await;
    let list = call(&engine, "GET", "/api/v1/apps", BEARER, None).await;
    assert_eq!(list.status, StatusCode::OK);
    let names = |value: &Value| -> Vec<String> {
        value["apps"]
            .as_array()
            .expect("apps")
            .iter()
            .map(|a| a["name"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(names(&list.json()), ["api", "review-pr1", "web"]);
    let review = call(&engine, "GET", "/api/v1/apps?name=review-*", BEARER, None).await;
    assert_eq!(names(&review.json()), ["review-pr1"]);
    let none = call(&engine, "GET", "/api/v1/apps?provider=other", BEARER, None).await;
    assert_eq!(names(&none.json()), Vec::<String>::new());
    let bad = call(&engine, "GET", "/api/v1/apps?state=dancing", BEARER, None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["error"]["code"], "bad_request");

    let web = call(&engine, "GET", "/api/v1/apps/local/web", BEARER, None)
        .await
        .json();
    assert_eq!(web["state"], "asleep");
    assert_eq!(web["policy"]["max_idle"], "2s");
    assert_eq!(web["hosts"][0], "web.*");
    assert_eq!(web["hosts"][1], "web--local.*");
    let missing = call(&engine, "GET", "/api/v1/apps/local/nope", BEARER, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["error"]["code"], "unknown_app");

    // start?wait=true answers once the app is awake.
    let started = call(
        &engine,
        "POST",
        "/api/v1/apps/local/web/start?wait=true",
        BEARER,
        None,
    )
    .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text());
    let started = started.json();
    assert_eq!(started["state"], "awake");
    assert_eq!(started["last_wake"]["cause"], "api");
    assert!(
        started["sleeps_in_seconds"]
            .as_u64()
            .is_some_and(|s| s <= 2)
    );
    // Without wait: 202 while it wakes.
    let waking = call(
        &engine,
        "POST",
        "/api/v1/apps/local/api/start",
        BEARER,
        None,
    )
    .await;
    assert_eq!(waking.status, StatusCode::ACCEPTED, "{}", waking.text());

    // Pinned: not stopped after max_idle.
    let pinned = call(
        &engine,
        "PUT",
        "/api/v1/apps/local/web/pin",
        BEARER,
        Some(json!({})),
    )
    .await;
    assert_eq!(pinned.status, StatusCode::OK, "{}", pinned.text());
    assert_eq!(pinned.json()["pinned_until"], "forever");
    let until = chrono::Utc::now() + chrono::Duration::hours(2);
    let timed = call(
        &engine,
        "PUT",
        "/api/v1/apps/local/api/pin",
        BEARER,
        Some(json!({"until": until.to_rfc3339()})),
    )
    .await;
    assert_eq!(timed.status, StatusCode::OK, "{}", timed.text());
    assert!(
        timed.json()["pinned_until"]
            .as_str()
            .is_some_and(|t| t.starts_with(&until.format("%Y-%m-%dT%H").to_string()))
    );
    for bad in [
        json!({"until": "tomorrow"}),
        json!({"until": "2001-01-01T00:00:00Z"}),
        json!([1]),
    ] {
        let reply = call(
            &engine,
            "PUT",
            "/api/v1/apps/local/web/pin",
            BEARER,
            Some(bad.clone()),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            reply.text()
        );
    }
    let scheduler = paastis::scheduler::Scheduler::start(
        engine.lifecycle(),
        &paastis::config::Discovery::default(),
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        engine.lifecycle().app("local", "web").expect("web").state(),
        State::Awake
    );
    // Unpinned: stopped by the idle check.
    let unpinned = call(
        &engine,
        "DELETE",
        "/api/v1/apps/local/web/pin",
        BEARER,
        None,
    )
    .await;
    assert_eq!(unpinned.json()["pinned_until"], Value::Null);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    while engine.lifecycle().app("local", "web").expect("web").state() != State::Asleep {
        assert!(
            tokio::time::Instant::now() < deadline,
            "unpinned web never slept"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // stop: 202 on an awake app, 409 on an asleep one.
    let stop = call(&engine, "POST", "/api/v1/apps/local/api/stop", BEARER, None).await;
    assert_eq!(stop.status, StatusCode::ACCEPTED, "{}", stop.text());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while engine.lifecycle().app("local", "api").expect("api").state() != State::Asleep {
        assert!(tokio::time::Instant::now() < deadline, "api never stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = call(&engine, "POST", "/api/v1/apps/local/api/stop", BEARER, None).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.json()["error"]["code"], "conflict");
    scheduler.stop().await;

    // Events: what happened, by kind, newest first, by pages.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let page = call(
        &engine,
        "GET",
        "/api/v1/events?app=api&kind=stop_requested,stopped",
        BEARER,
        None,
    )
    .await
    .json();
    let kinds: Vec<&str> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["stopped", "stop_requested"], "{page}");
    assert_eq!(page["events"][1]["details"]["cause"]["type"], "api");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let uri = match &cursor {
            Some(c) => format!("/api/v1/events?limit=2&cursor={c}"),
            None => "/api/v1/events?limit=2".to_owned(),
        };
        let page = call(&engine, "GET", &uri, BEARER, None).await.json();
        for event in page["events"].as_array().expect("events") {
            seen.push(event["id"].as_i64().expect("id"));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(seen, sorted, "every event once, newest first");
    assert!(seen.len() >= 8, "{seen:?}");
    for bad in [
        "/api/v1/events?since=yesterday",
        "/api/v1/events?limit=0",
        "/api/v1/events?cursor=zzz",
    ] {
        let reply = call(&engine, "GET", bad, BEARER, None).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            reply.text()
        );
    }

    // Providers: the account and its calls.
    let providers = call(&engine, "GET", "/api/v1/providers", BEARER, None)
        .await
        .json();
    let local = &providers["providers"][0];
    assert_eq!(local["id"], "local");
    assert_eq!(local["type"], "process");
    assert_eq!(local["apps"], 3);
    assert_eq!(local["healthy"], true);
    let starts: u64 = local["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .filter(|c| c["op"] == "start" && c["result"] == "ok")
        .filter_map(|c| c["count"].as_u64())
        .sum();
    assert_eq!(starts, 2);
    engine.lifecycle().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route() {
    let engine = engine("15m").await;
    let doc = call(&engine, "GET", "/api/openapi.json", None, None)
        .await
        .json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    for path in [
        "/health",
        "/ready",
        "/metrics",
        "/api/v1/apps",
        "/api/v1/apps/{provider}/{app}",
        "/api/v1/apps/{provider}/{app}/start",
        "/api/v1/apps/{provider}/{app}/stop",
        "/api/v1/apps/{provider}/{app}/pin",
        "/api/v1/events",
        "/api/v1/providers",
        "/api/v1/savings",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    engine.lifecycle().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_with_requests_wakes_and_stops() {
    let engine = TestEngine::start(&config("1s").replace(
        &format!("admin: {{token: {TOKEN}}}"),
        &format!("admin: {{token: {TOKEN}, metrics_auth: true}}"),
    ))
    .await;
    let admin = TestClient::new(engine.admin_addr);
    let proxy = TestClient::new(engine.addr);
    let scrape = || async {
        let answer = admin
            .send(
                "GET",
                "admin.localhost",
                "/metrics",
                &[("authorization", "Bearer admin-tok-Secret-0099")],
                bytes::Bytes::new(),
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        let lines = answer
            .text()
            .lines()
            .map(|l| Ok(l.to_owned()))
            .collect::<Vec<_>>();
        prometheus_parse::Scrape::parse(lines.into_iter()).expect("Prometheus text format")
    };
    let value = |scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    // A histogram's count: its largest bucket (`+Inf`), of the first sample that matches.
    let histogram_count =
        |scrape: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>| {
            scrape
                .samples
                .iter()
                .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
                .map(|s| match &s.value {
                    prometheus_parse::Value::Histogram(buckets) => {
                        buckets.iter().map(|b| b.count).fold(0.0, f64::max)
                    }
                    _ => 0.0,
                })
        };
    // metrics_auth: the token is needed.
    let open = admin.get("admin.localhost", "/metrics").await;
    assert_eq!(open.status, 401);

    let before = scrape().await;
    assert_eq!(value(&before, "paastis_apps", &[("state", "asleep")]), 3.0);
    assert_eq!(
        value(&before, "paastis_wakes_total", &[("result", "started")]),
        0.0
    );

    for _ in 0..5 {
        assert_eq!(proxy.get("web.localhost", "/").await.status, 200);
    }
    for _ in 0..3 {
        assert_eq!(
            proxy.get("random-host-123.localhost", "/").await.status,
            404
        );
    }
    let during = scrape().await;
    assert_eq!(
        value(
            &during,
            "paastis_requests_total",
            &[("app", "local/web"), ("status", "2xx")]
        ),
        5.0
    );
    assert_eq!(
        value(
            &during,
            "paastis_requests_total",
            &[("app", ""), ("status", "4xx")]
        ),
        3.0
    );
    assert!(
        !during
            .samples
            .iter()
            .any(|s| s.labels.values().any(|v| v.contains("random-host"))),
        "unknown hosts never become labels"
    );
    assert_eq!(
        value(&during, "paastis_wakes_total", &[("result", "started")]),
        1.0
    );
    assert_eq!(value(&during, "paastis_apps", &[("state", "awake")]), 1.0);
    assert_eq!(
        value(
            &during,
            "paastis_provider_calls_total",
            &[("provider", "local"), ("op", "start"), ("result", "ok")]
        ),
        1.0
    );
    let count = histogram_count(&during, "paastis_request_duration_seconds", None)
        .expect("request duration histogram");
    assert_eq!(count, 8.0);
    // The wake's duration, under its provider.
    let wakes = histogram_count(
        &during,
        "paastis_wake_duration_seconds",
        Some(("provider", "local")),
    )
    .expect("wake duration histogram of provider local");
    assert_eq!(wakes, 1.0);
    // The awake app's time left before it sleeps (max_idle 1s): there, and within it.
    let left = during
        .samples
        .iter()
        .find(|s| {
            s.metric == "paastis_app_sleeps_in_seconds" && s.labels.get("app") == Some("local/web")
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) => v,
            _ => f64::NAN,
        })
        .expect("seconds until web sleeps");
    assert!((0.0..=1.0).contains(&left), "{left}");

    engine
        .wait_state("web", State::Asleep, Duration::from_secs(6))
        .await;
    let after = scrape().await;
    assert!(
        !after
            .samples
            .iter()
            .any(|s| s.metric == "paastis_app_sleeps_in_seconds"),
        "asleep apps have no time left"
    );
    assert_eq!(
        value(&after, "paastis_stops_total", &[("reason", "idle")]),
        1.0
    );
    assert_eq!(value(&after, "paastis_apps", &[("state", "asleep")]), 3.0);
    engine.stop().await;
}

#[tokio::test]
async fn a_network_admin_listener_needs_a_token() {
    let env = std::collections::HashMap::new();
    let errors = load_str(
        "admin: {listen: '0.0.0.0:3001'}\n",
        &env,
        &Overrides::default(),
    )
    .expect_err("refused");
    let text = errors.to_string();
    assert!(
        text.contains("admin.listen: 0.0.0.0:3001 is not a loopback address"),
        "{text}"
    );
    assert!(
        load_str(
            "admin: {listen: '0.0.0.0:3001', token: t0k3n-long}\n",
            &env,
            &Overrides::default()
        )
        .is_ok()
    );
    let mut with_env = std::collections::HashMap::new();
    with_env.insert(
        "PAASTIS_ADMIN_TOKEN".to_owned(),
        "from-env-token".to_owned(),
    );
    let loaded = load_str(
        "admin: {listen: '0.0.0.0:3001'}\n",
        &with_env,
        &Overrides::default(),
    )
    .expect("PAASTIS_ADMIN_TOKEN is the token");
    assert_eq!(
        loaded
            .config
            .admin
            .token
            .as_ref()
            .map(|t| t.expose().to_owned()),
        Some("from-env-token".to_owned())
    );
    assert!(!format!("{:?}", loaded.config).contains("from-env-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_says_degraded_while_redis_cannot_be_reached() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let yaml = format!(
        "registry: {{type: redis, url: 'redis://127.0.0.1:{port}'}}\n{}",
        config("15m")
    );
    let mut loaded = load_str(
        &yaml,
        &std::collections::HashMap::new(),
        &Overrides::default(),
    )
    .expect("config");
    loaded.config.database_url = paastis::secret::Secret::new("sqlite::memory:");
    let engine = paastis::Engine::start(loaded.config)
        .await
        .expect("the engine starts without Redis");
    let reply = call(&engine, "GET", "/ready", None, None).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    let ready = reply.json();
    assert_eq!(ready["status"], "degraded");
    let registry = ready["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "registry")
        .expect("a registry check")
        .clone();
    assert_eq!(registry["ok"], false, "{registry}");
    assert!(
        registry["detail"]
            .as_str()
            .is_some_and(|d| d.contains("degraded")),
        "{registry}"
    );
    // Liveness does not depend on it.
    assert_eq!(
        call(&engine, "GET", "/health", None, None).await.status,
        StatusCode::OK
    );
    engine.lifecycle().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_never_reaches_the_logs() {
    let dir = support::TempDir::new("admin-secret");
    let path = dir.path("paastis.yml");
    std::fs::write(&path, config("15m")).expect("write config");
    let mut served = support::serve(&path, &[("LOG_LEVEL", "trace")]).await;
    // The admin listener's address, from its log line.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let admin_addr: std::net::SocketAddr = loop {
        let logs = served.logs();
        if let Some(addr) = logs
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|l| l["admin_addr"].as_str().map(str::to_owned))
        {
            break addr.parse().expect("address");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no admin address in {logs}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let admin = TestClient::new(admin_addr);
    for auth in [format!("Bearer {TOKEN}"), "Bearer wrong".to_owned()] {
        let answer = admin
            .send(
                "POST",
                "admin.localhost",
                "/api/v1/apps/local/web/start?wait=true",
                &[("authorization", &auth)],
                bytes::Bytes::new(),
            )
            .await;
        assert!(
            answer.status == 200 || answer.status == 401,
            "{}",
            answer.text()
        );
    }
    let login = admin
        .send(
            "POST",
            "admin.localhost",
            "/login",
            &[("content-type", "application/x-www-form-urlencoded")],
            bytes::Bytes::from(format!("token={TOKEN}")),
        )
        .await;
    assert_eq!(login.status, 303);
    served.stop().await;
    let logs = served.logs();
    assert!(logs.contains("admin API and dashboard on"), "{logs}");
    assert!(!logs.contains(TOKEN), "the admin token reached the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_savings_of_the_last_30_days() {
    let engine = engine("15m").await;
    let cookie = Some(("cookie", "paastis_token=admin-tok-Secret-0099"));
    let empty = call(&engine, "GET", "/", cookie, None).await.text();
    assert!(empty.contains("Savings, last 30 days"), "{empty}");
    assert!(empty.contains("No app has slept yet."), "{empty}");
    // No webhook configured: no webhooks section.
    assert!(!empty.contains("<h2>Webhooks</h2>"), "{empty}");

    let started = call(
        &engine,
        "POST",
        "/api/v1/apps/local/web/start?wait=true",
        BEARER,
        None,
    )
    .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text());
    let stopped = call(&engine, "POST", "/api/v1/apps/local/web/stop", BEARER, None).await;
    assert_eq!(stopped.status, StatusCode::ACCEPTED, "{}", stopped.text());
    // Once the stop is in the history, the report counts web's sleep.
    let mut hours = 0.0;
    for _ in 0..100 {
        let report = call(&engine, "GET", "/api/v1/savings", BEARER, None)
            .await
            .json();
        hours = report["total"]["hours_asleep"].as_f64().unwrap_or(0.0);
        if hours > 0.0 {
            assert_eq!(report["items"][0]["app"], "web", "{report}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(hours > 0.0, "web's sleep never counted");
    let page = call(&engine, "GET", "/", cookie, None).await.text();
    assert!(
        page.contains("<tr class=\"saving\"><td data-label=\"App\"><b>web</b>"),
        "{page}"
    );
    // 30 daily bars, today's with some sleep in it.
    let bars = page.matches("<rect").count();
    assert_eq!(bars, 30, "{page}");
    assert_eq!(page.matches("<rect class=\"none\"").count(), 29, "{page}");
    assert!(page.contains("(estimates)"));
    engine.lifecycle().shutdown().await;
}

/// An admin request over HTTP with these headers (owned, so tests can build them).
async fn send(
    admin: &TestClient,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(String, String)],
    body: &str,
) -> support::Answer {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    admin
        .send(
            method,
            host,
            path,
            &headers,
            bytes::Bytes::from(body.to_owned()),
        )
        .await
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

/// How many wakes were asked for `app`, by anyone.
fn wakes(engine: &TestEngine, app: &str) -> usize {
    engine.count(app, |kind| {
        matches!(kind, paastis::events::EventKind::WakeRequested { .. })
    })
}

/// Without a token (a loopback listener), a page of another site the operator visits gets
/// nothing done through the operator's browser: its writes are refused whatever the route
/// (Origin or Sec-Fetch-Site says where they come from), and a foreign Host (DNS rebinding)
/// reads nothing. The dashboard's own pages and the CLI work as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_other_sites_pages_neither_act_nor_read() {
    let engine = TestEngine::start(&format!(
        "defaults: {{max_idle: 15m}}\n{}",
        support::local_apps(&[("web", ""), ("docs", "")])
    ))
    .await;
    let admin = TestClient::new(engine.admin_addr);
    let port = engine.admin_addr.port();
    let own = format!("127.0.0.1:{port}");
    let own_origin = format!("http://{own}");
    let form = ("content-type", "application/x-www-form-urlencoded");
    let json = ("content-type", "application/json");

    // Writes as browsers send them from other pages: another site, an opaque origin, another
    // loopback origin (an app behind the proxy, another local server, this port by another
    // name), a sibling of this site.
    let app_origin = format!("http://web.localhost:{}", engine.addr.port());
    let other_port = format!("http://127.0.0.1:{}", port.wrapping_add(1));
    let by_name = format!("http://localhost:{port}");
    let tls = format!("https://evil.example:{port}");
    let forged: Vec<Vec<(String, String)>> = vec![
        headers(&[
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ]),
        headers(&[("origin", "http://evil.example")]),
        headers(&[("origin", "null")]),
        headers(&[("origin", &app_origin)]),
        headers(&[("origin", &other_port)]),
        headers(&[("origin", &by_name)]),
        headers(&[("origin", &tls)]),
        headers(&[("sec-fetch-site", "cross-site")]),
        headers(&[("sec-fetch-site", "same-site")]),
        headers(&[("origin", &own_origin), ("origin", "http://evil.example")]),
    ];
    let writes = [
        ("POST", "/api/v1/apps/local/web/start", json, "{}"),
        ("PUT", "/api/v1/apps/local/docs/pin", json, "{}"),
        ("POST", "/dashboard/apps/local/web/start", form, "start="),
        ("POST", "/dashboard/apps/local/docs/pin", form, "pin="),
        ("POST", "/api/v1/spaces", json, "{}"),
        ("DELETE", "/api/v1/apps/local/docs/pin", json, ""),
    ];
    for (method, path, content_type, body) in writes {
        for forged in &forged {
            let mut all = forged.clone();
            all.extend(headers(&[content_type]));
            let answer = send(&admin, method, &own, path, &all, body).await;
            assert_eq!(answer.status, 403, "{method} {path} with {forged:?}");
            assert_eq!(
                answer.json()["error"]["code"],
                "cross_site",
                "{method} {path} with {forged:?}"
            );
        }
    }
    // A foreign Host: what a page gets after DNS rebinding. Nothing read, nothing done.
    for host in [
        "evil.example".to_owned(),
        format!("evil.example:{port}"),
        format!("localhost.evil.example:{port}"),
        format!("127.0.0.1.nip.io:{port}"),
        format!("0.0.0.0:{port}"),
        format!("localhost.:{port}"),
    ] {
        for path in ["/api/v1/events", "/api/v1/apps", "/", "/metrics", "/nope"] {
            let answer = send(&admin, "GET", &host, path, &[], "").await;
            assert_eq!(answer.status, 403, "{host}{path}");
            assert_eq!(answer.json()["error"]["code"], "forbidden_host");
            assert!(!answer.text().contains("docs"), "{}", answer.text());
        }
        let answer = send(
            &admin,
            "POST",
            &host,
            "/api/v1/apps/local/web/start",
            &[],
            "",
        )
        .await;
        assert_eq!(answer.status, 403, "{host}");
    }
    assert_eq!(engine.state("web"), State::Asleep);
    assert_eq!(engine.state("docs"), State::Asleep);
    assert_eq!(wakes(&engine, "web") + wakes(&engine, "docs"), 0);
    assert!(engine.app("docs").pinned_until_ms().is_none());

    // Loopback names read as before.
    for host in [
        own.clone(),
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
        format!("admin.localhost:{port}"),
        format!("[::1]:{port}"),
        "localhost".to_owned(),
    ] {
        let answer = send(&admin, "GET", &host, "/api/v1/events", &[], "").await;
        assert_eq!(answer.status, 200, "{host}: {}", answer.text());
    }
    // The dashboard's own form, as a browser sends it from the page: done.
    let page = send(&admin, "GET", &own, "/", &[], "").await;
    assert_eq!(page.status, 200);
    assert!(
        page.text()
            .contains(r#"action="/dashboard/apps/local/web/start""#)
    );
    let answer = send(
        &admin,
        "POST",
        &own,
        "/dashboard/apps/local/web/start",
        &headers(&[
            ("origin", &own_origin),
            ("sec-fetch-site", "same-origin"),
            form,
        ]),
        "start=",
    )
    .await;
    assert_eq!(answer.status, 303, "{}", answer.text());
    engine
        .wait_state("web", State::Awake, Duration::from_secs(20))
        .await;
    // The CLI (no Origin, its own Host) stops it.
    let url = format!("http://{own}");
    let output = tokio::time::timeout(
        Duration::from_secs(20),
        support::paastis()
            .args(["apps", "stop", "web", "--api-url", &url])
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .expect("the CLI finishes")
    .expect("run paastis");
    let outcome = support::Outcome::from(output);
    assert_eq!(outcome.code, Some(0), "{outcome:?}");
    engine
        .wait_state("web", State::Asleep, Duration::from_secs(20))
        .await;
    engine.stop().await;
}

/// With a token, the dashboard signed in by its cookie acts only on forms that carry the
/// session's form token: a page of the same site (which the SameSite cookie goes with) or
/// any other cannot make one. A bearer token needs none; the API is as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboards_forms_need_the_sessions_form_token() {
    let engine = TestEngine::start(&config("15m")).await;
    let admin = TestClient::new(engine.admin_addr);
    let host = format!("admin.localhost:{}", engine.admin_addr.port());
    let form = ("content-type", "application/x-www-form-urlencoded");
    let login = send(
        &admin,
        "POST",
        &host,
        "/login",
        &headers(&[form]),
        &format!("token={TOKEN}"),
    )
    .await;
    assert_eq!(login.status, 303, "{}", login.text());
    let set = login.headers["set-cookie"].to_str().expect("cookie");
    let cookie = set.split(';').next().expect("cookie").to_owned();
    assert_eq!(cookie, format!("paastis_token={TOKEN}"));

    // The page: each form carries the token, which is not the session's token.
    let page = send(
        &admin,
        "GET",
        &host,
        "/",
        &headers(&[("cookie", &cookie)]),
        "",
    )
    .await
    .text();
    let forms = page.matches("<form ").count();
    assert_eq!(
        forms,
        1 + 3 * 2,
        "sign out, and two buttons per app: {page}"
    );
    assert_eq!(page.matches(r#"name="form_token""#).count(), forms);
    let token = page
        .split(r#"name="form_token" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a form token")
        .to_owned();
    assert!(
        !page.contains(TOKEN),
        "the session's token is not in the page"
    );
    assert!(token.len() >= 32, "{token}");

    // Forged: no token, a wrong one, or the right one from a page of the same site or of
    // another (the browser says so). Nothing done.
    let forged = [
        ("start=".to_owned(), None),
        ("start=&form_token=".to_owned(), None),
        (format!("start=&form_token={}x", token), None),
        (
            format!("start=&form_token={}", &token[..token.len() - 1]),
            None,
        ),
        ("start=&form_token=paastis".to_owned(), None),
        (format!("start=&form_token={token}"), Some("same-site")),
        (format!("start=&form_token={token}"), Some("cross-site")),
    ];
    for (body, site) in &forged {
        let mut sent = headers(&[("cookie", &cookie), form]);
        if let Some(site) = site {
            sent.extend(headers(&[("sec-fetch-site", site)]));
        }
        let answer = send(
            &admin,
            "POST",
            &host,
            "/dashboard/apps/local/web/start",
            &sent,
            body,
        )
        .await;
        assert_eq!(answer.status, 403, "{body} {site:?}: {}", answer.text());
        let code = answer.json()["error"]["code"].clone();
        let expected = if site.is_some() {
            "cross_site"
        } else {
            "bad_form_token"
        };
        assert_eq!(code, expected, "{body} {site:?}");
    }
    let answer = send(
        &admin,
        "POST",
        &host,
        "/dashboard/apps/local/web/start",
        &headers(&[("cookie", &cookie), form]),
        "",
    )
    .await;
    assert_eq!(answer.status, 403, "a POST without a body");
    let answer = send(
        &admin,
        "POST",
        &host,
        "/logout",
        &headers(&[("cookie", &cookie), form]),
        "",
    )
    .await;
    assert_eq!(answer.status, 403, "sign out without the form token");
    let answer = send(
        &admin,
        "POST",
        &host,
        "/login",
        &headers(&[form, ("sec-fetch-site", "same-site")]),
        &format!("token={TOKEN}"),
    )
    .await;
    assert_eq!(answer.status, 403, "signed in by a page of the same site");
    assert_eq!(engine.state("web"), State::Asleep);
    assert_eq!(wakes(&engine, "web"), 0);

    // The page's own form: done.
    let answer = send(
        &admin,
        "POST",
        &host,
        "/dashboard/apps/local/web/start",
        &headers(&[("cookie", &cookie), form, ("sec-fetch-site", "same-origin")]),
        &format!("start=&form_token={token}"),
    )
    .await;
    assert_eq!(answer.status, 303, "{}", answer.text());
    assert_eq!(answer.headers["location"], "/");
    engine
        .wait_state("web", State::Awake, Duration::from_secs(20))
        .await;
    // A bearer token, which no page can make a browser send, needs no form token.
    let answer = send(
        &admin,
        "POST",
        &host,
        "/dashboard/apps/local/web/stop",
        &headers(&[("authorization", &format!("Bearer {TOKEN}")), form]),
        "stop=",
    )
    .await;
    assert_eq!(answer.status, 303, "{}", answer.text());
    engine
        .wait_state("web", State::Asleep, Duration::from_secs(20))
        .await;
    // Signing out, from the page.
    let answer = send(
        &admin,
        "POST",
        &host,
        "/logout",
        &headers(&[("cookie", &cookie), form]),
        &format!("form_token={token}"),
    )
    .await;
    assert_eq!(answer.status, 303);
    assert!(
        answer.headers["set-cookie"]
            .to_str()
            .is_ok_and(|c| c.contains("Max-Age=0"))
    );
    engine.stop().await;
}
