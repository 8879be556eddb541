//! `firehose-sim demo`: a human-paced, endless firehose into a running server, for
//! showing the app. A few demo users (corpus usernames with a suffix) and one or two
//! public rooms are created; then, with random (Poisson) spacing at human rates, users
//! bookmark corpus links, like recent and hot bookmarks (and now and then take a like
//! back), and chat in the rooms — each message preceded by a second or two of `typing`
//! on the room socket, some @mentioning another demo user. One short line per action
//! goes to stdout. Ctrl-C or SIGTERM stops it: every socket leaves its rooms and closes,
//! a final count is printed, exit 0.
//!
//! Rates come from built-in defaults or `--scenario` (`fixtures/scenarios/demo.toml`,
//! read leniently: only the keys the demo uses), all multiplied by `--speed`. Enough
//! users are created that the server's default per-user limits are not reached; a
//! `rate_limited` refusal is printed, never fatal.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use firehose_app::wire::{self, Vsn, events};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::engine::error::exit;
use crate::fixtures::{Corpus, Link};
use crate::http::setup::Account;
use crate::http::{self, Answer, Transport};
use crate::phoenix::{Ended, Endpoint, Flow, JOIN_TIMEOUT};
use crate::plan::profile::Profile;
use crate::plan::scenario::Scenario;

/// Where `firehose serve` listens by default.
pub const DEFAULT_TARGET: &str = "http://127.0.0.1:4000";
/// Sustained per-user budgets of a server with its default limits (per second):
/// messages and bookmarks 10 per 10 s, likes and typing 30 per 10 s.
const LIMIT_MESSAGES: f64 = 1.0;
const LIMIT_BOOKMARKS: f64 = 1.0;
const LIMIT_LIKES: f64 = 3.0;
const LIMIT_TYPING: f64 = 3.0;
/// Users are planned so that each stays under this share of every limit.
const HEADROOM: f64 = 0.25;
const MAX_USERS: u32 = 60;
/// How long the sockets' shutdown may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
/// Bookmarks remembered as like candidates (the newest).
const HOT_WINDOW: usize = 200;

/// `firehose-sim demo` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// The running server (http://host:port); default: the scenario's `target`, else
    /// http://127.0.0.1:4000.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,

    /// Multiplies every rate (2 = twice as busy; 0.5 = half).
    #[arg(long, default_value_t = 1.0, value_name = "X")]
    pub speed: f64,

    /// Rates from a scenario file (`demo` = fixtures/scenarios/demo.toml): the
    /// `[actions.*]` rates, `chat_message.rooms`, `.mention_fraction`, `.actor_users`.
    #[arg(long, value_name = "NAME|PATH")]
    pub scenario: Option<String>,

    /// Demo users to create (default: the scenario's `actor_users`, else 6; raised
    /// when --speed would push them past the server's per-user limits).
    #[arg(long, value_name = "N")]
    pub users: Option<u32>,

    /// Seed for the random choices (default: a fresh one each time).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// The demo's pace at speed 1 (per second) and its cast.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoRates {
    pub bookmark: f64,
    pub like: f64,
    pub unlike: f64,
    pub message: f64,
    /// Typing that no message follows (every message is typed first anyway).
    pub typing: f64,
    pub rooms: u32,
    pub users: u32,
    pub mention_fraction: f64,
    pub target: Option<String>,
}

impl Default for DemoRates {
    fn default() -> Self {
        Self {
            bookmark: 0.2,
            like: 0.6,
            unlike: 0.05,
            message: 0.25,
            typing: 0.05,
            rooms: 2,
            users: 6,
            mention_fraction: 0.2,
            target: None,
        }
    }
}

/// Why the demo cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach {url}: {reason} (is the server running? e.g. `firehose serve`)")]
    Unreachable { url: String, reason: String },
    #[error("setup failed: {0}")]
    Setup(String),
}

impl DemoError {
    pub fn exit_code(&self) -> u8 {
        match self {
            DemoError::Usage(_) => exit::USAGE,
            DemoError::Unreachable { .. } | DemoError::Setup(_) => exit::SETUP,
        }
    }
}

