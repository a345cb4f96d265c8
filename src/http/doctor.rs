//! The doctor's endpoints, signed on the server: issue a prescription,
//! list one's own prescriptions, cancel one.
//!
//! A signed-in staff member never handles a key: the node opens their
//! signing key from its key store ([`crate::accounts`]), builds the
//! transaction with [`crate::txbuild`], signs it as them, and submits it
//! through the same submission service external clients reach through
//! `/v1/tx` ([`crate::service::submit`]), so forwarding to the leader,
//! waiting for the commit, replays and refusals behave identically. The
//! chain still names the individual signer.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use rxchain_contracts::privacy::{self, ContentKey, PatientDetails, PrivateContent, WrappedKey};
use rxchain_contracts::state::PublicStatus;
use rxchain_contracts::tx::{CancelReason, Item, Role, TxBody};
use rxchain_contracts::{rules, ControlledList, Genesis, PrescriptionId, SecretKey, Timestamp};
use serde::{Deserialize, Serialize};

use super::common::{
    blocking, list_limit, no_store, opened, parse_id, qr_images, sign_and_submit, ListQuery,
};
use super::error::ErrorBody;
use super::idempotency::{sign_once, HashedJson, IdempotencyKey, Signed};
use super::session::{Staff, StaffCsrf};
use super::tx::receipt_response;
use super::tx::Pending;
use super::{ApiError, ApiPath, ApiQuery, AppState};
use crate::access_log::Purpose;
use crate::clock::now;
use crate::mempool::Receipt;
use crate::qr::QrPayload;
use crate::service::submit::{poll_url, submit, Submitted};
use crate::txbuild::{self, IssueInput};

/// The doctor's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/staff/prescriptions", post(issue).get(my_prescriptions))
        .route("/v1/staff/prescriptions/{id}/cancel", post(cancel))
}

/// What the prescription form sends.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct IssueRequest {
    /// The drugs.
    pub items: Vec<Item>,
    /// Dosage instructions, one per item.
    pub dosage: Vec<String>,
    /// Repeat fills after the first.
    #[serde(default)]
    pub repeats: u8,
    /// Validity in days from now; the chain's default for the kind when absent.
    #[serde(default)]
    pub valid_days: Option<u32>,
    /// Who the prescription is for; sealed, never on the chain in plaintext.
    pub patient: PatientDetails,
    /// Notes for the pharmacist; sealed.
    #[serde(default)]
    pub notes: Option<String>,
    /// E-mail the QR code to `patient.email` once the issue is committed
    /// (the issuing node sends it; the address never leaves that node).
    #[serde(default)]
    pub email_code: bool,
    /// The language of the patient's e-mail (`en`, `zh`); the node's
    /// `email.default_lang` when absent.
    #[serde(default)]
    pub lang: Option<crate::email::Lang>,
}

/// The answer to an issue. `payload` carries the access secret: shown to
/// the doctor once, for the patient.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Issued {
    /// The prescription id.
    pub id: PrescriptionId,
    /// The short id printed on slips.
    pub short_id: String,
    /// Where it was committed; `null` while the commit is pending.
    pub receipt: Option<Receipt>,
    /// Where to poll for the receipt while it is pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poll: Option<String>,
    /// The QR payload text.
    pub payload: String,
    /// The patient page link, relative to this node: `/patient/#RX1:…`.
    pub patient_link: String,
    /// The QR code as SVG.
    pub qr_svg: String,
    /// The QR code as a base64 PNG.
    pub qr_png_base64: String,
    /// End of validity (ms).
    pub valid_until: Timestamp,
}

/// Checks the form beyond its JSON shape with the contracts' rule, one
/// sentence per problem.
fn check_issue(g: &Genesis, list: &ControlledList, r: &IssueRequest) -> Result<(), ApiError> {
    let form = rules::IssueForm {
        items: &r.items,
        dosage: &r.dosage,
        repeats: r.repeats,
        valid_days: r.valid_days,
        patient: &r.patient,
        notes: r.notes.as_deref(),
    };
    rules::check_issue_form(&g.params, list, &form)
        .map_err(|e| ApiError::bad(e.code(), e.to_string()))
}

