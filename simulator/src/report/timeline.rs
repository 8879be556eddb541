//! What a run looks like over time: the `timeline` of `report.json` (one row a second:
//! per kind and per group rates and interval latencies, open connections) and the
//! HdrHistogram interval logs (`.hlog`) written beside it. The sampler that fills them
//! is `engine::sampler`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::report::Report;
use crate::report::histo::{self, Interval};
use crate::report::names::hlog_file;

/// Nominal length of one row and one `.hlog` interval.
pub const TICK: Duration = Duration::from_secs(1);

/// The run, second by second (`timeline` in `report.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Unix time in seconds of t0, the first intended start; row times count from it
    /// (and it is the `#[StartTime]` of every `.hlog`).
    pub t0_unix_s: f64,
    /// Nominal row length in seconds (1); the last row is usually shorter.
    pub interval_s: f64,
    pub rows: Vec<TimelineRow>,
}

/// One interval of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    /// Start and end of the interval, seconds from t0. Rows are contiguous.
    pub start_s: f64,
    pub end_s: f64,
    /// Per traffic kind: what it did in the interval.
    pub actions: BTreeMap<String, KindRow>,
    /// Per listener group: what it received in the interval.
    pub groups: BTreeMap<String, GroupRow>,
    /// Listener sockets open at the end of the interval.
    pub open_connections: u64,
    /// Listener sockets the target closed during the interval.
    pub closed_connections: u64,
}

impl TimelineRow {
    /// Actions answered per second, every kind.
    pub fn actions_per_s(&self) -> f64 {
        self.actions.values().map(|k| k.completed_per_s).sum()
    }

    /// Owed deliveries received per second, every group.
    pub fn deliveries_per_s(&self) -> f64 {
        self.groups.values().map(|g| g.deliveries_per_s).sum()
    }

    /// Errors in the interval, every kind.
    pub fn errors(&self) -> u64 {
        self.actions.values().map(|k| k.errors).sum()
    }
}

/// One kind in one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KindRow {
    pub sent: u64,
    /// Answered ok.
    pub ok: u64,
    pub errors: u64,
    /// `(ok + errors) / interval`.
    pub completed_per_s: f64,
    /// Corrected latency of the actions answered in the interval.
    pub latency: IntervalLatency,
    /// The largest send lag (generator lag: intended start → sent) in the interval.
    #[serde(default)]
    pub max_lag_ms: f64,
    /// The interval's errors by error kind (`http_503`, `timeout` …); empty without.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors_by: BTreeMap<String, u64>,
}

/// One group in one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupRow {
    /// Owed deliveries received once (warm-up events included).
    pub deliveries: u64,
    pub deliveries_per_s: f64,
    /// Delivery latency of the measured ones.
    pub latency: IntervalLatency,
}

/// One histogram's interval, in milliseconds (zeros when it recorded nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct IntervalLatency {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl IntervalLatency {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// The interval logs a report carries, one per histogram, written as `<name>.hlog`.
#[derive(Debug, Clone, Default)]
pub struct IntervalLogs {
    /// Wall-clock time of t0: every log's `#[StartTime]`. `None` for reports that were
    /// not sampled (then the writer falls back to the report's `started_at`).
    pub t0: Option<SystemTime>,
    /// From t0 to the end of sampling: the span of a one-interval log.
    pub span: Duration,
    /// Histogram name → its intervals, in order. A histogram missing here gets one
    /// interval `[0, span)`.
    pub logs: BTreeMap<String, Vec<Interval>>,
}

impl IntervalLogs {
    /// The intervals to write for histogram `name` holding `total`: its sampled ones,
    /// completed so they add up exactly to `total` (see `histo::exact_intervals`).
    pub fn exact_for(&self, name: &str, total: &Histogram<u64>) -> Vec<Interval> {
        histo::exact_intervals(total, self.logs.get(name).map_or(&[][..], Vec::as_slice), self.span)
    }
}

/// Everything sampled, once the sampler stopped.
pub struct Sampled {
    pub timeline: Timeline,
    pub t0: SystemTime,
    /// From t0 to the last sample.
    pub span: Duration,
    pub intervals: BTreeMap<String, Vec<Interval>>,
}

impl Sampled {
    /// Puts the timeline and the interval logs into `report`: `model.timeline`,
    /// `intervals` (made exact against `report.histograms`) and `model.histogram_logs`.
    pub fn attach(self, report: &mut Report) {
        let logs = self.logs_for(&report.histograms);
        report.model.histogram_logs = logs.logs.keys().map(|n| (n.clone(), hlog_file(n))).collect();
        report.model.timeline = Some(self.timeline);
        report.intervals = logs;
    }

    /// The interval log of each of `histograms`: its sampled intervals made exact, or
    /// one interval spanning the run for a histogram that was not sampled.
    pub fn logs_for(&self, histograms: &[(String, Histogram<u64>)]) -> IntervalLogs {
        let sampled = IntervalLogs { t0: Some(self.t0), span: self.span, logs: self.intervals.clone() };
        let logs = histograms.iter().map(|(name, h)| (name.clone(), sampled.exact_for(name, h))).collect();
        IntervalLogs { logs, ..sampled }
    }
}
