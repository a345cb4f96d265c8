//! Transactions: submit a signed transaction (or a batch of them) and wait
//! for its commit; read a committed transaction with its inclusion proof,
//! signed header and quorum certificate.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rxchain_contracts::{Hash, InclusionProof, Outcome, QuorumCert, SignedHeader, SignedTx, TxId};
use serde::{Deserialize, Serialize};

use super::common::{forwarded_by_member, ClientAddr};
use super::error::{rejection_status, ErrorBody};
use super::{ApiError, ApiJson, ApiPath, AppState};
use crate::mempool::Receipt;
use crate::service::submit::{
    self as service, poll_url, BatchItem, BatchResponse, ItemStatus, Origin, SubmitError,
    Submitted, MAX_BATCH,
};

/// The content type of postcard batches.
pub const POSTCARD: &str = "application/x-postcard";

/// `POST /v1/tx`, `POST /v1/tx/batch` (bodies up to `batch_limit` bytes),
/// `GET /v1/tx/{id}`.
pub fn router(batch_limit: usize) -> Router<AppState> {
    Router::new()
        .route("/v1/tx", post(submit))
        .route(
            "/v1/tx/batch",
            post(submit_batch).layer(DefaultBodyLimit::max(batch_limit)),
        )
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

/// A JSON batch: `{"txs": [signed transaction, ...]}`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct BatchRequest {
    /// The signed transactions, each as `POST /v1/tx` takes it; at most
    /// 1000.
    #[schema(value_type = Vec<SignedTx>)]
    pub txs: Vec<serde_json::Value>,
}

/// Builders of batch answers from this layer's errors.
trait ItemFrom {
    fn new(index: usize, tx_id: Option<TxId>, status: ItemStatus, http_status: u16) -> Self;
    fn failed(index: usize, tx_id: Option<TxId>, e: &ApiError) -> Self;
    fn of(index: usize, tx_id: TxId, result: Result<Submitted, SubmitError>) -> Self;
}

impl ItemFrom for BatchItem {
    fn new(index: usize, tx_id: Option<TxId>, status: ItemStatus, http_status: u16) -> Self {
        BatchItem {
            index: index as u32,
            tx_id,
            status,
            http_status,
            code: None,
            message: None,
            receipt: None,
            poll: None,
        }
    }

    fn failed(index: usize, tx_id: Option<TxId>, e: &ApiError) -> Self {
        let status = match e {
            ApiError::NotAdmitted(_) | ApiError::Refused(..) => ItemStatus::Refused,
            _ => ItemStatus::Failed,
        };
        BatchItem {
            code: Some(e.code().to_string()),
            message: Some(e.to_string()),
            ..BatchItem::new(index, tx_id, status, e.status().as_u16())
        }
    }

    fn of(index: usize, tx_id: TxId, result: Result<Submitted, SubmitError>) -> Self {
        match result {
            Ok(Submitted::Committed(r)) => match &r.outcome {
                Outcome::Applied => BatchItem {
                    receipt: Some(r),
                    ..BatchItem::new(index, Some(tx_id), ItemStatus::Applied, 200)
                },
                Outcome::Refused { reason } => BatchItem {
                    code: Some(reason.code().to_string()),
                    message: Some(reason.to_string()),
                    receipt: Some(r.clone()),
                    ..BatchItem::new(
                        index,
                        Some(tx_id),
                        ItemStatus::Refused,
                        rejection_status(reason).as_u16(),
                    )
                },
            },
            Ok(Submitted::Pending(id)) => BatchItem {
                poll: Some(poll_url(&id)),
                ..BatchItem::new(index, Some(tx_id), ItemStatus::Pending, 202)
            },
            Ok(Submitted::Relayed(answer)) => {
                // The leader's own answer for this one transaction.
                let body: serde_json::Value =
                    serde_json::from_slice(&answer.body).unwrap_or_default();
                let status = if body["detail"].is_object() {
                    ItemStatus::Refused
                } else {
                    ItemStatus::Failed
                };
                BatchItem {
                    code: Some(body["code"].as_str().unwrap_or("relayed").to_string()),
                    message: Some(
                        body["message"]
                            .as_str()
                            .unwrap_or("the leader refused the transaction")
                            .to_string(),
                    ),
                    ..BatchItem::new(index, Some(tx_id), status, answer.status)
                }
            }
            Err(e) => BatchItem::failed(index, Some(tx_id), &ApiError::from(e)),
        }
    }
}

