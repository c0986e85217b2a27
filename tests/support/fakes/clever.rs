//! Fake Clever Cloud API v2 (`/v2/...`), as described in `provider-apis.md`.
//!
//! Accepts OAuth 1.0a PLAINTEXT and bearer API tokens on the same base URL, lists the user's
//! and organisations' applications as bare arrays, and starts (`POST .../instances`) and stops
//! (`DELETE .../instances`) apps. A start is a deployment that stays `WIP` for the boot time
//! (app `WANTS_TO_BE_UP`, no instance) and then ends `OK` (app `SHOULD_BE_UP`, instances `UP`,
//! app server answering) or `FAIL` (app still `WANTS_TO_BE_UP`, no instance). Boots settle
//! when the fake is read after their deadline (compared with `tokio::time::Instant`, so
//! results are deterministic), and a timer settles them on time for the app server too.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{AppServer, Calls, serve};

/// Valid credentials: OAuth 1.0a (PLAINTEXT) and a bearer API token; both accepted on the same
/// base URL.
#[derive(Debug, Clone)]
pub struct CleverCredentials {
    pub consumer_key: String,
    pub consumer_secret: String,
    pub token: String,
    pub secret: String,
    pub api_token: String,
}

/// A running fake Clever Cloud API.
pub struct FakeClever {
    /// Base URL (`http://127.0.0.1:PORT`); API paths start with `/v2/`.
    pub url: String,
    pub calls: Arc<Calls>,
    shared: Arc<Shared>,
}

/// What the HTTP handler and the test-facing methods share.
struct Shared {
    credentials: CleverCredentials,
    calls: Arc<Calls>,
    world: Mutex<World>,
}

/// The platform's state.
struct World {
    user_id: String,
    /// Organisations, in the order they were first given to `add_app`.
    organisations: Vec<String>,
    apps: Vec<App>,
    boot_time: Duration,
    fail_next_start: bool,
}

/// Who owns an app, and so which paths reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    User,
    Organisation(String),
}

struct App {
    id: String,
    name: String,
    owner: Owner,
    min_instances: u32,
    state: &'static str,
    /// Instances `UP` (the only ones the API lists).
    instances: Vec<Instance>,
    /// Oldest first.
    deployments: Vec<Deployment>,
    /// The deployment in progress, if any (it is the last of `deployments`).
    boot: Option<Boot>,
    server: AppServer,
    creation_date: u64,
}

struct Instance {
    id: String,
    deploy_number: u64,
}

struct Deployment {
    id: u64,
    uuid: String,
    state: &'static str,
    action: &'static str,
    date: u64,
}

struct Boot {
    ready_at: Instant,
    fails: bool,
}

const SHOULD_BE_UP: &str = "SHOULD_BE_UP";
const SHOULD_BE_DOWN: &str = "SHOULD_BE_DOWN";
const WANTS_TO_BE_UP: &str = "WANTS_TO_BE_UP";

impl FakeClever {
    pub async fn start(credentials: CleverCredentials) -> FakeClever {
        let calls = Arc::new(Calls::default());
        let shared = Arc::new(Shared {
            credentials,
            calls: Arc::clone(&calls),
            world: Mutex::new(World {
                user_id: format!("user_{}", uuid()),
                organisations: Vec::new(),
                apps: Vec::new(),
                boot_time: Duration::from_millis(300),
                fail_next_start: false,
            }),
        });
        let router = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let url = serve(router).await;
        FakeClever { url, calls, shared }
    }

    /// Adds an app to the user's own applications (`/v2/self/...`) or, with
    /// `organisation: Some("orga_...")`, to that organisation. `instances`: minInstances when up
    /// (at least 1). `running`: `SHOULD_BE_UP` with that many instances `UP` and the app server
    /// up; else `SHOULD_BE_DOWN`, no instance, app server down. Returns the app id
    /// (`app_<uuid>`) and its server, whose `host:port` is the app's only vhost.
    pub async fn add_app(
        &self,
        name: &str,
        organisation: Option<&str>,
        instances: u32,
        running: bool,
    ) -> (String, AppServer) {
        let server = AppServer::start(name, running).await;
        let id = format!("app_{}", uuid());
        let min_instances = instances.max(1);
        let owner = match organisation {
            Some(orga) => Owner::Organisation(orga.to_owned()),
            None => Owner::User,
        };
        let mut app = App {
            id: id.clone(),
            name: name.to_owned(),
            owner: owner.clone(),
            min_instances,
            state: SHOULD_BE_DOWN,
            instances: Vec::new(),
            deployments: Vec::new(),
            boot: None,
            server: server.clone(),
            creation_date: epoch_ms(),
        };
        if running {
            app.state = SHOULD_BE_UP;
            app.instances = new_instances(min_instances, 0);
        }
        let mut world = self.shared.world();
        if let Owner::Organisation(orga) = owner
            && !world.organisations.contains(&orga)
        {
            world.organisations.push(orga);
        }
        world.apps.push(app);
        (id, server)
    }

