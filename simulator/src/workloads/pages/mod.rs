//! The page readers of one run: page listener sockets (anonymous, on the hot paths),
//! reader arrivals on the open model, and their accounting.
//!
//! A reader signs in as one account of a pool made at setup (`POST /api/users`, which
//! answers the user id): the app keys a signed-in reader by its user id, so a
//! `presence_diff`'s join or leave names the account, and `current[account]` (set
//! before the reader joins) names the reader. Accounts come back to the pool after
//! their reader left and are reused first-in first-out, so an account's next reader
//! arrives long after its last leave was broadcast. Page diffs are throttled and
//! merged by the app: one diff may carry several joins, each timed on its own.
//!
//! A reader's join is owed to every page listener joined on its path (all join before
//! `t0`), once its join was accepted; its leave likewise once its leave was. Each
//! listener keeps the set of readers it saw join and leave, its own latency histogram
//! (receipt − the reader's intended arrival), and the presence it holds (key → refs,
//! from `presence_state` and diffs), compared with the truth at the end.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use firehose_app::wire::{self, Vsn, events};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::timeout_at;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::engine::error::SimError;
use crate::phoenix::{self, HEARTBEAT_EVERY, JOIN_TIMEOUT};
use crate::plan::Plan;
use crate::plan::pages::{GROUP, KIND, PATHS};
use crate::plan::stages::RateCurve;
use crate::report::histo::{Sharded, Summary};
use crate::report::model::{ActionReport, GroupReport};
use crate::workloads::actions::listen::connect;
use crate::workloads::actions::schedule::Zipf;
use crate::workloads::rooms::setup::Account;

const SHARDS: usize = 8;
const JOINED: u8 = 1;
const LEFT: u8 = 2;
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);
const SETTLE_MARGIN: Duration = Duration::from_secs(30);
const DRAIN_POLL: Duration = Duration::from_millis(10);
/// Reader accounts beyond twice the peak of concurrent readers.
const SPARE_ACCOUNTS: u64 = 8;
/// The longest the app holds a page diff (1.25 × its default 1 s throttle interval),
/// rounded up: a reader that joins and leaves within one held diff cancels out of it
/// (the app merges them), so page listeners never see it. Such a reader, seen neither
/// joining nor leaving and present less than this, is counted `merged_away`, not lost.
pub const MERGE_HOLD: Duration = Duration::from_millis(1500);

struct Shared {
    addr: SocketAddr,
    topics: Vec<String>,
    /// Page listeners joined per path.
    listeners_on: Vec<AtomicU64>,
    accounts: Vec<Account>,
    account_of_key: HashMap<String, u32>,
    /// Per account: the reader (k + 1) it was last given to, 0 for none.
    current: Box<[AtomicU64]>,
    pool: Mutex<VecDeque<u32>>,
    curve: Option<RateCurve>,
    dwell: Duration,
    warmup: u64,
    seed: u64,
    t0: OnceLock<Instant>,
    /// Per reader: its path and `JOINED`/`LEFT` bits.
    path: Box<[AtomicU32]>,
    state: Box<[AtomicU8]>,
    corrected: Sharded,
    uncorrected: Sharded,
    lag: Sharded,
    sent: AtomicU64,
    ok: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    done: AtomicU64,
    /// When the last reader finished.
    last_done: Mutex<Option<Instant>>,
    /// Per reader: milliseconds between its join reply and its leave reply.
    stay_ms: Box<[AtomicU32]>,
    owed: AtomicU64,
    seen: AtomicU64,
    /// Per page listener: the readers (keys) its presence holds now.
    counts: Box<[AtomicU64]>,
    /// Per reader: page listeners that saw it join so far, and the time until 50/99/100 %
    /// of its path's listeners (joined before `t0`) did, recorded on arrival.
    join_seen: Box<[AtomicU32]>,
    /// Per reader: the latest receipt of its join so far, for its reach marks.
    join_latest: Box<[std::sync::atomic::AtomicU64]>,
    reach: crate::workloads::bookmarks::reach::Marks,
    joined: AtomicU64,
    settled: tokio::sync::Semaphore,
    failures: Mutex<BTreeMap<String, u64>>,
    stop: CancellationToken,
}

