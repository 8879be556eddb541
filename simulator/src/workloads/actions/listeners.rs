//! The `room`, `likes` and `user` listener groups: one socket per listener, joined to
//! one topic, read until the run stops. Room listeners join anonymously (the rooms are
//! public); likes listeners too; a user listener signs in as its user and joins its own
//! `user:<id>`.
//!
//! `new_message`, `user_typing` and a `presence_diff`'s joins are traced to their
//! action at once, deduplicated per listener, timed and counted towards the action's
//! reach; `like_count` and `notification` are kept (a few words each) and matched when
//! the run ends (`settle`), since they may arrive before the action's own answer.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::Deserialize;
use tokio::task::JoinHandle;

use super::Shared;
use crate::engine::delivery::Seen;
use crate::phoenix::{Ended, Failure, Flow, JOIN_TIMEOUT, SeqCheck, topic_event};
use crate::report::names::{Group, Kind};

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

/// What a listener heard.
#[derive(Debug, Clone, Default)]
pub struct Heard {
    pub group: Option<Group>,
    pub of: u32,
    pub index: usize,
    pub joined: bool,
    /// Room events received (their room-events index), each once.
    pub seen: Seen,
    /// `like_count`: (count, seq, receipt).
    pub like_counts: Vec<(i64, u64, Instant)>,
    /// `notification`: (message id, receipt).
    pub notifications: Vec<(i64, Instant)>,
}

/// Opens `specs` at the run's connect rate, each on its own task; each releases one
/// `settled` permit once joined or failed.
pub async fn open(sh: &Arc<Shared>, specs: Vec<Spec>) -> Vec<JoinHandle<Heard>> {
    let mut specs: Vec<Option<Spec>> = specs.into_iter().map(Some).collect();
    sh.cx
        .spawn_paced(specs.len(), |k| {
            let (sh, spec) = (Arc::clone(sh), specs[k].take());
            async move {
                match spec {
                    Some(spec) => listen(&sh, spec).await,
                    None => Heard::default(),
                }
            }
        })
        .await
}

