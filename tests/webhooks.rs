//! Webhooks, black-box: the whole engine on 127.0.0.1:0 with real `process` apps, and real
//! local HTTP receivers: one that fails then recovers (delivered after retries, attempts
//! recorded), one that holds its deliveries (the wake is not delayed), one that verifies
//! the signature and its timestamp; Slack and Discord bodies; event kinds filtered; a
//! rule's webhooks for its apps only; a hosted space's internal URL refused; secrets kept
//! out of the API, the logs and Debug output.
//!
//! Nothing here is timed: each wait is for a condition, with a generous bound that only
//! turns a hang into a failure.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{TempDir, TestClient, TestEngine, local_apps};

const TOKEN: &str = "webhooks-admin-Secret-5512";
const SECRET: &str = "whsec-Signing-Secret-0042";
/// Part of a receiver's path: a credential, as chat services put in their URLs.
const PATH_TOKEN: &str = "T0KEN-in-the-path-9931";

/// The longest any one wait may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// Waits until `check` holds; panics with `what` otherwise.
async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if check().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: never");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// What a receiver does with a delivery.
#[derive(Clone)]
enum Behaviour {
    /// Answers 500 to the first `n` deliveries, then 200.
    FailFirst(usize),
    /// Holds every delivery until `release` is true, then answers 200.
    Hold(tokio::sync::watch::Receiver<bool>),
    /// Answers 200 when the signature (with this secret) and its timestamp hold, else 401.
    Verify(&'static str),
    /// Answers 200, or 500 when set.
    Always(u16),
}

/// One delivery as a receiver got it.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Value,
    answered: Option<u16>,
}

#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(behaviour: Behaviour) -> Receiver {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let app = axum::Router::new()
            .route(
                "/{*path}",
                axum::routing::post(
                    |State((behaviour, got)): State<(Behaviour, Arc<Mutex<Vec<Received>>>)>,
                     headers: HeaderMap,
                     body: Bytes| async move {
                        let index = {
                            let mut got = got.lock().expect("lock");
                            got.push(Received {
                                headers: headers.clone(),
                                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                                answered: None,
                            });
                            got.len() - 1
                        };
                        let status = match behaviour {
                            Behaviour::FailFirst(n) if index < n => 500,
                            Behaviour::FailFirst(_) => 200,
                            Behaviour::Hold(mut release) => {
                                let _ = release.wait_for(|released| *released).await;
                                200
                            }
                            Behaviour::Verify(secret) => {
                                if verify(secret, &headers, &body) {
                                    200
                                } else {
                                    401
                                }
                            }
                            Behaviour::Always(status) => status,
                        };
                        got.lock().expect("lock")[index].answered = Some(status);
                        StatusCode::from_u16(status).expect("status")
                    },
                ),
            )
            .with_state((behaviour, Arc::clone(&got)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}/hooks/{PATH_TOKEN}"),
            got,
        }
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }
}

