//! Fake Fly.io Machines API (`provider-apis.md`, "Fly.io Machines"; fly.io/docs/machines/api):
//! bearer token required (401 otherwise), `GET /v1/apps?org_slug=` (`{"total_apps", "apps"}`),
//! the Machines of an app with their process group, guest and checks, Machines that go
//! `stopped -> starting -> started`, `started -> stopping -> stopped` and
//! `started -> suspending -> suspended` over a while, 412 for an action a Machine in a
//! transitional state cannot take, the `wait` endpoint (200, or 408 when its timeout
//! passes; `instance_id` required to wait for `stopped`), 404 for an unknown app or Machine.
//! Each app is served by an [`AppServer`] that answers while one of its Machines is
//! `started`. Every call is recorded; 429s with `Retry-After` come from [`Calls`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{AppServer, Calls, serve};

const DEFAULT_BOOT_TIME: Duration = Duration::from_millis(300);
const DEFAULT_STOP_TIME: Duration = Duration::from_millis(200);
/// The `wait` endpoint's default and largest timeout, seconds.
const WAIT_DEFAULT_SECONDS: u64 = 60;

/// A running fake Machines API.
pub struct FakeFly {
    /// `http://127.0.0.1:PORT` (the API is under `/v1`).
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
    apps: Vec<App>,
    boot_time: Duration,
    stop_time: Duration,
    rng: fastrand::Rng,
    /// When Machines changing state now will be there (app servers to refresh then).
    timers: Vec<Instant>,
}

struct App {
    id: String,
    name: String,
    org: String,
    server: AppServer,
    machines: Vec<Machine>,
    /// Entries of the Machine listing that are not Machines (a platform oddity).
    odd: Vec<Value>,
}

struct Machine {
    id: String,
    name: String,
    group: String,
    state: String,
    instance_id: String,
    /// The state it is heading to, and when it gets there.
    pending: Option<(&'static str, Instant)>,
    /// Output of a failing health check (`None`: it passes).
    failing_check: Option<String>,
    /// Exits again this long after each start (its check critical), as a crashing app.
    crash_after: Option<Duration>,
}

impl Machine {
    fn json(&self, region: &str) -> Value {
        // A crashed Machine still shows its last check results.
        let crashed = self.crash_after.is_some() && self.state == "stopped";
        let checks = if self.state == "started" || crashed {
            match &self.failing_check {
                Some(output) => json!([{
                    "name": "servicecheck-00-http-8080", "status": "critical",
                    "output": output, "updated_at": "2024-05-01T12:00:00Z"
                }]),
                None => json!([{
                    "name": "servicecheck-00-http-8080", "status": "passing",
                    "output": "Success", "updated_at": "2024-05-01T12:00:00Z"
                }]),
            }
        } else {
            Value::Null
        };
        json!({
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "region": region,
            "instance_id": self.instance_id,
            "private_ip": "fdaa:0:1:a7b:1::2",
            "config": {
                "image": "registry.fly.io/app:deployment-01",
                "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
                "metadata": {
                    "fly_platform_version": "v2",
                    "fly_process_group": self.group,
                    "fly_release_version": "3"
                },
                "restart": {"policy": "on-failure"}
            },
            "image_ref": {"registry": "registry.fly.io", "repository": "app", "tag": "deployment-01"},
            "created_at": "2024-05-01T12:00:00Z",
            "updated_at": "2024-05-01T12:00:00Z",
            "checks": checks,
            "events": []
        })
    }

    /// Applies a finished transition.
    fn refresh(&mut self, now: Instant) {
        if let Some((target, at)) = self.pending
            && at <= now
        {
            self.state = target.to_owned();
            self.pending = None;
            if let (Some(after), "started") = (self.crash_after, target) {
                self.pending = Some(("stopped", at + after));
            }
        }
    }

