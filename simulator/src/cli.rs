//! The command line as typed: clap structs holding raw values. Nothing here judges
//! them; `plan` turns a `RunArgs` into a validated `Plan`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::compare::CompareArgs;
use crate::fixtures::FixturesArgs;

/// Exit codes, shown in `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  pass: the run completed, is valid and met every --threshold (loss or errors, if
     any and not gated, are in the report); `compare`: no regression beyond the bound;
     `knee`: the search ended (a level broke the --slo, or every level up to --max
     held; knee.json says which); `demo`: stopped by Ctrl-C or SIGTERM
  1  the report could not be written
  2  usage, plan or scenario error (bad flag or file, rate <= 0, unknown metric in a
     --threshold, more listeners than file descriptors allow, unreadable report to compare)
  3  the run is invalid: the generator fell behind its schedule (see the report's reasons;
     this code wins over a failed threshold)
  4  the target is unreachable (connection refused, DNS) or setup failed (boot, user or
     bookmark seeding, no listener joined)
  5  a --threshold failed (the report, summary.md and junit.xml say which)
  6  `compare`: a figure regressed beyond --max-regression
  7  the target is not a Phoenix Channels endpoint: no WebSocket upgrade at the profile's
     socket path (e.g. HTTP 404), or no phx_reply to a heartbeat; found before traffic
  8  the target dropped listener connections during the run (server close, EOF, error;
     never the simulator's own churn or storms), or some listeners never joined (a run
     with fewer listeners than planned): the report is written, marked partial.
     Precedence on a finished run: 3, then 5, then 8. A run that fails after listeners
     connected still writes a partial report and exits with its failure's code
  9  `run` was interrupted by SIGINT (Ctrl-C) or SIGTERM: it stopped scheduling, drained
     for at most 2 s and wrote a partial report (unsent requests owe nothing); this code
     wins over every other. A second signal quits at once without a report";

#[derive(Debug, Parser)]
#[command(name = "firehose-sim", version, about, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Drive a firehose target: listeners on the firehose and tag topics, bookmarks
    /// created at a constant rate (open model), delivery latency and loss measured.
    #[command(after_help = EXIT_CODES_HELP)]
    Run(RunArgs),
    /// Compare two report.json files: key latency percentiles and throughput; exits 6
    /// when the new run regressed beyond the bound.
    #[command(after_help = EXIT_CODES_HELP)]
    Compare(CompareArgs),
    /// Merge report folders of several simulator processes (agents) into one report,
    /// exactly: histograms rebuilt from their `.hlog` interval logs, counts added,
    /// maxima and minima kept, thresholds judged on the result.
    #[command(after_help = EXIT_CODES_HELP)]
    Merge(crate::merge::MergeArgs),
    /// Chat rooms under load: R rooms x M members, messages, typing and presence churn
    /// at stated rates; message/typing delivery and presence join->diff latency, loss,
    /// server memory per room.
    #[command(after_help = EXIT_CODES_HELP)]
    Rooms(crate::rooms::RoomsArgs),
    /// Step the bookmark rate or the listener count, one full run per level, until an
    /// --slo breaks (or the run turns invalid); report the highest level that held.
    #[command(after_help = EXIT_CODES_HELP)]
    Knee(crate::knee::KneeArgs),
    /// A human-paced, endless firehose into a running server, for showing the app:
    /// bookmarks, likes, chat with typing; one line per action; Ctrl-C stops it.
    #[command(after_help = EXIT_CODES_HELP)]
    Demo(crate::demo::DemoArgs),
    /// Generate the deterministic fixture corpus.
    Fixtures(FixturesArgs),
}

/// `firehose-sim run` flags, unvalidated.
#[derive(Debug, Clone, Parser)]
#[command(name = "run", after_help = EXIT_CODES_HELP, allow_negative_numbers = true)]
pub struct RunArgs {
    /// Scenario file (TOML): a path, or a name looked up as
    /// `fixtures/scenarios/<NAME>.toml`. Flags given on the command line override its
    /// values; see `fixtures/scenarios/README.md` for the format.
    #[arg(long, value_name = "NAME|PATH")]
    pub scenario: Option<String>,