impl DemoRates {
    /// Reads the keys the demo uses from a scenario file's text; every other key is
    /// left to the scenario loader. A key of the wrong type or a negative rate is an error.
    pub fn from_toml(text: &str, file: &str) -> Result<DemoRates, DemoError> {
        let doc: toml::Table = text.parse().map_err(|e| DemoError::Usage(format!("{file}: {e}")))?;
        let mut r = DemoRates::default();
        let get = |path: &[&str]| -> Option<&toml::Value> {
            let mut v = doc.get(path[0])?;
            for key in &path[1..] {
                v = v.get(key)?;
            }
            Some(v)
        };
        let number = |path: &[&str], into: &mut f64| -> Result<(), DemoError> {
            match get(path) {
                None => Ok(()),
                Some(v) => match v.as_float().or_else(|| v.as_integer().map(|i| i as f64)) {
                    Some(n) if n.is_finite() && n >= 0.0 => {
                        *into = n;
                        Ok(())
                    }
                    _ => Err(DemoError::Usage(format!("{file}: {} must be a number >= 0, got {v}", path.join(".")))),
                },
            }
        };
        number(&["actions", "create_bookmark", "rate"], &mut r.bookmark)?;
        number(&["actions", "like", "rate"], &mut r.like)?;
        number(&["actions", "unlike", "rate"], &mut r.unlike)?;
        number(&["actions", "chat_message", "rate"], &mut r.message)?;
        number(&["actions", "typing", "rate"], &mut r.typing)?;
        number(&["actions", "chat_message", "mention_fraction"], &mut r.mention_fraction)?;
        let count = |path: &[&str], into: &mut u32| -> Result<(), DemoError> {
            match get(path) {
                None => Ok(()),
                Some(v) => match v.as_integer().and_then(|i| u32::try_from(i).ok()) {
                    Some(n) => {
                        *into = n;
                        Ok(())
                    }
                    None => Err(DemoError::Usage(format!(
                        "{file}: {} must be a whole number >= 0, got {v}",
                        path.join(".")
                    ))),
                },
            }
        };
        count(&["actions", "chat_message", "rooms"], &mut r.rooms)?;
        count(&["actions", "chat_message", "actor_users"], &mut r.users)?;
        if let Some(t) = get(&["target"]) {
            r.target =
                Some(t.as_str().ok_or_else(|| DemoError::Usage(format!("{file}: target must be a string")))?.into());
        }
        Ok(r)
    }

    /// The rates of `args` (scenario over defaults) times `--speed`, users planned.
    pub fn resolve(args: &DemoArgs) -> Result<(DemoRates, String), DemoError> {
        let mut r = match &args.scenario {
            None => DemoRates::default(),
            Some(name) => {
                let path = Scenario::find(name).map_err(|e| DemoError::Usage(e.to_string()))?;
                // The same checks as `run --scenario`: unknown keys, wrong types and bad
                // values are refused with the file, line, column and key.
                let scenario = Scenario::load(&path).map_err(|e| DemoError::Usage(e.to_string()))?;
                crate::plan::Plan::from_layers(&crate::plan::args::RunArgs::defaults(), Some(&scenario), None)
                    .map_err(|e| DemoError::Usage(e.to_string()))?;
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| DemoError::Usage(format!("{}: cannot read: {e}", path.display())))?;
                DemoRates::from_toml(&text, &path.display().to_string())?
            }
        };
        if !(args.speed.is_finite() && args.speed > 0.0) {
            return Err(DemoError::Usage(format!("--speed must be a positive number, got {}", args.speed)));
        }
        let s = args.speed;
        for rate in [&mut r.bookmark, &mut r.like, &mut r.unlike, &mut r.message, &mut r.typing] {
            *rate *= s;
        }
        if r.bookmark + r.like + r.unlike + r.message + r.typing <= 0.0 {
            return Err(DemoError::Usage("every demo rate is zero: nothing would happen".into()));
        }
        if (r.message > 0.0 || r.typing > 0.0) && r.rooms == 0 {
            return Err(DemoError::Usage("chat needs at least one room (actions.chat_message.rooms)".into()));
        }
        if !(0.0..=1.0).contains(&r.mention_fraction) {
            return Err(DemoError::Usage(format!("mention_fraction must be 0–1, got {}", r.mention_fraction)));
        }
        if let Some(users) = args.users {
            r.users = users;
        }
        // Enough users that each stays well under the server's default per-user budget.
        let needed = [
            r.message / LIMIT_MESSAGES,
            r.bookmark / LIMIT_BOOKMARKS,
            (r.like + r.unlike) / LIMIT_LIKES,
            (r.message + r.typing) / LIMIT_TYPING,
        ]
        .into_iter()
        .fold(0.0_f64, f64::max)
            / HEADROOM;
        r.users = r.users.max(needed.ceil() as u32).clamp(2, MAX_USERS);
        let raw = args.target.clone().or_else(|| r.target.clone()).unwrap_or_else(|| DEFAULT_TARGET.into());
        let base = crate::plan::target::base_url(&raw).map_err(|reason| {
            DemoError::Usage(format!("--target {raw:?}: {reason} (expected http://host:port or https://host:port)"))
        })?;
        Ok((r, base))
    }
}

