//! The protocol side of one connection: which channels it has joined and how each
//! client frame is answered (heartbeat, join, leave, pushes, bad frames). It produces
//! frames and a possible close; the socket task (`socket.rs`) does the IO. What each
//! channel does is in `channel.rs`.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use axum::extract::ws::Message;
use futures_util::FutureExt;
use serde::Serialize;
use serde_json::json;
use serde_json::value::RawValue;

use super::channel::{self, ChannelState, Ctx, Outcome};
use super::topics::{self, ChannelKind, JoinRefusal};
use crate::accounts::{Registration, User};
use crate::metrics::Metrics;
use crate::pubsub::{Since, SocketHandle, SubId};
use crate::ratelimit::Bucket;
use crate::state::AppState;
use crate::wire::{self, DecodeError, ErrorReason, InFrame, ReplyStatus, Vsn, events};

/// Close codes (RFC 6455). phoenix.js reconnects on anything but 1000.
pub(super) mod close_code {
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED: u16 = 1003;
    pub const POLICY_VIOLATION: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL: u16 = 1011;
    pub const RESTART: u16 = 1012;
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

struct Joined {
    join_ref: Option<Box<str>>,
    kind: ChannelKind,
    sub: Option<SubId>,
    state: ChannelState,
}

/// The channels a socket has joined, by topic. A plain vector sized to what is used:
/// most sockets join one or two topics, and a hash map's minimum table of several
/// `Joined` entries would cost hundreds of bytes on each of tens of thousands of
/// sockets. Lookups are linear over at most `max_channels` (100) entries.
#[derive(Default)]
struct JoinedChannels(Vec<(Box<str>, Joined)>);

impl JoinedChannels {
    fn position(&self, topic: &str) -> Option<usize> {
        self.0.iter().position(|(t, _)| &**t == topic)
    }

    fn get(&self, topic: &str) -> Option<&Joined> {
        self.position(topic).map(|i| &self.0[i].1)
    }

    fn contains_key(&self, topic: &str) -> bool {
        self.position(topic).is_some()
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn remove(&mut self, topic: &str) -> Option<Joined> {
        let i = self.position(topic)?;
        let (_, joined) = self.0.swap_remove(i);
        if self.0.is_empty() {
            self.0 = Vec::new();
        }
        Some(joined)
    }

    /// Inserts or replaces. The first entry allocates room for exactly one.
    fn insert(&mut self, topic: Box<str>, joined: Joined) {
        if let Some(i) = self.position(&topic) {
            self.0[i].1 = joined;
            return;
        }
        if self.0.capacity() == 0 {
            self.0.reserve_exact(1);
        }
        self.0.push((topic, joined));
    }

    fn take_all(&mut self) -> Vec<(Box<str>, Joined)> {
        std::mem::take(&mut self.0)
    }
}

/// The user of a signed-in socket and its place among the live sockets of the
/// credential it connected with (`crate::accounts::LiveSockets`). Boxed in `Session`,
/// so an anonymous socket carries one null pointer for it.
pub(super) struct SignedIn {
    pub(super) user: User,
    pub(super) registration: Registration,
}

pub(super) struct Session {
    pub(super) state: AppState,
    vsn: Vsn,
    user: Option<Box<SignedIn>>,
    handle: SocketHandle,
    joined: JoinedChannels,
    /// Frames produced while handling one client message, written right after.
    pub(super) out: Vec<Message>,
    pub(super) close: Option<(u16, &'static str)>,
    /// An anonymous socket's budget for costly pushes, made at its first one.
    costly: Option<Box<Bucket>>,
}

impl Session {
    pub(super) fn new(state: AppState, vsn: Vsn, user: Option<Box<SignedIn>>, handle: SocketHandle) -> Self {
        Self { state, vsn, user, handle, joined: JoinedChannels::default(), out: Vec::new(), close: None, costly: None }
    }

    fn user(&self) -> Option<&User> {
        self.user.as_deref().map(|s| &s.user)
    }

    /// Whether the credential this socket connected with has been revoked.
    pub(super) fn revoked(&self) -> bool {
        self.user.as_ref().is_some_and(|s| s.registration.is_revoked())
    }

    pub(super) async fn handle_message(&mut self, msg: Message) {
        match msg {
            Message::Text(text) => self.handle_text(text.as_str()).await,
            Message::Binary(bytes) => self.handle_binary(&bytes),
            // Pings are answered by the WebSocket layer; a close is completed by it too.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}
        }
    }

