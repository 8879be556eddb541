//! SIGINT/SIGTERM during `firehose-sim run`: the real binary, interrupted in its traffic
//! phase, stops scheduling, writes a partial report whose loss figures only count what
//! was sent, says so in the terminal, summary.md, junit.xml and report.html, and exits
//! 9. Also: a stdout closed early (`| head -1`) does not cost the report.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{assert_footer, n, only_subdir, report_json, sim};

/// A 30 s run (600 requests scheduled) that a signal cuts short.
const LONG: &[&str] = &[
    "run",
    "--max-lag",
    "500ms",
    "--listeners",
    "20",
    "--tag-listeners",
    "10",
    "--rate",
    "20",
    "--duration",
    "30s",
    "--warmup",
    "500ms",
    "--seed-bookmarks",
    "20",
    "--connect-rate",
    "200",
];

/// A run in progress: stderr lines arrive on `err` as they come; stdout is collected
/// whole once the run ends.
struct Running {
    child: Child,
    err: std::sync::mpsc::Receiver<String>,
    out: std::thread::JoinHandle<String>,
}

/// Starts `run` with `extra` flags.
fn start(out: &Path, extra: &[&str]) -> Running {
    let mut child = sim()
        .args(LONG)
        .args(extra)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, err) = std::sync::mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut stdout = child.stdout.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    Running { child, err, out }
}

