//! The `paastis` binary, black-box: invalid configurations exit with code 2 and name the
//! path; `check` prints the managed apps; SIGTERM drains requests, stops the apps and exits
//! 0; secrets never reach the output.

mod support;

use std::time::Duration;

use support::{TempDir, TestClient, paastis, process_running, serve, upstream_command};

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn run(args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let output = paastis()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run paastis");
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

const APP: &str = r#"
providers:
  - id: local
    type: process
    apps:
      - {name: hello, command: "exec sleep 60"}
"#;

#[tokio::test]
async fn invalid_configs_exit_2_and_name_the_path() {
    let dir = TempDir::new("cli-invalid");
    // (what, config, environment, expected in stderr)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            "bad yaml",
            "listen: [127.0.0.1\n",
            &[],
            "invalid YAML: line 1",
        ),
        (
            "duplicate yaml key",
            "listen: a\nlisten: b\n",
            &[],
            "duplicate mapping key",
        ),
        (
            "unknown key",
            "listn: 127.0.0.1:3000\n",
            &[],
            "listn: unknown key",
        ),
        (
            "duplicate app names",
            "providers: [{id: p, type: process, apps: [{name: a, command: x}, {name: a, command: y}]}]",
            &[],
            "providers[0].apps[1].name: duplicate app name `a`",
        ),
        (
            "bad duration",
            "defaults: {max_idle: 15}\n",
            &[],
            "defaults.max_idle: `15` is not a duration",
        ),
        (
            "missing command",
            "providers: [{id: p, type: process, apps: [{name: a}]}]",
            &[],
            "providers[0].apps[0].command: missing",
        ),
        (
            "port out of range",
            "providers: [{id: p, type: process, apps: [{name: a, command: x, port: 70000}]}]",
            &[],
            "providers[0].apps[0].port: must be 1..65535",
        ),
        (
            "unknown provider type",
            "providers: [{id: p, type: nomad}]",
            &[],
            "providers[0].type: `nomad` is not a provider type",
        ),
        (
            "missing provider id",
            "providers: [{type: process, apps: []}]",
            &[],
            "providers[0].id: missing",
        ),
        (
            "bad listen",
            "listen: everywhere\n",
            &[],
            "listen: `everywhere` is not an address",
        ),
        (
            "unset variable",
            "domains: ['${PAASTIS_TEST_UNSET_VARIABLE}']\n",
            &[],
            "domains[0]: environment variable PAASTIS_TEST_UNSET_VARIABLE is not set",
        ),
        (
            "wrong shape",
            "providers: {id: p}\n",
            &[],
            "providers: expected a list, found a mapping",
        ),
        (
            "invalid app name",
            "providers: [{id: p, type: process, apps: [{name: My_App, command: x}]}]",
            &[],
            "providers[0].apps[0].name: `My_App` is not a valid app name",
        ),
        (
            "bad override",
            "",
            &[("PAASTIS_DEFAULTS__WAKE_TIMEOUT", "0s")],
            "defaults.wake_timeout (from PAASTIS_DEFAULTS__WAKE_TIMEOUT): must be longer than 0s",
        ),
    ];
    for (index, (name, yaml, env, expected)) in cases.iter().enumerate() {
        let file = dir.path(&format!("case{index}.yml"));
        std::fs::write(&file, yaml).expect("write config");
        let file = file.to_string_lossy().into_owned();
        for command in ["check", "serve"] {
            let outcome = run(&[command, "--config", &file], env).await;
            assert_eq!(
                outcome.code,
                Some(2),
                "{name} ({command}): {}",
                outcome.stderr
            );
            assert!(
                outcome.stderr.contains(expected),
                "{name} ({command}): expected {expected:?} in:\n{}",
                outcome.stderr
            );
        }
    }

    // Several errors at once are all reported.
    let file = dir.path("many.yml");
    std::fs::write(&file, "listen: x\ndefaults: {strategy: fast}\nfoo: 1\n").expect("write");
    let outcome = run(&["check", "--config", &file.to_string_lossy()], &[]).await;
    assert_eq!(outcome.code, Some(2));
    assert!(
        outcome.stderr.contains("invalid configuration (3 errors)"),
        "{}",
        outcome.stderr
    );

    // A missing file says so.
    let outcome = run(&["check", "--config", "/nonexistent/paastis.yml"], &[]).await;
    assert_eq!(outcome.code, Some(2));
    assert!(
        outcome
            .stderr
            .contains("cannot read /nonexistent/paastis.yml"),
        "{}",
        outcome.stderr
    );
}

