//! Hosted mode on the whole engine: spaces created, changed and deleted through the admin
//! API while the engine serves (the first request after the answer is served, no restart);
//! deleting one leaves the others untouched; a space's token sees its own space only; what a
//! tenant may not ask of the host (commands, files, other spaces' hosts) is refused with
//! every error and its path. The database holds no provider secret nor token in clear
//! (searched in the SQLite files and in a `pg_dump`), stored spaces come back after a
//! restart, and a wrong or missing master key is refused at start with a clear message.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use base64::Engine as _;
use paastis::config::{Overrides, load_str};
use serde_json::{Value, json};
use support::fakes::heroku::FakeHeroku;
use support::{TempDir, TestClient, TestEngine, upstream_command};

const ADMIN: &str = "admin-token-hosted-0123";
const GLOBEX: &str = "globex-token-0123456789";
const HEROKU_TOKEN: &str = "heroku-secret-4f1e9a2b77c5";

/// A master key (32 bytes, base64).
fn master_key(seed: u8) -> String {
    let bytes: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(31).wrapping_add(seed))
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn env(key: &str) -> HashMap<String, String> {
    HashMap::from([("PAASTIS_MASTER_KEY".to_owned(), key.to_owned())])
}

/// One config space (`globex`, a local app) and hosted mode on `database`.
fn config(database: &str) -> String {
    let command = upstream_command();
    format!(
        r#"
admin: {{token: {ADMIN}}}
database: {{url: '{database}'}}
hosted: {{custom_api_urls: true, private_upstreams: true, sync_every: 1s}}
spaces:
  - id: globex
    domains: [globex.test]
    tokens: [{GLOBEX}]
    providers:
      - id: local
        type: process
        apps:
          - {{name: web, command: "{command}", env: {{APP_NAME: globex-web}}}}
"#
    )
}

async fn call(
    engine: &TestEngine,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut headers = vec![("authorization".to_owned(), format!("Bearer {token}"))];
    let body = match body {
        Some(body) => {
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
            bytes::Bytes::from(body.to_string())
        }
        None => bytes::Bytes::new(),
    };
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let answer = TestClient::new(engine.admin_addr)
        .send(method, "localhost", path, &headers, body)
        .await;
    let json = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    (answer.status.as_u16(), json)
}

fn acme(fake: &FakeHeroku, domain: &str) -> Value {
    json!({
        "id": "acme",
        "domains": [domain],
        "plan": "free",
        "defaults": {"max_idle": "30m"},
        "providers": [{"id": "hk", "type": "heroku", "token": HEROKU_TOKEN, "api_url": fake.url}]
    })
}

/// A space `id` on `<id>.test` with the fake Heroku account.
fn heroku_space(fake: &FakeHeroku, id: &str) -> Value {
    json!({"id": id, "domains": [format!("{id}.test")],
        "providers": [{"id": "hk", "type": "heroku", "token": HEROKU_TOKEN, "api_url": fake.url}]})
}

/// Creates a space through the admin API (201); returns the answer.
async fn create(engine: &TestEngine, document: &Value) -> Value {
    let (status, created) = call(engine, "POST", "/api/v1/spaces", ADMIN, Some(document)).await;
    assert_eq!(status, 201, "{created}");
    created
}

