//! Page readers across the nodes of a cluster. Every node's readers actor holds a copy of
//! the other nodes' readers (Phoenix.Presence's way: each node replicates the others'
//! state), so "N readers online" and the total count every node's readers, a page's
//! `presence_state` lists them all, and their joins and leaves reach this node's seats.
//!
//! What the nodes tell each other, through [`Peers`] (the broker), in order per node:
//! - `presence_diff` on `page:<path>`: a diff this node's throttle released for a page;
//! - `state` on [`CONTROL_TOPIC`]: every page's readers on the sender (`{topic: state}`),
//!   which replaces what the others held of it;
//! - `sync` on [`CONTROL_TOPIC`]: the same, and a request for everyone's `state`. A node
//!   sends it when it joins the cluster and after its link to the broker dropped (it
//!   may have missed diffs).
//!
//! A node that stops heartbeating is dropped from every copy (the broker's keeper
//! tells the actor which nodes live), and its readers leave every page.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::presence::PHX_REF;

/// The topic of messages about every page at once.
pub const CONTROL_TOPIC: &str = "readers";

/// Event names between nodes' readers.
pub mod events {
    /// A page's diff, as its seats get it.
    pub const DIFF: &str = crate::presence::events::DIFF;
    /// A node's every page.
    pub const STATE: &str = "state";
    /// A node's every page, and a request for the others'.
    pub const SYNC: &str = "sync";
}

/// How the readers actor reaches the other nodes' (the broker).
pub trait Peers: Send + Sync + 'static {
    /// This node's name in the cluster.
    fn node(&self) -> &str;

    /// Sends `event` on `topic` with `payload` (JSON) to every other node's readers, in
    /// order with this node's earlier messages. Never waits.
    fn tell(&self, topic: &str, event: &str, payload: &str);
}

/// Whether a message between nodes on `topic` is for the readers actor.
pub fn is_readers_topic(topic: &str) -> bool {
    topic == CONTROL_TOPIC || topic.starts_with(super::TOPIC_PREFIX)
}

/// Metas by key (a `presence_state`'s content, as JSON objects with their `phx_ref`).
type Group = BTreeMap<Arc<str>, Vec<Value>>;

/// Each other node's readers on one page.
type Nodes = HashMap<Arc<str>, Group>;

/// The other nodes' readers on one page. One pointer while there are none (alone, every
/// page): a page read by one socket stays under 1 KiB.
#[derive(Default)]
pub(super) struct Remote {
    nodes: Option<Box<Nodes>>,
}

static NO_NODES: std::sync::LazyLock<Nodes> = std::sync::LazyLock::new(HashMap::new);

impl Remote {
    pub fn is_empty(&self) -> bool {
        self.nodes.is_none()
    }

    fn nodes(&self) -> &Nodes {
        self.nodes.as_deref().unwrap_or(&NO_NODES)
    }

    fn nodes_mut(&mut self) -> &mut Nodes {
        self.nodes.get_or_insert_with(Box::default)
    }

    /// Frees the map once no node has readers here.
    fn tidy(&mut self) {
        if self.nodes.as_ref().is_some_and(|n| n.is_empty()) {
            self.nodes = None;
        }
    }

    /// Whether any other node has `key` on this page.
    pub fn holds(&self, key: &str) -> bool {
        self.nodes().values().any(|g| g.contains_key(key))
    }

    /// Distinct keys on other nodes that `local` does not have.
    pub fn extra_keys(&self, local: impl Fn(&str) -> bool) -> usize {
        match self.nodes().len() {
            0 => 0,
            1 => self.nodes().values().flat_map(|g| g.keys()).filter(|k| !local(k)).count(),
            _ => {
                let seen: std::collections::HashSet<&Arc<str>> =
                    self.nodes().values().flat_map(|g| g.keys()).filter(|k| !local(k)).collect();
                seen.len()
            }
        }
    }

    /// Every other node's readers here, as `presence_state` objects.
    pub fn states(&self) -> Vec<Value> {
        self.nodes().values().map(group_value).collect()
    }

