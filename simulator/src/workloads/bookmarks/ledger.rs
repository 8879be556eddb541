//! Who should have received each event, and who did. One lock-free counter per
//! request per listener group, bumped by listeners as deliveries arrive; one outcome
//! per request, set by the generator when its response came back. Loss, excess and
//! private leaks are computed from the two after the drain.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::Serialize;

use crate::workloads::bookmarks::reach::Reach;

/// A listener group: which topic its listeners joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// `bookmarks:firehose`
    Firehose,
    /// `bookmarks:tag:<tag>`
    Tag,
}

impl Group {
    pub const ALL: [Group; 2] = [Group::Firehose, Group::Tag];

    pub fn name(self) -> &'static str {
        match self {
            Group::Firehose => "firehose",
            Group::Tag => "tag",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// How request `i` ended, and so how many deliveries it owes each group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// HTTP status, or 0 when no response came back.
    pub status: u16,
    /// A 201 for a private bookmark: it must reach nobody.
    pub private: bool,
    /// Deliveries owed: per group, indexed by `Group as usize`.
    pub expected: [u32; 2],
}

impl Outcome {
    /// A request that failed or created a private bookmark owes nothing.
    pub fn owes_nothing(status: u16, private: bool) -> Self {
        Self { status, private, expected: [0, 0] }
    }
}

/// Per-request delivery counters and outcomes.
pub struct Ledger {
    received: [Box<[AtomicU32]>; 2],
    outcomes: Box<[OnceLock<Outcome>]>,
    /// Time for each event to reach 50/99/100 % of its audience.
    pub reach: Reach,
}

/// One group's totals after the drain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Deliveries owed by settled requests.
    pub expected: u64,
    /// Deliveries of this run's events, owed or not.
    pub received: u64,
    /// Σ max(0, expected − received) per event.
    pub lost: u64,
    /// Σ max(0, received − expected) per event (duplicates, private leaks, strays).
    pub excess: u64,
    /// Deliveries of events whose bookmark was private.
    pub private_leak: u64,
    /// Deliveries of events whose request had not settled or failed.
    pub unowed: u64,
    /// Deliveries of events past the warm-up (the measured window).
    pub measured_received: u64,
}

impl Ledger {
    pub fn new(requests: u64) -> Self {
        let counters = || (0..requests).map(|_| AtomicU32::new(0)).collect();
        Self {
            received: [counters(), counters()],
            outcomes: (0..requests).map(|_| OnceLock::new()).collect(),
            reach: Reach::new(requests),
        }
    }

    /// A listener of `group` received request `i`'s event; returns how many of the
    /// group's deliveries of it have arrived now, this one included (0: out of range).
    pub fn count(&self, group: Group, i: u64) -> u32 {
        match self.received[group.slot()].get(i as usize) {
            Some(c) => c.fetch_add(1, Ordering::Relaxed) + 1,
            None => 0,
        }
    }

    /// Request `i` got its response.
    pub fn settle(&self, i: u64, outcome: Outcome) {
        if let Some(slot) = self.outcomes.get(i as usize) {
            let _ = slot.set(outcome);
        }
    }

    pub fn outcome(&self, i: u64) -> Option<Outcome> {
        self.outcomes.get(i as usize)?.get().copied()
    }

    /// Whether every owed delivery of every settled request has arrived.
    pub fn all_delivered(&self) -> bool {
        Group::ALL.iter().all(|&g| self.tally(g, 0).lost == 0)
    }

    /// Totals for `group` as of now; events from `measured_from` on are the measured ones.
    pub fn tally(&self, group: Group, measured_from: u64) -> Tally {
        let mut t = Tally::default();
        for (i, counter) in self.received[group.slot()].iter().enumerate() {
            let received = u64::from(counter.load(Ordering::Relaxed));
            let outcome = self.outcomes[i].get();
            let expected = outcome.map_or(0, |o| u64::from(o.expected[group.slot()]));
            t.expected += expected;
            t.received += received;
            if i as u64 >= measured_from {
                t.measured_received += received;
            }
            t.lost += expected.saturating_sub(received);
            t.excess += received.saturating_sub(expected);
            match outcome {
                Some(o) if o.private => t.private_leak += received,
                Some(o) if o.status == 201 => {}
                _ => t.unowed += received,
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_loss_excess_and_leaks() {
        let ledger = Ledger::new(4);
        ledger.settle(0, Outcome { status: 201, private: false, expected: [3, 1] });
        ledger.settle(1, Outcome::owes_nothing(201, true));
        ledger.settle(2, Outcome::owes_nothing(422, false));
        for _ in 0..2 {
            ledger.count(Group::Firehose, 0);
        }
        ledger.count(Group::Tag, 0);
        ledger.count(Group::Tag, 0);
        ledger.count(Group::Firehose, 1);
        ledger.count(Group::Firehose, 99);
        assert!(!ledger.all_delivered());

        let f = ledger.tally(Group::Firehose, 1);
        assert_eq!(f.measured_received, 1);
        assert_eq!((f.expected, f.received, f.lost, f.excess, f.private_leak), (3, 3, 1, 1, 1));
        let t = ledger.tally(Group::Tag, 0);
        assert_eq!((t.expected, t.received, t.lost, t.excess, t.private_leak), (1, 2, 0, 1, 0));

        ledger.count(Group::Firehose, 0);
        assert!(ledger.all_delivered());
    }
}
