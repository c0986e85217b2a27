//! The `kubernetes` provider: the Deployments and StatefulSets of chosen namespaces of one
//! cluster, put to sleep through their `scale` subresource.
//!
//! Discovery is a list + watch per namespace and kind (kube-runtime's watcher, which re-lists
//! after a `410 Gone`), filtered by a label selector (`paastis.io/enabled=true` by default):
//! [`Provider::list_apps`] answers from that cache once the first list completed, and keeps
//! the last known state while the watch recovers from an error. A stop reads the scale, sets
//! `spec.replicas` to 0 with a merge patch and remembers the replicas (`{replicas: N}`); a
//! start sets them back (or `paastis.io/replicas`, or 1). A `409 Conflict` on a patch is
//! retried after a fresh read. Readiness compares `status.readyReplicas` with
//! `spec.replicas` once the controller observed the latest generation; a Deployment whose
//! `Progressing` condition is `False` has failed.
//!
//! Annotations on a workload name it (`paastis.io/name`), give its upstream
//! (`paastis.io/upstream`, or the Service `paastis.io/service` on `paastis.io/port`), its
//! policy (`paastis.io/max-idle`, `paastis.io/health-path`) and its group
//! (`paastis.io/group`: the workloads sharing a group are linked).
//!
//! This module only speaks the Kubernetes API: it never decides when to scale, and never
//! logs or returns a credential (tokens and client keys stay inside kube's config, whose
//! `Debug` redacts them).

mod watch;
mod workload;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::api::RateLimiter;
use super::platform::{Facts, Platform};
use super::{
    AppInfo, AppStatus, Formation, PollIntervals, Provider, ProviderError, Started, Stopped,
    Upstream,
};
use crate::secret::Secret;
use crate::settings::{Fields, Key, Kind, Reader, is_label};
use watch::{Cache, apply};
use workload::{Workload, WorkloadKind, app_names};

/// The label selector that marks managed workloads, by default.
pub const DEFAULT_SELECTOR: &str = "paastis.io/enabled=true";

/// The cluster's DNS domain, by default.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// Calls per minute: client-go's default client-side limit (5 per second).
pub const DEFAULT_RATE_LIMIT: usize = 300;

/// The formation key holding a workload's replicas.
pub const REPLICAS: &str = "replicas";

/// Annotation: the app's name (else the workload's).
pub const ANNOTATION_NAME: &str = "paastis.io/name";
/// Annotation: replicas to start with when none were remembered (else 1).
pub const ANNOTATION_REPLICAS: &str = "paastis.io/replicas";
/// Annotation: the full upstream URL (else the Service's cluster DNS name).
pub const ANNOTATION_UPSTREAM: &str = "paastis.io/upstream";
/// Annotation: the Service in front of the workload (else the workload's name).
pub const ANNOTATION_SERVICE: &str = "paastis.io/service";
/// Annotation: the Service port (else the Service's first port).
pub const ANNOTATION_PORT: &str = "paastis.io/port";
/// Annotation: the app's `max_idle` (a duration or `never`).
pub const ANNOTATION_MAX_IDLE: &str = "paastis.io/max-idle";
/// Annotation: the app's `health_path`.
pub const ANNOTATION_HEALTH_PATH: &str = "paastis.io/health-path";
/// Annotation: the app's group; the workloads of one group are woken together.
pub const ANNOTATION_GROUP: &str = "paastis.io/group";

/// How long a first listing may take before `list_apps` says the cache is not synced.
const FIRST_SYNC_WAIT: Duration = Duration::from_secs(10);

/// How long a Service's port is remembered.
const SERVICE_TTL: Duration = Duration::from_secs(300);

/// Tries of one scale patch answered `409 Conflict` (each after a fresh read).
const CONFLICT_TRIES: usize = 3;

