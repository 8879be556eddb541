//! Model test: a client that follows phoenix.js's `Presence` (syncState, syncDiff,
//! pending diffs before the state) must end up holding the tracker's `state()` after
//! random track/untrack/update sequences, whether it gets every diff, diffs merged in
//! random chunks, or the diffs a [`DiffThrottle`] releases.
//!
//! The client model below is written from reading `assets/js/phoenix/presence.js` and
//! works on the JSON the server sends, as the browser does.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::*;

/// Deterministic pseudo-random numbers (splitmix64), so a failing seed reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

// ---- the client: phoenix.js's Presence, on JSON ----

type Client = Map<String, Value>;

fn metas(presence: &Value) -> &Vec<Value> {
    presence["metas"].as_array().expect("metas array")
}

fn phx_ref(meta: &Value) -> &str {
    meta["phx_ref"].as_str().expect("phx_ref string")
}

/// `Presence.syncDiff`: joins first (kept metas not re-joined, then the joined ones),
/// then leaves by `phx_ref`, dropping keys left without metas.
fn sync_diff(state: &mut Client, diff: &Value) {
    for (key, new_presence) in diff["joins"].as_object().expect("joins") {
        let mut new_presence = new_presence.clone();
        if let Some(current) = state.get(key) {
            let joined: HashSet<&str> = metas(&new_presence).iter().map(phx_ref).collect();
            let mut kept: Vec<Value> =
                metas(current).iter().filter(|m| !joined.contains(phx_ref(m))).cloned().collect();
            kept.extend(metas(&new_presence).iter().cloned());
            new_presence["metas"] = Value::Array(kept);
        }
        state.insert(key.clone(), new_presence);
    }
    for (key, left) in diff["leaves"].as_object().expect("leaves") {
        let Some(current) = state.get_mut(key) else { continue };
        let gone: HashSet<String> = metas(left).iter().map(|m| phx_ref(m).to_owned()).collect();
        let remaining = current["metas"].as_array_mut().expect("metas array");
        remaining.retain(|m| !gone.contains(phx_ref(m)));
        if remaining.is_empty() {
            state.remove(key);
        }
    }
}

/// `Presence.syncState`: the difference between what the client holds and the new
/// state, applied as a diff.
fn sync_state(state: &mut Client, new_state: &Value) {
    let new_state = new_state.as_object().expect("state object");
    let mut joins = Map::new();
    let mut leaves = Map::new();
    for (key, presence) in state.iter() {
        if !new_state.contains_key(key) {
            leaves.insert(key.clone(), presence.clone());
        }
    }
    for (key, new_presence) in new_state {
        match state.get(key) {
            Some(current) => {
                let new_refs: HashSet<&str> = metas(new_presence).iter().map(phx_ref).collect();
                let cur_refs: HashSet<&str> = metas(current).iter().map(phx_ref).collect();
                let joined: Vec<Value> =
                    metas(new_presence).iter().filter(|m| !cur_refs.contains(phx_ref(m))).cloned().collect();
                let left: Vec<Value> =
                    metas(current).iter().filter(|m| !new_refs.contains(phx_ref(m))).cloned().collect();
                if !joined.is_empty() {
                    let mut p = new_presence.clone();
                    p["metas"] = Value::Array(joined);
                    joins.insert(key.clone(), p);
                }
                if !left.is_empty() {
                    let mut p = current.clone();
                    p["metas"] = Value::Array(left);
                    leaves.insert(key.clone(), p);
                }
            }
            None => {
                joins.insert(key.clone(), new_presence.clone());
            }
        }
    }
    sync_diff(state, &json!({"joins": joins, "leaves": leaves}));
}

/// The `Presence` object: diffs before the first state are buffered, then applied.
#[derive(Default)]
struct JsPresence {
    state: Client,
    synced: bool,
    pending: Vec<Value>,
}

