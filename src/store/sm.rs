//! The openraft state machine. It decodes each committed entry and
//! delegates: blocks go to the contracts' `check_and_execute`, the result to
//! [`ChainStore::apply_block`]. No business rule lives here.
//!
//! A committed block that is not a valid next block (say, a deposed
//! leader's block built on a stale tip) is skipped: only the log id is
//! recorded and the response says why. Every node applies the same log to
//! the same chain, so every node skips the same blocks.
//!
//! Snapshots are a dump of the whole `chain` tree, blocks included, so a
//! node that catches up from a snapshot still holds the complete chain and
//! can serve and verify it.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend,
    RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use rxchain_contracts::block::{self, Block, BlockError};
use serde::{Deserialize, Serialize};

use super::chain::Membership;
use super::{ApplyObserver, ChainStore, StoreError};
use crate::types::{RaftRequest, RaftResponse, TypeConfig};

const SNAPSHOT_META: &[u8] = b"meta";
const SNAPSHOT_DATA: &[u8] = b"data";
/// Version of the snapshot data layout, so an incompatible node refuses it
/// instead of installing garbage.
const DUMP_FORMAT: u32 = 1;

/// The snapshot data: every `(key, value)` of the `chain` tree.
#[derive(Serialize, Deserialize)]
struct ChainDump {
    format: u32,
    entries: Vec<(Vec<u8>, Vec<u8>)>,
}

type StorageResult<T> = Result<T, StorageError<u64>>;

fn sm_err(verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::new(ErrorSubject::StateMachine, verb, AnyError::new(&e)).into()
}

fn snap_err(verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::new(ErrorSubject::Snapshot(None), verb, AnyError::new(&e)).into()
}

/// A failed apply: the entry it failed at (none when the final flush
/// failed) and why. Kept small; openraft's error is built at the boundary.
struct ApplyFailure {
    at: Option<LogId<u64>>,
    error: StoreError,
}

impl ApplyFailure {
    fn into_storage_error(self) -> StorageError<u64> {
        match self.at {
            Some(log_id) => StorageIOError::apply(log_id, AnyError::new(&self.error)).into(),
            None => sm_err(ErrorVerb::Write, self.error),
        }
    }
}

/// The state machine handed to openraft. Cloning is cheap and shares the
/// chain.
#[derive(Clone)]
pub struct StateMachine {
    db: sled::Db,
    chain: Arc<ChainStore>,
    observer: Arc<dyn ApplyObserver>,
    snapshots: sled::Tree,
}

impl StateMachine {
    pub(crate) fn new(
        db: sled::Db,
        chain: Arc<ChainStore>,
        observer: Arc<dyn ApplyObserver>,
    ) -> Result<Self, StoreError> {
        let snapshots = db.open_tree("raft_snapshot")?;
        Ok(StateMachine {
            db,
            chain,
            observer,
            snapshots,
        })
    }

    /// The chain this state machine writes.
    pub fn chain(&self) -> &Arc<ChainStore> {
        &self.chain
    }

