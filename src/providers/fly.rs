//! The `fly` provider: the apps of one Fly.io organisation (or a given list of apps), through
//! the Machines API (`https://api.machines.dev/v1`).
//!
//! A Fly app is a set of Machines, each in a process group (`config.metadata.fly_process_group`).
//! An app runs when its Machines run: a stop stops (or suspends, `stop_mode: suspend`) every
//! Machine that was `started` or `starting` and remembers how many ran per process group (the
//! formation, `{"app": 2, "worker": 1}`) and the exact Machine ids in this client's memory. A
//! wake starts, in each group, as many Machines as were remembered: the remembered ids first,
//! then suspended, stopped and never-started ones, so a Machine the user had stopped (or
//! created stopped) is not started when the count is already met. After an engine restart
//! the ids are gone and only the counts remain, which is exact enough: Machines of one group
//! run the same image and config.
//!
//! Readiness: every Machine the last start asked for is `started` and its health checks pass
//! (no checks: ready). A Machine that is destroyed, `failed`, or that stopped again after the
//! start was accepted fails the wake, with its failing check's output. A Machine in a
//! transitional state refuses a start or stop (409 or 412): the client waits for it (the
//! `wait` endpoint; a 408 there only means "not yet") and tries again a bounded number of
//! times. Upstream: `<scheme>://<hostname_template with {app}>` (`https://<app>.fly.dev`).
//!
//! As every platform's file, it also reads and checks its `providers:` entry and states its
//! credential keys and facts (own-app variable `FLY_APP_NAME`, the published Machine prices):
//! see [`Platform`]. It only speaks the API: it never decides when to act.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;

use super::api::{ApiClient, Idempotent, check, parse_entries, percent_encode, read_json};
use super::platform::{Facts, Platform, PriceTable};
use super::{
    AppInfo, AppStatus, Formation, PollIntervals, Provider, ProviderError, Started, Stopped,
    Upstream,
};
use crate::model::{PolicyOverride, Reconciled};
use crate::secret::Secret;
use crate::settings::{Fields, Key, Kind, Reader};

/// Default API base URL (the public Machines API endpoint, version 1).
pub const DEFAULT_API_URL: &str = "https://api.machines.dev/v1";

/// Default host of an app, `{app}` standing for its name.
pub const DEFAULT_HOSTNAME_TEMPLATE: &str = "{app}.fly.dev";

/// Calls per minute. Fly documents its limits per action and per Machine: 1 request a
/// second with bursts of 3 (Get Machine: 5, bursts of 10). The engine's limiter counts the
/// whole account, so 3 a second keeps even a run of one action inside its burst allowance.
pub const DEFAULT_RATE_LIMIT: usize = 180;

/// Tries of a start or stop refused because the Machine is changing state.
const CONFLICT_TRIES: u32 = 5;

/// Seconds the `wait` endpoint is asked to wait for a Machine changing state.
const WAIT_SECONDS: u64 = 10;

/// Longest check output kept in a failure reason.
const OUTPUT_EXCERPT: usize = 200;

/// The process group of Machines without `fly_process_group` (Fly's own default name).
const DEFAULT_GROUP: &str = "app";

/// What a stop does to the Machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// `POST .../stop`: the Machine shuts down; a start boots it again.
    Stop,
    /// `POST .../suspend`: the Machine's memory is saved; a start resumes it.
    Suspend,
}

/// `type: fly` in the config.
#[derive(Debug, Clone)]
pub struct FlyConfig {
    /// Provider id.
    pub id: String,
    /// API token (`fly tokens create org`): `FlyV1 ...` sent as it is, others as bearer.
    pub token: Secret,
    /// Organisation slug whose apps are managed (`GET /apps?org_slug=`).
    pub org: Option<String>,
    /// Apps managed besides (or instead of) the organisation's.
    pub apps: Vec<String>,
    /// API base URL, `/v1` included.
    pub api_url: String,
    /// Host of an app's upstream, `{app}` replaced by its name.
    pub hostname_template: String,
    /// Scheme of the upstreams (`https` on the platform).
    pub upstream_scheme: http::uri::Scheme,
    /// Whether an idle app's Machines are stopped or suspended.
    pub stop_mode: StopMode,
    /// Calls per minute allowed for this account.
    pub rate_limit: usize,
}

/// Hours Fly's monthly prices are given for ("30 days of continuous runtime").
const MONTH_HOURS: f64 = 720.0;

/// Fly's published prices of started Machines, USD per 30 days, in its lowest-priced
/// regions (`iad`, `ewr`; docs/src/savings.md cites the page). Named as [`size_name`] names
/// a Machine's guest.
const MONTHLY_USD: &[(&str, f64)] = &[
    ("shared-cpu-1x-256mb", 2.19),
    ("shared-cpu-1x-512mb", 3.69),
    ("shared-cpu-1x-1024mb", 6.70),
    ("shared-cpu-2x-2048mb", 13.39),
    ("performance-1x-2048mb", 33.00),
    ("performance-2x-4096mb", 66.00),
];