impl JsPresence {
    fn on_state(&mut self, state: &Value) {
        sync_state(&mut self.state, state);
        for diff in std::mem::take(&mut self.pending) {
            sync_diff(&mut self.state, &diff);
        }
        self.synced = true;
    }

    fn on_diff(&mut self, diff: &Diff) {
        let diff = wire_checked(diff);
        if self.synced { sync_diff(&mut self.state, &diff) } else { self.pending.push(diff) }
    }
}

/// Serializes a diff as sent, checking the rules a coalesced diff must keep.
fn wire_checked(diff: &Diff) -> Value {
    let json = serde_json::to_value(diff).unwrap();
    let mut joined = HashSet::new();
    for side in ["joins", "leaves"] {
        for (key, presence) in json[side].as_object().unwrap() {
            assert!(!metas(presence).is_empty(), "empty metas for {key} in {side}: {json}");
            for m in metas(presence) {
                let r = phx_ref(m).to_owned();
                if side == "joins" {
                    assert!(joined.insert(r), "ref joined twice: {json}");
                } else {
                    assert!(!joined.contains(&r), "ref {r} joined and left in one diff: {json}");
                }
            }
        }
    }
    json
}

/// Metas of each key sorted by ref, for comparisons where the order may differ.
fn unordered(state: &Value) -> Value {
    let mut state = state.clone();
    for presence in state.as_object_mut().unwrap().values_mut() {
        presence["metas"].as_array_mut().unwrap().sort_by(|a, b| phx_ref(a).cmp(phx_ref(b)));
    }
    state
}

// ---- the server side: random operations ----

/// Runs `ops` random operations; returns the diffs and the state after each of them.
fn random_history(rng: &mut Rng, ops: usize) -> (Presences, Vec<Diff>, Vec<Value>) {
    const KEYS: [&str; 6] = ["ann", "bob", "cy", "dee", "eve", "fay"];
    let mut p = Presences::with_ref_gen(Arc::new(PhxRefGen::new(rng.next() >> 8, rng.next() as u32)));
    let mut live: Vec<(&str, PhxRef)> = vec![];
    let mut diffs = vec![];
    let mut states = vec![p.state()];
    for n in 0..ops {
        let roll = rng.below(100);
        let diff = if live.is_empty() || roll < 45 {
            let key = KEYS[rng.below(KEYS.len())];
            let meta = json!({"n": n, "typing": false, "online_at": "1795663707"});
            let (r, diff) = p.track(key, meta.as_object().unwrap().clone());
            live.push((key, r));
            diff
        } else if roll < 70 {
            let (key, r) = live.swap_remove(rng.below(live.len()));
            p.untrack(key, r).expect("live ref untracks")
        } else {
            let i = rng.below(live.len());
            let (key, r) = live[i];
            let (new_ref, diff) = if roll < 85 {
                p.update(key, r, json!({"n": n, "typing": true}).as_object().unwrap().clone())
            } else {
                p.update_with(key, r, |m| {
                    let typing = m.get("typing").and_then(Value::as_bool).unwrap_or(false);
                    m.insert("typing".into(), (!typing).into());
                })
            }
            .expect("live ref updates");
            live[i].1 = new_ref;
            diff
        };
        diffs.push(diff);
        states.push(p.state());
        assert_eq!(p.meta_count(), live.len());
        assert_eq!(p.key_count(), live.iter().map(|(k, _)| *k).collect::<HashSet<_>>().len());
    }
    (p, diffs, states)
}

/// Merges consecutive diffs in random-sized chunks.
fn merge_in_chunks(rng: &mut Rng, diffs: &[Diff]) -> Vec<Diff> {
    let mut out = vec![];
    let mut rest = diffs;
    while !rest.is_empty() {
        let n = 1 + rng.below(rest.len().min(12));
        let (chunk, tail) = rest.split_at(n);
        out.push(chunk.iter().cloned().fold(Diff::new(), Diff::merge));
        rest = tail;
    }
    out
}

