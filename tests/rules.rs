//! Discovery rules and per-app rules on the whole engine: which apps are managed
//! (`discovery.include` / `exclude`), what rules give them (policy, aliases, linked apps
//! woken and kept awake together, the formation started when none is remembered), and the
//! on-demand discovery that lets an app created a second ago answer at once.

mod support;

use std::time::Duration;

use paastis::events::{EventKind, WakeCause};
use paastis::model::State;
use support::fakes::scalingo::FakeScalingo;
use support::{TestClient, TestEngine, upstream_command};

fn process_app(name: &str) -> String {
    format!(
        "      - {{name: {name}, command: \"{}\", env: {{APP_NAME: {name}}}}}\n",
        upstream_command()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_give_policy_aliases_and_linked_apps_and_the_filter_decides_what_is_managed() {
    let mut yaml = String::from(
        r#"
defaults: {max_idle: 15m}
discovery: {include: ["review-*", docs], exclude: [review-skip]}
rules:
  - pattern: 'review-pr(\d+)-front'
    linked_apps: ['review-pr$1-back', 'review-pr$1-missing']
    alias: 'pr$1'
    max_idle: 2s
  - pattern: 'review-.*-back'
    max_idle: 3s
    strategy: hold
  - pattern: 'review-pr7-.*'
    wake_timeout: 40s
providers:
  - id: local
    type: process
    apps:
"#,
    );
    for name in [
        "review-pr7-front",
        "review-pr7-back",
        "review-skip",
        "other",
        "docs",
    ] {
        yaml.push_str(&process_app(name));
    }
    let engine = TestEngine::start(&yaml).await;
    let mut managed: Vec<String> = engine
        .lifecycle
        .apps()
        .iter()
        .map(|app| app.key.name.to_string())
        .collect();
    managed.sort();
    assert_eq!(managed, ["docs", "review-pr7-back", "review-pr7-front"]);

    // Every matching rule applies, in order, later keys overriding earlier ones.
    let front = engine.app("review-pr7-front");
    assert_eq!(front.policy().max_idle, Some(Duration::from_secs(2)));
    assert_eq!(front.policy().wake_timeout, Duration::from_secs(40));
    let back = engine.app("review-pr7-back");
    assert_eq!(back.policy().max_idle, Some(Duration::from_secs(3)));
    assert_eq!(back.policy().wake_timeout, Duration::from_secs(40));
    assert_eq!(back.policy().strategy, paastis::model::Strategy::Hold);
    assert_eq!(
        engine.app("docs").policy().max_idle,
        Some(Duration::from_secs(15 * 60))
    );

    let client = TestClient::new(engine.addr);
    // Unmanaged apps have no route.
    assert_eq!(client.get("other.localhost", "/").await.status, 404);
    assert_eq!(client.get("review-skip.localhost", "/").await.status, 404);

    // The alias reaches the front; its linked back wakes with it.
    let answer = client.get("pr7.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello from review-pr7-front");
    engine
        .wait_state("review-pr7-back", State::Awake, Duration::from_secs(15))
        .await;
    let linked_wakes = engine.count("review-pr7-back", |kind| {
        matches!(
            kind,
            EventKind::WakeRequested {
                cause: WakeCause::Linked { app }
            } if app == "review-pr7-front"
        )
    });
    assert_eq!(linked_wakes, 1);

    // Requests to the front keep the back awake too, past the back's own 3 s.
    for _ in 0..10 {
        assert_eq!(client.get("pr7.localhost", "/").await.status, 200);
        tokio::time::sleep(Duration::from_millis(450)).await;
    }
    assert_eq!(engine.state("review-pr7-back"), State::Awake);
    assert_eq!(engine.state("review-pr7-front"), State::Awake);

    // Without requests, each sleeps after its own max_idle.
    engine
        .wait_state("review-pr7-front", State::Asleep, Duration::from_secs(10))
        .await;
    engine
        .wait_state("review-pr7-back", State::Asleep, Duration::from_secs(10))
        .await;
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_formation_is_started_when_none_is_remembered() {
    let fake = FakeScalingo::start("tk-us-rules-0001").await;
    let _server = fake
        .add_app("api", &[("web", 0), ("worker", 0)], false)
        .await;
    let engine = TestEngine::start(&format!(
        r#"
rules:
  - pattern: api
    formation: {{web: 2, worker: 1}}
providers:
  - {{id: scalingo, type: scalingo, token: tk-us-rules-0001, api_url: '{0}', auth_url: '{0}'}}
"#,
        fake.url
    ))
    .await;
    let client = TestClient::new(engine.addr);
    let answer = client.get("api.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let mut formation = fake.formation("api");
    formation.sort();
    assert_eq!(formation, [("web".to_owned(), 2), ("worker".to_owned(), 1)]);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_created_a_moment_ago_answers_at_once_and_unknown_hosts_are_not_a_flood() {
    let fake = FakeScalingo::start("tk-us-rules-0002").await;
    fake.add_app("old", &[("web", 1)], true).await;
    let engine = TestEngine::start(&format!(
        "discovery: {{every: 1h}}\nproviders:\n  - {{id: scalingo, type: scalingo, token: tk-us-rules-0002, api_url: '{0}', auth_url: '{0}'}}\n",
        fake.url
    ))
    .await;
    let client = TestClient::new(engine.addr);
    let lists = || {
        fake.calls
            .all()
            .iter()
            .filter(|call| call.method == "GET" && call.path == "/v1/apps")
            .count()
    };
    assert_eq!(lists(), 1);

    // A review app created after the last discovery: found on its first request.
    fake.add_app("review-42", &[("web", 1)], true).await;
    let answer = client.get("review-42.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello from review-42");
    assert_eq!(lists(), 2);

    // Unknown hosts, many at once, within 10 s of that: 404 without listing again.
    let hosts: Vec<String> = (0..50).map(|n| format!("nope-{n}.localhost")).collect();
    let answers =
        futures_util::future::join_all(hosts.iter().map(|host| client.get(host, "/"))).await;
    assert!(answers.iter().all(|a| a.status == 404));
    assert_eq!(lists(), 2);
    engine.stop().await;
}
