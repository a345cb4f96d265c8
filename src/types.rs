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

/// A shared view of the effective consortium that always reads the latest
/// one ([`ConsortiumView::get`]) and can wait for the next change. A view
/// made from a fixed genesis ([`ConsortiumView::fixed`]) never changes.
#[derive(Clone, Debug)]
pub struct ConsortiumView(tokio::sync::watch::Receiver<std::sync::Arc<rxchain_contracts::Genesis>>);

impl ConsortiumView {
    /// A view over `receiver`, which the chain store feeds.
    pub fn new(
        receiver: tokio::sync::watch::Receiver<std::sync::Arc<rxchain_contracts::Genesis>>,
    ) -> Self {
        ConsortiumView(receiver)
    }

    /// A view that is always `genesis`, for a node part used without a chain.
    pub fn fixed(genesis: std::sync::Arc<rxchain_contracts::Genesis>) -> Self {
        let (_sender, receiver) = tokio::sync::watch::channel(genesis);
        ConsortiumView(receiver)
    }

    /// The consortium in force now.
    pub fn get(&self) -> std::sync::Arc<rxchain_contracts::Genesis> {
        self.0.borrow().clone()
    }

    /// Waits for the next change; `false` when no change can come any more.
    pub async fn changed(&mut self) -> bool {
        self.0.changed().await.is_ok()
    }
}

impl From<std::sync::Arc<rxchain_contracts::Genesis>> for ConsortiumView {
    fn from(genesis: std::sync::Arc<rxchain_contracts::Genesis>) -> Self {
        ConsortiumView::fixed(genesis)
    }
}
