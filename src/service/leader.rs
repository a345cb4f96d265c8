//! Finding the Raft leader. Calls to it go through the node's one peer
//! client, [`crate::raft::peers::Peers`].

pub use crate::raft::peers::{PeerError, PeerRequest, Peers, Relayed};
use crate::raft::Faults;
use crate::types::Raft;

/// The leader's id and address, when a leader is known, it is not this
/// node, and a test partition does not cut it off.
pub fn remote_leader(raft: &Raft, self_id: u64, faults: &Faults) -> Option<(u64, String)> {
    let m = raft.metrics().borrow().clone();
    let leader = m.current_leader?;
    if leader == self_id || faults.is_blocked(leader) {
        return None;
    }
    m.membership_config
        .membership()
        .get_node(&leader)
        .map(|n| (leader, n.addr.clone()))
}

/// Whether this node is the leader now.
pub fn is_leader(raft: &Raft, self_id: u64) -> bool {
    raft.metrics().borrow().current_leader == Some(self_id)
}
