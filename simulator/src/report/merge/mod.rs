//! `firehose-sim merge`: several report folders (agents of one plan, on one machine or
//! several) become one report, exactly. Every histogram is rebuilt from the inputs'
//! interval logs (`<name>.hlog`: the intervals of all inputs added up), the summaries
//! listed in `histogram_paths` are recomputed from it, the other figures combine by the
//! rules of [`rules`], derived fractions are computed again from the merged totals, and
//! the thresholds are judged on the result. The inputs are kept under
//! `agents/agent-<i>/` in the merged folder.

pub mod rules;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use hdrhistogram::Histogram;
use rand::Rng;
use serde_json::{Value, json};

use crate::report::exit;
use crate::report::gate::Threshold;
use crate::report::histo::{self, Interval, Summary};
use crate::report::model::ReportModel;
use crate::report::timeline::{IntervalLogs, TimelineRow};
use crate::report::{Report, files};

/// Why reports cannot be merged (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: not a firehose-sim report: {reason}")]
    NotAReport { path: PathBuf, reason: String },
    #[error(
        "{dir}: no interval log {file} for histogram {name}: a .hgrm file holds percentiles, which cannot be \
         merged exactly; re-run with a simulator that writes .hlog files"
    )]
    NoIntervalLog { dir: PathBuf, name: String, file: String },
    #[error("{path}: unreadable interval log: {reason}")]
    BadIntervalLog { path: PathBuf, reason: String },
    #[error(
        "{path}: schema {schema:?}; this simulator merges {} only (re-run it with this version)",
        crate::report::SCHEMA
    )]
    Schema { path: PathBuf, schema: String },
    #[error("the merged report does not load as a report: {0}")]
    Model(String),
    #[error("{first} and {second} are the same run ({run_id}): merging a run with itself would count it twice")]
    SameRun { first: PathBuf, second: PathBuf, run_id: String },
    #[error(transparent)]
    Threshold(#[from] crate::report::gate::ThresholdError),
}

/// One input report folder and the label its reasons and folder copy get.
#[derive(Debug, Clone)]
pub struct Input {
    pub label: String,
    pub dir: PathBuf,
}

/// Merged reports, before they are written. `report.intervals` holds, per histogram,
/// the intervals of every input placed by absolute time from the earliest input's t0.
pub struct Merged {
    pub report: Report,
    pub inputs: Vec<Input>,
}