/// What happened, for the final line.
#[derive(Debug, Default)]
pub struct Counts {
    pub bookmarks: AtomicU64,
    pub likes: AtomicU64,
    pub unlikes: AtomicU64,
    pub messages: AtomicU64,
    pub typing: AtomicU64,
    pub errors: AtomicU64,
    pub rate_limited: AtomicU64,
}

impl Counts {
    fn line(&self, elapsed: Duration) -> String {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "demo stopped after {:.1}s: {} bookmarks, {} likes, {} unlikes, {} messages, {} typing; {} errors ({} rate_limited)",
            elapsed.as_secs_f64(),
            n(&self.bookmarks),
            n(&self.likes),
            n(&self.unlikes),
            n(&self.messages),
            n(&self.typing),
            n(&self.errors),
            n(&self.rate_limited)
        )
    }
}

fn say(icon: &str, text: &str) {
    crate::report::terminal::println(&format!("{} {icon} {text}", chrono::Utc::now().format("%H:%M:%S")));
}

/// A push to a room, and what to print if it is refused.
struct Push {
    topic: String,
    event: &'static str,
    payload: Value,
    what: String,
}

/// A demo user: name, account, and the sender of its room socket's pushes.
struct Actor {
    name: String,
    account: Account,
    socket: mpsc::UnboundedSender<Push>,
}

/// A bookmark the users may like: newest last.
struct Hot {
    id: i64,
    title: String,
    likes: u64,
}

/// `firehose-sim demo`: flags → setup → endless traffic → clean stop → exit code.
pub fn main(args: &DemoArgs) -> u8 {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .try_init();
    let (rates, base) = match DemoRates::resolve(args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("firehose-sim demo: {e}");
            return e.exit_code();
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("firehose-sim demo: cannot start the runtime: {e}");
            return exit::FAILURE;
        }
    };
    let stop = CancellationToken::new();
    runtime.spawn(stop_on_signal(stop.clone()));
    match runtime.block_on(run(rates, &base, args.seed, stop)) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("firehose-sim demo: {e}");
            e.exit_code()
        }
    }
}

/// Cancels `stop` on SIGINT (Ctrl-C) or SIGTERM.
async fn stop_on_signal(stop: CancellationToken) {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    stop.cancel();
}

