//! Raw flags become one validated `Plan`: every number checked once, here, with an
//! error that says what to change. Everything downstream trusts the plan.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Serialize, Serializer};
use toml::Spanned;

use crate::cli::RunArgs;
use crate::gate::{Threshold, ThresholdError};
use crate::scenario::{Place, Scenario, ScenarioError};

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
    #[error("{place}: {source}")]
    ThresholdInFile { place: Box<Place>, source: ThresholdError },
    #[error("{origin} {value:?}: {reason} (use e.g. \"10s\", \"500ms\", \"2m\")")]
    Duration { origin: Origin, value: String, reason: String },
    #[error("{origin} must be a positive number per second, got {value}")]
    Rate { origin: Origin, value: f64 },
    #[error("{0} must be longer than zero")]
    ZeroDuration(Origin),
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
    #[error(
        "{listeners} listeners need about {needed} file descriptors ({per_listener} per listener{why}, \
         {in_flight} for in-flight requests, {reserve} reserved) but this process may open {limit} \
         (soft RLIMIT_NOFILE); at most {fit} listeners fit: lower --listeners/--tag-listeners or raise `ulimit -n`"
    )]
    FdBudget {
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
        let raw = Raw::layer(args, scenario);
        let duration = duration_value(&raw.duration)?;
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
        let requests = request_count(duration, rate);
        if requests > MAX_REQUESTS {
            return Err(PlanError::TooManyRequests { rate, duration, requests, max: MAX_REQUESTS });
        }
        let target = match &raw.target.0 {
            None => TargetSpec::Embedded,
            Some(value) => TargetSpec::External { url: parse_target(value, &raw.target.1)? },
        };
        let thresholds = thresholds(args, scenario)?;
        let max_in_flight = raw.max_in_flight.0;
        check_fd_budget(&target, u64::from(raw.listeners) + u64::from(raw.tag_listeners), max_in_flight, fd_limit)?;
        Ok(Plan {
            scenario: scenario.map(|s| s.path.clone()),
            target,
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
        })
    }

    /// Requests of the run: one every `1/rate` over the duration, warm-up included.
    pub fn requests(&self) -> u64 {
        request_count(self.duration, self.rate_per_s)
    }

    /// Requests whose intended start falls inside the warm-up (the first ones).
    pub fn warmup_requests(&self) -> u64 {
        request_count(self.warmup, self.rate_per_s)
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
        for (i, t) in self.thresholds.iter().enumerate() {
            writeln!(f, "  {:<18}{t}", if i == 0 { "thresholds" } else { "" })?;
        }
        write!(f, "  reports           {}", self.out.display())
    }
}

fn request_count(span: Duration, rate: f64) -> u64 {
    // Request i is intended at i / rate; those with i / rate < span belong to the span.
    // The epsilon keeps 3 s × 20/s at 60, not 61, despite float rounding.
    (span.as_secs_f64() * rate - 1e-9).ceil().max(0.0) as u64
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

fn check_fd_budget(
    target: &TargetSpec,
    listeners: u64,
    max_in_flight: u32,
    limit: Option<u64>,
) -> Result<(), PlanError> {
    let Some(limit) = limit else { return Ok(()) };
    // In-process, every socket is open twice: the listener's end and the server's end.
    let (per_listener, why) = match target {
        TargetSpec::Embedded => (2, ": client and in-process server ends"),
        TargetSpec::External { .. } => (1, ""),
    };
    let in_flight = u64::from(max_in_flight) * per_listener;
    let needed = listeners * per_listener + in_flight + FD_RESERVE;
    if needed <= limit {
        return Ok(());
    }
    let fit = limit.saturating_sub(in_flight + FD_RESERVE) / per_listener;
    Err(PlanError::FdBudget { listeners, needed, per_listener, why, in_flight, reserve: FD_RESERVE, limit, fit })
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
    fn open_files_limit_is_read_from_proc_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 20000                files     \n";
        assert_eq!(parse_open_files_limit(limits), Some(1024));
        assert_eq!(parse_open_files_limit("Max open files unlimited unlimited files"), None);
    }
}
