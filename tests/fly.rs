//! The `fly` provider against the fake Fly.io Machines API (a real HTTP server following the
//! documented API): discovery of an organisation's apps, a wake that starts every Machine of
//! the app once (even in a storm of requests), idle stops (stop or suspend), the exact
//! Machines that ran restored, 429s honoured, and the token kept out of logs and errors.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use paastis::events::EventKind;
use paastis::model::State;
use support::fakes::fly::{FakeFly, by_group};
use support::{TempDir, TestClient, TestEngine};

const TOKEN: &str = "fo1_fly-secret-token-0009";

/// A `fly` provider entry for `fake`'s organisation `acme`, its apps reached on `server`
/// (the fake serves each app on its own port: the template names the one under test).
fn provider(fake: &FakeFly, server: &str, extra: &str) -> String {
    let host = server.trim_start_matches("http://");
    format!(
        "{{id: fly, type: fly, token: {TOKEN}, org: acme, api_url: '{}/v1', \
         hostname_template: '{host}', upstream_scheme: http{extra}}}",
        fake.url
    )
}

fn config(max_idle: &str, provider: &str) -> String {
    format!("defaults: {{max_idle: {max_idle}, wake_timeout: 20s}}\nproviders:\n  - {provider}\n")
}

fn groups(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(group, states)| {
            (
                (*group).to_owned(),
                states.iter().map(|s| (*s).to_owned()).collect(),
            )
        })
        .collect()
}

/// A formation and its sizes, as lists.
type Recorded = (Vec<(String, u32)>, Vec<(String, String)>);

/// The formation and sizes of the latest `stopped` event of `app`.
fn stopped_with(engine: &TestEngine, app: &str) -> Recorded {
    engine
        .events()
        .into_iter()
        .rev()
        .find_map(|event| match event.kind {
            EventKind::Stopped { formation, sizes } if &*event.app.name == app => Some((
                formation.unwrap_or_default().into_iter().collect(),
                sizes.into_iter().collect(),
            )),
            _ => None,
        })
        .expect("a stopped event")
}