    async fn handle_text(&mut self, text: &str) {
        match wire::decode_text(self.vsn, text) {
            Ok(frame) => self.dispatch(&frame).await,
            Err(DecodeError::NotJson(_)) => {
                // Like Phoenix: a frame that is not JSON cannot be answered.
                Metrics::add(&self.state.metrics.bad_frames, 1);
                self.close = Some((close_code::INTERNAL, "invalid frame"));
            }
            Err(DecodeError::BadShape { msg_ref: Some(msg_ref), join_ref, topic, .. }) => {
                Metrics::add(&self.state.metrics.bad_frames, 1);
                let topic = topic.unwrap_or_else(|| events::PHOENIX_TOPIC.to_owned());
                let response = ErrorReason::new("malformed message");
                self.reply(join_ref.as_deref(), Some(&msg_ref), &topic, ReplyStatus::Error, &response);
            }
            Err(DecodeError::BadShape { .. }) => {
                Metrics::add(&self.state.metrics.bad_frames, 1);
                self.close = Some((close_code::INTERNAL, "invalid frame"));
            }
        }
    }

    fn handle_binary(&mut self, bytes: &[u8]) {
        match wire::decode_binary_push(bytes) {
            Ok(push) => {
                let (jr, reason) = match self.joined.get(push.topic) {
                    None => (None, "unmatched topic"),
                    Some(j) => (j.join_ref.clone(), "binary payloads are not accepted on this topic"),
                };
                let response = ErrorReason::new(reason);
                self.reply(jr.as_deref(), Some(push.msg_ref), push.topic, ReplyStatus::Error, &response);
            }
            Err(_) => {
                Metrics::add(&self.state.metrics.bad_frames, 1);
                self.close = Some((close_code::UNSUPPORTED, "invalid binary frame"));
            }
        }
    }

    async fn dispatch(&mut self, frame: &InFrame<'_>) {
        let jr = frame.join_ref.as_deref();
        let msg_ref = frame.msg_ref.as_deref();
        let topic: &str = &frame.topic;
        if topic == events::PHOENIX_TOPIC && frame.event == events::HEARTBEAT {
            // Phoenix echoes the heartbeat's own join_ref, which phoenix.js leaves null.
            self.reply(jr, msg_ref, topic, ReplyStatus::Ok, &json!({}));
            return;
        }
        if !frame.payload_is_object() {
            self.reply(jr, msg_ref, topic, ReplyStatus::Error, &ErrorReason::new("payload must be a JSON object"));
            return;
        }
        if frame.event == events::JOIN {
            self.join(jr, msg_ref, topic, frame.payload).await;
            return;
        }
        let Some(current) = self.joined.get(topic) else {
            self.reply(None, msg_ref, topic, ReplyStatus::Error, &ErrorReason::new("unmatched topic"));
            return;
        };
        if current.state.closed() {
            // The server ended this channel (it was sent `phx_close`): like Phoenix,
            // whose channel process is gone, the topic is no longer joined.
            if let Some(joined) = self.joined.remove(topic) {
                self.release(topic, joined).await;
            }
            self.reply(None, msg_ref, topic, ReplyStatus::Error, &ErrorReason::new("unmatched topic"));
            return;
        }
        // A message for an earlier join of this topic is stale: Phoenix ignores it.
        if jr.is_some() && current.join_ref.as_deref() != jr {
            return;
        }
        let current_jr = current.join_ref.clone();
        if frame.event == events::LEAVE {
            self.leave(topic).await;
            self.reply(current_jr.as_deref(), msg_ref, topic, ReplyStatus::Ok, &json!({}));
            self.push_close(current_jr.as_deref(), topic);
            return;
        }
        if channel::costly(&current.kind, &frame.event)
            && let Err(wait) = self.spend_costly()
        {
            self.reply(current_jr.as_deref(), msg_ref, topic, ReplyStatus::Error, &channel::rate_limited(wait));
            return;
        }
        let Some(mut joined) = self.joined.remove(topic) else { return };
        let ctx = Ctx {
            state: &self.state,
            user: self.user(),
            join_ref: current_jr.as_deref(),
            socket: &self.handle,
            vsn: self.vsn,
        };
        let handled = AssertUnwindSafe(channel::handle_in(
            &ctx,
            &joined.kind,
            topic,
            &frame.event,
            frame.payload,
            &mut joined.state,
        ))
        .catch_unwind()
        .await;
        match handled {
            Ok(outcome) => {
                self.joined.insert(topic.into(), joined);
                match outcome {
                    Outcome::Reply(response) => {
                        self.reply(current_jr.as_deref(), msg_ref, topic, ReplyStatus::Ok, &response)
                    }
                    Outcome::Error(response) => {
                        self.reply(current_jr.as_deref(), msg_ref, topic, ReplyStatus::Error, &response)
                    }
                }
            }
            Err(_) => {
                // The channel failed, not the socket: drop that channel only and tell
                // the client, which rejoins it.
                Metrics::add(&self.state.metrics.channel_crashes, 1);
                self.release(topic, joined).await;
                let jr = current_jr.as_deref();
                let frame = wire::encode_text(self.vsn, jr, jr, topic, events::ERROR, &json!({}));
                self.out.push(Message::Text(frame.into()));
            }
        }
    }

