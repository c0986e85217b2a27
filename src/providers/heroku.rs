//! The `heroku` provider: one Heroku account, through the Platform API (version 3).
//!
//! Every call carries the required `Accept` header and the bearer token. The app list is
//! paginated with `Range` (206 + `Next-Range`) and carries no state, so discovery reports
//! apps as [`AppStatus::Unknown`] (no call per app); readiness reads the formation and the
//! dynos. Stop remembers the quantities and sets every process type to 0 in one batch
//! update; start sets them back, for the process types the app still has (its formation,
//! read again: see [`super::formation`]). This module only speaks the API.
//!
//! As every platform's file, it also reads and checks its `providers:` entry and states its
//! credential keys and facts (own-app variable `HEROKU_APP_NAME`, the published dyno
//! prices): see [`Platform`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use super::api::{ApiClient, Idempotent, check, read_json};
use super::formation::ProcessTypes;
use super::platform::{Facts, Platform, PriceTable};
use super::{
    AppInfo, AppStatus, Formation, PollIntervals, Provider, ProviderError, Started, Stopped,
    Upstream,
};
use crate::model::PolicyOverride;
use crate::secret::Secret;
use crate::settings::{Fields, Key, Kind, Reader};

/// Default API base URL.
pub const DEFAULT_API_URL: &str = "https://api.heroku.com";

/// Calls per minute: the account's bucket refills about 75 a minute; stay under it.
pub const DEFAULT_RATE_LIMIT: usize = 70;

/// The media type the Platform API requires (else 406).
const ACCEPT: &str = "application/vnd.heroku+json; version=3";

/// Most list pages followed in one listing (1000 apps each).
const MAX_PAGES: usize = 100;

/// `type: heroku` in the config.
#[derive(Debug, Clone)]
pub struct HerokuConfig {
    /// Provider id.
    pub id: String,
    /// API token.
    pub token: Secret,
    /// API base URL.
    pub api_url: String,
    /// Calls per minute allowed for this account.
    pub rate_limit: usize,
}

/// Hours in the month Heroku's monthly prices are spread over (its own example: a $7 Basic
/// dyno "costs roughly $0.01/hour", i.e. 7 / 720).
const MONTH_HOURS: f64 = 720.0;

/// Heroku's published maximum monthly prices per dyno type, USD (docs/src/savings.md cites the
/// page). Eco is a flat monthly fee whatever the use: sleeping saves no money there, so it
/// has no price (hours only).
const MONTHLY_USD: &[(&str, f64)] = &[
    ("basic", 7.0),
    ("standard-1x", 25.0),
    ("standard-2x", 50.0),
    ("performance-m", 250.0),
    ("performance-l", 500.0),
];

impl Platform for HerokuConfig {
    const KIND: &'static str = "heroku";
    const SECRET_KEYS: &'static [&'static str] = &["token"];
    const ENDPOINT_KEYS: &'static [&'static str] = &["api_url"];
    const FACTS: Facts = Facts {
        // Set to the app's name with dyno metadata (`heroku labs:enable runtime-dyno-metadata`).
        own_app_variable: Some("HEROKU_APP_NAME"),
        prices: Some(PriceTable {
            currency: "USD",
            period_hours: MONTH_HOURS,
            sizes: MONTHLY_USD,
        }),
        // Where it runs is not stated: the savings' default.
        grid_g_per_kwh: None,
    };
    const DOC: &'static str = "A Heroku account.";
    const KEYS: &'static [Key] = &[
        Key::new("token", Kind::Secret, "The account's API token.").required(),
        Key::new("api_url", Kind::Url, "API URL override.").default(DEFAULT_API_URL),
        crate::settings::rate_limit_key("70"),
    ];

    fn read(
        reader: &mut Reader<'_>,
        fields: &mut Fields<'_>,
        path: &str,
        _kind_path: &str,
    ) -> Option<Self> {
        reader.heroku(fields, path)
    }

    fn secrets(&self) -> Vec<&Secret> {
        vec![&self.token]
    }

    fn build(&self) -> Result<Arc<dyn Provider>, ProviderError> {
        Ok(Arc::new(Heroku::new(self)?))
    }
}

impl Reader<'_> {
    fn heroku(&mut self, fields: &mut Fields<'_>, path: &str) -> Option<HerokuConfig> {
        let token = self.required_secret(fields, "token", path);
        let api_url = self
            .base_url(fields, "api_url")
            .unwrap_or_else(|| DEFAULT_API_URL.to_owned());
        let rate_limit = self.rate_limit(fields, DEFAULT_RATE_LIMIT);
        Some(HerokuConfig {
            id: String::new(),
            token: token?,
            api_url,
            rate_limit,
        })
    }
}