    fn transition(&mut self, through: &str, target: &'static str, after: Duration) -> Instant {
        let at = Instant::now() + after;
        self.state = through.to_owned();
        self.pending = Some((target, at));
        at
    }
}

impl App {
    fn refresh(&mut self, now: Instant) {
        for machine in &mut self.machines {
            machine.refresh(now);
        }
        self.server
            .set_up(self.machines.iter().any(|m| m.state == "started"));
    }
}

impl FakeFly {
    /// Starts the fake; `token` is the only valid bearer token.
    pub async fn start(token: &str) -> FakeFly {
        let calls = Arc::new(Calls::default());
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            calls: Arc::clone(&calls),
            platform: Mutex::new(Platform {
                apps: Vec::new(),
                boot_time: DEFAULT_BOOT_TIME,
                stop_time: DEFAULT_STOP_TIME,
                rng: fastrand::Rng::with_seed(0x0f17),
                timers: Vec::new(),
            }),
        });
        let router = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let url = serve(router).await;
        FakeFly { url, calls, shared }
    }

    /// Adds an app of `org` with one Machine per entry (`(process group, started)`); its
    /// server is up when one is started.
    pub async fn add_app(&self, org: &str, name: &str, machines: &[(&str, bool)]) -> AppServer {
        let up = machines.iter().any(|(_, started)| *started);
        let server = AppServer::start(name, up).await;
        let mut platform = self.shared.lock();
        assert!(platform.find(name).is_none(), "fake fly already has {name}");
        let id = hex(&mut platform.rng, 16);
        let machines = machines
            .iter()
            .map(|(group, started)| Machine {
                id: hex(&mut platform.rng, 14),
                name: format!("{name}-{}", hex(&mut platform.rng, 4)),
                group: (*group).to_owned(),
                state: if *started { "started" } else { "stopped" }.to_owned(),
                instance_id: format!("01HX{}", hex(&mut platform.rng, 22).to_uppercase()),
                pending: None,
                failing_check: None,
                crash_after: None,
            })
            .collect();
        platform.apps.push(App {
            id,
            name: name.to_owned(),
            org: org.to_owned(),
            server: server.clone(),
            machines,
            odd: Vec::new(),
        });
        server
    }

    /// `(id, process group, state)` of each Machine of `app`, in creation order.
    pub fn machines(&self, app: &str) -> Vec<(String, String, String)> {
        let mut platform = self.shared.lock();
        let index = platform.find(app).expect("known app");
        let app = &mut platform.apps[index];
        app.refresh(Instant::now());
        app.machines
            .iter()
            .map(|m| (m.id.clone(), m.group.clone(), m.state.clone()))
            .collect()
    }

    /// The states of `app`'s Machines, in creation order.
    pub fn states(&self, app: &str) -> Vec<String> {
        self.machines(app).into_iter().map(|(_, _, s)| s).collect()
    }

    /// Sets a Machine's state at once, as the user would with `fly machine stop` (the app
    /// server follows).
    pub fn set_state(&self, app: &str, id: &str, state: &str) {
        let mut platform = self.shared.lock();
        let index = platform.find(app).expect("known app");
        let app = &mut platform.apps[index];
        let machine = app
            .machines
            .iter_mut()
            .find(|m| m.id == id)
            .expect("known machine");
        machine.state = state.to_owned();
        machine.pending = None;
        app.refresh(Instant::now());
    }

    /// Adds an entry that is not a Machine to `app`'s listing.
    pub fn add_odd_entry(&self, app: &str, entry: Value) {
        let mut platform = self.shared.lock();
        let index = platform.find(app).expect("known app");
        platform.apps[index].odd.push(entry);
    }

    /// Makes the health check of `app`'s Machines critical with this output.
    pub fn fail_checks(&self, app: &str, output: &str) {
        let mut platform = self.shared.lock();
        let index = platform.find(app).expect("known app");
        for machine in &mut platform.apps[index].machines {
            machine.failing_check = Some(output.to_owned());
        }
    }

    /// Makes `app`'s Machines exit 300 ms after each start, their check critical with
    /// `output` (an app that crashes on boot).
    pub fn crash_on_start(&self, app: &str, output: &str) {
        let mut platform = self.shared.lock();
        let index = platform.find(app).expect("known app");
        for machine in &mut platform.apps[index].machines {
            machine.failing_check = Some(output.to_owned());
            machine.crash_after = Some(Duration::from_millis(300));
        }
    }

    /// Time from `starting` to `started` (default 300 ms).
    pub fn set_boot_time(&self, d: Duration) {
        self.shared.lock().boot_time = d;
    }

    /// Time from `stopping`/`suspending` to `stopped`/`suspended` (default 200 ms).
    pub fn set_stop_time(&self, d: Duration) {
        self.shared.lock().stop_time = d;
    }

    /// Calls of `action` (`start`, `stop`, `suspend`) on `app`'s Machines.
    pub fn actions(&self, app: &str, action: &str) -> usize {
        self.calls
            .all()
            .iter()
            .filter(|c| {
                c.method == "POST"
                    && c.path.starts_with(&format!("/v1/apps/{app}/machines/"))
                    && c.path.ends_with(&format!("/{action}"))
                    && c.status == 200
            })
            .count()
    }
}

