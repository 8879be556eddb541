//! Firehose and tag listeners: one task per socket, joined to one topic, reading until
//! the run stops. Every counted event (`bookmark_created` for firehose) is traced to its
//! request through the URL fragment, deduplicated per listener ([`Seen`]), counted once
//! into its group's ledger when it was owed to this listener (else as a duplicate, an
//! unowed delivery or a private leak), timed from the request's intended start, and its
//! `seq` checked for order. Presence churn and reconnect storms happen here too, on
//! each listener's own timer (see `lifecycle`). With several targets, a listener starts
//! on its home target (see `engine::route`) and, when a target closes its socket,
//! reconnects (there, or to the next one that takes it) and rejoins with `since`; a gap
//! notice makes it rejoin with `since` on the same socket (see `workloads::failover`).
//!
//! Memory is the constraint here (thousands of sockets per process): the small-buffer
//! socket, no per-listener histogram or channel, a few words of state.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use futures_util::future::Either;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::audience::{Audience, Spec};
use super::correlate::Correlator;
use super::events::Events;
use super::lifecycle::{self, Act, Cursor, Lifecycle};
use super::schedule::Schedule;
use crate::engine::delivery::{EventLedger, GroupStats, Seen};
use crate::engine::dispatch::sleep_precisely_until;
use crate::engine::workload::Cx;
use crate::http::Draft;
use crate::phoenix::{Ended, Failure, JOIN_TIMEOUT, JoinParams, SeqCheck, Socket, topic_event};
use crate::plan::profile::Profile;
use crate::report::names::Group;
use crate::workloads::failover::{self, Loss};

/// What every listener of the run shares, read-mostly.
pub struct Shared {
    pub cx: Arc<Cx>,
    pub schedule: Arc<Schedule>,
    pub correlator: Correlator,
    pub events: Arc<Events>,
    pub drafts: Arc<[Draft]>,
    pub profile: Arc<Profile>,
    pub firehose: Arc<GroupStats>,
    pub tag: Arc<GroupStats>,
    pub life: Lifecycle,
    /// One permit per listener that joined or gave up: the run waits for all of them.
    pub settled: Semaphore,
    /// Which listeners (by `Spec::index`) joined.
    pub joined: Box<[AtomicBool]>,
    /// Every listener of the run, by index (ramped ones included).
    pub specs: Vec<Spec>,
    /// The audience of the listeners that joined, once all settled.
    pub audience: std::sync::OnceLock<Audience>,
}

impl Shared {
    fn group(&self, group: Group) -> &GroupStats {
        if group == Group::Tag { &self.tag } else { &self.firehose }
    }

    fn ledger(&self, group: Group) -> &EventLedger {
        if group == Group::Tag { &self.events.tag } else { &self.events.firehose }
    }

    /// Whether listener `index` joined.
    pub fn has_joined(&self, index: usize) -> bool {
        self.joined.get(index).is_some_and(|f| f.load(Ordering::Acquire))
    }
}

/// What a listener saw, returned when it stops.
#[derive(Debug, Default)]
pub struct End {
    pub index: usize,
    pub joined: bool,
    /// This run's events it was owed and received, each once.
    pub seen: Seen,
}

/// Opens `specs` at the run's connect rate, each on its own task. Each releases one
/// `settled` permit once joined or failed.
pub async fn open(sh: &Arc<Shared>, specs: Vec<Spec>) -> Vec<JoinHandle<End>> {
    let mut specs = specs.into_iter();
    sh.cx
        .spawn_paced(specs.len(), |_| {
            let (sh, spec) = (Arc::clone(sh), specs.next());
            async move {
                match spec {
                    Some(spec) => listen(&sh, spec).await,
                    None => End::default(),
                }
            }
        })
        .await
}

/// A listener's joined socket, its join reply and the target it reached.
pub type Joined = (Socket, serde_json::Value, usize);

/// Connects listener `index` from the next source address (at its home target, or the
/// next that takes it) and joins `topic` with `params`.
pub async fn connect(sh: &Shared, index: usize, topic: &str, params: &JoinParams<'_>) -> Result<Joined, Failure> {
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let (mut socket, at) = sh.cx.connect(index, None, deadline).await?;
    let response = socket.join(topic, "1", params, deadline, &mut |_, _| {}).await?;
    Ok((socket, response, at))
}

