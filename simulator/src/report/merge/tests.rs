//! Merging real report folders written here: histograms from interval logs written with
//! hdrhistogram's interval log writer, figures by the rules, the result judged.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::*;
use crate::report::histo::{Interval, Summary, new_histogram, read_hlog, write_hlog};

fn summary() -> Value {
    json!({"count": 0, "min_ms": 0.0, "mean_ms": 0.0, "stddev_ms": 0.0, "p50_ms": 0.0, "p90_ms": 0.0,
           "p99_ms": 0.0, "p999_ms": 0.0, "max_ms": 0.0})
}

fn group(received: u64) -> Value {
    json!({"listeners": 10, "topics": 1, "expected": received, "received": received, "lost": 0,
           "listeners_with_loss": 0, "excess": 0, "duplicates": 0, "unowed": 0, "private_leak": 0, "reordered": 0,
           "gaps": 0, "foreign": 0, "decode_errors": 0, "delivery_span_s": 8.0,
           "deliveries_per_s": received as f64 / 8.0, "latency": summary()})
}

/// A report as one agent writes it: `sent` requests (one answered 503, `late` of them
/// sent late), `joined` listeners, RSS growth of 5,000 bytes per listener, firehose
/// deliveries `received`.
fn report(run_id: &str, sent: u64, joined: u64, received: u64, late: u64) -> Value {
    let invalid: Vec<String> =
        (late > 0).then(|| format!("create_bookmark: {late} of {sent} late")).into_iter().collect();
    json!({
        "schema": crate::report::SCHEMA, "simulator_version": "0", "run_id": run_id,
        "started_at": format!("2026-01-01T00:00:0{}+00:00", sent % 10), "finished_at": "2026-01-01T00:00:20+00:00",
        "plan": {"bookmarks": {"listeners": joined, "rate_per_s": 10.0}},
        "target": {"kind": "external", "url": "http://127.0.0.1:4100"},
        // Two nodes, each agent's listeners spread over both; each node's memory as
        // read after every agent's sockets joined (4,000 bytes per socket).
        "targets": {
            "0": {"kind": "external", "url": "http://127.0.0.1:4100", "sockets_connected": joined - joined / 2,
                  "failovers": 1, "server": {"rss_before_bytes": 1_000, "rss_after_bytes": 133_000,
                  "rss_per_socket_bytes": null, "same_process_as_simulator": false, "sockets": joined - joined / 2}},
            "1": {"kind": "external", "url": "http://127.0.0.1:4101", "sockets_connected": joined / 2,
                  "failovers": 0, "server": {"rss_before_bytes": 1_000, "rss_after_bytes": 129_000,
                  "rss_per_socket_bytes": null, "same_process_as_simulator": false, "sockets": joined / 2}}
        },
        "verdict": {"passed": false, "valid": late == 0, "invalid_reasons": invalid, "failed_gates": ["errors == 0"],
                    "exit_code": if late == 0 { 5 } else { 3 }, "line": ""},
        "window": {"duration_s": 10.0, "warmup_s": 2.0, "measured_s": 8.0, "traffic_s": 10.0 + sent as f64 / 1000.0,
                   "drain_s": 0.1, "drain_timed_out": false},
        "actions": {"create_bookmark": {
            "rate_per_s": 10.0, "scheduled": sent, "sent": sent, "ok": sent - 1, "skipped": 0, "late": late,
            "max_lag_ms": sent as f64 / 100.0, "errors": {"http_503": 1}, "error_count": 1,
            "throughput_per_s": sent as f64 / 10.0, "latency_corrected": summary(), "latency_uncorrected": summary(),
            "lag": summary(), "detail": {"created_public": sent - 1}}},
        "groups": {"firehose": group(received), "tag": group(0)},
        "listeners": {"requested": joined, "joined": joined, "failed_to_join": 0, "ramped": 0, "failures": {},
                      "closed_during_run": 0, "connect_rate_per_s": 250.0, "connect": summary()},
        "totals": {"sent": sent, "ok": sent - 1, "errors": 1, "late": late, "expected": received, "received": received,
                   "lost": 0, "duplicates": 0, "excess": 0, "private_leak": 0, "reordered": 0, "decode_errors": 0,
                   "deliveries_per_s": received as f64 / 8.0},
        "scheduler": {"max_lag_allowed_ms": 50.0, "max_lag_ms": sent as f64 / 100.0, "in_flight_cap": 128,
                      "in_flight_cap_hits": 0, "max_in_flight": 3},
        "simulator": {"rss_before_bytes": 1_000_000, "rss_after_bytes": 1_000_000 + 5_000 * joined,
                      "rss_per_listener_bytes": 5_000.0, "includes_embedded_server": false,
                      "cpu_s_during_traffic": 1.5, "cpu_cores_during_traffic": 0.15},
        "server": null,
        "histograms": {"delivery_firehose": "delivery_firehose.hgrm"},
        "histogram_paths": {"delivery_firehose": "/groups/firehose/latency"},
        "histogram_logs": {"delivery_firehose": "delivery_firehose.hlog"},
    })
}

