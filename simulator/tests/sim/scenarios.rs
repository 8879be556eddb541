//! Every shipped scenario (`fixtures/scenarios/*.toml`) runs through the binary and
//! exits 0, at a small scale: its listener groups capped, its time compressed to a few
//! seconds (stages, warm-up and storms by the same factor, so a ramp keeps its shape),
//! its rates, gates and everything else as shipped. The directory is read, so a new
//! scenario is run without anyone adding it here; a scenario file with a key this test
//! does not know how to scale fails the test rather than running at full size.
//!
//! Three adjustments, the same for every scenario: `--max-lag` is at least 500 ms and
//! every latency gate of the scenario is given as `< 10s` (the same metric, so it
//! replaces the same default; these are debug builds on a shared 2-core machine, next
//! to the other tests, and the figures are not what is tested here; every other gate
//! stays as shipped), and a scenario whose `target` is an external server runs against
//! a server this test boots (there is no flag back to the embedded app).

use std::path::{Path, PathBuf};
use std::time::Duration;

use firehose_sim::plan::parse_duration;
use firehose_sim::report::gate::Threshold;
use firehose_sim::report::names::Unit;
use serde_json::Value;

use super::{OwnServer, assert_footer, n, only_subdir, output_of, report_json, sim, stderr, stdout};

/// Scenarios not run here, and why.
const SKIPPED: &[(&str, &str)] =
    &[("demo", "the pace of `firehose-sim demo`, read by the demo (demo.rs runs it), not a load test for `run`")];

/// Traffic phases are compressed to at most this.
const TRAFFIC: Duration = Duration::from_secs(4);

/// `[listeners]` keys → their flag and the most listeners a test run opens.
const LISTENER_CAPS: &[(&str, &str, u64)] = &[
    ("firehose", "--listeners", 20),
    ("tag", "--tag-listeners", 10),
    ("room", "--room-listeners", 20),
    ("likes", "--likes-listeners", 10),
    ("user", "--user-listeners", 5),
    ("page", "--page-listeners", 6),
    ("room_members", "--room-members", 3),
];

/// Keys of a scenario file that need no scaling (rates, fractions, gates, texts, …),
/// besides the ones scaled below. A key in neither list fails the test.
const KEPT: &[&str] = &[
    "description",
    "seed",
    "drain_timeout",
    "max_in_flight",
    "start_scale",
    "profile",
    "listeners.connect_rate",
    "actions.create_bookmark.rate",
    "actions.create_bookmark.private_fraction",
    "actions.like.rate",
    "actions.like.targets",
    "actions.unlike.rate",
    "actions.delete_bookmark.rate",
    "actions.chat_message.rate",
    "actions.chat_message.rooms",
    "actions.chat_message.mention_fraction",
    "actions.chat_message.actor_users",
    "actions.typing.rate",
    "actions.room_presence.rate",
    "actions.room_presence.hold",
    "actions.presence_churn.rate",
    "actions.presence_churn.absence",
    "actions.reconnect_storm.fraction",
    "actions.reconnect_storm.jitter",
    "actions.page_readers.rate",
    "actions.page_readers.dwell",
    "actions.read_list.rate",
    "actions.read_tag.rate",
    "actions.read_random.rate",
    "actions.search.rate",
];

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/scenarios")
}

fn duration(v: &toml::Value) -> Duration {
    parse_duration(v.as_str().unwrap()).unwrap()
}

/// `250ms`-style text of a duration, to the millisecond.
fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

