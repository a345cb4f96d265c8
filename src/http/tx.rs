//! Transactions: submit a signed transaction and wait for its commit; read
//! a committed transaction with its inclusion proof and signed header.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rxchain_contracts::{Hash, InclusionProof, Outcome, SignedHeader, SignedTx, TxId};
use serde::Serialize;
use serde_json::json;

use super::common::{forwarded_by_member, ClientAddr};
use super::{ApiError, ApiJson, AppState};
use crate::mempool::Receipt;
use crate::service::submit::{self as service, poll_url, Origin, Submitted};

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

/// The 202 answer for a transaction admitted but not yet committed.
pub fn pending(id: &TxId) -> Response {
    let poll = poll_url(id);
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, poll.clone())],
        Json(json!({"tx_id": id, "status": "pending", "poll": poll,
            "message": "The transaction is admitted but not yet committed; poll the URL for its receipt."})),
    )
        .into_response()
}

/// The answer to a submission, whatever became of it.
pub fn submitted_response(s: Submitted) -> Response {
    match s {
        Submitted::Committed(r) => receipt_response(r),
        Submitted::Pending(id) => pending(&id),
        Submitted::Relayed(r) => ApiError::Relayed(r).into_response(),
    }
}

/// Submits a signed transaction and waits for the commit (not merely the
/// acknowledgement). Replays get the original outcome.
#[tracing::instrument(skip_all)]
async fn submit(
    State(s): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    ApiJson(signed): ApiJson<SignedTx>,
) -> Result<Response, ApiError> {
    let client = client.filter(|ip| !forwarded_by_member(&s, &headers, *ip));
    let origin = Origin { client };
    Ok(submitted_response(
        service::submit_from(&s, signed, origin).await?,
    ))
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
