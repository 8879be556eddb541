//! `DiffThrottle`: at most one `presence_diff` per interval on a busy topic.
//!
//! Without it, N readers arriving on a page each cause a diff sent to every reader
//! already there: O(N²) frames. The throttle sends the first diff after a quiet period
//! at once (a lone join is seen without delay), then holds later ones, merging them
//! (see [`Diff::merge`]), and releases the merged diff once per interval: O(N) frames
//! per interval however many joins and leaves happen in it, and a join followed by a
//! leave inside one interval is never sent at all.
//!
//! Pure: the caller passes the clock and asks when to come back ([`DiffThrottle::deadline`]),
//! so it can be driven by a timer in a task or by a test with made-up instants.

use std::time::{Duration, Instant};

use super::diff::Diff;

/// Coalesces one topic's diffs into at most one broadcast per `interval`.
#[derive(Debug, Clone)]
pub struct DiffThrottle {
    interval: Duration,
    /// Boxed: one throttle per page, and most hold nothing most of the time.
    pending: Option<Box<Diff>>,
    last_flush: Option<Instant>,
}

impl DiffThrottle {
    /// A zero `interval` passes every diff straight through.
    pub fn new(interval: Duration) -> Self {
        Self { interval, pending: None, last_flush: None }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Offers a diff produced at `now`. Returns the diff to broadcast right away when
    /// nothing was broadcast in the last interval and nothing is held; otherwise holds
    /// it (merged with what is already held) until [`DiffThrottle::deadline`].
    pub fn push(&mut self, now: Instant, diff: Diff) -> Option<Diff> {
        if diff.is_empty() {
            return None;
        }
        if let Some(pending) = &mut self.pending {
            pending.merge_from(diff);
            return None;
        }
        if self.due(now) {
            self.last_flush = Some(now);
            return Some(diff);
        }
        self.pending = Some(Box::new(diff));
        None
    }

    /// The held diff, merged, once its deadline has come; `None` before it, or when
    /// everything held cancelled out.
    pub fn poll(&mut self, now: Instant) -> Option<Diff> {
        if self.pending.is_none() || !self.due(now) {
            return None;
        }
        self.flush(now)
    }

    /// The held diff, merged, regardless of the deadline (e.g. when the topic stops).
    pub fn flush(&mut self, now: Instant) -> Option<Diff> {
        let diff = self.pending.take().filter(|d| !d.is_empty())?;
        self.last_flush = Some(now);
        Some(*diff)
    }

    /// When to call [`DiffThrottle::poll`] next; `None` while nothing is held.
    pub fn deadline(&self) -> Option<Instant> {
        // Something is held only after a flush, so `last_flush` is set.
        self.pending.as_ref().and(self.last_flush).map(|t| t + self.interval)
    }

    /// The diff held now, if any.
    pub fn pending(&self) -> Option<&Diff> {
        self.pending.as_deref()
    }

    /// Whether a diff is held.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    fn due(&self, now: Instant) -> bool {
        self.last_flush.is_none_or(|t| now >= t + self.interval)
    }
}