/// One Heroku account.
#[derive(Debug)]
pub struct Heroku {
    /// Provider id.
    id: String,
    /// HTTP client with the account's rate limit.
    api: ApiClient,
    /// API token.
    token: Secret,
    /// API base URL, without a trailing slash.
    api_url: String,
}

#[derive(Debug, Deserialize)]
struct App {
    name: String,
    #[serde(default)]
    web_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct FormationEntry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    quantity: u32,
    #[serde(default)]
    size: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Dyno {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    state: String,
}

impl Heroku {
    /// A client for this account.
    pub fn new(config: &HerokuConfig) -> Result<Heroku, ProviderError> {
        Ok(Heroku {
            id: config.id.clone(),
            api: ApiClient::new(config.rate_limit)?,
            token: config.token.clone(),
            api_url: config.api_url.trim_end_matches('/').to_owned(),
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.api
            .http()
            .request(method, format!("{}{path}", self.api_url))
            .header("accept", ACCEPT)
            .bearer_auth(self.token.expose())
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

    async fn formation(&self, app: &str) -> Result<Vec<FormationEntry>, ProviderError> {
        self.get_json(
            &format!("/apps/{app}/formation"),
            &format!("formation of {app}"),
        )
        .await
    }

    async fn update_formation(
        &self,
        app: &str,
        updates: &[(String, u32)],
    ) -> Result<(), ProviderError> {
        let body = json!({
            "updates": updates
                .iter()
                .map(|(kind, quantity)| json!({"type": kind, "quantity": quantity}))
                .collect::<Vec<_>>()
        });
        let path = format!("/apps/{app}/formation");
        // Setting quantities is idempotent.
        let response = self
            .api
            .send(Idempotent::Yes, || {
                self.request(reqwest::Method::PATCH, &path).json(&body)
            })
            .await?;
        check(response, &format!("scaling {app}"))
            .await
            .map_err(|error| match error {
                // A process type the app does not have is a 404 too ("Couldn't find that
                // process type"): say which types were asked for.
                ProviderError::NotFound(_) => ProviderError::Rejected(format!(
                    "scaling {app}: HTTP 404: the app or one of its process types ({}) is \
                     unknown to the platform",
                    updates
                        .iter()
                        .map(|(kind, _)| kind.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                other => other,
            })?;
        Ok(())
    }
}

/// The apps of one page of the listing (no state: the listing has none); entries that do
/// not parse are skipped.
fn page_apps(provider: &str, page: Vec<impl super::api::ListingEntry>) -> Vec<AppInfo> {
    super::api::parse_entries::<App>(provider, page)
        .into_iter()
        .map(|app| AppInfo {
            status: AppStatus::Unknown,
            upstream: app.web_url.as_deref().and_then(Upstream::from_url),
            formation: Formation::new(),
            policy: PolicyOverride::default(),
            aliases: Vec::new(),
            linked: Vec::new(),
            group: None,
            name: app.name,
        })
        .collect()
}

/// The state of an app from its formation: stopped without web dynos; `None` when some
/// are asked for: then the dynos tell ([`dynos_status`]).
fn status_without_dynos(formation: &[FormationEntry]) -> Option<AppStatus> {
    let web = formation.iter().find(|entry| entry.kind == "web");
    web.is_none_or(|web| web.quantity == 0)
        .then_some(AppStatus::Stopped)
}

/// The state of an app with web dynos asked for, from its dynos.
fn dynos_status(dynos: &[Dyno]) -> AppStatus {
    let web_dynos: Vec<&Dyno> = dynos.iter().filter(|d| d.kind == "web").collect();
    if web_dynos.iter().any(|d| d.state == "up") {
        AppStatus::Running
    } else if web_dynos.iter().any(|d| d.state == "crashed") {
        AppStatus::Failed("web dyno crashed".to_owned())
    } else {
        AppStatus::Starting
    }
}

/// What a stop remembers of this formation: the process types that run, their quantities
/// and sizes (nothing when none runs).
fn stopped(entries: &[FormationEntry]) -> Stopped {
    let running = || entries.iter().filter(|entry| entry.quantity > 0);
    let formation: Formation = running()
        .map(|entry| (entry.kind.clone(), entry.quantity))
        .collect();
    if formation.is_empty() {
        return Stopped::default();
    }
    Stopped {
        formation: Some(formation),
        sizes: running()
            .filter_map(|entry| Some((entry.kind.clone(), entry.size.clone()?)))
            .collect(),
    }
}

#[async_trait]
impl ProcessTypes for Heroku {
    async fn read_formation(&self, app: &str) -> Result<Formation, ProviderError> {
        let entries = self.formation(app).await?;
        Ok(entries.into_iter().map(|e| (e.kind, e.quantity)).collect())
    }

    async fn set_amounts(&self, app: &str, amounts: &[(String, u32)]) -> Result<(), ProviderError> {
        self.update_formation(app, amounts).await
    }
}

#[async_trait]
impl Provider for Heroku {
    fn id(&self) -> &str {
        &self.id
    }

    fn rate_limit(&self) -> Option<(usize, usize)> {
        Some(self.api.rate_limit())
    }

    fn kind(&self) -> &'static str {
        "heroku"
    }

    async fn list_apps(&self) -> Result<Vec<AppInfo>, ProviderError> {
        let mut apps = Vec::new();
        let mut range = "id ..; max=1000".to_owned();
        for _ in 0..MAX_PAGES {
            let response = self
                .api
                .send(Idempotent::Yes, || {
                    self.request(reqwest::Method::GET, "/apps")
                        .header("range", &range)
                })
                .await?;
            let response = check(response, "listing apps").await?;
            let partial = response.status() == reqwest::StatusCode::PARTIAL_CONTENT;
            let next = response
                .headers()
                .get("next-range")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if partial && next.is_none() {
                return Err(ProviderError::Failed(
                    "listing apps: a partial page without Next-Range".to_owned(),
                ));
            }
            let next = next.filter(|_| partial);
            let page: Vec<super::api::Entry> = read_json(response, "listing apps").await?;
            apps.extend(page_apps(&self.id, page));
            match next {
                Some(next) if next != range => range = next,
                _ => return Ok(apps),
            }
        }
        Err(ProviderError::Failed(format!(
            "listing apps: more than {MAX_PAGES} pages"
        )))
    }

    async fn status(&self, app: &str) -> Result<AppStatus, ProviderError> {
        let formation = self.formation(app).await?;
        if let Some(status) = status_without_dynos(&formation) {
            return Ok(status);
        }
        let dynos: Vec<Dyno> = self
            .get_json(&format!("/apps/{app}/dynos"), &format!("dynos of {app}"))
            .await?;
        Ok(dynos_status(&dynos))
    }

    async fn start(
        &self,
        app: &str,
        formation: Option<&Formation>,
    ) -> Result<Started, ProviderError> {
        super::formation::start(self, app, formation).await
    }

    async fn stop(&self, app: &str) -> Result<Stopped, ProviderError> {
        let entries = self.formation(app).await?;
        let stopped = stopped(&entries);
        if stopped.formation.is_none() {
            return Ok(stopped);
        }
        let zero: Vec<(String, u32)> = entries.iter().map(|e| (e.kind.clone(), 0)).collect();
        self.update_formation(app, &zero).await?;
        Ok(stopped)
    }

    fn poll_intervals(&self) -> PollIntervals {
        // Two calls a poll: bounded so one waking app cannot use the account's budget.
        PollIntervals {
            first: Duration::from_millis(500),
            max: Duration::from_secs(4),
        }
    }
}

/// What the engine makes of Heroku's answers, from their bodies (for the fuzz targets).
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    use super::super::api::body_json;
    use super::{Dyno, FormationEntry};
    use crate::providers::{AppInfo, AppStatus, ProviderError, Stopped};

    /// The apps of one page of `GET /apps`.
    pub fn apps(page: &[u8]) -> Result<Vec<AppInfo>, ProviderError> {
        let page: Vec<crate::providers::api::Entry> = body_json(page, "listing apps")?;
        Ok(super::page_apps("fuzz", page))
    }

    /// An app's state from `GET /apps/<app>/formation`, then (only when web dynos are asked
    /// for) `GET /apps/<app>/dynos`.
    pub fn status(formation: &[u8], dynos: &[u8]) -> Result<AppStatus, ProviderError> {
        let formation: Vec<FormationEntry> = body_json(formation, "formation")?;
        if let Some(status) = super::status_without_dynos(&formation) {
            return Ok(status);
        }
        let dynos: Vec<Dyno> = body_json(dynos, "dynos")?;
        Ok(super::dynos_status(&dynos))
    }

    /// What a stop remembers from `GET /apps/<app>/formation`.
    pub fn stopped(formation: &[u8]) -> Result<Stopped, ProviderError> {
        let formation: Vec<FormationEntry> = body_json(formation, "formation")?;
        Ok(super::stopped(&formation))
    }
}
