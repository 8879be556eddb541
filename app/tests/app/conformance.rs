//! The Phoenix Channels contract (`PROTOCOL.md`, "Behaviour the server must reproduce",
//! and the Phoenix 1.7.24 capture) driven through the real server over a raw WebSocket,
//! asserting exact frames.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::helpers::{
    TestApp, TestUser, WsClient, captured, error_reply, metric_value, ok_reply, spawn_app, spawn_app_with,
};

const FIREHOSE: &str = "bookmarks:firehose";

fn tag_topic(tag: &str) -> String {
    format!("bookmarks:tag:{tag}")
}

/// Asserts a `bookmark_*` broadcast payload: exactly the event fields, equal to the
/// API's view of the bookmark, with the topic's `seq`.
fn assert_event(payload: &Value, bookmark: &Value, seq: u64) {
    let keys: Vec<&str> = payload.as_object().expect("payload object").keys().map(String::as_str).collect();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, ["description", "id", "inserted_at", "seq", "tags", "title", "url", "user"], "{payload}");
    for field in ["id", "title", "description", "url", "tags", "user", "inserted_at"] {
        assert_eq!(payload[field], bookmark[field], "{field} in {payload}");
    }
    assert_eq!(payload["seq"], json!(seq), "seq in {payload}");
}

/// The first four elements of a frame: `[join_ref, ref, topic, event]`.
fn head(frame: &Value) -> Value {
    json!([frame[0], frame[1], frame[2], frame[3]])
}

/// Asserts `[null, null, topic, event, payload]` and returns the payload.
fn broadcast_payload(frame: &Value, topic: &str, event: &str) -> Value {
    assert_eq!(frame[0], Value::Null, "broadcast join_ref: {frame}");
    assert_eq!(frame[1], Value::Null, "broadcast ref: {frame}");
    assert_eq!(frame[2], json!(topic), "{frame}");
    assert_eq!(frame[3], json!(event), "{frame}");
    frame[4].clone()
}

async fn bookmark(app: &TestApp, user: &TestUser, title: &str, tags: &[&str]) -> Value {
    app.create_bookmark(user, json!({"title": title, "url": "https://example.com/", "tags": tags})).await
}

/// A V2 binary client push: `0, len(jr), len(ref), len(topic), len(event), jr, ref, topic, event, payload…`.
fn binary_push(jr: &str, msg_ref: &str, topic: &str, event: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0, jr.len() as u8, msg_ref.len() as u8, topic.len() as u8, event.len() as u8];
    for part in [jr, msg_ref, topic, event] {
        out.extend_from_slice(part.as_bytes());
    }
    out.extend_from_slice(payload);
    out
}

fn http_status(result: Result<WsClient, tungstenite::Error>) -> u16 {
    match result {
        Err(tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other:?}"),
        Ok(_) => panic!("expected an HTTP refusal, the upgrade succeeded"),
    }
}

// ---- capture replay ------------------------------------------------------------------

