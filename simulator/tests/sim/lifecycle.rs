//! Stages, presence churn and reconnect storms against the embedded app: the staged
//! schedule's counts per stage, and churned or dropped listeners rejoining with `since`
//! so that the ledger still balances exactly.

use firehose_sim::Plan;
use serde_json::Value;

use super::{json_of, n, run_judged, sim};

/// A small run without `--duration` (stages set it when given).
const BASE: &[&str] = &[
    "--max-lag",
    "500ms",
    "--listeners",
    "20",
    "--tag-listeners",
    "10",
    "--rate",
    "20",
    "--warmup",
    "500ms",
    "--seed-bookmarks",
    "20",
    "--connect-rate",
    "200",
];

fn plan(extra: &[&str]) -> Plan {
    super::plan_of(&[BASE, extra].concat())
}

async fn report(extra: &[&str]) -> Value {
    json_of(&run_judged(plan(extra)).await)
}

/// A passing run: nothing lost, nothing extra, nothing closed by the server, in every
/// group.
fn assert_no_loss(r: &Value) {
    super::assert_passed(r);
    let l = &r["listeners"];
    assert_eq!(n(&l["joined"]), 30, "failures: {}", l["failures"]);
    assert_eq!(n(&l["closed_during_run"]), 0, "failures: {}", l["failures"]);
    for group in ["firehose", "tag"] {
        assert!(super::assert_group_exact(r, group) > 0, "{group}: {}\nactions: {}", r["groups"][group], r["actions"]);
        assert_eq!(n(&r["groups"][group]["gaps"]), 0, "{group}");
    }
    assert_eq!(r["window"]["drain_timed_out"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_run_sends_what_each_stage_asks_for() {
    // 20/s for 1 s, a ramp to 60/s over 1 s, 60/s for 1 s: 20 + 40 + 60 requests.
    let r = report(&["--stage", "1s:1", "--stage", "1s:3", "--stage", "1s:3"]).await;
    super::assert_passed(&r);
    assert_eq!(r["plan"]["traffic"]["duration_s"], 3.0);
    assert_eq!(r["plan"]["traffic"]["stages"].as_array().unwrap().len(), 3);
    let a = &r["actions"]["create_bookmark"];
    assert_eq!((n(&a["scheduled"]), n(&a["sent"])), (120, 120), "{a}");
    assert_eq!(n(&a["ok"]), 120, "{}", a["errors"]);
    // Requests with intended starts in the warm-up (the first 0.5 s: 10) are unmeasured.
    assert_eq!(n(&a["latency_corrected"]["count"]), 110);
    let rows = r["timeline"]["rows"].as_array().expect("a sampled timeline");
    let sent: Vec<u64> = rows.iter().take(3).map(|row| n(&row["actions"]["create_bookmark"]["sent"])).collect();
    for (got, want) in sent.iter().zip([20u64, 40, 60]) {
        assert!(got.abs_diff(want) <= 3, "requests sent per second {sent:?}, stages ask for [20, 40, 60]");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_dropping_half_the_listeners_loses_nothing_and_all_rejoin() {
    let r = report(&["--duration", "3s", "--storm-at", "1500ms", "--storm-fraction", "0.5"]).await;
    assert_no_loss(&r);
    let s = &r["actions"]["reconnect_storm"];
    let dropped = n(&s["sent"]);
    assert!((5..=25).contains(&dropped), "about half of 30 sockets dropped: {s}");
    assert_eq!((n(&s["scheduled"]), n(&s["late"])), (dropped, 0), "{s}");
    assert_eq!(n(&s["ok"]), dropped, "every dropped listener rejoined: {s}");
    assert_eq!(n(&s["error_count"]), 0, "{s}");
    assert_eq!(n(&s["latency_corrected"]["count"]), dropped);
    // The first try goes 10 ms after the drop (phoenix.js), and the app is up: one each.
    assert_eq!(n(&s["detail"]["attempts"]), dropped, "{s}");
    assert!(s["latency_corrected"]["min_ms"].as_f64().unwrap() >= 10.0, "{s}");
    assert!(n(&s["detail"]["replayed"]) <= n(&r["groups"]["firehose"]["received"]));
    for h in ["action_reconnect_storm_corrected", "action_reconnect_storm_uncorrected", "action_reconnect_storm_lag"] {
        assert!(r["histograms"][h].is_string(), "{h}");
        assert!(r["histogram_paths"][h].as_str().unwrap().starts_with("/actions/reconnect_storm/"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churned_listeners_are_replayed_what_they_missed() {
    // 10 churns/s over 3 s, each listener away 300 ms while bookmarks keep coming.
    let r = report(&["--duration", "3s", "--churn-rate", "10", "--churn-absence", "300ms"]).await;
    assert_no_loss(&r);
    let c = &r["actions"]["presence_churn"];
    assert_eq!(n(&c["scheduled"]), 30, "{c}");
    assert_eq!(n(&c["sent"]), 30, "{c}");
    assert_eq!(n(&c["ok"]), 30, "{c}");
    assert_eq!((n(&c["error_count"]), n(&c["late"])), (0, 0), "{c}");
    // 300 ms away at 20/s: a few events each, replayed on rejoin.
    assert!(n(&c["detail"]["replayed"]) > 0, "{c}");
    assert_eq!(n(&c["latency_corrected"]["count"]), 25, "churns intended in the warm-up are unmeasured: {c}");
    // The rejoin goes at leave + absence, not after some fixed wait of the simulator's
    // own: measured from that instant, a rejoin takes a round trip, not 100s of ms.
    assert!(c["latency_corrected"]["p50_ms"].as_f64().unwrap() < 150.0, "{c}");
}

#[test]
fn impossible_stages_are_usage_errors_naming_the_key() {
    for (flags, says) in [
        (&["--stage", "1s:-1"][..], "--stage must be a finite multiplier >= 0"),
        (&["--stage", "1s:NaN"][..], "--stage must be a finite multiplier >= 0"),
        (&["--stage", "0s:1"][..], "last no time at all"),
        (&["--stage", "1s:0", "--start-scale", "0"][..], "the run would send nothing"),
        (&["--stage", "1s:1", "--warmup", "1s"][..], "must be shorter than --stage"),
        (&["--stage", "1s:1:1.5"][..], "between 0 and 1"),
        (&["--stage", "2s:1", "--duration", "5s"][..], "disagrees with the stages"),
        (&["--storm-at", "20s"][..], "not inside the traffic phase"),
    ] {
        let out = sim().arg("run").args(flags).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ramp.toml");
    std::fs::write(
        &file,
        "[[stages]]\nduration = \"2s\"\nscale = 1.0\n\n[[stages]]\nduration = \"1s\"\nscale = -2.0\n",
    )
    .unwrap();
    let out = sim().arg("run").arg("--scenario").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("ramp.toml:7:9: stages[1].scale must be a finite multiplier >= 0, got -2"), "{stderr}");
}
