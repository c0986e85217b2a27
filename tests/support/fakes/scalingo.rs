//! Fake Scalingo: the auth service (token exchange) and the region API on one base URL, with
//! the platform's shapes and quirks (`provider-apis.md`, "Scalingo"): JWTs that expire, a
//! rolling per-minute rate limit, `400 no change` scales, `422 is restarting` while an
//! operation runs, `422` for a container type the app does not have, and scale-ups that boot
//! for a while before the app's router serves it.
//!
//! Time comes from `tokio::time::Instant` only (the wall clock is read once, at start, to
//! anchor JSON timestamps and JWT claims), so the fake follows paused time in tests.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{AppServer, Calls, serve};

/// The only region the fake serves.
const REGION: &str = "osc-fr1";
/// The platform's hard limit of containers per process type.
const MAX_PER_TYPE: i64 = 10;
/// The rate limit's rolling window.
const WINDOW: Duration = Duration::from_secs(60);
/// Container sizes the platform knows, with their memory in bytes.
const SIZES: &[(&str, u64)] = &[
    ("S", 256 << 20),
    ("M", 512 << 20),
    ("L", 1 << 30),
    ("XL", 2 << 30),
    ("2XL", 4 << 30),
];
/// The size of containers added by the tests.
const DEFAULT_SIZE: &str = "M";

/// A fake Scalingo account: auth and API served on `url`.
pub struct FakeScalingo {
    /// `http://127.0.0.1:PORT`, both the auth URL and the API URL.
    pub url: String,
    /// Every call answered, and the faults to inject.
    pub calls: Arc<Calls>,
    shared: Arc<Shared>,
}

impl FakeScalingo {
    /// Serves auth AND API on one base URL. `api_token` is the only valid API token.
    pub async fn start(api_token: &str) -> FakeScalingo {
        let calls = Arc::new(Calls::default());
        let shared = Arc::new(Shared {
            api_token: api_token.to_owned(),
            url: OnceLock::new(),
            calls: Arc::clone(&calls),
            epoch: Instant::now(),
            epoch_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            state: Mutex::new(Inner {
                apps: Vec::new(),
                operations: Vec::new(),
                tokens: HashMap::new(),
                exchanges: 0,
                jwt_ttl: Duration::from_secs(3600),
                boot_time: Duration::from_millis(300),
                per_minute: 60,
                window: VecDeque::new(),
                next_id: 0,
                removal_before_scale: None,
            }),
        });
        let router = Router::new()
            .route("/v1/tokens/exchange", post(exchange))
            .route("/v1/apps", get(list_apps))
            .route("/v1/apps/{app}", get(show_app))
            .route("/v1/apps/{app}/containers", get(containers))
            .route("/v1/apps/{app}/ps", get(ps))
            .route("/v1/apps/{app}/scale", post(scale))
            .route("/v1/apps/{app}/operations/{id}", get(operation))
            .fallback(not_found)
            .method_not_allowed_fallback(not_found)
            .with_state(Arc::clone(&shared));
        let url = serve(router).await;
        let _ = shared.url.set(url.clone());
        FakeScalingo { url, calls, shared }
    }

    /// Adds an app with this formation (sizes "M"). Running: every container up and ready and
    /// the app's server answering; stopped: every amount at 0, as the platform keeps an app
    /// scaled to zero (the amounts given are not remembered). Returns the app's server, whose
    /// URL is the app's `url` and `base_url`.
    pub async fn add_app(&self, name: &str, formation: &[(&str, u32)], running: bool) -> AppServer {
        let server = AppServer::start(name, running).await;
        self.push_app(name, formation, running, server.clone(), true);
        server
    }

