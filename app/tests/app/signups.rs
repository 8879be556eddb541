//! The per-client-IP sign-up budget (`--rate-signups`): `POST /api/users` and
//! registration share it, the request over it gets 429 with `Retry-After` and a JSON
//! error, another address has its own, logins do not spend it, and refusals are counted
//! in /metrics. Clients come from 127.0.0.1 and, for a second address, 127.0.0.2 (all of
//! 127.0.0.0/8 is loopback on Linux).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use firehose_app::ratelimit::{Rate, RateLimits};
use serde_json::{Value, json};

use crate::helpers::{TestApp, WAIT, assert_error, spawn_app_with};

const PASSWORD: &str = "correct horse battery";

/// A client whose connections come from `ip`.
fn client_from(ip: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(WAIT).local_address(IpAddr::V4(ip)).build().expect("http client")
}

async fn post(client: &reqwest::Client, app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    client.post(app.url(path)).json(&body).send().await.expect("POST")
}

fn registration(name: &str) -> Value {
    json!({"email": format!("{name}@example.com"), "password": PASSWORD, "display_name": name, "username": name})
}

#[tokio::test]
async fn the_twenty_first_sign_up_from_one_address_in_a_minute_is_refused_by_default() {
    let app = spawn_app_with(|c| c.limits.signups = RateLimits::default().signups).await;
    assert_eq!(app.state().signups.rate(), Some(Rate::new(20, Duration::from_secs(60))));
    for i in 0..20 {
        app.create_user(&format!("user{i}")).await;
    }
    let resp = app.post_json("/api/users", None, &json!({"username": "user20"})).await;
    assert_error(resp, 429).await;
}

#[tokio::test]
async fn over_the_budget_is_429_with_retry_after_per_address_and_logins_are_not_counted() {
    let app = spawn_app_with(|c| c.limits.signups = Some(Rate::new(3, Duration::from_secs(60)))).await;
    let home = client_from(Ipv4Addr::LOCALHOST);
    // Registration and POST /api/users spend the same budget.
    assert_eq!(post(&home, &app, "/api/accounts/register", registration("alice")).await.status(), 201);
    assert_eq!(post(&home, &app, "/api/users", json!({"username": "bob"})).await.status(), 201);
    // A refused (invalid) request costs nothing.
    assert_error(post(&home, &app, "/api/users", json!({"username": "No Good"})).await, 422).await;
    assert_eq!(post(&home, &app, "/api/users", json!({"username": "carol"})).await.status(), 201);

    // The fourth: 429, a Retry-After of the wait for one token (60 s / 3), a JSON error.
    let resp = post(&home, &app, "/api/users", json!({"username": "dave"})).await;
    let retry_after: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().expect("Retry-After in seconds");
    assert!((1..=20).contains(&retry_after), "Retry-After {retry_after}");
    assert_error(resp, 429).await;
    assert_error(post(&home, &app, "/api/accounts/register", registration("erin")).await, 429).await;

    // Signing in to an existing account is not a sign-up.
    let login = post(&home, &app, "/api/accounts/login", json!({"email": "alice@example.com", "password": PASSWORD}));
    assert_eq!(login.await.status(), 200);

    // Another address has its own budget.
    let elsewhere = client_from(Ipv4Addr::new(127, 0, 0, 2));
    let resp = post(&elsewhere, &app, "/api/users", json!({"username": "dave"})).await;
    assert_eq!(resp.status(), 201, "{:?}", resp.text().await);

    assert_eq!(app.metric(r#"firehose_rate_limited_total{action="signup"}"#).await, Some(2.0));
    assert_eq!(users(&app).await, 4, "alice, bob, carol and the second address's dave; nothing refused was stored");
}

/// Rows in `users`, read straight from the database.
async fn users(app: &TestApp) -> i64 {
    let mut conn = app.db().await;
    sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&mut conn).await.expect("count")
}

#[tokio::test]
async fn with_the_budget_off_one_address_creates_as_many_accounts_as_it_likes() {
    let app = spawn_app_with(|c| c.limits.signups = None).await;
    for i in 0..60 {
        app.create_user(&format!("user{i}")).await;
    }
    assert_eq!(app.metric(r#"firehose_rate_limited_total{action="signup"}"#).await, Some(0.0));
}
