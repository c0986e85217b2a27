//! The engine against the fake Kubernetes API server: discovery by label in the chosen
//! namespaces (both kinds), wake on request with the remembered replicas, idle stop, one
//! scale per wake storm, a `409` on the scale retried after a fresh read, workloads seen
//! through the watch (no re-list), an expired watch (`410`) that recovers, annotations, a
//! kubeconfig context, and the token kept out of logs.

mod support;

use std::time::Duration;

use paastis::model::State;
use support::fakes::kubernetes::{DEPLOYMENTS, FakeKubernetes, STATEFULSETS};
use support::{TempDir, TestClient, TestEngine};

const TOKEN: &str = "k8s-sa-token-secret-0001";

/// The provider entry for `fake`, watching `namespaces`.
fn provider(fake: &FakeKubernetes, namespaces: &str) -> String {
    format!(
        "{{id: k8s, type: kubernetes, api_url: '{}', token: {TOKEN}, namespaces: [{namespaces}]}}",
        fake.url
    )
}

fn config(max_idle: &str, provider: &str) -> String {
    format!(
        "discovery: {{every: 1s}}\ndefaults: {{max_idle: {max_idle}, wake_timeout: 20s}}\nproviders:\n  - {provider}\n"
    )
}

/// The apps the engine knows, sorted.
fn names(engine: &TestEngine) -> Vec<String> {
    let mut names: Vec<String> = engine
        .lifecycle
        .apps()
        .iter()
        .map(|app| app.key.name.to_string())
        .collect();
    names.sort();
    names
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The formation the latest `stopped` event of `app` recorded.
fn stopped_with(engine: &TestEngine, app: &str) -> Vec<(String, u32)> {
    engine
        .events()
        .into_iter()
        .rev()
        .find_map(|event| match event.kind {
            paastis::events::EventKind::Stopped { formation, .. } if &*event.app.name == app => {
                Some(formation.unwrap_or_default().into_iter().collect())
            }
            _ => None,
        })
        .expect("a stopped event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labelled_workloads_of_both_kinds_in_the_chosen_namespaces_are_discovered() {
    let fake = FakeKubernetes::start(TOKEN).await;
    fake.add(DEPLOYMENTS, "apps", "shop", 1, true, &[]).await;
    fake.add(STATEFULSETS, "apps", "db", 0, true, &[]).await;
    fake.add(DEPLOYMENTS, "apps", "tooling", 1, false, &[])
        .await;
    fake.add(DEPLOYMENTS, "review", "shop", 0, true, &[]).await;
    fake.add(
        DEPLOYMENTS,
        "review",
        "pr-12-web",
        0,
        true,
        &[("paastis.io/name", "pr-12")],
    )
    .await;
    fake.add(DEPLOYMENTS, "elsewhere", "blog", 1, true, &[])
        .await;
    let engine = TestEngine::start(&config("15m", &provider(&fake, "apps, review"))).await;

    // `shop` is in two namespaces: each is qualified by its own.
    assert_eq!(
        names(&engine),
        ["db", "pr-12", "shop-apps", "shop-review"],
        "{:?}",
        engine.events()
    );
    assert_eq!(engine.state("shop-apps"), State::Awake);
    assert_eq!(engine.state("shop-review"), State::Asleep);
    assert_eq!(engine.state("db"), State::Asleep);
    // One list and one watch per namespace and kind; nothing of the other namespace.
    for namespace in ["apps", "review"] {
        for resource in [DEPLOYMENTS, STATEFULSETS] {
            assert_eq!(fake.lists(resource, namespace), 1, "{:?}", fake.requests());
        }
    }
    assert!(
        !fake.requests().iter().any(|r| r.contains("elsewhere")),
        "{:?}",
        fake.requests()
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_wakes_a_workload_and_idle_stops_remember_its_replicas() {
    let fake = FakeKubernetes::start(TOKEN).await;
    let shop = fake
        .add(
            DEPLOYMENTS,
            "apps",
            "shop",
            3,
            true,
            &[("paastis.io/max-idle", "1s")],
        )
        .await;
    let db = fake
        .add(
            STATEFULSETS,
            "apps",
            "db",
            0,
            true,
            &[("paastis.io/replicas", "2")],
        )
        .await;
    let engine = TestEngine::start(&config("15m", &provider(&fake, "apps"))).await;
    let client = TestClient::new(engine.addr);

    // Never ran under the engine: the annotation's replicas.
    let answer = client.get("db.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello from db");
    assert_eq!(fake.replicas(STATEFULSETS, "apps", "db"), 2);
    assert!(db.is_up());

    // `paastis.io/max-idle: 1s`: stopped, its 3 replicas remembered.
    engine
        .wait_state("shop", State::Asleep, Duration::from_secs(15))
        .await;
    assert_eq!(fake.replicas(DEPLOYMENTS, "apps", "shop"), 0);
    assert!(!shop.is_up());
    assert_eq!(stopped_with(&engine, "shop"), [("replicas".to_owned(), 3)]);

    let answer = client.get("shop.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "hello from shop");
    assert_eq!(fake.replicas(DEPLOYMENTS, "apps", "shop"), 3);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_storm_scales_once() {
    let fake = FakeKubernetes::start(TOKEN).await;
    fake.set_ready_delay(Duration::from_millis(800));
    fake.add(DEPLOYMENTS, "apps", "shop", 0, true, &[]).await;
    let engine = TestEngine::start(&config("15m", &provider(&fake, "apps"))).await;
    let client = TestClient::new(engine.addr);

    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let client = client.clone();
        requests.spawn(async move { client.get("shop.localhost", "/").await });
    }
    while let Some(joined) = requests.join_next().await {
        let answer = joined.expect("request task");
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.text(), "hello from shop");
    }
    assert_eq!(
        fake.scale_patches(DEPLOYMENTS, "apps", "shop"),
        1,
        "{:?}",
        fake.requests()
    );
    assert_eq!(fake.replicas(DEPLOYMENTS, "apps", "shop"), 1);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_on_the_scale_is_retried_after_a_fresh_read() {
    let fake = FakeKubernetes::start(TOKEN).await;
    fake.add(STATEFULSETS, "apps", "db", 0, true, &[]).await;
    let engine = TestEngine::start(&config("15m", &provider(&fake, "apps"))).await;
    let client = TestClient::new(engine.addr);
    fake.conflict_next(1);

    let answer = client.get("db.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let scale = "/apis/apps/v1/namespaces/apps/statefulsets/db/scale";
    let calls: Vec<String> = fake
        .calls
        .all()
        .into_iter()
        .filter(|call| call.path.split('?').next() == Some(scale))
        .map(|call| format!("{} {}", call.method, call.status))
        .collect();
    assert_eq!(calls, ["PATCH 409", "GET 200", "PATCH 200"]);
    assert_eq!(fake.replicas(STATEFULSETS, "apps", "db"), 1);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_are_seen_through_the_watch_and_an_expired_watch_recovers() {
    let fake = FakeKubernetes::start(TOKEN).await;
    fake.add(DEPLOYMENTS, "apps", "shop", 1, true, &[]).await;
    fake.add(DEPLOYMENTS, "apps", "blog", 0, false, &[]).await;
    let engine = TestEngine::start(&config("15m", &provider(&fake, "apps"))).await;
    let client = TestClient::new(engine.addr);
    assert_eq!(names(&engine), ["shop"]);

    // Created, and labelled, after startup: found without another list.
    fake.add(DEPLOYMENTS, "apps", "docs", 0, true, &[]).await;
    fake.label(
        DEPLOYMENTS,
        "apps",
        "blog",
        "paastis.io/enabled",
        Some("true"),
    );
    eventually("docs and blog are discovered", || {
        names(&engine) == ["blog", "docs", "shop"]
    })
    .await;
    assert_eq!(fake.lists(DEPLOYMENTS, "apps"), 1, "{:?}", fake.requests());
    let answer = client.get("blog.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());

    // The history is compacted under the watch: 410, a new list, and what changed meanwhile.
    fake.expire_watches();
    fake.add(DEPLOYMENTS, "apps", "wiki", 0, true, &[]).await;
    eventually("wiki is discovered after the 410", || {
        names(&engine).contains(&"wiki".to_owned())
    })
    .await;
    assert_eq!(fake.lists(DEPLOYMENTS, "apps"), 2, "{:?}", fake.requests());
    let answer = client.get("wiki.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_give_the_upstream_policy_and_group() {
    let fake = FakeKubernetes::start(TOKEN).await;
    fake.add_service("apps", "api-svc", &[8080, 9090]);
    fake.add(
        DEPLOYMENTS,
        "apps",
        "api",
        0,
        true,
        &[
            // No upstream annotation: the Service's cluster DNS name.
            ("paastis.io/upstream", ""),
            ("paastis.io/service", "api-svc"),
            ("paastis.io/group", "shop"),
            ("paastis.io/health-path", "/healthz"),
        ],
    )
    .await;
    fake.add(
        DEPLOYMENTS,
        "apps",
        "front",
        0,
        true,
        &[
            ("paastis.io/upstream", ""),
            ("paastis.io/port", "3000"),
            ("paastis.io/group", "shop"),
            ("paastis.io/max-idle", "never"),
        ],
    )
    .await;
    let engine = TestEngine::start(&config("15m", &provider(&fake, "apps"))).await;

    let api = engine.app("api");
    let upstream = api.upstream().expect("an upstream");
    assert_eq!(upstream.scheme.as_str(), "http");
    assert_eq!(
        upstream.authority.as_str(),
        "api-svc.apps.svc.cluster.local:8080"
    );
    assert_eq!(api.policy().health_path.as_deref(), Some("/healthz"));
    let front = engine.app("front");
    assert_eq!(
        front.upstream().expect("an upstream").authority.as_str(),
        "front.apps.svc.cluster.local:3000"
    );
    assert_eq!(front.policy().max_idle, None);
    let linked: Vec<String> = api
        .linked()
        .iter()
        .map(|app| app.key.name.to_string())
        .collect();
    assert_eq!(linked, ["front"]);
    assert_eq!(
        api.group_name().as_deref().map(String::as_str),
        Some("shop")
    );
    // The Service is read once (then remembered), never listed.
    assert_eq!(
        fake.calls
            .count("GET /api/v1/namespaces/apps/services/api-svc"),
        1
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_rollout_fails_the_wake_with_its_reason() {
    let fake = FakeKubernetes::start(TOKEN).await;
    fake.set_ready_delay(Duration::from_secs(3600));
    fake.add(DEPLOYMENTS, "apps", "shop", 0, true, &[]).await;
    let engine = TestEngine::start(&config("15m", &provider(&fake, "apps"))).await;
    let client = TestClient::new(engine.addr);
    let waking = tokio::spawn({
        let client = client.clone();
        async move { client.get("shop.localhost", "/").await }
    });
    eventually("the scale", || {
        fake.replicas(DEPLOYMENTS, "apps", "shop") == 1
    })
    .await;
    fake.stall("apps", "shop");
    let answer = waking.await.expect("request");
    assert!(
        answer.status.as_u16() >= 500,
        "{} {}",
        answer.status,
        answer.text()
    );
    // The reason is recorded as the wake fails (the answer may come first).
    eventually("a start failure naming ProgressDeadlineExceeded", || {
        engine.events().into_iter().any(|event| {
            matches!(event.kind, paastis::events::EventKind::StartFailed { reason }
                if reason.contains("ProgressDeadlineExceeded"))
        })
    })
    .await;
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_never_reaches_logs_or_errors() {
    let fake = FakeKubernetes::start(TOKEN).await;
    fake.add(
        DEPLOYMENTS,
        "apps",
        "shop",
        1,
        true,
        &[("paastis.io/max-idle", "1s")],
    )
    .await;
    let dir = TempDir::new("k8s-secrets");
    let file = dir.path("paastis.yml");
    let wrong = format!(
        "{{id: k8s-bad, type: kubernetes, api_url: '{}', token: k8s-wrong-secret-0002, namespaces: [apps]}}",
        fake.url
    );
    std::fs::write(
        &file,
        format!(
            "discovery: {{every: 1s}}\ndefaults: {{max_idle: 15m}}\nproviders:\n  - {}\n  - {wrong}\n",
            provider(&fake, "apps")
        ),
    )
    .expect("write config");
    let checked = support::check(&file).await;
    let check_out = checked.output.as_str();
    // The refused token is said at once, and the other account is fine.
    let line = |id: &str| checked.line(id);
    assert!(line("k8s-bad").contains("bad credentials"), "{check_out}");
    assert!(line("k8s").ends_with(" ok"), "{check_out}");
    assert_eq!(checked.code, Some(1), "{check_out}");

    let mut served = support::serve(&file, &[("LOG_LEVEL", "trace")]).await;
    let client = TestClient::new(served.addr);
    let answer = client.get("shop.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while fake.replicas(DEPLOYMENTS, "apps", "shop") != 0 {
        assert!(tokio::time::Instant::now() < deadline, "no idle stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = served.child.start_kill();
    let _ = served.child.wait().await;
    let logs = served.logs();
    assert!(
        logs.contains("k8s-bad"),
        "the bad account is not logged: {logs}"
    );
    support::assert_no_secret(
        &[check_out, &logs],
        &[TOKEN, "k8s-wrong-secret-0002", "Bearer "],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubeconfig_context_gives_the_cluster_the_token_and_the_namespace() {
    let fake = FakeKubernetes::start(TOKEN).await;
    fake.add(DEPLOYMENTS, "review", "shop", 0, true, &[]).await;
    fake.add(DEPLOYMENTS, "default", "blog", 0, true, &[]).await;
    let dir = TempDir::new("k8s-kubeconfig");
    let kubeconfig = dir.path("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\n\
             clusters:\n- name: fake\n  cluster: {{server: '{}'}}\n\
             users:\n- name: sa\n  user: {{token: {TOKEN}}}\n\
             contexts:\n\
             - name: other\n  context: {{cluster: fake, user: sa}}\n\
             - name: review\n  context: {{cluster: fake, user: sa, namespace: review}}\n\
             current-context: other\n",
            fake.url
        ),
    )
    .expect("write kubeconfig");
    // No `namespaces`: the context's.
    let provider = format!(
        "{{id: k8s, type: kubernetes, kubeconfig: '{}', context: review}}",
        kubeconfig.display()
    );
    let engine = TestEngine::start(&config("15m", &provider)).await;
    assert_eq!(names(&engine), ["shop"]);
    let client = TestClient::new(engine.addr);
    let answer = client.get("shop.localhost", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(fake.replicas(DEPLOYMENTS, "review", "shop"), 1);
    engine.stop().await;
}
