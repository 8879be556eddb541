//! What a workload is to the engine: something that prepares (setup over HTTP, not
//! measured), opens its sockets, starts with the run's clock, hands the dispatcher its
//! scheduled lanes, drains what it is still owed and finishes by settling its
//! accounting into the run's [`Meters`]. The engine runs every workload of a plan
//! through these steps in the same order, on the same clock; it never knows which
//! workloads there are.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::dispatch::Lane;
use super::error::SimError;
use super::meters::Meters;
use super::route::{Clients, Route};
use crate::fixtures::Corpus;
use crate::http;
use crate::phoenix::{Failure, Socket};
use crate::plan::Plan;
use crate::plan::source::SourceIps;

/// What every workload of a run shares.
pub struct Cx {
    pub plan: Arc<Plan>,
    /// Random per run (shared by every agent of a run); in measured URLs and messages.
    pub run_id: String,
    pub corpus: Arc<Corpus>,
    pub meters: Arc<Meters>,
    /// Which target each socket goes to (one or several).
    pub route: Route,
    /// The first target's HTTP API for setup (on the main runtime).
    pub api: http::Client,
    /// Source addresses listener sockets bind to, round-robin.
    pub sources: SourceIps,
    /// The TLS config of an `https://` target, for the HTTP clients workloads make
    /// for the dispatcher's runtime.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Cancelled when the run stops: every socket stops reading.
    pub stop: CancellationToken,
    /// Cancelled when the traffic clock starts (t0): listeners arm their timers.
    pub started: CancellationToken,
    t0: OnceLock<Instant>,
}

impl Cx {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        plan: Arc<Plan>,
        run_id: String,
        corpus: Arc<Corpus>,
        route: Route,
        api: http::Client,
        sources: SourceIps,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        Self {
            plan,
            run_id,
            corpus,
            meters: Arc::default(),
            route,
            api,
            sources,
            tls,
            stop: CancellationToken::new(),
            started: CancellationToken::new(),
            t0: OnceLock::new(),
        }
    }

    /// This process's own id within the run: the run id, plus `a<I>` for agent `I`
    /// (names of what each agent makes for itself: users, rooms, pages).
    pub fn own_id(&self) -> String {
        match self.plan.agents.slot {
            Some(slot) => format!("{}a{}", self.run_id, slot.index),
            None => self.run_id.clone(),
        }
    }

    /// The traffic clock's start, once it started.
    pub fn t0(&self) -> Option<Instant> {
        self.t0.get().copied()
    }

    /// Starts the clock (once).
    pub(crate) fn start_clock(&self, t0: Instant) -> Instant {
        let t0 = *self.t0.get_or_init(|| t0);
        self.started.cancel();
        t0
    }

    /// Spawns `n` tasks, `make(k)` for `k` in `0..n`, at the run's connect rate: task
    /// `k` at `k / rate` from now (intended times, so a slow spawn does not slow the
    /// rest), until the run stops. How every workload opens its listeners.
    pub async fn spawn_paced<T, F>(&self, n: usize, mut make: impl FnMut(usize) -> F) -> Vec<JoinHandle<T>>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let per_second = self.plan.traffic.connect_rate_per_s;
        let start = Instant::now();
        let mut handles = Vec::with_capacity(n);
        for k in 0..n {
            tokio::time::sleep_until((start + Duration::from_secs_f64(k as f64 / per_second)).into()).await;
            if self.stop.is_cancelled() {
                break;
            }
            handles.push(tokio::spawn(make(k)));
        }
        handles
    }

    /// Connects socket `index` of a workload from the next source address (signed in
    /// with `token`), at its home target or, failing that, the next (see `route`):
    /// the socket and the target it reached.
    pub async fn connect(
        &self,
        index: usize,
        token: Option<&str>,
        deadline: tokio::time::Instant,
    ) -> Result<(Socket, usize), Failure> {
        self.route.connect(self.route.home(index), self.sources.next(), token, deadline).await
    }

    /// HTTP clients for measured requests, one per target over one connection pool,
    /// made for the dispatcher's runtime (a client's connections are driven by the
    /// runtime that uses them).
    pub fn measured_clients(&self) -> Result<Clients, SimError> {
        let client = http::Client::new(
            self.api.base(),
            self.plan.traffic.max_in_flight as usize,
            self.tls.as_ref(),
            Arc::new(self.api.profile().clone()),
        )
        .map_err(SimError::Setup)?;
        Ok(self.route.clients(&client))
    }
}

/// One part of a run's traffic (see the module doc).
pub trait Workload: Send + Sync {
    /// For messages: `bookmarks`, `actions`, `pages`, `reads`.
    fn name(&self) -> &'static str;

    /// Setup over HTTP (accounts, rooms, seed data; not measured), before any workload
    /// opens a socket. Registers its kinds and groups in `cx.meters`.
    fn prepare<'a>(&'a mut self, cx: &'a Arc<Cx>) -> BoxFuture<'a, Result<(), SimError>>;

    /// This workload's listener and actor sockets, waiting until each joined or gave up
    /// (memory is measured around every workload's `open`). An error stops the run
    /// before traffic.
    fn open<'a>(&'a mut self, cx: &'a Arc<Cx>) -> BoxFuture<'a, Result<(), SimError>>;

    /// The clock started at `t0`.
    fn start(&self, cx: &Arc<Cx>, t0: Instant);

    /// The scheduled actions, as lanes for the dispatcher (on its own runtime).
    fn drive(&self, cx: &Arc<Cx>) -> Result<Vec<Lane>, SimError>;

    /// Waits until every action was answered and every owed delivery arrived (true),
    /// or `deadline` passed (false).
    fn drain<'a>(&'a self, cx: &'a Arc<Cx>, deadline: Instant) -> BoxFuture<'a, bool>;

    /// What this process knows about its own actions' outcomes that other agents of the
    /// same run need to account their deliveries (JSON; `null` when nothing).
    fn outcomes(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Every agent's [`Workload::outcomes`] (this one's included), before `finish`.
    fn absorb(&self, _all: &[serde_json::Value]) {}

    /// Stops the sockets and settles the accounting into the meters (expected and lost
    /// per group, kind details). Actions never answered become errors.
    fn finish<'a>(self: Box<Self>, cx: &'a Arc<Cx>) -> BoxFuture<'a, ()>;
}

/// Beyond a socket's own join timeout, how long a workload's sockets may take to settle.
pub const SETTLE_MARGIN: Duration = Duration::from_secs(30);
/// How often a drain checks whether it is done.
pub const DRAIN_POLL: Duration = Duration::from_millis(10);

/// Waits until `everyone` sockets of a workload settled (each releases one permit of
/// `settled` once it joined or failed): an error naming `what` if they take longer than
/// a join timeout and [`SETTLE_MARGIN`].
pub async fn settle(settled: &tokio::sync::Semaphore, everyone: usize, what: &str) -> Result<(), SimError> {
    let everyone = u32::try_from(everyone).unwrap_or(u32::MAX);
    match tokio::time::timeout(crate::phoenix::JOIN_TIMEOUT + SETTLE_MARGIN, settled.acquire_many(everyone)).await {
        Ok(Ok(permits)) => {
            permits.forget();
            Ok(())
        }
        Ok(Err(_)) | Err(_) => Err(SimError::Setup(format!("{what} neither joined nor failed in time"))),
    }
}

/// Polls `done` every [`DRAIN_POLL`] until it holds (true) or `deadline` passes (false).
pub async fn drain_until(deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}
