//! The `render` provider: one Render workspace's web services (and private services that
//! have a URL), through the REST API v1 (`https://api.render.com/v1`).
//!
//! Every call carries the bearer API key. The service list is cursor-paginated
//! (`GET /services?limit=100&cursor=…`, an array of `{cursor, service}`, followed until an
//! empty page) and says whether each service is suspended. Stop is `POST
//! /services/{id}/suspend` (remembering `numInstances` and the instance type), start is `POST
//! /services/{id}/resume`, then `POST /services/{id}/scale` only when the remembered instance
//! count differs from the platform's. Readiness: a service that is not suspended is running
//! once its latest deploy (`GET /services/{id}/deploys?limit=1`) is `live`; a resume creates
//! a new deploy, so the deploy that was latest before the resume does not count for a while.
//!
//! Route keys: the service's name, made a DNS label (lowercase, `-` for anything else); names
//! are not unique in a workspace, so services sharing one are all named
//! `<name>-<last 6 characters of the id>`; the id (`srv-…`, lowercase) is an alias. Background
//! workers, cron jobs and static sites receive no requests to wake them and are skipped.
//!
//! Rate limits: besides the account's `rate_limit`, the platform's `Ratelimit-Remaining` and
//! `Ratelimit-Reset` answers are honoured per group of endpoints as Render counts them (reads;
//! suspend/resume per service; other writes): at 0 remaining, the next call of that group
//! waits for the reset. This module only speaks the API: it never decides when to act.
//!
//! As every platform's file, it also reads and checks its `providers:` entry and states its
//! credential keys and facts (own-app variable `RENDER_SERVICE_NAME`): see [`Platform`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::{Instant, sleep_until};

use super::api::{ApiClient, Idempotent, check, read_json};
use super::platform::{Facts, Platform};
use super::{
    AppInfo, AppStatus, Formation, PollIntervals, Provider, ProviderError, Started, Stopped,
    Upstream,
};
use crate::model::PolicyOverride;
use crate::secret::Secret;
use crate::settings::{Fields, Key, Kind, Reader};

/// Default API base URL.
pub const DEFAULT_API_URL: &str = "https://api.render.com/v1";

/// Calls per minute: Render allows 400 reads and 30 other writes a minute per key, and 10
/// suspends/resumes per service a minute; stay well under.
pub const DEFAULT_RATE_LIMIT: usize = 100;

/// Services asked per page (the platform's largest).
const PAGE_LIMIT: usize = 100;

/// Most list pages followed in one listing.
const MAX_PAGES: usize = 200;

/// Longest wait a `Ratelimit-Reset` may impose before one call.
const RESET_WAIT_MAX: Duration = Duration::from_secs(60);

/// How long, after a resume, the deploy that was latest before it is taken as the old one
/// (the resume's own deploy has not been created yet), not as a sign the service is live.
const RESUME_DEPLOY_GRACE: Duration = Duration::from_secs(60);

/// Characters of the service id that qualify a shared name.
const ID_SUFFIX: usize = 6;

/// The service types that receive HTTP requests.
const PROXIED_TYPES: &[&str] = &["web_service", "private_service"];

/// `type: render` in the config.
#[derive(Debug, Clone)]
pub struct RenderConfig {
    /// Provider id.
    pub id: String,
    /// API key (Account settings, API keys).
    pub token: Secret,
    /// API base URL (the fake's in tests).
    pub api_url: String,
    /// The workspace (`ownerId`, `tea-…` or `usr-…`) whose services are managed; `None`:
    /// every workspace the key can see.
    pub owner_id: Option<String>,
    /// Calls per minute allowed for this account.
    pub rate_limit: usize,
}

