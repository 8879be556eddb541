//! The actions' figures as report entries: one `ActionReport` per kind driven
//! (`model.actions`), one `GroupReport` per listener group (`model.groups`: `room`,
//! `likes`, `user`, each with its `reach`), their histograms with `histogram_paths`,
//! and a validity reason when an action went out later than `--max-lag` after its
//! intended start.
//!
//! Matching at the end: a `like_count` delivery is the like or unlike of its bookmark
//! whose answer carried the same count (the server serialises a bookmark's likes with
//! their broadcasts, so its counts change one step at a time in answer order; the n-th
//! delivery of count c on a socket is the n-th action that answered c); a
//! `notification` is the chat message whose reply carried its `message_id`, and counts
//! only on the socket of the user that message mentioned (anywhere else it is excess).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::listen::Seen;
use super::schedule::Timeline;
use super::tally::{KindStats, Tally};
use super::{Group, Kind};
use crate::plan::actions::ActionsPlan;
use crate::report::Report;
use crate::report::files::hgrm_file_name;
use crate::report::histo::{self, Summary};
use crate::report::model::{ActionReport, GroupReport};
use crate::workloads::bookmarks::reach::{Marks, ReachReport};

/// Everything the actions counted, once the run stopped.
pub struct Outcome<'a> {
    pub plan: &'a ActionsPlan,
    pub timeline: &'a Timeline,
    pub tally: &'a Tally,
    pub seen: &'a [Seen],
    /// Listener sockets that failed, by kind.
    pub failures: BTreeMap<String, u64>,
    pub max_lag: Duration,
    pub warmup: Duration,
    pub measured_s: f64,
    /// First intended start to the end of traffic.
    pub traffic: Duration,
}

/// Per-action received counts and the histograms of a group matched at the end.
struct Matched {
    expected: u64,
    received: u64,
    lost: u64,
    excess: u64,
    unmatched: u64,
    histogram: Histogram<u64>,
    last: Option<Instant>,
    /// `reach_<group>_{50,99,100}` with their summaries' JSON pointers.
    reach: Vec<(String, String, Histogram<u64>)>,
}

