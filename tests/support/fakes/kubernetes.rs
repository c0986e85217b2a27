//! Fake Kubernetes API server (the `apps/v1` Deployments and StatefulSets, their `scale`
//! subresource, and `v1` Services), following the API conventions
//! (https://kubernetes.io/docs/reference/using-api/api-concepts/): bearer auth (a `401`
//! `Status` otherwise), lists with `labelSelector`, `limit`/`continue` and
//! `metadata.resourceVersion`, watches streaming newline-delimited `ADDED`/`MODIFIED`/
//! `DELETED`/`BOOKMARK` events from a `resourceVersion` (an `ERROR` event with a `410`
//! `Status` when it is too old: the history was compacted), merge patches of the scale
//! (`application/merge-patch+json`), `404` and `409` `Status` documents. The controllers are
//! faked too: after a scale, `status.readyReplicas` follows `spec.replicas` after a delay,
//! and each workload's [`AppServer`] answers only while it has ready replicas. Every call is
//! recorded (path with its query).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::{AppServer, Calls, serve};

/// How long pods take to become ready after a scale up, by default.
const DEFAULT_READY_DELAY: Duration = Duration::from_millis(300);
/// Largest request body read.
const MAX_BODY: usize = 64 * 1024;
/// Most replicas accepted.
const MAX_REPLICAS: i64 = 100;

/// `deployments` or `statefulsets`.
pub const DEPLOYMENTS: &str = "deployments";
/// `deployments` or `statefulsets`.
pub const STATEFULSETS: &str = "statefulsets";

/// One workload as the fake keeps it.
#[derive(Clone)]
struct Workload {
    /// `deployments` or `statefulsets`.
    resource: &'static str,
    /// Its namespace.
    namespace: String,
    /// Its name.
    name: String,
    /// `metadata.uid`.
    uid: String,
    /// `metadata.labels` (what selectors match).
    labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    annotations: BTreeMap<String, String>,
    /// `spec.replicas`.
    replicas: i64,
    /// `status.readyReplicas`.
    ready: i64,
    /// `metadata.generation`: bumped by each spec change.
    generation: i64,
    /// `status.observedGeneration`: the generation the controller acted on.
    observed: i64,
    /// `metadata.resourceVersion`.
    resource_version: u64,
    /// A Deployment whose rollout timed out (`Progressing=False`).
    stuck: bool,
    /// Its pods' server.
    app: AppServer,
}

impl Workload {
    fn kind(&self) -> &'static str {
        if self.resource == DEPLOYMENTS {
            "Deployment"
        } else {
            "StatefulSet"
        }
    }

    fn json(&self) -> Value {
        let mut status = json!({
            "observedGeneration": self.observed,
            "replicas": self.ready,
        });
        // Absent when 0, as the API server serialises it (omitempty).
        if self.ready > 0 {
            status["readyReplicas"] = json!(self.ready);
            status["availableReplicas"] = json!(self.ready);
        }
        if self.stuck {
            status["conditions"] = json!([{
                "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                "message": format!("ReplicaSet \"{}-5d4f\" has timed out progressing.", self.name),
            }]);
        }
        let mut spec = json!({
            "replicas": self.replicas,
            "selector": {"matchLabels": {"app": self.name}},
            "template": {
                "metadata": {"labels": {"app": self.name}},
                "spec": {"containers": [{"name": "web", "image": "example/web:1"}]},
            },
        });
        if self.resource == STATEFULSETS {
            spec["serviceName"] = json!(self.name);
        }
        json!({
            "apiVersion": "apps/v1",
            "kind": self.kind(),
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "uid": self.uid,
                "resourceVersion": self.resource_version.to_string(),
                "generation": self.generation,
                "labels": self.labels,
                "annotations": self.annotations,
            },
            "spec": spec,
            "status": status,
        })
    }

    fn scale_json(&self) -> Value {
        json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "uid": self.uid,
                "resourceVersion": self.resource_version.to_string(),
            },
            "spec": {"replicas": self.replicas},
            "status": {"replicas": self.ready, "selector": format!("app={}", self.name)},
        })
    }
}

