//! Several engine instances sharing one real `redis-server` (started by the tests on a free
//! port), in front of a fake Scalingo account (a real HTTP server following the platform's
//! documented API): one wake across instances, idle stops by the leader only, failover,
//! activity from every instance, and Redis faults (absent at start, lost under load).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use paastis::model::State;
use support::fakes::scalingo::FakeScalingo;
use support::redis::RedisServer;
use support::{TempDir, TestClient, TestEngine};
use tokio::time::{Instant, sleep};

const TOKEN: &str = "tk-us-cluster-secret-0042";
const PREFIX: &str = "ptest";

/// An engine config: one Scalingo account, the Redis registry.
fn config(fake: &FakeScalingo, redis: &RedisServer, max_idle: &str, lease: &str) -> String {
    format!(
        "defaults: {{max_idle: {max_idle}, wake_timeout: 20s}}
discovery: {{every: 2s}}
registry: {{type: redis, url: '{redis}', prefix: {PREFIX}, flush_every: 200ms, lease: {lease}}}
providers:
  - {{id: scalingo, type: scalingo, token: {TOKEN}, api_url: '{api}', auth_url: '{api}'}}
",
        redis = redis.url(),
        api = fake.url,
    )
}

/// Scale calls for the app (starts and stops alike: the test knows which it expects).
fn scales(fake: &FakeScalingo, app: &str) -> usize {
    fake.calls.count(&format!("POST /v1/apps/{app}/scale"))
}

/// A fresh Redis and a fake Scalingo account holding one app, `shop` (web=1).
async fn setup(running: bool) -> (RedisServer, FakeScalingo) {
    let redis = RedisServer::start().await;
    let fake = FakeScalingo::start(TOKEN).await;
    fake.add_app("shop", &[("web", 1)], running).await;
    (redis, fake)
}

/// App leases left in Redis.
async fn locks(redis: &RedisServer) -> Vec<String> {
    redis
        .keys()
        .await
        .into_iter()
        .filter(|k| k.starts_with(&format!("{PREFIX}:lock:")))
        .collect()
}