#[tokio::test]
async fn check_prints_the_managed_apps() {
    let dir = TempDir::new("cli-check");
    let file = dir.path("paastis.yml");
    std::fs::write(&file, format!("domains: [proxy.example.test]\n{APP}")).expect("write");
    let outcome = run(&["check", "--config", &file.to_string_lossy()], &[]).await;
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    let providers: Vec<Vec<&str>> = outcome
        .stdout
        .lines()
        .take(2)
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(
        providers,
        [
            vec!["PROVIDER", "TYPE", "APPS", "STATUS"],
            vec!["local", "process", "1", "ok"]
        ],
        "{}",
        outcome.stdout
    );
    assert!(
        outcome.stdout.lines().any(|line| line.starts_with("APP ")),
        "{}",
        outcome.stdout
    );
    let row = outcome
        .stdout
        .lines()
        .find(|line| line.starts_with("hello"))
        .unwrap_or_else(|| panic!("no hello row in {}", outcome.stdout));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "hello",
            "hello.proxy.example.test",
            "local",
            "asleep",
            "15m"
        ]
    );
    assert!(outcome.stdout.contains("configuration OK"));

    let version = run(&["--version"], &[]).await;
    assert_eq!(version.code, Some(0));
    assert!(version.stdout.starts_with("paastis "), "{}", version.stdout);
    let help = run(&["--help"], &[]).await;
    assert!(
        help.stdout.contains("serve") && help.stdout.contains("check"),
        "{}",
        help.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_long_request_finish_then_exits_0_with_no_app_left() {
    let dir = TempDir::new("cli-sigterm");
    let file = dir.path("paastis.yml");
    std::fs::write(
        &file,
        format!(
            "providers:\n  - id: local\n    type: process\n    apps:\n      - {{name: hello, command: \"{}\"}}\n",
            upstream_command()
        ),
    )
    .expect("write");
    let mut served = serve(&file, &[]).await;
    let client = TestClient::new(served.addr);
    let pid: i32 = client.pid("hello.localhost").await;
    assert!(process_running(pid));

    let long = {
        let client = client.clone();
        tokio::spawn(async move { client.get("hello.localhost", "/slow?ms=2000").await })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let engine_pid = served
        .child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .expect("pid");
    support::signal(engine_pid, nix::sys::signal::Signal::SIGTERM);

    let answer = long.await.expect("request task");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "slow 2000");
    let status = tokio::time::timeout(Duration::from_secs(20), served.child.wait())
        .await
        .expect("paastis exits")
        .expect("wait");
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        served.logs.lock().map(|l| l.clone()).unwrap_or_default()
    );
    assert!(
        !process_running(pid),
        "app process {pid} survived the engine"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_output() {
    const SECRET: &str = "s3cr3t-value-4242";
    const BEARER: &str = "bearer-token-9191";
    const COOKIE: &str = "session-cookie-7373";
    let dir = TempDir::new("cli-secrets");
    let file = dir.path("paastis.yml");
    std::fs::write(
        &file,
        format!(
            "providers:\n  - id: local\n    type: process\n    apps:\n      - name: hello\n        command: \"{}\"\n        env: {{API_KEY: '${{APP_SECRET}}'}}\n",
            upstream_command()
        ),
    )
    .expect("write");
    let env = [("APP_SECRET", SECRET), ("LOG_LEVEL", "trace")];
    let check = run(&["check", "--config", &file.to_string_lossy()], &env).await;
    assert_eq!(check.code, Some(0), "{}", check.stderr);

    let mut served = serve(&file, &env).await;
    let client = TestClient::new(served.addr);
    let authorization = format!("Bearer {BEARER}");
    let cookie = format!("sid={COOKIE}");
    let answer = client
        .send(
            "GET",
            "hello.localhost",
            &format!("/headers?token={SECRET}"),
            &[("authorization", &authorization), ("cookie", &cookie)],
            Default::default(),
        )
        .await;
    assert_eq!(answer.status, 200);
    // The app itself does get them.
    assert!(answer.text().contains(BEARER));
    served.stop().await;

    let logs = served.logs.lock().map(|l| l.clone()).unwrap_or_default();
    assert!(logs.contains("waking"), "logs were not collected: {logs}");
    for output in [&check.stdout, &check.stderr, &logs] {
        for secret in [SECRET, BEARER, COOKIE] {
            assert!(!output.contains(secret), "{secret} leaked into:\n{output}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_log_pipe_loses_the_logs_and_nothing_else() {
    use tokio::io::AsyncBufReadExt;
    let dir = TempDir::new("cli-closed-logs");
    let file = dir.path("paastis.yml");
    std::fs::write(
        &file,
        format!(
            "providers:\n  - id: local\n    type: process\n    apps:\n      - {{name: hello, command: \"{}\", env: {{APP_NAME: hello}}}}\n",
            upstream_command()
        ),
    )
    .expect("write");
    let mut child = paastis()
        .args([
            "serve",
            "--config",
            &file.to_string_lossy(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("LOG_FORMAT", "json")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn paastis");
    // Read the logs until the address, then close the pipe: whoever read the logs is gone.
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("paastis printed its address")
            .expect("read")
            .expect("paastis printed its address");
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line)
            && let Some(addr) = json["addr"].as_str()
        {
            break addr.parse::<std::net::SocketAddr>().expect("address");
        }
    };
    drop(lines);

    // Waking the app logs all along: every request is answered all the same.
    let client = TestClient::new(addr);
    let answer = client.get("hello.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello from hello");
    let pid = client.pid("hello.localhost").await;
    for _ in 0..20 {
        assert_eq!(client.get("hello.localhost", "/").await.status, 200);
    }
    assert_eq!(client.get("nothing.localhost", "/").await.status, 404);
    // And it still stops as it should: the app with it, exit code 0.
    let engine = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .expect("pid");
    support::signal(engine, nix::sys::signal::Signal::SIGTERM);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("paastis exits")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
    assert!(
        !process_running(pid),
        "app process {pid} survived the engine"
    );
}

/// An engine killed with SIGKILL cannot stop its apps, which run in their own process
/// groups: the next engine that runs the same app stops what it left running (which holds
/// the app's port) before it starts the app anew, and keeps no record of it after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_engine_stops_the_apps_a_killed_engine_left_running() {
    let dir = TempDir::new("cli-left-running");
    let file = dir.path("paastis.yml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    std::fs::write(
        &file,
        format!(
            "providers:\n  - id: left\n    type: process\n    apps:\n      - {{name: hello, command: \"{}\", port: {port}, stop_timeout: 5s}}\n",
            upstream_command()
        ),
    )
    .expect("write");
    // The records go to the test's own directory (as `$XDG_RUNTIME_DIR/paastis`).
    let runtime = dir.path("run");
    std::fs::create_dir(&runtime).expect("mkdir");
    let runtime_env = runtime.to_string_lossy().into_owned();
    let env = [("XDG_RUNTIME_DIR", runtime_env.as_str())];
    let records = runtime.join("paastis");
    let count_records = || {
        std::fs::read_dir(&records)
            .map(|entries| entries.count())
            .unwrap_or(0)
    };

    let mut first = serve(&file, &env).await;
    let left = TestClient::new(first.addr).pid("hello.localhost").await;
    assert_eq!(count_records(), 1, "the running app is recorded");
    first.child.kill().await.expect("SIGKILL the engine");
    assert!(
        process_running(left),
        "the killed engine's app {left} still runs"
    );

    let mut second = serve(&file, &env).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while process_running(left) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the app {left} left running was never stopped:\n{}",
            second.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = TestClient::new(second.addr);
    let answer = client.get("hello.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}\n{}", answer.text(), second.logs());
    let pid = client.pid("hello.localhost").await;
    assert_ne!(pid, left);
    assert!(second.logs().contains("left running"), "{}", second.logs());
    assert_eq!(count_records(), 1, "only the new process is recorded");

    second.stop().await;
    assert!(
        !process_running(pid),
        "app process {pid} survived the engine"
    );
    assert_eq!(count_records(), 0, "a stopped app leaves no record");
}
