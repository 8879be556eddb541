//! `page:<path>`: page readers ("N readers online"). Anyone may join; each join is one
//! reader, keyed by the user id when signed in or by the socket otherwise. The reply
//! gives `{readers, total}`, then `presence_state` follows; throttled `presence_diff`
//! and `readers` broadcasts come from the readers actor (`crate::readers`), which sends
//! them to the page's readers itself, so the session subscribes to nothing.

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::channel::{ChannelState, Ctx, JoinGrant, reason};
use crate::presence;
use crate::readers::{Reader, Ticket};

pub async fn join(ctx: &Ctx<'_>, topic: &str, _payload: &RawValue) -> Result<JoinGrant, Value> {
    let key = match ctx.user {
        Some(user) => user.id.to_string(),
        None => ctx.state.readers.anonymous_key(ctx.socket.id),
    };
    let mut meta = Map::new();
    meta.insert("online_at".into(), json!(chrono::Utc::now().timestamp()));
    let reader = Reader { key, meta, socket: ctx.socket.clone(), vsn: ctx.vsn };
    let joined = ctx.state.readers.join(topic, reader).await.ok_or_else(|| reason("readers unavailable"))?;
    Ok(JoinGrant {
        response: json!({"readers": joined.readers, "total": joined.total}),
        // The actor seated the socket together with the snapshot below.
        subscribe: false,
        pushes: vec![(presence::events::STATE, serde_json::from_str(&joined.state).unwrap_or_default())],
        state: ChannelState::Page(joined.ticket),
    })
}

pub async fn leave(ctx: &Ctx<'_>, ticket: Ticket) {
    ctx.state.readers.leave(ticket).await;
}
