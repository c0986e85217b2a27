//! The admin API's wire types: the JSON views of apps, events, provider accounts, spaces and
//! webhooks that the admin API serves and the CLI reads back. Both import them from here, so
//! neither front door imports the other. They are plain data (serde and an OpenAPI schema): how a view is
//! filled in from the engine's state stays in the admin API; this module imports nothing
//! else of the crate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A list of apps.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AppList {
    /// The apps, by provider then name.
    pub apps: Vec<AppView>,
}

/// One managed app.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AppView {
    /// The provider id.
    pub provider: String,
    /// The app's name on its provider.
    pub name: String,
    /// Its state: asleep, waking, awake, stopping, failed.
    pub state: String,
    /// Why it is failed.
    pub reason: Option<String>,
    /// Hosts that reach it (the first domain's, or `<key>.*` without domains).
    pub hosts: Vec<String>,
    /// Its idle and wake policy.
    pub policy: PolicyView,
    /// Its last activity (RFC 3339).
    pub last_activity: String,
    /// Seconds since its last activity.
    pub idle_seconds: u64,
    /// Seconds until the idle check stops it, for an awake app that can be stopped.
    pub sleeps_in_seconds: Option<u64>,
    /// Kept awake until this time (RFC 3339), or `forever`.
    pub pinned_until: Option<String>,
    /// Its latest wake.
    pub last_wake: Option<WakeView>,
    /// The formation its next wake starts.
    pub formation: BTreeMap<String, u32>,
    /// How long a start usually takes, in seconds (mean of the recent ones).
    pub eta_seconds: Option<f64>,
    /// Requests in progress.
    pub in_flight: usize,
}

/// An app's policy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyView {
    /// `15m`, `2h`, or `never`.
    pub max_idle: String,
    /// Seconds, or none for never.
    pub max_idle_seconds: Option<u64>,
    /// Seconds a wake may take.
    pub wake_timeout_seconds: u64,
    /// hold, page or auto.
    pub strategy: String,
    /// Probed before requests are released.
    pub health_path: Option<String>,
}

/// A wake's cause.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WakeView {
    /// When it was asked for (RFC 3339).
    pub at: String,
    /// request, linked, schedule or api.
    pub cause: String,
    /// In words.
    pub description: String,
}

/// A page of events, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventList {
    /// The events.
    pub events: Vec<EventView>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// One event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    /// Unique, increasing.
    pub id: i64,
    /// When (RFC 3339).
    pub at: String,
    /// The tenant.
    pub space: String,
    /// The provider id.
    pub provider: String,
    /// The app (empty for provider-wide events).
    pub app: String,
    /// discovered, registered, wake_requested, wake_refused, started, start_failed,
    /// stop_requested, stopped, stop_vetoed, stop_failed, exited, deleted, provider_error.
    pub kind: String,
    /// The kind's own fields (cause, duration_ms, reason, ...).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// The provider accounts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProviderList {
    /// In config order.
    pub providers: Vec<ProviderView>,
}

/// One provider account's health.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProviderView {
    /// Its id.
    pub id: String,
    /// Its platform (`type`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Managed apps.
    pub apps: usize,
    /// False when its last call failed.
    pub healthy: bool,
    /// Its last error, if any.
    pub last_error: Option<String>,
    /// When (RFC 3339).
    pub last_error_at: Option<String>,
    /// Calls made, by operation and result.
    pub calls: Vec<CallCount>,
    /// Calls per minute the account allows, when the engine limits them.
    pub rate_limit_per_minute: Option<usize>,
    /// Calls made in the last minute, under that limit.
    pub calls_last_minute: Option<usize>,
}

/// Calls of one operation with one result.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CallCount {
    /// list, status, start or stop.
    pub op: String,
    /// ok or error.
    pub result: String,
    /// How many.
    pub count: u64,
}

/// A space.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SpaceView {
    /// Its id.
    pub id: String,
    /// `config` (the config file's; changed there) or `api` (stored; hosted mode).
    pub origin: String,
    /// Its base domains.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Its plan's name (`free`, `team`, `enterprise`, `unlimited`, `custom`).
    pub plan: String,
    /// The plan's provider accounts at most (none: no limit).
    pub plan_providers: Option<usize>,
    /// The plan's running apps per provider at most (none: no limit).
    pub plan_running_apps_per_provider: Option<usize>,
    /// `reject` or `evict_lru`.
    pub on_limit: String,
    /// Its provider accounts.
    #[serde(default)]
    pub providers: Vec<SpaceProviderView>,
    /// How many apps it manages now.
    pub apps: usize,
    /// Its tokens (stored spaces): ids and issue times, never the tokens.
    #[serde(default)]
    pub tokens: Vec<TokenView>,
    /// How many tokens the config file gives it (config spaces).
    #[serde(default)]
    pub config_tokens: usize,
    /// Stored spaces: the document it was created from and changed by, credentials left
    /// out (each provider names its own under `secrets`).
    #[schema(value_type = Option<Object>)]
    pub document: Option<Value>,
    /// Stored spaces: grows at every change.
    pub revision: Option<i64>,
    /// Stored spaces: when created (RFC 3339).
    pub created_at: Option<String>,
    /// Stored spaces: when last changed (RFC 3339).
    pub updated_at: Option<String>,
}

