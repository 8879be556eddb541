//! `report.html`: one self-contained page (inline CSS, inline SVG drawn in Rust with
//! `plotters`; no script, no network) that a person reads after a run: the verdict,
//! the gates, key tables, the plan; over time, on one shared time axis, every action
//! kind's latency and completions and every listener group's delivery latency and
//! deliveries (requests and deliveries each on an axis of their own; groups without
//! listeners and kinds not driven have no curves), open connections and errors; and
//! the percentile spectrum of every latency histogram on HdrHistogram's log scale
//! (0 → 99.999 %). Legends sit beside the plots, never over the curves.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::model::ReportModel;
use crate::report::histo::Summary;
use crate::report::timeline::Timeline;

const WIDTH: u32 = 900;
const HEIGHT: u32 = 340;
const SPECTRUM_WIDTH: u32 = 440;
const SPECTRUM_HEIGHT: u32 = 300;
/// The spectrum's x axis ends at 99.999 %: log10(1 / (1 − 0.99999)).
const SPECTRUM_NINES: f64 = 5.0;

const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub(crate) const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;\
max-width:960px;color:#222;padding:0 1em}h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .7em;border-bottom:1px solid #eee;text-align:right}\
th:first-child,td:first-child{text-align:left}th{background:#f6f6f6}.ok{color:#17702a;font-weight:600}\
.bad{color:#b00020;font-weight:600}pre{background:#f6f6f6;padding:.7em;overflow:auto;font-size:.85em}\
.grid{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0 0 1em}svg{max-width:100%;height:auto}.note{color:#666}\
.legend{font-size:.8em;display:flex;flex-wrap:wrap;gap:.3em 1.2em;margin:.2em 0 0 60px}\
.legend i{display:inline-block;width:18px;height:3px;margin-right:.4em;vertical-align:middle}";

/// The whole page for `model` and its `histograms` (µs).
pub fn render(model: &ReportModel, histograms: &[(String, Histogram<u64>)]) -> String {
    let mut o = String::new();
    let title = format!("firehose-sim run {}", model.run_id);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(&title)
    );
    let _ = writeln!(o, "<h1>{}</h1>", esc(&title));
    let target = model.target_text("the embedded app");
    let _ = writeln!(
        o,
        "<p>target <code>{}</code> · started {} · finished {} · simulator {} · schema <code>{}</code></p>",
        esc(&target),
        esc(&model.started_at),
        esc(&model.finished_at),
        esc(&model.simulator_version),
        esc(&model.schema)
    );
    verdict(&mut o, model);
    key_tables(&mut o, model, histograms);

    let _ = writeln!(o, "<h2>Over time</h2>");
    match &model.timeline {
        Some(t) if !t.rows.is_empty() => over_time(&mut o, t),
        _ => {
            let _ = writeln!(o, "<p class=\"note\">This run has no timeline.</p>");
        }
    }

    let _ = writeln!(
        o,
        "<h2>Percentile spectrum</h2>\n<p class=\"note\">Latency by percentile, x axis on HdrHistogram's \
         log scale of 1/(1−percentile): every step right is one more nine.</p>\n<div class=\"grid\">"
    );
    let recorded: Vec<(String, Histogram<u64>)> = histograms.iter().filter(|(_, h)| !h.is_empty()).cloned().collect();
    for (family, members) in families(&recorded) {
        figure(&mut o, spectrum(&family, &members));
    }
    let _ = writeln!(o, "</div>");

    let _ = writeln!(o, "<h2>Plan</h2>");
    let plan = serde_json::to_string_pretty(&model.plan).unwrap_or_default();
    let _ = writeln!(o, "<pre>{}</pre>", esc(&plan));
    o.push_str("</body></html>\n");
    o
}

/// Escapes text for HTML element content and double-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn verdict(o: &mut String, m: &ReportModel) {
    let v = &m.verdict;
    let class = if v.passed { "ok" } else { "bad" };
    let _ = writeln!(o, "<p class=\"{class}\">{}</p>", esc(&v.line));
    if !v.invalid_reasons.is_empty() {
        let _ = writeln!(o, "<p class=\"bad\">INVALID run: the figures describe the simulator, not the server</p><ul>");
        for r in &v.invalid_reasons {
            let _ = writeln!(o, "<li>{}</li>", esc(r));
        }
        let _ = writeln!(o, "</ul>");
    }
    if let Some(why) = &v.partial {
        // Whatever the gates say, a partial run did not measure the whole plan.
        let _ = writeln!(o, "<p class=\"bad\">⚠️ PARTIAL run: {}</p>", esc(why));
    }
    if !m.thresholds.is_empty() {
        let _ = writeln!(o, "<h2>Gates</h2>");
        let rows: Vec<Vec<String>> = m
            .thresholds
            .iter()
            .map(|t| {
                let actual = match &t.actual {
                    serde_json::Value::Null => "—".to_owned(),
                    v => format!("{v} {}", t.unit).trim_end().to_owned(),
                };
                vec![
                    t.expr.clone(),
                    if t.default { "default" } else { "--threshold" }.to_owned(),
                    actual,
                    t.expected.clone(),
                    if t.passed { "pass" } else { "FAIL" }.to_owned(),
                ]
            })
            .collect();
        table(o, &["gate", "from", "actual", "expected", "result"], &rows);
    }
}

fn key_tables(o: &mut String, m: &ReportModel, histograms: &[(String, Histogram<u64>)]) {
    let w = &m.window;
    let _ = writeln!(o, "<h2>Run</h2>");
    table(
        o,
        &["window", "seconds"],
        &[
            vec!["planned (warm-up included)".into(), f2(w.duration_s)],
            vec!["warm-up".into(), f2(w.warmup_s)],
            vec!["traffic (first intended start → last answer)".into(), f2(w.traffic_s)],
            vec![format!("drain{}", if w.drain_timed_out { " (TIMED OUT)" } else { "" }), f2(w.drain_s)],
        ],
    );
    let rows: Vec<Vec<String>> = m
        .actions
        .iter()
        .map(|(k, a)| {
            let errors = a.errors.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
            vec![
                k.clone(),
                a.scheduled.to_string(),
                a.sent.to_string(),
                a.ok.to_string(),
                if errors.is_empty() { a.error_count.to_string() } else { format!("{} ({errors})", a.error_count) },
                a.late.to_string(),
                f1(a.throughput_per_s),
                f2(a.latency_corrected.p50_ms),
                f2(a.latency_corrected.p99_ms),
            ]
        })
        .collect();
    table(o, &["action", "scheduled", "sent", "ok", "errors", "late", "per s", "p50 ms", "p99 ms"], &rows);
    let l = &m.listeners;
    table(
        o,
        &["listeners", "requested", "joined", "ramped", "failed to join", "closed by target", "connect p99 ms"],
        &[vec![
            "all groups".into(),
            l.requested.to_string(),
            l.joined.to_string(),
            l.ramped.to_string(),
            l.failed_to_join.to_string(),
            l.closed_during_run.to_string(),
            f2(l.connect.p99_ms),
        ]],
    );
    let rows: Vec<Vec<String>> = m
        .groups
        .iter()
        .map(|(name, g)| {
            vec![
                name.clone(),
                g.listeners.to_string(),
                g.expected.to_string(),
                g.received.to_string(),
                g.lost.to_string(),
                g.listeners_with_loss.to_string(),
                g.duplicates.to_string(),
                g.excess.to_string(),
                g.private_leak.to_string(),
                f1(g.deliveries_per_s),
                f2(g.latency.p50_ms),
                f2(g.latency.p99_ms),
            ]
        })
        .collect();
    table(
        o,
        &[
            "delivery group",
            "listeners",
            "owed",
            "received",
            "lost",
            "w/ loss",
            "dup",
            "excess",
            "leaks",
            "per s",
            "p50 ms",
            "p99 ms",
        ],
        &rows,
    );
    let _ = writeln!(o, "<h2>Histograms</h2>");
    let rows: Vec<Vec<String>> = histograms
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(name, h)| {
            let s = Summary::of(h);
            vec![
                name.clone(),
                s.count.to_string(),
                f3(s.min_ms),
                f3(s.p50_ms),
                f3(s.p90_ms),
                f3(s.p99_ms),
                f3(s.p999_ms),
                f3(s.max_ms),
                f3(s.mean_ms),
            ]
        })
        .collect();
    table(o, &["histogram (ms)", "count", "min", "p50", "p90", "p99", "p99.9", "max", "mean"], &rows);
}

