//! What the actions' generator, actor sockets and listeners count, shared by all of
//! them: per kind the latency histograms, lag and outcomes (`KindStats`); per action
//! whether it succeeded and what it owes; the deliveries each group received.
//!
//! Room deliveries are traced when they arrive (the message marker, the typist's
//! pending push). `like_count` and `notification` deliveries can arrive before the
//! action's own answer (the server broadcasts before it replies), so those listeners
//! keep what they saw and are matched to actions when the run ends (`outcome`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::Kind;
use super::schedule::Timeline;
use crate::report::histo::{self, Sharded};

const SHARDS: usize = 8;

/// Action state: not answered yet, succeeded, failed.
const PENDING: u8 = 0;
const OK: u8 = 1;
const FAILED: u8 = 2;

/// One kind's figures.
pub struct KindStats {
    pub corrected: Sharded,
    pub uncorrected: Sharded,
    pub lag: Sharded,
    pub sent: AtomicU64,
    pub ok: AtomicU64,
    /// Picked nobody (no quiet typist, no liker left, no like to undo yet).
    pub skipped: AtomicU64,
    pub max_lag_us: AtomicU64,
    pub errors: Mutex<BTreeMap<String, u64>>,
    /// Per action: nanoseconds after `t0` + 1 of the send, 0 until sent.
    sent_ns: Box<[AtomicU64]>,
    state: Box<[AtomicU8]>,
    /// Answered (ok or failed) actions, for the drain.
    pub settled: AtomicU64,
}

impl KindStats {
    fn new(n: usize) -> Self {
        Self {
            corrected: Sharded::new(SHARDS),
            uncorrected: Sharded::new(SHARDS),
            lag: Sharded::new(SHARDS),
            sent: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            max_lag_us: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            sent_ns: (0..n).map(|_| AtomicU64::new(0)).collect(),
            state: (0..n).map(|_| AtomicU8::new(PENDING)).collect(),
            settled: AtomicU64::new(0),
        }
    }

