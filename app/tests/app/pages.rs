//! Page readers (`page:<path>`): join reply counts, `presence_state`, throttled and
//! coalesced `presence_diff` and `readers` broadcasts, leaving, refused paths.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::helpers::*;

async fn spawn_with_interval(ms: u64) -> TestApp {
    spawn_app_with(|c| c.readers.interval = Duration::from_millis(ms)).await
}

/// The reply to `msg_ref`, skipping broadcasts that arrive before it.
async fn reply_to(ws: &mut WsClient, msg_ref: &str) -> Value {
    loop {
        let frame = ws.expect_frame().await;
        if frame[3] == json!("phx_reply") && frame[1] == json!(msg_ref) {
            return frame;
        }
        assert!(frame[1].is_null(), "only broadcasts may come before the reply: {frame}");
    }
}

/// Joins `topic`; asserts an ok reply and returns its response, then the
/// `presence_state` push that must follow it.
async fn join_page(ws: &mut WsClient, jr: &str, topic: &str) -> (Value, Value) {
    ws.push(Some(jr), jr, topic, "phx_join", json!({})).await;
    let reply = reply_to(ws, jr).await;
    assert_eq!(reply.as_array().unwrap()[..4], [json!(jr), json!(jr), json!(topic), json!("phx_reply")], "{reply}");
    assert_eq!(reply[4]["status"], json!("ok"), "{reply}");
    let state = ws.expect_frame().await;
    assert_eq!(
        state.as_array().unwrap()[..4],
        [json!(jr), Value::Null, json!(topic), json!("presence_state")],
        "{state}"
    );
    (reply[4]["response"].clone(), state[4].clone())
}

/// Reads frames until an event named `event` arrives on `topic`; returns its payload.
async fn next_event(ws: &mut WsClient, topic: &str, event: &str) -> Value {
    loop {
        let frame = ws.expect_frame().await;
        if frame[2] == json!(topic) && frame[3] == json!(event) {
            return frame[4].clone();
        }
    }
}

/// Reads `readers` broadcasts until one equals `want`.
async fn wait_counts(ws: &mut WsClient, topic: &str, want: Value) {
    loop {
        let counts = next_event(ws, topic, "readers").await;
        if counts == want {
            return;
        }
    }
}

fn counts(readers: u64, total: u64) -> Value {
    json!({"readers": readers, "total": total})
}

#[tokio::test]
async fn join_replies_count_readers_on_the_page_and_in_total() {
    let app = spawn_with_interval(20).await;
    let mut a = app.ws("").await;
    let mut b = app.ws("").await;
    let mut c = app.ws("").await;
    assert_eq!(join_page(&mut a, "1", "page:/blog/one").await.0, counts(1, 1));
    assert_eq!(join_page(&mut b, "1", "page:/blog/one").await.0, counts(2, 2));
    assert_eq!(join_page(&mut c, "1", "page:/blog/two").await.0, counts(1, 3));

    // The first reader hears the new counts through a throttled `readers` broadcast.
    wait_counts(&mut a, "page:/blog/one", counts(2, 3)).await;

    // A signed-in user is one reader however many tabs they have open.
    let user = app.create_user("reader").await;
    let mut tab1 = app.ws(&format!("&token={}", user.token)).await;
    let mut tab2 = app.ws(&format!("&token={}", user.token)).await;
    assert_eq!(join_page(&mut tab1, "1", "page:/blog/two").await.0, counts(2, 4));
    let (reply, state) = join_page(&mut tab2, "1", "page:/blog/two").await;
    assert_eq!(reply, counts(2, 4));
    let key = user.id.to_string();
    assert_eq!(state[&key]["metas"].as_array().map(Vec::len), Some(2), "two tabs, one key: {state}");
    // ... and one reader in the total even on two pages.
    assert_eq!(join_page(&mut tab1, "2", "page:/blog/one").await.0, counts(3, 4));
}

#[tokio::test]
async fn presence_state_has_the_phoenix_shape() {
    let app = spawn_with_interval(20).await;
    let user = app.create_user("stateful").await;
    let mut anon = app.ws("").await;
    let mut signed = app.ws(&format!("&token={}", user.token)).await;
    let (_, first) = join_page(&mut anon, "1", "page:/").await;
    let obj = first.as_object().expect("state object");
    assert_eq!(obj.len(), 1, "{first}");
    let (anon_key, entry) = obj.iter().next().unwrap();
    assert!(anon_key.starts_with("anon:"), "{first}");
    let metas = entry["metas"].as_array().expect("metas");
    assert_eq!(metas.len(), 1);
    assert_eq!(metas[0]["phx_ref"].as_str().map(str::len), Some(16), "{first}");
    assert!(metas[0]["online_at"].as_i64().is_some(), "{first}");
    assert_eq!(metas[0].as_object().unwrap().len(), 2, "only online_at and phx_ref: {first}");

    let (_, second) = join_page(&mut signed, "1", "page:/").await;
    let user_key = user.id.to_string();
    let mut keys: Vec<&String> = second.as_object().unwrap().keys().collect();
    keys.sort();
    let mut want = vec![anon_key, &user_key];
    want.sort();
    assert_eq!(keys, want, "{second}");
    assert_eq!(second[anon_key], first[anon_key], "the same meta and ref as before");

    // The earlier reader hears the join as a presence_diff in the Phoenix shape.
    let diff = loop {
        let diff = next_event(&mut anon, "page:/", "presence_diff").await;
        if diff["joins"].get(&user_key).is_some() {
            break diff;
        }
    };
    assert_eq!(diff["leaves"], json!({}), "{diff}");
    assert_eq!(diff["joins"][&user_key], second[&user_key], "{diff}");
}

