//! The committed chain: blocks, the world state and the query indexes, all
//! in the `chain` sled tree, written one block at a time in one atomic batch.
//!
//! Key layout (every key starts with a short ASCII prefix so that one kind of
//! record sorts together; numbers are big-endian so that byte order is
//! numeric order):
//!
//! | prefix  | rest of key                              | value                      |
//! |---------|------------------------------------------|----------------------------|
//! | `b/`    | height `u64`                             | block, canonical encoding  |
//! | `h/`    | block hash (32)                          | height `u64`               |
//! | `t/`    | tx id (32)                               | height `u64`, index `u32`  |
//! | `s/`    | a contracts state key (`rx/…`, `staff/…`) | the contracts' bytes       |
//! | `i/rx/` | prescription id (16), height, index      | empty                      |
//! | `i/pr/` | prescriber key (33), prescription id     | empty                      |
//! | `i/ph/` | pharmacy org id, `0x00`, prescription id | empty                      |
//! | `i/st/` | status byte, prescription id             | empty                      |
//! | `i/dy/` | UTC day `u64`, height (before format 4: also index) | the block's tx count, `u32` (before: empty) |
//! | `i/rf/` | height, index                            | empty                      |
//! | `c/`    | height `u64`                             | quorum certificate, JSON   |
//! | `m/…`   | `applied`, `membership`, `tip`, `genesis` | JSON (genesis: raw hash)   |
//! | `m/lthash` |                                       | state accumulator, 2048 bytes |
//!
//! `m/lthash` is the LtHash accumulator of the `s/` pairs after the tip
//! (see `rxchain_contracts::state_root`); it is written in the block's batch,
//! so it always matches the stored state and the tip's `state_root`.
//!
//! Indexes are key-only sets, so re-inserting an entry is harmless and a
//! range scan returns them in order. Organisation ids never contain `0x00`,
//! so the separator keeps one org's entries from running into another's.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};

use openraft::{BasicNode, LogId, StoredMembership};
use rxchain_contracts::block::{Block, Execution, Tip};
use rxchain_contracts::cert::QuorumCert;
use rxchain_contracts::crypto::{Hash, PublicKey};
use rxchain_contracts::encoding;
use rxchain_contracts::genesis::Genesis;
use rxchain_contracts::governance;
use rxchain_contracts::model::{OrgId, PrescriptionId};
use rxchain_contracts::state::{
    self, PrescriptionRecord, RxStatus, StaffRecord, StateRead, StateScan,
};
use rxchain_contracts::state_root::LtHash;
use rxchain_contracts::tx::{SignedTx, TxBody, TxId};
use sled::Batch;

use super::{from_json, to_json, StoreError};
use crate::types::snapshot::{self as snap, StoredTip, StreamReader, StreamWriter};
use crate::types::ConsortiumView;

/// The membership type Raft stores with the state machine.
pub type Membership = StoredMembership<u64, BasicNode>;

/// Key construction and parsing for the `chain` tree.
pub(crate) mod keys {
    use super::*;

    pub const BLOCK: &[u8] = snap::keys::BLOCK;
    pub const HASH: &[u8] = b"h/";
    pub const TX: &[u8] = b"t/";
    pub const STATE: &[u8] = snap::keys::STATE;
    pub const HISTORY: &[u8] = b"i/rx/";
    pub const PRESCRIBER: &[u8] = b"i/pr/";
    pub const PHARMACY: &[u8] = b"i/ph/";
    pub const STATUS: &[u8] = b"i/st/";
    pub const DAY: &[u8] = b"i/dy/";
    pub const REFUSED: &[u8] = b"i/rf/";
    pub const CERT: &[u8] = snap::keys::CERT;
    pub const APPLIED: &[u8] = b"m/applied";
    pub const MEMBERSHIP: &[u8] = b"m/membership";
    pub const TIP: &[u8] = snap::keys::TIP;
    pub const GENESIS: &[u8] = snap::keys::GENESIS;
    pub const LTHASH: &[u8] = snap::keys::LTHASH;
    /// Set while a snapshot is being written into the tree in several
    /// batches; its presence at open means the install was interrupted.
    pub const INSTALLING: &[u8] = b"m/installing";

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// `(height, index)` as 12 bytes.
    pub fn loc(height: u64, index: u32) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..8].copy_from_slice(&height.to_be_bytes());
        b[8..].copy_from_slice(&index.to_be_bytes());
        b
    }

    /// Reads a location from the last 12 bytes of `b`.
    pub fn parse_loc(b: &[u8]) -> Option<(u64, u32)> {
        let tail = b.get(b.len().checked_sub(12)?..)?;
        let mut h = [0u8; 8];
        let mut i = [0u8; 4];
        h.copy_from_slice(&tail[..8]);
        i.copy_from_slice(&tail[8..]);
        Some((u64::from_be_bytes(h), u32::from_be_bytes(i)))
    }

    /// Reads a prescription id from the last 16 bytes of `b`.
    pub fn parse_rx_suffix(b: &[u8]) -> Option<PrescriptionId> {
        let tail = b.get(b.len().checked_sub(16)?..)?;
        let mut id = [0u8; 16];
        id.copy_from_slice(tail);
        Some(PrescriptionId::from_bytes(id))
    }

    pub fn block(height: u64) -> Vec<u8> {
        cat(&[BLOCK, &height.to_be_bytes()])
    }
    pub fn cert(height: u64) -> Vec<u8> {
        cat(&[CERT, &height.to_be_bytes()])
    }
    pub fn hash(h: &Hash) -> Vec<u8> {
        cat(&[HASH, h.as_bytes()])
    }
    pub fn tx(id: &TxId) -> Vec<u8> {
        cat(&[TX, id.0.as_bytes()])
    }
    pub fn state(key: &[u8]) -> Vec<u8> {
        cat(&[STATE, key])
    }
    pub fn history_prefix(id: &PrescriptionId) -> Vec<u8> {
        cat(&[HISTORY, id.as_bytes()])
    }
    pub fn history(id: &PrescriptionId, height: u64, index: u32) -> Vec<u8> {
        cat(&[HISTORY, id.as_bytes(), &loc(height, index)])
    }
    pub fn prescriber_prefix(k: &PublicKey) -> Vec<u8> {
        cat(&[PRESCRIBER, k.as_bytes()])
    }
    pub fn prescriber(k: &PublicKey, id: &PrescriptionId) -> Vec<u8> {
        cat(&[PRESCRIBER, k.as_bytes(), id.as_bytes()])
    }
    pub fn pharmacy_prefix(org: &OrgId) -> Vec<u8> {
        cat(&[PHARMACY, org.as_str().as_bytes(), &[0]])
    }
    pub fn pharmacy(org: &OrgId, id: &PrescriptionId) -> Vec<u8> {
        cat(&[PHARMACY, org.as_str().as_bytes(), &[0], id.as_bytes()])
    }
    /// A stable byte per status, independent of the enum's declaration order.
    pub fn status_byte(s: RxStatus) -> u8 {
        match s {
            RxStatus::Issued => 0,
            RxStatus::Assigned => 1,
            RxStatus::Claimed => 2,
            RxStatus::Completed => 3,
            RxStatus::Cancelled => 4,
        }
    }
    pub fn status_prefix(s: RxStatus) -> Vec<u8> {
        cat(&[STATUS, &[status_byte(s)]])
    }
    pub fn status(s: RxStatus, id: &PrescriptionId) -> Vec<u8> {
        cat(&[STATUS, &[status_byte(s)], id.as_bytes()])
    }
    /// The day index holds one record per block, its value the block's
    /// number of transactions as a big-endian `u32` (all of a block's
    /// transactions share its day). Chains written before data format 4
    /// hold one record per transaction, [`day_of_tx`], empty; both are read.
    pub fn day(day: u64, height: u64) -> Vec<u8> {
        cat(&[DAY, &day.to_be_bytes(), &height.to_be_bytes()])
    }
    /// The older, per-transaction day record (read, no longer written).
    pub fn day_of_tx(day: u64, height: u64, index: u32) -> Vec<u8> {
        cat(&[DAY, &day.to_be_bytes(), &loc(height, index)])
    }
    pub fn refused(height: u64, index: u32) -> Vec<u8> {
        cat(&[REFUSED, &loc(height, index)])
    }
}

