//! Blocks: a signed header committing to the transactions and their
//! outcomes, merkle inclusion proofs, and the two sides of ordering: the
//! proposer's [`propose`] and every node's [`check_and_execute`].
//!
//! Refused transactions stay in the block with their outcome, as in
//! Hyperledger Fabric, so attempts such as a second dispense stay auditable.

use serde::{Deserialize, Serialize};

use crate::cert::{ClockError, ClockProof};
use crate::crypto::{Hash, SecretKey, Signature};
use crate::encoding;
use crate::genesis::Genesis;
use crate::lifecycle::{apply, Outcome};
use crate::model::{NodeId, Timestamp};
use crate::state::{CorruptState, Overlay, StateRead, WriteSet};
use crate::state_root::LtHash;
use crate::tx::{SignedTx, TxError, TxId, VerifiedTx};

/// A block header. Its hash ([`BlockHeader::hash`]) links the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockHeader {
    /// 1 for the first block after genesis.
    pub height: u64,
    /// Hash of the previous header, or the genesis hash for height 1.
    pub prev_hash: Hash,
    /// The proposer's clock; the `now` of every transaction in the block.
    pub timestamp: Timestamp,
    /// The latest time the block's clock proof allows (see
    /// [`crate::cert::ClockProof::bound`]); `timestamp` never passes it
    /// unless time stands still at the parent's.
    pub clock_bound: Timestamp,
    /// Merkle root over the transaction ids.
    pub tx_root: Hash,
    /// Merkle root over `(tx id, outcome)` pairs.
    pub outcomes_root: Hash,
    /// The state root after this block: [`LtHash::root`] of the world state
    /// once the block's writes are applied (see [`crate::state_root`]).
    pub state_root: Hash,
    /// Number of transactions.
    pub tx_count: u32,
    /// The node that proposed and signed the block.
    pub proposer: NodeId,
}

impl BlockHeader {
    /// `SHA3-256("rxchain-block-v1\0" || chain_id || 0x00 || canonical(header))`.
    pub fn hash(&self, chain_id: &str) -> Hash {
        Hash::of(&[
            b"rxchain-block-v1\0",
            chain_id.as_bytes(),
            &[0],
            &encoding::to_bytes(self),
        ])
    }

    /// The domain tag of block signatures.
    pub fn signing_tag(chain_id: &str) -> String {
        format!("block/{chain_id}")
    }
}

/// A block as stored and replicated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The proposer's node-key signature over the header hash.
    pub signature: Signature,
    /// The transactions, in order.
    pub txs: Vec<SignedTx>,
    /// One outcome per transaction.
    pub outcomes: Vec<Outcome>,
    /// The clock attestations that give `header.clock_bound`.
    pub clock: ClockProof,
}

/// A header with its signature: what a receipt needs to be checked offline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedHeader {
    /// The header.
    pub header: BlockHeader,
    /// The proposer's signature.
    pub signature: Signature,
}

fn leaf(data: &[u8]) -> Hash {
    Hash::of(&[&[0u8], data])
}
fn node(l: &Hash, r: &Hash) -> Hash {
    Hash::of(&[&[1u8], l.as_bytes(), r.as_bytes()])
}

fn outcome_leaf(id: &TxId, o: &Outcome) -> Hash {
    leaf(&encoding::to_bytes(&(id, o)))
}

/// Merkle root: leaves are `SHA3(0x00 || data)`, inner nodes
/// `SHA3(0x01 || left || right)`; an odd node is carried up unpaired (never
/// duplicated, which would let two lists share a root). Empty: `Hash::ZERO`.
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return Hash::ZERO;
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = parent_level(&level);
    }
    level[0]
}

/// The level above `level` in the merkle tree: pairs hashed together, an
/// odd last node carried up as it is.
fn parent_level(level: &[Hash]) -> Vec<Hash> {
    level
        .chunks(2)
        .map(|c| {
            if c.len() == 2 {
                node(&c[0], &c[1])
            } else {
                c[0]
            }
        })
        .collect()
}

/// One step of a merkle path: the sibling and whether it is on the left.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProofStep {
    /// The sibling hash.
    pub sibling: Hash,
    /// True when the sibling is the left child.
    pub left: bool,
}

fn merkle_path(leaves: &[Hash], mut index: usize) -> Vec<ProofStep> {
    let mut path = Vec::new();
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        let sib = index ^ 1;
        if sib < level.len() {
            path.push(ProofStep {
                sibling: level[sib],
                left: sib < index,
            });
        }
        level = parent_level(&level);
        index /= 2;
    }
    path
}

