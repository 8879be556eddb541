//! One Phoenix Channels V2 client socket: joins, pushes, replies, and the read loop that
//! every listener, member and actor runs (heartbeat every 30 s like phoenix.js, frames
//! handed to a callback with their receipt time, an optional outbox of frames to write,
//! and one [`Failure`] naming how it ended when the target ends it).

use std::pin::Pin;
use std::time::{Duration, Instant};

use firehose_app::wire::{self, Vsn, events};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::failure::{Failure, Step};
use super::stream::Stream;

/// Phoenix clients heartbeat every 30 s; the server closes sockets idle for 60 s.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(30);

/// A client WebSocket.
pub type Ws = WebSocketStream<Stream>;

/// What a frame callback wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Stop reading: [`Socket::read`] returns [`Ended::Stopped`].
    Stop,
}

/// Why [`Socket::read`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The `until` future completed (the run stopped, or it is time for something else).
    Until,
    /// The frame callback said [`Flow::Stop`].
    Stopped,
    /// The target ended the socket, or reading or writing failed.
    Failed(Failure),
}

/// A `phx_reply` payload.
#[derive(Deserialize)]
struct ReplyBody {
    status: String,
    #[serde(default)]
    response: serde_json::Value,
}

/// An answered reply: `Ok(response)` for status `ok`, `Err(reason)` otherwise.
pub type Reply = Result<serde_json::Value, String>;

#[derive(Serialize)]
struct Empty {}

/// One open socket.
pub struct Socket {
    ws: Ws,
    /// When the next heartbeat is due (kept across reads).
    heartbeat_at: tokio::time::Instant,
    heartbeats: u32,
}

impl Socket {
    pub(crate) fn new(ws: Ws) -> Self {
        Self { ws, heartbeat_at: tokio::time::Instant::now() + HEARTBEAT_EVERY, heartbeats: 0 }
    }

    /// Writes one text frame.
    pub async fn send(&mut self, text: String) -> Result<(), Failure> {
        self.ws.send(Message::text(text)).await.map_err(|e| Failure::from_ws(&e))
    }

    /// Pushes `event` with `payload` on `topic` (joined with `join_ref`) as `msg_ref`.
    pub async fn push(
        &mut self,
        topic: &str,
        join_ref: &str,
        msg_ref: &str,
        event: &str,
        payload: &(impl Serialize + ?Sized),
    ) -> Result<(), Failure> {
        self.send(push_frame(topic, join_ref, msg_ref, event, payload)).await
    }

