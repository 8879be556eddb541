//! CI gates: `--threshold 'delivery.firehose.p99 < 100ms'`. An expression is a metric
//! path, an operator and a value with its unit; it is parsed (and its metric looked up)
//! when the plan is made, so a typo fails before a long run rather than passing
//! silently after it, and judged on the finished report.
//!
//! The metric catalogue is static: every name resolves to a figure of `report.json`
//! and a kind that fixes which units its value may carry.

use std::fmt;

use serde_json::Value;

use crate::report::histo::Summary;
use crate::report::model::{GroupReport, ReportModel, ThresholdOutcome};
use crate::workloads::bookmarks::ledger::Group;

/// What a metric measures, which fixes the units a threshold on it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Milliseconds; thresholds must give a unit (`ms`, `s`, `us`).
    Latency,
    /// A plain count.
    Count,
    /// Per second, plain.
    PerSecond,
    /// A ratio 0–1; thresholds give a percentage (`0.1%`) or a plain fraction.
    Fraction,
    /// true/false; only `==` and `!=`.
    Flag,
}

impl Kind {
    fn unit(self) -> &'static str {
        match self {
            Kind::Latency => "ms",
            Kind::PerSecond => "/s",
            Kind::Fraction => "fraction",
            Kind::Count | Kind::Flag => "",
        }
    }
}

/// A figure of the report.
pub enum Reading {
    Number(f64),
    Flag(bool),
}

type Getter = Box<dyn Fn(&ReportModel) -> Option<Reading> + Send + Sync>;

/// One named figure.
pub struct Metric {
    pub name: String,
    pub kind: Kind,
    get: Getter,
}

impl Metric {
    fn new(
        name: impl Into<String>,
        kind: Kind,
        get: impl Fn(&ReportModel) -> Option<Reading> + Send + Sync + 'static,
    ) -> Self {
        Self { name: name.into(), kind, get: Box::new(get) }
    }

    fn number(
        name: impl Into<String>,
        kind: Kind,
        get: impl Fn(&ReportModel) -> Option<f64> + Send + Sync + 'static,
    ) -> Self {
        Self::new(name, kind, move |r| get(r).map(Reading::Number))
    }

    /// The figure in `report`, `None` when the report lacks it.
    pub fn read(&self, report: &ReportModel) -> Option<Reading> {
        (self.get)(report)
    }

    /// The figure as a number (flags as 0/1).
    pub fn read_number(&self, report: &ReportModel) -> Option<f64> {
        match self.read(report)? {
            Reading::Number(n) => Some(n),
            Reading::Flag(b) => Some(f64::from(u8::from(b))),
        }
    }
}

const STATS: [&str; 8] = ["p50", "p90", "p99", "p999", "max", "min", "mean", "count"];

fn stat(s: &Summary, name: &str) -> f64 {
    match name {
        "p50" => s.p50_ms,
        "p90" => s.p90_ms,
        "p99" => s.p99_ms,
        "p999" => s.p999_ms,
        "max" => s.max_ms,
        "min" => s.min_ms,
        "mean" => s.mean_ms,
        _ => s.count as f64,
    }
}

/// `<prefix>.p50` … `<prefix>.count` over the summary `pick` selects.
fn summary_metrics(
    out: &mut Vec<Metric>,
    prefix: &str,
    pick: impl Fn(&ReportModel) -> Option<&Summary> + Clone + Send + Sync + 'static,
) {
    for name in STATS {
        let pick = pick.clone();
        let kind = if name == "count" { Kind::Count } else { Kind::Latency };
        out.push(Metric::number(format!("{prefix}.{name}"), kind, move |r| pick(r).map(|s| stat(s, name))));
    }
}

fn sum_groups(r: &ReportModel, f: impl Fn(&GroupReport) -> u64) -> Option<f64> {
    Some(r.groups.values().map(f).sum::<u64>() as f64)
}

