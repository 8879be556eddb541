//! In-process pub/sub: topics, their subscribers and their sequence counters.
//!
//! A broadcast is encoded once per serializer in use on the topic and the same bytes
//! are queued on every subscriber's outbox (`try_send`, never waiting). A subscriber
//! whose outbox is full is a slow consumer: it is dropped from the topic and its socket
//! is told to close, so one stalled client never holds up the others or grows memory.
//!
//! `seq` is assigned under the topic's lock, in the same critical section that queues
//! the frame, so every subscriber sees a topic's broadcasts in `seq` order. The same
//! lock guards the topic's recent history (`history.rs`), so a subscriber recovering
//! after a reconnect gets what it missed and then the live stream with no gap and no
//! duplicate.
//!
//! Topics are freed: [`PubSub::sweep`] forgets a topic with no subscribers once its
//! history has aged out (the recovery window), so a million tags used once do not stay
//! in memory. A topic made again later starts its `seq` at the highest `seq` any freed
//! topic reached, so a client's `seq` never goes backwards within an epoch; a `since`
//! from before the freeing is answered `recovered: false` unless it saw the last event.

mod history;

pub use history::{HistoryLimits, Recovery, Retained, Since};

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use axum::extract::ws::Utf8Bytes;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::sync::CancellationToken;

use crate::wire::{self, Vsn};

/// An encoded broadcast, shared by every subscriber it is queued for. A thin pointer
/// keeps each socket's outbox small: its first block of slots is allocated up front
/// for every socket, idle or not.
pub type SharedFrame = Arc<Utf8Bytes>;

/// What a socket task exposes to publishers: its outbox and a way to ask it to close.
#[derive(Clone)]
pub struct SocketHandle {
    /// Unique per connection for the life of the server (e.g. an anonymous reader's key).
    pub id: u64,
    pub outbox: mpsc::Sender<SharedFrame>,
    /// Cancelled by a publisher that found the outbox full.
    pub slow: CancellationToken,
}

/// How many idle topics one hold of the map's write lock forgets: a sweep of 100k
/// idle topics lets broadcasts in between its chunks.
const SWEEP_CHUNK: usize = 1024;

/// Identifies one subscription, for unsubscribing.
pub type SubId = u64;

struct Subscriber {
    id: SubId,
    vsn: Vsn,
    socket: SocketHandle,
}

#[derive(Default)]
struct TopicState {
    seq: u64,
    subscribers: Vec<Subscriber>,
    v1_count: usize,
    history: history::History,
    /// Set (under this lock and the map's write lock) when [`PubSub::sweep`] forgot the
    /// topic: whoever still holds it looks the name up again.
    freed: bool,
}

#[derive(Default)]
struct Topic {
    state: Mutex<TopicState>,
}

impl Topic {
    fn starting_at(seq: u64) -> Self {
        Self { state: Mutex::new(TopicState { seq, ..TopicState::default() }) }
    }
}

/// How many topics, subscribers and retained events the pub/sub holds (for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    pub topics: usize,
    pub subscribers: usize,
    pub history_events: usize,
    /// The most events any one topic retains (bounded by `HistoryLimits::max_events`).
    pub largest_history: usize,
}

/// Outcome of one broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub seq: u64,
    pub queued: usize,
    pub dropped: usize,
}

pub struct PubSub {
    topics: RwLock<HashMap<Box<str>, Arc<Topic>>>,
    next_id: AtomicU64,
    limits: HistoryLimits,
    /// Names this server's run of sequence numbers: they restart with the process, so
    /// a `since` from another epoch cannot be recovered.
    epoch: Arc<str>,
    /// The highest `seq` of any freed topic: where a topic made again starts.
    seq_floor: AtomicU64,
}

impl Default for PubSub {
    fn default() -> Self {
        Self::new(HistoryLimits::default())
    }
}

impl PubSub {
    pub fn new(limits: HistoryLimits) -> Self {
        Self {
            topics: RwLock::default(),
            next_id: AtomicU64::new(0),
            limits,
            epoch: history::new_epoch(),
            seq_floor: AtomicU64::new(0),
        }
    }

