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
}

#[derive(Default)]
struct Topic {
    state: Mutex<TopicState>,
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
}

impl Default for PubSub {
    fn default() -> Self {
        Self::new(HistoryLimits::default())
    }
}

impl PubSub {
    pub fn new(limits: HistoryLimits) -> Self {
        Self { topics: RwLock::default(), next_id: AtomicU64::new(0), limits, epoch: history::new_epoch() }
    }

    /// This server's epoch of sequence numbers.
    pub fn epoch(&self) -> &Arc<str> {
        &self.epoch
    }

    fn topic(&self, name: &str) -> Arc<Topic> {
        if let Some(t) = self.topics.read().get(name) {
            return t.clone();
        }
        self.topics.write().entry(name.into()).or_default().clone()
    }

    /// Adds a subscriber; broadcasts queued after this call reach it.
    pub fn subscribe(&self, topic: &str, vsn: Vsn, socket: SocketHandle) -> SubId {
        let topic = self.topic(topic);
        let mut state = topic.state.lock();
        self.add_subscriber(&mut state, vsn, socket)
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
        let topic = self.topic(topic);
        let mut state = topic.state.lock();
        let top = state.seq;
        let recovery = state.history.recover(&self.epoch, top, since, &self.limits);
        (self.add_subscriber(&mut state, vsn, socket), recovery)
    }

    /// Where a topic stands, for a client that will later ask to recover.
    pub fn position(&self, topic: &str) -> u64 {
        self.topics.read().get(topic).map_or(0, |t| t.state.lock().seq)
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

    /// Forgets `topic` if it has no subscribers, its `seq` and history with it; returns
    /// whether it did. Only for topics with one owner that does all their subscribing
    /// and broadcasting (the page readers actor), so nothing can race the removal.
    pub fn remove_idle(&self, topic: &str) -> bool {
        let mut topics = self.topics.write();
        let idle = topics.get(topic).is_some_and(|t| t.state.lock().subscribers.is_empty());
        if idle {
            topics.remove(topic);
        }
        idle
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
        let topic = self.topic(topic_name);
        let mut state = topic.state.lock();
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
        state.history.push(Retained { seq, event: event.into(), payload: payload.clone() }, &self.limits);
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
