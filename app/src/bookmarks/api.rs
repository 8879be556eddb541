//! The bookmarks JSON API under `/api/bookmarks`.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

use super::{Bookmark, NewBookmark, normalize_tag};
use crate::accounts::{CurrentUser, MaybeUser};
use crate::http::{ApiError, JsonBody, params};
use crate::state::AppState;

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/bookmarks", get(list).post(create))
        .route("/api/bookmarks/random", get(random))
        .route("/api/bookmarks/{id}", get(show).delete(delete))
}

async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let new = NewBookmark::from_body(&body)?;
    let bookmark = super::service::create(&state, &user, &new).await?;
    Ok((StatusCode::CREATED, Json(json!({ "data": bookmark.to_json() }))))
}

async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let tag = match params.get("tag").map(|t| t.trim()).filter(|t| !t.is_empty()) {
        Some(t) => Some(normalize_tag(t).ok_or_else(|| ApiError::BadRequest("invalid tag".into()))?),
        None => None,
    };
    let limit = params::limit(params.get("limit").map(String::as_str), DEFAULT_LIMIT, MAX_LIMIT)?;
    let before_id = match params.get("before_id") {
        Some(b) => Some(b.parse::<i64>().map_err(|_| ApiError::BadRequest("before_id must be an integer".into()))?),
        None => None,
    };
    let page: Vec<Value> = match state.cache.page(tag.as_deref(), before_id, limit) {
        Some(page) => page.iter().map(|b| b.to_json()).collect(),
        None => {
            state.store.recent_public(tag.as_deref(), before_id, limit).await?.iter().map(Bookmark::to_json).collect()
        }
    };
    let next = page.last().filter(|_| page.len() == limit).and_then(|b| b.get("id").cloned());
    Ok(Json(json!({ "data": page, "next_before_id": next })))
}

async fn random(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let bookmark = state.cache.random().ok_or(ApiError::NotFound("no bookmarks yet"))?;
    Ok(Json(json!({ "data": bookmark.to_json() })))
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    MaybeUser(viewer): MaybeUser,
) -> Result<Json<Value>, ApiError> {
    let id = params::path_id(&id, "bookmark")?;
    let bookmark = super::service::visible(&state, id, viewer.as_ref()).await?;
    Ok(Json(json!({ "data": bookmark.to_json() })))
}

async fn delete(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = params::path_id(&id, "bookmark")?;
    super::service::delete(&state, &user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
