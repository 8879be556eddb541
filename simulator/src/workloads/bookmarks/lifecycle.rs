//! Listener lifecycles during the traffic phase: presence churn (a listener leaves its
//! channel with `phx_leave` and rejoins on the same socket after a short absence) and
//! reconnect storms (a seeded fraction of listener sockets dropped by the client at the
//! same instant, reconnecting on phoenix.js's default backoff).
//!
//! Both rejoin with `since: {seq, epoch}` (the last `seq` the listener saw on its topic,
//! the server epoch from its first join), so the server replays every event broadcast
//! while the listener was away. The ledger therefore stays exact without any change:
//! a churned or dropped listener is still owed every event of the run, and a replayed
//! event counts like a live one (its delivery latency includes the time away).
//!
//! Who churns or drops when is computed, not communicated: churn `k` (intended at
//! `t0 + curve.offset(k)`) belongs to the listener `hash(seed, k) % listeners`, storm
//! `j` drops listener `i` when `hash(seed, j, i) < fraction`. Each listener walks its own
//! times with a small [`Cursor`] and one timer in its select loop, like the heartbeat;
//! nothing here adds a channel or a lock per listener. Measurements go to shared,
//! sharded histograms and atomics ([`ActionStats`]).

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use firehose_app::wire::{self, Vsn, events};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize, Serializer};
use tokio::time::timeout_at;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::phoenix::Socket;
use crate::plan::stages::RateCurve;
use crate::report::histo::Sharded;

/// phoenix.js's default `reconnectAfterMs` (the `Socket` constructor in
/// `assets/js/phoenix/socket.js` of the `phoenix` npm package): the delay before try
/// `n` (1-based) is the n-th of these, and 5000 ms for every later try. phoenix.js
/// applies no jitter by default.
pub const RECONNECT_AFTER_MS: [u64; 9] = [10, 50, 100, 150, 200, 250, 500, 1000, 2000];
/// phoenix.js's delay for every try past the listed ones.
pub const RECONNECT_AFTER_MS_LATER: u64 = 5000;

/// The `actions.<kind>` keys this module reports.
pub const KINDS: [&str; 2] = ["presence_churn", "reconnect_storm"];

/// How long a churned listener waits for the server's leave or join reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the `phx_close` that follows a leave reply.
const CLOSE_AFTER_LEAVE: Duration = Duration::from_millis(500);
const SHARDS: usize = 8;

/// The delay before reconnect try `tries` (1-based), phoenix.js's default schedule.
pub fn reconnect_after(tries: u32) -> Duration {
    let ms = (tries as usize)
        .checked_sub(1)
        .and_then(|i| RECONNECT_AFTER_MS.get(i))
        .copied()
        .unwrap_or(RECONNECT_AFTER_MS_LATER);
    Duration::from_millis(ms)
}

/// With jitter on, each delay `d` becomes uniform in `[d/2, d]` ("equal jitter"),
/// drawn from `key` (seed, listener, try): the schedule's shape stays, but a storm's
/// sockets no longer retry in lock-step.
pub fn jittered(d: Duration, key: u64) -> Duration {
    d / 2 + d.mul_f64(unit(splitmix(key)) / 2.0)
}

/// `[actions.presence_churn]` / `--churn-rate`: listeners leaving and rejoining.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChurnPlan {
    /// Leave-and-rejoin actions per second over all listeners (scaled by the stages).
    pub rate_per_s: f64,
    /// Time between the leave and the rejoin.
    #[serde(rename = "absence_ms", serialize_with = "crate::plan::millis")]
    pub absence: Duration,
}

/// `[actions.reconnect_storm]` / `--storm-at`, `--storm-every`: sockets dropped at once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StormPlan {
    /// Offsets from the start of the traffic phase at which storms hit.
    #[serde(rename = "at_s", serialize_with = "secs_list")]
    pub at: Vec<Duration>,
    /// Fraction of the listener sockets each storm drops (each listener independently,
    /// seeded).
    pub fraction: f64,
    /// Equal jitter on phoenix.js's reconnect delays (see [`jittered`]).
    pub jitter: bool,
}

