//! Server configuration: where data lives and the limits of the socket layer. Built
//! from the CLI/env in `main.rs`, or with `Config::for_data_dir` by tests and the
//! simulator's embedded target.

use std::path::PathBuf;
use std::time::Duration;

use crate::ratelimit::Rate;

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory for the SQLite file (and later uploads).
    pub data_dir: PathBuf,
    /// `sqlite://…` URL; `None` means `<data_dir>/firehose.db`.
    pub database_url: Option<String>,
    /// How many recent public bookmarks the in-memory cache keeps.
    pub cache_capacity: usize,
    /// Writes (bookmarks, likes, chat messages) queued for the store's writer before
    /// new ones are refused with 503 and `Retry-After` (`--write-queue`).
    pub write_queue: usize,
    /// Largest accepted JSON request body.
    pub max_body_bytes: usize,
    /// Largest accepted uploaded file (`POST /api/uploads`), checked while it streams in.
    pub max_upload_bytes: usize,
    pub socket: SocketConfig,
    /// Per-topic history kept for recovery after a reconnect (`since` on join).
    pub history: crate::pubsub::HistoryLimits,
    /// Enables `debug:*` topics whose `crash` event panics inside the channel handler,
    /// so the channel-failure path (`phx_error`) can be exercised, and the `debug_crash`
    /// event on `room:<slug>`, which makes that room's actor panic. Off by default.
    pub debug_topics: bool,
    pub accounts: AccountsConfig,
    /// Per-user budgets for messages, likes, bookmark creation and typing.
    pub limits: RateLimits,
    /// Page readers (`page:<path>`): diff/count throttle interval and queue bound.
    pub readers: crate::readers::ReadersConfig,
    /// Chat room actors: idle timeout, typing timeout, queue bound.
    pub chat: crate::chat::ChatConfig,
}

/// Per-user token buckets (keyed by user id), one per kind of action; `None` turns that
/// limit off. Applied through `AppState::limits` (see `crate::ratelimit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Chat messages. Default 10 per 10 s.
    pub messages: Option<Rate>,
    /// Likes and unlikes. Default 30 per 10 s.
    pub likes: Option<Rate>,
    /// Bookmark creation. Default 10 per 10 s.
    pub bookmarks: Option<Rate>,
    /// `typing` pushes. Default 30 per 10 s.
    pub typing: Option<Rate>,
    /// Users whose buckets are remembered at once, per action (memory bound).
    pub max_keys: usize,
}

impl Default for RateLimits {
    fn default() -> Self {
        let per_10s = |n| Some(Rate::new(n, Duration::from_secs(10)));
        Self {
            messages: per_10s(10),
            likes: per_10s(30),
            bookmarks: per_10s(10),
            typing: per_10s(30),
            max_keys: 100_000,
        }
    }
}

impl RateLimits {
    /// Every per-user limit off (load generators, tests that are not about limits).
    pub fn off() -> Self {
        Self { messages: None, likes: None, bookmarks: None, typing: None, ..Self::default() }
    }
}

/// Sign-in settings.
#[derive(Debug, Clone)]
pub struct AccountsConfig {
    /// Mark the session cookie `Secure` (set when served over HTTPS; a `Secure` cookie
    /// is never sent over plain HTTP, so this is off for local runs).
    pub secure_cookie: bool,
    /// How long a browser session lasts after login.
    pub session_ttl: Duration,
    /// Attempts at login, registration and password change per client IP.
    pub auth_rate: Rate,
    /// Client IPs whose buckets are remembered at once (memory bound of the limiter).
    pub auth_rate_max_keys: usize,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            secure_cookie: false,
            session_ttl: Duration::from_secs(60 * 24 * 3600),
            auth_rate: Rate::new(10, Duration::from_secs(60)),
            auth_rate_max_keys: 100_000,
        }
    }
}

/// Limits and timings of the Phoenix socket layer.
#[derive(Debug, Clone)]
pub struct SocketConfig {
    /// Frames queued for one socket before it counts as a slow consumer and is closed.
    pub outbox_capacity: usize,
    /// Frames written per flush when the outbox has a backlog.
    pub coalesce_frames: usize,
    /// Channels one socket may join (Phoenix's `max_channels_per_transport`).
    pub max_channels: usize,
    /// Close a socket that sent nothing for this long.
    pub idle_timeout: Duration,
    /// A socket whose peer accepts no bytes for this long is dropped.
    pub write_timeout: Duration,
    /// Largest accepted incoming WebSocket message.
    pub max_message_bytes: usize,
    /// Per-socket read buffer (tungstenite's default of 128 KiB is far too big for
    /// tens of thousands of mostly idle sockets).
    pub read_buffer_bytes: usize,
    /// Per-socket write buffer before a flush is forced.
    pub write_buffer_bytes: usize,
    /// Refuse new sockets (HTTP 429) past this many open ones.
    pub max_sockets: usize,
    /// On shutdown, sockets close in this many batches spread over `drain_window`.
    pub drain_batches: u32,
    pub drain_window: Duration,
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            outbox_capacity: 1024,
            coalesce_frames: 32,
            max_channels: 100,
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            max_message_bytes: 64 * 1024,
            read_buffer_bytes: 512,
            write_buffer_bytes: 4 * 1024,
            max_sockets: 100_000,
            drain_batches: 10,
            drain_window: Duration::from_millis(500),
        }
    }
}

impl Config {
    /// Defaults with the database in `data_dir`.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database_url: None,
            cache_capacity: 10_000,
            write_queue: crate::store::DEFAULT_WRITE_QUEUE,
            max_body_bytes: 64 * 1024,
            max_upload_bytes: 10 * 1024 * 1024,
            socket: SocketConfig::default(),
            history: crate::pubsub::HistoryLimits::default(),
            debug_topics: false,
            accounts: AccountsConfig::default(),
            limits: RateLimits::default(),
            readers: crate::readers::ReadersConfig::default(),
            chat: crate::chat::ChatConfig::default(),
        }
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("firehose.db").display()),
        }
    }
}
