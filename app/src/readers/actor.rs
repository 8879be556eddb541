//! The task that owns every page's readers: it applies joins and leaves in arrival
//! order, broadcasts what the throttles release, and wakes on a tick while anything is
//! held.
//!
//! Work per tick is bounded by the pages that changed (`dirty`), except when the total
//! moved: then every page is visited once to refresh its `readers` count, which is
//! O(pages) per interval, never per join.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::{Command, Joined, Reader, ReadersConfig, Seat, Ticket, events};
use crate::presence::{self, Diff, DiffThrottle, Presences};
use crate::pubsub::PubSub;

/// A tick every quarter interval: a held diff waits at most 1.25 intervals.
const TICKS_PER_INTERVAL: u32 = 4;
const MIN_TICK: Duration = Duration::from_millis(5);

struct Page {
    presences: Presences,
    throttle: DiffThrottle,
    /// The reader each socket holds here, by socket id (a socket joins a topic once).
    seats: HashMap<u64, Seat>,
    /// Counts last broadcast, and when.
    sent: Option<(usize, usize)>,
    sent_at: Option<Instant>,
    /// Each present key's `"<key>":{"metas":[…]}` text, in key order (the order of
    /// `Presences` and of its serialization): a join's `presence_state` is these joined,
    /// so a join on a page with N readers copies text instead of serializing N metas.
    fragments: BTreeMap<Arc<str>, String>,
    fragments_len: usize,
}

struct Actor {
    interval: Duration,
    pubsub: Arc<PubSub>,
    pages: HashMap<Arc<str>, Page>,
    /// Key → number of pages it is present on; its length is the total.
    keys: HashMap<Arc<str>, usize>,
    /// Pages with a held diff or unsent counts.
    dirty: HashSet<Arc<str>>,
    /// The total changed since every page's counts were last checked.
    total_changed: bool,
}

pub(super) async fn run(config: ReadersConfig, pubsub: Arc<PubSub>, mut rx: mpsc::Receiver<Command>) {
    let mut actor = Actor {
        interval: config.interval,
        pubsub,
        pages: HashMap::new(),
        keys: HashMap::new(),
        dirty: HashSet::new(),
        total_changed: false,
    };
    let period = (config.interval / TICKS_PER_INTERVAL).max(MIN_TICK);
    let mut next_tick: Option<Instant> = None;
    loop {
        if next_tick.is_none() && actor.has_work() {
            next_tick = Some(Instant::now() + period);
        }
        let tick = async {
            match next_tick {
                Some(at) => sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(cmd) => actor.handle(cmd),
                None => break,
            },
            () = tick => {
                next_tick = None;
                actor.tick(Instant::now());
            }
        }
    }
}

impl Actor {
    fn has_work(&self) -> bool {
        self.total_changed || !self.dirty.is_empty()
    }

