//! The `docker` provider: the labelled containers of one Docker Engine (or Podman's
//! Docker-compatible API), over its unix socket or `tcp://` with or without TLS.
//!
//! It speaks the Engine API with the crate's own reqwest client (a unix socket through
//! `ClientBuilder::unix_socket`, client certificates with `Identity::from_pem`, rustls on
//! aws-lc-rs) through [`ApiClient::with_http`], rather than bollard, which would bring ring
//! and a second HTTP stack. The API version is the configured one, or negotiated once with
//! `GET /version` (the server's, capped at the newest this file knows).
//!
//! Managed containers carry `paastis.enable=true` (or Sablier's `sablier.enable=true`); their
//! other `paastis.*` labels name them, group them and set their policy. The listing is one
//! unfiltered `GET /containers/json?all=true` filtered here (the Engine ANDs the values of a
//! `label` filter, so the two label families would take two calls), then one inspect per
//! managed container (the listing lacks the healthcheck, the stop timeout and, on Podman,
//! the network settings). Containers are addressed by id and followed by name: a container
//! recreated under the same name (Compose `up`) is found again by listing anew on a 404.
//!
//! This module only speaks the API: it never decides when to start or stop, and it never
//! removes, creates or changes a container.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::OnceCell;

use super::api::{ApiClient, Idempotent, check, parse_entries, read_json};
use super::platform::{Facts, Platform};
use super::{
    AppInfo, AppStatus, Formation, PollIntervals, Provider, ProviderError, Started, Stopped,
    Upstream,
};
use crate::model::{PolicyOverride, Strategy, parse_duration};
use crate::secret::Secret;
use crate::settings::{Fields, Key, Kind, Reader};

mod containers;

use containers::*;

/// Where the Engine listens when neither `host:` nor `DOCKER_HOST` says.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Calls per minute: a local engine has no quota; this only bounds a runaway loop.
pub const DEFAULT_RATE_LIMIT: usize = 1200;

/// The newest API version this file was written against (Docker 25); a newer server is
/// spoken to in this version.
const MAX_API_VERSION: (u32, u32) = (1, 44);

/// The oldest API version whose answers this file reads (Docker 18.09).
const MIN_API_VERSION: (u32, u32) = (1, 39);

/// Grace period of a stop when neither the config nor the container says (Docker's own).
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// Time allowed to one API call besides a stop's grace period.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a running container without a healthcheck has to accept a connection on its
/// port, each time its readiness is asked.
const PORT_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// The process type a container is, in formations and savings.
const CONTAINER: &str = "container";

/// The label that lets Paastis manage a container.
const LABEL_ENABLE: &str = "paastis.enable";
/// Sablier's label with the same meaning.
const SABLIER_ENABLE: &str = "sablier.enable";
/// The app's name (default: the container's name).
const LABEL_NAME: &str = "paastis.name";
/// The group woken and put to sleep together.
const LABEL_GROUP: &str = "paastis.group";
/// Sablier's group label.
const SABLIER_GROUP: &str = "sablier.group";
/// The Compose project, a group when `group_by_compose_project` is on.
const COMPOSE_PROJECT: &str = "com.docker.compose.project";
/// The container port requests go to.
const LABEL_PORT: &str = "paastis.port";
/// Per-app policy labels, `paastis.` + the policy key.
const LABEL_MAX_IDLE: &str = "paastis.max_idle";
/// See [`LABEL_MAX_IDLE`].
const LABEL_WAKE_TIMEOUT: &str = "paastis.wake_timeout";
/// See [`LABEL_MAX_IDLE`].
const LABEL_STRATEGY: &str = "paastis.strategy";
/// See [`LABEL_MAX_IDLE`].
const LABEL_HEALTH_PATH: &str = "paastis.health_path";

/// `type: docker` in the config.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// Provider id.
    pub id: String,
    /// The Engine's address (`unix:///path` or `tcp://host:port`); `None`: `DOCKER_HOST`,
    /// else [`DEFAULT_HOST`], read when the client is built.
    pub host: Option<String>,
    /// Directory of `ca.pem`, `cert.pem` and `key.pem` for TLS; `None`: `DOCKER_CERT_PATH`.
    pub cert_path: Option<PathBuf>,
    /// Whether the server's certificate is checked; `None`: `DOCKER_TLS_VERIFY` is set.
    pub tls_verify: Option<bool>,
    /// The network shared with the engine: a container's address on it is its upstream.
    pub network: Option<String>,
    /// The host a published port is reached on.
    pub host_address: String,
    /// The API version spoken (`1.43`); `None`: negotiated with `GET /version`.
    pub api_version: Option<String>,
    /// The grace period of a stop; `None`: the container's own `StopTimeout` (else 10 s).
    pub stop_timeout: Option<Duration>,
    /// Whether a Compose project without a group label is a group.
    pub group_by_compose_project: bool,
    /// Calls per minute allowed.
    pub rate_limit: usize,
}

