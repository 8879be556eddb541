//! Starting and stopping the server: open the store, load the cache, serve the router
//! on a given listener until the shutdown future resolves, then drain the sockets.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bookmarks::RecentCache;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::publisher::Publisher;
use crate::pubsub::PubSub;
use crate::ratelimit::{RateLimiter, UserLimits};
use crate::state::AppState;
use crate::store::{Store, StoreError, Writer};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create data dir {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    state: AppState,
    task: JoinHandle<()>,
}

impl Running {
    /// Shared state, for in-process inspection (tests, the embedded simulator target).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Waits until the server has shut down (after the shutdown future resolved).
    pub async fn wait(self) {
        if let Err(err) = self.task.await {
            tracing::error!(%err, "server task failed");
        }
    }
}

/// Starts the server on `listener`; it runs until `shutdown` resolves.
pub async fn start(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, ServerError> {
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|source| ServerError::DataDir { path: config.data_dir.display().to_string(), source })?;
    }
    let store = Store::open(&config.database_url()).await?;
    let cache = RecentCache::load(&store, config.cache_capacity).await?;
    tracing::info!(cached = cache.len(), "bookmark cache loaded");
    let auth_limiter = RateLimiter::new(config.accounts.auth_rate, config.accounts.auth_rate_max_keys);
    let history = config.history;
    let limits = UserLimits::new(&config.limits);
    let readers_config = config.readers;
    let pubsub = Arc::new(PubSub::new(history));
    let metrics = Arc::new(Metrics::default());
    let cache = Arc::new(cache);
    let publisher = Publisher { pubsub: pubsub.clone(), metrics: metrics.clone(), cache: cache.clone() };
    let writer = Writer::spawn(store.clone(), config.write_queue, publisher.spawn());
    let shutdown_token = CancellationToken::new();
    let rooms = crate::chat::RoomRegistry::new(
        store.clone(),
        writer.clone(),
        pubsub.clone(),
        config.chat,
        config.debug_topics,
        shutdown_token.clone(),
    );
    let state = AppState {
        config: Arc::new(config),
        store,
        writer,
        cache,
        readers: crate::readers::Readers::spawn(readers_config, pubsub.clone()),
        pubsub,
        metrics,
        shutdown: shutdown_token,
        sockets: TaskTracker::new(),
        auth_limiter: Arc::new(auth_limiter),
        limits: Arc::new(limits),
        live_sockets: Arc::default(),
        rooms,
    };
    let addr = listener.local_addr()?;
    let router = crate::http::router(state.clone());
    let task_state = state.clone();
    let task = tokio::spawn(async move {
        let token = task_state.shutdown.clone();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down");
            token.cancel();
        };
        let served = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(signal)
            .await;
        if let Err(err) = served {
            tracing::error!(%err, "server error");
        }
        // Upgraded sockets outlive hyper's connection tracking: wait for them here.
        task_state.sockets.close();
        task_state.sockets.wait().await;
        // Queued writes are committed (and announced) before the database closes.
        task_state.writer.stop().await;
        task_state.store.close().await;
        tracing::info!("stopped");
    });
    Ok(Running { addr, state, task })
}
