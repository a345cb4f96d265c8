//! The snapshot format and its check, shared by the store (which writes and
//! installs snapshots) and the Raft RPC server (which checks a received
//! snapshot before handing it to openraft). It lives beside the type
//! configuration so that both layers can use it without knowing each other.
//!
//! ## Stream format (version 2)
//!
//! A snapshot is a file: the 16-byte magic `rxchain-snap-v2\n`, then
//! records, each a `u32` big-endian length followed by that many bytes of a
//! postcard-encoded [`Record`]. The records are every `(key, value)` pair of
//! the node's `chain` tree in ascending key order, then one `End` record
//! with the number of pairs, so a truncated file is told from a short one.
//! No record is larger than [`MAX_RECORD`]. Writing, reading and checking
//! hold one record at a time: memory stays bounded whatever the chain size.
//!
//! ## What a receiver checks ([`verify`])
//!
//! Keys sort as `b/` (blocks, by height) < `c/` (certificates) < `h/` <
//! `i/` < `m/` < `s/` (world state) < `t/`, so one pass sees the blocks
//! first, then their certificates, then the tip record, then the state:
//!
//! 1. keys strictly ascend (no pair given twice), and `m/genesis` is this
//!    node's genesis hash;
//! 2. the blocks are heights 1, 2, …, each `prev_hash` the hash of the one
//!    before (the genesis hash for the first), each body matching its
//!    header's `tx_root` and `outcomes_root`;
//! 3. the last block, the tip, is signed by its proposer under the node key
//!    the receiver's consortium declares, and carries a quorum certificate
//!    of a majority of that consortium's nodes ([`verify_snapshot_anchor`]);
//!    every other certificate (`c/`) verifies against its block's hash too;
//!    and `m/tip` names the tip;
//! 4. the LtHash recomputed over the `s/` pairs while streaming has the
//!    tip header's `state_root` as its root, and equals the stored
//!    accumulator `m/lthash`.
//!
//! The query indexes (`h/`, `i/`, `t/`) are derived from the blocks and
//! the state, so they are not covered by the state root and are never
//! taken from a snapshot: the installer skips them and rebuilds them from
//! the checked blocks and state (`ChainStore::install_snapshot`).

use std::io::{Read, Write};

use rxchain_contracts::block::{self, Block, BlockHeader};
use rxchain_contracts::cert::QuorumCert;
use rxchain_contracts::crypto::{signing_digest, Hash};
use rxchain_contracts::encoding;
use rxchain_contracts::state_root::LtHash;
use rxchain_contracts::{Genesis, Timestamp, TxId};
use serde::{Deserialize, Serialize};

/// The magic that opens every snapshot file.
pub const MAGIC: &[u8; 16] = b"rxchain-snap-v2\n";
/// The largest record accepted, so a corrupt length allocates nothing huge.
pub const MAX_RECORD: u32 = 16 * 1024 * 1024;

/// Keys of the `chain` tree that a snapshot check needs to understand. The
/// store's key layout (`store::chain::keys`) uses these same constants.
pub mod keys {
    /// Blocks, by big-endian height.
    pub const BLOCK: &[u8] = b"b/";
    /// The world state, by contracts key.
    pub const STATE: &[u8] = b"s/";
    /// The tip record (JSON [`super::StoredTip`]).
    pub const TIP: &[u8] = b"m/tip";
    /// The genesis hash the chain grows from.
    pub const GENESIS: &[u8] = b"m/genesis";
    /// The state accumulator after the tip (2048 bytes).
    pub const LTHASH: &[u8] = b"m/lthash";
    /// Quorum certificates, by big-endian height (JSON).
    pub const CERT: &[u8] = b"c/";
    /// The query indexes: derived from the blocks and the state, never
    /// taken from a snapshot (the installer rebuilds them).
    pub const INDEXES: [&[u8]; 3] = [b"h/", b"i/", b"t/"];
}

