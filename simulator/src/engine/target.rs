//! The server under test: booted in-process (embedded) or already running (external).
//! An embedded server lives on 127.0.0.1:0 over SQLite in a temporary directory that
//! is removed when the target closes, after a graceful shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use firehose_app::config::{Config, RateLimits};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::engine::error::SimError;
use crate::plan::TargetSpec;

/// How long to wait for an external target to accept a TCP connection.
const REACHABILITY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an embedded server may take to shut down.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);

pub enum Target {
    Embedded {
        addr: SocketAddr,
        running: firehose_app::server::Running,
        stop: oneshot::Sender<()>,
        /// Kept until the server stopped: the database lives here.
        dir: tempfile::TempDir,
    },
    External {
        addr: SocketAddr,
        url: String,
    },
}

impl Target {
    pub async fn open(spec: &TargetSpec) -> Result<Target, SimError> {
        match spec {
            TargetSpec::Embedded => boot().await,
            TargetSpec::External { url } => reach(url).await,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        match self {
            Target::Embedded { addr, .. } | Target::External { addr, .. } => *addr,
        }
    }

    /// `http://host:port`
    pub fn base_url(&self) -> String {
        match self {
            Target::Embedded { addr, .. } => format!("http://{addr}"),
            Target::External { url, .. } => url.clone(),
        }
    }

    pub fn is_embedded(&self) -> bool {
        matches!(self, Target::Embedded { .. })
    }

    /// Stops an embedded server and waits for its graceful shutdown; external targets
    /// are left running.
    pub async fn close(self) -> Result<(), SimError> {
        let Target::Embedded { running, stop, dir, .. } = self else { return Ok(()) };
        let _ = stop.send(());
        let finished = tokio::time::timeout(SHUTDOWN_TIMEOUT, running.wait()).await;
        drop(dir);
        finished.map_err(|_| SimError::Setup(format!("embedded server did not shut down within {SHUTDOWN_TIMEOUT:?}")))
    }
}

async fn boot() -> Result<Target, SimError> {
    let setup = |what: &str, e: &dyn std::fmt::Display| SimError::Setup(format!("embedded server: {what}: {e}"));
    let dir = tempfile::Builder::new().prefix("firehose-sim-").tempdir().map_err(|e| setup("temp dir", &e))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| setup("bind", &e))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let mut config = Config::for_data_dir(dir.path());
    // A load generator posts far more per user than a person may: no per-user limits.
    config.limits = RateLimits::off();
    let running = firehose_app::server::start(listener, config, async move {
        let _ = stopped.await;
    })
    .await
    .map_err(|e| setup("start", &e))?;
    Ok(Target::Embedded { addr: running.addr, running, stop, dir })
}

async fn reach(url: &str) -> Result<Target, SimError> {
    let hostport = url.trim_start_matches("http://");
    let unreachable = |why: String| SimError::Unreachable(format!("{url}: {why}"));
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host(hostport).await.map_err(|e| unreachable(format!("resolve: {e}")))?.collect();
    let mut last = "no address".to_owned();
    for addr in addrs {
        match tokio::time::timeout(REACHABILITY_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(_)) => return Ok(Target::External { addr, url: url.to_owned() }),
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: no answer within {REACHABILITY_TIMEOUT:?}"),
        }
    }
    Err(unreachable(last))
}
