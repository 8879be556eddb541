//! What a run produces: the serialisable report model, the histograms behind its
//! figures, a terminal summary and the files written to disk.

pub mod ci;
pub mod compare;
pub mod exit;
pub mod files;
pub mod gate;
pub mod histo;
pub mod html;
pub mod merge;
pub mod model;
pub mod progress;
pub mod terminal;
pub mod timeline;

use hdrhistogram::Histogram;

pub use model::{ReportModel, SCHEMA};

/// A finished run.
#[derive(Debug, Clone)]
pub struct Report {
    pub model: ReportModel,
    /// `(name, histogram in µs)`, each written as `<name>.hgrm`.
    pub histograms: Vec<(String, Histogram<u64>)>,
    /// The interval log of each histogram, written as `<name>.hlog` (a histogram with
    /// none gets one interval spanning the run).
    pub intervals: crate::report::timeline::IntervalLogs,
}

impl Report {
    pub fn is_valid(&self) -> bool {
        self.model.valid
    }

    /// Judges `thresholds` on this report and stores the outcomes in it.
    pub fn judge(&mut self, thresholds: &[crate::report::gate::Threshold]) {
        self.model.thresholds = crate::report::gate::evaluate_all(thresholds, &self.model);
    }

    /// The exit code of a finished run, in this order: invalid run (3), a failed
    /// threshold (5), the target dropped listener connections during the run (8),
    /// else 0. Validity and gates come first because they are what CI asks; a run that
    /// passed them on a target that dropped sockets is still not a clean pass.
    pub fn exit_code(&self) -> u8 {
        use crate::report::exit;
        if !self.is_valid() {
            exit::INVALID_RUN
        } else if !self.thresholds_passed() {
            exit::THRESHOLD
        } else if self.model.listeners.closed_during_run > 0 || self.model.listeners.failed_to_join > 0 {
            exit::DROPPED
        } else {
            exit::OK
        }
    }

    /// Whether every judged threshold passed (true when there are none).
    pub fn thresholds_passed(&self) -> bool {
        self.model.thresholds.iter().all(|t| t.passed)
    }
}