/// TEST ONLY: how a node with the snapshot-tampering fault on forges the
/// snapshots it sends (see `Faults::set_tamper_snapshot`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Tamper {
    /// Honest snapshots.
    Off = 0,
    /// The last byte of the first non-empty state value flipped: the state
    /// root no longer holds.
    StateByte = 1,
    /// The tip's quorum certificate left out.
    DropTipCert = 2,
    /// One vote taken out of every certificate: each falls below quorum.
    DropVote = 3,
    /// Every transaction location (`t/`) pointed at block 1, index 0: an
    /// index the state root does not cover, which the receiver rebuilds.
    MoveTxIndex = 4,
}

impl Tamper {
    /// The mode stored as `byte` in the switch.
    pub fn from_u8(byte: u8) -> Tamper {
        match byte {
            1 => Tamper::StateByte,
            2 => Tamper::DropTipCert,
            3 => Tamper::DropVote,
            4 => Tamper::MoveTxIndex,
            _ => Tamper::Off,
        }
    }
}

/// The tip as stored under `m/tip` (JSON). The accumulator is stored apart,
/// under `m/lthash`, as raw bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTip {
    /// Height of the last block (0 before the first).
    pub height: u64,
    /// Hash of the last block header (the genesis hash before the first).
    pub hash: Hash,
    /// Timestamp of the last block.
    pub timestamp: Timestamp,
}

/// One record of the stream.
#[derive(Debug, Serialize, Deserialize)]
pub enum Record {
    /// One `(key, value)` pair of the chain tree.
    Entry(Vec<u8>, Vec<u8>),
    /// The end of the stream, with the number of pairs before it.
    End(u64),
}

/// Why a snapshot stream cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Reading or writing the file failed.
    #[error("snapshot file i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The file does not start with the magic.
    #[error("not an rxchain v2 snapshot (bad magic)")]
    BadMagic,
    /// A record is longer than [`MAX_RECORD`].
    #[error("a record of {0} bytes is over the limit")]
    RecordTooLarge(u32),
    /// A record does not decode.
    #[error("a record does not decode: {0}")]
    Decode(#[from] postcard::Error),
    /// The stream ends before its `End` record.
    #[error("the stream ends without its end record")]
    Truncated,
    /// The `End` record counts another number of pairs.
    #[error("the end record counts {declared} pairs, the stream has {seen}")]
    CountMismatch {
        /// The count in the end record.
        declared: u64,
        /// The pairs read.
        seen: u64,
    },
    /// Bytes follow the `End` record.
    #[error("bytes follow the end record")]
    TrailingBytes,
}

/// Writes a snapshot stream record by record.
pub struct StreamWriter<W: Write> {
    out: W,
    count: u64,
}

impl<W: Write> StreamWriter<W> {
    /// Starts a stream on `out`, writing the magic.
    pub fn new(mut out: W) -> Result<Self, StreamError> {
        out.write_all(MAGIC)?;
        Ok(StreamWriter { out, count: 0 })
    }

    fn record(&mut self, r: &Record) -> Result<(), StreamError> {
        let bytes = postcard::to_allocvec(r)?;
        let len = u32::try_from(bytes.len())
            .ok()
            .filter(|l| *l <= MAX_RECORD)
            .ok_or(StreamError::RecordTooLarge(u32::MAX))?;
        self.out.write_all(&len.to_be_bytes())?;
        self.out.write_all(&bytes)?;
        Ok(())
    }

    /// Writes one pair.
    pub fn entry(&mut self, key: &[u8], value: &[u8]) -> Result<(), StreamError> {
        self.record(&Record::Entry(key.to_vec(), value.to_vec()))?;
        self.count += 1;
        Ok(())
    }

    /// Writes the end record and flushes; returns the writer and the count.
    pub fn finish(mut self) -> Result<(W, u64), StreamError> {
        let count = self.count;
        self.record(&Record::End(count))?;
        self.out.flush()?;
        Ok((self.out, count))
    }
}

