//! Serialization in Phoenix.Presence's wire shapes.
//!
//! - a meta: its fields with `phx_ref` (and `phx_ref_prev` after an update) in sorted
//!   key position, as Phoenix's serializer writes maps;
//! - a group: `{"<key>":{"metas":[meta, …]}, …}` (the `presence_state` payload);
//! - a diff: `{"joins":<group>,"leaves":<group>}` (the `presence_diff` payload).
//!
//! Everything serializes by reference: no intermediate `Value` is built.

use std::iter::Peekable;
use std::sync::Arc;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::diff::{Diff, Grouped};
use super::meta::{Meta, PHX_REF, PHX_REF_PREV};
use super::phx_ref::PhxRef;
use super::tracker::Presences;

impl Serialize for Meta {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let reserved = [(PHX_REF, Some(self.phx_ref())), (PHX_REF_PREV, self.phx_ref_prev())];
        let mut reserved = reserved.into_iter().filter_map(|(k, r)| r.map(|r| (k, r))).peekable();
        let len = self.fields().len() + 1 + usize::from(self.phx_ref_prev().is_some());
        let mut map = s.serialize_map(Some(len))?;
        for (key, value) in self.fields() {
            emit_reserved_before(&mut map, &mut reserved, Some(key))?;
            map.serialize_entry(key, value)?;
        }
        emit_reserved_before(&mut map, &mut reserved, None)?;
        map.end()
    }
}

/// Writes the reserved entries that sort before `key` (all of them when `key` is `None`).
fn emit_reserved_before<M: SerializeMap, I: Iterator<Item = (&'static str, PhxRef)>>(
    map: &mut M,
    reserved: &mut Peekable<I>,
    key: Option<&str>,
) -> Result<(), M::Error> {
    while let Some((name, r)) = reserved.next_if(|(name, _)| key.is_none_or(|k| *name < k)) {
        map.serialize_entry(name, &r)?;
    }
    Ok(())
}

/// `{"metas":[…]}`.
struct Metas<'a>(&'a [Arc<Meta>]);

impl Serialize for Metas<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct List<'a>(&'a [Arc<Meta>]);
        impl Serialize for List<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(|m| &**m))
            }
        }
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry("metas", &List(self.0))?;
        map.end()
    }
}

/// `{"<key>":{"metas":[…]}, …}`.
struct Group<'a>(&'a Grouped);

impl Serialize for Group<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, metas)| (&**k, Metas(metas))))
    }
}

impl Serialize for Diff {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("joins", &Group(&self.joins))?;
        map.serialize_entry("leaves", &Group(&self.leaves))?;
        map.end()
    }
}

/// Serializes as the `presence_state` payload.
impl Serialize for Presences {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.entries().map(|(k, metas)| (&**k, Metas(metas))))
    }
}
