//! One rooms run, start to finish: open the target, create the users and rooms, open
//! the member sockets at the connect rate, start the clock once all have joined, fire
//! the timeline, drain the deliveries still owed, stop everything, and turn what was
//! counted into a `RoomsReport`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::board::{Board, JOIN_TIMEOUT, MemberStats, open_members};
use super::driver::Driver;
use super::plan::RoomsPlan;
use super::report::*;
use super::schedule::{Kind, RoomsSchedule, Shape};
use super::setup;
use crate::engine::error::SimError;
use crate::engine::resources;
use crate::engine::target::Target as Server;
use crate::fixtures::Corpus;
use crate::http::Api;
use crate::plan::TargetSpec;
use crate::report::files::hlog_file_name;
use crate::report::histo::{self, Summary};

const LEAD_IN: Duration = Duration::from_millis(50);
const DRAIN_POLL: Duration = Duration::from_millis(10);
const SETTLE_MARGIN: Duration = Duration::from_secs(30);

/// Runs `plan` with the committed fixture corpus's chat lines.
pub async fn run(plan: RoomsPlan) -> Result<RoomsReport, SimError> {
    let corpus = Corpus::embedded_default().map_err(|e| SimError::Setup(format!("fixture corpus: {e}")))?;
    let run_id = format!("{:06x}", rand::rng().random::<u32>() & 0xff_ffff);
    let started_at = chrono::Utc::now();
    let target_spec = match &plan.target {
        TargetSpec::Embedded => TargetSpec::Embedded,
        TargetSpec::External { url } => TargetSpec::External { url: url.clone() },
    };
    let server = Server::open(&target_spec).await?;
    let result = drive(&plan, &server, corpus.chat_lines.clone(), &run_id).await;
    let closed = server.close().await;
    let mut report = result?;
    closed?;
    report.model.started_at = started_at.to_rfc3339();
    report.model.finished_at = chrono::Utc::now().to_rfc3339();
    Ok(report)
}

