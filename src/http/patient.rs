//! The patient's endpoints. A patient has no account: the QR payload is the
//! credential. It arrives in the JSON body (the page reads it from the URL
//! fragment, which browsers never send), and it is never logged: every
//! handler here skips its arguments in tracing.
//!
//! A payload whose secret does not match the prescription's access key is
//! refused with 403 `wrong_secret` before anything is signed, so an
//! anonymous caller cannot fill the chain with refused transactions.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use rxchain_contracts::privacy::{self, ContentKey, PatientDetails};
use rxchain_contracts::state::PrescriptionRecord;
use rxchain_contracts::tx::CancelReason;
use rxchain_contracts::{rules, OrgId};
use serde::{Deserialize, Serialize};

use super::common::{blocking, no_store, parse_payload};
use super::error::ErrorBody;
use super::idempotency::{sign_once, HashedJson, IdempotencyKey, Signed};
use super::rx::{issue_body, load, view, PrescriptionView};
use super::tx::submitted_response;
use super::tx::Pending;
use super::{ApiError, ApiJson, AppState};
use crate::mempool::Receipt;
use crate::qr::QrPayload;
use crate::service::submit::submit;
use crate::txbuild;

/// `POST /v1/patient/open`, `/assign`, `/cancel`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/patient/open", post(open))
        .route("/v1/patient/assign", post(assign))
        .route("/v1/patient/cancel", post(cancel))
}

/// A request carrying only the payload.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct PayloadRequest {
    /// The QR payload, or the patient link holding it.
    pub payload: String,
}

/// The prescription's private part, as the patient sees it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ContentView {
    /// Who it is for.
    pub patient: PatientDetails,
    /// Dosage instructions per item.
    pub dosage: Vec<String>,
    /// Notes.
    pub notes: String,
}

/// A pharmacy the patient may choose.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PharmacyChoice {
    /// Organisation id.
    pub id: OrgId,
    /// Display name.
    pub name: String,
    /// Address.
    pub address: String,
}

/// What the patient page shows.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Opened {
    /// The public view with its history.
    pub prescription: PrescriptionView,
    /// The decrypted content.
    pub content: ContentView,
    /// Every pharmacy of the consortium.
    pub pharmacies: Vec<PharmacyChoice>,
}

fn wrong_secret() -> ApiError {
    ApiError::forbidden(
        "wrong_secret",
        "the code's secret does not match this prescription: the code is damaged or not the patient's",
    )
}

/// Parses the payload, loads the prescription and checks the secret.
/// Deriving the access key from the secret is one scalar multiplication:
/// done on a blocking thread with the storage read.
pub(super) async fn authorise(
    s: &AppState,
    text: &str,
) -> Result<(QrPayload, PrescriptionRecord), ApiError> {
    let payload = parse_payload(text)?;
    let st = s.clone();
    blocking(move || {
        let rec = load(&st, &payload.id)?;
        if !rec.secret_matches(&payload.secret) {
            return Err(wrong_secret());
        }
        Ok((payload, rec))
    })
    .await
}

/// The prescription's content key, opened with the QR secret.
pub(super) fn content_key(
    s: &AppState,
    payload: &QrPayload,
    rec: &PrescriptionRecord,
) -> Result<ContentKey, ApiError> {
    super::rx::check_not_erased(s, rec)?;
    let body = issue_body(s, rec)?;
    privacy::unwrap_with_secret(
        &payload.secret,
        &privacy::content_context(&payload.id),
        &body.key_for_patient,
    )
    .map(ContentKey::from_bytes)
    .map_err(|e| match e {
        privacy::PrivacyError::Erased => {
            super::rx::erased(super::rx::personal_data_erased_at(s, rec).unwrap_or(rec.issued_at))
        }
        // The secret matched the access key, so a wrap that does not open
        // was built wrongly by the prescriber's client.
        _ => ApiError::Unprocessable {
            code: "sealed_content_unreadable",
            message: "the prescription's sealed content cannot be opened with its code".into(),
        },
    })
}

#[utoipa::path(
    post, path = "/v1/patient/open", tag = "patient",
    request_body = PayloadRequest,
    responses(
        (status = 200, description = "The prescription with its opened content", body = Opened),
        (status = 400, description = "`bad_qr_payload`, `malformed_json`, `invalid_json`", body = ErrorBody),
        (status = 403, description = "`wrong_secret`", body = ErrorBody),
        (status = 404, description = "`unknown_prescription`", body = ErrorBody),
        (status = 410, description = "`personal_data_erased`: the retention period is over and the key wraps are erased", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = ErrorBody),
        (status = 422, description = "`sealed_content_unreadable`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(super) async fn open(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<PayloadRequest>,
) -> Result<Response, ApiError> {
    let (payload, rec) = authorise(&s, &req.payload).await?;
    let st = s.clone();
    let (content, prescription) = blocking(move || {
        let ck = content_key(&st, &payload, &rec)?;
        let body = issue_body(&st, &rec)?;
        let c = privacy::open_content(&payload.id, &body.sealed, &ck).map_err(|_| {
            ApiError::Unprocessable {
                code: "sealed_content_unreadable",
                message: "the prescription's sealed content cannot be opened with its code".into(),
            }
        })?;
        super::access::record(
            &st,
            &payload.id,
            crate::access_log::Reader::patient(),
            crate::access_log::Purpose::PatientOpen,
        )?;
        Ok((
            ContentView {
                patient: c.patient,
                dosage: c.dosage,
                notes: c.notes,
            },
            view(&st, rec)?,
        ))
    })
    .await?;
    let pharmacies = s
        .consortium()
        .orgs
        .iter()
        .filter(|o| s.consortium().is_pharmacy(&o.id))
        .map(|o| PharmacyChoice {
            id: o.id.clone(),
            name: o.name.to_string(),
            address: o.address.to_string(),
        })
        .collect();
    Ok(no_store(
        Json(Opened {
            prescription,
            content,
            pharmacies,
        })
        .into_response(),
    ))
}

/// Pickup or delivery.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Collect at the pharmacy.
    Pickup,
    /// Delivered by the pharmacy.
    Delivery,
}

