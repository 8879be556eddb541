//! The web layer over raw HTTP: chat over HTTP (`POST /api/rooms/<slug>/messages`, the
//! `new_msg` path: same validation, permissions, budget and broadcast), the pages'
//! security headers and escaping, CSRF on forms, HTML 404s, hashed assets, the live
//! validation endpoint, and a page's socket signed in by its session cookie only when
//! the upgrade comes from the same origin. (The pages themselves are tested in Chromium:
//! `app/tests/browser`.)

use std::time::Duration;

use firehose_app::ratelimit::{Rate, RateLimits};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::helpers::{TestApp, TestUser, WsClient, assert_error, spawn_app, spawn_app_with};

async fn create_room(app: &TestApp, user: &TestUser, fields: Value) -> Value {
    let resp = app.post_json("/api/rooms", Some(&user.token), &json!({ "room": fields })).await;
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["data"].clone()
}

/// Joins `topic` on `ws` and skips what follows the reply (presence).
async fn join(ws: &mut WsClient, topic: &str) {
    ws.push(Some("1"), "1", topic, "phx_join", json!({})).await;
    let reply = ws.expect_frame().await;
    assert_eq!(reply[4]["status"], "ok", "{reply}");
}

async fn next_event(ws: &mut WsClient, event: &str) -> Value {
    loop {
        let frame = ws.expect_frame().await;
        if frame[3] == json!(event) {
            return frame[4].clone();
        }
    }
}

#[tokio::test]
async fn messages_over_http_are_stored_broadcast_and_answered_with_the_message() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    create_room(&app, &alice, json!({"name": "general"})).await;
    let mut listener = app.ws(&format!("&token={}", bob.token)).await;
    join(&mut listener, "room:general").await;

    let resp =
        app.post_json("/api/rooms/general/messages", Some(&alice.token), &json!({"body": "  hi <b>all</b> "})).await;
    assert_eq!(resp.status(), 201);
    let data = resp.json::<Value>().await.unwrap()["data"].clone();
    assert_eq!(data["body"], "hi <b>all</b>");
    assert_eq!(data["user"]["username"], "alice");
    let broadcast = next_event(&mut listener, "new_message").await;
    assert_eq!(broadcast["id"], data["id"]);
    assert_eq!(broadcast["body"], "hi <b>all</b>");
    // In the history like any other message; the envelope form works too.
    let resp =
        app.post_json("/api/rooms/general/messages", Some(&bob.token), &json!({"message": {"body": "second"}})).await;
    assert_eq!(resp.status(), 201);
    let (status, history) = app.get_json("/api/rooms/general/messages").await;
    assert_eq!(status, 200);
    let bodies: Vec<&str> = history["data"].as_array().unwrap().iter().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(bodies, ["hi <b>all</b>", "second"]);
}

#[tokio::test]
async fn messages_over_http_are_refused_like_the_push() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    create_room(&app, &alice, json!({"name": "open"})).await;
    create_room(&app, &alice, json!({"name": "secret", "private": true})).await;
    let post = |slug: &'static str, token: Option<String>, body: Value| {
        let app = &app;
        async move { app.post_json(&format!("/api/rooms/{slug}/messages"), token.as_deref(), &body).await }
    };
    let bob_token = Some(bob.token.clone());
    assert_error(post("open", None, json!({"body": "x"})).await, 401).await;
    assert_error(post("nope", bob_token.clone(), json!({"body": "x"})).await, 404).await;
    // A private room is a 404 to non-members, as if it did not exist.
    assert_error(post("secret", bob_token.clone(), json!({"body": "x"})).await, 404).await;
    let error = assert_error(post("open", bob_token.clone(), json!({"body": "   "})).await, 422).await;
    assert!(error["fields"]["body"][0].as_str().unwrap().contains("blank"), "{error}");
    assert_error(post("open", bob_token.clone(), json!({"body": 5})).await, 422).await;
    assert_error(post("open", bob_token.clone(), json!({"body": "x".repeat(4001)})).await, 422).await;
    let error =
        assert_error(post("open", bob_token.clone(), json!({"body": "x", "attachment_id": -1})).await, 422).await;
    assert!(error["fields"]["attachment_id"].is_array(), "{error}");
    // An upload that is not the sender's (here: none at all) is not an attachment.
    let error =
        assert_error(post("open", bob_token.clone(), json!({"body": "x", "attachment_id": 1})).await, 422).await;
    assert!(error["fields"]["attachment_id"].is_array(), "{error}");
    assert_error(post("open", bob_token.clone(), json!({"message": "x"})).await, 400).await;
    assert_eq!(app.post_raw("/api/rooms/open/messages", bob_token.as_deref(), "[1]").await.status(), 400);
    let (_, history) = app.get_json("/api/rooms/open/messages").await;
    assert_eq!(history["data"], json!([]), "nothing refused was stored");
}

