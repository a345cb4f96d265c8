//! Cluster administration: who is in the consortium's Raft cluster, and
//! changing that one member at a time.
//!
//! - `GET /v1/cluster/status`: members, learners, leader, term, and each
//!   node's log index, applied index, height and lag. Public, like
//!   `/readyz`; a follower forwards it to the leader when it can.
//! - `GET /v1/cluster/local`: what this node alone knows (used by the
//!   status call to ask every member, and by tests).
//! - `GET /v1/cluster/read-index`: the leader confirms its leadership with
//!   a quorum and names the log index a linearizable read must wait for;
//!   followers use it to serve reads ([`linearizable_read`]).
//! - `POST /v1/cluster/learners {id, addr}`: add a node as a learner.
//! - `POST /v1/cluster/voters {id}`: promote a caught-up learner.
//! - `DELETE /v1/cluster/members/{id}`: remove a voter or learner.
//! - `POST /v1/test/partition {blocked}`: test-only fault injection, served
//!   only when the node runs with `testing_faults = true`.
//!
//! Changes are signed like Raft RPCs ([`crate::raft::rpc`]): the same
//! `x-rxchain-ts` and `x-rxchain-sig` headers over path, time and body, with
//! either `x-rxchain-node` (a genesis node key; a node may only ask for
//! itself) or `x-rxchain-org` (an organisation's genesis admin key, the
//! operator). A follower checks the signature and forwards the request
//! unchanged to the leader, which checks it again. The leader changes one
//! member at a time and only while the cluster is healthy: the previous
//! change is committed, and every voter (but the one being removed)
//! answers and replicates within [`MAX_LAG`] entries; otherwise it answers
//! 409 `cluster_unhealthy` and changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use openraft::{BasicNode, ChangeMembers, RaftMetrics, ServerState};
use rxchain_contracts::{Genesis, OrgId, SecretKey, Signature};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::raft::rpc::{self, HEADER_NODE, HEADER_SIG, HEADER_TS};
use crate::raft::Raft;

/// Header naming the operator's organisation when an org admin key signs.
pub const HEADER_ORG: &str = "x-rxchain-org";
/// A voter or learner more than this many log entries behind the leader is
/// not "caught up": no membership change while a voter lags this much, no
/// promotion of a learner that does.
pub const MAX_LAG: u64 = 100;
/// How long the leader waits for a member's answer when checking health or
/// gathering status.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// The admin routes (state applied by the caller).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/cluster/status", get(status))
        .route("/v1/cluster/local", get(local))
        .route("/v1/cluster/read-index", get(read_index))
        .route("/v1/cluster/learners", post(add_learner))
        .route("/v1/cluster/voters", post(promote))
        .route("/v1/cluster/members/{id}", delete(remove))
        .route("/v1/test/partition", post(partition))
}

/// Who signed an admin request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signer {
    /// A genesis node, with its node key; it may only act on itself.
    Node(u64),
    /// An organisation's admin (an operator), with the org admin key.
    Operator(OrgId),
}

/// Finds which identity `key` is in `genesis`: an org admin key or a node key.
pub fn signer_for(genesis: &Genesis, key: &SecretKey) -> Option<Signer> {
    let public = key.public();
    for org in &genesis.orgs {
        if org.admin_key == public {
            return Some(Signer::Operator(org.id.clone()));
        }
        if let Some(n) = org.nodes.iter().find(|n| n.key == public) {
            return Some(Signer::Node(n.id));
        }
    }
    None
}

/// The headers that authenticate an admin request to `path` with `body`.
pub fn admin_headers(
    chain_id: &str,
    key: &SecretKey,
    signer: &Signer,
    path: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let ts = rpc::now_ms();
    let sig = rpc::sign(chain_id, key, path, ts, body);
    let who = match signer {
        Signer::Node(id) => (HEADER_NODE, id.to_string()),
        Signer::Operator(org) => (HEADER_ORG, org.to_string()),
    };
    vec![who, (HEADER_TS, ts.to_string()), (HEADER_SIG, sig.to_hex())]
}

fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Forbidden {
        status: StatusCode::UNAUTHORIZED,
        code,
        message: message.into(),
    }
}

fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Forbidden {
        status: StatusCode::FORBIDDEN,
        code,
        message: message.into(),
    }
}