/// `type: kubernetes` in the config.
#[derive(Debug, Clone)]
pub struct KubernetesConfig {
    /// Provider id.
    pub id: String,
    /// The API server's URL, for a cluster reached without a kubeconfig (with `token`).
    pub api_url: Option<String>,
    /// Bearer token sent to `api_url`.
    pub token: Option<Secret>,
    /// The kubeconfig file to read (else `KUBECONFIG` or `~/.kube/config`, or the in-cluster
    /// service account when the engine runs in a pod).
    pub kubeconfig: Option<String>,
    /// The kubeconfig context to use (else its current context).
    pub context: Option<String>,
    /// The namespaces watched; empty: the connection's default namespace (the service
    /// account's in-cluster, the context's with a kubeconfig).
    pub namespaces: Vec<String>,
    /// The label selector of managed workloads.
    pub selector: String,
    /// The cluster's DNS domain, in the upstream URLs built from Services.
    pub cluster_domain: String,
    /// Calls per minute allowed for this credential (the scale, status and Service calls).
    pub rate_limit: usize,
}

/// A namespace name (DNS label, at most 63 characters).
const NAMESPACE: Kind = Kind::Text("namespace");

impl Platform for KubernetesConfig {
    const KIND: &'static str = "kubernetes";
    const SECRET_KEYS: &'static [&'static str] = &["token"];
    const ENDPOINT_KEYS: &'static [&'static str] = &["api_url"];
    // Self-hosted or on any cloud: no price, no grid, no variable naming the engine's app.
    const FACTS: Facts = Facts::NONE;
    const DOC: &'static str = "A Kubernetes cluster's Deployments and StatefulSets (labelled \
        `paastis.io/enabled=true` by default), scaled through their `scale` subresource.";
    const KEYS: &'static [Key] = &[
        Key::new(
            "api_url",
            Kind::Url,
            "The API server's URL, for a cluster reached without a kubeconfig (with `token`).",
        ),
        Key::new(
            "token",
            Kind::Secret,
            "Bearer token for `api_url` (a service account token).",
        ),
        Key::new(
            "kubeconfig",
            Kind::Text("path"),
            "Kubeconfig file; default `KUBECONFIG` or `~/.kube/config`, or the pod's service \
             account when the engine runs in a cluster.",
        ),
        Key::new(
            "context",
            Kind::Text("kubeconfig context"),
            "Kubeconfig context; default its current context.",
        ),
        Key::new(
            "namespaces",
            Kind::List(&NAMESPACE),
            "Namespaces watched; default the service account's namespace in a cluster, the \
             context's namespace with a kubeconfig.",
        ),
        Key::new(
            "selector",
            Kind::Text("label selector"),
            "Label selector of the managed Deployments and StatefulSets.",
        )
        .default(DEFAULT_SELECTOR),
        Key::new(
            "cluster_domain",
            Kind::Text("domain"),
            "The cluster's DNS domain, in upstreams built from Services.",
        )
        .default(DEFAULT_CLUSTER_DOMAIN),
        crate::settings::rate_limit_key("300"),
    ];

    fn read(
        reader: &mut Reader<'_>,
        fields: &mut Fields<'_>,
        path: &str,
        _kind_path: &str,
    ) -> Option<Self> {
        reader.kubernetes(fields, path)
    }

    fn secrets(&self) -> Vec<&Secret> {
        self.token.iter().collect()
    }

    fn build(&self) -> Result<Arc<dyn Provider>, ProviderError> {
        Ok(Arc::new(Kubernetes::new(self)))
    }
}

