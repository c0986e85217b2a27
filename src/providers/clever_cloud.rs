//! The `clever-cloud` provider: one Clever Cloud account (the user's own apps, or one
//! organisation's), through API v2.
//!
//! Auth is either OAuth 1.0a with the PLAINTEXT signature (consumer key and secret, token and
//! token secret) or a bearer API token (api-bridge host). Start is `POST .../instances`, stop
//! `DELETE .../instances` (the platform keeps the scaling settings, so there is no formation
//! to remember). Start reads the app first, by the id of the last listing or, when that id
//! is gone (the app was created again under its name), by the one a new listing gives, and
//! returns the app's address as read then. State is computed as clever-client does: from
//! the app's `state`, its last deployment and its instances. Route keys: the app name,
//! `app_<uuid>` and `app-<uuid>`.
//!
//! As every platform's file, it also reads and checks its `providers:` entry and states its
//! credential keys and facts (own-app variable `APP_ID`, the French grid): see [`Platform`].
//! It never decides when to act.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::Deserialize;

use super::api::{ApiClient, Idempotent, check, percent_encode, read_json};
use super::platform::{AddOnVariables, Facts, GRID_FRANCE_G_PER_KWH, Platform};
use super::{
    AppInfo, AppStatus, Formation, PollIntervals, Provider, ProviderError, Started, Stopped,
    Upstream,
};
use crate::model::PolicyOverride;
use crate::secret::Secret;
use crate::settings::{Fields, Key, Kind, Reader};

/// API host for OAuth 1.0a credentials.
pub const DEFAULT_OAUTH_API_URL: &str = "https://api.clever-cloud.com";

/// API host for bearer API tokens.
pub const DEFAULT_BRIDGE_API_URL: &str = "https://api-bridge.clever-cloud.com";

/// No documented limit: be gentle.
pub const DEFAULT_RATE_LIMIT: usize = 60;

/// How the account authenticates.
#[derive(Debug, Clone)]
pub enum CleverAuth {
    /// OAuth 1.0a, PLAINTEXT signature.
    OAuth {
        /// Consumer key.
        consumer_key: Secret,
        /// Consumer secret.
        consumer_secret: Secret,
        /// Token.
        token: Secret,
        /// Token secret.
        secret: Secret,
    },
    /// Bearer API token.
    ApiToken(Secret),
}

/// `type: clever-cloud` in the config.
#[derive(Debug, Clone)]
pub struct CleverConfig {
    /// Provider id.
    pub id: String,
    /// Credentials.
    pub auth: CleverAuth,
    /// `orga_...`: manage this organisation's apps instead of the user's own.
    pub organisation: Option<String>,
    /// API base URL.
    pub api_url: String,
    /// Scheme used to reach apps on their vhost (`https` on the platform).
    pub upstream_scheme: http::uri::Scheme,
    /// Calls per minute allowed for this account.
    pub rate_limit: usize,
}

impl Platform for CleverConfig {
    const KIND: &'static str = "clever-cloud";
    const SECRET_KEYS: &'static [&'static str] = &[
        "api_token",
        "consumer_key",
        "consumer_secret",
        "token",
        "secret",
    ];
    const ENDPOINT_KEYS: &'static [&'static str] = &["api_url"];
    const FACTS: Facts = Facts {
        // Set in every instance to the app's id (`app_<uuid>`, one of its route keys).
        own_app_variable: Some("APP_ID"),
        prices: None,
        // It runs in France.
        grid_g_per_kwh: Some(GRID_FRANCE_G_PER_KWH),
    };
    const DOC: &'static str =
        "A Clever Cloud account: an API token, or the four OAuth 1 credentials.";
    const KEYS: &'static [Key] = &[
        Key::new(
            "api_token",
            Kind::Secret,
            "An API token (instead of the OAuth credentials).",
        ),
        Key::new("consumer_key", Kind::Secret, "OAuth consumer key."),
        Key::new("consumer_secret", Kind::Secret, "OAuth consumer secret."),
        Key::new("token", Kind::Secret, "OAuth token."),
        Key::new("secret", Kind::Secret, "OAuth token secret."),
        Key::new(
            "organisation",
            Kind::Text("organisation id"),
            "orga_...: that organisation's apps instead of the user's.",
        ),
        Key::new(
            "api_url",
            Kind::Url,
            "API URL override (default: api.clever-cloud.com with OAuth, the API bridge with a \
             token).",
        ),
        Key::new(
            "upstream_scheme",
            Kind::Enum(&["https", "http"]),
            "How apps are reached on their vhost.",
        )
        .default("https"),
        crate::settings::rate_limit_key("60"),
    ];
    // Its PostgreSQL add-on sets this (its Redis add-on sets the generic REDIS_URL).
    const ADDON_VARIABLES: AddOnVariables = AddOnVariables {
        database: &["POSTGRESQL_ADDON_URI"],
        redis: &[],
    };

    fn read(
        reader: &mut Reader<'_>,
        fields: &mut Fields<'_>,
        path: &str,
        _kind_path: &str,
    ) -> Option<Self> {
        reader.clever(fields, path)
    }

    fn secrets(&self) -> Vec<&Secret> {
        match &self.auth {
            CleverAuth::OAuth {
                consumer_key,
                consumer_secret,
                token,
                secret,
            } => vec![consumer_key, consumer_secret, token, secret],
            CleverAuth::ApiToken(token) => vec![token],
        }
    }

    fn build(&self) -> Result<Arc<dyn Provider>, ProviderError> {
        Ok(Arc::new(CleverCloud::new(self)?))
    }
}

