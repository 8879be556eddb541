//! Raw flags become one validated `Plan`: every number checked once, here, with an
//! error that says what to change. Everything downstream trusts the plan.

pub mod actions;
pub mod args;
pub mod pages;
pub mod profile;
pub mod scenario;
pub mod source;
pub mod stages;
pub mod staging;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Serialize, Serializer};
use toml::Spanned;

use crate::plan::args::RunArgs;
use crate::plan::scenario::{Place, Scenario, ScenarioError};
use crate::plan::source::{SourceIps, SourceIpsError};
use crate::plan::stages::{RateCurve, Stage};
use crate::report::gate::{Threshold, ThresholdError};
use crate::workloads::bookmarks::lifecycle::{ChurnPlan, StormPlan};

/// File descriptors kept back for the runtime, the HTTP client, the database and logs.
const FD_RESERVE: u64 = 128;

/// The per-request bookkeeping is preallocated; this bounds it (about 40 bytes each).
const MAX_REQUESTS: u64 = 20_000_000;

/// What the simulator drives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TargetSpec {
    /// The app booted in-process on 127.0.0.1:0 over SQLite in a temporary directory.
    Embedded,
    /// A running server; `url` is `http://host:port` without a trailing slash.
    External { url: String },
}

/// A validated run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The scenario file the plan started from, if any (flags override its values).
    pub scenario: Option<PathBuf>,
    pub target: TargetSpec,
    /// How `run` maps onto the target app (`--profile`, or the scenario's `profile`);
    /// the built-in firehose profile by default.
    pub profile: crate::plan::profile::Profile,
    /// Listeners on `bookmarks:firehose`.
    pub listeners: u32,
    /// Listeners on `bookmarks:tag:<tag>`.
    pub tag_listeners: u32,
    pub connect_rate_per_s: f64,
    /// Bookmarks created per second.
    pub rate_per_s: f64,
    #[serde(rename = "duration_s", serialize_with = "secs")]
    pub duration: Duration,
    #[serde(rename = "warmup_s", serialize_with = "secs")]
    pub warmup: Duration,
    pub seed: u64,
    #[serde(rename = "max_lag_ms", serialize_with = "millis")]
    pub max_lag: Duration,
    pub private_fraction: f64,
    pub out: PathBuf,
    pub seed_bookmarks: u32,
    #[serde(rename = "drain_timeout_s", serialize_with = "secs")]
    pub drain_timeout: Duration,
    pub max_in_flight: u32,
    /// Gates judged on the finished run (serialised as the expressions).
    pub thresholds: Vec<Threshold>,
    /// Source addresses listener connections bind to (`--source-ips`); empty: the
    /// kernel's choice.
    pub source_ips: SourceIps,
    /// Simulator processes the plan is split over (`--agents`); 1: this process alone.
    pub agents: u32,
    /// In an agent process: which share of the parent's plan this plan is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentSlot>,
    /// The traffic phase's stages (empty: one plateau at scale 1 for `duration`, which
    /// is otherwise the stages' sum); every rate is multiplied by their curve.
    pub stages: Vec<Stage>,
    /// The multiplier at the start of the first stage.
    pub start_scale: f64,
    /// Listeners leaving and rejoining their channel (`[actions.presence_churn]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_churn: Option<ChurnPlan>,
    /// Listener sockets dropped at once and reconnecting (`[actions.reconnect_storm]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnect_storm: Option<StormPlan>,
    /// Likes, unlikes, deletions, chat messages, typing and the room/likes/user
    /// listener groups (`crate::actions`).
    pub actions: crate::plan::actions::ActionsPlan,
    /// Page listeners and page readers (`[listeners] page`, `[actions.page_readers]`).
    pub pages: crate::plan::pages::PagesPlan,
    /// The fraction of the firehose and tag listeners connected over time (the stages'
    /// `listeners`); `None`: all of them, the whole time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener_ramp: Option<crate::workloads::bookmarks::ramp::ListenerRamp>,
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
    #[error("{origin} {value:?}: {reason} (expected http://host:port)")]
    Target { origin: Origin, value: String, reason: String },
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

