//! Paastis behind the proxies people already run: real nginx (`auth_request` and
//! `error_page 401 = @paastis`) and real Caddy (`forward_auth`) ask the engine's gate
//! (`/forward-auth` on its admin listener) before forwarding each request to the app
//! themselves. A sleeping app is woken for a program and shows browsers the waiting page, an
//! unknown host is a 404, hits keep an app in use awake, a storm starts the app once, an
//! untrusted caller needs the gate's token, and `session` keeps an app awake after the last
//! hit. Each test runs once with each proxy; it is skipped, saying so, when that proxy's
//! binary is not installed. The configurations are the ones the book shows
//! (docs/src/behind-a-proxy.md).

mod support;

#[path = "support/proxies.rs"]
mod proxies;

use std::collections::HashMap;
use std::time::Duration;

use paastis::events::EventKind;
use paastis::model::State;
use proxies::{Kind, Proxy, Setup, free_port};
use support::{TempDir, TestClient, TestEngine, upstream_command};
use tokio::time::Instant;

/// A token for the gate, as long as a real one.
const TOKEN: &str = "gate-token-0123456789abcdef0123456789abcdef";

/// The gate's forward-auth on, the proxies on 127.0.0.1 trusted.
const TRUSTED: &str = "proxy: {trusted_proxies: [127.0.0.1/32]}\ngate: {forward_auth: true}\n";

/// The engine's config: one `process` app, `app`, running the upstream script (answering
/// `hello from app`), with its `extra` keys and `env` entries; the gate's forward-auth on,
/// 127.0.0.1 trusted.
fn config(extra: &str, env: &str) -> String {
    config_with(TRUSTED, extra, env)
}

/// [`config`] with these `proxy` and `gate` sections.
fn config_with(sections: &str, extra: &str, env: &str) -> String {
    format!(
        "{sections}\
         defaults: {{wake_timeout: 30s}}\n\
         providers:\n  - id: local\n    type: process\n    apps:\n\
         \x20     - {{name: app, command: \"{}\", env: {{APP_NAME: app{env}}}{extra}}}\n",
        upstream_command()
    )
}

/// The engine, once its app is asleep.
async fn engine(yaml: &str) -> TestEngine {
    let engine = TestEngine::start(yaml).await;
    engine
        .wait_state("app", State::Asleep, Duration::from_secs(15))
        .await;
    engine
}

fn starts(engine: &TestEngine) -> usize {
    engine.count("app", |k| matches!(k, EventKind::Started { .. }))
}

fn wakes(engine: &TestEngine) -> usize {
    engine.count("app", |k| matches!(k, EventKind::WakeRequested { .. }))
}

fn stops(engine: &TestEngine) -> usize {
    engine.count("app", |k| matches!(k, EventKind::StopRequested { .. }))
}

/// curl through the proxy, as a program (curl's own `Accept: */*`): status and body.
async fn curl(proxy: &Proxy, host: &str, path: &str) -> (u16, String) {
    let output = tokio::process::Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "40"])
        .args(["--header", &format!("Host: {host}")])
        .args(["--write-out", "\n%{http_code}"])
        .arg(proxy.url(path))
        .output()
        .await
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "curl through {:?} failed: {}\n{}",
        proxy.kind,
        String::from_utf8_lossy(&output.stderr),
        proxy.logs()
    );
    let (body, status) = stdout.rsplit_once('\n').expect("a status line");
    (status.parse().expect("a status"), body.to_owned())
}

/// Runs `test` with `kind`, unless that proxy is not installed.
macro_rules! with_each_proxy {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn nginx() {
                    if super::Kind::Nginx.available() {
                        super::$name(super::Kind::Nginx).await;
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn caddy() {
                    if super::Kind::Caddy.available() {
                        super::$name(super::Kind::Caddy).await;
                    }
                }
            }
        )*
    };
}