impl Platform for DockerConfig {
    const KIND: &'static str = "docker";
    // The TLS key is read from a file the operator controls; nothing in the entry is a
    // credential.
    const SECRET_KEYS: &'static [&'static str] = &[];
    const ENDPOINT_KEYS: &'static [&'static str] = &[];
    // Self-hosted: no price, the grid is wherever the host is.
    const FACTS: Facts = Facts::NONE;
    const DOC: &'static str = "The labelled containers of a Docker Engine (or Podman's \
                               Docker-compatible API).";
    const KEYS: &'static [Key] = &[
        Key::new(
            "host",
            Kind::Text("unix:// or tcp:// address"),
            "The Engine's address; by default `DOCKER_HOST`, else the local socket.",
        )
        .default(DEFAULT_HOST),
        Key::new(
            "cert_path",
            Kind::Text("path"),
            "Directory holding `ca.pem`, `cert.pem` and `key.pem` for a TLS `tcp://` \
             host; by default `DOCKER_CERT_PATH`.",
        ),
        Key::new(
            "tls_verify",
            Kind::Boolean,
            "Check the Engine's certificate against `ca.pem`; by default whether \
             `DOCKER_TLS_VERIFY` is set.",
        ),
        Key::new(
            "network",
            Kind::Text("network name"),
            "A network the engine shares with the containers: their address on it is used \
             first.",
        ),
        Key::new(
            "host_address",
            Kind::Text("host name or IP"),
            "Where a container's published port is reached.",
        )
        .default("127.0.0.1"),
        Key::new(
            "api_version",
            Kind::Text("version such as 1.43"),
            "The Engine API version spoken; by default negotiated with `GET /version`.",
        ),
        Key::new(
            "stop_timeout",
            Kind::Duration,
            "Grace period of a stop before the container is killed; by default each \
             container's own stop timeout (10s when it has none).",
        ),
        Key::new(
            "group_by_compose_project",
            Kind::Boolean,
            "Containers of one Compose project without a group label form a group.",
        )
        .default("false"),
        crate::settings::rate_limit_key("1200"),
    ];

    fn read(
        reader: &mut Reader<'_>,
        fields: &mut Fields<'_>,
        path: &str,
        kind_path: &str,
    ) -> Option<Self> {
        reader.docker(fields, path, kind_path)
    }

    fn secrets(&self) -> Vec<&Secret> {
        Vec::new()
    }

    fn build(&self) -> Result<Arc<dyn Provider>, ProviderError> {
        Ok(Arc::new(Docker::new(self)?))
    }
}

impl Reader<'_> {
    fn docker(
        &mut self,
        fields: &mut Fields<'_>,
        _path: &str,
        kind_path: &str,
    ) -> Option<DockerConfig> {
        if self.api.is_some() {
            // The socket is the engine host's: a tenant must not reach it.
            self.error(
                kind_path,
                "the docker provider reaches the engine host's container engine: not \
                 available to spaces created through the API",
            );
            fields.take_all();
            return None;
        }
        let mut ok = true;
        let host = fields.take("host").and_then(|(v, p)| {
            let text = self.non_empty_string(v, &p)?;
            match Endpoint::parse(&text) {
                Ok(_) => Some(text),
                Err(message) => {
                    self.error(&p, message);
                    None
                }
            }
        });
        ok &= host.is_some() || !fields.has("host");
        let cert_path = fields
            .take("cert_path")
            .and_then(|(v, p)| self.non_empty_string(v, &p))
            .map(PathBuf::from);
        let tls_verify = fields.take("tls_verify").and_then(|(v, p)| {
            let value = v.as_bool();
            if value.is_none() {
                self.error(&p, "expected true or false");
            }
            value
        });
        let network = fields
            .take("network")
            .and_then(|(v, p)| self.non_empty_string(v, &p));
        let host_address = fields
            .take("host_address")
            .and_then(|(v, p)| {
                let text = self.non_empty_string(v, &p)?;
                if Upstream::from_url(&format!("http://{}:1", bracketed(&text))).is_none() {
                    self.error(&p, format!("`{text}` is not a host name or IP address"));
                    return None;
                }
                Some(text)
            })
            .unwrap_or_else(|| "127.0.0.1".to_owned());
        let api_version = fields.take("api_version").and_then(|(v, p)| {
            let text = self.string(v, &p)?;
            let text = text.trim().trim_start_matches('v').to_owned();
            if parse_version(&text).is_none() {
                self.error(
                    &p,
                    format!("`{text}` is not an API version (expected e.g. 1.43)"),
                );
                return None;
            }
            Some(text)
        });
        let stop_timeout = fields
            .take("stop_timeout")
            .and_then(|(v, p)| self.duration(v, &p));
        let group_by_compose_project = fields
            .take("group_by_compose_project")
            .and_then(|(v, p)| {
                let value = v.as_bool();
                if value.is_none() {
                    self.error(&p, "expected true or false");
                }
                value
            })
            .unwrap_or(false);
        let rate_limit = self.rate_limit(fields, DEFAULT_RATE_LIMIT);
        ok.then_some(DockerConfig {
            id: String::new(),
            host,
            cert_path,
            tls_verify,
            network,
            host_address,
            api_version,
            stop_timeout,
            group_by_compose_project,
            rate_limit,
        })
    }
}

