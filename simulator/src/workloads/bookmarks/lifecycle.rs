//! Listener lifecycles during the traffic phase: presence churn (a listener leaves its
//! channel with `phx_leave` and rejoins on the same socket after a short absence) and
//! reconnect storms (a seeded fraction of listener sockets dropped by the client at the
//! same instant, reconnecting on phoenix.js's default backoff).
//!
//! A storm's reconnect goes back to the listener's target, or to the next one when that
//! refuses it (see `engine::route`), through the same [`reconnect`] as a listener whose
//! socket the target closed (see `workloads::failover`).
//!
//! Both rejoin with `since: {seq, epoch}` (the last `seq` the listener saw on its topic,
//! the server epoch from its first join), so the server replays every event broadcast
//! while the listener was away: a churned or dropped listener is still owed every
//! event of the run, and a replayed event counts like a live one (its delivery latency
//! includes the time away; a replay of an event it already had is a duplicate).
//!
//! Who churns or drops when is computed, not communicated: churn `k` (intended at
//! `t0 + curve.offset(k)`) belongs to the listener `hash(seed, k) % listeners`, storm
//! `j` drops listener `i` when `hash(seed, j, i) < fraction`. Each listener walks its own
//! times with a small [`Cursor`] and one timer, like the heartbeat; nothing here adds a
//! channel or a lock per listener. Each act is a scheduled action of its kind
//! (`presence_churn`, `reconnect_storm`) in that kind's `KindStats`: lag, latency from
//! the intended rejoin, errors.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use firehose_app::wire::{self, Vsn, events};
use tokio_util::sync::CancellationToken;

use crate::engine::stats::KindStats;
use crate::phoenix::{Ended, Failure, Flow, JoinParams, Position, Socket, replay};
use crate::plan::lifecycle::{ChurnPlan, StormPlan};
use crate::plan::seeded::{draw, splitmix64};
use crate::plan::stages::RateCurve;
use crate::workloads::failover::{Home, reconnect};

/// How long a churned listener waits for the server's leave or join reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the `phx_close` that follows a leave reply.
const CLOSE_AFTER_LEAVE: Duration = Duration::from_millis(500);

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
pub struct Lifecycle {
    churn: Option<Churn>,
    storms: Vec<Duration>,
    storm_fraction: f64,
    jitter: bool,
    seed: u64,
    warmup: Duration,
    listeners: usize,
    /// The server's epoch, from the first join reply (topics share it).
    epoch: OnceLock<Box<str>>,
    churn_stats: Option<Arc<KindStats>>,
    storm_stats: Option<Arc<KindStats>>,
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
        stats: (Option<Arc<KindStats>>, Option<Arc<KindStats>>),
    ) -> Self {
        let churn = churn.filter(|_| listeners > 0).map(|(plan, curve)| {
            let count = curve.count().min(u64::from(u32::MAX)) as u32;
            let victim = |k: u32| (splitmix64(seed ^ 0x6368_7572_6e00 ^ u64::from(k)) % listeners as u64) as usize;
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
            epoch: OnceLock::new(),
            churn_stats: stats.0,
            storm_stats: stats.1,
        }
    }

    /// Whether listeners have anything to do besides listening.
    pub fn enabled(&self) -> bool {
        self.churn.as_ref().is_some_and(|c| !c.order.is_empty()) || !self.storms.is_empty()
    }

    /// Storms planned.
    pub fn storms(&self) -> usize {
        self.storms.len()
    }

    /// Sockets dropped over all storms.
    pub fn storm_drops(&self) -> u64 {
        (0..self.storms.len()).map(|j| (0..self.listeners).filter(|&i| self.storm_hits(j, i)).count() as u64).sum()
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
        draw(key) < self.storm_fraction
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

    /// Remembers the server epoch from a join reply; returns the reply's `seq`.
    pub fn note_join_reply(&self, response: &serde_json::Value) -> Option<u64> {
        let position = Position::of(response);
        if let Some(epoch) = position.epoch {
            let _ = self.epoch.set(epoch.into());
        }
        position.seq
    }

    /// Join parameters asking the server to replay everything after `seq` (or only for
    /// its position when nothing was seen yet).
    pub fn since(&self, seq: Option<u64>) -> JoinParams<'_> {
        JoinParams::after(seq, self.epoch.get().map(|e| &**e))
    }

    fn stats(&self, act: Act) -> Option<&KindStats> {
        match act {
            Act::Churn(_) => self.churn_stats.as_deref(),
            Act::Storm(_) => self.storm_stats.as_deref(),
        }
    }

    /// The act went out `at` (its lag).
    fn sent(&self, act: Act, index: usize, intended: Instant, at: Instant) {
        if let Some(stats) = self.stats(act) {
            stats.sent(index, intended, at);
        }
    }

    /// The act ended rejoined (`Ok`) or failed (`Err(kind)`), `sent` being when the
    /// (last) join went out.
    fn done(
        &self,
        act: Act,
        index: usize,
        offset: Duration,
        intended: Instant,
        sent: Option<Instant>,
        outcome: Result<(), &str>,
    ) {
        if let Some(stats) = self.stats(act) {
            let measured = !self.is_warmup(act, offset);
            stats.answered(index, measured, intended, sent, Instant::now(), outcome);
        }
    }

    fn error(&self, act: Act, kind: &str) {
        if let Some(stats) = self.stats(act) {
            stats.error(kind);
        }
    }

    fn detail(&self, act: Act, name: &str, n: u64) {
        if let Some(stats) = self.stats(act) {
            stats.add_detail(name, n);
        }
    }
}

