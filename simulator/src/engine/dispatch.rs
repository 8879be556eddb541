//! The one scheduler of a run. Every scheduled action of every workload is a [`Lane`]
//! of intended offsets from t0; the dispatcher merges all lanes into one firing order
//! and, on a thread and runtime of its own, fires each action at its intended start
//! (open model: never waiting for earlier answers), each on a task of its own. Only the
//! in-flight cap can hold a request back; that wait is the action's send lag, recorded
//! by its [`KindStats`](super::stats::KindStats) when it finally goes out, and a lagging
//! run is invalid (one rule for every kind, see `stats`). SIGINT/SIGTERM stop the
//! scheduling; actions in flight settle.
//!
//! Why a thread of its own: listener tasks decoding a burst of deliveries on the main
//! runtime must not delay a request past its intended start (that would be the
//! simulator's lag, not the server's). Why the precise sleep: tokio's timer wakes on
//! the next millisecond tick, which alone would make every action up to ~1.5 ms late.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::report::names::Kind;

/// A boxed action future.
pub type Action = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Fires action `i` (of its lane) intended at the given instant.
pub type Fire = Arc<dyn Fn(u64, Instant) -> Action + Send + Sync>;

/// One kind's schedule: `(offset from t0, action index)` in ascending offset order,
/// and what firing one means.
pub struct Lane {
    pub kind: Kind,
    pub events: Box<dyn Iterator<Item = (Duration, u64)> + Send>,
    /// Whether an action takes one of the in-flight slots (HTTP requests do; pushes on
    /// an already open socket do not).
    pub takes_slot: bool,
    pub fire: Fire,
}

impl Lane {
    pub fn new(
        kind: Kind,
        events: impl Iterator<Item = (Duration, u64)> + Send + 'static,
        takes_slot: bool,
        fire: impl Fn(u64, Instant) -> Action + Send + Sync + 'static,
    ) -> Self {
        Self { kind, events: Box::new(events), takes_slot, fire: Arc::new(fire) }
    }
}

/// What the dispatcher saw of the in-flight cap.
#[derive(Debug, Default)]
pub struct CapStats {
    /// Actions that found every slot taken and had to wait.
    pub hits: AtomicU64,
    /// The most actions in flight at once.
    pub max_in_flight: AtomicU64,
}

/// Fires lanes on schedule.
pub struct Dispatcher {
    max_in_flight: u32,
    pub cap: Arc<CapStats>,
}

impl Dispatcher {
    pub fn new(max_in_flight: u32) -> Self {
        Self { max_in_flight: max_in_flight.max(1), cap: Arc::default() }
    }

    /// Fires every action of `lanes` at `t0` + its offset on a thread of its own, and
    /// returns once the last one finished (or, after SIGINT/SIGTERM, once those in
    /// flight did).
    pub async fn run(&self, t0: Instant, lanes: Vec<Lane>) -> Result<(), String> {
        let (max, cap) = (self.max_in_flight, Arc::clone(&self.cap));
        run_on_own_thread("firehose-sim-dispatcher", move || fire_all(t0, lanes, max, cap)).await
    }
}

async fn fire_all(t0: Instant, mut lanes: Vec<Lane>, max_in_flight: u32, cap: Arc<CapStats>) {
    let slots = Arc::new(Semaphore::new(max_in_flight as usize));
    let interrupted = super::interrupt::token();
    let mut tasks = JoinSet::new();
    // The next action of each lane, earliest first (ties: lane order, then index).
    let mut next: BinaryHeap<Reverse<(Duration, usize, u64)>> = BinaryHeap::new();
    for (l, lane) in lanes.iter_mut().enumerate() {
        if let Some((at, i)) = lane.events.next() {
            next.push(Reverse((at, l, i)));
        }
    }
    while let Some(Reverse((offset, l, i))) = next.pop() {
        let intended = t0 + offset;
        tokio::select! {
            () = interrupted.cancelled() => break,
            () = sleep_precisely_until(intended) => {}
        }
        let lane = &mut lanes[l];
        let permit = if lane.takes_slot {
            match Arc::clone(&slots).try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    // The cap is generous; reaching it means the target stalls. The wait
                    // shows as this action's lag (and of those behind it).
                    cap.hits.fetch_add(1, Ordering::Relaxed);
                    tokio::select! {
                        () = interrupted.cancelled() => break,
                        permit = Arc::clone(&slots).acquire_owned() => match permit {
                            Ok(permit) => Some(permit),
                            Err(_) => break,
                        },
                    }
                }
            }
        } else {
            None
        };
        if permit.is_some() {
            let in_flight = u64::from(max_in_flight) - slots.available_permits() as u64;
            cap.max_in_flight.fetch_max(in_flight, Ordering::Relaxed);
        }
        let action = (lane.fire)(i, intended);
        tasks.spawn(async move {
            action.await;
            drop(permit);
        });
        if let Some((at, i)) = lane.events.next() {
            next.push(Reverse((at, l, i)));
        }
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Sleeps until `at` with well under 100 µs of lateness: tokio's timer to just short
/// of it, then yielding until it passes (at most a millisecond of yielding).
pub async fn sleep_precisely_until(at: Instant) {
    const TIMER_SLACK: Duration = Duration::from_millis(1);
    if let Some(early) = at.checked_sub(TIMER_SLACK)
        && Instant::now() < early
    {
        tokio::time::sleep_until(early.into()).await;
    }
    while Instant::now() < at {
        tokio::task::yield_now().await;
    }
}

