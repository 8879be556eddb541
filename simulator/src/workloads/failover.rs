//! Listeners that outlive their node: one rule for every listener kind (firehose, tag,
//! room, likes, user, page). A listener's read ends in one of three ways ([`Loss`]):
//!
//! - **its socket ended** (the target closed or dropped it: with several targets, its
//!   node may be gone): while the run goes on and there is another target, it
//!   reconnects on phoenix.js's schedule ([`reconnect`]) to its target or, refused
//!   there, the next one that takes it (`engine::route`, which counts the failover),
//!   and rejoins its topic; the socket counts as `recovered`. When the run stops
//!   first, or there is one target only, it counts as closed by the target as before;
//! - **a gap notice** (`phx_error {"reason": "gap"}` with no join_ref, from a cluster
//!   node whose broker link failed for a while): it rejoins on the same socket;
//! - **its channel ended** (`phx_close`, a crash's `phx_error`): it ends there.
//!
//! What a listener asks for in its rejoin and takes from the reply is its kind's own
//! (a replay after `since`, a room's recent messages, a like count, a fresh
//! `presence_state`): [`recover`] hands back the reply and the frames read before it
//! ([`Rejoined`]). Churn and storms (`workloads::bookmarks::lifecycle`) reconnect through
//! the same [`reconnect`].

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::engine::route::Route;
use crate::engine::workload::Cx;
use crate::phoenix::{Ended, Failure, Flow, JOIN_TIMEOUT, JoinParams, Socket, replay};
use crate::plan::seeded::draw;

/// phoenix.js's default `reconnectAfterMs` (the `Socket` constructor in
/// `assets/js/phoenix/socket.js` of the `phoenix` npm package): the delay before try
/// `n` (1-based) is the n-th of these, and 5000 ms for every later try. phoenix.js
/// applies no jitter by default.
pub const RECONNECT_AFTER_MS: [u64; 9] = [10, 50, 100, 150, 200, 250, 500, 1000, 2000];
/// phoenix.js's delay for every try past the listed ones.
pub const RECONNECT_AFTER_MS_LATER: u64 = 5000;

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
    d / 2 + d.mul_f64(draw(key) / 2.0)
}

/// Reads `socket` until `until` resolves, the socket ends, or `on_text` (a listener's
/// frame handler) names a failure of its channel (a close, an error, a gap notice):
/// how the read ended, and that failure ([`Loss::of`] makes of them what recovery
/// needs).
pub async fn read_until_failure<U: std::future::Future<Output = ()>>(
    socket: &mut Socket,
    until: std::pin::Pin<&mut U>,
    mut on_text: impl FnMut(&str, Instant) -> Option<Failure> + Send,
) -> (Ended, Option<Failure>) {
    let mut closed = None;
    let mut on_frame = |text: &str, at: Instant| match on_text(text, at) {
        Some(f) => {
            closed = Some(f);
            Flow::Stop
        }
        None => Flow::Continue,
    };
    let ended = socket.read(until, None, &mut on_frame).await;
    (ended, closed)
}

/// Why a listener's read ended, as recovery sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loss {
    /// The socket ended (closed by the target, or reading or writing failed).
    Socket(Failure),
    /// A gap notice on the listener's topic.
    Gap,
    /// The channel ended (`phx_close`, `phx_error`).
    Channel(Failure),
}

impl Loss {
    /// The loss a read's end means: `ended` from [`Socket::read`], `closed` the channel
    /// end at which the frame handler stopped it. `None`: nothing was lost (the read's
    /// `until` completed, or the handler stopped for a reason of its own).
    pub fn of(ended: Ended, closed: Option<Failure>) -> Option<Loss> {
        match (ended, closed) {
            (Ended::Failed(f), _) => Some(Loss::Socket(f)),
            (Ended::Stopped, Some(Failure::Gap)) => Some(Loss::Gap),
            (Ended::Stopped, Some(f)) => Some(Loss::Channel(f)),
            (Ended::Stopped | Ended::Until, _) => None,
        }
    }
}

