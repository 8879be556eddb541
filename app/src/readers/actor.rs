//! The task that owns every page's readers: it applies joins and leaves in arrival
//! order, sends what the throttles release to each page's seats, and wakes on a tick
//! while anything is held.
//!
//! Work per tick is bounded by the pages that changed (`dirty`), except when the total
//! moved: then every page is visited once to refresh its `readers` count, which is
//! O(pages) per interval, never per join.
//!
//! In a cluster a page also holds the other nodes' readers (`Remote`): a key counts on a
//! page while any node has it there, this node's released diffs go to the peers too,
//! and the peers' diffs go to this node's seats at once (their own node throttled them).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::{Instant, sleep_until};

use serde_json::Value;

use super::peers::{self, CONTROL_TOPIC, Peers, Remote};
use super::{Command, Joined, Reader, ReadersConfig, Seat, Ticket, events};
use crate::presence::{self, Diff, DiffThrottle, Presences, SmallMap};
use crate::pubsub::SharedFrame;
use crate::wire::{self, Vsn};

/// A tick every quarter interval: a held diff waits at most 1.25 intervals.
const TICKS_PER_INTERVAL: u32 = 4;
const MIN_TICK: Duration = Duration::from_millis(5);
/// Pages with this many keys keep each key's `presence_state` text ready; pages that
/// fall below half of it drop the cache again.
const FRAGMENTS_FROM: usize = 32;

struct Page {
    presences: Presences,
    throttle: DiffThrottle,
    /// The reader each socket holds here, by socket id (a socket joins a topic once);
    /// also the page's audience.
    seats: SmallMap<u64, Seat>,
    /// Counts last broadcast, and when.
    sent: Option<(usize, usize)>,
    sent_at: Option<Instant>,
    /// Busy pages only: each key's `presence_state` text (see [`Fragments`]).
    fragments: Option<Box<Fragments>>,
    /// The other nodes' readers here (in a cluster).
    remote: Remote,
    /// Seats that joined while a diff was held, with the joins held then: their
    /// `presence_state` showed those, and a leave that cancels one inside the held diff
    /// would never reach them (see [`Page::release`]).
    joined_in_hold: Option<Box<JoinedInHold>>,
}

/// Joined metas by key, as a held diff had them.
type HeldJoins = Vec<(Arc<str>, Arc<presence::Meta>)>;

/// The seats that joined while a diff was held (boxed, as most pages never have any).
#[derive(Default)]
struct JoinedInHold(Vec<(u64, HeldJoins)>);

/// Each present key's `"<key>":{"metas":[…]}` text, in key order (the order of
/// `Presences` and of its serialization): a join's `presence_state` is these joined, so
/// a join on a page with N readers copies text instead of serializing N metas.
#[derive(Default)]
struct Fragments {
    by_key: BTreeMap<Arc<str>, String>,
    len: usize,
}

struct Actor {
    interval: Duration,
    /// Boxed: most pages are small, and a vacant slot of the table costs what a page
    /// does.
    pages: HashMap<Arc<str>, Box<Page>>,
    /// Key → number of pages it is present on; its length is the total.
    keys: HashMap<Arc<str>, usize>,
    /// Pages with a held diff or unsent counts.
    dirty: HashSet<Arc<str>>,
    /// The total changed since every page's counts were last checked.
    total_changed: bool,
    /// The other nodes, in a cluster.
    peers: Option<Arc<dyn Peers>>,
    /// Nodes whose readers were dropped because they looked dead (see `live`).
    dropped: Vec<Arc<str>>,
}

/// How many dropped nodes are remembered, the latest (nodes that really died stay in the
/// list until newer ones push them out).
const MAX_DROPPED: usize = 64;

