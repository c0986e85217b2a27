//! Spaces on the whole engine: two tenants with an app of the same name each, routed by the
//! longest domain of any space; no Host trick (case, trailing dot, port, duplicated Host
//! headers, absolute-form targets, a domain inside another's host) reaches the other
//! space's app. Each space has its own plan. A space's token sees and acts on its own space
//! only, on every operation of the admin API (taken from its OpenAPI document, so a new
//! endpoint cannot forget the check): another space is 404, never 403.

mod support;

use paastis::model::State;
use support::{TestClient, TestEngine, raw_exchange, upstream_command};

const ADMIN: &str = "admin-token-0123456789";
const ACME: &str = "acme-token-0123456789";
const GLOBEX: &str = "globex-token-0123456789";

fn config() -> String {
    let command = upstream_command();
    format!(
        r#"
domains: [example.test]
admin: {{token: {ADMIN}}}
spaces:
  - id: acme
    domains: [acme.test, acme.example.test]
    tokens: [{ACME}]
    plan: {{running_apps_per_provider: 1}}
    providers:
      - id: local
        type: process
        apps:
          - {{name: web, command: "{command}", env: {{APP_NAME: acme-web}}}}
          - {{name: api, command: "{command}", env: {{APP_NAME: acme-api}}}}
  - id: globex
    domains: [globex.test]
    tokens: [{GLOBEX}]
    providers:
      - id: local
        type: process
        apps:
          - {{name: web, command: "{command}", env: {{APP_NAME: globex-web}}}}
          - {{name: api, command: "{command}", env: {{APP_NAME: globex-api}}}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_domain_reaches_its_own_space_and_no_host_trick_crosses_over() {
    let engine = TestEngine::start(&config()).await;
    let client = TestClient::new(engine.addr);
    for (host, expected) in [
        ("web.acme.test", Ok("hello from acme-web")),
        ("WEB.Acme.Test", Ok("hello from acme-web")),
        ("web.acme.test.", Ok("hello from acme-web")),
        ("web.acme.test:8080", Ok("hello from acme-web")),
        ("web--local.acme.test", Ok("hello from acme-web")),
        // The longest domain decides: acme.example.test is acme's, not the default space's.
        ("web.acme.example.test", Ok("hello from acme-web")),
        ("web.globex.test", Ok("hello from globex-web")),
        // One space's domain inside a host of the other: the route key is looked up in
        // the space whose domain ends the host, and is no app there.
        ("web.acme.test.globex.test", Err(404)),
        ("web.globex.test.acme.test", Err(404)),
        // Not under any space's domain: the default space, which has no app.
        ("web.xacme.test", Err(404)),
        ("web.example.test", Err(404)),
        ("web.localhost", Err(404)),
        ("web", Err(404)),
        ("acme.test", Err(404)),
    ] {
        let answer = client.get(host, "/").await;
        match expected {
            Ok(body) => {
                assert_eq!(answer.status, 200, "{host}: {}", answer.text());
                assert_eq!(answer.text(), body, "{host}");
            }
            Err(status) => assert_eq!(answer.status, status, "{host}: {}", answer.text()),
        }
    }
    // Two Host headers, and an absolute-form target that names the other space: refused.
    for request in [
        "GET / HTTP/1.1\r\nHost: web.acme.test\r\nHost: web.globex.test\r\nConnection: close\r\n\r\n",
        "GET http://web.globex.test/ HTTP/1.1\r\nHost: web.acme.test\r\nConnection: close\r\n\r\n",
    ] {
        let answer = raw_exchange(engine.addr, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{request:?}: {answer}");
        assert!(!answer.contains("hello from"), "{answer}");
    }
    // An absolute-form target that agrees with its Host is served.
    let agreed = raw_exchange(
        engine.addr,
        b"GET http://web.globex.test/ HTTP/1.1\r\nHost: web.globex.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(agreed.contains("hello from globex-web"), "{agreed}");

    // The spaces' apps are keyed by their space, and each space's events name it.
    let (id, acme) = &engine.spaces[0];
    assert_eq!(id, "acme");
    let web = acme.app("local", "web").expect("acme's web");
    assert_eq!(&*web.key.space, "acme");
    assert_eq!(web.state(), State::Awake);
    assert!(
        acme.events()
            .recent()
            .iter()
            .all(|event| &*event.app.space == "acme")
    );

    // acme's plan allows one running app per provider; globex's has no limit.
    let refused = client.get("api.acme.test", "/").await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(client.get("api.globex.test", "/").await.status, 200);
    engine.stop().await;
}

async fn call(
    engine: &TestEngine,
    method: &str,
    path: &str,
    token: &str,
) -> (u16, serde_json::Value) {
    let answer = TestClient::new(engine.admin_addr)
        .send(
            method,
            "localhost",
            path,
            &[("authorization", &format!("Bearer {token}"))],
            Default::default(),
        )
        .await;
    let body = serde_json::from_slice(&answer.body).unwrap_or(serde_json::Value::Null);
    (answer.status.as_u16(), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_space_token_reaches_its_own_space_only_on_every_endpoint() {
    let engine = TestEngine::start(&config()).await;
    let client = TestClient::new(engine.addr);
    // Some history in both spaces.
    assert_eq!(client.get("web.acme.test", "/").await.status, 200);
    assert_eq!(client.get("web.globex.test", "/").await.status, 200);

    let doc = TestClient::new(engine.admin_addr)
        .get("localhost", "/api/openapi.json")
        .await
        .json();
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                let concrete = path
                    .replace("{provider}", "local")
                    .replace("{app}", "web")
                    .replace("{id}", "globex")
                    .replace("{token}", "tok_000000000000");
                operations.push((method.to_uppercase(), concrete));
            }
        }
    }
    assert!(operations.len() >= 16, "{operations:?}");
    for (method, path) in &operations {
        // Another space, named: 404 for its token, whatever the operation.
        let (status, body) = call(&engine, method, &format!("{path}?space=globex"), ACME).await;
        assert_eq!(status, 404, "{method} {path}?space=globex: {body}");
        assert_eq!(
            body["error"]["code"], "unknown_space",
            "{method} {path}: {body}"
        );
        // A space that does not exist: the same answer.
        let (status, _) = call(&engine, method, &format!("{path}?space=nope"), ACME).await;
        assert_eq!(status, 404, "{method} {path}?space=nope");
        // A wrong token: 401 before anything else.
        let (status, _) = call(
            &engine,
            method,
            &format!("{path}?space=acme"),
            "wrong-token-0123456789",
        )
        .await;
        assert_eq!(status, 401, "{method} {path}");
    }
    // The token's own space, by default or by name.
    for path in ["/api/v1/apps", "/api/v1/apps?space=acme"] {
        let (status, list) = call(&engine, "GET", path, ACME).await;
        assert_eq!(status, 200, "{list}");
        let names: Vec<&str> = list["apps"]
            .as_array()
            .expect("apps")
            .iter()
            .filter_map(|app| app["name"].as_str())
            .collect();
        assert_eq!(names, ["api", "web"], "{list}");
        assert!(list.to_string().contains("acme.test"), "{list}");
        assert!(!list.to_string().contains("globex"), "{list}");
    }
    let (_, events) = call(&engine, "GET", "/api/v1/events", ACME).await;
    let spaces: Vec<&str> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["space"].as_str())
        .collect();
    assert!(
        !spaces.is_empty() && spaces.iter().all(|s| *s == "acme"),
        "{events}"
    );
    let (status, shown) = call(&engine, "GET", "/api/v1/apps/local/web", GLOBEX).await;
    assert_eq!(status, 200);
    assert!(shown.to_string().contains("globex.test"), "{shown}");
    // A space token acts on its own apps.
    let (status, _) = call(&engine, "POST", "/api/v1/apps/local/web/stop", GLOBEX).await;
    assert_eq!(status, 202);
    let (_, acme_web) = call(&engine, "GET", "/api/v1/apps/local/web", ACME).await;
    assert_eq!(
        acme_web["state"], "awake",
        "globex's stop left acme's web alone"
    );

    // The admin token: the default space, or any space by name.
    let (_, default) = call(&engine, "GET", "/api/v1/apps", ADMIN).await;
    assert_eq!(
        default["apps"].as_array().map(Vec::len),
        Some(0),
        "{default}"
    );
    let (status, globex) = call(&engine, "GET", "/api/v1/apps?space=globex", ADMIN).await;
    assert_eq!(status, 200);
    assert!(globex.to_string().contains("globex.test"), "{globex}");
    let (status, _) = call(&engine, "GET", "/api/v1/apps?space=nope", ADMIN).await;
    assert_eq!(status, 404);

    // Metrics: a space's token sees its own apps only.
    let metrics = TestClient::new(engine.admin_addr)
        .send(
            "GET",
            "localhost",
            "/metrics",
            &[("authorization", &format!("Bearer {ACME}"))],
            Default::default(),
        )
        .await
        .text();
    assert!(
        metrics.contains(r#"app="acme:local/web",status="2xx"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("paastis_request_duration_seconds_count 1"),
        "{metrics}"
    );
    assert!(!metrics.contains("globex"), "{metrics}");

    // The CLI: --space for the admin token, and a space's token sees its own space.
    let url = format!("http://{}", engine.admin_addr);
    let run = |args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.extend(["--api-url".to_owned(), url.clone()]);
        support::paastis().args(all).output()
    };
    let listed = run(&[
        "apps", "list", "--json", "--token", ADMIN, "--space", "globex",
    ])
    .await
    .expect("run");
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains("globex.test"));
    let other = run(&["apps", "list", "--token", ACME, "--space", "globex"])
        .await
        .expect("run");
    assert_eq!(other.status.code(), Some(5), "another space is not found");

    // The dashboard signed in with a space's token shows that space.
    let page = TestClient::new(engine.admin_addr)
        .send(
            "GET",
            "localhost",
            "/",
            &[("cookie", &format!("paastis_token={GLOBEX}"))],
            Default::default(),
        )
        .await;
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("web.globex.test"), "{html}");
    assert!(!html.contains("acme.test"), "{html}");
    engine.stop().await;
}