/// `[addr]` for an IPv6 address, the text itself otherwise.
fn bracketed(host: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
        _ => host.to_owned(),
    }
}

/// `1.43` as numbers.
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Where the Engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    /// A unix socket at this path.
    Unix(PathBuf),
    /// `host:port` over TCP.
    Tcp(String),
}

impl Endpoint {
    /// `unix:///path`, `tcp://host:port` (or `http(s)://`, as some tools write it).
    fn parse(text: &str) -> Result<Endpoint, String> {
        let text = text.trim();
        if text.contains('@') {
            // Not echoed: it may hold a password.
            return Err("credentials in the Engine's address are not supported".to_owned());
        }
        if let Some(path) = text.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(format!("`{text}`: a unix socket path must be absolute"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let rest = ["tcp://", "http://", "https://"]
            .iter()
            .find_map(|scheme| text.strip_prefix(scheme));
        match rest {
            Some(address) => {
                let address = address.trim_end_matches('/');
                if address.contains('/') {
                    return Err(format!("`{text}`: expected tcp://host:port"));
                }
                let address = if address.rsplit_once(':').is_some_and(|(_, port)| {
                    !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
                }) {
                    address.to_owned()
                } else {
                    format!("{address}:2375")
                };
                if Upstream::from_url(&format!("http://{address}")).is_none() {
                    return Err(format!("`{text}`: expected tcp://host:port"));
                }
                Ok(Endpoint::Tcp(address))
            }
            None => Err(format!(
                "`{text}` is not a supported Engine address (expected unix:///path or \
                 tcp://host:port)"
            )),
        }
    }
}

/// One Docker Engine.
#[derive(Debug)]
pub struct Docker {
    /// Provider id.
    id: String,
    /// HTTP client (unix socket or TCP, TLS when configured) with the rate limit.
    api: ApiClient,
    /// `http://docker` on a socket, `http(s)://host:port` over TCP: URLs are built on it.
    base: String,
    /// Where the Engine is, for messages (a socket path or a URL; never a credential).
    place: String,
    /// The configured API version, or the negotiated one once known.
    version: OnceCell<String>,
    /// The network shared with the engine.
    network: Option<String>,
    /// Where published ports are reached.
    host_address: String,
    /// The configured stop grace period.
    stop_timeout: Option<Duration>,
    /// Whether Compose projects are groups.
    group_by_compose_project: bool,
    /// App name -> the container id it was last listed with.
    ids: Mutex<HashMap<String, String>>,
    /// Ids of the containers this engine stopped: their exit code is not a failure.
    stopped_here: Mutex<HashSet<String>>,
    /// (container id, label, value) already warned about as invalid.
    warned: Mutex<HashSet<(String, &'static str, String)>>,
}

impl Docker {
    /// A client for the Engine the config (or the environment) names.
    pub fn new(config: &DockerConfig) -> Result<Docker, ProviderError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let host = config
            .host
            .clone()
            .or_else(|| env("DOCKER_HOST"))
            .unwrap_or_else(|| DEFAULT_HOST.to_owned());
        let endpoint = Endpoint::parse(&host).map_err(|message| {
            ProviderError::Failed(format!("docker provider `{}`: {message}", config.id))
        })?;
        let cert_path = config
            .cert_path
            .clone()
            .or_else(|| env("DOCKER_CERT_PATH").map(PathBuf::from));
        let tls_verify = config
            .tls_verify
            .unwrap_or_else(|| env("DOCKER_TLS_VERIFY").is_some());
        let builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(CALL_TIMEOUT)
            .user_agent(concat!("paastis/", env!("CARGO_PKG_VERSION")));
        let (builder, base, place) = match &endpoint {
            Endpoint::Unix(path) => (
                builder.unix_socket(path.clone()),
                "http://docker".to_owned(),
                format!("socket {}", path.display()),
            ),
            Endpoint::Tcp(address) => {
                let tls = tls_verify || cert_path.is_some() || host.starts_with("https://");
                if tls {
                    let builder = tls_client(builder, cert_path.as_deref(), tls_verify)?;
                    let url = format!("https://{address}");
                    (builder, url.clone(), url)
                } else {
                    let url = format!("http://{address}");
                    (builder, url.clone(), url)
                }
            }
        };
        let http = builder.build().map_err(|error| {
            ProviderError::Failed(format!("cannot build the HTTP client: {error}"))
        })?;
        let version = OnceCell::new();
        if let Some(configured) = &config.api_version {
            let _ = version.set(configured.clone());
        }
        Ok(Docker {
            id: config.id.clone(),
            api: ApiClient::with_http(http, config.rate_limit),
            base,
            place,
            version,
            network: config.network.clone(),
            host_address: config.host_address.clone(),
            stop_timeout: config.stop_timeout,
            group_by_compose_project: config.group_by_compose_project,
            ids: Mutex::new(HashMap::new()),
            stopped_here: Mutex::new(HashSet::new()),
            warned: Mutex::new(HashSet::new()),
        })
    }

    /// The API version to speak: configured, or negotiated once.
    async fn version(&self) -> Result<&str, ProviderError> {
        self.version
            .get_or_try_init(|| async {
                let url = format!("{}/version", self.base);
                let response = self
                    .api
                    .send(Idempotent::Yes, || self.api.http().get(&url))
                    .await
                    .map_err(|error| self.unreachable(error))?;
                let response = check(response, "the Engine's version").await?;
                let answer: VersionAnswer = read_json(response, "the Engine's version").await?;
                negotiate(&answer.api_version).map_err(ProviderError::Failed)
            })
            .await
            .map(String::as_str)
    }

    /// An unreachable Engine names the socket or URL.
    fn unreachable(&self, error: ProviderError) -> ProviderError {
        match error {
            ProviderError::Unreachable(detail) => ProviderError::Unreachable(format!(
                "the container engine at {}: {detail}",
                self.place
            )),
            other => other,
        }
    }

    /// Sends `method path` (with the API version), retrying when `idempotent`.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        idempotent: Idempotent,
        timeout: Duration,
    ) -> Result<reqwest::Response, ProviderError> {
        let version = self.version().await?;
        let url = format!("{}/v{version}{path}", self.base);
        self.api
            .send(idempotent, || {
                self.api
                    .http()
                    .request(method.clone(), &url)
                    .timeout(timeout)
            })
            .await
            .map_err(|error| self.unreachable(error))
    }

    /// Every container, as the listing gives them.
    async fn containers(&self) -> Result<Vec<Summary>, ProviderError> {
        let response = self
            .call(
                reqwest::Method::GET,
                "/containers/json?all=true",
                Idempotent::Yes,
                CALL_TIMEOUT,
            )
            .await?;
        let response = check(response, "listing containers").await?;
        let entries: Vec<super::api::Entry> = read_json(response, "listing containers").await?;
        Ok(parse_entries(&self.id, entries))
    }

    /// A container's details; `NotFound` when it is gone.
    async fn inspect(&self, id: &str) -> Result<Inspect, ProviderError> {
        let what = format!("container {}", short(id));
        let response = self
            .call(
                reqwest::Method::GET,
                &format!("/containers/{id}/json"),
                Idempotent::Yes,
                CALL_TIMEOUT,
            )
            .await?;
        let response = check(response, &what).await?;
        read_json(response, &what).await
    }

    /// The managed containers now, with their details (the map of ids is updated).
    async fn managed(&self) -> Result<Vec<Managed>, ProviderError> {
        let mut managed = Vec::new();
        for summary in self.containers().await? {
            if !summary.enabled() {
                continue;
            }
            match self.inspect(&summary.id).await {
                Ok(inspect) => managed.push(Managed::new(inspect)),
                // Removed between the listing and the inspect.
                Err(ProviderError::NotFound(_)) => {}
                Err(ProviderError::Failed(error)) => {
                    tracing::warn!(provider = %self.id, container = %short(&summary.id), %error,
                        "skipping a container whose details do not parse");
                }
                Err(error) => return Err(error),
            }
        }
        let managed = unique(&self.id, managed);
        self.warn_invalid(&managed);
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        *ids = managed
            .iter()
            .map(|m| (m.name.clone(), m.inspect.id.clone()))
            .collect();
        Ok(managed)
    }

    /// Warns about each ignored label once (per container, label and value), not at every
    /// listing.
    fn warn_invalid(&self, managed: &[Managed]) {
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        for m in managed {
            for invalid in &m.invalid {
                let key = (m.inspect.id.clone(), invalid.label, invalid.value.clone());
                if warned.insert(key) {
                    tracing::warn!(
                        provider = %self.id,
                        container = %m.inspect.name.trim_start_matches('/'),
                        label = invalid.label,
                        value = %invalid.value,
                        "ignoring an invalid label (expected {})",
                        invalid.expected
                    );
                }
            }
        }
    }

    /// The id `app` was last listed with, listing again when it is not known.
    async fn id_of(&self, app: &str) -> Result<String, ProviderError> {
        if let Some(id) = self.known_id(app) {
            return Ok(id);
        }
        self.managed().await?;
        self.known_id(app)
            .ok_or_else(|| ProviderError::NotFound(app.to_owned()))
    }

    fn known_id(&self, app: &str) -> Option<String> {
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(app)
            .cloned()
    }

    /// `app`'s container details, following it by name when its id is gone (recreated).
    async fn current(&self, app: &str) -> Result<Inspect, ProviderError> {
        let id = self.id_of(app).await?;
        match self.inspect(&id).await {
            Err(ProviderError::NotFound(_)) => {
                self.managed().await?;
                let id = self
                    .known_id(app)
                    .ok_or_else(|| ProviderError::NotFound(app.to_owned()))?;
                self.inspect(&id).await.map_err(|error| match error {
                    ProviderError::NotFound(_) => ProviderError::NotFound(app.to_owned()),
                    other => other,
                })
            }
            other => other,
        }
    }

    /// `POST /containers/{id}/{action}`; 304 (already so) is success.
    async fn act(
        &self,
        id: &str,
        action: &str,
        query: &str,
        timeout: Duration,
    ) -> Result<(), ProviderError> {
        let response = self
            .call(
                reqwest::Method::POST,
                &format!("/containers/{id}/{action}{query}"),
                // Starting or stopping twice is harmless.
                Idempotent::Yes,
                timeout,
            )
            .await?;
        if response.status() == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(());
        }
        check(response, &format!("{action} container {}", short(id))).await?;
        Ok(())
    }

