//! Presence across the nodes of a cluster. Each node tracks the presences of its own
//! sockets (a room's actor, in Phoenix's shapes) and keeps a copy of them per topic where
//! every node can read it ([`Replica::put`]); a join's `presence_state` is this node's
//! state merged with the other live nodes' ([`merge`]). Changes travel as the usual
//! `presence_diff` broadcasts, which reach every node. A node that stops heartbeating
//! is dropped by the others, who broadcast its presences' leaves (the broker owns that).

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};

/// Where a node keeps its presences for the others (the broker).
pub trait Replica: Send + Sync + 'static {
    /// This node's presences on `topic` now (a `presence_state` object; `{}`: none).
    /// Never waits; the copies are written in the order of the calls.
    fn put(&self, topic: &str, state: &Value);

    /// The other live nodes' presences on `topic` (`presence_state` objects); none when
    /// they cannot be read.
    fn others(&self, topic: &str) -> BoxFuture<'static, Vec<Value>>;
}

/// `local` and `others` as one `presence_state`: each key's metas from every node, keys
/// sorted as Phoenix sends them. A meta's `phx_ref` is unique across nodes (every
/// generator has a random salt), so nothing is counted twice.
pub fn merge(local: Value, others: Vec<Value>) -> Value {
    if others.is_empty() {
        return local;
    }
    let mut merged: std::collections::BTreeMap<String, Vec<Value>> = std::collections::BTreeMap::new();
    for state in std::iter::once(local).chain(others) {
        let Value::Object(entries) = state else { continue };
        for (key, entry) in entries {
            let Value::Object(mut entry) = entry else { continue };
            if let Some(Value::Array(metas)) = entry.remove("metas") {
                merged.entry(key).or_default().extend(metas);
            }
        }
    }
    let mut out = Map::new();
    for (key, metas) in merged {
        let mut entry = Map::new();
        entry.insert("metas".into(), Value::Array(metas));
        out.insert(key, Value::Object(entry));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::merge;

    #[test]
    fn every_nodes_metas_under_one_key() {
        let local = json!({"1": {"metas": [{"phx_ref": "a"}]}, "3": {"metas": [{"phx_ref": "c"}]}});
        let other = json!({"1": {"metas": [{"phx_ref": "b"}]}, "2": {"metas": [{"phx_ref": "d"}]}});
        let merged = merge(local.clone(), vec![other, json!({}), json!("not an object")]);
        assert_eq!(
            merged,
            json!({
                "1": {"metas": [{"phx_ref": "a"}, {"phx_ref": "b"}]},
                "2": {"metas": [{"phx_ref": "d"}]},
                "3": {"metas": [{"phx_ref": "c"}]},
            })
        );
        assert_eq!(merge(local.clone(), vec![]), local);
    }
}
