//! The Raft RPC server: `POST /raft/append`, `/raft/vote` and
//! `/raft/snapshot`, for peers only.
//!
//! Every request carries three headers: `x-rxchain-node` (the sender's node
//! id), `x-rxchain-ts` (its clock, Unix milliseconds) and `x-rxchain-sig`
//! (hex of the sender's node-key signature, tag `raft-rpc/<chain id>`, over
//! `path || 0x00 || ts in decimal || 0x00 || SHA3-256(body)`). The server
//! checks them against the genesis node keys before it even parses the body,
//! so a stranger reaches neither the JSON decoder nor Raft. The request's
//! Raft vote must also name the sender, so one member node cannot speak
//! for another.
//!
//! Answers: 200 with the Raft response as JSON; 401 or 403 when the request
//! is not authenticated; 400 when the body does not decode; 409 for a Raft
//! API error and 503 when Raft has stopped, both with the serialised
//! openraft error in `raft` so the sender can hand it back to openraft.

use std::fmt::Display;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::Vote;
use rxchain_contracts::crypto::{Hash, SecretKey, Signature};
use rxchain_contracts::Genesis;
use serde::{Deserialize, Serialize};

use super::{Faults, Raft, TypeConfig};

/// Header naming the sending node.
pub const HEADER_NODE: &str = "x-rxchain-node";
/// Header with the sender's clock in Unix milliseconds.
pub const HEADER_TS: &str = "x-rxchain-ts";
/// Header with the hex signature.
pub const HEADER_SIG: &str = "x-rxchain-sig";
/// AppendEntries (replication and heartbeats).
pub const PATH_APPEND: &str = "/raft/append";
/// RequestVote.
pub const PATH_VOTE: &str = "/raft/vote";
/// InstallSnapshot, one chunk per request.
pub const PATH_SNAPSHOT: &str = "/raft/snapshot";
/// How far a request's timestamp may be from this node's clock. It bounds
/// how long a captured request could be replayed; Raft messages are
/// idempotent under their term anyway.
pub const MAX_CLOCK_SKEW_MS: u64 = 60_000;
/// The largest RPC body accepted: room for a full batch of blocks in an
/// AppendEntries or a snapshot chunk, both as JSON.
pub const MAX_RPC_BODY: usize = 64 * 1024 * 1024;

/// The signature domain tag of Raft RPCs in a consortium.
pub fn signing_tag(chain_id: &str) -> String {
    format!("raft-rpc/{chain_id}")
}

/// The signed message: `path || 0x00 || ts || 0x00 || SHA3-256(body)`.
pub fn signing_message(path: &str, ts_ms: u64, body: &[u8]) -> Vec<u8> {
    let digest = Hash::of(&[body]);
    [
        path.as_bytes(),
        &[0],
        ts_ms.to_string().as_bytes(),
        &[0],
        digest.as_bytes(),
    ]
    .concat()
}

/// Signs a Raft RPC with a node key.
pub fn sign(chain_id: &str, key: &SecretKey, path: &str, ts_ms: u64, body: &[u8]) -> Signature {
    key.sign(&signing_tag(chain_id), &signing_message(path, ts_ms, body))
}

/// The JSON body of every failure.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable machine-readable code.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The openraft error, for 409 and 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft: Option<serde_json::Value>,
}

/// Why an RPC was refused before it reached Raft.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// 401: an authentication header is absent.
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    /// 401: an authentication header does not parse.
    #[error("the {0} header is malformed")]
    BadHeader(&'static str),
    /// 403: the sender is not a genesis node.
    #[error("node {0} is not declared in genesis")]
    UnknownNode(u64),
    /// 401: the timestamp is too far from this node's clock.
    #[error("the request time is {skew_ms} ms away from this node's clock (limit {MAX_CLOCK_SKEW_MS} ms)")]
    Stale {
        /// The distance.
        skew_ms: u64,
    },
    /// 401: the signature does not verify under the sender's genesis key.
    #[error("the signature does not verify under node {0}'s genesis key")]
    BadSignature(u64),
    /// 403: the Raft vote in the body names another node than the sender.
    #[error("node {sender} sent a message on behalf of node {claimed:?}")]
    SenderMismatch {
        /// The authenticated sender.
        sender: u64,
        /// The node the vote names.
        claimed: Option<u64>,
    },
    /// 400: the body is not the expected JSON.
    #[error("the body does not decode: {0}")]
    BadBody(String),
    /// 503: a test-only partition cuts this node off from the sender.
    #[error("node {0} is cut off by an injected test partition")]
    Partitioned(u64),
}