impl Reader<'_> {
    fn kubernetes(&mut self, fields: &mut Fields<'_>, path: &str) -> Option<KubernetesConfig> {
        let mut valid = true;
        let api_url = self.base_url(fields, "api_url");
        let has_api_url = fields.has("api_url") || api_url.is_some();
        let token = self.secret(fields, "token", path);
        let mut text = |reader: &mut Self, key: &str| {
            fields
                .take(key)
                .and_then(|(value, p)| Some((reader.non_empty_string(value, &p)?, p)))
        };
        let kubeconfig = text(self, "kubeconfig");
        let context = text(self, "context");
        let selector = text(self, "selector").map(|(s, _)| s);
        let cluster_domain = text(self, "cluster_domain");
        if let Some((domain, p)) = &cluster_domain
            && !crate::settings::is_host_name(domain)
        {
            self.error(p, format!("`{domain}` is not a DNS domain"));
            valid = false;
        }
        let namespaces = match fields.take("namespaces") {
            Some((value, p)) => {
                let names = self.names(value, &p);
                for name in &names {
                    if !is_label(name) || name.contains('_') || name.len() > 63 {
                        self.error(&p, format!("`{name}` is not a namespace name"));
                        valid = false;
                    }
                }
                names
            }
            None => Vec::new(),
        };
        let rate_limit = self.rate_limit(fields, DEFAULT_RATE_LIMIT);
        if has_api_url && token.is_none() && !fields.has("token") {
            self.error(
                &crate::settings::child(path, "token"),
                "missing (or token_file): api_url needs a token",
            );
            valid = false;
        }
        if !has_api_url && token.is_some() {
            self.error(
                &crate::settings::child(path, "api_url"),
                "missing: a token is sent to api_url",
            );
            valid = false;
        }
        for (key, given) in [("kubeconfig", &kubeconfig), ("context", &context)] {
            if let Some((_, p)) = given {
                if has_api_url {
                    self.error(p, format!("set either api_url or {key}, not both"));
                    valid = false;
                } else if self.api.is_some() {
                    self.error(
                        p,
                        "spaces created through the API give api_url and token (the engine's \
                         own kubeconfig is not theirs)",
                    );
                    valid = false;
                }
            }
        }
        if self.api.is_some() && !has_api_url {
            self.error(
                &crate::settings::child(path, "api_url"),
                "missing: spaces created through the API give api_url and token (the \
                 engine's own service account is not theirs)",
            );
            valid = false;
        }
        if !valid {
            return None;
        }
        Some(KubernetesConfig {
            id: String::new(),
            api_url,
            token,
            kubeconfig: kubeconfig.map(|(k, _)| k),
            context: context.map(|(c, _)| c),
            namespaces,
            selector: selector.unwrap_or_else(|| DEFAULT_SELECTOR.to_owned()),
            cluster_domain: cluster_domain
                .map(|(d, _)| d)
                .unwrap_or_else(|| DEFAULT_CLUSTER_DOMAIN.to_owned()),
            rate_limit,
        })
    }
}

/// A Service's first port (`None`: it has none, or is missing) and when it was read.
type ServicePort = (Option<u16>, Instant);

/// The connection, made on first use (reading a kubeconfig is asynchronous).
struct Connected {
    /// The kube client (its config holds the credentials).
    client: Client,
    /// The namespaces watched.
    namespaces: Vec<String>,
}

/// One cluster account.
pub struct Kubernetes {
    /// Provider id.
    id: String,
    /// The config, to connect.
    config: KubernetesConfig,
    /// The account's rate limit (the calls this file makes; the watches are long-lived).
    limiter: RateLimiter,
    /// The connection and its watches, started on first use.
    connected: OnceCell<Connected>,
    /// What the watches know.
    cache: Arc<Mutex<Cache>>,
    /// Bumped by the watches on each change, to wait for the first sync.
    changes: tokio::sync::watch::Sender<u64>,
    /// Each Service's port (`None`: it has none, or is missing), and when it was read.
    services: Mutex<HashMap<(String, String), ServicePort>>,
    /// The watch tasks, aborted when the provider goes.
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl std::fmt::Debug for Kubernetes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubernetes")
            .field("id", &self.id)
            .field("namespaces", &self.config.namespaces)
            .field("selector", &self.config.selector)
            .finish_non_exhaustive()
    }
}

