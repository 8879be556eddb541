//! The `room`, `likes` and `user` listener groups: one socket per listener, joined to
//! one topic, read until the run stops. Room listeners join anonymously (the rooms are
//! public); likes listeners too; a user listener signs in as its user (token in
//! phoenix.js's `base64url.bearer.phx.` subprotocol) and joins its own `user:<id>`.
//!
//! `new_message` and `user_typing` are traced to their action at once, timed and
//! counted towards its reach (`Tally::room_reach`); `like_count` and `notification`
//! are kept (a few words each) and matched when the run ends, since they may arrive
//! before the action's own answer. Every event carrying a topic `seq` goes through a
//! `SeqCheck`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use firehose_app::wire::{self, Vsn, events};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{sleep_until, timeout_at};
use tokio_tungstenite::client_async_with_config;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use super::schedule::Timeline;
use super::tally::Tally;
use super::{Group, Kind};
use crate::phoenix::{self, HEARTBEAT_EVERY, JOIN_TIMEOUT, SeqCheck, Socket, ws_config};
use crate::workloads::rooms::board::message_index;

/// Everything the listeners (and actor sockets) share.
pub struct Ctx {
    pub addr: SocketAddr,
    pub timeline: Arc<Timeline>,
    pub tally: Arc<Tally>,
    /// `sim-<run>-`: the start of every measured message body.
    pub prefix: String,
    pub room_topics: Vec<String>,
    /// Actor user id → actor socket index (typists).
    pub typist_of_user: HashMap<i64, u32>,
    pub rooms: usize,
    pub failures: Mutex<BTreeMap<String, u64>>,
    pub joined: AtomicU64,
    /// One permit per listener that joined or gave up.
    pub settled: Semaphore,
    pub stop: CancellationToken,
}

impl Ctx {
    pub fn fail(&self, kind: impl Into<String>) {
        *self.failures.lock().entry(kind.into()).or_default() += 1;
    }
}

/// One listener to open: its group, the index of what it listens to (room, like
/// target, user listener), its topic and, for `user`, its token.
#[derive(Debug, Clone)]
pub struct Spec {
    pub index: usize,
    pub group: Group,
    pub of: u32,
    pub topic: String,
    pub token: Option<String>,
}

/// What a listener saw.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub group: Option<Group>,
    pub of: u32,
    pub joined: bool,
    pub closed: bool,
    pub seq: SeqCheck,
    pub foreign: u64,
    pub decode_errors: u64,
    pub last_measured_receipt: Option<Instant>,
    /// `like_count`: (count, seq, receipt).
    pub like_counts: Vec<(i64, u64, Instant)>,
    /// `notification`: (message id, receipt).
    pub notifications: Vec<(i64, Instant)>,
}

/// Opens `specs` at `per_second`, each on its own task.
pub async fn open(ctx: &Arc<Ctx>, specs: Vec<Spec>, per_second: f64) -> Vec<tokio::task::JoinHandle<Seen>> {
    let start = Instant::now();
    let mut handles = Vec::with_capacity(specs.len());
    for (k, spec) in specs.into_iter().enumerate() {
        sleep_until((start + Duration::from_secs_f64(k as f64 / per_second)).into()).await;
        if ctx.stop.is_cancelled() {
            break;
        }
        let ctx = Arc::clone(ctx);
        handles.push(tokio::spawn(async move { listen(&ctx, spec).await }));
    }
    handles
}

