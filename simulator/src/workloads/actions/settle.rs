//! The end of the actions: pushes never answered become `timeout`s, and each group's
//! accounting is settled per (listener, action).
//!
//! - `room`: every successful message, typing push and presence join owes each room
//!   listener joined at t0 (counted as they arrived, see `listeners`).
//! - `likes`: a `like_count` delivery is the like or unlike of its bookmark whose answer
//!   carried the same count (the server serialises a bookmark's likes with their
//!   broadcasts, so its counts change one step at a time in answer order; the n-th
//!   distinct delivery of count c on a socket is the n-th action that answered c); a
//!   repeated `seq` at a listener is a duplicate.
//! - `user`: a `notification` is the chat message whose reply carried its
//!   `message_id`, and counts only on the socket of the user that message mentioned
//!   (anywhere else it is unowed).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Shared;
use super::listeners::Heard;
use crate::engine::delivery::{EventLedger, Seen};
use crate::report::names::{Group, Kind};

/// Whether the deliveries owed so far to the end-matched groups have arrived (by
/// count; matched exactly in `settle`).
pub fn likes_and_mentions_arrived(sh: &Shared) -> bool {
    sh.likes.received_count() >= sh.likes_owed.load(Ordering::Acquire)
        && sh.user.received_count() >= sh.user_owed.load(Ordering::Acquire)
}

/// Settles every group and the unanswered pushes.
pub fn settle(sh: &Shared, heard: &[Heard]) {
    for (kind, settlement) in
        [(Kind::ChatMessage, &sh.messages), (Kind::Typing, &sh.typings), (Kind::RoomPresence, &sh.presences)]
    {
        if let Some(stats) = sh.kind(kind) {
            settlement.expire(stats, "timeout");
        }
    }
    room(sh, heard);
    likes(sh, heard);
    user(sh, heard);
}

fn ns_after(t0: Option<Instant>, at: Instant) -> u64 {
    t0.map_or(0, |t0| u64::try_from(at.saturating_duration_since(t0).as_nanos()).unwrap_or(u64::MAX))
}

fn room(sh: &Shared, heard: &[Heard]) {
    let tl = &sh.timeline;
    // Events owed per room, for the listeners that missed any.
    let mut owed_in: HashMap<u32, u64> = HashMap::new();
    let rooms = tl.messages.iter().map(|p| p.room).chain(tl.typings.iter().map(|p| p.room));
    for (event, room) in rooms.chain(tl.presences.iter().map(|p| p.room)).enumerate() {
        if sh.room_events.owed(event as u64) > 0 {
            *owed_in.entry(room).or_default() += 1;
        }
    }
    let with_loss = heard
        .iter()
        .filter(|h| h.joined && h.group == Some(Group::Room))
        .filter(|h| {
            let got = h.seen.iter().filter(|&e| sh.room_events.owed(e) > 0).count() as u64;
            got < owed_in.get(&h.of).copied().unwrap_or(0)
        })
        .count() as u64;
    sh.room.settle(sh.room_events.owed_totals(), with_loss);
}

