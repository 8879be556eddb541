//! `firehose-sim compare BASELINE NEW --max-regression 10%`: the key latency
//! percentiles and throughputs of two reports side by side, and whether the new run
//! regressed beyond the bound.
//!
//! One rule for both directions, "how much more time per operation": a latency
//! regresses when `new / baseline − 1` exceeds the bound, a throughput when
//! `baseline / new − 1` does (so 10% flags a throughput under 1/1.1 ≈ 90.9% of the
//! baseline, and a bound of 400% never flags a throughput that is merely lower). A
//! latency that moved by less than `--min-change` never counts: sub-millisecond
//! figures double on a busy machine without meaning anything.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::report::gate;
use crate::report::model::{ReachReport, ReportModel};
use crate::report::names::{self, Unit};

/// Which way is worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

/// One compared figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub metric: String,
    pub better: Better,
    pub baseline: f64,
    pub new: f64,
    /// `new / baseline − 1` for latencies, `baseline / new − 1` for throughputs:
    /// positive is worse. `None` when the reference is 0.
    pub worsening: Option<f64>,
    pub regressed: bool,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub max_regression: f64,
    pub min_change_ms: f64,
    pub rows: Vec<Row>,
    /// Differences between the two plans that make the figures not comparable.
    pub plan_differences: Vec<String>,
}

impl Comparison {
    pub fn regressed(&self) -> bool {
        self.rows.iter().any(|r| r.regressed)
    }
}

/// Why reports cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("--max-regression {0:?}: expected a percentage such as 10% (or a fraction such as 0.1), not negative")]
    Bound(String),
    #[error("{file}: {reason}")]
    Report { file: String, reason: String },
    #[error("{file}: the run is invalid ({reasons}); its figures describe the simulator, not the server")]
    Invalid { file: String, reasons: String },
}

/// Parses "10%", "0.1", "400%".
pub fn parse_bound(text: &str) -> Result<f64, CompareError> {
    let t = text.trim();
    let (number, scale) = match t.strip_suffix('%') {
        Some(n) => (n.trim(), 0.01),
        None => (t, 1.0),
    };
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(n * scale),
        _ => Err(CompareError::Bound(text.to_owned())),
    }
}

