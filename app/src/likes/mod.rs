//! Likes: a signed-in user likes or unlikes a bookmark they can see, over the JSON API
//! or by pushing `like` / `unlike` on the `likes:<bookmark_id>` channel; everyone on that
//! topic gets the new count.
//!
//! - One row per (user, bookmark), unique in the schema (`0004_likes.sql`): liking twice
//!   or unliking what is not liked changes nothing and answers the same count.
//! - A like and the count it answers are one transaction, so the count is the one that
//!   write produced. The broadcast `like_count {bookmark_id, count, seq}` goes out after
//!   the commit, only when the count changed, and in commit order: the store's writer
//!   commits likes in order and the publisher broadcasts them in that order, so the
//!   last `like_count` a listener sees is the current count.
//! - A broadcast never carries anyone's `liked`: that is personal, answered only in the
//!   liker's own reply and in each user's join reply / `GET …/likes`.
//! - Visibility follows bookmarks: a public bookmark's likes are readable by anyone (its
//!   count by anonymous callers too); a private one's only by its owner. To anyone else a
//!   private bookmark does not exist (HTTP 404; on the socket, join error
//!   `unauthorized`, `not found` for a bookmark that does not exist at all).
//! - Likes are rate-limited per user (`Action::Like`, see `crate::ratelimit`).
//!
//! The socket side (join reply, pushes) is `channels/likes.rs`; SQL is `store/likes.rs`.

mod api;
mod service;

pub use api::router;
pub use service::{LIKE_COUNT, TOPIC_PREFIX, View, publish_count, set_like, topic, view};

/// A bookmark's likes as one user sees them: the public count and their own `liked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LikeSummary {
    pub count: i64,
    pub liked: bool,
}
