//! Switching from the original engine by replacing the binary, black-box: the real `paastis`
//! binary in a working directory holding only what the original engine read (its
//! environment variables, a `.env` file, its `paastis.yml` rules file), against a fake
//! Scalingo API. `check` prints the mapped configuration with its secrets redacted and warns
//! where whole-name patterns change a match; `serve` forwards to the fake's apps.

mod support;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::fakes::scalingo::FakeScalingo;
use support::{TempDir, TestClient, paastis};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const TOKEN: &str = "tk-us-original-secret-0042";

/// Variables the original engine read, plus the generic ones it also read: never inherited
/// from the environment running the tests.
const INHERITED: &[&str] = &[
    "HOST",
    "PORT",
    "REDIS_URL",
    "DATABASE_URL",
    "PROVIDER_NAME",
    "PROVIDER_REGION",
    "PROVIDER_SCALINGO_API_TOKEN",
    "PROVIDER_SCALINGO_OPERATION_TIMEOUT",
    "PROVIDER_SCALINGO_API_URL",
    "PROVIDER_SCALINGO_AUTH_URL",
    "PROVIDER_HEROKU_API_TOKEN",
    "PROVIDER_HEROKU_API_URL",
    "PROVIDER_HEROKU_OPERATION_TIMEOUT",
    "PROVIDER_CLEVER_API_HOST",
    "PROVIDER_CLEVER_OAUTH_CONSUMER_KEY",
    "PROVIDER_CLEVER_OAUTH_CONSUMER_SECRET",
    "PROVIDER_CLEVER_TOKEN",
    "PROVIDER_CLEVER_SECRET",
    "PROVIDER_CLEVER_OPERATION_TIMEOUT",
    "REGISTRY_TYPE",
    "REGISTRY_IGNORED_APPS",
    "REGISTRY_REDIS_URL",
    "START_AND_STOP_CHECKING_INTERVAL_CRON",
    "START_AND_STOP_MAX_IDLE_TIME",
    "HOOKS_BEFORE_START",
    "HOOKS_AFTER_START",
    "HOOKS_BEFORE_STOP",
    "HOOKS_AFTER_STOP",
    "ROUTING_SYSTEM_API_ENABLED",
    "ROUTING_SYSTEM_API_TOKEN",
    "EVENTS_STORE_TYPE",
    "APP",
    "APP_ID",
    "HEROKU_APP_NAME",
];