impl Shared {
    fn error(&self, kind: impl Into<String>) {
        *self.errors.lock().entry(kind.into()).or_default() += 1;
    }

    fn intended(&self, k: u64) -> Option<Instant> {
        Some(*self.t0.get()? + self.curve.as_ref()?.offset(k))
    }
}

/// What one page listener saw.
#[derive(Default)]
struct Seen {
    /// The listener's slot in `Shared::counts`.
    index: usize,
    path: usize,
    joined: bool,
    joins: HashSet<u32>,
    leaves: HashSet<u32>,
    latency: Option<Histogram<u64>>,
    present: usize,
}

/// The page readers and page listeners of one run, as `run.rs` drives them.
pub struct Pages {
    shared: Arc<Shared>,
    listeners: Vec<JoinHandle<Seen>>,
    readers: Mutex<Vec<JoinHandle<()>>>,
}

/// The highest stage multiplier of `plan` (1 without stages).
pub fn max_scale(plan: &Plan) -> f64 {
    plan.stages.iter().map(|s| s.scale).fold(plan.start_scale, f64::max)
}

impl Pages {
    /// Makes the reader accounts (not measured). `None` when the plan has no pages.
    pub async fn prepare(plan: &Plan, base: &str, addr: SocketAddr, run_id: &str) -> Result<Option<Pages>, SimError> {
        let p = &plan.pages;
        if !p.is_active() {
            return Ok(None);
        }
        let peak = p.peak_readers(max_scale(plan));
        let pool = if p.readers.is_some() { peak * 2 + SPARE_ACCOUNTS } else { 0 };
        let names: Vec<String> = (0..pool).map(|k| format!("p{run_id}_{k}")).collect();
        let setup_err = |e: String| SimError::Setup(format!("page readers setup: {e}"));
        let http = crate::workloads::rooms::setup::client().map_err(setup_err)?;
        let accounts = crate::workloads::rooms::setup::create_users(&http, base, &names).await.map_err(setup_err)?;
        let curve = p.readers.as_ref().map(|r| plan.curve(r.rate_per_s));
        let count = curve.as_ref().map_or(0, RateCurve::count) as usize;
        let warmup = curve.as_ref().map_or(0, |c| c.count_before(plan.warmup));
        let shared = Shared {
            addr,
            topics: (0..PATHS).map(|j| format!("page:/sim-{run_id}/page-{j}")).collect(),
            listeners_on: (0..PATHS).map(|_| AtomicU64::new(0)).collect(),
            account_of_key: accounts.iter().enumerate().map(|(a, acc)| (acc.id.to_string(), a as u32)).collect(),
            current: accounts.iter().map(|_| AtomicU64::new(0)).collect(),
            pool: Mutex::new((0..accounts.len() as u32).collect()),
            accounts,
            curve,
            dwell: p.readers.as_ref().map_or(Duration::ZERO, |r| r.dwell),
            warmup,
            seed: plan.seed,
            t0: OnceLock::new(),
            path: (0..count).map(|_| AtomicU32::new(0)).collect(),
            state: (0..count).map(|_| AtomicU8::new(0)).collect(),
            corrected: Sharded::new(SHARDS),
            uncorrected: Sharded::new(SHARDS),
            lag: Sharded::new(SHARDS),
            sent: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            done: AtomicU64::new(0),
            last_done: Mutex::new(None),
            stay_ms: (0..count).map(|_| AtomicU32::new(u32::MAX)).collect(),
            owed: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            counts: (0..p.listeners).map(|_| AtomicU64::new(0)).collect(),
            join_seen: (0..count).map(|_| AtomicU32::new(0)).collect(),
            join_latest: crate::workloads::bookmarks::reach::latest_cells(count),
            reach: crate::workloads::bookmarks::reach::Marks::default(),
            joined: AtomicU64::new(0),
            settled: tokio::sync::Semaphore::new(0),
            failures: Mutex::new(BTreeMap::new()),
            stop: CancellationToken::new(),
        };
        Ok(Some(Pages { shared: Arc::new(shared), listeners: Vec::new(), readers: Mutex::new(Vec::new()) }))
    }