impl Outcome<'_> {
    /// Adds the actions' entries, groups and histograms to `report`.
    pub fn add_to(&self, report: &mut Report) {
        let t = self.tally;
        let m = &mut report.model;
        let mut histograms: Vec<(String, Histogram<u64>, String)> = Vec::new();
        for kind in self.plan.kinds() {
            let s = t.kind(kind);
            let name = kind.name();
            let corrected = s.corrected.merged();
            let uncorrected = s.uncorrected.merged();
            let lag = s.lag.merged();
            m.actions.insert(name.to_owned(), self.action_report(kind, s, &corrected, &uncorrected, &lag));
            let max_lag_ms = s.max_lag_us.load(Ordering::Relaxed) as f64 / 1000.0;
            let allowed_ms = self.max_lag.as_secs_f64() * 1000.0;
            if max_lag_ms > allowed_ms {
                m.invalid_reasons.push(format!(
                    "generator lag: a {name} action was sent {max_lag_ms:.1} ms after its intended start (allowed {allowed_ms:.0} ms)"
                ));
                m.valid = false;
            }
            for (suffix, h, field) in [
                ("corrected", corrected, "latency_corrected"),
                ("uncorrected", uncorrected, "latency_uncorrected"),
                ("lag", lag, "lag"),
            ] {
                histograms.push((format!("action_{name}_{suffix}"), h, format!("/actions/{name}/{field}")));
            }
        }

        let room = self.room();
        let likes = self.likes();
        let user = self.user();
        for (group, matched, active) in [
            (Group::Room, room, self.plan.room_listeners > 0),
            (Group::Likes, likes, self.plan.likes_listeners > 0),
            (Group::User, user, self.plan.user_listeners > 0),
        ] {
            if !active {
                continue;
            }
            let g = group.name();
            let mut report = self.group_report(group, &matched);
            report.reach = Some(ReachReport::of(&matched.reach));
            m.groups.insert(g.to_owned(), report);
            histograms.push((format!("delivery_{g}"), matched.histogram, format!("/groups/{g}/latency")));
            histograms.extend(matched.reach.into_iter().map(|(name, path, h)| (name, h, path)));
        }
        if !self.failures.is_empty() {
            for (kind, n) in &self.failures {
                *m.listeners.failures.entry(kind.clone()).or_default() += n;
            }
        }
        for (name, h, path) in histograms {
            m.histograms.insert(name.clone(), hgrm_file_name(&name));
            m.histogram_paths.insert(name.clone(), path);
            report.histograms.push((name, h));
        }
    }

    fn action_report(
        &self,
        kind: Kind,
        s: &KindStats,
        corrected: &Histogram<u64>,
        uncorrected: &Histogram<u64>,
        lag: &Histogram<u64>,
    ) -> ActionReport {
        let mut errors = s.errors.lock().clone();
        let error_count = errors.values().sum();
        let skipped = s.skipped.load(Ordering::Relaxed);
        if skipped > 0 {
            errors.insert("skipped".into(), skipped);
        }
        let ok = s.ok.load(Ordering::Relaxed);
        let lane = self.timeline.lane(kind);
        ActionReport {
            rate_per_s: lane.map_or(0.0, |l| l.curve.mean_rate()),
            scheduled: s.count(),
            sent: s.sent.load(Ordering::Relaxed),
            ok,
            errors,
            error_count,
            throughput_per_s: (ok + error_count) as f64 / self.traffic.as_secs_f64().max(1e-9),
            latency_corrected: Summary::of(corrected),
            latency_uncorrected: Summary::of(uncorrected),
            lag: Summary::of(lag),
            detail: Default::default(),
        }
    }

    /// Messages and typing: traced when they arrived.
    fn room(&self) -> Matched {
        let (tl, t) = (self.timeline, self.tally);
        let joined = |room: u32| u64::from(t.room_joined.get(room as usize).map_or(0, |n| n.load(Ordering::Acquire)));
        let mut out = Matched::new(t.delivery[Group::Room as usize].merged());
        let messages = tl.messages.iter().zip(t.message_received.iter()).enumerate();
        let typings = tl.typings.iter().zip(t.typing_received.iter()).enumerate();
        let rows = messages
            .map(|(i, (p, r))| (t.kind(Kind::ChatMessage).is_ok(i as u32), p.room, r))
            .chain(typings.map(|(i, (p, r))| (t.kind(Kind::Typing).is_ok(i as u32), p.room, r)));
        for (ok, room, received) in rows {
            let owed = if ok { joined(room) } else { 0 };
            out.add(owed, u64::from(received.load(Ordering::Acquire)));
        }
        out.last = self.last_receipt(Group::Room);
        out.reach = t.room_reach.histograms(Group::Room.name());
        out
    }

    fn likes(&self) -> Matched {
        let (tl, t) = (self.timeline, self.tally);
        let mut done = t.likes_done.lock().clone();
        done.sort_by_key(|d| d.answered);
        // (target, count) → actions in answer order.
        let mut by_count: HashMap<(u32, i64), Vec<(Kind, u32)>> = HashMap::new();
        for d in &done {
            by_count.entry((d.target, d.count)).or_default().push((d.kind, d.i));
        }
        let mut received: HashMap<(Kind, u32), u64> = HashMap::new();
        // Per measured action, the time from its intended start to each delivery, for
        // its reach: as many entries as the `like_count`s the listeners kept (already
        // bounded by the run's deliveries), and dropped when this returns.
        let mut receipts: HashMap<(Kind, u32), Vec<Duration>> = HashMap::new();
        let mut h = histo::new_histogram();
        let mut unmatched = 0;
        let mut last = None;
        for seen in self.seen.iter().filter(|s| s.joined && s.group == Some(Group::Likes)) {
            let mut deliveries = seen.like_counts.clone();
            deliveries.sort_by_key(|&(_, seq, _)| seq);
            let mut cursor: HashMap<i64, usize> = HashMap::new();
            for (count, _, at) in deliveries {
                let next = cursor.entry(count).or_default();
                let Some(&(kind, i)) = by_count.get(&(seen.of, count)).and_then(|v| v.get(*next)) else {
                    unmatched += 1;
                    continue;
                };
                *next += 1;
                *received.entry((kind, i)).or_default() += 1;
                if !tl.is_warmup(kind, i)
                    && let Some(intended) = tl.intended(kind, i)
                {
                    histo::record(&mut h, at.saturating_duration_since(intended));
                    receipts.entry((kind, i)).or_default().push(at.saturating_duration_since(intended));
                    last = last.max(Some(at));
                }
            }
        }
        let mut out = Matched::new(h);
        let reach = Marks::default();
        for d in &done {
            let owed = t.likes_joined.get(d.target as usize).map_or(0, |n| n.load(Ordering::Acquire));
            out.add(u64::from(owed), received.get(&(d.kind, d.i)).copied().unwrap_or(0));
            if !tl.is_warmup(d.kind, d.i) {
                let mut none = Vec::new();
                reach.event(owed, receipts.get_mut(&(d.kind, d.i)).unwrap_or(&mut none), d.i as usize);
            }
        }
        out.reach = reach.histograms(Group::Likes.name());
        out.excess += unmatched;
        out.received += unmatched;
        out.unmatched = unmatched;
        out.last = last;
        out
    }

    fn user(&self) -> Matched {
        let (tl, t) = (self.timeline, self.tally);
        let ids = t.message_ids.lock().clone();
        let mut received: HashMap<u32, u64> = HashMap::new();
        // Per measured mention, its deliveries' times for its reach (as many as the
        // notifications the listeners kept; dropped when this returns).
        let mut receipts: HashMap<u32, Vec<Duration>> = HashMap::new();
        let mut h = histo::new_histogram();
        let (mut unmatched, mut last) = (0, None);
        for seen in self.seen.iter().filter(|s| s.joined && s.group == Some(Group::User)) {
            for &(id, at) in &seen.notifications {
                let mine =
                    ids.get(&id).filter(|&&i| tl.messages.get(i as usize).is_some_and(|p| p.mention == Some(seen.of)));
                let Some(&i) = mine else {
                    unmatched += 1;
                    continue;
                };
                *received.entry(i).or_default() += 1;
                if !tl.is_warmup(Kind::ChatMessage, i)
                    && let Some(intended) = tl.intended(Kind::ChatMessage, i)
                {
                    histo::record(&mut h, at.saturating_duration_since(intended));
                    receipts.entry(i).or_default().push(at.saturating_duration_since(intended));
                    last = last.max(Some(at));
                }
            }
        }
        let mut out = Matched::new(h);
        let reach = Marks::default();
        for (i, p) in tl.messages.iter().enumerate() {
            let Some(k) = p.mention else { continue };
            let owed = if t.kind(Kind::ChatMessage).is_ok(i as u32) {
                t.user_joined.get(k as usize).map_or(0, |n| n.load(Ordering::Acquire))
            } else {
                0
            };
            out.add(u64::from(owed), received.get(&(i as u32)).copied().unwrap_or(0));
            if !tl.is_warmup(Kind::ChatMessage, i as u32) {
                let mut none = Vec::new();
                reach.event(owed, receipts.get_mut(&(i as u32)).unwrap_or(&mut none), i);
            }
        }
        out.reach = reach.histograms(Group::User.name());
        out.excess += unmatched;
        out.received += unmatched;
        out.unmatched = unmatched;
        out.last = last;
        out
    }

    fn last_receipt(&self, group: Group) -> Option<Instant> {
        self.seen.iter().filter(|s| s.group == Some(group)).filter_map(|s| s.last_measured_receipt).max()
    }

    fn group_report(&self, group: Group, m: &Matched) -> GroupReport {
        let mine: Vec<&Seen> = self.seen.iter().filter(|s| s.joined && s.group == Some(group)).collect();
        let topics: BTreeSet<u32> = mine.iter().map(|s| s.of).collect();
        let t0 = self.timeline.t0();
        let span = match (t0, m.last) {
            (Some(t0), Some(last)) => last.saturating_duration_since(t0 + self.warmup).as_secs_f64(),
            _ => 0.0,
        };
        GroupReport {
            listeners: mine.len() as u64,
            topics: topics.len() as u64,
            expected: m.expected,
            received: m.received,
            lost: m.lost,
            excess: m.excess,
            duplicates: mine.iter().map(|s| s.seq.duplicates).sum(),
            reordered: mine.iter().map(|s| s.seq.reordered).sum(),
            gaps: mine.iter().map(|s| s.seq.gaps).sum(),
            foreign: m.unmatched + mine.iter().map(|s| s.foreign).sum::<u64>(),
            delivery_span_s: span,
            deliveries_per_s: m.histogram.len() as f64 / self.measured_s.max(span).max(1e-9),
            latency: Summary::of(&m.histogram),
            ..GroupReport::default()
        }
    }
}

impl Matched {
    fn new(histogram: Histogram<u64>) -> Self {
        Self { expected: 0, received: 0, lost: 0, excess: 0, unmatched: 0, histogram, last: None, reach: Vec::new() }
    }

    fn add(&mut self, owed: u64, received: u64) {
        self.expected += owed;
        self.received += received;
        self.lost += owed.saturating_sub(received);
        self.excess += received.saturating_sub(owed);
    }
}
