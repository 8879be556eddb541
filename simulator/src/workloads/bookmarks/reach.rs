//! How fast an event reaches its audience: the time from a request's intended start
//! until 50 %, 99 % and 100 % of the listeners it owes a delivery have it.
//!
//! The generator announces each public event's audience per group just before it sends
//! the request (from the draft's tags; the server echoes the same tags). Listeners bump
//! the ledger's per-event counter as deliveries arrive; the listener whose delivery
//! makes the counter reach ⌈50 %⌉, ⌈99 %⌉ or all of the announced audience records the
//! latest receipt time among the deliveries counted so far (kept per event with
//! `fetch_max`). Counting order can differ from receipt order by scheduling jitter
//! (a listener may be preempted between receiving and counting), so taking the latest
//! receipt keeps every event's marks ordered (50 % ≤ 99 % ≤ 100 %) and makes the 100 %
//! mark exact; the 50 % and 99 % marks may read late by that jitter, never early.
//! A few atomic operations per delivery, no lock beyond the histogram shard.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::report::histo::{Sharded, Summary};
use crate::workloads::bookmarks::ledger::Group;

const SHARDS: usize = 8;

/// The three audience fractions measured.
pub const MARKS: [(&str, f64); 3] = [("50", 0.5), ("99", 0.99), ("100", 1.0)];

/// Per group: announced audience per event and the three time-to-reach histograms.
pub struct Reach {
    announced: [Box<[AtomicU32]>; 2],
    /// Per event: the latest receipt so far, µs after its intended start.
    latest: [Box<[AtomicU64]>; 2],
    histograms: [[Sharded; 3]; 2],
}

impl Reach {
    pub fn new(requests: u64) -> Self {
        let counters = || (0..requests).map(|_| AtomicU32::new(0)).collect();
        let hists = || [Sharded::new(SHARDS), Sharded::new(SHARDS), Sharded::new(SHARDS)];
        let latest = || (0..requests).map(|_| AtomicU64::new(0)).collect();
        Self { announced: [counters(), counters()], latest: [latest(), latest()], histograms: [hists(), hists()] }
    }

    /// Event `i` will owe `audience[g]` deliveries to group `g`.
    pub fn announce(&self, i: u64, audience: [u32; 2]) {
        for (slot, n) in self.announced.iter().zip(audience) {
            if let Some(a) = slot.get(i as usize) {
                a.store(n, Ordering::Release);
            }
        }
    }

    /// A listener of `group` received event `i` as delivery number `nth` (1-based)
    /// `elapsed` after the event's intended start.
    pub fn arrived(&self, group: Group, i: u64, nth: u32, elapsed: Duration, key: usize) {
        let g = group as usize;
        let Some(audience) = self.announced[g].get(i as usize).map(|a| a.load(Ordering::Acquire)) else { return };
        if audience == 0 {
            return;
        }
        let elapsed = latest_so_far(self.latest[g].get(i as usize), elapsed);
        for (k, (_, fraction)) in MARKS.iter().enumerate() {
            if nth == mark(audience, *fraction) {
                self.histograms[g][k].record(key, elapsed);
            }
        }
    }

    /// The three histograms of `group`, named `reach_<group>_<50|99|100>`, with the
    /// JSON pointer of the summary each feeds.
    pub fn histograms(&self, group: Group) -> Vec<(String, String, hdrhistogram::Histogram<u64>)> {
        let g = group.name();
        MARKS
            .iter()
            .zip(&self.histograms[group as usize])
            .map(|((pct, _), h)| (format!("reach_{g}_{pct}"), format!("/groups/{g}/reach/pct_{pct}"), h.merged()))
            .collect()
    }
}

/// The same three histograms for one listener group whose events are not bookmarks
/// (`room`, `likes`, `user`, `page`; see `crate::actions`, `crate::pages`). Fed either
/// as deliveries arrive (`arrived`: the caller keeps the per-event count and knows the
/// audience, fixed before `t0`) or once the run ended from one event's receipt times
/// (`event`, for deliveries that are matched to their event only then).
pub struct Marks {
    histograms: [Sharded; 3],
}

impl Default for Marks {
    fn default() -> Self {
        Self { histograms: [Sharded::new(SHARDS), Sharded::new(SHARDS), Sharded::new(SHARDS)] }
    }
}

impl Marks {
    /// An event owed to `audience` listeners arrived as delivery number `nth`
    /// (1-based) `elapsed` after its intended start; `latest` is the event's own
    /// latest-receipt cell (see the module doc).
    pub fn arrived(&self, audience: u32, nth: u32, elapsed: Duration, key: usize, latest: Option<&AtomicU64>) {
        if audience == 0 {
            return;
        }
        let elapsed = latest_so_far(latest, elapsed);
        for (k, (_, fraction)) in MARKS.iter().enumerate() {
            if nth == mark(audience, *fraction) {
                self.histograms[k].record(key, elapsed);
            }
        }
    }

    /// An event owed to `audience` listeners arrived after each of `elapsed` (in any
    /// order): the marks its deliveries reached, as if recorded on arrival.
    pub fn event(&self, audience: u32, elapsed: &mut [Duration], key: usize) {
        if audience == 0 {
            return;
        }
        elapsed.sort_unstable();
        for (k, (_, fraction)) in MARKS.iter().enumerate() {
            if let Some(&at) = elapsed.get(mark(audience, *fraction) as usize - 1) {
                self.histograms[k].record(key, at);
            }
        }
    }

    /// Named and pointed like [`Reach::histograms`]: `reach_<group>_<50|99|100>`.
    pub fn histograms(&self, group: &str) -> Vec<(String, String, hdrhistogram::Histogram<u64>)> {
        MARKS
            .iter()
            .zip(&self.histograms)
            .map(|((pct, _), h)| {
                (format!("reach_{group}_{pct}"), format!("/groups/{group}/reach/pct_{pct}"), h.merged())
            })
            .collect()
    }
}