fn secs_list<S: Serializer>(list: &[Duration], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(list.iter().map(Duration::as_secs_f64))
}

/// One traffic kind's measurements, shared by every listener.
pub struct ActionStats {
    /// Rejoined − intended, actions past the warm-up.
    pub corrected: Sharded,
    /// Rejoined − actual send of the (first successful) join, same actions.
    pub uncorrected: Sharded,
    /// Actual start − intended start, every action.
    pub lag: Sharded,
    /// Actions scheduled for listeners that had joined.
    pub sent: AtomicU64,
    /// Actions that ended rejoined.
    pub ok: AtomicU64,
    /// Events the server replayed in the rejoin replies.
    pub replayed: AtomicU64,
    /// Connection tries (reconnect storms): all of them, and the most for one socket.
    pub attempts: AtomicU64,
    pub max_attempts: AtomicU64,
    pub errors: Mutex<BTreeMap<String, u64>>,
}

impl Default for ActionStats {
    fn default() -> Self {
        Self {
            corrected: Sharded::new(SHARDS),
            uncorrected: Sharded::new(SHARDS),
            lag: Sharded::new(SHARDS),
            sent: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
            max_attempts: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
        }
    }
}

impl ActionStats {
    pub fn error(&self, kind: impl Into<String>) {
        *self.errors.lock().entry(kind.into()).or_default() += 1;
    }
}

/// The churn actions, grouped by listener (a counting sort of `hash(seed, k) % n`).
struct Churn {
    curve: RateCurve,
    absence: Duration,
    warmup: u64,
    /// `first[i]..first[i + 1]` indexes `order` for listener `i`.
    first: Box<[u32]>,
    /// Churn indices `k`, ascending within each listener.
    order: Box<[u32]>,
}

/// What the listeners of a run do besides listening; read-only once built.
#[derive(Default)]
pub struct Lifecycle {
    churn: Option<Churn>,
    storms: Vec<Duration>,
    storm_fraction: f64,
    jitter: bool,
    seed: u64,
    warmup: Duration,
    listeners: usize,
    /// Cancelled when the traffic phase's clock starts: listeners then arm their timer.
    pub started: CancellationToken,
    /// The server's epoch, from the first join reply (topics share it).
    epoch: OnceLock<Box<str>>,
    pub churn_stats: ActionStats,
    pub storm_stats: ActionStats,
}

/// Where one listener is in its own list of actions.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cursor {
    churn: u32,
    storm: u32,
}

/// The next thing a listener does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Act {
    /// Churn `k`: leave, wait the absence, rejoin.
    Churn(u64),
    /// Storm `j`: drop the socket, reconnect.
    Storm(usize),
}

impl Lifecycle {
    /// `churn` (with the run's stage curve for its rate) and `storm` over `listeners`.
    pub fn new(
        churn: Option<(&ChurnPlan, RateCurve)>,
        storm: Option<&StormPlan>,
        listeners: usize,
        seed: u64,
        warmup: Duration,
    ) -> Self {
        let churn = churn.filter(|_| listeners > 0).map(|(plan, curve)| {
            let count = curve.count().min(u64::from(u32::MAX)) as u32;
            let victim = |k: u32| (splitmix(seed ^ 0x6368_7572_6e00 ^ u64::from(k)) % listeners as u64) as usize;
            let mut first = vec![0u32; listeners + 1];
            for k in 0..count {
                first[victim(k) + 1] += 1;
            }
            for i in 0..listeners {
                first[i + 1] += first[i];
            }
            let mut fill = first.clone();
            let mut order = vec![0u32; count as usize];
            for k in 0..count {
                let slot = &mut fill[victim(k)];
                order[*slot as usize] = k;
                *slot += 1;
            }
            Churn {
                warmup: curve.count_before(warmup),
                curve,
                absence: plan.absence,
                first: first.into(),
                order: order.into(),
            }
        });
        Self {
            churn,
            storms: storm.map(|s| s.at.clone()).unwrap_or_default(),
            storm_fraction: storm.map_or(0.0, |s| s.fraction),
            jitter: storm.is_some_and(|s| s.jitter),
            seed,
            warmup,
            listeners,
            ..Self::default()
        }
    }

