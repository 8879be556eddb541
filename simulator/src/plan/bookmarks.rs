//! The bookmarks part of a plan: bookmark creation (rate, private share, seeding), the
//! firehose and tag listener groups, their ramps, and the listener lifecycles (presence
//! churn, reconnect storms) that those listeners carry out.

use serde::Serialize;

use crate::plan::lifecycle::{ChurnPlan, StormPlan};
use crate::plan::ramp::ListenerRamp;

/// Bookmark creation and the firehose/tag listeners.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BookmarksPlan {
    /// Listeners on `bookmarks:firehose`.
    pub listeners: u32,
    /// Listeners on one `bookmarks:tag:<tag>` each.
    pub tag_listeners: u32,
    /// Bookmarks created per second (scaled by the stages).
    pub rate_per_s: f64,
    /// Share of them created private (never broadcast).
    pub private_fraction: f64,
    /// Corpus bookmarks created before measuring (not measured).
    pub seed_bookmarks: u32,
    /// The fraction of the listeners connected over time (the stages' `listeners`);
    /// `None`: all of them, the whole time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener_ramp: Option<ListenerRamp>,
    /// Listeners leaving and rejoining their channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_churn: Option<ChurnPlan>,
    /// Listener sockets dropped at once and reconnecting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnect_storm: Option<StormPlan>,
}

impl BookmarksPlan {
    /// Firehose and tag listeners.
    pub fn total_listeners(&self) -> u64 {
        u64::from(self.listeners) + u64::from(self.tag_listeners)
    }
}