/// What a throttle releases when the diffs arrive at random times.
fn through_throttle(rng: &mut Rng, diffs: &[Diff]) -> Vec<Diff> {
    let t0 = Instant::now();
    let mut now = t0;
    let mut th = DiffThrottle::new(Duration::from_millis(100));
    let mut out = vec![];
    for diff in diffs {
        now += Duration::from_millis(rng.below(60) as u64);
        if let Some(deadline) = th.deadline().filter(|d| *d <= now) {
            out.extend(th.poll(deadline));
        }
        out.extend(th.push(now, diff.clone()));
    }
    out.extend(th.flush(now + Duration::from_secs(1)));
    out
}

#[test]
fn client_model_converges_to_the_tracker_state() {
    for seed in 0..300 {
        let mut rng = Rng(seed);
        let ops = 1 + rng.below(80);
        let (p, diffs, states) = random_history(&mut rng, ops);
        let server = p.state();
        assert_eq!(states.last(), Some(&server));

        // The client joins after `at` operations: state first, then every later diff.
        let at = rng.below(ops + 1);
        let later = &diffs[at..];
        let deliveries = [later.to_vec(), merge_in_chunks(&mut rng, later), through_throttle(&mut rng, later)];
        for (how, delivered) in ["one by one", "merged in chunks", "throttled"].iter().zip(deliveries) {
            let mut client = JsPresence::default();
            client.on_state(&states[at]);
            for diff in &delivered {
                client.on_diff(diff);
            }
            assert_eq!(Value::Object(client.state), server, "seed {seed}, {how}, joined after {at} ops");
        }
        // One merged diff for the whole tail is as good as all of them.
        let mut client = JsPresence::default();
        client.on_state(&states[at]);
        client.on_diff(&later.iter().cloned().fold(Diff::new(), Diff::merge));
        assert_eq!(Value::Object(client.state), server, "seed {seed}, one diff");
    }
}

#[test]
fn client_model_converges_with_diffs_before_the_state_and_on_rejoin() {
    for seed in 1000..1300 {
        let mut rng = Rng(seed);
        let ops = 1 + rng.below(80);
        let (p, diffs, states) = random_history(&mut rng, ops);
        let server = p.state();

        // As in the capture: diffs broadcast before the `presence_state` push arrive
        // first and are buffered; the state already reflects them. Then a rejoin
        // (reconnect) syncs an older client state against a newer `presence_state`.
        let old = rng.below(ops + 1);
        let at = old + rng.below(ops + 1 - old);
        let early = at - rng.below(at + 1);
        let mut client = JsPresence::default();
        client.on_state(&states[old]);
        client.synced = false;
        for diff in merge_in_chunks(&mut rng, &diffs[early..at]) {
            client.on_diff(&diff);
        }
        client.on_state(&states[at]);
        // Re-applied joins move metas last, so only the order within a key may differ.
        assert_eq!(unordered(&Value::Object(client.state.clone())), unordered(&states[at]), "seed {seed}");
        for diff in merge_in_chunks(&mut rng, &diffs[at..]) {
            client.on_diff(&diff);
        }
        assert_eq!(unordered(&Value::Object(client.state)), unordered(&server), "seed {seed}");
    }
}

#[test]
fn merge_is_associative_on_tracker_histories() {
    for seed in 2000..2100 {
        let mut rng = Rng(seed);
        let (_, diffs, _) = random_history(&mut rng, 30);
        let (a, rest) = diffs.split_at(10);
        let (b, c) = rest.split_at(10);
        let fold = |d: &[Diff]| d.iter().cloned().fold(Diff::new(), Diff::merge);
        let left = fold(a).merge(fold(b)).merge(fold(c));
        let right = fold(a).merge(fold(b).merge(fold(c)));
        assert_eq!(serde_json::to_value(&left).unwrap(), serde_json::to_value(&right).unwrap(), "seed {seed}");
        assert_eq!(left, fold(&diffs));
    }
}
