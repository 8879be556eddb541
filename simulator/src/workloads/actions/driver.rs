//! The actions' generator: every action of the timeline is fired at its intended start,
//! each on its own task, never waiting for earlier answers (open model), on a thread and
//! runtime of its own (`generator::run_on_own_thread`). Likes, unlikes and deletions are
//! HTTP requests (at most `max_in_flight` at once; waiting for a slot shows up as lag);
//! chat messages and typing are pushes written through the actor's socket, answered on
//! its reader (`actors`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use super::actors::{Actors, SINK_WAIT};
use super::listen::Ctx;
use super::schedule::SKIPPED;
use super::setup::Made;
use super::tally::LikeDone;
use super::{Group, Kind};
use crate::workloads::bookmarks::generator::sleep_precisely_until;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the generator needs.
pub struct Driver {
    pub ctx: Arc<Ctx>,
    pub actors: Arc<Actors>,
    pub made: Arc<Made>,
    /// Corpus chat lines with `@` taken out (mentions are the run's own).
    pub lines: Vec<String>,
    pub base: String,
    pub max_in_flight: u32,
}

impl Driver {
    /// Fires the whole timeline on a thread of its own; returns once every action's
    /// task finished (push answers arrive on the actor sockets, later).
    pub async fn run_on_own_thread(self: Arc<Self>) -> Result<(), String> {
        crate::workloads::bookmarks::generator::run_on_own_thread("firehose-sim-actions", move || self.run()).await
    }

    async fn run(self: Arc<Self>) {
        let tl = Arc::clone(&self.ctx.timeline);
        let Some(t0) = tl.t0() else { return };
        let http = match reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(self.max_in_flight as usize)
            .tcp_nodelay(true)
            .build()
        {
            Ok(http) => http,
            Err(e) => {
                tracing::error!(%e, "actions HTTP client");
                return;
            }
        };
        let slots = Arc::new(Semaphore::new(self.max_in_flight.max(1) as usize));
        let mut tasks = JoinSet::new();
        let interrupted = crate::engine::interrupt::token();
        for &(offset, kind, i) in &tl.order {
            let intended = t0 + offset;
            // Interrupted (SIGINT/SIGTERM): no new action; those in flight settle.
            tokio::select! {
                () = interrupted.cancelled() => break,
                () = sleep_precisely_until(intended) => {}
            }
            match kind {
                Kind::ChatMessage | Kind::Typing => {
                    tasks.spawn(Arc::clone(&self).push(kind, i, intended, t0));
                }
                _ => {
                    let permit = match Arc::clone(&slots).try_acquire_owned() {
                        Ok(p) => p,
                        Err(_) => match Arc::clone(&slots).acquire_owned().await {
                            Ok(p) => p,
                            Err(_) => break,
                        },
                    };
                    let http = http.clone();
                    let me = Arc::clone(&self);
                    tasks.spawn(async move {
                        me.request(&http, kind, i, intended, t0).await;
                        drop(permit);
                    });
                }
            }
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    }

    /// A like, unlike or delete over HTTP.
    async fn request(&self, http: &reqwest::Client, kind: Kind, i: u32, intended: Instant, t0: Instant) {
        let (tl, t) = (&self.ctx.timeline, &self.ctx.tally);
        let stats = t.kind(kind);
        let (method, path, actor, target) = match kind {
            Kind::Like => {
                let p = tl.likes[i as usize];
                if p.target == SKIPPED {
                    stats.skip(i);
                    return;
                }
                (
                    reqwest::Method::POST,
                    format!("bookmarks/{}/like", self.made.like_targets[p.target as usize]),
                    p.user,
                    p.target,
                )
            }
            Kind::Unlike => {
                let Some((user, target)) = t.undoable.lock().pop_front() else {
                    stats.skip(i);
                    return;
                };
                (
                    reqwest::Method::DELETE,
                    format!("bookmarks/{}/like", self.made.like_targets[target as usize]),
                    user,
                    target,
                )
            }
            _ => {
                let Some(&(id, owner)) = self.made.delete_targets.get(i as usize) else {
                    stats.skip(i);
                    return;
                };
                (reqwest::Method::DELETE, format!("bookmarks/{id}"), owner, SKIPPED)
            }
        };
        let Some(token) = self.made.actors.get(actor as usize).map(|a| a.token.as_str()) else {
            stats.fail_unsent(i, "no_actor");
            return;
        };
        let sent = Instant::now();
        stats.mark_sent(i, t0, intended, sent);
        let result = http.request(method, format!("{}/api/{path}", self.base)).bearer_auth(token).send().await;
        let warm = tl.is_warmup(kind, i);
        let resp = match result {
            Ok(resp) => resp,
            Err(e) => {
                let what = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "transport"
                };
                stats.settle(i, warm, intended, Some(sent), Instant::now(), Some(what));
                return;
            }
        };
        let status = resp.status().as_u16();
        let body = resp.bytes().await;
        let at = Instant::now();
        let error = match (status, &body) {
            (429, _) => Some("rate_limited".to_owned()),
            (200..=299, Ok(_)) => None,
            (200..=299, Err(_)) => Some("body".to_owned()),
            (status, _) => Some(format!("http_{status}")),
        };
        if !stats.settle(i, warm, intended, Some(sent), at, error.as_deref()) || error.is_some() {
            return;
        }
        if kind == Kind::DeleteBookmark {
            return;
        }
        #[derive(Deserialize)]
        struct Answer {
            data: Data,
        }
        #[derive(Deserialize)]
        struct Data {
            count: i64,
        }
        let Some(count) = body.ok().and_then(|b| serde_json::from_slice::<Answer>(&b).ok()).map(|a| a.data.count)
        else {
            stats.error("body");
            return;
        };
        t.likes_done.lock().push(LikeDone { kind, i, target, count, answered: at });
        let listeners = t.likes_joined.get(target as usize).map_or(0, |n| n.load(Ordering::Acquire));
        t.owe(Group::Likes, u64::from(listeners));
        if kind == Kind::Like {
            t.undoable.lock().push_back((actor, target));
        }
    }

