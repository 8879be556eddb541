//! `likes:<bookmark_id>`: a bookmark's like count, live. Joining needs only that the
//! caller can see the bookmark (anyone for a public one, the owner for a private one);
//! the reply is `{"count": N, "liked": bool}` with `liked` for the joining user (false
//! when anonymous). A signed-in member pushes `like` / `unlike` and gets the same shape
//! back; every change reaches the topic as `like_count {bookmark_id, count, seq}`,
//! which carries nobody's `liked`. See `crate::likes`.
//!
//! The channel subscribes the socket itself, before it reads the count: a like
//! committed after that read is then broadcast to this socket, and one committed before
//! it is in the reply, so no change falls in between. (Subscribing after the reply, as
//! the session does for plain streams, could miss one and show a stale count until the
//! next change.) Visibility is checked first, so a socket that may not read the
//! bookmark is never subscribed, not even for a moment.

use serde_json::{Value, json};

use super::channel::{ChannelState, Ctx, JoinGrant, Outcome, rate_limited, reason};
use crate::likes::{self, LikeSummary, View};
use crate::pubsub::SubId;
use crate::ratelimit::Action;

fn summary(likes: LikeSummary) -> Value {
    json!({ "count": likes.count, "liked": likes.liked })
}

fn internal(err: &dyn std::fmt::Display, bookmark_id: i64) -> Value {
    tracing::error!(%err, bookmark_id, "likes channel");
    reason("internal error")
}

pub async fn join(ctx: &Ctx<'_>, topic: &str, bookmark_id: i64) -> Result<JoinGrant, Value> {
    let refuse = |view: View| match view {
        View::Missing => Err(reason("not found")),
        View::Hidden => Err(reason("unauthorized")),
        View::Visible(likes) => Ok(likes),
    };
    // A bookmark's visibility never changes (only deletion), so this check holds for
    // the subscription below.
    refuse(likes::view(ctx.state, bookmark_id, ctx.user).await.map_err(|e| internal(&e, bookmark_id))?)?;
    let sub = ctx.state.pubsub.subscribe(topic, ctx.vsn, ctx.socket.clone());
    let current = match likes::view(ctx.state, bookmark_id, ctx.user).await {
        Ok(view) => refuse(view),
        Err(err) => Err(internal(&err, bookmark_id)),
    };
    match current {
        Ok(likes) => Ok(JoinGrant {
            response: summary(likes),
            subscribe: false,
            pushes: Vec::new(),
            state: ChannelState::Likes { sub },
        }),
        Err(response) => {
            ctx.state.pubsub.unsubscribe(topic, sub);
            Err(response)
        }
    }
}

pub async fn handle_in(ctx: &Ctx<'_>, bookmark_id: i64, event: &str) -> Outcome {
    let liked = match event {
        "like" => true,
        "unlike" => false,
        _ => return Outcome::Error(reason("unknown event")),
    };
    let Some(user) = ctx.user else { return Outcome::Error(reason("unauthorized")) };
    if let Err(wait) = ctx.state.limits.check(Action::Like, user.id) {
        return Outcome::Error(rate_limited(wait));
    }
    match likes::set_like(ctx.state, user, bookmark_id, liked).await {
        Ok(Some(likes)) => Outcome::Reply(summary(likes)),
        // Deleted since the join.
        Ok(None) => Outcome::Error(reason("not found")),
        // The write queue is full or the database unreachable: the client may push again.
        Err(err) if err.is_unavailable() => Outcome::Error(reason("busy")),
        Err(err) => Outcome::Error(internal(&err, bookmark_id)),
    }
}

pub fn leave(ctx: &Ctx<'_>, topic: &str, sub: SubId) {
    ctx.state.pubsub.unsubscribe(topic, sub);
}
