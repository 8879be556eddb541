//! One run, start to finish, whatever its workloads: open the targets and check each
//! speaks Phoenix, open every workload (setup, then its sockets, memory measured
//! around them), start one clock (t0) once everyone listens, fire every workload's
//! lanes through the one dispatcher, drain what is still owed, exchange outcomes with
//! the other agents of the run (if any), finish every workload, and build the report
//! from the meters. A run that fails after listeners connected still reports what it
//! measured (`SimError::Partial`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;

use super::build::{self, Facts};
use super::dispatch::Dispatcher;
use super::error::SimError;
use super::interrupt;
use super::route::Route;
use super::sampler::Sampler;
use super::servers::{ServerFacts, Servers};
use super::target::Targets;
use super::workload::{Cx, Workload};
use firehose_app::resources;

use crate::fixtures::Corpus;
use crate::http;
use crate::phoenix::probe::{self, ProbeError};
use crate::plan::Plan;
use crate::report::Report;
use crate::report::model::TargetInfo;
use crate::report::progress::Progress;

/// Time between the last listener joining and the first intended start, so action 0
/// is not already late when the dispatcher's first timer fires.
const LEAD_IN: Duration = Duration::from_millis(50);

/// What a run knows once every listener settled, before traffic starts.
pub struct Ready<'a> {
    pub run_id: &'a str,
    pub joined: u64,
    /// When this process alone would start (`LEAD_IN` from now).
    pub proposed: Instant,
}

/// How a process takes part in a run shared with other agents (a single process:
/// [`Alone`]).
pub trait Peers: Sync {
    /// Decides when traffic starts (t0) once every listener settled. Called through
    /// `block_in_place` on a multi-thread runtime, so it may block.
    fn start(&self, ready: &Ready<'_>) -> Result<Instant, SimError>;

    /// Given this process's outcomes (one JSON value per workload, in order), every
    /// agent's (each a list like this one). May block.
    fn exchange(&self, mine: Vec<serde_json::Value>) -> Result<Vec<Vec<serde_json::Value>>, SimError>;
}

/// A process running a plan alone.
pub struct Alone;

impl Peers for Alone {
    fn start(&self, ready: &Ready<'_>) -> Result<Instant, SimError> {
        Ok(ready.proposed)
    }