/// Flags over a scenario file: a value typed on the command line wins, then the file's,
/// then the flag's default. Each value keeps its origin for error messages.
struct Layers<'a> {
    args: &'a RunArgs,
    scenario: Option<&'a Scenario>,
}

impl Layers<'_> {
    /// `id` is the clap id (field name), `flag` the flag as typed, `key` the file key.
    fn pick<T: Clone>(
        &self,
        id: &str,
        flag: &'static str,
        from_flag: &T,
        file: Option<(&str, &Spanned<T>)>,
    ) -> (T, Origin) {
        match (self.scenario, file) {
            (Some(scenario), Some((key, value))) if !self.args.given(id) => {
                (value.get_ref().clone(), Origin::File(Box::new(scenario.place(key, value.span()))))
            }
            _ => (from_flag.clone(), Origin::Flag(flag)),
        }
    }
}

/// Every raw value of a run, layered, before validation.
struct Raw {
    target: (Option<String>, Origin),
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
                (Some(t.get_ref().clone()), Origin::File(Box::new(s.place("target", t.span()))))
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
        let peak_scale = stages.iter().map(|s| s.scale).fold(start_scale, f64::max);
        let requests = curve_of(&stages, start_scale, duration, rate).count();
        if requests > MAX_REQUESTS {
            return Err(PlanError::TooManyRequests { rate, duration, requests, max: MAX_REQUESTS });
        }
        let target = match &raw.target.0 {
            None => TargetSpec::Embedded,
            Some(value) => TargetSpec::External { url: parse_target(value, &raw.target.1)? },
        };
        let thresholds = thresholds(args, scenario)?;
        let profile = crate::plan::profile::Profile::for_run(args.profile.as_deref(), scenario)?;
        if private_fraction > 0.0 && !profile.create.can_be_private {
            let (origin, profile) = (raw.private_fraction.1, profile.name);
            return Err(PlanError::ProfileCannotBePrivate { origin, value: private_fraction, profile });
        }
        let max_in_flight = raw.max_in_flight.0;
        let source_ips = match &args.source_ips {
            Some(value) => SourceIps::parse(value)?,
            None => SourceIps::default(),
        };
        if args.agents == 0 {
            return Err(PlanError::Agents("--agents must be at least 1".into()));
        }
        let agent = args.agent.as_deref().map(AgentSlot::parse).transpose()?;
        if agent.is_some() && args.agents > 1 {
            return Err(PlanError::Agents("--agent I/K runs one share: it cannot also split with --agents".into()));
        }
        let mut plan = Plan {
            scenario: scenario.map(|s| s.path.clone()),
            target,
            profile,
            listeners: raw.listeners,
            tag_listeners: raw.tag_listeners,
            connect_rate_per_s: raw.connect_rate.0,
            rate_per_s: rate,
            duration,
            warmup,
            seed: raw.seed,
            max_lag,
            private_fraction,
            out: args.out.clone(),
            seed_bookmarks: raw.seed_bookmarks,
            drain_timeout,
            max_in_flight,
            thresholds,
            source_ips,
            agents: args.agents,
            agent: None,
            stages,
            start_scale,
            presence_churn: crate::plan::staging::churn(args, scenario)?,
            reconnect_storm: crate::plan::staging::storm(args, scenario, duration)?,
            actions: crate::plan::actions::ActionsPlan::from_layers(args, scenario, peak_scale)?,
            pages: crate::plan::pages::PagesPlan::from_layers(args, scenario)?,
            listener_ramp,
        };
        if plan.pages.is_active() && plan.profile.name != "firehose" {
            let reason = format!(
                "{:?}: page listeners and page readers speak firehose's `page:<path>` topics and accounts; run \
                 them with the firehose profile",
                plan.profile.name
            );
            return Err(PlanError::Invalid { origin: Origin::Flag("profile"), reason });
        }
        if plan.actions.is_active() && plan.profile.name != "firehose" {
            let reason = format!(
                "{:?}: likes, deletions, chat messages, typing and the room/likes/user listeners speak firehose's \
                 own API; run them with the firehose profile",
                plan.profile.name
            );
            return Err(PlanError::Invalid { origin: Origin::Flag("profile"), reason });
        }
        if let Some(slot) = agent {
            plan = plan.share(slot);
        }
        plan.check_fd_budget(fd_limit)?;
        Ok(plan)
    }

    /// Agent `slot`'s share of this plan: every group's listeners split as evenly as
    /// possible, every rate divided by the agent count, its own seed and its own slice
    /// of source addresses (127.0.0.(2+i) when none were given and the target is on
    /// loopback). Fields added to the plan that are counts or rates belong here too.
    pub fn share(&self, slot: AgentSlot) -> Plan {
        let (i, k) = (slot.index, slot.count);
        let per = |rate: f64| rate / f64::from(k);
        let loopback_target = match &self.target {
            TargetSpec::Embedded => true,
            TargetSpec::External { url } => url::Url::parse(url).ok().is_some_and(|u| match u.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d == "localhost",
                _ => false,
            }),
        };
        let source_ips = if self.source_ips.is_empty() && !loopback_target {
            SourceIps::default()
        } else {
            self.source_ips.share(i, k)
        };
        Plan {
            listeners: share_of(self.listeners, i, k),
            tag_listeners: share_of(self.tag_listeners, i, k),
            connect_rate_per_s: per(self.connect_rate_per_s),
            rate_per_s: per(self.rate_per_s),
            seed: self.seed.wrapping_add(u64::from(i)),
            seed_bookmarks: share_of(self.seed_bookmarks, i, k),
            presence_churn: self.presence_churn.clone().map(|c| ChurnPlan { rate_per_s: per(c.rate_per_s), ..c }),
            source_ips,
            agents: 1,
            agent: Some(slot),
            actions: self.actions.share(i, k),
            pages: self.pages.share(i, k),
            ..self.clone()
        }
    }

    /// Every socket the plan holds open at once in one process, all listener groups.
    /// A group added to the plan adds its sockets here, so the fd budget sees it.
    pub fn total_sockets(&self) -> u64 {
        self.total_listeners() + self.actions.sockets() + self.pages.sockets(crate::workloads::pages::max_scale(self))
    }

    /// Refuses, before anything connects, a plan whose sockets do not fit this
    /// process's open-file limit, saying how many fit and how to split the plan.
    fn check_fd_budget(&self, limit: Option<u64>) -> Result<(), PlanError> {
        let Some(limit) = limit else { return Ok(()) };
        let sockets = self.total_sockets();
        let embedded = self.target == TargetSpec::Embedded;
        let in_flight = u64::from(self.max_in_flight);
        // With agents, each child holds its share (client ends only); an embedded server
        // stays in this process and holds the server end of every socket.
        let (per_process, per_listener, why) = match (self.agents > 1, embedded) {
            (true, true) => (sockets, 1, ": the in-process server's end of every agent's socket"),
            (true, false) => (sockets.div_ceil(u64::from(self.agents)), 1, ", in each agent"),
            (false, true) => (sockets, 2, ": client and in-process server ends"),
            (false, false) => (sockets, 1, ""),
        };
        let needed = per_process * per_listener + in_flight * per_listener + FD_RESERVE;
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

    /// Requests of the run: one every `1/rate` over the duration, warm-up included.
    pub fn requests(&self) -> u64 {
        self.curve(self.rate_per_s).count()
    }

    /// Requests whose intended start falls inside the warm-up (the first ones).
    pub fn warmup_requests(&self) -> u64 {
        self.curve(self.rate_per_s).count_before(self.warmup)
    }

    /// The open-model schedule of an action with `base_rate` per second: the stages'
    /// curve (or a constant rate for `duration` without stages).
    pub fn curve(&self, base_rate: f64) -> RateCurve {
        curve_of(&self.stages, self.start_scale, self.duration, base_rate)
    }

    /// All listeners, both groups.
    pub fn total_listeners(&self) -> u64 {
        u64::from(self.listeners) + u64::from(self.tag_listeners)
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.target {
            TargetSpec::Embedded => "embedded (in-process, SQLite in a temp dir)".to_owned(),
            TargetSpec::External { url } => url.clone(),
        };
        writeln!(f, "plan")?;
        if let Some(scenario) = &self.scenario {
            writeln!(f, "  scenario          {} (flags given override it)", scenario.display())?;
        }
        writeln!(f, "  target            {target}")?;
        for (k, line) in self.profile.describe().iter().enumerate() {
            writeln!(f, "  {:<18}{line}", if k == 0 { "profile" } else { "" })?;
        }
        writeln!(
            f,
            "  listeners         {} firehose + {} tag, opened at {}/s",
            self.listeners, self.tag_listeners, self.connect_rate_per_s
        )?;
        writeln!(
            f,
            "  traffic           {}/s for {:?} (warm-up {:?}) = {} requests, {:.1}% private",
            self.rate_per_s,
            self.duration,
            self.warmup,
            self.requests(),
            self.private_fraction * 100.0
        )?;
        writeln!(
            f,
            "  generator         max lag {:?}, max in flight {}, drain timeout {:?}",
            self.max_lag, self.max_in_flight, self.drain_timeout
        )?;
        writeln!(f, "  seed              {} ({} seed bookmarks)", self.seed, self.seed_bookmarks)?;
        if !self.stages.is_empty() {
            let list: Vec<String> = self.stages.iter().map(|s| format!("{:?}→×{}", s.duration, s.scale)).collect();
            writeln!(f, "  stages            from ×{}: {}", self.start_scale, list.join(", "))?;
        }
        if let Some(r) = &self.listener_ramp {
            let list: Vec<String> = r.stages.iter().map(|(d, x)| format!("{d:?}→{:.0}%", x * 100.0)).collect();
            writeln!(
                f,
                "  listener ramp     from {:.0}% of each group: {} (the rest join and leave by seq)",
                r.start * 100.0,
                list.join(", ")
            )?;
        }
        if let Some(c) = &self.presence_churn {
            let scheduled = self.curve(c.rate_per_s).count();
            writeln!(
                f,
                "  presence churn    {}/s (= {scheduled}) leave + rejoin with since after {:?}",
                c.rate_per_s, c.absence
            )?;
        }
        if let Some(s) = &self.reconnect_storm {
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
                self.curve(r.rate_per_s).count(),
                r.dwell,
                self.pages.peak_readers(crate::workloads::pages::max_scale(self))
            )?;
        }
        for (i, t) in self.thresholds.iter().enumerate() {
            writeln!(f, "  {:<18}{t}", if i == 0 { "thresholds" } else { "" })?;
        }
        if !self.source_ips.is_empty() {
            writeln!(f, "  source addresses  {}", self.source_ips)?;
        }
        if self.agents > 1 {
            writeln!(
                f,
                "  agents            {} processes, each 1/{} of the listeners and rates",
                self.agents, self.agents
            )?;
        }
        if let Some(slot) = self.agent {
            writeln!(f, "  agent             {} of {} (this plan is its share)", slot.index, slot.count)?;
        }
        write!(f, "  reports           {}", self.out.display())
    }
}