with_each_proxy!(
    a_program_wakes_a_sleeping_app_through_the_proxy,
    a_browser_gets_the_waiting_page_then_the_app,
    an_unknown_host_is_a_404,
    hits_through_the_proxy_keep_an_app_in_use_awake,
    a_storm_through_the_proxy_starts_the_app_once,
    the_token_lets_an_untrusted_proxy_in,
    a_session_keeps_the_app_awake_after_the_last_hit,
);

async fn a_program_wakes_a_sleeping_app_through_the_proxy(kind: Kind) {
    let engine = engine(&config("", "")).await;
    let proxy = Proxy::start(kind, &Setup::new(engine.admin_addr)).await;

    let (status, body) = curl(&proxy, "app.localhost", "/").await;
    assert_eq!(status, 200, "{body}\n{}", proxy.logs());
    assert_eq!(body, "hello from app");
    assert_eq!(engine.state("app"), State::Awake);

    // Awake: the proxy goes straight on to the app, and the app sees the client's request.
    let (status, body) = curl(&proxy, "app.localhost", "/slow?ms=10").await;
    assert_eq!((status, body.as_str()), (200, "slow 10"));
    assert_eq!(starts(&engine), 1, "one start");
    assert_eq!(wakes(&engine), 1, "one wake");
    engine.stop().await;
}

async fn a_browser_gets_the_waiting_page_then_the_app(kind: Kind) {
    // The app takes 2 s to listen: the browser sees the page while it starts.
    let engine = engine(&config("", ", STARTUP_DELAY_MS: \"2000\"")).await;
    let proxy = Proxy::start(kind, &Setup::new(engine.admin_addr)).await;
    let browser = TestClient::new(proxy.addr);
    let html = [("accept", "text/html,application/xhtml+xml,*/*;q=0.8")];

    let page = browser
        .send("GET", "app.localhost", "/", &html, Default::default())
        .await;
    assert_eq!(page.status, 503, "{}\n{}", page.text(), proxy.logs());
    let kind_of = page
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(kind_of.starts_with("text/html"), "content-type {kind_of}");
    assert!(
        page.headers.contains_key("retry-after"),
        "{:?}",
        page.headers
    );
    assert!(page.text().contains("Waking up"), "{}", page.text());

    // The browser reloads until the app answers: then it is the app's own page.
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let answer = browser
            .send("GET", "app.localhost", "/", &html, Default::default())
            .await;
        match answer.status.as_u16() {
            200 => break answer,
            503 | 307 => {}
            other => panic!("{other}: {}\n{}", answer.text(), proxy.logs()),
        }
        assert!(Instant::now() < deadline, "still {}", answer.status);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(answer.text(), "hello from app");
    assert_eq!(engine.state("app"), State::Awake);
    assert_eq!(starts(&engine), 1, "one start");
    engine.stop().await;
}

async fn an_unknown_host_is_a_404(kind: Kind) {
    let engine = engine(&config("", "")).await;
    let proxy = Proxy::start(kind, &Setup::new(engine.admin_addr)).await;

    let answer = TestClient::new(proxy.addr)
        .get("nobody.localhost", "/some/page")
        .await;
    assert_eq!(answer.status, 404, "{}\n{}", answer.text(), proxy.logs());
    assert_eq!(answer.json()["error"]["code"], "unknown_app");
    assert_eq!(engine.state("app"), State::Asleep);
    assert_eq!(wakes(&engine), 0);
    engine.stop().await;
}