/// Issues a prescription signed by the doctor, sealed for the patient's QR
/// code, the hospital and the regulators.
#[utoipa::path(
    post, path = "/v1/staff/prescriptions", tag = "doctor",
    params(("x-csrf-token" = String, Header, description = "The session's CSRF token")),
    request_body = IssueRequest,
    responses(
        (status = 200, description = "Issued and committed; the payload is shown once", body = Issued),
        (status = 202, description = "Issued, the commit is slow: `receipt` is null, poll `poll`", body = Issued),
        (status = 400, description = "A malformed request (`malformed_json`, `invalid_json`, a form or line check)", body = ErrorBody),
        (status = 401, description = "`no_session`", body = ErrorBody),
        (status = 403, description = "`csrf_missing`, `csrf_mismatch`, `wrong_role`, `wrong_org`, or a chain rule's refusal", body = ErrorBody),
        (status = 404, description = "Unknown prescription or organisation", body = ErrorBody),
        (status = 409, description = "Refused by a chain rule (state conflict)", body = ErrorBody),
        (status = 410, description = "Refused: the prescription expired", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = ErrorBody),
        (status = 422, description = "Refused by a chain rule (validity, items)", body = ErrorBody),
        (status = 503, description = "`not_committed`: nothing was committed; retry", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = %staff.0.account().username))]
pub(super) async fn issue(
    State(s): State<AppState>,
    staff: StaffCsrf,
    idem: IdempotencyKey,
    HashedJson(req, hash): HashedJson<IssueRequest>,
) -> Result<Response, ApiError> {
    let staff = staff.0;
    staff.require(&[Role::Practitioner], "issue prescriptions")?;
    // The chain's controlled list decides what is controlled: the form's
    // flags must agree with it, as the chain will insist.
    let list =
        ControlledList::current(&s.consortium(), &s.chain.state()).map_err(ApiError::internal)?;
    check_issue(&s.consortium(), &list, &req)?;
    let email = req
        .patient
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_string);
    if req.email_code && email.is_none() {
        return Err(ApiError::bad(
            "bad_patient",
            "the patient's e-mail address is needed to e-mail the code",
        ));
    }
    let email_code = req.email_code;
    let lang = req
        .lang
        .unwrap_or_else(|| crate::email::Lang::parse_or_en(&s.outbox.settings().default_lang));
    let idem = idem.for_staff(&staff, "issue", "", &hash);
    // A retry with the key answers the prescription signed the first time;
    // its QR payload (the access secret) is kept sealed for the key's TTL,
    // since without it the doctor could never hand the code over.
    let signed = sign_once(&s, idem.as_ref(), || build_issue(&s, &staff, req)).await?;
    let text = signed
        .secret
        .map(String::from_utf8)
        .transpose()
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal("an issue was signed without its payload"))?;
    let payload = QrPayload::parse(&text).map_err(ApiError::internal)?;
    if let Some(email) = email {
        // Left for the apply of the issue's block, which turns it into the
        // patient's contact (and the QR mail) in the block's own batch.
        let pending = crate::email::PendingIssue {
            email,
            lang,
            qr_payload: email_code.then(|| text.clone()),
        };
        let (outbox, id) = (s.outbox.clone(), payload.id);
        blocking(move || {
            outbox
                .expect_issue(&id, &pending)
                .map_err(ApiError::internal)
        })
        .await?;
    }
    let TxBody::Issue(body) = &signed.tx.tx.body else {
        return Err(ApiError::internal("txbuild::issue built another kind"));
    };
    let valid_until = rules::valid_until(
        &s.consortium().params,
        rules::is_controlled(&list, &body.items),
        body.valid_from,
        body.valid_until,
    );
    let (receipt, poll, status) = match submit(&s, signed.tx).await? {
        Submitted::Committed(r) if r.outcome.is_applied() => (Some(r), None, StatusCode::OK),
        // Refused by a chain rule: the refusal, with its receipt.
        Submitted::Committed(r) => return Ok(receipt_response(r)),
        // The secret must reach the doctor even when the commit is slow,
        // or the prescription could never be used.
        Submitted::Pending(id) => (None, Some(poll_url(&id)), StatusCode::ACCEPTED),
        Submitted::Relayed(r) => return Err(ApiError::Relayed(r)),
    };
    let (qr_svg, qr_png_base64) = qr_images(text.clone()).await?;
    let answer = Issued {
        id: payload.id,
        short_id: payload.id.short(),
        receipt,
        poll,
        patient_link: payload.patient_link(""),
        payload: text,
        qr_svg,
        qr_png_base64,
        valid_until,
    };
    Ok(no_store((status, Json(answer)).into_response()))
}

