//! The agent protocol: JSON lines between a parent (`run --agents K`, or a person
//! driving agents on other machines over `ssh`) and an agent (`run --agent I/K`), on
//! the agent's stdin and stdout. Lines that are not JSON objects are ignored (a login
//! banner, say), so the protocol survives being piped through other tools.
//!
//! 1. agent → parent, once its listeners joined (setup and seeding done):
//!    `{"ready":{"agent":I,"run_id":"…","joined":N}}`
//! 2. parent → agent, once every agent is ready: `{"start_at_unix_ns":T}`, the common
//!    wall-clock t0 of every agent's schedule (clocks must agree: NTP), or
//!    `{"abort":"why"}`.
//!    While traffic runs, once a second: `{"row":{"agent":I,"row":{…}}}`, the agent's
//!    latest timeline row (as in `report.json`); the parent shows the agents' rows of
//!    each second merged on its dashboard (`--dashboard`), or ignores them.
//! 3. agent → parent, once its traffic ended and its deliveries drained:
//!    `{"settled":{"agent":I,"outcomes":[…]}}`, one JSON value per workload of what its
//!    own actions' outcomes mean for the others' accounting (e.g. the bookmark events it
//!    sent that owe nothing: `{"not_owed":[i…]}`).
//! 4. parent → agent, once every agent settled: `{"outcomes":[[…],…]}`, every agent's
//!    (in agent order, its own included).
//! 5. agent → parent: `{"done":{"report_dir":"…","exit_code":C}}` once its report is
//!    written, or at any point `{"error":{"message":"…","exit_code":C}}`.
//!
//! All agents of a run share one run id (`--run-id`, given by the parent), so every
//! agent recognises every agent's events.

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::report::timeline::TimelineRow;

/// What an agent says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentMessage {
    Ready {
        agent: u32,
        run_id: String,
        joined: u64,
    },
    /// One sampled second of its timeline, while traffic runs.
    Row {
        agent: u32,
        row: TimelineRow,
    },
    /// After the drain: what its workloads know of their own actions' outcomes that the
    /// other agents need to account their deliveries (one JSON value per workload).
    Settled {
        agent: u32,
        outcomes: Vec<serde_json::Value>,
    },
    Done {
        report_dir: PathBuf,
        exit_code: u8,
    },
    Error {
        message: String,
        exit_code: u8,
    },
}

/// What the parent says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", untagged)]
pub enum ParentMessage {
    Start {
        start_at_unix_ns: u64,
    },
    /// Every agent's `settled` outcomes, in agent order.
    Outcomes {
        outcomes: Vec<Vec<serde_json::Value>>,
    },
    Abort {
        abort: String,
    },
}

/// Writes `message` as one line and flushes.
pub fn send(out: &mut impl Write, message: &impl Serialize) -> io::Result<()> {
    let mut line = serde_json::to_string(message).map_err(io::Error::other)?;
    line.push('\n');
    out.write_all(line.as_bytes())?;
    out.flush()
}

/// Reads lines until one parses as a `T`; `Ok(None)` at end of input.
pub fn receive<T: for<'de> Deserialize<'de>>(input: &mut impl BufRead) -> io::Result<Option<T>> {
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let text = line.trim();
        if text.starts_with('{')
            && let Ok(message) = serde_json::from_str(text)
        {
            return Ok(Some(message));
        }
    }
}

/// Nanoseconds since the Unix epoch of `t`.
pub fn unix_ns(t: SystemTime) -> u64 {
    u64::try_from(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()).unwrap_or(u64::MAX)
}

/// The local `Instant` of wall-clock `unix_ns`. A time already past stays in the past
/// (as far as `Instant` reaches back), so an agent that got the start late is late by
/// its schedule, and its generator lag says so, rather than silently shifted.
pub fn instant_of(unix_ns: u64) -> Instant {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let at = UNIX_EPOCH + Duration::from_nanos(unix_ns);
    match at.duration_since(wall) {
        Ok(ahead) => now + ahead,
        Err(behind) => now.checked_sub(behind.duration()).unwrap_or(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_the_documented_json_lines() {
        let mut out = Vec::new();
        send(&mut out, &AgentMessage::Ready { agent: 1, run_id: "abc".into(), joined: 5 }).unwrap();
        send(&mut out, &ParentMessage::Start { start_at_unix_ns: 7 }).unwrap();
        send(&mut out, &AgentMessage::Done { report_dir: "r/x".into(), exit_code: 0 }).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "{\"ready\":{\"agent\":1,\"run_id\":\"abc\",\"joined\":5}}\n{\"start_at_unix_ns\":7}\n\
             {\"done\":{\"report_dir\":\"r/x\",\"exit_code\":0}}\n"
        );
        let mut input = io::Cursor::new(format!("Welcome to loadbox2\n\n{text}"));
        let ready: Option<AgentMessage> = receive(&mut input).unwrap();
        assert_eq!(ready, Some(AgentMessage::Ready { agent: 1, run_id: "abc".into(), joined: 5 }));
        let start: Option<ParentMessage> = receive(&mut input).unwrap();
        assert_eq!(start, Some(ParentMessage::Start { start_at_unix_ns: 7 }));
        let abort: ParentMessage = serde_json::from_str("{\"abort\":\"agent 2 failed\"}").unwrap();
        assert_eq!(abort, ParentMessage::Abort { abort: "agent 2 failed".into() });
    }

    #[test]
    fn wall_clock_start_times_become_local_instants() {
        let soon = unix_ns(SystemTime::now() + Duration::from_millis(300));
        let at = instant_of(soon);
        let ahead = at.saturating_duration_since(Instant::now());
        assert!(ahead > Duration::from_millis(200) && ahead <= Duration::from_millis(300), "{ahead:?}");
        let late = instant_of(unix_ns(SystemTime::now() - Duration::from_millis(200)));
        let behind = Instant::now().saturating_duration_since(late);
        assert!(behind >= Duration::from_millis(200) && behind < Duration::from_millis(300), "{behind:?}");
        assert!(instant_of(0) <= Instant::now());
    }
}
