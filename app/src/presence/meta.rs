//! `Meta`: one tracked presence (one tab or device) under a key.
//!
//! The caller's JSON object is kept as given, minus the reserved `phx_ref` and
//! `phx_ref_prev` keys, which the tracker owns and stores as inline refs. On the wire
//! (see `wire.rs`) they are put back in the object in sorted key position, as Phoenix
//! emits them.

use serde_json::{Map, Value};

use super::phx_ref::PhxRef;

/// Reserved meta keys, set by the tracker only.
pub const PHX_REF: &str = "phx_ref";
pub const PHX_REF_PREV: &str = "phx_ref_prev";

/// One meta: the caller's fields plus its ref and, after an update, the previous ref.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    fields: Map<String, Value>,
    phx_ref: PhxRef,
    phx_ref_prev: Option<PhxRef>,
}

impl Meta {
    /// Builds a meta; any `phx_ref`/`phx_ref_prev` the caller put in `fields` is dropped.
    pub(super) fn new(mut fields: Map<String, Value>, phx_ref: PhxRef, phx_ref_prev: Option<PhxRef>) -> Self {
        fields.remove(PHX_REF);
        fields.remove(PHX_REF_PREV);
        Self { fields, phx_ref, phx_ref_prev }
    }

    pub fn phx_ref(&self) -> PhxRef {
        self.phx_ref
    }

    /// The ref this meta replaced, when it came from an update.
    pub fn phx_ref_prev(&self) -> Option<PhxRef> {
        self.phx_ref_prev
    }

    /// The caller's fields (without the reserved keys).
    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.get(field)
    }
}
