//! Ramped listeners: listeners a listener ramp (`plan::ramp`) connects only part of the
//! traffic phase. Listeners connected the whole time are *static* (`listeners` opens
//! them before t0 and the ledger owes them every event). Every other listener walks
//! its connected windows: it connects when the ramp reaches it and disconnects
//! (client-side: never a failure, never the target closing it) when a ramp-down passes
//! it, possibly several times. Its windows are accounted by `seq` continuity instead of
//! the per-event ledger: each joins with `since: null`, the server answers the topic's
//! `seq` at the instant it subscribed, and the window owes every `seq` after that, up to
//! the last one it saw when the ramp took it away, or up to the topic's final `seq`
//! (read by one more `since: null` join after the drain) when it was still connected at
//! the end. Its loss is what it owed and never saw. Held back on purpose, ramped
//! listeners never make a run partial.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use firehose_app::wire::{self, Vsn, events};
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use super::audience::Spec;
use super::listeners::{Shared, connect};
use crate::engine::delivery::Seen;
use crate::phoenix::{Ended, Flow, JoinParams, Position, SeqCheck};
use crate::plan::ramp::{ListenerRamp, Window};
use crate::report::model::LateReport;
use crate::report::names::Group;

/// A ramped listener's accounting, over all its windows.
#[derive(Debug, Clone, Default)]
struct Tally {
    windows: u64,
    expected: u64,
    received: u64,
    duplicates: u64,
    reordered: u64,
    /// The window still open at the end: (seq at join, highest seq seen, distinct seqs).
    open: Option<(u64, u64, u64)>,
}

struct Listener {
    spec: Spec,
    windows: Vec<Window>,
    tally: Mutex<Tally>,
    /// Highest seq seen in the current window (for the end-of-run wait).
    last: AtomicU64,
}

/// The ramped listeners of a run.
pub struct Ramp {
    listeners: Vec<Arc<Listener>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    failures: Arc<Mutex<BTreeMap<(Group, String), u64>>>,
    /// Windows not yet started (joined or failed to).
    due: Arc<AtomicU64>,
}

/// Splits `specs` into the static listeners (returned, opened before `t0`) and the
/// ramped ones (kept, with their windows).
pub fn split(ramp: &ListenerRamp, specs: Vec<Spec>) -> (Vec<Spec>, Ramp) {
    let mut sizes: BTreeMap<Group, usize> = BTreeMap::new();
    for s in &specs {
        *sizes.entry(s.group).or_default() += 1;
    }
    let mut ranks: BTreeMap<Group, usize> = BTreeMap::new();
    let (mut statics, mut ramped) = (Vec::new(), Vec::new());
    for spec in specs {
        let n = sizes[&spec.group];
        let rank = ranks.entry(spec.group).or_default();
        let r = *rank;
        *rank += 1;
        if r < ramp.statics(n) {
            statics.push(spec);
        } else {
            let windows = ramp.windows(r, n);
            ramped.push(Arc::new(Listener { spec, windows, tally: Mutex::default(), last: AtomicU64::new(0) }));
        }
    }
    let due = ramped.iter().map(|l| l.windows.len() as u64).sum();
    let ramp = Ramp {
        due: Arc::new(AtomicU64::new(due)),
        listeners: ramped,
        tasks: Mutex::default(),
        failures: Arc::default(),
    };
    (statics, ramp)
}

impl Ramp {
    /// Ramped listeners.
    pub fn len(&self) -> usize {
        self.listeners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty()
    }

    /// Starts every ramped listener's walk through its windows from `t0`.
    pub fn start(&self, shared: &Arc<Shared>, t0: Instant) {
        let mut tasks = self.tasks.lock();
        for l in &self.listeners {
            let (l, shared, failures, due) =
                (Arc::clone(l), Arc::clone(shared), Arc::clone(&self.failures), Arc::clone(&self.due));
            tasks.push(tokio::spawn(async move { walk(&shared, &l, t0, &failures, &due).await }));
        }
    }

