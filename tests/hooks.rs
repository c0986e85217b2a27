//! Hooks around starts and stops, with real shell commands: their environment, their
//! timeout (the whole process group is killed), a vetoing `before_stop`, failures that are
//! recorded without blocking the wake, and a rule's hooks over the global ones.

mod support;

use std::path::Path;
use std::time::Duration;

use paastis::events::EventKind;
use paastis::model::State;
use support::{TempDir, TestClient, TestEngine, process_running};

/// Waits until `path` exists with something in it.
async fn read_when_written(path: &Path, within: Duration) -> String {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.is_empty()
        {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_see_their_environment_around_a_wake_and_a_stop() {
    let dir = TempDir::new("hooks-env");
    let record = |name: &str| format!("env | grep ^PAASTIS_ | sort > {}", dir.path(name).display());
    let yaml = format!(
        "defaults: {{max_idle: 1s}}\nhooks: {{before_start: '{}', after_start: '{}', before_stop: '{}', after_stop: '{}'}}\n{}",
        record("before_start"),
        record("after_start"),
        record("before_stop"),
        record("after_stop"),
        support::local_apps(&[("web", "")])
    );
    let engine = TestEngine::start(&yaml).await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("web.localhost", "/hello").await.status, 200);
    for (hook, cause) in [
        ("before_start", "request GET /hello from 127.0.0.1"),
        ("after_start", "request GET /hello from 127.0.0.1"),
    ] {
        let env = read_when_written(&dir.path(hook), Duration::from_secs(5)).await;
        assert!(env.contains("PAASTIS_APP=web\n"), "{hook}: {env}");
        assert!(env.contains("PAASTIS_PROVIDER=local\n"), "{hook}: {env}");
        assert!(env.contains("PAASTIS_SPACE=default\n"), "{hook}: {env}");
        assert!(
            env.contains(&format!("PAASTIS_EVENT={hook}\n")),
            "{hook}: {env}"
        );
        assert!(
            env.contains(&format!("PAASTIS_CAUSE={cause}\n")),
            "{hook}: {env}"
        );
    }
    engine
        .wait_state("web", State::Asleep, Duration::from_secs(8))
        .await;
    for hook in ["before_stop", "after_stop"] {
        let env = read_when_written(&dir.path(hook), Duration::from_secs(5)).await;
        assert!(
            env.contains(&format!("PAASTIS_EVENT={hook}\n")),
            "{hook}: {env}"
        );
        assert!(env.contains("PAASTIS_CAUSE=idle for 1s\n"), "{hook}: {env}");
    }
    assert_eq!(
        engine.count("web", |k| matches!(k, EventKind::HookFailed { .. })),
        0,
        "{:?}",
        engine.events()
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_before_stop_vetoes_the_stop_until_it_agrees() {
    let dir = TempDir::new("hooks-veto");
    let allow = dir.path("allow");
    let yaml = format!(
        "defaults: {{max_idle: 1s}}\nhooks: {{before_stop: 'echo jobs still running; test -f {}'}}\n{}",
        allow.display(),
        support::local_apps(&[("web", "")])
    );
    let engine = TestEngine::start(&yaml).await;
    let client = TestClient::new(engine.addr);
    let pid = client.pid("web.localhost").await;
    // Vetoed at every tick: still awake well after max_idle.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(engine.state("web"), State::Awake);
    assert!(process_running(pid));
    let vetoes: Vec<String> = engine
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::StopVetoed { reason } => Some(reason),
            _ => None,
        })
        .collect();
    assert!(vetoes.len() >= 2, "{vetoes:?}");
    assert_eq!(
        vetoes[0], "before_stop exited with status 1: jobs still running",
        "the reason has the hook's output"
    );
    assert_eq!(
        engine.count("web", |k| matches!(k, EventKind::StopRequested { .. })),
        0,
        "a vetoed stop is not requested"
    );
    // The hook agrees: stopped at the next tick.
    std::fs::write(&allow, "").expect("allow");
    engine
        .wait_state("web", State::Asleep, Duration::from_secs(5))
        .await;
    assert!(!process_running(pid));
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_past_its_timeout_is_killed_with_its_children_and_the_wake_goes_on() {
    let dir = TempDir::new("hooks-timeout");
    let pid_file = dir.path("sleeper");
    let yaml = format!(
        "hooks: {{before_start: 'sleep 60 & echo $! > {}; wait', after_start: 'echo boom; exit 4', timeout: 500ms}}\n{}",
        pid_file.display(),
        support::local_apps(&[("web", "")])
    );
    let engine = TestEngine::start(&yaml).await;
    let client = TestClient::new(engine.addr);
    let started = tokio::time::Instant::now();
    let answer = client.get("web.localhost", "/").await;
    assert_eq!(answer.status, 200, "failing hooks do not block the wake");
    assert!(started.elapsed() < Duration::from_secs(10));
    let sleeper: i32 = read_when_written(&pid_file, Duration::from_secs(2))
        .await
        .trim()
        .parse()
        .expect("pid");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while process_running(sleeper) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hook's child survived its timeout"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let failures: Vec<(String, String)> = engine
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::HookFailed { hook, reason } => Some((hook, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        failures,
        vec![
            (
                "before_start".to_owned(),
                "killed after 500ms (timeout)".to_owned()
            ),
            (
                "after_start".to_owned(),
                "exited with status 4: boom".to_owned()
            ),
        ]
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_s_hooks_override_the_global_ones_for_its_apps() {
    let dir = TempDir::new("hooks-rule");
    let yaml = format!(
        "defaults: {{max_idle: 1s}}
hooks: {{after_stop: 'echo global >> {log}'}}
rules:
  - {{pattern: 'special', hooks: {{after_stop: 'echo rule >> {log}'}}}}
{}",
        support::local_apps(&[("plain", ""), ("special", "")]),
        log = dir.path("log").display()
    );
    let engine = TestEngine::start(&yaml).await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("plain.localhost", "/").await.status, 200);
    assert_eq!(client.get("special.localhost", "/").await.status, 200);
    engine
        .wait_state("plain", State::Asleep, Duration::from_secs(8))
        .await;
    engine
        .wait_state("special", State::Asleep, Duration::from_secs(8))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut lines: Vec<String> = std::fs::read_to_string(dir.path("log"))
        .expect("log")
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    assert_eq!(lines, ["global", "rule"]);
    engine.stop().await;
}