async fn drive(plan: &RoomsPlan, server: &Server, lines: Vec<String>, run_id: &str) -> Result<RoomsReport, SimError> {
    let setup_started = Instant::now();
    let base = server.base_url();
    let http = setup::client().map_err(SimError::Setup)?;
    let api = Api::new(&base, 4).map_err(SimError::Setup)?;
    let schedule = Arc::new(RoomsSchedule::new(Shape {
        rooms: plan.rooms,
        members: plan.members,
        messages: plan.messages(),
        message_rate: plan.message_rate_per_s,
        typings: plan.typings(),
        typing_rate: plan.typing_rate_per_s.max(1e-9),
        joins: plan.churn_joins(),
        join_rate: plan.presence_churn_per_s.max(1e-9),
        churn_hold: plan.churn_hold,
        warmup: plan.warmup,
        seed: plan.seed,
    }));

    // Users: one per member slot, plus the churn users.
    let slots = plan.member_sockets() as usize;
    let member_names: Vec<String> = (0..slots).map(|s| format!("m{run_id}_{s}")).collect();
    let churn_names: Vec<String> = (0..schedule.churn_users).map(|c| format!("c{run_id}_{c}")).collect();
    let members = setup::create_users(&http, &base, &member_names).await.map_err(SimError::Setup)?;
    let churn = if schedule.joins.is_empty() {
        Vec::new()
    } else {
        setup::create_users(&http, &base, &churn_names).await.map_err(SimError::Setup)?
    };
    let server_rss_before = api.server_rss_bytes().await;

    // Rooms, each created by its first member.
    let slugs: Vec<String> = (0..plan.rooms).map(|r| format!("sim-{run_id}-{r}")).collect();
    let rooms: Vec<(String, String, String)> = slugs
        .iter()
        .enumerate()
        .map(|(r, slug)| {
            (format!("sim {run_id} room {r}"), slug.clone(), members[r * plan.members as usize].token.clone())
        })
        .collect();
    setup::create_rooms(&http, &base, &rooms).await.map_err(SimError::Setup)?;
    drop(rooms);

    let stop = CancellationToken::new();
    let member_of_user: HashMap<i64, u32> = members.iter().enumerate().map(|(s, a)| (a.id, s as u32)).collect();
    let churn_of_user: HashMap<i64, u32> = churn.iter().enumerate().map(|(c, a)| (a.id, c as u32)).collect();
    let board = Arc::new(Board::new(
        server.addr(),
        run_id,
        Arc::clone(&schedule),
        slugs.iter().map(|s| format!("room:{s}")).collect(),
        member_of_user,
        churn_of_user,
        plan.connect_rate_per_s,
        stop.clone(),
    ));

    // Member sockets.
    let sim_rss_before = resources::vm_rss_bytes();
    let accounts: Vec<(i64, String)> = members.into_iter().map(|a| (a.id, a.token)).collect();
    let handles = open_members(&board, accounts, plan.connect_rate_per_s).await;
    let everyone = u32::try_from(handles.len()).unwrap_or(u32::MAX);
    let connected = tokio::time::timeout(JOIN_TIMEOUT + SETTLE_MARGIN, board.connected.acquire_many(everyone)).await;
    if connected.is_err() {
        stop.cancel();
        return Err(SimError::Setup("member sockets neither connected nor failed in time".into()));
    }
    let server_rss_connected = api.server_rss_bytes().await;
    let _ = board.join_start.set(Instant::now());
    board.join_gate.cancel();
    let settled = tokio::time::timeout(JOIN_TIMEOUT + SETTLE_MARGIN, board.settled.acquire_many(everyone)).await;
    let joined = board.joined_count.load(Ordering::Relaxed);
    if settled.is_err() || joined == 0 {
        stop.cancel();
        let failures = board.failures.lock().clone();
        return Err(SimError::Setup(format!("member sockets did not join ({joined} joined; failures {failures:?})")));
    }
    let sim_rss_after = resources::vm_rss_bytes();
    let server_rss_joined = api.server_rss_bytes().await;
    let setup_s = setup_started.elapsed().as_secs_f64();

    // Traffic.
    let t0 = schedule.start(Instant::now() + LEAD_IN);
    let sampler = crate::report::timeline::Sampler::start(
        t0,
        plan.duration,
        probes(&board),
        crate::report::progress::Progress::off(),
    );
    let cpu_before = resources::cpu_time();
    let driver = Arc::new(Driver {
        board: Arc::clone(&board),
        churn_tokens: churn.into_iter().map(|a| a.token).collect(),
        lines,
        main: tokio::runtime::Handle::current(),
        churn_hold: plan.churn_hold,
    });
    let generated = driver.run_on_own_thread().await;
    let traffic_end = Instant::now();
    let sim_cpu = resources::cpu_time().zip(cpu_before).map(|(a, b)| a.saturating_sub(b));
    let deadline = traffic_end + plan.drain_timeout;
    let mut drain_timed_out = false;
    while generated.is_ok() && !board.all_delivered() {
        if Instant::now() >= deadline {
            drain_timed_out = true;
            break;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
    let drain = traffic_end.elapsed();
    let server_rss_after = api.server_rss_bytes().await;
    stop.cancel();
    generated.map_err(SimError::Setup)?;
    let mut per_member = Vec::with_capacity(handles.len());
    for handle in handles {
        if let Ok(stats) = handle.await {
            per_member.push(stats);
        }
    }
    let sampled = sampler.finish().await;

    let facts = Facts {
        plan,
        run_id,
        server,
        board: &board,
        per_member: &per_member,
        traffic: traffic_end.saturating_duration_since(t0),
        drain,
        drain_timed_out,
        setup_s,
        sim_rss: (sim_rss_before, sim_rss_after),
        server_rss: (server_rss_before, server_rss_connected, server_rss_joined, server_rss_after),
        sim_cpu,
    };
    let mut report = facts.report();
    report.intervals = sampled.logs_for(&report.histograms);
    report.model.histogram_logs = report.intervals.logs.keys().map(|n| (n.clone(), hlog_file_name(n))).collect();
    Ok(report)
}

struct Facts<'a> {
    plan: &'a RoomsPlan,
    run_id: &'a str,
    server: &'a Server,
    board: &'a Board,
    per_member: &'a [MemberStats],
    traffic: Duration,
    drain: Duration,
    drain_timed_out: bool,
    setup_s: f64,
    sim_rss: (Option<u64>, Option<u64>),
    server_rss: (Option<u64>, Option<u64>, Option<u64>, Option<u64>),
    sim_cpu: Option<Duration>,
}

impl Facts<'_> {
    fn report(&self) -> RoomsReport {
        let (plan, b) = (self.plan, self.board);
        let s = &b.schedule;
        let h = &b.h;
        let histograms: Vec<(String, hdrhistogram::Histogram<u64>)> =
            named(h).into_iter().map(|(n, sharded)| (n.to_owned(), sharded.merged())).collect();
        let summary = |name: &str| {
            histograms
                .iter()
                .find(|(n, _)| n == name)
                .map_or_else(|| Summary::of(&histo::new_histogram()), |(_, h)| Summary::of(h))
        };
        let measured_s = (plan.duration - plan.warmup).as_secs_f64();
        let errors = b.errors.lock().clone();
        let errors_of = |prefixes: &[&str]| -> std::collections::BTreeMap<String, u64> {
            errors
                .iter()
                .filter(|(k, _)| prefixes.iter().any(|p| k.starts_with(p)))
                .map(|(k, v)| (k.clone(), *v))
                .collect()
        };
        let warmups = |kind: Kind, n: usize| (0..n as u32).filter(|&i| s.is_warmup(kind, i)).count() as u64;

        let stream = |kind: Kind, delivery: &str, corrected: &str, uncorrected: &str, prefixes: &[&str]| {
            let t = b.tally(kind);
            let owed = t.owed();
            let n = if kind == Kind::Message { s.messages.len() } else { s.typings.len() };
            let delivery = summary(delivery);
            Stream {
                scheduled: n as u64,
                warmup: warmups(kind, n),
                skipped: t.skipped.load(Ordering::Relaxed),
                sent: t.sent.load(Ordering::Relaxed),
                replies_ok: t.replies_ok.load(Ordering::Relaxed),
                replies_error: t.replies_error.load(Ordering::Relaxed),
                errors: errors_of(prefixes),
                expected: owed.expected,
                received: owed.received,
                lost: owed.lost,
                excess: owed.excess,
                deliveries_per_s: delivery.count as f64 / measured_s.max(1e-9),
                delivery,
                reply_corrected: summary(corrected),
                reply_uncorrected: if uncorrected.is_empty() {
                    Summary::of(&histo::new_histogram())
                } else {
                    summary(uncorrected)
                },
            }
        };
        let messages = stream(
            Kind::Message,
            "message_delivery",
            "message_reply_corrected",
            "message_reply_uncorrected",
            &["new_msg", "sender"],
        );
        let typing = stream(Kind::Typing, "typing_delivery", "typing_reply_corrected", "", &["typing"]);
        let jo = b.joins.owed();
        let presence = Presence {
            scheduled: s.joins.len() as u64,
            warmup: warmups(Kind::Join, s.joins.len()),
            joins_sent: b.joins.sent.load(Ordering::Relaxed),
            joins_ok: b.joins.replies_ok.load(Ordering::Relaxed),
            joins_refused: b.joins.replies_error.load(Ordering::Relaxed),
            errors: errors_of(&["churn"]),
            churn_users: u64::from(s.churn_users) * u64::from(!s.joins.is_empty()),
            churn_hold_s: plan.churn_hold.as_secs_f64(),
            expected: jo.expected,
            received: jo.received,
            lost: jo.lost,
            excess: jo.excess,
            join_to_diff: summary("presence_join_to_diff"),
            join_to_diff_corrected: summary("presence_join_to_diff_corrected"),
            join_reply: summary("presence_join_reply"),
            churn_connect: summary("churn_connect"),
        };

        let mut health = Health {
            healthy: false,
            phx_errors: 0,
            phx_closes: 0,
            closed_sockets: 0,
            push_errors: errors.values().sum(),
            unanswered: [&b.messages, &b.typings, &b.joins]
                .iter()
                .map(|t| {
                    let answered = t.replies_ok.load(Ordering::Relaxed) + t.replies_error.load(Ordering::Relaxed);
                    t.sent.load(Ordering::Relaxed).saturating_sub(answered)
                })
                .sum(),
            decode_errors: 0,
            duplicates: 0,
            reordered: 0,
            gaps: 0,
            own_echoes: 0,
            foreign: 0,
        };
        for m in self.per_member {
            health.phx_errors += m.phx_errors;
            health.phx_closes += m.phx_closes;
            health.closed_sockets += u64::from(m.closed);
            health.decode_errors += m.decode_errors;
            health.duplicates += m.seq.duplicates;
            health.reordered += m.seq.reordered;
            health.gaps += m.seq.gaps;
            health.own_echoes += m.own_echoes;
            health.foreign += m.foreign;
        }
        let joined = b.joined_count.load(Ordering::Relaxed);
        let requested = plan.member_sockets();
        health.healthy = health.phx_errors == 0
            && health.phx_closes == 0
            && health.closed_sockets == 0
            && health.push_errors == 0
            && health.unanswered == 0
            && joined == requested;

        let max_lag_ms = b.max_lag_us.load(Ordering::Relaxed) as f64 / 1000.0;
        let allowed_ms = plan.max_lag.as_secs_f64() * 1000.0;
        let mut invalid_reasons = Vec::new();
        if max_lag_ms > allowed_ms {
            invalid_reasons.push(format!(
                "generator lag: an event was fired {max_lag_ms:.1} ms after its intended time (allowed {allowed_ms:.0} ms)"
            ));
        }
        let embedded = self.server.is_embedded();
        let server = match self.server_rss {
            (Some(before), connected, Some(joined_rss), after) => {
                let rooms = f64::from(plan.rooms);
                let sockets = (joined > 0).then_some(joined as f64);
                Some(ServerMemory {
                    rss_before_bytes: before,
                    rss_connected_bytes: connected,
                    rss_joined_bytes: joined_rss,
                    rss_after_bytes: after,
                    rss_per_socket_bytes: connected.zip(sockets).map(|(c, n)| (c as f64 - before as f64) / n),
                    rss_per_room_bytes: connected.map(|c| (joined_rss as f64 - c as f64) / rooms),
                    rss_per_room_with_sockets_bytes: Some((joined_rss as f64 - before as f64) / rooms),
                    same_process_as_simulator: embedded,
                })
            }
            _ => None,
        };
        let model = RoomsModel {
            schema: ROOMS_SCHEMA.to_owned(),
            kind: "rooms".to_owned(),
            simulator_version: env!("CARGO_PKG_VERSION").to_owned(),
            run_id: self.run_id.to_owned(),
            started_at: String::new(),
            finished_at: String::new(),
            plan: serde_json::to_value(plan).unwrap_or_default(),
            target: TargetInfo::new(embedded, self.server.base_url()),
            valid: invalid_reasons.is_empty(),
            invalid_reasons,
            window: Window::new(plan.duration, plan.warmup, self.traffic, self.drain, self.drain_timed_out),
            setup: Setup {
                rooms_created: u64::from(plan.rooms),
                users_created: requested + u64::from(s.churn_users) * u64::from(!s.joins.is_empty()),
                seconds: self.setup_s,
            },
            members: Members {
                requested,
                joined,
                failed_to_join: requested.saturating_sub(joined),
                failures: b.failures.lock().clone(),
                connect_rate_per_s: plan.connect_rate_per_s,
                connect: summary("member_connect"),
                join: summary("member_join"),
            },
            messages,
            typing,
            presence,
            health,
            generator: GeneratorLag { lag: summary("generator_lag"), max_lag_ms, max_lag_allowed_ms: allowed_ms },
            simulator: Simulator {
                cpu_cores_during_traffic: self.sim_cpu.map(|d| d.as_secs_f64() / self.traffic.as_secs_f64().max(1e-9)),
                rss_before_bytes: self.sim_rss.0,
                rss_after_bytes: self.sim_rss.1,
                includes_embedded_server: embedded,
            },
            server,
            histograms: histograms.iter().map(|(n, _)| (n.clone(), crate::report::files::hgrm_file_name(n))).collect(),
            histogram_logs: Default::default(),
        };
        RoomsReport { model, histograms, intervals: Default::default() }
    }
}

