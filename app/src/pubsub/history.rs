//! A topic's recent broadcasts, bounded by count and age, for recovery after a
//! reconnect: a client that saw up to `seq` N of `epoch` E gets every later event, or
//! is told plainly that it cannot (`recovered: false`) and must reload.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// How much history each topic keeps.
#[derive(Debug, Clone, Copy)]
pub struct HistoryLimits {
    /// Events kept per topic (0 disables recovery).
    pub max_events: usize,
    /// Events older than this are dropped.
    pub max_age: Duration,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        Self { max_events: 1000, max_age: Duration::from_secs(300) }
    }
}

/// A client's position: the last `seq` it saw, in which epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Since {
    pub seq: u64,
    pub epoch: String,
}

/// One retained broadcast.
#[derive(Debug, Clone)]
pub struct Retained {
    pub seq: u64,
    pub event: Arc<str>,
    pub payload: Arc<RawValue>,
}

/// The answer to a `since`: all missed events, or none and `recovered: false`.
#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    pub recovered: bool,
    pub epoch: Arc<str>,
    /// The topic's latest `seq` when the subscription began.
    pub seq: u64,
    pub missed: Vec<MissedEvent>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MissedEvent {
    pub event: Arc<str>,
    pub payload: Arc<RawValue>,
}

#[derive(Default)]
pub(super) struct History {
    events: VecDeque<(Instant, Retained)>,
}

impl History {
    pub(super) fn push(&mut self, event: Retained, limits: &HistoryLimits) {
        if limits.max_events == 0 {
            return;
        }
        let now = Instant::now();
        self.events.push_back((now, event));
        self.prune(now, limits);
    }

    /// Events held now.
    pub(super) fn len(&self) -> usize {
        self.events.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Drops what is past the limits at `now`; true when nothing is left.
    pub(super) fn expire(&mut self, now: Instant, limits: &HistoryLimits) -> bool {
        self.prune(now, limits);
        if self.events.is_empty() {
            // Give back the ring's memory too, not only its slots.
            self.events = VecDeque::new();
        }
        self.events.is_empty()
    }

    fn prune(&mut self, now: Instant, limits: &HistoryLimits) {
        while self.events.len() > limits.max_events {
            self.events.pop_front();
        }
        while self.events.front().is_some_and(|(at, _)| now.duration_since(*at) > limits.max_age) {
            self.events.pop_front();
        }
    }

    /// All events after `since.seq`, when every one of them is still here.
    pub(super) fn recover(
        &mut self,
        epoch: &Arc<str>,
        top: u64,
        since: Option<&Since>,
        limits: &HistoryLimits,
    ) -> Recovery {
        self.prune(Instant::now(), limits);
        let unrecovered = Recovery { recovered: false, epoch: epoch.clone(), seq: top, missed: Vec::new() };
        let Some(since) = since else { return unrecovered };
        if since.epoch != **epoch || since.seq > top {
            return unrecovered;
        }
        // History is contiguous (every broadcast is pushed), so it covers the gap when
        // its oldest event is at most the first one missed.
        let oldest = self.events.front().map_or(top + 1, |(_, e)| e.seq);
        if since.seq < top && oldest > since.seq + 1 {
            return unrecovered;
        }
        let missed = self
            .events
            .iter()
            .filter(|(_, e)| e.seq > since.seq)
            .map(|(_, e)| MissedEvent { event: e.event.clone(), payload: e.payload.clone() })
            .collect();
        Recovery { recovered: true, epoch: epoch.clone(), seq: top, missed }
    }
}

/// The answer to a `since` from what the cluster holds (`held`, read after
/// `since.seq` when the epochs match): every event after it, contiguous up to the
/// topic's latest, or `recovered: false`.
pub(super) fn recover_from(epoch: &Arc<str>, since: Option<&Since>, held: super::ClusterHistory) -> Recovery {
    let top = held.top;
    let unrecovered = Recovery { recovered: false, epoch: epoch.clone(), seq: top, missed: Vec::new() };
    let Some(since) = since else { return unrecovered };
    if since.epoch != **epoch || since.seq > top {
        return unrecovered;
    }
    let events: Vec<&Retained> = held.events.iter().filter(|e| e.seq > since.seq && e.seq <= top).collect();
    let mut next = since.seq + 1;
    for e in &events {
        if e.seq != next && !held.restarts.contains(&e.seq) {
            return unrecovered;
        }
        next = e.seq + 1;
    }
    if next != top + 1 {
        return unrecovered;
    }
    let missed =
        events.into_iter().map(|e| MissedEvent { event: e.event.clone(), payload: e.payload.clone() }).collect();
    Recovery { recovered: true, epoch: epoch.clone(), seq: top, missed }
}

/// A fresh random epoch name.
pub fn new_epoch() -> Arc<str> {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect::<String>().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64) -> Retained {
        Retained { seq, event: "e".into(), payload: Arc::from(serde_json::value::to_raw_value(&seq).unwrap()) }
    }

