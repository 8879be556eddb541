//! What `rooms:lobby` hears: `room_created`, `room_updated`, `room_deleted` and
//! `room_members` (a member count changed), for public rooms only. Every signed-in user may listen, so a private room never appears
//! here: a room that turns private leaves the lobby as `room_deleted`, and one that
//! turns public enters it as `room_created`.

use serde_json::{Value, json};

use super::Room;
use crate::pubsub::PubSub;

pub const LOBBY_TOPIC: &str = "rooms:lobby";

mod events {
    pub const CREATED: &str = "room_created";
    pub const UPDATED: &str = "room_updated";
    pub const DELETED: &str = "room_deleted";
    pub const MEMBERS: &str = "room_members";
}

fn gone(room: &Room) -> Value {
    json!({ "id": room.id, "slug": room.slug })
}

pub(super) fn created(pubsub: &PubSub, room: &Room) {
    if !room.private {
        pubsub.broadcast(LOBBY_TOPIC, events::CREATED, &room.to_json());
    }
}

pub(super) fn updated(pubsub: &PubSub, before: &Room, after: &Room) {
    match (before.private, after.private) {
        (false, false) => {
            pubsub.broadcast(LOBBY_TOPIC, events::UPDATED, &after.to_json());
        }
        (false, true) => {
            pubsub.broadcast(LOBBY_TOPIC, events::DELETED, &gone(before));
        }
        (true, false) => created(pubsub, after),
        (true, true) => {}
    }
}

pub(super) fn deleted(pubsub: &PubSub, room: &Room) {
    if !room.private {
        pubsub.broadcast(LOBBY_TOPIC, events::DELETED, &gone(room));
    }
}

/// `room_members {id, slug, members}`: how many members a public room has now.
pub(super) fn members(pubsub: &PubSub, room: &Room, count: i64) {
    if !room.private {
        pubsub.broadcast(LOBBY_TOPIC, events::MEMBERS, &json!({ "id": room.id, "slug": room.slug, "members": count }));
    }
}
