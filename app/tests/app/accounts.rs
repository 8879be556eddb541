//! Accounts: registration, login, logout, password change, profile, API tokens, the
//! CSRF rule for cookie-authenticated writes, no user enumeration, the per-IP limit on
//! sign-in, and bad input that stores nothing.

use std::time::{Duration, Instant};

use firehose_app::ratelimit::Rate;
use reqwest::Method;
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

use crate::helpers::{TestApp, WsClient, assert_error, spawn_app_with};

const PASSWORD: &str = "correct horse battery";

/// A server whose sign-in limit does not get in the way of a test's own requests.
async fn app() -> TestApp {
    spawn_app_with(|c| c.accounts.auth_rate = Rate::new(1000, Duration::from_secs(60))).await
}

/// A browser-like session: the cookie and its CSRF token.
#[derive(Debug, Clone)]
struct Session {
    cookie: String,
    csrf: String,
}

/// How a request authenticates.
enum As<'a> {
    Nobody,
    /// The session cookie with its CSRF token.
    Cookie(&'a Session),
    /// The session cookie without the CSRF token.
    CookieOnly(&'a Session),
    Bearer(&'a str),
}

async fn call(app: &TestApp, method: Method, path: &str, auth: As<'_>, body: Option<Value>) -> reqwest::Response {
    let mut req = app.http.request(method, app.url(path));
    match auth {
        As::Nobody => {}
        As::Cookie(s) => {
            req = req.header("cookie", format!("firehose_session={}", s.cookie)).header("x-csrf-token", &s.csrf)
        }
        As::CookieOnly(s) => req = req.header("cookie", format!("firehose_session={}", s.cookie)),
        As::Bearer(t) => req = req.bearer_auth(t),
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.expect("request")
}

/// `(status, headers, json body)`.
async fn parts(resp: reqwest::Response) -> (u16, HeaderMap, Value) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap_or(Value::Null))
}

/// The session cookie's `Set-Cookie` line.
fn set_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("firehose_session="))
        .map(str::to_owned)
}

/// The session from a signing-in response: its cookie value and the CSRF token in the body.
fn session_of(headers: &HeaderMap, body: &Value) -> Session {
    let line = set_cookie(headers).unwrap_or_else(|| panic!("no session cookie; body {body}"));
    let value = line.split(';').next().unwrap().trim_start_matches("firehose_session=").to_owned();
    assert!(!value.is_empty(), "{line}");
    let csrf = body["data"]["csrf_token"].as_str().unwrap_or_else(|| panic!("no csrf_token in {body}")).to_owned();
    Session { cookie: value, csrf }
}

async fn register(app: &TestApp, email: &str, display_name: &str) -> (Session, Value) {
    let body = json!({"email": email, "password": PASSWORD, "display_name": display_name});
    let (status, headers, body) =
        parts(call(app, Method::POST, "/api/accounts/register", As::Nobody, Some(body)).await).await;
    assert_eq!(status, 201, "register {email}: {body}");
    (session_of(&headers, &body), body["data"]["user"].clone())
}

async fn login(app: &TestApp, email: &str, password: &str) -> (u16, HeaderMap, Value) {
    let body = json!({"email": email, "password": password});
    parts(call(app, Method::POST, "/api/accounts/login", As::Nobody, Some(body)).await).await
}

async fn me(app: &TestApp, auth: As<'_>) -> (u16, Value) {
    let (status, _, body) = parts(call(app, Method::GET, "/api/accounts/me", auth, None).await).await;
    (status, body)
}

/// Creates an API token through the API; returns `(id, secret)`.
async fn create_token(app: &TestApp, auth: As<'_>, name: &str) -> (i64, String) {
    let (status, _, body) =
        parts(call(app, Method::POST, "/api/tokens", auth, Some(json!({ "name": name }))).await).await;
    assert_eq!(status, 201, "create token: {body}");
    (body["data"]["id"].as_i64().unwrap(), body["data"]["token"].as_str().unwrap().to_owned())
}

/// `SELECT COUNT(*) FROM <table>`, straight from the database.
async fn count(app: &TestApp, table: &str) -> i64 {
    let mut conn = app.db().await;
    let (n,): (i64,) =
        sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&mut conn).await.expect("count");
    n
}