fn curve_of(stages: &[Stage], start_scale: f64, duration: Duration, rate: f64) -> RateCurve {
    if stages.is_empty() { RateCurve::constant(rate, duration) } else { RateCurve::staged(rate, start_scale, stages) }
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

/// Parses "10s", "500ms", "2m", "1.5s", "250us", "1h"; a bare number is seconds.
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
    Duration::try_from_secs_f64(number * scale).map_err(|e| e.to_string())
}

fn parse_target(raw: &str, origin: &Origin) -> Result<String, PlanError> {
    http_base_url(raw).map_err(|reason| PlanError::Target { origin: origin.clone(), value: raw.to_owned(), reason })
}

/// The `http://host:port` base URL of a target given as `raw`; the error is the reason
/// it is not one.
pub(crate) fn http_base_url(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw).map_err(|e| e.to_string())?;
    if url.scheme() != "http" {
        return Err("only http:// targets are supported".into());
    }
    let host = url.host_str().ok_or("no host")?;
    let port = url.port_or_known_default().ok_or("no port")?;
    if url.path() != "/" && !url.path().is_empty() {
        return Err("give the server's base URL, without a path".into());
    }
    Ok(format!("http://{host}:{port}"))
}

/// The soft limit on open files from `/proc/self/limits`; `None` when unlimited or
/// unreadable (then no budget is enforced).
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files_limit(&limits)
}

