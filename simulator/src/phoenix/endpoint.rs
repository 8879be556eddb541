//! Where client sockets go: the target's address, its host name (for `Host` and TLS),
//! the socket path and query, and the TLS config for `wss://`. One value per run,
//! shared by every socket; [`Endpoint::connect`] is the only way a socket is opened
//! (TCP from a chosen source address, TLS when the target is `https://`, the
//! small-buffer upgrade, phoenix.js's bearer subprotocol when signed in).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::time::{Instant, timeout_at};

use super::failure::{Failure, Step};
use super::socket::Socket;
use super::stream::{self, Stream};
use super::upgrade::upgrade;

/// A Phoenix socket endpoint.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// `host:port` as given in the target URL (the `Host` header, and the TLS server
    /// name without the port).
    pub host: String,
    /// Path and query, e.g. `/socket/websocket?vsn=2.0.0`.
    pub path: String,
    /// Present for `wss://` (an `https://` target).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.url())
    }
}

impl Endpoint {
    /// The endpoint at `path` (path and query) of the server at `addr`, reached as `host`.
    pub fn new(addr: SocketAddr, host: &str, path: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        Self { addr, host: host.to_owned(), path: path.to_owned(), tls }
    }

    /// `ws://host:port/path?query` (or `wss://`).
    pub fn url(&self) -> String {
        format!("{}://{}{}", if self.tls.is_some() { "wss" } else { "ws" }, self.host, self.path)
    }

    /// Connects (from `source` when given), upgrades and, with `token`, signs in with
    /// phoenix.js's `base64url.bearer.phx.<token>` subprotocol; everything before
    /// `deadline`.
    pub async fn connect(
        &self,
        source: Option<Ipv4Addr>,
        token: Option<&str>,
        deadline: Instant,
    ) -> Result<Socket, Failure> {
        let tcp = match timeout_at(deadline, stream::tcp(self.addr, source)).await {
            Err(_) => return Err(Failure::Timeout(Step::Connect)),
            Ok(Err(e)) => return Err(Failure::Connect(e.kind())),
            Ok(Ok(tcp)) => tcp,
        };
        let stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some(config) => {
                let name = self.host.rsplit_once(':').map_or(self.host.as_str(), |(h, _)| h);
                let name = name.trim_start_matches('[').trim_end_matches(']');
                match timeout_at(deadline, stream::tls(tcp, name, Arc::clone(config))).await {
                    Err(_) => return Err(Failure::Timeout(Step::Connect)),
                    Ok(Err(e)) => return Err(Failure::Tls(e)),
                    Ok(Ok(s)) => s,
                }
            }
        };
        let protocols = token.map(|t| format!("phoenix, base64url.bearer.phx.{}", URL_SAFE_NO_PAD.encode(t)));
        // Boxed: the handshake's short-lived state would otherwise be part of every
        // long-lived listener future.
        let upgraded = Box::pin(upgrade(stream, &self.host, &self.path, protocols.as_deref()));
        match timeout_at(deadline, upgraded).await {
            Err(_) => Err(Failure::Timeout(Step::Upgrade)),
            Ok(Err(f)) => Err(f),
            Ok(Ok(ws)) => Ok(Socket::new(ws)),
        }
    }
}
