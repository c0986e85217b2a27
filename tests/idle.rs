//! Idle stop: an app idle for longer than its `max_idle` is stopped (its process is gone),
//! the next request wakes it again, and `max_idle: never` is never stopped.

mod support;

use std::time::Duration;

use paastis::events::EventKind;
use paastis::model::State;
use support::{TestClient, TestEngine, process_running, upstream_command};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_apps_are_stopped_and_woken_again_but_never_means_never() {
    let engine = TestEngine::start(&format!(
        "defaults: {{max_idle: 1s}}\n{}",
        support::local_apps(&[("napper", ""), ("insomniac", "max_idle: never")])
    ))
    .await;
    let client = TestClient::new(engine.addr);
    let napper: i32 = client.pid("napper.localhost").await;
    let insomniac: i32 = client.pid("insomniac.localhost").await;
    assert!(process_running(napper) && process_running(insomniac));

    // Idle check runs every second: the napper is asleep within max_idle + 1 s (+ stop time).
    engine
        .wait_state("napper", State::Asleep, Duration::from_secs(5))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !process_running(napper),
        "napper's process {napper} is still running"
    );
    assert_eq!(
        engine.count("napper", |k| matches!(k, EventKind::StopRequested { .. })),
        1
    );
    assert_eq!(
        engine.count("napper", |k| matches!(k, EventKind::Stopped { .. })),
        1
    );

    // The next request wakes it again, as a new process.
    let answer = client.get("napper.localhost", "/pid").await;
    assert_eq!(answer.status, 200);
    let again: i32 = answer.text().parse().expect("pid");
    assert_ne!(again, napper);
    assert_eq!(engine.state("napper"), State::Awake);

    // Meanwhile, `never` kept the other one running.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(engine.state("insomniac"), State::Awake);
    assert!(process_running(insomniac));
    assert_eq!(
        engine.count("insomniac", |k| matches!(
            k,
            EventKind::StopRequested { .. }
        )),
        0
    );
    engine.stop().await;
    assert!(
        !process_running(insomniac),
        "shutdown left {insomniac} running"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_is_not_stopped_under_a_request_in_progress() {
    let engine = TestEngine::start(&format!(
        "defaults: {{max_idle: 1s}}\n{}",
        support::local_apps(&[("slow", "")])
    ))
    .await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("slow.localhost", "/").await.status, 200);
    // One request lasting 3 s, three times max_idle.
    let answer = client.get("slow.localhost", "/slow?ms=3000").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "slow 3000");
    assert_eq!(
        engine.count("slow", |k| matches!(k, EventKind::StopRequested { .. })),
        0
    );
    engine
        .wait_state("slow", State::Asleep, Duration::from_secs(5))
        .await;
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_never_wake_an_app_nor_keep_it_awake() {
    let engine = TestEngine::start(&format!(
        r#"
defaults: {{max_idle: 2s}}
activity:
  ignore_user_agents: [UptimeRobot, "re:^Pingdom"]
  ignore_paths: [/healthz, "/status/*"]
providers:
  - id: local
    type: process
    apps:
      - name: site
        command: "{command}"
        env: {{APP_NAME: site}}
"#,
        command = upstream_command(),
    ))
    .await;
    let client = TestClient::new(engine.addr);
    let monitor = [("user-agent", "Mozilla/5.0 (compatible; UptimeRobot/2.0)")];

    // Asleep: monitors get 503 at once and wake nothing.
    for (path, headers) in [
        ("/", &monitor[..]),
        ("/healthz", &[][..]),
        ("/status/db", &[][..]),
        ("/", &[("user-agent", "Pingdom.com_bot_version_1.4")][..]),
    ] {
        let answer = client
            .send("GET", "site.localhost", path, headers, Default::default())
            .await;
        assert_eq!(answer.status, 503, "{path}: {}", answer.text());
        assert_eq!(answer.json()["error"]["code"], "app_asleep");
        assert!(answer.headers.contains_key("retry-after"));
    }
    assert_eq!(engine.state("site"), State::Asleep);
    assert_eq!(
        engine.count("site", |k| matches!(k, EventKind::WakeRequested { .. })),
        0
    );

    // A person wakes it; monitors are then forwarded, yet the app stops on time.
    assert_eq!(client.get("site.localhost", "/").await.status, 200);
    let woke = tokio::time::Instant::now();
    let mut forwarded = 0;
    while engine.state("site") == State::Awake && woke.elapsed() < Duration::from_secs(8) {
        let answer = client
            .send(
                "GET",
                "site.localhost",
                "/healthz",
                &monitor,
                Default::default(),
            )
            .await;
        match answer.status.as_u16() {
            200 => forwarded += 1,
            503 => {}
            other => panic!("monitor got {other}: {}", answer.text()),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        forwarded >= 5,
        "only {forwarded} monitor requests reached the awake app"
    );
    let slept_after = woke.elapsed();
    engine
        .wait_state("site", State::Asleep, Duration::from_secs(5))
        .await;
    assert!(
        slept_after < Duration::from_secs(5),
        "monitors kept the app awake for {slept_after:?}"
    );
    engine.stop().await;
}
