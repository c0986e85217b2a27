//! The gate's forward-auth endpoints, black-box: where they are served (the admin listener,
//! `admin.host` on the proxy listener, `gate.listen`) and to whom, how they read the request
//! another proxy describes, route it like the proxy (spaces included), and answer each
//! case (awake, waking for a browser, held for a program, unknown, unreadable), with the
//! nginx and page variants and the keep-alive hit. Real nginx and Caddy in front are in
//! `behind_proxies.rs`.

mod support;

use std::time::Duration;

use bytes::Bytes;
use paastis::model::State;
use support::{TestClient, TestEngine, local_apps};

/// What the gate needs to be on and reachable from the tests (on loopback).
const GATE: &str = "proxy: {trusted_proxies: [127.0.0.1/32]}\ngate: {forward_auth: true}\n";

/// A gate endpoint, asked with these headers (the Host is the listener's own).
async fn ask(client: &TestClient, path: &str, headers: &[(&str, &str)]) -> support::Answer {
    client
        .send("GET", "localhost", path, headers, Bytes::new())
        .await
}

/// Forward-auth for `host` and `uri`, as Traefik and Caddy ask it.
async fn forward(
    client: &TestClient,
    path: &str,
    host: &str,
    extra: &[(&str, &str)],
) -> support::Answer {
    let mut headers = vec![
        ("x-forwarded-host", host),
        ("x-forwarded-uri", "/hello?x=1"),
    ];
    headers.extend_from_slice(extra);
    ask(client, path, &headers).await
}

#[tokio::test]
async fn an_awake_app_is_let_through_with_its_upstream_and_a_sleeping_one_is_woken() {
    let engine = TestEngine::start(&format!(
        "{GATE}defaults: {{max_idle: 30m}}\n{}",
        local_apps(&[("web", "")])
    ))
    .await;
    let admin = TestClient::new(engine.admin_addr);
    // A program: held until the app is awake, then let through.
    let answer = forward(&admin, "/forward-auth", "web.localhost", &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.headers["x-paastis-app"], "web");
    assert_eq!(answer.headers["x-paastis-provider"], "local");
    assert_eq!(answer.headers["x-paastis-space"], "default");
    let upstream = answer.headers["x-paastis-upstream"]
        .to_str()
        .expect("text")
        .to_owned();
    assert!(upstream.starts_with("http://127.0.0.1:"), "{upstream}");
    assert_eq!(engine.state("web"), State::Awake);
    // The address it gives is the app's.
    let port: u16 = upstream
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("port");
    let direct = TestClient::new(([127, 0, 0, 1], port).into())
        .get("localhost", "/")
        .await;
    assert!(
        direct.text().contains("hello from web"),
        "{}",
        direct.text()
    );
    // The hit is the app's request in /metrics.
    let metrics = admin.get("localhost", "/metrics").await.text();
    assert!(
        metrics
            .lines()
            .any(|line| line.contains("app=\"local/web\"") && line.contains("status=\"2xx\"")),
        "{metrics}"
    );
    engine.stop().await;
}

#[tokio::test]
async fn a_browser_gets_the_waiting_page_and_nginx_gets_401_with_the_real_status() {
    let engine = TestEngine::start(&format!("{GATE}{}", local_apps(&[("web", "")]))).await;
    let admin = TestClient::new(engine.admin_addr);
    let browser = [("accept", "text/html,application/xhtml+xml")];
    let page = forward(&admin, "/forward-auth", "web.localhost", &browser).await;
    assert_eq!(page.status, 503);
    assert!(page.text().contains("Waking up web"), "{}", page.text());
    assert!(page.headers.contains_key("retry-after"));
    engine
        .wait_state("web", State::Awake, Duration::from_secs(30))
        .await;
    // Through nginx's arrangement: 401 while it is not, 2xx once it is.
    let unknown = forward(&admin, "/forward-auth/nginx", "nope.localhost", &browser).await;
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.headers["x-paastis-status"], "404");
    let through = forward(&admin, "/forward-auth/nginx", "web.localhost", &browser).await;
    assert_eq!(through.status, 200);
    // error_page's target: an app that woke in between sends the browser back.
    let back = forward(&admin, "/forward-auth/page", "web.localhost", &browser).await;
    assert_eq!(back.status, 307);
    assert_eq!(back.headers["location"], "/hello?x=1");
    let missing = forward(&admin, "/forward-auth/page", "nope.localhost", &browser).await;
    assert_eq!(missing.status, 404);
    assert!(
        missing.text().contains("nope.localhost"),
        "{}",
        missing.text()
    );
    engine.stop().await;
}