/// Checks an admin request's signature against genesis.
pub fn authenticate(
    genesis: &Genesis,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Signer, ApiError> {
    let Some(org) = headers.get(HEADER_ORG) else {
        // A node key: exactly the Raft RPC scheme.
        return match rpc::authenticate(genesis, path, headers, body, rpc::now_ms()) {
            Ok(id) => Ok(Signer::Node(id)),
            Err(rpc::RpcError::MissingHeader(h)) => Err(unauthorized(
                "missing_auth",
                format!("the {h} header is missing; sign admin requests with a node key or an org admin key (rxchain cluster does this)"),
            )),
            Err(e @ rpc::RpcError::UnknownNode(_)) => Err(forbidden("unknown_node", e.to_string())),
            Err(e @ rpc::RpcError::Stale { .. }) => Err(unauthorized("stale_request", e.to_string())),
            Err(e @ rpc::RpcError::BadSignature(_)) => Err(unauthorized("bad_signature", e.to_string())),
            Err(e) => Err(unauthorized("malformed_auth", e.to_string())),
        };
    };
    let org = org
        .to_str()
        .ok()
        .and_then(|o| OrgId::parse(o).ok())
        .ok_or_else(|| unauthorized("malformed_auth", "the x-rxchain-org header is malformed"))?;
    let decl = genesis
        .org(&org)
        .ok_or_else(|| forbidden("unknown_org", format!("{org} is not a consortium member")))?;
    let header = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                unauthorized(
                    "missing_auth",
                    format!("the {name} header is missing or malformed"),
                )
            })
    };
    let ts: u64 = header(HEADER_TS)?
        .parse()
        .map_err(|_| unauthorized("malformed_auth", "the x-rxchain-ts header is malformed"))?;
    let raw = hex::decode(header(HEADER_SIG)?)
        .map_err(|_| unauthorized("malformed_auth", "the x-rxchain-sig header is not hex"))?;
    let bytes: [u8; 64] = raw
        .try_into()
        .map_err(|_| unauthorized("malformed_auth", "the x-rxchain-sig header is not 64 bytes"))?;
    let sig = Signature::parse(bytes).map_err(|_| {
        unauthorized(
            "malformed_auth",
            "the x-rxchain-sig header is not a signature",
        )
    })?;
    let skew_ms = rpc::now_ms().abs_diff(ts);
    if skew_ms > rpc::MAX_CLOCK_SKEW_MS {
        return Err(unauthorized(
            "stale_request",
            format!("the request time is {skew_ms} ms away from this node's clock"),
        ));
    }
    decl.admin_key
        .verify(
            &rpc::signing_tag(genesis.chain_id.as_str()),
            &rpc::signing_message(path, ts, body),
            &sig,
        )
        .map_err(|_| {
            unauthorized(
                "bad_signature",
                format!("the signature does not verify under {org}'s genesis admin key"),
            )
        })?;
    Ok(Signer::Operator(org))
}

/// A node key may only add, promote or remove its own node.
fn may_act_on(signer: &Signer, id: u64) -> Result<(), ApiError> {
    match signer {
        Signer::Node(n) if *n != id => Err(forbidden(
            "not_your_node",
            format!("node {n}'s key may only change its own membership, not node {id}'s; use an org admin key"),
        )),
        _ => Ok(()),
    }
}

fn unhealthy(message: impl Into<String>) -> ApiError {
    ApiError::Conflict {
        code: "cluster_unhealthy",
        message: message.into(),
    }
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad("invalid_json", format!("the JSON does not fit: {e}")))
}

/// The leader's address, if a leader is known and not cut off.
fn leader_addr(s: &AppState, m: &RaftMetrics<u64, BasicNode>) -> Option<(u64, String)> {
    let leader = m.current_leader?;
    if s.faults.is_blocked(leader) {
        return None;
    }
    m.membership_config
        .membership()
        .get_node(&leader)
        .map(|n| (leader, n.addr.clone()))
}

/// Either answers here (this node leads) or relays the request, signature
/// headers and all, to the leader.
async fn forward_to_leader(
    s: &AppState,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let m = s.raft.metrics().borrow().clone();
    let (leader, addr) = leader_addr(s, &m).ok_or_else(|| {
        ApiError::NotCommitted(
            "no Raft leader is reachable from this node; nothing was changed, retry".into(),
        )
    })?;
    let mut req = s
        .client
        .request(
            reqwest::Method::from_bytes(method.as_str().as_bytes()).map_err(ApiError::internal)?,
            format!("http://{addr}{}", uri.path()),
        )
        .timeout(Duration::from_secs(20))
        .body(body);
    for name in [
        HEADER_NODE,
        HEADER_ORG,
        HEADER_TS,
        HEADER_SIG,
        "content-type",
    ] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            req = req.header(name, v);
        }
    }
    let resp = req.send().await.map_err(|e| {
        tracing::warn!(error = %e, leader, "forwarding an admin request to the leader failed");
        ApiError::NotCommitted(
            "the Raft leader did not answer; nothing is known to have changed, retry".into(),
        )
    })?;
    let status = StatusCode::from_u16(resp.status().as_u16()).map_err(ApiError::internal)?;
    let bytes = resp
        .bytes()
        .await
        .map_err(|_| ApiError::NotCommitted("the leader's answer was cut off; retry".into()))?;
    Ok((
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response())
}

