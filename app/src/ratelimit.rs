//! Per-key token buckets: `capacity` attempts at once, refilled continuously at
//! `capacity` per `period`, and the budgets built from them (`RateLimits`, the
//! configuration; `UserLimits` and `IpLimit`, the running limiters). Used per IP for
//! login and registration (`RateLimiter`), sign-ups (`IpLimit`) and anonymous searches,
//! per user for messages, likes, bookmark creation, typing and uploads (`UserLimits`),
//! and as a lone `Bucket` per anonymous socket for its costly pushes.
//!
//! ## Per-user limits
//!
//! `state.limits` (a `UserLimits` built from `Config::limits`) holds one bucket per
//! user and `Action`; each action's `Rate` is configured on its own (`--rate-messages`,
//! `--rate-likes`, `--rate-bookmarks`, `--rate-typing`, `--rate-uploads`, e.g. `10/10s`,
//! or `off`; `--upload-bytes-per-hour` for `Action::UploadBytes`, whose tokens are
//! bytes). A handler asks before doing the work:
//!
//! ```ignore
//! if let Err(wait) = state.limits.check(Action::Message, user.id) {
//!     // socket push: `phx_reply` error {"reason":"rate_limited","retry_after_ms":N}
//!     return Outcome::Error(channel::rate_limited(wait));
//!     // HTTP: 429 with `Retry-After`
//!     // return Err(ApiError::RateLimited(wait));
//! }
//! ```
//!
//! `check` takes a token when one is left and returns `Err(wait)` (the time until the
//! next token) otherwise; an action that is `off` is always allowed. Refused attempts
//! cost nothing, so hammering does not push the wait further out. Anonymous callers
//! have no user id: the actions limited here all need a signed-in user.
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
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
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

/// `N/PERIOD`: `10/10s`, `30/1m`, `5/s`, `100/500ms`, `1000/1h`.
impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid rate {s:?}: expected N/PERIOD such as 10/10s, 30/1m or 5/s (or off)");
        let (n, period) = s.trim().split_once('/').ok_or_else(bad)?;
        let capacity: u32 = n.trim().parse().map_err(|_| bad())?;
        if capacity == 0 {
            return Err(format!("invalid rate {s:?}: the count must be at least 1 (use off to disable)"));
        }
        let period = period.trim();
        let split = period.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (amount, unit) = period.split_at(split);
        let amount: u64 = if amount.is_empty() { 1 } else { amount.parse().map_err(|_| bad())? };
        let period = match unit {
            "ms" => Duration::from_millis(amount),
            "s" => Duration::from_secs(amount),
            "m" | "min" => Duration::from_secs(amount.saturating_mul(60)),
            "h" => Duration::from_secs(amount.saturating_mul(3600)),
            _ => return Err(bad()),
        };
        if period.is_zero() {
            return Err(format!("invalid rate {s:?}: the period must be longer than zero"));
        }
        Ok(Rate::new(capacity, period))
    }
}

/// A configured limit: `off` (no limit) or a `Rate` (see `Rate::from_str`).
pub fn parse_limit(s: &str) -> Result<Option<Rate>, String> {
    if s.trim().eq_ignore_ascii_case("off") { Ok(None) } else { s.parse().map(Some) }
}

/// Every configured budget: per user (keyed by user id) for messages, likes, bookmark
/// creation, typing and uploads, and per client IP for sign-ups; `None` turns one off.
/// Built into `UserLimits` and `IpLimit` at start (`AppState::limits`, `::signups`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Chat messages. Default 10 per 10 s.
    pub messages: Option<Rate>,
    /// Likes and unlikes. Default 30 per 10 s.
    pub likes: Option<Rate>,
    /// Bookmark creation. Default 10 per 10 s.
    pub bookmarks: Option<Rate>,
    /// `typing` pushes. Default 30 per 10 s.
    pub typing: Option<Rate>,
    /// Uploads (files). Default 100 per hour.
    pub uploads: Option<Rate>,
    /// Uploaded bytes: `capacity` bytes per `period`. Default 200 MiB per hour.
    pub upload_bytes: Option<Rate>,
    /// Accounts created (`POST /api/users`, registration) per client IP. Default 20 per
    /// minute.
    pub signups: Option<Rate>,
    /// Keys (users, client IPs) whose buckets are remembered at once, per budget
    /// (memory bound).
    pub max_keys: usize,
}

