//! What member sockets and the generator share, and the member sockets themselves.
//!
//! A member is one user with one WebSocket joined to its room. Its task reads until
//! told to stop: every `new_message`, `user_typing` and `presence_diff` is traced back
//! to the event that caused it (the message body's `sim-<run>-<i>` marker; the typist's
//! user id and the typing event pending for them; the churn user's key and the join
//! pending for it), counted against what that event owed, and timed from its intended
//! time (presence: from the join push's actual send). Replies to the member's own
//! pushes (`m<i>`, `t<k>`) give the push reply latency. The generator writes those
//! pushes through the member's half of the socket (`sinks`), on its own thread.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use firehose_app::wire::{self, Vsn, events};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde::Deserialize;
use serde::de::IgnoredAny;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{sleep_until, timeout_at};
use tokio_tungstenite::client_async_with_config;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use super::schedule::{Kind, RoomsSchedule};
use crate::phoenix::{self, HEARTBEAT_EVERY, Reply, SeqCheck, Socket, ws_config};
use crate::report::histo::Sharded;

pub use crate::phoenix::JOIN_TIMEOUT;
const SHARDS: usize = 16;

pub type Sink = SplitSink<Socket, Message>;

/// Per event of one kind: deliveries owed and received, and when its push went out.
pub struct Tally {
    expected: Box<[AtomicU32]>,
    received: Box<[AtomicU32]>,
    /// Nanoseconds after `t0` plus one; 0 until sent.
    sent_ns: Box<[AtomicU64]>,
    total_expected: AtomicU64,
    total_received: AtomicU64,
    pub sent: AtomicU64,
    pub skipped: AtomicU64,
    pub replies_ok: AtomicU64,
    pub replies_error: AtomicU64,
}

/// Loss figures of one kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Owed {
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub excess: u64,
}

impl Tally {
    fn new(n: usize) -> Self {
        let zeros32 = || (0..n).map(|_| AtomicU32::new(0)).collect();
        Self {
            expected: zeros32(),
            received: zeros32(),
            sent_ns: (0..n).map(|_| AtomicU64::new(0)).collect(),
            total_expected: AtomicU64::new(0),
            total_received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            replies_ok: AtomicU64::new(0),
            replies_error: AtomicU64::new(0),
        }
    }

    /// Event `i` owes `n` deliveries (set before its push goes out).
    pub fn owe(&self, i: u32, n: u32) {
        if let Some(e) = self.expected.get(i as usize) {
            let before = e.swap(n, Ordering::AcqRel);
            self.total_expected.fetch_add(u64::from(n), Ordering::AcqRel);
            self.total_expected.fetch_sub(u64::from(before), Ordering::AcqRel);
        }
    }

    /// Event `i` was refused or never sent: it owes nothing.
    pub fn cancel(&self, i: u32) {
        self.owe(i, 0);
    }

    fn got(&self, i: u32) {
        if let Some(r) = self.received.get(i as usize) {
            r.fetch_add(1, Ordering::AcqRel);
            self.total_received.fetch_add(1, Ordering::AcqRel);
        }
    }

    pub fn mark_sent(&self, i: u32, t0: Instant, at: Instant) {
        if let Some(s) = self.sent_ns.get(i as usize) {
            let ns = u64::try_from(at.saturating_duration_since(t0).as_nanos()).unwrap_or(u64::MAX - 1);
            s.store(ns + 1, Ordering::Release);
        }
    }

    pub fn sent_at(&self, i: u32, t0: Instant) -> Option<Instant> {
        let ns = self.sent_ns.get(i as usize)?.load(Ordering::Acquire);
        (ns > 0).then(|| t0 + Duration::from_nanos(ns - 1))
    }

    /// Whether at least as many deliveries arrived as were owed, overall.
    pub fn complete(&self) -> bool {
        self.total_received.load(Ordering::Acquire) >= self.total_expected.load(Ordering::Acquire)
    }

