//! A run's meters become its report: one entry per kind and per group (their own
//! `entry`), the histograms with their names and JSON pointers, the listener counts,
//! totals over every kind and group, the scheduler's figures and the resources.
//! The verdict is judged afterwards (`report::verdict`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::dispatch::CapStats;
use super::meters::Meters;
use super::route::TargetTally;
use super::servers::ServerFacts;
use crate::plan::Plan;
use crate::report::histo::Summary;
use crate::report::model::*;
use crate::report::names::{self, HistogramName};
use crate::report::timeline::IntervalLogs;
use crate::report::{Report, SCHEMA};

/// What the run knows besides its meters.
pub struct Facts<'a> {
    pub plan: &'a Plan,
    pub run_id: &'a str,
    /// Every target, in `--target` order (at least one).
    pub targets: Vec<TargetInfo>,
    /// What the sockets did at each target.
    pub tallies: Vec<TargetTally>,
    pub started_at: String,
    /// From t0 to the last answer.
    pub traffic: Duration,
    pub drain: Duration,
    pub drain_timed_out: bool,
    pub sim_rss: (Option<u64>, Option<u64>),
    /// CPU time this process used during the traffic phase.
    pub sim_cpu: Option<Duration>,
    /// The servers' memory and CPU readings.
    pub servers: ServerFacts,
    pub cap: &'a CapStats,
    pub load_average: Option<f64>,
    /// Reasons the run is partial known before judging (interrupted, failed midway).
    pub partial: Option<String>,
}

/// Builds the report of a finished run.
pub fn report(meters: &Meters, f: &Facts<'_>) -> Report {
    let plan = f.plan;
    let measured_s = plan.traffic.measured().as_secs_f64();
    let mut histograms: Vec<(HistogramName, hdrhistogram::Histogram<u64>)> = Vec::new();
    let mut actions = BTreeMap::new();
    let mut totals = Totals::default();
    let mut max_lag_ms: f64 = 0.0;
    for k in meters.kinds() {
        let entry = k.entry(f.traffic);
        totals.sent += entry.sent;
        totals.ok += entry.ok;
        totals.errors += entry.error_count;
        totals.late += entry.late;
        max_lag_ms = max_lag_ms.max(entry.max_lag_ms);
        actions.insert(k.kind.name().to_owned(), entry);
        histograms.extend(k.histograms());
    }
    let mut groups = BTreeMap::new();
    for g in meters.groups() {
        let entry = g.entry(measured_s, plan.traffic.warmup);
        if entry.listeners == 0 && entry.expected == 0 && entry.late.is_none() {
            continue;
        }
        totals.expected += entry.expected;
        totals.received += entry.received;
        totals.lost += entry.lost;
        totals.duplicates += entry.duplicates;
        totals.excess += entry.excess;
        totals.private_leak += entry.private_leak;
        totals.reordered += entry.reordered;
        totals.decode_errors += entry.decode_errors;
        totals.deliveries_per_s += entry.deliveries_per_s;
        groups.insert(g.group.name().to_owned(), entry);
        histograms.extend(g.histograms());
    }
    let connect = meters.sockets.connect_histogram();
    let s = meters.sockets.counts();
    let listeners = ListenersReport {
        requested: s.requested,
        joined: s.joined,
        failed_to_join: s.failed,
        ramped: s.ramped,
        failures: s.failures,
        closed_during_run: s.closed,
        recovered: s.recovered,
        connect_rate_per_s: plan.traffic.connect_rate_per_s,
        connect: Summary::of(&connect),
    };
    histograms.push((names::connect_histogram(), connect));
    let cpu_s = f.sim_cpu.map(|d| d.as_secs_f64());
    let simulator = SimulatorResources {
        rss_before_bytes: f.sim_rss.0,
        rss_after_bytes: f.sim_rss.1,
        rss_per_listener_bytes: per_item(f.sim_rss.0, f.sim_rss.1, s.joined),
        includes_embedded_server: plan.target.is_embedded(),
        cpu_s_during_traffic: cpu_s,
        cpu_cores_during_traffic: cpu_s.map(|c| c / f.traffic.as_secs_f64().max(1e-9)),
        cpu_us_per_delivery: cpu_s.and_then(|c| per_delivery(c, totals.received)),
    };
    let server = f.servers.summed(s.joined, totals.received, f.traffic);
    let targets = f
        .targets
        .iter()
        .enumerate()
        .map(|(t, info)| {
            let tally = f.tallies.get(t).copied().unwrap_or_default();
            let entry = TargetReport {
                kind: info.kind.clone(),
                url: info.url.clone(),
                sockets_connected: tally.connected,
                failovers: tally.failovers,
                server: f.servers.of_target(t, f.traffic),
            };
            (t, entry)
        })
        .collect();
    let model = ReportModel {
        schema: SCHEMA.to_owned(),
        simulator_version: env!("CARGO_PKG_VERSION").to_owned(),
        run_id: f.run_id.to_owned(),
        started_at: f.started_at.clone(),
        finished_at: chrono::Utc::now().to_rfc3339(),
        plan: serde_json::to_value(plan).unwrap_or_default(),
        target: f.targets.first().cloned().unwrap_or_else(|| TargetInfo::new(true, String::new())),
        targets,
        profile: Some(profile_summary(&plan.target.profile)),
        verdict: Verdict { partial: f.partial.clone(), ..Verdict::default() },
        window: Window::new(plan.traffic.duration, plan.traffic.warmup, f.traffic, f.drain, f.drain_timed_out),
        actions,
        groups,
        listeners,
        totals,
        scheduler: SchedulerReport {
            max_lag_allowed_ms: plan.traffic.max_lag.as_secs_f64() * 1000.0,
            max_lag_ms,
            in_flight_cap: plan.traffic.max_in_flight,
            in_flight_cap_hits: f.cap.hits.load(Ordering::Relaxed),
            max_in_flight: f.cap.max_in_flight.load(Ordering::Relaxed),
            load_average: f.load_average,
        },
        simulator,
        server,
        thresholds: Vec::new(),
        histograms: histograms.iter().map(|(n, _)| (n.name.clone(), names::hgrm_file(&n.name))).collect(),
        histogram_paths: histograms.iter().map(|(n, _)| (n.name.clone(), n.pointer.clone())).collect(),
        histogram_logs: BTreeMap::new(),
        timeline: None,
        agents: Vec::new(),
    };
    Report {
        model,
        histograms: histograms.into_iter().map(|(n, h)| (n.name, h)).collect(),
        intervals: IntervalLogs::default(),
    }
}

/// What a run's target profile means for reading its report.
pub fn profile_summary(p: &crate::plan::profile::Profile) -> ProfileSummary {
    ProfileSummary {
        name: p.name.clone(),
        source: p.source.as_ref().map(|s| s.display().to_string()),
        seq_checks: p.checks_seq(),
        public_from_response: p.create.public.is_some(),
        tags_from_response: p.create.tags.is_some(),
    }
}

/// `(after − before) / count`, when both figures exist and `count` > 0.
pub fn per_item(before: Option<u64>, after: Option<u64>, count: u64) -> Option<f64> {
    let (before, after) = (before?, after?);
    (count > 0).then(|| (after as f64 - before as f64) / count as f64)
}
