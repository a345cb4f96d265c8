//! Durable storage in sled: the Raft log, the state machine and the chain.
//!
//! One sled database per node holds these trees:
//!
//! * `raft_log`: the Raft log, keyed by log index as a big-endian `u64`
//!   (so sled's byte order is log order), each value a postcard-encoded
//!   entry; `raft_log_applied`: applied entries kept only as references to
//!   the chain's blocks, so each transaction is stored once (see [`log`]).
//! * `raft_meta`: the vote, the committed log id and the last purged log id.
//! * `raft_snapshot`: the current snapshot's metadata and file name (the
//!   file itself is under `rxchain-snapshots/`, see [`sm`]).
//! * `chain`: everything the state machine owns: blocks, the world state,
//!   the query indexes and the last applied log id (see [`chain`] for the
//!   key layout).
//!
//! Everything one block changes, and the log id that carried it, is written
//! in one sled batch on the `chain` tree, so a crash never leaves half a
//! block applied. Log appends and votes are flushed before Raft is told they
//! are stored: a transaction is acknowledged only once it is on disk on a
//! quorum.
//!
//! Encodings: blocks are stored in the contracts' canonical encoding (the
//! bytes their hashes and signatures are about) and log entries in postcard,
//! both compact; world-state values are the contracts' own bytes, stored
//! untouched; the small metadata records (vote, log ids, membership, tip)
//! are JSON so that an operator can read them with any sled tool.

pub mod backup;
pub mod chain;
pub mod erase;
pub mod format;
pub mod log;
pub mod preverify;
pub mod readonly;
pub mod sm;
pub mod verify;

use std::path::Path;
use std::sync::Arc;

use rxchain_contracts::{Block, Execution, Genesis, Hash, TxId, VerifiedTx};

pub use crate::types::ConsortiumView;
pub use chain::{ChainStore, StateView};
pub use log::LogStore;
pub use sm::StateMachine;

/// What the state machine tells the rest of the node while it applies
/// blocks. The mempool implements it.
pub trait ApplyObserver: Send + Sync + 'static {
    /// A tx this node already verified (its mempool), so apply does not verify it twice.
    fn known(&self, id: &TxId) -> Option<VerifiedTx>;
    /// Called after a block's batch is written (in apply order), so waiters can get receipts.
    fn applied(&self, block: &Block);
    /// The execution this node computed when it proposed the block with this
    /// header hash, if it did. The proposer built and signed exactly that
    /// block on that tip, so re-checking and re-executing it would only
    /// repeat the same work; other nodes never have it and check everything.
    fn proposed(&self, _block_hash: &Hash) -> Option<Execution> {
        None
    }
}

/// An observer that knows nothing and waits for nothing: for tools and
/// tests that apply blocks without a mempool.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl ApplyObserver for NoObserver {
    fn known(&self, _id: &TxId) -> Option<VerifiedTx> {
        None
    }
    fn applied(&self, _block: &Block) {}
}

