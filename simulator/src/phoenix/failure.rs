//! Every way a client socket ends or fails, with the one name each has in reports
//! (`listeners.failures`, `actions.<kind>.errors`): connecting, TLS, the WebSocket
//! upgrade, the join, and after joining the target closing the socket or channel.

use std::io;

/// Why a socket could not be opened or joined, or stopped after joining.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The TCP connection failed (`connect_refused`, `connect_addrnotavail`, …).
    #[error("TCP connect failed: {0:?}")]
    Connect(io::ErrorKind),
    /// The TLS handshake failed (certificate, protocol).
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The target answered the upgrade with another HTTP status.
    #[error("HTTP {0} instead of 101 Switching Protocols")]
    UpgradeStatus(u16),
    /// The upgrade response was not a WebSocket's.
    #[error("not a WebSocket upgrade: {0}")]
    UpgradeProtocol(&'static str),
    /// A step did not finish before its deadline.
    #[error("no {0} in time")]
    Timeout(Step),
    /// The server refused the join (`join_error:<reason>`).
    #[error("join refused: {0}")]
    JoinRefused(String),
    /// A reply that is not a Phoenix reply.
    #[error("undecodable reply")]
    Undecodable,
    /// A close frame from the target, with its code (`closed_<code>`).
    #[error("the target closed the socket ({0})")]
    Closed(u16),
    /// The connection ended without a close frame.
    #[error("the connection ended")]
    Eof,
    /// Reading or writing the connection failed.
    #[error("I/O error: {0:?}")]
    Io(io::ErrorKind),
    /// The WebSocket protocol was broken (`ws_reset_without_close`: the connection was
    /// reset without a closing handshake, as a server that drops a slow consumer's
    /// socket does; `ws_protocol`: anything else).
    #[error("WebSocket protocol error: {0}")]
    Protocol(&'static str),
    /// The target closed the channel (`phx_close`) or crashed it (`phx_error`).
    #[error("the target ended the channel with {0}")]
    Channel(&'static str),
    /// A cluster node told the channel it may have missed broadcasts (`phx_error` with
    /// reason `gap`, after its broker link dropped): rejoin with `since` and recover.
    #[error("the target may have missed broadcasts (gap)")]
    Gap,
}

/// The step a [`Failure::Timeout`] happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Connect,
    Upgrade,
    Join,
    Reply,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Connect => "connect",
            Step::Upgrade => "upgrade",
            Step::Join => "join",
            Step::Reply => "reply",
        })
    }
}

impl Failure {
    /// The failure's name in reports: one name per failure, wherever it happens.
    pub fn name(&self) -> String {
        match self {
            Failure::Connect(kind) => format!("connect_{}", io_kind(*kind)),
            Failure::Tls(_) => "tls_handshake".into(),
            Failure::UpgradeStatus(status) => format!("upgrade_http_{status}"),
            Failure::UpgradeProtocol(_) => "upgrade_protocol".into(),
            Failure::Timeout(step) => format!("{step}_timeout"),
            Failure::JoinRefused(reason) => format!("join_error:{reason}"),
            Failure::Undecodable => "reply_undecodable".into(),
            Failure::Closed(code) => format!("closed_{code}"),
            Failure::Eof => "eof".into(),
            Failure::Io(kind) => format!("io_{}", io_kind(*kind)),
            Failure::Protocol(what) => format!("ws_{what}"),
            Failure::Channel(event) => format!("channel_{event}"),
            Failure::Gap => "channel_gap".into(),
        }
    }

    /// Whether the target itself ended the socket or channel after it was joined (as
    /// opposed to failing to open it).
    pub fn is_close(&self) -> bool {
        matches!(
            self,
            Failure::Closed(_)
                | Failure::Eof
                | Failure::Io(_)
                | Failure::Protocol(_)
                | Failure::Channel(_)
                | Failure::Gap
        )
    }

    pub(crate) fn from_io(e: &io::Error) -> Failure {
        if e.kind() == io::ErrorKind::UnexpectedEof { Failure::Eof } else { Failure::Io(e.kind()) }
    }

    pub(crate) fn from_ws(e: &tokio_tungstenite::tungstenite::Error) -> Failure {
        use tokio_tungstenite::tungstenite::Error;
        use tokio_tungstenite::tungstenite::error::ProtocolError;
        match e {
            Error::ConnectionClosed | Error::AlreadyClosed => Failure::Eof,
            Error::Io(io) => Failure::from_io(io),
            Error::Tls(t) => Failure::Tls(t.to_string()),
            Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Failure::Protocol("reset_without_close"),
            Error::Protocol(_) => Failure::Protocol("protocol"),
            _ => Failure::Io(io::ErrorKind::Other),
        }
    }
}

/// `ConnectionRefused` → `refused`, `AddrNotAvailable` → `addrnotavail`, …
fn io_kind(kind: io::ErrorKind) -> String {
    match kind {
        io::ErrorKind::ConnectionRefused => "refused".into(),
        io::ErrorKind::ConnectionReset => "reset".into(),
        io::ErrorKind::AddrNotAvailable => "addrnotavail".into(),
        io::ErrorKind::TimedOut => "timedout".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_one_stable_name() {
        assert_eq!(Failure::Connect(io::ErrorKind::ConnectionRefused).name(), "connect_refused");
        assert_eq!(Failure::UpgradeStatus(503).name(), "upgrade_http_503");
        assert_eq!(Failure::Timeout(Step::Join).name(), "join_timeout");
        assert_eq!(Failure::JoinRefused("unauthorized".into()).name(), "join_error:unauthorized");
        assert_eq!(Failure::Closed(1013).name(), "closed_1013");
        assert_eq!(Failure::Channel("phx_close").name(), "channel_phx_close");
        assert!(Failure::Eof.is_close() && !Failure::Timeout(Step::Connect).is_close());
        use tokio_tungstenite::tungstenite::{Error, error::ProtocolError};
        let reset = Failure::from_ws(&Error::Protocol(ProtocolError::ResetWithoutClosingHandshake));
        assert_eq!(reset.name(), "ws_reset_without_close");
        assert!(reset.is_close());
        assert_eq!(Failure::from_ws(&Error::Protocol(ProtocolError::SendAfterClosing)).name(), "ws_protocol");
    }
}
