//! One traffic kind's figures, the same for every kind: latency from the intended start
//! (corrected for coordinated omission) and from the actual send (uncorrected), send
//! lag, counts of scheduled / sent / ok / skipped / late actions, errors by kind, and
//! the report entry made of them. Recording is lock-free on the hot path (sharded
//! histograms, atomics); only an error takes a short lock.
//!
//! The lag rule lives here once: an action sent later than `--max-lag` after its
//! intended start is *late*, and a run with any late action is invalid, whatever
//! workload it belongs to.
//!
//! Kinds whose answer comes back elsewhere than where they were sent (a push answered
//! on the socket's reader) keep a per-action [`Settlement`] so each action is settled
//! exactly once, and actions still unanswered when the run ends become `timeout`s.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;

use crate::report::histo::{self, Sharded, Summary};
use crate::report::model::ActionReport;
use crate::report::names::{self, HistogramName, Kind, KindPart};

const SHARDS: usize = 8;

/// The figures of one kind, shared by whatever fires and answers its actions.
pub struct KindStats {
    pub kind: Kind,
    /// Mean planned rate over the traffic phase (for the report).
    pub rate_per_s: f64,
    max_lag: Duration,
    corrected: Sharded,
    uncorrected: Sharded,
    lag: Sharded,
    scheduled: AtomicU64,
    sent: AtomicU64,
    ok: AtomicU64,
    skipped: AtomicU64,
    late: AtomicU64,
    failed: AtomicU64,
    max_lag_us: AtomicU64,
    /// The largest lag since the sampler last took it.
    interval_max_lag_us: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    detail: Mutex<BTreeMap<String, u64>>,
}

impl KindStats {
    /// A kind planned at `rate_per_s` with `scheduled` actions; actions sent more than
    /// `max_lag` after their intended start count as late.
    pub fn new(kind: Kind, rate_per_s: f64, scheduled: u64, max_lag: Duration) -> Self {
        Self {
            kind,
            rate_per_s,
            max_lag,
            corrected: Sharded::new(SHARDS),
            uncorrected: Sharded::new(SHARDS),
            lag: Sharded::new(SHARDS),
            scheduled: AtomicU64::new(scheduled),
            sent: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            late: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            max_lag_us: AtomicU64::new(0),
            interval_max_lag_us: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            detail: Mutex::new(BTreeMap::new()),
        }
    }

    /// More actions became scheduled (a storm's drops are known per socket).
    pub fn add_scheduled(&self, n: u64) {
        self.scheduled.fetch_add(n, Ordering::Relaxed);
    }

    /// Action `key` goes out `at`, intended at `intended`: its lag, and whether it is late.
    pub fn sent(&self, key: usize, intended: Instant, at: Instant) {
        let lag = at.saturating_duration_since(intended);
        self.lag.record(key, lag);
        self.max_lag_us.fetch_max(histo::micros(lag), Ordering::Relaxed);
        self.interval_max_lag_us.fetch_max(histo::micros(lag), Ordering::Relaxed);
        if lag > self.max_lag {
            self.late.fetch_add(1, Ordering::Relaxed);
        }
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Action `key` was answered at `done`; `measured` unless it was in the warm-up.
    /// `outcome` is `Err(kind)` for a failure that still took an answer (an HTTP error
    /// status, an error reply): its latency counts like a success's.
    pub fn answered(
        &self,
        key: usize,
        measured: bool,
        intended: Instant,
        sent: Option<Instant>,
        done: Instant,
        outcome: Result<(), &str>,
    ) {
        if measured {
            self.corrected.record(key, done.saturating_duration_since(intended));
            if let Some(sent) = sent {
                self.uncorrected.record(key, done.saturating_duration_since(sent));
            }
        }
        match outcome {
            Ok(()) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(kind) => self.error(kind),
        }
    }

    /// An action failed without an answer (transport error, timeout, never sent).
    pub fn error(&self, kind: &str) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        *self.errors.lock().entry(kind.to_owned()).or_default() += 1;
    }

