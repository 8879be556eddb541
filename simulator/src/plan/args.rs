//! The command line as typed: clap structs holding raw values. Nothing here judges
//! them; `plan` turns a `RunArgs` into a validated `Plan`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};

use crate::report::exit::EXIT_CODES_HELP;

/// `firehose-sim run` flags, unvalidated.
#[derive(Debug, Clone, Parser)]
#[command(name = "run", after_help = EXIT_CODES_HELP, allow_negative_numbers = true)]
pub struct RunArgs {
    /// Scenario file (TOML): a path, or a name looked up as
    /// `fixtures/scenarios/<NAME>.toml`. Flags given on the command line override its
    /// values; see `fixtures/scenarios/README.md` for the format.
    #[arg(help_heading = "Plan", long, value_name = "NAME|PATH")]
    pub scenario: Option<String>,

    /// A gate on the finished run, e.g. 'delivery.firehose.p99 < 100ms', 'loss == 0',
    /// 'errors.rate < 0.1%', 'valid == true' (repeatable; replaces the scenario's
    /// `thresholds`). Operators < <= > >= == !=; units ms s us for latencies, % or a
    /// plain fraction for rates. An unknown metric is a usage error listing the known ones.
    #[arg(help_heading = "Gates and reports", long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<String>,

    /// Target profile (TOML): a path, or a name looked up as `fixtures/profiles/<NAME>.toml`.
    /// Maps `run` onto another Phoenix Channels app: the create request and its body,
    /// auth, socket path, topic and event names, where the URL and seq live in events.
    /// Default: the built-in firehose profile (`fixtures/profiles/firehose.toml`).
    #[arg(help_heading = "Target", long, value_name = "NAME|PATH")]
    pub profile: Option<String>,

    /// Target base URL (http://host:port or https://host:port). Repeat it for the nodes
    /// of one cluster: listeners and actions are spread over them round-robin, and a
    /// listener whose node refuses it reconnects to the next. Without it (or with
    /// `embedded`), the app is booted in-process on 127.0.0.1 with SQLite in a
    /// temporary directory.
    #[arg(help_heading = "Target", long, value_name = "URL")]
    pub target: Vec<String>,

    /// Listeners joined to `bookmarks:firehose`.
    #[arg(help_heading = "Listeners", long, default_value_t = 100, value_name = "N")]
    pub listeners: u32,

    /// Listeners joined to one `bookmarks:tag:<tag>` each, tags drawn by popularity.
    #[arg(help_heading = "Listeners", long, default_value_t = 0, value_name = "N")]
    pub tag_listeners: u32,

    /// Listener sockets opened per second (paced, not all at once).
    #[arg(help_heading = "Listeners", long, default_value_t = 500.0, value_name = "PER_S")]
    pub connect_rate: f64,

    /// Bookmarks created per second (open model: constant intended start times).
    #[arg(help_heading = "Bookmarks", long, default_value_t = 20.0, value_name = "PER_S")]
    pub rate: f64,

    /// Length of the traffic phase, warm-up included ("10s", "500ms", "2m").
    #[arg(help_heading = "Traffic", long, default_value = "10s", value_name = "DURATION")]
    pub duration: String,

    /// Requests intended before this offset are left out of latency figures.
    #[arg(help_heading = "Traffic", long, default_value = "2s", value_name = "DURATION")]
    pub warmup: String,

    /// Seed for every random choice (tags, bookmark order, private requests).
    #[arg(help_heading = "Traffic", long, default_value_t = 42)]
    pub seed: u64,

    /// A run whose generator sent any request later than this after its intended
    /// start is marked invalid.
    #[arg(help_heading = "Traffic", long, default_value = "50ms", value_name = "DURATION")]
    pub max_lag: String,

    /// Fraction of requests created private (never broadcast).
    #[arg(help_heading = "Bookmarks", long, default_value_t = 0.05, value_name = "FRACTION")]
    pub private_fraction: f64,

    /// Directory under which `<UTC timestamp>-<id>/` report folders are written.
    #[arg(help_heading = "Gates and reports", long, default_value = "reports", value_name = "DIR")]
    pub out: PathBuf,

    /// Bookmarks created from the corpus before measuring (not measured).
    #[arg(help_heading = "Bookmarks", long, default_value_t = 200, value_name = "N")]
    pub seed_bookmarks: u32,

