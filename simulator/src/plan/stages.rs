//! Rates that change over time. A run's traffic phase is a list of stages; each stage
//! lasts a stated time and moves a scale factor linearly from where the previous stage
//! left it to its own target (a plateau keeps it, a ramp moves it, a spike jumps in a
//! short stage and falls back in another). Every action's base rate is multiplied by
//! that factor, so one curve shapes all traffic.
//!
//! [`RateCurve`] turns a base rate and the stages into open-model intended start times:
//! event `i` is intended at the instant the cumulative count ∫ rate dt reaches `i`.
//! A constant rate gives `i / rate`, exactly as before stages existed.

use std::time::Duration;

/// One stage: for `duration`, the scale moves linearly from the previous stage's end
/// value (`start_scale` for the first stage) to `scale`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Stage {
    #[serde(rename = "duration_s", serialize_with = "secs")]
    pub duration: Duration,
    /// Multiplier of every base rate at the end of the stage (≥ 0).
    pub scale: f64,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// A piecewise-linear rate over the traffic phase and the intended start of each event.
#[derive(Debug, Clone, PartialEq)]
pub struct RateCurve {
    /// `(start offset s, length s, rate at start /s, rate at end /s, events before)`.
    segments: Vec<Segment>,
    total: f64,
    length: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Segment {
    start: f64,
    len: f64,
    r0: f64,
    r1: f64,
    /// Cumulative events at the segment's start.
    before: f64,
}

impl Segment {
    /// Events inside the segment up to `t` seconds into it.
    fn count_at(&self, t: f64) -> f64 {
        let slope = if self.len > 0.0 { (self.r1 - self.r0) / self.len } else { 0.0 };
        self.r0 * t + 0.5 * slope * t * t
    }

    /// The time into the segment at which `n` of its events have been reached.
    fn time_of(&self, n: f64) -> f64 {
        let slope = if self.len > 0.0 { (self.r1 - self.r0) / self.len } else { 0.0 };
        if slope.abs() < 1e-12 {
            return if self.r0 > 0.0 { n / self.r0 } else { 0.0 };
        }
        // 0.5·slope·t² + r0·t − n = 0, the root in [0, len].
        let disc = (self.r0 * self.r0 + 2.0 * slope * n).max(0.0);
        let t = (disc.sqrt() - self.r0) / slope;
        t.clamp(0.0, self.len)
    }
}

impl RateCurve {
    /// `rate` events per second for `duration`.
    pub fn constant(rate: f64, duration: Duration) -> Self {
        Self::staged(rate, rate_one(), &[Stage { duration, scale: 1.0 }])
    }

    /// `base_rate` scaled by `stages`, the first one starting at `start_scale`.
    pub fn staged(base_rate: f64, start_scale: f64, stages: &[Stage]) -> Self {
        let mut segments = Vec::with_capacity(stages.len());
        let (mut start, mut before, mut scale) = (0.0, 0.0, start_scale);
        for stage in stages {
            let len = stage.duration.as_secs_f64();
            let seg = Segment { start, len, r0: base_rate * scale, r1: base_rate * stage.scale, before };
            before += seg.count_at(len);
            start += len;
            scale = stage.scale;
            segments.push(seg);
        }
        Self { segments, total: before, length: start }
    }

    /// Events in the whole curve: those whose intended offset is before its end.
    pub fn count(&self) -> u64 {
        // The epsilon keeps 3 s × 20/s at 60, not 61, despite float rounding.
        (self.total - 1e-9).ceil().max(0.0) as u64
    }

    /// Events intended before `offset` (e.g. the warm-up).
    pub fn count_before(&self, offset: Duration) -> u64 {
        let t = offset.as_secs_f64();
        let n = match self.segments.iter().rev().find(|s| s.start <= t) {
            Some(s) => s.before + s.count_at((t - s.start).min(s.len)),
            None => 0.0,
        };
        ((n - 1e-9).ceil().max(0.0) as u64).min(self.count())
    }