/// The opened storage of one node.
pub struct Storage {
    /// The sled database holding every tree.
    pub db: sled::Db,
    /// Read access to the committed chain, shared with the HTTP layer.
    pub chain: Arc<ChainStore>,
    /// The openraft log store (cheap to clone).
    pub log: LogStore,
    /// The openraft state machine (cheap to clone).
    pub sm: StateMachine,
}

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an error (I/O, corruption, or a bug of its own).
    #[error("database error: {0}")]
    Sled(#[from] sled::Error),
    /// A file-system operation around the database failed.
    #[error("file system error: {0}")]
    Io(#[from] std::io::Error),
    /// A stored record does not decode: the data is corrupt or was written
    /// by an incompatible version.
    #[error("stored {what} is corrupt: {detail}")]
    Corrupt {
        /// Which record.
        what: String,
        /// The decode failure.
        detail: String,
    },
    /// A value could not be encoded for storage.
    #[error("cannot encode {what}: {detail}")]
    Encode {
        /// Which value.
        what: &'static str,
        /// The encoder's complaint.
        detail: String,
    },
    /// The database was created for another consortium.
    #[error("the database belongs to genesis {stored}, not {expected}")]
    GenesisMismatch {
        /// Genesis hash recorded in the database, hex.
        stored: String,
        /// Genesis hash this node was started with, hex.
        expected: String,
    },
    /// A block handed to [`ChainStore::apply_block`] does not extend the tip.
    #[error("block {height} does not extend the tip at height {tip}")]
    NotNext {
        /// The block's height.
        height: u64,
        /// The tip's height.
        tip: u64,
    },
    /// The execution result does not belong to the block.
    #[error("the execution has {outcomes} outcomes for a block of {txs} transactions")]
    ExecutionMismatch {
        /// Outcomes in the execution.
        outcomes: usize,
        /// Transactions in the block.
        txs: usize,
    },
    /// A snapshot stream cannot be read or written.
    #[error("snapshot stream: {0}")]
    SnapshotStream(#[from] crate::types::snapshot::StreamError),
    /// A snapshot failed its check and was not installed.
    #[error("snapshot refused: {0}")]
    SnapshotRefused(#[from] crate::types::snapshot::SnapshotRefused),
    /// The data directory was written by a newer rxchain (see [`format`]).
    #[error("the data directory has format version {found}, but this rxchain reads versions up to {supported}: run the newer binary that wrote it (or restore a backup); nothing was changed")]
    FormatTooNew {
        /// The version recorded in the directory.
        found: u32,
        /// The newest version this binary reads.
        supported: u32,
    },
}

impl StoreError {
    pub(crate) fn corrupt(what: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        StoreError::Corrupt {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}

/// JSON encoding of the small metadata records.
pub(crate) fn to_json<T: serde::Serialize>(
    what: &'static str,
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Encode {
        what,
        detail: e.to_string(),
    })
}

/// Decodes a JSON metadata record, naming it in the error.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    what: impl FnOnce() -> String,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::corrupt(what(), e))
}

/// Postcard encoding of Raft log entries and snapshot data.
pub(crate) fn to_postcard<T: serde::Serialize>(
    what: &'static str,
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    postcard::to_allocvec(value).map_err(|e| StoreError::Encode {
        what,
        detail: e.to_string(),
    })
}

/// Decodes a postcard record, naming it in the error.
pub(crate) fn from_postcard<T: serde::de::DeserializeOwned>(
    what: impl FnOnce() -> String,
    bytes: &[u8],
) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::corrupt(what(), e))
}

/// Opens sled, waiting briefly for the file lock: after a `Db` is dropped,
/// sled's flusher thread still holds the lock until its current cycle ends,
/// so an in-process reopen (a restarted node, `verify` right after a stop)
/// can meet a lock that is about to be released. Another live process keeps
/// it, and then the error comes back after two seconds.
/// sled's page cache when no setting says otherwise (`[storage] cache_mb`).
/// sled's own default is 1 GiB, which let a node's memory grow with the
/// chain.
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;

fn open_db(dir: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    let mut tries = 0;
    let config = sled::Config::new().path(dir).cache_capacity(cache_bytes);
    loop {
        match config.open() {
            Err(sled::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock && tries < 40 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return Ok(other?),
        }
    }
}

/// Opens (or creates) the node's database in `dir`.
///
/// Checks the format version first ([`format::check_and_migrate`]): a
/// newer format is refused before anything is written, an older one is
/// migrated. Refuses a database created for a different genesis, so a node
/// can never mix two consortiums' chains.
#[tracing::instrument(skip(genesis, observer), fields(dir = %dir.display()))]
pub fn open(
    dir: &Path,
    genesis: Arc<Genesis>,
    observer: Arc<dyn ApplyObserver>,
) -> Result<Storage, StoreError> {
    open_with_cache(dir, genesis, observer, DEFAULT_CACHE_BYTES)
}

/// [`open`] with sled's page cache bounded to `cache_bytes`.
pub fn open_with_cache(
    dir: &Path,
    genesis: Arc<Genesis>,
    observer: Arc<dyn ApplyObserver>,
    cache_bytes: u64,
) -> Result<Storage, StoreError> {
    let db = open_db(dir, cache_bytes)?;
    format::check_and_migrate(&db, genesis.chain_id.as_str())?;
    let chain = Arc::new(ChainStore::open(db.open_tree("chain")?, genesis)?);
    chain.set_spool_dir(dir.join(sm::SNAPSHOT_DIR));
    let log = LogStore::open(&db, chain.clone())?;
    let sm = StateMachine::new(db.clone(), chain.clone(), observer, dir, log.clone())?;
    tracing::debug!(height = chain.tip().height, "storage opened");
    Ok(Storage { db, chain, log, sm })
}