/// Waits (at most `limit`) for a stderr line containing `needle`; every line seen.
fn wait_for(rx: &std::sync::mpsc::Receiver<String>, needle: &str, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let hit = line.contains(needle);
                seen.push(line);
                if hit {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    seen
}

fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill").args([name, &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

/// Waits for the exit (at most `limit`); its code.
fn exit_within(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running {limit:?} after the signal");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The report of an interrupted run: partial, fewer requests sent than scheduled, and
/// every figure counting only what was sent; the CI files show it as partial.
fn assert_interrupted_report(dir: &Path, signal: &str) -> Value {
    let r = report_json(dir);
    let v = &r["verdict"];
    let partial = v["partial"].as_str().unwrap_or_else(|| panic!("not partial: {v}"));
    assert!(partial.contains(&format!("interrupted by {signal} after")), "{partial}");
    assert_eq!((&v["passed"], n(&v["exit_code"])), (&serde_json::json!(false), 9), "{v}");
    assert!(v["line"].as_str().unwrap().starts_with("FAIL (exit 9): interrupted"), "{v}");
    let a = &r["actions"]["create_bookmark"];
    let (scheduled, sent) = (n(&a["scheduled"]), n(&a["sent"]));
    assert_eq!(scheduled, 600, "{a}");
    assert!(sent > 0 && sent < scheduled, "interrupted in the traffic phase: {a}");
    assert!(partial.contains(&format!("{} of {scheduled} scheduled requests were never sent", scheduled - sent)));
    // What was sent settled in the drain; what was never sent owes nothing.
    assert_eq!(n(&a["ok"]) + n(&a["error_count"]), sent, "{a}");
    let public = n(&a["detail"]["created_public"]);
    for group in ["firehose", "tag"] {
        super::assert_group_exact(&r, group);
    }
    assert_eq!(
        n(&r["groups"]["firehose"]["expected"]),
        public * 20,
        "every public event owed to each firehose listener"
    );
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    let heading = summary.lines().next().unwrap();
    assert!(heading.contains("❌ FAIL (exit 9): interrupted") && !heading.contains('✅'), "{heading}");
    assert!(summary.contains(&format!("**⚠️ Partial:** interrupted by {signal}")), "{summary}");
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(junit.contains("<failure message=\"partial run\" type=\"partial\">interrupted by"), "{junit}");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains(&format!("PARTIAL run: interrupted by {signal}")));
    r
}

fn interrupted_in_traffic(flag: &str, name: &str) {
    let out = tempfile::tempdir().unwrap();
    let Running { mut child, err, out: stdout } = start(out.path(), &[]);
    let seen = wait_for(&err, "firehose-sim: traffic", Duration::from_secs(60));
    assert!(seen.last().is_some_and(|l| l.contains("traffic")), "never reached traffic: {seen:#?}");
    std::thread::sleep(Duration::from_secs(1));
    let signalled = Instant::now();
    signal(&child, flag);
    let code = exit_within(&mut child, Duration::from_secs(15));
    let err: Vec<String> = err.try_iter().collect();
    assert_eq!(code, Some(9), "{err:#?}");
    assert!(signalled.elapsed() < Duration::from_secs(10), "stopped in {:?}", signalled.elapsed());
    let dir = only_subdir(out.path());
    // The terminal ends with the verdict and where the report is.
    let line = assert_footer(&stdout.join().unwrap(), &dir);
    assert!(line.starts_with(&format!("FAIL (exit 9): interrupted; partial: interrupted by {name}")), "{line}");
    assert_interrupted_report(&dir, name);
}

#[test]
fn sigint_in_the_traffic_phase_writes_a_partial_report_and_exits_9() {
    interrupted_in_traffic("-INT", "SIGINT");
}

#[test]
fn sigterm_in_the_traffic_phase_writes_a_partial_report_and_exits_9() {
    interrupted_in_traffic("-TERM", "SIGTERM");
}

/// With `--agents 2` the parent forwards the signal; the merged report is partial, the
/// agents' reports are kept under it, and no `.agents-*` work folder is left behind.
#[test]
fn sigint_with_agents_is_forwarded_and_merged_into_a_partial_report() {
    let out = tempfile::tempdir().unwrap();
    let Running { mut child, err, out: stdout } = start(out.path(), &["--agents", "2"]);
    // Agents show no progress: give them time to boot, join and start traffic.
    std::thread::sleep(Duration::from_secs(10));
    signal(&child, "-INT");
    let code = exit_within(&mut child, Duration::from_secs(20));
    let err: Vec<String> = err.try_iter().collect();
    assert_eq!(code, Some(9), "{err:#?}");
    let dir = only_subdir(out.path());
    assert!(!dir.file_name().unwrap().to_string_lossy().starts_with(".agents-"), "{dir:?}");
    assert!(assert_footer(&stdout.join().unwrap(), &dir).starts_with("FAIL (exit 9): interrupted"));
    let r = report_json(&dir);
    let v = &r["verdict"];
    let partial = v["partial"].as_str().unwrap_or_else(|| panic!("not partial: {v}"));
    assert!(partial.contains("agent-0: interrupted by SIGINT") && partial.contains("agent-1: interrupted by SIGINT"));
    assert_eq!(n(&v["exit_code"]), 9, "{v}");
    for i in 0..2 {
        let part = report_json(&dir.join(format!("agents/agent-{i}")));
        super::assert_group_exact(&part, "firehose");
        assert_eq!(n(&part["verdict"]["exit_code"]), 9, "agent {i}: {}", part["verdict"]);
    }
    let a = &r["actions"]["create_bookmark"];
    assert!(n(&a["sent"]) < n(&a["scheduled"]), "{a}");
    super::assert_group_exact(&r, "firehose");
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(summary.contains("**⚠️ Partial:** agent-0: interrupted by SIGINT"), "{summary}");
}

/// `firehose-sim run … | head -1`: a stdout closed after the first line neither panics
/// nor loses the report; the exit code stays the run's.
#[test]
fn a_closed_stdout_still_writes_the_report_and_keeps_the_exit_code() {
    let out = tempfile::tempdir().unwrap();
    let mut child = sim()
        .args(["run", "--listeners", "4", "--tag-listeners", "2", "--rate", "10", "--duration", "1s"])
        .args(["--warmup", "0s", "--seed-bookmarks", "5", "--max-lag", "500ms", "--quiet", "--out"])
        .arg(out.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    drop(stdout);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    assert!(only_subdir(out.path()).join("report.json").is_file());
}
