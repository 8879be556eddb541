//! The parent's live view of its agents: their timeline rows, merged second by second
//! once every agent sent that second (by the merged report's rules), and its own phases,
//! published to `report::live` for the dashboard.

use std::time::Duration;

use crate::report::live::{self, LiveEvent};
use crate::report::merge::merge_rows;
use crate::report::timeline::TimelineRow;

/// The agents' rows not yet merged.
pub struct AgentRows {
    planned_s: f64,
    /// Per agent, its rows so far.
    rows: Vec<Vec<TimelineRow>>,
    /// Seconds already merged and published.
    published: usize,
}

impl AgentRows {
    /// For `count` agents whose traffic is planned to last `planned`.
    pub fn new(count: u32, planned: Duration) -> Self {
        Self { planned_s: planned.as_secs_f64(), rows: vec![Vec::new(); count as usize], published: 0 }
    }

    /// Agent `agent`'s next row; publishes every second all agents now have.
    pub fn add(&mut self, agent: u32, row: TimelineRow) {
        let Some(mine) = self.rows.get_mut(agent as usize) else { return };
        mine.push(row);
        while self.rows.iter().all(|r| r.len() > self.published) {
            let second: Vec<&TimelineRow> = self.rows.iter().map(|r| &r[self.published]).collect();
            let row = merge_rows(&second);
            live::publish(&LiveEvent::Row { elapsed_s: row.end_s, planned_s: self.planned_s, row });
            self.published += 1;
        }
    }

    /// A phase of the parent (`connecting`, `traffic`, `merging`).
    pub fn phase(&self, phase: &str, detail: String) {
        live::publish(&LiveEvent::Phase { phase: phase.to_owned(), detail });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::timeline::{GroupRow, IntervalLatency};

    fn row(second: f64, deliveries: u64, p99: f64) -> TimelineRow {
        let mut r = TimelineRow { start_s: second, end_s: second + 1.0, open_connections: 10, ..Default::default() };
        let latency = IntervalLatency { count: deliveries, p50_ms: 1.0, p99_ms: p99, max_ms: p99 };
        r.groups.insert("firehose".into(), GroupRow { deliveries, deliveries_per_s: deliveries as f64, latency });
        r
    }

    #[test]
    fn a_second_is_published_once_every_agent_sent_it_and_figures_merge() {
        let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let s = std::sync::Arc::clone(&seen);
        let _sub = live::subscribe(move |e| {
            if let LiveEvent::Row { row, planned_s, .. } = e
                && *planned_s == 7.0
            {
                s.lock().push(row.clone());
            }
        });
        let mut rows = AgentRows::new(2, Duration::from_secs(7));
        rows.add(0, row(0.0, 100, 5.0));
        rows.add(0, row(1.0, 100, 5.0));
        assert!(seen.lock().is_empty(), "agent 1 has not sent second 0 yet");
        rows.add(1, row(0.0, 50, 9.0));
        let merged = seen.lock().clone();
        assert_eq!(merged.len(), 1);
        let g = &merged[0].groups["firehose"];
        assert_eq!((g.deliveries, g.deliveries_per_s, g.latency.p99_ms), (150, 150.0, 9.0));
        assert_eq!(merged[0].open_connections, 20);
        assert_eq!(merged[0].end_s, 1.0);
    }
}
