//! Read traffic at its own open-model rates: the newest bookmarks (`read_list`,
//! `GET /api/bookmarks?limit=20`), a Zipf-hot corpus tag's feed (`read_tag`), a random
//! bookmark (`read_random`) and chat search (`search`, `GET /api/search?q=…` with words
//! of the corpus chat lines). Each kind is a lane of its own on the run's stage curve at
//! its `ReadsPlan` rate, fired by the dispatcher and recorded in its `KindStats`
//! (corrected and uncorrected latency, send lag, errors by status, transport errors by
//! kind). A 2xx that is not what was asked for is an error too (`check`). Searches are
//! signed in as one account made at setup (a real server may give anonymous search a
//! per-address budget), which first posts the chat lines the searches look for
//! ([`SEARCH_LINES`]); the other reads are anonymous, as a visitor's are.
//!
//! Choices (`pick`) come from the run's own seed and each read's index, so a run
//! repeats; each agent reads with its own seed at its share of the rates.

mod check;
mod pick;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use self::check::Expect;
use self::pick::Picks;
use crate::engine::dispatch::Lane;
use crate::engine::error::SimError;
use crate::engine::stats::KindStats;
use crate::engine::workload::{Cx, Workload};
use crate::http;
use crate::plan::reads::KINDS;
use crate::plan::stages::RateCurve;
use crate::report::names::Kind;

/// Bookmarks a list or tag-feed read asks for: the app's default page.
pub const LIST_LIMIT: u32 = 20;

/// One read kind of the run.
struct Stream {
    kind: Kind,
    stats: Arc<KindStats>,
    curve: RateCurve,
    /// Reads intended before the warm-up ended.
    warmup: u64,
}

/// The reads workload of a run.
#[derive(Default)]
pub struct Reads {
    streams: Vec<Arc<Stream>>,
    picks: Option<Arc<Picks>>,
    /// The searching account's token.
    token: Option<Arc<str>>,
}

impl Reads {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Workload for Reads {
    fn name(&self) -> &'static str {
        "reads"
    }

    fn prepare<'a>(&'a mut self, cx: &'a Arc<Cx>) -> BoxFuture<'a, Result<(), SimError>> {
        async move {
            let plan = &cx.plan;
            let tags: Vec<String> = cx.corpus.tags.iter().map(|t| t.name.clone()).collect();
            let searched = &cx.corpus.chat_lines[..SEARCH_LINES.min(cx.corpus.chat_lines.len())];
            let picks = Picks::new(plan.own_seed(), &tags, searched);
            for kind in KINDS {
                let rate = plan.reads.rate(kind);
                if rate <= 0.0 {
                    continue;
                }
                let missing = match kind {
                    Kind::ReadTag if !picks.has_tags() => Some("tags"),
                    Kind::Search if !picks.has_words() => Some("chat lines with searchable words"),
                    _ => None,
                };
                if let Some(what) = missing {
                    return Err(SimError::Setup(format!("{kind} needs {what} in the fixture corpus; it has none")));
                }
                let curve = plan.traffic.curve(rate);
                let stats = KindStats::new(kind, curve.mean_rate(), curve.count(), plan.traffic.max_lag);
                self.streams.push(Arc::new(Stream {
                    kind,
                    stats: cx.meters.add_kind(stats),
                    warmup: curve.count_before(plan.traffic.warmup),
                    curve,
                }));
            }
            if plan.reads.rate(Kind::Search) > 0.0 {
                let own = format!("{}{}", cx.run_id, plan.agents.slot.map_or(0, |s| s.index));
                let accounts = cx
                    .api
                    .create_accounts(&[format!("s{own}")], &own)
                    .await
                    .map_err(|e| SimError::Setup(format!("search account: {e}")))?;
                let Some(account) = accounts.into_iter().next() else {
                    return Err(SimError::Setup("search account: none was made".into()));
                };
                post_searched_lines(cx, &account.token, &own, searched).await?;
                self.token = Some(Arc::from(account.token));
            }
            self.picks = Some(Arc::new(picks));
            Ok(())
        }
        .boxed()
    }

    fn open<'a>(&'a mut self, _cx: &'a Arc<Cx>) -> BoxFuture<'a, Result<(), SimError>> {
        async { Ok(()) }.boxed()
    }

    fn start(&self, _cx: &Arc<Cx>, _t0: Instant) {}

