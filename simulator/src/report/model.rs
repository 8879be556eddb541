//! The shape of `report.json` (documented field by field in `simulator/REPORT.md`).
//! Adding a field is compatible; renaming, removing or changing the meaning or unit of
//! one bumps the version in `SCHEMA`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::report::histo::Summary;

/// Schema name and major version of `report.json`.
pub const SCHEMA: &str = "firehose-sim/report/v1";

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportModel {
    pub schema: String,
    pub simulator_version: String,
    /// Random per run; also in every measured bookmark URL (`#sim-<run_id>-<i>`).
    pub run_id: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: String,
    /// The resolved plan, as `firehose-sim run` printed it.
    pub plan: serde_json::Value,
    pub target: TargetInfo,
    /// False when the generator fell behind its schedule: then the figures describe
    /// the simulator, not the server.
    pub valid: bool,
    pub invalid_reasons: Vec<String>,
    pub window: Window,
    pub requests: Requests,
    pub generator: GeneratorReport,
    pub listeners: ListenersReport,
    /// Per listener group: `firehose`, `tag`.
    pub groups: BTreeMap<String, GroupReport>,
    pub deliveries: DeliveriesReport,
    pub simulator: SimulatorResources,
    /// Absent when the target does not expose `process_resident_memory_bytes`.
    pub server: Option<ServerMemory>,
    /// Histogram name → `.hgrm` file name beside `report.json`.
    pub histograms: BTreeMap<String, String>,
    /// The `--threshold` gates judged on this run, in the order given (empty without
    /// any; absent in reports written before gates existed).
    #[serde(default)]
    pub thresholds: Vec<ThresholdOutcome>,
    /// Per traffic kind other than bookmark creation (which is `requests`): `like`,
    /// `unlike`, `delete_bookmark`, `chat_message`, `typing`, `presence_churn`,
    /// `reconnect_storm`, `page_readers`. Only the kinds the plan drives appear.
    #[serde(default)]
    pub actions: BTreeMap<String, ActionReport>,
    /// Histogram name → JSON pointer of the `Summary` in this report computed from it
    /// (e.g. `delivery_firehose` → `/groups/firehose/latency`): what `merge` recomputes
    /// from the merged histograms.
    #[serde(default)]
    pub histogram_paths: BTreeMap<String, String>,
    /// Histogram name → HdrHistogram interval log (`.hlog`) beside `report.json`; the
    /// intervals of each add up exactly to the histogram.
    #[serde(default)]
    pub histogram_logs: BTreeMap<String, String>,
    /// The run second by second: rates, per-interval p50/p99, open connections, errors
    /// (absent in reports written before it existed or by runs that do not sample).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<crate::report::timeline::Timeline>,
    /// A merged report (`run --agents K`, `firehose-sim merge`): the report each agent
    /// wrote, kept under `agents/<label>/`. Empty for a single process's run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<AgentEntry>,
    /// Set when the report is partial, saying why: the target closed listener sockets
    /// or channels during the run (deliveries owed to them afterwards count as lost),
    /// or the run failed after listeners connected. Absent for a complete run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<String>,
    /// The target profile the run used (absent in reports written before profiles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileSummary>,
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
    /// False when the profile's events carry no sequence number: then `duplicates`,
    /// `reordered` and `gaps` are not measured (always 0), only loss and excess are.
    pub seq_checks: bool,
    /// Whether public/private and the stored tags were read from the create response
    /// (true) or assumed as requested (false).
    pub public_from_response: bool,
    pub tags_from_response: bool,
}

impl ProfileSummary {
    pub fn of(p: &crate::plan::profile::Profile) -> Self {
        Self {
            name: p.name.clone(),
            source: p.source.as_ref().map(|s| s.display().to_string()),
            seq_checks: p.checks_seq(),
            public_from_response: p.create.public.is_some(),
            tags_from_response: p.create.tags.is_some(),
        }
    }
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
    /// Listeners it held (joined) and was asked to open.
    pub listeners: u64,
    pub listeners_requested: u64,
    pub requests_sent: u64,
    /// Its share of the plan.
    pub plan: serde_json::Value,
}

/// One traffic kind's actions (`actions.<kind>`), open model: every action has an
/// intended start; the corrected latency counts from it, the uncorrected from the send.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ActionReport {
    /// Mean planned rate over the traffic phase (stages included).
    pub rate_per_s: f64,
    pub scheduled: u64,
    pub sent: u64,
    /// Actions that succeeded (2xx, or an `ok` reply to a push).
    pub ok: u64,
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
    /// Kind-specific counts: `replayed` (events the server replayed in rejoin replies;
    /// `presence_churn`, `reconnect_storm`), `storms`, `attempts` (connection tries over
    /// all reconnects) and `max_attempts` (most tries of one socket) for `reconnect_storm`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub detail: BTreeMap<String, u64>,
}

/// One gate, judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdOutcome {
    /// The expression as given, e.g. `delivery.firehose.p99 < 100ms`.
    pub expr: String,
    pub metric: String,
    /// The figure in `unit` (a number, or a bool for `valid`); null when the report
    /// lacks it (then the gate fails).
    pub actual: serde_json::Value,
    /// `ms`, `/s`, `fraction` (0–1) or empty for counts and flags.
    pub unit: String,
    /// Operator and bound in `unit`, e.g. `< 100 ms`.
    pub expected: String,
    pub passed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetInfo {
    /// `embedded` or `external`.
    pub kind: String,
    pub url: String,
}