/// Builds and signs an issue, keeping its QR payload text as the secret.
async fn build_issue(s: &AppState, staff: &Staff, req: IssueRequest) -> Result<Signed, ApiError> {
    let key = staff.signing_key(s)?;
    let genesis = s.consortium();
    let hospital = staff.org().clone();
    let input = IssueInput {
        hospital,
        items: req.items,
        repeats: req.repeats,
        valid_from: None,
        valid_until: req.valid_days.map(|d| now().plus_days(d)),
        content: PrivateContent {
            patient: PatientDetails {
                name: req.patient.name.trim().to_string(),
                birth_date: req.patient.birth_date,
                identifier: req.patient.identifier.trim().to_string(),
                email: req
                    .patient
                    .email
                    .map(|e| e.trim().to_string())
                    .filter(|e| !e.is_empty()),
            },
            dosage: req.dosage.iter().map(|d| d.trim().to_string()).collect(),
            notes: req.notes.unwrap_or_default().trim().to_string(),
        },
    };
    // Sealing wraps the content key by ECDH for the hospital and every
    // regulator: several scalar multiplications, so off the runtime.
    let new = tokio::task::spawn_blocking(move || txbuild::issue(&genesis, &key, input))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::bad("unknown_org", e.to_string()))?;
    tracing::info!(tx_id = %new.tx.tx.id(s.genesis.chain_id.as_str()), id = %new.payload.id, "issue signed on behalf of staff");
    Ok(Signed {
        tx: new.tx,
        secret: Some(new.payload.encode().into_bytes()),
    })
}

/// One of the doctor's prescriptions.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MyPrescription {
    /// Id.
    pub id: PrescriptionId,
    /// Short id.
    pub short_id: String,
    /// Status now.
    pub public_status: PublicStatus,
    /// Block time of issue.
    pub issued_at: Timestamp,
    /// End of validity.
    pub valid_until: Timestamp,
    /// The drugs.
    pub items: Vec<Item>,
    /// The patient's name, opened with the hospital's data key; the short
    /// id when this node does not hold that key.
    pub patient_name: String,
}

/// Opens a prescription's content key from a wrap for `key`'s holder.
fn content_with_key(id: &PrescriptionId, wrap: &WrappedKey, key: &SecretKey) -> Option<ContentKey> {
    opened(
        "hospital's content key",
        id,
        privacy::unwrap_with_key(key, &privacy::content_context(id), wrap),
    )
    .map(ContentKey::from_bytes)
}

