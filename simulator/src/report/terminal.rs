//! The terminal summary: a few aligned tables a person reads after a run.

use std::fmt::Write;

use super::model::ReportModel;
use crate::report::histo::Summary;

/// Renders the summary of `r`.
pub fn render(r: &ReportModel) -> String {
    let mut o = String::new();
    let q = &r.requests;
    let _ = writeln!(o, "\nfirehose-sim run {} against {} ({})", r.run_id, r.target.url, r.target.kind);
    if r.valid {
        let _ = writeln!(o, "validity        VALID");
    } else {
        let _ = writeln!(o, "validity        INVALID: {}", r.invalid_reasons.join("; "));
    }
    let _ = writeln!(
        o,
        "window          {:.1} s traffic ({:.1} s measured after {:.1} s warm-up), drain {:.2} s{}",
        r.window.traffic_s,
        r.window.measured_s,
        r.window.warmup_s,
        r.window.drain_s,
        if r.window.drain_timed_out { " (timed out)" } else { "" }
    );

    let _ = writeln!(
        o,
        "\nrequests        scheduled {}  sent {}  responses {}  created {} ({} public, {} private)",
        q.scheduled, q.sent, q.responses, q.created, q.created_public, q.created_private
    );
    let errors = if q.errors.is_empty() {
        "none".to_owned()
    } else {
        q.errors.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
    };
    let _ = writeln!(o, "errors          {errors}");
    let _ = writeln!(o, "throughput      {:.1} responses/s", q.throughput_per_s);
    for (kind, a) in &r.actions {
        let errors = if a.errors.is_empty() {
            "none".to_owned()
        } else {
            a.errors.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        };
        let _ = writeln!(
            o,
            "{kind:<16}{:.1}/s  scheduled {}  sent {}  ok {}  errors {errors}",
            a.rate_per_s, a.scheduled, a.sent, a.ok
        );
    }

    let _ = writeln!(o, "\n{:<28}{}", "latency (ms)", header());
    row(&mut o, "request corrected", &q.latency_corrected);
    row(&mut o, "request uncorrected", &q.latency_uncorrected);
    for (kind, a) in &r.actions {
        row(&mut o, &format!("{kind} corrected"), &a.latency_corrected);
        row(&mut o, &format!("{kind} uncorrected"), &a.latency_uncorrected);
    }
    for (name, g) in &r.groups {
        if g.listeners > 0 {
            row(&mut o, &format!("delivery {name}"), &g.latency);
            if let Some(reach) = g.reach.as_ref().filter(|r| r.pct_100.count > 0) {
                row(&mut o, &format!("  {name} 50% reached"), &reach.pct_50);
                row(&mut o, &format!("  {name} 99% reached"), &reach.pct_99);
                row(&mut o, &format!("  {name} all reached"), &reach.pct_100);
            }
        }
    }
    row(&mut o, "listener connect+join", &r.listeners.connect);
    row(&mut o, "generator lag", &r.generator.lag);

    let _ = writeln!(
        o,
        "\n{:<10}{:>10}{:>8}{:>12}{:>12}{:>8}{:>8}{:>8}{:>8}{:>8}{:>14}",
        "group",
        "listeners",
        "topics",
        "expected",
        "received",
        "lost",
        "excess",
        "dup",
        "reorder",
        "gaps",
        "deliveries/s"
    );
    for (name, g) in &r.groups {
        let _ = writeln!(
            o,
            "{:<10}{:>10}{:>8}{:>12}{:>12}{:>8}{:>8}{:>8}{:>8}{:>8}{:>14.0}",
            name,
            g.listeners,
            g.topics,
            g.expected,
            g.received,
            g.lost,
            g.excess,
            g.duplicates,
            g.reordered,
            g.gaps,
            g.deliveries_per_s
        );
    }
    for (name, late) in r.groups.iter().filter_map(|(n, g)| g.late.as_ref().map(|l| (n, l))) {
        let _ = writeln!(
            o,
            "ramped {name}: {} listeners in {} windows, {} of {} owed by seq received, {} lost, {} dup, {} reorder \
             (included above)",
            late.listeners, late.windows, late.received, late.expected, late.lost, late.duplicates, late.reordered
        );
    }
    let d = &r.deliveries;
    let _ = writeln!(
        o,
        "private leaks {}, foreign events {}, unowed {}, decode errors {}",
        d.private_leak, d.foreign, d.unowed, d.decode_errors
    );

    let l = &r.listeners;
    let _ = writeln!(
        o,
        "\nlisteners       {} of {} joined at {}/s, {} closed during the run",
        l.joined, l.requested, l.connect_rate_per_s, l.closed_during_run
    );
    if !l.failures.is_empty() {
        let f = l.failures.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
        let _ = writeln!(o, "failures        {f}");
    }
    if let Some(cores) = r.simulator.cpu_cores_during_traffic {
        let _ = writeln!(
            o,
            "simulator cpu   {cores:.2} cores busy during traffic{note}",
            note = if r.simulator.includes_embedded_server { " (includes the in-process server)" } else { "" }
        );
    }
    let g = &r.generator;
    let _ = writeln!(
        o,
        "generator       max lag {:.2} ms (allowed {:.0} ms), in flight max {} of {}, cap hits {}",
        g.max_lag_ms, g.max_lag_allowed_ms, g.max_in_flight, g.in_flight_cap, g.in_flight_cap_hits
    );
    let kib = |b: f64| format!("{:.1} KiB", b / 1024.0);
    let sim = r.simulator.rss_per_listener_bytes.map_or("n/a".to_owned(), kib);
    let note = if r.simulator.includes_embedded_server { " (includes the in-process server)" } else { "" };
    let _ = writeln!(o, "memory          simulator {sim} per listener{note}");
    if let Some(s) = &r.server {
        let per = s.rss_per_socket_bytes.map_or("n/a".to_owned(), kib);
        let _ = writeln!(
            o,
            "                server {per} per socket ({} MiB resident after join)",
            s.rss_after_bytes / (1 << 20)
        );
    }
    if !r.thresholds.is_empty() {
        let _ = writeln!(
            o,
            "
thresholds{}",
            if r.valid { "" } else { " (the run is invalid: it exits 3 whatever they say)" }
        );
        for t in &r.thresholds {
            let verdict = if t.passed { "pass" } else { "FAIL" };
            let _ = writeln!(o, "  {verdict:<6}{:<44} actual {}", t.expr, super::ci::actual_text(t));
        }
    }
    o
}

fn header() -> String {
    format!("{:>8}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}", "count", "p50", "p90", "p99", "p99.9", "max", "mean")
}

fn row(o: &mut String, name: &str, s: &Summary) {
    let _ = writeln!(
        o,
        "{name:<28}{:>8}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}",
        s.count, s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms, s.max_ms, s.mean_ms
    );
}
