//! Raw flags become one validated `Plan`: every number checked once, here, with an
//! error that says what to change. Everything downstream trusts the plan.
//!
//! A plan is small per-workload plans over a shared traffic shape: [`TargetPlan`]
//! (what is driven and how it is reached), [`TrafficPlan`] (duration, warm-up, stages,
//! seed, lag, drain, in-flight cap, connect rate), [`BookmarksPlan`], [`ActionsPlan`],
//! [`PagesPlan`], [`ReadsPlan`], the gates, the report folder and the agents.
//!
//! Modules: `args` (the flags as typed), `scenario` (TOML files), `profile` (target
//! profiles), `layers` (flags over a file), `stages` and `staging` (rate curves and
//! stages), `lifecycle` and `ramp` (churn, storms, listener ramps), `source` (source
//! addresses), `seeded` (seeded choices), `target`, `traffic`, `bookmarks`, `actions`,
//! `pages`, `reads`.

pub mod actions;
pub mod args;
pub mod bookmarks;
pub mod layers;
pub mod lifecycle;
pub mod pages;
pub mod profile;
pub mod ramp;
pub mod reads;
pub mod scenario;
pub mod seeded;
pub mod source;
pub mod stages;
pub mod staging;
pub mod target;
pub mod traffic;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Serialize, Serializer};

pub use crate::plan::actions::ActionsPlan;
use crate::plan::args::RunArgs;
pub use crate::plan::bookmarks::BookmarksPlan;
use crate::plan::layers::Layers;
pub use crate::plan::pages::PagesPlan;
pub use crate::plan::reads::ReadsPlan;
use crate::plan::scenario::{Place, Scenario, ScenarioError};
use crate::plan::source::{SourceIps, SourceIpsError};
pub use crate::plan::target::{TargetPlan, TargetSpec, TlsOptions};
pub use crate::plan::traffic::TrafficPlan;
use crate::report::gate::{Threshold, ThresholdError};

/// File descriptors kept back for the runtime, the HTTP client, the database and logs.
const FD_RESERVE: u64 = 128;

/// The per-request bookkeeping is preallocated; this bounds it (about 40 bytes each).
const MAX_REQUESTS: u64 = 20_000_000;

/// A validated run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The scenario file the plan started from, if any (flags override its values).
    pub scenario: Option<PathBuf>,
    pub target: TargetPlan,
    pub traffic: TrafficPlan,
    pub bookmarks: BookmarksPlan,
    /// Likes, unlikes, deletions, chat messages, typing and the room/likes/user groups.
    pub actions: ActionsPlan,
    /// Page listeners and page readers.
    pub pages: PagesPlan,
    /// Reads and search.
    pub reads: ReadsPlan,
    /// Gates judged on the finished run besides the default ones (serialised as the
    /// expressions).
    pub thresholds: Vec<Threshold>,
    /// Where `<UTC timestamp>-<id>/` report folders are written.
    pub out: PathBuf,
    pub agents: AgentsPlan,
}

/// How the plan is split over simulator processes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentsPlan {
    /// Simulator processes the plan is split over (`--agents`); 1: this process alone.
    pub count: u32,
    /// In an agent process: which share of the parent's plan this plan is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<AgentSlot>,
    /// The run id every agent shares (set by the parent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// Agent `index` (from 0) of `count` (`--agent I/K`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AgentSlot {
    pub index: u32,
    pub count: u32,
}

impl AgentSlot {
    /// Parses `I/K` with `I < K`.
    pub fn parse(text: &str) -> Result<AgentSlot, PlanError> {
        let bad = || PlanError::Agents(format!("--agent {text:?}: expected I/K with 0 <= I < K, e.g. 1/3"));
        let (i, k) = text.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (i.trim().parse().map_err(|_| bad())?, k.trim().parse().map_err(|_| bad())?);
        if index >= count {
            return Err(bad());
        }
        Ok(AgentSlot { index, count })
    }
}

/// The part of `0..total` that share `index` of `count` gets: contiguous, sizes differing
/// by at most one, the larger shares first.
pub fn share_range(total: u64, index: u32, count: u32) -> std::ops::Range<u64> {
    let (i, k) = (u64::from(index), u64::from(count.max(1)));
    let (base, extra) = (total / k, total % k);
    let start = i * base + i.min(extra);
    start..start + base + u64::from(i < extra)
}

/// Share `index` of `count` of `total` (see [`share_range`]).
pub fn share_of(total: u32, index: u32, count: u32) -> u32 {
    let r = share_range(u64::from(total), index, count);
    u32::try_from(r.end - r.start).unwrap_or(u32::MAX)
}

/// Where a plan value came from: a flag (or its default) or a scenario file's key.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// The flag's name without dashes, e.g. `connect-rate`.
    Flag(&'static str),
    /// Boxed: a place is large, and every `PlanError` carries an origin.
    File(Box<Place>),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "--{flag}"),
            Origin::File(place) => place.fmt(f),
        }
    }
}

