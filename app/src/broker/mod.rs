//! The broker between app nodes: Redis (`--pubsub-url redis://…`). With it, several
//! nodes sharing one database are one cluster for the Phoenix topics: every broadcast
//! crosses the broker once, numbered once for the whole cluster, and each node fans it
//! out to its own sockets with the usual encode-once path ([`PubSub::deliver`]).
//!
//! Why Redis: one Lua script numbers a broadcast (a per-topic counter), keeps it in
//! the topic's history (a stream with ids `<seq>-0`, bounded by count and age) and
//! publishes it, atomically, so the cluster-wide `seq` and the publication order are
//! the same thing and recovery history is readable from every node. NATS core has no
//! counters or history; JetStream numbers per stream, not per topic.
//!
//! Files: `message.rs` (what crosses the channel), `scripts.rs` (keys and Lua),
//! `link.rs` (the connections' tasks: publishing in order, receiving, reconnecting
//! with back-off and telling subscribers about a gap, heartbeating).
//!
//! Signals ([`Cluster::signal`], [`Peers`]) cross the same channel unnumbered: typing,
//! and the page readers each node holds for the others.
//!
//! Presence across nodes ([`Replica`]): each node keeps its own presences per topic in
//! a hash field of its own and heartbeats every few seconds (a key that expires
//! [`link::NODE_TTL`] after the last beat); a join merges the live nodes' states. A node
//! whose heartbeat expired is taken out by exactly one other node, which broadcasts its
//! presences' leaves: a killed node's presences are gone everywhere within
//! [`link::NODE_TTL`] plus one [`link::HEARTBEAT`].

mod link;
mod message;
mod scripts;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::value::RawValue;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, watch};

use link::Outbound;
pub use link::{Link, LinkTasks};
pub use message::{Message, MessageError, decode};
use scripts::Keys;

use crate::metrics::Metrics;
use crate::presence::Replica;
use crate::pubsub::{Cluster, ClusterError, ClusterHistory, HistoryLimits, Retained};
use crate::readers::Peers;
use crate::wire;

/// How long one command to the broker may take before it counts as unreachable.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the broker is and which cluster on it this node belongs to.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `redis://host:port[/db]`.
    pub url: String,
    /// Keeps clusters sharing one Redis apart (keys and channel start with it).
    pub namespace: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("--pubsub-url {url}: {why}")]
    Url { url: String, why: String },
    #[error("cannot reach the broker at {url}: {source}")]
    Connect { url: String, source: redis::RedisError },
}

/// This node's side of the broker, as the pub/sub's [`Cluster`].
pub struct Broker {
    epoch: Arc<str>,
    /// This node's name in the cluster (random, per process): its heartbeat and its
    /// presences are kept under it.
    node: Arc<str>,
    /// Broadcasts handed to the link so far, and how many of them the broker took.
    issued: AtomicU64,
    taken: watch::Receiver<u64>,
    keys: Arc<Keys>,
    outbound: mpsc::UnboundedSender<Outbound>,
    commands: ConnectionManager,
    limits: HistoryLimits,
    metrics: Arc<Metrics>,
}

/// Connects to the broker: agrees on the cluster's epoch and subscribes to its channel,
/// so nothing published after this returns is missed. The returned link starts its
/// tasks once the pub/sub exists ([`Link::start`]).
pub async fn connect(
    config: &BrokerConfig,
    limits: HistoryLimits,
    metrics: Arc<Metrics>,
) -> Result<(Arc<Broker>, link::Link), BrokerError> {
    let url = &config.url;
    if !url.starts_with("redis://") {
        return Err(BrokerError::Url { url: url.clone(), why: "only redis:// is supported".into() });
    }
    let client =
        redis::Client::open(url.as_str()).map_err(|err| BrokerError::Url { url: url.clone(), why: err.to_string() })?;
    let connect_err = |source| BrokerError::Connect { url: url.clone(), source };
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(2));
    let mut commands =
        tokio::time::timeout(COMMAND_TIMEOUT, ConnectionManager::new_with_config(client.clone(), manager_config))
            .await
            .map_err(|_| connect_err(timed_out()))?
            .map_err(connect_err)?;
    let keys = Arc::new(Keys::new(&config.namespace));
    let epoch = link::seed(&mut commands, &keys, &crate::pubsub::new_epoch(), 0, &[]).await.map_err(connect_err)?;
    let subscription = link::subscribe(&client, &keys).await.map_err(connect_err)?;
    let node: Arc<str> = crate::pubsub::new_epoch();
    link::heartbeat(&mut commands, &keys, &node).await.map_err(connect_err)?;
    tracing::info!(%url, namespace = %config.namespace, %epoch, %node, "joined the cluster");
    let (outbound, outbound_rx) = mpsc::unbounded_channel();
    let (taken_tx, taken) = watch::channel(0);
    let broker = Arc::new(Broker {
        epoch: epoch.into(),
        node: node.clone(),
        issued: AtomicU64::new(0),
        taken,
        keys: keys.clone(),
        outbound,
        commands: commands.clone(),
        limits,
        metrics: metrics.clone(),
    });
    let link = link::Link {
        client,
        keys,
        node,
        commands,
        outbound: outbound_rx,
        taken: taken_tx,
        subscription,
        limits,
        metrics,
    };
    Ok((broker, link))
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}

impl Broker {
    /// Hands `item` to the publishing task, counted for [`Cluster::flushed`].
    fn queue(&self, item: Outbound) {
        // Counted before it is queued: `flushed` never waits for less than was sent.
        self.issued.fetch_add(1, Ordering::AcqRel);
        if self.outbound.send(item).is_err() {
            // Only after the link stopped, at shutdown.
            tracing::warn!("broker item after the link stopped; not sent");
        }
    }
}

