//! The admin API's command-line clients (`paastis apps`, `events`, `providers`), black-box:
//! the real binary against the whole engine served in-process with real `process` apps.
//! Tables and `--json`, starts and stops seen in the engine, pins, `events --follow`, and
//! the exit codes scripts rely on (3 unreachable, 4 unauthorized, 5 unknown app).

mod support;

use std::process::Stdio;
use std::time::Duration;

use paastis::model::State;
use serde_json::Value;
use support::{Outcome, TestEngine, paastis, upstream_command};

const TOKEN: &str = "cli-tok-Secret-4242";

/// Two apps that start, one that never does.
fn config() -> String {
    format!(
        r#"
defaults: {{max_idle: 15m}}
admin: {{token: {TOKEN}}}
providers:
  - id: local
    type: process
    apps:
      - name: web
        command: "{command}"
        env: {{APP_NAME: web}}
      - name: api
        command: "{command}"
        env: {{APP_NAME: api}}
      - name: broken
        command: "exit 3"
"#,
        command = upstream_command(),
    )
}

/// Runs `paastis <args>` (20 s at most).
async fn run(args: &[&str]) -> Outcome {
    let output = tokio::time::timeout(
        Duration::from_secs(20),
        paastis().args(args).stdin(Stdio::null()).output(),
    )
    .await
    .unwrap_or_else(|_| panic!("paastis {args:?} did not finish within 20 s"))
    .expect("run paastis");
    Outcome::from(output)
}

/// The API URL of the engine's admin listener.
fn api_url(engine: &TestEngine) -> String {
    format!("http://{}", engine.admin_addr)
}

/// Runs `paastis <args> --api-url <engine> --token <TOKEN>`.
async fn cli(engine: &TestEngine, args: &[&str]) -> Outcome {
    let url = api_url(engine);
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--api-url", &url, "--token", TOKEN]);
    run(&all).await
}

/// Like [`cli`], and the run must succeed.
async fn ok(engine: &TestEngine, args: &[&str]) -> Outcome {
    let outcome = cli(engine, args).await;
    assert_eq!(
        outcome.code,
        Some(0),
        "paastis {args:?}\nstdout: {}\nstderr: {}",
        outcome.stdout,
        outcome.stderr
    );
    outcome
}

