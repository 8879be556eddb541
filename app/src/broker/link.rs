//! The link's two connections and their tasks. Publishing: one task takes the node's
//! broadcasts in the order they were made and runs the numbering script for each
//! (pipelined in batches), retrying with back-off while the broker is away, so a
//! broadcast is delayed, never dropped or reordered. Receiving: one subscription to
//! the cluster's channel; every message goes to [`PubSub::deliver`]. When the
//! subscription drops, the task reconnects with back-off, seeds the broker again (it
//! may have restarted empty) and tells every subscriber about the gap.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::message::{self, Message};
use super::scripts::{self, Keys};
use crate::metrics::Metrics;
use crate::pubsub::{HistoryLimits, PubSub};
use crate::readers::{self, Readers};

/// Broadcasts numbered in one round trip, at most.
const BATCH: usize = 256;
/// Back-off between attempts while the broker is away: doubling, capped.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(2);
/// How long the publishing task may go on after shutdown began, to send what is queued.
const DRAIN: Duration = Duration::from_secs(5);
/// Seeding sends this many counters per script call.
const SEED_CHUNK: usize = 500;

/// Every this long a node renews its heartbeat and looks for nodes whose beat stopped.
pub const HEARTBEAT: Duration = Duration::from_secs(3);
/// A node's heartbeat expires this long after its last beat.
pub const NODE_TTL: Duration = Duration::from_secs(10);

/// What the publishing task sends, in order.
pub(super) enum Outbound {
    /// One broadcast waiting to be numbered.
    Broadcast { topic: Box<str>, event: Box<str>, payload: Box<RawValue> },
    /// This node's presences on a topic now (empty: none left).
    Presence { topic: Box<str>, state: String },
    /// A signal, encoded ([`message::encode_signal`]).
    Signal(String),
}

/// The link, connected and subscribed, before its tasks run.
pub struct Link {
    pub(super) client: redis::Client,
    pub(super) keys: Arc<Keys>,
    pub(super) node: Arc<str>,
    pub(super) commands: ConnectionManager,
    pub(super) outbound: mpsc::UnboundedReceiver<Outbound>,
    /// How many broadcasts the broker has taken, for [`super::Broker`]'s `flushed`.
    pub(super) taken: watch::Sender<u64>,
    pub(super) subscription: redis::aio::PubSub,
    pub(super) limits: HistoryLimits,
    pub(super) metrics: Arc<Metrics>,
}

/// The running link.
pub struct LinkTasks {
    stop: CancellationToken,
    publishing: JoinHandle<()>,
    receiving: JoinHandle<()>,
    keeping: JoinHandle<()>,
}

impl LinkTasks {
    /// Stops receiving, sends what is still queued (for up to a few seconds) and ends.
    pub async fn stop(self) {
        self.stop.cancel();
        for task in [self.publishing, self.receiving, self.keeping] {
            if let Err(err) = task.await {
                tracing::error!(%err, "broker task failed");
            }
        }
    }
}

impl Link {
    /// Starts the link's tasks for `pubsub` and `readers`.
    pub fn start(self, pubsub: Arc<PubSub>, readers: Readers) -> LinkTasks {
        let stop = CancellationToken::new();
        let publisher = Publisher {
            commands: self.commands.clone(),
            keys: self.keys.clone(),
            node: self.node.clone(),
            limits: self.limits,
            metrics: self.metrics.clone(),
            pubsub: pubsub.clone(),
            taken: self.taken,
        };
        let publishing = tokio::spawn(publisher.run(self.outbound, stop.clone()));
        let keeper = Keeper {
            commands: self.commands.clone(),
            keys: self.keys.clone(),
            node: self.node.clone(),
            pubsub: pubsub.clone(),
            readers: readers.clone(),
        };
        let keeping = tokio::spawn(keeper.run(stop.clone()));
        let receiver = Receiver {
            client: self.client,
            keys: self.keys,
            node: self.node,
            commands: self.commands,
            metrics: self.metrics,
            pubsub,
            readers,
        };
        let receiving = tokio::spawn(receiver.run(self.subscription, stop.clone()));
        LinkTasks { stop, publishing, receiving, keeping }
    }
}

