//! Page readers and page listeners (`[listeners] page`, `[actions.page_readers]`)
//! against the embedded app: every reader's join and leave counted at every page
//! listener of its page exactly once, the final presence counts true, and bad values
//! refused as usage errors that name the key.

use firehose_sim::Plan;
use firehose_sim::report::{gate, names};

use super::{json_of, n, run_judged, sim};

fn plan(extra: &[&str]) -> Plan {
    const BASE: &[&str] = &[
        "--listeners",
        "4",
        "--tag-listeners",
        "2",
        "--rate",
        "5",
        "--seed-bookmarks",
        "5",
        "--connect-rate",
        "200",
        "--max-lag",
        "500ms",
    ];
    super::plan_of(&[BASE, extra].concat())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_readers_are_seen_by_every_page_listener_of_their_page() {
    let p = plan(&[
        "--duration",
        "3s",
        "--warmup",
        "500ms",
        "--page-listeners",
        "6",
        "--page-reader-rate",
        "5",
        "--page-dwell",
        "1500ms",
    ]);
    let report = run_judged(p).await;
    let r = json_of(&report);
    super::assert_passed(&r);
    assert_eq!(r["window"]["drain_timed_out"], false);
    let a = &r["actions"]["page_readers"];
    let scheduled = n(&a["scheduled"]);
    assert_eq!(scheduled, 15, "{a}");
    assert_eq!((n(&a["sent"]), n(&a["ok"]), n(&a["error_count"]), n(&a["late"])), (scheduled, scheduled, 0, 0), "{a}");
    let d = &a["detail"];
    assert_eq!(n(&d["left"]), scheduled, "{a}");
    // 6 listeners over 4 paths: every join and leave owed to the listeners of its path.
    assert!(n(&d["joins_owed"]) >= scheduled, "{a}");
    assert_eq!(n(&d["joins_seen"]), n(&d["joins_owed"]), "{a}");
    assert_eq!(n(&d["leaves_seen"]), n(&d["leaves_owed"]), "{a}");
    assert_eq!(n(&d["joins_owed"]), n(&d["leaves_owed"]), "{a}");
    assert_eq!(n(&d["listeners_count_wrong"]), 0, "{a}");
    let g = &r["groups"]["page"];
    assert_eq!((n(&g["listeners"]), n(&g["topics"])), (6, 4), "{g}");
    assert_eq!(n(&g["expected"]), n(&d["joins_owed"]) + n(&d["leaves_owed"]), "{g}");
    super::assert_group_exact(&r, "page");
    // Latency counts each reader join seen past the warm-up (the app merges diffs, so
    // at most one throttle interval and a bit).
    assert!(n(&g["latency"]["count"]) > 0 && n(&g["latency"]["count"]) <= n(&d["joins_seen"]), "{g}");
    assert!(g["latency"]["max_ms"].as_f64().unwrap() < 3000.0, "{g}");
    assert!(n(&a["latency_corrected"]["count"]) > 0, "{a}");
    for name in ["delivery_page", "action_page_readers_corrected", "action_page_readers_uncorrected"] {
        let path = r["histogram_paths"][name].as_str().unwrap_or_else(|| panic!("{name}"));
        assert!(r.pointer(path).is_some(), "{name}: {path}");
        assert!(report.histograms.iter().any(|(h, _)| h == name), "{name}");
    }
    // Zero loss: every reader past the warm-up reached all the listeners of its page.
    let reach = &g["reach"];
    for pct in ["50", "99", "100"] {
        let name = format!("reach_page_{pct}");
        assert_eq!(n(&reach[format!("pct_{pct}")]["count"]), n(&a["latency_corrected"]["count"]), "{name}: {reach}");
        assert_eq!(r["histogram_paths"][&name], format!("/groups/page/reach/pct_{pct}"), "{name}");
        assert!(report.histograms.iter().any(|(h, _)| *h == name), "{name}");
    }
    let ms = |pct: &str, stat: &str| reach[format!("pct_{pct}")][stat].as_f64().unwrap();
    assert!(ms("50", "p50_ms") <= ms("100", "p50_ms") && ms("50", "max_ms") <= ms("100", "max_ms"), "{reach}");
    // The gate metrics read the new entries.
    for name in ["loss.page", "actions.page_readers.p99", "delivery.page.p50", "reach.page.100.p99"] {
        let m = names::metric(name).unwrap_or_else(|| panic!("{name}"));
        assert!(gate::read(&report.model, m.figure).is_some(), "{name}");
    }
}

#[test]
fn bad_page_values_are_usage_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pages.toml");
    std::fs::write(&file, "duration = \"5s\"\n[actions.page_readers]\nrate = -2\n").unwrap();
    let out = sim().args(["run", "--scenario"]).arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(i32::from(firehose_sim::report::exit::USAGE)), "{stderr}");
    assert!(stderr.contains("pages.toml:3:8: actions.page_readers.rate"), "{stderr}");
    let out = sim().args(["run", "--page-reader-rate", "2", "--page-dwell", "0s"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(i32::from(firehose_sim::report::exit::USAGE)), "{stderr}");
    assert!(stderr.contains("--page-dwell"), "{stderr}");
    std::fs::write(&file, "[listeners]\npage = \"many\"\n").unwrap();
    let out = sim().args(["run", "--scenario"]).arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(i32::from(firehose_sim::report::exit::USAGE)), "{stderr}");
    assert!(stderr.contains("pages.toml:2:8"), "{stderr}");
}
