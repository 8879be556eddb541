//! The traffic kinds beyond bookmark creation and the listener groups that receive
//! them: likes and unlikes of Zipf-hot bookmarks (HTTP, heard on `likes:<id>` as
//! `like_count`), bookmark deletion (HTTP), chat messages in Zipf-hot public rooms
//! (pushes on `room:<slug>`, heard as `new_message`; some @mention a user whose
//! `user:<id>` socket hears a `notification`), typing (heard as `user_typing`) and room
//! presence (a fresh signed-in socket joins a room, stays, leaves; heard as
//! `presence_diff`). With `room_members`, rooms are all the same size: the `rooms`
//! scenario is this workload alone (chat rooms under load).
//!
//! Every kind is a lane of the one dispatcher; each action is traced to its deliveries
//! (a message body's `sim-<own>-<i>` marker, the typist's pending push, the presence
//! user's pending join, a like's answered count, a message's id) and counted once per
//! (listener, action) against the listeners joined when traffic started.
//!
//! Modules: `schedule` (the seeded per-kind timelines and picks), `setup` (users,
//! rooms, memberships, bookmarks to like and delete — not measured), `listeners` (the
//! `room`, `likes` and `user` sockets), `actors` (the signed-in sockets that push),
//! `fire` (what firing each kind does), `settle` (matching and accounting at the end).

pub mod actors;
pub mod fire;
pub mod listeners;
pub mod schedule;
pub mod settle;
pub mod setup;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use self::listeners::{Heard, Spec};
use self::schedule::Timeline;
use self::setup::Made;
use crate::engine::delivery::{EventLedger, GroupStats};
use crate::engine::dispatch::Lane;
use crate::engine::error::SimError;
use crate::engine::stats::{KindStats, Settlement};
use crate::engine::workload::{self, Cx, Workload};
use crate::plan::actions::KINDS;
use crate::plan::seeded::Zipf;
use crate::report::names::{Group, Kind};

/// A like or unlike that succeeded: what its `like_count` broadcast carries.
#[derive(Debug, Clone, Copy)]
pub struct LikeDone {
    pub kind: Kind,
    pub i: u32,
    pub target: u32,
    pub count: i64,
    /// When the answer came (orders actions leading to the same count).
    pub answered: Instant,
}

/// What every listener, actor and fire of the actions shares.
pub struct Shared {
    pub cx: Arc<Cx>,
    pub timeline: Arc<Timeline>,
    pub made: Made,
    /// `sim-<own>-`: the start of every measured message body.
    pub prefix: String,
    pub room_topics: Vec<String>,
    /// Actor user id → actor socket index (typists).
    pub typist_of_user: HashMap<i64, u32>,
    /// Presence user id → presence user index.
    pub presence_of_user: HashMap<i64, u32>,
    /// Corpus chat lines with `@` taken out (mentions are the run's own).
    pub lines: Vec<String>,
    kinds: Vec<Option<Arc<KindStats>>>,
    /// Push kinds answered on another task: chat messages, typing, presence joins.
    pub messages: Settlement,
    pub typings: Settlement,
    pub presences: Settlement,
    pub room: Arc<GroupStats>,
    pub likes: Arc<GroupStats>,
    pub user: Arc<GroupStats>,
    /// Room events: messages, then typing pushes, then presence joins.
    pub room_events: EventLedger,
    /// Joined listeners per room, per like target, per user listener (fixed at t0).
    pub room_joined: Vec<AtomicU32>,
    pub likes_joined: Vec<AtomicU32>,
    pub user_joined: Vec<AtomicU32>,
    /// Per (actor socket × rooms + room): typing index + 1 of its latest push there.
    pub typing_pending: Box<[AtomicU32]>,
    /// Per presence user: join index + 1 of its latest join.
    pub presence_pending: Box<[AtomicU32]>,
    /// Message id (from the `new_msg` reply) → chat message index.
    pub message_ids: Mutex<HashMap<i64, u32>>,
    /// Successful likes and unlikes, for matching `like_count` deliveries.
    pub likes_done: Mutex<Vec<LikeDone>>,
    /// Likes answered and not undone yet, oldest first: what `unlike` undoes.
    pub undoable: Mutex<VecDeque<(u32, u32)>>,
    /// Deliveries owed so far to the groups matched at the end (likes, user), for the
    /// drain: added when an action succeeds.
    pub likes_owed: std::sync::atomic::AtomicU64,
    pub user_owed: std::sync::atomic::AtomicU64,
    /// Each actor socket's outbox (pushes written by its reader task).
    pub outboxes: Vec<mpsc::Sender<String>>,
    /// One permit per listener and actor socket that joined or gave up.
    pub settled: Semaphore,
}

