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
//! - `POST /v1/cluster/learners {id, addr}`: add a declared node as a learner.
//! - `POST /v1/cluster/voters {id}`: promote a caught-up declared learner.
//! - `DELETE /v1/cluster/members/{id}`: remove a member the consortium
//!   no longer declares; a declared node is refused 403
//!   `governance_required` (Raft membership follows governance decisions,
//!   see `crate::node::reconcile`).
//! - `POST /v1/test/partition {blocked}`: test-only fault injection, served
//!   only when the node runs with `testing_faults = true`.
//!
//! Changes are signed like Raft RPCs ([`crate::raft::rpc`]): the same
//! `x-rxchain-to`, `x-rxchain-ts`, `x-rxchain-nonce` and `x-rxchain-sig`
//! headers over path, target node, time, nonce and body, with either
//! `x-rxchain-node` (a genesis node key; a node may only ask for itself) or
//! `x-rxchain-org` (an organisation's genesis admin key, the operator).
//! Each request is accepted once, by the node it names ([`auth`]). A
//! follower checks the signature, then forwards the request to the leader
//! signed with its own node key and carrying the original signature, which
//! the leader checks again (see [`auth`]). The leader changes one
//! member at a time and only while the cluster is healthy: the previous
//! change is committed, and every voter (but the one being removed)
//! answers and replicates within [`MAX_LAG`] entries; otherwise it answers
//! 409 `cluster_unhealthy` and changes nothing.

pub mod auth;
mod health;
pub(in crate::http) mod read_index;

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use openraft::{BasicNode, ChangeMembers};
use serde::{Deserialize, Serialize};

use super::error::ErrorBody;
use super::{ApiBody, ApiError, ApiPath, AppState};
use crate::raft::peers::{PeerRequest, FORWARDED_BY};
use crate::service::leader::{is_leader, remote_leader};
use crate::types::Raft;
use auth::may_act_on;
pub use auth::{
    admin_headers, authenticate, forwarded_headers, signer_for, Admitted, Signer, HEADER_ORG,
};
use health::{build_status, local_view};
pub use health::{ClusterStatus, LocalView, MemberStatus, MAX_LAG};
use read_index::read_index;
pub use read_index::{linearizable_read, ReadIndex};

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

/// Sends the request to the leader and answers with the leader's own
/// answer. An admitted admin request (`auth`) is signed anew by this node
/// for the leader, carrying the original signature ([`forwarded_headers`]);
/// a public request (`None`) travels without credentials.
async fn forward_to_leader(
    s: &AppState,
    method: Method,
    uri: &Uri,
    auth: Option<&Admitted>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (leader, addr) = remote_leader(&s.raft, s.node_id, &s.faults).ok_or_else(|| {
        ApiError::NotCommitted(
            "no Raft leader is reachable from this node; nothing was changed, retry".into(),
        )
    })?;
    let mut relay = vec![("content-type", "application/json".to_string())];
    if let Some(admitted) = auth {
        if admitted.forwarded_by.is_some() {
            // One hop only: the original is addressed to the forwarder, so
            // this node cannot vouch for it to a third node.
            return Err(ApiError::NotCommitted(
                "leadership moved while the request was forwarded; nothing was changed, retry"
                    .into(),
            ));
        }
        relay.extend(forwarded_headers(
            s.genesis.chain_id.as_str(),
            &s.node_key,
            s.node_id,
            leader,
            admitted,
            uri.path(),
            &body,
        ));
    }
    // Over TLS the leader sees this node's certificate: say that this node
    // relays the request ([`crate::tls::admit`]).
    relay.push((FORWARDED_BY, s.node_id.to_string()));
    let method =
        reqwest::Method::from_bytes(method.as_str().as_bytes()).map_err(ApiError::internal)?;
    let answer = s
        .peers
        .call(
            leader,
            &addr,
            PeerRequest {
                method,
                path: uri.path(),
                headers: &relay,
                body,
                timeout: Duration::from_secs(20),
            },
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = ?e, leader, "forwarding an admin request to the leader failed");
            ApiError::NotCommitted(
                "the Raft leader did not answer; nothing is known to have changed, retry".into(),
            )
        })?;
    Ok(ApiError::Relayed(answer).into_response())
}

/// What this node alone knows.
#[utoipa::path(
    get, path = "/v1/cluster/local", tag = "cluster",
    responses((status = 200, description = "This node's view", body = LocalView))
)]
#[tracing::instrument(skip_all)]
pub(in crate::http) async fn local(State(s): State<AppState>) -> Json<LocalView> {
    Json(local_view(&s))
}

/// The cluster as the leader sees it (or this node, without a reachable leader).
#[utoipa::path(
    get, path = "/v1/cluster/status", tag = "cluster",
    responses((status = 200, description = "Members, leader, lag, health", body = ClusterStatus))
)]
#[tracing::instrument(skip_all)]
pub(in crate::http) async fn status(
    State(s): State<AppState>,
    uri: Uri,
) -> Result<Response, ApiError> {
    if remote_leader(&s.raft, s.node_id, &s.faults).is_some() {
        if let Ok(r) = forward_to_leader(&s, Method::GET, &uri, None, Bytes::new()).await {
            if r.status().is_success() {
                return Ok(r);
            }
        }
    }
    // No reachable leader: say what this node knows, marked as such.
    Ok(Json(build_status(&s, None).await).into_response())
}

