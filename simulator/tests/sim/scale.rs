//! Scale: listener connections bound to loopback source addresses (seen by the kernel
//! as 127.0.0.x peers), refusals before anything connects (non-loopback sources, more
//! listeners than file descriptors, with the advice to split), `run --agents 2` merged
//! into one report in which every agent accounted every agent's events (so the merged
//! fan-out is the whole server's), and `firehose-sim merge` of real report folders
//! (exact counts; an invalid input makes the merge invalid, exit 3).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use firehose_sim::engine::run::{Peers, Ready};
use firehose_sim::fixtures::Corpus;
use firehose_sim::report::histo::read_hlog;
use firehose_sim::{SimError, run_with};
use serde_json::{Value, json};

use super::{n, only_subdir, report_json, sim};

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

/// A process running alone that, once every listener joined, reads the kernel's table
/// of TCP connections: who is connected from where.
struct Snapshot(Mutex<Option<(u64, String)>>);

impl Peers for Snapshot {
    fn start(&self, ready: &Ready<'_>) -> Result<Instant, SimError> {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        *self.0.lock().unwrap() = Some((ready.joined, table));
        Ok(ready.proposed)
    }

    fn exchange(&self, mine: Vec<Value>) -> Result<Vec<Vec<Value>>, SimError> {
        Ok(vec![mine])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_connections_bind_the_given_source_addresses_round_robin() {
    let flags = [
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
    let plan = super::plan_of(&flags);
    let corpus = Arc::new(Corpus::embedded_default().unwrap());
    let seen = Snapshot(Mutex::new(None));
    let report = run_with(plan, corpus, &seen).await.unwrap();
    let (joined, table) = seen.0.lock().unwrap().take().unwrap();
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

/// The `.hlog` of `name` in `dir`, its intervals added up.
fn hlog_count(dir: &Path, name: &str) -> u64 {
    read_hlog(&std::fs::read(dir.join(format!("{name}.hlog"))).unwrap()).unwrap().sum().len()
}

#[test]
fn agents_split_the_plan_account_every_event_and_merge_into_one_exact_report() {
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
        "delivery.firehose.p99 < 10s",
    ];
    let output = sim().args(args).arg("--out").arg(out.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}\n{}", String::from_utf8_lossy(&output.stdout));
    let dir = only_subdir(out.path());
    let merged = report_json(&dir);
    super::assert_passed(&merged);
    let agents: Vec<PathBuf> = (0..2).map(|i| dir.join(format!("agents/agent-{i}"))).collect();
    let parts: Vec<Value> = agents.iter().map(|d| report_json(d)).collect();
    let sum = |pointer: &str| parts.iter().map(|r| n(r.pointer(pointer).unwrap())).sum::<u64>();

    // The listeners are split (11 + 4 as 6 + 2 and 5 + 2); the bookmark schedule is the
    // whole run's in every agent, each sending its own half of it.
    assert_eq!(n(&merged["listeners"]["joined"]), 15);
    assert_eq!(sum("/listeners/joined"), 15);
    assert_eq!(n(&parts[0]["listeners"]["joined"]), 8, "11 + 4 split 6 + 2 and 5 + 2");
    assert_eq!(n(&parts[0]["groups"]["firehose"]["listeners"]), 6);
    assert_eq!(n(&parts[1]["groups"]["firehose"]["listeners"]), 5);
    assert_eq!(n(&merged["actions"]["create_bookmark"]["sent"]), 40, "20/s for 2 s, every request once");
    for part in &parts {
        assert_eq!(n(&part["actions"]["create_bookmark"]["sent"]), 20, "each agent sends its own half");
    }

    // Every agent accounts every bookmark event, its own and the other's: each of its
    // firehose listeners is owed every public event of the run.
    let public = sum("/actions/create_bookmark/detail/created_public");
    assert!(public > 30, "{public}");
    for (i, part) in parts.iter().enumerate() {
        let own = n(&part["actions"]["create_bookmark"]["detail"]["created_public"]);
        assert!(own > 0 && own < public, "agent {i} created some, not all: {own} of {public}");
        let g = &part["groups"]["firehose"];
        assert_eq!(n(&g["expected"]), public * n(&g["listeners"]), "agent {i}: {g}");
        super::assert_group_exact(part, "firehose");
        super::assert_group_exact(part, "tag");
        super::assert_passed(part);
    }
    // The merged fan-out is the whole server's.
    let g = &merged["groups"]["firehose"];
    assert_eq!(n(&g["expected"]), public * 11, "{g}");
    super::assert_group_exact(&merged, "firehose");
    super::assert_group_exact(&merged, "tag");
    for pointer in [
        "/groups/firehose/received",
        "/groups/firehose/expected",
        "/groups/tag/received",
        "/groups/tag/expected",
        "/actions/create_bookmark/sent",
        "/totals/lost",
    ] {
        assert_eq!(n(merged.pointer(pointer).unwrap()), sum(pointer), "{pointer}");
    }
    let count = n(&g["latency"]["count"]);
    assert!(count > 0);
    assert_eq!(count, sum("/groups/firehose/latency/count"));
    assert_eq!(hlog_count(&dir, "delivery_firehose"), count);
    assert_eq!(merged["target"]["kind"], "embedded", "the parent booted the app the agents drove");
    let exprs: Vec<&str> =
        merged["thresholds"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap()).collect();
    assert_eq!(exprs, ["errors == 0", "loss == 0", "private_leak == 0", "delivery.firehose.p99 < 10s"]);
    assert_eq!(merged["agents"].as_array().unwrap().len(), 2);
    // Each agent bound its own source address, 127.0.0.(2+i); they share the run id.
    assert_eq!(parts[1]["plan"]["target"]["source_ips"][0], "127.0.0.3");
    assert_eq!(parts[0]["run_id"], parts[1]["run_id"]);
    assert_eq!(merged["run_id"], parts[0]["run_id"]);
    for f in ["summary.md", "junit.xml", "delivery_firehose.hgrm", "action_create_bookmark_corrected.hlog"] {
        assert!(dir.join(f).is_file(), "{f}");
    }

    // `merge` of the same folders gives the same counts; an invalid input makes the
    // merge invalid (exit 3) and says which input.
    let bad = out.path().join("bad");
    copy_dir(&agents[1], &bad);
    // An agent that sent 3 bookmark requests late (its own verdict said so).
    let mut invalid = report_json(&bad);
    invalid["actions"]["create_bookmark"]["late"] = json!(3);
    invalid["totals"]["late"] = json!(3);
    invalid["verdict"]["valid"] = Value::Bool(false);
    invalid["verdict"]["invalid_reasons"] = json!(["actions were sent later than --max-lag: planted"]);
    std::fs::write(bad.join("report.json"), serde_json::to_string(&invalid).unwrap()).unwrap();
    let merged_out = out.path().join("merged");
    let output = sim().arg("merge").arg(&agents[0]).arg(&agents[1]).arg("--out").arg(&merged_out).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let again = report_json(&only_subdir(&merged_out));
    assert_eq!(n(&again["groups"]["firehose"]["latency"]["count"]), count);
    assert_eq!(again["groups"]["firehose"]["latency"], merged["groups"]["firehose"]["latency"]);
    assert_eq!(again["groups"]["firehose"]["expected"], merged["groups"]["firehose"]["expected"]);
    let invalid_out = out.path().join("invalid");
    let output = sim().arg("merge").arg(&agents[0]).arg(&bad).arg("--out").arg(&invalid_out).output().unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", String::from_utf8_lossy(&output.stderr));
    let r = report_json(&only_subdir(&invalid_out));
    assert_eq!((&r["verdict"]["valid"], n(&r["verdict"]["exit_code"])), (&json!(false), 3), "{}", r["verdict"]);
    let reason = r["verdict"]["invalid_reasons"][0].as_str().unwrap();
    assert!(reason.contains("create_bookmark: 3 of 40"), "the merged figures are judged: {reason}");
    assert_eq!(n(&r["totals"]["late"]), 3);
    // Which input was invalid.
    let inputs: Vec<(&Value, &Value)> =
        r["agents"].as_array().unwrap().iter().map(|a| (&a["label"], &a["valid"])).collect();
    assert_eq!(inputs, [(&json!("agent-0"), &json!(true)), (&json!("agent-1"), &json!(false))]);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