    /// Whether listeners have anything to do besides listening.
    pub fn enabled(&self) -> bool {
        self.churn.as_ref().is_some_and(|c| !c.order.is_empty()) || !self.storms.is_empty()
    }

    /// Churn actions scheduled over all listeners.
    pub fn churns_scheduled(&self) -> u64 {
        self.churn.as_ref().map_or(0, |c| c.order.len() as u64)
    }

    /// The absence between a churned listener's leave and its rejoin.
    pub fn absence(&self) -> Duration {
        self.churn.as_ref().map_or(Duration::ZERO, |c| c.absence)
    }

    /// Whether storm `j` drops listener `index`.
    pub fn storm_hits(&self, j: usize, index: usize) -> bool {
        let key = self.seed ^ 0x7374_6f72_6d00 ^ ((j as u64) << 40) ^ index as u64;
        unit(splitmix(key)) < self.storm_fraction
    }

    /// Listener `index`'s next action and its offset from t0, not yet consumed.
    pub fn next(&self, index: usize, cursor: &Cursor) -> Option<(Act, Duration)> {
        let churn = self.churn.as_ref().and_then(|c| {
            let (from, to) = (*c.first.get(index)?, *c.first.get(index + 1)?);
            let at = from + cursor.churn;
            (at < to).then(|| {
                let k = u64::from(c.order[at as usize]);
                (Act::Churn(k), c.curve.offset(k))
            })
        });
        let storm = (cursor.storm as usize..self.storms.len())
            .find(|&j| self.storm_hits(j, index))
            .map(|j| (Act::Storm(j), self.storms[j]));
        match (churn, storm) {
            (Some(c), Some(s)) => Some(if s.1 <= c.1 { s } else { c }),
            (c, s) => c.or(s),
        }
    }

    /// Marks `act` done in `cursor`.
    pub fn advance(&self, cursor: &mut Cursor, act: Act) {
        match act {
            Act::Churn(_) => cursor.churn += 1,
            Act::Storm(j) => cursor.storm = j as u32 + 1,
        }
    }

    /// Whether an action intended at `offset` falls in the warm-up.
    fn is_warmup(&self, act: Act, offset: Duration) -> bool {
        match (act, &self.churn) {
            (Act::Churn(k), Some(c)) => k < c.warmup,
            _ => offset < self.warmup,
        }
    }

    /// Remembers the server epoch from a join reply (`{epoch, seq, …}`); returns the
    /// reply's `seq`.
    pub fn note_join_reply(&self, response: &serde_json::Value) -> Option<u64> {
        if let Some(epoch) = response.get("epoch").and_then(|e| e.as_str()) {
            let _ = self.epoch.set(epoch.into());
        }
        response.get("seq").and_then(serde_json::Value::as_u64)
    }

    /// Join parameters asking the server to replay everything after `seq` (or only for
    /// its position when nothing was seen yet).
    pub fn since(&self, seq: Option<u64>) -> JoinParams<'_> {
        let since = match (seq, self.epoch.get()) {
            (Some(seq), Some(epoch)) => Some(Since { seq, epoch }),
            _ => None,
        };
        JoinParams { since: Some(since) }
    }

    fn stats(&self, act: Act) -> &ActionStats {
        match act {
            Act::Churn(_) => &self.churn_stats,
            Act::Storm(_) => &self.storm_stats,
        }
    }

    fn record(&self, act: Act, index: usize, offset: Duration, intended: Instant, sent: Instant) {
        let stats = self.stats(act);
        let now = Instant::now();
        stats.ok.fetch_add(1, Ordering::Relaxed);
        if !self.is_warmup(act, offset) {
            stats.corrected.record(index, now.saturating_duration_since(intended));
            stats.uncorrected.record(index, now.saturating_duration_since(sent));
        }
    }
}

/// The `since` join parameter: absent (plain join), `null` (tell me where the topic
/// is) or a position to replay from.
#[derive(Debug, Serialize)]
pub struct JoinParams<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<Option<Since<'a>>>,
}

impl JoinParams<'_> {
    /// No `since`: an ordinary join.
    pub const PLAIN: JoinParams<'static> = JoinParams { since: None };
}

