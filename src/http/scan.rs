//! The scan verdict: given a QR payload (typed, scanned or photographed),
//! is the prescription genuine and unmodified, and can this pharmacy claim
//! it now? The verdict reads committed state through a linearizable read,
//! and uses the contracts' own rule ([`claimable_by`]) so the verdict and
//! the chain can never disagree.
//!
//! A photo upload takes one of a few decode permits before its body is
//! read, so uploads waiting for a permit hold a connection but none of their
//! bytes; a `Content-Length` above the image limit is refused at once.

use axum::body::{Bytes, HttpBody};
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::routing::post;
use axum::{Json, Router};
use rxchain_contracts::lifecycle::claimable_by;
use rxchain_contracts::state::PublicStatus;
use rxchain_contracts::{OrgId, Rejection};
use serde::{Deserialize, Serialize};

use super::error::ErrorBody;
use super::rx::{load, view, PrescriptionView};
use super::{ApiError, ApiJson, ApiQuery, AppState};
use crate::clock::now;
use crate::qr::{DecodeLimits, QrPayload};

/// `POST /v1/scan`, `POST /v1/scan/image`.
pub fn router(image_limit: usize) -> Router<AppState> {
    Router::new().route("/v1/scan", post(scan_text)).route(
        "/v1/scan/image",
        post(scan_image).layer(DefaultBodyLimit::max(image_limit)),
    )
}

/// A scan of typed or scanned text.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ScanRequest {
    /// The QR payload text, e.g. `RX1:…`.
    pub payload: String,
    /// The pharmacy asking.
    pub pharmacy: OrgId,
}

/// Query of an image scan.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScanImageQuery {
    /// The pharmacy asking.
    pub pharmacy: OrgId,
}

/// The verdict card.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Verdict {
    /// "green" (claimable here, now) or "red".
    #[schema(value_type = String, example = "green")]
    pub verdict: &'static str,
    /// `claimable`, `already_claimed_here`, or the refusal code.
    pub code: String,
    /// A sentence for the pharmacist.
    pub message: String,
    /// The decoded payload, echoed so the client can claim with it.
    pub payload: String,
    /// Whether the QR secret matches the access key on the chain.
    pub secret_ok: bool,
    /// The prescription as the chain has it (who signed it and when).
    pub prescription: PrescriptionView,
    /// The chain height the verdict was read at: the state is that of this
    /// block or a later one. Pages show it so that an old card is noticed.
    pub height: u64,
    /// When the node read the state (its clock, ms since the epoch).
    pub read_at: rxchain_contracts::Timestamp,
}

/// Computes the verdict for a payload text.
pub async fn verdict(s: &AppState, payload: &str, pharmacy: &OrgId) -> Result<Verdict, ApiError> {
    super::common::need_pharmacy(&s.consortium(), pharmacy)?;
    let qr =
        QrPayload::parse(payload).map_err(|e| ApiError::bad("bad_qr_payload", e.to_string()))?;
    // A verdict that decides a dispense must not be stale: confirm this
    // node's state is current with the leader before reading it.
    // On a follower this asks the leader for a read index and waits for it.
    super::cluster::linearizable_read(s).await?;
    // The tip before the read: the state read is at least this new.
    let height = s.chain.tip().height;
    let rec = load(s, &qr.id)?;
    let secret_ok = rec.secret_matches(&qr.secret);
    let now = now();
    let (verdict, code, message) = if !secret_ok {
        let r = Rejection::WrongSecret {
            attempts: rec.wrong_proofs + 1,
        };
        ("red", r.code().to_string(), "The QR code's secret does not match this prescription: the code is forged or damaged. Do not dispense.".to_string())
    } else {
        match claimable_by(&rec, pharmacy, now) {
            Ok(()) => (
                "green",
                "claimable".to_string(),
                "Genuine and unmodified; this pharmacy may claim it now.".to_string(),
            ),
            Err(Rejection::AlreadyClaimed) => {
                let partly = rec.public_status(now) == PublicStatus::PartiallyDispensed;
                let msg = if partly {
                    "This pharmacy holds the claim; part has been dispensed and the rest may be dispensed here."
                } else {
                    "This pharmacy already holds the claim; it may dispense now."
                };
                ("green", "already_claimed_here".to_string(), msg.to_string())
            }
            Err(r) => ("red", r.code().to_string(), r.to_string()),
        }
    };
    Ok(Verdict {
        verdict,
        code,
        message,
        payload: qr.encode(),
        secret_ok,
        prescription: view(s, rec)?,
        height,
        read_at: now,
    })
}

