//! What firing each action kind does, as lanes for the one dispatcher: likes, unlikes
//! and deletions are HTTP requests (each takes an in-flight slot); chat messages and
//! typing are frames put in the actor socket's outbox (answered on its reader, see
//! `actors`); a presence join opens a fresh signed-in socket on the main runtime, joins
//! the room, holds it and leaves.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde_json::json;

use super::schedule::SKIPPED;
use super::{LikeDone, Shared};
use crate::engine::dispatch::{Action, Lane};
use crate::engine::error::SimError;
use crate::engine::workload::Cx;
use crate::http;
use crate::phoenix::{JOIN_TIMEOUT, push_frame};
use crate::plan::actions::KINDS;
use crate::report::names::Kind;

/// The lanes of every kind the plan drives.
pub fn lanes(sh: &Arc<Shared>, cx: &Arc<Cx>) -> Result<Vec<Lane>, SimError> {
    let clients = cx.measured_clients()?;
    let main = tokio::runtime::Handle::current();
    let mut lanes = Vec::new();
    for kind in KINDS {
        let Some(lane) = sh.timeline.lane(kind) else { continue };
        let curve = lane.curve.clone();
        let events = (0..lane.count).map(move |i| (curve.offset(i), i));
        let (sh, clients, main) = (Arc::clone(sh), clients.clone(), main.clone());
        let takes_slot = matches!(kind, Kind::Like | Kind::Unlike | Kind::DeleteBookmark);
        let fire = move |i: u64, intended: Instant| -> Action {
            let (sh, client, main) = (Arc::clone(&sh), clients.for_action(i).clone(), main.clone());
            let i = i as u32;
            match kind {
                Kind::ChatMessage | Kind::Typing => async move { push(&sh, kind, i, intended).await }.boxed(),
                Kind::RoomPresence => {
                    // The presence socket lives on the main runtime, with the listeners.
                    main.spawn(async move { presence(&sh, i, intended).await });
                    async {}.boxed()
                }
                _ => async move { request(&sh, &client, kind, i, intended).await }.boxed(),
            }
        };
        lanes.push(Lane::new(kind, events, takes_slot, fire));
    }
    Ok(lanes)
}

/// A like, unlike or delete over HTTP.
async fn request(sh: &Shared, client: &http::Client, kind: Kind, i: u32, intended: Instant) {
    let (tl, made) = (&sh.timeline, &sh.made);
    let Some(stats) = sh.kind(kind) else { return };
    let (actor, target, id) = match kind {
        Kind::Like => {
            let p = tl.likes[i as usize];
            if p.target == SKIPPED {
                stats.skip();
                return;
            }
            (p.user, p.target, made.like_targets[p.target as usize])
        }
        Kind::Unlike => {
            let Some((user, target)) = sh.undoable.lock().pop_front() else {
                stats.skip();
                return;
            };
            (user, target, made.like_targets[target as usize])
        }
        _ => {
            let Some(&(id, owner)) = made.delete_targets.get(i as usize) else {
                stats.skip();
                return;
            };
            (owner, SKIPPED, id)
        }
    };
    let Some(token) = made.actors.get(actor as usize).map(|a| a.token.as_str()) else {
        stats.error("no_actor");
        return;
    };
    let sent = Instant::now();
    stats.sent(i as usize, intended, sent);
    let result = match kind {
        Kind::DeleteBookmark => client.delete_bookmark(token, id).await,
        _ => client.like(token, id, kind == Kind::Like).await,
    };
    let at = Instant::now();
    let measured = !tl.is_warmup(kind, i);
    let answer = match result {
        Ok(answer) => answer,
        Err(transport) => {
            stats.error(transport.kind());
            return;
        }
    };
    if let Some(error) = answer.error_kind() {
        stats.answered(i as usize, measured, intended, Some(sent), at, Err(&error));
        return;
    }
    if kind == Kind::DeleteBookmark {
        stats.answered(i as usize, measured, intended, Some(sent), at, Ok(()));
        return;
    }
    #[derive(serde::Deserialize)]
    struct Count {
        count: i64,
    }
    let Some(count) = answer.data::<Count>().map(|c| c.count) else {
        stats.answered(i as usize, measured, intended, Some(sent), at, Err("body"));
        return;
    };
    stats.answered(i as usize, measured, intended, Some(sent), at, Ok(()));
    sh.likes_done.lock().push(LikeDone { kind, i, target, count, answered: at });
    let listeners = sh.likes_joined.get(target as usize).map_or(0, |n| n.load(Ordering::Acquire));
    sh.likes_owed.fetch_add(u64::from(listeners), Ordering::AcqRel);
    if kind == Kind::Like {
        sh.undoable.lock().push_back((actor, target));
    }
}

