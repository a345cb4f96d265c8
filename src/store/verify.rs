//! Full verification of a node's chain: every block re-checked and
//! re-executed from genesis with the contracts' verifier (hash links, block
//! signatures, every transaction signature, every outcome), and the state
//! the node stored compared with the state rebuilt from the blocks.
//!
//! Each header's `state_root` is checked by the contracts' verifier against
//! the accumulator it maintains block by block from the write sets; at the
//! end the accumulator is recomputed from scratch over the stored state and
//! compared with the one the node stored beside its tip.
//!
//! One function serves both the offline `rxchain verify` on a stopped node
//! and the regulator's verification of a running one. A running node keeps
//! committing while this runs, so the state is compared at a moment when
//! the tip stood still around the digest, catching up block by block until
//! it does; on a stopped node the first comparison is the only one.

use std::time::Duration;

use rxchain_contracts::verify::{Verifier, VerifyFailure};
use rxchain_contracts::{Hash, Tip};

use super::{ChainStore, StoreError};

/// How many times the tip may move under the comparison before giving up.
const ATTEMPTS: usize = 20;

/// What a successful verification checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Blocks checked (the height of the last one).
    pub height: u64,
    /// Transactions checked.
    pub txs: u64,
    /// Of which refused (and recorded as refused).
    pub refused: u64,
    /// Digest of the state, stored and recomputed alike.
    pub state_digest: Hash,
    /// The state root after the last block, stored, maintained and
    /// recomputed alike.
    pub state_root: Hash,
}

/// The first thing found wrong.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A stored block does not decode.
    #[error("block {height} cannot be read: {source}")]
    Unreadable {
        /// The block's height.
        height: u64,
        /// The store's complaint.
        #[source]
        source: StoreError,
    },
    /// A block fails the contracts' checks.
    #[error(transparent)]
    Invalid(#[from] VerifyFailure),
    /// The node records a tip higher than the blocks it holds.
    #[error("the node's tip is at height {tip} but its blocks end at {height}")]
    MissingBlocks {
        /// The recorded tip's height.
        tip: u64,
        /// The last block found.
        height: u64,
    },
    /// The recorded tip is not the tip the blocks lead to.
    #[error("the node's recorded tip {recorded:?} differs from the verified tip {verified:?}")]
    TipMismatch {
        /// The tip the node recorded.
        recorded: Tip,
        /// The tip the verified blocks end at.
        verified: Tip,
    },
    /// The stored state cannot be read.
    #[error("the stored state cannot be read: {source}")]
    StateUnreadable {
        /// The last block checked.
        height: u64,
        /// The store's complaint.
        #[source]
        source: StoreError,
    },
    /// The stored state is not the state the blocks produce.
    #[error("the node's stored state (digest {stored}) differs from the state recomputed from its blocks ({rebuilt})")]
    StateMismatch {
        /// The last block checked.
        height: u64,
        /// Digest of the stored state.
        stored: Hash,
        /// Digest of the rebuilt state.
        rebuilt: Hash,
    },
    /// The stored state accumulator is not the one recomputed from scratch
    /// over the stored state.
    #[error("the node's stored state root {stored} differs from the root recomputed over its stored state ({recomputed})")]
    StateRootMismatch {
        /// The last block checked.
        height: u64,
        /// Root of the accumulator stored beside the tip.
        stored: Hash,
        /// Root of the accumulator recomputed over the stored state.
        recomputed: Hash,
    },
    /// The tip never stood still long enough to compare the state.
    #[error(
        "the chain kept growing; the stored state could not be compared at a standing tip, retry"
    )]
    KeptGrowing {
        /// The last block checked.
        height: u64,
    },
}

