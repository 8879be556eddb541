//! A model of phoenix.js's `Presence` client and the checks run against it: a client
//! that follows the tracker's diffs (syncState, syncDiff, diffs buffered before the
//! state) must end up holding the tracker's `state()` after any sequence of
//! track/untrack/update, whether it gets every diff, diffs merged in chunks, or the
//! diffs a [`DiffThrottle`] releases; and merging diffs is associative.
//!
//! The client below is written from reading `assets/js/phoenix/presence.js` and works
//! on the JSON the server sends, as the browser does. Every choice a check makes (which
//! operation, which key, where to cut the diffs, when time passes) is drawn from a
//! [`Choices`], so the model tests drive it from a seeded generator and the fuzz target
//! (`app/fuzz`) from its input. Not part of the app's API.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::{Diff, DiffThrottle, PhxRef, PhxRefGen, Presences};

/// Where a check's choices come from.
pub trait Choices {
    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize;
    /// Any 64-bit number.
    fn next_u64(&mut self) -> u64;
}

/// A failed check: what the client held against what it should have, or a broken
/// wire rule.
pub type Mismatch = String;

// ---- the client: phoenix.js's Presence, on JSON ----

type Client = Map<String, Value>;

fn metas(presence: &Value) -> &[Value] {
    presence["metas"].as_array().map(Vec::as_slice).unwrap_or_default()
}

fn phx_ref(meta: &Value) -> &str {
    meta["phx_ref"].as_str().unwrap_or_default()
}