impl TargetInfo {
    pub fn new(embedded: bool, url: String) -> Self {
        Self { kind: if embedded { "embedded" } else { "external" }.into(), url }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Window {
    /// Planned traffic phase, warm-up included.
    pub duration_s: f64,
    pub warmup_s: f64,
    /// `duration_s − warmup_s`: the window rates are computed over.
    pub measured_s: f64,
    /// From the first intended start to the last response.
    pub traffic_s: f64,
    /// From the last response until every owed delivery arrived (or the timeout).
    pub drain_s: f64,
    pub drain_timed_out: bool,
}

impl Window {
    /// The phases of a run whose planned traffic phase is `duration` long, the first
    /// `warmup` of it left out of measurement.
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
            measured_s: (duration - warmup).as_secs_f64(),
            traffic_s: traffic.as_secs_f64(),
            drain_s: drain.as_secs_f64(),
            drain_timed_out,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Requests {
    pub scheduled: u64,
    pub warmup: u64,
    pub sent: u64,
    /// Requests that got an HTTP response (any status).
    pub responses: u64,
    /// Responses to requests past the warm-up: the latency figures' population.
    pub measured: u64,
    /// 201 responses, public and private.
    pub created: u64,
    pub created_public: u64,
    pub created_private: u64,
    /// Kind → count: `http_<status>`, `timeout`, `connect`, `body`, `transport`, …
    pub errors: BTreeMap<String, u64>,
    pub error_count: u64,
    /// Responses per second over `traffic_s`.
    pub throughput_per_s: f64,
    /// Response − intended start (coordinated omission corrected).
    pub latency_corrected: Summary,
    /// Response − actual send.
    pub latency_uncorrected: Summary,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GeneratorReport {
    /// Actual send − intended start, every request.
    pub lag: Summary,
    pub max_lag_ms: f64,
    pub max_lag_allowed_ms: f64,
    pub in_flight_cap: u32,
    /// Requests that found the in-flight cap reached and had to wait.
    pub in_flight_cap_hits: u64,
    pub max_in_flight: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListenersReport {
    pub requested: u64,
    pub joined: u64,
    pub failed_to_join: u64,
    /// Kind → count. Join failures (`connect_refused`, `upgrade_http_429`,
    /// `join_error:<reason>`, `join_timeout`, …) and, prefixed `during_run:`, sockets
    /// or channels closed after joining.
    pub failures: BTreeMap<String, u64>,
    pub closed_during_run: u64,
    /// Tag → joined listeners on `bookmarks:tag:<tag>`.
    pub tag_topics: BTreeMap<String, u64>,
    pub connect_rate_per_s: f64,
    /// Connect + WebSocket upgrade + join reply, per joined listener.
    pub connect: Summary,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GroupReport {
    /// Joined listeners of the group.
    pub listeners: u64,
    /// Distinct topics the group's listeners joined.
    pub topics: u64,
    /// Deliveries owed: Σ over public 201 events of the joined listeners subscribed.
    pub expected: u64,
    /// Deliveries of this run's events received.
    pub received: u64,
    /// Σ max(0, expected − received) per event.
    pub lost: u64,
    /// Σ max(0, received − expected) per event.
    pub excess: u64,
    /// Per listener: an event with the same `seq` as the previous one.
    pub duplicates: u64,
    /// Per listener: an event with a lower `seq` than the previous one.
    pub reordered: u64,
    /// Per listener: `seq` values skipped between consecutive events.
    pub gaps: u64,
    /// `bookmark_created` events not from this run (seeding, other clients).
    pub foreign: u64,
    pub private_leak: u64,
    /// From the first post-warm-up intended start to the last post-warm-up delivery.
    pub delivery_span_s: f64,
    /// Deliveries of post-warm-up events per second of the longer of `measured_s` and
    /// `delivery_span_s` (a server that falls behind delivers over a longer span).
    pub deliveries_per_s: f64,
    /// Receipt − the request's intended start, measured events.
    pub latency: Summary,
    /// Time from intended start until 50 %, 99 % and 100 % of each measured event's
    /// audience in this group had it (absent for groups that do not measure it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach: Option<crate::workloads::bookmarks::reach::ReachReport>,
    /// Listeners connected only part of the traffic phase by a listener ramp, accounted
    /// by `seq` continuity (see `crate::ramp`); `expected`, `received`, `lost`,
    /// `duplicates` and `reordered` above include theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late: Option<crate::workloads::bookmarks::ramp::LateReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveriesReport {
    /// Deliveries of bookmarks created private: must be 0.
    pub private_leak: u64,
    /// `bookmark_created` events of other origin, all groups.
    pub foreign: u64,
    /// Deliveries of this run's events whose request failed or never settled.
    pub unowed: u64,
    /// Frames a listener could not decode.
    pub decode_errors: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimulatorResources {
    /// VmRSS before opening listeners and after all joined.
    pub rss_before_bytes: Option<u64>,
    pub rss_after_bytes: Option<u64>,
    pub rss_per_listener_bytes: Option<f64>,
    /// True for an embedded target: the server's sockets (and, for CPU, its work)
    /// live in the same process and are included.
    pub includes_embedded_server: bool,
    /// User + system CPU seconds this process used from the first intended start to
    /// the last response; near the machine's core count, the simulator itself was a
    /// bottleneck and its latencies are suspect.
    pub cpu_s_during_traffic: Option<f64>,
    /// `cpu_s_during_traffic / window.traffic_s`: cores busy on average.
    pub cpu_cores_during_traffic: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerMemory {
    /// `process_resident_memory_bytes` before listeners connect and after all joined.
    pub rss_before_bytes: u64,
    pub rss_after_bytes: u64,
    pub rss_per_socket_bytes: Option<f64>,
    /// True for an embedded target: the figure includes the simulator's listeners.
    pub same_process_as_simulator: bool,
}