/// Reads and merges `inputs`. `plan`, when given (the parent of `--agents`), becomes
/// the merged plan; otherwise the first input's. Either way the inputs' plans are kept
/// in `plan.agent_shares`.
pub fn merge(inputs: &[Input], plan: Option<Value>) -> Result<Merged, MergeError> {
    let mut reports = Vec::new();
    for input in inputs {
        let path = input.dir.join("report.json");
        let text = fs::read_to_string(&path).map_err(|source| MergeError::Read { path: path.clone(), source })?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| MergeError::NotAReport { path: path.clone(), reason: e.to_string() })?;
        let schema = value.get("schema").and_then(Value::as_str).unwrap_or_default();
        if !schema.starts_with("firehose-sim/report/") {
            return Err(MergeError::NotAReport { path, reason: "no firehose-sim report schema".into() });
        }
        if schema != crate::report::SCHEMA {
            return Err(MergeError::Schema { path, schema: schema.to_owned() });
        }
        // Agents of one run share its id; each is one slot of it.
        let identity = |r: &Value| {
            (r.get("run_id").and_then(Value::as_str).map(str::to_owned), r.pointer("/plan/agents/slot/index").cloned())
        };
        if let Some(k) = reports.iter().position(|r: &Value| identity(r) == identity(&value)) {
            return Err(MergeError::SameRun {
                first: inputs[k].dir.clone(),
                second: input.dir.clone(),
                run_id: identity(&value).0.unwrap_or_default(),
            });
        }
        reports.push(value);
    }

    // Histograms: the intervals of every input, placed by absolute time.
    let mut names: Vec<String> = Vec::new();
    for r in &reports {
        for name in r.get("histograms").and_then(Value::as_object).into_iter().flat_map(|m| m.keys()) {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    let mut absolute: BTreeMap<String, Vec<(Duration, Interval)>> = BTreeMap::new();
    for (input, report) in inputs.iter().zip(&reports) {
        let Some(histograms) = report.get("histograms").and_then(Value::as_object) else { continue };
        for name in histograms.keys() {
            let file = report
                .pointer(&format!("/histogram_logs/{name}"))
                .and_then(Value::as_str)
                .map_or_else(|| format!("{name}.hlog"), str::to_owned);
            let path = input.dir.join(&file);
            let bytes = match fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(MergeError::NoIntervalLog { dir: input.dir.clone(), name: name.clone(), file });
                }
                Err(source) => return Err(MergeError::Read { path, source }),
            };
            let log =
                histo::read_hlog(&bytes).map_err(|reason| MergeError::BadIntervalLog { path: path.clone(), reason })?;
            let base = log.base_time_s.or(log.start_time_s).unwrap_or(0.0);
            let base = Duration::try_from_secs_f64(base).unwrap_or_default();
            let entry = absolute.entry(name.clone()).or_default();
            entry.extend(log.intervals.into_iter().map(|i| (base + i.start, i)));
        }
    }
    let earliest = absolute.values().flatten().map(|(at, _)| *at).min().unwrap_or_default();
    let start_time = UNIX_EPOCH + earliest;
    let mut logs = BTreeMap::new();
    let mut span = Duration::ZERO;
    let mut histograms = Vec::new();
    for name in &names {
        let mut intervals = absolute.remove(name).unwrap_or_default();
        intervals.sort_by_key(|(at, _)| *at);
        let intervals: Vec<Interval> =
            intervals.into_iter().map(|(at, i)| Interval { start: at.saturating_sub(earliest), ..i }).collect();
        span = span.max(intervals.iter().map(|i| i.start + i.length).max().unwrap_or_default());
        histograms.push((name.clone(), histo::merge(intervals.iter().map(|i| i.histogram.clone()))));
        logs.insert(name.clone(), intervals);
    }

    // Figures, by the rules; then what is recomputed.
    let mut value = rules::merge_values("", "", &reports.iter().collect::<Vec<_>>());
    recompute_summaries(&mut value, &histograms);
    recompute_derived(&mut value);
    merge_timelines(&mut value, &reports);
    let agents: Vec<Value> = inputs
        .iter()
        .zip(&reports)
        .enumerate()
        .map(|(index, (input, r))| {
            json!({
                "index": index,
                "label": input.label,
                "report_dir": format!("agents/{}", input.label),
                "source_dir": input.dir.display().to_string(),
                "run_id": r["run_id"],
                "valid": r.pointer("/verdict/valid").cloned().unwrap_or(Value::Null),
                "passed": r.pointer("/verdict/passed").cloned().unwrap_or(Value::Null),
                "listeners": r.pointer("/listeners/joined").cloned().unwrap_or(Value::Null),
                "listeners_requested": r.pointer("/listeners/requested").cloned().unwrap_or(Value::Null),
                "sent": r.pointer("/totals/sent").cloned().unwrap_or(Value::Null),
                "plan": r["plan"],
            })
        })
        .collect();
    let mut plan = plan.unwrap_or_else(|| reports.first().map(|r| r["plan"].clone()).unwrap_or_default());
    if let Value::Object(p) = &mut plan {
        p.insert("agent_shares".into(), Value::Array(reports.iter().map(|r| r["plan"].clone()).collect()));
    }
    let obj = value.as_object_mut().ok_or_else(|| MergeError::Model("not an object".into()))?;
    // Agents of one run keep its id; reports of separate runs get a new one.
    let same_run = reports.windows(2).all(|w| w[0].get("run_id") == w[1].get("run_id"));
    let run_id = match reports.first().and_then(|r| r.get("run_id")).and_then(Value::as_str) {
        Some(id) if same_run => id.to_owned(),
        _ => format!("m{:05x}", rand::rng().random::<u32>() & 0xf_ffff),
    };
    obj.insert("run_id".into(), Value::from(run_id));
    obj.insert("plan".into(), plan);
    // The verdict is judged again on the merged figures (`finish`).
    obj.insert("verdict".into(), serde_json::to_value(crate::report::model::Verdict::default()).unwrap_or_default());
    obj.insert("thresholds".into(), Value::Array(Vec::new()));
    obj.insert("agents".into(), Value::Array(agents));
    let log_files: serde_json::Map<String, Value> =
        names.iter().map(|n| (n.clone(), Value::from(crate::report::names::hlog_file(n)))).collect();
    obj.insert("histogram_logs".into(), Value::Object(log_files));
    let model: ReportModel = serde_json::from_value(value).map_err(|e| MergeError::Model(e.to_string()))?;
    let intervals = IntervalLogs { t0: Some(start_time), span, logs };
    Ok(Merged { report: Report { model, histograms, intervals }, inputs: inputs.to_vec() })
}

