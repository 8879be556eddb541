//! `firehose-sim run`: flags → plan → the plan's workloads through the engine (in this
//! process, or over `--agents` processes) → report judged → terminal, files → exit
//! code. The same conclusion (judge, print, write) serves a single process and an agent.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::error::SimError;
use crate::engine::run::{Alone, Peers};
use crate::engine::workload::Workload;
use crate::engine::{interrupt, run as engine};
use crate::fixtures::Corpus;
use crate::plan::Plan;
use crate::plan::args::RunArgs;
use crate::report::dashboard::Dashboard;
use crate::report::gate::Threshold;
use crate::report::live::{self, LiveEvent};
use crate::report::{self, Report, exit};
use crate::workloads::actions::Actions;
use crate::workloads::bookmarks::Bookmarks;
use crate::workloads::pages::Pages;
use crate::workloads::reads::Reads;

/// The workloads `plan` asks for, in the order they open.
pub fn workloads(plan: &Plan) -> Vec<Box<dyn Workload>> {
    let mut w: Vec<Box<dyn Workload>> = vec![Box::new(Bookmarks::new())];
    if plan.actions.is_active() {
        w.push(Box::new(Actions::new()));
    }
    if plan.pages.is_active() {
        w.push(Box::new(Pages::new()));
    }
    if plan.reads.is_active() {
        w.push(Box::new(Reads::new()));
    }
    w
}

/// Runs `plan` alone, with the committed fixture corpus.
pub async fn run(plan: Plan) -> Result<Report, SimError> {
    let corpus = Corpus::embedded_default().map_err(|e| SimError::Setup(format!("fixture corpus: {e}")))?;
    run_with(plan, Arc::new(corpus), &Alone).await
}

/// Runs `plan` drawing from `corpus`, as one of `peers`.
pub async fn run_with(plan: Plan, corpus: Arc<Corpus>, peers: &dyn Peers) -> Result<Report, SimError> {
    let workloads = workloads(&plan);
    engine::run(plan, corpus, workloads, peers).await
}

/// Where a run's human output goes: stdout for a single process, stderr for an agent
/// (whose stdout carries the agent protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voice {
    Stdout,
    Stderr,
}

impl Voice {
    pub fn say(self, text: &str) {
        match self {
            Voice::Stdout => crate::report::terminal::print(text),
            Voice::Stderr => eprint!("{text}"),
        }
    }
}

/// Judges a finished (or partial) run, prints its summary and verdict line and writes
/// its report under `out`: the exit code, and the report folder when one was written.
pub fn conclude(
    result: Result<Report, SimError>,
    thresholds: &[Threshold],
    out: &Path,
    voice: Voice,
) -> (u8, Option<PathBuf>) {
    let interrupted = interrupt::requested();
    // A run that failed after listeners connected still writes what it measured.
    let (mut report, failed) = match result {
        Ok(report) => (report, None),
        Err(SimError::Partial { cause, report }) => (*report, Some(*cause)),
        Err(e) => {
            eprintln!("firehose-sim: {e}");
            live::publish(&LiveEvent::Phase { phase: "failed".into(), detail: e.to_string() });
            return (if interrupted { exit::INTERRUPTED } else { e.exit_code() }, None);
        }
    };
    report.judge(thresholds, interrupted);
    voice.say(&report::terminal::render(&report.model));
    let dir = match report::files::write(&report, out) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("firehose-sim: cannot write the report under {}: {e}", out.display());
            return (exit::FAILURE, None);
        }
    };
    let code = match failed {
        Some(cause) if !interrupted => {
            eprintln!("firehose-sim: {cause}");
            cause.exit_code()
        }
        _ => report.exit_code(),
    };
    voice.say(&report::terminal::footer(&report.model, &dir));
    live::ended(&report.model, &dir);
    (code, Some(dir))
}

/// `firehose-sim run`.
pub fn main(args: &RunArgs) -> u8 {
    let plan = match Plan::from_args(args) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("firehose-sim: {e}");
            return exit::USAGE;
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .try_init();
    // Never `println!`: a closed stdout (`| head -1`) must not stop the run.
    crate::report::terminal::println(&plan.to_string());
    report::progress::set_enabled(!args.quiet);
    let dashboard = match args.dashboard.map(|addr| Dashboard::start(addr, plan.to_string())).transpose() {
        Ok(dashboard) => dashboard,
        Err(e) => {
            eprintln!("firehose-sim: {e}");
            return exit::USAGE;
        }
    };
    if let Some(d) = &dashboard {
        eprintln!("firehose-sim: live dashboard at {}", d.url());
    }
    let code = if plan.agents.count > 1 { crate::commands::agents::main(&plan) } else { alone(plan) };
    if let Some(d) = dashboard {
        d.finish();
    }
    code
}

/// Runs `plan` in this process: the exit code.
fn alone(plan: Plan) -> u8 {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("firehose-sim: cannot start the runtime: {e}");
            return exit::FAILURE;
        }
    };
    let (out, thresholds) = (plan.out.clone(), plan.thresholds.clone());
    // SIGINT/SIGTERM: stop scheduling, drain briefly, write a partial report (exit 9).
    if let Err(e) = runtime.block_on(async { interrupt::listen(|_| {}) }) {
        eprintln!("firehose-sim: cannot watch for SIGINT/SIGTERM: {e}");
    }
    let result = runtime.block_on(run(plan));
    conclude(result, &thresholds, &out, Voice::Stdout).0
}
