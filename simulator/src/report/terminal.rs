//! The terminal summary: a few aligned tables a person reads after a run — every
//! action kind, every listener group, latencies, the listeners, resources and gates.
//! The verdict line and the report paths follow it (see `commands::run`).

use std::fmt::Write;
use std::io::Write as _;

use super::model::ReportModel;
use crate::report::histo::Summary;

/// Writes `text` to stdout and ignores a write error: a closed stdout
/// (`firehose-sim … | head`) must not stop a run before its report is written, so
/// nothing here may panic the way `print!` does.
pub fn print(text: &str) {
    let _ = std::io::stdout().write_all(text.as_bytes());
}

/// [`print`] with a newline.
pub fn println(text: &str) {
    print(&format!("{text}\n"));
}

/// Renders the summary of `r`.
pub fn render(r: &ReportModel) -> String {
    let mut o = String::new();
    let target = r.target_text("the embedded app (in-process, SQLite in a temp dir)");
    let _ = writeln!(o, "\nfirehose-sim run {} against {target}", r.run_id);
    let v = &r.verdict;
    if !v.valid {
        let _ = writeln!(o, "validity        INVALID: {}", v.invalid_reasons.join("; "));
    }
    if let Some(p) = &v.partial {
        let _ = writeln!(o, "partial         {p}");
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
        "\n{:<17}{:>9}{:>10}{:>9}{:>9}{:>8}{:>8}{:>7}  errors",
        "action", "rate/s", "scheduled", "sent", "ok", "skipped", "late", "/s"
    );
    for (kind, a) in &r.actions {
        let errors = if a.errors.is_empty() {
            "none".to_owned()
        } else {
            a.errors.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        };
        let _ = writeln!(
            o,
            "{kind:<17}{:>9.1}{:>10}{:>9}{:>9}{:>8}{:>8}{:>7.0}  {errors}",
            a.rate_per_s, a.scheduled, a.sent, a.ok, a.skipped, a.late, a.throughput_per_s
        );
        if !a.detail.is_empty() {
            let d = a.detail.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
            let _ = writeln!(o, "{:<17}{d}", "");
        }
    }

    let _ = writeln!(o, "\n{:<28}{}", "latency (ms)", header());
    for (kind, a) in &r.actions {
        row(&mut o, kind, &a.latency_corrected);
        row(&mut o, "  uncorrected", &a.latency_uncorrected);
    }
    for (name, g) in &r.groups {
        row(&mut o, &format!("delivery {name}"), &g.latency);
        if let Some(reach) = g.reach.as_ref().filter(|r| r.pct_100.count > 0) {
            row(&mut o, &format!("  {name} 50% reached"), &reach.pct_50);
            row(&mut o, &format!("  {name} 99% reached"), &reach.pct_99);
            row(&mut o, &format!("  {name} all reached"), &reach.pct_100);
        }
    }
    row(&mut o, "listener connect+join", &r.listeners.connect);

    let _ = writeln!(
        o,
        "\n{:<10}{:>10}{:>11}{:>11}{:>7}{:>9}{:>7}{:>8}{:>8}{:>8}{:>14}",
        "group",
        "listeners",
        "owed",
        "received",
        "lost",
        "w/ loss",
        "dup",
        "excess",
        "reorder",
        "leaks",
        "deliveries/s"
    );
    for (name, g) in &r.groups {
        let _ = writeln!(
            o,
            "{:<10}{:>10}{:>11}{:>11}{:>7}{:>9}{:>7}{:>8}{:>8}{:>8}{:>14.0}",
            name,
            g.listeners,
            g.expected,
            g.received,
            g.lost,
            g.listeners_with_loss,
            g.duplicates,
            g.excess,
            g.reordered,
            g.private_leak,
            g.deliveries_per_s
        );
    }
    for (name, late) in r.groups.iter().filter_map(|(n, g)| g.late.as_ref().map(|l| (n, l))) {
        let _ = writeln!(
            o,
            "ramped {name}: {} listeners in {} windows, {} of {} owed by seq received, {} lost, {} dup (included above)",
            late.listeners, late.windows, late.received, late.expected, late.lost, late.duplicates
        );
    }
    let t = &r.totals;
    let _ = writeln!(
        o,
        "totals          {} sent, {} errors, {} late; {} of {} owed deliveries received, {} lost, {} duplicates, \
         {} excess, {} private leaks, {} decode errors",
        t.sent,
        t.errors,
        t.late,
        t.received,
        t.expected,
        t.lost,
        t.duplicates,
        t.excess,
        t.private_leak,
        t.decode_errors
    );

    let l = &r.listeners;
    let ramped = if l.ramped > 0 { format!(" (+{} ramped during traffic)", l.ramped) } else { String::new() };
    let recovered =
        if l.recovered > 0 { format!(" ({} more reconnected and rejoined)", l.recovered) } else { String::new() };
    let _ = writeln!(
        o,
        "\nlisteners       {} of {} joined at {}/s{ramped}, {} failed, {} closed by the target{recovered}",
        l.joined, l.requested, l.connect_rate_per_s, l.failed_to_join, l.closed_during_run
    );
    if !l.failures.is_empty() {
        let f = l.failures.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
        let _ = writeln!(o, "failures        {f}");
    }
    let s = &r.scheduler;
    let load = s.load_average.map_or_else(String::new, |l| format!(", load average {l:.2}"));
    let _ = writeln!(
        o,
        "scheduler       max lag {:.2} ms (allowed {:.0} ms), in flight max {} of {}, cap hits {}{load}",
        s.max_lag_ms, s.max_lag_allowed_ms, s.max_in_flight, s.in_flight_cap, s.in_flight_cap_hits
    );
    let embedded = if r.simulator.includes_embedded_server { " (includes the in-process server)" } else { "" };
    if let Some(cores) = r.simulator.cpu_cores_during_traffic {
        let per = r.simulator.cpu_us_per_delivery.map_or_else(String::new, |us| format!(", {us:.1} µs per delivery"));
        let _ = writeln!(o, "simulator cpu   {cores:.2} cores busy during traffic{per}{embedded}");
    }
    let kib = |b: f64| format!("{:.1} KiB", b / 1024.0);
    let sim = r.simulator.rss_per_listener_bytes.map_or("n/a".to_owned(), kib);
    let _ = writeln!(o, "memory          simulator {sim} per listener{embedded}");
    if let Some(s) = &r.server {
        let per = s.rss_per_socket_bytes.map_or("n/a".to_owned(), kib);
        let _ = writeln!(
            o,
            "                server {per} per socket ({} MiB resident after join)",
            s.rss_after_bytes / (1 << 20)
        );
        if let (Some(cores), false) = (s.cpu_cores_during_traffic, s.same_process_as_simulator) {
            let per = s.cpu_us_per_delivery.map_or_else(String::new, |us| format!(", {us:.1} µs per delivery"));
            let _ = writeln!(o, "server cpu      {cores:.2} cores busy during traffic{per}");
        }
    }
    if r.targets.len() > 1 {
        for (t, entry) in &r.targets {
            let server = entry
                .server
                .as_ref()
                .and_then(|s| s.rss_per_socket_bytes)
                .map_or_else(String::new, |b| format!(", server {} per socket", kib(b)));
            let _ = writeln!(
                o,
                "target {t:<8} {}: {} sockets connected, {} failovers{server}",
                entry.url, entry.sockets_connected, entry.failovers
            );
        }
    }
    if !r.thresholds.is_empty() {
        let _ = writeln!(o, "\ngates");
        for t in &r.thresholds {
            let verdict = if t.passed { "pass" } else { "FAIL" };
            let kind = if t.default { " (default)" } else { "" };
            let _ = writeln!(o, "  {verdict:<6}{:<44} actual {}{kind}", t.expr, super::ci::actual_text(t));
        }
    }
    o
}

/// The last lines: the verdict and where the report is.
pub fn footer(r: &ReportModel, dir: &std::path::Path) -> String {
    format!(
        "\n{}\nreport.html     {}\nreport.json     {}\n",
        r.verdict.line,
        dir.join("report.html").display(),
        dir.join("report.json").display()
    )
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
