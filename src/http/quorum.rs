//! The peer-only routes of quorum certificates and the bounded clock:
//! `POST /raft/clock` and `POST /raft/cert-vote` (see [`crate::quorum`]).
//!
//! Both are authenticated exactly like the Raft RPCs
//! ([`crate::raft::rpc::precheck`], then the signature over the body), and
//! their bodies are small, so they are read whole up to [`MAX_BODY`] (a
//! longer one fails to read, as `unreadable_body`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};

use crate::quorum::{Quorum, VoteError, VoteMsg, PATH_CERT_VOTE, PATH_CLOCK};
use crate::raft::nonces::Nonces;
use crate::raft::rpc::{self, ErrorBody, RpcError};
use crate::raft::Faults;

/// The largest body either route reads.
pub const MAX_BODY: usize = 16 * 1024;

#[derive(Clone)]
struct QState {
    quorum: Arc<Quorum>,
    faults: Arc<Faults>,
    /// Nonces accepted on these routes, per sending node, for the replay
    /// window (the signed path keeps them apart from `/raft/*`'s).
    nonces: Arc<Nonces<u64>>,
}

/// The two routes, for peers only.
pub fn router(quorum: Arc<Quorum>, faults: Arc<Faults>) -> Router {
    Router::new()
        .route(PATH_CLOCK, post(clock))
        .route(PATH_CERT_VOTE, post(cert_vote))
        .with_state(QState {
            quorum,
            faults,
            nonces: Arc::new(Nonces::new(rpc::NONCE_CAP_PER_SIGNER)),
        })
}

/// Authenticates a request and returns the sender and the body.
async fn admit(
    s: &QState,
    path: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(u64, axum::body::Bytes), RpcError> {
    let genesis = s.quorum.consortium();
    let genesis = genesis.as_ref();
    let this = s.quorum.node_id();
    let claim = rpc::precheck(genesis, this, &s.nonces, headers, crate::clock::now_ms())?;
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(RpcError::Unreadable)?;
    let sender = claim.admit(genesis, &s.nonces, path, &bytes, crate::clock::now_ms())?;
    if s.faults.is_blocked(sender) {
        return Err(RpcError::Partitioned(sender));
    }
    Ok((sender, bytes))
}

/// This node's signed clock attestation.
async fn clock(State(s): State<QState>, headers: HeaderMap, body: Body) -> Response {
    match admit(&s, PATH_CLOCK, &headers, body).await {
        Ok(_) => Json(s.quorum.attest()).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Takes a peer's certificate vote; answers with this node's own vote for
/// the same height, or `null` when it has not applied that block yet.
async fn cert_vote(State(s): State<QState>, headers: HeaderMap, body: Body) -> Response {
    let (sender, bytes) = match admit(&s, PATH_CERT_VOTE, &headers, body).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let msg: VoteMsg = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => return RpcError::BadBody(e.into()).into_response(),
    };
    let q = s.quorum.clone();
    match tokio::task::spawn_blocking(move || q.receive(sender, msg)).await {
        Ok(Ok(own)) => Json(own).into_response(),
        Ok(Err(e)) => refused(e),
        Err(e) => {
            tracing::error!(error = %e, "vote task failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(ErrorBody {
                    code: "internal".into(),
                    message: "the vote could not be processed".into(),
                    raft: None,
                }),
            )
                .into_response()
        }
    }
}

fn refused(e: VoteError) -> Response {
    let (status, code) = match &e {
        VoteError::NotSender { .. } => (StatusCode::FORBIDDEN, "sender_mismatch"),
        VoteError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "bad_vote"),
        VoteError::OtherBlock(_) => (StatusCode::CONFLICT, "other_block"),
        VoteError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "storage"),
    };
    tracing::warn!(error = %e, "certificate vote refused");
    (
        status,
        Json(ErrorBody {
            code: code.into(),
            message: e.to_string(),
            raft: None,
        }),
    )
        .into_response()
}
