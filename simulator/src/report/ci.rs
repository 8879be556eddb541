//! Outputs for CI beside `report.json`: `summary.md`, the verdict line and a Markdown
//! table of the key figures and the gates for a pull-request comment, and `junit.xml`,
//! one testcase per gate, default ones included (plus one for the run's validity, and
//! one that fails when the run is partial) for CI test dashboards.

use std::fmt::Write as _;

use super::model::{ReportModel, ThresholdOutcome};
use crate::report::histo::Summary;

/// `summary.md`
pub fn summary_md(r: &ReportModel) -> String {
    let mut o = String::new();
    let v = &r.verdict;
    let mark = if v.passed { "✅" } else { "❌" };
    let _ = writeln!(o, "### firehose-sim run `{}` — {mark} {}\n", r.run_id, escape_md(&v.line));
    let scenario =
        r.plan.get("scenario").and_then(|s| s.as_str()).map_or(String::new(), |s| format!(", scenario `{s}`"));
    let target = r.target_text("the embedded app");
    let _ = writeln!(
        o,
        "Target {target}{scenario}; {:.1} s traffic ({:.1} s measured), {} of {} listeners joined.\n",
        r.window.traffic_s, r.window.measured_s, r.listeners.joined, r.listeners.requested
    );
    if !v.valid {
        let _ = writeln!(o, "**Invalid:** {}\n", escape_md(&v.invalid_reasons.join("; ")));
    }
    if let Some(why) = &v.partial {
        let _ = writeln!(o, "**⚠️ Partial:** {}\n", escape_md(why));
    }
    let t = &r.totals;
    let _ = writeln!(o, "| figure | value |\n|---|---:|");
    let _ = writeln!(o, "| actions sent / ok / errors / late | {} / {} / {} / {} |", t.sent, t.ok, t.errors, t.late);
    let _ = writeln!(o, "| deliveries owed / received / lost | {} / {} / {} |", t.expected, t.received, t.lost);
    let _ =
        writeln!(o, "| duplicates / excess / private leaks | {} / {} / {} |", t.duplicates, t.excess, t.private_leak);
    let _ = writeln!(o, "| deliveries/s (owed, once) | {:.0} |", t.deliveries_per_s);
    for (kind, a) in &r.actions {
        let _ = writeln!(
            o,
            "| {kind}: sent / ok / errors | {} / {} / {} ({:.1}/s) |",
            a.sent, a.ok, a.error_count, a.throughput_per_s
        );
    }
    for (name, g) in &r.groups {
        let _ = writeln!(
            o,
            "| {name}: listeners / owed / lost | {} / {} / {} ({} with loss) |",
            g.listeners, g.expected, g.lost, g.listeners_with_loss
        );
        let _ = writeln!(o, "| {name}: duplicates / reordered | {} / {} |", g.duplicates, g.reordered);
        let _ = writeln!(o, "| {name}: deliveries/s | {:.0} |", g.deliveries_per_s);
    }
    let s = &r.scheduler;
    let _ = writeln!(o, "| scheduler max lag | {:.2} ms (allowed {:.0} ms) |", s.max_lag_ms, s.max_lag_allowed_ms);

    let _ =
        writeln!(o, "\n| latency (ms) | count | p50 | p90 | p99 | p99.9 | max |\n|---|---:|---:|---:|---:|---:|---:|");
    for (kind, a) in &r.actions {
        latency_row(&mut o, &format!("{kind} (corrected)"), &a.latency_corrected);
        latency_row(&mut o, &format!("{kind} (uncorrected)"), &a.latency_uncorrected);
    }
    for (name, g) in &r.groups {
        latency_row(&mut o, &format!("delivery {name}"), &g.latency);
        if let Some(reach) = g.reach.as_ref().filter(|r| r.pct_100.count > 0) {
            latency_row(&mut o, &format!("{name}: 50% of audience"), &reach.pct_50);
            latency_row(&mut o, &format!("{name}: 99% of audience"), &reach.pct_99);
            latency_row(&mut o, &format!("{name}: whole audience"), &reach.pct_100);
        }
    }
    latency_row(&mut o, "listener connect+join", &r.listeners.connect);

    if !r.thresholds.is_empty() {
        let _ = writeln!(o, "\n| gate | actual | result |\n|---|---:|---|");
        for t in &r.thresholds {
            let result = if t.passed { "✅ pass" } else { "❌ fail" };
            let kind = if t.default { " (default)" } else { "" };
            let _ = writeln!(o, "| `{}`{kind} | {} | {result} |", escape_md(&t.expr), actual_text(t));
        }
    }
    o
}

