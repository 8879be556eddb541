//! What a run looks like over time. A sampler task ticks every second from t0 (the
//! first intended start) until the run stops sampling after the drain; each tick takes
//! the interval of every sampled histogram (`histo::Sharded::take_interval`) and reads
//! the run's counters. The rows become the report's `timeline` (per-second rates,
//! p50/p99 per interval, open connections, errors) and the intervals become the `.hlog`
//! files; each row also refreshes the live progress line.
//!
//! What is sampled is wired by the run through [`Probes`]: closures that take a
//! histogram's interval or read a cumulative counter. Histograms of the report that no
//! probe samples still get an interval log, of one interval spanning the run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::report::Report;
use crate::report::files::hlog_file_name;
use crate::report::histo::{self, Interval};
use crate::report::progress::Progress;

/// Nominal length of one row and one `.hlog` interval.
pub const TICK: Duration = Duration::from_secs(1);

type HistogramProbe = Box<dyn Fn() -> Histogram<u64> + Send + Sync>;
type CounterProbe = Box<dyn Fn() -> u64 + Send + Sync>;

/// What the sampler reads each tick.
#[derive(Default)]
pub struct Probes {
    /// Histogram name (as in the report) → takes its interval.
    histograms: Vec<(String, HistogramProbe)>,
    /// Listener group → deliveries received so far (cumulative).
    deliveries: Vec<(String, CounterProbe)>,
    /// Requests sent, responses, errors so far (cumulative).
    requests: Option<[CounterProbe; 3]>,
    /// Sockets open now (a gauge) and sockets closed by the server so far (cumulative).
    connections: Option<[CounterProbe; 2]>,
}

impl Probes {
    /// Samples histogram `name` through `take` (normally `Sharded::take_interval`).
    pub fn histogram(
        mut self,
        name: impl Into<String>,
        take: impl Fn() -> Histogram<u64> + Send + Sync + 'static,
    ) -> Self {
        self.histograms.push((name.into(), Box::new(take)));
        self
    }

    /// Deliveries received by listener group `group` so far.
    pub fn deliveries(mut self, group: impl Into<String>, received: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.deliveries.push((group.into(), Box::new(received)));
        self
    }

    /// Requests sent, responses received and errors so far.
    pub fn requests(
        mut self,
        sent: impl Fn() -> u64 + Send + Sync + 'static,
        responses: impl Fn() -> u64 + Send + Sync + 'static,
        errors: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Self {
        self.requests = Some([Box::new(sent), Box::new(responses), Box::new(errors)]);
        self
    }

    /// Sockets open now and sockets the server closed so far.
    pub fn connections(
        mut self,
        open: impl Fn() -> u64 + Send + Sync + 'static,
        closed: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Self {
        self.connections = Some([Box::new(open), Box::new(closed)]);
        self
    }
}

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
    /// Requests sent, responses received and request errors in the interval.
    pub requests_sent: u64,
    pub responses: u64,
    pub errors: u64,
    /// `responses / (end_s − start_s)`.
    pub requests_per_s: f64,
    /// Listener group → deliveries received in the interval (warm-up events included).
    pub deliveries: BTreeMap<String, u64>,
    /// Listener group → `deliveries / (end_s − start_s)`.
    pub deliveries_per_s: BTreeMap<String, f64>,
    /// Sampled histogram → what it recorded in the interval.
    pub latency: BTreeMap<String, IntervalLatency>,
    /// Listener sockets open at the end of the interval.
    pub open_connections: u64,
    /// Listener sockets the server closed during the interval.
    pub closed_connections: u64,
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
        report.model.histogram_logs = logs.logs.keys().map(|n| (n.clone(), hlog_file_name(n))).collect();
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

/// The running sampler; stops (without a final sample) if dropped.
pub struct Sampler {
    task: JoinHandle<State>,
    stop: CancellationToken,
    _guard: DropGuard,
}

impl Sampler {
    /// Starts sampling at `t0` (an instant that may still be ahead), one row per
    /// [`TICK`]. `planned` is the planned traffic phase, for the progress display.
    pub fn start(t0: Instant, planned: Duration, probes: Probes, progress: Arc<Progress>) -> Self {
        let stop = CancellationToken::new();
        let mut state = State::new(t0, probes);
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut next = t0 + TICK;
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(next.into()) => {}
                    () = token.cancelled() => break,
                }
                let now = clock();
                let row = state.sample(now);
                progress.traffic(now.saturating_duration_since(t0), planned, &row);
                while next <= now {
                    next += TICK;
                }
            }
            state
        });
        Self { task, _guard: stop.clone().drop_guard(), stop }
    }

    /// Stops sampling after one last sample (from the previous tick until now). Call it
    /// once nothing records any more (listeners stopped), so the intervals are complete.
    pub async fn finish(self) -> Sampled {
        self.stop.cancel();
        let mut state = match self.task.await {
            Ok(state) => state,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        state.sample(clock());
        state.finish()
    }
}