    fn total(&self) -> usize {
        self.keys.len()
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Join { topic, reader, reply } => {
                let joined = self.join(topic, reader);
                if let Err(joined) = reply.send(joined) {
                    // The channel that asked is gone (its socket closed mid-join).
                    self.leave(joined.ticket);
                }
            }
            Command::Leave(ticket) => self.leave(ticket),
            Command::Counts { topic, reply } => {
                let readers = self.pages.get(topic.as_str()).map_or(0, |p| p.presences.key_count());
                let _ = reply.send((readers, self.total()));
            }
        }
    }

    fn join(&mut self, topic: Arc<str>, reader: Reader) -> Joined {
        let now = Instant::now();
        let interval = self.interval;
        let page = self.pages.entry(topic.clone()).or_insert_with(|| Page::new(interval));
        let socket_id = reader.socket.id;
        let mut diff = Diff::new();
        let mut key_changes = Vec::new();
        // A re-join from the same socket replaces its earlier reader here.
        if let Some(old) = page.seats.remove(&socket_id) {
            self.pubsub.unsubscribe(&topic, old.sub);
            if let Some(left) = page.presences.untrack(&old.key, old.phx_ref) {
                diff.merge_from(left);
            }
            page.refresh_fragment(&old.key);
            if !page.presences.contains_key(&old.key) {
                key_changes.push((old.key, false));
            }
        }
        let had_key = page.presences.contains_key(&reader.key);
        let (phx_ref, joined) = page.presences.track(&reader.key, reader.meta);
        diff.merge_from(joined);
        let key: Arc<str> = reader.key.into();
        page.refresh_fragment(&key);
        if !had_key {
            key_changes.push((key.clone(), true));
        }
        // Subscribed in the same step as the snapshot: no diff falls in between.
        let sub = self.pubsub.subscribe(&topic, reader.vsn, reader.socket);
        // Text, cheap to build here; the joining channel parses it into its push, off
        // this task.
        let state = page.state_text();
        #[cfg(test)]
        assert_eq!(state, serde_json::to_string(&page.presences).unwrap_or_default(), "fragments in sync");
        page.seats.insert(socket_id, Seat { key, phx_ref, sub });
        let readers = page.presences.key_count();
        for (k, present) in key_changes {
            self.count_key(k, present);
        }
        self.offer(&topic, diff, now);
        Joined { ticket: Ticket { topic, socket_id, phx_ref }, readers, total: self.total(), state }
    }

    fn leave(&mut self, ticket: Ticket) {
        let Some(page) = self.pages.get_mut(&ticket.topic) else { return };
        // Stale when a re-join of the same socket already replaced this reader.
        if page.seats.get(&ticket.socket_id).is_none_or(|s| s.phx_ref != ticket.phx_ref) {
            return;
        }
        let Some(seat) = page.seats.remove(&ticket.socket_id) else { return };
        self.pubsub.unsubscribe(&ticket.topic, seat.sub);
        let diff = page.presences.untrack(&seat.key, seat.phx_ref);
        page.refresh_fragment(&seat.key);
        let gone = !page.presences.contains_key(&seat.key);
        if page.presences.is_empty() && page.seats.is_empty() {
            // Nobody is left to tell: drop the page and anything it held.
            self.pages.remove(&ticket.topic);
            self.dirty.remove(&ticket.topic);
            // Page paths are the client's choice: forget the topic too, so joins of
            // ever new paths cannot grow the pub/sub table.
            self.pubsub.remove_idle(&ticket.topic);
        }
        if gone {
            self.count_key(seat.key, false);
        }
        if let Some(diff) = diff {
            self.offer(&ticket.topic, diff, Instant::now());
        }
    }

    /// Records that `key` appeared on (`present`) or vanished from one page.
    fn count_key(&mut self, key: Arc<str>, present: bool) {
        if present {
            let n = self.keys.entry(key).or_insert(0);
            *n += 1;
            self.total_changed |= *n == 1;
        } else if let Some(n) = self.keys.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.keys.remove(&key);
                self.total_changed = true;
            }
        }
    }

    /// Passes a page's diff through its throttle, broadcasting what is due now.
    fn offer(&mut self, topic: &Arc<str>, diff: Diff, now: Instant) {
        let total = self.total();
        let Some(page) = self.pages.get_mut(topic) else { return };
        if let Some(diff) = page.throttle.push(now.into_std(), diff) {
            broadcast_diff(&self.pubsub, topic, &diff);
        }
        if page.send_counts(&self.pubsub, topic, total, self.interval, now) || page.throttle.has_pending() {
            self.dirty.insert(topic.clone());
        }
    }

    /// Releases held diffs and counts that are due.
    fn tick(&mut self, now: Instant) {
        let total = self.total();
        let topics: Vec<Arc<str>> = if std::mem::take(&mut self.total_changed) {
            self.pages.keys().cloned().collect()
        } else {
            self.dirty.iter().cloned().collect()
        };
        for topic in topics {
            let Some(page) = self.pages.get_mut(&topic) else {
                self.dirty.remove(&topic);
                continue;
            };
            if let Some(diff) = page.throttle.poll(now.into_std()) {
                broadcast_diff(&self.pubsub, &topic, &diff);
            }
            let counts_held = page.send_counts(&self.pubsub, &topic, total, self.interval, now);
            if counts_held || page.throttle.has_pending() {
                self.dirty.insert(topic);
            } else {
                self.dirty.remove(&topic);
            }
        }
    }
}

impl Page {
    fn new(interval: Duration) -> Self {
        Self {
            presences: Presences::new(),
            throttle: DiffThrottle::new(interval),
            seats: HashMap::new(),
            sent: None,
            sent_at: None,
            fragments: BTreeMap::new(),
            fragments_len: 0,
        }
    }

    /// Re-renders `key`'s fragment after its metas changed.
    fn refresh_fragment(&mut self, key: &Arc<str>) {
        let metas = self.presences.metas(key);
        let fragment = (!metas.is_empty()).then(|| {
            let metas: Vec<&presence::Meta> = metas.iter().map(|m| &**m).collect();
            let key = serde_json::to_string(&**key).unwrap_or_default();
            let metas = serde_json::to_string(&metas).unwrap_or_default();
            format!("{key}:{{\"metas\":{metas}}}")
        });
        let old = match fragment {
            Some(f) => {
                self.fragments_len += f.len();
                self.fragments.insert(key.clone(), f)
            }
            None => self.fragments.remove(key),
        };
        self.fragments_len -= old.map_or(0, |f| f.len());
    }

    /// The `presence_state` payload as JSON text.
    fn state_text(&self) -> String {
        let mut out = String::with_capacity(self.fragments_len + self.fragments.len() + 2);
        out.push('{');
        for (i, fragment) in self.fragments.values().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(fragment);
        }
        out.push('}');
        out
    }

    /// Broadcasts the counts if they changed and the last count is an interval old.
    /// Returns whether changed counts are still held.
    fn send_counts(&mut self, pubsub: &PubSub, topic: &str, total: usize, interval: Duration, now: Instant) -> bool {
        let counts = (self.presences.key_count(), total);
        if self.sent == Some(counts) {
            return false;
        }
        if self.sent_at.is_some_and(|t| now < t + interval) {
            return true;
        }
        self.sent = Some(counts);
        self.sent_at = Some(now);
        pubsub.broadcast(topic, events::READERS, |_| serde_json::json!({"readers": counts.0, "total": counts.1}));
        false
    }
}

fn broadcast_diff(pubsub: &PubSub, topic: &str, diff: &Diff) {
    pubsub.broadcast(topic, presence::events::DIFF, |_| diff);
}
