//! The rooms generator: every event of the timeline is fired at its intended time, each
//! on its own task, never waiting for earlier ones (open model). Messages and typing go
//! out as pushes on the member's own socket; a presence join opens a fresh socket for a
//! churn user, joins the room, holds it, and closes it. The generator runs on a thread
//! and runtime of its own; churn sockets live on the main runtime with the members.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use firehose_app::wire::{self, Vsn};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use super::board::{self, Board, JOIN_TIMEOUT};
use super::schedule::{Kind, SKIPPED};
use crate::report::histo;
use crate::workloads::bookmarks::generator::sleep_precisely_until;

/// What the generator needs.
pub struct Driver {
    pub board: Arc<Board>,
    /// Churn users' tokens, by churn index.
    pub churn_tokens: Vec<String>,
    /// Corpus chat lines, the text after each message's marker.
    pub lines: Vec<String>,
    /// The main runtime, where churn sockets live.
    pub main: tokio::runtime::Handle,
    pub churn_hold: Duration,
}

impl Driver {
    /// Runs the whole timeline on a thread of its own; returns when every event's task
    /// (churn sockets included) finished.
    pub async fn run_on_own_thread(self: Arc<Self>) -> Result<(), String> {
        crate::workloads::bookmarks::generator::run_on_own_thread("firehose-sim-rooms-generator", move || self.run())
            .await
    }

    async fn run(self: Arc<Self>) {
        let s = Arc::clone(&self.board.schedule);
        let Some(t0) = s.t0() else { return };
        let mut tasks = JoinSet::new();
        let mut churn = Vec::new();
        for &(kind, i) in &s.order {
            let Some(intended) = s.intended(kind, i) else { continue };
            sleep_precisely_until(intended).await;
            match kind {
                Kind::Message | Kind::Typing => {
                    tasks.spawn(Arc::clone(&self).push(kind, i, intended, t0));
                }
                Kind::Join => {
                    self.lag(i as usize, intended, Instant::now());
                    churn.push(self.main.spawn(Arc::clone(&self).churn(i, t0)));
                }
            }
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
        for handle in churn {
            let _ = handle.await;
        }
    }

    fn lag(&self, key: usize, intended: Instant, fired: Instant) {
        let lag = fired.saturating_duration_since(intended);
        self.board.h.generator_lag.record(key, lag);
        self.board.max_lag_us.fetch_max(histo::micros(lag), Ordering::Relaxed);
    }

    /// A `new_msg` or `typing` push from the planned member's socket.
    async fn push(self: Arc<Self>, kind: Kind, i: u32, intended: Instant, t0: Instant) {
        let b = &self.board;
        let s = &b.schedule;
        let tally = b.tally(kind);
        let Some(p) = s.planned(kind, i).copied() else { return };
        if p.who == SKIPPED || !b.is_joined(p.who) {
            tally.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let topic = &b.topics[p.room as usize];
        let frame = match kind {
            Kind::Message => {
                let line = self.lines.get(s.line(i, self.lines.len())).map_or("hello", String::as_str);
                let body = format!("{}{i} {line}", b.prefix);
                wire::encode_text(
                    Vsn::V2,
                    Some("1"),
                    Some(&format!("m{i}")),
                    topic,
                    "new_msg",
                    &json!({ "body": body }),
                )
            }
            _ => {
                b.typing_pending[p.who as usize].store(i + 1, Ordering::Release);
                wire::encode_text(Vsn::V2, Some("1"), Some(&format!("t{i}")), topic, "typing", &json!({}))
            }
        };
        // Everyone joined in the room but the sender; owed before anything can arrive.
        tally.owe(i, b.joined_in(p.room).saturating_sub(1));
        let mut sink = b.sinks[p.who as usize].lock().await;
        let Some(sink) = sink.as_mut() else {
            tally.cancel(i);
            b.error("sender_socket_gone");
            return;
        };
        let now = Instant::now();
        self.lag(i as usize, intended, now);
        tally.mark_sent(i, t0, now);
        if sink.send(Message::text(frame)).await.is_err() {
            tally.cancel(i);
            b.error(if kind == Kind::Message { "new_msg_send_failed" } else { "typing_send_failed" });
            return;
        }
        tally.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Presence churn: a churn user's fresh socket joins the room (timed from the join
    /// push), stays `churn_hold`, then closes.
    async fn churn(self: Arc<Self>, k: u32, t0: Instant) {
        let b = &self.board;
        let Some(p) = b.schedule.joins.get(k as usize).copied() else { return };
        let Some(token) = self.churn_tokens.get(p.who as usize) else { return };
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
        let mut ws = match board::connect(b, token, deadline).await {
            Ok(ws) => ws,
            Err(kind) => {
                b.error(format!("churn_{kind}"));
                return;
            }
        };
        b.h.churn_connect.record(k as usize, started.elapsed());
        b.churn_pending[p.who as usize].store(k + 1, Ordering::Release);
        b.joins.owe(k, b.joined_in(p.room));
        let sent = Instant::now();
        b.joins.mark_sent(k, t0, sent);
        if ws.send(Message::text(crate::phoenix::join_frame(&b.topics[p.room as usize]))).await.is_err() {
            b.joins.cancel(k);
            b.error("churn_join_send_failed");
            return;
        }
        b.joins.sent.fetch_add(1, Ordering::Relaxed);
        match board::await_join_reply(&mut ws, deadline).await {
            Ok(()) => {
                b.joins.replies_ok.fetch_add(1, Ordering::Relaxed);
                if !b.schedule.is_warmup(Kind::Join, k) {
                    b.h.presence_join_reply.record(k as usize, sent.elapsed());
                }
            }
            Err(kind) => {
                b.joins.cancel(k);
                b.joins.replies_error.fetch_add(1, Ordering::Relaxed);
                b.error(format!("churn_{kind}"));
                return;
            }
        }
        // Hold: keep reading (the room's traffic reaches this socket too), then leave.
        let until = tokio::time::Instant::now() + self.churn_hold;
        while let Ok(Some(Ok(_))) = tokio::time::timeout_at(until, ws.next()).await {}
        let _ = ws.close(None).await;
        let drain_until = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(Some(Ok(_))) = tokio::time::timeout_at(drain_until, ws.next()).await {}
    }
}