    /// Adds `count` stopped apps named `{prefix}{index}` (a `web` process scaled to zero),
    /// sharing one app server that is never up: a large account at rest, for the scale
    /// benchmark, without a listener per app.
    pub async fn add_sleeping_apps(&self, prefix: &str, count: usize) {
        let server = AppServer::start(prefix, false).await;
        assert!(
            !self
                .shared
                .lock()
                .apps
                .iter()
                .any(|app| app.name.starts_with(prefix)),
            "apps named {prefix}... already exist"
        );
        for index in 0..count {
            let name = format!("{prefix}{index}");
            self.push_app(&name, &[("web", 1)], false, server.clone(), false);
        }
    }

    /// Adds one app (`unique`: check first that no app has this name).
    fn push_app(
        &self,
        name: &str,
        formation: &[(&str, u32)],
        running: bool,
        server: AppServer,
        unique: bool,
    ) {
        let now = Instant::now();
        let wall = self.shared.unix_ms(now);
        let mut inner = self.shared.lock();
        assert!(
            !unique || inner.find(name).is_none(),
            "app {name} already exists"
        );
        let id = inner.new_id();
        let mut processes = BTreeMap::new();
        for &(kind, amount) in formation {
            let amount = if running { amount } else { 0 };
            let containers = (1..=amount)
                .map(|index| Container {
                    id: inner.new_id(),
                    index,
                    booting: false,
                    created_at: wall,
                })
                .collect();
            let process = Process {
                id: inner.new_id(),
                size: DEFAULT_SIZE.to_owned(),
                containers,
            };
            processes.insert(kind.to_owned(), process);
        }
        let app = FakeApp {
            id,
            name: name.to_owned(),
            server,
            public_url: None,
            created_at: wall,
            updated_at: wall,
            processes,
            booting_until: None,
        };
        app.server.set_up(app.serving());
        inner.apps.push(app);
    }

    /// Publishes another URL as the app's `url` and `base_url` (an HTTPS front, say).
    pub fn set_public_url(&self, app: &str, url: &str) {
        let mut inner = self.shared.lock();
        let app = inner
            .apps
            .iter_mut()
            .find(|a| a.name == app)
            .unwrap_or_else(|| panic!("no app {app} in the fake"));
        app.public_url = Some(url.to_owned());
    }

    /// Current amounts per process type, sorted by type name.
    pub fn formation(&self, app: &str) -> Vec<(String, u32)> {
        let inner = self.shared.lock();
        let app = inner
            .find(app)
            .unwrap_or_else(|| panic!("no app {app} in the fake"));
        app.processes
            .iter()
            .map(|(kind, process)| (kind.clone(), process.amount()))
            .collect()
    }

    /// Removes a process type, as a deployment whose Procfile no longer has it does (its
    /// containers, if any, are gone with it): from now on a scale naming it is refused 422.
    pub fn remove_process_type(&self, app: &str, kind: &str) {
        let mut inner = self.shared.lock();
        let app = inner.find_mut(app);
        assert!(
            app.processes.remove(kind).is_some(),
            "{} has no process type {kind}",
            app.name
        );
        app.server.set_up(app.serving());
    }

    /// Adds a process type at amount 0, as a deployment whose Procfile has a new one does.
    pub fn add_process_type(&self, app: &str, kind: &str) {
        let mut inner = self.shared.lock();
        let id = inner.new_id();
        let app = inner.find_mut(app);
        let process = Process {
            id,
            size: DEFAULT_SIZE.to_owned(),
            containers: Vec::new(),
        };
        assert!(
            app.processes.insert(kind.to_owned(), process).is_none(),
            "{} already has a process type {kind}",
            app.name
        );
    }

    /// Removes a process type when the next scale request arrives, before it is looked at:
    /// a deployment landing between a client's read of the formation and its scale.
    pub fn remove_process_type_before_next_scale(&self, app: &str, kind: &str) {
        self.shared.lock().removal_before_scale = Some((app.to_owned(), kind.to_owned()));
    }

    /// Time between an accepted scale-up and the app being ready (default 300 ms).
    pub fn set_boot_time(&self, d: Duration) {
        self.shared.lock().boot_time = d;
    }

