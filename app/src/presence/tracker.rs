//! `Presences`: who is present on one topic, and the diff each change produces.
//!
//! Pure state, no IO: the channel code calls `track`/`untrack`/`update` and broadcasts
//! the returned [`Diff`] as `presence_diff` (directly, or through a
//! [`DiffThrottle`](super::DiffThrottle)); it pushes [`Presences::state`] (or the
//! `Presences` itself, which serializes the same way) as `presence_state` after a join.
//!
//! Metas of a key are kept in the order phoenix.js ends up holding them: a tracked meta
//! is appended, and an updated one is removed and re-appended under its new ref (the
//! client's `syncDiff` puts joined metas last). So a client that applied every diff
//! holds exactly `state()`, order included.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::diff::Diff;
use super::meta::Meta;
use super::phx_ref::{PhxRef, PhxRefGen};
use super::small_map::{self, SmallMap};

/// The presences of one topic: key (e.g. a user id) → metas (one per tab or device).
#[derive(Debug)]
pub struct Presences {
    refs: Arc<PhxRefGen>,
    /// Key → metas, keys sorted (the order Phoenix's serializer emits them).
    entries: SmallMap<Arc<str>, Vec<Arc<Meta>>>,
    metas: usize,
}

impl Default for Presences {
    fn default() -> Self {
        Self::new()
    }
}

impl Presences {
    /// An empty topic drawing refs from the process-wide generator.
    pub fn new() -> Self {
        Self::with_ref_gen(PhxRefGen::global())
    }

    /// An empty topic drawing refs from `refs`.
    pub fn with_ref_gen(refs: Arc<PhxRefGen>) -> Self {
        Self { refs, entries: SmallMap::new(), metas: 0 }
    }

    /// Adds a meta under `key` (another one if the key is already present, e.g. a second
    /// tab). Reserved `phx_ref`/`phx_ref_prev` fields in `meta` are replaced.
    pub fn track(&mut self, key: &str, meta: Map<String, Value>) -> (PhxRef, Diff) {
        let phx_ref = self.refs.next_ref();
        let meta = Arc::new(Meta::new(meta, phx_ref, None));
        let key = self.key_arc(key);
        let metas = self.entries.get_or_insert_with(key.clone(), Vec::new);
        // Room for one at first: a key usually has one meta (one tab).
        if metas.capacity() == 0 {
            metas.reserve_exact(1);
        }
        metas.push(meta.clone());
        self.metas += 1;
        (phx_ref, Diff::joined(key, meta))
    }

    /// Removes the meta `phx_ref` of `key`; `None` if it is not tracked.
    pub fn untrack(&mut self, key: &str, phx_ref: PhxRef) -> Option<Diff> {
        let (key, metas) = self.entries.get_key_value(key)?;
        let pos = metas.iter().position(|m| m.phx_ref() == phx_ref)?;
        let key = key.clone();
        let metas = self.entries.get_mut(&key)?;
        let meta = metas.remove(pos);
        if metas.is_empty() {
            self.entries.remove(&key);
        }
        self.metas -= 1;
        Some(Diff::left(key, meta))
    }

    /// Replaces the meta `phx_ref` of `key` with `meta` under a new ref. The diff joins
    /// the new meta (carrying `phx_ref_prev`) and leaves the old one, as Phoenix does.
    /// `None` if `phx_ref` is not tracked under `key`.
    pub fn update(&mut self, key: &str, phx_ref: PhxRef, meta: Map<String, Value>) -> Option<(PhxRef, Diff)> {
        self.replace(key, phx_ref, |_| meta)
    }

    /// Like [`Presences::update`], editing a copy of the current fields in place
    /// (e.g. `|m| { m.insert("typing".into(), true.into()); }`).
    pub fn update_with(
        &mut self,
        key: &str,
        phx_ref: PhxRef,
        edit: impl FnOnce(&mut Map<String, Value>),
    ) -> Option<(PhxRef, Diff)> {
        self.replace(key, phx_ref, |old| {
            let mut fields = old.to_map();
            edit(&mut fields);
            fields
        })
    }

    fn replace(
        &mut self,
        key: &str,
        phx_ref: PhxRef,
        new_fields: impl FnOnce(&Meta) -> Map<String, Value>,
    ) -> Option<(PhxRef, Diff)> {
        let (key, metas) = self.entries.get_key_value(key)?;
        let pos = metas.iter().position(|m| m.phx_ref() == phx_ref)?;
        let key = key.clone();
        let metas = self.entries.get_mut(&key)?;
        let old = metas.remove(pos);
        let new_ref = self.refs.next_ref();
        let new = Arc::new(Meta::new(new_fields(&old), new_ref, Some(phx_ref)));
        metas.push(new.clone());
        Some((new_ref, Diff::replaced(key, new, old)))
    }

    /// The metas of `key`, oldest first (empty if absent).
    pub fn metas(&self, key: &str) -> &[Arc<Meta>] {
        self.entries.get(key).map_or(&[], Vec::as_slice)
    }

    /// The meta `phx_ref` of `key`.
    pub fn meta(&self, key: &str, phx_ref: PhxRef) -> Option<&Meta> {
        self.metas(key).iter().map(|m| &**m).find(|m| m.phx_ref() == phx_ref)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Present keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(|k| &**k)
    }

    /// Number of present keys (e.g. distinct users).
    pub fn key_count(&self) -> usize {
        self.entries.len()
    }

    /// Number of metas over all keys (e.g. open tabs).
    pub fn meta_count(&self) -> usize {
        self.metas
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `presence_state` payload: `{"<key>":{"metas":[{…, "phx_ref":"…"}]}}`.
    /// To push without building a `Value`, serialize the `Presences` itself.
    pub fn state(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Keys and their metas, keys sorted.
    pub(super) fn entries(&self) -> small_map::Iter<'_, Arc<str>, Vec<Arc<Meta>>> {
        self.entries.iter()
    }

    /// The stored key (shared with diffs, and with callers that keep it, so a present
    /// key is allocated once), or a new one when `key` is absent.
    pub fn key_arc(&self, key: &str) -> Arc<str> {
        self.entries.get_key_value(key).map_or_else(|| Arc::from(key), |(k, _)| k.clone())
    }
}
