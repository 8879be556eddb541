//! Page readers: reader `k` arrives when the dispatcher fires it (its intended time on
//! the stage curve), takes an account from the pool, connects signed in, joins its page,
//! stays `dwell` (reading what the page sends, heartbeating), sends `phx_leave`, closes
//! and gives the account back.
//!
//! Accounts are reused first-in first-out, and the pool holds twice the peak of
//! concurrent readers, so an account's next reader arrives long after its last leave
//! was broadcast: a presence key (the account's user id) names exactly one reader at a
//! time, `current[account]`, set before the reader joins.
//!
//! Each reader is settled once, when it is done: `ok` when it arrived, stayed and left
//! (or the run ended while it stayed: `cut_short`), else an error named for what failed;
//! its latency is its join's (intended arrival → join reply). After SIGINT/SIGTERM the
//! readers present leave at once.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use firehose_app::wire::{self, Vsn, events};
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::Shared;
use super::tally::{Fate, MERGE_HOLD};
use crate::http::setup::Account;
use crate::phoenix::{Ended, Failure, Flow, JOIN_TIMEOUT, Socket, channel_end};

/// A reader waits this long for the reply to its `phx_leave`.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Reader state bits.
const JOINED: u8 = 1;
const DEPARTED: u8 = 2;
/// Finished reader tasks are dropped from the list once it is this long.
const PRUNE_AT: usize = 1024;

