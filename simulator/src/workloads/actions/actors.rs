//! Actor sockets: the signed-in sockets that push chat messages and typing. Each actor
//! user holds one socket joined to its own rooms (`Timeline::actor_rooms`; channels
//! multiplexed, join refs `j<room>`); the generator writes `new_msg` (ref `m<i>`) and `typing` (ref `t<i>`)
//! pushes through its writing half, and the socket's reader settles each action when
//! its `phx_reply` arrives: corrected latency from the intended start, uncorrected from
//! the send, `rate_limited` and other refusals as error kinds. A message's reply carries
//! its id, which is how mention notifications are traced back to it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use firehose_app::wire::{self, Vsn, events};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::time::{sleep_until, timeout_at};
use tokio_tungstenite::tungstenite::Message;

use super::listen::{Ctx, connect};
use super::{Group, Kind};
use crate::phoenix::{HEARTBEAT_EVERY, JOIN_TIMEOUT, Reply, Socket, heartbeat_frame};

pub type Sink = SplitSink<Socket, Message>;

/// The actor sockets' writing halves (`None` until joined, or once gone).
pub struct Actors {
    pub sinks: Box<[tokio::sync::Mutex<Option<Sink>>]>,
    /// One permit per actor socket that joined its rooms or gave up.
    pub settled: Semaphore,
}

impl Actors {
    pub fn new(n: usize) -> Self {
        Self { sinks: (0..n).map(|_| tokio::sync::Mutex::new(None)).collect(), settled: Semaphore::new(0) }
    }
}

/// Opens actor socket `k` for `token` on its own task; it runs until `ctx.stop`.
pub fn spawn(ctx: Arc<Ctx>, actors: Arc<Actors>, k: usize, token: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let ws = Box::pin(join_all(&ctx, k, &token)).await;
        drop(token);
        let ws = match ws {
            Ok(ws) => ws,
            Err(kind) => {
                ctx.fail(format!("actor:{kind}"));
                actors.settled.add_permits(1);
                return;
            }
        };
        let (sink, stream) = ws.split();
        *actors.sinks[k].lock().await = Some(sink);
        actors.settled.add_permits(1);
        read(&ctx, &actors, k, stream).await;
        if let Some(mut sink) = actors.sinks[k].lock().await.take() {
            let _ = sink.close().await;
        }
    })
}

async fn join_all(ctx: &Ctx, k: usize, token: &str) -> Result<Socket, String> {
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let mut ws = connect(ctx.addr, Some(token), deadline).await?;
    let rooms = ctx.timeline.actor_rooms.get(k).map_or(&[][..], Vec::as_slice);
    for &r in rooms {
        let Some(topic) = ctx.room_topics.get(r as usize) else { continue };
        let jr = format!("j{r}");
        let frame = wire::encode_text(Vsn::V2, Some(&jr), Some(&jr), topic, events::JOIN, &json!({}));
        ws.send(Message::text(frame)).await.map_err(|_| "join_send_failed".to_owned())?;
    }
    let mut waiting = rooms.len();
    while waiting > 0 {
        let msg = match timeout_at(deadline, ws.next()).await {
            Err(_) => return Err("join_timeout".into()),
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return Err("closed_before_join".into()),
            Ok(Some(Ok(_))) => continue,
        };
        let Ok(frame) = wire::decode_text(Vsn::V2, msg.as_str()) else { continue };
        if frame.event != events::REPLY || !frame.msg_ref.as_deref().is_some_and(|r| r.starts_with('j')) {
            continue;
        }
        let reply: Reply<'_> = frame.payload_as().map_err(|_| "join_reply_undecodable".to_owned())?;
        if reply.status != "ok" {
            let reason = reply.response.get("reason").and_then(|r| r.as_str()).unwrap_or("unknown");
            return Err(format!("join_error:{reason}"));
        }
        waiting -= 1;
    }
    Ok(ws)
}

async fn read(ctx: &Ctx, actors: &Actors, k: usize, mut stream: futures_util::stream::SplitStream<Socket>) {
    let mut heartbeat_ref = 0u64;
    let stopped = ctx.stop.cancelled();
    let heartbeat = sleep_until(tokio::time::Instant::now() + HEARTBEAT_EVERY);
    tokio::pin!(stopped, heartbeat);
    loop {
        tokio::select! {
            biased;
            () = &mut stopped => break,
            () = &mut heartbeat => {
                heartbeat_ref += 1;
                let mut sink = actors.sinks[k].lock().await;
                let sent = match sink.as_mut() {
                    Some(s) => s.send(Message::text(heartbeat_frame(&format!("h{heartbeat_ref}")))).await.is_ok(),
                    None => false,
                };
                if !sent {
                    break;
                }
                let next = heartbeat.deadline() + HEARTBEAT_EVERY;
                heartbeat.as_mut().reset(next);
            }
            msg = stream.next() => {
                let at = Instant::now();
                match msg {
                    Some(Ok(Message::Text(text))) => on_reply(ctx, text.as_str(), at),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        ctx.fail("actor:during_run:closed");
                        break;
                    }
                    Some(Ok(_)) => {}
                }
            }
        }
    }
}

/// Settles the action a `phx_reply` answers.
fn on_reply(ctx: &Ctx, text: &str, at: Instant) {
    let Ok(frame) = wire::decode_text(Vsn::V2, text) else { return };
    if frame.event != events::REPLY {
        return;
    }
    let Some(msg_ref) = frame.msg_ref.as_deref() else { return };
    let kind = match msg_ref.as_bytes().first() {
        Some(b'm') => Kind::ChatMessage,
        Some(b't') => Kind::Typing,
        _ => return,
    };
    let Ok(i) = msg_ref[1..].parse::<u32>() else { return };
    let (tl, t) = (&ctx.timeline, &ctx.tally);
    let (Some(t0), Some(intended)) = (tl.t0(), tl.intended(kind, i)) else { return };
    let stats = t.kind(kind);
    let Ok(reply) = frame.payload_as::<Reply<'_>>() else {
        stats.settle(i, tl.is_warmup(kind, i), intended, stats.sent_at(i, t0), at, Some("reply_undecodable"));
        return;
    };
    let error = (reply.status != "ok").then(|| {
        let reason = reply.response.get("reason").and_then(|r| r.as_str()).unwrap_or("unknown");
        if reason == "rate_limited" { "rate_limited".to_owned() } else { format!("reply_{}:{reason}", reply.status) }
    });
    if !stats.settle(i, tl.is_warmup(kind, i), intended, stats.sent_at(i, t0), at, error.as_deref()) || error.is_some()
    {
        return;
    }
    match kind {
        Kind::ChatMessage => {
            let Some(p) = tl.messages.get(i as usize) else { return };
            let listeners = t.room_joined.get(p.room as usize).map_or(0, |n| n.load(Ordering::Acquire));
            t.owe(Group::Room, u64::from(listeners));
            if let Some(k) = p.mention {
                if let Some(id) = reply.response.get("id").and_then(|v| v.as_i64()) {
                    t.message_ids.lock().insert(id, i);
                }
                let joined = t.user_joined.get(k as usize).map_or(0, |n| n.load(Ordering::Acquire));
                t.owe(Group::User, u64::from(joined));
            }
        }
        _ => {
            let Some(p) = tl.typings.get(i as usize) else { return };
            let listeners = t.room_joined.get(p.room as usize).map_or(0, |n| n.load(Ordering::Acquire));
            t.owe(Group::Room, u64::from(listeners));
        }
    }
}

/// How long the generator waits for an actor's writing half before failing the push.
pub const SINK_WAIT: Duration = Duration::from_secs(5);