    /// A gate on the finished run, e.g. 'delivery.firehose.p99 < 100ms', 'loss == 0',
    /// 'errors.rate < 0.1%', 'valid == true' (repeatable; replaces the scenario's
    /// `thresholds`). Operators < <= > >= == !=; units ms s us for latencies, % or a
    /// plain fraction for rates. An unknown metric is a usage error listing the known ones.
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<String>,

    /// Target profile (TOML): a path, or a name looked up as `fixtures/profiles/<NAME>.toml`.
    /// Maps `run` onto another Phoenix Channels app: the create request and its body,
    /// auth, socket path, topic and event names, where the URL and seq live in events.
    /// Default: the built-in firehose profile (`fixtures/profiles/firehose.toml`).
    #[arg(long, value_name = "NAME|PATH")]
    pub profile: Option<String>,

    /// Target base URL (http://host:port). Without it, the app is booted in-process on
    /// 127.0.0.1 with SQLite in a temporary directory.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,

    /// Listeners joined to `bookmarks:firehose`.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub listeners: u32,

    /// Listeners joined to one `bookmarks:tag:<tag>` each, tags drawn by popularity.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub tag_listeners: u32,

    /// Listener sockets opened per second (paced, not all at once).
    #[arg(long, default_value_t = 500.0, value_name = "PER_S")]
    pub connect_rate: f64,

    /// Bookmarks created per second (open model: constant intended start times).
    #[arg(long, default_value_t = 20.0, value_name = "PER_S")]
    pub rate: f64,

    /// Length of the traffic phase, warm-up included ("10s", "500ms", "2m").
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub duration: String,

    /// Requests intended before this offset are left out of latency figures.
    #[arg(long, default_value = "2s", value_name = "DURATION")]
    pub warmup: String,

    /// Seed for every random choice (tags, bookmark order, private requests).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// A run whose generator sent any request later than this after its intended
    /// start is marked invalid.
    #[arg(long, default_value = "50ms", value_name = "DURATION")]
    pub max_lag: String,

    /// Fraction of requests created private (never broadcast).
    #[arg(long, default_value_t = 0.05, value_name = "FRACTION")]
    pub private_fraction: f64,

    /// Directory under which `<UTC timestamp>-<id>/` report folders are written.
    #[arg(long, default_value = "reports", value_name = "DIR")]
    pub out: PathBuf,

    /// Bookmarks created from the corpus before measuring (not measured).
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub seed_bookmarks: u32,

    /// After the last response, how long to wait for outstanding deliveries.
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub drain_timeout: String,

    /// Most requests in flight at once; waiting for a slot counts as generator lag.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub max_in_flight: u32,

    /// Loopback source addresses listener connections bind to, round-robin: a range
    /// `127.0.0.2-127.0.0.9` or a comma list. Each (source, server) pair has ~28k
    /// ephemeral ports; more sources hold more connections. Default: the kernel's choice.
    #[arg(long, value_name = "IPS")]
    pub source_ips: Option<String>,

    /// Split the plan over K simulator processes on this machine (each its own file
    /// descriptor budget, 1/K of every group's listeners and of every rate, its own
    /// source addresses) and merge their reports exactly into one.
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub agents: u32,

    /// Run as agent I of K (`I/K`, I from 0): take that share of the plan and speak the
    /// agent protocol (JSON lines) on stdin/stdout. See README "Agents".
    #[arg(long, value_name = "I/K", hide = true)]
    pub agent: Option<String>,

    /// A stage of the traffic phase, `DURATION:SCALE` (repeatable, in order): for
    /// DURATION every rate's multiplier moves linearly to SCALE, e.g. `--stage 10s:1
    /// --stage 20s:1 --stage 2s:5 --stage 5s:5 --stage 2s:1` (ramp-up, plateau, spike).
    /// With stages the traffic phase lasts their sum. Replaces the scenario's [[stages]].
    #[arg(long = "stage", value_name = "DURATION:SCALE")]
    pub stages: Vec<String>,

    /// The rate multiplier at the start of the first stage (default: the first stage's
    /// scale, so a single stage is a plateau).
    #[arg(long, value_name = "SCALE")]
    pub start_scale: Option<f64>,

