//! The offline verifier: genesis plus blocks in, the first wrong block out.
//!
//! Anyone holding a copy of the chain can run it: it re-checks hash links,
//! block signatures, every transaction signature, every outcome (by
//! re-executing), and finally the state derived from them.

use crate::block::{check_and_execute, Block, BlockError, Tip};
use crate::crypto::Hash;
use crate::genesis::Genesis;
use crate::state::{state_digest, MemStore};

/// What a successful verification found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// The last block checked.
    pub tip: Tip,
    /// Transactions checked.
    pub txs: u64,
    /// Of which refused (and recorded as refused).
    pub refused: u64,
    /// Digest of the recomputed state.
    pub state_digest: Hash,
}

/// The first block that is wrong, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("block {height} is invalid: {reason}")]
pub struct VerifyFailure {
    /// Its height (its position when the height itself is wrong).
    pub height: u64,
    /// Why.
    pub reason: BlockError,
}

/// Incremental verifier: feed blocks in order with [`Verifier::push`].
pub struct Verifier<'g> {
    genesis: &'g Genesis,
    state: MemStore,
    tip: Tip,
    txs: u64,
    refused: u64,
}

impl<'g> Verifier<'g> {
    /// Starts from genesis.
    pub fn new(genesis: &'g Genesis) -> Self {
        Verifier {
            genesis,
            state: MemStore::default(),
            tip: Tip::genesis(genesis),
            txs: 0,
            refused: 0,
        }
    }

    /// Checks and applies the next block.
    pub fn push(&mut self, block: &Block) -> Result<(), VerifyFailure> {
        self.push_with(block, &|_| None)
    }

    /// [`Verifier::push`], taking the transactions `known` returns as
    /// already verified (a caller that checked the signatures of many
    /// blocks at once, in parallel); the others are verified here.
    pub fn push_with(
        &mut self,
        block: &Block,
        known: &dyn Fn(&crate::tx::TxId) -> Option<crate::tx::VerifiedTx>,
    ) -> Result<(), VerifyFailure> {
        let (_, exec) = check_and_execute(self.genesis, &self.state, &self.tip, block, known)
            .map_err(|reason| VerifyFailure {
                height: self.tip.height + 1,
                reason,
            })?;
        self.state.commit(&exec.writes);
        self.txs += block.txs.len() as u64;
        self.refused += exec.outcomes.iter().filter(|o| !o.is_applied()).count() as u64;
        self.tip = Tip {
            height: block.header.height,
            hash: block.hash(self.genesis.chain_id.as_str()),
            timestamp: block.header.timestamp,
            state: exec.state,
        };
        Ok(())
    }

    /// The tip reached so far, with the state accumulator maintained
    /// block by block (each header's `state_root` was checked against it).
    pub fn tip(&self) -> &Tip {
        &self.tip
    }

    /// The state rebuilt so far.
    pub fn state(&self) -> &MemStore {
        &self.state
    }

    /// Finishes with a report.
    pub fn finish(self) -> VerifyReport {
        VerifyReport {
            tip: self.tip,
            txs: self.txs,
            refused: self.refused,
            state_digest: state_digest(&self.state),
        }
    }
}

/// Verifies a whole chain from genesis.
pub fn verify_chain<'a>(
    genesis: &Genesis,
    blocks: impl IntoIterator<Item = &'a Block>,
) -> Result<VerifyReport, VerifyFailure> {
    let mut v = Verifier::new(genesis);
    for b in blocks {
        v.push(b)?;
    }
    Ok(v.finish())
}
