//! `firehose-sim run --agents K`: one plan over K simulator processes on this machine,
//! each with its own file-descriptor budget. The parent boots the embedded app when
//! there is no `--target`, starts K copies of its own executable as agents
//! (`run --agent I/K` plus the parent's flags and one shared run id), waits until every
//! agent's listeners joined, sends all of them one wall-clock t0, relays every agent's
//! outcomes to all of them once they drained (so each accounts every agent's events),
//! collects their report folders and merges them exactly (`merge`) into one report
//! judged on the default gates and the `--threshold`s. The protocol is
//! in [`protocol`]; the same lines work across machines (README, "Agents").

pub mod child;
pub mod live;
pub mod protocol;

use std::ffi::{OsStr, OsString};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use live::AgentRows;
use protocol::{AgentMessage, ParentMessage};

use crate::engine::error::exit;
use crate::engine::interrupt;
use crate::engine::target::Target;
use crate::plan::{Plan, TargetSpec};
use crate::report::merge::{self, Input};

/// From the last agent's `ready` to the common t0: time for the start line to reach
/// every agent and for each to arm its generator.
const START_DELAY: Duration = Duration::from_millis(300);

/// Process ids of the running agents, to forward SIGINT/SIGTERM to.
static CHILDREN: parking_lot::Mutex<Vec<u32>> = parking_lot::Mutex::new(Vec::new());

/// Sends `signal` (`SIGINT`/`SIGTERM`) to every running agent.
fn forward(signal: &str) {
    let flag = if signal == "SIGTERM" { "-TERM" } else { "-INT" };
    for pid in CHILDREN.lock().iter() {
        let _ = Command::new("kill").args([flag, &pid.to_string()]).stderr(Stdio::null()).status();
    }
}

/// `run` flags the parent decides for its agents (with whether they take a value).
const PARENT_FLAGS: &[(&str, Value)] = &[
    ("--agents", Value::Required),
    ("--out", Value::Required),
    ("--threshold", Value::Required),
    ("--quiet", Value::None),
    ("--run-id", Value::Required),
    ("--dashboard", Value::Optional),
];

/// Whether a flag takes a value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Value {
    None,
    Required,
    /// `--dashboard` alone or `--dashboard ADDR`: the next argument is its value
    /// unless it is a flag.
    Optional,
}

/// The agent's command line after `run`: the parent's `run` flags minus `--agents`,
/// `--out` and `--threshold` (the parent merges and judges), plus `--agent I/K`, its
/// own `--out` and, for an embedded parent, the parent's server as `--target` (instead
/// of a `--target embedded` it may have been given). An external run's `--target`s all
/// pass through: every agent drives every target.
pub fn agent_args(
    parent: &[OsString],
    index: u32,
    count: u32,
    out: &Path,
    target: Option<&str>,
    run_id: &str,
) -> Vec<OsString> {
    let mut args = Vec::new();
    // The value still to skip of the parent flag just seen.
    let mut pending = Value::None;
    for arg in parent {
        let text = arg.to_string_lossy();
        match std::mem::replace(&mut pending, Value::None) {
            Value::Required => continue,
            Value::Optional if !text.starts_with('-') => continue,
            _ => {}
        }
        let embedded_target = target.is_some().then_some(("--target", Value::Required));
        let flag = PARENT_FLAGS
            .iter()
            .chain(embedded_target.iter())
            .find(|(f, _)| text == *f || text.starts_with(&format!("{f}=")));
        match flag {
            Some((f, value)) if text == *f => pending = *value,
            Some(_) => {}
            None => args.push(arg.clone()),
        }
    }
    args.push(format!("--agent={index}/{count}").into());
    args.push(format!("--run-id={run_id}").into());
    args.push(OsString::from("--out"));
    args.push(out.as_os_str().to_owned());
    if let Some(url) = target {
        args.push(format!("--target={url}").into());
    }
    args
}

/// The `run` flags of this process's command line (what follows the `run` subcommand).
fn own_run_args() -> Vec<OsString> {
    let all: Vec<OsString> = std::env::args_os().skip(1).collect();
    match all.iter().position(|a| a == OsStr::new("run")) {
        Some(at) => all[at + 1..].to_vec(),
        None => Vec::new(),
    }
}

struct Agent {
    child: Child,
    stdin: Option<ChildStdin>,
}

/// Runs `plan` (with `plan.agents` > 1) over that many agent processes; the exit code
/// of the merged run (or of the first agent that failed).
pub fn main(plan: &Plan) -> u8 {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("firehose-sim: cannot start the runtime: {e}");
            return exit::FAILURE;
        }
    };
    // SIGINT/SIGTERM go to the agents (in process groups of their own, so that a
    // terminal's Ctrl-C reaches them once); each writes its partial report.
    if let Err(e) = runtime.block_on(async { interrupt::listen(forward) }) {
        eprintln!("firehose-sim: cannot watch for SIGINT/SIGTERM: {e}");
    }
    // The embedded app lives here, so every agent drives the same server.
    let target = match &plan.target.spec {
        TargetSpec::Embedded => match runtime.block_on(Target::boot()) {
            Ok(target) => Some(target),
            Err(e) => {
                eprintln!("firehose-sim: {e}");
                return e.exit_code();
            }
        },
        TargetSpec::External { .. } => None,
    };
    let url = target.as_ref().map(|t| t.base_url.clone());
    let code = drive(plan, url.as_deref());
    if let Some(target) = target
        && let Err(e) = runtime.block_on(target.close())
    {
        eprintln!("firehose-sim: {e}");
    }
    code
}

