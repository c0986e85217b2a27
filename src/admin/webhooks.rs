//! `/api/v1/webhooks`: the caller's space's webhooks (never their secret, nor more of their
//! URL than its scheme and host) and their recent deliveries.

use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

use super::{AdminState, ApiError, ApiPath as Path, ErrorBody};
use crate::model::rfc3339;
use crate::webhooks::{Delivery, deliver::Running};

/// The space's webhooks.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// Its webhooks and its rules', in the order configured.
    pub webhooks: Vec<WebhookView>,
}

/// One webhook, as shown.
#[derive(Debug, Serialize, ToSchema)]
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

impl WebhookView {
    fn of(hook: &Running) -> WebhookView {
        let webhook = &hook.target.webhook;
        let (delivered, failed, dropped) = hook.counts();
        WebhookView {
            id: webhook.id.clone(),
            target: webhook.origin(),
            events: webhook.events.clone(),
            format: webhook.format.name().to_owned(),
            signed: webhook.secret.is_some(),
            rule: hook.target.rule.clone(),
            retry_for_secs: webhook.retry_for.as_secs(),
            queued: hook.queued(),
            delivered,
            failed,
            dropped,
        }
    }
}

/// A webhook's recent deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// The webhook's id.
    pub webhook: String,
    /// Its last deliveries, newest first (at most 100).
    pub deliveries: Vec<DeliveryView>,
}

/// One delivery.
#[derive(Debug, Serialize, ToSchema)]
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

impl DeliveryView {
    fn of(delivery: Delivery) -> DeliveryView {
        DeliveryView {
            status: serde_json::to_value(delivery.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            id: delivery.id,
            kind: delivery.kind,
            app: delivery.app,
            attempts: delivery.attempts,
            response_status: delivery.response_status,
            last_error: delivery.last_error,
            created_at: rfc3339(delivery.created_at),
            last_attempt_at: delivery.last_attempt_at.map(rfc3339),
            done_at: delivery.done_at.map(rfc3339),
        }
    }
}

/// The space's webhooks (`webhooks:` and its rules'), with their counts.
#[utoipa::path(get, path = "/api/v1/webhooks", responses(
    (status = 200, body = WebhookList), (status = 401, body = ErrorBody)
))]
pub async fn webhooks_index(Extension(state): Extension<AdminState>) -> Json<WebhookList> {
    let webhooks = state.lifecycle.webhooks();
    Json(WebhookList {
        webhooks: webhooks.list().iter().map(|h| WebhookView::of(h)).collect(),
    })
}

/// A webhook's recent deliveries: status, attempts, last error, times.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries",
    params(("id" = String, Path, description = "webhook id")),
    responses((status = 200, body = DeliveryList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn webhooks_deliveries(
    Extension(state): Extension<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<DeliveryList>, ApiError> {
    let webhooks = state.lifecycle.webhooks();
    let hook = webhooks.get(&id).ok_or_else(|| ApiError {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        message: format!("no webhook `{id}` in this space"),
        errors: Vec::new(),
    })?;
    Ok(Json(DeliveryList {
        webhook: id,
        deliveries: hook
            .deliveries()
            .into_iter()
            .map(DeliveryView::of)
            .collect(),
    }))
}