/// A listener's channel joined again after a loss: the join reply, and the frames read
/// before it came (oldest first), which the listener takes after the reply's content.
#[derive(Debug)]
pub struct Rejoined {
    pub response: serde_json::Value,
    pub early: Vec<(String, Instant)>,
}

impl Rejoined {
    /// A rejoin with `since`: the events the reply replays, then the frames read before
    /// it (live events broadcast after the replay's last `seq`), all to `deliver`. How
    /// many were replayed, or `None` when the server could not recover the gap.
    pub fn replay(self, topic: &str, deliver: &mut (dyn FnMut(&str, Instant) + Send)) -> Option<u64> {
        let replayed = replay(topic, self.response, deliver);
        deliver_all(self.early, deliver);
        replayed
    }

    /// The frames read before the reply, to `deliver`.
    pub fn deliver_early(self, deliver: &mut (dyn FnMut(&str, Instant) + Send)) {
        deliver_all(self.early, deliver);
    }
}

fn deliver_all(frames: Vec<(String, Instant)>, deliver: &mut (dyn FnMut(&str, Instant) + Send)) {
    for (text, at) in frames {
        deliver(&text, at);
    }
}

/// Where a listener is: its target (the one it reached last), its topic and, for a
/// signed-in listener, its token.
pub struct Place<'a> {
    pub at: &'a mut usize,
    pub topic: &'a str,
    pub token: Option<&'a str>,
}

/// Carries a listener past `loss` (see the module doc): rejoins `place.topic` with
/// `params` on `socket` after a gap notice, or on a new socket (which replaces
/// `socket`) after its socket ended, counting it `recovered`. `None` when it ends
/// there, counted closed by the target.
pub async fn recover(
    cx: &Cx,
    loss: Loss,
    socket: &mut Socket,
    place: Place<'_>,
    params: &JoinParams<'_>,
) -> Option<Rejoined> {
    let sockets = &cx.meters.sockets;
    match loss {
        Loss::Gap => {
            let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
            let mut early = Vec::new();
            let joined = socket
                .join(place.topic, "1", params, deadline, &mut |text, at| early.push((text.to_owned(), at)))
                .await;
            match joined {
                Ok(response) => {
                    sockets.recovered(&Failure::Gap);
                    Some(Rejoined { response, early })
                }
                Err(f) => {
                    sockets.closed_by_target(&f);
                    None
                }
            }
        }
        Loss::Socket(f) if moves(&cx.route) && !cx.stop.is_cancelled() => {
            let home = Home {
                route: &cx.route,
                at: place.at,
                source: cx.sources.next(),
                token: place.token,
                topic: place.topic,
            };
            let (joined, _, _) = reconnect(home, params, None, &cx.stop, |_| {}).await;
            match joined {
                Some((s, rejoined)) => {
                    *socket = s;
                    sockets.recovered(&f);
                    Some(rejoined)
                }
                None => {
                    sockets.closed_by_target(&f);
                    None
                }
            }
        }
        Loss::Socket(f) | Loss::Channel(f) => {
            sockets.closed_by_target(&f);
            None
        }
    }
}

/// Whether a listener whose socket ended moves on (reconnects): with several targets.
pub fn moves(route: &Route) -> bool {
    route.len() > 1
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

/// Where a dropped listener reconnects: its target (updated to the one that took it),
/// from which source address, signed in with which token (`user` listeners), and its
/// topic.
pub struct Home<'a> {
    pub route: &'a Route,
    pub at: &'a mut usize,
    pub source: Option<std::net::Ipv4Addr>,
    pub token: Option<&'a str>,
    pub topic: &'a str,
}

