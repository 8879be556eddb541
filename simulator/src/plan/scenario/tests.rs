//! Tests of scenario files: what a file sets, what typed flags override, and every bad
//! file refused with its line and key.

use std::time::Duration;

use super::*;
use crate::plan::args::RunArgs;
use crate::plan::{Origin, Plan, PlanError, TargetSpec};

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(Path::new("bad.toml"), text.to_owned())
}

/// The plan of `text` under the flags `flags` (no fd budget).
fn plan(text: &str, flags: &[&str]) -> Result<Plan, PlanError> {
    let scenario = parse(text)?;
    let args = RunArgs::try_parse_from(std::iter::once("run").chain(flags.iter().copied())).unwrap();
    Plan::from_layers(&args, Some(&scenario), None)
}

const GOOD: &str = r#"
duration = "4s"
warmup = "1s"
seed = 7
thresholds = ["loss == 0", "delivery.firehose.p99 < 250ms"]

[listeners]
firehose = 12
tag = 3
connect_rate = 100

[actions.create_bookmark]
rate = 10
private_fraction = 0.5
"#;

#[test]
fn a_scenario_sets_the_plan() {
    let p = plan(GOOD, &[]).unwrap();
    let (b, t) = (&p.bookmarks, &p.traffic);
    assert_eq!((b.listeners, b.tag_listeners, t.connect_rate_per_s), (12, 3, 100.0));
    assert_eq!((b.rate_per_s, b.private_fraction, t.seed), (10.0, 0.5, 7));
    assert_eq!((t.duration, t.warmup), (Duration::from_secs(4), Duration::from_secs(1)));
    assert_eq!(
        p.thresholds.iter().map(|t| t.expr.as_str()).collect::<Vec<_>>(),
        ["loss == 0", "delivery.firehose.p99 < 250ms"]
    );
    assert_eq!(p.scenario.as_deref(), Some(Path::new("bad.toml")));
    // Keys it leaves out keep the flags' defaults.
    assert_eq!(
        (t.max_lag, b.seed_bookmarks, p.target.spec.clone()),
        (Duration::from_millis(50), 200, TargetSpec::Embedded)
    );
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["scenario"], "bad.toml");
    assert_eq!(json["thresholds"][1], "delivery.firehose.p99 < 250ms");
}

#[test]
fn flags_typed_override_the_file_and_defaults_do_not() {
    // `--rate 20` equals nothing in the file; `--seed 42` is the flag's default value
    // typed explicitly, and must still win over the file's 7.
    let p =
        plan(GOOD, &["--rate", "20", "--seed", "42", "--tag-listeners", "0", "--threshold", "valid == true"]).unwrap();
    assert_eq!((p.bookmarks.rate_per_s, p.traffic.seed, p.bookmarks.tag_listeners), (20.0, 42, 0));
    assert_eq!(p.bookmarks.listeners, 12, "untouched flags keep the file's value");
    assert_eq!(p.traffic.duration, Duration::from_secs(4));
    assert_eq!(p.thresholds.len(), 1, "--threshold replaces the file's list");
    let p = plan(GOOD, &["--target", "http://127.0.0.1:4000"]).unwrap();
    assert_eq!(p.target.spec, TargetSpec::External { urls: vec!["http://127.0.0.1:4000".into()] });
}

#[test]
fn unknown_keys_are_named_with_their_line() {
    let err = parse("duration = \"3s\"\n\n[actions.create_bookmark]\nrte = 20\n").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ScenarioError::Parse { line: 4, column: 1, .. }), "{err:?}");
    assert!(text.starts_with("bad.toml:4:1: unknown field `rte`"), "{text}");
    assert!(text.contains("expected `rate` or `private_fraction`"), "{text}");
    assert!(text.contains("4 | rte = 20"), "the line is shown:\n{text}");

    let err = parse("listner = 3\n").unwrap_err().to_string();
    assert!(err.contains("unknown field `listner`") && err.contains("`listeners`"), "{err}");
}