/// The flags that run scenario `file` small; whether it ramps listeners; whether its
/// target is external.
fn small_flags(file: &Path) -> (Vec<String>, bool, bool) {
    let text = std::fs::read_to_string(file).unwrap();
    let toml: toml::Table = toml::from_str(&text).unwrap();
    let mut flags = vec!["--scenario".to_owned(), file.display().to_string()];
    let mut seen = Vec::new();

    // Time: the stages (or the duration), warm-up and storms compressed alike.
    let stages = toml.get("stages").and_then(|s| s.as_array()).cloned().unwrap_or_default();
    let total = if stages.is_empty() {
        toml.get("duration").map_or(Duration::from_secs(10), duration)
    } else {
        stages.iter().map(|s| duration(&s["duration"])).sum()
    };
    let factor = (TRAFFIC.as_secs_f64() / total.as_secs_f64()).min(1.0);
    let scaled = |d: Duration| ms(d.mul_f64(factor));
    let mut ramps = false;
    if stages.is_empty() {
        flags.extend(["--duration".to_owned(), scaled(total)]);
    } else {
        for s in &stages {
            let mut stage = format!("{}:{}", scaled(duration(&s["duration"])), s["scale"].as_float().unwrap());
            if let Some(l) = s.get("listeners") {
                ramps = true;
                stage.push_str(&format!(":{}", l.as_float().unwrap()));
            }
            for key in s.as_table().unwrap().keys() {
                assert!(["duration", "scale", "listeners"].contains(&key.as_str()), "{}: stages.{key}", file.display());
            }
            flags.extend(["--stage".to_owned(), stage]);
        }
        seen.push("stages".to_owned());
    }
    seen.push("duration".to_owned());
    let warmup = toml.get("warmup").map_or(Duration::from_secs(2), duration);
    flags.extend(["--warmup".to_owned(), scaled(warmup)]);
    seen.push("warmup".to_owned());
    let max_lag = toml.get("max_lag").map_or(Duration::from_millis(50), duration);
    flags.extend(["--max-lag".to_owned(), ms(max_lag.max(Duration::from_millis(500)))]);
    seen.push("max_lag".to_owned());
    let seeded = toml.get("seed_bookmarks").and_then(|v| v.as_integer()).unwrap_or(200).min(20);
    flags.extend(["--seed-bookmarks".to_owned(), seeded.to_string()]);
    seen.push("seed_bookmarks".to_owned());
    let external = toml.contains_key("target");
    seen.push("target".to_owned());
    for expr in toml.get("thresholds").and_then(|t| t.as_array()).into_iter().flatten() {
        let gate = Threshold::parse(expr.as_str().unwrap()).unwrap();
        let expr = match gate.metric.unit {
            Unit::Latency => format!("{} < 10s", gate.metric.name),
            _ => gate.expr,
        };
        flags.extend(["--threshold".to_owned(), expr]);
    }
    seen.push("thresholds".to_owned());

    for (key, value) in toml.get("listeners").and_then(|l| l.as_table()).into_iter().flatten() {
        let name = format!("listeners.{key}");
        if KEPT.contains(&name.as_str()) {
            seen.push(name);
            continue;
        }
        let (_, flag, cap) = LISTENER_CAPS
            .iter()
            .find(|(k, _, _)| k == key)
            .unwrap_or_else(|| panic!("{}: [listeners] {key}: add it to LISTENER_CAPS", file.display()));
        let wanted = value.as_integer().unwrap() as u64;
        flags.extend([flag.to_string(), wanted.min(*cap).to_string()]);
        seen.push(name);
    }
    if let Some(storm) = toml.get("actions").and_then(|a| a.get("reconnect_storm")) {
        for at in storm.get("at").and_then(|a| a.as_array()).into_iter().flatten() {
            flags.extend(["--storm-at".to_owned(), scaled(duration(at))]);
        }
        if let Some(every) = storm.get("every") {
            flags.extend(["--storm-every".to_owned(), scaled(duration(every))]);
        }
        seen.extend(["actions.reconnect_storm.at".to_owned(), "actions.reconnect_storm.every".to_owned()]);
    }
    // Every key is scaled above or needs no scaling.
    for (key, value) in &toml {
        let nested: Vec<String> = match value.as_table() {
            Some(t) if key == "actions" => t
                .iter()
                .flat_map(|(kind, table)| {
                    table.as_table().unwrap().keys().map(move |k| format!("actions.{kind}.{k}")).collect::<Vec<_>>()
                })
                .collect(),
            Some(t) => t.keys().map(|k| format!("{key}.{k}")).collect(),
            None => vec![key.clone()],
        };
        for k in nested {
            assert!(
                KEPT.contains(&k.as_str()) || seen.contains(&k),
                "{}: {k} is neither scaled nor known to need no scaling; teach this test",
                file.display()
            );
        }
    }
    (flags, ramps, external)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_scenario_runs_small_and_exits_0() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let readme = std::fs::read_to_string(scenarios_dir().join("README.md")).unwrap();
    let mut ran = Vec::new();
    for file in &files {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(readme.contains(&format!("| `{name}` |")), "{name} is not in fixtures/scenarios/README.md's table");
        if SKIPPED.iter().any(|(skip, _)| *skip == name) {
            continue;
        }
        let (mut flags, ramps, external) = small_flags(file);
        let server = if external { Some(OwnServer::start(true).await) } else { None };
        if let Some(s) = &server {
            flags.extend(["--target".to_owned(), s.base.clone()]);
        }
        let out = tempfile::tempdir().unwrap();
        let mut cmd = sim();
        cmd.arg("run").args(&flags).arg("--quiet").arg("--out").arg(out.path());
        let o = output_of(cmd).await;
        assert_eq!(o.status.code(), Some(0), "{name} {flags:?}\n{}\n{}", stdout(&o), stderr(&o));
        let dir = only_subdir(out.path());
        assert!(assert_footer(&stdout(&o), &dir).starts_with("PASS"), "{name}");
        let r = report_json(&dir);
        check(&name, &r, ramps);
        if let Some(s) = server {
            s.stop().await;
        }
        ran.push(name);
    }
    let skipped: Vec<&str> = SKIPPED.iter().map(|(name, _)| *name).collect();
    assert_eq!(ran.len() + skipped.len(), files.len(), "ran {ran:?}, skipped {skipped:?}");
    assert!(ran.contains(&"smoke".to_owned()) && ran.contains(&"firehose-ramp".to_owned()), "{ran:?}");
}

/// A scenario's report: passed (its own gates and the defaults), everyone joined and
/// stayed, nothing lost or extra in any group that listened; a listener ramp held back
/// listeners without counting them as failures.
fn check(name: &str, r: &Value, ramps: bool) {
    super::assert_passed(r);
    assert!(r["plan"]["scenario"].as_str().unwrap().ends_with(&format!("{name}.toml")), "{name}");
    let l = &r["listeners"];
    assert_eq!((n(&l["failed_to_join"]), n(&l["closed_during_run"])), (0, 0), "{name}: {l}");
    assert_eq!(n(&l["joined"]), n(&l["requested"]), "{name}: {l}");
    assert!(n(&l["joined"]) > 0, "{name}: {l}");
    if ramps {
        assert!(n(&l["ramped"]) > 0, "{name}: the ramp held listeners back: {l}");
    }
    for (group, g) in r["groups"].as_object().unwrap() {
        if n(&g["listeners"]) > 0 {
            super::assert_group_exact(r, group);
        }
    }
    let actions = r["actions"].as_object().unwrap();
    assert!(actions.values().all(|a| n(&a["late"]) == 0 && n(&a["error_count"]) == 0), "{name}: {actions:?}");
    assert!(n(&r["totals"]["sent"]) > 0, "{name}");
}
