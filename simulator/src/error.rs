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
}

impl SimError {
    pub fn exit_code(&self) -> u8 {
        match self {
            SimError::Plan(_) => exit::USAGE,
            SimError::Unreachable(_) | SimError::Setup(_) => exit::SETUP,
        }
    }
}
