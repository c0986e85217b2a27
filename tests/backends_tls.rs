//! The catalog's PostgreSQL and the registry's Redis over TLS, as the platforms' add-ons give
//! them: a PostgreSQL server with TLS on and a URL that does not ask for it (the engine
//! encrypts anyway), and a TLS-only Redis whose certificate no system trusts (a self-signed
//! one, as Heroku's), which `registry.tls_verify: false` accepts and the default refuses.

mod support;

use std::time::Duration;

use sqlx::Connection;
use support::redis::RedisServer;
use support::{TestClient, TestEngine, local_apps};
use tokio::time::{Instant, sleep};

/// Waits until `check` holds, or fails saying `what`.
async fn eventually<F, Fut>(within: Duration, what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        sleep(Duration::from_millis(50)).await;
    }
}

fn apps() -> String {
    local_apps(&[("web", "")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_talks_tls_to_a_postgresql_that_offers_it() {
    let database = support::postgres::database().await;
    let name = database
        .url
        .rsplit('/')
        .next()
        .expect("a database name")
        .to_owned();
    // As Heroku gives it: no `sslmode` in the URL.
    let engine = TestEngine::start(&format!(
        "database: {{url: '{url}'}}\n{apps}",
        url = database.url,
        apps = apps()
    ))
    .await;
    let mut admin = sqlx::postgres::PgConnection::connect(&format!("{}/postgres", database.server))
        .await
        .expect("the test's own connection");
    let (all, encrypted): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE s.ssl) \
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.datname = $1",
    )
    .bind(&name)
    .fetch_one(&mut admin)
    .await
    .expect("pg_stat_ssl");
    assert!(all > 0, "the engine holds connections to {name}");
    assert_eq!(
        encrypted, all,
        "every connection of the engine is encrypted"
    );
    engine.stop().await;

    // `sslmode=require` (Scalingo's "force TLS") works too.
    let engine = TestEngine::start(&format!(
        "database: {{url: '{url}?sslmode=require'}}\n{apps}",
        url = database.url,
        apps = apps()
    ))
    .await;
    assert!(
        engine
            .lifecycle
            .apps()
            .iter()
            .any(|app| &*app.key.name == "web"),
        "the engine started on the TLS-only database"
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_takes_a_self_signed_tls_redis_only_when_told_to() {
    let redis = RedisServer::start_tls().await;
    let engine = TestEngine::start(&format!(
        "registry: {{type: redis, url: '{url}', tls_verify: false, prefix: tlstest}}\n{apps}",
        url = redis.url(),
        apps = apps()
    ))
    .await;
    eventually(
        Duration::from_secs(10),
        "the registry writes to Redis",
        || async {
            redis
                .keys()
                .await
                .iter()
                .any(|key| key.starts_with("tlstest"))
        },
    )
    .await;
    assert!(engine.lifecycle.registry().health().ok);
    let answer = TestClient::new(engine.addr).get("web.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    engine.stop().await;

    // Verified (the default): the certificate is refused, the engine still serves and says
    // why the registry cannot be reached.
    let engine = TestEngine::start(&format!(
        "registry: {{type: redis, url: '{url}', prefix: verified}}\n{apps}",
        url = redis.url(),
        apps = apps()
    ))
    .await;
    let health = engine.lifecycle.registry().health();
    assert!(!health.ok, "{health:?}");
    let answer = TestClient::new(engine.addr).get("web.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(
        !redis
            .keys()
            .await
            .iter()
            .any(|key| key.starts_with("verified")),
        "nothing written through a refused certificate"
    );
    engine.stop().await;
}
