//! The mempool: verified transactions waiting for a block, and the clients
//! waiting for their receipts.
//!
//! Signatures are verified once, on admission; the state machine asks
//! [`Mempool::known`] for transactions this node already verified, so no
//! transaction is verified twice on one node. The lock is a `std` mutex: it
//! is held only for map operations, never across an `.await`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use rxchain_contracts::{Block, Execution, Hash, Outcome, SignedTx, TxId, VerifiedTx};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, Notify};

use crate::metrics::Metrics;
use crate::store::ApplyObserver;

/// Where and how a transaction was committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Receipt {
    /// The transaction id.
    pub tx_id: TxId,
    /// The block that holds it.
    pub height: u64,
    /// Its position in the block.
    pub index: u32,
    /// The block's header hash.
    pub block_hash: Hash,
    /// Applied or refused, with the reason.
    pub outcome: Outcome,
}

struct Entry {
    vtx: VerifiedTx,
    bytes: usize,
    waiters: Vec<oneshot::Sender<Receipt>>,
    /// Taken into a proposed block and not yet applied.
    in_flight: bool,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<TxId, Entry>,
    queue: VecDeque<TxId>,
    queued_bytes: usize,
    /// Encoded bytes of every entry, queued or in flight: what the byte
    /// bound counts.
    total_bytes: usize,
}

impl Inner {
    /// Removes an entry and keeps the byte counts and the queue in step.
    fn take(&mut self, id: &TxId) -> Option<Entry> {
        let e = self.entries.remove(id)?;
        self.total_bytes = self.total_bytes.saturating_sub(e.bytes);
        if !e.in_flight {
            self.queued_bytes = self.queued_bytes.saturating_sub(e.bytes);
            if let Some(pos) = self.queue.iter().position(|q| q == id) {
                self.queue.remove(pos);
            }
        }
        Some(e)
    }
}

/// How many transactions and how many encoded bytes may wait at once.
#[derive(Clone, Copy, Debug)]
pub struct Capacity {
    /// Most waiting transactions.
    pub txs: usize,
    /// Most encoded bytes of waiting transactions (queued or in flight).
    pub bytes: usize,
}

/// How many proposed blocks' executions are held at most (see
/// `Mempool::proposed`): as many as the deepest pipeline keeps in flight.
const PROPOSED_KEPT: usize = crate::config::BlockSettings::MAX_PIPELINE;

/// The mempool. Shared as `Arc<Mempool>`.
pub struct Mempool {
    chain_id: String,
    inner: Mutex<Inner>,
    /// The blocks this node proposed and has not applied yet, oldest
    /// first, with their executions, handed to the state machine when it
    /// applies them (see [`ApplyObserver::proposed`]). The producer keeps
    /// at most `block.pipeline` in flight; a few more are kept in case a
    /// failed proposal's entry is never applied.
    proposed: Mutex<VecDeque<(Hash, Execution)>>,
    /// Wakes the block producer when transactions arrive.
    pub arrived: Notify,
    /// Caps how many transactions and bytes may wait, so a flood cannot
    /// exhaust memory.
    capacity: Capacity,
    /// This node's id and the metrics its committed transactions are
    /// counted in (see [`Mempool::count_commits`]).
    commits: OnceLock<(u64, Arc<Metrics>)>,
}

/// Why a transaction was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// The mempool is full (in transactions or in bytes); retry later.
    #[error("the node's queue of waiting transactions is full; retry shortly")]
    Full,
}

impl Mempool {
    /// An empty mempool for `chain_id`.
    pub fn new(chain_id: String, capacity: Capacity) -> Arc<Self> {
        Arc::new(Mempool {
            chain_id,
            inner: Mutex::new(Inner::default()),
            proposed: Mutex::new(VecDeque::new()),
            arrived: Notify::new(),
            capacity,
            commits: OnceLock::new(),
        })
    }

    /// Counts, in `metrics`, every transaction of every block that node
    /// `node_id` (this node) proposed, when this node applies it
    /// (`rxchain_committed_txs_total`, and the chain refusals by code).
    /// Counting at apply rather than where the proposer's write returns
    /// counts a block whose Raft write failed here (lost leadership, say)
    /// but that a later leader committed; each node counts only its own
    /// blocks, so the sum over the nodes counts each transaction once.
    /// Set once; later calls are ignored.
    pub fn count_commits(&self, node_id: u64, metrics: Arc<Metrics>) {
        let _ = self.commits.set((node_id, metrics));
    }

