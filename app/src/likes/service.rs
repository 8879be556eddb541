//! Liking and reading likes, shared by the JSON API and the `likes:<id>` channel.

use serde_json::json;

use super::LikeSummary;
use crate::accounts::User;
use crate::metrics::Metrics;
use crate::pubsub::PubSub;
use crate::state::AppState;
use crate::store::StoreError;

/// Topics `likes:<bookmark_id>`.
pub const TOPIC_PREFIX: &str = "likes:";
/// The broadcast of a changed count.
pub const LIKE_COUNT: &str = "like_count";

pub fn topic(bookmark_id: i64) -> String {
    format!("{TOPIC_PREFIX}{bookmark_id}")
}

/// Makes `user` like (`liked = true`) or stop liking a bookmark. `None`: no such
/// bookmark visible to `user`. A changed count is broadcast on `likes:<id>` by the
/// publisher, in commit order, before this answers; a caller that goes away (a dropped
/// HTTP request) cannot leave a committed change unannounced.
pub async fn set_like(
    state: &AppState,
    user: &User,
    bookmark_id: i64,
    liked: bool,
) -> Result<Option<LikeSummary>, StoreError> {
    let write = state.writer.set_like(user.id, bookmark_id, liked).await?;
    Ok(write.map(|w| LikeSummary { count: w.count, liked }))
}

/// Broadcasts a bookmark's new like count (`like_count`, without anyone's `liked`).
pub fn publish_count(pubsub: &PubSub, metrics: &Metrics, bookmark_id: i64, count: i64) {
    pubsub.broadcast(&topic(bookmark_id), LIKE_COUNT, &json!({ "bookmark_id": bookmark_id, "count": count }));
    Metrics::add(&metrics.broadcasts, 1);
}

/// What a caller may know of a bookmark's likes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// No such bookmark.
    Missing,
    /// Someone else's private bookmark.
    Hidden,
    Visible(LikeSummary),
}

/// A bookmark's likes as `viewer` (or an anonymous caller) sees them.
pub async fn view(state: &AppState, bookmark_id: i64, viewer: Option<&User>) -> Result<View, StoreError> {
    let Some(found) = state.store.bookmark_likes(bookmark_id, viewer.map(|u| u.id)).await? else {
        return Ok(View::Missing);
    };
    if !found.public && viewer.is_none_or(|v| v.id != found.owner_id) {
        return Ok(View::Hidden);
    }
    Ok(View::Visible(found.likes))
}