/// Reads the pairs of a snapshot stream, one at a time, and fails at the
/// end unless the stream ended with a matching `End` record.
pub struct StreamReader<R: Read> {
    input: R,
    seen: u64,
    done: bool,
}

impl<R: Read> StreamReader<R> {
    /// Opens a stream on `input`, checking the magic.
    pub fn new(mut input: R) -> Result<Self, StreamError> {
        let mut magic = [0u8; 16];
        input.read_exact(&mut magic).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => StreamError::BadMagic,
            _ => StreamError::Io(e),
        })?;
        if &magic != MAGIC {
            return Err(StreamError::BadMagic);
        }
        Ok(StreamReader {
            input,
            seen: 0,
            done: false,
        })
    }

    /// The next pair, `None` after a well-formed end.
    pub fn next_entry(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>, StreamError> {
        if self.done {
            return Ok(None);
        }
        let mut len = [0u8; 4];
        self.input.read_exact(&mut len).map_err(eof_is_truncation)?;
        let len = u32::from_be_bytes(len);
        if len > MAX_RECORD {
            return Err(StreamError::RecordTooLarge(len));
        }
        let mut buf = vec![0u8; len as usize];
        self.input.read_exact(&mut buf).map_err(eof_is_truncation)?;
        match postcard::from_bytes::<Record>(&buf)? {
            Record::Entry(k, v) => {
                self.seen += 1;
                Ok(Some((k, v)))
            }
            Record::End(declared) => {
                if declared != self.seen {
                    return Err(StreamError::CountMismatch {
                        declared,
                        seen: self.seen,
                    });
                }
                let mut extra = [0u8; 1];
                if self.input.read(&mut extra)? != 0 {
                    return Err(StreamError::TrailingBytes);
                }
                self.done = true;
                Ok(None)
            }
        }
    }
}

fn eof_is_truncation(e: std::io::Error) -> StreamError {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => StreamError::Truncated,
        _ => StreamError::Io(e),
    }
}

/// Why a received snapshot is refused.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotRefused {
    /// The stream itself is malformed.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// Keys do not strictly ascend.
    #[error("keys out of order or repeated at key {0}")]
    Unordered(String),
    /// `m/genesis` is missing or names another genesis.
    #[error("the snapshot belongs to another genesis or names none")]
    WrongGenesis,
    /// A block does not decode.
    #[error("block at key {key} does not decode: {detail}")]
    BadBlock {
        /// The key, hex.
        key: String,
        /// The decode failure.
        detail: String,
    },
    /// The blocks are not heights 1, 2, … under their own keys.
    #[error("expected block {expected}, found block {found}")]
    HeightGap {
        /// The height the chain needs next.
        expected: u64,
        /// The height found.
        found: u64,
    },
    /// A block does not link to the one before it.
    #[error("block {0} does not link to the previous block's hash")]
    BrokenLink(u64),
    /// A block's body does not match its header's merkle roots.
    #[error("block {0}'s transactions or outcomes do not match its header")]
    BodyMismatch(u64),
    /// A quorum certificate in the snapshot does not verify against its
    /// block, or the tip has none.
    #[error("the certificate of block {height} does not hold: {reason}")]
    Certificate {
        /// The certified height.
        height: u64,
        /// What failed.
        reason: String,
    },
    /// The tip header's anchor (proposer signature, certificate) fails.
    #[error("the tip block {height} is not anchored: {reason}")]
    Anchor {
        /// The tip's height.
        height: u64,
        /// What failed.
        reason: String,
    },
    /// `m/tip` is missing, does not decode or names another block.
    #[error("the tip record does not name the last block")]
    TipMismatch,
    /// The recomputed state root is not the tip header's.
    #[error("the state in the snapshot has root {computed}, the tip header commits to {header}")]
    StateRootMismatch {
        /// Root of the streamed state.
        computed: Hash,
        /// The tip header's `state_root` (the empty root at height 0).
        header: Hash,
    },
    /// The stored accumulator is not the recomputed one.
    #[error("the stored state accumulator is not the one of the streamed state")]
    AccumulatorMismatch,
}

