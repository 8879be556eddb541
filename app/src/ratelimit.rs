//! Per-key token buckets: `capacity` attempts at once, refilled continuously at
//! `capacity` per `period`. Used per IP for login and registration, and meant for the
//! per-user limits on messages, likes and bookmark creation.
//!
//! One mutex guards the map; it is held only for a hash lookup and a little float
//! arithmetic, never across an `.await`. Memory is bounded: at most `max_keys` buckets
//! are kept. A bucket that has been idle long enough to be full again is the same as no
//! bucket, so idle buckets are swept (every `period`, and whenever the map is full);
//! if the map is still full of active buckets, the least recently used one is dropped.
//! Dropping an active bucket hands that key a fresh budget, which an attacker can only
//! force by bringing `max_keys` other keys — who then have budget enough anyway.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How much a key may do: `capacity` at once, refilled at `capacity` per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub capacity: u32,
    pub period: Duration,
}

impl Rate {
    pub const fn new(capacity: u32, period: Duration) -> Self {
        Self { capacity, period }
    }

    /// Seconds one token takes to come back.
    fn secs_per_token(&self) -> f64 {
        self.period.as_secs_f64() / f64::from(self.capacity.max(1))
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A token bucket per key.
pub struct RateLimiter<K> {
    rate: Rate,
    max_keys: usize,
    inner: Mutex<Inner<K>>,
}

struct Inner<K> {
    buckets: HashMap<K, Bucket>,
    last_sweep: Instant,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// A limiter keeping at most `max_keys` buckets (at least 1).
    pub fn new(rate: Rate, max_keys: usize) -> Self {
        Self {
            rate,
            max_keys: max_keys.max(1),
            inner: Mutex::new(Inner { buckets: HashMap::new(), last_sweep: Instant::now() }),
        }
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Takes one token for `key`; `Err(wait)` when none is left, with the time until
    /// the next one.
    pub fn check(&self, key: K) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    /// `check` at a given instant (tests drive the clock).
    pub fn check_at(&self, key: K, now: Instant) -> Result<(), Duration> {
        if self.rate.capacity == 0 {
            return Err(self.rate.period.max(Duration::from_secs(1)));
        }
        let capacity = f64::from(self.rate.capacity);
        let per_token = self.rate.secs_per_token();
        let mut inner = self.inner.lock();
        if now.saturating_duration_since(inner.last_sweep) >= self.rate.period {
            self.sweep(&mut inner, now);
        }
        if !inner.buckets.contains_key(&key) && inner.buckets.len() >= self.max_keys {
            self.sweep(&mut inner, now);
            if inner.buckets.len() >= self.max_keys {
                evict_least_recent(&mut inner.buckets);
            }
        }
        let bucket = inner.buckets.entry(key).or_insert(Bucket { tokens: capacity, last: now });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed / per_token).min(capacity);
        bucket.last = bucket.last.max(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) * per_token))
        }
    }

    /// Buckets currently kept.
    pub fn len(&self) -> usize {
        self.inner.lock().buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every bucket that would be full again by `now`.
    fn sweep(&self, inner: &mut Inner<K>, now: Instant) {
        let capacity = f64::from(self.rate.capacity);
        let per_token = self.rate.secs_per_token();
        inner.buckets.retain(|_, b| {
            let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
            b.tokens + elapsed / per_token < capacity
        });
        inner.last_sweep = now;
    }
}

fn evict_least_recent<K: Hash + Eq + Clone>(buckets: &mut HashMap<K, Bucket>) {
    if let Some(oldest) = buckets.iter().min_by_key(|(_, b)| b.last).map(|(k, _)| k.clone()) {
        buckets.remove(&oldest);
    }
}

