//! `firehose-sim`: flags → plan → run → report → gates → exit code; or two reports →
//! comparison → exit code. Nothing else lives here.

use std::process::ExitCode;

use firehose_sim::cli::{self, Command, RunArgs};
use firehose_sim::compare::{self, CompareArgs, CompareError};
use firehose_sim::error::exit;
use firehose_sim::{Plan, fixtures, report};

fn main() -> ExitCode {
    match cli::parse().command {
        Command::Fixtures(args) => match fixtures::run_cli(&args) {
            Ok(()) => ExitCode::from(exit::OK),
            Err(e) => {
                eprintln!("firehose-sim fixtures: {e:#}");
                ExitCode::from(exit::FAILURE)
            }
        },
        Command::Run(args) => ExitCode::from(run(&args)),
        Command::Rooms(args) => ExitCode::from(firehose_sim::rooms::main(&args)),
        Command::Compare(args) => ExitCode::from(compare(&args)),
    }
}

fn run(args: &RunArgs) -> u8 {
    let plan = match Plan::from_args(args) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("firehose-sim: {e}");
            return exit::USAGE;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    println!("{plan}");
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("firehose-sim: cannot start the runtime: {e}");
            return exit::FAILURE;
        }
    };
    let (out, thresholds) = (plan.out.clone(), plan.thresholds.clone());
    let mut report = match runtime.block_on(firehose_sim::run(plan)) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("firehose-sim: {e}");
            return e.exit_code();
        }
    };
    report.judge(&thresholds);
    print!("{}", report::terminal::render(&report.model));
    match report::files::write(&report, &out) {
        Ok(dir) => println!("\nreport          {}", dir.join("report.json").display()),
        Err(e) => {
            eprintln!("firehose-sim: cannot write the report under {}: {e}", out.display());
            return exit::FAILURE;
        }
    }
    if !report.is_valid() {
        exit::INVALID_RUN
    } else if !report.thresholds_passed() {
        exit::THRESHOLD
    } else {
        exit::OK
    }
}

fn compare(args: &CompareArgs) -> u8 {
    match compare::run(args) {
        Ok(comparison) => {
            print!("{}", compare::render(&comparison, &args.baseline, &args.new));
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
