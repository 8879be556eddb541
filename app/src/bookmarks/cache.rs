//! `RecentCache`: the most recent public bookmarks in memory, newest first, loaded from
//! the database at boot and kept current by the create/delete paths. It serves the
//! feeds and the random page without touching the database; a page reaching past what
//! it holds is answered by the store instead.
//!
//! In a cluster each node has its own cache: what one node commits reaches the others'
//! as a pub/sub signal ([`share_created`], [`share_deleted`], heard by
//! [`RecentCache::hear_other_nodes`]), so no node serves a bookmark deleted elsewhere or
//! leaves out one made elsewhere.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::RwLock;
use rand::Rng;

use super::Bookmark;
use crate::pubsub::PubSub;
use crate::store::{Store, StoreError};

pub struct RecentCache {
    inner: RwLock<Inner>,
}

struct Inner {
    /// Newest (highest id) first.
    items: VecDeque<Arc<Bookmark>>,
    by_id: HashMap<i64, Arc<Bookmark>>,
    capacity: usize,
    /// True once older public bookmarks exist that the cache does not hold.
    truncated: bool,
}

/// The signal topic (never a channel's) on which nodes share what their caches took in.
const NODES_TOPIC: &str = "bookmarks";
const CREATED: &str = "created";
const DELETED: &str = "deleted";

/// Tells the other nodes (none when alone) of a public bookmark this node committed.
pub fn share_created(pubsub: &PubSub, bookmark: &Bookmark) {
    pubsub.signal_others(NODES_TOPIC, CREATED, &bookmark.to_json());
}

/// Tells the other nodes (none when alone) of a bookmark this node deleted.
pub fn share_deleted(pubsub: &PubSub, id: i64) {
    pubsub.signal_others(NODES_TOPIC, DELETED, &serde_json::json!({ "id": id }));
}

impl RecentCache {
    /// Keeps this cache in step with what the other nodes of a cluster commit.
    pub fn hear_other_nodes(self: &Arc<Self>, pubsub: &PubSub) {
        let cache = Arc::downgrade(self);
        pubsub.on_signal(
            NODES_TOPIC,
            Arc::new(move |event, payload| {
                let Some(cache) = cache.upgrade() else { return };
                let value: serde_json::Value = serde_json::from_str(payload.get()).unwrap_or_default();
                match event {
                    CREATED => match Bookmark::from_json(&value) {
                        Some(bookmark) if bookmark.public => cache.insert(Arc::new(bookmark)),
                        _ => tracing::warn!("ignoring another node's bookmark that does not read"),
                    },
                    DELETED => match value.get("id").and_then(serde_json::Value::as_i64) {
                        Some(id) => cache.remove(id),
                        None => tracing::warn!("ignoring another node's deletion without an id"),
                    },
                    _ => tracing::warn!(event, "ignoring a bookmarks signal"),
                }
            }),
        );
    }

    pub async fn load(store: &Store, capacity: usize) -> Result<Self, StoreError> {
        let mut rows = store.recent_public(None, None, capacity + 1).await?;
        let truncated = rows.len() > capacity;
        rows.truncate(capacity);
        let items: VecDeque<Arc<Bookmark>> = rows.into_iter().map(Arc::new).collect();
        let by_id = items.iter().map(|b| (b.id, b.clone())).collect();
        Ok(Self { inner: RwLock::new(Inner { items, by_id, capacity, truncated }) })
    }

    pub fn len(&self) -> usize {
        self.inner.read().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a public bookmark, keeping id order and the capacity.
    pub fn insert(&self, bookmark: Arc<Bookmark>) {
        debug_assert!(bookmark.public);
        let mut inner = self.inner.write();
        let pos = inner.items.iter().position(|b| b.id < bookmark.id).unwrap_or(inner.items.len());
        inner.by_id.insert(bookmark.id, bookmark.clone());
        inner.items.insert(pos, bookmark);
        if inner.items.len() > inner.capacity {
            if let Some(old) = inner.items.pop_back() {
                inner.by_id.remove(&old.id);
            }
            inner.truncated = true;
        }
    }

    pub fn remove(&self, id: i64) {
        let mut inner = self.inner.write();
        if inner.by_id.remove(&id).is_some() {
            inner.items.retain(|b| b.id != id);
        }
    }

    pub fn get(&self, id: i64) -> Option<Arc<Bookmark>> {
        self.inner.read().by_id.get(&id).cloned()
    }

    pub fn random(&self) -> Option<Arc<Bookmark>> {
        let inner = self.inner.read();
        if inner.items.is_empty() {
            return None;
        }
        let i = rand::rng().random_range(0..inner.items.len());
        inner.items.get(i).cloned()
    }

    /// Up to `limit` public bookmarks older than `before_id`, optionally with `tag`;
    /// `None` when the answer may include bookmarks the cache no longer holds.
    pub fn page(&self, tag: Option<&str>, before_id: Option<i64>, limit: usize) -> Option<Vec<Arc<Bookmark>>> {
        let inner = self.inner.read();
        let before = before_id.unwrap_or(i64::MAX);
        let page: Vec<_> = inner
            .items
            .iter()
            .filter(|b| b.id < before)
            .filter(|b| tag.is_none_or(|t| b.tags.iter().any(|x| x == t)))
            .take(limit)
            .cloned()
            .collect();
        (page.len() == limit || !inner.truncated).then_some(page)
    }
}
