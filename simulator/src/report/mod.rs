//! What a run produces: the serialisable report model, the histograms behind its
//! figures, a terminal summary and the files written to disk.

pub(crate) mod build;
pub mod ci;
pub mod files;
pub mod model;
pub mod terminal;

use hdrhistogram::Histogram;

pub use model::{ReportModel, SCHEMA};

/// A finished run.
#[derive(Debug, Clone)]
pub struct Report {
    pub model: ReportModel,
    /// `(name, histogram in µs)`, each written as `<name>.hgrm`.
    pub histograms: Vec<(String, Histogram<u64>)>,
}

impl Report {
    pub fn is_valid(&self) -> bool {
        self.model.valid
    }

    /// Judges `thresholds` on this report and stores the outcomes in it.
    pub fn judge(&mut self, thresholds: &[crate::gate::Threshold]) {
        self.model.thresholds = crate::gate::evaluate_all(thresholds, &self.model);
    }

    /// Whether every judged threshold passed (true when there are none).
    pub fn thresholds_passed(&self) -> bool {
        self.model.thresholds.iter().all(|t| t.passed)
    }
}
