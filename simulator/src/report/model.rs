//! The shape of `report.json` (documented field by field in `simulator/REPORT.md`).
//! Adding a field is compatible; renaming, removing or changing the meaning or unit of
//! one bumps the version in `SCHEMA`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::report::histo::Summary;

/// Schema name and major version of `report.json`.
pub const SCHEMA: &str = "firehose-sim/report/v2";

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportModel {
    pub schema: String,
    pub simulator_version: String,
    /// Random per run (shared by every agent of it); also in every measured bookmark URL
    /// (`#sim-<run_id>-<i>`) and chat message.
    pub run_id: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: String,
    /// The resolved plan, as `firehose-sim run` printed it.
    pub plan: serde_json::Value,
    /// The first target (the only one, unless `--target` was repeated).
    pub target: TargetInfo,
    /// Every target by its place in `--target` order (`0`, `1`, …): what the run's
    /// sockets did there and that node's server figures. Reports before several
    /// targets lack it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub targets: BTreeMap<usize, TargetReport>,
    /// The target profile the run used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileSummary>,
    /// Pass or fail, and why; the exit code.
    pub verdict: Verdict,
    pub window: Window,
    /// Per traffic kind driven (`create_bookmark`, `like`, …, see `report::names::Kind`).
    pub actions: BTreeMap<String, ActionReport>,
    /// Per listener group with listeners (`firehose`, `tag`, `room`, …).
    pub groups: BTreeMap<String, GroupReport>,
    /// Every listener socket of every group.
    pub listeners: ListenersReport,
    /// Sums over every kind and group.
    pub totals: Totals,
    pub scheduler: SchedulerReport,
    pub simulator: SimulatorResources,
    /// Absent when the target does not expose `process_resident_memory_bytes`. With
    /// several targets, summed over the distinct nodes (each target's own figures are
    /// under `targets`).
    pub server: Option<ServerResources>,
    /// Every gate judged on this run: the default ones and the `--threshold`s, in order.
    #[serde(default)]
    pub thresholds: Vec<ThresholdOutcome>,
    /// Histogram name → `.hgrm` file name beside `report.json`.
    pub histograms: BTreeMap<String, String>,
    /// Histogram name → JSON pointer of the `Summary` in this report computed from it
    /// (e.g. `delivery_firehose` → `/groups/firehose/latency`): what `merge` recomputes
    /// from the merged histograms.
    #[serde(default)]
    pub histogram_paths: BTreeMap<String, String>,
    /// Histogram name → HdrHistogram interval log (`.hlog`) beside `report.json`; the
    /// intervals of each add up exactly to the histogram.
    #[serde(default)]
    pub histogram_logs: BTreeMap<String, String>,
    /// The run second by second: per kind and per group rates and latencies, open
    /// connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<crate::report::timeline::Timeline>,
    /// A merged report (`run --agents K`, `firehose-sim merge`): the report each agent
    /// wrote, kept under `agents/<label>/`. Empty for a single process's run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<AgentEntry>,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Valid, complete and every gate passed.
    pub passed: bool,
    /// False when an action went out later than `--max-lag` after its intended start:
    /// then the figures describe the simulator, not the server (exit 3).
    pub valid: bool,
    pub invalid_reasons: Vec<String>,
    /// Set when the run is partial, saying why: the target closed listener sockets or
    /// channels, listeners could not join, the run failed after listeners connected or
    /// was interrupted. Listeners a ramp holds back on purpose are never a reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<String>,
    /// The gates that failed (their expressions).
    pub failed_gates: Vec<String>,
    /// `firehose-sim run`'s exit code for this report.
    pub exit_code: u8,
    /// One line: `PASS` or `FAIL: …` with the reason.
    pub line: String,
}

/// Sums over every kind and every group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Actions sent, every kind.
    pub sent: u64,
    pub ok: u64,
    /// Actions that failed, every kind.
    pub errors: u64,
    /// Actions sent later than `--max-lag`.
    pub late: u64,
    /// Deliveries owed, per (listener, event), every group.
    pub expected: u64,
    /// Owed deliveries received (once each).
    pub received: u64,
    /// Owed deliveries never received.
    pub lost: u64,
    pub duplicates: u64,
    /// Deliveries nobody was owed (duplicates, strays, private leaks).
    pub excess: u64,
    pub private_leak: u64,
    pub reordered: u64,
    pub decode_errors: u64,
    /// Owed deliveries of measured events received once, per second, every group.
    pub deliveries_per_s: f64,
}