async fn hits_through_the_proxy_keep_an_app_in_use_awake(kind: Kind) {
    let engine = engine(&config(", max_idle: 2s", "")).await;
    let proxy = Proxy::start(kind, &Setup::new(engine.admin_addr)).await;
    let client = TestClient::new(proxy.addr);

    // Requests every 500 ms for 5 s, two and a half times max_idle: the app never stops,
    // although the requests reach it through the proxy, never through the engine.
    let began = Instant::now();
    let mut hits = 0;
    while began.elapsed() < Duration::from_secs(5) {
        let answer = client.get("app.localhost", "/").await;
        assert_eq!(answer.status, 200, "{}\n{}", answer.text(), proxy.logs());
        assert_eq!(answer.text(), "hello from app");
        hits += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(hits >= 5, "only {hits} requests");
    assert_eq!(stops(&engine), 0, "stopped while in use");
    assert_eq!(engine.state("app"), State::Awake);
    assert_eq!(starts(&engine), 1);

    // Left alone, it sleeps.
    engine
        .wait_state("app", State::Asleep, Duration::from_secs(20))
        .await;
    engine.stop().await;
}

async fn a_storm_through_the_proxy_starts_the_app_once(kind: Kind) {
    const CLIENTS: usize = 40;
    let dir = TempDir::new("proxied-storm");
    std::fs::write(dir.path("index.html"), "<p>hello</p>\n").expect("write");
    let port = free_port();
    let engine = engine(&format!(
        "{TRUSTED}\
         defaults: {{wake_timeout: 30s}}\n\
         providers:\n  - id: local\n    type: process\n    apps:\n\
         \x20     - name: app\n\
         \x20       command: python3 -m http.server {port} --bind 127.0.0.1 --directory {}\n\
         \x20       port: {port}\n",
        dir.0.display()
    ))
    .await;
    // The proxy forwards to the app's fixed address (the variant without X-Paastis-Upstream).
    let proxy = Proxy::start(
        kind,
        &Setup::new(engine.admin_addr).upstream(([127, 0, 0, 1], port).into()),
    )
    .await;

    let mut command = tokio::process::Command::new("curl");
    command
        .args(["--silent", "--parallel", "--parallel-immediate"])
        .args(["--parallel-max", &CLIENTS.to_string()])
        .args(["--max-time", "40", "--header", "Host: app.localhost"])
        .args(["--write-out", "%{http_code}\\n"]);
    for _ in 0..CLIENTS {
        command.args(["--output", "/dev/null", &proxy.url("/")]);
    }
    let output = command.output().await.expect("curl runs");
    let statuses: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(statuses.len(), CLIENTS, "{statuses:?}");
    let failed: Vec<&String> = statuses.iter().filter(|s| *s != "200").collect();
    assert!(
        failed.is_empty(),
        "{} of {CLIENTS} requests failed: {failed:?}\n{}",
        failed.len(),
        proxy.logs()
    );
    assert_eq!(starts(&engine), 1, "one start for the storm");
    assert_eq!(wakes(&engine), 1, "one wake for the storm");
    engine.stop().await;
}

async fn the_token_lets_an_untrusted_proxy_in(kind: Kind) {
    // 127.0.0.1 is not a trusted proxy here: callers need the token.
    let env = HashMap::from([("GATE_TOKEN".to_owned(), TOKEN.to_owned())]);
    let yaml = config_with(
        "proxy: {trusted_proxies: [10.0.0.0/8]}\n\
         gate: {token: \"${GATE_TOKEN}\", forward_auth: true}\n",
        "",
        "",
    );
    let engine = TestEngine::start_with_env(&yaml, &env).await;
    engine
        .wait_state("app", State::Asleep, Duration::from_secs(15))
        .await;

    // Directly: no token, or a wrong one, is 403 and wakes nothing.
    let gate = TestClient::new(engine.admin_addr);
    let original = ("x-forwarded-host", "app.localhost");
    for headers in [
        vec![original],
        vec![original, ("authorization", "Bearer not-the-token")],
    ] {
        let answer = gate
            .send("GET", "gate", "/forward-auth", &headers, Default::default())
            .await;
        assert_eq!(answer.status, 403, "{headers:?}: {}", answer.text());
    }
    assert_eq!(wakes(&engine), 0);

    // A proxy without the token is refused, and so is its client.
    let refused = Proxy::start(kind, &Setup::new(engine.admin_addr)).await;
    let answer = TestClient::new(refused.addr)
        .get("app.localhost", "/")
        .await;
    assert_eq!(answer.status, 403, "{}\n{}", answer.text(), refused.logs());
    assert_eq!(wakes(&engine), 0);

    // With the token, it is let in.
    let proxy = Proxy::start(kind, &Setup::new(engine.admin_addr).token(TOKEN)).await;
    let (status, body) = curl(&proxy, "app.localhost", "/").await;
    assert_eq!((status, body.as_str()), (200, "hello from app"));
    assert_eq!(starts(&engine), 1);

    // And so is a direct caller with it: the answer names the app and its upstream.
    let bearer = format!("Bearer {TOKEN}");
    let answer = gate
        .send(
            "GET",
            "gate",
            "/forward-auth",
            &[original, ("authorization", &bearer)],
            Default::default(),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let header = |name: &str| {
        answer
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("x-paastis-app"), "app");
    assert!(
        header("x-paastis-upstream").starts_with("http://127.0.0.1:"),
        "{:?}",
        answer.headers
    );
    engine.stop().await;
}

async fn a_session_keeps_the_app_awake_after_the_last_hit(kind: Kind) {
    let engine = engine(&config(", max_idle: 1s", "")).await;
    // Every hit keeps the app awake 4 s at least: a download or a WebSocket the proxy keeps
    // open does not go through the gate again.
    let proxy = Proxy::start(kind, &Setup::new(engine.admin_addr).query("?session=4s")).await;
    let client = TestClient::new(proxy.addr);
    assert_eq!(client.get("app.localhost", "/").await.status, 200);
    let answer = client.get("app.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let last = Instant::now();

    // Well past max_idle (1 s, checked every second), well within the session.
    tokio::time::sleep_until(last + Duration::from_millis(2500)).await;
    assert_eq!(stops(&engine), 0, "stopped within its session");
    assert_eq!(engine.state("app"), State::Awake);

    // Then it sleeps.
    engine
        .wait_state("app", State::Asleep, Duration::from_secs(20))
        .await;
    assert_eq!(starts(&engine), 1);
    engine.stop().await;
}

/// `/forward-auth/keepalive` (for a cron or the app itself) never wakes an app, tells its
/// state, and renews an awake app's session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keepalive_hit_never_wakes_an_app_and_renews_its_session() {
    let engine = engine(&config(", max_idle: 1s", "")).await;
    let gate = TestClient::new(engine.admin_addr);
    let keepalive = |host: &'static str, path: &'static str| {
        let gate = gate.clone();
        async move {
            gate.send(
                "GET",
                "gate",
                path,
                &[("x-forwarded-host", host)],
                Default::default(),
            )
            .await
        }
    };
    let state = |answer: &support::Answer| {
        answer
            .headers
            .get("x-paastis-state")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };

    let answer = keepalive("app.localhost", "/forward-auth/keepalive").await;
    assert_eq!(answer.status, 204, "{}", answer.text());
    assert_eq!(state(&answer), "asleep");
    assert_eq!(engine.state("app"), State::Asleep);
    assert_eq!(wakes(&engine), 0);

    // Woken (a program through the gate is held until the app is up), then kept alive.
    let woken = gate
        .send(
            "GET",
            "gate",
            "/forward-auth",
            &[("x-forwarded-host", "app.localhost")],
            Default::default(),
        )
        .await;
    assert_eq!(woken.status, 200, "{}", woken.text());
    let answer = keepalive("app.localhost", "/forward-auth/keepalive?session=4s").await;
    assert_eq!(answer.status, 204);
    assert_eq!(state(&answer), "awake");
    let last = Instant::now();

    // Well past max_idle (1 s), within the session the keepalive asked for.
    tokio::time::sleep_until(last + Duration::from_millis(2500)).await;
    assert_eq!(stops(&engine), 0, "stopped within its session");
    assert_eq!(engine.state("app"), State::Awake);
    engine
        .wait_state("app", State::Asleep, Duration::from_secs(20))
        .await;
    assert_eq!(wakes(&engine), 1);

    assert_eq!(
        keepalive("nobody.localhost", "/forward-auth/keepalive")
            .await
            .status,
        404
    );
    engine.stop().await;
}