    /// Applies `node`'s diff (`{"joins": …, "leaves": …}`; joins first, as phoenix.js
    /// does). Returns the keys it touched, or `None` when it is not a diff.
    pub fn apply(&mut self, node: &Arc<str>, diff: &Value) -> Option<Vec<Arc<str>>> {
        let joins = diff.get("joins")?.as_object()?;
        let leaves = diff.get("leaves")?.as_object()?;
        let group = self.nodes_mut().entry(node.clone()).or_default();
        let mut touched = Vec::new();
        for (key, entry) in joins {
            let key: Arc<str> = key.as_str().into();
            let metas = group.entry(key.clone()).or_default();
            for meta in metas_of(entry) {
                let r = phx_ref(meta);
                if r.is_some() && !metas.iter().any(|m| phx_ref(m) == r) {
                    metas.push(meta.clone());
                }
            }
            if metas.is_empty() {
                group.remove(&key);
            }
            touched.push(key);
        }
        for (key, entry) in leaves {
            let Some(metas) = group.get_mut(key.as_str()) else { continue };
            let gone: Vec<Option<&str>> = metas_of(entry).map(phx_ref).collect();
            metas.retain(|m| !gone.contains(&phx_ref(m)));
            let key: Arc<str> = key.as_str().into();
            if metas.is_empty() {
                group.remove(&key);
            }
            touched.push(key);
        }
        if group.is_empty() {
            self.nodes_mut().remove(node);
        }
        self.tidy();
        Some(touched)
    }

    /// Replaces what `node` has here with `state` (a `presence_state` object; `None`:
    /// nothing); returns the difference, as a diff for the seats.
    pub fn replace(&mut self, node: &Arc<str>, state: Option<&Value>) -> Value {
        let old = self.nodes_mut().remove(node).unwrap_or_default();
        let new = state.map(group_of).unwrap_or_default();
        let (joins, leaves) = (not_in(&new, &old), not_in(&old, &new));
        if !new.is_empty() {
            self.nodes_mut().insert(node.clone(), new);
        }
        self.tidy();
        serde_json::json!({ "joins": group_value(&joins), "leaves": group_value(&leaves) })
    }

    /// Whether `node` has readers here.
    pub fn held_from(&self, node: &str) -> bool {
        self.nodes().contains_key(node)
    }

    /// The keys `node` has here.
    pub fn keys_of(&self, node: &str) -> Vec<Arc<str>> {
        self.nodes().get(node).map(|g| g.keys().cloned().collect()).unwrap_or_default()
    }

    /// The nodes held here that `live` does not name.
    pub fn gone_nodes(&self, live: &[Arc<str>]) -> Vec<Arc<str>> {
        self.nodes().keys().filter(|n| !live.contains(n)).cloned().collect()
    }
}

