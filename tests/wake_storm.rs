//! Wake storms against ordinary app servers: 100 clients at once ask for a sleeping app
//! whose server is Python's `http.server` (a listen backlog of 5, HTTP/1.0 and close after
//! each response by default; keep-alive HTTP/1.1 with `--protocol`), on a fixed port, and
//! again after each idle stop. Every request is answered 200, and each storm starts the app
//! once. The clients are curl, the servers are not the suite's own; one more storm, against
//! the suite's own app, checks that the released requests connect a few at a time.

mod support;

use std::time::Duration;

use paastis::events::EventKind;
use paastis::model::State;
use support::{TempDir, TestEngine};

/// Requests at once in each storm.
const CLIENTS: usize = 100;

/// Storms in a row, each after an idle stop.
const STORMS: usize = 3;

/// A port nothing listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// `CLIENTS` parallel curl transfers to the app (each its own connection): their statuses.
async fn storm(addr: std::net::SocketAddr, host: &str) -> Vec<String> {
    let url = format!("http://{addr}/");
    let mut command = tokio::process::Command::new("curl");
    command
        .args(["--silent", "--parallel", "--parallel-immediate"])
        .args(["--parallel-max", &CLIENTS.to_string()])
        .args(["--max-time", "25", "--header", &format!("Host: {host}")])
        .args(["--write-out", "%{http_code}\\n"]);
    for _ in 0..CLIENTS {
        command.args(["--output", "/dev/null", &url]);
    }
    let output = command.output().await.expect("curl runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// One storm test at a time: each gives its app a port that was free when asked, and two
/// asking at once can be given the same one (the other test's server would then answer).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn storms_are_all_answered(server_args: &str) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = TempDir::new("storm");
    std::fs::write(dir.path("index.html"), "<p>hello</p>\n").expect("write");
    let port = free_port();
    let engine = TestEngine::start(&format!(
        "defaults: {{max_idle: 1s, wake_timeout: 30s}}\n\
         providers:\n  - id: local\n    type: process\n    apps:\n\
         \x20     - name: files\n\
         \x20       command: python3 -m http.server {port} --bind 127.0.0.1 {server_args} --directory {}\n\
         \x20       port: {port}\n",
        dir.0.display()
    ))
    .await;
    for round in 1..=STORMS {
        engine
            .wait_state("files", State::Asleep, Duration::from_secs(15))
            .await;
        let statuses = storm(engine.addr, "files.localhost").await;
        let failed: Vec<&String> = statuses.iter().filter(|s| *s != "200").collect();
        assert_eq!(statuses.len(), CLIENTS, "round {round}: {statuses:?}");
        assert!(
            failed.is_empty(),
            "round {round}: {} of {CLIENTS} requests failed: {failed:?}",
            failed.len()
        );
        assert_eq!(
            engine.count("files", |k| matches!(k, EventKind::Started { .. })),
            round,
            "one start per storm"
        );
    }
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storms_against_python_http_server_http_1_0_are_all_answered() {
    storms_are_all_answered("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storms_against_python_http_server_keep_alive_are_all_answered() {
    storms_are_all_answered("--protocol HTTP/1.1").await;
}

/// Just after a wake, the held requests open their connections to the app a few at a time
/// (at most 4 at once per proxy worker, each until the first byte of its answer): a burst
/// of new connections would overflow a small listen backlog, and a dropped connection is
/// tried again by the system only after a second. The app (`upstream.py`, a listen backlog
/// of 1,024, so nothing is dropped here) counts the connections open at once before their
/// first request came: all of them would be, were they opened at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_released_by_a_wake_connect_a_few_at_a_time() {
    let engine = TestEngine::start(&format!(
        "proxy: {{workers: 1}}\n\
         defaults: {{max_idle: never, wake_timeout: 30s}}\n\
         providers:\n  - id: local\n    type: process\n    apps:\n\
         \x20     - name: counted\n\
         \x20       command: \"{}\"\n\
         \x20       env: {{APP_NAME: counted, STARTUP_DELAY_MS: \"300\"}}\n",
        support::upstream_command()
    ))
    .await;
    engine
        .wait_state("counted", State::Asleep, Duration::from_secs(15))
        .await;
    let statuses = storm(engine.addr, "counted.localhost").await;
    assert_eq!(statuses.len(), CLIENTS, "{statuses:?}");
    assert!(statuses.iter().all(|s| s == "200"), "{statuses:?}");
    let most = support::TestClient::new(engine.addr)
        .get("counted.localhost", "/most-waiting")
        .await;
    assert_eq!(most.status, 200);
    let most: usize = most.text().trim().parse().expect("a count");
    // 4 at once; a place is also given back after 50 ms without an answer, which a busy
    // machine can take: twice that is still far from the 100 of a burst.
    assert!(
        (1..=8).contains(&most),
        "{most} connections were open at once before their request came"
    );
    assert_eq!(
        engine.count("counted", |k| matches!(k, EventKind::Started { .. })),
        1,
        "one start"
    );
    engine.stop().await;
}