    /// Opens the page listeners (path `i % PATHS`) at the connect rate and waits until
    /// all joined or gave up; an error when there are some and none could join.
    pub async fn open(&mut self, plan: &Plan) -> Result<(), SimError> {
        let n = plan.pages.listeners as usize;
        let every = Duration::from_secs_f64(1.0 / plan.connect_rate_per_s.max(1e-3));
        let start = tokio::time::Instant::now();
        for i in 0..n {
            tokio::time::sleep_until(start + every * i as u32).await;
            let sh = Arc::clone(&self.shared);
            self.listeners.push(tokio::spawn(async move { listen(&sh, i, i % PATHS).await }));
        }
        let all = u32::try_from(n).unwrap_or(u32::MAX);
        let settled = tokio::time::timeout(JOIN_TIMEOUT + SETTLE_MARGIN, self.shared.settled.acquire_many(all)).await;
        if settled.is_err() {
            return Err(SimError::Setup("page listeners neither joined nor failed in time".into()));
        }
        if n > 0 && self.shared.joined.load(Ordering::Relaxed) == 0 {
            let failures = self.shared.failures.lock().clone();
            return Err(SimError::Setup(format!("no page listener could join: {failures:?}")));
        }
        Ok(())
    }

    /// Starts the readers' clock.
    pub fn start(&self, t0: Instant) {
        let _ = self.shared.t0.set(t0);
    }

    /// Sends every reader at its intended time (each on a task of its own; returns
    /// once the last arrived, not when it left).
    pub async fn drive(&self) {
        let sh = &self.shared;
        let (Some(curve), Some(&t0)) = (sh.curve.as_ref(), sh.t0.get()) else { return };
        let interrupted = crate::engine::interrupt::token();
        for k in 0..curve.count() {
            let intended = t0 + curve.offset(k);
            tokio::select! {
                () = sh.stop.cancelled() => return,
                () = interrupted.cancelled() => return,
                () = tokio::time::sleep_until(intended.into()) => {}
            }
            let sh = Arc::clone(sh);
            self.readers.lock().push(tokio::spawn(async move { reader(&sh, k, intended).await }));
        }
    }