/// The committed chain of one node. All reads see committed state only:
/// the state machine is the only writer.
pub struct ChainStore {
    genesis: Arc<Genesis>,
    /// The effective consortium (genesis plus executed governance
    /// decisions), replaced after each block that changed it, with
    /// receivers that wake on each change (see [`ChainStore::consortium`]).
    consortium: tokio::sync::watch::Sender<Arc<Genesis>>,
    tree: sled::Tree,
    /// The tip, cached because every transaction submission and every block
    /// proposal reads it. A std lock because it is held only for a copy,
    /// never across an `.await`, and is read from synchronous code
    /// (`spawn_blocking` closures) as well as from async handlers.
    tip: RwLock<Tip>,
    /// Serialises writers against snapshot dumps, so a snapshot is always
    /// one block boundary of the tree. sled has no snapshot reads, and
    /// openraft builds snapshots in a task of its own, concurrently with
    /// apply. A std mutex because it is only taken on blocking threads.
    write_gate: Mutex<()>,
    /// Called with each staff key a block revokes, after the block is
    /// written (see [`ChainStore::on_staff_revoked`]).
    revocation_hooks: RwLock<Vec<RevocationHook>>,
    /// Where an online backup is spooled before it is sent (the data
    /// directory's snapshot folder); the system's temporary folder if unset.
    spool_dir: OnceLock<std::path::PathBuf>,
    /// Writes of this node's own that must commit with each block (the
    /// issuing hospital's e-mail outbox), see [`ChainStore::set_apply_observer`].
    observer: OnceLock<Arc<dyn ApplyObserver>>,
}

/// Something that adds writes to a tree of its own in the same atomic
/// transaction as a block, so that its records follow committed facts
/// exactly once: a crash leaves both the block and them, or neither.
///
/// It lives in the store as a trait so that the store names nothing above
/// it (the e-mail outbox implements it).
pub trait ApplyObserver: Send + Sync {
    /// The observer's own tree; it is never part of a snapshot or backup.
    fn tree(&self) -> &sled::Tree;
    /// The writes one block brings to [`ApplyObserver::tree`], if any.
    /// `after` reads a prescription's record as the block leaves it. It
    /// must be quick and must not fail: trouble is logged and skipped,
    /// since a block is never refused for the observer's sake.
    fn plan(
        &self,
        block: &Block,
        outcomes: &[rxchain_contracts::lifecycle::Outcome],
        after: &dyn Fn(&PrescriptionId) -> Option<PrescriptionRecord>,
    ) -> Option<Batch>;
    /// The writes for blocks a snapshot brought, which this node never
    /// applied one by one; `after` reads a record as the snapshot left it.
    /// Called once per install, after it (again at the next open if a crash
    /// came first: the store keeps [`CATCH_UP`] in the observer's tree until
    /// these writes are made, in their batch).
    fn catch_up(
        &self,
        blocks: &mut dyn Iterator<Item = Block>,
        after: &dyn Fn(&PrescriptionId) -> Option<PrescriptionRecord>,
    ) -> Option<Batch>;
    /// Called once the block and the planned writes are written.
    fn applied(&self);
}

/// The one key the store keeps in its observer's tree: the first height a
/// snapshot install brought, until [`ApplyObserver::catch_up`] has seen it.
pub const CATCH_UP: &[u8] = b"__store/catch_up_from";

/// What [`ChainStore::on_staff_revoked`] calls: quick, synchronous, and
/// never failing (it logs its own trouble), since it runs inside apply.
pub type RevocationHook = Box<dyn Fn(&PublicKey) + Send + Sync>;

/// The Raft position a written snapshot reflects.
pub(crate) struct Written {
    /// The last log id applied into it.
    pub applied: Option<LogId<u64>>,
    /// The membership applied into it.
    pub membership: Membership,
    /// The number of pairs written.
    pub entries: u64,
    /// The tip the written pairs end at.
    pub tip: Tip,
}