/// Sets up users, rooms and sockets on `base`, then acts until `stop`.
pub async fn run(rates: DemoRates, base: &str, seed: Option<u64>, stop: CancellationToken) -> Result<(), DemoError> {
    let corpus = Corpus::embedded_default().map_err(|e| DemoError::Setup(format!("fixture corpus: {e}")))?;
    if corpus.links.is_empty() || corpus.users.is_empty() || corpus.chat_lines.is_empty() {
        return Err(DemoError::Setup("the corpus has no links, users or chat lines".into()));
    }
    let unreachable = |reason: String| DemoError::Unreachable { url: base.to_owned(), reason };
    let tls = if base.starts_with("https://") {
        Some(crate::engine::tls::client_config(None, false).map_err(DemoError::Setup)?)
    } else {
        None
    };
    let http = http::Client::new(base, 8, tls.as_ref(), Profile::firehose()).map_err(DemoError::Setup)?;
    let existing = reach(&http, base).await?;
    let host = base.split_once("://").map_or(base, |(_, h)| h);
    let addr = tokio::net::lookup_host(host)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| unreachable(format!("{host}: cannot resolve")))?;
    let endpoint = Endpoint::new(addr, host, &Profile::firehose().socket_path(), tls);
    let mut rng = seed.map_or_else(StdRng::from_os_rng, StdRng::seed_from_u64);
    let suffix = format!("{:04x}", rng.random::<u16>());

    // The cast: corpus users, the most active first, with a suffix so a second demo
    // against the same server does not clash.
    let mut picks: Vec<&crate::fixtures::UserSpec> = corpus.users.iter().collect();
    picks.sort_by(|a, b| b.activity.total_cmp(&a.activity));
    let names: Vec<String> = picks
        .iter()
        .cycle()
        .take(rates.users as usize)
        .enumerate()
        .map(|(i, u)| {
            let tail = if i < picks.len() { suffix.clone() } else { format!("{suffix}{i}") };
            let base: String = u.username.chars().take(32 - tail.len() - 1).collect();
            format!("{base}_{tail}")
        })
        .collect();
    let accounts = http.create_accounts(&names, &suffix).await.map_err(DemoError::Setup)?;
    let room_names = ["Demo lounge", "Links of the day", "Off topic", "Show and tell"];
    let rooms: Vec<(String, String)> = (0..rates.rooms as usize)
        .map(|i| {
            let name = room_names.get(i).map_or_else(|| format!("Demo room {i}"), |n| (*n).to_owned());
            let slug = format!("{}-{suffix}", slugify(&name));
            (name, slug)
        })
        .collect();
    // The rooms (by the first user), every user a member so @mentions reach them.
    if let Some(creator) = accounts.first() {
        for (name, slug) in &rooms {
            http.create_room(&creator.token, name, slug, false).await.map_err(DemoError::Setup)?;
            for member in &accounts[1..] {
                http.join_room(&member.token, slug).await.map_err(DemoError::Setup)?;
            }
        }
    }
    say(
        "*",
        &format!(
            "demo on {base}: {} users ({}), rooms {}; Ctrl-C stops",
            names.len(),
            names.join(", "),
            rooms.iter().map(|(_, s)| format!("#{s}")).collect::<Vec<_>>().join(" ")
        ),
    );

    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let topics: Vec<String> = rooms.iter().map(|(_, slug)| format!("room:{slug}")).collect();
    let mut sockets = Vec::new();
    let mut actors = Vec::new();
    for (name, account) in names.into_iter().zip(accounts) {
        let (tx, rx) = mpsc::unbounded_channel();
        if !topics.is_empty() {
            sockets.push(tokio::spawn(room_socket(
                endpoint.clone(),
                account.token.clone(),
                name.clone(),
                topics.clone(),
                rx,
                Arc::clone(&counts),
                stop.clone(),
            )));
        }
        actors.push(Actor { name, account, socket: tx });
    }
    let mut world = World {
        http,
        actors,
        topics,
        corpus,
        hot: existing,
        liked: Vec::new(),
        liked_set: HashSet::new(),
        rates,
        counts: Arc::clone(&counts),
        stop: stop.clone(),
    };
    world.act_forever(&mut rng).await;

    // Stop: every socket leaves its rooms and closes.
    for socket in sockets {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket).await;
    }
    crate::report::terminal::println(&counts.line(started.elapsed()));
    Ok(())
}

