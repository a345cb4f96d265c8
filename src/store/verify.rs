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
//! Each block's storage key must name its header's height. Offline, the
//! Raft log is checked against the chain too ([`verify_chain_and_log`]):
//! the applied log entries that carried a block the chain holds must come
//! in chain order and reach the tip, and an applied entry whose block is
//! not on the chain must be one the state machine had to skip (it did not
//! extend the chain at that point, or the contracts refuse it there).
//!
//! One function serves both the offline `rxchain verify` on a stopped node
//! and the regulator's verification of a running one. A running node keeps
//! committing while this runs, so the state is compared at a moment when
//! the tip stood still around the digest, catching up block by block until
//! it does; on a stopped node the first comparison is the only one.

use std::collections::BTreeMap;
use std::time::Duration;

use openraft::EntryPayload;
use rxchain_contracts::verify::{Verifier, VerifyFailure};
use rxchain_contracts::{Block, Hash, Tip};

use super::{ChainStore, LogStore, StoreError};
use crate::types::RaftRequest;

/// How many times the tip may move under the comparison before giving up.
const ATTEMPTS: usize = 20;

/// How many transactions' signatures `verify` checks at once, in parallel,
/// ahead of replaying their blocks in order.
const VERIFY_WINDOW_TXS: usize = 4096;

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
    /// Applied Raft log entries checked against the chain (0 when the log
    /// was not checked).
    pub log_entries: u64,
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
    /// A block is stored under a key naming another height.
    #[error("the block under the key of height {key_height} is block {height}")]
    MisplacedBlock {
        /// The height the storage key names.
        key_height: u64,
        /// The block's own height.
        height: u64,
    },
    /// The Raft log does not agree with the chain.
    #[error("raft log entry {index} disagrees with the chain at block {height}: {reason}")]
    LogMismatch {
        /// The log index.
        index: u64,
        /// The block height concerned.
        height: u64,
        /// What disagrees.
        reason: String,
    },
    /// The Raft log cannot be read.
    #[error("the raft log cannot be read: {0}")]
    LogUnreadable(#[source] StoreError),
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
            | VerifyError::KeptGrowing { height }
            | VerifyError::MisplacedBlock { height, .. }
            | VerifyError::LogMismatch { height, .. } => *height,
            VerifyError::LogUnreadable(_) => 0,
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
    progress: Option<&mut dyn FnMut(u64)>,
) -> Result<Verified, VerifyError> {
    verify_with(chain, LogCheck::default(), progress)
}

/// [`verify_chain`], and the Raft log `log` checked against the chain (see
/// the module doc). For a stopped node: the log must not move meanwhile.
pub fn verify_chain_and_log(
    chain: &ChainStore,
    log: &LogStore,
    progress: Option<&mut dyn FnMut(u64)>,
) -> Result<Verified, VerifyError> {
    let check = check_log(chain, log)?;
    verify_with(chain, check, progress)
}

/// What the log pass leaves for the block pass: applied entries whose
/// block extended the chain where they stood but is not on it, by height;
/// the contracts must refuse each at that height.
#[derive(Default)]
struct LogCheck {
    unapplied: BTreeMap<u64, Vec<(u64, Block)>>,
    entries: u64,
}

