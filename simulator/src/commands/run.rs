//! One run, start to finish: open the target, seed it, open the listeners at the
//! connect rate, start the clock once all have joined, generate on schedule, drain the
//! deliveries still owed, stop everything, and turn what was counted into a `Report`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::engine::error::SimError;
use crate::engine::resources;
use crate::engine::target::Target;
use crate::fixtures::Corpus;
use crate::http::{Api, Draft};
use crate::plan::Plan;
use crate::plan::args::RunArgs;
use crate::report::Report;
use crate::report::exit;
use crate::workloads::bookmarks::audience::Audience;
use crate::workloads::bookmarks::correlate::Correlator;
use crate::workloads::bookmarks::generator::{self, Generator};
use crate::workloads::bookmarks::ledger::Ledger;
use crate::workloads::bookmarks::lifecycle::Lifecycle;
use crate::workloads::bookmarks::listeners::{self, Shared};
use crate::workloads::bookmarks::report::Facts;
use crate::workloads::bookmarks::schedule::Schedule;
use crate::workloads::bookmarks::seed;

/// Time between the last listener joining and the first intended start, so request 0
/// is not already late when the generator's first timer fires.
const LEAD_IN: Duration = Duration::from_millis(50);
/// How often the drain checks whether every owed delivery arrived.
const DRAIN_POLL: Duration = Duration::from_millis(10);
/// Beyond each listener's own join timeout, how long to wait for all to settle.
const SETTLE_MARGIN: Duration = Duration::from_secs(30);

/// Runs `plan` with the committed fixture corpus.
pub async fn run(plan: Plan) -> Result<Report, SimError> {
    let corpus = Corpus::embedded_default().map_err(|e| SimError::Setup(format!("fixture corpus: {e}")))?;
    run_with_corpus(plan, &corpus).await
}

/// Runs `plan` drawing users, links and tags from `corpus`.
pub async fn run_with_corpus(plan: Plan, corpus: &Corpus) -> Result<Report, SimError> {
    run_gated(plan, corpus, &|ready: &Ready| Ok(ready.proposed)).await
}

/// What a run knows once every listener settled, before traffic starts.
pub struct Ready<'a> {
    pub run_id: &'a str,
    pub joined: u64,
    /// When this process alone would start (`LEAD_IN` from now).
    pub proposed: Instant,
}

