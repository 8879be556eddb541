//! Page listeners: one anonymous socket each on `page:<path>` of hot path `i % PATHS`,
//! keeping the page's presence as phoenix.js does ([`View`]) until the run stops. Every
//! reader join or leave a diff names is traced to its reader (the presence key is the
//! reader account's user id), deduplicated per listener ([`Seen`], by the reader's
//! place on the page), counted once into the page ledger, and a join timed from the
//! reader's intended arrival. The presence count each listener holds is published for
//! the drain, which compares it with the truth.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::Value;

use super::Shared;
use crate::engine::delivery::Seen;
use crate::phoenix::{Failure, JOIN_TIMEOUT, JoinParams, topic_event};
use crate::plan::pages::PATHS;
use crate::workloads::failover::{self, Loss};

const PRESENCE_STATE: &str = "presence_state";
const PRESENCE_DIFF: &str = "presence_diff";

/// What a page listener saw, returned when it stops.
#[derive(Debug, Default)]
pub struct End {
    pub index: usize,
    pub path: usize,
    pub joined: bool,
    /// Readers of its page (by place) whose join it saw, each once.
    pub joins: Seen,
    /// And whose leave.
    pub leaves: Seen,
}

/// Page listener `index`: joins anonymously, then reads until the run stops.
pub async fn listen(sh: Arc<Shared>, index: usize) -> End {
    let path = index % PATHS;
    let mut end = End { index, path, ..End::default() };
    let mut view = View::default();
    let topic = sh.topics[path].clone();
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    // The app subscribes the socket before it answers the join: presence frames may come
    // first, and count.
    let joined = async {
        let (mut socket, at) = sh.cx.connect(index, None, deadline).await?;
        let mut early = |text: &str, at: Instant| {
            let _ = on_text(&sh, &topic, &mut view, &mut end, text, at);
        };
        socket.join(&topic, "1", &JoinParams::PLAIN, deadline, &mut early).await?;
        Ok::<_, Failure>((socket, at))
    };
    // Boxed: the connect's large, short-lived state would otherwise stay part of this
    // long-lived future.
    let joined = Box::pin(joined).await;
    let (mut socket, mut at) = match joined {
        Ok(joined) => joined,
        Err(f) => {
            sh.cx.meters.sockets.failed(&f);
            sh.listeners.settled.add_permits(1);
            return end;
        }
    };
    end.joined = true;
    sh.cx.meters.sockets.joined(index, started.elapsed());
    sh.group.joined();
    sh.listeners.joined(index, path, view.count());
    sh.listeners.settled.add_permits(1);

    let stop = sh.cx.stop.clone();
    loop {
        let until = stop.cancelled();
        tokio::pin!(until);
        let (ended, closed) = failover::read_until_failure(&mut socket, until.as_mut(), |text, at| {
            on_text(&sh, &topic, &mut view, &mut end, text, at)
        })
        .await;
        let Some(loss) = Loss::of(ended, closed) else { break };
        // Its node went away or told of a gap: rejoin (see `workloads::failover`). The
        // page's presence comes afresh in the `presence_state` that follows the reply:
        // the view waits for it (holding diffs meanwhile) and then starts from it. The
        // joins and leaves missed while away stay lost.
        let place = failover::Place { at: &mut at, topic: &topic, token: None };
        match Box::pin(failover::recover(&sh.cx, loss, &mut socket, place, &JoinParams::PLAIN)).await {
            Some(back) => {
                view.rejoined();
                back.deliver_early(&mut |text: &str, at: Instant| {
                    let _ = on_text(&sh, &topic, &mut view, &mut end, text, at);
                });
            }
            None => {
                sh.listeners.closed(index, path);
                return end;
            }
        }
    }
    socket.close().await;
    end
}