impl Platform for FlyConfig {
    const KIND: &'static str = "fly";
    const SECRET_KEYS: &'static [&'static str] = &["token"];
    const ENDPOINT_KEYS: &'static [&'static str] = &["api_url"];
    const FACTS: Facts = Facts {
        // Set in every Machine to its app's name.
        own_app_variable: Some("FLY_APP_NAME"),
        prices: Some(PriceTable {
            currency: "USD",
            period_hours: MONTH_HOURS,
            sizes: MONTHLY_USD,
        }),
        // Apps run in many regions: the savings' default.
        grid_g_per_kwh: None,
    };
    const DOC: &'static str =
        "A Fly.io organisation's apps (Machines API): an org slug, a list of apps, or both.";
    const KEYS: &'static [Key] = &[
        Key::new(
            "token",
            Kind::Secret,
            "An API token of the organisation (`fly tokens create org`).",
        )
        .required(),
        Key::new(
            "org",
            Kind::Text("organisation slug"),
            "Manage every app of this organisation (`personal` for your own).",
        ),
        Key::new(
            "apps",
            Kind::List(&Kind::Text("app name")),
            "Manage these apps (besides the organisation's, when `org` is set too).",
        ),
        Key::new(
            "api_url",
            Kind::Url,
            "Machines API URL override (with `/v1`).",
        )
        .default(DEFAULT_API_URL),
        Key::new(
            "hostname_template",
            Kind::Text("host name"),
            "Where an app answers, `{app}` standing for its name (a port may follow).",
        )
        .default(DEFAULT_HOSTNAME_TEMPLATE),
        Key::new(
            "upstream_scheme",
            Kind::Enum(&["https", "http"]),
            "How apps are reached on that host.",
        )
        .default("https"),
        Key::new(
            "stop_mode",
            Kind::Enum(&["stop", "suspend"]),
            "What an idle stop does to the Machines: shut them down, or suspend them \
             (memory saved, faster resume).",
        )
        .default("stop"),
        crate::settings::rate_limit_key("180"),
    ];

    fn read(
        reader: &mut Reader<'_>,
        fields: &mut Fields<'_>,
        path: &str,
        _kind_path: &str,
    ) -> Option<Self> {
        reader.fly(fields, path)
    }

    fn secrets(&self) -> Vec<&Secret> {
        vec![&self.token]
    }

    fn build(&self) -> Result<Arc<dyn Provider>, ProviderError> {
        Ok(Arc::new(Fly::new(self)?))
    }
}

impl Reader<'_> {
    fn fly(&mut self, fields: &mut Fields<'_>, path: &str) -> Option<FlyConfig> {
        let token = self.required_secret(fields, "token", path);
        let org = fields
            .take("org")
            .and_then(|(v, p)| self.non_empty_string(v, &p));
        let apps = fields
            .take("apps")
            .map(|(v, p)| self.names(v, &p))
            .unwrap_or_default();
        if org.is_none() && apps.is_empty() && !fields.has("org") {
            self.error(
                path,
                "nothing to manage: set org (an organisation slug), apps (a list), or both",
            );
        }
        let api_url = self
            .base_url(fields, "api_url")
            .unwrap_or_else(|| DEFAULT_API_URL.to_owned());
        let upstream_scheme = match fields.take("upstream_scheme") {
            None => http::uri::Scheme::HTTPS,
            Some((value, p)) => match self.string(value, &p).as_deref() {
                Some("http") => http::uri::Scheme::HTTP,
                Some("https") | None => http::uri::Scheme::HTTPS,
                Some(other) => {
                    self.error(
                        &p,
                        format!("`{other}` is not a scheme (expected https or http)"),
                    );
                    http::uri::Scheme::HTTPS
                }
            },
        };
        let hostname_template = match fields.take("hostname_template") {
            None => DEFAULT_HOSTNAME_TEMPLATE.to_owned(),
            Some((value, p)) => {
                let template = self.non_empty_string(value, &p)?;
                if upstream(&upstream_scheme, &template, "app").is_none() {
                    self.error(
                        &p,
                        format!(
                            "`{template}` does not give a host name (expected e.g. \
                             {DEFAULT_HOSTNAME_TEMPLATE}, or {{app}}.example.com:8080)"
                        ),
                    );
                }
                template
            }
        };
        let stop_mode = match fields.take("stop_mode") {
            None => StopMode::Stop,
            Some((value, p)) => match self.string(value, &p).as_deref() {
                Some("suspend") => StopMode::Suspend,
                Some("stop") | None => StopMode::Stop,
                Some(other) => {
                    self.error(
                        &p,
                        format!("`{other}` is not a stop mode (expected stop or suspend)"),
                    );
                    StopMode::Stop
                }
            },
        };
        let rate_limit = self.rate_limit(fields, DEFAULT_RATE_LIMIT);
        Some(FlyConfig {
            id: String::new(),
            token: token?,
            org,
            apps,
            api_url,
            hostname_template,
            upstream_scheme,
            stop_mode,
            rate_limit,
        })
    }
}