    /// Deletes an app (its id is gone: `404 Application not found`); its server stops
    /// answering. Panics on an unknown app id.
    pub fn delete_app(&self, app_id: &str) {
        let mut world = self.shared.world();
        let index = world
            .apps
            .iter()
            .position(|app| app.id == app_id)
            .unwrap_or_else(|| panic!("FakeClever has no app {app_id}"));
        let app = world.apps.remove(index);
        app.server.set_up(false);
    }

    /// Number of `UP` instances of an app now. Panics on an unknown app id.
    pub fn instances(&self, app_id: &str) -> usize {
        let mut world = self.shared.world();
        let now = Instant::now();
        let app = world
            .apps
            .iter_mut()
            .find(|app| app.id == app_id)
            .unwrap_or_else(|| panic!("FakeClever has no app {app_id}"));
        app.settle(now);
        app.instances.len()
    }

    /// Time between `POST .../instances` and the instances being `UP` (default 300 ms).
    pub fn set_boot_time(&self, d: Duration) {
        self.shared.world().boot_time = d;
    }

    /// Makes the next start fail: its deployment ends `FAIL`, the app stays `WANTS_TO_BE_UP`
    /// with no instance.
    pub fn fail_next_start(&self) {
        self.shared.world().fail_next_start = true;
    }
}

impl Shared {
    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the `Authorization` header carries valid bearer or OAuth PLAINTEXT credentials.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("Bearer") {
            !rest.trim().is_empty() && rest.trim() == self.credentials.api_token
        } else if scheme.eq_ignore_ascii_case("OAuth") {
            parse_oauth(rest).is_some_and(|params| self.oauth_valid(&params))
        } else {
            false
        }
    }

    /// Checks decoded OAuth 1.0a parameters against the credentials (PLAINTEXT only).
    fn oauth_valid(&self, params: &[(String, String)]) -> bool {
        let get = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let credentials = &self.credentials;
        let version_ok = get("oauth_version").is_none_or(|v| v == "1.0");
        let timestamp_ok = get("oauth_timestamp")
            .is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()));
        let nonce_ok = get("oauth_nonce").is_some_and(|n| !n.is_empty());
        // The PLAINTEXT signature is `encode(consumer_secret)&encode(token_secret)`.
        let signature_ok = get("oauth_signature")
            .and_then(|s| s.split_once('&'))
            .and_then(|(c, t)| Some((percent_decode(c)?, percent_decode(t)?)))
            .is_some_and(|(c, t)| c == credentials.consumer_secret && t == credentials.secret);
        get("oauth_consumer_key") == Some(credentials.consumer_key.as_str())
            && get("oauth_token") == Some(credentials.token.as_str())
            && get("oauth_signature_method") == Some("PLAINTEXT")
            && signature_ok
            && version_ok
            && timestamp_ok
            && nonce_ok
    }
}

/// Parses `key="value", key2="value2"` (values and keys percent-encoded). `None` when
/// malformed or when a parameter is repeated.
fn parse_oauth(params: &str) -> Option<Vec<(String, String)>> {
    let mut parsed: Vec<(String, String)> = Vec::new();
    for pair in params.split(',') {
        let (key, value) = pair.trim().split_once('=')?;
        let value = value.trim().strip_prefix('"')?.strip_suffix('"')?;
        let key = percent_decode(key.trim())?;
        if parsed.iter().any(|(k, _)| *k == key) {
            return None;
        }
        parsed.push((key, percent_decode(value)?));
    }
    Some(parsed)
}

