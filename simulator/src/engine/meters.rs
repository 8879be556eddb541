//! Where a run's measurements live while it goes: every kind's [`KindStats`], every
//! group's [`GroupStats`] and the listener sockets' counters, registered by the
//! workloads as they open. The sampler reads them once a second and the report is
//! built from them at the end, so no workload wires its own probes or report entries
//! for these.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

use super::delivery::GroupStats;
use super::stats::KindStats;
use crate::phoenix::Failure;
use crate::report::histo::Sharded;
use crate::report::names::{Group, Kind};

/// The listener sockets of every group.
pub struct Sockets {
    requested: AtomicU64,
    joined: AtomicU64,
    failed: AtomicU64,
    ramped: AtomicU64,
    closed: AtomicU64,
    recovered: AtomicU64,
    /// Listener sockets open now (static and ramped).
    open: AtomicU64,
    failures: Mutex<BTreeMap<String, u64>>,
    connect: Sharded,
}

impl Default for Sockets {
    fn default() -> Self {
        Self {
            requested: AtomicU64::new(0),
            joined: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            ramped: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            recovered: AtomicU64::new(0),
            open: AtomicU64::new(0),
            failures: Mutex::new(BTreeMap::new()),
            connect: Sharded::new(16),
        }
    }
}

/// Listener-socket figures at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct SocketCounts {
    pub requested: u64,
    pub joined: u64,
    pub failed: u64,
    pub ramped: u64,
    pub closed: u64,
    pub recovered: u64,
    pub failures: BTreeMap<String, u64>,
}

impl Sockets {
    /// `n` more listeners are planned to open before traffic starts.
    pub fn requested(&self, n: u64) {
        self.requested.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` listeners will be opened by a ramp during the traffic phase (never failures
    /// for not being there before it).
    pub fn ramped(&self, n: u64) {
        self.ramped.fetch_add(n, Ordering::Relaxed);
    }

    /// A listener joined, `took` after it started connecting.
    pub fn joined(&self, key: usize, took: Duration) {
        self.connect.record(key, took);
        self.joined.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    /// A listener could not join.
    pub fn failed(&self, why: &Failure) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        *self.failures.lock().entry(why.name()).or_default() += 1;
    }

    /// The target ended a joined listener's socket or channel.
    pub fn closed_by_target(&self, why: &Failure) {
        self.closed.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_sub(1, Ordering::Relaxed);
        *self.failures.lock().entry(why.name()).or_default() += 1;
    }

    /// The target ended a joined listener's socket (`why`), which reconnected and
    /// rejoined (it stayed open as far as the gauge goes).
    pub fn recovered(&self, why: &Failure) {
        self.recovered.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(failure = %why, "listener reconnected after its target closed it");
    }

    /// A socket the simulator itself closed (churn, storm, ramp-down, end of run), or
    /// one a ramp or storm opened again.
    pub fn went_away(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn came_back(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    pub fn open_now(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    pub fn joined_count(&self) -> u64 {
        self.joined.load(Ordering::Relaxed)
    }

    pub fn closed_count(&self) -> u64 {
        self.closed.load(Ordering::Relaxed)
    }

    pub fn connect_histogram(&self) -> Histogram<u64> {
        self.connect.merged()
    }

    pub fn counts(&self) -> SocketCounts {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SocketCounts {
            requested: load(&self.requested),
            joined: load(&self.joined),
            failed: load(&self.failed),
            ramped: load(&self.ramped),
            closed: load(&self.closed),
            recovered: load(&self.recovered),
            failures: self.failures.lock().clone(),
        }
    }
}

/// Every kind, group and socket of a run.
#[derive(Default)]
pub struct Meters {
    kinds: Mutex<Vec<Arc<KindStats>>>,
    groups: Mutex<Vec<Arc<GroupStats>>>,
    pub sockets: Sockets,
}

impl Meters {
    /// Registers `stats` (one per kind; a second registration of a kind is a bug).
    pub fn add_kind(&self, stats: KindStats) -> Arc<KindStats> {
        let stats = Arc::new(stats);
        let mut kinds = self.kinds.lock();
        debug_assert!(kinds.iter().all(|k| k.kind != stats.kind), "{} registered twice", stats.kind);
        kinds.push(Arc::clone(&stats));
        kinds.sort_by_key(|k| k.kind);
        stats
    }

    /// The group's stats, registered on first use.
    pub fn group(&self, group: Group) -> Arc<GroupStats> {
        let mut groups = self.groups.lock();
        if let Some(g) = groups.iter().find(|g| g.group == group) {
            return Arc::clone(g);
        }
        let g = Arc::new(GroupStats::new(group));
        groups.push(Arc::clone(&g));
        groups.sort_by_key(|g| g.group);
        g
    }

    pub fn kinds(&self) -> Vec<Arc<KindStats>> {
        self.kinds.lock().clone()
    }

    pub fn groups(&self) -> Vec<Arc<GroupStats>> {
        self.groups.lock().clone()
    }

    pub fn kind(&self, kind: Kind) -> Option<Arc<KindStats>> {
        self.kinds.lock().iter().find(|k| k.kind == kind).cloned()
    }
}
