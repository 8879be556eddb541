//! Listener lifecycles in the plan: presence churn (`--churn-rate`,
//! `[actions.presence_churn]`) and reconnect storms (`--storm-at`, `--storm-every`,
//! `[actions.reconnect_storm]`). The bookmarks workload's listeners carry them out.

use std::time::Duration;

use serde::{Serialize, Serializer};

/// `[actions.presence_churn]` / `--churn-rate`: listeners leaving and rejoining.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChurnPlan {
    /// Leave-and-rejoin actions per second over all listeners (scaled by the stages).
    pub rate_per_s: f64,
    /// Time between the leave and the rejoin.
    #[serde(rename = "absence_ms", serialize_with = "crate::plan::millis")]
    pub absence: Duration,
}

/// `[actions.reconnect_storm]` / `--storm-at`, `--storm-every`: sockets dropped at once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StormPlan {
    /// Offsets from the start of the traffic phase at which storms hit.
    #[serde(rename = "at_s", serialize_with = "secs_list")]
    pub at: Vec<Duration>,
    /// Fraction of the listener sockets each storm drops (each listener independently,
    /// seeded).
    pub fraction: f64,
    /// Equal jitter on phoenix.js's reconnect delays (see `workloads::failover::jittered`).
    pub jitter: bool,
}

fn secs_list<S: Serializer>(list: &[Duration], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(list.iter().map(Duration::as_secs_f64))
}
