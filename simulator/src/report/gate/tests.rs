//! Tests of gates: parsing, units, reading figures from a report, default gates and
//! what replaces them.

use serde_json::json;

use super::*;

fn summary(p50: f64, p99: f64) -> serde_json::Value {
    json!({"count": 100, "min_ms": p50 / 2.0, "mean_ms": p50, "stddev_ms": 1.0, "p50_ms": p50,
           "p90_ms": p99 * 0.8, "p99_ms": p99, "p999_ms": p99, "max_ms": p99 * 1.5})
}

fn group(lost: u64, p50: f64, p99: f64) -> serde_json::Value {
    json!({"listeners": 20, "topics": 1, "expected": 1000, "received": 1000 - lost, "lost": lost,
           "listeners_with_loss": lost.min(1), "excess": 0, "duplicates": 0, "unowed": 0, "private_leak": 0,
           "reordered": 0, "gaps": 0, "foreign": 0, "decode_errors": 0, "delivery_span_s": 3.0,
           "deliveries_per_s": 333.0, "latency": summary(p50, p99)})
}

/// A plausible report: 2 errors in 200 sent, 3 lost firehose deliveries, firehose
/// p99 80 ms, tag p50 12 ms, bookmark creation p99 40 ms.
pub(crate) fn sample() -> ReportModel {
    serde_json::from_value(json!({
        "schema": crate::report::SCHEMA, "simulator_version": "0", "run_id": "abc123",
        "started_at": "", "finished_at": "", "plan": {"bookmarks": {"rate_per_s": 20.0}},
        "target": {"kind": "embedded", "url": "http://127.0.0.1:1"},
        "verdict": {"passed": false, "valid": true, "invalid_reasons": [], "failed_gates": [], "exit_code": 0,
                    "line": ""},
        "window": {"duration_s": 10.0, "warmup_s": 2.0, "measured_s": 8.0, "traffic_s": 10.0, "drain_s": 0.1,
                   "drain_timed_out": false},
        "actions": {"create_bookmark": {
            "rate_per_s": 20.0, "scheduled": 200, "sent": 200, "ok": 198, "skipped": 0, "late": 0,
            "max_lag_ms": 0.7, "errors": {"http_500": 2}, "error_count": 2, "throughput_per_s": 20.0,
            "latency_corrected": summary(10.0, 40.0), "latency_uncorrected": summary(9.0, 30.0),
            "lag": summary(0.1, 0.5), "detail": {"created_public": 190, "created_private": 8}}},
        "groups": {"firehose": group(3, 20.0, 80.0), "tag": group(0, 12.0, 30.0)},
        "listeners": {"requested": 30, "joined": 30, "failed_to_join": 0, "ramped": 0, "failures": {},
                      "closed_during_run": 0, "connect_rate_per_s": 500.0, "connect": summary(2.0, 5.0)},
        "totals": {"sent": 200, "ok": 198, "errors": 2, "late": 0, "expected": 2000, "received": 1997, "lost": 3,
                   "duplicates": 0, "excess": 0, "private_leak": 0, "reordered": 0, "decode_errors": 0,
                   "deliveries_per_s": 666.0},
        "scheduler": {"max_lag_allowed_ms": 50.0, "max_lag_ms": 0.7, "in_flight_cap": 256, "in_flight_cap_hits": 0,
                      "max_in_flight": 3},
        "simulator": {"rss_before_bytes": null, "rss_after_bytes": null, "rss_per_listener_bytes": null,
                      "includes_embedded_server": true, "cpu_s_during_traffic": null, "cpu_cores_during_traffic": null},
        "server": null, "histograms": {}
    }))
    .expect("sample report matches the model")
}

fn judge(expr: &str) -> bool {
    Threshold::parse(expr).unwrap_or_else(|e| panic!("{e}")).evaluate(&sample()).passed
}

