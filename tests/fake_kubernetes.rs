//! The fake Kubernetes API server behaves as the API conventions say, checked with the real
//! kube-rs client: auth, lists (selector, pages, resourceVersion), watches (events, `410
//! Gone` and the watcher's re-list), the scale subresource (merge patch, `409`, `404`).

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Service;
use kube::api::{ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use support::fakes::kubernetes::{DEPLOYMENTS, FakeKubernetes, STATEFULSETS};

const TOKEN: &str = "k8s-sa-token-0001";

fn client(fake: &FakeKubernetes, token: &str) -> Client {
    let mut config = kube::Config::new(fake.url.parse().expect("url"));
    config.auth_info.token = Some(token.to_owned().into());
    Client::try_from(config).expect("client")
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn lists_filter_by_label_and_come_in_pages() {
    let fake = FakeKubernetes::start(TOKEN).await;
    fake.add(DEPLOYMENTS, "apps", "a", 1, true, &[]).await;
    fake.add(DEPLOYMENTS, "apps", "b", 0, true, &[]).await;
    fake.add(DEPLOYMENTS, "apps", "c", 1, false, &[]).await;
    fake.add(DEPLOYMENTS, "other", "d", 1, true, &[]).await;
    fake.add(STATEFULSETS, "apps", "db", 2, true, &[]).await;
    let api: Api<Deployment> = Api::namespaced(client(&fake, TOKEN), "apps");

    let params = ListParams::default()
        .labels("paastis.io/enabled=true")
        .limit(1);
    let first = api.list(&params).await.expect("first page");
    assert_eq!(first.items.len(), 1);
    let token = first.metadata.continue_.clone().expect("a continue token");
    assert!(first.metadata.resource_version.is_some());
    let second = api
        .list(&params.clone().continue_token(&token))
        .await
        .expect("second page");
    let names: Vec<String> = first
        .items
        .iter()
        .chain(&second.items)
        .filter_map(|d| d.metadata.name.clone())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert!(second.metadata.continue_.is_none());
    // Absent when 0, as the API server serialises it.
    let b = &second.items[0];
    assert_eq!(b.spec.as_ref().and_then(|s| s.replicas), Some(0));
    assert_eq!(b.status.as_ref().and_then(|s| s.ready_replicas), None);

    let sets: Api<StatefulSet> = Api::namespaced(client(&fake, TOKEN), "apps");
    let sets = sets
        .list(&ListParams::default())
        .await
        .expect("statefulsets");
    assert_eq!(sets.items.len(), 1);
    assert_eq!(
        sets.items[0].status.as_ref().and_then(|s| s.ready_replicas),
        Some(2)
    );
}

#[tokio::test]
async fn a_wrong_token_gets_a_401_status_and_unknown_objects_a_404() {
    let fake = FakeKubernetes::start(TOKEN).await;
    fake.add(DEPLOYMENTS, "apps", "a", 1, true, &[]).await;
    let api: Api<Deployment> = Api::namespaced(client(&fake, "wrong"), "apps");
    match api.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 401),
        other => panic!("expected a 401, got {other:?}"),
    }
    let api: Api<Deployment> = Api::namespaced(client(&fake, TOKEN), "apps");
    match api.get("missing").await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 404);
            assert_eq!(status.reason, "NotFound");
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    let services: Api<Service> = Api::namespaced(client(&fake, TOKEN), "apps");
    assert!(services.get_opt("a").await.expect("get").is_none());
    fake.add_service("apps", "a", &[8080, 9090]);
    let service = services.get("a").await.expect("service");
    let ports = service.spec.and_then(|s| s.ports).expect("ports");
    assert_eq!(ports[0].port, 8080);
}