/// Why flags and scenario file do not make a runnable plan.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error(transparent)]
    Threshold(#[from] ThresholdError),
    #[error(transparent)]
    Profile(#[from] crate::plan::profile::ProfileError),
    #[error(
        "{origin} is {value} but profile {profile:?} cannot create private items (its [create] body has no \
         {{{{private}}}} or {{{{public}}}}): use --private-fraction 0"
    )]
    ProfileCannotBePrivate { origin: Origin, value: f64, profile: String },
    #[error("{place}: {source}")]
    ThresholdInFile { place: Box<Place>, source: ThresholdError },
    #[error("{origin} {value:?}: {reason} (use e.g. \"10s\", \"500ms\", \"2m\")")]
    Duration { origin: Origin, value: String, reason: String },
    #[error("{origin} must be a positive number per second, got {value}")]
    Rate { origin: Origin, value: f64 },
    #[error("{0} must be longer than zero")]
    ZeroDuration(Origin),
    /// A stage, churn or storm value that cannot run: the flag or file place, and why.
    #[error("{origin} {reason}")]
    Invalid { origin: Origin, reason: String },
    #[error(
        "{warmup_origin} ({warmup:?}) must be shorter than {duration_origin} ({duration:?}), or nothing is measured"
    )]
    WarmupTooLong { warmup: Duration, duration: Duration, warmup_origin: Origin, duration_origin: Origin },
    #[error("{0} must be between 0 and 1, got {1}")]
    PrivateFraction(Origin, f64),
    #[error("{0} must be at least 1")]
    MaxInFlight(Origin),
    #[error("--rate {rate} for {duration:?} makes {requests} requests; at most {max} fit in one run")]
    TooManyRequests { rate: f64, duration: Duration, requests: u64, max: u64 },
    #[error("{origin} {error}")]
    Target { origin: Origin, error: crate::plan::target::TargetError },
    #[error(transparent)]
    SourceIps(#[from] SourceIpsError),
    #[error("{0}")]
    Agents(String),
    #[error(
        "{listeners} listeners need about {needed} file descriptors ({per_listener} per listener{why}, \
         {in_flight} for in-flight requests, {reserve} reserved) but this process may open {limit} \
         (soft RLIMIT_NOFILE); at most {fit} listeners fit in one process: {advice}"
    )]
    FdBudget {
        /// How to split the plan so that it fits.
        advice: String,
        listeners: u64,
        needed: u64,
        per_listener: u64,
        why: &'static str,
        in_flight: u64,
        reserve: u64,
        limit: u64,
        fit: u64,
    },
}

/// Every raw value of a run, layered, before validation.
struct Raw {
    target: (Vec<String>, Origin),
    listeners: u32,
    tag_listeners: u32,
    connect_rate: (f64, Origin),
    rate: (f64, Origin),
    private_fraction: (f64, Origin),
    duration: (String, Origin),
    warmup: (String, Origin),
    max_lag: (String, Origin),
    drain_timeout: (String, Origin),
    seed: u64,
    max_in_flight: (u32, Origin),
    seed_bookmarks: u32,
}

impl Raw {
    fn layer(args: &RunArgs, scenario: Option<&Scenario>) -> Raw {
        let l = Layers { args, scenario };
        let f = scenario.map(|s| &s.file);
        let listeners = f.map(|f| &f.listeners);
        let create = f.and_then(|f| f.actions.create_bookmark.as_ref()).map(|c| c.get_ref());
        let target = match (scenario, f.and_then(|f| f.target.as_ref())) {
            (Some(s), Some(t)) if !args.given("target") => {
                (t.get_ref().0.clone(), Origin::File(Box::new(s.place("target", t.span()))))
            }
            _ => (args.target.clone(), Origin::Flag("target")),
        };
        Raw {
            target,
            listeners: l
                .pick(
                    "listeners",
                    "listeners",
                    &args.listeners,
                    listeners.and_then(|g| g.firehose.as_ref()).map(|v| ("listeners.firehose", v)),
                )
                .0,
            tag_listeners: l
                .pick(
                    "tag_listeners",
                    "tag-listeners",
                    &args.tag_listeners,
                    listeners.and_then(|g| g.tag.as_ref()).map(|v| ("listeners.tag", v)),
                )
                .0,
            connect_rate: l.pick(
                "connect_rate",
                "connect-rate",
                &args.connect_rate,
                listeners.and_then(|g| g.connect_rate.as_ref()).map(|v| ("listeners.connect_rate", v)),
            ),
            rate: l.pick(
                "rate",
                "rate",
                &args.rate,
                create.and_then(|c| c.rate.as_ref()).map(|v| ("actions.create_bookmark.rate", v)),
            ),
            private_fraction: l.pick(
                "private_fraction",
                "private-fraction",
                &args.private_fraction,
                create
                    .and_then(|c| c.private_fraction.as_ref())
                    .map(|v| ("actions.create_bookmark.private_fraction", v)),
            ),
            duration: l.pick(
                "duration",
                "duration",
                &args.duration,
                f.and_then(|f| f.duration.as_ref()).map(|v| ("duration", v)),
            ),
            warmup: l.pick("warmup", "warmup", &args.warmup, f.and_then(|f| f.warmup.as_ref()).map(|v| ("warmup", v))),
            max_lag: l.pick(
                "max_lag",
                "max-lag",
                &args.max_lag,
                f.and_then(|f| f.max_lag.as_ref()).map(|v| ("max_lag", v)),
            ),
            drain_timeout: l.pick(
                "drain_timeout",
                "drain-timeout",
                &args.drain_timeout,
                f.and_then(|f| f.drain_timeout.as_ref()).map(|v| ("drain_timeout", v)),
            ),
            seed: l.pick("seed", "seed", &args.seed, f.and_then(|f| f.seed.as_ref()).map(|v| ("seed", v))).0,
            max_in_flight: l.pick(
                "max_in_flight",
                "max-in-flight",
                &args.max_in_flight,
                f.and_then(|f| f.max_in_flight.as_ref()).map(|v| ("max_in_flight", v)),
            ),
            seed_bookmarks: l
                .pick(
                    "seed_bookmarks",
                    "seed-bookmarks",
                    &args.seed_bookmarks,
                    f.and_then(|f| f.seed_bookmarks.as_ref()).map(|v| ("seed_bookmarks", v)),
                )
                .0,
        }
    }
}