#[tokio::test]
async fn the_original_url_of_nginx_and_unreadable_descriptions() {
    let engine = TestEngine::start(&format!("{GATE}{}", local_apps(&[("web", "")]))).await;
    let admin = TestClient::new(engine.admin_addr);
    let answer = ask(
        &admin,
        "/forward-auth",
        &[
            ("x-original-url", "http://web.localhost:8080/a?b=c"),
            ("x-original-method", "POST"),
        ],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let events = engine.events();
    let woken = events
        .iter()
        .find_map(|event| match &event.kind {
            paastis::events::EventKind::WakeRequested { cause } => Some(cause.to_string()),
            _ => None,
        })
        .expect("a wake event");
    assert!(woken.contains("POST /a"), "{woken}");
    assert!(!woken.contains("b=c"), "{woken}");
    for (headers, needle) in [
        (vec![], "names a host"),
        (
            vec![
                ("x-forwarded-host", "web.localhost"),
                ("x-forwarded-uri", "nope"),
            ],
            "not a path",
        ),
        (vec![("x-forwarded-host", "web..localhost")], "Host"),
    ] {
        let refused = ask(&admin, "/forward-auth", &headers).await;
        assert_eq!(refused.status, 400, "{headers:?}: {}", refused.text());
        assert!(refused.text().contains(needle), "{}", refused.text());
    }
    let bad_session = forward(&admin, "/forward-auth?session=soon", "web.localhost", &[]).await;
    assert_eq!(bad_session.status, 400);
    engine.stop().await;
}

#[tokio::test]
async fn keepalive_renews_an_awake_app_and_never_wakes_one() {
    let engine = TestEngine::start(&format!(
        "{GATE}defaults: {{max_idle: 2s}}\n{}",
        local_apps(&[("web", "")])
    ))
    .await;
    let admin = TestClient::new(engine.admin_addr);
    let asleep = forward(&admin, "/forward-auth/keepalive", "web.localhost", &[]).await;
    assert_eq!(asleep.status, 204);
    assert_eq!(asleep.headers["x-paastis-state"], "asleep");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(engine.state("web"), State::Asleep);
    let unknown = forward(&admin, "/forward-auth/keepalive", "nope.localhost", &[]).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(
        forward(&admin, "/forward-auth", "web.localhost", &[])
            .await
            .status,
        200
    );
    // Kept awake by keep-alive hits alone, well past max_idle; then it sleeps.
    for _ in 0..10 {
        let hit = forward(&admin, "/forward-auth/keepalive", "web.localhost", &[]).await;
        assert_eq!(hit.headers["x-paastis-state"], "awake");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(engine.state("web"), State::Awake);
    engine
        .wait_state("web", State::Asleep, Duration::from_secs(30))
        .await;
    engine.stop().await;
}

#[tokio::test]
async fn a_session_keeps_the_app_awake_after_the_hit() {
    let engine = TestEngine::start(&format!(
        "proxy: {{trusted_proxies: [127.0.0.1/32]}}\n\
         gate: {{forward_auth: {{session: 3s}}}}\n\
         defaults: {{max_idle: 1s}}\n{}",
        local_apps(&[("web", "")])
    ))
    .await;
    let admin = TestClient::new(engine.admin_addr);
    assert_eq!(
        forward(&admin, "/forward-auth", "web.localhost", &[])
            .await
            .status,
        200
    );
    // max_idle alone would stop it within about 2 s; the 3 s session holds it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(engine.state("web"), State::Awake);
    let shown = admin
        .get("localhost", "/api/v1/apps/local/web")
        .await
        .json();
    assert!(shown["pinned_until"].is_string(), "{shown}");
    engine
        .wait_state("web", State::Asleep, Duration::from_secs(30))
        .await;
    engine.stop().await;
}

#[tokio::test]
async fn spaces_route_by_their_domains_and_admin_host_and_gate_listen_serve_it() {
    let engine = TestEngine::start(&format!(
        "proxy: {{trusted_proxies: [127.0.0.1/32]}}\n\
         gate: {{forward_auth: true, listen: 127.0.0.1:1}}\n\
         listen: 127.0.0.1:3000\n\
         admin: {{host: paastis.localhost}}\n\
         {}\
         spaces:\n  - id: acme\n    domains: [acme.test]\n    providers:\n\
         \x20     - id: local\n        type: process\n        apps:\n\
         \x20         - {{name: shop, command: \"{}\", env: {{APP_NAME: acme-shop}}}}\n",
        local_apps(&[("web", "")]),
        support::upstream_command()
    ))
    .await;
    // The proxy listener, for the admin's host name.
    let proxy = TestClient::new(engine.addr);
    let through_proxy = proxy
        .send(
            "GET",
            "paastis.localhost",
            "/forward-auth",
            &[("x-forwarded-host", "shop.acme.test")],
            Bytes::new(),
        )
        .await;
    assert_eq!(through_proxy.status, 200, "{}", through_proxy.text());
    assert_eq!(through_proxy.headers["x-paastis-space"], "acme");
    assert_eq!(through_proxy.headers["x-paastis-app"], "shop");
    // The gate's own listener serves the gate only.
    let gate = TestClient::new(engine.gate_addr.expect("gate listener"));
    let web = forward(&gate, "/forward-auth", "web.localhost", &[]).await;
    assert_eq!(web.headers["x-paastis-space"], "default");
    assert_eq!(gate.get("localhost", "/api/v1/apps").await.status, 404);
    assert_eq!(gate.get("localhost", "/").await.status, 404);
    // Another space's app is not reachable under the default space's names.
    let elsewhere = forward(&gate, "/forward-auth", "shop.localhost", &[]).await;
    assert_eq!(elsewhere.status, 404);
    engine.stop().await;
}

#[tokio::test]
async fn only_trusted_peers_or_token_holders_may_ask_and_it_is_off_by_default() {
    let off = TestEngine::start(&local_apps(&[("web", "")])).await;
    let admin = TestClient::new(off.admin_addr);
    assert_eq!(
        forward(&admin, "/forward-auth", "web.localhost", &[])
            .await
            .status,
        404
    );
    off.stop().await;

    let token = "gate-token-a1b2c3d4e5f6";
    let engine = TestEngine::start(&format!(
        "proxy: {{trusted_proxies: [10.0.0.0/8]}}\n\
         gate: {{forward_auth: true, token: {token}}}\n{}",
        local_apps(&[("web", "")])
    ))
    .await;
    let admin = TestClient::new(engine.admin_addr);
    let refused = forward(&admin, "/forward-auth", "web.localhost", &[]).await;
    assert_eq!(refused.status, 403);
    assert!(
        refused.text().contains("trusted_proxies"),
        "{}",
        refused.text()
    );
    let wrong = forward(
        &admin,
        "/forward-auth",
        "web.localhost",
        &[("authorization", "Bearer gate-token-a1b2c3d4e5f")],
    )
    .await;
    assert_eq!(wrong.status, 403);
    let bearer = format!("Bearer {token}");
    let allowed = forward(
        &admin,
        "/forward-auth",
        "web.localhost",
        &[("authorization", bearer.as_str())],
    )
    .await;
    assert_eq!(allowed.status, 200);
    assert_eq!(engine.state("web"), State::Awake);
    for answer in [&refused, &wrong, &allowed] {
        assert!(!answer.text().contains(token));
        for value in answer.headers.values() {
            assert!(!value.to_str().unwrap_or_default().contains(token));
        }
    }
    engine.stop().await;
}

#[tokio::test]
async fn a_gate_nobody_may_call_is_a_configuration_error() {
    let errors = paastis::config::load_str(
        "gate: {forward_auth: true}\n",
        &Default::default(),
        &Default::default(),
    )
    .expect_err("refused");
    assert!(
        errors
            .to_string()
            .contains("gate: nobody may call the gate"),
        "{errors}"
    );
    let errors = paastis::config::load_str(
        "proxy: {trusted_proxies: [127.0.0.1/32]}\n\
         gate: {listen: 127.0.0.1:3002, sablier: {session_duration: 30d, refresh_frequency: 0s}}\n",
        &Default::default(),
        &Default::default(),
    )
    .expect_err("refused");
    let text = errors.to_string();
    assert!(
        text.contains("gate.sablier.session_duration: at most 7d"),
        "{text}"
    );
    assert!(text.contains("gate.sablier.refresh_frequency"), "{text}");
    let errors = paastis::config::load_str(
        "proxy: {trusted_proxies: [127.0.0.1/32]}\nadmin: {listen: off}\ngate: {sablier: true}\n",
        &Default::default(),
        &Default::default(),
    )
    .expect_err("refused");
    assert!(
        errors.to_string().contains("gate: nowhere to serve it"),
        "{errors}"
    );
}
