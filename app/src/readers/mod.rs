//! Page readers: who is reading which page, for "N readers online" on every page
//! (seed 004) without the O(N²) diff storm of naive presence on a popular page.
//!
//! A client joins `page:<path>` (see [`valid_path`]); each join is one reader tracked in
//! that page's [`Presences`](crate::presence::Presences) under a key (the user id when
//! signed in, `anon:<socket id>` otherwise, `anon:<node>.<socket id>` in a cluster) with
//! meta `{online_at}`. The join reply is `{"readers": <keys on this page>, "total":
//! <distinct keys on all pages>}`, then the channel gets `presence_state` for the page.
//!
//! Changes go out throttled: every page has a [`DiffThrottle`](crate::presence::DiffThrottle),
//! so a page sees at most one merged `presence_diff` per [`ReadersConfig::interval`]
//! however many readers come and go, plus a `readers {readers, total}` broadcast at most
//! once per interval when its counts changed (also when only the total moved).
//!
//! All page state lives in one task (the actor in `actor.rs`), reached through the
//! [`Readers`] handle over a bounded queue: it needs a timer to release held diffs, and
//! owning the state outright means a join's snapshot, its seat and later diffs are
//! ordered without locks. A page's readers are its audience: the actor queues each
//! broadcast on the outbox of every seat itself (the pub/sub's rules: encoded once per
//! protocol version, `try_send`, a full outbox marks the socket a slow consumer), and
//! a join takes its seat in the same step as the `presence_state` snapshot, so no diff
//! can fall in between (a diff may repeat a join the snapshot already holds; phoenix.js
//! applies that idempotently). The channel keeps a [`Ticket`] and hands it back on
//! leave, re-join, crash or socket close; the actor then untracks the reader.
//!
//! In a cluster each node's actor also holds the other nodes' readers (`peers.rs`): the
//! counts, a join's `presence_state` and the diffs a page's seats get cover every node.
//!
//! Memory is the point of that design: a page read by one socket costs under 1 KiB
//! (a pub/sub topic per page, with its own subscriber list and recovery history, cost
//! more than the page itself). Pages keep no history — presence is state, not a stream,
//! and a rejoin gets a fresh `presence_state` — and the per-key text of the
//! `presence_state` is cached only on busy pages.

mod actor;
mod peers;

pub use peers::{CONTROL_TOPIC, Peers, is_readers_topic};

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use crate::presence::PhxRef;
use crate::pubsub::SocketHandle;
use crate::wire::Vsn;

/// Topics of page readers: `page:<path>`.
pub const TOPIC_PREFIX: &str = "page:";

/// Longest accepted page path, in characters.
pub const MAX_PATH_CHARS: usize = 200;

/// Event names.
pub mod events {
    /// Throttled count broadcast: `{"readers": n, "total": n}`.
    pub const READERS: &str = "readers";
}

/// Timings and bounds of the readers actor.
#[derive(Debug, Clone, Copy)]
pub struct ReadersConfig {
    /// At most one merged `presence_diff` and one `readers` count per page per interval.
    /// Zero sends every change at once.
    pub interval: Duration,
    /// Commands queued for the actor before joins and leaves wait for room.
    pub queue: usize,
}

impl Default for ReadersConfig {
    fn default() -> Self {
        Self { interval: Duration::from_secs(1), queue: 4096 }
    }
}

/// Whether `path` may name a page: starts with `/`, at most [`MAX_PATH_CHARS`]
/// characters, no control characters.
pub fn valid_path(path: &str) -> bool {
    path.starts_with('/') && path.chars().count() <= MAX_PATH_CHARS && !path.chars().any(char::is_control)
}

/// Whether `topic` names a page: `page:<path>` with a [`valid_path`].
pub fn valid_topic(topic: &str) -> bool {
    topic.strip_prefix(TOPIC_PREFIX).is_some_and(valid_path)
}

/// What a channel keeps of its reader, to hand back on leave.
#[derive(Debug)]
pub struct Ticket {
    topic: Arc<str>,
    socket_id: u64,
    phx_ref: PhxRef,
}