/// `--threshold` flags when given, else the scenario's `thresholds`.
fn thresholds(args: &RunArgs, scenario: Option<&Scenario>) -> Result<Vec<Threshold>, PlanError> {
    let from_file = scenario.and_then(|s| s.file.thresholds.as_ref().map(|t| (s, t)));
    match from_file {
        Some((scenario, list)) if !args.given("thresholds") => list
            .iter()
            .map(|t| {
                Threshold::parse(t.get_ref()).map_err(|source| PlanError::ThresholdInFile {
                    place: Box::new(scenario.place("thresholds", t.span())),
                    source,
                })
            })
            .collect(),
        _ => Ok(args.thresholds.iter().map(|t| Threshold::parse(t)).collect::<Result<_, _>>()?),
    }
}

impl Plan {
    /// Validates `args` (over their scenario file, if any) against this process's
    /// open-file limit.
    pub fn from_args(args: &RunArgs) -> Result<Plan, PlanError> {
        Self::from_args_with_fd_limit(args, open_files_limit())
    }

    /// As [`Plan::from_args`], with the open-file limit given (`None`: unlimited).
    pub fn from_args_with_fd_limit(args: &RunArgs, fd_limit: Option<u64>) -> Result<Plan, PlanError> {
        let scenario = match &args.scenario {
            Some(name) => Some(Scenario::load(&Scenario::find(name)?)?),
            None => None,
        };
        Self::from_layers(args, scenario.as_ref(), fd_limit)
    }

