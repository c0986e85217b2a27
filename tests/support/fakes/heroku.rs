//! Fake Heroku Platform API (`provider-apis.md`, "Heroku Platform API"): version-3 `Accept`
//! header and bearer token required, a `RateLimit-Remaining` budget, `Range`/`Next-Range`
//! pagination of `GET /apps`, formations that scale dynos (a process type the app does not
//! have is `404 Couldn't find that process type`), and dynos that boot for a while before
//! they are `up`. Each app is served by an [`AppServer`] that answers only while one
//! of its web dynos is up.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use axum::Router;
use axum::body::{Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{AppServer, Calls, serve};

/// Requests must accept this media type and version.
const MEDIA_TYPE: &str = "application/vnd.heroku+json";
/// Initial (and never refilled) rate-limit budget.
const RATE_LIMIT: u32 = 4500;
/// The platform's largest page.
const DEFAULT_PAGE_SIZE: usize = 1000;
const DEFAULT_BOOT_TIME: Duration = Duration::from_millis(300);
/// Most dynos a process type may run (keeps malformed requests from allocating without bound).
const MAX_QUANTITY: u32 = 100;
/// Largest request body read.
const MAX_BODY: usize = 64 * 1024;
/// The platform's `us` region.
const REGION_US: &str = "59accabd-516d-4f0e-83e6-6e3757701145";
/// Wall-clock time of the fake's start, for timestamps: 2024-05-01T12:00:00Z.
const EPOCH_UNIX_SECS: u64 = 1_714_564_800;

/// A running fake Heroku API.
pub struct FakeHeroku {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub calls: Arc<Calls>,
    shared: Arc<Shared>,
}

impl FakeHeroku {
    /// Starts the fake; `token` is the only valid bearer token.
    pub async fn start(token: &str) -> FakeHeroku {
        let calls = Arc::new(Calls::default());
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            calls: Arc::clone(&calls),
            platform: Mutex::new(Platform {
                apps: Vec::new(),
                boot_time: DEFAULT_BOOT_TIME,
                page_size: DEFAULT_PAGE_SIZE,
                rate_remaining: RATE_LIMIT,
                rng: fastrand::Rng::with_seed(0x4e70_6b75),
                epoch: Instant::now(),
                boots: Vec::new(),
            }),
        });
        let router = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let url = serve(router).await;
        FakeHeroku { url, calls, shared }
    }

    /// Adds an app with this formation (size `Basic`). Running: the quantities as given, dynos
    /// `up`, server up. Not running: every quantity 0, no dyno, server down.
    pub async fn add_app(&self, name: &str, formation: &[(&str, u32)], running: bool) -> AppServer {
        let server = AppServer::start(name, running).await;
        let mut platform = self.shared.lock();
        assert!(
            platform.find(name).is_err(),
            "fake heroku already has an app {name}"
        );
        let now = Instant::now();
        let stamp = platform.timestamp(now);
        let mut processes = BTreeMap::new();
        for &(kind, quantity) in formation {
            let mut process = Process {
                id: uuid(&mut platform.rng),
                quantity: 0,
                size: "Basic".to_owned(),
                command: command_for(kind),
                created_at: stamp.clone(),
                updated_at: stamp.clone(),
                dynos: Vec::new(),
            };
            if running {
                process.resize(quantity, now, &stamp, &mut platform.rng);
            }
            processes.insert(kind.to_owned(), process);
        }
        let app = App {
            id: uuid(&mut platform.rng),
            name: name.to_owned(),
            server: server.clone(),
            server_up: running,
            created_at: stamp,
            processes,
        };
        platform.apps.push(app);
        server
    }

    /// Current quantities per process type, sorted by type. Panics on an unknown app.
    pub fn formation(&self, app: &str) -> Vec<(String, u32)> {
        let platform = self.shared.lock();
        let index = platform
            .find(app)
            .unwrap_or_else(|_| panic!("fake heroku has no app {app}"));
        platform.apps[index]
            .processes
            .iter()
            .map(|(kind, process)| (kind.clone(), process.quantity))
            .collect()
    }

    /// Removes a process type, as a release whose Procfile no longer has it does (its dynos,
    /// if any, are gone with it): from now on a formation update naming it is refused 404.
    pub fn remove_process_type(&self, app: &str, kind: &str) {
        let mut platform = self.shared.lock();
        let index = platform
            .find(app)
            .unwrap_or_else(|_| panic!("fake heroku has no app {app}"));
        let app = &mut platform.apps[index];
        assert!(
            app.processes.remove(kind).is_some(),
            "{} has no process type {kind}",
            app.name
        );
        app.refresh(Instant::now());
    }

    /// Adds a process type at quantity 0, as a release whose Procfile has a new one does.
    pub fn add_process_type(&self, app: &str, kind: &str) {
        let mut platform = self.shared.lock();
        let index = platform
            .find(app)
            .unwrap_or_else(|_| panic!("fake heroku has no app {app}"));
        let stamp = platform.timestamp(Instant::now());
        let id = uuid(&mut platform.rng);
        let process = Process {
            id,
            quantity: 0,
            size: "Basic".to_owned(),
            command: command_for(kind),
            created_at: stamp.clone(),
            updated_at: stamp,
            dynos: Vec::new(),
        };
        let app = &mut platform.apps[index];
        assert!(
            app.processes.insert(kind.to_owned(), process).is_none(),
            "{} already has a process type {kind}",
            app.name
        );
    }

    /// Time between a scale-up and the new dynos being `up` (default 300 ms).
    pub fn set_boot_time(&self, d: Duration) {
        self.shared.lock().boot_time = d;
    }

    /// Largest page of `GET /apps` (default 1000).
    pub fn set_page_size(&self, n: usize) {
        self.shared.lock().page_size = n.max(1);
    }
}