/// Runs the future `work` makes on a new thread `name`, on a current-thread runtime of
/// its own, and returns once it finished.
pub async fn run_on_own_thread<F, Fut>(name: &str, work: F) -> Result<(), String>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let (done, finished) = tokio::sync::oneshot::channel();
    let label = name.to_owned();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let result = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => {
                    runtime.block_on(work());
                    Ok(())
                }
                Err(e) => Err(format!("{label} runtime: {e}")),
            };
            let _ = done.send(result);
        })
        .map_err(|e| format!("{name} thread: {e}"))?;
    finished.await.map_err(|_| format!("the {name} thread stopped without finishing"))?
}

#[cfg(test)]
mod tests {
    use parking_lot::Mutex;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lanes_fire_merged_in_time_order_never_before_their_intended_starts() {
        let fired: Arc<Mutex<Vec<(Kind, u64, Duration)>>> = Arc::default();
        let lane = |kind: Kind, offsets: Vec<u64>| {
            let fired = Arc::clone(&fired);
            let events = offsets.into_iter().enumerate().map(|(i, ms)| (Duration::from_millis(ms), i as u64));
            Lane::new(kind, events, true, move |i, intended| {
                let now = Instant::now();
                assert!(now >= intended, "{kind} {i} fired {:?} early", intended - now);
                fired.lock().push((kind, i, now - intended));
                Box::pin(async {})
            })
        };
        let d = Dispatcher::new(4);
        let t0 = Instant::now() + Duration::from_millis(20);
        d.run(t0, vec![lane(Kind::Like, vec![0, 10, 30]), lane(Kind::Search, vec![5, 20])]).await.unwrap();
        let fired = fired.lock();
        let order: Vec<(Kind, u64)> = fired.iter().map(|(k, i, _)| (*k, *i)).collect();
        assert_eq!(order, [(Kind::Like, 0), (Kind::Search, 0), (Kind::Like, 1), (Kind::Search, 1), (Kind::Like, 2)]);
        // How late is the machine's business (the run's lag rule judges it); a sanity
        // bound only, generous enough for a loaded 2-core machine.
        for (_, _, late) in fired.iter() {
            assert!(*late < Duration::from_millis(100), "fired {late:?} late");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_in_flight_cap_holds_actions_back_and_is_counted() {
        let lags: Arc<Mutex<Vec<Duration>>> = Arc::default();
        let l = Arc::clone(&lags);
        // Each action takes 50 ms; one slot; three actions 1 ms apart.
        let lane =
            Lane::new(Kind::CreateBookmark, (0..3).map(|i| (Duration::from_millis(i), i)), true, move |_, at| {
                l.lock().push(Instant::now().saturating_duration_since(at));
                Box::pin(tokio::time::sleep(Duration::from_millis(50)))
            });
        let d = Dispatcher::new(1);
        d.run(Instant::now(), vec![lane]).await.unwrap();
        let lags = lags.lock();
        assert!(lags[1] >= Duration::from_millis(40), "{lags:?}");
        assert!(lags[2] >= Duration::from_millis(90), "{lags:?}");
        assert_eq!(d.cap.hits.load(Ordering::Relaxed), 2);
        assert_eq!(d.cap.max_in_flight.load(Ordering::Relaxed), 1);
    }
}