    /// Waits until every reader left and every page listener holds the true count and
    /// saw what it was owed (or [`MERGE_HOLD`] passed since the last reader left: what
    /// is missing then was merged away or lost) (true), or `deadline` plus one dwell
    /// passed (false).
    pub async fn drain(&self, deadline: Instant) -> bool {
        let sh = &self.shared;
        let deadline = deadline + sh.dwell;
        let scheduled = sh.path.len() as u64;
        loop {
            let all_seen = sh.seen.load(Ordering::Relaxed) >= sh.owed.load(Ordering::Relaxed)
                || sh.last_done.lock().is_some_and(|at| at.elapsed() >= MERGE_HOLD);
            let settled = sh.done.load(Ordering::Relaxed) >= scheduled && all_seen && self.counts_true();
            if settled {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }

    /// Whether every page listener's presence count is the truth now: the page
    /// listeners of its path plus the readers present there.
    fn counts_true(&self) -> bool {
        let sh = &self.shared;
        let truth = self.truth();
        sh.counts.iter().enumerate().all(|(i, c)| c.load(Ordering::Relaxed) == truth[i % PATHS])
    }

    fn truth(&self) -> Vec<u64> {
        let sh = &self.shared;
        let mut truth: Vec<u64> = sh.listeners_on.iter().map(|l| l.load(Ordering::Relaxed)).collect();
        for (k, s) in sh.state.iter().enumerate() {
            if s.load(Ordering::Relaxed) == JOINED {
                truth[sh.path[k].load(Ordering::Relaxed) as usize] += 1;
            }
        }
        truth
    }

    /// Stops every socket and adds the `page` group and the `page_readers` kind (with
    /// their histograms) to `report`.
    pub async fn finish(self, plan: &Plan, traffic: Duration, report: &mut crate::report::Report) {
        let truth = self.truth();
        let sh = Arc::clone(&self.shared);
        // Each listener's count at the same instant as the truth, before anything stops:
        // a listener reading one more frame while it stops must not make it "wrong".
        let counts: Vec<u64> = sh.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        sh.stop.cancel();
        for h in self.readers.into_inner() {
            let _ = h.await;
        }
        let mut seen = Vec::with_capacity(self.listeners.len());
        for h in self.listeners {
            if let Ok(s) = h.await {
                seen.push(s);
            }
        }
        let secs = traffic.as_secs_f64().max(1e-9);
        let (mut expected, mut received, mut excess) = (0u64, 0u64, 0u64);
        let (mut joins_owed, mut joins_seen, mut leaves_owed, mut leaves_seen, mut wrong) = (0u64, 0, 0, 0, 0);
        let mut merged_away = 0u64;
        let mut latency = crate::report::histo::new_histogram();
        for s in seen.iter().filter(|s| s.joined) {
            for (k, state) in sh.state.iter().enumerate() {
                if sh.path[k].load(Ordering::Relaxed) as usize != s.path {
                    continue;
                }
                let state = state.load(Ordering::Relaxed);
                let k = k as u32;
                let (saw_join, saw_leave) = (s.joins.contains(&k), s.leaves.contains(&k));
                let short = sh.stay_ms[k as usize].load(Ordering::Relaxed) < MERGE_HOLD.as_millis() as u32;
                if state == JOINED | LEFT && short && !saw_join && !saw_leave {
                    merged_away += 1;
                    continue;
                }
                let owed_join = state & JOINED != 0;
                let owed_leave = state & LEFT != 0;
                joins_owed += u64::from(owed_join);
                leaves_owed += u64::from(owed_leave);
                joins_seen += u64::from(owed_join && s.joins.contains(&k));
                leaves_seen += u64::from(owed_leave && s.leaves.contains(&k));
                excess +=
                    u64::from(!owed_join && s.joins.contains(&k)) + u64::from(!owed_leave && s.leaves.contains(&k));
            }
            if let Some(h) = &s.latency {
                let _ = latency.add(h);
            }
            let count = counts.get(s.index).copied().unwrap_or(s.present as u64);
            wrong += u64::from(count != truth[s.path]);
        }
        expected += joins_owed + leaves_owed;
        received += joins_seen + leaves_seen;
        let joined_listeners = seen.iter().filter(|s| s.joined).count() as u64;
        let topics = (0..PATHS).filter(|&j| seen.iter().any(|s| s.joined && s.path == j)).count() as u64;
        let m = &mut report.model;
        if plan.pages.listeners > 0 {
            let reach = sh.reach.histograms(GROUP);
            m.groups.insert(
                GROUP.to_owned(),
                GroupReport {
                    listeners: joined_listeners,
                    topics,
                    expected,
                    received,
                    lost: expected - received,
                    excess,
                    deliveries_per_s: received as f64 / secs,
                    latency: Summary::of(&latency),
                    reach: Some(crate::workloads::bookmarks::reach::ReachReport::of(&reach)),
                    ..GroupReport::default()
                },
            );
            let name = "delivery_page".to_owned();
            m.histograms.insert(name.clone(), crate::report::files::hgrm_file_name(&name));
            m.histogram_paths.insert(name.clone(), format!("/groups/{GROUP}/latency"));
            report.histograms.push((name, latency));
            for (name, path, h) in reach {
                m.histograms.insert(name.clone(), crate::report::files::hgrm_file_name(&name));
                m.histogram_paths.insert(name.clone(), path);
                report.histograms.push((name, h));
            }
        }
        let Some(readers) = &plan.pages.readers else { return };
        let (corrected, uncorrected, lag) = (sh.corrected.merged(), sh.uncorrected.merged(), sh.lag.merged());
        let errors = sh.errors.lock().clone();
        let ok = sh.ok.load(Ordering::Relaxed);
        let mut detail = BTreeMap::new();
        detail.insert("joins_owed".to_owned(), joins_owed);
        detail.insert("joins_seen".to_owned(), joins_seen);
        detail.insert("leaves_owed".to_owned(), leaves_owed);
        detail.insert("leaves_seen".to_owned(), leaves_seen);
        detail.insert(
            "left".to_owned(),
            sh.state.iter().filter(|s| s.load(Ordering::Relaxed) & LEFT != 0).count() as u64,
        );
        detail.insert("listeners_count_wrong".to_owned(), wrong);
        detail.insert("merged_away".to_owned(), merged_away);
        detail.insert("reader_accounts".to_owned(), sh.accounts.len() as u64);
        let action = ActionReport {
            rate_per_s: plan.curve(readers.rate_per_s).mean_rate(),
            scheduled: sh.path.len() as u64,
            sent: sh.sent.load(Ordering::Relaxed),
            ok,
            error_count: errors.values().sum(),
            errors,
            throughput_per_s: ok as f64 / secs,
            latency_corrected: Summary::of(&corrected),
            latency_uncorrected: Summary::of(&uncorrected),
            lag: Summary::of(&lag),
            detail,
        };
        m.actions.insert(KIND.to_owned(), action);
        for (suffix, h, field) in [
            ("corrected", corrected, "latency_corrected"),
            ("uncorrected", uncorrected, "latency_uncorrected"),
            ("lag", lag, "lag"),
        ] {
            let name = format!("action_{KIND}_{suffix}");
            m.histograms.insert(name.clone(), crate::report::files::hgrm_file_name(&name));
            m.histogram_paths.insert(name.clone(), format!("/actions/{KIND}/{field}"));
            report.histograms.push((name, h));
        }
    }
}

/// One reader: arrive, join signed in, stay `dwell` (reading what the page sends),
/// leave with `phx_leave`, hand the account back.
async fn reader(sh: &Shared, k: u64, intended: Instant) {
    let start = Instant::now();
    let key = k as usize;
    sh.lag.record(key, start.saturating_duration_since(intended));
    sh.sent.fetch_add(1, Ordering::Relaxed);
    let mut rng = ChaCha8Rng::seed_from_u64(sh.seed ^ 0x7061_6765_0000 ^ k);
    let path = Zipf::new(PATHS).sample(&mut rng) as usize;
    sh.path[key].store(path as u32, Ordering::Relaxed);
    let account = sh.pool.lock().pop_front();
    let Some(account) = account else {
        sh.error("no_free_account");
        sh.done.fetch_add(1, Ordering::Relaxed);
        return;
    };
    sh.current[account as usize].store(k + 1, Ordering::Release);
    let topic = &sh.topics[path];
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let joined = async {
        let mut ws = connect(sh.addr, Some(&sh.accounts[account as usize].token), deadline).await?;
        ws.send(Message::text(phoenix::join_frame(topic))).await.map_err(|_| "join_send_failed".to_owned())?;
        phoenix::await_join_reply(&mut ws, deadline, |_| "join_read_failed".to_owned()).await?;
        Ok::<_, String>(ws)
    }
    .await;
    match joined {
        Err(kind) => sh.error(kind),
        Ok(mut ws) => {
            let now = Instant::now();
            if k >= sh.warmup {
                sh.corrected.record(key, now.saturating_duration_since(intended));
                sh.uncorrected.record(key, now.saturating_duration_since(start));
            }
            sh.ok.fetch_add(1, Ordering::Relaxed);
            sh.state[key].fetch_or(JOINED, Ordering::Relaxed);
            sh.owed.fetch_add(sh.listeners_on[path].load(Ordering::Relaxed), Ordering::Relaxed);
            let until = tokio::time::Instant::from_std(now + sh.dwell);
            let mut open = true;
            while let Ok(next) = timeout_at(until, ws.next()).await {
                if !matches!(next, Some(Ok(_))) {
                    open = false;
                    break;
                }
            }
            if open && leave(&mut ws, topic).await {
                let stay = now.elapsed().as_millis().min(u128::from(u32::MAX - 1)) as u32;
                sh.stay_ms[key].store(stay, Ordering::Relaxed);
                sh.state[key].fetch_or(LEFT, Ordering::Relaxed);
                sh.owed.fetch_add(sh.listeners_on[path].load(Ordering::Relaxed), Ordering::Relaxed);
            } else {
                sh.error(if open { "leave_failed" } else { "closed_while_reading" });
            }
            let _ = ws.close(None).await;
        }
    }
    sh.pool.lock().push_back(account);
    *sh.last_done.lock() = Some(Instant::now());
    sh.done.fetch_add(1, Ordering::Relaxed);
}

/// Sends `phx_leave` (ref "2") and waits for its `ok` reply.
async fn leave(ws: &mut phoenix::Socket, topic: &str) -> bool {
    let frame = wire::encode_text(Vsn::V2, Some("1"), Some("2"), topic, events::LEAVE, &serde_json::json!({}));
    if ws.send(Message::text(frame)).await.is_err() {
        return false;
    }
    let deadline = tokio::time::Instant::now() + LEAVE_TIMEOUT;
    loop {
        let Ok(Some(Ok(Message::Text(text)))) = timeout_at(deadline, ws.next()).await else { return false };
        let Ok(frame) = wire::decode_text(Vsn::V2, text.as_str()) else { continue };
        if frame.event == events::REPLY && frame.msg_ref.as_deref() == Some("2") {
            return frame.payload_as::<phoenix::Reply<'_>>().is_ok_and(|r| r.status == "ok");
        }
    }
}

/// One page listener on path `path`: joins anonymously, then applies every
/// `presence_state`/`presence_diff` until the run stops. As phoenix.js does, diffs that
/// arrive before the `presence_state` (even before the join reply: the app subscribes
/// the socket before the channel answers) wait and are applied after it.
async fn listen(sh: &Shared, index: usize, path: usize) -> Seen {
    let mut seen = Seen { index, path, ..Seen::default() };
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let topic = &sh.topics[path];
    let mut view = View {
        sh,
        path,
        latency: crate::report::histo::new_histogram(),
        present: HashMap::new(),
        pending: Vec::new(),
        synced: false,
    };
    let joined = async {
        let mut ws = connect(sh.addr, None, deadline).await?;
        ws.send(Message::text(phoenix::join_frame(topic))).await.map_err(|_| "join_send_failed".to_owned())?;
        loop {
            let msg = match timeout_at(deadline, ws.next()).await {
                Err(_) => return Err("join_timeout".to_owned()),
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(Message::Close(_))) | None) => return Err("closed_before_join".to_owned()),
                Ok(Some(Err(_))) => return Err("join_read_failed".to_owned()),
                Ok(Some(Ok(_))) => continue,
            };
            let Ok(frame) = wire::decode_text(Vsn::V2, msg.as_str()) else { continue };
            if frame.event == events::REPLY && frame.msg_ref.as_deref() == Some("1") {
                let reply: phoenix::Reply<'_> = frame.payload_as().map_err(|_| "join_reply_undecodable".to_owned())?;
                if reply.status != "ok" {
                    let reason = reply.response.get("reason").and_then(Value::as_str).unwrap_or("unknown");
                    return Err(format!("join_error:{reason}"));
                }
                return Ok(ws);
            }
            if let Ok(payload) = frame.payload_as::<Value>() {
                view.apply(&frame.event, payload, Instant::now(), &mut seen);
            }
        }
    }
    .await;
    let mut ws = match joined {
        Ok(ws) => ws,
        Err(kind) => {
            *sh.failures.lock().entry(kind).or_default() += 1;
            sh.settled.add_permits(1);
            return seen;
        }
    };
    seen.joined = true;
    sh.listeners_on[path].fetch_add(1, Ordering::Relaxed);
    sh.joined.fetch_add(1, Ordering::Relaxed);
    sh.settled.add_permits(1);
    let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
    heartbeat.tick().await;
    let mut beat = 0u64;
    loop {
        let msg = tokio::select! {
            () = sh.stop.cancelled() => break,
            _ = heartbeat.tick() => {
                beat += 1;
                let _ = ws.send(Message::text(phoenix::heartbeat_frame(&format!("h{beat}")))).await;
                continue;
            }
            msg = ws.next() => msg,
        };
        let Some(Ok(Message::Text(text))) = msg else {
            if matches!(msg, None | Some(Err(_)) | Some(Ok(Message::Close(_)))) {
                *sh.failures.lock().entry("closed_during_run".into()).or_default() += 1;
                break;
            }
            continue;
        };
        let now = Instant::now();
        let Ok(frame) = wire::decode_text(Vsn::V2, text.as_str()) else { continue };
        let Ok(payload) = frame.payload_as::<Value>() else { continue };
        if view.apply(&frame.event, payload, now, &mut seen) {
            sh.counts[index].store(view.present.len() as u64, Ordering::Relaxed);
        }
    }
    seen.present = view.present.len();
    seen.latency = Some(view.latency);
    let _ = ws.close(None).await;
    seen
}

