//! Prometheus metrics: chain height, mempool depth, Raft role, term and
//! leader, and a histogram of submit→commit latency.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The node's metrics.
pub struct Metrics {
    registry: Registry,
    /// Height of the last applied block.
    pub chain_height: Gauge,
    /// Transactions held in the mempool.
    pub mempool_depth: Gauge,
    /// 1 when this node is the Raft leader.
    pub raft_is_leader: Gauge,
    /// Current Raft term.
    pub raft_term: Gauge,
    /// The node id of the current leader, 0 when none is known.
    pub raft_leader: Gauge,
    /// Transactions committed through this node's API.
    pub committed_txs: Counter,
    /// Blocks this node proposed.
    pub proposed_blocks: Counter,
    /// Seconds from a submission's arrival to its commit.
    pub commit_latency: Histogram,
    /// Snapshots received from a leader and refused by their check
    /// (`rxchain_snapshots_refused_total`).
    pub snapshots_refused: Counter,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("rxchain");
        let m = Metrics {
            chain_height: Gauge::default(),
            mempool_depth: Gauge::default(),
            raft_is_leader: Gauge::default(),
            raft_term: Gauge::default(),
            raft_leader: Gauge::default(),
            committed_txs: Counter::default(),
            proposed_blocks: Counter::default(),
            snapshots_refused: Counter::default(),
            commit_latency: Histogram::new([
                0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            registry: Registry::default(),
        };
        registry.register(
            "chain_height",
            "Height of the last applied block",
            m.chain_height.clone(),
        );
        registry.register(
            "mempool_depth",
            "Transactions waiting in the mempool",
            m.mempool_depth.clone(),
        );
        registry.register(
            "raft_is_leader",
            "1 when this node is the Raft leader",
            m.raft_is_leader.clone(),
        );
        registry.register("raft_term", "Current Raft term", m.raft_term.clone());
        registry.register(
            "raft_leader",
            "Node id of the current leader (0 = none)",
            m.raft_leader.clone(),
        );
        registry.register(
            "committed_txs",
            "Transactions committed through this node's API",
            m.committed_txs.clone(),
        );
        registry.register(
            "snapshots_refused",
            "Snapshots refused because they failed their check against the tip header",
            m.snapshots_refused.clone(),
        );
        registry.register(
            "proposed_blocks",
            "Blocks proposed by this node",
            m.proposed_blocks.clone(),
        );
        registry.register(
            "commit_latency_seconds",
            "Submit to commit latency",
            m.commit_latency.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