/// RFC 3986 percent-decoding; `None` on a bad escape or non-UTF-8 result.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl App {
    /// Ends the boot in progress if its time has come.
    fn settle(&mut self, now: Instant) {
        let Some(boot) = self.boot.take_if(|boot| now >= boot.ready_at) else {
            return;
        };
        let deploy_number = self.deployments.last().map_or(0, |d| d.id);
        if let Some(deployment) = self.deployments.last_mut() {
            deployment.state = if boot.fails { "FAIL" } else { "OK" };
        }
        if boot.fails {
            // A failed redeploy of a running app keeps its old instances; a failed start
            // leaves the app wanting to be up, without instance.
            return;
        }
        self.state = SHOULD_BE_UP;
        self.instances = new_instances(self.min_instances, deploy_number);
        self.server.set_up(true);
    }

    /// Handles `POST .../instances`: returns the deployment's uuid and, when a new one was
    /// queued, when it will end.
    fn start(&mut self, boot_time: Duration, fails: bool) -> (String, Option<Instant>) {
        if self.boot.is_some() {
            // Already deploying: the deployment in progress goes on.
            if let Some(deployment) = self.deployments.last() {
                return (deployment.uuid.clone(), None);
            }
        }
        if self.state != SHOULD_BE_UP {
            self.state = WANTS_TO_BE_UP;
        }
        let uuid = uuid();
        self.push_deployment(uuid.clone(), "WIP", "DEPLOY");
        let ready_at = Instant::now() + boot_time;
        self.boot = Some(Boot { ready_at, fails });
        (uuid, Some(ready_at))
    }

    /// Stops the app at once (`DELETE .../instances`).
    fn stop(&mut self) {
        if self.boot.take().is_some()
            && let Some(deployment) = self.deployments.last_mut()
        {
            deployment.state = "CANCELLED";
        }
        if self.state != SHOULD_BE_DOWN {
            self.push_deployment(uuid(), "OK", "UNDEPLOY");
        }
        self.state = SHOULD_BE_DOWN;
        self.instances.clear();
        self.server.set_up(false);
    }

    fn push_deployment(&mut self, uuid: String, state: &'static str, action: &'static str) {
        let id = self.deployments.last().map_or(1, |d| d.id + 1);
        self.deployments.push(Deployment {
            id,
            uuid,
            state,
            action,
            date: epoch_ms(),
        });
    }

    fn json(&self) -> Value {
        let fqdn = self
            .server
            .url
            .strip_prefix("http://")
            .unwrap_or(&self.server.url);
        json!({
            "id": self.id,
            "name": self.name,
            "zone": "par",
            "state": self.state,
            "homogeneous": false,
            "forceHttps": "DISABLED",
            "instance": {
                "minInstances": self.min_instances,
                "maxInstances": self.min_instances.max(2),
                "minFlavor": {"name": "XS"},
            },
            "vhosts": [{"fqdn": fqdn}],
            "creationDate": self.creation_date,
        })
    }

    fn instances_json(&self) -> Value {
        self.instances
            .iter()
            .map(|instance| {
                json!({
                    "id": instance.id,
                    "appId": self.id,
                    "state": "UP",
                    "flavor": {"name": "XS", "price": 0.34},
                    "deployNumber": instance.deploy_number,
                })
            })
            .collect()
    }

    /// Newest first, at most `limit`.
    fn deployments_json(&self, limit: usize) -> Value {
        self.deployments
            .iter()
            .rev()
            .take(limit)
            .map(|d| {
                json!({
                    "id": d.id,
                    "uuid": d.uuid,
                    "state": d.state,
                    "action": d.action,
                    "date": d.date,
                })
            })
            .collect()
    }
}

impl World {
    fn settle_all(&mut self, now: Instant) {
        for app in &mut self.apps {
            app.settle(now);
        }
    }

    fn apps_of(&self, owner: &Owner) -> Value {
        self.apps
            .iter()
            .filter(|app| app.owner == *owner)
            .map(App::json)
            .collect()
    }
}

type Answer = (StatusCode, Value);

fn error(status: StatusCode, id: u32, message: &str) -> Answer {
    (
        status,
        json!({"id": id, "message": message, "type": "error"}),
    )
}

fn not_found() -> Answer {
    error(StatusCode::NOT_FOUND, 4004, "Not Found")
}