/// An accepted join.
#[derive(Debug)]
pub struct Joined {
    pub ticket: Ticket,
    /// Readers (distinct keys) on this page, the joiner included.
    pub readers: usize,
    /// Distinct readers on all pages.
    pub total: usize,
    /// The page's `presence_state` payload (JSON text), taken when the joiner was
    /// seated.
    pub state: String,
}

/// A reader asking to join.
pub struct Reader {
    pub key: String,
    pub meta: Map<String, Value>,
    pub socket: SocketHandle,
    pub vsn: Vsn,
}

enum Command {
    Join {
        topic: Arc<str>,
        reader: Reader,
        reply: oneshot::Sender<Joined>,
    },
    Leave(Ticket),
    Counts {
        topic: String,
        reply: oneshot::Sender<(usize, usize)>,
    },
    /// A message from another node's readers (see `peers.rs`).
    Peer {
        node: Arc<str>,
        topic: String,
        event: String,
        payload: String,
    },
    /// Tell the other nodes this node's readers and ask for theirs.
    Resync,
    /// The nodes alive now: the readers of any other are dropped.
    Live(Vec<Arc<str>>),
}

/// Handle to the readers actor; cheap to clone.
#[derive(Clone)]
pub struct Readers {
    tx: mpsc::Sender<Command>,
    /// What an anonymous reader's key starts with: `anon:`, and in a cluster the node's
    /// name too, so two nodes' sockets never share a key.
    anonymous: Arc<str>,
}

impl Readers {
    /// Starts the actor on the current runtime, alone or (with `peers`) one node of a
    /// cluster. It stops when every handle is dropped.
    pub fn spawn(config: ReadersConfig, peers: Option<Arc<dyn Peers>>) -> Self {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let anonymous = match &peers {
            Some(peers) => format!("anon:{}.", peers.node()).into(),
            None => "anon:".into(),
        };
        tokio::spawn(actor::run(config, peers, rx));
        Self { tx, anonymous }
    }

    /// The key of an anonymous reader on socket `socket_id`: unique in the cluster.
    pub fn anonymous_key(&self, socket_id: u64) -> String {
        format!("{}{socket_id}", self.anonymous)
    }

    /// A message from `node`'s readers, as it crossed the broker.
    pub async fn from_peer(&self, node: &str, topic: &str, event: &str, payload: &str) {
        let cmd =
            Command::Peer { node: node.into(), topic: topic.into(), event: event.into(), payload: payload.into() };
        if self.tx.send(cmd).await.is_err() {
            tracing::warn!("readers actor is gone; a peer's message dropped");
        }
    }

    /// Tells the other nodes every page's readers here and asks for theirs: when this
    /// node joins the cluster, and after its link to the broker dropped.
    pub async fn resync(&self) {
        let _ = self.tx.send(Command::Resync).await;
    }

    /// The cluster's live nodes (this one among them): other nodes' readers go.
    pub async fn live(&self, nodes: Vec<Arc<str>>) {
        let _ = self.tx.send(Command::Live(nodes)).await;
    }

    /// Tracks `reader` on `topic` (a valid `page:<path>`) and seats its socket in the
    /// page's audience. `None` if the actor is gone.
    pub async fn join(&self, topic: &str, reader: Reader) -> Option<Joined> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Join { topic: topic.into(), reader, reply }).await.ok()?;
        rx.await.ok()
    }

    /// Untracks the reader of `ticket` and takes its seat (a no-op if a re-join of the
    /// same socket already replaced it).
    pub async fn leave(&self, ticket: Ticket) {
        if self.tx.send(Command::Leave(ticket)).await.is_err() {
            tracing::warn!("readers actor is gone; leave dropped");
        }
    }

    /// `(readers on topic, total)` as the actor sees them now.
    pub async fn counts(&self, topic: &str) -> Option<(usize, usize)> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Counts { topic: topic.to_owned(), reply }).await.ok()?;
        rx.await.ok()
    }
}

/// A reader's seat on a page: which key and meta it holds, and where its page's
/// broadcasts go.
struct Seat {
    key: Arc<str>,
    phx_ref: PhxRef,
    socket: SocketHandle,
    vsn: Vsn,
}

#[cfg(test)]
mod tests;
