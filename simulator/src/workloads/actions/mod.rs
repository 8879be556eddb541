//! The traffic kinds of `firehose-sim run` beyond bookmark creation, and the listener
//! groups that receive them: likes and unlikes of Zipf-hot bookmarks (HTTP, heard on
//! `likes:<id>` as `like_count`), bookmark deletion (HTTP), chat messages in Zipf-hot
//! public rooms (pushes on `room:<slug>`, heard as `new_message`; some @mention a user
//! whose `user:<id>` socket hears a `notification`) and typing (heard as `user_typing`).
//!
//! Every kind has its own open-model schedule (a `RateCurve` over the plan's base rate:
//! `t0 + curve.offset(i)`), fired on a thread of its own without waiting for earlier
//! responses; corrected and uncorrected latency, lag, and errors by kind per action.
//! Every delivery is traced to the action that caused it (a `sim-<run>-<i>` marker in a
//! message body, the typist's pending push, a `like_count`'s bookmark and count, a
//! mention's message id) and counted against what that action owed: the group's
//! listeners joined before it was sent (all listeners join before `t0`).
//!
//! Modules, in the order a run uses them: `plan` (flags and scenario keys → validated
//! `ActionsPlan`), `schedule` (the seeded per-kind timelines and picks), `setup` (users,
//! rooms, memberships, bookmarks to like and delete — not measured), `listen` (the
//! `room`, `likes` and `user` listener sockets), `actors` (the signed-in sockets that
//! push messages and typing), `driver` (the generator), `tally` (per-kind stats and
//! per-group accounting), `outcome` (all of it as report entries), `session` (one run's
//! worth of the above, as `run.rs` drives it).

pub mod actors;
pub mod driver;
pub mod listen;
pub mod outcome;
pub mod schedule;
pub mod session;
pub mod setup;
pub mod tally;

pub use session::Session;

pub use crate::plan::actions::{Group, Kind};
