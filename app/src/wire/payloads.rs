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
/// `bookmarks:tag:<tag>`. As broadcast it also carries `seq` (see [`with_seq`]), the
/// topic's own counter, so it differs per topic for the same bookmark.
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

/// `payload` (a JSON object, as every broadcast payload is) with the topic's `seq` as
/// its first member: `{"a":1}` → `{"seq":7,"a":1}`. The pub/sub adds it to every
/// broadcast, so whichever node assigned the number, one rule writes it. A payload that
/// is not an object is returned as it is.
pub fn with_seq(payload: &str, seq: u64) -> String {
    let Some(rest) = payload.strip_prefix('{') else { return payload.to_owned() };
    let rest = rest.trim_start();
    let mut out = String::with_capacity(payload.len() + 28);
    out.push_str("{\"seq\":");
    out.push_str(&seq.to_string());
    if !rest.starts_with('}') {
        out.push(',');
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod with_seq_tests {
    use super::with_seq;

    #[test]
    fn seq_leads_the_object() {
        assert_eq!(with_seq(r#"{"a":1}"#, 7), r#"{"seq":7,"a":1}"#);
        assert_eq!(with_seq("{}", 0), r#"{"seq":0}"#);
        assert_eq!(with_seq("{ }", 3), r#"{"seq":3}"#);
        assert_eq!(with_seq("[1]", 3), "[1]");
        let v: serde_json::Value = serde_json::from_str(&with_seq(r#"{"b":{"c":[1,2]},"d":"}"}"#, u64::MAX)).unwrap();
        assert_eq!(v["seq"], u64::MAX);
        assert_eq!(v["b"]["c"][1], 2);
        assert_eq!(v["d"], "}");
    }
}