fn ws_status(result: Result<WsClient, tungstenite::Error>) -> u16 {
    match result {
        Ok(_) => 101,
        Err(tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(other) => panic!("unexpected WebSocket error: {other}"),
    }
}

#[tokio::test]
async fn registration_signs_in_with_a_safe_cookie_and_derives_a_unique_username() {
    let app = app().await;
    let body = json!({"email": "  Alice@Example.COM ", "password": PASSWORD, "display_name": " Alice <b>A</b> "});
    let (status, headers, body) =
        parts(call(&app, Method::POST, "/api/accounts/register", As::Nobody, Some(body)).await).await;
    assert_eq!(status, 201, "{body}");
    let user = &body["data"]["user"];
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["username"], "alice");
    assert_eq!(user["display_name"], "Alice <b>A</b>", "stored as text");
    assert!(user.get("password_hash").is_none() && user.get("avatar_path").is_none(), "{user}");
    let cookie = set_cookie(&headers).unwrap();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "not Secure unless configured: {cookie}");
    let session = session_of(&headers, &body);

    // The cookie signs in; /me returns the same CSRF token.
    let (status, me_body) = me(&app, As::CookieOnly(&session)).await;
    assert_eq!(status, 200, "{me_body}");
    assert_eq!(me_body["data"]["user"], *user);
    assert_eq!(me_body["data"]["csrf_token"], json!(session.csrf));

    // Same email in another case: 409 naming email only. Same local part elsewhere: a
    // derived username with a suffix. A chosen username that is taken: 409.
    let dup = json!({"email": "ALICE@example.com", "password": PASSWORD, "display_name": "Other"});
    let error =
        assert_error(call(&app, Method::POST, "/api/accounts/register", As::Nobody, Some(dup)).await, 409).await;
    assert_eq!(error["fields"], json!({"email": ["has already been taken"]}));
    let (_, second) = register(&app, "alice@other.org", "Alice Two").await;
    assert_eq!(second["username"], "alice_2");
    let taken = json!({"email": "x@y.org", "password": PASSWORD, "display_name": "X", "username": "alice"});
    let error =
        assert_error(call(&app, Method::POST, "/api/accounts/register", As::Nobody, Some(taken)).await, 409).await;
    assert_eq!(error["fields"], json!({"username": ["has already been taken"]}));
    assert_eq!(count(&app, "users").await, 2);
    assert_eq!(count(&app, "sessions").await, 2);

    // The old seam is untouched: POST /api/users still mints a token-only user.
    let legacy = app.create_user("legacy_user").await;
    let (status, body) = me(&app, As::Bearer(&legacy.token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["user"]["email"], Value::Null);
    assert_eq!(body["data"]["csrf_token"], Value::Null, "no CSRF token for bearer callers");
}

#[tokio::test]
async fn the_session_cookie_is_secure_when_configured() {
    let app = spawn_app_with(|c| c.accounts.secure_cookie = true).await;
    let body = json!({"email": "s@example.com", "password": PASSWORD, "display_name": "S"});
    let (_, headers, _) = parts(call(&app, Method::POST, "/api/accounts/register", As::Nobody, Some(body)).await).await;
    assert!(set_cookie(&headers).unwrap().ends_with("; Secure"));
}

#[tokio::test]
async fn login_and_logout() {
    let app = app().await;
    let (first, user) = register(&app, "bob@example.com", "Bob").await;

    let (status, headers, body) = login(&app, "BOB@example.com", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["user"], user);
    let second = session_of(&headers, &body);
    assert_ne!(second.cookie, first.cookie);
    assert_ne!(second.csrf, first.csrf, "a CSRF token per session");
    assert_eq!(me(&app, As::CookieOnly(&second)).await.0, 200);

    // Logging out needs the CSRF token of the live session.
    let resp = call(&app, Method::POST, "/api/accounts/logout", As::CookieOnly(&second), None).await;
    assert_error(resp, 403).await;
    assert_eq!(me(&app, As::CookieOnly(&second)).await.0, 200);
    let (status, headers, _) =
        parts(call(&app, Method::POST, "/api/accounts/logout", As::Cookie(&second), None).await).await;
    assert_eq!(status, 204);
    let cleared = set_cookie(&headers).unwrap();
    assert!(cleared.starts_with("firehose_session=;") && cleared.contains("Max-Age=0"), "{cleared}");
    let (status, body) = me(&app, As::CookieOnly(&second)).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["message"].is_string());
    // The other session is untouched; logging out again is harmless.
    assert_eq!(me(&app, As::CookieOnly(&first)).await.0, 200);
    let resp = call(&app, Method::POST, "/api/accounts/logout", As::Cookie(&second), None).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(call(&app, Method::POST, "/api/accounts/logout", As::Nobody, None).await.status(), 204);
    assert_eq!(count(&app, "sessions").await, 1);

    // Not signed in at all.
    assert_error(call(&app, Method::GET, "/api/accounts/me", As::Nobody, None).await, 401).await;
}