fn filled(values: &[u64]) -> Histogram<u64> {
    let mut h = new_histogram();
    for v in values {
        h.record(*v).unwrap();
    }
    h
}

/// A report folder: report.json and the interval log of `values`, one interval per
/// second (`per_interval` values each) from `t0`.
fn folder(dir: &Path, model: &Value, t0: SystemTime, values: &[u64], per_interval: usize) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("report.json"), serde_json::to_string_pretty(model).unwrap()).unwrap();
    let intervals: Vec<Interval> = values
        .chunks(per_interval)
        .enumerate()
        .map(|(k, chunk)| Interval {
            start: Duration::from_secs(k as u64),
            length: Duration::from_secs(1),
            histogram: filled(chunk),
        })
        .collect();
    let mut file = fs::File::create(dir.join("delivery_firehose.hlog")).unwrap();
    write_hlog("delivery_firehose", t0, &intervals, &mut file).unwrap();
}

/// Deterministic, spread latencies in µs.
fn values(n: u64, seed: u64) -> Vec<u64> {
    (0..n).map(|i| 200 + (i * 7919 + seed * 104_729) % 250_000).collect()
}

#[test]
fn two_folders_merge_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let (a, b) = (values(3_000, 1), values(1_700, 2));
    folder(&tmp.path().join("a"), &report("aaaaaa", 100, 40, 3_000, 0), t0, &a, 1_000);
    // The second agent's clock started half a second later.
    folder(&tmp.path().join("b"), &report("bbbbbb", 60, 25, 1_700, 0), t0 + Duration::from_millis(500), &b, 600);
    let inputs: Vec<Input> = ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, d)| Input { label: format!("agent-{i}"), dir: tmp.path().join(d) })
        .collect();
    let mut merged = merge(&inputs, None).unwrap();
    merged.report.judge(&[], false);
    // The same folder twice is the same run: refused, not counted twice.
    let twice = [inputs[0].clone(), Input { label: "again".into(), dir: tmp.path().join("a") }];
    assert!(matches!(merge(&twice, None), Err(MergeError::SameRun { .. })));
    let all: Vec<u64> = a.iter().chain(&b).copied().collect();
    let direct = filled(&all);
    let (_, h) = &merged.report.histograms[0];
    assert_eq!((h.len(), h.min(), h.max()), (direct.len(), direct.min(), direct.max()));
    assert_eq!(h.value_at_quantile(0.99), direct.value_at_quantile(0.99));
    let m = &merged.report.model;
    assert_eq!(m.groups["firehose"].latency, Summary::of(&direct), "the summary is recomputed from the merge");
    assert_eq!(m.groups["firehose"].latency.count, 4_700);
    let a = &m.actions["create_bookmark"];
    assert_eq!((a.sent, m.listeners.joined, m.groups["firehose"].received), (160, 65, 4_700));
    assert_eq!((a.errors["http_503"], m.totals.errors, m.totals.sent), (2, 2, 160));
    assert_eq!((a.max_lag_ms, m.scheduler.max_lag_ms), (1.0, 1.0));
    assert_eq!(a.throughput_per_s, 16.0);
    assert_eq!(m.window.traffic_s, 10.1);
    assert_eq!(m.started_at, "2026-01-01T00:00:00+00:00");
    assert_eq!(m.simulator.rss_per_listener_bytes, Some(5_000.0), "(Σ after − Σ before) / Σ listeners");
    // Per target: the agents' sockets add, the node's memory is recomputed over them.
    let (t0, t1) = (&m.targets[&0], &m.targets[&1]);
    assert_eq!((t0.url.as_str(), t0.sockets_connected, t0.failovers), ("http://127.0.0.1:4100", 33, 2));
    assert_eq!((t1.url.as_str(), t1.sockets_connected), ("http://127.0.0.1:4101", 32));
    let per_socket = |t: &crate::report::model::TargetReport| t.server.as_ref().and_then(|s| s.rss_per_socket_bytes);
    assert_eq!((per_socket(t0), per_socket(t1)), (Some(4_000.0), Some(4_000.0)));
    // Judged again on the merged figures: valid, and the default errors gate fails.
    assert!(m.verdict.valid);
    assert_eq!(m.verdict.failed_gates, ["errors == 0"]);
    assert_eq!(m.agents.len(), 2);
    assert_eq!((m.agents[1].run_id.as_str(), m.agents[1].listeners), ("bbbbbb", 25));
    assert_eq!(m.plan["agent_shares"].as_array().unwrap().len(), 2);

    // Written: the merged interval log holds every input interval, by absolute time.
    let out = tmp.path().join("out");
    let dir = write(&merged, &out, false).unwrap();
    let log = read_hlog(&fs::read(dir.join("delivery_firehose.hlog")).unwrap()).unwrap();
    assert_eq!(log.intervals.len(), 3 + 3);
    let starts: Vec<u64> = log.intervals.iter().map(|i| i.start.as_millis() as u64).collect();
    assert_eq!(starts, [0, 500, 1_000, 1_500, 2_000, 2_500]);
    assert!(crate::report::histo::same_counts(&log.sum(), &direct));
    let hgrm =
        crate::report::histo::parse_hgrm(&fs::read_to_string(dir.join("delivery_firehose.hgrm")).unwrap()).unwrap();
    assert_eq!(hgrm.total_count, 4_700);
    for f in ["report.json", "summary.md", "junit.xml", "agents/agent-0/report.json", "agents/agent-1/report.json"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let written: Value = serde_json::from_str(&fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(written["agents"][0]["report_dir"], "agents/agent-0");
}

#[test]
fn an_invalid_agent_makes_the_merge_invalid_and_says_which() {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    folder(&tmp.path().join("a"), &report("aaaaaa", 100, 40, 10, 0), t0, &values(10, 1), 10);
    folder(&tmp.path().join("b"), &report("bbbbbb", 100, 40, 10, 3), t0, &values(10, 2), 10);
    let inputs: Vec<Input> = ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, d)| Input { label: format!("agent-{i}"), dir: tmp.path().join(d) })
        .collect();
    let mut merged = merge(&inputs, None).unwrap();
    let agents: Vec<(&str, bool)> = merged.report.model.agents.iter().map(|a| (a.label.as_str(), a.valid)).collect();
    assert_eq!(agents, [("agent-0", true), ("agent-1", false)]);
    let judged = {
        merged.report.judge(&[], false);
        merged.report.model.verdict.clone()
    };
    assert!(!judged.valid);
    assert!(judged.invalid_reasons[0].contains("create_bookmark: 3 of 200"), "{:?}", judged.invalid_reasons);
    assert_eq!(finish(merged, &[], &tmp.path().join("out"), false, false), exit::INVALID_RUN);
}

