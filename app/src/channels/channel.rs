//! What a joined channel does, per kind of topic: whether a join is allowed and what
//! it answers, which client events it handles, and what it cleans up on leave. The
//! session (`session.rs`) owns the protocol around it; each kind's logic lives in its
//! own file (`streams.rs`, `debug.rs`, …) and is reached through these three calls.

use serde_json::Value;
use serde_json::value::RawValue;

use super::topics::ChannelKind;
use super::{debug, likes, lobby, page, room, streams, user};
use crate::accounts::User;
use crate::pubsub::SocketHandle;
use crate::state::AppState;
use crate::wire::Vsn;

/// What a channel handler can see of its socket.
pub struct Ctx<'a> {
    pub state: &'a AppState,
    pub user: Option<&'a User>,
    /// The join ref of the channel (of the join being made, for `join`).
    pub join_ref: Option<&'a str>,
    pub socket: &'a SocketHandle,
    pub vsn: Vsn,
}

/// An accepted join.
pub struct JoinGrant {
    /// The join reply's `response`.
    pub response: Value,
    /// Subscribe the socket to the topic's broadcasts.
    pub subscribe: bool,
    /// Pushes sent to this channel right after the join reply (e.g. `presence_state`).
    pub pushes: Vec<(&'static str, Value)>,
    /// Per-join state the channel keeps until it is left.
    pub state: ChannelState,
}

impl JoinGrant {
    /// A plain subscription with an empty `{}` reply.
    pub fn subscribe() -> Self {
        Self {
            response: Value::Object(Default::default()),
            subscribe: true,
            pushes: Vec::new(),
            state: ChannelState::None,
        }
    }
}

/// Per-join state of a channel.
#[derive(Debug, Default)]
pub enum ChannelState {
    #[default]
    None,
    /// A page reader (`page:<path>`), untracked on leave.
    Page(crate::readers::Ticket),
    /// `likes:<id>`: the channel's own subscription (made before it read the count).
    Likes { sub: crate::pubsub::SubId },
    /// `room:<slug>`: the join as the room's actor knows it, left on leave.
    Room(room::RoomJoin),
}

impl ChannelState {
    /// Whether the server side ended this channel on its own (it sent `phx_close`): the
    /// socket no longer counts it as joined.
    pub fn closed(&self) -> bool {
        match self {
            ChannelState::Room(join) => join.closed(),
            _ => false,
        }
    }
}

/// The answer to a client event on a joined channel.
pub enum Outcome {
    /// `phx_reply` ok with this response.
    Reply(Value),
    /// `phx_reply` error with this response (`{"reason": …, …}`).
    Error(Value),
}

/// Whether a join (`event` is `phx_join`) or a push is costly enough to count against
/// an anonymous socket's budget (`AnonymousLimits::costly_pushes`): a page join (presence
/// work reaching every reader of the page) and a room's `history` (a database read).
pub fn costly(kind: &ChannelKind, event: &str) -> bool {
    matches!((kind, event), (ChannelKind::Page, crate::wire::events::JOIN) | (ChannelKind::Room { .. }, "history"))
}

/// The `response` of an error reply.
pub fn reason(reason: &str) -> Value {
    serde_json::json!({ "reason": reason })
}

/// The `response` of a push refused for the user's rate limit (`crate::ratelimit`):
/// `{"reason": "rate_limited", "retry_after_ms": N}`.
pub fn rate_limited(wait: std::time::Duration) -> Value {
    serde_json::json!({ "reason": "rate_limited", "retry_after_ms": crate::ratelimit::retry_after_ms(wait) })
}

pub async fn join(ctx: &Ctx<'_>, kind: &ChannelKind, topic: &str, payload: &RawValue) -> Result<JoinGrant, Value> {
    match kind {
        ChannelKind::BookmarkStream => streams::join(ctx, topic, payload).await,
        ChannelKind::Debug => Ok(JoinGrant { subscribe: false, ..JoinGrant::subscribe() }),
        ChannelKind::Page => page::join(ctx, topic, payload).await,
        ChannelKind::Likes { bookmark_id } => likes::join(ctx, topic, *bookmark_id).await,
        ChannelKind::Room { slug } => room::join(ctx, slug).await,
        ChannelKind::Lobby => lobby::join(ctx),
        ChannelKind::UserFeed { user_id } => user::join(ctx, *user_id),
    }
}

pub async fn handle_in(
    ctx: &Ctx<'_>,
    kind: &ChannelKind,
    topic: &str,
    event: &str,
    payload: &RawValue,
    state: &mut ChannelState,
) -> Outcome {
    let _ = (ctx, topic, payload, &state);
    match (kind, event) {
        // Every channel answers `ping`: a cheap round trip for clients and load tests.
        (_, "ping") => Outcome::Reply(Value::Object(Default::default())),
        (ChannelKind::Debug, _) => debug::handle_in(event),
        (ChannelKind::BookmarkStream, _) => Outcome::Error(reason("unknown event")),
        (ChannelKind::Page, _) => Outcome::Error(reason("unknown event")),
        (ChannelKind::Likes { bookmark_id }, _) => likes::handle_in(ctx, *bookmark_id, event).await,
        (ChannelKind::Room { .. }, _) => room::handle_in(ctx, event, payload, state).await,
        (ChannelKind::Lobby | ChannelKind::UserFeed { .. }, _) => Outcome::Error(reason("unknown event")),
    }
}

/// Cleanup when a channel is left, closed by a re-join, or its socket ends.
pub async fn leave(ctx: &Ctx<'_>, kind: &ChannelKind, topic: &str, state: ChannelState) {
    let _ = (kind, topic);
    match state {
        ChannelState::Page(ticket) => page::leave(ctx, ticket).await,
        ChannelState::Likes { sub } => likes::leave(ctx, topic, sub),
        ChannelState::Room(join) => room::leave(ctx, join),
        ChannelState::None => {}
    }
}