    /// Validates `args` over an already loaded `scenario`.
    pub fn from_layers(args: &RunArgs, scenario: Option<&Scenario>, fd_limit: Option<u64>) -> Result<Plan, PlanError> {
        let mut raw = Raw::layer(args, scenario);
        let mut duration = duration_value(&raw.duration)?;
        let staging = crate::plan::staging::stages(args, scenario)?;
        if let Some(staging) = &staging {
            // Stages define the traffic phase; a duration given too must agree.
            let given = args.given("duration") || matches!(raw.duration.1, Origin::File(_));
            if given && duration != staging.duration() {
                return Err(PlanError::Invalid {
                    origin: raw.duration.1,
                    reason: format!(
                        "({duration:?}) disagrees with the stages, which last {:?}; drop it or make them agree",
                        staging.duration()
                    ),
                });
            }
            duration = staging.duration();
            raw.duration.1 = staging.origin.clone();
        }
        let warmup = duration_value(&raw.warmup)?;
        let max_lag = duration_value(&raw.max_lag)?;
        let drain_timeout = duration_value(&raw.drain_timeout)?;
        positive_rate(&raw.rate)?;
        positive_rate(&raw.connect_rate)?;
        if duration.is_zero() {
            return Err(PlanError::ZeroDuration(raw.duration.1));
        }
        if warmup >= duration {
            return Err(PlanError::WarmupTooLong {
                warmup,
                duration,
                warmup_origin: raw.warmup.1,
                duration_origin: raw.duration.1,
            });
        }
        let (private_fraction, rate) = (raw.private_fraction.0, raw.rate.0);
        if !(0.0..=1.0).contains(&private_fraction) {
            return Err(PlanError::PrivateFraction(raw.private_fraction.1, private_fraction));
        }
        if raw.max_in_flight.0 == 0 {
            return Err(PlanError::MaxInFlight(raw.max_in_flight.1));
        }
        let listener_ramp = staging.as_ref().and_then(|s| s.listeners.clone());
        let (stages, start_scale) = staging.map_or((Vec::new(), 1.0), |s| (s.stages, s.start_scale));
        let traffic = TrafficPlan {
            duration,
            warmup,
            seed: raw.seed,
            max_lag,
            drain_timeout,
            max_in_flight: raw.max_in_flight.0,
            connect_rate_per_s: raw.connect_rate.0,
            stages,
            start_scale,
        };
        let requests = traffic.curve(rate).count();
        if requests > MAX_REQUESTS {
            return Err(PlanError::TooManyRequests { rate, duration, requests, max: MAX_REQUESTS });
        }
        let spec = TargetSpec::parse(&raw.target.0)
            .map_err(|error| PlanError::Target { origin: raw.target.1.clone(), error })?;
        let tls = TlsOptions { ca_cert: args.ca_cert.clone(), insecure: args.insecure };
        if let Some(ca) = &tls.ca_cert {
            crate::plan::target::load_certs(ca)
                .map_err(|reason| PlanError::Invalid { origin: Origin::Flag("ca-cert"), reason })?;
        }
        let thresholds = thresholds(args, scenario)?;
        let profile = crate::plan::profile::Profile::for_run(args.profile.as_deref(), scenario)?;
        if private_fraction > 0.0 && !profile.create.can_be_private {
            let (origin, profile) = (raw.private_fraction.1, profile.name);
            return Err(PlanError::ProfileCannotBePrivate { origin, value: private_fraction, profile });
        }
        let source_ips = match &args.source_ips {
            Some(value) => SourceIps::parse(value)?,
            None => SourceIps::default(),
        };
        if args.agents == 0 {
            return Err(PlanError::Agents("--agents must be at least 1".into()));
        }
        let slot = args.agent.as_deref().map(AgentSlot::parse).transpose()?;
        if slot.is_some() && args.agents > 1 {
            return Err(PlanError::Agents("--agent I/K runs one share: it cannot also split with --agents".into()));
        }
        let peak_scale = traffic.peak_scale();
        let bookmarks = BookmarksPlan {
            listeners: raw.listeners,
            tag_listeners: raw.tag_listeners,
            rate_per_s: rate,
            private_fraction,
            seed_bookmarks: raw.seed_bookmarks,
            listener_ramp,
            presence_churn: crate::plan::staging::churn(args, scenario)?,
            reconnect_storm: crate::plan::staging::storm(args, scenario, duration)?,
        };
        let mut plan = Plan {
            scenario: scenario.map(|s| s.path.clone()),
            target: TargetPlan { spec, profile, tls, source_ips },
            bookmarks,
            actions: ActionsPlan::from_layers(args, scenario, peak_scale)?,
            pages: PagesPlan::from_layers(args, scenario)?,
            reads: ReadsPlan::from_layers(args, scenario)?,
            traffic,
            thresholds,
            out: args.out.clone(),
            agents: AgentsPlan { count: args.agents, slot: None, run_id: args.run_id.clone() },
        };
        for (active, what) in [
            (
                plan.pages.is_active(),
                "page listeners and page readers speak firehose's `page:<path>` topics and accounts",
            ),
            (
                plan.actions.is_active(),
                "likes, deletions, chat messages, typing and the room/likes/user listeners speak firehose's own API",
            ),
            (plan.reads.is_active(), "reads and search speak firehose's own API"),
        ] {
            if active && plan.target.profile.name != "firehose" {
                let reason = format!("{:?}: {what}; run them with the firehose profile", plan.target.profile.name);
                return Err(PlanError::Invalid { origin: Origin::Flag("profile"), reason });
            }
        }
        if let Some(slot) = slot {
            plan = plan.share(slot);
        }
        plan.check_fd_budget(fd_limit)?;
        Ok(plan)
    }

    /// Agent `slot`'s share of this plan. Bookmark creation keeps the whole run's
    /// schedule and seed (every agent derives every event; each fires the events whose
    /// index is its own, `i % K == I`, and accounts all of them at its listeners); every
    /// group's listeners are split as evenly as possible; the other workloads' rates are
    /// divided by the agent count (each agent makes its own rooms, targets and pages,
    /// so its listeners hear exactly its own actions); each agent takes its own slice of
    /// source addresses (127.0.0.(2+i) when none were given and the target is on
    /// loopback). Fields added to the plan that are counts or rates belong here too.
    pub fn share(&self, slot: AgentSlot) -> Plan {
        let (i, k) = (slot.index, slot.count);
        let source_ips = if self.target.source_ips.is_empty() && !self.target.is_loopback() {
            SourceIps::default()
        } else {
            self.target.source_ips.share(i, k)
        };
        let b = &self.bookmarks;
        Plan {
            target: TargetPlan { source_ips, ..self.target.clone() },
            traffic: TrafficPlan {
                connect_rate_per_s: self.traffic.connect_rate_per_s / f64::from(k),
                ..self.traffic.clone()
            },
            bookmarks: BookmarksPlan {
                listeners: share_of(b.listeners, i, k),
                tag_listeners: share_of(b.tag_listeners, i, k),
                seed_bookmarks: share_of(b.seed_bookmarks, i, k),
                presence_churn: b
                    .presence_churn
                    .clone()
                    .map(|c| crate::plan::lifecycle::ChurnPlan { rate_per_s: c.rate_per_s / f64::from(k), ..c }),
                ..b.clone()
            },
            actions: self.actions.share(i, k),
            pages: self.pages.share(i, k),
            reads: self.reads.share(k),
            agents: AgentsPlan { count: 1, slot: Some(slot), run_id: self.agents.run_id.clone() },
            ..self.clone()
        }
    }

