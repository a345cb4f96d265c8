//! The block producer: on the leader, cuts blocks from the mempool by count,
//! bytes or timeout, executes and signs them, and proposes each as one Raft
//! entry.
//!
//! A block is bounded by transaction count and by the bytes of its whole
//! Raft entry (`block.max_bytes`, see [`tx_budget`]), so that the largest
//! block replicates well inside the append timeout.
//!
//! Up to `block.pipeline` blocks are in flight at a time (see
//! [`Producer::run`]). Each block is built on the state the blocks before it
//! leave, so the leader's outcomes are exactly what every node recomputes;
//! while blocks commit, the next batch accumulates, which is what makes
//! per-block fsync affordable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use rxchain_contracts::block::Tip;
use rxchain_contracts::state::{StateRead, WriteSet};
use rxchain_contracts::{block, governance, SecretKey, TxId};
use tokio::sync::watch;

use crate::config::BlockSettings;
use crate::mempool::Mempool;
use crate::metrics::Metrics;
use crate::quorum::Quorum;
use crate::store::ChainStore;
use crate::types::{Raft, RaftRequest, TypeConfig};

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

/// Bytes of a block's Raft entry that are not its transactions: the entry
/// and request framing, the header, the proposer's signature and the clock
/// proof (one attestation per declared node, about 100 bytes each).
pub const BLOCK_OVERHEAD_BYTES: usize = 16 * 1024;

/// Bytes reserved per transaction for its outcome (a refusal's reason and
/// its fields) and its length prefix.
pub const OUTCOME_RESERVE_BYTES: usize = 160;

/// How many transactions, at most, and how many of their encoded bytes a
/// block of `settings` may take, so that the block's whole Raft entry stays
/// within `settings.max_bytes`.
pub fn tx_budget(settings: &BlockSettings) -> (usize, usize) {
    let bytes = settings
        .max_bytes
        .saturating_sub(BLOCK_OVERHEAD_BYTES)
        .max(1);
    (settings.max_txs.max(1), bytes)
}

/// The size of a block's Raft entry payload: its postcard encoding, as the
/// log stores it and the Raft transport carries it.
pub fn entry_bytes(block: &rxchain_contracts::Block) -> usize {
    postcard::to_allocvec(block).map_or(usize::MAX, |v| v.len())
}

/// A block this node proposed whose Raft write has not resolved yet.
struct InFlight {
    /// Its transactions, requeued if it is not applied.
    ids: Vec<TxId>,
    /// The state writes it makes, read by the blocks cut on top of it
    /// until it is applied.
    writes: Arc<WriteSet>,
    /// The chain's tip once it is applied.
    tip: Tip,
    /// Whether it changes the consortium (members, nodes, parameters):
    /// nothing is built on it before it is applied, since the node reads
    /// the consortium from the committed chain.
    governs: bool,
}

/// The state a block in flight leaves: its writes (the newest first) over
/// the committed state. A block in flight that has been applied already
/// reads the same either way, since its writes are what it wrote.
struct Ahead<'a> {
    committed: &'a dyn StateRead,
    in_flight: &'a [Arc<WriteSet>],
}

impl StateRead for Ahead<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        for writes in self.in_flight.iter().rev() {
            if let Some(v) = writes.get(key) {
                return v.clone();
            }
        }
        self.committed.get(key)
    }
}

/// How one proposed block's Raft write resolved: its height, and Raft's answer
/// (an error when Raft stopped before answering).
type Settled = (
    u64,
    Result<openraft::raft::ClientWriteResult<TypeConfig>, tokio::sync::oneshot::error::RecvError>,
);

