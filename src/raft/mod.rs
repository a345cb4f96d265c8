//! Raft wiring: type declarations, network and RPC authentication.
//!
//! Raft (openraft) orders blocks, nothing else: each log entry carries one
//! block proposed by the leader, and the state machine in
//! [`crate::store::sm`] checks and applies it. [`network`] sends Raft RPCs to
//! peers over HTTP and [`rpc`] serves them, both signing or verifying every
//! request with the node keys declared in genesis; [`nonces`] remembers the
//! nonces of accepted requests so none is accepted twice.

pub mod network;
pub mod nonces;
pub mod peers;
pub mod rpc;
pub mod snapshot;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};

pub use crate::types::snapshot::Tamper;

pub use crate::types::{Raft, RaftRequest, RaftResponse, TypeConfig};

/// Test-only fault injection: a simulated network partition.
///
/// When the node runs with `testing_faults = true`, `POST /v1/test/partition`
/// sets the node ids this node cannot talk to. Raft RPCs to them fail as
/// unreachable before any socket is opened, Raft RPCs from them are refused,
/// and submissions or admin calls are not forwarded to them, so a cut-off
/// node behaves as if the wire were cut. With faults disabled the set is
/// always empty and the checks cost one uncontended read lock.
#[derive(Debug, Default)]
pub struct Faults {
    /// Whether the test endpoint may change the set at all.
    enabled: bool,
    /// Peers this node pretends it cannot reach. A `std` lock: held only
    /// for a set lookup or replacement, never across an `.await`.
    blocked: RwLock<BTreeSet<u64>>,
    /// How the snapshots this node sends are forged ([`Tamper`] as a byte;
    /// the state machine reads the same switch).
    tamper_snapshot: Arc<AtomicU8>,
}

impl Faults {
    /// Faults that the test endpoint may set when `enabled`.
    pub fn new(enabled: bool) -> Arc<Self> {
        Self::with_snapshot_switch(enabled, Arc::new(AtomicU8::new(Tamper::Off as u8)))
    }

    /// Faults whose snapshot-tampering fault flips `switch`, the switch the
    /// node's state machine reads when it hands out a snapshot to send.
    pub fn with_snapshot_switch(enabled: bool, switch: Arc<AtomicU8>) -> Arc<Self> {
        Arc::new(Faults {
            enabled,
            blocked: RwLock::new(BTreeSet::new()),
            tamper_snapshot: switch,
        })
    }

    /// Sets the snapshot-tampering fault ([`Tamper::Off`] to clear it);
    /// refused (false) unless enabled. While on, every snapshot this node
    /// sends is forged that way.
    pub fn set_tamper_snapshot(&self, mode: Tamper) -> bool {
        if !self.enabled {
            return false;
        }
        self.tamper_snapshot.store(mode as u8, Ordering::Relaxed);
        true
    }

    /// The snapshot-tampering fault in force.
    pub fn tamper_snapshot(&self) -> Tamper {
        Tamper::from_u8(self.tamper_snapshot.load(Ordering::Relaxed))
    }

    /// Whether fault injection is allowed on this node.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether traffic to or from `node` is cut.
    pub fn is_blocked(&self, node: u64) -> bool {
        self.blocked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&node)
    }

    /// Replaces the set of cut-off peers; refused (false) unless enabled.
    pub fn set_blocked(&self, nodes: BTreeSet<u64>) -> bool {
        if !self.enabled {
            return false;
        }
        *self.blocked.write().unwrap_or_else(|p| p.into_inner()) = nodes;
        true
    }

    /// The cut-off peers.
    pub fn blocked(&self) -> BTreeSet<u64> {
        self.blocked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Why Raft could not start.
#[derive(Debug, thiserror::Error)]
pub enum RaftStartError {
    /// The node id is not declared in genesis.
    #[error("node {0} is not declared in genesis")]
    UnknownNode(u64),
    /// The openraft configuration is invalid.
    #[error("invalid raft configuration: {0}")]
    Config(#[from] openraft::ConfigError),
    /// Snapshot chunks would not fit in the RPC body limit.
    #[error(
        "snapshot_max_chunk_size {chunk} is too large: a chunk travels as JSON and must stay below {max} bytes"
    )]
    ChunkTooLarge {
        /// The configured chunk size.
        chunk: u64,
        /// The largest allowed.
        max: u64,
    },
    /// openraft failed while starting.
    #[error("raft failed to start: {0}")]
    Fatal(#[from] openraft::error::Fatal<u64>),
}

/// The largest snapshot chunk allowed: JSON writes each byte as up to four
/// characters, and a chunk request must fit in [`rpc::MAX_RPC_BODY`].
pub const MAX_SNAPSHOT_CHUNK: u64 = (rpc::MAX_RPC_BODY as u64 - 64 * 1024) / 4;