    /// The seed of choices that are this process's own (an agent's rooms, readers and
    /// reads differ from another agent's); the plan's seed for a single process.
    pub fn own_seed(&self) -> u64 {
        self.traffic.seed.wrapping_add(self.agents.slot.map_or(0, |s| u64::from(s.index)))
    }

    /// Every socket the plan holds open at once in one process, all listener groups.
    /// A group added to the plan adds its sockets here, so the fd budget sees it.
    pub fn total_sockets(&self) -> u64 {
        (self.bookmarks.total_listeners() + self.actions.sockets())
            .saturating_add(self.pages.sockets(self.traffic.peak_scale()))
    }

    /// Refuses, before anything connects, a plan whose sockets do not fit this
    /// process's open-file limit, saying how many fit and how to split the plan.
    fn check_fd_budget(&self, limit: Option<u64>) -> Result<(), PlanError> {
        let Some(limit) = limit else { return Ok(()) };
        let sockets = self.total_sockets();
        let embedded = self.target.is_embedded();
        let in_flight = u64::from(self.traffic.max_in_flight);
        // With agents, each child holds its share (client ends only); an embedded server
        // stays in this process and holds the server end of every socket.
        let (per_process, per_listener, why) = match (self.agents.count > 1, embedded) {
            (true, true) => (sockets, 1, ": the in-process server's end of every agent's socket"),
            (true, false) => (sockets.div_ceil(u64::from(self.agents.count)), 1, ", in each agent"),
            (false, true) => (sockets, 2, ": client and in-process server ends"),
            (false, false) => (sockets, 1, ""),
        };
        let needed = per_process.saturating_mul(per_listener).saturating_add(in_flight * per_listener + FD_RESERVE);
        if needed <= limit {
            return Ok(());
        }
        let fit = limit.saturating_sub(in_flight * per_listener + FD_RESERVE) / per_listener;
        let fit_external = limit.saturating_sub(in_flight + FD_RESERVE).max(1);
        let agents = sockets.div_ceil(fit_external).max(2);
        let advice = if embedded {
            format!(
                "start the server separately and run `--target URL --agents {agents}` (each agent a process with its \
                 own fd budget; the embedded server holds one end of every socket in this process), or lower \
                 --listeners/--tag-listeners"
            )
        } else {
            format!(
                "run `--agents {agents}` (each agent a process with its own fd budget, at most {fit_external} \
                 listeners each) or lower --listeners/--tag-listeners"
            )
        };
        Err(PlanError::FdBudget {
            advice,
            listeners: per_process,
            needed,
            per_listener,
            why,
            in_flight: in_flight * per_listener,
            reserve: FD_RESERVE,
            limit,
            fit,
        })
    }

    /// Bookmark requests of the whole run (every agent's), warm-up included.
    pub fn requests(&self) -> u64 {
        self.traffic.curve(self.bookmarks.rate_per_s).count()
    }

