//! What one user may upload: a number of files and of bytes per hour (the per-user
//! budgets `Action::Upload` and `Action::UploadBytes`, `--rate-uploads` and
//! `--upload-bytes-per-hour`), and bytes stored in all (`Config::upload_quota_bytes`,
//! `--upload-quota`). Over a budget: 429 with `Retry-After`. Over the quota: 413 with
//! the quota and what is used, until the user deletes uploads.
//!
//! `before` runs before the body is read (one file from the count budget, and some
//! room left under the quota), `after` once the file is received and its size known
//! (the quota again, then that many bytes from the byte budget); the insert itself
//! checks the quota once more, atomically (`Store::insert_upload`). Attempts refused by
//! one check cost nothing from the budgets checked after it.

use crate::http::ApiError;
use crate::ratelimit::Action;
use crate::state::AppState;

/// Before reading the file: one upload from `user_id`'s count budget, and the quota not
/// yet full.
pub async fn before(state: &AppState, user_id: i64) -> Result<(), ApiError> {
    state.limits.check(Action::Upload, user_id).map_err(ApiError::RateLimited)?;
    fits(state, user_id, 1).await
}

/// After receiving `size` bytes: they fit under the quota, and the byte budget has them.
pub async fn after(state: &AppState, user_id: i64, size: u64) -> Result<(), ApiError> {
    fits(state, user_id, size).await?;
    state.limits.check_n(Action::UploadBytes, user_id, size).map_err(ApiError::RateLimited)
}

/// `size` more bytes keep `user_id` within the quota.
async fn fits(state: &AppState, user_id: i64, size: u64) -> Result<(), ApiError> {
    let Some(quota) = state.config.upload_quota_bytes else { return Ok(()) };
    let used = state.store.uploaded_bytes(user_id).await?;
    if used.saturating_add(size) > quota {
        return Err(over_quota(state, used));
    }
    Ok(())
}

/// The refusal for an upload that does not fit under the quota with `used` bytes stored.
pub fn over_quota(state: &AppState, used: u64) -> ApiError {
    ApiError::QuotaExceeded { quota: state.config.upload_quota_bytes.unwrap_or(0), used }
}