/// HMAC-SHA256, written here from RFC 2104 (independent of the engine's).
fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let inner = Sha256::new()
        .chain_update(block.map(|b| b ^ 0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(block.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// What a receiver does: the `Paastis-Signature` header is the HMAC of `<t>.<body>`, and
/// `t` is within 5 minutes of now.
fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(header) = headers
        .get("paastis-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<u64>().ok(),
            Some(("v1", value)) => v1 = Some(value.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    if now.abs_diff(t) > 300 {
        return false;
    }
    let mut message = format!("{t}.").into_bytes();
    message.extend_from_slice(body);
    let expected: String = hmac(secret.as_bytes(), &message)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    expected == v1
}

/// A bodiless request to the admin listener with the admin token.
async fn admin_send(engine: &TestEngine, method: &str, path: &str) -> support::Answer {
    TestClient::new(engine.admin_addr)
        .send(
            method,
            "localhost",
            path,
            &[("authorization", &format!("Bearer {TOKEN}"))],
            Bytes::new(),
        )
        .await
}

/// `GET` on the admin API with the admin token.
async fn admin_get(engine: &TestEngine, path: &str) -> (u16, Value) {
    let answer = admin_send(engine, "GET", path).await;
    (
        answer.status.as_u16(),
        serde_json::from_slice(&answer.body).unwrap_or(Value::Null),
    )
}

/// A webhook's deliveries, newest first.
async fn deliveries(engine: &TestEngine, id: &str) -> Vec<Value> {
    let (status, body) = admin_get(engine, &format!("/api/v1/webhooks/{id}/deliveries")).await;
    assert_eq!(status, 200, "{body}");
    body["deliveries"].as_array().cloned().unwrap_or_default()
}

fn config(webhooks: &str, apps: &[(&str, &str)]) -> String {
    format!(
        "admin: {{token: {TOKEN}}}\nwebhooks:\n{webhooks}\n{}",
        local_apps(apps)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_the_delivery_after_retries_and_attempts_are_recorded() {
    let receiver = Receiver::start(Behaviour::FailFirst(2)).await;
    let engine = TestEngine::start(&config(
        &format!(
            "  - {{id: ops, url: '{}', events: [started], retry_for: 1m}}",
            receiver.url
        ),
        &[("web", "")],
    ))
    .await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("web.localhost", "/").await.status, 200);
    until("three attempts reach the receiver", async || {
        receiver.got().len() >= 3
    })
    .await;
    until("the delivery is recorded as delivered", async || {
        deliveries(&engine, "ops")
            .await
            .first()
            .is_some_and(|d| d["status"] == "delivered")
    })
    .await;
    let got = receiver.got();
    assert_eq!(got.len(), 3, "one delivery, three attempts: {got:?}");
    let ids: Vec<_> = got
        .iter()
        .map(|r| r.headers["paastis-delivery"].clone())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "same delivery id: {ids:?}"
    );
    assert_eq!(got[2].headers["paastis-event"], "started");
    assert_eq!(got[2].body["kind"], "started");
    assert_eq!(got[2].body["app"], "web");
    assert_eq!(got[2].body["provider"], "local");
    assert!(
        got[2].headers.get("paastis-signature").is_none(),
        "no secret, no signature"
    );
    let delivery = deliveries(&engine, "ops").await.remove(0);
    assert_eq!(delivery["attempts"], 3, "{delivery}");
    assert_eq!(delivery["response_status"], 200, "{delivery}");
    assert_eq!(
        delivery["last_error"], "the receiver answered 500",
        "{delivery}"
    );
    assert_eq!(delivery["kind"], "started");
    assert_eq!(
        delivery["id"].as_str(),
        ids[0].to_str().ok(),
        "the API shows the header's id"
    );
    let (_, list) = admin_get(&engine, "/api/v1/webhooks").await;
    assert_eq!(list["webhooks"][0]["delivered"], 1, "{list}");
    let metrics = TestClient::new(engine.admin_addr)
        .get("localhost", "/metrics")
        .await
        .text();
    assert!(
        metrics.contains("paastis_webhook_deliveries_total{outcome=\"delivered\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("paastis_webhook_deliveries_total{outcome=\"retried\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("paastis_webhook_dropped_total 0"),
        "{metrics}"
    );
    // The dashboard too (no script needed): the webhook, where it sends (its origin only),
    // its counts, and its delivery in a fold.
    let page = admin_send(&engine, "GET", "/").await;
    assert_eq!(page.status, 200);
    let html = page.text();
    let section = html
        .split_once("<h2>Webhooks</h2>")
        .and_then(|(_, rest)| rest.split_once("</table>"))
        .map(|(section, _)| section)
        .unwrap_or_else(|| panic!("no webhooks section: {html}"));
    let origin = receiver.url.split("/hooks/").next().unwrap_or_default();
    for shown in [
        "id=\"webhook-ops\"",
        &format!("<code>{origin}</code>"),
        "<td data-label=\"Events\">started</td>",
        "<td data-label=\"Delivered\">1</td>",
        "<td data-label=\"Failed\">0</td>",
        "Latest deliveries (1)",
        "<b>delivered</b> started web",
        "3 attempts, answered 200: the receiver answered 500",
    ] {
        assert!(section.contains(shown), "{shown}: {section}");
    }
    assert!(!html.contains(PATH_TOKEN), "{html}");
    // The CLI shows the same: the list with its counts, then the webhook's deliveries.
    let url = format!("http://{}", engine.admin_addr);
    let listed = support::paastis()
        .args(["webhooks", "--api-url", &url, "--token", TOKEN])
        .output()
        .await
        .expect("run paastis webhooks");
    let table = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.status.success(), "{table}");
    let line = table
        .lines()
        .find(|line| line.starts_with("ops "))
        .unwrap_or_else(|| panic!("no ops line in {table}"));
    assert!(line.contains("started") && line.contains(" no "), "{line}");
    assert!(!table.contains(PATH_TOKEN), "{table}");
    let shown = support::paastis()
        .args(["webhooks", "ops", "--api-url", &url, "--token", TOKEN])
        .output()
        .await
        .expect("run paastis webhooks ops");
    let table = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(shown.status.success(), "{table}");
    assert!(
        table
            .lines()
            .any(|line| line.contains("started") && line.contains("delivered")),
        "{table}"
    );
    let missing = support::paastis()
        .args(["webhooks", "nope", "--api-url", &url, "--token", TOKEN])
        .output()
        .await
        .expect("run paastis webhooks nope");
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no webhook `nope`"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_never_delays_a_wake() {
    let (release, held) = tokio::sync::watch::channel(false);
    let receiver = Receiver::start(Behaviour::Hold(held)).await;
    let engine = TestEngine::start(&config(
        &format!(
            "  - {{id: slow, url: '{}', events: [wake_requested, started]}}",
            receiver.url
        ),
        &[("web", "")],
    ))
    .await;
    let client = TestClient::new(engine.addr);
    let wake = tokio::spawn({
        let client = client.clone();
        async move { client.get("web.localhost", "/").await.status }
    });
    until("the receiver holds the first delivery", async || {
        !receiver.got().is_empty()
    })
    .await;
    let status = tokio::time::timeout(PATIENCE, wake)
        .await
        .expect("the wake completes")
        .expect("task");
    assert_eq!(status, 200);
    let got = receiver.got();
    assert_eq!(got[0].body["kind"], "wake_requested");
    assert_eq!(
        got[0].answered, None,
        "the app was served while the receiver still held the delivery"
    );
    until("the next delivery waits its turn", async || {
        deliveries(&engine, "slow")
            .await
            .iter()
            .any(|d| d["kind"] == "started" && d["status"] == "queued")
    })
    .await;
    assert_eq!(receiver.got().len(), 1, "one at a time");
    release.send(true).expect("release");
    until("both deliveries are made", async || {
        let list = deliveries(&engine, "slow").await;
        list.len() == 2 && list.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_verifies_the_signature_and_its_timestamp() {
    let receiver = Receiver::start(Behaviour::Verify(SECRET)).await;
    let forged = Receiver::start(Behaviour::Verify("not-the-secret")).await;
    let engine = TestEngine::start(&config(
        &format!(
            "  - {{id: signed, url: '{}', events: [started], secret: {SECRET}}}\n  \
             - {{id: forged, url: '{}', events: [started], secret: {SECRET}, retry_for: 0s}}",
            receiver.url, forged.url
        ),
        &[("web", "")],
    ))
    .await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("web.localhost", "/").await.status, 200);
    until("the signed delivery is accepted", async || {
        receiver.got().iter().any(|r| r.answered == Some(200))
    })
    .await;
    let got = receiver.got();
    assert_eq!(got.len(), 1, "accepted at the first attempt: {got:?}");
    assert_eq!(got[0].body["kind"], "started");
    until("a receiver with another secret refuses it", async || {
        forged.got().iter().any(|r| r.answered == Some(401))
    })
    .await;
    until(
        "the refused delivery is given up (retry_for: 0s)",
        async || {
            deliveries(&engine, "forged")
                .await
                .first()
                .is_some_and(|d| d["status"] == "failed")
        },
    )
    .await;
    let failed = deliveries(&engine, "forged").await.remove(0);
    assert_eq!(failed["response_status"], 401, "{failed}");
    assert_eq!(failed["attempts"], 1, "{failed}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_discord_get_sentences_of_the_kinds_they_asked_for() {
    let slack = Receiver::start(Behaviour::Always(200)).await;
    let discord = Receiver::start(Behaviour::Always(200)).await;
    let engine = TestEngine::start(&config(
        &format!(
            "  - {{id: slack, url: '{}', events: [started], format: slack}}\n  \
             - {{id: discord, url: '{}', events: [stopped], format: discord}}",
            slack.url, discord.url
        ),
        &[("web", "")],
    ))
    .await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("web.localhost", "/").await.status, 200);
    let stop = admin_send(&engine, "POST", "/api/v1/apps/local/web/stop").await;
    assert!(stop.status.is_success(), "{}", stop.text());
    until("discord hears of the stop", async || {
        !discord.got().is_empty()
    })
    .await;
    until("slack hears of the start", async || !slack.got().is_empty()).await;
    // Both webhooks follow the same events in order: once discord has the stop, every
    // earlier event was handed to slack too (and filtered out unless a start).
    let slack_got = slack.got();
    assert_eq!(slack_got.len(), 1, "{slack_got:?}");
    let text = slack_got[0].body["text"].as_str().expect("text");
    assert!(text.starts_with("App web (local) started in "), "{text}");
    assert_eq!(
        slack_got[0].body.as_object().map(|o| o.len()),
        Some(1),
        "only text"
    );
    let discord_got = discord.got();
    assert_eq!(discord_got.len(), 1, "{discord_got:?}");
    assert_eq!(
        discord_got[0].body,
        json!({"content": "App web (local) was stopped."})
    );
    let kinds: Vec<Value> = deliveries(&engine, "slack")
        .await
        .iter()
        .map(|d| d["kind"].clone())
        .collect();
    assert_eq!(kinds, vec![json!("started")]);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_limit_tells_of_a_wake_the_plan_refused_once_however_many_requests() {
    let receiver = Receiver::start(Behaviour::Always(200)).await;
    let engine = TestEngine::start(&format!(
        "plan: {{running_apps_per_provider: 1}}
{}",
        config(
            &format!(
                "  - {{id: limits, url: '{}', events: [plan_limit], format: slack}}",
                receiver.url
            ),
            &[("web", ""), ("api", "")],
        )
    ))
    .await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("web.localhost", "/").await.status, 200);
    // Refused, three times over: one event, one delivery.
    for _ in 0..3 {
        assert_eq!(client.get("api.localhost", "/").await.status, 429);
    }
    until("the receiver hears of the refusal", async || {
        !receiver.got().is_empty()
    })
    .await;
    assert_eq!(
        engine.count("api", |kind| matches!(
            kind,
            paastis::events::EventKind::WakeRefused { .. }
        )),
        1
    );
    let text = receiver.got()[0].body["text"]
        .as_str()
        .expect("text")
        .to_owned();
    assert!(
        text.starts_with("App api (local) was not woken: the plan ") && text.contains("allows 1"),
        "{text}"
    );
    // Whatever else happened (the start of web) was not sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.got().len(), 1, "{:?}", receiver.got());
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_s_webhooks_get_the_events_of_its_apps_only() {
    let everything = Receiver::start(Behaviour::Always(200)).await;
    let api_only = Receiver::start(Behaviour::Always(200)).await;
    let yaml = format!(
        "{}rules:\n  - pattern: 'ap.'\n    webhooks: [{{id: api-only, url: '{}', events: [started]}}]\n",
        config(
            &format!(
                "  - {{id: all, url: '{}', events: [started]}}",
                everything.url
            ),
            &[("web", ""), ("api", "")]
        ),
        api_only.url
    );
    let engine = TestEngine::start(&yaml).await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("web.localhost", "/").await.status, 200);
    assert_eq!(client.get("api.localhost", "/").await.status, 200);
    until("the rule's webhook hears of api", async || {
        !api_only.got().is_empty()
    })
    .await;
    until("the space's webhook hears of both", async || {
        everything.got().len() == 2
    })
    .await;
    // web started first: its event was handed to the rule's webhook before api's.
    let got = api_only.got();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body["app"], "api");
    let (_, list) = admin_get(&engine, "/api/v1/webhooks").await;
    let rule_hook = list["webhooks"]
        .as_array()
        .and_then(|l| l.iter().find(|w| w["id"] == "api-only"))
        .cloned()
        .expect("listed");
    assert_eq!(rule_hook["rule"], "ap.", "{list}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_webhook_is_404_and_a_space_token_sees_its_own_space() {
    let receiver = Receiver::start(Behaviour::Always(200)).await;
    let acme = "acme-webhooks-token-0123456789";
    let yaml = format!(
        "{}spaces:\n  - id: acme\n    domains: [acme.test]\n    tokens: [{acme}]\n    webhooks: [{{id: acme-ops, url: '{}'}}]\n",
        config(
            &format!("  - {{id: ops, url: '{}'}}", receiver.url),
            &[("web", "")]
        ),
        receiver.url
    );
    let engine = TestEngine::start(&yaml).await;
    let (status, body) = admin_get(&engine, "/api/v1/webhooks/nope/deliveries").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let answer = TestClient::new(engine.admin_addr)
        .send(
            "GET",
            "localhost",
            "/api/v1/webhooks",
            &[("authorization", &format!("Bearer {acme}"))],
            Bytes::new(),
        )
        .await;
    let list: Value = serde_json::from_slice(&answer.body).expect("json");
    let ids: Vec<&Value> = list["webhooks"]
        .as_array()
        .expect("list")
        .iter()
        .map(|w| &w["id"])
        .collect();
    assert_eq!(ids, vec![&json!("acme-ops")], "{list}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hosted_space_may_not_send_webhooks_to_internal_addresses() {
    let key = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        (0..32u8).collect::<Vec<u8>>(),
    );
    let env = HashMap::from([("PAASTIS_MASTER_KEY".to_owned(), key)]);
    let dir = TempDir::new("webhooks-hosted");
    let database = dir.path("paastis.db");
    let yaml = format!(
        "admin: {{token: {TOKEN}}}\ndatabase: {{url: 'sqlite://{}'}}\nhosted: {{sync_every: 1s}}\n",
        database.display()
    );
    let engine = TestEngine::start_with_env(&yaml, &env).await;
    let create = |document: Value| {
        let engine = &engine;
        async move {
            let answer = TestClient::new(engine.admin_addr)
                .send(
                    "POST",
                    "localhost",
                    "/api/v1/spaces",
                    &[
                        ("authorization", &format!("Bearer {TOKEN}")),
                        ("content-type", "application/json"),
                    ],
                    Bytes::from(document.to_string()),
                )
                .await;
            (
                answer.status.as_u16(),
                serde_json::from_slice::<Value>(&answer.body).unwrap_or(Value::Null),
            )
        }
    };
    let (status, refused) = create(json!({
        "id": "acme", "domains": ["acme.test"],
        "webhooks": [
            {"id": "a", "url": "http://127.0.0.1:9/hook"},
            {"id": "b", "url": "http://169.254.169.254/latest/meta-data"}
        ]
    }))
    .await;
    assert_eq!(status, 422, "{refused}");
    let errors = refused["error"]["errors"].as_array().expect("errors");
    let paths: Vec<&Value> = errors.iter().map(|e| &e["path"]).collect();
    assert_eq!(
        paths,
        vec![&json!("webhooks[0].url"), &json!("webhooks[1].url")]
    );
    let message = errors[0]["message"].as_str().expect("message");
    assert!(
        message.contains("127.0.0.1 is an internal address"),
        "{message}"
    );
    // A public URL is taken; the document shows neither its secret nor its path.
    let (status, created) = create(json!({
        "id": "acme", "domains": ["acme.test"],
        "webhooks": [{"id": "a", "url": format!("https://hooks.example.com/{PATH_TOKEN}"), "secret": SECRET}]
    }))
    .await;
    assert_eq!(status, 201, "{created}");
    let (status, shown) = admin_get(&engine, "/api/v1/spaces/acme").await;
    assert_eq!(status, 200, "{shown}");
    let (_, listed) = admin_get(&engine, "/api/v1/webhooks?space=acme").await;
    assert_eq!(listed["webhooks"][0]["target"], "https://hooks.example.com");
    assert_eq!(listed["webhooks"][0]["signed"], true);
    support::assert_no_secret(
        &[
            &created.to_string(),
            &shown.to_string(),
            &listed.to_string(),
        ],
        &[SECRET, PATH_TOKEN],
    );
    engine.stop().await;
    // Sealed in the database, with the providers.
    let mut stored = String::new();
    for suffix in ["", "-wal"] {
        let file = format!("{}{suffix}", database.display());
        if let Ok(bytes) = std::fs::read(&file) {
            stored.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    assert!(stored.contains("acme.test"), "the space is stored");
    support::assert_no_secret(&[&stored], &[SECRET, PATH_TOKEN, "hooks.example.com"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_out_of_the_api_the_logs_and_debug_output() {
    let receiver = Receiver::start(Behaviour::Always(500)).await;
    let webhooks = format!(
        "  - {{id: ops, url: '{}', secret: {SECRET}, retry_for: 1s}}",
        receiver.url
    );
    // In process: the API and Debug output.
    let engine = TestEngine::start(&config(&webhooks, &[("web", "")])).await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("web.localhost", "/").await.status, 200);
    until("a delivery is given up", async || {
        deliveries(&engine, "ops")
            .await
            .iter()
            .any(|d| d["status"] == "failed")
    })
    .await;
    let (_, list) = admin_get(&engine, "/api/v1/webhooks").await;
    assert_eq!(list["webhooks"][0]["signed"], true, "{list}");
    assert_eq!(
        list["webhooks"][0]["target"],
        receiver.url.split("/hooks").next().expect("origin"),
        "{list}"
    );
    let (_, history) = admin_get(&engine, "/api/v1/webhooks/ops/deliveries").await;
    let (_, config_view) = admin_get(&engine, "/api/v1/config").await;
    let loaded = paastis::config::load_str(
        &config(&webhooks, &[("web", "")]),
        &HashMap::new(),
        &paastis::config::Overrides::default(),
    )
    .expect("valid");
    let debug = format!(
        "{:?} {:?} {:?}",
        loaded.config,
        engine.lifecycle.webhooks(),
        engine.lifecycle.webhooks().list()[0].target
    );
    support::assert_no_secret(
        &[
            &list.to_string(),
            &history.to_string(),
            &config_view.to_string(),
            &debug,
        ],
        &[SECRET, PATH_TOKEN],
    );
    engine.stop().await;

    // The real binary: its logs, at the most verbose level.
    let dir = TempDir::new("webhooks-logs");
    let path = dir.path("paastis.yml");
    std::fs::write(
        &path,
        format!(
            "admin: {{listen: '127.0.0.1:0', token: {TOKEN}}}\nwebhooks:\n{webhooks}\n{}",
            local_apps(&[("web", "")])
        ),
    )
    .expect("write config");
    let before = receiver.got().len();
    let served = support::serve(&path, &[("RUST_LOG", "trace")]).await;
    let client = TestClient::new(served.addr);
    assert_eq!(client.get("web.localhost", "/").await.status, 200);
    until("the served engine gives a delivery up", async || {
        receiver.got().len() > before && served.logs().contains("webhook delivery given up")
    })
    .await;
    let logs = served.logs();
    support::assert_no_secret(&[&logs], &[SECRET, PATH_TOKEN]);
    let mut served = served;
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_replaces_the_webhooks_and_keeps_unchanged_ones() {
    let first = Receiver::start(Behaviour::Always(200)).await;
    let second = Receiver::start(Behaviour::Always(200)).await;
    let dir = TempDir::new("webhooks-reload");
    let path = dir.path("paastis.yml");
    let file = |url: &str| {
        format!(
            "reload: {{watch: false}}\n{}",
            config(
                &format!("  - {{id: ops, url: '{url}', events: [started, stopped]}}"),
                &[("web", "")]
            )
        )
    };
    std::fs::write(&path, file(&first.url)).expect("write");
    let engine = TestEngine::start_file(&path, &HashMap::new()).await;
    let client = TestClient::new(engine.addr);
    let post = async |path: &str| {
        let answer = admin_send(&engine, "POST", path).await;
        assert!(answer.status.is_success(), "{path}: {}", answer.text());
    };
    assert_eq!(client.get("web.localhost", "/").await.status, 200);
    until("the first receiver hears of the start", async || {
        first.got().len() == 1
    })
    .await;
    // Reloaded unchanged: the same webhook, its history kept.
    post("/api/v1/config/reload").await;
    assert_eq!(deliveries(&engine, "ops").await.len(), 1);
    std::fs::write(&path, file(&second.url)).expect("write");
    let (_, view) = {
        let answer = admin_send(&engine, "POST", "/api/v1/config/reload").await;
        assert!(answer.status.is_success(), "{}", answer.text());
        (answer.status, answer.json())
    };
    assert!(
        view.to_string().contains("\"webhooks\""),
        "a new URL is a change: {view}"
    );
    post("/api/v1/apps/local/web/stop").await;
    until("the new receiver hears of the stop", async || {
        second.got().iter().any(|r| r.body["kind"] == "stopped")
    })
    .await;
    assert_eq!(first.got().len(), 1, "the old receiver gets nothing more");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_receiver_costs_a_bounded_queue_the_oldest_dropped_and_counted() {
    let (release, held) = tokio::sync::watch::channel(false);
    let receiver = Receiver::start(Behaviour::Hold(held)).await;
    let engine = TestEngine::start(&config(
        &format!(
            "  - {{id: stuck, url: '{}', events: [wake_requested, started, stop_requested, stopped], queue: 1}}",
            receiver.url
        ),
        &[("web", "")],
    ))
    .await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("web.localhost", "/").await.status, 200);
    until("the receiver holds a delivery", async || {
        !receiver.got().is_empty()
    })
    .await;
    let stop = admin_send(&engine, "POST", "/api/v1/apps/local/web/stop").await;
    assert!(stop.status.is_success(), "{}", stop.text());
    // One held by the receiver, one waiting: of the four, two were dropped.
    until("four deliveries are accounted for", async || {
        deliveries(&engine, "stuck").await.len() == 4
            && deliveries(&engine, "stuck")
                .await
                .iter()
                .filter(|d| d["status"] == "dropped")
                .count()
                == 2
    })
    .await;
    let (_, list) = admin_get(&engine, "/api/v1/webhooks").await;
    assert_eq!(list["webhooks"][0]["dropped"], 2, "{list}");
    assert_eq!(list["webhooks"][0]["queued"], 1, "{list}");
    let metrics = TestClient::new(engine.admin_addr)
        .get("localhost", "/metrics")
        .await
        .text();
    assert!(
        metrics.contains("paastis_webhook_dropped_total 2"),
        "{metrics}"
    );
    release.send(true).expect("release");
    until("the held and the last delivery are made", async || {
        let list = deliveries(&engine, "stuck").await;
        list.iter().filter(|d| d["status"] == "delivered").count() == 2
    })
    .await;
    let kinds: Vec<Value> = receiver
        .got()
        .iter()
        .map(|r| r.body["kind"].clone())
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert_eq!(kinds[1], "stopped", "the newest is kept: {kinds:?}");
    engine.stop().await;
}
