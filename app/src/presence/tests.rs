//! Unit tests: Phoenix wire shapes (against a capture of Phoenix 1.7.24), several metas
//! per key, updates, merge rules, refs and the throttle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::*;
use crate::wire::{Vsn, encode_broadcast, encode_push};

// Frames from ../shared/protocol/phoenix-1.7.24-frames.txt (sections 5, 6 and 9).
const ALICE_REF: &str = "GOt6oOKtEgaevw1R";
const BOB_REF: &str = "GOt6oOLOEVmevw1x";
const S5_DIFF: &str = r#"[null,null,"room:lobby","presence_diff",{"joins":{"alice":{"metas":[{"online_at":"1795663707","phx_ref":"GOt6oOKtEgaevw1R"}]}},"leaves":{}}]"#;
const S5_STATE: &str = r#"["4",null,"room:lobby","presence_state",{"alice":{"metas":[{"online_at":"1795663707","phx_ref":"GOt6oOKtEgaevw1R"}]}}]"#;
const S6_DIFF: &str = r#"[null,null,"room:lobby","presence_diff",{"joins":{"bob":{"metas":[{"online_at":"1795663707","phx_ref":"GOt6oOLOEVmevw1x"}]}},"leaves":{}}]"#;
const S6_STATE: &str = r#"["1",null,"room:lobby","presence_state",{"alice":{"metas":[{"online_at":"1795663707","phx_ref":"GOt6oOKtEgaevw1R"}]},"bob":{"metas":[{"online_at":"1795663707","phx_ref":"GOt6oOLOEVmevw1x"}]}}]"#;
const S9_DIFF: &str = r#"[null,null,"room:lobby","presence_diff",{"joins":{},"leaves":{"bob":{"metas":[{"online_at":"1795663707","phx_ref":"GOt6oOLOEVmevw1x"}]}}}]"#;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// A generator whose first ref is `first` (the capture's refs are 12 bytes, like ours).
fn gen_starting_at(first: &str) -> Arc<PhxRefGen> {
    let bytes = URL_SAFE_NO_PAD.decode(first).unwrap();
    let start = u64::from_be_bytes(bytes[..8].try_into().unwrap());
    let salt = u32::from_be_bytes(bytes[8..].try_into().unwrap());
    Arc::new(PhxRefGen::new(start, salt))
}

fn topic() -> Presences {
    Presences::with_ref_gen(Arc::new(PhxRefGen::new(1 << 40, 0xfeed_beef)))
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap()
}

#[test]
fn frames_match_the_phoenix_capture_byte_for_byte() {
    let mut p = Presences::with_ref_gen(gen_starting_at(ALICE_REF));
    let online = || obj(json!({"online_at": "1795663707"}));

    let (alice, diff) = p.track("alice", online());
    assert_eq!(alice.as_str(), ALICE_REF);
    assert_eq!(encode_broadcast(Vsn::V2, "room:lobby", events::DIFF, &diff), S5_DIFF);
    assert_eq!(encode_push(Vsn::V2, "4", "room:lobby", events::STATE, &p), S5_STATE);

    let (bob, diff) = p.track("bob", online());
    let with_bob = |frame: &str| frame.replace(BOB_REF, bob.as_str());
    assert_eq!(encode_broadcast(Vsn::V2, "room:lobby", events::DIFF, &diff), with_bob(S6_DIFF));
    assert_eq!(encode_push(Vsn::V2, "1", "room:lobby", events::STATE, &p), with_bob(S6_STATE));
    assert_eq!(to_json(&p), p.state());

    let diff = p.untrack("bob", bob).unwrap();
    assert_eq!(encode_broadcast(Vsn::V2, "room:lobby", events::DIFF, &diff), with_bob(S9_DIFF));
    assert_eq!(p.untrack("bob", bob), None, "a ref leaves once");
    assert_eq!((p.key_count(), p.meta_count()), (1, 1));
}

#[test]
fn refs_are_16_base64url_chars_and_unique() {
    let g = PhxRefGen::from_clock();
    let refs: Vec<PhxRef> = (0..10_000).map(|_| g.next_ref()).collect();
    let mut sorted = refs.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), refs.len());
    for r in &refs {
        assert_eq!(r.as_str().len(), PHX_REF_LEN);
        assert_eq!(PhxRef::parse(r.as_str()), Some(*r));
    }
    assert_eq!(PhxRef::parse("short"), None);
    assert_eq!(PhxRef::parse("GOt6oOKtEgaevw1+"), None);
    assert_eq!(PhxRef::parse(ALICE_REF).map(|r| r.to_string()), Some(ALICE_REF.to_owned()));
    // Two generators (two servers, or a restart) with different salts never collide.
    let (a, b) = (PhxRefGen::new(7, 1), PhxRefGen::new(7, 2));
    assert_ne!(a.next_ref(), b.next_ref());
    assert_eq!(PhxRefGen::global().next_ref().as_str().len(), PHX_REF_LEN);
}

