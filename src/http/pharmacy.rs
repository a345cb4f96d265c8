//! The pharmacist's and courier's endpoints, signed on the server: claim,
//! dispense, release, delivery events, the hand-over of a delivery to a
//! carrier, and the pharmacy's list.
//!
//! As for doctors ([`super::doctor`]), the node signs as the signed-in
//! staff member and submits through [`crate::service::submit`].

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rxchain_contracts::privacy::{self, WrappedKey};
use rxchain_contracts::state::{PrescriptionRecord, PublicStatus};
use rxchain_contracts::tx::{
    DeliveryEvent, DeliveryProblem, DeliveryStatus, DispenseLine, Fulfilment, HandOver, Role,
    TxBody,
};
use rxchain_contracts::{rules, OrgId, PrescriptionId, SecretKey};
use serde::{Deserialize, Serialize};

use super::common::{
    blocking, list_limit, no_store, opened, parse_payload, sign_and_submit, ListQuery,
};
use super::error::ErrorBody;
use super::idempotency::{HashedJson, IdempotencyKey};
use super::session::{Staff, StaffCsrf};
use super::tx::Pending;
use super::{ApiError, ApiQuery, AppState};
use crate::access_log::Purpose;
use crate::clock::now;
use crate::mempool::Receipt;
use crate::qr::QrPayload;
use crate::txbuild;

/// The pharmacy's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/staff/claim", post(claim))
        .route("/v1/staff/dispense", post(dispense))
        .route("/v1/staff/release", post(release))
        .route("/v1/staff/delivery", post(delivery))
        .route("/v1/staff/hand-over", post(hand_over))
        .route(
            "/v1/staff/pharmacy/prescriptions",
            get(pharmacy_prescriptions),
        )
}

/// A claim from a scanned code.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ClaimRequest {
    /// The QR payload (or a patient link holding it).
    pub payload: String,
    /// The claiming pharmacy; optional, and when given it must be the session's.
    #[serde(default)]
    pub pharmacy: Option<OrgId>,
}

#[utoipa::path(
    post, path = "/v1/staff/claim", tag = "pharmacy",
    params(("x-csrf-token" = String, Header, description = "The session's CSRF token")),
    request_body = ClaimRequest,
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
#[tracing::instrument(skip_all, fields(username = %staff.0.account().username))]
pub(super) async fn claim(
    State(s): State<AppState>,
    staff: StaffCsrf,
    idem: IdempotencyKey,
    HashedJson(req, hash): HashedJson<ClaimRequest>,
) -> Result<Response, ApiError> {
    let staff = staff.0;
    let idem = idem.for_staff(&staff, "claim", "", &hash);
    staff.require(&[Role::Pharmacist], "claim prescriptions")?;
    if let Some(p) = &req.pharmacy {
        staff.act_for(p)?;
    }
    let payload = parse_payload(&req.payload)?;
    let pharmacy = staff.org().clone();
    sign_and_submit(&s, &staff, idem.as_ref(), |g, k| {
        txbuild::claim(g, k, &pharmacy, &payload)
    })
    .await
}

/// A dispense.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct DispenseRequest {
    /// Which prescription.
    pub id: PrescriptionId,
    /// What is handed out: `{item, quantity, batch}`.
    pub lines: Vec<DispenseLine>,
    /// Close the prescription after this fill.
    #[serde(default)]
    pub complete: bool,
}

#[utoipa::path(
    post, path = "/v1/staff/dispense", tag = "pharmacy",
    params(("x-csrf-token" = String, Header, description = "The session's CSRF token")),
    request_body = DispenseRequest,
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
#[tracing::instrument(skip_all, fields(username = %staff.0.account().username, id = %req.id))]
pub(super) async fn dispense(
    State(s): State<AppState>,
    staff: StaffCsrf,
    idem: IdempotencyKey,
    HashedJson(req, hash): HashedJson<DispenseRequest>,
) -> Result<Response, ApiError> {
    let staff = staff.0;
    let idem = idem.for_staff(&staff, "dispense", "", &hash);
    staff.require(&[Role::Pharmacist], "dispense")?;
    rules::check_dispense_lines(&req.lines, req.complete)
        .map_err(|e| ApiError::bad(e.code(), e.to_string()))?;
    let DispenseRequest {
        id,
        lines,
        complete,
    } = req;
    sign_and_submit(&s, &staff, idem.as_ref(), |g, k| {
        txbuild::dispense(g, k, id, lines, complete)
    })
    .await
}

