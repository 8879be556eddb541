//! One task per active room, owning its hot state: the room record, its members (with
//! usernames, for mentions), the last 50 messages, the channels joined to it, who is
//! typing, and its presence. Commands arrive in one bounded queue and are handled one
//! at a time, so every broadcast on `room:<slug>` comes from here, in order.
//!
//! - **Join** subscribes the channel's socket to the topic in the same step that takes
//!   the snapshot it replies with (last messages, presence state): nothing broadcast
//!   later is missed, nothing in the snapshot arrives again.
//! - **Messages** are queued for the store's writer (`store::Writer`, group commit) and
//!   broadcast as their commits come back, in the order they were posted; the room
//!   keeps handling commands meanwhile, so a busy room's messages share transactions.
//! - **Typing** frames go out as pub/sub signals: to every node's channels on the
//!   topic except the typist's own, neither numbered nor kept in the topic's recovery
//!   history (typing is ephemeral). A typing user's presence meta says
//!   `typing: true` until `typing_timeout` passes without another push, or they post.
//! - **Lifetime**: started by the registry on first use; stops once no channel has
//!   been joined for `room_idle_timeout`; a panic in a handler is caught at the task's
//!   top, its channels are unsubscribed and sent `phx_error` (phoenix.js rejoins,
//!   which starts the room again), and no other room notices.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::ws::Utf8Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, StreamExt};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};

use super::registry::Shared;
use super::{ChatError, Message, MessageBody, PAGE, Role, Room, mentioned, user_json, user_topic};
use crate::accounts::User;
use crate::presence::{self, Diff, PhxRef, Presences};
use crate::pubsub::{SocketHandle, SubId};
use crate::store::StoreError;
use crate::uploads::Upload;
use crate::wire::{self, Vsn, events};

/// Requests to a room actor.
pub(super) enum Cmd {
    Join {
        join_id: u64,
        join_ref: Option<Box<str>>,
        user: Option<User>,
        socket: SocketHandle,
        vsn: Vsn,
        reply: oneshot::Sender<Result<Joined, ChatError>>,
    },
    Leave {
        join_id: u64,
    },
    Post {
        user: User,
        body: MessageBody,
        attachment: Option<Upload>,
        reply: oneshot::Sender<Result<i64, ChatError>>,
    },
    Delete {
        user: User,
        id: i64,
        reply: oneshot::Sender<Result<(), ChatError>>,
    },
    Typing {
        user: User,
        join_id: u64,
    },
    Changed,
    Deleted,
    /// Another node posted or deleted a message here: `recent` is read again before the
    /// next join.
    Stale,
    /// The other nodes may have taken this one for dead: its presences here are
    /// broadcast again as joins (phoenix.js applies a join it holds already as a no-op).
    Announce,
    Crash {
        reply: oneshot::Sender<Result<(), ChatError>>,
    },
}

/// What a joining channel is given.
#[derive(Debug)]
pub struct Joined {
    pub room_id: i64,
    /// The join reply: `{"messages": [… oldest → newest]}`.
    pub response: Value,
    /// The `presence_state` payload pushed after the reply.
    pub presence: Value,
    /// Set when the room closes this channel on its own (`phx_close`: the room was
    /// deleted, or the user may no longer read it); the socket then forgets the join.
    pub closed: Arc<AtomicBool>,
}

/// Room events sent from here.
mod event {
    pub const NEW_MESSAGE: &str = "new_message";
    pub const MESSAGE_DELETED: &str = "message_deleted";
    pub const USER_TYPING: &str = "user_typing";
    pub const USER_STOPPED_TYPING: &str = "user_stopped_typing";
    pub const ROOM_DELETED: &str = "room_deleted";
    pub const NOTIFICATION: &str = "notification";
}

/// A channel joined to the room.
struct Sub {
    /// The channel's join ref, for the `phx_close` that ends it from here.
    join_ref: Option<Box<str>>,
    closed: Arc<AtomicBool>,
    user: Option<User>,
    socket: SocketHandle,
    vsn: Vsn,
    sub: SubId,
    /// The channel's presence meta (signed-in users only; anonymous readers are not
    /// shown).
    phx_ref: Option<PhxRef>,
    typing: bool,
}