impl Reader<'_> {
    fn clever(&mut self, fields: &mut Fields<'_>, path: &str) -> Option<CleverConfig> {
        let api_token = self.secret(fields, "api_token", path);
        let oauth_keys = ["consumer_key", "consumer_secret", "token", "secret"];
        let any_oauth = oauth_keys
            .iter()
            .any(|key| fields.has(key) || fields.has(&format!("{key}_file")));
        let auth = if api_token.is_some() || (!any_oauth && fields.has("api_token")) {
            if any_oauth {
                self.error(
                    path,
                    "set either api_token or consumer_key, consumer_secret, token and secret, not both",
                );
            }
            api_token.map(CleverAuth::ApiToken)
        } else if any_oauth {
            let consumer_key = self.required_secret(fields, "consumer_key", path);
            let consumer_secret = self.required_secret(fields, "consumer_secret", path);
            let token = self.required_secret(fields, "token", path);
            let secret = self.required_secret(fields, "secret", path);
            match (consumer_key, consumer_secret, token, secret) {
                (Some(consumer_key), Some(consumer_secret), Some(token), Some(secret)) => {
                    Some(CleverAuth::OAuth {
                        consumer_key,
                        consumer_secret,
                        token,
                        secret,
                    })
                }
                _ => None,
            }
        } else {
            self.error(
                path,
                "missing credentials: api_token, or consumer_key, consumer_secret, token and secret",
            );
            None
        };
        let organisation = fields
            .take("organisation")
            .and_then(|(v, p)| self.non_empty_string(v, &p));
        let api_url = self.base_url(fields, "api_url");
        let upstream_scheme = match fields.take("upstream_scheme") {
            None => http::uri::Scheme::HTTPS,
            Some((value, p)) => match self.string(value, &p).as_deref() {
                Some("https") => http::uri::Scheme::HTTPS,
                Some("http") => http::uri::Scheme::HTTP,
                Some(other) => {
                    self.error(
                        &p,
                        format!("`{other}` is not a scheme (expected https or http)"),
                    );
                    http::uri::Scheme::HTTPS
                }
                None => http::uri::Scheme::HTTPS,
            },
        };
        let rate_limit = self.rate_limit(fields, DEFAULT_RATE_LIMIT);
        let auth = auth?;
        let api_url = api_url.unwrap_or_else(|| {
            match auth {
                CleverAuth::ApiToken(_) => DEFAULT_BRIDGE_API_URL,
                CleverAuth::OAuth { .. } => DEFAULT_OAUTH_API_URL,
            }
            .to_owned()
        });
        Some(CleverConfig {
            id: String::new(),
            auth,
            organisation,
            api_url,
            upstream_scheme,
            rate_limit,
        })
    }
}

/// One Clever Cloud account.
#[derive(Debug)]
pub struct CleverCloud {
    /// Provider id.
    id: String,
    /// HTTP client with the account's rate limit.
    api: ApiClient,
    /// Credentials.
    auth: CleverAuth,
    /// `/v2/self` or `/v2/organisations/<id>`.
    owner_path: String,
    /// API base URL.
    api_url: String,
    /// Scheme for upstreams.
    upstream_scheme: http::uri::Scheme,
    /// App name -> app id, from the last listing.
    ids: Mutex<HashMap<String, String>>,
}

#[derive(Debug, Deserialize)]
struct App {
    id: String,
    name: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    vhosts: Vec<Vhost>,
}

#[derive(Debug, Deserialize)]
struct Vhost {
    fqdn: String,
}

#[derive(Debug, Deserialize)]
struct Instance {
    #[serde(default)]
    state: String,
}