    fn drive(&self, cx: &Arc<Cx>) -> Result<Vec<Lane>, SimError> {
        let Some(picks) = &self.picks else { return Ok(Vec::new()) };
        let clients = cx.measured_clients()?;
        let lanes = self
            .streams
            .iter()
            .map(|stream| {
                let curve = stream.curve.clone();
                let events = (0..curve.count()).map(move |i| (curve.offset(i), i));
                let kind = stream.kind;
                let (stream, picks, clients, token) =
                    (Arc::clone(stream), Arc::clone(picks), clients.clone(), self.token.clone());
                let fire = move |i: u64, intended: Instant| {
                    let (stream, picks, client, token) =
                        (Arc::clone(&stream), Arc::clone(&picks), clients.for_action(i).clone(), token.clone());
                    async move { read(&stream, &picks, &client, token.as_deref(), i, intended).await }.boxed()
                };
                Lane::new(kind, events, true, fire)
            })
            .collect();
        Ok(lanes)
    }

    fn drain<'a>(&'a self, _cx: &'a Arc<Cx>, _deadline: Instant) -> BoxFuture<'a, bool> {
        // Every read was answered (or failed) when the dispatcher returned.
        async { true }.boxed()
    }

    fn finish<'a>(self: Box<Self>, _cx: &'a Arc<Cx>) -> BoxFuture<'a, ()> {
        async {}.boxed()
    }
}

/// The searches look for words of the corpus's first this many chat lines, which the
/// search account posts before measuring (within a real server's default budget of 10
/// messages per 10 s), so that each search finds what it asks for.
pub const SEARCH_LINES: usize = 10;

/// Posts `lines` as the search account (`token`) in a public room of its own, so that
/// searches have something to find; each `new_msg` answered before the next. A refusal
/// for the rate is retried after the wait it gives.
async fn post_searched_lines(cx: &Cx, token: &str, own: &str, lines: &[String]) -> Result<(), SimError> {
    let slug = format!("sim-search-{own}");
    let fail = |what: String| SimError::Setup(format!("search chat: {what}"));
    cx.api.create_room(token, &format!("sim search {own}"), &slug, false).await.map_err(fail)?;
    let deadline = tokio::time::Instant::now() + SEARCH_SETUP_TIMEOUT;
    let topic = format!("room:{slug}");
    // Setup: the first target.
    let (mut socket, _) =
        cx.route.connect(0, cx.sources.next(), Some(token), deadline).await.map_err(|f| fail(f.to_string()))?;
    socket.join_plain(&topic, "j", deadline).await.map_err(|f| fail(f.to_string()))?;
    for (i, line) in lines.iter().enumerate() {
        let msg_ref = format!("m{i}");
        loop {
            let payload = serde_json::json!({ "body": line });
            socket.push(&topic, "j", &msg_ref, "new_msg", &payload).await.map_err(|f| fail(f.to_string()))?;
            match socket.reply(&msg_ref, deadline, &mut |_, _| {}).await.map_err(|f| fail(f.to_string()))? {
                Ok(_) => break,
                Err(reason) if reason == "rate_limited" => tokio::time::sleep(Duration::from_secs(1)).await,
                Err(reason) => return Err(fail(format!("new_msg refused: {reason}"))),
            }
        }
    }
    socket.close().await;
    Ok(())
}

/// How long posting the searched lines may take, rate-limit waits included.
const SEARCH_SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Read `i` of `stream`, intended at `intended`: sent, answered, checked, recorded.
async fn read(stream: &Stream, picks: &Picks, client: &http::Client, token: Option<&str>, i: u64, intended: Instant) {
    let (stats, key) = (&stream.stats, i as usize);
    // The choice is made before the send, so it is in no latency.
    let tag = match stream.kind {
        Kind::ReadTag => picks.tag(i),
        _ => None,
    };
    let query = match stream.kind {
        Kind::Search => picks.query(i),
        _ => None,
    };
    let sent = Instant::now();
    stats.sent(key, intended, sent);
    let (result, expect) = match (stream.kind, tag, query.as_deref()) {
        (Kind::ReadList, ..) => (client.list(LIST_LIMIT).await, Expect::List { limit: LIST_LIMIT }),
        (Kind::ReadTag, Some(tag), _) => {
            (client.tag_feed(tag, LIST_LIMIT).await, Expect::Tag { tag, limit: LIST_LIMIT })
        }
        (Kind::ReadRandom, ..) => (client.random().await, Expect::One),
        (Kind::Search, _, Some(q)) => (client.search(q, token).await, Expect::Search),
        _ => {
            stats.error("nothing_to_read");
            return;
        }
    };
    let done = Instant::now();
    let measured = i >= stream.warmup;
    let answer = match result {
        Ok(answer) => answer,
        Err(transport) => {
            stats.error(transport.kind());
            return;
        }
    };
    if let Some(kind) = answer.error_kind() {
        stats.answered(key, measured, intended, Some(sent), done, Err(&kind));
        return;
    }
    match check::check(expect, &answer.body) {
        Ok(items) => {
            stats.answered(key, measured, intended, Some(sent), done, Ok(()));
            if items == 0 {
                stats.add_detail("empty", 1);
            }
        }
        Err(problem) => stats.answered(key, measured, intended, Some(sent), done, Err(problem.name())),
    }
}