/// What a successful check established.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The tip the snapshot brings.
    pub tip: StoredTip,
    /// The accumulator of its state.
    pub state: LtHash,
    /// The number of pairs.
    pub entries: u64,
}

/// Checks the tip block against what this node can verify on its own: the
/// proposer's signature under the node key `consortium` declares for it,
/// and the tip's quorum certificate, a majority of `consortium`'s declared
/// nodes signing the tip's header hash.
///
/// `consortium` is the receiver's effective consortium (genesis plus the
/// governance decisions it has applied): a lagging node checks a snapshot
/// against the node set it knows, so a snapshot that only a node set it has
/// not yet seen can certify is refused, never trusted on its own word.
pub fn verify_snapshot_anchor(
    consortium: &Genesis,
    tip: &Block,
    cert: Option<&QuorumCert>,
) -> Result<(), SnapshotRefused> {
    let chain_id = consortium.chain_id.as_str();
    let h = &tip.header;
    let anchor = |reason: String| SnapshotRefused::Anchor {
        height: h.height,
        reason,
    };
    let (_, node) = consortium.node(h.proposer).ok_or_else(|| {
        anchor(format!(
            "proposer {} is not declared in the consortium",
            h.proposer
        ))
    })?;
    let digest = signing_digest(
        &BlockHeader::signing_tag(chain_id),
        h.hash(chain_id).as_bytes(),
    );
    node.key
        .verify_digest(&digest, &tip.signature)
        .map_err(|_| anchor("the proposer signature does not verify".into()))?;
    let cert = cert
        .ok_or_else(|| anchor("the snapshot carries no quorum certificate for its tip".into()))?;
    cert.verify(consortium, h)
        .map(|_| ())
        .map_err(|e| anchor(format!("its quorum certificate fails: {e}")))
}