    /// Lifetime of the JWTs issued from now on (default 1 h).
    pub fn set_jwt_ttl(&self, d: Duration) {
        self.shared.lock().jwt_ttl = d;
    }

    /// Number of successful token exchanges so far.
    pub fn exchanges(&self) -> usize {
        self.shared.lock().exchanges
    }

    /// At most `per_minute` API calls per rolling 60 s window (token exchange excluded).
    pub fn set_rate_limit(&self, per_minute: usize) {
        self.shared.lock().per_minute = per_minute;
    }
}

/// What the handlers share.
struct Shared {
    api_token: String,
    /// The fake's base URL, for `Location` headers.
    url: OnceLock<String>,
    calls: Arc<Calls>,
    /// When the fake started, and the wall clock then (Unix milliseconds).
    epoch: Instant,
    epoch_unix_ms: u64,
    state: Mutex<Inner>,
}

/// The platform's state.
struct Inner {
    apps: Vec<FakeApp>,
    operations: Vec<Operation>,
    /// Every JWT issued, with the instant it expires.
    tokens: HashMap<String, Instant>,
    exchanges: usize,
    jwt_ttl: Duration,
    boot_time: Duration,
    per_minute: usize,
    /// When the API calls of the last rolling window were admitted.
    window: VecDeque<Instant>,
    next_id: u128,
    /// App and process type to remove when the next scale request arrives.
    removal_before_scale: Option<(String, String)>,
}

struct FakeApp {
    /// 24 hex digits, like the platform's ids.
    id: String,
    name: String,
    server: AppServer,
    /// `url` and `base_url` when they differ from the server's (e.g. an HTTPS front).
    public_url: Option<String>,
    /// Unix milliseconds.
    created_at: u64,
    updated_at: u64,
    /// By process type.
    processes: BTreeMap<String, Process>,
    /// While a scale-up boots: when its containers are ready.
    booting_until: Option<Instant>,
}

/// One process type of a formation.
struct Process {
    id: String,
    size: String,
    /// One per unit of amount.
    containers: Vec<Container>,
}

struct Container {
    id: String,
    /// 1-based, per process type.
    index: u32,
    booting: bool,
    /// Unix milliseconds.
    created_at: u64,
}

/// A scale operation: `running` until `done_at`, then `done`.
struct Operation {
    id: String,
    app_id: String,
    done_at: Instant,
}

/// The body of `POST /v1/apps/{app}/scale`.
#[derive(Deserialize)]
struct ScaleRequest {
    containers: Option<Vec<ScaleItem>>,
}

#[derive(Deserialize)]
struct ScaleItem {
    name: String,
    amount: i64,
    size: Option<String>,
}

/// An accepted scale.
struct Scaled {
    operation: String,
    /// When the containers it boots are ready, if it boots any.
    ready_at: Option<Instant>,
}

