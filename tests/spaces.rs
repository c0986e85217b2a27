//! Spaces on the whole engine: two tenants with an app of the same name each, routed by the
//! longest domain of any space; no Host trick (case, trailing dot, port, duplicated Host
//! headers, absolute-form targets, a domain inside another's host) reaches the other
//! space's app. Each space has its own plan.

mod support;

use paastis::lifecycle::State;
use support::{TestClient, TestEngine, raw_exchange, upstream_command};

fn config() -> String {
    let command = upstream_command();
    format!(
        r#"
domains: [example.test]
spaces:
  - id: acme
    domains: [acme.test, acme.example.test]
    plan: {{running_apps_per_provider: 1}}
    providers:
      - id: local
        type: process
        apps:
          - {{name: web, command: "{command}", env: {{APP_NAME: acme-web}}}}
          - {{name: api, command: "{command}", env: {{APP_NAME: acme-api}}}}
  - id: globex
    domains: [globex.test]
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