impl Platform for RenderConfig {
    const KIND: &'static str = "render";
    const SECRET_KEYS: &'static [&'static str] = &["token"];
    const ENDPOINT_KEYS: &'static [&'static str] = &["api_url"];
    const FACTS: Facts = Facts {
        // Render sets it to the service's name in every service.
        own_app_variable: Some("RENDER_SERVICE_NAME"),
        // No public price source readable here: hours only, unless `savings.prices` says.
        prices: None,
        // Regions vary (Oregon, Ohio, Virginia, Frankfurt, Singapore): the savings' default.
        grid_g_per_kwh: None,
    };
    const DOC: &'static str = "A Render workspace's web and private services.";
    const KEYS: &'static [Key] = &[
        Key::new("token", Kind::Secret, "The account's API key.").required(),
        Key::new("api_url", Kind::Url, "API URL override.").default(DEFAULT_API_URL),
        Key::new(
            "owner_id",
            Kind::Text("workspace id"),
            "Only the services of this workspace (`tea-…`); default: every workspace the key \
             sees.",
        ),
        crate::settings::rate_limit_key("100"),
    ];

    fn read(
        reader: &mut Reader<'_>,
        fields: &mut Fields<'_>,
        path: &str,
        _kind_path: &str,
    ) -> Option<Self> {
        reader.render(fields, path)
    }

    fn secrets(&self) -> Vec<&Secret> {
        vec![&self.token]
    }

    fn build(&self) -> Result<Arc<dyn Provider>, ProviderError> {
        Ok(Arc::new(Render::new(self)?))
    }
}

impl Reader<'_> {
    fn render(&mut self, fields: &mut Fields<'_>, path: &str) -> Option<RenderConfig> {
        let token = self.required_secret(fields, "token", path);
        let api_url = self
            .base_url(fields, "api_url")
            .unwrap_or_else(|| DEFAULT_API_URL.to_owned());
        let owner_id = fields.take("owner_id").and_then(|(value, p)| {
            let owner = self.non_empty_string(value, &p)?;
            if !owner
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                self.error(
                    &p,
                    format!("`{owner}` is not a workspace id (such as tea-abc123)"),
                );
                return None;
            }
            Some(owner)
        });
        let rate_limit = self.rate_limit(fields, DEFAULT_RATE_LIMIT);
        Some(RenderConfig {
            id: String::new(),
            token: token?,
            api_url,
            owner_id,
            rate_limit,
        })
    }
}

/// One Render account (one workspace, or all the key sees).
#[derive(Debug)]
pub struct Render {
    /// Provider id.
    id: String,
    /// HTTP client with the account's rate limit.
    api: ApiClient,
    /// API key.
    token: Secret,
    /// API base URL, without a trailing slash.
    api_url: String,
    /// The workspace filter of the listing.
    owner_id: Option<String>,
    /// Route name -> service id, from the last listing (the engine names apps by name).
    ids: Mutex<HashMap<String, String>>,
    /// Per group of endpoints, when the platform said its budget is spent: no call of the
    /// group before then.
    blocked: Mutex<HashMap<String, Instant>>,
    /// Per service resumed: the deploy that was latest before the resume (`None`: none),
    /// and when the resume was sent (see [`RESUME_DEPLOY_GRACE`]).
    resumed: Mutex<HashMap<String, (Option<String>, Instant)>>,
}

/// One entry of `GET /services`.
#[derive(Debug, Deserialize)]
struct Entry {
    service: Service,
}

/// A service, as the list and `GET /services/{id}` describe it.
#[derive(Debug, Deserialize)]
struct Service {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    suspended: String,
    #[serde(rename = "serviceDetails", default)]
    details: Details,
}

/// The parts of `serviceDetails` the engine reads.
#[derive(Debug, Default, Deserialize)]
struct Details {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    plan: Option<String>,
    #[serde(rename = "numInstances", default)]
    num_instances: Option<u32>,
    #[serde(default)]
    autoscaling: Option<Value>,
}

/// One entry of `GET /services/{id}/deploys`.
#[derive(Debug, Deserialize)]
struct DeployEntry {
    deploy: Deploy,
}

/// A deploy: its id and status.
#[derive(Debug, Deserialize)]
struct Deploy {
    id: String,
    #[serde(default)]
    status: Option<String>,
}