/// `paastis <args>` run in `dir` with `env` and nothing of the original engine inherited.
fn original_engine(dir: &TempDir, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = paastis();
    for name in INHERITED {
        command.env_remove(name);
    }
    command
        .current_dir(&dir.0)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    command
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn run(dir: &TempDir, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let output = original_engine(dir, args, env)
        .output()
        .await
        .expect("run paastis");
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support/compat")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The words of the `paastis check` table row that starts with `app`.
fn row<'a>(stdout: &'a str, app: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .find(|line| line.split_whitespace().next() == Some(app))
        .unwrap_or_else(|| panic!("no row for {app} in:\n{stdout}"))
        .split_whitespace()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_with_the_original_settings_prints_them_mapped_and_redacted() {
    let fake = FakeScalingo::start(TOKEN).await;
    fake.add_app("shop-pr1-front", &[("web", 1)], true).await;
    fake.add_app("shop-pr1-back", &[("web", 1)], false).await;
    fake.add_app("old-shop-pr2-front", &[("web", 1)], false)
        .await;
    fake.add_app("billing", &[("web", 1)], false).await;
    let dir = TempDir::new("compat-check");
    // The original engine's two files, in the working directory.
    std::fs::write(dir.path(".env"), fixture("original.env")).expect("write .env");
    std::fs::write(dir.path("paastis.yml"), fixture("original-paastis.yml")).expect("write rules");

    let env = [
        // The real environment wins over `.env` (which says 20).
        ("START_AND_STOP_MAX_IDLE_TIME", "25"),
        ("PROVIDER_SCALINGO_API_TOKEN", TOKEN),
        ("PROVIDER_SCALINGO_API_URL", fake.url.as_str()),
        ("PROVIDER_SCALINGO_AUTH_URL", fake.url.as_str()),
        ("PORT", "3999"),
    ];
    let outcome = run(&dir, &["check"], &env).await;
    assert_eq!(
        outcome.code,
        Some(0),
        "{}\n{}",
        outcome.stdout,
        outcome.stderr
    );
    let stdout = &outcome.stdout;

    // The provider from PROVIDER_NAME, reached with the token, and its apps.
    assert_eq!(row(stdout, "scalingo"), ["scalingo", "scalingo", "4", "ok"]);
    for app in [
        "shop-pr1-front",
        "shop-pr1-back",
        "old-shop-pr2-front",
        "billing",
    ] {
        assert_eq!(row(stdout, app)[2], "scalingo", "{stdout}");
    }
    assert_eq!(row(stdout, "shop-pr1-front")[3], "awake", "{stdout}");
    // START_AND_STOP_MAX_IDLE_TIME: minutes.
    assert_eq!(row(stdout, "billing")[4], "25m", "{stdout}");
    // The converted rule applies to the whole name only.
    assert_eq!(row(stdout, "shop-pr1-front")[4], "30m", "{stdout}");
    assert_eq!(row(stdout, "old-shop-pr2-front")[4], "25m", "{stdout}");

    // The mapped configuration, annotated with its sources.
    for line in [
        "From the original engine's settings (secrets redacted):",
        "listen: 0.0.0.0:3999  # PORT",
        "  max_idle: 25m  # START_AND_STOP_MAX_IDLE_TIME",
        "  wake_timeout: 45s  # PROVIDER_SCALINGO_OPERATION_TIMEOUT",
        "  every: 2m  # START_AND_STOP_CHECKING_INTERVAL_CRON",
        "providers:  # PROVIDER_NAME",
        "    region: osc-fr1  # PROVIDER_REGION",
        "    token: <redacted>  # PROVIDER_SCALINGO_API_TOKEN",
        "rules:  # the original rules file",
        "  - pattern: 'shop-pr(\\d+)-front'  # original rules[0].pattern",
        "    linked_apps: ['shop-pr$1-back']  # original rules[0].linked_apps",
        "    max_idle: 30m  # original rules[0].app_max_idle_time",
        "    linked_apps: ['docs-v${1}search']  # original rules[1].linked_apps",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line:?} not in:\n{stdout}"
        );
    }
    // What changes, said once for the file and once for the apps that exist.
    for notice in [
        "warning: original rules[0].pattern `shop-pr(\\d+)-front` matched anywhere in an app name in the original engine; paastis matches whole names",
        "warning: original rules[2].app_name is ignored",
        "note: PROVIDER_SCALINGO_OPERATION_TIMEOUT (seconds) is used as defaults.wake_timeout",
        "note: START_AND_STOP_CHECKING_INTERVAL_CRON `*/2 * * * *` becomes discovery.every: 2m",
        "warning: original rules[0].pattern `shop-pr(\\d+)-front` matched `old-shop-pr2-front` in the original engine; it no longer does (whole-name match)",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(notice)),
            "{notice:?} not in:\n{stdout}"
        );
    }
    assert!(stdout.trim_end().ends_with("configuration OK"), "{stdout}");
    for output in [&outcome.stdout, &outcome.stderr] {
        assert!(!output.contains(TOKEN), "the token leaked into:\n{output}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_only_the_original_variables_forwards_to_an_awake_app() {
    let fake = FakeScalingo::start(TOKEN).await;
    let shop = fake.add_app("shop", &[("web", 1)], true).await;
    let dir = TempDir::new("compat-serve");
    // No configuration file at all, as the original engine ran. A free port for PORT.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
        .to_string();
    let env = [
        ("HOST", "127.0.0.1"),
        ("PORT", port.as_str()),
        ("PROVIDER_NAME", "scalingo"),
        ("PROVIDER_SCALINGO_API_TOKEN", TOKEN),
        ("PROVIDER_SCALINGO_API_URL", fake.url.as_str()),
        ("PROVIDER_SCALINGO_AUTH_URL", fake.url.as_str()),
        ("LOG_FORMAT", "json"),
    ];
    let mut child = original_engine(&dir, &["serve"], &env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn paastis");
    let logs = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let stderr = child.stderr.take().expect("stderr");
    let collected = Arc::clone(&logs);
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut tx = Some(tx);
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(addr) = json.get("addr").and_then(|a| a.as_str())
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(addr.to_owned());
            }
            let mut logs = collected.lock().unwrap_or_else(|p| p.into_inner());
            logs.push_str(&line);
            logs.push('\n');
        }
    });
    let logs_now = || logs.lock().map(|l| l.clone()).unwrap_or_default();
    let addr = match tokio::time::timeout(Duration::from_secs(20), rx).await {
        Ok(Ok(addr)) => addr,
        _ => panic!("paastis did not start:\n{}", logs_now()),
    };
    assert_eq!(
        addr,
        format!("127.0.0.1:{port}"),
        "HOST and PORT are honoured"
    );

    let client = TestClient::new(addr.parse().expect("address"));
    let answer = client.get("shop.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello from shop");
    assert_eq!(shop.hits(), 1);

    let _ = child.start_kill();
    let _ = child.wait().await;
    let logs = logs_now();
    assert!(
        !logs.contains(TOKEN),
        "the token leaked into the log:\n{logs}"
    );
}