    /// An action had nothing to act on (no quiet typist, no like to undo): neither ok
    /// nor an error.
    pub fn skip(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to the kind-specific count `name` (e.g. `replayed`).
    pub fn add_detail(&self, name: &str, n: u64) {
        *self.detail.lock().entry(name.to_owned()).or_default() += n;
    }

    /// Raises the kind-specific count `name` to at least `n`.
    pub fn max_detail(&self, name: &str, n: u64) {
        let mut d = self.detail.lock();
        let v = d.entry(name.to_owned()).or_default();
        *v = (*v).max(n);
    }

    pub fn sent_count(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    pub fn ok_count(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    pub fn error_count(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    pub fn late_count(&self) -> u64 {
        self.late.load(Ordering::Relaxed)
    }

    pub fn scheduled_count(&self) -> u64 {
        self.scheduled.load(Ordering::Relaxed)
    }

    pub fn max_lag(&self) -> Duration {
        Duration::from_micros(self.max_lag_us.load(Ordering::Relaxed))
    }

    /// The largest send lag since the last call (the sampler's).
    pub fn take_interval_max_lag(&self) -> Duration {
        Duration::from_micros(self.interval_max_lag_us.swap(0, Ordering::Relaxed))
    }

    /// Errors so far by error kind (`http_503`, `timeout` …).
    pub fn errors_by_kind(&self) -> BTreeMap<String, u64> {
        self.errors.lock().clone()
    }

    /// The corrected-latency histogram's interval since the last call (the sampler's).
    pub fn take_corrected_interval(&self) -> Histogram<u64> {
        self.corrected.take_interval()
    }

    /// The histograms of this kind, named, as recorded so far.
    pub fn histograms(&self) -> Vec<(HistogramName, Histogram<u64>)> {
        KindPart::ALL
            .into_iter()
            .map(|part| {
                let h = match part {
                    KindPart::Corrected => self.corrected.merged(),
                    KindPart::Uncorrected => self.uncorrected.merged(),
                    KindPart::Lag => self.lag.merged(),
                };
                (names::kind_histogram(self.kind, part), h)
            })
            .collect()
    }

    /// The report entry (`actions.<kind>`); `traffic` is the traffic phase's length.
    pub fn entry(&self, traffic: Duration) -> ActionReport {
        let ok = self.ok_count();
        ActionReport {
            rate_per_s: self.rate_per_s,
            scheduled: self.scheduled_count(),
            sent: self.sent_count(),
            ok,
            skipped: self.skipped.load(Ordering::Relaxed),
            late: self.late_count(),
            max_lag_ms: self.max_lag().as_secs_f64() * 1000.0,
            errors: self.errors.lock().clone(),
            error_count: self.error_count(),
            throughput_per_s: ok as f64 / traffic.as_secs_f64().max(1e-9),
            latency_corrected: Summary::of(&self.corrected.merged()),
            latency_uncorrected: Summary::of(&self.uncorrected.merged()),
            lag: Summary::of(&self.lag.merged()),
            detail: self.detail.lock().clone(),
        }
    }
}

/// Action states of a [`Settlement`].
const PENDING: u8 = 0;
const OK: u8 = 1;
const FAILED: u8 = 2;

/// Per action of a kind: when it was sent and whether it was settled, so that an
/// answer arriving on another task settles it exactly once.
pub struct Settlement {
    state: Box<[AtomicU8]>,
    /// Nanoseconds after t0 + 1 of the send, 0 until sent.
    sent_ns: Box<[AtomicU64]>,
    settled: AtomicU64,
}

impl Settlement {
    pub fn new(actions: usize) -> Self {
        Self {
            state: (0..actions).map(|_| AtomicU8::new(PENDING)).collect(),
            sent_ns: (0..actions).map(|_| AtomicU64::new(0)).collect(),
            settled: AtomicU64::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.state.len()
    }

    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    /// Action `i` was sent `at`.
    pub fn mark_sent(&self, i: usize, t0: Instant, at: Instant) {
        if let Some(s) = self.sent_ns.get(i) {
            let ns = u64::try_from(at.saturating_duration_since(t0).as_nanos()).unwrap_or(u64::MAX - 1);
            s.store(ns + 1, Ordering::Release);
        }
    }

    pub fn sent_at(&self, i: usize, t0: Instant) -> Option<Instant> {
        let ns = self.sent_ns.get(i)?.load(Ordering::Acquire);
        (ns > 0).then(|| t0 + Duration::from_nanos(ns - 1))
    }

    /// Claims action `i`'s settlement as ok or failed; false if it was settled already
    /// (or is unknown).
    pub fn settle(&self, i: usize, ok: bool) -> bool {
        let to = if ok { OK } else { FAILED };
        let claimed = self
            .state
            .get(i)
            .is_some_and(|s| s.compare_exchange(PENDING, to, Ordering::AcqRel, Ordering::Acquire).is_ok());
        if claimed {
            self.settled.fetch_add(1, Ordering::AcqRel);
        }
        claimed
    }

    pub fn is_settled(&self, i: usize) -> bool {
        self.state.get(i).is_some_and(|s| s.load(Ordering::Acquire) != PENDING)
    }

    /// Whether action `i` settled ok.
    pub fn is_ok(&self, i: usize) -> bool {
        self.state.get(i).is_some_and(|s| s.load(Ordering::Acquire) == OK)
    }

    /// Actions settled so far.
    pub fn settled(&self) -> u64 {
        self.settled.load(Ordering::Acquire)
    }

    /// Settles every action still pending as failed with `kind` in `stats` (e.g. a
    /// push never answered: `timeout`); returns how many.
    pub fn expire(&self, stats: &KindStats, kind: &str) -> u64 {
        let mut n = 0;
        for i in 0..self.state.len() {
            if self.settle(i, false) {
                stats.error(kind);
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_counts_lag_late_errors_and_latency_once_each() {
        let s = KindStats::new(Kind::Like, 10.0, 4, Duration::from_millis(50));
        let t = Instant::now();
        s.sent(0, t, t + Duration::from_millis(1));
        s.answered(0, true, t, Some(t + Duration::from_millis(1)), t + Duration::from_millis(11), Ok(()));
        s.sent(1, t, t + Duration::from_millis(80));
        s.answered(1, true, t, Some(t + Duration::from_millis(80)), t + Duration::from_millis(90), Err("http_500"));
        s.sent(2, t, t);
        s.error("timeout");
        s.skip();
        let e = s.entry(Duration::from_secs(1));
        assert_eq!((e.scheduled, e.sent, e.ok, e.skipped, e.late, e.error_count), (4, 3, 1, 1, 1, 2));
        assert_eq!(e.errors.get("http_500"), Some(&1));
        assert_eq!(e.errors.get("timeout"), Some(&1));
        assert_eq!(e.latency_corrected.count, 2);
        assert!((e.max_lag_ms - 80.0).abs() < 0.5, "{}", e.max_lag_ms);
        let names: Vec<String> = s.histograms().into_iter().map(|(n, _)| n.name).collect();
        assert_eq!(names, ["action_like_corrected", "action_like_uncorrected", "action_like_lag"]);
    }

    #[test]
    fn a_settlement_settles_each_action_once_and_expires_the_rest() {
        let s = KindStats::new(Kind::ChatMessage, 1.0, 3, Duration::from_millis(50));
        let settle = Settlement::new(3);
        let t0 = Instant::now();
        settle.mark_sent(1, t0, t0 + Duration::from_millis(5));
        assert_eq!(settle.sent_at(1, t0), Some(t0 + Duration::from_millis(5)));
        assert_eq!(settle.sent_at(0, t0), None);
        assert!(settle.settle(1, true));
        assert!(!settle.settle(1, false), "twice");
        assert!(!settle.settle(9, true), "unknown");
        assert!(settle.is_ok(1) && !settle.is_ok(0));
        assert_eq!(settle.expire(&s, "timeout"), 2);
        assert_eq!(settle.settled(), 3);
        assert_eq!(s.error_count(), 2);
    }
}
