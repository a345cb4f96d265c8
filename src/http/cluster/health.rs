//! What each member reports, the leader's view of the whole cluster, and
//! the rule for when a membership change may go ahead: the previous change
//! is committed, and every voter (but the one being removed) answers and
//! replicates within [`MAX_LAG`] entries.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::{BasicNode, RaftMetrics, ServerState};
use serde::{Deserialize, Serialize};

use crate::http::AppState;

/// A voter or learner more than this many log entries behind the leader is
/// not "caught up": no membership change while a voter lags this much, no
/// promotion of a learner that does.
pub const MAX_LAG: u64 = 100;
/// How long the leader waits for a member's answer when checking health or
/// gathering status.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// What one node says about itself.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LocalView {
    /// The node's id.
    pub node_id: u64,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub state: String,
    /// Its Raft term.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<u64>,
    /// Index of its last log entry.
    pub last_log_index: Option<u64>,
    /// Index of the last entry its state machine applied.
    pub applied_index: Option<u64>,
    /// Index up to which its log is compacted into a snapshot.
    pub snapshot_index: Option<u64>,
    /// Index up to which its log was purged.
    pub purged_index: Option<u64>,
    /// Height of its last applied block.
    pub height: u64,
    /// Hash of its last applied block.
    pub head: String,
    /// Voters in its view of the membership.
    pub voters: BTreeSet<u64>,
    /// Learners in its view of the membership.
    pub learners: BTreeSet<u64>,
    /// Peers cut off by a test partition (always empty in production).
    pub blocked: BTreeSet<u64>,
}

fn state_name(s: ServerState) -> &'static str {
    match s {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

pub(super) fn local_view(s: &AppState) -> LocalView {
    let m = s.raft.metrics().borrow().clone();
    let tip = s.chain.tip();
    let membership = m.membership_config.membership();
    LocalView {
        node_id: s.node_id,
        state: state_name(m.state).into(),
        term: m.current_term,
        leader: m.current_leader,
        last_log_index: m.last_log_index,
        applied_index: m.last_applied.map(|l| l.index),
        snapshot_index: m.snapshot.map(|l| l.index),
        purged_index: m.purged.map(|l| l.index),
        height: tip.height,
        head: tip.hash.to_hex(),
        voters: membership.voter_ids().collect(),
        learners: membership.learner_ids().collect(),
        blocked: s.faults.blocked(),
    }
}

/// One member in the leader's status.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberStatus {
    /// Node id.
    pub id: u64,
    /// Its address in the membership.
    pub addr: String,
    /// `voter` or `learner`.
    pub role: String,
    /// The last log index the leader knows it holds.
    pub matched_index: Option<u64>,
    /// How many entries it is behind the leader's log.
    pub lag: Option<u64>,
    /// What the node itself reports, when it answered in time.
    pub local: Option<LocalView>,
}

/// The cluster as the leader (or, without one, the asked node) sees it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClusterStatus {
    /// The node that answered.
    pub answered_by: u64,
    /// The leader, if known.
    pub leader: Option<u64>,
    /// The answering node's term.
    pub term: u64,
    /// The answering node's last log index.
    pub last_log_index: Option<u64>,
    /// Voter ids.
    pub voters: BTreeSet<u64>,
    /// Learner ids.
    pub learners: BTreeSet<u64>,
    /// Every member, voters and learners.
    pub members: Vec<MemberStatus>,
    /// Whether a membership change would be accepted now.
    pub healthy: bool,
    /// Why not, when not.
    pub unhealthy_reason: Option<String>,
}

/// Asks a member for its own view, within [`PROBE_TIMEOUT`].
async fn probe(s: &AppState, id: u64, addr: &str) -> Option<LocalView> {
    if id == s.node_id {
        return Some(local_view(s));
    }
    if s.faults.is_blocked(id) {
        return None;
    }
    let resp = s
        .peers
        .client(id)
        .ok()?
        .get(s.peers.url(addr, "/v1/cluster/local"))
        .timeout(PROBE_TIMEOUT)
        .send()
        .await
        .ok()?;
    resp.json().await.ok()
}

pub(super) async fn build_status(s: &AppState, exclude: Option<u64>) -> ClusterStatus {
    let m = s.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership().clone();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let learners: BTreeSet<u64> = membership.learner_ids().collect();
    let last = m.last_log_index.unwrap_or(0);
    let nodes: Vec<(u64, String)> = membership
        .nodes()
        .map(|(id, n)| (*id, n.addr.clone()))
        .collect();
    let locals =
        futures::future::join_all(nodes.iter().map(|(id, addr)| probe(s, *id, addr))).await;
    let mut members = Vec::new();
    for ((id, addr), local) in nodes.into_iter().zip(locals) {
        let matched = if id == s.node_id {
            m.last_log_index
        } else {
            m.replication
                .as_ref()
                .and_then(|r| r.get(&id).copied().flatten())
                .map(|l| l.index)
        };
        let lag = (m.replication.is_some() || id == s.node_id)
            .then(|| last.saturating_sub(matched.unwrap_or(0)));
        let role = if voters.contains(&id) {
            "voter"
        } else {
            "learner"
        };
        members.push(MemberStatus {
            id,
            addr,
            role: role.into(),
            matched_index: matched,
            lag,
            local,
        });
    }
    let reason = unhealthy_reason(s, &m, &members, exclude);
    ClusterStatus {
        answered_by: s.node_id,
        leader: m.current_leader,
        term: m.current_term,
        last_log_index: m.last_log_index,
        voters,
        learners,
        members,
        healthy: reason.is_none(),
        unhealthy_reason: reason,
    }
}

/// Why a membership change must wait, or `None` when it may go ahead.
/// `exclude` is a voter about to be removed, whose health does not matter.
fn unhealthy_reason(
    s: &AppState,
    m: &RaftMetrics<u64, BasicNode>,
    members: &[MemberStatus],
    exclude: Option<u64>,
) -> Option<String> {
    if m.current_leader != Some(s.node_id) {
        return Some("this node is not the leader".into());
    }
    let membership = m.membership_config.membership();
    if membership.get_joint_config().len() != 1 {
        return Some("a membership change is still in progress (joint configuration)".into());
    }
    let applied = m.last_applied.map(|l| l.index);
    let membership_at = m.membership_config.log_id().map(|l| l.index);
    if membership_at > applied {
        return Some("the previous membership change is not committed yet".into());
    }
    for v in members
        .iter()
        .filter(|v| v.role == "voter" && Some(v.id) != exclude)
    {
        if v.local.is_none() {
            return Some(format!("voter {} does not answer", v.id));
        }
        match v.lag {
            Some(lag) if lag <= MAX_LAG => {}
            Some(lag) => {
                return Some(format!(
                    "voter {} is {lag} entries behind (limit {MAX_LAG})",
                    v.id
                ))
            }
            None => return Some(format!("voter {} has no replication progress yet", v.id)),
        }
    }
    None
}