fn parse_open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

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

    #[test]
    fn defaults_make_a_valid_embedded_plan() {
        let p = plan(&[]).unwrap();
        assert_eq!(p.target, TargetSpec::Embedded);
        assert_eq!((p.listeners, p.tag_listeners), (100, 0));
        assert_eq!(p.duration, Duration::from_secs(10));
        assert_eq!(p.warmup, Duration::from_secs(2));
        assert_eq!(p.max_lag, Duration::from_millis(50));
        assert_eq!(p.requests(), 200);
        assert_eq!(p.warmup_requests(), 40);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["target"]["kind"], "embedded");
        assert_eq!(json["duration_s"], 10.0);
        assert_eq!(json["max_lag_ms"], 50.0);
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
    fn targets_are_http_base_urls() {
        let p = plan(&["--target", "http://127.0.0.1:4000/"]).unwrap();
        assert_eq!(p.target, TargetSpec::External { url: "http://127.0.0.1:4000".into() });
        let p = plan(&["--target", "http://localhost"]).unwrap();
        assert_eq!(p.target, TargetSpec::External { url: "http://localhost:80".into() });
        assert!(matches!(plan(&["--target", "https://x:1"]), Err(PlanError::Target { .. })));
        assert!(matches!(plan(&["--target", "127.0.0.1:4000"]), Err(PlanError::Target { .. })));
        assert!(matches!(plan(&["--target", "http://h:1/app"]), Err(PlanError::Target { .. })));
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
        assert_eq!(shares.iter().map(|p| p.listeners).collect::<Vec<_>>(), [34, 34, 33]);
        assert_eq!(shares.iter().map(|p| p.tag_listeners).sum::<u32>(), 10);
        assert!(shares.iter().all(|p| p.rate_per_s == 10.0 && p.agents == 1));
        assert_eq!(shares.iter().map(|p| p.seed).collect::<Vec<_>>(), [7, 8, 9]);
        assert_eq!(shares[2].source_ips.to_string(), "127.0.0.4", "default sources: 127.0.0.(2+i)");
        assert_eq!(shares[1].agent, Some(AgentSlot { index: 1, count: 3 }));
        let remote = plan(&["--target", "http://10.1.2.3:4000", "--agent", "1/2"]).unwrap();
        assert!(remote.source_ips.is_empty(), "no loopback sources towards a remote server");
        assert!(matches!(plan(&["--agent", "3/3"]), Err(PlanError::Agents(_))));
        assert!(matches!(plan(&["--agents", "0"]), Err(PlanError::Agents(_))));
        assert!(matches!(plan(&["--source-ips", "192.168.1.1"]), Err(PlanError::SourceIps(_))));
    }

    #[test]
    fn open_files_limit_is_read_from_proc_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 20000                files     \n";
        assert_eq!(parse_open_files_limit(limits), Some(1024));
        assert_eq!(parse_open_files_limit("Max open files unlimited unlimited files"), None);
    }
}
