//! Hosted mode: a tenant's apps are reached at public addresses only. A space created
//! through the API whose platform lists an app at a loopback address (as a tenant could
//! arrange) gets 502, and the server there never sees a request: not the proxy's, not a
//! `health_path` probe's. The operator's own spaces, and tenants once
//! `hosted.private_upstreams` allows it, reach such addresses as before.

mod support;

use std::collections::HashMap;

use base64::Engine as _;
use serde_json::{Value, json};
use support::fakes::heroku::FakeHeroku;
use support::{TestClient, TestEngine};

const ADMIN: &str = "admin-token-tenant-0123";
const HEROKU_TOKEN: &str = "heroku-secret-tenant-77c5";

fn env() -> HashMap<String, String> {
    let key: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(13).wrapping_add(5))
        .collect();
    HashMap::from([(
        "PAASTIS_MASTER_KEY".to_owned(),
        base64::engine::general_purpose::STANDARD.encode(key),
    )])
}

async fn create_space(engine: &TestEngine, document: &Value) {
    let answer = TestClient::new(engine.admin_addr)
        .send(
            "POST",
            "localhost",
            "/api/v1/spaces",
            &[
                ("authorization", &format!("Bearer {ADMIN}")),
                ("content-type", "application/json"),
            ],
            bytes::Bytes::from(document.to_string()),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text());
}

async fn tenant_on_loopback(private_upstreams: bool, health_path: bool) -> (u16, String, usize) {
    let fake = FakeHeroku::start(HEROKU_TOKEN).await;
    // With a probe, the app sleeps: its wake probes it.
    let server = fake.add_app("shop", &[("web", 1)], !health_path).await;
    let engine = TestEngine::start_with_env(
        &format!(
            "admin: {{token: {ADMIN}}}\n\
             hosted: {{custom_api_urls: true, private_upstreams: {private_upstreams}}}\n"
        ),
        &env(),
    )
    .await;
    let mut document = json!({
        "id": "acme",
        "domains": ["acme.test"],
        "providers": [{"id": "hk", "type": "heroku", "token": HEROKU_TOKEN, "api_url": fake.url}]
    });
    if health_path {
        document["defaults"] = json!({"health_path": "/"});
    }
    create_space(&engine, &document).await;
    let answer = TestClient::new(engine.addr)
        .get("shop.acme.test", "/")
        .await;
    engine.stop().await;
    (answer.status.as_u16(), answer.text(), server.hits())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_app_at_a_loopback_address_is_refused() {
    let (status, text, hits) = tenant_on_loopback(false, false).await;
    assert_eq!(status, 502, "{text}");
    assert!(text.contains("not one this space may reach"), "{text}");
    assert!(
        !text.contains("127.0.0.1"),
        "the address is the operator's: {text}"
    );
    assert_eq!(hits, 0, "the loopback server was reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_health_probe_never_reaches_a_loopback_address() {
    let (status, text, hits) = tenant_on_loopback(false, true).await;
    // The wake's probe is refused before it connects: the wake fails (503), nothing reached.
    assert_eq!(status, 503, "{text}");
    assert_eq!(hits, 0, "the loopback server was reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_upstreams_lets_tenants_reach_them() {
    let (status, text, hits) = tenant_on_loopback(true, false).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(hits, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_operator_opened_never_carries_a_tenant_request() {
    // The operator's space and a tenant's list the same app, at the same loopback address.
    let fake = FakeHeroku::start(HEROKU_TOKEN).await;
    let server = fake.add_app("shop", &[("web", 1)], true).await;
    let engine = TestEngine::start_with_env(
        &format!(
            "admin: {{token: {ADMIN}}}\n\
             hosted: {{custom_api_urls: true, private_upstreams: false}}\n\
             proxy: {{workers: 1}}\n\
             domains: [ops.test]\n\
             providers: [{{id: hk, type: heroku, token: {HEROKU_TOKEN}, api_url: \"{}\"}}]\n",
            fake.url
        ),
        &env(),
    )
    .await;
    create_space(
        &engine,
        &json!({
            "id": "acme",
            "domains": ["acme.test"],
            "providers": [{"id": "hk", "type": "heroku", "token": HEROKU_TOKEN, "api_url": fake.url}]
        }),
    )
    .await;
    let client = TestClient::new(engine.addr);
    // The operator's request leaves its upstream connection idle in the (only) worker's pool.
    let operator = client.get("shop.ops.test", "/").await;
    assert_eq!(operator.status, 200, "{}", operator.text());
    assert_eq!(server.hits(), 1);
    // The tenant's request to that very upstream may not take it: it is refused, as
    // without it.
    let tenant = client.get("shop.acme.test", "/").await;
    assert_eq!(tenant.status, 502, "{}", tenant.text());
    assert!(
        tenant.text().contains("not one this space may reach"),
        "{}",
        tenant.text()
    );
    // And the operator's next request still reuses it.
    let again = client.get("shop.ops.test", "/").await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(
        server.hits(),
        2,
        "the loopback server saw a tenant's request"
    );
    engine.stop().await;
}