/// An error answer, in the platform's shapes.
enum Refusal {
    /// `{"error": message}`
    Error(StatusCode, String),
    /// `401 {"error": message}`
    Unauthorized(&'static str),
    /// `404 {"resource": resource, "error": "not found"}`
    NotFound(&'static str),
    /// `422 {"errors": {field: messages}}`
    Invalid(&'static str, Vec<String>),
    /// `429 Retry later` (plain text) with `Retry-After` seconds.
    Throttled(u64),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Error(status, message) => (status, Json(json!({ "error": message }))),
            Refusal::Unauthorized(message) => {
                (StatusCode::UNAUTHORIZED, Json(json!({ "error": message })))
            }
            Refusal::NotFound(resource) => (
                StatusCode::NOT_FOUND,
                Json(json!({ "resource": resource, "error": "not found" })),
            ),
            Refusal::Invalid(field, messages) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "errors": { field: messages } })),
            ),
            Refusal::Throttled(seconds) => {
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, seconds.to_string())],
                    "Retry later",
                )
                    .into_response();
            }
        }
        .into_response()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The wall clock at `at`, in Unix milliseconds.
    fn unix_ms(&self, at: Instant) -> u64 {
        let elapsed = at.saturating_duration_since(self.epoch).as_millis();
        self.epoch_unix_ms
            .saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX))
    }

    fn url(&self) -> &str {
        self.url.get().map_or("", String::as_str)
    }

    /// Answers an API call: injected fault, else bearer auth, else rate limit, else `handle`
    /// on the settled state. Records the call.
    fn api(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        handle: impl FnOnce(&mut Inner, Instant) -> Result<Response, Refusal>,
    ) -> Response {
        let path = uri.path();
        if let Some(fault) = self.calls.injected(method.as_str(), path) {
            return fault;
        }
        let now = Instant::now();
        let response = {
            let mut inner = self.lock();
            inner
                .admit(headers, now)
                .and_then(|()| {
                    inner.settle(now);
                    handle(&mut inner, now)
                })
                .unwrap_or_else(IntoResponse::into_response)
        };
        self.calls
            .record(method.as_str(), path, response.status().as_u16());
        response
    }

    /// A new JWT (`header.payload.signature`, base64url without padding) valid for the
    /// configured TTL.
    fn issue_jwt(&self, inner: &mut Inner, now: Instant) -> String {
        inner.exchanges += 1;
        let expires = now + inner.jwt_ttl;
        let claims = json!({
            "exp": self.unix_ms(expires) / 1000,
            "iat": self.unix_ms(now) / 1000,
            "sub": "user",
        });
        let token = format!(
            "{}.{}.{}",
            base64url(br#"{"alg":"HS256","typ":"JWT"}"#),
            base64url(claims.to_string().as_bytes()),
            base64url(format!("fake-scalingo-{}", inner.exchanges).as_bytes()),
        );
        inner.tokens.insert(token.clone(), expires);
        token
    }

    fn app_json(&self, app: &FakeApp) -> Value {
        json!({
            "id": app.id,
            "name": app.name,
            "region": REGION,
            "status": app.status(),
            "url": app.public_url.as_deref().unwrap_or(&app.server.url),
            "base_url": app.public_url.as_deref().unwrap_or(&app.server.url),
            "created_at": rfc3339(app.created_at),
            "updated_at": rfc3339(app.updated_at),
            "last_deployed_at": rfc3339(app.created_at),
            "force_https": false,
            "sticky_session": false,
            "owner": {
                "id": "us-5e1ac0de-0000-4000-8000-000000000001",
                "username": "fake-user",
                "email": "fake-user@example.com",
            },
            "project": {
                "id": "prj-5e1ac0de-0000-4000-8000-000000000001",
                "name": "default",
            },
        })
    }
}

impl Inner {
    fn new_id(&mut self) -> String {
        fresh_id(&mut self.next_id)
    }

    /// The app named `name`; panics when there is none (test helpers only).
    fn find_mut(&mut self, name: &str) -> &mut FakeApp {
        self.apps
            .iter_mut()
            .find(|app| app.name == name)
            .unwrap_or_else(|| panic!("no app {name} in the fake"))
    }

    /// The app named or identified by `key`.
    fn find(&self, key: &str) -> Option<&FakeApp> {
        self.apps
            .iter()
            .find(|app| app.name == key || app.id == key)
    }

    /// Bearer auth, then the rate limit.
    fn admit(&mut self, headers: &HeaderMap, now: Instant) -> Result<(), Refusal> {
        let token = bearer(headers).ok_or(Refusal::Unauthorized("invalid authorization header"))?;
        match self.tokens.get(token) {
            None => Err(Refusal::Unauthorized("invalid token")),
            Some(&expires) if expires <= now => Err(Refusal::Unauthorized("token expired")),
            Some(_) => self.take_slot(now),
        }
    }

