//! Before anything is seeded or measured: is the target a Phoenix Channels endpoint?
//! One WebSocket to the socket path, one `heartbeat`, and its `phx_reply`. A refused or
//! unresolvable connection is "unreachable" (exit 4); an HTTP answer that is no
//! WebSocket upgrade (404 on the socket path, a plain web server), a WebSocket that
//! answers something other than a Phoenix V2 frame, closes, or never replies is "not a
//! Phoenix Channels endpoint" (exit 7), each with what was seen instead.

use std::time::Duration;

use firehose_app::wire::{self, Vsn};
use tokio::time::Instant;

use super::{Ended, Endpoint, Failure, Flow, heartbeat_frame, reply_to};

/// Connect, upgrade and the heartbeat's reply must all come within this.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a target failed the probe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    NotPhoenix(String),
}

/// Checks that `endpoint` is a Phoenix Channels V2 socket, within [`PROBE_TIMEOUT`].
pub async fn phoenix(endpoint: &Endpoint) -> Result<(), ProbeError> {
    phoenix_within(endpoint, PROBE_TIMEOUT).await
}

/// As [`phoenix`], with the time allowed given.
pub async fn phoenix_within(endpoint: &Endpoint, allowed: Duration) -> Result<(), ProbeError> {
    let deadline = Instant::now() + allowed;
    let url = endpoint.url();
    let not_phoenix = |why: String| ProbeError::NotPhoenix(format!("{url}: {why}"));
    let mut socket = match endpoint.connect(None, None, deadline).await {
        Ok(socket) => socket,
        Err(Failure::Connect(kind)) => {
            return Err(ProbeError::Unreachable(format!("{}: {}", endpoint.addr, std::io::Error::from(kind))));
        }
        Err(Failure::Timeout(super::Step::Connect)) => {
            return Err(ProbeError::Unreachable(format!("{}: no TCP connection within {allowed:?}", endpoint.addr)));
        }
        Err(Failure::Tls(e)) => return Err(ProbeError::Unreachable(format!("{url}: TLS handshake failed: {e}"))),
        Err(Failure::UpgradeStatus(status)) => {
            return Err(not_phoenix(format!(
                "the upgrade was answered HTTP {status} instead of 101 Switching Protocols"
            )));
        }
        Err(Failure::Timeout(_)) => {
            return Err(not_phoenix(format!("no answer to the WebSocket upgrade within {allowed:?}")));
        }
        Err(other) => return Err(not_phoenix(format!("no WebSocket upgrade: {other}"))),
    };
    if let Err(e) = socket.send(heartbeat_frame("probe")).await {
        return Err(not_phoenix(format!("the WebSocket failed on the first frame sent: {e}")));
    }
    let mut answer: Result<(), String> = Err(format!("no phx_reply to a heartbeat within {allowed:?}"));
    let timeout = tokio::time::sleep_until(deadline);
    tokio::pin!(timeout);
    let ended = socket
        .read(timeout.as_mut(), None, &mut |text, _| {
            if wire::decode_text(Vsn::V2, text).is_err() {
                let shown: String = text.chars().take(60).collect();
                answer = Err(format!("the WebSocket answered {shown:?}, which is not a Phoenix V2 frame"));
                return Flow::Stop;
            }
            if reply_to(text, "probe").is_some() {
                answer = Ok(());
                return Flow::Stop;
            }
            Flow::Continue
        })
        .await;
    if let Ended::Failed(f) = ended {
        answer = Err(format!("the WebSocket closed instead of answering a heartbeat ({f})"));
    }
    socket.close().await;
    answer.map_err(not_phoenix)
}
