//! Fake Render REST API v1 (`provider-apis.md`, "Render"; api-docs.render.com): bearer API
//! key (401 `{"id":"unauthorized"}` otherwise), `GET /services` as an array of
//! `{cursor, service}` pages (`limit` up to a maximum, `cursor` of the last entry seen,
//! `ownerId` filter), `GET /services/{id}`, `POST /services/{id}/suspend|resume` (202, empty
//! body), `POST /services/{id}/scale`, and `GET /services/{id}/deploys` (newest first). A
//! resume creates a deploy (trigger `service_resumed`) that goes `build_in_progress`,
//! `update_in_progress`, then `live` (or `update_failed` when told). Rate limits as
//! documented: reads share one budget, suspend and resume have one per service, other
//! writes one; every answer carries `Ratelimit-Limit`, `Ratelimit-Remaining` and
//! `Ratelimit-Reset` (UTC epoch seconds), and a spent budget is `429
//! {"id":"rate_limited"}` with `Retry-After`. Each web service is served by an
//! [`AppServer`] that answers only while the service runs a live deploy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{AppServer, Calls, serve};

/// The platform's largest page.
const DEFAULT_MAX_LIMIT: usize = 100;
/// The page size when `limit` is not given.
const DEFAULT_LIMIT: usize = 20;
const DEFAULT_BOOT_TIME: Duration = Duration::from_millis(300);
/// Documented budgets: all GETs 400 a minute; suspend/resume 10 a minute per service;
/// other writes 30 a minute.
const READ_LIMIT: u32 = 400;
const SERVICE_ACTION_LIMIT: u32 = 10;
const WRITE_LIMIT: u32 = 30;
const LARGEST_BODY: usize = 64 * 1024;
/// Most instances a service may be scaled to.
const MAX_INSTANCES: u32 = 100;

/// A running fake Render API.
pub struct FakeRender {
    /// `http://127.0.0.1:PORT` (the provider's `api_url`).
    pub url: String,
    pub calls: Arc<Calls>,
    shared: Arc<Shared>,
}

struct Shared {
    token: String,
    calls: Arc<Calls>,
    platform: Mutex<Platform>,
}

struct Platform {
    services: Vec<Service>,
    /// Entries listed as they are, beside the services (odd ones, for tolerance tests).
    raw: Vec<Value>,
    max_limit: usize,
    boot_time: Duration,
    /// The next resumes' deploys fail (`update_failed`).
    failing_resumes: usize,
    /// Budget per group of endpoints, and its window.
    budgets: HashMap<String, Budget>,
    read_limit: u32,
    service_action_limit: u32,
    window: Duration,
    next_id: u64,
}

struct Budget {
    limit: u32,
    used: u32,
    /// When the window began.
    since: Instant,
}

struct Service {
    id: String,
    name: String,
    kind: String,
    owner: String,
    suspended: bool,
    plan: String,
    num_instances: u32,
    server: Option<AppServer>,
    /// Newest last.
    deploys: Vec<Deploy>,
}

struct Deploy {
    id: String,
    trigger: &'static str,
    created: Instant,
    fails: bool,
}

/// The owner of services added without one.
pub const OWNER: &str = "tea-fakeworkspace";

