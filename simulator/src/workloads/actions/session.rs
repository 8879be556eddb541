//! One run's worth of actions, in the order `run.rs` drives them: `prepare` (setup over
//! HTTP, before any listener connects), `open` (the room/likes/user listeners and the
//! actor sockets, after the bookmark listeners joined), `start` (the shared `t0`),
//! `drive` (the generator, alongside the bookmark generator), `drain` (until every
//! action answered and every owed delivery arrived, or the deadline), `finish` (stop the
//! sockets and add the figures to the report).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::actors::{self, Actors};
use super::driver::Driver;
use super::listen::{self, Ctx, Seen, Spec};
use super::outcome::Outcome;
use super::schedule::{Timeline, Zipf};
use super::setup::{self, Made};
use super::tally::Tally;
use super::{Group, Kind};
use crate::engine::error::SimError;
use crate::fixtures::Corpus;
use crate::phoenix::JOIN_TIMEOUT;
use crate::plan::Plan;
use crate::report::Report;

const SETTLE_MARGIN: Duration = Duration::from_secs(30);
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// The actions of a run between setup and report.
pub struct Session {
    ctx: Arc<Ctx>,
    actors: Arc<Actors>,
    made: Arc<Made>,
    lines: Vec<String>,
    base: String,
    listeners: Vec<tokio::task::JoinHandle<Seen>>,
    actor_tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Session {
    /// Setup for `plan`'s actions; `None` when the plan has none.
    pub async fn prepare(
        plan: &Plan,
        base: &str,
        addr: SocketAddr,
        corpus: &Corpus,
        run_id: &str,
    ) -> Result<Option<Session>, SimError> {
        let a = &plan.actions;
        if !a.is_active() {
            return Ok(None);
        }
        let lines: Vec<String> = corpus.chat_lines.iter().map(|l| l.replace('@', "")).collect();
        let timeline = Arc::new(Timeline::new(a, |rate| plan.curve(rate), plan.warmup, plan.seed, lines.len()));
        let drafts: Vec<_> = corpus.links.clone();
        let made = setup::make(base, a, run_id, &drafts, timeline.count(Kind::DeleteBookmark))
            .await
            .map_err(|e| SimError::Setup(format!("actions setup: {e}")))?;
        let rooms = made.room_topics.len();
        let sockets = (a.actor_sockets as usize).min(made.actors.len());
        let tally = Arc::new(Tally::new(&timeline, rooms, made.like_targets.len(), made.mentionable.len(), sockets));
        let ctx = Arc::new(Ctx {
            addr,
            timeline,
            tally,
            prefix: format!("sim-{run_id}-"),
            room_topics: made.room_topics.clone(),
            typist_of_user: made.actors.iter().take(sockets).enumerate().map(|(k, a)| (a.id, k as u32)).collect(),
            rooms,
            failures: Mutex::new(BTreeMap::new()),
            joined: AtomicU64::new(0),
            settled: Semaphore::new(0),
            stop: CancellationToken::new(),
        });
        Ok(Some(Session {
            ctx,
            actors: Arc::new(Actors::new(sockets)),
            made: Arc::new(made),
            lines,
            base: base.to_owned(),
            listeners: Vec::new(),
            actor_tasks: Vec::new(),
        }))
    }

    /// The listener specs: room and likes listeners spread Zipf over rooms and targets
    /// (seeded), user listeners one per mentionable user.
    fn specs(&self, plan: &Plan) -> Vec<Spec> {
        let a = &plan.actions;
        let mut rng = ChaCha8Rng::seed_from_u64(plan.seed ^ 0x6c69_7374);
        let mut specs = Vec::with_capacity(a.listeners() as usize);
        let room_zipf = Zipf::new(self.made.room_topics.len());
        for _ in 0..a.room_listeners {
            let r = room_zipf.sample(&mut rng);
            let topic = self.made.room_topics[r as usize].clone();
            specs.push(Spec { index: specs.len(), group: Group::Room, of: r, topic, token: None });
        }
        let target_zipf = Zipf::new(self.made.like_targets.len());
        for _ in 0..a.likes_listeners {
            let t = target_zipf.sample(&mut rng);
            let topic = format!("likes:{}", self.made.like_targets[t as usize]);
            specs.push(Spec { index: specs.len(), group: Group::Likes, of: t, topic, token: None });
        }
        for (k, (account, _)) in self.made.mentionable.iter().enumerate() {
            let topic = format!("user:{}", account.id);
            specs.push(Spec {
                index: specs.len(),
                group: Group::User,
                of: k as u32,
                topic,
                token: Some(account.token.clone()),
            });
        }
        specs
    }

    /// Opens the listeners and the actor sockets and waits until all joined or gave up;
    /// an error when a group has listeners and none of them could join.
    pub async fn open(&mut self, plan: &Plan) -> Result<(), SimError> {
        let specs = self.specs(plan);
        let n = specs.len();
        self.listeners = listen::open(&self.ctx, specs, plan.connect_rate_per_s).await;
        for (k, account) in self.made.actors.iter().take(self.actors.sinks.len()).enumerate() {
            self.actor_tasks.push(actors::spawn(
                Arc::clone(&self.ctx),
                Arc::clone(&self.actors),
                k,
                account.token.clone(),
            ));
        }
        let wait = JOIN_TIMEOUT + SETTLE_MARGIN;
        let listeners = u32::try_from(n).unwrap_or(u32::MAX);
        let actors = u32::try_from(self.actors.sinks.len()).unwrap_or(u32::MAX);
        let settled = tokio::time::timeout(wait, async {
            let _ = self.ctx.settled.acquire_many(listeners).await.map(|p| p.forget());
            let _ = self.actors.settled.acquire_many(actors).await.map(|p| p.forget());
        })
        .await;
        if settled.is_err() {
            self.ctx.stop.cancel();
            return Err(SimError::Setup("action listeners or actor sockets neither joined nor failed in time".into()));
        }
        let joined = self.ctx.joined.load(Ordering::Relaxed);
        if n > 0 && joined == 0 {
            self.ctx.stop.cancel();
            let failures = self.ctx.failures.lock().clone();
            return Err(SimError::Setup(format!("no action listener could join: {failures:?}")));
        }
        Ok(())
    }

    /// Starts the actions' clock at the run's `t0`.
    pub fn start(&self, t0: Instant) {
        self.ctx.timeline.start(t0);
    }

    /// Fires every action on schedule (on a thread of its own).
    pub async fn drive(&self, plan: &Plan) -> Result<(), String> {
        let driver = Arc::new(Driver {
            ctx: Arc::clone(&self.ctx),
            actors: Arc::clone(&self.actors),
            made: Arc::clone(&self.made),
            lines: self.lines.clone(),
            base: self.base.clone(),
            max_in_flight: plan.max_in_flight,
        });
        driver.run_on_own_thread().await
    }

    /// Waits until every action answered and every owed delivery arrived (true), or
    /// `deadline` passed (false).
    pub async fn drain(&self, deadline: Instant) -> bool {
        while !self.ctx.tally.settled(&self.ctx.timeline) {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
        true
    }

    /// Stops every socket and adds the actions' figures to `report`. Actions still
    /// unanswered count as `timeout` errors.
    pub async fn finish(self, plan: &Plan, traffic: Duration, report: &mut Report) {
        self.ctx.stop.cancel();
        let mut seen = Vec::with_capacity(self.listeners.len());
        for handle in self.listeners {
            if let Ok(s) = handle.await {
                seen.push(s);
            }
        }
        for handle in self.actor_tasks {
            let _ = handle.await;
        }
        let tl = &self.ctx.timeline;
        for kind in Kind::ALL {
            let stats = self.ctx.tally.kind(kind);
            for i in 0..tl.count(kind) as u32 {
                stats.fail_unsent(i, "timeout");
            }
        }
        let failures = self.ctx.failures.lock().clone();
        let outcome = Outcome {
            plan: &plan.actions,
            timeline: tl,
            tally: &self.ctx.tally,
            seen: &seen,
            failures,
            max_lag: plan.max_lag,
            warmup: plan.warmup,
            measured_s: (plan.duration - plan.warmup).as_secs_f64(),
            traffic,
        };
        outcome.add_to(report);
    }
}