pub(crate) fn table(o: &mut String, head: &[&str], rows: &[Vec<String>]) {
    o.push_str("<table><tr>");
    for h in head {
        let _ = write!(o, "<th>{}</th>", esc(h));
    }
    o.push_str("</tr>\n");
    for row in rows {
        o.push_str("<tr>");
        for cell in row {
            let _ = write!(o, "<td>{}</td>", esc(cell));
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n");
}

pub(crate) fn f1(v: f64) -> String {
    format!("{v:.1}")
}
pub(crate) fn f2(v: f64) -> String {
    format!("{v:.2}")
}
fn f3(v: f64) -> String {
    format!("{v:.3}")
}

/// Appends a drawn plot with its legend beside it, or a note saying why there is none.
fn figure(o: &mut String, plot: Result<Plot, String>) {
    match plot {
        Ok((svg, legend)) => {
            let _ = write!(o, "<figure>{svg}");
            if !legend.is_empty() {
                o.push_str("<figcaption class=\"legend\">");
                for (name, color, faint) in legend {
                    let c = COLORS[color % COLORS.len()];
                    let opacity = if faint { 0.45 } else { 1.0 };
                    let _ = write!(
                        o,
                        "<span><i style=\"background:rgb({},{},{});opacity:{opacity}\"></i>{}</span>",
                        c.0,
                        c.1,
                        c.2,
                        esc(&name)
                    );
                }
                o.push_str("</figcaption>");
            }
            o.push_str("</figure>\n");
        }
        Err(e) => {
            let _ = writeln!(o, "<p class=\"note\">plot unavailable: {}</p>", esc(&e));
        }
    }
}

/// A legend entry: the series' name, colour index, and whether it is drawn faint.
type LegendEntry = (String, usize, bool);

/// A drawn plot: the SVG and its legend.
type Plot = (String, Vec<LegendEntry>);

/// One line on a plot.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
    /// Thin and pale (p50 beside p99).
    faint: bool,
    color: usize,
}

/// The time plots, every one on the same time axis (0 → the end of the last row).
pub(crate) fn over_time(o: &mut String, t: &Timeline) {
    use crate::report::timeline::{IntervalLatency, TimelineRow};
    // Each row's figures are plotted at the middle of its interval.
    let mid = |r: &TimelineRow| (r.start_s + r.end_s) / 2.0;
    let x_max = t.rows.last().map_or(1.0, |r| r.end_s).max(1.0);
    // Kinds that did something and groups that received something: no empty curves.
    let kinds: Vec<&String> = {
        let mut k: Vec<&String> = t
            .rows
            .iter()
            .flat_map(|r| r.actions.iter().filter(|(_, a)| a.sent + a.ok + a.errors > 0))
            .map(|(n, _)| n)
            .collect();
        k.sort();
        k.dedup();
        k
    };
    let groups: Vec<&String> = {
        let mut g: Vec<&String> =
            t.rows.iter().flat_map(|r| r.groups.iter().filter(|(_, g)| g.deliveries > 0)).map(|(n, _)| n).collect();
        g.sort();
        g.dedup();
        g
    };
    let latency = |pick: &dyn Fn(&TimelineRow) -> Option<IntervalLatency>, name: &str, k: usize| -> [Series; 2] {
        let of = |p: fn(&IntervalLatency) -> f64| -> Vec<(f64, f64)> {
            t.rows.iter().filter_map(|r| pick(r).filter(|l| l.count > 0).map(|l| (mid(r), p(&l)))).collect()
        };
        [
            Series { name: format!("{name} p99"), points: of(|l| l.p99_ms), faint: false, color: k },
            Series { name: format!("{name} p50"), points: of(|l| l.p50_ms), faint: true, color: k },
        ]
    };
    // One rate curve per name, read from each row by `per_s`.
    let rates = |names: &[&String], per_s: &dyn Fn(&TimelineRow, &str) -> f64| -> Vec<Series> {
        names
            .iter()
            .enumerate()
            .map(|(k, name)| Series {
                name: (*name).clone(),
                points: t.rows.iter().map(|r| (mid(r), per_s(r, name))).collect(),
                faint: false,
                color: k,
            })
            .collect()
    };
    if !kinds.is_empty() {
        let series: Vec<Series> = kinds
            .iter()
            .enumerate()
            .flat_map(|(k, name)| latency(&|r| r.actions.get(*name).map(|a| a.latency), name, k))
            .collect();
        figure(o, line_chart("Action latency per second (from intended start)", x_max, "ms", &series));
        let series = rates(&kinds, &|r, name| r.actions.get(name).map_or(0.0, |a| a.completed_per_s));
        figure(o, line_chart("Actions completed per second", x_max, "per second", &series));
    }
    if !groups.is_empty() {
        let series: Vec<Series> = groups
            .iter()
            .enumerate()
            .flat_map(|(k, name)| latency(&|r| r.groups.get(*name).map(|g| g.latency), name, k))
            .collect();
        figure(o, line_chart("Delivery latency per second", x_max, "ms", &series));
        let series = rates(&groups, &|r, name| r.groups.get(name).map_or(0.0, |g| g.deliveries_per_s));
        figure(o, line_chart("Deliveries per second (owed, once)", x_max, "per second", &series));
    }
    let connections = vec![
        Series {
            name: "open listener sockets".into(),
            points: t.rows.iter().map(|r| (mid(r), r.open_connections as f64)).collect(),
            faint: false,
            color: 2,
        },
        Series {
            name: "closed by the target (per interval)".into(),
            points: t.rows.iter().map(|r| (mid(r), r.closed_connections as f64)).collect(),
            faint: false,
            color: 1,
        },
    ];
    figure(o, line_chart("Connections", x_max, "sockets", &connections));
    if !kinds.is_empty() {
        let series: Vec<Series> = kinds
            .iter()
            .enumerate()
            .map(|(k, name)| Series {
                name: (*name).clone(),
                points: t.rows.iter().map(|r| (mid(r), r.actions.get(*name).map_or(0.0, |a| a.max_lag_ms))).collect(),
                faint: false,
                color: k,
            })
            .collect();
        figure(o, line_chart("Generator lag (largest per second: intended start → sent)", x_max, "ms", &series));
    }
    // Errors by action and error kind (`like: http_503`), each its own curve.
    let mut error_kinds: Vec<(&String, &String)> = t
        .rows
        .iter()
        .flat_map(|r| r.actions.iter().flat_map(|(k, a)| a.errors_by.keys().map(move |e| (k, e))))
        .collect();
    error_kinds.sort();
    error_kinds.dedup();
    if !error_kinds.is_empty() {
        let series: Vec<Series> = error_kinds
            .iter()
            .enumerate()
            .map(|(c, (kind, error))| Series {
                name: format!("{kind}: {error}"),
                points: t
                    .rows
                    .iter()
                    .map(|r| {
                        let n = r.actions.get(*kind).and_then(|a| a.errors_by.get(*error)).copied().unwrap_or(0);
                        (mid(r), n as f64)
                    })
                    .collect(),
                faint: false,
                color: c,
            })
            .collect();
        figure(o, line_chart("Errors per interval, by kind", x_max, "errors", &series));
    }
}

/// A line chart of `series` on the time axis 0 → `x_max` and y from 0 to its maximum,
/// with its legend entries.
fn line_chart(title: &str, x_max: f64, y_desc: &str, series: &[Series]) -> Result<Plot, String> {
    let y_max = series.iter().flat_map(|s| &s.points).map(|p| p.1).fold(0.0, f64::max);
    let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        draw_lines(&root, title, "seconds from t0", y_desc, (0.0..x_max, 0.0..y_max), series, &seconds_label)
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok((buf, legend(series)))
}

fn legend(series: &[Series]) -> Vec<LegendEntry> {
    series.iter().filter(|s| !s.points.is_empty()).map(|s| (s.name.clone(), s.color, s.faint)).collect()
}

type Ranges = (std::ops::Range<f64>, std::ops::Range<f64>);

fn draw_lines(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    (xs, ys): Ranges,
    series: &[Series],
    x_format: &dyn Fn(&f64) -> String,
) -> Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .margin_right(36)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(xs, ys)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(8)
        .x_label_formatter(x_format)
        .light_line_style(RGBColor(240, 240, 240))
        .draw()?;
    for s in series.iter().filter(|s| !s.points.is_empty()) {
        let color = COLORS[s.color % COLORS.len()];
        let style = if s.faint { color.mix(0.45).stroke_width(1) } else { color.stroke_width(2) };
        chart.draw_series(LineSeries::new(s.points.iter().copied(), style))?;
        if let [only] = s.points[..] {
            // A line of one point draws nothing: a dot says where it is.
            chart.draw_series(std::iter::once(Circle::new(only, 3, color.filled())))?;
        }
    }
    Ok(())
}