/// Polls until `app`'s Machines have these states per group (generous deadline).
async fn wait_groups(fake: &FakeFly, app: &str, want: &BTreeMap<String, Vec<String>>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = by_group(&fake.machines(app));
        if &now == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{app}: {now:?} instead of {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organisations_apps_are_discovered_and_odd_machines_skipped() {
    let fake = FakeFly::start(TOKEN).await;
    let shop = fake
        .add_app("acme", "shop", &[("app", true), ("worker", true)])
        .await;
    fake.add_app("acme", "blog", &[("app", false), ("app", false)])
        .await;
    fake.add_app("acme", "docs", &[("app", false)]).await;
    fake.add_app("other", "extra", &[("app", false)]).await;
    fake.add_app("other", "hidden", &[("app", true)]).await;
    fake.add_odd_entry("blog", serde_json::json!({"id": 42, "state": null}));
    fake.add_odd_entry("blog", serde_json::json!("not a machine"));
    let engine = TestEngine::start(&config(
        "15m",
        &provider(&fake, &shop.url, ", apps: [extra, gone]"),
    ))
    .await;
    assert_eq!(engine.state("shop"), State::Awake);
    assert_eq!(engine.state("blog"), State::Asleep);
    assert_eq!(engine.state("docs"), State::Asleep);
    // Listed by name, outside the organisation; a name the platform does not know is skipped.
    assert_eq!(engine.state("extra"), State::Asleep);
    assert!(
        engine
            .events()
            .iter()
            .all(|event| &*event.app.name != "hidden" && &*event.app.name != "gone"),
        "only the organisation's and the listed apps are managed"
    );
    let client = TestClient::new(engine.addr);
    let answer = client.get("shop.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello from shop");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_wakes_every_machine_and_idle_stops_them_all() {
    let fake = FakeFly::start(TOKEN).await;
    let shop = fake
        .add_app(
            "acme",
            "shop",
            &[("app", false), ("app", false), ("worker", false)],
        )
        .await;
    let engine = TestEngine::start(&config("1s", &provider(&fake, &shop.url, ""))).await;
    assert_eq!(engine.state("shop"), State::Asleep);
    let client = TestClient::new(engine.addr);

    let answer = client.get("shop.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello from shop");
    assert_eq!(
        by_group(&fake.machines("shop")),
        groups(&[("app", &["started", "started"]), ("worker", &["started"])])
    );
    assert_eq!(fake.actions("shop", "start"), 3);

    engine
        .wait_state("shop", State::Asleep, Duration::from_secs(15))
        .await;
    wait_groups(
        &fake,
        "shop",
        &groups(&[("app", &["stopped", "stopped"]), ("worker", &["stopped"])]),
    )
    .await;
    assert!(!shop.is_up());
    assert_eq!(
        stopped_with(&engine, "shop"),
        (
            vec![("app".to_owned(), 2), ("worker".to_owned(), 1)],
            vec![
                ("app".to_owned(), "shared-cpu-1x-256mb".to_owned()),
                ("worker".to_owned(), "shared-cpu-1x-256mb".to_owned())
            ]
        )
    );
    assert_eq!(fake.actions("shop", "stop"), 3);
    assert_eq!(fake.actions("shop", "suspend"), 0);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_restores_exactly_the_machines_that_ran() {
    let fake = FakeFly::start(TOKEN).await;
    let shop = fake
        .add_app(
            "acme",
            "shop",
            &[("app", true), ("app", true), ("app", true), ("app", false)],
        )
        .await;
    // The fourth was created and never run: no wake starts it.
    let never_run = fake.machines("shop")[3].0.clone();
    fake.set_state("shop", &never_run, "created");
    let engine = TestEngine::start(&config("2s", &provider(&fake, &shop.url, ""))).await;
    assert_eq!(engine.state("shop"), State::Awake);
    // The user stops one of the three before the idle stop.
    let machines = fake.machines("shop");
    let (kept_stopped, _, _) = &machines[1];
    fake.set_state("shop", kept_stopped, "stopped");

    engine
        .wait_state("shop", State::Asleep, Duration::from_secs(15))
        .await;
    wait_groups(
        &fake,
        "shop",
        &groups(&[("app", &["stopped", "stopped", "stopped", "created"])]),
    )
    .await;
    assert_eq!(stopped_with(&engine, "shop").0, vec![("app".to_owned(), 2)]);
    assert_eq!(fake.actions("shop", "stop"), 2);

    let client = TestClient::new(engine.addr);
    let answer = client.get("shop.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let after: Vec<(String, String)> = fake
        .machines("shop")
        .into_iter()
        .map(|(id, _, state)| (id, state))
        .collect();
    let expected: Vec<(String, String)> = machines
        .iter()
        .map(|(id, _, _)| {
            let state = if id == kept_stopped {
                "stopped"
            } else if *id == never_run {
                "created"
            } else {
                "started"
            };
            (id.clone(), state.to_owned())
        })
        .collect();
    assert_eq!(after, expected);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_mode_suspends_and_resumes() {
    let fake = FakeFly::start(TOKEN).await;
    let shop = fake.add_app("acme", "shop", &[("app", true)]).await;
    let engine = TestEngine::start(&config(
        "1s",
        &provider(&fake, &shop.url, ", stop_mode: suspend"),
    ))
    .await;
    engine
        .wait_state("shop", State::Asleep, Duration::from_secs(15))
        .await;
    wait_groups(&fake, "shop", &groups(&[("app", &["suspended"])])).await;
    assert_eq!(fake.actions("shop", "suspend"), 1);
    assert_eq!(fake.actions("shop", "stop"), 0);

    let client = TestClient::new(engine.addr);
    let answer = client.get("shop.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(fake.states("shop"), ["started"]);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_requests_starts_each_machine_once() {
    let fake = FakeFly::start(TOKEN).await;
    fake.set_boot_time(Duration::from_millis(800));
    let shop = fake
        .add_app("acme", "shop", &[("app", false), ("app", false)])
        .await;
    let engine = TestEngine::start(&config("15m", &provider(&fake, &shop.url, ""))).await;
    let mut requests = Vec::new();
    for _ in 0..50 {
        let client = TestClient::new(engine.addr);
        requests.push(tokio::spawn(async move {
            client.get("shop.localhost", "/").await
        }));
    }
    for request in requests {
        let answer = request.await.expect("request task");
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.text(), "hello from shop");
    }
    assert_eq!(fake.actions("shop", "start"), 2);
    assert_eq!(fake.calls.count("POST"), 2);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_calls_are_retried_after_the_platforms_delay() {
    let fake = FakeFly::start(TOKEN).await;
    let shop = fake.add_app("acme", "shop", &[("app", false)]).await;
    let engine = TestEngine::start(&config("15m", &provider(&fake, &shop.url, ""))).await;
    fake.calls.throttle_next(2);
    let client = TestClient::new(engine.addr);
    let answer = client.get("shop.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(fake.calls.faults_pending(), 0);
    let throttled: Vec<_> = fake
        .calls
        .all()
        .into_iter()
        .filter(|call| call.status == 429)
        .collect();
    assert_eq!(throttled.len(), 2);
    assert_eq!(fake.actions("shop", "start"), 1);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_never_reaches_logs_or_errors() {
    let fake = FakeFly::start(TOKEN).await;
    let shop = fake.add_app("acme", "shop", &[("app", false)]).await;
    let dir = TempDir::new("fly-secrets");
    let file = dir.path("paastis.yml");
    let wrong = format!(
        "{{id: fly-bad, type: fly, token: fo1_wrong-secret-0010, org: acme, api_url: '{}/v1'}}",
        fake.url
    );
    std::fs::write(
        &file,
        format!(
            "defaults: {{max_idle: 1s, wake_timeout: 20s}}\nproviders:\n  - {}\n  - {wrong}\n",
            provider(&fake, &shop.url, "")
        ),
    )
    .expect("write config");
    let checked = support::check(&file).await;
    let check_out = checked.output.as_str();
    assert_eq!(checked.code, Some(1), "{check_out}");
    let line = |id: &str| checked.line(id);
    assert!(line("fly-bad").contains("bad credentials"), "{check_out}");
    assert!(line("fly").ends_with(" ok"), "{check_out}");

    let mut served = support::serve(&file, &[("LOG_LEVEL", "trace")]).await;
    let client = TestClient::new(served.addr);
    let answer = client.get("shop.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    tokio::time::sleep(Duration::from_secs(3)).await; // an idle stop happens too
    let _ = served.child.start_kill();
    let _ = served.child.wait().await;
    let logs = served.logs();
    assert!(logs.contains("stopping"), "no idle stop logged: {logs}");
    support::assert_no_secret(
        &[check_out, &logs],
        &[TOKEN, "fo1_wrong-secret-0010", "Bearer "],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_with_their_own_scheme_are_sent_as_they_are() {
    let token = "FlyV1 fm2_macaroon-0011";
    let fake = FakeFly::start(token).await;
    let shop = fake.add_app("acme", "shop", &[("app", false)]).await;
    let host = shop.url.trim_start_matches("http://");
    let engine = TestEngine::start(&config(
        "15m",
        &format!(
            "{{id: fly, type: fly, token: '{token}', org: acme, api_url: '{}/v1', \
             hostname_template: '{host}', upstream_scheme: http}}",
            fake.url
        ),
    ))
    .await;
    assert_eq!(engine.state("shop"), State::Asleep);
    let answer = TestClient::new(engine.addr)
        .get("shop.localhost", "/")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(fake.calls.all().iter().all(|call| call.status != 401));
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_while_the_machines_still_stop_waits_for_them_and_starts_them() {
    let fake = FakeFly::start(TOKEN).await;
    fake.set_stop_time(Duration::from_secs(2));
    let shop = fake.add_app("acme", "shop", &[("app", true)]).await;
    let engine = TestEngine::start(&config("1s", &provider(&fake, &shop.url, ""))).await;
    engine
        .wait_state("shop", State::Asleep, Duration::from_secs(15))
        .await;
    assert_eq!(fake.states("shop"), ["stopping"]);
    let answer = TestClient::new(engine.addr)
        .get("shop.localhost", "/")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(fake.states("shop"), ["started"]);
    // The first start was refused while the Machine stopped; the engine waited for it.
    assert!(fake.calls.all().iter().any(|call| call.status == 412));
    assert!(fake.calls.count("GET /v1/apps/shop/machines/") > 0);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_that_crashes_on_start_fails_the_wake_with_its_check_output() {
    let fake = FakeFly::start(TOKEN).await;
    let shop = fake.add_app("acme", "shop", &[("app", false)]).await;
    fake.crash_on_start("shop", "  dial tcp 172.19.0.2:8080: connection refused\n");
    let engine = TestEngine::start(&config("15m", &provider(&fake, &shop.url, ""))).await;
    let answer = TestClient::new(engine.addr)
        .get("shop.localhost", "/")
        .await;
    assert_eq!(answer.status, 503, "{}", answer.text());
    let reason = engine
        .events()
        .into_iter()
        .find_map(|event| match event.kind {
            EventKind::StartFailed { reason } => Some(reason),
            _ => None,
        })
        .unwrap_or_else(|| panic!("a failed wake: {} / {:?}", answer.text(), engine.events()));
    assert!(
        reason.contains("is stopped again after its start")
            && reason.ends_with("connection refused)"),
        "{reason}"
    );
    assert!(!reason.contains(TOKEN));
    engine.stop().await;
}
