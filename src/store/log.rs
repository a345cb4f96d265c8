//! The Raft log and vote in sled, as openraft's [`RaftLogStorage`].
//!
//! Entries live in the `raft_log` tree under their index as a big-endian
//! `u64`, postcard-encoded; the vote, the committed log id and the last purged log id live in
//! `raft_meta`. Appends and votes are flushed to disk before openraft is told
//! they are stored, because Raft's safety rests on a node never forgetting
//! what it acknowledged.
//!
//! Each transaction is stored once. Once the state machine has applied an
//! entry's block to the chain (and flushed it), the whole entry is replaced
//! by a [`BlockRef`] in the `raft_log_applied` tree: its log id, the block's
//! height and its header hash, about 60 bytes instead of the block. Reading
//! the entry back (a follower being caught up, `rxchain verify`) rebuilds
//! it from the chain's stored block, and refuses with a corruption error if
//! the chain's block at that height does not have the recorded hash. The
//! reference is written before the whole entry is removed, and readers read
//! `raft_log` before `raft_log_applied`, so a concurrent reader always finds
//! one of the two. Blank, membership and skipped entries stay whole.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{
    AnyError, Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogId, StorageError,
    StorageIOError, Vote,
};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rxchain_contracts::Hash;
use serde::{Deserialize, Serialize};

use super::{ChainStore, StoreError};
use crate::types::{RaftRequest, TypeConfig};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";
/// The tree of applied entries kept as references to the chain's blocks.
pub const APPLIED_TREE: &str = "raft_log_applied";

/// An applied log entry whose block the chain holds: all that is kept of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRef {
    /// The entry's log id.
    pub log_id: LogId<u64>,
    /// The height of the block it carried.
    pub height: u64,
    /// That block's header hash.
    pub hash: Hash,
}

type StorageResult<T> = Result<T, StorageError<u64>>;

/// The Raft log store. Cloning is cheap and shares the same trees; openraft
/// serialises all writes through one handle, clones only read.
#[derive(Clone)]
pub struct LogStore {
    db: sled::Db,
    log: sled::Tree,
    applied: sled::Tree,
    meta: sled::Tree,
    chain: Arc<ChainStore>,
    /// Serialises the writers that move entries between the two trees
    /// (referencing applied entries, purge, truncate), so that a purge never
    /// leaves behind a reference written while it ran.
    moving: Arc<Mutex<()>>,
}

fn io(
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
    e: impl std::error::Error + 'static,
) -> StorageError<u64> {
    StorageIOError::new(subject, verb, AnyError::new(&e)).into()
}

fn store_io(subject: ErrorSubject<u64>, verb: ErrorVerb, e: StoreError) -> StorageError<u64> {
    io(subject, verb, e)
}

