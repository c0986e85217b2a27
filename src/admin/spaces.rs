//! `/api/v1/spaces`: the tenants, and in hosted mode their creation, changes, deletion and
//! tokens. Only the admin token changes spaces; a space's token sees its own space only
//! (another space is 404, as everywhere). Credentials and tokens are write-only: no answer
//! holds one, but the answer that issues a token, once.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::Value;

use super::{AdminState, ApiError, ApiPath as Path, Caller, ErrorBody, FieldError};
use crate::model::rfc3339;
use crate::spaces::{IssuedToken, SpaceError, SpaceInfo};
use crate::wire::{
    CreatedSpace, IssuedTokenView, SpaceList, SpaceProviderView, SpaceView, TokenView,
};

/// The answer for a refused change: one mapping for every spaces endpoint.
pub fn space_error(error: SpaceError) -> ApiError {
    let (status, code) = match &error {
        SpaceError::NotHosted => (StatusCode::CONFLICT, "not_hosted"),
        SpaceError::NotFound(id) => return ApiError::unknown_space(id),
        SpaceError::FromConfig(_) => (StatusCode::CONFLICT, "from_config"),
        SpaceError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        SpaceError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_space"),
        SpaceError::UnknownToken { .. } => (StatusCode::NOT_FOUND, "unknown_token"),
        SpaceError::Store(_) | SpaceError::Seal(_) | SpaceError::Damaged(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
    };
    let errors = match &error {
        SpaceError::Invalid(errors) => errors
            .0
            .iter()
            .map(|e| FieldError {
                path: e.path.clone(),
                message: e.message.clone(),
            })
            .collect(),
        _ => Vec::new(),
    };
    ApiError {
        status,
        code,
        message: match &error {
            SpaceError::Invalid(errors) => format!(
                "invalid space ({} problem{}: see errors)",
                errors.0.len(),
                if errors.0.len() == 1 { "" } else { "s" }
            ),
            other => other.to_string(),
        },
        errors,
    }
}

/// 403: a space's token asked for what only the admin does.
fn admin_only() -> ApiError {
    ApiError {
        status: StatusCode::FORBIDDEN,
        code: "admin_only",
        message: "only the admin token creates, changes and deletes spaces and their tokens"
            .to_owned(),
        errors: Vec::new(),
    }
}

/// Who may act on space `id`: the admin on any; a space's token on its own only (reads),
/// another space being 404.
fn allowed(state: &AdminState, id: &str, write: bool) -> Result<(), ApiError> {
    match &state.caller {
        Caller::Admin => Ok(()),
        Caller::Space(own) if own != id => Err(ApiError::unknown_space(id)),
        Caller::Space(_) if write => Err(admin_only()),
        Caller::Space(_) => Ok(()),
    }
}

/// A request body as JSON (400 with the parser's message otherwise).
fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("the body is not JSON: {error}")))
}

impl SpaceView {
    fn of(space: SpaceInfo) -> SpaceView {
        SpaceView {
            id: space.id,
            origin: space.origin.as_str().to_owned(),
            domains: space.domains,
            plan: space.plan.name.clone(),
            plan_providers: space.plan.providers,
            plan_running_apps_per_provider: space.plan.running_apps_per_provider,
            on_limit: match space.on_limit {
                crate::plan::OnLimit::Reject => "reject",
                crate::plan::OnLimit::EvictLru => "evict_lru",
            }
            .to_owned(),
            providers: space
                .providers
                .into_iter()
                .map(|(id, kind)| SpaceProviderView {
                    id,
                    kind: kind.to_owned(),
                })
                .collect(),
            apps: space.apps,
            tokens: space
                .tokens
                .into_iter()
                .map(|(id, at)| TokenView {
                    id,
                    created_at: rfc3339(at),
                })
                .collect(),
            config_tokens: space.config_tokens,
            document: space.document,
            revision: space.revision,
            created_at: space.created_at.map(rfc3339),
            updated_at: space.updated_at.map(rfc3339),
        }
    }
}

impl IssuedTokenView {
    fn of(token: IssuedToken) -> IssuedTokenView {
        IssuedTokenView {
            id: token.id,
            token: token.token.expose().to_owned(),
        }
    }
}

/// Every space (a space's token: its own only).
#[utoipa::path(get, path = "/api/v1/spaces", responses(
    (status = 200, body = SpaceList), (status = 401, body = ErrorBody)
))]
pub async fn spaces_index(Extension(state): Extension<AdminState>) -> Json<SpaceList> {
    let spaces = state
        .spaces
        .list()
        .await
        .into_iter()
        .filter(|space| match &state.caller {
            Caller::Admin => true,
            Caller::Space(own) => &space.id == own,
        })
        .map(SpaceView::of)
        .collect();
    Json(SpaceList {
        spaces,
        hosted: state.spaces.is_hosted(),
    })
}

