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
        Command::Knee(args) => ExitCode::from(firehose_sim::knee::main(&args)),
        Command::Demo(args) => ExitCode::from(firehose_sim::demo::main(&args)),
        Command::Compare(args) => ExitCode::from(compare(&args)),
        Command::Merge(args) => ExitCode::from(firehose_sim::merge::main(&args)),
    }
}

fn run(args: &RunArgs) -> u8 {
    if args.agent.is_some() {
        // An agent of `--agents` (or of a parent on another machine): protocol on stdout.
        return firehose_sim::agents::child::main(args);
    }
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
    // Never `println!`: a closed stdout (`| head -1`) must not stop the run (see `out!`).
    firehose_sim::out!("{plan}");
    firehose_sim::progress::set_enabled(!args.quiet);
    if plan.agents > 1 {
        return firehose_sim::agents::main(&plan);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("firehose-sim: cannot start the runtime: {e}");
            return exit::FAILURE;
        }
    };
    let (out, thresholds) = (plan.out.clone(), plan.thresholds.clone());
    // SIGINT/SIGTERM: stop scheduling, drain briefly, write a partial report (exit 9).
    if let Err(e) = runtime.block_on(async { firehose_sim::interrupt::listen(|_| {}) }) {
        eprintln!("firehose-sim: cannot watch for SIGINT/SIGTERM: {e}");
    }
    // A run that failed after listeners connected still writes what it measured.
    let (mut report, failed) = match runtime.block_on(firehose_sim::run(plan)) {
        Ok(report) => (report, None),
        Err(firehose_sim::SimError::Partial { cause, report }) => (*report, Some(*cause)),
        Err(e) => {
            eprintln!("firehose-sim: {e}");
            return if firehose_sim::interrupt::requested() { exit::INTERRUPTED } else { e.exit_code() };
        }
    };
    report.judge(&thresholds);
    firehose_sim::out_raw!("{}", report::terminal::render(&report.model));
    match report::files::write(&report, &out) {
        Ok(dir) => {
            firehose_sim::out!("\nreport          {}", dir.join("report.json").display());
            if let Some(why) = &report.model.partial {
                eprintln!("firehose-sim: partial report ({why}) written to {}", dir.display());
            }
        }
        Err(e) => {
            eprintln!("firehose-sim: cannot write the report under {}: {e}", out.display());
            return exit::FAILURE;
        }
    }
    if firehose_sim::interrupt::requested() {
        return exit::INTERRUPTED;
    }
    if let Some(cause) = failed {
        eprintln!("firehose-sim: {cause}");
        return cause.exit_code();
    }
    report.exit_code()
}

fn compare(args: &CompareArgs) -> u8 {
    match compare::run(args) {
        Ok(comparison) => {
            firehose_sim::out_raw!("{}", compare::render(&comparison, &args.baseline, &args.new));
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
