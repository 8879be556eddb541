//! The `room`, `likes` and `user` listener groups: one socket per listener, joined to
//! one topic, read until the run stops. Room listeners join anonymously (the rooms are
//! public); likes listeners too; a user listener signs in as its user and joins its own
//! `user:<id>`.
//!
//! When its node goes away (with several targets) or tells of a gap, a listener rejoins
//! (see `workloads::failover`) and takes what its topic offers for the time away
//! ([`rejoined`]): `user:<id>` replays after `since`; `room:<slug>` has no `since`, but
//! its join reply carries the room's recent messages, of which the listener takes the
//! ones it was owed and never saw; a `likes:<id>` reply carries the current count. What
//! no reply brings back (typing, presence joins, `like_count` steps, messages older
//! than the reply's) stays lost, and the `seq` it skipped counts as a gap.
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
use crate::phoenix::{Failure, JOIN_TIMEOUT, JoinParams, Position, SeqCheck, topic_event};
use crate::report::names::{Group, Kind};
use crate::workloads::failover::{self, Loss, Rejoined};

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
    /// `likes`: the bookmark's like count as this listener holds it: from its join
    /// reply (again after every rejoin), then each `like_count` newer than any before.
    pub count: Option<i64>,
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
    // `user:<id>` keeps a history: `since: null` asks for its epoch and seq, the
    // position a rejoin asks to be replayed from. Room and likes topics have none.
    let params = if spec.group == Group::User { JoinParams::POSITION } else { JoinParams::PLAIN };
    let joined = Box::pin(async {
        let (mut socket, at) = cx.connect(spec.index, spec.token.as_deref(), deadline).await?;
        let response = socket.join(&spec.topic, "1", &params, deadline, &mut |_, _| {}).await?;
        Ok::<_, Failure>((socket, response, at))
    })
    .await;
    let (mut socket, response, mut at) = match joined {
        Ok(joined) => joined,
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
    let Position { epoch, seq: from } = Position::of(&response);
    if let Some(from) = from {
        seq.start_at(from);
    }
    if spec.group == Group::Likes {
        heard.count = like_count_in(&response);
    }
    drop(response);
    loop {
        let stopped = cx.stop.cancelled();
        tokio::pin!(stopped);
        let (ended, closed) = failover::read_until_failure(&mut socket, stopped.as_mut(), |text, at| {
            on_text(sh, &spec, &mut heard, &mut seq, text, at)
        })
        .await;
        // The run stopped, or the node went away or told of a gap: rejoin (see
        // `workloads::failover`), with `since` where the topic keeps a history.
        let Some(loss) = Loss::of(ended, closed) else { break };
        let since =
            if spec.group == Group::User { JoinParams::after(seq.last(), epoch.as_deref()) } else { JoinParams::PLAIN };
        let place = failover::Place { at: &mut at, topic: &spec.topic, token: spec.token.as_deref() };
        let Some(back) = Box::pin(failover::recover(cx, loss, &mut socket, place, &since)).await else { break };
        rejoined(sh, &spec, &mut heard, &mut seq, back);
    }
    sh.group(spec.group).add_seq(&seq);
    heard
}

/// What listener `spec` takes from its rejoin: a `user` listener the replay after its
/// `since`; a room listener the run's messages in the room's recent ones it was owed
/// and had not seen (delivered now: their latency includes the time away; the others
/// stay lost); a likes listener the count in the reply, as its state (the `like_count`
/// broadcasts it missed stay lost). Then the frames read before the reply.
fn rejoined(sh: &Shared, spec: &Spec, heard: &mut Heard, seq: &mut SeqCheck, back: Rejoined) {
    match spec.group {
        Group::Room => {
            let at = Instant::now();
            let index = |body: &str| room_message(sh, spec, body);
            let owed = owed_in_reply(&back.response, index, |i| sh.message_event(i), &heard.seen);
            tracing::debug!(listener = spec.index, recovered = owed.len(), "room listener rejoined");
            for i in owed {
                arrived(sh, spec, heard, Kind::ChatMessage, i, sh.message_event(i), at);
            }
        }
        Group::Likes => {
            if let Some(count) = like_count_in(&back.response) {
                heard.count = Some(count);
            }
        }
        _ => {
            let mut deliver = |text: &str, at: Instant| {
                let _ = on_text(sh, spec, heard, seq, text, at);
            };
            let _ = back.replay(&spec.topic, &mut deliver);
            return;
        }
    }
    back.deliver_early(&mut |text: &str, at: Instant| {
        let _ = on_text(sh, spec, heard, seq, text, at);
    });
}