fn likes(sh: &Shared, heard: &[Heard]) {
    let tl = &sh.timeline;
    let mut done = sh.likes_done.lock().clone();
    done.sort_by_key(|d| d.answered);
    let likes = tl.count(Kind::Like);
    let index = |kind: Kind, i: u32| if kind == Kind::Unlike { likes + u64::from(i) } else { u64::from(i) };
    let ledger = EventLedger::new((likes + tl.count(Kind::Unlike)) as usize);
    // (target, count) → actions in answer order.
    let mut by_count: HashMap<(u32, i64), Vec<(Kind, u32)>> = HashMap::new();
    for d in &done {
        by_count.entry((d.target, d.count)).or_default().push((d.kind, d.i));
        let owed = sh.likes_joined.get(d.target as usize).map_or(0, |n| n.load(Ordering::Acquire));
        ledger.set_owed(index(d.kind, d.i), owed);
    }
    // Per measured action, the time from its intended start to each listener's delivery.
    let mut receipts: HashMap<u64, Vec<Duration>> = HashMap::new();
    let mut owed_of: HashMap<u32, u64> = HashMap::new();
    for d in &done {
        *owed_of.entry(d.target).or_default() += 1;
    }
    let mut with_loss = 0;
    for h in heard.iter().filter(|h| h.joined && h.group == Some(Group::Likes)) {
        let mut deliveries = h.like_counts.clone();
        deliveries.sort_by_key(|&(_, seq, at)| (seq, at));
        let (mut seqs, mut actions) = (Seen::default(), Seen::default());
        let mut cursor: HashMap<i64, usize> = HashMap::new();
        for (count, seq, at) in deliveries {
            if !seqs.insert(seq) {
                sh.likes.duplicate();
                continue;
            }
            let next = cursor.entry(count).or_default();
            let Some(&(kind, i)) = by_count.get(&(h.of, count)).and_then(|v| v.get(*next)) else {
                sh.likes.unowed();
                continue;
            };
            *next += 1;
            let event = index(kind, i);
            if !actions.insert(event) {
                sh.likes.duplicate();
                continue;
            }
            let _ = ledger.received(event, Duration::ZERO);
            if !tl.is_warmup(kind, i)
                && let Some(intended) = tl.intended(kind, i)
            {
                let elapsed = at.saturating_duration_since(intended);
                sh.likes.matched(h.index, elapsed, ns_after(tl.t0(), at));
                receipts.entry(event).or_default().push(elapsed);
            }
        }
        if actions.len() < owed_of.get(&h.of).copied().unwrap_or(0) {
            with_loss += 1;
        }
    }
    for d in &done {
        if !tl.is_warmup(d.kind, d.i) {
            let event = index(d.kind, d.i);
            let mut none = Vec::new();
            sh.likes.reach_event(ledger.owed(event), receipts.get_mut(&event).unwrap_or(&mut none), d.i as usize);
        }
    }
    sh.likes.settle(ledger.owed_totals(), with_loss);
}

fn user(sh: &Shared, heard: &[Heard]) {
    let tl = &sh.timeline;
    let ids = sh.message_ids.lock().clone();
    let ledger = EventLedger::new(tl.messages.len());
    let mut owed_of: HashMap<u32, u64> = HashMap::new();
    for (i, p) in tl.messages.iter().enumerate() {
        let Some(k) = p.mention else { continue };
        if sh.messages.is_ok(i) {
            let joined = sh.user_joined.get(k as usize).map_or(0, |n| n.load(Ordering::Acquire));
            ledger.set_owed(i as u64, joined);
            *owed_of.entry(k).or_default() += 1;
        }
    }
    let mut receipts: HashMap<u64, Vec<Duration>> = HashMap::new();
    let mut with_loss = 0;
    for h in heard.iter().filter(|h| h.joined && h.group == Some(Group::User)) {
        let mut got = Seen::default();
        for &(id, at) in &h.notifications {
            let mine =
                ids.get(&id).copied().filter(|&i| tl.messages.get(i as usize).is_some_and(|p| p.mention == Some(h.of)));
            let Some(i) = mine else {
                sh.user.unowed();
                continue;
            };
            if !got.insert(u64::from(i)) {
                sh.user.duplicate();
                continue;
            }
            let _ = ledger.received(u64::from(i), Duration::ZERO);
            if !tl.is_warmup(Kind::ChatMessage, i)
                && let Some(intended) = tl.intended(Kind::ChatMessage, i)
            {
                let elapsed = at.saturating_duration_since(intended);
                sh.user.matched(h.index, elapsed, ns_after(tl.t0(), at));
                receipts.entry(u64::from(i)).or_default().push(elapsed);
            }
        }
        if got.len() < owed_of.get(&h.of).copied().unwrap_or(0) {
            with_loss += 1;
        }
    }
    for (i, p) in tl.messages.iter().enumerate() {
        if p.mention.is_some() && !tl.is_warmup(Kind::ChatMessage, i as u32) {
            let mut none = Vec::new();
            let event = i as u64;
            sh.user.reach_event(ledger.owed(event), receipts.get_mut(&event).unwrap_or(&mut none), i);
        }
    }
    sh.user.settle(ledger.owed_totals(), with_loss);
}