#[tokio::test]
async fn the_new_configuration_wins_over_the_original_variables() {
    let dir = TempDir::new("compat-precedence");
    std::fs::write(
        dir.path("paastis.yml"),
        "providers:\n  - id: local\n    type: process\n    apps:\n      - {name: hello, command: \"exec sleep 60\"}\n",
    )
    .expect("write config");
    let outcome = run(
        &dir,
        &["check"],
        &[
            ("PROVIDER_NAME", "scalingo"),
            ("PROVIDER_SCALINGO_API_TOKEN", TOKEN),
            ("START_AND_STOP_MAX_IDLE_TIME", "7"),
        ],
    )
    .await;
    assert_eq!(
        outcome.code,
        Some(0),
        "{}\n{}",
        outcome.stdout,
        outcome.stderr
    );
    let stdout = &outcome.stdout;
    assert_eq!(row(stdout, "local"), ["local", "process", "1", "ok"]);
    assert!(
        !stdout.lines().any(|l| l.starts_with("scalingo")),
        "{stdout}"
    );
    // What the file leaves unset still comes from the environment.
    assert_eq!(row(stdout, "hello")[4], "7m", "{stdout}");
    assert!(
        stdout.contains("note: PROVIDER_NAME is not used: the configuration sets `providers`"),
        "{stdout}"
    );
    assert!(!stdout.contains(TOKEN) && !outcome.stderr.contains(TOKEN));
}

#[tokio::test]
async fn errors_name_the_original_variables() {
    let dir = TempDir::new("compat-errors");
    let outcome = run(
        &dir,
        &["check"],
        &[
            ("PROVIDER_NAME", "scalingo"),
            ("START_AND_STOP_MAX_IDLE_TIME", "a quarter"),
        ],
    )
    .await;
    assert_eq!(outcome.code, Some(2), "{}", outcome.stderr);
    for expected in [
        "defaults.max_idle (from START_AND_STOP_MAX_IDLE_TIME): `a quarter` is not a whole number of minutes",
        "providers[0].token (from PROVIDER_SCALINGO_API_TOKEN): missing (or token_file)",
    ] {
        assert!(
            outcome.stderr.contains(expected),
            "{expected:?} not in:\n{}",
            outcome.stderr
        );
    }
}