impl Shared {
    /// The stats of `kind` (registered when the plan drives it).
    pub fn kind(&self, kind: Kind) -> Option<&KindStats> {
        KINDS.iter().position(|&k| k == kind).and_then(|i| self.kinds.get(i)?.as_deref())
    }

    /// The room-events index of message `i`, typing `k`, presence join `j`.
    pub fn message_event(&self, i: u32) -> u64 {
        u64::from(i)
    }

    pub fn typing_event(&self, k: u32) -> u64 {
        self.timeline.messages.len() as u64 + u64::from(k)
    }

    pub fn presence_event(&self, j: u32) -> u64 {
        (self.timeline.messages.len() + self.timeline.typings.len()) as u64 + u64::from(j)
    }

    pub fn group(&self, group: Group) -> &GroupStats {
        match group {
            Group::Likes => &self.likes,
            Group::User => &self.user,
            _ => &self.room,
        }
    }
}

/// The actions workload of a run.
#[derive(Default)]
pub struct Actions {
    shared: Option<Arc<Shared>>,
    specs: Vec<Spec>,
    listeners: Vec<JoinHandle<Heard>>,
    actors: Vec<JoinHandle<()>>,
    /// The actor sockets' outbox receivers, until they open.
    inboxes: Vec<mpsc::Receiver<String>>,
}

impl Actions {
    pub fn new() -> Self {
        Self::default()
    }

    fn shared(&self) -> &Arc<Shared> {
        self.shared.as_ref().expect("actions prepared")
    }
}