/// A provider account of a space.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SpaceProviderView {
    /// Its id in the space.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A token, without its value.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    /// Its id, to revoke it.
    pub id: String,
    /// When it was issued (RFC 3339).
    pub created_at: String,
}

/// Every space.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SpaceList {
    /// The spaces, the default one first.
    pub spaces: Vec<SpaceView>,
    /// Whether spaces can be created through the API (hosted mode).
    #[serde(default)]
    pub hosted: bool,
}

/// A token just issued: the only answer that holds it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IssuedTokenView {
    /// Its id, to revoke it.
    pub id: String,
    /// The token, for `Authorization: Bearer`. Shown once: only its hash is kept.
    pub token: String,
}

/// A space just created, and its first token.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedSpace {
    /// The space.
    pub space: SpaceView,
    /// Its first token.
    pub token: IssuedTokenView,
}

/// The running configuration (`GET /api/v1/config`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ConfigView {
    /// Its revision: a short hash of what it was made of, equal on every instance that
    /// loaded the same settings.
    pub revision: String,
    /// When it was loaded (RFC 3339).
    pub loaded_at: String,
    /// The file it was read from and is read again from, when it is a file.
    pub file: Option<String>,
    /// Whether that file is watched (`reload.watch`).
    pub watched: bool,
    /// The latest reload attempt, if any.
    pub last_reload: Option<ReloadAttemptView>,
}

/// One reload attempt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReloadAttemptView {
    /// When (RFC 3339).
    pub at: String,
    /// `applied`, `unchanged`, `invalid` or `restart_required`.
    pub result: String,
    /// What asked for it: `api`, `signal`, `file`.
    pub trigger: String,
    /// The errors of a refused one, each with its path.
    pub errors: Vec<String>,
}

/// What a reload did, or would do (`POST /api/v1/config/reload`, `POST /api/v1/config/diff`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReloadView {
    /// The revision that ran before.
    pub previous_revision: String,
    /// The revision of the configuration read.
    pub revision: String,
    /// Whether it was applied (false: unchanged, or a dry run).
    pub applied: bool,
    /// What changed, one line each (`rules`, `providers: local (changed)`, ...).
    pub changes: Vec<String>,
}

/// The space's webhooks.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookList {
    /// Its webhooks and its rules', in the order configured.
    pub webhooks: Vec<WebhookView>,
}

/// One webhook, as shown.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    /// Its id.
    pub id: String,
    /// The scheme and host of its URL (the rest may hold a credential).
    pub target: String,
    /// The event kinds it gets (empty: every kind).
    pub events: Vec<String>,
    /// `json`, `slack` or `discord`.
    pub format: String,
    /// Whether its deliveries are signed (`Paastis-Signature`).
    pub signed: bool,
    /// The pattern of the rule it comes from, if it is a rule's.
    pub rule: Option<String>,
    /// For how long a failed delivery is tried again, in seconds.
    pub retry_for_secs: u64,
    /// Deliveries waiting now.
    pub queued: usize,
    /// Deliveries made since the start.
    pub delivered: u64,
    /// Deliveries given up since the start.
    pub failed: u64,
    /// Deliveries dropped from a full queue since the start.
    pub dropped: u64,
}

/// A webhook's recent deliveries.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryList {
    /// The webhook's id.
    pub webhook: String,
    /// Its last deliveries, newest first (at most 100).
    pub deliveries: Vec<DeliveryView>,
}

/// One delivery.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    /// Its id (the `Paastis-Delivery` header).
    pub id: String,
    /// The event's kind.
    pub kind: String,
    /// The event's app (empty for space-wide events).
    pub app: String,
    /// `queued`, `retrying`, `delivered`, `failed` (given up) or `dropped` (a full queue).
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// The receiver's last HTTP status, if it answered.
    pub response_status: Option<u16>,
    /// What went wrong last.
    pub last_error: Option<String>,
    /// When the event was queued (RFC 3339).
    pub created_at: String,
    /// When it was last tried.
    pub last_attempt_at: Option<String>,
    /// When it was delivered or given up.
    pub done_at: Option<String>,
}