/// One change, kept for watches that resume from an older resourceVersion.
#[derive(Clone)]
struct Change {
    /// The resourceVersion the change made.
    resource_version: u64,
    /// `deployments` or `statefulsets`.
    resource: &'static str,
    /// The object's namespace.
    namespace: String,
    /// Before (`None`: created).
    before: Option<(BTreeMap<String, String>, Value)>,
    /// After (`None`: deleted).
    after: Option<(BTreeMap<String, String>, Value)>,
}

/// The cluster's state.
struct Cluster {
    /// Every workload, in creation order.
    workloads: Vec<Workload>,
    /// Services: (namespace, name) -> ports.
    services: BTreeMap<(String, String), Vec<u16>>,
    /// The cluster's latest resourceVersion.
    resource_version: u64,
    /// Watches from a resourceVersion below this get `410 Gone`.
    compacted: u64,
    /// The changes since the last compaction.
    history: Vec<Change>,
    /// How long pods take to become ready after a scale up.
    ready_delay: Duration,
    /// Answer the next N scale patches with 409.
    conflicts: usize,
    /// The next object's uid number.
    next_uid: u64,
}

/// What the handlers share.
struct Shared {
    /// The only bearer token accepted.
    token: String,
    /// Every call answered.
    calls: Arc<Calls>,
    /// The cluster's state.
    cluster: Mutex<Cluster>,
    /// Every change, to the open watches.
    changes: broadcast::Sender<Change>,
    /// Ends the open watches with `410 Gone` (the history was compacted); holds the
    /// compacted resourceVersion.
    close: tokio::sync::watch::Sender<u64>,
}

/// A running fake API server.
pub struct FakeKubernetes {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// Every call answered (paths with their query).
    pub calls: Arc<Calls>,
    /// The state, shared with the handlers.
    shared: Arc<Shared>,
}