#[test]
fn a_folder_without_interval_logs_cannot_be_merged_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    folder(&tmp.path().join("a"), &report("aaaaaa", 100, 40, 10, 0), t0, &values(10, 1), 10);
    folder(&tmp.path().join("b"), &report("bbbbbb", 100, 40, 10, 0), t0, &values(10, 2), 10);
    fs::remove_file(tmp.path().join("b/delivery_firehose.hlog")).unwrap();
    let inputs: Vec<Input> = ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, d)| Input { label: format!("agent-{i}"), dir: tmp.path().join(d) })
        .collect();
    let err = merge(&inputs, None).err().expect("no .hlog, no merge");
    assert!(matches!(err, MergeError::NoIntervalLog { .. }), "{err}");
    assert!(err.to_string().contains("cannot be merged exactly"), "{err}");
}

#[test]
fn a_report_of_another_schema_is_refused_with_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    folder(&tmp.path().join("a"), &report("aaaaaa", 100, 40, 10, 0), t0, &values(10, 1), 10);
    let mut old = report("bbbbbb", 100, 40, 10, 0);
    old["schema"] = json!("firehose-sim/report/v1");
    folder(&tmp.path().join("b"), &old, t0, &values(10, 2), 10);
    let inputs: Vec<Input> = ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, d)| Input { label: format!("agent-{i}"), dir: tmp.path().join(d) })
        .collect();
    let err = merge(&inputs, None).err().expect("a v1 report is not merged");
    assert!(matches!(err, MergeError::Schema { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("firehose-sim/report/v1") && text.contains(crate::report::SCHEMA), "{text}");
    assert!(text.contains("re-run"), "{text}");
}
