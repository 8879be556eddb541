//! One task per connection: it selects over the client's frames, its outbox of
//! broadcasts, the idle deadline, a close signal (slow consumer, or the credential it
//! connected with was revoked) and server shutdown.
//!
//! Replies are produced inside this task and written before the task looks at its
//! outbox again, so a join reply always precedes the topic's broadcasts. Writes are
//! coalesced: a backlog in the outbox goes out as up to `coalesce_frames` frames per
//! flush instead of one syscall per frame.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;

use super::session::{Session, SignedIn, close_code};
use crate::connections::SocketSlot;
use crate::metrics::Metrics;
use crate::pubsub::{SharedFrame, SocketHandle};
use crate::state::AppState;
use crate::wire::Vsn;

/// How long a close frame may take to go out before the connection is just dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The task's whole state, built before the first await so the future holds each
/// value once (tens of thousands of these are alive at a time).
struct Connection {
    ws: WebSocket,
    /// This socket's place under the connection cap, given back when the task ends.
    _slot: SocketSlot,
    rx: mpsc::Receiver<SharedFrame>,
    sock: Session,
    guard: WriteGuard,
    socket_id: u64,
}

/// Serves one upgraded connection until it closes.
pub(super) fn run(
    ws: WebSocket,
    state: AppState,
    vsn: Vsn,
    user: Option<Box<SignedIn>>,
    slot: SocketSlot,
) -> impl Future<Output = ()> + Send {
    let metrics = state.metrics.clone();
    let socket_id = metrics.sockets_opened.fetch_add(1, Relaxed);
    let cfg = &state.config.socket;
    let (tx, rx) = mpsc::channel(cfg.outbox_capacity);
    // A signed-in socket's close signal also fires when its credential is revoked.
    let slow = match &user {
        Some(signed_in) => signed_in.registration.revoked().child_token(),
        None => CancellationToken::new(),
    };
    let handle = SocketHandle { id: socket_id, outbox: tx, slow };
    let guard = WriteGuard {
        slow: handle.slow.clone(),
        shutdown: state.shutdown.clone(),
        timeout: cfg.write_timeout,
        coalesce: cfg.coalesce_frames,
        metrics,
    };
    let sock = Session::new(state, vsn, user, handle);
    Connection { ws, _slot: slot, rx, sock, guard, socket_id }.serve()
}

impl Connection {
    async fn serve(mut self) {
        let cfg = self.sock.state.config.clone();
        let cfg = &cfg.socket;
        let idle = sleep(cfg.idle_timeout);
        tokio::pin!(idle);
        let close = loop {
            // Biased, hot branches first: while frames flow, the rare signals are not
            // polled (and not registered for) on every turn. A slow consumer's outbox
            // is already cut off from pub/sub, so it drains and the signal is seen next.
            tokio::select! {
                biased;
                incoming = self.ws.recv() => {
                    let msg = match incoming {
                        None => break None,
                        Some(Err(err)) => break read_error_close(err),
                        Some(Ok(msg)) => msg,
                    };
                    idle.as_mut().reset(Instant::now() + cfg.idle_timeout);
                    Box::pin(self.sock.handle_message(msg)).await;
                    if let Some(close) = self.sock.close.take() {
                        let _ = Box::pin(write_batch(&mut self.ws, None, &mut self.sock.out, &mut self.rx, 0, &self.guard.metrics)).await;
                        break Some(close);
                    }
                    if !self.sock.out.is_empty() && !self.write(None).await {
                        break None;
                    }
                    // A busy socket may not reach the signal branch for a while.
                    if self.sock.revoked() {
                        break Some(self.revoked_close());
                    }
                }
                Some(frame) = self.rx.recv() => {
                    if !self.write(Some(frame)).await {
                        break None;
                    }
                    if self.sock.revoked() {
                        break Some(self.revoked_close());
                    }
                }
                _ = self.guard.slow.cancelled() => {
                    if self.sock.revoked() {
                        break Some(self.revoked_close());
                    }
                    Metrics::add(&self.guard.metrics.slow_consumer_closes, 1);
                    break Some((close_code::TRY_AGAIN_LATER, "slow consumer"));
                }
                _ = self.guard.shutdown.cancelled() => {
                    // Close in batches so clients do not all reconnect in the same instant.
                    let batches = cfg.drain_batches.max(1);
                    let batch = self.socket_id % u64::from(batches);
                    Box::pin(sleep(cfg.drain_window.mul_f64(batch as f64 / f64::from(batches)))).await;
                    break Some((close_code::RESTART, "server restarting"));
                }
                _ = &mut idle => break Some((close_code::PROTOCOL_ERROR, "idle timeout")),
            }
        };
        Box::pin(self.sock.leave_all()).await;
        self.rx.close();
        if let Some((code, reason)) = close {
            let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
            let _ = Box::pin(timeout(CLOSE_TIMEOUT, self.ws.send(Message::Close(Some(frame))))).await;
        }
    }

