//! Waking sleeping apps on request: one start for many requests, bodies kept while held,
//! failures answered with 503 within `wake_timeout` while other apps keep being served.

mod support;

use std::time::Duration;

use bytes::Bytes;
use paastis::events::EventKind;
use paastis::model::State;
use sha2::{Digest, Sha256};
use support::{TempDir, TestClient, TestEngine, local_apps, process_running, upstream_command};
use tokio::task::JoinSet;

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_cause_one_start_and_all_succeed() {
    let dir = TempDir::new("wake-many");
    let starts = dir.path("starts");
    let engine = TestEngine::start(&format!(
        r#"
defaults: {{wake_timeout: 30s}}
providers:
  - id: local
    type: process
    apps:
      - name: hello
        command: "{command}"
        env: {{APP_NAME: hello, STARTS_FILE: "{starts}", STARTUP_DELAY_MS: "700"}}
"#,
        command = upstream_command(),
        starts = starts.display(),
    ))
    .await;
    assert_eq!(engine.state("hello"), State::Asleep);
    let client = TestClient::new(engine.addr);

    let body = pseudo_random(1024 * 1024);
    let expected_sha = hex(&Sha256::digest(&body));
    let mut requests = JoinSet::new();
    for n in 0..200 {
        let client = client.clone();
        requests.spawn(async move {
            let answer = client.get("hello.localhost", &format!("/?n={n}")).await;
            (answer.status.as_u16(), answer.text())
        });
    }
    // The big upload is sent while the app is still booting (it sleeps 700 ms first).
    let upload = {
        let client = client.clone();
        let body = Bytes::from(body);
        tokio::spawn(async move {
            client
                .send(
                    "POST",
                    "hello.localhost",
                    "/echo",
                    &[("content-type", "application/octet-stream")],
                    body,
                )
                .await
        })
    };
    let mut ok = 0;
    while let Some(joined) = requests.join_next().await {
        let (status, text) = joined.expect("request task");
        assert_eq!(status, 200, "{text}");
        assert_eq!(text, "hello from hello");
        ok += 1;
    }
    assert_eq!(ok, 200);
    let upload = upload.await.expect("upload task");
    assert_eq!(upload.status, 200, "{}", upload.text());
    let echoed = upload.json();
    assert_eq!(echoed["length"], 1024 * 1024);
    assert_eq!(echoed["sha256"], expected_sha.as_str());

    let started = std::fs::read_to_string(&starts).expect("starts file");
    assert_eq!(started.lines().count(), 1, "started: {started}");
    assert_eq!(
        engine.count("hello", |k| matches!(k, EventKind::WakeRequested { .. })),
        1
    );
    assert_eq!(
        engine.count("hello", |k| matches!(k, EventKind::Started { .. })),
        1
    );
    assert_eq!(engine.state("hello"), State::Awake);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_wakes_answer_503_and_other_apps_keep_working() {
    let engine = TestEngine::start(&format!(
        r#"
defaults: {{wake_timeout: 2s, strategy: hold}}
providers:
  - id: local
    type: process
    apps:
      - name: crash
        command: "echo boom >&2; exit 3"
      - name: mute
        command: "exec sleep 60"
      - name: good
        command: "{command}"
        env: {{APP_NAME: good}}
"#,
        command = upstream_command(),
    ))
    .await;
    let client = TestClient::new(engine.addr);

    // A command that exits at once: 503 well before the timeout. The visitor is told it
    // could not be started; why is the operator's (the app's phase and its event).
    let started = tokio::time::Instant::now();
    let answer = client.get("crash.localhost", "/").await;
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(answer.headers.contains_key("retry-after"));
    let error = answer.json();
    assert_eq!(error["error"]["code"], "wake_failed");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("crash could not be started"), "{error}");
    assert!(!answer.text().contains("exited with status"), "{error}");
    let phase = engine.app("crash").phase();
    assert_eq!(phase.state, State::Failed);
    assert_eq!(phase.reason.as_deref(), Some("exited with status 3"));
    assert_eq!(
        engine.count("crash", |k| matches!(
            k,
            paastis::events::EventKind::StartFailed { reason } if reason == "exited with status 3"
        )),
        1
    );
    // Nor does the HTML page of the next attempt.
    let page = client
        .send(
            "GET",
            "crash.localhost",
            "/",
            &[("accept", "text/html")],
            Bytes::new(),
        )
        .await;
    assert_eq!(page.status, 503);
    assert!(
        !page.text().contains("exited with status"),
        "{}",
        page.text()
    );

    // A command that never opens its port: 503 once wake_timeout runs out.
    let started = tokio::time::Instant::now();
    let answer = client
        .send(
            "GET",
            "mute.localhost",
            "/",
            &[("accept", "text/html")],
            Bytes::new(),
        )
        .await;
    let waited = started.elapsed();
    assert_eq!(answer.status, 503);
    assert!(
        answer.headers["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/html")
    );
    assert!(answer.headers.contains_key("retry-after"));
    assert!(waited >= Duration::from_millis(1900), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    engine
        .wait_state("mute", State::Failed, Duration::from_secs(15))
        .await;
    let reason = engine.app("mute").phase().reason.unwrap_or_default();
    assert!(reason.contains("not ready after 2s"), "{reason}");
    // The event follows the state change by a moment: wait for it, then count.
    let start_failed = |k: &EventKind| matches!(k, EventKind::StartFailed { .. });
    for _ in 0..100 {
        if engine.count("mute", start_failed) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(engine.count("mute", start_failed), 1);

    // The engine still serves the healthy app, and the failed one is retried on request.
    let answer = client.get("good.localhost", "/").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "hello from good");
    let answer = client.get("crash.localhost", "/").await;
    assert_eq!(answer.status, 503);
    // The first request, the HTML page above, and this one.
    assert_eq!(
        engine.count("crash", |k| matches!(k, EventKind::WakeRequested { .. })),
        3
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_that_times_out_leaves_no_process_behind() {
    let dir = TempDir::new("mute-pid");
    let pid_file = dir.path("pid");
    let engine = TestEngine::start(&format!(
        r#"
defaults: {{wake_timeout: 1s}}
providers:
  - id: local
    type: process
    apps:
      - name: mute
        command: "echo $$ > {pid}; exec sleep 60"
"#,
        pid = pid_file.display(),
    ))
    .await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("mute.localhost", "/").await.status, 503);
    engine
        .wait_state("mute", State::Failed, Duration::from_secs(15))
        .await;
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert!(
        !process_running(pid),
        "the half-started process {pid} is still running"
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_whose_process_dies_is_asleep_and_wakes_again() {
    let engine = TestEngine::start(&format!(
        r#"
providers:
  - id: local
    type: process
    apps:
      - name: hello
        command: "{command}"
        env: {{APP_NAME: hello}}
"#,
        command = upstream_command(),
    ))
    .await;
    let client = TestClient::new(engine.addr);
    let pid: i32 = client.pid("hello.localhost").await;
    support::signal(pid, nix::sys::signal::Signal::SIGKILL);
    engine
        .wait_state("hello", State::Asleep, Duration::from_secs(5))
        .await;
    // The state changes a moment before its event is recorded: wait for the event too.
    let killed =
        |k: &EventKind| matches!(k, EventKind::Exited { reason } if reason == "killed by SIGKILL");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while engine.count("hello", killed) == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(engine.count("hello", killed), 1);
    let answer = client.get("hello.localhost", "/pid").await;
    assert_eq!(answer.status, 200);
    assert_ne!(answer.text(), pid.to_string());
    engine.stop().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_are_502_and_busy_ports_fail_the_wake() {
    // Something else already listens on the port configured for `squatted`.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = squatter.local_addr().expect("addr").port();
    let engine = TestEngine::start(&format!(
        r#"
providers:
  - id: local
    type: process
    apps:
      - name: rude
        command: >-
          exec python3 -c "import socket,os; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', int(os.environ['PORT']))); s.listen(64);
          [c.close() for c in iter(lambda: s.accept()[0], None)]"
      - name: squatted
        command: "{command}"
        port: {busy}
"#,
        command = upstream_command(),
    ))
    .await;
    let client = TestClient::new(engine.addr);
    let answer = client.get("rude.localhost", "/").await;
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert_eq!(answer.json()["error"]["code"], "upstream_failed");
    assert_eq!(engine.state("rude"), State::Awake);

    let answer = client.get("squatted.localhost", "/").await;
    assert_eq!(answer.status, 503);
    assert!(
        !answer.text().contains(&busy.to_string()),
        "{}",
        answer.text()
    );
    let reason = engine.app("squatted").phase().reason.unwrap_or_default();
    assert!(
        reason.contains(&format!("port {busy} is already in use")),
        "{reason}"
    );
    drop(squatter);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chosen_port_taken_meanwhile_is_chosen_again() {
    // No port configured: the engine chose one when it loaded the app. Another program
    // takes it while the app sleeps; the wake must not fail for it.
    let engine = TestEngine::start(&local_apps(&[("roomy", "")])).await;
    let chosen = |engine: &TestEngine| -> u16 {
        let upstream = engine
            .app("roomy")
            .upstream()
            .expect("an address")
            .to_string();
        let port = upstream.rsplit(':').next().unwrap_or_default();
        port.trim_end_matches('/')
            .parse()
            .unwrap_or_else(|e| panic!("{e}: {upstream}"))
    };
    let first = chosen(&engine);
    let squatter = std::net::TcpListener::bind(("127.0.0.1", first)).expect("bind the chosen port");

    let client = TestClient::new(engine.addr);
    let answer = client.get("roomy.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(
        answer.text().contains("hello from roomy"),
        "{}",
        answer.text()
    );
    let second = chosen(&engine);
    assert_ne!(second, first);
    drop(squatter);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_get_a_waiting_page_that_turns_into_the_app() {
    let engine = TestEngine::start(&format!(
        r#"
defaults: {{max_idle: 1s}}
providers:
  - id: local
    type: process
    apps:
      - name: hello
        command: "{command}"
        env: {{APP_NAME: hello, STARTUP_DELAY_MS: "1200"}}
"#,
        command = upstream_command(),
    ))
    .await;
    let client = TestClient::new(engine.addr);
    let browser = [("accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")];

    // The first navigation gets the page at once, and starts the wake.
    let started = tokio::time::Instant::now();
    let page = client
        .send("GET", "hello.localhost", "/", &browser, Bytes::new())
        .await;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(page.status, 503);
    assert!(page.headers.contains_key("retry-after"));
    let html = page.text();
    assert!(html.contains("Waking up hello"), "{html}");
    assert!(html.contains(r#"http-equiv="refresh""#), "{html}");
    assert!(html.contains(r#"role="status""#), "{html}");
    assert_eq!(engine.state("hello"), State::Waking);

    // Reloading as the page does lands on the app once it is up.
    let mut reloads = 0;
    let answer = loop {
        let answer = client
            .send("GET", "hello.localhost", "/", &browser, Bytes::new())
            .await;
        if answer.status == 200 {
            break answer;
        }
        assert_eq!(answer.status, 503);
        reloads += 1;
        assert!(reloads < 100, "the app never came up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(answer.text(), "hello from hello");
    assert_eq!(
        engine.count("hello", |k| matches!(k, EventKind::WakeRequested { .. })),
        1
    );

    // Asleep again; a program (no HTML wanted) is held and served, no page.
    engine
        .wait_state("hello", State::Asleep, Duration::from_secs(5))
        .await;
    let answer = client.get("hello.localhost", "/").await;
    assert_eq!(answer.status, 200);

    // Next time, the page knows how long a start takes.
    engine
        .wait_state("hello", State::Asleep, Duration::from_secs(5))
        .await;
    let page = client
        .send("GET", "hello.localhost", "/", &browser, Bytes::new())
        .await;
    assert_eq!(page.status, 503);
    assert!(
        page.text().contains("it usually takes about"),
        "{}",
        page.text()
    );
    engine.stop().await;
}
