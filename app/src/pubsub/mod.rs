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
//!
//! One node of a cluster ([`PubSub::clustered`]) numbers nothing itself: a broadcast is
//! handed to the [`Cluster`], which gives it the topic's next cluster-wide `seq` and
//! hands it back to every node's [`PubSub::deliver`], which fans it out to that node's
//! subscribers. Recovery then reads the cluster's history, so a client may come back
//! to any node; a node that may have missed broadcasts (its broker link dropped) tells
//! its subscribers with [`PubSub::tell_gaps`], and they recover through `since`.

mod cluster;
mod history;

pub use cluster::{Cluster, ClusterError, ClusterHistory};
pub use history::{HistoryLimits, MissedEvent, Recovery, Retained, Since, new_epoch};

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
    /// Whose subscription this is (a user id), for signals that skip that user.
    tag: Option<i64>,
}

/// A subscriber whose recovery is being read from the cluster: broadcasts delivered in
/// the meantime wait here, so none falls between the history read and the live stream.
/// Once read, a subscriber whose replay went past what this node has delivered waits
/// here for that (`until`): a broadcast still on its way from the broker is in the
/// replay already and must not come again live.
struct Recovering {
    sub: Subscriber,
    buffered: Vec<Retained>,
    /// Set once the history is read: the replay's last `seq`. The first broadcast past
    /// it makes the subscriber live.
    until: Option<u64>,
}

#[derive(Default)]
struct TopicState {
    /// The latest `seq` broadcast (alone) or delivered here (in a cluster).
    seq: u64,
    subscribers: Vec<Subscriber>,
    recovering: Vec<Recovering>,
    v1_count: usize,
    history: history::History,
    /// Set (under this lock and the map's write lock) when [`PubSub::sweep`] forgot the
    /// topic: whoever still holds it looks the name up again.
    freed: bool,
}

impl TopicState {
    /// Nobody listens or is about to.
    fn is_idle(&self) -> bool {
        self.subscribers.is_empty() && self.recovering.is_empty()
    }
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
    /// The cluster this node is part of, if any: it numbers broadcasts and keeps history.
    cluster: Option<Arc<dyn Cluster>>,
    /// Topics whose signals are for a part of the app, not for subscribers (see
    /// [`PubSub::on_signal`]).
    handlers: RwLock<HashMap<Box<str>, SignalHandler>>,
    /// Run when this node rejoins its cluster (see [`PubSub::rejoined`]).
    rejoin_hooks: RwLock<Vec<Arc<dyn Fn() + Send + Sync>>>,
}