    pub fn owed(&self) -> Owed {
        let mut o = Owed::default();
        for (e, r) in self.expected.iter().zip(self.received.iter()) {
            let (e, r) = (u64::from(e.load(Ordering::Acquire)), u64::from(r.load(Ordering::Acquire)));
            o.expected += e;
            o.received += r;
            o.lost += e.saturating_sub(r);
            o.excess += r.saturating_sub(e);
        }
        o
    }
}

/// The run's histograms (microseconds).
pub struct Histos {
    pub message_delivery: Sharded,
    pub message_reply_corrected: Sharded,
    pub message_reply_uncorrected: Sharded,
    pub typing_delivery: Sharded,
    pub typing_reply_corrected: Sharded,
    pub presence_diff: Sharded,
    pub presence_diff_corrected: Sharded,
    pub presence_join_reply: Sharded,
    pub member_connect: Sharded,
    pub member_join: Sharded,
    pub churn_connect: Sharded,
    pub generator_lag: Sharded,
}

impl Histos {
    fn new() -> Self {
        let s = || Sharded::new(SHARDS);
        Self {
            message_delivery: s(),
            message_reply_corrected: s(),
            message_reply_uncorrected: s(),
            typing_delivery: s(),
            typing_reply_corrected: s(),
            presence_diff: s(),
            presence_diff_corrected: s(),
            presence_join_reply: s(),
            member_connect: s(),
            member_join: s(),
            churn_connect: s(),
            generator_lag: s(),
        }
    }
}

/// Everything members, churn sockets and the generator share.
pub struct Board {
    pub addr: SocketAddr,
    /// `ws://host:port/socket/websocket?vsn=2.0.0&token=`
    pub ws_url: String,
    /// `sim-<run>-`, the start of every measured message body.
    pub prefix: String,
    pub schedule: Arc<RoomsSchedule>,
    /// `room:<slug>` per room.
    pub topics: Vec<String>,
    /// Member user id → member slot (`room * members + j`).
    pub member_of_user: HashMap<i64, u32>,
    /// Churn user id → churn user index.
    pub churn_of_user: HashMap<i64, u32>,
    /// The writing half of each member's socket, once joined.
    pub sinks: Box<[tokio::sync::Mutex<Option<Sink>>]>,
    pub joined: Box<[AtomicBool]>,
    pub messages: Tally,
    pub typings: Tally,
    pub joins: Tally,
    /// Per member slot: typing event index + 1 of its latest typing push.
    pub typing_pending: Box<[AtomicU32]>,
    /// Per churn user: join event index + 1 of its latest join.
    pub churn_pending: Box<[AtomicU32]>,
    pub h: Histos,
    pub max_lag_us: AtomicU64,
    /// Push replies with `status: error`, transport failures, by kind.
    pub errors: Mutex<BTreeMap<String, u64>>,
    /// Member sockets that could not connect or join, by kind.
    pub failures: Mutex<BTreeMap<String, u64>>,
    pub joined_count: AtomicU64,
    /// One permit per member whose socket connected (upgraded) or gave up.
    pub connected: Semaphore,
    /// Cancelled once every member socket is connected: members then join their rooms,
    /// paced at `join_rate` from `join_start`, so the server's memory can be read with
    /// sockets connected but no channel joined, then again with every room running.
    pub join_gate: CancellationToken,
    pub join_start: std::sync::OnceLock<Instant>,
    pub join_rate: f64,
    /// One permit per member that joined or gave up.
    pub settled: Semaphore,
    pub stop: CancellationToken,
}