    fn stopped_here(&self, id: &str) -> bool {
        self.stopped_here
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    fn mark_stopped_here(&self, id: &str, stopped: bool) {
        let mut set = self.stopped_here.lock().unwrap_or_else(|p| p.into_inner());
        if stopped {
            set.insert(id.to_owned());
        } else {
            set.remove(id);
        }
    }
}

/// A TLS client: `ca.pem` as the only trusted root when verifying, `cert.pem` + `key.pem`
/// as the client's identity when present. Messages name files, never their contents.
fn tls_client(
    builder: reqwest::ClientBuilder,
    cert_path: Option<&Path>,
    verify: bool,
) -> Result<reqwest::ClientBuilder, ProviderError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|error| {
            ProviderError::Failed(format!("cannot read {}: {error}", path.display()))
        })
    };
    let mut builder = builder;
    if let Some(dir) = cert_path {
        let ca = dir.join("ca.pem");
        if verify && ca.exists() {
            let certificate = reqwest::Certificate::from_pem(&read(&ca)?).map_err(|_| {
                ProviderError::Failed(format!("{} is not a PEM certificate", ca.display()))
            })?;
            builder = builder.tls_certs_only([certificate]);
        }
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        if cert.exists() || key.exists() {
            let mut pem = read(&cert)?;
            pem.push(b'\n');
            pem.extend(read(&key)?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|_| {
                ProviderError::Failed(format!(
                    "{} and {} are not a PEM certificate and private key",
                    cert.display(),
                    key.display()
                ))
            })?;
            builder = builder.identity(identity);
        }
    }
    if !verify {
        builder = builder
            .tls_danger_accept_invalid_certs(true)
            .tls_danger_accept_invalid_hostnames(true);
    }
    Ok(builder)
}

