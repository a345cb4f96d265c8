//! Sharing by consent: the patient shares one prescription with another
//! member organisation for a period, revokes the grant, and answers
//! organisations' access requests; the grantee organisation's staff read
//! what is shared with them, and an insurer reviews its shared
//! prescriptions for reimbursement.
//!
//! Every change is a chain transaction (`grant_access`, `revoke_access`,
//! `request_access`, `refuse_request`; rules in `lifecycle/consent.rs`).
//! Reading is not: the node checks the grant in its committed state with
//! [`GrantRecord::check_active`] at its own clock, then opens the grant's
//! key wrap with the organisation's data key. A revoked or ended grant is
//! refused on every node that has applied the block recording it. What was
//! read before cannot be unread.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rxchain_contracts::privacy::{self, ContentKey};
use rxchain_contracts::state::{
    grant_key, grant_prefix, grantee_prefix, request_prefix, AccessRequest, GrantRecord,
    PublicStatus, RequestStatus,
};
use rxchain_contracts::tx::{Role, TxBody};
use rxchain_contracts::{OrgId, OrgKind, PrescriptionId, Rejection, Timestamp};
use serde::{Deserialize, Serialize};

use super::common::{blocking, no_store, parse_id, sign_and_submit};
use super::error::ErrorBody;
use super::idempotency::{sign_once, HashedJson, IdempotencyKey, Signed};
use super::patient::{authorise, content_key, ContentView};
use super::rx::{issue_body, load, view, PrescriptionView};
use super::session::{Staff, StaffCsrf};
use super::tx::{submitted_response, Pending};
use super::{ApiError, ApiJson, ApiPath, AppState};
use crate::clock::now;
use crate::mempool::Receipt;
use crate::service::submit::submit;
use crate::txbuild;

/// The patient's sharing routes, the staff's request and read routes, and
/// the insurer's review list.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/patient/sharing", post(sharing))
        .route("/v1/patient/share", post(share))
        .route("/v1/patient/unshare", post(unshare))
        .route("/v1/patient/refuse-request", post(refuse))
        .route("/v1/consent/requests", post(request))
        .route("/v1/shared/{id}", get(shared))
        .route("/v1/insurer/claims", get(claims))
}

/// Where a grant stands now.
#[derive(Serialize, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantState {
    /// The organisation may read.
    Active,
    /// The patient revoked it.
    Revoked,
    /// Its period ended.
    Expired,
}

/// One grant, as the patient and the grantee see it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct GrantView {
    /// The organisation.
    pub org: OrgId,
    /// Its display name.
    pub org_name: String,
    /// When the patient shared.
    pub granted_at: Timestamp,
    /// End of access (exclusive).
    pub until: Timestamp,
    /// Where it stands now.
    pub state: GrantState,
    /// When the patient revoked it.
    pub revoked_at: Option<Timestamp>,
}

/// One access request, as the patient sees it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RequestView {
    /// The asking organisation.
    pub org: OrgId,
    /// Its display name.
    pub org_name: String,
    /// The staff member who asked.
    pub by_name: String,
    /// When.
    pub at: Timestamp,
    /// Until when access is asked for.
    pub until: Timestamp,
    /// Pending, approved or refused.
    pub status: RequestStatus,
    /// When the patient answered.
    pub answered_at: Option<Timestamp>,
}

/// An organisation the patient may share with.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OrgChoice {
    /// Organisation id.
    pub id: OrgId,
    /// Display name.
    pub name: String,
    /// What it does.
    pub kind: OrgKind,
}

/// What the patient's sharing screen shows.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SharingView {
    /// Every grant of this prescription, revoked and ended ones included.
    pub grants: Vec<GrantView>,
    /// Every access request, answered ones included.
    pub requests: Vec<RequestView>,
    /// The organisations it may be shared with.
    pub organisations: Vec<OrgChoice>,
    /// The longest period a grant may last, in days.
    pub max_grant_days: u32,
}

fn org_name(s: &AppState, org: &OrgId) -> String {
    s.consortium()
        .org(org)
        .map_or_else(|| org.to_string(), |o| o.name.to_string())
}

fn grant_view(s: &AppState, g: &GrantRecord, at: Timestamp) -> GrantView {
    let state = match g.check_active(at) {
        Ok(()) => GrantState::Active,
        Err(Rejection::GrantRevoked { .. }) => GrantState::Revoked,
        Err(_) => GrantState::Expired,
    };
    GrantView {
        org: g.org.clone(),
        org_name: org_name(s, &g.org),
        granted_at: g.granted_at,
        until: g.until,
        state,
        revoked_at: g.revoked_at,
    }
}