/// The count in a `likes:<id>` join reply (`{count, liked}`).
fn like_count_in(response: &serde_json::Value) -> Option<i64> {
    response.get("count").and_then(serde_json::Value::as_i64)
}

/// The index of this run's chat message whose body is `body`, when it was posted in
/// the room of listener `spec`.
fn room_message(sh: &Shared, spec: &Spec, body: &str) -> Option<u32> {
    message_index(&sh.prefix, body).filter(|&i| sh.timeline.messages.get(i as usize).is_some_and(|p| p.room == spec.of))
}

/// A message of a room join reply.
#[derive(Deserialize)]
struct Recent<'a> {
    id: i64,
    #[serde(borrow)]
    body: std::borrow::Cow<'a, str>,
}

/// The messages of a room join reply (`{"messages": [{id, body, …}, …]}`, the room's
/// recent ones) a rejoined listener is owed and never saw: those `index` names (this
/// run's, in its room) whose room event (`event`) is not in `seen`, each once (a
/// message id or index the reply lists twice counts once), in the reply's order.
pub fn owed_in_reply(
    response: &serde_json::Value,
    index: impl Fn(&str) -> Option<u32>,
    event: impl Fn(u32) -> u64,
    seen: &Seen,
) -> Vec<u32> {
    let messages = response.get("messages").and_then(serde_json::Value::as_array).map_or(&[][..], Vec::as_slice);
    let (mut ids, mut taken) = (std::collections::HashSet::new(), std::collections::HashSet::new());
    messages
        .iter()
        .filter_map(|m| Recent::deserialize(m).ok())
        .filter(|m| ids.insert(m.id))
        .filter_map(|m| index(&m.body))
        .filter(|&i| !seen.contains(event(i)) && taken.insert(i))
        .collect()
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
            match room_message(sh, spec, &m.body) {
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
            if seq.last().is_none_or(|last| c.seq > last) {
                heard.count = Some(c.count);
            }
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

    #[test]
    fn a_room_rejoin_takes_the_owed_messages_it_missed_from_the_reply_once() {
        // Messages 0..4 of this run are in room 1, 4.. in room 2; the listener (room 1)
        // saw 0 and 2 live.
        let index = |body: &str| message_index("sim-ab-", body).filter(|&i| i < 4);
        let event = |i: u32| u64::from(i) + 100;
        let mut seen = Seen::default();
        seen.insert(event(0));
        seen.insert(event(2));
        let m = |id: i64, body: &str| serde_json::json!({ "id": id, "body": body, "user": {"id": 1, "username": "u"} });
        let reply = serde_json::json!({ "messages": [
            m(10, "before the run"),
            m(11, "sim-ab-0 seen live"),
            m(12, "sim-ab-1 missed"),
            m(13, "sim-zz-1 another run"),
            m(14, "sim-ab-2 seen live"),
            m(15, "sim-ab-5 another room"),
            m(12, "sim-ab-1 missed"),
            m(16, "sim-ab-3 missed"),
            m(17, "sim-ab-3 posted twice"),
            { "body": "sim-ab-1 no id" },
        ]});
        assert_eq!(owed_in_reply(&reply, index, event, &seen), [1, 3]);
        assert!(owed_in_reply(&serde_json::json!({}), index, event, &seen).is_empty(), "no messages: nothing");
        assert!(
            owed_in_reply(&serde_json::json!({ "messages": [m(12, "sim-ab-1")] }), index, event, &Seen::default())
                .contains(&1)
        );
    }
}