/// The only handler: injected faults, auth, then routing by path segments.
async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path();
    if let Some(response) = shared.calls.injected(method.as_str(), path) {
        return response;
    }
    let (status, body) = match path.strip_prefix("/v2/") {
        None => not_found(),
        Some(_) if !shared.authorized(&headers) => {
            error(StatusCode::UNAUTHORIZED, 4001, "Not authorized")
        }
        Some(rest) => route(&shared, method.as_str(), rest, uri.query()),
    };
    shared.calls.record(method.as_str(), path, status.as_u16());
    (status, axum::Json(body)).into_response()
}

/// Answers an authorized call to `/v2/{rest}`.
fn route(shared: &Arc<Shared>, method: &str, rest: &str, query: Option<&str>) -> Answer {
    let segments: Vec<&str> = rest.split('/').collect();
    let mut world = shared.world();
    world.settle_all(Instant::now());
    let (owner, rest) = match segments.as_slice() {
        ["summary"] if method == "GET" => return summary(&world),
        ["self", rest @ ..] => (Owner::User, rest),
        ["organisations", orga, rest @ ..] => {
            if !world.organisations.iter().any(|o| o == orga) {
                return error(StatusCode::NOT_FOUND, 4004, "Organisation not found");
            }
            (Owner::Organisation((*orga).to_owned()), rest)
        }
        _ => return not_found(),
    };
    let app_id = match rest {
        ["applications"] if method == "GET" => {
            return (StatusCode::OK, world.apps_of(&owner));
        }
        ["applications", app_id, ..] => *app_id,
        _ => return not_found(),
    };
    let boot_time = world.boot_time;
    let fail_next_start = world.fail_next_start;
    let Some(app) = world
        .apps
        .iter_mut()
        .find(|app| app.id == app_id && app.owner == owner)
    else {
        return error(StatusCode::NOT_FOUND, 4004, "Application not found");
    };
    match (method, &rest[2..]) {
        ("GET", []) => (StatusCode::OK, app.json()),
        ("GET", ["instances"]) => (StatusCode::OK, app.instances_json()),
        ("POST", ["instances"]) => {
            let (deployment_id, queued) = app.start(boot_time, fail_next_start);
            if let Some(ready_at) = queued {
                world.fail_next_start = false;
                settle_at(shared, ready_at);
            }
            (
                StatusCode::OK,
                json!({
                    "id": 1,
                    "message": "The application has successfully been queued for redeploy.",
                    "type": "success",
                    "deploymentId": deployment_id,
                }),
            )
        }
        ("DELETE", ["instances"]) => {
            app.stop();
            (
                StatusCode::OK,
                json!({"id": 2, "message": "The application has been stopped", "type": "success"}),
            )
        }
        ("GET", ["deployments"]) => match deployments_limit(query) {
            Some(limit) => (StatusCode::OK, app.deployments_json(limit)),
            None => error(StatusCode::BAD_REQUEST, 4000, "Invalid limit"),
        },
        _ => not_found(),
    }
}

fn summary(world: &World) -> Answer {
    let organisations: Vec<Value> = world
        .organisations
        .iter()
        .map(|orga| {
            json!({
                "id": orga,
                "applications": world.apps_of(&Owner::Organisation(orga.clone())),
            })
        })
        .collect();
    (
        StatusCode::OK,
        json!({
            "user": {"id": world.user_id, "applications": world.apps_of(&Owner::User)},
            "organisations": organisations,
        }),
    )
}

/// The `limit` query parameter (all deployments when absent); `None` when not a number.
fn deployments_limit(query: Option<&str>) -> Option<usize> {
    let limit = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("limit="));
    match limit {
        Some(limit) => limit.parse().ok(),
        None => Some(usize::MAX),
    }
}

/// Settles boots at `ready_at` even if nobody reads the API, so the app server comes up on time.
fn settle_at(shared: &Arc<Shared>, ready_at: Instant) {
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        tokio::time::sleep_until(ready_at).await;
        shared.world().settle_all(Instant::now());
    });
}

fn new_instances(count: u32, deploy_number: u64) -> Vec<Instance> {
    (0..count)
        .map(|_| Instance {
            id: uuid(),
            deploy_number,
        })
        .collect()
}

/// A random UUID v4 string.
fn uuid() -> String {
    let mut b = fastrand::u128(..).to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Now, in milliseconds since the Unix epoch.
fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
