//! The server's connections below the router: the accept loop, which never stops when
//! descriptors run out (it backs off, keeps trying and counts the failures); one task
//! per HTTP connection with a deadline for its request heads (`serve.rs`); the guard
//! that cuts off request bodies that trickle in (`body.rs`); and the cap on open
//! WebSockets, by default what the process's open-file limit allows (`slots.rs`).
//!
//! One descriptor per connection is the budget that runs out first under abuse: a
//! client that opens connections and sends nothing, or drips bytes, holds descriptors
//! without doing work. So every connection must finish its request head within
//! `ConnectionsConfig::header_timeout` (the first one counted from the accept, later ones
//! on a kept-alive connection from the previous response), a body must keep up a
//! minimum rate, and long-lived connections (WebSockets) are capped below the file
//! limit, leaving a reserve for the database, uploads and plain requests.

mod body;
mod serve;
mod slots;

pub use body::{BodyTooSlow, pace_bodies};
pub use serve::serve;
pub use slots::{SocketSlot, SocketSlots};

/// Connections the kernel may hold completed but not yet accepted, by default (Linux
/// caps it at `net.core.somaxconn`, 4096 on current kernels). tokio's `bind` asks for
/// 1,024: half a second of a 2,000/s connect burst, after which the kernel drops
/// handshakes and clients wait out SYN retransmits (1 s, 3 s, 7 s…).
pub const DEFAULT_LISTEN_BACKLOG: u32 = 4096;

/// Binds the server's listening socket at `addr` with room for `backlog` connections
/// waiting to be accepted (`SO_REUSEADDR`, so a restart does not wait for TIME_WAIT).
pub fn bind(addr: std::net::SocketAddr, backlog: u32) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Used when the open-file limit cannot be read.
const FALLBACK_MAX_CONNECTIONS: usize = 100_000;

/// The soft limit on open files (RLIMIT_NOFILE) from `/proc/self/limits`; `None` when
/// unlimited or unreadable.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files_limit(&limits)
}

fn parse_open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// Descriptors kept back from WebSockets under an open-file limit of `limit`: SQLite's
/// connections (a few files each), uploads being written, plain HTTP requests, the
/// listener and the runtime's own. A quarter of a small limit, never more than 256, so
/// a 20,000 limit still holds 19,744 sockets.
pub fn descriptor_reserve(limit: u64) -> u64 {
    (limit / 4).min(256)
}

/// The WebSocket cap for an open-file limit (`None`: unknown, a large fallback).
pub fn default_max_connections(limit: Option<u64>) -> usize {
    match limit {
        Some(limit) => usize::try_from(limit - descriptor_reserve(limit)).unwrap_or(usize::MAX),
        None => FALLBACK_MAX_CONNECTIONS,
    }
}

/// The cap in effect: the configured one, or the default for this process's file
/// limit; logged once at start either way.
pub fn resolve_max_connections(configured: Option<usize>) -> usize {
    let limit = open_files_limit();
    let max = configured.unwrap_or_else(|| default_max_connections(limit));
    let reserve = limit.map(descriptor_reserve);
    match (configured, limit) {
        (Some(max), Some(limit)) if max as u64 > limit => tracing::warn!(
            max_connections = max,
            open_files_limit = limit,
            "--max-connections is above the open-file limit: descriptors run out before the cap is reached"
        ),
        (Some(_), _) => tracing::info!(max_connections = max, open_files_limit = ?limit, "WebSocket cap (configured)"),
        (None, _) => tracing::info!(
            max_connections = max,
            open_files_limit = ?limit,
            reserve = ?reserve,
            "WebSocket cap from the open-file limit minus a reserve"
        ),
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connections to a listener that accepts nothing yet: how many the kernel completes.
    async fn completed_without_accept(backlog: u32, clients: usize) -> usize {
        let listener = bind("127.0.0.1:0".parse().unwrap(), backlog).unwrap();
        let addr = listener.local_addr().unwrap();
        // All at once, each given 300 ms (a dropped handshake would wait for a SYN
        // retransmit, a second or more).
        let mut connects = tokio::task::JoinSet::new();
        for _ in 0..clients {
            connects.spawn(tokio::time::timeout(
                std::time::Duration::from_millis(300),
                tokio::net::TcpStream::connect(addr),
            ));
        }
        let mut held = Vec::new();
        while let Some(done) = connects.join_next().await {
            if let Ok(Ok(Ok(stream))) = done {
                held.push(stream);
            }
        }
        let completed = held.len();
        drop(listener);
        completed
    }

    /// The backlog asked for is the one the kernel keeps: a burst that a small backlog
    /// drops (clients left waiting on SYN retransmits) waits whole in a large one.
    #[tokio::test]
    async fn the_listen_backlog_holds_a_burst_until_it_is_accepted() {
        assert_eq!(completed_without_accept(64, 40).await, 40);
        let small = completed_without_accept(4, 40).await;
        assert!(small < 40, "a backlog of 4 held all 40 connections");
    }

    #[test]
    fn open_files_limit_is_read_from_proc_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_open_files_limit(limits), Some(1024));
        assert_eq!(parse_open_files_limit("Max open files unlimited unlimited files"), None);
        assert_eq!(parse_open_files_limit(""), None);
    }

    #[test]
    fn the_default_cap_leaves_a_reserve_of_descriptors() {
        assert_eq!(default_max_connections(Some(256)), 192);
        assert_eq!(default_max_connections(Some(1024)), 768);
        assert_eq!(default_max_connections(Some(20_000)), 19_744);
        assert_eq!(default_max_connections(Some(3)), 3);
        assert_eq!(default_max_connections(None), FALLBACK_MAX_CONNECTIONS);
    }
}