/// The upstream of `app` from the template (`None`: the template gives no valid host).
fn upstream(scheme: &http::uri::Scheme, template: &str, app: &str) -> Option<Upstream> {
    Upstream::from_url(&format!("{scheme}://{}", template.replace("{app}", app)))
}

/// One Fly.io account (organisation token).
#[derive(Debug)]
pub struct Fly {
    /// Provider id.
    id: String,
    /// HTTP client with the account's rate limit.
    api: ApiClient,
    /// API token.
    token: Secret,
    /// API base URL, without a trailing slash.
    api_url: String,
    /// Organisation whose apps are listed.
    org: Option<String>,
    /// Apps listed besides the organisation's.
    apps: Vec<String>,
    /// Host of an app's upstream, `{app}` replaced by its name.
    hostname_template: String,
    /// Scheme of the upstreams.
    upstream_scheme: http::uri::Scheme,
    /// Stop or suspend.
    stop_mode: StopMode,
    /// App -> the Machine ids that ran at its last stop, started first on wake (lost on
    /// restart: the counts of the remembered formation remain).
    stopped_ids: Mutex<HashMap<String, Vec<String>>>,
    /// App -> the Machine ids its last start asked for, until it was seen ready: what
    /// readiness looks at.
    starting_ids: Mutex<HashMap<String, Vec<String>>>,
}

/// One entry of `GET /apps?org_slug=`.
#[derive(Debug, Deserialize)]
struct App {
    /// The app's name.
    name: String,
}

/// `GET /apps?org_slug=`'s answer.
#[derive(Debug, Deserialize)]
struct AppList {
    /// The organisation's apps (odd entries are skipped).
    #[serde(default)]
    apps: Vec<super::api::Entry>,
}

/// One Machine of `GET /apps/{app}/machines`, as far as the engine reads it.
#[derive(Debug, Clone, Deserialize)]
struct Machine {
    /// Its stable id.
    id: String,
    /// Its lifecycle state (`started`, `stopped`, ...).
    state: String,
    /// The current version, needed to wait for a `stopped` state.
    #[serde(default)]
    instance_id: Option<String>,
    /// Its configuration (guest size, metadata).
    #[serde(default)]
    config: MachineConfig,
    /// Its health checks' last results.
    #[serde(default, deserialize_with = "null_as_default")]
    checks: Vec<Check>,
}

/// The part of a Machine's `config` the engine reads.
#[derive(Debug, Clone, Default, Deserialize)]
struct MachineConfig {
    /// CPU and memory.
    #[serde(default)]
    guest: Option<Guest>,
    /// Free metadata; `fly_process_group` names the process group.
    #[serde(default, deserialize_with = "null_as_default")]
    metadata: HashMap<String, serde_json::Value>,
}

/// A Machine's CPU and memory.
#[derive(Debug, Clone, Deserialize)]
struct Guest {
    /// `shared` or `performance`.
    #[serde(default)]
    cpu_kind: String,
    /// Number of CPUs.
    #[serde(default)]
    cpus: u32,
    /// Memory in MB.
    #[serde(default)]
    memory_mb: u32,
}

/// One health check result.
#[derive(Debug, Clone, Deserialize)]
struct Check {
    /// The check's name.
    #[serde(default)]
    name: String,
    /// `passing`, `warning` or `critical`.
    #[serde(default)]
    status: String,
    /// What the check printed last.
    #[serde(default)]
    output: String,
}

/// `null` read as the default value (Fly writes `null` for empty lists and maps).
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

impl Machine {
    /// Its process group.
    fn group(&self) -> &str {
        self.config
            .metadata
            .get("fly_process_group")
            .and_then(serde_json::Value::as_str)
            .filter(|group| !group.is_empty())
            .unwrap_or(DEFAULT_GROUP)
    }

    /// Running or on its way.
    fn is_up(&self) -> bool {
        matches!(self.state.as_str(), "started" | "starting")
    }

    /// Gone, or going.
    fn is_gone(&self) -> bool {
        matches!(
            self.state.as_str(),
            "destroyed" | "destroying" | "replaced" | "failed"
        )
    }

    /// Its size as the price table names it (`shared-cpu-1x-256mb`).
    fn size(&self) -> Option<String> {
        self.config.guest.as_ref().map(size_name)
    }