    /// Presence churn: listeners leaving their channel (phx_leave) and rejoining on the
    /// same socket with `since`, this many per second over all listeners.
    #[arg(long, value_name = "PER_S")]
    pub churn_rate: Option<f64>,

    /// How long a churned listener stays away before rejoining.
    #[arg(long, default_value = "500ms", value_name = "DURATION")]
    pub churn_absence: String,

    /// Reconnect storm at this offset into the traffic phase (repeatable): a seeded
    /// --storm-fraction of the listener sockets is dropped at once and reconnects on
    /// phoenix.js's default schedule (10 ms … 5 s), rejoining with `since`.
    #[arg(long = "storm-at", value_name = "DURATION")]
    pub storm_at: Vec<String>,

    /// Reconnect storms every DURATION of the traffic phase (instead of --storm-at).
    #[arg(long, value_name = "DURATION")]
    pub storm_every: Option<String>,

    /// Fraction of the listener sockets each storm drops.
    #[arg(long, default_value_t = 0.3, value_name = "FRACTION")]
    pub storm_fraction: f64,

    /// Equal jitter on the reconnect delays (each uniform in [d/2, d]).
    #[arg(long)]
    pub storm_jitter: bool,

    /// Page listeners: anonymous sockets on `page:<path>` of a few hot paths, reading
    /// `presence_state`/`presence_diff` (the `page` group).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub page_listeners: u32,

    /// Page readers arriving per second (scaled by the stages), each on a Zipf-hot page,
    /// signed in, staying --page-dwell, then leaving (the `page_readers` kind).
    #[arg(long, value_name = "PER_S")]
    pub page_reader_rate: Option<f64>,

    /// How long each page reader stays.
    #[arg(long, default_value = "3s", value_name = "DURATION")]
    pub page_dwell: String,

    /// Likes, unlikes, deletions, chat messages, typing and their listener groups.
    #[command(flatten)]
    pub actions: crate::actions::ActionArgs,

    /// No live progress on stderr (otherwise a bar on a terminal, or one status line
    /// every 5 s when stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,

    /// Ids of the flags given on the command line (clap's value source), as opposed to
    /// defaults: only these override a scenario file's values.
    #[arg(skip)]
    pub explicit: BTreeSet<String>,
}

impl RunArgs {
    /// The defaults, as `firehose-sim run` with no flags.
    pub fn defaults() -> Self {
        Self::parse_from(["run"])
    }

    /// Parses `run` flags and records which were given, so that they (and only they)
    /// override a scenario file. Deliberately shadows `clap::Parser::try_parse_from`,
    /// which would leave `explicit` empty and let the file win over typed flags.
    pub fn try_parse_from<I, T>(itr: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = <Self as CommandFactory>::command().try_get_matches_from(itr)?;
        Self::from_matches(&matches)
    }

    /// As [`RunArgs::try_parse_from`], exiting with clap's message on a bad flag.
    pub fn parse_from<I, T>(itr: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Self::try_parse_from(itr).unwrap_or_else(|e| e.exit())
    }

    /// The `run` arguments of already-parsed matches, with `explicit` filled in.
    pub fn from_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = <Self as FromArgMatches>::from_arg_matches(matches)?;
        args.explicit = matches
            .ids()
            .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
            .map(|id| id.as_str().to_owned())
            .collect();
        Ok(args)
    }

    /// Whether flag `id` (the field name, e.g. `connect_rate`) was typed by the user.
    pub fn given(&self, id: &str) -> bool {
        self.explicit.contains(id)
    }
}

/// Parses the whole command line; `run` arguments carry which flags were given.
pub fn parse() -> Cli {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let (Command::Run(args), Some(("run", sub))) = (&mut cli.command, matches.subcommand()) {
        args.explicit = RunArgs::from_matches(sub).unwrap_or_else(|e| e.exit()).explicit;
    }
    if let (Command::Knee(args), Some(("knee", sub))) = (&mut cli.command, matches.subcommand()) {
        args.run.explicit = RunArgs::from_matches(sub).unwrap_or_else(|e| e.exit()).explicit;
    }
    cli
}