#[tokio::test]
async fn sessions_expire() {
    let app = spawn_app_with(|c| c.accounts.session_ttl = Duration::from_secs(1)).await;
    let (session, _) = register(&app, "brief@example.com", "Brief").await;
    assert_eq!(me(&app, As::CookieOnly(&session)).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_error(call(&app, Method::GET, "/api/accounts/me", As::CookieOnly(&session), None).await, 401).await;
    assert_eq!(ws_status(WsClient::connect(app.addr, &format!("vsn=2.0.0&token={}", session.cookie)).await), 403);
}

#[tokio::test]
async fn failed_logins_do_not_tell_unknown_emails_from_wrong_passwords() {
    let app = app().await;
    register(&app, "carol@example.com", "Carol").await;

    let unknown = login(&app, "nobody@example.com", PASSWORD).await;
    let wrong = login(&app, "carol@example.com", "wrong password!").await;
    assert_eq!(unknown.0, 401);
    assert_eq!((unknown.0, &unknown.2), (wrong.0, &wrong.2), "same status and body");
    assert_eq!(unknown.2["error"]["message"], "invalid email or password");
    assert!(set_cookie(&unknown.1).is_none() && set_cookie(&wrong.1).is_none());
    // A token-only user has no password to guess either.
    app.create_user("dave").await;
    assert_eq!(login(&app, "dave", PASSWORD).await.2, wrong.2);

    // Similar time: an unknown email is checked against a dummy argon2 hash. The
    // fastest of several tries is compared, which ignores noise from parallel tests;
    // skipping the hash would make it ~50× faster, not a little.
    let fastest = |durations: &[Duration]| durations.iter().copied().min().unwrap();
    let (mut unknown_times, mut wrong_times) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        let t = Instant::now();
        login(&app, "nobody@example.com", PASSWORD).await;
        unknown_times.push(t.elapsed());
        let t = Instant::now();
        login(&app, "carol@example.com", "wrong password!").await;
        wrong_times.push(t.elapsed());
    }
    let (u, w) = (fastest(&unknown_times), fastest(&wrong_times));
    assert!(u.as_secs_f64() >= w.as_secs_f64() * 0.3, "unknown email {u:?} vs wrong password {w:?}");
}