impl LogStore {
    /// Opens the log trees of `db`.
    pub(crate) fn open(db: &sled::Db, chain: Arc<ChainStore>) -> Result<Self, StoreError> {
        Ok(LogStore {
            db: db.clone(),
            log: db.open_tree("raft_log")?,
            applied: db.open_tree(APPLIED_TREE)?,
            meta: db.open_tree("raft_meta")?,
            chain,
            moving: Arc::new(Mutex::new(())),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.moving.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the whole entries of `refs` (applied, their blocks on the
    /// chain and flushed) by references. An entry already gone (purged, or
    /// referenced before) is left alone.
    pub(crate) fn refer_applied<'a>(
        &self,
        refs: impl IntoIterator<Item = &'a BlockRef>,
    ) -> Result<(), StoreError> {
        let _moving = self.lock();
        let mut add = sled::Batch::default();
        let mut remove = sled::Batch::default();
        let mut any = false;
        for r in refs {
            let key = r.log_id.index.to_be_bytes();
            if self.log.contains_key(key)? {
                add.insert(key.as_slice(), super::to_postcard("raft log reference", r)?);
                remove.remove(key.as_slice());
                any = true;
            }
        }
        if any {
            // The reference first: a reader that misses the whole entry
            // finds the reference.
            self.applied.apply_batch(add)?;
            self.log.apply_batch(remove)?;
        }
        Ok(())
    }

    fn decode_ref(key: &[u8], value: &[u8]) -> Result<BlockRef, StoreError> {
        super::from_postcard(
            || format!("raft log reference at key {}", hex::encode(key)),
            value,
        )
    }

    /// The entry a reference stands for, rebuilt from the chain's block.
    fn rebuild(&self, r: BlockRef) -> Result<Entry<TypeConfig>, StoreError> {
        let what = || format!("raft log entry {}", r.log_id.index);
        let block = self.chain.block(r.height)?.ok_or_else(|| {
            StoreError::corrupt(
                what(),
                format!("its block {} is not on the chain", r.height),
            )
        })?;
        if block.hash(self.chain.genesis().chain_id.as_str()) != r.hash {
            return Err(StoreError::corrupt(
                what(),
                format!("the chain's block {} is not the block it carried", r.height),
            ));
        }
        Ok(Entry {
            log_id: r.log_id,
            payload: openraft::EntryPayload::Normal(RaftRequest::Block(block)),
        })
    }

    /// Entries with index in `[start, end)`, whole or rebuilt, in order.
    fn read(&self, start: u64, end: Option<u64>) -> Result<Vec<Entry<TypeConfig>>, StoreError> {
        let range = |t: &sled::Tree| match end {
            Some(end) => t.range(start.to_be_bytes()..end.to_be_bytes()),
            None => t.range(start.to_be_bytes()..),
        };
        let mut out = BTreeMap::new();
        // `raft_log` before `raft_log_applied`: see the module doc.
        for kv in range(&self.log) {
            let (k, v) = kv?;
            let e = Self::decode_entry(&k, &v)?;
            out.insert(e.log_id.index, e);
        }
        for kv in range(&self.applied) {
            let (k, v) = kv?;
            let r = Self::decode_ref(&k, &v)?;
            if let std::collections::btree_map::Entry::Vacant(slot) = out.entry(r.log_id.index) {
                slot.insert(self.rebuild(r)?);
            }
        }
        Ok(out.into_values().collect())
    }

    /// The last log id stored, whole or as a reference.
    fn last_stored(&self) -> Result<Option<LogId<u64>>, StoreError> {
        let whole = match self.log.last()? {
            Some((k, v)) => Some(*Self::decode_entry(&k, &v)?.get_log_id()),
            None => None,
        };
        let referenced = match self.applied.last()? {
            Some((k, v)) => Some(Self::decode_ref(&k, &v)?.log_id),
            None => None,
        };
        Ok(whole.max(referenced))
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &'static [u8],
    ) -> Result<Option<T>, StoreError> {
        self.meta
            .get(key)?
            .map(|v| super::from_json(|| format!("raft meta {}", String::from_utf8_lossy(key)), &v))
            .transpose()
    }

    fn put_meta<T: serde::Serialize>(
        &self,
        key: &'static [u8],
        value: &T,
    ) -> Result<(), StoreError> {
        self.meta.insert(key, super::to_json("raft meta", value)?)?;
        Ok(())
    }

    /// Records `log_id` as the last purged entry of an empty log, so that a
    /// store restored from a backup at `log_id` starts as openraft leaves a
    /// node after installing a snapshot there.
    pub(crate) fn restore_purged(&self, log_id: LogId<u64>) -> Result<(), StoreError> {
        if !self.log.is_empty() || !self.applied.is_empty() {
            return Err(StoreError::corrupt(
                "raft log",
                "a restored store must start with an empty log",
            ));
        }
        self.put_meta(LAST_PURGED, &log_id)?;
        self.db.flush()?;
        Ok(())
    }

    /// Every stored log entry in index order, whole or rebuilt from its
    /// reference, read synchronously (for `rxchain verify`, which compares
    /// them with the chain). Read in windows, so memory stays bounded.
    pub fn entries(&self) -> impl Iterator<Item = Result<Entry<TypeConfig>, StoreError>> + '_ {
        const WINDOW: u64 = 256;
        let (starts, failed) = match self.span() {
            Ok(Some((first, last))) => ((first..=last).step_by(WINDOW as usize), None),
            Ok(None) => ((1..=0).step_by(1), None),
            Err(e) => ((1..=0).step_by(1), Some(e)),
        };
        failed
            .map(Err)
            .into_iter()
            .chain(starts.flat_map(move |start| {
                match self.read(start, Some(start.saturating_add(WINDOW))) {
                    Ok(window) => window.into_iter().map(Ok).collect::<Vec<_>>(),
                    Err(e) => vec![Err(e)],
                }
            }))
    }

    /// The first and last index stored, whole or as a reference.
    fn span(&self) -> Result<Option<(u64, u64)>, StoreError> {
        let first_key = |t: &sled::Tree| -> Result<Option<u64>, StoreError> {
            t.first()?
                .map(|(k, _)| {
                    let key: [u8; 8] = k
                        .as_ref()
                        .try_into()
                        .map_err(|_| StoreError::corrupt("raft log key", hex::encode(&k)))?;
                    Ok(u64::from_be_bytes(key))
                })
                .transpose()
        };
        let first = [first_key(&self.log)?, first_key(&self.applied)?]
            .into_iter()
            .flatten()
            .min();
        Ok(first.zip(self.last_stored()?.map(|l| l.index)))
    }

    /// The raw `raft_log` tree, for the erasure sweep (`store::erase`).
    pub(crate) fn raw_tree(&self) -> &sled::Tree {
        &self.log
    }

    fn decode_entry(key: &[u8], value: &[u8]) -> Result<Entry<TypeConfig>, StoreError> {
        super::from_postcard(
            || format!("raft log entry at key {}", hex::encode(key)),
            value,
        )
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }
}

/// Turns any `u64` range into the `[start, end)` pair the log keys need;
/// `end` is `None` when the range is unbounded above.
fn bounds(range: &impl RangeBounds<u64>) -> (u64, Option<u64>) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => None,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let (start, end) = bounds(&range);
        if end.is_some_and(|end| end <= start) {
            return Ok(Vec::new());
        }
        let this = self.clone();
        // Rebuilding entries reads blocks from sled: off the runtime.
        tokio::task::spawn_blocking(move || this.read(start, end))
            .await
            .map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Read, e))?
            .map_err(|e| store_io(ErrorSubject::Logs, ErrorVerb::Read, e))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId<u64>> = self
            .get_meta(LAST_PURGED)
            .map_err(|e| store_io(ErrorSubject::Store, ErrorVerb::Read, e))?;
        let last_log_id = self
            .last_stored()
            .map_err(|e| store_io(ErrorSubject::Logs, ErrorVerb::Read, e))?
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn save_vote(&mut self, vote: &Vote<u64>) -> StorageResult<()> {
        self.put_meta(VOTE, vote)
            .map_err(|e| store_io(ErrorSubject::Vote, ErrorVerb::Write, e))?;
        // A vote must survive a crash, or this node could vote twice in one term.
        self.flush()
            .await
            .map_err(|e| store_io(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<u64>>> {
        self.get_meta(VOTE)
            .map_err(|e| store_io(ErrorSubject::Vote, ErrorVerb::Read, e))
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> StorageResult<()> {
        // Not flushed: the committed id is a hint that lets a restarted node
        // re-apply without waiting for the leader, and losing it is safe.
        self.put_meta(COMMITTED, &committed)
            .map_err(|e| store_io(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<u64>>> {
        Ok(self
            .get_meta::<Option<LogId<u64>>>(COMMITTED)
            .map_err(|e| store_io(ErrorSubject::Store, ErrorVerb::Read, e))?
            .flatten())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let id = *entry.get_log_id();
            let value = super::to_postcard("raft log entry", &entry)
                .map_err(|e| store_io(ErrorSubject::Log(id), ErrorVerb::Write, e))?;
            batch.insert(id.index.to_be_bytes().as_slice(), value);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        // Entries are readable now; tell openraft they are stored only once
        // they are on disk, since that is what a follower's acknowledgement
        // and a leader's commit promise.
        match self.db.flush_async().await {
            Ok(_) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.clone())));
                Err(io(ErrorSubject::Logs, ErrorVerb::Write, e))
            }
        }
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn truncate(&mut self, log_id: LogId<u64>) -> StorageResult<()> {
        {
            let _moving = self.lock();
            for tree in [&self.log, &self.applied] {
                let mut batch = sled::Batch::default();
                for k in tree.range(log_id.index.to_be_bytes()..).keys() {
                    batch.remove(k.map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Read, e))?);
                }
                tree.apply_batch(batch)
                    .map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
            }
        }
        self.flush()
            .await
            .map_err(|e| store_io(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn purge(&mut self, log_id: LogId<u64>) -> StorageResult<()> {
        // Record the purge point first: if we crash between the two steps,
        // the log state still has no hole, only entries below it.
        self.put_meta(LAST_PURGED, &log_id)
            .map_err(|e| store_io(ErrorSubject::Store, ErrorVerb::Write, e))?;
        // Whole entries first, then references, under the lock that
        // referencing takes: a reference is only ever written for a whole
        // entry still present.
        let _moving = self.lock();
        for tree in [&self.log, &self.applied] {
            let mut batch = sled::Batch::default();
            for k in tree.range(..=log_id.index.to_be_bytes()).keys() {
                batch.remove(k.map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Read, e))?);
            }
            tree.apply_batch(batch)
                .map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        }
        Ok(())
    }
}