fn hex(rng: &mut fastrand::Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from_digit(rng.u32(0..16), 16).unwrap_or('0'))
        .collect()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Every request: injected faults, auth, then the endpoint.
async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    if let Some(response) = shared.calls.injected(&method, &path) {
        return response;
    }
    let response = if !shared.authorized(request.headers()) {
        error(StatusCode::UNAUTHORIZED, "unauthorized")
    } else {
        shared.route(&method, &path, &query).await
    };
    shared
        .calls
        .record(&method, &path, response.status().as_u16());
    response
}

fn query_value<'q>(query: &'q str, key: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Platform> {
        self.platform.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Bearer <token>`, or a `FlyV1 ...` token as the whole header value (as flyctl sends
    /// the tokens `fly tokens create` prints).
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let value = value.trim();
        (self.token.starts_with("FlyV1 ") && value == self.token)
            || value.split_once(' ').is_some_and(|(scheme, token)| {
                scheme.eq_ignore_ascii_case("bearer") && token.trim() == self.token
            })
    }

    async fn route(self: &Arc<Self>, method: &str, path: &str, query: &str) -> Response {
        let Some(rest) = path.strip_prefix("/v1/") else {
            return error(StatusCode::NOT_FOUND, "not found");
        };
        let segments: Vec<&str> = rest.split('/').collect();
        if let ("GET", ["apps", app, "machines", id, "wait"]) = (method, segments.as_slice()) {
            return self.wait(app, id, query).await;
        }
        let mut platform = self.lock();
        let now = Instant::now();
        for app in &mut platform.apps {
            app.refresh(now);
        }
        let response = platform.answer(method, &segments, query);
        for at in std::mem::take(&mut platform.timers) {
            self.refresh_at(at);
        }
        response
    }

    /// `GET .../wait?state=&timeout=&instance_id=`: 200 once the Machine is in `state`, 408
    /// when `timeout` seconds pass first.
    async fn wait(self: &Arc<Self>, app: &str, id: &str, query: &str) -> Response {
        let state = query_value(query, "state").unwrap_or("started");
        if !["started", "stopped", "destroyed"].contains(&state) {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid state {state}: must be started, stopped or destroyed"),
            );
        }
        if state == "stopped" && query_value(query, "instance_id").is_none() {
            return error(
                StatusCode::BAD_REQUEST,
                "instance_id is required when waiting for the stopped state",
            );
        }
        let seconds = query_value(query, "timeout")
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(WAIT_DEFAULT_SECONDS)
            .min(WAIT_DEFAULT_SECONDS);
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            {
                let mut platform = self.lock();
                let Some(index) = platform.find(app) else {
                    return error(StatusCode::NOT_FOUND, "app not found");
                };
                let app = &mut platform.apps[index];
                app.refresh(Instant::now());
                let Some(machine) = app.machines.iter().find(|m| m.id == id) else {
                    return error(StatusCode::NOT_FOUND, "machine not found");
                };
                if machine.state == state {
                    return Json(json!({"ok": true})).into_response();
                }
            }
            if Instant::now() >= deadline {
                return error(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("deadline_exceeded: machine did not reach {state} in time"),
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn refresh_at(self: &Arc<Self>, at: Instant) {
        let shared: Weak<Shared> = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            if let Some(shared) = shared.upgrade() {
                let now = Instant::now();
                for app in &mut shared.lock().apps {
                    app.refresh(now);
                }
            }
        });
    }
}

impl Platform {
    fn find(&self, name: &str) -> Option<usize> {
        self.apps.iter().position(|app| app.name == name)
    }

    fn answer(&mut self, method: &str, segments: &[&str], query: &str) -> Response {
        match (method, segments) {
            ("GET", ["apps"]) => {
                let Some(org) = query_value(query, "org_slug") else {
                    return error(StatusCode::BAD_REQUEST, "org_slug is required");
                };
                let apps: Vec<Value> = self
                    .apps
                    .iter()
                    .filter(|app| app.org == org)
                    .map(|app| {
                        json!({
                            "id": app.id, "name": app.name,
                            "machine_count": app.machines.len(), "network": "default"
                        })
                    })
                    .collect();
                if apps.is_empty() && !self.apps.iter().any(|app| app.org == org) {
                    return error(StatusCode::NOT_FOUND, "organization not found");
                }
                Json(json!({"total_apps": apps.len(), "apps": apps})).into_response()
            }
            ("GET", ["apps", name]) => match self.find(name) {
                Some(index) => {
                    let app = &self.apps[index];
                    Json(json!({
                        "id": app.id, "name": app.name, "status": "deployed",
                        "organization": {"name": app.org, "slug": app.org}
                    }))
                    .into_response()
                }
                None => error(StatusCode::NOT_FOUND, "app not found"),
            },
            ("GET", ["apps", name, "machines"]) => match self.find(name) {
                Some(index) => {
                    let app = &self.apps[index];
                    let mut list: Vec<Value> = app.machines.iter().map(|m| m.json("cdg")).collect();
                    list.extend(app.odd.iter().cloned());
                    Json(Value::Array(list)).into_response()
                }
                None => error(StatusCode::NOT_FOUND, "app not found"),
            },
            ("GET", ["apps", name, "machines", id]) => match self.machine(name, id) {
                Ok((app, machine)) => {
                    Json(self.apps[app].machines[machine].json("cdg")).into_response()
                }
                Err(response) => *response,
            },
            ("POST", ["apps", name, "machines", id, action]) => {
                let (app, machine) = match self.machine(name, id) {
                    Ok(found) => found,
                    Err(response) => return *response,
                };
                let (boot, stop) = (self.boot_time, self.stop_time);
                let machine = &mut self.apps[app].machines[machine];
                let previous = machine.state.clone();
                let refused = |state: &str| {
                    error(
                        StatusCode::PRECONDITION_FAILED,
                        format!(
                            "failed_precondition: unable to {action} machine from current \
                             state: '{state}'"
                        ),
                    )
                };
                let at = match (*action, previous.as_str()) {
                    ("start", "stopped" | "suspended" | "created") => {
                        machine.transition("starting", "started", boot)
                    }
                    ("start", "started" | "starting") => {
                        return Json(json!({"previous_state": previous})).into_response();
                    }
                    ("stop", "started") => machine.transition("stopping", "stopped", stop),
                    ("stop", "stopped" | "suspended") => {
                        return Json(json!({"ok": true})).into_response();
                    }
                    ("suspend", "started") => machine.transition("suspending", "suspended", stop),
                    ("suspend", "suspended") => {
                        return Json(json!({"ok": true})).into_response();
                    }
                    ("start" | "stop" | "suspend", state) => return refused(state),
                    _ => return error(StatusCode::NOT_FOUND, "not found"),
                };
                self.timers.push(at);
                if *action == "start" {
                    Json(json!({"previous_state": previous, "migrated": false, "new_host": ""}))
                        .into_response()
                } else {
                    Json(json!({"ok": true})).into_response()
                }
            }
            _ => error(StatusCode::NOT_FOUND, "not found"),
        }
    }

    /// The app and Machine indexes, or the platform's 404.
    fn machine(&self, app: &str, id: &str) -> Result<(usize, usize), Box<Response>> {
        let Some(index) = self.find(app) else {
            return Err(Box::new(error(StatusCode::NOT_FOUND, "app not found")));
        };
        self.apps[index]
            .machines
            .iter()
            .position(|m| m.id == id)
            .map(|machine| (index, machine))
            .ok_or_else(|| Box::new(error(StatusCode::NOT_FOUND, "machine not found")))
    }
}

/// The states of `machines` (as [`FakeFly::machines`] gives them) per process group.
pub fn by_group(machines: &[(String, String, String)]) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, group, state) in machines {
        groups.entry(group.clone()).or_default().push(state.clone());
    }
    groups
}