/// Reads a `report.json`.
pub fn read_report(path: &Path) -> Result<ReportModel, CompareError> {
    let err = |reason: String| CompareError::Report { file: path.display().to_string(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
    // The schema first: an older report says so, rather than failing on a missing field.
    let schema = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("schema").and_then(|s| s.as_str()).map(str::to_owned))
        .unwrap_or_default();
    if schema != crate::report::SCHEMA {
        return Err(err(format!(
            "schema {schema:?}; this simulator reads {} (re-run the baseline with this version)",
            crate::report::SCHEMA
        )));
    }
    let model: ReportModel = serde_json::from_str(&text).map_err(|e| err(format!("not a firehose-sim report: {e}")))?;
    if model.schema != crate::report::SCHEMA {
        return Err(err(format!("schema {:?}; this simulator reads {}", model.schema, crate::report::SCHEMA)));
    }
    Ok(model)
}

/// Reads both reports and compares them: `bound` is a fraction (0.1 for 10%), latency
/// moves under `min_change` are noise. An invalid run's report is refused.
pub fn compare_files(
    baseline: &Path,
    new: &Path,
    bound: f64,
    min_change: Duration,
) -> Result<Comparison, CompareError> {
    let (b, n) = (read_report(baseline)?, read_report(new)?);
    for (path, r) in [(baseline, &b), (new, &n)] {
        if !r.verdict.valid {
            return Err(CompareError::Invalid {
                file: path.display().to_string(),
                reasons: r.verdict.invalid_reasons.join("; "),
            });
        }
    }
    Ok(compare(&b, &n, bound, min_change.as_secs_f64() * 1000.0))
}

/// The compared metrics, picked from the catalogue: each group's delivery p50/p99 and
/// throughput, for the groups that had listeners in both runs, and its time to reach
/// its whole audience (p99) where both runs measured it; each action kind's p50/p99 and
/// throughput where both runs drove it.
fn compared_metrics(baseline: &ReportModel, new: &ReportModel) -> Vec<names::Metric> {
    use names::{Figure, KindPart, Stat, Summarised};
    let listened = |g: names::Group| {
        let has = |r: &ReportModel| r.groups.get(g.name()).is_some_and(|x| x.listeners > 0);
        has(baseline) && has(new)
    };
    let reached = |g: names::Group| {
        let has = |r: &ReportModel| {
            r.groups.get(g.name()).and_then(|x| x.reach.as_ref()).is_some_and(|x: &ReachReport| x.pct_100.count > 0)
        };
        has(baseline) && has(new)
    };
    let drove = |k: names::Kind| {
        let has = |r: &ReportModel| r.actions.get(k.name()).is_some_and(|a| a.ok > 0);
        has(baseline) && has(new)
    };
    names::catalogue()
        .into_iter()
        .filter(|m| match m.figure {
            Figure::Summary(Summarised::Delivery(g), Stat::P50 | Stat::P99) | Figure::GroupThroughput(g) => listened(g),
            Figure::Summary(Summarised::Reach(g, 2), Stat::P99) => reached(g),
            Figure::Summary(Summarised::Kind(k, KindPart::Corrected), Stat::P50 | Stat::P99)
            | Figure::KindThroughput(k) => drove(k),
            _ => false,
        })
        .collect()
}

/// Compares `new` with `baseline`: `bound` is a fraction (0.1 for 10%).
pub fn compare(baseline: &ReportModel, new: &ReportModel, bound: f64, min_change_ms: f64) -> Comparison {
    let mut rows = Vec::new();
    for metric in compared_metrics(baseline, new) {
        let (Some(b), Some(n)) = (gate::read_number(baseline, &metric), gate::read_number(new, &metric)) else {
            continue;
        };
        let better = if metric.unit == Unit::PerSecond { Better::Higher } else { Better::Lower };
        let worsening = match better {
            Better::Lower => (b > 0.0).then(|| n / b - 1.0),
            Better::Higher => (n > 0.0).then(|| b / n - 1.0),
        };
        let regressed = match better {
            // A latency from zero (nothing measured before) is judged by min_change alone.
            Better::Lower => n - b > min_change_ms && worsening.is_none_or(|w| w > bound),
            // Nothing got through at all while the baseline had throughput.
            Better::Higher => worsening.map_or(b > 0.0, |w| w > bound),
        };
        rows.push(Row { metric: metric.name, better, baseline: b, new: n, worsening, regressed });
    }
    Comparison { max_regression: bound, min_change_ms, rows, plan_differences: plan_differences(baseline, new) }
}

fn plan_differences(baseline: &ReportModel, new: &ReportModel) -> Vec<String> {
    const KEYS: [&str; 6] = [
        "/bookmarks/listeners",
        "/bookmarks/tag_listeners",
        "/bookmarks/rate_per_s",
        "/traffic/duration_s",
        "/traffic/warmup_s",
        "/bookmarks/private_fraction",
    ];
    KEYS.iter()
        .filter_map(|k| {
            let (b, n) = (baseline.plan.pointer(k), new.plan.pointer(k));
            (b != n).then(|| format!("plan{}: {} → {}", k.replace('/', "."), show(b), show(n)))
        })
        .collect()
}

fn show(v: Option<&serde_json::Value>) -> String {
    v.map_or("absent".to_owned(), ToString::to_string)
}

/// The comparison as a Markdown table (readable in a terminal, pasteable in a PR).
pub fn render(c: &Comparison, baseline: &Path, new: &Path) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "baseline  {}\nnew       {}\n", baseline.display(), new.display());
    let _ = writeln!(o, "| metric | baseline | new | change | verdict |");
    let _ = writeln!(o, "|---|---:|---:|---:|---|");
    for r in &c.rows {
        let unit = if r.better == Better::Higher { "/s" } else { " ms" };
        let change = match r.worsening {
            // Shown as the change of the figure itself: +20% latency, −9% throughput.
            Some(_) if r.baseline != 0.0 => format!("{:+.1}%", (r.new / r.baseline - 1.0) * 100.0),
            _ => "n/a".to_owned(),
        };
        let verdict = if r.regressed { "REGRESSED" } else { "ok" };
        let _ = writeln!(o, "| {} | {:.2}{unit} | {:.2}{unit} | {change} | {verdict} |", r.metric, r.baseline, r.new);
    }
    for d in &c.plan_differences {
        let _ = writeln!(o, "\nnote: the plans differ ({d}); the figures may not be comparable");
    }
    let regressed = c.rows.iter().filter(|r| r.regressed).count();
    let _ = writeln!(
        o,
        "\n{}: {regressed} of {} figures worse by more than {:.0}% (time per operation; latency changes under {} ms ignored)",
        if regressed == 0 { "PASS" } else { "REGRESSION" },
        c.rows.len(),
        c.max_regression * 100.0,
        c.min_change_ms
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::histo::Summary;
    use crate::report::model::ActionReport;

    #[test]
    fn actions_and_reach_are_compared_where_both_runs_have_them() {
        let mut base = crate::report::gate::tests_sample();
        let mut new = base.clone();
        for r in [&mut base, &mut new] {
            r.actions.insert("like".into(), ActionReport { ok: 5, ..Default::default() });
            r.actions.insert("typing".into(), ActionReport { ok: 5, ..Default::default() });
            r.groups.get_mut("firehose").unwrap().reach = Some(ReachReport {
                pct_100: Summary { count: 3, p99_ms: 10.0, ..Default::default() },
                ..Default::default()
            });
        }
        new.actions.get_mut("typing").unwrap().ok = 0;
        new.actions.get_mut("like").unwrap().latency_corrected =
            Summary { count: 5, p99_ms: 50.0, ..Default::default() };
        base.actions.get_mut("like").unwrap().latency_corrected =
            Summary { count: 5, p99_ms: 10.0, ..Default::default() };
        let names: Vec<String> = compared_metrics(&base, &new).into_iter().map(|m| m.name).collect();
        assert!(names.contains(&"actions.like.p99".to_owned()), "{names:?}");
        assert!(!names.iter().any(|n| n.starts_with("actions.typing")), "typing did not run in the new report");
        assert!(names.contains(&"reach.firehose.100.p99".to_owned()), "{names:?}");
        let c = compare(&base, &new, 0.1, 1.0);
        assert!(c.rows.iter().any(|r| r.metric == "actions.like.p99" && r.regressed), "{:?}", c.rows);
    }

    #[test]
    fn bounds_are_percentages_or_fractions() {
        assert_eq!(parse_bound("10%").unwrap(), 0.1);
        assert_eq!(parse_bound("400%").unwrap(), 4.0);
        assert_eq!(parse_bound("0.25").unwrap(), 0.25);
        assert!(parse_bound("-5%").is_err());
        assert!(parse_bound("lots").is_err());
    }
}
