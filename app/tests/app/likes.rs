//! Likes over the socket (`likes:<id>`) and the JSON API: join replies per user,
//! `like_count` broadcasts that never carry anyone's `liked`, idempotent double likes
//! and unlikes, visibility of private bookmarks, ordering under concurrency, and the
//! per-user rate limits on likes and bookmark creation.

use std::time::Duration;

use firehose_app::ratelimit::{Rate, RateLimits};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, WsClient, assert_error, error_reply, spawn_app, spawn_app_with};

fn topic(bookmark_id: i64) -> String {
    format!("likes:{bookmark_id}")
}

async fn bookmark(app: &TestApp, owner: &TestUser, public: bool) -> i64 {
    let data = app
        .create_bookmark(owner, json!({"title": "Liked", "url": "https://example.com/liked", "public": public}))
        .await;
    data["id"].as_i64().expect("bookmark id")
}

/// A V2 socket signed in as `user`, or anonymous.
async fn socket(app: &TestApp, user: Option<&TestUser>) -> WsClient {
    match user {
        Some(user) => app.ws(&format!("&token={}", user.token)).await,
        None => app.ws("").await,
    }
}

/// Sends `phx_join` and returns the reply's `(status, response)`.
async fn join(ws: &mut WsClient, jr: &str, topic: &str) -> (String, Value) {
    ws.push(Some(jr), jr, topic, "phx_join", json!({})).await;
    reply_to(ws, Some(jr), jr, topic).await
}

/// The next frame, which must be the reply to `msg_ref`; returns `(status, response)`.
async fn reply_to(ws: &mut WsClient, jr: Option<&str>, msg_ref: &str, topic: &str) -> (String, Value) {
    let frame = ws.expect_frame().await;
    assert_eq!(frame[0], json!(jr), "join_ref of {frame}");
    assert_eq!(frame[1], json!(msg_ref), "ref of {frame}");
    assert_eq!(frame[2], json!(topic), "topic of {frame}");
    assert_eq!(frame[3], "phx_reply", "{frame}");
    (frame[4]["status"].as_str().expect("status").to_owned(), frame[4]["response"].clone())
}

/// Pushes `event` on a joined likes topic and returns the reply's `(status, response)`.
async fn push(ws: &mut WsClient, jr: &str, msg_ref: &str, topic: &str, event: &str) -> (String, Value) {
    ws.push(Some(jr), msg_ref, topic, event, json!({})).await;
    reply_to(ws, Some(jr), msg_ref, topic).await
}

fn ok(count: i64, liked: bool) -> (String, Value) {
    ("ok".to_owned(), json!({"count": count, "liked": liked}))
}

/// The exact `like_count` broadcast frame: no `liked` in it, for anyone.
fn like_count(bookmark_id: i64, count: i64, seq: u64) -> Value {
    json!([null, null, topic(bookmark_id), "like_count", {"bookmark_id": bookmark_id, "count": count, "seq": seq}])
}

async fn http_like(app: &TestApp, user: &TestUser, id: i64, like: bool) -> reqwest::Response {
    let url = app.url(&format!("/api/bookmarks/{id}/like"));
    let req = if like { app.http.post(url) } else { app.http.delete(url) };
    req.bearer_auth(&user.token).send().await.expect("like request")
}