/// The grants and requests of one prescription.
fn sharing_of(s: &AppState, id: &PrescriptionId) -> Result<SharingView, ApiError> {
    let at = now();
    let grants = s
        .chain
        .state_records::<GrantRecord>(&grant_prefix(id))?
        .into_iter()
        .map(|(_, g)| grant_view(s, &g, at))
        .collect();
    let mut requests = Vec::new();
    for (_, r) in s
        .chain
        .state_records::<AccessRequest>(&request_prefix(id))?
    {
        let by_name = s
            .chain
            .staff(&r.by)?
            .map_or_else(String::new, |st| st.name.to_string());
        requests.push(RequestView {
            org_name: org_name(s, &r.org),
            org: r.org,
            by_name,
            at: r.at,
            until: r.until,
            status: r.status,
            answered_at: r.answered_at,
        });
    }
    let consortium = s.consortium();
    let organisations = consortium
        .orgs
        .iter()
        .map(|o| OrgChoice {
            id: o.id.clone(),
            name: o.name.to_string(),
            kind: o.kind,
        })
        .collect();
    Ok(SharingView {
        grants,
        requests,
        organisations,
        max_grant_days: consortium.params.max_grant_days,
    })
}

/// A request carrying only the payload.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SharingRequest {
    /// The QR payload, or the patient link holding it.
    pub payload: String,
}

#[utoipa::path(
    post, path = "/v1/patient/sharing", tag = "patient",
    request_body = SharingRequest,
    responses(
        (status = 200, description = "Grants, requests and the organisations to share with", body = SharingView),
        (status = 400, description = "`bad_qr_payload`, `malformed_json`, `invalid_json`", body = ErrorBody),
        (status = 403, description = "`wrong_secret`", body = ErrorBody),
        (status = 404, description = "`unknown_prescription`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(super) async fn sharing(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<SharingRequest>,
) -> Result<Response, ApiError> {
    let (payload, _) = authorise(&s, &req.payload).await?;
    let st = s.clone();
    let v = blocking(move || sharing_of(&st, &payload.id)).await?;
    Ok(no_store(Json(v).into_response()))
}

/// The patient shares with an organisation.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ShareRequest {
    /// The QR payload.
    pub payload: String,
    /// The organisation.
    pub org: OrgId,
    /// For how many days from now (1 to `max_grant_days`).
    pub days: u32,
}

/// The patient names an organisation (revoke, refuse).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct OrgRequest {
    /// The QR payload.
    pub payload: String,
    /// The organisation.
    pub org: OrgId,
}

fn unknown_org(org: &OrgId) -> ApiError {
    ApiError::not_found("unknown_org", format!("{org} is not a consortium member"))
}

