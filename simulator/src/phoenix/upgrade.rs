//! The client side of the WebSocket upgrade (RFC 6455 §4.1), done here rather than by
//! `tokio_tungstenite::client_async` for memory: tungstenite's handshake reads the
//! response into a 4 KiB buffer and hands that very allocation on as the socket's read
//! buffer for its whole life, whatever `read_buffer_size` says. Reading the response
//! here with a stack buffer leaves the socket with the configured small read buffer
//! (which still grows for a bigger frame). Key generation and the accept check are
//! tungstenite's own; `httparse` parses the response.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};
use tokio_tungstenite::tungstenite::protocol::Role;

use super::{Socket, ws_config};

/// A response head longer than this is refused.
const MAX_HEAD: usize = 16 * 1024;

/// Why an upgrade failed.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("HTTP {0} instead of 101 Switching Protocols")]
    Http(u16),
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("not a WebSocket upgrade: {0}")]
    Protocol(&'static str),
}

impl UpgradeError {
    /// The failure kind the reports use (`upgrade_` + this): `http_<status>`,
    /// `io_<kind>`, `protocol`.
    pub fn kind(&self) -> String {
        match self {
            UpgradeError::Http(status) => format!("http_{status}"),
            UpgradeError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => "closed".into(),
            UpgradeError::Io(e) => format!("io_{:?}", e.kind()).to_lowercase(),
            UpgradeError::Protocol(_) => "protocol".into(),
        }
    }
}

/// Upgrades `tcp` to a WebSocket at `ws_url` (`ws://host:port/path?query`).
pub async fn upgrade_url(tcp: TcpStream, ws_url: &str) -> Result<Socket, UpgradeError> {
    let rest = ws_url.strip_prefix("ws://").ok_or(UpgradeError::Protocol("not a ws:// URL"))?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    upgrade(tcp, host, if path.is_empty() { "/" } else { path }).await
}

/// Upgrades `tcp` (connected to `host`, e.g. `127.0.0.1:4000`) to a WebSocket at
/// `path` (path and query, e.g. `/socket/websocket?vsn=2.0.0`) with [`ws_config`].
pub async fn upgrade(mut tcp: TcpStream, host: &str, path: &str) -> Result<Socket, UpgradeError> {
    let key = generate_key();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    let end = loop {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if head.len() > MAX_HEAD {
            return Err(UpgradeError::Protocol("response head too long"));
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(&head[..end]) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(UpgradeError::Protocol("unparsable response head")),
    }
    let status = response.code.unwrap_or(0);
    if status != 101 {
        return Err(UpgradeError::Http(status));
    }
    let header = |name: &str| response.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value);
    if !header("Upgrade").is_some_and(|v| v.eq_ignore_ascii_case(b"websocket")) {
        return Err(UpgradeError::Protocol("no `Upgrade: websocket`"));
    }
    if header("Sec-WebSocket-Accept") != Some(derive_accept_key(key.as_bytes()).as_bytes()) {
        return Err(UpgradeError::Protocol("wrong Sec-WebSocket-Accept"));
    }
    // Frames the server sent right behind the head; a fresh, exact-size allocation, so
    // the socket's read buffer starts at the configured size.
    let tail = head[end..].to_vec();
    Ok(WebSocketStream::from_partially_read(tcp, tail, Role::Client, Some(ws_config())).await)
}