/// One frame of a page listener: presence is applied and every reader it names
/// accounted; a channel end is returned as the failure that stops the listener.
fn on_text(sh: &Shared, topic: &str, view: &mut View, end: &mut End, text: &str, at: Instant) -> Option<Failure> {
    let frame = match topic_event(text, topic, || sh.group.decode_error()) {
        ControlFlow::Continue(frame) => frame,
        ControlFlow::Break(end) => return end,
    };
    if frame.event != PRESENCE_STATE && frame.event != PRESENCE_DIFF {
        return None;
    }
    let Ok(payload) = frame.payload_as::<Value>() else {
        sh.group.decode_error();
        return None;
    };
    let changed = view.apply(&frame.event, payload, at, &mut |diff, at| account(sh, end, diff, at));
    if changed && end.joined {
        sh.listeners.count(end.index, view.count());
    }
    None
}

/// Accounts the reader joins and leaves of one diff, received at `at`.
fn account(sh: &Shared, end: &mut End, diff: &Value, at: Instant) {
    let path = end.path;
    let at_ns =
        sh.cx.t0().map_or(0, |t0| u64::try_from(at.saturating_duration_since(t0).as_nanos()).unwrap_or(u64::MAX));
    for key in keys(&diff["joins"]) {
        let Some(k) = sh.reader_of(key, path) else { continue };
        if !end.joins.insert(sh.arrivals.local(k)) {
            sh.group.duplicate();
            continue;
        }
        let Some(intended) = sh.intended(k) else { continue };
        let elapsed = at.saturating_duration_since(intended);
        let (nth, latest) = sh.ledger.received(sh.join_event(k), elapsed);
        let audience = sh.listeners.audience(path);
        sh.group.received(end.index, elapsed, at_ns, sh.is_measured(k), Some((audience, nth, latest)));
    }
    for key in keys(&diff["leaves"]) {
        let Some(k) = sh.reader_of(key, path) else { continue };
        if !end.leaves.insert(sh.arrivals.local(k)) {
            sh.group.duplicate();
            continue;
        }
        let _ = sh.ledger.received(sh.leave_event(k), std::time::Duration::ZERO);
        sh.group.received_untimed(at_ns, sh.is_measured(k));
    }
}

fn keys(map: &Value) -> impl Iterator<Item = &str> {
    map.as_object().into_iter().flat_map(|m| m.keys().map(String::as_str))
}

/// A page's presence as one listener holds it, the way phoenix.js keeps it: key → the
/// `phx_ref`s of its metas. Diffs that arrive before the first `presence_state` (even
/// before the join reply: the app subscribes the socket first) wait and are applied
/// after it, each with its own receipt time.
#[derive(Debug, Default)]
pub struct View {
    present: HashMap<String, HashSet<String>>,
    /// Whether the first `presence_state` came.
    synced: bool,
    pending: Vec<(Value, Instant)>,
}

impl View {
    /// Keys present.
    pub fn count(&self) -> u64 {
        self.present.len() as u64
    }

    /// Applies a `presence_state` or `presence_diff` received `at`, handing every diff
    /// applied now to `on_diff` with its receipt time; whether the presence changed.
    pub fn apply(
        &mut self,
        event: &str,
        payload: Value,
        at: Instant,
        on_diff: &mut dyn FnMut(&Value, Instant),
    ) -> bool {
        match event {
            PRESENCE_STATE => {
                self.present.clear();
                add_metas(&mut self.present, &payload);
                self.synced = true;
                for (diff, at) in std::mem::take(&mut self.pending) {
                    self.diff(&diff);
                    on_diff(&diff, at);
                }
                true
            }
            PRESENCE_DIFF if self.synced => {
                self.diff(&payload);
                on_diff(&payload, at);
                true
            }
            PRESENCE_DIFF => {
                self.pending.push((payload, at));
                false
            }
            _ => false,
        }
    }

    /// The listener joined again (after its node went away, or a gap): the next
    /// `presence_state` replaces what it holds; diffs wait for it as after a first join.
    /// Until it comes, the count stays the one it held.
    pub fn rejoined(&mut self) {
        self.synced = false;
        self.pending.clear();
    }

