//! Chat rooms: rooms and memberships over HTTP, messages, typing and presence over the
//! `room:<slug>` channel, lobby events on `rooms:lobby`, mention notifications on
//! `user:<id>`.
//!
//! - `rooms.rs`: the domain types and every validation rule;
//! - `api.rs`: the JSON API under `/api/rooms`;
//! - `registry.rs`: finds (and starts) a room's actor; the requests rooms answer;
//! - `actor.rs`: one task per active room owning its hot state (recent messages,
//!   members, typing, presence); stops when idle; a panic there stays there;
//! - `mentions.rs`: `@username` parsing;
//! - `lobby.rs`: what `rooms:lobby` is told, without leaking private rooms;
//! - `send.rs`: sending a message, the one path for the channel, HTTP and the pages;
//! - `membership.rs`: joining and leaving rooms, with the lobby's member counts.
//!
//! The channel glue (`channels/{room,lobby,user}.rs`) only translates frames into the
//! calls here.

mod actor;
mod api;
mod lobby;
pub mod membership;
mod mentions;
mod registry;
mod rooms;
pub mod send;

pub use actor::Joined;
pub use api::router;
pub use lobby::LOBBY_TOPIC;
pub use mentions::mentioned;
pub use registry::RoomRegistry;
pub use rooms::{
    Invitee, MAX_BODY, Member, Message, MessageBody, NewRoom, Role, Room, RoomPatch, derive_slug, topic, user_json,
    valid_slug,
};

use std::time::Duration;

/// Messages in a join reply and in each `history` page.
pub const PAGE: usize = 50;

/// Prefix of the per-user topic (`user:<id>`), where mentions are notified.
pub const USER_TOPIC_PREFIX: &str = "user:";

/// `user:<id>`.
pub fn user_topic(user_id: i64) -> String {
    format!("{USER_TOPIC_PREFIX}{user_id}")
}

/// Timings and bounds of the room actors.
#[derive(Debug, Clone, Copy)]
pub struct ChatConfig {
    /// A room actor with no channel joined stops after this long.
    pub room_idle_timeout: Duration,
    /// `user_stopped_typing` follows this long after the last `typing` push.
    pub typing_timeout: Duration,
    /// Commands queued per room before pushes are refused as busy.
    pub room_queue: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self { room_idle_timeout: Duration::from_secs(300), typing_timeout: Duration::from_secs(2), room_queue: 1024 }
    }
}

/// Why a room refused a request. `reason()` is what a channel reply says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// Not allowed to read or write this room (or it does not exist: the two are not
    /// told apart, so private rooms cannot be discovered by guessing slugs).
    #[error("unauthorized")]
    Unauthorized,
    #[error("message not found")]
    MessageNotFound,
    #[error("forbidden")]
    Forbidden,
    /// The room's queue is full.
    #[error("room busy")]
    Busy,
    /// The room's actor died while handling the request.
    #[error("room unavailable")]
    Unavailable,
    #[error("unknown event")]
    UnknownEvent,
    #[error("internal error")]
    Internal,
}

impl ChatError {
    pub fn reason(&self) -> serde_json::Value {
        serde_json::json!({ "reason": self.to_string() })
    }
}
