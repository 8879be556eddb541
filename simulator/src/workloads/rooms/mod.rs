//! `firehose-sim rooms`: chat rooms under load. R public rooms × M members, each member
//! a user of its own with one socket joined to `room:<slug>`; an open-model timeline of
//! `new_msg` pushes (rooms Zipf-skewed), `typing` pushes and presence churn (fresh
//! sockets joining rooms); every delivery traced to its event and timed from the
//! event's intended time; loss counted per event against the members joined when it
//! was sent; the server's memory read before and after the rooms exist.
//!
//! Modules, in the order a run uses them: `plan` (flags → validated plan), `schedule`
//! (the seeded timeline), `setup` (users and rooms over HTTP), `board` (shared counters
//! and the member sockets), `driver` (the generator), `report` (model, terminal,
//! files), `run` (all of it, in order).

pub mod board;
pub mod driver;
pub mod plan;
pub mod report;
mod run;
pub mod schedule;
pub mod setup;

pub use plan::{RoomsArgs, RoomsPlan};
pub use report::{ROOMS_SCHEMA, RoomsReport};
pub use run::run;

use crate::engine::error::exit;

/// `firehose-sim rooms`: flags → plan → run → report files → exit code.
pub fn main(args: &RoomsArgs) -> u8 {
    let plan = match RoomsPlan::from_args(args) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("firehose-sim rooms: {e}");
            return exit::USAGE;
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .try_init();
    crate::out!("{plan}");
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("firehose-sim rooms: cannot start the runtime: {e}");
            return exit::FAILURE;
        }
    };
    let out = plan.out.clone();
    let report = match runtime.block_on(run(plan)) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("firehose-sim rooms: {e}");
            return e.exit_code();
        }
    };
    crate::out_raw!("{}", report::render(&report.model));
    match report::write(&report, &out) {
        Ok(dir) => crate::out!("\nreport          {}", dir.join("report.json").display()),
        Err(e) => {
            eprintln!("firehose-sim rooms: cannot write the report under {}: {e}", out.display());
            return exit::FAILURE;
        }
    }
    if report.is_valid() { exit::OK } else { exit::INVALID_RUN }
}