/// Reconnects a dropped listener on phoenix.js's schedule (jittered from `jitter` when
/// given) until it rejoined with `params` or `stop` came: each try connects to target
/// `home.at` or, refused there, the next ones (see `engine::route`), and `home.at`
/// becomes the target that took it. The socket and what its join brought (`None`:
/// stopped), the tries, and when the last join went out.
pub async fn reconnect(
    home: Home<'_>,
    params: &JoinParams<'_>,
    jitter: Option<u64>,
    stop: &CancellationToken,
    failed: impl FnMut(String),
) -> (Option<(Socket, Rejoined)>, u32, Instant) {
    let Home { route, at, source, token, topic } = home;
    let from = *at;
    let mut sent = Instant::now();
    let attempt = || {
        sent = Instant::now();
        async move {
            let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
            let (mut socket, reached) = route.connect(from, source, token, deadline).await.map_err(|f| f.name())?;
            let mut early = Vec::new();
            let response = socket
                .join(topic, "1", params, deadline, &mut |text, at| early.push((text.to_owned(), at)))
                .await
                .map_err(|f| f.name())?;
            Ok((socket, Rejoined { response, early }, reached))
        }
    };
    let (joined, tries) = retry(attempt, jitter, stop, failed).await;
    let joined = joined.map(|(socket, rejoined, reached)| {
        *at = reached;
        (socket, rejoined)
    });
    (joined, tries, sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_phoenix_js_default() {
        let delays: Vec<u64> = (1..=11).map(|t| reconnect_after(t).as_millis() as u64).collect();
        assert_eq!(delays, [10, 50, 100, 150, 200, 250, 500, 1000, 2000, 5000, 5000]);
        for key in 0..100 {
            let d = jittered(Duration::from_millis(100), key);
            assert!(d >= Duration::from_millis(50) && d <= Duration::from_millis(100), "{d:?}");
        }
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
        // Cumulative delays 10, 60, 160, 310, 510 ms: refused until 400 ms, so try 5 on a
        // quiet machine; a loaded one may run a try late (never early) and connect sooner.
        let n = n as usize;
        assert!(n >= 4 && failures.len() == n - 1, "{at:?} {failures:?}");
        assert!(failures.iter().all(|f| f == "ConnectionRefused"), "{failures:?}");
        for (k, expect_ms) in [10u64, 60, 160, 310, 510].iter().take(n).enumerate() {
            let t = at[k].as_millis() as u64;
            assert!(t >= *expect_ms && t < expect_ms + 300, "try {} at {t} ms, expected ~{expect_ms}", k + 1);
        }
        // Each wait is the backoff's own step, counted from the try before.
        for (k, step_ms) in [50u128, 100, 150, 200].iter().take(n - 1).enumerate() {
            assert!((at[k + 1] - at[k]).as_millis() >= *step_ms, "gap before try {}: {at:?}", k + 2);
        }
        opened.await.unwrap();
    }

    #[test]
    fn a_reads_end_is_told_apart() {
        let closed = Failure::Closed(1001);
        assert_eq!(Loss::of(Ended::Failed(closed.clone()), None), Some(Loss::Socket(closed.clone())));
        assert_eq!(Loss::of(Ended::Stopped, Some(Failure::Gap)), Some(Loss::Gap));
        let ended = Failure::Channel("phx_close");
        assert_eq!(Loss::of(Ended::Stopped, Some(ended.clone())), Some(Loss::Channel(ended)));
        assert_eq!(Loss::of(Ended::Stopped, None), None);
        assert_eq!(Loss::of(Ended::Until, None), None);
    }

    #[test]
    fn a_rejoin_replays_then_hands_over_what_came_before_its_reply() {
        let t = Instant::now();
        let rejoined = Rejoined {
            response: serde_json::json!({"recovered": true, "missed": [{"event": "e", "payload": {"seq": 4}}]}),
            early: vec![(r#"[null,null,"t","e",{"seq":5}]"#.to_owned(), t)],
        };
        let mut frames = Vec::new();
        assert_eq!(rejoined.replay("t", &mut |text, _| frames.push(text.to_owned())), Some(1));
        assert_eq!(frames.len(), 2);
        assert!(frames[0].contains(r#""seq":4"#) && frames[1].contains(r#""seq":5"#), "{frames:?}");
    }
}
