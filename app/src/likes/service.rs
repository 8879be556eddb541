//! Liking and reading likes, shared by the JSON API and the `likes:<id>` channel.

use serde_json::json;
use tokio::sync::Mutex;

use super::LikeSummary;
use crate::accounts::User;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::StoreError;

/// Topics `likes:<bookmark_id>`.
pub const TOPIC_PREFIX: &str = "likes:";
/// The broadcast of a changed count.
pub const LIKE_COUNT: &str = "like_count";

pub fn topic(bookmark_id: i64) -> String {
    format!("{TOPIC_PREFIX}{bookmark_id}")
}

/// Likes of one bookmark are written and broadcast under one of these locks, so two
/// concurrent likes cannot commit in one order and broadcast in the other (which would
/// leave listeners on the older count). Striped by bookmark id: the single writer
/// connection serialises the writes anyway, the stripes only keep the broadcasts in
/// step with them.
static STRIPES: [Mutex<()>; 64] = [const { Mutex::const_new(()) }; 64];

fn stripe(bookmark_id: i64) -> &'static Mutex<()> {
    &STRIPES[bookmark_id.rem_euclid(STRIPES.len() as i64) as usize]
}

/// Makes `user` like (`liked = true`) or stop liking a bookmark, and broadcasts the new
/// count on `likes:<id>` when it changed. `None`: no such bookmark visible to `user`.
///
/// The write and its broadcast run in a task of their own, so a caller that goes away
/// (a dropped HTTP request) cannot leave a committed change unannounced.
pub async fn set_like(
    state: &AppState,
    user: &User,
    bookmark_id: i64,
    liked: bool,
) -> Result<Option<LikeSummary>, StoreError> {
    let state = state.clone();
    let user_id = user.id;
    let task = tokio::spawn(async move {
        let _in_order = stripe(bookmark_id).lock().await;
        let Some(write) = state.store.set_like(user_id, bookmark_id, liked).await? else { return Ok(None) };
        if write.changed {
            let count = write.count;
            state.pubsub.broadcast(
                &topic(bookmark_id),
                LIKE_COUNT,
                |seq| json!({ "bookmark_id": bookmark_id, "count": count, "seq": seq }),
            );
            Metrics::add(&state.metrics.broadcasts, 1);
        }
        Ok(Some(LikeSummary { count: write.count, liked }))
    });
    match task.await {
        Ok(result) => result,
        // Never aborted, so only a panic ends it early: it carries on in the caller,
        // as if it had happened there (a channel then fails with `phx_error`).
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
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
