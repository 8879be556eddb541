//! Which topics exist and who may join them: the channel a topic string routes to.

use crate::bookmarks::{FIREHOSE_TOPIC, TAG_TOPIC_PREFIX, normalize_tag};

/// The kind of channel a topic belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelKind {
    /// `bookmarks:firehose` and `bookmarks:tag:<tag>`: receive-only streams.
    BookmarkStream,
    /// `debug:*`, only with `Config::debug_topics`: exercises channel failure.
    Debug,
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
    }
}
