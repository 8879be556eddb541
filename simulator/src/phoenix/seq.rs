//! A topic's `seq` as one socket sees it: the highest so far, and how often it went
//! back or skipped values. Duplicates are not counted here but by event identity (see
//! `engine::delivery::Seen`), since a server may reuse a `seq` for different events.

/// Order figures of one listener's events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqCheck {
    last: Option<u64>,
    /// `seq` below the previous event's.
    pub reordered: u64,
    /// Missing `seq` values between consecutive events.
    pub gaps: u64,
}

impl SeqCheck {
    /// The highest `seq` seen (or started at).
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// Starts from `seq` (a join reply's position) when nothing was seen yet, so a gap
    /// before the first event counts too.
    pub fn start_at(&mut self, seq: u64) {
        if self.last.is_none() {
            self.last = Some(seq);
        }
    }

    /// Counts the next event's `seq`.
    pub fn see(&mut self, seq: u64) {
        if let Some(last) = self.last {
            if seq < last {
                self.reordered += 1;
            } else if seq > last + 1 {
                self.gaps += seq - last - 1;
            }
        }
        if self.last.is_none_or(|last| seq > last) {
            self.last = Some(seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_checks_count_reordering_and_gaps() {
        let mut s = SeqCheck::default();
        for seq in [5, 6, 6, 9, 7, 10] {
            s.see(seq);
        }
        assert_eq!((s.reordered, s.gaps, s.last()), (1, 2, Some(10)));
        let mut t = SeqCheck::default();
        t.start_at(3);
        t.see(6);
        assert_eq!(t.gaps, 2);
    }
}
