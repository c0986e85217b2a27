//! The `scalingo` provider: one Scalingo account, in one or more regions.
//!
//! Auth: the API token is exchanged for a JWT (`POST {auth_url}/v1/tokens/exchange`, Basic
//! auth with the token as password), reused until shortly before its `exp`, exchanged again
//! then, and once more on a 401. State comes from the app list (discovery) and from the app
//! plus its `ps` (readiness). Stop remembers the formation (`/containers`) and scales every
//! process type to 0; start scales back to the given formation, reduced to the process types
//! the app still has (`/containers` again, see [`super::formation`]); both follow the
//! operation until it is done. This module only speaks the API; it never decides when to act.
//!
//! As every platform's file, it also reads and checks its `providers:` entry and states its
//! credential keys and facts (own-app variable `APP`, the French grid): see [`Platform`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::{Instant, sleep};

use super::api::{ApiClient, Idempotent, check, read_json};
use super::formation::ProcessTypes;
use super::platform::{AddOnVariables, Facts, GRID_FRANCE_G_PER_KWH, Platform};
use super::{
    AppInfo, AppStatus, Formation, PollIntervals, Provider, ProviderError, Started, Stopped,
    Upstream,
};
use crate::model::PolicyOverride;
use crate::secret::Secret;
use crate::settings::{Fields, Key, Kind, Reader, is_label};

/// Default authentication host.
pub const DEFAULT_AUTH_URL: &str = "https://auth.scalingo.com";

/// The platform's documented rate limit.
pub const DEFAULT_RATE_LIMIT: usize = 60;

/// Refresh a JWT when less than this is left (or a fifth of its lifetime, if shorter).
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// How long a start or stop follows its operation before returning (the lifecycle keeps
/// polling the app's state after that).
const OPERATION_WAIT: Duration = Duration::from_secs(20);

/// `type: scalingo` in the config.
#[derive(Debug, Clone)]
pub struct ScalingoConfig {
    /// Provider id.
    pub id: String,
    /// The API token (`tk-us-...`).
    pub token: Secret,
    /// Regions whose apps are managed (`osc-fr1`, `osc-secnum-fr1`).
    pub regions: Vec<String>,
    /// API base URL (tests, proxies), `{region}` replaced by each region's name; `None`:
    /// `https://api.<region>.scalingo.com`.
    pub api_url: Option<String>,
    /// Authentication base URL.
    pub auth_url: String,
    /// Calls per minute allowed for this account.
    pub rate_limit: usize,
}

impl Platform for ScalingoConfig {
    const KIND: &'static str = "scalingo";
    const SECRET_KEYS: &'static [&'static str] = &["token"];
    const ENDPOINT_KEYS: &'static [&'static str] = &["api_url", "auth_url", "region"];
    const FACTS: Facts = Facts {
        // Set in every container to the app's name.
        own_app_variable: Some("APP"),
        prices: None,
        // Its regions are in France.
        grid_g_per_kwh: Some(GRID_FRANCE_G_PER_KWH),
    };
    const DOC: &'static str = "A Scalingo account (one or more regions).";
    const KEYS: &'static [Key] = &[
        Key::new("token", Kind::Secret, "The account's API token.").required(),
        Key::new(
            "region",
            Kind::OneOrList(&Kind::Text("region")),
            "The region(s) whose apps are managed (e.g. osc-fr1, osc-secnum-fr1).",
        )
        .default("osc-fr1"),
        Key::new(
            "api_url",
            Kind::Url,
            "API URL override (default: the region's); with several regions put {region} in it.",
        ),
        Key::new(
            "auth_url",
            Kind::Url,
            "Where the token is exchanged for a JWT.",
        )
        .default(DEFAULT_AUTH_URL),
        crate::settings::rate_limit_key("60"),
    ];
    // Its PostgreSQL and Redis add-ons set these (besides DATABASE_URL and REDIS_URL).
    const ADDON_VARIABLES: AddOnVariables = AddOnVariables {
        database: &["SCALINGO_POSTGRESQL_URL"],
        redis: &["SCALINGO_REDIS_URL"],
    };

    fn read(
        reader: &mut Reader<'_>,
        fields: &mut Fields<'_>,
        path: &str,
        _kind_path: &str,
    ) -> Option<Self> {
        reader.scalingo(fields, path)
    }

    fn secrets(&self) -> Vec<&Secret> {
        vec![&self.token]
    }

    fn build(&self) -> Result<Arc<dyn Provider>, ProviderError> {
        Ok(Arc::new(Scalingo::new(self)?))
    }
}

