//! Gates: the default ones every run is judged by (no failed action, no lost delivery,
//! no private event delivered: see `names::DEFAULT_GATES`) and `--threshold
//! 'delivery.firehose.p99 < 100ms'`. An expression is a metric name, an operator and a
//! value with its unit; it is parsed (and its metric looked up in `names::catalogue`)
//! when the plan is made, so a typo fails before a long run with the few nearest names,
//! and judged on the finished report. A threshold on a default gate's own metric, as a
//! count or a rate, replaces that default (`errors.rate < 1%` allows some errors); one
//! on a part of it (`actions.like.errors < 3`) is judged besides the default.

use std::fmt;

use serde_json::Value;

use crate::report::histo::Summary;
use crate::report::model::{ReportModel, ThresholdOutcome};
use crate::report::names::{self, DEFAULT_GATES, Figure, Metric, Stat, Summarised, Unit};

/// A figure of the report.
pub enum Reading {
    Number(f64),
    Flag(bool),
}

fn stat(s: &Summary, stat: Stat) -> f64 {
    match stat {
        Stat::P50 => s.p50_ms,
        Stat::P90 => s.p90_ms,
        Stat::P99 => s.p99_ms,
        Stat::P999 => s.p999_ms,
        Stat::Max => s.max_ms,
        Stat::Min => s.min_ms,
        Stat::Mean => s.mean_ms,
        Stat::Count => s.count as f64,
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// The summary `of` names in `r`.
fn summary(r: &ReportModel, of: Summarised) -> Option<&Summary> {
    use crate::report::names::KindPart;
    match of {
        Summarised::Kind(k, part) => {
            let a = r.actions.get(k.name())?;
            Some(match part {
                KindPart::Corrected => &a.latency_corrected,
                KindPart::Uncorrected => &a.latency_uncorrected,
                KindPart::Lag => &a.lag,
            })
        }
        Summarised::Delivery(g) => r.groups.get(g.name()).map(|x| &x.latency),
        Summarised::Reach(g, k) => {
            let reach = r.groups.get(g.name())?.reach.as_ref()?;
            Some([&reach.pct_50, &reach.pct_99, &reach.pct_100][k])
        }
        Summarised::Connect => Some(&r.listeners.connect),
    }
}

/// Reads `figure` from `r`; `None` when the report lacks it (a group without
/// listeners, a kind not driven).
pub fn read(r: &ReportModel, figure: Figure) -> Option<Reading> {
    use Reading::{Flag, Number};
    let t = &r.totals;
    let n = |x: u64| Some(Number(x as f64));
    match figure {
        Figure::Valid => Some(Flag(r.verdict.valid)),
        Figure::Passed => Some(Flag(r.verdict.passed)),
        Figure::Loss => n(t.lost),
        Figure::LossRate => Some(Number(ratio(t.lost, t.expected))),
        Figure::Errors => n(t.errors),
        Figure::ErrorsRate => Some(Number(ratio(t.errors, t.sent))),
        Figure::PrivateLeak => n(t.private_leak),
        Figure::Duplicates => n(t.duplicates),
        Figure::Reordered => n(t.reordered),
        Figure::Excess => n(t.excess),
        Figure::DecodeErrors => n(t.decode_errors),
        Figure::ListenersJoined => n(r.listeners.joined),
        Figure::ListenersFailed => n(r.listeners.failed_to_join),
        Figure::ListenersClosed => n(r.listeners.closed_during_run),
        Figure::Late => n(t.late),
        Figure::MaxLag => Some(Number(r.scheduler.max_lag_ms)),
        Figure::DeliveriesPerS => Some(Number(t.deliveries_per_s)),
        Figure::GroupLoss(g) => r.groups.get(g.name()).map(|x| Number(x.lost as f64)),
        Figure::GroupLossRate(g) => r.groups.get(g.name()).map(|x| Number(ratio(x.lost, x.expected))),
        Figure::GroupDuplicates(g) => r.groups.get(g.name()).map(|x| Number(x.duplicates as f64)),
        Figure::GroupExcess(g) => r.groups.get(g.name()).map(|x| Number(x.excess as f64)),
        Figure::GroupThroughput(g) => r.groups.get(g.name()).map(|x| Number(x.deliveries_per_s)),
        Figure::KindErrors(k) => r.actions.get(k.name()).map(|a| Number(a.error_count as f64)),
        Figure::KindErrorsRate(k) => r.actions.get(k.name()).map(|a| Number(ratio(a.error_count, a.sent))),
        Figure::KindThroughput(k) => r.actions.get(k.name()).map(|a| Number(a.throughput_per_s)),
        Figure::KindLate(k) => r.actions.get(k.name()).map(|a| Number(a.late as f64)),
        Figure::Summary(of, s) => summary(r, of).map(|x| Number(stat(x, s))),
    }
}

/// The figure `metric` reads, as a number (flags as 0/1).
pub fn read_number(r: &ReportModel, metric: &Metric) -> Option<f64> {
    match read(r, metric.figure)? {
        Reading::Number(n) => Some(n),
        Reading::Flag(b) => Some(f64::from(u8::from(b))),
    }
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
    pub metric: Metric,
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
    #[error(
        "threshold {expr:?}: unknown metric `{name}`; did you mean {}? (`firehose-sim metrics` lists them all)",
        near.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
    )]
    UnknownMetric { expr: String, name: String, near: Vec<String> },
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
        let Some(metric) = names::metric(name) else {
            return Err(ThresholdError::UnknownMetric {
                expr: expr.to_owned(),
                name: name.to_owned(),
                near: names::nearest(name, 5),
            });
        };
        let bound = parse_bound(metric.unit, op, value)
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
        Ok(Threshold { expr: expr.trim().to_owned(), metric, op, bound })
    }

    /// Judges the threshold on `report`; a figure the report lacks fails.
    pub fn evaluate(&self, report: &ReportModel) -> ThresholdOutcome {
        let reading = read(report, self.metric.figure);
        let (actual, passed) = match (reading, self.bound) {
            (Some(Reading::Flag(a)), Bound::Flag(b)) => {
                (Value::Bool(a), self.op.holds(f64::from(u8::from(a)), f64::from(u8::from(b))))
            }
            (Some(Reading::Number(a)), Bound::Number(b)) => {
                (number(self.metric.unit, a), a.is_finite() && self.op.holds(a, b))
            }
            _ => (Value::Null, false),
        };
        ThresholdOutcome {
            expr: self.expr.clone(),
            metric: self.metric.name.clone(),
            actual,
            unit: self.metric.unit.symbol().to_owned(),
            expected: format!("{} {}", self.op.symbol(), self.bound_text()),
            passed,
            default: false,
        }
    }

    /// The bound in the metric's unit, e.g. `100 ms`, `0.001`, `true`.
    fn bound_text(&self) -> String {
        match self.bound {
            Bound::Flag(b) => b.to_string(),
            Bound::Number(n) => match self.metric.unit.symbol() {
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
fn number(unit: Unit, n: f64) -> Value {
    if unit == Unit::Count && n >= 0.0 && n.fract() == 0.0 && n < u64::MAX as f64 {
        return Value::from(n as u64);
    }
    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
}

fn parse_bound(kind: Unit, op: Op, value: &str) -> Result<Bound, String> {
    if kind == Unit::Flag {
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
        (Unit::Latency, "ms") => n,
        (Unit::Latency, "s") => n * 1e3,
        (Unit::Latency, "us" | "µs") => n / 1e3,
        (Unit::Latency, _) => return Err(format!("is a latency: give a unit ms, s or us (e.g. {number}ms)")),
        (Unit::Fraction, "%") => n / 100.0,
        (Unit::Fraction, "") => n,
        (Unit::Fraction, _) => {
            return Err(format!("is a fraction: give a percentage (0.1%) or a plain number, not {unit:?}"));
        }
        (Unit::Count | Unit::PerSecond, "") => n,
        (Unit::Count | Unit::PerSecond, _) => return Err(format!("is a plain number: drop the unit {unit:?}")),
        (Unit::Flag, _) => return Err("is true or false".to_owned()),
    };
    Ok(Bound::Number(scaled))
}

/// The default gates still in force: those whose metric no threshold names (see
/// `names::family`).
pub fn default_gates(thresholds: &[Threshold]) -> impl Iterator<Item = &'static str> + '_ {
    DEFAULT_GATES.into_iter().filter(move |gate| {
        let family = names::family(gate.split_whitespace().next().unwrap_or(gate));
        !thresholds.iter().any(|t| names::family(&t.metric.name) == family)
    })
}

/// Judges the default gates in force and every threshold on `report`, defaults first.
pub fn evaluate_all(thresholds: &[Threshold], report: &ReportModel) -> Vec<ThresholdOutcome> {
    let defaults = default_gates(thresholds).map(|g| {
        let mut outcome = Threshold::parse(g).expect("default gates parse").evaluate(report);
        outcome.default = true;
        outcome
    });
    defaults.chain(thresholds.iter().map(|t| t.evaluate(report))).collect()
}

#[cfg(test)]
mod tests;

/// The catalogue tests' sample report, for other modules' tests.
#[cfg(test)]
pub(crate) fn tests_sample() -> ReportModel {
    tests::sample()
}
