//! Transactions: submit a signed transaction and wait for its commit; read
//! a committed transaction with its inclusion proof and signed header.

use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rxchain_contracts::{Hash, InclusionProof, Outcome, SignedHeader, SignedTx, TxId};
use serde::Serialize;
use serde_json::json;

use super::{ApiError, ApiJson, AppState};
use crate::mempool::Receipt;

/// `POST /v1/tx`, `GET /v1/tx/{id}`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tx", post(submit))
        .route("/v1/tx/{id}", get(get_tx))
}

/// Turns a receipt into the submission's answer: 200 when applied, the
/// rule's 4xx (with the receipt) when the chain refused it.
pub fn receipt_response(r: Receipt) -> Response {
    match &r.outcome {
        Outcome::Applied => (StatusCode::OK, Json(r)).into_response(),
        Outcome::Refused { reason } => {
            ApiError::Refused(reason.clone(), Some(r.clone())).into_response()
        }
    }
}

/// The receipt of a committed transaction, read back from the chain.
pub fn committed_receipt(s: &AppState, id: &TxId) -> Result<Option<Receipt>, ApiError> {
    let Some((height, index)) = s.chain.tx_location(id)? else {
        return Ok(None);
    };
    let block = s
        .chain
        .block(height)?
        .ok_or_else(|| ApiError::internal(format!("tx index points at missing block {height}")))?;
    let outcome = block
        .outcomes
        .get(index as usize)
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("tx index points past block {height}")))?;
    Ok(Some(Receipt {
        tx_id: *id,
        height,
        index,
        block_hash: block.hash(s.genesis.chain_id.as_str()),
        outcome,
    }))
}

fn pending(id: &TxId) -> Response {
    let poll = format!("/v1/tx/{id}");
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, poll.clone())],
        Json(json!({"tx_id": id, "status": "pending", "poll": poll,
            "message": "The transaction is admitted but not yet committed; poll the URL for its receipt."})),
    )
        .into_response()
}

/// Submits a signed transaction and waits for the commit (not merely the
/// acknowledgement). Replays get the original outcome.
#[tracing::instrument(skip_all, fields(tx_id))]
async fn submit(
    State(s): State<AppState>,
    ApiJson(signed): ApiJson<SignedTx>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let id = signed.tx.id(s.genesis.chain_id.as_str());
    tracing::Span::current().record("tx_id", tracing::field::display(&id));
    if let Some(r) = committed_receipt(&s, &id)? {
        return Ok(receipt_response(r));
    }
    let leader = s.raft.metrics().borrow().current_leader;
    if leader != Some(s.node_id) {
        return forward(&s, leader, &signed).await;
    }
    let waiter = match s.mempool.subscribe(&id) {
        Some(w) => w,
        None => {
            // Signature checks are ~0.1 ms of CPU; done inline here, once per
            // transaction, since the mempool then remembers the verified form.
            let vtx = s.mempool.verify(signed)?;
            let w = s
                .mempool
                .admit(vtx)
                .map_err(|e| ApiError::NotCommitted(e.to_string()))?;
            // It may have been committed between the first check and admission.
            if let Some(r) = committed_receipt(&s, &id)? {
                s.mempool.remove(&id);
                return Ok(receipt_response(r));
            }
            w
        }
    };
    match tokio::time::timeout(Duration::from_millis(s.api.commit_wait_ms), waiter).await {
        Ok(Ok(receipt)) => {
            s.metrics.commit_latency.observe(started.elapsed().as_secs_f64());
            s.metrics.committed_txs.inc();
            Ok(receipt_response(receipt))
        }
        // The new leader may still commit the block this node proposed, so
        // the answer cannot promise "not committed"; a retry is idempotent
        // and returns the receipt if it did commit.
        Ok(Err(_closed)) => Err(ApiError::NotCommitted(
            "the node lost leadership before the transaction's commit was confirmed; retry (a retry is idempotent and returns the receipt if it did commit)".into(),
        )),
        Err(_elapsed) => Ok(pending(&id)),
    }
}

/// Sends the submission to the leader and relays its answer unchanged.
async fn forward(
    s: &AppState,
    leader: Option<u64>,
    signed: &SignedTx,
) -> Result<Response, ApiError> {
    let no_leader = || {
        ApiError::NotCommitted(
            "no Raft leader is reachable; the transaction was not committed, retry".into(),
        )
    };
    let leader = leader.ok_or_else(no_leader)?;
    if s.faults.is_blocked(leader) {
        // A test partition cuts this node off from the leader.
        return Err(no_leader());
    }
    let addr = {
        let m = s.raft.metrics().borrow().clone();
        m.membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
    }
    .ok_or_else(no_leader)?;
    let resp = s
        .client
        .post(format!("http://{addr}/v1/tx"))
        .json(signed)
        .timeout(Duration::from_millis(s.api.commit_wait_ms + 2_000))
        .send()
        .await
        .map_err(|e| {
            // Debug shows the cause (refused, reset, timed out), Display only the URL.
            tracing::warn!(error = ?e, leader, "forwarding to the leader failed");
            no_leader()
        })?;
    let status = StatusCode::from_u16(resp.status().as_u16()).map_err(ApiError::internal)?;
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.bytes().await.map_err(|_| no_leader())?;
    let mut out = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(l) = location.and_then(|l| l.parse().ok()) {
        out.headers_mut().insert(header::LOCATION, l);
    }
    Ok(out)
}

/// A committed transaction with everything needed to check it offline.
#[derive(Serialize)]
pub struct TxView {
    /// Where and how it committed.
    pub receipt: Receipt,
    /// The signed transaction.
    pub tx: SignedTx,
    /// Merkle paths to the header's roots.
    pub proof: InclusionProof,
    /// The proposer-signed header.
    pub header: SignedHeader,
}

#[tracing::instrument(skip(s))]
async fn get_tx(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = TxId(
        Hash::parse_hex(&id)
            .map_err(|_| ApiError::bad("bad_tx_id", "a transaction id is 64 hex characters"))?,
    );
    let Some((height, index)) = s.chain.tx_location(&id)? else {
        if s.mempool.contains(&id) {
            return Ok(pending(&id));
        }
        return Err(ApiError::not_found(
            "unknown_tx",
            "no committed or pending transaction has this id",
        ));
    };
    let block = s
        .chain
        .block(height)?
        .ok_or_else(|| ApiError::internal("tx index points at a missing block"))?;
    let chain_id = s.genesis.chain_id.as_str();
    let proof = block
        .proof(chain_id, index as usize)
        .ok_or_else(|| ApiError::internal("tx index out of range"))?;
    let tx = block.txs[index as usize].clone();
    let receipt = Receipt {
        tx_id: id,
        height,
        index,
        block_hash: block.hash(chain_id),
        outcome: proof.outcome.clone(),
    };
    Ok(Json(TxView {
        receipt,
        tx,
        proof,
        header: block.signed_header(),
    })
    .into_response())
}
