//! Recovery after a reconnect: `since: {seq, epoch}` on join answers every missed
//! event exactly once, or `recovered: false` when the history no longer covers the gap.

use firehose_app::pubsub::HistoryLimits;
use serde_json::{Value, json};

use crate::helpers::*;

const TOPIC: &str = "bookmarks:firehose";

/// Joins with the given join payload; returns the reply's response.
async fn join_with(ws: &mut WsClient, jr: &str, payload: Value) -> Value {
    ws.push(Some(jr), jr, TOPIC, "phx_join", payload).await;
    let reply = ws.expect_frame().await;
    assert_eq!(reply[3], json!("phx_reply"), "{reply}");
    assert_eq!(reply[4]["status"], json!("ok"), "{reply}");
    reply[4]["response"].clone()
}

fn missed_seqs(response: &Value) -> Vec<u64> {
    response["missed"].as_array().unwrap().iter().map(|m| m["payload"]["seq"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn a_rejoin_with_since_gets_every_missed_event_once_then_the_live_stream() {
    let app = spawn_app().await;
    let user = app.create_user("recoverer").await;
    let mut first = app.ws("vsn=2.0.0").await;
    let start = join_with(&mut first, "1", json!({"since": null})).await;
    assert_eq!(start["recovered"], json!(false));
    assert_eq!(start["seq"], json!(0));
    let epoch = start["epoch"].as_str().expect("epoch").to_owned();

    let mut ids = Vec::new();
    for i in 0..5 {
        let b = app.create_bookmark(&user, json!({"title": format!("b{i}"), "url": "https://example.com/r"})).await;
        ids.push(b["id"].clone());
    }
    // The first socket saw seq 1 and 2 before "dropping".
    for seq in 1..=2 {
        assert_eq!(first.expect_frame().await[4]["seq"], json!(seq));
    }
    drop(first);

    let mut second = app.ws("vsn=2.0.0").await;
    let rec = join_with(&mut second, "7", json!({"since": {"seq": 2, "epoch": epoch}})).await;
    assert_eq!(rec["recovered"], json!(true), "{rec}");
    assert_eq!(rec["seq"], json!(5));
    assert_eq!(missed_seqs(&rec), [3, 4, 5]);
    let missed_ids: Vec<Value> = rec["missed"].as_array().unwrap().iter().map(|m| m["payload"]["id"].clone()).collect();
    assert_eq!(missed_ids, ids[2..]);
    assert!(rec["missed"].as_array().unwrap().iter().all(|m| m["event"] == json!("bookmark_created")));

    // Live events continue right after the recovered ones, with nothing repeated.
    app.create_bookmark(&user, json!({"title": "live", "url": "https://example.com/l"})).await;
    let live = second.expect_frame().await;
    assert_eq!(live[4]["seq"], json!(6), "{live}");
    second.expect_silence(200).await;
}

#[tokio::test]
async fn recovery_is_all_or_nothing() {
    let app = spawn_app_with(|c| c.history = HistoryLimits { max_events: 2, ..HistoryLimits::default() }).await;
    let user = app.create_user("gapper").await;
    let mut ws = app.ws("vsn=2.0.0").await;
    let epoch = join_with(&mut ws, "1", json!({"since": null})).await["epoch"].as_str().unwrap().to_owned();
    for i in 0..3 {
        app.create_bookmark(&user, json!({"title": format!("g{i}"), "url": "https://example.com/g"})).await;
    }
    let mut late = app.ws("vsn=2.0.0").await;
    // Seq 1 is no longer retained: nothing is recovered rather than a partial list.
    let rec = join_with(&mut late, "1", json!({"since": {"seq": 0, "epoch": epoch}})).await;
    assert_eq!((rec["recovered"].clone(), rec["seq"].clone()), (json!(false), json!(3)));
    assert_eq!(rec["missed"], json!([]));
    let mut late2 = app.ws("vsn=2.0.0").await;
    let rec = join_with(&mut late2, "1", json!({"since": {"seq": 1, "epoch": epoch}})).await;
    assert_eq!(missed_seqs(&rec), [2, 3]);
    let mut stranger = app.ws("vsn=2.0.0").await;
    let rec = join_with(&mut stranger, "1", json!({"since": {"seq": 1, "epoch": "another-epoch"}})).await;
    assert_eq!(rec["recovered"], json!(false));
}

#[tokio::test]
async fn a_malformed_since_is_a_join_error() {
    let app = spawn_app().await;
    let mut ws = app.ws("vsn=2.0.0").await;
    for bad in
        [json!({"since": "yesterday"}), json!({"since": {"seq": -1, "epoch": "x"}}), json!({"since": {"seq": 1}})]
    {
        ws.push(Some("1"), "1", TOPIC, "phx_join", bad.clone()).await;
        let reply = ws.expect_frame().await;
        assert_eq!(reply[4]["status"], json!("error"), "{bad}: {reply}");
        assert!(reply[4]["response"]["reason"].as_str().unwrap().starts_with("invalid since"), "{reply}");
    }
    // A plain join still answers exactly as Phoenix does.
    ws.join("2", TOPIC).await;
}

#[tokio::test]
async fn tag_topics_used_once_are_freed_after_the_recovery_window() {
    // Long enough that the 40 topics are all still held when counted, on either
    // database (a PostgreSQL commit takes longer than SQLite's).
    let window = std::time::Duration::from_secs(2);
    let app = spawn_app_with(|c| c.history = HistoryLimits { max_age: window, ..HistoryLimits::default() }).await;
    let user = app.create_user("tagger").await;
    let mut ws = app.ws("vsn=2.0.0").await;
    join_with(&mut ws, "1", json!({})).await;
    let started = tokio::time::Instant::now();
    futures_util::future::join_all((0..40).map(|i| {
        let fields = json!({"title": format!("t{i}"), "url": "https://example.com/t", "tags": [format!("once{i}")]});
        let (app, user) = (&app, &user);
        async move { app.create_bookmark(user, fields).await }
    }))
    .await;
    let held = app.metric("firehose_topics").await.expect("firehose_topics gauge");
    assert!(started.elapsed() < window, "40 bookmarks took {:?}, longer than the window", started.elapsed());
    assert!(held >= 41.0, "the firehose and 40 tag topics, at least: {held}");
    // The server's sweeper frees them once their history has aged out; the watched
    // firehose topic stays, and its seq carries on.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let topics = app.metric("firehose_topics").await.unwrap_or(f64::MAX);
        let history = app.metric("firehose_history_events").await.unwrap_or(f64::MAX);
        if topics < 5.0 && history == 0.0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still held: {topics} topics, {history} history events");
        tokio::time::sleep(window).await;
    }
    assert_eq!(app.metric("firehose_subscriptions").await, Some(1.0));
    assert!(app.metric("firehose_tasks").await.is_some_and(|t| t > 0.0));
}
