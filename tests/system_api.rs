//! The original engine's system API on the proxy port (`ROUTING_SYSTEM_API_ENABLED` and
//! `ROUTING_SYSTEM_API_TOKEN`, or `admin.system_api`): the original requests (same paths and
//! headers) get the original JSON fields; a wrong token gets 401 and nothing else.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use paastis::model::State;
use serde_json::Value;
use support::fakes::scalingo::FakeScalingo;
use support::redis::RedisServer;
use support::{TestClient, TestEngine};

const TOKEN: &str = "abcd-1234-EFGH-5678";

fn apps() -> String {
    support::local_apps(&[("web", "max_idle: 30m")])
}

fn original_env() -> HashMap<String, String> {
    [
        ("ROUTING_SYSTEM_API_ENABLED", "true"),
        ("ROUTING_SYSTEM_API_TOKEN", TOKEN),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

async fn system(
    client: &TestClient,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> support::Answer {
    let mut headers = vec![("PaastisProxyTarget", "system")];
    if let Some(token) = token {
        headers.push(("PaastisProxySystemApiToken", token));
    }
    client
        .send(method, "proxy.example.net", path, &headers, Bytes::new())
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_requests_get_the_original_answers() {
    let engine = TestEngine::start_with_env(&apps(), &original_env()).await;
    let client = TestClient::new(engine.addr);

    // GET /apps, as the original's README shows it.
    let answer = system(&client, "GET", "/apps", Some(TOKEN)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.headers["content-type"], "application/json");
    let apps = answer.json();
    let web = &apps.as_array().expect("an array of apps")[0];
    for field in [
        "created_at",
        "force_https",
        "git_url",
        "id",
        "last_deployed_at",
        "name",
        "region",
        "status",
        "sticky_session",
        "updated_at",
        "url",
        "is_monitored",
        "provider",
        "max_idle_time",
        "last_accessed_at",
    ] {
        assert!(web.get(field).is_some(), "field {field} missing in {web}");
    }
    assert_eq!(web["name"], "web");
    assert_eq!(web["status"], "stopped");
    assert_eq!(web["is_monitored"], true);
    assert_eq!(web["provider"], "process");
    assert_eq!(web["max_idle_time"], 30, "minutes, as the original");

    // A request for the app itself (no PaastisProxyTarget) is proxied as usual.
    let answer = client.get("web.proxy.example.net", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let apps = system(&client, "GET", "/apps", Some(TOKEN)).await.json();
    assert_eq!(apps[0]["status"], "running");

    // GET /events: what happened, oldest first.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let names = loop {
        let events = system(&client, "GET", "/events", Some(TOKEN)).await;
        assert_eq!(events.status, 200, "{}", events.text());
        let events = events.json();
        let names: Vec<String> = events
            .as_array()
            .expect("an array of events")
            .iter()
            .filter(|e| e["appKey"] == "process:local:web")
            .map(|e| e["name"].as_str().unwrap_or("").to_owned())
            .collect();
        if names.contains(&"app_restarted".to_owned()) || tokio::time::Instant::now() > deadline {
            assert!(events[0].get("occurredAt").is_some());
            break names;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(names, ["app_detected", "app_accessed", "app_restarted"]);

    // DELETE /apps: 204; the app is known again at once, as it is now.
    let answer = system(&client, "DELETE", "/apps", Some(TOKEN)).await;
    assert_eq!(answer.status, 204, "{}", answer.text());
    assert!(answer.body.is_empty());
    assert_eq!(engine.state("web"), State::Awake);
    assert_eq!(client.get("web.proxy.example.net", "/").await.status, 200);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_token_gets_401_and_nothing_else() {
    let engine = TestEngine::start_with_env(&apps(), &original_env()).await;
    let client = TestClient::new(engine.addr);
    for token in [None, Some("wrong"), Some("abcd-1234-EFGH-567"), Some("")] {
        for (method, path) in [("GET", "/apps"), ("DELETE", "/apps"), ("GET", "/events")] {
            let answer = system(&client, method, path, token).await;
            assert_eq!(answer.status, 401, "{method} {path} with {token:?}");
            let text = answer.text();
            assert!(!text.contains(TOKEN) && !text.contains("web"), "{text}");
            assert_eq!(answer.json()["error"]["code"], "unauthorized");
        }
    }
    // Nothing was cleared.
    assert!(engine.lifecycle.apps().len() == 1);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_setting_the_header_is_an_ordinary_request() {
    let engine = TestEngine::start(&apps()).await;
    let client = TestClient::new(engine.addr);
    let answer = client
        .send(
            "GET",
            "web.localhost",
            "/",
            &[
                ("PaastisProxyTarget", "system"),
                ("PaastisProxySystemApiToken", TOKEN),
            ],
            Bytes::new(),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello from web");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_apps_clears_the_registry_not_the_whole_redis() {
    let redis = RedisServer::start().await;
    let mut conn = redis.connection().await.expect("connect");
    let _: () = redis::cmd("SET")
        .arg("someone-else:key")
        .arg("keep me")
        .query_async(&mut conn)
        .await
        .expect("SET");
    let fake = FakeScalingo::start("tk-us-system-0001").await;
    fake.add_app("shop", &[("web", 1)], true).await;
    let yaml = format!(
        "registry: {{type: redis, url: '{}', prefix: sys, flush_every: 200ms}}
providers:
  - {{id: scalingo, type: scalingo, token: tk-us-system-0001, api_url: '{url}', auth_url: '{url}'}}
",
        redis.url(),
        url = fake.url
    );
    let engine = TestEngine::start_with_env(&yaml, &original_env()).await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("shop.localhost", "/").await.status, 200);
    // The shared state has the app.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !redis.keys().await.iter().any(|k| k.starts_with("sys:app:")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            redis.keys().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = system(&client, "DELETE", "/apps", Some(TOKEN)).await;
    assert_eq!(answer.status, 204, "{}", answer.text());
    assert_eq!(
        redis.get("someone-else:key").await.as_deref(),
        Some("keep me")
    );
    let keys = redis.keys().await;
    assert!(
        keys.iter()
            .all(|k| k.starts_with("sys:") || k == "someone-else:key"),
        "{keys:?}"
    );
    assert_eq!(engine.state("shop"), State::Awake, "known again, as it is");
    let apps: Value = system(&client, "GET", "/apps", Some(TOKEN)).await.json();
    assert_eq!(apps[0]["provider"], "scalingo");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_answers_for_the_default_space_only() {
    // The default space has `web`; the space `globex` (its own domain) has `ledger`.
    let yaml = format!(
        "{}spaces:
  - id: globex
    domains: [globex.test]
    providers:
      - id: gx
        type: process
        apps:
          - {{name: ledger, command: \"{}\", env: {{APP_NAME: ledger}}}}
",
        apps(),
        support::upstream_command()
    );
    let engine = TestEngine::start_with_env(&yaml, &original_env()).await;
    let client = TestClient::new(engine.addr);
    assert_eq!(
        client.get("web.localhost", "/").await.text(),
        "hello from web"
    );
    assert_eq!(
        client.get("ledger.globex.test", "/").await.text(),
        "hello from ledger"
    );
    // Both spaces' starts are in the history (the admin API, without a token, reads any).
    let admin = TestClient::new(engine.admin_addr);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for space in ["default", "globex"] {
        loop {
            let events = admin
                .get(
                    "localhost",
                    &format!("/api/v1/events?space={space}&kind=started"),
                )
                .await
                .json();
            if events["events"].as_array().is_some_and(|e| !e.is_empty()) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no start of {space} stored: {events}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // GET /events: the default space's, none of globex's.
    let events = system(&client, "GET", "/events", Some(TOKEN)).await;
    assert_eq!(events.status, 200, "{}", events.text());
    let keys: Vec<String> = events
        .json()
        .as_array()
        .expect("an array of events")
        .iter()
        .map(|e| e["appKey"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(keys.contains(&"process:local:web".to_owned()), "{keys:?}");
    assert!(
        !events.text().contains("ledger") && !events.text().contains("gx"),
        "another space's events: {keys:?}"
    );
    // GET /apps: the default space's apps; DELETE /apps leaves globex's alone.
    let apps = system(&client, "GET", "/apps", Some(TOKEN)).await;
    let names: Vec<String> = apps
        .json()
        .as_array()
        .expect("an array of apps")
        .iter()
        .filter_map(|app| app["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(names, ["web"], "{}", apps.text());
    assert_eq!(
        system(&client, "DELETE", "/apps", Some(TOKEN)).await.status,
        204
    );
    let (_, globex) = engine
        .spaces
        .iter()
        .find(|(id, _)| id == "globex")
        .expect("globex runs");
    assert_eq!(globex.apps().len(), 1);
    assert_eq!(globex.apps()[0].state(), State::Awake);
    engine.stop().await;
}
