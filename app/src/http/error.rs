//! One error type for every handler, rendered as `{"error": {status, message, fields?}}`.
//! Internal errors are logged with their cause and answered with a bare 500.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;
pub use crate::validation::FieldErrors;
use crate::validation::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(&'static str),
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// A well-formed name that is already taken (`username`, `email`, `slug`): 409,
    /// with the field in `fields` as `["has already been taken"]`. (A value that breaks
    /// the field's own rules is a `Validation` error, 422.)
    #[error("{0} has already been taken")]
    Conflict(&'static str),
    #[error("validation failed")]
    Validation(FieldErrors),
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// An upload that would take the user past their storage quota: 413, with the quota
    /// and the bytes stored in the error body.
    #[error("upload quota exceeded: {used} of {quota} bytes are stored; delete uploads to make room")]
    QuotaExceeded { quota: u64, used: u64 },
    #[error("too many requests")]
    RateLimited(Duration),
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    /// The request body came too slowly (`crate::connections`); 408.
    #[error("the request body arrived too slowly")]
    RequestTimeout,
    /// Temporarily unable to serve (a busy or restarting part); 503 with `Retry-After: 1`.
    #[error("{0}")]
    Unavailable(&'static str),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Validation failures at the edge: a wrong shape is a 400, failing fields a 422.
impl From<Invalid> for ApiError {
    fn from(err: Invalid) -> Self {
        match err {
            Invalid::Shape(message) => ApiError::BadRequest(message),
            Invalid::Fields(fields) => ApiError::Validation(fields),
        }
    }
}

/// The message of a taken name, per field.
pub const TAKEN: &str = "has already been taken";

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            // Names people choose; any other unique key (a random token, upload key)
            // colliding is our failure, not the client's.
            StoreError::Conflict(field @ ("username" | "email" | "slug")) => ApiError::Conflict(field),
            StoreError::Overloaded => ApiError::Unavailable("too many writes queued; try again"),
            other if other.is_unavailable() => ApiError::Unavailable("the database is unavailable; try again"),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl ApiError {
    /// A 422 with one message on one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let mut errors = FieldErrors::default();
        errors.add(field, message);
        ApiError::Validation(errors)
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) | ApiError::QuotaExceeded { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl ApiError {
    /// The per-field messages this error carries: a validation failure's, or the taken
    /// field of a conflict.
    pub fn fields(&self) -> Option<FieldErrors> {
        match self {
            ApiError::Validation(fields) => Some(fields.clone()),
            ApiError::Conflict(field) => {
                let mut fields = FieldErrors::default();
                fields.add(field, TAKEN);
                Some(fields)
            }
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                "internal server error".to_owned()
            }
            other => other.to_string(),
        };
        let mut body = json!({"status": status.as_u16(), "message": message});
        if let Some(fields) = self.fields() {
            body["fields"] = json!(fields);
        }
        if let ApiError::QuotaExceeded { quota, used } = &self {
            body["quota_bytes"] = json!(quota);
            body["used_bytes"] = json!(used);
        }
        let mut response = (status, Json(json!({ "error": body }))).into_response();
        if let ApiError::Unavailable(_) = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let ApiError::RateLimited(wait) = self {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}
