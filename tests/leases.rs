//! Per-app leases against a real `redis-server`: an instance whose lease expired and was
//! taken over by another finishes late; its outcome is not written, it is told so, and the
//! new holder's state stands — at the registry, and through a whole engine whose wake fails
//! after its lease was taken over.

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use paastis::events::EventKind;
use paastis::model::{AppKey, State};
use paastis::registry::{Claim, Finished, Lease, RedisConfig, Registry, RegistryConfig};
use paastis::secret::Secret;
use support::fakes::scalingo::FakeScalingo;
use support::redis::RedisServer;
use support::{TestClient, TestEngine};
use tokio::time::{Instant, sleep};

const PREFIX: &str = "leasetest";
const TOKEN: &str = "tk-us-leases-secret-0042";

/// A Redis registry of its own (another instance), connected.
async fn instance(redis: &RedisServer) -> Arc<dyn Registry> {
    let registry = RegistryConfig::Redis(RedisConfig {
        url: Secret::new(redis.url()),
        prefix: PREFIX.to_owned(),
        flush_every: Duration::from_millis(200),
        lease: Duration::from_secs(1),
    })
    .build()
    .expect("registry");
    tokio::spawn(Arc::clone(&registry).run());
    registry.settle(Duration::from_secs(5)).await;
    registry
}

fn granted(claim: Claim, who: &str) -> Lease {
    match claim {
        Claim::Granted(lease) => lease,
        other => panic!("{who}: expected the lease, got {other:?}"),
    }
}

fn lock_key(key: &AppKey) -> String {
    format!("{PREFIX}:lock:{}/{}/{}", key.space, key.provider, key.name)
}