/// The seq a listener saw last (`u64::MAX`: none), shared between its frame handler
/// and its lifecycle acts.
struct Last(AtomicU64);

impl Last {
    fn get(&self) -> Option<u64> {
        let v = self.0.load(Ordering::Relaxed);
        (v != u64::MAX).then_some(v)
    }
}

async fn listen(sh: &Shared, spec: Spec) -> End {
    let mut end = End { index: spec.index, ..End::default() };
    let started = Instant::now();
    // With churn, storms, another target to move to or a `seq` to check (a cluster node
    // may tell of a gap), `since: null` asks for the topic's epoch and seq, the
    // position a later rejoin asks to be replayed from.
    let recovers = sh.life.enabled() || failover::moves(&sh.cx.route) || sh.profile.events.seq.is_some();
    let params = if recovers { JoinParams::POSITION } else { JoinParams::PLAIN };
    // Boxed: the connect's large, short-lived state would otherwise be part of this
    // long-lived future for the listener's whole life.
    let (mut socket, response, mut at) = match Box::pin(connect(sh, spec.index, &spec.topic, &params)).await {
        Ok(joined) => joined,
        Err(f) => {
            sh.cx.meters.sockets.failed(&f);
            sh.settled.add_permits(1);
            return end;
        }
    };
    sh.cx.meters.sockets.joined(spec.index, started.elapsed());
    sh.group(spec.group).joined();
    if let Some(flag) = sh.joined.get(spec.index) {
        flag.store(true, Ordering::Release);
    }
    sh.settled.add_permits(1);
    end.joined = true;
    let mut seq = SeqCheck::default();
    if let Some(at) = sh.life.note_join_reply(&response) {
        seq.start_at(at);
    }
    // Not kept for the listener's life (the future would hold it across every await).
    drop(response);
    let last = Last(AtomicU64::new(seq.last().unwrap_or(u64::MAX)));
    let mut cursor = Cursor::default();
    let cx = &sh.cx;
    loop {
        // The next churn or storm, once the clock started.
        let act =
            cx.t0().filter(|_| sh.life.enabled()).and_then(|t0| sh.life.next(spec.index, &cursor).map(|a| (a, t0)));
        let (ended, closed) = {
            // Most listeners have no churn or storm ahead and wait for the stop alone;
            // the lifecycle's waits are boxed, so only a listener that has one pays for
            // their timers (this future lives as long as the listener).
            let awaits_clock = act.is_none() && cx.t0().is_none() && sh.life.enabled();
            let wake = if act.is_none() && !awaits_clock {
                Either::Left(cx.stop.cancelled())
            } else {
                Either::Right(Box::pin(async {
                    tokio::select! {
                        () = cx.stop.cancelled() => {}
                        () = cx.started.cancelled(), if awaits_clock => {}
                        () = async {
                            match act {
                                Some(((_, offset), t0)) => sleep_precisely_until(t0 + offset).await,
                                None => std::future::pending().await,
                            }
                        } => {}
                    }
                }))
            };
            tokio::pin!(wake);
            failover::read_until_failure(&mut socket, wake.as_mut(), |text, at| {
                on_text(sh, &spec, &mut end.seen, &mut seq, &last, text, at)
            })
            .await
        };
        let handler_stopped = ended == Ended::Stopped;
        match Loss::of(ended, closed) {
            Some(loss) => {
                // Its node closed the socket (reconnect, there or to the next target) or
                // told of a gap (rejoin on this socket): either way rejoin with `since`
                // and take the replay of what was missed. A gap notice to a listener
                // that joined without a position ends it.
                let loss = match loss {
                    Loss::Gap if !recovers => Loss::Channel(Failure::Gap),
                    loss => loss,
                };
                let since = sh.life.since(last.get());
                let place = failover::Place { at: &mut at, topic: &spec.topic, token: None };
                let Some(rejoined) = Box::pin(failover::recover(cx, loss, &mut socket, place, &since)).await else {
                    break;
                };
                let mut deliver = |text: &str, at: Instant| {
                    let _ = on_text(sh, &spec, &mut end.seen, &mut seq, &last, text, at);
                };
                let _ = rejoined.replay(&spec.topic, &mut deliver);
                continue;
            }
            None if handler_stopped || cx.stop.is_cancelled() => break,
            None => {}
        }
        let Some(((act, offset), t0)) = act else { continue };
        sh.life.advance(&mut cursor, act);
        let intended = t0 + offset;
        let mut deliver = |text: &str, at: Instant| {
            let _ = on_text(sh, &spec, &mut end.seen, &mut seq, &last, text, at);
        };
        match act {
            Act::Churn(_) => {
                let outcome = Box::pin(lifecycle::churn(
                    &sh.life,
                    spec.index,
                    &spec.topic,
                    &mut socket,
                    act,
                    offset,
                    intended,
                    &mut deliver,
                    &|| last.get(),
                ))
                .await;
                if let Err(f) = outcome {
                    sh.cx.meters.sockets.closed_by_target(&f);
                    break;
                }
            }
            Act::Storm(_) => {
                sh.cx.meters.sockets.went_away();
                let home = failover::Home {
                    route: &cx.route,
                    at: &mut at,
                    source: cx.sources.next(),
                    token: None,
                    topic: &spec.topic,
                };
                let rejoined = Box::pin(lifecycle::storm(
                    &sh.life,
                    home,
                    spec.index,
                    socket,
                    act,
                    offset,
                    intended,
                    last.get(),
                    &cx.stop,
                    &mut deliver,
                ))
                .await;
                match rejoined {
                    Some(s) => {
                        socket = s;
                        sh.cx.meters.sockets.came_back();
                    }
                    None => break,
                }
            }
        }
    }
    sh.group(spec.group).add_seq(&seq);
    end
}

