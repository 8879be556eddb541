//! One agent (`firehose-sim run --agent I/K …`): its share of the plan, run like a
//! single process's except that traffic starts at the t0 its parent sends, human output
//! goes to stderr and stdout carries only the protocol's JSON lines.

use std::io::{self, Write};

use super::protocol::{self, AgentMessage, ParentMessage};
use crate::Plan;
use crate::commands::run::Ready;
use crate::engine::error::{SimError, exit};
use crate::fixtures::Corpus;
use crate::plan::args::RunArgs;
use crate::report::{self, Report};

/// Runs agent `args.agent`'s share; the exit code is also in the last protocol line.
pub fn main(args: &RunArgs) -> u8 {
    let plan = match Plan::from_args(args) {
        Ok(plan) => plan,
        Err(e) => return fail(format!("{e}"), exit::USAGE),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(io::stderr)
        .try_init();
    eprintln!("{plan}");
    let agent = plan.agent.map_or(0, |slot| slot.index);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}"), exit::FAILURE),
    };
    // SIGINT/SIGTERM (forwarded by the parent): a partial report, as a single process.
    if let Err(e) = runtime.block_on(async { crate::engine::interrupt::listen(|_| {}) }) {
        eprintln!("firehose-sim agent: cannot watch for SIGINT/SIGTERM: {e}");
    }
    let corpus = match Corpus::embedded_default() {
        Ok(corpus) => corpus,
        Err(e) => return fail(format!("fixture corpus: {e}"), exit::SETUP),
    };
    let gate = |ready: &Ready<'_>| -> Result<std::time::Instant, SimError> {
        let message = AgentMessage::Ready { agent, run_id: ready.run_id.to_owned(), joined: ready.joined };
        protocol::send(&mut io::stdout().lock(), &message)
            .map_err(|e| SimError::Setup(format!("agent protocol: cannot write to the parent: {e}")))?;
        // `Stdin` keeps its buffer between locks.
        match protocol::receive::<ParentMessage>(&mut io::stdin().lock()) {
            Ok(Some(ParentMessage::Start { start_at_unix_ns })) => Ok(protocol::instant_of(start_at_unix_ns)),
            Ok(Some(ParentMessage::Abort { abort })) => Err(SimError::Setup(format!("aborted by the parent: {abort}"))),
            Ok(None) => Err(SimError::Setup("agent protocol: the parent closed stdin before the start".into())),
            Err(e) => Err(SimError::Setup(format!("agent protocol: cannot read from the parent: {e}"))),
        }
    };
    let (out, thresholds) = (plan.out.clone(), plan.thresholds.clone());
    let result: Result<Report, SimError> = runtime.block_on(crate::commands::run::run_gated(plan, &corpus, &gate));
    // A run that failed after listeners connected still reports what it measured.
    let (mut report, failed) = match result {
        Ok(report) => (report, None),
        Err(SimError::Partial { cause, report }) => (*report, Some(*cause)),
        Err(e) => return fail(e.to_string(), e.exit_code()),
    };
    report.judge(&thresholds);
    eprint!("{}", report::terminal::render(&report.model));
    let dir = match report::files::write(&report, &out) {
        Ok(dir) => dir,
        Err(e) => return fail(format!("cannot write the report under {}: {e}", out.display()), exit::FAILURE),
    };
    // 3, 5, then 8 (the target dropped connections), as a single process decides.
    let code = failed.map_or_else(|| report.exit_code(), |cause| cause.exit_code());
    let code = if crate::engine::interrupt::requested() { exit::INTERRUPTED } else { code };
    let _ = protocol::send(&mut io::stdout().lock(), &AgentMessage::Done { report_dir: dir, exit_code: code });
    code
}

fn fail(message: String, exit_code: u8) -> u8 {
    eprintln!("firehose-sim agent: {message}");
    let _ = protocol::send(&mut io::stdout().lock(), &AgentMessage::Error { message, exit_code });
    let _ = io::stdout().flush();
    exit_code
}
