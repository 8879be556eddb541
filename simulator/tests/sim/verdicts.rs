//! Verdicts that are true, against the test's own Phoenix target (`phoenix_target.rs`),
//! where what went wrong is decided by the test and counted by the server, not by the
//! simulator:
//!
//! - a duplicate never hides a loss: the target drops exactly D `feed:all` frames and
//!   sends U others twice, one drop and one duplicate being the same event at two
//!   different listeners; loss is counted per (listener, event) and is exactly D,
//!   duplicates exactly U, and the default `loss == 0` gate fails the run (exit 5);
//! - errors fail by default: the target answers every 4th create with HTTP 500; the
//!   default `errors == 0` gate fails the run (exit 5) and says so in the terminal,
//!   summary.md, junit.xml and report.html; a `--threshold` on `errors` (a count or
//!   a rate) replaces it, one on a single kind's errors does not.

use std::path::Path;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::phoenix_target::{At, Knobs, sim_against, start};
use super::{assert_footer, n, only_subdir, report_json, stderr, stdout};

/// Listeners on `feed:all` in these runs (`sim_against`'s).
const LISTENERS: u64 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_never_hides_a_loss() {
    let at = |post: u64, listener: usize| At { post, listener };
    // Post 3: dropped at listener 0, sent twice to listener 1 (a netted count would read
    // this event as complete). Listener 3 loses nothing.
    let drops = vec![at(3, 0), at(5, 1), at(7, 2), at(8, 1), at(10, 0), at(12, 1), at(15, 2)];
    let dups = vec![at(3, 1), at(4, 3), at(9, 3), at(11, 0), at(14, 2)];
    let (d, u) = (drops.len() as u64, dups.len() as u64);
    let target = start(Knobs { drops, dups, ..Knobs::default() }).await;
    let out = tempfile::tempdir().unwrap();
    let o = sim_against(&target.base, out.path(), &["--private-fraction", "0"]).await;
    let dir = only_subdir(out.path());
    let line = assert_footer(&stdout(&o), &dir);
    assert_eq!(o.status.code(), Some(5), "{line}\n{}", stderr(&o));
    assert_eq!(line, format!("FAIL (exit 5): default gate `loss == 0` failed (actual {d})"));
    // The target did what it was told, on 60 public posts.
    let feed = &target.feed;
    assert_eq!(feed.public_posts.load(Ordering::Relaxed), 60);
    assert_eq!((feed.dropped.load(Ordering::Relaxed), feed.duplicated.load(Ordering::Relaxed)), (d, u));

    let r = report_json(&dir);
    let g = &r["groups"]["firehose"];
    assert_eq!(n(&g["listeners"]), LISTENERS, "{g}");
    assert_eq!(n(&g["expected"]), 60 * LISTENERS, "{g}");
    assert_eq!(n(&g["lost"]), d, "loss per (listener, event): {g}");
    assert_eq!(n(&g["received"]), 60 * LISTENERS - d, "{g}");
    assert_eq!(n(&g["duplicates"]), u, "{g}");
    assert_eq!((n(&g["excess"]), n(&g["unowed"]), n(&g["private_leak"])), (u, 0, 0), "excess is the duplicates: {g}");
    assert_eq!(n(&g["listeners_with_loss"]), 3, "listeners 0 to 2 missed something: {g}");
    // Every frame that arrived was read: the owed ones once, the copies as duplicates.
    assert_eq!(n(&g["received"]) + n(&g["duplicates"]), feed.pushed.load(Ordering::Relaxed), "{g}");
    // Deliveries per second count owed deliveries once: the copies are not throughput.
    let measured = n(&g["latency"]["count"]);
    assert!(measured < n(&g["received"]), "warm-up deliveries are not timed: {g}");
    let over = g["delivery_span_s"].as_f64().unwrap().max(r["window"]["measured_s"].as_f64().unwrap());
    assert!((g["deliveries_per_s"].as_f64().unwrap() - measured as f64 / over).abs() < 1e-6, "{g}");

    let t = &r["totals"];
    assert_eq!((n(&t["lost"]), n(&t["duplicates"]), n(&t["excess"])), (d, u, u), "{t}");
    let gates: Vec<(&str, bool, bool)> = r["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["expr"].as_str().unwrap(), t["default"] == true, t["passed"] == true))
        .collect();
    assert_eq!(gates, [("errors == 0", true, true), ("loss == 0", true, false), ("private_leak == 0", true, true)]);
    assert_eq!(r["thresholds"][1]["actual"], json!(d));
    let v = &r["verdict"];
    assert_eq!((&v["valid"], &v["passed"], n(&v["exit_code"])), (&json!(true), &json!(false), 5), "{v}");
    assert!(v.get("partial").is_none(), "nothing was closed, everyone joined: {v}");
}

/// `run` against a target answering every 4th create with HTTP 500: 15 of 60 fail.
async fn failing_creates(extra: &[&str]) -> (std::process::Output, tempfile::TempDir, u64) {
    let target = start(Knobs { fail_every: Some(4), ..Knobs::default() }).await;
    let out = tempfile::tempdir().unwrap();
    let o = sim_against(&target.base, out.path(), extra).await;
    let failed = target.feed.failed.load(Ordering::Relaxed);
    (o, out, failed)
}

/// The failing creates as the report has them: every one counted once, by status; what
/// succeeded delivered exactly.
fn assert_fifteen_errors(r: &Value, failed: u64) {
    assert_eq!(failed, 15);
    let a = &r["actions"]["create_bookmark"];
    assert_eq!((n(&a["sent"]), n(&a["ok"]), n(&a["error_count"])), (60, 45, 15), "{a}");
    assert_eq!(a["errors"], json!({"http_500": 15}), "{a}");
    assert_eq!((n(&r["totals"]["errors"]), n(&r["totals"]["sent"])), (15, 60), "{}", r["totals"]);
    // A failed create owes nothing: the rest arrived, exactly.
    super::assert_group_exact(r, "firehose");
    let public = n(&a["detail"]["created_public"]);
    assert_eq!(n(&r["groups"]["firehose"]["expected"]), public * 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_fail_a_run_by_default_and_a_threshold_on_errors_replaces_the_default() {
    let (o, out, failed) = failing_creates(&[]).await;
    let dir = only_subdir(out.path());
    let terminal = stdout(&o);
    let line = assert_footer(&terminal, &dir);
    assert_eq!(o.status.code(), Some(5), "{terminal}\n{}", stderr(&o));
    assert_eq!(line, "FAIL (exit 5): default gate `errors == 0` failed (actual 15)");
    assert!(terminal.contains("  FAIL  errors == 0"), "{terminal}");
    let r = report_json(&dir);
    assert_fifteen_errors(&r, failed);
    assert_eq!(r["verdict"]["failed_gates"], json!(["errors == 0"]));
    assert_eq!(r["verdict"]["line"], line);
    assert_default_errors_gate_shown(&dir);

    // `errors.rate` is the same metric as a rate: it replaces the default. 15 of 60 is 25 %.
    let (o, out, failed) = failing_creates(&["--threshold", "errors.rate < 30%"]).await;
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let dir = only_subdir(out.path());
    assert_eq!(assert_footer(&stdout(&o), &dir), "PASS: valid, complete, 3 gates passed");
    let r = report_json(&dir);
    assert_fifteen_errors(&r, failed);
    let gates: Vec<(&str, bool, bool)> = r["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["expr"].as_str().unwrap(), t["default"] == true, t["passed"] == true))
        .collect();
    assert_eq!(
        gates,
        [("loss == 0", true, true), ("private_leak == 0", true, true), ("errors.rate < 30%", false, true)]
    );
    assert_eq!(r["thresholds"][2]["actual"], json!(0.25));

    // A bound on the same metric that the run does not meet fails it, as a threshold.
    let (o, out, _) = failing_creates(&["--threshold", "errors < 10"]).await;
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let r = report_json(&only_subdir(out.path()));
    assert_eq!(r["verdict"]["failed_gates"], json!(["errors < 10"]));
    let exprs: Vec<&str> = r["thresholds"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap()).collect();
    assert!(!exprs.contains(&"errors == 0"), "replaced: {exprs:?}");

    // A bound on a part of the errors (one kind's) is judged besides the default, which
    // stays: 15 < 20 passes and `errors == 0` still fails the run.
    let (o, out, _) = failing_creates(&["--threshold", "actions.create_bookmark.errors < 20"]).await;
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let r = report_json(&only_subdir(out.path()));
    assert_eq!(r["verdict"]["failed_gates"], json!(["errors == 0"]));
    let exprs: Vec<&str> = r["thresholds"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap()).collect();
    assert!(exprs.contains(&"errors == 0") && exprs.contains(&"actions.create_bookmark.errors < 20"), "{exprs:?}");
}

/// summary.md, junit.xml and report.html name the failed default gate.
fn assert_default_errors_gate_shown(dir: &Path) {
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(
        summary.lines().next().unwrap().contains("❌ FAIL (exit 5): default gate 'errors == 0' failed (actual 15)"),
        "{summary}"
    );
    assert!(summary.contains("| `errors == 0` (default) | 15 | ❌ fail |"), "{summary}");
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(junit.contains(r#"tests="4" failures="1""#), "{junit}");
    let case = junit
        .split("<testcase ")
        .find(|c| c.contains(r#"name="errors == 0""#))
        .unwrap_or_else(|| panic!("no testcase for errors == 0: {junit}"));
    assert!(case.starts_with(r#"classname="firehose-sim.default_gates""#), "{case}");
    assert!(case.contains(r#"<failure message="actual 15, expected errors == 0" type="threshold">"#), "{case}");
    assert_eq!(junit.matches("<failure").count(), 1, "{junit}");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("FAIL (exit 5): default gate `errors == 0` failed (actual 15)"), "the verdict line");
    assert!(
        html.contains("<tr><td>errors == 0</td><td>default</td><td>15</td><td>== 0</td><td>FAIL</td></tr>"),
        "the gates table names it"
    );
}
