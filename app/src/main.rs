//! The `firehose` binary: parses flags, sets up logging, runs the server until SIGINT
//! or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use firehose_app::config::{Config, parse_size};
use firehose_app::ratelimit::Rate;

#[derive(Parser)]
#[command(name = "firehose", version, about = "A real-time social app speaking Phoenix Channels")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "FIREHOSE_BIND", default_value = "127.0.0.1:4000")]
    bind: SocketAddr,
    /// Directory for the SQLite database and uploads.
    #[arg(long, env = "FIREHOSE_DATA_DIR", default_value = "firehose-data")]
    data_dir: PathBuf,
    /// Where upload files live (default: the data dir). The nodes of a cluster share
    /// one, so an upload made on one node is served by every other.
    #[arg(long, env = "FIREHOSE_UPLOADS_DIR")]
    uploads_dir: Option<PathBuf>,
    /// Database URL (default: sqlite file in the data dir).
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// The broker between app nodes, `redis://host:port`: nodes on one database and one
    /// broker are one cluster (default: the in-process pub/sub, one node).
    #[arg(long, env = "FIREHOSE_PUBSUB_URL")]
    pubsub_url: Option<String>,
    /// Keeps clusters that share one broker apart (its keys and channel start with it).
    #[arg(long, env = "FIREHOSE_PUBSUB_NAMESPACE", default_value = "firehose")]
    pubsub_namespace: String,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "FIREHOSE_LOG", default_value = "info")]
    log: String,
    /// Close sockets that send nothing for this many seconds.
    #[arg(long, env = "FIREHOSE_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    idle_timeout_secs: u64,
    /// Frames queued per socket before it is closed as a slow consumer.
    #[arg(long, env = "FIREHOSE_OUTBOX", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(16..))]
    outbox: u32,
    /// Channels one socket may join.
    #[arg(long, env = "FIREHOSE_MAX_CHANNELS", default_value_t = 100)]
    max_channels: usize,
    /// Channels one anonymous socket (no token, no session) may join.
    #[arg(long, env = "FIREHOSE_ANON_MAX_CHANNELS", default_value_t = 10)]
    anon_max_channels: usize,
    /// Close a connection that has not sent a complete request head within this many
    /// seconds (after it was accepted, or after its previous response).
    #[arg(long, env = "FIREHOSE_HEADER_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout_secs: u64,
    /// Minimum average rate of a request body in bytes per second, after a grace of the
    /// header timeout (slower: 408 and the connection closes; 0: no minimum).
    #[arg(long, env = "FIREHOSE_BODY_MIN_RATE", default_value_t = 1024)]
    body_min_rate: u32,
    /// Connections completed by the kernel but not yet accepted (the listen backlog;
    /// Linux caps it at net.core.somaxconn). Past it, new handshakes are dropped and
    /// clients retry after seconds.
    #[arg(long, env = "FIREHOSE_LISTEN_BACKLOG", default_value_t = firehose_app::connections::DEFAULT_LISTEN_BACKLOG, value_parser = clap::value_parser!(u32).range(1..))]
    listen_backlog: u32,
    /// Open WebSockets at most; upgrades past it get 503 [default: the open-file limit
    /// minus a reserve of a quarter of it, at most 256].
    #[arg(long, env = "FIREHOSE_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,
    /// Enable `debug:*` topics (a `crash` event makes the channel fail), for testing.
    #[arg(long, env = "FIREHOSE_DEBUG_TOPICS")]
    debug_topics: bool,
    /// Stop a chat room's actor after this many seconds without a joined channel.
    #[arg(long, env = "FIREHOSE_ROOM_IDLE_SECS", default_value_t = 300)]
    room_idle_secs: u64,
    /// Page readers (`page:<path>`): at most one merged presence_diff and one count per
    /// page per this many milliseconds (0: every change at once).
    #[arg(long, env = "FIREHOSE_READERS_INTERVAL_MS", default_value_t = 1000)]
    readers_interval_ms: u64,
    /// Writes (bookmarks, likes, chat messages) queued for the database before new ones
    /// are refused with 503 and Retry-After.
    #[arg(long, env = "FIREHOSE_WRITE_QUEUE", default_value_t = firehose_app::store::DEFAULT_WRITE_QUEUE as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    write_queue: u32,
    /// Mark the session cookie `Secure` (when served over HTTPS).
    #[arg(long, env = "FIREHOSE_SECURE_COOKIE")]
    secure_cookie: bool,
    /// Per-user limit on chat messages: N/PERIOD (e.g. 10/10s, 30/1m) or `off` [default: 10/10s].
    #[arg(long, env = "FIREHOSE_RATE_MESSAGES", value_name = "RATE", value_parser = parse_limit)]
    rate_messages: Option<Limit>,
    /// Per-user limit on likes and unlikes: N/PERIOD or `off` [default: 30/10s].
    #[arg(long, env = "FIREHOSE_RATE_LIKES", value_name = "RATE", value_parser = parse_limit)]
    rate_likes: Option<Limit>,
    /// Per-user limit on bookmark creation: N/PERIOD or `off` [default: 10/10s].
    #[arg(long, env = "FIREHOSE_RATE_BOOKMARKS", value_name = "RATE", value_parser = parse_limit)]
    rate_bookmarks: Option<Limit>,
    /// Per-user limit on typing notifications: N/PERIOD or `off` [default: 30/10s].
    #[arg(long, env = "FIREHOSE_RATE_TYPING", value_name = "RATE", value_parser = parse_limit)]
    rate_typing: Option<Limit>,
    /// Per-client-IP limit on account creation (`POST /api/users`, registration):
    /// N/PERIOD or `off` (for load tests, which create many accounts) [default: 20/1m].
    #[arg(long, env = "FIREHOSE_RATE_SIGNUPS", value_name = "RATE", value_parser = parse_limit)]
    rate_signups: Option<Limit>,
    /// Per-user limit on uploads (files): N/PERIOD or `off` [default: 100/1h].
    #[arg(long, env = "FIREHOSE_RATE_UPLOADS", value_name = "RATE", value_parser = parse_limit)]
    rate_uploads: Option<Limit>,
    /// Per-user budget of uploaded bytes per hour: a size (200MiB, 1GiB, at most 4GiB)
    /// or `off` [default: 200MiB].
    #[arg(long, env = "FIREHOSE_UPLOAD_BYTES_PER_HOUR", value_name = "SIZE", value_parser = parse_bytes_per_hour)]
    upload_bytes_per_hour: Option<Limit>,
    /// Bytes of uploads one user may have stored in all: a size (100MiB, 1GiB) or `off`
    /// [default: 100MiB].
    #[arg(long, env = "FIREHOSE_UPLOAD_QUOTA", value_name = "SIZE", value_parser = parse_quota)]
    upload_quota: Option<Quota>,
    /// Per anonymous socket: `history` pushes and `page:` joins, N/PERIOD or `off`
    /// [default: 20/10s].
    #[arg(long, env = "FIREHOSE_RATE_ANON_COSTLY", value_name = "RATE", value_parser = parse_limit)]
    rate_anon_costly: Option<Limit>,
    /// Per client IP: anonymous searches, N/PERIOD or `off` [default: 30/1m].
    #[arg(long, env = "FIREHOSE_RATE_ANON_SEARCH", value_name = "RATE", value_parser = parse_limit)]
    rate_anon_search: Option<Limit>,
}

