//! Transactions: submit a signed transaction and wait for its commit; read
//! a committed transaction with its inclusion proof, signed header and
//! quorum certificate.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rxchain_contracts::{Hash, InclusionProof, Outcome, QuorumCert, SignedHeader, SignedTx, TxId};
use serde::Serialize;

use super::common::{forwarded_by_member, ClientAddr};
use super::error::ErrorBody;
use super::{ApiError, ApiJson, ApiPath, AppState};
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

/// The body of a 202: admitted, not yet committed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Pending {
    /// The transaction id.
    pub tx_id: TxId,
    /// Always `pending`.
    #[schema(value_type = String, example = "pending")]
    pub status: &'static str,
    /// Where to poll for the receipt (also in `Location`).
    pub poll: String,
    /// A sentence for people.
    pub message: &'static str,
}

/// The 202 answer for a transaction admitted but not yet committed.
pub fn pending(id: &TxId) -> Response {
    let poll = poll_url(id);
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, poll.clone())],
        Json(Pending {
            tx_id: *id,
            status: "pending",
            poll,
            message:
                "The transaction is admitted but not yet committed; poll the URL for its receipt.",
        }),
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
#[utoipa::path(
    post, path = "/v1/tx", tag = "transactions",
    request_body = SignedTx,
    responses(
        (status = 200, description = "Committed and applied", body = Receipt),
        (status = 202, description = "Admitted; the commit is slow: poll `poll`", body = Pending),
        (status = 400, description = "`malformed_json`, `invalid_json`, `bad_signature`, `invalid_transaction`", body = ErrorBody),
        (status = 403, description = "Refused by a chain rule (signer, role, secret); `detail` and `receipt` say which", body = ErrorBody),
        (status = 404, description = "Refused by a chain rule (unknown prescription, staff or org)", body = ErrorBody),
        (status = 409, description = "Refused by a chain rule (state conflict)", body = ErrorBody),
        (status = 410, description = "Refused: the prescription expired", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = ErrorBody),
        (status = 422, description = "Refused by a chain rule (validity, items, keys)", body = ErrorBody),
        (status = 503, description = "`not_committed`: nothing was committed; retry", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(super) async fn submit(
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
#[derive(Serialize, utoipa::ToSchema)]
pub struct TxView {
    /// Where and how it committed.
    pub receipt: Receipt,
    /// The signed transaction.
    pub tx: SignedTx,
    /// Merkle paths to the header's roots.
    pub proof: InclusionProof,
    /// The proposer-signed header.
    pub header: SignedHeader,
    /// Votes from a majority of the consortium's declared nodes that they
    /// applied this block; `null` until this node has collected them.
    /// `rxchain receipt verify` checks the whole answer offline.
    pub certificate: Option<QuorumCert>,
}

/// A committed transaction with its inclusion proof, signed header and
/// quorum certificate (`null` until complete), or 202 while it is only in
/// the mempool.
#[utoipa::path(
    get, path = "/v1/tx/{id}", tag = "transactions",
    params(("id" = String, Path, description = "Transaction id, 64 hex characters")),
    responses(
        (status = 200, description = "Committed", body = TxView),
        (status = 202, description = "Admitted, not yet committed", body = Pending),
        (status = 400, description = "`bad_tx_id`", body = ErrorBody),
        (status = 404, description = "`unknown_tx`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip(s))]
pub(super) async fn get_tx(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
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
        certificate: s.chain.cert(height)?,
    })
    .into_response())
}