    /// Bookmark requests whose intended start falls inside the warm-up.
    pub fn warmup_requests(&self) -> u64 {
        self.traffic.curve(self.bookmarks.rate_per_s).count_before(self.traffic.warmup)
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (t, b) = (&self.traffic, &self.bookmarks);
        writeln!(f, "plan")?;
        if let Some(scenario) = &self.scenario {
            writeln!(f, "  scenario          {} (flags given override it)", scenario.display())?;
        }
        writeln!(f, "  target            {}", self.target.describe())?;
        for (k, line) in self.target.profile.describe().iter().enumerate() {
            writeln!(f, "  {:<18}{line}", if k == 0 { "profile" } else { "" })?;
        }
        writeln!(
            f,
            "  traffic           {:?} (warm-up {:?}), seed {}, max lag {:?}, max in flight {}, drain timeout {:?}",
            t.duration, t.warmup, t.seed, t.max_lag, t.max_in_flight, t.drain_timeout
        )?;
        if !t.stages.is_empty() {
            let list: Vec<String> = t.stages.iter().map(|s| format!("{:?}→×{}", s.duration, s.scale)).collect();
            writeln!(f, "  stages            from ×{}: {}", t.start_scale, list.join(", "))?;
        }
        writeln!(
            f,
            "  listeners         {} firehose + {} tag, opened at {}/s",
            b.listeners, b.tag_listeners, t.connect_rate_per_s
        )?;
        writeln!(
            f,
            "  bookmarks         {}/s = {} requests, {:.1}% private, {} seed bookmarks",
            b.rate_per_s,
            self.requests(),
            b.private_fraction * 100.0,
            b.seed_bookmarks
        )?;
        if let Some(r) = &b.listener_ramp {
            let list: Vec<String> = r.stages.iter().map(|(d, x)| format!("{d:?}→{:.0}%", x * 100.0)).collect();
            writeln!(
                f,
                "  listener ramp     from {:.0}% of each group: {} (the rest join and leave by seq)",
                r.start * 100.0,
                list.join(", ")
            )?;
        }
        if let Some(c) = &b.presence_churn {
            let scheduled = t.curve(c.rate_per_s).count();
            writeln!(
                f,
                "  presence churn    {}/s (= {scheduled}) leave + rejoin with since after {:?}",
                c.rate_per_s, c.absence
            )?;
        }
        if let Some(s) = &b.reconnect_storm {
            let at: Vec<String> = s.at.iter().map(|d| format!("{d:?}")).collect();
            writeln!(
                f,
                "  reconnect storms  at {}: {:.0}% of listener sockets dropped, phoenix.js backoff{}",
                at.join(", "),
                s.fraction * 100.0,
                if s.jitter { " with equal jitter" } else { " (no jitter)" }
            )?;
        }
        write!(f, "{}", self.actions)?;
        if self.pages.listeners > 0 {
            writeln!(
                f,
                "  page listeners    {} on {} hot page:<path> topics (presence_state/presence_diff)",
                self.pages.listeners,
                crate::plan::pages::PATHS
            )?;
        }
        if let Some(r) = &self.pages.readers {
            writeln!(
                f,
                "  page readers      {}/s (= {}) on Zipf-hot pages, staying {:?} (peak {} at once)",
                r.rate_per_s,
                t.curve(r.rate_per_s).count(),
                r.dwell,
                self.pages.peak_readers(t.peak_scale())
            )?;
        }
        write!(f, "{}", self.reads)?;
        let defaults: Vec<&str> = crate::report::gate::default_gates(&self.thresholds).collect();
        writeln!(f, "  default gates     {}", defaults.join(", "))?;
        for (i, th) in self.thresholds.iter().enumerate() {
            writeln!(f, "  {:<18}{th}", if i == 0 { "thresholds" } else { "" })?;
        }
        if !self.target.source_ips.is_empty() {
            writeln!(f, "  source addresses  {}", self.target.source_ips)?;
        }
        if self.agents.count > 1 {
            writeln!(
                f,
                "  agents            {} processes: listeners split, every agent accounts every bookmark event",
                self.agents.count
            )?;
        }
        if let Some(slot) = self.agents.slot {
            writeln!(f, "  agent             {} of {} (this plan is its share)", slot.index, slot.count)?;
        }
        write!(f, "  reports           {}", self.out.display())
    }
}

fn positive_rate((value, origin): &(f64, Origin)) -> Result<(), PlanError> {
    if value.is_finite() && *value > 0.0 {
        Ok(())
    } else {
        Err(PlanError::Rate { origin: origin.clone(), value: *value })
    }
}

fn duration_value((value, origin): &(String, Origin)) -> Result<Duration, PlanError> {
    parse_duration(value).map_err(|reason| PlanError::Duration { origin: origin.clone(), value: value.clone(), reason })
}

/// The longest duration any flag or scenario key may give: a year. Far past any run,
/// and short enough that sums over stages, storms and schedules cannot overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parses "10s", "500ms", "2m", "1.5s", "250us", "1h"; a bare number is seconds. At
/// most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| "not a number followed by a unit".to_owned())?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("unknown unit {other:?}")),
    };
    let d = Duration::try_from_secs_f64(number * scale).map_err(|e| e.to_string())?;
    if d > MAX_DURATION {
        return Err(format!("longer than a year (at most {}h)", MAX_DURATION.as_secs() / 3600));
    }
    Ok(d)
}

/// The soft limit on open files (`None`: unlimited or unreadable, then no budget is
/// enforced); read the way the server reads it for its own connection cap.
pub use firehose_app::connections::open_files_limit;