/// `POST /v1/cluster/learners`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddLearner {
    /// The joining node's genesis id.
    pub id: u64,
    /// Where the other nodes reach it, `host:port`.
    pub addr: String,
}

/// `POST /v1/cluster/voters`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Promote {
    /// The learner to promote.
    pub id: u64,
}

/// The answer to a membership change.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
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

/// Adds a node as a learner (signed admin request).
#[utoipa::path(
    post, path = "/v1/cluster/learners", tag = "cluster",
    params(
        ("x-rxchain-node" = Option<String>, Header, description = "The signing node's id (node key); or give x-rxchain-org"),
        ("x-rxchain-org" = Option<String>, Header, description = "The signing organisation (org admin key)"),
        ("x-rxchain-to" = String, Header, description = "The node id the request is sent to"),
        ("x-rxchain-ts" = String, Header, description = "Request time, ms since the epoch"),
        ("x-rxchain-nonce" = String, Header, description = "16 random bytes, hex; each request is accepted once"),
        ("x-rxchain-sig" = String, Header, description = "Signature over path, target, time, nonce and body, hex"),

    ),
    request_body = AddLearner,
    responses(
        (status = 200, description = "Changed (or already so: `unchanged`)", body = Changed),
        (status = 400, description = "`invalid_json`, `bad_addr`, `bad_node_id`, `unreadable_body`", body = ErrorBody),
        (status = 401, description = "`missing_auth`, `malformed_auth`, `stale_request`, `bad_signature`, `replayed_request`", body = ErrorBody),
        (status = 403, description = "`unknown_node`, `unknown_org`, `not_your_node`, `wrong_target`, `not_a_node`", body = ErrorBody),
        (status = 404, description = "`unknown_node`", body = ErrorBody),
        (status = 409, description = "`cluster_unhealthy`, `member_exists`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 429, description = "`replay_window_full`: the signer has too many requests in the replay window", body = ErrorBody),
        (status = 503, description = "`not_committed`: no reachable leader; nothing changed", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(in crate::http) async fn add_learner(
    State(s): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> Result<Response, ApiError> {
    let admitted = authenticate(
        &s.consortium(),
        s.node_id,
        &s.admin_nonces,
        uri.path(),
        &headers,
        &body,
    )?;
    let signer = &admitted.signer;
    let req: AddLearner = parse_body(&body)?;
    may_act_on(signer, req.id)?;
    if s.consortium().node(req.id).is_none() {
        return Err(ApiError::not_found(
            "unknown_node",
            format!(
                "node {} is not declared in the consortium; declare it first with `rxchain governance propose add-node`",
                req.id
            ),
        ));
    }
    if req.addr.trim().is_empty() || req.addr.contains('/') {
        return Err(ApiError::bad(
            "bad_addr",
            "addr is the node's host:port, without a scheme or path",
        ));
    }
    if !is_leader(&s.raft, s.node_id) {
        return forward_to_leader(&s, Method::POST, &uri, Some(&admitted), body).await;
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

/// Promotes a caught-up learner to voter (signed admin request).
#[utoipa::path(
    post, path = "/v1/cluster/voters", tag = "cluster",
    params(
        ("x-rxchain-node" = Option<String>, Header, description = "The signing node's id (node key); or give x-rxchain-org"),
        ("x-rxchain-org" = Option<String>, Header, description = "The signing organisation (org admin key)"),
        ("x-rxchain-to" = String, Header, description = "The node id the request is sent to"),
        ("x-rxchain-ts" = String, Header, description = "Request time, ms since the epoch"),
        ("x-rxchain-nonce" = String, Header, description = "16 random bytes, hex; each request is accepted once"),
        ("x-rxchain-sig" = String, Header, description = "Signature over path, target, time, nonce and body, hex"),

    ),
    request_body = Promote,
    responses(
        (status = 200, description = "Changed (or already so: `unchanged`)", body = Changed),
        (status = 400, description = "`invalid_json`, `bad_addr`, `bad_node_id`, `unreadable_body`", body = ErrorBody),
        (status = 401, description = "`missing_auth`, `malformed_auth`, `stale_request`, `bad_signature`, `replayed_request`", body = ErrorBody),
        (status = 403, description = "`unknown_node`, `unknown_org`, `not_your_node`, `wrong_target`, `not_a_node`", body = ErrorBody),
        (status = 404, description = "`not_a_learner`, `unknown_node`", body = ErrorBody),
        (status = 409, description = "`cluster_unhealthy`, a learner that has not caught up", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 429, description = "`replay_window_full`: the signer has too many requests in the replay window", body = ErrorBody),
        (status = 503, description = "`not_committed`: no reachable leader; nothing changed", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(in crate::http) async fn promote(
    State(s): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> Result<Response, ApiError> {
    let admitted = authenticate(
        &s.consortium(),
        s.node_id,
        &s.admin_nonces,
        uri.path(),
        &headers,
        &body,
    )?;
    let signer = &admitted.signer;
    let req: Promote = parse_body(&body)?;
    may_act_on(signer, req.id)?;
    if s.consortium().node(req.id).is_none() {
        return Err(ApiError::not_found(
            "unknown_node",
            format!("node {} is not declared in the consortium", req.id),
        ));
    }
    if !is_leader(&s.raft, s.node_id) {
        return forward_to_leader(&s, Method::POST, &uri, Some(&admitted), body).await;
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

/// Removes a voter or learner (signed admin request).
#[utoipa::path(
    delete, path = "/v1/cluster/members/{id}", tag = "cluster",
    params(
        ("x-rxchain-node" = Option<String>, Header, description = "The signing node's id (node key); or give x-rxchain-org"),
        ("x-rxchain-org" = Option<String>, Header, description = "The signing organisation (org admin key)"),
        ("x-rxchain-to" = String, Header, description = "The node id the request is sent to"),
        ("x-rxchain-ts" = String, Header, description = "Request time, ms since the epoch"),
        ("x-rxchain-nonce" = String, Header, description = "16 random bytes, hex; each request is accepted once"),
        ("x-rxchain-sig" = String, Header, description = "Signature over path, target, time, nonce and body, hex"),
        ("id" = String, Path, description = "The node id"),
    ),
    responses(
        (status = 200, description = "Changed (or already so: `unchanged`)", body = Changed),
        (status = 400, description = "`invalid_json`, `bad_addr`, `bad_node_id`, `unreadable_body`", body = ErrorBody),
        (status = 401, description = "`missing_auth`, `malformed_auth`, `stale_request`, `bad_signature`, `replayed_request`", body = ErrorBody),
        (status = 403, description = "`unknown_node`, `unknown_org`, `not_your_node`, `wrong_target`, `not_a_node`, `governance_required`: the node is declared in the consortium, so only governance removes it", body = ErrorBody),
        (status = 404, description = "`not_a_member`", body = ErrorBody),
        (status = 409, description = "`cluster_unhealthy`, `last_voter`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 429, description = "`replay_window_full`: the signer has too many requests in the replay window", body = ErrorBody),
        (status = 503, description = "`not_committed`: no reachable leader; nothing changed", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(id))]
pub(in crate::http) async fn remove(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    uri: Uri,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> Result<Response, ApiError> {
    let admitted = authenticate(
        &s.consortium(),
        s.node_id,
        &s.admin_nonces,
        uri.path(),
        &headers,
        &body,
    )?;
    let signer = &admitted.signer;
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::bad("bad_node_id", "the node id is a decimal number"))?;
    may_act_on(signer, id)?;
    // A declared node leaves Raft only when the consortium no longer
    // declares it: by a governance decision, or its own organisation's
    // `leave_node`. The leader's reconciler then removes it.
    if let Some((org, _)) = s.consortium().node(id) {
        return Err(ApiError::forbidden(
            "governance_required",
            format!(
                "node {id} is declared by {}; remove it with `rxchain governance propose remove-node --id {id}` (approved by the threshold of organisations) or, as {}, `rxchain governance leave --id {id}`",
                org.id, org.id
            ),
        ));
    }
    if !is_leader(&s.raft, s.node_id) {
        return forward_to_leader(&s, Method::DELETE, &uri, Some(&admitted), body).await;
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
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// Node ids this node can no longer talk to; empty heals.
    pub blocked: BTreeSet<u64>,
}

/// The answer of `POST /v1/test/partition`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PartitionSet {
    /// This node.
    pub node_id: u64,
    /// The node ids it no longer talks to.
    pub blocked: BTreeSet<u64>,
}

/// TEST ONLY (`testing_faults = true`): drops Raft RPCs to and from the
/// given node ids; 404 on a normal node.
#[utoipa::path(
    post, path = "/v1/test/partition", tag = "cluster",
    request_body = Partition,
    responses(
        (status = 200, description = "The partition is set", body = PartitionSet),
        (status = 400, description = "`invalid_json`, `unreadable_body`", body = ErrorBody),
        (status = 404, description = "`no_such_route`: the node does not run with testing_faults", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(in crate::http) async fn partition(
    State(s): State<AppState>,
    ApiBody(body): ApiBody,
) -> Result<Response, ApiError> {
    if !s.faults.enabled() {
        return Err(ApiError::not_found(
            "no_such_route",
            "there is no such API route",
        ));
    }
    let req: Partition = parse_body(&body)?;
    tracing::warn!(blocked = ?req.blocked, "test partition set");
    s.faults.set_blocked(req.blocked.clone());
    Ok(Json(PartitionSet {
        node_id: s.node_id,
        blocked: req.blocked,
    })
    .into_response())
}