    /// Joins `topic` (join_ref and ref both `join_ref`) with `params` and reads until
    /// the reply; frames read meanwhile go to `other`. The `ok` reply's response, or why
    /// there is none (a refusal is [`Failure::JoinRefused`]).
    pub async fn join(
        &mut self,
        topic: &str,
        join_ref: &str,
        params: &(impl Serialize + ?Sized),
        deadline: tokio::time::Instant,
        other: &mut (dyn FnMut(&str, Instant) + Send),
    ) -> Result<serde_json::Value, Failure> {
        self.push(topic, join_ref, join_ref, events::JOIN, params).await?;
        match self.reply(join_ref, deadline, other).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(reason)) => Err(Failure::JoinRefused(reason)),
            Err(Failure::Timeout(_)) => Err(Failure::Timeout(Step::Join)),
            Err(f) => Err(f),
        }
    }

    /// Joins `topic` with no params (`{}`).
    pub async fn join_plain(
        &mut self,
        topic: &str,
        join_ref: &str,
        deadline: tokio::time::Instant,
    ) -> Result<serde_json::Value, Failure> {
        self.join(topic, join_ref, &Empty {}, deadline, &mut |_, _| {}).await
    }

    /// Reads until the `phx_reply` to `msg_ref` (frames read meanwhile go to `other`).
    /// `Ok(reply)` when one came ([`Failure::Timeout`] when none did by `deadline`).
    pub async fn reply(
        &mut self,
        msg_ref: &str,
        deadline: tokio::time::Instant,
        other: &mut (dyn FnMut(&str, Instant) + Send),
    ) -> Result<Reply, Failure> {
        loop {
            let msg = match timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Err(Failure::Timeout(Step::Reply)),
                Ok(None) => return Err(Failure::Eof),
                Ok(Some(Err(e))) => return Err(Failure::from_ws(&e)),
                Ok(Some(Ok(Message::Close(frame)))) => return Err(Failure::Closed(close_code(frame.as_ref()))),
                Ok(Some(Ok(msg))) => msg,
            };
            let at = Instant::now();
            let Message::Text(text) = msg else { continue };
            match reply_to(text.as_str(), msg_ref) {
                Some(reply) => return reply,
                None => other(text.as_str(), at),
            }
        }
    }

    /// Reads frames into `on_frame` (the text and when it was received) until `until`
    /// completes, `on_frame` says stop, or the socket fails; sends a heartbeat every
    /// [`HEARTBEAT_EVERY`] meanwhile and, with an `outbox`, writes every frame put
    /// there. The writes' state is boxed: it exists only while a write is under way,
    /// not in every idle listener's future.
    pub async fn read<U: Future<Output = ()>>(
        &mut self,
        mut until: Pin<&mut U>,
        mut outbox: Option<&mut mpsc::Receiver<String>>,
        on_frame: &mut (dyn FnMut(&str, Instant) -> Flow + Send),
    ) -> Ended {
        let heartbeat = sleep_until(self.heartbeat_at);
        tokio::pin!(heartbeat);
        loop {
            tokio::select! {
                biased;
                () = &mut until => return Ended::Until,
                msg = self.ws.next() => {
                    let at = Instant::now();
                    match msg {
                        Some(Ok(Message::Text(text))) => {
                            if on_frame(text.as_str(), at) == Flow::Stop {
                                return Ended::Stopped;
                            }
                        }
                        Some(Ok(Message::Close(frame))) => {
                            return Ended::Failed(Failure::Closed(close_code(frame.as_ref())));
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Ended::Failed(Failure::from_ws(&e)),
                        None => return Ended::Failed(Failure::Eof),
                    }
                }
                Some(text) = async { outbox.as_mut()?.recv().await }, if outbox.is_some() => {
                    if let Err(f) = Box::pin(self.send(text)).await {
                        return Ended::Failed(f);
                    }
                }
                () = &mut heartbeat => {
                    self.heartbeats = self.heartbeats.wrapping_add(1);
                    let frame = heartbeat_frame(&format!("h{}", self.heartbeats));
                    if let Err(f) = Box::pin(self.send(frame)).await {
                        return Ended::Failed(f);
                    }
                    self.heartbeat_at += HEARTBEAT_EVERY;
                    heartbeat.as_mut().reset(self.heartbeat_at);
                }
            }
        }
    }

    /// Closes the socket politely, waiting at most a moment for the close to go out.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_millis(200), self.ws.close(None)).await;
    }
}

/// The reply to `msg_ref` in `text`, if `text` is one: `Ok(Ok(response))` for `ok`,
/// `Ok(Err(reason))` for any other status, `Err` when it cannot be read.
pub fn reply_to(text: &str, msg_ref: &str) -> Option<Result<Reply, Failure>> {
    let frame = wire::decode_text(Vsn::V2, text).ok()?;
    if frame.event != events::REPLY || frame.msg_ref.as_deref() != Some(msg_ref) {
        return None;
    }
    let Ok(body) = frame.payload_as::<ReplyBody>() else { return Some(Err(Failure::Undecodable)) };
    if body.status == "ok" {
        return Some(Ok(Ok(body.response)));
    }
    let reason = body.response.get("reason").and_then(|r| r.as_str()).unwrap_or("unknown");
    Some(Ok(Err(reason.to_owned())))
}

