//! What a run shows while it goes, for whoever watches: the phase (`setup`,
//! `connecting`, `traffic`, `draining`), each sampled second of the timeline, and the
//! verdict once judged. The engine's progress display publishes here; the dashboard
//! (`report::dashboard`) and an agent's link to its parent subscribe. With nobody
//! subscribed, publishing costs a read of an empty list.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::report::model::ReportModel;
use crate::report::timeline::TimelineRow;

/// One thing a run shows.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// A phase and what it is doing (`connecting` · `listeners 300/1000 joined`).
    Phase { phase: String, detail: String },
    /// A sampled interval; `elapsed_s` from t0, of `planned_s` of traffic.
    Row { elapsed_s: f64, planned_s: f64, row: TimelineRow },
    /// The judged run (its verdict, gates and figures) and where its report went.
    Ended { model: Box<ReportModel>, report_dir: Option<PathBuf> },
}

type Subscriber = Arc<dyn Fn(&LiveEvent) + Send + Sync>;

static SUBSCRIBERS: RwLock<Vec<(u64, Subscriber)>> = RwLock::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A subscription; dropping it unsubscribes.
#[must_use = "dropping the subscription unsubscribes at once"]
pub struct Subscription(u64);

impl Drop for Subscription {
    fn drop(&mut self) {
        SUBSCRIBERS.write().retain(|(id, _)| *id != self.0);
    }
}

/// Calls `f` with every event published in this process until the subscription drops.
pub fn subscribe(f: impl Fn(&LiveEvent) + Send + Sync + 'static) -> Subscription {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    SUBSCRIBERS.write().push((id, Arc::new(f)));
    Subscription(id)
}

/// Shows `event` to every subscriber, in the order they subscribed.
pub fn publish(event: &LiveEvent) {
    let subscribers: Vec<Subscriber> = SUBSCRIBERS.read().iter().map(|(_, s)| Arc::clone(s)).collect();
    for s in subscribers {
        s(event);
    }
}

/// Shows the judged run whose report went to `report_dir`.
pub fn ended(model: &ReportModel, report_dir: &std::path::Path) {
    if watched() {
        publish(&LiveEvent::Ended { model: Box::new(model.clone()), report_dir: Some(report_dir.to_owned()) });
    }
}

/// Whether anyone is watching (to skip building an event nobody reads).
pub fn watched() -> bool {
    !SUBSCRIBERS.read().is_empty()
}