impl Board {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        addr: SocketAddr,
        run_id: &str,
        schedule: Arc<RoomsSchedule>,
        topics: Vec<String>,
        member_of_user: HashMap<i64, u32>,
        churn_of_user: HashMap<i64, u32>,
        join_rate: f64,
        stop: CancellationToken,
    ) -> Self {
        let slots = (schedule.rooms * schedule.members) as usize;
        let churn = schedule.churn_users as usize;
        Self {
            addr,
            ws_url: format!("ws://{addr}/socket/websocket?vsn=2.0.0&token="),
            prefix: format!("sim-{run_id}-"),
            topics,
            member_of_user,
            churn_of_user,
            sinks: (0..slots).map(|_| tokio::sync::Mutex::new(None)).collect(),
            joined: (0..slots).map(|_| AtomicBool::new(false)).collect(),
            messages: Tally::new(schedule.messages.len()),
            typings: Tally::new(schedule.typings.len()),
            joins: Tally::new(schedule.joins.len()),
            typing_pending: (0..slots).map(|_| AtomicU32::new(0)).collect(),
            churn_pending: (0..churn).map(|_| AtomicU32::new(0)).collect(),
            h: Histos::new(),
            max_lag_us: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            failures: Mutex::new(BTreeMap::new()),
            joined_count: AtomicU64::new(0),
            connected: Semaphore::new(0),
            join_gate: CancellationToken::new(),
            join_start: std::sync::OnceLock::new(),
            join_rate,
            settled: Semaphore::new(0),
            stop,
            schedule,
        }
    }

    pub fn tally(&self, kind: Kind) -> &Tally {
        match kind {
            Kind::Message => &self.messages,
            Kind::Typing => &self.typings,
            Kind::Join => &self.joins,
        }
    }

    pub fn is_joined(&self, slot: u32) -> bool {
        self.joined.get(slot as usize).is_some_and(|f| f.load(Ordering::Acquire))
    }

    /// Members of `room` joined now.
    pub fn joined_in(&self, room: u32) -> u32 {
        let m = self.schedule.members;
        (room * m..room * m + m).filter(|&s| self.is_joined(s)).count() as u32
    }

    pub fn error(&self, kind: impl Into<String>) {
        *self.errors.lock().entry(kind.into()).or_default() += 1;
    }

    fn fail(&self, kind: impl Into<String>) {
        *self.failures.lock().entry(kind.into()).or_default() += 1;
    }

    /// Whether everything owed so far arrived.
    pub fn all_delivered(&self) -> bool {
        self.messages.complete() && self.typings.complete() && self.joins.complete()
    }
}

/// What a member's socket saw, returned when it stops.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemberStats {
    pub joined: bool,
    /// The server closed the socket or the channel during the run.
    pub closed: bool,
    pub phx_errors: u64,
    pub phx_closes: u64,
    pub messages: u64,
    /// The member's own messages coming back (not deliveries).
    pub own_echoes: u64,
    pub typings: u64,
    pub presence_joins: u64,
    /// Events of other runs, or that could not be traced.
    pub foreign: u64,
    pub decode_errors: u64,
    /// Topic `seq` (new_message, presence_diff) repeated, going back, or skipping.
    pub seq: SeqCheck,
}

/// Opens one member socket per slot at `per_second`, each on its own task.
pub async fn open_members(
    board: &Arc<Board>,
    accounts: Vec<(i64, String)>,
    per_second: f64,
) -> Vec<tokio::task::JoinHandle<MemberStats>> {
    let start = Instant::now();
    let mut handles = Vec::with_capacity(accounts.len());
    for (slot, (user_id, token)) in accounts.into_iter().enumerate() {
        sleep_until((start + Duration::from_secs_f64(slot as f64 / per_second)).into()).await;
        if board.stop.is_cancelled() {
            break;
        }
        let board = Arc::clone(board);
        handles.push(tokio::spawn(async move { member(&board, slot as u32, user_id, token).await }));
    }
    handles
}

