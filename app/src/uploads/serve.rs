//! `GET /uploads/{key}`: a stored file streamed back with headers that keep a browser
//! from treating it as anything but what it was sniffed to be.
//!
//! - `Content-Type` is the stored, allow-listed type, and `X-Content-Type-Options:
//!   nosniff` forbids the browser to second-guess it.
//! - `Content-Disposition: attachment` for PDF and text, so they are downloaded rather
//!   than rendered in our origin; images are `inline`. The download name is the
//!   generated one: the client's name is metadata, never echoed into a header.
//! - `Content-Security-Policy: default-src 'none'; sandbox`: should a file be rendered
//!   anyway, it can load nothing and run no script.
//!
//! The key is checked for its exact generated shape first: `../` and anything else
//! that is not a key is a 404 without a database or filesystem lookup.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tokio_util::io::ReaderStream;

use super::{UploadDir, UploadKey};
use crate::http::ApiError;
use crate::state::AppState;

const NOT_FOUND: ApiError = ApiError::NotFound("no such upload");

/// Bytes read from disk per body chunk.
const CHUNK: usize = 64 * 1024;

const CSP: &str = "default-src 'none'; sandbox";

pub async fn serve(
    State(state): State<AppState>,
    key: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Ok(Path(raw)) = key else { return Err(NOT_FOUND) };
    let key = UploadKey::parse(&raw).ok_or(NOT_FOUND)?;
    let upload = state.store.upload_by_key(&key).await?.ok_or(NOT_FOUND)?;
    let dir = UploadDir::new(state.config.uploads_root());
    let file = match dir.open(&key, upload.kind).await {
        Ok(Some(file)) => file,
        Ok(None) => {
            tracing::warn!(key = key.as_str(), "upload row without its file");
            return Err(NOT_FOUND);
        }
        Err(err) => return Err(ApiError::Internal(format!("opening upload {}: {err}", key.as_str()))),
    };
    let len = file.metadata().await.map_err(|e| ApiError::Internal(format!("upload metadata: {e}")))?.len();
    let disposition = if upload.kind.inline() {
        "inline".to_owned()
    } else {
        format!("attachment; filename=\"{}.{}\"", key.as_str(), upload.kind.extension())
    };
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(upload.kind.content_type())),
        (header::CONTENT_LENGTH, HeaderValue::from(len)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
        (
            header::CONTENT_DISPOSITION,
            HeaderValue::try_from(disposition).map_err(|e| ApiError::Internal(e.to_string()))?,
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600")),
    ];
    Ok((headers, Body::from_stream(ReaderStream::with_capacity(file, CHUNK))).into_response())
}
