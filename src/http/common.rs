//! Small helpers every resource module shares: parsing path and query
//! parts into domain values, running blocking work off the runtime,
//! no-store responses, QR images, and signing and submitting on behalf of
//! a signed-in staff member.

use axum::http::header::CACHE_CONTROL;
use axum::http::HeaderValue;
use axum::response::Response;
use rxchain_contracts::{Genesis, OrgId, PrescriptionId, SecretKey, SignedTx};
use serde::Deserialize;

use super::session::Staff;
use super::tx::submitted_response;
use super::{ApiError, AppState};
use crate::qr::QrPayload;
use crate::service::submit::{submit, Submitted};

/// Pixels (PNG) or user units (SVG) per QR module: a version-4 code is
/// then 328 units wide with its quiet zone, sharp on screens and in print.
const QR_SCALE: u32 = 8;

/// Lists answer at most this many prescriptions unless `limit` says otherwise.
const DEFAULT_LIST: usize = 200;
/// The largest `limit` a list accepts.
const MAX_LIST: usize = 1000;

/// Signs a transaction as the signed-in staff member and submits it,
/// answering exactly what `POST /v1/tx` would: 200 with the receipt, the
/// rule's 4xx with the refusal (recorded on the chain), 202 while the
/// commit is slow, 503 when nothing was committed.
pub async fn sign_and_submit(
    s: &AppState,
    staff: &Staff,
    build: impl FnOnce(&Genesis, &SecretKey) -> SignedTx,
) -> Result<Response, ApiError> {
    Ok(submitted_response(
        sign_and_submit_raw(s, staff, build).await?,
    ))
}

/// Like [`sign_and_submit`], but hands back what became of the submission.
pub async fn sign_and_submit_raw(
    s: &AppState,
    staff: &Staff,
    build: impl FnOnce(&Genesis, &SecretKey) -> SignedTx,
) -> Result<Submitted, ApiError> {
    // One ECDSA signature is well under a millisecond: done inline, like
    // the signature check in `/v1/tx`.
    let key = staff.signing_key(s)?;
    let tx = build(&s.genesis, &key);
    tracing::info!(tx_id = %tx.tx.id(s.genesis.chain_id.as_str()), kind = tx.tx.body.kind(), "signed on behalf of staff");
    Ok(submit(s, tx).await?)
}

/// Standard base64 with padding, as `data:` URLs and `atob` expect.
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The QR code of `text` as an SVG document and a base64 PNG. Rendering is
/// CPU work, so it runs on a blocking thread.
pub async fn qr_images(text: String) -> Result<(String, String), ApiError> {
    tokio::task::spawn_blocking(move || {
        let svg = crate::qr::render_svg(&text, QR_SCALE).map_err(ApiError::internal)?;
        let png = crate::qr::render_png(&text, QR_SCALE).map_err(ApiError::internal)?;
        Ok((svg, base64(&png)))
    })
    .await
    .map_err(ApiError::internal)?
}

/// Parses a scanned or typed QR payload, or a patient link holding one.
pub fn parse_payload(text: &str) -> Result<QrPayload, ApiError> {
    QrPayload::parse_scanned(text).map_err(|e| ApiError::bad("bad_qr_payload", e.to_string()))
}

/// Checks that `org` is a member pharmacy, the contracts' rule for who may
/// be assigned, claim and dispense: 404 `unknown_org` for a stranger, 400
/// `not_a_pharmacy` for another kind of member.
pub fn need_pharmacy(g: &Genesis, org: &OrgId) -> Result<(), ApiError> {
    if g.is_pharmacy(org) {
        return Ok(());
    }
    match g.org(org) {
        None => Err(ApiError::not_found(
            "unknown_org",
            format!("{org} is not a consortium member"),
        )),
        Some(_) => Err(ApiError::bad(
            "not_a_pharmacy",
            format!("{org} is not a pharmacy"),
        )),
    }
}

/// Parses a prescription id from a path segment.
pub fn parse_id(id: &str) -> Result<PrescriptionId, ApiError> {
    PrescriptionId::parse(id).map_err(|_| {
        ApiError::bad(
            "bad_prescription_id",
            "a prescription id is 32 hex characters",
        )
    })
}

/// Marks a response as holding a secret or patient data: never cached.
pub fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Runs blocking work (storage scans, decryption) off the runtime.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

/// A list's size.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// At most this many, newest first.
    #[serde(default)]
    pub limit: Option<usize>,
}

pub fn list_limit(q: &ListQuery) -> Result<usize, ApiError> {
    match q.limit {
        None => Ok(DEFAULT_LIST),
        Some(n) if (1..=MAX_LIST).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad(
            "bad_limit",
            format!("limit is 1 to {MAX_LIST}"),
        )),
    }
}
