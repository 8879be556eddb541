//! Turns what a run counted (generator stats, listener stats, the ledger, memory
//! readings) into the report: summaries of the merged histograms, per-group loss and
//! order figures, and the validity verdict.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::engine::resources;
use crate::engine::target::Target;
use crate::plan::{Plan, TargetSpec};
use crate::report::files::hgrm_file_name;
use crate::report::histo::{self, Summary};
use crate::report::model::*;
use crate::report::{Report, SCHEMA};
use crate::workloads::bookmarks::audience::Audience;
use crate::workloads::bookmarks::generator;
use crate::workloads::bookmarks::ledger::{Group, Ledger, Tally};
use crate::workloads::bookmarks::listeners::{Shared, Stats};
use crate::workloads::bookmarks::reach::ReachReport;

/// Everything counted during a run, before it becomes a report.
pub(crate) struct Facts<'a> {
    pub plan: &'a Plan,
    pub run_id: &'a str,
    pub target: &'a Target,
    pub shared: &'a Shared,
    pub generator: &'a generator::Stats,
    pub ledger: &'a Ledger,
    pub per_listener: &'a [(Group, Stats)],
    pub audience: &'a Audience,
    pub t0: Instant,
    pub traffic: Duration,
    pub drain: Duration,
    pub drain_timed_out: bool,
    pub sim_rss: (Option<u64>, Option<u64>),
    pub server_rss: (Option<u64>, Option<u64>),
    /// CPU time this process used from `t0` to the last response.
    pub sim_cpu: Option<Duration>,
}