#[tokio::test]
async fn http_and_the_push_share_one_message_budget() {
    let app = spawn_app_with(|c| {
        c.limits = RateLimits { messages: Some(Rate::new(2, Duration::from_secs(60))), ..RateLimits::off() }
    })
    .await;
    let alice = app.create_user("alice").await;
    create_room(&app, &alice, json!({"name": "busy"})).await;
    for body in ["one", "two"] {
        let resp = app.post_json("/api/rooms/busy/messages", Some(&alice.token), &json!({"body": body})).await;
        assert_eq!(resp.status(), 201);
    }
    let refused = app.post_json("/api/rooms/busy/messages", Some(&alice.token), &json!({"body": "three"})).await;
    assert!(refused.headers().get("retry-after").is_some());
    assert_error(refused, 429).await;
    // The socket's `new_msg` draws from the same bucket.
    let mut ws = app.ws(&format!("&token={}", alice.token)).await;
    join(&mut ws, "room:busy").await;
    ws.push(Some("1"), "2", "room:busy", "new_msg", json!({"body": "four"})).await;
    let reply = loop {
        let frame = ws.expect_frame().await;
        if frame[3] == "phx_reply" && frame[1] == "2" {
            break frame;
        }
    };
    assert_eq!(reply[4]["status"], "error");
    assert_eq!(reply[4]["response"]["reason"], "rate_limited");
}