fn latency_row(o: &mut String, name: &str, s: &Summary) {
    let _ = writeln!(
        o,
        "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
        s.count, s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms, s.max_ms
    );
}

/// `12.5 ms`, `0.002 (0.2%)`, `true`, `n/a`.
pub fn actual_text(t: &ThresholdOutcome) -> String {
    match (&t.actual, t.unit.as_str()) {
        (serde_json::Value::Null, _) => "n/a".to_owned(),
        (serde_json::Value::Number(n), "fraction") => {
            let f = n.as_f64().unwrap_or(0.0);
            format!("{f} ({}%)", f * 100.0)
        }
        (serde_json::Value::Number(n), "ms") => format!("{:.3} ms", n.as_f64().unwrap_or(0.0)),
        (v, "") => v.to_string(),
        (v, unit) => format!("{v} {unit}"),
    }
}

fn escape_md(s: &str) -> String {
    s.replace('|', "\\|").replace('`', "'")
}

/// `junit.xml`
pub fn junit_xml(r: &ReportModel) -> String {
    let v = &r.verdict;
    let failures =
        r.thresholds.iter().filter(|t| !t.passed).count() + usize::from(!v.valid) + usize::from(v.partial.is_some());
    let tests = r.thresholds.len() + 1 + usize::from(v.partial.is_some());
    let time = r.window.traffic_s + r.window.drain_s;
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ =
        writeln!(o, "<testsuites name=\"firehose-sim\" tests=\"{tests}\" failures=\"{failures}\" time=\"{time:.3}\">");
    let _ = writeln!(
        o,
        "  <testsuite name=\"firehose-sim.{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{time:.3}\" timestamp=\"{}\">",
        xml(&r.run_id),
        xml(&r.started_at)
    );
    let _ = writeln!(o, "    <testcase classname=\"firehose-sim.run\" name=\"run is valid\">");
    if !v.valid {
        let reasons = v.invalid_reasons.join("; ");
        let _ = writeln!(o, "      <failure message=\"invalid run\" type=\"invalid_run\">{}</failure>", xml(&reasons));
    }
    let _ = writeln!(o, "    </testcase>");
    if let Some(why) = &v.partial {
        let _ = writeln!(o, "    <testcase classname=\"firehose-sim.run\" name=\"run is complete\">");
        let _ = writeln!(o, "      <failure message=\"partial run\" type=\"partial\">{}</failure>", xml(why));
        let _ = writeln!(o, "    </testcase>");
    }
    for t in &r.thresholds {
        let class = if t.default { "firehose-sim.default_gates" } else { "firehose-sim.thresholds" };
        let _ = writeln!(o, "    <testcase classname=\"{class}\" name=\"{}\">", xml(&t.expr));
        if !t.passed {
            let message = format!("actual {}, expected {} {}", actual_text(t), t.metric, t.expected);
            let _ = writeln!(
                o,
                "      <failure message=\"{}\" type=\"threshold\">{}: actual {}, expected {}</failure>",
                xml(&message),
                xml(&t.expr),
                xml(&actual_text(t)),
                xml(&t.expected)
            );
        }
        let _ = writeln!(o, "    </testcase>");
    }
    let _ = writeln!(o, "  </testsuite>\n</testsuites>");
    o
}

/// Escapes text for an XML attribute or element: the HTML escaping (`&#39;` is as valid
/// in XML as `&apos;`), minus the control characters XML 1.0 does not allow.
fn xml(s: &str) -> String {
    let allowed: String = s.chars().filter(|&c| (c as u32) >= 0x20 || matches!(c, '\n' | '\t' | '\r')).collect();
    super::html::esc(&allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_text_is_escaped() {
        assert_eq!(xml("p99 < 5ms & \"x\""), "p99 &lt; 5ms &amp; &quot;x&quot;");
        assert_eq!(xml("a\u{1}b"), "ab");
    }
}
