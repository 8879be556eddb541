//! Listeners: one tokio task per WebSocket, joined to one topic. Each connects over
//! Phoenix Channels V2, joins, then reads until told to stop: every `bookmark_created`
//! is traced to its request through the URL fragment, counted in the ledger, checked
//! for duplicates, reordering and gaps through the topic's `seq`, and its delivery
//! latency (receipt − the request's intended start) recorded for the group.
//!
//! Memory is the constraint here (thousands of sockets per process): small tungstenite
//! buffers, no per-listener histogram, no channel per listener, a few words of state.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use firehose_app::wire::{self, Vsn, events};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tokio::time::{sleep_until, timeout_at};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use crate::phoenix::{self, HEARTBEAT_EVERY, SeqCheck, Socket};
use crate::report::histo::Sharded;
use crate::workloads::bookmarks::correlate::Correlator;
use crate::workloads::bookmarks::ledger::{Group, Ledger};
use crate::workloads::bookmarks::lifecycle::{self, Act, Cursor, Lifecycle};
use crate::workloads::bookmarks::schedule::Schedule;

pub use crate::phoenix::JOIN_TIMEOUT;
/// Latency histograms are sharded this many ways per group.
const SHARDS: usize = 16;

/// Everything listeners share, read-mostly.
pub struct Shared {
    pub addr: SocketAddr,
    /// `ws://host:port/socket/websocket?vsn=2.0.0` (the profile's socket path and params).
    pub ws_url: String,
    /// The target profile: which events count and where their URL and seq are.
    pub profile: Arc<crate::plan::profile::Profile>,
    pub schedule: Arc<Schedule>,
    pub correlator: Correlator,
    pub ledger: Arc<Ledger>,
    pub delivery: [Sharded; 2],
    /// Connect + upgrade + join reply.
    pub connect: Sharded,
    pub failures: Mutex<BTreeMap<String, u64>>,
    pub joined: AtomicU64,
    /// Which listeners (by `Spec::index`) joined.
    pub joined_flags: Box<[AtomicBool]>,
    /// One permit per listener that joined or gave up: the run waits for all of them.
    pub settled: Semaphore,
    pub stop: CancellationToken,
    /// Source addresses listener connections bind to, round-robin (`--source-ips`);
    /// empty: the kernel's choice.
    pub sources: crate::plan::source::SourceIps,
    /// Presence churn and reconnect storms: who does what when, and their measurements.
    pub life: Lifecycle,
}

impl Shared {
    pub fn new(
        addr: SocketAddr,
        schedule: Arc<Schedule>,
        correlator: Correlator,
        ledger: Arc<Ledger>,
        stop: CancellationToken,
        listeners: usize,
    ) -> Self {
        Self {
            addr,
            ws_url: format!("ws://{addr}/socket/websocket?vsn=2.0.0"),
            profile: crate::plan::profile::Profile::firehose(),
            schedule,
            correlator,
            ledger,
            delivery: [Sharded::new(SHARDS), Sharded::new(SHARDS)],
            connect: Sharded::new(SHARDS),
            failures: Mutex::new(BTreeMap::new()),
            joined: AtomicU64::new(0),
            joined_flags: (0..listeners).map(|_| AtomicBool::new(false)).collect(),
            settled: Semaphore::new(0),
            stop,
            sources: crate::plan::source::SourceIps::default(),
            life: Lifecycle::default(),
        }
    }

    /// Gives listeners churn and storm actions (see `lifecycle`).
    pub fn with_lifecycle(mut self, life: Lifecycle) -> Self {
        self.life = life;
        self
    }

    /// Speaks to the app `profile` describes: its socket path, event names and payload.
    pub fn with_profile(mut self, profile: Arc<crate::plan::profile::Profile>) -> Self {
        self.ws_url = profile.ws_url(self.addr);
        self.profile = profile;
        self
    }

    /// Binds listener connections to `sources`, round-robin.
    pub fn with_sources(mut self, sources: crate::plan::source::SourceIps) -> Self {
        self.sources = sources;
        self
    }

    /// Whether listener `index` joined.
    pub fn has_joined(&self, index: usize) -> bool {
        self.joined_flags.get(index).is_some_and(|f| f.load(Ordering::Acquire))
    }

    fn fail(&self, kind: impl Into<String>) {
        *self.failures.lock().entry(kind.into()).or_default() += 1;
    }
}

/// One listener to open.
#[derive(Debug, Clone)]
pub struct Spec {
    pub index: usize,
    pub group: Group,
    pub topic: String,
}