/// What one node says about itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
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

fn local_view(s: &AppState) -> LocalView {
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

#[tracing::instrument(skip_all)]
async fn local(State(s): State<AppState>) -> Json<LocalView> {
    Json(local_view(&s))
}

/// The answer of `GET /v1/cluster/read-index`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReadIndex {
    /// The leader that confirmed it.
    pub leader: u64,
    /// Reads are linearizable once the state machine applied this index.
    pub index: u64,
}

/// How long a read waits for the leader's confirmation and for this
/// node's state machine to catch up before it gives up with 503.
const READ_WAIT: Duration = Duration::from_secs(5);

fn cannot_confirm() -> ApiError {
    ApiError::NotCommitted("the node cannot confirm it has the latest chain state; retry".into())
}

/// Makes the next state read linearizable, on any node: the leader confirms
/// its leadership with a quorum (Raft's ReadIndex); a follower asks the
/// leader for that index and waits until it has applied it. Without a
/// reachable leader (say, this node is cut off in a minority) it answers
/// 503 rather than risk a stale answer.
pub async fn linearizable_read(s: &AppState) -> Result<(), ApiError> {
    let m = s.raft.metrics().borrow().clone();
    if m.current_leader == Some(s.node_id) {
        return match tokio::time::timeout(READ_WAIT, s.raft.ensure_linearizable()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "linearizable read failed");
                Err(cannot_confirm())
            }
            Err(_) => Err(cannot_confirm()),
        };
    }
    let (leader, addr) = leader_addr(s, &m).ok_or_else(cannot_confirm)?;
    let resp = s
        .client
        .get(format!("http://{addr}/v1/cluster/read-index"))
        .timeout(READ_WAIT)
        .send()
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, leader, "cannot reach the leader for a read index");
            cannot_confirm()
        })?;
    if !resp.status().is_success() {
        return Err(cannot_confirm());
    }
    let ri: ReadIndex = resp.json().await.map_err(|_| cannot_confirm())?;
    s.raft.wait(Some(READ_WAIT)).applied_index_at_least(Some(ri.index), "linearizable read").await.map_err(|e| {
        tracing::warn!(error = %e, index = ri.index, "did not apply up to the read index in time");
        cannot_confirm()
    })?;
    Ok(())
}

#[tracing::instrument(skip_all)]
async fn read_index(State(s): State<AppState>) -> Result<Json<ReadIndex>, ApiError> {
    if s.raft.metrics().borrow().current_leader != Some(s.node_id) {
        return Err(ApiError::NotCommitted(
            "this node is not the leader; ask the leader for a read index".into(),
        ));
    }
    let read = match tokio::time::timeout(READ_WAIT, s.raft.ensure_linearizable()).await {
        Ok(Ok(read)) => read,
        _ => return Err(cannot_confirm()),
    };
    Ok(Json(ReadIndex {
        leader: s.node_id,
        index: read.map_or(0, |l| l.index),
    }))
}

/// One member in the leader's status.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Serialize, Deserialize)]
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
        .client
        .get(format!("http://{addr}/v1/cluster/local"))
        .timeout(PROBE_TIMEOUT)
        .send()
        .await
        .ok()?;
    resp.json().await.ok()
}

async fn build_status(s: &AppState, exclude: Option<u64>) -> ClusterStatus {
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

#[tracing::instrument(skip_all)]
async fn status(
    State(s): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let m = s.raft.metrics().borrow().clone();
    if m.current_leader != Some(s.node_id) && leader_addr(&s, &m).is_some() {
        if let Ok(r) = forward_to_leader(&s, Method::GET, &uri, &headers, Bytes::new()).await {
            if r.status().is_success() {
                return Ok(r);
            }
        }
    }
    // No reachable leader: say what this node knows, marked as such.
    Ok(Json(build_status(&s, None).await).into_response())
}

/// `POST /v1/cluster/learners`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddLearner {
    /// The joining node's genesis id.
    pub id: u64,
    /// Where the other nodes reach it, `host:port`.
    pub addr: String,
}