/// The signed-in doctor's prescriptions, newest first, with patient names.
#[utoipa::path(
    get, path = "/v1/staff/prescriptions", tag = "doctor",
    params(ListQuery),
    responses(
        (status = 200, description = "Newest first", body = Vec<MyPrescription>),
        (status = 400, description = "`bad_query`, `bad_limit`", body = ErrorBody),
        (status = 401, description = "`no_session`", body = ErrorBody),
        (status = 403, description = "`wrong_role`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = %staff.account().username))]
pub(super) async fn my_prescriptions(
    State(s): State<AppState>,
    staff: Staff,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<MyPrescription>>, ApiError> {
    staff.require(&[Role::Practitioner], "list a prescriber's prescriptions")?;
    let limit = list_limit(&q)?;
    // The current key and every key rotated away: all the doctor's own.
    let keys = s.accounts.keys_of(&staff.account().username)?;
    let org = staff.org().clone();
    let data_key = s.accounts.data_key(&org);
    let reader = super::access::staff_reader(staff.account());
    let st = s.clone();
    // Index scans and one ECDH per row: blocking work.
    let rows = blocking(move || {
        let mut recs = Vec::new();
        for me in &keys {
            for id in st.chain.by_prescriber(me)? {
                if let Some(r) = st.chain.prescription(&id)? {
                    recs.push(r);
                }
            }
        }
        recs.sort_by(|a, b| b.issued_at.cmp(&a.issued_at));
        recs.truncate(limit);
        let t = now();
        let mut out = Vec::with_capacity(recs.len());
        let mut reads = Vec::new();
        for rec in recs {
            // The hospital's wrap opens with the hospital's data key only;
            // a prescription from the doctor's earlier employer stays sealed.
            // Past retention the name is gone, whether or not this node's
            // sweep erased the wrap yet.
            let erased = super::rx::personal_data_erased_at(&st, &rec).is_some();
            let name = match &data_key {
                Some(k) if rec.hospital == org && !erased => {
                    let body = super::rx::issue_body(&st, &rec)?;
                    content_with_key(&rec.id, &body.key_for_hospital, k)
                        .and_then(|ck| {
                            opened(
                                "sealed content",
                                &rec.id,
                                privacy::open_content(&rec.id, &body.sealed, &ck),
                            )
                        })
                        .map(|c| c.patient.name)
                }
                _ => None,
            };
            if name.is_some() {
                reads.push((rec.id, reader.clone(), Purpose::StaffList));
            }
            out.push(MyPrescription {
                id: rec.id,
                short_id: rec.id.short(),
                public_status: rec.public_status(t),
                issued_at: rec.issued_at,
                valid_until: rec.valid_until,
                patient_name: name.unwrap_or_else(|| rec.id.short()),
                items: rec.items,
            });
        }
        // Recorded (and flushed) before the list is answered.
        super::access::record_all(&st, reads)?;
        Ok(out)
    })
    .await?;
    Ok(Json(rows))
}

/// A cancellation by the prescriber.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct CancelRequest {
    /// Why; `prescriber_error` when absent.
    #[serde(default)]
    pub reason: Option<CancelReason>,
}

#[utoipa::path(
    post, path = "/v1/staff/prescriptions/{id}/cancel", tag = "doctor",
    params(
        ("id" = String, Path, description = "Prescription id, 32 hex characters"),
        ("x-csrf-token" = String, Header, description = "The session's CSRF token"),
    ),
    request_body = CancelRequest,
    responses(
        (status = 200, description = "Committed and applied", body = Receipt),
        (status = 202, description = "Admitted; the commit is slow: poll `poll`", body = Pending),
        (status = 400, description = "A malformed request (`malformed_json`, `invalid_json`, a form or line check)", body = ErrorBody),
        (status = 401, description = "`no_session`", body = ErrorBody),
        (status = 403, description = "`csrf_missing`, `csrf_mismatch`, `wrong_role`, `wrong_org`, or a chain rule's refusal", body = ErrorBody),
        (status = 404, description = "Unknown prescription or organisation", body = ErrorBody),
        (status = 409, description = "Refused by a chain rule (state conflict)", body = ErrorBody),
        (status = 410, description = "Refused: the prescription expired", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = ErrorBody),
        (status = 422, description = "Refused by a chain rule (validity, items)", body = ErrorBody),
        (status = 503, description = "`not_committed`: nothing was committed; retry", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = %staff.0.account().username, %id))]
pub(super) async fn cancel(
    State(s): State<AppState>,
    staff: StaffCsrf,
    ApiPath(id): ApiPath<String>,
    idem: IdempotencyKey,
    HashedJson(req, hash): HashedJson<CancelRequest>,
) -> Result<Response, ApiError> {
    let staff = staff.0;
    let idem = idem.for_staff(&staff, "cancel", &id, &hash);
    staff.require(&[Role::Practitioner], "cancel prescriptions")?;
    let id = parse_id(&id)?;
    let rec = super::rx::load(&s, &id)?;
    // Another hospital's prescription is not this session's business; the
    // chain would refuse it too, but it need not be signed at all.
    staff.act_for(&rec.hospital)?;
    let reason = req.reason.unwrap_or(CancelReason::PrescriberError);
    sign_and_submit(&s, &staff, idem.as_ref(), |g, k| {
        txbuild::cancel(g, k, id, reason)
    })
    .await
}
