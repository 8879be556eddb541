//! Starting and stopping the server: open the store, sweep orphaned upload files, load
//! the cache, serve the router on a given listener until the shutdown future resolves,
//! then drain the sockets.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accounts::TokenCache;
use crate::bookmarks::RecentCache;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::publisher::Publisher;
use crate::pubsub::PubSub;
use crate::ratelimit::{IpLimit, RateLimiter, UserLimits};
use crate::state::{AppState, Shared};
use crate::store::{Store, StoreError, Writer};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create data dir {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Broker(#[from] crate::broker::BrokerError),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// How long a stopping node waits for the broker to take its last broadcasts.
const LEAVE_CLUSTER_WAIT: Duration = Duration::from_secs(10);

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
    // Before anything is served, so no upload is in flight: what a crash left behind.
    let grace = config.uploads_dir.is_some().then_some(crate::uploads::SHARED_GRACE);
    if let Err(err) = crate::uploads::sweep_orphans(&store, config.uploads_root(), grace).await {
        tracing::warn!(%err, "could not sweep orphaned upload files");
    }
    let cache = RecentCache::load(&store, config.cache_capacity).await?;
    tracing::info!(cached = cache.len(), "bookmark cache loaded");
    let tokens = TokenCache::new(config.accounts.token_cache_ttl);
    let auth_limiter = RateLimiter::new(config.accounts.auth_rate, config.accounts.auth_rate_max_keys);
    let history = config.history;
    let limits = UserLimits::new(&config.limits);
    let signups = IpLimit::new(config.limits.signups, config.limits.max_keys);
    let readers_config = config.readers;
    let socket_slots = crate::connections::SocketSlots::new(crate::connections::resolve_max_connections(
        config.connections.max_connections,
    ));
    let anon_search =
        config.anonymous.search.map(|rate| Arc::new(RateLimiter::new(rate, config.anonymous.search_max_keys)));
    let metrics = Arc::new(Metrics::default());
    let (pubsub, broker, link) = match &config.broker {
        None => (Arc::new(PubSub::new(history)), None, None),
        Some(broker) => {
            let (broker, link) = crate::broker::connect(broker, history, metrics.clone()).await?;
            (Arc::new(PubSub::clustered(history, broker.clone())), Some(broker), Some(link))
        }
    };
    let replica = broker.clone().map(|b| b as Arc<dyn crate::presence::Replica>);
    let peers = broker.clone().map(|b| b as Arc<dyn crate::readers::Peers>);
    let readers = crate::readers::Readers::spawn(readers_config, peers);
    let link = link.map(|link| link.start(pubsub.clone(), readers.clone()));
    let cache = Arc::new(cache);
    cache.hear_other_nodes(&pubsub);
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
        replica,
    );
    let state = AppState::new(Shared {
        config: Arc::new(config),
        store,
        writer,
        cache,
        readers,
        pubsub,
        metrics,
        shutdown: shutdown_token,
        sockets: TaskTracker::new(),
        auth_limiter: Arc::new(auth_limiter),
        signups: Arc::new(signups),
        limits: Arc::new(limits),
        live_sockets: Arc::default(),
        tokens: Arc::new(tokens),
        rooms,
        socket_slots,
        anon_search,
    });
    crate::accounts::hear_revocations(&state.pubsub, state.tokens.clone(), state.live_sockets.clone());
    spawn_topic_sweeper(&state);
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
        tokio::spawn(signal);
        let header_timeout = task_state.config.connections.header_timeout;
        let metrics = task_state.metrics.clone();
        crate::connections::serve(listener, router, header_timeout, metrics, task_state.shutdown.clone()).await;
        // Upgraded sockets outlive hyper's connection tracking: wait for them here.
        task_state.sockets.close();
        task_state.sockets.wait().await;
        // Queued writes are committed (and announced) before the database closes.
        // In a cluster the last writes are answered once the broker took their
        // broadcasts; a broker that stays away past the wait is left behind.
        let mut link = link;
        let stopping = task_state.writer.stop();
        tokio::pin!(stopping);
        if tokio::time::timeout(LEAVE_CLUSTER_WAIT, &mut stopping).await.is_err() {
            tracing::warn!("the broker has not taken this node's last broadcasts; leaving without them");
            if let Some(link) = link.take() {
                link.stop().await;
            }
            stopping.await;
        }
        if let Some(link) = link {
            link.stop().await;
        }
        task_state.store.close().await;
        tracing::info!("stopped");
    });
    Ok(Running { addr, state, task })
}

/// Frees idle topics (no subscribers, history aged out) every few seconds until shutdown.
fn spawn_topic_sweeper(state: &AppState) {
    let period = (state.config.history.max_age / 4).clamp(Duration::from_millis(50), Duration::from_secs(10));
    let (pubsub, shutdown) = (state.pubsub.clone(), state.shutdown.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    let freed = pubsub.sweep();
                    if freed > 0 {
                        tracing::debug!(freed, "idle topics freed");
                    }
                }
            }
        }
    });
}