/// A limit from the command line: a rate, or `None` for `off`.
#[derive(Clone, Copy)]
struct Limit(Option<Rate>);

fn parse_limit(s: &str) -> Result<Limit, String> {
    firehose_app::ratelimit::parse_limit(s).map(Limit)
}

/// A size per hour as a rate whose tokens are bytes.
fn parse_bytes_per_hour(s: &str) -> Result<Limit, String> {
    let Some(bytes) = parse_size(s)? else { return Ok(Limit(None)) };
    let capacity = u32::try_from(bytes).map_err(|_| format!("{s:?} per hour is more than the 4GiB this allows"))?;
    Ok(Limit(Some(Rate::new(capacity, Duration::from_secs(3600)))))
}

/// A total size, or `None` for `off`.
#[derive(Clone, Copy)]
struct Quota(Option<u64>);

fn parse_quota(s: &str) -> Result<Quota, String> {
    parse_size(s).map(Quota)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Command::Serve(args) = Cli::parse().command;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log).context("invalid --log filter")?)
        .with_writer(std::io::stderr)
        .init();
    let mut config = Config::for_data_dir(&args.data_dir);
    config.database_url = args.database_url;
    config.uploads_dir = args.uploads_dir;
    config.broker =
        args.pubsub_url.map(|url| firehose_app::broker::BrokerConfig { url, namespace: args.pubsub_namespace.clone() });
    config.socket.idle_timeout = Duration::from_secs(args.idle_timeout_secs.max(1));
    config.socket.outbox_capacity = args.outbox as usize;
    config.socket.max_channels = args.max_channels;
    config.anonymous.max_channels = args.anon_max_channels;
    config.connections.header_timeout = Duration::from_secs(args.header_timeout_secs);
    config.connections.body_min_rate = args.body_min_rate;
    config.connections.max_connections = args.max_connections.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    config.debug_topics = args.debug_topics;
    config.chat.room_idle_timeout = Duration::from_secs(args.room_idle_secs.max(1));
    config.readers.interval = Duration::from_millis(args.readers_interval_ms);
    config.accounts.secure_cookie = args.secure_cookie;
    config.write_queue = args.write_queue as usize;
    let limits = &mut config.limits;
    for (arg, limit) in [
        (args.rate_messages, &mut limits.messages),
        (args.rate_likes, &mut limits.likes),
        (args.rate_bookmarks, &mut limits.bookmarks),
        (args.rate_typing, &mut limits.typing),
        (args.rate_signups, &mut limits.signups),
        (args.rate_uploads, &mut limits.uploads),
        (args.upload_bytes_per_hour, &mut limits.upload_bytes),
    ] {
        if let Some(Limit(rate)) = arg {
            *limit = rate;
        }
    }
    if let Some(Quota(quota)) = args.upload_quota {
        config.upload_quota_bytes = quota;
    }
    let anonymous = &mut config.anonymous;
    for (arg, limit) in
        [(args.rate_anon_costly, &mut anonymous.costly_pushes), (args.rate_anon_search, &mut anonymous.search)]
    {
        if let Some(Limit(rate)) = arg {
            *limit = rate;
        }
    }
    let listener = firehose_app::connections::bind(args.bind, args.listen_backlog)
        .with_context(|| format!("cannot bind {}", args.bind))?;
    let running = firehose_app::server::start(listener, config, shutdown_signal()).await?;
    println!("firehose listening on http://{}", running.addr);
    running.wait().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