/// A release.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ReleaseRequest {
    /// Which prescription.
    pub id: PrescriptionId,
}

#[utoipa::path(
    post, path = "/v1/staff/release", tag = "pharmacy",
    params(("x-csrf-token" = String, Header, description = "The session's CSRF token")),
    request_body = ReleaseRequest,
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
#[tracing::instrument(skip_all, fields(username = %staff.0.account().username, id = %req.id))]
pub(super) async fn release(
    State(s): State<AppState>,
    staff: StaffCsrf,
    idem: IdempotencyKey,
    HashedJson(req, hash): HashedJson<ReleaseRequest>,
) -> Result<Response, ApiError> {
    let staff = staff.0;
    let idem = idem.for_staff(&staff, "release", "", &hash);
    staff.require(&[Role::Pharmacist], "release prescriptions")?;
    sign_and_submit(&s, &staff, idem.as_ref(), |g, k| {
        txbuild::release(g, k, req.id)
    })
    .await
}

/// A delivery or pickup event.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct DeliveryRequest {
    /// Which prescription.
    pub id: PrescriptionId,
    /// The status reached.
    pub status: DeliveryStatus,
    /// Why it failed or was returned: required for `failed` and `returned`,
    /// refused otherwise.
    #[serde(default)]
    pub problem: Option<DeliveryProblem>,
    /// How it was handed over: required for `delivered`, refused otherwise.
    #[serde(default)]
    pub hand_over: Option<HandOver>,
}

#[utoipa::path(
    post, path = "/v1/staff/delivery", tag = "pharmacy",
    params(("x-csrf-token" = String, Header, description = "The session's CSRF token")),
    request_body = DeliveryRequest,
    responses(
        (status = 200, description = "Committed and applied", body = Receipt),
        (status = 202, description = "Admitted; the commit is slow: poll `poll`", body = Pending),
        (status = 400, description = "A malformed request (`malformed_json`, `invalid_json`, `missing_problem`, `missing_hand_over`, `unexpected_detail`)", body = ErrorBody),
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
#[tracing::instrument(skip_all, fields(username = %staff.0.account().username, id = %req.id))]
pub(super) async fn delivery(
    State(s): State<AppState>,
    staff: StaffCsrf,
    idem: IdempotencyKey,
    HashedJson(req, hash): HashedJson<DeliveryRequest>,
) -> Result<Response, ApiError> {
    let staff = staff.0;
    let idem = idem.for_staff(&staff, "delivery", "", &hash);
    staff.require(&[Role::Pharmacist, Role::Courier], "record delivery events")?;
    let event = DeliveryEvent {
        id: req.id,
        status: req.status,
        problem: req.problem,
        hand_over: req.hand_over,
    };
    rules::check_delivery_detail(&event).map_err(|e| ApiError::bad(e.code(), e.to_string()))?;
    sign_and_submit(&s, &staff, idem.as_ref(), |g, k| {
        txbuild::delivery_event(g, k, event.clone())
    })
    .await
}

/// A hand-over of a home delivery to a logistics member.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct HandOverRequest {
    /// Which prescription.
    pub id: PrescriptionId,
    /// The logistics organisation whose couriers carry it.
    pub carrier: OrgId,
}

