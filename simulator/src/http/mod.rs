//! The target's HTTP API as the simulator calls it: create a user, create a bookmark,
//! read `/metrics`. One pooled keep-alive client for the whole run. The requests'
//! method, path, headers and body come from the target profile (`profile`), the
//! firehose app's by default.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::resources;
use crate::plan::profile::{Auth, Profile, Vars};

/// A request may take this long before it counts as a `timeout` error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Bookmark content as the simulator posts it: a corpus link.
pub use crate::fixtures::Link as Draft;

/// What a created response says about the item, as stored (or, where the profile
/// reads nothing from the response, as requested).
#[derive(Debug, Clone)]
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
    profile: Arc<Profile>,
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
        Ok(Self { http, base: base.into(), profile: Profile::firehose() })
    }

    /// The same client speaking to the app `profile` describes.
    pub fn with_profile(mut self, profile: Arc<Profile>) -> Self {
        self.profile = profile;
        self
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
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

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The profile's user creation (`POST /api/users` for firehose): `Ok(Ok(token))`
    /// on its success status, `Ok(Err(status))` otherwise.
    pub async fn create_user(&self, username: &str) -> Result<Result<String, u16>, String> {
        let Auth::Users { method, path, body, status: created, token } = &self.profile.auth else {
            return Err("the target profile creates no users".into());
        };
        let what = format!("{method} {path}");
        let body = body.render(&Vars { username, ..Vars::default() });
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| format!("{what}: {e}"))?;
        let resp = self
            .http
            .request(method, format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        let status = resp.status().as_u16();
        if status != *created {
            return Ok(Err(status));
        }
        let body: serde_json::Value = resp.json().await.map_err(|e| format!("{what} response: {e}"))?;
        match token.get(&body).and_then(|t| t.as_str()) {
            Some(t) => Ok(Ok(t.to_owned())),
            None => Err(format!("{what} response has no string at {}", token.text)),
        }
    }

    /// The profile's create request (`POST /api/bookmarks` for firehose) with `url` in
    /// place of the draft's. The status, and for a created response what was stored.
    /// The profile's "created" status is reported as 201, the code the run counts as
    /// created for every profile.
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
        let method = reqwest::Method::from_bytes(create.method.as_bytes()).map_err(|_| Transport::Other)?;
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
