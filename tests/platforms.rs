//! The platform providers against fake Scalingo, Heroku and Clever Cloud APIs (real HTTP
//! servers following the platforms' documented behaviour): discovery, wake with the
//! remembered formation, idle stop, several accounts at once, and secrets kept out of logs.

mod support;

use std::time::Duration;

use paastis::model::State;
use support::fakes::clever::{CleverCredentials, FakeClever};
use support::fakes::heroku::FakeHeroku;
use support::fakes::scalingo::FakeScalingo;
use support::{TempDir, TestClient, TestEngine};

const SCALINGO_TOKEN: &str = "tk-us-scalingo-secret-0001";
const HEROKU_TOKEN: &str = "hrku-secret-token-0002";
const CLEVER_TOKEN: &str = "clever-api-token-0003";

fn clever_credentials() -> CleverCredentials {
    CleverCredentials {
        consumer_key: "ck-0004".to_owned(),
        consumer_secret: "cs-secret-0005".to_owned(),
        token: "tok-0006".to_owned(),
        secret: "ts-secret-0007".to_owned(),
        api_token: CLEVER_TOKEN.to_owned(),
    }
}

fn scalingo_provider(fake: &FakeScalingo) -> String {
    format!(
        "{{id: scalingo-fr1, type: scalingo, token: {SCALINGO_TOKEN}, api_url: '{0}', auth_url: '{0}'}}",
        fake.url
    )
}

fn heroku_provider(fake: &FakeHeroku) -> String {
    format!(
        "{{id: heroku, type: heroku, token: {HEROKU_TOKEN}, api_url: '{}'}}",
        fake.url
    )
}

fn clever_provider(fake: &FakeClever) -> String {
    format!(
        "{{id: clever, type: clever-cloud, consumer_key: ck-0004, consumer_secret: cs-secret-0005, token: tok-0006, secret: ts-secret-0007, api_url: '{}', upstream_scheme: http}}",
        fake.url
    )
}

fn config(max_idle: &str, providers: &[String]) -> String {
    let mut yaml = format!("defaults: {{max_idle: {max_idle}, wake_timeout: 20s}}\nproviders:\n");
    for provider in providers {
        yaml.push_str(&format!("  - {provider}\n"));
    }
    yaml
}