pub(super) async fn run(config: ReadersConfig, peers: Option<Arc<dyn Peers>>, mut rx: mpsc::Receiver<Command>) {
    let mut actor = Actor {
        interval: config.interval,
        pages: HashMap::new(),
        keys: HashMap::new(),
        dirty: HashSet::new(),
        total_changed: false,
        peers,
        dropped: Vec::new(),
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
                let readers = self.pages.get(topic.as_str()).map_or(0, |p| p.readers());
                let _ = reply.send((readers, self.total()));
            }
            Command::Peer { node, topic, event, payload } => self.on_peer_message(&node, topic, &event, &payload),
            Command::Resync => tell(self.peers.as_deref(), CONTROL_TOPIC, peers::events::SYNC, &self.local_state()),
            Command::Live(nodes) => self.live(&nodes),
        }
    }

    /// The nodes alive now: the readers of the others go. A node dropped here that is
    /// alive again (a broker that restarted empty knows no heartbeat until each node's
    /// next one) is asked for its readers.
    fn live(&mut self, nodes: &[Arc<str>]) {
        let gone: Vec<(Arc<str>, Arc<str>)> = self
            .pages
            .iter()
            .flat_map(|(topic, page)| page.remote.gone_nodes(nodes).into_iter().map(|n| (topic.clone(), n)))
            .collect();
        for (topic, node) in gone {
            self.replace_remote(&topic, &node, None);
            if !self.dropped.contains(&node) {
                if self.dropped.len() == MAX_DROPPED {
                    self.dropped.remove(0);
                }
                self.dropped.push(node);
            }
        }
        let back = self.dropped.iter().any(|n| nodes.contains(n));
        if back {
            self.dropped.retain(|n| !nodes.contains(n));
            tell(self.peers.as_deref(), CONTROL_TOPIC, peers::events::SYNC, &self.local_state());
        }
    }

    /// Every page's readers on this node: `{topic: presence_state}`.
    fn local_state(&self) -> serde_json::Map<String, Value> {
        self.pages
            .iter()
            .filter(|(_, page)| !page.presences.is_empty())
            .map(|(topic, page)| (topic.to_string(), page.presences.state()))
            .collect()
    }

    /// A message from another node's readers.
    fn on_peer_message(&mut self, node: &Arc<str>, topic: String, event: &str, payload: &str) {
        let Ok(payload) = serde_json::from_str::<Value>(payload) else {
            tracing::warn!(%node, topic, event, "a peer's readers message is not JSON");
            return;
        };
        match (topic.as_str(), event) {
            (CONTROL_TOPIC, peers::events::STATE | peers::events::SYNC) => {
                let Value::Object(pages) = payload else { return };
                let held: Vec<Arc<str>> = self
                    .pages
                    .iter()
                    .filter(|(t, p)| p.remote.held_from(node) && !pages.contains_key(&***t))
                    .map(|(t, _)| t.clone())
                    .collect();
                for topic in held {
                    self.replace_remote(&topic, node, None);
                }
                for (topic, state) in &pages {
                    if super::valid_topic(topic) {
                        self.replace_remote(&Arc::from(topic.as_str()), node, Some(state));
                    }
                }
                if event == peers::events::SYNC {
                    tell(self.peers.as_deref(), CONTROL_TOPIC, peers::events::STATE, &self.local_state());
                }
            }
            (_, peers::events::DIFF) if super::valid_topic(&topic) => {
                let topic: Arc<str> = topic.into();
                let keys = peers::diff_keys(&payload);
                self.change_remote(&topic, keys, |remote| remote.apply(node, &payload).map(|_| payload.clone()));
            }
            _ => tracing::warn!(%node, topic, event, "ignoring a peer's readers message"),
        }
    }

    /// Replaces `node`'s readers on `topic` with `state` (`None`: none).
    fn replace_remote(&mut self, topic: &Arc<str>, node: &Arc<str>, state: Option<&Value>) {
        let mut keys = self.pages.get(topic).map(|p| p.remote.keys_of(node)).unwrap_or_default();
        keys.extend(state.map(peers::state_keys).unwrap_or_default());
        self.change_remote(topic, keys, |remote| Some(remote.replace(node, state)));
    }

    /// Applies a change to `topic`'s remote readers that may touch `keys`: counts follow,
    /// and the seats get the diff `change` returns.
    fn change_remote(
        &mut self,
        topic: &Arc<str>,
        keys: Vec<Arc<str>>,
        change: impl FnOnce(&mut Remote) -> Option<Value>,
    ) {
        let interval = self.interval;
        let page = self.pages.entry(topic.clone()).or_insert_with(|| Box::new(Page::new(interval)));
        let had: Vec<bool> = keys.iter().map(|k| page.has_key(k)).collect();
        let Some(diff) = change(&mut page.remote) else {
            tracing::warn!(%topic, "ignoring a peer's readers diff that is not one");
            self.drop_if_empty(topic);
            return;
        };
        if !peers::diff_is_empty(&diff) {
            page.send(topic, presence::events::DIFF, &diff);
        }
        let moves: Vec<(Arc<str>, bool)> =
            keys.into_iter().zip(had).filter_map(|(k, had)| (page.has_key(&k) != had).then_some((k, !had))).collect();
        for (key, present) in moves {
            self.count_key(key, present);
        }
        if !self.drop_if_empty(topic) {
            self.dirty.insert(topic.clone());
        }
    }

    /// Forgets a page nobody is on or reading; whether it did.
    fn drop_if_empty(&mut self, topic: &Arc<str>) -> bool {
        let empty = self.pages.get(topic).is_some_and(|p| p.is_empty());
        if empty {
            self.pages.remove(topic);
            self.dirty.remove(topic);
        }
        empty
    }

    fn join(&mut self, topic: Arc<str>, reader: Reader) -> Joined {
        let now = Instant::now();
        let interval = self.interval;
        let page = self.pages.entry(topic.clone()).or_insert_with(|| Box::new(Page::new(interval)));
        let socket_id = reader.socket.id;
        let mut diff = Diff::new();
        let mut key_changes = Vec::new();
        // A re-join from the same socket replaces its earlier reader here.
        if let Some(old) = page.seats.remove(&socket_id) {
            if let Some(left) = page.presences.untrack(&old.key, old.phx_ref) {
                diff.merge_from(left);
            }
            page.refresh_fragment(&old.key);
            if !page.has_key(&old.key) {
                key_changes.push((old.key, false));
            }
        }
        let had_key = page.has_key(&reader.key);
        let (phx_ref, joined) = page.presences.track(&reader.key, reader.meta);
        diff.merge_from(joined);
        let key = page.presences.key_arc(&reader.key);
        page.refresh_fragment(&key);
        if !had_key {
            key_changes.push((key.clone(), true));
        }
        page.keep_fragments();
        // Seated in the same step as the snapshot: no diff falls in between. Text,
        // cheap to build here; the joining channel parses it into its push, off this
        // task.
        let mut state = page.state_text();
        #[cfg(test)]
        assert_eq!(state, serde_json::to_string(&page.presences).unwrap_or_default(), "fragments in sync");
        if !page.remote.is_empty() {
            let local = serde_json::from_str(&state).unwrap_or_default();
            state = presence::merge(local, page.remote.states()).to_string();
        }
        if let Some(held) = page.throttle.pending() {
            let seen: HeldJoins =
                held.joins().flat_map(|(k, metas)| metas.iter().map(move |m| (Arc::from(k), m.clone()))).collect();
            if !seen.is_empty() {
                let held = &mut page.joined_in_hold.get_or_insert_with(Box::default).0;
                held.retain(|(id, _)| *id != socket_id);
                held.push((socket_id, seen));
            }
        }
        page.seats.insert(socket_id, Seat { key, phx_ref, socket: reader.socket, vsn: reader.vsn });
        let readers = page.readers();
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
        let diff = page.presences.untrack(&seat.key, seat.phx_ref);
        page.refresh_fragment(&seat.key);
        page.keep_fragments();
        let gone = !page.has_key(&seat.key);
        if page.is_empty() {
            // Nobody is left to tell: drop the page and anything it held. Page paths
            // are the client's choice, so nothing of a page outlives its last reader.
            self.pages.remove(&ticket.topic);
            self.dirty.remove(&ticket.topic);
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

    /// Passes a page's diff through its throttle, sending what is due now.
    fn offer(&mut self, topic: &Arc<str>, diff: Diff, now: Instant) {
        let total = self.total();
        let Some(page) = self.pages.get_mut(topic) else { return };
        if let Some(diff) = page.throttle.push(now.into_std(), diff) {
            page.release(topic, &diff);
            tell(self.peers.as_deref(), topic, presence::events::DIFF, &diff);
        }
        if page.send_counts(topic, total, self.interval, now) || page.throttle.has_pending() {
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
                page.release(&topic, &diff);
                tell(self.peers.as_deref(), &topic, presence::events::DIFF, &diff);
            }
            let counts_held = page.send_counts(&topic, total, self.interval, now);
            if counts_held || page.throttle.has_pending() {
                self.dirty.insert(topic);
            } else {
                self.dirty.remove(&topic);
            }
        }
        // A burst can leave the set with room for every page; give it back.
        if self.dirty.capacity() > 64 && self.dirty.len() < self.dirty.capacity() / 8 {
            self.dirty.shrink_to(self.dirty.len() * 2);
        }
    }
}