#[tokio::test]
async fn fifty_joins_within_the_interval_reach_an_early_reader_as_a_few_merged_diffs() {
    const N: usize = 50;
    const TOPIC: &str = "page:/popular";
    let interval = Duration::from_millis(500);
    let app = spawn_with_interval(interval.as_millis() as u64).await;
    let mut early = app.ws("").await;
    join_page(&mut early, "1", TOPIC).await;
    // The early reader's own join diff (sent at once: nothing was sent before).
    let own = next_event(&mut early, TOPIC, "presence_diff").await;
    assert_eq!(own["joins"].as_object().map(|j| j.len()), Some(1), "{own}");

    let mut others = Vec::new();
    for _ in 0..N {
        others.push(app.ws("").await);
    }
    let started = Instant::now();
    for ws in &mut others {
        ws.push(Some("1"), "1", TOPIC, "phx_join", json!({})).await;
    }
    let mut keys = BTreeMap::new();
    for ws in &mut others {
        let reply = ws.expect_frame().await;
        assert_eq!(reply[4]["status"], json!("ok"), "{reply}");
        let state = ws.expect_frame().await;
        assert_eq!(state[3], json!("presence_state"));
        // Every joiner's own key is in its state; collect them to compare with the diffs.
        let own: Vec<String> = state[4].as_object().unwrap().keys().cloned().collect();
        for key in own {
            keys.insert(key, ());
        }
    }
    let joined_in = started.elapsed();

    // Everything the early reader gets until it has seen all 50 joins and the final count.
    let mut diffs = 0;
    let mut held: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut last_counts = Value::Null;
    let final_counts = counts(N as u64 + 1, N as u64 + 1);
    while held.len() < N || last_counts != final_counts {
        let frame = early.expect_frame().await;
        assert_eq!(frame[2], json!(TOPIC), "{frame}");
        match frame[3].as_str() {
            Some("presence_diff") => {
                diffs += 1;
                assert_eq!(frame[4]["leaves"], json!({}), "{frame}");
                for (key, entry) in frame[4]["joins"].as_object().unwrap() {
                    held.entry(key.clone()).or_default().extend(entry["metas"].as_array().unwrap().iter().cloned());
                }
            }
            Some("readers") => last_counts = frame[4].clone(),
            _ => panic!("unexpected {frame}"),
        }
    }
    // At most one diff at once, then one merged diff per interval the joins spanned.
    let bound = 2 + (joined_in.as_millis() / interval.as_millis()) as usize;
    assert!(diffs <= bound, "{diffs} diffs for {N} joins in {joined_in:?}");
    eprintln!("{N} joins in {joined_in:?} reached the early reader as {diffs} presence_diff(s)");
    assert!(held.values().all(|metas| metas.len() == 1), "each join exactly once");
    let early_key: Vec<String> = own["joins"].as_object().unwrap().keys().cloned().collect();
    let mut want: Vec<String> = keys.into_keys().filter(|k| !early_key.contains(k)).collect();
    want.sort();
    assert_eq!(held.keys().cloned().collect::<Vec<_>>(), want);
    early.expect_silence(interval.as_millis() as u64 + 300).await;
}

#[tokio::test]
async fn leaving_and_closing_update_counts_and_send_leaves() {
    const TOPIC: &str = "page:/leaving";
    let app = spawn_with_interval(20).await;
    let mut stay = app.ws("").await;
    let mut go = app.ws("").await;
    let mut close = app.ws("").await;
    join_page(&mut stay, "1", TOPIC).await;
    join_page(&mut go, "1", TOPIC).await;
    assert_eq!(join_page(&mut close, "1", TOPIC).await.0, counts(3, 3));
    wait_counts(&mut stay, TOPIC, counts(3, 3)).await;

    go.push(Some("1"), "2", TOPIC, "phx_leave", json!({})).await;
    assert_eq!(reply_to(&mut go, "2").await, ok_reply(Some("1"), "2", TOPIC));
    wait_counts(&mut stay, TOPIC, counts(2, 2)).await;

    close.close().await;
    wait_counts(&mut stay, TOPIC, counts(1, 1)).await;

    // The leaves came as presence_diffs too; a new reader sees the right state.
    let mut fresh = app.ws("").await;
    let (reply, state) = join_page(&mut fresh, "1", TOPIC).await;
    assert_eq!(reply, counts(2, 2));
    assert_eq!(state.as_object().unwrap().len(), 2, "{state}");
}