    /// Its first check that does not pass, with its output (trimmed, shortened).
    fn failing_check(&self) -> Option<String> {
        self.checks
            .iter()
            .find(|check| check.status != "passing")
            .map(|check| {
                let output: String = check.output.trim().chars().take(OUTPUT_EXCERPT).collect();
                if output.is_empty() {
                    format!("check `{}` is {}", check.name, check.status)
                } else {
                    format!("check `{}` is {}: {output}", check.name, check.status)
                }
            })
    }
}

/// `shared-cpu-1x-256mb`, `performance-2x-4096mb`: Fly's preset name and the memory.
fn size_name(guest: &Guest) -> String {
    let cpus = guest.cpus.max(1);
    let kind = match guest.cpu_kind.to_ascii_lowercase().as_str() {
        "performance" => format!("performance-{cpus}x"),
        _ => format!("shared-cpu-{cpus}x"),
    };
    format!("{kind}-{}mb", guest.memory_mb)
}

/// The Machines of one listing that parse; the others are skipped with a warning.
fn parse_machines(provider: &str, entries: Vec<impl super::api::ListingEntry>) -> Vec<Machine> {
    parse_entries(provider, entries)
}

/// Machines running or starting, per process group.
fn running_formation(machines: &[Machine]) -> Formation {
    let mut formation = Formation::new();
    for machine in machines.iter().filter(|m| m.is_up()) {
        *formation.entry(machine.group().to_owned()).or_default() += 1;
    }
    formation
}

/// What a wake with nothing remembered would start: the stopped and suspended Machines per
/// group (none of them: the never-started ones).
fn default_formation(machines: &[Machine]) -> Formation {
    let startable = |states: &[&str]| {
        let mut formation = Formation::new();
        for machine in machines
            .iter()
            .filter(|m| states.contains(&m.state.as_str()))
        {
            *formation.entry(machine.group().to_owned()).or_default() += 1;
        }
        formation
    };
    let formation = startable(&["stopped", "suspended"]);
    if formation.is_empty() {
        startable(&["created"])
    } else {
        formation
    }
}

/// What a stop remembers: the running Machines per group and each group's size.
fn stopped(machines: &[Machine]) -> Stopped {
    let formation = running_formation(machines);
    if formation.is_empty() {
        return Stopped::default();
    }
    let mut sizes = BTreeMap::new();
    for machine in machines.iter().filter(|m| m.is_up()) {
        if let Some(size) = machine.size() {
            sizes.entry(machine.group().to_owned()).or_insert(size);
        }
    }
    Stopped {
        formation: Some(formation),
        sizes,
    }
}

/// The Machines to start for `wanted` (per group), the remembered ids first, and what
/// differs from it (groups the app no longer has).
fn plan(
    app: &str,
    machines: &[Machine],
    wanted: Option<&Formation>,
    remembered: &[String],
) -> Result<(Vec<Machine>, Option<Reconciled>), ProviderError> {
    let wanted = match wanted.filter(|w| w.values().any(|n| *n > 0)) {
        Some(wanted) => wanted.clone(),
        None => default_formation(machines),
    };
    let groups: Formation =
        machines
            .iter()
            .filter(|m| !m.is_gone())
            .fold(Formation::new(), |mut groups, m| {
                *groups.entry(m.group().to_owned()).or_default() += 1;
                groups
            });
    let mut dropped = Vec::new();
    let mut to_start = Vec::new();
    let mut kept = Formation::new();
    for (group, amount) in wanted.iter().filter(|(_, n)| **n > 0) {
        if !groups.contains_key(group) {
            dropped.push(group.clone());
            continue;
        }
        let in_group: Vec<&Machine> = machines
            .iter()
            .filter(|m| m.group() == group && !m.is_gone())
            .collect();
        let running = in_group.iter().filter(|m| m.is_up()).count();
        let mut candidates: Vec<&Machine> = in_group
            .iter()
            .copied()
            .filter(|m| {
                matches!(
                    m.state.as_str(),
                    "stopped" | "suspended" | "stopping" | "suspending" | "created"
                )
            })
            .collect();
        // Remembered first, then suspended (fast resume), stopped, still stopping (the start
        // waits for them), never started; by id.
        let rank = |m: &Machine| {
            let state = match m.state.as_str() {
                "suspended" => 0,
                "stopped" => 1,
                "stopping" | "suspending" => 2,
                _ => 3,
            };
            (!remembered.contains(&m.id), state, m.id.clone())
        };
        candidates.sort_by_key(|m| rank(m));
        let need = usize::try_from(*amount)
            .unwrap_or(usize::MAX)
            .saturating_sub(running);
        to_start.extend(candidates.into_iter().take(need).cloned());
        kept.insert(group.clone(), *amount);
    }
    if kept.is_empty() {
        return Err(ProviderError::Rejected(if dropped.is_empty() {
            format!("nothing to start: `{app}` has no Machine that can start")
        } else {
            format!(
                "nothing to start: `{app}` no longer has the process groups it ran ({})",
                dropped.join(", ")
            )
        }));
    }
    let reconciled = (!dropped.is_empty()).then(|| Reconciled {
        formation: kept,
        left: groups
            .iter()
            .filter(|(group, _)| !wanted.contains_key(*group))
            .map(|(group, _)| (group.clone(), 0))
            .collect(),
        dropped,
        upstream: None,
    });
    Ok((to_start, reconciled))
}