/// The app's lease expires, as when its holder stalls past `registry.lease`: its key goes
/// (and the holder's renewals find nothing to renew).
async fn expire(redis: &RedisServer, key: &AppKey) {
    let mut conn = redis.connection().await.expect("connect to the test Redis");
    let removed: i64 = redis::cmd("DEL")
        .arg(lock_key(key))
        .query_async(&mut conn)
        .await
        .expect("DEL");
    assert_eq!(removed, 1, "{key} had no lease to expire");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_lost_its_lease_writes_nothing_and_is_told_so() {
    let redis = RedisServer::start().await;
    let a = instance(&redis).await;
    let b = instance(&redis).await;

    // A wakes `shop`; its lease expires; B takes the app over. A's late failure comes while
    // B still holds the app, then B's wake succeeds.
    let shop = AppKey::new("default", "scalingo", "shop");
    let late = granted(a.claim_wake(&shop).await, "A");
    expire(&redis, &shop).await;
    let taken = granted(b.claim_wake(&shop).await, "B");
    assert_eq!(
        a.finish(late, State::Failed, Some("start failed late"), None)
            .await,
        Finished::LeaseLost
    );
    let shared = b.shared(&shop).await.expect("readable");
    assert_eq!(shared.state, Some(State::Waking), "{shared:?}");
    assert_eq!(shared.seq, taken.seq, "{shared:?}");
    let Finished::Written(seq) = b.finish(taken, State::Awake, None, None).await else {
        panic!("B holds the lease: its outcome is written");
    };

    // A stops `blog`; its lease expires; B wakes it and is done before A's late stop ends.
    let blog = AppKey::new("default", "scalingo", "blog");
    let late_stop = granted(a.claim_stop(&blog, SystemTime::now()).await, "A");
    expire(&redis, &blog).await;
    let woken = granted(b.claim_wake(&blog).await, "B");
    let Finished::Written(blog_seq) = b.finish(woken, State::Awake, None, None).await else {
        panic!("B holds the lease: its outcome is written");
    };
    assert_eq!(
        a.finish(late_stop, State::Asleep, None, None).await,
        Finished::LeaseLost
    );

    for (key, seq) in [(&shop, seq), (&blog, blog_seq)] {
        for registry in [&a, &b] {
            let shared = registry.shared(key).await.expect("readable");
            assert_eq!(shared.state, Some(State::Awake), "{key}: {shared:?}");
            assert_eq!(shared.seq, seq, "{key}: {shared:?}");
            assert_eq!(shared.reason, None, "{key}: {shared:?}");
        }
        assert_eq!(redis.get(&lock_key(key)).await, None, "{key}: lease left");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_lapsed_untouched_still_records_its_outcome() {
    let redis = RedisServer::start().await;
    let a = instance(&redis).await;
    let b = instance(&redis).await;
    let shop = AppKey::new("default", "scalingo", "shop");
    let lease = granted(a.claim_wake(&shop).await, "A");
    let claimed = lease.seq;
    expire(&redis, &shop).await;
    // Nobody took the app or changed it since: the outcome is the only news there is.
    assert_eq!(
        a.finish(lease, State::Awake, None, None).await,
        Finished::Written(claimed + 1)
    );
    let shared = b.shared(&shop).await.expect("readable");
    assert_eq!(shared.state, Some(State::Awake), "{shared:?}");
}

/// Waits until `check` holds, or panics with `what` after `within`.
async fn eventually<F: std::future::Future<Output = bool>>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_whose_wake_fails_after_its_lease_was_taken_over_leaves_the_new_state() {
    let redis = RedisServer::start().await;
    let fake = FakeScalingo::start(TOKEN).await;
    fake.add_app("shop", &[("web", 1)], false).await;
    // Not ready within the engine's wake_timeout: its wake fails, late (and the stop that
    // cleans up after it waits for the boot to end).
    fake.set_boot_time(Duration::from_secs(3));
    let engine = TestEngine::start(&format!(
        "defaults: {{max_idle: 10m, wake_timeout: 2s}}
discovery: {{every: 1h}}
registry: {{type: redis, url: '{redis}', prefix: {PREFIX}, flush_every: 200ms, lease: 1s}}
providers:
  - {{id: scalingo, type: scalingo, token: {TOKEN}, api_url: '{api}', auth_url: '{api}'}}
",
        redis = redis.url(),
        api = fake.url,
    ))
    .await;
    eventually(Duration::from_secs(10), "the engine leads", || async {
        engine.lifecycle.registry().is_leader()
    })
    .await;
    assert_eq!(engine.state("shop"), State::Asleep);
    // Another instance (its registry only), started once the engine leads.
    let other = instance(&redis).await;
    let shop = AppKey::new("default", "scalingo", "shop");

    let client = TestClient::new(engine.addr);
    let request = tokio::spawn(async move { client.try_get("shop.localhost", "/").await });
    eventually(Duration::from_secs(5), "the engine takes the lease", || {
        let key = lock_key(&shop);
        let redis = &redis;
        async move { redis.get(&key).await.is_some() }
    })
    .await;
    expire(&redis, &shop).await;
    let lease = granted(other.claim_wake(&shop).await, "the other instance");
    let Finished::Written(seq) = other.finish(lease, State::Awake, None, None).await else {
        panic!("the other instance holds the lease: its outcome is written");
    };

    // The engine's wake fails (wake_timeout): its Failed is not written, now or later.
    let answer = request.await.expect("request task").expect("an answer");
    assert_ne!(answer.status, 200, "{}", answer.text());
    // Its own copy follows the instance that took the app over...
    engine
        .wait_state("shop", State::Awake, Duration::from_secs(10))
        .await;
    assert_eq!(
        engine.count("shop", |k| matches!(k, EventKind::StartFailed { .. })),
        1,
        "{:?}",
        engine.events()
    );
    // ...and several syncs later the shared state is still that instance's.
    sleep(Duration::from_secs(1)).await;
    let shared = other.shared(&shop).await.expect("readable");
    assert_eq!(shared.state, Some(State::Awake), "{shared:?}");
    assert_eq!(shared.seq, seq, "{shared:?}");
    assert_eq!(shared.reason, None, "{shared:?}");
    engine.stop().await;
}