    /// Counts a call in the rolling window, or answers 429 when the window is full.
    fn take_slot(&mut self, now: Instant) -> Result<(), Refusal> {
        while self
            .window
            .front()
            .is_some_and(|&at| now.duration_since(at) >= WINDOW)
        {
            self.window.pop_front();
        }
        if self.window.len() < self.per_minute {
            self.window.push_back(now);
            return Ok(());
        }
        // The call that must leave the window for one more to fit.
        let wait = self
            .window
            .get(self.window.len() - self.per_minute)
            .map_or(WINDOW, |&at| WINDOW.saturating_sub(now.duration_since(at)));
        let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        Err(Refusal::Throttled(seconds))
    }

    /// Finishes the boots that are due.
    fn settle(&mut self, now: Instant) {
        for app in &mut self.apps {
            if app.booting_until.is_some_and(|until| until <= now) {
                app.booting_until = None;
                for container in app.processes.values_mut().flat_map(|p| &mut p.containers) {
                    container.booting = false;
                }
                app.server.set_up(app.serving());
            }
        }
    }

    /// `POST /v1/apps/{app}/scale`, after auth.
    fn scale(
        &mut self,
        key: &str,
        body: &[u8],
        now: Instant,
        wall: u64,
    ) -> Result<Scaled, Refusal> {
        if let Some((app, kind)) = self.removal_before_scale.take() {
            self.find_mut(&app).processes.remove(&kind);
        }
        let Some(position) = self.apps.iter().position(|a| a.name == key || a.id == key) else {
            return Err(Refusal::NotFound("app"));
        };
        let request: ScaleRequest = serde_json::from_slice(body).map_err(|e| {
            Refusal::Error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}"))
        })?;
        let items = request.containers.unwrap_or_default();
        if items.is_empty() {
            return Err(Refusal::Invalid(
                "containers",
                vec!["can't be blank".to_owned()],
            ));
        }

        // Validate everything, then compute the target formation (later items win).
        let app = &self.apps[position];
        let mut problems = Vec::new();
        let mut target: BTreeMap<&str, (u32, &str)> = BTreeMap::new();
        for item in &items {
            let Some(process) = app.processes.get(&item.name) else {
                problems.push(format!("{} is not a process type of this app", item.name));
                continue;
            };
            let size = item.size.as_deref().unwrap_or(&process.size);
            if memory(size).is_none() {
                problems.push(format!("{size} is not a valid container size"));
            }
            match u32::try_from(item.amount) {
                Ok(amount) if item.amount <= MAX_PER_TYPE => {
                    target.insert(&item.name, (amount, size));
                }
                _ => problems.push(format!(
                    "amount of {} must be between 0 and {MAX_PER_TYPE}",
                    item.name
                )),
            }
        }
        if !problems.is_empty() {
            return Err(Refusal::Invalid("containers", problems));
        }
        let changes: Vec<(String, u32, String)> = target
            .into_iter()
            .filter(|(kind, (amount, size))| {
                let process = &app.processes[*kind];
                process.amount() != *amount || process.size != *size
            })
            .map(|(kind, (amount, size))| (kind.to_owned(), amount, size.to_owned()))
            .collect();
        if changes.is_empty() {
            return Err(Refusal::Error(
                StatusCode::BAD_REQUEST,
                "no change in containers formation".to_owned(),
            ));
        }
        if app.booting_until.is_some() {
            return Err(Refusal::Invalid("app", vec!["is restarting".to_owned()]));
        }