/// What the HTTP handler and the boot timers share.
struct Shared {
    token: String,
    calls: Arc<Calls>,
    platform: Mutex<Platform>,
}

/// The account's state.
struct Platform {
    apps: Vec<App>,
    boot_time: Duration,
    page_size: usize,
    rate_remaining: u32,
    rng: fastrand::Rng,
    /// When the fake started (`EPOCH_UNIX_SECS` on the fake's clock).
    epoch: Instant,
    /// When dynos started by the current request will be up.
    boots: Vec<Instant>,
}

struct App {
    id: String,
    name: String,
    server: AppServer,
    /// Whether the fake last put `server` up (tests may flip the server themselves meanwhile).
    server_up: bool,
    created_at: String,
    /// Formation, by process type.
    processes: BTreeMap<String, Process>,
}

/// One process type of a formation, with its dynos (`<type>.1` to `<type>.<quantity>`).
struct Process {
    id: String,
    quantity: u32,
    size: String,
    command: String,
    created_at: String,
    updated_at: String,
    dynos: Vec<Dyno>,
}

struct Dyno {
    id: String,
    number: u32,
    created_at: String,
    /// `starting` before, `up` from then on.
    up_at: Instant,
}

/// Formation batch update (`PATCH /apps/{app}/formation`).
#[derive(Deserialize)]
struct BatchUpdate {
    updates: Vec<Update>,
}

#[derive(Deserialize)]
struct Update {
    #[serde(rename = "type")]
    kind: String,
    #[serde(flatten)]
    change: Change,
}

/// Formation update (`PATCH /apps/{app}/formation/{type}`).
#[derive(Deserialize)]
struct Change {
    quantity: Option<u32>,
    size: Option<String>,
}

/// A platform error: `{"id":"...","message":"..."}`.
struct ApiError {
    status: StatusCode,
    id: &'static str,
    message: String,
    /// The missing resource, for `not_found`.
    resource: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, id: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            id,
            message: message.into(),
            resource: None,
        }
    }

    fn not_found(resource: &'static str) -> ApiError {
        ApiError {
            resource: Some(resource),
            ..ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("Couldn't find that {resource}."),
            )
        }
    }

    /// What the platform answers for a process type the app does not have (the CLI shows
    /// it as "Couldn't find that process type (worker).").
    fn unknown_process_type(kind: &str) -> ApiError {
        ApiError {
            message: format!("Couldn't find that process type ({kind})."),
            ..ApiError::not_found("formation")
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "id": self.id, "message": self.message });
        if let Some(resource) = self.resource {
            body["resource"] = json!(resource);
            body["url"] = json!(format!(
                "https://devcenter.heroku.com/articles/platform-api-reference#{resource}"
            ));
        }
        (self.status, Json(body)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// Every request: injected faults, then the platform's checks, then the endpoint.
async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    if let Some(response) = shared.calls.injected(&method, &path) {
        return response;
    }
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, MAX_BODY).await.ok();
    let response = shared.answer(&method, &path, &parts.headers, body.as_ref());
    shared
        .calls
        .record(&method, &path, response.status().as_u16());
    response
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Platform> {
        self.platform.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn answer(
        self: &Arc<Self>,
        method: &str,
        path: &str,
        headers: &HeaderMap,
        body: Option<&Bytes>,
    ) -> Response {
        let mut platform = self.lock();
        let mut response = if !accepts_v3(headers) {
            ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                "not_acceptable",
                "Please specify a version along with Heroku's API MIME type. For example, \
                 `Accept: application/vnd.heroku+json; version=3`.",
            )
            .into_response()
        } else if !self.authorized(headers) {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Invalid credentials provided.",
            )
            .into_response()
        } else if platform.rate_remaining == 0 {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit",
                "Your account reached the API rate limit. Please wait a few minutes before \
                 making new requests.",
            )
            .into_response()
        } else {
            platform.rate_remaining -= 1;
            let now = Instant::now();
            platform.refresh(now);
            platform
                .route(method, path, headers, body, now)
                .unwrap_or_else(IntoResponse::into_response)
        };
        response.headers_mut().insert(
            "ratelimit-remaining",
            HeaderValue::from(platform.rate_remaining),
        );
        for up_at in std::mem::take(&mut platform.boots) {
            self.refresh_at(up_at);
        }
        response
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        match value.trim().split_once(' ') {
            Some((scheme, token)) => {
                scheme.eq_ignore_ascii_case("bearer") && token.trim() == self.token
            }
            None => false,
        }
    }

    /// Updates the app servers once dynos starting now are up.
    fn refresh_at(self: &Arc<Self>, at: Instant) {
        let shared: Weak<Shared> = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            if let Some(shared) = shared.upgrade() {
                shared.lock().refresh(Instant::now());
            }
        });
    }
}