/// Waits until `check` holds, or panics with `what` after `within`.
async fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until exactly one instance leads and returns its index.
async fn leader(engines: &[&TestEngine]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let leaders: Vec<usize> = engines
            .iter()
            .enumerate()
            .filter(|(_, e)| e.lifecycle.registry().is_leader())
            .map(|(i, _)| i)
            .collect();
        if leaders.len() == 1 {
            return leaders[0];
        }
        assert!(
            Instant::now() < deadline,
            "leaders after 10 s: {leaders:?} (expected exactly one)"
        );
        sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_wake_a_sleeping_app_exactly_once() {
    let (redis, fake) = setup(false).await;
    fake.set_boot_time(Duration::from_millis(800));
    let yaml = config(&fake, &redis, "10m", "2s");
    let a = TestEngine::start(&yaml).await;
    let b = TestEngine::start(&yaml).await;
    let c = TestEngine::start(&yaml).await;
    let engines = [&a, &b, &c];
    leader(&engines).await;
    for engine in engines {
        assert_eq!(engine.state("shop"), State::Asleep);
    }
    let clients: Vec<TestClient> = engines.iter().map(|e| TestClient::new(e.addr)).collect();
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..300 {
        let client = clients[i % 3].clone();
        requests.spawn(async move { client.try_get("shop.localhost", "/").await });
    }
    let mut ok = 0;
    while let Some(answer) = requests.join_next().await {
        let answer = answer.expect("task").expect("exchange");
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.text(), "hello from shop");
        ok += 1;
    }
    assert_eq!(ok, 300);
    assert_eq!(
        scales(&fake, "shop"),
        1,
        "exactly one start call across instances"
    );
    for engine in engines {
        assert_eq!(engine.state("shop"), State::Awake);
    }
    // The engines wrote under their prefix only.
    let keys = redis.keys().await;
    assert!(!keys.is_empty());
    assert!(
        keys.iter().all(|k| k.starts_with(&format!("{PREFIX}:"))),
        "{keys:?}"
    );
    // Only the leader listed the account; the others read its listing.
    let listings = fake
        .calls
        .all()
        .iter()
        .filter(|c| c.method == "GET" && c.path.split('?').next() == Some("/v1/apps"))
        .count();
    assert!(
        listings < 6,
        "{listings} listings of the account for three instances"
    );
    for engine in [a, b, c] {
        engine.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_on_a_follower_keeps_the_app_awake_and_the_leader_stops_it_once() {
    let (redis, fake) = setup(true).await;
    let yaml = config(&fake, &redis, "3s", "2s");
    let a = TestEngine::start(&yaml).await;
    let b = TestEngine::start(&yaml).await;
    let engines = [&a, &b];
    let lead = leader(&engines).await;
    let follower = engines[1 - lead];
    let client = TestClient::new(follower.addr);
    // 8 s of requests, every 500 ms, all on the follower: max_idle 3 s never passes.
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        let answer = client.get("shop.localhost", "/").await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        scales(&fake, "shop"),
        0,
        "stopped while in use on the follower"
    );
    assert_eq!(engines[lead].state("shop"), State::Awake);

    // Quiet: the leader stops it after max_idle, once; the follower follows.
    let quiet = Instant::now();
    engines[lead]
        .wait_state("shop", State::Asleep, Duration::from_secs(10))
        .await;
    let after = quiet.elapsed();
    assert!(
        after >= Duration::from_millis(2500),
        "stopped after {after:?}"
    );
    follower
        .wait_state("shop", State::Asleep, Duration::from_secs(5))
        .await;
    sleep(Duration::from_secs(2)).await;
    assert_eq!(scales(&fake, "shop"), 1, "one stop call");
    let stopped_by = |engine: &TestEngine| {
        engine.count("shop", |k| {
            matches!(k, paastis::events::EventKind::Stopped { .. })
        })
    };
    assert_eq!(stopped_by(engines[lead]), 1);
    assert_eq!(stopped_by(follower), 0, "the follower stops nothing");
    // No lease left behind.
    let locks = locks(&redis).await;
    assert!(locks.is_empty(), "{locks:?}");

    // The next request on the follower wakes it (the follower holds the lease).
    let answer = client.get("shop.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(scales(&fake, "shop"), 2);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_leader_dies_another_instance_takes_over_and_stops_idle_apps_on_time() {
    let (redis, fake) = setup(true).await;
    let dir = TempDir::new("cluster-failover");
    let path = dir.path("paastis.yml");
    std::fs::write(&path, config(&fake, &redis, "3s", "1s")).expect("write config");
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(support::serve(&path, &[("LOG_LEVEL", "info")]).await);
    }
    // The app was running: the leader stops it after 3 s, once.
    let deadline = Instant::now() + Duration::from_secs(15);
    while scales(&fake, "shop") == 0 {
        assert!(Instant::now() < deadline, "never stopped");
        sleep(Duration::from_millis(50)).await;
    }
    sleep(Duration::from_secs(2)).await;
    assert_eq!(scales(&fake, "shop"), 1, "stopped once, by one instance");
    let leads = |logs: &str| logs.contains("this instance is the leader");
    let leaders: Vec<usize> = (0..3).filter(|&i| leads(&instances[i].logs())).collect();
    assert_eq!(leaders.len(), 1, "one leader: {leaders:?}");
    let dead = leaders[0];
    let holder = redis.get(&format!("{PREFIX}:leader")).await;
    assert!(holder.is_some(), "a leader lease is held");

    // Kill the leader (no goodbye: its lease must expire by itself).
    instances[dead].child.kill().await.expect("kill the leader");
    let killed = Instant::now();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != dead).collect();

    // Wake the app through a survivor; it must be stopped again ~3 s after this request.
    let client = TestClient::new(instances[survivors[0]].addr);
    let answer = client.get("shop.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let last_request = Instant::now();
    assert_eq!(scales(&fake, "shop"), 2, "woken once");
    let deadline = Instant::now() + Duration::from_secs(15);
    while scales(&fake, "shop") < 3 {
        assert!(Instant::now() < deadline, "the new leader never stopped it");
        sleep(Duration::from_millis(50)).await;
    }
    let idle_for = last_request.elapsed();
    // max_idle 3 s, lease 1 s (takeover within two lease periods), 1 s idle check.
    assert!(
        idle_for >= Duration::from_millis(2800) && idle_for < Duration::from_secs(7),
        "stopped {idle_for:?} after the last request"
    );
    let new_leaders: Vec<usize> = survivors
        .iter()
        .copied()
        .filter(|&i| leads(&instances[i].logs()))
        .collect();
    assert_eq!(new_leaders.len(), 1, "one new leader: {new_leaders:?}");
    assert!(killed.elapsed() < Duration::from_secs(15));
    sleep(Duration::from_secs(2)).await;
    assert_eq!(scales(&fake, "shop"), 3, "no duplicate stop");
    for instance in &mut instances {
        let _ = instance.child.kill().await;
    }
    // Secrets stay out of the logs.
    for instance in &instances {
        assert!(!instance.logs().contains(TOKEN));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lost_under_load_fails_no_request_and_converges_when_back() {
    let (mut redis, fake) = setup(true).await;
    let yaml = config(&fake, &redis, "4s", "1s");
    let a = TestEngine::start(&yaml).await;
    let b = TestEngine::start(&yaml).await;
    leader(&[&a, &b]).await;

    // Load on both instances for 9 s: Redis dies at 2 s and comes back (empty) at 5 s.
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(9);
    let mut load = tokio::task::JoinSet::new();
    for i in 0..8 {
        let client = TestClient::new(if i % 2 == 0 { a.addr } else { b.addr });
        let failures = Arc::clone(&failures);
        let done = Arc::clone(&done);
        load.spawn(async move {
            while Instant::now() < until {
                match client.try_get("shop.localhost", "/").await {
                    Ok(answer) if answer.status == 200 => {}
                    Ok(answer) => {
                        eprintln!("failed: {} {}", answer.status, answer.text());
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(error) => {
                        eprintln!("failed: {error}");
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
                sleep(Duration::from_millis(5)).await;
            }
        });
    }
    sleep(Duration::from_secs(2)).await;
    redis.kill().await;
    sleep(Duration::from_secs(1)).await;
    for engine in [&a, &b] {
        let health = engine.lifecycle.registry().health();
        assert!(!health.ok, "{health:?}");
        assert!(health.detail.contains("degraded"), "{health:?}");
        assert!(
            !engine.lifecycle.registry().is_leader(),
            "no leader without Redis"
        );
    }
    sleep(Duration::from_secs(2)).await;
    redis.resume().await;
    while load.join_next().await.is_some() {}
    assert_eq!(failures.load(Ordering::SeqCst), 0, "failed requests");
    assert!(done.load(Ordering::SeqCst) > 500, "load ran");
    assert_eq!(scales(&fake, "shop"), 0, "never stopped while in use");

    // Converged: both healthy, one leader, the activity made meanwhile known.
    eventually(
        Duration::from_secs(10),
        "both instances healthy again",
        || a.lifecycle.registry().health().ok && b.lifecycle.registry().health().ok,
    )
    .await;
    let lead = leader(&[&a, &b]).await;
    // Quiet now: stopped once, by the leader, after max_idle.
    let engines = [&a, &b];
    engines[lead]
        .wait_state("shop", State::Asleep, Duration::from_secs(15))
        .await;
    engines[1 - lead]
        .wait_state("shop", State::Asleep, Duration::from_secs(5))
        .await;
    sleep(Duration::from_secs(2)).await;
    assert_eq!(scales(&fake, "shop"), 1, "one stop, no duplicate");
    let locks = locks(&redis).await;
    assert!(locks.is_empty(), "no stuck lease: {locks:?}");
    // And it wakes again through either instance.
    let answer = TestClient::new(engines[1 - lead].addr)
        .get("shop.localhost", "/")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(scales(&fake, "shop"), 2);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_started_before_redis_serves_then_connects() {
    let mut redis = RedisServer::not_started().await;
    let fake = FakeScalingo::start(TOKEN).await;
    fake.add_app("shop", &[("web", 1)], true).await;
    fake.add_app("blog", &[("web", 1)], false).await;
    let started = Instant::now();
    let engine = TestEngine::start(&config(&fake, &redis, "10m", "1s")).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the engine waited for Redis"
    );
    let health = engine.lifecycle.registry().health();
    assert!(!health.ok, "{health:?}");
    let client = TestClient::new(engine.addr);
    let answer = client.get("shop.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    // A wake without Redis: this instance starts the app alone.
    let answer = client.get("blog.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(scales(&fake, "blog"), 1);

    redis.resume().await;
    eventually(
        Duration::from_secs(10),
        "connected once Redis is there",
        || engine.lifecycle.registry().health().ok && engine.lifecycle.registry().is_leader(),
    )
    .await;
    // What happened meanwhile is in the shared state now.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut conn = redis.connection().await.expect("connect");
        let state: Option<String> = redis::cmd("HGET")
            .arg(format!("{PREFIX}:app:default/scalingo/blog"))
            .arg("state")
            .query_async(&mut conn)
            .await
            .expect("HGET");
        if state.as_deref() == Some("awake") {
            break;
        }
        assert!(Instant::now() < deadline, "blog's state: {state:?}");
        sleep(Duration::from_millis(50)).await;
    }
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_password_stays_out_of_logs_errors_and_check() {
    const PASSWORD: &str = "redis-pw-Secret-0077";
    let redis = RedisServer::start_with(&["--requirepass", PASSWORD]).await;
    let fake = FakeScalingo::start(TOKEN).await;
    fake.add_app("shop", &[("web", 1)], false).await;
    let dir = TempDir::new("cluster-secret");
    let write = |name: &str, password: &str| {
        let url = format!("redis://:{password}@127.0.0.1:{}", redis.port);
        let path = dir.path(name);
        let yaml = config(&fake, &redis, "10m", "1s").replace(&redis.url(), &url);
        std::fs::write(&path, yaml).expect("write config");
        path
    };
    let good = write("good.yml", PASSWORD);
    let bad = write("bad.yml", "wrong-pw-Secret-0078");

    let check = |path: std::path::PathBuf| async move {
        support::paastis()
            .args(["check", "--config", &path.to_string_lossy()])
            .env("LOG_LEVEL", "trace")
            .output()
            .await
            .expect("paastis check runs")
    };
    let out = check(good.clone()).await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("registry: redis: connected"), "{stdout}");
    assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD));
    // `check` gave the leader lease back.
    assert_eq!(
        redis_get_auth(&redis, PASSWORD, &format!("{PREFIX}:leader")).await,
        None
    );

    let out = check(bad).await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("registry cannot be reached"), "{stderr}");
    assert!(
        stdout.to_lowercase().contains("pass") || stderr.to_lowercase().contains("pass"),
        "the error says the password was refused: {stdout}\n{stderr}"
    );
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains("wrong-pw-Secret-0078") && !text.contains(PASSWORD),
            "{text}"
        );
    }

    // Serving at trace level, with a wake through the shared state: no password either.
    let served = support::serve(&good, &[("LOG_LEVEL", "trace")]).await;
    let answer = TestClient::new(served.addr)
        .get("shop.localhost", "/")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let mut served = served;
    served.stop().await;
    let logs = served.logs();
    assert!(logs.contains("this instance is the leader"), "{logs}");
    assert!(
        !logs.contains(PASSWORD),
        "the Redis password reached the logs"
    );
    assert!(!logs.contains(TOKEN));
}

async fn redis_get_auth(redis: &RedisServer, password: &str, key: &str) -> Option<String> {
    let client = ::redis::Client::open(format!("redis://:{password}@127.0.0.1:{}", redis.port))
        .expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    ::redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .expect("GET")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_set_through_a_follower_keeps_the_leader_from_stopping_the_app() {
    let (redis, fake) = setup(true).await;
    let yaml = config(&fake, &redis, "2s", "1s");
    let a = TestEngine::start(&yaml).await;
    let b = TestEngine::start(&yaml).await;
    let engines = [&a, &b];
    let lead = leader(&engines).await;
    let follower = engines[1 - lead];
    let admin = TestClient::new(follower.admin_addr);
    let pinned = admin
        .send(
            "PUT",
            "admin.localhost",
            "/api/v1/apps/scalingo/shop/pin",
            &[("content-type", "application/json")],
            bytes::Bytes::from_static(b"{}"),
        )
        .await;
    assert_eq!(pinned.status, 200, "{}", pinned.text());
    // Well past max_idle: the leader left it awake.
    sleep(Duration::from_secs(5)).await;
    assert_eq!(scales(&fake, "shop"), 0, "a pinned app was stopped");
    assert_eq!(engines[lead].state("shop"), State::Awake);
    assert!(
        engines[lead].app("shop").pinned_until_ms().is_some(),
        "the leader knows the pin"
    );
    // Unpinned on the follower: the leader stops it.
    let unpinned = admin
        .send(
            "DELETE",
            "admin.localhost",
            "/api/v1/apps/scalingo/shop/pin",
            &[],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(unpinned.status, 200, "{}", unpinned.text());
    engines[lead]
        .wait_state("shop", State::Asleep, Duration::from_secs(10))
        .await;
    assert_eq!(scales(&fake, "shop"), 1);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_three_instances_each_hook_runs_once_per_transition() {
    let (redis, fake) = setup(false).await;
    fake.set_boot_time(Duration::from_millis(500));
    let dir = TempDir::new("cluster-hooks");
    let log = dir.path("hooks.log");
    let hook = |name: &str| format!("echo {name} $PAASTIS_APP >> {}", log.display());
    let yaml = format!(
        "{}hooks: {{before_start: '{}', after_start: '{}', before_stop: '{}', after_stop: '{}'}}\n",
        config(&fake, &redis, "2s", "1s"),
        hook("before_start"),
        hook("after_start"),
        hook("before_stop"),
        hook("after_stop"),
    );
    let a = TestEngine::start(&yaml).await;
    let b = TestEngine::start(&yaml).await;
    let c = TestEngine::start(&yaml).await;
    let engines = [&a, &b, &c];
    leader(&engines).await;
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..90 {
        let client = TestClient::new(engines[i % 3].addr);
        requests.spawn(async move { client.get("shop.localhost", "/").await.status });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.expect("task"), 200);
    }
    // Quiet: stopped by the leader after max_idle.
    let deadline = Instant::now() + Duration::from_secs(15);
    while scales(&fake, "shop") < 2 {
        assert!(Instant::now() < deadline, "never stopped");
        sleep(Duration::from_millis(50)).await;
    }
    sleep(Duration::from_secs(1)).await;
    let text = std::fs::read_to_string(&log).expect("hooks ran");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "after_start shop",
            "after_stop shop",
            "before_start shop",
            "before_stop shop"
        ],
        "each hook once for one wake and one stop across three instances"
    );
    for engine in [a, b, c] {
        engine.stop().await;
    }
}
