//! firehose-sim: a load-testing traffic simulator and firehose harness for Phoenix
//! Channels apps. Every workload runs on one engine: one scheduler, one client socket,
//! one HTTP client, one way to count kinds and groups, one report path.
//!
//! The crate map, one folder per layer, imports flowing down only:
//!
//! - `commands/` — the subcommands: `run` (and `agents`: one plan over several
//!   processes, their protocol, the parent's live view), `merge`, `compare`, `knee`, `demo`, `metrics`, `fixtures`. `main.rs`
//!   dispatches only.
//! - `workloads/` — what a run drives: `bookmarks` (creation; firehose and tag
//!   listeners; ramps; presence churn and reconnect storms), `actions` (likes, unlikes,
//!   deletions, chat messages, typing, room presence; room, likes and user listeners —
//!   the `rooms` scenario is this alone), `pages` (page readers and page listeners),
//!   `reads` (list, tag feed, random, search).
//! - `engine/` — knows no workload: the `Workload` trait and the run loop (`workload`,
//!   `run`), the one scheduler (`dispatch`), per-kind and per-group figures (`stats`,
//!   `delivery`) and where they live (`meters`), the timeline sampler (`sampler`), the
//!   report made of the meters (`build`), the target and TLS (`target`, `tls`),
//!   SIGINT/SIGTERM (`interrupt`), process resources (`resources`), errors (`error`).
//! - `phoenix/` — the one Phoenix Channels V2 client socket (connect, TLS, the
//!   small-buffer upgrade, join, push, replies, heartbeat + read loop, one `Failure`),
//!   `seq` checks, recovery with `since`, the probe.
//! - `http/` — the one HTTP client: typed endpoints, setup calls with 429 handling.
//! - `plan/` — flags (`args`), scenario files (`scenario`), target profiles (`profile`)
//!   and stages (`stages`, `staging`, `ramp`, `lifecycle`) resolved into one `Plan` of
//!   small per-workload plans (`target`, `traffic`, `bookmarks`, `actions`, `pages`,
//!   `reads`), through one layering rule (`layers`); seeded choices (`seeded`: SplitMix64,
//!   Zipf); source addresses (`source`).
//! - `report/` — the names of everything (`names`: groups, kinds, histograms, metrics),
//!   the model of `report.json` (`model`) and its histograms (`histo`) and timeline
//!   (`timeline`); gates and the verdict (`gate`, `verdict`, `exit`); the outputs
//!   (`terminal`, `files`, `html`, `ci`); what a run shows while it goes (`live`,
//!   shown by `progress` on stderr and `dashboard` in a browser); reading reports back
//!   (`compare`, `merge`).
//! - `fixtures/` — the deterministic Reddit-style corpus the traffic draws from.

pub mod commands;
pub mod engine;
pub mod fixtures;
pub mod http;
pub mod phoenix;
pub mod plan;
pub mod report;
pub mod workloads;

pub use commands::run::{run, run_with};
pub use engine::error::SimError;
pub use plan::Plan;
pub use report::Report;