async fn listen(sh: &Shared, spec: Spec) -> Heard {
    let mut heard = Heard { group: Some(spec.group), of: spec.of, index: spec.index, ..Heard::default() };
    let cx = &sh.cx;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let joined = Box::pin(async {
        let mut socket = cx.connect(spec.index, spec.token.as_deref(), deadline).await?.0;
        socket.join_plain(&spec.topic, "1", deadline).await?;
        Ok::<_, Failure>(socket)
    })
    .await;
    let mut socket = match joined {
        Ok(socket) => socket,
        Err(f) => {
            cx.meters.sockets.failed(&f);
            sh.settled.add_permits(1);
            return heard;
        }
    };
    let joined_of = match spec.group {
        Group::Room => sh.room_joined.get(spec.of as usize),
        Group::Likes => sh.likes_joined.get(spec.of as usize),
        _ => sh.user_joined.get(spec.of as usize),
    };
    if let Some(j) = joined_of {
        j.fetch_add(1, Ordering::AcqRel);
    }
    cx.meters.sockets.joined(spec.index, started.elapsed());
    sh.group(spec.group).joined();
    sh.settled.add_permits(1);
    heard.joined = true;

    let mut seq = SeqCheck::default();
    let mut closed = None;
    let stopped = cx.stop.cancelled();
    tokio::pin!(stopped);
    let ended = {
        let mut on_frame = |text: &str, at: Instant| match on_text(sh, &spec, &mut heard, &mut seq, text, at) {
            Some(f) => {
                closed = Some(f);
                Flow::Stop
            }
            None => Flow::Continue,
        };
        socket.read(stopped.as_mut(), None, &mut on_frame).await
    };
    match (ended, closed) {
        (Ended::Failed(f), _) | (Ended::Stopped, Some(f)) => cx.meters.sockets.closed_by_target(&f),
        _ => {}
    }
    sh.group(spec.group).add_seq(&seq);
    heard
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

#[derive(Deserialize)]
struct PresenceDiff {
    #[serde(default)]
    joins: serde_json::Map<String, serde_json::Value>,
    /// The topic's `seq`, like every broadcast on it.
    seq: Option<u64>,
}

/// The message index in a body `sim-<own>-<i> …`, if it is one of this run's.
pub fn message_index(prefix: &str, body: &str) -> Option<u32> {
    let rest = body.strip_prefix(prefix)?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// One frame of listener `spec`; a channel end is returned as the failure that stops it.
fn on_text(
    sh: &Shared,
    spec: &Spec,
    heard: &mut Heard,
    seq: &mut SeqCheck,
    text: &str,
    at: Instant,
) -> Option<Failure> {
    let group = sh.group(spec.group);
    let frame = match topic_event(text, &spec.topic, || group.decode_error()) {
        ControlFlow::Continue(frame) => frame,
        ControlFlow::Break(end) => return end,
    };
    let tl = &sh.timeline;
    match (spec.group, frame.event.as_ref()) {
        (Group::Room, "new_message") => {
            let Ok(m) = frame.payload_as::<NewMessage<'_>>() else {
                group.decode_error();
                return None;
            };
            if let Some(s) = m.seq {
                seq.see(s);
            }
            let traced = message_index(&sh.prefix, &m.body)
                .filter(|&i| tl.messages.get(i as usize).is_some_and(|p| p.room == spec.of));
            match traced {
                Some(i) => arrived(sh, spec, heard, Kind::ChatMessage, i, sh.message_event(i), at),
                None => group.foreign(),
            }
        }
        (Group::Room, "user_typing") => {
            let Ok(u) = frame.payload_as::<UserTyping>() else {
                group.decode_error();
                return None;
            };
            let pending = sh.typist_of_user.get(&u.user.id).and_then(|&who| {
                let slot = who as usize * sh.room_topics.len() + spec.of as usize;
                let k = sh.typing_pending.get(slot)?.load(Ordering::Acquire).checked_sub(1)?;
                tl.typings.get(k as usize).filter(|p| p.typist == who && p.room == spec.of).map(|_| k)
            });
            match pending {
                Some(k) => arrived(sh, spec, heard, Kind::Typing, k, sh.typing_event(k), at),
                None => group.foreign(),
            }
        }
        (Group::Room, "presence_diff") => {
            let Ok(d) = frame.payload_as::<PresenceDiff>() else {
                group.decode_error();
                return None;
            };
            if let Some(s) = d.seq {
                seq.see(s);
            }
            for key in d.joins.keys() {
                let user = key.parse::<i64>().ok().and_then(|id| sh.presence_of_user.get(&id).copied());
                let pending = user.and_then(|u| {
                    let j = sh.presence_pending.get(u as usize)?.load(Ordering::Acquire).checked_sub(1)?;
                    tl.presences.get(j as usize).filter(|p| p.user == u && p.room == spec.of).map(|_| j)
                });
                // Actors and listeners come and go too: only this run's presence joins count.
                if let Some(j) = pending {
                    arrived(sh, spec, heard, Kind::RoomPresence, j, sh.presence_event(j), at);
                }
            }
        }
        (Group::Likes, "like_count") => {
            let Ok(c) = frame.payload_as::<LikeCount>() else {
                group.decode_error();
                return None;
            };
            seq.see(c.seq);
            heard.like_counts.push((c.count, c.seq, at));
            group.arrived();
        }
        (Group::User, "notification") => {
            let Ok(n) = frame.payload_as::<Notification>() else {
                group.decode_error();
                return None;
            };
            if let Some(s) = n.seq {
                seq.see(s);
            }
            heard.notifications.push((n.message_id, at));
            group.arrived();
        }
        _ => {
            // Other events on the topic (stopped typing, leaves…): only their seq.
            if let Ok(SeqOnly { seq: Some(s) }) = frame.payload_as::<SeqOnly>() {
                seq.see(s);
            }
        }
    }
    None
}

/// A room event (`event`, action `i` of `kind`) arrived at a room listener: a duplicate,
/// or a delivery timed from the action's intended start and counted towards its reach
/// (owed to every listener of the room joined at t0).
#[allow(clippy::too_many_arguments)]
fn arrived(sh: &Shared, spec: &Spec, heard: &mut Heard, kind: Kind, i: u32, event: u64, at: Instant) {
    if !heard.seen.insert(event) {
        sh.room.duplicate();
        return;
    }
    let (Some(intended), Some(t0)) = (sh.timeline.intended(kind, i), sh.timeline.t0()) else { return };
    let elapsed = at.saturating_duration_since(intended);
    let (nth, latest) = sh.room_events.received(event, elapsed);
    let audience = sh.room_joined.get(spec.of as usize).map_or(0, |n| n.load(Ordering::Acquire));
    let at_ns = u64::try_from(at.saturating_duration_since(t0).as_nanos()).unwrap_or(u64::MAX);
    sh.room.received(spec.index, elapsed, at_ns, !sh.timeline.is_warmup(kind, i), Some((audience, nth, latest)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_markers_name_their_index() {
        assert_eq!(message_index("sim-ab-", "sim-ab-12 hello"), Some(12));
        assert_eq!(message_index("sim-ab-", "sim-ab-7"), Some(7));
        assert_eq!(message_index("sim-ab-", "sim-zz-7 x"), None);
        assert_eq!(message_index("sim-ab-", "hello sim-ab-7"), None);
    }
}