struct Actor {
    shared: Arc<Shared>,
    slug: String,
    topic: String,
    room: Room,
    members: HashMap<i64, Role>,
    /// Members by username, for mentions.
    usernames: HashMap<String, i64>,
    /// The last `PAGE` messages, oldest first.
    recent: VecDeque<Message>,
    /// Another node changed the room's messages since `recent` was read (a cluster).
    recent_stale: bool,
    subs: HashMap<u64, Sub>,
    presences: Presences,
    /// Typing users and when they stop counting as typing.
    typing: HashMap<i64, (User, Instant)>,
    /// Since when no channel is joined.
    idle_since: Option<Instant>,
    /// Messages queued for the store's writer, in the order they were posted; each is
    /// broadcast when its commit comes back, so the room keeps serving meanwhile and a
    /// hot room's messages share transactions.
    posting: FuturesOrdered<Posting>,
    /// In a cluster: when the other nodes' copy of this room's presences was last
    /// written (it is written again every [`PRESENCE_REFRESH`] while anyone is here).
    replicated_at: std::cell::Cell<Instant>,
}

/// How often a room with presences writes their copy for the other nodes again, even
/// unchanged: a broker that lost it (restarted empty) has it back within this long.
const PRESENCE_REFRESH: std::time::Duration = std::time::Duration::from_secs(10);

/// A message on its way to the database, with its sender's answer.
type Posting = BoxFuture<'static, (Result<Message, StoreError>, oneshot::Sender<Result<i64, ChatError>>)>;

/// Whether the actor goes on after a command.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

pub(super) fn spawn(shared: Arc<Shared>, slug: String, generation: u64, rx: mpsc::Receiver<Cmd>) {
    tokio::spawn(run(shared, slug, generation, rx));
}

async fn run(shared: Arc<Shared>, slug: String, generation: u64, mut rx: mpsc::Receiver<Cmd>) {
    let mut actor = match Actor::load(shared.clone(), &slug).await {
        Ok(Some(actor)) => actor,
        Ok(None) => {
            shared.evict(&slug, generation, &mut rx);
            refuse_all(&mut rx, ChatError::Unauthorized);
            return;
        }
        Err(err) => {
            tracing::error!(%err, room = %slug, "cannot load room");
            shared.evict(&slug, generation, &mut rx);
            refuse_all(&mut rx, ChatError::Internal);
            return;
        }
    };
    tracing::debug!(room = %slug, generation, "room started");
    let served = AssertUnwindSafe(actor.serve(generation, &mut rx)).catch_unwind().await;
    if served.is_err() {
        tracing::error!(room = %slug, generation, "room actor panicked; it restarts on next use");
        shared.evict(&slug, generation, &mut rx);
        // Their callers see `Unavailable` when the reply senders drop here.
        while rx.try_recv().is_ok() {}
        actor.crashed();
    }
}

