//! Scale: listener connections bound to loopback source addresses (seen by the kernel
//! as 127.0.0.x peers), refusals before anything connects (non-loopback sources, more
//! listeners than file descriptors, with the advice to split), `run --agents 2` merged
//! into one report, and `firehose-sim merge` of real report folders (exact counts; an
//! invalid input makes the merge invalid, exit 3).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use firehose_sim::fixtures::Corpus;
use firehose_sim::plan::args::RunArgs;
use firehose_sim::report::histo::read_hlog;
use firehose_sim::{Plan, Ready, run_gated};
use serde_json::Value;

use super::{n, only_subdir, sim};

/// Established TCP connections towards `port` in a `/proc/net/tcp` table, by local
/// (source) address.
fn connections_to(table: &str, port: u16) -> BTreeMap<Ipv4Addr, u64> {
    let mut by_source = BTreeMap::new();
    for line in table.lines().skip(1) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        let (local, remote, state) = (cells[1], cells[2], cells[3]);
        if u16::from_str_radix(&remote[9..], 16).unwrap() == port && state == "01" {
            // Little-endian hex: 0200007F is 127.0.0.2.
            let ip = Ipv4Addr::from(u32::from_str_radix(&local[..8], 16).unwrap().swap_bytes());
            *by_source.entry(ip).or_default() += 1;
        }
    }
    by_source
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_connections_bind_the_given_source_addresses_round_robin() {
    let flags = [
        "run",
        "--listeners",
        "12",
        "--tag-listeners",
        "4",
        "--source-ips",
        "127.0.0.2-127.0.0.3,127.0.0.7",
        "--rate",
        "10",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--max-lag",
        "500ms",
        "--seed-bookmarks",
        "0",
    ];
    let plan = Plan::from_args(&RunArgs::try_parse_from(flags).unwrap()).unwrap();
    let corpus = Corpus::embedded_default().unwrap();
    let seen = Mutex::new(None);
    // Once every listener joined, the kernel's table shows who is connected from where.
    let report = run_gated(plan, &corpus, &|ready: &Ready<'_>| {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        *seen.lock().unwrap() = Some((ready.joined, table));
        Ok(ready.proposed)
    })
    .await
    .unwrap();
    let (joined, table) = seen.lock().unwrap().take().unwrap();
    assert_eq!(joined, 16);
    let port = url::Url::parse(&report.model.target.url).unwrap().port().unwrap();
    let by_source = connections_to(&table, port);
    // 16 listeners over 3 sources, round-robin; the HTTP client's own connections come
    // from 127.0.0.1.
    let sources: BTreeMap<String, u64> =
        by_source.iter().filter(|(ip, _)| ip.octets()[3] != 1).map(|(ip, c)| (ip.to_string(), *c)).collect();
    assert_eq!(sources, BTreeMap::from([("127.0.0.2".into(), 6), ("127.0.0.3".into(), 5), ("127.0.0.7".into(), 5)]));
    assert_eq!(report.model.listeners.joined, 16);
}

