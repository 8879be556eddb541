//! Delivery accounting, the same for every listener group: what each event owed and
//! what arrived, per (listener, event).
//!
//! - [`Seen`]: one listener's received events, deduplicated (a compact range set; in
//!   order deliveries keep it at one range). A second delivery of an event at the same
//!   listener is a duplicate and never counts as a receipt.
//! - [`EventLedger`]: per event, the deliveries owed (its audience) and the owed
//!   deliveries received once, plus the latest receipt so far for its reach marks.
//!   Loss is Σ over events of owed − received, which equals Σ over listeners of the
//!   events each was owed and never got: a duplicate at one listener can never hide a
//!   loss at another.
//! - [`GroupStats`]: a group's delivery latency, reach marks, counters (duplicates,
//!   unowed and private deliveries, seq order) and its report entry.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

use crate::phoenix::SeqCheck;
use crate::report::histo::{Sharded, Summary};
use crate::report::model::{GroupReport, LateReport, ReachReport};
use crate::report::names::{self, Group, HistogramName, REACH_MARKS};

const SHARDS: usize = 16;

/// One listener's received events (by index), each once.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Disjoint `[start, end)` ranges in ascending order.
    ranges: Vec<(u64, u64)>,
}

impl Seen {
    /// Adds event `i`; false when it was already there (a duplicate).
    pub fn insert(&mut self, i: u64) -> bool {
        // The first range starting after `i`.
        let at = self.ranges.partition_point(|&(start, _)| start <= i);
        if at > 0 && i < self.ranges[at - 1].1 {
            return false;
        }
        let joins_left = at > 0 && self.ranges[at - 1].1 == i;
        let joins_right = at < self.ranges.len() && self.ranges[at].0 == i + 1;
        match (joins_left, joins_right) {
            (true, true) => {
                self.ranges[at - 1].1 = self.ranges[at].1;
                self.ranges.remove(at);
            }
            (true, false) => self.ranges[at - 1].1 = i + 1,
            (false, true) => self.ranges[at].0 = i,
            (false, false) => self.ranges.insert(at, (i, i + 1)),
        }
        true
    }

    pub fn contains(&self, i: u64) -> bool {
        let at = self.ranges.partition_point(|&(start, _)| start <= i);
        at > 0 && i < self.ranges[at - 1].1
    }

    /// Distinct events received.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| e - s).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The events received, in order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.ranges.iter().flat_map(|&(s, e)| s..e)
    }
}

/// Per event: deliveries owed, owed deliveries received once, latest receipt.
pub struct EventLedger {
    owed: Box<[AtomicU32]>,
    got: Box<[AtomicU32]>,
    /// µs after the event's intended start of the latest receipt so far.
    latest: Box<[AtomicU64]>,
}

/// An event ledger's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owed {
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    /// First deliveries beyond what their event owed in the end (an event that turned
    /// out to owe nothing: its action failed, or was private): unowed deliveries.
    pub beyond: u64,
}

