//! The once-a-second sampler: from t0 until the run stops sampling after the drain,
//! each tick takes the interval of every kind's corrected-latency histogram and every
//! group's delivery-latency histogram and reads every counter of the run's [`Meters`].
//! The rows become the report's `timeline`, the intervals its `.hlog` files, and each
//! row refreshes the live progress line. Kinds and groups registered after the sampler
//! started are picked up at the next tick.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::meters::Meters;
use crate::report::histo::Interval;
use crate::report::names::{self, KindPart};
use crate::report::progress::Progress;
use crate::report::timeline::{GroupRow, IntervalLatency, KindRow, Sampled, TICK, Timeline, TimelineRow};

/// The running sampler; stops (without a final sample) if dropped.
pub struct Sampler {
    task: JoinHandle<(State, Arc<Progress>)>,
    planned: Duration,
    stop: CancellationToken,
    _guard: DropGuard,
}

impl Sampler {
    /// Starts sampling `meters` at `t0` (an instant that may still be ahead), one row per
    /// [`TICK`]. `planned` is the planned traffic phase, for the progress display.
    pub fn start(t0: Instant, planned: Duration, meters: Arc<Meters>, progress: Arc<Progress>) -> Self {
        let stop = CancellationToken::new();
        let mut state = State::new(t0, meters);
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
            (state, progress)
        });
        Self { task, planned, _guard: stop.clone().drop_guard(), stop }
    }

    /// Stops sampling after one last sample (from the previous tick until now). Call it
    /// once nothing records any more (listeners stopped), so the intervals are complete.
    pub async fn finish(self) -> Sampled {
        self.stop.cancel();
        let (mut state, progress) = match self.task.await {
            Ok(done) => done,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        let now = clock();
        let row = state.sample(now);
        progress.traffic(now.saturating_duration_since(state.t0), self.planned, &row);
        state.finish()
    }
}

/// Now, on tokio's clock (the same as `Instant::now()` unless a test paused time).
fn clock() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Cumulative counters at the end of the previous row.
#[derive(Default, Clone)]
struct Last {
    sent: u64,
    ok: u64,
    errors: u64,
    errors_by: BTreeMap<String, u64>,
}

struct State {
    t0: Instant,
    t0_wall: SystemTime,
    meters: Arc<Meters>,
    /// End of the previous row, from t0.
    last: Duration,
    kinds: BTreeMap<String, Last>,
    groups: BTreeMap<String, u64>,
    last_closed: u64,
    rows: Vec<TimelineRow>,
    /// Histogram name → its intervals so far.
    intervals: BTreeMap<String, Vec<Interval>>,
}

impl State {
    fn new(t0: Instant, meters: Arc<Meters>) -> Self {
        let now = clock();
        let t0_wall =
            if t0 >= now { SystemTime::now() + (t0 - now) } else { SystemTime::now() - now.duration_since(t0) };
        Self {
            t0,
            t0_wall,
            last: Duration::ZERO,
            kinds: BTreeMap::new(),
            groups: BTreeMap::new(),
            last_closed: meters.sockets.closed_count(),
            rows: Vec::new(),
            intervals: BTreeMap::new(),
            meters,
        }
    }

