//! `user:<id>`: that user's notifications (mentions). Only that user may join; anyone
//! else, signed in or not, is refused with `unauthorized`. Receive-only.

use serde_json::Value;

use super::channel::{Ctx, JoinGrant, reason};

pub fn join(ctx: &Ctx<'_>, user_id: i64) -> Result<JoinGrant, Value> {
    match ctx.user {
        Some(user) if user.id == user_id => Ok(JoinGrant::subscribe()),
        _ => Err(reason("unauthorized")),
    }
}