#[test]
fn every_operator_compares() {
    assert!(judge("delivery.firehose.p99 < 100ms"));
    assert!(!judge("delivery.firehose.p99 < 80ms"));
    assert!(judge("delivery.firehose.p99 <= 80ms"));
    assert!(!judge("delivery.firehose.p99 <= 79.9ms"));
    assert!(judge("delivery.firehose.p99 > 79ms"));
    assert!(!judge("delivery.firehose.p99 > 80ms"));
    assert!(judge("delivery.firehose.p99 >= 80ms"));
    assert!(judge("loss == 3"));
    assert!(!judge("loss == 0"));
    assert!(judge("loss != 0"));
    assert!(judge("loss.tag == 0"));
    assert!(judge("valid == true"));
    assert!(!judge("valid != true"));
    assert!(judge("valid != false"));
}

#[test]
fn every_unit_converts_to_the_metric_unit() {
    // Latencies are in ms: s and us convert.
    assert!(judge("actions.create_bookmark.p99 <= 40ms"));
    assert!(judge("actions.create_bookmark.p99 < 0.05s"));
    assert!(!judge("actions.create_bookmark.p99 < 0.04s"));
    assert!(judge("actions.create_bookmark.p99 < 40001us"));
    assert!(!judge("actions.create_bookmark.p99 < 40000us"));
    assert!(judge("delivery.tag.p50 < 20ms"));
    // Fractions: a percentage or a plain ratio. 2 errors / 200 sent = 1%.
    assert!(judge("errors.rate <= 1%"));
    assert!(!judge("errors.rate < 1%"));
    assert!(judge("errors.rate < 0.011"));
    // 3 lost of 2,000 owed = 0.15%.
    assert!(judge("loss.rate < 0.2%"));
    assert!(!judge("loss.rate < 0.1%"));
    // Counts and rates are plain numbers.
    assert!(judge("errors == 2"));
    assert!(judge("actions.create_bookmark.throughput >= 19.5"));
    assert!(judge("delivery.firehose.count == 100"));
    let t = Threshold::parse("  delivery.firehose.p99<100ms ").unwrap();
    assert_eq!((t.metric.name.as_str(), t.op, t.bound), ("delivery.firehose.p99", Op::Lt, Bound::Number(100.0)));
}

#[test]
fn outcomes_carry_actual_and_expected() {
    let o = Threshold::parse("delivery.firehose.p99 < 50ms").unwrap().evaluate(&sample());
    assert_eq!(o.actual, json!(80.0));
    assert_eq!((o.unit.as_str(), o.expected.as_str(), o.passed), ("ms", "< 50 ms", false));
    let v = Threshold::parse("valid == true").unwrap().evaluate(&sample());
    assert_eq!((v.actual.clone(), v.passed), (json!(true), true));
    let json = serde_json::to_value(&o).unwrap();
    assert_eq!(json["expr"], "delivery.firehose.p99 < 50ms");
}

#[test]
fn unknown_metrics_are_errors_offering_the_nearest_names() {
    let err = Threshold::parse("delivery.firehose.p98 < 100ms").unwrap_err();
    assert!(matches!(&err, ThresholdError::UnknownMetric { name, .. } if name == "delivery.firehose.p98"), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("unknown metric `delivery.firehose.p98`; did you mean "), "{text}");
    assert!(
        text.contains("`delivery.firehose.p99`") && text.contains("`firehose-sim metrics` lists them all"),
        "{text}"
    );
    assert!(!text.contains("errors.rate") && !text.contains("`valid`"), "a few near names, not all: {text}");
    assert!(matches!(Threshold::parse("lag < 5ms"), Err(ThresholdError::UnknownMetric { .. })));
}

#[test]
fn malformed_expressions_and_wrong_units_are_refused() {
    for bad in ["delivery.firehose.p99", "< 100ms", "loss ==", "loss = 0", "loss < 1 < 2"] {
        assert!(matches!(Threshold::parse(bad), Err(ThresholdError::Syntax { .. })), "{bad}");
    }
    let value_error = |expr: &str| match Threshold::parse(expr) {
        Err(ThresholdError::Value { reason, .. }) => reason,
        other => panic!("{expr}: {other:?}"),
    };
    assert!(value_error("delivery.firehose.p99 < 100").contains("give a unit"));
    assert!(value_error("delivery.firehose.p99 < 10%").contains("give a unit"));
    assert!(value_error("loss < 5ms").contains("drop the unit"));
    assert!(value_error("errors.rate < 5ms").contains("percentage"));
    assert!(value_error("valid < true").contains("== or !="));
    assert!(value_error("valid == yes").contains("true or false"));
    assert!(value_error("loss < many").contains("needs a number"));
    assert!(value_error("loss < NaN").contains("finite"));
    assert!(value_error("loss == -1").contains("never negative"));
    assert!(value_error("delivery.firehose.p99 > -5ms").contains("never negative"));
    assert!(Threshold::parse("loss <= 0").is_ok());
}

