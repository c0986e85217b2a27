//! What the commands the engine runs inherit of its environment, with the real binary: a
//! `process` app and a hook each dump their environment; the engine's tokens, keys and
//! connection strings (by name, and by value under an inherited name) are not there, its
//! `PATH`, the config's `env:` and the variables the engine sets are.

mod support;

use std::path::Path;
use std::time::Duration;

use support::{TempDir, TestClient};

const ADMIN_TOKEN: &str = "admin-token-from-env-0123456789";
const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const SCALINGO_TOKEN: &str = "tk-us-original-engine-secret-77";
const REDIS_URL: &str = "redis://:redis-password-99@127.0.0.1:1";
const DATABASE_URL: &str = "postgres://paastis:db-password-88@127.0.0.1:1/paastis";
const ROUTING_TOKEN: &str = "routing-system-api-secret-66";
/// A secret of the configuration file only (the system API's token).
const CONFIG_SECRET: &str = "system-api-config-secret-0042";

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

/// The `NAME=value` lines of an `env` dump, by name.
fn variables(dump: &str) -> Vec<(&str, &str)> {
    dump.lines()
        .filter_map(|line| line.split_once('='))
        .collect()
}

fn value<'a>(dump: &'a str, name: &str) -> Option<&'a str> {
    variables(dump)
        .into_iter()
        .find_map(|(n, v)| (n == name).then_some(v))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_and_hooks_get_an_ordinary_environment_and_no_secret() {
    let dir = TempDir::new("child-env");
    let app_dump = dir.path("app.env");
    let hook_dump = dir.path("hook.env");
    let config = dir.path("paastis.yml");
    std::fs::write(
        &config,
        format!(
            "admin:
  system_api: {{enabled: true, token: {CONFIG_SECRET}}}
hooks:
  after_start: 'env > {hook}'
  env: {{HOOK_SETTING: from-hooks-env}}
providers:
  - id: local
    type: process
    apps:
      - name: web
        command: 'env > {app}; {upstream}'
        env: {{APP_NAME: web, APP_SETTING: from-app-env}}
",
            hook = hook_dump.display(),
            app = app_dump.display(),
            upstream = support::upstream_command(),
        ),
    )
    .expect("write the config");
    let path = std::env::var("PATH").expect("the tests run with a PATH");
    let served = support::serve(
        &config,
        &[
            ("PAASTIS_ADMIN_TOKEN", ADMIN_TOKEN),
            ("PAASTIS_MASTER_KEY", MASTER_KEY),
            ("PROVIDER_SCALINGO_API_TOKEN", SCALINGO_TOKEN),
            ("REDIS_URL", REDIS_URL),
            ("DATABASE_URL", DATABASE_URL),
            ("ROUTING_SYSTEM_API_TOKEN", ROUTING_TOKEN),
            ("SOME_UNKNOWN_SETTING", "not-a-secret-but-not-known"),
            // Inherited names holding secrets: the master key's value, the config's secret.
            ("LC_TELEPHONE", MASTER_KEY),
            ("LC_MEASUREMENT", CONFIG_SECRET),
            ("TZ", "Europe/Paris"),
        ],
    )
    .await;
    let client = TestClient::new(served.addr);
    let answer = client.get("web.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}\n{}", answer.text(), served.logs());
    assert_eq!(answer.text(), "hello from web");

    let app = read_when_written(&app_dump, Duration::from_secs(5)).await;
    let hook = read_when_written(&hook_dump, Duration::from_secs(5)).await;
    for (who, dump) in [("app", &app), ("hook", &hook)] {
        for name in [
            "PAASTIS_ADMIN_TOKEN",
            "PAASTIS_MASTER_KEY",
            "PAASTIS_DATABASE__URL",
            "PAASTIS_ADMIN__LISTEN",
            "PROVIDER_SCALINGO_API_TOKEN",
            "REDIS_URL",
            "DATABASE_URL",
            "ROUTING_SYSTEM_API_TOKEN",
            "SOME_UNKNOWN_SETTING",
            "LC_TELEPHONE",
            "LC_MEASUREMENT",
            "LOG_FORMAT",
        ] {
            assert_eq!(value(dump, name), None, "{who} got {name}:\n{dump}");
        }
        for secret in [
            ADMIN_TOKEN,
            MASTER_KEY,
            SCALINGO_TOKEN,
            "redis-password-99",
            "db-password-88",
            ROUTING_TOKEN,
            CONFIG_SECRET,
        ] {
            assert!(!dump.contains(secret), "{who} got a secret:\n{dump}");
        }
        assert_eq!(value(dump, "PATH"), Some(path.as_str()), "{who}:\n{dump}");
        assert_eq!(value(dump, "TZ"), Some("Europe/Paris"), "{who}:\n{dump}");
    }
    // The app: its own `env:` and the port; no `PAASTIS_*` at all.
    assert_eq!(value(&app, "APP_SETTING"), Some("from-app-env"), "{app}");
    assert!(value(&app, "PORT").is_some_and(|port| port.parse::<u16>().is_ok()));
    assert!(
        variables(&app)
            .iter()
            .all(|(name, _)| !name.starts_with("PAASTIS_")),
        "{app}"
    );
    // The hook: `hooks.env` and what the engine tells it.
    assert_eq!(
        value(&hook, "HOOK_SETTING"),
        Some("from-hooks-env"),
        "{hook}"
    );
    assert_eq!(value(&hook, "PAASTIS_APP"), Some("web"), "{hook}");
    assert_eq!(value(&hook, "PAASTIS_EVENT"), Some("after_start"), "{hook}");
    assert_eq!(value(&hook, "APP_SETTING"), None, "{hook}");
}