/// A page listener's view of its page's presence.
struct View<'a> {
    sh: &'a Shared,
    path: usize,
    latency: Histogram<u64>,
    /// Key → the `phx_ref`s of its metas.
    present: HashMap<String, HashSet<String>>,
    /// Whether the first `presence_state` came.
    synced: bool,
    /// Diffs received before it, with their receipt time.
    pending: Vec<(Value, Instant)>,
}

impl View<'_> {
    /// Applies a `presence_state` or `presence_diff`; whether the presence changed.
    fn apply(&mut self, event: &str, payload: Value, now: Instant, seen: &mut Seen) -> bool {
        match event {
            "presence_state" => {
                self.present.clear();
                add_metas(&mut self.present, &payload);
                self.synced = true;
                for (diff, at) in std::mem::take(&mut self.pending) {
                    self.diff(&diff, at, seen);
                }
                true
            }
            "presence_diff" if self.synced => {
                self.diff(&payload, now, seen);
                true
            }
            "presence_diff" => {
                self.pending.push((payload, now));
                false
            }
            _ => false,
        }
    }

    fn diff(&mut self, payload: &Value, now: Instant, seen: &mut Seen) {
        let sh = self.sh;
        let (joins, leaves) = (&payload["joins"], &payload["leaves"]);
        add_metas(&mut self.present, joins);
        for (key, v) in leaves.as_object().into_iter().flatten() {
            if let Some(refs) = self.present.get_mut(key) {
                for r in metas_refs(v) {
                    refs.remove(&r);
                }
                if refs.is_empty() {
                    self.present.remove(key);
                }
            }
        }
        for (key, _) in joins.as_object().into_iter().flatten() {
            if let Some(k) = sh.reader_of(key, self.path)
                && seen.joins.insert(k as u32)
            {
                sh.seen.fetch_add(1, Ordering::Relaxed);
                let nth = sh.join_seen.get(k as usize).map_or(0, |n| n.fetch_add(1, Ordering::AcqRel) + 1);
                if k >= sh.warmup
                    && let Some(at) = sh.intended(k)
                {
                    let elapsed = now.saturating_duration_since(at);
                    crate::report::histo::record(&mut self.latency, elapsed);
                    let audience = sh.listeners_on[self.path].load(Ordering::Relaxed);
                    let audience = u32::try_from(audience).unwrap_or(u32::MAX);
                    sh.reach.arrived(audience, nth, elapsed, k as usize, sh.join_latest.get(k as usize));
                }
            }
        }
        for (key, _) in leaves.as_object().into_iter().flatten() {
            if let Some(k) = sh.reader_of(key, self.path)
                && seen.leaves.insert(k as u32)
            {
                sh.seen.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Shared {
    /// The reader a presence key on `path` stands for: the account's current reader.
    fn reader_of(&self, key: &str, path: usize) -> Option<u64> {
        let account = *self.account_of_key.get(key)?;
        let k = self.current[account as usize].load(Ordering::Acquire).checked_sub(1)?;
        (self.path[k as usize].load(Ordering::Relaxed) as usize == path).then_some(k)
    }
}

fn metas_refs(v: &Value) -> Vec<String> {
    v["metas"].as_array().into_iter().flatten().filter_map(|m| m["phx_ref"].as_str().map(str::to_owned)).collect()
}

fn add_metas(present: &mut HashMap<String, HashSet<String>>, map: &Value) {
    for (key, v) in map.as_object().into_iter().flatten() {
        let refs = metas_refs(v);
        if !refs.is_empty() {
            present.entry(key.clone()).or_default().extend(refs);
        }
    }
}
