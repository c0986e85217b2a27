//! `/api/v1/webhooks`: the caller's space's webhooks (never their secret, nor more of their
//! URL than its scheme and host) and their recent deliveries.

use axum::http::StatusCode;
use axum::{Extension, Json};

use super::{AdminState, ApiError, ApiPath as Path, ErrorBody};
use crate::model::rfc3339;
use crate::webhooks::{Delivery, deliver::Running};
use crate::wire::{DeliveryList, DeliveryView, WebhookList, WebhookView};

/// The space's webhooks (`webhooks:` and its rules'), with their counts.
#[utoipa::path(get, path = "/api/v1/webhooks", responses(
    (status = 200, body = WebhookList), (status = 401, body = ErrorBody)
))]
pub async fn webhooks_index(Extension(state): Extension<AdminState>) -> Json<WebhookList> {
    let webhooks = state.lifecycle.webhooks();
    Json(WebhookList {
        webhooks: webhooks.list().iter().map(|h| webhook_view(h)).collect(),
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
        deliveries: hook.deliveries().into_iter().map(delivery_view).collect(),
    }))
}

/// A webhook as shown.
pub(super) fn webhook_view(hook: &Running) -> WebhookView {
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

/// A delivery as shown.
pub(super) fn delivery_view(delivery: Delivery) -> DeliveryView {
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