/// Likes or unlikes over HTTP; asserts 200 and returns `data`.
async fn http_like_ok(app: &TestApp, user: &TestUser, id: i64, like: bool) -> Value {
    let resp = http_like(app, user, id, like).await;
    let status = resp.status();
    let body: Value = resp.json().await.expect("like JSON");
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

async fn likes_of(app: &TestApp, viewer: Option<&TestUser>, id: i64) -> (u16, Value) {
    let path = format!("/api/bookmarks/{id}/likes");
    let resp = match viewer {
        Some(v) => app.get_as(&path, &v.token).await,
        None => app.get(&path).await,
    };
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

fn data(id: i64, count: i64, liked: bool) -> Value {
    json!({"bookmark_id": id, "count": count, "liked": liked})
}

#[tokio::test]
async fn the_join_reply_gives_the_count_and_the_joining_users_own_liked() {
    let app = spawn_app().await;
    let owner = app.create_user("owner").await;
    let other = app.create_user("other").await;
    let id = bookmark(&app, &owner, true).await;
    let t = topic(id);

    let mut anon = socket(&app, None).await;
    assert_eq!(join(&mut anon, "1", &t).await, ok(0, false), "nobody likes it yet");

    http_like_ok(&app, &owner, id, true).await;
    let mut as_owner = socket(&app, Some(&owner)).await;
    let mut as_other = socket(&app, Some(&other)).await;
    let mut anon2 = socket(&app, None).await;
    assert_eq!(join(&mut as_owner, "1", &t).await, ok(1, true), "the owner liked it");
    assert_eq!(join(&mut as_other, "1", &t).await, ok(1, false), "another user did not");
    assert_eq!(join(&mut anon2, "1", &t).await, ok(1, false), "anonymous never likes");
    // The first anonymous socket was subscribed and saw the change as a count only.
    assert_eq!(anon.expect_frame().await, like_count(id, 1, 1));
}

#[tokio::test]
async fn a_like_pushed_on_the_socket_is_answered_and_broadcast_without_anyones_liked() {
    let app = spawn_app().await;
    let owner = app.create_user("owner").await;
    let liker = app.create_user("liker").await;
    let watcher = app.create_user("watcher").await;
    let id = bookmark(&app, &owner, true).await;
    let t = topic(id);
    let mut ws = socket(&app, Some(&liker)).await;
    let mut other = socket(&app, Some(&watcher)).await;
    assert_eq!(join(&mut ws, "1", &t).await, ok(0, false));
    assert_eq!(join(&mut other, "5", &t).await, ok(0, false));

    // The liker's reply holds its own `liked`; the broadcast, to both, only the count.
    assert_eq!(push(&mut ws, "1", "2", &t, "like").await, ok(1, true));
    assert_eq!(ws.expect_frame().await, like_count(id, 1, 1));
    assert_eq!(other.expect_frame().await, like_count(id, 1, 1), "exactly the count: no liked flag");

    // A double like changes nothing: the same answer, no broadcast.
    assert_eq!(push(&mut ws, "1", "3", &t, "like").await, ok(1, true));
    ws.expect_silence(300).await;
    other.expect_silence(0).await;

    // The watcher's own state is untouched by the liker's: it still does not like it.
    assert_eq!(push(&mut other, "5", "6", &t, "ping").await, ("ok".to_owned(), json!({})));
    let (status, body) = likes_of(&app, Some(&watcher), id).await;
    assert_eq!((status, &body["data"]), (200, &data(id, 1, false)));

    assert_eq!(push(&mut ws, "1", "4", &t, "unlike").await, ok(0, false));
    assert_eq!(ws.expect_frame().await, like_count(id, 0, 2));
    assert_eq!(other.expect_frame().await, like_count(id, 0, 2));

    // Unliking what is not liked: same answer, no broadcast, never an error.
    assert_eq!(push(&mut ws, "1", "5", &t, "unlike").await, ok(0, false));
    ws.expect_silence(300).await;
    other.expect_silence(0).await;

    assert_eq!(like_rows(&app).await, 0);
}

#[tokio::test]
async fn anonymous_sockets_may_watch_but_not_like_and_unknown_events_are_refused() {
    let app = spawn_app().await;
    let owner = app.create_user("owner").await;
    let id = bookmark(&app, &owner, true).await;
    let t = topic(id);
    let mut anon = socket(&app, None).await;
    assert_eq!(join(&mut anon, "1", &t).await, ok(0, false));
    for event in ["like", "unlike"] {
        let (status, response) = push(&mut anon, "1", "2", &t, event).await;
        assert_eq!((status.as_str(), response), ("error", json!({"reason": "unauthorized"})), "{event}");
    }
    let mut ws = socket(&app, Some(&owner)).await;
    assert_eq!(join(&mut ws, "1", &t).await, ok(0, false));
    let (status, response) = push(&mut ws, "1", "2", &t, "love").await;
    assert_eq!((status.as_str(), response), ("error", json!({"reason": "unknown event"})));
    assert_eq!(like_rows(&app).await, 0);
}

#[tokio::test]
async fn private_bookmarks_likes_are_the_owners_alone_and_bad_topics_are_refused() {
    let app = spawn_app().await;
    let owner = app.create_user("owner").await;
    let other = app.create_user("other").await;
    let id = bookmark(&app, &owner, false).await;
    let t = topic(id);

    let mut as_other = socket(&app, Some(&other)).await;
    assert_eq!(join(&mut as_other, "1", &t).await, ("error".to_owned(), json!({"reason": "unauthorized"})));
    let mut anon = socket(&app, None).await;
    assert_eq!(join(&mut anon, "1", &t).await, ("error".to_owned(), json!({"reason": "unauthorized"})));
    // Refused joins leave no subscription behind: the owner's like reaches nobody else.
    let mut as_owner = socket(&app, Some(&owner)).await;
    assert_eq!(join(&mut as_owner, "1", &t).await, ok(0, false));
    assert_eq!(push(&mut as_owner, "1", "2", &t, "like").await, ok(1, true));
    assert_eq!(as_owner.expect_frame().await, like_count(id, 1, 1));
    as_other.expect_silence(200).await;
    anon.expect_silence(0).await;

    // A bookmark that does not exist, and topics that are not a bookmark id.
    assert_eq!(join(&mut as_other, "2", "likes:999999").await, ("error".to_owned(), json!({"reason": "not found"})));
    for (jr, bad) in [("3", "likes:abc"), ("4", "likes:"), ("5", "likes:007"), ("6", "likes:-1")] {
        as_other.push(Some(jr), jr, bad, "phx_join", json!({})).await;
        assert_eq!(as_other.expect_frame().await, error_reply(Some(jr), jr, bad, "invalid topic"), "{bad}");
    }
    // Pushing on a topic that was refused is pushing on a topic not joined.
    as_other.push(Some("1"), "7", &t, "like", json!({})).await;
    assert_eq!(as_other.expect_frame().await, error_reply(None, "7", &t, "unmatched topic"));
    assert_eq!(like_rows(&app).await, 1);
}

#[tokio::test]
async fn http_likes_are_idempotent_broadcast_and_hidden_for_private_bookmarks() {
    let app = spawn_app().await;
    let owner = app.create_user("owner").await;
    let other = app.create_user("other").await;
    let public = bookmark(&app, &owner, true).await;
    let private = bookmark(&app, &owner, false).await;
    let mut watcher = socket(&app, None).await;
    assert_eq!(join(&mut watcher, "1", &topic(public)).await, ok(0, false));

    assert_eq!(http_like_ok(&app, &other, public, true).await, data(public, 1, true));
    assert_eq!(watcher.expect_frame().await, like_count(public, 1, 1), "HTTP likes broadcast too");
    assert_eq!(http_like_ok(&app, &other, public, true).await, data(public, 1, true), "double like");
    assert_eq!(http_like_ok(&app, &owner, public, true).await, data(public, 2, true));
    assert_eq!(watcher.expect_frame().await, like_count(public, 2, 2));
    watcher.expect_silence(200).await;

    assert_eq!(likes_of(&app, None, public).await, (200, json!({"data": data(public, 2, false)})));
    assert_eq!(likes_of(&app, Some(&other), public).await, (200, json!({"data": data(public, 2, true)})));

    assert_eq!(http_like_ok(&app, &other, public, false).await, data(public, 1, false));
    assert_eq!(watcher.expect_frame().await, like_count(public, 1, 3));
    assert_eq!(http_like_ok(&app, &other, public, false).await, data(public, 1, false), "unlike of nothing");
    watcher.expect_silence(200).await;

    // Someone else's private bookmark does not exist for them: 404 for every verb,
    // exactly as for a bookmark that does not exist.
    for like in [true, false] {
        assert_error(http_like(&app, &other, private, like).await, 404).await;
        assert_error(http_like(&app, &other, 999_999, like).await, 404).await;
    }
    assert_eq!(likes_of(&app, Some(&other), private).await.0, 404);
    assert_eq!(likes_of(&app, None, private).await.0, 404);
    // Its owner may like it.
    assert_eq!(http_like_ok(&app, &owner, private, true).await, data(private, 1, true));
    assert_eq!(likes_of(&app, Some(&owner), private).await, (200, json!({"data": data(private, 1, true)})));

    // Signed out, and ids that are not ids.
    let resp = app.http.post(app.url(&format!("/api/bookmarks/{public}/like"))).send().await.unwrap();
    assert_error(resp, 401).await;
    assert_error(
        app.http.post(app.url("/api/bookmarks/abc/like")).bearer_auth(&other.token).send().await.unwrap(),
        400,
    )
    .await;
    assert_error(app.get("/api/bookmarks/1e3/likes").await, 400).await;
}

#[tokio::test]
async fn a_rejoin_keeps_one_subscription_and_a_leave_ends_it() {
    let app = spawn_app().await;
    let owner = app.create_user("owner").await;
    let id = bookmark(&app, &owner, true).await;
    let t = topic(id);
    let mut ws = socket(&app, None).await;
    assert_eq!(join(&mut ws, "1", &t).await, ok(0, false));
    // Re-joining: the new reply, then phx_close for the old join.
    assert_eq!(join(&mut ws, "2", &t).await, ok(0, false));
    assert_eq!(ws.expect_frame().await, json!(["1", "1", t, "phx_close", {}]));
    http_like_ok(&app, &owner, id, true).await;
    assert_eq!(ws.expect_frame().await, like_count(id, 1, 1));
    ws.expect_silence(200).await;
    // Leaving unsubscribes.
    ws.push(Some("2"), "3", &t, "phx_leave", json!({})).await;
    assert_eq!(reply_to(&mut ws, Some("2"), "3", &t).await, ("ok".to_owned(), json!({})));
    assert_eq!(ws.expect_frame().await, json!(["2", "2", t, "phx_close", {}]));
    http_like_ok(&app, &owner, id, false).await;
    ws.expect_silence(300).await;
}

#[tokio::test]
async fn deleting_a_bookmark_deletes_its_likes() {
    let app = spawn_app().await;
    let owner = app.create_user("owner").await;
    let other = app.create_user("other").await;
    let id = bookmark(&app, &owner, true).await;
    http_like_ok(&app, &owner, id, true).await;
    http_like_ok(&app, &other, id, true).await;
    assert_eq!(like_rows(&app).await, 2);
    assert_eq!(app.delete_as(&format!("/api/bookmarks/{id}"), &owner.token).await.status(), 204);
    assert_eq!(like_rows(&app).await, 0);
    assert_error(http_like(&app, &other, id, true).await, 404).await;
}

#[tokio::test]
async fn concurrent_likes_broadcast_every_count_in_commit_order() {
    const USERS: i64 = 20;
    let app = spawn_app().await;
    let owner = app.create_user("owner").await;
    let id = bookmark(&app, &owner, true).await;
    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(app.create_user(&format!("fan{i}")).await);
    }
    let mut watcher = socket(&app, None).await;
    assert_eq!(join(&mut watcher, "1", &topic(id)).await, ok(0, false));

    let likes = users.iter().map(|u| http_like_ok(&app, u, id, true));
    let answers = futures_util::future::join_all(likes).await;
    let mut counts: Vec<i64> = answers.iter().map(|a| a["count"].as_i64().unwrap()).collect();
    counts.sort_unstable();
    assert_eq!(counts, (1..=USERS).collect::<Vec<_>>(), "each like saw the count its own write made");
    // Broadcast in commit order: the counts arrive 1, 2, …, N, so the last one is right.
    for n in 1..=USERS {
        assert_eq!(watcher.expect_frame().await, like_count(id, n, n as u64));
    }
    watcher.expect_silence(200).await;
}

#[tokio::test]
async fn likes_over_budget_get_rate_limited_on_the_socket_and_over_http() {
    let app = spawn_app_with(|c| c.limits.likes = Some(Rate::new(3, Duration::from_secs(60)))).await;
    let owner = app.create_user("owner").await;
    let liker = app.create_user("liker").await;
    let id = bookmark(&app, &owner, true).await;
    let t = topic(id);
    let mut ws = socket(&app, Some(&liker)).await;
    assert_eq!(join(&mut ws, "1", &t).await, ok(0, false));
    assert_eq!(push(&mut ws, "1", "2", &t, "like").await, ok(1, true));
    assert_eq!(ws.expect_frame().await, like_count(id, 1, 1));
    assert_eq!(push(&mut ws, "1", "3", &t, "unlike").await, ok(0, false));
    assert_eq!(ws.expect_frame().await, like_count(id, 0, 2));
    assert_eq!(push(&mut ws, "1", "4", &t, "like").await, ok(1, true));
    assert_eq!(ws.expect_frame().await, like_count(id, 1, 3));

    let (status, response) = push(&mut ws, "1", "5", &t, "unlike").await;
    assert_eq!(status, "error", "{response}");
    assert_eq!(response["reason"], "rate_limited", "{response}");
    let wait = response["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!(wait > 0 && wait <= 20_000, "one token per 20 s: {wait}");
    assert_eq!(response.as_object().unwrap().len(), 2, "{response}");
    ws.expect_silence(200).await;
    // Nothing was written, and the HTTP API shares the budget.
    let resp = http_like(&app, &liker, id, false).await;
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "Retry-After {retry}");
    assert_error(resp, 429).await;
    // Both refusals are counted, under their action only.
    assert_eq!(app.metric("firehose_rate_limited_total{action=\"like\"}").await, Some(2.0));
    assert_eq!(app.metric("firehose_rate_limited_total{action=\"message\"}").await, Some(0.0));
    assert_eq!(likes_of(&app, Some(&liker), id).await.1["data"], data(id, 1, true));
    // The budget is per user: the owner still has all of theirs.
    assert_eq!(http_like_ok(&app, &owner, id, true).await, data(id, 2, true));
    assert_eq!(ws.expect_frame().await, like_count(id, 2, 4));
    // The socket lives on: other events still work.
    assert_eq!(push(&mut ws, "1", "6", &t, "ping").await, ("ok".to_owned(), json!({})));
}

#[tokio::test]
async fn bookmark_creation_over_budget_gets_429_with_retry_after() {
    let app = spawn_app_with(|c| c.limits.bookmarks = Some(Rate::new(2, Duration::from_secs(60)))).await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let body = json!({"bookmark": {"title": "t", "url": "https://example.com/"}});
    for _ in 0..2 {
        assert_eq!(app.post_json("/api/bookmarks", Some(&alice.token), &body).await.status(), 201);
    }
    let resp = app.post_json("/api/bookmarks", Some(&alice.token), &body).await;
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "Retry-After {retry}");
    assert_error(resp, 429).await;
    assert_eq!(app.metric("firehose_rate_limited_total{action=\"bookmark\"}").await, Some(1.0));
    // Invalid bookmarks are refused for what they are and spend no budget.
    let invalid = json!({"bookmark": {"title": "", "url": "javascript:alert(1)"}});
    assert_error(app.post_json("/api/bookmarks", Some(&bob.token), &invalid).await, 422).await;
    assert_error(app.post_json("/api/bookmarks", Some(&bob.token), &invalid).await, 422).await;
    assert_error(app.post_json("/api/bookmarks", Some(&bob.token), &invalid).await, 422).await;
    // Another user has a budget of their own.
    assert_eq!(app.post_json("/api/bookmarks", Some(&bob.token), &body).await.status(), 201);
    assert_eq!(app.stored_bookmarks().await, 3, "nothing was stored past the limit");
}

