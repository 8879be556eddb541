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

/// Phoenix clients heartbeat every 30 s; the server closes sockets idle for 60 s.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(30);
/// Connect, upgrade and join must finish within this.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(15);

pub type Socket = WebSocketStream<TcpStream>;

/// The client config: small buffers, since thousands of these live at once.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
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
            return Ok(());
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

    #[test]
    fn seq_checks_count_duplicates_reordering_and_gaps() {
        let mut s = SeqCheck::default();
        for seq in [5, 6, 6, 9, 7, 10] {
            s.see(seq);
        }
        assert_eq!((s.duplicates, s.reordered, s.gaps), (1, 1, 2));
    }
}
