//! Counters for `GET /metrics`, in Prometheus text format. Hot-path counters are
//! plain atomics; socket tasks add their delivered-frame counts in batches.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use parking_lot::Mutex;

use crate::connections::SocketSlots;
use crate::ratelimit::{Action, IpLimit, UserLimits};
use crate::resources;
use crate::state::AppState;
use crate::store::Writer;

#[derive(Default)]
pub struct Metrics {
    pub sockets_opened: AtomicU64,
    pub sockets_refused: AtomicU64,
    pub joins: AtomicU64,
    pub join_errors: AtomicU64,
    pub broadcasts: AtomicU64,
    pub frames_delivered: AtomicU64,
    pub slow_consumer_closes: AtomicU64,
    pub revoked_closes: AtomicU64,
    pub bad_frames: AtomicU64,
    pub channel_crashes: AtomicU64,
    pub accept_errors: AtomicU64,
    pub header_timeouts: AtomicU64,
    pub slow_bodies: AtomicU64,
    pub anonymous_refused: AtomicU64,
    /// Broadcasts this node handed to the broker (a cluster node only).
    pub broker_published: AtomicU64,
    /// Numbered broadcasts this node received from the broker.
    pub broker_delivered: AtomicU64,
    /// Signals (typing, page readers) received from the other nodes.
    pub broker_signals: AtomicU64,
    pub broker_publish_retries: AtomicU64,
    pub broker_reconnects: AtomicU64,
    /// Subscribers told about a gap (`phx_error`, reason `gap`) after a reconnect.
    pub broker_gap_notices: AtomicU64,
    pub broker_bad_messages: AtomicU64,
    http: Mutex<BTreeMap<(String, String, u16), u64>>,
}

impl Metrics {
    pub fn http_request(&self, method: &str, route: &str, status: u16) {
        *self.http.lock().entry((method.to_owned(), route.to_owned(), status)).or_default() += 1;
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let counters: [(&str, &str, &AtomicU64); 21] = [
            ("firehose_sockets_opened_total", "WebSocket connections accepted", &self.sockets_opened),
            (
                "firehose_sockets_refused_total",
                "WebSocket upgrades refused (auth, version, load)",
                &self.sockets_refused,
            ),
            ("firehose_channel_joins_total", "Channel joins accepted", &self.joins),
            ("firehose_channel_join_errors_total", "Channel joins refused", &self.join_errors),
            ("firehose_broadcasts_total", "Broadcasts published (one per topic per event)", &self.broadcasts),
            ("firehose_frames_delivered_total", "Frames written to sockets", &self.frames_delivered),
            (
                "firehose_slow_consumer_closes_total",
                "Sockets closed because their outbox overflowed",
                &self.slow_consumer_closes,
            ),
            (
                "firehose_revoked_closes_total",
                "Sockets closed because the credential they connected with was revoked",
                &self.revoked_closes,
            ),
            ("firehose_bad_frames_total", "Client frames that could not be decoded", &self.bad_frames),
            ("firehose_channel_crashes_total", "Channel handlers that failed (phx_error sent)", &self.channel_crashes),
            (
                "firehose_accept_errors_total",
                "Failed accepts (out of descriptors: the loop backs off and keeps accepting)",
                &self.accept_errors,
            ),
            (
                "firehose_header_timeouts_total",
                "Connections closed without a complete request head within the header timeout",
                &self.header_timeouts,
            ),
            ("firehose_slow_bodies_total", "Requests answered 408: the body came too slowly", &self.slow_bodies),
            (
                "firehose_anonymous_refused_total",
                "Anonymous costly pushes (history, page joins) and searches refused over their budgets",
                &self.anonymous_refused,
            ),
            (
                "firehose_broker_published_total",
                "Broadcasts handed to the broker to be numbered",
                &self.broker_published,
            ),
            ("firehose_broker_delivered_total", "Numbered broadcasts received from the broker", &self.broker_delivered),
            (
                "firehose_broker_signals_total",
                "Unnumbered signals (typing, page readers) received from the other nodes",
                &self.broker_signals,
            ),
            (
                "firehose_broker_publish_retries_total",
                "Batches of broadcasts the broker did not take at once (retried with back-off)",
                &self.broker_publish_retries,
            ),
            (
                "firehose_broker_reconnects_total",
                "Subscriptions to the broker made again after a drop",
                &self.broker_reconnects,
            ),
            (
                "firehose_broker_gap_notices_total",
                "Subscribers told to recover (phx_error, reason gap) after the broker link dropped",
                &self.broker_gap_notices,
            ),
            ("firehose_broker_bad_messages_total", "Broker messages that could not be read", &self.broker_bad_messages),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", value.load(Relaxed));
        }
        let _ = writeln!(out, "# HELP firehose_http_requests_total HTTP requests by route and status");
        let _ = writeln!(out, "# TYPE firehose_http_requests_total counter");
        for ((method, route, status), n) in self.http.lock().iter() {
            let _ = writeln!(
                out,
                "firehose_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                route.replace('\\', "\\\\").replace('"', "\\\"")
            );
        }
        if let Some(rss) = resources::vm_rss_bytes() {
            let name = resources::RSS_METRIC;
            let _ = writeln!(out, "# HELP {name} Resident memory size in bytes\n# TYPE {name} gauge\n{name} {rss}");
        }
        if let Some(cpu) = resources::cpu_time() {
            let name = resources::CPU_METRIC;
            let secs = cpu.as_secs_f64();
            let _ = writeln!(
                out,
                "# HELP {name} User and system CPU time spent in seconds\n# TYPE {name} counter\n{name} {secs}"
            );
        }
        out
    }
}