    /// Applies a run of committed entries on a blocking thread: block
    /// execution verifies signatures and sled writes block, and neither
    /// belongs on the async runtime.
    fn apply_blocking(
        &self,
        entries: Vec<Entry<TypeConfig>>,
    ) -> Result<Vec<RaftResponse>, ApplyFailure> {
        let mut responses = Vec::with_capacity(entries.len());
        let mut written = Vec::new();
        for entry in entries {
            let log_id = entry.log_id;
            let fail = |error: StoreError| ApplyFailure {
                at: Some(log_id),
                error,
            };
            let response = match entry.payload {
                EntryPayload::Blank => {
                    self.chain.record_applied(log_id, None).map_err(fail)?;
                    RaftResponse::default()
                }
                EntryPayload::Membership(m) => {
                    let membership = StoredMembership::new(Some(log_id), m);
                    self.chain
                        .record_applied(log_id, Some(&membership))
                        .map_err(fail)?;
                    RaftResponse::default()
                }
                EntryPayload::Normal(RaftRequest::Block(b)) => {
                    self.apply_block(log_id, b, &mut written).map_err(fail)?
                }
            };
            responses.push(response);
        }
        // Make the state durable before anyone is told, so a receipt never
        // names state a crash could take back, and so openraft may purge the
        // log behind it.
        self.chain
            .flush()
            .map_err(|error| ApplyFailure { at: None, error })?;
        for b in &written {
            self.observer.applied(b);
        }
        Ok(responses)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(log_id = %log_id, height = b.header.height))]
    fn apply_block(
        &self,
        log_id: LogId<u64>,
        b: Block,
        written: &mut Vec<Block>,
    ) -> Result<RaftResponse, StoreError> {
        let tip = self.chain.tip();
        let view = self.chain.state();
        let observer = &self.observer;
        let own = observer
            .proposed(&b.hash(self.chain.genesis().chain_id.as_str()))
            .filter(|_| b.header.prev_hash == tip.hash && b.header.height == tip.height + 1)
            // A node that governance removed while it led must not apply its
            // own block unchecked: every other node refuses its proposals.
            .filter(|_| self.chain.consortium().node(b.header.proposer).is_some());
        let result = match own {
            Some(exec) => Ok((Vec::new(), exec)),
            None => block::check_and_execute(self.chain.genesis(), &view, &tip, &b, &|id| {
                observer.known(id)
            }),
        };
        // A failed read makes the result meaningless: stop here rather than
        // record a verdict other nodes would not reach.
        view.check()?;
        match result {
            Ok((_, exec)) => {
                self.chain.apply_block(&b, &exec, Some(log_id))?;
                let height = b.header.height;
                written.push(b);
                Ok(RaftResponse {
                    height: Some(height),
                    rejected: None,
                })
            }
            Err(e) => {
                if let BlockError::Corrupt(_) = &e {
                    tracing::error!(error = %e, "committed block skipped: the stored state does not decode");
                } else {
                    tracing::warn!(error = %e, tip = tip.height, "committed block skipped: it is not a valid next block");
                }
                self.chain.record_applied(log_id, None)?;
                Ok(RaftResponse {
                    height: None,
                    rejected: Some(e.to_string()),
                })
            }
        }
    }

    /// Stores `meta` and `data` as the current snapshot, durably.
    fn save_current(
        &self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        data: &[u8],
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        batch.insert(SNAPSHOT_META, super::to_json("snapshot meta", meta)?);
        batch.insert(SNAPSHOT_DATA, data);
        self.snapshots.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    fn build_blocking(&self) -> Result<Snapshot<TypeConfig>, StoreError> {
        let dump = self.chain.dump()?;
        let data = super::to_postcard(
            "chain dump",
            &ChainDump {
                format: DUMP_FORMAT,
                entries: dump.entries,
            },
        )?;
        // Two snapshots at the same log id may differ in bytes, so the id
        // carries a database-unique counter too.
        let unique = self.db.generate_id()?;
        let snapshot_id = match &dump.applied {
            Some(l) => format!("{}-{}-{unique}", l.leader_id, l.index),
            None => format!("none-{unique}"),
        };
        let meta = SnapshotMeta {
            last_log_id: dump.applied,
            last_membership: dump.membership,
            snapshot_id,
        };
        self.save_current(&meta, &data)?;
        tracing::info!(snapshot = %meta.snapshot_id, bytes = data.len(), "snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }

    fn install_blocking(
        &self,
        meta: SnapshotMeta<u64, openraft::BasicNode>,
        data: Vec<u8>,
    ) -> Result<(), StoreError> {
        let dump: ChainDump =
            postcard::from_bytes(&data).map_err(|e| StoreError::BadSnapshot(e.to_string()))?;
        if dump.format != DUMP_FORMAT {
            return Err(StoreError::BadSnapshot(format!(
                "unknown dump format {}",
                dump.format
            )));
        }
        let before = self.chain.tip().height;
        self.chain
            .replace_all(dump.entries, meta.last_log_id, &meta.last_membership)?;
        self.save_current(&meta, &data)?;
        // Tell the mempool about every block the snapshot brought, as if
        // they had been applied one by one, so it can drop what they carry.
        for b in self.chain.blocks(before + 1) {
            self.observer.applied(&b?);
        }
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    #[tracing::instrument(level = "info", skip_all)]
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.build_blocking())
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?
            .map_err(|e| snap_err(ErrorVerb::Write, e))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> StorageResult<(Option<LogId<u64>>, Membership)> {
        self.chain
            .last_applied()
            .map_err(|e| sm_err(ErrorVerb::Read, e))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<RaftResponse>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.apply_blocking(entries))
            .await
            .map_err(|e| sm_err(ErrorVerb::Write, e))?
            .map_err(ApplyFailure::into_storage_error)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    #[tracing::instrument(level = "info", skip_all, fields(snapshot = %meta.snapshot_id))]
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let this = self.clone();
        let meta = meta.clone();
        let data = snapshot.into_inner();
        tokio::task::spawn_blocking(move || this.install_blocking(meta, data))
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?
            .map_err(|e| snap_err(ErrorVerb::Write, e))
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let meta = self
            .snapshots
            .get(SNAPSHOT_META)
            .map_err(|e| snap_err(ErrorVerb::Read, e))?;
        let data = self
            .snapshots
            .get(SNAPSHOT_DATA)
            .map_err(|e| snap_err(ErrorVerb::Read, e))?;
        let (Some(meta), Some(data)) = (meta, data) else {
            return Ok(None);
        };
        let meta: SnapshotMeta<u64, openraft::BasicNode> =
            super::from_json(|| "snapshot meta".into(), &meta)
                .map_err(|e| snap_err(ErrorVerb::Read, e))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data.to_vec())),
        }))
    }
}
