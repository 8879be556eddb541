//! Listener ramps: a stage's `listeners = F` (or `--stage D:S:F`) is the fraction of
//! each listener group (firehose, tag) connected by the stage's end, moving linearly
//! from the previous stage's (the first stage's own value at the start).
//!
//! Listener `r` (0-based rank in its group of `n`) is connected while `F(t)·n ≥ r + 1`.
//! Listeners connected for the whole traffic phase are *static*: `listeners` opens
//! them before `t0` and the ledger owes them every event, as without ramps. Every other
//! listener is *ramped*: this module connects it when the ramp reaches it (during the
//! traffic phase) and disconnects it (client-side, never counted as the server closing
//! it) when a ramp-down passes it, possibly several times. Ramped listeners stay out of
//! the per-event ledger and its owed counts; each connected window is accounted by
//! `seq` continuity instead: it joins with `since: null`, the server answers the topic's
//! `seq` at the instant it subscribed, and the window owes every `seq` after that, up to
//! the last one it saw when the ramp took it away, or up to the topic's final `seq`
//! (read by one more `since: null` join after the drain) when it was still connected at
//! the end. Its loss is what it owed and never saw.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use firehose_app::wire::{self, Vsn, events};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout_at};
use tokio_tungstenite::tungstenite::Message;

use crate::phoenix::{self, HEARTBEAT_EVERY, SeqCheck, Socket};
use crate::workloads::bookmarks::listeners::{JOIN_TIMEOUT, Shared, Spec};

/// Stage ends and the fraction of every listener group connected there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListenerRamp {
    /// The fraction at the start of the traffic phase.
    pub start: f64,
    /// Per stage: its length and the fraction at its end.
    #[serde(serialize_with = "points")]
    pub stages: Vec<(Duration, f64)>,
}

