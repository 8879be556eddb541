//! The subcommands of `firehose-sim`, each a module that turns its arguments into work
//! and an exit code: `run` (one process, or `agents` over several), `merge`, `compare`,
//! `knee`, `demo`, `metrics`, `fixtures`. `main.rs` only dispatches here.

pub mod agents;
pub mod compare;
pub mod demo;
pub mod fixtures;
pub mod knee;
pub mod merge;
pub mod metrics;
pub mod run;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::commands::compare::CompareArgs;
use crate::commands::fixtures::FixturesArgs;
use crate::plan::args::RunArgs;
use crate::report::exit::{self, EXIT_CODES_HELP};

#[derive(Debug, Parser)]
#[command(name = "firehose-sim", version, about, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Drive a firehose target: listeners on the firehose and tag topics, bookmarks
    /// created at a constant rate (open model), delivery latency and loss measured.
    #[command(after_help = EXIT_CODES_HELP)]
    Run(RunArgs),
    /// Compare two report.json files: key latency percentiles and throughput; exits 6
    /// when the new run regressed beyond the bound.
    #[command(after_help = EXIT_CODES_HELP)]
    Compare(CompareArgs),
    /// Merge report folders of several simulator processes (agents) into one report,
    /// exactly: histograms rebuilt from their `.hlog` interval logs, counts added,
    /// maxima and minima kept, thresholds judged on the result.
    #[command(after_help = EXIT_CODES_HELP)]
    Merge(crate::commands::merge::MergeArgs),
    /// Step the bookmark rate or the listener count, one full run per level, until an
    /// --slo breaks (or the run turns invalid); report the highest level that held.
    #[command(after_help = EXIT_CODES_HELP)]
    Knee(crate::commands::knee::KneeArgs),
    /// A human-paced, endless firehose into a running server, for showing the app:
    /// bookmarks, likes, chat with typing; one line per action; Ctrl-C stops it.
    #[command(after_help = EXIT_CODES_HELP)]
    Demo(crate::commands::demo::DemoArgs),
    /// List every metric a --threshold, --slo or compare may name, grouped, with units.
    Metrics(crate::commands::metrics::MetricsArgs),
    /// Generate the deterministic fixture corpus.
    Fixtures(FixturesArgs),
}

/// Parses the whole command line; `run` arguments carry which flags were given.
pub fn parse() -> Cli {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let (Command::Run(args), Some(("run", sub))) = (&mut cli.command, matches.subcommand()) {
        args.explicit = RunArgs::from_matches(sub).unwrap_or_else(|e| e.exit()).explicit;
    }
    if let (Command::Knee(args), Some(("knee", sub))) = (&mut cli.command, matches.subcommand()) {
        args.run.explicit = RunArgs::from_matches(sub).unwrap_or_else(|e| e.exit()).explicit;
    }
    cli
}

/// Runs the subcommand `cli` names; the process's exit code.
pub fn main(cli: Cli) -> u8 {
    match cli.command {
        Command::Fixtures(args) => match fixtures::run_cli(&args) {
            Ok(()) => exit::OK,
            Err(e) => {
                eprintln!("firehose-sim fixtures: {e:#}");
                exit::FAILURE
            }
        },
        // An agent of `--agents` (or of a parent on another machine): protocol on stdout.
        Command::Run(args) if args.agent.is_some() => agents::child::main(&args),
        Command::Run(args) => run::main(&args),
        Command::Knee(args) => knee::main(&args),
        Command::Demo(args) => demo::main(&args),
        Command::Compare(args) => compare::main(&args),
        Command::Merge(args) => merge::main(&args),
        Command::Metrics(args) => metrics::main(&args),
    }
}