#[tokio::test]
async fn diffs_carry_leaves_and_a_rejoin_replaces_the_reader() {
    const TOPIC: &str = "page:/rejoin";
    let app = spawn_with_interval(0).await;
    let mut watcher = app.ws("").await;
    let mut other = app.ws("").await;
    join_page(&mut watcher, "1", TOPIC).await;
    next_event(&mut watcher, TOPIC, "presence_diff").await;
    let (_, state) = join_page(&mut other, "1", TOPIC).await;
    let joined = next_event(&mut watcher, TOPIC, "presence_diff").await;
    let other_key = joined["joins"].as_object().unwrap().keys().next().unwrap().clone();
    let first_ref = state[&other_key]["metas"][0]["phx_ref"].clone();

    // A re-join of the same topic on the same socket is one reader, not two.
    other.push(Some("5"), "5", TOPIC, "phx_join", json!({})).await;
    let reply = reply_to(&mut other, "5").await;
    assert_eq!(reply[4]["response"], counts(2, 2));
    let diff = next_event(&mut watcher, TOPIC, "presence_diff").await;
    assert_eq!(diff["leaves"][&other_key]["metas"][0]["phx_ref"], first_ref, "{diff}");
    assert_ne!(diff["joins"][&other_key]["metas"][0]["phx_ref"], first_ref, "{diff}");

    other.push(Some("5"), "6", TOPIC, "phx_leave", json!({})).await;
    let diff = next_event(&mut watcher, TOPIC, "presence_diff").await;
    assert_eq!(diff["joins"], json!({}), "{diff}");
    assert!(diff["leaves"].get(&other_key).is_some(), "{diff}");
    let mut check = app.ws("").await;
    assert_eq!(join_page(&mut check, "1", TOPIC).await.0, counts(2, 2));
}

#[tokio::test]
async fn invalid_page_paths_are_refused() {
    let app = spawn_app().await;
    let mut ws = app.ws("").await;
    let long = format!("page:/{}", "a".repeat(200));
    for (i, topic) in ["page:", "page:blog", "page:/a\nb", "page:/tab\there", long.as_str()].iter().enumerate() {
        let r = i.to_string();
        ws.push(Some(&r), &r, topic, "phx_join", json!({})).await;
        assert_eq!(ws.expect_frame().await, error_reply(Some(&r), &r, topic, "invalid topic"));
    }
    // The socket keeps working, and a valid path still joins.
    let ok = format!("page:/{}", "a".repeat(199));
    assert_eq!(join_page(&mut ws, "9", &ok).await.0, counts(1, 1));
    ws.push(Some("9"), "10", &ok, "shout", json!({})).await;
    assert_eq!(reply_to(&mut ws, "10").await, error_reply(Some("9"), "10", &ok, "unknown event"));
}

/// Server memory per joined page channel, from the RSS of a server process before and
/// after 2,000 joins of distinct pages (20 signed-in sockets × 100 pages, the worst case:
/// every join makes a page). `FIREHOSE_BIN=<older firehose>` measures another build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_presence_costs_at_most_1_kib_per_joined_channel() {
    const SOCKETS: usize = 20;
    const PAGES: usize = 100;
    let server = ServerProcess::start(&[], &[]).await;
    let reader = server.create_user("reader").await;
    let query = format!("vsn=2.0.0&token={}", reader.token);
    let mut sockets = Vec::new();
    for _ in 0..SOCKETS {
        let mut ws = WsClient::connect(server.addr, &query).await.expect("upgrade");
        ws.heartbeat("0").await;
        sockets.push(ws);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.metric("process_resident_memory_bytes").await.expect("RSS");
    for (s, ws) in sockets.iter_mut().enumerate() {
        for p in 1..=PAGES {
            let jr = p.to_string();
            ws.push(Some(&jr), &jr, &format!("page:/memory/{s}/{p}"), "phx_join", json!({})).await;
        }
        for p in 1..=PAGES {
            let reply = reply_to(ws, &p.to_string()).await;
            assert_eq!(reply[4]["status"], json!("ok"), "{reply}");
        }
    }
    // Let the throttles release what they hold, then read what stays.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for ws in &mut sockets {
        ws.push(None, "h", "phoenix", "heartbeat", json!({})).await;
        reply_to(ws, "h").await;
    }
    let after = server.metric("process_resident_memory_bytes").await.expect("RSS");
    let channels = (SOCKETS * PAGES) as f64;
    let per_channel = (after - before) / channels;
    println!(
        "page presence: {per_channel:.0} B per joined channel ({channels} channels on distinct pages, RSS {before} -> {after})"
    );
    assert!(per_channel <= 1024.0, "{per_channel:.0} B per joined page channel, over 1 KiB");
}