fn drive(plan: &Plan, embedded_url: Option<&str>) -> u8 {
    let count = plan.agents.count;
    let run_id = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let work = match tempfile::Builder::new().prefix(".agents-").tempdir_in(ensure_dir(&plan.out)) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("firehose-sim: cannot create a work folder under {}: {e}", plan.out.display());
            return exit::FAILURE;
        }
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("firehose-sim: cannot find its own executable to start agents: {e}");
            return exit::FAILURE;
        }
    };
    let parent_args = own_run_args();
    let (tx, rx) = mpsc::channel::<(u32, Option<AgentMessage>)>();
    let mut agents = Vec::new();
    for i in 0..count {
        let out = work.path().join(format!("agent-{i}"));
        let mut command = Command::new(&exe);
        command.arg("run").args(agent_args(&parent_args, i, count, &out, embedded_url, &run_id));
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                eprintln!("firehose-sim: cannot start agent {i}: {e}");
                stop_all(&mut agents, "another agent could not start");
                return exit::SETUP;
            }
        };
        let stdout = child.stdout.take().map(BufReader::new);
        let tx = tx.clone();
        std::thread::spawn(move || {
            let Some(mut stdout) = stdout else { return };
            while let Ok(Some(message)) = protocol::receive::<AgentMessage>(&mut stdout) {
                if tx.send((i, Some(message))).is_err() {
                    return;
                }
            }
            let _ = tx.send((i, None));
        });
        let stdin = child.stdin.take();
        CHILDREN.lock().push(child.id());
        if interrupt::requested() {
            forward(interrupt::received().map_or("SIGINT", |(name, _)| name));
        }
        agents.push(Agent { child, stdin });
    }
    drop(tx);

    // Every agent ready → one common t0.
    let mut rows = AgentRows::new(count, plan.traffic.duration);
    rows.phase("connecting", format!("0/{count} agents ready"));
    let mut ready = 0;
    while ready < count {
        match rx.recv() {
            Ok((_, Some(AgentMessage::Ready { .. }))) => {
                ready += 1;
                rows.phase("connecting", format!("{ready}/{count} agents ready"));
            }
            Ok((i, Some(AgentMessage::Row { row, .. }))) => rows.add(i, row),
            Ok((i, Some(AgentMessage::Error { message, exit_code }))) => {
                eprintln!("firehose-sim: agent {i} failed before the start: {message}");
                stop_all(&mut agents, &format!("agent {i} failed"));
                return exit_code.max(1);
            }
            Ok((i, _)) => {
                eprintln!("firehose-sim: agent {i} stopped before it was ready");
                stop_all(&mut agents, &format!("agent {i} stopped"));
                return exit::SETUP;
            }
            Err(_) => {
                eprintln!("firehose-sim: the agents stopped before they were ready");
                stop_all(&mut agents, "agents stopped");
                return exit::SETUP;
            }
        }
    }
    let start = ParentMessage::Start { start_at_unix_ns: protocol::unix_ns(SystemTime::now() + START_DELAY) };
    for agent in &mut agents {
        if let Some(stdin) = agent.stdin.as_mut() {
            let _ = protocol::send(stdin, &start);
        }
    }

    rows.phase("traffic", format!("{count} agents"));
    // Every agent settled → everyone's outcomes to everyone; every agent done → merge.
    let mut outcomes: Vec<Option<Vec<serde_json::Value>>> = vec![None; count as usize];
    let mut dirs: Vec<Option<PathBuf>> = vec![None; count as usize];
    let mut failed: Option<u8> = None;
    let mut finished = 0;
    while finished < count {
        match rx.recv() {
            Ok((i, Some(AgentMessage::Settled { outcomes: theirs, .. }))) => {
                outcomes[i as usize] = Some(theirs);
                if outcomes.iter().all(Option::is_some) {
                    rows.phase("draining", format!("{count} agents settled; accounting and merging"));
                    let all: Vec<Vec<serde_json::Value>> =
                        outcomes.iter().map(|o| o.clone().unwrap_or_default()).collect();
                    let message = ParentMessage::Outcomes { outcomes: all };
                    for agent in &mut agents {
                        if let Some(stdin) = agent.stdin.as_mut() {
                            let _ = protocol::send(stdin, &message);
                        }
                    }
                }
            }
            Ok((i, Some(AgentMessage::Done { report_dir, .. }))) => {
                dirs[i as usize] = Some(report_dir);
                finished += 1;
            }
            Ok((i, Some(AgentMessage::Error { message, exit_code }))) => {
                eprintln!("firehose-sim: agent {i} failed: {message}");
                failed = failed.or(Some(exit_code.max(1)));
                finished += 1;
                // The others may be waiting for its outcomes: they will not come.
                stop_all_waiting(&mut agents, &format!("agent {i} failed"));
            }
            Ok((i, Some(AgentMessage::Row { row, .. }))) => rows.add(i, row),
            Ok((_, Some(AgentMessage::Ready { .. }))) => {}
            Ok((i, None)) => {
                if dirs[i as usize].is_none() && failed.is_none() {
                    eprintln!("firehose-sim: agent {i} stopped without a report");
                    failed = Some(exit::SETUP);
                    finished += 1;
                }
            }
            Err(_) => break,
        }
    }
    for agent in &mut agents {
        drop(agent.stdin.take());
        let _ = agent.child.wait();
    }
    CHILDREN.lock().clear();
    if let Some(code) = failed {
        return code;
    }
    let inputs: Vec<Input> = dirs
        .into_iter()
        .enumerate()
        .filter_map(|(i, dir)| Some(Input { label: format!("agent-{i}"), dir: dir? }))
        .collect();
    if inputs.len() != count as usize {
        eprintln!("firehose-sim: only {} of {count} agents wrote a report", inputs.len());
        return exit::SETUP;
    }
    let parent_plan = serde_json::to_value(plan).unwrap_or_default();
    match merge::merge(&inputs, Some(parent_plan)) {
        Ok(mut merged) => {
            if embedded_url.is_some() {
                // The agents saw the parent's in-process app as an external URL.
                merged.report.model.target.kind = "embedded".into();
                for entry in merged.report.model.targets.values_mut() {
                    entry.kind = "embedded".into();
                }
            }
            merged.report.model.verdict.partial = merge::partial_reasons(&inputs);
            merge::finish(merged, &plan.thresholds, &plan.out, true, interrupt::requested())
        }
        Err(e) => {
            eprintln!("firehose-sim: cannot merge the agents' reports: {e}");
            exit::FAILURE
        }
    }
}

