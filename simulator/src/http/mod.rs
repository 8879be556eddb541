//! The target's HTTP API as the simulator calls it: one client type with typed
//! endpoints for every request any workload or command sends — accounts, bookmarks
//! (through the target profile), likes, rooms, reads and search, `/metrics` — over one
//! pooled keep-alive connection set, with `https://` through the run's TLS config.
//!
//! Measured requests return an [`Answer`] (status and body) or a [`Transport`] error,
//! and are timed by their caller; setup requests ([`setup`]) retry a 429 after its
//! `Retry-After` and turn anything else into a message that says what to do.

pub mod setup;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use serde::Serialize;

use firehose_app::resources;

use crate::plan::profile::{Auth, Profile, Vars};

/// A request may take this long before it counts as a `timeout` error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Bookmark content as the simulator posts it: a corpus link.
pub use crate::fixtures::Link as Draft;

/// How a request ended when no status came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Transport {
    #[error("timed out")]
    Timeout,
    #[error("could not connect")]
    Connect,
    #[error("the body could not be read")]
    Body,
    #[error("transport error")]
    Other,
}

impl Transport {
    /// The error kind in reports.
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

/// A response: its status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
    /// `Retry-After` in seconds, when given.
    pub retry_after: Option<u64>,
}

impl Answer {
    /// `None` for a 2xx, else the error kind reports use: `rate_limited` for 429,
    /// `http_<status>` for the rest.
    pub fn error_kind(&self) -> Option<String> {
        match self.status {
            200..=299 => None,
            429 => Some("rate_limited".into()),
            status => Some(format!("http_{status}")),
        }
    }

    /// The body's `data` member parsed into `T`.
    pub fn data<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        #[derive(serde::Deserialize)]
        struct Envelope<T> {
            data: T,
        }
        serde_json::from_slice::<Envelope<T>>(&self.body).ok().map(|e| e.data)
    }
}

/// What a created response says about the item, as stored (or, where the profile
/// reads nothing from the response, as requested).
#[derive(Debug, Clone)]
pub struct Created {
    pub public: bool,
    pub tags: Vec<String>,
}

/// Builds the reqwest client every [`Client`] of a run wraps.
pub fn reqwest_client(pool: usize, tls: Option<&Arc<rustls::ClientConfig>>) -> Result<reqwest::Client, String> {
    let mut builder =
        reqwest::Client::builder().timeout(REQUEST_TIMEOUT).pool_max_idle_per_host(pool).tcp_nodelay(true);
    if let Some(config) = tls {
        builder = builder.use_preconfigured_tls(rustls::ClientConfig::clone(config));
    }
    builder.build().map_err(|e| format!("HTTP client: {e}"))
}

/// The API of one target.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    profile: Arc<Profile>,
}

impl Client {
    /// `base` is `http(s)://host:port`; `pool` is the most connections kept alive.
    pub fn new(
        base: impl Into<String>,
        pool: usize,
        tls: Option<&Arc<rustls::ClientConfig>>,
        profile: Arc<Profile>,
    ) -> Result<Self, String> {
        Ok(Self { http: reqwest_client(pool, tls)?, base: base.into(), profile })
    }

    /// The same client (one connection pool) at another target's base URL.
    pub fn at(&self, base: impl Into<String>) -> Self {
        Self { http: self.http.clone(), base: base.into(), profile: Arc::clone(&self.profile) }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Sends `method path` (`/api/...`), signed in with `token` when given, with a JSON
    /// `body` when given.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<Answer, Transport> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| Transport::of(&e))?;
        let status = resp.status().as_u16();
        let retry_after =
            resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
        let body = resp.bytes().await.map_err(|e| Transport::of(&e))?;
        Ok(Answer { status, body, retry_after })
    }

    /// `GET path` (reads and search), anonymous.
    pub async fn get(&self, path: &str) -> Result<Answer, Transport> {
        self.send(Method::GET, path, None, None::<&()>).await
    }

    /// When the profile creates no accounts: the token every corpus user shares
    /// (empty without auth).
    pub fn shared_token(&self) -> Option<String> {
        match &self.profile.auth {
            Auth::Users { .. } => None,
            Auth::Token { token } => Some(token.clone()),
            Auth::None => Some(String::new()),
        }
    }

    /// The profile's user creation (`POST /api/users` for firehose): the answer, and the
    /// token read from it on the profile's success status.
    pub async fn create_user(&self, username: &str) -> Result<(Answer, Option<String>), String> {
        let Auth::Users { method, path, body, status: created, token } = &self.profile.auth else {
            return Err("the target profile creates no users".into());
        };
        let what = format!("{method} {path}");
        let body = body.render(&Vars { username, ..Vars::default() });
        let method = Method::from_bytes(method.as_bytes()).map_err(|e| format!("{what}: {e}"))?;
        let answer = self.send(method, path, None, Some(&body)).await.map_err(|e| format!("{what}: {e}"))?;
        if answer.status != *created {
            return Ok((answer, None));
        }
        let json: serde_json::Value =
            serde_json::from_slice(&answer.body).map_err(|e| format!("{what} response: {e}"))?;
        match token.get(&json).and_then(|t| t.as_str()) {
            Some(t) => {
                let t = t.to_owned();
                Ok((answer, Some(t)))
            }
            None => Err(format!("{what} response has no string at {}", token.text)),
        }
    }