impl Platform {
    fn route(
        &mut self,
        method: &str,
        path: &str,
        headers: &HeaderMap,
        body: Option<&Bytes>,
        now: Instant,
    ) -> ApiResult {
        let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
        match (method, segments.as_slice()) {
            ("GET", ["apps"]) => Ok(self.list_apps(headers)),
            ("GET", ["apps", app]) => {
                let app = &self.apps[self.find(app)?];
                Ok(Json(app.json()).into_response())
            }
            ("GET", ["apps", app, "formation"]) => {
                let app = &self.apps[self.find(app)?];
                Ok(Json(app.formation_json()).into_response())
            }
            ("GET", ["apps", app, "formation", kind]) => {
                let app = &self.apps[self.find(app)?];
                let process = app
                    .processes
                    .get(*kind)
                    .ok_or_else(|| ApiError::unknown_process_type(kind))?;
                Ok(Json(app.process_json(kind, process)).into_response())
            }
            ("PATCH", ["apps", app, "formation"]) => {
                let batch: BatchUpdate = parse_json(headers, body)?;
                let updates = batch
                    .updates
                    .into_iter()
                    .map(|update| (update.kind, update.change))
                    .collect::<Vec<_>>();
                let index = self.find(app)?;
                self.scale(index, &updates, now)?;
                Ok(Json(self.apps[index].formation_json()).into_response())
            }
            ("PATCH", ["apps", app, "formation", kind]) => {
                let change: Change = parse_json(headers, body)?;
                let index = self.find(app)?;
                self.scale(index, &[(kind.to_string(), change)], now)?;
                let app = &self.apps[index];
                let process = app
                    .processes
                    .get(*kind)
                    .ok_or_else(|| ApiError::unknown_process_type(kind))?;
                Ok(Json(app.process_json(kind, process)).into_response())
            }
            ("GET", ["apps", app, "dynos"]) => {
                let app = &self.apps[self.find(app)?];
                let dynos = app
                    .dynos()
                    .map(|(kind, process, dyno)| app.dyno_json(kind, process, dyno, now))
                    .collect();
                Ok(Json(Value::Array(dynos)).into_response())
            }
            ("GET", ["apps", app, "dynos", name]) => {
                let app = &self.apps[self.find(app)?];
                let dyno = app
                    .dynos()
                    .find(|(kind, _, dyno)| {
                        dyno.id == *name || format!("{kind}.{}", dyno.number) == *name
                    })
                    .map(|(kind, process, dyno)| app.dyno_json(kind, process, dyno, now))
                    .ok_or(ApiError::not_found("dyno"))?;
                Ok(Json(dyno).into_response())
            }
            _ => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "The requested API endpoint was not found. Are you using the right HTTP verb \
                 (i.e. `GET` vs. `POST`), and did you specify your intended version with the \
                 `Accept` header?",
            )),
        }
    }

    /// `GET /apps`: one page, `206` with `Next-Range` while more remain.
    fn list_apps(&self, headers: &HeaderMap) -> Response {
        let range = PageRange::parse(
            headers
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        );
        let mut apps: Vec<&App> = self.apps.iter().collect();
        apps.sort_by(|a, b| range.field.key(a).cmp(range.field.key(b)));
        if range.descending {
            apps.reverse();
        }
        apps.retain(|app| range.admits(range.field.key(app)));
        let max = range.max.unwrap_or(self.page_size);
        let size = max.min(self.page_size);
        let more = apps.len() > size;
        apps.truncate(size);

        let field = range.field.name();
        let mut response =
            Json(Value::Array(apps.iter().map(|app| app.json()).collect())).into_response();
        if let (Some(first), Some(last)) = (apps.first(), apps.last()) {
            let (first, last) = (range.field.key(first), range.field.key(last));
            insert_header(
                &mut response,
                "content-range",
                &format!("{field} {first}..{last}"),
            );
            if more {
                *response.status_mut() = StatusCode::PARTIAL_CONTENT;
                let order = if range.descending { ", order=desc" } else { "" };
                let next = format!("{field} ]{last}..; max={max}{order}");
                insert_header(&mut response, "next-range", &next);
            }
        }
        response
    }

    /// Applies formation changes to app `index`, all or none.
    fn scale(
        &mut self,
        index: usize,
        updates: &[(String, Change)],
        now: Instant,
    ) -> Result<(), ApiError> {
        let app = &self.apps[index];
        for (kind, change) in updates {
            if !app.processes.contains_key(kind) {
                return Err(ApiError::unknown_process_type(kind));
            }
            if change.quantity.is_some_and(|q| q > MAX_QUANTITY) {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_params",
                    format!("Cannot scale {kind} to more than {MAX_QUANTITY} dynos."),
                ));
            }
            if change
                .size
                .as_deref()
                .is_some_and(|size| size.trim().is_empty())
            {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_params",
                    "Size must not be empty.",
                ));
            }
        }
        let stamp = self.timestamp(now);
        let up_at = now + self.boot_time;
        let app = &mut self.apps[index];
        for (kind, change) in updates {
            let Some(process) = app.processes.get_mut(kind) else {
                continue;
            };
            if let Some(size) = &change.size
                && *size != process.size
            {
                process.size.clone_from(size);
                process.updated_at.clone_from(&stamp);
            }
            if let Some(quantity) = change.quantity
                && process.resize(quantity, up_at, &stamp, &mut self.rng)
            {
                self.boots.push(up_at);
            }
        }
        app.refresh(now);
        Ok(())
    }

    /// Index of the app with this name or id.
    fn find(&self, key: &str) -> Result<usize, ApiError> {
        self.apps
            .iter()
            .position(|app| app.name == key || app.id == key)
            .ok_or(ApiError::not_found("app"))
    }

    /// Puts app servers up or down as their web dynos are.
    fn refresh(&mut self, now: Instant) {
        for app in &mut self.apps {
            app.refresh(now);
        }
    }

    fn timestamp(&self, at: Instant) -> String {
        timestamp(EPOCH_UNIX_SECS + at.saturating_duration_since(self.epoch).as_secs())
    }
}

