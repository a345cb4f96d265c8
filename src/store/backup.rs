//! Backups of a node's chain, and restoring one into a new data directory.
//!
//! A backup is exactly a snapshot stream (`rxchain-snap-v2`, see
//! [`crate::types::snapshot`]) of the node's `chain` tree, written at one
//! block boundary: every block, certificate, index and state pair, the
//! tip, the state accumulator, and the Raft position the state machine
//! had reached (`m/applied`, `m/membership`). It holds no node identity:
//! no keys, no staff accounts or sessions (the `accounts` tree is the
//! node's own and is not backed up), no Raft log or vote. So one backup can
//! seed any node of the consortium.
//!
//! [`restore`] trusts nothing in the file. It first runs the snapshot check
//! (hash links, the tip's proposer signature, the state root recomputed
//! over the streamed state); then it rebuilds the chain in a staging folder
//! beside the target by re-checking and re-executing every block with the
//! contracts (`check_and_execute`, as every node's state machine does),
//! checks every quorum certificate against the consortium in force before
//! its block, and finally compares the rebuilt tree pair by pair with the
//! backup: any pair the blocks do not produce (a tampered index, a changed
//! state value, an extra key) refuses the backup. Only then is the staging
//! folder renamed into place; a refused backup leaves the target as it was.
//!
//! The restored Raft state is the one openraft leaves after installing a
//! snapshot: last applied log id and membership from the backup, an empty
//! log purged up to that id, no vote. A node started on it catches up from
//! the leader by log entries after that id (by a snapshot only if the
//! leader has purged them).

use std::fs;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::LogId;
use rxchain_contracts::block::{self, Block, BlockError};
use rxchain_contracts::cert::{CertError, QuorumCert};
use rxchain_contracts::{encoding, Genesis, Hash};

use super::chain::{keys, Membership};
use super::{ChainStore, NoObserver, StoreError};
use crate::types::snapshot::{
    self as snap, SnapshotRefused, StreamError, StreamReader, StreamWriter,
};

/// What a backup holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupInfo {
    /// The height of its last block.
    pub height: u64,
    /// The hash of its last block (the genesis hash at height 0).
    pub tip_hash: Hash,
    /// The number of pairs.
    pub entries: u64,
    /// The last Raft log id applied into it.
    pub applied: Option<LogId<u64>>,
}

/// Writes a backup of `chain` to `out`, at one block boundary.
pub fn write_backup(chain: &ChainStore, out: impl Write) -> Result<BackupInfo, StoreError> {
    let w = chain.write_snapshot(out)?;
    Ok(BackupInfo {
        height: w.tip.height,
        tip_hash: w.tip.hash,
        entries: w.entries,
        applied: w.applied,
    })
}

/// What a restore rebuilt.
#[derive(Clone, Debug)]
pub struct Restored {
    /// The height of the last block.
    pub height: u64,
    /// The hash of the last block.
    pub tip_hash: Hash,
    /// Transactions re-checked and re-executed.
    pub txs: u64,
    /// Quorum certificates checked.
    pub certs: u64,
    /// The Raft log id the restored node starts after.
    pub applied: Option<LogId<u64>>,
    /// The Raft membership it starts with.
    pub membership: Membership,
}

