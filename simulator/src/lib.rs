//! firehose-sim: a load-testing traffic simulator and firehose harness for Phoenix
//! Channels apps.
//!
//! A run (`run`) follows the spine of the app it measures: listeners join the firehose
//! and tag topics over Phoenix Channels V2; bookmarks are created over HTTP on an open
//! schedule; every delivery is traced back to its request through the bookmark URL and
//! timed from the request's intended start; what was owed and what arrived become loss,
//! duplicate and reorder counts; HdrHistograms become the report.
//!
//! Modules, in the order a run uses them: `scenario` (TOML files), `plan` (flags over
//! a scenario, validated), `gate` (thresholds and the metric catalogue), `target` (embedded
//! or external server), `api` (HTTP calls), `seed` (accounts and seed bookmarks),
//! `audience` (who listens to what), `schedule` and `correlate` (when request `i` goes
//! and how its deliveries are recognised), `listeners`, `generator`, `ledger`
//! (expected versus received), `histo`, `resources`, `report`; then `compare` (two
//! reports, for regressions). `rooms` is the chat-room run (`firehose-sim rooms`): its
//! own plan, timeline, member sockets and report kind, sharing `histo`, `target` and the
//! report file conventions.

pub mod api;
pub mod audience;
pub mod cli;
pub mod compare;
pub mod correlate;
pub mod error;
pub mod fixtures;
pub mod gate;
pub mod generator;
pub mod histo;
pub mod ledger;
pub mod listeners;
pub mod plan;
pub mod report;
pub mod resources;
pub mod rooms;
mod run;
pub mod scenario;
pub mod schedule;
pub mod seed;
pub mod socket;
pub mod stages;
pub mod target;

pub use error::SimError;
pub use plan::Plan;
pub use report::Report;
pub use run::{run, run_with_corpus};
