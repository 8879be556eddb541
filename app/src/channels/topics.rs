//! Which topics exist and who may join them: the channel a topic string routes to.

use crate::bookmarks::{FIREHOSE_TOPIC, TAG_TOPIC_PREFIX, normalize_tag};

/// The kind of channel a topic belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelKind {
    /// `bookmarks:firehose` and `bookmarks:tag:<tag>`: receive-only streams.
    BookmarkStream,
    /// `debug:*`, only with `Config::debug_topics`: exercises channel failure.
    Debug,
    /// `page:<path>`: page readers, anyone may join.
    Page,
    /// `likes:<bookmark_id>`: a bookmark's like count; like/unlike pushes.
    Likes { bookmark_id: i64 },
    /// `room:<slug>`: a chat room (members; anyone for public rooms).
    Room { slug: String },
    /// `rooms:lobby`: room created/updated/deleted, signed-in users only.
    Lobby,
    /// `user:<id>`: that user's notifications; only that user may join.
    UserFeed { user_id: i64 },
}

/// Why a join was refused; the string is the `reason` sent to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinRefusal {
    /// No channel handles this topic (answered with a null `join_ref`, as Phoenix does).
    Unmatched,
    Refused(&'static str),
}

pub fn route(topic: &str, debug_topics: bool) -> Result<ChannelKind, JoinRefusal> {
    if topic == FIREHOSE_TOPIC {
        return Ok(ChannelKind::BookmarkStream);
    }
    if let Some(tag) = topic.strip_prefix(TAG_TOPIC_PREFIX) {
        // Broadcasts only ever go to normalised tag topics: joining another spelling
        // would wait forever, so it is refused with a reason instead.
        return match normalize_tag(tag) {
            Some(norm) if norm == tag => Ok(ChannelKind::BookmarkStream),
            _ => Err(JoinRefusal::Refused("invalid tag")),
        };
    }
    if let Some(path) = topic.strip_prefix(crate::readers::TOPIC_PREFIX) {
        return if crate::readers::valid_path(path) {
            Ok(ChannelKind::Page)
        } else {
            Err(JoinRefusal::Refused("invalid topic"))
        };
    }
    if let Some(id) = topic.strip_prefix(crate::likes::TOPIC_PREFIX) {
        // Only the canonical spelling: broadcasts go to `likes:<id>` as the id prints,
        // so `likes:007` would wait forever.
        return match id.parse::<i64>() {
            Ok(bookmark_id) if bookmark_id > 0 && bookmark_id.to_string() == id => {
                Ok(ChannelKind::Likes { bookmark_id })
            }
            _ => Err(JoinRefusal::Refused("invalid topic")),
        };
    }
    if let Some(slug) = topic.strip_prefix("room:") {
        return match crate::chat::valid_slug(slug) {
            true => Ok(ChannelKind::Room { slug: slug.to_owned() }),
            false => Err(JoinRefusal::Refused("invalid topic")),
        };
    }
    if topic == crate::chat::LOBBY_TOPIC {
        return Ok(ChannelKind::Lobby);
    }
    if let Some(id) = topic.strip_prefix(crate::chat::USER_TOPIC_PREFIX) {
        // Canonical spelling only: notifications go to `user:<id>` as the id prints.
        return match id.parse::<i64>() {
            Ok(user_id) if user_id > 0 && user_id.to_string() == id => Ok(ChannelKind::UserFeed { user_id }),
            _ => Err(JoinRefusal::Refused("invalid topic")),
        };
    }
    if debug_topics && topic.starts_with("debug:") {
        return Ok(ChannelKind::Debug);
    }
    Err(JoinRefusal::Unmatched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("bookmarks:firehose", false), Ok(ChannelKind::BookmarkStream));
        assert_eq!(route("bookmarks:tag:rust", false), Ok(ChannelKind::BookmarkStream));
        assert_eq!(route("bookmarks:tag:Rust", false), Err(JoinRefusal::Refused("invalid tag")));
        assert_eq!(route("bookmarks:tag:", false), Err(JoinRefusal::Refused("invalid tag")));
        assert_eq!(route("debug:x", false), Err(JoinRefusal::Unmatched));
        assert_eq!(route("debug:x", true), Ok(ChannelKind::Debug));
        assert_eq!(route("nope:x", true), Err(JoinRefusal::Unmatched));
        assert_eq!(route("page:/blog/1", false), Ok(ChannelKind::Page));
        assert_eq!(route("page:blog", false), Err(JoinRefusal::Refused("invalid topic")));
        assert_eq!(route("likes:42", false), Ok(ChannelKind::Likes { bookmark_id: 42 }));
        assert_eq!(route("room:general-1", false), Ok(ChannelKind::Room { slug: "general-1".into() }));
        assert_eq!(route("room:General", false), Err(JoinRefusal::Refused("invalid topic")));
        assert_eq!(route("rooms:lobby", false), Ok(ChannelKind::Lobby));
        assert_eq!(route("user:7", false), Ok(ChannelKind::UserFeed { user_id: 7 }));
        assert_eq!(route("user:07", false), Err(JoinRefusal::Refused("invalid topic")));
        for bad in ["likes:abc", "likes:", "likes:0", "likes:-1", "likes:007", "likes:+7", "likes:1.0", "likes: 1"] {
            assert_eq!(route(bad, false), Err(JoinRefusal::Refused("invalid topic")), "{bad}");
        }
    }
}
