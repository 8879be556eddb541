//! What a run produces: the serialisable report model, the histograms behind its
//! figures, a terminal summary and the files written to disk.

pub(crate) mod build;
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
}