/// The default `RateLimits::upload_bytes`: 200 MiB per hour.
pub const DEFAULT_UPLOAD_BYTES_PER_HOUR: u32 = 200 * 1024 * 1024;

impl Default for RateLimits {
    fn default() -> Self {
        let per_10s = |n| Some(Rate::new(n, Duration::from_secs(10)));
        let hour = Duration::from_secs(3600);
        Self {
            messages: per_10s(10),
            likes: per_10s(30),
            bookmarks: per_10s(10),
            typing: per_10s(30),
            uploads: Some(Rate::new(100, hour)),
            upload_bytes: Some(Rate::new(DEFAULT_UPLOAD_BYTES_PER_HOUR, hour)),
            signups: Some(Rate::new(20, Duration::from_secs(60))),
            max_keys: 100_000,
        }
    }
}

impl RateLimits {
    /// Every budget off, sign-ups included (load generators, which create many
    /// accounts from one address, and tests that are not about limits).
    pub fn off() -> Self {
        Self {
            messages: None,
            likes: None,
            bookmarks: None,
            typing: None,
            uploads: None,
            upload_bytes: None,
            signups: None,
            ..Self::default()
        }
    }
}

/// What a signed-in user is doing, each with its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Posting a chat message.
    Message,
    /// Liking or unliking a bookmark (socket push or HTTP).
    Like,
    /// Creating a bookmark.
    Bookmark,
    /// A `typing` push.
    Typing,
    /// An upload (one token per file).
    Upload,
    /// Uploaded bytes (one token per byte of an accepted file).
    UploadBytes,
}

impl Action {
    pub const ALL: [Action; 6] =
        [Action::Message, Action::Like, Action::Bookmark, Action::Typing, Action::Upload, Action::UploadBytes];

    /// The `action` label of `firehose_rate_limited_total`.
    pub fn label(self) -> &'static str {
        match self {
            Action::Message => "message",
            Action::Like => "like",
            Action::Bookmark => "bookmark",
            Action::Typing => "typing",
            Action::Upload => "upload",
            Action::UploadBytes => "upload_bytes",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Per-user token buckets, one limiter per `Action` (keyed by user id), each bounded to
/// `RateLimits::max_keys` users. See the module docs.
pub struct UserLimits {
    messages: Option<RateLimiter<i64>>,
    likes: Option<RateLimiter<i64>>,
    bookmarks: Option<RateLimiter<i64>>,
    typing: Option<RateLimiter<i64>>,
    uploads: Option<RateLimiter<i64>>,
    upload_bytes: Option<RateLimiter<i64>>,
    /// Attempts refused, by `Action::index`.
    refused: [AtomicU64; Action::ALL.len()],
}

impl UserLimits {
    pub fn new(limits: &RateLimits) -> Self {
        let make = |rate: Option<Rate>| rate.map(|r| RateLimiter::new(r, limits.max_keys));
        Self {
            messages: make(limits.messages),
            likes: make(limits.likes),
            bookmarks: make(limits.bookmarks),
            typing: make(limits.typing),
            uploads: make(limits.uploads),
            upload_bytes: make(limits.upload_bytes),
            refused: Default::default(),
        }
    }

    fn limiter(&self, action: Action) -> Option<&RateLimiter<i64>> {
        match action {
            Action::Message => self.messages.as_ref(),
            Action::Like => self.likes.as_ref(),
            Action::Bookmark => self.bookmarks.as_ref(),
            Action::Typing => self.typing.as_ref(),
            Action::Upload => self.uploads.as_ref(),
            Action::UploadBytes => self.upload_bytes.as_ref(),
        }
    }

    /// Takes one token of `user_id`'s budget for `action`; `Err(wait)` when it is spent,
    /// with the time until the next token. Always `Ok` for an action that is off.
    /// A refusal is counted (`refused`, shown as `firehose_rate_limited_total`).
    pub fn check(&self, action: Action, user_id: i64) -> Result<(), Duration> {
        self.check_n(action, user_id, 1)
    }

    /// `check` for an attempt that costs `cost` tokens (bytes, for
    /// `Action::UploadBytes`); see `RateLimiter::check_n`.
    pub fn check_n(&self, action: Action, user_id: i64, cost: u64) -> Result<(), Duration> {
        let checked = self.limiter(action).map_or(Ok(()), |l| l.check_n(user_id, cost));
        if checked.is_err() {
            self.refused[action.index()].fetch_add(1, Relaxed);
        }
        checked
    }

    /// Attempts at `action` refused so far.
    pub fn refused(&self, action: Action) -> u64 {
        self.refused[action.index()].load(Relaxed)
    }

    /// The rate in effect for `action` (`None`: unlimited).
    pub fn rate(&self, action: Action) -> Option<Rate> {
        self.limiter(action).map(RateLimiter::rate)
    }
}

/// A per-client-IP budget (keys from `ip_key`), off when built from `None`, with its
/// refusals counted: sign-ups (`AppState::signups`).
pub struct IpLimit {
    limiter: Option<RateLimiter<IpAddr>>,
    refused: AtomicU64,
}

impl IpLimit {
    pub fn new(rate: Option<Rate>, max_keys: usize) -> Self {
        Self { limiter: rate.map(|r| RateLimiter::new(r, max_keys)), refused: AtomicU64::new(0) }
    }

    /// Takes one token of `ip`'s budget; `Err(wait)` when it is spent. Always `Ok` when
    /// off.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let checked = self.limiter.as_ref().map_or(Ok(()), |l| l.check(ip_key(ip)));
        if checked.is_err() {
            self.refused.fetch_add(1, Relaxed);
        }
        checked
    }

    /// Attempts refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }

    /// The rate in effect (`None`: unlimited).
    pub fn rate(&self) -> Option<Rate> {
        self.limiter.as_ref().map(RateLimiter::rate)
    }
}

/// A wait as whole milliseconds for `retry_after_ms`, rounded up and at least 1, so a
/// client that waits exactly that long finds a token.
pub fn retry_after_ms(wait: Duration) -> u64 {
    let ms = wait.as_micros().div_ceil(1000);
    u64::try_from(ms).unwrap_or(u64::MAX).max(1)
}

/// One token bucket. `RateLimiter` keeps one per key; an owner that is a budget's only
/// user (an anonymous socket, for its costly pushes) keeps one itself.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A bucket holding `rate.capacity` tokens.
    pub fn full(rate: Rate, now: Instant) -> Self {
        Self { tokens: f64::from(rate.capacity), last: now }
    }