impl Facts<'_> {
    pub fn report(&self) -> Report {
        let plan = self.plan;
        let g = self.generator;
        let measured_s = (plan.duration - plan.warmup).as_secs_f64();
        let reach: Vec<_> = Group::ALL.iter().map(|&group| self.ledger.reach.histograms(group)).collect();
        let mut histograms = vec![
            ("request_corrected".to_owned(), g.corrected.merged()),
            ("request_uncorrected".to_owned(), g.uncorrected.merged()),
            ("generator_lag".to_owned(), g.lag.merged()),
            ("listener_connect".to_owned(), self.shared.connect.merged()),
            ("delivery_firehose".to_owned(), self.shared.delivery[Group::Firehose as usize].merged()),
            ("delivery_tag".to_owned(), self.shared.delivery[Group::Tag as usize].merged()),
        ];
        histograms.extend(reach.iter().flatten().map(|(name, _, h)| (name.clone(), h.clone())));
        let summary = |name: &str| histograms.iter().find(|(n, _)| n == name).map(|(_, h)| Summary::of(h));
        let summary = |name: &str| summary(name).unwrap_or_else(|| Summary::of(&histo::new_histogram()));

        let max_lag_ms = g.max_lag_us.load(Ordering::Relaxed) as f64 / 1000.0;
        let allowed_ms = plan.max_lag.as_secs_f64() * 1000.0;
        let mut invalid_reasons = Vec::new();
        if max_lag_ms > allowed_ms {
            invalid_reasons.push(format!(
                "generator lag: a request was sent {max_lag_ms:.1} ms after its intended start (allowed {allowed_ms:.0} ms); \
                 {} requests waited for the in-flight cap of {}",
                g.cap_hits.load(Ordering::Relaxed),
                plan.max_in_flight
            ));
        }

        let errors = g.errors.lock().clone();
        let responses = g.responses.load(Ordering::Relaxed);
        let created_public = g.created_public.load(Ordering::Relaxed);
        let created_private = g.created_private.load(Ordering::Relaxed);
        let requests = Requests {
            scheduled: plan.requests(),
            warmup: plan.warmup_requests(),
            sent: g.sent.load(Ordering::Relaxed),
            responses,
            measured: g.measured.load(Ordering::Relaxed),
            created: created_public + created_private,
            created_public,
            created_private,
            error_count: errors.values().sum(),
            errors,
            throughput_per_s: responses as f64 / self.traffic.as_secs_f64().max(1e-9),
            latency_corrected: summary("request_corrected"),
            latency_uncorrected: summary("request_uncorrected"),
        };

        let mut groups = BTreeMap::new();
        let mut totals = Tally::default();
        let (mut foreign, mut decode_errors, mut closed) = (0, 0, 0);
        for group in Group::ALL {
            let tally = self.ledger.tally(group, plan.warmup_requests());
            let mine = self.per_listener.iter().filter(|(g, _)| *g == group).map(|(_, s)| s);
            let (mut report, topics) = (self.group_report(group, &tally), self.topics(group));
            let mut last_receipt: Option<Instant> = None;
            for s in mine {
                last_receipt = last_receipt.max(s.last_measured_receipt);
                report.duplicates += s.seq.duplicates;
                report.reordered += s.seq.reordered;
                report.gaps += s.seq.gaps;
                report.foreign += s.foreign;
                decode_errors += s.decode_errors;
                closed += u64::from(s.closed);
            }
            report.topics = topics;
            let measured_start = self.t0 + plan.warmup;
            report.delivery_span_s =
                last_receipt.map_or(0.0, |t| t.saturating_duration_since(measured_start).as_secs_f64());
            report.deliveries_per_s = tally.measured_received as f64 / measured_s.max(report.delivery_span_s).max(1e-9);
            report.latency = summary(&format!("delivery_{}", group.name()));
            report.reach = Some(ReachReport::of(&reach[group as usize]));
            foreign += report.foreign;
            totals.private_leak += tally.private_leak;
            totals.unowed += tally.unowed;
            groups.insert(group.name().to_owned(), report);
        }

        let failures = self.shared.failures.lock().clone();
        let joined = self.shared.joined.load(Ordering::Relaxed);
        let listeners_report = ListenersReport {
            requested: self.audience.specs.len() as u64,
            joined,
            failed_to_join: self.audience.specs.len() as u64 - joined,
            failures,
            closed_during_run: closed,
            tag_topics: self.tag_topics(),
            connect_rate_per_s: plan.connect_rate_per_s,
            connect: summary("listener_connect"),
        };
        let embedded = self.target.is_embedded();
        let server = match self.server_rss {
            (Some(before), Some(after)) => Some(ServerMemory {
                rss_before_bytes: before,
                rss_after_bytes: after,
                rss_per_socket_bytes: resources::per_item(Some(before), Some(after), joined),
                same_process_as_simulator: embedded,
            }),
            _ => None,
        };
        let model = ReportModel {
            schema: SCHEMA.to_owned(),
            simulator_version: env!("CARGO_PKG_VERSION").to_owned(),
            run_id: self.run_id.to_owned(),
            started_at: String::new(),
            finished_at: String::new(),
            plan: serde_json::to_value(plan).unwrap_or_default(),
            target: TargetInfo::new(plan.target == TargetSpec::Embedded, self.target.base_url()),
            valid: invalid_reasons.is_empty(),
            invalid_reasons,
            window: Window::new(plan.duration, plan.warmup, self.traffic, self.drain, self.drain_timed_out),
            requests,
            generator: GeneratorReport {
                lag: summary("generator_lag"),
                max_lag_ms,
                max_lag_allowed_ms: allowed_ms,
                in_flight_cap: plan.max_in_flight,
                in_flight_cap_hits: g.cap_hits.load(Ordering::Relaxed),
                max_in_flight: g.max_in_flight_seen.load(Ordering::Relaxed),
            },
            listeners: listeners_report,
            groups,
            deliveries: DeliveriesReport {
                private_leak: totals.private_leak,
                foreign,
                unowed: totals.unowed,
                decode_errors,
            },
            simulator: SimulatorResources {
                cpu_s_during_traffic: self.sim_cpu.map(|d| d.as_secs_f64()),
                cpu_cores_during_traffic: self.sim_cpu.map(|d| d.as_secs_f64() / self.traffic.as_secs_f64().max(1e-9)),
                rss_before_bytes: self.sim_rss.0,
                rss_after_bytes: self.sim_rss.1,
                rss_per_listener_bytes: resources::per_item(self.sim_rss.0, self.sim_rss.1, joined),
                includes_embedded_server: embedded,
            },
            server,
            histograms: histograms.iter().map(|(n, _)| (n.clone(), hgrm_file_name(n))).collect(),
            thresholds: Vec::new(),
            actions: Default::default(),
            histogram_paths: [
                ("request_corrected", "/requests/latency_corrected"),
                ("request_uncorrected", "/requests/latency_uncorrected"),
                ("generator_lag", "/generator/lag"),
                ("listener_connect", "/listeners/connect"),
                ("delivery_firehose", "/groups/firehose/latency"),
                ("delivery_tag", "/groups/tag/latency"),
            ]
            .into_iter()
            .map(|(name, path)| (name.to_owned(), path.to_owned()))
            .chain(reach.iter().flatten().map(|(name, path, _)| (name.clone(), path.clone())))
            .collect(),
            histogram_logs: Default::default(),
            timeline: None,
            agents: Vec::new(),
            partial: {
                let asked = self.audience.specs.len() as u64;
                let refused = asked - joined;
                let mut why = Vec::new();
                if refused > 0 {
                    why.push(format!(
                        "{refused} of {asked} listeners could not join (kinds under listeners.failures): the run \
                         measured fewer listeners than planned"
                    ));
                }
                if closed > 0 {
                    why.push(format!(
                        "the target closed {closed} of {joined} listener sockets or channels during the run \
                         (kinds under listeners.failures, `during_run:`); deliveries owed to them afterwards count \
                         as lost"
                    ));
                }
                (!why.is_empty()).then(|| why.join("; "))
            },
            profile: Some(ProfileSummary::of(&plan.profile)),
        };
        Report { model, histograms, intervals: Default::default() }
    }

    fn group_report(&self, group: Group, t: &Tally) -> GroupReport {
        let listeners =
            self.audience.specs.iter().filter(|s| s.group == group && self.shared.has_joined(s.index)).count() as u64;
        GroupReport {
            listeners,
            topics: 0,
            expected: t.expected,
            received: t.received,
            lost: t.lost,
            excess: t.excess,
            duplicates: 0,
            reordered: 0,
            gaps: 0,
            foreign: 0,
            private_leak: t.private_leak,
            delivery_span_s: 0.0,
            deliveries_per_s: 0.0,
            latency: Summary::of(&histo::new_histogram()),
            reach: None,
            late: None,
        }
    }

    fn tag_topics(&self) -> BTreeMap<String, u64> {
        let mut topics = BTreeMap::new();
        for s in self.audience.specs.iter().filter(|s| s.group == Group::Tag && self.shared.has_joined(s.index)) {
            *topics.entry(self.audience.tag_of(&s.topic).to_owned()).or_default() += 1;
        }
        topics
    }

    fn topics(&self, group: Group) -> u64 {
        let topics: BTreeSet<&str> = self
            .audience
            .specs
            .iter()
            .filter(|s| s.group == group && self.shared.has_joined(s.index))
            .map(|s| s.topic.as_str())
            .collect();
        topics.len() as u64
    }
}
