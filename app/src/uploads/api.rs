//! The uploads router: `POST /api/uploads` (multipart, signed in), `DELETE
//! /api/uploads/{id}` (owner only) and `GET /uploads/{key}` (see `serve`).
//!
//! An upload is stored in this order: the user's budgets and quota checked (`budget`),
//! received and accepted into a partial file, checked against the quota and the byte
//! budget, renamed into `uploads/`, then its row committed (the quota checked once more
//! in the same statement); the 201 goes out only after the commit. A refusal at any
//! step leaves nothing on disk. A crash (or a cancelled request) between the rename and
//! the commit leaves a file no row points at — never a row without its file — and the
//! next start sweeps it (`sweep`).

use axum::Json;
use axum::Router;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{delete, get, post};
use serde_json::{Value, json};

use super::receive::{FORM_OVERHEAD, discard, receive};
use super::{NewUpload, Upload, UploadDir, UploadKey, budget, serve};
use crate::accounts::CurrentUser;
use crate::http::{ApiError, params};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        // The size limit is enforced while streaming (see `receive`), against the
        // configured upload limit rather than axum's 2 MB default.
        .route("/api/uploads", post(create).layer(DefaultBodyLimit::disable()))
        .route("/api/uploads/{id}", delete(remove))
        .route("/uploads/{key}", get(serve::serve))
}

async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    refuse_declared_oversize(&state, &headers)?;
    let mut multipart = multipart.map_err(|e| {
        ApiError::BadRequest(format!("expected a multipart/form-data body with a `file` field: {}", e.body_text()))
    })?;
    let upload = accept(&state, user.id, &mut multipart).await?;
    Ok((StatusCode::CREATED, Json(json!({ "data": upload.to_json() }))))
}

/// A body that says up front it is too big is refused without reading it.
pub fn refuse_declared_oversize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let max = state.config.max_upload_bytes;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max.saturating_add(FORM_OVERHEAD) as u64) {
        return Err(ApiError::PayloadTooLarge(max));
    }
    Ok(())
}

/// Receives the rest of a multipart form's `file` field as `user_id`'s upload: checked,
/// stored, recorded (the one path for `POST /api/uploads` and the profile page).
pub async fn accept(state: &AppState, user_id: i64, multipart: &mut Multipart) -> Result<Upload, ApiError> {
    let max = state.config.max_upload_bytes;
    if let Err(refused) = budget::before(state, user_id).await {
        // Read on (nothing is written) so the client gets to read the refusal.
        discard(multipart, max.saturating_add(FORM_OVERHEAD)).await;
        return Err(refused);
    }
    let dir = UploadDir::new(state.config.uploads_root());
    let received = receive(multipart, &dir, max).await?;
    // Refused here, `received` is dropped and its partial file deleted.
    budget::after(state, user_id, received.size as u64).await?;
    let key = UploadKey::generate();
    let new = NewUpload {
        key,
        kind: received.kind,
        size: received.size as i64,
        original_name: received.original_name,
        sha256: received.sha256,
    };
    let path = dir.path_of(&new.key, new.kind);
    received.partial.keep_as(&path).await.map_err(|e| ApiError::Internal(format!("storing an upload: {e}")))?;
    let recorded = match state.store.insert_upload(user_id, &new, state.config.upload_quota_bytes).await {
        Ok(Some(upload)) => return Ok(upload),
        // A concurrent upload of the same user took the room first.
        Ok(None) => budget::over_quota(state, state.store.uploaded_bytes(user_id).await.unwrap_or(0)),
        Err(err) => err.into(),
    };
    if let Err(e) = dir.remove(&new.key, new.kind).await {
        tracing::warn!(%e, "could not remove the file of an unrecorded upload");
    }
    Err(recorded)
}

/// Deletes the caller's upload: the row first (from then on it is not served), then
/// the file. Someone else's upload is a 404, as if it did not exist.
async fn remove(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = params::path_id(&id, "upload")?;
    let upload = state.store.delete_upload(id, user.id).await?.ok_or(ApiError::NotFound("no such upload"))?;
    let dir = UploadDir::new(state.config.uploads_root());
    if let Err(err) = dir.remove(&upload.key, upload.kind).await {
        // The row is gone, so the file is no longer reachable; it only takes space.
        tracing::warn!(%err, key = upload.key.as_str(), "could not remove the file of a deleted upload");
    }
    Ok(StatusCode::NO_CONTENT)
}