    /// After the drain: reads every ramped topic's final `seq`, waits (until
    /// `deadline`) for open windows to catch up with it, stops the listeners and
    /// returns each group's late report.
    pub async fn finish(self, shared: &Shared, deadline: Instant) -> BTreeMap<Group, LateReport> {
        // Every window starts inside the traffic phase, the last ones at its very end.
        while self.due.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut finals: BTreeMap<Arc<str>, u64> = BTreeMap::new();
        for l in &self.listeners {
            if !finals.contains_key(&l.spec.topic)
                && let Ok((socket, response, _)) =
                    connect(shared, l.spec.index, &l.spec.topic, &JoinParams::POSITION).await
            {
                finals.insert(Arc::clone(&l.spec.topic), Position::of(&response).seq.unwrap_or(0));
                socket.close().await;
            }
        }
        let caught_up = || {
            self.listeners.iter().all(|l| {
                let open = l.tally.lock().open.is_some();
                !open || l.last.load(Ordering::Relaxed) >= finals.get(&l.spec.topic).copied().unwrap_or(0)
            })
        };
        while !caught_up() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The listeners stop with the run's token, which the caller cancels next.
        shared.cx.stop.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for t in tasks {
            let _ = t.await;
        }
        let mut out: BTreeMap<Group, LateReport> = BTreeMap::new();
        for l in &self.listeners {
            let mut t = l.tally.lock().clone();
            if let Some((from, _, got)) = t.open.take() {
                let owed = finals.get(&l.spec.topic).copied().unwrap_or(from).saturating_sub(from);
                t.expected += owed;
                t.received += got.min(owed);
            }
            let r = out.entry(l.spec.group).or_default();
            r.listeners += 1;
            r.windows += t.windows;
            r.expected += t.expected;
            r.received += t.received;
            r.duplicates += t.duplicates;
            r.reordered += t.reordered;
            r.lost += t.expected.saturating_sub(t.received);
        }
        for ((g, kind), n) in self.failures.lock().iter() {
            *out.entry(*g).or_default().failures.entry(kind.clone()).or_default() += n;
        }
        out
    }
}

/// One ramped listener: for each window, wait for its start, connect and join with
/// `since: null`, count every `seq` until its end (or the run's stop), disconnect.
async fn walk(
    shared: &Shared,
    l: &Listener,
    t0: Instant,
    failures: &Mutex<BTreeMap<(Group, String), u64>>,
    due: &AtomicU64,
) {
    let (cx, events) = (&shared.cx, &shared.profile.events);
    for &(from, until) in &l.windows {
        tokio::select! {
            () = cx.stop.cancelled() => return,
            () = tokio::time::sleep_until((t0 + from).into()) => {}
        }
        let joined = connect(shared, l.spec.index, &l.spec.topic, &JoinParams::POSITION).await;
        due.fetch_sub(1, Ordering::Release);
        let (mut socket, response, _) = match joined {
            Ok(j) => j,
            Err(f) => {
                *failures.lock().entry((l.spec.group, f.name())).or_default() += 1;
                continue;
            }
        };
        let start = Position::of(&response).seq.unwrap_or(0);
        let (mut seq, mut distinct) = (SeqCheck::default(), Seen::default());
        seq.start_at(start);
        l.last.store(start, Ordering::Relaxed);
        let mut duplicates = 0u64;
        {
            let mut t = l.tally.lock();
            t.windows += 1;
            t.open = Some((start, start, 0));
        }
        cx.meters.sockets.came_back();
        let end = async {
            tokio::select! {
                () = cx.stop.cancelled() => {}
                () = async {
                    match until {
                        Some(u) => tokio::time::sleep_until((t0 + u).into()).await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
        };
        tokio::pin!(end);
        let mut on_frame = |text: &str, _at: Instant| {
            let Ok(frame) = wire::decode_text(Vsn::V2, text) else { return Flow::Continue };
            if *frame.topic != *l.spec.topic || frame.event == events::REPLY {
                return Flow::Continue;
            }
            if let Ok(picked) = events.pick(frame.payload.get())
                && let Some(s) = picked.seq
            {
                seq.see(s);
                if !distinct.insert(s) {
                    duplicates += 1;
                }
                let last = seq.last().unwrap_or(s);
                l.last.store(last, Ordering::Relaxed);
                l.tally.lock().open = Some((start, last, distinct.len()));
            }
            Flow::Continue
        };
        let ended = socket.read(end.as_mut(), None, &mut on_frame).await;
        let stopped = cx.stop.is_cancelled();
        if let Ended::Failed(f) = &ended {
            *failures.lock().entry((l.spec.group, f.name())).or_default() += 1;
        }
        cx.meters.sockets.went_away();
        {
            let mut t = l.tally.lock();
            t.duplicates += duplicates;
            t.reordered += seq.reordered;
            if stopped {
                // Still connected at the end: `finish` settles it against the final seq.
                t.open = Some((start, seq.last().unwrap_or(start), distinct.len()));
            } else {
                // Ramped down (or closed): owed what lies between its join and its last seq.
                t.open = None;
                let owed = seq.last().unwrap_or(start).saturating_sub(start);
                t.expected += owed;
                t.received += distinct.len().min(owed);
            }
        }
        socket.close().await;
        if stopped {
            return;
        }
    }
}
