//! `/api/tokens`: a signed-in user creates named API tokens (the secret is shown once),
//! lists them (never the secret) and revokes them. Revoking deletes the token, so it
//! fails everywhere at once: HTTP bearer auth and socket connect look tokens up by hash,
//! and the sockets that connected with it are closed (`live.rs`).

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use serde_json::{Value, json};

use super::{ApiToken, ApiTokenInfo, Credential, CurrentUser, validate};
use crate::http::{ApiError, JsonBody};
use crate::state::AppState;

/// Tokens one user may hold at once: enough for every script and device, and a bound
/// on what one account can make the server store.
const MAX_TOKENS_PER_USER: i64 = 100;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/tokens", get(list).post(create)).route("/api/tokens/{id}", delete(revoke))
}

async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = validate::token_name(&body)?;
    let token = ApiToken::generate();
    let info =
        state.store.create_api_token(user.id, &name, &token.hash(), MAX_TOKENS_PER_USER).await?.ok_or_else(|| {
            ApiError::field("tokens", format!("at most {MAX_TOKENS_PER_USER} tokens; revoke one first"))
        })?;
    let mut data = info.to_json();
    data["token"] = json!(token.as_str());
    Ok((StatusCode::CREATED, Json(json!({ "data": data }))))
}

async fn list(State(state): State<AppState>, CurrentUser(user): CurrentUser) -> Result<Json<Value>, ApiError> {
    let tokens = state.store.api_tokens(user.id).await?;
    Ok(Json(json!({ "data": tokens.iter().map(ApiTokenInfo::to_json).collect::<Vec<_>>() })))
}

/// Someone else's token and a token that does not exist get the same 404.
async fn revoke(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = id.parse::<i64>().map_err(|_| ApiError::NotFound("no such token"))?;
    if state.store.delete_api_token(user.id, id).await? {
        super::revoke(&state, user.id, Credential::ApiToken(id));
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("no such token"))
    }
}