#[test]
fn wrong_types_say_what_was_expected() {
    let err = parse("[actions.create_bookmark]\nrate = \"fast\"\n").unwrap_err();
    assert!(matches!(err, ScenarioError::Parse { line: 2, column: 8, .. }), "{err:?}");
    assert!(err.to_string().contains("invalid type: string \"fast\", expected f64"), "{err}");
    assert!(err.to_string().contains("actions.create_bookmark.rate: invalid type"), "the key is named: {err}");

    let err = parse("duration = 10\n").unwrap_err().to_string();
    assert!(err.starts_with("bad.toml:1:12:") && err.contains("expected a string"), "{err}");

    let err = parse("[listeners]\nfirehose = -5\n").unwrap_err().to_string();
    assert!(err.starts_with("bad.toml:2:12:") && err.contains("-5") && err.contains("u32"), "{err}");
    assert!(err.contains("listeners.firehose:"), "{err}");

    let err = parse("duration = \n").unwrap_err().to_string();
    assert!(err.starts_with("bad.toml:1:"), "syntax errors are located too: {err}");
}

#[test]
fn zero_or_negative_rates_point_at_the_key() {
    let err = plan("[actions.create_bookmark]\nrate = 0\n", &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bad.toml:2:8: actions.create_bookmark.rate must be a positive number per second, got 0"
    );
    let err = plan("[listeners]\nconnect_rate = -1.5\n", &[]).unwrap_err();
    assert!(
        matches!(&err, PlanError::Rate { origin: Origin::File(p), value } if p.line == 2 && *value == -1.5),
        "{err:?}"
    );
    // A flag that fixes the file's value makes the plan valid.
    assert!(plan("[actions.create_bookmark]\nrate = 0\n", &["--rate", "5"]).is_ok());
}

#[test]
fn durations_and_warmup_are_checked_with_their_place() {
    let err = plan("duration = \"soon\"\n", &[]).unwrap_err().to_string();
    assert!(err.starts_with("bad.toml:1:12: duration \"soon\": not a number"), "{err}");
    let err = plan("duration = \"0s\"\nwarmup = \"0s\"\n", &[]).unwrap_err().to_string();
    assert_eq!(err, "bad.toml:1:12: duration must be longer than zero");
    let err = plan("duration = \"2s\"\nwarmup = \"2s\"\n", &[]).unwrap_err().to_string();
    assert!(err.starts_with("bad.toml:2:10: warmup (2s) must be shorter than bad.toml:1:12: duration (2s)"), "{err}");
    // Mixed origins: the warm-up from the file, the duration typed.
    let err = plan("warmup = \"5s\"\n", &["--duration", "3s"]).unwrap_err().to_string();
    assert!(err.contains("warmup (5s) must be shorter than --duration (3s)"), "{err}");
    let err = plan("[actions.create_bookmark]\nprivate_fraction = 2\n", &[]).unwrap_err().to_string();
    assert!(
        err.starts_with("bad.toml:2:20: actions.create_bookmark.private_fraction must be between 0 and 1"),
        "{err}"
    );
    let err = plan("target = \"ftp://x\"\n", &[]).unwrap_err().to_string();
    assert!(err.starts_with("bad.toml:1:10: target \"ftp://x\""), "{err}");
}

#[test]
fn a_scenario_names_one_target_or_a_list_and_flags_replace_the_list() {
    let one = plan("target = \"http://127.0.0.1:4000\"\n", &[]).unwrap();
    assert_eq!(one.target.spec, TargetSpec::External { urls: vec!["http://127.0.0.1:4000".into()] });
    let text = "target = [\"http://127.0.0.1:4000\", \"http://127.0.0.1:4001/\", \"http://127.0.0.1:4000\"]\n";
    let list = plan(text, &[]).unwrap();
    let urls = ["http://127.0.0.1:4000", "http://127.0.0.1:4001", "http://127.0.0.1:4000"];
    assert_eq!(list.target.spec, TargetSpec::External { urls: urls.map(String::from).to_vec() });
    assert!(list.target.describe().contains("http://127.0.0.1:4001"), "{}", list.target.describe());
    let typed = plan(text, &["--target", "http://10.0.0.1:4000"]).unwrap();
    assert_eq!(typed.target.spec, TargetSpec::External { urls: vec!["http://10.0.0.1:4000".into()] });
    assert_eq!(plan("target = \"embedded\"\n", &[]).unwrap().target.spec, TargetSpec::Embedded);
    // Errors point at the list.
    let err = plan("target = [\"embedded\", \"http://127.0.0.1:4000\"]\n", &[]).unwrap_err().to_string();
    assert!(err.starts_with("bad.toml:1:10: target `embedded` (the in-process app)"), "{err}");
    assert!(err.contains("cannot be repeated or mixed with URLs"), "{err}");
    let err = plan("target = [\"http://a:1\", \"ws://b:1\"]\n", &[]).unwrap_err().to_string();
    assert!(err.starts_with("bad.toml:1:10: target \"ws://b:1\": only http:// and https://"), "{err}");
    let err = parse("target = []\n").unwrap_err().to_string();
    assert!(err.contains("at least one base URL"), "{err}");
    let err = parse("target = 4000\n").unwrap_err().to_string();
    assert!(err.contains("a base URL or a list of base URLs"), "{err}");
}