#[tokio::test]
async fn join_heartbeat_and_broadcasts_match_the_capture_byte_for_byte() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let mut ws = app.ws("&user=alice").await;

    // 1. join bookmarks:firehose
    ws.send_text(captured(r#"["1","1","bookmarks:firehose","phx_join",{}]"#)).await;
    assert_eq!(
        ws.expect_text().await,
        captured(r#"["1","1","bookmarks:firehose","phx_reply",{"response":{},"status":"ok"}]"#)
    );
    // 2. join bookmarks:tag:elixir
    ws.send_text(captured(r#"["2","2","bookmarks:tag:elixir","phx_join",{}]"#)).await;
    assert_eq!(
        ws.expect_text().await,
        captured(r#"["2","2","bookmarks:tag:elixir","phx_reply",{"response":{},"status":"ok"}]"#)
    );
    // 3. heartbeat
    ws.send_text(captured(r#"[null,"3","phoenix","heartbeat",{}]"#)).await;
    assert_eq!(ws.expect_text().await, captured(r#"[null,"3","phoenix","phx_reply",{"response":{},"status":"ok"}]"#));
    // 4. POST -> broadcast on the firehose, then on the tag topic (fastlane: null, null)
    let data = app
        .create_bookmark(
            &alice,
            json!({"title": "Phoenix", "url": "https://phoenixframework.org", "description": "wire capture",
                   "tags": ["elixir", "web"]}),
        )
        .await;
    let first = ws.expect_text().await;
    assert!(first.starts_with(r#"[null,null,"bookmarks:firehose","bookmark_created",{"#), "{first}");
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_event(&first[4], &data, 1);
    let second = ws.expect_text().await;
    assert!(second.starts_with(r#"[null,null,"bookmarks:tag:elixir","bookmark_created",{"#), "{second}");
    let second: Value = serde_json::from_str(&second).unwrap();
    assert_event(&second[4], &data, 1);
    // Not joined to bookmarks:tag:web: nothing else arrives.
    ws.expect_silence(150).await;
}

#[tokio::test]
async fn heartbeat_reply_is_exact_and_extra_trailing_elements_are_tolerated() {
    let app = spawn_app().await;
    let mut ws = app.ws("").await;
    ws.send_text(r#"[null,"3","phoenix","heartbeat",{}]"#).await;
    assert_eq!(ws.expect_text().await, r#"[null,"3","phoenix","phx_reply",{"response":{},"status":"ok"}]"#);
    ws.send_text(r#"[null,"4","phoenix","heartbeat",{},"extra",1]"#).await;
    assert_eq!(ws.expect_frame().await, ok_reply(None, "4", "phoenix"));
}

// ---- joins -----------------------------------------------------------------------------

#[tokio::test]
async fn join_of_an_unnormalised_tag_is_refused_with_the_requests_join_ref() {
    let app = spawn_app().await;
    let mut ws = app.ws("").await;
    ws.push(Some("1"), "1", "bookmarks:tag:Elixir", "phx_join", json!({})).await;
    assert_eq!(
        ws.expect_text().await,
        r#"["1","1","bookmarks:tag:Elixir","phx_reply",{"response":{"reason":"invalid tag"},"status":"error"}]"#
    );
    ws.push(Some("2"), "2", "bookmarks:tag:", "phx_join", json!({})).await;
    assert_eq!(ws.expect_frame().await, error_reply(Some("2"), "2", "bookmarks:tag:", "invalid tag"));
    // The socket lives on; the normalised spelling joins.
    ws.join("3", "bookmarks:tag:elixir").await;
}

#[tokio::test]
async fn unmatched_topics_are_answered_with_a_null_join_ref() {
    let app = spawn_app().await;
    let mut ws = app.ws("").await;
    ws.send_text(captured(r#"["6","6","nope:x","phx_join",{}]"#)).await;
    assert_eq!(
        ws.expect_text().await,
        captured(r#"[null,"6","nope:x","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]"#)
    );
    ws.send_text(captured(r#"["9","7","room:other","new_msg",{"body":"not joined"}]"#)).await;
    assert_eq!(
        ws.expect_text().await,
        captured(r#"[null,"7","room:other","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]"#)
    );
    // A real topic this socket has not joined.
    ws.push(Some("3"), "8", FIREHOSE, "ping", json!({})).await;
    assert_eq!(ws.expect_frame().await, error_reply(None, "8", FIREHOSE, "unmatched topic"));
    // debug:* exists only with Config::debug_topics.
    ws.push(Some("9"), "9", "debug:x", "phx_join", json!({})).await;
    assert_eq!(ws.expect_frame().await, error_reply(None, "9", "debug:x", "unmatched topic"));
}

#[tokio::test]
async fn rejoin_replies_first_then_closes_the_old_join_and_broadcasts_keep_flowing_once() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let mut ws = app.ws("").await;
    ws.join("1", FIREHOSE).await;
    ws.send_text(captured(r#"["10","10","bookmarks:firehose","phx_join",{}]"#)).await;
    assert_eq!(
        ws.expect_text().await,
        captured(r#"["10","10","bookmarks:firehose","phx_reply",{"response":{},"status":"ok"}]"#)
    );
    assert_eq!(ws.expect_text().await, captured(r#"["1","1","bookmarks:firehose","phx_close",{}]"#));

    // A push for the old join is stale and ignored: the next frame is the broadcast.
    ws.push(Some("1"), "11", FIREHOSE, "ping", json!({})).await;
    let data = bookmark(&app, &alice, "after rejoin", &[]).await;
    let frame = ws.expect_frame().await;
    assert_event(&broadcast_payload(&frame, FIREHOSE, "bookmark_created"), &data, 1);
    // Exactly once: no second subscription survived the rejoin.
    ws.expect_silence(200).await;
    // The new join answers.
    ws.push(Some("10"), "12", FIREHOSE, "ping", json!({})).await;
    assert_eq!(ws.expect_frame().await, ok_reply(Some("10"), "12", FIREHOSE));
}

#[tokio::test]
async fn a_rejoin_with_the_same_join_ref_gets_no_close_that_would_end_it() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let mut ws = app.ws("").await;
    ws.join("1", FIREHOSE).await;
    // As a client that reuses its join_ref does after a gap notice: the same join again.
    ws.push(Some("1"), "2", FIREHOSE, "phx_join", json!({})).await;
    assert_eq!(ws.expect_frame().await, ok_reply(Some("1"), "2", FIREHOSE));
    // No phx_close for "1" (it is the live join): the next frame is the broadcast, once.
    let data = bookmark(&app, &alice, "after the same-ref rejoin", &[]).await;
    let frame = ws.expect_frame().await;
    assert_event(&broadcast_payload(&frame, FIREHOSE, "bookmark_created"), &data, 1);
    ws.expect_silence(200).await;
}

#[tokio::test]
async fn the_101st_channel_is_refused() {
    let app = spawn_app().await;
    // Signed in: anonymous sockets have a smaller limit (`anonymous_sockets_…` in abuse.rs).
    let carol = app.create_user("carol").await;
    let mut ws = app.ws(&format!("&token={}", carol.token)).await;
    for i in 1..=99 {
        ws.join(&i.to_string(), &format!("bookmarks:tag:t{i}")).await;
    }
    ws.send_text(captured(r#"["100","100","bookmarks:tag:t100","phx_join",{}]"#)).await;
    assert_eq!(
        ws.expect_text().await,
        captured(r#"["100","100","bookmarks:tag:t100","phx_reply",{"response":{},"status":"ok"}]"#)
    );
    ws.send_text(captured(r#"["101","101","bookmarks:tag:t101","phx_join",{}]"#)).await;
    assert_eq!(
        ws.expect_text().await,
        captured(
            r#"["101","101","bookmarks:tag:t101","phx_reply",{"response":{"reason":"too many channels joined"},"status":"error"}]"#
        )
    );
    // Rejoining an already joined topic does not count as another channel.
    ws.join("102", "bookmarks:tag:t50").await;
    assert_eq!(ws.expect_frame().await, json!(["50", "50", "bookmarks:tag:t50", "phx_close", {}]));
    // Leaving one frees a slot.
    ws.push(Some("1"), "103", "bookmarks:tag:t1", "phx_leave", json!({})).await;
    assert_eq!(ws.expect_frame().await, ok_reply(Some("1"), "103", "bookmarks:tag:t1"));
    assert_eq!(ws.expect_frame().await, json!(["1", "1", "bookmarks:tag:t1", "phx_close", {}]));
    ws.join("104", "bookmarks:tag:t101").await;
}

#[tokio::test]
async fn leave_replies_ok_then_closes_and_stops_broadcasts() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let mut ws = app.ws("").await;
    let mut other = app.ws("").await;
    ws.join("1", FIREHOSE).await;
    other.join("1", FIREHOSE).await;
    ws.send_text(r#"["1","2","bookmarks:firehose","phx_leave",{}]"#).await;
    assert_eq!(ws.expect_text().await, r#"["1","2","bookmarks:firehose","phx_reply",{"response":{},"status":"ok"}]"#);
    assert_eq!(ws.expect_text().await, r#"["1","1","bookmarks:firehose","phx_close",{}]"#);

    let data = bookmark(&app, &alice, "after leave", &[]).await;
    // Delivered to the socket still joined, so it has been published...
    assert_event(&broadcast_payload(&other.expect_frame().await, FIREHOSE, "bookmark_created"), &data, 1);
    // ...and not to the one that left.
    ws.expect_silence(200).await;
    ws.push(Some("1"), "3", FIREHOSE, "ping", json!({})).await;
    assert_eq!(ws.expect_frame().await, error_reply(None, "3", FIREHOSE, "unmatched topic"));
}

#[tokio::test]
async fn stale_join_refs_are_ignored_and_null_join_refs_accepted() {
    let app = spawn_app().await;
    let mut ws = app.ws("").await;
    ws.join("1", FIREHOSE).await;
    ws.push(Some("2"), "3", FIREHOSE, "ping", json!({})).await;
    ws.expect_silence(200).await;
    ws.push(None, "4", FIREHOSE, "ping", json!({})).await;
    assert_eq!(ws.expect_frame().await, ok_reply(Some("1"), "4", FIREHOSE));
    ws.push(None, "5", FIREHOSE, "nope", json!({})).await;
    assert_eq!(ws.expect_frame().await, error_reply(Some("1"), "5", FIREHOSE, "unknown event"));
    ws.push(Some("1"), "6", FIREHOSE, "nope", json!({})).await;
    assert_eq!(ws.expect_frame().await, error_reply(Some("1"), "6", FIREHOSE, "unknown event"));
}

#[tokio::test]
async fn a_failing_channel_gets_phx_error_and_the_socket_lives_on() {
    let app = spawn_app_with(|c| c.debug_topics = true).await;
    let alice = app.create_user("alice").await;
    let mut ws = app.ws("").await;
    ws.join("1", "debug:x").await;
    ws.join("2", FIREHOSE).await;
    ws.push(Some("1"), "3", "debug:x", "ping", json!({})).await;
    assert_eq!(ws.expect_frame().await, ok_reply(Some("1"), "3", "debug:x"));

    ws.push(Some("1"), "4", "debug:x", "crash", json!({})).await;
    assert_eq!(ws.expect_text().await, r#"["1","1","debug:x","phx_error",{}]"#);

    ws.heartbeat("5").await;
    let data = bookmark(&app, &alice, "still flowing", &[]).await;
    assert_event(&broadcast_payload(&ws.expect_frame().await, FIREHOSE, "bookmark_created"), &data, 1);
    // The failed channel is gone; the client may rejoin it.
    ws.push(Some("1"), "6", "debug:x", "ping", json!({})).await;
    assert_eq!(ws.expect_frame().await, error_reply(None, "6", "debug:x", "unmatched topic"));
    ws.join("7", "debug:x").await;
    assert_eq!(app.metric("firehose_channel_crashes_total").await, Some(1.0));
}

// ---- malformed input -------------------------------------------------------------------

#[tokio::test]
async fn non_json_text_closes_the_socket_with_1011_and_the_server_serves_on() {
    let app = spawn_app().await;
    let mut bystander = app.ws("").await;
    bystander.join("1", FIREHOSE).await;
    let mut ws = app.ws("").await;
    ws.send_text(captured("this is not json")).await;
    assert_eq!(ws.expect_close().await, 1011);
    bystander.heartbeat("2").await;
    app.ws("").await.heartbeat("1").await;
}

#[tokio::test]
async fn json_that_is_not_a_frame_gets_an_error_reply_when_a_ref_is_readable() {
    let app = spawn_app().await;
    let mut ws = app.ws("").await;
    ws.send_text(r#"["1","2","t"]"#).await;
    assert_eq!(ws.expect_frame().await, error_reply(Some("1"), "2", "t", "malformed message"));
    ws.send_text(r#"[null,"3","phoenix",42,{}]"#).await;
    assert_eq!(ws.expect_frame().await, error_reply(None, "3", "phoenix", "malformed message"));

    // A payload that is not an object.
    ws.send_text(r#"["4","5","bookmarks:firehose","phx_join",[]]"#).await;
    let reply = ws.expect_frame().await;
    assert_eq!(head(&reply), json!(["4", "5", FIREHOSE, "phx_reply"]), "{reply}");
    assert_eq!(reply[4]["status"], "error", "{reply}");
    assert!(reply[4]["response"]["reason"].as_str().is_some_and(|r| !r.is_empty()), "{reply}");
    // It did not join.
    ws.push(None, "6", FIREHOSE, "ping", json!({})).await;
    assert_eq!(ws.expect_frame().await, error_reply(None, "6", FIREHOSE, "unmatched topic"));

    ws.heartbeat("7").await;
    // JSON without any readable ref cannot be answered: closed, not crashed.
    ws.send_text(r#"{"not":"a frame"}"#).await;
    assert_ne!(ws.expect_close().await, 1000);
    assert_eq!(app.metric("firehose_bad_frames_total").await, Some(3.0));
}

#[tokio::test]
async fn binary_pushes_are_decoded_and_garbage_binary_closes_the_socket() {
    let app = spawn_app().await;
    let mut ws = app.ws("").await;
    ws.send_binary(binary_push("1", "2", FIREHOSE, "ping", &[1, 2, 3])).await;
    assert_eq!(ws.expect_frame().await, error_reply(None, "2", FIREHOSE, "unmatched topic"));

    ws.join("3", FIREHOSE).await;
    ws.send_binary(binary_push("3", "4", FIREHOSE, "ping", &[0xff])).await;
    let reply = ws.expect_frame().await;
    assert_eq!(head(&reply), json!(["3", "4", FIREHOSE, "phx_reply"]), "{reply}");
    assert_eq!(reply[4]["status"], "error", "{reply}");

    ws.send_binary(vec![9, 9, 9]).await;
    assert_ne!(ws.expect_close().await, 1000);

    let mut truncated = app.ws("").await;
    truncated.send_binary(vec![0, 5, 5, 5, 5, b'a']).await;
    assert_ne!(truncated.expect_close().await, 1000);

    app.ws("").await.heartbeat("1").await;
}

#[tokio::test]
async fn an_oversized_frame_closes_with_1009_and_the_server_serves_on() {
    let app = spawn_app().await;
    let mut ws = app.ws("").await;
    // Just under the 64 KiB limit is fine.
    let pad = "x".repeat(60 * 1024);
    ws.send_text(&format!(r#"["1","1","bookmarks:firehose","phx_join",{{"pad":"{pad}"}}]"#)).await;
    assert_eq!(ws.expect_frame().await, ok_reply(Some("1"), "1", FIREHOSE));

    let pad = "x".repeat(70 * 1024);
    ws.send_text(&format!(r#"[null,"2","phoenix","heartbeat",{{"pad":"{pad}"}}]"#)).await;
    assert_eq!(ws.expect_close().await, 1009);
    app.ws("").await.heartbeat("1").await;
}

// ---- timeouts and shutdown ---------------------------------------------------------------

#[tokio::test]
async fn an_idle_socket_is_closed_after_the_idle_timeout() {
    let app = spawn_app_with(|c| c.socket.idle_timeout = Duration::from_millis(300)).await;
    let mut ws = app.ws("").await;
    ws.join("1", FIREHOSE).await;
    let start = Instant::now();
    let code = ws.expect_close().await;
    let elapsed = start.elapsed();
    assert_ne!(code, 1000, "phoenix.js must reconnect");
    assert!(elapsed >= Duration::from_millis(250), "closed too early: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "closed too late: {elapsed:?}");
}

#[tokio::test]
async fn heartbeats_keep_a_socket_open_past_the_idle_timeout() {
    let app = spawn_app_with(|c| c.socket.idle_timeout = Duration::from_millis(300)).await;
    let mut ws = app.ws("").await;
    ws.join("1", FIREHOSE).await;
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut n = 0;
    while start.elapsed() < Duration::from_millis(1200) {
        tick.tick().await;
        n += 1;
        ws.heartbeat(&format!("hb{n}")).await;
    }
    // Still open well past the timeout; once the heartbeats stop it is closed.
    assert_ne!(ws.expect_close().await, 1000);
}

#[tokio::test]
async fn shutdown_closes_open_sockets_with_1012() {
    let mut app = spawn_app().await;
    let mut joined = app.ws("").await;
    joined.join("1", FIREHOSE).await;
    let mut bare = app.ws("").await;
    bare.heartbeat("1").await;
    let mut v1 = WsClient::connect(app.addr, "").await.expect("V1 upgrade");
    app.trigger_shutdown();
    assert_eq!(joined.expect_close().await, 1012);
    assert_eq!(bare.expect_close().await, 1012);
    assert_eq!(v1.expect_close().await, 1012);
    app.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_completes_even_with_a_socket_that_stopped_reading() {
    let mut app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let tags: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
    // Signed in, for more channels than an anonymous socket may join.
    let mut stuck = WsClient::connect_small_rcvbuf(app.addr, &format!("vsn=2.0.0&token={}", alice.token)).await;
    stuck.join("1", FIREHOSE).await;
    for (i, tag) in tags.iter().enumerate() {
        stuck.join(&(i + 2).to_string(), &tag_topic(tag)).await;
    }
    let mut listener = app.ws("").await;
    listener.join("1", FIREHOSE).await;
    // ~4.4 MB for the stuck socket: more than the kernel buffers hold, far less than
    // its outbox (1024 frames), so its writer blocks without it counting as slow.
    let description = "x".repeat(10_000);
    for i in 0..40 {
        app.create_bookmark(
            &alice,
            json!({"title": format!("b{i}"), "url": "https://example.com/", "description": description, "tags": tags}),
        )
        .await;
        listener.expect_frame().await;
    }
    assert_eq!(app.metric("firehose_slow_consumer_closes_total").await, Some(0.0));
    app.trigger_shutdown();
    assert_eq!(listener.expect_close().await, 1012);
    app.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_closed_and_counted_while_others_get_every_event() {
    // Room for a whole bookmark's burst (eleven frames) but not for a backlog.
    let app = spawn_app_with(|c| c.socket.outbox_capacity = 32).await;
    let alice = app.create_user("alice").await;
    let tags: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
    let mut topics = vec![FIREHOSE.to_owned()];
    topics.extend(tags.iter().map(|t| tag_topic(t)));

    // Two sockets on the same eleven topics: one reads, the other never reads again
    // after its joins (and has a tiny kernel receive buffer).
    // Signed in, for more channels than an anonymous socket may join.
    let mut slow = WsClient::connect_small_rcvbuf(app.addr, &format!("vsn=2.0.0&token={}", alice.token)).await;
    let mut listener = app.ws(&format!("&token={}", alice.token)).await;
    for (i, topic) in topics.iter().enumerate() {
        slow.join(&(i + 1).to_string(), topic).await;
        listener.join(&(i + 1).to_string(), topic).await;
    }

    // ~10 KiB per frame, eleven frames per bookmark.
    let description = "x".repeat(10_000);
    let mut created: u64 = 0;
    let mut before_close = None;
    while created < before_close.map_or(u64::MAX, |n| n + 5) {
        assert!(created < 2000, "the slow consumer was never closed");
        let data = app
            .create_bookmark(
                &alice,
                json!({"title": format!("b{created}"), "url": "https://example.com/", "description": description,
                       "tags": tags}),
            )
            .await;
        created += 1;
        // The reading socket gets every event on every topic, each topic's seq contiguous.
        for topic in &topics {
            let frame = listener.expect_frame().await;
            assert_event(&broadcast_payload(&frame, topic, "bookmark_created"), &data, created);
        }
        if before_close.is_none() && app.metric("firehose_slow_consumer_closes_total").await.unwrap_or(0.0) >= 1.0 {
            before_close = Some(created);
        }
    }
    let before_close = before_close.unwrap();
    assert!(before_close > 1, "closed on the first burst, which fits in the outbox");
    listener.expect_silence(100).await;
    // The slow socket was closed: whatever it had buffered, then no clean close.
    let end = slow.drain_until_end(Duration::from_secs(10)).await;
    assert_ne!(end, Some(1000), "a slow consumer must not be closed with 1000");
    let text = app.metrics().await;
    assert_eq!(metric_value(&text, "firehose_slow_consumer_closes_total"), Some(1.0), "{text}");
}

// ---- serializers and the upgrade ---------------------------------------------------------

#[tokio::test]
async fn v1_sockets_get_objects_without_join_ref() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    for query in ["vsn=1.0.0", ""] {
        let mut ws = WsClient::connect(app.addr, query).await.expect("V1 upgrade");
        ws.send_text(captured(r#"{"topic":"bookmarks:firehose","event":"phx_join","payload":{},"ref":"1"}"#)).await;
        assert_eq!(
            ws.expect_text().await,
            captured(
                r#"{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"1","topic":"bookmarks:firehose"}"#
            )
        );
        ws.send_text(captured(r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"2"}"#)).await;
        assert_eq!(
            ws.expect_text().await,
            captured(r#"{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"2","topic":"phoenix"}"#)
        );
        // A join_ref from the client is never echoed.
        ws.send_text(r#"{"topic":"bookmarks:tag:web","event":"phx_join","payload":{},"ref":"3","join_ref":"3"}"#).await;
        assert_eq!(
            ws.expect_text().await,
            r#"{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"3","topic":"bookmarks:tag:web"}"#
        );
        let data = bookmark(&app, &alice, "v1", &[]).await;
        let text = ws.expect_text().await;
        assert!(text.starts_with(r#"{"event":"bookmark_created","payload":{"#), "{text}");
        assert!(text.ends_with(r#","ref":null,"topic":"bookmarks:firehose"}"#), "{text}");
        let value: Value = serde_json::from_str(&text).unwrap();
        let mut keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["event", "payload", "ref", "topic"]);
        let seq = if query.is_empty() { 2 } else { 1 };
        assert_event(&value["payload"], &data, seq);
    }
}

#[tokio::test]
async fn the_upgrade_negotiates_vsn_and_authenticates_before_upgrading() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    assert_eq!(http_status(WsClient::connect(app.addr, "vsn=3.0.0").await), 400);
    assert_eq!(http_status(WsClient::connect(app.addr, "vsn=2.0.0&token=garbage").await), 403);

    let mut ws = WsClient::connect(app.addr, &format!("vsn=2.0.0&token={}", alice.token)).await.expect("token ok");
    ws.heartbeat("1").await;

    let with_protocol = |value: String| {
        let mut req = WsClient::request(app.addr, "vsn=2.0.0");
        req.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_str(&value).unwrap());
        req
    };
    for encoded in [URL_SAFE_NO_PAD.encode(&alice.token), STANDARD.encode(&alice.token)] {
        let req = with_protocol(format!("phoenix, base64url.bearer.phx.{encoded}"));
        let mut ws = WsClient::connect_request(app.addr, req).await.expect("bearer subprotocol ok");
        assert_eq!(ws.response.headers().get("sec-websocket-protocol").unwrap(), "phoenix");
        ws.join("1", FIREHOSE).await;
    }
    let req = with_protocol(format!("phoenix, base64url.bearer.phx.{}", URL_SAFE_NO_PAD.encode("garbage")));
    assert_eq!(http_status(WsClient::connect_request(app.addr, req).await), 403);

    // Not a WebSocket request at all.
    assert_eq!(app.get("/socket/websocket?vsn=2.0.0").await.status(), 400);
    assert_eq!(app.metric("firehose_sockets_refused_total").await, Some(4.0));
}

#[tokio::test]
async fn connects_past_max_connections_are_refused_with_503() {
    let app = spawn_app_with(|c| c.connections.max_connections = Some(1)).await;
    let mut first = app.ws("").await;
    first.heartbeat("1").await;
    assert_eq!(http_status(WsClient::connect(app.addr, "vsn=2.0.0").await), 503);
    first.close().await;
    // The slot frees once the server has finished with the first socket.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match WsClient::connect(app.addr, "vsn=2.0.0").await {
            Ok(mut ws) => break ws.heartbeat("1").await,
            Err(tungstenite::Error::Http(resp)) if resp.status() == 503 && Instant::now() < deadline => {
                tokio::task::yield_now().await;
            }
            Err(err) => panic!("unexpected refusal: {err:?}"),
        }
    }
}

// ---- what the broadcasts carry -------------------------------------------------------------

#[tokio::test]
async fn broadcasts_carry_the_bookmark_with_a_per_topic_seq() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let mut ws = app.ws("").await;
    ws.join("1", FIREHOSE).await;
    ws.join("2", &tag_topic("rust")).await;
    ws.join("3", &tag_topic("web")).await;

    let a = app
        .create_bookmark(
            &alice,
            json!({"title": "A", "url": "https://a.example/", "description": "first", "tags": [" Rust", "WEB", "rust"]}),
        )
        .await;
    assert_eq!(a["tags"], json!(["rust", "web"]));
    assert_eq!(a["user"], json!({"id": alice.id, "username": alice.username}));
    assert_event(&broadcast_payload(&ws.expect_frame().await, FIREHOSE, "bookmark_created"), &a, 1);
    assert_event(&broadcast_payload(&ws.expect_frame().await, &tag_topic("rust"), "bookmark_created"), &a, 1);
    assert_event(&broadcast_payload(&ws.expect_frame().await, &tag_topic("web"), "bookmark_created"), &a, 1);

    // Private: broadcast nowhere, so the next frames are the next public bookmark's.
    app.create_bookmark(
        &alice,
        json!({"title": "secret", "url": "https://s.example/", "public": false, "tags": ["rust"]}),
    )
    .await;
    let b = bookmark(&app, &bob, "B", &["web"]).await;
    assert_event(&broadcast_payload(&ws.expect_frame().await, FIREHOSE, "bookmark_created"), &b, 2);
    assert_event(&broadcast_payload(&ws.expect_frame().await, &tag_topic("web"), "bookmark_created"), &b, 2);
    let c = bookmark(&app, &bob, "C", &["rust"]).await;
    assert_event(&broadcast_payload(&ws.expect_frame().await, FIREHOSE, "bookmark_created"), &c, 3);
    assert_event(&broadcast_payload(&ws.expect_frame().await, &tag_topic("rust"), "bookmark_created"), &c, 2);

    // Delete reaches the firehose and each tag topic.
    let resp = app.delete_as(&format!("/api/bookmarks/{}", a["id"]), &alice.token).await;
    assert_eq!(resp.status(), 204);
    for (topic, seq) in [(FIREHOSE.to_owned(), 4), (tag_topic("rust"), 3), (tag_topic("web"), 3)] {
        let payload = broadcast_payload(&ws.expect_frame().await, &topic, "bookmark_deleted");
        assert_eq!(payload["id"], a["id"], "{payload}");
        assert_eq!(payload["seq"], json!(seq), "{payload}");
    }
    ws.expect_silence(150).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_replies_precede_broadcasts_and_each_subscriber_sees_contiguous_seqs() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let writer = {
        let http = app.http.clone();
        let url = app.url("/api/bookmarks");
        let token = alice.token.clone();
        tokio::spawn(async move {
            for i in 0..60 {
                let body = json!({"bookmark": {"title": format!("c{i}"), "url": "https://e.com/"}});
                let resp = http.post(&url).bearer_auth(&token).json(&body).send().await.unwrap();
                assert_eq!(resp.status(), 201);
            }
        })
    };
    // Sockets join while bookmarks are being published.
    let mut sockets = Vec::new();
    for _ in 0..8 {
        let mut ws = app.ws("").await;
        ws.push(Some("1"), "1", FIREHOSE, "phx_join", json!({})).await;
        sockets.push(ws);
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    for mut ws in sockets {
        assert_eq!(ws.expect_frame().await, ok_reply(Some("1"), "1", FIREHOSE), "the join reply comes first");
        let mut last: Option<u64> = None;
        // Everything published after the join, without a gap, up to the last one.
        while last != Some(60) {
            let frame = ws.expect_frame().await;
            let seq = broadcast_payload(&frame, FIREHOSE, "bookmark_created")["seq"].as_u64().unwrap();
            if let Some(last) = last {
                assert_eq!(seq, last + 1, "gap or reordering");
            }
            last = Some(seq);
        }
        ws.expect_silence(20).await;
    }
}