impl EventLedger {
    pub fn new(events: usize) -> Self {
        Self {
            owed: (0..events).map(|_| AtomicU32::new(0)).collect(),
            got: (0..events).map(|_| AtomicU32::new(0)).collect(),
            latest: (0..events).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.owed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.owed.is_empty()
    }

    /// Event `i` owes `n` deliveries.
    pub fn set_owed(&self, i: u64, n: u32) {
        if let Some(o) = self.owed.get(i as usize) {
            o.store(n, Ordering::Release);
        }
    }

    /// Event `i` owes `n` more deliveries.
    pub fn add_owed(&self, i: u64, n: u32) {
        if let Some(o) = self.owed.get(i as usize) {
            o.fetch_add(n, Ordering::AcqRel);
        }
    }

    pub fn owed(&self, i: u64) -> u32 {
        self.owed.get(i as usize).map_or(0, |o| o.load(Ordering::Acquire))
    }

    /// An owed delivery of event `i` arrived (first time at its listener), `elapsed`
    /// after the event's intended start: its number among the event's received
    /// deliveries (1-based, 0 for an unknown event) and the latest receipt so far (for
    /// reach marks: counting order may differ from receipt order by scheduling jitter,
    /// so each mark takes the latest receipt counted so far, never an earlier one).
    pub fn received(&self, i: u64, elapsed: Duration) -> (u32, Duration) {
        let (Some(got), Some(latest)) = (self.got.get(i as usize), self.latest.get(i as usize)) else {
            return (0, elapsed);
        };
        let us = crate::report::histo::micros(elapsed);
        let latest = latest.fetch_max(us, Ordering::AcqRel).max(us);
        (got.fetch_add(1, Ordering::AcqRel) + 1, Duration::from_micros(latest))
    }

    /// Totals over every event (owed is what was set or added by now).
    pub fn owed_totals(&self) -> Owed {
        let mut t = Owed::default();
        for (owed, got) in self.owed.iter().zip(self.got.iter()) {
            let (o, g) = (u64::from(owed.load(Ordering::Acquire)), u64::from(got.load(Ordering::Acquire)));
            t.expected += o;
            t.received += g.min(o);
            t.lost += o.saturating_sub(g);
            t.beyond += g.saturating_sub(o);
        }
        t
    }

    /// Whether every owed delivery arrived.
    pub fn all_delivered(&self) -> bool {
        self.owed.iter().zip(self.got.iter()).all(|(o, g)| g.load(Ordering::Acquire) >= o.load(Ordering::Acquire))
    }
}

/// The delivery count at which `fraction` of `audience` has the event (at least 1).
fn mark(audience: u32, fraction: f64) -> u32 {
    ((f64::from(audience) * fraction - 1e-9).ceil() as u32).clamp(1, audience)
}

/// One listener group's figures.
pub struct GroupStats {
    pub group: Group,
    latency: Sharded,
    reach: [Sharded; 3],
    /// Listeners of the group that joined.
    listeners: AtomicU64,
    /// Distinct topics they joined.
    topics: AtomicU64,
    /// Owed deliveries received once (live, for the timeline and progress).
    received: AtomicU64,
    /// Owed deliveries received once of events past the warm-up.
    measured_received: AtomicU64,
    duplicates: AtomicU64,
    unowed: AtomicU64,
    private_leak: AtomicU64,
    reordered: AtomicU64,
    gaps: AtomicU64,
    foreign: AtomicU64,
    decode_errors: AtomicU64,
    /// Nanoseconds after t0 of the last measured receipt (0: none yet).
    last_measured_ns: AtomicU64,
    /// Set once the run ended: what was owed and lost, per (listener, event).
    settled: Mutex<Option<(crate::engine::delivery::Owed, u64)>>,
    late: Mutex<Option<LateReport>>,
    topic_listeners: Mutex<BTreeMap<String, u64>>,
}

impl GroupStats {
    pub fn new(group: Group) -> Self {
        Self {
            group,
            latency: Sharded::new(SHARDS),
            reach: [Sharded::new(8), Sharded::new(8), Sharded::new(8)],
            listeners: AtomicU64::new(0),
            topics: AtomicU64::new(0),
            received: AtomicU64::new(0),
            measured_received: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            unowed: AtomicU64::new(0),
            private_leak: AtomicU64::new(0),
            reordered: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            foreign: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
            last_measured_ns: AtomicU64::new(0),
            settled: Mutex::new(None),
            late: Mutex::new(None),
            topic_listeners: Mutex::new(BTreeMap::new()),
        }
    }

    /// A listener of the group joined.
    pub fn joined(&self) {
        self.listeners.fetch_add(1, Ordering::Relaxed);
    }

    pub fn listeners(&self) -> u64 {
        self.listeners.load(Ordering::Relaxed)
    }

    /// The group's listeners joined `n` distinct topics.
    pub fn set_topics(&self, n: u64) {
        self.topics.store(n, Ordering::Relaxed);
    }

    /// Joined listeners per topic (reported for the `tag` group).
    pub fn set_topic_listeners(&self, per_topic: BTreeMap<String, u64>) {
        *self.topic_listeners.lock() = per_topic;
    }

    /// An owed delivery arrived at a listener for the first time, `elapsed` after its
    /// event's intended start (`at_ns` after t0). `measured` unless the event was in
    /// the warm-up; `reach` is `(audience, nth, latest)` when the event's audience is
    /// known on arrival (see [`EventLedger::received`]).
    pub fn received(
        &self,
        key: usize,
        elapsed: Duration,
        at_ns: u64,
        measured: bool,
        reach: Option<(u32, u32, Duration)>,
    ) {
        self.received.fetch_add(1, Ordering::Relaxed);
        if !measured {
            return;
        }
        self.measured_received.fetch_add(1, Ordering::Relaxed);
        self.last_measured_ns.fetch_max(at_ns, Ordering::Relaxed);
        self.latency.record(key, elapsed);
        if let Some((audience, nth, latest)) = reach {
            self.reach_arrived(audience, nth, latest, key);
        }
    }

    /// A delivery matched to its event only after the run (`like_count`,
    /// `notification`): its latency, without touching the live counters.
    pub fn matched(&self, key: usize, elapsed: Duration, at_ns: u64) {
        self.measured_received.fetch_add(1, Ordering::Relaxed);
        self.last_measured_ns.fetch_max(at_ns, Ordering::Relaxed);
        self.latency.record(key, elapsed);
    }