/// Creates `acme` (on `acme.test`) through the admin API; returns its first token.
async fn create_acme(engine: &TestEngine, fake: &FakeHeroku) -> String {
    create(engine, &acme(fake, "acme.test")).await["token"]["token"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// Waits (at most 6 s) until `check` holds; panics with `what` otherwise.
async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..60 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within 6 s");
}

/// The error of an engine started on `yaml` with this master key (which must fail).
async fn refused_at_start(yaml: &str, key: &str) -> String {
    let loaded = load_str(yaml, &env(key), &Overrides::default()).expect("valid config");
    paastis::Engine::start(loaded.config)
        .await
        .expect_err("refused at start")
        .to_string()
}

fn app_names(list: &Value) -> Vec<String> {
    list["apps"]
        .as_array()
        .map(|apps| {
            apps.iter()
                .filter_map(|app| app["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spaces_created_through_the_api_serve_at_once_and_deleting_one_leaves_the_others() {
    let fake = FakeHeroku::start(HEROKU_TOKEN).await;
    fake.add_app("shop", &[("web", 1)], true).await;
    let dir = TempDir::new("hosted");
    let database = format!("sqlite://{}", dir.path("paastis.db").display());
    let key = master_key(7);
    let engine = TestEngine::start_with_env(&config(&database), &env(&key)).await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("web.globex.test", "/").await.status, 200);
    let globex_pid = client.pid("web.globex.test").await;
    assert_eq!(client.get("shop.acme.test", "/").await.status, 404);

    // Created, then served by the very next request: no restart, no retry.
    let started = Instant::now();
    let (status, created) = call(
        &engine,
        "POST",
        "/api/v1/spaces",
        ADMIN,
        Some(&acme(&fake, "acme.test")),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let answer = client.get("shop.acme.test", "/").await;
    let served_after = started.elapsed();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello from shop");
    println!("created and first request served in {served_after:?}");
    assert!(!created.to_string().contains(HEROKU_TOKEN), "{created}");
    assert_eq!(created["space"]["origin"], "api");
    assert_eq!(
        created["space"]["document"]["providers"][0]["secrets"],
        json!(["token"])
    );
    let first_token = created["token"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let first_id = created["token"]["id"].as_str().expect("id").to_owned();
    assert!(first_token.starts_with("pst_"), "{first_token}");

    // Its token: its own space only; changing spaces is the admin's.
    let (status, apps) = call(&engine, "GET", "/api/v1/apps", &first_token, None).await;
    assert_eq!(status, 200, "{apps}");
    assert_eq!(app_names(&apps), ["shop"]);
    for (method, path) in [
        ("GET", "/api/v1/apps?space=globex"),
        ("GET", "/api/v1/spaces/globex"),
        ("DELETE", "/api/v1/spaces/globex"),
        ("PATCH", "/api/v1/spaces/globex"),
        ("POST", "/api/v1/spaces/globex/tokens"),
    ] {
        let (status, body) = call(&engine, method, path, &first_token, Some(&json!({}))).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
    }
    let (status, listed) = call(&engine, "GET", "/api/v1/spaces", &first_token, None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = listed["spaces"]
        .as_array()
        .expect("spaces")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids, ["acme"], "{listed}");
    for (method, path) in [
        ("POST", "/api/v1/spaces"),
        ("DELETE", "/api/v1/spaces/acme"),
        ("PATCH", "/api/v1/spaces/acme"),
        ("POST", "/api/v1/spaces/acme/tokens"),
    ] {
        let (status, body) = call(&engine, method, path, &first_token, Some(&json!({}))).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "admin_only");
    }
    let (_, listed) = call(&engine, "GET", "/api/v1/spaces", ADMIN, None).await;
    assert_eq!(listed["hosted"], true);
    assert_eq!(
        listed["spaces"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );

    // A change applies at once; credentials left out of a provider entry are kept.
    let calls_before = fake.calls.all().len();
    let (status, changed) = call(
        &engine,
        "PATCH",
        "/api/v1/spaces/acme",
        ADMIN,
        Some(&json!({"domains": ["acme.example"],
            "providers": [{"id": "hk", "type": "heroku", "api_url": fake.url}]})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["revision"], 2);
    assert_eq!(client.get("shop.acme.example", "/").await.status, 200);
    assert_eq!(client.get("shop.acme.test", "/").await.status, 404);
    let after: Vec<u16> = fake.calls.all()[calls_before..]
        .iter()
        .map(|c| c.status)
        .collect();
    assert!(
        !after.is_empty() && after.iter().all(|s| *s == 200),
        "the kept token lists the apps: {after:?}"
    );

    // Tokens: a second one issued, the first revoked.
    let (status, second) = call(&engine, "POST", "/api/v1/spaces/acme/tokens", ADMIN, None).await;
    assert_eq!(status, 201, "{second}");
    let second_token = second["token"].as_str().expect("token").to_owned();
    let (status, _) = call(
        &engine,
        "DELETE",
        &format!("/api/v1/spaces/acme/tokens/{first_id}"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        call(&engine, "GET", "/api/v1/apps", &first_token, None)
            .await
            .0,
        401
    );
    assert_eq!(
        call(&engine, "GET", "/api/v1/apps", &second_token, None)
            .await
            .0,
        200
    );
    let (status, body) = call(
        &engine,
        "DELETE",
        "/api/v1/spaces/acme/tokens/tok_000000000000",
        ADMIN,
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_token"))
    );

    // Refusals: the id taken, config spaces, and what a tenant may not ask of the host.
    let (status, body) = call(
        &engine,
        "POST",
        "/api/v1/spaces",
        ADMIN,
        Some(&acme(&fake, "other.test")),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    for (method, path) in [
        ("PATCH", "/api/v1/spaces/globex"),
        ("DELETE", "/api/v1/spaces/globex"),
        ("POST", "/api/v1/spaces/globex/tokens"),
    ] {
        let (status, body) = call(&engine, method, path, ADMIN, Some(&json!({}))).await;
        assert_eq!(status, 409, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "from_config");
    }
    let (status, body) = call(
        &engine,
        "POST",
        "/api/v1/spaces",
        ADMIN,
        Some(&json!({
            "id": "evil",
            "domains": ["www.globex.test", "acme.example"],
            "tokens": ["0123456789abcdef0123"],
            "hooks": {"before_start": "touch /tmp/paastis-evil"},
            "rules": [{"pattern": ".*", "hooks": {"after_stop": "true"}}],
            "providers": [
                {"id": "p", "type": "process", "apps": [{"name": "x", "command": "true"}]},
                {"id": "h", "type": "heroku", "token_file": "/etc/passwd"}
            ]
        })),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_space");
    let mut paths: Vec<&str> = body["error"]["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "domains[0]",
            "domains[1]",
            "hooks",
            "providers[0].type",
            "providers[1].token_file",
            "rules[0].hooks",
            "tokens"
        ],
        "{body}"
    );
    assert!(
        !body.to_string().contains("root:"),
        "no file was read: {body}"
    );
    let (status, body) = call(
        &engine,
        "POST",
        "/api/v1/spaces",
        ADMIN,
        Some(
            &json!({"id": "bad", "domains": ["bad.test"], "plan": "free",
            "providers": [{"id": "a", "type": "heroku", "token": "t1"},
                          {"id": "b", "type": "heroku", "token": "t2"}]}),
        ),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("plan `free` allows 1"), "{body}");
    let (status, _) = call(&engine, "POST", "/api/v1/spaces", ADMIN, None).await;
    assert_eq!(status, 400);

    // Deleted: no longer routed, its token refused; globex untouched.
    let (status, _) = call(&engine, "DELETE", "/api/v1/spaces/acme", ADMIN, None).await;
    assert_eq!(status, 204);
    assert_eq!(client.get("shop.acme.example", "/").await.status, 404);
    assert_eq!(
        call(&engine, "GET", "/api/v1/apps", &second_token, None)
            .await
            .0,
        401
    );
    assert_eq!(
        call(&engine, "GET", "/api/v1/spaces/acme", ADMIN, None)
            .await
            .0,
        404
    );
    assert_eq!(
        client.get("web.globex.test", "/").await.text(),
        "hello from globex-web"
    );
    assert_eq!(
        client.pid("web.globex.test").await,
        globex_pid,
        "globex's app never restarted"
    );
    let (_, globex_apps) = call(&engine, "GET", "/api/v1/apps", GLOBEX, None).await;
    assert_eq!(app_names(&globex_apps), ["web"]);

    // Stored spaces come back after a restart.
    let initech = create(&engine, &heroku_space(&fake, "initech")).await;
    let initech_token = initech["token"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    engine.stop().await;
    let engine = TestEngine::start_with_env(&config(&database), &env(&key)).await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("shop.initech.test", "/").await.status, 200);
    assert_eq!(client.get("shop.acme.example", "/").await.status, 404);
    assert_eq!(
        call(&engine, "GET", "/api/v1/apps", &initech_token, None)
            .await
            .0,
        200
    );
    engine.stop().await;

    // The files hold no secret in clear, but do hold the spaces.
    let mut stored = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(bytes) = std::fs::read(dir.path(&format!("paastis.db{suffix}"))) {
            stored.extend(bytes);
        }
    }
    let text = String::from_utf8_lossy(&stored);
    assert!(
        text.contains("initech.test") && text.contains("v1:"),
        "the dump is real"
    );
    for secret in [
        HEROKU_TOKEN,
        &first_token,
        &second_token,
        &initech_token,
        ADMIN,
        &key,
    ] {
        assert!(!text.contains(secret), "found a secret in the SQLite files");
    }

    // A wrong key is refused at start, and says what to do; no key at all, too.
    let message = refused_at_start(&config(&database), &master_key(8)).await;
    assert!(
        message
            .contains("PAASTIS_MASTER_KEY is not the key this database's spaces were sealed with"),
        "{message}"
    );
    assert!(!message.contains(&master_key(8)) && !message.contains(&key));
    let errors =
        load_str(&config(&database), &HashMap::new(), &Overrides::default()).expect_err("no key");
    assert!(
        errors
            .to_string()
            .contains("hosted: hosted mode needs PAASTIS_MASTER_KEY"),
        "{errors}"
    );
    let errors = load_str(&config(&database), &env("c2hvcnQ="), &Overrides::default())
        .expect_err("a short key");
    assert!(errors.to_string().contains("must be 32 bytes"), "{errors}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_holds_no_secret_in_clear() {
    let fake = FakeHeroku::start(HEROKU_TOKEN).await;
    fake.add_app("shop", &[("web", 1)], true).await;
    let database = support::postgres::database().await;
    let key = master_key(11);
    let engine = TestEngine::start_with_env(&config(&database.url), &env(&key)).await;
    let token = create_acme(&engine, &fake).await;
    let (_, second) = call(&engine, "POST", "/api/v1/spaces/acme/tokens", ADMIN, None).await;
    let second = second["token"].as_str().expect("token").to_owned();
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("shop.acme.test", "/").await.status, 200);
    engine.stop().await;

    let dump = tokio::process::Command::new(support::postgres::pg_dump())
        .args(["--data-only", "--no-owner", "--dbname", &database.url])
        .output()
        .await
        .expect("pg_dump runs");
    assert!(
        dump.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(
        text.contains("acme.test") && text.contains("v1:"),
        "the dump is real"
    );
    assert!(text.contains("shop"), "the catalog is in the dump");
    for secret in [HEROKU_TOKEN, &token, &second, ADMIN, &key] {
        assert!(
            !text.contains(secret),
            "found a secret in the PostgreSQL dump"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_hosted_mode_spaces_are_listed_but_not_changed() {
    let database = "sqlite::memory:";
    let yaml = config(database).replace(
        "hosted: {custom_api_urls: true, private_upstreams: true, sync_every: 1s}\n",
        "",
    );
    let engine = TestEngine::start(&yaml).await;
    let (status, listed) = call(&engine, "GET", "/api/v1/spaces", ADMIN, None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["hosted"], false);
    let (status, globex) = call(&engine, "GET", "/api/v1/spaces/globex", ADMIN, None).await;
    assert_eq!(status, 200);
    assert_eq!(globex["origin"], "config");
    assert_eq!(globex["config_tokens"], 1);
    assert!(!globex.to_string().contains(GLOBEX), "{globex}");
    let (status, body) = call(
        &engine,
        "POST",
        "/api/v1/spaces",
        ADMIN,
        Some(&json!({"id": "acme", "domains": ["acme.test"]})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("not_hosted"))
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_custom_api_urls_providers_use_their_platform() {
    let yaml = config("sqlite::memory:").replace("custom_api_urls: true", "custom_api_urls: false");
    let engine = TestEngine::start_with_env(&yaml, &env(&master_key(3))).await;
    let (status, body) = call(
        &engine,
        "POST",
        "/api/v1/spaces",
        ADMIN,
        Some(&json!({"id": "acme", "domains": ["acme.test"],
            "providers": [{"id": "hk", "type": "heroku", "token": HEROKU_TOKEN,
                           "api_url": "http://127.0.0.1:9"}]})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["errors"][0]["path"], "providers[0].api_url");
    assert!(!body.to_string().contains(HEROKU_TOKEN));
    engine.stop().await;
}

/// An API address that answers every call 401 and keeps each call's `Authorization`.
async fn recording_api() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = std::sync::Arc::clone(&seen);
    let router = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let kept = std::sync::Arc::clone(&kept);
        async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            kept.lock().unwrap_or_else(|p| p.into_inner()).push(auth);
            (
                axum::http::StatusCode::UNAUTHORIZED,
                "{\"id\": \"unauthorized\"}",
            )
        }
    });
    (support::fakes::serve(router).await, seen)
}

/// A change of where a provider's credentials go (its `api_url`) keeps none of them: the
/// change gives them again, or is refused with the path of each one missing, and the
/// stored ones never reach the new address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_api_address_gets_no_stored_credential() {
    const NEW_TOKEN: &str = "heroku-new-secret-99d0c3";
    let fake = FakeHeroku::start(HEROKU_TOKEN).await;
    fake.add_app("shop", &[("web", 1)], true).await;
    let engine = TestEngine::start_with_env(&config("sqlite::memory:"), &env(&master_key(4))).await;
    let client = TestClient::new(engine.addr);
    create_acme(&engine, &fake).await;
    assert_eq!(client.get("shop.acme.test", "/").await.status, 200);

    // Another address, no credential: 422 naming the credential, nothing sent there.
    let (elsewhere, seen) = recording_api().await;
    let (status, body) = call(
        &engine,
        "PATCH",
        "/api/v1/spaces/acme",
        ADMIN,
        Some(&json!({"providers": [{"id": "hk", "type": "heroku", "api_url": elsewhere}]})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_space");
    assert_eq!(
        body["error"]["errors"][0]["path"], "providers[0].token",
        "{body}"
    );
    assert!(
        body["error"]["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`api_url` changed")),
        "{body}"
    );
    assert!(!body.to_string().contains(HEROKU_TOKEN));
    let sent = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(
        sent.iter().all(|auth| !auth.contains(HEROKU_TOKEN)),
        "the stored token was sent to the new address"
    );
    assert!(sent.is_empty(), "{sent:?}");
    // Nothing changed: the same revision, address and app.
    let (_, shown) = call(&engine, "GET", "/api/v1/spaces/acme", ADMIN, None).await;
    assert_eq!(shown["revision"], 1, "{shown}");
    assert_eq!(
        shown["document"]["providers"][0]["api_url"],
        fake.url.as_str()
    );
    assert_eq!(client.get("shop.acme.test", "/").await.status, 200);

    // The same change with the account's credential for the new address: applied, and
    // that one (only) is what the new address gets.
    let moved = FakeHeroku::start(NEW_TOKEN).await;
    moved.add_app("shop", &[("web", 1)], true).await;
    let (status, body) = call(
        &engine,
        "PATCH",
        "/api/v1/spaces/acme",
        ADMIN,
        Some(
            &json!({"providers": [{"id": "hk", "type": "heroku", "api_url": moved.url,
            "token": NEW_TOKEN}]}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revision"], 2);
    assert_eq!(client.get("shop.acme.test", "/").await.status, 200);
    let statuses: Vec<u16> = moved.calls.all().iter().map(|c| c.status).collect();
    assert!(
        !statuses.is_empty() && statuses.iter().all(|s| *s == 200),
        "the new address is called with the new token: {statuses:?}"
    );
    // And the address kept: a change that leaves the credential out keeps it.
    let (status, body) = call(
        &engine,
        "PATCH",
        "/api/v1/spaces/acme",
        ADMIN,
        Some(
            &json!({"providers": [{"id": "hk", "type": "heroku", "api_url": moved.url,
            "rate_limit": 100}]}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["document"]["providers"][0]["secrets"],
        json!(["token"])
    );
    engine.stop().await;
}

/// Two engines on one database: a space created through one is served by the other
/// within its `hosted.sync_every`, and its deletion reaches it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_picks_up_changes_from_the_database() {
    let fake = FakeHeroku::start(HEROKU_TOKEN).await;
    fake.add_app("shop", &[("web", 1)], true).await;
    let database = support::postgres::database().await;
    let key = master_key(5);
    let one = TestEngine::start_with_env(&config(&database.url), &env(&key)).await;
    let two = TestEngine::start_with_env(&config(&database.url), &env(&key)).await;
    let token = create_acme(&one, &fake).await;
    let other = TestClient::new(two.addr);
    until("the other instance serves the new space", async || {
        other.get("shop.acme.test", "/").await.status == 200
    })
    .await;
    assert_eq!(call(&two, "GET", "/api/v1/apps", &token, None).await.0, 200);

    // A token issued through one works on the other once synced, without rebuilding the
    // space there (a pin set on the other stays).
    let (status, _) = call(
        &two,
        "PUT",
        "/api/v1/apps/hk/shop/pin",
        &token,
        Some(&json!({})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, issued) = call(&one, "POST", "/api/v1/spaces/acme/tokens", ADMIN, None).await;
    let issued = issued["token"].as_str().expect("token").to_owned();
    until("the other instance takes the new token", async || {
        call(&two, "GET", "/api/v1/apps", &issued, None).await.0 == 200
    })
    .await;
    let (_, shop) = call(&two, "GET", "/api/v1/apps/hk/shop", &issued, None).await;
    assert_eq!(
        shop["pinned_until"], "forever",
        "not rebuilt for a token: {shop}"
    );
    let (status, _) = call(&one, "DELETE", "/api/v1/spaces/acme", ADMIN, None).await;
    assert_eq!(status, 204);
    until(
        "the other instance stops routing the deleted space",
        async || other.get("shop.acme.test", "/").await.status == 404,
    )
    .await;
    assert_eq!(call(&two, "GET", "/api/v1/apps", &token, None).await.0, 401);
    one.stop().await;
    two.stop().await;
}

/// The real binary at trace level: creating, changing and using a space (and a refused
/// document that carries a credential) logs no credential, token nor key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs() {
    let fake = FakeHeroku::start(HEROKU_TOKEN).await;
    fake.add_app("shop", &[("web", 1)], true).await;
    let dir = TempDir::new("hosted-logs");
    let path = dir.path("paastis.yml");
    std::fs::write(&path, config("sqlite::memory:")).expect("write config");
    let key = master_key(9);
    let mut served = support::serve(
        &path,
        &[("PAASTIS_MASTER_KEY", &key), ("RUST_LOG", "trace")],
    )
    .await;
    let mut admin = None;
    for _ in 0..100 {
        admin = served.logs().lines().find_map(|line| {
            let json: Value = serde_json::from_str(line).ok()?;
            json["admin_addr"].as_str().map(str::to_owned)
        });
        if admin.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let admin: std::net::SocketAddr = admin.expect("admin address logged").parse().expect("addr");
    let api = TestClient::new(admin);
    let send = |method: &'static str, path: String, token: String, body: Value| {
        let api = &api;
        async move {
            let answer = api
                .send(
                    method,
                    "localhost",
                    &path,
                    &[("authorization", &format!("Bearer {token}"))],
                    bytes::Bytes::from(body.to_string()),
                )
                .await;
            (
                answer.status.as_u16(),
                serde_json::from_slice::<Value>(&answer.body).unwrap_or(Value::Null),
            )
        }
    };
    let (status, created) = send(
        "POST",
        "/api/v1/spaces".to_owned(),
        ADMIN.to_owned(),
        acme(&fake, "acme.test"),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let token = created["token"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let (status, _) = send(
        "PATCH",
        "/api/v1/spaces/acme".to_owned(),
        ADMIN.to_owned(),
        json!({"plan": "team"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, second) = send(
        "POST",
        "/api/v1/spaces/acme/tokens".to_owned(),
        ADMIN.to_owned(),
        Value::Null,
    )
    .await;
    assert_eq!(status, 201);
    let second = second["token"].as_str().expect("token").to_owned();
    let (status, _) = send(
        "POST",
        "/api/v1/spaces".to_owned(),
        ADMIN.to_owned(),
        json!({"id": "bad", "domains": ["bad.test"],
               "providers": [{"id": "hk", "type": "heroku", "token": HEROKU_TOKEN, "api_url": 7}]}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        send("GET", "/api/v1/apps".to_owned(), token.clone(), Value::Null)
            .await
            .0,
        200
    );
    let client = TestClient::new(served.addr);
    assert_eq!(client.get("shop.acme.test", "/").await.status, 200);
    support::signal(
        served.child.id().expect("pid") as i32,
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = tokio::time::timeout(Duration::from_secs(20), served.child.wait()).await;
    let logs = served.logs();
    assert!(logs.contains("space created"), "the logs are real");
    for secret in [HEROKU_TOKEN, &token, &second, ADMIN, &key] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}

/// `paastis rekey` while an engine serves: every space sealed again under the new key, all
/// at once; the running engine keeps serving but refuses changes; a restart with the new
/// key serves every space (tokens unchanged), the old key is refused; a wrong current key
/// or no new key changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekey_seals_every_space_under_a_new_key() {
    let fake = FakeHeroku::start(HEROKU_TOKEN).await;
    fake.add_app("shop", &[("web", 1)], true).await;
    let dir = TempDir::new("hosted-rekey");
    let database = format!("sqlite://{}", dir.path("paastis.db").display());
    let path = dir.path("paastis.yml");
    std::fs::write(&path, config(&database)).expect("write config");
    let (old, new) = (master_key(21), master_key(22));
    let engine = TestEngine::start_with_env(&config(&database), &env(&old)).await;
    let token = create_acme(&engine, &fake).await;
    create(&engine, &heroku_space(&fake, "initech")).await;

    let rekey = async |current: &str, next: Option<&str>| {
        let mut command = support::paastis();
        command
            .args(["rekey", "--config", &path.to_string_lossy()])
            .env("PAASTIS_DATABASE__URL", &database)
            .env("PAASTIS_MASTER_KEY", current);
        if let Some(next) = next {
            command.env("PAASTIS_NEW_MASTER_KEY", next);
        }
        let output = command.output().await.expect("paastis rekey runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        for secret in [current, next.unwrap_or(current), HEROKU_TOKEN, ADMIN] {
            assert!(!text.contains(secret), "a secret was printed");
        }
        (output.status.code(), text)
    };
    // Nothing changes without the new key, or with a wrong current one.
    let (code, text) = rekey(&old, None).await;
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("PAASTIS_NEW_MASTER_KEY"), "{text}");
    let (code, text) = rekey(&master_key(23), Some(&new)).await;
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("is not the key this database's spaces were sealed with"),
        "{text}"
    );
    let (code, text) = rekey(&old, Some(&new)).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("2 space(s) sealed under the new key"),
        "{text}"
    );

    // The running engine serves on, and refuses changes under its old key.
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("shop.acme.test", "/").await.status, 200);
    let (status, body) = call(
        &engine,
        "PATCH",
        "/api/v1/spaces/acme",
        ADMIN,
        Some(&json!({"plan": "team"})),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.to_string().contains("master key was replaced"),
        "{body}"
    );
    engine.stop().await;

    let message = refused_at_start(&config(&database), &old).await;
    assert!(
        message.contains("PAASTIS_MASTER_KEY is not the key"),
        "{message}"
    );
    let engine = TestEngine::start_with_env(&config(&database), &env(&new)).await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("shop.acme.test", "/").await.status, 200);
    assert_eq!(client.get("shop.initech.test", "/").await.status, 200);
    assert_eq!(
        call(&engine, "GET", "/api/v1/apps", &token, None).await.0,
        200
    );
    let (status, body) = call(
        &engine,
        "PATCH",
        "/api/v1/spaces/acme",
        ADMIN,
        Some(&json!({"plan": "team"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    engine.stop().await;
}

/// With a shared Redis, other instances follow a change at once (the announcement), not at
/// their next `hosted.sync_every` (an hour here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_other_instances_follow_changes_at_once() {
    let fake = FakeHeroku::start(HEROKU_TOKEN).await;
    fake.add_app("shop", &[("web", 1)], true).await;
    let redis = support::redis::RedisServer::start().await;
    let database = support::postgres::database().await;
    let yaml = config(&database.url).replace(
        "hosted: {custom_api_urls: true, private_upstreams: true, sync_every: 1s}",
        &format!(
            "hosted: {{custom_api_urls: true, private_upstreams: true, sync_every: 1h}}\nregistry: {{type: redis, url: '{}'}}",
            redis.url()
        ),
    );
    let key = master_key(31);
    let one = TestEngine::start_with_env(&yaml, &env(&key)).await;
    let two = TestEngine::start_with_env(&yaml, &env(&key)).await;
    until("both instances reach Redis", async || {
        one.lifecycle.registry().health().ok && two.lifecycle.registry().health().ok
    })
    .await;
    let token = create_acme(&one, &fake).await;
    let other = TestClient::new(two.addr);
    until("the other instance serves the new space", async || {
        other.get("shop.acme.test", "/").await.status == 200
    })
    .await;
    assert_eq!(call(&two, "GET", "/api/v1/apps", &token, None).await.0, 200);
    let (status, _) = call(&one, "DELETE", "/api/v1/spaces/acme", ADMIN, None).await;
    assert_eq!(status, 204);
    until("the other instance forgets the deleted space", async || {
        other.get("shop.acme.test", "/").await.status == 404
    })
    .await;
    one.stop().await;
    two.stop().await;
}
