//! `Meta`: one tracked presence (one tab or device) under a key.
//!
//! The caller's JSON object is kept as given, minus the reserved `phx_ref` and
//! `phx_ref_prev` keys, which the tracker owns and stores as inline refs. On the wire
//! (see `wire.rs`) they are put back in the object in sorted key position, as Phoenix
//! emits them.
//!
//! The fields are stored as one sorted slice rather than a `serde_json::Map`: a map is a
//! B-tree whose first node holds room for eleven entries (over 600 bytes), and a meta
//! usually has one or two fields (`online_at`), held by every reader of every page.

use serde_json::{Map, Value};

use super::phx_ref::PhxRef;

/// Reserved meta keys, set by the tracker only.
pub const PHX_REF: &str = "phx_ref";
pub const PHX_REF_PREV: &str = "phx_ref_prev";

/// One meta: the caller's fields plus its ref and, after an update, the previous ref.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// Sorted by key, as a `Map` iterates.
    fields: Box<[(Box<str>, Value)]>,
    phx_ref: PhxRef,
    phx_ref_prev: Option<PhxRef>,
}

impl Meta {
    /// Builds a meta; any `phx_ref`/`phx_ref_prev` the caller put in `fields` is dropped.
    pub(super) fn new(fields: Map<String, Value>, phx_ref: PhxRef, phx_ref_prev: Option<PhxRef>) -> Self {
        let fields = fields
            .into_iter()
            .filter(|(k, _)| k != PHX_REF && k != PHX_REF_PREV)
            .map(|(k, v)| (k.into_boxed_str(), v))
            .collect();
        Self { fields, phx_ref, phx_ref_prev }
    }

    pub fn phx_ref(&self) -> PhxRef {
        self.phx_ref
    }

    /// The ref this meta replaced, when it came from an update.
    pub fn phx_ref_prev(&self) -> Option<PhxRef> {
        self.phx_ref_prev
    }

    /// The caller's fields (without the reserved keys), in key order.
    pub fn fields(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.fields.iter().map(|(k, v)| (&**k, v))
    }

    /// The caller's fields as a map, e.g. to edit a copy.
    pub fn to_map(&self) -> Map<String, Value> {
        self.fields().map(|(k, v)| (k.to_owned(), v.clone())).collect()
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.binary_search_by(|(k, _)| (**k).cmp(field)).ok().map(|i| &self.fields[i].1)
    }
}