/// Creates a space (hosted mode, admin token): the body is a `spaces:` entry of the config
/// file as JSON, without `tokens`, hooks, `process` providers or `*_file` keys. It serves
/// as soon as this answers. 201 with its first token.
#[utoipa::path(post, path = "/api/v1/spaces",
    request_body(content = Object, description = "the space: id, domains, providers, rules, schedules, discovery, defaults, activity, plan, on_limit"),
    responses(
        (status = 201, body = CreatedSpace), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)
    )
)]
pub async fn spaces_create(
    Extension(state): Extension<AdminState>,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedSpace>), ApiError> {
    if state.caller != Caller::Admin {
        return Err(admin_only());
    }
    let document = json_body(&body)?;
    let (space, token) = state.spaces.create(document).await.map_err(space_error)?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedSpace {
            space: SpaceView::of(space),
            token: IssuedTokenView::of(token),
        }),
    ))
}

/// One space.
#[utoipa::path(get, path = "/api/v1/spaces/{id}",
    params(("id" = String, Path, description = "space id")),
    responses((status = 200, body = SpaceView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn spaces_show(
    Extension(state): Extension<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<SpaceView>, ApiError> {
    allowed(&state, &id, false)?;
    let space = state
        .spaces
        .show(&id)
        .await
        .ok_or_else(|| ApiError::unknown_space(&id))?;
    Ok(Json(SpaceView::of(space)))
}

/// Changes a stored space (admin token) by a JSON merge patch of its document (RFC 7396:
/// keys given replace, `null` removes). A provider entry with the id and type of a current
/// one keeps its credentials when it leaves them out, unless it changes where they are sent
/// (`api_url`, `auth_url`, `region`): then it gives them again, or the change is refused
/// (422, each missing credential's path). Applies at once.
#[utoipa::path(patch, path = "/api/v1/spaces/{id}",
    params(("id" = String, Path, description = "space id")),
    request_body(content = Object, description = "a merge patch of the space's document", content_type = "application/merge-patch+json"),
    responses(
        (status = 200, body = SpaceView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)
    )
)]
pub async fn spaces_update(
    Extension(state): Extension<AdminState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<SpaceView>, ApiError> {
    allowed(&state, &id, true)?;
    let patch = json_body(&body)?;
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "a merge patch of a space is a JSON object",
        ));
    }
    let space = state
        .spaces
        .update(&id, &patch)
        .await
        .map_err(space_error)?;
    Ok(Json(SpaceView::of(space)))
}

/// Deletes a stored space (admin token): its hosts are no longer routed, its tokens stop
/// working, its catalog is removed (its events stay until `events.retention`); its apps
/// stay as they are on their platform. Other spaces are untouched.
#[utoipa::path(delete, path = "/api/v1/spaces/{id}",
    params(("id" = String, Path, description = "space id")),
    responses(
        (status = 204, description = "deleted"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)
    )
)]
pub async fn spaces_delete(
    Extension(state): Extension<AdminState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    allowed(&state, &id, true)?;
    state.spaces.delete(&id).await.map_err(space_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Issues a new token for a stored space (admin token); shown in this answer only.
#[utoipa::path(post, path = "/api/v1/spaces/{id}/tokens",
    params(("id" = String, Path, description = "space id")),
    responses(
        (status = 201, body = IssuedTokenView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)
    )
)]
pub async fn tokens_create(
    Extension(state): Extension<AdminState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<IssuedTokenView>), ApiError> {
    allowed(&state, &id, true)?;
    let token = state.spaces.issue_token(&id).await.map_err(space_error)?;
    Ok((StatusCode::CREATED, Json(IssuedTokenView::of(token))))
}

/// Revokes a token of a stored space (admin token): refused from the next request on.
#[utoipa::path(delete, path = "/api/v1/spaces/{id}/tokens/{token}",
    params(("id" = String, Path, description = "space id"), ("token" = String, Path, description = "token id (tok_…)")),
    responses(
        (status = 204, description = "revoked"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)
    )
)]
pub async fn tokens_delete(
    Extension(state): Extension<AdminState>,
    Path((id, token)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    allowed(&state, &id, true)?;
    state
        .spaces
        .revoke_token(&id, &token)
        .await
        .map_err(space_error)?;
    Ok(StatusCode::NO_CONTENT)
}