/// The failure a frame means for a channel on `topic`: `phx_close` or `phx_error`, or
/// a gap (`phx_error` with no `join_ref` and reason `gap`, from a cluster node).
pub fn channel_end(frame: &wire::InFrame<'_>, topic: &str) -> Option<Failure> {
    if frame.topic != topic {
        return None;
    }
    match frame.event.as_ref() {
        events::CLOSE => Some(Failure::Channel(events::CLOSE)),
        events::ERROR if frame.join_ref.is_none() && is_gap(frame) => Some(Failure::Gap),
        events::ERROR => Some(Failure::Channel(events::ERROR)),
        _ => None,
    }
}

/// Whether a `phx_error`'s payload is `{"reason": "gap"}`.
fn is_gap(frame: &wire::InFrame<'_>) -> bool {
    #[derive(serde::Deserialize)]
    struct Reason<'a> {
        #[serde(borrow)]
        reason: Option<std::borrow::Cow<'a, str>>,
    }
    frame.payload_as::<Reason<'_>>().is_ok_and(|r| r.reason.as_deref() == Some("gap"))
}

/// A listener's text frame on `topic`: `Continue` with one of the topic's events, or
/// `Break` with what the listener does instead — nothing (`None`: another topic, a reply,
/// or a frame that does not decode, after `undecodable` counted it) or stop with the
/// channel's end (`phx_close`, `phx_error`).
pub fn topic_event<'a>(
    text: &'a str,
    topic: &str,
    undecodable: impl FnOnce(),
) -> std::ops::ControlFlow<Option<Failure>, wire::InFrame<'a>> {
    use std::ops::ControlFlow::{Break, Continue};
    let Ok(frame) = wire::decode_text(Vsn::V2, text) else {
        undecodable();
        return Break(None);
    };
    if frame.topic != topic || frame.event == events::REPLY {
        return Break(None);
    }
    match channel_end(&frame, topic) {
        Some(end) => Break(Some(end)),
        None => Continue(frame),
    }
}

/// A push frame.
pub fn push_frame(
    topic: &str,
    join_ref: &str,
    msg_ref: &str,
    event: &str,
    payload: &(impl Serialize + ?Sized),
) -> String {
    wire::encode_text(Vsn::V2, Some(join_ref), Some(msg_ref), topic, event, payload)
}

/// A `heartbeat` frame with ref `msg_ref`.
pub fn heartbeat_frame(msg_ref: &str) -> String {
    wire::encode_text(Vsn::V2, None, Some(msg_ref), events::PHOENIX_TOPIC, events::HEARTBEAT, &Empty {})
}

fn close_code(frame: Option<&tokio_tungstenite::tungstenite::protocol::CloseFrame>) -> u16 {
    frame.map_or(1005, |f| u16::from(f.code))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(text: &str) -> Option<Failure> {
        channel_end(&wire::decode_text(Vsn::V2, text).unwrap(), "bookmarks:firehose")
    }

    #[test]
    fn a_gap_notice_is_told_apart_from_a_crashed_or_closed_channel() {
        assert_eq!(end(r#"[null,null,"bookmarks:firehose","phx_error",{"reason":"gap"}]"#), Some(Failure::Gap));
        // A crash (it carries the join's ref) or another reason is the channel's end.
        let crashed = end(r#"["1","1","bookmarks:firehose","phx_error",{"reason":"gap"}]"#);
        assert_eq!(crashed, Some(Failure::Channel("phx_error")));
        assert_eq!(end(r#"[null,null,"bookmarks:firehose","phx_error",{}]"#), Some(Failure::Channel("phx_error")));
        assert_eq!(end(r#"["1","1","bookmarks:firehose","phx_close",{}]"#), Some(Failure::Channel("phx_close")));
        assert_eq!(end(r#"[null,null,"bookmarks:tag:x","phx_error",{"reason":"gap"}]"#), None, "another topic");
    }
}
