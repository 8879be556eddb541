//! One agent (`firehose-sim run --agent I/K …`): its share of the plan, run like a
//! single process's except that traffic starts at the t0 its parent sends, human output
//! goes to stderr and stdout carries only the protocol's JSON lines.

use std::io::{self, Write};

use std::sync::Arc;

use super::protocol::{self, AgentMessage, ParentMessage};
use crate::commands::run::{Voice, conclude};
use crate::engine::error::{SimError, exit};
use crate::engine::run::{Peers, Ready};
use crate::fixtures::Corpus;
use crate::plan::Plan;
use crate::plan::args::RunArgs;
use crate::report::live::{self, LiveEvent};

/// An agent's peers, reached through its parent on stdin/stdout.
struct Parent {
    agent: u32,
}

impl Parent {
    fn say(&self, message: &AgentMessage) -> Result<(), SimError> {
        protocol::send(&mut io::stdout().lock(), message)
            .map_err(|e| SimError::Setup(format!("agent protocol: cannot write to the parent: {e}")))
    }

    fn hear(&self, what: &str) -> Result<ParentMessage, SimError> {
        // `Stdin` keeps its buffer between locks.
        match protocol::receive::<ParentMessage>(&mut io::stdin().lock()) {
            Ok(Some(ParentMessage::Abort { abort })) => Err(SimError::Setup(format!("aborted by the parent: {abort}"))),
            Ok(Some(message)) => Ok(message),
            Ok(None) => Err(SimError::Setup(format!("agent protocol: the parent closed stdin before {what}"))),
            Err(e) => Err(SimError::Setup(format!("agent protocol: cannot read from the parent: {e}"))),
        }
    }
}

impl Peers for Parent {
    fn start(&self, ready: &Ready<'_>) -> Result<std::time::Instant, SimError> {
        self.say(&AgentMessage::Ready { agent: self.agent, run_id: ready.run_id.to_owned(), joined: ready.joined })?;
        match self.hear("the start")? {
            ParentMessage::Start { start_at_unix_ns } => Ok(protocol::instant_of(start_at_unix_ns)),
            other => Err(SimError::Setup(format!("agent protocol: expected the start, got {other:?}"))),
        }
    }

    fn exchange(&self, mine: Vec<serde_json::Value>) -> Result<Vec<Vec<serde_json::Value>>, SimError> {
        self.say(&AgentMessage::Settled { agent: self.agent, outcomes: mine })?;
        match self.hear("the outcomes")? {
            ParentMessage::Outcomes { outcomes } => Ok(outcomes),
            other => Err(SimError::Setup(format!("agent protocol: expected the outcomes, got {other:?}"))),
        }
    }
}

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
    let agent = plan.agents.slot.map_or(0, |slot| slot.index);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}"), exit::FAILURE),
    };
    // SIGINT/SIGTERM (forwarded by the parent): a partial report, as a single process.
    if let Err(e) = runtime.block_on(async { crate::engine::interrupt::listen(|_| {}) }) {
        eprintln!("firehose-sim agent: cannot watch for SIGINT/SIGTERM: {e}");
    }
    let corpus = match Corpus::embedded_default() {
        Ok(corpus) => Arc::new(corpus),
        Err(e) => return fail(format!("fixture corpus: {e}"), exit::SETUP),
    };
    let (out, thresholds) = (plan.out.clone(), plan.thresholds.clone());
    // Each sampled second to the parent, for its dashboard.
    let _rows = live::subscribe(move |event| {
        if let LiveEvent::Row { row, .. } = event {
            let _ = protocol::send(&mut io::stdout().lock(), &AgentMessage::Row { agent, row: row.clone() });
        }
    });
    let result = runtime.block_on(crate::commands::run::run_with(plan, corpus, &Parent { agent }));
    if let Err(e) = &result
        && !matches!(e, SimError::Partial { .. })
    {
        return fail(e.to_string(), e.exit_code());
    }
    let (code, dir) = conclude(result, &thresholds, &out, Voice::Stderr);
    match dir {
        Some(report_dir) => {
            let _ = protocol::send(&mut io::stdout().lock(), &AgentMessage::Done { report_dir, exit_code: code });
            code
        }
        None => fail("the report could not be written".into(), code),
    }
}

fn fail(message: String, exit_code: u8) -> u8 {
    eprintln!("firehose-sim agent: {message}");
    let _ = protocol::send(&mut io::stdout().lock(), &AgentMessage::Error { message, exit_code });
    let _ = io::stdout().flush();
    exit_code
}
