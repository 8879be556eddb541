//! Bookmark creation and the firehose and tag listener groups: the spine of a run.
//!
//! Bookmarks are created over HTTP on the open model (`create_bookmark`), each carrying
//! its request index in the URL fragment (`correlate`); listeners on
//! `bookmarks:firehose` and `bookmarks:tag:<tag>` trace every delivery back to its
//! request, count it once per (listener, event) against what the event owed (`events`,
//! `engine::delivery`), and time it from the request's intended start. Listener ramps
//! (`ramp`), presence churn and reconnect storms (`lifecycle`) happen to these
//! listeners.
//!
//! Agents: every agent derives the whole run's schedule from the plan (`schedule`),
//! fires the requests whose index is its own (`i % K == I`) and accounts every event at
//! its listeners, whichever agent sent it; at the end the agents tell each other which
//! of their events owe nothing (failed, private, never sent), so every agent's
//! accounting, and the merged report's, covers the whole server's fan-out.
//!
//! Modules: `schedule`, `correlate`, `audience` (who listens to what), `events` (what
//! each event owes and how it ended), `listeners`, `lifecycle`, `ramp`.

pub mod audience;
pub mod correlate;
pub mod events;
pub mod lifecycle;
pub mod listeners;
pub mod ramp;
pub mod schedule;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use self::audience::Audience;
use self::correlate::Correlator;
use self::events::{Events, Outcomes};
use self::lifecycle::Lifecycle;
use self::listeners::{End, Shared};
use self::ramp::Ramp;
use self::schedule::Schedule;
use crate::engine::delivery::GroupStats;
use crate::engine::dispatch::Lane;
use crate::engine::error::SimError;
use crate::engine::stats::KindStats;
use crate::engine::workload::{self, Cx, Workload};
use crate::http::{self, Draft};
use crate::report::names::{Group, Kind};

/// The bookmarks workload of a run.
#[derive(Default)]
pub struct Bookmarks {
    shared: Option<Arc<Shared>>,
    listeners: Vec<JoinHandle<End>>,
    ramp: Option<Ramp>,
    /// Tokens of the corpus users, by corpus user index.
    tokens: Arc<Vec<String>>,
    create: Option<Arc<KindStats>>,
    /// This process's share of the events: `(I, K)`.
    slot: (u64, u64),
    /// Between `prepare` and `open`: the audience and the listeners to open now.
    pending: Option<(Audience, Vec<audience::Spec>)>,
}

impl Bookmarks {
    pub fn new() -> Self {
        Self::default()
    }

    fn shared(&self) -> &Arc<Shared> {
        self.shared.as_ref().expect("bookmarks opened")
    }

    fn mine(&self) -> impl Fn(u64) -> bool + use<> {
        let (i, k) = self.slot;
        move |e| e % k.max(1) == i
    }
}