async fn member(board: &Board, slot: u32, user_id: i64, token: String) -> MemberStats {
    let mut stats = MemberStats::default();
    let room = slot / board.schedule.members;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let connected = Box::pin(connect(board, &token, deadline)).await;
    drop(token);
    let mut ws = match connected {
        Ok(ws) => ws,
        Err(kind) => {
            board.fail(kind);
            board.connected.add_permits(1);
            board.settled.add_permits(1);
            return stats;
        }
    };
    board.h.member_connect.record(slot as usize, started.elapsed());
    board.connected.add_permits(1);
    tokio::select! {
        () = board.join_gate.cancelled() => {}
        () = board.stop.cancelled() => {
            board.settled.add_permits(1);
            return stats;
        }
    }
    if let Some(start) = board.join_start.get() {
        sleep_until((*start + Duration::from_secs_f64(f64::from(slot) / board.join_rate)).into()).await;
    }
    let joining = Instant::now();
    let joined = join(&mut ws, &board.topics[room as usize], tokio::time::Instant::now() + JOIN_TIMEOUT).await;
    if let Err(kind) = joined {
        board.fail(kind);
        board.settled.add_permits(1);
        return stats;
    }
    board.h.member_join.record(slot as usize, joining.elapsed());
    let (sink, mut stream) = ws.split();
    *board.sinks[slot as usize].lock().await = Some(sink);
    board.joined[slot as usize].store(true, Ordering::Release);
    board.joined_count.fetch_add(1, Ordering::Relaxed);
    board.settled.add_permits(1);
    stats.joined = true;

    let me = Me { slot, room, user_id };
    let mut heartbeat_ref = 1u64;
    let stopped = board.stop.cancelled();
    let heartbeat = sleep_until(tokio::time::Instant::now() + HEARTBEAT_EVERY);
    tokio::pin!(stopped, heartbeat);
    loop {
        tokio::select! {
            biased;
            () = &mut stopped => break,
            () = &mut heartbeat => {
                heartbeat_ref += 1;
                let frame = phoenix::heartbeat_frame(&format!("h{heartbeat_ref}"));
                let mut sink = board.sinks[slot as usize].lock().await;
                let sent = match sink.as_mut() {
                    Some(sink) => sink.send(Message::text(frame)).await.is_ok(),
                    None => false,
                };
                if !sent {
                    stats.closed = true;
                    break;
                }
                let next = heartbeat.deadline() + HEARTBEAT_EVERY;
                heartbeat.as_mut().reset(next);
            }
            msg = stream.next() => {
                let at = Instant::now();
                match msg {
                    Some(Ok(Message::Text(text))) => on_text(board, &me, &mut stats, text.as_str(), at),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        stats.closed = true;
                        break;
                    }
                    Some(Ok(_)) => {}
                }
            }
        }
    }
    if let Some(mut sink) = board.sinks[slot as usize].lock().await.take() {
        let _ = sink.close().await;
    }
    drop(stream);
    stats
}

struct Me {
    slot: u32,
    room: u32,
    user_id: i64,
}

#[derive(Deserialize)]
struct UserRef {
    id: i64,
}

#[derive(Deserialize)]
struct NewMessage<'a> {
    #[serde(borrow)]
    body: std::borrow::Cow<'a, str>,
    user: UserRef,
    seq: Option<u64>,
}

#[derive(Deserialize)]
struct UserTyping {
    user: UserRef,
}

#[derive(Deserialize)]
struct PresenceDiff<'a> {
    #[serde(borrow)]
    joins: BTreeMap<&'a str, IgnoredAny>,
    seq: Option<u64>,
}

