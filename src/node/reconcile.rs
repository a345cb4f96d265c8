//! Raft membership follows the consortium's committed decisions, never a
//! single key's request.
//!
//! The leader runs [`run`]: whenever the effective consortium changes (a
//! governance decision or a `leave_node` was applied), on becoming leader,
//! and once a second, it removes from Raft every member that the
//! consortium no longer declares, one change at a time. Declared nodes join
//! as before (the join loop in `join.rs` asks to be added as a learner and
//! promoted once caught up); the cluster admin API refuses to add an
//! undeclared node or to remove a declared one.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::ChangeMembers;
use rxchain_contracts::governance::declared_nodes;
use tokio::sync::watch;

use crate::types::{ConsortiumView, Raft};

/// How often the leader checks membership even without a change.
const TICK: Duration = Duration::from_secs(1);

/// Runs until `shutdown` flips; acts only while this node leads.
pub async fn run(
    raft: Raft,
    node_id: u64,
    mut consortium: ConsortiumView,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        reconcile_once(&raft, node_id, &consortium).await;
        tokio::select! {
            alive = consortium.changed() => if !alive { return },
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One pass: if this node leads, removes members no longer declared
/// (voters first), keeping at least one declared voter.
async fn reconcile_once(raft: &Raft, node_id: u64, consortium: &ConsortiumView) {
    let m = raft.metrics().borrow().clone();
    if m.current_leader != Some(node_id) {
        return;
    }
    let declared = declared_nodes(&consortium.get());
    let membership = m.membership_config.membership();
    let stale_voters: BTreeSet<u64> = membership
        .voter_ids()
        .filter(|v| !declared.contains(v))
        .collect();
    let stale_learners: BTreeSet<u64> = membership
        .learner_ids()
        .filter(|v| !declared.contains(v))
        .collect();
    let change = if !stale_voters.is_empty() {
        if membership.voter_ids().all(|v| stale_voters.contains(&v)) {
            tracing::error!(
                ?stale_voters,
                "no declared node is a voter; refusing to remove every voter"
            );
            return;
        }
        tracing::info!(
            ?stale_voters,
            "removing voters the consortium no longer declares"
        );
        ChangeMembers::RemoveVoters(stale_voters)
    } else if !stale_learners.is_empty() {
        tracing::info!(
            ?stale_learners,
            "removing learners the consortium no longer declares"
        );
        ChangeMembers::RemoveNodes(stale_learners)
    } else {
        return;
    };
    // `retain = false`: a removed voter leaves entirely. A change still in
    // progress makes this fail; the next pass retries.
    if let Err(e) = raft.change_membership(change, false).await {
        tracing::warn!(error = %e, "membership reconciliation failed; retrying");
    }
}