fn fold_path(mut h: Hash, path: &[ProofStep]) -> Hash {
    for s in path {
        h = if s.left {
            node(&s.sibling, &h)
        } else {
            node(&h, &s.sibling)
        };
    }
    h
}

/// Proof that a transaction with a given outcome is in a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InclusionProof {
    /// The transaction.
    pub tx_id: TxId,
    /// Its outcome.
    pub outcome: Outcome,
    /// Its position in the block.
    pub index: u32,
    /// Path to `tx_root`.
    pub tx_path: Vec<ProofStep>,
    /// Path to `outcomes_root`.
    pub outcome_path: Vec<ProofStep>,
}

impl InclusionProof {
    /// Checks the proof against a header alone, including that the paths
    /// lead from position `index` of `tx_count` leaves.
    pub fn check(&self, header: &BlockHeader) -> bool {
        path_fits(self.index, header.tx_count, &self.tx_path)
            && path_fits(self.index, header.tx_count, &self.outcome_path)
            && fold_path(leaf(self.tx_id.0.as_bytes()), &self.tx_path) == header.tx_root
            && fold_path(outcome_leaf(&self.tx_id, &self.outcome), &self.outcome_path)
                == header.outcomes_root
    }
}

/// Whether `path` has exactly the shape of the path from leaf `index` of
/// `count`: a step wherever that leaf's node has a sibling, on the sibling's
/// side. Without this a proof could keep its hashes and claim another
/// position, and the position orders a transaction against its neighbours.
fn path_fits(index: u32, count: u32, path: &[ProofStep]) -> bool {
    if index >= count {
        return false;
    }
    let (mut i, mut n) = (u64::from(index), u64::from(count));
    let mut steps = path.iter();
    while n > 1 {
        let sib = i ^ 1;
        if sib < n {
            match steps.next() {
                Some(s) if s.left == (sib < i) => {}
                _ => return false,
            }
        }
        i /= 2;
        n = n.div_ceil(2);
    }
    steps.next().is_none()
}

impl Block {
    /// The header hash.
    pub fn hash(&self, chain_id: &str) -> Hash {
        self.header.hash(chain_id)
    }

    /// The inclusion proof of the `index`-th transaction.
    pub fn proof(&self, chain_id: &str, index: usize) -> Option<InclusionProof> {
        let ids: Vec<TxId> = self.txs.iter().map(|t| t.tx.id(chain_id)).collect();
        let outcome = self.outcomes.get(index)?.clone();
        let tx_leaves: Vec<Hash> = ids.iter().map(|i| leaf(i.0.as_bytes())).collect();
        let out_leaves: Vec<Hash> = ids
            .iter()
            .zip(&self.outcomes)
            .map(|(i, o)| outcome_leaf(i, o))
            .collect();
        Some(InclusionProof {
            tx_id: *ids.get(index)?,
            outcome,
            index: index as u32,
            tx_path: merkle_path(&tx_leaves, index),
            outcome_path: merkle_path(&out_leaves, index),
        })
    }

    /// The header with its signature.
    pub fn signed_header(&self) -> SignedHeader {
        SignedHeader {
            header: self.header.clone(),
            signature: self.signature,
        }
    }
}

/// The roots committing to `ids` and `outcomes`.
pub fn roots(ids: &[TxId], outcomes: &[Outcome]) -> (Hash, Hash) {
    let tx_leaves: Vec<Hash> = ids.iter().map(|i| leaf(i.0.as_bytes())).collect();
    let out_leaves: Vec<Hash> = ids
        .iter()
        .zip(outcomes)
        .map(|(i, o)| outcome_leaf(i, o))
        .collect();
    (merkle_root(&tx_leaves), merkle_root(&out_leaves))
}

/// The effect of executing a block's transactions against state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Execution {
    /// One outcome per transaction.
    pub outcomes: Vec<Outcome>,
    /// The state writes, to be committed atomically with the block.
    pub writes: WriteSet,
    /// The state accumulator after the writes, updated from the tip's by
    /// the write set alone; its root is the header's `state_root`.
    pub state: LtHash,
}

