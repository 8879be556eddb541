//! The client side of the WebSocket upgrade (RFC 6455 §4.1), done here rather than by
//! `tokio_tungstenite::client_async` for memory: tungstenite's handshake reads the
//! response into a 4 KiB buffer and hands that very allocation on as the socket's read
//! buffer for its whole life, whatever `read_buffer_size` says. Reading the response
//! here with a stack buffer leaves the socket with the configured small read buffer
//! (which still grows for a bigger frame). Key generation and the accept check are
//! tungstenite's own; `httparse` parses the response.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};
use tokio_tungstenite::tungstenite::protocol::Role;

use super::Failure;
use super::stream::Stream;
use super::{Ws, ws_config};

/// A response head longer than this is refused.
const MAX_HEAD: usize = 16 * 1024;

/// Upgrades `tcp` (connected to `host`, e.g. `127.0.0.1:4000`) to a WebSocket at
/// `path` (path and query, e.g. `/socket/websocket?vsn=2.0.0`) with [`ws_config`],
/// offering `protocols` (`Sec-WebSocket-Protocol`) when given.
pub async fn upgrade(mut tcp: Stream, host: &str, path: &str, protocols: Option<&str>) -> Result<Ws, Failure> {
    let key = generate_key();
    let protocols = protocols.map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n")).unwrap_or_default();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n{protocols}\r\n"
    );
    tcp.write_all(request.as_bytes()).await.map_err(|e| Failure::from_io(&e))?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    let end = loop {
        let n = tcp.read(&mut chunk).await.map_err(|e| Failure::from_io(&e))?;
        if n == 0 {
            return Err(Failure::Eof);
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if head.len() > MAX_HEAD {
            return Err(Failure::UpgradeProtocol("response head too long"));
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(&head[..end]) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(Failure::UpgradeProtocol("unparsable response head")),
    }
    let status = response.code.unwrap_or(0);
    if status != 101 {
        return Err(Failure::UpgradeStatus(status));
    }
    let header = |name: &str| response.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value);
    if !header("Upgrade").is_some_and(|v| v.eq_ignore_ascii_case(b"websocket")) {
        return Err(Failure::UpgradeProtocol("no `Upgrade: websocket`"));
    }
    if header("Sec-WebSocket-Accept") != Some(derive_accept_key(key.as_bytes()).as_bytes()) {
        return Err(Failure::UpgradeProtocol("wrong Sec-WebSocket-Accept"));
    }
    // Frames the server sent right behind the head; a fresh, exact-size allocation, so
    // the socket's read buffer starts at the configured size.
    let tail = head[end..].to_vec();
    Ok(WebSocketStream::from_partially_read(tcp, tail, Role::Client, Some(ws_config())).await)
}