impl App {
    /// Whether a web dyno is up.
    fn web_up(&self, now: Instant) -> bool {
        self.processes
            .get("web")
            .is_some_and(|web| web.dynos.iter().any(|dyno| dyno.up_at <= now))
    }

    /// Puts the server up or down when the web dynos changed since last time.
    fn refresh(&mut self, now: Instant) {
        let up = self.web_up(now);
        if up != self.server_up {
            self.server_up = up;
            self.server.set_up(up);
        }
    }

    /// Every dyno, by type then number.
    fn dynos(&self) -> impl Iterator<Item = (&str, &Process, &Dyno)> {
        self.processes.iter().flat_map(|(kind, process)| {
            process
                .dynos
                .iter()
                .map(move |dyno| (kind.as_str(), process, dyno))
        })
    }

    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "web_url": format!("{}/", self.server.url),
            "region": { "id": REGION_US, "name": "us" },
            "maintenance": false,
            "released_at": self.created_at,
            "created_at": self.created_at,
            "updated_at": self.created_at,
        })
    }

    fn formation_json(&self) -> Value {
        self.processes
            .iter()
            .map(|(kind, process)| self.process_json(kind, process))
            .collect()
    }

    fn process_json(&self, kind: &str, process: &Process) -> Value {
        json!({
            "app": { "id": self.id, "name": self.name },
            "id": process.id,
            "type": kind,
            "quantity": process.quantity,
            "size": process.size,
            "command": process.command,
            "created_at": process.created_at,
            "updated_at": process.updated_at,
        })
    }

    fn dyno_json(&self, kind: &str, process: &Process, dyno: &Dyno, now: Instant) -> Value {
        let state = if dyno.up_at <= now { "up" } else { "starting" };
        json!({
            "app": { "id": self.id, "name": self.name },
            "attach_url": null,
            "id": dyno.id,
            "name": format!("{kind}.{}", dyno.number),
            "type": kind,
            "state": state,
            "size": process.size,
            "command": process.command,
            "created_at": dyno.created_at,
            "updated_at": dyno.created_at,
        })
    }
}