#[utoipa::path(
    post, path = "/v1/patient/share", tag = "patient",
    request_body = ShareRequest,
    responses(
        (status = 200, description = "Committed and applied", body = Receipt),
        (status = 202, description = "Admitted; the commit is slow: poll `poll`", body = Pending),
        (status = 400, description = "`bad_qr_payload`, `malformed_json`, `invalid_json`, `bad_days`", body = ErrorBody),
        (status = 403, description = "`wrong_secret`, or a chain rule's refusal", body = ErrorBody),
        (status = 404, description = "`unknown_prescription`, `unknown_org`", body = ErrorBody),
        (status = 409, description = "Refused by a chain rule (state conflict)", body = ErrorBody),
        (status = 410, description = "`personal_data_erased`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = ErrorBody),
        (status = 422, description = "`grant_period_invalid`, `sealed_content_unreadable`", body = ErrorBody),
        (status = 503, description = "`not_committed`: nothing was committed; retry", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(super) async fn share(
    State(s): State<AppState>,
    idem: IdempotencyKey,
    HashedJson(req, hash): HashedJson<ShareRequest>,
) -> Result<Response, ApiError> {
    if s.consortium().org(&req.org).is_none() {
        return Err(unknown_org(&req.org));
    }
    if req.days == 0 {
        return Err(ApiError::bad("bad_days", "share for at least one day"));
    }
    let (payload, rec) = authorise(&s, &req.payload).await?;
    let idem = idem.for_patient(&payload.id, "share", &hash);
    let st = s.clone();
    let (org, days) = (req.org, req.days);
    // The wrap for the organisation is an ECDH: off the runtime.
    let signed = sign_once(&s, idem.as_ref(), || {
        blocking(move || {
            let ck = content_key(&st, &payload, &rec)?;
            let until = now().plus_days(days);
            let tx = txbuild::grant_access(&st.consortium(), &payload, &ck, &org, until).map_err(
                |e| match e {
                    txbuild::GrantBuildError::UnknownOrg(o) => unknown_org(&o),
                    e @ txbuild::GrantBuildError::Privacy(_) => ApiError::internal(e),
                },
            )?;
            Ok(Signed { tx, secret: None })
        })
    })
    .await?;
    Ok(submitted_response(submit(&s, signed.tx).await?))
}

#[utoipa::path(
    post, path = "/v1/patient/unshare", tag = "patient",
    request_body = OrgRequest,
    responses(
        (status = 200, description = "Committed and applied", body = Receipt),
        (status = 202, description = "Admitted; the commit is slow: poll `poll`", body = Pending),
        (status = 400, description = "`bad_qr_payload`, `malformed_json`, `invalid_json`", body = ErrorBody),
        (status = 403, description = "`wrong_secret`, or a chain rule's refusal", body = ErrorBody),
        (status = 404, description = "`unknown_prescription`, `no_grant`", body = ErrorBody),
        (status = 409, description = "`grant_revoked`", body = ErrorBody),
        (status = 410, description = "`grant_expired`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = ErrorBody),
        (status = 422, description = "Refused by a chain rule", body = ErrorBody),
        (status = 503, description = "`not_committed`: nothing was committed; retry", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(super) async fn unshare(
    State(s): State<AppState>,
    idem: IdempotencyKey,
    HashedJson(req, hash): HashedJson<OrgRequest>,
) -> Result<Response, ApiError> {
    let (payload, _) = authorise(&s, &req.payload).await?;
    let idem = idem.for_patient(&payload.id, "unshare", &hash);
    let signed = sign_once(&s, idem.as_ref(), || async {
        let tx = txbuild::revoke_access(&s.consortium(), &payload, &req.org);
        Ok(Signed { tx, secret: None })
    })
    .await?;
    Ok(submitted_response(submit(&s, signed.tx).await?))
}

#[utoipa::path(
    post, path = "/v1/patient/refuse-request", tag = "patient",
    request_body = OrgRequest,
    responses(
        (status = 200, description = "Committed and applied", body = Receipt),
        (status = 202, description = "Admitted; the commit is slow: poll `poll`", body = Pending),
        (status = 400, description = "`bad_qr_payload`, `malformed_json`, `invalid_json`", body = ErrorBody),
        (status = 403, description = "`wrong_secret`, or a chain rule's refusal", body = ErrorBody),
        (status = 404, description = "`unknown_prescription`, `no_pending_request`", body = ErrorBody),
        (status = 409, description = "Refused by a chain rule (state conflict)", body = ErrorBody),
        (status = 410, description = "Refused by a chain rule", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = ErrorBody),
        (status = 422, description = "Refused by a chain rule", body = ErrorBody),
        (status = 503, description = "`not_committed`: nothing was committed; retry", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(super) async fn refuse(
    State(s): State<AppState>,
    idem: IdempotencyKey,
    HashedJson(req, hash): HashedJson<OrgRequest>,
) -> Result<Response, ApiError> {
    let (payload, _) = authorise(&s, &req.payload).await?;
    let idem = idem.for_patient(&payload.id, "refuse-request", &hash);
    let signed = sign_once(&s, idem.as_ref(), || async {
        let tx = txbuild::refuse_request(&s.consortium(), &payload, &req.org);
        Ok(Signed { tx, secret: None })
    })
    .await?;
    Ok(submitted_response(submit(&s, signed.tx).await?))
}

/// A staff member asks for access for their organisation.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct AccessRequestBody {
    /// Which prescription.
    pub id: PrescriptionId,
    /// For how many days from now.
    pub days: u32,
}

#[utoipa::path(
    post, path = "/v1/consent/requests", tag = "consent",
    params(("x-csrf-token" = String, Header, description = "The session's CSRF token")),
    request_body = AccessRequestBody,
    responses(
        (status = 200, description = "Committed and applied", body = Receipt),
        (status = 202, description = "Admitted; the commit is slow: poll `poll`", body = Pending),
        (status = 400, description = "`malformed_json`, `invalid_json`, `bad_days`", body = ErrorBody),
        (status = 401, description = "`no_session`", body = ErrorBody),
        (status = 403, description = "`csrf_missing`, `csrf_mismatch`, `wrong_role`, or a chain rule's refusal", body = ErrorBody),
        (status = 404, description = "`unknown_prescription`", body = ErrorBody),
        (status = 409, description = "`request_pending`, `already_granted`", body = ErrorBody),
        (status = 410, description = "`personal_data_erased`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = ErrorBody),
        (status = 422, description = "`grant_period_invalid`", body = ErrorBody),
        (status = 503, description = "`not_committed`: nothing was committed; retry", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = %staff.0.account().username, id = %req.id))]
pub(super) async fn request(
    State(s): State<AppState>,
    staff: StaffCsrf,
    idem: IdempotencyKey,
    HashedJson(req, hash): HashedJson<AccessRequestBody>,
) -> Result<Response, ApiError> {
    let staff = staff.0;
    let idem = idem.for_staff(&staff, "consent-request", "", &hash);
    if staff.account().role == Role::Admin {
        return Err(ApiError::forbidden(
            "wrong_role",
            "a staff admin may not ask for access to a prescription",
        ));
    }
    if req.days == 0 {
        return Err(ApiError::bad("bad_days", "ask for at least one day"));
    }
    let until = now().plus_days(req.days);
    sign_and_submit(&s, &staff, idem.as_ref(), |g, k| {
        txbuild::request_access(g, k, req.id, until)
    })
    .await
}

/// What a grantee organisation's staff see of a shared prescription.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SharedView {
    /// The public view with its history.
    pub prescription: PrescriptionView,
    /// The decrypted content.
    pub content: ContentView,
    /// The grant that allows it.
    pub grant: GrantView,
}

/// The active grant of `id` to `org` at `at`, or the chain rule's refusal:
/// `no_grant`, `grant_revoked`, `grant_expired`.
fn active_grant(
    s: &AppState,
    id: &PrescriptionId,
    org: &OrgId,
    at: Timestamp,
) -> Result<GrantRecord, ApiError> {
    let g = s
        .chain
        .state_record::<GrantRecord>(&grant_key(id, org))?
        .ok_or_else(|| ApiError::NotAdmitted(Rejection::NoGrant { org: org.clone() }))?;
    g.check_active(at).map_err(ApiError::NotAdmitted)?;
    Ok(g)
}

/// Opens the content key a grant wrapped for `org`.
fn grant_content_key(
    s: &AppState,
    id: &PrescriptionId,
    org: &OrgId,
    g: &GrantRecord,
) -> Result<ContentKey, ApiError> {
    let key = s.accounts.data_key(org).ok_or_else(|| {
        ApiError::forbidden(
            "no_data_key",
            format!("this node does not hold the data key of {org}"),
        )
    })?;
    let rec = load(s, id)?;
    super::rx::check_not_erased(s, &rec)?;
    let wrap = match s.chain.committed_tx(&g.tx)?.map(|t| t.tx.body) {
        Some(TxBody::GrantAccess(b)) => b.key_for_org,
        _ => return Err(ApiError::internal("the grant's transaction is not indexed")),
    };
    privacy::unwrap_with_key(&key, &privacy::content_context(id), &wrap)
        .map(ContentKey::from_bytes)
        .map_err(|e| match e {
            privacy::PrivacyError::Erased => {
                super::rx::erased(super::rx::personal_data_erased_at(s, &rec).unwrap_or(g.until))
            }
            _ => ApiError::Unprocessable {
                code: "sealed_content_unreadable",
                message: "the grant's key wrap does not open with the organisation's data key"
                    .into(),
            },
        })
}

#[utoipa::path(
    get, path = "/v1/shared/{id}", tag = "consent",
    params(("id" = String, Path, description = "Prescription id, 32 hex characters")),
    responses(
        (status = 200, description = "The shared prescription with its content", body = SharedView),
        (status = 400, description = "`bad_prescription_id`", body = ErrorBody),
        (status = 401, description = "`no_session`", body = ErrorBody),
        (status = 403, description = "`no_data_key`", body = ErrorBody),
        (status = 404, description = "`unknown_prescription`, `no_grant`", body = ErrorBody),
        (status = 409, description = "`grant_revoked`", body = ErrorBody),
        (status = 410, description = "`grant_expired`", body = ErrorBody),
        (status = 422, description = "`sealed_content_unreadable`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = %staff.account().username))]
pub(super) async fn shared(
    State(s): State<AppState>,
    staff: Staff,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let org = staff.org().clone();
    let account = staff.account().clone();
    let st = s.clone();
    let v = blocking(move || {
        let rec = load(&st, &id)?;
        let at = now();
        let g = active_grant(&st, &id, &org, at)?;
        let ck = grant_content_key(&st, &id, &org, &g)?;
        let body = issue_body(&st, &rec)?;
        let c =
            privacy::open_content(&id, &body.sealed, &ck).map_err(|_| ApiError::Unprocessable {
                code: "sealed_content_unreadable",
                message: "the prescription's sealed content does not open with the shared key"
                    .into(),
            })?;
        super::access::record(
            &st,
            &id,
            super::access::staff_reader(&account),
            crate::access_log::Purpose::SharedRead,
        )?;
        Ok(SharedView {
            grant: grant_view(&st, &g, at),
            prescription: view(&st, rec)?,
            content: ContentView {
                patient: c.patient,
                dosage: c.dosage,
                notes: c.notes,
            },
        })
    })
    .await?;
    Ok(no_store(Json(v).into_response()))
}

/// One dispensed or prescribed line, for reimbursement review.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ClaimLine {
    /// ATC code.
    pub atc: String,
    /// Drug name.
    pub name: String,
    /// Prescribed quantity per fill.
    pub quantity: u32,
    /// Unit.
    pub unit: String,
    /// Units dispensed so far.
    pub dispensed: u32,
}

/// One prescription shared with the insurer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ClaimRow {
    /// Prescription id.
    pub id: PrescriptionId,
    /// Short id printed on slips.
    pub short_id: String,
    /// The issuing hospital.
    pub hospital: OrgId,
    /// Block time of issue.
    pub issued_at: Timestamp,
    /// Status now.
    pub public_status: PublicStatus,
    /// Whether anything was dispensed.
    pub dispensed: bool,
    /// Where it was dispensed, in fill order.
    pub pharmacies: Vec<OrgId>,
    /// The items.
    pub lines: Vec<ClaimLine>,
    /// The grant.
    pub grant: GrantView,
}

/// The insurer's review list.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ClaimsView {
    /// Every prescription ever shared with the organisation, newest grant first.
    pub claims: Vec<ClaimRow>,
}

#[utoipa::path(
    get, path = "/v1/insurer/claims", tag = "consent",
    responses(
        (status = 200, description = "The prescriptions shared with the session's organisation", body = ClaimsView),
        (status = 401, description = "`no_session`", body = ErrorBody),
        (status = 403, description = "`wrong_role`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = %staff.account().username))]
pub(super) async fn claims(
    State(s): State<AppState>,
    staff: Staff,
) -> Result<Json<ClaimsView>, ApiError> {
    staff.require(&[Role::ClaimsReviewer], "review reimbursement claims")?;
    let org = staff.org().clone();
    let st = s.clone();
    blocking(move || {
        let at = now();
        let mut claims = Vec::new();
        for (k, ()) in st.chain.state_records::<()>(&grantee_prefix(&org))? {
            let prefix = grantee_prefix(&org);
            let id: [u8; 16] = k
                .get(prefix.len()..)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| ApiError::internal("malformed grantee index key"))?;
            let id = PrescriptionId::from_bytes(id);
            let rec = load(&st, &id)?;
            let Some(g) = st
                .chain
                .state_record::<GrantRecord>(&grant_key(&id, &org))?
            else {
                return Err(ApiError::internal("grantee index without its grant"));
            };
            // Once revoked or ended, the insurer keeps only what the chain
            // shows everyone anyway (codes, quantities, dates).
            claims.push(ClaimRow {
                short_id: id.short(),
                hospital: rec.hospital.clone(),
                issued_at: rec.issued_at,
                public_status: rec.public_status(at),
                dispensed: rec.any_dispensed(),
                pharmacies: rec.fills.iter().map(|f| f.pharmacy.clone()).collect(),
                lines: rec
                    .items
                    .iter()
                    .enumerate()
                    .map(|(i, it)| ClaimLine {
                        atc: it.atc.to_string(),
                        name: it.name.to_string(),
                        quantity: it.quantity.get(),
                        unit: it.unit.to_string(),
                        dispensed: rec.dispensed.get(i).copied().unwrap_or(0),
                    })
                    .collect(),
                grant: grant_view(&st, &g, at),
                id,
            });
        }
        claims.sort_by(|a, b| b.grant.granted_at.cmp(&a.grant.granted_at));
        Ok(Json(ClaimsView { claims }))
    })
    .await
}