/// The version to speak with a server of `server`'s version.
fn negotiate(server: &str) -> Result<String, String> {
    let parsed = parse_version(server.trim())
        .ok_or_else(|| format!("the Engine's API version `{server}` is not understood"))?;
    if parsed < MIN_API_VERSION {
        return Err(format!(
            "the Engine's API version {server} is older than {}.{}",
            MIN_API_VERSION.0, MIN_API_VERSION.1
        ));
    }
    let (major, minor) = parsed.min(MAX_API_VERSION);
    Ok(format!("{major}.{minor}"))
}

/// The first 12 characters of an id, as the CLI shows them.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// `GET /version`, what is read of it.
#[async_trait]
impl Provider for Docker {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &'static str {
        "docker"
    }

    fn rate_limit(&self) -> Option<(usize, usize)> {
        Some(self.api.rate_limit())
    }

    async fn list_apps(&self) -> Result<Vec<AppInfo>, ProviderError> {
        let managed = self.managed().await?;
        Ok(apps(
            &managed,
            self.network.as_deref(),
            &self.host_address,
            self.group_by_compose_project,
            |id| self.stopped_here(id),
        ))
    }

    async fn status(&self, app: &str) -> Result<AppStatus, ProviderError> {
        let inspect = self.current(app).await?;
        let status = status(&inspect.state, self.stopped_here(&inspect.id));
        if status != AppStatus::Running || inspect.state.has_healthcheck() {
            return Ok(status);
        }
        // No healthcheck of its own: running is not ready until its port accepts.
        let managed = Managed::new(inspect);
        let Some(upstream) = upstream(
            &managed.inspect,
            managed.port,
            self.network.as_deref(),
            &self.host_address,
        ) else {
            return Ok(status);
        };
        let (host, port) = upstream.address();
        let accepted = tokio::time::timeout(
            PORT_CHECK_TIMEOUT,
            tokio::net::TcpStream::connect((host, port)),
        )
        .await;
        Ok(match accepted {
            Ok(Ok(_)) => AppStatus::Running,
            _ => AppStatus::Starting,
        })
    }

    async fn start(
        &self,
        app: &str,
        _formation: Option<&Formation>,
    ) -> Result<Started, ProviderError> {
        // One container: whatever formation is remembered, starting it is the restore.
        let inspect = self.current(app).await?;
        let id = inspect.id.clone();
        self.mark_stopped_here(&id, false);
        let action = if inspect.state.status == "paused" {
            "unpause"
        } else {
            "start"
        };
        self.act(&id, action, "", CALL_TIMEOUT).await?;
        // Its address is given at start (a new IP on a network): read it again.
        let started = self.inspect(&id).await?;
        let managed = Managed::new(started);
        Ok(Started {
            reconciled: None,
            upstream: upstream(
                &managed.inspect,
                managed.port,
                self.network.as_deref(),
                &self.host_address,
            ),
        })
    }

    async fn stop(&self, app: &str) -> Result<Stopped, ProviderError> {
        let inspect = self.current(app).await?;
        let running = matches!(
            inspect.state.status.as_str(),
            "running" | "restarting" | "paused"
        );
        if !running {
            return Ok(Stopped::default());
        }
        let grace = self
            .stop_timeout
            .or_else(|| inspect.config.stop_timeout.map(Duration::from_secs))
            .unwrap_or(DEFAULT_STOP_GRACE);
        self.mark_stopped_here(&inspect.id, true);
        let result = self
            .act(
                &inspect.id,
                "stop",
                &format!("?t={}", grace.as_secs()),
                grace + CALL_TIMEOUT,
            )
            .await;
        if result.is_err() {
            self.mark_stopped_here(&inspect.id, false);
        }
        result?;
        Ok(Stopped {
            formation: Some(one_container()),
            sizes: BTreeMap::new(),
        })
    }

    fn poll_intervals(&self) -> PollIntervals {
        // A local engine answers at once and containers start in about a second.
        PollIntervals {
            first: Duration::from_millis(100),
            max: Duration::from_secs(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spaces_of_the_admin_api_never_reach_the_engine_host_s_socket() {
        let provenance = crate::settings::Provenance::default();
        let value = crate::settings::parse_yaml("{host: 'unix:///run/docker.sock'}").expect("yaml");
        let map = value.as_object().expect("mapping");
        for api in [
            None,
            Some(crate::settings::ApiRules {
                custom_api_urls: true,
                ..Default::default()
            }),
        ] {
            let mut reader = Reader::new(&provenance);
            reader.api = api;
            let mut fields = Fields::new(map, "providers[0]");
            let config = DockerConfig::read(
                &mut reader,
                &mut fields,
                "providers[0]",
                "providers[0].type",
            );
            reader.finish(fields, &[]);
            let errors: Vec<String> = reader.errors.iter().map(|e| e.to_string()).collect();
            if api.is_none() {
                assert!(config.is_some() && errors.is_empty(), "{errors:?}");
            } else {
                assert!(config.is_none());
                assert!(
                    errors
                        .iter()
                        .any(|e| e.starts_with("providers[0].type: ")
                            && e.contains("through the API")),
                    "{errors:?}"
                );
            }
        }
    }

    fn inspect(value: Value) -> Inspect {
        serde_json::from_value(value).expect("inspect")
    }

    fn running(labels: Value) -> Value {
        json!({
            "Id": "0123456789abcdef0123",
            "Name": "/web-1",
            "State": {"Status": "running", "Running": true, "ExitCode": 0, "Error": "",
                      "Health": {"Status": "", "FailingStreak": 0, "Log": null}},
            "Config": {"Labels": labels, "ExposedPorts": {"8080/tcp": {}}, "StopTimeout": 3},
            "HostConfig": {"NetworkMode": "bridge"},
            "NetworkSettings": {
                "Ports": {"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "49153"}]},
                "Networks": {"bridge": {"IPAddress": "172.17.0.2"},
                             "paastis": {"IPAddress": "10.5.0.7", "GlobalIPv6Address": ""}}
            }
        })
    }

    #[test]
    fn labels_give_the_name_group_port_and_policy() {
        let m = Managed::new(inspect(running(json!({
            "paastis.enable": "true",
            "paastis.name": "shop",
            "paastis.group": "store",
            "paastis.port": "9000",
            "paastis.max_idle": "5m",
            "paastis.wake_timeout": "90s",
            "paastis.strategy": "hold",
            "paastis.health_path": "/up"
        }))));
        assert_eq!(m.name, "shop");
        assert_eq!(m.group.as_deref(), Some("store"));
        assert_eq!(m.port, Some(9000));
        assert_eq!(m.policy.max_idle, Some(Some(Duration::from_secs(300))));
        assert_eq!(m.policy.wake_timeout, Some(Duration::from_secs(90)));
        assert_eq!(m.policy.strategy, Some(Strategy::Hold));
        assert_eq!(m.policy.health_path.as_deref(), Some("/up"));
    }

    #[test]
    fn invalid_labels_are_skipped_and_defaults_kept() {
        let m = Managed::new(inspect(running(json!({
            "sablier.enable": "true",
            "sablier.group": "demo",
            "paastis.port": "http",
            "paastis.max_idle": "soon",
            "paastis.wake_timeout": "0s",
            "paastis.strategy": "wait",
            "paastis.health_path": "health"
        }))));
        assert_eq!(m.name, "web-1", "the container's name without its /");
        assert_eq!(m.group.as_deref(), Some("demo"));
        assert_eq!(m.port, Some(8080), "the single exposed port");
        assert_eq!(m.policy, PolicyOverride::default());
        let labels: Vec<&str> = m.invalid.iter().map(|i| i.label).collect();
        assert_eq!(
            labels,
            [
                LABEL_MAX_IDLE,
                LABEL_WAKE_TIMEOUT,
                LABEL_STRATEGY,
                LABEL_HEALTH_PATH,
                LABEL_PORT
            ]
        );
        let never = Managed::new(inspect(running(json!({"paastis.max_idle": "never"}))));
        assert_eq!(never.policy.max_idle, Some(None));
    }

    #[test]
    fn the_upstream_is_the_network_then_the_published_port_then_host_networking() {
        let m = Managed::new(inspect(running(json!({}))));
        let on = |network: Option<&str>| {
            upstream(&m.inspect, m.port, network, "127.0.0.1").map(|u| u.to_string())
        };
        assert_eq!(on(Some("paastis")).as_deref(), Some("http://10.5.0.7:8080"));
        assert_eq!(on(Some("other")).as_deref(), Some("http://127.0.0.1:49153"));
        assert_eq!(on(None).as_deref(), Some("http://127.0.0.1:49153"));
        let v6 = upstream(&m.inspect, m.port, None, "::1").map(|u| u.to_string());
        assert_eq!(v6.as_deref(), Some("http://[::1]:49153"));

        let host = inspect(json!({
            "Id": "abc", "Name": "/api",
            "State": {"Status": "exited", "ExitCode": 0},
            "Config": {"Labels": {"paastis.port": "4000"}, "ExposedPorts": null},
            "HostConfig": {"NetworkMode": "host"},
            "NetworkSettings": {"Ports": {}, "Networks": {}}
        }));
        let m = Managed::new(host);
        assert_eq!(
            upstream(&m.inspect, m.port, Some("paastis"), "127.0.0.1").map(|u| u.to_string()),
            Some("http://127.0.0.1:4000".to_owned())
        );
        // Not published, no network, no host networking: nowhere to send requests.
        let hidden = inspect(json!({
            "Id": "abc", "Name": "/api", "State": {"Status": "running"},
            "Config": {"ExposedPorts": {"80/tcp": {}}},
            "HostConfig": {"NetworkMode": "bridge"},
            "NetworkSettings": {"Ports": {"80/tcp": null}, "Networks": {"bridge": {"IPAddress": ""}}}
        }));
        let m = Managed::new(hidden);
        assert_eq!(m.port, Some(80));
        assert!(upstream(&m.inspect, m.port, None, "127.0.0.1").is_none());
        // Several ports and no label: none chosen.
        let several = inspect(json!({
            "Id": "abc", "Name": "/api", "State": {"Status": "running"},
            "Config": {"ExposedPorts": {"80/tcp": {}, "443/tcp": {}, "53/udp": {}}}
        }));
        assert_eq!(single_port(&several), None);
    }

    fn state(value: Value) -> ContainerState {
        serde_json::from_value(value).expect("state")
    }

    #[test]
    fn states_and_healthchecks_map_to_app_states() {
        let s = |v: Value| status(&state(v), false);
        assert_eq!(s(json!({"Status": "running"})), AppStatus::Running);
        assert_eq!(
            s(json!({"Status": "running", "Health": {"Status": "starting"}})),
            AppStatus::Starting
        );
        assert_eq!(
            s(json!({"Status": "running", "Health": {"Status": "healthy"}})),
            AppStatus::Running
        );
        assert!(matches!(
            s(json!({"Status": "running", "Health": {"Status": "unhealthy"}})),
            AppStatus::Failed(_)
        ));
        // Podman's answer without a healthcheck, Docker's `none`: the port decides.
        for none in ["", "none"] {
            let podman = state(json!({"Status": "running", "Health": {"Status": none}}));
            assert_eq!(status(&podman, false), AppStatus::Running);
            assert!(!podman.has_healthcheck());
        }
        assert!(!state(json!({"Status": "running"})).has_healthcheck());
        assert!(
            state(json!({"Status": "running", "Health": {"Status": "starting"}})).has_healthcheck()
        );
        assert_eq!(s(json!({"Status": "restarting"})), AppStatus::Starting);
        assert_eq!(s(json!({"Status": "created"})), AppStatus::Stopped);
        assert_eq!(s(json!({"Status": "paused"})), AppStatus::Stopped);
        assert_eq!(
            s(json!({"Status": "exited", "ExitCode": 0})),
            AppStatus::Stopped
        );
        assert_eq!(
            s(json!({"Status": "exited", "ExitCode": 137})),
            AppStatus::Stopped
        );
        assert_eq!(
            s(json!({"Status": "exited", "ExitCode": 3, "Error": "boom"})),
            AppStatus::Failed("exited with code 3: boom".to_owned())
        );
        assert!(matches!(
            s(json!({"Status": "exited", "ExitCode": 137, "OOMKilled": true})),
            AppStatus::Failed(_)
        ));
        assert!(matches!(s(json!({"Status": "dead"})), AppStatus::Failed(_)));
        assert_eq!(s(json!({"Status": "wandering"})), AppStatus::Unknown);
        // What this engine stopped is stopped, whatever the code.
        assert_eq!(
            status(&state(json!({"Status": "exited", "ExitCode": 2})), true),
            AppStatus::Stopped
        );
    }

    #[test]
    fn the_listing_keeps_labelled_containers_and_skips_odd_entries() {
        let entries = vec![
            json!({"Id": "a", "Names": ["/a"], "Labels": {"paastis.enable": "true"}}),
            json!({"Id": "b", "Names": ["/b"], "Labels": {"sablier.enable": "TRUE"}}),
            json!({"Id": "c", "Names": ["/c"], "Labels": {"paastis.enable": "false"}}),
            json!({"Id": "d", "Names": ["/d"], "Labels": null}),
            json!({"Names": ["/no-id"], "Labels": {"paastis.enable": "true"}}),
            json!("not a container"),
        ];
        let listed: Vec<Summary> = parse_entries("docker", entries);
        let enabled: Vec<&str> = listed
            .iter()
            .filter(|s| s.enabled())
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(enabled, ["a", "b"]);
    }

    #[test]
    fn groups_link_their_members_and_compose_projects_only_when_asked() {
        let member = |name: &str, labels: Value| {
            let mut value = running(labels);
            value["Name"] = json!(format!("/{name}"));
            Managed::new(inspect(value))
        };
        let managed = vec![
            member("web", json!({"paastis.group": "shop"})),
            member("db", json!({"sablier.group": "shop"})),
            member("api", json!({"com.docker.compose.project": "blog"})),
            member("worker", json!({"com.docker.compose.project": "blog"})),
            member("alone", json!({})),
        ];
        let linked = |compose: bool| -> Vec<(String, Vec<String>)> {
            apps(&managed, None, "127.0.0.1", compose, |_| false)
                .into_iter()
                .map(|a| (a.name, a.linked))
                .collect()
        };
        let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            linked(false),
            vec![
                ("web".to_owned(), s(&["db"])),
                ("db".to_owned(), s(&["web"])),
                ("api".to_owned(), s(&[])),
                ("worker".to_owned(), s(&[])),
                ("alone".to_owned(), s(&[])),
            ]
        );
        let with_compose = linked(true);
        assert_eq!(with_compose[2], ("api".to_owned(), s(&["worker"])));
        assert_eq!(with_compose[3], ("worker".to_owned(), s(&["api"])));
        // The group's name, for callers that ask for it by name.
        let groups = |compose: bool| -> Vec<Option<String>> {
            apps(&managed, None, "127.0.0.1", compose, |_| false)
                .into_iter()
                .map(|a| a.group)
                .collect()
        };
        let shop = Some("shop".to_owned());
        assert_eq!(
            groups(false),
            [shop.clone(), shop.clone(), None, None, None]
        );
        let blog = Some("compose:blog".to_owned());
        assert_eq!(groups(true), [shop.clone(), shop, blog.clone(), blog, None]);
        // A second container claiming a name is skipped.
        let twice = unique(
            "docker",
            vec![member("x", json!({})), member("x", json!({}))],
        );
        assert_eq!(twice.len(), 1);
    }

    #[test]
    fn engine_addresses_and_versions_are_read_strictly() {
        assert_eq!(
            Endpoint::parse("unix:///run/podman/podman.sock"),
            Ok(Endpoint::Unix(PathBuf::from("/run/podman/podman.sock")))
        );
        assert_eq!(
            Endpoint::parse("tcp://10.0.0.5:2376"),
            Ok(Endpoint::Tcp("10.0.0.5:2376".to_owned()))
        );
        assert_eq!(
            Endpoint::parse("tcp://docker"),
            Ok(Endpoint::Tcp("docker:2375".to_owned()))
        );
        assert!(Endpoint::parse("unix://relative.sock").is_err());
        assert!(Endpoint::parse("ssh://me@host").is_err());
        assert!(Endpoint::parse("tcp://user:pw@host:1").is_err());
        assert_eq!(negotiate("1.41"), Ok("1.41".to_owned()));
        assert_eq!(negotiate("1.47"), Ok("1.44".to_owned()));
        assert!(negotiate("1.24").is_err());
        assert!(negotiate("x").is_err());
    }
}