/// Every metric a threshold or a comparison may name.
pub fn catalogue() -> Vec<Metric> {
    let mut m = vec![
        Metric::new("valid", Kind::Flag, |r| Some(Reading::Flag(r.valid))),
        Metric::number("loss", Kind::Count, |r| sum_groups(r, |g| g.lost)),
        Metric::number("loss.rate", Kind::Fraction, |r| {
            let expected = r.groups.values().map(|g| g.expected).sum::<u64>();
            let lost = r.groups.values().map(|g| g.lost).sum::<u64>();
            Some(if expected == 0 { 0.0 } else { lost as f64 / expected as f64 })
        }),
        Metric::number("errors", Kind::Count, |r| Some(r.requests.error_count as f64)),
        Metric::number("errors.rate", Kind::Fraction, |r| {
            let q = &r.requests;
            Some(if q.sent == 0 { 0.0 } else { q.error_count as f64 / q.sent as f64 })
        }),
        Metric::number("duplicates", Kind::Count, |r| sum_groups(r, |g| g.duplicates)),
        Metric::number("reordered", Kind::Count, |r| sum_groups(r, |g| g.reordered)),
        Metric::number("excess", Kind::Count, |r| sum_groups(r, |g| g.excess)),
        Metric::number("private_leak", Kind::Count, |r| Some(r.deliveries.private_leak as f64)),
        Metric::number("decode_errors", Kind::Count, |r| Some(r.deliveries.decode_errors as f64)),
        Metric::number("listeners.joined", Kind::Count, |r| Some(r.listeners.joined as f64)),
        Metric::number("listeners.failed", Kind::Count, |r| Some(r.listeners.failed_to_join as f64)),
        Metric::number("listeners.closed", Kind::Count, |r| Some(r.listeners.closed_during_run as f64)),
        Metric::number("generator.max_lag", Kind::Latency, |r| Some(r.generator.max_lag_ms)),
        Metric::number("requests.create_bookmark.throughput", Kind::PerSecond, |r| Some(r.requests.throughput_per_s)),
        Metric::number("requests.create_bookmark.errors", Kind::Count, |r| Some(r.requests.error_count as f64)),
    ];
    summary_metrics(&mut m, "requests.create_bookmark", |r| Some(&r.requests.latency_corrected));
    summary_metrics(&mut m, "requests.create_bookmark.uncorrected", |r| Some(&r.requests.latency_uncorrected));
    summary_metrics(&mut m, "connect", |r| Some(&r.listeners.connect));
    for group in Group::ALL {
        let g = group.name();
        m.push(Metric::number(format!("loss.{g}"), Kind::Count, move |r| r.groups.get(g).map(|x| x.lost as f64)));
        m.push(Metric::number(format!("delivery.{g}.throughput"), Kind::PerSecond, move |r| {
            r.groups.get(g).map(|x| x.deliveries_per_s)
        }));
        summary_metrics(&mut m, &format!("delivery.{g}"), move |r: &ReportModel| r.groups.get(g).map(|x| &x.latency));
        // Time until 50 %, 99 %, 100 % of an event's audience had it, e.g.
        // `reach.firehose.100.p99 < 100ms`.
        summary_metrics(&mut m, &format!("reach.{g}.50"), move |r: &ReportModel| {
            r.groups.get(g)?.reach.as_ref().map(|x| &x.pct_50)
        });
        summary_metrics(&mut m, &format!("reach.{g}.99"), move |r: &ReportModel| {
            r.groups.get(g)?.reach.as_ref().map(|x| &x.pct_99)
        });
        summary_metrics(&mut m, &format!("reach.{g}.100"), move |r: &ReportModel| {
            r.groups.get(g)?.reach.as_ref().map(|x| &x.pct_100)
        });
    }
    // The groups and action kinds of `crate::actions`, e.g. `delivery.room.p99 < 50ms`,
    // `loss.likes == 0`, `actions.chat_message.p99 < 20ms`, `actions.like.errors == 0`.
    for g in crate::workloads::actions::Group::ALL.map(|g| g.name()).into_iter().chain([crate::plan::pages::GROUP]) {
        m.push(Metric::number(format!("loss.{g}"), Kind::Count, move |r| r.groups.get(g).map(|x| x.lost as f64)));
        m.push(Metric::number(format!("delivery.{g}.throughput"), Kind::PerSecond, move |r| {
            r.groups.get(g).map(|x| x.deliveries_per_s)
        }));
        summary_metrics(&mut m, &format!("delivery.{g}"), move |r: &ReportModel| r.groups.get(g).map(|x| &x.latency));
        summary_metrics(&mut m, &format!("reach.{g}.50"), move |r: &ReportModel| {
            r.groups.get(g)?.reach.as_ref().map(|x| &x.pct_50)
        });
        summary_metrics(&mut m, &format!("reach.{g}.99"), move |r: &ReportModel| {
            r.groups.get(g)?.reach.as_ref().map(|x| &x.pct_99)
        });
        summary_metrics(&mut m, &format!("reach.{g}.100"), move |r: &ReportModel| {
            r.groups.get(g)?.reach.as_ref().map(|x| &x.pct_100)
        });
    }
    for k in crate::workloads::actions::Kind::ALL
        .map(|k| k.name())
        .into_iter()
        .chain(crate::workloads::bookmarks::lifecycle::KINDS)
        .chain([crate::plan::pages::KIND])
    {
        m.push(Metric::number(format!("actions.{k}.errors"), Kind::Count, move |r| {
            r.actions.get(k).map(|a| a.error_count as f64)
        }));
        m.push(Metric::number(format!("actions.{k}.throughput"), Kind::PerSecond, move |r| {
            r.actions.get(k).map(|a| a.throughput_per_s)
        }));
        summary_metrics(&mut m, &format!("actions.{k}"), move |r: &ReportModel| {
            r.actions.get(k).map(|a| &a.latency_corrected)
        });
        summary_metrics(&mut m, &format!("actions.{k}.uncorrected"), move |r: &ReportModel| {
            r.actions.get(k).map(|a| &a.latency_uncorrected)
        });
    }
    m
}