/// Runs verified transactions in order at block time `now` on `state`,
/// whose accumulator is `base`.
///
/// `g` is genesis; the transactions see the effective consortium
/// ([`crate::governance::effective`]), read once per block and again after
/// each applied governance transaction, so a decision binds the very next
/// transaction.
pub fn execute(
    g: &Genesis,
    state: &dyn StateRead,
    base: &LtHash,
    txs: &[VerifiedTx],
    now: Timestamp,
) -> Result<Execution, CorruptState> {
    let mut overlay = Overlay::new(state);
    let mut outcomes = Vec::with_capacity(txs.len());
    let mut consortium = crate::governance::effective(g, &overlay)?;
    for t in txs {
        let outcome = apply(&consortium, &mut overlay, t, now)?;
        if outcome.is_applied() && t.tx().body.is_governance() {
            consortium = crate::governance::effective(g, &overlay)?;
        }
        outcomes.push(outcome);
    }
    let after = base.updated(state, &overlay.writes);
    Ok(Execution {
        outcomes,
        writes: overlay.writes,
        state: after,
    })
}

/// The tip a new block builds on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tip {
    /// Height of the last block (0 before the first).
    pub height: u64,
    /// Hash of the last block header (the genesis hash before the first).
    pub hash: Hash,
    /// Timestamp of the last block; block times never go backwards.
    pub timestamp: Timestamp,
    /// The state accumulator after the last block (empty before the first).
    pub state: LtHash,
}

impl Tip {
    /// The tip of an empty chain.
    pub fn genesis(g: &Genesis) -> Tip {
        Tip {
            height: 0,
            hash: g.hash(),
            timestamp: g.created_at,
            state: LtHash::EMPTY,
        }
    }

    /// The tip once `block`, executed as `exec`, is applied.
    pub fn after(chain_id: &str, block: &Block, exec: &Execution) -> Tip {
        Tip {
            height: block.header.height,
            hash: block.hash(chain_id),
            timestamp: block.header.timestamp,
            state: exec.state,
        }
    }
}

/// Builds, executes and signs the next block (the leader's side).
/// The block time is `max(tip.timestamp, min(now, bound))`, the bound
/// coming from `clock` ([`ClockProof::bound`]), so time never runs
/// backwards nor past what a majority's clocks allow. Attestations in
/// `clock` that are not valid for this block are dropped first.
#[allow(clippy::too_many_arguments)]
pub fn propose(
    g: &Genesis,
    state: &dyn StateRead,
    tip: &Tip,
    txs: Vec<VerifiedTx>,
    clock: ClockProof,
    now: Timestamp,
    proposer: NodeId,
    node_key: &SecretKey,
) -> Result<(Block, Execution), CorruptState> {
    // Clock attestations count for the nodes declared before this block.
    let consortium = crate::governance::effective(g, &Overlay::new(state))?;
    let clock = ClockProof::select(&consortium, tip.height, clock.0);
    let clock_bound = clock
        .bound(&consortium, tip.height, tip.timestamp)
        .unwrap_or(tip.timestamp);
    let now = now.min(clock_bound).max(tip.timestamp);
    let exec = execute(g, state, &tip.state, &txs, now)?;
    let ids: Vec<TxId> = txs.iter().map(|t| t.id()).collect();
    let (tx_root, outcomes_root) = roots(&ids, &exec.outcomes);
    let header = BlockHeader {
        height: tip.height + 1,
        prev_hash: tip.hash,
        timestamp: now,
        clock_bound,
        tx_root,
        outcomes_root,
        state_root: exec.state.root(),
        tx_count: txs.len() as u32,
        proposer,
    };
    let chain_id = g.chain_id.as_str();
    let signature = node_key.sign_digest(&crate::crypto::signing_digest(
        &BlockHeader::signing_tag(chain_id),
        header.hash(chain_id).as_bytes(),
    ));
    let block = Block {
        header,
        signature,
        txs: txs.into_iter().map(VerifiedTx::into_signed).collect(),
        outcomes: exec.outcomes.clone(),
        clock,
    };
    Ok((block, exec))
}