impl Page {
    fn new(interval: Duration) -> Self {
        Self {
            presences: Presences::new(),
            throttle: DiffThrottle::new(interval),
            seats: SmallMap::new(),
            sent: None,
            sent_at: None,
            fragments: None,
            remote: Remote::default(),
            joined_in_hold: None,
        }
    }

    /// Sends a diff the throttle released to every seat; a seat that joined while it was
    /// held also gets the leaves of the joins its `presence_state` showed that cancelled
    /// out inside it (joined and left within the hold), which the others never saw.
    fn release(&mut self, topic: &str, diff: &Diff) {
        self.send(topic, presence::events::DIFF, diff);
        for (socket_id, seen) in self.joined_in_hold.take().map(|b| b.0).unwrap_or_default() {
            let Some(seat) = self.seats.get(&socket_id) else { continue };
            let mut leaves = serde_json::Map::new();
            for (key, meta) in seen {
                let r = meta.phx_ref();
                let released = diff.joins().any(|(k, metas)| k == &*key && metas.iter().any(|m| m.phx_ref() == r));
                if released || self.presences.meta(&key, r).is_some() {
                    continue;
                }
                let entry = leaves.entry(key.to_string()).or_insert_with(|| serde_json::json!({"metas": []}));
                if let Some(metas) = entry["metas"].as_array_mut() {
                    metas.push(serde_json::to_value(&*meta).unwrap_or_default());
                }
            }
            if !leaves.is_empty() {
                let payload = serde_json::json!({ "joins": {}, "leaves": leaves });
                let frame = wire::encode_broadcast(seat.vsn, topic, presence::events::DIFF, &payload);
                if let Err(TrySendError::Full(_)) = seat.socket.outbox.try_send(Arc::new(Utf8Bytes::from(frame))) {
                    seat.socket.slow.cancel();
                }
            }
        }
    }