/// Connects and upgrades, signed in with `token` (phoenix.js's bearer subprotocol) when
/// given; the error is a failure kind for the report.
pub async fn connect(addr: SocketAddr, token: Option<&str>, deadline: tokio::time::Instant) -> Result<Socket, String> {
    let tcp = match timeout_at(deadline, TcpStream::connect(addr)).await {
        Err(_) => return Err("connect_timeout".into()),
        Ok(Err(e)) => return Err(format!("connect_{:?}", e.kind()).to_lowercase()),
        Ok(Ok(tcp)) => tcp,
    };
    let _ = tcp.set_nodelay(true);
    let url = format!("ws://{addr}/socket/websocket?vsn=2.0.0");
    let mut request = url.into_client_request().map_err(|_| "upgrade_request".to_owned())?;
    if let Some(token) = token {
        let protocols = format!("phoenix, base64url.bearer.phx.{}", URL_SAFE_NO_PAD.encode(token));
        let value = protocols.parse().map_err(|_| "upgrade_request".to_owned())?;
        request.headers_mut().insert("sec-websocket-protocol", value);
    }
    match timeout_at(deadline, client_async_with_config(request, tcp, Some(ws_config()))).await {
        Err(_) => Err("upgrade_timeout".into()),
        Ok(Err(tungstenite::Error::Http(resp))) => Err(format!("upgrade_http_{}", resp.status().as_u16())),
        Ok(Err(_)) => Err("upgrade_failed".into()),
        Ok(Ok((ws, _))) => Ok(ws),
    }
}

async fn listen(ctx: &Ctx, spec: Spec) -> Seen {
    let mut seen = Seen { group: Some(spec.group), of: spec.of, ..Seen::default() };
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let joined = Box::pin(async {
        let mut ws = connect(ctx.addr, spec.token.as_deref(), deadline).await?;
        ws.send(Message::text(phoenix::join_frame(&spec.topic))).await.map_err(|_| "join_send_failed".to_owned())?;
        phoenix::await_join_reply(&mut ws, deadline, |_| "join_read_failed".to_owned()).await?;
        Ok::<Socket, String>(ws)
    })
    .await;
    let mut ws = match joined {
        Ok(ws) => ws,
        Err(kind) => {
            ctx.fail(format!("{}:{kind}", spec.group.name()));
            ctx.settled.add_permits(1);
            return seen;
        }
    };
    let t = &ctx.tally;
    let joined_of = match spec.group {
        Group::Room => t.room_joined.get(spec.of as usize),
        Group::Likes => t.likes_joined.get(spec.of as usize),
        Group::User => t.user_joined.get(spec.of as usize),
    };
    if let Some(j) = joined_of {
        j.fetch_add(1, Ordering::AcqRel);
    }
    ctx.joined.fetch_add(1, Ordering::Relaxed);
    ctx.settled.add_permits(1);
    seen.joined = true;

    let mut heartbeat_ref = 1u64;
    let stopped = ctx.stop.cancelled();
    let heartbeat = sleep_until(tokio::time::Instant::now() + HEARTBEAT_EVERY);
    tokio::pin!(stopped, heartbeat);
    loop {
        tokio::select! {
            biased;
            () = &mut stopped => break,
            () = &mut heartbeat => {
                heartbeat_ref += 1;
                if ws.send(Message::text(phoenix::heartbeat_frame(&heartbeat_ref.to_string()))).await.is_err() {
                    seen.closed = true;
                    break;
                }
                let next = heartbeat.deadline() + HEARTBEAT_EVERY;
                heartbeat.as_mut().reset(next);
            }
            msg = ws.next() => {
                let at = Instant::now();
                match msg {
                    Some(Ok(Message::Text(text))) => on_text(ctx, &spec, &mut seen, text.as_str(), at),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        seen.closed = true;
                        break;
                    }
                    Some(Ok(_)) => {}
                }
            }
        }
    }
    if seen.closed {
        ctx.fail(format!("{}:during_run:closed", spec.group.name()));
    }
    seen
}

#[derive(Deserialize)]
struct UserRef {
    id: i64,
}

#[derive(Deserialize)]
struct NewMessage<'a> {
    #[serde(borrow)]
    body: std::borrow::Cow<'a, str>,
    seq: Option<u64>,
}

#[derive(Deserialize)]
struct UserTyping {
    user: UserRef,
}

#[derive(Deserialize)]
struct SeqOnly {
    seq: Option<u64>,
}

#[derive(Deserialize)]
struct LikeCount {
    count: i64,
    seq: u64,
}

#[derive(Deserialize)]
struct Notification {
    message_id: i64,
    seq: Option<u64>,
}

