//! The accept loop and one task per connection (HTTP/1.1 and h2c through hyper, with
//! upgrades). It stands in for `axum::serve`, which has no deadline for request heads
//! and, when descriptors run out, sleeps a whole second per failed accept and logs
//! every one of them.

use std::error::Error as StdError;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::metrics::Metrics;

/// Back-off after a failed accept, doubling from the first to the last and reset by
/// the next accepted connection: short, so that a freed descriptor is put to use within
/// a quarter second, while a loop that cannot accept does not spin.
const BACKOFF_FIRST: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_millis(250);
/// While accepts keep failing, one log line per this long.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets every HTTP
/// connection finish its requests and returns. Upgraded connections (WebSockets) have
/// left hyper by then; their tasks are tracked elsewhere.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's own deadline covers every request head on an HTTP/1 connection, the
    // first one and each one after a kept-alive response.
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
    // Extended CONNECT, for WebSockets over HTTP/2, as `axum::serve` has it.
    builder.http2().enable_connect_protocol();
    let builder = Arc::new(builder);
    let connections = TaskTracker::new();
    let mut failing = Failing::default();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                failing.recovered();
                let connection = Connection {
                    builder: builder.clone(),
                    router: router.clone(),
                    header_timeout,
                    metrics: metrics.clone(),
                    shutdown: shutdown.clone(),
                };
                connections.spawn(connection.run(stream, peer));
            }
            Err(err) => {
                Metrics::add(&metrics.accept_errors, 1);
                // The peer gave up before it was accepted: nothing to wait for.
                if is_connection_error(&err) {
                    continue;
                }
                // Out of descriptors (EMFILE, ENFILE) or kernel memory: the pending
                // connections stay in the backlog until a descriptor is free.
                let wait = failing.next(&err);
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = sleep(wait) => {}
                }
            }
        }
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
    )
}

/// A streak of failed accepts: its back-off and its (rate-limited) log lines.
#[derive(Default)]
struct Failing {
    streak: u32,
    logged_at: Option<Instant>,
    unlogged: u64,
}

impl Failing {
    fn next(&mut self, err: &io::Error) -> Duration {
        let wait = BACKOFF_FIRST.saturating_mul(1 << self.streak.min(8)).min(BACKOFF_MAX);
        self.streak = self.streak.saturating_add(1);
        self.unlogged += 1;
        let now = Instant::now();
        if self.logged_at.is_none_or(|t| now >= t + LOG_EVERY) {
            tracing::warn!(%err, failed = self.unlogged, ?wait, "accept failed; backing off, still accepting");
            self.logged_at = Some(now);
            self.unlogged = 0;
        }
        wait
    }

    fn recovered(&mut self) {
        if self.streak > 0 {
            tracing::info!(failed = self.streak, "accepting again");
            self.streak = 0;
        }
    }
}

/// One accepted connection and what serving it needs.
struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    router: Router,
    header_timeout: Duration,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

impl Connection {
    async fn run(self, stream: TcpStream, peer: SocketAddr) {
        let Connection { builder, router, header_timeout, metrics, shutdown } = self;
        // Set once the first request head is complete (the service is called).
        let requested = Arc::new(AtomicBool::new(false));
        let service = {
            let requested = requested.clone();
            hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                requested.store(true, Relaxed);
                req.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(req)
            })
        };
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        tokio::pin!(conn);
        // Before hyper knows the protocol it waits for the first bytes with no deadline
        // of its own (and HTTP/2 has no head deadline at all): this one covers the
        // first request of every connection.
        let first_head = sleep(header_timeout);
        tokio::pin!(first_head);
        let (mut first_pending, mut draining) = (true, false);
        loop {
            tokio::select! {
                served = conn.as_mut() => {
                    if let Err(err) = served {
                        if is_timeout(&*err) {
                            Metrics::add(&metrics.header_timeouts, 1);
                        }
                        tracing::trace!(%peer, %err, "connection ended");
                    }
                    break;
                }
                () = &mut first_head, if first_pending => {
                    first_pending = false;
                    if !requested.load(Relaxed) {
                        Metrics::add(&metrics.header_timeouts, 1);
                        tracing::debug!(%peer, "no request head within the header timeout; closing");
                        // Dropping the connection closes it.
                        break;
                    }
                }
                () = shutdown.cancelled(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// hyper's header read timeout ended the connection.
fn is_timeout(err: &(dyn StdError + Send + Sync + 'static)) -> bool {
    err.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout)
}