/// Now, on tokio's clock (the same as `Instant::now()` unless a test paused time).
fn clock() -> Instant {
    tokio::time::Instant::now().into_std()
}

struct State {
    t0: Instant,
    t0_wall: SystemTime,
    probes: Probes,
    /// End of the previous row, from t0.
    last: Duration,
    /// Counter readings at the end of the previous row.
    last_requests: [u64; 3],
    last_deliveries: Vec<u64>,
    last_closed: u64,
    rows: Vec<TimelineRow>,
    intervals: Vec<Vec<Interval>>,
}

impl State {
    fn new(t0: Instant, probes: Probes) -> Self {
        let now = clock();
        let t0_wall =
            if t0 >= now { SystemTime::now() + (t0 - now) } else { SystemTime::now() - now.duration_since(t0) };
        let read = |p: &Option<[CounterProbe; 3]>| p.as_ref().map_or([0; 3], |[a, b, c]| [a(), b(), c()]);
        Self {
            t0,
            t0_wall,
            last: Duration::ZERO,
            last_requests: read(&probes.requests),
            last_deliveries: probes.deliveries.iter().map(|(_, f)| f()).collect(),
            last_closed: probes.connections.as_ref().map_or(0, |[_, closed]| closed()),
            rows: Vec::new(),
            intervals: probes.histograms.iter().map(|_| Vec::new()).collect(),
            probes,
        }
    }

    /// Closes the row ending at `now` and returns it.
    fn sample(&mut self, now: Instant) -> TimelineRow {
        let end = now.saturating_duration_since(self.t0).max(self.last);
        let length = end - self.last;
        let per_s = |n: u64| if length.is_zero() { 0.0 } else { n as f64 / length.as_secs_f64() };
        let mut row = TimelineRow { start_s: self.last.as_secs_f64(), end_s: end.as_secs_f64(), ..Default::default() };
        for ((name, take), log) in self.probes.histograms.iter().zip(&mut self.intervals) {
            let h = take();
            row.latency.insert(name.clone(), IntervalLatency::of(&h));
            log.push(Interval { start: self.last, length, histogram: h });
        }
        if let Some([sent, responses, errors]) = &self.probes.requests {
            let now = [sent(), responses(), errors()];
            let delta: Vec<u64> = now.iter().zip(self.last_requests).map(|(n, l)| n.saturating_sub(l)).collect();
            (row.requests_sent, row.responses, row.errors) = (delta[0], delta[1], delta[2]);
            row.requests_per_s = per_s(row.responses);
            self.last_requests = now;
        }
        for ((group, received), last) in self.probes.deliveries.iter().zip(&mut self.last_deliveries) {
            let now = received();
            let n = now.saturating_sub(*last);
            *last = now;
            row.deliveries.insert(group.clone(), n);
            row.deliveries_per_s.insert(group.clone(), per_s(n));
        }
        if let Some([open, closed]) = &self.probes.connections {
            row.open_connections = open();
            let closed = closed();
            row.closed_connections = closed.saturating_sub(self.last_closed);
            self.last_closed = closed;
        }
        self.last = end;
        self.rows.push(row.clone());
        row
    }

    fn finish(self) -> Sampled {
        let intervals = self.probes.histograms.iter().map(|(n, _)| n.clone()).zip(self.intervals).collect();
        Sampled {
            timeline: Timeline {
                t0_unix_s: self.t0_wall.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs_f64(),
                interval_s: TICK.as_secs_f64(),
                rows: self.rows,
            },
            t0: self.t0_wall,
            span: self.last,
            intervals,
        }
    }
}