/// The keys a diff joins or leaves.
pub(super) fn diff_keys(diff: &Value) -> Vec<Arc<str>> {
    let mut keys: Vec<Arc<str>> = ["joins", "leaves"]
        .iter()
        .filter_map(|part| diff.get(part).and_then(Value::as_object))
        .flat_map(|group| group.keys().map(|k| Arc::from(k.as_str())))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The keys of a `presence_state`.
pub(super) fn state_keys(state: &Value) -> Vec<Arc<str>> {
    state.as_object().into_iter().flat_map(|o| o.keys().map(|k| Arc::from(k.as_str()))).collect()
}

/// Whether a diff has nothing in it.
pub(super) fn diff_is_empty(diff: &Value) -> bool {
    ["joins", "leaves"].iter().all(|part| diff.get(part).and_then(Value::as_object).is_none_or(Map::is_empty))
}

/// The metas of `group` whose `phx_ref` `other` does not hold under the same key.
fn not_in(group: &Group, other: &Group) -> Group {
    let mut out = Group::new();
    for (key, metas) in group {
        let held = other.get(key);
        let missing: Vec<Value> = metas
            .iter()
            .filter(|m| held.is_none_or(|h| !h.iter().any(|o| phx_ref(o) == phx_ref(m))))
            .cloned()
            .collect();
        if !missing.is_empty() {
            out.insert(key.clone(), missing);
        }
    }
    out
}

fn metas_of(entry: &Value) -> impl Iterator<Item = &Value> {
    entry.get("metas").and_then(Value::as_array).into_iter().flatten().filter(|m| m.is_object())
}

fn phx_ref(meta: &Value) -> Option<&str> {
    meta.get(PHX_REF).and_then(Value::as_str)
}

fn group_of(state: &Value) -> Group {
    let mut group = Group::new();
    for (key, entry) in state.as_object().into_iter().flatten() {
        let metas: Vec<Value> = metas_of(entry).filter(|m| phx_ref(m).is_some()).cloned().collect();
        if !metas.is_empty() {
            group.insert(key.as_str().into(), metas);
        }
    }
    group
}

fn group_value(group: &Group) -> Value {
    let mut out = Map::new();
    for (key, metas) in group {
        let mut entry = Map::new();
        entry.insert("metas".into(), Value::Array(metas.clone()));
        out.insert(key.to_string(), Value::Object(entry));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(name: &str) -> Arc<str> {
        name.into()
    }

    #[test]
    fn diffs_from_a_node_build_its_copy() {
        let mut remote = Remote::default();
        let a = node("a");
        let join = json!({"joins": {"u1": {"metas": [{"phx_ref": "r1"}, {"phx_ref": "r2"}]}}, "leaves": {}});
        assert_eq!(remote.apply(&a, &join).unwrap(), vec![node("u1")]);
        // A repeated join is applied once; a leave of an unknown ref changes nothing.
        remote.apply(&a, &join).unwrap();
        remote.apply(&a, &json!({"joins": {}, "leaves": {"u9": {"metas": [{"phx_ref": "x"}]}}})).unwrap();
        assert_eq!(remote.states(), vec![json!({"u1": {"metas": [{"phx_ref": "r1"}, {"phx_ref": "r2"}]}})]);
        assert!(remote.holds("u1") && !remote.holds("u2"));
        remote.apply(&a, &json!({"joins": {}, "leaves": {"u1": {"metas": [{"phx_ref": "r1"}]}}})).unwrap();
        assert!(remote.holds("u1"));
        remote.apply(&a, &json!({"joins": {}, "leaves": {"u1": {"metas": [{"phx_ref": "r2"}]}}})).unwrap();
        assert!(remote.is_empty(), "a node with no readers left is forgotten");
        assert!(remote.apply(&a, &json!("no diff")).is_none());
    }

    #[test]
    fn a_state_replaces_a_copy_and_tells_the_difference() {
        let mut remote = Remote::default();
        let (a, b) = (node("a"), node("b"));
        remote.apply(&a, &json!({"joins": {"u1": {"metas": [{"phx_ref": "r1"}]}, "u2": {"metas": [{"phx_ref": "r2"}]}}, "leaves": {}}));
        remote.apply(&b, &json!({"joins": {"u3": {"metas": [{"phx_ref": "r3"}]}}, "leaves": {}}));
        let diff = remote
            .replace(&a, Some(&json!({"u2": {"metas": [{"phx_ref": "r2"}]}, "u4": {"metas": [{"phx_ref": "r4"}]}})));
        assert_eq!(
            diff,
            json!({"joins": {"u4": {"metas": [{"phx_ref": "r4"}]}}, "leaves": {"u1": {"metas": [{"phx_ref": "r1"}]}}})
        );
        assert_eq!(remote.extra_keys(|k| k == "u2"), 2, "u3 and u4");
        assert_eq!(remote.gone_nodes(std::slice::from_ref(&a)), vec![b.clone()]);
        let diff = remote.replace(&b, None);
        assert_eq!(diff, json!({"joins": {}, "leaves": {"u3": {"metas": [{"phx_ref": "r3"}]}}}));
        assert!(!diff_is_empty(&diff));
        assert!(diff_is_empty(&remote.replace(&b, None)));
    }
}
