//! The `render` provider, in the whole engine, against the fake Render API (a real HTTP
//! server following the documented API): discovery across cursor pages with odd entries
//! skipped, wake on a request (resume, the held request answered once the resume's deploy
//! is live, the instance count restored), idle stop (suspend), one resume per wake storm,
//! the platform's rate-limit budget honoured, and the API key kept out of logs, errors and
//! `paastis check`.

mod support;

use std::time::Duration;

use paastis::model::State;
use serde_json::json;
use support::fakes::render::FakeRender;
use support::{TempDir, TestClient, TestEngine};

const TOKEN: &str = "rnd_secretRenderKey0009";

fn provider(fake: &FakeRender) -> String {
    format!(
        "{{id: render, type: render, token: {TOKEN}, api_url: '{}'}}",
        fake.url
    )
}

fn config(max_idle: &str, providers: &[String]) -> String {
    let mut yaml = format!("defaults: {{max_idle: {max_idle}, wake_timeout: 20s}}\nproviders:\n");
    for provider in providers {
        yaml.push_str(&format!("  - {provider}\n"));
    }
    yaml
}

fn names(engine: &TestEngine) -> Vec<String> {
    let mut names: Vec<String> = engine
        .lifecycle
        .apps()
        .iter()
        .map(|app| app.key.name.to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_follows_the_cursor_pages_and_skips_what_it_cannot_serve() {
    let fake = FakeRender::start(TOKEN).await;
    fake.set_max_limit(25);
    for n in 0..110 {
        fake.add_service(&format!("review-{n:03}"), "web_service", n % 2 == 0)
            .await;
    }
    fake.add_service("jobs", "background_worker", false).await;
    fake.add_service("nightly", "cron_job", false).await;
    fake.add_service("internal", "private_service", false).await;
    fake.add_raw_entry(json!({"cursor": "odd-1", "service": null}));
    fake.add_raw_entry(json!({"cursor": "odd-2", "service": {"id": 7, "name": ["x"]}}));
    let engine = TestEngine::start(&config("15m", &[provider(&fake)])).await;

    let names = names(&engine);
    assert_eq!(names.len(), 110, "{names:?}");
    assert_eq!(names.first().map(String::as_str), Some("review-000"));
    assert_eq!(names.last().map(String::as_str), Some("review-109"));
    // 115 entries in pages of 25: five pages, then an empty one.
    assert_eq!(fake.calls.count("GET /services"), 6);
    assert_eq!(engine.state("review-000"), State::Asleep);
    assert_eq!(engine.state("review-001"), State::Awake);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_resumes_a_suspended_service_and_idle_suspends_it() {
    let fake = FakeRender::start(TOKEN).await;
    fake.set_boot_time(Duration::from_millis(800));
    let (id, shop) = fake.add_service("Shop", "web_service", false).await;
    fake.set_instances(&id, 3);
    let engine = TestEngine::start(&config("1s", &[provider(&fake)])).await;
    assert_eq!(engine.state("shop"), State::Awake);

    engine
        .wait_state("shop", State::Asleep, Duration::from_secs(15))
        .await;
    assert!(fake.is_suspended(&id));
    assert!(!shop.is_up());
    let stopped = engine
        .events()
        .into_iter()
        .rev()
        .find_map(|event| match event.kind {
            paastis::events::EventKind::Stopped { formation, sizes } => Some((
                formation
                    .unwrap_or_default()
                    .into_iter()
                    .collect::<Vec<_>>(),
                sizes.into_iter().collect::<Vec<_>>(),
            )),
            _ => None,
        })
        .expect("a stopped event");
    assert_eq!(
        stopped,
        (
            vec![("web".to_owned(), 3)],
            vec![("web".to_owned(), "starter".to_owned())]
        )
    );
    // Scaled down while suspended (from the dashboard): the wake restores three.
    fake.set_instances(&id, 1);

    let client = TestClient::new(engine.addr);
    let answer = client.get("shop.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello from Shop");
    assert!(!fake.is_suspended(&id));
    assert_eq!(fake.deploy_statuses(&id)[0], "live");
    assert_eq!(fake.instances(&id), 3);
    assert_eq!(
        fake.calls.count("POST /services"),
        3,
        "suspend, resume, scale"
    );

    // The service id is a route key too.
    let answer = client
        .get(&format!("{}.localhost", id.to_ascii_lowercase()), "/")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_storm_resumes_once() {
    let fake = FakeRender::start(TOKEN).await;
    fake.set_boot_time(Duration::from_millis(1500));
    let (id, _) = fake.add_service("storm", "web_service", true).await;
    let engine = TestEngine::start(&config("15m", &[provider(&fake)])).await;
    let client = TestClient::new(engine.addr);
    let requests: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get("storm.localhost", "/").await })
        })
        .collect();
    for request in requests {
        let answer = request.await.expect("request task");
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.text(), "hello from storm");
    }
    assert_eq!(fake.calls.count(&format!("POST /services/{id}/resume")), 1);
    assert_eq!(fake.calls.count("POST"), 1);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_resume_deploy_is_reported_not_waited_for() {
    let fake = FakeRender::start(TOKEN).await;
    fake.set_boot_time(Duration::from_millis(300));
    fake.fail_next_resumes(1);
    fake.add_service("broken", "web_service", true).await;
    let engine = TestEngine::start(&config("15m", &[provider(&fake)])).await;
    let client = TestClient::new(engine.addr);
    let answer = client.get("broken.localhost", "/").await;
    assert!(
        answer.status.is_server_error(),
        "{} {}",
        answer.status,
        answer.text()
    );
    let failures: Vec<String> = engine
        .events()
        .into_iter()
        .filter_map(|event| match event.kind {
            paastis::events::EventKind::StartFailed { reason } => Some(reason),
            _ => None,
        })
        .collect();
    assert!(
        failures.iter().any(|f| f.contains("update_failed")),
        "{failures:?}"
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platforms_rate_limit_budget_is_waited_for_not_hit() {
    let fake = FakeRender::start(TOKEN).await;
    // Four reads per two seconds: a wake's polls spend it quickly.
    fake.set_rate_limits(4, 10, Duration::from_secs(2));
    fake.set_boot_time(Duration::from_secs(3));
    let (id, _) = fake.add_service("slow", "web_service", true).await;
    let yaml = format!(
        "discovery: {{every: 1h}}\n{}",
        config("15m", &[provider(&fake)])
    );
    let engine = TestEngine::start(&yaml).await;
    let client = TestClient::new(engine.addr);
    let answer = client.get("slow.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(!fake.is_suspended(&id));
    let calls = fake.calls.all();
    let throttled: Vec<_> = calls.iter().filter(|call| call.status == 429).collect();
    assert!(throttled.is_empty(), "{throttled:?} in {calls:?}");
    assert!(
        fake.calls.count("GET") > 4,
        "the test spent more than one budget: {calls:?}"
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_never_reaches_logs_errors_or_check() {
    let fake = FakeRender::start(TOKEN).await;
    fake.add_service("docs", "web_service", true).await;
    let dir = TempDir::new("render-secrets");
    let file = dir.path("paastis.yml");
    let wrong = format!(
        "{{id: render-bad, type: render, token: rnd_wrongRenderKey0010, api_url: '{}'}}",
        fake.url
    );
    std::fs::write(&file, config("1s", &[provider(&fake), wrong])).expect("write config");
    let checked = support::check(&file).await;
    let check_out = checked.output.as_str();
    assert_eq!(checked.code, Some(1), "{check_out}");
    let line = |id: &str| checked.line(id);
    assert!(
        line("render-bad").contains("bad credentials"),
        "{check_out}"
    );
    assert!(line("render").ends_with(" ok"), "{check_out}");

    let mut served = support::serve(&file, &[("LOG_LEVEL", "trace")]).await;
    let client = TestClient::new(served.addr);
    let answer = client.get("docs.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    tokio::time::sleep(Duration::from_secs(3)).await; // the idle stop happens too
    let _ = served.child.start_kill();
    let _ = served.child.wait().await;
    let logs = served.logs();
    assert!(
        logs.contains("stopping"),
        "idle stops were not logged: {logs}"
    );
    support::assert_no_secret(
        &[check_out, &logs],
        &[TOKEN, "rnd_wrongRenderKey0010", "Bearer "],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_workspace_and_shared_names_qualified_by_their_id() {
    let fake = FakeRender::start(TOKEN).await;
    let (first, _) = fake.add_service("api", "web_service", false).await;
    let (second, _) = fake.add_service("API", "web_service", false).await;
    fake.add_service("front", "web_service", false).await;
    fake.add_service_of("elsewhere", "web_service", "tea-other", false)
        .await;
    let scoped = provider(&fake).replace('}', ", owner_id: tea-fakeworkspace}");
    let engine = TestEngine::start(&config("15m", &[scoped])).await;

    let suffix = |id: &str| id[id.len() - 6..].to_ascii_lowercase();
    let mut expected = vec![
        format!("api-{}", suffix(&first)),
        format!("api-{}", suffix(&second)),
        "front".to_owned(),
    ];
    expected.sort();
    assert_eq!(names(&engine), expected);
    let client = TestClient::new(engine.addr);
    let answer = client
        .get(&format!("api-{}.localhost", suffix(&second)), "/")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello from API");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_instance_count_does_not_fail_the_wake() {
    let fake = FakeRender::start(TOKEN).await;
    let (id, _) = fake.add_service("hobby", "web_service", false).await;
    fake.set_instances(&id, 2);
    let engine = TestEngine::start(&config("1s", &[provider(&fake)])).await;
    engine
        .wait_state("hobby", State::Asleep, Duration::from_secs(15))
        .await;
    // Moved to the free instance type while suspended: one instance at most.
    fake.set_plan(&id, "free");
    fake.set_instances(&id, 1);
    let client = TestClient::new(engine.addr);
    let answer = client.get("hobby.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(fake.instances(&id), 1);
    let scales: Vec<u16> = fake
        .calls
        .all()
        .iter()
        .filter(|call| call.path.ends_with("/scale"))
        .map(|call| call.status)
        .collect();
    assert_eq!(scales, [400]);
    engine.stop().await;
}