impl Workload for Bookmarks {
    fn name(&self) -> &'static str {
        "bookmarks"
    }

    fn prepare<'a>(&'a mut self, cx: &'a Arc<Cx>) -> BoxFuture<'a, Result<(), SimError>> {
        async move {
            let plan = &cx.plan;
            let b = &plan.bookmarks;
            self.slot = plan.agents.slot.map_or((0, 1), |s| (u64::from(s.index), u64::from(s.count)));
            // Setup, not measured: one account per corpus user, then seed bookmarks.
            let usernames: Vec<String> = cx.corpus.users.iter().map(|u| u.username.clone()).collect();
            let suffix = format!("{}{}", cx.run_id, self.slot.0);
            let accounts = cx
                .api
                .create_accounts(&usernames, &suffix)
                .await
                .map_err(|e| SimError::Setup(format!("users: {e}")))?;
            self.tokens = Arc::new(accounts.into_iter().map(|a| a.token).collect());
            let drafts: Arc<[Draft]> = cx.corpus.links.iter().cloned().collect();
            if cx.api.profile().seed_bookmarks && b.seed_bookmarks > 0 {
                let mut order: Vec<usize> = (0..drafts.len()).collect();
                order.shuffle(&mut ChaCha8Rng::seed_from_u64(plan.own_seed().rotate_left(17)));
                let picks = (0..b.seed_bookmarks as usize).map(|k| &drafts[order[k % order.len()]]);
                cx.api
                    .seed_bookmarks(picks, &self.tokens)
                    .await
                    .map_err(|e| SimError::Setup(format!("seed bookmarks: {e}")))?;
            }

            // Who listens to what; the whole run's schedule.
            let weights: Vec<(String, f64)> = cx.corpus.tags.iter().map(|t| (t.name.clone(), t.weight)).collect();
            let audience = Audience::new(b.listeners, b.tag_listeners, &weights, plan.own_seed())
                .with_topics(&plan.target.profile.topics);
            let schedule = Arc::new(Schedule::staged(
                plan.traffic.curve(b.rate_per_s),
                plan.traffic.warmup,
                drafts.len(),
                plan.traffic.seed,
                b.private_fraction,
            ));
            let requests = schedule.requests();
            let (me, k) = self.slot;
            let own = (0..requests).filter(|e| e % k == me).count() as u64;
            let meters = &cx.meters;
            let max_lag = plan.traffic.max_lag;
            self.create = Some(meters.add_kind(KindStats::new(Kind::CreateBookmark, b.rate_per_s, own, max_lag)));
            let churn = b.presence_churn.as_ref().map(|c| {
                let curve = plan.traffic.curve(c.rate_per_s);
                let stats = KindStats::new(Kind::PresenceChurn, curve.mean_rate(), curve.count(), max_lag);
                (meters.add_kind(stats), c, curve)
            });
            let storm = b.reconnect_storm.as_ref().map(|s| {
                let rate = s.at.len() as f64 / plan.traffic.duration.as_secs_f64();
                (meters.add_kind(KindStats::new(Kind::ReconnectStorm, rate, 0, max_lag)), s)
            });
            let (specs, ramp) = match &b.listener_ramp {
                Some(r) => {
                    let (statics, ramped) = ramp::split(r, audience.specs.clone());
                    (statics, Some(ramped))
                }
                None => (audience.specs.clone(), None),
            };
            let life = Lifecycle::new(
                churn.as_ref().map(|(_, plan, curve)| (*plan, curve.clone())),
                storm.as_ref().map(|(_, s)| *s),
                audience.specs.len(),
                plan.own_seed(),
                plan.traffic.warmup,
                (churn.as_ref().map(|c| Arc::clone(&c.0)), storm.as_ref().map(|s| Arc::clone(&s.0))),
            );
            if let Some((stats, _)) = &storm {
                stats.add_scheduled(life.storm_drops());
                stats.add_detail("storms", life.storms() as u64);
            }
            let shared = Arc::new(Shared {
                cx: Arc::clone(cx),
                schedule,
                correlator: Correlator::new(&cx.run_id, requests),
                events: Arc::new(Events::new(requests)),
                drafts,
                profile: Arc::new(plan.target.profile.clone()),
                firehose: meters.group(Group::Firehose),
                tag: meters.group(Group::Tag),
                life,
                settled: Semaphore::new(0),
                joined: (0..audience.specs.len()).map(|_| AtomicBool::new(false)).collect(),
                specs: audience.specs.clone(),
                audience: std::sync::OnceLock::new(),
            });
            set_topics(&shared, &audience);
            meters.sockets.requested(specs.len() as u64);
            if let Some(r) = &ramp {
                meters.sockets.ramped(r.len() as u64);
            }
            self.shared = Some(shared);
            self.ramp = ramp;
            self.pending = Some((audience, specs));
            Ok(())
        }
        .boxed()
    }

    fn open<'a>(&'a mut self, cx: &'a Arc<Cx>) -> BoxFuture<'a, Result<(), SimError>> {
        async move {
            let shared = Arc::clone(self.shared());
            let Some((audience, specs)) = self.pending.take() else { return Ok(()) };
            let n = specs.len();
            self.listeners = listeners::open(&shared, specs).await;
            workload::settle(&shared.settled, n, "firehose/tag listeners").await?;
            let joined = (0..audience.specs.len()).filter(|&i| shared.has_joined(i)).count();
            if n > 0 && joined == 0 {
                let failures = cx.meters.sockets.counts().failures;
                return Err(SimError::Setup(format!("no firehose/tag listener could join: {failures:?}")));
            }
            // Events owe only the listeners that joined.
            let joined_audience = audience.joined_only(|i| shared.has_joined(i));
            shared.events.owe_all(&shared.schedule, &shared.drafts, &joined_audience);
            let _ = shared.audience.set(joined_audience);
            Ok(())
        }
        .boxed()
    }

    fn start(&self, _cx: &Arc<Cx>, t0: Instant) {
        let shared = self.shared();
        shared.schedule.start(t0);
        if let Some(r) = &self.ramp {
            r.start(shared, t0);
        }
    }

    fn drive(&self, cx: &Arc<Cx>) -> Result<Vec<Lane>, SimError> {
        let shared = Arc::clone(self.shared());
        let stats = Arc::clone(self.create.as_ref().expect("bookmarks opened"));
        let clients = cx.measured_clients()?;
        let tokens = Arc::clone(&self.tokens);
        let requests = shared.schedule.requests();
        let (me, k) = self.slot;
        let schedule = Arc::clone(&shared.schedule);
        let events = (0..requests).filter(move |e| e % k == me).map(move |e| (schedule.offset(e), e));
        let fire = move |i: u64, intended: Instant| {
            let (shared, stats, client, tokens) =
                (Arc::clone(&shared), Arc::clone(&stats), clients.for_action(i).clone(), Arc::clone(&tokens));
            async move { create(&shared, &stats, &client, &tokens, i, intended).await }.boxed()
        };
        Ok(vec![Lane::new(Kind::CreateBookmark, events, true, fire)])
    }

    fn drain<'a>(&'a self, _cx: &'a Arc<Cx>, deadline: Instant) -> BoxFuture<'a, bool> {
        async move {
            let events = &self.shared().events;
            // Interrupted: what was never sent owes nothing.
            events.unsent_owe_nothing(self.mine());
            workload::drain_until(deadline, || events.all_delivered()).await
        }
        .boxed()
    }

    fn outcomes(&self) -> serde_json::Value {
        serde_json::to_value(self.shared().events.outcomes(self.mine())).unwrap_or_default()
    }

    fn absorb(&self, all: &[serde_json::Value]) {
        let events = &self.shared().events;
        for theirs in all {
            if let Ok(outcomes) = serde_json::from_value::<Outcomes>(theirs.clone()) {
                events.absorb(&outcomes);
            }
        }
    }

    fn finish<'a>(mut self: Box<Self>, cx: &'a Arc<Cx>) -> BoxFuture<'a, ()> {
        async move {
            let shared = Arc::clone(self.shared());
            let late = match self.ramp.take() {
                Some(r) => {
                    r.finish(&shared, Instant::now() + cx.plan.traffic.drain_timeout.min(Duration::from_secs(5))).await
                }
                None => BTreeMap::new(),
            };
            cx.stop.cancel();
            let mut ends = Vec::with_capacity(self.listeners.len());
            for handle in self.listeners.drain(..) {
                if let Ok(end) = handle.await {
                    ends.push(end);
                }
            }
            settle(&shared, &ends, &GroupSide::Firehose, &shared.firehose);
            settle(&shared, &ends, &GroupSide::Tag, &shared.tag);
            for (group, report) in late {
                shared.cx.meters.group(group).set_late(report);
            }
        }
        .boxed()
    }
}