fn on_text(board: &Board, me: &Me, stats: &mut MemberStats, text: &str, at: Instant) {
    let Ok(frame) = wire::decode_text(Vsn::V2, text) else {
        stats.decode_errors += 1;
        return;
    };
    if frame.topic != board.topics[me.room as usize] {
        return;
    }
    let s = &board.schedule;
    let Some(t0) = s.t0() else { return };
    match frame.event.as_ref() {
        "new_message" => {
            let Ok(m) = frame.payload_as::<NewMessage<'_>>() else {
                stats.decode_errors += 1;
                return;
            };
            if let Some(seq) = m.seq {
                stats.seq.see(seq);
            }
            let Some(i) = message_index(&board.prefix, &m.body).filter(|&i| (i as usize) < s.messages.len()) else {
                stats.foreign += 1;
                return;
            };
            if m.user.id == me.user_id {
                stats.own_echoes += 1;
                return;
            }
            stats.messages += 1;
            board.messages.got(i);
            if !s.is_warmup(Kind::Message, i) {
                board
                    .h
                    .message_delivery
                    .record(me.slot as usize, at.saturating_duration_since(t0 + s.messages[i as usize].at));
            }
        }
        "user_typing" => {
            let Ok(t) = frame.payload_as::<UserTyping>() else {
                stats.decode_errors += 1;
                return;
            };
            let typist = board.member_of_user.get(&t.user.id).copied();
            let pending = typist.and_then(|slot| {
                let k = board.typing_pending.get(slot as usize)?.load(Ordering::Acquire).checked_sub(1)?;
                s.typings.get(k as usize).filter(|p| p.who == slot && p.room == me.room).map(|p| (k, p.at))
            });
            let Some((k, planned_at)) = pending else {
                stats.foreign += 1;
                return;
            };
            stats.typings += 1;
            board.typings.got(k);
            if !s.is_warmup(Kind::Typing, k) {
                board.h.typing_delivery.record(me.slot as usize, at.saturating_duration_since(t0 + planned_at));
            }
        }
        "presence_diff" => {
            let Ok(d) = frame.payload_as::<PresenceDiff<'_>>() else {
                stats.decode_errors += 1;
                return;
            };
            if let Some(seq) = d.seq {
                stats.seq.see(seq);
            }
            for key in d.joins.keys() {
                let Some(&c) = key.parse::<i64>().ok().and_then(|id| board.churn_of_user.get(&id)) else { continue };
                let pending =
                    board.churn_pending.get(c as usize).and_then(|p| p.load(Ordering::Acquire).checked_sub(1));
                let Some(k) =
                    pending.filter(|&k| s.joins.get(k as usize).is_some_and(|p| p.who == c && p.room == me.room))
                else {
                    stats.foreign += 1;
                    continue;
                };
                stats.presence_joins += 1;
                board.joins.got(k);
                if !s.is_warmup(Kind::Join, k) {
                    if let Some(sent) = board.joins.sent_at(k, t0) {
                        board.h.presence_diff.record(me.slot as usize, at.saturating_duration_since(sent));
                    }
                    board
                        .h
                        .presence_diff_corrected
                        .record(me.slot as usize, at.saturating_duration_since(t0 + s.joins[k as usize].at));
                }
            }
        }
        events::REPLY => on_reply(board, me, stats, &frame, t0, at),
        events::ERROR => {
            stats.phx_errors += 1;
            stats.closed = true;
        }
        events::CLOSE => {
            stats.phx_closes += 1;
            stats.closed = true;
        }
        _ => {}
    }
}

fn on_reply(board: &Board, me: &Me, stats: &mut MemberStats, frame: &wire::InFrame<'_>, t0: Instant, at: Instant) {
    let Some(msg_ref) = frame.msg_ref.as_deref() else { return };
    let (kind, tally) = match msg_ref.as_bytes().first() {
        Some(b'm') => (Kind::Message, &board.messages),
        Some(b't') => (Kind::Typing, &board.typings),
        _ => return,
    };
    let Ok(i) = msg_ref[1..].parse::<u32>() else { return };
    let Ok(reply) = frame.payload_as::<Reply<'_>>() else {
        stats.decode_errors += 1;
        return;
    };
    let s = &board.schedule;
    if reply.status != "ok" {
        let reason = reply.response.get("reason").and_then(|r| r.as_str()).unwrap_or("unknown");
        let what = if kind == Kind::Message { "new_msg" } else { "typing" };
        board.error(format!("{what}_{}_{reason}", reply.status));
        tally.replies_error.fetch_add(1, Ordering::Relaxed);
        tally.cancel(i);
        return;
    }
    tally.replies_ok.fetch_add(1, Ordering::Relaxed);
    if s.is_warmup(kind, i) {
        return;
    }
    let Some(intended) = s.intended(kind, i) else { return };
    let key = me.slot as usize;
    if kind == Kind::Message {
        board.h.message_reply_corrected.record(key, at.saturating_duration_since(intended));
        if let Some(sent) = tally.sent_at(i, t0) {
            board.h.message_reply_uncorrected.record(key, at.saturating_duration_since(sent));
        }
    } else {
        board.h.typing_reply_corrected.record(key, at.saturating_duration_since(intended));
    }
}

