//! firehose-sim: a load-testing traffic simulator and firehose harness for Phoenix
//! Channels apps.

pub mod commands;
pub mod engine;
pub mod fixtures;
pub mod http;
pub mod phoenix;
pub mod plan;
pub mod report;
pub mod workloads;

pub use commands::run::{Ready, StartGate, run, run_gated, run_with_corpus};
pub use engine::error::SimError;
pub use plan::Plan;
pub use report::Report;

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
