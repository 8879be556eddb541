//! A run over time, read back from the files the binary wrote: the `timeline` of
//! `report.json` (one row a second, counts adding up to the report's totals), one
//! `.hlog` per histogram whose intervals add up exactly to it, a self-contained
//! `report.html` with its plots, and the live progress on stderr (plain lines, as
//! stderr is not a terminal here) that `--quiet` silences.

use std::path::Path;

use firehose_sim::report::histo::{Summary, parse_hgrm, read_hlog};
use serde_json::Value;

use super::{n, only_subdir, sim};

const SHORT: &[&str] = &[
    "run",
    "--max-lag",
    "500ms",
    "--listeners",
    "12",
    "--tag-listeners",
    "6",
    "--rate",
    "20",
    "--duration",
    "3s",
    "--warmup",
    "500ms",
    "--seed-bookmarks",
    "10",
    "--connect-rate",
    "200",
];

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn a_run_writes_its_timeline_interval_logs_and_html_report() {
    let out = tempfile::tempdir().unwrap();
    let output = sim().args(SHORT).arg("--out").arg(out.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}\n{stderr}", output.status);
    // Progress: stderr is a pipe here, so plain status lines, the phases among them.
    assert!(stderr.contains("firehose-sim: setup"), "{stderr}");
    assert!(stderr.contains("firehose-sim: traffic") || stderr.contains("firehose-sim: connecting"), "{stderr}");

    let dir = only_subdir(out.path());
    let r = super::report_json(&dir);
    super::assert_passed(&r);
    check_timeline(&r);
    check_interval_logs(&r, &dir);
    check_html(&std::fs::read_to_string(dir.join("report.html")).unwrap(), &r);
}

/// One row a second from t0 to past the drain; every count adds up to the total.
fn check_timeline(r: &Value) {
    let t = &r["timeline"];
    assert_eq!(f(&t["interval_s"]), 1.0);
    let rows = t["rows"].as_array().unwrap();
    let traffic_and_drain = f(&r["window"]["traffic_s"]) + f(&r["window"]["drain_s"]);
    let last_end = f(&rows.last().unwrap()["end_s"]);
    assert!(last_end >= traffic_and_drain - 0.05, "sampling ends after the drain: {last_end} < {traffic_and_drain}");
    assert_eq!(rows.len() as f64, last_end.ceil(), "one row per started second: {t}");
    assert_eq!(f(&rows[0]["start_s"]), 0.0);
    for (k, w) in rows.windows(2).enumerate() {
        assert_eq!(f(&w[0]["end_s"]), f(&w[1]["start_s"]), "rows are contiguous");
        let length = f(&w[0]["end_s"]) - f(&w[0]["start_s"]);
        assert!((0.9..1.5).contains(&length), "row {k} lasted {length} s");
    }
    let sum = |key: &dyn Fn(&Value) -> &Value| rows.iter().map(|row| n(key(row))).sum::<u64>();
    let a = &r["actions"]["create_bookmark"];
    let kind = |row: &Value, field: &str| row["actions"]["create_bookmark"][field].clone();
    assert_eq!(sum(&|row| &row["actions"]["create_bookmark"]["sent"]), n(&a["sent"]));
    assert_eq!(sum(&|row| &row["actions"]["create_bookmark"]["ok"]), n(&a["ok"]));
    assert_eq!(sum(&|row| &row["actions"]["create_bookmark"]["errors"]), n(&a["error_count"]));
    assert_eq!(sum(&|row| &row["actions"]["create_bookmark"]["latency"]["count"]), n(&a["latency_corrected"]["count"]));
    for group in ["firehose", "tag"] {
        let g = &r["groups"][group];
        assert_eq!(sum(&|row| &row["groups"][group]["deliveries"]), n(&g["received"]), "{group}");
        assert_eq!(sum(&|row| &row["groups"][group]["latency"]["count"]), n(&g["latency"]["count"]), "{group}");
    }
    // Traffic at 20/s: a full second in the middle of the run carries about 20 answers.
    let middle = &rows[1];
    let completed = f(&kind(middle, "completed_per_s"));
    assert!((10.0..30.0).contains(&completed), "{middle}");
    let length = f(&middle["end_s"]) - f(&middle["start_s"]);
    let answered = n(&kind(middle, "ok")) + n(&kind(middle, "errors"));
    assert!((completed - answered as f64 / length).abs() < 1e-6, "{middle}");
    assert!(f(&middle["groups"]["firehose"]["deliveries_per_s"]) > 0.0, "{middle}");
    assert!(f(&middle["groups"]["firehose"]["latency"]["p99_ms"]) > 0.0, "{middle}");
    assert_eq!(n(&middle["open_connections"]), n(&r["listeners"]["joined"]));
    assert!(rows.iter().all(|row| n(&row["closed_connections"]) == 0), "{t}");
}

