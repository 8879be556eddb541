//! Page readers ("N readers online") and the `page` listener group.
//!
//! Page listeners (`listeners`) join `page:/sim-<run><agent>/page-<j>` anonymously, `j`
//! = listener `i % PATHS`, before the clock starts, and keep each page's presence. Page
//! readers (`readers`) arrive on the open model: reader `k` is one action of the
//! `page_readers` lane, fired by the dispatcher at `t0 + curve.offset(k)` onto the main
//! runtime, going to the Zipf-hot path `arrivals` gave it, signed in as one account of
//! a pool made at setup (the app keys a signed-in reader by its user id, so a diff names
//! the reader); it stays `dwell` and leaves. Its join latency is `actions.page_readers`.
//!
//! Delivery accounting (`engine::delivery`): reader `k`'s join is event `k` of the page
//! ledger and its leave event `readers + k`, each owed to every page listener joined on
//! its page once the app accepted the join, or once the reader went. Each listener
//! dedupes what it saw per reader, so loss is per (listener, reader) and a duplicate at
//! one listener never offsets a loss at another; a join is timed from the reader's
//! intended arrival (`delivery.page`, reach marks). The app merges a page's diffs over
//! its throttle interval, so a brief reader may never be seen: `tally` counts it
//! `merged_away`, not lost.
//!
//! The drain waits until every reader is done and every page listener's presence count
//! equals the truth (the page's open listeners plus its readers present) and every owed
//! join and leave arrived, or the merge hold passed since the last reader was done.

mod arrivals;
mod listeners;
mod readers;
mod tally;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use self::arrivals::Arrivals;
use self::listeners::{End, Listeners};
use self::readers::Readers;
use self::tally::Tally;
use crate::engine::delivery::{EventLedger, GroupStats};
use crate::engine::dispatch::Lane;
use crate::engine::error::SimError;
use crate::engine::stats::KindStats;
use crate::engine::workload::{self, Cx, Workload};
use crate::plan::pages::PATHS;
use crate::plan::stages::RateCurve;
use crate::report::names::{Group, Kind};

/// Reader accounts beyond twice the peak of concurrent readers.
const SPARE_ACCOUNTS: u64 = 8;

/// What the listeners and readers of a run share.
pub struct Shared {
    cx: Arc<Cx>,
    /// Per path, its topic.
    topics: Vec<String>,
    arrivals: Arrivals,
    /// The readers' schedule (empty without readers).
    curve: RateCurve,
    /// Readers intended before the warm-up ended.
    warmup: u64,
    dwell: Duration,
    /// Joins (`k`) and leaves (`readers + k`) owed and received.
    ledger: EventLedger,
    group: Arc<GroupStats>,
    stats: Option<Arc<KindStats>>,
    readers: Readers,
    listeners: Listeners,
}

impl Shared {
    fn join_event(&self, k: u64) -> u64 {
        k
    }

    fn leave_event(&self, k: u64) -> u64 {
        self.arrivals.len() + k
    }

    /// Reader `k`'s intended arrival.
    fn intended(&self, k: u64) -> Option<Instant> {
        Some(self.cx.t0()? + self.curve.offset(k))
    }

    fn is_measured(&self, k: u64) -> bool {
        k >= self.warmup
    }

    /// The reader of this run a presence key on `path` names, if any.
    fn reader_of(&self, key: &str, path: usize) -> Option<u64> {
        let k = self.readers.current_of(key)?;
        if self.arrivals.path(k) == path {
            Some(k)
        } else {
            // One of our accounts, whose reader is on another page: the app told the
            // wrong page.
            self.group.unowed();
            None
        }
    }

    /// Per path, the presence the truth says: its open listeners and readers present.
    fn truth(&self) -> Vec<u64> {
        let mut truth: Vec<u64> = (0..PATHS).map(|p| self.listeners.open_on(p)).collect();
        for k in 0..self.arrivals.len() {
            if self.readers.is_present(k as usize) {
                truth[self.arrivals.path(k)] += 1;
            }
        }
        truth
    }