    /// After the last response, how long to wait for outstanding deliveries.
    #[arg(help_heading = "Traffic", long, default_value = "5s", value_name = "DURATION")]
    pub drain_timeout: String,

    /// Most requests in flight at once; waiting for a slot counts as generator lag.
    #[arg(help_heading = "Traffic", long, default_value_t = 256, value_name = "N")]
    pub max_in_flight: u32,

    /// Loopback source addresses listener connections bind to, round-robin: a range
    /// `127.0.0.2-127.0.0.9` or a comma list. Each (source, server) pair has ~28k
    /// ephemeral ports; more sources hold more connections. Default: the kernel's choice.
    #[arg(help_heading = "Scale", long, value_name = "IPS")]
    pub source_ips: Option<String>,

    /// Split the plan over K simulator processes on this machine (each its own file
    /// descriptor budget, 1/K of every group's listeners and of every rate, its own
    /// source addresses) and merge their reports exactly into one.
    #[arg(help_heading = "Scale", long, default_value_t = 1, value_name = "K")]
    pub agents: u32,

    /// Run as agent I of K (`I/K`, I from 0): take that share of the plan and speak the
    /// agent protocol (JSON lines) on stdin/stdout. See README "Agents".
    #[arg(help_heading = "Scale", long, value_name = "I/K", hide = true)]
    pub agent: Option<String>,

    /// A stage of the traffic phase, `DURATION:SCALE` (repeatable, in order): for
    /// DURATION every rate's multiplier moves linearly to SCALE, e.g. `--stage 10s:1
    /// --stage 20s:1 --stage 2s:5 --stage 5s:5 --stage 2s:1` (ramp-up, plateau, spike).
    /// With stages the traffic phase lasts their sum. Replaces the scenario's [[stages]].
    #[arg(help_heading = "Traffic", long = "stage", value_name = "DURATION:SCALE")]
    pub stages: Vec<String>,

    /// The rate multiplier at the start of the first stage (default: the first stage's
    /// scale, so a single stage is a plateau).
    #[arg(help_heading = "Traffic", long, value_name = "SCALE")]
    pub start_scale: Option<f64>,

    /// Presence churn: listeners leaving their channel (phx_leave) and rejoining on the
    /// same socket with `since`, this many per second over all listeners.
    #[arg(help_heading = "Listener lifecycles", long, value_name = "PER_S")]
    pub churn_rate: Option<f64>,

    /// How long a churned listener stays away before rejoining.
    #[arg(help_heading = "Listener lifecycles", long, default_value = "500ms", value_name = "DURATION")]
    pub churn_absence: String,

    /// Reconnect storm at this offset into the traffic phase (repeatable): a seeded
    /// --storm-fraction of the listener sockets is dropped at once and reconnects on
    /// phoenix.js's default schedule (10 ms … 5 s), rejoining with `since`.
    #[arg(help_heading = "Listener lifecycles", long = "storm-at", value_name = "DURATION")]
    pub storm_at: Vec<String>,

    /// Reconnect storms every DURATION of the traffic phase (instead of --storm-at).
    #[arg(help_heading = "Listener lifecycles", long, value_name = "DURATION")]
    pub storm_every: Option<String>,

    /// Fraction of the listener sockets each storm drops.
    #[arg(help_heading = "Listener lifecycles", long, default_value_t = 0.3, value_name = "FRACTION")]
    pub storm_fraction: f64,

    /// Equal jitter on the reconnect delays (each uniform in [d/2, d]).
    #[arg(help_heading = "Listener lifecycles", long)]
    pub storm_jitter: bool,

    /// Page listeners: anonymous sockets on `page:<path>` of a few hot paths, reading
    /// `presence_state`/`presence_diff` (the `page` group).
    #[arg(help_heading = "Pages", long, default_value_t = 0, value_name = "N")]
    pub page_listeners: u32,

    /// Page readers arriving per second (scaled by the stages), each on a Zipf-hot page,
    /// signed in, staying --page-dwell, then leaving (the `page_readers` kind).
    #[arg(help_heading = "Pages", long, value_name = "PER_S")]
    pub page_reader_rate: Option<f64>,

    /// How long each page reader stays.
    #[arg(help_heading = "Pages", long, default_value = "3s", value_name = "DURATION")]
    pub page_dwell: String,