impl Reader<'_> {
    fn scalingo(&mut self, fields: &mut Fields<'_>, path: &str) -> Option<ScalingoConfig> {
        let token = self.required_secret(fields, "token", path);
        let regions = match fields.take("region") {
            None => vec!["osc-fr1".to_owned()],
            Some((Value::Array(items), p)) => {
                let mut regions = Vec::new();
                for (index, item) in items.iter().enumerate() {
                    let item_path = format!("{p}[{index}]");
                    if let Some(region) = self.region(item, &item_path) {
                        regions.push(region);
                    }
                }
                if regions.is_empty() && items.is_empty() {
                    self.error(&p, "must name at least one region");
                }
                regions
            }
            Some((value, p)) => self.region(value, &p).into_iter().collect(),
        };
        let api_url = self.base_url(fields, "api_url");
        if regions.len() > 1
            && let Some(url) = &api_url
            && !url.contains("{region}")
        {
            self.error(
                &format!("{path}.api_url"),
                "serves one region: put {region} in it to name each region's API",
            );
        }
        let auth_url = self
            .base_url(fields, "auth_url")
            .unwrap_or_else(|| DEFAULT_AUTH_URL.to_owned());
        let rate_limit = self.rate_limit(fields, DEFAULT_RATE_LIMIT);
        Some(ScalingoConfig {
            id: String::new(),
            token: token?,
            regions,
            api_url,
            auth_url,
            rate_limit,
        })
    }

    fn region(&mut self, value: &Value, path: &str) -> Option<String> {
        let region = self.non_empty_string(value, path)?;
        if is_label(&region) {
            Some(region)
        } else {
            self.error(
                path,
                format!("`{region}` is not a region name (e.g. osc-fr1)"),
            );
            None
        }
    }
}

/// A JWT and when to stop using it.
#[derive(Debug, Clone)]
struct Jwt {
    /// The bearer token.
    token: Secret,
    /// Wall-clock time after which it is exchanged again.
    refresh_at: SystemTime,
}

/// One Scalingo account.
#[derive(Debug)]
pub struct Scalingo {
    /// Provider id.
    id: String,
    /// HTTP client with the account's rate limit.
    api: ApiClient,
    /// The API token, sent only to the auth host.
    token: Secret,
    /// Authentication base URL.
    auth_url: String,
    /// API base URL of each configured region.
    regions: Vec<(String, String)>,
    /// The current JWT; the async lock makes concurrent callers share one exchange.
    jwt: tokio::sync::Mutex<Option<Jwt>>,
    /// Which region's API serves each app (from the last listing).
    app_regions: Mutex<HashMap<String, String>>,
}

impl Scalingo {
    /// A client for this account.
    pub fn new(config: &ScalingoConfig) -> Result<Scalingo, ProviderError> {
        let regions = config
            .regions
            .iter()
            .map(|region| {
                let api = match &config.api_url {
                    Some(url) => url
                        .replace("{region}", region)
                        .trim_end_matches('/')
                        .to_owned(),
                    None => format!("https://api.{region}.scalingo.com"),
                };
                (region.clone(), api)
            })
            .collect();
        Ok(Scalingo {
            id: config.id.clone(),
            api: ApiClient::new(config.rate_limit)?,
            token: config.token.clone(),
            auth_url: config.auth_url.trim_end_matches('/').to_owned(),
            regions,
            jwt: tokio::sync::Mutex::new(None),
            app_regions: Mutex::new(HashMap::new()),
        })
    }

