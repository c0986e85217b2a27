//! Paastis as an app of the PaaS it serves: the engine run exactly as the Procfile says, in
//! a clean environment holding only what a platform (and its operator) would set: `PORT`,
//! the add-ons' `DATABASE_URL` and `REDIS_URL`, the platform's own-app variable, the
//! providers as `PAASTIS_PROVIDERS__N__*`, the admin's host name and token. And the admin
//! router behind `admin.host` on the proxy listeners, its login cookie `Secure` over HTTPS
//! (directly, or through a trusted proxy).

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use nix::sys::signal::Signal;
use sqlx::Connection;
use support::fakes::scalingo::FakeScalingo;
use support::redis::RedisServer;
use support::{TempDir, TestClient, TestEngine};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const PROVIDER_TOKEN: &str = "tk-us-paas-provider-0123456789";
const ADMIN_TOKEN: &str = "admin-paas-token-0123456789abcdef";
const ADMIN_HOST: &str = "paastis.example.test";
/// The engine's own app on the platform, named by `APP` as Scalingo does.
const OWN_APP: &str = "my-paastis";

/// The Procfile's `web:` command.
fn procfile_web() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("Procfile");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.lines()
        .find_map(|line| line.strip_prefix("web:"))
        .map(|command| command.trim().to_owned())
        .unwrap_or_else(|| panic!("no `web:` line in the Procfile:\n{text}"))
}

/// An app directory as the Rust buildpacks leave it: `./target/release/paastis`.
fn app_dir() -> TempDir {
    let dir = TempDir::new("paas");
    let release = dir.path("target/release");
    std::fs::create_dir_all(&release).expect("target/release");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_paastis"), release.join("paastis"))
        .expect("symlink the binary");
    dir
}

/// A port nobody listens on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

/// `command` run with `sh -c` in `dir`, with `env` only, in its own process group.
fn platform_run(dir: &Path, command: &str, env: &[(String, String)]) -> Command {
    let mut child = Command::new("sh");
    child
        .args(["-c", command])
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .process_group(0)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    child
}

/// The engine's stderr, collected line by line.
fn collect(child: &mut Child) -> Arc<Mutex<String>> {
    let logs = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().expect("stderr piped");
    let collected = Arc::clone(&logs);
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut logs = collected.lock().unwrap_or_else(|p| p.into_inner());
            logs.push_str(&line);
            logs.push('\n');
        }
    });
    logs
}

/// The engine's process: `sh` itself when it ran the command with `exec`, else its child.
fn engine_pid(shell: i32) -> i32 {
    let comm = std::fs::read_to_string(format!("/proc/{shell}/comm")).unwrap_or_default();
    if comm.trim() == "paastis" {
        return shell;
    }
    let children =
        std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .next()
        .unwrap_or_else(|| panic!("no engine process under sh ({shell})"))
}

fn text(logs: &Arc<Mutex<String>>) -> String {
    logs.lock().map(|l| l.clone()).unwrap_or_default()
}