    /// A `new_msg` or `typing` push through the planned actor's socket.
    async fn push(self: Arc<Self>, kind: Kind, i: u32, intended: Instant, t0: Instant) {
        let (ctx, tl, t) = (&self.ctx, &self.ctx.timeline, &self.ctx.tally);
        let stats = t.kind(kind);
        let (who, room, frame) = if kind == Kind::ChatMessage {
            let p = tl.messages[i as usize];
            let line = self.lines.get(p.line as usize).map_or("hello", String::as_str);
            let mut body = format!("{}{i} {line}", ctx.prefix);
            if let Some((_, name)) = p.mention.and_then(|k| self.made.mentionable.get(k as usize)) {
                body.push_str(&format!(" @{name}"));
            }
            (p.sender, p.room, ("new_msg", format!("m{i}"), json!({ "body": body })))
        } else {
            let p = tl.typings[i as usize];
            if p.typist == SKIPPED {
                stats.skip(i);
                return;
            }
            (p.typist, p.room, ("typing", format!("t{i}"), json!({})))
        };
        let Some(topic) = ctx.room_topics.get(room as usize) else {
            stats.fail_unsent(i, "no_room");
            return;
        };
        let (event, msg_ref, payload) = frame;
        let join_ref = format!("j{room}");
        let text = firehose_app::wire::encode_text(
            firehose_app::wire::Vsn::V2,
            Some(&join_ref),
            Some(&msg_ref),
            topic,
            event,
            &payload,
        );
        if kind == Kind::Typing
            && let Some(slot) = t.typing_pending.get(who as usize * ctx.rooms + room as usize)
        {
            slot.store(i + 1, Ordering::Release);
        }
        let Some(sink) = self.actors.sinks.get(who as usize) else {
            stats.fail_unsent(i, "no_actor_socket");
            return;
        };
        let Ok(mut sink) = tokio::time::timeout(SINK_WAIT, sink.lock()).await else {
            stats.fail_unsent(i, "actor_socket_busy");
            return;
        };
        let Some(sink) = sink.as_mut() else {
            stats.fail_unsent(i, "actor_socket_gone");
            return;
        };
        stats.mark_sent(i, t0, intended, Instant::now());
        if sink.send(Message::text(text)).await.is_err() {
            stats.fail_unsent(i, "send_failed");
        }
    }
}