/// The app's state from its Machines; `targets`: the ids the last start asked for.
fn status_of(machines: &[Machine], targets: Option<&[String]>) -> AppStatus {
    let Some(targets) = targets else {
        let up: Vec<&Machine> = machines.iter().filter(|m| m.is_up()).collect();
        if up.is_empty() {
            let live = machines.iter().filter(|m| m.state != "destroyed").count();
            if live > 0
                && machines
                    .iter()
                    .all(|m| m.state == "failed" || m.state == "destroyed")
            {
                return AppStatus::Failed("every Machine failed".to_owned());
            }
            return AppStatus::Stopped;
        }
        return if up.iter().any(|m| m.state == "started") {
            AppStatus::Running
        } else {
            AppStatus::Starting
        };
    };
    let mut ready = true;
    for id in targets {
        let Some(machine) = machines.iter().find(|m| &m.id == id) else {
            return AppStatus::Failed(format!("Machine {id} is gone"));
        };
        match machine.state.as_str() {
            "started" => ready &= machine.failing_check().is_none(),
            "starting" | "created" => ready = false,
            state @ ("destroyed" | "destroying" | "replaced" | "failed") => {
                return AppStatus::Failed(format!("Machine {id} is {state}"));
            }
            state @ ("stopped" | "suspended") => {
                let why = machine
                    .failing_check()
                    .map(|check| format!(" ({check})"))
                    .unwrap_or_default();
                return AppStatus::Failed(format!(
                    "Machine {id} is {state} again after its start{why}"
                ));
            }
            // stopping, suspending, replacing, updating...: not there yet.
            _ => ready = false,
        }
    }
    if ready {
        AppStatus::Running
    } else {
        AppStatus::Starting
    }
}

