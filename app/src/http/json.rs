//! `JsonBody`: the request body as a JSON object, with our own errors — 413 past the
//! size limit, 400 for anything that is not a JSON object — instead of axum's plain
//! text rejections.

use axum::body::{Body, to_bytes};
use axum::extract::FromRequest;
use axum::http::{Request, header};
use serde_json::Value;

use super::ApiError;
use crate::state::AppState;

/// A request body that parsed as a JSON object.
pub struct JsonBody(pub Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.config.max_body_bytes;
        let declared =
            req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        let bytes = to_bytes(req.into_body(), limit).await.map_err(|_| ApiError::PayloadTooLarge(limit))?;
        parse_object(&bytes).map(JsonBody)
    }
}

/// A whole body (already within the size limit) as a JSON object: 400 for anything
/// else. What [`JsonBody`] does once the bytes are in.
pub fn parse_object(bytes: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::BadRequest("request body must be a JSON object".into()));
    }
    Ok(value)
}