#[test]
fn several_metas_per_key_for_several_tabs() {
    let mut p = topic();
    let (tab1, _) = p.track("u1", obj(json!({"device": "laptop"})));
    let (tab2, diff) = p.track("u1", obj(json!({"device": "phone"})));
    assert_eq!(
        to_json(&diff),
        json!({"joins": {"u1": {"metas": [{"device": "phone", "phx_ref": tab2.as_str()}]}}, "leaves": {}})
    );
    assert_eq!(
        p.state(),
        json!({"u1": {"metas": [
            {"device": "laptop", "phx_ref": tab1.as_str()},
            {"device": "phone", "phx_ref": tab2.as_str()},
        ]}})
    );
    assert_eq!((p.key_count(), p.meta_count()), (1, 2));

    // Closing one tab leaves the other present.
    p.untrack("u1", tab1).unwrap();
    assert!(p.contains_key("u1"));
    assert_eq!(p.metas("u1").len(), 1);
    assert_eq!(p.meta("u1", tab2).and_then(|m| m.get("device")), Some(&json!("phone")));
    p.untrack("u1", tab2).unwrap();
    assert!(p.is_empty());
    assert_eq!(p.state(), json!({}));
    assert_eq!(p.metas("u1"), &[] as &[Arc<Meta>]);
}

#[test]
fn update_joins_with_phx_ref_prev_and_leaves_the_old_meta() {
    let mut p = topic();
    let (r1, _) = p.track("u1", obj(json!({"name": "Ann", "typing": false})));
    let (r2, diff) = p
        .update_with("u1", r1, |m| {
            m.insert("typing".into(), true.into());
        })
        .unwrap();
    assert_ne!(r1, r2);
    assert_eq!(
        to_json(&diff),
        json!({
            "joins": {"u1": {"metas": [{"name": "Ann", "phx_ref": r2.as_str(), "phx_ref_prev": r1.as_str(), "typing": true}]}},
            "leaves": {"u1": {"metas": [{"name": "Ann", "phx_ref": r1.as_str(), "typing": false}]}},
        })
    );
    // Keys come out sorted, reserved ones included, as Phoenix writes them.
    assert_eq!(
        serde_json::to_string(&diff).unwrap(),
        format!(
            r#"{{"joins":{{"u1":{{"metas":[{{"name":"Ann","phx_ref":"{r2}","phx_ref_prev":"{r1}","typing":true}}]}}}},"leaves":{{"u1":{{"metas":[{{"name":"Ann","phx_ref":"{r1}","typing":false}}]}}}}}}"#
        )
    );
    let meta = p.meta("u1", r2).unwrap();
    assert_eq!((meta.phx_ref(), meta.phx_ref_prev()), (r2, Some(r1)));
    assert!(p.meta("u1", r1).is_none());
    assert_eq!(p.meta_count(), 1);

    // A second update replaces the meta wholesale; phx_ref_prev names the latest ref.
    let (r3, diff) = p.update("u1", r2, obj(json!({"name": "Ann", "phx_ref": "ignored", "away": true}))).unwrap();
    assert_eq!(
        to_json(&diff)["joins"]["u1"]["metas"][0],
        json!({"away": true, "name": "Ann", "phx_ref": r3.as_str(), "phx_ref_prev": r2.as_str()})
    );
    assert_eq!(to_json(&diff)["leaves"]["u1"]["metas"][0]["phx_ref_prev"], json!(r1.as_str()));

    // Unknown key or ref: nothing happens.
    assert!(p.update("u1", r1, Map::new()).is_none());
    assert!(p.update("nobody", r3, Map::new()).is_none());
    assert!(p.untrack("u2", r3).is_none());
}

