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

pub use crate::report::exit;

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
