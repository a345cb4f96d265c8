//! Raft wiring: type declarations, network and RPC authentication.
//!
//! Raft (openraft) orders blocks, nothing else: each log entry carries one
//! block proposed by the leader, and the state machine in
//! [`crate::store::sm`] checks and applies it. [`network`] sends Raft RPCs to
//! peers over HTTP and [`rpc`] serves them, both signing or verifying every
//! request with the node keys declared in genesis.

pub mod network;
pub mod rpc;

use std::collections::BTreeSet;
use std::io::Cursor;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// rxchain's openraft type configuration: entries carry blocks, nodes
    /// are addressed by `host:port`, snapshots travel as one byte buffer.
    pub TypeConfig:
        D = RaftRequest,
        R = RaftResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A running Raft node.
pub type Raft = openraft::Raft<TypeConfig>;

/// What a Raft log entry carries.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    /// The next block, proposed and signed by the leader.
    Block(rxchain_contracts::Block),
}

/// What applying an entry produced. Both fields are `None` for Raft's own
/// blank and membership entries.
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
pub struct RaftResponse {
    /// Height of the block applied.
    pub height: Option<u64>,
    /// Why the state machine skipped the block (say, it was built on a
    /// stale tip by a deposed leader).
    pub rejected: Option<String>,
}

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
}

impl Faults {
    /// Faults that the test endpoint may set when `enabled`.
    pub fn new(enabled: bool) -> Arc<Self> {
        Arc::new(Faults {
            enabled,
            blocked: RwLock::new(BTreeSet::new()),
        })
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

/// Starts this node's Raft over the opened storage.
#[tracing::instrument(skip(config, storage, network))]
pub async fn start(
    node_id: u64,
    config: openraft::Config,
    storage: &crate::store::Storage,
    network: network::Network,
) -> Result<Raft, RaftStartError> {
    if storage.chain.genesis().node(node_id).is_none() {
        return Err(RaftStartError::UnknownNode(node_id));
    }
    if config.snapshot_max_chunk_size > MAX_SNAPSHOT_CHUNK {
        return Err(RaftStartError::ChunkTooLarge {
            chunk: config.snapshot_max_chunk_size,
            max: MAX_SNAPSHOT_CHUNK,
        });
    }
    if config.install_snapshot_timeout < 2_000 {
        // The last chunk's timeout also covers installing the whole chain on
        // the follower; openraft's 200 ms default is too short for a chain
        // of any size, and a snapshot that always times out never lands.
        tracing::warn!(
            install_snapshot_timeout_ms = config.install_snapshot_timeout,
            "install_snapshot_timeout is short for sending a whole chain; consider several seconds"
        );
    }
    let config = Arc::new(config.validate()?);
    let raft = Raft::new(
        node_id,
        config,
        network,
        storage.log.clone(),
        storage.sm.clone(),
    )
    .await?;
    tracing::info!("raft started");
    Ok(raft)
}