fn on_text(ctx: &Ctx, spec: &Spec, seen: &mut Seen, text: &str, at: Instant) {
    let Ok(frame) = wire::decode_text(Vsn::V2, text) else {
        seen.decode_errors += 1;
        return;
    };
    if frame.topic != spec.topic {
        return;
    }
    let (tl, t) = (&ctx.timeline, &ctx.tally);
    match (spec.group, frame.event.as_ref()) {
        (_, events::CLOSE | events::ERROR) => seen.closed = true,
        (_, events::REPLY) => {}
        (Group::Room, "new_message") => {
            let Ok(m) = frame.payload_as::<NewMessage<'_>>() else {
                seen.decode_errors += 1;
                return;
            };
            if let Some(seq) = m.seq {
                seen.seq.see(seq);
            }
            let traced = message_index(&ctx.prefix, &m.body)
                .filter(|&i| tl.messages.get(i as usize).is_some_and(|p| p.room == spec.of));
            let Some(i) = traced else {
                seen.foreign += 1;
                t.room_foreign.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let nth = t.message_received.get(i as usize).map_or(0, |r| r.fetch_add(1, Ordering::AcqRel) + 1);
            t.got(Group::Room);
            record(ctx, seen, spec, Kind::ChatMessage, i, nth, at);
        }
        (Group::Room, "user_typing") => {
            let Ok(u) = frame.payload_as::<UserTyping>() else {
                seen.decode_errors += 1;
                return;
            };
            let pending = ctx.typist_of_user.get(&u.user.id).and_then(|&who| {
                let slot = who as usize * ctx.rooms + spec.of as usize;
                let k = t.typing_pending.get(slot)?.load(Ordering::Acquire).checked_sub(1)?;
                tl.typings.get(k as usize).filter(|p| p.typist == who && p.room == spec.of).map(|_| k)
            });
            let Some(k) = pending else {
                seen.foreign += 1;
                t.room_foreign.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let nth = t.typing_received.get(k as usize).map_or(0, |r| r.fetch_add(1, Ordering::AcqRel) + 1);
            t.got(Group::Room);
            record(ctx, seen, spec, Kind::Typing, k, nth, at);
        }
        (Group::Likes, "like_count") => {
            let Ok(c) = frame.payload_as::<LikeCount>() else {
                seen.decode_errors += 1;
                return;
            };
            seen.seq.see(c.seq);
            seen.like_counts.push((c.count, c.seq, at));
            t.got(Group::Likes);
        }
        (Group::User, "notification") => {
            let Ok(n) = frame.payload_as::<Notification>() else {
                seen.decode_errors += 1;
                return;
            };
            if let Some(seq) = n.seq {
                seen.seq.see(seq);
            }
            seen.notifications.push((n.message_id, at));
            t.got(Group::User);
        }
        _ => {
            // Other events on the topic (presence, stopped typing…): only their seq.
            if let Ok(SeqOnly { seq: Some(seq) }) = frame.payload_as::<SeqOnly>() {
                seen.seq.see(seq);
            }
        }
    }
}

/// Room delivery latency of action `i` of `kind`, from its intended start, and its
/// reach: this was the `nth` delivery of it, owed to every listener of the room joined
/// before `t0` (the same count `outcome` owes it).
fn record(ctx: &Ctx, seen: &mut Seen, spec: &Spec, kind: Kind, i: u32, nth: u32, at: Instant) {
    if ctx.timeline.is_warmup(kind, i) {
        return;
    }
    if let Some(intended) = ctx.timeline.intended(kind, i) {
        let t = &ctx.tally;
        let elapsed = at.saturating_duration_since(intended);
        t.delivery[Group::Room as usize].record(spec.index, elapsed);
        let audience = t.room_joined.get(spec.of as usize).map_or(0, |n| n.load(Ordering::Acquire));
        let latest = match kind {
            Kind::Typing => t.typing_latest.get(i as usize),
            _ => t.message_latest.get(i as usize),
        };
        t.room_reach.arrived(audience, nth, elapsed, spec.index, latest);
        seen.last_measured_receipt = Some(at);
    }
}