    /// Whether `key` reads this page on any node.
    fn has_key(&self, key: &str) -> bool {
        self.presences.contains_key(key) || self.remote.holds(key)
    }

    /// Distinct keys reading this page on every node.
    fn readers(&self) -> usize {
        self.presences.key_count() + self.remote.extra_keys(|k| self.presences.contains_key(k))
    }

    /// Nobody reads it anywhere and no socket is seated here.
    fn is_empty(&self) -> bool {
        self.presences.is_empty() && self.seats.is_empty() && self.remote.is_empty()
    }

    /// Re-renders `key`'s fragment after its metas changed (busy pages only).
    fn refresh_fragment(&mut self, key: &Arc<str>) {
        let Some(fragments) = self.fragments.as_deref_mut() else { return };
        let old = match fragment(&self.presences, key) {
            Some(f) => {
                fragments.len += f.len();
                fragments.by_key.insert(key.clone(), f)
            }
            None => fragments.by_key.remove(key),
        };
        fragments.len -= old.map_or(0, |f| f.len());
    }

    /// Builds the fragment cache when the page got busy, drops it when it got quiet.
    fn keep_fragments(&mut self) {
        let keys = self.presences.key_count();
        if self.fragments.is_none() && keys >= FRAGMENTS_FROM {
            let mut fragments = Fragments::default();
            for key in self.presences.keys() {
                let key: Arc<str> = key.into();
                if let Some(f) = fragment(&self.presences, &key) {
                    fragments.len += f.len();
                    fragments.by_key.insert(key, f);
                }
            }
            self.fragments = Some(Box::new(fragments));
        } else if keys < FRAGMENTS_FROM / 2 {
            self.fragments = None;
        }
    }

