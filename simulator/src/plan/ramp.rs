//! Listener ramps in the plan: a stage's `listeners = F` (or `--stage D:S:F`) is the
//! fraction of each listener group (firehose, tag) connected by the stage's end, moving
//! linearly from the previous stage's (the first stage's own value at the start).
//! Listener `r` (0-based rank in its group of `n`) is connected while `F(t)·n ≥ r + 1`;
//! [`ListenerRamp::windows`] gives its connected windows. The bookmarks workload opens
//! and closes them.

use std::time::Duration;

use serde::Serialize;

/// Stage ends and the fraction of every listener group connected there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListenerRamp {
    /// The fraction at the start of the traffic phase.
    pub start: f64,
    /// Per stage: its length and the fraction at its end.
    #[serde(serialize_with = "points")]
    pub stages: Vec<(Duration, f64)>,
}

fn points<S: serde::Serializer>(list: &[(Duration, f64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(list.iter().map(|(d, f)| (d.as_secs_f64(), f)))
}

/// One connected window of a ramped listener: offsets from `t0`, `None` for "still
/// connected at the end".
pub type Window = (Duration, Option<Duration>);

const EPS: f64 = 1e-9;

impl ListenerRamp {
    /// `(offset s, fraction)` at the start and at every stage's end.
    fn points(&self) -> Vec<(f64, f64)> {
        let mut at = 0.0;
        let mut out = vec![(0.0, self.start)];
        for (d, f) in &self.stages {
            at += d.as_secs_f64();
            out.push((at, *f));
        }
        out
    }

    /// The fraction connected `offset` into the traffic phase.
    pub fn fraction_at(&self, offset: Duration) -> f64 {
        let t = offset.as_secs_f64();
        let p = self.points();
        for w in p.windows(2) {
            let ((t0, f0), (t1, f1)) = (w[0], w[1]);
            if t <= t1 {
                return if t1 > t0 { f0 + (f1 - f0) * ((t - t0) / (t1 - t0)).clamp(0.0, 1.0) } else { f1 };
            }
        }
        p.last().map_or(1.0, |&(_, f)| f)
    }

    /// Listeners of a group of `n` connected the whole time (ranks `0..statics`).
    pub fn statics(&self, n: usize) -> usize {
        let min = self.points().iter().map(|&(_, f)| f).fold(f64::INFINITY, f64::min);
        ((min * n as f64) + EPS).floor().max(0.0) as usize
    }

    /// Listeners of a group of `n` connected `offset` into the traffic phase.
    pub fn connected_at(&self, n: usize, offset: Duration) -> usize {
        ((self.fraction_at(offset) * n as f64) + EPS).floor() as usize
    }

    /// The connected windows of listener `rank` of a group of `n`.
    pub fn windows(&self, rank: usize, n: usize) -> Vec<Window> {
        let theta = (rank + 1) as f64 / n as f64;
        let on = |f: f64| f + EPS >= theta;
        let p = self.points();
        let mut out = Vec::new();
        let mut since = on(self.start).then_some(Duration::ZERO);
        for w in p.windows(2) {
            let ((t0, f0), (t1, f1)) = (w[0], w[1]);
            let cross = || {
                let x = if (f1 - f0).abs() > 0.0 { (theta - f0) / (f1 - f0) } else { 0.0 };
                Duration::from_secs_f64(t0 + (t1 - t0) * x.clamp(0.0, 1.0))
            };
            match (since, on(f1)) {
                (None, true) => since = Some(cross()),
                (Some(from), false) => {
                    out.push((from, Some(cross())));
                    since = None;
                }
                _ => {}
            }
        }
        if let Some(from) = since {
            out.push((from, None));
        }
        out
    }
}