/// The patient's choice.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct AssignRequest {
    /// The QR payload.
    pub payload: String,
    /// Pickup or delivery.
    pub mode: Mode,
    /// The pharmacy.
    pub pharmacy: OrgId,
    /// The delivery address (delivery only); sealed before it reaches the chain.
    #[serde(default)]
    pub address: Option<String>,
}

#[utoipa::path(
    post, path = "/v1/patient/assign", tag = "patient",
    request_body = AssignRequest,
    responses(
        (status = 200, description = "Committed and applied", body = Receipt),
        (status = 202, description = "Admitted; the commit is slow: poll `poll`", body = Pending),
        (status = 400, description = "`bad_qr_payload`, `malformed_json`, `invalid_json`, a delivery address check, `not_a_pharmacy`", body = ErrorBody),
        (status = 403, description = "`wrong_secret`, or a chain rule's refusal", body = ErrorBody),
        (status = 404, description = "`unknown_prescription`, `unknown_org`", body = ErrorBody),
        (status = 409, description = "Refused by a chain rule (state conflict)", body = ErrorBody),
        (status = 410, description = "Refused: the prescription expired", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = ErrorBody),
        (status = 422, description = "`sealed_content_unreadable`, or a chain rule's refusal", body = ErrorBody),
        (status = 503, description = "`not_committed`: nothing was committed; retry", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(super) async fn assign(
    State(s): State<AppState>,
    idem: IdempotencyKey,
    HashedJson(req, hash): HashedJson<AssignRequest>,
) -> Result<Response, ApiError> {
    super::common::need_pharmacy(&s.consortium(), &req.pharmacy)?;
    let address = match req.mode {
        Mode::Delivery => Some(
            rules::check_delivery_address(req.address.as_deref())
                .map_err(|e| ApiError::bad(e.code(), e.to_string()))?
                .to_string(),
        ),
        Mode::Pickup => None,
    };
    let (payload, rec) = authorise(&s, &req.payload).await?;
    // Scoped by the prescription, and only once its secret is proven.
    let idem = idem.for_patient(&payload.id, "assign", &hash);
    let st = s.clone();
    let pharmacy = req.pharmacy;
    // Hand-over wraps use ECDH: off the runtime.
    let signed = sign_once(&s, idem.as_ref(), || {
        blocking(move || {
            let built = match address {
                None => txbuild::assign_pickup(&st.consortium(), &payload, &pharmacy),
                Some(a) => {
                    let ck = content_key(&st, &payload, &rec)?;
                    txbuild::assign_delivery(&st.consortium(), &payload, &ck, &pharmacy, &a)
                }
            };
            let tx = built.map_err(|e| ApiError::not_found("unknown_org", e.to_string()))?;
            Ok(Signed { tx, secret: None })
        })
    })
    .await?;
    Ok(submitted_response(submit(&s, signed.tx).await?))
}

#[utoipa::path(
    post, path = "/v1/patient/cancel", tag = "patient",
    request_body = PayloadRequest,
    responses(
        (status = 200, description = "Committed and applied", body = Receipt),
        (status = 202, description = "Admitted; the commit is slow: poll `poll`", body = Pending),
        (status = 400, description = "`bad_qr_payload`, `malformed_json`, `invalid_json`, a delivery address check, `not_a_pharmacy`", body = ErrorBody),
        (status = 403, description = "`wrong_secret`, or a chain rule's refusal", body = ErrorBody),
        (status = 404, description = "`unknown_prescription`, `unknown_org`", body = ErrorBody),
        (status = 409, description = "Refused by a chain rule (state conflict)", body = ErrorBody),
        (status = 410, description = "Refused: the prescription expired", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = ErrorBody),
        (status = 422, description = "`sealed_content_unreadable`, or a chain rule's refusal", body = ErrorBody),
        (status = 503, description = "`not_committed`: nothing was committed; retry", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(super) async fn cancel(
    State(s): State<AppState>,
    idem: IdempotencyKey,
    HashedJson(req, hash): HashedJson<PayloadRequest>,
) -> Result<Response, ApiError> {
    let (payload, _) = authorise(&s, &req.payload).await?;
    let idem = idem.for_patient(&payload.id, "cancel", &hash);
    let signed = sign_once(&s, idem.as_ref(), || async {
        let tx = txbuild::cancel(
            &s.consortium(),
            &payload.secret.signing_key(),
            payload.id,
            CancelReason::PatientRequest,
        );
        Ok(Signed { tx, secret: None })
    })
    .await?;
    Ok(submitted_response(submit(&s, signed.tx).await?))
}