    /// The profile's create request (`POST /api/bookmarks` for firehose) with `url` in
    /// place of the draft's: the status, and for a created response what was stored.
    /// The profile's "created" status is reported as 201, the code every profile's run
    /// counts as created.
    pub async fn create_bookmark(
        &self,
        token: &str,
        draft: &Draft,
        url: &str,
        public: bool,
    ) -> Result<(u16, Option<Created>), Transport> {
        let create = &self.profile.create;
        let vars = Vars {
            url,
            title: &draft.title,
            description: &draft.description,
            tags: &draft.tags,
            private: !public,
            username: "",
            token,
        };
        let method = Method::from_bytes(create.method.as_bytes()).map_err(|_| Transport::Other)?;
        let mut req =
            self.http.request(method, format!("{}{}", self.base, create.path)).json(&create.body.render(&vars));
        for (name, value) in &create.headers {
            req = req.header(name.as_str(), value.render_text(&vars));
        }
        let resp = req.send().await.map_err(|e| Transport::of(&e))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| Transport::of(&e))?;
        if status != create.status {
            return Ok((status, None));
        }
        // A created response whose body does not parse still created the item; without
        // its stored tags, nothing is owed to tag listeners and the report says so.
        Ok((201, self.created(&bytes, &draft.tags, public)))
    }

    /// What the profile reads from a created response.
    fn created(&self, bytes: &[u8], sent_tags: &[String], public: bool) -> Option<Created> {
        let create = &self.profile.create;
        if create.public.is_none() && create.tags.is_none() {
            return Some(Created { public, tags: sent_tags.to_vec() });
        }
        let body: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        let public = match &create.public {
            Some(p) => p.get(&body)?.as_bool()?,
            None => public,
        };
        let tags = match &create.tags {
            Some(p) => {
                p.get(&body)?.as_array()?.iter().map(|t| t.as_str().map(str::to_owned)).collect::<Option<_>>()?
            }
            None => sent_tags.to_vec(),
        };
        Some(Created { public, tags })
    }

    /// `DELETE /api/bookmarks/:id`.
    pub async fn delete_bookmark(&self, token: &str, id: i64) -> Result<Answer, Transport> {
        self.send(Method::DELETE, &format!("/api/bookmarks/{id}"), Some(token), None::<&()>).await
    }

    /// `POST /api/bookmarks/:id/like` (`like`) or `DELETE` it (`!like`).
    pub async fn like(&self, token: &str, id: i64, like: bool) -> Result<Answer, Transport> {
        let method = if like { Method::POST } else { Method::DELETE };
        self.send(method, &format!("/api/bookmarks/{id}/like"), Some(token), None::<&()>).await
    }

    /// `POST /api/rooms/:slug/messages`: a chat message over HTTP.
    pub async fn post_message(&self, token: &str, slug: &str, body: &str) -> Result<Answer, Transport> {
        let payload = serde_json::json!({ "body": body });
        self.send(Method::POST, &format!("/api/rooms/{slug}/messages"), Some(token), Some(&payload)).await
    }

    /// `GET /api/bookmarks?limit=N`: the newest public bookmarks.
    pub async fn list(&self, limit: u32) -> Result<Answer, Transport> {
        self.get(&format!("/api/bookmarks?limit={limit}")).await
    }

    /// `GET /api/bookmarks?tag=T&limit=N`: a tag feed.
    pub async fn tag_feed(&self, tag: &str, limit: u32) -> Result<Answer, Transport> {
        self.get(&format!("/api/bookmarks?tag={}&limit={limit}", query(tag))).await
    }

    /// `GET /api/bookmarks/random`.
    pub async fn random(&self) -> Result<Answer, Transport> {
        self.get("/api/bookmarks/random").await
    }

    /// `GET /api/search?q=Q`, signed in with `token` when given (search covers the
    /// rooms the caller may read).
    pub async fn search(&self, q: &str, token: Option<&str>) -> Result<Answer, Transport> {
        self.send(Method::GET, &format!("/api/search?q={}", query(q)), token, None::<&()>).await
    }

    /// The server's resident set and CPU time so far, as far as its `/metrics` tells
    /// (`firehose_app::resources`' names); `None` when there is no such page.
    pub async fn server_process(&self) -> Option<ServerProcess> {
        let answer = self.get("/metrics").await.ok()?;
        if !(200..300).contains(&answer.status) {
            return None;
        }
        let text = std::str::from_utf8(&answer.body).ok()?;
        Some(ServerProcess {
            rss_bytes: prometheus_value(text, resources::RSS_METRIC).map(|v| v as u64),
            cpu: prometheus_value(text, resources::CPU_METRIC)
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64),
        })
    }
}

/// One reading of the server's process figures; each absent when not exposed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServerProcess {
    pub rss_bytes: Option<u64>,
    pub cpu: Option<Duration>,
}

/// The value of an unlabelled Prometheus sample `name` in `text`.
pub fn prometheus_value(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let mut parts = l.split_whitespace();
        (parts.next()? == name).then(|| parts.next()?.parse().ok())?
    })
}

/// Percent-encodes a query value.
pub fn query(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_name_their_errors() {
        let a = |status| Answer { status, body: Bytes::new(), retry_after: None };
        assert_eq!(a(201).error_kind(), None);
        assert_eq!(a(429).error_kind().as_deref(), Some("rate_limited"));
        assert_eq!(a(500).error_kind().as_deref(), Some("http_500"));
        let ok = Answer { status: 200, body: Bytes::from_static(br#"{"data":{"count":3}}"#), retry_after: None };
        #[derive(serde::Deserialize)]
        struct C {
            count: i64,
        }
        assert_eq!(ok.data::<C>().map(|c| c.count), Some(3));
        assert_eq!(query("a b&c"), "a+b%26c");
        assert_eq!(
            prometheus_value("# x\nprocess_resident_memory_bytes 42\n", "process_resident_memory_bytes"),
            Some(42.0)
        );
    }
}