    /// This server's epoch of sequence numbers.
    pub fn epoch(&self) -> &Arc<str> {
        &self.epoch
    }

    fn topic(&self, name: &str) -> Arc<Topic> {
        if let Some(t) = self.topics.read().get(name) {
            return t.clone();
        }
        let mut topics = self.topics.write();
        topics.entry(name.into()).or_insert_with(|| Arc::new(Topic::starting_at(self.seq_floor.load(Relaxed)))).clone()
    }

    /// Runs `f` on the live state of topic `name` (made if missing), under its lock.
    fn with_topic<R>(&self, name: &str, f: impl FnOnce(&mut TopicState) -> R) -> R {
        self.with_topic_from(self.topic(name), name, f)
    }

    /// [`PubSub::with_topic`] starting from `topic`, looked up earlier: if a sweep freed
    /// it since, the name now means a new topic, so look again.
    fn with_topic_from<R>(&self, mut topic: Arc<Topic>, name: &str, f: impl FnOnce(&mut TopicState) -> R) -> R {
        loop {
            let mut state = topic.state.lock();
            if !state.freed {
                return f(&mut state);
            }
            drop(state);
            topic = self.topic(name);
        }
    }

    /// Adds a subscriber; broadcasts queued after this call reach it.
    pub fn subscribe(&self, topic: &str, vsn: Vsn, socket: SocketHandle) -> SubId {
        self.with_topic(topic, |state| self.add_subscriber(state, vsn, socket))
    }

    /// Subscribes and, in the same critical section, answers what the subscriber
    /// missed since `since`: all of it or (`recovered: false`) nothing.
    pub fn subscribe_since(
        &self,
        topic: &str,
        vsn: Vsn,
        socket: SocketHandle,
        since: Option<&Since>,
    ) -> (SubId, Recovery) {
        self.with_topic(topic, |state| {
            let top = state.seq;
            let recovery = state.history.recover(&self.epoch, top, since, &self.limits);
            (self.add_subscriber(state, vsn, socket), recovery)
        })
    }

    /// Where a topic stands, for a client that will later ask to recover.
    pub fn position(&self, topic: &str) -> u64 {
        self.topics.read().get(topic).map_or_else(|| self.seq_floor.load(Relaxed), |t| t.state.lock().seq)
    }

    fn add_subscriber(&self, state: &mut TopicState, vsn: Vsn, socket: SocketHandle) -> SubId {
        let id = self.next_id.fetch_add(1, Relaxed);
        state.v1_count += usize::from(vsn == Vsn::V1);
        state.subscribers.push(Subscriber { id, vsn, socket });
        id
    }

    pub fn unsubscribe(&self, topic: &str, id: SubId) {
        let Some(topic) = self.topics.read().get(topic).cloned() else { return };
        let mut state = topic.state.lock();
        if let Some(pos) = state.subscribers.iter().position(|s| s.id == id) {
            let gone = state.subscribers.swap_remove(pos);
            state.v1_count -= usize::from(gone.vsn == Vsn::V1);
        }
    }

    /// Drops aged-out history everywhere and forgets every topic with no subscribers and
    /// no history left; returns how many it forgot. The server calls it every few seconds.
    pub fn sweep(&self) -> usize {
        self.sweep_at(std::time::Instant::now())
    }

    /// [`PubSub::sweep`] as if it were `now`.
    fn sweep_at(&self, now: std::time::Instant) -> usize {
        let idle = self.expire_all(now);
        idle.chunks(SWEEP_CHUNK).map(|chunk| self.free_idle(chunk)).sum()
    }

    /// The sweep's first pass: drops aged-out history from every topic and returns the
    /// topics left with no subscribers and no history. The map is only read-locked while
    /// it is copied, and each topic is locked on its own, so broadcasts and new topics
    /// go on while history is dropped.
    fn expire_all(&self, now: std::time::Instant) -> Vec<(Box<str>, Arc<Topic>)> {
        let topics: Vec<(Box<str>, Arc<Topic>)> =
            self.topics.read().iter().map(|(name, t)| (name.clone(), t.clone())).collect();
        topics
            .into_iter()
            .filter(|(_, topic)| {
                let mut state = topic.state.lock();
                state.history.expire(now, &self.limits) && state.subscribers.is_empty()
            })
            .collect()
    }

