//! End-to-end runs at small scale: through the library against the embedded app,
//! through the real binary (reading back the files it wrote), and against servers this
//! test boots itself, where what the listeners were owed is checked independently
//! through the HTTP API (or known because the test's own server decided it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use firehose_sim::plan::args::RunArgs;
use firehose_sim::report::histo::parse_hgrm;
use firehose_sim::report::names;
use firehose_sim::{Plan, run};
use serde_json::{Value, json};

/// 20 firehose + 10 tag listeners, 20 bookmarks/s for 3 s after 0.5 s of warm-up.
/// These runs check delivery, not speed: a debug build on a busy 2-core CI machine
/// (these tests run side by side) may be late by more than the default 50 ms, so the
/// lag allowed is generous; the run must still be valid under it.
const SMALL: &[&str] = &[
    "--max-lag",
    "500ms",
    "--listeners",
    "20",
    "--tag-listeners",
    "10",
    "--rate",
    "20",
    "--duration",
    "3s",
    "--warmup",
    "500ms",
    "--seed-bookmarks",
    "20",
    "--connect-rate",
    "200",
];

/// The plan of `run` with `flags` (after `run`).
fn plan_of(flags: &[&str]) -> Plan {
    let args = RunArgs::try_parse_from(std::iter::once("run").chain(flags.iter().copied())).unwrap();
    Plan::from_args(&args).unwrap()
}