impl Replica for Broker {
    fn put(&self, topic: &str, state: &serde_json::Value) {
        let empty = state.as_object().is_some_and(serde_json::Map::is_empty);
        let state = if empty { String::new() } else { state.to_string() };
        self.queue(Outbound::Presence { topic: topic.into(), state });
    }

    fn others(&self, topic: &str) -> BoxFuture<'static, Vec<serde_json::Value>> {
        let mut commands = self.commands.clone();
        let mut call = redis::cmd("EVAL");
        call.arg(scripts::PRESENCE_OF_OTHERS)
            .arg(1)
            .arg(self.keys.presence(topic))
            .arg(&self.keys.node_prefix)
            .arg(&*self.node);
        Box::pin(async move {
            match tokio::time::timeout(COMMAND_TIMEOUT, call.query_async::<Vec<String>>(&mut commands)).await {
                Ok(Ok(states)) => states.iter().filter_map(|s| serde_json::from_str(s).ok()).collect(),
                Ok(Err(err)) => {
                    tracing::warn!(%err, "cannot read the other nodes' presences");
                    Vec::new()
                }
                Err(_) => {
                    tracing::warn!("reading the other nodes' presences timed out");
                    Vec::new()
                }
            }
        })
    }
}

impl Peers for Broker {
    fn node(&self) -> &str {
        &self.node
    }

    fn tell(&self, topic: &str, event: &str, payload: &str) {
        self.queue(Outbound::Signal(message::encode_signal(&self.node, None, topic, event, payload)));
    }
}

impl Cluster for Broker {
    fn epoch(&self) -> Arc<str> {
        self.epoch.clone()
    }

    fn signal(&self, topic: &str, event: &str, payload: &str, except: Option<i64>) {
        self.queue(Outbound::Signal(message::encode_signal(&self.node, except, topic, event, payload)));
    }

    fn publish(&self, topic: &str, event: &str, payload: Box<RawValue>) {
        Metrics::add(&self.metrics.broker_published, 1);
        self.queue(Outbound::Broadcast { topic: topic.into(), event: event.into(), payload });
    }

    fn flushed(&self) -> BoxFuture<'static, ()> {
        let issued = self.issued.load(Ordering::Acquire);
        let mut taken = self.taken.clone();
        Box::pin(async move {
            // An error: the link stopped (shutdown); nothing more will be taken.
            let _ = taken.wait_for(|&taken| taken >= issued).await;
        })
    }

    fn history(&self, topic: &str, after: Option<u64>) -> BoxFuture<'static, Result<ClusterHistory, ClusterError>> {
        let mut commands = self.commands.clone();
        let (seqs, stream) = (self.keys.seqs.clone(), self.keys.history(topic));
        let (topic, max_age) = (topic.to_owned(), self.limits.max_age);
        Box::pin(async move {
            let first = after.map(|seq| format!("{}-0", seq.saturating_add(1))).unwrap_or_default();
            let mut call = redis::cmd("EVAL");
            call.arg(scripts::HISTORY).arg(2).arg(&seqs).arg(&stream).arg(&topic).arg(&first);
            let read =
                tokio::time::timeout(COMMAND_TIMEOUT, call.query_async::<(u64, u64, Vec<StreamEntry>)>(&mut commands));
            let (top, now_ms, entries) = match read.await {
                Ok(Ok(read)) => read,
                Ok(Err(err)) => return Err(ClusterError::Unavailable(err.to_string())),
                Err(_) => return Err(ClusterError::Unavailable("timed out".into())),
            };
            let oldest_ms = now_ms.saturating_sub(u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX));
            let kept: Vec<StreamEntry> = entries.into_iter().filter(|e| e.at_ms >= oldest_ms && e.seq <= top).collect();
            let restarts = kept.iter().filter(|e| e.restarted).map(|e| e.seq).collect();
            let events = kept.into_iter().filter_map(StreamEntry::retained).collect();
            Ok(ClusterHistory { top, events, restarts })
        })
    }
}

/// One entry of a topic's history stream: `<seq>-0` → `e` event, `p` payload, `t` ms.
struct StreamEntry {
    seq: u64,
    event: String,
    payload: String,
    at_ms: u64,
    restarted: bool,
}

impl StreamEntry {
    /// As a recovered event, `seq` in its payload.
    fn retained(self) -> Option<Retained> {
        let payload = RawValue::from_string(wire::with_seq(&self.payload, self.seq)).ok()?;
        Some(Retained { seq: self.seq, event: self.event.into(), payload: Arc::from(payload) })
    }
}

impl redis::FromRedisValue for StreamEntry {
    fn from_redis_value(value: redis::Value) -> Result<Self, redis::ParsingError> {
        let (id, fields): (String, Vec<(String, String)>) = redis::from_redis_value(value)?;
        let seq = id.split_once('-').and_then(|(seq, _)| seq.parse().ok()).ok_or("history id is not <seq>-0")?;
        let mut entry = StreamEntry { seq, event: String::new(), payload: String::new(), at_ms: 0, restarted: false };
        for (name, value) in fields {
            match name.as_str() {
                "e" => entry.event = value,
                "p" => entry.payload = value,
                "t" => entry.at_ms = value.parse().map_err(|_| "history time is not a number")?,
                "r" => entry.restarted = value == "1",
                _ => {}
            }
        }
        Ok(entry)
    }
}