/// Checks a whole snapshot stream (see the module doc) in one pass:
/// against `genesis` for the chain it grows from, and against the
/// receiver's effective `consortium` for the keys that sign blocks and
/// certificates. With `consortium` `None` the signatures and certificates
/// are left to the caller, which must re-execute every block and check
/// each certificate against the consortium in force at its height (as
/// `store::backup::restore` does); everything else is checked.
pub fn verify(
    genesis: &Genesis,
    consortium: Option<&Genesis>,
    input: impl Read,
) -> Result<Verified, SnapshotRefused> {
    let chain_id = genesis.chain_id.as_str();
    let mut reader = StreamReader::new(input)?;
    let mut last_key: Option<Vec<u8>> = None;
    let mut prev_hash = genesis.hash();
    // Every block's header hash, by height - 1: 32 bytes a block, so the
    // certificates (which sort after the blocks) can be checked in the
    // same pass.
    let mut hashes: Vec<Hash> = Vec::new();
    let mut tip_cert: Option<QuorumCert> = None;
    let mut tip_block: Option<Block> = None;
    let mut stored_tip: Option<StoredTip> = None;
    let mut stored_acc: Option<Vec<u8>> = None;
    let mut genesis_ok = false;
    let mut acc = LtHash::EMPTY;
    while let Some((k, v)) = reader.next_entry()? {
        if last_key
            .as_ref()
            .is_some_and(|l| l.as_slice() >= k.as_slice())
        {
            return Err(SnapshotRefused::Unordered(hex::encode(&k)));
        }
        if let Some(state_key) = k.strip_prefix(keys::STATE) {
            acc.add(state_key, &v);
        } else if k.starts_with(keys::BLOCK) {
            let b: Block = encoding::from_bytes(&v).map_err(|e| SnapshotRefused::BadBlock {
                key: hex::encode(&k),
                detail: e.to_string(),
            })?;
            let expected = tip_block.as_ref().map_or(1, |t| t.header.height + 1);
            let under_key = k[keys::BLOCK.len()..] == b.header.height.to_be_bytes();
            if b.header.height != expected || !under_key {
                return Err(SnapshotRefused::HeightGap {
                    expected,
                    found: b.header.height,
                });
            }
            if b.header.prev_hash != prev_hash {
                return Err(SnapshotRefused::BrokenLink(b.header.height));
            }
            let ids: Vec<TxId> = b.txs.iter().map(|t| t.tx.id(chain_id)).collect();
            let (tx_root, outcomes_root) = block::roots(&ids, &b.outcomes);
            if b.txs.len() != b.header.tx_count as usize
                || b.outcomes.len() != b.txs.len()
                || tx_root != b.header.tx_root
                || outcomes_root != b.header.outcomes_root
            {
                return Err(SnapshotRefused::BodyMismatch(b.header.height));
            }
            prev_hash = b.hash(chain_id);
            hashes.push(prev_hash);
            tip_block = Some(b);
        } else if let Some(height) = k.strip_prefix(keys::CERT) {
            let height = <[u8; 8]>::try_from(height).map(u64::from_be_bytes);
            let bad = |height: u64, reason: String| SnapshotRefused::Certificate { height, reason };
            let Ok(height) = height else {
                return Err(bad(0, format!("malformed key {}", hex::encode(&k))));
            };
            let cert: QuorumCert = serde_json::from_slice(&v)
                .map_err(|e| bad(height, format!("does not decode: {e}")))?;
            let block_hash = height
                .checked_sub(1)
                .and_then(|i| hashes.get(i as usize))
                .ok_or_else(|| bad(height, "no such block in the snapshot".into()))?;
            if let Some(consortium) = consortium {
                cert.verify_hash(consortium, height, block_hash)
                    .map_err(|e| bad(height, e.to_string()))?;
            }
            if height == hashes.len() as u64 {
                tip_cert = Some(cert);
            }
        } else if k.as_slice() == keys::GENESIS {
            genesis_ok = v.as_slice() == genesis.hash().as_bytes();
        } else if k.as_slice() == keys::TIP {
            stored_tip =
                Some(serde_json::from_slice(&v).map_err(|_| SnapshotRefused::TipMismatch)?);
        } else if k.as_slice() == keys::LTHASH {
            stored_acc = Some(v.clone());
        }
        last_key = Some(k);
    }
    if !genesis_ok {
        return Err(SnapshotRefused::WrongGenesis);
    }
    let (tip, header_root) = match &tip_block {
        Some(b) => {
            if let Some(consortium) = consortium {
                verify_snapshot_anchor(consortium, b, tip_cert.as_ref())?;
            }
            (
                StoredTip {
                    height: b.header.height,
                    hash: prev_hash,
                    timestamp: b.header.timestamp,
                },
                b.header.state_root,
            )
        }
        None => (
            StoredTip {
                height: 0,
                hash: genesis.hash(),
                timestamp: genesis.created_at,
            },
            LtHash::EMPTY.root(),
        ),
    };
    match stored_tip {
        Some(t) if t == tip => {}
        None if tip.height == 0 => {}
        _ => return Err(SnapshotRefused::TipMismatch),
    }
    if acc.root() != header_root {
        return Err(SnapshotRefused::StateRootMismatch {
            computed: acc.root(),
            header: header_root,
        });
    }
    match stored_acc {
        Some(bytes) if LtHash::from_bytes(&bytes) == Some(acc) => {}
        None if tip.height == 0 => {}
        _ => return Err(SnapshotRefused::AccumulatorMismatch),
    }
    Ok(Verified {
        tip,
        state: acc,
        entries: reader.seen,
    })
}
