//! `report.html`: one self-contained page (inline CSS, inline SVG drawn in Rust with
//! `plotters`; no script, no network) that a person reads after a run: the verdict,
//! thresholds, key tables, the plan, and plots of latency over time (p50/p99 per
//! second), throughput and open connections over time, and the percentile spectrum of
//! every latency histogram on HdrHistogram's log scale (0 → 99.999 %).

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

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;\
max-width:960px;color:#222;padding:0 1em}h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .7em;border-bottom:1px solid #eee;text-align:right}\
th:first-child,td:first-child{text-align:left}th{background:#f6f6f6}.ok{color:#17702a;font-weight:600}\
.bad{color:#b00020;font-weight:600}pre{background:#f6f6f6;padding:.7em;overflow:auto;font-size:.85em}\
.grid{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0}svg{max-width:100%;height:auto}.note{color:#666}";

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
    let _ = writeln!(
        o,
        "<p>{} target <code>{}</code> · started {} · finished {} · simulator {} · schema <code>{}</code></p>",
        esc(&model.target.kind),
        esc(&model.target.url),
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
    for (family, members) in families(histograms) {
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

fn verdict(o: &mut String, m: &ReportModel) {
    let passed = m.thresholds.iter().all(|t| t.passed);
    let (class, text) = match (m.valid, passed) {
        (false, _) => ("bad", "INVALID run: the generator fell behind; the figures describe the simulator"),
        (true, false) => ("bad", "valid run; a threshold FAILED"),
        (true, true) => ("ok", "valid run; every threshold passed"),
    };
    let _ = writeln!(o, "<p class=\"{class}\">{}</p>", esc(text));
    if let Some(why) = &m.partial {
        // Whatever the gates say, a partial run did not measure the whole plan.
        let _ = writeln!(o, "<p class=\"bad\">⚠️ PARTIAL run: {}</p>", esc(why));
    }
    if !m.invalid_reasons.is_empty() {
        let _ = writeln!(o, "<ul>");
        for r in &m.invalid_reasons {
            let _ = writeln!(o, "<li>{}</li>", esc(r));
        }
        let _ = writeln!(o, "</ul>");
    }
    if !m.thresholds.is_empty() {
        let _ = writeln!(o, "<h2>Thresholds</h2>");
        let rows: Vec<Vec<String>> = m
            .thresholds
            .iter()
            .map(|t| {
                let actual = match &t.actual {
                    serde_json::Value::Null => "—".to_owned(),
                    v => format!("{v} {}", t.unit),
                };
                vec![t.expr.clone(), actual, t.expected.clone(), if t.passed { "pass" } else { "FAIL" }.to_owned()]
            })
            .collect();
        table(o, &["threshold", "actual", "expected", "result"], &rows);
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
            vec!["traffic (first intended start → last response)".into(), f2(w.traffic_s)],
            vec![format!("drain{}", if w.drain_timed_out { " (TIMED OUT)" } else { "" }), f2(w.drain_s)],
        ],
    );
    let q = &m.requests;
    let errors = q.errors.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
    table(
        o,
        &["requests", "scheduled", "sent", "responses", "created", "errors", "responses/s"],
        &[vec![
            "bookmark create".into(),
            q.scheduled.to_string(),
            q.sent.to_string(),
            q.responses.to_string(),
            q.created.to_string(),
            if errors.is_empty() { q.error_count.to_string() } else { format!("{} ({errors})", q.error_count) },
            f1(q.throughput_per_s),
        ]],
    );
    if !m.actions.is_empty() {
        let rows: Vec<Vec<String>> = m
            .actions
            .iter()
            .map(|(k, a)| {
                vec![
                    k.clone(),
                    a.scheduled.to_string(),
                    a.sent.to_string(),
                    a.ok.to_string(),
                    a.error_count.to_string(),
                    f1(a.throughput_per_s),
                    f2(a.latency_corrected.p50_ms),
                    f2(a.latency_corrected.p99_ms),
                ]
            })
            .collect();
        table(o, &["action", "scheduled", "sent", "ok", "errors", "per s", "p50 ms", "p99 ms"], &rows);
    }
    let l = &m.listeners;
    table(
        o,
        &["listeners", "requested", "joined", "failed to join", "closed during run", "connect p99 ms"],
        &[vec![
            "all groups".into(),
            l.requested.to_string(),
            l.joined.to_string(),
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
                (g.duplicates + g.reordered).to_string(),
                f1(g.deliveries_per_s),
                f2(g.latency.p50_ms),
                f2(g.latency.p99_ms),
                f2(g.latency.max_ms),
            ]
        })
        .collect();
    table(
        o,
        &[
            "delivery group",
            "listeners",
            "expected",
            "received",
            "lost",
            "dup+reord",
            "per s",
            "p50 ms",
            "p99 ms",
            "max ms",
        ],
        &rows,
    );
    let _ = writeln!(o, "<h2>Histograms</h2>");
    let rows: Vec<Vec<String>> = histograms
        .iter()
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

fn table(o: &mut String, head: &[&str], rows: &[Vec<String>]) {
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

fn f1(v: f64) -> String {
    format!("{v:.1}")
}
fn f2(v: f64) -> String {
    format!("{v:.2}")
}
fn f3(v: f64) -> String {
    format!("{v:.3}")
}

/// Appends a drawn plot, or a note saying why there is none.
fn figure(o: &mut String, svg: Result<String, String>) {
    match svg {
        Ok(svg) => {
            let _ = writeln!(o, "<figure>{svg}</figure>");
        }
        Err(e) => {
            let _ = writeln!(o, "<p class=\"note\">plot unavailable: {}</p>", esc(&e));
        }
    }
}

/// One line on a plot.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
    /// Thin and pale (p50 beside p99).
    faint: bool,
    color: usize,
}

fn over_time(o: &mut String, t: &Timeline) {
    // Each row's figures are plotted at the middle of its interval.
    let mid = |r: &crate::report::timeline::TimelineRow| (r.start_s + r.end_s) / 2.0;
    // Latency: p99 and p50 of the request and delivery histograms, intervals that recorded.
    let mut names: Vec<&String> = t.rows.iter().flat_map(|r| r.latency.keys()).collect();
    names.sort();
    names.dedup();
    let shown: Vec<&String> = names
        .into_iter()
        .filter(|n| n.starts_with("delivery_") || n.starts_with("request_") || n.starts_with("action_"))
        .collect();
    let mut latency = Vec::new();
    for (k, name) in shown.iter().enumerate() {
        let of = |p: fn(&crate::report::timeline::IntervalLatency) -> f64| -> Vec<(f64, f64)> {
            t.rows.iter().filter_map(|r| r.latency.get(*name).filter(|l| l.count > 0).map(|l| (mid(r), p(l)))).collect()
        };
        latency.push(Series { name: format!("{name} p99"), points: of(|l| l.p99_ms), faint: false, color: k });
        latency.push(Series { name: format!("{name} p50"), points: of(|l| l.p50_ms), faint: true, color: k });
    }
    figure(o, line_chart("Latency per second (p99 bold, p50 faint)", "seconds from t0", "ms", &latency));

    let mut throughput = vec![Series {
        name: "requests/s".into(),
        points: t.rows.iter().map(|r| (mid(r), r.requests_per_s)).collect(),
        faint: false,
        color: 0,
    }];
    let groups: BTreeMap<&String, ()> =
        t.rows.iter().flat_map(|r| r.deliveries_per_s.keys()).map(|g| (g, ())).collect();
    for (k, g) in groups.keys().enumerate() {
        throughput.push(Series {
            name: format!("{g} deliveries/s"),
            points: t.rows.iter().map(|r| (mid(r), r.deliveries_per_s.get(*g).copied().unwrap_or(0.0))).collect(),
            faint: false,
            color: k + 1,
        });
    }
    figure(o, line_chart("Throughput per second", "seconds from t0", "per second", &throughput));

    let connections = vec![
        Series {
            name: "open listener sockets".into(),
            points: t.rows.iter().map(|r| (mid(r), r.open_connections as f64)).collect(),
            faint: false,
            color: 2,
        },
        Series {
            name: "closed by the server (per interval)".into(),
            points: t.rows.iter().map(|r| (mid(r), r.closed_connections as f64)).collect(),
            faint: false,
            color: 1,
        },
    ];
    figure(o, line_chart("Connections", "seconds from t0", "sockets", &connections));

    let errors: u64 = t.rows.iter().map(|r| r.errors).sum();
    if errors > 0 {
        let series = vec![Series {
            name: "request errors".into(),
            points: t.rows.iter().map(|r| (mid(r), r.errors as f64)).collect(),
            faint: false,
            color: 1,
        }];
        figure(o, line_chart("Errors per interval", "seconds from t0", "errors", &series));
    }
}

/// A line chart of `series` over a shared x range (0 → the last x) and y range (0 → max).
fn line_chart(title: &str, x_desc: &str, y_desc: &str, series: &[Series]) -> Result<String, String> {
    let x_max = series.iter().flat_map(|s| &s.points).map(|p| p.0).fold(0.0, f64::max).max(1.0);
    let y_max = series.iter().flat_map(|s| &s.points).map(|p| p.1).fold(0.0, f64::max);
    let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        draw_lines(&root, title, x_desc, y_desc, (0.0..x_max, 0.0..y_max), series, &seconds_label)
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(buf)
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
    let mut labelled = false;
    for s in series.iter().filter(|s| !s.points.is_empty()) {
        let color = COLORS[s.color % COLORS.len()];
        let style = if s.faint { color.mix(0.45).stroke_width(1) } else { color.stroke_width(2) };
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), style))?
            .label(s.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        labelled = true;
    }
    if labelled {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .draw()?;
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
fn spectrum(family: &str, members: &[(String, &Histogram<u64>)]) -> Result<String, String> {
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
    Ok(buf)
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
            ("request_corrected".to_owned(), h()),
            ("request_uncorrected".to_owned(), h()),
            ("reach_tag_50".to_owned(), h()),
            ("reach_tag_100".to_owned(), h()),
            ("delivery_firehose".to_owned(), h()),
        ];
        let f = families(&hs);
        assert_eq!(f.keys().collect::<Vec<_>>(), ["delivery_firehose", "reach_tag", "request"]);
        assert_eq!(f["request"].len(), 2);
        assert_eq!(f["reach_tag"].len(), 2);
    }
}