#[derive(Debug, Serialize)]
pub struct Since<'a> {
    pub seq: u64,
    pub epoch: &'a str,
}

/// A join reply's recovery: the events missed since the position asked for.
#[derive(Deserialize)]
struct Recovery {
    #[serde(default)]
    recovered: bool,
    #[serde(default)]
    missed: Vec<Missed>,
}

#[derive(Deserialize)]
struct Missed {
    event: String,
    payload: Box<serde_json::value::RawValue>,
}

/// Feeds the replayed events of a join reply to `deliver` as if broadcast now; returns
/// how many, or `None` when the server could not recover the gap.
fn replay(topic: &str, response: serde_json::Value, deliver: &mut (dyn FnMut(&str, Instant) + Send)) -> Option<u64> {
    let recovery: Recovery = serde_json::from_value(response).ok()?;
    let at = Instant::now();
    for m in &recovery.missed {
        let text = wire::encode_text(Vsn::V2, None, None, topic, &m.event, &*m.payload);
        deliver(&text, at);
    }
    recovery.recovered.then_some(recovery.missed.len() as u64)
}

/// What reading up to a reply found.
enum Reply {
    Ok(serde_json::Value),
    /// An error reply (its reason) or no reply in time.
    Refused(String),
}

/// Stands for "the `phx_close` of the topic" where [`read_until_reply`] takes a ref.
const CLOSE: &str = "\u{0}close";

/// Reads `ws` until the `phx_reply` to `msg_ref` (or, for [`CLOSE`], until the topic's
/// `phx_close`), handing every other frame to `deliver` except `phx_close` of `topic`
/// (the close that follows our own leave).
/// `Err` is a socket failure kind.
async fn read_until_reply(
    ws: &mut Socket,
    topic: &str,
    msg_ref: &str,
    deadline: tokio::time::Instant,
    deliver: &mut (dyn FnMut(&str, Instant) + Send),
) -> Result<Reply, String> {
    loop {
        let msg = match timeout_at(deadline, ws.next()).await {
            Err(_) => return Ok(Reply::Refused("reply_timeout".into())),
            Ok(None) => return Err("eof".into()),
            Ok(Some(Err(e))) => return Err(format!("read_{e}").chars().take(48).collect()),
            Ok(Some(Ok(Message::Close(_)))) => return Err("closed".into()),
            Ok(Some(Ok(msg))) => msg,
        };
        let at = Instant::now();
        let Message::Text(text) = msg else { continue };
        let Ok(frame) = wire::decode_text(Vsn::V2, text.as_str()) else {
            deliver(text.as_str(), at);
            continue;
        };
        if frame.event == events::REPLY && frame.msg_ref.as_deref() == Some(msg_ref) {
            #[derive(Deserialize)]
            struct Body {
                status: String,
                #[serde(default)]
                response: serde_json::Value,
            }
            let Ok(body) = frame.payload_as::<Body>() else { return Ok(Reply::Refused("reply_undecodable".into())) };
            if body.status == "ok" {
                return Ok(Reply::Ok(body.response));
            }
            let reason = body.response.get("reason").and_then(|r| r.as_str()).unwrap_or("unknown");
            return Ok(Reply::Refused(format!("join_error:{reason}")));
        }
        if frame.event == events::CLOSE && frame.topic == topic {
            if msg_ref == CLOSE {
                return Ok(Reply::Ok(serde_json::Value::Null));
            }
            continue;
        }
        deliver(text.as_str(), at);
    }
}

