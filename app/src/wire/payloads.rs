//! JSON payloads carried on firehose's topics, shared by the server (which encodes
//! them) and the simulator (which decodes them).

use serde::{Deserialize, Serialize};

/// Who created a bookmark, as broadcast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookmarkUser {
    pub id: i64,
    pub username: String,
}

/// `bookmark_created` / `bookmark_deleted` on `bookmarks:firehose` and
/// `bookmarks:tag:<tag>`. `seq` is the topic's own counter, so it differs per topic
/// for the same bookmark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookmarkEvent {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub url: String,
    pub tags: Vec<String>,
    pub user: BookmarkUser,
    /// RFC 3339 with microseconds, UTC.
    pub inserted_at: String,
    pub seq: u64,
}

/// The `response` of an error `phx_reply`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReason {
    pub reason: String,
}

impl ErrorReason {
    pub fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into() }
    }
}

/// Join parameter `since` for recovery after a reconnect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinSince {
    pub seq: u64,
    pub epoch: String,
}
