//! The openraft state machine. It decodes each committed entry and
//! delegates: blocks go to the contracts' `check_and_execute`, the result to
//! [`ChainStore::apply_block`]. No business rule lives here.
//!
//! A committed block that is not a valid next block (say, a deposed
//! leader's block built on a stale tip) is skipped: only the log id is
//! recorded and the response says why. Every node applies the same log to
//! the same chain, so every node skips the same blocks.
//!
//! Snapshots are the whole `chain` tree, blocks included, so a node that
//! catches up from a snapshot still holds the complete chain and can serve
//! and verify it. They are files in the stream format of
//! [`crate::types::snapshot`], under `rxchain-snapshots/` in the data
//! directory: built by streaming the tree to a file, sent by openraft in
//! chunks read from that file, received into an unlinked temporary file,
//! checked by the Raft RPC server before openraft sees them (see
//! `raft::snapshot`), and installed by streaming the file into the tree in
//! bounded batches. No layer holds a whole snapshot in memory.

use std::fs;
use std::io::{BufReader, BufWriter, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend,
    RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use rxchain_contracts::block::{self, Block, BlockError};

use super::chain::Membership;
use super::log::BlockRef;
use super::{ApplyObserver, ChainStore, StoreError};
use crate::types::snapshot::{StreamReader, StreamWriter, Tamper};
use crate::types::{RaftRequest, RaftResponse, TypeConfig};

const SNAPSHOT_META: &[u8] = b"meta";
/// The file name, under the snapshot directory, of the current snapshot.
const SNAPSHOT_FILE: &[u8] = b"file";
/// The folder of snapshot files, inside the data directory.
pub const SNAPSHOT_DIR: &str = "rxchain-snapshots";

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
    /// The Raft log, whose applied entries become references to blocks.
    log: super::LogStore,
    /// Where snapshot files live.
    dir: PathBuf,
    /// TEST ONLY fault: when set, the snapshot handed to openraft for
    /// sending has one byte of a state value flipped (see
    /// [`StateMachine::snapshot_tamper_switch`]).
    tamper: Arc<AtomicU8>,
}

