//! `RoomRegistry`: finds a room's actor by slug, starting it on first use, and the
//! typed requests the rest of the app sends to rooms.
//!
//! The map `slug → handle` sits behind one mutex, and every send to an actor happens
//! while holding it (`try_send`: never waits, queues are bounded). An actor that wants
//! to stop (idle, room gone, crashed) takes the same lock, checks that its queue is
//! empty, removes its entry and closes its queue. So a command is either queued before
//! that check, and handled, or finds no entry (or a closed queue) and starts a fresh
//! actor: nothing is sent into a queue nobody will read.
//!
//! A dead actor (its task ended, by a panic or otherwise) leaves a closed queue behind;
//! the next send sees it and starts the room again. Each start gets a new generation,
//! so a stopping actor never removes its successor's entry.

use crate::presence::Replica;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::actor::{self, Cmd, Joined};
use super::{ChatConfig, ChatError, MessageBody};
use crate::accounts::User;
use crate::pubsub::{PubSub, SocketHandle};
use crate::store::{Store, Writer};
use crate::uploads::Upload;
use crate::wire::Vsn;

/// The topic of what a node tells the others about rooms (a signal; never a channel's
/// topic): a room's record or members changed, it was deleted, its messages changed.
pub(super) const NODES_TOPIC: &str = "rooms";
pub(super) const CHANGED: &str = "changed";
pub(super) const DELETED: &str = "deleted";
pub(super) const MESSAGES: &str = "messages";

/// What every room actor needs from the app.
pub(super) struct Deps {
    pub store: Store,
    /// Messages are written (and deleted) through the store's group-committing writer.
    pub writer: Writer,
    pub pubsub: Arc<PubSub>,
    pub config: ChatConfig,
    /// Accept the `debug_crash` event (only with `Config::debug_topics`).
    pub crash_hook: bool,
    pub shutdown: CancellationToken,
    /// In a cluster: where each room's presences are kept for the other nodes.
    pub replica: Option<Arc<dyn Replica>>,
}

struct Entry {
    tx: mpsc::Sender<Cmd>,
    generation: u64,
}

pub(super) struct Shared {
    rooms: Mutex<HashMap<Box<str>, Entry>>,
    pub(super) deps: Deps,
    generations: AtomicU64,
    join_ids: AtomicU64,
}

/// The room actors by slug; cheap to clone.
#[derive(Clone)]
pub struct RoomRegistry {
    shared: Arc<Shared>,
}

impl RoomRegistry {
    pub fn new(
        store: Store,
        writer: Writer,
        pubsub: Arc<PubSub>,
        config: ChatConfig,
        crash_hook: bool,
        shutdown: CancellationToken,
        replica: Option<Arc<dyn Replica>>,
    ) -> Self {
        let deps = Deps { store, writer, pubsub: pubsub.clone(), config, crash_hook, shutdown, replica };
        let shared =
            Shared { rooms: Mutex::default(), deps, generations: AtomicU64::new(0), join_ids: AtomicU64::new(1) };
        let shared = Arc::new(shared);
        // What the other nodes did to a room reaches its actor here, if one runs.
        let weak = Arc::downgrade(&shared);
        pubsub.on_signal(
            NODES_TOPIC,
            Arc::new(move |event, payload| {
                let Some(shared) = weak.upgrade() else { return };
                let Ok(RoomSignal { slug }) = serde_json::from_str(payload.get()) else {
                    tracing::warn!(event, "ignoring a room signal without a slug");
                    return;
                };
                match event {
                    CHANGED => shared.notify(&slug, Cmd::Changed),
                    DELETED => shared.notify(&slug, Cmd::Deleted),
                    MESSAGES => shared.notify(&slug, Cmd::Stale),
                    _ => tracing::warn!(event, "ignoring a room signal"),
                }
            }),
        );
        let weak = Arc::downgrade(&shared);
        pubsub.on_rejoin(Arc::new(move || {
            if let Some(shared) = weak.upgrade() {
                shared.notify_all(|| Cmd::Announce);
            }
        }));
        Self { shared }
    }

    /// Number of running room actors.
    pub fn running(&self) -> usize {
        self.shared.rooms.lock().values().filter(|e| !e.tx.is_closed()).count()
    }

    /// Whether the room `slug` has a running actor.
    pub fn is_running(&self, slug: &str) -> bool {
        self.shared.rooms.lock().get(slug).is_some_and(|e| !e.tx.is_closed())
    }

