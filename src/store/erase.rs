//! Erasure after retention (crypto-shredding) on this node's disk.
//!
//! The rule is the contracts' ([`rxchain_contracts::erasure`]): a
//! prescription's personal key wraps fall due a set number of days after it
//! ended, its regulator wraps later, a refused transaction's from its own
//! block. Because ids, signatures, block hashes and state roots cover a wrap
//! by its digest only, this node may replace every copy it holds by the
//! digest, and the chain still verifies from genesis.
//!
//! A sweep ([`sweep`]) rewrites, with compare-and-swap so a concurrent
//! snapshot install or log purge wins:
//!
//! * every stored block (`b/…` in the `chain` tree) holding a wrap that is
//!   due;
//! * every Raft log entry up to the last applied one that carries such a
//!   block (entries after it are left for the next sweep);
//!
//! and reports whether anything changed, so the caller can have openraft
//! build a fresh snapshot, which deletes the older snapshot files (the
//! last place a wrap could be). Each sweep reads every stored block: a
//! snapshot installed from a peer that has not swept yet may bring wraps
//! back, so no block is ever taken as done for good.
//!
//! Limits, written down in ARCHITECTURE.md: sled is log-structured, so the
//! old bytes of a rewritten value stay in its segment files until sled
//! reuses them; backups taken before a sweep keep the wraps; what a reader
//! already decrypted cannot be unread.

use rxchain_contracts::block::Block;
use rxchain_contracts::encoding;
use rxchain_contracts::erasure;
use rxchain_contracts::genesis::Params;
use rxchain_contracts::model::Timestamp;
use rxchain_contracts::state::PrescriptionRecord;
use rxchain_contracts::tx::Erasure;
use rxchain_contracts::PrescriptionId;

use super::chain::{keys, ChainStore};
use super::log::LogStore;
use super::StoreError;
use crate::types::RaftRequest;

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Key wraps erased, counted once per block (a wrap also in the Raft
    /// log is not counted twice).
    pub wraps: u64,
    /// Stored blocks rewritten.
    pub blocks: u64,
    /// Raft log entries rewritten.
    pub log_entries: u64,
}

impl Swept {
    /// Whether anything was rewritten.
    pub fn changed(&self) -> bool {
        self.blocks + self.log_entries > 0
    }
}

/// Erases, in `block`, every key wrap due at `now`; how many.
pub fn erase_block(
    block: &mut Block,
    params: &Params,
    now: Timestamp,
    record: &mut dyn FnMut(&PrescriptionId) -> Option<PrescriptionRecord>,
) -> usize {
    let at = block.header.timestamp;
    let mut n = 0;
    for (t, outcome) in block.txs.iter_mut().zip(&block.outcomes) {
        if !t.tx.body.has_wraps() {
            continue;
        }
        let refused_at = (!outcome.is_applied()).then_some(at);
        let rec = t.tx.body.prescription().and_then(|id| record(&id));
        for which in [Erasure::Personal, Erasure::Regulator] {
            if erasure::is_due(params, which, rec.as_ref(), refused_at, now) {
                n += t.tx.body.erase_wraps(which);
            }
        }
    }
    n
}

/// One sweep over this node's blocks and Raft log at `now`.
pub fn sweep(
    db: &sled::Db,
    chain: &ChainStore,
    log: &LogStore,
    now: Timestamp,
) -> Result<Swept, StoreError> {
    let params = chain.consortium().params.clone();
    let mut swept = Swept::default();
    let mut record = |id: &PrescriptionId| chain.prescription(id).ok().flatten();

    let tree = chain.raw_tree();
    for kv in tree.scan_prefix(keys::BLOCK) {
        let (key, old) = kv?;
        let mut block: Block = encoding::from_bytes(&old)
            .map_err(|e| StoreError::corrupt(format!("block at key {}", hex::encode(&key)), e))?;
        let n = erase_block(&mut block, &params, now, &mut record);
        if n == 0 {
            continue;
        }
        let new = encoding::to_bytes(&block);
        // Under the write gate, so a snapshot dump sees the block before or
        // after, and a block install since the read wins.
        let _gate = chain.write_gate();
        if tree.compare_and_swap(&key, Some(&old), Some(new))?.is_ok() {
            swept.blocks += 1;
            swept.wraps += n as u64;
        }
    }

    let applied = chain.last_applied()?.0.map_or(0, |l| l.index);
    for kv in log.raw_tree().range(..=applied.to_be_bytes()) {
        let (key, old) = kv?;
        let mut entry: openraft::Entry<crate::types::TypeConfig> = super::from_postcard(
            || format!("raft log entry at key {}", hex::encode(&key)),
            &old,
        )?;
        let openraft::EntryPayload::Normal(RaftRequest::Block(block)) = &mut entry.payload else {
            continue;
        };
        if erase_block(block, &params, now, &mut record) == 0 {
            continue;
        }
        let new = super::to_postcard("erased raft log entry", &entry)?;
        // A purge or a truncation since the read wins: nothing is put back.
        if log
            .raw_tree()
            .compare_and_swap(&key, Some(&old), Some(new))?
            .is_ok()
        {
            swept.log_entries += 1;
        }
    }
    if swept.changed() {
        db.flush()?;
    }
    Ok(swept)
}
