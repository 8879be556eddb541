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
//! (expected versus received), `histo`, `timeline` (every second: histogram intervals
//! and counters, for the report's timeline and `.hlog` files), `progress` (live status
//! on stderr), `resources`, `report`; then `compare` (two
//! reports, for regressions). `actions` drives the kinds beyond bookmark creation
//! (likes, unlikes, deletions, chat messages, typing) and the `room`, `likes` and `user`
//! listener groups inside the same run, on the same `t0`. `rooms` is the chat-room run
//! (`firehose-sim rooms`): its own plan, timeline, member sockets and report kind,
//! sharing `histo`, `target` and the report file conventions.

pub mod actions;
pub mod agents;
pub mod api;
pub mod audience;
pub mod cli;
pub mod compare;
pub mod correlate;
pub mod demo;
pub mod error;
pub mod fixtures;
pub mod gate;
pub mod generator;
pub mod histo;
pub mod interrupt;
pub mod knee;
pub mod ledger;
pub mod lifecycle;
pub mod listeners;
pub mod merge;
pub mod pages;
pub mod plan;
pub mod probe;
pub mod profile;
pub mod progress;
pub mod ramp;
pub mod reach;
pub mod report;
pub mod resources;
pub mod rooms;
mod run;
pub mod scenario;
pub mod schedule;
pub mod seed;
pub mod socket;
pub mod source;
pub mod stages;
pub mod staging;
pub mod target;
pub mod timeline;

pub use error::SimError;
pub use plan::Plan;
pub use report::Report;
pub use run::{Ready, StartGate, run, run_gated, run_with_corpus};

/// `println!` that never panics: a closed stdout (`firehose-sim … | head`) must not stop
/// a run before its report is written, so write errors are ignored.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` that never panics (see [`out!`]).
#[macro_export]
macro_rules! out_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}