/// One frame of listener `spec`: a counted event is accounted; a channel end is
/// returned as the failure that stops the listener.
fn on_text(
    sh: &Shared,
    spec: &Spec,
    seen: &mut Seen,
    seq: &mut SeqCheck,
    last: &Last,
    text: &str,
    at: Instant,
) -> Option<Failure> {
    let group = sh.group(spec.group);
    let frame = match topic_event(text, &spec.topic, || group.decode_error()) {
        ControlFlow::Continue(frame) => frame,
        ControlFlow::Break(end) => return end,
    };
    let events = &sh.profile.events;
    let checks_seq = events.seq.is_some();
    if !events.counts(&frame.event) {
        // Other events on the topic (`bookmark_deleted`) take a `seq` too: check it, or
        // every delete would show up as a gap in the counted events' sequence.
        if checks_seq
            && let Ok(picked) = events.pick(frame.payload.get())
            && let Some(s) = picked.seq
        {
            see(seq, last, s);
        }
        return None;
    }
    // The URL and seq where the profile says (`/url`, `/seq` for firehose), in one pass.
    let picked = match events.pick(frame.payload.get()) {
        Ok(p) if p.seq.is_some() || !checks_seq => p,
        _ => {
            group.decode_error();
            return None;
        }
    };
    let Some(url) = picked.url else {
        group.decode_error();
        return None;
    };
    if let Some(s) = picked.seq {
        see(seq, last, s);
    }
    let Some(i) = sh.correlator.index(&url) else {
        group.foreign();
        return None;
    };
    if sh.events.is_private(i, &sh.schedule) {
        group.private_leak();
        return None;
    }
    let tags = sh.schedule.link(i).and_then(|l| sh.drafts.get(l)).map(|d| d.tags.as_slice()).unwrap_or_default();
    if !Audience::owes(spec, tags.iter().map(String::as_str)) {
        group.unowed();
        return None;
    }
    if !seen.insert(i) {
        group.duplicate();
        return None;
    }
    let (Some(intended), Some(t0)) = (sh.schedule.intended(i), sh.schedule.t0()) else { return None };
    let ledger = sh.ledger(spec.group);
    let elapsed = at.saturating_duration_since(intended);
    let (nth, latest) = ledger.received(i, elapsed);
    let at_ns = u64::try_from(at.saturating_duration_since(t0).as_nanos()).unwrap_or(u64::MAX);
    group.received(spec.index, elapsed, at_ns, !sh.schedule.is_warmup(i), Some((ledger.owed(i), nth, latest)));
    None
}

fn see(seq: &mut SeqCheck, last: &Last, s: u64) {
    seq.see(s);
    if let Some(l) = seq.last() {
        last.0.store(l, Ordering::Relaxed);
    }
}