    /// The open listeners whose presence count differs from the truth now.
    fn counts_wrong(&self) -> u64 {
        let truth = self.truth();
        self.listeners.counts().into_iter().filter(|&(_, path, count)| count != truth[path]).count() as u64
    }
}

/// The pages workload of a run.
#[derive(Default)]
pub struct Pages {
    shared: Option<Arc<Shared>>,
    listeners: Vec<JoinHandle<End>>,
    /// Listeners whose count differed from the truth when the drain ended.
    wrong_at_drain: Mutex<Option<u64>>,
}

impl Pages {
    pub fn new() -> Self {
        Self::default()
    }

    fn shared(&self) -> &Arc<Shared> {
        self.shared.as_ref().expect("pages prepared")
    }
}

impl Workload for Pages {
    fn name(&self) -> &'static str {
        "pages"
    }

    fn prepare<'a>(&'a mut self, cx: &'a Arc<Cx>) -> BoxFuture<'a, Result<(), SimError>> {
        async move {
            let plan = &cx.plan;
            let p = &plan.pages;
            // Each agent has pages and accounts of its own.
            let own = format!("{}{}", cx.run_id, plan.agents.slot.map_or(0, |s| s.index));
            let pool =
                if p.readers.is_some() { p.peak_readers(plan.traffic.peak_scale()) * 2 + SPARE_ACCOUNTS } else { 0 };
            let names: Vec<String> = (0..pool).map(|k| format!("p{own}_{k}")).collect();
            let accounts = cx
                .api
                .create_accounts(&names, &own)
                .await
                .map_err(|e| SimError::Setup(format!("page reader accounts: {e}")))?;
            if accounts.iter().any(|a| a.id <= 0) {
                return Err(SimError::Setup(
                    "page reader accounts: the user creation response carries no user id (`data.id`), which \
                     page presence is keyed by"
                        .into(),
                ));
            }
            let curve = p
                .readers
                .as_ref()
                .map_or_else(|| RateCurve::constant(0.0, plan.traffic.duration), |r| plan.traffic.curve(r.rate_per_s));
            let count = curve.count();
            let stats = p.readers.as_ref().map(|_| {
                let stats = KindStats::new(Kind::PageReaders, curve.mean_rate(), count, plan.traffic.max_lag);
                cx.meters.add_kind(stats)
            });
            cx.meters.sockets.requested(u64::from(p.listeners));
            let shared = Shared {
                cx: Arc::clone(cx),
                topics: (0..PATHS).map(|j| format!("page:/sim-{own}/page-{j}")).collect(),
                arrivals: Arrivals::new(count, PATHS, plan.own_seed()),
                warmup: curve.count_before(plan.traffic.warmup),
                curve,
                dwell: p.readers.as_ref().map_or(Duration::ZERO, |r| r.dwell),
                ledger: EventLedger::new(usize::try_from(count * 2).unwrap_or(usize::MAX)),
                group: cx.meters.group(Group::Page),
                stats,
                readers: Readers::new(accounts, count),
                listeners: Listeners::new(p.listeners as usize),
            };
            self.shared = Some(Arc::new(shared));
            Ok(())
        }
        .boxed()
    }

    fn open<'a>(&'a mut self, cx: &'a Arc<Cx>) -> BoxFuture<'a, Result<(), SimError>> {
        async move {
            let sh = Arc::clone(self.shared());
            let n = sh.listeners.len();
            self.listeners = cx.spawn_paced(n, |i| listeners::listen(Arc::clone(&sh), i)).await;
            workload::settle(&sh.listeners.settled, n, "page listeners").await?;
            if n > 0 && sh.listeners.topics() == 0 {
                let failures = cx.meters.sockets.counts().failures;
                return Err(SimError::Setup(format!("no page listener could join: {failures:?}")));
            }
            sh.group.set_topics(sh.listeners.topics());
            Ok(())
        }
        .boxed()
    }

    fn start(&self, _cx: &Arc<Cx>, _t0: Instant) {}

    fn drive(&self, _cx: &Arc<Cx>) -> Result<Vec<Lane>, SimError> {
        let sh = Arc::clone(self.shared());
        if sh.stats.is_none() {
            return Ok(Vec::new());
        }
        // Readers live on the main runtime (their sockets outlast the dispatcher's);
        // the dispatcher's action is the arrival, done once the join was answered.
        let runtime = tokio::runtime::Handle::current();
        let curve = sh.curve.clone();
        let events = (0..sh.arrivals.len()).map(move |k| (curve.offset(k), k));
        let fire = move |k: u64, intended: Instant| {
            let (arrived, answered) = tokio::sync::oneshot::channel();
            let task = runtime.spawn(readers::reader(Arc::clone(&sh), k, intended, arrived));
            sh.readers.fired(task);
            async move {
                let _ = answered.await;
            }
            .boxed()
        };
        Ok(vec![Lane::new(Kind::PageReaders, events, false, fire)])
    }

    fn drain<'a>(&'a self, _cx: &'a Arc<Cx>, deadline: Instant) -> BoxFuture<'a, bool> {
        async move {
            let sh = self.shared();
            // Readers still there at the end of the traffic stay one more dwell; after an
            // interrupt the drain is brief and they are cut short.
            let deadline = if crate::engine::interrupt::requested() { deadline } else { deadline + sh.dwell };
            let drained = workload::drain_until(deadline, || {
                let all_seen = sh.ledger.all_delivered() || sh.readers.hold_passed();
                sh.readers.all_done() && all_seen && sh.counts_wrong() == 0
            })
            .await;
            // The counts at this instant, before anything stops: a listener reading one
            // more frame while it stops must not make it "wrong".
            *self.wrong_at_drain.lock() = Some(sh.counts_wrong());
            drained
        }
        .boxed()
    }

    fn finish<'a>(mut self: Box<Self>, cx: &'a Arc<Cx>) -> BoxFuture<'a, ()> {
        async move {
            let sh = Arc::clone(self.shared());
            let wrong = self.wrong_at_drain.lock().take().unwrap_or_else(|| sh.counts_wrong());
            cx.stop.cancel();
            sh.readers.join_all().await;
            let mut ends = Vec::with_capacity(self.listeners.len());
            for handle in self.listeners.drain(..) {
                if let Ok(end) = handle.await {
                    ends.push(end);
                }
            }
            let tally = settle(&sh, &ends);
            if let Some(stats) = &sh.stats {
                for (name, n) in [
                    ("joins_owed", tally.joins_owed),
                    ("joins_seen", tally.joins_seen),
                    ("leaves_owed", tally.leaves_owed),
                    ("leaves_seen", tally.leaves_seen),
                    ("left", sh.readers.departed_count()),
                    ("cut_short", sh.readers.cut_short_count()),
                    ("listeners_count_wrong", wrong),
                    ("merged_away", tally.merged_away),
                    ("reader_accounts", sh.readers.accounts() as u64),
                ] {
                    stats.add_detail(name, n);
                }
            }
        }
        .boxed()
    }
}

/// Settles the page group from what every listener saw: each joined listener tallied
/// against its page's readers, readers merged away at a listener owing it nothing, loss
/// per (listener, reader). The sum over listeners.
fn settle(sh: &Shared, ends: &[End]) -> Tally {
    let readers = sh.arrivals.len() as usize;
    let mut merged = vec![0u32; readers];
    let mut total = Tally::default();
    let mut with_loss = 0;
    for end in ends.iter().filter(|e| e.joined) {
        let on = sh.arrivals.on(end.path);
        let fates = on.iter().enumerate().map(|(j, &k)| (j as u64, sh.readers.fate(k as usize)));
        let t = tally::listener(fates, &end.joins, &end.leaves, |i| merged[on[i] as usize] += 1);
        with_loss += u64::from(t.lost() > 0);
        total.add(&t);
    }
    for (k, &m) in merged.iter().enumerate().filter(|(_, m)| **m > 0) {
        let k = k as u64;
        for event in [sh.join_event(k), sh.leave_event(k)] {
            sh.ledger.set_owed(event, sh.ledger.owed(event).saturating_sub(m));
        }
    }
    sh.group.settle(sh.ledger.owed_totals(), with_loss);
    total
}