fn plan(extra: &[&str]) -> Plan {
    plan_of(&[SMALL, extra].concat())
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// A count that a report leaves out when it is zero (`detail`, `errors` entries).
fn n_or_0(v: &Value, key: &str) -> u64 {
    v.get(key).map_or(0, n)
}

/// Runs `plan` through the library and judges it on the default gates and the plan's
/// thresholds, as `firehose-sim run` does.
async fn run_judged(plan: Plan) -> firehose_sim::Report {
    let thresholds = plan.thresholds.clone();
    let mut report = run(plan).await.expect("run");
    report.judge(&thresholds, false);
    report
}

/// The report of a run through the library, as JSON.
fn json_of(report: &firehose_sim::Report) -> Value {
    serde_json::to_value(&report.model).unwrap()
}

/// The verdict passed: valid, complete, every gate (the three defaults at least).
fn assert_passed(r: &Value) {
    let v = &r["verdict"];
    assert_eq!(v["valid"], true, "invalid: {}", v["invalid_reasons"]);
    assert!(v.get("partial").is_none(), "partial: {}", v["partial"]);
    assert_eq!(v["failed_gates"], json!([]), "{}", v["line"]);
    assert_eq!((&v["passed"], n(&v["exit_code"])), (&json!(true), 0), "{}", v["line"]);
    assert!(v["line"].as_str().unwrap().starts_with("PASS"), "{}", v["line"]);
    // Every default gate was judged, unless a threshold of its family replaced it.
    let gates = r["thresholds"].as_array().unwrap();
    for gate in firehose_sim::report::names::DEFAULT_GATES {
        let family = names::family(gate.split(' ').next().unwrap());
        let judged = gates.iter().any(|t| t["default"] == true && t["expr"] == gate);
        let replaced =
            gates.iter().any(|t| t["default"] == false && names::family(t["metric"].as_str().unwrap()) == family);
        assert!(judged != replaced, "default gate {gate}: judged {judged}, replaced {replaced}: {gates:?}");
    }
}

/// Nothing lost, nothing extra, in group `group`; what it was owed.
fn assert_group_exact(r: &Value, group: &str) -> u64 {
    let g = &r["groups"][group];
    assert!(g.is_object(), "no groups.{group}: {}", r["groups"]);
    for zero in
        ["lost", "listeners_with_loss", "duplicates", "excess", "unowed", "private_leak", "reordered", "decode_errors"]
    {
        assert_eq!(n(&g[zero]), 0, "{group}.{zero}: {g}");
    }
    assert_eq!(n(&g["received"]), n(&g["expected"]), "{group}: {g}");
    n(&g["expected"])
}

/// `deliveries_per_s` counts owed deliveries of measured events received once: the
/// measured deliveries (each timed once) over the longer of the measured window and
/// the delivery span.
fn assert_deliveries_per_s(r: &Value, group: &str) {
    let g = &r["groups"][group];
    let over = f(&g["delivery_span_s"]).max(f(&r["window"]["measured_s"]));
    let want = n(&g["latency"]["count"]) as f64 / over;
    assert!((f(&g["deliveries_per_s"]) - want).abs() < 1e-6 * want.max(1.0), "{group}: {g}");
}

/// Exactly-once delivery of every public event to every joined listener it was owed
/// to, nothing else; the firehose figure checked against the request counts.
fn assert_exact_delivery(r: &Value) {
    assert_eq!(r["schema"], "firehose-sim/report/v2");
    assert_passed(r);
    let a = &r["actions"]["create_bookmark"];
    assert_eq!((n(&a["scheduled"]), n(&a["sent"]), n(&a["ok"])), (60, 60, 60), "errors: {}", a["errors"]);
    assert_eq!((n(&a["error_count"]), n(&a["late"]), n(&a["skipped"])), (0, 0, 0), "{a}");
    let (public, private) = (n_or_0(&a["detail"], "created_public"), n_or_0(&a["detail"], "created_private"));
    assert_eq!(public + private, 60, "{a}");
    assert!(private < 60 && public > 0, "{a}");
    assert_eq!(n(&a["latency_corrected"]["count"]), 50, "warm-up requests are not measured");
    assert_eq!(n(&a["latency_uncorrected"]["count"]), 50);
    assert_eq!(n(&a["lag"]["count"]), 60, "every request's send lag");

    let l = &r["listeners"];
    assert_eq!((n(&l["requested"]), n(&l["joined"])), (30, 30), "failures: {}", l["failures"]);
    assert_eq!((n(&l["failed_to_join"]), n(&l["ramped"]), n(&l["closed_during_run"])), (0, 0, 0), "{l}");
    assert_eq!(n(&l["connect"]["count"]), 30);
    let tag_listeners: u64 = r["groups"]["tag"]["topic_listeners"].as_object().unwrap().values().map(n).sum();
    assert_eq!(tag_listeners, 10);

    for group in ["firehose", "tag"] {
        assert_group_exact(r, group);
        assert_eq!(n(&r["groups"][group]["gaps"]), 0, "{group}");
        assert_deliveries_per_s(r, group);
    }
    let firehose = &r["groups"]["firehose"];
    assert_eq!((n(&firehose["listeners"]), n(&firehose["topics"])), (20, 1));
    assert_eq!(n(&firehose["expected"]), public * 20);
    assert!(n(&firehose["latency"]["count"]) > 0);
    // Every measured public event reached 50 %, 99 % and all of the firehose audience
    // exactly once each, and never reached all before it reached half.
    let reach = &firehose["reach"];
    let measured_public = n(&firehose["latency"]["count"]) / 20;
    for mark in ["pct_50", "pct_99", "pct_100"] {
        assert_eq!(n(&reach[mark]["count"]), measured_public, "{mark}: {reach}");
    }
    let ms = |mark: &str, stat: &str| f(&reach[mark][stat]);
    assert!(
        ms("pct_50", "p50_ms") <= ms("pct_100", "p50_ms") && ms("pct_50", "max_ms") <= ms("pct_100", "max_ms"),
        "{reach}"
    );
    assert!(ms("pct_100", "max_ms") <= f(&firehose["latency"]["max_ms"]) + 0.01, "{reach}");
    let tag = &r["groups"]["tag"];
    assert_eq!(n(&tag["listeners"]), 10);
    assert!(n(&tag["expected"]) <= public * 10);

    // The totals are the sums over kinds and groups.
    let t = &r["totals"];
    let groups = r["groups"].as_object().unwrap();
    for field in ["expected", "received", "lost", "duplicates", "excess", "private_leak", "reordered", "decode_errors"]
    {
        assert_eq!(n(&t[field]), groups.values().map(|g| n(&g[field])).sum::<u64>(), "totals.{field}");
    }
    assert_eq!((n(&t["sent"]), n(&t["ok"]), n(&t["errors"]), n(&t["late"])), (60, 60, 0, 0), "{t}");
    let per_s: f64 = groups.values().map(|g| f(&g["deliveries_per_s"])).sum();
    assert!((f(&t["deliveries_per_s"]) - per_s).abs() < 1e-6 * per_s, "{t}");
    assert_eq!(r["window"]["drain_timed_out"], false);
    assert_eq!(r["scheduler"]["max_lag_allowed_ms"], 500.0);
    assert!(f(&r["scheduler"]["max_lag_ms"]) <= 500.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_run_through_the_library_delivers_everything_exactly_once() {
    let report = run_judged(plan(&[])).await;
    let json = json_of(&report);
    assert_exact_delivery(&json);
    assert_eq!(json["target"]["kind"], "embedded");
    assert_eq!(json["plan"]["bookmarks"]["rate_per_s"], 20.0);
    assert_eq!(json["plan"]["traffic"]["duration_s"], 3.0);
    assert!(json["simulator"]["rss_per_listener_bytes"].is_number());
    assert_eq!(report.histograms.len(), json["histograms"].as_object().unwrap().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_run_owes_tag_listeners_exactly_the_matching_tags() {
    // A server of our own, so the bookmarks can be read back after the run.
    let server = OwnServer::start(true).await;

    let r = json_of(&run_judged(plan(&["--target", &server.base])).await);
    assert_exact_delivery(&r);
    assert_eq!(r["target"]["kind"], "external");

    // Σ over this run's public bookmarks of the tag listeners following one of its tags.
    let marker = format!("#sim-{}-", r["run_id"].as_str().unwrap());
    let per_tag: BTreeMap<String, u64> =
        r["groups"]["tag"]["topic_listeners"].as_object().unwrap().iter().map(|(t, c)| (t.clone(), n(c))).collect();
    let (mut ours, mut owed) = (0, 0);
    for bookmark in all_public_bookmarks(&server.base).await {
        if !bookmark["url"].as_str().unwrap().contains(&marker) {
            continue;
        }
        ours += 1;
        let tags: Vec<&str> = bookmark["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        owed += tags.iter().map(|t| per_tag.get(*t).copied().unwrap_or(0)).sum::<u64>();
    }
    assert_eq!(ours, n(&r["actions"]["create_bookmark"]["detail"]["created_public"]));
    assert_eq!(n(&r["groups"]["tag"]["expected"]), owed);
    assert_eq!(n(&r["groups"]["tag"]["received"]), owed);
    assert!(r["server"]["rss_per_socket_bytes"].is_number(), "server: {}", r["server"]);
    server.stop().await;
}

/// A firehose server this test boots itself on a free port, as an external target is
/// run: without per-user limits (or with the app's defaults), and never with a sign-up
/// budget, since a run creates all its accounts from this one address (as a load test's
/// server is started with `--rate-signups off`).
struct OwnServer {
    /// Its data dir; kept until the server stopped.
    _dir: tempfile::TempDir,
    server: firehose_app::server::Running,
    stop: tokio::sync::oneshot::Sender<()>,
    base: String,
}

impl OwnServer {
    async fn start(limits_off: bool) -> OwnServer {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let mut config = firehose_app::config::Config::for_data_dir(dir.path());
        if limits_off {
            config.limits = firehose_app::ratelimit::RateLimits::off();
        }
        config.limits.signups = None;
        let server = firehose_app::server::start(listener, config, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
        let base = format!("http://{}", server.addr);
        OwnServer { _dir: dir, server, stop, base }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.server.wait().await;
    }
}

async fn all_public_bookmarks(base: &str) -> Vec<Value> {
    let http = reqwest::Client::new();
    let mut all = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let mut url = format!("{base}/api/bookmarks?limit=100");
        if let Some(b) = before {
            url.push_str(&format!("&before_id={b}"));
        }
        let page: Value = http.get(url).send().await.unwrap().json().await.unwrap();
        let data = page["data"].as_array().unwrap().clone();
        before = data.last().and_then(|b| b["id"].as_u64());
        let done = data.len() < 100;
        all.extend(data);
        if done || before.is_none() {
            return all;
        }
    }
}

fn sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_firehose-sim"))
}

/// Runs `cmd` off the test's runtime (a run's binary takes seconds).
async fn output_of(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn only_subdir(dir: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.into_iter().next().unwrap()
}

fn report_json(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

/// The terminal's last lines: the verdict, then where report.html and report.json are
/// (in `dir`, the run's folder). The verdict line.
fn assert_footer(stdout: &str, dir: &Path) -> String {
    let last: Vec<&str> = stdout.trim_end().lines().rev().take(3).collect();
    assert_eq!(last.len(), 3, "{stdout}");
    assert_eq!(last[0], format!("report.json     {}", dir.join("report.json").display()), "{stdout}");
    assert_eq!(last[1], format!("report.html     {}", dir.join("report.html").display()), "{stdout}");
    assert!(last[2].starts_with("PASS") || last[2].starts_with("FAIL (exit "), "{stdout}");
    last[2].to_owned()
}

#[test]
fn the_binary_runs_embedded_and_writes_report_and_hgrm_files() {
    let out = tempfile::tempdir().unwrap();
    let output = sim().arg("run").args(SMALL).arg("--out").arg(out.path()).output().unwrap();
    let stdout = stdout(&output);
    assert!(output.status.success(), "{:?}\n{stdout}\n{}", output.status, stderr(&output));
    assert!(stdout.starts_with("plan\n"), "the resolved plan is printed first:\n{stdout}");
    assert!(stdout.contains("default gates     errors == 0, loss == 0, private_leak == 0"), "{stdout}");
    let dir = only_subdir(out.path());
    let line = assert_footer(&stdout, &dir);
    assert_eq!(line, "PASS: valid, complete, 3 gates passed");
    // The embedded target's port is not shown as if it meant something.
    assert!(!stdout.contains("127.0.0.1:"), "{stdout}");

    let r = report_json(&dir);
    assert_exact_delivery(&r);
    assert_eq!(r["verdict"]["line"], line);
    let histograms = r["histograms"].as_object().unwrap();
    for name in [
        "action_create_bookmark_corrected",
        "action_create_bookmark_uncorrected",
        "action_create_bookmark_lag",
        "connect",
        "delivery_firehose",
        "delivery_tag",
    ] {
        assert!(histograms.contains_key(name), "{name} missing: {histograms:?}");
    }
    for group in ["firehose", "tag"] {
        for pct in [50, 99, 100] {
            assert!(histograms.contains_key(&format!("reach_{group}_{pct}")), "{histograms:?}");
        }
    }
    for (name, file) in histograms {
        let text = std::fs::read_to_string(dir.join(file.as_str().unwrap())).unwrap();
        let hgrm = parse_hgrm(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        // Every histogram feeds exactly the summary its path names.
        let path = r["histogram_paths"][name].as_str().unwrap_or_else(|| panic!("{name} has no histogram_paths entry"));
        let summary = r.pointer(path).unwrap_or_else(|| panic!("{name}: {path} is not in the report"));
        assert_eq!(hgrm.total_count, n(&summary["count"]), "{name} at {path}");
        if name == "delivery_firehose" {
            assert_eq!(hgrm.total_count, n(&r["groups"]["firehose"]["latency"]["count"]));
            assert!(hgrm.total_count > 0);
            assert_eq!(hgrm.rows.last().unwrap().percentile, 1.0);
        }
    }
}

#[test]
fn the_binary_exits_3_and_still_reports_when_the_generator_misses_its_schedule() {
    // No lag at all is allowed, so any scheduling jitter invalidates the run.
    let out = tempfile::tempdir().unwrap();
    let args = ["run", "--listeners", "0", "--rate", "20", "--duration", "1s", "--warmup", "0s", "--max-lag", "0ms"];
    let output = sim().args(args).args(["--seed-bookmarks", "0", "--out"]).arg(out.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let dir = only_subdir(out.path());
    let line = assert_footer(&stdout(&output), &dir);
    assert!(line.starts_with("FAIL (exit 3): invalid run"), "{line}");
    let r = report_json(&dir);
    let v = &r["verdict"];
    assert_eq!((&v["valid"], &v["passed"], n(&v["exit_code"])), (&json!(false), &json!(false), 3));
    let reason = v["invalid_reasons"][0].as_str().unwrap();
    assert!(reason.starts_with("actions were sent later than --max-lag (0 ms)"), "{reason}");
    let late = n(&r["actions"]["create_bookmark"]["late"]);
    assert!(late > 0 && reason.contains(&format!("create_bookmark: {late} of 20")), "{reason}");
    assert!(reason.contains("--agents") && reason.contains("load average"), "what to do, and the load: {reason}");
}

#[test]
fn the_binary_exits_2_on_a_bad_plan_and_4_on_an_unreachable_target() {
    let out = sim().args(["run", "--rate", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--rate must be a positive number"));

    // Port 9 (discard) on loopback: nothing listens there in a test environment.
    let out =
        sim().args(["run", "--target", "http://127.0.0.1:9", "--duration", "1s", "--warmup", "0s"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("unreachable"));

    let help = sim().args(["run", "--help"]).output().unwrap();
    let help = stdout(&help);
    assert!(help.contains("Exit codes:"), "{help}");
    for heading in ["Plan:", "Target:", "Listeners:", "Bookmarks:", "Traffic:", "Gates and reports:"] {
        assert!(help.contains(heading), "run --help is grouped under headings: {heading} missing\n{help}");
    }
}

#[test]
fn a_failing_threshold_exits_5_and_junit_carries_the_failure() {
    // The smoke scenario with typed flags over it: a shorter run, and one gate nothing
    // can meet beside one that holds (and replaces the default `loss == 0`).
    let out = tempfile::tempdir().unwrap();
    let output = sim()
        .args(["run", "--scenario", "smoke", "--duration", "2s", "--out"])
        .arg(out.path())
        .args(["--threshold", "delivery.firehose.p99 < 1us", "--threshold", "loss == 0"])
        .output()
        .unwrap();
    let stdout = stdout(&output);
    assert_eq!(output.status.code(), Some(5), "{stdout}\n{}", stderr(&output));
    assert!(stdout.contains("scenario") && stdout.contains("smoke.toml"), "{stdout}");
    assert!(stdout.contains("FAIL  delivery.firehose.p99 < 1us"), "{stdout}");
    let dir = only_subdir(out.path());
    let line = assert_footer(&stdout, &dir);
    assert!(line.starts_with("FAIL (exit 5): gate `delivery.firehose.p99 < 1us` failed (actual "), "{line}");

    let r = report_json(&dir);
    // The typed flag won; the file's values filled the rest.
    let p = &r["plan"];
    assert_eq!(p["traffic"]["duration_s"], 2.0);
    assert_eq!((n(&p["bookmarks"]["listeners"]), n(&p["bookmarks"]["tag_listeners"])), (20, 10));
    assert!(p["scenario"].as_str().unwrap().ends_with("fixtures/scenarios/smoke.toml"));
    assert_eq!(r["verdict"]["failed_gates"], json!(["delivery.firehose.p99 < 1us"]));
    // The defaults not replaced come first, then the thresholds in the order given.
    let t = r["thresholds"].as_array().unwrap();
    let exprs: Vec<(&str, bool)> = t.iter().map(|t| (t["expr"].as_str().unwrap(), t["default"] == true)).collect();
    assert_eq!(
        exprs,
        [
            ("errors == 0", true),
            ("private_leak == 0", true),
            ("delivery.firehose.p99 < 1us", false),
            ("loss == 0", false)
        ]
    );
    assert_eq!((&t[2]["passed"], &t[2]["unit"]), (&json!(false), &json!("ms")));
    assert!(f(&t[2]["actual"]) > 0.001);
    assert_eq!((&t[3]["actual"], &t[3]["passed"]), (&json!(0), &json!(true)));

    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(junit.contains(r#"tests="5" failures="1""#), "{junit}");
    assert!(
        junit.contains(r#"<testcase classname="firehose-sim.thresholds" name="delivery.firehose.p99 &lt; 1us">"#),
        "{junit}"
    );
    assert!(junit.contains(r#"<testcase classname="firehose-sim.default_gates" name="errors == 0">"#), "{junit}");
    assert!(junit.contains("<failure message=\"actual ") && junit.contains("expected &lt; 0.001 ms"), "{junit}");
    assert_eq!(junit.matches("<failure").count(), 1, "{junit}");
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(summary.lines().next().unwrap().contains("❌ FAIL (exit 5)"), "{summary}");
    assert!(summary.contains("| `loss == 0` | 0 | ✅ pass |"), "{summary}");
    assert!(summary.contains("| `errors == 0` (default) | 0 | ✅ pass |"), "{summary}");
}

#[test]
fn bad_thresholds_and_scenarios_are_usage_errors_before_any_run() {
    let out =
        sim().args(["run", "--scenario", "smoke", "--threshold", "delivery.firehose.p98 < 5ms"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    // The few nearest names, not the whole catalogue.
    assert!(err.contains("unknown metric `delivery.firehose.p98`; did you mean `"), "{err}");
    let near = err.split("did you mean ").nth(1).unwrap().split('?').next().unwrap();
    let near: Vec<&str> = near.split(", ").map(|n| n.trim_matches('`')).collect();
    assert!(
        near.contains(&"delivery.firehose.p99") && near.len() <= 5,
        "a few names, the nearest among them: {near:?}"
    );
    assert!(out.stdout.is_empty(), "nothing ran");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chat.toml");
    std::fs::write(&file, "duration = \"5s\"\n\n[actions.page_readers]\nrate = 0\n").unwrap();
    let out = sim().arg("run").arg("--scenario").arg(&file).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("chat.toml:4:8: actions.page_readers.rate must be a positive number"), "{err}");

    let out = sim().args(["run", "--scenario", "no-such-scenario"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("shipped scenarios: ") && err.contains("chat-heavy") && err.contains("smoke"), "{err}");
}

#[test]
fn metrics_lists_every_metric_grouped_with_units() {
    let out = sim().arg("metrics").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for name in names::catalogue().iter().map(|m| &m.name) {
        assert!(text.lines().any(|l| l.split_whitespace().next() == Some(name)), "{name} not listed:\n{text}");
    }
    for section in ["run", "listeners", "group firehose", "action create_bookmark"] {
        assert!(text.lines().any(|l| l.trim() == section), "{section}:\n{text}");
    }
    for unit in ["ms (give ms, s or us)", "per second", "fraction", "count", "true/false"] {
        assert!(text.contains(unit), "units shown: {unit}\n{text}");
    }
}

/// The committed smoke baseline, with every compared latency multiplied by `factor`.
fn slower_baseline(dir: &Path, factor: f64) -> PathBuf {
    let mut r: Value = serde_json::from_str(&std::fs::read_to_string(baseline_path()).unwrap()).unwrap();
    let scale = |s: &mut Value| {
        for p in ["p50_ms", "p99_ms"] {
            s[p] = json!(f(&s[p]) * factor);
        }
    };
    scale(&mut r["actions"]["create_bookmark"]["latency_corrected"]);
    scale(&mut r["groups"]["firehose"]["latency"]);
    let path = dir.join(format!("x{factor}.json"));
    std::fs::write(&path, serde_json::to_string(&r).unwrap()).unwrap();
    path
}

fn baseline_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/baselines/smoke.json")
}

#[test]
fn compare_exits_6_on_a_regression_and_0_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = baseline_path();
    let compare = |new: &Path, bound: &str| {
        sim()
            .arg("compare")
            .arg(&baseline)
            .arg(new)
            .args(["--max-regression", bound, "--min-change", "0ms"])
            .output()
            .unwrap()
    };

    // The committed baseline is a report this simulator reads.
    let same = compare(&baseline, "10%");
    let table = stdout(&same);
    assert_eq!(same.status.code(), Some(0), "{table}{}", stderr(&same));
    assert!(
        table.contains("| delivery.firehose.p99 |") && table.contains("| actions.create_bookmark.p99 |"),
        "{table}"
    );
    assert!(table.contains("PASS"), "{table}");

    // Ten times slower: a regression at 400%, not at 1000%.
    let slower = slower_baseline(dir.path(), 10.0);
    let out = compare(&slower, "400%");
    let table = stdout(&out);
    assert_eq!(out.status.code(), Some(6), "{table}");
    assert!(table.contains("REGRESSED") && table.contains("+900.0%"), "{table}");
    assert_eq!(compare(&slower, "1000%").status.code(), Some(0));
    // Faster is never a regression.
    assert_eq!(compare(&slower_baseline(dir.path(), 0.5), "0%").status.code(), Some(0));

    let missing = compare(Path::new("/nonexistent/report.json"), "10%");
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(compare(&baseline, "lots").status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_goes_away_midway_still_yields_a_report_whose_gates_fail() {
    let server = OwnServer::start(true).await;
    let plan = plan(&["--target", &server.base, "--threshold", "errors.rate == 0", "--threshold", "loss == 0"]);
    let thresholds = plan.thresholds.clone();
    let OwnServer { _dir, server, stop, .. } = server;
    // Stop the server a second into the traffic phase (3 s long), however long seeding
    // took on a busy machine: traffic starts once every listener has joined.
    let stop_midway = async {
        let joins = &server.state().metrics.joins;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while joins.load(std::sync::atomic::Ordering::Relaxed) < 30 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
        let _ = stop.send(());
        server.wait().await;
    };
    let (result, ()) = tokio::join!(run(plan), stop_midway);
    let mut report = result.expect("a partial run still reports");
    report.judge(&thresholds, false);
    let r = json_of(&report);
    assert_eq!(n(&r["listeners"]["closed_during_run"]), 30, "{}", r["listeners"]);
    let a = &r["actions"]["create_bookmark"];
    assert!(n(&a["error_count"]) > 0, "{a}");
    assert!(n(&a["ok"]) > 0, "what was measured before is kept");
    assert!(!report.thresholds_passed());
    // The explicit gates replace their defaults; the private-leak default stays.
    let exprs: Vec<&str> = r["thresholds"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap()).collect();
    assert_eq!(exprs, ["private_leak == 0", "errors.rate == 0", "loss == 0"]);
    assert_eq!(r["thresholds"][1]["passed"], json!(false), "the errors gate fails: {}", r["thresholds"]);
    // Loss is evaluated on what was measured. Whether it is zero depends on timing: a
    // request acknowledged during shutdown may broadcast to sockets already closed.
    assert!(r["thresholds"][2]["actual"].is_number(), "{}", r["thresholds"]);
    // A failed gate outranks the partial run.
    let v = &r["verdict"];
    assert_eq!(n(&v["exit_code"]), 5, "{v}");
    assert!(v["partial"].as_str().unwrap().contains("the target closed 30 listener sockets"), "{v}");
}

/// `run --scenario rooms` (chat rooms under load; formerly `firehose-sim rooms`).
#[path = "sim/rooms.rs"]
mod rooms;

/// `firehose-sim knee` (stepping a rate until an SLO breaks).
#[path = "sim/knee.rs"]
mod knee;

/// `firehose-sim demo` (a human-paced firehose into a running server).
#[path = "sim/demo.rs"]
mod demo;

/// A run over time: the timeline, `.hlog` interval logs, `report.html`, live progress.
#[path = "sim/timeline.rs"]
mod timeline;

/// Stages, presence churn and reconnect storms in `firehose-sim run`.
#[path = "sim/lifecycle.rs"]
mod lifecycle;

/// Likes, unlikes, deletions, chat messages and typing with the room/likes/user groups.
#[path = "sim/actions.rs"]
mod actions;

/// Another Phoenix app through a target profile (the test's own server, which can also
/// fail creates, drop and duplicate frames); the latency proofs; bad targets.
#[path = "sim/phoenix_target.rs"]
mod phoenix_target;

/// Verdicts that are true: a duplicate never hides a loss, errors fail by default.
#[path = "sim/verdicts.rs"]
mod verdicts;

/// The lag rule in every scheduled kind.
#[path = "sim/lag.rs"]
mod lag;

/// Every shipped scenario at a small scale.
#[path = "sim/scenarios.rs"]
mod scenarios;

/// `https://` and `wss://` targets through a local TLS endpoint.
#[path = "sim/tls.rs"]
mod tls;

/// Source addresses, fd-limit refusals, `run --agents 2`, `merge`.
#[path = "sim/scale.rs"]
mod scale;

/// Page listeners and page readers (`page:<path>` presence) in `firehose-sim run`.
#[path = "sim/pages.rs"]
mod pages;

/// Listener ramps: a stage's `listeners` fraction, late joiners accounted by `seq`.
#[path = "sim/ramp.rs"]
mod ramp;

/// `run --dashboard`: the live page and its pushed frames during a real run.
#[path = "sim/dashboard.rs"]
mod dashboard;

/// SIGINT/SIGTERM during `run`: a partial report, exit 9; with `--agents` too.
#[path = "sim/interrupt.rs"]
mod interrupt;

/// Several targets: listeners, sockets and actions spread over them, a target that goes
/// away, agents starting on different targets.
#[path = "sim/targets.rs"]
mod targets;