impl FakeRender {
    /// Starts the fake; `token` is the only valid API key.
    pub async fn start(token: &str) -> FakeRender {
        let calls = Arc::new(Calls::default());
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            calls: Arc::clone(&calls),
            platform: Mutex::new(Platform {
                services: Vec::new(),
                raw: Vec::new(),
                max_limit: DEFAULT_MAX_LIMIT,
                boot_time: DEFAULT_BOOT_TIME,
                failing_resumes: 0,
                budgets: HashMap::new(),
                read_limit: READ_LIMIT,
                service_action_limit: SERVICE_ACTION_LIMIT,
                window: Duration::from_secs(60),
                next_id: 1,
            }),
        });
        let router = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let url = serve(router).await;
        FakeRender { url, calls, shared }
    }

    /// Adds a service of `kind` (`web_service`, `private_service`, `background_worker`, ...)
    /// with one live deploy, plan `starter` and one instance; suspended or running. Returns
    /// its id and the server behind its URL (web and private services).
    pub async fn add_service(
        &self,
        name: &str,
        kind: &str,
        suspended: bool,
    ) -> (String, AppServer) {
        self.add_service_of(name, kind, OWNER, suspended).await
    }

    /// [`FakeRender::add_service`] in the workspace `owner`.
    pub async fn add_service_of(
        &self,
        name: &str,
        kind: &str,
        owner: &str,
        suspended: bool,
    ) -> (String, AppServer) {
        let server = AppServer::start(name, !suspended).await;
        let mut platform = self.shared.lock();
        let id = format!("srv-{:020x}", platform.next_id * 0x9e37_79b9);
        let deploy = platform.new_deploy("new_commit", Instant::now() - Duration::from_secs(3600));
        platform.services.push(Service {
            id: id.clone(),
            name: name.to_owned(),
            kind: kind.to_owned(),
            owner: owner.to_owned(),
            suspended,
            plan: "starter".to_owned(),
            num_instances: 1,
            server: matches!(kind, "web_service" | "private_service").then(|| server.clone()),
            deploys: vec![deploy],
        });
        (id, server)
    }

    /// Lists this entry as it is, after the services (an odd one).
    pub fn add_raw_entry(&self, entry: Value) {
        self.shared.lock().raw.push(entry);
    }

    pub fn is_suspended(&self, id: &str) -> bool {
        self.with(id, |service| service.suspended)
    }

    pub fn instances(&self, id: &str) -> u32 {
        self.with(id, |service| service.num_instances)
    }

    /// Sets the instance count (as a scale from the dashboard would).
    pub fn set_instances(&self, id: &str, n: u32) {
        self.with_mut(id, |service| service.num_instances = n);
    }

    /// Sets the instance type.
    pub fn set_plan(&self, id: &str, plan: &str) {
        self.with_mut(id, |service| service.plan = plan.to_owned());
    }

    /// Statuses of the service's deploys, newest first.
    pub fn deploy_statuses(&self, id: &str) -> Vec<String> {
        let now = Instant::now();
        let platform = self.shared.lock();
        let boot = platform.boot_time;
        let index = platform.find(id).expect("a known service");
        let service = &platform.services[index];
        (0..service.deploys.len())
            .rev()
            .map(|i| service.deploy_status(i, now, boot).to_owned())
            .collect()
    }

    /// Largest `limit` of `GET /services` (default 100).
    pub fn set_max_limit(&self, n: usize) {
        self.shared.lock().max_limit = n.max(1);
    }

    /// Time from a resume to its deploy being `live` (default 300 ms).
    pub fn set_boot_time(&self, d: Duration) {
        self.shared.lock().boot_time = d;
    }

    /// The next `n` resumes' deploys fail (`update_failed`).
    pub fn fail_next_resumes(&self, n: usize) {
        self.shared.lock().failing_resumes = n;
    }

    /// Budgets: reads, and suspend/resume per service, per `window` (default 400 and 10
    /// per minute).
    pub fn set_rate_limits(&self, reads: u32, service_actions: u32, window: Duration) {
        let mut platform = self.shared.lock();
        platform.read_limit = reads;
        platform.service_action_limit = service_actions;
        platform.window = window;
        platform.budgets.clear();
    }

    fn with<T>(&self, id: &str, f: impl FnOnce(&Service) -> T) -> T {
        let platform = self.shared.lock();
        let index = platform
            .find(id)
            .unwrap_or_else(|| panic!("fake render has no service {id}"));
        f(&platform.services[index])
    }

    fn with_mut<T>(&self, id: &str, f: impl FnOnce(&mut Service) -> T) -> T {
        let mut platform = self.shared.lock();
        let index = platform
            .find(id)
            .unwrap_or_else(|| panic!("fake render has no service {id}"));
        f(&mut platform.services[index])
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Platform> {
        self.platform.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A platform error: `{"id":"...","message":"..."}`.
fn error(status: StatusCode, id: &str, message: &str) -> Response {
    (status, Json(json!({ "id": id, "message": message }))).into_response()
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    if let Some(response) = shared.calls.injected(&method, &path) {
        return response;
    }
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, LARGEST_BODY).await.ok();
    let response = answer(
        &shared,
        &method,
        &path,
        &query,
        &parts.headers,
        body.as_ref(),
    );
    shared
        .calls
        .record(&method, &path, response.status().as_u16());
    response
}

fn answer(
    shared: &Arc<Shared>,
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: Option<&Bytes>,
) -> Response {
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|token| token == shared.token);
    if !authorized {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authorization information is missing or invalid.",
        );
    }
    let now = Instant::now();
    let mut platform = shared.lock();
    platform.refresh(now);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let group = budget_group(method, &segments);
    let limit = match group.as_str() {
        "read" => platform.read_limit,
        "write" => WRITE_LIMIT,
        _ => platform.service_action_limit,
    };
    let window = platform.window;
    let budget = platform.budgets.entry(group.clone()).or_insert(Budget {
        limit,
        used: 0,
        since: now,
    });
    if now.duration_since(budget.since) >= window {
        budget.used = 0;
        budget.since = now;
    }
    let reset_in = window.saturating_sub(now.duration_since(budget.since));
    let reset_at = SystemTime::now() + reset_in;
    let reset_epoch = reset_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
    let mut response = if budget.used >= budget.limit {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Rate limit exceeded, please retry later.",
        );
        insert(
            &mut response,
            "retry-after",
            &reset_in.as_secs_f64().ceil().to_string(),
        );
        response
    } else {
        budget.used += 1;
        platform.route(shared, method, &segments, query, body, now)
    };
    let budget = platform.budgets.get(&group).map(|b| (b.limit, b.used));
    if let Some((limit, used)) = budget {
        insert(&mut response, "ratelimit-limit", &limit.to_string());
        insert(
            &mut response,
            "ratelimit-remaining",
            &limit.saturating_sub(used).to_string(),
        );
        insert(&mut response, "ratelimit-reset", &reset_epoch.to_string());
    }
    response
}