#[utoipa::path(
    post, path = "/v1/staff/hand-over", tag = "pharmacy",
    params(("x-csrf-token" = String, Header, description = "The session's CSRF token")),
    request_body = HandOverRequest,
    responses(
        (status = 200, description = "Committed and applied", body = Receipt),
        (status = 202, description = "Admitted; the commit is slow: poll `poll`", body = Pending),
        (status = 400, description = "A malformed request (`malformed_json`, `invalid_json`)", body = ErrorBody),
        (status = 401, description = "`no_session`, `staff_revoked`", body = ErrorBody),
        (status = 403, description = "`csrf_missing`, `csrf_mismatch`, `wrong_role`, `wrong_org`, or a chain rule's refusal", body = ErrorBody),
        (status = 404, description = "Unknown prescription or organisation", body = ErrorBody),
        (status = 409, description = "Refused by a chain rule (state conflict)", body = ErrorBody),
        (status = 410, description = "Refused: the prescription expired", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = ErrorBody),
        (status = 422, description = "Refused by a chain rule (`not_a_delivery`, `wrong_org_kind`)", body = ErrorBody),
        (status = 503, description = "`not_committed`: nothing was committed; retry", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = %staff.0.account().username, id = %req.id))]
pub(super) async fn hand_over(
    State(s): State<AppState>,
    staff: StaffCsrf,
    idem: IdempotencyKey,
    HashedJson(req, hash): HashedJson<HandOverRequest>,
) -> Result<Response, ApiError> {
    let staff = staff.0;
    let idem = idem.for_staff(&staff, "hand-over", "", &hash);
    staff.require(&[Role::Pharmacist], "hand deliveries to a carrier")?;
    sign_and_submit(&s, &staff, idem.as_ref(), |g, k| {
        txbuild::hand_to_carrier(g, k, req.id, req.carrier)
    })
    .await
}

/// A prescription in the pharmacy's list.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PharmacyPrescription {
    /// Id.
    pub id: PrescriptionId,
    /// Short id.
    pub short_id: String,
    /// Status now.
    pub public_status: PublicStatus,
    /// The issuing hospital's display name.
    pub hospital_name: String,
    /// Assigned to this pharmacy by the patient.
    pub assigned_here: bool,
    /// Claimed by this pharmacy (now or when it was completed).
    pub claimed_here: bool,
    /// The QR payload, recovered from the patient's hand-over with this
    /// pharmacy's data key, while the prescription is open; lets the
    /// pharmacy claim a delivery it never sees a code for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The delivery address, opened the same way, for home deliveries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_address: Option<String>,
    /// The public record: items, fulfilment, claim, fills, delivery events.
    pub record: PrescriptionRecord,
}

/// The patient's hand-over to `org` on the latest applied assignment.
fn handover_for(
    s: &AppState,
    rec: &PrescriptionRecord,
    org: &OrgId,
) -> Result<Option<WrappedKey>, ApiError> {
    let mut found = None;
    for (height, index) in s.chain.history(&rec.id)? {
        let Some(block) = s.chain.block(height)? else {
            continue;
        };
        let (Some(t), Some(o)) = (
            block.txs.get(index as usize),
            block.outcomes.get(index as usize),
        ) else {
            continue;
        };
        if let (TxBody::Assign(a), true) = (&t.tx.body, o.is_applied()) {
            found = (a.fulfilment.pharmacy() == org)
                .then(|| a.handover.clone())
                .flatten();
        }
    }
    Ok(found)
}