/// Checks the server answers HTTP; returns its newest public bookmarks (like candidates).
async fn reach(http: &http::Client, base: &str) -> Result<Vec<Hot>, DemoError> {
    let unreachable = |reason: String| DemoError::Unreachable { url: base.to_owned(), reason };
    let answer = tokio::time::timeout(Duration::from_secs(5), http.list(50))
        .await
        .map_err(|_| unreachable("no answer within 5 s".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    if !(200..300).contains(&answer.status) {
        return Err(unreachable(format!("GET /api/bookmarks answered {}: not a firehose server?", answer.status)));
    }
    let list: Vec<Value> = answer.data().unwrap_or_default();
    let mut hot: Vec<Hot> = list
        .iter()
        .filter_map(|b| Some(Hot { id: b["id"].as_i64()?, title: b["title"].as_str()?.to_owned(), likes: 0 }))
        .collect();
    hot.reverse(); // newest last
    Ok(hot)
}

/// The demo's state while it runs.
struct World {
    http: http::Client,
    actors: Vec<Actor>,
    topics: Vec<String>,
    corpus: Corpus,
    /// Like candidates, newest last.
    hot: Vec<Hot>,
    /// (actor, bookmark id) likes, oldest first, and the same as a set.
    liked: Vec<(usize, i64)>,
    liked_set: HashSet<(usize, i64)>,
    rates: DemoRates,
    counts: Arc<Counts>,
    stop: CancellationToken,
}

#[derive(Debug, Clone, Copy)]
enum Act {
    Bookmark,
    Like,
    Unlike,
    Message,
    Typing,
}

impl World {
    /// The superposition of one Poisson process per kind: exponential gaps at the total
    /// rate, each event a kind drawn in proportion to its rate.
    async fn act_forever(&mut self, rng: &mut StdRng) {
        let r = &self.rates;
        let kinds = [
            (Act::Bookmark, r.bookmark),
            (Act::Like, r.like),
            (Act::Unlike, r.unlike),
            (Act::Message, r.message),
            (Act::Typing, r.typing),
        ];
        let total: f64 = kinds.iter().map(|k| k.1).sum();
        loop {
            let gap = -(1.0 - rng.random::<f64>()).ln() / total;
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs_f64(gap.min(3600.0))) => {}
            }
            let mut x = rng.random::<f64>() * total;
            let kind = kinds.iter().find(|k| {
                x -= k.1;
                x < 0.0
            });
            match kind.map_or(Act::Bookmark, |k| k.0) {
                Act::Bookmark => self.bookmark(rng).await,
                Act::Like => self.like(rng).await,
                Act::Unlike => self.unlike(rng).await,
                Act::Message => self.message(rng),
                Act::Typing => {
                    let (who, topic) = (rng.random_range(0..self.actors.len()), rng.random_range(0..self.topics.len()));
                    self.typing(who, topic);
                }
            }
        }
    }

    fn error(&self, what: &str, status: u16, body: &str) {
        self.counts.errors.fetch_add(1, Ordering::Relaxed);
        let why = if status == 429 {
            self.counts.rate_limited.fetch_add(1, Ordering::Relaxed);
            "rate_limited".to_owned()
        } else {
            format!("HTTP {status} {}", body.chars().take(120).collect::<String>())
        };
        say("!", &format!("{what}: {why}"));
    }

    fn transport_error(&self, what: &str, e: Transport) {
        self.counts.errors.fetch_add(1, Ordering::Relaxed);
        say("!", &format!("{what}: {}", e.kind()));
    }

    /// A 2xx answer's body, or `None` after printing why not.
    fn answered(&self, what: &str, sent: Result<Answer, Transport>, ok: u16) -> Option<Answer> {
        match sent {
            Err(e) => {
                self.transport_error(what, e);
                None
            }
            Ok(a) if a.status == ok => Some(a),
            Ok(a) => {
                self.error(what, a.status, &String::from_utf8_lossy(&a.body));
                None
            }
        }
    }

    async fn bookmark(&mut self, rng: &mut StdRng) {
        let link: &Link = &self.corpus.links[rng.random_range(0..self.corpus.links.len())];
        let who = rng.random_range(0..self.actors.len());
        let actor = &self.actors[who];
        let body = json!({ "bookmark": { "title": link.title, "url": link.url, "description": link.description,
                                          "public": true, "tags": link.tags } });
        let sent =
            self.http.send(reqwest::Method::POST, "/api/bookmarks", Some(&actor.account.token), Some(&body)).await;
        let what = format!("bookmark by {}", actor.name);
        let Some(answer) = self.answered(&what, sent, 201) else { return };
        let id = answer.data::<Value>().and_then(|d| d["id"].as_i64()).unwrap_or(0);
        self.counts.bookmarks.fetch_add(1, Ordering::Relaxed);
        say("+", &format!("{} bookmarked #{id} \"{}\" [{}]", actor.name, clip(&link.title, 60), link.tags.join(", ")));
        self.hot.push(Hot { id, title: link.title.clone(), likes: 0 });
        if self.hot.len() > HOT_WINDOW {
            let drop = self.hot.len() - HOT_WINDOW;
            self.hot.drain(..drop);
        }
    }

    /// A bookmark skewed to recent and hot ones: weight (1 + likes) / (1 + age rank).
    fn pick_hot(&self, rng: &mut StdRng) -> Option<usize> {
        let weights: Vec<f64> = self
            .hot
            .iter()
            .rev()
            .enumerate()
            .map(|(rank, h)| (1.0 + h.likes as f64) / (1.0 + rank as f64).powf(1.1))
            .collect();
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            return None;
        }
        let mut x = rng.random::<f64>() * total;
        let rank = weights.iter().position(|w| {
            x -= w;
            x < 0.0
        })?;
        Some(self.hot.len() - 1 - rank)
    }

    async fn like(&mut self, rng: &mut StdRng) {
        let Some(at) = self.pick_hot(rng) else { return };
        let id = self.hot[at].id;
        // Someone who has not liked it yet.
        let fans: Vec<usize> = (0..self.actors.len()).filter(|a| !self.liked_set.contains(&(*a, id))).collect();
        if fans.is_empty() {
            return;
        }
        let who = fans[rng.random_range(0..fans.len())];
        let Some(count) = self.set_like(who, id, true).await else { return };
        self.hot[at].likes = count;
        self.liked.push((who, id));
        self.liked_set.insert((who, id));
        self.counts.likes.fetch_add(1, Ordering::Relaxed);
        let title = clip(&self.hot[at].title, 50);
        say("♥", &format!("{} liked #{id} \"{title}\" ({})", self.actors[who].name, likes(count)));
    }

    async fn unlike(&mut self, rng: &mut StdRng) {
        if self.liked.is_empty() {
            return;
        }
        let (who, id) = self.liked.swap_remove(rng.random_range(0..self.liked.len()));
        self.liked_set.remove(&(who, id));
        let Some(count) = self.set_like(who, id, false).await else { return };
        if let Some(h) = self.hot.iter_mut().find(|h| h.id == id) {
            h.likes = count;
        }
        self.counts.unlikes.fetch_add(1, Ordering::Relaxed);
        say("♡", &format!("{} took back their like of #{id} ({})", self.actors[who].name, likes(count)));
    }

    /// `POST`/`DELETE /api/bookmarks/{id}/like`; the new count, or `None` (printed).
    async fn set_like(&self, who: usize, id: i64, like: bool) -> Option<u64> {
        let actor = &self.actors[who];
        let what = format!("{} by {} of #{id}", if like { "like" } else { "unlike" }, actor.name);
        let sent = self.http.like(&actor.account.token, id, like).await;
        let answer = self.answered(&what, sent, 200)?;
        answer.data::<Value>().and_then(|d| d["count"].as_u64())
    }

    fn typing(&self, who: usize, topic: usize) {
        let actor = &self.actors[who];
        let room = &self.topics[topic];
        let what = format!("typing by {} in #{}", actor.name, room.trim_start_matches("room:"));
        let push = Push { topic: room.clone(), event: "typing", payload: json!({}), what };
        if actor.socket.send(push).is_ok() {
            self.counts.typing.fetch_add(1, Ordering::Relaxed);
            say("…", &format!("{} is typing in #{}", actor.name, room.trim_start_matches("room:")));
        }
    }

    /// Typing now, the message a second or two later (sooner at higher speeds).
    fn message(&self, rng: &mut StdRng) {
        let who = rng.random_range(0..self.actors.len());
        let topic = rng.random_range(0..self.topics.len());
        self.typing(who, topic);
        let others: Vec<&str> =
            self.actors.iter().enumerate().filter(|(i, _)| *i != who).map(|(_, a)| a.name.as_str()).collect();
        let line = &self.corpus.chat_lines[rng.random_range(0..self.corpus.chat_lines.len())];
        let mention = (!others.is_empty()).then(|| others[rng.random_range(0..others.len())]);
        let body = with_mention(line, mention, rng.random::<f64>() < self.rates.mention_fraction);
        let speed_up = (self.rates.message / DemoRates::default().message).max(1.0);
        let delay = Duration::from_secs_f64(rng.random_range(1.0..2.0) / speed_up);
        let (tx, name, room) =
            (self.actors[who].socket.clone(), self.actors[who].name.clone(), self.topics[topic].clone());
        let (counts, stop) = (Arc::clone(&self.counts), self.stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            let short = room.trim_start_matches("room:").to_owned();
            let what = format!("message by {name} in #{short}");
            let push = Push { topic: room, event: "new_msg", payload: json!({ "body": body }), what };
            if tx.send(push).is_ok() {
                counts.messages.fetch_add(1, Ordering::Relaxed);
                say(">", &format!("{name} in #{short}: {}", clip(&body, 100)));
            }
        });
    }
}

