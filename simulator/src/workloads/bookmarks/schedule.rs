//! The read-only schedule of a run's bookmarks: request `i` is intended to start at
//! `t0 + curve.offset(i)` (`i / rate` without stages, see `stages::RateCurve`), creates
//! the corpus link `order[i % links]`, and is private for a seeded fraction of indices.
//! Every agent of a run computes the same schedule from the plan, so each can time and
//! account every event, whichever agent sends it. Read without any lock: `t0` is set
//! once, when every listener has joined, and only read after that.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::plan::seeded::draw;
use crate::plan::stages::RateCurve;

/// What request `i` sends and when.
#[derive(Debug)]
pub struct Schedule {
    t0: OnceLock<Instant>,
    curve: RateCurve,
    requests: u64,
    warmup_requests: u64,
    /// Corpus link indices in a seeded order, cycled.
    order: Vec<usize>,
    seed: u64,
    private_fraction: f64,
}

impl Schedule {
    /// A constant `rate_per_s` (request `i` at `i / rate`).
    pub fn new(
        rate_per_s: f64,
        requests: u64,
        warmup_requests: u64,
        links: usize,
        seed: u64,
        private_fraction: f64,
    ) -> Self {
        let curve = RateCurve::constant(rate_per_s, Duration::from_secs_f64(requests as f64 / rate_per_s));
        let mut s = Self::staged(curve, Duration::ZERO, links, seed, private_fraction);
        (s.requests, s.warmup_requests) = (requests, warmup_requests);
        s
    }

    /// Requests on `curve` (the plan's `curve(rate)`): `curve.count()` of them, those
    /// intended before `warmup` left out of latency figures.
    pub fn staged(curve: RateCurve, warmup: Duration, links: usize, seed: u64, private_fraction: f64) -> Self {
        let mut order: Vec<usize> = (0..links).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let (requests, warmup_requests) = (curve.count(), curve.count_before(warmup));
        Self { t0: OnceLock::new(), curve, requests, warmup_requests, order, seed, private_fraction }
    }

    /// Starts the clock; later calls keep the first instant.
    pub fn start(&self, t0: Instant) -> Instant {
        *self.t0.get_or_init(|| t0)
    }

    /// The start instant, once the traffic phase began.
    pub fn t0(&self) -> Option<Instant> {
        self.t0.get().copied()
    }

    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Offset of request `i`'s intended start from `t0`.
    pub fn offset(&self, i: u64) -> Duration {
        self.curve.offset(i)
    }

    /// Intended start of request `i`; `None` before the clock started.
    pub fn intended(&self, i: u64) -> Option<Instant> {
        Some(self.t0()? + self.offset(i))
    }

    /// Warm-up requests are delivered and accounted but left out of latency figures.
    pub fn is_warmup(&self, i: u64) -> bool {
        i < self.warmup_requests
    }

    /// Corpus link index of request `i` (`None` for an empty corpus).
    pub fn link(&self, i: u64) -> Option<usize> {
        let len = self.order.len() as u64;
        (len > 0).then(|| self.order[(i % len) as usize])
    }

    /// Whether request `i` creates a private bookmark: a stateless hash of (seed, i),
    /// so any request's choice is known without replaying the ones before it.
    pub fn is_private(&self, i: u64) -> bool {
        draw(self.seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)) < self.private_fraction
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::stages::Stage;

    #[test]
    fn intended_times_are_evenly_spaced_from_t0() {
        let s = Schedule::new(20.0, 60, 10, 5, 42, 0.0);
        assert_eq!(s.intended(3), None);
        let t0 = s.start(Instant::now());
        assert_eq!(s.intended(0), Some(t0));
        assert_eq!(s.intended(20).unwrap() - t0, Duration::from_secs(1));
        assert!(s.is_warmup(9) && !s.is_warmup(10));
    }

    #[test]
    fn a_staged_schedule_follows_its_curve() {
        let stages = [
            Stage { duration: Duration::from_secs(2), scale: 1.0 },
            Stage { duration: Duration::from_secs(1), scale: 3.0 },
        ];
        // 10/s for 2 s, then a ramp to 30/s over 1 s: 20 + 20 requests.
        let s = Schedule::staged(RateCurve::staged(10.0, 1.0, &stages), Duration::from_secs(1), 5, 1, 0.0);
        assert_eq!(s.requests(), 40);
        assert!(s.is_warmup(9) && !s.is_warmup(10));
        assert_eq!(s.offset(10), Duration::from_secs(1));
        assert!(s.offset(39) < Duration::from_secs(3) && s.offset(39) > Duration::from_secs_f64(2.9));
    }

    #[test]
    fn choices_are_deterministic_from_the_seed() {
        let a = Schedule::new(20.0, 1000, 0, 7, 42, 0.25);
        let b = Schedule::new(20.0, 1000, 0, 7, 42, 0.25);
        let links: Vec<_> = (0..14).map(|i| a.link(i).unwrap()).collect();
        assert_eq!(links, (0..14).map(|i| b.link(i).unwrap()).collect::<Vec<_>>());
        assert_eq!(links[..7], links[7..], "links cycle");
        let private = (0..1000).filter(|&i| a.is_private(i)).count();
        assert!((200..300).contains(&private), "{private}");
        assert!((0..1000).all(|i| a.is_private(i) == b.is_private(i)));
        let none = Schedule::new(20.0, 1000, 0, 7, 42, 0.0);
        assert!((0..1000).all(|i| !none.is_private(i)));
        let all = Schedule::new(20.0, 1000, 0, 7, 42, 1.0);
        assert!((0..1000).all(|i| all.is_private(i)));
    }
}
