//! What the pub/sub needs of the other nodes when it is one node of a cluster: someone
//! who numbers every broadcast once for the whole cluster, hands it back to every node
//! (this one included) through [`super::PubSub::deliver`], and keeps each topic's recent
//! history where every node can read it. The broker module provides it; the pub/sub
//! only knows this trait, so imports flow from the broker to the pub/sub.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::value::RawValue;

use super::Retained;

/// The cluster's numbering and history.
pub trait Cluster: Send + Sync + 'static {
    /// The cluster's epoch of sequence numbers (the same on every node).
    fn epoch(&self) -> Arc<str>;

    /// Hands a broadcast (its payload without `seq`) to the cluster. Never waits: the
    /// broadcast is numbered and delivered later, in the order of the calls.
    fn publish(&self, topic: &str, event: &str, payload: Box<RawValue>);

    /// Hands a signal (see [`super::PubSub::signal`]) to the other nodes: not numbered,
    /// not kept; in order with this node's broadcasts. Never waits.
    fn signal(&self, topic: &str, event: &str, payload: &str, except: Option<i64>);

    /// Resolves once the broker has taken every broadcast published before the call (or
    /// the link has stopped): a write is acknowledged only after that, so a node that
    /// dies right after an acknowledgement has not taken the broadcast with it.
    fn flushed(&self) -> BoxFuture<'static, ()>;

    /// The topic's latest `seq` and, when `after` is given, its retained events after
    /// it, oldest first, with `seq` in their payloads.
    fn history(&self, topic: &str, after: Option<u64>) -> BoxFuture<'static, Result<ClusterHistory, ClusterError>>;
}

/// A topic's state as the cluster holds it.
#[derive(Debug, Default)]
pub struct ClusterHistory {
    /// The topic's latest `seq` (0: nothing was ever broadcast on it).
    pub top: u64,
    /// Events after the asked-for `seq` still retained, oldest first, none newer than `top`.
    pub events: Vec<Retained>,
    /// Those of `events` whose `seq` a broker that had lost its counters started afresh
    /// (above every `seq` any node had seen): no event lies between the one before and
    /// such a one, so recovery may cross the jump.
    pub restarts: Vec<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("the broker is unavailable: {0}")]
    Unavailable(String),
}