/// The metric called `name`.
pub fn metric(name: &str) -> Option<Metric> {
    catalogue().into_iter().find(|m| m.name == name)
}

/// Every metric name, in catalogue order.
pub fn known_names() -> Vec<String> {
    catalogue().into_iter().map(|m| m.name).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    /// Longest first, so `<=` is not read as `<`.
    const ALL: [(&'static str, Op); 6] =
        [("<=", Op::Le), (">=", Op::Ge), ("==", Op::Eq), ("!=", Op::Ne), ("<", Op::Lt), (">", Op::Gt)];

    fn holds(self, actual: f64, bound: f64) -> bool {
        match self {
            Op::Lt => actual < bound,
            Op::Le => actual <= bound,
            Op::Gt => actual > bound,
            Op::Ge => actual >= bound,
            Op::Eq => actual == bound,
            Op::Ne => actual != bound,
        }
    }

    fn symbol(self) -> &'static str {
        Op::ALL.iter().find(|(_, op)| *op == self).map_or("?", |(s, _)| s)
    }
}

/// The right-hand side, in the metric's own unit (ms for latencies, 0–1 for fractions).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Number(f64),
    Flag(bool),
}

/// A parsed threshold whose metric exists and whose value fits it.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// As written.
    pub expr: String,
    pub metric: String,
    pub kind: Kind,
    pub op: Op,
    pub bound: Bound,
}

/// Why an expression is not a threshold.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdError {
    #[error(
        "threshold {expr:?}: expected `METRIC OP VALUE` with OP one of < <= > >= == != (e.g. 'delivery.firehose.p99 < 100ms')"
    )]
    Syntax { expr: String },
    #[error("threshold {expr:?}: unknown metric `{name}`; known metrics: {}", known.join(", "))]
    UnknownMetric { expr: String, name: String, known: Vec<String> },
    #[error("threshold {expr:?}: {reason}")]
    Value { expr: String, reason: String },
}

impl Threshold {
    pub fn parse(expr: &str) -> Result<Threshold, ThresholdError> {
        let syntax = || ThresholdError::Syntax { expr: expr.to_owned() };
        let (at, symbol, op) = Op::ALL
            .iter()
            .filter_map(|&(s, op)| expr.find(s).map(|at| (at, s, op)))
            // The leftmost operator; at one position the longer (listed first) wins.
            .min_by_key(|&(at, _, _)| at)
            .ok_or_else(syntax)?;
        let name = expr[..at].trim();
        let value = expr[at + symbol.len()..].trim();
        if name.is_empty() || value.is_empty() || Op::ALL.iter().any(|(s, _)| value.contains(s)) {
            return Err(syntax());
        }
        let Some(metric) = metric(name) else {
            return Err(ThresholdError::UnknownMetric {
                expr: expr.to_owned(),
                name: name.to_owned(),
                known: known_names(),
            });
        };
        let bound = parse_bound(metric.kind, op, value)
            .map_err(|reason| ThresholdError::Value { expr: expr.to_owned(), reason: format!("`{name}` {reason}") })?;
        // Every figure of the catalogue is a count, a latency, a rate or a fraction: never
        // negative, so a negative bound makes a gate that always or never passes.
        if let Bound::Number(n) = bound
            && n < 0.0
        {
            return Err(ThresholdError::Value {
                expr: expr.to_owned(),
                reason: format!("`{name}` is never negative; a bound of {value} would always pass or always fail"),
            });
        }
        Ok(Threshold { expr: expr.trim().to_owned(), metric: metric.name, kind: metric.kind, op, bound })
    }