    fn diff(&mut self, payload: &Value) {
        add_metas(&mut self.present, &payload["joins"]);
        for (key, v) in payload["leaves"].as_object().into_iter().flatten() {
            if let Some(refs) = self.present.get_mut(key) {
                for r in metas_refs(v) {
                    refs.remove(r);
                }
                if refs.is_empty() {
                    self.present.remove(key);
                }
            }
        }
    }
}

fn metas_refs(v: &Value) -> impl Iterator<Item = &str> {
    v["metas"].as_array().into_iter().flatten().filter_map(|m| m["phx_ref"].as_str())
}

fn add_metas(present: &mut HashMap<String, HashSet<String>>, map: &Value) {
    for (key, v) in map.as_object().into_iter().flatten() {
        let mut refs = metas_refs(v).peekable();
        if refs.peek().is_some() {
            present.entry(key.clone()).or_default().extend(refs.map(str::to_owned));
        }
    }
}

/// Per path, the page listeners joined and open, and each listener's presence count.
pub struct Listeners {
    /// Page listeners joined per path: every reader's audience (all join before t0).
    joined_on: Vec<std::sync::atomic::AtomicU32>,
    /// Of those, still open (the target closed none of them): present on the page.
    open_on: Vec<std::sync::atomic::AtomicU64>,
    /// Per listener: its presence count, `u64::MAX` while not joined or once closed.
    counts: Box<[std::sync::atomic::AtomicU64]>,
    /// One permit per listener that joined or gave up.
    pub settled: tokio::sync::Semaphore,
}