/// The firehose run's probes: request latencies, generator lag, listener connects and
/// each group's deliveries (histogram and count), request counters, open sockets.
pub(crate) fn firehose_probes(
    shared: &Arc<crate::workloads::bookmarks::listeners::Shared>,
    generator: &Arc<crate::workloads::bookmarks::generator::Generator>,
) -> Probes {
    use std::sync::atomic::Ordering::Relaxed;

    use crate::workloads::bookmarks::ledger::Group;
    let g = |f: fn(&crate::workloads::bookmarks::generator::Stats) -> u64| {
        let generator = Arc::clone(generator);
        move || f(&generator.stats)
    };
    let s = |f: fn(&crate::workloads::bookmarks::listeners::Shared) -> u64| {
        let shared = Arc::clone(shared);
        move || f(&shared)
    };
    let take_g = |f: fn(&crate::workloads::bookmarks::generator::Stats) -> &histo::Sharded| {
        let generator = Arc::clone(generator);
        move || f(&generator.stats).take_interval()
    };
    let mut probes = Probes::default()
        .histogram("request_corrected", take_g(|s| &s.corrected))
        .histogram("request_uncorrected", take_g(|s| &s.uncorrected))
        .histogram("generator_lag", take_g(|s| &s.lag))
        .histogram("listener_connect", {
            let shared = Arc::clone(shared);
            move || shared.connect.take_interval()
        })
        .requests(g(|s| s.sent.load(Relaxed)), g(|s| s.responses.load(Relaxed)), g(|s| s.errors.lock().values().sum()))
        .connections(s(|s| s.joined.load(Relaxed).saturating_sub(closed_during_run(s))), s(closed_during_run));
    for group in Group::ALL {
        let (a, b) = (Arc::clone(shared), Arc::clone(shared));
        probes = probes
            .histogram(format!("delivery_{}", group.name()), move || a.delivery[group as usize].take_interval())
            .deliveries(group.name(), move || b.ledger.tally(group, 0).received);
    }
    probes
}

/// Sockets or channels the server closed after they joined (`during_run:*` failures).
fn closed_during_run(shared: &crate::workloads::bookmarks::listeners::Shared) -> u64 {
    shared.failures.lock().iter().filter(|(k, _)| k.starts_with("during_run:")).map(|(_, n)| n).sum()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::report::histo::Sharded;

    #[tokio::test(start_paused = true)]
    async fn one_row_per_second_and_the_rows_add_up() {
        let h = Arc::new(Sharded::new(4));
        let count = Arc::new(AtomicU64::new(0));
        let probes = Probes::default()
            .histogram("x", {
                let h = Arc::clone(&h);
                move || h.take_interval()
            })
            .requests(
                {
                    let c = Arc::clone(&count);
                    move || c.load(Ordering::Relaxed)
                },
                {
                    let c = Arc::clone(&count);
                    move || c.load(Ordering::Relaxed)
                },
                || 0,
            )
            .deliveries("firehose", {
                let c = Arc::clone(&count);
                move || 2 * c.load(Ordering::Relaxed)
            })
            .connections(|| 7, || 0);
        let t0 = clock() + Duration::from_millis(50);
        let sampler = Sampler::start(t0, Duration::from_secs(3), probes, Progress::off());
        // 10 values per 100 ms for 3.5 s.
        tokio::time::sleep_until(t0.into()).await;
        for i in 0..35u64 {
            for k in 0..10 {
                h.record(k, Duration::from_micros(100 * (i + 1)));
                count.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let sampled = sampler.finish().await;
        let rows = &sampled.timeline.rows;
        assert_eq!(rows.len(), 4, "{rows:#?}");
        for w in rows.windows(2) {
            assert_eq!(w[0].end_s, w[1].start_s);
        }
        assert!((rows[0].end_s - 1.0).abs() < 0.01, "{}", rows[0].end_s);
        assert_eq!(rows.iter().map(|r| r.responses).sum::<u64>(), 350);
        assert_eq!(rows.iter().map(|r| r.deliveries["firehose"]).sum::<u64>(), 700);
        assert_eq!(rows.iter().map(|r| r.latency["x"].count).sum::<u64>(), 350);
        assert!((rows[1].requests_per_s - 100.0).abs() < 1.0, "{}", rows[1].requests_per_s);
        assert!(rows.iter().all(|r| r.open_connections == 7));
        // Later intervals recorded larger values.
        assert!(rows[2].latency["x"].p50_ms > rows[0].latency["x"].p50_ms);
        let ivs = &sampled.intervals["x"];
        assert_eq!(ivs.len(), 4);
        assert!(histo::same_counts(&histo::merge(ivs.iter().map(|i| i.histogram.clone())), &h.merged()));
    }
}