/// A time axis tick: whole seconds without decimals, others with one.
fn seconds_label(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-6 { format!("{x:.0}") } else { format!("{x:.1}") }
}

/// Histograms drawn on one spectrum: `<stem>_corrected` with `<stem>_uncorrected`,
/// `reach_<group>_<pct>` together, every other histogram alone.
fn families(histograms: &[(String, Histogram<u64>)]) -> BTreeMap<String, Vec<(String, &Histogram<u64>)>> {
    let mut out: BTreeMap<String, Vec<(String, &Histogram<u64>)>> = BTreeMap::new();
    for (name, h) in histograms {
        let family = if let Some(stem) = name.strip_suffix("_uncorrected").or_else(|| name.strip_suffix("_corrected")) {
            stem.to_owned()
        } else if name.starts_with("reach_") {
            name.rsplit_once('_').map_or(name.clone(), |(stem, _)| stem.to_owned())
        } else {
            name.clone()
        };
        out.entry(family).or_default().push((name.clone(), h));
    }
    out
}

/// HdrHistogram's percentile spectrum of `members`: x = log10(1/(1−q)), 0 → 99.999 %.
fn spectrum(family: &str, members: &[(String, &Histogram<u64>)]) -> Result<Plot, String> {
    let series: Vec<Series> = members
        .iter()
        .enumerate()
        .map(|(k, (name, h))| Series { name: name.clone(), points: spectrum_points(h), faint: false, color: k })
        .collect();
    let y_max = series.iter().flat_map(|s| &s.points).map(|p| p.1).fold(0.0, f64::max);
    let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (SPECTRUM_WIDTH, SPECTRUM_HEIGHT)).into_drawing_area();
        let label = |x: &f64| percentile_label(*x);
        draw_lines(&root, family, "percentile", "ms", (0.0..SPECTRUM_NINES, 0.0..y_max), &series, &label)
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok((buf, legend(&series)))
}