impl StateMachine {
    pub(crate) fn new(
        db: sled::Db,
        chain: Arc<ChainStore>,
        observer: Arc<dyn ApplyObserver>,
        data_dir: &Path,
        log: super::LogStore,
    ) -> Result<Self, StoreError> {
        let snapshots = db.open_tree("raft_snapshot")?;
        let dir = data_dir.join(SNAPSHOT_DIR);
        fs::create_dir_all(&dir)?;
        // Nothing is building yet: a `.partial` file is a build a crash cut.
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().ends_with(".partial") {
                fs::remove_file(entry.path())?;
            }
        }
        let sm = StateMachine {
            db,
            chain,
            observer,
            snapshots,
            log,
            dir,
            tamper: Arc::new(AtomicU8::new(Tamper::Off as u8)),
        };
        if sm.chain.install_interrupted()? {
            sm.redo_install()?;
        }
        Ok(sm)
    }

    /// The switch of the test-only snapshot-tampering fault. The node hands
    /// it to its fault switchboard, which flips it only when the node runs
    /// with `testing_faults = true`.
    pub fn snapshot_tamper_switch(&self) -> Arc<AtomicU8> {
        self.tamper.clone()
    }

    /// Finishes a snapshot install that a crash interrupted, from the
    /// snapshot file recorded as current before the install began.
    fn redo_install(&self) -> Result<(), StoreError> {
        let Some((meta, path)) = self.current()? else {
            return Err(StoreError::corrupt(
                "interrupted snapshot install",
                "no current snapshot file to redo it from",
            ));
        };
        tracing::warn!(snapshot = %meta.snapshot_id, "redoing an interrupted snapshot install");
        let file = BufReader::new(fs::File::open(&path)?);
        self.chain
            .install_snapshot(file, meta.last_log_id, &meta.last_membership)
    }

    /// The current snapshot's metadata and file, if any.
    fn current(
        &self,
    ) -> Result<Option<(SnapshotMeta<u64, openraft::BasicNode>, PathBuf)>, StoreError> {
        let (Some(meta), Some(name)) = (
            self.snapshots.get(SNAPSHOT_META)?,
            self.snapshots.get(SNAPSHOT_FILE)?,
        ) else {
            return Ok(None);
        };
        let meta = super::from_json(|| "snapshot meta".into(), &meta)?;
        let name =
            std::str::from_utf8(&name).map_err(|e| StoreError::corrupt("snapshot file name", e))?;
        Ok(Some((meta, self.dir.join(name))))
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
        // The blocks are durable on the chain: their log entries need not
        // hold them a second time. A failure here only keeps them whole.
        if let Err(e) = self.log.refer_applied(written.iter().map(|(r, _)| r)) {
            tracing::warn!(error = %e, "applied log entries kept whole");
        }
        for (_, b) in &written {
            self.observer.applied(b);
        }
        Ok(responses)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(log_id = %log_id, height = b.header.height))]
    fn apply_block(
        &self,
        log_id: LogId<u64>,
        b: Block,
        written: &mut Vec<(BlockRef, Block)>,
    ) -> Result<RaftResponse, StoreError> {
        let tip = self.chain.tip();
        let view = self.chain.state();
        let observer = &self.observer;
        let hash = b.hash(self.chain.genesis().chain_id.as_str());
        let own = observer
            .proposed(&hash)
            .filter(|_| b.header.prev_hash == tip.hash && b.header.height == tip.height + 1)
            // A node that governance removed while it led must not apply its
            // own block unchecked: every other node refuses its proposals.
            .filter(|_| self.chain.consortium().node(b.header.proposer).is_some());
        let result = match own {
            Some(exec) => Ok((Vec::new(), exec)),
            None => {
                // Another leader's block: the signatures this node has not
                // checked yet are checked together, in parallel, first.
                let chain_id = self.chain.genesis().chain_id.as_str();
                let unknown: Vec<&rxchain_contracts::SignedTx> = b
                    .txs
                    .iter()
                    .filter(|t| observer.known(&t.tx.id(chain_id)).is_none())
                    .collect();
                let checked = super::preverify::verify_all(chain_id, &unknown);
                block::check_and_execute(self.chain.genesis(), &view, &tip, &b, &|id| {
                    observer.known(id).or_else(|| checked.get(id).cloned())
                })
            }
        };
        // A failed read makes the result meaningless: stop here rather than
        // record a verdict other nodes would not reach.
        view.check()?;
        match result {
            Ok((_, exec)) => {
                self.chain.apply_block(&b, &exec, Some(log_id))?;
                let height = b.header.height;
                written.push((
                    BlockRef {
                        log_id,
                        height,
                        hash,
                    },
                    b,
                ));
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

    /// Records `meta` and the file `name` as the current snapshot, durably,
    /// and removes every other snapshot file.
    fn save_current(
        &self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        name: &str,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        batch.insert(SNAPSHOT_META, super::to_json("snapshot meta", meta)?);
        batch.insert(SNAPSHOT_FILE, name.as_bytes());
        self.snapshots.apply_batch(batch)?;
        self.db.flush()?;
        // Only finished snapshot files go: a `.partial` one may be a build
        // running concurrently (openraft builds beside apply and install).
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let file = entry.file_name();
            let file = file.to_string_lossy();
            if file != name && file.starts_with("snapshot-") && file.ends_with(".snap") {
                // A file still being sent stays readable through its open
                // handle; only its name goes.
                if let Err(e) = fs::remove_file(entry.path()) {
                    tracing::warn!(error = %e, file = %entry.path().display(), "old snapshot file not removed");
                }
            }
        }
        Ok(())
    }

    /// A new file name for a snapshot, unique in this database.
    fn new_file_name(&self) -> Result<String, StoreError> {
        Ok(format!("snapshot-{}.snap", self.db.generate_id()?))
    }

    /// Writes a snapshot file durably: to a `.partial` name first, synced,
    /// then renamed, so a crash never leaves a half file under a real name.
    fn write_file<T>(
        &self,
        name: &str,
        fill: impl FnOnce(&mut BufWriter<fs::File>) -> Result<T, StoreError>,
    ) -> Result<(PathBuf, T), StoreError> {
        let path = self.dir.join(name);
        let partial = self.dir.join(format!("{name}.partial"));
        let mut out = BufWriter::new(fs::File::create(&partial)?);
        let filled = fill(&mut out)?;
        let file = out
            .into_inner()
            .map_err(|e| StoreError::Io(e.into_error()))?;
        file.sync_all()?;
        fs::rename(&partial, &path)?;
        Ok((path, filled))
    }

    fn build_blocking(&self) -> Result<Snapshot<TypeConfig>, StoreError> {
        let name = self.new_file_name()?;
        let (path, written) = self.write_file(&name, |out| self.chain.write_snapshot(out))?;
        // Two snapshots at the same log id may differ in bytes, so the id
        // carries a database-unique counter too.
        let unique = self.db.generate_id()?;
        let snapshot_id = match &written.applied {
            Some(l) => format!("{}-{}-{unique}", l.leader_id, l.index),
            None => format!("none-{unique}"),
        };
        let meta = SnapshotMeta {
            last_log_id: written.applied,
            last_membership: written.membership,
            snapshot_id,
        };
        self.save_current(&meta, &name)?;
        let bytes = fs::metadata(&path)?.len();
        tracing::info!(snapshot = %meta.snapshot_id, bytes, entries = written.entries, "snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(fs::File::open(&path)?)),
        })
    }

    /// Installs a received snapshot, already checked by the RPC server:
    /// keeps it as the current snapshot file, then streams it into the tree.
    fn install_blocking(
        &self,
        meta: SnapshotMeta<u64, openraft::BasicNode>,
        mut data: fs::File,
    ) -> Result<(), StoreError> {
        data.seek(SeekFrom::Start(0))?;
        let name = self.new_file_name()?;
        let (path, _) = self.write_file(&name, |out| Ok(std::io::copy(&mut data, out)?))?;
        // Recorded before the tree changes, so an interrupted install can be
        // redone from this file at the next open.
        self.save_current(&meta, &name)?;
        let before = self.chain.tip().height;
        self.chain.install_snapshot(
            BufReader::new(fs::File::open(&path)?),
            meta.last_log_id,
            &meta.last_membership,
        )?;
        // Tell the mempool about every block the snapshot brought, as if
        // they had been applied one by one, so it can drop what they carry.
        for b in self.chain.blocks(before + 1) {
            self.observer.applied(&b?);
        }
        Ok(())
    }

    /// An unlinked temporary file in the snapshot directory: it lives as
    /// long as its handle, so an abandoned transfer leaves nothing behind.
    fn anonymous_file(&self) -> Result<fs::File, StoreError> {
        let path = self
            .dir
            .join(format!("incoming-{}.tmp", self.db.generate_id()?));
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        fs::remove_file(&path)?;
        Ok(file)
    }

    /// TEST ONLY: a copy of the snapshot at `path` forged as `mode` says,
    /// as a forger would send it.
    fn tampered_copy(&self, path: &Path, mode: Tamper) -> Result<fs::File, StoreError> {
        use super::chain::keys;
        let mut reader = StreamReader::new(BufReader::new(fs::File::open(path)?))?;
        let mut writer = StreamWriter::new(BufWriter::new(self.anonymous_file()?))?;
        let mut changed = 0u64;
        let mut tip_key = None;
        while let Some((k, mut v)) = reader.next_entry()? {
            if k.starts_with(keys::BLOCK) {
                // Blocks sort first, by height: the last one is the tip.
                tip_key = Some(keys::cert(u64::from_be_bytes(
                    k[keys::BLOCK.len()..].try_into().unwrap_or_default(),
                )));
            }
            match mode {
                Tamper::StateByte if changed == 0 && k.starts_with(keys::STATE) => {
                    if let Some(last) = v.last_mut() {
                        *last ^= 0x01;
                        changed += 1;
                    }
                }
                Tamper::DropTipCert if tip_key.as_deref() == Some(k.as_slice()) => {
                    changed += 1;
                    continue;
                }
                Tamper::DropVote if k.starts_with(keys::CERT) => {
                    let mut cert: rxchain_contracts::cert::QuorumCert =
                        super::from_json(|| "certificate".into(), &v)?;
                    cert.votes.pop();
                    v = super::to_json("certificate", &cert)?;
                    changed += 1;
                }
                Tamper::MoveTxIndex if k.starts_with(keys::TX) => {
                    v = keys::loc(1, 0).to_vec();
                    changed += 1;
                }
                _ => {}
            }
            writer.entry(&k, &v)?;
        }
        let (out, _) = writer.finish()?;
        let mut file = out
            .into_inner()
            .map_err(|e| StoreError::Io(e.into_error()))?;
        file.seek(SeekFrom::Start(0))?;
        tracing::warn!(
            ?mode,
            changed,
            "TEST FAULT: handing out a tampered snapshot"
        );
        Ok(file)
    }

    fn current_blocking(&self) -> Result<Option<Snapshot<TypeConfig>>, StoreError> {
        let Some((meta, path)) = self.current()? else {
            return Ok(None);
        };
        let mode = Tamper::from_u8(self.tamper.load(Ordering::Relaxed));
        let file = if mode != Tamper::Off {
            self.tampered_copy(&path, mode)?
        } else {
            fs::File::open(&path)?
        };
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        }))
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

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<tokio::fs::File>> {
        let this = self.clone();
        let file = tokio::task::spawn_blocking(move || this.anonymous_file())
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    #[tracing::instrument(level = "info", skip_all, fields(snapshot = %meta.snapshot_id))]
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> StorageResult<()> {
        let this = self.clone();
        let meta = meta.clone();
        let data = snapshot.into_std().await;
        tokio::task::spawn_blocking(move || this.install_blocking(meta, data))
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?
            .map_err(|e| snap_err(ErrorVerb::Write, e))
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.current_blocking())
            .await
            .map_err(|e| snap_err(ErrorVerb::Read, e))?
            .map_err(|e| snap_err(ErrorVerb::Read, e))
    }
}