    /// The sweep's second pass over some of the first pass's idle topics: under the
    /// map's write lock, forgets each one still idle (a broadcast or a subscriber may
    /// have come since the first pass); returns how many it forgot.
    fn free_idle(&self, idle: &[(Box<str>, Arc<Topic>)]) -> usize {
        let mut topics = self.topics.write();
        let mut freed = 0;
        for (name, topic) in idle {
            let mut state = topic.state.lock();
            if !state.freed && state.subscribers.is_empty() && state.history.is_empty() {
                self.free(&mut topics, name, &mut state);
                freed += 1;
            }
        }
        if freed > 0 && topics.capacity() > 4 * topics.len().max(64) {
            topics.shrink_to_fit();
        }
        freed
    }

    /// Removes `name` (whose state is locked) from the map, raising the `seq` floor.
    fn free(&self, topics: &mut HashMap<Box<str>, Arc<Topic>>, name: &str, state: &mut TopicState) {
        self.seq_floor.fetch_max(state.seq, Relaxed);
        state.freed = true;
        topics.remove(name);
    }

    /// Topics, subscribers and retained events right now.
    pub fn census(&self) -> Census {
        let topics = self.topics.read();
        let mut census = Census { topics: topics.len(), ..Census::default() };
        for t in topics.values() {
            let state = t.state.lock();
            census.subscribers += state.subscribers.len();
            census.history_events += state.history.len();
            census.largest_history = census.largest_history.max(state.history.len());
        }
        census
    }

    /// Number of subscribers of a topic.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.topics.read().get(topic).map_or(0, |t| t.state.lock().subscribers.len())
    }

    /// Publishes `event` on `topic`. `payload` receives the topic's next `seq`.
    pub fn broadcast<P, F>(&self, topic_name: &str, event: &str, payload: F) -> Published
    where
        P: Serialize,
        F: FnOnce(u64) -> P,
    {
        self.with_topic(topic_name, |state| Self::publish(state, &self.limits, topic_name, event, payload))
    }

    fn publish<P, F>(
        state: &mut TopicState,
        limits: &HistoryLimits,
        topic_name: &str,
        event: &str,
        payload: F,
    ) -> Published
    where
        P: Serialize,
        F: FnOnce(u64) -> P,
    {
        state.seq += 1;
        let seq = state.seq;
        // Serialised once: the same JSON goes into every frame and into the history.
        let payload: Arc<RawValue> = match serde_json::value::to_raw_value(&payload(seq)) {
            Ok(raw) => Arc::from(raw),
            Err(err) => {
                tracing::error!(%err, topic = topic_name, event, "broadcast payload does not serialise");
                return Published { seq, queued: 0, dropped: 0 };
            }
        };
        state.history.push(Retained { seq, event: event.into(), payload: payload.clone() }, limits);
        let encode = |vsn| Arc::new(Utf8Bytes::from(wire::encode_broadcast(vsn, topic_name, event, &*payload)));
        let v2 = (state.subscribers.len() > state.v1_count).then(|| encode(Vsn::V2));
        let v1 = (state.v1_count > 0).then(|| encode(Vsn::V1));
        let mut queued = 0;
        let mut v1_dropped = 0;
        let before = state.subscribers.len();
        state.subscribers.retain(|sub| {
            let frame = match sub.vsn {
                Vsn::V2 => v2.as_ref(),
                Vsn::V1 => v1.as_ref(),
            };
            let Some(frame) = frame else { return true };
            match sub.socket.outbox.try_send(frame.clone()) {
                Ok(()) => {
                    queued += 1;
                    true
                }
                Err(TrySendError::Full(_)) => {
                    sub.socket.slow.cancel();
                    v1_dropped += usize::from(sub.vsn == Vsn::V1);
                    false
                }
                Err(TrySendError::Closed(_)) => {
                    v1_dropped += usize::from(sub.vsn == Vsn::V1);
                    false
                }
            }
        });
        let dropped = before - state.subscribers.len();
        state.v1_count -= v1_dropped;
        Published { seq, queued, dropped }
    }
}

#[cfg(test)]
mod tests;
