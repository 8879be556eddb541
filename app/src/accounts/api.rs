//! The accounts router, and `POST /api/users`: create a token-only user and hand back
//! its first API token (what the simulator and the tests use). Like registration, it
//! spends the caller's per-IP sign-up budget (`--rate-signups`).

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

use super::{ApiToken, ClientIp, spend_signup, validate};
use crate::http::{ApiError, JsonBody};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users", post(create_user))
        .merge(super::session_api::router())
        .merge(super::token_api::router())
        .merge(super::avatar_api::router())
}

async fn create_user(
    state: axum::extract::State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let username = validate::new_user(&body)?;
    spend_signup(&state, ip)?;
    let token = ApiToken::generate();
    let user = state.store.create_user(&username, &token.hash()).await?;
    let data = json!({"id": user.id, "username": user.username, "token": token.as_str()});
    Ok((StatusCode::CREATED, Json(json!({ "data": data }))))
}