/// Raises the event's latest receipt to `elapsed` and returns the latest so far.
fn latest_so_far(cell: Option<&AtomicU64>, elapsed: Duration) -> Duration {
    let Some(cell) = cell else { return elapsed };
    let us = crate::report::histo::micros(elapsed);
    Duration::from_micros(cell.fetch_max(us, Ordering::AcqRel).max(us))
}

/// A per-event latest-receipt cell for each of `n` events, for [`Marks::arrived`].
pub fn latest_cells(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

/// The delivery count at which `fraction` of `audience` has the event (at least 1).
fn mark(audience: u32, fraction: f64) -> u32 {
    ((f64::from(audience) * fraction - 1e-9).ceil() as u32).clamp(1, audience)
}

/// Time from intended start until 50 %, 99 % and 100 % of an event's audience had it,
/// over the measured events (an event that never reached everyone has no `pct_100`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReachReport {
    pub pct_50: Summary,
    pub pct_99: Summary,
    pub pct_100: Summary,
}

impl ReachReport {
    pub fn of(hists: &[(String, String, hdrhistogram::Histogram<u64>)]) -> Self {
        let s = |k: usize| hists.get(k).map(|(_, _, h)| Summary::of(h)).unwrap_or_default();
        Self { pct_50: s(0), pct_99: s(1), pct_100: s(2) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_up_and_never_pass_the_audience() {
        assert_eq!(mark(1, 0.5), 1);
        assert_eq!(mark(1, 0.99), 1);
        assert_eq!(mark(10, 0.5), 5);
        assert_eq!(mark(10, 0.99), 10);
        assert_eq!(mark(1000, 0.99), 990);
        assert_eq!(mark(1000, 1.0), 1000);
        assert_eq!(mark(3, 0.5), 2);
    }

    #[test]
    fn marks_record_on_arrival_and_from_receipts() {
        let (live, late) = (Marks::default(), Marks::default());
        let ms = |n: u64| Duration::from_millis(n);
        let arrivals = [ms(3), ms(1), ms(4), ms(2)];
        let cell = latest_cells(1);
        for (n, &e) in arrivals.iter().enumerate() {
            live.arrived(4, n as u32 + 1, e, n, cell.first());
        }
        late.event(4, &mut arrivals.clone(), 0);
        // Three of an audience of five never reach 99 % or 100 %; no audience, nothing.
        late.event(5, &mut [ms(9), ms(8), ms(7)], 1);
        late.event(0, &mut [ms(9)], 2);
        live.arrived(0, 1, ms(9), 0, None);
        let (a, b) = (live.histograms("room"), late.histograms("room"));
        assert_eq!(a.iter().map(|(_, _, h)| h.len()).collect::<Vec<_>>(), [1, 1, 1]);
        assert_eq!(b.iter().map(|(_, _, h)| h.len()).collect::<Vec<_>>(), [2, 1, 1]);
        assert!(
            a[0].2.equivalent(a[0].2.max(), 3000),
            "on arrival, the 2nd counted delivery makes 50 %, at the latest receipt so far (3 ms)"
        );
        assert!(a[2].2.equivalent(a[2].2.max(), 4000), "100 % is the latest receipt of all");
        assert!(b[0].2.equivalent(b[0].2.min(), 2000), "from receipts, the 2nd earliest (2 ms) makes 50 %");
        assert!(b[0].2.equivalent(b[0].2.max(), 9000), "3 of 5 reach 50 %: the 3rd earliest, 9 ms");
        assert!(b[2].2.equivalent(b[2].2.max(), 4000));
        assert_eq!((a[1].0.as_str(), a[1].1.as_str()), ("reach_room_99", "/groups/room/reach/pct_99"));
    }

    #[test]
    fn each_mark_is_recorded_once_by_the_delivery_that_reaches_it() {
        let reach = Reach::new(3);
        reach.announce(0, [4, 0]);
        for nth in 1..=4 {
            reach.arrived(Group::Firehose, 0, nth, Duration::from_millis(u64::from(nth)), nth as usize);
        }
        // Unannounced (private or failed) events and other groups record nothing.
        reach.arrived(Group::Firehose, 2, 1, Duration::from_millis(9), 0);
        reach.arrived(Group::Tag, 0, 1, Duration::from_millis(9), 0);
        let h = reach.histograms(Group::Firehose);
        let counts: Vec<u64> = h.iter().map(|(_, _, h)| h.len()).collect();
        assert_eq!(counts, [1, 1, 1]);
        assert_eq!(h[0].2.max(), 2000, "50 % of 4 is the 2nd delivery");
        assert!(h[1].2.equivalent(h[1].2.max(), 4000), "99 % of 4 is all 4");
        // Counted out of receipt order (a listener preempted between receiving and
        // counting): 100 % is still the latest receipt, and 50 % is not after it.
        reach.announce(1, [2, 0]);
        reach.arrived(Group::Firehose, 1, 1, Duration::from_millis(5), 0);
        reach.arrived(Group::Firehose, 1, 2, Duration::from_millis(3), 1);
        let h = reach.histograms(Group::Firehose);
        assert!(h[2].2.equivalent(h[2].2.max(), 5000), "all reached at 5 ms, not 3 ms");
        assert!(h[0].2.equivalent(h[0].2.max(), 5000));
        assert_eq!(h[0].0, "reach_firehose_50");
        assert_eq!(h[2].1, "/groups/firehose/reach/pct_100");
        assert!(reach.histograms(Group::Tag).iter().all(|(_, _, h)| h.is_empty()));
    }
}
