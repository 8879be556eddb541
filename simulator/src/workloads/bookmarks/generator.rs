//! The open-model generator: request `i` is fired at its intended start
//! `t0 + i / rate`, each on its own task, never waiting for earlier responses. A slow
//! server therefore shows up as latency measured from the intended start (coordinated
//! omission corrected), not as a quietly lower request rate. Only the in-flight cap can
//! hold a request back; that wait shows up as schedule lag, which invalidates the run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::http::{Api, Draft};
use crate::report::histo::{self, Sharded};
use crate::workloads::bookmarks::audience::Audience;
use crate::workloads::bookmarks::correlate::Correlator;
use crate::workloads::bookmarks::ledger::{Ledger, Outcome};
use crate::workloads::bookmarks::schedule::Schedule;
use crate::workloads::bookmarks::seed::Accounts;

const SHARDS: usize = 8;

/// What the generator needs, shared by its request tasks.
pub struct Generator {
    pub api: Api,
    pub accounts: Accounts,
    pub drafts: Arc<[Draft]>,
    pub schedule: Arc<Schedule>,
    pub correlator: Correlator,
    pub ledger: Arc<Ledger>,
    pub audience: Arc<Audience>,
    pub max_in_flight: u32,
    pub stats: Stats,
}

/// Figures gathered while generating.
pub struct Stats {
    /// Response − intended start, measured requests with a response.
    pub corrected: Sharded,
    /// Response − actual send, same requests.
    pub uncorrected: Sharded,
    /// Actual send − intended start, every request.
    pub lag: Sharded,
    pub sent: AtomicU64,
    pub responses: AtomicU64,
    /// Responses to requests past the warm-up.
    pub measured: AtomicU64,
    pub created_public: AtomicU64,
    pub created_private: AtomicU64,
    pub max_lag_us: AtomicU64,
    pub cap_hits: AtomicU64,
    pub max_in_flight_seen: AtomicU64,
    /// Error kinds: `http_<status>`, `timeout`, `connect`, `body`, `transport`.
    pub errors: Mutex<BTreeMap<String, u64>>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            corrected: Sharded::new(SHARDS),
            uncorrected: Sharded::new(SHARDS),
            lag: Sharded::new(SHARDS),
            sent: AtomicU64::new(0),
            responses: AtomicU64::new(0),
            measured: AtomicU64::new(0),
            created_public: AtomicU64::new(0),
            created_private: AtomicU64::new(0),
            max_lag_us: AtomicU64::new(0),
            cap_hits: AtomicU64::new(0),
            max_in_flight_seen: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Generator {
    /// Runs the generator on a thread and runtime of its own, so that listeners busy
    /// decoding a burst of deliveries cannot delay a request past its intended start
    /// (which would be the simulator's lag, not the server's). Give it an `Api` made for
    /// it: its connections are then driven by that runtime too.
    pub async fn run_on_own_thread(self: Arc<Self>) -> Result<(), String> {
        run_on_own_thread("firehose-sim-generator", move || self.run()).await
    }

    /// Fires every request of the schedule (whose clock must have started) and returns
    /// once the last response came back.
    pub async fn run(self: Arc<Self>) {
        let Some(t0) = self.schedule.t0() else { return };
        let slots = Arc::new(Semaphore::new(self.max_in_flight as usize));
        let mut tasks = JoinSet::new();
        let interrupted = crate::engine::interrupt::token();
        for i in 0..self.schedule.requests() {
            let intended = t0 + self.schedule.offset(i);
            // Announce the event's audience ahead of its intended start, off the send path
            // (an event announced but never sent records nothing).
            self.announce(i);
            // Interrupted (SIGINT/SIGTERM): no new request; those in flight settle.
            tokio::select! {
                () = interrupted.cancelled() => break,
                () = sleep_precisely_until(intended) => {}
            }
            let permit = match Arc::clone(&slots).try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    // The cap is generous; reaching it means the target stalls. The wait
                    // is measured as lag of this request and the ones behind it.
                    self.stats.cap_hits.fetch_add(1, Ordering::Relaxed);
                    match Arc::clone(&slots).acquire_owned().await {
                        Ok(permit) => permit,
                        Err(_) => break,
                    }
                }
            };
            let in_flight = u64::from(self.max_in_flight) - slots.available_permits() as u64;
            self.stats.max_in_flight_seen.fetch_max(in_flight, Ordering::Relaxed);
            tasks.spawn(Arc::clone(&self).fire(i, intended, permit));
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Tells the reach counters how many deliveries request `i`'s event will owe each
    /// group, if it is public (from the draft's tags, which the server stores as given).
    fn announce(&self, i: u64) {
        if self.schedule.is_private(i) {
            return;
        }
        if let Some(draft) = self.schedule.link(i).and_then(|l| self.drafts.get(l)) {
            self.ledger.reach.announce(i, self.audience.owed(draft.tags.iter().map(String::as_str)));
        }
    }

    async fn fire(self: Arc<Self>, i: u64, intended: Instant, _slot: OwnedSemaphorePermit) {
        let shard = i as usize;
        let private = self.schedule.is_private(i);
        let draft = self.schedule.link(i).and_then(|l| self.drafts.get(l));
        let token = draft.and_then(|d| self.accounts.tokens.get(d.user));
        let (Some(draft), Some(token)) = (draft, token) else {
            self.error("no_draft");
            self.ledger.settle(i, Outcome::owes_nothing(0, private));
            return;
        };
        let url = self.correlator.tag(&draft.url, i);

        let sent = Instant::now();
        let lag = sent.saturating_duration_since(intended);
        self.stats.lag.record(shard, lag);
        self.stats.max_lag_us.fetch_max(histo::micros(lag), Ordering::Relaxed);
        self.stats.sent.fetch_add(1, Ordering::Relaxed);

        let result = self.api.create_bookmark(token, draft, &url, !private).await;
        let done = Instant::now();
        let outcome = match result {
            Err(transport) => {
                self.error(transport.kind());
                Outcome::owes_nothing(0, private)
            }
            Ok((status, created)) => {
                self.stats.responses.fetch_add(1, Ordering::Relaxed);
                if !self.schedule.is_warmup(i) {
                    self.stats.measured.fetch_add(1, Ordering::Relaxed);
                    self.stats.corrected.record(shard, done.saturating_duration_since(intended));
                    self.stats.uncorrected.record(shard, done.saturating_duration_since(sent));
                }
                match (status, created) {
                    (201, Some(created)) if created.public => {
                        self.stats.created_public.fetch_add(1, Ordering::Relaxed);
                        let expected = self.audience.owed(created.tags.iter().map(String::as_str));
                        Outcome { status, private: false, expected }
                    }
                    (201, Some(_)) => {
                        self.stats.created_private.fetch_add(1, Ordering::Relaxed);
                        Outcome::owes_nothing(status, true)
                    }
                    (201, None) => {
                        self.error("http_201_unreadable_body");
                        Outcome::owes_nothing(status, private)
                    }
                    (status, _) => {
                        self.error(&format!("http_{status}"));
                        Outcome::owes_nothing(status, private)
                    }
                }
            }
        };
        self.ledger.settle(i, outcome);
    }

    fn error(&self, kind: &str) {
        *self.stats.errors.lock().entry(kind.to_owned()).or_default() += 1;
    }
}

/// tokio's timer wakes on the next millisecond tick, which alone would make every
/// request up to ~1.5 ms late and add that to every latency measured from intended
/// starts. Sleep to just short of `at`, then yield until it passes: well under
/// 100 µs late, for at most a millisecond of yielding per request.
pub async fn sleep_precisely_until(at: Instant) {
    const TIMER_SLACK: std::time::Duration = std::time::Duration::from_millis(1);
    if let Some(early) = at.checked_sub(TIMER_SLACK)
        && Instant::now() < early
    {
        tokio::time::sleep_until(early.into()).await;
    }
    while Instant::now() < at {
        tokio::task::yield_now().await;
    }
}

/// Runs the future `work` makes on a new thread `name`, on a current-thread runtime of
/// its own, and returns once it finished.
pub(crate) async fn run_on_own_thread<F, Fut>(name: &str, work: F) -> Result<(), String>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let (done, finished) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let result = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => {
                    runtime.block_on(work());
                    Ok(())
                }
                Err(e) => Err(format!("generator runtime: {e}")),
            };
            let _ = done.send(result);
        })
        .map_err(|e| format!("generator thread: {e}"))?;
    finished.await.map_err(|_| "the generator thread stopped without finishing".to_owned())?
}