/// What a listener saw, returned when it stops.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub joined: bool,
    /// This run's `bookmark_created` events.
    pub received: u64,
    /// `bookmark_created` events of other runs or of seeding.
    pub foreign: u64,
    /// Duplicates, reordering and gaps in the topic's `seq`.
    pub seq: SeqCheck,
    pub decode_errors: u64,
    /// Any other event (deletes, replies, presence…).
    pub other: u64,
    /// The server closed the socket or channel while the run was going.
    pub closed: bool,
    /// When the last post-warm-up event arrived.
    pub last_measured_receipt: Option<Instant>,
}

/// Opens `specs` at `per_second`, each on its own task. Returns the task handles; each
/// releases one `settled` permit once joined or failed.
pub async fn open(
    shared: &Arc<Shared>,
    specs: Vec<Spec>,
    per_second: f64,
) -> Vec<tokio::task::JoinHandle<(Group, Stats)>> {
    let start = Instant::now();
    let mut handles = Vec::with_capacity(specs.len());
    for (k, spec) in specs.into_iter().enumerate() {
        // Paced on intended times, so a slow spawn does not slow the whole ramp.
        sleep_until((start + Duration::from_secs_f64(k as f64 / per_second)).into()).await;
        if shared.stop.is_cancelled() {
            break;
        }
        let shared = Arc::clone(shared);
        handles.push(tokio::spawn(async move {
            let group = spec.group;
            (group, listen(&shared, spec).await)
        }));
    }
    handles
}

async fn listen(shared: &Shared, spec: Spec) -> Stats {
    let mut stats = Stats::default();
    let started = Instant::now();
    // Boxed: the handshake's large, short-lived state would otherwise be part of this
    // long-lived future for the listener's whole life.
    // With churn or storms, `since: null` asks for the topic's epoch and seq, the
    // position a later rejoin asks to be replayed from.
    let params = if shared.life.enabled() { r#"{"since":null}"# } else { "{}" };
    let joined = Box::pin(join(shared, &spec.topic, params.to_owned())).await;
    let mut ws = match joined {
        Ok((ws, response)) => {
            if let Some(seq) = shared.life.note_join_reply(&response) {
                stats.seq.start_at(seq);
            }
            ws
        }
        Err(kind) => {
            shared.fail(kind);
            shared.settled.add_permits(1);
            return stats;
        }
    };
    shared.connect.record(spec.index, started.elapsed());
    shared.joined.fetch_add(1, Ordering::Relaxed);
    if let Some(flag) = shared.joined_flags.get(spec.index) {
        flag.store(true, Ordering::Release);
    }
    shared.settled.add_permits(1);
    stats.joined = true;

    let mut heartbeat_ref = 1u64;
    // Both futures live across iterations: re-creating them per frame would register a
    // timer and a waiter for every message received.
    let stopped = shared.stop.cancelled();
    let heartbeat = sleep_until(tokio::time::Instant::now() + HEARTBEAT_EVERY);
    // Churn and storms: armed once the traffic clock starts, then at each own action.
    // `armed`: None until the clock starts, then whether an action is still ahead.
    let (mut cursor, mut armed) = (Cursor::default(), None);
    let traffic = shared.life.started.cancelled();
    let life = sleep_until(tokio::time::Instant::now());
    tokio::pin!(stopped, heartbeat, traffic, life);
    loop {
        tokio::select! {
            biased;
            () = &mut stopped => break,
            () = &mut traffic, if armed.is_none() && shared.life.enabled() => {
                armed = Some(arm(shared, spec.index, &cursor, life.as_mut()));
            }
            () = &mut life, if armed == Some(true) => {
                ws = match Box::pin(act(shared, &spec, &mut stats, ws, &mut cursor)).await {
                    Some(ws) => ws,
                    None => break,
                };
                armed = Some(arm(shared, spec.index, &cursor, life.as_mut()));
            }
            () = &mut heartbeat => {
                heartbeat_ref += 1;
                let frame = phoenix::heartbeat_frame(&heartbeat_ref.to_string());
                if ws.send(Message::text(frame)).await.is_err() {
                    closed(shared, &mut stats, "send_failed");
                    break;
                }
                let next = heartbeat.deadline() + HEARTBEAT_EVERY;
                heartbeat.as_mut().reset(next);
            }
            msg = ws.next() => {
                let received_at = Instant::now();
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        on_text(shared, &spec, &mut stats, text.as_str(), received_at);
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let code = frame.map_or(1005, |f| u16::from(f.code));
                        closed(shared, &mut stats, format!("closed_{code}"));
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        closed(shared, &mut stats, error_kind(&e));
                        break;
                    }
                    None => {
                        closed(shared, &mut stats, "eof");
                        break;
                    }
                }
            }
        }
    }
    stats
}

