//! Chat rooms end to end: the rooms API and its permissions, `rooms:lobby`, the
//! `room:<slug>` channel (history, messages, deletes, typing, presence), mentions on
//! `user:<id>`, bad input, and a room actor's crash and restart.

use std::time::Duration;

use firehose_app::config::Config;
use firehose_app::ratelimit::RateLimits;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::helpers::{TestApp, TestUser, WsClient, assert_error, spawn_app_with};

fn chat_config(config: &mut Config) {
    config.limits = RateLimits::off();
    config.debug_topics = true;
    config.chat.room_idle_timeout = Duration::from_millis(300);
}

async fn app() -> TestApp {
    spawn_app_with(chat_config).await
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    user: &TestUser,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(&user.token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.expect("request")
}

/// Creates a room as `user`; asserts 201 and returns `data`.
async fn create_room(app: &TestApp, user: &TestUser, fields: Value) -> Value {
    let resp = app.post_json("/api/rooms", Some(&user.token), &json!({ "room": fields })).await;
    let status = resp.status();
    let body: Value = resp.json().await.expect("room JSON");
    assert_eq!(status, 201, "create room: {body}");
    body["data"].clone()
}

async fn ws_as(app: &TestApp, user: &TestUser) -> WsClient {
    app.ws(&format!("&token={}", user.token)).await
}

/// Joins `topic`; asserts an ok reply and returns its response.
async fn join_ok(ws: &mut WsClient, jr: &str, topic: &str) -> Value {
    ws.push(Some(jr), jr, topic, "phx_join", json!({})).await;
    let reply = ws.expect_frame().await;
    assert_eq!(reply[3], "phx_reply", "{reply}");
    assert_eq!(reply[4]["status"], "ok", "join {topic}: {reply}");
    reply[4]["response"].clone()
}

/// Joins a room: the reply's response, then the `presence_state` that follows it.
async fn join_room(ws: &mut WsClient, jr: &str, slug: &str) -> (Value, Value) {
    let topic = format!("room:{slug}");
    let response = join_ok(ws, jr, &topic).await;
    let state = ws.expect_frame().await;
    assert_eq!(state[3], "presence_state", "the frame after the join reply: {state}");
    assert_eq!(state[0], jr, "presence_state carries the join ref");
    (response, state[4].clone())
}

async fn join_error(ws: &mut WsClient, jr: &str, topic: &str) -> Value {
    ws.push(Some(jr), jr, topic, "phx_join", json!({})).await;
    let reply = ws.expect_frame().await;
    assert_eq!(reply[4]["status"], "error", "join {topic}: {reply}");
    reply[4]["response"].clone()
}

/// Pushes `event` and waits for its reply (skipping broadcasts); `(status, response)`.
async fn call(ws: &mut WsClient, jr: &str, msg_ref: &str, topic: &str, event: &str, payload: Value) -> (String, Value) {
    ws.push(Some(jr), msg_ref, topic, event, payload).await;
    loop {
        let frame = ws.expect_frame().await;
        if frame[3] == "phx_reply" && frame[1] == msg_ref {
            return (frame[4]["status"].as_str().unwrap_or_default().to_owned(), frame[4]["response"].clone());
        }
    }
}

/// The next frame carrying `event`, skipping others (e.g. presence diffs).
async fn next_event(ws: &mut WsClient, event: &str) -> Value {
    loop {
        let frame = ws.expect_frame().await;
        if frame[3] == event {
            return frame;
        }
    }
}

/// Frames arriving within `ms`.
async fn frames_within(ws: &mut WsClient, ms: u64) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_millis(ms);
    let mut frames = Vec::new();
    while let Ok(text) = tokio::time::timeout_at(deadline, ws.expect_text()).await {
        frames.push(serde_json::from_str(&text).expect("JSON frame"));
    }
    frames
}