/// `Presence.syncDiff`: joins first (kept metas not re-joined, then the joined ones),
/// then leaves by `phx_ref`, dropping keys left without metas.
fn sync_diff(state: &mut Client, diff: &Value) {
    for (key, new_presence) in diff["joins"].as_object().into_iter().flatten() {
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
    for (key, left) in diff["leaves"].as_object().into_iter().flatten() {
        let Some(current) = state.get_mut(key) else { continue };
        let gone: HashSet<String> = metas(left).iter().map(|m| phx_ref(m).to_owned()).collect();
        let Some(remaining) = current["metas"].as_array_mut() else { continue };
        remaining.retain(|m| !gone.contains(phx_ref(m)));
        if remaining.is_empty() {
            state.remove(key);
        }
    }
}

/// `Presence.syncState`: the difference between what the client holds and the new
/// state, applied as a diff.
fn sync_state(state: &mut Client, new_state: &Value) {
    let empty = Map::new();
    let new_state = new_state.as_object().unwrap_or(&empty);
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

    fn on_diff(&mut self, diff: &Diff) -> Result<(), Mismatch> {
        let diff = wire_checked(diff)?;
        if self.synced {
            sync_diff(&mut self.state, &diff)
        } else {
            self.pending.push(diff)
        }
        Ok(())
    }

    fn held(&self) -> Value {
        Value::Object(self.state.clone())
    }
}

/// Serializes a diff as sent, checking the rules a coalesced diff must keep: no key
/// with empty metas, no ref joined twice, no ref both joined and left.
fn wire_checked(diff: &Diff) -> Result<Value, Mismatch> {
    let json = serde_json::to_value(diff).map_err(|e| format!("diff does not serialize: {e}"))?;
    let mut joined = HashSet::new();
    for side in ["joins", "leaves"] {
        for (key, presence) in json[side].as_object().into_iter().flatten() {
            if metas(presence).is_empty() {
                return Err(format!("empty metas for {key} in {side}: {json}"));
            }
            for m in metas(presence) {
                let r = phx_ref(m).to_owned();
                if side == "joins" {
                    if !joined.insert(r) {
                        return Err(format!("ref joined twice: {json}"));
                    }
                } else if joined.contains(&r) {
                    return Err(format!("ref {r} joined and left in one diff: {json}"));
                }
            }
        }
    }
    Ok(json)
}

/// Metas of each key sorted by ref, for comparisons where the order may differ.
fn unordered(state: &Value) -> Value {
    let mut state = state.clone();
    for presence in state.as_object_mut().into_iter().flat_map(|o| o.values_mut()) {
        if let Some(metas) = presence["metas"].as_array_mut() {
            metas.sort_by(|a, b| phx_ref(a).cmp(phx_ref(b)));
        }
    }
    state
}

fn same(what: &str, held: &Value, expected: &Value) -> Result<(), Mismatch> {
    if held == expected { Ok(()) } else { Err(format!("{what}: the client holds {held}, the server {expected}")) }
}

// ---- the server side: random operations ----

/// Keys the operations draw from (the empty key and a non-ASCII one included).
const KEYS: [&str; 8] = ["ann", "bob", "cy", "dee", "eve", "fay", "", "zoë"];

/// A meta for operation `n`; some carry the reserved keys, which the tracker owns.
fn meta(choices: &mut impl Choices, n: usize, typing: bool) -> Map<String, Value> {
    let v = match choices.below(8) {
        0 => json!({"n": n, "phx_ref": "forged", "phx_ref_prev": "forged", "typing": typing}),
        1 => json!({}),
        _ => json!({"n": n, "typing": typing, "online_at": "1795663707"}),
    };
    v.as_object().cloned().unwrap_or_default()
}

/// A tracker history: every diff, and the state before the first and after each.
struct History {
    diffs: Vec<Diff>,
    states: Vec<Value>,
}

/// Runs `ops` operations chosen by `choices`.
fn history(choices: &mut impl Choices, ops: usize) -> Result<History, Mismatch> {
    let refs = PhxRefGen::new(choices.next_u64() >> 8, choices.next_u64() as u32);
    let mut p = Presences::with_ref_gen(Arc::new(refs));
    let mut live: Vec<(&str, PhxRef)> = vec![];
    let mut diffs = vec![];
    let mut states = vec![p.state()];
    for n in 0..ops {
        let roll = choices.below(100);
        let diff = if live.is_empty() || roll < 45 {
            let key = KEYS[choices.below(KEYS.len())];
            let meta = meta(choices, n, false);
            let (r, diff) = p.track(key, meta);
            live.push((key, r));
            diff
        } else if roll < 70 {
            let (key, r) = live.swap_remove(choices.below(live.len()));
            p.untrack(key, r).ok_or_else(|| format!("live ref {r} of {key:?} did not untrack"))?
        } else {
            let i = choices.below(live.len());
            let (key, r) = live[i];
            let (new_ref, diff) = if roll < 85 {
                let meta = meta(choices, n, true);
                p.update(key, r, meta)
            } else {
                p.update_with(key, r, |m| {
                    let typing = m.get("typing").and_then(Value::as_bool).unwrap_or(false);
                    m.insert("typing".into(), (!typing).into());
                })
            }
            .ok_or_else(|| format!("live ref {r} of {key:?} did not update"))?;
            live[i].1 = new_ref;
            diff
        };
        diffs.push(diff);
        states.push(p.state());
        let keys = live.iter().map(|(k, _)| *k).collect::<HashSet<_>>().len();
        if p.meta_count() != live.len() || p.key_count() != keys {
            return Err(format!(
                "tracker counts {} metas under {} keys, {} live under {keys}",
                p.meta_count(),
                p.key_count(),
                live.len()
            ));
        }
    }
    Ok(History { diffs, states })
}

/// Merges consecutive diffs in chunks of chosen sizes.
fn merge_in_chunks(choices: &mut impl Choices, diffs: &[Diff]) -> Vec<Diff> {
    let mut out = vec![];
    let mut rest = diffs;
    while !rest.is_empty() {
        let n = 1 + choices.below(rest.len().min(12));
        let (chunk, tail) = rest.split_at(n);
        out.push(fold(chunk));
        rest = tail;
    }
    out
}

fn fold(diffs: &[Diff]) -> Diff {
    diffs.iter().cloned().fold(Diff::new(), Diff::merge)
}

/// What a throttle releases when the diffs arrive at chosen times.
fn through_throttle(choices: &mut impl Choices, diffs: &[Diff]) -> Vec<Diff> {
    let mut now = Instant::now();
    let mut th = DiffThrottle::new(Duration::from_millis(100));
    let mut out = vec![];
    for diff in diffs {
        now += Duration::from_millis(choices.below(60) as u64);
        if let Some(deadline) = th.deadline().filter(|d| *d <= now) {
            out.extend(th.poll(deadline));
        }
        out.extend(th.push(now, diff.clone()));
    }
    out.extend(th.flush(now + Duration::from_secs(1)));
    out
}

/// A client joins after some operations (the state first, then every later diff) and
/// ends up holding the server's state, whether the diffs come one by one, merged in
/// chunks, throttled, or as one merged diff.
pub fn check_convergence(choices: &mut impl Choices, max_ops: usize) -> Result<(), Mismatch> {
    let ops = 1 + choices.below(max_ops.max(1));
    let History { diffs, states } = history(choices, ops)?;
    let server = states.last().cloned().unwrap_or_default();
    let at = choices.below(ops + 1);
    let later = &diffs[at..];
    let deliveries = [later.to_vec(), merge_in_chunks(choices, later), through_throttle(choices, later)];
    for (how, delivered) in ["one by one", "merged in chunks", "throttled"].iter().zip(deliveries) {
        let mut client = JsPresence::default();
        client.on_state(&states[at]);
        for diff in &delivered {
            client.on_diff(diff)?;
        }
        same(&format!("{how}, joined after {at} of {ops} ops"), &client.held(), &server)?;
    }
    let mut client = JsPresence::default();
    client.on_state(&states[at]);
    client.on_diff(&fold(later))?;
    same(&format!("one merged diff, joined after {at} of {ops} ops"), &client.held(), &server)
}

/// As in the Phoenix capture: diffs broadcast before the `presence_state` push arrive
/// first and are buffered (the state already reflects them); then a rejoin syncs an
/// older client state against a newer `presence_state`. Re-applied joins move metas
/// last, so only the order within a key may differ.
pub fn check_rejoin(choices: &mut impl Choices, max_ops: usize) -> Result<(), Mismatch> {
    let ops = 1 + choices.below(max_ops.max(1));
    let History { diffs, states } = history(choices, ops)?;
    let server = states.last().cloned().unwrap_or_default();
    let old = choices.below(ops + 1);
    let at = old + choices.below(ops + 1 - old);
    let early = at - choices.below(at + 1);
    let mut client = JsPresence::default();
    client.on_state(&states[old]);
    client.synced = false;
    for diff in merge_in_chunks(choices, &diffs[early..at]) {
        client.on_diff(&diff)?;
    }
    client.on_state(&states[at]);
    same("after the rejoin", &unordered(&client.held()), &unordered(&states[at]))?;
    for diff in merge_in_chunks(choices, &diffs[at..]) {
        client.on_diff(&diff)?;
    }
    same("at the end", &unordered(&client.held()), &unordered(&server))
}

/// Merging is associative on tracker histories: (a·b)·c = a·(b·c) = the whole fold.
pub fn check_associative(choices: &mut impl Choices, max_ops: usize) -> Result<(), Mismatch> {
    let ops = 1 + choices.below(max_ops.max(1));
    let History { diffs, .. } = history(choices, ops)?;
    let i = choices.below(ops + 1);
    let j = i + choices.below(ops + 1 - i);
    let (a, b, c) = (&diffs[..i], &diffs[i..j], &diffs[j..]);
    let left = fold(a).merge(fold(b)).merge(fold(c));
    let right = fold(a).merge(fold(b).merge(fold(c)));
    let json = |d: &Diff| serde_json::to_value(d).unwrap_or_default();
    same("(a·b)·c against a·(b·c)", &json(&left), &json(&right))?;
    if left != fold(&diffs) {
        return Err(format!("(a·b)·c {} differs from the whole fold {}", json(&left), json(&fold(&diffs))));
    }
    Ok(())
}
