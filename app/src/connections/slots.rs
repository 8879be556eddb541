//! `SocketSlots`: the cap on open WebSockets. An upgrade takes a slot before it is
//! answered and the socket task holds it until it ends, so concurrent upgrades can
//! never overshoot the cap (a check of a counter that the socket task bumps later
//! could let a burst through), and a refused or abandoned upgrade gives its slot back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Open WebSockets and the most allowed.
#[derive(Debug)]
pub struct SocketSlots {
    open: AtomicUsize,
    max: usize,
}

/// One taken slot; dropping it frees the slot.
#[derive(Debug)]
pub struct SocketSlot(Arc<SocketSlots>);

impl SocketSlots {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { open: AtomicUsize::new(0), max })
    }

    /// Takes a slot; `None` when all `max` are taken.
    pub fn try_take(self: &Arc<Self>) -> Option<SocketSlot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max).then_some(n + 1))
            .ok()
            .map(|_| SocketSlot(self.clone()))
    }

    /// Slots taken: open sockets plus upgrades under way.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_stop_at_the_cap_and_come_back_when_dropped() {
        let slots = SocketSlots::new(2);
        let a = slots.try_take().expect("first");
        let _b = slots.try_take().expect("second");
        assert!(slots.try_take().is_none());
        assert_eq!(slots.open(), 2);
        drop(a);
        assert_eq!(slots.open(), 1);
        assert!(slots.try_take().is_some());
    }

    #[test]
    fn concurrent_takers_never_overshoot() {
        let slots = SocketSlots::new(100);
        let taken: Vec<Vec<SocketSlot>> = std::thread::scope(|s| {
            let handles: Vec<_> =
                (0..4).map(|_| s.spawn(|| (0..70).filter_map(|_| slots.try_take()).collect())).collect();
            handles.into_iter().map(|h| h.join().expect("thread")).collect()
        });
        assert_eq!(taken.iter().map(Vec::len).sum::<usize>(), 100);
        assert_eq!(slots.open(), 100);
    }
}