/// Answers every queued command with `err` (the room could not be started).
fn refuse_all(rx: &mut mpsc::Receiver<Cmd>, err: ChatError) {
    while let Ok(cmd) = rx.try_recv() {
        match cmd {
            Cmd::Join { reply, .. } => drop(reply.send(Err(err.clone()))),
            Cmd::Post { reply, .. } => drop(reply.send(Err(err.clone()))),
            Cmd::Delete { reply, .. } | Cmd::Crash { reply } => drop(reply.send(Err(err.clone()))),
            Cmd::Leave { .. } | Cmd::Typing { .. } | Cmd::Changed | Cmd::Deleted | Cmd::Stale | Cmd::Announce => {}
        }
    }
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Actor {
    async fn load(shared: Arc<Shared>, slug: &str) -> Result<Option<Self>, StoreError> {
        let store = &shared.deps.store;
        let Some(room) = store.room_by_slug(slug).await? else { return Ok(None) };
        let recent = store.messages_before(room.id, None, PAGE).await?.into();
        let mut actor = Actor {
            topic: room.topic(),
            slug: slug.to_owned(),
            room,
            members: HashMap::new(),
            usernames: HashMap::new(),
            recent,
            recent_stale: false,
            subs: HashMap::new(),
            presences: Presences::new(),
            typing: HashMap::new(),
            idle_since: Some(Instant::now()),
            posting: FuturesOrdered::new(),
            replicated_at: std::cell::Cell::new(Instant::now()),
            shared,
        };
        actor.load_members().await?;
        Ok(Some(actor))
    }

    async fn load_members(&mut self) -> Result<(), StoreError> {
        let members = self.shared.deps.store.room_members(self.room.id).await?;
        self.members = members.iter().map(|m| (m.user.id, m.role)).collect();
        self.usernames = members.into_iter().map(|m| (m.user.username, m.user.id)).collect();
        Ok(())
    }

    async fn serve(&mut self, generation: u64, rx: &mut mpsc::Receiver<Cmd>) {
        let config = self.shared.deps.config;
        let shutdown = self.shared.deps.shutdown.clone();
        loop {
            let typing_due = self.typing.values().map(|(_, at)| *at).min();
            // Never idle while messages are on their way to the database.
            let idle_due = self.idle_since.filter(|_| self.posting.is_empty()).map(|t| t + config.room_idle_timeout);
            let refresh_due = (self.shared.deps.replica.is_some() && !self.presences.is_empty())
                .then(|| self.replicated_at.get() + PRESENCE_REFRESH);
            tokio::select! {
                Some((stored, reply)) = self.posting.next(), if !self.posting.is_empty() => {
                    self.answer_posted(stored, reply);
                }
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { return };
                    if self.handle(cmd).await == Flow::Stop {
                        self.shared.evict(&self.slug, generation, rx);
                        refuse_all(rx, ChatError::Unauthorized);
                        return;
                    }
                }
                () = sleep_until_some(typing_due) => self.expire_typing(Instant::now()),
                () = sleep_until_some(refresh_due) => self.replicate_presences(),
                () = sleep_until_some(idle_due) => {
                    if self.shared.retire(&self.slug, generation, rx) {
                        tracing::debug!(room = %self.slug, generation, "room stopped (idle)");
                        return;
                    }
                    // A command is queued: handle it, then wait a whole timeout again.
                    self.idle_since = Some(Instant::now());
                }
                () = shutdown.cancelled() => {
                    self.shared.evict(&self.slug, generation, rx);
                    return;
                }
            }
        }
    }

    async fn handle(&mut self, cmd: Cmd) -> Flow {
        match cmd {
            Cmd::Join { join_id, join_ref, user, socket, vsn, reply } => {
                if self.recent_stale {
                    self.reload_recent().await;
                }
                self.join(join_id, join_ref, user, socket, vsn, reply)
            }
            Cmd::Leave { join_id } => self.remove(join_id),
            Cmd::Post { user, body, attachment, reply } => self.post(user, body, attachment, reply),
            Cmd::Delete { user, id, reply } => {
                // Messages posted before the delete are settled first: the refill of
                // `recent` from the store must not race their own arrival there.
                while let Some((stored, reply)) = self.posting.next().await {
                    self.answer_posted(stored, reply);
                }
                let deleted = self.delete(&user, id).await;
                let _ = reply.send(deleted);
            }
            Cmd::Typing { user, join_id } => self.typing(user, join_id),
            Cmd::Changed => return self.reload().await,
            Cmd::Stale => self.recent_stale = true,
            Cmd::Announce => {
                if !self.presences.is_empty() {
                    let diff = json!({ "joins": self.presences.state(), "leaves": {} });
                    self.shared.deps.pubsub.broadcast(&self.topic, presence::events::DIFF, &diff);
                    self.replicate_presences();
                }
            }
            Cmd::Deleted => {
                self.close_room();
                return Flow::Stop;
            }
            Cmd::Crash { reply } => {
                drop(reply);
                panic!("room {} asked to crash (debug crash hook)", self.slug);
            }
        }
        Flow::Continue
    }

    fn may_read(&self, user: Option<&User>) -> bool {
        !self.room.private || user.is_some_and(|u| self.members.contains_key(&u.id))
    }

    fn join(
        &mut self,
        join_id: u64,
        join_ref: Option<Box<str>>,
        user: Option<User>,
        socket: SocketHandle,
        vsn: Vsn,
        reply: oneshot::Sender<Result<Joined, ChatError>>,
    ) {
        if !self.may_read(user.as_ref()) {
            let _ = reply.send(Err(ChatError::Unauthorized));
            return;
        }
        // A re-join from the same socket replaces its earlier join here; the session
        // leaves that one right after, and finds it gone.
        let earlier: Vec<u64> = self.subs.iter().filter(|(_, s)| s.socket.id == socket.id).map(|(id, _)| *id).collect();
        for id in earlier {
            self.remove(id);
        }
        let phx_ref = user.as_ref().map(|u| {
            let mut meta = Map::new();
            meta.insert("username".into(), json!(u.username));
            meta.insert("online_at".into(), json!(chrono::Utc::now().timestamp()));
            meta.insert("typing".into(), json!(false));
            let (phx_ref, diff) = self.presences.track(&u.id.to_string(), meta);
            // Broadcast before subscribing: the joiner learns of itself from the state.
            self.broadcast_diff(&diff);
            phx_ref
        });
        let tag = user.as_ref().map(|u| u.id);
        let sub = self.shared.deps.pubsub.subscribe_as(&self.topic, vsn, socket.clone(), tag);
        let closed = Arc::new(AtomicBool::new(false));
        let entry = Sub { join_ref, closed: closed.clone(), user, socket, vsn, sub, phx_ref, typing: false };
        self.subs.insert(join_id, entry);
        self.idle_since = None;
        let messages: Vec<Value> = self.recent.iter().map(Message::to_json).collect();
        let joined = Joined {
            room_id: self.room.id,
            response: json!({ "messages": messages }),
            presence: self.presences.state(),
            closed,
        };
        if reply.send(Ok(joined)).is_err() {
            // The channel went away while joining.
            self.remove(join_id);
        }
    }

    /// Drops a channel: unsubscribes it, untracks its presence, and stops the user's
    /// typing when it was their last channel here.
    fn remove(&mut self, join_id: u64) {
        let Some(sub) = self.subs.remove(&join_id) else { return };
        self.shared.deps.pubsub.unsubscribe(&self.topic, sub.sub);
        if let (Some(user), Some(phx_ref)) = (&sub.user, sub.phx_ref) {
            if let Some(diff) = self.presences.untrack(&user.id.to_string(), phx_ref) {
                self.broadcast_diff(&diff);
            }
            let still_here = self.subs.values().any(|s| s.user.as_ref().is_some_and(|u| u.id == user.id));
            if !still_here {
                self.stop_typing(user.id);
            }
        }
        if self.subs.is_empty() {
            self.idle_since = Some(Instant::now());
        }
    }

    /// Queues a message for the writer; `posted` finishes it once committed.
    fn post(
        &mut self,
        user: User,
        body: MessageBody,
        attachment: Option<Upload>,
        reply: oneshot::Sender<Result<i64, ChatError>>,
    ) {
        if !self.may_read(Some(&user)) {
            let _ = reply.send(Err(ChatError::Unauthorized));
            return;
        }
        match self.shared.deps.writer.insert_message(self.room.id, &user, body.as_str(), attachment) {
            Ok(stored) => self.posting.push_back(Box::pin(async move { (stored.await, reply) })),
            Err(err) => {
                let _ = reply.send(Err(store_error(&self.slug, err, "cannot store message")));
            }
        }
    }

    /// Settles a posted message and answers its sender: alone at once; in a cluster
    /// once the broker took the broadcast, so an acknowledged message is not lost with
    /// this node (the room goes on meanwhile).
    fn answer_posted(&mut self, stored: Result<Message, StoreError>, reply: oneshot::Sender<Result<i64, ChatError>>) {
        let answer = self.posted(stored);
        let pubsub = &self.shared.deps.pubsub;
        if answer.is_ok() && pubsub.is_clustered() {
            let pubsub = pubsub.clone();
            tokio::spawn(async move {
                pubsub.flushed().await;
                let _ = reply.send(answer);
            });
        } else {
            let _ = reply.send(answer);
        }
    }

    /// A posted message came back from the writer: broadcast it, end its author's
    /// typing, notify mentions, keep it among the recent ones; its id for the sender.
    fn posted(&mut self, stored: Result<Message, StoreError>) -> Result<i64, ChatError> {
        let message = stored.map_err(|err| store_error(&self.slug, err, "cannot store message"))?;
        let payload = message.to_json();
        self.shared.deps.pubsub.broadcast(&self.topic, event::NEW_MESSAGE, &payload);
        self.stop_typing(message.user.id);
        self.notify_mentions(&message);
        self.messages_changed();
        let id = message.id;
        self.recent.push_back(message);
        while self.recent.len() > PAGE {
            self.recent.pop_front();
        }
        Ok(id)
    }

    /// `notification` on `user:<id>` for each member mentioned (not the author).
    fn notify_mentions(&self, message: &Message) {
        for name in mentioned(&message.body) {
            let Some(&user_id) = self.usernames.get(&name) else { continue };
            if user_id == message.user.id {
                continue;
            }
            let payload = json!({
                "type": "mention",
                "room": self.slug,
                "message_id": message.id,
                "from": user_json(&message.user),
            });
            self.shared.deps.pubsub.broadcast(&user_topic(user_id), event::NOTIFICATION, &payload);
        }
    }

    async fn delete(&mut self, user: &User, id: i64) -> Result<(), ChatError> {
        let store = self.shared.deps.store.clone();
        let slug = self.slug.clone();
        let internal = |err| store_error(&slug, err, "cannot delete message");
        let author = store.message_author(self.room.id, id).await.map_err(internal)?;
        let author = author.ok_or(ChatError::MessageNotFound)?;
        if author != user.id && self.members.get(&user.id) != Some(&Role::Admin) {
            return Err(ChatError::Forbidden);
        }
        if !self.shared.deps.writer.delete_message(self.room.id, id).await.map_err(internal)? {
            return Err(ChatError::MessageNotFound);
        }
        if self.recent.iter().any(|m| m.id == id) {
            // Refill from the store so a join still gets the last `PAGE` messages.
            match store.messages_before(self.room.id, None, PAGE).await {
                Ok(page) => self.recent = page.into(),
                Err(_) => self.recent.retain(|m| m.id != id),
            }
        }
        self.shared.deps.pubsub.broadcast(&self.topic, event::MESSAGE_DELETED, &json!({"id": id}));
        self.messages_changed();
        Ok(())
    }

    /// Tells the other nodes' actors of this room (a cluster) that its messages changed.
    fn messages_changed(&self) {
        let payload = json!({ "slug": self.slug });
        self.shared.deps.pubsub.signal_others(super::registry::NODES_TOPIC, super::registry::MESSAGES, &payload);
    }

    /// Reads the last `PAGE` messages again (another node changed them).
    async fn reload_recent(&mut self) {
        match self.shared.deps.store.messages_before(self.room.id, None, PAGE).await {
            Ok(page) => {
                self.recent = page.into();
                self.recent_stale = false;
            }
            Err(err) => tracing::warn!(%err, room = %self.slug, "cannot read the room's recent messages"),
        }
    }

    fn typing(&mut self, user: User, join_id: u64) {
        if !self.may_read(Some(&user)) {
            return;
        }
        let due = Instant::now() + self.shared.deps.config.typing_timeout;
        let payload = json!({ "user": user_json(&user) });
        let user_id = user.id;
        if self.typing.insert(user_id, (user, due)).is_none() {
            self.push_to_others(user_id, event::USER_TYPING, &payload);
        }
        if self.subs.get(&join_id).is_some_and(|s| s.user.as_ref().is_some_and(|u| u.id == user_id)) {
            self.set_typing_meta(join_id, true);
        }
    }

    fn expire_typing(&mut self, now: Instant) {
        let due: Vec<i64> = self.typing.iter().filter(|(_, (_, at))| *at <= now).map(|(id, _)| *id).collect();
        for user_id in due {
            self.stop_typing(user_id);
        }
    }

    /// Ends `user_id`'s typing, if they were: `user_stopped_typing` to the others and
    /// `typing: false` in the metas that said otherwise.
    fn stop_typing(&mut self, user_id: i64) {
        let Some((user, _)) = self.typing.remove(&user_id) else { return };
        self.push_to_others(user_id, event::USER_STOPPED_TYPING, &json!({ "user": user_json(&user) }));
        let tabs: Vec<u64> = self
            .subs
            .iter()
            .filter(|(_, s)| s.typing && s.user.as_ref().is_some_and(|u| u.id == user_id))
            .map(|(id, _)| *id)
            .collect();
        for join_id in tabs {
            self.set_typing_meta(join_id, false);
        }
    }

    /// Updates the `typing` field of a channel's presence meta (a `phx_ref_prev` diff).
    fn set_typing_meta(&mut self, join_id: u64, typing: bool) {
        let Some(sub) = self.subs.get_mut(&join_id) else { return };
        let (Some(user), Some(phx_ref)) = (&sub.user, sub.phx_ref) else { return };
        if sub.typing == typing {
            return;
        }
        let updated = self.presences.update_with(&user.id.to_string(), phx_ref, |m| {
            m.insert("typing".into(), json!(typing));
        });
        if let Some((new_ref, diff)) = updated {
            sub.phx_ref = Some(new_ref);
            sub.typing = typing;
            self.broadcast_diff(&diff);
        }
    }

    /// Sends an event to every channel on the room's topic, on every node, except those
    /// of `except_user`: a signal, so neither numbered nor kept for recovery.
    fn push_to_others<P: Serialize>(&self, except_user: i64, event: &str, payload: &P) {
        self.shared.deps.pubsub.signal(&self.topic, event, payload, Some(except_user));
    }

    /// `presence_diff`, with the topic's `seq` like every broadcast (phoenix.js reads
    /// only `joins` and `leaves`).
    fn broadcast_diff(&self, diff: &Diff) {
        self.shared.deps.pubsub.broadcast(&self.topic, presence::events::DIFF, diff);
        self.replicate_presences();
    }

    /// In a cluster: writes the copy of this room's presences the other nodes read for
    /// their joins' `presence_state`.
    fn replicate_presences(&self) {
        if let Some(replica) = &self.shared.deps.replica {
            replica.put(&self.topic, &self.presences.state());
            self.replicated_at.set(Instant::now());
        }
    }

    /// The room's record or membership changed.
    async fn reload(&mut self) -> Flow {
        match self.shared.deps.store.room_by_slug(&self.slug).await {
            Ok(Some(room)) if room.id == self.room.id => self.room = room,
            Ok(_) => {
                self.close_room();
                return Flow::Stop;
            }
            Err(err) => tracing::warn!(%err, room = %self.slug, "cannot reload room"),
        }
        if let Err(err) = self.load_members().await {
            tracing::warn!(%err, room = %self.slug, "cannot reload room members");
        }
        self.close_unreadable();
        Flow::Continue
    }

    /// Channels whose user may no longer read the room (it turned private, or they
    /// left it) are dropped and sent `phx_close`, which phoenix.js takes as final; the
    /// socket forgets them (a later push gets `unmatched topic`).
    fn close_unreadable(&mut self) {
        let gone: Vec<u64> =
            self.subs.iter().filter(|(_, s)| !self.may_read(s.user.as_ref())).map(|(id, _)| *id).collect();
        for join_id in gone {
            if let Some(sub) = self.subs.get(&join_id) {
                close_channel(sub, &self.topic);
            }
            self.remove(join_id);
        }
    }

    /// The room is gone: its channels hear `room_deleted`, then are closed
    /// (`phx_close`) and unsubscribed. Each node's actor tells its own channels (in a
    /// cluster every node's actor is told the room is gone), so none hears it twice.
    fn close_room(&mut self) {
        let payload = json!({ "slug": self.slug });
        for sub in self.subs.values() {
            push_frame(sub, wire::encode_broadcast(sub.vsn, &self.topic, event::ROOM_DELETED, &payload));
        }
        for (_, sub) in self.subs.drain() {
            self.shared.deps.pubsub.unsubscribe(&self.topic, sub.sub);
            close_channel(&sub, &self.topic);
        }
    }

    /// After a panic: every channel is unsubscribed and sent `phx_error`, so clients
    /// rejoin (starting a fresh actor) instead of listening to a room that forgot them.
    fn crashed(&mut self) {
        let payload = json!({});
        for (_, sub) in self.subs.drain() {
            self.shared.deps.pubsub.unsubscribe(&self.topic, sub.sub);
            push_frame(&sub, wire::encode_text(sub.vsn, None, None, &self.topic, events::ERROR, &payload));
        }
    }
}

/// Ends one channel from the room's side: marks it closed for its socket, then sends
/// `[jr, jr, topic, "phx_close", {}]` (as Phoenix does when a channel stops).
fn close_channel(sub: &Sub, topic: &str) {
    sub.closed.store(true, Ordering::Release);
    let jr = sub.join_ref.as_deref();
    push_frame(sub, wire::encode_text(sub.vsn, jr, jr, topic, events::CLOSE, &json!({})));
}

/// Queues a frame for one channel's socket (a full outbox marks it a slow consumer).
fn push_frame(sub: &Sub, text: String) {
    if let Err(TrySendError::Full(_)) = sub.socket.outbox.try_send(Arc::new(Utf8Bytes::from(text))) {
        sub.socket.slow.cancel();
    }
}

/// A store failure as the sender sees it: a full write queue or an unreachable database
/// is `Busy` (try again), anything else is logged and `Internal`.
fn store_error(slug: &str, err: StoreError, what: &str) -> ChatError {
    match err {
        err if err.is_unavailable() => ChatError::Busy,
        err => {
            tracing::error!(%err, room = %slug, "{what}");
            ChatError::Internal
        }
    }
}