/// Which ledger a group settles from.
enum GroupSide {
    Firehose,
    Tag,
}

/// Settles one group: owed and lost per (listener, event) from its ledger, and the
/// listeners that missed any owed event.
fn settle(shared: &Shared, ends: &[End], side: &GroupSide, group: &GroupStats) {
    let (ledger, wanted) = match side {
        GroupSide::Firehose => (&shared.events.firehose, Group::Firehose),
        GroupSide::Tag => (&shared.events.tag, Group::Tag),
    };
    let owed = ledger.owed_totals();
    // Events each listener was owed: every event owing the firehose, or per tag those
    // carrying it, counted once over the events.
    let mut per_tag: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut firehose_owed = 0u64;
    for i in 0..shared.events.len() {
        if shared.events.firehose.owed(i) > 0 {
            firehose_owed += 1;
        }
        if shared.events.tag.owed(i) > 0
            && let Some(draft) = shared.schedule.link(i).and_then(|l| shared.drafts.get(l))
        {
            let mut tags: Vec<String> = draft.tags.iter().map(|t| audience::normalise(t)).collect();
            tags.sort_unstable();
            tags.dedup();
            for t in tags {
                *per_tag.entry(t).or_default() += 1;
            }
        }
    }
    let mut with_loss = 0;
    for end in ends.iter().filter(|e| e.joined) {
        let Some(spec) = shared.specs.get(end.index) else { continue };
        if spec.group != wanted {
            continue;
        }
        let got = end.seen.iter().filter(|&i| ledger.owed(i) > 0).count() as u64;
        let owed_here = match &spec.tag {
            None => firehose_owed,
            Some(tag) => per_tag.get(&**tag).copied().unwrap_or(0),
        };
        if got < owed_here {
            with_loss += 1;
        }
    }
    group.settle(owed, with_loss);
}

