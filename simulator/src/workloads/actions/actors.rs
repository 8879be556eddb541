//! Actor sockets: the signed-in sockets that push chat messages and typing. Each actor
//! user holds one socket joined to its own rooms (`Timeline::actor_rooms`; channels
//! multiplexed, join refs `j<room>`); the dispatcher's fires put `new_msg` (ref `m<i>`)
//! and `typing` (ref `t<k>`) frames in its outbox, which its reader task writes, and
//! the reader settles each action when its `phx_reply` arrives: corrected latency from
//! the intended start, uncorrected from the send, `rate_limited` and other refusals as
//! error kinds. A message's reply carries its id, which is how mention notifications
//! are traced back to it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use firehose_app::wire::{self, Vsn, events};
use tokio::sync::mpsc;

use super::Shared;
use crate::phoenix::{Ended, Failure, Flow, JOIN_TIMEOUT, reply_to};
use crate::report::names::Kind;

/// Actor socket `k`, signed in with `token`: joins its rooms, then writes its outbox and
/// reads replies until the run stops.
pub async fn run(sh: Arc<Shared>, k: usize, token: String, mut outbox: mpsc::Receiver<String>) {
    let cx = &sh.cx;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let joined = Box::pin(async {
        let mut socket = cx.connect(k, Some(&token), deadline).await?.0;
        for &r in sh.timeline.actor_rooms.get(k).map_or(&[][..], Vec::as_slice) {
            let Some(topic) = sh.room_topics.get(r as usize) else { continue };
            socket.join_plain(topic, &format!("j{r}"), deadline).await?;
        }
        Ok::<_, Failure>(socket)
    })
    .await;
    let mut socket = match joined {
        Ok(socket) => socket,
        Err(f) => {
            cx.meters.sockets.failed(&f);
            sh.settled.add_permits(1);
            return;
        }
    };
    cx.meters.sockets.joined(k, started.elapsed());
    sh.settled.add_permits(1);
    let stopped = cx.stop.cancelled();
    tokio::pin!(stopped);
    let mut on_frame = |text: &str, at: Instant| {
        on_reply(&sh, text, at);
        Flow::Continue
    };
    if let Ended::Failed(f) = socket.read(stopped.as_mut(), Some(&mut outbox), &mut on_frame).await {
        cx.meters.sockets.closed_by_target(&f);
    }
    socket.close().await;
}

/// Settles the push a `phx_reply` answers.
fn on_reply(sh: &Shared, text: &str, at: Instant) {
    let Ok(frame) = wire::decode_text(Vsn::V2, text) else { return };
    if frame.event != events::REPLY {
        return;
    }
    let Some(msg_ref) = frame.msg_ref.as_deref() else { return };
    let (kind, settlement) = match msg_ref.as_bytes().first() {
        Some(b'm') => (Kind::ChatMessage, &sh.messages),
        Some(b't') => (Kind::Typing, &sh.typings),
        _ => return,
    };
    let Ok(i) = msg_ref[1..].parse::<u32>() else { return };
    let tl = &sh.timeline;
    let (Some(t0), Some(intended), Some(stats)) = (tl.t0(), tl.intended(kind, i), sh.kind(kind)) else { return };
    let outcome = match reply_to(text, msg_ref) {
        Some(Ok(Ok(response))) => Ok(response),
        Some(Ok(Err(reason))) if reason == "rate_limited" => Err("rate_limited".to_owned()),
        Some(Ok(Err(reason))) => Err(format!("reply_error:{reason}")),
        _ => Err("reply_undecodable".to_owned()),
    };
    if !settlement.settle(i as usize, outcome.is_ok()) {
        return;
    }
    let sent = settlement.sent_at(i as usize, t0);
    let measured = !tl.is_warmup(kind, i);
    let response = match outcome {
        Ok(response) => {
            stats.answered(i as usize, measured, intended, sent, at, Ok(()));
            response
        }
        Err(kind) => {
            stats.answered(i as usize, measured, intended, sent, at, Err(&kind));
            return;
        }
    };
    let (room, event) = match kind {
        Kind::ChatMessage => {
            let Some(p) = tl.messages.get(i as usize) else { return };
            if let Some(k) = p.mention {
                if let Some(id) = response.get("id").and_then(serde_json::Value::as_i64) {
                    sh.message_ids.lock().insert(id, i);
                }
                let joined = sh.user_joined.get(k as usize).map_or(0, |n| n.load(Ordering::Acquire));
                sh.user_owed.fetch_add(u64::from(joined), Ordering::AcqRel);
            }
            (p.room, sh.message_event(i))
        }
        _ => {
            let Some(p) = tl.typings.get(i as usize) else { return };
            (p.room, sh.typing_event(i))
        }
    };
    let listeners = sh.room_joined.get(room as usize).map_or(0, |n| n.load(Ordering::Acquire));
    sh.room_events.set_owed(event, listeners);
}