/// Decides when traffic starts (t0) once every listener settled: alone, at
/// `ready.proposed`; as an agent, at the common t0 its parent sends. On a multi-thread
/// runtime it is called via `block_in_place`, so it may block.
pub type StartGate<'a> = &'a (dyn Fn(&Ready<'_>) -> Result<Instant, SimError> + Sync);

/// As [`run_with_corpus`], traffic starting when `gate` says.
pub async fn run_gated(plan: Plan, corpus: &Corpus, gate: StartGate<'_>) -> Result<Report, SimError> {
    if corpus.links.is_empty() || corpus.users.is_empty() {
        return Err(SimError::Setup("the corpus has no links or no users".into()));
    }
    let run_id = format!("{:06x}", rand::rng().random::<u32>() & 0xff_ffff);
    let started_at = chrono::Utc::now();
    let target = Target::open(&plan.target).await?;
    let result = drive(&plan, &target, corpus, &run_id, gate).await;
    let closed = target.close().await;
    let mut report = result?;
    report.model.started_at = started_at.to_rfc3339();
    report.model.finished_at = chrono::Utc::now().to_rfc3339();
    if let Err(e) = closed {
        return Err(partial(report, e));
    }
    Ok(report)
}

async fn drive(
    plan: &Plan,
    target: &Target,
    corpus: &Corpus,
    run_id: &str,
    gate: StartGate<'_>,
) -> Result<Report, SimError> {
    // Is it Phoenix at all? Before anything is created on it (exit 7 if not).
    let profile = Arc::new(plan.profile.clone());
    crate::phoenix::probe::phoenix(target.addr(), &profile.ws_url(target.addr())).await?;
    // Setup, not measured.
    let progress = crate::report::progress::Progress::start();
    progress.phase("seeding", "users and seed bookmarks");
    let api = Api::new(target.base_url(), plan.max_in_flight as usize)
        .map_err(SimError::Setup)?
        .with_profile(Arc::clone(&profile));
    let usernames: Vec<String> = corpus.users.iter().map(|u| u.username.clone()).collect();
    let accounts = seed::create_users(&api, &usernames, run_id).await.map_err(SimError::Setup)?;
    let drafts: Arc<[Draft]> = corpus.links.iter().cloned().collect();
    let seeds = if profile.seed_bookmarks { plan.seed_bookmarks } else { 0 };
    seed::seed_bookmarks(&api, &accounts, &drafts, seeds, plan.seed).await.map_err(SimError::Setup)?;
    let mut actions =
        crate::workloads::actions::Session::prepare(plan, &target.base_url(), target.addr(), corpus, run_id).await?;
    let mut pages = crate::workloads::pages::Pages::prepare(plan, &target.base_url(), target.addr(), run_id).await?;

    let schedule = Arc::new(Schedule::staged(
        plan.curve(plan.rate_per_s),
        plan.warmup,
        drafts.len(),
        plan.seed,
        plan.private_fraction,
    ));
    let correlator = Correlator::new(run_id, plan.requests());
    let ledger = Arc::new(Ledger::new(plan.requests()));
    let weights: Vec<(String, f64)> = corpus.tags.iter().map(|t| (t.name.clone(), t.weight)).collect();
    let audience = Audience::new(plan.listeners, plan.tag_listeners, &weights, plan.seed).with_topics(&profile.topics);
    let stop = CancellationToken::new();
    let shared = Arc::new(
        Shared::new(
            target.addr(),
            Arc::clone(&schedule),
            correlator.clone(),
            Arc::clone(&ledger),
            stop.clone(),
            audience.specs.len(),
        )
        .with_profile(Arc::clone(&profile))
        .with_sources(plan.source_ips.clone())
        .with_lifecycle(lifecycle(plan, audience.specs.len())),
    );

    // Listeners, measuring both processes' memory around them.
    let sim_rss_before = resources::vm_rss_bytes();
    let server_rss_before = api.server_rss_bytes().await;
    let watching = progress.watch_connecting(audience.specs.len() as u64, {
        let shared = Arc::clone(&shared);
        move || shared.joined.load(Ordering::Relaxed)
    });
    // With a listener ramp, only the listeners connected throughout open now (the
    // ledger's audience); the ramped ones come and go during the traffic phase.
    let (specs, mut ramp) = match &plan.listener_ramp {
        Some(r) => {
            let (statics, ramped) = crate::workloads::bookmarks::ramp::split(r, audience.specs.clone());
            (statics, Some(ramped))
        }
        None => (audience.specs.clone(), None),
    };
    let handles = listeners::open(&shared, specs, plan.connect_rate_per_s).await;
    let joined = await_joins(&shared, handles.len(), &audience).await;
    drop(watching);
    let sim_rss_after = resources::vm_rss_bytes();
    let server_rss_after = api.server_rss_bytes().await;
    if let Err(e) = joined {
        stop.cancel();
        return Err(e);
    }
    let audience = Arc::new(audience.joined_only(|i| shared.has_joined(i)));
    if let Some(Err(e)) = match actions.as_mut() {
        Some(a) => Some(a.open(plan).await),
        None => None,
    } {
        stop.cancel();
        return Err(e);
    }
    if let Some(Err(e)) = match pages.as_mut() {
        Some(p) => Some(p.open(plan).await),
        None => None,
    } {
        stop.cancel();
        return Err(e);
    }

    // Traffic, on the generator's own thread, once everyone listens.
    let ready = Ready { run_id, joined: shared.joined.load(Ordering::Relaxed), proposed: Instant::now() + LEAD_IN };
    let multi_thread = tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread;
    let decided = if multi_thread { tokio::task::block_in_place(|| gate(&ready)) } else { gate(&ready) };
    let start_at = match decided {
        Ok(at) => at,
        Err(e) => {
            stop.cancel();
            return Err(e);
        }
    };
    let t0 = schedule.start(start_at);
    if let Some(a) = &actions {
        a.start(t0);
    }
    if let Some(p) = &pages {
        p.start(t0);
    }
    if let Some(r) = ramp.as_mut() {
        r.start(&shared, t0);
    }
    shared.life.started.cancel();
    let cpu_before = resources::cpu_time();
    let generator = Arc::new(Generator {
        api: Api::new(target.base_url(), plan.max_in_flight as usize)
            .map_err(SimError::Setup)?
            .with_profile(Arc::clone(&profile)),
        accounts,
        drafts,
        schedule: Arc::clone(&schedule),
        correlator,
        ledger: Arc::clone(&ledger),
        audience: Arc::clone(&audience),
        max_in_flight: plan.max_in_flight,
        stats: generator::Stats::default(),
    });
    let mut probes = crate::report::timeline::firehose_probes(&shared, &generator);
    if let Some(r) = &ramp {
        // Open connections: the static listeners still joined plus the ramped ones now.
        let closed = |s: &Shared| -> u64 {
            s.failures.lock().iter().filter(|(k, _)| k.starts_with("during_run:")).map(|(_, n)| n).sum()
        };
        let (s1, s2, open) = (Arc::clone(&shared), Arc::clone(&shared), Arc::clone(&r.open));
        probes = probes.connections(
            move || s1.joined.load(Ordering::Relaxed).saturating_sub(closed(&s1)) + open.load(Ordering::Relaxed),
            move || closed(&s2),
        );
    }
    let sampler = crate::report::timeline::Sampler::start(t0, plan.duration, probes, Arc::clone(&progress));
    let acting = async {
        match &actions {
            Some(a) => a.drive(plan).await,
            None => Ok(()),
        }
    };
    let reading = async {
        if let Some(p) = &pages {
            p.drive().await;
        }
    };
    let (generated, acted, ()) = tokio::join!(Arc::clone(&generator).run_on_own_thread(), acting, reading);
    let traffic_end = Instant::now();
    // Interrupted: a short, bounded drain of what is in flight.
    let drain_timeout = crate::engine::interrupt::drain_timeout(plan.drain_timeout);
    let sim_cpu = resources::cpu_time().zip(cpu_before).map(|(after, before)| after.saturating_sub(before));
    let drain_timed_out = generated.is_ok() && !drain(&ledger, traffic_end + drain_timeout).await;
    let actions_drained = match &actions {
        Some(a) => acted.is_err() || a.drain(traffic_end + drain_timeout).await,
        None => true,
    };
    let pages_drained = match &pages {
        Some(p) => p.drain(traffic_end + drain_timeout).await,
        None => true,
    };
    let drain_timed_out = drain_timed_out || !actions_drained || !pages_drained;
    let late = match ramp {
        Some(r) => Some(r.finish(&shared, Instant::now() + drain_timeout).await),
        None => None,
    };
    let drain = traffic_end.elapsed();
    stop.cancel();
    // A generator that failed still leaves what listeners and requests measured.
    let generator_failed = generated.err().or(acted.err());
    let mut per_listener = Vec::with_capacity(handles.len());
    for handle in handles {
        if let Ok(result) = handle.await {
            per_listener.push(result);
        }
    }
    let sampled = sampler.finish().await;
    progress.finish();

    let facts = Facts {
        plan,
        run_id,
        target,
        shared: &shared,
        generator: &generator.stats,
        ledger: &ledger,
        per_listener: &per_listener,
        audience: &audience,
        t0,
        traffic: traffic_end.saturating_duration_since(t0),
        drain,
        drain_timed_out,
        sim_rss: (sim_rss_before, sim_rss_after),
        server_rss: (server_rss_before, server_rss_after),
        sim_cpu,
    };
    let mut report = facts.report();
    if let Some(a) = actions {
        a.finish(plan, facts.traffic, &mut report).await;
    }
    if let Some(p) = pages {
        p.finish(plan, facts.traffic, &mut report).await;
    }
    if let Some(late) = late {
        crate::workloads::bookmarks::ramp::add_to_report(late, &mut report);
    }
    let rates = [
        plan.presence_churn.as_ref().map_or(0.0, |c| plan.curve(c.rate_per_s).mean_rate()),
        plan.reconnect_storm.as_ref().map_or(0.0, |s| s.at.len() as f64 / plan.duration.as_secs_f64()),
    ];
    crate::workloads::bookmarks::lifecycle::add_to_report(&shared.life, &mut report, rates, facts.traffic);
    sampled.attach(&mut report);
    if let Some((signal, at)) = crate::engine::interrupt::received() {
        let r = &report.model.requests;
        let unsent = r.scheduled.saturating_sub(r.sent);
        let why = crate::engine::interrupt::reason(signal, at.saturating_duration_since(t0), unsent, r.scheduled);
        report.model.partial = Some(match report.model.partial.take() {
            Some(other) => format!("{why}; {other}"),
            None => why,
        });
    }
    if let Some(why) = generator_failed {
        return Err(partial(report, SimError::Setup(why)));
    }
    Ok(report)
}

/// A run that failed after listeners connected: the report of what was measured,
/// marked partial, travels with the error so that it is still written.
fn partial(mut report: Report, cause: SimError) -> SimError {
    report.model.partial = Some(format!("the run failed after listeners connected: {cause}"));
    SimError::Partial { cause: Box::new(cause), report: Box::new(report) }
}

/// The plan's churn (on the stages' curve) and storms over `listeners` sockets.
fn lifecycle(plan: &Plan, listeners: usize) -> Lifecycle {
    let churn = plan.presence_churn.as_ref().map(|c| (c, plan.curve(c.rate_per_s)));
    Lifecycle::new(churn, plan.reconnect_storm.as_ref(), listeners, plan.seed, plan.warmup)
}

/// Waits until every listener joined or gave up; an error when none could join.
async fn await_joins(shared: &Shared, opened: usize, audience: &Audience) -> Result<(), SimError> {
    let everyone = u32::try_from(opened).unwrap_or(u32::MAX);
    let settled =
        tokio::time::timeout(listeners::JOIN_TIMEOUT + SETTLE_MARGIN, shared.settled.acquire_many(everyone)).await;
    if settled.is_err() {
        return Err(SimError::Setup("listeners neither joined nor failed in time".into()));
    }
    if shared.joined.load(Ordering::Relaxed) == 0 && opened > 0 && !audience.specs.is_empty() {
        let failures = shared.failures.lock().clone();
        return Err(SimError::Setup(format!("no listener could join: {failures:?}")));
    }
    Ok(())
}

/// Waits until every owed delivery arrived (true) or `deadline` passed (false).
async fn drain(ledger: &Ledger, deadline: Instant) -> bool {
    while !ledger.all_delivered() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
    true
}

/// `firehose-sim run`: flags → plan → run (or agents) → report → gates → exit code.
pub fn main(args: &RunArgs) -> u8 {
    if args.agent.is_some() {
        // An agent of `--agents` (or of a parent on another machine): protocol on stdout.
        return crate::commands::agents::child::main(args);
    }
    let plan = match Plan::from_args(args) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("firehose-sim: {e}");
            return exit::USAGE;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    // Never `println!`: a closed stdout (`| head -1`) must not stop the run (see `out!`).
    crate::out!("{plan}");
    crate::report::progress::set_enabled(!args.quiet);
    if plan.agents > 1 {
        return crate::commands::agents::main(&plan);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("firehose-sim: cannot start the runtime: {e}");
            return exit::FAILURE;
        }
    };
    let (out, thresholds) = (plan.out.clone(), plan.thresholds.clone());
    // SIGINT/SIGTERM: stop scheduling, drain briefly, write a partial report (exit 9).
    if let Err(e) = runtime.block_on(async { crate::engine::interrupt::listen(|_| {}) }) {
        eprintln!("firehose-sim: cannot watch for SIGINT/SIGTERM: {e}");
    }
    // A run that failed after listeners connected still writes what it measured.
    let (mut report, failed) = match runtime.block_on(run(plan)) {
        Ok(report) => (report, None),
        Err(crate::SimError::Partial { cause, report }) => (*report, Some(*cause)),
        Err(e) => {
            eprintln!("firehose-sim: {e}");
            return if crate::engine::interrupt::requested() { exit::INTERRUPTED } else { e.exit_code() };
        }
    };
    report.judge(&thresholds);
    crate::out_raw!("{}", crate::report::terminal::render(&report.model));
    match crate::report::files::write(&report, &out) {
        Ok(dir) => {
            crate::out!("\nreport          {}", dir.join("report.json").display());
            if let Some(why) = &report.model.partial {
                eprintln!("firehose-sim: partial report ({why}) written to {}", dir.display());
            }
        }
        Err(e) => {
            eprintln!("firehose-sim: cannot write the report under {}: {e}", out.display());
            return exit::FAILURE;
        }
    }
    if crate::engine::interrupt::requested() {
        return exit::INTERRUPTED;
    }
    if let Some(cause) = failed {
        eprintln!("firehose-sim: {cause}");
        return cause.exit_code();
    }
    report.exit_code()
}