/// Churn `k` of listener `index` on `socket`: `phx_leave`, keep reading until
/// `intended + absence`, rejoin with `since` and replay. `deliver` takes every frame read
/// meanwhile (events broadcast before the leave took effect still count); `last_seq`
/// reads the listener's latest `seq` through it. `Err` is a socket failure (the
/// listener stops); a refused leave or rejoin is counted and `Ok`.
#[allow(clippy::too_many_arguments)]
pub async fn churn(
    life: &Lifecycle,
    index: usize,
    topic: &str,
    socket: &mut Socket,
    act: Act,
    offset: Duration,
    intended: Instant,
    deliver: &mut (dyn FnMut(&str, Instant) + Send),
    last_seq: &(dyn Fn() -> Option<u64> + Sync),
) -> Result<(), Failure> {
    life.sent(act, index, intended, Instant::now());
    socket.push(topic, "1", "L", events::LEAVE, &serde_json::Map::new()).await?;
    let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
    match socket.reply("L", deadline, deliver).await {
        Ok(Ok(_)) => {}
        Ok(Err(reason)) => life.error(act, &format!("leave_error:{reason}")),
        Err(Failure::Timeout(_)) => life.error(act, "leave_timeout"),
        Err(f) => return Err(f),
    }
    // The close pushed after the leave reply; a server that sends none costs this wait.
    // Keep reading while away: a broadcast that raced the leave on the server may still
    // arrive after its reply. Counted now, it moves `since` past itself; read only after
    // the rejoin went out, it would come again in the replay (a duplicate).
    let rejoin_at = intended + life.absence();
    let away = tokio::time::sleep_until(rejoin_at.max(Instant::now() + CLOSE_AFTER_LEAVE.min(life.absence())).into());
    tokio::pin!(away);
    let mut on_frame = |text: &str, at: Instant| {
        // The `phx_close` that answers our own leave is no channel failure.
        let own_close = wire::decode_text(Vsn::V2, text).is_ok_and(|f| f.topic == topic && f.event == events::CLOSE);
        if !own_close {
            deliver(text, at);
        }
        Flow::Continue
    };
    if let Ended::Failed(f) = socket.read(away.as_mut(), None, &mut on_frame).await {
        return Err(f);
    }
    let sent = Instant::now();
    // join_ref "1" again: the server ignores a later leave whose join_ref is not the
    // current join's, and every join of this listener (first, storm, churn) uses "1".
    let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
    match socket.join(topic, "1", &life.since(last_seq()), deadline, deliver).await {
        Ok(response) => match replay(topic, response, deliver) {
            Some(n) => {
                life.detail(act, "replayed", n);
                life.done(act, index, offset, rejoin_at, Some(sent), Ok(()));
            }
            None => life.done(act, index, offset, rejoin_at, Some(sent), Err("unrecovered")),
        },
        Err(Failure::JoinRefused(reason)) => {
            life.done(act, index, offset, rejoin_at, Some(sent), Err(&format!("join_error:{reason}")));
        }
        Err(Failure::Timeout(_)) => life.error(act, "join_timeout"),
        Err(f) => return Err(f),
    }
    Ok(())
}