impl Drop for Kubernetes {
    fn drop(&mut self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

/// A kube error as a provider error, naming what was done (never a credential: the API
/// server's status message, or the connection's failure).
fn kube_error(error: kube::Error, what: &str) -> ProviderError {
    match error {
        kube::Error::Api(status) => {
            let detail = format!("{what}: HTTP {} {}", status.code, status.message);
            match status.code {
                401 | 403 => ProviderError::Unauthorized(detail),
                404 => ProviderError::NotFound(what.to_owned()),
                429 => ProviderError::RateLimited { retry_after: None },
                code if code >= 500 => ProviderError::Failed(detail),
                _ => ProviderError::Rejected(detail),
            }
        }
        other => ProviderError::Unreachable(format!("{what}: {other}")),
    }
}

/// Whether the error is a `409 Conflict`.
fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

impl Kubernetes {
    /// A client for this cluster (it connects on first use).
    pub fn new(config: &KubernetesConfig) -> Kubernetes {
        Kubernetes {
            id: config.id.clone(),
            config: config.clone(),
            limiter: RateLimiter::new(config.rate_limit, Duration::from_secs(60)),
            connected: OnceCell::new(),
            cache: Arc::default(),
            changes: tokio::sync::watch::channel(0).0,
            services: Mutex::default(),
            tasks: Mutex::default(),
        }
    }

    /// The kube config: `api_url` + `token`, a kubeconfig, or the pod's service account.
    async fn kube_config(&self) -> Result<kube::Config, ProviderError> {
        let config = &self.config;
        if let Some(url) = &config.api_url {
            let uri: http::Uri = url
                .parse()
                .map_err(|_| ProviderError::Failed(format!("`{url}` is not a URL")))?;
            let mut kube = kube::Config::new(uri);
            kube.auth_info.token = config
                .token
                .as_ref()
                .map(|token| token.expose().to_owned().into());
            return Ok(kube);
        }
        let options = kube::config::KubeConfigOptions {
            context: config.context.clone(),
            ..Default::default()
        };
        let failed = |error: kube::config::KubeconfigError| {
            ProviderError::Failed(format!("cannot use the kubeconfig: {error}"))
        };
        if let Some(path) = &config.kubeconfig {
            let file = kube::config::Kubeconfig::read_from(path).map_err(failed)?;
            return kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(failed);
        }
        if config.context.is_none() && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
            // In a pod: its service account (kube re-reads the rotating token file).
            return kube::Config::incluster().map_err(|error| {
                ProviderError::Failed(format!("cannot use the pod's service account: {error}"))
            });
        }
        kube::Config::from_kubeconfig(&options)
            .await
            .map_err(failed)
    }

    /// The connection, made (and the watches started) on first use.
    async fn connected(&self) -> Result<&Connected, ProviderError> {
        self.connected
            .get_or_try_init(|| async {
                let config = self.kube_config().await?;
                let namespaces = if self.config.namespaces.is_empty() {
                    vec![config.default_namespace.clone()]
                } else {
                    self.config.namespaces.clone()
                };
                let client = Client::try_from(config).map_err(|error| {
                    ProviderError::Failed(format!("cannot build the Kubernetes client: {error}"))
                })?;
                self.start_watches(&client, &namespaces);
                Ok(Connected { client, namespaces })
            })
            .await
    }

    /// Starts one watch per namespace and kind, feeding the cache.
    fn start_watches(&self, client: &Client, namespaces: &[String]) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for namespace in namespaces {
            for kind in WorkloadKind::ALL {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(client.clone(), namespace, &kind.resource());
                let config = watcher::Config::default().labels(&self.config.selector);
                let cache = Arc::clone(&self.cache);
                let changes = self.changes.clone();
                let provider = self.id.clone();
                let key = (namespace.clone(), kind);
                let task = tokio::spawn(async move {
                    use kube::runtime::WatchStreamExt;
                    let mut events = watcher(api, config).default_backoff().boxed();
                    while let Some(event) = events.next().await {
                        apply(&provider, &cache, &key, event);
                        changes.send_modify(|n| *n = n.wrapping_add(1));
                    }
                });
                tasks.push(task.abort_handle());
            }
        }
    }

    /// The workloads once every watch completed its first list (waiting a little for it).
    async fn synced_workloads(&self) -> Result<Vec<Workload>, ProviderError> {
        let connected = self.connected().await?;
        let deadline = Instant::now() + FIRST_SYNC_WAIT;
        let mut changes = self.changes.subscribe();
        loop {
            {
                let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                let pending: Vec<(String, Option<&ProviderError>)> = connected
                    .namespaces
                    .iter()
                    .flat_map(|ns| WorkloadKind::ALL.map(|kind| (ns.clone(), kind)))
                    .filter(|key| !cache.streams.get(key).is_some_and(|s| s.synced))
                    .map(|(ns, kind)| {
                        let error = cache
                            .streams
                            .get(&(ns.clone(), kind))
                            .and_then(|s| s.error.as_ref());
                        (format!("{} in {ns}", kind.plural()), error)
                    })
                    .collect();
                // Refused credentials or permissions do not get better by waiting.
                if let Some(refused) = pending.iter().find_map(|(_, error)| {
                    error.filter(|e| matches!(e, ProviderError::Unauthorized(_)))
                }) {
                    return Err(refused.clone());
                }
                if pending.is_empty() {
                    return Ok(cache.workloads().into_iter().cloned().collect());
                }
                if Instant::now() >= deadline {
                    let pending: Vec<String> = pending
                        .into_iter()
                        .map(|(what, error)| match error {
                            Some(error) => format!("{what} ({error})"),
                            None => what,
                        })
                        .collect();
                    return Err(ProviderError::Failed(format!(
                        "the first listing has not completed: {}",
                        pending.join(", ")
                    )));
                }
            }
            let _ = tokio::time::timeout_at(deadline, changes.changed()).await;
        }
    }