    /// A delivery that will be matched to its event after the run, counted live now.
    pub fn arrived(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// An owed delivery arrived at a listener for the first time (`at_ns` after t0) that
    /// has no intended start to be timed from (a page reader's leave): counted like any
    /// other receipt, including `deliveries_per_s` when `measured`, but in no latency or
    /// reach figure.
    pub fn received_untimed(&self, at_ns: u64, measured: bool) {
        self.received.fetch_add(1, Ordering::Relaxed);
        if measured {
            self.measured_received.fetch_add(1, Ordering::Relaxed);
            self.last_measured_ns.fetch_max(at_ns, Ordering::Relaxed);
        }
    }

    /// The `nth` owed delivery of an event with `audience` arrived, the latest receipt
    /// so far `latest` after its intended start: records the marks it reaches.
    pub fn reach_arrived(&self, audience: u32, nth: u32, latest: Duration, key: usize) {
        if audience == 0 {
            return;
        }
        for (k, (_, fraction)) in REACH_MARKS.iter().enumerate() {
            if nth == mark(audience, *fraction) {
                self.reach[k].record(key, latest);
            }
        }
    }

    /// An event owed to `audience` listeners reached them after each of `elapsed` (in
    /// any order; fewer than `audience` when some never got it): the marks reached, for
    /// deliveries matched to their event only once the run ended.
    pub fn reach_event(&self, audience: u32, elapsed: &mut [Duration], key: usize) {
        if audience == 0 {
            return;
        }
        elapsed.sort_unstable();
        for (k, (_, fraction)) in REACH_MARKS.iter().enumerate() {
            if let Some(&at) = elapsed.get(mark(audience, *fraction) as usize - 1) {
                self.reach[k].record(key, at);
            }
        }
    }

    /// A listener received an event it already had.
    pub fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    /// A delivery nobody was owed: the event's action failed or was not settled, or the
    /// listener was not in its audience.
    pub fn unowed(&self) {
        self.unowed.fetch_add(1, Ordering::Relaxed);
    }

    /// A delivery of an event that was private.
    pub fn private_leak(&self) {
        self.private_leak.fetch_add(1, Ordering::Relaxed);
    }

    /// An event of another origin (seeding, another run, another client).
    pub fn foreign(&self) {
        self.foreign.fetch_add(1, Ordering::Relaxed);
    }

    pub fn decode_error(&self) {
        self.decode_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A listener's `seq` order figures, added when it stops.
    pub fn add_seq(&self, seq: &SeqCheck) {
        self.reordered.fetch_add(seq.reordered, Ordering::Relaxed);
        self.gaps.fetch_add(seq.gaps, Ordering::Relaxed);
    }

    /// Owed deliveries received once so far (live).
    pub fn received_count(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// The delivery-latency interval since the last call (the sampler's).
    pub fn take_latency_interval(&self) -> Histogram<u64> {
        self.latency.take_interval()
    }

    /// What the group was owed and lost, per (listener, event), once the run ended;
    /// `listeners_with_loss` counts the listeners that missed any owed event.
    pub fn settle(&self, owed: Owed, listeners_with_loss: u64) {
        *self.settled.lock() = Some((owed, listeners_with_loss));
    }

    /// Ramped listeners' accounting (see the bookmarks workload's ramps).
    pub fn set_late(&self, late: LateReport) {
        *self.late.lock() = Some(late);
    }

    /// The group's histograms, named.
    pub fn histograms(&self) -> Vec<(HistogramName, Histogram<u64>)> {
        let mut out = vec![(names::delivery_histogram(self.group), self.latency.merged())];
        for (k, (mark, _)) in REACH_MARKS.iter().enumerate() {
            out.push((names::reach_histogram(self.group, mark), self.reach[k].merged()));
        }
        out
    }

    /// The report entry (`groups.<group>`); `measured_s` is the planned measured window.
    pub fn entry(&self, measured_s: f64, t0_to_measured: Duration) -> GroupReport {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (owed, with_loss) = self.settled.lock().unwrap_or_default();
        let late = self.late.lock().clone();
        let measured_received = load(&self.measured_received);
        let last = Duration::from_nanos(load(&self.last_measured_ns));
        let span = last.saturating_sub(t0_to_measured).as_secs_f64();
        let duplicates = load(&self.duplicates);
        let unowed = load(&self.unowed) + owed.beyond;
        let private_leak = load(&self.private_leak);
        let (late_expected, late_received, late_lost) =
            late.as_ref().map_or((0, 0, 0), |l| (l.expected, l.received, l.lost));
        let reach = {
            let hs: Vec<Summary> = self.reach.iter().map(|h| Summary::of(&h.merged())).collect();
            (hs.iter().any(|s| s.count > 0)).then(|| ReachReport {
                pct_50: hs[0].clone(),
                pct_99: hs[1].clone(),
                pct_100: hs[2].clone(),
            })
        };
        GroupReport {
            listeners: self.listeners(),
            topics: load(&self.topics),
            expected: owed.expected + late_expected,
            received: owed.received + late_received,
            lost: owed.lost + late_lost,
            listeners_with_loss: with_loss,
            duplicates,
            excess: duplicates + unowed + private_leak,
            unowed,
            private_leak,
            reordered: load(&self.reordered),
            gaps: load(&self.gaps),
            foreign: load(&self.foreign),
            decode_errors: load(&self.decode_errors),
            delivery_span_s: span,
            deliveries_per_s: measured_received as f64 / span.max(measured_s).max(1e-9),
            latency: Summary::of(&self.latency.merged()),
            reach,
            late,
            topic_listeners: self.topic_listeners.lock().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_keeps_ranges_and_finds_duplicates() {
        let mut s = Seen::default();
        for i in [3, 5, 4, 1, 9, 2] {
            assert!(s.insert(i), "{i}");
        }
        assert!(!s.insert(4) && !s.insert(9) && !s.insert(1));
        assert_eq!(s.len(), 6);
        assert_eq!(s.iter().collect::<Vec<_>>(), [1, 2, 3, 4, 5, 9]);
        assert!(s.contains(5) && !s.contains(6) && !s.contains(0));
        assert!(s.insert(0) && s.insert(6) && s.insert(8) && s.insert(7));
        assert_eq!(s.ranges, [(0, 10)]);
    }

    /// The case a netted ledger got wrong: one listener misses an event another one
    /// gets twice. Per (listener, event), that is one loss and one duplicate.
    #[test]
    fn a_duplicate_at_one_listener_never_hides_a_loss_at_another() {
        let ledger = EventLedger::new(2);
        let group = GroupStats::new(Group::Firehose);
        ledger.set_owed(0, 2);
        ledger.set_owed(1, 2);
        let mut listeners = [Seen::default(), Seen::default()];
        // Listener 0 gets event 0 twice and event 1; listener 1 gets only event 1.
        for (l, i) in [(0usize, 0u64), (0, 0), (0, 1), (1, 1)] {
            if listeners[l].insert(i) {
                let (nth, latest) = ledger.received(i, Duration::from_millis(1));
                group.received(l, Duration::from_millis(1), 1, true, Some((2, nth, latest)));
            } else {
                group.duplicate();
            }
        }
        let owed = ledger.owed_totals();
        assert_eq!(owed, Owed { expected: 4, received: 3, lost: 1, beyond: 0 });
        assert!(!ledger.all_delivered());
        group.settle(owed, 1);
        let e = group.entry(1.0, Duration::ZERO);
        assert_eq!((e.expected, e.received, e.lost, e.duplicates, e.excess), (4, 3, 1, 1, 1));
        assert_eq!(e.listeners_with_loss, 1);
    }

    #[test]
    fn an_untimed_receipt_counts_in_the_rate_but_in_no_latency() {
        let g = GroupStats::new(Group::Page);
        g.received(0, Duration::from_millis(3), 2_000_000_000, true, None);
        g.received_untimed(4_000_000_000, true);
        g.received_untimed(5_000_000_000, false);
        g.settle(Owed { expected: 3, received: 3, lost: 0, beyond: 0 }, 0);
        let e = g.entry(1.0, Duration::ZERO);
        assert_eq!(g.received_count(), 3);
        assert_eq!(e.latency.count, 1);
        // Two measured receipts over the 4 s up to the last measured one.
        assert!((e.deliveries_per_s - 0.5).abs() < 1e-9, "{}", e.deliveries_per_s);
    }

    #[test]
    fn reach_marks_are_recorded_by_the_delivery_that_reaches_them() {
        let g = GroupStats::new(Group::Room);
        for nth in 1..=4 {
            g.reach_arrived(4, nth, Duration::from_millis(u64::from(nth)), nth as usize);
        }
        g.reach_event(5, &mut [Duration::from_millis(9), Duration::from_millis(8), Duration::from_millis(7)], 0);
        let h = g.histograms();
        let counts: Vec<u64> = h.iter().map(|(_, h)| h.len()).collect();
        // delivery, then 50/99/100: the first event reaches all three, the second (3 of 5) only 50 %.
        assert_eq!(counts, [0, 2, 1, 1]);
        assert_eq!(h[1].0.name, "reach_room_50");
        assert_eq!(mark(1000, 0.99), 990);
        assert_eq!(mark(3, 0.5), 2);
    }
}