#[derive(Debug, Deserialize)]
struct Deployment {
    #[serde(default)]
    state: String,
}

impl CleverCloud {
    /// A client for this account.
    pub fn new(config: &CleverConfig) -> Result<CleverCloud, ProviderError> {
        let owner_path = match &config.organisation {
            Some(orga) => format!("/v2/organisations/{orga}"),
            None => "/v2/self".to_owned(),
        };
        Ok(CleverCloud {
            id: config.id.clone(),
            api: ApiClient::new(config.rate_limit)?,
            auth: config.auth.clone(),
            owner_path,
            api_url: config.api_url.trim_end_matches('/').to_owned(),
            upstream_scheme: config.upstream_scheme.clone(),
            ids: Mutex::new(HashMap::new()),
        })
    }

    /// The `Authorization` header value. Built per request (fresh nonce and timestamp).
    fn authorization(&self) -> String {
        match &self.auth {
            CleverAuth::ApiToken(token) => format!("Bearer {}", token.expose()),
            CleverAuth::OAuth {
                consumer_key,
                consumer_secret,
                token,
                secret,
            } => {
                let timestamp = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let nonce: String = (0..24).map(|_| fastrand::alphanumeric()).collect();
                let signature = format!(
                    "{}&{}",
                    percent_encode(consumer_secret.expose()),
                    percent_encode(secret.expose())
                );
                format!(
                    "OAuth oauth_consumer_key=\"{}\", oauth_token=\"{}\", oauth_signature_method=\"PLAINTEXT\", oauth_signature=\"{}\", oauth_timestamp=\"{timestamp}\", oauth_nonce=\"{nonce}\", oauth_version=\"1.0\"",
                    percent_encode(consumer_key.expose()),
                    percent_encode(token.expose()),
                    percent_encode(&signature),
                )
            }
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self
            .api
            .http()
            .request(method, format!("{}{path}", self.api_url))
            .header("accept", "application/json");
        match reqwest::header::HeaderValue::from_str(&self.authorization()) {
            Ok(mut authorization) => {
                authorization.set_sensitive(true);
                request.header(reqwest::header::AUTHORIZATION, authorization)
            }
            // Only a credential with control characters gets here; the call then fails as
            // unauthorized, and the value is never shown.
            Err(_) => request,
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
        let response = check(response, what)
            .await
            .map_err(|error| self.explain(error))?;
        read_json(response, what).await
    }

    fn explain(&self, error: ProviderError) -> ProviderError {
        match error {
            ProviderError::Unauthorized(_) => ProviderError::Unauthorized(
                match self.auth {
                    CleverAuth::ApiToken(_) => "the Clever Cloud API token was refused",
                    CleverAuth::OAuth { .. } => "the Clever Cloud OAuth credentials were refused",
                }
                .to_owned(),
            ),
            other => other,
        }
    }

    fn app_path(&self, app: &str) -> Result<String, ProviderError> {
        let ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        let id = ids
            .get(app)
            .ok_or_else(|| ProviderError::NotFound(app.to_owned()))?;
        Ok(format!("{}/applications/{id}", self.owner_path))
    }
}

/// Where an app's requests go: its default vhost (`app-<uuid>.cleverapps.io`) when listed,
/// else its first vhost, else the default one.
fn upstream_of(scheme: &http::uri::Scheme, app: &App) -> Option<Upstream> {
    let default = app.id.replacen("app_", "app-", 1) + ".cleverapps.io";
    let fqdn = app
        .vhosts
        .iter()
        .map(|vhost| vhost.fqdn.trim_end_matches('/'))
        .find(|fqdn| *fqdn == default)
        .or_else(|| app.vhosts.first().map(|v| v.fqdn.trim_end_matches('/')))
        .unwrap_or(&default);
    Upstream::from_url(&format!("{scheme}://{fqdn}"))
}

/// The apps of a listing (entries that do not parse are skipped), and each one's id by
/// the name it is managed under. Of two apps sharing a name, the second is managed under
/// its id; one whose id is taken too (another app is named so) is left out: two apps
/// under one name would each get the other's starts and stops.
fn listed_apps(
    provider: &str,
    listed: Vec<impl super::api::ListingEntry>,
    scheme: &http::uri::Scheme,
) -> (Vec<AppInfo>, HashMap<String, String>) {
    let listed: Vec<App> = super::api::parse_entries(provider, listed);
    let mut ids = HashMap::new();
    let mut apps = Vec::with_capacity(listed.len());
    for app in listed {
        let name = if !ids.contains_key(&app.name) {
            app.name.clone()
        } else if !ids.contains_key(&app.id) {
            tracing::warn!(provider, app = %app.name, "two apps share this name; the second is reachable by its id only");
            app.id.clone()
        } else {
            tracing::warn!(provider, app = %app.name, id = %app.id, "other apps are named as this app and as its id: it is not managed");
            continue;
        };
        ids.insert(name.clone(), app.id.clone());
        let dashed = app.id.replacen("app_", "app-", 1);
        apps.push(AppInfo {
            status: listed_status(&app.state),
            upstream: upstream_of(scheme, &app),
            formation: Formation::new(),
            policy: PolicyOverride::default(),
            aliases: vec![app.id.to_ascii_lowercase(), dashed.to_ascii_lowercase()],
            linked: Vec::new(),
            group: None,
            name,
        });
    }
    (apps, ids)
}

/// What an app's own `state` tells, or what else must be read to know its state.
#[derive(Debug, PartialEq, Eq)]
enum StateOf {
    /// The state itself.
    Known(AppStatus),
    /// It wants to be up: its last deployment tells ([`deployments_status`]).
    LastDeployment,
    /// It should be up: its instances tell ([`instances_status`]).
    Instances,
}

/// What an app's own `state` tells.
fn state_of(state: &str) -> StateOf {
    match state {
        "SHOULD_BE_DOWN" => StateOf::Known(AppStatus::Stopped),
        "WANTS_TO_BE_UP" => StateOf::LastDeployment,
        "SHOULD_BE_UP" => StateOf::Instances,
        other => StateOf::Known(listed_status(other)),
    }
}

/// The state of an app that wants to be up, from its last deployment (first of the list).
fn deployments_status(deployments: &[Deployment]) -> AppStatus {
    match deployments.first().map(|d| d.state.as_str()) {
        Some("FAIL") => AppStatus::Failed("deployment failed".to_owned()),
        Some("CANCELLED") => AppStatus::Failed("deployment cancelled".to_owned()),
        _ => AppStatus::Starting,
    }
}

/// The state of an app that should be up, from its instances: ready once one is `UP`.
fn instances_status(instances: &[Instance]) -> AppStatus {
    if instances.iter().any(|i| i.state == "UP") {
        AppStatus::Running
    } else {
        AppStatus::Starting
    }
}

/// State from the listing alone.
fn listed_status(state: &str) -> AppStatus {
    match state {
        "SHOULD_BE_UP" => AppStatus::Running,
        "SHOULD_BE_DOWN" => AppStatus::Stopped,
        "WANTS_TO_BE_UP" => AppStatus::Starting,
        "MODERATED" | "DEFAULT_OF_PAYMENT" => AppStatus::Failed(format!("state {state}")),
        // A value not documented yet: say nothing rather than something wrong.
        _ => AppStatus::Unknown,
    }
}

#[async_trait]
impl Provider for CleverCloud {
    fn id(&self) -> &str {
        &self.id
    }

    fn rate_limit(&self) -> Option<(usize, usize)> {
        Some(self.api.rate_limit())
    }

    fn kind(&self) -> &'static str {
        "clever-cloud"
    }

    async fn list_apps(&self) -> Result<Vec<AppInfo>, ProviderError> {
        let listed: Vec<super::api::Entry> = self
            .get_json(&format!("{}/applications", self.owner_path), "listing apps")
            .await?;
        let (apps, ids) = listed_apps(&self.id, listed, &self.upstream_scheme);
        *self.ids.lock().unwrap_or_else(|p| p.into_inner()) = ids;
        Ok(apps)
    }

    async fn status(&self, app: &str) -> Result<AppStatus, ProviderError> {
        let path = self.app_path(app)?;
        let one: App = self.get_json(&path, &format!("state of {app}")).await?;
        match state_of(&one.state) {
            StateOf::Known(status) => Ok(status),
            StateOf::LastDeployment => {
                let deployments: Vec<Deployment> = self
                    .get_json(
                        &format!("{path}/deployments?limit=1"),
                        &format!("deployments of {app}"),
                    )
                    .await?;
                Ok(deployments_status(&deployments))
            }
            StateOf::Instances => {
                let instances: Vec<Instance> = self
                    .get_json(&format!("{path}/instances"), &format!("instances of {app}"))
                    .await?;
                Ok(instances_status(&instances))
            }
        }
    }

    async fn start(
        &self,
        app: &str,
        _formation: Option<&Formation>,
    ) -> Result<Started, ProviderError> {
        let what = format!("state of {app}");
        let known = match self.app_path(app) {
            Ok(path) => self.get_json(&path, &what).await,
            Err(error) => Err(error),
        };
        let one: App = match known {
            // The id the last listing gave is gone: the app may have been deleted and created
            // again under its name since. The listing is read again, and the app by its new id.
            Err(ProviderError::NotFound(_)) => {
                self.list_apps().await?;
                self.get_json(&self.app_path(app)?, &what).await?
            }
            other => other?,
        };
        let started = Started {
            reconciled: None,
            upstream: upstream_of(&self.upstream_scheme, &one),
        };
        // A POST queues a deployment: never for an app already up or on its way up.
        if matches!(one.state.as_str(), "SHOULD_BE_UP" | "WANTS_TO_BE_UP") {
            return Ok(started);
        }
        let path = format!("{}/instances", self.app_path(app)?);
        // Not idempotent: each POST queues a deployment.
        let response = self
            .api
            .send(Idempotent::No, || {
                self.request(reqwest::Method::POST, &path)
            })
            .await?;
        check(response, &format!("starting {app}"))
            .await
            .map_err(|error| self.explain(error))?;
        Ok(started)
    }

    async fn stop(&self, app: &str) -> Result<Stopped, ProviderError> {
        let path = format!("{}/instances", self.app_path(app)?);
        let response = self
            .api
            .send(Idempotent::Yes, || {
                self.request(reqwest::Method::DELETE, &path)
            })
            .await?;
        check(response, &format!("stopping {app}"))
            .await
            .map_err(|error| self.explain(error))?;
        // The platform keeps the app's scaling settings: nothing to remember.
        Ok(Stopped::default())
    }

    fn poll_intervals(&self) -> PollIntervals {
        PollIntervals {
            first: Duration::from_millis(500),
            max: Duration::from_secs(3),
        }
    }
}

/// What the engine makes of Clever Cloud's answers, from their bodies (for the fuzz
/// targets).
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    use std::collections::HashMap;