#[tokio::test]
async fn changing_the_password_ends_other_sessions_and_swaps_the_password() {
    let app = app().await;
    let (a, _) = register(&app, "erin@example.com", "Erin").await;
    let (_, headers, body) = login(&app, "erin@example.com", PASSWORD).await;
    let b = session_of(&headers, &body);
    let (_, api_token) = create_token(&app, As::Cookie(&a), "script").await;
    let new_password = "a much better passphrase";

    // Wrong current password, too-short new one, missing CSRF: refused, nothing changes.
    let change = |current: &str, new: &str| json!({"current_password": current, "new_password": new});
    let resp =
        call(&app, Method::PUT, "/api/accounts/password", As::Cookie(&a), Some(change("nope nope nope", new_password)))
            .await;
    assert_eq!(assert_error(resp, 422).await["fields"], json!({"current_password": ["is not valid"]}));
    let resp = call(&app, Method::PUT, "/api/accounts/password", As::Cookie(&a), Some(change(PASSWORD, "short"))).await;
    assert!(assert_error(resp, 422).await["fields"]["new_password"].is_array());
    let resp =
        call(&app, Method::PUT, "/api/accounts/password", As::CookieOnly(&a), Some(change(PASSWORD, new_password)))
            .await;
    assert_error(resp, 403).await;
    assert_eq!(me(&app, As::CookieOnly(&b)).await.0, 200);

    let (status, headers, body) = parts(
        call(&app, Method::PUT, "/api/accounts/password", As::Cookie(&a), Some(change(PASSWORD, new_password))).await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let renewed = session_of(&headers, &body);
    assert_ne!(renewed.cookie, a.cookie, "the caller's session is replaced");
    assert_eq!(me(&app, As::CookieOnly(&renewed)).await.0, 200);
    for old in [&a, &b] {
        assert_eq!(me(&app, As::CookieOnly(old)).await.0, 401, "old sessions end");
    }
    assert_eq!(count(&app, "sessions").await, 1);
    // API tokens are managed on their own and keep working.
    assert_eq!(me(&app, As::Bearer(&api_token)).await.0, 200);

    assert_eq!(login(&app, "erin@example.com", PASSWORD).await.0, 401, "old password fails");
    assert_eq!(login(&app, "erin@example.com", new_password).await.0, 200, "new password works");

    // With a bearer token: no CSRF token needed, no cookie set, every session ends.
    let (status, headers, body) = parts(
        call(&app, Method::PUT, "/api/accounts/password", As::Bearer(&api_token), Some(change(new_password, PASSWORD)))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(set_cookie(&headers).is_none());
    assert_eq!(body["data"]["csrf_token"], Value::Null);
    assert_eq!(count(&app, "sessions").await, 0);
    assert_eq!(login(&app, "erin@example.com", PASSWORD).await.0, 200);
}

#[tokio::test]
async fn profile_updates() {
    let app = app().await;
    let (s, user) = register(&app, "fay@example.com", "Fay").await;
    let (status, _, body) = parts(
        call(&app, Method::PATCH, "/api/accounts/me", As::Cookie(&s), Some(json!({"display_name": "  Fay F. "}))).await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["user"]["display_name"], "Fay F.");
    assert_eq!(body["data"]["user"]["id"], user["id"]);
    for bad in
        [json!({"display_name": ""}), json!({"display_name": "x".repeat(81)}), json!({"display_name": 7}), json!({})]
    {
        let resp = call(&app, Method::PATCH, "/api/accounts/me", As::Cookie(&s), Some(bad.clone())).await;
        assert!(assert_error(resp, 422).await["fields"]["display_name"].is_array(), "{bad}");
    }
    assert_eq!(me(&app, As::CookieOnly(&s)).await.1["data"]["user"]["display_name"], "Fay F.");
}

/// Another server on the same database (or an operator) deleting a token is not seen
/// by this server's token cache until its TTL runs out (so the first request after the
/// deletion still passes: this fails if tokens are not cached); then the token is
/// refused. A
/// revocation through this server is seen at once (the test above).
#[tokio::test]
async fn a_token_deleted_behind_the_servers_back_is_refused_once_the_cache_ttl_runs_out() {
    let ttl = Duration::from_millis(600);
    let app = spawn_app_with(|c| {
        c.accounts.auth_rate = Rate::new(1000, Duration::from_secs(60));
        c.accounts.token_cache_ttl = ttl;
    })
    .await;
    let user = app.create_user("cached").await;
    let (status, _) = me(&app, As::Bearer(&user.token)).await;
    assert_eq!(status, 200);
    let mut conn = app.db().await;
    let deleted = sqlx::query("DELETE FROM api_tokens").execute(&mut conn).await.expect("delete").rows_affected();
    assert_eq!(deleted, 1);
    let gone = Instant::now();
    // Just resolved, so the next request is answered from the cache, not the database.
    let (status, body) = me(&app, As::Bearer(&user.token)).await;
    assert_eq!(status, 200, "served from the token cache within its TTL: {body}");
    // The cached answer never outlives the TTL.
    loop {
        let (status, body) = me(&app, As::Bearer(&user.token)).await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert!(
            gone.elapsed() < ttl + Duration::from_millis(400),
            "still accepted {:?} after deletion",
            gone.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ws_status(WsClient::connect(app.addr, &format!("vsn=2.0.0&token={}", user.token)).await), 403);
}

#[tokio::test]
async fn api_tokens_are_shown_once_listed_without_secrets_and_revoked_everywhere() {
    let app = app().await;
    let (s, user) = register(&app, "gus@example.com", "Gus").await;
    let (id, secret) = create_token(&app, As::Cookie(&s), "laptop").await;
    let (id2, _) = create_token(&app, As::Bearer(&secret), "ci").await;

    // The token works for the JSON API and the socket.
    let (status, body) = me(&app, As::Bearer(&secret)).await;
    assert_eq!((status, &body["data"]["user"]["id"]), (200, &user["id"]));
    let bookmark = json!({"bookmark": {"title": "t", "url": "https://example.com"}});
    assert_eq!(
        call(&app, Method::POST, "/api/bookmarks", As::Bearer(&secret), Some(bookmark.clone())).await.status(),
        201
    );
    let mut ws = WsClient::connect(app.addr, &format!("vsn=2.0.0&token={secret}")).await.expect("token connects");
    ws.heartbeat("1").await;

    let (status, _, list) = parts(call(&app, Method::GET, "/api/tokens", As::CookieOnly(&s), None).await).await;
    assert_eq!(status, 200, "{list}");
    let tokens = list["data"].as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0]["id"], id);
    assert_eq!(tokens[0]["name"], "laptop");
    assert!(tokens[0]["inserted_at"].is_string());
    assert!(tokens[0]["last_used_at"].is_string(), "use is recorded: {list}");
    assert_eq!(tokens[1]["last_used_at"], Value::Null);
    assert!(!list.to_string().contains(&secret), "the secret is never listed");
    assert!(tokens.iter().all(|t| t.get("token").is_none()));

    // Someone else's token, a missing one and a malformed id: the same 404.
    let other = app.create_user("mallory").await;
    for path in [format!("/api/tokens/{id}"), "/api/tokens/999999".to_owned(), "/api/tokens/abc".to_owned()] {
        assert_error(call(&app, Method::DELETE, &path, As::Bearer(&other.token), None).await, 404).await;
    }
    assert_eq!(me(&app, As::Bearer(&secret)).await.0, 200);

    // Revoke: 204, then the token fails on HTTP (401) and on socket connect (403).
    let resp = call(&app, Method::DELETE, &format!("/api/tokens/{id}"), As::Cookie(&s), None).await;
    assert_eq!(resp.status(), 204);
    assert_error(call(&app, Method::GET, "/api/accounts/me", As::Bearer(&secret), None).await, 401).await;
    assert_error(call(&app, Method::POST, "/api/bookmarks", As::Bearer(&secret), Some(bookmark)).await, 401).await;
    assert_eq!(ws_status(WsClient::connect(app.addr, &format!("vsn=2.0.0&token={secret}")).await), 403);
    assert_error(call(&app, Method::DELETE, &format!("/api/tokens/{id}"), As::Cookie(&s), None).await, 404).await;
    let (_, _, list) = parts(call(&app, Method::GET, "/api/tokens", As::CookieOnly(&s), None).await).await;
    assert_eq!(list["data"].as_array().unwrap().iter().map(|t| t["id"].clone()).collect::<Vec<_>>(), vec![json!(id2)]);

    // Token-only users list their first token too.
    let (_, _, list) = parts(call(&app, Method::GET, "/api/tokens", As::Bearer(&other.token), None).await).await;
    assert_eq!(list["data"][0]["name"], "default");

    // Bad names store nothing.
    let before = count(&app, "api_tokens").await;
    for bad in [json!({}), json!({"name": ""}), json!({"name": 3}), json!({"name": "n".repeat(101)})] {
        let resp = call(&app, Method::POST, "/api/tokens", As::Cookie(&s), Some(bad.clone())).await;
        assert!(assert_error(resp, 422).await["fields"]["name"].is_array(), "{bad}");
    }
    assert_eq!(count(&app, "api_tokens").await, before);
}

#[tokio::test]
async fn a_session_token_connects_a_socket_until_logout() {
    let app = app().await;
    let (s, _) = register(&app, "hal@example.com", "Hal").await;
    let mut ws = WsClient::connect(app.addr, &format!("vsn=2.0.0&token={}", s.cookie)).await.expect("session connects");
    ws.heartbeat("1").await;
    call(&app, Method::POST, "/api/accounts/logout", As::Cookie(&s), None).await;
    assert_eq!(ws_status(WsClient::connect(app.addr, &format!("vsn=2.0.0&token={}", s.cookie)).await), 403);
}

#[tokio::test]
async fn cookie_writes_need_the_csrf_token_and_bearer_writes_do_not() {
    let app = app().await;
    let (s, _) = register(&app, "ida@example.com", "Ida").await;
    let (_, secret) = create_token(&app, As::Cookie(&s), "api").await;
    let wrong = Session { cookie: s.cookie.clone(), csrf: "A".repeat(s.csrf.len()) };
    let (other, _) = register(&app, "jon@example.com", "Jon").await;
    let foreign = Session { cookie: s.cookie.clone(), csrf: other.csrf.clone() };
    let bookmark = json!({"bookmark": {"title": "t", "url": "https://example.com"}});

    let writes: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::POST, "/api/tokens", Some(json!({"name": "x"}))),
        (Method::PATCH, "/api/accounts/me", Some(json!({"display_name": "Hacked"}))),
        (Method::POST, "/api/bookmarks", Some(bookmark.clone())),
        (
            Method::PUT,
            "/api/accounts/password",
            Some(json!({"current_password": PASSWORD, "new_password": "pwned pwned pwned"})),
        ),
    ];
    for (method, path, body) in &writes {
        for auth in [As::CookieOnly(&s), As::Cookie(&wrong), As::Cookie(&foreign)] {
            let resp = call(&app, method.clone(), path, auth, body.clone()).await;
            let error = assert_error(resp, 403).await;
            assert!(error["message"].as_str().unwrap().contains("CSRF"), "{method} {path}: {error}");
        }
    }
    assert_eq!(count(&app, "api_tokens").await, 1);
    assert_eq!(count(&app, "bookmarks").await, 0);
    assert_eq!(me(&app, As::CookieOnly(&s)).await.1["data"]["user"]["display_name"], "Ida");

    // Reads need no CSRF token; writes with it, or with a bearer token, go through.
    assert_eq!(call(&app, Method::GET, "/api/tokens", As::CookieOnly(&s), None).await.status(), 200);
    assert_eq!(call(&app, Method::POST, "/api/bookmarks", As::Cookie(&s), Some(bookmark.clone())).await.status(), 201);
    assert_eq!(call(&app, Method::POST, "/api/bookmarks", As::Bearer(&secret), Some(bookmark)).await.status(), 201);
    let resp =
        call(&app, Method::PATCH, "/api/accounts/me", As::Bearer(&secret), Some(json!({"display_name": "Ida B"})))
            .await;
    assert_eq!(resp.status(), 200);

    // An API token in the cookie is not a session.
    let fake = Session { cookie: secret.clone(), csrf: String::new() };
    assert_error(call(&app, Method::GET, "/api/accounts/me", As::CookieOnly(&fake), None).await, 401).await;

    // Sign-in endpoints refuse requests a browser marks as cross-site.
    let creds = json!({"email": "ida@example.com", "password": PASSWORD});
    let resp = app
        .http
        .post(app.url("/api/accounts/login"))
        .header("origin", "https://evil.example")
        .json(&creds)
        .send()
        .await
        .unwrap();
    assert_error(resp, 403).await;
    let resp = app
        .http
        .post(app.url("/api/accounts/login"))
        .header("sec-fetch-site", "cross-site")
        .json(&creds)
        .send()
        .await
        .unwrap();
    assert_error(resp, 403).await;
    let same_origin = format!("http://{}", app.addr);
    let resp =
        app.http.post(app.url("/api/accounts/login")).header("origin", same_origin).json(&creds).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_ip() {
    // The default budget: 10 attempts per minute per IP, login and registration together.
    let app = spawn_app_with(|_| {}).await;
    let before = app.create_user("unlimited").await;
    for i in 0..9 {
        let (status, _, body) = login(&app, "nobody@example.com", PASSWORD).await;
        assert_eq!(status, 401, "attempt {i}: {body}");
    }
    let (status, _, _) = {
        let body = json!({"email": "kim@example.com", "password": PASSWORD, "display_name": "Kim"});
        parts(call(&app, Method::POST, "/api/accounts/register", As::Nobody, Some(body)).await).await
    };
    assert_eq!(status, 201, "the 10th attempt is still allowed");

    let resp = login(&app, "kim@example.com", PASSWORD).await;
    assert_eq!(resp.0, 429, "{}", resp.2);
    let retry_after: u64 = resp.1.get("retry-after").expect("Retry-After").to_str().unwrap().parse().unwrap();
    assert!((1..=6).contains(&retry_after), "one attempt comes back every 6 s: {retry_after}");
    assert_eq!(resp.2["error"]["status"], 429);
    let body = json!({"email": "lee@example.com", "password": PASSWORD, "display_name": "Lee"});
    assert_error(call(&app, Method::POST, "/api/accounts/register", As::Nobody, Some(body)).await, 429).await;
    assert_eq!(count(&app, "users").await, 2, "the limited registration stored nothing");

    // Everything else is unaffected, the token-only signup included.
    app.create_user("still_fine").await;
    assert_eq!(me(&app, As::Bearer(&before.token)).await.0, 200);
}