    /// Intended offset of event `i` from the start of the traffic phase.
    pub fn offset(&self, i: u64) -> Duration {
        let n = i as f64;
        let seg =
            self.segments.iter().rev().find(|s| s.before <= n && (s.r0 > 0.0 || s.r1 > 0.0)).or(self.segments.first());
        let Some(seg) = seg else { return Duration::ZERO };
        Duration::from_secs_f64((seg.start + seg.time_of(n - seg.before)).clamp(0.0, self.length.max(0.0)))
    }

    /// Length of the traffic phase.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.length)
    }

    /// Mean rate over the whole phase.
    pub fn mean_rate(&self) -> f64 {
        if self.length > 0.0 { self.total / self.length } else { 0.0 }
    }

    /// The rate at `offset` (for progress displays and reports).
    pub fn rate_at(&self, offset: Duration) -> f64 {
        let t = offset.as_secs_f64();
        match self.segments.iter().rev().find(|s| s.start <= t) {
            Some(s) if s.len > 0.0 => s.r0 + (s.r1 - s.r0) * ((t - s.start) / s.len).min(1.0),
            Some(s) => s.r1,
            None => 0.0,
        }
    }
}

const fn rate_one() -> f64 {
    1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_constant_curve_is_i_over_rate() {
        let c = RateCurve::constant(20.0, secs(3.0));
        assert_eq!(c.count(), 60);
        assert_eq!(c.offset(0), Duration::ZERO);
        assert!((c.offset(20).as_secs_f64() - 1.0).abs() < 1e-9);
        assert!((c.offset(59).as_secs_f64() - 2.95).abs() < 1e-9);
        assert_eq!(c.count_before(secs(0.5)), 10);
        assert!((c.mean_rate() - 20.0).abs() < 1e-9);
    }

    #[test]
    fn a_ramp_from_zero_spaces_events_by_the_square_root() {
        // 0 → 10/s over 10 s: N(t) = t²/2, 50 events; event n at sqrt(2n).
        let c = RateCurve::staged(10.0, 0.0, &[Stage { duration: secs(10.0), scale: 1.0 }]);
        assert_eq!(c.count(), 50);
        assert!((c.offset(8).as_secs_f64() - 4.0).abs() < 1e-9);
        assert!((c.offset(32).as_secs_f64() - 8.0).abs() < 1e-9);
        assert!((c.rate_at(secs(5.0)) - 5.0).abs() < 1e-9);
    }

    #[test]
    fn ramp_plateau_spike_keeps_offsets_monotonic_and_counts_consistent() {
        let stages = [
            Stage { duration: secs(2.0), scale: 1.0 },
            Stage { duration: secs(4.0), scale: 1.0 },
            Stage { duration: secs(0.5), scale: 5.0 },
            Stage { duration: secs(1.0), scale: 5.0 },
            Stage { duration: secs(0.5), scale: 1.0 },
        ];
        let c = RateCurve::staged(10.0, 0.0, &stages);
        // 10 + 40 + 15 + 50 + 15
        assert_eq!(c.count(), 130);
        let mut last = Duration::ZERO;
        for i in 0..c.count() {
            let at = c.offset(i);
            assert!(at >= last, "event {i} at {at:?} before {last:?}");
            assert!(at < c.duration());
            last = at;
        }
        assert_eq!(c.count_before(secs(6.0)), 50);
        // During the spike plateau events are 20 ms apart.
        let a = c.offset(70).as_secs_f64();
        let b = c.offset(71).as_secs_f64();
        assert!((b - a - 0.02).abs() < 1e-9, "{a} {b}");
    }

    #[test]
    fn a_zero_rate_stage_has_no_events() {
        let stages = [
            Stage { duration: secs(1.0), scale: 1.0 },
            Stage { duration: secs(0.0), scale: 0.0 },
            Stage { duration: secs(2.0), scale: 0.0 },
        ];
        let c = RateCurve::staged(10.0, 1.0, &stages);
        assert_eq!(c.count(), 10);
        assert!(c.offset(9) < secs(1.0));
        assert_eq!(c.count_before(secs(3.0)), 10);
    }
}
