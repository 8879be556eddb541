//! The shape of the traffic phase every workload shares: its length and warm-up, the
//! stages that scale every rate, the seed, the lag allowed, the drain, the in-flight
//! cap and how fast listeners connect.

use std::time::Duration;

use serde::Serialize;

use crate::plan::stages::{RateCurve, Stage};
use crate::plan::{millis, secs};

/// The traffic part of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrafficPlan {
    /// The traffic phase, warm-up included (the stages' sum when there are stages).
    #[serde(rename = "duration_s", serialize_with = "secs")]
    pub duration: Duration,
    /// Actions intended before this are left out of latency figures.
    #[serde(rename = "warmup_s", serialize_with = "secs")]
    pub warmup: Duration,
    /// Seed of every random choice.
    pub seed: u64,
    /// An action sent later than this after its intended start is late, and a run with
    /// a late action is invalid.
    #[serde(rename = "max_lag_ms", serialize_with = "millis")]
    pub max_lag: Duration,
    /// After the last answer, how long to wait for deliveries still owed.
    #[serde(rename = "drain_timeout_s", serialize_with = "secs")]
    pub drain_timeout: Duration,
    /// Most HTTP requests in flight at once; waiting for a slot is send lag.
    pub max_in_flight: u32,
    /// Listener sockets opened per second.
    pub connect_rate_per_s: f64,
    /// Stages (empty: one plateau at scale 1 for `duration`); every rate follows them.
    pub stages: Vec<Stage>,
    /// The multiplier at the start of the first stage.
    pub start_scale: f64,
}

impl TrafficPlan {
    /// The open-model schedule of an action with `base_rate` per second: the stages'
    /// curve (or a constant rate for `duration` without stages).
    pub fn curve(&self, base_rate: f64) -> RateCurve {
        curve_of(&self.stages, self.start_scale, self.duration, base_rate)
    }

    /// The highest multiplier of the stages (1 without stages).
    pub fn peak_scale(&self) -> f64 {
        self.stages.iter().map(|s| s.scale).fold(self.start_scale, f64::max)
    }

    /// The measured window: the traffic phase after the warm-up.
    pub fn measured(&self) -> Duration {
        self.duration.saturating_sub(self.warmup)
    }
}

pub(crate) fn curve_of(stages: &[Stage], start_scale: f64, duration: Duration, rate: f64) -> RateCurve {
    if stages.is_empty() { RateCurve::constant(rate, duration) } else { RateCurve::staged(rate, start_scale, stages) }
}