    /// The chain id transactions are verified against.
    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }

    /// Whether the transaction is waiting here.
    pub fn contains(&self, id: &TxId) -> bool {
        self.lock().entries.contains_key(id)
    }

    /// Whether the transaction is already waiting; if so, subscribes to it.
    pub fn subscribe(&self, id: &TxId) -> Option<oneshot::Receiver<Receipt>> {
        let mut inner = self.lock();
        let e = inner.entries.get_mut(id)?;
        let (tx, rx) = oneshot::channel();
        e.waiters.push(tx);
        Some(rx)
    }

    /// Like [`subscribe`](Self::subscribe), for a submitted copy of a
    /// waiting transaction: a copy whose signature bytes differ from the
    /// admitted one is verified first, so a corrupted signature is refused
    /// rather than treated as a replay.
    pub fn subscribe_same(
        &self,
        signed: &SignedTx,
    ) -> Option<Result<oneshot::Receiver<Receipt>, rxchain_contracts::TxError>> {
        let id = signed.tx.id(&self.chain_id);
        let differs = {
            let inner = self.lock();
            let e = inner.entries.get(&id)?;
            e.vtx.signed().signature != signed.signature
        };
        if differs {
            if let Err(e) = signed.clone().verify_new(&self.chain_id) {
                return Some(Err(e));
            }
        }
        self.subscribe(&id).map(Ok)
    }

    /// Admits a verified transaction and subscribes to its receipt (the
    /// receiver yields it). A transaction already waiting is not added twice.
    pub fn admit(&self, vtx: VerifiedTx) -> Result<oneshot::Receiver<Receipt>, AdmitError> {
        let id = vtx.id();
        let (tx, rx) = oneshot::channel();
        {
            let mut inner = self.lock();
            if let Some(e) = inner.entries.get_mut(&id) {
                e.waiters.push(tx);
                return Ok(rx);
            }
            let bytes = vtx.signed().to_bytes().len();
            if inner.entries.len() >= self.capacity.txs
                || inner.total_bytes + bytes > self.capacity.bytes
            {
                return Err(AdmitError::Full);
            }
            inner.entries.insert(
                id,
                Entry {
                    vtx,
                    bytes,
                    waiters: vec![tx],
                    in_flight: false,
                },
            );
            inner.queue.push_back(id);
            inner.queued_bytes += bytes;
            inner.total_bytes += bytes;
        }
        self.arrived.notify_one();
        Ok(rx)
    }

    /// Transactions waiting to be proposed (not in flight).
    pub fn queued(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.queue.len(), inner.queued_bytes)
    }

    /// All transactions held, queued or in flight.
    pub fn depth(&self) -> usize {
        self.lock().entries.len()
    }

    /// Takes up to `max_txs` queued transactions, in arrival order, whose
    /// encoded bytes plus `reserve` each stay within `max_bytes` (at least
    /// one, whatever its size), marking them in flight.
    pub fn take_batch(&self, max_txs: usize, max_bytes: usize, reserve: usize) -> Vec<VerifiedTx> {
        let mut inner = self.lock();
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut budget = 0;
        while out.len() < max_txs {
            let Some(id) = inner.queue.front().copied() else {
                break;
            };
            let Some(e) = inner.entries.get_mut(&id) else {
                inner.queue.pop_front();
                continue;
            };
            if !out.is_empty() && budget + e.bytes + reserve > max_bytes {
                break;
            }
            bytes += e.bytes;
            budget += e.bytes + reserve;
            e.in_flight = true;
            out.push(e.vtx.clone());
            inner.queue.pop_front();
        }
        inner.queued_bytes = inner.queued_bytes.saturating_sub(bytes);
        out
    }

    /// Puts in-flight transactions that did not make it into a block back at
    /// the front of the queue, in their original order.
    pub fn requeue(&self, ids: &[TxId]) {
        let mut inner = self.lock();
        for id in ids.iter().rev() {
            let Some(e) = inner.entries.get_mut(id) else {
                continue;
            };
            if e.in_flight {
                e.in_flight = false;
                let b = e.bytes;
                inner.queue.push_front(*id);
                inner.queued_bytes += b;
            }
        }
        drop(inner);
        self.arrived.notify_one();
    }

    /// Forgets one transaction (it turned out to be committed already).
    pub fn remove(&self, id: &TxId) {
        self.lock().take(id);
    }

    /// Encoded bytes of every waiting transaction, queued or in flight.
    pub fn bytes(&self) -> usize {
        self.lock().total_bytes
    }

    /// Drops every waiting transaction (this node lost leadership): waiters
    /// see their channel closed and answer 503 "not committed, retry".
    /// Called by [`crate::producer::fail_waiters_on_lost_leadership`].
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.queue.clear();
        inner.queued_bytes = 0;
        inner.total_bytes = 0;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the maps inconsistent
        // in a way that matters more than losing the node, so recover the guard.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers the execution of the block this node just proposed.
    pub fn set_proposed(&self, block_hash: Hash, exec: Execution) {
        let mut held = self.proposed.lock().unwrap_or_else(|p| p.into_inner());
        held.push_back((block_hash, exec));
        while held.len() > PROPOSED_KEPT {
            held.pop_front();
        }
    }

    /// Verifies a submitted transaction (once) for admission.
    pub fn verify(&self, signed: SignedTx) -> Result<VerifiedTx, rxchain_contracts::TxError> {
        signed.verify_new(&self.chain_id)
    }
}

impl ApplyObserver for Mempool {
    fn known(&self, id: &TxId) -> Option<VerifiedTx> {
        self.lock().entries.get(id).map(|e| e.vtx.clone())
    }

    fn proposed(&self, block_hash: &Hash) -> Option<Execution> {
        let mut held = self.proposed.lock().unwrap_or_else(|p| p.into_inner());
        let at = held.iter().position(|(h, _)| h == block_hash)?;
        // Blocks apply in the order they were proposed: any held before
        // this one will never be applied now.
        held.drain(..at);
        held.pop_front().map(|(_, exec)| exec)
    }

    fn applied(&self, block: &Block) {
        if let Some((node_id, metrics)) = self.commits.get() {
            if block.header.proposer == *node_id {
                metrics.committed_txs.inc_by(block.txs.len() as u64);
                for o in &block.outcomes {
                    if let Outcome::Refused { reason } = o {
                        metrics.refused(reason.code());
                    }
                }
            }
        }
        let hash = block.hash(&self.chain_id);
        let mut inner = self.lock();
        for (index, (t, outcome)) in block.txs.iter().zip(&block.outcomes).enumerate() {
            let id = t.tx.id(&self.chain_id);
            // An entry still queued here was committed through another leader.
            if let Some(e) = inner.take(&id) {
                let receipt = Receipt {
                    tx_id: id,
                    height: block.header.height,
                    index: index as u32,
                    block_hash: hash,
                    outcome: outcome.clone(),
                };
                for w in e.waiters {
                    // The client may have given up waiting; that is fine.
                    let _ = w.send(receipt.clone());
                }
            }
        }
    }
}
