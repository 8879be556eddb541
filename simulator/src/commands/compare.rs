//! `firehose-sim compare`: two reports side by side and whether the new one regressed.

use crate::report::compare::{CompareArgs, CompareError};
use crate::report::{self, exit};

/// `firehose-sim compare BASELINE NEW`: exit 6 when NEW regressed beyond the bound.
pub fn main(args: &CompareArgs) -> u8 {
    match report::compare::run(args) {
        Ok(comparison) => {
            crate::out_raw!("{}", report::compare::render(&comparison, &args.baseline, &args.new));
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
