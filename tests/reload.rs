//! Configuration reloads, black-box: an engine running from a file (real `process` apps, the
//! tests' upstream server) is given a new file through the admin API, by a change of the
//! file itself (written in place and by an atomic rename), and, for the real binary, by
//! SIGHUP. Requests in flight and around a reload all complete; apps keep their state,
//! activity and pins; an invalid file or one that needs a restart changes nothing and says
//! every error with its path.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use paastis::events::EventKind;
use paastis::model::State;
use serde_json::Value;
use support::{TempDir, TestClient, TestEngine, local_apps, upstream_command};

const TOKEN: &str = "reload-admin-Token-4242";

/// The admin API at `engine`, with the admin token.
async fn admin(
    engine: &TestEngine,
    method: reqwest::Method,
    path: &str,
    body: Option<String>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("http://{}{path}", engine.admin_addr))
        .bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.body(body);
    }
    let answer = request.send().await.expect("the admin API answers");
    let status = answer.status().as_u16();
    let text = answer.text().await.expect("a body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn reload(engine: &TestEngine) -> (u16, Value) {
    admin(engine, reqwest::Method::POST, "/api/v1/config/reload", None).await
}

async fn revision(engine: &TestEngine) -> String {
    let (status, view) = admin(engine, reqwest::Method::GET, "/api/v1/config", None).await;
    assert_eq!(status, 200, "{view}");
    view["revision"].as_str().expect("a revision").to_owned()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write the configuration");
}

/// A configuration: the admin token, no file watch unless `watch`, and these extra lines.
fn config(apps: &[(&str, &str)], extra: &str, watch: bool) -> String {
    format!(
        "admin: {{token: {TOKEN}}}\nreload: {{watch: {watch}}}\n{extra}{}",
        local_apps(apps)
    )
}