    /// The workload named `app`, from the cache.
    async fn workload(&self, app: &str) -> Result<Workload, ProviderError> {
        let workloads = self.synced_workloads().await?;
        let refs: Vec<&Workload> = workloads.iter().collect();
        app_names(&self.id, &refs)
            .into_iter()
            .find(|(name, _)| name == app)
            .map(|(_, workload)| workload.clone())
            .ok_or_else(|| ProviderError::NotFound(app.to_owned()))
    }

    /// The dynamic API of the workload's kind in its namespace.
    async fn api_of(&self, workload: &Workload) -> Result<Api<DynamicObject>, ProviderError> {
        let client = self.connected().await?.client.clone();
        Ok(Api::namespaced_with(
            client,
            &workload.namespace,
            &workload.kind.resource(),
        ))
    }

    /// The replicas its scale asks for now.
    async fn read_scale(
        &self,
        api: &Api<DynamicObject>,
        workload: &Workload,
    ) -> Result<i32, ProviderError> {
        self.limiter.acquire().await;
        let what = format!(
            "scale of {} {}/{}",
            workload.kind.plural(),
            workload.namespace,
            workload.name
        );
        let scale = api
            .get_scale(&workload.name)
            .await
            .map_err(|error| kube_error(error, &what))?;
        Ok(scale.spec.and_then(|s| s.replicas).unwrap_or(0))
    }

    /// Sets its replicas with a merge patch on the scale; a `409 Conflict` is retried after
    /// a fresh read.
    async fn scale(
        &self,
        api: &Api<DynamicObject>,
        workload: &Workload,
        replicas: u32,
    ) -> Result<(), ProviderError> {
        let what = format!(
            "scaling {} {}/{}",
            workload.kind.plural(),
            workload.namespace,
            workload.name
        );
        let patch = Patch::Merge(json!({"spec": {"replicas": replicas}}));
        let params = PatchParams::default();
        let mut tries = 0;
        loop {
            tries += 1;
            self.limiter.acquire().await;
            match api.patch_scale(&workload.name, &params, &patch).await {
                Ok(_) => return Ok(()),
                Err(error) if is_conflict(&error) && tries < CONFLICT_TRIES => {
                    tracing::debug!(provider = %self.id, workload = %workload.name, "scale conflict, reading again");
                    self.read_scale(api, workload).await?;
                }
                Err(error) => return Err(kube_error(error, &what)),
            }
        }
    }