impl Workload for Actions {
    fn name(&self) -> &'static str {
        "actions"
    }

    fn prepare<'a>(&'a mut self, cx: &'a Arc<Cx>) -> BoxFuture<'a, Result<(), SimError>> {
        async move {
            let plan = &cx.plan;
            let a = &plan.actions;
            let own = cx.own_id();
            let lines: Vec<String> = cx.corpus.chat_lines.iter().map(|l| l.replace('@', "")).collect();
            let timeline = Arc::new(Timeline::new(
                a,
                |rate| plan.traffic.curve(rate),
                plan.traffic.warmup,
                plan.own_seed(),
                lines.len(),
            ));
            let made = setup::make(
                &cx.api,
                a,
                &own,
                &cx.corpus.links,
                timeline.count(Kind::DeleteBookmark),
                if a.room_presence_rate_per_s > 0.0 { a.presence_users(1.0) } else { 0 },
            )
            .await
            .map_err(|e| SimError::Setup(format!("actions setup: {e}")))?;
            let kinds: Vec<Option<Arc<KindStats>>> = KINDS
                .iter()
                .map(|&k| {
                    timeline.lane(k).map(|lane| {
                        let stats = KindStats::new(k, lane.curve.mean_rate(), lane.count, plan.traffic.max_lag);
                        cx.meters.add_kind(stats)
                    })
                })
                .collect();
            let sockets = (a.actor_sockets as usize).min(made.actors.len());
            let (outboxes, inboxes): (Vec<_>, Vec<_>) = (0..sockets).map(|_| mpsc::channel(1024)).unzip();
            let rooms = made.rooms.len();
            let zeros = |n: usize| (0..n).map(|_| AtomicU32::new(0)).collect::<Vec<_>>();
            let events = timeline.messages.len() + timeline.typings.len() + timeline.presences.len();
            let shared = Shared {
                cx: Arc::clone(cx),
                prefix: format!("sim-{own}-"),
                room_topics: made.rooms.iter().map(|s| format!("room:{s}")).collect(),
                typist_of_user: made.actors.iter().take(sockets).enumerate().map(|(k, a)| (a.id, k as u32)).collect(),
                presence_of_user: made.presence.iter().enumerate().map(|(k, a)| (a.id, k as u32)).collect(),
                lines,
                kinds,
                messages: Settlement::new(timeline.messages.len()),
                typings: Settlement::new(timeline.typings.len()),
                presences: Settlement::new(timeline.presences.len()),
                room: cx.meters.group(Group::Room),
                likes: cx.meters.group(Group::Likes),
                user: cx.meters.group(Group::User),
                room_events: EventLedger::new(events),
                room_joined: zeros(rooms),
                likes_joined: zeros(made.like_targets.len()),
                user_joined: zeros(made.mentionable.len()),
                typing_pending: zeros(sockets * rooms).into(),
                presence_pending: zeros(made.presence.len()).into(),
                message_ids: Mutex::new(HashMap::new()),
                likes_done: Mutex::new(Vec::new()),
                undoable: Mutex::new(VecDeque::new()),
                likes_owed: Default::default(),
                user_owed: Default::default(),
                outboxes,
                settled: Semaphore::new(0),
                timeline,
                made,
            };
            self.specs = specs(&shared, plan.own_seed());
            cx.meters.sockets.requested(self.specs.len() as u64 + sockets as u64);
            self.inboxes = inboxes;
            self.shared = Some(Arc::new(shared));
            Ok(())
        }
        .boxed()
    }

    fn open<'a>(&'a mut self, cx: &'a Arc<Cx>) -> BoxFuture<'a, Result<(), SimError>> {
        async move {
            let shared = Arc::clone(self.shared());
            let specs = std::mem::take(&mut self.specs);
            let n = specs.len();
            self.listeners = listeners::open(&shared, specs).await;
            for (k, inbox) in std::mem::take(&mut self.inboxes).into_iter().enumerate() {
                let token = shared.made.actors[k].token.clone();
                self.actors.push(tokio::spawn(actors::run(Arc::clone(&shared), k, token, inbox)));
            }
            workload::settle(&shared.settled, n + self.actors.len(), "action listeners or actor sockets").await?;
            let joined: u32 = [&shared.room_joined, &shared.likes_joined, &shared.user_joined]
                .iter()
                .flat_map(|v| v.iter())
                .map(|j| j.load(Ordering::Acquire))
                .sum();
            if n > 0 && joined == 0 {
                let failures = cx.meters.sockets.counts().failures;
                return Err(SimError::Setup(format!("no room/likes/user listener could join: {failures:?}")));
            }
            // Each group's distinct topics: rooms, like targets, users with a joined listener.
            for (group, per_topic) in [
                (&shared.room, &shared.room_joined),
                (&shared.likes, &shared.likes_joined),
                (&shared.user, &shared.user_joined),
            ] {
                group.set_topics(per_topic.iter().filter(|j| j.load(Ordering::Acquire) > 0).count() as u64);
            }
            Ok(())
        }
        .boxed()
    }

    fn start(&self, _cx: &Arc<Cx>, t0: Instant) {
        self.shared().timeline.start(t0);
    }

    fn drive(&self, cx: &Arc<Cx>) -> Result<Vec<Lane>, SimError> {
        fire::lanes(self.shared(), cx)
    }

    fn drain<'a>(&'a self, _cx: &'a Arc<Cx>, deadline: Instant) -> BoxFuture<'a, bool> {
        async move {
            let sh = self.shared();
            workload::drain_until(deadline, || {
                let answered = sh.messages.settled() as usize >= sh.messages.len()
                    && sh.typings.settled() as usize >= sh.typings.len()
                    && sh.presences.settled() as usize >= sh.presences.len();
                answered && sh.room_events.all_delivered() && settle::likes_and_mentions_arrived(sh)
            })
            .await
        }
        .boxed()
    }

    fn finish<'a>(mut self: Box<Self>, cx: &'a Arc<Cx>) -> BoxFuture<'a, ()> {
        async move {
            cx.stop.cancel();
            let sh = Arc::clone(self.shared());
            let mut heard = Vec::with_capacity(self.listeners.len());
            for handle in self.listeners.drain(..) {
                if let Ok(h) = handle.await {
                    heard.push(h);
                }
            }
            for handle in self.actors.drain(..) {
                let _ = handle.await;
            }
            settle::settle(&sh, &heard);
        }
        .boxed()
    }
}

/// The listener specs: room listeners spread Zipf over rooms (or `room_members` per
/// room, evenly), likes listeners Zipf over targets (seeded), user listeners one per
/// mentionable user.
fn specs(sh: &Shared, seed: u64) -> Vec<Spec> {
    let a = &sh.cx.plan.actions;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6c69_7374);
    let mut specs = Vec::with_capacity(a.listeners() as usize);
    let rooms = sh.room_topics.len();
    let room_zipf = Zipf::new(rooms);
    for k in 0..a.room_listeners {
        let r = match a.room_members {
            Some(m) => (k / m.max(1)).min(rooms.saturating_sub(1) as u32),
            None => room_zipf.sample(&mut rng),
        };
        let topic = sh.room_topics[r as usize].clone();
        specs.push(Spec { index: specs.len(), group: Group::Room, of: r, topic, token: None });
    }
    let target_zipf = Zipf::new(sh.made.like_targets.len());
    for _ in 0..a.likes_listeners {
        let t = target_zipf.sample(&mut rng);
        let topic = format!("likes:{}", sh.made.like_targets[t as usize]);
        specs.push(Spec { index: specs.len(), group: Group::Likes, of: t, topic, token: None });
    }
    for (k, account) in sh.made.mentionable.iter().enumerate() {
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
