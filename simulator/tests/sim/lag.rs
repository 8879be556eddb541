//! The lag rule, the same for every scheduled kind: an action sent later than
//! `--max-lag` after its intended start is late, and any late action of any kind makes
//! the run invalid (exit 3), with a reason naming each late kind, the machine's load
//! average and what to do about it.

use firehose_sim::report::names::Kind;
use serde_json::Value;

use super::{json_of, n, run_judged};

/// The part of the invalid reason listing the late kinds: `kind: late of sent (max …)`.
fn late_kinds(reason: &str) -> Vec<String> {
    let list = reason.split(" — ").nth(1).unwrap_or_else(|| panic!("no list of late kinds: {reason}"));
    let list = list.split("; load average").next().unwrap().split(". The figures").next().unwrap();
    list.split(", ").map(|entry| entry.split(':').next().unwrap().to_owned()).collect()
}

/// The reason says what to do: allow more lag, fewer listeners, agents.
fn assert_advice(reason: &str) {
    for advice in ["--max-lag", "fewer listeners", "--agents", "load average"] {
        assert!(reason.contains(advice), "{advice}: {reason}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_that_is_late_invalidates_the_run_and_is_named() {
    // Every kind at once, and a lag nothing can meet: a microsecond.
    let plan = super::plan_of(&[
        "--max-lag",
        "1us",
        "--listeners",
        "4",
        "--tag-listeners",
        "2",
        "--rate",
        "10",
        "--duration",
        "2500ms",
        "--warmup",
        "500ms",
        "--seed-bookmarks",
        "5",
        "--like-rate",
        "10",
        "--unlike-rate",
        "4",
        "--delete-rate",
        "3",
        "--like-targets",
        "2",
        "--likes-listeners",
        "2",
        "--message-rate",
        "10",
        "--typing-rate",
        "4",
        "--rooms",
        "2",
        "--room-listeners",
        "2",
        "--user-listeners",
        "1",
        "--room-presence-rate",
        "3",
        "--presence-hold",
        "300ms",
        "--churn-rate",
        "4",
        "--churn-absence",
        "100ms",
        "--storm-at",
        "1500ms",
        "--storm-fraction",
        "1",
        "--page-listeners",
        "2",
        "--page-reader-rate",
        "3",
        "--page-dwell",
        "500ms",
        "--read-rate",
        "3",
    ]);
    let r = json_of(&run_judged(plan).await);
    let v = &r["verdict"];
    assert_eq!((&v["valid"], n(&v["exit_code"])), (&Value::Bool(false), 3), "{v}");
    assert!(v["line"].as_str().unwrap().starts_with("FAIL (exit 3): invalid run"), "{v}");
    let reasons = v["invalid_reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    let reason = reasons[0].as_str().unwrap();
    assert!(reason.starts_with("actions were sent later than --max-lag (0.001 ms)"), "{reason}");
    assert_advice(reason);
    let named = late_kinds(reason);

    let mut late_total = 0;
    for kind in Kind::ALL {
        let name = kind.name();
        let Some(a) = r["actions"].get(name) else {
            panic!("{name} was driven but has no actions entry: {}", r["actions"]);
        };
        let (sent, late) = (n(&a["sent"]), n(&a["late"]));
        assert!(sent > 0, "{name} sent nothing, so its lag went unchecked: {a}");
        assert!(late > 0, "{name}: {sent} sent, none late at 1 µs: {a}");
        assert!(a["max_lag_ms"].as_f64().unwrap() > 0.001, "{name}: {a}");
        assert!(named.contains(&name.to_owned()), "{name} is late but not named: {reason}");
        let entry = format!("{name}: {late} of {sent} (max ");
        assert!(reason.contains(&entry), "{entry}: {reason}");
        late_total += late;
    }
    assert_eq!(named.len(), r["actions"].as_object().unwrap().values().filter(|a| n(&a["late"]) > 0).count());
    assert_eq!(n(&r["totals"]["late"]), late_total, "{}", r["totals"]);
    assert!(r["scheduler"]["max_lag_ms"].as_f64().unwrap() > 0.001);
}

/// One listener asked to churn ten times a second, each churn away 500 ms: its churns
/// queue behind each other and go out later and later, while the bookmarks keep their
/// schedule. Only `presence_churn` is late, and that alone invalidates the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_listener_lifecycle_alone_invalidates_the_run() {
    let plan = super::plan_of(&[
        "--max-lag",
        "300ms",
        "--listeners",
        "1",
        "--rate",
        "5",
        "--duration",
        "2s",
        "--warmup",
        "0s",
        "--seed-bookmarks",
        "0",
        "--churn-rate",
        "10",
        "--churn-absence",
        "500ms",
    ]);
    let r = json_of(&run_judged(plan).await);
    let v = &r["verdict"];
    assert_eq!((&v["valid"], n(&v["exit_code"])), (&Value::Bool(false), 3), "{v}");
    let reason = v["invalid_reasons"][0].as_str().unwrap();
    assert_eq!(late_kinds(reason), ["presence_churn"], "{reason}");
    assert_advice(reason);
    let bookmarks = &r["actions"]["create_bookmark"];
    assert_eq!((n(&bookmarks["sent"]), n(&bookmarks["late"])), (10, 0), "{bookmarks}");
    let churn = &r["actions"]["presence_churn"];
    assert_eq!(n(&churn["scheduled"]), 20, "{churn}");
    assert!(n(&churn["late"]) > 0 && n(&churn["late"]) + 1 >= n(&churn["sent"]), "all but the first: {churn}");
    assert!(churn["max_lag_ms"].as_f64().unwrap() > 300.0, "{churn}");
    // Late or not, the churned listener was replayed what it missed.
    super::assert_group_exact(&r, "firehose");
}