#[test]
fn non_loopback_sources_and_plans_beyond_the_fd_limit_are_refused_before_connecting() {
    let out = sim().args(["run", "--source-ips", "127.0.0.2,10.0.0.1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("10.0.0.1 is not a loopback address"), "{stderr}");

    // Nothing listens on port 9: a plan that would connect would exit 4, not 2.
    let out = sim().args(["run", "--target", "http://127.0.0.1:9", "--listeners", "60000"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("listeners fit in one process"), "{stderr}");
    assert!(stderr.contains("run `--agents "), "{stderr}");
}

fn report_json(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

/// The `.hlog` of `name` in `dir`, its intervals added up.
fn hlog_count(dir: &Path, name: &str) -> u64 {
    read_hlog(&std::fs::read(dir.join(format!("{name}.hlog"))).unwrap()).unwrap().sum().len()
}

#[test]
fn agents_split_the_plan_and_merge_into_one_exact_report() {
    let out = tempfile::tempdir().unwrap();
    let args = [
        "run",
        "--agents",
        "2",
        "--listeners",
        "11",
        "--tag-listeners",
        "4",
        "--rate",
        "20",
        "--duration",
        "2s",
        "--warmup",
        "500ms",
        "--seed-bookmarks",
        "10",
        "--max-lag",
        "500ms",
        "--quiet",
        "--threshold",
        "loss == 0",
    ];
    let output = sim().args(args).arg("--out").arg(out.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}\n{}", String::from_utf8_lossy(&output.stdout));
    let dir = only_subdir(out.path());
    let merged = report_json(&dir);
    let agents: Vec<PathBuf> = (0..2).map(|i| dir.join(format!("agents/agent-{i}"))).collect();
    let parts: Vec<Value> = agents.iter().map(|d| report_json(d)).collect();
    let sum = |pointer: &str| parts.iter().map(|r| n(r.pointer(pointer).unwrap())).sum::<u64>();
    assert_eq!(n(&merged["listeners"]["joined"]), 15);
    assert_eq!(sum("/listeners/joined"), 15);
    assert_eq!(n(&parts[0]["listeners"]["joined"]), 8, "11 + 4 split 6 + 2 and 5 + 2");
    for pointer in ["/groups/firehose/received", "/groups/tag/received", "/requests/sent", "/groups/firehose/expected"]
    {
        assert_eq!(n(merged.pointer(pointer).unwrap()), sum(pointer), "{pointer}");
    }
    assert_eq!(n(&merged["requests"]["sent"]), 40, "20/s split 10/s each for 2 s");
    let count = n(&merged["groups"]["firehose"]["latency"]["count"]);
    assert!(count > 0);
    assert_eq!(count, sum("/groups/firehose/latency/count"));
    assert_eq!(hlog_count(&dir, "delivery_firehose"), count);
    assert_eq!(merged["valid"], true);
    assert_eq!(merged["target"]["kind"], "embedded", "the parent booted the app the agents drove");
    assert_eq!(merged["thresholds"][0]["expr"], "loss == 0");
    assert_eq!(merged["agents"].as_array().unwrap().len(), 2);
    // Each agent bound its own source address, 127.0.0.(2+i).
    assert_eq!(parts[1]["plan"]["source_ips"][0], "127.0.0.3");
    assert_ne!(parts[0]["run_id"], parts[1]["run_id"]);
    for f in ["summary.md", "junit.xml", "delivery_firehose.hgrm", "request_corrected.hlog"] {
        assert!(dir.join(f).is_file(), "{f}");
    }

    // `merge` of the same folders gives the same counts; an invalid input makes the
    // merge invalid (exit 3) and says which input.
    let bad = out.path().join("bad");
    copy_dir(&agents[1], &bad);
    let mut invalid = report_json(&bad);
    invalid["valid"] = Value::Bool(false);
    invalid["invalid_reasons"] = serde_json::json!(["generator lag: planted"]);
    std::fs::write(bad.join("report.json"), serde_json::to_string(&invalid).unwrap()).unwrap();
    let merged_out = out.path().join("merged");
    let output = sim().arg("merge").arg(&agents[0]).arg(&agents[1]).arg("--out").arg(&merged_out).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let again = report_json(&only_subdir(&merged_out));
    assert_eq!(n(&again["groups"]["firehose"]["latency"]["count"]), count);
    assert_eq!(again["groups"]["firehose"]["latency"], merged["groups"]["firehose"]["latency"]);
    let invalid_out = out.path().join("invalid");
    let output = sim().arg("merge").arg(&agents[0]).arg(&bad).arg("--out").arg(&invalid_out).output().unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", String::from_utf8_lossy(&output.stderr));
    let r = report_json(&only_subdir(&invalid_out));
    assert_eq!(r["valid"], false);
    assert_eq!(r["invalid_reasons"][0], "agent-1: generator lag: planted");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
