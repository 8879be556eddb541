//! `firehose-sim compare BASELINE NEW --max-regression 10%`: two reports side by side and
//! whether the new one regressed (the comparison itself is `report::compare`).

use std::path::PathBuf;

use crate::plan::parse_duration;
use crate::report::compare::{self, CompareError};
use crate::report::exit;

/// `firehose-sim compare` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct CompareArgs {
    /// The reference `report.json` (e.g. `reports/baselines/smoke.json`).
    pub baseline: PathBuf,
    /// The `report.json` of the run to judge.
    pub new: PathBuf,
    /// Largest allowed worsening, as a percentage ("10%") or a fraction ("0.1").
    #[arg(long, default_value = "10%", value_name = "PERCENT")]
    pub max_regression: String,
    /// Latency changes smaller than this are noise, never a regression.
    #[arg(long, default_value = "1ms", value_name = "DURATION")]
    pub min_change: String,
}

/// Exit 6 when NEW regressed beyond the bound, 3 when either run is invalid, 2 when the
/// flags or a report cannot be read.
pub fn main(args: &CompareArgs) -> u8 {
    let result = compare::parse_bound(&args.max_regression).and_then(|bound| {
        let min_change = parse_duration(&args.min_change)
            .map_err(|reason| CompareError::Report { file: format!("--min-change {:?}", args.min_change), reason })?;
        compare::compare_files(&args.baseline, &args.new, bound, min_change)
    });
    match result {
        Ok(comparison) => {
            crate::report::terminal::print(&compare::render(&comparison, &args.baseline, &args.new));
            if comparison.regressed() { exit::REGRESSION } else { exit::OK }
        }
        Err(e @ CompareError::Invalid { .. }) => {
            eprintln!("firehose-sim compare: {e}");
            exit::INVALID_RUN
        }
        Err(e) => {
            eprintln!("firehose-sim compare: {e}");
            exit::USAGE
        }
    }
}