    async fn join(&mut self, jr: Option<&str>, msg_ref: Option<&str>, topic: &str, payload: &RawValue) {
        let metrics = self.state.metrics.clone();
        let kind = match topics::route(topic, self.state.config.debug_topics) {
            Ok(kind) => kind,
            Err(refusal) => {
                Metrics::add(&metrics.join_errors, 1);
                match refusal {
                    JoinRefusal::Unmatched => {
                        self.reply(None, msg_ref, topic, ReplyStatus::Error, &ErrorReason::new("unmatched topic"))
                    }
                    JoinRefusal::Refused(reason) => {
                        self.reply(jr, msg_ref, topic, ReplyStatus::Error, &ErrorReason::new(reason))
                    }
                }
                return;
            }
        };
        self.forget_closed().await;
        let rejoin = self.joined.contains_key(topic);
        let max_channels = match self.user {
            Some(_) => self.state.config.socket.max_channels,
            None => self.state.config.anonymous.max_channels,
        };
        if !rejoin && self.joined.len() >= max_channels {
            Metrics::add(&metrics.join_errors, 1);
            self.reply(jr, msg_ref, topic, ReplyStatus::Error, &ErrorReason::new("too many channels joined"));
            return;
        }
        if channel::costly(&kind, events::JOIN)
            && let Err(wait) = self.spend_costly()
        {
            Metrics::add(&metrics.join_errors, 1);
            self.reply(jr, msg_ref, topic, ReplyStatus::Error, &channel::rate_limited(wait));
            return;
        }
        let since = match parse_since(payload) {
            Ok(since) => since,
            Err(reason) => {
                Metrics::add(&metrics.join_errors, 1);
                self.reply(jr, msg_ref, topic, ReplyStatus::Error, &ErrorReason::new(reason));
                return;
            }
        };
        let ctx = Ctx { state: &self.state, user: self.user(), join_ref: jr, socket: &self.handle, vsn: self.vsn };
        let granted = AssertUnwindSafe(channel::join(&ctx, &kind, topic, payload)).catch_unwind().await;
        let grant = match granted {
            Ok(Ok(grant)) => grant,
            Ok(Err(response)) => {
                Metrics::add(&metrics.join_errors, 1);
                self.reply(jr, msg_ref, topic, ReplyStatus::Error, &response);
                return;
            }
            Err(_) => {
                Metrics::add(&metrics.channel_crashes, 1);
                self.reply(jr, msg_ref, topic, ReplyStatus::Error, &ErrorReason::new("join crashed"));
                return;
            }
        };
        // A re-join replaces the old join: the new reply goes first, then the old join
        // is closed. An existing pub/sub subscription carries over, so no broadcast is
        // missed or doubled in between.
        let old = self.joined.remove(topic);
        let old_jr = old.as_ref().map(|o| o.join_ref.clone());
        let mut sub = None;
        if let Some(old) = old {
            sub = old.sub;
            let ctx = Ctx {
                state: &self.state,
                user: self.user(),
                join_ref: old.join_ref.as_deref(),
                socket: &self.handle,
                vsn: self.vsn,
            };
            channel::leave(&ctx, &old.kind, topic, old.state).await;
        }
        let mut response = grant.response;
        match (grant.subscribe, sub, since) {
            (true, old, Some(since)) => {
                // Recovery: subscribe afresh in the same critical section that reads the
                // history, so the missed events and the live stream join without a gap.
                if let Some(id) = old {
                    self.state.pubsub.unsubscribe(topic, id);
                }
                let subscribed =
                    self.state.pubsub.subscribe_since(topic, self.vsn, self.handle.clone(), since.as_ref()).await;
                match subscribed {
                    Ok((id, recovery)) => {
                        sub = Some(id);
                        response = serde_json::to_value(&recovery).unwrap_or_default();
                    }
                    Err(err) => {
                        // The old join is left already: the channel is not joined now,
                        // and the client's next join (phoenix.js retries) starts afresh.
                        tracing::warn!(%err, topic, "cannot read the topic's history");
                        Metrics::add(&metrics.join_errors, 1);
                        let reason = ErrorReason::new("the broker is unavailable; try again");
                        self.reply(jr, msg_ref, topic, ReplyStatus::Error, &reason);
                        if let Some(old_jr) = old_jr {
                            self.push_close(old_jr.as_deref(), topic);
                        }
                        return;
                    }
                }
            }
            (true, None, None) => sub = Some(self.state.pubsub.subscribe(topic, self.vsn, self.handle.clone())),
            (false, Some(id), _) => {
                self.state.pubsub.unsubscribe(topic, id);
                sub = None;
            }
            _ => {}
        }
        self.joined.insert(topic.into(), Joined { join_ref: jr.map(Box::from), kind, sub, state: grant.state });
        Metrics::add(&metrics.joins, 1);
        self.reply(jr, msg_ref, topic, ReplyStatus::Ok, &response);
        // The old join's close, unless it had the new one's join_ref: to that client
        // the close would read as the end of the join it just made.
        if let Some(old_jr) = old_jr
            && old_jr.as_deref() != jr
        {
            self.push_close(old_jr.as_deref(), topic);
        }
        for (event, payload) in &grant.pushes {
            let text = wire::encode_text(self.vsn, jr, None, topic, event, payload);
            self.out.push(Message::Text(text.into()));
        }
    }