    /// Judges the threshold on `report`; a figure the report lacks fails.
    pub fn evaluate(&self, report: &ReportModel) -> ThresholdOutcome {
        let reading = metric(&self.metric).and_then(|m| m.read(report));
        let (actual, passed) = match (reading, self.bound) {
            (Some(Reading::Flag(a)), Bound::Flag(b)) => {
                (Value::Bool(a), self.op.holds(f64::from(u8::from(a)), f64::from(u8::from(b))))
            }
            (Some(Reading::Number(a)), Bound::Number(b)) => {
                (number(self.kind, a), a.is_finite() && self.op.holds(a, b))
            }
            _ => (Value::Null, false),
        };
        ThresholdOutcome {
            expr: self.expr.clone(),
            metric: self.metric.clone(),
            actual,
            unit: self.kind.unit().to_owned(),
            expected: format!("{} {}", self.op.symbol(), self.bound_text()),
            passed,
        }
    }

    /// The bound in the metric's unit, e.g. `100 ms`, `0.001`, `true`.
    fn bound_text(&self) -> String {
        match self.bound {
            Bound::Flag(b) => b.to_string(),
            Bound::Number(n) => match self.kind.unit() {
                "" | "fraction" => format!("{n}"),
                unit => format!("{n} {unit}"),
            },
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

impl serde::Serialize for Threshold {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.expr)
    }
}

/// Counts as integers (`0`, not `0.0`), everything else as floats.
fn number(kind: Kind, n: f64) -> Value {
    if kind == Kind::Count && n >= 0.0 && n.fract() == 0.0 && n < u64::MAX as f64 {
        return Value::from(n as u64);
    }
    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
}

fn parse_bound(kind: Kind, op: Op, value: &str) -> Result<Bound, String> {
    if kind == Kind::Flag {
        return match (value, op) {
            ("true", Op::Eq | Op::Ne) => Ok(Bound::Flag(true)),
            ("false", Op::Eq | Op::Ne) => Ok(Bound::Flag(false)),
            (_, Op::Eq | Op::Ne) => Err(format!("is true or false, not {value:?}")),
            _ => Err("is true or false: compare it with == or !=".to_owned()),
        };
    }
    // Longest suffix first: "ms" before "s".
    let (number, unit) = ["ms", "us", "µs", "s", "%"]
        .iter()
        .find_map(|u| value.strip_suffix(u).map(|n| (n.trim(), *u)))
        .unwrap_or((value, ""));
    let n: f64 = number.parse().map_err(|_| format!("needs a number, got {value:?}"))?;
    if !n.is_finite() {
        return Err(format!("needs a finite number, got {value:?}"));
    }
    let scaled = match (kind, unit) {
        (Kind::Latency, "ms") => n,
        (Kind::Latency, "s") => n * 1e3,
        (Kind::Latency, "us" | "µs") => n / 1e3,
        (Kind::Latency, _) => return Err(format!("is a latency: give a unit ms, s or us (e.g. {number}ms)")),
        (Kind::Fraction, "%") => n / 100.0,
        (Kind::Fraction, "") => n,
        (Kind::Fraction, _) => {
            return Err(format!("is a fraction: give a percentage (0.1%) or a plain number, not {unit:?}"));
        }
        (Kind::Count | Kind::PerSecond, "") => n,
        (Kind::Count | Kind::PerSecond, _) => return Err(format!("is a plain number: drop the unit {unit:?}")),
        (Kind::Flag, _) => return Err("is true or false".to_owned()),
    };
    Ok(Bound::Number(scaled))
}

/// Judges every threshold on `report`.
pub fn evaluate_all(thresholds: &[Threshold], report: &ReportModel) -> Vec<ThresholdOutcome> {
    thresholds.iter().map(|t| t.evaluate(report)).collect()
}

#[cfg(test)]
mod tests;

/// The catalogue tests' sample report, for other modules' tests.
#[cfg(test)]
pub(crate) fn tests_sample() -> ReportModel {
    tests::sample()
}