/// Churn `k` of one listener on `ws`: `phx_leave`, wait until `intended + absence`,
/// rejoin with `since`, replay. `intended` is the leave's intended instant. `Err` is a
/// socket failure (the listener stops); churn-level failures are counted and `Ok`.
#[allow(clippy::too_many_arguments)]
pub async fn churn(
    life: &Lifecycle,
    index: usize,
    topic: &str,
    ws: &mut Socket,
    act: Act,
    offset: Duration,
    intended: Instant,
    last_seq: Option<u64>,
    deliver: &mut (dyn FnMut(&str, Instant) + Send),
) -> Result<(), String> {
    let stats = &life.churn_stats;
    stats.sent.fetch_add(1, Ordering::Relaxed);
    stats.lag.record(index, Instant::now().saturating_duration_since(intended));
    let leave = wire::encode_text(Vsn::V2, Some("1"), Some("L"), topic, events::LEAVE, &serde_json::Map::new());
    ws.send(Message::text(leave)).await.map_err(|e| format!("send_{e}").chars().take(48).collect::<String>())?;
    let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
    // Events broadcast before the leave took effect still arrive, and are counted.
    let mut last = last_seq;
    let mut track = |text: &str, at: Instant| {
        if let Some(seq) = seq_of(text) {
            last = Some(last.map_or(seq, |l| l.max(seq)));
        }
        deliver(text, at);
    };
    if let Reply::Refused(kind) = read_until_reply(ws, topic, "L", deadline, &mut track).await? {
        stats.error(format!("leave_{kind}"));
    }
    // The close pushed after the leave reply; a server that sends none costs this wait.
    let close_by = tokio::time::Instant::now() + CLOSE_AFTER_LEAVE;
    let _ = read_until_reply(ws, topic, CLOSE, close_by, &mut track).await?;

    let rejoin_at = intended + life.absence();
    // Keep reading while away: a broadcast that raced the leave on the server may still
    // arrive after its reply. Counted now, it moves `since` past itself; read only after
    // the rejoin went out, it would come again in the replay (a duplicate).
    let _ = read_until_reply(ws, topic, "\u{0}away", rejoin_at.into(), &mut track).await?;
    let sent = Instant::now();
    // join_ref "1" again: the server ignores a later leave whose join_ref is not the
    // current join's, and every join of this listener (first, storm, churn) uses "1".
    let join = wire::encode_text(Vsn::V2, Some("1"), Some("J"), topic, events::JOIN, &life.since(last));
    ws.send(Message::text(join)).await.map_err(|e| format!("send_{e}").chars().take(48).collect::<String>())?;
    let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
    match read_until_reply(ws, topic, "J", deadline, deliver).await? {
        Reply::Refused(kind) => stats.error(kind),
        Reply::Ok(response) => match replay(topic, response, deliver) {
            Some(n) => {
                stats.replayed.fetch_add(n, Ordering::Relaxed);
                life.record(act, index, offset, rejoin_at, sent);
            }
            None => stats.error("unrecovered"),
        },
    }
    Ok(())
}

/// Extracts `"seq":N` from a broadcast's text without a full decode (churn only).
fn seq_of(text: &str) -> Option<u64> {
    let frame = wire::decode_text(Vsn::V2, text).ok()?;
    #[derive(Deserialize)]
    struct Seq {
        seq: u64,
    }
    frame.payload_as::<Seq>().ok().map(|s| s.seq)
}

/// Tries `attempt` on phoenix.js's reconnect schedule (jittered from `jitter_key` when
/// given) until it succeeds or `stop` is cancelled; returns the result and the tries.
pub async fn retry<T, F, Fut>(
    mut attempt: F,
    jitter_key: Option<u64>,
    stop: &CancellationToken,
    mut failed: impl FnMut(String),
) -> (Option<T>, u32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let mut tries = 0u32;
    loop {
        tries += 1;
        let mut delay = reconnect_after(tries);
        if let Some(key) = jitter_key {
            delay = jittered(delay, key ^ u64::from(tries).wrapping_mul(0x9E37_79B9));
        }
        tokio::select! {
            () = stop.cancelled() => return (None, tries - 1),
            () = tokio::time::sleep(delay) => {}
        }
        match attempt().await {
            Ok(value) => return (Some(value), tries),
            Err(kind) => failed(kind),
        }
    }
}