impl RpcError {
    fn status(&self) -> StatusCode {
        match self {
            RpcError::MissingHeader(_)
            | RpcError::BadHeader(_)
            | RpcError::Stale { .. }
            | RpcError::BadSignature(_) => StatusCode::UNAUTHORIZED,
            RpcError::UnknownNode(_) | RpcError::SenderMismatch { .. } => StatusCode::FORBIDDEN,
            RpcError::BadBody(_) => StatusCode::BAD_REQUEST,
            RpcError::Partitioned(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            RpcError::MissingHeader(_) => "missing_auth",
            RpcError::BadHeader(_) => "malformed_auth",
            RpcError::UnknownNode(_) => "unknown_node",
            RpcError::Stale { .. } => "stale_request",
            RpcError::BadSignature(_) => "bad_signature",
            RpcError::SenderMismatch { .. } => "sender_mismatch",
            RpcError::BadBody(_) => "bad_body",
            RpcError::Partitioned(_) => "partitioned",
        }
    }
}

impl IntoResponse for RpcError {
    fn into_response(self) -> Response {
        tracing::warn!(error = %self, "raft rpc refused");
        let body = ErrorBody {
            code: self.code().into(),
            message: self.to_string(),
            raft: None,
        };
        (self.status(), Json(body)).into_response()
    }
}

/// Turns a Raft failure into 409 (API error) or 503 (Raft stopped), with the
/// openraft error serialised for the sender.
fn raft_failure<E: Serialize + Display + std::fmt::Debug>(e: RaftError<u64, E>) -> Response {
    let (status, code) = match &e {
        RaftError::APIError(_) => (StatusCode::CONFLICT, "raft_refused"),
        RaftError::Fatal(_) => (StatusCode::SERVICE_UNAVAILABLE, "raft_stopped"),
    };
    tracing::warn!(error = %e, "raft rpc failed");
    let raft = match serde_json::to_value(&e) {
        Ok(v) => Some(v),
        Err(ser) => {
            tracing::error!(error = %ser, "cannot serialise a raft error; the sender will see a plain network error");
            None
        }
    };
    (
        status,
        Json(ErrorBody {
            code: code.into(),
            message: e.to_string(),
            raft,
        }),
    )
        .into_response()
}

#[derive(Clone)]
struct RpcState {
    raft: Raft,
    genesis: Arc<Genesis>,
    faults: Arc<Faults>,
}

/// The peer-facing Raft router, state applied.
pub fn router(raft: Raft, genesis: Arc<Genesis>) -> Router {
    router_with_faults(raft, genesis, Faults::new(false))
}

/// The peer-facing Raft router, refusing senders cut off by a test-only
/// partition in `faults`.
pub fn router_with_faults(raft: Raft, genesis: Arc<Genesis>, faults: Arc<Faults>) -> Router {
    Router::new()
        .route(PATH_APPEND, post(append))
        .route(PATH_VOTE, post(vote))
        .route(PATH_SNAPSHOT, post(snapshot))
        .layer(DefaultBodyLimit::max(MAX_RPC_BODY))
        .with_state(RpcState {
            raft,
            genesis,
            faults,
        })
}

fn header<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, RpcError> {
    headers
        .get(name)
        .ok_or(RpcError::MissingHeader(name))?
        .to_str()
        .map_err(|_| RpcError::BadHeader(name))
}

/// Checks the three headers against genesis and the raw body, and returns
/// the authenticated sender.
pub fn authenticate(
    genesis: &Genesis,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    now_ms: u64,
) -> Result<u64, RpcError> {
    let node: u64 = header(headers, HEADER_NODE)?
        .parse()
        .map_err(|_| RpcError::BadHeader(HEADER_NODE))?;
    let ts: u64 = header(headers, HEADER_TS)?
        .parse()
        .map_err(|_| RpcError::BadHeader(HEADER_TS))?;
    let sig_hex = header(headers, HEADER_SIG)?;
    let raw = hex::decode(sig_hex).map_err(|_| RpcError::BadHeader(HEADER_SIG))?;
    let sig_bytes: [u8; 64] = raw
        .try_into()
        .map_err(|_| RpcError::BadHeader(HEADER_SIG))?;
    let sig = Signature::parse(sig_bytes).map_err(|_| RpcError::BadHeader(HEADER_SIG))?;
    let (_, decl) = genesis.node(node).ok_or(RpcError::UnknownNode(node))?;
    let skew_ms = now_ms.abs_diff(ts);
    if skew_ms > MAX_CLOCK_SKEW_MS {
        return Err(RpcError::Stale { skew_ms });
    }
    decl.key
        .verify(
            &signing_tag(genesis.chain_id.as_str()),
            &signing_message(path, ts, body),
            &sig,
        )
        .map_err(|_| RpcError::BadSignature(node))?;
    Ok(node)
}

/// Authenticates, decodes, and checks that the vote names the sender.
fn admit<T: serde::de::DeserializeOwned>(
    s: &RpcState,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    vote_of: impl Fn(&T) -> &Vote<u64>,
) -> Result<T, RpcError> {
    let sender = authenticate(&s.genesis, path, headers, body, crate::clock::now_ms())?;
    tracing::Span::current().record("from", sender);
    if s.faults.is_blocked(sender) {
        return Err(RpcError::Partitioned(sender));
    }
    let req: T = serde_json::from_slice(body).map_err(|e| RpcError::BadBody(e.to_string()))?;
    let claimed = vote_of(&req).leader_id.voted_for();
    if claimed != Some(sender) {
        return Err(RpcError::SenderMismatch { sender, claimed });
    }
    Ok(req)
}

#[tracing::instrument(skip_all, fields(from))]
async fn append(State(s): State<RpcState>, headers: HeaderMap, body: Bytes) -> Response {
    let req: AppendEntriesRequest<TypeConfig> = match admit(
        &s,
        PATH_APPEND,
        &headers,
        &body,
        |r: &AppendEntriesRequest<TypeConfig>| &r.vote,
    ) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match s.raft.append_entries(req).await {
        Ok(resp) => Json(resp).into_response(),
        Err(e) => raft_failure(e),
    }
}

#[tracing::instrument(skip_all, fields(from))]
async fn vote(State(s): State<RpcState>, headers: HeaderMap, body: Bytes) -> Response {
    let req: VoteRequest<u64> =
        match admit(&s, PATH_VOTE, &headers, &body, |r: &VoteRequest<u64>| {
            &r.vote
        }) {
            Ok(r) => r,
            Err(e) => return e.into_response(),
        };
    match s.raft.vote(req).await {
        Ok(resp) => Json(resp).into_response(),
        Err(e) => raft_failure(e),
    }
}

#[tracing::instrument(skip_all, fields(from))]
async fn snapshot(State(s): State<RpcState>, headers: HeaderMap, body: Bytes) -> Response {
    let req: InstallSnapshotRequest<TypeConfig> = match admit(
        &s,
        PATH_SNAPSHOT,
        &headers,
        &body,
        |r: &InstallSnapshotRequest<TypeConfig>| &r.vote,
    ) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match s.raft.install_snapshot(req).await {
        Ok(resp) => Json(resp).into_response(),
        Err(e) => raft_failure::<InstallSnapshotError>(e),
    }
}