impl FakeKubernetes {
    /// Starts the fake; `token` is the only valid bearer token.
    pub async fn start(token: &str) -> FakeKubernetes {
        let calls = Arc::new(Calls::default());
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            calls: Arc::clone(&calls),
            cluster: Mutex::new(Cluster {
                workloads: Vec::new(),
                services: BTreeMap::new(),
                resource_version: 1000,
                compacted: 0,
                history: Vec::new(),
                ready_delay: DEFAULT_READY_DELAY,
                conflicts: 0,
                next_uid: 1,
            }),
            changes: broadcast::channel(1024).0,
            close: tokio::sync::watch::channel(0).0,
        });
        let router = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let url = serve(router).await;
        FakeKubernetes { url, calls, shared }
    }

    /// Adds a workload with `replicas` (all ready, its server up when > 0), labelled
    /// `paastis.io/enabled=true` when `enabled`, with `paastis.io/upstream` pointing at its
    /// server and these other annotations.
    pub async fn add(
        &self,
        resource: &'static str,
        namespace: &str,
        name: &str,
        replicas: i64,
        enabled: bool,
        annotations: &[(&str, &str)],
    ) -> AppServer {
        let app = AppServer::start(name, replicas > 0).await;
        let mut labels = BTreeMap::from([("app".to_owned(), name.to_owned())]);
        if enabled {
            labels.insert("paastis.io/enabled".to_owned(), "true".to_owned());
        }
        let mut all = BTreeMap::from([("paastis.io/upstream".to_owned(), app.url.clone())]);
        for (key, value) in annotations {
            all.insert((*key).to_owned(), (*value).to_owned());
        }
        let mut cluster = self.shared.lock();
        assert!(
            cluster.find(resource, namespace, name).is_none(),
            "{resource} {namespace}/{name} exists"
        );
        cluster.next_uid += 1;
        let workload = Workload {
            resource,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: format!("00000000-0000-4000-8000-{:012}", cluster.next_uid),
            labels,
            annotations: all,
            replicas,
            ready: replicas,
            generation: 1,
            observed: 1,
            resource_version: 0,
            stuck: false,
            app: app.clone(),
        };
        cluster.workloads.push(workload);
        let index = cluster.workloads.len() - 1;
        self.shared.commit(&mut cluster, index, None);
        app
    }

    /// Sets (or with `None` removes) a label, as `kubectl label` does.
    pub fn label(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        key: &str,
        value: Option<&str>,
    ) {
        self.shared
            .modify(resource, namespace, name, |w| match value {
                Some(value) => {
                    w.labels.insert(key.to_owned(), value.to_owned());
                }
                None => {
                    w.labels.remove(key);
                }
            });
    }

    /// Deletes a workload.
    pub fn delete(&self, resource: &str, namespace: &str, name: &str) {
        let mut cluster = self.shared.lock();
        let index = cluster.find(resource, namespace, name).expect("workload");
        let gone = cluster.workloads.remove(index);
        gone.app.set_up(false);
        cluster.resource_version += 1;
        let change = Change {
            resource_version: cluster.resource_version,
            resource: gone.resource,
            namespace: gone.namespace.clone(),
            before: Some((gone.labels.clone(), gone.json())),
            after: None,
        };
        cluster.history.push(change.clone());
        let _ = self.shared.changes.send(change);
    }

    /// The workload's `spec.replicas`.
    pub fn replicas(&self, resource: &str, namespace: &str, name: &str) -> i64 {
        let cluster = self.shared.lock();
        let index = cluster.find(resource, namespace, name).expect("workload");
        cluster.workloads[index].replicas
    }

    /// Marks a Deployment's rollout as timed out (`Progressing=False`, no ready replica).
    pub fn stall(&self, namespace: &str, name: &str) {
        self.shared.modify(DEPLOYMENTS, namespace, name, |w| {
            w.stuck = true;
            w.ready = 0;
            w.app.set_up(false);
        });
    }

    /// Adds a Service with these ports.
    pub fn add_service(&self, namespace: &str, name: &str, ports: &[u16]) {
        self.shared
            .lock()
            .services
            .insert((namespace.to_owned(), name.to_owned()), ports.to_vec());
    }

    /// Answers the next `n` scale patches `409 Conflict`.
    pub fn conflict_next(&self, n: usize) {
        self.shared.lock().conflicts = n;
    }

    /// How long pods take to become ready after a scale up.
    pub fn set_ready_delay(&self, delay: Duration) {
        self.shared.lock().ready_delay = delay;
    }

    /// Compacts the history: every resourceVersion seen so far is too old to watch from, and
    /// the open watches end with a `410 Gone` event (their clients list again).
    pub fn expire_watches(&self) {
        {
            let mut cluster = self.shared.lock();
            cluster.resource_version += 1;
            cluster.compacted = cluster.resource_version;
            cluster.history.clear();
        }
        let compacted = self.shared.lock().compacted;
        self.shared.close.send_replace(compacted);
    }

    /// The calls, as `METHOD path?query`, answered with this status.
    pub fn requests(&self) -> Vec<String> {
        self.calls
            .all()
            .into_iter()
            .map(|c| format!("{} {}", c.method, c.path))
            .collect()
    }

    /// List calls (not watches) of `resource` in `namespace`.
    pub fn lists(&self, resource: &str, namespace: &str) -> usize {
        let prefix = format!("GET /apis/apps/v1/namespaces/{namespace}/{resource}");
        self.requests()
            .iter()
            .filter(|r| r.starts_with(&prefix) && !r.contains("watch=true"))
            .filter(|r| r[prefix.len()..].is_empty() || r[prefix.len()..].starts_with('?'))
            .count()
    }

    /// Watch calls of `resource` in `namespace`.
    pub fn watches(&self, resource: &str, namespace: &str) -> usize {
        let prefix = format!("GET /apis/apps/v1/namespaces/{namespace}/{resource}?");
        self.requests()
            .iter()
            .filter(|r| r.starts_with(&prefix) && r.contains("watch=true"))
            .count()
    }

    /// Scale patches of one workload (the 409s included).
    pub fn scale_patches(&self, resource: &str, namespace: &str, name: &str) -> usize {
        self.calls.count(&format!(
            "PATCH /apis/apps/v1/namespaces/{namespace}/{resource}/{name}/scale"
        ))
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Cluster> {
        self.cluster.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `change` to a workload and publishes the event.
    fn modify(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Workload),
    ) {
        let mut cluster = self.lock();
        let index = cluster.find(resource, namespace, name).expect("workload");
        let before = {
            let w = &cluster.workloads[index];
            (w.labels.clone(), w.json())
        };
        change(&mut cluster.workloads[index]);
        self.commit(&mut cluster, index, Some(before));
    }

    /// Gives the workload a new resourceVersion and publishes the change.
    fn commit(
        &self,
        cluster: &mut Cluster,
        index: usize,
        before: Option<(BTreeMap<String, String>, Value)>,
    ) {
        cluster.resource_version += 1;
        let resource_version = cluster.resource_version;
        let workload = &mut cluster.workloads[index];
        workload.resource_version = resource_version;
        let change = Change {
            resource_version,
            resource: workload.resource,
            namespace: workload.namespace.clone(),
            before,
            after: Some((workload.labels.clone(), workload.json())),
        };
        cluster.history.push(change.clone());
        let _ = self.changes.send(change);
    }

    /// Scales a workload as its controller would: observed at once, ready after the delay.
    fn scale(self: &Arc<Self>, cluster: &mut Cluster, index: usize, replicas: i64) {
        let before = {
            let w = &cluster.workloads[index];
            (w.labels.clone(), w.json())
        };
        let delay = cluster.ready_delay;
        let workload = &mut cluster.workloads[index];
        if workload.replicas == replicas {
            return;
        }
        workload.replicas = replicas;
        workload.generation += 1;
        workload.observed = workload.generation;
        if replicas == 0 {
            workload.ready = 0;
            workload.app.set_up(false);
        } else {
            workload.ready = workload.ready.min(replicas);
            let shared = Arc::clone(self);
            let (resource, namespace, name) = (
                workload.resource,
                workload.namespace.clone(),
                workload.name.clone(),
            );
            let generation = workload.generation;
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let mut cluster = shared.lock();
                let Some(index) = cluster.find(resource, &namespace, &name) else {
                    return;
                };
                let w = &cluster.workloads[index];
                if w.generation != generation || w.stuck {
                    return;
                }
                let before = (w.labels.clone(), w.json());
                let w = &mut cluster.workloads[index];
                w.ready = w.replicas;
                w.app.set_up(true);
                shared.commit(&mut cluster, index, Some(before));
            });
        }
        self.commit(cluster, index, Some(before));
    }
}