    /// A valid JWT: the current one, or a new one from the token exchange. `refused` is a
    /// JWT the API just answered 401 to: it is replaced, unless another caller already did.
    async fn bearer(&self, refused: Option<&Secret>) -> Result<Secret, ProviderError> {
        let mut jwt = self.jwt.lock().await;
        if let Some(current) = jwt.as_ref()
            && SystemTime::now() < current.refresh_at
            && refused != Some(&current.token)
        {
            return Ok(current.token.clone());
        }
        let url = format!("{}/v1/tokens/exchange", self.auth_url);
        let response = self
            .api
            .send(Idempotent::Yes, || {
                self.api
                    .http()
                    .post(&url)
                    .basic_auth("", Some(self.token.expose()))
                    .header("accept", "application/json")
                    .json(&json!({}))
            })
            .await?;
        let response = check(response, "token exchange")
            .await
            .map_err(|error| match error {
                ProviderError::Unauthorized(_) => ProviderError::Unauthorized(
                    "the Scalingo API token was refused by the token exchange".to_owned(),
                ),
                other => other,
            })?;
        #[derive(Deserialize)]
        struct Exchanged {
            token: String,
        }
        let exchanged: Exchanged = response
            .json()
            .await
            // The error would quote the answer, which may hold a token: keep it out.
            .map_err(|_| ProviderError::Failed("token exchange: unexpected answer".to_owned()))?;
        let now = SystemTime::now();
        let refresh_at = match jwt_expiry(&exchanged.token) {
            Some(exp) => {
                let lifetime = exp.duration_since(now).unwrap_or(Duration::ZERO);
                exp.checked_sub(REFRESH_MARGIN.min(lifetime / 5))
                    .unwrap_or(now)
            }
            // No readable `exp`: the documented lifetime is one hour.
            None => now + Duration::from_secs(3600) - REFRESH_MARGIN,
        };
        let token = Secret::new(exchanged.token);
        *jwt = Some(Jwt {
            token: token.clone(),
            refresh_at,
        });
        tracing::debug!(provider = %self.id, "exchanged the API token for a JWT");
        Ok(token)
    }

    /// One API call with the JWT; on 401 the JWT is exchanged again and the call retried once.
    async fn call(
        &self,
        idempotent: Idempotent,
        what: &str,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        let mut refused: Option<Secret> = None;
        loop {
            let bearer = self.bearer(refused.as_ref()).await?;
            let response = self
                .api
                .send(idempotent, || {
                    build(bearer.expose()).header("accept", "application/json")
                })
                .await?;
            if response.status() == reqwest::StatusCode::UNAUTHORIZED && refused.is_none() {
                refused = Some(bearer);
                continue;
            }
            return check(response, what).await;
        }
    }

    /// The API base serving `app`.
    fn api_for(&self, app: &str) -> Result<String, ProviderError> {
        if let Some(api) = lock(&self.app_regions).get(app) {
            return Ok(api.clone());
        }
        match self.regions.as_slice() {
            [(_, api)] => Ok(api.clone()),
            _ => Err(ProviderError::NotFound(app.to_owned())),
        }
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        url: &str,
        what: &str,
    ) -> Result<T, ProviderError> {
        let response = self
            .call(Idempotent::Yes, what, |bearer| {
                self.api.http().get(url).bearer_auth(bearer)
            })
            .await?;
        read_json(response, what).await
    }

    async fn formation_of(&self, api: &str, app: &str) -> Result<Vec<Container>, ProviderError> {
        let url = format!("{api}/v1/apps/{app}/containers");
        let containers: Containers = self.get_json(&url, &format!("formation of {app}")).await?;
        Ok(containers.containers)
    }

