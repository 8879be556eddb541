//! `RecentCache`: the most recent public bookmarks in memory, newest first, loaded from
//! the database at boot and kept current by the create/delete paths. It serves the
//! feeds and the random page without touching the database; a page reaching past what
//! it holds is answered by the store instead.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::RwLock;
use rand::Rng;

use super::Bookmark;
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

impl RecentCache {
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
