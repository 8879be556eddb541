//! The `rooms` report: its serialisable model (schema `firehose-sim/rooms/v1`,
//! documented in `simulator/REPORT.md`), the terminal summary, and the files written
//! to `<out>/<UTC timestamp>-rooms-<run id>/`: `report.json`, one `.hgrm` per histogram
//! and `summary.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::report::files;
use crate::report::histo::Summary;
pub use crate::report::model::{TargetInfo, Window};

/// Schema name and major version of a rooms `report.json`. Adding a field is
/// compatible; renaming, removing or changing the meaning or unit of one bumps it.
pub const ROOMS_SCHEMA: &str = "firehose-sim/rooms/v1";

/// A finished rooms run.
#[derive(Debug, Clone)]
pub struct RoomsReport {
    pub model: RoomsModel,
    /// `(name, histogram in µs)`, each written as `<name>.hgrm`.
    pub histograms: Vec<(String, Histogram<u64>)>,
    /// Each histogram's interval log, written as `<name>.hlog`.
    pub intervals: crate::report::timeline::IntervalLogs,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomsModel {
    pub schema: String,
    /// Always `"rooms"`.
    pub kind: String,
    pub simulator_version: String,
    pub run_id: String,
    pub started_at: String,
    pub finished_at: String,
    pub plan: serde_json::Value,
    pub target: TargetInfo,
    /// False when the generator fell behind its schedule.
    pub valid: bool,
    pub invalid_reasons: Vec<String>,
    pub window: Window,
    pub setup: Setup,
    pub members: Members,
    pub messages: Stream,
    pub typing: Stream,
    pub presence: Presence,
    pub health: Health,
    pub generator: GeneratorLag,
    pub simulator: Simulator,
    /// Absent when the target has no `process_resident_memory_bytes` in `/metrics`.
    pub server: Option<ServerMemory>,
    /// Histogram name → `.hgrm` file name beside `report.json`.
    pub histograms: BTreeMap<String, String>,
    /// Histogram name → HdrHistogram interval log (`.hlog`, 1 s intervals from t0)
    /// beside `report.json`; the intervals of each add up exactly to the histogram.
    #[serde(default)]
    pub histogram_logs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Setup {
    pub rooms_created: u64,
    pub users_created: u64,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Members {
    pub requested: u64,
    pub joined: u64,
    pub failed_to_join: u64,
    pub failures: BTreeMap<String, u64>,
    /// Sockets connect, then (all connected) join their rooms, both at this rate.
    pub connect_rate_per_s: f64,
    /// TCP connect + WebSocket upgrade.
    pub connect: Summary,
    /// `phx_join` push → its reply.
    pub join: Summary,
}

/// Messages or typing: pushes and their deliveries to the room's other members.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stream {
    pub scheduled: u64,
    pub warmup: u64,
    /// Not sent: no free typist (typing), or the planned member had not joined.
    pub skipped: u64,
    pub sent: u64,
    pub replies_ok: u64,
    pub replies_error: u64,
    pub errors: BTreeMap<String, u64>,
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub excess: u64,
    pub deliveries_per_s: f64,
    /// Receipt at each other member − the push's intended time.
    pub delivery: Summary,
    /// Push reply − intended time.
    pub reply_corrected: Summary,
    /// Push reply − actual send (messages only; empty for typing).
    pub reply_uncorrected: Summary,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Presence {
    pub scheduled: u64,
    pub warmup: u64,
    pub joins_sent: u64,
    pub joins_ok: u64,
    pub joins_refused: u64,
    pub errors: BTreeMap<String, u64>,
    pub churn_users: u64,
    pub churn_hold_s: f64,
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub excess: u64,
    /// `presence_diff` receipt at each member − the join push's actual send.
    pub join_to_diff: Summary,
    /// The same from the join's intended time (includes connecting the churn socket).
    pub join_to_diff_corrected: Summary,
    /// Join reply − join push sent.
    pub join_reply: Summary,
    pub churn_connect: Summary,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// No `phx_error`/`phx_close` on any member, no member socket closed, no push
    /// refused, no join failed.
    pub healthy: bool,
    pub phx_errors: u64,
    pub phx_closes: u64,
    pub closed_sockets: u64,
    pub push_errors: u64,
    /// Pushes (and churn joins) sent that got no reply at all.
    pub unanswered: u64,
    pub decode_errors: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub gaps: u64,
    pub own_echoes: u64,
    pub foreign: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GeneratorLag {
    pub lag: Summary,
    pub max_lag_ms: f64,
    pub max_lag_allowed_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Simulator {
    pub cpu_cores_during_traffic: Option<f64>,
    pub rss_before_bytes: Option<u64>,
    pub rss_after_bytes: Option<u64>,
    pub includes_embedded_server: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerMemory {
    /// Before the rooms and member sockets existed (after users were created).
    pub rss_before_bytes: u64,
    /// Every member socket connected (upgraded), no channel joined yet.
    pub rss_connected_bytes: Option<u64>,
    /// Once every member had joined (every room's actor running).
    pub rss_joined_bytes: u64,
    /// After the traffic and drain.
    pub rss_after_bytes: Option<u64>,
    /// (connected − before) / member sockets joined: an idle socket.
    pub rss_per_socket_bytes: Option<f64>,
    /// (joined − connected) / rooms: a room's actor and state with its members' channels
    /// (subscriptions, presence), sockets not included.
    pub rss_per_room_bytes: Option<f64>,
    /// (joined − before) / rooms: the same with the members' sockets.
    pub rss_per_room_with_sockets_bytes: Option<f64>,
    pub same_process_as_simulator: bool,
}

impl RoomsReport {
    pub fn is_valid(&self) -> bool {
        self.model.valid
    }
}

/// Renders the terminal summary.
pub fn render(r: &RoomsModel) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "\nfirehose-sim rooms {} against {} ({})", r.run_id, r.target.url, r.target.kind);
    if r.valid {
        let _ = writeln!(o, "validity        VALID");
    } else {
        let _ = writeln!(o, "validity        INVALID: {}", r.invalid_reasons.join("; "));
    }
    let w = &r.window;
    let _ = writeln!(
        o,
        "window          {:.1} s traffic ({:.1} s measured after {:.1} s warm-up), drain {:.2} s{}",
        w.traffic_s,
        w.measured_s,
        w.warmup_s,
        w.drain_s,
        if w.drain_timed_out { " (timed out)" } else { "" }
    );
    let m = &r.members;
    let _ = writeln!(
        o,
        "members         {} of {} joined in {} rooms (setup {:.1} s)",
        m.joined, m.requested, r.setup.rooms_created, r.setup.seconds
    );
    if !m.failures.is_empty() {
        let _ = writeln!(o, "join failures   {}", join_map(&m.failures));
    }

    let _ = writeln!(
        o,
        "\n{:<28}{:>8}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}",
        "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max", "mean"
    );
    row(&mut o, "message delivery", &r.messages.delivery);
    row(&mut o, "message reply corrected", &r.messages.reply_corrected);
    row(&mut o, "message reply uncorrected", &r.messages.reply_uncorrected);
    row(&mut o, "typing delivery", &r.typing.delivery);
    row(&mut o, "typing reply corrected", &r.typing.reply_corrected);
    row(&mut o, "presence join->diff", &r.presence.join_to_diff);
    row(&mut o, "presence join->diff corr.", &r.presence.join_to_diff_corrected);
    row(&mut o, "presence join reply", &r.presence.join_reply);
    row(&mut o, "member connect", &m.connect);
    row(&mut o, "member join", &m.join);
    row(&mut o, "generator lag", &r.generator.lag);

    let _ = writeln!(
        o,
        "\n{:<10}{:>10}{:>8}{:>8}{:>12}{:>12}{:>8}{:>8}{:>14}",
        "kind", "scheduled", "skipped", "sent", "expected", "received", "lost", "excess", "deliveries/s"
    );
    for (name, s) in [("messages", &r.messages), ("typing", &r.typing)] {
        let _ = writeln!(
            o,
            "{:<10}{:>10}{:>8}{:>8}{:>12}{:>12}{:>8}{:>8}{:>14.0}",
            name, s.scheduled, s.skipped, s.sent, s.expected, s.received, s.lost, s.excess, s.deliveries_per_s
        );
    }
    let p = &r.presence;
    let _ = writeln!(
        o,
        "{:<10}{:>10}{:>8}{:>8}{:>12}{:>12}{:>8}{:>8}{:>14}",
        "presence", p.scheduled, "-", p.joins_sent, p.expected, p.received, p.lost, p.excess, "-"
    );
    let mut errors = r.messages.errors.clone();
    errors.extend(r.typing.errors.clone());
    errors.extend(p.errors.clone());
    let _ = writeln!(o, "errors          {}", if errors.is_empty() { "none".into() } else { join_map(&errors) });
    let h = &r.health;
    let _ = writeln!(
        o,
        "health          {}: phx_error {}, phx_close {}, closed sockets {}, push errors {}, unanswered {}, \
         decode errors {}, dup {}, reorder {}, gaps {}",
        if h.healthy { "healthy" } else { "UNHEALTHY" },
        h.phx_errors,
        h.phx_closes,
        h.closed_sockets,
        h.push_errors,
        h.unanswered,
        h.decode_errors,
        h.duplicates,
        h.reordered,
        h.gaps
    );
    let g = &r.generator;
    let _ = writeln!(o, "generator       max lag {:.2} ms (allowed {:.0} ms)", g.max_lag_ms, g.max_lag_allowed_ms);
    if let Some(cores) = r.simulator.cpu_cores_during_traffic {
        let note = if r.simulator.includes_embedded_server { " (includes the in-process server)" } else { "" };
        let _ = writeln!(o, "simulator cpu   {cores:.2} cores busy during traffic{note}");
    }
    if let Some(s) = &r.server {
        let kib = |b: Option<f64>| b.map_or("n/a".to_owned(), |b| format!("{:.1} KiB", b / 1024.0));
        let mib = |b: Option<u64>| b.map_or("n/a".to_owned(), |b| format!("{:.1} MiB", b as f64 / 1048576.0));
        let _ = writeln!(
            o,
            "server memory   {} before rooms, {} sockets connected, {} joined, {} after the run{}",
            mib(Some(s.rss_before_bytes)),
            mib(s.rss_connected_bytes),
            mib(Some(s.rss_joined_bytes)),
            mib(s.rss_after_bytes),
            if s.same_process_as_simulator { " (same process as the simulator)" } else { "" }
        );
        let _ = writeln!(
            o,
            "                {} per idle socket; {} per room (actor + channels), {} with its sockets",
            kib(s.rss_per_socket_bytes),
            kib(s.rss_per_room_bytes),
            kib(s.rss_per_room_with_sockets_bytes),
        );
    }
    o
}

fn row(o: &mut String, name: &str, s: &Summary) {
    let _ = writeln!(
        o,
        "{name:<28}{:>8}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}",
        s.count, s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms, s.max_ms, s.mean_ms
    );
}

fn join_map(m: &BTreeMap<String, u64>) -> String {
    m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}

/// Writes `report` under `out` in a fresh folder and returns it.
pub fn write(report: &RoomsReport, out: &Path) -> io::Result<PathBuf> {
    let dir = files::create_stamped(out, &format!("rooms-{}", report.model.run_id))?;
    let mut model = report.model.clone();
    model.histogram_logs =
        files::write_histogram_logs(&dir, &report.histograms, &report.intervals, &report.model.started_at)?;
    files::write_histograms_and_model(&dir, &report.histograms, &model)?;
    let summary = format!("```\n{}```\n", render(&report.model).trim_start());
    files::create_new(&dir.join("summary.md"))?.write_all(summary.as_bytes())?;
    Ok(dir)
}