/// The budget a call counts against: reads, suspend/resume of one service, other writes.
fn budget_group(method: &str, segments: &[&str]) -> String {
    match (method, segments) {
        ("GET", _) => "read".to_owned(),
        ("POST", ["services", id, "suspend" | "resume" | "deploys"]) => format!("service {id}"),
        _ => "write".to_owned(),
    }
}

fn insert(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

/// `name=value` pairs of a query string (no percent-decoding beyond what the tests send).
fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

impl Platform {
    fn find(&self, id: &str) -> Option<usize> {
        self.services.iter().position(|service| service.id == id)
    }

    fn new_deploy(&mut self, trigger: &'static str, created: Instant) -> Deploy {
        self.next_id += 1;
        Deploy {
            id: format!("dep-{:020x}", self.next_id * 0x85eb_ca6b),
            trigger,
            created,
            fails: false,
        }
    }

    /// Servers up while their service runs a live deploy.
    fn refresh(&mut self, now: Instant) {
        let boot = self.boot_time;
        for service in &self.services {
            if let Some(server) = &service.server {
                let live = !service.suspended
                    && service
                        .deploys
                        .len()
                        .checked_sub(1)
                        .is_some_and(|last| service.deploy_status(last, now, boot) == "live");
                if server.is_up() != live {
                    server.set_up(live);
                }
            }
        }
    }

    fn route(
        &mut self,
        shared: &Arc<Shared>,
        method: &str,
        segments: &[&str],
        query: &str,
        body: Option<&Bytes>,
        now: Instant,
    ) -> Response {
        match (method, segments) {
            ("GET", ["services"]) => self.list(query, now),
            ("GET", ["services", id]) => match self.find(id) {
                Some(index) => Json(self.services[index].json()).into_response(),
                None => not_found(),
            },
            ("GET", ["services", id, "deploys"]) => {
                let Some(index) = self.find(id) else {
                    return not_found();
                };
                let limit = query_param(query, "limit")
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(DEFAULT_LIMIT)
                    .clamp(1, 100);
                let service = &self.services[index];
                let entries: Vec<Value> = (0..service.deploys.len())
                    .rev()
                    .take(limit)
                    .map(|i| {
                        let deploy = &service.deploys[i];
                        json!({
                            "cursor": format!("cur-{}", deploy.id),
                            "deploy": {
                                "id": deploy.id,
                                "status": service.deploy_status(i, now, self.boot_time),
                                "trigger": deploy.trigger,
                            }
                        })
                    })
                    .collect();
                Json(Value::Array(entries)).into_response()
            }
            ("POST", ["services", id, "suspend"]) => {
                let Some(index) = self.find(id) else {
                    return not_found();
                };
                self.services[index].suspended = true;
                self.refresh(now);
                StatusCode::ACCEPTED.into_response()
            }
            ("POST", ["services", id, "resume"]) => {
                let Some(index) = self.find(id) else {
                    return not_found();
                };
                if self.services[index].suspended {
                    let mut deploy = self.new_deploy("service_resumed", now);
                    if self.failing_resumes > 0 {
                        self.failing_resumes -= 1;
                        deploy.fails = true;
                    }
                    let service = &mut self.services[index];
                    service.suspended = false;
                    service.deploys.push(deploy);
                    let shared = Arc::clone(shared);
                    let live_at = now + self.boot_time;
                    tokio::spawn(async move {
                        tokio::time::sleep_until(live_at).await;
                        shared.lock().refresh(Instant::now());
                    });
                }
                StatusCode::ACCEPTED.into_response()
            }
            ("POST", ["services", id, "scale"]) => {
                let Some(index) = self.find(id) else {
                    return not_found();
                };
                let wanted = body
                    .and_then(|body| serde_json::from_slice::<Value>(body).ok())
                    .and_then(|body| body.get("numInstances")?.as_u64());
                let service = &mut self.services[index];
                match wanted.and_then(|n| u32::try_from(n).ok()) {
                    Some(n) if (1..=MAX_INSTANCES).contains(&n) => {
                        if service.plan == "free" && n > 1 {
                            return error(
                                StatusCode::BAD_REQUEST,
                                "bad_request",
                                "Free instances cannot be scaled beyond one instance.",
                            );
                        }
                        service.num_instances = n;
                        StatusCode::ACCEPTED.into_response()
                    }
                    _ => error(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "numInstances must be a number from 1 to 100.",
                    ),
                }
            }
            _ => not_found(),
        }
    }

    /// `GET /services`: the entries after `cursor`, at most `limit` (clamped to the max).
    fn list(&self, query: &str, _now: Instant) -> Response {
        let limit = match query_param(query, "limit").map(str::parse::<usize>) {
            None => DEFAULT_LIMIT,
            Some(Ok(n)) if n >= 1 => n,
            Some(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "limit must be a positive number.",
                );
            }
        }
        .min(self.max_limit);
        let owner = query_param(query, "ownerId");
        let mut entries: Vec<Value> = self
            .services
            .iter()
            .filter(|service| owner.is_none_or(|owner| owner == service.owner))
            .map(|service| json!({ "cursor": format!("cur-{}", service.id), "service": service.json() }))
            .collect();
        entries.extend(self.raw.iter().cloned());
        let start = match query_param(query, "cursor") {
            Some(cursor) => match entries
                .iter()
                .position(|entry| entry.get("cursor").and_then(Value::as_str) == Some(cursor))
            {
                Some(position) => position + 1,
                None => {
                    return error(StatusCode::BAD_REQUEST, "bad_request", "invalid cursor");
                }
            },
            None => 0,
        };
        let page: Vec<Value> = entries.into_iter().skip(start).take(limit).collect();
        Json(Value::Array(page)).into_response()
    }
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "Unable to find the requested resource.",
    )
}

