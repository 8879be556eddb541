//! Which target each socket and each request goes to. With several targets (the nodes
//! of one cluster, sharing its database and broker, so an event posted to any node
//! reaches listeners on every node with the same per-topic `seq`):
//!
//! - a socket `k` of a workload (listener, actor, presence socket, page reader) starts
//!   on its home target `(k + agent) mod n`: round-robin by index, offset by the agent
//!   slot so that the agents of a run do not all start on target 0;
//! - a socket that cannot connect to a target (refused, no answer, a failed TLS
//!   handshake or upgrade) tries the next one, each target once per connect, and its
//!   owner keeps the target it reached: its reconnects go back there first. So the
//!   listeners of a node that died move to the others and rejoin with `since`;
//! - HTTP actions go round-robin by action index, with the same offset;
//! - setup (accounts, rooms, seed bookmarks) uses the first target.
//!
//! With one target every choice is that target. How many sockets connected to each
//! target, and how many connects moved on from it, go into the report (`targets`).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

use crate::http;
use crate::phoenix::{Endpoint, Failure, Socket};

/// Where index `index` starts among `n` targets for agent `offset`: the one rule for
/// sockets and actions.
fn home(index: u64, offset: usize, n: usize) -> usize {
    (index.wrapping_add(offset as u64) % n.max(1) as u64) as usize
}

/// The run's targets as its sockets reach them.
pub struct Route {
    endpoints: Vec<Endpoint>,
    /// Each target's `http(s)://host:port`.
    bases: Vec<String>,
    /// The agent slot's index (0 for a single process).
    offset: usize,
    counts: Box<[TargetCounts]>,
}

/// What the sockets of a run did at one target.
#[derive(Debug, Default)]
struct TargetCounts {
    connected: AtomicU64,
    failovers: AtomicU64,
}

/// One target's figures so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetTally {
    /// Sockets connected (upgraded) to it, reconnects included.
    pub connected: u64,
    /// Connects to it that failed, after which the socket tried the next target.
    pub failovers: u64,
}

impl Route {
    /// Each target's socket endpoint and base URL, in `--target` order (at least one);
    /// `offset` the agent's index.
    pub fn new(targets: Vec<(Endpoint, String)>, offset: usize) -> Self {
        assert!(!targets.is_empty(), "a run has at least one target");
        let counts = targets.iter().map(|_| TargetCounts::default()).collect();
        let (endpoints, bases) = targets.into_iter().unzip();
        Self { endpoints, bases, offset, counts }
    }

    /// How many targets.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The target socket or action `index` starts on.
    pub fn home(&self, index: usize) -> usize {
        home(index as u64, self.offset, self.len())
    }

    /// `client` (one connection pool) at every target, for actions.
    pub fn clients(&self, client: &http::Client) -> Clients {
        Clients { clients: self.bases.iter().map(|b| client.at(b.clone())).collect(), offset: self.offset }
    }

    /// Connects from `source` (signed in with `token`) to target `from`, or, when that
    /// fails, to the next targets in order, each once, all before `deadline`. The
    /// socket and the target it reached; the last failure when none took it.
    pub async fn connect(
        &self,
        from: usize,
        source: Option<Ipv4Addr>,
        token: Option<&str>,
        deadline: Instant,
    ) -> Result<(Socket, usize), Failure> {
        let n = self.len();
        let mut failure = None;
        for step in 0..n {
            let at = (from + step) % n;
            match self.endpoints[at].connect(source, token, deadline).await {
                Ok(socket) => {
                    self.counts[at].connected.fetch_add(1, Ordering::Relaxed);
                    return Ok((socket, at));
                }
                Err(f) => {
                    if step + 1 < n {
                        self.counts[at].failovers.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::debug!(url = %self.endpoints[at].url(), failure = %f, "connect failed");
                    failure = Some(f);
                }
            }
        }
        Err(failure.unwrap_or(Failure::Eof))
    }

    /// Every target's figures so far, in `--target` order.
    pub fn tallies(&self) -> Vec<TargetTally> {
        self.counts
            .iter()
            .map(|c| TargetTally {
                connected: c.connected.load(Ordering::Relaxed),
                failovers: c.failovers.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// One HTTP client per target over one connection pool: action `i` goes to target
/// `(i + agent) mod n`.
#[derive(Debug, Clone)]
pub struct Clients {
    clients: std::sync::Arc<[http::Client]>,
    offset: usize,
}

impl Clients {
    /// The client action `i` of a kind goes through.
    pub fn for_action(&self, i: u64) -> &http::Client {
        &self.clients[home(i, self.offset, self.clients.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(addr: std::net::SocketAddr) -> (Endpoint, String) {
        (Endpoint::new(addr, &addr.to_string(), "/socket/websocket?vsn=2.0.0", None), format!("http://{addr}"))
    }

    #[test]
    fn homes_are_round_robin_from_the_agents_offset() {
        let addr = "127.0.0.1:1".parse().unwrap();
        let three = Route::new(vec![endpoint(addr), endpoint(addr), endpoint(addr)], 0);
        assert_eq!((0..7).map(|k| three.home(k)).collect::<Vec<_>>(), [0, 1, 2, 0, 1, 2, 0]);
        let agent1 = Route::new(vec![endpoint(addr), endpoint(addr)], 1);
        assert_eq!((0..4).map(|k| agent1.home(k)).collect::<Vec<_>>(), [1, 0, 1, 0]);
        let one = Route::new(vec![endpoint(addr)], 3);
        assert!((0..5).all(|k| one.home(k) == 0));
        let profile = crate::plan::profile::Profile::firehose();
        let client = http::Client::new("http://127.0.0.1:1", 1, None, profile).unwrap();
        let clients = agent1.clients(&client);
        assert_eq!(clients.for_action(0).base(), "http://127.0.0.1:1");
        assert_eq!((0..4).map(|i| agent1.home(i) == home(i as u64, 1, 2)).filter(|b| *b).count(), 4);
    }

    #[tokio::test]
    async fn a_refused_target_moves_the_socket_to_the_next() {
        // A port nobody listens on (freed), then a real WebSocket endpoint.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                held.push(tokio_tungstenite::accept_async(tcp).await.unwrap());
            }
        });
        let route = Route::new(vec![endpoint(dead), endpoint(live)], 0);
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let (_socket, at) = route.connect(0, None, None, deadline).await.unwrap();
        assert_eq!(at, 1);
        let (_socket, at) = route.connect(1, None, None, deadline).await.unwrap();
        assert_eq!(at, 1, "a target that takes the socket keeps it");
        assert_eq!(
            route.tallies(),
            [TargetTally { connected: 0, failovers: 1 }, TargetTally { connected: 2, failovers: 0 }]
        );
        let only_dead = Route::new(vec![endpoint(dead)], 0);
        assert!(matches!(only_dead.connect(0, None, None, deadline).await, Err(Failure::Connect(_))));
        assert_eq!(only_dead.tallies()[0].failovers, 0, "nowhere else to go");
    }
}
