//! Prometheus metrics: chain height, mempool depth and bytes, Raft role,
//! term and leader, per-peer replication lag, append latency and append
//! failures, committed transactions, refusals by code, sign-in failures,
//! the patient e-mail outbox (queued, failed, scheduler runs), and a
//! histogram of submit→commit latency.
//!
//! Labelled series appear once something happened for their label (a peer
//! was sent entries, a code was refused).

use openraft::{BasicNode, RaftMetrics};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The label of a per-peer series: the peer's node id.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabel {
    /// The peer's node id.
    pub peer: u64,
}

/// The labels of a failed AppendEntries.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppendFailureLabels {
    /// The peer's node id.
    pub peer: u64,
    /// `timeout`, `unreachable`, `network`, `remote` or `too_large`.
    pub kind: &'static str,
}

/// The label of a refusal: its machine-readable code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// The code, as in the API's error bodies and receipts.
    pub code: &'static str,
}

/// The label of a failed sign-in: the error code answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// `bad_credentials`, `too_many_attempts`, `account_disabled`, `staff_revoked`, ...
    pub reason: &'static str,
}

/// A histogram family's constructor.
type NewHistogram = fn() -> Histogram;

fn append_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ])
}

/// The node's metrics.
pub struct Metrics {
    registry: Registry,
    /// Height of the last applied block.
    pub chain_height: Gauge,
    /// Patient e-mails queued on this (issuing) node, not yet sent.
    pub email_outbox_depth: Gauge,
    /// Patient e-mails given up (a permanent refusal or too many attempts),
    /// shown to the hospital's admin at `/admin/outbox`.
    pub email_failed: Gauge,
    /// Completed runs of the expiry scheduler and outbox pruner.
    pub email_scans: Counter,
    /// Transactions held in the mempool.
    pub mempool_depth: Gauge,
    /// Encoded bytes of the transactions held in the mempool.
    pub mempool_bytes: Gauge,
    /// 1 when this node is the Raft leader.
    pub raft_is_leader: Gauge,
    /// Current Raft term.
    pub raft_term: Gauge,
    /// The node id of the current leader, 0 when none is known.
    pub raft_leader: Gauge,
    /// Log entries (blocks) each peer is behind this leader; only the
    /// leader has these series.
    pub replication_lag: Family<PeerLabel, Gauge>,
    /// Seconds each AppendEntries to a peer took, successful or not.
    pub append_latency: Family<PeerLabel, Histogram, NewHistogram>,
    /// AppendEntries that failed, by peer and kind of failure.
    pub append_failures: Family<AppendFailureLabels, Counter>,
    /// AppendEntries still on the wire when openraft's heartbeat-long wait
    /// for them ended; they carry on until the append timeout (see
    /// `raft::network`), so these are not failures.
    pub appends_outlasting_heartbeat: Family<PeerLabel, Counter>,
    /// Transactions in blocks this node proposed and committed, applied or
    /// refused by a chain rule, whether or not a client still waited.
    pub committed_txs: Counter,
    /// Submissions refused, by code: by a chain rule in a committed block,
    /// at admission, or as malformed or throttled.
    pub refused: Family<CodeLabel, Counter>,
    /// Sign-ins refused, by reason.
    pub sign_in_failures: Family<ReasonLabel, Counter>,
    /// Blocks this node proposed.
    pub proposed_blocks: Counter,
    /// Blocks this node proposed while an earlier one of its own was
    /// still in flight (`block.pipeline` above 1).
    pub proposed_ahead: Counter,
    /// Blocks this node proposed that were not applied (lost with the
    /// leadership, or refused as not the next block); their transactions
    /// went back to the queue.
    pub proposals_not_applied: Counter,
    /// Seconds from a submission's arrival to its commit.
    pub commit_latency: Histogram,
    /// Snapshots received from a leader and refused by their check
    /// (`rxchain_snapshots_refused_total`).
    pub snapshots_refused: Counter,
    /// Key wraps this node erased after retention
    /// (`rxchain_erased_key_wraps_total`, see `store::erase`).
    pub erased_key_wraps: Counter,
    /// Erasure sweeps finished (`rxchain_erasure_sweeps_total`).
    pub erasure_sweeps: Counter,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("rxchain");
        let m = Metrics {
            chain_height: Gauge::default(),
            email_outbox_depth: Gauge::default(),
            email_failed: Gauge::default(),
            email_scans: Counter::default(),
            mempool_depth: Gauge::default(),
            mempool_bytes: Gauge::default(),
            raft_is_leader: Gauge::default(),
            raft_term: Gauge::default(),
            raft_leader: Gauge::default(),
            replication_lag: Family::default(),
            append_latency: Family::new_with_constructor(append_histogram),
            append_failures: Family::default(),
            appends_outlasting_heartbeat: Family::default(),
            committed_txs: Counter::default(),
            refused: Family::default(),
            sign_in_failures: Family::default(),
            proposed_blocks: Counter::default(),
            proposed_ahead: Counter::default(),
            proposals_not_applied: Counter::default(),
            snapshots_refused: Counter::default(),
            erased_key_wraps: Counter::default(),
            erasure_sweeps: Counter::default(),
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
            "email_outbox_depth",
            "Patient e-mails queued, not yet sent",
            m.email_outbox_depth.clone(),
        );
        registry.register(
            "email_failed",
            "Patient e-mails given up after a permanent refusal or too many attempts",
            m.email_failed.clone(),
        );
        registry.register(
            "email_scans",
            "Completed runs of the e-mail expiry scheduler and outbox pruner",
            m.email_scans.clone(),
        );
        registry.register(
            "mempool_depth",
            "Transactions waiting in the mempool",
            m.mempool_depth.clone(),
        );
        registry.register(
            "mempool_bytes",
            "Encoded bytes of the transactions waiting in the mempool",
            m.mempool_bytes.clone(),
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
            "raft_replication_lag_entries",
            "Log entries each peer is behind this leader (leader only)",
            m.replication_lag.clone(),
        );
        registry.register(
            "raft_append_seconds",
            "Duration of AppendEntries RPCs to each peer",
            m.append_latency.clone(),
        );
        registry.register(
            "raft_append_failures",
            "AppendEntries RPCs to each peer that failed, by kind",
            m.append_failures.clone(),
        );
        registry.register(
            "raft_appends_outlasting_heartbeat",
            "AppendEntries still running when openraft's heartbeat-long wait ended (they carry on until the append timeout; not failures)",
            m.appends_outlasting_heartbeat.clone(),
        );
        registry.register(
            "committed_txs",
            "Transactions in blocks this node proposed and committed (applied or refused by a chain rule)",
            m.committed_txs.clone(),
        );
        registry.register("refused", "Submissions refused, by code", m.refused.clone());
        registry.register(
            "sign_in_failures",
            "Sign-ins refused, by reason",
            m.sign_in_failures.clone(),
        );
        registry.register(
            "snapshots_refused",
            "Snapshots refused because they failed their check against the tip header",
            m.snapshots_refused.clone(),
        );
        registry.register(
            "erased_key_wraps",
            "Key wraps this node replaced by their digests after the retention period (crypto-shredding)",
            m.erased_key_wraps.clone(),
        );
        registry.register(
            "erasure_sweeps",
            "Erasure sweeps over this node's blocks and Raft log finished",
            m.erasure_sweeps.clone(),
        );
        registry.register(
            "proposed_blocks",
            "Blocks proposed by this node",
            m.proposed_blocks.clone(),
        );
        registry.register(
            "proposed_ahead_blocks",
            "Blocks proposed while an earlier one of this node's was still in flight",
            m.proposed_ahead.clone(),
        );
        registry.register(
            "proposals_not_applied",
            "Blocks this node proposed that were not applied (their transactions were queued again)",
            m.proposals_not_applied.clone(),
        );
        registry.register(
            "commit_latency_seconds",
            "Submit to commit latency",
            m.commit_latency.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts one refused submission under `code`.
    pub fn refused(&self, code: &'static str) {
        self.refused.get_or_create(&CodeLabel { code }).inc();
    }

    /// Counts one refused sign-in under `reason`.
    pub fn sign_in_failed(&self, reason: &'static str) {
        self.sign_in_failures
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Records one AppendEntries to `peer` that took `took`, failed with
    /// `failure` (its kind) or succeeded (`None`).
    pub fn append_done(&self, peer: u64, took: std::time::Duration, failure: Option<&'static str>) {
        self.append_latency
            .get_or_create(&PeerLabel { peer })
            .observe(took.as_secs_f64());
        if let Some(kind) = failure {
            self.append_failures
                .get_or_create(&AppendFailureLabels { peer, kind })
                .inc();
        }
    }

    /// Counts one AppendEntries to `peer` that outlasted openraft's wait.
    pub fn append_outlasted_heartbeat(&self, peer: u64) {
        self.appends_outlasting_heartbeat
            .get_or_create(&PeerLabel { peer })
            .inc();
    }

    /// Sets the Raft gauges from openraft's metrics: role, term, leader,
    /// and (on the leader) how many entries each peer is behind.
    pub fn observe_raft(&self, node_id: u64, m: &RaftMetrics<u64, BasicNode>) {
        self.raft_is_leader
            .set(i64::from(m.current_leader == Some(node_id)));
        self.raft_term.set(m.current_term as i64);
        self.raft_leader.set(m.current_leader.unwrap_or(0) as i64);
        // A former leader's peers are not this node's to report any more.
        self.replication_lag.clear();
        if let Some(replication) = &m.replication {
            let last = m.last_log_index.unwrap_or(0);
            for (&peer, matched) in replication {
                if peer == node_id {
                    continue;
                }
                let matched = matched.map_or(0, |l| l.index);
                self.replication_lag
                    .get_or_create(&PeerLabel { peer })
                    .set(last.saturating_sub(matched) as i64);
            }
        }
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