/// The chat line with its @mention pointed at a demo user; a line without one gets one
/// in front when `add` says so.
fn with_mention(line: &str, who: Option<&str>, add: bool) -> String {
    let Some(who) = who else { return line.to_owned() };
    if line.contains('@') {
        return line
            .split(' ')
            .map(|w| match w.strip_prefix('@') {
                Some(rest) => {
                    let tail: String = rest.chars().skip_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                    format!("@{who}{tail}")
                }
                None => w.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" ");
    }
    if add { format!("@{who} {line}") } else { line.to_owned() }
}

fn likes(n: u64) -> String {
    if n == 1 { "1 like".into() } else { format!("{n} likes") }
}

/// `Links of the day` → `links-of-the-day`.
fn slugify(name: &str) -> String {
    let words: Vec<String> = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    words.join("-")
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_owned() } else { format!("{}…", s.chars().take(max - 1).collect::<String>()) }
}

/// One user's socket: joins every room, sends the pushes it is given, prints refusals,
/// heartbeats; on `stop` leaves every room and closes.
async fn room_socket(
    endpoint: Endpoint,
    token: String,
    name: String,
    topics: Vec<String>,
    mut pushes: mpsc::UnboundedReceiver<Push>,
    counts: Arc<Counts>,
    stop: CancellationToken,
) {
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let mut socket = match endpoint.connect(None, Some(&token), deadline).await {
        Ok(socket) => socket,
        Err(e) => {
            counts.errors.fetch_add(1, Ordering::Relaxed);
            say("!", &format!("{name}: socket could not connect: {e}"));
            return;
        }
    };
    // join_ref of topic i is i + 1; push refs count on from there.
    let join_refs: HashMap<&str, String> =
        topics.iter().enumerate().map(|(i, t)| (t.as_str(), (i + 1).to_string())).collect();
    let mut pending: HashMap<String, String> = HashMap::new();
    for (topic, r) in topics.iter().map(|t| (t, &join_refs[t.as_str()])) {
        if let Err(e) = socket.join(topic, r, &json!({}), deadline, &mut |_, _| {}).await {
            counts.errors.fetch_add(1, Ordering::Relaxed);
            say("!", &format!("{name} joining {topic}: {e}"));
        }
    }
    let mut next_ref = topics.len() as u64 + 1;
    loop {
        let mut next: Option<Push> = None;
        let ended = {
            let wake = async {
                tokio::select! {
                    () = stop.cancelled() => {}
                    push = pushes.recv() => next = push,
                }
            };
            tokio::pin!(wake);
            let mut on_frame = |text: &str, _| {
                on_frame(text, &mut pending, &counts);
                Flow::Continue
            };
            socket.read(wake.as_mut(), None, &mut on_frame).await
        };
        if let Ended::Failed(f) = ended {
            if !stop.is_cancelled() {
                counts.errors.fetch_add(1, Ordering::Relaxed);
                say("!", &format!("{name}: the server closed the socket ({f})"));
            }
            return;
        }
        let Some(push) = next else { break };
        let r = next_ref.to_string();
        next_ref += 1;
        let join_ref = join_refs.get(push.topic.as_str()).map_or("0", String::as_str);
        pending.insert(r.clone(), push.what);
        if socket.push(&push.topic, join_ref, &r, push.event, &push.payload).await.is_err() {
            counts.errors.fetch_add(1, Ordering::Relaxed);
            say("!", &format!("{name}: socket send failed"));
            return;
        }
    }
    // Leave every room, wait (briefly) for the replies, then close.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    for topic in &topics {
        let r = next_ref.to_string();
        next_ref += 1;
        let join_ref = join_refs.get(topic.as_str()).map_or("0", String::as_str);
        if socket.push(topic, join_ref, &r, events::LEAVE, &json!({})).await.is_err()
            || socket.reply(&r, deadline, &mut |_, _| {}).await.is_err()
        {
            break;
        }
    }
    socket.close().await;
}