/// Decodes a batch body: JSON (`BatchRequest`) or postcard (a sequence of
/// byte strings, each one signed transaction in its canonical encoding).
/// A body that does not decode at all is an error; an item that does not
/// decode is that item's failure.
fn decode_batch(postcard: bool, body: &[u8]) -> Result<Vec<Result<SignedTx, ApiError>>, ApiError> {
    let items: Vec<Result<SignedTx, ApiError>> = if postcard {
        let raw: Vec<Vec<u8>> = rxchain_contracts::encoding::from_bytes(body).map_err(|e| {
            ApiError::bad(
                "malformed_batch",
                format!("the body is not a postcard sequence of transactions: {e}"),
            )
        })?;
        raw.iter()
            .map(|b| {
                rxchain_contracts::encoding::from_bytes::<SignedTx>(b).map_err(|e| {
                    ApiError::bad(
                        "malformed_transaction",
                        format!("this item is not a signed transaction in postcard: {e}"),
                    )
                })
            })
            .collect()
    } else {
        let req: BatchRequest = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) if e.is_data() => {
                return Err(ApiError::bad(
                    "invalid_json",
                    format!("the JSON does not fit: {e}; send {{\"txs\": [...]}}"),
                ))
            }
            Err(e) => {
                return Err(ApiError::bad(
                    "malformed_json",
                    format!("the body is not valid JSON: {e}"),
                ))
            }
        };
        req.txs
            .into_iter()
            .map(|v| {
                serde_path_to_error::deserialize::<_, SignedTx>(v).map_err(|e| {
                    ApiError::bad(
                        "invalid_json",
                        format!(
                            "this item does not fit a signed transaction at {}: {}",
                            e.path(),
                            e.inner()
                        ),
                    )
                })
            })
            .collect()
    };
    if items.is_empty() {
        return Err(ApiError::bad(
            "empty_batch",
            "the batch holds no transactions",
        ));
    }
    if items.len() > MAX_BATCH {
        return Err(ApiError::bad(
            "batch_too_large",
            format!(
                "the batch holds {} transactions; at most {MAX_BATCH} are taken at once",
                items.len()
            ),
        ));
    }
    Ok(items)
}

/// Submits many signed transactions in one request and answers every
/// one's outcome in one response, in request order. JSON
/// (`{"txs": [...]}`) or postcard (`Content-Type: application/x-postcard`:
/// a sequence of byte strings, each a signed transaction's canonical
/// encoding); the answer is in the request's encoding.
#[utoipa::path(
    post, path = "/v1/tx/batch", tag = "transactions",
    request_body(content(
        (BatchRequest = "application/json"),
        (Vec<Vec<u8>> = "application/x-postcard"),
    )),
    responses(
        (status = 200, description = "One answer per transaction, in order: `applied`, `refused` (with `code`), `pending` (poll `poll`) or `failed` (with `code`)", content(
            (BatchResponse = "application/json"),
            (Vec<u8> = "application/x-postcard"),
        )),
        (status = 400, description = "`malformed_json`, `invalid_json`, `malformed_batch`, `empty_batch`, `batch_too_large`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON or postcard", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(txs))]
pub(super) async fn submit_batch(
    State(s): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let postcard = match kind.as_deref() {
        Some(POSTCARD) => true,
        Some("application/json") => false,
        _ => {
            return Err(ApiError::UnsupportedMedia(format!(
                "send the batch as application/json or {POSTCARD}"
            )))
        }
    };
    let body = body.map_err(|e| {
        let text = e.body_text();
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE || text.contains("length limit") {
            ApiError::TooLarge {
                limit: s.api.batch_body_limit_bytes,
            }
        } else {
            ApiError::bad(
                "unreadable_body",
                format!("the request body could not be read: {text}"),
            )
        }
    })?;
    let items = decode_batch(postcard, &body)?;
    drop(body);
    tracing::Span::current().record("txs", items.len());
    let client = client.filter(|ip| !forwarded_by_member(&s, &headers, *ip));
    let origin = Origin { client };
    let chain_id = s.genesis.chain_id.as_str();
    let mut results: Vec<Option<BatchItem>> = vec![None; items.len()];
    let mut good = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Ok(tx) => good.push((i, tx)),
            Err(e) => results[i] = Some(BatchItem::failed(i, None, &e)),
        }
    }
    let ids: Vec<(usize, TxId)> = good.iter().map(|(i, t)| (*i, t.tx.id(chain_id))).collect();
    let answers =
        service::submit_batch(&s, good.into_iter().map(|(_, t)| t).collect(), origin).await;
    for ((i, id), answer) in ids.into_iter().zip(answers) {
        results[i] = Some(BatchItem::of(i, id, answer));
    }
    let results = BatchResponse {
        results: results.into_iter().flatten().collect(),
    };
    if postcard {
        let bytes = rxchain_contracts::encoding::to_bytes(&results);
        Ok(([(header::CONTENT_TYPE, POSTCARD)], bytes).into_response())
    } else {
        Ok(Json(results).into_response())
    }
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
