//! The rooms JSON API under `/api/rooms`.
//!
//! A private room is invisible to non-members: every route answers 404 for it, as for
//! a room that does not exist. Changing, deleting and inviting need the admin role
//! (403 otherwise). Changes are told to the lobby (`lobby.rs`) and to the room's actor,
//! which reloads what it caches.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::membership::{self, readable};
use super::send::{self, SendError};
use super::{Invitee, NewRoom, PAGE, Role, Room, RoomPatch, lobby};
use crate::accounts::{CurrentUser, MaybeUser, User};
use crate::http::{ApiError, JsonBody, params};
use crate::state::AppState;

const MAX_LIMIT: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/rooms", get(list).post(create))
        .route("/api/rooms/{slug}", get(show).patch(update).delete(delete))
        .route("/api/rooms/{slug}/join", post(join))
        .route("/api/rooms/{slug}/leave", post(leave))
        .route("/api/rooms/{slug}/invites", post(invite))
        .route("/api/rooms/{slug}/members", get(members))
        .route("/api/rooms/{slug}/messages", get(messages).post(post_message))
}

fn room_json(room: &Room, role: Option<Role>) -> Value {
    let mut v = room.to_json();
    v["role"] = json!(role.map(Role::as_str));
    v
}

async fn administered(state: &AppState, slug: &str, user: &User) -> Result<Room, ApiError> {
    match readable(state, slug, Some(user)).await? {
        (room, Some(Role::Admin)) => Ok(room),
        _ => Err(ApiError::Forbidden("only a room admin may do this")),
    }
}

async fn list(State(state): State<AppState>, MaybeUser(user): MaybeUser) -> Result<Json<Value>, ApiError> {
    let rooms = state.store.visible_rooms(user.as_ref()).await?;
    let data: Vec<Value> = rooms.iter().map(|(room, role)| room_json(room, *role)).collect();
    Ok(Json(json!({ "data": data })))
}

async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let new = NewRoom::from_body(&body)?;
    let room = membership::create(&state, &user, &new).await?;
    Ok((StatusCode::CREATED, Json(json!({ "data": room_json(&room, Some(Role::Admin)) }))))
}

async fn show(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (room, role) = readable(&state, &slug, user.as_ref()).await?;
    Ok(Json(json!({ "data": room_json(&room, role) })))
}

async fn update(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(slug): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let before = administered(&state, &slug, &user).await?;
    let patch = RoomPatch::from_body(&body)?;
    let after = state.store.update_room(before.id, &patch).await?.ok_or(ApiError::NotFound("no such room"))?;
    lobby::updated(&state.pubsub, &before, &after);
    state.rooms.room_changed(&slug);
    Ok(Json(json!({ "data": room_json(&after, Some(Role::Admin)) })))
}

async fn delete(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(slug): Path<String>,
) -> Result<StatusCode, ApiError> {
    let room = administered(&state, &slug, &user).await?;
    if state.store.delete_room(room.id).await? {
        lobby::deleted(&state.pubsub, &room);
        state.rooms.room_deleted(&slug);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Joins a public room as a member (private rooms are joined by invitation).
async fn join(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(slug): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (room, role, added) = membership::join(&state, &slug, &user).await?;
    let status = if added { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(json!({ "data": room_json(&room, role) }))))
}

async fn leave(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(slug): Path<String>,
) -> Result<StatusCode, ApiError> {
    membership::leave(&state, &slug, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a user (`{"username": …}` or `{"user_id": …}`) as a member; admins only.
async fn invite(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(slug): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let room = administered(&state, &slug, &user).await?;
    let invitee = match Invitee::from_body(&body)? {
        Invitee::Username(name) => state.store.user_by_username(&name).await?,
        Invitee::Id(id) => state.store.user_by_id(id).await?,
    };
    let invitee = invitee.ok_or(ApiError::NotFound("no such user"))?;
    let added = state.store.add_room_member(room.id, invitee.id, Role::Member).await?;
    if added {
        membership::changed(&state, &room).await;
    }
    let role = state.store.room_role(room.id, invitee.id).await?.unwrap_or(Role::Member);
    let status = if added { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(json!({ "data": { "user": super::user_json(&invitee), "role": role.as_str() } }))))
}

async fn members(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (room, _) = readable(&state, &slug, user.as_ref()).await?;
    let members = state.store.room_members(room.id).await?;
    let data: Vec<Value> = members.iter().map(super::Member::to_json).collect();
    Ok(Json(json!({ "data": data })))
}

/// A page of history, oldest first: `?before=<message id>&limit=<1..100>` (default 50).
async fn messages(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(slug): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let (room, _) = readable(&state, &slug, user.as_ref()).await?;
    let limit = params::limit(params.get("limit").map(String::as_str), PAGE, MAX_LIMIT)?;
    let before = match params.get("before").filter(|b| !b.is_empty()) {
        Some(b) => Some(b.parse::<i64>().map_err(|_| ApiError::BadRequest("before must be a message id".into()))?),
        None => None,
    };
    let page = state.store.messages_before(room.id, before, limit).await?;
    let next = page.first().filter(|_| page.len() == limit).map(|m| m.id);
    let data: Vec<Value> = page.iter().map(super::Message::to_json).collect();
    Ok(Json(json!({ "data": data, "next_before": next })))
}

/// Sends a message over HTTP (`{"body", "attachment_id"?}`, or the same inside
/// `"message"`): the same validation, permissions, budget and broadcast as the
/// `new_msg` push. 201 with the message.
async fn post_message(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(slug): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let outgoing = send::Outgoing::from_http_body(&body)?;
    // A room the sender may not read is a 404 before anything is spent; the room's
    // actor checks again as it stores the message.
    let (room, _) = readable(&state, &slug, Some(&user)).await?;
    let id = send::send(&state, &slug, &user, outgoing).await.map_err(send_error)?;
    // Read back for the answer; a message deleted in the meantime is answered by id.
    let stored = state.store.messages_before(room.id, Some(id + 1), 1).await?;
    let data = match stored.first().filter(|m| m.id == id) {
        Some(message) => message.to_json(),
        None => json!({ "id": id }),
    };
    Ok((StatusCode::CREATED, Json(json!({ "data": data }))))
}

/// How a refused message is answered over HTTP.
pub(crate) fn send_error(err: SendError) -> ApiError {
    use super::ChatError;
    let invalid = |field: &str, msg: String| ApiError::field(field, msg);
    match err {
        SendError::Invalid(msg) if msg.starts_with("attachment_id") => invalid("attachment_id", msg),
        SendError::Invalid(msg) => invalid("body", msg),
        SendError::AttachmentNotFound => invalid("attachment_id", "must be the id of one of your uploads".into()),
        SendError::RateLimited(wait) => ApiError::RateLimited(wait),
        SendError::Room(ChatError::Unauthorized) => ApiError::NotFound("no such room"),
        SendError::Room(ChatError::Busy) => ApiError::Unavailable("room busy; try again"),
        SendError::Room(ChatError::Unavailable) => ApiError::Unavailable("room unavailable; try again"),
        SendError::Room(other) => ApiError::Internal(other.to_string()),
    }
}
