//! What the dashboard shows: the run's [`LiveEvent`]s folded into one state (the
//! phase, the timeline so far, totals per kind and group, errors by kind, the verdict
//! once judged) and that state rendered as an HTML fragment: the latest second's
//! figures, the totals so far and the same over-time plots as `report.html`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::report::html::{self, esc, f1, f2};
use crate::report::live::LiveEvent;
use crate::report::model::ReportModel;
use crate::report::timeline::{Timeline, TimelineRow};

/// Totals so far of one action kind.
#[derive(Debug, Default, Clone, Copy)]
struct KindTotals {
    sent: u64,
    ok: u64,
    errors: u64,
}

/// The run as the dashboard knows it.
#[derive(Debug, Default)]
pub struct View {
    phase: String,
    detail: String,
    planned_s: f64,
    elapsed_s: f64,
    timeline: Timeline,
    kinds: BTreeMap<String, KindTotals>,
    deliveries: BTreeMap<String, u64>,
    /// `(kind, error kind)` → errors so far.
    errors: BTreeMap<(String, String), u64>,
    ended: Option<(Box<ReportModel>, Option<PathBuf>)>,
}

impl View {
    pub fn new() -> Self {
        Self {
            phase: "starting".into(),
            timeline: Timeline { interval_s: 1.0, ..Timeline::default() },
            ..Self::default()
        }
    }

    /// Whether the run was judged (nothing more will come).
    pub fn ended(&self) -> bool {
        self.ended.is_some()
    }

    pub fn apply(&mut self, event: &LiveEvent) {
        match event {
            LiveEvent::Phase { phase, detail } => {
                self.phase.clone_from(phase);
                self.detail.clone_from(detail);
            }
            LiveEvent::Row { elapsed_s, planned_s, row } => {
                (self.elapsed_s, self.planned_s) = (*elapsed_s, *planned_s);
                self.add_row(row);
            }
            LiveEvent::Ended { model, report_dir } => {
                self.phase = "ended".into();
                self.detail.clear();
                self.ended = Some((model.clone(), report_dir.clone()));
            }
        }
    }

    fn add_row(&mut self, row: &TimelineRow) {
        for (name, k) in &row.actions {
            let t = self.kinds.entry(name.clone()).or_default();
            t.sent += k.sent;
            t.ok += k.ok;
            t.errors += k.errors;
            for (error, n) in &k.errors_by {
                *self.errors.entry((name.clone(), error.clone())).or_default() += n;
            }
        }
        for (name, g) in &row.groups {
            *self.deliveries.entry(name.clone()).or_default() += g.deliveries;
        }
        self.timeline.rows.push(row.clone());
    }

    /// The live part of the page (everything under the title).
    pub fn fragment(&self) -> String {
        let mut o = String::new();
        match &self.ended {
            Some((model, dir)) => {
                html::verdict(&mut o, model);
                if let Some(dir) = dir {
                    let report = dir.join("report.html");
                    let _ = writeln!(
                        o,
                        "<p>The run ended; this page no longer changes. Full report: <code>{}</code></p>",
                        esc(&report.display().to_string())
                    );
                }
            }
            None => {
                let progress = if self.detail.is_empty() && self.planned_s > 0.0 {
                    format!(" · {:.0} of {:.0} s", self.elapsed_s, self.planned_s)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    o,
                    "<p class=\"phase\"><b>{}</b> {}{}</p>",
                    esc(&self.phase),
                    esc(&self.detail),
                    esc(&progress)
                );
            }
        }
        self.latest(&mut o);
        self.totals(&mut o);
        let _ = writeln!(o, "<h2>Over time</h2>");
        if self.timeline.rows.is_empty() {
            let _ = writeln!(o, "<p class=\"note\">The plots start with the traffic.</p>");
        } else {
            html::over_time(&mut o, &self.timeline);
        }
        o
    }