    use super::super::api::body_json;
    use super::{App, Deployment, Instance, StateOf};
    use crate::providers::{AppInfo, AppStatus, ProviderError};

    /// The apps of `GET .../applications`, and each one's id by the name it is managed
    /// under; upstreams in `scheme` (`https` on the platform).
    pub fn apps(
        body: &[u8],
        scheme: &http::uri::Scheme,
    ) -> Result<(Vec<AppInfo>, HashMap<String, String>), ProviderError> {
        let listed: Vec<crate::providers::api::Entry> = body_json(body, "listing apps")?;
        Ok(super::listed_apps("fuzz", listed, scheme))
    }

    /// An app's state from `GET .../applications/<id>`, then, as its state asks, its last
    /// deployment or its instances.
    pub fn status(
        app: &[u8],
        deployments: &[u8],
        instances: &[u8],
    ) -> Result<AppStatus, ProviderError> {
        let one: App = body_json(app, "state")?;
        match super::state_of(&one.state) {
            StateOf::Known(status) => Ok(status),
            StateOf::LastDeployment => {
                let deployments: Vec<Deployment> = body_json(deployments, "deployments")?;
                Ok(super::deployments_status(&deployments))
            }
            StateOf::Instances => {
                let instances: Vec<Instance> = body_json(instances, "instances")?;
                Ok(super::instances_status(&instances))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_follows_rfc_5849() {
        assert_eq!(percent_encode("abc-._~XYZ09"), "abc-._~XYZ09");
        assert_eq!(percent_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn apps_keep_distinct_names_even_named_after_another_id() {
        let app = |id: &str, name: &str| serde_json::json!({"id": id, "name": name});
        let listed = vec![
            app("app_1", "app_3"),
            app("app_2", "shop"),
            app("app_4", "shop"),
            // Its name is the second's, its id the first's name: neither is free.
            app("app_3", "shop"),
        ];
        let (apps, ids) = listed_apps("cc", listed, &http::uri::Scheme::HTTPS);
        let names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["app_3", "shop", "app_4"]);
        assert_eq!(ids.len(), apps.len());
        assert_eq!(ids.get("app_3").map(String::as_str), Some("app_1"));
        assert_eq!(ids.get("shop").map(String::as_str), Some("app_2"));
        assert_eq!(ids.get("app_4").map(String::as_str), Some("app_4"));
    }

    #[test]
    fn states_as_clever_client_computes_them() {
        assert_eq!(listed_status("SHOULD_BE_DOWN"), AppStatus::Stopped);
        assert_eq!(listed_status("WANTS_TO_BE_UP"), AppStatus::Starting);
        assert!(matches!(listed_status("MODERATED"), AppStatus::Failed(_)));
        assert_eq!(listed_status(""), AppStatus::Unknown);
    }
}