async fn start(dir: &TempDir, text: &str) -> (TestEngine, std::path::PathBuf) {
    let path = dir.path("paastis.yml");
    write(&path, text);
    let engine = TestEngine::start_file(&path, &HashMap::new()).await;
    (engine, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reload_applies_rules_and_new_apps_while_awake_apps_keep_their_process_and_pin() {
    let dir = TempDir::new("reload-apply");
    let (engine, path) = start(
        &dir,
        &config(
            &[("web", ""), ("api", "")],
            "defaults: {max_idle: 30m}\n",
            false,
        ),
    )
    .await;
    let client = TestClient::new(engine.addr);
    let pid = client.pid("web.localhost").await;
    assert_eq!(engine.state("web"), State::Awake);
    let (status, _) = admin(
        &engine,
        reqwest::Method::PUT,
        "/api/v1/apps/local/web/pin",
        Some("{}".to_owned()),
    )
    .await;
    assert_eq!(status, 200);
    let before = revision(&engine).await;

    // New rules and defaults, an app added to the same account, activity rules.
    write(
        &path,
        &config(
            &[("web", ""), ("api", ""), ("docs", "")],
            "defaults: {max_idle: 10m}\nrules: [{pattern: 'web', max_idle: 2m}]\n\
             activity: {ignore_paths: [/health]}\n",
            false,
        ),
    );
    let (status, view) = reload(&engine).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["applied"], true);
    assert_eq!(view["previous_revision"], before.as_str());
    let changes: Vec<&str> = view["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for expected in [
        "defaults",
        "rules",
        "activity",
        "providers: local (changed)",
    ] {
        assert!(
            changes.contains(&expected),
            "{expected} missing from {changes:?}"
        );
    }
    assert_ne!(revision(&engine).await, before);

    // Same process, same state, the pin kept; the new policy in force.
    assert_eq!(engine.state("web"), State::Awake);
    assert_eq!(
        client.pid("web.localhost").await,
        pid,
        "the process was not restarted"
    );
    assert!(
        engine.app("web").pinned_until_ms().is_some(),
        "the pin survives"
    );
    assert_eq!(
        engine.app("web").policy().max_idle,
        Some(Duration::from_secs(120))
    );
    assert_eq!(
        engine.app("api").policy().max_idle,
        Some(Duration::from_secs(600))
    );
    assert_eq!(
        engine.count("web", |kind| matches!(kind, EventKind::Started { .. })),
        1
    );
    // The new app is routed and wakes.
    assert_eq!(
        client.get("docs.localhost", "/").await.text(),
        "hello from docs"
    );
    // The new activity rule: a health check does not wake an asleep app.
    let health = client.get("api.localhost", "/health").await;
    assert_ne!(health.status, 200, "{}", health.text());
    assert_eq!(engine.state("api"), State::Asleep);
    assert!(engine.events().iter().any(|event| matches!(
        &event.kind,
        EventKind::ConfigReloaded { changes, .. } if changes.iter().any(|c| c == "rules")
    )));
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_request_is_dropped_by_reloads_in_the_middle_of_traffic() {
    let dir = TempDir::new("reload-traffic");
    let (engine, path) = start(&dir, &config(&[("web", "")], "", false)).await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("web.localhost", "/").await.status, 200);
    let slow: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get("web.localhost", "/slow?ms=1500").await })
        })
        .collect();
    let quick: Vec<_> = (0..200)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(n * 5)).await;
                client.get("web.localhost", "/").await
            })
        })
        .collect();
    for n in 0..5 {
        write(
            &path,
            &config(
                &[("web", "")],
                &format!("defaults: {{max_idle: {}m}}\n", 10 + n),
                false,
            ),
        );
        let (status, view) = reload(&engine).await;
        assert_eq!(status, 200, "{view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for answer in slow {
        let answer = answer.await.expect("completes");
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    for answer in quick {
        let answer = answer.await.expect("completes");
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.text(), "hello from web");
    }
    assert_eq!(
        engine.count("web", |kind| matches!(kind, EventKind::Started { .. })),
        1,
        "one start for all of it"
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_changes_nothing_and_every_error_is_said_with_its_path() {
    let dir = TempDir::new("reload-invalid");
    let (engine, path) = start(
        &dir,
        &config(&[("web", "")], "defaults: {max_idle: 30m}\n", false),
    )
    .await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("web.localhost", "/").await.status, 200);
    let before = revision(&engine).await;
    write(
        &path,
        &config(
            &[("web", "")],
            "defaults: {max_idle: soon}\nrules: [{max_idle: 1m}]\n",
            false,
        ),
    );
    let (status, body) = reload(&engine).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_config");
    let paths: Vec<&str> = body["error"]["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|error| error["path"].as_str())
        .collect();
    assert!(paths.contains(&"defaults.max_idle"), "{body}");
    assert!(paths.contains(&"rules[0].pattern"), "{body}");
    assert_eq!(revision(&engine).await, before);
    assert_eq!(
        engine.app("web").policy().max_idle,
        Some(Duration::from_secs(1800))
    );
    assert_eq!(client.get("web.localhost", "/").await.status, 200);
    assert!(engine.events().iter().any(|event| matches!(
        &event.kind,
        EventKind::ConfigRejected { errors } if errors.iter().any(|e| e.starts_with("defaults.max_idle"))
    )));
    let (_, view) = admin(&engine, reqwest::Method::GET, "/api/v1/config", None).await;
    assert_eq!(view["last_reload"]["result"], "invalid");
    assert_eq!(view["last_reload"]["trigger"], "api");

    // A file that cannot be parsed at all is refused the same way.
    write(&path, "defaults: [unclosed\n");
    let (status, body) = reload(&engine).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(revision(&engine).await, before);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_only_a_restart_applies_is_refused_with_its_path_and_secrets_never_shown() {
    let dir = TempDir::new("reload-restart");
    let (engine, path) = start(&dir, &config(&[("web", "")], "", false)).await;
    let before = revision(&engine).await;
    let secret = "a-new-Admin-token-value-77";
    let text = config(
        &[("web", "")],
        "listen: 127.0.0.1:1\ndomains: [example.org]\n",
        false,
    )
    .replace(TOKEN, secret)
    .replace("admin: {token", "admin: {listen: 127.0.0.1:2, token");
    write(&path, &text);
    let (status, body) = reload(&engine).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "restart_required");
    let paths: Vec<&str> = body["error"]["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|error| error["path"].as_str())
        .collect();
    assert_eq!(paths, ["listen", "domains", "admin"]);
    assert_eq!(revision(&engine).await, before);
    let events = format!("{:?}", engine.events());
    support::assert_no_secret(&[&body.to_string(), &events], &[secret, TOKEN]);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_app_is_forgotten_and_left_running_or_stopped_as_configured() {
    let dir = TempDir::new("reload-removed");
    let ports = [support::podman::free_port(), support::podman::free_port()];
    let app = |name: &str, port: u16| -> String {
        format!(
            "      - {{name: {name}, command: \"{}\", port: {port}, env: {{APP_NAME: {name}}}}}\n",
            upstream_command()
        )
    };
    let file = |removed: &str, apps: &str| {
        format!(
            "admin: {{token: {TOKEN}}}\nreload: {{watch: false, removed_apps: {removed}}}\n\
             providers:\n  - id: local\n    type: process\n    apps:\n{apps}"
        )
    };
    let (engine, path) = start(
        &dir,
        &file(
            "keep_running",
            &(app("kept", ports[0]) + &app("gone", ports[1])),
        ),
    )
    .await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("gone.localhost", "/").await.status, 200);
    let direct = format!("http://127.0.0.1:{}/", ports[1]);

    // keep_running: forgotten, still answering on its own port.
    write(&path, &file("keep_running", &app("kept", ports[0])));
    let (status, view) = reload(&engine).await;
    assert_eq!(status, 200, "{view}");
    assert!(
        view["changes"]
            .to_string()
            .contains("gone: no longer managed, left running"),
        "{view}"
    );
    assert!(
        engine
            .lifecycle
            .apps()
            .iter()
            .all(|app| &*app.key.name != "gone")
    );
    assert_eq!(client.get("gone.localhost", "/").await.status, 404);
    assert!(
        reqwest::get(&direct).await.is_ok_and(|a| a.status() == 200),
        "left running"
    );
    assert!(
        engine
            .events()
            .iter()
            .any(|event| &*event.app.name == "gone"
                && event.kind == EventKind::Unmanaged { running: true })
    );

    // Back, then removed with `stop`: stopped, then forgotten.
    write(
        &path,
        &file("stop", &(app("kept", ports[0]) + &app("gone", ports[1]))),
    );
    assert_eq!(reload(&engine).await.0, 200);
    assert_eq!(client.get("gone.localhost", "/").await.status, 200);
    write(&path, &file("stop", &app("kept", ports[0])));
    let (status, view) = reload(&engine).await;
    assert_eq!(status, 200, "{view}");
    let mut stopped = false;
    for _ in 0..100 {
        if reqwest::get(&direct).await.is_err() {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stopped, "the removed app was stopped");
    assert!(
        engine
            .events()
            .iter()
            .any(|event| &*event.app.name == "gone"
                && event.kind == EventKind::Unmanaged { running: false })
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watched_file_is_reloaded_when_written_or_replaced_by_a_rename() {
    let dir = TempDir::new("reload-watch");
    let (engine, path) = start(&dir, &config(&[("web", "")], "", true)).await;
    let first = revision(&engine).await;
    let (_, view) = admin(&engine, reqwest::Method::GET, "/api/v1/config", None).await;
    assert_eq!(view["watched"], true);

    // Written in place.
    write(
        &path,
        &config(&[("web", "")], "defaults: {max_idle: 7m}\n", true),
    );
    let second = wait_for_revision_other_than(&engine, &first).await;
    assert_eq!(
        engine.app("web").policy().max_idle,
        Some(Duration::from_secs(420))
    );
    let (_, view) = admin(&engine, reqwest::Method::GET, "/api/v1/config", None).await;
    assert_eq!(view["last_reload"]["trigger"], "file");

    // Replaced whole, as editors and ConfigMaps do.
    let temporary = dir.path("paastis.yml.tmp");
    write(
        &temporary,
        &config(&[("web", "")], "defaults: {max_idle: 9m}\n", true),
    );
    std::fs::rename(&temporary, &path).expect("rename");
    wait_for_revision_other_than(&engine, &second).await;
    assert_eq!(
        engine.app("web").policy().max_idle,
        Some(Duration::from_secs(540))
    );
    engine.stop().await;
}

/// Polls the engine's revision until it differs from `old` (at most 30 s).
async fn wait_for_revision_other_than(engine: &TestEngine, old: &str) -> String {
    for _ in 0..300 {
        let now = revision(engine).await;
        if now != old {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the revision stayed {old}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_says_what_a_file_would_change_and_applies_nothing() {
    let dir = TempDir::new("reload-diff");
    let (engine, _path) = start(&dir, &config(&[("web", "")], "", false)).await;
    let before = revision(&engine).await;
    let other = config(
        &[("web", ""), ("docs", "")],
        "schedules: [{apps: 'web', sleep: '0 20 * * *'}]\n",
        false,
    );
    let (status, view) = admin(
        &engine,
        reqwest::Method::POST,
        "/api/v1/config/diff",
        Some(other),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["applied"], false);
    assert_eq!(
        view["changes"],
        serde_json::json!(["schedules", "providers: local (changed)"])
    );
    assert_ne!(view["revision"], before.as_str());
    assert_eq!(revision(&engine).await, before);
    assert!(
        engine
            .lifecycle
            .apps()
            .iter()
            .all(|app| &*app.key.name != "docs")
    );
    let (status, body) = admin(
        &engine,
        reqwest::Method::POST,
        "/api/v1/config/diff",
        Some("rules: 3\n".to_owned()),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_revision_is_the_same_for_the_same_settings_and_shows_in_ready_and_metrics() {
    let dir = TempDir::new("reload-revision");
    let text = config(&[("web", "")], "", false);
    let (one, _) = start(&dir, &text).await;
    let other = TempDir::new("reload-revision2");
    let (two, _) = start(&other, &text).await;
    let (three, _) = start(
        &TempDir::new("reload-revision3"),
        &config(&[("web", "max_idle: 1m")], "", false),
    )
    .await;
    let revision_one = revision(&one).await;
    assert_eq!(revision_one.len(), 12);
    assert_eq!(revision(&two).await, revision_one);
    assert_ne!(revision(&three).await, revision_one);
    let ready: Value = reqwest::get(format!("http://{}/ready", one.admin_addr))
        .await
        .expect("ready")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["config_revision"], revision_one.as_str());
    let metrics = reqwest::get(format!("http://{}/metrics", one.admin_addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(&format!(
            "paastis_config_info{{revision=\"{revision_one}\"}} 1"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("paastis_config_reloads_total{result=\"applied\"} 0"),
        "{metrics}"
    );
    assert_eq!(reload(&one).await.0, 200);
    let metrics = reqwest::get(format!("http://{}/metrics", one.admin_addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("paastis_config_reloads_total{result=\"unchanged\"} 1"),
        "{metrics}"
    );
    let dashboard = reqwest::Client::new()
        .get(format!("http://{}/", one.admin_addr))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("dashboard")
        .text()
        .await
        .expect("html");
    assert!(
        dashboard.contains(&format!("Configuration <code>{revision_one}</code>")),
        "{dashboard}"
    );
    assert!(dashboard.contains("last reload"), "{dashboard}");
    for engine in [one, two, three] {
        engine.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_space_from_the_file_takes_its_new_rules_and_an_engine_given_its_config_refuses() {
    let dir = TempDir::new("reload-space");
    let space = |max_idle: &str| {
        format!(
            "spaces:\n  - id: acme\n    domains: [acme.test]\n    rules: [{{pattern: 'shop', max_idle: {max_idle}}}]\n    \
             providers:\n      - id: local\n        type: process\n        apps: [{{name: shop, command: \"{}\", env: {{APP_NAME: shop}}}}]\n",
            upstream_command()
        )
    };
    let (engine, path) = start(&dir, &config(&[("web", "")], &space("5m"), false)).await;
    let client = TestClient::new(engine.addr);
    assert_eq!(
        client.get("shop.acme.test", "/").await.text(),
        "hello from shop"
    );
    let shop = |engine: &TestEngine| {
        engine
            .spaces
            .iter()
            .find(|(id, _)| id == "acme")
            .expect("space acme")
            .1
            .apps()
            .into_iter()
            .find(|app| &*app.key.name == "shop")
            .expect("shop")
    };
    let pid = client.pid("shop.acme.test").await;
    write(&path, &config(&[("web", "")], &space("3m"), false));
    let (status, view) = reload(&engine).await;
    assert_eq!(status, 200, "{view}");
    assert!(
        view["changes"].to_string().contains("spaces[acme].rules"),
        "{view}"
    );
    assert_eq!(
        shop(&engine).policy().max_idle,
        Some(Duration::from_secs(180))
    );
    assert_eq!(shop(&engine).state(), State::Awake);
    assert_eq!(client.pid("shop.acme.test").await, pid);
    engine.stop().await;

    // An engine given a configuration (not a file) cannot read it again.
    let given = TestEngine::start(&config(&[("web", "")], "", false)).await;
    let (status, body) = reload(&given).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "not_reloadable");
    given.stop().await;
}

/// The real binary: SIGHUP reloads its file; a bad file leaves it serving as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_binarys_file() {
    let dir = TempDir::new("reload-hup");
    let path = dir.path("paastis.yml");
    write(&path, &config(&[("web", "")], "", false));
    let served = support::serve(&path, &[]).await;
    let pid = served.child.id().expect("pid") as i32;
    let client = TestClient::new(served.addr);
    assert_eq!(client.get("web.localhost", "/").await.status, 200);
    let web_pid = client.pid("web.localhost").await;

    write(
        &path,
        &config(&[("web", "")], "defaults: {max_idle: 3m}\n", false),
    );
    support::signal(pid, nix::sys::signal::Signal::SIGHUP);
    wait_for_log(&served, "SIGHUP: configuration reloaded").await;
    assert!(served.logs().contains("defaults"), "{}", served.logs());

    write(&path, "defaults: {max_idle: -1}\n");
    support::signal(pid, nix::sys::signal::Signal::SIGHUP);
    wait_for_log(&served, "the running one stays").await;
    assert!(
        served.logs().contains("defaults.max_idle"),
        "{}",
        served.logs()
    );
    assert_eq!(
        client.pid("web.localhost").await,
        web_pid,
        "still serving, same process"
    );
    support::signal(pid, nix::sys::signal::Signal::SIGTERM);
}

async fn wait_for_log(served: &support::Served, text: &str) {
    for _ in 0..300 {
        if served.logs().contains(text) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never logged {text:?}:\n{}", served.logs());
}

/// `paastis check --diff`: the file is checked here, then the running engine says what
/// reloading it would change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_diff_asks_the_running_engine() {
    let dir = TempDir::new("reload-cli");
    let (engine, _path) = start(&dir, &config(&[("web", "")], "", false)).await;
    let other = dir.path("next.yml");
    write(
        &other,
        &config(
            &[("web", "")],
            "rules: [{pattern: 'web', max_idle: 2m}]\n",
            false,
        ),
    );
    let api_url = format!("http://{}", engine.admin_addr);
    let run = |file: &Path, token: &str| {
        let mut command = support::paastis();
        command.args([
            "check",
            "--diff",
            "--config",
            &file.to_string_lossy(),
            "--api-url",
            &api_url,
            "--token",
            token,
        ]);
        command
    };
    let out = run(&other, TOKEN)
        .output()
        .await
        .expect("paastis check --diff");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("a reload would change:\n  rules\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("running revision {}", revision(&engine).await)),
        "{stdout}"
    );

    // A file invalid here is said here, before asking anything.
    let broken = dir.path("broken.yml");
    write(&broken, "rules: 3\n");
    let out = run(&broken, TOKEN)
        .output()
        .await
        .expect("paastis check --diff");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rules"));

    // A wrong token: the engine's refusal, the token never printed.
    let out = run(&other, "not-the-Token-31337")
        .output()
        .await
        .expect("paastis check --diff");
    assert_eq!(out.status.code(), Some(4));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    support::assert_no_secret(&[&printed], &["not-the-Token-31337"]);
    engine.stop().await;
}

/// A page template edited alone: a reload reads it again and the pages change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_edited_alone_is_taken_by_a_reload() {
    let dir = TempDir::new("reload-page");
    let template = dir.path("page.html");
    write(&template, "<p>first {{ page }}</p>\n");
    let extra = format!("page: {{template: {}}}\n", template.display());
    let (engine, _path) = start(&dir, &config(&[("web", "")], &extra, false)).await;
    let client = TestClient::new(engine.addr);
    let html = [("accept", "text/html")];
    let page = client
        .send("GET", "nothing.localhost", "/", &html, Default::default())
        .await;
    assert_eq!(page.status, 404);
    assert!(page.text().contains("first error"), "{}", page.text());
    write(&template, "<p>second {{ page }}</p>\n");
    let (status, view) = reload(&engine).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["changes"], serde_json::json!(["page"]));
    let page = client
        .send("GET", "nothing.localhost", "/", &html, Default::default())
        .await;
    assert!(page.text().contains("second error"), "{}", page.text());
    engine.stop().await;
}

/// Stops `web` through the admin API and waits until it is asleep.
async fn stop_web(engine: &TestEngine) {
    let (status, _) = admin(
        engine,
        reqwest::Method::POST,
        "/api/v1/apps/local/web/stop",
        None,
    )
    .await;
    assert_eq!(status, 202);
    engine
        .wait_state("web", State::Asleep, Duration::from_secs(30))
        .await;
}

/// A dry run, and a file refused for another error, leave the running accounts as they are:
/// the process app still starts with the command it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_or_a_refused_file_takes_nothing_over() {
    let dir = TempDir::new("reload-dry");
    let (engine, path) = start(&dir, &config(&[("web", "")], "", false)).await;
    let client = TestClient::new(engine.addr);
    assert_eq!(
        client.get("web.localhost", "/").await.text(),
        "hello from web"
    );
    let renamed = config(&[("web", "")], "", false).replace("APP_NAME: web", "APP_NAME: renamed");
    let (status, view) = admin(
        &engine,
        reqwest::Method::POST,
        "/api/v1/config/diff",
        Some(renamed.clone()),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    write(&path, &format!("{renamed}defaults: {{max_idle: soon}}\n"));
    assert_eq!(reload(&engine).await.0, 422);
    stop_web(&engine).await;
    assert_eq!(
        client.get("web.localhost", "/").await.text(),
        "hello from web"
    );

    // Applied, the new command is the one the next start runs.
    write(&path, &renamed);
    assert_eq!(reload(&engine).await.0, 200);
    stop_web(&engine).await;
    assert_eq!(
        client.get("web.localhost", "/").await.text(),
        "hello from renamed"
    );
    engine.stop().await;
}

/// Ordinary third-party programs on both sides: `python3 -m http.server` as the app, curl as
/// the client, requests while the configuration is reloaded: every answer is the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_through_reloads_to_python_http_server() {
    let dir = TempDir::new("reload-3rd");
    let site = dir.path("site");
    std::fs::create_dir_all(&site).expect("site");
    std::fs::write(site.join("index.html"), "served by http.server\n").expect("index");
    let app = |max_idle: &str| {
        format!(
            "admin: {{token: {TOKEN}}}\nreload: {{watch: false}}\nproviders:\n  - id: local\n    \
             type: process\n    apps:\n      - {{name: files, command: 'exec python3 -m http.server \
             {{port}} --bind 127.0.0.1 --directory {}', max_idle: {max_idle}}}\n",
            site.display()
        )
    };
    let (engine, path) = start(&dir, &app("10m")).await;
    let url = format!("http://127.0.0.1:{}/", engine.addr.port());
    let fetch = |url: String| async move {
        support::curl(&["-H", "Host: files.localhost", &url])
            .await
            .0
    };
    assert_eq!(fetch(url.clone()).await, "served by http.server\n");
    assert_eq!(engine.state("files"), State::Awake);
    let fetches: Vec<_> = (0..40)
        .map(|n| {
            let url = url.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(n * 10)).await;
                fetch(url).await
            })
        })
        .collect();
    for minutes in 11..15 {
        write(&path, &app(&format!("{minutes}m")));
        assert_eq!(reload(&engine).await.0, 200);
    }
    for fetched in fetches {
        assert_eq!(fetched.await.expect("completes"), "served by http.server\n");
    }
    assert_eq!(
        engine.app("files").policy().max_idle,
        Some(Duration::from_secs(14 * 60))
    );
    assert_eq!(
        engine.count("files", |kind| matches!(kind, EventKind::Started { .. })),
        1
    );
    engine.stop().await;
}