impl VerifyError {
    /// The height the failure is about: the wrong block, or the last block
    /// checked when the state is wrong.
    pub fn height(&self) -> u64 {
        match self {
            VerifyError::Unreadable { height, .. }
            | VerifyError::MissingBlocks { height, .. }
            | VerifyError::StateUnreadable { height, .. }
            | VerifyError::StateMismatch { height, .. }
            | VerifyError::StateRootMismatch { height, .. }
            | VerifyError::KeptGrowing { height } => *height,
            VerifyError::Invalid(f) => f.height,
            VerifyError::TipMismatch { verified, .. } => verified.height,
        }
    }
}

/// Verifies the whole chain in `chain` against its genesis.
///
/// `progress`, when given, is called with each block's height once that
/// block has verified, so a caller can show how far it got.
pub fn verify_chain(
    chain: &ChainStore,
    mut progress: Option<&mut dyn FnMut(u64)>,
) -> Result<Verified, VerifyError> {
    let genesis = chain.genesis();
    let mut v = Verifier::new(genesis);
    let mut height = 0;
    let mut txs = 0u64;
    let mut refused = 0u64;
    let mut mismatches = 0;
    for _attempt in 0..ATTEMPTS {
        let tip = chain.tip();
        for b in chain.blocks(height + 1) {
            let b = b.map_err(|source| VerifyError::Unreadable {
                height: height + 1,
                source,
            })?;
            if b.header.height > tip.height {
                break;
            }
            v.push(&b)?;
            txs += b.txs.len() as u64;
            // The verifier re-executed the block, so its recorded outcomes are the true ones.
            refused += b.outcomes.iter().filter(|o| !o.is_applied()).count() as u64;
            height = b.header.height;
            if let Some(p) = progress.as_mut() {
                p(height);
            }
        }
        if height != tip.height {
            return Err(VerifyError::MissingBlocks {
                tip: tip.height,
                height,
            });
        }
        let before = chain.tip();
        let stored = chain
            .try_state_digest()
            .map_err(|source| VerifyError::StateUnreadable { height, source })?;
        let recomputed = chain
            .recompute_state_accumulator()
            .map_err(|source| VerifyError::StateUnreadable { height, source })?;
        if before != tip || chain.tip() != tip {
            continue;
        }
        let verified = *v.tip();
        if verified != tip {
            return Err(VerifyError::TipMismatch {
                recorded: tip,
                verified,
            });
        }
        let rebuilt = rxchain_contracts::state::state_digest(v.state());
        if stored == rebuilt {
            if recomputed != tip.state {
                return Err(VerifyError::StateRootMismatch {
                    height,
                    stored: tip.state.root(),
                    recomputed: recomputed.root(),
                });
            }
            return Ok(Verified {
                height,
                txs,
                refused,
                state_digest: stored,
                state_root: recomputed.root(),
            });
        }
        // A block applied between the digest and the tip read looks like a
        // mismatch; only one that repeats at a standing tip is real.
        mismatches += 1;
        if mismatches >= 2 {
            return Err(VerifyError::StateMismatch {
                height,
                stored,
                rebuilt,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(VerifyError::KeptGrowing { height })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::testchain;

    #[test]
    fn a_sound_chain_verifies_with_progress() {
        let t = testchain::build();
        let mut seen = Vec::new();
        let v = verify_chain(&t.storage.chain, Some(&mut |h| seen.push(h))).unwrap();
        assert_eq!((v.height, v.refused), (4, 1));
        assert!(v.txs >= 5, "{v:?}");
        assert_eq!(v.state_digest, t.storage.chain.state_digest());
        assert_eq!(seen, [1, 2, 3, 4]);
    }

    #[test]
    fn an_empty_chain_verifies_at_genesis() {
        let dir = tempfile::TempDir::new().unwrap();
        let g = crate::demo::Demo::load().unwrap().genesis;
        let storage = crate::store::open(
            dir.path(),
            std::sync::Arc::new(g),
            std::sync::Arc::new(crate::store::NoObserver),
        )
        .unwrap();
        let v = verify_chain(&storage.chain, None).unwrap();
        assert_eq!((v.height, v.txs, v.refused), (0, 0, 0));
    }
}
