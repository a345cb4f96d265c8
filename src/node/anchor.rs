//! Anchoring the access log: while this node's access log has records the
//! chain has not seen, it submits an `anchor_access_log` transaction with
//! its head, signed with the node key, at most once per
//! [`ANCHOR_EVERY`]. So at most that much of the log is ever unanchored
//! (see `access_log` for what an anchor guarantees).

use std::sync::Arc;
use std::time::Duration;

use rxchain_contracts::tx::AnchorAccessLog;
use rxchain_contracts::TxBody;
use tokio::sync::watch;

use crate::service::submit::{submit, Submitted};
use crate::service::Node;

/// How often the log's head is compared with the chain's anchor.
pub const ANCHOR_EVERY: Duration = Duration::from_secs(1);

/// Runs until `shutdown`.
pub async fn run(node: Arc<Node>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(ANCHOR_EVERY) => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
        let head = node.access_log.head();
        let done = crate::access_log::anchored(&node.chain, node.node_id).map_or(0, |a| a.seq);
        // Only a declared node's key may anchor; a joining node waits.
        if head.seq <= done || node.consortium().node(node.node_id).is_none() {
            continue;
        }
        let tx = crate::txbuild::sign(
            &node.consortium(),
            &node.node_key,
            TxBody::AnchorAccessLog(AnchorAccessLog {
                node: node.node_id,
                seq: head.seq,
                head: head.hash,
            }),
        );
        match submit(&node, tx).await {
            Ok(Submitted::Committed(r)) if r.outcome.is_applied() => {
                tracing::debug!(seq = head.seq, "access log anchored");
            }
            Ok(other) => tracing::info!(?other, "access-log anchor not applied yet"),
            Err(e) => tracing::info!(error = %e, "access-log anchor not submitted; retrying"),
        }
    }
}