        // Apply: fewer containers stop at once, new ones boot; a new size restarts the type.
        let operation = self.new_id();
        let Inner {
            apps,
            next_id,
            boot_time,
            ..
        } = self;
        let app = &mut apps[position];
        for (kind, amount, size) in changes {
            let Some(process) = app.processes.get_mut(&kind) else {
                continue;
            };
            if process.size != size {
                process.size = size;
                process.containers.clear();
            }
            process.containers.truncate(amount as usize);
            while process.amount() < amount {
                process.containers.push(Container {
                    id: fresh_id(next_id),
                    index: process.amount() + 1,
                    booting: true,
                    created_at: wall,
                });
            }
        }
        let boots = app
            .processes
            .values()
            .flat_map(|p| &p.containers)
            .any(|c| c.booting);
        let ready_at = boots.then(|| now + *boot_time);
        app.booting_until = ready_at;
        app.updated_at = wall;
        app.server.set_up(app.serving());
        let app_id = app.id.clone();
        self.operations.push(Operation {
            id: operation.clone(),
            app_id,
            done_at: ready_at.unwrap_or(now),
        });
        Ok(Scaled {
            operation,
            ready_at,
        })
    }
}

impl FakeApp {
    /// The platform's app status.
    fn status(&self) -> &'static str {
        let mut containers = self
            .processes
            .values()
            .flat_map(|p| &p.containers)
            .peekable();
        if containers.peek().is_none() {
            "stopped"
        } else if containers.any(|c| c.booting) {
            "scaling"
        } else {
            "running"
        }
    }

    /// Whether the router serves the app: a `web` container is running (any container when
    /// the app has no `web` type).
    fn serving(&self) -> bool {
        let running = |p: &Process| p.containers.iter().any(|c| !c.booting);
        match self.processes.get("web") {
            Some(web) => running(web),
            None => self.processes.values().any(running),
        }
    }
}

impl Process {
    fn amount(&self) -> u32 {
        u32::try_from(self.containers.len()).unwrap_or(u32::MAX)
    }
}

type Fake = State<Arc<Shared>>;

/// `POST /v1/tokens/exchange`: HTTP Basic, empty user, the API token as password.
async fn exchange(State(fake): Fake, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if let Some(fault) = fake.calls.injected(method.as_str(), path) {
        return fault;
    }
    let response = if basic_password(&headers).as_deref() == Some(fake.api_token.as_str()) {
        let token = fake.issue_jwt(&mut fake.lock(), Instant::now());
        (StatusCode::OK, Json(json!({ "token": token }))).into_response()
    } else {
        Refusal::Unauthorized("invalid credentials").into_response()
    };
    fake.calls
        .record(method.as_str(), path, response.status().as_u16());
    response
}

/// `GET /v1/apps`
async fn list_apps(State(fake): Fake, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    fake.api(&method, &uri, &headers, |inner, _| {
        let apps: Vec<Value> = inner.apps.iter().map(|app| fake.app_json(app)).collect();
        Ok(Json(json!({ "apps": apps })).into_response())
    })
}

/// `GET /v1/apps/{app}`
async fn show_app(
    State(fake): Fake,
    Path(key): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    fake.api(&method, &uri, &headers, |inner, _| {
        let app = inner.find(&key).ok_or(Refusal::NotFound("app"))?;
        Ok(Json(json!({ "app": fake.app_json(app) })).into_response())
    })
}

/// `GET /v1/apps/{app}/containers`: the formation.
async fn containers(
    State(fake): Fake,
    Path(key): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    fake.api(&method, &uri, &headers, |inner, _| {
        let app = inner.find(&key).ok_or(Refusal::NotFound("app"))?;
        let containers: Vec<Value> = app
            .processes
            .iter()
            .map(|(kind, p)| json!({ "name": kind, "amount": p.amount(), "size": p.size }))
            .collect();
        Ok(Json(json!({ "containers": containers })).into_response())
    })
}

/// `GET /v1/apps/{app}/ps`: the containers running or booting.
async fn ps(
    State(fake): Fake,
    Path(key): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    fake.api(&method, &uri, &headers, |inner, _| {
        let app = inner.find(&key).ok_or(Refusal::NotFound("app"))?;
        let containers: Vec<Value> = app
            .processes
            .iter()
            .flat_map(|(kind, p)| p.containers.iter().map(move |c| (kind, p, c)))
            .map(|(kind, process, container)| {
                json!({
                    "id": container.id,
                    "type": kind,
                    "type_index": container.index,
                    "label": format!("{kind}-{}", container.index),
                    "state": if container.booting { "booting" } else { "running" },
                    "created_at": rfc3339(container.created_at),
                    "container_size": {
                        "name": process.size,
                        "memory": memory(&process.size).unwrap_or(0),
                    },
                })
            })
            .collect();
        Ok(Json(json!({ "containers": containers })).into_response())
    })
}