/// Why a backup was not restored. Nothing was written to the target
/// directory in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The target directory has files in it.
    #[error("{0} is not empty; restore into a new or empty directory")]
    NotEmpty(PathBuf),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The backup fails the snapshot check (format, genesis, links, tip
    /// signature, state root).
    #[error("the backup is refused: {0}")]
    Refused(#[from] SnapshotRefused),
    /// The backup's stream is malformed.
    #[error("the backup is refused: {0}")]
    Stream(#[from] StreamError),
    /// A block fails the contracts' checks when re-executed.
    #[error("the backup is refused: block {height} does not verify: {source}")]
    Block {
        /// The block's height.
        height: u64,
        /// The contracts' verdict.
        #[source]
        source: BlockError,
    },
    /// A quorum certificate does not certify its block.
    #[error("the backup is refused: the certificate of block {height} does not verify: {reason}")]
    Certificate {
        /// The certified height.
        height: u64,
        /// What failed.
        reason: String,
    },
    /// A pair of the backup is not what its blocks produce.
    #[error("the backup is refused: its pair {key} is not what its blocks produce ({what})")]
    Differs {
        /// The key, hex.
        key: String,
        /// Missing, extra or changed.
        what: &'static str,
    },
    /// The staging store failed.
    #[error("restoring: {0}")]
    Store(#[from] StoreError),
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> RestoreError {
    let path = path.to_path_buf();
    move |source| RestoreError::Io { path, source }
}

/// Checks a backup file against `genesis` without writing anything: the
/// snapshot check's structure, links and state root, but not signatures or
/// certificates, whose keys depend on governance decisions inside the
/// backup; [`restore`] re-executes every block and checks those.
pub fn check_file(genesis: &Genesis, backup: &Path) -> Result<snap::Verified, RestoreError> {
    let file = fs::File::open(backup).map_err(io_at(backup))?;
    Ok(snap::verify(genesis, None, BufReader::new(file))?)
}

/// Restores the backup file `backup` into the new or empty directory
/// `data_dir`, after checking all of it (see the module doc).
///
/// `progress` is called with the bytes of the backup read so far, in each
/// pass (the file is read three times: check, rebuild, compare).
pub fn restore(
    genesis: Arc<Genesis>,
    backup: &Path,
    data_dir: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<Restored, RestoreError> {
    if data_dir.exists() {
        let mut entries = fs::read_dir(data_dir).map_err(io_at(data_dir))?;
        if entries.next().is_some() {
            return Err(RestoreError::NotEmpty(data_dir.to_path_buf()));
        }
    }
    // 1. The streaming check first, so a tampered file writes nothing.
    {
        let file = fs::File::open(backup).map_err(io_at(backup))?;
        snap::verify(
            &genesis,
            None,
            Counting::new(BufReader::new(file), progress),
        )?;
    }
    // 2. Rebuild in a staging folder beside the target (same file system,
    //    so the final rename is atomic); dropped, hence removed, on error.
    let parent = match data_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(io_at(&parent))?;
    let staging = tempfile::Builder::new()
        .prefix(".rxchain-restore-")
        .tempdir_in(&parent)
        .map_err(io_at(&parent))?;
    let restored = rebuild(&genesis, backup, staging.path(), progress)?;
    let genesis_file = staging.path().join("genesis.json");
    let text = serde_json::to_string_pretty(&*genesis).map_err(|e| StoreError::Encode {
        what: "genesis",
        detail: e.to_string(),
    })?;
    fs::write(&genesis_file, text).map_err(io_at(&genesis_file))?;
    // 3. Into place. An existing empty directory is replaced by the rename.
    let path = staging.keep();
    if let Err(e) = fs::rename(&path, data_dir) {
        let _ = fs::remove_dir_all(&path);
        return Err(io_at(data_dir)(e));
    }
    Ok(restored)
}

/// Rebuilds the chain of `backup` in the empty folder `dir` and compares it
/// with the backup; the store is closed (and flushed) on return.
fn rebuild(
    genesis: &Arc<Genesis>,
    backup: &Path,
    dir: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<Restored, RestoreError> {
    let storage = super::open(dir, genesis.clone(), Arc::new(NoObserver))?;
    let chain = &storage.chain;
    let open = || -> Result<_, RestoreError> {
        let file = fs::File::open(backup).map_err(io_at(backup))?;
        Ok(BufReader::new(file))
    };
    // The consortium in force after each height at which it changed: a
    // certificate of block h is checked against the one before h.
    let mut consortia: Vec<(u64, Arc<Genesis>)> = vec![(0, chain.consortium())];
    let mut txs = 0u64;
    let mut certs = 0u64;
    let mut applied_raw = None;
    let mut membership_raw = None;
    {
        let mut reader = StreamReader::new(Counting::new(open()?, progress))?;
        while let Some((k, v)) = reader.next_entry()? {
            if let Some(key_height) = k.strip_prefix(keys::BLOCK) {
                let b: Block = encoding::from_bytes(&v).map_err(|e| {
                    StoreError::corrupt(format!("block at key {}", hex::encode(&k)), e)
                })?;
                if key_height != b.header.height.to_be_bytes() {
                    return Err(RestoreError::Differs {
                        key: hex::encode(&k),
                        what: "a block stored under another height",
                    });
                }
                let tip = chain.tip();
                let view = chain.state();
                let result = block::check_and_execute(genesis, &view, &tip, &b, &|_| None);
                view.check()?;
                let (_, exec) = result.map_err(|source| RestoreError::Block {
                    height: b.header.height,
                    source,
                })?;
                chain.apply_block(&b, &exec, None)?;
                txs += b.txs.len() as u64;
                let now = chain.consortium();
                if consortia.last().is_some_and(|(_, c)| **c != *now) {
                    consortia.push((b.header.height, now));
                }
            } else if k.starts_with(keys::CERT) {
                let cert: QuorumCert = super::from_json(|| "certificate".into(), &v)?;
                let fail = |reason: String| RestoreError::Certificate {
                    height: cert.height,
                    reason,
                };
                if k != keys::cert(cert.height) {
                    return Err(fail("stored under another height".into()));
                }
                let b = chain
                    .block(cert.height)?
                    .ok_or_else(|| fail("the backup has no such block".into()))?;
                let in_force = consortia
                    .iter()
                    .rev()
                    .find(|(after, _)| *after < cert.height)
                    .map(|(_, c)| c.clone())
                    .unwrap_or_else(|| genesis.clone());
                cert.verify(&in_force, &b.header)
                    .map_err(|e: CertError| fail(e.to_string()))?;
                chain.put_cert(&cert)?;
                certs += 1;
            } else if k.as_slice() == keys::APPLIED {
                let _: Option<LogId<u64>> = super::from_json(|| "last applied log id".into(), &v)?;
                applied_raw = Some(v);
            } else if k.as_slice() == keys::MEMBERSHIP {
                let _: Membership = super::from_json(|| "membership".into(), &v)?;
                membership_raw = Some(v);
            }
        }
    }
    chain.restore_raft_position(applied_raw.as_deref(), membership_raw.as_deref())?;
    // Every pair must be exactly what the blocks (and the copied Raft
    // position and certificates) produced: nothing more, nothing less.
    {
        let mut reader = StreamReader::new(Counting::new(open()?, progress))?;
        let mut rebuilt = chain.pairs();
        loop {
            match (reader.next_entry()?, rebuilt.next().transpose()?) {
                (None, None) => break,
                (Some((k, _)), None) => {
                    return Err(RestoreError::Differs {
                        key: hex::encode(&k),
                        what: "extra",
                    })
                }
                (None, Some((k, _))) => {
                    return Err(RestoreError::Differs {
                        key: hex::encode(&k),
                        what: "missing",
                    })
                }
                (Some((k, v)), Some((rk, rv))) => {
                    if k.as_slice() != rk.as_ref() {
                        let first = if k.as_slice() < rk.as_ref() {
                            &k[..]
                        } else {
                            &rk[..]
                        };
                        return Err(RestoreError::Differs {
                            key: hex::encode(first),
                            what: "missing or extra",
                        });
                    }
                    if v.as_slice() != rv.as_ref() {
                        return Err(RestoreError::Differs {
                            key: hex::encode(&k),
                            what: "changed",
                        });
                    }
                }
            }
        }
    }
    let (applied, membership) = chain.last_applied()?;
    if let Some(a) = applied {
        storage.log.restore_purged(a)?;
    }
    chain.flush()?;
    storage.db.flush().map_err(StoreError::from)?;
    let tip = chain.tip();
    Ok(Restored {
        height: tip.height,
        tip_hash: tip.hash,
        txs,
        certs,
        applied,
        membership,
    })
}

/// A reader that reports how many bytes went through it.
struct Counting<'p, R> {
    inner: R,
    read: u64,
    progress: &'p mut dyn FnMut(u64),
}

impl<'p, R> Counting<'p, R> {
    fn new(inner: R, progress: &'p mut dyn FnMut(u64)) -> Self {
        Counting {
            inner,
            read: 0,
            progress,
        }
    }
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        // Reported every 64 KiB or so, not for every small record read.
        let before = self.read / 65_536;
        self.read += n as u64;
        if self.read / 65_536 != before || n == 0 {
            (self.progress)(self.read);
        }
        Ok(n)
    }
}

/// Writes `pairs` as a backup stream to `out`, for tests and tools that
/// build a backup by hand (a tampered copy, say).
pub fn write_pairs(
    out: impl Write,
    pairs: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
) -> Result<u64, StreamError> {
    let mut w = StreamWriter::new(out)?;
    for (k, v) in pairs {
        w.entry(&k, &v)?;
    }
    Ok(w.finish()?.1)
}

/// The `(key, value)` pairs of a backup, in memory.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Reads every pair of a backup stream (for tests and tools; holds them
/// all in memory).
pub fn read_pairs(input: impl Read) -> Result<Pairs, StreamError> {
    let mut r = StreamReader::new(input)?;
    let mut out = Vec::new();
    while let Some(p) = r.next_entry()? {
        out.push(p);
    }
    Ok(out)
}
