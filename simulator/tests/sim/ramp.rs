//! Listener ramps (a stage's `listeners` fraction) against the embedded app: late
//! joiners and listeners that leave in a ramp-down are accounted by `seq` continuity
//! with zero loss, and the open connections over time follow the stages.

use firehose_sim::Plan;
use serde_json::Value;

use super::{json_of, n, run_judged, sim};

fn plan(stages: &[&str]) -> Plan {
    let mut flags = vec![
        "--listeners",
        "20",
        "--tag-listeners",
        "10",
        "--rate",
        "20",
        "--warmup",
        "500ms",
        "--seed-bookmarks",
        "5",
        "--connect-rate",
        "500",
        "--max-lag",
        "500ms",
    ];
    for s in stages {
        flags.extend(["--stage", s]);
    }
    super::plan_of(&flags)
}

/// A passing run (ramped listeners are no failures), nothing lost by the static
/// listeners or by the ramped ones, accounted by `seq`.
fn assert_no_loss(r: &Value) {
    super::assert_passed(r);
    assert_eq!(r["window"]["drain_timed_out"], false);
    let l = &r["listeners"];
    assert_eq!((n(&l["closed_during_run"]), n(&l["failed_to_join"])), (0, 0), "{l}");
    assert_eq!(n(&l["ramped"]), 15, "half of 20 + 10 is held back by the ramp: {l}");
    for group in ["firehose", "tag"] {
        let g = &r["groups"][group];
        let late = &g["late"];
        assert!(n(&late["expected"]) > 0, "{group}: {g}");
        assert_eq!(n(&late["received"]), n(&late["expected"]), "{group}: {g}");
        assert_eq!((n(&late["lost"]), n(&late["duplicates"])), (0, 0), "{group}: {g}");
        assert!(late.get("failures").is_none(), "{group}: {g}");
        super::assert_group_exact(r, group);
    }
}

/// Open connections at the end of the timeline row ending at `at_s`.
fn open_at(r: &Value, at_s: f64) -> u64 {
    let rows = r["timeline"]["rows"].as_array().unwrap();
    let row = rows.iter().find(|row| (row["end_s"].as_f64().unwrap() - at_s).abs() < 0.01).unwrap();
    n(&row["open_connections"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_the_listeners_at_the_start_and_all_by_the_end_lose_nothing() {
    let r = json_of(&run_judged(plan(&["2s:1:0.5", "2s:1:1.0"])).await);
    assert_no_loss(&r);
    // The static half is in the ledger; the other half joined late.
    assert_eq!(n(&r["listeners"]["joined"]), 15, "{}", r["listeners"]);
    assert_eq!(n(&r["groups"]["firehose"]["late"]["listeners"]), 10);
    assert_eq!(n(&r["groups"]["tag"]["late"]["listeners"]), 5);
    assert_eq!(n(&r["groups"]["firehose"]["late"]["windows"]), 10);
    // Connected over time: 50 % for 2 s, then linearly to 100 %.
    assert_eq!(open_at(&r, 1.0), 15, "{}", r["timeline"]);
    assert_eq!(open_at(&r, 2.0), 15, "{}", r["timeline"]);
    // At 3 s: 75 % of 20 and of 10 (15 + 7), give or take a connect in flight.
    let at3 = open_at(&r, 3.0);
    assert!((21..=22).contains(&at3), "{at3}: {}", r["timeline"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramp_down_and_back_up_disconnects_and_reconnects_without_loss() {
    let r = json_of(&run_judged(plan(&["1s:1:1.0", "1s:1:0.5", "1s:1:0.5", "1s:1:1.0"])).await);
    assert_no_loss(&r);
    // Half of each group goes away and comes back: two windows each.
    assert_eq!(n(&r["groups"]["firehose"]["late"]["listeners"]), 10);
    assert_eq!(n(&r["groups"]["firehose"]["late"]["windows"]), 20);
    assert_eq!(open_at(&r, 2.0), 15, "{}", r["timeline"]);
    // Ramp-downs are the client's doing: nothing counted as closed by the server.
    assert!(r["timeline"]["rows"].as_array().unwrap().iter().all(|row| n(&row["closed_connections"]) == 0));
}

#[test]
fn bad_listener_fractions_are_usage_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ramp.toml");
    std::fs::write(&file, "[[stages]]\nduration = \"4s\"\nscale = 1.0\nlisteners = 1.5\n").unwrap();
    let out = sim().args(["run", "--scenario"]).arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(i32::from(firehose_sim::report::exit::USAGE)), "{stderr}");
    assert!(stderr.contains("ramp.toml:4:13: stages[0].listeners must be a fraction between 0 and 1"), "{stderr}");
    let out = sim().args(["run", "--stage", "4s:1:half"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(i32::from(firehose_sim::report::exit::USAGE)), "{stderr}");
    assert!(stderr.contains("--stage") && stderr.contains("listener fraction"), "{stderr}");
}