/// The tag group's topics and listeners per tag.
fn set_topics(shared: &Shared, audience: &Audience) {
    let tags = audience.tags();
    shared.tag.set_topics(tags.len() as u64);
    shared.tag.set_topic_listeners(tags.into_iter().map(|(t, n)| (t, u64::from(n))).collect());
    shared.firehose.set_topics(u64::from(audience.specs.iter().any(|s| s.tag.is_none())));
}

/// Sends request `i` (intended at `intended`) and settles what it owes.
async fn create(
    shared: &Shared,
    stats: &KindStats,
    client: &http::Client,
    tokens: &[String],
    i: u64,
    intended: Instant,
) {
    let key = i as usize;
    let schedule = &shared.schedule;
    let private = schedule.is_private(i);
    let draft = schedule.link(i).and_then(|l| shared.drafts.get(l));
    let token = draft.and_then(|d| tokens.get(d.user));
    let (Some(draft), Some(token)) = (draft, token) else {
        stats.error("no_draft");
        shared.events.not_owed(i);
        return;
    };
    let url = shared.correlator.tag(&draft.url, i);
    shared.events.sending(i);
    let sent = Instant::now();
    stats.sent(key, intended, sent);
    let result = client.create_bookmark(token, draft, &url, !private).await;
    let done = Instant::now();
    let measured = !schedule.is_warmup(i);
    match result {
        Err(transport) => {
            stats.error(transport.kind());
            shared.events.not_owed(i);
        }
        Ok((201, Some(created))) if created.public => {
            stats.answered(key, measured, intended, Some(sent), done, Ok(()));
            stats.add_detail("created_public", 1);
            // A profile that reads the stored tags from the response owes what they say.
            let owed = shared
                .profile
                .create
                .tags
                .is_some()
                .then(|| shared.audience.get().map_or([0, 0], |a| a.owed(created.tags.iter().map(String::as_str))));
            shared.events.created_public(i, owed);
        }
        Ok((201, Some(_))) => {
            stats.answered(key, measured, intended, Some(sent), done, Ok(()));
            stats.add_detail("created_private", 1);
            shared.events.created_private(i);
        }
        Ok((201, None)) => {
            stats.answered(key, measured, intended, Some(sent), done, Err("http_201_unreadable_body"));
            shared.events.not_owed(i);
        }
        Ok((status, _)) => {
            let kind = if status == 429 { "rate_limited".to_owned() } else { format!("http_{status}") };
            stats.answered(key, measured, intended, Some(sent), done, Err(&kind));
            shared.events.not_owed(i);
        }
    }
}