/// Sets `timer` to listener `index`'s next lifecycle action; false when none is left.
fn arm(shared: &Shared, index: usize, cursor: &Cursor, timer: std::pin::Pin<&mut tokio::time::Sleep>) -> bool {
    let next = shared.life.next(index, cursor).zip(shared.schedule.t0());
    if let Some(((_, offset), t0)) = next {
        timer.reset((t0 + offset).into());
    }
    next.is_some()
}

/// Performs listener `spec`'s due churn or storm on `ws`; the socket to go on with (a
/// new one after a storm), or `None` when the listener stops. Client-initiated drops
/// and their reconnect failures are counted by `lifecycle`, never as server closes.
async fn act(shared: &Shared, spec: &Spec, stats: &mut Stats, ws: Socket, cursor: &mut Cursor) -> Option<Socket> {
    let (t0, (act, offset)) = shared.schedule.t0().zip(shared.life.next(spec.index, cursor))?;
    shared.life.advance(cursor, act);
    let intended = t0 + offset;
    let last_seq = stats.seq.last();
    let mut deliver = |text: &str, at: Instant| on_text(shared, spec, stats, text, at);
    match act {
        Act::Churn(_) => {
            let mut ws = ws;
            let done = lifecycle::churn(
                &shared.life,
                spec.index,
                &spec.topic,
                &mut ws,
                act,
                offset,
                intended,
                last_seq,
                &mut deliver,
            )
            .await;
            match done {
                Ok(()) => Some(ws),
                Err(kind) => {
                    closed(shared, stats, kind);
                    None
                }
            }
        }
        Act::Storm(_) => {
            let connect = |params: String| async move { Box::pin(join(shared, &spec.topic, params)).await };
            lifecycle::storm(
                &shared.life,
                spec.index,
                &spec.topic,
                ws,
                act,
                offset,
                intended,
                last_seq,
                &shared.stop,
                connect,
                &mut deliver,
            )
            .await
        }
    }
}

/// The target's doing only: a close frame from the server, EOF, a read or send error,
/// `phx_close`/`phx_error` on the channel. The simulator's own closes (churn, storms)
/// never come here: `listeners.closed_during_run` and exit code 8 rest on that.
fn closed(shared: &Shared, stats: &mut Stats, kind: impl Into<String>) {
    stats.closed = true;
    shared.fail(format!("during_run:{}", kind.into()));
}

fn on_text(shared: &Shared, spec: &Spec, stats: &mut Stats, text: &str, at: Instant) {
    let Ok(frame) = wire::decode_text(Vsn::V2, text) else {
        stats.decode_errors += 1;
        return;
    };
    match frame.event.as_ref() {
        event if frame.topic == spec.topic && shared.profile.events.counts(event) => {}
        events::CLOSE | events::ERROR if frame.topic == spec.topic => {
            stats.other += 1;
            closed(shared, stats, format!("channel_{}", frame.event));
            return;
        }
        event => {
            stats.other += 1;
            // Other events on the topic (`bookmark_deleted`) take a `seq` too: check it,
            // or every delete would show up as a gap in the counted events' sequence.
            if frame.topic == spec.topic
                && event != events::REPLY
                && shared.profile.events.seq.is_some()
                && let Ok(seen) = shared.profile.events.pick(frame.payload.get())
                && let Some(seq) = seen.seq
            {
                stats.seq.see(seq);
            }
            return;
        }
    }
    // The URL and seq where the profile says (`/url`, `/seq` for firehose), in one pass.
    let checks_seq = shared.profile.events.seq.is_some();
    let seen = match shared.profile.events.pick(frame.payload.get()) {
        Ok(seen) if seen.seq.is_some() || !checks_seq => seen,
        _ => {
            stats.decode_errors += 1;
            return;
        }
    };
    let Some(url) = seen.url else {
        stats.decode_errors += 1;
        return;
    };
    if let Some(seq) = seen.seq {
        stats.seq.see(seq);
    }
    let Some(i) = shared.correlator.index(&url) else {
        stats.foreign += 1;
        return;
    };
    stats.received += 1;
    let nth = shared.ledger.count(spec.group, i);
    if !shared.schedule.is_warmup(i)
        && let Some(intended) = shared.schedule.intended(i)
    {
        let elapsed = at.saturating_duration_since(intended);
        shared.delivery[spec.group as usize].record(spec.index, elapsed);
        shared.ledger.reach.arrived(spec.group, i, nth, elapsed, spec.index);
        stats.last_measured_receipt = Some(at);
    }
}