impl Cluster {
    fn find(&self, resource: &str, namespace: &str, name: &str) -> Option<usize> {
        self.workloads
            .iter()
            .position(|w| w.resource == resource && w.namespace == namespace && w.name == name)
    }
}

/// A `Status` document.
fn status(code: StatusCode, reason: &str, message: impl Into<String>) -> Response {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message.into(),
        "reason": reason,
        "code": code.as_u16(),
    });
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn json_response(value: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// One `key=value`, `key==value`, `key!=value`, `key` or `!key` requirement.
fn selector_matches(selector: &str, labels: &BTreeMap<String, String>) -> bool {
    selector
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .all(|requirement| {
            if let Some((key, value)) = requirement.split_once("!=") {
                labels.get(key.trim()).map(String::as_str) != Some(value.trim())
            } else if let Some((key, value)) = requirement
                .split_once("==")
                .or_else(|| requirement.split_once('='))
            {
                labels.get(key.trim()).map(String::as_str) == Some(value.trim())
            } else if let Some(key) = requirement.strip_prefix('!') {
                !labels.contains_key(key.trim())
            } else {
                labels.contains_key(requirement)
            }
        })
}

/// The query's parameters, decoded.
fn query(request: &Request) -> BTreeMap<String, String> {
    axum::extract::Query::<BTreeMap<String, String>>::try_from_uri(request.uri())
        .map(|q| q.0)
        .unwrap_or_default()
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().clone();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    if let Some(injected) = shared.calls.injected(method.as_str(), &path_and_query) {
        return injected;
    }
    let response = if authorized(&shared.token, request.headers()) {
        route(&shared, request).await
    } else {
        status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    };
    shared
        .calls
        .record(method.as_str(), &path_and_query, response.status().as_u16());
    response
}

fn authorized(token: &str, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| given == token)
}