#[test]
fn the_catalogue_has_unique_names_for_every_group_and_kind() {
    let names: Vec<String> = names::catalogue().into_iter().map(|m| m.name).collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len());
    for g in names::Group::ALL {
        for s in ["p50", "p99", "p999", "max", "throughput"] {
            assert!(names.contains(&format!("delivery.{}.{s}", g.name())), "delivery.{}.{s}", g.name());
        }
    }
    for name in [
        "delivery.page.p99",
        "loss.page",
        "actions.page_readers.p99",
        "actions.page_readers.uncorrected.p50",
        "actions.search.errors.rate",
        "actions.presence_churn.late",
        "reach.room.100.p99",
        "reach.likes.50.p50",
        "reach.user.99.max",
        "reach.page.100.max",
    ] {
        assert!(names.iter().any(|n| n == name), "{name}");
    }
    // Every metric reads from a report that has every group and action kind.
    let mut full = sample();
    for g in names::Group::ALL {
        full.groups.insert(g.name().into(), full.groups["tag"].clone());
    }
    for k in names::Kind::ALL {
        full.actions.insert(k.name().into(), Default::default());
    }
    for g in full.groups.values_mut() {
        g.reach.get_or_insert_with(Default::default);
    }
    for m in names::catalogue() {
        assert!(read(&full, m.figure).is_some(), "{}", m.name);
    }
    // Groups without listeners and kinds not driven have no figures (a gate on them fails).
    let bare = sample();
    assert!(read(&bare, names::metric("loss.room").unwrap().figure).is_none());
    assert!(read(&bare, names::metric("actions.like.p99").unwrap().figure).is_none());
}

#[test]
fn default_gates_apply_unless_a_threshold_on_their_metric_replaces_them() {
    let sample = sample();
    let all = evaluate_all(&[], &sample);
    let exprs: Vec<(&str, bool, bool)> = all.iter().map(|o| (o.expr.as_str(), o.default, o.passed)).collect();
    // 2 errors and 3 lost deliveries: both defaults fail; no private leak.
    assert_eq!(exprs, [("errors == 0", true, false), ("loss == 0", true, false), ("private_leak == 0", true, true)]);
    let thresholds = [Threshold::parse("errors.rate < 2%").unwrap(), Threshold::parse("loss <= 3").unwrap()];
    let all = evaluate_all(&thresholds, &sample);
    let exprs: Vec<(&str, bool, bool)> = all.iter().map(|o| (o.expr.as_str(), o.default, o.passed)).collect();
    assert_eq!(
        exprs,
        [("private_leak == 0", true, true), ("errors.rate < 2%", false, true), ("loss <= 3", false, true)]
    );
    // A bound on a part (one kind, one group) is judged besides the default, which stays.
    let parts = [
        Threshold::parse("actions.create_bookmark.errors < 3").unwrap(),
        Threshold::parse("loss.firehose <= 3").unwrap(),
    ];
    let all = evaluate_all(&parts, &sample);
    let exprs: Vec<(&str, bool, bool)> = all.iter().map(|o| (o.expr.as_str(), o.default, o.passed)).collect();
    assert_eq!(
        exprs,
        [
            ("errors == 0", true, false),
            ("loss == 0", true, false),
            ("private_leak == 0", true, true),
            ("actions.create_bookmark.errors < 3", false, true),
            ("loss.firehose <= 3", false, true)
        ]
    );
    // A gate outside the families leaves every default in force.
    let latency = [Threshold::parse("delivery.firehose.p99 < 1s").unwrap()];
    assert_eq!(evaluate_all(&latency, &sample).iter().filter(|o| o.default).count(), 3);
}