/// The inputs' timelines (`timeline.rows`, one per second from a common t0 for
/// agents) merged row by row rather than concatenated; t0 the earliest. Per-row
/// percentiles become the inputs' maximum (an upper bound; the `.hlog` files are exact).
fn merge_timelines(value: &mut Value, reports: &[Value]) {
    let timelines: Vec<&Value> = reports.iter().filter_map(|r| r.get("timeline")).filter(|t| !t.is_null()).collect();
    let Some(Value::Object(timeline)) = value.get_mut("timeline") else { return };
    let rows: Vec<&Vec<Value>> = timelines.iter().filter_map(|t| t.get("rows")?.as_array()).collect();
    let longest = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let merged: Vec<Value> =
        (0..longest).map(|i| merge_row_values(&rows.iter().filter_map(|r| r.get(i)).collect::<Vec<_>>())).collect();
    timeline.insert("rows".into(), Value::Array(merged));
    let t0 = timelines.iter().filter_map(|t| t.get("t0_unix_s")?.as_f64()).fold(f64::INFINITY, f64::min);
    if t0.is_finite() {
        timeline.insert("t0_unix_s".into(), json!(t0));
    }
}

/// One timeline row of several inputs, the same second of each.
fn merge_row_values(rows: &[&Value]) -> Value {
    rules::merge_values("/timeline/rows", "", rows)
}

/// The same second of several agents' timelines as one row (by the rules of a merged
/// report's timeline: counts and rates add, percentiles take the maximum).
pub fn merge_rows(rows: &[&TimelineRow]) -> TimelineRow {
    let values: Vec<Value> = rows.iter().filter_map(|r| serde_json::to_value(r).ok()).collect();
    serde_json::from_value(merge_row_values(&values.iter().collect::<Vec<_>>())).unwrap_or_default()
}

/// Sets every summary listed in `histogram_paths` from its merged histogram.
fn recompute_summaries(value: &mut Value, histograms: &[(String, Histogram<u64>)]) {
    let paths: Vec<(String, String)> = value
        .get("histogram_paths")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default();
    for (name, pointer) in paths {
        let Some((_, h)) = histograms.iter().find(|(n, _)| *n == name) else { continue };
        if let Some(slot) = value.pointer_mut(&pointer) {
            *slot = serde_json::to_value(Summary::of(h)).unwrap_or_default();
        }
    }
}