fn points<S: serde::Serializer>(list: &[(Duration, f64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(list.iter().map(|(d, f)| (d.as_secs_f64(), f)))
}

/// One connected window of a ramped listener: offsets from `t0`, `None` for "still
/// connected at the end".
pub type Window = (Duration, Option<Duration>);

const EPS: f64 = 1e-9;

impl ListenerRamp {
    /// `(offset s, fraction)` at the start and at every stage's end.
    fn points(&self) -> Vec<(f64, f64)> {
        let mut at = 0.0;
        let mut out = vec![(0.0, self.start)];
        for (d, f) in &self.stages {
            at += d.as_secs_f64();
            out.push((at, *f));
        }
        out
    }

    /// The fraction connected `offset` into the traffic phase.
    pub fn fraction_at(&self, offset: Duration) -> f64 {
        let t = offset.as_secs_f64();
        let p = self.points();
        for w in p.windows(2) {
            let ((t0, f0), (t1, f1)) = (w[0], w[1]);
            if t <= t1 {
                return if t1 > t0 { f0 + (f1 - f0) * ((t - t0) / (t1 - t0)).clamp(0.0, 1.0) } else { f1 };
            }
        }
        p.last().map_or(1.0, |&(_, f)| f)
    }

    /// Listeners of a group of `n` connected the whole time (ranks `0..statics`).
    pub fn statics(&self, n: usize) -> usize {
        let min = self.points().iter().map(|&(_, f)| f).fold(f64::INFINITY, f64::min);
        ((min * n as f64) + EPS).floor().max(0.0) as usize
    }

    /// Listeners of a group of `n` connected `offset` into the traffic phase.
    pub fn connected_at(&self, n: usize, offset: Duration) -> usize {
        ((self.fraction_at(offset) * n as f64) + EPS).floor() as usize
    }

    /// The connected windows of listener `rank` of a group of `n`.
    pub fn windows(&self, rank: usize, n: usize) -> Vec<Window> {
        let theta = (rank + 1) as f64 / n as f64;
        let on = |f: f64| f + EPS >= theta;
        let p = self.points();
        let mut out = Vec::new();
        let mut since = on(self.start).then_some(Duration::ZERO);
        for w in p.windows(2) {
            let ((t0, f0), (t1, f1)) = (w[0], w[1]);
            let cross = || {
                let x = if (f1 - f0).abs() > 0.0 { (theta - f0) / (f1 - f0) } else { 0.0 };
                Duration::from_secs_f64(t0 + (t1 - t0) * x.clamp(0.0, 1.0))
            };
            match (since, on(f1)) {
                (None, true) => since = Some(cross()),
                (Some(from), false) => {
                    out.push((from, Some(cross())));
                    since = None;
                }
                _ => {}
            }
        }
        if let Some(from) = since {
            out.push((from, None));
        }
        out
    }
}

/// A ramped listener's accounting, over all its windows.
#[derive(Debug, Clone, Default)]
struct Tally {
    windows: u64,
    expected: u64,
    received: u64,
    duplicates: u64,
    reordered: u64,
    /// Windows still open at the end: (seq at join, highest seq seen, events seen).
    open: Option<(u64, u64, u64)>,
}

/// Ramped listeners of one group, in `report.json`'s `groups.<group>.late`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LateReport {
    /// Ramped listeners (connected only part of the traffic phase).
    pub listeners: u64,
    /// Their connected windows (a listener ramped down and up again has several).
    pub windows: u64,
    /// Events owed by `seq` continuity: every `seq` after each window's join position,
    /// up to the last one it saw before a ramp-down, or the topic's final `seq` for a
    /// window open at the end.
    pub expected: u64,
    pub received: u64,
    /// `expected − received`, per window.
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// Joins that failed, by kind.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failures: BTreeMap<String, u64>,
}

struct Listener {
    spec: Spec,
    windows: Vec<Window>,
    tally: Mutex<Tally>,
    /// Highest seq seen in the current window (for the end-of-run wait).
    last: AtomicU64,
}

/// The ramped listeners of a run.
pub struct Ramp {
    listeners: Vec<Arc<Listener>>,
    tasks: Vec<JoinHandle<()>>,
    failures: Arc<Mutex<BTreeMap<(&'static str, String), u64>>>,
    /// Ramped listeners connected now (the timeline's open connections add these).
    pub open: Arc<AtomicU64>,
    /// Windows not yet started (joined or failed to).
    due: Arc<AtomicU64>,
}

/// Splits `specs` into the static listeners (returned, opened before `t0`) and the
/// ramped ones (kept, with their windows).
pub fn split(ramp: &ListenerRamp, specs: Vec<Spec>) -> (Vec<Spec>, Ramp) {
    let mut sizes: BTreeMap<&'static str, usize> = BTreeMap::new();
    for s in &specs {
        *sizes.entry(s.group.name()).or_default() += 1;
    }
    let mut ranks: BTreeMap<&'static str, usize> = BTreeMap::new();
    let (mut statics, mut ramped) = (Vec::new(), Vec::new());
    for spec in specs {
        let n = sizes[spec.group.name()];
        let rank = ranks.entry(spec.group.name()).or_default();
        let r = *rank;
        *rank += 1;
        if r < ramp.statics(n) {
            statics.push(spec);
        } else {
            let windows = ramp.windows(r, n);
            ramped.push(Arc::new(Listener { spec, windows, tally: Mutex::default(), last: AtomicU64::new(0) }));
        }
    }
    let due = ramped.iter().map(|l| l.windows.len() as u64).sum();
    let ramp = Ramp {
        due: Arc::new(AtomicU64::new(due)),
        listeners: ramped,
        tasks: Vec::new(),
        failures: Arc::default(),
        open: Arc::new(AtomicU64::new(0)),
    };
    (statics, ramp)
}

impl Ramp {
    /// Starts every ramped listener's walk through its windows from `t0`.
    pub fn start(&mut self, shared: &Arc<Shared>, t0: Instant) {
        for l in &self.listeners {
            let (l, shared, open, failures, due) = (
                Arc::clone(l),
                Arc::clone(shared),
                Arc::clone(&self.open),
                Arc::clone(&self.failures),
                Arc::clone(&self.due),
            );
            self.tasks.push(tokio::spawn(async move { walk(&shared, &l, t0, &open, &failures, &due).await }));
        }
    }

    /// After the drain: reads every ramped topic's final `seq`, waits (until
    /// `deadline`) for open windows to catch up with it, stops the listeners and
    /// returns the per-group reports.
    pub async fn finish(self, shared: &Shared, deadline: Instant) -> BTreeMap<&'static str, LateReport> {
        // Every window starts inside the traffic phase, the last ones at its very end.
        while self.due.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut finals: BTreeMap<String, u64> = BTreeMap::new();
        for l in &self.listeners {
            if !finals.contains_key(&l.spec.topic)
                && let Ok((mut ws, response)) = join(shared, &l.spec.topic).await
            {
                finals.insert(l.spec.topic.clone(), response.get("seq").and_then(|s| s.as_u64()).unwrap_or(0));
                let _ = ws.close(None).await;
            }
        }
        let caught_up = || {
            self.listeners.iter().all(|l| {
                let open = l.tally.lock().open.is_some();
                !open || l.last.load(Ordering::Relaxed) >= finals.get(&l.spec.topic).copied().unwrap_or(0)
            })
        };
        while !caught_up() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The listeners stop with the run's token, which the caller cancels next.
        shared.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        let mut out: BTreeMap<&'static str, LateReport> = BTreeMap::new();
        for l in &self.listeners {
            let mut t = l.tally.lock().clone();
            if let Some((from, _, got)) = t.open.take() {
                let owed = finals.get(&l.spec.topic).copied().unwrap_or(from).saturating_sub(from);
                t.expected += owed;
                t.received += got;
            }
            let r = out.entry(l.spec.group.name()).or_default();
            r.listeners += 1;
            r.windows += t.windows;
            r.expected += t.expected;
            r.received += t.received;
            r.duplicates += t.duplicates;
            r.reordered += t.reordered;
            r.lost += t.expected.saturating_sub(t.received);
        }
        for ((g, kind), n) in self.failures.lock().iter() {
            *out.entry(*g).or_default().failures.entry(kind.clone()).or_default() += n;
        }
        out
    }
}

/// Adds each group's ramped listeners to `report` (`groups.<g>.late`, and into the
/// group's `expected`, `received`, `lost`).
pub fn add_to_report(late: BTreeMap<&'static str, LateReport>, report: &mut crate::report::Report) {
    for (group, l) in late {
        let g = report.model.groups.entry(group.to_owned()).or_default();
        g.expected += l.expected;
        g.received += l.received;
        g.lost += l.lost;
        g.duplicates += l.duplicates;
        g.reordered += l.reordered;
        g.late = Some(l);
    }
}

/// One ramped listener: for each window, wait for its start, connect and join with
/// `since: null`, count every `seq` until its end (or the run's stop), disconnect.
async fn walk(
    shared: &Shared,
    l: &Listener,
    t0: Instant,
    open: &AtomicU64,
    failures: &Mutex<BTreeMap<(&'static str, String), u64>>,
    due: &AtomicU64,
) {
    for &(from, until) in &l.windows {
        tokio::select! {
            () = shared.stop.cancelled() => return,
            () = sleep_until((t0 + from).into()) => {}
        }
        let joined = join(shared, &l.spec.topic).await;
        if joined.is_err() {
            due.fetch_sub(1, Ordering::Release);
        }
        let (mut ws, response) = match joined {
            Ok(j) => j,
            Err(kind) => {
                *failures.lock().entry((l.spec.group.name(), kind)).or_default() += 1;
                continue;
            }
        };
        let start = response.get("seq").and_then(serde_json::Value::as_u64).unwrap_or(0);
        let mut seq = SeqCheck::default();
        seq.start_at(start);
        l.last.store(start, Ordering::Relaxed);
        let mut got = 0u64;
        {
            let mut t = l.tally.lock();
            t.windows += 1;
            t.open = Some((start, start, 0));
        }
        open.fetch_add(1, Ordering::Relaxed);
        due.fetch_sub(1, Ordering::Release);
        let end = until.map(|u| tokio::time::Instant::from_std(t0 + u));
        let mut beat = tokio::time::Instant::now() + HEARTBEAT_EVERY;
        let mut heartbeat_ref = 1u64;
        let stopped = loop {
            let timer = end.map_or(beat, |e| e.min(beat));
            let msg = tokio::select! {
                () = shared.stop.cancelled() => break true,
                () = sleep_until(timer) => {
                    if end.is_some_and(|e| tokio::time::Instant::now() >= e) {
                        break false;
                    }
                    heartbeat_ref += 1;
                    let _ = ws.send(Message::text(phoenix::heartbeat_frame(&heartbeat_ref.to_string()))).await;
                    beat += HEARTBEAT_EVERY;
                    continue;
                }
                msg = ws.next() => msg,
            };
            let text = match msg {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(_)) | Err(_)) | None => {
                    *failures.lock().entry((l.spec.group.name(), "during_run:closed".into())).or_default() += 1;
                    break false;
                }
                Some(Ok(_)) => continue,
            };
            let Ok(frame) = wire::decode_text(Vsn::V2, text.as_str()) else { continue };
            if frame.topic != l.spec.topic || frame.event == events::REPLY {
                continue;
            }
            if let Ok(seen) = shared.profile.events.pick(frame.payload.get())
                && let Some(s) = seen.seq
            {
                seq.see(s);
                got += 1;
                l.last.store(seq.last().unwrap_or(s), Ordering::Relaxed);
                l.tally.lock().open = Some((start, seq.last().unwrap_or(s), got));
            }
        };
        open.fetch_sub(1, Ordering::Relaxed);
        let distinct = got.saturating_sub(seq.duplicates + seq.reordered);
        {
            let mut t = l.tally.lock();
            t.duplicates += seq.duplicates;
            t.reordered += seq.reordered;
            if stopped {
                // Still connected at the end: `finish` settles it against the final seq.
                t.open = Some((start, seq.last().unwrap_or(start), distinct));
            } else {
                // Ramped down (or closed): owed what lies between its join and its last seq.
                t.open = None;
                t.expected += seq.last().unwrap_or(start).saturating_sub(start);
                t.received += distinct;
            }
        }
        let _ = ws.close(None).await;
        if stopped {
            return;
        }
    }
}

