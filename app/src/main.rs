//! The `firehose` binary: parses flags, sets up logging, runs the server until SIGINT
//! or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use firehose_app::config::Config;
use firehose_app::ratelimit::Rate;
use tokio::net::TcpListener;

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
    /// Database URL (default: sqlite file in the data dir).
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
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
}

/// A per-user limit from the command line: a rate, or `None` for `off`.
#[derive(Clone, Copy)]
struct Limit(Option<Rate>);

fn parse_limit(s: &str) -> Result<Limit, String> {
    firehose_app::ratelimit::parse_limit(s).map(Limit)
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
    config.socket.idle_timeout = Duration::from_secs(args.idle_timeout_secs.max(1));
    config.socket.outbox_capacity = args.outbox as usize;
    config.socket.max_channels = args.max_channels;
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
    ] {
        if let Some(Limit(rate)) = arg {
            *limit = rate;
        }
    }
    let listener = TcpListener::bind(args.bind).await.with_context(|| format!("cannot bind {}", args.bind))?;
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