/// Subscribes to the cluster's channel on a connection of its own.
pub(super) async fn subscribe(client: &redis::Client, keys: &Keys) -> redis::RedisResult<redis::aio::PubSub> {
    let mut subscription = client.get_async_pubsub().await?;
    subscription.subscribe(&keys.channel).await?;
    Ok(subscription)
}

/// Runs the seeding script: the broker keeps its epoch if it has one (returned), else
/// takes `epoch`, and no counter is left below what this node knows.
pub(super) async fn seed(
    commands: &mut ConnectionManager,
    keys: &Keys,
    epoch: &str,
    floor: u64,
    topics: &[(Box<str>, u64)],
) -> redis::RedisResult<String> {
    let mut kept = String::new();
    // One call even with no topics: it is what sets the epoch.
    for chunk in topics.chunks(SEED_CHUNK).chain(topics.is_empty().then_some(&[][..])) {
        let mut call = redis::cmd("EVAL");
        call.arg(scripts::SEED).arg(3).arg(&keys.epoch).arg(&keys.seqs).arg(&keys.floor).arg(epoch).arg(floor);
        for (topic, seq) in chunk {
            call.arg(&**topic).arg(*seq);
        }
        kept = call.query_async(commands).await?;
    }
    Ok(kept)
}

/// Seeds the broker from what `pubsub` knows; logs an epoch that is not ours.
async fn seed_from(commands: &mut ConnectionManager, keys: &Keys, pubsub: &PubSub) -> redis::RedisResult<()> {
    let (floor, topics) = pubsub.positions();
    let kept = seed(commands, keys, pubsub.epoch(), floor, &topics).await?;
    if kept != **pubsub.epoch() {
        tracing::error!(ours = %pubsub.epoch(), broker = %kept, "the broker holds another epoch: clients' `since` will not recover across nodes until this node restarts");
    }
    Ok(())
}

/// Renews this node's heartbeat (and its place in the node set). True when the node set
/// did not hold this node: it was taken out as dead (a stall, a lost heartbeat) or the
/// broker restarted empty.
pub(super) async fn heartbeat(commands: &mut ConnectionManager, keys: &Keys, node: &str) -> redis::RedisResult<bool> {
    let ttl_ms = u64::try_from(NODE_TTL.as_millis()).unwrap_or(u64::MAX);
    let (added,): (i64,) = redis::pipe()
        .cmd("SET")
        .arg(keys.node(node))
        .arg(1)
        .arg("PX")
        .arg(ttl_ms)
        .ignore()
        .cmd("SADD")
        .arg(&keys.nodes)
        .arg(node)
        .query_async(commands)
        .await?;
    Ok(added == 1)
}

/// Heartbeats, and takes out the nodes whose beat stopped: their presences' leaves are
/// broadcast on each topic they had presences on, so every node's listeners see them go,
/// and this node's readers drop the page readers of every node not alive.
struct Keeper {
    commands: ConnectionManager,
    keys: Arc<Keys>,
    node: Arc<str>,
    pubsub: Arc<PubSub>,
    readers: Readers,
}