/// The verdict for a typed or scanned payload.
#[utoipa::path(
    post, path = "/v1/scan", tag = "scan",
    request_body = ScanRequest,
    responses(
        (status = 200, description = "The verdict (green or red)", body = Verdict),
        (status = 400, description = "`bad_qr_payload`, `not_a_pharmacy`, `malformed_json`, `invalid_json`", body = ErrorBody),
        (status = 404, description = "`unknown_org`, `unknown_prescription`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = ErrorBody),
        (status = 503, description = "`not_committed`: this node cannot confirm it has the latest state", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(pharmacy = %req.pharmacy))]
pub(super) async fn scan_text(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<ScanRequest>,
) -> Result<Json<Verdict>, ApiError> {
    Ok(Json(verdict(&s, &req.payload, &req.pharmacy).await?))
}

/// Image decoding is heavy CPU work and a 40-megapixel photo holds about
/// 200 MB while it decodes: only this many decode at once, so a burst of
/// uploads cannot exhaust memory.
const DECODE_PERMITS: usize = 2;

/// The verdict for a photo of a QR code (PNG or JPEG bytes as the body).
#[utoipa::path(
    post, path = "/v1/scan/image", tag = "scan",
    params(ScanImageQuery),
    request_body(content = Vec<u8>, description = "The photo's bytes", content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "The verdict (green or red)", body = Verdict),
        (status = 400, description = "`bad_query`, `empty_body`, `unreadable_body`, `bad_qr_payload`, `not_a_pharmacy`", body = ErrorBody),
        (status = 404, description = "`unknown_org`, `unknown_prescription`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 422, description = "The photo holds no readable QR code, or is not an image", body = ErrorBody),
        (status = 503, description = "`not_committed`: this node cannot confirm it has the latest state", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(pharmacy = %q.pharmacy))]
pub(super) async fn scan_image(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ScanImageQuery>,
    request: Request,
) -> Result<Json<Verdict>, ApiError> {
    let limit = s.api.image_limit_bytes;
    // Refuse what the headers already give away before waiting for a
    // permit: hyper takes the size hint from `Content-Length`.
    let declared = request.body().size_hint();
    if declared.lower() > limit as u64 {
        return Err(ApiError::TooLarge { limit });
    }
    if declared.upper() == Some(0) {
        return Err(empty_body());
    }
    // Wait for a permit before buffering, so the uploads waiting hold a
    // connection each but none of their bytes.
    static DECODERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(DECODE_PERMITS);
    let _permit = DECODERS.acquire().await.map_err(ApiError::internal)?;
    // The route's DefaultBodyLimit still bounds this read.
    let body = Bytes::from_request(request, &s)
        .await
        .map_err(|e| super::error::body_rejection(e, limit))?;
    if body.is_empty() {
        return Err(empty_body());
    }
    // Keep the decoding off the runtime's workers.
    let text = tokio::task::spawn_blocking(move || {
        crate::qr::decode_image(&body, &DecodeLimits::default())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::Unprocessable {
        code: e.code(),
        message: e.to_string(),
    })?;
    Ok(Json(verdict(&s, &text, &q.pharmacy).await?))
}

fn empty_body() -> ApiError {
    ApiError::bad(
        "empty_body",
        "send the photo's bytes (PNG or JPEG) as the request body",
    )
}
