//! Publishing bookmark events to `bookmarks:firehose` and each `bookmarks:tag:<tag>`.
//! Private bookmarks are never published.

use super::Bookmark;
use crate::metrics::Metrics;
use crate::pubsub::PubSub;

pub const FIREHOSE_TOPIC: &str = "bookmarks:firehose";
pub const TAG_TOPIC_PREFIX: &str = "bookmarks:tag:";

pub const CREATED: &str = "bookmark_created";
pub const DELETED: &str = "bookmark_deleted";

pub fn publish_created(pubsub: &PubSub, metrics: &Metrics, bookmark: &Bookmark) {
    publish(pubsub, metrics, bookmark, CREATED);
}

pub fn publish_deleted(pubsub: &PubSub, metrics: &Metrics, bookmark: &Bookmark) {
    publish(pubsub, metrics, bookmark, DELETED);
}

fn publish(pubsub: &PubSub, metrics: &Metrics, bookmark: &Bookmark, event: &str) {
    if !bookmark.public {
        return;
    }
    // Serialised once for the firehose and every tag: each topic adds its own `seq`.
    let payload = match serde_json::value::to_raw_value(&bookmark.to_event()) {
        Ok(payload) => payload,
        Err(err) => {
            tracing::error!(%err, id = bookmark.id, "bookmark event does not serialise");
            return;
        }
    };
    pubsub.broadcast_raw(FIREHOSE_TOPIC, event, &payload);
    let mut topic = String::with_capacity(TAG_TOPIC_PREFIX.len() + 50);
    for tag in &bookmark.tags {
        topic.clear();
        topic.push_str(TAG_TOPIC_PREFIX);
        topic.push_str(tag);
        pubsub.broadcast_raw(&topic, event, &payload);
    }
    Metrics::add(&metrics.broadcasts, 1 + bookmark.tags.len() as u64);
}