/// `POST /v1/cluster/voters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Promote {
    /// The learner to promote.
    pub id: u64,
}

/// The answer to a membership change.
#[derive(Debug, Serialize, Deserialize)]
pub struct Changed {
    /// The node changed.
    pub id: u64,
    /// Its role now: `learner`, `voter` or `removed`.
    pub role: String,
    /// Whether it already had that role, so nothing changed.
    pub unchanged: bool,
    /// Voters after the change.
    pub voters: BTreeSet<u64>,
    /// Learners after the change.
    pub learners: BTreeSet<u64>,
}

fn changed(raft: &Raft, id: u64, role: &str, unchanged: bool) -> Response {
    let m = raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    Json(Changed {
        id,
        role: role.into(),
        unchanged,
        voters: membership.voter_ids().collect(),
        learners: membership.learner_ids().collect(),
    })
    .into_response()
}

fn change_failed<E: std::fmt::Display>(e: E) -> ApiError {
    tracing::warn!(error = %e, "membership change failed");
    unhealthy(format!("the membership change did not go through: {e}"))
}

#[tracing::instrument(skip_all)]
async fn add_learner(
    State(s): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let signer = authenticate(&s.genesis, uri.path(), &headers, &body)?;
    let req: AddLearner = parse_body(&body)?;
    may_act_on(&signer, req.id)?;
    if s.genesis.node(req.id).is_none() {
        return Err(ApiError::not_found(
            "unknown_node",
            format!("node {} is not declared in genesis", req.id),
        ));
    }
    if req.addr.trim().is_empty() || req.addr.contains('/') {
        return Err(ApiError::bad(
            "bad_addr",
            "addr is the node's host:port, without a scheme or path",
        ));
    }
    if s.raft.metrics().borrow().current_leader != Some(s.node_id) {
        return forward_to_leader(&s, Method::POST, &uri, &headers, body).await;
    }
    tracing::info!(?signer, id = req.id, addr = %req.addr, "add learner requested");
    let m = s.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    if let Some(node) = membership.get_node(&req.id) {
        if node.addr == req.addr {
            let role = if membership.voter_ids().any(|v| v == req.id) {
                "voter"
            } else {
                "learner"
            };
            return Ok(changed(&s.raft, req.id, role, true));
        }
        return Err(ApiError::Conflict {
            code: "member_exists",
            message: format!(
                "node {} is already a member at {}; remove it before adding it at another address",
                req.id, node.addr
            ),
        });
    }
    let st = build_status(&s, None).await;
    if let Some(why) = st.unhealthy_reason {
        return Err(unhealthy(why));
    }
    // Not blocking: a learner catching up through a snapshot of the whole
    // chain can take far longer than an HTTP request should; the joining
    // node asks for promotion once it has caught up.
    s.raft
        .add_learner(
            req.id,
            BasicNode {
                addr: req.addr.clone(),
            },
            false,
        )
        .await
        .map_err(change_failed)?;
    Ok(changed(&s.raft, req.id, "learner", false))
}

#[tracing::instrument(skip_all)]
async fn promote(
    State(s): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let signer = authenticate(&s.genesis, uri.path(), &headers, &body)?;
    let req: Promote = parse_body(&body)?;
    may_act_on(&signer, req.id)?;
    if s.raft.metrics().borrow().current_leader != Some(s.node_id) {
        return forward_to_leader(&s, Method::POST, &uri, &headers, body).await;
    }
    let st = build_status(&s, None).await;
    if st.voters.contains(&req.id) {
        return Ok(changed(&s.raft, req.id, "voter", true));
    }
    let Some(learner) = st.members.iter().find(|x| x.id == req.id) else {
        return Err(ApiError::not_found(
            "not_a_learner",
            format!(
                "node {} is not a learner; add it as a learner first",
                req.id
            ),
        ));
    };
    if let Some(why) = st.unhealthy_reason {
        return Err(unhealthy(why));
    }
    match learner.lag {
        Some(lag) if lag <= MAX_LAG => {}
        lag => {
            return Err(unhealthy(format!(
            "learner {} has not caught up yet ({} entries behind, limit {MAX_LAG}); retry shortly",
            req.id,
            lag.map_or_else(|| "unknown".to_string(), |l| l.to_string())
        )))
        }
    }
    tracing::info!(?signer, id = req.id, "promoting learner to voter");
    s.raft
        .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([req.id])), false)
        .await
        .map_err(change_failed)?;
    Ok(changed(&s.raft, req.id, "voter", false))
}

