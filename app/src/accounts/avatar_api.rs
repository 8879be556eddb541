//! `PUT /api/accounts/me/avatar {"upload_id"}` and `DELETE /api/accounts/me/avatar`:
//! a profile picture is one of the user's own image uploads (type checked by content
//! when it was uploaded), shown as `avatar_url` in the profile.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::put;
use serde_json::{Value, json};

use super::{Authenticated, validate};
use crate::http::{ApiError, JsonBody};
use crate::state::AppState;
use crate::store::AvatarRefusal;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/accounts/me/avatar", put(set).delete(clear))
}

async fn set(
    State(state): State<AppState>,
    auth: Authenticated,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let upload_id = validate::avatar(&body)?;
    match state.store.set_avatar(auth.user.id, Some(upload_id)).await? {
        Ok(()) => profile(&state, auth.user.id).await,
        Err(AvatarRefusal::NotYours) => Err(field_error("must be the id of one of your uploads")),
        Err(AvatarRefusal::NotAnImage) => Err(field_error("must be an image (jpg, png, gif or webp)")),
    }
}

async fn clear(State(state): State<AppState>, auth: Authenticated) -> Result<Json<Value>, ApiError> {
    // Clearing cannot be refused.
    let _ = state.store.set_avatar(auth.user.id, None).await?;
    profile(&state, auth.user.id).await
}

async fn profile(state: &AppState, user_id: i64) -> Result<Json<Value>, ApiError> {
    let account = state.store.account(user_id).await?.ok_or(ApiError::Unauthorized("account no longer exists"))?;
    Ok(Json(json!({ "data": { "user": account.to_json() } })))
}

fn field_error(message: &str) -> ApiError {
    ApiError::field("upload_id", message)
}
