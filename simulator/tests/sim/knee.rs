//! `firehose-sim knee` through the real binary against the embedded app: a throughput
//! SLO that a rate level must break, levels visited in order, files written; and the
//! usage errors that stop a search before any run.

use std::path::Path;

use serde_json::{Value, json};

use super::{only_subdir, sim};

/// Runs of one second, five listeners, no seed bookmarks: a level takes about a second.
const QUICK: &[&str] =
    &["--listeners", "5", "--duration", "1s", "--warmup", "0s", "--seed-bookmarks", "0", "--max-lag", "2s"];

fn knee_json(out: &Path) -> (std::path::PathBuf, Value) {
    let dir = only_subdir(out);
    assert!(dir.file_name().unwrap().to_string_lossy().ends_with("-knee"), "{}", dir.display());
    let knee: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("knee.json")).unwrap()).unwrap();
    (dir, knee)
}

#[test]
fn a_rate_knee_stops_at_the_first_level_that_breaks_its_slo() {
    // Throughput follows the offered rate, so `throughput < 30` holds at 10/s and 20/s
    // and breaks at 40/s; 80/s is never run.
    let out = tempfile::tempdir().unwrap();
    let output = sim()
        .args(["knee", "--vary", "rate", "--start", "10", "--factor", "2", "--max", "80"])
        .args(["--slo", "actions.create_bookmark.throughput < 30", "--slo", "loss == 0"])
        .args(QUICK)
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("knee: 20/s held, 40/s broke"), "{stdout}");

    let (dir, k) = knee_json(out.path());
    assert_eq!(k["schema"], "firehose-sim/knee/v1");
    assert_eq!(k["vary"], "rate");
    assert_eq!(k["levels_planned"], serde_json::json!([10.0, 20.0, 40.0, 80.0]));
    assert_eq!(k["highest_held"], 20.0);
    assert_eq!(k["first_broken"], 40.0);
    assert_eq!(k["reached_max"], false);
    let because = k["broken_because"].as_array().unwrap();
    assert_eq!(because.len(), 1, "{because:?}");
    assert!(because[0].as_str().unwrap().starts_with("actions.create_bookmark.throughput = "), "{because:?}");

    let runs = k["runs"].as_array().unwrap();
    let levels: Vec<f64> = runs.iter().map(|r| r["level"].as_f64().unwrap()).collect();
    assert_eq!(levels, [10.0, 20.0, 40.0], "levels rise, and stop at the first break");
    for (run, held) in runs.iter().zip([true, true, false]) {
        assert_eq!(run["held"], held, "{run}");
        assert_eq!(run["valid"], true, "{run}");
        assert_eq!(run["loss"], 0, "{run}");
        // Only the SLOs, in the order given (the default gates are not SLOs).
        let slos = run["slos"].as_array().unwrap();
        let exprs: Vec<&str> = slos.iter().map(|s| s["expr"].as_str().unwrap()).collect();
        assert_eq!(exprs, ["actions.create_bookmark.throughput < 30", "loss == 0"]);
        let throughput = slos[0]["actual"].as_f64().unwrap();
        let level = run["level"].as_f64().unwrap();
        assert!((throughput - level).abs() < level * 0.5, "throughput {throughput} at {level}/s");
        // Each level's own report, with the SLOs judged in it.
        let folder = dir.join(run["report"].as_str().unwrap());
        let report = super::report_json(&folder);
        assert_eq!(report["plan"]["bookmarks"]["rate_per_s"].as_f64(), Some(level));
        let gate =
            |expr: &str| report["thresholds"].as_array().unwrap().iter().find(|t| t["expr"] == expr).cloned().unwrap();
        assert_eq!(gate("actions.create_bookmark.throughput < 30")["passed"], held);
        // The default gates judge every level too (`loss == 0` is an SLO here, replacing its default).
        assert_eq!((&gate("errors == 0")["default"], &gate("loss == 0")["default"]), (&json!(true), &json!(false)));
        assert_eq!(report["verdict"]["passed"], held);
    }

    let md = std::fs::read_to_string(dir.join("knee.md")).unwrap();
    assert!(
        md.contains(
            "| rate (/s) | `actions.create_bookmark.throughput < 30` | `loss == 0` | run valid | loss | verdict | report |"
        ),
        "{md}"
    );
    assert_eq!(
        md.lines().filter(|l| l.starts_with("| 10 ") || l.starts_with("| 20 ") || l.starts_with("| 40 ")).count(),
        3
    );
    assert!(md.contains("**broke**"), "{md}");
    // Each SLO's column holds that SLO's figure: the loss column reads 0 on every row.
    for row in md.lines().filter(|l| l.starts_with("| 10 ") || l.starts_with("| 20 ") || l.starts_with("| 40 ")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[3], "0", "the `loss == 0` column: {row}");
        let throughput: f64 =
            cells[2].trim_end_matches("/s").parse().unwrap_or_else(|_| panic!("the throughput column: {row}"));
        assert!(throughput > 5.0, "{row}");
    }
}

#[test]
fn knee_usage_errors_exit_2_before_any_run() {
    let out = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--vary", "rate", "--start", "10", "--max", "40", "--slo", "delivery.nowhere.p99 < 5ms"], "unknown metric"),
        (&["--vary", "rate", "--start", "10", "--max", "40", "--slo", "delivery.firehose.p99 < 5"], "give a unit"),
        (&["--vary", "rate", "--start", "40", "--max", "10", "--slo", "valid == true"], "--max (10) must be at least"),
        (&["--vary", "rate", "--start", "10", "--max", "40", "--factor", "1", "--slo", "valid == true"], "--factor"),
        (&["--vary", "rate", "--start", "10", "--max", "40", "--step=-1", "--slo", "valid == true"], "--step"),
        (
            &["--vary", "rate", "--start", "10", "--max", "40", "--slo", "valid == true", "--threshold", "loss == 0"],
            "--slo",
        ),
        (&["--vary", "listeners", "--start", "0.2", "--max", "4", "--slo", "valid == true"], "at least 1 listener"),
        (
            &["--vary", "rate", "--start", "10", "--max", "40", "--slo", "valid == true", "--warmup", "20s"],
            "the base plan: --warmup",
        ),
        // Every level is planned before the first runs: the last one here cannot be.
        (
            &["--vary", "rate", "--start", "1000", "--factor", "1000", "--max", "10000000", "--slo", "valid == true"],
            "level 10000000/s: --rate 10000000 for 10s makes 100000000 requests",
        ),
    ];
    for (args, message) in cases {
        let output = sim().arg("knee").args(*args).arg("--out").arg(out.path()).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: expected {message:?} in {stderr}");
    }
    // --slo is required; clap says so with its own usage code.
    let output = sim().args(["knee", "--vary", "rate", "--start", "1", "--max", "2"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(std::fs::read_dir(out.path()).unwrap().next().is_none(), "nothing is written before the runs");
}

#[test]
fn an_unreachable_target_at_the_first_level_exits_4() {
    let out = tempfile::tempdir().unwrap();
    let output = sim()
        .args(["knee", "--vary", "rate", "--start", "5", "--max", "10", "--slo", "valid == true"])
        .args(["--target", "http://127.0.0.1:9", "--duration", "1s", "--warmup", "0s"])
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unreachable"));
}