    async fn leave(&mut self, topic: &str) {
        if let Some(joined) = self.joined.remove(topic) {
            self.release(topic, joined).await;
        }
    }

    /// Unsubscribes a channel and runs its cleanup.
    async fn release(&mut self, topic: &str, joined: Joined) {
        if let Some(sub) = joined.sub {
            self.state.pubsub.unsubscribe(topic, sub);
        }
        let ctx = Ctx {
            state: &self.state,
            user: self.user(),
            join_ref: joined.join_ref.as_deref(),
            socket: &self.handle,
            vsn: self.vsn,
        };
        channel::leave(&ctx, &joined.kind, topic, joined.state).await;
    }

    /// Drops the channels the server ended on its own, so they neither count against
    /// `max_channels` nor make a later join of their topic a re-join.
    async fn forget_closed(&mut self) {
        while let Some(topic) = self.joined.0.iter().find(|(_, j)| j.state.closed()).map(|(t, _)| t.clone()) {
            if let Some(joined) = self.joined.remove(&topic) {
                self.release(&topic, joined).await;
            }
        }
    }

    pub(super) async fn leave_all(&mut self) {
        let joined = self.joined.take_all();
        for (topic, joined) in joined {
            self.release(&topic, joined).await;
        }
    }

    /// Takes a token of an anonymous socket's budget for costly pushes
    /// (`AnonymousLimits::costly_pushes`); `Err(wait)` over it. Signed-in sockets answer
    /// to their user's limits instead, so this never refuses them.
    fn spend_costly(&mut self) -> Result<(), Duration> {
        let Some(rate) = self.state.config.anonymous.costly_pushes else { return Ok(()) };
        if self.user.is_some() {
            return Ok(());
        }
        let now = Instant::now();
        let spent = self.costly.get_or_insert_with(|| Box::new(Bucket::full(rate, now))).take(rate, now);
        if spent.is_err() {
            Metrics::add(&self.state.metrics.anonymous_refused, 1);
        }
        spent
    }

    fn reply<R: Serialize + ?Sized>(
        &mut self,
        jr: Option<&str>,
        msg_ref: Option<&str>,
        topic: &str,
        status: ReplyStatus,
        response: &R,
    ) {
        let text = wire::encode_reply(self.vsn, jr, msg_ref, topic, status, response);
        self.out.push(Message::Text(text.into()));
    }

    fn push_close(&mut self, jr: Option<&str>, topic: &str) {
        let text = wire::encode_text(self.vsn, jr, jr, topic, events::CLOSE, &json!({}));
        self.out.push(Message::Text(text.into()));
    }
}

/// The join parameter `since`: absent → `None`; present → `Some(position)`, where
/// `null` asks only for the topic's current epoch and seq (a fresh client's start).
fn parse_since(payload: &RawValue) -> Result<Option<Option<Since>>, &'static str> {
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(default, deserialize_with = "present")]
        since: Option<Option<Since>>,
    }
    fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<Since>>, D::Error> {
        serde::Deserialize::deserialize(d).map(Some)
    }
    serde_json::from_str::<Params>(payload.get())
        .map(|p| p.since)
        .map_err(|_| "invalid since: expected {\"seq\": N, \"epoch\": \"…\"}")
}