    /// Its upstream: `paastis.io/upstream`, else its Service's cluster DNS name.
    async fn upstream(&self, workload: &Workload) -> Option<Upstream> {
        if let Some(url) = workload.annotation(ANNOTATION_UPSTREAM) {
            let upstream = Upstream::from_url(url);
            if upstream.is_none() {
                tracing::warn!(
                    provider = %self.id, workload = %workload.name, namespace = %workload.namespace,
                    "ignoring annotation {ANNOTATION_UPSTREAM}: not an http(s) URL"
                );
            }
            return upstream;
        }
        let service = workload
            .annotation(ANNOTATION_SERVICE)
            .unwrap_or(&workload.name)
            .to_owned();
        let port = match workload.annotation(ANNOTATION_PORT) {
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port > 0 => Some(port),
                _ => {
                    tracing::warn!(
                        provider = %self.id, workload = %workload.name, namespace = %workload.namespace,
                        "ignoring annotation {ANNOTATION_PORT}: not a port"
                    );
                    None
                }
            },
            None => self.service_port(&workload.namespace, &service).await,
        }?;
        Upstream::from_url(&format!(
            "http://{service}.{}.svc.{}:{port}",
            workload.namespace, self.config.cluster_domain
        ))
    }

    /// The first port of a Service (read at most every [`SERVICE_TTL`]).
    async fn service_port(&self, namespace: &str, service: &str) -> Option<u16> {
        let key = (namespace.to_owned(), service.to_owned());
        if let Some((port, read)) = self
            .services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            && read.elapsed() < SERVICE_TTL
        {
            return *port;
        }
        let client = self.connected().await.ok()?.client.clone();
        let api: Api<Service> = Api::namespaced(client, namespace);
        self.limiter.acquire().await;
        let port = match api.get_opt(service).await {
            Ok(found) => {
                let port = found
                    .and_then(|s| s.spec)
                    .and_then(|s| s.ports)
                    .and_then(|ports| ports.first().map(|p| p.port))
                    .and_then(|p| u16::try_from(p).ok());
                if port.is_none() {
                    tracing::warn!(provider = %self.id, namespace, service, "no Service port: the app has no upstream");
                }
                port
            }
            Err(error) => {
                let error = kube_error(error, &format!("service {namespace}/{service}"));
                tracing::warn!(provider = %self.id, %error, "cannot read the Service");
                return None;
            }
        };
        self.services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (port, Instant::now()));
        port
    }
}

#[async_trait]
impl Provider for Kubernetes {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    fn rate_limit(&self) -> Option<(usize, usize)> {
        Some(self.limiter.usage())
    }