    /// Refills for the time since the last call, then takes one token; `Err(wait)` when
    /// none is left, with the time until the next one.
    pub fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.take_n(rate, 1, now)
    }

    /// [`Bucket::take`] of `cost` tokens at once, or none. A cost above the capacity is
    /// charged as the whole capacity (it could never be paid otherwise).
    pub fn take_n(&mut self, rate: Rate, cost: u64, now: Instant) -> Result<(), Duration> {
        let per_token = rate.secs_per_token();
        let capacity = f64::from(rate.capacity);
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed / per_token).min(capacity);
        self.last = self.last.max(now);
        // u64 → f64 is exact up to 2^53; the cost is capped at the capacity (a u32) anyway.
        let cost = (cost.max(1) as f64).min(capacity);
        if self.tokens >= cost {
            self.tokens -= cost;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((cost - self.tokens) * per_token))
        }
    }
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

    /// Takes `cost` tokens for `key` at once, or none: `Err(wait)` with the time until
    /// there are enough. A cost above the capacity is charged as the whole capacity (it
    /// needs a full bucket and empties it), so no attempt is refused forever.
    pub fn check_n(&self, key: K, cost: u64) -> Result<(), Duration> {
        self.check_n_at(key, cost, Instant::now())
    }

    /// `check` at a given instant (tests drive the clock).
    pub fn check_at(&self, key: K, now: Instant) -> Result<(), Duration> {
        self.check_n_at(key, 1, now)
    }

    /// `check_n` at a given instant.
    pub fn check_n_at(&self, key: K, cost: u64, now: Instant) -> Result<(), Duration> {
        if self.rate.capacity == 0 {
            return Err(self.rate.period.max(Duration::from_secs(1)));
        }
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
        inner.buckets.entry(key).or_insert(Bucket::full(self.rate, now)).take_n(self.rate, cost, now)
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
    fn rates_parse_from_the_command_line_form() {
        assert_eq!("10/10s".parse(), Ok(Rate::new(10, Duration::from_secs(10))));
        assert_eq!("30/1m".parse(), Ok(Rate::new(30, Duration::from_secs(60))));
        assert_eq!("5/s".parse(), Ok(Rate::new(5, Duration::from_secs(1))));
        assert_eq!("100/500ms".parse(), Ok(Rate::new(100, Duration::from_millis(500))));
        assert_eq!(" 2 / 1h ".parse(), Ok(Rate::new(2, Duration::from_secs(3600))));
        for bad in ["", "10", "10/", "/10s", "0/10s", "10/0s", "10/10", "10/10x", "-1/10s", "ten/10s", "10/s10"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?} parsed");
        }
        assert_eq!(parse_limit("off"), Ok(None));
        assert_eq!(parse_limit("OFF"), Ok(None));
        assert_eq!(parse_limit("3/2s"), Ok(Some(Rate::new(3, Duration::from_secs(2)))));
        assert!(parse_limit("none").is_err());
    }

    #[test]
    fn user_limits_are_per_action_and_per_user_and_off_means_unlimited() {
        let limits = UserLimits::new(&RateLimits {
            messages: Some(Rate::new(2, Duration::from_secs(10))),
            likes: Some(Rate::new(1, Duration::from_secs(10))),
            bookmarks: None,
            typing: Some(Rate::new(3, Duration::from_secs(10))),
            ..RateLimits::off()
        });
        assert_eq!(limits.check(Action::Message, 1), Ok(()));
        assert_eq!(limits.check(Action::Message, 1), Ok(()));
        let wait = limits.check(Action::Message, 1).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(5), "{wait:?}");
        // Another user, and another action of the same user, have their own budgets.
        assert_eq!(limits.check(Action::Message, 2), Ok(()));
        assert_eq!(limits.check(Action::Like, 1), Ok(()));
        assert!(limits.check(Action::Like, 1).is_err());
        assert_eq!(limits.check(Action::Typing, 1), Ok(()));
        assert_eq!((limits.refused(Action::Message), limits.refused(Action::Like)), (1, 1));
        assert_eq!(limits.refused(Action::Typing), 0);
        for _ in 0..1000 {
            assert_eq!(limits.check(Action::Bookmark, 1), Ok(()));
        }
        assert_eq!(limits.rate(Action::Bookmark), None);
        assert_eq!(limits.rate(Action::Like), Some(Rate::new(1, Duration::from_secs(10))));
        let off = UserLimits::new(&RateLimits::off());
        for action in Action::ALL {
            assert_eq!(off.rate(action), None);
        }
    }

    #[test]
    fn a_costly_attempt_takes_its_cost_or_nothing_and_waits_for_enough() {
        // 1000 bytes per 100 s: 10 bytes a second.
        let limiter = RateLimiter::new(Rate::new(1000, Duration::from_secs(100)), 10);
        let t0 = Instant::now();
        assert_eq!(limiter.check_n_at("u", 600, t0), Ok(()));
        // 400 left: 500 more is refused, costs nothing, and needs 10 s.
        let wait = limiter.check_n_at("u", 500, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 10.0).abs() < 1e-6, "{wait:?}");
        assert_eq!(limiter.check_n_at("u", 400, t0), Ok(()));
        // More than the capacity is charged as the whole capacity: a full bucket.
        let wait = limiter.check_n_at("u", 5000, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 100.0).abs() < 1e-6, "{wait:?}");
        assert_eq!(limiter.check_n_at("u", 5000, t0 + Duration::from_secs(100)), Ok(()));
    }

    #[test]
    fn ip_limits_key_by_address_count_refusals_and_off_means_unlimited() {
        let signups = IpLimit::new(Some(Rate::new(2, Duration::from_secs(60))), 100);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(signups.check(a), Ok(()));
        assert_eq!(signups.check(a), Ok(()));
        assert!(signups.check(a).is_err());
        assert_eq!(signups.check(b), Ok(()));
        assert_eq!(signups.refused(), 1);
        let off = IpLimit::new(None, 100);
        for _ in 0..1000 {
            assert_eq!(off.check(a), Ok(()));
        }
        assert_eq!((off.rate(), off.refused()), (None, 0));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_milliseconds() {
        assert_eq!(retry_after_ms(Duration::from_micros(1)), 1);
        assert_eq!(retry_after_ms(Duration::ZERO), 1);
        assert_eq!(retry_after_ms(Duration::from_micros(1500)), 2);
        assert_eq!(retry_after_ms(Duration::from_secs(1)), 1000);
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
