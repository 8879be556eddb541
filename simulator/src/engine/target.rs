//! The servers under test: booted in-process (embedded, always one) or already running
//! (external, `http://` or `https://`, one or more nodes of a cluster). An embedded
//! server lives on 127.0.0.1:0 over SQLite in a temporary directory that is removed
//! when the target closes, after a graceful shutdown. Each target gives the run its
//! base URL, its Phoenix endpoint and, for `https://`, the one TLS config every
//! connection uses.

use std::net::SocketAddr;
use std::time::Duration;

use firehose_app::config::Config;
use firehose_app::ratelimit::RateLimits;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use std::sync::Arc;

use crate::engine::error::SimError;
use crate::phoenix::Endpoint;
use crate::plan::{TargetPlan, TargetSpec};

/// How long to wait for an external target to accept a TCP connection.
const REACHABILITY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an embedded server may take to shut down.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);

/// An open target.
pub struct Target {
    pub addr: SocketAddr,
    /// `http(s)://host:port`
    pub base_url: String,
    /// For `https://` targets.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    server: Option<Embedded>,
}

struct Embedded {
    running: firehose_app::server::Running,
    stop: oneshot::Sender<()>,
    /// Kept until the server stopped: the database lives here.
    dir: tempfile::TempDir,
}

/// Every target of a run, in `--target` order (never empty).
pub struct Targets(Vec<Target>);

impl Targets {
    /// Boots the embedded app, or checks that every external target accepts a TCP
    /// connection (a repeated URL is reached once per entry).
    pub async fn open(plan: &TargetPlan) -> Result<Targets, SimError> {
        match &plan.spec {
            TargetSpec::Embedded => Ok(Targets(vec![Target::boot().await?])),
            TargetSpec::External { urls } => {
                let tls = if urls.iter().any(|u| u.starts_with("https://")) {
                    let config = crate::engine::tls::client_config(plan.tls.ca_cert.as_deref(), plan.tls.insecure)
                        .map_err(SimError::Setup)?;
                    Some(config)
                } else {
                    None
                };
                let mut targets = Vec::with_capacity(urls.len());
                for url in urls {
                    let addr = reach(url).await?;
                    let tls = tls.clone().filter(|_| url.starts_with("https://"));
                    targets.push(Target { addr, base_url: url.clone(), tls, server: None });
                }
                Ok(Targets(targets))
            }
        }
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Target> {
        self.0.iter()
    }

    /// The first target: where setup goes.
    pub fn first(&self) -> &Target {
        &self.0[0]
    }

    pub fn is_embedded(&self) -> bool {
        self.first().is_embedded()
    }

    /// Stops an embedded server (see [`Target::close`]); the first error, if any.
    pub async fn close(self) -> Result<(), SimError> {
        let mut first_error = Ok(());
        for target in self.0 {
            if let Err(e) = target.close().await
                && first_error.is_ok()
            {
                first_error = Err(e);
            }
        }
        first_error
    }
}

impl Target {
    /// The app booted in-process (see the module doc).
    pub async fn boot() -> Result<Target, SimError> {
        boot().await
    }

    pub fn is_embedded(&self) -> bool {
        self.server.is_some()
    }

    /// `host:port` as the URL names it.
    pub fn host(&self) -> &str {
        self.base_url.split_once("://").map_or(self.base_url.as_str(), |(_, h)| h)
    }

    /// The Phoenix socket at `path` (path and query) of this target.
    pub fn endpoint(&self, path: &str) -> Endpoint {
        Endpoint::new(self.addr, self.host(), path, self.tls.clone())
    }

    /// Stops an embedded server and waits for its graceful shutdown; external targets
    /// are left running.
    pub async fn close(self) -> Result<(), SimError> {
        let Some(Embedded { running, stop, dir }) = self.server else { return Ok(()) };
        let _ = stop.send(());
        let finished = tokio::time::timeout(SHUTDOWN_TIMEOUT, running.wait()).await;
        drop(dir);
        finished.map_err(|_| SimError::Setup(format!("embedded server did not shut down within {SHUTDOWN_TIMEOUT:?}")))
    }
}

async fn boot() -> Result<Target, SimError> {
    let setup = |what: &str, e: &dyn std::fmt::Display| SimError::Setup(format!("embedded server: {what}: {e}"));
    let dir = tempfile::Builder::new().prefix("firehose-sim-").tempdir().map_err(|e| setup("temp dir", &e))?;
    let listener =
        firehose_app::connections::bind(([127, 0, 0, 1], 0).into(), firehose_app::connections::DEFAULT_LISTEN_BACKLOG)
            .map_err(|e| setup("bind", &e))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let mut config = Config::for_data_dir(dir.path());
    // A load generator posts far more per user than a person may, and creates all its
    // accounts from one address: no per-user limits and no sign-up budget.
    config.limits = RateLimits::off();
    let running = firehose_app::server::start(listener, config, async move {
        let _ = stopped.await;
    })
    .await
    .map_err(|e| setup("start", &e))?;
    let addr = running.addr;
    Ok(Target { addr, base_url: format!("http://{addr}"), tls: None, server: Some(Embedded { running, stop, dir }) })
}

/// The address of `url` that accepts a TCP connection.
async fn reach(url: &str) -> Result<SocketAddr, SimError> {
    let hostport = url.split_once("://").map_or(url, |(_, h)| h);
    let unreachable = |why: String| SimError::Unreachable(format!("{url}: {why}"));
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host(hostport).await.map_err(|e| unreachable(format!("resolve: {e}")))?.collect();
    let mut last = "no address".to_owned();
    for addr in addrs {
        match tokio::time::timeout(REACHABILITY_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(_)) => return Ok(addr),
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: no answer within {REACHABILITY_TIMEOUT:?}"),
        }
    }
    Err(unreachable(last))
}