impl Producer {
    /// Records how the block at `height` resolved; false when it was not
    /// applied (its transactions are queued again).
    fn settle(&self, pending: &mut BTreeMap<u64, InFlight>, (height, result): Settled) -> bool {
        let Some(f) = pending.remove(&height) else {
            return true;
        };
        let applied = matches!(&result, Ok(Ok(r)) if r.data.rejected.is_none());
        tracing::debug!(height, applied, "proposal resolved");
        if !applied {
            self.metrics.proposals_not_applied.inc();
        }
        match result {
            Ok(Ok(resp)) => {
                self.metrics.proposed_blocks.inc();
                // Committed transactions are counted where this node applies
                // its own blocks (`Mempool::count_commits`), so a block
                // committed after its write failed here still counts.
                match resp.data.rejected {
                    None => true,
                    Some(why) => {
                        tracing::warn!(height, %why, "proposed block was not applied; requeueing");
                        self.mempool.requeue(&f.ids);
                        false
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(height, error = %e, "proposal failed; lost leadership?");
                // Whatever was not applied goes back; applied ones are gone from the pool.
                self.mempool.requeue(&f.ids);
                false
            }
            Err(_) => {
                tracing::warn!(height, "raft stopped before answering a proposal");
                self.mempool.requeue(&f.ids);
                false
            }
        }
    }

    /// Runs until `shutdown` flips to true.
    ///
    /// Up to `block.pipeline` blocks are in flight: after proposing one,
    /// the next is cut and executed on the state it leaves (its writes
    /// over the committed state, its header as the tip) while it
    /// replicates. Only this task proposes, one block after another, so
    /// one leader still orders everything; Raft appends the entries in the
    /// order they were written. When a block in flight is not applied (a
    /// refusal, a lost leadership), every block built on it is refused as
    /// not extending the chain: the producer waits until all in flight
    /// have resolved, requeues what was not applied, and builds the next
    /// block on the committed tip again.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut checked_term = None;
        // Lowered for the next cut when a block came out over
        // `max_bytes` (its outcomes larger than reserved); never below 1.
        let mut cap: Option<usize> = None;
        let depth = self.settings.pipeline.max(1);
        let mut pending: BTreeMap<u64, InFlight> = BTreeMap::new();
        // Raft's answers, taken in the order the blocks were proposed (a
        // later block's answer may come first; it is held until the earlier
        // ones are in, so `pending` always ends with the newest block).
        let mut settled: FuturesOrdered<BoxFuture<'static, Settled>> = FuturesOrdered::new();
        // A block in flight was not applied: build nothing more until all
        // in flight have resolved.
        let mut broken = false;
        loop {
            if *shutdown.borrow() {
                return;
            }
            while let Some(Some(s)) = settled.next().now_or_never() {
                broken |= !self.settle(&mut pending, s);
            }
            let blocked = broken || pending.values().any(|f| f.governs);
            if !pending.is_empty() && (pending.len() >= depth || blocked) {
                tokio::select! {
                    Some(s) = settled.next() => broken |= !self.settle(&mut pending, s),
                    _ = shutdown.changed() => return,
                }
                continue;
            }
            if broken {
                // Everything in flight has resolved; start again from the
                // committed tip, as a new leader would.
                broken = false;
                checked_term = None;
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            // Wait for work.
            if self.mempool.queued().0 == 0 {
                tokio::select! {
                    _ = self.mempool.arrived.notified() => {}
                    Some(s) = settled.next() => {
                        broken |= !self.settle(&mut pending, s);
                        continue;
                    }
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
                if !pending.is_empty() {
                    // Proposed in an earlier term: let them resolve first.
                    broken = true;
                    continue;
                }
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
            let (max_txs, max_bytes) = tx_budget(&self.settings);
            let max_txs = cap.take().map_or(max_txs, |c| c.min(max_txs));
            let batch = self
                .mempool
                .take_batch(max_txs, max_bytes, OUTCOME_RESERVE_BYTES);
            if batch.is_empty() {
                continue;
            }
            let ids: Vec<TxId> = batch.iter().map(|t| t.id()).collect();
            // A leader that does not hold a majority's clocks yet (just
            // elected, or a peer just back) asks for them once before
            // building, so chain time does not stand still needlessly.
            //
            // Without a majority's fresh clocks the block still goes out,
            // with the newest proof held: chain time then cannot pass that
            // proof's bound. Attestations of the committed tip are valid on
            // a tip in flight above it.
            let clock = match self.quorum.clock_proof() {
                Ok(p) if self.quorum.is_clock_majority(&p) => Ok(p),
                Ok(_) => {
                    self.quorum.refresh_before_block().await;
                    self.quorum.clock_proof()
                }
                Err(e) => Err(e),
            };
            // The block goes on the last one in flight, or on the committed tip.
            let (tip, ahead) = match pending.values().next_back() {
                Some(last) => (
                    last.tip.clone(),
                    pending.values().map(|f| f.writes.clone()).collect(),
                ),
                None => (self.chain.tip(), Vec::new()),
            };
            tracing::debug!(
                on = tip.height,
                in_flight = ?pending.keys().collect::<Vec<_>>(),
                "cutting a block"
            );
            let proposed = {
                let chain = self.chain.clone();
                let key = self.node_key.clone();
                let node_id = self.node_id;
                let quorum = self.quorum.clone();
                let tip = tip.clone();
                // Executing a block is CPU work; keep it off the runtime's workers.
                tokio::task::spawn_blocking(move || {
                    let clock = clock.map_err(|e| e.to_string())?;
                    let view = chain.state();
                    let state = Ahead {
                        committed: &view,
                        in_flight: &ahead,
                    };
                    let proposed = block::propose(
                        chain.genesis(),
                        &state,
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
                Ok(Ok((block, _)))
                    if block.txs.len() > 1 && entry_bytes(&block) > self.settings.max_bytes =>
                {
                    // Never replicate a block larger than the bound: cut
                    // again with fewer transactions (they are still first
                    // in the queue).
                    let size = entry_bytes(&block);
                    let n = block.txs.len();
                    let fewer = (n * self.settings.max_bytes / size).clamp(1, n - 1);
                    tracing::warn!(
                        size,
                        n,
                        fewer,
                        "block over block.max_bytes; cutting again smaller"
                    );
                    self.mempool.requeue(&ids);
                    cap = Some(fewer);
                    continue;
                }
                Ok(Ok((block, exec))) => {
                    if !pending.is_empty() {
                        self.metrics.proposed_ahead.inc();
                    }
                    let hash = block.hash(self.chain.genesis().chain_id.as_str());
                    self.quorum
                        .remember_clock(block.header.height, hash, &block.clock);
                    pending.insert(
                        block.header.height,
                        InFlight {
                            ids,
                            governs: exec.writes.contains_key(&governance::consortium_key()),
                            writes: Arc::new(exec.writes.clone()),
                            tip: Tip {
                                height: block.header.height,
                                hash,
                                timestamp: block.header.timestamp,
                                state: exec.state,
                            },
                        },
                    );
                    self.mempool.set_proposed(hash, exec);
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
            // Handed to Raft in order; the answer is awaited elsewhere, so
            // the next block can be cut meanwhile.
            match self.raft.client_write_ff(RaftRequest::Block(block)).await {
                Ok(reply) => settled.push_back(async move { (height, reply.await) }.boxed()),
                Err(e) => {
                    tracing::warn!(height, error = %e, "raft refused the proposal");
                    if let Some(f) = pending.remove(&height) {
                        self.mempool.requeue(&f.ids);
                    }
                    self.metrics.proposals_not_applied.inc();
                    broken = true;
                }
            }
        }
    }
}
