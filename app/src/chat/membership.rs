//! Who may read a room, creating one, and joining and leaving it: the rules the JSON
//! API and the room pages share. Every membership change reaches the room's actor (it reloads its
//! members) and, for a public room, the lobby as `room_members {id, slug, members}`, so
//! room lists show live member counts.

use super::{NewRoom, Role, Room, lobby};
use crate::accounts::User;
use crate::http::ApiError;
use crate::state::AppState;

const MISSING: ApiError = ApiError::NotFound("no such room");

/// The room, if `user` may see it, with their role in it. A private room is invisible
/// (404, as for a room that does not exist) to non-members.
pub async fn readable(state: &AppState, slug: &str, user: Option<&User>) -> Result<(Room, Option<Role>), ApiError> {
    if !super::valid_slug(slug) {
        return Err(MISSING);
    }
    let room = state.store.room_by_slug(slug).await?.ok_or(MISSING)?;
    let role = match user {
        Some(user) => state.store.room_role(room.id, user.id).await?,
        None => None,
    };
    if room.private && role.is_none() {
        return Err(MISSING);
    }
    Ok((room, role))
}

/// Creates a room with `user` as its admin and tells the lobby (a public room).
pub async fn create(state: &AppState, user: &User, new: &NewRoom) -> Result<Room, ApiError> {
    let room = state.store.insert_room(user, new).await?;
    lobby::created(&state.pubsub, &room);
    Ok(room)
}

/// Joins a public room as a member (private rooms are joined by invitation). Returns the
/// room, the user's role, and whether they were added just now.
pub async fn join(state: &AppState, slug: &str, user: &User) -> Result<(Room, Option<Role>, bool), ApiError> {
    let (room, role) = readable(state, slug, Some(user)).await?;
    if role.is_none() && state.store.add_room_member(room.id, user.id, Role::Member).await? {
        changed(state, &room).await;
        return Ok((room, Some(Role::Member), true));
    }
    Ok((room, role, false))
}

/// Leaves a room; whether the user was a member.
pub async fn leave(state: &AppState, slug: &str, user: &User) -> Result<bool, ApiError> {
    let (room, _) = readable(state, slug, Some(user)).await?;
    let left = state.store.remove_room_member(room.id, user.id).await?;
    if left {
        changed(state, &room).await;
    }
    Ok(left)
}

/// The members of `room` changed: its actor reloads them and the lobby hears the count.
pub async fn changed(state: &AppState, room: &Room) {
    state.rooms.room_changed(&room.slug);
    match state.store.room_member_count(room.id).await {
        Ok(count) => lobby::members(&state.pubsub, room, count),
        // The count is a convenience for room lists; the change itself is committed.
        Err(err) => tracing::warn!(%err, room = %room.slug, "cannot count room members"),
    }
}