/// Serializes a duration as seconds.
pub(crate) fn secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Serializes a duration as milliseconds.
pub(crate) fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(flags: &[&str]) -> RunArgs {
        RunArgs::try_parse_from(std::iter::once("run").chain(flags.iter().copied())).unwrap()
    }

    fn plan(flags: &[&str]) -> Result<Plan, PlanError> {
        Plan::from_args_with_fd_limit(&args(flags), Some(20_000))
    }

    /// Rates too high to hold once overflowed the socket count (a panic with overflow
    /// checks, a wrapped small number that passed the descriptor check without them);
    /// now they saturate and the descriptor check refuses them, embedded or not.
    #[test]
    fn absurd_presence_and_reader_rates_are_refused_not_overflowed() {
        for flags in [
            &["--room-presence-rate", "1e12"][..],
            &["--room-presence-rate", "1e300", "--presence-hold", "1000h"],
            &["--page-reader-rate", "1e15", "--page-dwell", "1000h"],
            &["--page-reader-rate", "1e300", "--page-dwell", "1000h", "--target", "http://127.0.0.1:9"],
        ] {
            let err = plan(flags).err().unwrap_or_else(|| panic!("{flags:?} planned"));
            assert!(err.to_string().contains("file descriptors"), "{flags:?}: {err}");
        }
    }

    #[test]
    fn defaults_make_a_valid_embedded_plan() {
        let p = plan(&[]).unwrap();
        assert_eq!(p.target.spec, TargetSpec::Embedded);
        assert_eq!((p.bookmarks.listeners, p.bookmarks.tag_listeners), (100, 0));
        assert_eq!(p.traffic.duration, Duration::from_secs(10));
        assert_eq!(p.traffic.warmup, Duration::from_secs(2));
        assert_eq!(p.traffic.max_lag, Duration::from_millis(50));
        assert_eq!(p.requests(), 200);
        assert_eq!(p.warmup_requests(), 40);
        assert!(!p.actions.is_active() && !p.pages.is_active() && !p.reads.is_active());
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["target"]["spec"]["kind"], "embedded");
        assert_eq!(json["traffic"]["duration_s"], 10.0);
        assert_eq!(json["traffic"]["max_lag_ms"], 50.0);
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").unwrap_err().contains("unknown unit"));
        assert_eq!(parse_duration("8784h"), Ok(MAX_DURATION));
        assert!(parse_duration("8785h").unwrap_err().contains("longer than a year"));
        // Two stages of nearly u64::MAX seconds once overflowed the sum of the stages.
        let err = plan(&["--stage", "4000000000000000h:1", "--stage", "4000000000000000h:1"]).unwrap_err();
        assert!(err.to_string().contains("longer than a year"), "{err}");
        let err = plan(&["--duration", "soon"]).unwrap_err();
        assert!(err.to_string().starts_with("--duration \"soon\""), "{err}");
    }

    #[test]
    fn rates_must_be_positive() {
        assert_eq!(plan(&["--rate", "0"]), Err(PlanError::Rate { origin: Origin::Flag("rate"), value: 0.0 }));
        assert_eq!(plan(&["--rate=-3"]), Err(PlanError::Rate { origin: Origin::Flag("rate"), value: -3.0 }));
        assert!(matches!(plan(&["--rate", "NaN"]), Err(PlanError::Rate { .. })));
        let err = plan(&["--connect-rate", "0"]).unwrap_err();
        assert_eq!(err.to_string(), "--connect-rate must be a positive number per second, got 0");
    }

    #[test]
    fn warmup_must_leave_something_to_measure() {
        assert!(matches!(plan(&["--duration", "2s", "--warmup", "2s"]), Err(PlanError::WarmupTooLong { .. })));
        assert_eq!(plan(&["--duration", "0s"]), Err(PlanError::ZeroDuration(Origin::Flag("duration"))));
        assert!(plan(&["--duration", "3s", "--warmup", "500ms"]).is_ok());
    }

    #[test]
    fn private_fraction_and_in_flight_are_bounded() {
        assert_eq!(
            plan(&["--private-fraction", "1.5"]),
            Err(PlanError::PrivateFraction(Origin::Flag("private-fraction"), 1.5))
        );
        assert_eq!(plan(&["--max-in-flight", "0"]), Err(PlanError::MaxInFlight(Origin::Flag("max-in-flight"))));
        assert!(matches!(plan(&["--rate", "1000000", "--duration", "1h"]), Err(PlanError::TooManyRequests { .. })));
    }

    #[test]
    fn targets_are_http_or_https_base_urls() {
        let p = plan(&["--target", "http://127.0.0.1:4000/"]).unwrap();
        assert_eq!(p.target.spec, TargetSpec::External { urls: vec!["http://127.0.0.1:4000".into()] });
        let p = plan(&["--target", "http://localhost"]).unwrap();
        assert_eq!(p.target.spec, TargetSpec::External { urls: vec!["http://localhost:80".into()] });
        let p = plan(&["--target", "https://x:1", "--insecure"]).unwrap();
        assert_eq!(p.target.spec, TargetSpec::External { urls: vec!["https://x:1".into()] });
        assert!(p.target.tls.insecure && p.target.describe().contains("--insecure"));
        let p = plan(&["--target", "https://localhost"]).unwrap();
        assert_eq!(p.target.spec, TargetSpec::External { urls: vec!["https://localhost:443".into()] });
        assert!(matches!(plan(&["--target", "ws://x:1"]), Err(PlanError::Target { .. })));
        assert!(matches!(plan(&["--ca-cert", "/nonexistent/ca.pem"]), Err(PlanError::Invalid { .. })));
        assert!(matches!(plan(&["--target", "127.0.0.1:4000"]), Err(PlanError::Target { .. })));
        assert!(matches!(plan(&["--target", "http://h:1/app"]), Err(PlanError::Target { .. })));
    }

    #[test]
    fn target_repeats_for_several_and_embedded_stands_alone() {
        let p = plan(&["--target", "http://127.0.0.1:4000", "--target", "http://127.0.0.1:4001/"]).unwrap();
        let urls = vec!["http://127.0.0.1:4000".to_owned(), "http://127.0.0.1:4001".to_owned()];
        assert_eq!(p.target.spec, TargetSpec::External { urls });
        assert_eq!(p.target.describe(), "http://127.0.0.1:4000, http://127.0.0.1:4001");
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["target"]["spec"]["url"], "http://127.0.0.1:4000");
        assert_eq!(json["target"]["spec"]["urls"][1], "http://127.0.0.1:4001");
        // The same URL twice is two entries (one server, listeners spread over both).
        let twice = plan(&["--target", "http://127.0.0.1:4000", "--target", "http://127.0.0.1:4000"]).unwrap();
        assert_eq!(twice.target.spec.count(), 2);
        assert_eq!(plan(&["--target", "embedded"]).unwrap().target.spec, TargetSpec::Embedded);
        let err = plan(&["--target", "embedded", "--target", "http://127.0.0.1:4000"]).unwrap_err();
        assert!(matches!(err, PlanError::Target { error: crate::plan::target::TargetError::Mixed, .. }));
        let text = err.to_string();
        assert!(text.starts_with("--target `embedded` (the in-process app) is a target of its own"), "{text}");
        assert!(matches!(
            plan(&["--target", "http://127.0.0.1:4000", "--target", "ws://x:1"]),
            Err(PlanError::Target { .. })
        ));
        // Loopback sources for agents only when every target is on loopback.
        let remote = plan(&["--target", "http://127.0.0.1:4000", "--target", "http://10.1.2.3:4000"]).unwrap();
        assert!(!remote.target.is_loopback());
    }

    #[test]
    fn listeners_beyond_the_fd_budget_say_how_many_fit() {
        let external = args(&["--target", "http://127.0.0.1:4000", "--listeners", "19000", "--tag-listeners", "1000"]);
        let err = Plan::from_args_with_fd_limit(&external, Some(20_000)).unwrap_err();
        // 20,000 - 256 in flight - 128 reserved.
        assert!(matches!(err, PlanError::FdBudget { fit: 19_616, needed: 20_384, .. }), "{err:?}");
        assert!(err.to_string().contains("at most 19616 listeners fit"), "{err}");

        // Embedded runs hold both ends of every socket.
        let embedded = args(&["--listeners", "10000"]);
        let err = Plan::from_args_with_fd_limit(&embedded, Some(20_000)).unwrap_err();
        assert!(matches!(err, PlanError::FdBudget { fit: 9_680, per_listener: 2, .. }), "{err:?}");
        assert!(Plan::from_args_with_fd_limit(&embedded, None).is_ok());
    }

    #[test]
    fn the_fd_budget_says_how_to_split_the_plan() {
        let external = args(&["--target", "http://127.0.0.1:4000", "--listeners", "50000"]);
        let err = Plan::from_args_with_fd_limit(&external, Some(20_000)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("at most 19616 listeners fit in one process"), "{text}");
        assert!(text.contains("run `--agents 3`"), "{text}");
        // Split three ways, each agent holds 16,667: it fits.
        let split = args(&["--target", "http://127.0.0.1:4000", "--listeners", "50000", "--agents", "3"]);
        let plan = Plan::from_args_with_fd_limit(&split, Some(20_000)).unwrap();
        assert_eq!(plan.total_sockets(), 50_000);
        // An embedded server holds one end of every agent's socket in the parent.
        let embedded = args(&["--listeners", "30000", "--agents", "2"]);
        let err = Plan::from_args_with_fd_limit(&embedded, Some(20_000)).unwrap_err().to_string();
        assert!(err.contains("--target URL --agents 2"), "{err}");
    }

    #[test]
    fn an_agent_takes_its_share_of_every_group_and_rate() {
        let flags = ["--listeners", "101", "--tag-listeners", "10", "--rate", "30", "--seed", "7"];
        let shares: Vec<Plan> =
            (0..3).map(|i| plan(&[&flags[..], &["--agent", &format!("{i}/3")]].concat()).unwrap()).collect();
        assert_eq!(shares.iter().map(|p| p.bookmarks.listeners).collect::<Vec<_>>(), [34, 34, 33]);
        assert_eq!(shares.iter().map(|p| p.bookmarks.tag_listeners).sum::<u32>(), 10);
        // Bookmark creation keeps the whole run's schedule and seed in every agent (each
        // fires its own share of the events and accounts all of them).
        assert!(shares.iter().all(|p| p.bookmarks.rate_per_s == 30.0 && p.agents.count == 1));
        assert!(shares.iter().all(|p| p.requests() == 300 && p.traffic.seed == 7));
        assert_eq!(shares.iter().map(|p| p.own_seed()).collect::<Vec<_>>(), [7, 8, 9]);
        assert_eq!(shares[2].target.source_ips.to_string(), "127.0.0.4", "default sources: 127.0.0.(2+i)");
        assert_eq!(shares[1].agents.slot, Some(AgentSlot { index: 1, count: 3 }));
        let remote = plan(&["--target", "http://10.1.2.3:4000", "--agent", "1/2"]).unwrap();
        assert!(remote.target.source_ips.is_empty(), "no loopback sources towards a remote server");
        assert!(matches!(plan(&["--agent", "3/3"]), Err(PlanError::Agents(_))));
        assert!(matches!(plan(&["--agents", "0"]), Err(PlanError::Agents(_))));
        assert!(matches!(plan(&["--source-ips", "192.168.1.1"]), Err(PlanError::SourceIps(_))));
    }
}