    /// The `presence_state` payload as JSON text.
    fn state_text(&self) -> String {
        let Some(fragments) = &self.fragments else {
            return serde_json::to_string(&self.presences).unwrap_or_default();
        };
        let mut out = String::with_capacity(fragments.len + fragments.by_key.len() + 2);
        out.push('{');
        for (i, fragment) in fragments.by_key.values().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(fragment);
        }
        out.push('}');
        out
    }

    /// Queues `event` on every seat's outbox, encoded once per protocol version in use.
    /// A full outbox marks its socket a slow consumer, which then closes (and leaves).
    fn send<P: Serialize + ?Sized>(&self, topic: &str, event: &str, payload: &P) {
        let (mut v1, mut v2): (Option<SharedFrame>, Option<SharedFrame>) = (None, None);
        for seat in self.seats.values() {
            let slot = match seat.vsn {
                Vsn::V1 => &mut v1,
                Vsn::V2 => &mut v2,
            };
            let frame = slot.get_or_insert_with(|| {
                Arc::new(Utf8Bytes::from(wire::encode_broadcast(seat.vsn, topic, event, payload)))
            });
            if let Err(TrySendError::Full(_)) = seat.socket.outbox.try_send(frame.clone()) {
                seat.socket.slow.cancel();
            }
        }
    }

    /// Sends the counts if they changed and the last count is an interval old.
    /// Returns whether changed counts are still held.
    fn send_counts(&mut self, topic: &str, total: usize, interval: Duration, now: Instant) -> bool {
        let counts = (self.readers(), total);
        if self.sent == Some(counts) {
            return false;
        }
        if self.sent_at.is_some_and(|t| now < t + interval) {
            return true;
        }
        self.sent = Some(counts);
        self.sent_at = Some(now);
        self.send(topic, events::READERS, &serde_json::json!({"readers": counts.0, "total": counts.1}));
        false
    }
}

/// Sends a message to the other nodes' readers, if there are any (alone: nothing).
fn tell<P: Serialize + ?Sized>(peers: Option<&dyn Peers>, topic: &str, event: &str, payload: &P) {
    if let Some(peers) = peers {
        match serde_json::to_string(payload) {
            Ok(text) => peers.tell(topic, event, &text),
            Err(err) => tracing::error!(%err, topic, event, "readers message does not serialise"),
        }
    }
}

/// `"<key>":{"metas":[…]}` for a present key.
fn fragment(presences: &Presences, key: &str) -> Option<String> {
    let metas = presences.metas(key);
    if metas.is_empty() {
        return None;
    }
    let metas: Vec<&presence::Meta> = metas.iter().map(|m| &**m).collect();
    let key = serde_json::to_string(key).unwrap_or_default();
    let metas = serde_json::to_string(&metas).unwrap_or_default();
    Some(format!("{key}:{{\"metas\":{metas}}}"))
}