/// Walks the applied entries of the Raft log against the stored chain.
fn check_log(chain: &ChainStore, log: &LogStore) -> Result<LogCheck, VerifyError> {
    let chain_id = chain.genesis().chain_id.to_string();
    let (applied, _) = chain.last_applied().map_err(VerifyError::LogUnreadable)?;
    let Some(applied) = applied else {
        return Ok(LogCheck::default());
    };
    let tip = chain.tip();
    let hash_at = |h: u64| -> Result<Option<Hash>, VerifyError> {
        if h == 0 {
            return Ok(Some(chain.genesis().hash()));
        }
        Ok(chain
            .block(h)
            .map_err(|source| VerifyError::Unreadable { height: h, source })?
            .map(|b| b.hash(&chain_id)))
    };
    let mut entries = 0u64;
    let mut first_matched: Option<u64> = None;
    let mut last_matched: Option<u64> = None;
    // Entries whose block is not the stored one, with the last matched
    // height before them.
    let mut others: Vec<(u64, Option<u64>, Block)> = Vec::new();
    let mut reaches_applied = false;
    for e in log.entries() {
        let e = e.map_err(VerifyError::LogUnreadable)?;
        let index = e.log_id.index;
        if index > applied.index {
            break;
        }
        reaches_applied |= index == applied.index;
        entries += 1;
        let EntryPayload::Normal(RaftRequest::Block(b)) = e.payload else {
            continue;
        };
        let h = b.header.height;
        if hash_at(h)? == Some(b.hash(&chain_id)) {
            // The same block again, after it was applied: the state
            // machine refused the copy as not extending the chain.
            if last_matched.is_some_and(|m| h <= m) {
                continue;
            }
            if let Some(m) = last_matched.filter(|m| h != m + 1) {
                return Err(VerifyError::LogMismatch {
                    index,
                    height: h,
                    reason: format!(
                        "the log applies block {h} right after block {m}, the chain has block {} there",
                        m + 1
                    ),
                });
            }
            first_matched.get_or_insert(h);
            last_matched = Some(h);
        } else {
            others.push((index, last_matched, b));
        }
    }
    // Blocks past the log's last entry came in a snapshot; only a log that
    // holds the last applied entry must carry the blocks up to the tip.
    if let Some(m) = last_matched.filter(|m| reaches_applied && *m != tip.height) {
        return Err(VerifyError::LogMismatch {
            index: applied.index,
            height: m + 1,
            reason: format!(
                "the applied log entries end at block {m}, but the chain's tip is block {}: block {} has no log entry",
                tip.height,
                m + 1
            ),
        });
    }
    let mut unapplied: BTreeMap<u64, Vec<(u64, Block)>> = BTreeMap::new();
    for (index, before, b) in others {
        // Where the chain stood when this entry was applied.
        let at = before.unwrap_or_else(|| first_matched.map_or(tip.height, |f| f - 1));
        if b.header.height == at + 1 && hash_at(at)? == Some(b.header.prev_hash) {
            unapplied.entry(at + 1).or_default().push((index, b));
        }
    }
    Ok(LogCheck { unapplied, entries })
}

/// The refusal of an applied log entry whose block the contracts accept
/// where it stood, yet is not on the chain.
fn check_unapplied(
    chain: &ChainStore,
    v: &Verifier<'_>,
    candidates: Option<&Vec<(u64, Block)>>,
) -> Result<(), VerifyError> {
    for (index, b) in candidates.into_iter().flatten() {
        let verdict = rxchain_contracts::block::check_and_execute(
            chain.genesis(),
            v.state(),
            v.tip(),
            b,
            &|_| None,
        );
        if verdict.is_ok() {
            return Err(VerifyError::LogMismatch {
                index: *index,
                height: b.header.height,
                reason: "the entry carries a valid next block that the chain does not hold".into(),
            });
        }
    }
    Ok(())
}

/// The result of a scoped thread; a panic in it is re-raised here, as if
/// the work had run on this thread.
fn join<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// A window of stored blocks, in order, with the transactions among them
/// whose signatures verified.
type Window = (
    Vec<Result<(u64, Block), StoreError>>,
    std::collections::HashMap<rxchain_contracts::TxId, rxchain_contracts::VerifiedTx>,
);

/// Reads the stored blocks from height `from` on, a window of about
/// [`VERIFY_WINDOW_TXS`] transactions at a time, checks each window's
/// signatures on every core and sends it on. Stops at the end of the
/// chain, after an unreadable block, or when the receiver is gone.
fn read_ahead(chain: &ChainStore, from: u64, send: std::sync::mpsc::SyncSender<Window>) {
    let genesis = chain.genesis();
    let mut blocks = chain.stored_blocks(from);
    loop {
        let mut window = Vec::new();
        let mut txs = 0;
        let mut unreadable = false;
        while txs < VERIFY_WINDOW_TXS {
            match blocks.next() {
                None => break,
                Some(Ok(b)) => {
                    txs += b.1.txs.len().max(1);
                    window.push(Ok(b));
                }
                Some(Err(e)) => {
                    window.push(Err(e));
                    unreadable = true;
                    break;
                }
            }
        }
        if window.is_empty() {
            return;
        }
        let refs: Vec<&rxchain_contracts::SignedTx> = window
            .iter()
            .filter_map(|b| b.as_ref().ok())
            .flat_map(|(_, b)| b.txs.iter())
            .collect();
        let checked = super::preverify::verify_all(genesis.chain_id.as_str(), &refs);
        if send.send((window, checked)).is_err() || unreadable {
            return;
        }
    }
}

