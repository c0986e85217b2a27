//! The durable catalog through a crash: `kill -9` the engine, start it again on the same
//! database, and the remembered formations, start durations (ETAs), events and idle times
//! are all there; an app that was awake is stopped when it would have been.

mod support;

use std::time::Duration;

use nix::sys::signal::Signal;
use paastis::store::EventQuery;
use support::fakes::scalingo::FakeScalingo;
use support::{TempDir, TestClient};
use tokio::time::Instant;

const TOKEN: &str = "tk-us-catalog-0001";

fn formation(pairs: &[(&str, u32)]) -> Vec<(String, u32)> {
    pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

/// Waits until `check` holds, or panics with `what` after `within`.
async fn eventually(what: &str, within: Duration, check: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loses_no_formation_eta_event_or_idle_time_sqlite() {
    let dir = TempDir::new("catalog");
    let database = format!("sqlite://{}", dir.path("state/paastis.db").display());
    crash_and_restart(&dir, &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loses_no_formation_eta_event_or_idle_time_postgres() {
    let dir = TempDir::new("catalog-pg");
    let database = support::postgres::database().await;
    crash_and_restart(&dir, &database.url).await;
}

async fn crash_and_restart(dir: &TempDir, database: &str) {
    let fake = FakeScalingo::start(TOKEN).await;
    fake.add_app("shop", &[("web", 2), ("worker", 1)], true)
        .await;
    fake.add_app("busy", &[("web", 1)], true).await;
    let config = dir.path("paastis.yml");
    std::fs::write(
        &config,
        format!(
            r#"
defaults: {{wake_timeout: 20s}}
rules:
  - {{pattern: shop, max_idle: 1s}}
  - {{pattern: busy, max_idle: 6s}}
providers:
  - {{id: scalingo, type: scalingo, token: {TOKEN}, api_url: '{0}', auth_url: '{0}'}}
"#,
            fake.url
        ),
    )
    .expect("write config");
    let env = [("PAASTIS_DATABASE__URL", database)];

    // First run: shop sleeps (its formation remembered), wakes once (a start duration),
    // sleeps again; busy gets a request.
    let first = support::serve(&config, &env).await;
    eventually("shop asleep", Duration::from_secs(10), || {
        fake.formation("shop") == formation(&[("web", 0), ("worker", 0)])
    })
    .await;
    let client = TestClient::new(first.addr);
    let answer = client.get("shop.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        fake.formation("shop"),
        formation(&[("web", 2), ("worker", 1)])
    );
    eventually("shop asleep again", Duration::from_secs(10), || {
        fake.formation("shop") == formation(&[("web", 0), ("worker", 0)])
    })
    .await;
    assert_eq!(client.get("busy.localhost", "/").await.status, 200);
    let busy_touched = Instant::now();
    // Long enough for the activity to be written (every 2 s), then no warning at all.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let pid = first.child.id().expect("pid") as i32;
    support::signal(pid, Signal::SIGKILL);
    drop(first);

    // Second run, same database.
    let second = support::serve(&config, &env).await;
    let client = TestClient::new(second.addr);

    // busy was awake: stopped 6 s after its last request, not 6 s after the restart.
    eventually("busy stopped", Duration::from_secs(15), || {
        fake.formation("busy") == formation(&[("web", 0)])
    })
    .await;
    let stopped_after = busy_touched.elapsed();
    assert!(
        stopped_after >= Duration::from_millis(5500) && stopped_after < Duration::from_secs(9),
        "busy stopped {stopped_after:?} after its last request"
    );

    // shop: the waiting page knows how long it takes, and it wakes with its formation.
    let page = client
        .send(
            "GET",
            "shop.localhost",
            "/",
            &[("accept", "text/html")],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(page.status, 503);
    assert!(
        page.text().contains("it usually takes about"),
        "{}",
        page.text()
    );
    let answer = client.get("shop.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        fake.formation("shop"),
        formation(&[("web", 2), ("worker", 1)])
    );
    support::signal(second.child.id().expect("pid") as i32, Signal::SIGTERM);
    let mut second = second;
    let _ = tokio::time::timeout(Duration::from_secs(20), second.child.wait()).await;

    // Both runs' events are in the database, newest first.
    let store = paastis::store::open(database)
        .await
        .expect("open the database");
    let page = store
        .events(&EventQuery {
            app: Some("shop".to_owned()),
            kinds: vec!["stopped".to_owned()],
            limit: Some(100),
            ..EventQuery::default()
        })
        .await
        .expect("events");
    assert!(page.events.len() >= 2, "{:?}", page.events);
    let catalog = store.catalog(None).await.expect("catalog");
    let shop = catalog
        .iter()
        .find(|entry| &*entry.key.name == "shop")
        .expect("shop in the catalog");
    assert_eq!(shop.start_durations.len(), 2, "{shop:?}");
    assert_eq!(
        shop.formation,
        Some([("web".to_owned(), 2), ("worker".to_owned(), 1)].into())
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_or_unwritable_database_stops_the_start_with_a_clear_error() {
    let dir = TempDir::new("bad-db");
    let corrupted = dir.path("corrupted.db");
    std::fs::write(&corrupted, vec![0x5a_u8; 64 * 1024]).expect("write garbage");
    let blocker = dir.path("a-file");
    std::fs::write(&blocker, "not a folder").expect("write file");
    let config = dir.path("paastis.yml");
    std::fs::write(&config, "providers: []\n").expect("write config");
    let cases = [
        (
            format!("sqlite://{}", corrupted.display()),
            "is not a usable SQLite database",
        ),
        (
            format!("sqlite://{}/sub/paastis.db", blocker.display()),
            "cannot create/open the database",
        ),
        (
            "mysql://root:hunter2@127.0.0.1/x".to_owned(),
            "unsupported database URL",
        ),
    ];
    for (url, expected) in cases {
        let output = support::paastis()
            .args([
                "serve",
                "--config",
                &config.to_string_lossy(),
                "--listen",
                "127.0.0.1:0",
            ])
            .env("PAASTIS_DATABASE__URL", &url)
            .output()
            .await
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{url}: {stderr}");
        assert!(stderr.contains(expected), "{url}: {stderr}");
        assert!(!stderr.contains("panicked"), "{url}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{url}: {stderr}");
    }
}