impl Fly {
    /// A client for this account.
    pub fn new(config: &FlyConfig) -> Result<Fly, ProviderError> {
        Ok(Fly {
            id: config.id.clone(),
            api: ApiClient::new(config.rate_limit)?,
            token: config.token.clone(),
            api_url: config.api_url.trim_end_matches('/').to_owned(),
            org: config.org.clone(),
            apps: config.apps.clone(),
            hostname_template: config.hostname_template.clone(),
            upstream_scheme: config.upstream_scheme.clone(),
            stop_mode: config.stop_mode,
            stopped_ids: Mutex::new(HashMap::new()),
            starting_ids: Mutex::new(HashMap::new()),
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self
            .api
            .http()
            .request(method, format!("{}{path}", self.api_url))
            .header("accept", "application/json");
        // Tokens as `fly tokens create` prints them carry their own scheme (`FlyV1 fm2_...`)
        // and are sent as they are; others are bearer tokens.
        let token = self.token.expose();
        match token
            .starts_with("FlyV1 ")
            .then(|| reqwest::header::HeaderValue::from_str(token).ok())
            .flatten()
        {
            Some(mut value) => {
                value.set_sensitive(true);
                request.header(reqwest::header::AUTHORIZATION, value)
            }
            None => request.bearer_auth(token),
        }
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        what: &str,
    ) -> Result<T, ProviderError> {
        let response = self
            .api
            .send(Idempotent::Yes, || self.request(reqwest::Method::GET, path))
            .await?;
        read_json(check(response, what).await?, what).await
    }

    /// The app's Machines (odd entries skipped).
    async fn machines(&self, app: &str) -> Result<Vec<Machine>, ProviderError> {
        let entries: Vec<super::api::Entry> = self
            .get_json(
                &format!("/apps/{}/machines", percent_encode(app)),
                &format!("Machines of {app}"),
            )
            .await
            .map_err(|error| match error {
                ProviderError::NotFound(_) => ProviderError::NotFound(app.to_owned()),
                other => other,
            })?;
        Ok(parse_machines(&self.id, entries))
    }

    /// The names of the apps to manage: the organisation's, then the listed ones.
    async fn app_names(&self) -> Result<Vec<String>, ProviderError> {
        let mut names = Vec::new();
        if let Some(org) = &self.org {
            let list: AppList = self
                .get_json(
                    &format!("/apps?org_slug={}", percent_encode(org)),
                    &format!("listing the apps of {org}"),
                )
                .await?;
            names.extend(
                parse_entries::<App>(&self.id, list.apps)
                    .into_iter()
                    .map(|app| app.name),
            );
        }
        for app in &self.apps {
            if !names.contains(app) {
                names.push(app.clone());
            }
        }
        Ok(names)
    }

    /// `POST .../machines/{id}/{action}` (`start`, `stop`, `suspend`), waiting for a Machine
    /// changing state and trying again (bounded) when it refuses with 409 or 412.
    async fn act(&self, app: &str, machine: &Machine, action: &str) -> Result<(), ProviderError> {
        let base = format!(
            "/apps/{}/machines/{}",
            percent_encode(app),
            percent_encode(&machine.id)
        );
        let what = format!("{action} of Machine {} of {app}", machine.id);
        for attempt in 1..=CONFLICT_TRIES {
            // A start, stop or suspend sets a state: sending it twice does no harm.
            let response = self
                .api
                .send(Idempotent::Yes, || {
                    self.request(reqwest::Method::POST, &format!("{base}/{action}"))
                })
                .await?;
            let status = response.status();
            if status != StatusCode::CONFLICT && status != StatusCode::PRECONDITION_FAILED {
                return match check(response, &what).await {
                    Ok(_) => Ok(()),
                    // Gone meanwhile: nothing to stop; a start tries again with a new listing.
                    Err(ProviderError::NotFound(_)) if action != "start" => Ok(()),
                    Err(ProviderError::NotFound(_)) => Err(ProviderError::Failed(format!(
                        "{what}: the Machine is gone"
                    ))),
                    Err(error) => Err(error),
                };
            }
            let current: Machine = self.get_json(&base, &what).await?;
            let done = match action {
                "start" => current.is_up(),
                "stop" => matches!(current.state.as_str(), "stopped" | "suspended"),
                _ => current.state == "suspended",
            };
            if done || current.is_gone() {
                return Ok(());
            }
            if attempt == CONFLICT_TRIES {
                let body = response.text().await.unwrap_or_default();
                let excerpt: String = body.trim().chars().take(OUTPUT_EXCERPT).collect();
                return Err(ProviderError::Failed(format!(
                    "{what}: still refused after {CONFLICT_TRIES} tries (Machine {}): {excerpt}",
                    current.state
                )));
            }
            self.wait_settled(&base, &current).await?;
        }
        Ok(())
    }

    /// Waits (through the `wait` endpoint) for a Machine in a transitional state to reach
    /// the state it is heading to; a 408 only means it is not there yet.
    async fn wait_settled(&self, base: &str, machine: &Machine) -> Result<(), ProviderError> {
        let path = match (machine.state.as_str(), &machine.instance_id) {
            ("starting", _) => format!("{base}/wait?state=started&timeout={WAIT_SECONDS}"),
            ("stopping", Some(instance)) => format!(
                "{base}/wait?state=stopped&timeout={WAIT_SECONDS}&instance_id={}",
                percent_encode(instance)
            ),
            // `suspended` is not a state the endpoint waits for: poll the Machine.
            _ => return self.poll_settled(base, &machine.state).await,
        };
        let response = self
            .api
            .send(Idempotent::Yes, || {
                self.request(reqwest::Method::GET, &path)
            })
            .await?;
        match response.status() {
            StatusCode::REQUEST_TIMEOUT => Ok(()),
            // A suspend ends `suspended`, which the wait does not name: it answers 400.
            StatusCode::BAD_REQUEST => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                Ok(())
            }
            _ => check(response, "waiting for a Machine").await.map(|_| ()),
        }
    }

    /// Reads the Machine every half second until it leaves `state` (at most the `wait`
    /// endpoint's timeout).
    async fn poll_settled(&self, base: &str, state: &str) -> Result<(), ProviderError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(WAIT_SECONDS);
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let current: Machine = self.get_json(base, "reading a Machine").await?;
            if current.state != state {
                break;
            }
        }
        Ok(())
    }

    fn app_info(&self, name: String, machines: &[Machine]) -> AppInfo {
        let targets = self.targets(&name);
        let status = status_of(machines, targets.as_deref());
        let running = running_formation(machines);
        AppInfo {
            upstream: upstream(&self.upstream_scheme, &self.hostname_template, &name),
            status,
            formation: if running.is_empty() {
                default_formation(machines)
            } else {
                running
            },
            policy: PolicyOverride::default(),
            aliases: Vec::new(),
            linked: Vec::new(),
            group: None,
            name,
        }
    }

    /// The ids the last start of `app` asked for, while it is not seen ready.
    fn targets(&self, app: &str) -> Option<Vec<String>> {
        self.starting_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(app)
            .cloned()
    }
}

