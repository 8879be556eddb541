//! `POST /api/users`: create a user and hand back its first API token.

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

use super::ApiToken;
use crate::http::{ApiError, FieldErrors, JsonBody};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/users", post(create_user))
}

async fn create_user(
    state: axum::extract::State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let username = parse_username(&body)?;
    let token = ApiToken::generate();
    let user = state.store.create_user(&username, &token.hash()).await?;
    let data = json!({"id": user.id, "username": user.username, "token": token.as_str()});
    Ok((StatusCode::CREATED, Json(json!({ "data": data }))))
}

/// Usernames: 3–32 characters of `a-z`, `0-9` and `_`.
fn parse_username(body: &Value) -> Result<String, ApiError> {
    let mut errors = FieldErrors::default();
    let raw = body.get("user").and_then(|u| u.get("username")).or_else(|| body.get("username"));
    match raw {
        None | Some(Value::Null) => errors.add("username", "can't be blank"),
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() {
                errors.add("username", "can't be blank");
            } else if !(3..=32).contains(&s.chars().count()) {
                errors.add("username", "should be 3 to 32 characters");
            } else if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                errors.add("username", "may contain only a-z, 0-9 and _");
            } else {
                return Ok(s.to_owned());
            }
        }
        Some(_) => errors.add("username", "must be a string"),
    }
    Err(ApiError::Validation(errors))
}
