//! What each page listener was owed and saw, per (listener, reader), once the run ended.
//!
//! A reader's join is owed to every page listener of its page once the app accepted the
//! join; its leave once the reader went (by `phx_leave`, or because its socket ended:
//! either way the app untracks it and must tell the page). The app merges a page's
//! diffs over its throttle interval, so a reader that came and went within one held
//! diff cancels out of it: a reader that stayed less than the merge hold and that a
//! listener saw neither arrive nor leave is `merged_away` at that listener, owed
//! nothing there. Seeing one of the two and not the other is a loss.

use std::time::Duration;

use crate::engine::delivery::Seen;

/// The longest the app holds a page diff (1.25 × its default 1 s throttle interval),
/// rounded up: a reader present less than this may be merged away (see the module doc).
pub const MERGE_HOLD: Duration = Duration::from_millis(1500);

/// What became of one reader, as its page's listeners are owed it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fate {
    /// The app accepted its join.
    pub joined: bool,
    /// It went (left or its socket ended) while the listeners were still reading.
    pub departed: bool,
    /// It was present less than [`MERGE_HOLD`].
    pub short: bool,
}

/// One listener's (or a sum of listeners') owed and seen joins and leaves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub joins_owed: u64,
    pub joins_seen: u64,
    pub leaves_owed: u64,
    pub leaves_seen: u64,
    pub merged_away: u64,
}

impl Tally {
    pub fn add(&mut self, other: &Tally) {
        self.joins_owed += other.joins_owed;
        self.joins_seen += other.joins_seen;
        self.leaves_owed += other.leaves_owed;
        self.leaves_seen += other.leaves_seen;
        self.merged_away += other.merged_away;
    }

    /// Owed joins and leaves never seen.
    pub fn lost(&self) -> u64 {
        (self.joins_owed - self.joins_seen) + (self.leaves_owed - self.leaves_seen)
    }
}

/// Tallies one listener of a page: `readers` are the page's readers as `(place on the
/// page, fate)`, `joins` and `leaves` what the listener saw, by place. `merged(i)` is
/// called with the index in `readers` of each reader merged away at this listener.
pub fn listener(
    readers: impl IntoIterator<Item = (u64, Fate)>,
    joins: &Seen,
    leaves: &Seen,
    mut merged: impl FnMut(usize),
) -> Tally {
    let mut t = Tally::default();
    for (i, (j, fate)) in readers.into_iter().enumerate() {
        let (saw_join, saw_leave) = (joins.contains(j), leaves.contains(j));
        if fate.joined && fate.departed && fate.short && !saw_join && !saw_leave {
            t.merged_away += 1;
            merged(i);
            continue;
        }
        if fate.joined {
            t.joins_owed += 1;
            t.joins_seen += u64::from(saw_join);
        }
        if fate.departed {
            t.leaves_owed += 1;
            t.leaves_seen += u64::from(saw_leave);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(of: &[u64]) -> Seen {
        let mut s = Seen::default();
        for &j in of {
            s.insert(j);
        }
        s
    }

    const STAYED: Fate = Fate { joined: true, departed: true, short: false };
    const BRIEF: Fate = Fate { joined: true, departed: true, short: true };
    const PRESENT: Fate = Fate { joined: true, departed: false, short: false };
    const REFUSED: Fate = Fate { joined: false, departed: false, short: false };

    #[test]
    fn a_brief_reader_seen_neither_way_is_merged_away_and_half_seen_is_a_loss() {
        let readers = [(0, STAYED), (1, BRIEF), (2, BRIEF), (3, PRESENT), (4, REFUSED), (5, STAYED)];
        // Saw: 0 both ways; 1 neither (merged); 2 only its join (a lost leave); 3 its join;
        // 5 only its leave (a lost join).
        let mut merged = Vec::new();
        let t = listener(readers, &seen(&[0, 2, 3]), &seen(&[0, 5]), |i| merged.push(i));
        assert_eq!(merged, [1]);
        assert_eq!(t, Tally { joins_owed: 4, joins_seen: 3, leaves_owed: 3, leaves_seen: 2, merged_away: 1 });
        assert_eq!(t.lost(), 2);
    }

    #[test]
    fn a_long_stay_seen_neither_way_is_lost_not_merged() {
        let t = listener([(0, STAYED)], &Seen::default(), &Seen::default(), |_| panic!("not merged"));
        assert_eq!(t.lost(), 2);
        let mut sum = Tally::default();
        sum.add(&t);
        sum.add(&t);
        assert_eq!((sum.joins_owed, sum.lost()), (2, 4));
    }
}
