//! The block producer: on the leader, cuts blocks from the mempool by count,
//! bytes or timeout, executes and signs them, and proposes each as one Raft
//! entry.
//!
//! One block is in flight at a time. The next block is built on the state
//! the previous one left, so the leader's outcomes are exactly what every
//! node recomputes; while a block commits, the next batch accumulates, which
//! is what makes per-block fsync affordable.

use std::sync::Arc;
use std::time::Duration;

use rxchain_contracts::{block, Outcome, SecretKey, TxId};
use tokio::sync::watch;

use crate::config::BlockSettings;
use crate::mempool::Mempool;
use crate::metrics::Metrics;
use crate::quorum::Quorum;
use crate::store::ChainStore;
use crate::types::{Raft, RaftRequest};

/// What the producer needs.
pub struct Producer {
    /// This node's id.
    pub node_id: u64,
    /// Signs the blocks this node proposes.
    pub node_key: Arc<SecretKey>,
    /// Raft.
    pub raft: Raft,
    /// Committed chain.
    pub chain: Arc<ChainStore>,
    /// Waiting transactions.
    pub mempool: Arc<Mempool>,
    /// Cutting rules.
    pub settings: BlockSettings,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The clock attestations that bound each block's time.
    pub quorum: Arc<Quorum>,
}

/// Fails the mempool's waiters whenever this node stops being the leader,
/// until `shutdown` flips to true.
///
/// Only the leader proposes, so a deposed leader's waiting transactions
/// would otherwise wait out their whole commit wait and answer 202 for
/// something this node can no longer propose. Clearing the mempool closes
/// their channels and the clients get 503 `not_committed` at once; a retry
/// (sent anywhere) is idempotent, and finds the receipt if the new leader
/// committed the block after all.
pub async fn fail_waiters_on_lost_leadership(
    raft: Raft,
    node_id: u64,
    mempool: Arc<Mempool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut metrics = raft.metrics();
    let mut was_leader = false;
    loop {
        let is_leader = metrics.borrow_and_update().current_leader == Some(node_id);
        if was_leader && !is_leader {
            let n = mempool.depth();
            tracing::warn!(
                waiting = n,
                "lost leadership; failing the waiting submissions so clients retry"
            );
            mempool.clear();
        }
        was_leader = is_leader;
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

impl Producer {
    /// Runs until `shutdown` flips to true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut checked_term = None;
        loop {
            if *shutdown.borrow() {
                return;
            }
            // Wait for work.
            if self.mempool.queued().0 == 0 {
                tokio::select! {
                    _ = self.mempool.arrived.notified() => {}
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                }
            }
            let metrics = self.raft.metrics().borrow().clone();
            if metrics.current_leader != Some(self.node_id) {
                // Followers forward submissions, so anything queued here was
                // admitted while leader; it cannot be proposed from here.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            // A new leader first makes sure it has applied everything
            // committed by earlier terms, so its block builds on the true tip.
            if checked_term != Some(metrics.current_term) {
                if let Err(e) = self.raft.ensure_linearizable().await {
                    tracing::warn!(error = %e, "cannot confirm leadership yet");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                checked_term = Some(metrics.current_term);
            }
            // Let a batch build up for a moment unless it is already full.
            let (n, bytes) = self.mempool.queued();
            if n < self.settings.max_txs
                && bytes < self.settings.max_bytes
                && self.settings.max_wait_ms > 0
            {
                tokio::time::sleep(Duration::from_millis(self.settings.max_wait_ms)).await;
            }
            if self.chain.consortium().node(self.node_id).is_none() {
                // Governance removed this node: its blocks would be refused
                // by every other node. The reconciler takes it out of Raft.
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let batch = self
                .mempool
                .take_batch(self.settings.max_txs, self.settings.max_bytes);
            if batch.is_empty() {
                continue;
            }
            let ids: Vec<TxId> = batch.iter().map(|t| t.id()).collect();
            // A leader that does not hold a majority's clocks yet (just
            // elected, or a peer just back) asks for them once before
            // building, so chain time does not stand still needlessly.
            match self.quorum.has_clock_majority() {
                Ok(true) => {}
                Ok(false) => self.quorum.refresh_before_block().await,
                Err(e) => tracing::warn!(error = %e, "cannot read the tip's clock proof"),
            }
            let tip = self.chain.tip();
            let proposed = {
                let chain = self.chain.clone();
                let key = self.node_key.clone();
                let node_id = self.node_id;
                let quorum = self.quorum.clone();
                // Executing a block is CPU work; keep it off the runtime's workers.
                tokio::task::spawn_blocking(move || {
                    // Without a majority's fresh clocks the block still
                    // goes out, with the newest proof held: chain time then
                    // cannot pass that proof's bound.
                    let clock = quorum.clock_proof().map_err(|e| e.to_string())?;
                    let view = chain.state();
                    let proposed = block::propose(
                        chain.genesis(),
                        &view,
                        &tip,
                        batch,
                        clock,
                        quorum.now(),
                        node_id,
                        &key,
                    );
                    // A failed sled read makes the outcomes meaningless; do not propose them.
                    view.check().map_err(|e| e.to_string())?;
                    proposed.map_err(|e| e.to_string())
                })
                .await
            };
            let block = match proposed {
                Ok(Ok((block, exec))) => {
                    self.mempool
                        .set_proposed(block.hash(self.chain.genesis().chain_id.as_str()), exec);
                    block
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "state is corrupt; cannot build blocks");
                    self.mempool.requeue(&ids);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "block building task failed");
                    self.mempool.requeue(&ids);
                    continue;
                }
            };
            let height = block.header.height;
            let refusals: Vec<&'static str> = block
                .outcomes
                .iter()
                .filter_map(|o| match o {
                    Outcome::Refused { reason } => Some(reason.code()),
                    Outcome::Applied => None,
                })
                .collect();
            match self.raft.client_write(RaftRequest::Block(block)).await {
                Ok(resp) => {
                    self.metrics.proposed_blocks.inc();
                    if let Some(why) = resp.data.rejected {
                        tracing::warn!(height, %why, "proposed block was not applied; requeueing");
                        self.mempool.requeue(&ids);
                        checked_term = None;
                    } else {
                        // Counted here, at commit, not where a client
                        // waits: a client that gave up still committed.
                        self.metrics.committed_txs.inc_by(ids.len() as u64);
                        refusals.iter().for_each(|code| self.metrics.refused(code));
                    }
                }
                Err(e) => {
                    tracing::warn!(height, error = %e, "proposal failed; lost leadership?");
                    // Whatever was not applied goes back; applied ones are gone from the pool.
                    self.mempool.requeue(&ids);
                    checked_term = None;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}