/// Recovers the payload (and a delivery address) the patient handed over.
pub(super) fn open_handover(
    s: &AppState,
    rec: &PrescriptionRecord,
    org: &OrgId,
    key: &SecretKey,
) -> Result<(Option<String>, Option<String>), ApiError> {
    if super::rx::personal_data_erased_at(s, rec).is_some() {
        return Ok((None, None));
    }
    let Some(wrap) = handover_for(s, rec, org)? else {
        return Ok((None, None));
    };
    let Some(secret) = opened(
        "patient's hand-over",
        &rec.id,
        privacy::unwrap_with_key(key, &privacy::handover_context(&rec.id), &wrap),
    ) else {
        return Ok((None, None));
    };
    let payload = QrPayload::new(rec.id, privacy::AccessSecret::from_bytes(secret));
    // A hand-over is written by whoever holds the secret; only one that
    // matches the chain's access key is the patient's.
    if !rec.secret_matches(&payload.secret) {
        tracing::warn!(prescription = %rec.id, "a hand-over holds a secret that does not match the chain's access key");
        return Ok((None, None));
    }
    let address = match &rec.fulfilment {
        Some(Fulfilment::Delivery { address, .. }) => {
            let body = super::rx::issue_body(s, rec)?;
            let ck = opened(
                "patient's content key",
                &rec.id,
                privacy::unwrap_with_secret(
                    &payload.secret,
                    &privacy::content_context(&rec.id),
                    &body.key_for_patient,
                ),
            );
            ck.and_then(|ck| {
                opened(
                    "delivery address",
                    &rec.id,
                    privacy::open(&ck, &privacy::address_context(&rec.id), address),
                )
            })
            .and_then(|b| opened("delivery address text", &rec.id, String::from_utf8(b)))
        }
        _ => None,
    };
    Ok((Some(payload.encode()), address))
}

/// Prescriptions assigned to or claimed by the session's pharmacy, newest first.
#[utoipa::path(
    get, path = "/v1/staff/pharmacy/prescriptions", tag = "pharmacy",
    params(ListQuery),
    responses(
        (status = 200, description = "Newest first", body = Vec<PharmacyPrescription>),
        (status = 400, description = "`bad_query`, `bad_limit`", body = ErrorBody),
        (status = 401, description = "`no_session`", body = ErrorBody),
        (status = 403, description = "`wrong_role`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = %staff.account().username))]
pub(super) async fn pharmacy_prescriptions(
    State(s): State<AppState>,
    staff: Staff,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    staff.require(
        &[Role::Pharmacist, Role::Courier],
        "list a pharmacy's prescriptions",
    )?;
    let limit = list_limit(&q)?;
    let org = staff.org().clone();
    let data_key = s.accounts.data_key(&org);
    // A courier carries the parcel: the delivery address, never the QR
    // payload (with it one could open the patient's identity, or cancel
    // and reassign as if one were the patient).
    let courier = staff.account().role == Role::Courier;
    let reader = super::access::staff_reader(staff.account());
    let st = s.clone();
    let rows = blocking(move || {
        let mut recs = Vec::new();
        for id in st.chain.by_pharmacy(&org)? {
            let Some(r) = st.chain.prescription(&id)? else {
                continue;
            };
            let assigned = r.fulfilment.as_ref().is_some_and(|f| f.pharmacy() == &org);
            let claimed = r.claim.as_ref().is_some_and(|c| c.pharmacy == org);
            if assigned || claimed {
                recs.push((r, assigned, claimed));
            }
        }
        recs.sort_by(|a, b| b.0.issued_at.cmp(&a.0.issued_at));
        recs.truncate(limit);
        let t = now();
        let mut out = Vec::with_capacity(recs.len());
        let mut reads = Vec::new();
        for (rec, assigned_here, claimed_here) in recs {
            let status = rec.public_status(t);
            let open = status.is_open();
            let (payload, delivery_address) = match &data_key {
                Some(k) if assigned_here && open => open_handover(&st, &rec, &org, k)?,
                _ => (None, None),
            };
            let payload = if courier { None } else { payload };
            if payload.is_some() || delivery_address.is_some() {
                reads.push((rec.id, reader.clone(), Purpose::PharmacyHandover));
            }
            out.push(PharmacyPrescription {
                id: rec.id,
                short_id: rec.id.short(),
                public_status: status,
                hospital_name: st
                    .consortium()
                    .org(&rec.hospital)
                    .map(|o| o.name.to_string())
                    .unwrap_or_default(),
                assigned_here,
                claimed_here,
                payload,
                delivery_address,
                record: rec,
            });
        }
        // Recorded (and flushed) before the list is answered.
        super::access::record_all(&st, reads)?;
        Ok(out)
    })
    .await?;
    // Payloads and addresses are secrets and personal data.
    Ok(no_store(Json(rows).into_response()))
}