#[tracing::instrument(skip_all, fields(id))]
async fn remove(
    State(s): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let signer = authenticate(&s.genesis, uri.path(), &headers, &body)?;
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::bad("bad_node_id", "the node id is a decimal number"))?;
    may_act_on(&signer, id)?;
    if s.raft.metrics().borrow().current_leader != Some(s.node_id) {
        return forward_to_leader(&s, Method::DELETE, &uri, &headers, body).await;
    }
    let st = build_status(&s, Some(id)).await;
    let change = if st.voters.contains(&id) {
        if st.voters.len() == 1 {
            return Err(ApiError::Conflict {
                code: "last_voter",
                message: "the last voter cannot be removed".into(),
            });
        }
        ChangeMembers::RemoveVoters(BTreeSet::from([id]))
    } else if st.learners.contains(&id) {
        ChangeMembers::RemoveNodes(BTreeSet::from([id]))
    } else {
        return Err(ApiError::not_found(
            "not_a_member",
            format!("node {id} is not a member of the cluster"),
        ));
    };
    if let Some(why) = st.unhealthy_reason {
        return Err(unhealthy(why));
    }
    tracing::info!(?signer, id, "removing member");
    // `retain = false`: a removed voter leaves entirely instead of staying
    // on as a learner.
    s.raft
        .change_membership(change, false)
        .await
        .map_err(change_failed)?;
    Ok(changed(&s.raft, id, "removed", false))
}

/// `POST /v1/test/partition`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// Node ids this node can no longer talk to; empty heals.
    pub blocked: BTreeSet<u64>,
}

#[tracing::instrument(skip_all)]
async fn partition(State(s): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    if !s.faults.enabled() {
        return Err(ApiError::not_found(
            "no_such_route",
            "there is no such API route",
        ));
    }
    let req: Partition = parse_body(&body)?;
    tracing::warn!(blocked = ?req.blocked, "test partition set");
    s.faults.set_blocked(req.blocked.clone());
    Ok(Json(serde_json::json!({"node_id": s.node_id, "blocked": req.blocked})).into_response())
}

/// Why joining failed on one attempt.
#[derive(Debug, thiserror::Error)]
enum JoinError {
    #[error("cannot reach {0}: {1}")]
    Transport(String, reqwest::Error),
    #[error("{0} answered {1}: {2}")]
    Refused(String, u16, String),
}

/// A non-bootstrap node with peers joins the cluster: it asks a peer to add
/// it as a learner, waits to be caught up, then asks to become a voter.
/// Runs until this node is a voter or `shutdown` flips.
pub async fn join(
    raft: Raft,
    genesis: Arc<Genesis>,
    node_id: u64,
    node_key: Arc<SecretKey>,
    advertised: String,
    peers: BTreeMap<String, String>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap_or_default();
    let signer = Signer::Node(node_id);
    let chain_id = genesis.chain_id.to_string();
    let peers: Vec<String> = peers.into_values().filter(|a| *a != advertised).collect();
    if peers.is_empty() {
        tracing::warn!("no peers other than this node are configured; cannot join a cluster");
        return;
    }
    let mut attempt = 0u64;
    loop {
        let m = raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        if membership.voter_ids().any(|v| v == node_id) {
            tracing::info!("this node is a voter of the cluster");
            return;
        }
        let is_learner = membership.get_node(&node_id).is_some();
        let (path, body) = if is_learner {
            ("/v1/cluster/voters", serde_json::json!({"id": node_id}))
        } else {
            (
                "/v1/cluster/learners",
                serde_json::json!({"id": node_id, "addr": advertised}),
            )
        };
        let body = body.to_string().into_bytes();
        let peer = &peers[(attempt as usize) % peers.len()];
        attempt += 1;
        let res = async {
            let mut req = http
                .post(format!("http://{peer}{path}"))
                .header("content-type", "application/json")
                .body(body.clone());
            for (k, v) in admin_headers(&chain_id, &node_key, &signer, path, &body) {
                req = req.header(k, v);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| JoinError::Transport(peer.clone(), e))?;
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            if status >= 300 {
                return Err(JoinError::Refused(peer.clone(), status, text));
            }
            Ok(())
        }
        .await;
        match res {
            Ok(()) => tracing::info!(path, peer, "join step accepted"),
            // Expected while the learner catches up; keep the log quiet.
            Err(e) if is_learner => tracing::debug!(error = %e, "not promoted yet"),
            Err(e) => tracing::warn!(error = %e, "asking to join failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(if is_learner { 500 } else { 1000 })) => {}
            _ = shutdown.changed() => return,
        }
    }
}