/// A frame on a user's socket: refusals of its pushes are printed and counted.
fn on_frame(text: &str, pending: &mut HashMap<String, String>, counts: &Counts) {
    let Ok(frame) = wire::decode_text(Vsn::V2, text) else { return };
    if frame.event != events::REPLY {
        return;
    }
    let Some(r) = frame.msg_ref.as_deref() else { return };
    let Some(what) = pending.remove(r) else { return };
    let Some(Ok(Err(reason))) = crate::phoenix::reply_to(text, r) else { return };
    counts.errors.fetch_add(1, Ordering::Relaxed);
    if reason == "rate_limited" {
        counts.rate_limited.fetch_add(1, Ordering::Relaxed);
        let wait = frame.payload_as::<Value>().ok().and_then(|p| p["response"]["retry_after_ms"].as_u64()).unwrap_or(0);
        say("!", &format!("{what}: rate_limited (retry in {wait} ms)"));
    } else {
        say("!", &format!("{what}: {reason}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_point_at_demo_users() {
        assert_eq!(with_mention("@electric_wizard told you so", Some("bob_1a2b"), false), "@bob_1a2b told you so");
        assert_eq!(with_mention("Thanks @dejon_the_owl, learned", Some("amy_1"), false), "Thanks @amy_1, learned");
        assert_eq!(with_mention("nice", Some("amy_1"), true), "@amy_1 nice");
        assert_eq!(with_mention("nice", Some("amy_1"), false), "nice");
    }

    #[test]
    fn the_shipped_demo_scenario_gives_human_rates() {
        let path = Scenario::find("demo").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let r = DemoRates::from_toml(&text, "demo.toml").unwrap();
        assert!(r.bookmark > 0.0 && r.bookmark <= 1.0, "{r:?}");
        assert!(r.like > 0.0 && r.message > 0.0 && r.rooms >= 1, "{r:?}");
        // The scenario loader accepts it too (every key is one the format knows).
        Scenario::load(&path).unwrap();
    }

    #[test]
    fn speed_multiplies_rates_and_adds_users_under_the_limits() {
        let args = |speed: f64| DemoArgs { target: None, speed, scenario: None, users: None, seed: None };
        let (slow, base) = DemoRates::resolve(&args(1.0)).unwrap();
        assert_eq!(base, DEFAULT_TARGET);
        assert_eq!(slow.users, 6);
        let (fast, _) = DemoRates::resolve(&args(40.0)).unwrap();
        assert!((fast.message - slow.message * 40.0).abs() < 1e-9);
        assert!(fast.message / f64::from(fast.users) <= LIMIT_MESSAGES * HEADROOM + 1e-9, "{fast:?}");
        assert!(DemoRates::resolve(&args(0.0)).is_err());
        let bad = DemoRates::from_toml("[actions.like]\nrate = -1\n", "x.toml").unwrap_err();
        assert!(bad.to_string().contains("actions.like.rate"), "{bad}");
    }
}
