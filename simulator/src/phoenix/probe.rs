//! Before anything is seeded or measured: is the target a Phoenix Channels endpoint?
//! One WebSocket to the profile's socket path, one `heartbeat`, and its `phx_reply`.
//! A refused or unresolvable connection is "unreachable" (exit 4); an HTTP answer that
//! is no WebSocket upgrade (404 on the socket path, a plain web server), a WebSocket
//! that answers something other than a Phoenix V2 frame, closes, or never replies is
//! "not a Phoenix Channels endpoint" (exit 7), each with what was seen instead.

use std::net::SocketAddr;
use std::time::Duration;

use firehose_app::wire::{self, Vsn, events};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::client_async_with_config;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::engine::error::SimError;
use crate::phoenix::{self, ws_config};

/// Connect, upgrade and the heartbeat's reply must all come within this.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks that `ws_url` (on `addr`) is a Phoenix Channels V2 socket.
pub async fn phoenix(addr: SocketAddr, ws_url: &str) -> Result<(), SimError> {
    phoenix_within(addr, ws_url, PROBE_TIMEOUT).await
}

/// As [`phoenix`], with the time allowed given.
pub async fn phoenix_within(addr: SocketAddr, ws_url: &str, allowed: Duration) -> Result<(), SimError> {
    let deadline = Instant::now() + allowed;
    let path = ws_url.split_once(&addr.to_string()).map_or(ws_url, |(_, p)| p);
    let not_phoenix = |why: String| SimError::NotPhoenix(format!("{addr}{path}: {why}"));
    let tcp = match timeout_at(deadline, TcpStream::connect(addr)).await {
        Err(_) => return Err(SimError::Unreachable(format!("{addr}: no TCP connection within {allowed:?}"))),
        Ok(Err(e)) => return Err(SimError::Unreachable(format!("{addr}: {e}"))),
        Ok(Ok(tcp)) => tcp,
    };
    let _ = tcp.set_nodelay(true);
    let mut ws = match timeout_at(deadline, client_async_with_config(ws_url, tcp, Some(ws_config()))).await {
        Err(_) => return Err(not_phoenix(format!("no answer to the WebSocket upgrade within {allowed:?}"))),
        Ok(Err(tungstenite::Error::Http(resp))) => {
            let status = resp.status();
            return Err(not_phoenix(format!(
                "the upgrade was answered HTTP {status} instead of 101 Switching Protocols"
            )));
        }
        Ok(Err(e)) => return Err(not_phoenix(format!("no WebSocket upgrade: {e}"))),
        Ok(Ok((ws, _))) => ws,
    };
    if let Err(e) = ws.send(Message::text(phoenix::heartbeat_frame("1"))).await {
        return Err(not_phoenix(format!("the WebSocket failed on the first frame sent: {e}")));
    }
    let answer = loop {
        let msg = match timeout_at(deadline, ws.next()).await {
            Err(_) => break Err(format!("no phx_reply to a heartbeat within {allowed:?}")),
            Ok(None) | Ok(Some(Ok(Message::Close(_)))) => {
                break Err("the WebSocket closed instead of answering a heartbeat".into());
            }
            Ok(Some(Err(e))) => break Err(format!("the WebSocket failed before answering a heartbeat: {e}")),
            Ok(Some(Ok(msg))) => msg,
        };
        let text = match msg {
            Message::Text(text) => text,
            Message::Binary(_) => break Err("a binary frame came where a Phoenix V2 text frame was expected".into()),
            _ => continue,
        };
        let Ok(frame) = wire::decode_text(Vsn::V2, text.as_str()) else {
            let shown: String = text.as_str().chars().take(60).collect();
            break Err(format!("the WebSocket answered {shown:?}, which is not a Phoenix V2 frame"));
        };
        if frame.event == events::REPLY && frame.msg_ref.as_deref() == Some("1") {
            break Ok(());
        }
    };
    let _ = timeout_at(Instant::now() + Duration::from_millis(200), ws.close(None)).await;
    answer.map_err(not_phoenix)
}
