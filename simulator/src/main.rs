//! `firehose-sim`: parses the command line and hands it to `commands`; nothing else
//! lives here.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(firehose_sim::commands::main(firehose_sim::commands::parse()))
}
