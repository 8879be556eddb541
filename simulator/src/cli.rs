//! The command line as typed: clap structs holding raw values. Nothing here judges
//! them; `plan` turns a `RunArgs` into a validated `Plan`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::fixtures::FixturesArgs;

/// Exit codes, shown in `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  the run completed and is valid (loss or errors, if any, are in the report)
  1  the report could not be written
  2  usage or plan error (bad flag, rate <= 0, more listeners than file descriptors allow)
  3  the run is invalid: the generator fell behind its schedule (see the report's reasons)
  4  the target is unreachable or setup failed (boot, user or bookmark seeding, listeners)";

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
    /// Generate the deterministic fixture corpus.
    Fixtures(FixturesArgs),
}

/// `firehose-sim run` flags, unvalidated.
#[derive(Debug, Clone, Parser)]
#[command(name = "run", after_help = EXIT_CODES_HELP)]
pub struct RunArgs {
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
}

impl RunArgs {
    /// The defaults, as `firehose-sim run` with no flags.
    pub fn defaults() -> Self {
        Self::parse_from(["run"])
    }
}
