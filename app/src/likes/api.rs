//! The likes JSON API: `POST` / `DELETE /api/bookmarks/{id}/like` (signed in) and
//! `GET /api/bookmarks/{id}/likes` (anyone who can see the bookmark). Each answers
//! `{"data": {"bookmark_id", "count", "liked"}}` with `liked` for the caller.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{LikeSummary, View};
use crate::accounts::{CurrentUser, MaybeUser};
use crate::http::{ApiError, params};
use crate::ratelimit::Action;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/bookmarks/{id}/like", post(like).delete(unlike))
        .route("/api/bookmarks/{id}/likes", get(show))
}

const NOT_FOUND: ApiError = ApiError::NotFound("no such bookmark");

fn answer(bookmark_id: i64, likes: LikeSummary) -> Json<Value> {
    Json(json!({ "data": { "bookmark_id": bookmark_id, "count": likes.count, "liked": likes.liked } }))
}

async fn like(state: State<AppState>, user: CurrentUser, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    set(state, user, &id, true).await
}

async fn unlike(state: State<AppState>, user: CurrentUser, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    set(state, user, &id, false).await
}

async fn set(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    id: &str,
    liked: bool,
) -> Result<Json<Value>, ApiError> {
    let id = params::path_id(id, "bookmark")?;
    state.limits.check(Action::Like, user.id).map_err(ApiError::RateLimited)?;
    let likes = super::set_like(&state, &user, id, liked).await?.ok_or(NOT_FOUND)?;
    Ok(answer(id, likes))
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    MaybeUser(viewer): MaybeUser,
) -> Result<Json<Value>, ApiError> {
    let id = params::path_id(&id, "bookmark")?;
    match super::view(&state, id, viewer.as_ref()).await? {
        View::Visible(likes) => Ok(answer(id, likes)),
        // A private bookmark is invisible, not forbidden, to anyone but its owner.
        View::Missing | View::Hidden => Err(NOT_FOUND),
    }
}