#[tokio::test]
async fn rooms_api_permissions_and_lobby_events() {
    let app = app().await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;

    let mut anon = app.ws("").await;
    assert_eq!(join_error(&mut anon, "1", "rooms:lobby").await, json!({"reason": "unauthorized"}));
    let mut lobby = ws_as(&app, &bob).await;
    join_ok(&mut lobby, "1", "rooms:lobby").await;

    // Created: slug derived from the name; a private room never reaches the lobby.
    let secret = create_room(&app, &alice, json!({"name": "Secret plans", "private": true})).await;
    assert_eq!(secret["slug"], "secret-plans");
    let room = create_room(&app, &alice, json!({"name": "General Chat!", "description": "<b>hi</b>"})).await;
    assert_eq!((room["slug"].as_str(), room["role"].as_str()), (Some("general-chat"), Some("admin")));
    let created = lobby.expect_frame().await;
    assert_eq!(created[3], "room_created", "{created}");
    assert_eq!(created[4]["slug"], "general-chat");
    assert_eq!(created[4]["description"], "<b>hi</b>");
    assert!(created[4]["seq"].as_u64().is_some());

    // Slugs: taken → 409, malformed → 422, underivable → 422.
    let dup =
        app.post_json("/api/rooms", Some(&bob.token), &json!({"room": {"name": "x", "slug": "general-chat"}})).await;
    assert_eq!(assert_error(dup, 409).await["fields"], json!({"slug": ["has already been taken"]}));
    let bad = app.post_json("/api/rooms", Some(&bob.token), &json!({"room": {"name": "x", "slug": "Bad Slug"}})).await;
    assert_error(bad, 422).await;
    let none = app.post_json("/api/rooms", Some(&bob.token), &json!({"room": {"name": "★★★"}})).await;
    assert_error(none, 422).await;
    assert_error(app.post_json("/api/rooms", None, &json!({"room": {"name": "anon"}})).await, 401).await;

    // Private rooms are invisible to non-members.
    assert_error(app.get_as("/api/rooms/secret-plans", &bob.token).await, 404).await;
    let list: Value = app.get_as("/api/rooms", &bob.token).await.json().await.unwrap();
    let slugs: Vec<&str> = list["data"].as_array().unwrap().iter().filter_map(|r| r["slug"].as_str()).collect();
    assert_eq!(slugs, ["general-chat"]);

    // Only admins update, delete and invite.
    let patch =
        send(&app, reqwest::Method::PATCH, "/api/rooms/general-chat", &bob, Some(json!({"name": "Mine"}))).await;
    assert_error(patch, 403).await;
    let del = send(&app, reqwest::Method::DELETE, "/api/rooms/general-chat", &bob, None).await;
    assert_error(del, 403).await;
    let invite =
        send(&app, reqwest::Method::POST, "/api/rooms/secret-plans/invites", &bob, Some(json!({"username": "alice"})))
            .await;
    assert_error(invite, 404).await;
    let patch =
        send(&app, reqwest::Method::PATCH, "/api/rooms/general-chat", &alice, Some(json!({"name": "General"}))).await;
    assert_eq!(patch.status(), 200);
    let updated = lobby.expect_frame().await;
    assert_eq!((updated[3].as_str(), updated[4]["name"].as_str()), (Some("room_updated"), Some("General")));
    let patch =
        send(&app, reqwest::Method::PATCH, "/api/rooms/secret-plans", &alice, Some(json!({"name": "S2"}))).await;
    assert_eq!(patch.status(), 200);

    // Membership: join a public room, be invited to a private one.
    let joined = send(&app, reqwest::Method::POST, "/api/rooms/general-chat/join", &bob, None).await;
    assert_eq!(joined.status(), 201);
    // Room lists keep member counts live: a public room's new count reaches the lobby.
    let members = lobby.expect_frame().await;
    assert_eq!((members[3].as_str(), members[4]["slug"].as_str()), (Some("room_members"), Some("general-chat")));
    assert_eq!(members[4]["members"], 2);
    let join_private = send(&app, reqwest::Method::POST, "/api/rooms/secret-plans/join", &bob, None).await;
    assert_error(join_private, 404).await;
    let invite =
        send(&app, reqwest::Method::POST, "/api/rooms/secret-plans/invites", &alice, Some(json!({"username": "bob"})))
            .await;
    assert_eq!(invite.status(), 201);
    let members: Value = app.get_as("/api/rooms/secret-plans/members", &bob.token).await.json().await.unwrap();
    let names: Vec<&str> =
        members["data"].as_array().unwrap().iter().filter_map(|m| m["user"]["username"].as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(members["data"][0]["role"], "admin");

    let del = send(&app, reqwest::Method::DELETE, "/api/rooms/general-chat", &alice, None).await;
    assert_eq!(del.status(), 204);
    let deleted = lobby.expect_frame().await;
    assert_eq!((deleted[3].as_str(), deleted[4]["slug"].as_str()), (Some("room_deleted"), Some("general-chat")));
    let del = send(&app, reqwest::Method::DELETE, "/api/rooms/secret-plans", &alice, None).await;
    assert_eq!(del.status(), 204);
    lobby.expect_silence(200).await;
    assert_error(app.get_as("/api/rooms/general-chat", &alice.token).await, 404).await;
}

#[tokio::test]
async fn join_reply_holds_the_last_50_messages_and_history_pages_back() {
    let app = app().await;
    let alice = app.create_user("alice").await;
    create_room(&app, &alice, json!({"name": "busy"})).await;
    let mut ws = ws_as(&app, &alice).await;
    join_room(&mut ws, "1", "busy").await;
    let mut ids = Vec::new();
    for i in 1..=60 {
        let (status, response) =
            call(&mut ws, "1", &format!("m{i}"), "room:busy", "new_msg", json!({"body": format!("message {i}")})).await;
        assert_eq!(status, "ok", "{response}");
        ids.push(response["id"].as_i64().expect("id"));
    }

    let mut other = ws_as(&app, &alice).await;
    let (response, _) = join_room(&mut other, "7", "busy").await;
    let messages = response["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 50);
    let got: Vec<i64> = messages.iter().map(|m| m["id"].as_i64().unwrap()).collect();
    assert_eq!(got, ids[10..]);
    assert_eq!(messages[0]["body"], "message 11");
    assert_eq!(messages[49]["user"], json!({"id": alice.id, "username": "alice"}));

    let (status, page) = call(&mut other, "7", "h1", "room:busy", "history", json!({"before": ids[10]})).await;
    assert_eq!(status, "ok");
    let older: Vec<i64> = page["messages"].as_array().unwrap().iter().map(|m| m["id"].as_i64().unwrap()).collect();
    assert_eq!(older, ids[..10]);
    let (status, page) = call(&mut other, "7", "h2", "room:busy", "history", json!({"before": ids[0]})).await;
    assert_eq!((status.as_str(), page["messages"].as_array().map(Vec::len)), ("ok", Some(0)));
    let (status, err) = call(&mut other, "7", "h3", "room:busy", "history", json!({"before": "x"})).await;
    assert_eq!(status, "error", "{err}");

    let (code, body) = app.get_json(&format!("/api/rooms/busy/messages?before={}&limit=5", ids[10])).await;
    assert_eq!(code, 200);
    let page: Vec<i64> = body["data"].as_array().unwrap().iter().map(|m| m["id"].as_i64().unwrap()).collect();
    assert_eq!(page, ids[5..10]);
    assert_eq!(body["next_before"], json!(ids[5]));
}

#[tokio::test]
async fn messages_are_broadcast_with_seq_and_deleted_by_author_or_admin_only() {
    let app = app().await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let carol = app.create_user("carol").await;
    create_room(&app, &alice, json!({"name": "lounge"})).await;
    let mut a = ws_as(&app, &alice).await;
    let mut b = ws_as(&app, &bob).await;
    let mut c = ws_as(&app, &carol).await;
    join_room(&mut a, "1", "lounge").await;
    join_room(&mut b, "1", "lounge").await;
    join_room(&mut c, "1", "lounge").await;

    let (status, reply) =
        call(&mut b, "1", "2", "room:lounge", "new_msg", json!({"body": "  hello <script>alert(1)</script> "})).await;
    assert_eq!(status, "ok");
    let id = reply["id"].as_i64().unwrap();
    let mut seqs = Vec::new();
    for ws in [&mut a, &mut b, &mut c] {
        let frame = next_event(ws, "new_message").await;
        assert_eq!(frame[0], Value::Null);
        let msg = &frame[4];
        assert_eq!(msg["id"], id);
        assert_eq!(msg["body"], "hello <script>alert(1)</script>", "stored verbatim, trimmed");
        assert_eq!(msg["user"], json!({"id": bob.id, "username": "bob"}));
        assert!(msg["inserted_at"].is_string());
        assert!(msg.get("attachment").is_none());
        seqs.push(msg["seq"].as_u64().expect("seq"));
    }
    assert!(seqs.windows(2).all(|w| w[0] == w[1]), "one broadcast, one seq: {seqs:?}");
    let (_, second) = call(&mut b, "1", "3", "room:lounge", "new_msg", json!({"body": "again"})).await;
    let frame = next_event(&mut a, "new_message").await;
    assert_eq!(frame[4]["seq"].as_u64(), Some(seqs[0] + 1));
    let second = second["id"].as_i64().unwrap();

    // Carol neither wrote it nor administers the room.
    let (status, err) = call(&mut c, "1", "4", "room:lounge", "delete_msg", json!({"id": id})).await;
    assert_eq!((status.as_str(), err), ("error", json!({"reason": "forbidden"})));
    // The author may.
    let (status, _) = call(&mut b, "1", "5", "room:lounge", "delete_msg", json!({"id": id})).await;
    assert_eq!(status, "ok");
    let frame = next_event(&mut c, "message_deleted").await;
    assert_eq!(frame[4]["id"], id);
    assert!(frame[4]["seq"].as_u64().is_some());
    // The admin may delete anyone's.
    let (status, _) = call(&mut a, "1", "6", "room:lounge", "delete_msg", json!({"id": second})).await;
    assert_eq!(status, "ok");
    let (status, err) = call(&mut a, "1", "7", "room:lounge", "delete_msg", json!({"id": second})).await;
    assert_eq!((status.as_str(), err), ("error", json!({"reason": "message not found"})));

    let mut late = ws_as(&app, &carol).await;
    let (response, _) = join_room(&mut late, "9", "lounge").await;
    assert_eq!(response, json!({"messages": []}));
}

#[tokio::test]
async fn bad_pushes_get_error_replies_and_the_room_keeps_serving() {
    let app = app().await;
    let alice = app.create_user("alice").await;
    create_room(&app, &alice, json!({"name": "edge"})).await;
    create_room(&app, &alice, json!({"name": "hidden", "private": true})).await;
    let mut a = ws_as(&app, &alice).await;
    join_room(&mut a, "1", "edge").await;

    let too_long = "x".repeat(4001);
    let cases = [
        ("new_msg", json!({"body": too_long}), "body is longer than 4000 characters"),
        ("new_msg", json!({"body": "   "}), "body can't be blank"),
        ("new_msg", json!({"body": 42}), "body must be a string"),
        ("new_msg", json!({}), "body must be a string"),
        ("new_msg", json!({"body": "hi", "attachment_id": "1"}), "attachment_id must be a positive integer"),
        ("new_msg", json!({"body": "hi", "attachment_id": 999}), "attachment not found"),
        ("delete_msg", json!({"id": "1; DROP TABLE messages"}), "id must be a positive integer"),
        ("history", json!({"before": [1]}), "before must be a positive integer"),
        ("shout", json!({}), "unknown event"),
    ];
    for (i, (event, payload, reason)) in cases.into_iter().enumerate() {
        let (status, response) = call(&mut a, "1", &format!("b{i}"), "room:edge", event, payload).await;
        assert_eq!((status.as_str(), response), ("error", json!({"reason": reason})), "{event}");
    }
    let exactly = "é".repeat(4000);
    let (status, _) = call(&mut a, "1", "ok1", "room:edge", "new_msg", json!({"body": exactly})).await;
    assert_eq!(status, "ok");

    // Anonymous readers may join a public room but not write; private rooms refuse them.
    let mut anon = app.ws("").await;
    let (response, _) = join_room(&mut anon, "1", "edge").await;
    assert_eq!(response["messages"][0]["body"].as_str().map(|b| b.chars().count()), Some(4000));
    let (status, response) = call(&mut anon, "1", "2", "room:edge", "new_msg", json!({"body": "hi"})).await;
    assert_eq!((status.as_str(), response), ("error", json!({"reason": "unauthorized"})));
    assert_eq!(join_error(&mut anon, "3", "room:hidden").await, json!({"reason": "unauthorized"}));
    assert_eq!(join_error(&mut anon, "4", "room:nope").await, json!({"reason": "unauthorized"}));
    assert_eq!(join_error(&mut anon, "5", "room:Bad!").await, json!({"reason": "invalid topic"}));
    let bob = app.create_user("bob").await;
    let mut b = ws_as(&app, &bob).await;
    assert_eq!(join_error(&mut b, "1", "room:hidden").await, json!({"reason": "unauthorized"}));
}

#[tokio::test]
async fn typing_reaches_the_others_and_stops_after_two_seconds_or_on_send() {
    let app = app().await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    create_room(&app, &alice, json!({"name": "typing"})).await;
    let mut a = ws_as(&app, &alice).await;
    let mut b = ws_as(&app, &bob).await;
    join_room(&mut a, "1", "typing").await;
    join_room(&mut b, "1", "typing").await;
    let _ = next_event(&mut a, "presence_diff").await; // bob's join

    let started = Instant::now();
    let (status, _) = call(&mut a, "1", "t1", "room:typing", "typing", json!({})).await;
    assert_eq!(status, "ok");
    let typing = next_event(&mut b, "user_typing").await;
    assert_eq!(typing[4], json!({"user": {"id": alice.id, "username": "alice"}}));
    // Alice's presence meta says she is typing: an update diff with phx_ref_prev.
    let diff = next_event(&mut b, "presence_diff").await;
    let key = alice.id.to_string();
    let joined = &diff[4]["joins"][&key]["metas"][0];
    assert_eq!(joined["typing"], true);
    assert_eq!(joined["phx_ref_prev"], diff[4]["leaves"][&key]["metas"][0]["phx_ref"]);
    // Alice hears no user_typing about herself.
    let own: Vec<Value> = frames_within(&mut a, 300).await;
    assert!(own.iter().all(|f| f[3] != "user_typing"), "{own:?}");

    let stopped = next_event(&mut b, "user_stopped_typing").await;
    let after = started.elapsed();
    assert_eq!(stopped[4], json!({"user": {"id": alice.id, "username": "alice"}}));
    assert!(after >= Duration::from_millis(1900) && after < Duration::from_millis(3500), "{after:?}");
    let diff = next_event(&mut b, "presence_diff").await;
    assert_eq!(diff[4]["joins"][&key]["metas"][0]["typing"], false);

    // Sending a message stops typing at once.
    call(&mut a, "1", "t2", "room:typing", "typing", json!({})).await;
    next_event(&mut b, "user_typing").await;
    let sent = Instant::now();
    call(&mut a, "1", "t3", "room:typing", "new_msg", json!({"body": "done"})).await;
    next_event(&mut b, "new_message").await;
    next_event(&mut b, "user_stopped_typing").await;
    assert!(sent.elapsed() < Duration::from_millis(1000), "stopped on send, not by the timer");
}

#[tokio::test]
async fn presence_state_follows_the_join_reply_and_diffs_track_tabs() {
    let app = app().await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    create_room(&app, &alice, json!({"name": "present"})).await;
    let mut a = ws_as(&app, &alice).await;
    let (_, state) = join_room(&mut a, "1", "present").await;
    let key_a = alice.id.to_string();
    let metas = state[&key_a]["metas"].as_array().expect("alice's metas");
    assert_eq!(metas.len(), 1);
    assert_eq!(metas[0]["username"], "alice");
    assert_eq!(metas[0]["typing"], false);
    assert!(metas[0]["online_at"].is_i64());
    assert_eq!(metas[0]["phx_ref"].as_str().map(str::len), Some(16));

    // Bob in two tabs: two metas under one key.
    let mut b1 = ws_as(&app, &bob).await;
    let (_, state) = join_room(&mut b1, "1", "present").await;
    assert_eq!(state.as_object().map(|o| o.len()), Some(2));
    let key_b = bob.id.to_string();
    let diff = next_event(&mut a, "presence_diff").await;
    let tab1 = diff[4]["joins"][&key_b]["metas"][0]["phx_ref"].as_str().unwrap().to_owned();
    assert_eq!(tab1.len(), 16);
    assert_eq!(diff[4]["leaves"], json!({}));
    let mut b2 = ws_as(&app, &bob).await;
    let (_, state) = join_room(&mut b2, "2", "present").await;
    assert_eq!(state[&key_b]["metas"].as_array().map(Vec::len), Some(2));
    let diff = next_event(&mut a, "presence_diff").await;
    let tab2 = diff[4]["joins"][&key_b]["metas"][0]["phx_ref"].as_str().unwrap().to_owned();
    assert_ne!(tab1, tab2);

    // Leaving (phx_leave) and closing the socket each leave one meta.
    let (status, _) = call(&mut b1, "1", "9", "room:present", "phx_leave", json!({})).await;
    assert_eq!(status, "ok");
    let diff = next_event(&mut a, "presence_diff").await;
    assert_eq!(diff[4]["leaves"][&key_b]["metas"][0]["phx_ref"], tab1.as_str());
    assert_eq!(diff[4]["joins"], json!({}));
    b2.close().await;
    let diff = next_event(&mut a, "presence_diff").await;
    assert_eq!(diff[4]["leaves"][&key_b]["metas"][0]["phx_ref"], tab2.as_str());

    let mut c = ws_as(&app, &alice).await;
    let (_, state) = join_room(&mut c, "1", "present").await;
    assert_eq!(state.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()), Some(vec![key_a]));
}

#[tokio::test]
async fn mentions_notify_members_on_their_own_user_topic() {
    let app = app().await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let carol = app.create_user("carol").await;
    create_room(&app, &alice, json!({"name": "team", "private": true})).await;
    let invite =
        send(&app, reqwest::Method::POST, "/api/rooms/team/invites", &alice, Some(json!({"user_id": bob.id}))).await;
    assert_eq!(invite.status(), 201);

    let bob_topic = format!("user:{}", bob.id);
    let mut carol_ws = ws_as(&app, &carol).await;
    assert_eq!(join_error(&mut carol_ws, "1", &bob_topic).await, json!({"reason": "unauthorized"}));
    let mut anon = app.ws("").await;
    assert_eq!(join_error(&mut anon, "1", &bob_topic).await, json!({"reason": "unauthorized"}));
    let mut carol_feed = ws_as(&app, &carol).await;
    join_ok(&mut carol_feed, "1", &format!("user:{}", carol.id)).await;
    let mut bob_ws = ws_as(&app, &bob).await;
    join_ok(&mut bob_ws, "1", &bob_topic).await;

    let mut a = ws_as(&app, &alice).await;
    join_room(&mut a, "1", "team").await;
    // Carol is not a member: her mention notifies nobody.
    let (status, reply) =
        call(&mut a, "1", "2", "room:team", "new_msg", json!({"body": "hey @Bob and @carol, see me@alice"})).await;
    assert_eq!(status, "ok");
    let note = bob_ws.expect_frame().await;
    assert_eq!(note[3], "notification");
    assert_eq!(note[4]["type"], "mention");
    assert_eq!(note[4]["room"], "team");
    assert_eq!(note[4]["message_id"], reply["id"]);
    assert_eq!(note[4]["from"], json!({"id": alice.id, "username": "alice"}));
    carol_feed.expect_silence(300).await;
}

#[tokio::test]
async fn a_crashed_room_restarts_on_next_use_and_other_rooms_carry_on() {
    let app = app().await;
    let alice = app.create_user("alice").await;
    create_room(&app, &alice, json!({"name": "fragile"})).await;
    create_room(&app, &alice, json!({"name": "sturdy"})).await;
    let mut ws = ws_as(&app, &alice).await;
    join_room(&mut ws, "1", "fragile").await;
    join_room(&mut ws, "2", "sturdy").await;
    call(&mut ws, "1", "3", "room:fragile", "new_msg", json!({"body": "before"})).await;
    next_event(&mut ws, "new_message").await;
    let rooms = &app.state().rooms;
    assert!(rooms.is_running("fragile") && rooms.is_running("sturdy"));

    ws.push(Some("1"), "4", "room:fragile", "debug_crash", json!({})).await;
    let frames = [ws.expect_frame().await, ws.expect_frame().await];
    let error = frames.iter().find(|f| f[3] == "phx_error").expect("phx_error for the crashed room");
    assert_eq!(error[2], "room:fragile");
    let reply = frames.iter().find(|f| f[3] == "phx_reply").expect("the push's reply");
    assert_eq!(reply[4], json!({"response": {"reason": "room unavailable"}, "status": "error"}));
    assert!(!rooms.is_running("fragile"));

    // The other room never noticed.
    let (status, _) = call(&mut ws, "2", "5", "room:sturdy", "new_msg", json!({"body": "still here"})).await;
    assert_eq!(status, "ok");
    assert_eq!(next_event(&mut ws, "new_message").await[4]["body"], "still here");

    // Rejoining (what phoenix.js does after phx_error) starts the room again.
    // (A re-join of a joined topic: reply, `phx_close` of the old join, then the state.)
    let response = join_ok(&mut ws, "6", "room:fragile").await;
    assert_eq!(ws.expect_frame().await, json!(["1", "1", "room:fragile", "phx_close", {}]));
    let state = next_event(&mut ws, "presence_state").await[4].clone();
    assert_eq!(response["messages"][0]["body"], "before");
    assert_eq!(state[alice.id.to_string()]["metas"].as_array().map(Vec::len), Some(1));
    assert!(rooms.is_running("fragile"));
    let (status, _) = call(&mut ws, "6", "7", "room:fragile", "new_msg", json!({"body": "after"})).await;
    assert_eq!(status, "ok");
    assert_eq!(next_event(&mut ws, "new_message").await[4]["body"], "after");
}

#[tokio::test]
async fn an_idle_room_stops_and_starts_again_on_next_use() {
    let app = app().await;
    let alice = app.create_user("alice").await;
    create_room(&app, &alice, json!({"name": "quiet"})).await;
    let mut ws = ws_as(&app, &alice).await;
    join_room(&mut ws, "1", "quiet").await;
    let rooms = &app.state().rooms;
    assert!(rooms.is_running("quiet"));
    call(&mut ws, "1", "2", "room:quiet", "phx_leave", json!({})).await;
    assert_eq!(ws.expect_frame().await[3], "phx_close");
    let deadline = Instant::now() + Duration::from_secs(3);
    while rooms.is_running("quiet") {
        assert!(Instant::now() < deadline, "the idle room did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    join_room(&mut ws, "3", "quiet").await;
    assert!(rooms.is_running("quiet"));
}

#[tokio::test]
async fn leaving_a_private_room_closes_its_channel() {
    let app = app().await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    create_room(&app, &alice, json!({"name": "inner", "private": true})).await;
    let invite =
        send(&app, reqwest::Method::POST, "/api/rooms/inner/invites", &alice, Some(json!({"username": "bob"}))).await;
    assert_eq!(invite.status(), 201);
    let mut a = ws_as(&app, &alice).await;
    let mut b = ws_as(&app, &bob).await;
    join_room(&mut a, "1", "inner").await;
    join_room(&mut b, "1", "inner").await;
    next_event(&mut a, "presence_diff").await;

    let left = send(&app, reqwest::Method::POST, "/api/rooms/inner/leave", &bob, None).await;
    assert_eq!(left.status(), 204);
    assert_eq!(next_event(&mut b, "phx_close").await, json!(["1", "1", "room:inner", "phx_close", {}]));
    let diff = next_event(&mut a, "presence_diff").await;
    assert!(diff[4]["leaves"].get(bob.id.to_string()).is_some(), "{diff}");
    // The channel is gone (as in Phoenix after the server closed it): pushes are unmatched.
    for (msg_ref, event) in [("2", "new_msg"), ("3", "history")] {
        b.push(Some("1"), msg_ref, "room:inner", event, json!({"body": "still?"})).await;
        assert_eq!(b.expect_frame().await, crate::helpers::error_reply(None, msg_ref, "room:inner", "unmatched topic"));
    }
    assert_eq!(join_error(&mut b, "4", "room:inner").await, json!({"reason": "unauthorized"}));
}

#[tokio::test]
async fn a_message_may_attach_only_the_senders_own_upload() {
    let app = app().await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    create_room(&app, &alice, json!({"name": "files"})).await;
    let part = reqwest::multipart::Part::bytes(b"plain text notes\n".to_vec())
        .file_name("notes.txt")
        .mime_str("text/plain")
        .expect("mime");
    let resp = app
        .http
        .post(app.url("/api/uploads"))
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .bearer_auth(&bob.token)
        .send()
        .await
        .expect("upload");
    let body: Value = resp.json().await.expect("upload JSON");
    let upload_id = body["data"]["id"].as_i64().unwrap_or_else(|| panic!("upload id in {body}"));

    let mut a = ws_as(&app, &alice).await;
    let mut b = ws_as(&app, &bob).await;
    join_room(&mut a, "1", "files").await;
    join_room(&mut b, "1", "files").await;
    let (status, response) =
        call(&mut a, "1", "2", "room:files", "new_msg", json!({"body": "mine?", "attachment_id": upload_id})).await;
    assert_eq!((status.as_str(), response), ("error", json!({"reason": "attachment not found"})));
    let (status, _) =
        call(&mut b, "1", "2", "room:files", "new_msg", json!({"body": "notes", "attachment_id": upload_id})).await;
    assert_eq!(status, "ok");
    let msg = next_event(&mut a, "new_message").await;
    assert_eq!(msg[4]["attachment"]["id"], upload_id);
    assert_eq!(msg[4]["attachment"]["url"], body["data"]["url"]);
}

/// The push is answered `unmatched topic` with a null join ref: the topic is not joined.
async fn expect_unmatched(ws: &mut WsClient, jr: &str, msg_ref: &str, topic: &str) {
    ws.push(Some(jr), msg_ref, topic, "new_msg", json!({"body": "anyone?"})).await;
    assert_eq!(ws.expect_frame().await, crate::helpers::error_reply(None, msg_ref, topic, "unmatched topic"));
}

#[tokio::test]
async fn deleting_a_room_closes_every_channel_joined_to_it() {
    let app = app().await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    create_room(&app, &alice, json!({"name": "doomed"})).await;
    create_room(&app, &alice, json!({"name": "keeper"})).await;
    let mut a = ws_as(&app, &alice).await;
    let mut b = ws_as(&app, &bob).await;
    let mut anon = app.ws("").await;
    join_room(&mut a, "1", "doomed").await;
    join_room(&mut a, "2", "keeper").await;
    join_room(&mut b, "5", "doomed").await;
    join_room(&mut anon, "7", "doomed").await;
    assert_eq!(app.state().pubsub.subscriber_count("room:doomed"), 3);

    let del = send(&app, reqwest::Method::DELETE, "/api/rooms/doomed", &alice, None).await;
    assert_eq!(del.status(), 204);
    for (ws, jr) in [(&mut a, "1"), (&mut b, "5"), (&mut anon, "7")] {
        assert_eq!(next_event(ws, "room_deleted").await[4]["slug"], "doomed");
        assert_eq!(
            ws.expect_frame().await,
            json!([jr, jr, "room:doomed", "phx_close", {}]),
            "closed with its join ref"
        );
        expect_unmatched(ws, jr, "10", "room:doomed").await;
        // A phx_leave of the closed channel is unmatched as well.
        ws.push(Some(jr), "11", "room:doomed", "phx_leave", json!({})).await;
        assert_eq!(ws.expect_frame().await, crate::helpers::error_reply(None, "11", "room:doomed", "unmatched topic"));
    }
    assert_eq!(app.state().pubsub.subscriber_count("room:doomed"), 0, "every channel is unsubscribed");
    // Joining again is a fresh join (no phx_close of the old join), refused: no room.
    assert_eq!(join_error(&mut b, "12", "room:doomed").await, json!({"reason": "unauthorized"}));
    b.expect_silence(200).await;

    // The socket's other room carries on.
    let (status, _) = call(&mut a, "2", "13", "room:keeper", "new_msg", json!({"body": "still here"})).await;
    assert_eq!(status, "ok");
    assert_eq!(next_event(&mut a, "new_message").await[4]["body"], "still here");
}

#[tokio::test]
async fn a_room_turning_private_closes_the_channels_of_non_members() {
    let app = app().await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let carol = app.create_user("carol").await;
    create_room(&app, &alice, json!({"name": "plaza"})).await;
    let joined = send(&app, reqwest::Method::POST, "/api/rooms/plaza/join", &bob, None).await;
    assert_eq!(joined.status(), 201);
    let mut a = ws_as(&app, &alice).await;
    let mut b = ws_as(&app, &bob).await;
    let mut c = ws_as(&app, &carol).await;
    let mut anon = app.ws("").await;
    join_room(&mut a, "1", "plaza").await;
    join_room(&mut b, "2", "plaza").await;
    join_room(&mut c, "3", "plaza").await;
    join_room(&mut anon, "4", "plaza").await;

    let patch = send(&app, reqwest::Method::PATCH, "/api/rooms/plaza", &alice, Some(json!({"private": true}))).await;
    assert_eq!(patch.status(), 200);
    for (ws, jr) in [(&mut c, "3"), (&mut anon, "4")] {
        assert_eq!(next_event(ws, "phx_close").await, json!([jr, jr, "room:plaza", "phx_close", {}]));
        expect_unmatched(ws, jr, "10", "room:plaza").await;
        assert_eq!(join_error(ws, "11", "room:plaza").await, json!({"reason": "unauthorized"}));
    }
    assert_eq!(app.state().pubsub.subscriber_count("room:plaza"), 2, "only the members stay subscribed");

    // Members stay: they see carol leave, and keep talking.
    while next_event(&mut a, "presence_diff").await[4]["leaves"].get(carol.id.to_string()).is_none() {}
    let (status, _) = call(&mut a, "1", "12", "room:plaza", "new_msg", json!({"body": "members only now"})).await;
    assert_eq!(status, "ok");
    assert_eq!(next_event(&mut b, "new_message").await[4]["body"], "members only now");
    c.expect_silence(200).await;
}
