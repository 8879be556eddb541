//! Server configuration: where data lives and the limits of the socket layer. Built
//! from the CLI/env in `main.rs`, or with `Config::for_data_dir` by tests and the
//! simulator's embedded target.

use std::path::PathBuf;
use std::time::Duration;

use crate::ratelimit::{Rate, RateLimits};

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory for the SQLite file (and later uploads).
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…` URL; `None` means `<data_dir>/firehose.db`.
    pub database_url: Option<String>,
    /// Where upload files live when not in the data dir: a directory the nodes of a
    /// cluster share, so an upload made on one is served by every other.
    pub uploads_dir: Option<PathBuf>,
    /// The broker that makes this node one of a cluster (`--pubsub-url`); `None`: the
    /// in-process pub/sub, alone.
    pub broker: Option<crate::broker::BrokerConfig>,
    /// How many recent public bookmarks the in-memory cache keeps.
    pub cache_capacity: usize,
    /// Writes (bookmarks, likes, chat messages) queued for the store's writer before
    /// new ones are refused with 503 and `Retry-After` (`--write-queue`).
    pub write_queue: usize,
    /// Largest accepted JSON request body.
    pub max_body_bytes: usize,
    /// Largest accepted uploaded file (`POST /api/uploads`), checked while it streams in.
    pub max_upload_bytes: usize,
    /// Bytes of uploads one user may have stored in all (`None`: no quota). Default
    /// 100 MiB. The per-hour budgets for uploads are in `limits`.
    pub upload_quota_bytes: Option<u64>,
    pub socket: SocketConfig,
    /// Per-topic history kept for recovery after a reconnect (`since` on join).
    pub history: crate::pubsub::HistoryLimits,
    /// Enables `debug:*` topics whose `crash` event panics inside the channel handler,
    /// so the channel-failure path (`phx_error`) can be exercised, and the `debug_crash`
    /// event on `room:<slug>`, which makes that room's actor panic. Off by default.
    pub debug_topics: bool,
    pub accounts: AccountsConfig,
    /// Budgets: per user for messages, likes, bookmark creation, typing and uploads;
    /// per client IP for sign-ups (`crate::ratelimit::RateLimits`).
    pub limits: RateLimits,
    /// Page readers (`page:<path>`): diff/count throttle interval and queue bound.
    pub readers: crate::readers::ReadersConfig,
    /// Chat room actors: idle timeout, typing timeout, queue bound.
    pub chat: crate::chat::ChatConfig,
    /// Connection-level limits: request-head and body deadlines, the WebSocket cap.
    pub connections: ConnectionsConfig,
    /// What anonymous clients (no token, no session) may do.
    pub anonymous: AnonymousLimits,
}

/// Limits below the router (see `crate::connections`).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionsConfig {
    /// A connection that has not sent a complete request head this long after it was
    /// accepted (or after its previous response, when kept alive) is closed.
    pub header_timeout: Duration,
    /// A request body must arrive at this many bytes per second on average, after a
    /// grace of `header_timeout`; else 408 and the connection closes. 0: no minimum.
    pub body_min_rate: u32,
    /// Open WebSockets at most; upgrades past it get 503. `None`: what the process's
    /// open-file limit allows, minus a reserve (`connections::default_max_connections`).
    pub max_connections: Option<usize>,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        Self { header_timeout: Duration::from_secs(10), body_min_rate: 1024, max_connections: None }
    }
}

/// Budgets of anonymous clients, which have no user id to key a per-user limit by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnonymousLimits {
    /// Channels one anonymous socket may join (signed-in sockets: `SocketConfig::max_channels`).
    pub max_channels: usize,
    /// Per anonymous socket: costly pushes (`history` on a room, `page:` joins).
    pub costly_pushes: Option<Rate>,
    /// Per client IP: anonymous searches (`GET /api/search`, the `/search` page).
    pub search: Option<Rate>,
    /// Client IPs whose search buckets are remembered at once.
    pub search_max_keys: usize,
}

impl Default for AnonymousLimits {
    fn default() -> Self {
        Self {
            max_channels: 10,
            costly_pushes: Some(Rate::new(20, Duration::from_secs(10))),
            search: Some(Rate::new(30, Duration::from_secs(60))),
            search_max_keys: 100_000,
        }
    }
}

/// The default `Config::upload_quota_bytes`: 100 MiB per user.
pub const DEFAULT_UPLOAD_QUOTA_BYTES: u64 = 100 * 1024 * 1024;

/// A size from the command line: bytes (`1048576`), or with a unit — `KiB`, `MiB`,
/// `GiB` (also `K`, `M`, `G`) are powers of 1024, `KB`, `MB`, `GB` powers of 1000; the
/// unit is case-insensitive and may follow a space. `off` is `None`.
pub fn parse_size(s: &str) -> Result<Option<u64>, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let bad = || format!("invalid size {s:?}: expected bytes or N with KiB, MiB, GiB, KB, MB or GB (or off)");
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(bad()),
    };
    let bytes = n.checked_mul(multiplier).ok_or_else(|| format!("invalid size {s:?}: too large"))?;
    if bytes == 0 {
        return Err(format!("invalid size {s:?}: must be more than zero (use off to disable)"));
    }
    Ok(Some(bytes))
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
    /// How long a resolved token is trusted without reading the database again
    /// (`accounts::TokenCache`; zero turns the cache off). Revocations on this server
    /// evict at once; this bounds how late one made elsewhere is seen.
    pub token_cache_ttl: Duration,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            secure_cookie: false,
            session_ttl: Duration::from_secs(60 * 24 * 3600),
            auth_rate: Rate::new(10, Duration::from_secs(60)),
            auth_rate_max_keys: 100_000,
            token_cache_ttl: crate::accounts::TOKEN_CACHE_TTL,
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
            uploads_dir: None,
            broker: None,
            cache_capacity: 10_000,
            write_queue: crate::store::DEFAULT_WRITE_QUEUE,
            max_body_bytes: 64 * 1024,
            max_upload_bytes: 10 * 1024 * 1024,
            upload_quota_bytes: Some(DEFAULT_UPLOAD_QUOTA_BYTES),
            socket: SocketConfig::default(),
            history: crate::pubsub::HistoryLimits::default(),
            debug_topics: false,
            accounts: AccountsConfig::default(),
            limits: RateLimits::default(),
            readers: crate::readers::ReadersConfig::default(),
            chat: crate::chat::ChatConfig::default(),
            connections: ConnectionsConfig::default(),
            anonymous: AnonymousLimits::default(),
        }
    }

    /// The database URL in effect.
    /// The directory upload files go under: `--uploads-dir`, else the data dir.
    pub fn uploads_root(&self) -> &std::path::Path {
        self.uploads_dir.as_deref().unwrap_or(&self.data_dir)
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("firehose.db").display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("1048576"), Ok(Some(1 << 20)));
        assert_eq!(parse_size("100MiB"), Ok(Some(100 << 20)));
        assert_eq!(parse_size("100 mib"), Ok(Some(100 << 20)));
        assert_eq!(parse_size("2G"), Ok(Some(2 << 30)));
        assert_eq!(parse_size("5kb"), Ok(Some(5_000)));
        assert_eq!(parse_size("3MB"), Ok(Some(3_000_000)));
        assert_eq!(parse_size("OFF"), Ok(None));
        for bad in ["", "MiB", "0", "0MiB", "1.5MiB", "-1", "10 parsecs", "99999999999999999999GiB"] {
            assert!(parse_size(bad).is_err(), "{bad:?} parsed");
        }
    }
}