/// The dispatcher: lag over every kind and the in-flight cap.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchedulerReport {
    pub max_lag_allowed_ms: f64,
    /// The largest send lag of any action.
    pub max_lag_ms: f64,
    pub in_flight_cap: u32,
    /// Actions that found every in-flight slot taken and had to wait.
    pub in_flight_cap_hits: u64,
    pub max_in_flight: u64,
    /// The 1-minute load average at the end of the traffic phase (Linux), for reading
    /// an invalid run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_average: Option<f64>,
}

/// What a run's target profile means for reading its report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProfileSummary {
    /// `firehose` for the built-in default.
    pub name: String,
    /// The profile file; absent for the built-in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// False when the profile's events carry no sequence number: then `reordered` and
    /// `gaps` are not measured (always 0).
    pub seq_checks: bool,
    /// Whether public/private and the stored tags were read from the create response
    /// (true) or assumed as requested (false).
    pub public_from_response: bool,
    pub tags_from_response: bool,
}

/// One input of a merged report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentEntry {
    /// Position among the inputs (the agent index for `run --agents`).
    pub index: u32,
    /// `agent-<i>`: the prefix of its invalid reasons.
    pub label: String,
    /// Its report folder, relative to the merged one (`agents/agent-<i>`).
    pub report_dir: String,
    /// Where the folder was read from.
    pub source_dir: String,
    pub run_id: String,
    pub valid: bool,
    pub passed: bool,
    /// Listeners it held (joined) and was asked to open.
    pub listeners: u64,
    pub listeners_requested: u64,
    /// Actions it sent.
    pub sent: u64,
    /// Its share of the plan.
    pub plan: serde_json::Value,
}

/// One traffic kind's actions (`actions.<kind>`), open model: every action has an
/// intended start; the corrected latency counts from it, the uncorrected from the send.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionReport {
    /// Mean planned rate over the traffic phase (stages included).
    pub rate_per_s: f64,
    pub scheduled: u64,
    pub sent: u64,
    /// Actions that succeeded (2xx, an `ok` reply, a rejoin).
    pub ok: u64,
    /// Actions that had nothing to act on (no quiet typist, no like to undo yet).
    pub skipped: u64,
    /// Actions sent later than `--max-lag` after their intended start.
    pub late: u64,
    pub max_lag_ms: f64,
    /// Kind → count: `http_<status>`, `timeout`, `rate_limited`, `join_error:<reason>`, …
    pub errors: BTreeMap<String, u64>,
    pub error_count: u64,
    /// Actions completed per second over the traffic phase.
    pub throughput_per_s: f64,
    /// Completion − intended start, actions past the warm-up.
    pub latency_corrected: Summary,
    /// Completion − actual send, same actions.
    pub latency_uncorrected: Summary,
    /// Actual send − intended start, every action.
    pub lag: Summary,
    /// Kind-specific counts: `replayed` (events replayed in rejoin replies), `storms`,
    /// `attempts`, `max_attempts` (reconnect storms), `created_public`,
    /// `created_private` (bookmarks), `merged_away` (page readers), …
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub detail: BTreeMap<String, u64>,
}

/// One gate, judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdOutcome {
    /// The expression as given, e.g. `delivery.firehose.p99 < 100ms`.
    pub expr: String,
    pub metric: String,
    /// The figure in `unit` (a number, or a bool for flags); null when the report
    /// lacks it (then the gate fails).
    pub actual: serde_json::Value,
    /// `ms`, `/s`, `fraction` (0–1) or empty for counts and flags.
    pub unit: String,
    /// Operator and bound in `unit`, e.g. `< 100 ms`.
    pub expected: String,
    pub passed: bool,
    /// A default gate (errors, loss, private leaks) rather than a `--threshold`.
    #[serde(default)]
    pub default: bool,
}