#[tokio::test]
async fn watches_stream_changes_and_expire_with_410() {
    let fake = FakeKubernetes::start(TOKEN).await;
    fake.add(DEPLOYMENTS, "apps", "a", 1, true, &[]).await;
    let api: Api<Deployment> = Api::namespaced(client(&fake, TOKEN), "apps");
    let list = api
        .list(&ListParams::default().labels("paastis.io/enabled=true"))
        .await
        .expect("list");
    let version = list.metadata.resource_version.expect("version");
    let params = WatchParams::default()
        .labels("paastis.io/enabled=true")
        .timeout(30);
    let mut events = api.watch(&params, &version).await.expect("watch").boxed();

    fake.add(DEPLOYMENTS, "apps", "b", 1, true, &[]).await;
    fake.label(DEPLOYMENTS, "apps", "a", "paastis.io/enabled", None);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event in time")
            .expect("stream open")
            .expect("event parses");
        match event {
            WatchEvent::Added(d) => {
                seen.push(format!("added {}", d.metadata.name.unwrap_or_default()))
            }
            // No longer matching the selector: deleted for this watch.
            WatchEvent::Deleted(d) => {
                seen.push(format!("deleted {}", d.metadata.name.unwrap_or_default()))
            }
            WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["added b", "deleted a"]);

    // The history is compacted: watching from the old version is a 410 ERROR event.
    fake.expire_watches();
    let mut events = api.watch(&params, &version).await.expect("watch").boxed();
    match events.next().await {
        Some(Ok(WatchEvent::Error(status))) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => panic!("expected a 410 event, got {other:?}"),
    }
}

#[tokio::test]
async fn the_watcher_lists_again_after_410() {
    let fake = FakeKubernetes::start(TOKEN).await;
    fake.add(DEPLOYMENTS, "apps", "a", 1, true, &[]).await;
    let api: Api<Deployment> = Api::namespaced(client(&fake, TOKEN), "apps");
    let config = watcher::Config::default().labels("paastis.io/enabled=true");
    let mut events = watcher(api, config).boxed();
    let mut inits = 0;
    let mut applied = Vec::new();
    let mut gone = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while inits < 2 || !applied.contains(&"c".to_owned()) {
        let event = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("events in time")
            .expect("stream open");
        match event {
            Ok(watcher::Event::InitDone) => {
                inits += 1;
                if inits == 1 {
                    fake.add(DEPLOYMENTS, "apps", "b", 1, true, &[]).await;
                }
            }
            Ok(watcher::Event::Apply(d)) => {
                let name = d.metadata.name.unwrap_or_default();
                if name == "b" {
                    // Seen by the watch: now expire it, and change things meanwhile.
                    fake.expire_watches();
                    fake.add(DEPLOYMENTS, "apps", "c", 1, true, &[]).await;
                }
                applied.push(name);
            }
            Ok(watcher::Event::InitApply(d)) => applied.push(d.metadata.name.unwrap_or_default()),
            Ok(_) => {}
            // The 410 surfaces as an error; the watcher re-lists on the next poll.
            Err(watcher::Error::WatchError(status)) if status.code == 410 => gone += 1,
            Err(_) => {}
        }
    }
    assert_eq!(fake.lists(DEPLOYMENTS, "apps"), 2, "{:?}", fake.requests());
    assert_eq!(gone, 1);
    assert_eq!(fake.watches(DEPLOYMENTS, "apps"), 1);
}

#[tokio::test]
async fn the_scale_subresource_scales_and_pods_become_ready() {
    let fake = FakeKubernetes::start(TOKEN).await;
    let app = fake.add(DEPLOYMENTS, "apps", "a", 0, true, &[]).await;
    let api: Api<Deployment> = Api::namespaced(client(&fake, TOKEN), "apps");
    let scale = api.get_scale("a").await.expect("scale");
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(0));

    fake.conflict_next(1);
    let patch = Patch::Merge(serde_json::json!({"spec": {"replicas": 3}}));
    match api.patch_scale("a", &PatchParams::default(), &patch).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 409),
        other => panic!("expected a 409, got {other:?}"),
    }
    assert_eq!(fake.replicas(DEPLOYMENTS, "apps", "a"), 0);
    let scale = api
        .patch_scale("a", &PatchParams::default(), &patch)
        .await
        .expect("patched");
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(3));
    assert_eq!(fake.scale_patches(DEPLOYMENTS, "apps", "a"), 2);

    let mut ready = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while ready != Some(3) {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let deployment = api.get("a").await.expect("get");
        ready = deployment.status.and_then(|s| s.ready_replicas);
    }
    eventually("the app is served", || app.is_up()).await;

    // An unknown workload: a 404 Status.
    match api
        .patch_scale("missing", &PatchParams::default(), &patch)
        .await
    {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 404),
        other => panic!("expected a 404, got {other:?}"),
    }
}