/// Waits until `condition` holds, or fails with `what` and the logs.
async fn eventually(
    what: &str,
    within: Duration,
    logs: &Arc<Mutex<String>>,
    mut condition: impl AsyncFnMut() -> bool,
) {
    let deadline = tokio::time::Instant::now() + within;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within {within:?}; logs:\n{}",
            text(logs)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn form_post(path: &str, form: &str) -> (String, Bytes) {
    (path.to_owned(), Bytes::from(form.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_procfile_runs_the_engine_from_the_environment_alone() {
    let fake = FakeScalingo::start(PROVIDER_TOKEN).await;
    let shop = fake.add_app("shop", &[("web", 1)], false).await;
    fake.add_app(OWN_APP, &[("web", 1)], true).await;
    let database = support::postgres::database().await;
    let redis = RedisServer::start().await;
    let dir = app_dir();
    let port = free_port();
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".to_owned());
    let env: Vec<(String, String)> = [
        // What the platform sets.
        ("PORT", port.to_string()),
        ("PATH", path),
        ("HOME", dir.0.display().to_string()),
        ("APP", OWN_APP.to_owned()),
        ("DATABASE_URL", database.url.clone()),
        ("REDIS_URL", redis.url()),
        // What the operator sets in the app's environment.
        ("PAASTIS_ADMIN__HOST", ADMIN_HOST.to_owned()),
        ("PAASTIS_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        ("PAASTIS_ADMIN__LISTEN", "off".to_owned()),
        ("PAASTIS_PROVIDERS__0__TYPE", "scalingo".to_owned()),
        ("PAASTIS_PROVIDERS__0__ID", "scalingo".to_owned()),
        ("PAASTIS_PROVIDERS__0__TOKEN", PROVIDER_TOKEN.to_owned()),
        ("PAASTIS_PROVIDERS__0__API_URL", fake.url.clone()),
        ("PAASTIS_PROVIDERS__0__AUTH_URL", fake.url.clone()),
        ("PAASTIS_DEFAULTS__MAX_IDLE", "2s".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let secrets = [
        PROVIDER_TOKEN.to_owned(),
        ADMIN_TOKEN.to_owned(),
        database
            .checked_password
            .clone()
            .unwrap_or_else(|| "no-password-to-leak".to_owned()),
    ];

    // `paastis check` tells where each value came from, secrets redacted.
    let check = platform_run(&dir.0, "./target/release/paastis check", &env)
        .output()
        .await
        .expect("run check");
    let stdout = String::from_utf8_lossy(&check.stdout);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(0), "{stdout}\n{stderr}");
    let redis_port = redis.port;
    for expected in [
        format!("listen 0.0.0.0:{port} (PORT)"),
        format!("registry redis redis://127.0.0.1:{redis_port} (REDIS_URL)"),
        format!("own app: {OWN_APP} (APP)"),
        "admin.token *** (PAASTIS_ADMIN_TOKEN)".to_owned(),
        "providers[0].token *** (PAASTIS_PROVIDERS__0__TOKEN)".to_owned(),
        format!("admin.host {ADMIN_HOST} (PAASTIS_ADMIN__HOST)"),
    ] {
        assert!(stdout.contains(&expected), "{expected:?} not in:\n{stdout}");
    }
    assert!(
        !stdout.contains("original engine"),
        "PORT alone is not the original engine's:\n{stdout}"
    );
    let database_line = stdout
        .lines()
        .find(|line| line.trim_start().starts_with("database postgres://"))
        .unwrap_or_else(|| panic!("no database line in:\n{stdout}"));
    assert!(database_line.ends_with("(DATABASE_URL)"), "{database_line}");
    if database.checked_password.is_some() {
        assert!(database_line.contains(":***@"), "{database_line}");
    }
    for secret in &secrets {
        assert!(
            !stdout.contains(secret.as_str()) && !stderr.contains(secret.as_str()),
            "a secret leaked into check's output:\n{stdout}\n{stderr}"
        );
    }

    // Serve, exactly as the Procfile says.
    let mut child = platform_run(&dir.0, &procfile_web(), &env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the web process");
    let group = child.id().expect("pid") as i32;
    let logs = collect(&mut child);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    eventually(
        "listening on $PORT",
        Duration::from_secs(30),
        &logs,
        async || tokio::net::TcpStream::connect(addr).await.is_ok(),
    )
    .await;
    let client = TestClient::new(addr);

    // An app is proxied: woken through the platform's API, then forwarded to.
    let answer = client.get("shop.apps.example.test", "/").await;
    assert_eq!(answer.status, 200, "{}\n{}", answer.text(), text(&logs));
    assert_eq!(answer.text(), "hello from shop");
    assert_eq!(fake.formation("shop"), [("web".to_owned(), 1)]);
    assert_eq!(shop.hits(), 1);

    // The admin router answers at admin.host, on $PORT, only with the token.
    let api = client.get(ADMIN_HOST, "/api/v1/apps").await;
    assert_eq!(api.status, 401, "{}", api.text());
    let api = client
        .send(
            "GET",
            &format!("{ADMIN_HOST}:{port}"),
            "/api/v1/apps",
            &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
            Bytes::new(),
        )
        .await;
    assert_eq!(api.status, 200, "{}", api.text());
    let names: Vec<String> = api.json()["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .map(|app| app["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["shop"], "the own app is not managed");
    let page = client.get(ADMIN_HOST, "/").await;
    assert!(page.status.is_redirection(), "{}", page.status);
    assert_eq!(page.headers["location"], "/login");
    assert_eq!(client.get(ADMIN_HOST, "/health").await.status, 200);
    let metrics = client.get(ADMIN_HOST, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.text().contains("paastis_"), "{}", metrics.text());
    // Signing in over plain HTTP: the cookie is not `Secure` (no HTTPS was seen).
    let (path, body) = form_post("/login", &format!("token={ADMIN_TOKEN}"));
    let login = client
        .send(
            "POST",
            ADMIN_HOST,
            &path,
            &[("content-type", "application/x-www-form-urlencoded")],
            body,
        )
        .await;
    assert!(login.status.is_redirection(), "{}", login.text());
    let cookie = login.headers["set-cookie"].to_str().expect("cookie");
    assert!(!cookie.contains("Secure"), "{cookie}");
    let signed_in = client
        .send(
            "GET",
            ADMIN_HOST,
            "/",
            &[("cookie", cookie.split(';').next().unwrap_or_default())],
            Bytes::new(),
        )
        .await;
    assert_eq!(signed_in.status, 200);
    assert!(signed_in.text().contains("shop"), "{}", signed_in.text());
    // Another host is still an app's (none here).
    assert_eq!(client.get("nothing.example.test", "/").await.status, 404);

    // The idle app is stopped; the engine's own app, listed by the platform, never is.
    eventually(
        "shop stopped after max_idle",
        Duration::from_secs(30),
        &logs,
        async || fake.formation("shop") == [("web".to_owned(), 0)],
    )
    .await;
    assert_eq!(fake.formation(OWN_APP), [("web".to_owned(), 1)]);
    assert_eq!(
        fake.calls.count(&format!("POST /v1/apps/{OWN_APP}/scale")),
        0,
        "{:?}",
        fake.calls.all()
    );

    // The database given by URL got the engine's tables and rows; Redis the registry's keys.
    let mut pg = sqlx::PgConnection::connect(&database.url)
        .await
        .expect("connect to the test database");
    eventually(
        "events in PostgreSQL",
        Duration::from_secs(20),
        &logs,
        async || {
            let apps: i64 = sqlx::query_scalar("SELECT count(*) FROM apps WHERE name = 'shop'")
                .fetch_one(&mut pg)
                .await
                .unwrap_or(0);
            let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
                .fetch_one(&mut pg)
                .await
                .unwrap_or(0);
            apps == 1 && events >= 2
        },
    )
    .await;
    let keys = redis.keys().await;
    assert!(
        keys.iter().any(|key| key.starts_with("paastis:")),
        "no registry key in Redis: {keys:?}"
    );

    // The admin listener was off: the only listener named in the log is $PORT's.
    let log = text(&logs);
    assert!(log.contains("admin listener off"), "{log}");
    assert!(!log.contains("admin_addr"), "{log}");
    assert!(log.contains("from the environment: listen"), "{log}");

    // SIGTERM to every process of the group, as a platform stops a container: the engine
    // drains and stops (`sh` may die of the signal first: it is not the engine).
    let engine = engine_pid(group);
    support::signal(-group, Signal::SIGTERM);
    tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the shell ended within 20 s")
        .expect("wait");
    eventually(
        "the engine exited",
        Duration::from_secs(20),
        &logs,
        async || !support::process_running(engine),
    )
    .await;
    let log = text(&logs);
    assert!(log.contains("\"stopped\""), "not a clean stop:\n{log}");
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a secret leaked into the log:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_yaml_and_a_config_file_are_not_both_taken() {
    let dir = app_dir();
    std::fs::write(dir.path("given.yml"), "providers: []\n").expect("write");
    let env: Vec<(String, String)> = vec![
        ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
        (
            "PAASTIS_CONFIG_YAML".to_owned(),
            "listen: 127.0.0.1:0\n".to_owned(),
        ),
    ];
    let output = platform_run(
        &dir.0,
        "./target/release/paastis check --config given.yml",
        &env,
    )
    .output()
    .await
    .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("given.yml") && stderr.contains("PAASTIS_CONFIG_YAML"),
        "{stderr}"
    );
    // Alone, PAASTIS_CONFIG_YAML is the file; an admin.host on a network listener needs a
    // token, and the error says which variable set it.
    let env: Vec<(String, String)> = vec![
        ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
        (
            "PAASTIS_CONFIG_YAML".to_owned(),
            "listen: 0.0.0.0:0\nproviders: []\ndatabase: {url: 'sqlite::memory:'}\n".to_owned(),
        ),
        ("PAASTIS_ADMIN__HOST".to_owned(), ADMIN_HOST.to_owned()),
    ];
    let output = platform_run(&dir.0, "./target/release/paastis check", &env)
        .output()
        .await
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("admin.host (from PAASTIS_ADMIN__HOST): the proxy listens on 0.0.0.0:0"),
        "{stderr}"
    );
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support/tls")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_cookie_is_secure_over_https_only() {
    let engine = TestEngine::start(&format!(
        "tls: {{listen: '127.0.0.1:0', cert: '{}', key: '{}'}}\n\
         proxy: {{trusted_proxies: [127.0.0.2]}}\n\
         admin: {{host: [localhost], token: {ADMIN_TOKEN}}}\n\
         providers: []\n",
        fixture("other.pem").display(),
        fixture("other.key").display(),
    ))
    .await;
    let form = format!("token={ADMIN_TOKEN}");
    let login = |url: String, extra: Vec<&'static str>| {
        let form = form.clone();
        async move {
            let ca = fixture("other-ca.pem");
            let mut args: Vec<String> = vec![
                "--ipv4".into(),
                "--cacert".into(),
                ca.display().to_string(),
                "-o".into(),
                "/dev/null".into(),
                "-D".into(),
                "-".into(),
                "--data".into(),
                form,
            ];
            args.extend(extra.into_iter().map(str::to_owned));
            args.push(url);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            support::curl(&args).await.0
        }
    };
    let cookie_line = |headers: &str| -> String {
        headers
            .lines()
            .find(|line| line.to_ascii_lowercase().starts_with("set-cookie:"))
            .unwrap_or_else(|| panic!("no cookie in:\n{headers}"))
            .to_owned()
    };
    let tls = engine.tls_addr.expect("TLS listener").port();
    let plain = engine.addr.port();

    // Through the TLS listener, at admin.host: Secure.
    let headers = login(format!("https://localhost:{tls}/login"), vec![]).await;
    assert!(cookie_line(&headers).contains("; Secure"), "{headers}");
    // Plain HTTP from anyone: not Secure, whatever X-Forwarded-Proto says.
    let headers = login(
        format!("http://localhost:{plain}/login"),
        vec!["-H", "X-Forwarded-Proto: https"],
    )
    .await;
    assert!(!cookie_line(&headers).contains("Secure"), "{headers}");
    // Plain HTTP from a trusted proxy that says HTTPS: Secure.
    let headers = login(
        format!("http://localhost:{plain}/login"),
        vec!["-H", "X-Forwarded-Proto: https", "--interface", "127.0.0.2"],
    )
    .await;
    assert!(cookie_line(&headers).contains("; Secure"), "{headers}");
    // The admin's own listener, as before: not Secure.
    let headers = login(
        format!("http://127.0.0.1:{}/login", engine.admin_addr.port()),
        vec![],
    )
    .await;
    assert!(!cookie_line(&headers).contains("Secure"), "{headers}");
    // The API at admin.host over TLS, with the token; another host is not the admin's.
    let (body, _) = support::curl(&[
        "--ipv4",
        "--cacert",
        &fixture("other-ca.pem").display().to_string(),
        "-H",
        &format!("Authorization: Bearer {ADMIN_TOKEN}"),
        &format!("https://localhost:{tls}/api/v1/providers"),
    ])
    .await;
    assert!(body.contains("\"providers\""), "{body}");
    let other = TestClient::new(engine.addr)
        .get("hello.localhost", "/api/v1/providers")
        .await;
    assert_eq!(other.status, 404, "{}", other.text());
    engine.stop().await;
}