/// Storm `j` of one listener: `ws` is dropped (the client closes the TCP connection
/// without a close frame, like a lost network), then the listener reconnects with
/// `connect` on phoenix.js's schedule and rejoins with `since`. Returns the new socket,
/// or `None` when the run stopped first.
#[allow(clippy::too_many_arguments)]
pub async fn storm<F, Fut>(
    life: &Lifecycle,
    index: usize,
    topic: &str,
    ws: Socket,
    act: Act,
    offset: Duration,
    intended: Instant,
    last_seq: Option<u64>,
    stop: &CancellationToken,
    mut connect: F,
    deliver: &mut (dyn FnMut(&str, Instant) + Send),
) -> Option<Socket>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(Socket, serde_json::Value), String>>,
{
    let stats = &life.storm_stats;
    stats.sent.fetch_add(1, Ordering::Relaxed);
    stats.lag.record(index, Instant::now().saturating_duration_since(intended));
    drop(ws);
    let params = serde_json::to_string(&life.since(last_seq)).unwrap_or_else(|_| "{}".into());
    let jitter = life.jitter.then_some(life.seed ^ ((index as u64) << 20) ^ offset.as_nanos() as u64);
    let mut sent = Instant::now();
    let attempt = || {
        sent = Instant::now();
        connect(params.clone())
    };
    let (joined, tries) = retry(attempt, jitter, stop, |kind| stats.error(kind)).await;
    stats.attempts.fetch_add(u64::from(tries), Ordering::Relaxed);
    stats.max_attempts.fetch_max(u64::from(tries), Ordering::Relaxed);
    let Some((ws, response)) = joined else {
        stats.error("abandoned_at_stop");
        return None;
    };
    match replay(topic, response, deliver) {
        Some(n) => {
            stats.replayed.fetch_add(n, Ordering::Relaxed);
            life.record(act, index, offset, intended, sent);
        }
        None => stats.error("unrecovered"),
    }
    Some(ws)
}