#[test]
fn reserved_fields_interleave_in_sorted_order() {
    let mut p = topic();
    let (r, _) = p.track("k", obj(json!({"a": 1, "phx_ref_a": 2, "phx_ref_prev": "forged", "z": 3})));
    let (r2, diff) = p.update_with("k", r, |_| {}).unwrap();
    let joined = serde_json::to_string(&diff.joins().next().unwrap().1[0]).unwrap();
    assert_eq!(joined, format!(r#"{{"a":1,"phx_ref":"{r2}","phx_ref_a":2,"phx_ref_prev":"{r}","z":3}}"#));
    let left = serde_json::to_string(&diff.leaves().next().unwrap().1[0]).unwrap();
    assert_eq!(left, format!(r#"{{"a":1,"phx_ref":"{r}","phx_ref_a":2,"z":3}}"#));
    // An empty meta is just its ref.
    let (e, _) = p.track("e", Map::new());
    assert_eq!(p.state()["e"], json!({"metas": [{"phx_ref": e.as_str()}]}));
}

fn refs_of(group: &Value, key: &str) -> Vec<String> {
    group[key]["metas"]
        .as_array()
        .map_or(vec![], |m| m.iter().map(|m| m["phx_ref"].as_str().unwrap().to_owned()).collect())
}

#[test]
fn merge_cancels_a_join_then_leave_of_the_same_ref() {
    let mut p = topic();
    let (r, d1) = p.track("u1", obj(json!({"x": 1})));
    let d2 = p.untrack("u1", r).unwrap();
    let merged = d1.merge(d2);
    assert!(merged.is_empty());
    assert_eq!(to_json(&merged), json!({"joins": {}, "leaves": {}}));
}

#[test]
fn merge_keeps_a_leave_then_a_join_of_different_refs() {
    let mut p = topic();
    let (r1, _) = p.track("u1", obj(json!({"tab": 1})));
    let d1 = p.untrack("u1", r1).unwrap();
    let (r2, d2) = p.track("u1", obj(json!({"tab": 2})));
    let merged = to_json(&d1.merge(d2));
    assert_eq!(refs_of(&merged["leaves"], "u1"), [r1.to_string()]);
    assert_eq!(refs_of(&merged["joins"], "u1"), [r2.to_string()]);
}

#[test]
fn merge_preserves_join_order_and_drops_refs_joined_in_an_earlier_merged_diff() {
    let mut p = topic();
    let (old, _) = p.track("u1", obj(json!({"n": 0})));
    let mut merged = Diff::new();
    let (a, d) = p.track("u1", obj(json!({"n": 1})));
    merged.merge_from(d);
    let (b, d) = p.track("u1", obj(json!({"n": 2})));
    merged.merge_from(d);
    let (c, d) = p.track("u2", obj(json!({"n": 3})));
    merged.merge_from(d);
    // An update of `a`, joined earlier in this merged diff: the old `a` is neither joined
    // nor left; the new meta joins after `b`, where the client will put it.
    let (a2, d) = p.update("u1", a, obj(json!({"n": 11}))).unwrap();
    merged.merge_from(d);
    // A leave of `c`, joined earlier: `u2` disappears from the diff entirely.
    merged.merge_from(p.untrack("u2", c).unwrap());
    // A leave of a meta the client already had stays a leave.
    merged.merge_from(p.untrack("u1", old).unwrap());

    let json = to_json(&merged);
    assert_eq!(refs_of(&json["joins"], "u1"), [b.to_string(), a2.to_string()]);
    assert_eq!(refs_of(&json["leaves"], "u1"), [old.to_string()]);
    assert!(json["joins"].get("u2").is_none() && json["leaves"].get("u2").is_none());
    assert_eq!(json["joins"]["u1"]["metas"][1]["phx_ref_prev"], json!(a.as_str()));
    assert_eq!((merged.join_count(), merged.leave_count()), (2, 1));
    assert_eq!(refs_of(&p.state(), "u1"), [b.to_string(), a2.to_string()]);

    // Merging is associative on these: pairwise from the right gives the same diff.
    assert_eq!(Diff::new().merge(merged.clone()), merged);
    assert_eq!(merged.clone().merge(Diff::new()), merged);
}

#[test]
fn throttle_sends_the_first_diff_at_once_then_one_merged_diff_per_interval() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let mut th = DiffThrottle::new(Duration::from_millis(100));
    let mut p = topic();

    let (r1, d) = p.track("u1", Map::new());
    assert_eq!(th.push(ms(0), d.clone()), Some(d), "quiet topic: no delay");
    assert_eq!(th.deadline(), None);

    // Readers arriving within the interval are held and merged.
    let mut refs = vec![];
    for i in 0..50 {
        let (r, d) = p.track(&format!("reader{i}"), Map::new());
        refs.push(r);
        assert_eq!(th.push(ms(10 + i), d), None);
    }
    // One of them leaves again before the flush: never sent.
    th.push(ms(70), p.untrack("reader7", refs[7]).unwrap());
    assert_eq!(th.deadline(), Some(ms(100)));
    assert_eq!(th.poll(ms(99)), None);
    let flushed = th.poll(ms(100)).unwrap();
    assert_eq!((flushed.join_count(), flushed.leave_count()), (49, 0));
    assert!(flushed.joins().all(|(k, _)| k != "reader7"));
    assert!(!th.has_pending());

    // Right after a flush the next diff waits for the next interval.
    let d = p.untrack("u1", r1).unwrap();
    assert_eq!(th.push(ms(150), d.clone()), None);
    assert_eq!(th.deadline(), Some(ms(200)));
    assert_eq!(th.poll(ms(250)), Some(d));

    // Held diffs that cancel out send nothing.
    let (r, d) = p.track("blip", Map::new());
    assert!(th.push(ms(260), d).is_none());
    th.push(ms(261), p.untrack("blip", r).unwrap());
    assert_eq!(th.poll(ms(400)), None);
    assert!(!th.has_pending());
    // Empty diffs are ignored; after a quiet interval the next one goes straight out.
    assert_eq!(th.push(ms(500), Diff::new()), None);
    let (_, d) = p.track("late", Map::new());
    assert_eq!(th.push(ms(500), d.clone()), Some(d));
    assert_eq!(th.flush(ms(501)), None);

    // A zero interval passes everything through.
    let mut now = DiffThrottle::new(Duration::ZERO);
    let (_, d) = p.track("x", Map::new());
    assert_eq!(now.push(ms(0), d.clone()), Some(d.clone()));
    assert_eq!(now.push(ms(0), d.clone()), Some(d));
    assert_eq!(now.interval(), Duration::ZERO);
}