    async fn list_apps(&self) -> Result<Vec<AppInfo>, ProviderError> {
        let workloads = self.synced_workloads().await?;
        let refs: Vec<&Workload> = workloads.iter().collect();
        let named = app_names(&self.id, &refs);
        let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, workload) in &named {
            if let Some(group) = workload.annotation(ANNOTATION_GROUP) {
                groups.entry(group).or_default().push(name);
            }
        }
        let mut apps = Vec::new();
        for (name, workload) in &named {
            let linked = workload
                .annotation(ANNOTATION_GROUP)
                .and_then(|group| groups.get(group))
                .map(|members| {
                    members
                        .iter()
                        .filter(|member| **member != name.as_str())
                        .map(|member| (*member).to_owned())
                        .collect()
                })
                .unwrap_or_default();
            let replicas = match u32::try_from(workload.replicas) {
                Ok(n) if n > 0 => n,
                _ => workload.default_replicas(),
            };
            apps.push(AppInfo {
                name: name.clone(),
                status: workload.status(),
                upstream: self.upstream(workload).await,
                formation: Formation::from([(REPLICAS.to_owned(), replicas)]),
                policy: workload.policy(&self.id),
                aliases: Vec::new(),
                linked,
                group: workload.annotation(ANNOTATION_GROUP).map(str::to_owned),
            });
        }
        Ok(apps)
    }

    async fn status(&self, app: &str) -> Result<AppStatus, ProviderError> {
        let workload = self.workload(app).await?;
        let api = self.api_of(&workload).await?;
        self.limiter.acquire().await;
        let what = format!(
            "{} {}/{}",
            workload.kind.plural(),
            workload.namespace,
            workload.name
        );
        let object = api
            .get(&workload.name)
            .await
            .map_err(|error| kube_error(error, &what))?;
        let value = serde_json::to_value(&object)
            .map_err(|error| ProviderError::Failed(format!("{what}: {error}")))?;
        Workload::parse(&self.id, workload.kind, value)
            .map(|fresh| fresh.status())
            .ok_or_else(|| ProviderError::Failed(format!("{what}: unexpected answer")))
    }

    async fn start(
        &self,
        app: &str,
        formation: Option<&Formation>,
    ) -> Result<Started, ProviderError> {
        let workload = self.workload(app).await?;
        let replicas = formation
            .and_then(|f| f.get(REPLICAS).copied())
            .filter(|n| *n > 0)
            .unwrap_or_else(|| workload.default_replicas());
        let api = self.api_of(&workload).await?;
        self.scale(&api, &workload, replicas).await?;
        Ok(Started::default())
    }

    async fn stop(&self, app: &str) -> Result<Stopped, ProviderError> {
        let workload = self.workload(app).await?;
        let api = self.api_of(&workload).await?;
        let replicas = self.read_scale(&api, &workload).await?;
        let Ok(replicas @ 1..) = u32::try_from(replicas) else {
            return Ok(Stopped::default());
        };
        self.scale(&api, &workload, 0).await?;
        Ok(Stopped {
            formation: Some(Formation::from([(REPLICAS.to_owned(), replicas)])),
            sizes: BTreeMap::new(),
        })
    }

    fn poll_intervals(&self) -> PollIntervals {
        // One call a poll; pods take seconds to become ready.
        PollIntervals {
            first: Duration::from_millis(500),
            max: Duration::from_secs(3),
        }
    }

    async fn shutdown(&self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Provenance;

    fn read(yaml: &str) -> Result<KubernetesConfig, Vec<String>> {
        read_with(yaml, None)
    }

    /// `yaml` read as a space document of the admin API reads it when `api` is set.
    fn read_with(
        yaml: &str,
        api: Option<crate::settings::ApiRules>,
    ) -> Result<KubernetesConfig, Vec<String>> {
        let value = crate::settings::parse_yaml(yaml).expect("yaml");
        let provenance = Provenance::default();
        let mut reader = Reader::new(&provenance);
        reader.api = api;
        let map = value.as_object().expect("mapping");
        let mut fields = Fields::new(map, "providers[0]");
        let config = KubernetesConfig::read(&mut reader, &mut fields, "providers[0]", "");
        reader.finish(fields, &[]);
        match config {
            Some(config) if reader.errors.is_empty() => Ok(config),
            _ => Err(reader.errors.iter().map(|e| e.to_string()).collect()),
        }
    }

    #[test]
    fn the_defaults_fill_what_is_not_given() {
        let config = read("{}").expect("valid");
        assert_eq!(config.selector, DEFAULT_SELECTOR);
        assert_eq!(config.cluster_domain, "cluster.local");
        assert_eq!(config.rate_limit, DEFAULT_RATE_LIMIT);
        assert!(config.namespaces.is_empty());
        assert!(config.api_url.is_none() && config.token.is_none());
    }

    #[test]
    fn api_url_and_token_go_together_and_exclude_a_kubeconfig() {
        assert!(read("{api_url: 'https://k8s.example.com:6443', token: abcd}").is_ok());
        let errors = read("{api_url: 'https://k8s.example.com:6443'}").unwrap_err();
        assert!(errors.iter().any(|e| e.contains("token")), "{errors:?}");
        let errors = read("{token: abcd-secret-value}").unwrap_err();
        assert!(errors.iter().any(|e| e.contains("api_url")), "{errors:?}");
        assert!(!errors.iter().any(|e| e.contains("abcd-secret-value")));
        let errors =
            read("{api_url: 'https://k8s.example.com', token: abcd, kubeconfig: /k}").unwrap_err();
        assert!(errors.iter().any(|e| e.contains("not both")), "{errors:?}");
    }

    #[test]
    fn spaces_of_the_admin_api_never_get_the_engine_s_own_cluster_access() {
        let api = Some(crate::settings::ApiRules {
            custom_api_urls: true,
            ..Default::default()
        });
        assert!(read_with("{api_url: 'https://k8s.example.com', token: abcd}", api).is_ok());
        for yaml in ["{}", "{kubeconfig: /root/.kube/config}", "{context: prod}"] {
            let errors = read_with(yaml, api).unwrap_err();
            assert!(
                errors.iter().any(|e| e.contains("through the API")),
                "{yaml}: {errors:?}"
            );
        }
    }

    #[test]
    fn namespaces_and_domain_are_checked() {
        let config =
            read("{namespaces: [review, staging], cluster_domain: k8s.internal}").expect("valid");
        assert_eq!(config.namespaces, ["review", "staging"]);
        assert_eq!(config.cluster_domain, "k8s.internal");
        let errors = read("{namespaces: [Review_1]}").unwrap_err();
        assert!(errors.iter().any(|e| e.contains("namespace")), "{errors:?}");
    }
}