    /// Likes, unlikes, deletions, chat messages, typing and their listener groups.
    #[command(flatten, next_help_heading = "Actions (likes, chat, typing, rooms)")]
    pub actions: ActionArgs,

    /// Reads per second of each read kind: the newest bookmarks (`read_list`), a
    /// Zipf-hot tag's feed (`read_tag`), a random bookmark (`read_random`) and chat
    /// search (`search`); a scenario sets each on its own (`[actions.read_list]` …).
    #[arg(help_heading = "Reads", long, value_name = "PER_S")]
    pub read_rate: Option<f64>,

    /// Extra CA certificate(s) (PEM) to trust for an `https://` target, besides the web
    /// PKI roots.
    #[arg(help_heading = "Target", long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// Accept any certificate of an `https://` target (a self-signed test endpoint).
    #[arg(help_heading = "Target", long)]
    pub insecure: bool,

    /// Serve a live page of the run at ADDR (default 127.0.0.1:5665) while it goes: per
    /// second requests, deliveries, p50/p99 per group, open connections, errors by kind
    /// and generator lag, pushed to the browser; the verdict when it ends.
    #[arg(
        help_heading = "Gates and reports",
        long,
        value_name = "ADDR",
        num_args = 0..=1,
        require_equals = false,
        default_missing_value = crate::report::dashboard::DEFAULT_ADDR
    )]
    pub dashboard: Option<std::net::SocketAddr>,

    /// The run id every agent of one run shares (set by the parent of `--agents`).
    #[arg(long, value_name = "ID", hide = true)]
    pub run_id: Option<String>,

    /// No live progress on stderr (otherwise a bar on a terminal, or one status line
    /// every 5 s when stderr is not a terminal).
    #[arg(help_heading = "Gates and reports", long)]
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

/// `firehose-sim run` flags of the actions beyond bookmark creation (0 = off).
#[derive(Debug, Clone, clap::Args)]
pub struct ActionArgs {
    /// Likes per second (HTTP `POST /api/bookmarks/{id}/like`) of Zipf-hot bookmarks.
    #[arg(long, default_value_t = 0.0, value_name = "PER_S")]
    pub like_rate: f64,
    /// Unlikes per second, each of a like this run made.
    #[arg(long, default_value_t = 0.0, value_name = "PER_S")]
    pub unlike_rate: f64,
    /// Bookmark deletions per second (of bookmarks created for it before measuring).
    #[arg(long, default_value_t = 0.0, value_name = "PER_S")]
    pub delete_rate: f64,
    /// Chat messages per second (`new_msg` pushes) in Zipf-hot public rooms.
    #[arg(long, default_value_t = 0.0, value_name = "PER_S")]
    pub message_rate: f64,
    /// Typing pushes per second in Zipf-hot rooms.
    #[arg(long, default_value_t = 0.0, value_name = "PER_S")]
    pub typing_rate: f64,
    /// Public chat rooms created for the run.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub rooms: u32,
    /// Listeners joined to one `room:<slug>` each, hot rooms getting more.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub room_listeners: u32,
    /// Listeners joined to one `likes:<bookmark_id>` each, hot bookmarks getting more.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub likes_listeners: u32,
    /// Signed-in listeners on their own `user:<id>`; chat messages @mention them.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub user_listeners: u32,
    /// Share of chat messages that @mention one of the user listeners.
    #[arg(long, default_value_t = 0.05, value_name = "FRACTION")]
    pub mention_fraction: f64,
    /// Bookmarks liked (created before measuring, popularity Zipf by rank).
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub like_targets: u32,
    /// Users that act (like, post, type, delete); default: planned from the rates so
    /// a server's default per-user limits are not reached.
    #[arg(long, value_name = "N")]
    pub actor_users: Option<u32>,
    /// Room listeners per room, spread evenly (`--rooms` × this listeners in all),
    /// instead of `--room-listeners` spread by popularity: every room the same size.
    #[arg(long, value_name = "M")]
    pub room_members: Option<u32>,
    /// Presence joins per second: a fresh signed-in socket joins a Zipf-hot room, stays
    /// --presence-hold and leaves; the room's listeners get the `presence_diff`.
    #[arg(long, default_value_t = 0.0, value_name = "PER_S")]
    pub room_presence_rate: f64,
    /// How long a presence join stays in its room.
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    pub presence_hold: String,
}
