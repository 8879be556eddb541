//! Chat rooms under load: `run --scenario rooms` (what `firehose-sim rooms` was) against
//! the embedded app, scaled down by flags: exact delivery counts for messages, typing
//! and presence joins in the `room` group, and the binary's report files and exit codes.

use firehose_sim::report::histo::{parse_hgrm, read_hlog};
use serde_json::{Value, json};

use super::{assert_footer, json_of, n, only_subdir, report_json, run_judged, sim, stderr, stdout};

/// 3 rooms x 4 room listeners, 10 messages/s + 4 typing/s + 2 presence joins/s for 2 s
/// (0.5 s warm-up); the scenario's trickle of bookmarks (0.5/s) goes to nobody. A debug
/// build on a busy CI machine may be late: the lag allowed is generous.
const TINY: &[&str] = &[
    "--scenario",
    "rooms",
    "--rooms",
    "3",
    "--room-members",
    "4",
    "--message-rate",
    "10",
    "--typing-rate",
    "4",
    "--room-presence-rate",
    "2",
    "--duration",
    "2s",
    "--warmup",
    "500ms",
    "--max-lag",
    "500ms",
];

/// Every action of `kind`: scheduled, sent and answered ok, none late, `measured` of
/// them past the warm-up.
fn all_ok(r: &Value, kind: &str, scheduled: u64, measured: u64) {
    let a = &r["actions"][kind];
    assert_eq!((n(&a["scheduled"]), n(&a["sent"]), n(&a["ok"])), (scheduled, scheduled, scheduled), "{kind}: {a}");
    assert_eq!((n(&a["skipped"]), n(&a["error_count"]), n(&a["late"])), (0, 0, 0), "{kind}: {a}");
    assert_eq!(n(&a["latency_corrected"]["count"]), measured, "{kind}: warm-up actions are not timed: {a}");
    assert_eq!(n(&a["latency_uncorrected"]["count"]), measured, "{kind}: {a}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_rooms_run_delivers_every_message_typing_and_presence_diff_exactly() {
    let plan = super::plan_of(TINY);
    assert!(plan.scenario.as_ref().unwrap().ends_with("fixtures/scenarios/rooms.toml"));
    assert_eq!((plan.actions.rooms, plan.actions.room_members, plan.actions.room_listeners), (3, Some(4), 12));
    let report = run_judged(plan).await;
    let r = json_of(&report);
    super::assert_passed(&r);
    let l = &r["listeners"];
    // 12 room listeners, plus the actor sockets that push.
    let actors = n(&r["plan"]["actions"]["actor_sockets"]);
    assert!(actors >= 1, "{}", r["plan"]["actions"]);
    assert_eq!((n(&l["requested"]), n(&l["joined"]), n(&l["failed_to_join"])), (12 + actors, 12 + actors, 0), "{l}");

    all_ok(&r, "chat_message", 20, 15);
    all_ok(&r, "typing", 8, 6);
    all_ok(&r, "room_presence", 4, 3);

    // Every message, typing push and presence join owes one delivery to each of its
    // room's 4 listeners, and each arrived exactly once.
    let room = &r["groups"]["room"];
    assert_eq!((n(&room["listeners"]), n(&room["topics"])), (12, 3), "{room}");
    assert_eq!(super::assert_group_exact(&r, "room"), (20 + 8 + 4) * 4, "{room}");
    assert_eq!(n(&room["gaps"]), 0, "{room}");
    // Measured (post-warm-up) actions are timed at each listener, and each reached all 4.
    assert_eq!(n(&room["latency"]["count"]), (15 + 6 + 3) * 4, "{room}");
    for mark in ["pct_50", "pct_99", "pct_100"] {
        assert_eq!(n(&room["reach"][mark]["count"]), 15 + 6 + 3, "{mark}: {room}");
    }
    assert!(r["groups"].get("firehose").is_none_or(|g| n(&g["listeners"]) == 0), "{}", r["groups"]);
    assert_eq!(r["window"]["drain_timed_out"], false);
    assert_eq!(report.histograms.len(), r["histograms"].as_object().unwrap().len());
    for name in ["delivery_room", "reach_room_100", "action_chat_message_corrected", "action_room_presence_lag"] {
        assert!(r["histograms"][name].is_string(), "{name}: {}", r["histograms"]);
    }
    // Chat load has gates like any run: the room metrics read these figures.
    for expr in
        ["loss.room == 0", "actions.typing.errors == 0", "delivery.room.count == 96", "reach.room.100.count == 24"]
    {
        let gate = firehose_sim::report::gate::Threshold::parse(expr).unwrap();
        assert!(gate.evaluate(&report.model).passed, "{expr}: {:?}", gate.evaluate(&report.model));
    }
}

#[test]
fn the_rooms_scenario_through_the_binary_writes_its_report_and_refuses_bad_values() {
    let out = tempfile::tempdir().unwrap();
    let output = sim()
        .args(["run", "--scenario", "rooms", "--rooms", "2", "--room-members", "2", "--message-rate", "5"])
        .args(["--typing-rate", "2", "--room-presence-rate", "1", "--duration", "1s", "--warmup", "200ms"])
        .args(["--max-lag", "500ms", "--threshold", "delivery.room.p99 < 10s", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}\n{}", stdout(&output), stderr(&output));
    let dir = only_subdir(out.path());
    assert_eq!(assert_footer(&stdout(&output), &dir), "PASS: valid, complete, 4 gates passed");
    let r = report_json(&dir);
    assert_eq!(r["schema"], "firehose-sim/report/v2");
    assert!(r["plan"]["scenario"].as_str().unwrap().ends_with("rooms.toml"));
    super::assert_group_exact(&r, "room");
    assert_eq!(n(&r["groups"]["room"]["listeners"]), 4);
    assert_eq!(r["thresholds"][3]["expr"], json!("delivery.room.p99 < 10s"));
    for file in r["histograms"].as_object().unwrap().values() {
        let text = std::fs::read_to_string(dir.join(file.as_str().unwrap())).unwrap();
        parse_hgrm(&text).unwrap();
    }
    let hgrm = parse_hgrm(&std::fs::read_to_string(dir.join("delivery_room.hgrm")).unwrap()).unwrap();
    assert_eq!(hgrm.total_count, n(&r["groups"]["room"]["latency"]["count"]));
    assert!(hgrm.total_count > 0);
    for file in ["summary.md", "junit.xml", "report.html"] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    // Interval logs: one per histogram, adding up exactly to its `.hgrm`.
    let logs = r["histogram_logs"].as_object().unwrap();
    assert_eq!(logs.len(), r["histograms"].as_object().unwrap().len());
    for (name, file) in logs {
        let log = read_hlog(&std::fs::read(dir.join(file.as_str().unwrap())).unwrap()).unwrap();
        let hgrm = std::fs::read_to_string(dir.join(r["histograms"][name].as_str().unwrap())).unwrap();
        assert_eq!(log.sum().len(), parse_hgrm(&hgrm).unwrap().total_count, "{name}");
        assert!(!log.intervals.is_empty(), "{name}");
    }

    for (flags, says) in [
        (&["--room-members", "0"][..], "--room-members must be at least 1"),
        (&["--presence-hold", "0s"][..], "--presence-hold must be longer than zero"),
        (&["--room-presence-rate=-1"][..], "--room-presence-rate must be a positive number"),
    ] {
        let bad = sim().args(["run", "--scenario", "rooms"]).args(flags).output().unwrap();
        assert_eq!(bad.status.code(), Some(2), "{flags:?}: {}", stderr(&bad));
        assert!(stderr(&bad).contains(says), "{flags:?}: {}", stderr(&bad));
        assert!(bad.stdout.is_empty(), "nothing ran");
    }
    // The old subcommand is gone; clap says so with its usage code.
    let gone = sim().arg("rooms").output().unwrap();
    assert_eq!(gone.status.code(), Some(2));
}