/// The key for a client address: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64,
/// since one IPv6 host usually holds a whole /64 and could otherwise rotate addresses
/// to get a fresh budget each time.
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn per_minute(n: u32) -> Rate {
        Rate::new(n, Duration::from_secs(60))
    }

    #[test]
    fn allows_capacity_then_refuses_with_the_wait_for_one_token() {
        let limiter = RateLimiter::new(per_minute(10), 100);
        let t0 = Instant::now();
        for i in 0..10 {
            assert_eq!(limiter.check_at("ip", t0), Ok(()), "attempt {i}");
        }
        let wait = limiter.check_at("ip", t0).unwrap_err();
        // 10 per minute: one token every 6 s.
        assert!((wait.as_secs_f64() - 6.0).abs() < 1e-6, "{wait:?}");
        // Half-way there, half the wait is left.
        let wait = limiter.check_at("ip", t0 + Duration::from_secs(3)).unwrap_err();
        assert!((wait.as_secs_f64() - 3.0).abs() < 1e-6, "{wait:?}");
    }

    #[test]
    fn refills_over_time_but_never_past_capacity() {
        let limiter = RateLimiter::new(per_minute(10), 100);
        let t0 = Instant::now();
        for _ in 0..10 {
            limiter.check_at("ip", t0).unwrap();
        }
        let t1 = t0 + Duration::from_secs(6);
        assert_eq!(limiter.check_at("ip", t1), Ok(()));
        assert!(limiter.check_at("ip", t1).is_err());
        // An hour idle refills to capacity, not 600 tokens.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..10 {
            limiter.check_at("ip", t2).unwrap();
        }
        assert!(limiter.check_at("ip", t2).is_err());
    }

    #[test]
    fn keys_are_independent() {
        let limiter = RateLimiter::new(per_minute(2), 100);
        let t0 = Instant::now();
        limiter.check_at(1, t0).unwrap();
        limiter.check_at(1, t0).unwrap();
        assert!(limiter.check_at(1, t0).is_err());
        assert_eq!(limiter.check_at(2, t0), Ok(()));
    }

    #[test]
    fn refused_attempts_do_not_push_the_wait_further() {
        let limiter = RateLimiter::new(per_minute(1), 100);
        let t0 = Instant::now();
        limiter.check_at("k", t0).unwrap();
        for s in 1..60 {
            assert!(limiter.check_at("k", t0 + Duration::from_secs(s)).is_err());
        }
        assert_eq!(limiter.check_at("k", t0 + Duration::from_secs(60)), Ok(()));
    }

    #[test]
    fn memory_is_bounded_and_idle_keys_are_evicted_first() {
        let limiter = RateLimiter::new(per_minute(2), 3);
        let t0 = Instant::now();
        // "busy" drains its bucket; "a" and "b" are touched once.
        limiter.check_at("busy", t0).unwrap();
        limiter.check_at("busy", t0).unwrap();
        limiter.check_at("a", t0).unwrap();
        limiter.check_at("b", t0).unwrap();
        assert_eq!(limiter.len(), 3);
        // 30 s later "a" and "b" are full again (idle); "busy" is not.
        let t1 = t0 + Duration::from_secs(30);
        limiter.check_at("c", t1).unwrap();
        assert!(limiter.len() <= 3);
        // "busy" kept its drained state: one token back after 30 s, then none.
        assert_eq!(limiter.check_at("busy", t1), Ok(()));
        assert!(limiter.check_at("busy", t1).is_err());
    }

    #[test]
    fn a_full_map_of_active_keys_drops_the_least_recent() {
        let limiter = RateLimiter::new(per_minute(1), 2);
        let t0 = Instant::now();
        limiter.check_at("old", t0).unwrap();
        limiter.check_at("new", t0 + Duration::from_secs(1)).unwrap();
        limiter.check_at("third", t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(limiter.len(), 2);
        // "new" is still remembered as drained; "old" was dropped and starts afresh.
        assert!(limiter.check_at("new", t0 + Duration::from_secs(2)).is_err());
        assert_eq!(limiter.check_at("old", t0 + Duration::from_secs(2)), Ok(()));
    }

    #[test]
    fn the_periodic_sweep_empties_a_quiet_limiter() {
        let limiter = RateLimiter::new(per_minute(5), 1000);
        let t0 = Instant::now();
        for k in 0..100 {
            limiter.check_at(k, t0).unwrap();
        }
        assert_eq!(limiter.len(), 100);
        limiter.check_at(1000, t0 + Duration::from_secs(61)).unwrap();
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn zero_capacity_refuses_everything() {
        let limiter = RateLimiter::new(Rate::new(0, Duration::from_secs(10)), 10);
        assert_eq!(limiter.check("k"), Err(Duration::from_secs(10)));
    }

    #[test]
    fn ipv6_keys_by_prefix_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(ip_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