#[tokio::test]
async fn the_default_budget_is_ten_bookmarks_per_ten_seconds() {
    let app = spawn_app_with(|c| c.limits = RateLimits::default()).await;
    let alice = app.create_user("alice").await;
    let body = json!({"bookmark": {"title": "t", "url": "https://example.com/"}});
    for i in 0..10 {
        assert_eq!(app.post_json("/api/bookmarks", Some(&alice.token), &body).await.status(), 201, "create {i}");
    }
    assert_error(app.post_json("/api/bookmarks", Some(&alice.token), &body).await, 429).await;
}

#[tokio::test]
async fn with_limits_off_rapid_creates_are_never_refused() {
    let app = spawn_app_with(|c| c.limits = RateLimits::off()).await;
    let alice = app.create_user("alice").await;
    let body = json!({"bookmark": {"title": "t", "url": "https://example.com/"}});
    for i in 0..50 {
        assert_eq!(app.post_json("/api/bookmarks", Some(&alice.token), &body).await.status(), 201, "create {i}");
    }
    assert_eq!(app.stored_bookmarks().await, 50);
}

/// Rows in `likes`, read straight from the database.
async fn like_rows(app: &TestApp) -> i64 {
    let mut conn = app.db().await;
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM likes").fetch_one(&mut conn).await.expect("count");
    n
}