/// Connects and joins `topic` with `since: null`; the socket and the reply's response.
async fn join(shared: &Shared, topic: &str) -> Result<(Socket, serde_json::Value), String> {
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let tcp = match timeout_at(deadline, phoenix::connect(shared.addr, shared.sources.next())).await {
        Err(_) => return Err("connect_timeout".into()),
        Ok(Err(e)) => return Err(format!("connect_{:?}", e.kind()).to_lowercase()),
        Ok(Ok(tcp)) => tcp,
    };
    let _ = tcp.set_nodelay(true);
    let mut ws = match timeout_at(deadline, phoenix::upgrade_url(tcp, &shared.ws_url)).await {
        Err(_) => return Err("upgrade_timeout".into()),
        Ok(Err(e)) => return Err(format!("upgrade_{}", e.kind())),
        Ok(Ok(ws)) => ws,
    };
    let frame =
        wire::encode_text(Vsn::V2, Some("1"), Some("1"), topic, events::JOIN, &serde_json::json!({"since": null}));
    ws.send(Message::text(frame)).await.map_err(|_| "join_send_failed".to_owned())?;
    let response = phoenix::await_join_response(&mut ws, deadline, |_| "join_read_failed".to_owned()).await?;
    Ok((ws, response))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(start: f64, stages: &[(u64, f64)]) -> ListenerRamp {
        ListenerRamp { start, stages: stages.iter().map(|&(s, f)| (Duration::from_secs(s), f)).collect() }
    }

    #[test]
    fn half_then_all_connects_the_second_half_during_the_second_stage() {
        let r = ramp(0.5, &[(2, 0.5), (2, 1.0)]);
        assert_eq!(r.statics(10), 5);
        assert_eq!(r.connected_at(10, Duration::from_secs(1)), 5);
        assert_eq!(r.connected_at(10, Duration::from_secs(3)), 7);
        assert_eq!(r.connected_at(10, Duration::from_secs(4)), 10);
        // Rank 5 (the 6th) needs 0.6: at 2 s + 0.4 × 2 s.
        let w = r.windows(5, 10);
        assert_eq!(w.len(), 1);
        assert!((w[0].0.as_secs_f64() - 2.4).abs() < 1e-6, "{w:?}");
        assert_eq!(w[0].1, None);
        assert_eq!(r.windows(9, 10), vec![(Duration::from_secs(4), None)]);
    }

    #[test]
    fn stage_fractions_become_the_plans_ramp_from_a_file_or_flags() {
        use crate::plan::Plan;
        use crate::plan::args::RunArgs;
        use crate::plan::scenario::Scenario;
        let args =
            |flags: &[&str]| RunArgs::try_parse_from(std::iter::once("run").chain(flags.iter().copied())).unwrap();
        let text = "[[stages]]\nduration = \"2s\"\nscale = 1.0\nlisteners = 0.5\n\
                    [[stages]]\nduration = \"1s\"\nscale = 2.0\n[[stages]]\nduration = \"2s\"\nscale = 1.0\nlisteners = 1\n";
        let scenario = Scenario::parse(std::path::Path::new("s.toml"), text.into()).unwrap();
        let p = Plan::from_layers(&args(&[]), Some(&scenario), None).unwrap();
        // A stage without `listeners` keeps the previous fraction.
        assert_eq!(p.listener_ramp, Some(ramp(0.5, &[(2, 0.5), (1, 0.5), (2, 1.0)])));
        let p = Plan::from_layers(&args(&["--stage", "2s:1:0.25", "--stage", "2s:1"]), None, None).unwrap();
        assert_eq!(p.listener_ramp, Some(ramp(0.25, &[(2, 0.25), (2, 0.25)])));
        let p = Plan::from_layers(&args(&["--stage", "3s:1"]), None, None).unwrap();
        assert_eq!(p.listener_ramp, None);
        let err = Plan::from_layers(&args(&["--stage", "2s:1:-0.5"]), None, None).unwrap_err().to_string();
        assert!(err.contains("--stage") && err.contains("between 0 and 1"), "{err}");
    }

    #[test]
    fn a_ramp_down_and_up_gives_two_windows() {
        let r = ramp(1.0, &[(2, 0.0), (2, 1.0)]);
        assert_eq!(r.statics(4), 0);
        let w = r.windows(1, 4);
        // Needs 0.5: off at 1 s, on again at 3 s.
        assert_eq!(w, vec![(Duration::ZERO, Some(Duration::from_secs(1))), (Duration::from_secs(3), None)]);
        let total: usize = (0..4).map(|k| r.windows(k, 4).len()).sum();
        assert_eq!(total, 8);
    }
}
