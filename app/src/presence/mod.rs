//! Presence tracking in Phoenix.Presence's wire shapes, pure and IO-free.
//!
//! - [`PhxRef`] / [`PhxRefGen`]: the 16-character refs naming each meta (`phx_ref.rs`);
//! - [`Meta`]: one tab's or device's JSON object plus its refs (`meta.rs`);
//! - [`Presences`]: one topic's key → metas, producing a [`Diff`] per change
//!   (`tracker.rs`);
//! - [`Diff`]: a `presence_diff` payload and how diffs coalesce (`diff.rs`);
//! - [`DiffThrottle`]: one merged diff per interval on busy topics (`throttle.rs`);
//! - [`SmallMap`]: the sorted map behind presences, compact while small (`small_map.rs`);
//! - serialization to the exact `presence_state` / `presence_diff` shapes (`wire.rs`);
//! - [`Replica`]: what a node of a cluster keeps of its presences for the others, and
//!   [`merge`] of every node's state for a join (`replica.rs`);
//! - a model of phoenix.js's client and the checks the tracker must pass against it
//!   (`client_model.rs`; for the model tests and the fuzz target, not the app).
//!
//! Unlike Phoenix there is no process linking and no CRDT: the channel code that drives
//! a topic untracks a channel's refs when it leaves or dies, and in a cluster each node
//! owns its own presences (a node that dies is dropped by the others' heartbeat check).

#[doc(hidden)]
pub mod client_model;
mod diff;
mod meta;
mod phx_ref;
mod replica;
mod small_map;
mod throttle;
mod tracker;
mod wire;

pub use diff::Diff;
pub use meta::{Meta, PHX_REF, PHX_REF_PREV};
pub use phx_ref::{PHX_REF_LEN, PhxRef, PhxRefGen};
pub use replica::{Replica, merge};
pub use small_map::SmallMap;
pub use throttle::DiffThrottle;
pub use tracker::Presences;

/// Event names of the presence payloads.
pub mod events {
    /// Pushed to a channel after its join reply: [`Presences`](super::Presences) serialized.
    pub const STATE: &str = "presence_state";
    /// Broadcast on every change: a [`Diff`](super::Diff) serialized.
    pub const DIFF: &str = "presence_diff";
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
