//! The running configuration through the admin API: its revision and latest reload
//! (`GET /api/v1/config`), a reload (`POST /api/v1/config/reload`) and what a reload of
//! another file would change (`POST /api/v1/config/diff`). The reload itself is the
//! composition root's, handed over as an opaque [`ReloadFn`]: this module never reads a
//! configuration file nor touches the engine's parts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::{Extension, Json};
use futures_util::future::BoxFuture;

use super::{AdminState, ApiError, Caller, FieldError};
use crate::wire::{ConfigView, ReloadView};

/// Why a reload was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The configuration read is invalid (every error, with its path): 422.
    Invalid(Vec<FieldError>),
    /// It changes settings that only a restart applies (each, with its path): 409.
    RestartRequired(Vec<FieldError>),
    /// This engine cannot read its configuration again (it was given one, not a source): 409.
    NotReloadable(String),
    /// The engine is stopping: 503.
    Unavailable(String),
}

/// A reload: the text of another file to read instead of the engine's own (`None`: its
/// own), and whether to apply it (false: only say what would change).
pub type ReloadFn = Arc<
    dyn Fn(Option<String>, bool) -> BoxFuture<'static, Result<ReloadView, Refusal>> + Send + Sync,
>;

/// What the admin API knows of the running configuration, shared with the engine.
pub struct ConfigStatus {
    /// The running configuration's revision and latest reload, replaced by each attempt.
    pub view: ArcSwap<ConfigView>,
    /// Reloads asked for, by result: applied, unchanged, invalid, restart_required.
    pub reloads: [AtomicU64; 4],
    /// The reload, once the engine serves and when it can read its configuration again.
    pub reload: std::sync::OnceLock<ReloadFn>,
}

impl std::fmt::Debug for ConfigStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigStatus")
            .field("view", &self.view.load())
            .finish_non_exhaustive()
    }
}

/// The results a reload can have, in the order of [`ConfigStatus::reloads`].
pub const RESULTS: [&str; 4] = ["applied", "unchanged", "invalid", "restart_required"];

impl ConfigStatus {
    /// A status for a configuration of this revision, read from `file` if any.
    pub fn new(view: ConfigView) -> ConfigStatus {
        ConfigStatus {
            view: ArcSwap::from_pointee(view),
            reloads: Default::default(),
            reload: std::sync::OnceLock::new(),
        }
    }

    /// Counts one reload of this result (one of [`RESULTS`]).
    pub fn count(&self, result: &str) {
        if let Some(index) = RESULTS.iter().position(|known| *known == result) {
            self.reloads[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The lines `/metrics` adds: the revision and the reloads by result.
    pub fn metrics(&self) -> String {
        let view = self.view.load();
        let mut text = String::from(
            "# HELP paastis_config_info The running configuration's revision.\n\
             # TYPE paastis_config_info gauge\n",
        );
        text.push_str(&format!(
            "paastis_config_info{{revision=\"{}\"}} 1\n",
            view.revision.replace(['\\', '"', '\n'], "")
        ));
        text.push_str(
            "# HELP paastis_config_reloads_total Configuration reloads, by result.\n\
             # TYPE paastis_config_reloads_total counter\n",
        );
        for (result, count) in RESULTS.iter().zip(&self.reloads) {
            text.push_str(&format!(
                "paastis_config_reloads_total{{result=\"{result}\"}} {}\n",
                count.load(Ordering::Relaxed)
            ));
        }
        text
    }
}

/// Only the admin reads and reloads the configuration (it is every space's).
fn admin_only(state: &AdminState) -> Result<(), ApiError> {
    match state.caller {
        Caller::Admin => Ok(()),
        Caller::Space(_) => Err(ApiError {
            status: StatusCode::FORBIDDEN,
            code: "admin_only",
            message: "only the admin token reads and reloads the configuration".to_owned(),
            errors: Vec::new(),
        }),
    }
}

fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Invalid(errors) => ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_config",
            message: format!(
                "the configuration is invalid ({} error{}); the running one stays",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            ),
            errors,
        },
        Refusal::RestartRequired(errors) => ApiError {
            status: StatusCode::CONFLICT,
            code: "restart_required",
            message: "the configuration changes settings only a restart applies; nothing was \
                      changed"
                .to_owned(),
            errors,
        },
        Refusal::NotReloadable(message) => ApiError {
            status: StatusCode::CONFLICT,
            code: "not_reloadable",
            message,
            errors: Vec::new(),
        },
        Refusal::Unavailable(message) => ApiError::unavailable(message),
    }
}

/// `GET /api/v1/config`: the running configuration's revision and latest reload.
#[utoipa::path(get, path = "/api/v1/config", responses(
    (status = 200, body = ConfigView), (status = 401, body = super::ErrorBody),
    (status = 403, body = super::ErrorBody)
))]
pub async fn config_show(
    Extension(state): Extension<AdminState>,
) -> Result<Json<ConfigView>, ApiError> {
    admin_only(&state)?;
    Ok(Json(ConfigView::clone(&state.config.view.load())))
}

/// `POST /api/v1/config/reload`: reads the configuration again and applies it. Requests in
/// flight finish; apps keep their state.
#[utoipa::path(post, path = "/api/v1/config/reload", responses(
    (status = 200, body = ReloadView), (status = 401, body = super::ErrorBody),
    (status = 403, body = super::ErrorBody), (status = 409, body = super::ErrorBody),
    (status = 422, body = super::ErrorBody), (status = 503, body = super::ErrorBody)
))]
pub async fn config_reload(
    Extension(state): Extension<AdminState>,
) -> Result<Json<ReloadView>, ApiError> {
    admin_only(&state)?;
    run(&state, None, true).await
}

/// `POST /api/v1/config/diff`: what a reload of the configuration in the body (YAML, read
/// with this engine's environment) would change; nothing is applied.
#[utoipa::path(post, path = "/api/v1/config/diff", request_body(content = String,
    content_type = "application/yaml"), responses(
    (status = 200, body = ReloadView), (status = 401, body = super::ErrorBody),
    (status = 403, body = super::ErrorBody), (status = 409, body = super::ErrorBody),
    (status = 422, body = super::ErrorBody), (status = 503, body = super::ErrorBody)
))]
pub async fn config_diff(
    Extension(state): Extension<AdminState>,
    body: Bytes,
) -> Result<Json<ReloadView>, ApiError> {
    admin_only(&state)?;
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("the body must be the configuration, as UTF-8 YAML"))?;
    run(&state, Some(text), false).await
}

/// Runs the engine's reload (of `text` instead of its file, applied or not), for a caller
/// already found to be the admin.
async fn run(
    state: &AdminState,
    text: Option<String>,
    apply: bool,
) -> Result<Json<ReloadView>, ApiError> {
    let reload = state
        .config
        .reload
        .get()
        .cloned()
        .ok_or_else(not_reloadable)?;
    reload(text, apply).await.map(Json).map_err(refused)
}

fn not_reloadable() -> ApiError {
    refused(Refusal::NotReloadable(NOT_RELOADABLE.to_owned()))
}

/// Why an engine given its configuration (not a file) refuses a reload.
pub const NOT_RELOADABLE: &str =
    "this engine was given its configuration, not a file to read again: restart it to change it";