    /// The latest second: rates, open sockets, errors, lag, per-group latency.
    fn latest(&self, o: &mut String) {
        let Some(row) = self.timeline.rows.last() else { return };
        let errors_so_far: u64 = self.kinds.values().map(|k| k.errors).sum();
        let lag = row.actions.values().map(|a| a.max_lag_ms).fold(0.0, f64::max);
        let _ = writeln!(o, "<h2>Last second ({:.0}–{:.0} s)</h2>", row.start_s, row.end_s);
        o.push_str("<div class=\"tiles\">");
        for (label, value) in [
            ("actions/s", f1(row.actions_per_s())),
            ("deliveries/s", f1(row.deliveries_per_s())),
            ("open connections", row.open_connections.to_string()),
            ("errors (so far)", format!("{} ({errors_so_far})", row.errors())),
            ("generator lag ms", f1(lag)),
        ] {
            let _ = write!(o, "<div class=\"tile\"><b>{}</b><span>{}</span></div>", esc(&value), esc(label));
        }
        o.push_str("</div>\n");
        let rows: Vec<Vec<String>> = row
            .groups
            .iter()
            .map(|(name, g)| {
                // Nothing measured in the second (the warm-up): no latency to show.
                let ms = |v: f64| if g.latency.count == 0 { "–".to_owned() } else { f2(v) };
                vec![
                    name.clone(),
                    f1(g.deliveries_per_s),
                    ms(g.latency.p50_ms),
                    ms(g.latency.p99_ms),
                    self.deliveries.get(name).copied().unwrap_or(0).to_string(),
                ]
            })
            .collect();
        if !rows.is_empty() {
            html::table(o, &["group", "deliveries/s", "p50 ms", "p99 ms", "deliveries so far"], &rows);
        }
    }

    /// Totals so far per action kind, and errors by kind.
    fn totals(&self, o: &mut String) {
        if self.kinds.is_empty() {
            return;
        }
        let last = self.timeline.rows.last();
        let rows: Vec<Vec<String>> = self
            .kinds
            .iter()
            .map(|(name, t)| {
                let now = last.and_then(|r| r.actions.get(name));
                vec![
                    name.clone(),
                    t.sent.to_string(),
                    t.ok.to_string(),
                    t.errors.to_string(),
                    now.map_or_else(String::new, |k| f1(k.completed_per_s)),
                    now.filter(|k| k.latency.count > 0).map_or_else(|| "–".to_owned(), |k| f2(k.latency.p99_ms)),
                    now.map_or_else(String::new, |k| f1(k.max_lag_ms)),
                ]
            })
            .collect();
        let _ = writeln!(o, "<h2>Actions</h2>");
        html::table(o, &["action", "sent", "ok", "errors", "per s now", "p99 ms now", "lag ms now"], &rows);
        if !self.errors.is_empty() {
            let rows: Vec<Vec<String>> =
                self.errors.iter().map(|((kind, error), n)| vec![kind.clone(), error.clone(), n.to_string()]).collect();
            html::table(o, &["action", "error", "so far"], &rows);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::timeline::{GroupRow, IntervalLatency, KindRow};

    fn row(start: f64, errors: u64) -> TimelineRow {
        let mut r = TimelineRow { start_s: start, end_s: start + 1.0, open_connections: 40, ..Default::default() };
        r.actions.insert(
            "create_bookmark".into(),
            KindRow {
                sent: 10,
                ok: 10 - errors,
                errors,
                completed_per_s: 10.0,
                latency: IntervalLatency { count: 10, p50_ms: 2.0, p99_ms: 9.5, max_ms: 11.0 },
                max_lag_ms: 0.4,
                errors_by: if errors > 0 { [("http_503".to_owned(), errors)].into() } else { BTreeMap::new() },
            },
        );
        r.groups.insert(
            "firehose".into(),
            GroupRow {
                deliveries: 400,
                deliveries_per_s: 400.0,
                latency: IntervalLatency { count: 400, p50_ms: 1.5, p99_ms: 7.25, max_ms: 9.0 },
            },
        );
        r
    }

    #[test]
    fn folds_rows_into_totals_and_shows_the_latest_second() {
        let mut v = View::new();
        v.apply(&LiveEvent::Phase { phase: "connecting".into(), detail: "listeners 3/40 joined".into() });
        assert!(v.fragment().contains("listeners 3/40 joined"));
        v.apply(&LiveEvent::Row { elapsed_s: 1.0, planned_s: 5.0, row: row(0.0, 0) });
        v.apply(&LiveEvent::Row { elapsed_s: 2.0, planned_s: 5.0, row: row(1.0, 3) });
        let html = v.fragment();
        assert!(html.contains("<td>create_bookmark</td><td>20</td><td>17</td><td>3</td>"), "{html}");
        assert!(html.contains("<td>create_bookmark</td><td>http_503</td><td>3</td>"), "{html}");
        assert!(html.contains("<td>firehose</td><td>400.0</td><td>1.50</td><td>7.25</td><td>800</td>"), "{html}");
        assert!(html.contains("<svg"), "the over-time plots");
        assert!(html.contains("Generator lag"), "{html}");
        assert!(!v.ended());
    }

    #[test]
    fn text_from_the_run_is_escaped() {
        let mut v = View::new();
        v.apply(&LiveEvent::Phase { phase: "<b>".into(), detail: "a & <script>".into() });
        let html = v.fragment();
        assert!(html.contains("&lt;b&gt;") && html.contains("a &amp; &lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"));
    }
}
