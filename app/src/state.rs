//! `AppState`: the shared handles every handler and socket task reaches through. One
//! `Arc` around all of them: axum clones the state for every extractor and middleware
//! of every request, and one reference count is cheaper to move than a dozen.

use std::net::IpAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bookmarks::RecentCache;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::pubsub::PubSub;
use crate::ratelimit::{IpLimit, RateLimiter, UserLimits};
use crate::store::{Store, Writer};

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What `AppState` shares, reached through it by field (`state.store`, `state.pubsub`).
pub struct Shared {
    pub config: Arc<Config>,
    /// Reads, and the writes that are not group-committed.
    pub store: Store,
    /// Bookmark, like and chat message writes, committed in groups (`store::Writer`).
    pub writer: Writer,
    pub cache: Arc<RecentCache>,
    pub pubsub: Arc<PubSub>,
    pub metrics: Arc<Metrics>,
    /// Cancelled when the server starts shutting down; socket tasks watch it.
    pub shutdown: CancellationToken,
    /// Socket tasks, so shutdown can wait for them to close.
    pub sockets: TaskTracker,
    /// Per-client-IP budget for login, registration and password change.
    pub auth_limiter: Arc<RateLimiter<IpAddr>>,
    /// Per-client-IP budget for creating accounts (`POST /api/users`, registration).
    pub signups: Arc<IpLimit>,
    /// Per-user budgets for messages, likes, bookmark creation, typing and uploads.
    pub limits: Arc<UserLimits>,
    /// Who reads which page (`page:<path>` topics); an actor owning all page state.
    pub readers: crate::readers::Readers,
    /// Open signed-in sockets by the credential they connected with, closed when it is
    /// revoked (`crate::accounts::LiveSockets`).
    pub live_sockets: Arc<crate::accounts::LiveSockets>,
    /// Recently resolved tokens (`crate::accounts::TokenCache`); revocations evict.
    pub tokens: Arc<crate::accounts::TokenCache>,
    /// The chat rooms' actors by slug (`crate::chat`).
    pub rooms: crate::chat::RoomRegistry,
    /// The cap on open WebSockets: an upgrade takes a slot, its socket task holds it.
    pub socket_slots: Arc<crate::connections::SocketSlots>,
    /// Per-client-IP budget for anonymous searches (`None`: off).
    pub anon_search: Option<Arc<RateLimiter<IpAddr>>>,
}
