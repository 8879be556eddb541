//! What can stop a run before it produces a report, and the exit code each maps to.

use crate::plan::PlanError;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("target unreachable: {0}")]
    Unreachable(String),
    #[error("setup failed: {0}")]
    Setup(String),
    /// The target answers, but not as a Phoenix Channels endpoint: found by a probe
    /// before any listener connects or traffic starts.
    #[error("target is not a Phoenix Channels endpoint: {0}")]
    NotPhoenix(String),
    /// The run failed after listeners were connected: what was measured until then is
    /// in `report` (marked partial), to be written like any report.
    #[error("{cause} (after listeners connected; the partial report keeps what was measured)")]
    Partial { cause: Box<SimError>, report: Box<crate::report::Report> },
}

/// Exit codes of `firehose-sim` (also in `--help`).
pub mod exit {
    pub const OK: u8 = 0;
    /// The report could not be written, or another unexpected failure.
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const INVALID_RUN: u8 = 3;
    pub const SETUP: u8 = 4;
    /// A `--threshold` failed on a valid run.
    pub const THRESHOLD: u8 = 5;
    /// `compare`: a figure regressed beyond `--max-regression`.
    pub const REGRESSION: u8 = 6;
    /// The target answers but does not speak Phoenix Channels (no WebSocket upgrade at
    /// the socket path, or no `phx_reply` to a heartbeat), found before traffic starts.
    pub const NOT_PHOENIX: u8 = 7;
    /// The target closed listener sockets or channels during the run (server closes,
    /// EOF or read errors; never the simulator's own closes). The report is written
    /// and partial; an invalid run (3) or a failed threshold (5) takes precedence.
    pub const DROPPED: u8 = 8;
    /// `run` was stopped by SIGINT (Ctrl-C) or SIGTERM: what was measured until then is
    /// written as a partial report. A second signal exits with it at once, no report.
    pub const INTERRUPTED: u8 = 9;
}

impl SimError {
    pub fn exit_code(&self) -> u8 {
        match self {
            SimError::Plan(_) => exit::USAGE,
            SimError::Unreachable(_) | SimError::Setup(_) => exit::SETUP,
            SimError::NotPhoenix(_) => exit::NOT_PHOENIX,
            SimError::Partial { cause, .. } => cause.exit_code(),
        }
    }
}