/// `POST /v1/apps/{app}/scale`
async fn scale(
    State(fake): Fake,
    Path(key): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut ready_at = None;
    let response = fake.api(&method, &uri, &headers, |inner, now| {
        let scaled = inner.scale(&key, &body, now, fake.unix_ms(now))?;
        ready_at = scaled.ready_at;
        let app = inner.find(&key).ok_or(Refusal::NotFound("app"))?;
        let location = format!(
            "{}/v1/apps/{}/operations/{}",
            fake.url(),
            app.name,
            scaled.operation
        );
        let formation: Vec<Value> = app
            .processes
            .iter()
            .map(|(kind, p)| {
                json!({ "id": p.id, "name": kind, "amount": p.amount(), "size": p.size })
            })
            .collect();
        Ok((
            StatusCode::ACCEPTED,
            [(header::LOCATION, location)],
            Json(json!({ "containers": formation })),
        )
            .into_response())
    });
    // Also finish the boot on time when nobody reads the API, so the app's server comes up.
    if let Some(ready_at) = ready_at {
        let fake = Arc::clone(&fake);
        tokio::spawn(async move {
            tokio::time::sleep_until(ready_at).await;
            fake.lock().settle(Instant::now());
        });
    }
    response
}

/// `GET /v1/apps/{app}/operations/{id}`
async fn operation(
    State(fake): Fake,
    Path((key, id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    fake.api(&method, &uri, &headers, |inner, now| {
        let app = inner.find(&key).ok_or(Refusal::NotFound("app"))?;
        let op = inner
            .operations
            .iter()
            .find(|op| op.id == id && op.app_id == app.id)
            .ok_or(Refusal::NotFound("operation"))?;
        let status = if op.done_at <= now { "done" } else { "running" };
        Ok(Json(json!({
            "operation": { "id": op.id, "status": status, "type": "scale", "error": "" }
        }))
        .into_response())
    })
}

/// Any other route or method.
async fn not_found(State(fake): Fake, method: Method, uri: Uri) -> Response {
    fake.calls.record(method.as_str(), uri.path(), 404);
    Refusal::Error(StatusCode::NOT_FOUND, "not found".to_owned()).into_response()
}

/// A fresh id of 24 hex digits, like the platform's.
fn fresh_id(counter: &mut u128) -> String {
    *counter += 1;
    format!("{:024x}", 0x5e1a_c0de_0000_0000_0000_0000_u128 + *counter)
}

/// The memory of a container size, if the platform knows the size.
fn memory(size: &str) -> Option<u64> {
    SIZES
        .iter()
        .find(|(name, _)| *name == size)
        .map(|&(_, bytes)| bytes)
}

/// The token of `Authorization: Bearer <JWT>`, when it has the three parts of a JWT.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    let parts: Vec<&str> = token.split('.').collect();
    (scheme.eq_ignore_ascii_case("bearer")
        && parts.len() == 3
        && parts.iter().all(|p| !p.is_empty()))
    .then_some(token)
}

/// The password of `Authorization: Basic ...` when the user is empty.
fn basic_password(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    user.is_empty().then(|| password.to_owned())
}

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding.
fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let bits = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(BASE64URL[(bits >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// Decodes standard or URL-safe base64, padded or not.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6 | u32::from(value)) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits & 0xff) as u8);
        }
    }
    Some(out)
}

/// RFC 3339 in UTC with milliseconds, from Unix milliseconds.
fn rfc3339(unix_ms: u64) -> String {
    let (secs, millis) = (unix_ms / 1000, unix_ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
