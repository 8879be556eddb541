//! The servers' own process figures (their `/metrics`: resident memory and CPU time),
//! read from every target at once: before the sockets open, once after the joins and
//! after traffic. The report shows them per target and summed over the distinct nodes:
//! a URL given twice is one server, read and counted once.

use std::time::Duration;

use crate::http::{self, ServerProcess};
use crate::report::model::{ServerResources, per_delivery};

/// One client per distinct node, reading `/metrics`.
pub struct Servers {
    clients: Vec<http::Client>,
    /// For each target, the index of its node in `clients`.
    node_of: Vec<usize>,
}

/// One reading of every target, in `--target` order (`None`: it exposes no figures).
pub type Reading = Vec<Option<ServerProcess>>;

impl Servers {
    /// `api` (one connection pool) at every distinct base URL of `bases`.
    pub fn new<'a>(api: &http::Client, bases: impl IntoIterator<Item = &'a str>) -> Self {
        let (mut clients, mut node_of) = (Vec::<http::Client>::new(), Vec::new());
        for base in bases {
            let node = clients.iter().position(|c| c.base() == base).unwrap_or_else(|| {
                clients.push(api.at(base));
                clients.len() - 1
            });
            node_of.push(node);
        }
        Self { clients, node_of }
    }

    /// Every target's figures now: each node read once (all concurrently), so entries
    /// of one node show one reading.
    pub async fn read(&self) -> Reading {
        let nodes = futures_util::future::join_all(self.clients.iter().map(http::Client::server_process)).await;
        self.node_of.iter().map(|&n| nodes[n]).collect()
    }
}

/// Everything the report says about the servers.
#[derive(Debug, Clone, Default)]
pub struct ServerFacts {
    /// Each target's base URL (what makes two entries one node).
    pub urls: Vec<String>,
    /// Before any socket opened.
    pub before: Reading,
    /// After every socket joined (memory), which is also the start of traffic (CPU).
    pub joined: Reading,
    /// After traffic (CPU).
    pub after: Reading,
    /// Sockets connected to each target by the time of `joined`.
    pub sockets: Vec<u64>,
    /// The embedded app: the figures include the simulator.
    pub embedded: bool,
}

impl ServerFacts {
    /// Target `t`'s server: memory per socket over every socket its node held (all
    /// entries with its URL); its CPU during traffic.
    pub fn of_target(&self, t: usize, traffic: Duration) -> Option<ServerResources> {
        let node_sockets: u64 =
            self.urls.iter().zip(&self.sockets).filter(|(u, _)| **u == self.urls[t]).map(|(_, n)| n).sum();
        let mut figures = self.figures(&[t], node_sockets, traffic, None)?;
        figures.sockets = Some(node_sockets);
        Some(figures)
    }

    /// The servers together: every distinct node once; memory per socket over the
    /// `joined` sockets of the run, CPU per delivery over `received` deliveries.
    pub fn summed(&self, joined: u64, received: u64, traffic: Duration) -> Option<ServerResources> {
        let nodes: Vec<usize> = (0..self.urls.len()).filter(|&t| !self.urls[..t].contains(&self.urls[t])).collect();
        self.figures(&nodes, joined, traffic, Some(received))
    }

    /// The figures of `targets` added up (`None` unless each has both memory readings).
    fn figures(
        &self,
        targets: &[usize],
        sockets: u64,
        traffic: Duration,
        received: Option<u64>,
    ) -> Option<ServerResources> {
        let sum = |reading: &Reading, pick: fn(&ServerProcess) -> Option<u64>| -> Option<u64> {
            targets.iter().map(|&t| reading.get(t).copied().flatten().as_ref().and_then(pick)).sum()
        };
        let rss = |p: &ServerProcess| p.rss_bytes;
        let (before, after) = (sum(&self.before, rss)?, sum(&self.joined, rss)?);
        let cpu = |reading: &Reading, t: usize| reading.get(t).copied().flatten().and_then(|p| p.cpu);
        let cpu_s = targets
            .iter()
            .map(|&t| Some(cpu(&self.after, t)?.saturating_sub(cpu(&self.joined, t)?).as_secs_f64()))
            .sum::<Option<f64>>();
        Some(ServerResources {
            rss_before_bytes: before,
            rss_after_bytes: after,
            rss_per_socket_bytes: crate::engine::build::per_item(Some(before), Some(after), sockets),
            same_process_as_simulator: self.embedded,
            cpu_s_during_traffic: cpu_s,
            cpu_cores_during_traffic: cpu_s.map(|c| c / traffic.as_secs_f64().max(1e-9)),
            cpu_us_per_delivery: cpu_s.zip(received).and_then(|(c, r)| per_delivery(c, r)),
            sockets: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(rss: u64, cpu_ms: u64) -> Option<ServerProcess> {
        Some(ServerProcess { rss_bytes: Some(rss), cpu: Some(Duration::from_millis(cpu_ms)) })
    }

    #[test]
    fn per_target_and_summed_over_distinct_nodes() {
        // Targets 0 and 2 are one node given twice; target 1 another node.
        let facts = ServerFacts {
            urls: vec!["http://a:1".into(), "http://b:1".into(), "http://a:1".into()],
            before: vec![process(1000, 0), process(2000, 0), process(1000, 0)],
            joined: vec![process(4000, 100), process(2600, 50), process(4000, 100)],
            after: vec![process(4000, 600), process(2600, 250), process(4000, 600)],
            sockets: vec![2, 2, 1],
            embedded: false,
        };
        let traffic = Duration::from_secs(1);
        let a = facts.of_target(0, traffic).unwrap();
        assert_eq!(a.sockets, Some(3), "both entries of node a");
        assert_eq!(a.rss_per_socket_bytes, Some(1000.0));
        assert_eq!(a.cpu_s_during_traffic, Some(0.5));
        assert_eq!(facts.of_target(2, traffic).unwrap().rss_per_socket_bytes, Some(1000.0));
        let b = facts.of_target(1, traffic).unwrap();
        assert_eq!(b.rss_per_socket_bytes, Some(300.0));
        let sum = facts.summed(5, 1000, traffic).unwrap();
        assert_eq!((sum.rss_before_bytes, sum.rss_after_bytes), (3000, 6600), "node a counted once");
        assert_eq!(sum.rss_per_socket_bytes, Some(720.0));
        assert_eq!(sum.cpu_s_during_traffic, Some(0.7));
        assert_eq!(sum.cpu_us_per_delivery, Some(700.0));
        assert_eq!(sum.sockets, None);
        let unread = ServerFacts { joined: vec![process(4000, 100), None, process(4000, 100)], ..facts };
        assert!(unread.summed(5, 1000, traffic).is_none(), "a node without figures: no sum");
        assert!(unread.of_target(0, traffic).is_some());
    }
}