impl Service {
    fn is_suspended(&self) -> bool {
        self.suspended == "suspended"
    }

    /// Instances it runs when not suspended (1 when the platform does not say).
    fn instances(&self) -> u32 {
        self.details.num_instances.unwrap_or(1)
    }
}

impl Render {
    /// A client for this account.
    pub fn new(config: &RenderConfig) -> Result<Render, ProviderError> {
        Ok(Render {
            id: config.id.clone(),
            api: ApiClient::new(config.rate_limit)?,
            token: config.token.clone(),
            api_url: config.api_url.trim_end_matches('/').to_owned(),
            owner_id: config.owner_id.clone(),
            ids: Mutex::default(),
            blocked: Mutex::default(),
            resumed: Mutex::default(),
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.api
            .http()
            .request(method, format!("{}{path}", self.api_url))
            .header("accept", "application/json")
            .bearer_auth(self.token.expose())
    }

    /// Sends one call of `group`, after the platform's reset if its budget is spent, and
    /// notes the budget it answers with.
    async fn send(
        &self,
        group: &str,
        idempotent: Idempotent,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        let until = self
            .blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(group)
            .copied();
        if let Some(until) = until
            && until > Instant::now()
        {
            tracing::debug!(provider = %self.id, group, "waiting for the platform's rate-limit reset");
            sleep_until(until).await;
        }
        let response = self.api.send(idempotent, build).await?;
        let wait = spent_budget_wait(response.headers(), unix_now());
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        match wait {
            Some(wait) => {
                blocked.insert(group.to_owned(), Instant::now() + wait);
            }
            None => {
                blocked.remove(group);
            }
        }
        Ok(response)
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        what: &str,
    ) -> Result<T, ProviderError> {
        let response = self
            .send("read", Idempotent::Yes, || {
                self.request(reqwest::Method::GET, path)
            })
            .await?;
        read_json(check(response, what).await?, what).await
    }

    /// The service id of `app` (a route name of the last listing, or an id), listing again
    /// when the name is not known.
    async fn service_id(&self, app: &str) -> Result<String, ProviderError> {
        if let Some(id) = self.known_id(app) {
            return Ok(id);
        }
        if app.starts_with("srv-") {
            return Ok(app.to_owned());
        }
        self.list_apps().await?;
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

    async fn service(&self, id: &str) -> Result<Service, ProviderError> {
        self.get_json(&format!("/services/{id}"), &format!("service {id}"))
            .await
    }

    /// The latest deploy of a service, if it has any.
    async fn latest_deploy(&self, id: &str) -> Result<Option<Deploy>, ProviderError> {
        let what = format!("deploys of {id}");
        let entries: Vec<Value> = self
            .get_json(&format!("/services/{id}/deploys?limit=1"), &what)
            .await?;
        Ok(super::api::parse_entries::<DeployEntry>(&self.id, entries)
            .into_iter()
            .next()
            .map(|entry| entry.deploy))
    }

    /// `POST /services/{id}/<action>` (suspend, resume, scale), 202 expected.
    async fn post(&self, id: &str, action: &str, body: Option<Value>) -> Result<(), ProviderError> {
        let path = format!("/services/{id}/{action}");
        let group = match action {
            "suspend" | "resume" => format!("service {id}"),
            _ => "write".to_owned(),
        };
        // Suspending a suspended service, or resuming a running one, changes nothing more:
        // both are safe to send again; so is a scale to an absolute count.
        let response = self
            .send(&group, Idempotent::Yes, || {
                let request = self.request(reqwest::Method::POST, &path);
                match &body {
                    Some(body) => request.json(body),
                    None => request,
                }
            })
            .await?;
        check(response, &format!("{action} {id}")).await?;
        Ok(())
    }
}

/// How long to wait before the next call when the answer says the budget is spent
/// (`Ratelimit-Remaining: 0`): until `Ratelimit-Reset`, read as UTC epoch seconds when it
/// is one (as documented) and as seconds from now otherwise (as the documented example
/// reads), at most [`RESET_WAIT_MAX`], at least a second.
fn spent_budget_wait(headers: &reqwest::header::HeaderMap, now_unix: u64) -> Option<Duration> {
    let number = |name: &str| -> Option<u64> {
        headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok()
    };
    if number("ratelimit-remaining")? > 0 {
        return None;
    }
    let reset = number("ratelimit-reset").unwrap_or(1);
    let seconds = if reset > 1_000_000_000 {
        reset.saturating_sub(now_unix)
    } else {
        reset
    };
    Some(Duration::from_secs(seconds.max(1)).min(RESET_WAIT_MAX))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A service name as a route key: lowercase letters, digits and single `-`.
fn label(name: &str) -> String {
    let mut label = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            label.push(c.to_ascii_lowercase());
        } else if !label.ends_with('-') {
            label.push('-');
        }
    }
    label.trim_matches('-').to_owned()
}

/// The services of a listing that receive requests, as apps (the entries that do not parse,
/// the types that receive no requests and the private services without a URL are skipped).
fn listed_apps(provider: &str, entries: Vec<Value>) -> Vec<(String, AppInfo)> {
    let services: Vec<Service> = super::api::parse_entries::<Entry>(provider, entries)
        .into_iter()
        .map(|entry| entry.service)
        .filter(|service| {
            let proxied = PROXIED_TYPES.contains(&service.kind.as_str());
            if !proxied {
                tracing::debug!(provider, service = %service.name, kind = %service.kind,
                    "skipping a service that receives no requests");
            }
            proxied
        })
        .filter(|service| {
            let upstream = service.details.url.as_deref().and_then(Upstream::from_url);
            if upstream.is_none() {
                tracing::debug!(provider, service = %service.name,
                    "skipping a service without a URL to forward to");
            }
            upstream.is_some()
        })
        .collect();
    let mut seen: HashSet<String> = HashSet::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for service in &services {
        *counts.entry(label(&service.name)).or_default() += 1;
    }
    services
        .into_iter()
        .map(|service| {
            let id = service.id.to_ascii_lowercase();
            let base = label(&service.name);
            let name = if base.is_empty() {
                id.clone()
            } else if counts.get(&base).is_some_and(|n| *n > 1) {
                let mut suffix: Vec<char> = id.chars().rev().take(ID_SUFFIX).collect();
                suffix.reverse();
                format!("{base}-{}", label(&suffix.into_iter().collect::<String>()))
            } else {
                base
            };
            let status = if service.is_suspended() {
                AppStatus::Stopped
            } else {
                AppStatus::Running
            };
            let formation: Formation = [("web".to_owned(), service.instances())]
                .into_iter()
                .collect();
            let info = AppInfo {
                status,
                upstream: service.details.url.as_deref().and_then(Upstream::from_url),
                formation,
                policy: PolicyOverride::default(),
                aliases: if id == name { Vec::new() } else { vec![id] },
                linked: Vec::new(),
                group: None,
                name,
            };
            (service.id, info)
        })
        // What still shares a name (the same id listed twice, ids ending alike, a qualified
        // name that is another service's own): the first keeps it, the others are skipped.
        .filter(|(id, info)| {
            let first = seen.insert(info.name.clone());
            if !first {
                tracing::warn!(provider, service = %id, name = %info.name,
                    "skipping a service whose name another one already has");
            }
            first
        })
        .collect()
}

/// The state of a service that is not suspended, from its latest deploy.
fn deploy_status(deploy: Option<&Deploy>) -> AppStatus {
    let Some(deploy) = deploy else {
        return AppStatus::Failed("the service has no deploy".to_owned());
    };
    match deploy.status.as_deref().unwrap_or("") {
        "live" => AppStatus::Running,
        "created"
        | "queued"
        | "build_in_progress"
        | "update_in_progress"
        | "pre_deploy_in_progress"
        | "" => AppStatus::Starting,
        failed @ ("build_failed" | "update_failed" | "pre_deploy_failed" | "canceled") => {
            AppStatus::Failed(format!("latest deploy {failed}"))
        }
        // `deactivated` (replaced by a newer one) or a status added later: not ready yet.
        _ => AppStatus::Starting,
    }
}

/// What a stop remembers of a service: its instances and instance type.
fn stopped(service: &Service) -> Stopped {
    // No instance counted (an odd answer): nothing to restore, the platform's count stands.
    let instances = service.instances();
    if instances == 0 {
        return Stopped::default();
    }
    Stopped {
        formation: Some([("web".to_owned(), instances)].into_iter().collect()),
        sizes: service
            .details
            .plan
            .iter()
            .map(|plan| ("web".to_owned(), plan.clone()))
            .collect(),
    }
}

#[async_trait]
impl Provider for Render {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &'static str {
        "render"
    }

    fn rate_limit(&self) -> Option<(usize, usize)> {
        Some(self.api.rate_limit())
    }

    async fn list_apps(&self) -> Result<Vec<AppInfo>, ProviderError> {
        let mut apps = Vec::new();
        let mut ids = HashMap::new();
        let mut entries: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut path = format!("/services?limit={PAGE_LIMIT}");
            if let Some(owner) = &self.owner_id {
                path.push_str(&format!("&ownerId={owner}"));
            }
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={}", query_value(cursor)));
            }
            let page: Vec<Value> = self.get_json(&path, "listing services").await?;
            let next = page
                .iter()
                .rev()
                .find_map(|entry| entry.get("cursor")?.as_str().map(str::to_owned));
            let empty = page.is_empty();
            entries.extend(page);
            match next {
                Some(next) if !empty && cursor.as_ref() != Some(&next) => cursor = Some(next),
                _ => {
                    for (id, app) in listed_apps(&self.id, entries) {
                        ids.insert(app.name.clone(), id);
                        apps.push(app);
                    }
                    *self.ids.lock().unwrap_or_else(|p| p.into_inner()) = ids;
                    return Ok(apps);
                }
            }
        }
        Err(ProviderError::Failed(format!(
            "listing services: more than {MAX_PAGES} pages"
        )))
    }

    async fn status(&self, app: &str) -> Result<AppStatus, ProviderError> {
        let id = self.service_id(app).await?;
        let service = self.service(&id).await?;
        if service.is_suspended() {
            return Ok(AppStatus::Stopped);
        }
        let deploy = self.latest_deploy(&id).await?;
        let before_resume = {
            let mut resumed = self.resumed.lock().unwrap_or_else(|p| p.into_inner());
            match resumed.get(&id) {
                Some((before, at))
                    if at.elapsed() < RESUME_DEPLOY_GRACE
                        && before.as_deref() == deploy.as_ref().map(|d| d.id.as_str()) =>
                {
                    true
                }
                _ => {
                    resumed.remove(&id);
                    false
                }
            }
        };
        if before_resume {
            return Ok(AppStatus::Starting);
        }
        Ok(deploy_status(deploy.as_ref()))
    }

    async fn start(
        &self,
        app: &str,
        formation: Option<&Formation>,
    ) -> Result<Started, ProviderError> {
        let id = self.service_id(app).await?;
        let service = self.service(&id).await?;
        if service.is_suspended() {
            let before = self.latest_deploy(&id).await?.map(|deploy| deploy.id);
            self.post(&id, "resume", None).await?;
            self.resumed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone(), (before, Instant::now()));
        }
        let wanted = formation
            .and_then(|formation| formation.get("web"))
            .copied()
            .filter(|n| *n > 0);
        if let Some(wanted) = wanted
            && wanted != service.instances()
            && service.details.autoscaling.is_none()
        {
            // The service is resumed either way: a refused count (the free instance type
            // runs one instance) leaves it as the platform has it.
            match self
                .post(&id, "scale", Some(json!({ "numInstances": wanted })))
                .await
            {
                Ok(()) => {}
                Err(ProviderError::Rejected(reason)) => {
                    tracing::warn!(provider = %self.id, app, %reason,
                        "the instance count was not restored");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(Started {
            reconciled: None,
            upstream: service.details.url.as_deref().and_then(Upstream::from_url),
        })
    }

    async fn stop(&self, app: &str) -> Result<Stopped, ProviderError> {
        let id = self.service_id(app).await?;
        let service = self.service(&id).await?;
        let stopped = stopped(&service);
        if !service.is_suspended() {
            self.post(&id, "suspend", None).await?;
        }
        Ok(stopped)
    }

    fn poll_intervals(&self) -> PollIntervals {
        // Two reads a poll; a resume redeploys, which takes a while.
        PollIntervals {
            first: Duration::from_millis(500),
            max: Duration::from_secs(4),
        }
    }
}

/// A cursor as a query value (percent-encoded beyond unreserved characters).
fn query_value(text: &str) -> String {
    let mut encoded = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// What the engine makes of Render's answers, from their bodies (for the fuzz targets).
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    use super::super::api::body_json;
    use super::{DeployEntry, Service};
    use crate::providers::{AppInfo, AppStatus, ProviderError, Stopped};

    /// The apps of one page of `GET /services`.
    pub fn services(page: &[u8]) -> Result<Vec<AppInfo>, ProviderError> {
        let page: Vec<serde_json::Value> = body_json(page, "listing services")?;
        Ok(super::listed_apps("fuzz", page)
            .into_iter()
            .map(|(_, app)| app)
            .collect())
    }

    /// A running service's state from `GET /services/{id}/deploys?limit=1`.
    pub fn status(deploys: &[u8]) -> Result<AppStatus, ProviderError> {
        let entries: Vec<serde_json::Value> = body_json(deploys, "deploys")?;
        let deploy = super::super::api::parse_entries::<DeployEntry>("fuzz", entries)
            .into_iter()
            .next()
            .map(|entry| entry.deploy);
        Ok(super::deploy_status(deploy.as_ref()))
    }

    /// What a stop remembers from `GET /services/{id}`.
    pub fn stopped(service: &[u8]) -> Result<Stopped, ProviderError> {
        let service: Service = body_json(service, "service")?;
        Ok(super::stopped(&service))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(id: &str, name: &str, kind: &str, suspended: bool) -> Value {
        json!({
            "cursor": format!("c-{id}"),
            "service": {
                "id": id,
                "name": name,
                "type": kind,
                "suspended": if suspended { "suspended" } else { "not_suspended" },
                "serviceDetails": {
                    "url": format!("https://{}.onrender.com", label(name)),
                    "plan": "starter",
                    "numInstances": 2,
                    "region": "frankfurt"
                }
            }
        })
    }

    #[test]
    fn lists_web_and_private_services_with_their_ids_as_aliases() {
        let page = vec![
            service("srv-AAA111", "Shop API", "web_service", false),
            service("srv-bbb222", "internal", "private_service", true),
            service("srv-ccc333", "jobs", "background_worker", false),
            service("srv-ddd444", "site", "static_site", false),
            json!({"cursor": "odd", "service": null}),
            json!("not a service"),
        ];
        let apps = listed_apps("r", page);
        let names: Vec<&str> = apps.iter().map(|(_, app)| app.name.as_str()).collect();
        assert_eq!(names, ["shop-api", "internal"]);
        let (id, shop) = &apps[0];
        assert_eq!(id, "srv-AAA111");
        assert_eq!(shop.aliases, ["srv-aaa111"]);
        assert_eq!(shop.status, AppStatus::Running);
        assert_eq!(shop.formation.get("web"), Some(&2));
        assert!(shop.upstream.is_some());
        assert_eq!(apps[1].1.status, AppStatus::Stopped);
    }

    #[test]
    fn shared_names_are_qualified_by_the_end_of_their_id() {
        let page = vec![
            service("srv-one123456", "api", "web_service", false),
            service("srv-two654321", "API", "web_service", false),
            service("srv-three", "front", "web_service", false),
        ];
        let names: Vec<String> = listed_apps("r", page)
            .into_iter()
            .map(|(_, app)| app.name)
            .collect();
        assert_eq!(names, ["api-123456", "api-654321", "front"]);

        // Ids ending alike, the same id twice, a qualified name that is another's own: one
        // app per name, the first listed.
        let page = vec![
            service("srv-aaa123456", "web", "web_service", false),
            service("srv-bbb123456", "Web", "web_service", false),
            service("srv-ccc", "web-123456", "web_service", false),
            service("srv-ddd", "shop", "web_service", false),
            service("srv-ddd", "other", "web_service", false),
        ];
        let apps = listed_apps("r", page);
        let names: Vec<&str> = apps.iter().map(|(_, app)| app.name.as_str()).collect();
        assert_eq!(names, ["web-123456", "shop", "other"]);
    }

    #[test]
    fn private_services_without_a_url_are_skipped() {
        let mut private = service("srv-p", "db-proxy", "private_service", false);
        private["service"]["serviceDetails"]
            .as_object_mut()
            .unwrap()
            .remove("url");
        assert!(listed_apps("r", vec![private]).is_empty());
    }

    #[test]
    fn a_stop_remembers_only_instances_that_ran() {
        let read = |details: Value| -> Service {
            serde_json::from_value(json!({"id": "srv-1", "name": "web", "type": "web_service",
                "suspended": "not_suspended", "serviceDetails": details}))
            .expect("service")
        };
        let ran = stopped(&read(json!({"numInstances": 3, "plan": "standard"})));
        assert_eq!(
            ran.formation,
            Some([("web".to_owned(), 3)].into_iter().collect())
        );
        assert_eq!(ran.sizes.get("web").map(String::as_str), Some("standard"));
        assert_eq!(
            stopped(&read(json!({"numInstances": 0, "plan": "pro"}))),
            Stopped::default()
        );
    }

    #[test]
    fn deploy_states() {
        let deploy = |status: &str| Deploy {
            id: "dep-1".to_owned(),
            status: Some(status.to_owned()),
        };
        assert_eq!(deploy_status(Some(&deploy("live"))), AppStatus::Running);
        for starting in [
            "created",
            "queued",
            "build_in_progress",
            "update_in_progress",
        ] {
            assert_eq!(deploy_status(Some(&deploy(starting))), AppStatus::Starting);
        }
        for failed in ["build_failed", "update_failed", "canceled"] {
            assert_eq!(
                deploy_status(Some(&deploy(failed))),
                AppStatus::Failed(format!("latest deploy {failed}"))
            );
        }
        assert!(matches!(deploy_status(None), AppStatus::Failed(_)));
    }

    #[test]
    fn a_spent_budget_waits_for_the_reset() {
        let headers = |remaining: &str, reset: &str| {
            let mut map = reqwest::header::HeaderMap::new();
            map.insert("ratelimit-remaining", remaining.parse().unwrap());
            map.insert("ratelimit-reset", reset.parse().unwrap());
            map
        };
        assert_eq!(spent_budget_wait(&headers("3", "20"), 0), None);
        assert_eq!(
            spent_budget_wait(&headers("0", "20"), 0),
            Some(Duration::from_secs(20))
        );
        // UTC epoch seconds, as documented.
        assert_eq!(
            spent_budget_wait(&headers("0", "1700000030"), 1_700_000_000),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            spent_budget_wait(&headers("0", "99999"), 0),
            Some(RESET_WAIT_MAX)
        );
        assert_eq!(
            spent_budget_wait(&reqwest::header::HeaderMap::new(), 0),
            None
        );
    }

    #[test]
    fn names_become_labels() {
        assert_eq!(label("My App_2"), "my-app-2");
        assert_eq!(label("--x--"), "x");
        assert_eq!(query_value("a b/c"), "a%20b%2Fc");
    }
}