/// Adds `presence_churn` and `reconnect_storm` to `report.model.actions`, with their
/// histograms (`action_<kind>_{corrected,uncorrected,lag}`) and JSON pointers.
/// `rates` are the kinds' mean planned rates (storms per second for storms); `traffic`
/// the traffic phase's length. A storm's `scheduled` counts the sockets it drops.
pub fn add_to_report(life: &Lifecycle, report: &mut crate::report::Report, rates: [f64; 2], traffic: Duration) {
    let storm_scheduled =
        (0..life.storms.len()).map(|j| (0..life.listeners).filter(|&i| life.storm_hits(j, i)).count() as u64).sum();
    let kinds = [
        ("presence_churn", &life.churn_stats, rates[0], life.churns_scheduled()),
        ("reconnect_storm", &life.storm_stats, rates[1], storm_scheduled),
    ];
    for (name, stats, rate, scheduled) in kinds {
        if rate <= 0.0 {
            continue;
        }
        let (corrected, uncorrected, lag) = (stats.corrected.merged(), stats.uncorrected.merged(), stats.lag.merged());
        let errors = stats.errors.lock().clone();
        let error_count: u64 = errors.values().sum();
        let ok = stats.ok.load(Ordering::Relaxed);
        let mut detail = BTreeMap::new();
        detail.insert("replayed".to_owned(), stats.replayed.load(Ordering::Relaxed));
        if name == "reconnect_storm" {
            detail.insert("storms".to_owned(), life.storms.len() as u64);
            detail.insert("attempts".to_owned(), stats.attempts.load(Ordering::Relaxed));
            detail.insert("max_attempts".to_owned(), stats.max_attempts.load(Ordering::Relaxed));
        }
        let action = crate::report::model::ActionReport {
            rate_per_s: rate,
            scheduled,
            sent: stats.sent.load(Ordering::Relaxed),
            ok,
            errors,
            error_count,
            throughput_per_s: ok as f64 / traffic.as_secs_f64().max(1e-9),
            latency_corrected: crate::report::histo::Summary::of(&corrected),
            latency_uncorrected: crate::report::histo::Summary::of(&uncorrected),
            lag: crate::report::histo::Summary::of(&lag),
            detail,
        };
        let m = &mut report.model;
        m.actions.insert(name.to_owned(), action);
        for (suffix, h, field) in [
            ("corrected", corrected, "latency_corrected"),
            ("uncorrected", uncorrected, "latency_uncorrected"),
            ("lag", lag, "lag"),
        ] {
            let hname = format!("action_{name}_{suffix}");
            m.histograms.insert(hname.clone(), crate::report::files::hgrm_file_name(&hname));
            m.histogram_paths.insert(hname.clone(), format!("/actions/{name}/{field}"));
            report.histograms.push((hname, h));
        }
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::stages::Stage;

    #[test]
    fn the_schedule_is_phoenix_js_default() {
        let delays: Vec<u64> = (1..=11).map(|t| reconnect_after(t).as_millis() as u64).collect();
        assert_eq!(delays, [10, 50, 100, 150, 200, 250, 500, 1000, 2000, 5000, 5000]);
        for key in 0..100 {
            let d = jittered(Duration::from_millis(100), key);
            assert!(d >= Duration::from_millis(50) && d <= Duration::from_millis(100), "{d:?}");
        }
    }

    #[test]
    fn every_churn_belongs_to_exactly_one_listener_in_time_order() {
        let plan = ChurnPlan { rate_per_s: 10.0, absence: Duration::from_millis(200) };
        let curve = RateCurve::staged(10.0, 1.0, &[Stage { duration: Duration::from_secs(5), scale: 1.0 }]);
        let life = Lifecycle::new(Some((&plan, curve)), None, 7, 42, Duration::from_secs(1));
        assert_eq!(life.churns_scheduled(), 50);
        let mut seen = Vec::new();
        for i in 0..7 {
            let mut cursor = Cursor::default();
            let mut last = Duration::ZERO;
            while let Some((act, at)) = life.next(i, &cursor) {
                assert!(at >= last);
                last = at;
                let Act::Churn(k) = act else { panic!("no storms planned") };
                seen.push(k);
                life.advance(&mut cursor, act);
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn storms_drop_about_the_fraction_and_interleave_with_churn() {
        let storm =
            StormPlan { at: vec![Duration::from_secs(1), Duration::from_secs(3)], fraction: 0.3, jitter: false };
        let life = Lifecycle::new(None, Some(&storm), 1000, 9, Duration::ZERO);
        let hit = (0..1000).filter(|&i| life.storm_hits(0, i)).count();
        assert!((240..360).contains(&hit), "{hit}");
        let again = Lifecycle::new(None, Some(&storm), 1000, 9, Duration::ZERO);
        assert!((0..1000).all(|i| life.storm_hits(1, i) == again.storm_hits(1, i)));
        let i = (0..1000).find(|&i| life.storm_hits(0, i) && life.storm_hits(1, i)).unwrap();
        let mut cursor = Cursor::default();
        assert_eq!(life.next(i, &cursor), Some((Act::Storm(0), Duration::from_secs(1))));
        life.advance(&mut cursor, Act::Storm(0));
        assert_eq!(life.next(i, &cursor), Some((Act::Storm(1), Duration::from_secs(3))));
        life.advance(&mut cursor, Act::Storm(1));
        assert_eq!(life.next(i, &cursor), None);
    }

    #[tokio::test]
    async fn reconnects_follow_the_backoff_against_a_port_that_refuses_for_a_while() {
        // A real port: free it, so connects are refused, and listen again after 400 ms.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let opened = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
            let _ = listener.accept().await;
        });
        let start = Instant::now();
        let tries = std::sync::Mutex::new(Vec::new());
        let attempt = || {
            tries.lock().unwrap().push(start.elapsed());
            async move { tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("{:?}", e.kind())) }
        };
        let mut failures = Vec::new();
        let (stream, n) = retry(attempt, None, &CancellationToken::new(), |k| failures.push(k)).await;
        assert!(stream.is_some());
        let at = tries.into_inner().unwrap();
        // Cumulative delays 10, 60, 160, 310, 510 ms: refused until 400 ms, so try 5.
        assert_eq!(n, 5, "{at:?} {failures:?}");
        assert!(failures.iter().all(|f| f == "ConnectionRefused"), "{failures:?}");
        for (k, expect_ms) in [10u64, 60, 160, 310, 510].iter().enumerate() {
            let t = at[k].as_millis() as u64;
            assert!(t >= *expect_ms && t < expect_ms + 40, "try {} at {t} ms, expected ~{expect_ms}", k + 1);
        }
        opened.await.unwrap();
    }
}