    /// The credential this socket connected with was revoked (token deleted, logout,
    /// password change): not 1000, so phoenix.js reconnects — and is refused.
    fn revoked_close(&self) -> (u16, &'static str) {
        Metrics::add(&self.guard.metrics.revoked_closes, 1);
        (close_code::POLICY_VIOLATION, "credentials revoked")
    }

    /// The pending frames plus a coalesced backlog; boxed so the rarely-awaited write
    /// state does not enlarge every idle connection's future.
    async fn write(&mut self, first: Option<SharedFrame>) -> bool {
        let ok = Box::pin(guarded_write(&mut self.ws, first, &mut self.sock.out, &mut self.rx, &self.guard)).await;
        // Replies are rare (joins, heartbeats): do not keep their buffer per socket.
        self.sock.out = Vec::new();
        ok
    }
}

/// A read error: an oversized message gets its close code; anything else means the
/// connection is gone.
fn read_error_close(err: axum::Error) -> Option<(u16, &'static str)> {
    match err.into_inner().downcast::<tungstenite::Error>() {
        Ok(e) if matches!(*e, tungstenite::Error::Capacity(_)) => Some((close_code::TOO_BIG, "message too big")),
        _ => None,
    }
}

/// What may interrupt a write: a peer that stopped reading blocks it, and must not hold
/// up a slow-consumer close, shutdown, or the task's own end.
struct WriteGuard {
    slow: CancellationToken,
    shutdown: CancellationToken,
    timeout: Duration,
    coalesce: usize,
    metrics: Arc<Metrics>,
}

/// Writes a batch unless interrupted. `false` means the connection is gone (write error,
/// or nothing accepted within the write timeout); an interruption by the slow-consumer
/// or shutdown signal returns `true` and the main loop takes that branch next.
async fn guarded_write(
    ws: &mut WebSocket,
    first: Option<SharedFrame>,
    out: &mut Vec<Message>,
    rx: &mut mpsc::Receiver<SharedFrame>,
    guard: &WriteGuard,
) -> bool {
    // Biased, write first: a write that completes at once never arms the timer.
    tokio::select! {
        biased;
        r = write_batch(ws, first, out, rx, guard.coalesce, &guard.metrics) => r.is_ok(),
        _ = guard.slow.cancelled() => true,
        _ = guard.shutdown.cancelled() => true,
        _ = sleep(guard.timeout) => false,
    }
}

/// Writes the pending replies, a first broadcast, and up to `more` further queued
/// broadcasts, then flushes once.
async fn write_batch(
    ws: &mut WebSocket,
    first: Option<SharedFrame>,
    out: &mut Vec<Message>,
    rx: &mut mpsc::Receiver<SharedFrame>,
    more: usize,
    metrics: &Metrics,
) -> Result<(), axum::Error> {
    let mut n = 0u64;
    if let Some(frame) = first {
        ws.feed(Message::Text((*frame).clone())).await?;
        n += 1;
    }
    for frame in out.drain(..) {
        ws.feed(frame).await?;
        n += 1;
    }
    for _ in 0..more {
        match rx.try_recv() {
            Ok(frame) => {
                ws.feed(Message::Text((*frame).clone())).await?;
                n += 1;
            }
            Err(_) => break,
        }
    }
    ws.flush().await?;
    Metrics::add(&metrics.frames_delivered, n);
    Ok(())
}