/// (log10(1/(1−q)), value in ms) at HdrHistogram's percentile ticks, up to 99.999 %.
fn spectrum_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut points = Vec::new();
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        let x = if q >= 1.0 { SPECTRUM_NINES } else { (1.0 / (1.0 - q)).log10().min(SPECTRUM_NINES) };
        points.push((x, h.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0));
        if x >= SPECTRUM_NINES {
            break;
        }
    }
    points
}

/// The percentile at spectrum position `x`: 0 → "0%", 1 → "90%", 3 → "99.9%".
fn percentile_label(x: f64) -> String {
    let p = (1.0 - 10f64.powf(-x)) * 100.0;
    let nines = x.round().max(0.0) as usize;
    if (x - x.round()).abs() < 1e-9 {
        format!("{p:.prec$}%", prec = nines.saturating_sub(2))
    } else {
        format!("{p:.3}%")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::histo::new_histogram;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(esc(r#"<a href="x">&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn spectrum_axis_counts_nines() {
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(percentile_label(5.0), "99.999%");
        let mut h = new_histogram();
        for v in 1..=100_000u64 {
            h.record(v).unwrap();
        }
        let points = spectrum_points(&h);
        assert_eq!(points.first().unwrap().0, 0.0);
        assert!(points.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert!((points.last().unwrap().0 - SPECTRUM_NINES).abs() < 1e-9);
        // The median sits one step right of 0 less than log10(2).
        let median = points.iter().find(|p| (p.0 - 2f64.log10()).abs() < 1e-9).unwrap();
        assert!((median.1 - 50.0).abs() < 0.1, "{median:?}");
    }

    #[test]
    fn families_pair_corrected_with_uncorrected() {
        let h = new_histogram;
        let hs = vec![
            ("action_like_corrected".to_owned(), h()),
            ("action_like_uncorrected".to_owned(), h()),
            ("reach_tag_50".to_owned(), h()),
            ("reach_tag_100".to_owned(), h()),
            ("delivery_firehose".to_owned(), h()),
        ];
        let f = families(&hs);
        assert_eq!(f.keys().collect::<Vec<_>>(), ["action_like", "delivery_firehose", "reach_tag"]);
        assert_eq!(f["action_like"].len(), 2);
        assert_eq!(f["reach_tag"].len(), 2);
    }
}