    /// Scales `app`; "no change" counts as done. Follows the operation for a while.
    async fn scale(
        &self,
        api: &str,
        app: &str,
        containers: &[(String, u32)],
    ) -> Result<(), ProviderError> {
        let url = format!("{api}/v1/apps/{app}/scale");
        let body = json!({
            "containers": containers
                .iter()
                .map(|(name, amount)| json!({"name": name, "amount": amount}))
                .collect::<Vec<_>>()
        });
        let what = format!("scaling {app}");
        let deadline = Instant::now() + OPERATION_WAIT;
        let mut wait = Duration::from_millis(250);
        // Setting amounts is idempotent: the same scale twice ends in the same formation.
        let response = loop {
            let result = self
                .call(Idempotent::Yes, &what, |bearer| {
                    self.api.http().post(&url).bearer_auth(bearer).json(&body)
                })
                .await;
            match result {
                Ok(response) => break response,
                Err(ProviderError::Rejected(message))
                    if message.contains("no change in containers formation") =>
                {
                    return Ok(());
                }
                // 422 while another operation runs ("is restarting"): wait for it.
                Err(ProviderError::Rejected(message))
                    if message.contains("HTTP 422")
                        && (message.contains("restarting") || message.contains("operation"))
                        && Instant::now() < deadline =>
                {
                    tracing::debug!(provider = %self.id, app, %message, "operation in progress, retrying");
                    sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                Err(error) => return Err(error),
            }
        };
        // The platform accepted the scale. Following its operation is best effort: a
        // failure to read it (5xx, 429, odd answer) does not undo what was accepted.
        let Some(operation_id) = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(operation_id)
            .map(str::to_owned)
        else {
            return Ok(());
        };
        // Always on the configured API host: the JWT goes nowhere else.
        let operation = format!("{api}/v1/apps/{app}/operations/{operation_id}");
        let mut wait = Duration::from_millis(200);
        while Instant::now() < deadline {
            #[derive(Deserialize)]
            struct Wrapped {
                operation: Operation,
            }
            #[derive(Deserialize)]
            struct Operation {
                status: String,
                #[serde(default)]
                error: Option<String>,
            }
            match self.get_json::<Wrapped>(&operation, &what).await {
                Ok(wrapped) => match wrapped.operation.status.as_str() {
                    "done" => return Ok(()),
                    "error" => {
                        return Err(ProviderError::Failed(format!(
                            "{what}: operation failed: {}",
                            wrapped.operation.error.unwrap_or_default()
                        )));
                    }
                    _ => {}
                },
                Err(error) => {
                    tracing::warn!(provider = %self.id, app, %error, "cannot follow the scale operation");
                    return Ok(());
                }
            }
            sleep(wait).await;
            wait = (wait * 3 / 2).min(Duration::from_secs(2));
        }
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The `exp` claim of a JWT (no signature check: the platform checks it).
fn jwt_expiry(jwt: &str) -> Option<SystemTime> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_u64()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(exp))
}

/// `GET /v1/apps`: its entries borrowed from the body, each parsed on its own.
#[derive(Debug, Deserialize)]
struct AppList<'a> {
    #[serde(borrow)]
    apps: Vec<&'a serde_json::value::RawValue>,
}

#[derive(Debug, Deserialize)]
struct AppOne {
    app: App,
}

