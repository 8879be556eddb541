//! Who is calling: users, API tokens and the bearer-token extractor. Full accounts
//! (passwords, sessions) arrive later behind this same seam: the rest of the app only
//! ever sees a `User`.

mod api;
mod tokens;

pub use api::router;
pub use tokens::{ApiToken, TokenHash};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::http::ApiError;
use crate::state::AppState;

/// A signed-in user as the rest of the app sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
}

/// Resolves a presented token to its user; `None` for an unknown token.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Option<User>, ApiError> {
    if token.is_empty() || token.len() > 512 {
        return Ok(None);
    }
    Ok(state.store.user_by_token(&TokenHash::of(token)).await?)
}

/// Extractor for routes that need `Authorization: Bearer <token>`.
pub struct CurrentUser(pub User);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(AUTHORIZATION).ok_or(ApiError::Unauthorized("missing bearer token"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or(ApiError::Unauthorized("malformed Authorization header; expected `Bearer <token>`"))?;
        let user = authenticate(state, token).await?.ok_or(ApiError::Unauthorized("invalid token"))?;
        Ok(CurrentUser(user))
    }
}