/// The app names of an `{"apps": [...]}` document.
fn names(list: &Value) -> Vec<String> {
    list["apps"]
        .as_array()
        .expect("apps array")
        .iter()
        .map(|app| app["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Runs `paastis events --follow <args>`, runs `command` after `settle`, lets the follow
/// print for 2 s more, then kills it and returns what it printed.
async fn follow_while(
    engine: &TestEngine,
    args: &[&str],
    settle: Duration,
    command: &[&str],
) -> std::process::Output {
    let follow = paastis()
        .args(["events", "--follow"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn paastis events --follow");
    tokio::time::sleep(settle).await;
    ok(engine, command).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let mut follow = follow;
    follow.start_kill().expect("kill follow");
    follow.wait_with_output().await.expect("follow output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_list_prints_a_table_and_the_api_json() {
    let engine = TestEngine::start(&config()).await;
    let table = ok(&engine, &["apps", "list"]).await;
    let lines: Vec<&str> = table.stdout.lines().collect();
    let header: Vec<&str> = lines[0]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        ["APP", "PROVIDER", "STATE", "SLEEPS IN", "LAST WAKE"]
    );
    for app in ["web", "api", "broken"] {
        let line = lines
            .iter()
            .find(|line| line.split_whitespace().next() == Some(app))
            .unwrap_or_else(|| panic!("no line for {app}: {}", table.stdout));
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[1..], ["local", "asleep", "-", "-"], "{line}");
    }
    // The API's JSON, as it is.
    let json = ok(&engine, &["apps", "list", "--json"]).await.json();
    assert_eq!(names(&json), ["api", "broken", "web"]);
    assert_eq!(json["apps"][2]["provider"], "local");
    assert_eq!(json["apps"][2]["state"], "asleep");
    // Filters go to the API; --json may come before the subcommand too.
    let filtered = ok(&engine, &["apps", "--json", "list", "--name", "w*"]).await;
    assert_eq!(names(&filtered.json()), ["web"]);
    let none = ok(&engine, &["apps", "list", "--json", "--provider", "other"]).await;
    assert_eq!(names(&none.json()), Vec::<String>::new());
    let awake = ok(&engine, &["apps", "list", "--state", "awake"]).await;
    assert!(awake.stdout.contains("(no app)"), "{}", awake.stdout);
    // A state the API does not know is a usage error, found before any call.
    let bad = cli(&engine, &["apps", "list", "--state", "dancing"]).await;
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    // The token and URL may come from the environment.
    let output = paastis()
        .args(["apps", "list", "--json"])
        .env("PAASTIS_API_URL", api_url(&engine))
        .env("PAASTIS_ADMIN_TOKEN", TOKEN)
        .output()
        .await
        .expect("run paastis");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        names(&serde_json::from_slice(&output.stdout).expect("json")).len(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_wait_stop_and_the_events_they_leave() {
    let engine = TestEngine::start(&config()).await;
    let started = ok(&engine, &["apps", "start", "web", "--wait"]).await;
    assert_eq!(engine.state("web"), State::Awake);
    assert!(
        started.stdout.starts_with("local/web is awake"),
        "{}",
        started.stdout
    );
    // Not a terminal: one plain line instead of the spinner.
    assert!(
        started.stderr.contains("waiting for local/web..."),
        "{}",
        started.stderr
    );
    let shown = ok(&engine, &["apps", "show", "local/web"]).await;
    assert!(shown.stdout.contains("state:"), "{}", shown.stdout);
    let state_line = shown
        .stdout
        .lines()
        .find(|line| line.starts_with("state:"))
        .unwrap_or_default();
    assert!(state_line.ends_with("awake"), "{}", shown.stdout);
    assert!(
        shown.stdout.contains("API request"),
        "last wake cause: {}",
        shown.stdout
    );
    let listed = ok(&engine, &["apps", "list", "--state", "awake", "--json"]).await;
    assert_eq!(names(&listed.json()), ["web"]);

    let stopped = ok(&engine, &["apps", "stop", "web", "--json"]).await;
    assert_eq!(stopped.json()["name"], "web");
    engine
        .wait_state("web", State::Asleep, Duration::from_secs(10))
        .await;
    // Stopping an asleep app: the API's 409, exit 1, its message on stderr.
    let again = cli(&engine, &["apps", "stop", "web"]).await;
    assert_eq!(again.code, Some(1), "{}", again.stderr);
    assert!(
        again.stderr.contains("only an awake app"),
        "{}",
        again.stderr
    );
    assert!(again.stderr.contains("409"), "{}", again.stderr);

    // A wake that fails: exit 1 with the reason.
    let broken = cli(&engine, &["apps", "start", "broken", "--wait"]).await;
    assert_eq!(broken.code, Some(1), "{}", broken.stderr);
    assert!(broken.stderr.contains("broken"), "{}", broken.stderr);

    // Events reach the store in the background.
    let mut kinds = Vec::new();
    for _ in 0..50 {
        let events = ok(&engine, &["events", "--app", "web", "--json"])
            .await
            .json();
        kinds = events["events"]
            .as_array()
            .expect("events array")
            .iter()
            .map(|event| event["kind"].as_str().unwrap_or_default().to_owned())
            .collect();
        if kinds.iter().any(|kind| kind == "stopped") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(kinds.iter().any(|kind| kind == "stopped"), "{kinds:?}");
    // Newest first, as the API answers.
    let stopped_at = kinds.iter().position(|k| k == "stopped");
    let started_at = kinds.iter().position(|k| k == "started");
    assert!(stopped_at < started_at, "{kinds:?}");
    // The table: oldest first, with the columns.
    let table = ok(
        &engine,
        &["events", "--app", "local/web", "--kind", "started,stopped"],
    )
    .await;
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(lines[0].starts_with("TIME"), "{}", table.stdout);
    assert!(lines[0].contains("APP") && lines[0].contains("KIND") && lines[0].contains("DETAILS"));
    assert_eq!(lines.len(), 3, "{}", table.stdout);
    assert!(
        lines[1].contains("local/web") && lines[1].contains("started"),
        "{}",
        table.stdout
    );
    assert!(lines[2].contains("stopped"), "{}", table.stdout);
    let limited = ok(&engine, &["events", "--limit", "1", "--json"])
        .await
        .json();
    assert_eq!(limited["events"].as_array().map(Vec::len), Some(1));
    assert!(limited["next_cursor"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_prints_what_happens_meanwhile() {
    let engine = TestEngine::start(&config()).await;
    let url = api_url(&engine);
    let output = follow_while(
        &engine,
        &["--app", "api", "--api-url", &url, "--token", TOKEN],
        Duration::from_millis(700),
        &["apps", "start", "api", "--wait"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("TIME"), "{stdout}");
    let wake = lines
        .iter()
        .position(|line| line.contains("local/api") && line.contains("wake_requested"))
        .unwrap_or_else(|| {
            panic!(
                "no wake_requested line:\n{stdout}\nstderr: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let started = lines
        .iter()
        .position(|line| line.contains("local/api") && line.contains("started"))
        .unwrap_or_else(|| panic!("no started line:\n{stdout}"));
    assert!(wake < started, "in order: {stdout}");
    // Each event once.
    assert_eq!(
        lines.iter().filter(|line| line.contains("started")).count(),
        1,
        "{stdout}"
    );
    assert!(
        lines.iter().all(|line| !line.contains("local/web")),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_json_prints_one_event_per_line() {
    let engine = TestEngine::start(&config()).await;
    let url = api_url(&engine);
    let output = follow_while(
        &engine,
        &[
            "--json",
            "--kind",
            "started",
            "--api-url",
            &url,
            "--token",
            TOKEN,
        ],
        Duration::from_millis(500),
        &["apps", "start", "web", "--wait"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let events: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert_eq!(events.len(), 1, "{stdout}");
    assert_eq!(events[0]["kind"], "started");
    assert_eq!(events[0]["app"], "web");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_apps_exit_5_and_ambiguous_names_exit_2() {
    let yaml = format!(
        r#"
admin: {{token: {TOKEN}}}
providers:
  - id: one
    type: process
    apps: [{{name: web, command: "exec sleep 60"}}, {{name: solo, command: "exec sleep 60"}}]
  - id: two
    type: process
    apps: [{{name: web, command: "exec sleep 60"}}]
"#
    );
    let engine = TestEngine::start(&yaml).await;
    for args in [
        &["apps", "show", "nope"][..],
        &["apps", "show", "one/nope"],
        &["apps", "start", "nope", "--wait"],
        &["apps", "stop", "two/solo"],
        &["apps", "pin", "nope", "--until", "1h"],
    ] {
        let outcome = cli(&engine, args).await;
        assert_eq!(outcome.code, Some(5), "{args:?}: {}", outcome.stderr);
        assert!(outcome.stderr.contains("nope") || outcome.stderr.contains("solo"));
        assert!(outcome.stdout.is_empty(), "{}", outcome.stdout);
    }
    let ambiguous = cli(&engine, &["apps", "show", "web"]).await;
    assert_eq!(ambiguous.code, Some(2), "{}", ambiguous.stderr);
    assert!(
        ambiguous.stderr.contains("one/web") && ambiguous.stderr.contains("two/web"),
        "{}",
        ambiguous.stderr
    );
    // Named with its provider, or alone when unique: found.
    let shown = ok(&engine, &["apps", "show", "two/web", "--json"])
        .await
        .json();
    assert_eq!(shown["provider"], "two");
    let solo = ok(&engine, &["apps", "show", "solo"]).await;
    assert!(solo.stdout.contains("provider:"), "{}", solo.stdout);
    assert!(
        solo.stdout
            .lines()
            .any(|l| l.starts_with("provider:") && l.ends_with("one"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_token_exits_4_without_printing_it() {
    let engine = TestEngine::start(&config()).await;
    let url = api_url(&engine);
    let wrong = "wrong-token-SHOULD-NOT-APPEAR";
    for args in [
        &["apps", "list"][..],
        &["apps", "show", "local/web"],
        &["apps", "start", "local/web"],
        &["events"],
        &["providers", "--json"],
    ] {
        let mut all = args.to_vec();
        all.extend(["--api-url", &url, "--token", wrong]);
        let outcome = run(&all).await;
        assert_eq!(outcome.code, Some(4), "{args:?}: {}", outcome.stderr);
        assert!(
            outcome.stderr.contains("unauthorized"),
            "{}",
            outcome.stderr
        );
        assert!(!outcome.stderr.contains(wrong), "{}", outcome.stderr);
        assert!(!outcome.stdout.contains(wrong), "{}", outcome.stdout);
    }
    // From the environment: the same, and `--help` does not show it either.
    let output = paastis()
        .args(["apps", "list", "--api-url", &url])
        .env("PAASTIS_ADMIN_TOKEN", wrong)
        .output()
        .await
        .expect("run paastis");
    assert_eq!(output.status.code(), Some(4));
    assert!(!String::from_utf8_lossy(&output.stderr).contains(wrong));
    let help = paastis()
        .args(["apps", "list", "--help"])
        .env("PAASTIS_ADMIN_TOKEN", wrong)
        .output()
        .await
        .expect("run paastis");
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--token") && !help.contains(wrong), "{help}");
    // No token at all.
    let missing = run(&["apps", "list", "--api-url", &url]).await;
    assert_eq!(missing.code, Some(4), "{}", missing.stderr);
    assert!(missing.stderr.contains("--token"), "{}", missing.stderr);
    // Nothing was woken by any of those.
    assert_eq!(engine.state("web"), State::Asleep);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_url_where_nothing_listens_exits_3() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}");
    for args in [
        &["apps", "list"][..],
        &["apps", "start", "web", "--wait"],
        &["events", "--follow"],
        &["providers"],
    ] {
        let mut all = args.to_vec();
        all.extend(["--api-url", &url, "--token", TOKEN]);
        let outcome = run(&all).await;
        assert_eq!(outcome.code, Some(3), "{args:?}: {}", outcome.stderr);
        assert!(
            outcome.stderr.contains("cannot reach the admin API") && outcome.stderr.contains(&url),
            "{}",
            outcome.stderr
        );
        assert!(!outcome.stderr.contains(TOKEN), "{}", outcome.stderr);
    }
    // Not a URL at all: a usage error, not an unreachable API.
    let bad = run(&["apps", "list", "--api-url", "127.0.0.1 3001"]).await;
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    // The existing commands still want their configuration (and still exit 2 without it).
    let check = run(&["check", "--config", "/nonexistent/paastis.yml"]).await;
    assert_eq!(check.code, Some(2), "{}", check.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_list_their_apps_and_health() {
    let engine = TestEngine::start(&config()).await;
    let json = ok(&engine, &["providers", "--json"]).await.json();
    let providers = json["providers"].as_array().expect("providers array");
    assert_eq!(providers.len(), 1);
    assert_eq!(providers[0]["id"], "local");
    assert_eq!(providers[0]["type"], "process");
    assert_eq!(providers[0]["apps"], 3);
    assert_eq!(providers[0]["healthy"], true);
    let table = ok(&engine, &["providers"]).await;
    let lines: Vec<&str> = table.stdout.lines().collect();
    let header: Vec<&str> = lines[0]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(header, ["ID", "TYPE", "APPS", "HEALTH", "LAST ERROR"]);
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(cells, ["local", "process", "3", "ok", "-"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_for_a_duration_then_unpin() {
    let engine = TestEngine::start(&config()).await;
    let before = chrono::Utc::now();
    let pinned = ok(&engine, &["apps", "pin", "web", "--until", "2h"]).await;
    assert!(
        pinned.stdout.starts_with("local/web is pinned until "),
        "{}",
        pinned.stdout
    );
    let shown = ok(&engine, &["apps", "show", "web"]).await;
    let line = shown
        .stdout
        .lines()
        .find(|line| line.starts_with("pinned until:"))
        .unwrap_or_else(|| panic!("no pinned line: {}", shown.stdout));
    assert!(!line.ends_with(" -"), "{line}");
    assert!(
        shown
            .stdout
            .lines()
            .any(|l| l.starts_with("sleeps in:") && l.ends_with("pinned")),
        "{}",
        shown.stdout
    );
    let json = ok(&engine, &["apps", "show", "local/web", "--json"])
        .await
        .json();
    let until = json["pinned_until"].as_str().expect("pinned_until");
    let until = chrono::DateTime::parse_from_rfc3339(until).expect("RFC 3339");
    let ahead = until.with_timezone(&chrono::Utc) - before;
    assert!(
        ahead > chrono::Duration::minutes(119) && ahead < chrono::Duration::minutes(121),
        "{ahead}"
    );
    // Forever, then unpinned.
    let forever = ok(&engine, &["apps", "pin", "local/web", "--json"])
        .await
        .json();
    assert_eq!(forever["pinned_until"], "forever");
    let unpinned = ok(&engine, &["apps", "unpin", "web"]).await;
    assert!(unpinned.stdout.contains("unpinned"), "{}", unpinned.stdout);
    let json = ok(&engine, &["apps", "show", "web", "--json"]).await.json();
    assert!(json["pinned_until"].is_null(), "{json}");
    // A time that is neither: a usage error, before any call.
    let bad = cli(&engine, &["apps", "pin", "web", "--until", "tomorrow"]).await;
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert!(bad.stderr.contains("tomorrow"), "{}", bad.stderr);
    // A time in the past: the API's 400, exit 1.
    let past = cli(
        &engine,
        &["apps", "pin", "web", "--until", "2001-01-01T00:00:00Z"],
    )
    .await;
    assert_eq!(past.code, Some(1), "{}", past.stderr);
    assert!(past.stderr.contains("future"), "{}", past.stderr);
}

/// A TCP relay in front of the admin API that can cut every connection and refuse new
/// ones for a while (a network that drops), to see `events --follow` reconnect.
struct Relay {
    addr: std::net::SocketAddr,
    /// True: connections are cut and new ones refused.
    cut: tokio::sync::watch::Sender<bool>,
    /// Connections relayed so far.
    relayed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(to: std::net::SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cut = tokio::sync::watch::Sender::new(false);
        let relayed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (cuts, count) = (cut.clone(), std::sync::Arc::clone(&relayed));
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if *cuts.borrow() {
                    continue;
                }
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut cut = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(to).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Relay {
            addr,
            cut,
            relayed,
            task,
        }
    }

    fn relayed(&self) -> usize {
        self.relayed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads lines from `lines` until one satisfies `wanted` (within a minute: a guard against
/// a hang, not a timing).
async fn line_until(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    seen: &mut Vec<Value>,
    wanted: impl Fn(&Value) -> bool,
) {
    loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("paastis events --follow printed nothing for a minute")
            .expect("read stdout")
            .expect("paastis events --follow ended");
        let event: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let done = wanted(&event);
        seen.push(event);
        if done {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_reconnects_and_misses_nothing_when_the_connection_drops() {
    use tokio::io::AsyncBufReadExt;
    let engine = TestEngine::start(&config()).await;
    let relay = Relay::start(engine.admin_addr).await;
    let url = format!("http://{}", relay.addr);
    let mut follow = paastis()
        .args(["events", "--follow", "--json", "--kind", "started,stopped"])
        .args(["--api-url", &url, "--token", TOKEN])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn paastis events --follow");
    let mut lines = tokio::io::BufReader::new(follow.stdout.take().expect("stdout")).lines();
    // The first page (a call of its own), then the stream.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while relay.relayed() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the follow never connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let is = |app: &'static str, kind: &'static str| {
        move |event: &Value| event["app"] == app && event["kind"] == kind
    };
    let mut seen = Vec::new();
    ok(&engine, &["apps", "start", "web", "--wait"]).await;
    line_until(&mut lines, &mut seen, is("web", "started")).await;

    // The connection drops; meanwhile web stops and api starts.
    relay.cut.send_replace(true);
    ok(&engine, &["apps", "stop", "web"]).await;
    ok(&engine, &["apps", "start", "api", "--wait"]).await;
    engine
        .wait_state("web", State::Asleep, Duration::from_secs(60))
        .await;
    let relayed = relay.relayed();
    relay.cut.send_replace(false);
    line_until(&mut lines, &mut seen, is("api", "started")).await;
    assert!(relay.relayed() > relayed, "it reconnected");
    follow.start_kill().expect("kill follow");

    let printed: Vec<(String, String)> = seen
        .iter()
        .map(|e| {
            (
                e["app"].as_str().unwrap_or_default().to_owned(),
                e["kind"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(a, k)| ((*a).to_owned(), (*k).to_owned()))
            .collect()
    };
    assert_eq!(
        printed,
        pairs(&[("web", "started"), ("web", "stopped"), ("api", "started")]),
        "each event once, in order: {seen:?}"
    );
    let ids: Vec<i64> = seen.iter().filter_map(|e| e["id"].as_i64()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}
