//! What the engine remembers is a memory; the platform is the truth. An app sleeps with a
//! remembered formation, the engine restarts (the formation then comes from the catalog on
//! disk), the app changes on its platform while it sleeps, and the next request still wakes it:
//! with the process types the platform has (a removed one dropped, a new one left as the
//! platform has it), at the address the platform gives, and the `started` event says what was
//! reconciled.

mod support;

use std::time::Duration;

use paastis::events::EventKind;
use paastis::model::State;
use paastis::model::{Formation, Reconciled};
use paastis::store::EventQuery;
use support::fakes::clever::{CleverCredentials, FakeClever};
use support::fakes::heroku::FakeHeroku;
use support::fakes::scalingo::FakeScalingo;
use support::{TempDir, TestClient, TestEngine};

const SCALINGO_TOKEN: &str = "tk-us-reconcile-0001";
const HEROKU_TOKEN: &str = "hrku-reconcile-0002";
const CLEVER_TOKEN: &str = "clever-reconcile-0003";

fn config(database: &str, max_idle: &str, provider: &str) -> String {
    format!(
        "defaults: {{max_idle: {max_idle}, wake_timeout: 20s}}\n\
         database: {{url: '{database}'}}\n\
         providers:\n  - {provider}\n"
    )
}

fn database(dir: &TempDir) -> String {
    format!("sqlite://{}", dir.path("paastis.db").display())
}

