//! The protocol side of one connection: which channels it has joined and how each
//! client frame is answered (heartbeat, join, leave, pushes, bad frames). It produces
//! frames and a possible close; the socket task (`socket.rs`) does the IO.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use axum::extract::ws::Message;
use serde::Serialize;
use serde_json::json;

use super::topics::{self, ChannelKind, JoinRefusal};
use crate::accounts::User;
use crate::metrics::Metrics;
use crate::pubsub::{SocketHandle, SubId};
use crate::state::AppState;
use crate::wire::{self, DecodeError, ErrorReason, InFrame, ReplyStatus, Vsn, events};

/// Close codes (RFC 6455). phoenix.js reconnects on anything but 1000.
pub(super) mod close_code {
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED: u16 = 1003;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL: u16 = 1011;
    pub const RESTART: u16 = 1012;
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

struct Joined {
    join_ref: Option<String>,
    kind: ChannelKind,
    sub: Option<SubId>,
}

pub(super) struct Session {
    pub(super) state: AppState,
    vsn: Vsn,
    #[allow(dead_code)] // identifies the user to channels that need it (next issues)
    user: Option<User>,
    handle: SocketHandle,
    joined: HashMap<String, Joined>,
    /// Frames produced while handling one client message, written right after.
    pub(super) out: Vec<Message>,
    pub(super) close: Option<(u16, &'static str)>,
}

impl Session {
    pub(super) fn new(state: AppState, vsn: Vsn, user: Option<User>, handle: SocketHandle) -> Self {
        Self { state, vsn, user, handle, joined: HashMap::new(), out: Vec::new(), close: None }
    }

    pub(super) fn handle_message(&mut self, msg: Message) {
        match msg {
            Message::Text(text) => self.handle_text(text.as_str()),
            Message::Binary(bytes) => self.handle_binary(&bytes),
            // Pings are answered by the WebSocket layer; a close is completed by it too.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}
        }
    }

    fn handle_text(&mut self, text: &str) {
        match wire::decode_text(self.vsn, text) {
            Ok(frame) => self.dispatch(&frame),
            Err(DecodeError::NotJson(_)) => {
                // Like Phoenix: a frame that is not JSON cannot be answered.
                Metrics::add(&self.state.metrics.bad_frames, 1);
                self.close = Some((close_code::INTERNAL, "invalid frame"));
            }
            Err(DecodeError::BadShape { msg_ref: Some(msg_ref), join_ref, topic, .. }) => {
                Metrics::add(&self.state.metrics.bad_frames, 1);
                let topic = topic.unwrap_or_else(|| events::PHOENIX_TOPIC.to_owned());
                self.reply(
                    join_ref.as_deref(),
                    Some(&msg_ref),
                    &topic,
                    ReplyStatus::Error,
                    &ErrorReason::new("malformed message"),
                );
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
                let current = self.joined.get(push.topic).map(|j| j.join_ref.clone());
                match current {
                    None => self.reply(
                        None,
                        Some(push.msg_ref),
                        push.topic,
                        ReplyStatus::Error,
                        &ErrorReason::new("unmatched topic"),
                    ),
                    Some(jr) => self.reply(
                        jr.as_deref(),
                        Some(push.msg_ref),
                        push.topic,
                        ReplyStatus::Error,
                        &ErrorReason::new("binary payloads are not accepted on this topic"),
                    ),
                }
            }
            Err(_) => {
                Metrics::add(&self.state.metrics.bad_frames, 1);
                self.close = Some((close_code::UNSUPPORTED, "invalid binary frame"));
            }
        }
    }

    fn dispatch(&mut self, frame: &InFrame<'_>) {
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
            self.join(jr, msg_ref, topic);
            return;
        }
        let Some(current) = self.joined.get(topic) else {
            self.reply(None, msg_ref, topic, ReplyStatus::Error, &ErrorReason::new("unmatched topic"));
            return;
        };
        // A message for an earlier join of this topic is stale: Phoenix ignores it.
        if jr.is_some() && current.join_ref.as_deref() != jr {
            return;
        }
        let current_jr = current.join_ref.clone();
        let kind = current.kind;
        if frame.event == events::LEAVE {
            self.leave(topic);
            self.reply(current_jr.as_deref(), msg_ref, topic, ReplyStatus::Ok, &json!({}));
            self.push_close(current_jr.as_deref(), topic);
            return;
        }
        match catch_unwind(AssertUnwindSafe(|| handle_in(kind, &frame.event))) {
            Ok(Ok(response)) => self.reply(current_jr.as_deref(), msg_ref, topic, ReplyStatus::Ok, &response),
            Ok(Err(reason)) => {
                self.reply(current_jr.as_deref(), msg_ref, topic, ReplyStatus::Error, &ErrorReason::new(reason))
            }
            Err(_) => {
                // The channel failed, not the socket: drop that channel only and tell
                // the client, which rejoins it.
                Metrics::add(&self.state.metrics.channel_crashes, 1);
                self.leave(topic);
                let frame = wire::encode_text(
                    self.vsn,
                    current_jr.as_deref(),
                    current_jr.as_deref(),
                    topic,
                    events::ERROR,
                    &json!({}),
                );
                self.out.push(Message::Text(frame.into()));
            }
        }
    }

    fn join(&mut self, jr: Option<&str>, msg_ref: Option<&str>, topic: &str) {
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
        if let Some(existing) = self.joined.get_mut(topic) {
            // Re-join: the new join's reply first, then close the old join. The pub/sub
            // subscription carries over, so no broadcast is missed in between.
            let old = std::mem::replace(&mut existing.join_ref, jr.map(str::to_owned));
            Metrics::add(&metrics.joins, 1);
            self.reply(jr, msg_ref, topic, ReplyStatus::Ok, &json!({}));
            self.push_close(old.as_deref(), topic);
            return;
        }
        if self.joined.len() >= self.state.config.socket.max_channels {
            Metrics::add(&metrics.join_errors, 1);
            self.reply(jr, msg_ref, topic, ReplyStatus::Error, &ErrorReason::new("too many channels joined"));
            return;
        }
        let sub = match kind {
            ChannelKind::BookmarkStream => Some(self.state.pubsub.subscribe(topic, self.vsn, self.handle.clone())),
            ChannelKind::Debug => None,
        };
        self.joined.insert(topic.to_owned(), Joined { join_ref: jr.map(str::to_owned), kind, sub });
        Metrics::add(&metrics.joins, 1);
        self.reply(jr, msg_ref, topic, ReplyStatus::Ok, &json!({}));
    }

    fn leave(&mut self, topic: &str) {
        if let Some(Joined { sub: Some(sub), .. }) = self.joined.remove(topic) {
            self.state.pubsub.unsubscribe(topic, sub);
        }
    }

    pub(super) fn leave_all(&mut self) {
        for (topic, joined) in self.joined.drain() {
            if let Some(sub) = joined.sub {
                self.state.pubsub.unsubscribe(&topic, sub);
            }
        }
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

/// Client events on a joined channel. Bookmark streams are receive-only; a `debug:*`
/// channel echoes `ping` and fails on `crash`.
fn handle_in(kind: ChannelKind, event: &str) -> Result<serde_json::Value, &'static str> {
    match (kind, event) {
        (_, "ping") => Ok(json!({})),
        (ChannelKind::Debug, "crash") => panic!("debug channel asked to crash"),
        _ => Err("unknown event"),
    }
}