async fn route(shared: &Arc<Shared>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = request.method().clone();
    match (method, segments.as_slice()) {
        (Method::GET, ["api"]) => json_response(&json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
        })),
        (Method::GET, ["apis"]) => json_response(&json!({
            "kind": "APIGroupList", "apiVersion": "v1",
            "groups": [{"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                        "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}],
        })),
        (Method::GET, ["apis", "apps", "v1", "namespaces", namespace, resource])
            if is_workload(resource) =>
        {
            let query = query(&request);
            if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
                watch(shared, resource_name(resource), namespace, &query)
            } else {
                list(shared, resource_name(resource), namespace, &query)
            }
        }
        (
            Method::GET,
            [
                "apis",
                "apps",
                "v1",
                "namespaces",
                namespace,
                resource,
                name,
            ],
        ) if is_workload(resource) => {
            let cluster = shared.lock();
            match cluster.find(resource, namespace, name) {
                Some(index) => json_response(&cluster.workloads[index].json()),
                None => not_found(resource, name),
            }
        }
        (
            Method::GET,
            [
                "apis",
                "apps",
                "v1",
                "namespaces",
                namespace,
                resource,
                name,
                "scale",
            ],
        ) if is_workload(resource) => {
            let cluster = shared.lock();
            match cluster.find(resource, namespace, name) {
                Some(index) => json_response(&cluster.workloads[index].scale_json()),
                None => not_found(resource, name),
            }
        }
        (
            Method::PATCH,
            [
                "apis",
                "apps",
                "v1",
                "namespaces",
                namespace,
                resource,
                name,
                "scale",
            ],
        ) if is_workload(resource) => {
            let (namespace, resource, name) = (
                (*namespace).to_owned(),
                (*resource).to_owned(),
                (*name).to_owned(),
            );
            patch_scale(shared, request, &resource, &namespace, &name).await
        }
        (Method::GET, ["api", "v1", "namespaces", namespace, "services", name]) => {
            let cluster = shared.lock();
            match cluster
                .services
                .get(&((*namespace).to_owned(), (*name).to_owned()))
            {
                Some(ports) => json_response(&json!({
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
                    "spec": {
                        "selector": {"app": name},
                        "ports": ports.iter().map(|p| json!({"port": p, "protocol": "TCP", "targetPort": p})).collect::<Vec<_>>(),
                    },
                })),
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("services \"{name}\" not found"),
                ),
            }
        }
        _ => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}

fn is_workload(resource: &str) -> bool {
    resource == DEPLOYMENTS || resource == STATEFULSETS
}

fn resource_name(resource: &str) -> &'static str {
    if resource == DEPLOYMENTS {
        DEPLOYMENTS
    } else {
        STATEFULSETS
    }
}

fn not_found(resource: &str, name: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{resource}.apps \"{name}\" not found"),
    )
}

fn list(
    shared: &Shared,
    resource: &'static str,
    namespace: &str,
    query: &BTreeMap<String, String>,
) -> Response {
    let cluster = shared.lock();
    let selector = query.get("labelSelector").cloned().unwrap_or_default();
    let mut matching: Vec<&Workload> = cluster
        .workloads
        .iter()
        .filter(|w| w.resource == resource && w.namespace == namespace)
        .filter(|w| selector_matches(&selector, &w.labels))
        .collect();
    matching.sort_by(|a, b| a.name.cmp(&b.name));
    // `continue` is the last name of the previous page (opaque to clients).
    if let Some(after) = query.get("continue").filter(|c| !c.is_empty()) {
        matching.retain(|w| w.name.as_str() > after.as_str());
    }
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let mut metadata = json!({"resourceVersion": cluster.resource_version.to_string()});
    if let Some(limit) = limit
        && matching.len() > limit
    {
        matching.truncate(limit);
        if let Some(last) = matching.last() {
            metadata["continue"] = json!(last.name);
        }
    }
    let items: Vec<Value> = matching
        .iter()
        .map(|w| {
            // Items of a list carry no apiVersion/kind of their own.
            let mut item = w.json();
            if let Some(object) = item.as_object_mut() {
                object.remove("apiVersion");
                object.remove("kind");
            }
            item
        })
        .collect();
    let kind = if resource == DEPLOYMENTS {
        "DeploymentList"
    } else {
        "StatefulSetList"
    };
    json_response(&json!({
        "kind": kind,
        "apiVersion": "apps/v1",
        "metadata": metadata,
        "items": items,
    }))
}