    /// Closes the row ending at `now` and returns it.
    fn sample(&mut self, now: Instant) -> TimelineRow {
        let end = now.saturating_duration_since(self.t0).max(self.last);
        let length = end - self.last;
        let per_s = |n: u64| if length.is_zero() { 0.0 } else { n as f64 / length.as_secs_f64() };
        let mut row = TimelineRow { start_s: self.last.as_secs_f64(), end_s: end.as_secs_f64(), ..Default::default() };
        for k in self.meters.kinds() {
            let h = k.take_corrected_interval();
            let now =
                Last { sent: k.sent_count(), ok: k.ok_count(), errors: k.error_count(), errors_by: k.errors_by_kind() };
            let last = self.kinds.insert(k.kind.name().to_owned(), now.clone()).unwrap_or_default();
            let (ok, errors) = (now.ok.saturating_sub(last.ok), now.errors.saturating_sub(last.errors));
            let errors_by = now
                .errors_by
                .iter()
                .map(|(e, n)| (e.clone(), n.saturating_sub(last.errors_by.get(e).copied().unwrap_or(0))))
                .filter(|(_, n)| *n > 0)
                .collect();
            row.actions.insert(
                k.kind.name().to_owned(),
                KindRow {
                    sent: now.sent.saturating_sub(last.sent),
                    ok,
                    errors,
                    completed_per_s: per_s(ok + errors),
                    latency: IntervalLatency::of(&h),
                    max_lag_ms: k.take_interval_max_lag().as_secs_f64() * 1000.0,
                    errors_by,
                },
            );
            self.log(names::kind_histogram(k.kind, KindPart::Corrected).name, length, h);
        }
        for g in self.meters.groups() {
            let h = g.take_latency_interval();
            let now = g.received_count();
            let last = self.groups.insert(g.group.name().to_owned(), now).unwrap_or(0);
            let n = now.saturating_sub(last);
            row.groups.insert(
                g.group.name().to_owned(),
                GroupRow { deliveries: n, deliveries_per_s: per_s(n), latency: IntervalLatency::of(&h) },
            );
            self.log(names::delivery_histogram(g.group).name, length, h);
        }
        row.open_connections = self.meters.sockets.open_now();
        let closed = self.meters.sockets.closed_count();
        row.closed_connections = closed.saturating_sub(self.last_closed);
        self.last_closed = closed;
        self.last = end;
        self.rows.push(row.clone());
        row
    }

    /// Appends an interval to histogram `name`'s log (a histogram first seen now gets
    /// an empty interval for each earlier row, so every log spans the same rows).
    fn log(&mut self, name: String, length: Duration, histogram: hdrhistogram::Histogram<u64>) {
        let start = self.last;
        let earlier: Vec<(Duration, Duration)> = self
            .rows
            .iter()
            .map(|r| (Duration::from_secs_f64(r.start_s), Duration::from_secs_f64(r.end_s - r.start_s)))
            .collect();
        let log = self.intervals.entry(name).or_insert_with(|| {
            earlier
                .into_iter()
                .map(|(start, length)| Interval { start, length, histogram: crate::report::histo::new_histogram() })
                .collect()
        });
        log.push(Interval { start, length, histogram });
    }

    fn finish(self) -> Sampled {
        Sampled {
            timeline: Timeline {
                t0_unix_s: self.t0_wall.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs_f64(),
                interval_s: TICK.as_secs_f64(),
                rows: self.rows,
            },
            t0: self.t0_wall,
            span: self.last,
            intervals: self.intervals,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::stats::KindStats;
    use crate::report::histo;
    use crate::report::names::{Group, Kind};

    #[tokio::test(start_paused = true)]
    async fn one_row_per_second_and_the_rows_add_up() {
        let meters = Arc::new(Meters::default());
        let kind = meters.add_kind(KindStats::new(Kind::CreateBookmark, 100.0, 350, Duration::from_millis(50)));
        let group = meters.group(Group::Firehose);
        let t0 = clock() + Duration::from_millis(50);
        let sampler = Sampler::start(t0, Duration::from_secs(3), Arc::clone(&meters), Progress::off());
        // 10 answers per 100 ms for 3.5 s, each delivered twice.
        tokio::time::sleep_until(t0.into()).await;
        for i in 0..35u64 {
            for k in 0..10 {
                let now = clock();
                let d = Duration::from_micros(100 * (i + 1));
                kind.sent(k, now, now);
                kind.answered(k, true, now - d, Some(now), now, Ok(()));
                group.received(k, d, 1, true, None);
                group.received(k + 1, d, 1, true, None);
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
        assert_eq!(rows.iter().map(|r| r.actions["create_bookmark"].ok).sum::<u64>(), 350);
        assert_eq!(rows.iter().map(|r| r.groups["firehose"].deliveries).sum::<u64>(), 700);
        assert!((rows[1].actions_per_s() - 100.0).abs() < 1.0, "{}", rows[1].actions_per_s());
        assert!(rows[2].actions["create_bookmark"].latency.p50_ms > rows[0].actions["create_bookmark"].latency.p50_ms);
        let ivs = &sampled.intervals["action_create_bookmark_corrected"];
        assert_eq!(ivs.len(), 4);
        let all = kind.histograms().remove(0).1;
        assert!(histo::same_counts(&histo::merge(ivs.iter().map(|i| i.histogram.clone())), &all));
    }
}
