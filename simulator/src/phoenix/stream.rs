//! The byte stream under a client WebSocket: plain TCP, or TLS over TCP for `wss://`
//! targets (rustls, with the run's one client config). TLS state is boxed so a plain
//! listener pays nothing for it.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// TCP, or TLS over TCP.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Opens a TCP connection to `addr`, bound first to `source` (port chosen by the
/// kernel) when given, so that one machine can hold more connections to one server than
/// the ephemeral ports of a single (source, destination) pair allow.
///
/// On Linux the bound socket takes its port at connect time (`IP_BIND_ADDRESS_NO_PORT`),
/// as an unbound one does: a port is then unique per destination, not per source
/// address. Without it, `bind` reserves a port outright and skips every port that a
/// TIME_WAIT socket of an earlier run still holds, which after a few big runs in a row
/// made connects take seconds (a second 19,500-listener run joined only 18,412).
pub async fn tcp(addr: SocketAddr, source: Option<Ipv4Addr>) -> io::Result<TcpStream> {
    let tcp = match source {
        None => TcpStream::connect(addr).await?,
        Some(ip) => {
            let socket =
                if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
            #[cfg(target_os = "linux")]
            if addr.is_ipv4() {
                use nix::sys::socket::{setsockopt, sockopt::IpBindAddressNoPort};
                setsockopt(&socket, IpBindAddressNoPort, &true).map_err(io::Error::from)?;
            }
            socket.bind((ip, 0).into())?;
            socket.connect(addr).await?
        }
    };
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// TLS over `tcp` to `host` with `config`.
pub async fn tls(tcp: TcpStream, host: &str, config: Arc<rustls::ClientConfig>) -> Result<Stream, String> {
    let name = ServerName::try_from(host.to_owned()).map_err(|e| format!("server name {host:?}: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.map_err(|e| e.to_string())?;
    Ok(Stream::Tls(Box::new(stream)))
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}