#[tokio::test]
async fn bad_registrations_are_4xx_json_and_store_nothing() {
    let app = app().await;
    let valid = json!({"email": "ok@example.com", "password": PASSWORD, "display_name": "Ok"});
    let with = |field: &str, value: Value| {
        let mut b = valid.clone();
        b[field] = value;
        b
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        ("short password", with("password", json!("elevenchars")), "password"),
        ("long password", with("password", json!("p".repeat(257))), "password"),
        ("no @", with("email", json!("ok.example.com")), "email"),
        ("no domain dot", with("email", json!("ok@example")), "email"),
        ("spaces", with("email", json!("o k@example.com")), "email"),
        ("long email", with("email", json!(format!("{}@{}.com", "a".repeat(60), "b".repeat(200)))), "email"),
        ("email a number", with("email", json!(42)), "email"),
        ("password a list", with("password", json!(vec!["x"; 12])), "password"),
        ("password null", with("password", Value::Null), "password"),
        ("display name blank", with("display_name", json!("  ")), "display_name"),
        ("display name of 81", with("display_name", json!("d".repeat(81))), "display_name"),
        ("display name control", with("display_name", json!("a\u{0}b")), "display_name"),
        ("display name an object", with("display_name", json!({"a": 1})), "display_name"),
        ("bad username", with("username", json!("No Spaces!")), "username"),
        ("username a number", with("username", json!(5)), "username"),
    ];
    for (case, body, field) in cases {
        let resp = call(&app, Method::POST, "/api/accounts/register", As::Nobody, Some(body)).await;
        let error = assert_error(resp, 422).await;
        assert!(error["fields"][field].is_array(), "{case}: {error}");
    }
    let error =
        assert_error(call(&app, Method::POST, "/api/accounts/register", As::Nobody, Some(json!({}))).await, 422).await;
    for field in ["email", "password", "display_name"] {
        assert!(error["fields"][field].is_array(), "{field} in {error}");
    }
    // Not JSON, not an object, too big: 400/413 with a JSON error.
    for raw in ["{\"email\": ", "not json", "[1, 2]", "\"string\"", ""] {
        assert_error(app.post_raw("/api/accounts/register", None, raw).await, 400).await;
        assert_error(app.post_raw("/api/accounts/login", None, raw).await, 400).await;
    }
    assert_error(app.post_raw("/api/accounts/register", None, "x".repeat(70 * 1024)).await, 413).await;
    // Login with wrong types is a 422, not a 500 and not a credentials check.
    for body in [json!({"email": 1, "password": PASSWORD}), json!({"email": "a@b.co"}), json!({"password": []})] {
        assert_error(call(&app, Method::POST, "/api/accounts/login", As::Nobody, Some(body)).await, 422).await;
    }
    assert_eq!(count(&app, "users").await, 0);
    assert_eq!(count(&app, "sessions").await, 0);

    // Malformed credentials and bodies on authenticated routes are JSON errors too.
    let resp = app.http.get(app.url("/api/accounts/me")).header("authorization", "Basic abc").send().await.unwrap();
    assert_error(resp, 401).await;
    let resp =
        app.http.get(app.url("/api/accounts/me")).header("cookie", "firehose_session=forged").send().await.unwrap();
    assert_error(resp, 401).await;
    let (s, _) = register(&app, "ok@example.com", "Ok").await;
    let resp = app
        .http
        .put(app.url("/api/accounts/password"))
        .header("cookie", format!("firehose_session={}", s.cookie))
        .header("x-csrf-token", &s.csrf)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_error(resp, 400).await;
    let resp = call(
        &app,
        Method::PUT,
        "/api/accounts/password",
        As::Cookie(&s),
        Some(json!({"current_password": 1, "new_password": 2})),
    )
    .await;
    let error = assert_error(resp, 422).await;
    assert!(error["fields"]["current_password"].is_array() && error["fields"]["new_password"].is_array(), "{error}");
    assert_eq!(login(&app, "ok@example.com", PASSWORD).await.0, 200, "the password did not change");
}

