//! Creating and deleting a bookmark: the steps every entry point takes (the JSON API,
//! the new-bookmark page, the bookmarklet), in one place. The write goes through the
//! store's writer; the cache and the topics are updated by the publisher after the
//! commit (`crate::publisher`), before the caller is answered.

use std::sync::Arc;

use super::{Bookmark, NewBookmark};
use crate::accounts::User;
use crate::http::ApiError;
use crate::ratelimit::Action;
use crate::state::AppState;

/// Stores a validated bookmark for `user`; answered once it is committed, and cached
/// and published when public. A full write queue is a 503.
pub async fn create(state: &AppState, user: &User, new: &NewBookmark) -> Result<Arc<Bookmark>, ApiError> {
    // After validation: only bookmarks that would be stored spend the user's budget.
    state.limits.check(Action::Bookmark, user.id).map_err(ApiError::RateLimited)?;
    Ok(state.writer.insert_bookmark(user, new).await?)
}

/// Deletes bookmark `id` if `user` owns it. Someone else's public bookmark is a 403,
/// someone else's private one a 404 (it does not exist for them).
pub async fn delete(state: &AppState, user: &User, id: i64) -> Result<(), ApiError> {
    let bookmark = state.store.bookmark(id).await?.ok_or(ApiError::NotFound("no such bookmark"))?;
    if bookmark.user.id != user.id {
        return Err(if bookmark.public {
            ApiError::Forbidden("only the owner may delete a bookmark")
        } else {
            ApiError::NotFound("no such bookmark")
        });
    }
    state.writer.delete_bookmark(Arc::new(bookmark)).await?;
    Ok(())
}

/// A bookmark `viewer` may see: any public one, their own private ones.
pub async fn visible(state: &AppState, id: i64, viewer: Option<&User>) -> Result<Arc<Bookmark>, ApiError> {
    let bookmark = match state.cache.get(id) {
        Some(b) => b,
        None => Arc::new(state.store.bookmark(id).await?.ok_or(ApiError::NotFound("no such bookmark"))?),
    };
    // A private bookmark is invisible, not forbidden, to anyone but its owner.
    if !bookmark.public && viewer.is_none_or(|v| v.id != bookmark.user.id) {
        return Err(ApiError::NotFound("no such bookmark"));
    }
    Ok(bookmark)
}