/// Fractions of merged totals, computed again (an average of fractions would be wrong).
fn recompute_derived(value: &mut Value) {
    let joined = value.pointer("/listeners/joined").and_then(Value::as_u64).unwrap_or(0);
    let per = |v: &Value, before: &str, after: &str| -> Value {
        match (v.pointer(before).and_then(Value::as_f64), v.pointer(after).and_then(Value::as_f64)) {
            (Some(b), Some(a)) if joined > 0 => json!((a - b) / joined as f64),
            _ => Value::Null,
        }
    };
    let sim = per(value, "/simulator/rss_before_bytes", "/simulator/rss_after_bytes");
    if let Some(slot) = value.pointer_mut("/simulator/rss_per_listener_bytes") {
        *slot = sim;
    }
    let server = per(value, "/server/rss_before_bytes", "/server/rss_after_bytes");
    if let Some(slot) = value.pointer_mut("/server/rss_per_socket_bytes") {
        *slot = server;
    }
    // Each target's server: over the sockets its node held, every agent's added.
    if let Some(Value::Object(targets)) = value.get_mut("targets") {
        for server in targets.values_mut().filter_map(|t| t.get_mut("server")).filter_map(Value::as_object_mut) {
            let figure = |key: &str| server.get(key).and_then(Value::as_f64);
            let per_socket = match (figure("rss_before_bytes"), figure("rss_after_bytes"), figure("sockets")) {
                (Some(b), Some(a), Some(n)) if n > 0.0 => json!((a - b) / n),
                _ => Value::Null,
            };
            server.insert("rss_per_socket_bytes".into(), per_socket);
        }
    }
    // Per delivery: the merged CPU over every agent's deliveries (a sum of the agents'
    // own ratios would mean nothing).
    let received = value.pointer("/totals/received").and_then(Value::as_u64).unwrap_or(0);
    for who in ["/simulator", "/server"] {
        let cpu = value.pointer(&format!("{who}/cpu_s_during_traffic")).and_then(Value::as_f64);
        if let Some(slot) = value.pointer_mut(&format!("{who}/cpu_us_per_delivery")) {
            *slot = cpu.and_then(|c| super::model::per_delivery(c, received)).map_or(Value::Null, Value::from);
        }
    }
}

/// Writes `merged` as a report folder under `out` with the files of a single run
/// (report.json, `.hgrm` and `.hlog` per histogram, report.html, summary.md,
/// junit.xml) and the inputs under `agents/<label>/` (moved when `move_inputs`, else
/// copied). Returns the folder.
pub fn write(merged: &Merged, out: &Path, move_inputs: bool) -> io::Result<PathBuf> {
    let dir = files::write(&merged.report, out)?;
    let agents = dir.join("agents");
    fs::create_dir_all(&agents)?;
    for input in &merged.inputs {
        let to = agents.join(&input.label);
        if !(move_inputs && fs::rename(&input.dir, &to).is_ok()) {
            copy_dir(&input.dir, &to)?;
        }
    }
    Ok(dir)
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()))?;
        } else {
            fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// Judges (as a single run is judged, on the merged figures), prints, writes; the exit
/// code of the merged run (`Report::exit_code`).
pub fn finish(mut merged: Merged, thresholds: &[Threshold], out: &Path, move_inputs: bool, interrupted: bool) -> u8 {
    merged.report.judge(thresholds, interrupted);
    crate::report::terminal::print(&crate::report::terminal::render(&merged.report.model));
    match write(&merged, out, move_inputs) {
        Ok(dir) => {
            crate::report::terminal::print(&crate::report::terminal::footer(&merged.report.model, &dir));
            crate::report::live::ended(&merged.report.model, &dir);
        }
        Err(e) => {
            eprintln!("firehose-sim: cannot write the merged report under {}: {e}", out.display());
            return exit::FAILURE;
        }
    }
    merged.report.exit_code()
}

/// The inputs' `partial` reasons, each prefixed with its label (none: every input is
/// a complete run).
pub fn partial_reasons(inputs: &[Input]) -> Option<String> {
    let reasons: Vec<String> = inputs
        .iter()
        .filter_map(|input| {
            let text = std::fs::read_to_string(input.dir.join("report.json")).ok()?;
            let json: serde_json::Value = serde_json::from_str(&text).ok()?;
            Some(format!("{}: {}", input.label, json.pointer("/verdict/partial")?.as_str()?))
        })
        .collect();
    (!reasons.is_empty()).then(|| reasons.join("; "))
}
