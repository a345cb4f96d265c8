//! The Raft log and vote in sled, as openraft's [`RaftLogStorage`].
//!
//! Entries live in the `raft_log` tree under their index as a big-endian
//! `u64`, postcard-encoded; the vote, the committed log id and the last purged log id live in
//! `raft_meta`. Appends and votes are flushed to disk before openraft is told
//! they are stored, because Raft's safety rests on a node never forgetting
//! what it acknowledged.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{
    AnyError, Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogId, StorageError,
    StorageIOError, Vote,
};

use super::StoreError;
use crate::types::TypeConfig;

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

type StorageResult<T> = Result<T, StorageError<u64>>;

/// The Raft log store. Cloning is cheap and shares the same trees; openraft
/// serialises all writes through one handle, clones only read.
#[derive(Clone)]
pub struct LogStore {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
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
    pub(crate) fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(LogStore {
            db: db.clone(),
            log: db.open_tree("raft_log")?,
            meta: db.open_tree("raft_meta")?,
        })
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
        if !self.log.is_empty() {
            return Err(StoreError::corrupt(
                "raft log",
                "a restored store must start with an empty log",
            ));
        }
        self.put_meta(LAST_PURGED, &log_id)?;
        self.db.flush()?;
        Ok(())
    }

    /// Every stored log entry in index order, read synchronously (for
    /// `rxchain verify`, which compares them with the chain).
    pub fn entries(&self) -> impl Iterator<Item = Result<Entry<TypeConfig>, StoreError>> + '_ {
        self.log.iter().map(|r| {
            let (k, v) = r?;
            Self::decode_entry(&k, &v)
        })
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
        let iter = match end {
            Some(end) if end <= start => return Ok(Vec::new()),
            Some(end) => self.log.range(start.to_be_bytes()..end.to_be_bytes()),
            None => self.log.range(start.to_be_bytes()..),
        };
        iter.map(|r| {
            let (k, v) = r?;
            Self::decode_entry(&k, &v)
        })
        .collect::<Result<Vec<_>, StoreError>>()
        .map_err(|e| store_io(ErrorSubject::Logs, ErrorVerb::Read, e))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId<u64>> = self
            .get_meta(LAST_PURGED)
            .map_err(|e| store_io(ErrorSubject::Store, ErrorVerb::Read, e))?;
        let last = self
            .log
            .last()
            .map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        let last_log_id = match last {
            Some((k, v)) => Some(
                *Self::decode_entry(&k, &v)
                    .map_err(|e| store_io(ErrorSubject::Logs, ErrorVerb::Read, e))?
                    .get_log_id(),
            ),
            None => last_purged_log_id,
        };
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
        let mut batch = sled::Batch::default();
        for k in self.log.range(log_id.index.to_be_bytes()..).keys() {
            batch.remove(k.map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Read, e))?);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
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
        let mut batch = sled::Batch::default();
        for k in self.log.range(..=log_id.index.to_be_bytes()).keys() {
            batch.remove(k.map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Read, e))?);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        Ok(())
    }
}