#[derive(Debug, Deserialize)]
struct App {
    name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Containers {
    containers: Vec<Container>,
}

#[derive(Debug, Deserialize)]
struct Container {
    name: String,
    #[serde(default)]
    amount: u32,
    #[serde(default)]
    size: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Ps {
    containers: Vec<PsContainer>,
}

#[derive(Debug, Deserialize)]
struct PsContainer {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    state: String,
}

/// The operation id at the end of a scale's `Location` (`.../operations/<id>`): only
/// letters, digits, `-` and `_`, so it cannot change the URL it is put in.
fn operation_id(location: &str) -> Option<&str> {
    location
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|id| {
            !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The apps of one region's listing; entries that do not parse are skipped.
fn listed_apps(provider: &str, listed: AppList<'_>) -> Vec<AppInfo> {
    super::api::parse_entries::<App>(provider, listed.apps)
        .into_iter()
        .map(|app| AppInfo {
            status: listed_status(&app.status),
            upstream: upstream_of(&app),
            formation: Formation::new(),
            policy: PolicyOverride::default(),
            aliases: Vec::new(),
            linked: Vec::new(),
            group: None,
            name: app.name,
        })
        .collect()
}

/// The state of one app from its `status`; `None` when it is `running`: then its
/// containers tell ([`containers_status`]).
fn status_without_ps(status: &str) -> Option<AppStatus> {
    match listed_status(status) {
        AppStatus::Running => None,
        status => Some(status),
    }
}

/// The state of a `running` app from its containers: ready once a web container runs.
fn containers_status(ps: &Ps) -> AppStatus {
    let web_running = ps
        .containers
        .iter()
        .any(|c| c.kind == "web" && c.state == "running");
    if web_running {
        AppStatus::Running
    } else {
        AppStatus::Starting
    }
}

/// What a stop remembers of these containers: the types that run, their amounts and
/// sizes (nothing when none runs).
fn stopped(containers: &[Container]) -> Stopped {
    let running = || containers.iter().filter(|c| c.amount > 0);
    let formation: Formation = running().map(|c| (c.name.clone(), c.amount)).collect();
    if formation.is_empty() {
        return Stopped::default();
    }
    Stopped {
        formation: Some(formation),
        sizes: running()
            .filter_map(|c| Some((c.name.clone(), c.size.clone()?)))
            .collect(),
    }
}

/// State from the app list alone.
fn listed_status(status: &str) -> AppStatus {
    match status {
        "running" => AppStatus::Running,
        "stopped" | "new" => AppStatus::Stopped,
        "crashed" => AppStatus::Failed("crashed".to_owned()),
        // scaling, booting, restarting, and values not documented yet.
        _ => AppStatus::Starting,
    }
}

fn upstream_of(app: &App) -> Option<Upstream> {
    let url = app.base_url.as_deref().or(app.url.as_deref())?;
    Upstream::from_url(url)
}

#[async_trait]
impl ProcessTypes for Scalingo {
    async fn read_formation(&self, app: &str) -> Result<Formation, ProviderError> {
        let api = self.api_for(app)?;
        let containers = self.formation_of(&api, app).await?;
        Ok(containers.into_iter().map(|c| (c.name, c.amount)).collect())
    }

    async fn set_amounts(&self, app: &str, amounts: &[(String, u32)]) -> Result<(), ProviderError> {
        let api = self.api_for(app)?;
        self.scale(&api, app, amounts).await
    }
}

#[async_trait]
impl Provider for Scalingo {
    fn id(&self) -> &str {
        &self.id
    }

    fn rate_limit(&self) -> Option<(usize, usize)> {
        Some(self.api.rate_limit())
    }

    fn kind(&self) -> &'static str {
        "scalingo"
    }

    async fn list_apps(&self) -> Result<Vec<AppInfo>, ProviderError> {
        let mut apps = Vec::new();
        let mut app_regions = HashMap::new();
        for (region, api) in &self.regions {
            let url = format!("{api}/v1/apps");
            let what = format!("listing apps of {region}");
            let response = self
                .call(Idempotent::Yes, &what, |bearer| {
                    self.api.http().get(&url).bearer_auth(bearer)
                })
                .await?;
            let body = super::api::read_body(response, &what).await?;
            let listed: AppList<'_> = super::api::body_json(&body, &what)?;
            for app in listed_apps(&self.id, listed) {
                app_regions.insert(app.name.clone(), api.clone());
                apps.push(app);
            }
        }
        *lock(&self.app_regions) = app_regions;
        Ok(apps)
    }

    async fn status(&self, app: &str) -> Result<AppStatus, ProviderError> {
        let api = self.api_for(app)?;
        let one: AppOne = self
            .get_json(&format!("{api}/v1/apps/{app}"), &format!("state of {app}"))
            .await?;
        if let Some(status) = status_without_ps(&one.app.status) {
            return Ok(status);
        }
        let ps: Ps = self
            .get_json(
                &format!("{api}/v1/apps/{app}/ps"),
                &format!("containers of {app}"),
            )
            .await?;
        Ok(containers_status(&ps))
    }

    async fn start(
        &self,
        app: &str,
        formation: Option<&Formation>,
    ) -> Result<Started, ProviderError> {
        super::formation::start(self, app, formation).await
    }

    async fn stop(&self, app: &str) -> Result<Stopped, ProviderError> {
        let api = self.api_for(app)?;
        let containers = self.formation_of(&api, app).await?;
        let stopped = stopped(&containers);
        if stopped.formation.is_none() {
            return Ok(stopped);
        }
        let zero: Vec<(String, u32)> = containers.iter().map(|c| (c.name.clone(), 0)).collect();
        self.scale(&api, app, &zero).await?;
        Ok(stopped)
    }

    fn poll_intervals(&self) -> PollIntervals {
        // Two calls a poll: at most ~30 a minute for one waking app, half the account's budget.
        PollIntervals {
            first: Duration::from_millis(500),
            max: Duration::from_secs(4),
        }
    }
}

/// What the engine makes of Scalingo's answers, from their bodies (for the fuzz targets).
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    use std::time::SystemTime;

    use super::super::api::body_json;
    use super::{AppList, AppOne, Containers, Ps};
    use crate::providers::{AppInfo, AppStatus, ProviderError, Stopped};

    /// The apps of a region's listing (`GET /v1/apps`).
    pub fn apps(body: &[u8]) -> Result<Vec<AppInfo>, ProviderError> {
        let listed: AppList<'_> = body_json(body, "listing apps")?;
        Ok(super::listed_apps("fuzz", listed))
    }

    /// An app's state from `GET /v1/apps/<app>`, then (only when it runs) its `ps`.
    pub fn status(app: &[u8], ps: &[u8]) -> Result<AppStatus, ProviderError> {
        let one: AppOne = body_json(app, "state")?;
        if let Some(status) = super::status_without_ps(&one.app.status) {
            return Ok(status);
        }
        let ps: Ps = body_json(ps, "containers")?;
        Ok(super::containers_status(&ps))
    }

    /// What a stop remembers from `GET /v1/apps/<app>/containers`.
    pub fn stopped(containers: &[u8]) -> Result<Stopped, ProviderError> {
        let containers: Containers = body_json(containers, "formation")?;
        Ok(super::stopped(&containers.containers))
    }

    /// The operation id of a scale's `Location` header.
    pub fn operation_id(location: &str) -> Option<&str> {
        super::operation_id(location)
    }

    /// The expiry of a JWT from the token exchange.
    pub fn jwt_expiry(jwt: &str) -> Option<SystemTime> {
        super::jwt_expiry(jwt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_expiry_of_a_jwt() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"exp":1700000000,"sub":"u"}"#);
        let jwt = format!("eyJhbGciOiJIUzUxMiJ9.{payload}.sig");
        assert_eq!(
            jwt_expiry(&jwt),
            UNIX_EPOCH.checked_add(Duration::from_secs(1_700_000_000))
        );
        assert_eq!(jwt_expiry("not-a-jwt"), None);
        assert_eq!(jwt_expiry("a.!!!.c"), None);
    }

    #[test]
    fn each_region_has_its_api() {
        let config = |api_url: Option<&str>| ScalingoConfig {
            id: "s".to_owned(),
            token: Secret::new("t"),
            regions: vec!["osc-fr1".to_owned(), "osc-secnum-fr1".to_owned()],
            api_url: api_url.map(str::to_owned),
            auth_url: DEFAULT_AUTH_URL.to_owned(),
            rate_limit: 60,
        };
        let apis = |scalingo: Scalingo| {
            scalingo
                .regions
                .into_iter()
                .map(|(_, api)| api)
                .collect::<Vec<_>>()
        };
        let default = Scalingo::new(&config(None)).expect("client");
        assert_eq!(
            apis(default),
            [
                "https://api.osc-fr1.scalingo.com",
                "https://api.osc-secnum-fr1.scalingo.com"
            ]
        );
        let proxied = Scalingo::new(&config(Some("http://proxy.test/{region}/"))).expect("client");
        assert_eq!(
            apis(proxied),
            [
                "http://proxy.test/osc-fr1",
                "http://proxy.test/osc-secnum-fr1"
            ]
        );
    }

    #[test]
    fn list_states() {
        assert_eq!(listed_status("running"), AppStatus::Running);
        assert_eq!(listed_status("stopped"), AppStatus::Stopped);
        assert_eq!(listed_status("scaling"), AppStatus::Starting);
        assert_eq!(listed_status("something-new"), AppStatus::Starting);
        assert!(matches!(listed_status("crashed"), AppStatus::Failed(_)));
    }
}