fn formation(pairs: &[(&str, u32)]) -> Formation {
    pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

fn amounts(pairs: &[(&str, u32)]) -> Vec<(String, u32)> {
    pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

/// `worker` dropped, `web=2` started, the new `clock` left at 0.
fn worker_dropped() -> Reconciled {
    Reconciled {
        dropped: vec!["worker".to_owned()],
        formation: formation(&[("web", 2)]),
        left: formation(&[("clock", 0)]),
        upstream: None,
    }
}

/// The `reconciled` details of the latest `started` event of `app` (emitted just after the
/// app became awake: waited for a moment).
async fn reconciled(engine: &TestEngine, app: &str) -> Option<Reconciled> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let started = engine
            .events()
            .into_iter()
            .rev()
            .find_map(|event| match event.kind {
                EventKind::Started { reconciled, .. } if &*event.app.name == app => {
                    Some(reconciled)
                }
                _ => None,
            });
        if let Some(reconciled) = started {
            return reconciled;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no started event for {app}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops the engine, then checks that the database has the `started` event with `expected`
/// and, when the wake started a formation, remembers that formation for the next wake.
async fn stop_and_check_the_database(
    engine: TestEngine,
    database: &str,
    app: &str,
    expected: &Reconciled,
) {
    engine.stop().await;
    let store = paastis::store::open(database)
        .await
        .expect("open the database");
    let page = store
        .events(&EventQuery {
            app: Some(app.to_owned()),
            kinds: vec!["started".to_owned()],
            limit: Some(1),
            ..EventQuery::default()
        })
        .await
        .expect("events");
    match page.events.first().map(|stored| &stored.event.kind) {
        Some(EventKind::Started { reconciled, .. }) => {
            assert_eq!(reconciled.as_ref(), Some(expected));
        }
        other => panic!("no started event for {app} in the database: {other:?}"),
    }
    if !expected.formation.is_empty() {
        let catalog = store.catalog(None).await.expect("catalog");
        let entry = catalog
            .iter()
            .find(|entry| &*entry.key.name == app)
            .expect("the app in the catalog");
        assert_eq!(entry.formation.as_ref(), Some(&expected.formation));
    }
    store.close().await;
}

fn scalingo_provider(fake: &FakeScalingo) -> String {
    format!(
        "{{id: scalingo, type: scalingo, token: {SCALINGO_TOKEN}, api_url: '{0}', auth_url: '{0}'}}",
        fake.url
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scalingo_wakes_without_the_container_type_removed_while_it_slept() {
    let fake = FakeScalingo::start(SCALINGO_TOKEN).await;
    fake.add_app("shop", &[("web", 2), ("worker", 1)], true)
        .await;
    let dir = TempDir::new("reconcile-scalingo");
    let database = database(&dir);
    let provider = scalingo_provider(&fake);

    let engine = TestEngine::start(&config(&database, "1s", &provider)).await;
    engine
        .wait_state("shop", State::Asleep, Duration::from_secs(10))
        .await;
    assert_eq!(
        fake.formation("shop"),
        amounts(&[("web", 0), ("worker", 0)])
    );
    engine.stop().await;

    // After a restart, the remembered formation comes from the catalog.
    let engine = TestEngine::start(&config(&database, "10m", &provider)).await;
    assert_eq!(engine.state("shop"), State::Asleep);
    assert_eq!(
        engine.app("shop").formation(),
        Some(formation(&[("web", 2), ("worker", 1)]))
    );
    // A deployment while it sleeps: no more `worker`, a new `clock` (at 0).
    fake.remove_process_type("shop", "worker");
    fake.add_process_type("shop", "clock");

    let answer = TestClient::new(engine.addr)
        .get("shop.localhost", "/")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello from shop");
    assert_eq!(fake.formation("shop"), amounts(&[("clock", 0), ("web", 2)]));
    assert_eq!(reconciled(&engine, "shop").await, Some(worker_dropped()));
    assert_eq!(
        engine.app("shop").formation(),
        Some(formation(&[("web", 2)]))
    );
    assert_eq!(
        fake.calls.count("POST /v1/apps/shop/scale"),
        2,
        "one stop, one start: no refused scale"
    );
    stop_and_check_the_database(engine, &database, "shop", &worker_dropped()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scalingo_retries_once_when_a_type_goes_between_the_read_and_the_scale() {
    let fake = FakeScalingo::start(SCALINGO_TOKEN).await;
    fake.add_app("shop", &[("web", 2), ("worker", 1), ("clock", 0)], true)
        .await;
    let dir = TempDir::new("reconcile-scalingo-race");
    let database = database(&dir);
    let engine = TestEngine::start(&config(&database, "1s", &scalingo_provider(&fake))).await;
    engine
        .wait_state("shop", State::Asleep, Duration::from_secs(10))
        .await;

    // The formation read at the wake still has `worker`; the scale that follows does not.
    fake.remove_process_type_before_next_scale("shop", "worker");
    let answer = TestClient::new(engine.addr)
        .get("shop.localhost", "/")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(fake.formation("shop"), amounts(&[("clock", 0), ("web", 2)]));
    assert_eq!(reconciled(&engine, "shop").await, Some(worker_dropped()));
    let scales: Vec<u16> = fake
        .calls
        .all()
        .into_iter()
        .filter(|call| call.method == "POST" && call.path == "/v1/apps/shop/scale")
        .map(|call| call.status)
        .collect();
    assert_eq!(
        scales,
        [202, 422, 202],
        "stop, refused start, retried start"
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heroku_wakes_without_the_process_type_removed_while_it_slept() {
    let fake = FakeHeroku::start(HEROKU_TOKEN).await;
    fake.add_app("shop", &[("web", 2), ("worker", 1)], true)
        .await;
    let dir = TempDir::new("reconcile-heroku");
    let database = database(&dir);
    let provider = format!(
        "{{id: heroku, type: heroku, token: {HEROKU_TOKEN}, api_url: '{}'}}",
        fake.url
    );

    let engine = TestEngine::start(&config(&database, "1s", &provider)).await;
    // The app list carries no state: a request finds the app up.
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("shop.localhost", "/").await.status, 200);
    engine
        .wait_state("shop", State::Asleep, Duration::from_secs(10))
        .await;
    assert_eq!(
        fake.formation("shop"),
        amounts(&[("web", 0), ("worker", 0)])
    );
    engine.stop().await;

    let engine = TestEngine::start(&config(&database, "10m", &provider)).await;
    assert_eq!(
        engine.app("shop").formation(),
        Some(formation(&[("web", 2), ("worker", 1)]))
    );
    fake.remove_process_type("shop", "worker");
    fake.add_process_type("shop", "clock");

    let answer = TestClient::new(engine.addr)
        .get("shop.localhost", "/")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello from shop");
    assert_eq!(fake.formation("shop"), amounts(&[("clock", 0), ("web", 2)]));
    assert_eq!(reconciled(&engine, "shop").await, Some(worker_dropped()));
    let refused = fake
        .calls
        .all()
        .into_iter()
        .filter(|call| call.method == "PATCH" && call.status != 200)
        .count();
    assert_eq!(refused, 0, "no formation update was refused");
    stop_and_check_the_database(engine, &database, "shop", &worker_dropped()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clever_wakes_an_app_created_again_under_its_name_while_it_slept() {
    let fake = FakeClever::start(CleverCredentials {
        consumer_key: "ck-reconcile".to_owned(),
        consumer_secret: "cs-reconcile".to_owned(),
        token: "tok-reconcile".to_owned(),
        secret: "ts-reconcile".to_owned(),
        api_token: CLEVER_TOKEN.to_owned(),
    })
    .await;
    let (first_id, _first) = fake.add_app("api", None, 2, true).await;
    let dir = TempDir::new("reconcile-clever");
    let database = database(&dir);
    let provider = format!(
        "{{id: clever, type: clever-cloud, api_token: {CLEVER_TOKEN}, api_url: '{}', upstream_scheme: http}}",
        fake.url
    );

    let engine = TestEngine::start(&config(&database, "1s", &provider)).await;
    assert_eq!(engine.state("api"), State::Awake);
    engine
        .wait_state("api", State::Asleep, Duration::from_secs(10))
        .await;
    assert_eq!(fake.instances(&first_id), 0);
    engine.stop().await;

    let engine = TestEngine::start(&config(&database, "10m", &provider)).await;
    assert_eq!(engine.state("api"), State::Asleep);
    // While it sleeps the app is deleted and created again under its name: a new id, a new
    // address, and its own scaling (one instance, where the old one ran two).
    fake.delete_app(&first_id);
    let (second_id, second) = fake.add_app("api", None, 1, false).await;

    let answer = TestClient::new(engine.addr).get("api.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello from api");
    assert_eq!(second.hits(), 1, "served by the app the platform has now");
    assert_eq!(fake.instances(&second_id), 1, "the platform's scaling");
    let moved = Reconciled {
        upstream: Some(second.url.clone()),
        ..Reconciled::default()
    };
    assert_eq!(reconciled(&engine, "api").await, Some(moved.clone()));
    stop_and_check_the_database(engine, &database, "api", &moved).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_app_wakes_on_the_port_its_config_gives_after_a_restart() {
    let dir = TempDir::new("reconcile-process");
    let database = database(&dir);
    let app = |port: u16| {
        format!(
            "{{id: local, type: process, apps: [{{name: hello, port: {port}, command: \"{}\", env: {{APP_NAME: hello}}}}]}}",
            support::upstream_command()
        )
    };
    let [first_port, second_port] = free_ports();

    let engine = TestEngine::start(&config(&database, "1s", &app(first_port))).await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("hello.localhost", "/").await.status, 200);
    engine
        .wait_state("hello", State::Asleep, Duration::from_secs(10))
        .await;
    engine.stop().await;

    // The catalog saw it on the first port; the config now says another.
    let engine = TestEngine::start(&config(&database, "10m", &app(second_port))).await;
    let answer = TestClient::new(engine.addr)
        .get("hello.localhost", "/")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello from hello");
    assert_eq!(
        engine
            .app("hello")
            .upstream()
            .map(|upstream| upstream.to_string()),
        Some(format!("http://127.0.0.1:{second_port}"))
    );
    assert_eq!(reconciled(&engine, "hello").await, None);
    engine.stop().await;
}

/// Two different ports nothing listens on now.
fn free_ports() -> [u16; 2] {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let held = [bind(), bind()];
    held.map(|listener| listener.local_addr().expect("its address").port())
}