/// Pairs written per sled batch while installing a snapshot, so an install
/// holds a bounded number of pairs in memory.
const INSTALL_BATCH: usize = 1024;

/// How long building a snapshot waits for the tip's quorum certificate.
const TIP_CERT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl ChainStore {
    /// Opens the chain tree, recording the genesis hash in a fresh database
    /// and refusing a database of another genesis.
    pub(crate) fn open(tree: sled::Tree, genesis: Arc<Genesis>) -> Result<Self, StoreError> {
        let expected = genesis.hash();
        match tree.get(keys::GENESIS)? {
            Some(stored) if stored.as_ref() == expected.as_bytes() => {}
            Some(stored) => {
                return Err(StoreError::GenesisMismatch {
                    stored: hex::encode(&stored),
                    expected: expected.to_hex(),
                })
            }
            None => {
                tree.insert(keys::GENESIS, expected.as_bytes().as_slice())?;
                tree.flush()?;
            }
        }
        let tip = load_tip(&tree, &genesis)?;
        let current = load_consortium(&tree, &genesis)?;
        Ok(ChainStore {
            genesis,
            consortium: tokio::sync::watch::Sender::new(current),
            tree,
            tip: RwLock::new(tip),
            write_gate: Mutex::new(()),
            revocation_hooks: RwLock::new(Vec::new()),
            observer: OnceLock::new(),
            spool_dir: OnceLock::new(),
        })
    }

    /// Sets the folder online backups are spooled in (once; later calls
    /// keep the first).
    pub(crate) fn set_spool_dir(&self, dir: std::path::PathBuf) {
        if self.spool_dir.set(dir).is_err() {
            tracing::debug!("the backup spool folder was set already");
        }
    }

    /// Writes a consistent backup of the whole chain (one block boundary,
    /// see [`crate::store::backup`]) into an unlinked temporary file and
    /// returns it rewound, with what it holds. Writers wait only while the
    /// local file is written, never while a client downloads it.
    pub fn backup_to_spool(
        &self,
    ) -> Result<(std::fs::File, super::backup::BackupInfo), StoreError> {
        let file = match self.spool_dir.get() {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                tempfile::tempfile_in(d)?
            }
            None => tempfile::tempfile()?,
        };
        let mut out = std::io::BufWriter::new(file);
        let info = super::backup::write_backup(self, &mut out)?;
        let mut file = out
            .into_inner()
            .map_err(|e| StoreError::Io(e.into_error()))?;
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(0))?;
        Ok((file, info))
    }

    /// Every pair of the tree in key order, as a backup compares them.
    pub(crate) fn pairs(
        &self,
    ) -> impl Iterator<Item = Result<(sled::IVec, sled::IVec), StoreError>> + '_ {
        self.tree
            .iter()
            .filter(|r| !matches!(r, Ok((k, _)) if k.as_ref() == keys::INSTALLING))
            .map(|r| r.map_err(StoreError::from))
    }

    /// Blocks from `from` upwards, ascending, each with the height its
    /// storage key names (which [`crate::store::verify`] checks against
    /// the header's).
    pub fn stored_blocks(
        &self,
        from: u64,
    ) -> impl Iterator<Item = Result<(u64, Block), StoreError>> + '_ {
        self.tree
            .range(keys::block(from)..=keys::block(u64::MAX))
            .map(|r| {
                let (k, v) = r?;
                let key_height = k
                    .get(keys::BLOCK.len()..)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
                    .ok_or_else(|| StoreError::corrupt("block key", hex::encode(&k)))?;
                let b = decode_block(|| format!("block at key {}", hex::encode(&k)), &v)?;
                Ok((key_height, b))
            })
    }

    /// Installs the one [`ApplyObserver`]; a second call is ignored and
    /// logged, since a node has one outbox.
    pub fn set_apply_observer(&self, observer: Arc<dyn ApplyObserver>) {
        if self.observer.set(observer).is_err() {
            tracing::warn!("an apply observer was already installed; the second is ignored");
            return;
        }
        // A crash may have come between a snapshot install and the
        // observer's catch-up with it (an interrupted install was redone at
        // open, before any observer was set).
        if let Err(e) = self.observer_catch_up() {
            tracing::error!(error = %e, "the apply observer could not catch up with a snapshot");
        }
    }

    /// Registers `hook` to be called with every staff key an applied
    /// `revoke_staff` transaction revokes, once its block is written. The
    /// account store uses it to end the person's sessions at once.
    pub fn on_staff_revoked(&self, hook: RevocationHook) {
        self.revocation_hooks
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(hook);
    }

    /// The genesis this chain grows from.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The genesis, shared.
    pub fn genesis_arc(&self) -> &Arc<Genesis> {
        &self.genesis
    }

    /// The effective consortium after the last committed block: genesis
    /// with every executed governance decision applied. Every lookup of an
    /// organisation, an admin, data or node key, a node or a parameter uses
    /// it; [`ChainStore::genesis`] only names the chain.
    pub fn consortium(&self) -> Arc<Genesis> {
        self.consortium.borrow().clone()
    }

    /// A view of the effective consortium that stays current and can wait
    /// for the next change.
    pub fn consortium_view(&self) -> ConsortiumView {
        ConsortiumView::new(self.consortium.subscribe())
    }

    /// Reloads the effective consortium from the stored state.
    fn refresh_consortium(&self) -> Result<(), StoreError> {
        let current = load_consortium(&self.tree, &self.genesis)?;
        self.consortium.send_if_modified(|c| {
            if **c == *current {
                false
            } else {
                *c = current;
                true
            }
        });
        Ok(())
    }

    /// The last committed block's height, hash and time.
    pub fn tip(&self) -> Tip {
        // The tip is `Copy` and replaced whole after a successful batch, so a
        // lock poisoned by a panicking writer still holds a valid tip.
        *self.tip.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The committed world state, for the contracts to read.
    pub fn state(&self) -> StateView<'_> {
        StateView {
            tree: &self.tree,
            failure: OnceLock::new(),
        }
    }

    /// The contracts' digest of the whole world state. A storage read
    /// failure is logged and leaves the digest wrong; use
    /// [`ChainStore::try_state_digest`] where that matters.
    pub fn state_digest(&self) -> Hash {
        let view = self.state();
        let digest = state::state_digest(&view);
        if let Err(e) = view.check() {
            tracing::error!(error = %e, "state digest computed over an incomplete read");
        }
        digest
    }

    /// The contracts' digest of the whole world state, or the read error.
    pub fn try_state_digest(&self) -> Result<Hash, StoreError> {
        let view = self.state();
        let digest = state::state_digest(&view);
        view.check()?;
        Ok(digest)
    }

    /// The block at `height`.
    pub fn block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        self.tree
            .get(keys::block(height))?
            .map(|v| decode_block(|| format!("block {height}"), &v))
            .transpose()
    }

    /// The block whose header hash is `hash`.
    pub fn block_by_hash(&self, hash: &Hash) -> Result<Option<Block>, StoreError> {
        let Some(v) = self.tree.get(keys::hash(hash))? else {
            return Ok(None);
        };
        let height =
            u64::from_be_bytes(v.as_ref().try_into().map_err(|_| {
                StoreError::corrupt(format!("hash index of {hash}"), "not 8 bytes")
            })?);
        self.block(height)
    }

    /// The quorum certificate stored for the block at `height`, if this
    /// node has collected (or received in a snapshot) one.
    pub fn cert(&self, height: u64) -> Result<Option<QuorumCert>, StoreError> {
        self.tree
            .get(keys::cert(height))?
            .map(|v| from_json(|| format!("certificate of block {height}"), &v))
            .transpose()
    }

    /// Stores a quorum certificate beside its block. The caller has checked
    /// it against the block; certificates live in the `chain` tree so that
    /// snapshots carry them.
    pub fn put_cert(&self, cert: &QuorumCert) -> Result<(), StoreError> {
        self.tree
            .insert(keys::cert(cert.height), to_json("certificate", cert)?)?;
        Ok(())
    }

    /// Blocks from `from` upwards, ascending.
    pub fn blocks(&self, from: u64) -> impl Iterator<Item = Result<Block, StoreError>> + '_ {
        self.tree
            .range(keys::block(from)..=keys::block(u64::MAX))
            .map(|r| {
                let (k, v) = r?;
                decode_block(|| format!("block at key {}", hex::encode(&k)), &v)
            })
    }

    /// Where a transaction was first included: `(height, index)`. A later
    /// copy refused as a duplicate does not move it.
    pub fn tx_location(&self, id: &TxId) -> Result<Option<(u64, u32)>, StoreError> {
        self.tree
            .get(keys::tx(id))?
            .map(|v| {
                keys::parse_loc(&v)
                    .ok_or_else(|| StoreError::corrupt(format!("tx index of {id}"), "not 12 bytes"))
            })
            .transpose()
    }

    /// A committed transaction, as this node stores it (its key wraps may
    /// be erased after retention).
    pub fn committed_tx(&self, id: &TxId) -> Result<Option<SignedTx>, StoreError> {
        let Some((height, index)) = self.tx_location(id)? else {
            return Ok(None);
        };
        let block = self
            .block(height)?
            .ok_or_else(|| StoreError::corrupt(format!("block {height}"), "indexed but missing"))?;
        let tx = block.txs.into_iter().nth(index as usize).ok_or_else(|| {
            StoreError::corrupt(format!("tx index of {id}"), "points past its block")
        })?;
        Ok(Some(tx))
    }

    /// A prescription's committed record.
    pub fn prescription(
        &self,
        id: &PrescriptionId,
    ) -> Result<Option<PrescriptionRecord>, StoreError> {
        self.get_state(&state::rx_key(id))
    }

    /// A staff member's committed record.
    pub fn staff(&self, key: &PublicKey) -> Result<Option<StaffRecord>, StoreError> {
        self.get_state(&state::staff_key(key))
    }

    /// Every registered staff member, revoked ones included, by key.
    pub fn all_staff(&self) -> Result<Vec<StaffRecord>, StoreError> {
        self.tree
            .scan_prefix(keys::state(b"staff/"))
            .map(|r| {
                let (k, v) = r?;
                encoding::from_bytes(&v)
                    .map_err(|e| StoreError::corrupt(format!("state {}", hex::encode(&k)), e))
            })
            .collect()
    }

    /// The state record under a contracts key, decoded.
    pub fn state_record<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        self.get_state(key)
    }

    /// Every state record under `prefix` (a contracts key prefix such as
    /// `state::grant_prefix`), in key order, with its key.
    pub fn state_records<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, T)>, StoreError> {
        let full = keys::state(prefix);
        let skip = full.len() - prefix.len();
        self.tree
            .scan_prefix(full)
            .map(|r| {
                let (k, v) = r?;
                let value = encoding::from_bytes(&v)
                    .map_err(|e| StoreError::corrupt(format!("state {}", hex::encode(&k)), e))?;
                Ok((k[skip..].to_vec(), value))
            })
            .collect()
    }

    /// Every governance proposal, open or decided, in the order proposed.
    pub fn proposals(&self) -> Result<Vec<governance::Proposal>, StoreError> {
        let ids: Vec<TxId> = self
            .get_state(&governance::proposal_index_key())?
            .unwrap_or_default();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.get_state(&governance::proposal_key(&id))? {
                Some(p) => out.push(p),
                None => {
                    return Err(StoreError::corrupt(
                        "governance proposal index",
                        format!("proposal {id} is listed but not stored"),
                    ))
                }
            }
        }
        Ok(out)
    }

    /// Every transaction about a prescription, applied or refused, in chain order.
    pub fn history(&self, id: &PrescriptionId) -> Result<Vec<(u64, u32)>, StoreError> {
        self.scan_locs(keys::history_prefix(id))
    }

    /// Prescriptions issued by a prescriber's key, by id.
    pub fn by_prescriber(&self, key: &PublicKey) -> Result<Vec<PrescriptionId>, StoreError> {
        self.scan_ids(keys::prescriber_prefix(key))
    }

    /// Prescriptions ever assigned to, claimed by or dispensed at a pharmacy,
    /// or handed to a logistics member to carry, by id.
    pub fn by_pharmacy(&self, org: &OrgId) -> Result<Vec<PrescriptionId>, StoreError> {
        self.scan_ids(keys::pharmacy_prefix(org))
    }

    /// Prescriptions whose stored status is `status` now, by id. Expiry is
    /// not a stored status: filter with `public_status` for it.
    pub fn by_status(&self, status: RxStatus) -> Result<Vec<PrescriptionId>, StoreError> {
        self.scan_ids(keys::status_prefix(status))
    }

    /// Transactions in blocks whose UTC day lies in the range, in chain order.
    pub fn txs_in_days(
        &self,
        from_day: u64,
        to_day_inclusive: u64,
    ) -> Result<Vec<(u64, u32)>, StoreError> {
        if from_day > to_day_inclusive {
            return Ok(Vec::new());
        }
        let per_block = keys::DAY.len() + 16;
        let mut out = Vec::new();
        for r in self
            .tree
            .range(keys::day(from_day, 0)..=keys::day_of_tx(to_day_inclusive, u64::MAX, u32::MAX))
        {
            let (k, v) = r?;
            let bad = || StoreError::corrupt("day index record", hex::encode(&k));
            if k.len() == per_block {
                let height = u64::from_be_bytes(k[per_block - 8..].try_into().map_err(|_| bad())?);
                let count = u32::from_be_bytes(v.as_ref().try_into().map_err(|_| bad())?);
                out.extend((0..count).map(|i| (height, i)));
            } else if k.len() == per_block + 4 {
                out.push(keys::parse_loc(&k).ok_or_else(bad)?);
            } else {
                return Err(bad());
            }
        }
        Ok(out)
    }

    /// The most recent refused transactions, newest first.
    pub fn refused(&self, limit: usize) -> Result<Vec<(u64, u32)>, StoreError> {
        self.tree
            .scan_prefix(keys::REFUSED)
            .rev()
            .take(limit)
            .map(|r| {
                let (k, _) = r?;
                keys::parse_loc(&k)
                    .ok_or_else(|| StoreError::corrupt("refused index key", hex::encode(&k)))
            })
            .collect()
    }

    /// Writes one executed block: the block, its hash and transaction
    /// indexes, the state writes, every query index it touches, the new
    /// tip and (under Raft) the log id that carried it, all in one sled
    /// batch, so a crash leaves either all of it or none.
    ///
    /// The caller has checked and executed the block
    /// (`check_and_execute` or `propose`); this only refuses a block that
    /// does not extend the tip or an execution of another size.
    pub fn apply_block(
        &self,
        block: &Block,
        exec: &Execution,
        applied: Option<LogId<u64>>,
    ) -> Result<(), StoreError> {
        let _gate = self.gate();
        let tip = self.tip();
        let h = block.header.height;
        if h != tip.height + 1 || block.header.prev_hash != tip.hash {
            return Err(StoreError::NotNext {
                height: h,
                tip: tip.height,
            });
        }
        if exec.outcomes.len() != block.txs.len() {
            return Err(StoreError::ExecutionMismatch {
                outcomes: exec.outcomes.len(),
                txs: block.txs.len(),
            });
        }
        let chain_id = self.genesis.chain_id.as_str();
        let hash = block.hash(chain_id);
        let mut batch = Batch::default();
        batch.insert(keys::block(h), encoding::to_bytes(block));
        self.index_block(&mut batch, block, &exec.outcomes, &mut HashSet::new())?;

        for (key, value) in &exec.writes {
            let skey = keys::state(key);
            if let Some(id) = rx_id_of(key) {
                self.index_prescription(&mut batch, &id, &skey, value.as_deref())?;
            }
            match value {
                Some(v) => batch.insert(skey, v.as_slice()),
                None => batch.remove(skey),
            }
        }

        let new_tip = Tip {
            height: h,
            hash,
            timestamp: block.header.timestamp,
            state: exec.state,
        };
        batch.insert(keys::TIP, to_json("tip", &stored_tip(&new_tip))?);
        batch.insert(keys::LTHASH, exec.state.to_bytes().as_slice());
        if let Some(applied) = applied {
            batch.insert(keys::APPLIED, to_json("applied log id", &Some(applied))?);
        }
        let observer = self.observer.get();
        let extra =
            observer.and_then(|o| o.plan(block, &exec.outcomes, &|id| self.record_after(exec, id)));
        match (observer, extra) {
            (Some(o), Some(extra)) => {
                use sled::Transactional;
                // One transaction over both trees: the outbox entries are
                // written exactly when the block is.
                (&self.tree, o.tree())
                    .transaction(|(chain, own)| {
                        chain.apply_batch(&batch)?;
                        own.apply_batch(&extra)?;
                        Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
                    })
                    .map_err(|e| match e {
                        sled::transaction::TransactionError::Storage(e) => StoreError::from(e),
                        sled::transaction::TransactionError::Abort(()) => {
                            StoreError::corrupt("block transaction", "aborted")
                        }
                    })?;
            }
            _ => self.tree.apply_batch(batch)?,
        }
        *self.tip.write().unwrap_or_else(PoisonError::into_inner) = new_tip;
        if let Some(o) = observer {
            o.applied();
        }
        tracing::debug!(height = h, txs = block.txs.len(), "block written");
        if exec.writes.contains_key(&governance::consortium_key()) {
            self.refresh_consortium()?;
            tracing::info!(
                height = h,
                "the consortium changed by a governance decision"
            );
        }
        let hooks = self
            .revocation_hooks
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if !hooks.is_empty() {
            // Only applied revocations: a refused one (say, signed by
            // another organisation) is in the block too and must end nothing.
            let revoked =
                block
                    .txs
                    .iter()
                    .zip(&exec.outcomes)
                    .filter_map(|(stx, o)| match &stx.tx.body {
                        TxBody::RevokeStaff(r) if o.is_applied() => Some(r.key),
                        _ => None,
                    });
            for key in revoked {
                for hook in hooks.iter() {
                    hook(&key);
                }
            }
        }
        Ok(())
    }

    /// A prescription's record as `exec` leaves it: its write in the block
    /// if there is one, else the stored one. A failed read is logged and
    /// answers `None` (only the observer asks, and it must not fail a block).
    fn record_after(&self, exec: &Execution, id: &PrescriptionId) -> Option<PrescriptionRecord> {
        let key = state::rx_key(id);
        let read = match exec.writes.get(&key) {
            Some(Some(v)) => encoding::from_bytes(v)
                .map(Some)
                .map_err(|e| StoreError::corrupt(format!("state {}", hex::encode(&key)), e)),
            Some(None) => Ok(None),
            None => self.prescription(id),
        };
        read.unwrap_or_else(|e| {
            tracing::warn!(%id, error = %e, "a prescription record could not be read for the outbox");
            None
        })
    }

    /// Adds the index entries one block brings to `batch`: its hash, the
    /// first location of each transaction, prescription histories, days
    /// and refusals. `seen` holds the transaction ids given a location in
    /// batches not applied yet (the tree knows the others).
    fn index_block(
        &self,
        batch: &mut Batch,
        block: &Block,
        outcomes: &[rxchain_contracts::Outcome],
        seen: &mut HashSet<TxId>,
    ) -> Result<(), StoreError> {
        let chain_id = self.genesis.chain_id.as_str();
        let h = block.header.height;
        batch.insert(
            keys::hash(&block.hash(chain_id)),
            h.to_be_bytes().as_slice(),
        );
        let day = block.header.timestamp.day();
        if !block.txs.is_empty() {
            let count = u32::try_from(block.txs.len()).unwrap_or(u32::MAX);
            batch.insert(keys::day(day, h), count.to_be_bytes().as_slice());
        }
        for ((index, stx), outcome) in (0u32..).zip(&block.txs).zip(outcomes) {
            let id = stx.tx.id(chain_id);
            let loc = keys::loc(h, index);
            // The first inclusion is the one receipts point at; a replay
            // later in this block or in a later block is refused as a
            // duplicate and must not move it.
            if seen.insert(id) && !self.tree.contains_key(keys::tx(&id))? {
                batch.insert(keys::tx(&id), loc.as_slice());
            }
            if let Some(rx) = stx.tx.body.prescription() {
                batch.insert(keys::history(&rx, h, index), &[][..]);
            }
            if !outcome.is_applied() {
                batch.insert(keys::refused(h, index), &[][..]);
            }
        }
        Ok(())
    }

    /// Adds the index changes of one prescription record write to `batch`:
    /// the prescriber and pharmacy sets grow, the status set moves.
    fn index_prescription(
        &self,
        batch: &mut Batch,
        id: &PrescriptionId,
        skey: &[u8],
        new: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let decode = |b: &[u8]| -> Result<PrescriptionRecord, StoreError> {
            encoding::from_bytes(b)
                .map_err(|e| StoreError::corrupt(format!("prescription {id}"), e))
        };
        let old = self.tree.get(skey)?.map(|b| decode(&b)).transpose()?;
        let new = new.map(decode).transpose()?;
        let old_status = old.as_ref().map(|r| r.status);
        let new_status = new.as_ref().map(|r| r.status);
        if old_status != new_status {
            if let Some(s) = old_status {
                batch.remove(keys::status(s, id));
            }
        }
        if let Some(rec) = &new {
            batch.insert(keys::status(rec.status, id), &[][..]);
            batch.insert(keys::prescriber(&rec.prescriber, id), &[][..]);
            let pharmacies = rec
                .fulfilment
                .iter()
                .map(|f| f.pharmacy())
                .chain(rec.claim.iter().map(|c| &c.pharmacy))
                .chain(rec.fills.iter().map(|f| &f.pharmacy))
                // The logistics member carrying a delivery finds it here too
                // (the courier's list, `http/courier.rs`).
                .chain(rec.carrier.iter());
            for org in pharmacies {
                batch.insert(keys::pharmacy(org, id), &[][..]);
            }
        }
        Ok(())
    }

    /// The last applied log id and membership, as Raft left them.
    pub fn last_applied(&self) -> Result<(Option<LogId<u64>>, Membership), StoreError> {
        let applied = match self.tree.get(keys::APPLIED)? {
            Some(v) => from_json(|| "last applied log id".into(), &v)?,
            None => None,
        };
        let membership = match self.tree.get(keys::MEMBERSHIP)? {
            Some(v) => from_json(|| "last membership".into(), &v)?,
            None => Membership::default(),
        };
        Ok((applied, membership))
    }

    /// Records a log entry that changes no block: a blank entry, a
    /// membership change or a refused block. Atomic like a block.
    pub(crate) fn record_applied(
        &self,
        applied: LogId<u64>,
        membership: Option<&Membership>,
    ) -> Result<(), StoreError> {
        let _gate = self.gate();
        let mut batch = Batch::default();
        batch.insert(keys::APPLIED, to_json("applied log id", &Some(applied))?);
        if let Some(m) = membership {
            batch.insert(keys::MEMBERSHIP, to_json("membership", m)?);
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Waits, up to [`TIP_CERT_WAIT`], for the quorum certificate of the tip:
    /// a receiver refuses a snapshot whose tip is not certified. Called with
    /// the gate held, so the tip cannot move meanwhile; certificates are
    /// stored without the gate. Votes come as soon as a majority has applied
    /// the block, normally well within a heartbeat.
    fn wait_for_tip_cert(&self) -> Result<(), StoreError> {
        let height = self.tip().height;
        if height == 0 {
            return Ok(());
        }
        let deadline = std::time::Instant::now() + TIP_CERT_WAIT;
        while self.cert(height)?.is_none() {
            if std::time::Instant::now() >= deadline {
                tracing::warn!(
                    height,
                    "the tip has no quorum certificate yet; receivers will refuse this snapshot until a later one"
                );
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(())
    }

    /// Writes the whole tree, at a block boundary, as a snapshot stream
    /// (see [`crate::types::snapshot`]) to `out`, one pair at a time.
    /// Writers wait meanwhile: sled has no snapshot reads.
    pub(crate) fn write_snapshot(&self, out: impl Write) -> Result<Written, StoreError> {
        let _gate = self.gate();
        self.wait_for_tip_cert()?;
        let mut w = StreamWriter::new(out)?;
        for r in self.tree.iter() {
            let (k, v) = r?;
            if k.as_ref() == keys::INSTALLING {
                continue;
            }
            w.entry(&k, &v)?;
        }
        let (_, entries) = w.finish()?;
        let (applied, membership) = self.last_applied()?;
        Ok(Written {
            applied,
            membership,
            entries,
            tip: self.tip(),
        })
    }

    /// Replaces the whole tree with a checked snapshot stream, in batches
    /// of bounded size, then sets the Raft position from the snapshot's
    /// metadata and reloads the tip.
    ///
    /// A crash part-way leaves [`keys::INSTALLING`] set; the state machine
    /// then redoes the install from the snapshot file at the next open.
    pub(crate) fn install_snapshot(
        &self,
        input: impl Read,
        applied: Option<LogId<u64>>,
        membership: &Membership,
    ) -> Result<(), StoreError> {
        let mut reader = StreamReader::new(input)?;
        let _gate = self.gate();
        // The observer will be told of the blocks this install brings beyond
        // the current tip (a fresh node's brings nothing it should act on).
        let before = self.tip().height;
        if let Some(o) = self.observer.get() {
            if before > 0 && !o.tree().contains_key(CATCH_UP)? {
                o.tree()
                    .insert(CATCH_UP, (before + 1).to_be_bytes().as_slice())?;
                o.tree().flush()?;
            }
        }
        self.tree.insert(keys::INSTALLING, &[][..])?;
        self.tree.flush()?;
        let mut batch = Batch::default();
        let mut n = 0;
        for k in self.tree.iter().keys() {
            let k = k?;
            if k.as_ref() == keys::INSTALLING {
                continue;
            }
            batch.remove(k);
            n += 1;
            if n == INSTALL_BATCH {
                self.tree.apply_batch(std::mem::take(&mut batch))?;
                n = 0;
            }
        }
        self.tree.apply_batch(std::mem::take(&mut batch))?;
        n = 0;
        // The indexes are not taken from the snapshot (the state root does
        // not cover them): they are rebuilt from its checked blocks and
        // state, as applying those blocks would have written them.
        let mut seen = HashSet::new();
        while let Some((k, v)) = reader.next_entry()? {
            if k.as_slice() == keys::INSTALLING
                || snap::keys::INDEXES.iter().any(|p| k.starts_with(p))
            {
                continue;
            }
            if k.starts_with(keys::BLOCK) {
                let b = decode_block(|| format!("snapshot block at key {}", hex::encode(&k)), &v)?;
                self.index_block(&mut batch, &b, &b.outcomes, &mut seen)?;
                n += b.txs.len();
            } else if let Some(id) = k.strip_prefix(keys::STATE).and_then(rx_id_of) {
                // The tree was emptied above: every record is new to it.
                self.index_prescription(&mut batch, &id, &k, Some(&v))?;
            }
            batch.insert(k, v);
            n += 1;
            if n >= INSTALL_BATCH {
                self.tree.apply_batch(std::mem::take(&mut batch))?;
                seen.clear();
                n = 0;
            }
        }
        batch.insert(keys::APPLIED, to_json("applied log id", &applied)?);
        batch.insert(keys::MEMBERSHIP, to_json("membership", membership)?);
        batch.remove(keys::INSTALLING);
        self.tree.apply_batch(batch)?;
        self.tree.flush()?;
        let tip = load_tip(&self.tree, &self.genesis)?;
        *self.tip.write().unwrap_or_else(PoisonError::into_inner) = tip;
        self.refresh_consortium()?;
        tracing::info!(height = tip.height, "chain replaced from a snapshot");
        self.observer_catch_up()
    }

    /// Hands the observer the blocks from its [`CATCH_UP`] mark on, and
    /// writes what it plans together with the mark's removal.
    fn observer_catch_up(&self) -> Result<(), StoreError> {
        let Some(o) = self.observer.get() else {
            return Ok(());
        };
        let Some(mark) = o.tree().get(CATCH_UP)? else {
            return Ok(());
        };
        let from = <[u8; 8]>::try_from(mark.as_ref())
            .map(u64::from_be_bytes)
            .map_err(|_| StoreError::corrupt("the observer's catch-up mark", "not 8 bytes"))?;
        let mut failed = None;
        let mut blocks = self.blocks(from).map_while(|b| match b {
            Ok(b) => Some(b),
            Err(e) => {
                failed = Some(e);
                None
            }
        });
        let planned = o.catch_up(&mut blocks, &|id| {
            self.prescription(id).unwrap_or_else(|e| {
                tracing::warn!(%id, error = %e, "a prescription record could not be read for the outbox");
                None
            })
        });
        drop(blocks);
        if let Some(e) = failed {
            return Err(e);
        }
        let mut batch = planned.unwrap_or_default();
        batch.remove(CATCH_UP);
        o.tree().apply_batch(batch)?;
        o.applied();
        tracing::info!(
            from,
            "the apply observer caught up with a snapshot's blocks"
        );
        Ok(())
    }

    /// Writes the Raft position a restored backup carries, as the backup
    /// stored it (`m/applied`, `m/membership`), byte for byte.
    pub(crate) fn restore_raft_position(
        &self,
        applied: Option<&[u8]>,
        membership: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let mut batch = Batch::default();
        if let Some(a) = applied {
            batch.insert(keys::APPLIED, a);
        }
        if let Some(m) = membership {
            batch.insert(keys::MEMBERSHIP, m);
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Whether a snapshot install was interrupted (see
    /// [`ChainStore::install_snapshot`]).
    pub(crate) fn install_interrupted(&self) -> Result<bool, StoreError> {
        Ok(self.tree.contains_key(keys::INSTALLING)?)
    }

    /// The state accumulator recomputed from scratch over the stored
    /// state, for `rxchain verify` and for databases written before the
    /// accumulator was stored.
    pub fn recompute_state_accumulator(&self) -> Result<LtHash, StoreError> {
        let view = self.state();
        let acc = LtHash::of_state(&view);
        view.check()?;
        Ok(acc)
    }

    /// Forces everything written so far to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.tree.flush()?;
        Ok(())
    }

    /// The raw `chain` tree, for the erasure sweep (`store::erase`), which
    /// rewrites blocks in place.
    pub(crate) fn raw_tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// The write gate, for writers outside this file.
    pub(crate) fn write_gate(&self) -> MutexGuard<'_, ()> {
        self.gate()
    }

    fn gate(&self) -> MutexGuard<'_, ()> {
        // The gate guards no data of its own (sled batches are atomic), so
        // a poisoned gate is as good as a healthy one.
        self.write_gate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn get_state<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        self.tree
            .get(keys::state(key))?
            .map(|v| {
                encoding::from_bytes(&v)
                    .map_err(|e| StoreError::corrupt(format!("state {}", hex::encode(key)), e))
            })
            .transpose()
    }

    fn scan_locs(&self, prefix: Vec<u8>) -> Result<Vec<(u64, u32)>, StoreError> {
        self.tree
            .scan_prefix(prefix)
            .map(|r| {
                let (k, _) = r?;
                keys::parse_loc(&k).ok_or_else(|| StoreError::corrupt("index key", hex::encode(&k)))
            })
            .collect()
    }

    fn scan_ids(&self, prefix: Vec<u8>) -> Result<Vec<PrescriptionId>, StoreError> {
        self.tree
            .scan_prefix(prefix)
            .map(|r| {
                let (k, _) = r?;
                keys::parse_rx_suffix(&k)
                    .ok_or_else(|| StoreError::corrupt("index key", hex::encode(&k)))
            })
            .collect()
    }
}

fn decode_block(what: impl FnOnce() -> String, bytes: &[u8]) -> Result<Block, StoreError> {
    encoding::from_bytes(bytes).map_err(|e| StoreError::corrupt(what(), e))
}

/// The effective consortium stored in `tree`, or genesis before any
/// decision.
fn load_consortium(tree: &sled::Tree, genesis: &Genesis) -> Result<Arc<Genesis>, StoreError> {
    match tree.get(keys::state(&governance::consortium_key()))? {
        None => Ok(Arc::new(genesis.clone())),
        Some(bytes) => {
            let record: governance::ConsortiumRecord = encoding::from_bytes(&bytes)
                .map_err(|e| StoreError::corrupt("effective consortium", e))?;
            Ok(Arc::new(Genesis {
                chain_id: genesis.chain_id.clone(),
                created_at: genesis.created_at,
                orgs: record.orgs,
                params: record.params,
            }))
        }
    }
}

/// The JSON form of the tip under `m/tip` (the accumulator goes apart).
fn stored_tip(t: &Tip) -> StoredTip {
    StoredTip {
        height: t.height,
        hash: t.hash,
        timestamp: t.timestamp,
    }
}

/// The tip from `m/tip` and `m/lthash`. A database written before the
/// accumulator was stored has none: it is recomputed once from the state.
fn load_tip(tree: &sled::Tree, genesis: &Genesis) -> Result<Tip, StoreError> {
    let Some(v) = tree.get(keys::TIP)? else {
        return Ok(Tip::genesis(genesis));
    };
    let t: StoredTip = from_json(|| "tip".into(), &v)?;
    let state = match tree.get(keys::LTHASH)? {
        Some(b) => LtHash::from_bytes(&b)
            .ok_or_else(|| StoreError::corrupt("state accumulator", "not 2048 bytes"))?,
        None => {
            // The format migration to version 2 stores it, so only a tree
            // opened without `store::open` gets here.
            tracing::info!("no stored state accumulator: recomputing it over the state");
            let acc = accumulator_of(tree)?;
            tree.insert(keys::LTHASH, acc.to_bytes().as_slice())?;
            acc
        }
    };
    Ok(Tip {
        height: t.height,
        hash: t.hash,
        timestamp: t.timestamp,
        state,
    })
}

/// The state accumulator computed from scratch over the `s/` pairs of `tree`.
pub(crate) fn accumulator_of(tree: &sled::Tree) -> Result<LtHash, StoreError> {
    let view = StateView {
        tree,
        failure: OnceLock::new(),
    };
    let acc = LtHash::of_state(&view);
    view.check()?;
    Ok(acc)
}

/// The prescription id of a contracts state key, if it is a prescription's.
fn rx_id_of(key: &[u8]) -> Option<PrescriptionId> {
    let id = keys::parse_rx_suffix(key)?;
    (state::rx_key(&id) == key).then_some(id)
}

/// The committed world state as the contracts see it.
///
/// [`StateRead`] cannot return an error, so a failed sled read answers
/// "absent" and is remembered: callers that act on what they read (block
/// execution, digests) must call [`StateView::check`] afterwards and discard
/// their result if it fails.
pub struct StateView<'a> {
    tree: &'a sled::Tree,
    /// The first read error, if any.
    failure: OnceLock<sled::Error>,
}

impl StateView<'_> {
    /// Fails with the first storage error any read through this view hit.
    pub fn check(&self) -> Result<(), StoreError> {
        match self.failure.get() {
            Some(e) => Err(StoreError::Sled(e.clone())),
            None => Ok(()),
        }
    }

    fn fail(&self, e: sled::Error) {
        tracing::error!(error = %e, "state read failed");
        // Only the first failure is kept; later ones are logged above.
        if self.failure.set(e).is_err() {
            tracing::debug!("an earlier state read failure is already recorded");
        }
    }
}

impl StateRead for StateView<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.tree.get(keys::state(key)) {
            Ok(v) => v.map(|v| v.to_vec()),
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }
}

impl StateScan for StateView<'_> {
    fn scan(&self) -> Box<dyn Iterator<Item = (Vec<u8>, Vec<u8>)> + '_> {
        let strip = keys::STATE.len();
        Box::new(
            self.tree
                .scan_prefix(keys::STATE)
                .map_while(move |r| match r {
                    Ok((k, v)) => Some((k[strip..].to_vec(), v.to_vec())),
                    Err(e) => {
                        self.fail(e);
                        None
                    }
                }),
        )
    }
}