/// The watch event a change makes for a watcher of this selector, if any.
fn event_for(change: &Change, selector: &str) -> Option<Value> {
    let before = change
        .before
        .as_ref()
        .filter(|(labels, _)| selector_matches(selector, labels));
    let after = change
        .after
        .as_ref()
        .filter(|(labels, _)| selector_matches(selector, labels));
    let (kind, object) = match (before, after) {
        (None, Some((_, object))) => ("ADDED", object),
        (Some(_), Some((_, object))) => ("MODIFIED", object),
        (Some((_, object)), None) => ("DELETED", object),
        (None, None) => return None,
    };
    let mut object = object.clone();
    object["metadata"]["resourceVersion"] = json!(change.resource_version.to_string());
    Some(json!({"type": kind, "object": object}))
}

/// The `ERROR` event of a watch from a resourceVersion older than the compaction.
fn gone(from: u64, compacted: u64) -> Value {
    json!({
        "type": "ERROR",
        "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("too old resource version: {from} ({compacted})"),
            "reason": "Expired", "code": 410,
        },
    })
}

fn line(value: &Value) -> Result<Bytes, Infallible> {
    Ok(Bytes::from(format!("{value}\n")))
}

fn watch(
    shared: &Arc<Shared>,
    resource: &'static str,
    namespace: &str,
    query: &BTreeMap<String, String>,
) -> Response {
    let selector = query.get("labelSelector").cloned().unwrap_or_default();
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let cluster = shared.lock();
    let from = query
        .get("resourceVersion")
        .and_then(|rv| rv.parse::<u64>().ok())
        .unwrap_or(cluster.resource_version);
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(256);
    if from < cluster.compacted {
        let _ = sender.try_send(line(&gone(from, cluster.compacted)));
        drop(sender);
        return stream_response(receiver);
    }
    let relevant = |change: &Change| change.resource == resource && change.namespace == namespace;
    let mut backlog: Vec<Value> = cluster
        .history
        .iter()
        .filter(|c| c.resource_version > from && relevant(c))
        .filter_map(|c| event_for(c, &selector))
        .collect();
    if bookmarks {
        let kind = if resource == DEPLOYMENTS {
            "Deployment"
        } else {
            "StatefulSet"
        };
        backlog.push(json!({
            "type": "BOOKMARK",
            "object": {"kind": kind, "apiVersion": "apps/v1",
                       "metadata": {"resourceVersion": cluster.resource_version.to_string()}},
        }));
    }
    let mut changes = shared.changes.subscribe();
    let mut close = shared.close.subscribe();
    let namespace = namespace.to_owned();
    drop(cluster);
    tokio::spawn(async move {
        for event in backlog {
            if sender.send(line(&event)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                // The compaction comes first: nothing after it reaches this watch.
                biased;
                _ = close.changed() => {
                    // The history this watch stands on is gone: 410, as the API server says
                    // to a watch that fell behind the compaction.
                    let compacted = *close.borrow();
                    let _ = sender.send(line(&gone(from, compacted))).await;
                    return;
                }
                _ = &mut deadline => return,
                change = changes.recv() => match change {
                    Ok(change) if change.resource == resource && change.namespace == namespace && change.resource_version > from => {
                        if let Some(event) = event_for(&change, &selector)
                            && sender.send(line(&event)).await.is_err()
                        {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    stream_response(receiver)
}

fn stream_response(receiver: tokio::sync::mpsc::Receiver<Result<Bytes, Infallible>>) -> Response {
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn patch_scale(
    shared: &Arc<Shared>,
    request: Request,
    resource: &str,
    namespace: &str,
    name: &str,
) -> Response {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let Ok(body) = to_bytes(request.into_body(), MAX_BODY).await else {
        return status(StatusCode::BAD_REQUEST, "BadRequest", "body too large");
    };
    if !content_type.starts_with("application/merge-patch+json") {
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type})"
            ),
        );
    }
    let replicas = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|patch| patch["spec"]["replicas"].as_i64());
    let Some(replicas) = replicas.filter(|r| (0..=MAX_REPLICAS).contains(r)) else {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("Scale.autoscaling \"{name}\" is invalid: spec.replicas: Invalid value"),
        );
    };
    let mut cluster = shared.lock();
    let Some(index) = cluster.find(resource, namespace, name) else {
        return not_found(resource, name);
    };
    if cluster.conflicts > 0 {
        cluster.conflicts -= 1;
        return status(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {resource}.apps \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
        );
    }
    shared.scale(&mut cluster, index, replicas);
    json_response(&cluster.workloads[index].scale_json())
}
