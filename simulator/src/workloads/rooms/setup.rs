//! Setup before measuring, over HTTP: one user per member slot and per churn user
//! (`POST /api/users` → id and token), then the rooms (`POST /api/rooms`, public,
//! created by the room's first member). Nothing here is measured; a refusal fails the
//! run as a setup failure.

use std::time::Duration;

use futures_util::{StreamExt, stream};
use serde::Deserialize;
use serde_json::json;

/// Setup requests in flight at once.
const CONCURRENCY: usize = 16;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A created user: its id and API token.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub token: String,
}

pub fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(CONCURRENCY)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// Creates every user in `usernames`, in order.
pub async fn create_users(http: &reqwest::Client, base: &str, usernames: &[String]) -> Result<Vec<Account>, String> {
    #[derive(Deserialize)]
    struct Body {
        data: Data,
    }
    #[derive(Deserialize)]
    struct Data {
        id: i64,
        token: String,
    }
    let results: Vec<Result<Account, String>> = stream::iter(usernames.iter().map(|name| async move {
        let resp = http
            .post(format!("{base}/api/users"))
            .json(&json!({ "username": name }))
            .send()
            .await
            .map_err(|e| format!("POST /api/users: {e}"))?;
        let status = resp.status().as_u16();
        if status != 201 {
            let text = resp.text().await.unwrap_or_default();
            return Err(format!("POST /api/users {name:?} answered {status}: {text}"));
        }
        let body: Body = resp.json().await.map_err(|e| format!("POST /api/users response: {e}"))?;
        Ok(Account { id: body.data.id, token: body.data.token })
    }))
    .buffered(CONCURRENCY)
    .collect()
    .await;
    results.into_iter().collect()
}

/// Creates public room `(name, slug)` pairs, each by the token given with it.
pub async fn create_rooms(
    http: &reqwest::Client,
    base: &str,
    rooms: &[(String, String, String)],
) -> Result<(), String> {
    let results: Vec<Result<(), String>> = stream::iter(rooms.iter().map(|(name, slug, token)| async move {
        let body = json!({ "room": { "name": name, "slug": slug, "description": "firehose-sim rooms run", "private": false } });
        let resp = http
            .post(format!("{base}/api/rooms"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("POST /api/rooms: {e}"))?;
        let status = resp.status().as_u16();
        if status != 201 {
            let text = resp.text().await.unwrap_or_default();
            return Err(format!("POST /api/rooms {slug:?} answered {status}: {text}"));
        }
        Ok(())
    }))
    .buffer_unordered(CONCURRENCY)
    .collect()
    .await;
    results.into_iter().collect()
}
