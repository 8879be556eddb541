//! `firehose-sim rooms` end to end against the embedded app: exact delivery counts for
//! messages, typing and presence churn; the binary's report files and exit codes.

use std::process::Command;

use firehose_sim::report::histo::parse_hgrm;
use firehose_sim::workloads::rooms::{self, RoomsArgs, RoomsPlan};
use serde_json::Value;

use super::n;

fn plan(flags: &[&str]) -> RoomsPlan {
    let args = <RoomsArgs as clap::Parser>::parse_from(std::iter::once("rooms").chain(flags.iter().copied()));
    RoomsPlan::from_args(&args).unwrap()
}

/// 3 rooms x 4 members, 10 msg/s + 4 typing/s + 2 presence joins/s for 2 s (0.5 s
/// warm-up). A debug build on a busy CI machine may be late: lag allowed is generous.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_rooms_run_delivers_every_message_typing_and_presence_diff_exactly() {
    let plan = plan(&[
        "--rooms",
        "3",
        "--members",
        "4",
        "--message-rate",
        "10",
        "--typing-rate",
        "4",
        "--presence-churn",
        "2",
        "--duration",
        "2s",
        "--warmup",
        "500ms",
        "--max-lag",
        "500ms",
    ]);
    let report = rooms::run(plan).await.expect("rooms run");
    let r = serde_json::to_value(&report.model).unwrap();
    assert_eq!(r["schema"], "firehose-sim/rooms/v1");
    assert_eq!(r["kind"], "rooms");
    assert_eq!(r["valid"], true, "invalid: {}", r["invalid_reasons"]);
    assert_eq!((n(&r["members"]["requested"]), n(&r["members"]["joined"])), (12, 12), "{}", r["members"]);

    // Every message owes one delivery to each of the room's 3 other members.
    let m = &r["messages"];
    assert_eq!((n(&m["scheduled"]), n(&m["sent"]), n(&m["skipped"])), (20, 20, 0), "{m}");
    assert_eq!(n(&m["replies_ok"]), 20, "{m}");
    assert_eq!(n(&m["expected"]), 20 * 3, "{m}");
    assert_eq!(n(&m["received"]), 20 * 3, "{m}");
    assert_eq!((n(&m["lost"]), n(&m["excess"])), (0, 0), "{m}");
    assert_eq!(n(&m["delivery"]["count"]), 15 * 3, "warm-up messages are not timed");
    assert_eq!(n(&m["reply_corrected"]["count"]), 15);
    assert_eq!(n(&m["reply_uncorrected"]["count"]), 15);
    assert!(m["errors"].as_object().unwrap().is_empty(), "{m}");

    let t = &r["typing"];
    assert_eq!((n(&t["scheduled"]), n(&t["sent"]), n(&t["skipped"])), (8, 8, 0), "{t}");
    assert_eq!(n(&t["expected"]), 8 * 3, "{t}");
    assert_eq!(n(&t["received"]), n(&t["expected"]), "{t}");
    assert_eq!(n(&t["lost"]), 0, "{t}");
    assert!(n(&t["delivery"]["count"]) > 0, "{t}");

    // Every churn join owes a presence_diff to each of the room's 4 members.
    let p = &r["presence"];
    assert_eq!((n(&p["scheduled"]), n(&p["joins_ok"])), (4, 4), "{p}");
    assert_eq!(n(&p["expected"]), 4 * 4, "{p}");
    assert_eq!(n(&p["received"]), 4 * 4, "{p}");
    assert_eq!(n(&p["lost"]), 0, "{p}");
    assert_eq!(n(&p["join_to_diff"]["count"]), 3 * 4, "{p}");
    assert!(n(&p["join_reply"]["count"]) > 0, "{p}");

    let h = &r["health"];
    assert_eq!(h["healthy"], true, "{h}");
    assert_eq!((n(&h["unanswered"]), n(&h["phx_errors"]), n(&h["closed_sockets"])), (0, 0, 0), "{h}");
    assert_eq!(n(&r["members"]["join"]["count"]), 12);
    assert_eq!((n(&h["duplicates"]), n(&h["reordered"]), n(&h["gaps"])), (0, 0, 0), "{h}");
    assert_eq!(n(&h["own_echoes"]), 20, "each sender sees its own message once");
    assert_eq!(r["window"]["drain_timed_out"], false);
    assert_eq!(report.histograms.len(), r["histograms"].as_object().unwrap().len());
}

#[test]
fn the_rooms_binary_writes_its_report_and_exits_2_on_a_bad_plan() {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_firehose-sim"))
        .args(["rooms", "--rooms", "2", "--members", "2", "--message-rate", "5", "--duration", "1s"])
        .args(["--warmup", "200ms", "--max-lag", "500ms", "--out"])
        .arg(out.path())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let dirs: Vec<_> = std::fs::read_dir(out.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    assert!(dirs[0].file_name().unwrap().to_str().unwrap().contains("-rooms-"));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(dirs[0].join("report.json")).unwrap()).unwrap();
    assert_eq!(r["schema"], "firehose-sim/rooms/v1");
    assert_eq!(n(&r["messages"]["lost"]), 0);
    for file in r["histograms"].as_object().unwrap().values() {
        let text = std::fs::read_to_string(dirs[0].join(file.as_str().unwrap())).unwrap();
        parse_hgrm(&text).unwrap();
    }
    let hgrm = parse_hgrm(&std::fs::read_to_string(dirs[0].join("message_delivery.hgrm")).unwrap()).unwrap();
    assert_eq!(hgrm.total_count, n(&r["messages"]["delivery"]["count"]));
    assert!(dirs[0].join("summary.md").exists());
    // Interval logs: one per histogram, adding up exactly to its `.hgrm`.
    let logs = r["histogram_logs"].as_object().unwrap();
    assert_eq!(logs.len(), r["histograms"].as_object().unwrap().len());
    for (name, file) in logs {
        let log = firehose_sim::report::histo::read_hlog(&std::fs::read(dirs[0].join(file.as_str().unwrap())).unwrap())
            .unwrap();
        let hgrm = std::fs::read_to_string(dirs[0].join(r["histograms"][name].as_str().unwrap())).unwrap();
        assert_eq!(log.sum().len(), parse_hgrm(&hgrm).unwrap().total_count, "{name}");
        assert!(!log.intervals.is_empty(), "{name}");
    }

    let bad = Command::new(env!("CARGO_BIN_EXE_firehose-sim")).args(["rooms", "--members", "1"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--members"));
}
