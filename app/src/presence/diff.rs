//! `Diff`: the joins and leaves of one `presence_diff`, and how several coalesce.
//!
//! phoenix.js applies a diff with `syncDiff`: for every joined key, the metas already
//! held whose `phx_ref` is not re-joined stay first and the joined metas follow; then
//! every left `phx_ref` is removed and a key left without metas disappears. Joins are
//! applied before leaves, so one diff must never join and leave the same `phx_ref`: the
//! client would drop a meta the server still holds, or keep a ghost.
//!
//! [`Diff::merge`] folds a later diff into an earlier one so that applying the result
//! once gives the client exactly what applying both in order would:
//! - a ref joined earlier and left later cancels out (neither is sent);
//! - a ref left earlier and joined later is sent as a join only;
//! - everything else is kept, joins per key in the order they happened.
//!
//! Refs are never reused, so a ref is joined at most once and left at most once; the
//! rules above are what sequential application gives under that invariant.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::meta::Meta;
use super::phx_ref::PhxRef;

/// Metas grouped by key, keys sorted (the order Phoenix's serializer emits them).
pub type Grouped = BTreeMap<Arc<str>, Vec<Arc<Meta>>>;

/// One `presence_diff` payload: `{"joins":{key:{"metas":[…]}},"leaves":{…}}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diff {
    pub(super) joins: Grouped,
    pub(super) leaves: Grouped,
}

impl Diff {
    /// An empty diff (the identity of [`Diff::merge`]).
    pub fn new() -> Self {
        Self::default()
    }

    pub(super) fn joined(key: Arc<str>, meta: Arc<Meta>) -> Self {
        Self { joins: BTreeMap::from([(key, vec![meta])]), leaves: BTreeMap::new() }
    }

    pub(super) fn left(key: Arc<str>, meta: Arc<Meta>) -> Self {
        Self { joins: BTreeMap::new(), leaves: BTreeMap::from([(key, vec![meta])]) }
    }

    /// An update: the new meta joins and the old one leaves, in one diff.
    pub(super) fn replaced(key: Arc<str>, new: Arc<Meta>, old: Arc<Meta>) -> Self {
        Self { joins: BTreeMap::from([(key.clone(), vec![new])]), leaves: BTreeMap::from([(key, vec![old])]) }
    }

    /// Nothing to broadcast.
    pub fn is_empty(&self) -> bool {
        self.joins.is_empty() && self.leaves.is_empty()
    }

    /// Joined metas by key.
    pub fn joins(&self) -> impl Iterator<Item = (&str, &[Arc<Meta>])> {
        self.joins.iter().map(|(k, v)| (&**k, v.as_slice()))
    }

    /// Left metas by key.
    pub fn leaves(&self) -> impl Iterator<Item = (&str, &[Arc<Meta>])> {
        self.leaves.iter().map(|(k, v)| (&**k, v.as_slice()))
    }

    /// Number of joined metas.
    pub fn join_count(&self) -> usize {
        self.joins.values().map(Vec::len).sum()
    }

    /// Number of left metas.
    pub fn leave_count(&self) -> usize {
        self.leaves.values().map(Vec::len).sum()
    }

    /// `self` followed by `later`, as one diff (see the module docs).
    #[must_use]
    pub fn merge(mut self, later: Diff) -> Diff {
        self.merge_from(later);
        self
    }

    /// In-place [`Diff::merge`]: folds `later` into `self`.
    pub fn merge_from(&mut self, later: Diff) {
        if self.is_empty() {
            *self = later;
            return;
        }
        // Same order as syncDiff: the later diff's joins, then its leaves.
        for (key, metas) in later.joins {
            for meta in metas {
                self.add_join(&key, meta);
            }
        }
        for (key, metas) in later.leaves {
            for meta in metas {
                self.add_leave(&key, meta);
            }
        }
    }

    fn add_join(&mut self, key: &Arc<str>, meta: Arc<Meta>) {
        let r = meta.phx_ref();
        // Left earlier, joined now: the client ends up holding it, so only the join stays.
        remove_ref(&mut self.leaves, key, r);
        let joins = self.joins.entry(key.clone()).or_default();
        // A re-join of the same ref replaces it, moving it last, as syncDiff does.
        if let Some(pos) = joins.iter().position(|m| m.phx_ref() == r) {
            joins.remove(pos);
        }
        joins.push(meta);
    }

    fn add_leave(&mut self, key: &Arc<str>, meta: Arc<Meta>) {
        let r = meta.phx_ref();
        // Joined earlier in this diff, left now: the client never needs to see it.
        if remove_ref(&mut self.joins, key, r) {
            return;
        }
        let leaves = self.leaves.entry(key.clone()).or_default();
        if leaves.iter().all(|m| m.phx_ref() != r) {
            leaves.push(meta);
        }
    }
}

/// Removes `r` from `key`'s metas, dropping the key when it empties (an empty join
/// would make the client create a key with no metas). Returns whether it was there.
fn remove_ref(grouped: &mut Grouped, key: &str, r: PhxRef) -> bool {
    let Some(metas) = grouped.get_mut(key) else { return false };
    let Some(pos) = metas.iter().position(|m| m.phx_ref() == r) else { return false };
    metas.remove(pos);
    if metas.is_empty() {
        grouped.remove(key);
    }
    true
}