impl Keeper {
    async fn run(mut self, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(HEARTBEAT) => {}
                () = stop.cancelled() => return,
            }
            match heartbeat(&mut self.commands, &self.keys, &self.node).await {
                Ok(false) => {}
                Ok(true) => {
                    // The others may have taken this node for dead and told their
                    // listeners its presences left: they are announced again.
                    tracing::warn!("this node was not in the cluster's node set; announcing its presences again");
                    self.pubsub.rejoined();
                }
                Err(err) => {
                    tracing::warn!(%err, "cannot heartbeat to the broker");
                    continue;
                }
            }
            if let Err(err) = self.reap().await {
                tracing::warn!(%err, "cannot take out nodes that stopped");
            }
            let mut call = redis::cmd("EVAL");
            call.arg(scripts::LIVE).arg(1).arg(&self.keys.nodes).arg(&self.keys.node_prefix);
            match call.query_async::<Vec<String>>(&mut self.commands).await {
                Ok(live) => self.readers.live(live.into_iter().map(Arc::from).collect()).await,
                Err(err) => tracing::warn!(%err, "cannot read which nodes are alive"),
            }
        }
    }

    async fn reap(&mut self) -> redis::RedisResult<()> {
        let mut call = redis::cmd("EVAL");
        call.arg(scripts::REAP).arg(1).arg(&self.keys.nodes).arg(&self.keys.node_prefix).arg(&*self.node);
        let dead: Vec<String> = call.query_async(&mut self.commands).await?;
        for node in dead {
            let index = self.keys.presence_index(&node);
            let topics: Vec<String> = redis::cmd("SMEMBERS").arg(&index).query_async(&mut self.commands).await?;
            let mut left = 0;
            for topic in &topics {
                let key = self.keys.presence(topic);
                let (state, _): (Option<String>, u64) =
                    redis::pipe().hget(&key, &*node).hdel(&key, &*node).query_async(&mut self.commands).await?;
                let Some(leaves) = state.and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok()) else {
                    continue;
                };
                left += leaves.as_object().map_or(0, serde_json::Map::len);
                let diff = serde_json::json!({ "joins": {}, "leaves": leaves });
                self.pubsub.broadcast(topic, crate::presence::events::DIFF, &diff);
            }
            let () = redis::cmd("DEL").arg(&index).query_async(&mut self.commands).await?;
            tracing::warn!(%node, topics = topics.len(), left, "a node stopped heartbeating: its presences are gone");
        }
        Ok(())
    }
}

struct Publisher {
    commands: ConnectionManager,
    keys: Arc<Keys>,
    node: Arc<str>,
    limits: HistoryLimits,
    metrics: Arc<Metrics>,
    pubsub: Arc<PubSub>,
    taken: watch::Sender<u64>,
}

impl Publisher {
    async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Outbound>, stop: CancellationToken) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let first = tokio::select! {
                first = queue.recv() => first,
                () = stop.cancelled() => break,
            };
            let Some(first) = first else { return };
            batch.push(first);
            while batch.len() < BATCH {
                let Ok(next) = queue.try_recv() else { break };
                batch.push(next);
            }
            self.send(&batch, None).await;
            batch.clear();
        }
        // Shutting down: what the node broadcast before it stopped still goes out.
        let deadline = tokio::time::Instant::now() + DRAIN;
        while let Ok(next) = queue.try_recv() {
            batch.push(next);
            if batch.len() == BATCH {
                self.send(&batch, Some(deadline)).await;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            self.send(&batch, Some(deadline)).await;
        }
    }

    /// Numbers and publishes `batch`, retrying until it went through (or `deadline`).
    async fn send(&mut self, batch: &[Outbound], deadline: Option<tokio::time::Instant>) {
        let mut pipe = redis::pipe();
        let max_events = self.limits.max_events;
        let max_age_ms = u64::try_from(self.limits.max_age.as_millis()).unwrap_or(u64::MAX).max(1);
        for item in batch {
            match item {
                Outbound::Broadcast { topic, event, payload } => {
                    let body = message::encode_body(topic, event, payload.get());
                    pipe.cmd("EVAL")
                        .arg(scripts::PUBLISH)
                        .arg(4)
                        .arg(&self.keys.epoch)
                        .arg(&self.keys.seqs)
                        .arg(&self.keys.floor)
                        .arg(self.keys.history(topic))
                        .arg(&**topic)
                        .arg(&**event)
                        .arg(payload.get())
                        .arg(body)
                        .arg(&self.keys.channel)
                        .arg(max_events)
                        .arg(max_age_ms)
                        .ignore();
                }
                Outbound::Presence { topic, state } if state.is_empty() => {
                    pipe.hdel(self.keys.presence(topic), &*self.node).ignore();
                    pipe.srem(self.keys.presence_index(&self.node), &**topic).ignore();
                }
                Outbound::Presence { topic, state } => {
                    pipe.hset(self.keys.presence(topic), &*self.node, state).ignore();
                    pipe.sadd(self.keys.presence_index(&self.node), &**topic).ignore();
                }
                Outbound::Signal(message) => {
                    pipe.publish(&self.keys.channel, message).ignore();
                }
            }
        }
        let mut wait = FIRST_RETRY;
        loop {
            match pipe.query_async::<()>(&mut self.commands).await {
                Ok(_) => {
                    self.taken.send_modify(|taken| *taken += batch.len() as u64);
                    return;
                }
                Err(err) => {
                    Metrics::add(&self.metrics.broker_publish_retries, 1);
                    if err.code() == Some("NOEPOCH") {
                        tracing::warn!("the broker lost its state; seeding it again");
                        if let Err(err) = seed_from(&mut self.commands, &self.keys, &self.pubsub).await {
                            tracing::warn!(%err, "cannot seed the broker");
                        }
                    } else {
                        tracing::warn!(%err, broadcasts = batch.len(), ?wait, "cannot publish to the broker; retrying");
                    }
                }
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() + wait > d) {
                tracing::error!(broadcasts = batch.len(), "shutting down with broadcasts the broker never took");
                return;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(LAST_RETRY);
        }
    }
}