/// Storm `j` of listener `index`: its socket is dropped (the client closes the TCP
/// connection without a close frame, like a lost network), then it reconnects on
/// phoenix.js's schedule ([`reconnect`]) and rejoins with `since` after `last_seq`. The
/// new socket, or `None` when the run stopped first.
#[allow(clippy::too_many_arguments)]
pub async fn storm(
    life: &Lifecycle,
    home: Home<'_>,
    index: usize,
    socket: Socket,
    act: Act,
    offset: Duration,
    intended: Instant,
    last_seq: Option<u64>,
    stop: &CancellationToken,
    deliver: &mut (dyn FnMut(&str, Instant) + Send),
) -> Option<Socket> {
    life.sent(act, index, intended, Instant::now());
    drop(socket);
    let jitter = life.jitter.then_some(life.seed ^ ((index as u64) << 20) ^ offset.as_nanos() as u64);
    let since = life.since(last_seq);
    let topic = home.topic;
    let (joined, tries, sent) = reconnect(home, &since, jitter, stop, |kind| life.error(act, &kind)).await;
    life.detail(act, "attempts", u64::from(tries));
    if let Some(stats) = life.stats(act) {
        stats.max_detail("max_attempts", u64::from(tries));
    }
    let Some((socket, rejoined)) = joined else {
        life.error(act, "abandoned_at_stop");
        return None;
    };
    match rejoined.replay(topic, deliver) {
        Some(n) => {
            life.detail(act, "replayed", n);
            life.done(act, index, offset, intended, Some(sent), Ok(()));
        }
        None => life.done(act, index, offset, intended, Some(sent), Err("unrecovered")),
    }
    Some(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::stages::Stage;

    #[test]
    fn every_churn_belongs_to_exactly_one_listener_in_time_order() {
        let plan = ChurnPlan { rate_per_s: 10.0, absence: Duration::from_millis(200) };
        let curve = RateCurve::staged(10.0, 1.0, &[Stage { duration: Duration::from_secs(5), scale: 1.0 }]);
        let life = Lifecycle::new(Some((&plan, curve)), None, 7, 42, Duration::from_secs(1), (None, None));
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
        let life = Lifecycle::new(None, Some(&storm), 1000, 9, Duration::ZERO, (None, None));
        let hit = (0..1000).filter(|&i| life.storm_hits(0, i)).count();
        assert!((240..360).contains(&hit), "{hit}");
        let again = Lifecycle::new(None, Some(&storm), 1000, 9, Duration::ZERO, (None, None));
        assert!((0..1000).all(|i| life.storm_hits(1, i) == again.storm_hits(1, i)));
        let i = (0..1000).find(|&i| life.storm_hits(0, i) && life.storm_hits(1, i)).unwrap();
        let mut cursor = Cursor::default();
        assert_eq!(life.next(i, &cursor), Some((Act::Storm(0), Duration::from_secs(1))));
        life.advance(&mut cursor, Act::Storm(0));
        assert_eq!(life.next(i, &cursor), Some((Act::Storm(1), Duration::from_secs(3))));
        life.advance(&mut cursor, Act::Storm(1));
        assert_eq!(life.next(i, &cursor), None);
    }
}
