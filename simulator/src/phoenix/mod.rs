//! The Phoenix Channels V2 client pieces that `run` listeners and `rooms` members
//! share: timings, the socket config, the join and heartbeat frames, waiting for the
//! join reply, and checking a topic's `seq`.

use std::time::Duration;

use firehose_app::wire::{self, Vsn, events};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::time::timeout_at;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

pub mod probe;
mod upgrade;

pub use upgrade::{UpgradeError, upgrade, upgrade_url};

/// Phoenix clients heartbeat every 30 s; the server closes sockets idle for 60 s.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(30);
/// Connect, upgrade and join must finish within this.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(15);

pub type Socket = WebSocketStream<TcpStream>;

/// Opens a TCP connection to `addr`, bound first to `source` (port chosen by the
/// kernel) when given, so that one machine can hold more connections to one server than
/// the ephemeral ports of a single (source, destination) pair allow.
pub async fn connect(addr: std::net::SocketAddr, source: Option<std::net::Ipv4Addr>) -> std::io::Result<TcpStream> {
    let Some(ip) = source else { return TcpStream::connect(addr).await };
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.bind((ip, 0).into())?;
    socket.connect(addr).await
}

/// Initial read buffer of a client socket. tungstenite grows it to fit a bigger frame
/// (it reserves each frame's full length), so this only sets the resting size: most
/// Phoenix frames a listener gets (a bookmark event, a reply) are a few hundred bytes,
/// and the buffer is zero-filled to its capacity on the first read, so every byte here
/// is resident memory for every listener.
pub const READ_BUFFER: usize = 1024;

/// The client config: small buffers, since thousands of these live at once.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

#[derive(serde::Serialize)]
struct Empty {}

/// The `phx_join` frame for `topic` (join_ref and ref "1").
pub fn join_frame(topic: &str) -> String {
    wire::encode_text(Vsn::V2, Some("1"), Some("1"), topic, events::JOIN, &Empty {})
}

/// A `heartbeat` frame with ref `msg_ref`.
pub fn heartbeat_frame(msg_ref: &str) -> String {
    wire::encode_text(Vsn::V2, None, Some(msg_ref), events::PHOENIX_TOPIC, events::HEARTBEAT, &Empty {})
}

/// A `phx_reply` payload, borrowed.
#[derive(Deserialize)]
pub struct Reply<'a> {
    #[serde(borrow)]
    pub status: std::borrow::Cow<'a, str>,
    #[serde(default)]
    pub response: serde_json::Value,
}

/// Reads until the reply to ref "1"; `Err` names why there is none (or the reason).
/// A read error is named by `read_error`.
pub async fn await_join_reply(
    ws: &mut Socket,
    deadline: tokio::time::Instant,
    read_error: impl Fn(&tungstenite::Error) -> String,
) -> Result<(), String> {
    await_join_response(ws, deadline, read_error).await.map(drop)
}

/// As [`await_join_reply`], returning the `ok` reply's `response` (e.g. the recovery
/// position `{epoch, seq, missed}` of a join with `since`).
pub async fn await_join_response(
    ws: &mut Socket,
    deadline: tokio::time::Instant,
    read_error: impl Fn(&tungstenite::Error) -> String,
) -> Result<serde_json::Value, String> {
    loop {
        let msg = match timeout_at(deadline, ws.next()).await {
            Err(_) => return Err("join_timeout".into()),
            Ok(None) => return Err("closed_before_join".into()),
            Ok(Some(Err(e))) => return Err(read_error(&e)),
            Ok(Some(Ok(msg))) => msg,
        };
        let Message::Text(text) = msg else {
            if matches!(msg, Message::Close(_)) {
                return Err("closed_before_join".into());
            }
            continue;
        };
        let frame = wire::decode_text(Vsn::V2, text.as_str()).map_err(|_| "join_reply_undecodable".to_owned())?;
        if frame.event != events::REPLY || frame.msg_ref.as_deref() != Some("1") {
            continue;
        }
        let reply: Reply<'_> = frame.payload_as().map_err(|_| "join_reply_undecodable".to_owned())?;
        if reply.status == "ok" {
            return Ok(reply.response);
        }
        let reason = reply.response.get("reason").and_then(|r| r.as_str()).unwrap_or("unknown");
        return Err(format!("join_error:{reason}"));
    }
}

/// A topic's `seq` as one socket sees it: the highest so far, and how often it
/// repeated, went back or skipped values.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeqCheck {
    last: Option<u64>,
    /// Same `seq` as the previous event.
    pub duplicates: u64,
    /// `seq` below the previous event's.
    pub reordered: u64,
    /// Missing `seq` values between consecutive events.
    pub gaps: u64,
}

impl SeqCheck {
    /// The highest `seq` seen (or started at).
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// Starts from `seq` (a join reply's position) when nothing was seen yet, so a gap
    /// before the first event counts too.
    pub fn start_at(&mut self, seq: u64) {
        if self.last.is_none() {
            self.last = Some(seq);
        }
    }

    /// Counts the next event's `seq`.
    pub fn see(&mut self, seq: u64) {
        if let Some(last) = self.last {
            if seq == last {
                self.duplicates += 1;
            } else if seq < last {
                self.reordered += 1;
            } else if seq > last + 1 {
                self.gaps += seq - last - 1;
            }
        }
        if self.last.is_none_or(|last| seq > last) {
            self.last = Some(seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames far bigger than the small resting read buffer still arrive whole, over a
    /// connection bound to a chosen loopback source address that the server sees.
    #[tokio::test]
    async fn big_frames_arrive_whole_through_the_small_read_buffer_from_a_bound_source() {
        use futures_util::SinkExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let big = "x".repeat(20 * READ_BUFFER + 7);
        let sent = big.clone();
        let server = tokio::spawn(async move {
            let (tcp, peer) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            ws.send(Message::text("small")).await.unwrap();
            ws.send(Message::text(sent)).await.unwrap();
            ws.send(Message::text("after")).await.unwrap();
            peer
        });
        let source = std::net::Ipv4Addr::new(127, 0, 0, 5);
        let tcp = connect(addr, Some(source)).await.unwrap();
        assert_eq!(tcp.local_addr().unwrap().ip(), source);
        let mut ws = upgrade_url(tcp, &format!("ws://{addr}/socket/websocket?vsn=2.0.0")).await.unwrap();
        let mut texts = Vec::new();
        for _ in 0..3 {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => texts.push(t.as_str().to_owned()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(texts, ["small".to_owned(), big, "after".to_owned()]);
        assert_eq!(server.await.unwrap().ip(), source, "the server sees the bound source address");
    }

    #[tokio::test]
    async fn a_refused_upgrade_names_the_status() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await;
            tcp.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n").await.unwrap();
        });
        let tcp = connect(addr, None).await.unwrap();
        let err = upgrade_url(tcp, &format!("ws://{addr}/socket/websocket")).await.err().unwrap();
        assert_eq!(err.kind(), "http_403");
    }

    #[test]
    fn seq_checks_count_duplicates_reordering_and_gaps() {
        let mut s = SeqCheck::default();
        for seq in [5, 6, 6, 9, 7, 10] {
            s.see(seq);
        }
        assert_eq!((s.duplicates, s.reordered, s.gaps), (1, 1, 2));
    }
}