struct Receiver {
    client: redis::Client,
    keys: Arc<Keys>,
    /// This node: its own signals come back and are skipped.
    node: Arc<str>,
    commands: ConnectionManager,
    metrics: Arc<Metrics>,
    pubsub: Arc<PubSub>,
    readers: Readers,
}

impl Receiver {
    async fn run(mut self, first: redis::aio::PubSub, stop: CancellationToken) {
        let mut subscription = Some(first);
        loop {
            let live = match subscription.take() {
                Some(live) => live,
                None => match self.reconnect(&stop).await {
                    Some(live) => live,
                    None => return,
                },
            };
            // Subscribed: whatever the others send from now on reaches this node, so
            // their page readers can be asked for (they may have changed meanwhile).
            self.readers.resync().await;
            let mut messages = live.into_on_message();
            loop {
                let message = tokio::select! {
                    message = messages.next() => message,
                    () = stop.cancelled() => return,
                };
                let Some(message) = message else { break };
                match message::decode(message.get_payload_bytes()) {
                    Ok(Message::Numbered(m)) => {
                        Metrics::add(&self.metrics.broker_delivered, 1);
                        self.pubsub.deliver(m.topic, m.seq, m.event, m.payload);
                    }
                    Ok(Message::Signal(s)) => self.signal(&s).await,
                    Err(err) => self.bad(&err),
                }
            }
            tracing::warn!("lost the broker's subscription; reconnecting");
        }
    }

    /// A signal from another node: page readers' messages go to the readers actor, the
    /// rest to this node's subscribers.
    async fn signal(&self, s: &message::Signal<'_>) {
        if s.origin == &*self.node {
            return;
        }
        Metrics::add(&self.metrics.broker_signals, 1);
        if readers::is_readers_topic(s.topic) {
            self.readers.from_peer(s.origin, s.topic, s.event, s.payload).await;
            return;
        }
        match serde_json::from_str::<&RawValue>(s.payload) {
            Ok(payload) => self.pubsub.deliver_signal(s.topic, s.event, payload, s.except),
            Err(err) => self.bad(&err),
        }
    }

    fn bad(&self, err: &dyn std::fmt::Display) {
        Metrics::add(&self.metrics.broker_bad_messages, 1);
        tracing::warn!(%err, "ignoring a broker message");
    }

    /// Subscribes again (retrying with back-off until it works or the node stops),
    /// seeds the broker, and tells every subscriber about the gap: whatever was
    /// broadcast while the subscription was down never reached this node.
    async fn reconnect(&mut self, stop: &CancellationToken) -> Option<redis::aio::PubSub> {
        let mut wait = FIRST_RETRY;
        loop {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => return None,
            }
            match subscribe(&self.client, &self.keys).await {
                Ok(live) => {
                    if let Err(err) = seed_from(&mut self.commands, &self.keys, &self.pubsub).await {
                        tracing::warn!(%err, "cannot seed the broker");
                    }
                    let told = self.pubsub.tell_gaps();
                    Metrics::add(&self.metrics.broker_reconnects, 1);
                    Metrics::add(&self.metrics.broker_gap_notices, told as u64);
                    tracing::info!(told, "subscribed to the broker again; subscribers told to recover");
                    return Some(live);
                }
                Err(err) => tracing::warn!(%err, ?wait, "cannot reach the broker"),
            }
            wait = (wait * 2).min(LAST_RETRY);
        }
    }
}