/// Every histogram has an `.hlog` starting at t0 whose intervals add up exactly to it.
fn check_interval_logs(r: &Value, dir: &Path) {
    let histograms = r["histograms"].as_object().unwrap();
    let logs = r["histogram_logs"].as_object().unwrap();
    assert_eq!(logs.keys().collect::<Vec<_>>(), histograms.keys().collect::<Vec<_>>());
    let rows = r["timeline"]["rows"].as_array().unwrap().len();
    for (name, file) in logs {
        let file = file.as_str().unwrap();
        assert_eq!(file, format!("{name}.hlog"));
        let log = read_hlog(&std::fs::read(dir.join(file)).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let t0 = f(&r["timeline"]["t0_unix_s"]);
        assert!((log.start_time_s.unwrap() - t0).abs() < 0.001, "{name}: StartTime is t0");
        let sum = log.sum();
        // Exactly the histogram: the same count as its `.hgrm` and the same summary as
        // the report computed from it.
        let hgrm = parse_hgrm(&std::fs::read_to_string(dir.join(histograms[name].as_str().unwrap())).unwrap()).unwrap();
        assert_eq!(sum.len(), hgrm.total_count, "{name}");
        if let Some(pointer) = r["histogram_paths"][name].as_str() {
            // (serde_json's float parsing may be off by one ulp: compare to 1e-12.)
            let reported: Summary = serde_json::from_value(r.pointer(pointer).unwrap().clone()).unwrap();
            let mine = Summary::of(&sum);
            assert_eq!(mine.count, reported.count, "{name}");
            let figures =
                |s: &Summary| [s.min_ms, s.mean_ms, s.stddev_ms, s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms, s.max_ms];
            for (a, b) in figures(&mine).into_iter().zip(figures(&reported)) {
                assert!((a - b).abs() <= 1e-12 * a.abs().max(1.0), "{name}: {mine:?} vs {reported:?}");
            }
        }
        // Histograms the timeline samples (each kind's corrected latency, each group's
        // delivery latency) have its rows as intervals; others one interval.
        let sampled = name.starts_with("delivery_") || (name.starts_with("action_") && name.ends_with("_corrected"));
        if sampled {
            assert!(
                log.intervals.len() == rows || log.intervals.len() == rows + 1,
                "{name}: {} intervals",
                log.intervals.len()
            );
            assert!(
                log.intervals.iter().take(rows - 1).all(|i| (0.9..1.5).contains(&i.length.as_secs_f64())),
                "{name}"
            );
        } else {
            assert_eq!(log.intervals.len(), 1, "{name}: not sampled, one interval spanning the run");
        }
    }
    assert!(logs.contains_key("delivery_firehose") && logs.len() >= 6);
    assert!(logs.keys().any(|n| n.starts_with("reach_")), "unsampled histograms have logs too");
}

/// Self-contained (nothing fetched, no script) with the plots drawn inline.
fn check_html(html: &str, r: &Value) {
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    assert!(!html.contains("<script"), "no script at all");
    for attr in ["src=", "href="] {
        for quote in ['"', '\''] {
            for scheme in ["http:", "https:", "//"] {
                let needle = format!("{attr}{quote}{scheme}");
                assert!(!html.contains(&needle), "{needle} fetches from the network");
            }
        }
    }
    assert!(!html.contains("<link") && !html.contains("@import") && !html.contains("url("), "no external styles");
    assert!(html.contains(&format!("firehose-sim run {}", r["run_id"].as_str().unwrap())));
    // Requests and deliveries each on a plot (and axis) of their own.
    for title in [
        "Action latency per second",
        "Actions completed per second",
        "Delivery latency per second",
        "Deliveries per second",
        "Connections",
        "Percentile spectrum",
    ] {
        assert!(html.contains(title), "{title}");
    }
    // Five plots over time plus one spectrum per histogram family (create_bookmark's
    // latencies, its lag, connect, each group's delivery and reach).
    let svgs = html.matches("<svg").count();
    assert!(svgs >= 5 + 7, "{svgs} plots");
    assert!(html.contains("99.999%"), "the spectrum's axis reaches five nines");
    // Legends sit beside the plots (captions), one entry per curve; no group without
    // listeners gets a curve.
    let legends: Vec<&str> =
        html.split("<figcaption class=\"legend\">").skip(1).map(|l| &l[..l.find("</figcaption>").unwrap()]).collect();
    assert!(legends.iter().any(|l| l.contains("firehose p99") && l.contains("tag p99")), "{legends:?}");
    assert!(legends.iter().any(|l| l.contains("create_bookmark p99")), "{legends:?}");
    for absent in ["room", "likes", "page"] {
        assert!(!legends.iter().any(|l| l.contains(&format!("</i>{absent}"))), "{absent}: {legends:?}");
    }
}

#[test]
fn quiet_silences_the_progress_lines() {
    let out = tempfile::tempdir().unwrap();
    let args = ["run", "--quiet", "--listeners", "2", "--rate", "10", "--duration", "1s", "--warmup", "0s"];
    let output = sim()
        .args(args)
        .args(["--max-lag", "500ms", "--seed-bookmarks", "0", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}\n{stderr}", output.status);
    assert!(!stderr.contains("firehose-sim: "), "{stderr}");
    assert!(only_subdir(out.path()).join("report.html").exists());
}