/// `firehose_rate_limited_total{action=…}`: attempts refused by the per-user limits,
/// and by the per-IP sign-up budget (`action="signup"`).
fn render_rate_limited(out: &mut String, limits: &UserLimits, signups: &IpLimit) {
    let _ = writeln!(out, "# HELP firehose_rate_limited_total Attempts refused by the rate limits and budgets");
    let _ = writeln!(out, "# TYPE firehose_rate_limited_total counter");
    for action in Action::ALL {
        let _ =
            writeln!(out, "firehose_rate_limited_total{{action=\"{}\"}} {}", action.label(), limits.refused(action));
    }
    let _ = writeln!(out, "firehose_rate_limited_total{{action=\"signup\"}} {}", signups.refused());
}

/// Writes each `(name, help, value)` as a Prometheus gauge.
fn write_gauges(out: &mut String, gauges: &[(&str, &str, usize)]) {
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
    }
}

/// Gauges of what the process holds: topics, subscriptions, retained history events and
/// the runtime's live tasks (what a soak watches for growth).
fn render_holdings(out: &mut String, census: crate::pubsub::Census) {
    let tasks = tokio::runtime::Handle::current().metrics().num_alive_tasks();
    write_gauges(
        out,
        &[
            ("firehose_topics", "Pub/sub topics held (idle ones are freed after the recovery window)", census.topics),
            ("firehose_subscriptions", "Channel subscriptions across all topics", census.subscribers),
            ("firehose_history_events", "Broadcasts retained for recovery, all topics", census.history_events),
            (
                "firehose_history_largest_topic",
                "Broadcasts retained by the topic that holds the most",
                census.largest_history,
            ),
            ("firehose_tasks", "Tokio tasks alive in the server's runtime", tasks),
        ],
    );
}

/// `firehose_open_sockets` and `firehose_max_connections`, from the WebSocket slots.
fn render_connections(out: &mut String, slots: &SocketSlots) {
    write_gauges(
        out,
        &[
            ("firehose_open_sockets", "Open WebSocket connections (upgrades under way included)", slots.open()),
            ("firehose_max_connections", "WebSocket connections allowed at once", slots.max()),
        ],
    );
}

/// The write queue and group commit (`crate::store::Writer`): the mean batch size is
/// `firehose_writes_committed_total / firehose_write_batches_total`.
fn render_writes(out: &mut String, writer: &Writer) {
    let stats = writer.stats();
    write_gauges(
        out,
        &[
            ("firehose_write_queue_depth", "Writes queued for the database writer", writer.depth()),
            ("firehose_write_queue_capacity", "Bound of the write queue (--write-queue)", writer.capacity()),
        ],
    );
    let counters = [
        ("firehose_write_queue_rejected_total", "Writes refused with 503 because the queue was full", &stats.rejected),
        ("firehose_write_batches_total", "Transactions committed by the writer", &stats.batches),
        ("firehose_writes_committed_total", "Writes committed by the writer", &stats.committed),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", value.load(Relaxed));
    }
}

pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::with_capacity(4096);
    render_connections(&mut out, &state.socket_slots);
    out.push_str(&state.metrics.render());
    render_rate_limited(&mut out, &state.limits, &state.signups);
    render_holdings(&mut out, state.pubsub.census());
    render_writes(&mut out, &state.writer);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out)
}