/// Takes the signals of one topic: `(event, payload)`.
pub type SignalHandler = Arc<dyn Fn(&str, &RawValue) + Send + Sync>;

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
            cluster: None,
            handlers: RwLock::default(),
            rejoin_hooks: RwLock::default(),
        }
    }

    /// One node of a cluster: `cluster` numbers broadcasts and keeps their history.
    pub fn clustered(limits: HistoryLimits, cluster: Arc<dyn Cluster>) -> Self {
        Self { epoch: cluster.epoch(), cluster: Some(cluster), ..Self::new(limits) }
    }

    /// This server's epoch of sequence numbers.
    pub fn epoch(&self) -> &Arc<str> {
        &self.epoch
    }

    fn topic(&self, name: &str) -> Arc<Topic> {
        if let Some(t) = self.topics.read().get(name) {
            return t.clone();
        }
        // In a cluster the numbers are the cluster's: a topic new here has seen none yet.
        let floor = if self.cluster.is_some() { 0 } else { self.seq_floor.load(Relaxed) };
        let mut topics = self.topics.write();
        topics.entry(name.into()).or_insert_with(|| Arc::new(Topic::starting_at(floor))).clone()
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
        self.subscribe_as(topic, vsn, socket, None)
    }

    /// [`PubSub::subscribe`] on behalf of user `tag`, whom a [`PubSub::signal`] may skip.
    pub fn subscribe_as(&self, topic: &str, vsn: Vsn, socket: SocketHandle, tag: Option<i64>) -> SubId {
        self.with_topic(topic, |state| self.add_subscriber(state, vsn, socket, tag))
    }

    /// Subscribes and answers what the subscriber missed since `since`: all of it or
    /// (`recovered: false`) nothing, joined to the live stream with no gap and no
    /// duplicate. Alone, the history is read in the critical section that subscribes;
    /// in a cluster it is read from the cluster while later broadcasts wait for the
    /// subscriber, and an unreachable cluster is an error (nothing stays subscribed).
    pub async fn subscribe_since(
        &self,
        topic: &str,
        vsn: Vsn,
        socket: SocketHandle,
        since: Option<&Since>,
    ) -> Result<(SubId, Recovery), ClusterError> {
        let Some(cluster) = &self.cluster else {
            return Ok(self.with_topic(topic, |state| {
                let top = state.seq;
                let recovery = state.history.recover(&self.epoch, top, since, &self.limits);
                (self.add_subscriber(state, vsn, socket, None), recovery)
            }));
        };
        let id = self.next_id.fetch_add(1, Relaxed);
        self.with_topic(topic, |state| {
            state.recovering.push(Recovering {
                sub: Subscriber { id, vsn, socket, tag: None },
                buffered: Vec::new(),
                until: None,
            });
        });
        let after = since.filter(|s| s.epoch == *self.epoch).map(|s| s.seq);
        let read = cluster.history(topic, after).await;
        self.with_topic(topic, |state| {
            let pos = state.recovering.iter().position(|r| r.sub.id == id);
            let recovering = pos.map(|pos| state.recovering.swap_remove(pos));
            let held = read?;
            let recovery = history::recover_from(&self.epoch, since, held);
            if let Some(Recovering { sub, buffered, .. }) = recovering {
                let top = recovery.seq;
                if state.seq < top {
                    // The replay reaches past what was delivered here: go live after it.
                    state.recovering.push(Recovering { sub, buffered: Vec::new(), until: Some(top) });
                    return Ok((id, recovery));
                }
                let mut sub = Some(sub);
                for event in buffered.iter().filter(|e| e.seq > top) {
                    let frame =
                        Arc::new(Utf8Bytes::from(wire::encode_broadcast(vsn, topic, &event.event, &*event.payload)));
                    if let Some(s) = &sub
                        && !Self::send(s, &frame)
                    {
                        sub = None;
                    }
                }
                if let Some(sub) = sub {
                    state.v1_count += usize::from(sub.vsn == Vsn::V1);
                    state.subscribers.push(sub);
                }
            }
            Ok((id, recovery))
        })
    }

    /// Where a topic stands, for a client that will later ask to recover.
    pub fn position(&self, topic: &str) -> u64 {
        self.topics.read().get(topic).map_or_else(|| self.seq_floor.load(Relaxed), |t| t.state.lock().seq)
    }

    fn add_subscriber(&self, state: &mut TopicState, vsn: Vsn, socket: SocketHandle, tag: Option<i64>) -> SubId {
        let id = self.next_id.fetch_add(1, Relaxed);
        state.v1_count += usize::from(vsn == Vsn::V1);
        state.subscribers.push(Subscriber { id, vsn, socket, tag });
        id
    }

    pub fn unsubscribe(&self, topic: &str, id: SubId) {
        let Some(topic) = self.topics.read().get(topic).cloned() else { return };
        let mut state = topic.state.lock();
        if let Some(pos) = state.subscribers.iter().position(|s| s.id == id) {
            let gone = state.subscribers.swap_remove(pos);
            state.v1_count -= usize::from(gone.vsn == Vsn::V1);
        } else if let Some(pos) = state.recovering.iter().position(|r| r.sub.id == id) {
            state.recovering.swap_remove(pos);
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
                state.history.expire(now, &self.limits) && state.is_idle()
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
            if !state.freed && state.is_idle() && state.history.is_empty() {
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

    /// Publishes `event` on `topic` with `payload` (a JSON object; the topic's `seq` is
    /// added to it). Alone, the broadcast is numbered and queued for every subscriber
    /// before this returns (and its outcome returned); in a cluster it is handed to the
    /// cluster and `None` returned.
    pub fn broadcast<P: Serialize + ?Sized>(&self, topic: &str, event: &str, payload: &P) -> Option<Published> {
        match serde_json::value::to_raw_value(payload) {
            Ok(raw) => self.broadcast_raw(topic, event, &raw),
            Err(err) => {
                tracing::error!(%err, topic, event, "broadcast payload does not serialise");
                None
            }
        }
    }

    /// [`PubSub::broadcast`] of a payload serialised already (one bookmark goes to
    /// several topics as the same bytes).
    pub fn broadcast_raw(&self, topic: &str, event: &str, payload: &RawValue) -> Option<Published> {
        if let Some(cluster) = &self.cluster {
            cluster.publish(topic, event, payload.to_owned());
            return None;
        }
        Some(self.with_topic(topic, |state| {
            let seq = state.seq + 1;
            self.fan_out(state, topic, seq, event, payload.get())
        }))
    }

    /// Sends `event` to every subscriber of `topic` on every node except user `except`'s
    /// own subscriptions: not numbered, not kept for recovery (for what is ephemeral,
    /// like typing). Alone or in a cluster, this node's subscribers get it at once.
    pub fn signal<P: Serialize + ?Sized>(&self, topic: &str, event: &str, payload: &P, except: Option<i64>) {
        let payload = match serde_json::value::to_raw_value(payload) {
            Ok(raw) => raw,
            Err(err) => {
                tracing::error!(%err, topic, event, "signal payload does not serialise");
                return;
            }
        };
        self.deliver_signal(topic, event, &payload, except);
        if let Some(cluster) = &self.cluster {
            cluster.signal(topic, event, payload.get(), except);
        }
    }

    /// [`PubSub::signal`] for the other nodes only (none when alone): what this node
    /// has already done for itself.
    pub fn signal_others<P: Serialize + ?Sized>(&self, topic: &str, event: &str, payload: &P) {
        let Some(cluster) = &self.cluster else { return };
        match serde_json::to_string(payload) {
            Ok(text) => cluster.signal(topic, event, &text, None),
            Err(err) => tracing::error!(%err, topic, event, "signal payload does not serialise"),
        }
    }

    /// Runs `hook` whenever this node rejoins its cluster after the others may have
    /// taken it for dead ([`PubSub::rejoined`]): state the others dropped is announced
    /// again.
    pub fn on_rejoin(&self, hook: Arc<dyn Fn() + Send + Sync>) {
        self.rejoin_hooks.write().push(hook);
    }

    /// This node was missing from its cluster's live nodes and is back (the broker link
    /// calls it).
    pub fn rejoined(&self) {
        let hooks = self.rejoin_hooks.read().clone();
        for hook in hooks {
            hook();
        }
    }

    /// Signals on `topic` go to `handler` instead of subscribers (a part of the app that
    /// keeps state per node, e.g. the rooms, hears what the other nodes did).
    pub fn on_signal(&self, topic: &str, handler: SignalHandler) {
        self.handlers.write().insert(topic.into(), handler);
    }

    /// A signal from another node (or this one's [`PubSub::signal`]) for this node's
    /// subscribers of `topic`, user `except`'s skipped.
    pub fn deliver_signal(&self, topic: &str, event: &str, payload: &RawValue, except: Option<i64>) {
        let handler = self.handlers.read().get(topic).cloned();
        if let Some(handler) = handler {
            handler(event, payload);
            return;
        }
        let Some(found) = self.topics.read().get(topic).cloned() else { return };
        self.with_topic_from(found, topic, |state| {
            let mut frames: [Option<SharedFrame>; 2] = [None, None];
            state.subscribers.retain(|sub| {
                if except.is_some() && sub.tag == except {
                    return true;
                }
                let frame = frames[usize::from(sub.vsn == Vsn::V2)].get_or_insert_with(|| {
                    Arc::new(Utf8Bytes::from(wire::encode_broadcast(sub.vsn, topic, event, payload)))
                });
                Self::send(sub, frame)
            });
            state.v1_count = state.subscribers.iter().filter(|s| s.vsn == Vsn::V1).count();
        });
    }

    /// Whether this node is one of a cluster (broadcasts are numbered by the broker).
    pub fn is_clustered(&self) -> bool {
        self.cluster.is_some()
    }

    /// Resolves once every broadcast made before the call is numbered (alone: at once;
    /// in a cluster: once the broker took it).
    pub async fn flushed(&self) {
        if let Some(cluster) = &self.cluster {
            cluster.flushed().await;
        }
    }

    /// A broadcast the cluster numbered `seq`, for this node's subscribers (none: nothing
    /// to do). Delivered already (a replay): ignored. Past a gap in the topic's numbers
    /// (broadcasts this node never got): the subscribers are told, then get it.
    /// `payload` is checked to be JSON once, where `seq` is added to it.
    pub fn deliver(&self, topic: &str, seq: u64, event: &str, payload: &str) {
        // Every node hears every broadcast: the highest of all is where a broker that
        // lost its counters restarts them (see `positions`).
        self.seq_floor.fetch_max(seq, Relaxed);
        let Some(found) = self.topics.read().get(topic).cloned() else { return };
        self.with_topic_from(found, topic, |state| {
            if seq <= state.seq {
                return;
            }
            if state.seq != 0 && seq > state.seq + 1 {
                Self::tell_gap(state, topic);
            }
            self.fan_out(state, topic, seq, event, payload);
        });
    }

    /// The highest `seq` this node has numbered or delivered on any topic, and where each
    /// topic it holds stands: what a broker that lost its counters is seeded with.
    pub fn positions(&self) -> (u64, Vec<(Box<str>, u64)>) {
        let topics: Vec<(Box<str>, u64)> =
            self.topics.read().iter().map(|(name, t)| (name.clone(), t.state.lock().seq)).collect();
        let highest = topics.iter().map(|(_, seq)| *seq).fold(self.seq_floor.load(Relaxed), u64::max);
        (highest, topics)
    }

    /// Tells every subscriber of every topic that broadcasts may have been missed (this
    /// node's link to the cluster dropped): each gets `phx_error` on the topic with no
    /// `join_ref` (phoenix.js rejoins, with `since`, and recovers); returns how many.
    pub fn tell_gaps(&self) -> usize {
        let topics: Vec<(Box<str>, Arc<Topic>)> =
            self.topics.read().iter().map(|(name, t)| (name.clone(), t.clone())).collect();
        topics.into_iter().map(|(name, topic)| Self::tell_gap(&mut topic.state.lock(), &name)).sum()
    }

    fn tell_gap(state: &mut TopicState, topic: &str) -> usize {
        let payload = serde_json::json!({ "reason": GAP_REASON });
        let frames = [Vsn::V1, Vsn::V2]
            .map(|vsn| Arc::new(Utf8Bytes::from(wire::encode_broadcast(vsn, topic, GAP_EVENT, &payload))));
        let before = state.subscribers.len();
        state.subscribers.retain(|sub| Self::send(sub, &frames[usize::from(sub.vsn == Vsn::V2)]));
        state.v1_count = state.subscribers.iter().filter(|s| s.vsn == Vsn::V1).count();
        before
    }

    /// Numbers the payload `seq`, keeps it (alone: in the topic's history; in a cluster:
    /// for the subscribers still recovering) and queues it, encoded once per serializer,
    /// for every subscriber.
    fn fan_out(&self, state: &mut TopicState, topic_name: &str, seq: u64, event: &str, payload: &str) -> Published {
        state.seq = seq;
        let payload: Arc<RawValue> = match RawValue::from_string(wire::with_seq(payload, seq)) {
            Ok(raw) => Arc::from(raw),
            Err(err) => {
                tracing::error!(%err, topic = topic_name, event, "broadcast payload is not JSON");
                return Published { seq, queued: 0, dropped: 0 };
            }
        };
        if self.cluster.is_none() {
            state.history.push(Retained { seq, event: event.into(), payload: payload.clone() }, &self.limits);
        } else if !state.recovering.is_empty() {
            Self::advance_recovering(state, seq, event, &payload);
        }
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
            let kept = Self::send(sub, frame);
            queued += usize::from(kept);
            v1_dropped += usize::from(!kept && sub.vsn == Vsn::V1);
            kept
        });
        let dropped = before - state.subscribers.len();
        state.v1_count -= v1_dropped;
        Published { seq, queued, dropped }
    }

    /// A broadcast `seq` reaches the subscribers still recovering: kept for those whose
    /// history is being read; for those waiting past their replay, the first one past it
    /// makes them live (they get it with the other subscribers).
    fn advance_recovering(state: &mut TopicState, seq: u64, event: &str, payload: &Arc<RawValue>) {
        let mut i = 0;
        while i < state.recovering.len() {
            match state.recovering[i].until {
                None => {
                    let kept = Retained { seq, event: event.into(), payload: payload.clone() };
                    state.recovering[i].buffered.push(kept);
                    i += 1;
                }
                Some(until) if seq > until => {
                    let live = state.recovering.swap_remove(i).sub;
                    state.v1_count += usize::from(live.vsn == Vsn::V1);
                    state.subscribers.push(live);
                }
                Some(_) => i += 1,
            }
        }
    }

    /// Queues `frame` for `sub`; false when the subscriber is gone or too slow (then its
    /// socket is told to close) and must be dropped from the topic.
    fn send(sub: &Subscriber, frame: &SharedFrame) -> bool {
        match sub.socket.outbox.try_send(frame.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                sub.socket.slow.cancel();
                false
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

/// The event a node sends on a topic whose broadcasts it may have missed: Phoenix's
/// own channel error, so phoenix.js rejoins by itself.
pub const GAP_EVENT: &str = "phx_error";
/// The reason it gives.
pub const GAP_REASON: &str = "gap";

#[cfg(test)]
mod tests;