/// Why a block is not the valid next block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The height is not the tip's plus one.
    #[error("height {got} does not follow {tip}")]
    WrongHeight {
        /// The block's height.
        got: u64,
        /// The tip's height.
        tip: u64,
    },
    /// `prev_hash` is not the tip's hash.
    #[error("the block does not link to the previous block's hash")]
    BrokenLink,
    /// The timestamp runs backwards.
    #[error("the block time runs backwards")]
    TimeBackwards,
    /// The proposer is not a node of the effective consortium.
    #[error("proposer node {0} is not declared in the consortium")]
    UnknownProposer(NodeId),
    /// The header signature is wrong.
    #[error("the block signature does not verify under the proposer's node key")]
    BadBlockSignature,
    /// `tx_count`, the transaction list and the outcome list disagree.
    #[error("the block's transaction and outcome counts disagree")]
    CountMismatch,
    /// `tx_root` does not match the transactions.
    #[error("the transaction merkle root does not match the transactions")]
    TxRootMismatch,
    /// A transaction's signature or structure is wrong.
    #[error("transaction {index} is invalid: {error}")]
    BadTx {
        /// Its position.
        index: usize,
        /// What is wrong.
        error: TxError,
    },
    /// Re-executing gives a different outcome than recorded.
    #[error("transaction {index}: recorded outcome differs from re-execution")]
    OutcomeMismatch {
        /// Its position.
        index: usize,
    },
    /// `outcomes_root` does not match the outcomes.
    #[error("the outcomes merkle root does not match the outcomes")]
    OutcomesRootMismatch,
    /// `state_root` is not the root of the state after re-execution.
    #[error("the state root does not match the state after the block")]
    StateRootMismatch,
    /// The clock proof or the clock bound is wrong.
    #[error(transparent)]
    Clock(#[from] ClockError),
    /// The state could not be read.
    #[error(transparent)]
    Corrupt(#[from] CorruptState),
}

/// The bounded leader clock: the header's bound is the one its proof gives,
/// and the block time does not pass it (time standing still at the
/// parent's is always allowed, so a consortium without a majority of
/// clocks still commits).
fn check_clock(g: &Genesis, tip: &Tip, block: &Block) -> Result<(), ClockError> {
    let h = &block.header;
    let computed = block.clock.bound(g, tip.height, tip.timestamp)?;
    if h.clock_bound != computed {
        return Err(ClockError::BoundMismatch {
            recorded: h.clock_bound,
            computed,
        });
    }
    if h.timestamp > computed.max(tip.timestamp) {
        return Err(ClockError::BeyondBound {
            timestamp: h.timestamp,
            bound: computed,
        });
    }
    Ok(())
}

/// Checks a block against the tip and re-executes it (every node's side).
///
/// `known` returns an already verified transaction for ids this node has
/// verified before (its mempool), so no transaction is verified twice on one
/// node; everything else is verified here.
pub fn check_and_execute(
    g: &Genesis,
    state: &dyn StateRead,
    tip: &Tip,
    block: &Block,
    known: &dyn Fn(&TxId) -> Option<VerifiedTx>,
) -> Result<(Vec<VerifiedTx>, Execution), BlockError> {
    let chain_id = g.chain_id.as_str();
    let h = &block.header;
    if h.height != tip.height + 1 {
        return Err(BlockError::WrongHeight {
            got: h.height,
            tip: tip.height,
        });
    }
    if h.prev_hash != tip.hash {
        return Err(BlockError::BrokenLink);
    }
    if h.timestamp < tip.timestamp {
        return Err(BlockError::TimeBackwards);
    }
    // The proposer must be declared in the consortium in force before this
    // block: genesis plus the decisions of earlier blocks.
    let consortium = crate::governance::effective(g, &Overlay::new(state))?;
    let (_, node) = consortium
        .node(h.proposer)
        .ok_or(BlockError::UnknownProposer(h.proposer))?;
    let digest = crate::crypto::signing_digest(
        &BlockHeader::signing_tag(chain_id),
        h.hash(chain_id).as_bytes(),
    );
    node.key
        .verify_digest(&digest, &block.signature)
        .map_err(|_| BlockError::BadBlockSignature)?;
    // After the signature, so a changed header reads as a bad signature.
    check_clock(&consortium, tip, block)?;
    if block.txs.len() != h.tx_count as usize || block.outcomes.len() != block.txs.len() {
        return Err(BlockError::CountMismatch);
    }
    let mut verified = Vec::with_capacity(block.txs.len());
    for (index, t) in block.txs.iter().enumerate() {
        let id = t.tx.id(chain_id);
        let v = match known(&id) {
            Some(v) if v.signed() == t => v,
            _ => t
                .clone()
                .verify(chain_id)
                .map_err(|error| BlockError::BadTx { index, error })?,
        };
        verified.push(v);
    }
    let ids: Vec<TxId> = verified.iter().map(|v| v.id()).collect();
    let (tx_root, outcomes_root) = roots(&ids, &block.outcomes);
    if tx_root != h.tx_root {
        return Err(BlockError::TxRootMismatch);
    }
    if outcomes_root != h.outcomes_root {
        return Err(BlockError::OutcomesRootMismatch);
    }
    let exec = execute(g, state, &tip.state, &verified, h.timestamp)?;
    if let Some(index) = exec
        .outcomes
        .iter()
        .zip(&block.outcomes)
        .position(|(a, b)| a != b)
    {
        return Err(BlockError::OutcomeMismatch { index });
    }
    if exec.state.root() != h.state_root {
        return Err(BlockError::StateRootMismatch);
    }
    Ok((verified, exec))
}