/// The readers of a run: accounts, and what became of each reader.
pub struct Readers {
    accounts: Vec<Account>,
    account_of_key: HashMap<String, u32>,
    /// Per account: the reader (`k + 1`) it was last given to, 0 for none.
    current: Box<[AtomicU64]>,
    pool: Mutex<VecDeque<u32>>,
    /// Per reader: `JOINED` / `DEPARTED` bits.
    state: Box<[AtomicU8]>,
    /// Per reader: milliseconds between its join reply and its departure.
    stay_ms: Box<[AtomicU32]>,
    fired: AtomicU64,
    done: AtomicU64,
    /// Readers the end of the run cut short while they stayed.
    cut_short: AtomicU64,
    last_done: Mutex<Option<Instant>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Readers {
    /// `readers` readers signing in as `accounts`, whose ids key them in presence.
    pub fn new(accounts: Vec<Account>, readers: u64) -> Self {
        let n = usize::try_from(readers).unwrap_or(usize::MAX);
        Self {
            account_of_key: accounts.iter().enumerate().map(|(a, acc)| (acc.id.to_string(), a as u32)).collect(),
            current: accounts.iter().map(|_| AtomicU64::new(0)).collect(),
            pool: Mutex::new((0..accounts.len() as u32).collect()),
            accounts,
            state: (0..n).map(|_| AtomicU8::new(0)).collect(),
            stay_ms: (0..n).map(|_| AtomicU32::new(u32::MAX)).collect(),
            fired: AtomicU64::new(0),
            done: AtomicU64::new(0),
            cut_short: AtomicU64::new(0),
            last_done: Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
        }
    }

    pub fn accounts(&self) -> usize {
        self.accounts.len()
    }

    /// The reader a presence key stands for now: the account's current reader.
    pub fn current_of(&self, key: &str) -> Option<u64> {
        let account = *self.account_of_key.get(key)?;
        self.current[account as usize].load(Ordering::Acquire).checked_sub(1)
    }

    /// Reader `k` was fired; its task is `task`.
    pub fn fired(&self, task: JoinHandle<()>) {
        self.fired.fetch_add(1, Ordering::AcqRel);
        let mut tasks = self.tasks.lock();
        if tasks.len() >= PRUNE_AT {
            tasks.retain(|t| !t.is_finished());
        }
        tasks.push(task);
    }

    /// Every fired reader is done.
    pub fn all_done(&self) -> bool {
        self.done.load(Ordering::Acquire) >= self.fired.load(Ordering::Acquire)
    }

    /// The merge hold passed since the last reader was done (what a listener is still
    /// missing then was merged away or is lost).
    pub fn hold_passed(&self) -> bool {
        self.last_done.lock().is_some_and(|at| at.elapsed() >= MERGE_HOLD)
    }

    /// Reader `k` is present now (joined, not yet gone).
    pub fn is_present(&self, k: usize) -> bool {
        self.state.get(k).is_some_and(|s| s.load(Ordering::Acquire) == JOINED)
    }

    pub fn fate(&self, k: usize) -> Fate {
        let state = self.state.get(k).map_or(0, |s| s.load(Ordering::Acquire));
        let stay = self.stay_ms.get(k).map_or(u32::MAX, |s| s.load(Ordering::Acquire));
        Fate {
            joined: state & JOINED != 0,
            departed: state & DEPARTED != 0,
            short: u128::from(stay) < MERGE_HOLD.as_millis(),
        }
    }

    pub fn departed_count(&self) -> u64 {
        self.state.iter().filter(|s| s.load(Ordering::Acquire) & DEPARTED != 0).count() as u64
    }

    pub fn cut_short_count(&self) -> u64 {
        self.cut_short.load(Ordering::Acquire)
    }

    /// Waits for every reader task (they stop with the run).
    pub async fn join_all(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for t in tasks {
            let _ = t.await;
        }
    }

    fn take_account(&self, k: u64) -> Option<u32> {
        let account = self.pool.lock().pop_front()?;
        self.current[account as usize].store(k + 1, Ordering::Release);
        Some(account)
    }

    fn finished(&self, account: Option<u32>) {
        if let Some(a) = account {
            self.pool.lock().push_back(a);
        }
        *self.last_done.lock() = Some(Instant::now());
        self.done.fetch_add(1, Ordering::AcqRel);
    }
}

/// How a reader's stay ended.
enum Departure {
    /// It left with `phx_leave`, answered `ok`.
    Left,
    /// It went otherwise (named): the socket ended, the leave failed.
    Failed(String),
    /// The run ended while it stayed.
    CutShort,
}

/// Reader `k`, intended to arrive at `intended`; `arrived` is told once its join was
/// answered or failed (the dispatcher's action ends there, not when the reader leaves).
pub async fn reader(sh: Arc<Shared>, k: u64, intended: Instant, arrived: oneshot::Sender<()>) {
    let Some(stats) = sh.stats.as_ref() else { return };
    let (r, key) = (&sh.readers, k as usize);
    let sent = Instant::now();
    stats.sent(key, intended, sent);
    let Some(account) = r.take_account(k) else {
        stats.error("no_free_account");
        r.finished(None);
        return;
    };
    let path = sh.arrivals.path(k);
    let topic = &sh.topics[path];
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let token = &r.accounts[account as usize].token;
    let joined = async {
        let mut socket = sh.cx.route.connect(sh.cx.route.home(k as usize), None, Some(token), deadline).await?.0;
        socket.join_plain(topic, "1", deadline).await?;
        Ok::<_, Failure>(socket)
    };
    let mut socket = match Box::pin(joined).await {
        Ok(socket) => socket,
        Err(f) => {
            stats.error(&f.name());
            drop(arrived);
            r.finished(Some(account));
            return;
        }
    };
    let answered = Instant::now();
    r.state[key].fetch_or(JOINED, Ordering::AcqRel);
    sh.ledger.set_owed(sh.join_event(k), sh.listeners.audience(path));
    let _ = arrived.send(());

    let departure = stay(&sh, &mut socket, topic, answered + sh.dwell).await;
    let outcome = match &departure {
        Departure::CutShort => {
            r.cut_short.fetch_add(1, Ordering::AcqRel);
            Ok(())
        }
        Departure::Left => Ok(()),
        Departure::Failed(kind) => Err(kind.as_str()),
    };
    if !matches!(departure, Departure::CutShort) {
        // Gone either way: the app untracks it and owes the page its leave.
        let stay = answered.elapsed().as_millis().min(u128::from(u32::MAX - 1)) as u32;
        r.stay_ms[key].store(stay, Ordering::Release);
        r.state[key].fetch_or(DEPARTED, Ordering::AcqRel);
        sh.ledger.set_owed(sh.leave_event(k), sh.listeners.audience(path));
    }
    socket.close().await;
    stats.answered(key, sh.is_measured(k), intended, Some(sent), answered, outcome);
    r.finished(Some(account));
}

/// Stays on the page until `leave_at` (reading what it sends; heartbeats go out), or
/// at once after SIGINT/SIGTERM (so that its leave reaches the page within the brief
/// drain), then leaves with `phx_leave`.
async fn stay(sh: &Shared, socket: &mut Socket, topic: &str, leave_at: Instant) -> Departure {
    let (stop, interrupted) = (sh.cx.stop.clone(), crate::engine::interrupt::token());
    // tokio's timer (up to ~1 ms late) is fine here: the leave is not a scheduled action
    // and nothing is timed from it; the dispatcher fires the arrivals.
    let until = async {
        tokio::select! {
            () = stop.cancelled() => {}
            () = interrupted.cancelled() => {}
            () = tokio::time::sleep_until(leave_at.into()) => {}
        }
    };
    tokio::pin!(until);
    let mut ended_channel = None;
    let ended = socket
        .read(until.as_mut(), None, &mut |text, _| match own_channel_end(text, topic) {
            Some(f) => {
                ended_channel = Some(f);
                Flow::Stop
            }
            None => Flow::Continue,
        })
        .await;
    match ended {
        Ended::Failed(f) => return Departure::Failed(f.name()),
        Ended::Stopped => return Departure::Failed(ended_channel.map_or_else(|| "stopped".into(), |f| f.name())),
        Ended::Until if stop.is_cancelled() => return Departure::CutShort,
        Ended::Until => {}
    }
    if let Err(f) = socket.push(topic, "1", "2", events::LEAVE, &serde_json::json!({})).await {
        return Departure::Failed(f.name());
    }
    match socket.reply("2", tokio::time::Instant::now() + LEAVE_TIMEOUT, &mut |_, _| {}).await {
        Ok(Ok(_)) => Departure::Left,
        Ok(Err(reason)) => Departure::Failed(format!("leave_error:{reason}")),
        Err(f) => Departure::Failed(f.name()),
    }
}

/// The failure `text` means for the reader's channel on `topic`, if it ends it.
fn own_channel_end(text: &str, topic: &str) -> Option<Failure> {
    channel_end(&wire::decode_text(Vsn::V2, text).ok()?, topic)
}
