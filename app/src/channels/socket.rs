//! One task per connection: it selects over the client's frames, its outbox of
//! broadcasts, the idle deadline, a slow-consumer signal and server shutdown.
//!
//! Replies are produced inside this task and written before the task looks at its
//! outbox again, so a join reply always precedes the topic's broadcasts. Writes are
//! coalesced: a backlog in the outbox goes out as up to `coalesce_frames` frames per
//! flush instead of one syscall per frame.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;

use super::topics::{self, ChannelKind, JoinRefusal};
use crate::accounts::User;
use crate::metrics::Metrics;
use crate::pubsub::{SharedFrame, SocketHandle, SubId};
use crate::state::AppState;
use crate::wire::{self, DecodeError, ErrorReason, InFrame, ReplyStatus, Vsn, events};

/// Close codes (RFC 6455). phoenix.js reconnects on anything but 1000.
mod close_code {
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED: u16 = 1003;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL: u16 = 1011;
    pub const RESTART: u16 = 1012;
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// How long a close frame may take to go out before the connection is just dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

struct Joined {
    join_ref: Option<String>,
    kind: ChannelKind,
    sub: Option<SubId>,
}

struct Socket {
    state: AppState,
    vsn: Vsn,
    #[allow(dead_code)] // identifies the user to channels that need it (next issues)
    user: Option<User>,
    handle: SocketHandle,
    joined: HashMap<String, Joined>,
    /// Frames produced while handling one client message, written right after.
    out: Vec<Message>,
    close: Option<(u16, &'static str)>,
}

/// The task's whole state, built before the first await so the future holds each
/// value once (tens of thousands of these are alive at a time).
struct Connection {
    ws: WebSocket,
    rx: mpsc::Receiver<SharedFrame>,
    sock: Socket,
    guard: WriteGuard,
    socket_id: u64,
}

/// Serves one upgraded connection until it closes.
pub fn run(ws: WebSocket, state: AppState, vsn: Vsn, user: Option<User>) -> impl Future<Output = ()> + Send {
    let metrics = state.metrics.clone();
    let socket_id = metrics.sockets_opened.fetch_add(1, Relaxed);
    metrics.open_sockets.fetch_add(1, Relaxed);
    let cfg = &state.config.socket;
    let (tx, rx) = mpsc::channel(cfg.outbox_capacity);
    let handle = SocketHandle { outbox: tx, slow: CancellationToken::new() };
    let guard = WriteGuard {
        slow: handle.slow.clone(),
        shutdown: state.shutdown.clone(),
        timeout: cfg.write_timeout,
        coalesce: cfg.coalesce_frames,
        metrics,
    };
    let sock = Socket { state, vsn, user, handle, joined: HashMap::new(), out: Vec::new(), close: None };
    Connection { ws, rx, sock, guard, socket_id }.serve()
}

impl Connection {
    async fn serve(mut self) {
        let cfg = self.sock.state.config.clone();
        let cfg = &cfg.socket;
        let idle = sleep(cfg.idle_timeout);
        tokio::pin!(idle);
        let close = loop {
            tokio::select! {
                biased;
                _ = self.guard.slow.cancelled() => {
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
                incoming = self.ws.recv() => {
                    let msg = match incoming {
                        None => break None,
                        Some(Err(err)) => break read_error_close(err),
                        Some(Ok(msg)) => msg,
                    };
                    idle.as_mut().reset(Instant::now() + cfg.idle_timeout);
                    self.sock.handle_message(msg);
                    if let Some(close) = self.sock.close.take() {
                        let _ = Box::pin(write_batch(&mut self.ws, None, &mut self.sock.out, &mut self.rx, 0, &self.guard.metrics)).await;
                        break Some(close);
                    }
                    if !self.sock.out.is_empty() && !self.write(None).await {
                        break None;
                    }
                }
                Some(frame) = self.rx.recv() => {
                    if !self.write(Some(frame)).await {
                        break None;
                    }
                }
                _ = &mut idle => break Some((close_code::PROTOCOL_ERROR, "idle timeout")),
            }
        };
        self.sock.leave_all();
        self.rx.close();
        if let Some((code, reason)) = close {
            let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
            let _ = Box::pin(timeout(CLOSE_TIMEOUT, self.ws.send(Message::Close(Some(frame))))).await;
        }
        self.guard.metrics.open_sockets.fetch_sub(1, Relaxed);
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
    tokio::select! {
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

impl Socket {
    fn handle_message(&mut self, msg: Message) {
        match msg {
            Message::Text(text) => self.handle_text(text.as_str()),
            Message::Binary(bytes) => self.handle_binary(&bytes),
            // Pings are answered by the WebSocket layer; a close is completed by it too.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}
        }
    }

    fn handle_text(&mut self, text: &str) {
        match wire::decode_text(self.vsn, text) {
            Ok(frame) => self.dispatch(&frame),
            Err(DecodeError::NotJson(_)) => {
                // Like Phoenix: a frame that is not JSON cannot be answered.
                Metrics::add(&self.state.metrics.bad_frames, 1);
                self.close = Some((close_code::INTERNAL, "invalid frame"));
            }
            Err(DecodeError::BadShape { msg_ref: Some(msg_ref), join_ref, topic, .. }) => {
                Metrics::add(&self.state.metrics.bad_frames, 1);
                let topic = topic.unwrap_or_else(|| events::PHOENIX_TOPIC.to_owned());
                self.reply(
                    join_ref.as_deref(),
                    Some(&msg_ref),
                    &topic,
                    ReplyStatus::Error,
                    &ErrorReason::new("malformed message"),
                );
            }
            Err(DecodeError::BadShape { .. }) => {
                Metrics::add(&self.state.metrics.bad_frames, 1);
                self.close = Some((close_code::INTERNAL, "invalid frame"));
            }
        }
    }

    fn handle_binary(&mut self, bytes: &[u8]) {
        match wire::decode_binary_push(bytes) {
            Ok(push) => {
                let current = self.joined.get(push.topic).map(|j| j.join_ref.clone());
                match current {
                    None => self.reply(
                        None,
                        Some(push.msg_ref),
                        push.topic,
                        ReplyStatus::Error,
                        &ErrorReason::new("unmatched topic"),
                    ),
                    Some(jr) => self.reply(
                        jr.as_deref(),
                        Some(push.msg_ref),
                        push.topic,
                        ReplyStatus::Error,
                        &ErrorReason::new("binary payloads are not accepted on this topic"),
                    ),
                }
            }
            Err(_) => {
                Metrics::add(&self.state.metrics.bad_frames, 1);
                self.close = Some((close_code::UNSUPPORTED, "invalid binary frame"));
            }
        }
    }

    fn dispatch(&mut self, frame: &InFrame<'_>) {
        let jr = frame.join_ref.as_deref();
        let msg_ref = frame.msg_ref.as_deref();
        let topic: &str = &frame.topic;
        if topic == events::PHOENIX_TOPIC && frame.event == events::HEARTBEAT {
            // Phoenix echoes the heartbeat's own join_ref, which phoenix.js leaves null.
            self.reply(jr, msg_ref, topic, ReplyStatus::Ok, &json!({}));
            return;
        }
        if !frame.payload_is_object() {
            self.reply(jr, msg_ref, topic, ReplyStatus::Error, &ErrorReason::new("payload must be a JSON object"));
            return;
        }
        if frame.event == events::JOIN {
            self.join(jr, msg_ref, topic);
            return;
        }
        let Some(current) = self.joined.get(topic) else {
            self.reply(None, msg_ref, topic, ReplyStatus::Error, &ErrorReason::new("unmatched topic"));
            return;
        };
        // A message for an earlier join of this topic is stale: Phoenix ignores it.
        if jr.is_some() && current.join_ref.as_deref() != jr {
            return;
        }
        let current_jr = current.join_ref.clone();
        let kind = current.kind;
        if frame.event == events::LEAVE {
            self.leave(topic);
            self.reply(current_jr.as_deref(), msg_ref, topic, ReplyStatus::Ok, &json!({}));
            self.push_close(current_jr.as_deref(), topic);
            return;
        }
        match catch_unwind(AssertUnwindSafe(|| handle_in(kind, &frame.event))) {
            Ok(Ok(response)) => self.reply(current_jr.as_deref(), msg_ref, topic, ReplyStatus::Ok, &response),
            Ok(Err(reason)) => {
                self.reply(current_jr.as_deref(), msg_ref, topic, ReplyStatus::Error, &ErrorReason::new(reason))
            }
            Err(_) => {
                // The channel failed, not the socket: drop that channel only and tell
                // the client, which rejoins it.
                Metrics::add(&self.state.metrics.channel_crashes, 1);
                self.leave(topic);
                let frame = wire::encode_text(
                    self.vsn,
                    current_jr.as_deref(),
                    current_jr.as_deref(),
                    topic,
                    events::ERROR,
                    &json!({}),
                );
                self.out.push(Message::Text(frame.into()));
            }
        }
    }

    fn join(&mut self, jr: Option<&str>, msg_ref: Option<&str>, topic: &str) {
        let metrics = self.state.metrics.clone();
        let kind = match topics::route(topic, self.state.config.debug_topics) {
            Ok(kind) => kind,
            Err(refusal) => {
                Metrics::add(&metrics.join_errors, 1);
                match refusal {
                    JoinRefusal::Unmatched => {
                        self.reply(None, msg_ref, topic, ReplyStatus::Error, &ErrorReason::new("unmatched topic"))
                    }
                    JoinRefusal::Refused(reason) => {
                        self.reply(jr, msg_ref, topic, ReplyStatus::Error, &ErrorReason::new(reason))
                    }
                }
                return;
            }
        };
        if let Some(existing) = self.joined.get_mut(topic) {
            // Re-join: the new join's reply first, then close the old join. The pub/sub
            // subscription carries over, so no broadcast is missed in between.
            let old = std::mem::replace(&mut existing.join_ref, jr.map(str::to_owned));
            Metrics::add(&metrics.joins, 1);
            self.reply(jr, msg_ref, topic, ReplyStatus::Ok, &json!({}));
            self.push_close(old.as_deref(), topic);
            return;
        }
        if self.joined.len() >= self.state.config.socket.max_channels {
            Metrics::add(&metrics.join_errors, 1);
            self.reply(jr, msg_ref, topic, ReplyStatus::Error, &ErrorReason::new("too many channels joined"));
            return;
        }
        let sub = match kind {
            ChannelKind::BookmarkStream => Some(self.state.pubsub.subscribe(topic, self.vsn, self.handle.clone())),
            ChannelKind::Debug => None,
        };
        self.joined.insert(topic.to_owned(), Joined { join_ref: jr.map(str::to_owned), kind, sub });
        Metrics::add(&metrics.joins, 1);
        self.reply(jr, msg_ref, topic, ReplyStatus::Ok, &json!({}));
    }

    fn leave(&mut self, topic: &str) {
        if let Some(Joined { sub: Some(sub), .. }) = self.joined.remove(topic) {
            self.state.pubsub.unsubscribe(topic, sub);
        }
    }

    fn leave_all(&mut self) {
        for (topic, joined) in self.joined.drain() {
            if let Some(sub) = joined.sub {
                self.state.pubsub.unsubscribe(&topic, sub);
            }
        }
    }

    fn reply<R: Serialize + ?Sized>(
        &mut self,
        jr: Option<&str>,
        msg_ref: Option<&str>,
        topic: &str,
        status: ReplyStatus,
        response: &R,
    ) {
        let text = wire::encode_reply(self.vsn, jr, msg_ref, topic, status, response);
        self.out.push(Message::Text(text.into()));
    }

    fn push_close(&mut self, jr: Option<&str>, topic: &str) {
        let text = wire::encode_text(self.vsn, jr, jr, topic, events::CLOSE, &json!({}));
        self.out.push(Message::Text(text.into()));
    }
}

/// Client events on a joined channel. Bookmark streams are receive-only; a `debug:*`
/// channel echoes `ping` and fails on `crash`.
fn handle_in(kind: ChannelKind, event: &str) -> Result<serde_json::Value, &'static str> {
    match (kind, event) {
        (_, "ping") => Ok(json!({})),
        (ChannelKind::Debug, "crash") => panic!("debug channel asked to crash"),
        _ => Err("unknown event"),
    }
}