    fn seqs(r: &Recovery) -> Vec<u64> {
        r.missed.iter().map(|m| m.payload.get().parse().unwrap()).collect()
    }

    #[test]
    fn recovers_all_or_nothing() {
        let limits = HistoryLimits { max_events: 3, max_age: Duration::from_secs(60) };
        let epoch: Arc<str> = "abc".into();
        let mut h = History::default();
        for seq in 1..=5 {
            h.push(ev(seq), &limits);
        }
        let since = |seq| Some(Since { seq, epoch: "abc".into() });
        let r = h.recover(&epoch, 5, since(2).as_ref(), &limits);
        assert!(r.recovered);
        assert_eq!(seqs(&r), [3, 4, 5]);
        let r = h.recover(&epoch, 5, since(5).as_ref(), &limits);
        assert!(r.recovered && r.missed.is_empty());
        // Seq 2 was dropped (only 3 kept): the gap cannot be filled.
        assert!(!h.recover(&epoch, 5, since(1).as_ref(), &limits).recovered);
        assert!(!h.recover(&epoch, 5, since(6).as_ref(), &limits).recovered);
        let other = Some(Since { seq: 4, epoch: "zzz".into() });
        assert!(!h.recover(&epoch, 5, other.as_ref(), &limits).recovered);
        assert!(!h.recover(&epoch, 5, None, &limits).recovered);
    }

    #[test]
    fn old_events_age_out() {
        let limits = HistoryLimits { max_events: 10, max_age: Duration::ZERO };
        let epoch: Arc<str> = "e".into();
        let mut h = History::default();
        h.push(ev(1), &limits);
        std::thread::sleep(Duration::from_millis(2));
        let r = h.recover(&epoch, 1, Some(&Since { seq: 0, epoch: "e".into() }), &limits);
        assert!(!r.recovered);
    }

    #[test]
    fn recovers_from_the_cluster_only_a_contiguous_run_up_to_its_latest() {
        let epoch: Arc<str> = "e".into();
        let since = |seq| Some(Since { seq, epoch: "e".into() });
        let held = |top, seqs: &[u64]| super::super::ClusterHistory {
            top,
            events: seqs.iter().map(|&s| ev(s)).collect(),
            restarts: Vec::new(),
        };
        let r = recover_from(&epoch, since(2).as_ref(), held(5, &[3, 4, 5]));
        assert!(r.recovered);
        assert_eq!(seqs(&r), [3, 4, 5]);
        assert!(recover_from(&epoch, since(5).as_ref(), held(5, &[])).recovered);
        assert!(!recover_from(&epoch, since(1).as_ref(), held(5, &[3, 4, 5])).recovered, "2 was trimmed");
        assert!(!recover_from(&epoch, since(2).as_ref(), held(5, &[3, 5])).recovered, "a hole");
        assert!(!recover_from(&epoch, since(2).as_ref(), held(6, &[3, 4, 5])).recovered, "short of the top");
        assert!(!recover_from(&epoch, since(7).as_ref(), held(5, &[])).recovered, "ahead of the cluster");
        let other = Some(Since { seq: 2, epoch: "x".into() });
        assert!(!recover_from(&epoch, other.as_ref(), held(5, &[3, 4, 5])).recovered);
        assert!(!recover_from(&epoch, None, held(5, &[])).recovered);
        assert_eq!(recover_from(&epoch, None, held(5, &[])).seq, 5);
        // A broker that lost its counters started this topic again at 40: 4..39 never were.
        let restarted = super::super::ClusterHistory { top: 41, events: vec![ev(40), ev(41)], restarts: vec![40] };
        let r = recover_from(&epoch, since(3).as_ref(), restarted);
        assert!(r.recovered);
        assert_eq!(seqs(&r), [40, 41]);
        let unmarked = held(41, &[40, 41]);
        assert!(!recover_from(&epoch, since(3).as_ref(), unmarked).recovered, "an unmarked jump is a loss");
    }

    #[test]
    fn nothing_missed_from_an_empty_topic() {
        let limits = HistoryLimits::default();
        let epoch: Arc<str> = "e".into();
        let r = History::default().recover(&epoch, 0, Some(&Since { seq: 0, epoch: "e".into() }), &limits);
        assert!(r.recovered && r.missed.is_empty());
    }
}
