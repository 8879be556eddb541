//! `rooms:lobby`: `room_created`, `room_updated` and `room_deleted` for public rooms
//! (see `crate::chat`). Signed-in users only; receive-only.

use serde_json::Value;

use super::channel::{Ctx, JoinGrant, reason};

pub fn join(ctx: &Ctx<'_>) -> Result<JoinGrant, Value> {
    match ctx.user {
        Some(_) => Ok(JoinGrant::subscribe()),
        None => Err(reason("unauthorized")),
    }
}