/// The message index in a body `sim-<run>-<i> …`, if it is one of this run's.
pub fn message_index(prefix: &str, body: &str) -> Option<u32> {
    let rest = body.strip_prefix(prefix)?;
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Connects and upgrades with `token`; the error is a failure kind for the report.
pub async fn connect(board: &Board, token: &str, deadline: tokio::time::Instant) -> Result<Socket, String> {
    let tcp = match timeout_at(deadline, TcpStream::connect(board.addr)).await {
        Err(_) => return Err("connect_timeout".into()),
        Ok(Err(e)) => return Err(format!("connect_{:?}", e.kind()).to_lowercase()),
        Ok(Ok(tcp)) => tcp,
    };
    let _ = tcp.set_nodelay(true);
    let token: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let url = format!("{}{token}", board.ws_url);
    match timeout_at(deadline, client_async_with_config(url.as_str(), tcp, Some(ws_config()))).await {
        Err(_) => Err("upgrade_timeout".into()),
        Ok(Err(tungstenite::Error::Http(resp))) => Err(format!("upgrade_http_{}", resp.status().as_u16())),
        Ok(Err(_)) => Err("upgrade_failed".into()),
        Ok(Ok((ws, _))) => Ok(ws),
    }
}

/// Sends `phx_join` for `topic` and waits for its reply.
pub async fn join(ws: &mut Socket, topic: &str, deadline: tokio::time::Instant) -> Result<(), String> {
    ws.send(Message::text(phoenix::join_frame(topic))).await.map_err(|_| "join_send_failed".to_owned())?;
    await_join_reply(ws, deadline).await
}

/// Reads until the reply to ref "1"; `Err` names why there is none (or the reason).
pub async fn await_join_reply(ws: &mut Socket, deadline: tokio::time::Instant) -> Result<(), String> {
    phoenix::await_join_reply(ws, deadline, |_| "closed_before_join".into()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_bodies_carry_their_index() {
        assert_eq!(message_index("sim-ab12-", "sim-ab12-42 hello there"), Some(42));
        assert_eq!(message_index("sim-ab12-", "sim-ab12-7"), Some(7));
        assert_eq!(message_index("sim-ab12-", "sim-zz99-7 hi"), None);
        assert_eq!(message_index("sim-ab12-", "hello"), None);
    }

    #[test]
    fn tallies_count_loss_and_excess() {
        let t = Tally::new(3);
        t.owe(0, 2);
        t.owe(1, 3);
        t.got(0);
        t.got(0);
        t.got(1);
        t.got(2);
        assert!(!t.complete() || t.owed().lost > 0);
        let o = t.owed();
        assert_eq!((o.expected, o.received, o.lost, o.excess), (5, 4, 2, 1));
        t.cancel(1);
        assert_eq!(t.owed().expected, 2);
        let t0 = Instant::now();
        assert_eq!(t.sent_at(0, t0), None);
        t.mark_sent(0, t0, t0 + Duration::from_millis(5));
        assert_eq!(t.sent_at(0, t0), Some(t0 + Duration::from_millis(5)));
    }
}
