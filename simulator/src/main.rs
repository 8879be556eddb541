//! `firehose-sim`: flags → plan → run → report → exit code. Nothing else lives here.

use std::process::ExitCode;

use clap::Parser;
use firehose_sim::cli::{Cli, Command};
use firehose_sim::error::exit;
use firehose_sim::{Plan, fixtures, report};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Fixtures(args) => match fixtures::run_cli(&args) {
            Ok(()) => ExitCode::from(exit::OK),
            Err(e) => {
                eprintln!("firehose-sim fixtures: {e:#}");
                ExitCode::from(exit::FAILURE)
            }
        },
        Command::Run(args) => {
            let plan = match Plan::from_args(&args) {
                Ok(plan) => plan,
                Err(e) => {
                    eprintln!("firehose-sim: {e}");
                    return ExitCode::from(exit::USAGE);
                }
            };
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
                )
                .with_writer(std::io::stderr)
                .init();
            println!("{plan}");
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("firehose-sim: cannot start the runtime: {e}");
                    return ExitCode::from(exit::FAILURE);
                }
            };
            let out = plan.out.clone();
            let report = match runtime.block_on(firehose_sim::run(plan)) {
                Ok(report) => report,
                Err(e) => {
                    eprintln!("firehose-sim: {e}");
                    return ExitCode::from(e.exit_code());
                }
            };
            print!("{}", report::terminal::render(&report.model));
            match report::files::write(&report, &out) {
                Ok(dir) => println!("\nreport          {}", dir.join("report.json").display()),
                Err(e) => {
                    eprintln!("firehose-sim: cannot write the report under {}: {e}", out.display());
                    return ExitCode::from(exit::FAILURE);
                }
            }
            ExitCode::from(if report.is_valid() { exit::OK } else { exit::INVALID_RUN })
        }
    }
}