#[tokio::test]
async fn pages_send_a_strict_csp_escape_user_text_and_404_in_html() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    app.create_bookmark(&alice, json!({"title": "<script>alert(1)</script>", "url": "https://example.com/x"})).await;
    let resp = app.get("/").await;
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    assert!(resp.headers()["set-cookie"].to_str().unwrap().contains("HttpOnly"), "the pre-session cookie");
    let html = resp.text().await.unwrap();
    assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"), "the title is escaped");
    assert!(!html.contains("<script>alert"), "never raw");
    assert!(!html.contains(" onclick=") && !html.contains(" onerror="));
    for script in html.match_indices("<script").map(|(i, _)| &html[i..html[i..].find('>').unwrap() + i]) {
        assert!(script.contains(" src=\"/assets/"), "only scripts from our origin: {script}");
    }

    let html_404 = app.http.get(app.url("/no/such/page")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(html_404.status(), 404);
    assert!(html_404.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    // API clients keep getting JSON.
    assert_error(app.get("/no/such/page").await, 404).await;
    assert_eq!(app.get("/tags/x%2Cy").await.status(), 404, "not a tag");
    assert_eq!(app.get("/bookmarks/abc").await.status(), 404);
}

#[tokio::test]
async fn assets_are_served_under_content_hashed_names() {
    let app = spawn_app().await;
    let html = app.get("/").await.text().await.unwrap();
    let js = html.split("src=\"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_owned();
    assert!(js.starts_with("/assets/app-") && js.ends_with(".js"), "{js}");
    let resp = app.get(&js).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert!(resp.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    assert!(resp.text().await.unwrap().contains("class Socket"));
    assert_eq!(app.get("/assets/app.js").await.headers()["cache-control"], "no-cache");
    assert_eq!(app.get("/assets/../Cargo.toml").await.status(), 404);
    assert_eq!(app.get("/favicon.ico").await.status(), 200);
}

/// Registers an account; returns its session token (the cookie's value).
async fn register(app: &TestApp, name: &str) -> String {
    let resp = app
        .post_json(
            "/api/accounts/register",
            None,
            &json!({"email": format!("{name}@example.com"), "password": "correct horse battery", "display_name": name}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    cookie.split(';').next().unwrap().trim_start_matches("firehose_session=").to_owned()
}

#[tokio::test]
async fn page_forms_need_the_csrf_token() {
    let app = spawn_app().await;
    let session = register(&app, "alice").await;
    let form = |body: &'static str| {
        app.http
            .post(app.url("/bookmarks"))
            .header("cookie", format!("firehose_session={session}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let refused = form("title=T&url=https%3A%2F%2Fexample.com").await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let refused = form("title=T&url=https%3A%2F%2Fexample.com&_csrf=forged").await.unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(app.stored_bookmarks().await, 0, "nothing stored for a forged form");
    // The page's own token works (the one `X-CSRF-Token` carries for the API).
    let page = app
        .http
        .get(app.url("/bookmarks/new"))
        .header("cookie", format!("firehose_session={session}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = page.split("name=\"_csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let body = format!("title=T&url=https%3A%2F%2Fexample.com&tags=a%2Cb&public=on&_csrf={token}");
    let created = app
        .http
        .post(app.url("/bookmarks"))
        .header("cookie", format!("firehose_session={session}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200, "followed the 303 to the new bookmark's page");
    assert!(created.url().path().starts_with("/bookmarks/"));
    assert_eq!(app.stored_bookmarks().await, 1);
    // Signed out, a page that needs a user sends to the login page and back.
    let anon = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = anon.get(app.url("/profile")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/login?next=%2Fprofile");
}

#[tokio::test]
async fn live_validation_answers_field_errors_without_storing() {
    let app = spawn_app().await;
    let resp = app
        .post_json("/bookmarks/validate", None, &json!({"bookmark": {"title": "", "url": "javascript:alert(1)"}}))
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["ok"], false);
    assert!(body["fields"]["title"].is_array() && body["fields"]["url"].is_array(), "{body}");
    let ok: Value = app
        .post_json("/bookmarks/validate", None, &json!({"bookmark": {"title": "t", "url": "https://a.example"}}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ok, json!({"ok": true, "fields": {}}));
    assert_error(app.post_json("/bookmarks/validate", None, &json!({"nope": 1})).await, 400).await;
    assert_eq!(app.stored_bookmarks().await, 0);
}

/// A socket upgrade carrying the session cookie, from `origin`.
async fn cookie_socket(app: &TestApp, session: &str, origin: &str) -> WsClient {
    let mut request = format!("ws://{}/socket/websocket?vsn=2.0.0", app.addr).into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("cookie", HeaderValue::from_str(&format!("firehose_session={session}")).unwrap());
    headers.insert("origin", HeaderValue::from_str(origin).unwrap());
    WsClient::connect_request(app.addr, request).await.expect("upgrade")
}

#[tokio::test]
async fn a_pages_socket_is_signed_in_by_the_cookie_only_from_the_same_origin() {
    let app = spawn_app().await;
    let session = register(&app, "alice").await;
    // rooms:lobby is for signed-in users only.
    let mut same = cookie_socket(&app, &session, &format!("http://{}", app.addr)).await;
    same.push(Some("1"), "1", "rooms:lobby", "phx_join", json!({})).await;
    assert_eq!(same.expect_frame().await[4]["status"], "ok");
    let mut other = cookie_socket(&app, &session, "http://evil.example").await;
    other.push(Some("1"), "1", "rooms:lobby", "phx_join", json!({})).await;
    let reply = other.expect_frame().await;
    assert_eq!(reply[4]["status"], "error", "another site's page gets an anonymous socket: {reply}");
    // A stale cookie is an anonymous socket, not a refused one.
    let mut stale = cookie_socket(&app, "not-a-session", &format!("http://{}", app.addr)).await;
    stale.heartbeat("1").await;
}
