//! Type declarations shared by storage, Raft and the node: openraft's
//! type configuration and what a log entry carries.
//!
//! This module imports nothing of ours but the contracts, so `store`,
//! `raft` and the node depend on it and never on each other for these
//! types (the layering rule in `lib.rs`).

use serde::{Deserialize, Serialize};

pub mod snapshot;

openraft::declare_raft_types!(
    /// rxchain's openraft type configuration: entries carry blocks, nodes
    /// are addressed by `host:port`, snapshots are files (see [`snapshot`]),
    /// streamed in chunks and never held whole in memory.
    pub TypeConfig:
        D = RaftRequest,
        R = RaftResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
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