#[tokio::test]
async fn env_files_and_missing_config_files() {
    // A malformed `.env` names its line, never its value.
    let dir = TempDir::new("compat-dotenv");
    std::fs::write(
        dir.path(".env"),
        format!("PROVIDER_NAME=scalingo\n# the token:\n{TOKEN}\n"),
    )
    .expect("write .env");
    let outcome = run(&dir, &["check"], &[]).await;
    assert_eq!(outcome.code, Some(2), "{}", outcome.stderr);
    assert!(
        outcome
            .stderr
            .contains(".env line 3: expected NAME=value (or a # comment)"),
        "{}",
        outcome.stderr
    );
    assert!(!outcome.stderr.contains(TOKEN), "{}", outcome.stderr);

    // Without any setting of the original engine, a missing paastis.yml is still an error...
    let empty = TempDir::new("compat-empty");
    let outcome = run(&empty, &["check"], &[("PORT", "3000")]).await;
    assert_eq!(outcome.code, Some(2), "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("cannot read paastis.yml"),
        "{}",
        outcome.stderr
    );
    // ... and so is a configuration file named explicitly that does not exist.
    let outcome = run(
        &empty,
        &["check", "--config", "elsewhere.yml"],
        &[("PROVIDER_NAME", "scalingo")],
    )
    .await;
    assert_eq!(outcome.code, Some(2), "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("cannot read elsewhere.yml"),
        "{}",
        outcome.stderr
    );
}

/// Managed apps with what decides their fate: name, idle time, linked apps.
fn managed(engine: &support::TestEngine) -> Vec<(String, Option<Duration>, Vec<String>)> {
    let mut apps: Vec<_> = engine
        .lifecycle
        .apps()
        .iter()
        .map(|app| {
            (
                app.key.name.to_string(),
                app.policy().max_idle,
                app.conf().linked_names.clone(),
            )
        })
        .collect();
    apps.sort();
    apps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_settings_run_the_same_scenario_as_their_new_style_twin() {
    // One platform account each, with the same apps, all asleep.
    let mut fakes = Vec::new();
    for _ in 0..2 {
        let fake = FakeScalingo::start(TOKEN).await;
        for name in ["shop-pr1-front", "shop-pr1-back", "shop-old", "docs"] {
            fake.add_app(name, &[("web", 1)], false).await;
        }
        fakes.push(fake);
    }
    let original_env: std::collections::HashMap<String, String> = [
        ("PROVIDER_NAME", "scalingo"),
        ("PROVIDER_SCALINGO_API_TOKEN", TOKEN),
        ("PROVIDER_SCALINGO_API_URL", fakes[0].url.as_str()),
        ("PROVIDER_SCALINGO_AUTH_URL", fakes[0].url.as_str()),
        ("START_AND_STOP_MAX_IDLE_TIME", "20"),
        ("REGISTRY_IGNORED_APPS", "shop-old"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let original_rules = "rules:\n  - pattern: '^shop-pr(\\d+)-front$'\n    linked_apps: ['shop-pr$1-back']\n    app_max_idle_time: 30\n";
    let twin = format!(
        r#"
defaults: {{max_idle: 20m}}
discovery: {{exclude: [shop-old]}}
rules:
  - {{pattern: 'shop-pr(\d+)-front', linked_apps: ['shop-pr$1-back'], max_idle: 30m}}
providers:
  - {{id: scalingo, type: scalingo, token: {TOKEN}, api_url: '{0}', auth_url: '{0}'}}
"#,
        fakes[1].url
    );

    let original = support::TestEngine::start_with_env(original_rules, &original_env).await;
    let new_style = support::TestEngine::start(&twin).await;
    assert_eq!(managed(&original), managed(&new_style));
    assert_eq!(
        managed(&new_style),
        vec![
            ("docs".to_owned(), Some(Duration::from_secs(1200)), vec![]),
            (
                "shop-pr1-back".to_owned(),
                Some(Duration::from_secs(1200)),
                vec![]
            ),
            (
                "shop-pr1-front".to_owned(),
                Some(Duration::from_secs(1800)),
                vec!["shop-pr1-back".to_owned()]
            ),
        ]
    );

    // The same request wakes the same apps in both.
    for (engine, fake) in [(&original, &fakes[0]), (&new_style, &fakes[1])] {
        let answer = support::TestClient::new(engine.addr)
            .get("shop-pr1-front.localhost", "/")
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        engine
            .wait_state(
                "shop-pr1-back",
                paastis::model::State::Awake,
                Duration::from_secs(15),
            )
            .await;
        assert_eq!(fake.formation("shop-pr1-back"), vec![("web".to_owned(), 1)]);
        assert_eq!(fake.formation("docs"), vec![("web".to_owned(), 0)]);
    }
    original.stop().await;
    new_style.stop().await;
}