#[async_trait]
impl Provider for Fly {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &'static str {
        "fly"
    }

    fn rate_limit(&self) -> Option<(usize, usize)> {
        Some(self.api.rate_limit())
    }

    async fn list_apps(&self) -> Result<Vec<AppInfo>, ProviderError> {
        let mut apps = Vec::new();
        for name in self.app_names().await? {
            match self.machines(&name).await {
                Ok(machines) => apps.push(self.app_info(name, &machines)),
                // Listed but gone (or a misspelt `apps:` entry): the others still count.
                Err(ProviderError::NotFound(_)) => {
                    tracing::warn!(provider = %self.id, app = %name, "app not found, skipped");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(apps)
    }

    async fn status(&self, app: &str) -> Result<AppStatus, ProviderError> {
        let machines = self.machines(app).await?;
        let status = status_of(&machines, self.targets(app).as_deref());
        if status == AppStatus::Running {
            self.starting_ids
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(app);
        }
        Ok(status)
    }

    async fn start(
        &self,
        app: &str,
        formation: Option<&Formation>,
    ) -> Result<Started, ProviderError> {
        let machines = self.machines(app).await?;
        let remembered = self
            .stopped_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(app)
            .cloned()
            .unwrap_or_default();
        let (to_start, reconciled) = plan(app, &machines, formation, &remembered)?;
        // Readiness waits for these and for those of the wanted groups already up.
        let wanted_groups: Vec<String> = reconciled
            .as_ref()
            .map(|r| r.formation.keys().cloned().collect())
            .or_else(|| formation.map(|f| f.keys().cloned().collect()))
            .unwrap_or_default();
        let mut targets: Vec<String> = to_start.iter().map(|m| m.id.clone()).collect();
        targets.extend(
            machines
                .iter()
                .filter(|m| m.is_up() && wanted_groups.iter().any(|g| g == m.group()))
                .map(|m| m.id.clone()),
        );
        if targets.is_empty() {
            targets.extend(machines.iter().filter(|m| m.is_up()).map(|m| m.id.clone()));
        }
        if targets.is_empty() {
            return Err(ProviderError::Rejected(format!(
                "nothing to start: no Machine of `{app}` can start now"
            )));
        }
        self.starting_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(app.to_owned(), targets);
        for machine in &to_start {
            self.act(app, machine, "start").await?;
        }
        Ok(Started {
            reconciled,
            upstream: None,
        })
    }

    async fn stop(&self, app: &str) -> Result<Stopped, ProviderError> {
        let machines = self.machines(app).await?;
        let stopped = stopped(&machines);
        self.starting_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(app);
        if stopped.formation.is_none() {
            return Ok(stopped);
        }
        let running: Vec<&Machine> = machines.iter().filter(|m| m.is_up()).collect();
        self.stopped_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                app.to_owned(),
                running.iter().map(|m| m.id.clone()).collect(),
            );
        let action = match self.stop_mode {
            StopMode::Stop => "stop",
            StopMode::Suspend => "suspend",
        };
        for machine in running {
            self.act(app, machine, action).await?;
        }
        Ok(stopped)
    }

    fn poll_intervals(&self) -> PollIntervals {
        // One call a poll; Machines boot in about a second.
        PollIntervals {
            first: Duration::from_millis(300),
            max: Duration::from_secs(2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn machine(id: &str, state: &str, group: &str) -> serde_json::Value {
        json!({
            "id": id, "name": format!("m-{id}"), "state": state, "region": "cdg",
            "instance_id": format!("01H{id}"),
            "config": {
                "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 512},
                "metadata": {"fly_process_group": group}
            },
            "checks": null
        })
    }

    fn parse(entries: Vec<serde_json::Value>) -> Vec<Machine> {
        parse_machines("test", entries)
    }

    fn formation(pairs: &[(&str, u32)]) -> Formation {
        pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
    }

    #[test]
    fn odd_machines_are_skipped_and_the_rest_read() {
        let machines = parse(vec![
            machine("a1", "started", "app"),
            json!({"id": 3}),
            json!(null),
            json!({"id": "w1", "state": "started", "config": {"metadata": null}}),
        ]);
        let ids: Vec<&str> = machines.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["a1", "w1"]);
        assert_eq!(machines[1].group(), "app");
        assert_eq!(machines[0].size().as_deref(), Some("shared-cpu-1x-512mb"));
    }

    #[test]
    fn a_stop_remembers_the_running_machines_per_group_and_their_size() {
        let machines = parse(vec![
            machine("a1", "started", "app"),
            machine("a2", "started", "app"),
            machine("a3", "stopped", "app"),
            machine("w1", "starting", "worker"),
        ]);
        let stopped = stopped(&machines);
        assert_eq!(
            stopped.formation,
            Some(formation(&[("app", 2), ("worker", 1)]))
        );
        assert_eq!(
            stopped.sizes.get("worker").map(String::as_str),
            Some("shared-cpu-1x-512mb")
        );
    }

    #[test]
    fn a_start_takes_the_remembered_machines_first_and_no_more() {
        let machines = parse(vec![
            machine("a1", "stopped", "app"),
            machine("a2", "stopped", "app"),
            machine("a3", "stopped", "app"),
            machine("w1", "stopped", "worker"),
        ]);
        let wanted = formation(&[("app", 2), ("worker", 1), ("clock", 1)]);
        let remembered = vec!["a3".to_owned(), "a2".to_owned(), "w1".to_owned()];
        let (to_start, reconciled) =
            plan("shop", &machines, Some(&wanted), &remembered).expect("plan");
        let mut ids: Vec<&str> = to_start.iter().map(|m| m.id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["a2", "a3", "w1"]);
        let reconciled = reconciled.expect("clock is gone");
        assert_eq!(reconciled.dropped, ["clock"]);
        // Without a memory of ids: the counts, by id.
        let (to_start, _) =
            plan("shop", &machines, Some(&formation(&[("app", 1)])), &[]).expect("plan");
        assert_eq!(to_start.len(), 1);
        assert_eq!(to_start[0].id, "a1");
        // Nothing remembered: the stopped ones, not the never-started.
        let machines = parse(vec![
            machine("a1", "stopped", "app"),
            machine("a2", "created", "app"),
        ]);
        let (to_start, _) = plan("shop", &machines, None, &[]).expect("plan");
        assert_eq!(to_start.len(), 1);
        assert!(plan("shop", &[], None, &[]).is_err());
        // Still stopping: taken after the stopped ones (the start waits for it).
        let machines = parse(vec![
            machine("a1", "stopping", "app"),
            machine("a2", "stopped", "app"),
        ]);
        let (to_start, _) =
            plan("shop", &machines, Some(&formation(&[("app", 2)])), &[]).expect("plan");
        let ids: Vec<&str> = to_start.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["a2", "a1"]);
    }

    #[test]
    fn readiness_needs_every_started_machine_and_passing_checks() {
        let targets = vec!["a1".to_owned(), "a2".to_owned()];
        let mut machines = parse(vec![
            machine("a1", "started", "app"),
            machine("a2", "starting", "app"),
        ]);
        assert_eq!(status_of(&machines, Some(&targets)), AppStatus::Starting);
        machines[1].state = "started".to_owned();
        machines[1].checks = vec![Check {
            name: "http".to_owned(),
            status: "critical".to_owned(),
            output: " connection refused \n".to_owned(),
        }];
        assert_eq!(status_of(&machines, Some(&targets)), AppStatus::Starting);
        machines[1].checks[0].status = "passing".to_owned();
        assert_eq!(status_of(&machines, Some(&targets)), AppStatus::Running);
        machines[1].state = "stopped".to_owned();
        machines[1].checks[0].status = "critical".to_owned();
        let AppStatus::Failed(reason) = status_of(&machines, Some(&targets)) else {
            panic!("a Machine that stopped after its start fails the wake");
        };
        assert!(reason.ends_with("connection refused)"), "{reason}");
        machines[1].state = "destroyed".to_owned();
        assert!(matches!(
            status_of(&machines, Some(&targets)),
            AppStatus::Failed(_)
        ));
        // Without a start going on: any started Machine means running.
        assert_eq!(status_of(&machines, None), AppStatus::Running);
        assert_eq!(status_of(&[], None), AppStatus::Stopped);
    }

    #[test]
    fn sizes_follow_the_price_table_names() {
        let guest = |kind: &str, cpus, memory_mb| Guest {
            cpu_kind: kind.to_owned(),
            cpus,
            memory_mb,
        };
        assert_eq!(size_name(&guest("shared", 1, 256)), "shared-cpu-1x-256mb");
        assert_eq!(
            size_name(&guest("performance", 2, 4096)),
            "performance-2x-4096mb"
        );
        for (size, _) in MONTHLY_USD {
            assert_eq!(size.to_ascii_lowercase(), *size);
        }
    }

    #[test]
    fn the_upstream_comes_from_the_template() {
        let https = http::uri::Scheme::HTTPS;
        assert_eq!(
            upstream(&https, DEFAULT_HOSTNAME_TEMPLATE, "shop")
                .map(|u| u.to_string())
                .as_deref(),
            Some("https://shop.fly.dev")
        );
        assert!(upstream(&https, "{app} fly", "shop").is_none());
        assert_eq!(percent_encode("a/b c"), "a%2Fb%20c");
    }
}