impl ReportModel {
    /// The targets as outputs name them: `embedded` (what to call the in-process app)
    /// or every target's URL, comma separated.
    pub fn target_text(&self, embedded: &str) -> String {
        if self.target.kind == "embedded" {
            return embedded.to_owned();
        }
        if self.targets.len() > 1 {
            return self.targets.values().map(|t| t.url.as_str()).collect::<Vec<_>>().join(", ");
        }
        self.target.url.clone()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetInfo {
    /// `embedded` or `external`.
    pub kind: String,
    /// The base URL (for an embedded target, the ephemeral address it ran on).
    pub url: String,
}

impl TargetInfo {
    pub fn new(embedded: bool, url: String) -> Self {
        Self { kind: if embedded { "embedded" } else { "external" }.into(), url }
    }
}

/// One target of a run (`targets.<i>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetReport {
    /// `embedded` or `external`.
    pub kind: String,
    pub url: String,
    /// Sockets (listeners, actors, presence sockets, readers) connected to it,
    /// reconnects included.
    pub sockets_connected: u64,
    /// Connects to it that failed, after which the socket tried the next target.
    pub failovers: u64,
    /// Its server's figures (of its node: entries with the same URL show the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerResources>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Window {
    /// Planned traffic phase, warm-up included.
    pub duration_s: f64,
    pub warmup_s: f64,
    /// `duration_s − warmup_s`: the window rates are computed over.
    pub measured_s: f64,
    /// From the first intended start to the last answer.
    pub traffic_s: f64,
    /// From the last answer until every owed delivery arrived (or the timeout).
    pub drain_s: f64,
    pub drain_timed_out: bool,
}

impl Window {
    pub fn new(
        duration: Duration,
        warmup: Duration,
        traffic: Duration,
        drain: Duration,
        drain_timed_out: bool,
    ) -> Self {
        Self {
            duration_s: duration.as_secs_f64(),
            warmup_s: warmup.as_secs_f64(),
            measured_s: duration.saturating_sub(warmup).as_secs_f64(),
            traffic_s: traffic.as_secs_f64(),
            drain_s: drain.as_secs_f64(),
            drain_timed_out,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListenersReport {
    /// Listener (and actor) sockets the plan opens before traffic, every group; the
    /// listeners a ramp opens during traffic are in `ramped`, not here.
    pub requested: u64,
    pub joined: u64,
    /// Listeners that tried and never joined (a real failure: the run is partial).
    pub failed_to_join: u64,
    /// Listeners a listener ramp connects only during the traffic phase (accounted by
    /// `seq` in their group's `late`); never failures.
    pub ramped: u64,
    /// Failure name → count (see `phoenix::Failure`): join failures and, for sockets
    /// the target closed after joining, `closed_during_run` ones.
    pub failures: BTreeMap<String, u64>,
    pub closed_during_run: u64,
    /// Joined listener sockets a target closed that reconnected (to it, or the next
    /// target that took them) and rejoined with `since` (several targets only): not in
    /// `closed_during_run`, their deliveries are still owed.
    #[serde(default)]
    pub recovered: u64,
    pub connect_rate_per_s: f64,
    /// Connect + WebSocket upgrade + join reply, per joined listener.
    pub connect: Summary,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupReport {
    /// Joined listeners of the group.
    pub listeners: u64,
    /// Distinct topics the group's listeners joined.
    pub topics: u64,
    /// Deliveries owed, per (listener, event): Σ over events of the joined listeners
    /// whose topic the event was broadcast on.
    pub expected: u64,
    /// Owed deliveries received, each (listener, event) once.
    pub received: u64,
    /// `expected − received`: owed deliveries never received.
    pub lost: u64,
    /// Listeners that missed at least one owed event.
    pub listeners_with_loss: u64,
    /// Deliveries of an event a listener already had.
    pub duplicates: u64,
    /// Deliveries nobody was owed: `duplicates + unowed + private_leak`. Never offsets
    /// `lost`.
    pub excess: u64,
    /// Deliveries of this run's events whose action failed or was not settled, or at a
    /// listener outside the event's audience.
    pub unowed: u64,
    pub private_leak: u64,
    /// Per listener: an event with a lower `seq` than the previous one.
    pub reordered: u64,
    /// Per listener: `seq` values skipped between consecutive events.
    pub gaps: u64,
    /// Events not from this run (seeding, other clients).
    pub foreign: u64,
    pub decode_errors: u64,
    /// From the first post-warm-up intended start to the last post-warm-up delivery.
    pub delivery_span_s: f64,
    /// Owed deliveries of post-warm-up events received once, per second of the longer
    /// of `measured_s` and `delivery_span_s`; excess deliveries never count here.
    pub deliveries_per_s: f64,
    /// Receipt − the event's intended start, measured events.
    pub latency: Summary,
    /// Time from intended start until 50 %, 99 % and 100 % of each measured event's
    /// audience in this group had it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach: Option<ReachReport>,
    /// Listeners connected only part of the traffic phase by a listener ramp, accounted
    /// by `seq` continuity; `expected`, `received` and `lost` above include theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late: Option<LateReport>,
    /// Joined listeners per topic (the `tag` group: tag → listeners).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub topic_listeners: BTreeMap<String, u64>,
}

/// Time from intended start until 50 %, 99 % and 100 % of an event's audience had it,
/// over the measured events (an event that never reached everyone has no `pct_100`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReachReport {
    pub pct_50: Summary,
    pub pct_99: Summary,
    pub pct_100: Summary,
}

/// Ramped listeners of one group, in `groups.<group>.late`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LateReport {
    /// Ramped listeners (connected only part of the traffic phase).
    pub listeners: u64,
    /// Their connected windows (a listener ramped down and up again has several).
    pub windows: u64,
    /// Events owed by `seq` continuity: every `seq` after each window's join position,
    /// up to the last one it saw before a ramp-down, or the topic's final `seq` for a
    /// window open at the end.
    pub expected: u64,
    pub received: u64,
    /// `expected − received`, per window.
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// Joins that failed, by kind.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failures: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SimulatorResources {
    /// VmRSS before opening listeners and after all joined.
    pub rss_before_bytes: Option<u64>,
    pub rss_after_bytes: Option<u64>,
    pub rss_per_listener_bytes: Option<f64>,
    /// True for an embedded target: the server's sockets (and, for CPU, its work)
    /// live in the same process and are included.
    pub includes_embedded_server: bool,
    /// User + system CPU seconds this process used during the traffic phase; near the
    /// machine's core count, the simulator itself was a bottleneck.
    pub cpu_s_during_traffic: Option<f64>,
    /// `cpu_s_during_traffic / window.traffic_s`: cores busy on average.
    pub cpu_cores_during_traffic: Option<f64>,
    /// Simulator CPU microseconds per owed delivery received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_us_per_delivery: Option<f64>,
}

/// CPU microseconds per delivery: `cpu_s` over `received` deliveries (none: unknown).
/// One rule for a run's report and for a merge of agents' reports.
pub fn per_delivery(cpu_s: f64, received: u64) -> Option<f64> {
    (received > 0).then(|| cpu_s * 1e6 / received as f64)
}

/// The server's process as its `/metrics` reports it (`firehose_app::resources`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerResources {
    /// `process_resident_memory_bytes` before listeners connect and after all joined.
    pub rss_before_bytes: u64,
    pub rss_after_bytes: u64,
    pub rss_per_socket_bytes: Option<f64>,
    /// True for an embedded target: the figures include the simulator's listeners and
    /// its CPU.
    pub same_process_as_simulator: bool,
    /// `process_cpu_seconds_total` gained during the traffic phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_s_during_traffic: Option<f64>,
    /// `cpu_s_during_traffic / window.traffic_s`: cores busy on average.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_cores_during_traffic: Option<f64>,
    /// Server CPU microseconds per owed delivery received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_us_per_delivery: Option<f64>,
    /// For one target of several (`targets.<i>.server`): the sockets its node held at
    /// the reading, which `rss_per_socket_bytes` divides by (the summed figure divides
    /// by `listeners.joined`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sockets: Option<u64>,
}
