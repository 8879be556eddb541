//! `room:<slug>`: a chat room's channel. Members may join, and anyone (signed in or
//! not) for a public room; the room's actor (`crate::chat`) checks that, subscribes the
//! socket and answers with the last 50 messages, then `presence_state` follows.
//!
//! Client events (each answered with a reply, errors as `{"reason": …}`):
//! - `new_msg {body, attachment_id?}` → `{id}`; the message is broadcast as
//!   `new_message`;
//! - `history {before}` → `{messages}`, the 50 before that message id;
//! - `delete_msg {id}` → `{}` for its author or a room admin; broadcast as
//!   `message_deleted`;
//! - `typing` → `{}`; the others hear `user_typing`, later `user_stopped_typing`;
//! - `debug_crash` (only with `Config::debug_topics`): makes the room's actor panic.
//!
//! Writing needs a signed-in user; messages and typing count against the user's rate
//! limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::channel::{ChannelState, Ctx, JoinGrant, Outcome, rate_limited, reason};
use crate::accounts::User;
use crate::chat::PAGE;
use crate::chat::send::{self, SendError};
use crate::presence;
use crate::ratelimit::Action;

/// A joined room channel: what the room's actor knows it by.
#[derive(Debug)]
pub struct RoomJoin {
    slug: String,
    room_id: i64,
    join_id: u64,
    /// Set by the room when it closed this channel (deleted, or no longer readable).
    closed: Arc<AtomicBool>,
}

impl RoomJoin {
    /// Whether the room closed this channel (and sent it `phx_close`).
    pub fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

pub async fn join(ctx: &Ctx<'_>, slug: &str) -> Result<JoinGrant, Value> {
    let rooms = &ctx.state.rooms;
    let (join_id, joined) =
        rooms.join(slug, ctx.join_ref, ctx.user.cloned(), ctx.socket.clone(), ctx.vsn).await.map_err(|e| e.reason())?;
    Ok(JoinGrant {
        response: joined.response,
        // The actor subscribed the socket together with the snapshot it replied with.
        subscribe: false,
        pushes: vec![(presence::events::STATE, rooms.presence_everywhere(slug, joined.presence).await)],
        state: ChannelState::Room(RoomJoin {
            slug: slug.to_owned(),
            room_id: joined.room_id,
            join_id,
            closed: joined.closed,
        }),
    })
}

pub async fn handle_in(ctx: &Ctx<'_>, event: &str, payload: &RawValue, state: &ChannelState) -> Outcome {
    let ChannelState::Room(room) = state else { return Outcome::Error(reason("unknown event")) };
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(payload.get()) else {
        return Outcome::Error(reason("payload must be a JSON object"));
    };
    let fields = Value::Object(fields);
    match event {
        "new_msg" => new_msg(ctx, room, &fields).await,
        "history" => history(ctx, room, &fields).await,
        "delete_msg" => delete_msg(ctx, room, &fields).await,
        "typing" => typing(ctx, room),
        "debug_crash" => match ctx.state.rooms.crash(&room.slug).await {
            Ok(()) => Outcome::Reply(json!({})),
            Err(err) => Outcome::Error(err.reason()),
        },
        _ => Outcome::Error(reason("unknown event")),
    }
}

pub fn leave(ctx: &Ctx<'_>, room: RoomJoin) {
    ctx.state.rooms.leave(&room.slug, room.join_id);
}

fn signed_in<'a>(ctx: &Ctx<'a>) -> Result<&'a User, Outcome> {
    ctx.user.ok_or_else(|| Outcome::Error(reason("unauthorized")))
}

/// An optional positive integer field; `Err` names the field when it is something else.
fn id_field(fields: &Value, name: &str) -> Result<Option<i64>, Outcome> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(id) if id > 0 => Ok(Some(id)),
            _ => Err(Outcome::Error(reason(&format!("{name} must be a positive integer")))),
        },
    }
}

async fn new_msg(ctx: &Ctx<'_>, room: &RoomJoin, fields: &Value) -> Outcome {
    let user = match signed_in(ctx) {
        Ok(user) => user,
        Err(outcome) => return outcome,
    };
    // The one sending path, shared with `POST /api/rooms/<slug>/messages`.
    match send::send(ctx.state, &room.slug, user, send::Outgoing::from_fields(fields)).await {
        Ok(id) => Outcome::Reply(json!({ "id": id })),
        Err(SendError::RateLimited(wait)) => Outcome::Error(rate_limited(wait)),
        Err(SendError::Room(err)) => Outcome::Error(err.reason()),
        Err(err) => Outcome::Error(reason(&err.to_string())),
    }
}

async fn history(ctx: &Ctx<'_>, room: &RoomJoin, fields: &Value) -> Outcome {
    let before = match id_field(fields, "before") {
        Ok(before) => before,
        Err(outcome) => return outcome,
    };
    // Access may have changed since the join (the room turned private, the user left).
    match may_read(ctx, &room.slug).await {
        Ok(true) => {}
        Ok(false) => return Outcome::Error(reason("unauthorized")),
        Err(err) => {
            tracing::error!(%err, "cannot check room access");
            return Outcome::Error(reason("internal error"));
        }
    }
    match ctx.state.store.messages_before(room.room_id, before, PAGE).await {
        Ok(page) => {
            let messages: Vec<Value> = page.iter().map(crate::chat::Message::to_json).collect();
            Outcome::Reply(json!({ "messages": messages }))
        }
        Err(err) => {
            tracing::error!(%err, "cannot read room history");
            Outcome::Error(reason("internal error"))
        }
    }
}

/// Whether the channel's user may read the room now.
async fn may_read(ctx: &Ctx<'_>, slug: &str) -> Result<bool, crate::store::StoreError> {
    let store = &ctx.state.store;
    let Some(room) = store.room_by_slug(slug).await? else { return Ok(false) };
    Ok(match (room.private, ctx.user) {
        (false, _) => true,
        (true, None) => false,
        (true, Some(user)) => store.room_role(room.id, user.id).await?.is_some(),
    })
}

async fn delete_msg(ctx: &Ctx<'_>, room: &RoomJoin, fields: &Value) -> Outcome {
    let user = match signed_in(ctx) {
        Ok(user) => user,
        Err(outcome) => return outcome,
    };
    let id = match id_field(fields, "id") {
        Ok(Some(id)) => id,
        Ok(None) => return Outcome::Error(reason("id must be a positive integer")),
        Err(outcome) => return outcome,
    };
    match ctx.state.rooms.delete_message(&room.slug, user.clone(), id).await {
        Ok(()) => Outcome::Reply(json!({})),
        Err(err) => Outcome::Error(err.reason()),
    }
}

fn typing(ctx: &Ctx<'_>, room: &RoomJoin) -> Outcome {
    let user = match signed_in(ctx) {
        Ok(user) => user,
        Err(outcome) => return outcome,
    };
    if let Err(wait) = ctx.state.limits.check(Action::Typing, user.id) {
        return Outcome::Error(rate_limited(wait));
    }
    match ctx.state.rooms.typing(&room.slug, user.clone(), room.join_id) {
        Ok(()) => Outcome::Reply(json!({})),
        Err(err) => Outcome::Error(err.reason()),
    }
}
