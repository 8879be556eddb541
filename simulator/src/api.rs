//! The target's HTTP API as the simulator calls it: create a user, create a bookmark,
//! read `/metrics`. One pooled keep-alive client for the whole run.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::resources;

/// A request may take this long before it counts as a `timeout` error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Bookmark content as the simulator posts it: a corpus link.
pub use crate::fixtures::Link as Draft;

/// What a 201 from `POST /api/bookmarks` says about the bookmark, as stored.
#[derive(Debug, Clone, Deserialize)]
pub struct Created {
    pub public: bool,
    pub tags: Vec<String>,
}

/// How a request ended when no status came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Timeout,
    Connect,
    Body,
    Other,
}

impl Transport {
    pub fn kind(self) -> &'static str {
        match self {
            Transport::Timeout => "timeout",
            Transport::Connect => "connect",
            Transport::Body => "body",
            Transport::Other => "transport",
        }
    }

    fn of(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            Transport::Timeout
        } else if e.is_connect() {
            Transport::Connect
        } else if e.is_body() || e.is_decode() {
            Transport::Body
        } else {
            Transport::Other
        }
    }
}

/// Client for one target.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    /// `base` is `http://host:port`; `pool` is the most connections kept alive.
    pub fn new(base: impl Into<String>, pool: usize) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(pool)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self { http, base: base.into() })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `POST /api/users`: `Ok(Ok(token))` on 201, `Ok(Err(status))` otherwise.
    pub async fn create_user(&self, username: &str) -> Result<Result<String, u16>, String> {
        #[derive(Deserialize)]
        struct Body {
            data: Data,
        }
        #[derive(Deserialize)]
        struct Data {
            token: String,
        }
        let resp = self
            .http
            .post(format!("{}/api/users", self.base))
            .json(&serde_json::json!({ "username": username }))
            .send()
            .await
            .map_err(|e| format!("POST /api/users: {e}"))?;
        let status = resp.status().as_u16();
        if status != 201 {
            return Ok(Err(status));
        }
        let body: Body = resp.json().await.map_err(|e| format!("POST /api/users response: {e}"))?;
        Ok(Ok(body.data.token))
    }

    /// `POST /api/bookmarks` with `url` in place of the draft's. The status, and for a
    /// 201 what was stored.
    pub async fn create_bookmark(
        &self,
        token: &str,
        draft: &Draft,
        url: &str,
        public: bool,
    ) -> Result<(u16, Option<Created>), Transport> {
        #[derive(Serialize)]
        struct Body<'a> {
            bookmark: Bookmark<'a>,
        }
        #[derive(Serialize)]
        struct Bookmark<'a> {
            title: &'a str,
            url: &'a str,
            description: &'a str,
            public: bool,
            tags: &'a [String],
        }
        #[derive(Deserialize)]
        struct Response {
            data: Created,
        }
        let body = Body {
            bookmark: Bookmark { title: &draft.title, url, description: &draft.description, public, tags: &draft.tags },
        };
        let resp = self
            .http
            .post(format!("{}/api/bookmarks", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .map_err(|e| Transport::of(&e))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| Transport::of(&e))?;
        if status != 201 {
            return Ok((status, None));
        }
        // A 201 whose body does not parse still created the bookmark; without its
        // stored tags, nothing is owed to tag listeners and the report says so.
        Ok((status, serde_json::from_slice::<Response>(&bytes).ok().map(|r| r.data)))
    }

    /// The server's `process_resident_memory_bytes`, if it exposes it.
    pub async fn server_rss_bytes(&self) -> Option<u64> {
        let resp = self.http.get(format!("{}/metrics", self.base)).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let text = resp.text().await.ok()?;
        resources::prometheus_value(&text, "process_resident_memory_bytes").map(|v| v as u64)
    }
}