fn verify_with(
    chain: &ChainStore,
    log: LogCheck,
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
        // Blocks are read and their signatures checked a window at a time
        // on other threads (`read_ahead`), while this one replays the state
        // in order: the replay of one window overlaps the checks of the next.
        std::thread::scope(|s| -> Result<(), VerifyError> {
            let (send, windows) = std::sync::mpsc::sync_channel::<Window>(1);
            s.spawn(move || read_ahead(chain, height + 1, send));
            // Leaving this loop early drops `windows`, which stops the reader.
            for (window, checked) in windows {
                // Each verified transaction is handed over once, moved, not cloned.
                let checked = std::cell::RefCell::new(checked);
                for b in window {
                    let (key_height, b) = b.map_err(|source| VerifyError::Unreadable {
                        height: height + 1,
                        source,
                    })?;
                    if key_height != b.header.height {
                        return Err(VerifyError::MisplacedBlock {
                            key_height,
                            height: b.header.height,
                        });
                    }
                    if b.header.height > tip.height {
                        return Ok(());
                    }
                    check_unapplied(chain, &v, log.unapplied.get(&b.header.height))?;
                    v.push_with(&b, &|id| checked.borrow_mut().remove(id))?;
                    txs += b.txs.len() as u64;
                    // The verifier re-executed the block, so its recorded outcomes are the true ones.
                    refused += b.outcomes.iter().filter(|o| !o.is_applied()).count() as u64;
                    height = b.header.height;
                    if let Some(p) = progress.as_mut() {
                        p(height);
                    }
                }
            }
            Ok(())
        })?;
        if height != tip.height {
            return Err(VerifyError::MissingBlocks {
                tip: tip.height,
                height,
            });
        }
        let before = chain.tip();
        // Three independent passes over the whole state, side by side: the
        // stored state's digest, the rebuilt state's digest, and the stored
        // state's accumulator recomputed from scratch.
        let (stored, rebuilt, recomputed) = std::thread::scope(|s| {
            let stored = s.spawn(|| chain.try_state_digest());
            let rebuilt = s.spawn(|| rxchain_contracts::state::state_digest(v.state()));
            let recomputed = chain.recompute_state_accumulator();
            (join(stored), join(rebuilt), recomputed)
        });
        let stored = stored.map_err(|source| VerifyError::StateUnreadable { height, source })?;
        let recomputed =
            recomputed.map_err(|source| VerifyError::StateUnreadable { height, source })?;
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
        if stored == rebuilt {
            if recomputed != tip.state {
                return Err(VerifyError::StateRootMismatch {
                    height,
                    stored: tip.state.root(),
                    recomputed: recomputed.root(),
                });
            }
            check_unapplied(chain, &v, log.unapplied.get(&(height + 1)))?;
            return Ok(Verified {
                height,
                txs,
                refused,
                log_entries: log.entries,
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

    /// The chain's blocks 1 to 4.
    fn chain_blocks(t: &testchain::TestChain) -> Vec<Block> {
        t.storage.chain.blocks(1).map(Result::unwrap).collect()
    }

    /// Writes `blocks` as Raft log entries `1..=n` (term 1, node 1) and
    /// records entry `n` as applied.
    fn write_log(t: &testchain::TestChain, blocks: Vec<Block>) -> u64 {
        use openraft::{CommittedLeaderId, Entry, LogId};
        let log = t.storage.db.open_tree("raft_log").unwrap();
        let n = blocks.len() as u64;
        for (i, b) in (1u64..).zip(blocks) {
            let entry: Entry<crate::types::TypeConfig> = Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), i),
                payload: EntryPayload::Normal(RaftRequest::Block(b)),
            };
            log.insert(
                i.to_be_bytes(),
                crate::store::to_postcard("entry", &entry).unwrap(),
            )
            .unwrap();
        }
        t.storage
            .chain
            .record_applied(LogId::new(CommittedLeaderId::new(1, 1), n), None)
            .unwrap();
        n
    }

    #[test]
    fn a_raft_log_that_matches_the_chain_verifies() {
        let t = testchain::build();
        let n = write_log(&t, chain_blocks(&t));
        let v = verify_chain_and_log(&t.storage.chain, &t.storage.log, None).unwrap();
        assert_eq!((v.height, v.log_entries), (4, n));
    }

    #[test]
    fn a_raft_log_entry_that_differs_from_the_stored_block_fails() {
        let t = testchain::build();
        let mut blocks = chain_blocks(&t);
        blocks[2].header.timestamp = rxchain_contracts::Timestamp(blocks[2].header.timestamp.0 + 1);
        write_log(&t, blocks);
        let e = verify_chain_and_log(&t.storage.chain, &t.storage.log, None).unwrap_err();
        match e {
            VerifyError::LogMismatch { index, height, .. } => assert_eq!((index, height), (4, 4)),
            other => panic!("expected a log mismatch, got {other}"),
        }
        // The chain alone is sound: only the log disagrees.
        assert!(verify_chain(&t.storage.chain, None).is_ok());
    }

    #[test]
    fn a_raft_log_missing_the_last_block_fails() {
        let t = testchain::build();
        let mut blocks = chain_blocks(&t);
        blocks.pop();
        write_log(&t, blocks);
        let e = verify_chain_and_log(&t.storage.chain, &t.storage.log, None).unwrap_err();
        assert!(
            matches!(e, VerifyError::LogMismatch { height: 4, .. }),
            "{e}"
        );
    }

    #[test]
    fn a_raft_log_repeating_an_applied_block_verifies() {
        let t = testchain::build();
        let mut blocks = chain_blocks(&t);
        // A copy of block 2 committed after it, as a retried proposal would
        // be: the state machine skipped it as not extending the chain.
        blocks.insert(2, blocks[1].clone());
        let n = write_log(&t, blocks);
        let v = verify_chain_and_log(&t.storage.chain, &t.storage.log, None).unwrap();
        assert_eq!((v.height, v.log_entries), (4, n));
    }

    #[test]
    fn a_refused_block_in_the_log_verifies() {
        let t = testchain::build();
        let blocks = chain_blocks(&t);
        // A block 3 the contracts refuse where it stood (its header no
        // longer matches its signature): the state machine skipped it.
        let mut refused = blocks[2].clone();
        refused.header.timestamp = rxchain_contracts::Timestamp(refused.header.timestamp.0 + 1);
        let mut log = blocks;
        log.insert(2, refused);
        let n = write_log(&t, log);
        let v = verify_chain_and_log(&t.storage.chain, &t.storage.log, None).unwrap();
        assert_eq!(v.log_entries, n);
    }

    #[test]
    fn a_valid_next_block_in_the_log_but_not_on_the_chain_fails() {
        use crate::demo::node_key;
        use rxchain_contracts::cert::ClockProof;
        let t = testchain::build();
        let g = t.storage.chain.genesis().clone();
        let mut blocks = chain_blocks(&t);
        // A valid empty block 3 other than the chain's, committed before
        // it: the state machine would have applied it, so this log
        // contradicts the chain.
        let mut at2 = Verifier::new(&g);
        for b in &blocks[..2] {
            at2.push(b).unwrap();
        }
        let tip = *at2.tip();
        let (valid, _) = rxchain_contracts::block::propose(
            &g,
            at2.state(),
            &tip,
            Vec::new(),
            ClockProof::attested_by_all(&g, tip.height, crate::clock::now(), node_key),
            crate::clock::now(),
            1,
            &node_key(1),
        )
        .unwrap();
        blocks.insert(2, valid);
        write_log(&t, blocks);
        let e = verify_chain_and_log(&t.storage.chain, &t.storage.log, None).unwrap_err();
        assert!(
            matches!(
                e,
                VerifyError::LogMismatch {
                    index: 3,
                    height: 3,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn a_block_stored_under_another_height_fails() {
        let t = testchain::build();
        let tree = t.storage.db.open_tree("chain").unwrap();
        let three = tree
            .get(crate::store::chain::keys::block(3))
            .unwrap()
            .unwrap();
        let four = tree
            .get(crate::store::chain::keys::block(4))
            .unwrap()
            .unwrap();
        tree.insert(crate::store::chain::keys::block(3), four)
            .unwrap();
        tree.insert(crate::store::chain::keys::block(4), three)
            .unwrap();
        let e = verify_chain(&t.storage.chain, None).unwrap_err();
        assert!(
            matches!(
                e,
                VerifyError::MisplacedBlock {
                    key_height: 3,
                    height: 4
                }
            ),
            "{e}"
        );
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