    /// Queues `cmd` for the room's actor, starting one if none is alive.
    fn send(&self, slug: &str, cmd: Cmd) -> Result<(), ChatError> {
        let mut rooms = self.shared.rooms.lock();
        let cmd = match rooms.get(slug) {
            Some(entry) => match entry.tx.try_send(cmd) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => return Err(ChatError::Busy),
                // Dead (crashed, or stopped without removing itself): start it again.
                Err(mpsc::error::TrySendError::Closed(cmd)) => cmd,
            },
            None => cmd,
        };
        let generation = self.shared.generations.fetch_add(1, Relaxed);
        let (tx, rx) = mpsc::channel(self.shared.deps.config.room_queue.max(1));
        // A fresh queue has room for one command.
        let _ = tx.try_send(cmd);
        rooms.insert(slug.into(), Entry { tx, generation });
        actor::spawn(self.shared.clone(), slug.to_owned(), generation, rx);
        Ok(())
    }

    fn notify(&self, slug: &str, cmd: Cmd) {
        self.shared.notify(slug, cmd);
    }

    /// Joins a channel to the room: access check, presence, subscription, last messages.
    /// `join_ref` is the channel's, for the `phx_close` the room may send it later.
    pub async fn join(
        &self,
        slug: &str,
        join_ref: Option<&str>,
        user: Option<User>,
        socket: SocketHandle,
        vsn: Vsn,
    ) -> Result<(u64, Joined), ChatError> {
        let join_id = self.shared.join_ids.fetch_add(1, Relaxed);
        let (reply, rx) = oneshot::channel();
        let join_ref = join_ref.map(Box::from);
        self.send(slug, Cmd::Join { join_id, join_ref, user, socket, vsn, reply })?;
        let joined = rx.await.map_err(|_| ChatError::Unavailable)??;
        Ok((join_id, joined))
    }

    /// A room's `presence_state` for a join: `local` (this node's, from the room's actor)
    /// with, in a cluster, every other live node's presences in the room.
    pub async fn presence_everywhere(&self, slug: &str, local: serde_json::Value) -> serde_json::Value {
        match &self.shared.deps.replica {
            Some(replica) => crate::presence::merge(local, replica.others(&super::rooms::topic(slug)).await),
            None => local,
        }
    }

    /// The channel `join_id` left (or its socket closed, or it crashed).
    pub fn leave(&self, slug: &str, join_id: u64) {
        self.notify(slug, Cmd::Leave { join_id });
    }

    /// Stores and broadcasts a message; its id.
    pub async fn post(
        &self,
        slug: &str,
        user: User,
        body: MessageBody,
        attachment: Option<Upload>,
    ) -> Result<i64, ChatError> {
        let (reply, rx) = oneshot::channel();
        self.send(slug, Cmd::Post { user, body, attachment, reply })?;
        rx.await.map_err(|_| ChatError::Unavailable)?
    }

    /// Deletes message `id` if `user` wrote it or is a room admin.
    pub async fn delete_message(&self, slug: &str, user: User, id: i64) -> Result<(), ChatError> {
        let (reply, rx) = oneshot::channel();
        self.send(slug, Cmd::Delete { user, id, reply })?;
        rx.await.map_err(|_| ChatError::Unavailable)?
    }

    /// `user` is typing on channel `join_id`.
    pub fn typing(&self, slug: &str, user: User, join_id: u64) -> Result<(), ChatError> {
        self.send(slug, Cmd::Typing { user, join_id })
    }

    /// The room's record or its members changed: a running actor reloads them, on
    /// every node.
    pub fn room_changed(&self, slug: &str) {
        self.notify(slug, Cmd::Changed);
        self.shared.deps.pubsub.signal_others(NODES_TOPIC, CHANGED, &RoomSignal { slug: slug.into() });
    }

    /// The room was deleted: a running actor tells its channels and stops, on every
    /// node.
    pub fn room_deleted(&self, slug: &str) {
        self.notify(slug, Cmd::Deleted);
        self.shared.deps.pubsub.signal_others(NODES_TOPIC, DELETED, &RoomSignal { slug: slug.into() });
    }

    /// Makes the room's actor panic (the crash hook; refused unless enabled).
    pub async fn crash(&self, slug: &str) -> Result<(), ChatError> {
        if !self.shared.deps.crash_hook {
            return Err(ChatError::UnknownEvent);
        }
        let (reply, rx) = oneshot::channel();
        self.send(slug, Cmd::Crash { reply })?;
        rx.await.map_err(|_| ChatError::Unavailable)?
    }
}

/// The payload of a room signal.
#[derive(serde::Serialize, serde::Deserialize)]
struct RoomSignal {
    slug: String,
}

impl Shared {
    /// Queues a `cmd()` for every running actor.
    fn notify_all(&self, cmd: impl Fn() -> Cmd) {
        for entry in self.rooms.lock().values() {
            let _ = entry.tx.try_send(cmd());
        }
    }

    /// Queues `cmd` only if the room's actor is running (nothing to tell otherwise).
    fn notify(&self, slug: &str, cmd: Cmd) {
        if let Some(entry) = self.rooms.lock().get(slug) {
            let _ = entry.tx.try_send(cmd);
        }
    }

    /// Removes the entry of `generation` for `slug` and closes its queue, unless a
    /// command is waiting in it. Returns whether the actor may stop.
    pub(super) fn retire(&self, slug: &str, generation: u64, rx: &mut mpsc::Receiver<Cmd>) -> bool {
        let mut rooms = self.rooms.lock();
        if !rx.is_empty() {
            return false;
        }
        if rooms.get(slug).is_some_and(|e| e.generation == generation) {
            rooms.remove(slug);
        }
        rx.close();
        true
    }

    /// Like `retire`, whatever is queued (the actor cannot go on): the queue is closed
    /// under the lock; what is left in it is the caller's to drain.
    pub(super) fn evict(&self, slug: &str, generation: u64, rx: &mut mpsc::Receiver<Cmd>) {
        let mut rooms = self.rooms.lock();
        if rooms.get(slug).is_some_and(|e| e.generation == generation) {
            rooms.remove(slug);
        }
        rx.close();
    }
}