fn formation(pairs: &[(&str, u32)]) -> Vec<(String, u32)> {
    pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

/// `web` and `worker` of one size.
fn sizes(size: &str) -> Vec<(String, String)> {
    ["web", "worker"]
        .map(|kind| (kind.to_owned(), size.to_owned()))
        .to_vec()
}

/// A formation and its sizes, as lists.
type Recorded = (Vec<(String, u32)>, Vec<(String, String)>);

/// The formation and sizes the latest `stopped` event of `shop` recorded.
fn stopped_with(engine: &TestEngine) -> Recorded {
    engine
        .events()
        .into_iter()
        .rev()
        .find_map(|event| match event.kind {
            paastis::events::EventKind::Stopped { formation, sizes }
                if &*event.app.name == "shop" =>
            {
                Some((
                    formation.unwrap_or_default().into_iter().collect(),
                    sizes.into_iter().collect(),
                ))
            }
            _ => None,
        })
        .expect("a stopped event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scalingo_apps_sleep_when_idle_and_wake_with_their_formation() {
    let fake = FakeScalingo::start(SCALINGO_TOKEN).await;
    let shop = fake
        .add_app("shop", &[("web", 2), ("worker", 1)], true)
        .await;
    let engine = TestEngine::start(&config("1s", &[scalingo_provider(&fake)])).await;
    // Discovery found it running: managed as awake, with activity = now.
    assert_eq!(engine.state("shop"), State::Awake);

    engine
        .wait_state("shop", State::Asleep, Duration::from_secs(10))
        .await;
    assert_eq!(
        fake.formation("shop"),
        formation(&[("web", 0), ("worker", 0)])
    );
    assert!(!shop.is_up());
    // The stop recorded what ran, sizes included (the savings price them).
    assert_eq!(
        stopped_with(&engine),
        (formation(&[("web", 2), ("worker", 1)]), sizes("M"))
    );

    let client = TestClient::new(engine.addr);
    let answer = client.get("shop.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello from shop");
    assert_eq!(
        fake.formation("shop"),
        formation(&[("web", 2), ("worker", 1)])
    );
    assert_eq!(fake.exchanges(), 1, "one JWT serves every call");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heroku_apps_sleep_when_idle_and_wake_with_their_formation() {
    let fake = FakeHeroku::start(HEROKU_TOKEN).await;
    let shop = fake
        .add_app("shop", &[("web", 2), ("worker", 1)], true)
        .await;
    let engine = TestEngine::start(&config("1s", &[heroku_provider(&fake)])).await;
    let client = TestClient::new(engine.addr);

    // The list carries no state: the first request checks, finds it up, changes nothing.
    let answer = client.get("shop.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        fake.formation("shop"),
        formation(&[("web", 2), ("worker", 1)])
    );

    engine
        .wait_state("shop", State::Asleep, Duration::from_secs(10))
        .await;
    assert_eq!(
        fake.formation("shop"),
        formation(&[("web", 0), ("worker", 0)])
    );
    assert!(!shop.is_up());
    assert_eq!(
        stopped_with(&engine),
        (formation(&[("web", 2), ("worker", 1)]), sizes("Basic"))
    );

    let answer = client.get("shop.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello from shop");
    assert_eq!(
        fake.formation("shop"),
        formation(&[("web", 2), ("worker", 1)])
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clever_apps_wake_by_name_or_id_and_sleep_when_idle() {
    let fake = FakeClever::start(clever_credentials()).await;
    let (id, api) = fake.add_app("api", None, 1, false).await;
    let engine = TestEngine::start(&config("1s", &[clever_provider(&fake)])).await;
    assert_eq!(engine.state("api"), State::Asleep);
    let client = TestClient::new(engine.addr);

    let dashed = id.replacen("app_", "app-", 1);
    for host in [
        "api.localhost".to_owned(),
        format!("{id}.localhost"),
        format!("{dashed}.localhost"),
    ] {
        let answer = client.get(&host, "/").await;
        assert_eq!(answer.status, 200, "{host}: {}", answer.text());
        assert_eq!(answer.text(), "hello from api");
    }
    assert_eq!(fake.instances(&id), 1);

    engine
        .wait_state("api", State::Asleep, Duration::from_secs(10))
        .await;
    assert_eq!(fake.instances(&id), 0);
    assert!(!api.is_up());
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_platforms_at_once_with_qualified_names_for_shared_ones() {
    let scalingo = FakeScalingo::start(SCALINGO_TOKEN).await;
    let heroku = FakeHeroku::start(HEROKU_TOKEN).await;
    let clever = FakeClever::start(clever_credentials()).await;
    scalingo.add_app("front", &[("web", 1)], false).await;
    scalingo.add_app("shared", &[("web", 1)], false).await;
    heroku.add_app("back", &[("web", 1)], false).await;
    heroku.add_app("shared", &[("web", 1)], false).await;
    clever.add_app("docs", None, 1, false).await;
    let engine = TestEngine::start(&config(
        "15m",
        &[
            scalingo_provider(&scalingo),
            heroku_provider(&heroku),
            clever_provider(&clever),
        ],
    ))
    .await;
    let client = TestClient::new(engine.addr);

    let mut requests = tokio::task::JoinSet::new();
    for host in [
        "front",
        "back",
        "docs",
        "shared--scalingo-fr1",
        "shared--heroku",
    ] {
        let client = client.clone();
        requests.spawn(async move { (host, client.get(&format!("{host}.localhost"), "/").await) });
    }
    while let Some(joined) = requests.join_next().await {
        let (host, answer) = joined.expect("request task");
        assert_eq!(answer.status, 200, "{host}: {}", answer.text());
        let app = host.split("--").next().unwrap_or(host);
        assert_eq!(answer.text(), format!("hello from {app}"));
    }

    let answer = client.get("shared.localhost", "/").await;
    assert_eq!(answer.status, 409);
    let message = answer.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("shared--scalingo-fr1.localhost"),
        "{message}"
    );
    assert!(message.contains("shared--heroku.localhost"), "{message}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_provider_failing_leaves_the_others_working() {
    let heroku = FakeHeroku::start(HEROKU_TOKEN).await;
    heroku.add_app("back", &[("web", 1)], false).await;
    let clever = FakeClever::start(clever_credentials()).await;
    clever.add_app("docs", None, 1, false).await;
    // Heroku is configured with a wrong token; Clever Cloud works.
    let bad_heroku = format!(
        "{{id: heroku, type: heroku, token: wrong-token, api_url: '{}'}}",
        heroku.url
    );
    let engine = TestEngine::start(&config("15m", &[bad_heroku, clever_provider(&clever)])).await;
    let client = TestClient::new(engine.addr);
    assert_eq!(client.get("docs.localhost", "/").await.status, 200);
    assert_eq!(client.get("back.localhost", "/").await.status, 404);
    let failures: Vec<String> = engine
        .events()
        .into_iter()
        .filter_map(|event| match event.kind {
            paastis::events::EventKind::ProviderError { message } => Some(message),
            _ => None,
        })
        .collect();
    // At start, then once more for the unknown host (an on-demand discovery).
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(
        failures.iter().all(|f| f.contains("bad credentials")),
        "{failures:?}"
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_secrets_never_reach_logs_or_errors() {
    let scalingo = FakeScalingo::start(SCALINGO_TOKEN).await;
    scalingo.add_app("front", &[("web", 1)], false).await;
    let heroku = FakeHeroku::start(HEROKU_TOKEN).await;
    heroku.add_app("back", &[("web", 1)], false).await;
    let clever = FakeClever::start(clever_credentials()).await;
    clever.add_app("docs", None, 1, false).await;
    let dir = TempDir::new("platform-secrets");
    let file = dir.path("paastis.yml");
    // A wrong Heroku token too: its error must not show it either.
    let wrong_heroku = format!(
        "{{id: heroku-bad, type: heroku, token: hrku-wrong-secret-0008, api_url: '{}'}}",
        heroku.url
    );
    std::fs::write(
        &file,
        config(
            "1s",
            &[
                scalingo_provider(&scalingo),
                heroku_provider(&heroku),
                clever_provider(&clever),
                wrong_heroku,
            ],
        ),
    )
    .expect("write config");
    let checked = support::check(&file).await;
    let check_out = checked.output.as_str();
    // `check` names the failing account and why, and fails; the others are fine.
    assert_eq!(checked.code, Some(1), "{check_out}");
    let line = |id: &str| checked.line(id);
    assert!(
        line("heroku-bad").contains("bad credentials"),
        "{check_out}"
    );
    for id in ["scalingo-fr1", "heroku", "clever"] {
        assert!(line(id).ends_with(" ok"), "{check_out}");
    }

    let mut served = support::serve(&file, &[("LOG_LEVEL", "trace")]).await;
    let client = TestClient::new(served.addr);
    for host in ["front", "back", "docs"] {
        let answer = client.get(&format!("{host}.localhost"), "/").await;
        assert_eq!(answer.status, 200, "{host}: {}", answer.text());
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // idle stops happen too
    let _ = served.child.start_kill();
    let _ = served.child.wait().await;
    let logs = served.logs();
    assert!(
        logs.contains("stopping"),
        "idle stops were not logged: {logs}"
    );
    support::assert_no_secret(
        &[check_out, &logs],
        &[
            SCALINGO_TOKEN,
            HEROKU_TOKEN,
            CLEVER_TOKEN,
            "cs-secret-0005",
            "ts-secret-0007",
            "hrku-wrong-secret-0008",
            "Bearer ",
            "oauth_signature",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_jwts_are_exchanged_only_when_needed_and_never_fail_a_call() {
    let fake = FakeScalingo::start(SCALINGO_TOKEN).await;
    fake.set_jwt_ttl(Duration::from_secs(3));
    fake.set_boot_time(Duration::from_millis(50));
    fake.add_app("shop", &[("web", 1)], false).await;
    fake.add_app("blog", &[("web", 1)], true).await;
    // This test is about tokens: a budget well above what it sends, on both sides.
    fake.set_rate_limit(1000);
    let provider = scalingo_provider(&fake).replace('}', ", rate_limit: 1000}");
    let yaml = format!("discovery: {{every: 1s}}\n{}", config("2s", &[provider]));
    let engine = TestEngine::start(&yaml).await;
    let client = TestClient::new(engine.addr);
    // Twenty seconds of requests, wakes, idle stops and discovery ticks: several JWT lives.
    let started = tokio::time::Instant::now();
    let mut requests = 0;
    while started.elapsed() < Duration::from_secs(20) {
        for host in ["shop.localhost", "blog.localhost"] {
            let answer = client.get(host, "/").await;
            assert_eq!(answer.status, 200, "{host}: {}", answer.text());
            requests += 1;
        }
        tokio::time::sleep(Duration::from_millis(if requests % 20 == 0 {
            2500
        } else {
            200
        }))
        .await;
    }
    let elapsed = started.elapsed().as_secs_f64() + 1.0;
    let failures = engine.count("", |k| {
        matches!(
            k,
            paastis::events::EventKind::ProviderError { .. }
                | paastis::events::EventKind::StartFailed { .. }
                | paastis::events::EventKind::StopFailed { .. }
        )
    });
    assert_eq!(failures, 0, "{:?}", engine.events());
    assert!(
        engine.count("shop", |k| matches!(
            k,
            paastis::events::EventKind::Stopped { .. }
        )) >= 1,
        "the run saw no idle stop"
    );
    // A 3 s token, renewed with a fifth of its life left (and `exp` in whole seconds):
    // needed about every 2 s, never on every call.
    let exchanges = fake.exchanges();
    let calls = fake.calls.all().len();
    assert!(
        exchanges >= (elapsed / 3.0) as usize,
        "{exchanges} exchanges in {elapsed}s"
    );
    assert!(
        exchanges <= (elapsed / 1.5) as usize + 2,
        "{exchanges} exchanges in {elapsed}s"
    );
    assert!(
        calls > exchanges * 3,
        "{calls} calls for {exchanges} exchanges"
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_errors_never_break_awake_apps_or_the_engine() {
    let fake = FakeScalingo::start(SCALINGO_TOKEN).await;
    fake.set_rate_limit(1000);
    fake.add_app("awake", &[("web", 1)], true).await;
    fake.add_app("asleep", &[("web", 1)], false).await;
    let provider = format!(
        "{{id: scalingo-fr1, type: scalingo, token: {SCALINGO_TOKEN}, api_url: '{0}', auth_url: '{0}', rate_limit: 120}}",
        fake.url
    );
    let yaml = format!(
        "discovery: {{every: 1s}}\ndefaults: {{max_idle: 15m, wake_timeout: 3s}}\nproviders:\n  - {provider}\n"
    );
    let engine = TestEngine::start(&yaml).await;
    let client = TestClient::new(engine.addr);

    // A storm of 429s, then of 500s, on every API call.
    fake.calls.throttle_next(1000);
    for _ in 0..30 {
        let answer = client.get("awake.localhost", "/").await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = tokio::time::Instant::now();
    let answer = client.get("asleep.localhost", "/").await;
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert!(answer.headers.contains_key("retry-after"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    fake.calls.throttle_next(0);
    fake.calls.fail_next(1000, 500);
    for _ in 0..30 {
        assert_eq!(client.get("awake.localhost", "/").await.status, 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = client.get("asleep.localhost", "/").await;
    assert_eq!(answer.status, 503, "{}", answer.text());

    // The platform recovers: so does the engine.
    fake.calls.fail_next(0, 500);
    let answer = client.get("asleep.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(
        fake.calls.max_in_window(Duration::from_secs(60)) <= 120,
        "more calls than the account's limit: {}",
        fake.calls.max_in_window(Duration::from_secs(60))
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_of_hundreds_of_apps_makes_only_list_calls() {
    let heroku = FakeHeroku::start(HEROKU_TOKEN).await;
    heroku.set_page_size(200);
    let scalingo = FakeScalingo::start(SCALINGO_TOKEN).await;
    for n in 0..500 {
        heroku
            .add_app(&format!("review-{n}"), &[("web", 1)], n % 2 == 0)
            .await;
        scalingo
            .add_app(&format!("review-{n}"), &[("web", 1)], n % 2 == 0)
            .await;
    }
    let heroku_before = heroku.calls.all().len();
    let scalingo_before = scalingo.calls.all().len();
    let engine = TestEngine::start(&config(
        "15m",
        &[heroku_provider(&heroku), scalingo_provider(&scalingo)],
    ))
    .await;
    assert_eq!(engine.lifecycle.apps().len(), 1000);
    // Heroku: 500 apps in pages of 200 -> 3 list calls; Scalingo: 1 list call.
    assert_eq!(heroku.calls.all().len() - heroku_before, 3);
    assert_eq!(heroku.calls.count("GET /apps"), 3);
    // Scalingo: one token exchange, then 1 list call.
    assert_eq!(scalingo.calls.all().len() - scalingo_before, 2);
    assert_eq!(scalingo.calls.count("GET /v1/apps"), 1);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_are_verified_and_reached_with_their_host() {
    let fake = FakeScalingo::start(SCALINGO_TOKEN).await;
    let server = fake.add_app("secure", &[("web", 1)], true).await;
    let front = support::fakes::tls_front(&server).await;
    fake.set_public_url("secure", &format!("{front}/"));
    let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/tls/ca.pem");

    // Trusting the test CA: the request goes through TLS to the app.
    let trusted = format!(
        "proxy: {{upstream_ca_file: '{}', workers: 1}}\n{}",
        ca.display(),
        config("15m", &[scalingo_provider(&fake)])
    );
    let engine = TestEngine::start(&trusted).await;
    let client = TestClient::new(engine.addr);
    let answer = client.get("secure.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello from secure");
    // The front offers HTTP/2 by ALPN: the proxy speaks it, whatever the client spoke.
    assert_eq!(answer.headers["x-front-protocol"], "HTTP/2.0");
    assert_eq!(answer.headers["via"], "2 paastis");
    assert_eq!(
        answer.headers["x-front-host"],
        front.trim_start_matches("https://")
    );
    // Concurrent requests share that one connection (one proxy worker here).
    let answers =
        futures_util::future::join_all((0..20).map(|_| client.get("secure.localhost", "/"))).await;
    let connections: std::collections::HashSet<_> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, 200, "{}", a.text());
            a.headers["x-front-connection"].clone()
        })
        .collect();
    assert_eq!(connections.len(), 1, "{connections:?}");
    engine.stop().await;

    // Without it, the certificate is refused: 502, and nothing reaches the app.
    let hits = server.hits();
    let engine = TestEngine::start(&config("15m", &[scalingo_provider(&fake)])).await;
    let client = TestClient::new(engine.addr);
    let answer = client.get("secure.localhost", "/").await;
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert!(
        answer.text().contains("TLS certificate"),
        "{}",
        answer.text()
    );
    assert_eq!(server.hits(), hits);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_https_upstreams_at_one_authority_never_share_a_connection() {
    // Two apps at `localhost:PORT`, one by `http`, one by `https`: as `http://app.example`
    // and `https://app.example` are (ports 80 and 443). The front there answers both and
    // says which it was spoken in.
    let fake = FakeScalingo::start(SCALINGO_TOKEN).await;
    let server = fake.add_app("plain", &[("web", 1)], true).await;
    fake.add_app("secure", &[("web", 1)], true).await;
    let port = support::fakes::dual_front(&server).await;
    fake.set_public_url("plain", &format!("http://localhost:{port}/"));
    fake.set_public_url("secure", &format!("https://localhost:{port}/"));
    let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/tls/ca.pem");
    let yaml = format!(
        "proxy: {{upstream_ca_file: '{}', workers: 1}}
{}",
        ca.display(),
        config("15m", &[scalingo_provider(&fake)])
    );
    let engine = TestEngine::start(&yaml).await;
    let client = TestClient::new(engine.addr);
    // Each request leaves its connection idle in the (only) worker's pool for the next:
    // a plain one must never carry an `https` request in the clear, nor a TLS one a plain
    // request, whichever came first.
    let mut connections = std::collections::HashSet::new();
    for (host, tls) in [
        ("plain.localhost", "no"),
        ("secure.localhost", "yes"),
        ("plain.localhost", "no"),
        ("secure.localhost", "yes"),
    ] {
        let answer = client.get(host, "/").await;
        assert_eq!(answer.status, 200, "{host}: {}", answer.text());
        assert_eq!(answer.headers["x-front-tls"], tls, "{host}");
        assert_eq!(answer.headers["x-front-protocol"], "HTTP/1.1", "{host}");
        connections.insert((tls, answer.headers["x-front-connection"].clone()));
    }
    // Each scheme reused its own connection.
    assert_eq!(connections.len(), 2, "{connections:?}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heroku_apps_started_elsewhere_are_found_running_and_stopped_when_idle() {
    let fake = FakeHeroku::start(HEROKU_TOKEN).await;
    let busy = fake.add_app("busy", &[("web", 1)], true).await;
    let idle = fake.add_app("idle", &[("web", 1)], false).await;
    let yaml = format!(
        "discovery: {{every: 1s}}\n{}",
        config("1s", &[heroku_provider(&fake)])
    );
    let engine = TestEngine::start(&yaml).await;
    // The listing says nothing of state: both start asleep, then the running one is found
    // running after a discovery tick, and stopped after its idle time without any request.
    engine
        .wait_state("busy", State::Awake, Duration::from_secs(10))
        .await;
    engine
        .wait_state("busy", State::Asleep, Duration::from_secs(10))
        .await;
    assert_eq!(fake.formation("busy"), formation(&[("web", 0)]));
    assert!(!busy.is_up());
    assert_eq!(engine.state("idle"), State::Asleep);
    assert!(!idle.is_up());
    assert_eq!(
        engine.count("idle", |k| matches!(
            k,
            paastis::events::EventKind::Registered
        )),
        0
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_right_after_a_wake_is_retried_within_the_wake_deadline() {
    let fake = FakeScalingo::start(SCALINGO_TOKEN).await;
    let server = fake.add_app("late", &[("web", 1)], false).await;
    // The platform says "running" 1.5 s before the app's port accepts connections.
    server.set_listen_late(Duration::from_millis(1500));
    let engine = TestEngine::start(&config("15m", &[scalingo_provider(&fake)])).await;
    let client = TestClient::new(engine.addr);
    let answer = client.get("late.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello from late");
    assert_eq!(server.hits(), 1);
    engine.stop().await;

    // Outside the wake deadline (the app has been awake for long), a refused connection
    // is not retried: 502 at once.
    let fake = FakeScalingo::start(SCALINGO_TOKEN).await;
    let server = fake.add_app("down", &[("web", 1)], true).await;
    let engine = TestEngine::start(&format!(
        "defaults: {{wake_timeout: 1s}}\nproviders:\n  - {}\n",
        scalingo_provider(&fake)
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    server.set_listen_late(Duration::from_secs(30));
    server.set_up(false);
    server.set_up(true);
    let started = tokio::time::Instant::now();
    let answer = TestClient::new(engine.addr)
        .get("down.localhost", "/")
        .await;
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    engine.stop().await;
}