#[test]
fn thresholds_in_a_file_are_checked_with_their_place() {
    let err = plan("thresholds = [\"loss == 0\",\n  \"delivery.firehose.p98 < 1ms\"]\n", &[]).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("bad.toml:2:3: thresholds: threshold"), "{text}");
    assert!(text.contains("unknown metric `delivery.firehose.p98`"), "{text}");
}

#[test]
fn page_listeners_and_readers_are_read_and_checked_with_their_place() {
    let p = plan("[listeners]\npage = 6\n[actions.page_readers]\nrate = 3\ndwell = \"2s\"\n", &[]).unwrap();
    assert_eq!(p.pages.listeners, 6);
    let r = p.pages.readers.clone().unwrap();
    assert_eq!((r.rate_per_s, r.dwell), (3.0, Duration::from_secs(2)));
    assert!(p.to_string().contains("page readers"), "{p}");
    // Flags replace the file's values.
    let p = plan("[actions.page_readers]\nrate = 3\n", &["--page-reader-rate", "5", "--page-dwell", "1s"]).unwrap();
    let r = p.pages.readers.unwrap();
    assert_eq!((r.rate_per_s, r.dwell), (5.0, Duration::from_secs(1)));
    let err = plan("[actions.create_bookmark]\nrate = 5\n\n[actions.page_readers]\nrate = 0\n", &[]).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("bad.toml:5:8: actions.page_readers.rate"), "{text}");
    let err = plan("[actions.page_readers]\nrate = 2\ndwell = \"soon\"\n", &[]).unwrap_err().to_string();
    assert!(err.starts_with("bad.toml:3:9: actions.page_readers.dwell"), "{err}");
    let err = plan("[actions.page_readers]\ndwell = \"1s\"\n", &[]).unwrap_err().to_string();
    assert!(err.contains("actions.page_readers") && err.contains("needs a `rate`"), "{err}");
    let err = parse("[listeners]\npage = -1\n").unwrap_err().to_string();
    assert!(err.starts_with("bad.toml:2:8:"), "{err}");
    let err = parse("[actions.page_readers]\nrate = 1\ndwel = \"1s\"\n").unwrap_err().to_string();
    assert!(err.contains("unknown field `dwel`"), "{err}");
    // A kind nobody planned is a plain unknown key, listing the ones that exist.
    let err = parse("[actions.teleport]\nrate = 1\n").unwrap_err().to_string();
    assert!(err.contains("unknown field `teleport`") && err.contains("create_bookmark"), "{err}");
}

#[test]
fn names_resolve_under_fixtures_scenarios_and_shipped_scenarios_are_valid() {
    let shipped = shipped();
    for name in ["smoke", "firehose-1k", "firehose-10k", "chat-heavy"] {
        assert!(shipped.contains(&name.to_owned()), "{shipped:?}");
        let path = Scenario::find(name).unwrap();
        let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let args = RunArgs::try_parse_from(["run"]).unwrap();
        Plan::from_layers(&args, Some(&scenario), None).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let err = Scenario::find("no-such-scenario").unwrap_err().to_string();
    assert!(err.contains("no such scenario") && err.contains("smoke"), "{err}");
    let err = Scenario::load(Path::new("/nonexistent/x.toml")).unwrap_err().to_string();
    assert!(err.starts_with("/nonexistent/x.toml: cannot read the scenario"), "{err}");
}