/// A `new_msg` or `typing` push through the planned actor's socket.
async fn push(sh: &Shared, kind: Kind, i: u32, intended: Instant) {
    let tl = &sh.timeline;
    let Some(stats) = sh.kind(kind) else { return };
    let (who, room, event, msg_ref, payload, settlement) = if kind == Kind::ChatMessage {
        let p = tl.messages[i as usize];
        let line = sh.lines.get(p.line as usize).map_or("hello", String::as_str);
        let mut body = format!("{}{i} {line}", sh.prefix);
        if let Some(account) = p.mention.and_then(|k| sh.made.mentionable.get(k as usize)) {
            body.push_str(&format!(" @{}", account.username));
        }
        (p.sender, p.room, "new_msg", format!("m{i}"), json!({ "body": body }), &sh.messages)
    } else {
        let p = tl.typings[i as usize];
        if p.typist == SKIPPED {
            stats.skip();
            sh.typings.settle(i as usize, false);
            return;
        }
        (p.typist, p.room, "typing", format!("t{i}"), json!({}), &sh.typings)
    };
    let (Some(topic), Some(outbox)) = (sh.room_topics.get(room as usize), sh.outboxes.get(who as usize)) else {
        settlement.settle(i as usize, false);
        stats.error("no_actor_socket");
        return;
    };
    if kind == Kind::Typing
        && let Some(slot) = sh.typing_pending.get(who as usize * sh.room_topics.len() + room as usize)
    {
        slot.store(i + 1, Ordering::Release);
    }
    let frame = push_frame(topic, &format!("j{room}"), &msg_ref, event, &payload);
    let (Some(t0), now) = (tl.t0(), Instant::now()) else { return };
    settlement.mark_sent(i as usize, t0, now);
    stats.sent(i as usize, intended, now);
    if outbox.send(frame).await.is_err() && settlement.settle(i as usize, false) {
        stats.error("actor_socket_gone");
    }
}

/// Presence join `j`: a fresh socket of its presence user joins its room (the join's
/// reply answers the action), stays the hold, leaves.
async fn presence(sh: &Shared, j: u32, intended: Instant) {
    let tl = &sh.timeline;
    let cx = &sh.cx;
    let Some(stats) = sh.kind(Kind::RoomPresence) else { return };
    let p = tl.presences[j as usize];
    let (Some(account), Some(topic), Some(t0)) =
        (sh.made.presence.get(p.user as usize), sh.room_topics.get(p.room as usize), tl.t0())
    else {
        sh.presences.settle(j as usize, false);
        stats.error("no_presence_user");
        return;
    };
    let sent = Instant::now();
    stats.sent(j as usize, intended, sent);
    sh.presences.mark_sent(j as usize, t0, sent);
    if let Some(slot) = sh.presence_pending.get(p.user as usize) {
        slot.store(j + 1, Ordering::Release);
    }
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let joined = async {
        let mut socket = cx.connect(j as usize, Some(&account.token), deadline).await?.0;
        socket.join_plain(topic, "1", deadline).await?;
        Ok::<_, crate::phoenix::Failure>(socket)
    }
    .await;
    let measured = !tl.is_warmup(Kind::RoomPresence, j);
    let socket = match joined {
        Ok(socket) => socket,
        Err(f) => {
            if sh.presences.settle(j as usize, false) {
                stats.answered(j as usize, measured, intended, Some(sent), Instant::now(), Err(&f.name()));
            }
            return;
        }
    };
    if sh.presences.settle(j as usize, true) {
        stats.answered(j as usize, measured, intended, Some(sent), Instant::now(), Ok(()));
        let listeners = sh.room_joined.get(p.room as usize).map_or(0, |n| n.load(Ordering::Acquire));
        sh.room_events.set_owed(sh.presence_event(j), listeners);
    }
    let hold = cx.plan.actions.presence_hold;
    tokio::select! {
        () = cx.stop.cancelled() => {}
        () = tokio::time::sleep(hold.max(Duration::from_millis(1))) => {}
    }
    socket.close().await;
}