/// Connects, upgrades and joins `topic` with the JSON join `params`; the `ok` reply's
/// response, or a failure kind for the report.
async fn join(shared: &Shared, topic: &str, params: String) -> Result<(Socket, serde_json::Value), String> {
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let tcp = match timeout_at(deadline, phoenix::connect(shared.addr, shared.sources.next())).await {
        Err(_) => return Err("connect_timeout".into()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Err("connect_refused".into()),
        Ok(Err(e)) => return Err(format!("connect_{:?}", e.kind()).to_lowercase()),
        Ok(Ok(tcp)) => tcp,
    };
    let _ = tcp.set_nodelay(true);
    // Our own upgrade, not tungstenite's: it leaves the socket a 1 KiB read buffer instead
    // of the handshake's 4 KiB one (see `phoenix::upgrade`).
    let mut ws = match timeout_at(deadline, phoenix::upgrade_url(tcp, &shared.ws_url)).await {
        Err(_) => return Err("upgrade_timeout".into()),
        Ok(Err(e)) => return Err(format!("upgrade_{}", e.kind())),
        Ok(Ok(ws)) => ws,
    };
    let params = serde_json::value::RawValue::from_string(params).map_err(|_| "join_params_invalid".to_owned())?;
    let frame = wire::encode_text(Vsn::V2, Some("1"), Some("1"), topic, events::JOIN, &*params);
    ws.send(Message::text(frame)).await.map_err(|e| format!("join_send_{}", error_kind(&e)))?;
    let response = phoenix::await_join_response(&mut ws, deadline, |e| format!("join_{}", error_kind(e))).await?;
    Ok((ws, response))
}

fn error_kind(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => "closed".into(),
        tungstenite::Error::Io(io) => format!("io_{:?}", io.kind()).to_lowercase(),
        tungstenite::Error::Protocol(_) => "protocol".into(),
        tungstenite::Error::Capacity(_) => "capacity".into(),
        tungstenite::Error::Http(resp) => format!("http_{}", resp.status().as_u16()),
        _ => "other".into(),
    }
}

#[cfg(test)]
mod tests {
    use firehose_app::wire::{BookmarkEvent, BookmarkUser, encode_broadcast};

    use super::*;

    #[test]
    fn a_listener_task_stays_small() {
        fn size_of_future<F: std::future::Future>(_: &F) -> usize {
            std::mem::size_of::<F>()
        }
        let shared = Shared::new(
            "127.0.0.1:9".parse().unwrap(),
            Arc::new(Schedule::new(1.0, 1, 0, 1, 1, 0.0)),
            Correlator::new("x", 1),
            Arc::new(Ledger::new(1)),
            CancellationToken::new(),
            1,
        );
        let spec = Spec { index: 0, group: Group::Firehose, topic: "bookmarks:firehose".into() };
        let size = size_of_future(&listen(&shared, spec));
        eprintln!("listener future: {size} bytes");
        assert!(size < 2048, "listener future is {size} bytes");
    }

    #[test]
    fn the_borrowed_view_reads_a_real_broadcast() {
        let event = BookmarkEvent {
            id: 1,
            title: "t".into(),
            description: String::new(),
            url: "https://e.com/#sim-r-7".into(),
            tags: vec!["rust".into()],
            user: BookmarkUser { id: 1, username: "u".into() },
            inserted_at: "2026-01-01T00:00:00.000000Z".into(),
            seq: 9,
        };
        let text = encode_broadcast(Vsn::V2, "bookmarks:firehose", "bookmark_created", &event);
        let frame = wire::decode_text(Vsn::V2, &text).unwrap();
        let profile = crate::plan::profile::Profile::firehose();
        assert!(profile.events.counts(&frame.event));
        let seen = profile.events.pick(frame.payload.get()).unwrap();
        assert!(matches!(seen.url, Some(std::borrow::Cow::Borrowed("https://e.com/#sim-r-7"))), "{seen:?}");
        assert_eq!(seen.seq, Some(9));
    }
}