fn ensure_dir(dir: &Path) -> &Path {
    let _ = std::fs::create_dir_all(dir);
    dir
}

/// Tells every agent to give up waiting for the parent (they write what they measured).
fn stop_all_waiting(agents: &mut [Agent], why: &str) {
    for agent in agents.iter_mut() {
        if let Some(mut stdin) = agent.stdin.take() {
            let _ = protocol::send(&mut stdin, &ParentMessage::Abort { abort: why.to_owned() });
            let _ = stdin.flush();
        }
    }
}

/// Tells every agent still waiting to give up, then waits for all of them.
fn stop_all(agents: &mut [Agent], why: &str) {
    for agent in agents.iter_mut() {
        if let Some(mut stdin) = agent.stdin.take() {
            let _ = protocol::send(&mut stdin, &ParentMessage::Abort { abort: why.to_owned() });
            let _ = stdin.flush();
        }
    }
    for agent in agents.iter_mut() {
        let _ = agent.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_get_the_parents_flags_but_not_its_split_output_or_gates() {
        let parent: Vec<OsString> = [
            "--listeners",
            "10",
            "--agents",
            "2",
            "--out=reports/x",
            "--threshold",
            "loss == 0",
            "--dashboard",
            "--rate",
            "5",
            "--quiet",
            "--dashboard",
            "127.0.0.1:0",
            "--duration=3s",
            "--dashboard=127.0.0.1:1",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let args = agent_args(&parent, 1, 2, Path::new("/tmp/w/agent-1"), Some("http://127.0.0.1:5"), "abc123");
        let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            args,
            [
                "--listeners",
                "10",
                "--rate",
                "5",
                "--duration=3s",
                "--agent=1/2",
                "--run-id=abc123",
                "--out",
                "/tmp/w/agent-1",
                "--target=http://127.0.0.1:5"
            ]
        );
    }

    #[test]
    fn agents_get_every_target_or_only_the_embedded_parents_server() {
        let parent: Vec<OsString> =
            ["--target", "http://a:1", "--target=http://b:1", "--listeners", "10"].iter().map(OsString::from).collect();
        let text = |args: Vec<OsString>| args.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>();
        let external = text(agent_args(&parent, 0, 2, Path::new("/o"), None, "r"));
        assert_eq!(external[..5], ["--target", "http://a:1", "--target=http://b:1", "--listeners", "10"]);
        let embedded: Vec<OsString> =
            ["--target", "embedded", "--listeners", "10"].iter().map(OsString::from).collect();
        let args = text(agent_args(&embedded, 0, 2, Path::new("/o"), Some("http://127.0.0.1:5"), "r"));
        assert!(!args.iter().any(|a| a == "embedded"), "{args:?}");
        assert_eq!(args.iter().filter(|a| a.starts_with("--target")).count(), 1, "{args:?}");
    }
}