#[tokio::test]
async fn a_session_cookie_sees_its_own_private_bookmark_and_nobody_else_does() {
    let app = app().await;
    let (owner, _) = register(&app, "owner@example.com", "Owner").await;
    let (other, _) = register(&app, "other@example.com", "Other").await;
    let bookmark = json!({"bookmark": {"title": "secret", "url": "https://example.com/s", "public": false}});
    let (status, _, body) =
        parts(call(&app, Method::POST, "/api/bookmarks", As::Cookie(&owner), Some(bookmark)).await).await;
    assert_eq!(status, 201, "{body}");
    let path = format!("/api/bookmarks/{}", body["data"]["id"]);
    let (status, _, body) = parts(call(&app, Method::GET, &path, As::CookieOnly(&owner), None).await).await;
    assert_eq!((status, body["data"]["title"].clone()), (200, json!("secret")));
    for auth in [As::CookieOnly(&other), As::Nobody] {
        let (status, _, body) = parts(call(&app, Method::GET, &path, auth, None).await).await;
        assert_eq!(status, 404, "{body}");
    }
    // A stale cookie reads as anonymous on public routes instead of failing them.
    let stale = Session { cookie: "not-a-session".into(), csrf: String::new() };
    let (status, _, _) = parts(call(&app, Method::GET, "/api/bookmarks", As::CookieOnly(&stale), None).await).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405() {
    let app = app().await;
    let resp = call(&app, Method::PUT, "/api/bookmarks", As::Nobody, None).await;
    let (status, _, body) = parts(resp).await;
    assert_eq!(status, 405);
    assert_eq!(body["error"]["status"], json!(405), "{body}");
}

/// Connects a V2 socket with `token` in the connect params.
async fn ws_with(app: &TestApp, token: &str) -> WsClient {
    WsClient::connect(app.addr, &format!("vsn=2.0.0&token={token}")).await.expect("token connects")
}

/// The socket is closed by the server with 1008 (a code phoenix.js reconnects on)
/// within a second.
async fn expect_revoked(ws: &mut WsClient, which: &str) {
    let started = Instant::now();
    let code = ws.drain_until_end(Duration::from_secs(1)).await;
    assert_eq!(code, Some(1008), "{which}: closed as revoked");
    assert!(started.elapsed() < Duration::from_secs(1), "{which}: closed promptly");
}

/// Waits until no socket is registered under a credential any more.
async fn until_no_live_sockets(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !app.state().live_sockets.is_empty() {
        assert!(Instant::now() < deadline, "closed sockets stay registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn revoking_a_token_closes_the_sockets_that_connected_with_it_and_no_others() {
    let app = app().await;
    let (s, _) = register(&app, "ivy@example.com", "Ivy").await;
    let (id, revoked) = create_token(&app, As::Cookie(&s), "old laptop").await;
    let (_, kept) = create_token(&app, As::Cookie(&s), "phone").await;
    let mut gone = [ws_with(&app, &revoked).await, ws_with(&app, &revoked).await];
    let mut stays = ws_with(&app, &kept).await;
    let mut anonymous = app.ws("").await;
    for ws in gone.iter_mut().chain([&mut stays, &mut anonymous]) {
        ws.join("1", "bookmarks:firehose").await;
    }
    assert_eq!(app.state().live_sockets.len(), 3, "signed-in sockets register; anonymous ones do not");

    let resp = call(&app, Method::DELETE, &format!("/api/tokens/{id}"), As::Cookie(&s), None).await;
    assert_eq!(resp.status(), 204);
    for (i, ws) in gone.iter_mut().enumerate() {
        expect_revoked(ws, &format!("socket {i} of the revoked token")).await;
    }
    assert_eq!(app.metric("firehose_revoked_closes_total").await, Some(2.0));

    // The same user's other token, and anonymous sockets, carry on and keep receiving.
    let bookmark = json!({"bookmark": {"title": "still streaming", "url": "https://example.com/s"}});
    let resp = call(&app, Method::POST, "/api/bookmarks", As::Bearer(&kept), Some(bookmark)).await;
    assert_eq!(resp.status(), 201);
    for ws in [&mut stays, &mut anonymous] {
        let frame = ws.expect_frame().await;
        assert_eq!((&frame[2], &frame[4]["title"]), (&json!("bookmarks:firehose"), &json!("still streaming")));
        ws.heartbeat("2").await;
    }

    // phoenix.js reconnects after a non-1000 close: the revoked token is refused.
    assert_eq!(ws_status(WsClient::connect(app.addr, &format!("vsn=2.0.0&token={revoked}")).await), 403);
    // Revoking a token no socket uses closes nothing.
    let (idle, _) = create_token(&app, As::Cookie(&s), "unused").await;
    assert_eq!(call(&app, Method::DELETE, &format!("/api/tokens/{idle}"), As::Cookie(&s), None).await.status(), 204);
    stays.heartbeat("3").await;
    stays.close().await;
    anonymous.close().await;
    until_no_live_sockets(&app).await;
}

#[tokio::test]
async fn logging_out_closes_the_sockets_of_that_session_only() {
    let app = app().await;
    let (first, _) = register(&app, "jay@example.com", "Jay").await;
    let (_, headers, body) = login(&app, "jay@example.com", PASSWORD).await;
    let second = session_of(&headers, &body);
    let (_, api_token) = create_token(&app, As::Cookie(&first), "cli").await;
    let mut out = ws_with(&app, &second.cookie).await;
    let mut other_session = ws_with(&app, &first.cookie).await;
    let mut token_socket = ws_with(&app, &api_token).await;

    let resp = call(&app, Method::POST, "/api/accounts/logout", As::Cookie(&second), None).await;
    assert_eq!(resp.status(), 204);
    expect_revoked(&mut out, "the logged-out session's socket").await;
    other_session.heartbeat("1").await;
    token_socket.heartbeat("1").await;
    assert_eq!(ws_status(WsClient::connect(app.addr, &format!("vsn=2.0.0&token={}", second.cookie)).await), 403);
}

#[tokio::test]
async fn a_password_change_closes_every_session_socket_of_the_user() {
    let app = app().await;
    let (a, _) = register(&app, "kim@example.com", "Kim").await;
    let (_, headers, body) = login(&app, "kim@example.com", PASSWORD).await;
    let b = session_of(&headers, &body);
    let (_, api_token) = create_token(&app, As::Cookie(&a), "script").await;
    let (other, _) = register(&app, "lee@example.com", "Lee").await;
    let mut session_sockets = [ws_with(&app, &a.cookie).await, ws_with(&app, &b.cookie).await];
    let mut token_socket = ws_with(&app, &api_token).await;
    let mut other_user = ws_with(&app, &other.cookie).await;

    let change = json!({"current_password": PASSWORD, "new_password": "a much better passphrase"});
    let resp = call(&app, Method::PUT, "/api/accounts/password", As::Cookie(&a), Some(change)).await;
    let (status, headers, body) = parts(resp).await;
    assert_eq!(status, 200, "{body}");
    let renewed = session_of(&headers, &body);
    for (i, ws) in session_sockets.iter_mut().enumerate() {
        expect_revoked(ws, &format!("session socket {i}")).await;
    }
    // API tokens are not sessions; another user's sessions are not this user's.
    token_socket.heartbeat("1").await;
    other_user.heartbeat("1").await;
    for old in [&a, &b] {
        assert_eq!(ws_status(WsClient::connect(app.addr, &format!("vsn=2.0.0&token={}", old.cookie)).await), 403);
    }
    // The caller's replacement session connects as usual.
    ws_with(&app, &renewed.cookie).await.heartbeat("1").await;
}