    fn exchange(&self, mine: Vec<serde_json::Value>) -> Result<Vec<Vec<serde_json::Value>>, SimError> {
        Ok(vec![mine])
    }
}

/// Runs `plan`'s `workloads` against its target, drawing from `corpus`.
pub async fn run(
    plan: Plan,
    corpus: Arc<Corpus>,
    workloads: Vec<Box<dyn Workload>>,
    peers: &dyn Peers,
) -> Result<Report, SimError> {
    if corpus.links.is_empty() || corpus.users.is_empty() {
        return Err(SimError::Setup("the corpus has no links or no users".into()));
    }
    let run_id =
        plan.agents.run_id.clone().unwrap_or_else(|| format!("{:06x}", rand::rng().random::<u32>() & 0xff_ffff));
    let started_at = chrono::Utc::now().to_rfc3339();
    let targets = Targets::open(&plan.target).await?;
    let result = drive(plan, corpus, workloads, peers, &targets, run_id, started_at).await;
    let closed = targets.close().await;
    let report = result?;
    if let Err(e) = closed {
        return Err(partial(report, e));
    }
    Ok(report)
}

/// Blocks on `f` where that is allowed (`block_in_place` on a multi-thread runtime).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    let multi_thread = tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread;
    if multi_thread { tokio::task::block_in_place(f) } else { f() }
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    plan: Plan,
    corpus: Arc<Corpus>,
    mut workloads: Vec<Box<dyn Workload>>,
    peers: &dyn Peers,
    targets: &Targets,
    run_id: String,
    started_at: String,
) -> Result<Report, SimError> {
    let plan = Arc::new(plan);
    let profile = Arc::new(plan.target.profile.clone());
    let mut route = Vec::new();
    for target in targets.iter() {
        let endpoint = target.endpoint(&profile.socket_path());
        // Is it Phoenix at all? Before anything is created on it (exit 7 if not).
        probe::phoenix(&endpoint).await.map_err(|e| match e {
            ProbeError::Unreachable(why) => SimError::Unreachable(why),
            ProbeError::NotPhoenix(why) => SimError::NotPhoenix(why),
        })?;
        route.push((endpoint, target.base_url.clone()));
    }
    let first = targets.first();
    let api = http::Client::new(first.base_url.clone(), http::setup::CONCURRENCY, first.tls.as_ref(), profile)
        .map_err(SimError::Setup)?;
    let servers = Servers::new(&api, targets.iter().map(|t| t.base_url.as_str()));
    // Agents start on different targets (see `route`).
    let offset = plan.agents.slot.map_or(0, |s| s.index as usize);
    let tls = targets.iter().find_map(|t| t.tls.clone());
    let cx = Arc::new(Cx::new(
        Arc::clone(&plan),
        run_id,
        corpus,
        Route::new(route, offset),
        api,
        plan.target.source_ips.clone(),
        tls,
    ));

    // Setup, then sockets, measuring both processes' memory around the sockets.
    let progress = Progress::start();
    progress.phase("setup", "accounts, rooms and seed data (not measured)");
    for w in &mut workloads {
        if let Err(e) = w.prepare(&cx).await {
            cx.stop.cancel();
            return Err(e);
        }
    }
    let sim_rss_before = resources::vm_rss_bytes();
    let servers_before = servers.read().await;
    let watching = progress.watch_connecting({
        let cx = Arc::clone(&cx);
        move || (cx.meters.sockets.joined_count(), cx.meters.sockets.counts().requested)
    });
    for w in &mut workloads {
        if let Err(e) = w.open(&cx).await {
            cx.stop.cancel();
            return Err(e);
        }
    }
    drop(watching);
    let sim_rss_after = resources::vm_rss_bytes();
    // One reading of the server after the joins: its memory, and its CPU from here to
    // the end of traffic (read before the clock is set, so the request never delays
    // the start of traffic or of the sampler; the lead-in it adds is idle time).
    let servers_joined = servers.read().await;
    let sockets_joined = cx.route.tallies().iter().map(|t| t.connected).collect();

    // One clock for everything, once everyone listens.
    let ready =
        Ready { run_id: &cx.run_id, joined: cx.meters.sockets.joined_count(), proposed: Instant::now() + LEAD_IN };
    let t0 = match blocking(|| peers.start(&ready)) {
        Ok(at) => cx.start_clock(at),
        Err(e) => {
            cx.stop.cancel();
            return Err(e);
        }
    };
    for w in &workloads {
        w.start(&cx, t0);
    }
    let cpu_before = resources::cpu_time();
    let sampler = Sampler::start(t0, plan.traffic.duration, Arc::clone(&cx.meters), Arc::clone(&progress));
    let mut lanes = Vec::new();
    for w in &workloads {
        match w.drive(&cx) {
            Ok(l) => lanes.extend(l),
            Err(e) => {
                cx.stop.cancel();
                return Err(e);
            }
        }
    }
    let dispatcher = Dispatcher::new(plan.traffic.max_in_flight);
    let fired = dispatcher.run(t0, lanes).await;
    let traffic_end = Instant::now();
    let load_average = resources::load_average();
    let sim_cpu = resources::cpu_time().zip(cpu_before).map(|(after, before)| after.saturating_sub(before));
    let servers_after = servers.read().await;

    // Drain (briefly when interrupted), every workload at once.
    let deadline = traffic_end + interrupt::drain_timeout(plan.traffic.drain_timeout);
    let drained = futures_util::future::join_all(workloads.iter().map(|w| w.drain(&cx, deadline))).await;
    let drain_timed_out = drained.iter().any(|d| !d);
    let drain = traffic_end.elapsed();

    // Agents account every event: learn the others' outcomes before settling.
    let mine: Vec<serde_json::Value> = workloads.iter().map(|w| w.outcomes()).collect();
    let exchanged = blocking(|| peers.exchange(mine));
    let mut failed = fired.err();
    match exchanged {
        Ok(all) => {
            for (k, w) in workloads.iter().enumerate() {
                let theirs: Vec<serde_json::Value> = all.iter().filter_map(|agent| agent.get(k).cloned()).collect();
                w.absorb(&theirs);
            }
        }
        Err(e) => failed = failed.or(Some(e.to_string())),
    }
    // Each workload stops its own sockets in `finish`, when its accounting allows:
    // ramped listeners, for one, must still read until they caught up with every
    // topic's final `seq`. Whatever is still reading after the last one stops now.
    for w in workloads {
        w.finish(&cx).await;
    }
    cx.stop.cancel();
    let sampled = sampler.finish().await;
    progress.finish();

    let interrupted = interrupt::received().map(|(signal, at)| {
        let sent: u64 = cx.meters.kinds().iter().map(|k| k.sent_count()).sum();
        let scheduled: u64 = cx.meters.kinds().iter().map(|k| k.scheduled_count()).sum();
        interrupt::reason(signal, at.saturating_duration_since(t0), scheduled.saturating_sub(sent), scheduled)
    });
    let facts = Facts {
        plan: &plan,
        run_id: &cx.run_id,
        targets: targets.iter().map(|t| TargetInfo::new(t.is_embedded(), t.base_url.clone())).collect(),
        tallies: cx.route.tallies(),
        started_at,
        traffic: traffic_end.saturating_duration_since(t0),
        drain,
        drain_timed_out,
        sim_rss: (sim_rss_before, sim_rss_after),
        sim_cpu,
        servers: ServerFacts {
            urls: targets.iter().map(|t| t.base_url.clone()).collect(),
            before: servers_before,
            joined: servers_joined,
            after: servers_after,
            sockets: sockets_joined,
            embedded: targets.is_embedded(),
        },
        cap: &dispatcher.cap,
        load_average,
        partial: interrupted,
    };
    let mut report = build::report(&cx.meters, &facts);
    sampled.attach(&mut report);
    if let Some(why) = failed {
        return Err(partial(report, SimError::Setup(why)));
    }
    Ok(report)
}

/// A run that failed after listeners connected: the report of what was measured,
/// marked partial, travels with the error so that it is still written.
fn partial(mut report: Report, cause: SimError) -> SimError {
    let why = format!("the run failed after listeners connected: {cause}");
    report.model.verdict.partial = Some(match report.model.verdict.partial.take() {
        Some(other) => format!("{other}; {why}"),
        None => why,
    });
    SimError::Partial { cause: Box::new(cause), report: Box::new(report) }
}
