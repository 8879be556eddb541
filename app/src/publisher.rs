//! The publisher: one task that brings the in-memory view in step with the writer's
//! commits — the bookmark cache, then the broadcasts (`bookmark_created` /
//! `bookmark_deleted` on the firehose and tag topics, `like_count` on `likes:<id>`) —
//! and then answers each write's caller. Fan-out runs here, off the request tasks.
//!
//! The writer hands over each committed batch in commit order and this task handles
//! them one after the other, so every topic's `seq` order is the commit order (the
//! last `like_count` a listener sees is the current count). A batch's writers are
//! answered once its broadcasts are out: at once alone, once the broker took them in a
//! cluster. Chat messages are not here:
//! each room's actor broadcasts its own, in its own order.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::bookmarks::{RecentCache, publish_created, publish_deleted, share_created, share_deleted};
use crate::likes;
use crate::metrics::Metrics;
use crate::pubsub::PubSub;
use crate::store::{Change, Committed, Publish, publish_queue};

/// What the publisher needs.
pub struct Publisher {
    pub pubsub: Arc<PubSub>,
    pub metrics: Arc<Metrics>,
    pub cache: Arc<RecentCache>,
}

impl Publisher {
    /// Starts the task; it ends once the writer (holding the returned queue) has.
    pub fn spawn(self) -> Publish {
        let (tx, rx) = publish_queue();
        tokio::spawn(self.run(rx));
        tx
    }

    async fn run(self, mut rx: mpsc::Receiver<Vec<Committed>>) {
        while let Some(batch) = rx.recv().await {
            for committed in &batch {
                self.apply(committed.change());
            }
            // In a cluster, acknowledged means the broker has the broadcasts too.
            self.pubsub.flushed().await;
            for committed in batch {
                committed.answer();
            }
        }
    }

    fn apply(&self, change: &Change) {
        match change {
            Change::BookmarkCreated(bookmark) => {
                if bookmark.public {
                    self.cache.insert(bookmark.clone());
                    share_created(&self.pubsub, bookmark);
                }
                publish_created(&self.pubsub, &self.metrics, bookmark);
            }
            Change::BookmarkDeleted(bookmark) => {
                self.cache.remove(bookmark.id);
                share_deleted(&self.pubsub, bookmark.id);
                publish_deleted(&self.pubsub, &self.metrics, bookmark);
            }
            Change::LikeCount { bookmark_id, count } => {
                likes::publish_count(&self.pubsub, &self.metrics, *bookmark_id, *count);
            }
        }
    }
}
