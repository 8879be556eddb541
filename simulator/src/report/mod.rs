//! What a run produces and everything that reads it: the names every figure goes by
//! (`names`), the serialisable model (`model`) and its histograms (`histo`), the
//! timeline (`timeline`), gates and the verdict (`gate`, `verdict`, `exit`), the
//! outputs (`terminal`, `files`, `html`, `ci`), what a run shows while it goes
//! (`live`, shown by `progress` on stderr and `dashboard` in a browser), and reading reports back
//! (`compare`, `merge`). Nothing here knows a workload: workloads reach a report only
//! through the entries the engine makes of their meters.

pub mod ci;
pub mod compare;
pub mod dashboard;
pub mod exit;
pub mod files;
pub mod gate;
pub mod histo;
pub mod html;
pub mod live;
pub mod merge;
pub mod model;
pub mod names;
pub mod progress;
pub mod terminal;
pub mod timeline;
pub mod verdict;

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
    pub intervals: timeline::IntervalLogs,
}

impl Report {
    /// Judges this report (validity, completeness, the default gates and
    /// `thresholds`) and stores the verdict in it.
    pub fn judge(&mut self, thresholds: &[gate::Threshold], interrupted: bool) {
        verdict::judge(&mut self.model, thresholds, interrupted);
    }

    pub fn is_valid(&self) -> bool {
        self.model.verdict.valid
    }

    /// The exit code of a finished run: interrupted (9), invalid (3), a failed gate (5),
    /// partial (8), else 0.
    pub fn exit_code(&self) -> u8 {
        self.model.verdict.exit_code
    }

    /// Whether every judged gate passed.
    pub fn thresholds_passed(&self) -> bool {
        self.model.thresholds.iter().all(|t| t.passed)
    }
}
