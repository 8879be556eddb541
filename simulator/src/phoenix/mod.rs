//! The Phoenix Channels V2 client every socket of the simulator uses: one
//! [`Endpoint`] per run (address, host, socket path, TLS), [`Endpoint::connect`] (TCP
//! from a chosen source address, TLS for `wss://`, the small-buffer upgrade, the bearer
//! subprotocol), one [`Socket`] (join, push, replies, and the heartbeat + read loop),
//! one [`Failure`] enum naming every way a socket ends, `seq` order checks, recovery
//! with `since`, and the probe that tells whether a target speaks Phoenix at all.

mod endpoint;
mod failure;
pub mod probe;
mod recovery;
mod seq;
mod socket;
mod stream;
mod upgrade;

use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub use endpoint::Endpoint;
pub use failure::{Failure, Step};
pub use recovery::{JoinParams, Position, Since, replay};
pub use seq::SeqCheck;
pub use socket::{
    Ended, Flow, HEARTBEAT_EVERY, Reply, Socket, Ws, channel_end, heartbeat_frame, push_frame, reply_to, topic_event,
};

/// Connect, upgrade and join must finish within this.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Initial read buffer of a client socket, and the most one read asks the kernel for.
/// tungstenite grows it to fit a bigger frame (it reserves each frame's full length on
/// top of what is buffered, so the resting capacity settles near twice this), and the
/// buffer is zero-filled to its capacity on the first read, so every byte here is
/// resident memory for every listener. 512 against 1024: 2.75 KiB against 3.26 KiB of
/// simulator RSS per listener and the same CPU per delivery (5,000 listeners at 5 and at
/// 20 bookmarks/s, `scripts/bench-listeners`'s command).
pub const READ_BUFFER: usize = 512;

/// The client config: small buffers, since thousands of these live at once.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

#[cfg(test)]
mod tests {
    use futures_util::SinkExt;
    use tokio::time::Instant;
    use tokio_tungstenite::tungstenite::Message;

    use super::*;

    /// Frames far bigger than the small resting read buffer still arrive whole, over a
    /// connection bound to a chosen loopback source address that the server sees.
    #[tokio::test]
    async fn big_frames_arrive_whole_through_the_small_read_buffer_from_a_bound_source() {
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
        let ep = Endpoint::new(addr, &addr.to_string(), "/socket/websocket?vsn=2.0.0", None);
        let mut socket = ep.connect(Some(source), None, Instant::now() + JOIN_TIMEOUT).await.unwrap();
        let mut texts = Vec::new();
        let never = std::future::pending::<()>();
        tokio::pin!(never);
        let ended = socket
            .read(never.as_mut(), None, &mut |text, _| {
                texts.push(text.to_owned());
                if texts.len() == 3 { Flow::Stop } else { Flow::Continue }
            })
            .await;
        assert_eq!(ended, Ended::Stopped);
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
        let ep = Endpoint::new(addr, &addr.to_string(), "/socket/websocket", None);
        let err = ep.connect(None, None, Instant::now() + JOIN_TIMEOUT).await.err().unwrap();
        assert_eq!(err, Failure::UpgradeStatus(403));
        assert_eq!(err.name(), "upgrade_http_403");
    }
}