    /// Action `i` goes out now (`intended` its intended start).
    pub fn mark_sent(&self, i: u32, t0: Instant, intended: Instant, now: Instant) {
        let lag = now.saturating_duration_since(intended);
        self.lag.record(i as usize, lag);
        self.max_lag_us.fetch_max(histo::micros(lag), Ordering::Relaxed);
        if let Some(s) = self.sent_ns.get(i as usize) {
            let ns = u64::try_from(now.saturating_duration_since(t0).as_nanos()).unwrap_or(u64::MAX - 1);
            s.store(ns + 1, Ordering::Release);
        }
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    pub fn sent_at(&self, i: u32, t0: Instant) -> Option<Instant> {
        let ns = self.sent_ns.get(i as usize)?.load(Ordering::Acquire);
        (ns > 0).then(|| t0 + Duration::from_nanos(ns - 1))
    }

    /// Action `i` was answered at `at`: latency (unless warm-up) and its outcome;
    /// `error` names the failure. Returns false if it was already settled.
    pub fn settle(
        &self,
        i: u32,
        warmup: bool,
        intended: Instant,
        sent: Option<Instant>,
        at: Instant,
        error: Option<&str>,
    ) -> bool {
        let Some(state) = self.state.get(i as usize) else { return false };
        let new = if error.is_some() { FAILED } else { OK };
        if state.compare_exchange(PENDING, new, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return false;
        }
        self.settled.fetch_add(1, Ordering::AcqRel);
        if !warmup {
            self.corrected.record(i as usize, at.saturating_duration_since(intended));
            if let Some(sent) = sent {
                self.uncorrected.record(i as usize, at.saturating_duration_since(sent));
            }
        }
        match error {
            None => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Some(kind) => self.error(kind),
        }
        true
    }

    /// Action `i` never went out (or was lost on the way): failed, no latency.
    pub fn fail_unsent(&self, i: u32, kind: &str) {
        if let Some(state) = self.state.get(i as usize)
            && state.compare_exchange(PENDING, FAILED, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            self.settled.fetch_add(1, Ordering::AcqRel);
            self.error(kind);
        }
    }

    /// Action `i` picked nobody: settled, neither ok nor an error.
    pub fn skip(&self, i: u32) {
        if let Some(state) = self.state.get(i as usize)
            && state.compare_exchange(PENDING, FAILED, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            self.settled.fetch_add(1, Ordering::AcqRel);
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn is_ok(&self, i: u32) -> bool {
        self.state.get(i as usize).is_some_and(|s| s.load(Ordering::Acquire) == OK)
    }

    pub fn error(&self, kind: &str) {
        *self.errors.lock().entry(kind.to_owned()).or_default() += 1;
    }

    pub fn count(&self) -> u64 {
        self.state.len() as u64
    }
}

/// A like or unlike that succeeded: what its `like_count` broadcast carries.
#[derive(Debug, Clone, Copy)]
pub struct LikeDone {
    pub kind: Kind,
    pub i: u32,
    pub target: u32,
    pub count: i64,
    /// When the answer came (orders actions leading to the same count).
    pub answered: Instant,
}

/// The counters of the whole actions part.
pub struct Tally {
    pub kinds: [KindStats; 5],
    /// Per chat message / typing push: room deliveries received.
    pub message_received: Box<[AtomicU32]>,
    pub typing_received: Box<[AtomicU32]>,
    /// Per message and per typing push: the latest room receipt so far (µs after its
    /// intended start), for its reach marks.
    pub message_latest: Box<[std::sync::atomic::AtomicU64]>,
    pub typing_latest: Box<[std::sync::atomic::AtomicU64]>,
    /// Joined room listeners per room (fixed at `t0`).
    pub room_joined: Vec<AtomicU32>,
    /// Joined likes listeners per like target; joined user listeners by index.
    pub likes_joined: Vec<AtomicU32>,
    pub user_joined: Vec<AtomicU32>,
    /// Deliveries owed so far (added when an action succeeds) and received, per group.
    pub owed: [AtomicU64; 3],
    pub received: [AtomicU64; 3],
    /// Successful likes and unlikes, for matching `like_count` deliveries.
    pub likes_done: Mutex<Vec<LikeDone>>,
    /// Likes answered and not undone yet, oldest first: what `unlike` undoes.
    pub undoable: Mutex<std::collections::VecDeque<(u32, u32)>>,
    /// Message id (from the `new_msg` reply) → chat message index.
    pub message_ids: Mutex<HashMap<i64, u32>>,
    /// Per (actor socket × rooms + room): typing index + 1 of its latest push there.
    pub typing_pending: Box<[AtomicU32]>,
    pub delivery: [Sharded; 3],
    /// Room deliveries that traced to no action of this run, or to another room.
    pub room_foreign: AtomicU64,
    /// Time until 50/99/100 % of a message's or typing push's room audience had it,
    /// recorded on arrival (`likes` and `user` reach is computed in `outcome`).
    pub room_reach: crate::workloads::bookmarks::reach::Marks,
}

impl Tally {
    pub fn new(t: &Timeline, rooms: usize, like_targets: usize, user_listeners: usize, actor_sockets: usize) -> Self {
        let n = |k: Kind| t.count(k) as usize;
        let zeros = |n: usize| (0..n).map(|_| AtomicU32::new(0)).collect::<Box<[_]>>();
        Self {
            kinds: Kind::ALL.map(|k| KindStats::new(n(k))),
            message_received: zeros(n(Kind::ChatMessage)),
            typing_received: zeros(n(Kind::Typing)),
            message_latest: crate::workloads::bookmarks::reach::latest_cells(n(Kind::ChatMessage)),
            typing_latest: crate::workloads::bookmarks::reach::latest_cells(n(Kind::Typing)),
            room_joined: (0..rooms).map(|_| AtomicU32::new(0)).collect(),
            likes_joined: (0..like_targets).map(|_| AtomicU32::new(0)).collect(),
            user_joined: (0..user_listeners).map(|_| AtomicU32::new(0)).collect(),
            owed: Default::default(),
            received: Default::default(),
            likes_done: Mutex::new(Vec::new()),
            undoable: Mutex::new(std::collections::VecDeque::new()),
            message_ids: Mutex::new(HashMap::new()),
            typing_pending: zeros(actor_sockets * rooms),
            delivery: [Sharded::new(16), Sharded::new(16), Sharded::new(16)],
            room_foreign: AtomicU64::new(0),
            room_reach: crate::workloads::bookmarks::reach::Marks::default(),
        }
    }

    pub fn kind(&self, kind: Kind) -> &KindStats {
        &self.kinds[kind as usize]
    }

    pub fn owe(&self, group: super::Group, n: u64) {
        self.owed[group as usize].fetch_add(n, Ordering::AcqRel);
    }

    pub fn got(&self, group: super::Group) {
        self.received[group as usize].fetch_add(1, Ordering::AcqRel);
    }

    /// Every action answered and every delivery owed so far received.
    pub fn settled(&self, t: &Timeline) -> bool {
        let answered = Kind::ALL.iter().all(|&k| self.kind(k).settled.load(Ordering::Acquire) >= t.count(k));
        answered && (0..3).all(|g| self.received[g].load(Ordering::Acquire) >= self.owed[g].load(Ordering::Acquire))
    }
}
