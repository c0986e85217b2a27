//! Plan limits on the whole engine with real local apps: the 6th running app of a `free`
//! plan is refused with 429 and a page that names the limit; with `on_limit: evict_lru` the
//! least recently active app is stopped first and the new one wakes; concurrent wakes never
//! exceed the limit; a config with more providers than its plan allows is refused.

mod support;

use std::time::Duration;

use paastis::events::{EventKind, StopCause};
use paastis::model::State;
use support::{TestClient, TestEngine};

/// The engines of this file run one at a time: each `process` app gets a free port when its
/// engine starts, and twenty apps of engines started side by side could be handed a port
/// another engine's app has taken since.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn apps(count: usize) -> String {
    let names: Vec<String> = (1..=count).map(|i| format!("app{i}")).collect();
    let list: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "")).collect();
    support::local_apps(&list)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sixth_running_app_of_a_free_plan_is_refused_with_the_limit_named() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let yaml = format!("defaults: {{max_idle: 15m}}\nplan: free\n{}", apps(6));
    let engine = TestEngine::start(&yaml).await;
    let client = TestClient::new(engine.addr);
    for i in 1..=5 {
        let answer = client.get(&format!("app{i}.localhost"), "/").await;
        assert_eq!(answer.status, 200, "app{i}: {}", answer.text());
    }
    let refused = client.get("app6.localhost", "/").await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    let body = refused.json();
    assert_eq!(body["error"]["code"], "plan_limit");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("`free`")
            && message.contains("5 running apps")
            && message.contains("`local`"),
        "{message}"
    );
    assert!(refused.headers.contains_key("retry-after"));
    // A browser gets the same as a page, not the waiting page.
    let page = client
        .send(
            "GET",
            "app6.localhost",
            "/",
            &[("accept", "text/html")],
            Default::default(),
        )
        .await;
    assert_eq!(page.status, 429);
    assert!(
        page.text().contains("allows 5 running apps"),
        "{}",
        page.text()
    );
    assert_eq!(engine.state("app6"), State::Asleep);
    // The admin API is refused the same way.
    let api = TestClient::new(engine.admin_addr);
    let start = api
        .send(
            "POST",
            "localhost",
            "/api/v1/apps/local/app6/start",
            &[],
            Default::default(),
        )
        .await;
    assert_eq!(start.status, 429, "{}", start.text());
    // Once one is stopped there is room again.
    let stop = api
        .send(
            "POST",
            "localhost",
            "/api/v1/apps/local/app1/stop",
            &[],
            Default::default(),
        )
        .await;
    assert_eq!(stop.status, 202, "{}", stop.text());
    engine
        .wait_state("app1", State::Asleep, Duration::from_secs(5))
        .await;
    let answer = client.get("app6.localhost", "/").await;
    assert_eq!(
        answer.status,
        200,
        "{} {:?}",
        answer.text(),
        engine.events()
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evict_lru_stops_the_least_recently_active_app_first() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let yaml = format!(
        "defaults: {{max_idle: 15m}}\nplan: {{running_apps_per_provider: 3}}\non_limit: evict_lru\n{}",
        apps(4)
    );
    let engine = TestEngine::start(&yaml).await;
    let client = TestClient::new(engine.addr);
    for i in 1..=3 {
        assert_eq!(
            client.get(&format!("app{i}.localhost"), "/").await.status,
            200
        );
    }
    // app2 is the least recently active once app1 and app3 are used again.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(client.get("app1.localhost", "/").await.status, 200);
    assert_eq!(client.get("app3.localhost", "/").await.status, 200);
    let answer = client.get("app4.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    engine
        .wait_state("app2", State::Asleep, Duration::from_secs(5))
        .await;
    for name in ["app1", "app3", "app4"] {
        assert_eq!(engine.state(name), State::Awake, "{name}");
    }
    let evicted = engine.count("app2", |k| {
        matches!(
            k,
            EventKind::StopRequested {
                cause: StopCause::PlanLimit { for_app }
            } if for_app == "app4"
        )
    });
    assert_eq!(evicted, 1, "{:?}", engine.events());
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wakes_never_exceed_the_limit() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let yaml = format!(
        "defaults: {{max_idle: 15m}}\nplan: {{running_apps_per_provider: 4}}\n{}",
        apps(10)
    );
    let engine = TestEngine::start(&yaml).await;
    let mut requests = tokio::task::JoinSet::new();
    for i in 1..=10 {
        let client = TestClient::new(engine.addr);
        requests.spawn(async move { client.get(&format!("app{i}.localhost"), "/").await.status });
    }
    let mut statuses = Vec::new();
    while let Some(status) = requests.join_next().await {
        statuses.push(status.expect("request").as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429, 429, 429, 429, 429]);
    let running = (1..=10)
        .filter(|i| engine.state(&format!("app{i}")) == State::Awake)
        .count();
    assert_eq!(running, 4);
    engine.stop().await;
}

#[test]
fn more_providers_than_the_plan_allows_is_a_config_error() {
    let yaml = "plan: free\nproviders:\n  - {id: a, type: process, apps: [{name: x, command: 'true'}]}\n  - {id: b, type: process, apps: [{name: y, command: 'true'}]}\n";
    let errors = paastis::config::load_str(
        yaml,
        &std::collections::HashMap::new(),
        &paastis::config::Overrides::default(),
    )
    .expect_err("refused");
    let text = errors.to_string();
    assert!(
        text.contains("providers: 2 provider accounts, but the plan `free` allows 1"),
        "{text}"
    );
    for bad in ["plan: gold", "plan: {providers: 0}", "on_limit: shrug"] {
        assert!(
            paastis::config::load_str(
                bad,
                &std::collections::HashMap::new(),
                &paastis::config::Overrides::default()
            )
            .is_err(),
            "{bad}"
        );
    }
}