impl Service {
    /// The status of deploy `index` at `now`.
    fn deploy_status(&self, index: usize, now: Instant, boot: Duration) -> &'static str {
        let deploy = &self.deploys[index];
        if index + 1 < self.deploys.len() {
            return if deploy.fails {
                "update_failed"
            } else {
                "deactivated"
            };
        }
        let age = now.saturating_duration_since(deploy.created);
        if age < boot / 3 {
            "build_in_progress"
        } else if age < boot {
            "update_in_progress"
        } else if deploy.fails {
            "update_failed"
        } else {
            "live"
        }
    }

    fn json(&self) -> Value {
        let url = self.server.as_ref().map(|server| server.url.clone());
        let mut details = json!({
            "plan": self.plan,
            "numInstances": self.num_instances,
            "region": "frankfurt",
            "env": "node",
            "runtime": "node",
        });
        if self.kind == "web_service" {
            details["url"] = json!(url);
            details["healthCheckPath"] = json!("");
        }
        json!({
            "id": self.id,
            "name": self.name,
            "type": self.kind,
            "ownerId": self.owner,
            "slug": self.name,
            "suspended": if self.suspended { "suspended" } else { "not_suspended" },
            "suspenders": if self.suspended { json!(["user"]) } else { json!([]) },
            "autoDeploy": "yes",
            "branch": "main",
            "serviceDetails": details,
            "createdAt": "2024-05-01T12:00:00Z",
            "updatedAt": "2024-05-01T12:00:00Z",
        })
    }
}
