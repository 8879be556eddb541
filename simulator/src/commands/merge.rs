//! `firehose-sim merge DIR... --out OUT [--threshold …]`: report folders of several
//! simulator processes become one report, judged (the merge itself is `report::merge`).

use std::path::PathBuf;

use crate::report::exit;
use crate::report::gate::Threshold;
use crate::report::merge::{Input, finish, merge, partial_reasons};

/// `firehose-sim merge` flags.
#[derive(Debug, Clone, clap::Parser)]
pub struct MergeArgs {
    /// Report folders (each holding report.json and one `<name>.hlog` per histogram).
    #[arg(required = true, num_args = 1.., value_name = "DIR")]
    pub dirs: Vec<PathBuf>,

    /// Directory under which the merged `<UTC timestamp>-<id>/` folder is written.
    #[arg(long, default_value = "reports", value_name = "DIR")]
    pub out: PathBuf,

    /// A gate judged on the merged result (repeatable; as `run --threshold`).
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<String>,
}

/// `firehose-sim merge DIR... --out OUT [--threshold …]`.
pub fn main(args: &MergeArgs) -> u8 {
    let thresholds = match args.thresholds.iter().map(|t| Threshold::parse(t)).collect::<Result<Vec<_>, _>>() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("firehose-sim merge: {e}");
            return exit::USAGE;
        }
    };
    let inputs: Vec<Input> =
        args.dirs.iter().enumerate().map(|(i, dir)| Input { label: format!("agent-{i}"), dir: dir.clone() }).collect();
    match merge(&inputs, None) {
        Ok(mut merged) => {
            merged.report.model.verdict.partial = partial_reasons(&inputs);
            finish(merged, &thresholds, &args.out, false, false)
        }
        Err(e) => {
            eprintln!("firehose-sim merge: {e}");
            exit::USAGE
        }
    }
}