impl Listeners {
    pub fn new(listeners: usize) -> Self {
        use std::sync::atomic::{AtomicU32, AtomicU64};
        Self {
            joined_on: (0..PATHS).map(|_| AtomicU32::new(0)).collect(),
            open_on: (0..PATHS).map(|_| AtomicU64::new(0)).collect(),
            counts: (0..listeners).map(|_| AtomicU64::new(u64::MAX)).collect(),
            settled: tokio::sync::Semaphore::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.counts.len()
    }

    fn joined(&self, index: usize, path: usize, count: u64) {
        self.joined_on[path].fetch_add(1, Ordering::AcqRel);
        self.open_on[path].fetch_add(1, Ordering::AcqRel);
        self.count(index, count);
    }

    fn closed(&self, index: usize, path: usize) {
        self.open_on[path].fetch_sub(1, Ordering::AcqRel);
        if let Some(c) = self.counts.get(index) {
            c.store(u64::MAX, Ordering::Release);
        }
    }

    fn count(&self, index: usize, count: u64) {
        if let Some(c) = self.counts.get(index) {
            c.store(count, Ordering::Release);
        }
    }

    /// Page listeners joined on `path`: what each reader's join and leave owe.
    pub fn audience(&self, path: usize) -> u32 {
        self.joined_on.get(path).map_or(0, |n| n.load(Ordering::Acquire))
    }

    /// Paths with a joined listener.
    pub fn topics(&self) -> u64 {
        self.joined_on.iter().filter(|n| n.load(Ordering::Acquire) > 0).count() as u64
    }

    /// Page listeners open on `path` now.
    pub fn open_on(&self, path: usize) -> u64 {
        self.open_on.get(path).map_or(0, |n| n.load(Ordering::Acquire))
    }

    /// Every open listener's presence count now, with its path: `(index, path, count)`.
    pub fn counts(&self) -> Vec<(usize, usize, u64)> {
        self.counts
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let c = c.load(Ordering::Acquire);
                (c != u64::MAX).then_some((i, i % PATHS, c))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn metas(refs: &[&str]) -> Value {
        json!({ "metas": refs.iter().map(|r| json!({ "phx_ref": r })).collect::<Vec<_>>() })
    }

    #[test]
    fn diffs_before_the_state_wait_for_it_and_keep_their_receipt_times() {
        let mut view = View::default();
        let t = Instant::now();
        let later = t + std::time::Duration::from_millis(5);
        let mut applied: Vec<(Vec<String>, Instant)> = Vec::new();
        let mut apply = |view: &mut View, event: &str, payload: Value, at: Instant| {
            view.apply(event, payload, at, &mut |d: &Value, at: Instant| {
                applied.push((d["joins"].as_object().unwrap().keys().cloned().collect(), at));
            })
        };
        let early = json!({ "joins": { "7": metas(&["a"]) }, "leaves": {} });
        assert!(!apply(&mut view, PRESENCE_DIFF, early, t), "held until the state");
        assert_eq!(view.count(), 0);
        let state = json!({ "anon:1": metas(&["x"]), "anon:2": metas(&["y"]) });
        assert!(apply(&mut view, PRESENCE_STATE, state, later));
        assert_eq!(view.count(), 3);
        // A second meta of a key, then its leaves one by one.
        let diff = json!({ "joins": { "7": metas(&["b"]) }, "leaves": { "anon:1": metas(&["x"]) } });
        assert!(apply(&mut view, PRESENCE_DIFF, diff, later));
        assert_eq!(view.count(), 2);
        let diff = json!({ "joins": {}, "leaves": { "7": metas(&["a"]) } });
        apply(&mut view, PRESENCE_DIFF, diff, later);
        assert_eq!(view.count(), 2, "7 still has meta b");
        let diff = json!({ "joins": {}, "leaves": { "7": metas(&["b"]) } });
        apply(&mut view, PRESENCE_DIFF, diff, later);
        assert_eq!(view.count(), 1);
        assert!(!apply(&mut view, "readers", json!({ "readers": 1 }), later));
        let joins: Vec<usize> = applied.iter().map(|(keys, _)| keys.len()).collect();
        assert_eq!(joins, [1, 1, 0, 0], "the early diff first, at its own receipt time");
        assert_eq!(applied[0], (vec!["7".to_owned()], t));
    }

    #[test]
    fn a_rejoin_starts_the_presence_afresh_from_the_next_state() {
        let mut view = View::default();
        let t = Instant::now();
        let mut applied = 0;
        let state = json!({ "anon:1": metas(&["x"]), "7": metas(&["a"]) });
        view.apply(PRESENCE_STATE, state, t, &mut |_, _| applied += 1);
        assert_eq!(view.count(), 2);
        view.rejoined();
        // A diff before the new state waits for it; the count stays meanwhile.
        let diff = json!({ "joins": { "8": metas(&["c"]) }, "leaves": {} });
        assert!(!view.apply(PRESENCE_DIFF, diff, t, &mut |_, _| applied += 1));
        assert_eq!((view.count(), applied), (2, 0));
        // The new node's state: the old node's presences are gone, the held diff applies.
        let state = json!({ "anon:2": metas(&["y"]), "7": metas(&["b"]) });
        assert!(view.apply(PRESENCE_STATE, state, t, &mut |_, _| applied += 1));
        assert_eq!((view.count(), applied), (3, 1));
        assert!(!view.present.contains_key("anon:1"));
        assert_eq!(view.present["7"].len(), 1, "only the new node's meta of 7");
    }

    #[test]
    fn counts_follow_joins_and_closes_per_path() {
        let l = Listeners::new(6);
        l.joined(0, 0, 1);
        l.joined(4, 0, 2);
        l.joined(1, 1, 1);
        assert_eq!((l.audience(0), l.open_on(0), l.topics()), (2, 2, 2));
        l.closed(4, 0);
        assert_eq!((l.audience(0), l.open_on(0)), (2, 1), "the audience keeps a closed listener: its misses are loss");
        assert_eq!(l.counts(), [(0, 0, 1), (1, 1, 1)]);
    }
}