impl Process {
    /// Sets the quantity: extra dynos disappear at once, new ones are up at `up_at`.
    /// Returns whether dynos were started.
    fn resize(
        &mut self,
        quantity: u32,
        up_at: Instant,
        stamp: &str,
        rng: &mut fastrand::Rng,
    ) -> bool {
        if quantity == self.quantity {
            return false;
        }
        let running = u32::try_from(self.dynos.len()).unwrap_or(u32::MAX);
        self.dynos.retain(|dyno| dyno.number <= quantity);
        for number in running + 1..=quantity {
            self.dynos.push(Dyno {
                id: uuid(rng),
                number,
                created_at: stamp.to_owned(),
                up_at,
            });
        }
        self.quantity = quantity;
        self.updated_at = stamp.to_owned();
        quantity > running
    }
}

/// A parsed `Range` header: `id ..; max=200`, `id ]<id>..; max=200, order=desc`.
/// Whatever cannot be parsed falls back to the defaults (all apps by id, ascending).
#[derive(Default)]
struct PageRange {
    field: Field,
    /// First key, and whether it is excluded (`]`).
    start: Option<(String, bool)>,
    max: Option<usize>,
    descending: bool,
}

#[derive(Default, Clone, Copy)]
enum Field {
    #[default]
    Id,
    Name,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::Name => "name",
        }
    }

    fn key(self, app: &App) -> &str {
        match self {
            Field::Id => &app.id,
            Field::Name => &app.name,
        }
    }
}

impl PageRange {
    fn parse(header: &str) -> PageRange {
        let mut range = PageRange::default();
        let (bounds, params) = header.split_once(';').unwrap_or((header, ""));
        let mut words = bounds.split_whitespace();
        if words.next() == Some("name") {
            range.field = Field::Name;
        }
        if let Some(span) = words.next() {
            let start = span.split_once("..").map_or(span, |(start, _)| start);
            let (start, exclusive) = match start.strip_prefix(']') {
                Some(start) => (start, true),
                None => (start, false),
            };
            if !start.is_empty() {
                range.start = Some((start.to_owned(), exclusive));
            }
        }
        for param in params.split([',', ';']) {
            match param.trim().split_once('=') {
                Some(("max", n)) => range.max = n.trim().parse().ok().filter(|&n| n > 0),
                Some(("order", order)) => range.descending = order.trim() == "desc",
                _ => {}
            }
        }
        range
    }

    /// Whether `key` is at or after the start, in the range's order.
    fn admits(&self, key: &str) -> bool {
        let Some((start, exclusive)) = &self.start else {
            return true;
        };
        let order = key.cmp(start.as_str());
        let order = if self.descending {
            order.reverse()
        } else {
            order
        };
        order.is_gt() || (!exclusive && order.is_eq())
    }
}

/// Whether the `Accept` header asks for `application/vnd.heroku+json; version=3`.
fn accepts_v3(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|media| {
            let mut parts = media.split(';').map(str::trim);
            parts.next() == Some(MEDIA_TYPE)
                && parts.any(|param| {
                    param.split_once('=').is_some_and(|(name, value)| {
                        name.trim() == "version" && value.trim() == "3"
                    })
                })
        })
}

/// The JSON body, which must be declared `application/json`.
fn parse_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Option<&Bytes>,
) -> Result<T, ApiError> {
    let declared_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !declared_json {
        return Err(ApiError::bad_request(
            "Request body must be JSON, with `Content-Type: application/json`.",
        ));
    }
    let body =
        body.ok_or_else(|| ApiError::bad_request("Request body is unreadable or too large."))?;
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}.")))
}

fn insert_header(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

/// The command of a process type, as a Node app's Procfile would have it.
fn command_for(kind: &str) -> String {
    match kind {
        "web" => "npm start".to_owned(),
        other => format!("npm run {other}"),
    }
}

/// A random (seeded) version-4 UUID.
fn uuid(rng: &mut fastrand::Rng) -> String {
    let bits = (rng.u128(..) & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the Unix epoch.
fn timestamp(unix_secs: u64) -> String {
    let (days, secs) = (unix_secs / 86_400, unix_secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}