/// The run's histograms by report name (each `<name>.hgrm` and `<name>.hlog`).
fn named(h: &crate::workloads::rooms::board::Histos) -> [(&'static str, &crate::report::histo::Sharded); 12] {
    [
        ("message_delivery", &h.message_delivery),
        ("message_reply_corrected", &h.message_reply_corrected),
        ("message_reply_uncorrected", &h.message_reply_uncorrected),
        ("typing_delivery", &h.typing_delivery),
        ("typing_reply_corrected", &h.typing_reply_corrected),
        ("presence_join_to_diff", &h.presence_diff),
        ("presence_join_to_diff_corrected", &h.presence_diff_corrected),
        ("presence_join_reply", &h.presence_join_reply),
        ("member_connect", &h.member_connect),
        ("member_join", &h.member_join),
        ("churn_connect", &h.churn_connect),
        ("generator_lag", &h.generator_lag),
    ]
}

/// Samples every histogram of the run once a second, for its `.hlog` files.
fn probes(board: &Arc<Board>) -> crate::report::timeline::Probes {
    let mut probes = crate::report::timeline::Probes::default();
    for (k, (name, _)) in named(&board.h).into_iter().enumerate() {
        let board = Arc::clone(board);
        probes = probes.histogram(name, move || named(&board.h)[k].1.take_interval());
    }
    probes
}
