//! Who looked: the patient's view of the reads of their prescription, and
//! the regulator's queries over this node's access log (by staff member,
//! unusual volumes, and the log checked against its anchor on the chain).
//! The handlers that open private content record each read through
//! [`record`] before they answer.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rxchain_contracts::tx::Role;
use rxchain_contracts::{OrgId, PrescriptionId, Timestamp};
use serde::{Deserialize, Serialize};

use super::common::{blocking, no_store};
use super::error::ErrorBody;
use super::patient::authorise;
use super::session::Staff;
use super::{ApiError, ApiJson, ApiQuery, AppState};
use crate::access_log::{AccessLogError, AccessRecord, Purpose, Reader};
use crate::accounts::Account;
use crate::clock::now;

/// The patient's "who looked" and the regulator's access queries.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/patient/access", post(patient_access))
        .route("/v1/regulator/access", get(by_staff))
        .route("/v1/regulator/access/volumes", get(volumes))
        .route("/v1/regulator/access/verify", get(verify))
}

impl From<AccessLogError> for ApiError {
    fn from(e: AccessLogError) -> Self {
        ApiError::internal(e)
    }
}

/// The reader a staff account is.
pub fn staff_reader(a: &Account) -> Reader {
    Reader {
        username: Some(a.username.clone()),
        name: a.name.clone(),
        key: Some(a.public_key),
        role: serde_json::to_value(a.role)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        org: Some(a.org.clone()),
    }
}

/// Records one read of `id`'s private content on this node's log (flushed
/// before it returns). Blocking: call it off the runtime.
pub fn record(
    s: &AppState,
    id: &PrescriptionId,
    reader: Reader,
    purpose: Purpose,
) -> Result<(), ApiError> {
    s.access_log.record(*id, reader, purpose, now())?;
    Ok(())
}

/// Records the reads of a list view in one batch, before it is answered.
pub fn record_all(
    s: &AppState,
    reads: Vec<(PrescriptionId, Reader, Purpose)>,
) -> Result<(), ApiError> {
    s.access_log.record_all(reads, now())?;
    Ok(())
}

/// The FHIR export's hook: records a read with identity by `account`.
pub fn record_fhir(s: &AppState, id: &PrescriptionId, account: &Account) -> Result<(), ApiError> {
    record(s, id, staff_reader(account), Purpose::FhirExport)
}

/// Why content was read, for the JSON answer.
#[derive(Serialize, Clone, Copy, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PurposeView {
    /// The holder of the QR code opened the patient page.
    PatientOpen,
    /// A staff list that shows patient names.
    StaffList,
    /// A pharmacy's list opened the hand-over.
    PharmacyHandover,
    /// A FHIR export with identity.
    FhirExport,
    /// A grantee organisation read what was shared with it.
    SharedRead,
    /// A regulator's decrypted view.
    RegulatorView,
}

impl From<Purpose> for PurposeView {
    fn from(p: Purpose) -> Self {
        match p {
            Purpose::PatientOpen => PurposeView::PatientOpen,
            Purpose::StaffList => PurposeView::StaffList,
            Purpose::PharmacyHandover => PurposeView::PharmacyHandover,
            Purpose::FhirExport => PurposeView::FhirExport,
            Purpose::SharedRead => PurposeView::SharedRead,
            Purpose::RegulatorView => PurposeView::RegulatorView,
        }
    }
}

/// One read, for people.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReadView {
    /// Position in the node's log.
    pub seq: u64,
    /// When.
    pub at: Timestamp,
    /// The node that served it.
    pub node: u64,
    /// Which prescription.
    pub prescription: PrescriptionId,
    /// Who, by name ("the patient" for the code's holder).
    pub name: String,
    /// Their sign-in name, for staff.
    pub username: Option<String>,
    /// Their role.
    pub role: String,
    /// The organisation they acted for.
    pub org: Option<OrgId>,
    /// Its display name.
    pub org_name: Option<String>,
    /// Why.
    pub purpose: PurposeView,
}

fn read_view(s: &AppState, r: AccessRecord) -> ReadView {
    let org_name = r
        .reader
        .org
        .as_ref()
        .and_then(|o| s.consortium().org(o).map(|d| d.name.to_string()));
    ReadView {
        seq: r.seq,
        at: r.at,
        node: r.node,
        prescription: r.prescription,
        name: r.reader.name,
        username: r.reader.username,
        role: r.reader.role,
        org: r.reader.org,
        org_name,
        purpose: r.purpose.into(),
    }
}

/// The patient's "who looked at this prescription".
#[derive(Serialize, utoipa::ToSchema)]
pub struct PatientAccess {
    /// Every read of its private content this node served, oldest first.
    pub reads: Vec<ReadView>,
    /// The node whose log this is.
    pub node: u64,
    /// How far this node's log is anchored on the chain.
    pub anchored_seq: u64,
}

/// A request carrying only the payload.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct AccessRequest {
    /// The QR payload, or the patient link holding it.
    pub payload: String,
}

#[utoipa::path(
    post, path = "/v1/patient/access", tag = "patient",
    request_body = AccessRequest,
    responses(
        (status = 200, description = "Who read this prescription's private content on this node", body = PatientAccess),
        (status = 400, description = "`bad_qr_payload`, `malformed_json`, `invalid_json`", body = ErrorBody),
        (status = 403, description = "`wrong_secret`", body = ErrorBody),
        (status = 404, description = "`unknown_prescription`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(super) async fn patient_access(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<AccessRequest>,
) -> Result<Response, ApiError> {
    let (payload, _) = authorise(&s, &req.payload).await?;
    let st = s.clone();
    let v = blocking(move || {
        let reads = st
            .access_log
            .of_prescription(&payload.id)?
            .into_iter()
            .map(|r| read_view(&st, r))
            .collect();
        Ok(PatientAccess {
            reads,
            node: st.node_id,
            anchored_seq: crate::access_log::anchored(&st.chain, st.node_id).map_or(0, |a| a.seq),
        })
    })
    .await?;
    Ok(no_store(Json(v).into_response()))
}

/// The regulator's query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StaffQuery {
    /// The staff member's sign-in name.
    pub staff: String,
    /// Only reads in the last this many hours (default 720, 30 days).
    #[serde(default)]
    pub hours: Option<u32>,
}

/// The reads by one staff member.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StaffAccess {
    /// Oldest first.
    pub reads: Vec<ReadView>,
    /// How many different prescriptions they read.
    pub prescriptions: usize,
}

fn need_regulator(staff: &Staff) -> Result<(), ApiError> {
    staff.require(&[Role::RegulatorOfficer], "query the access log")
}

fn since(hours: Option<u32>) -> Result<Timestamp, ApiError> {
    let h = hours.unwrap_or(720);
    if h == 0 || h > 24 * 3660 {
        return Err(ApiError::bad("bad_hours", "hours is 1 to 87840"));
    }
    Ok(Timestamp(now().0.saturating_sub(u64::from(h) * 3_600_000)))
}

#[utoipa::path(
    get, path = "/v1/regulator/access", tag = "reports",
    params(StaffQuery),
    responses(
        (status = 200, description = "Every read by the staff member on this node", body = StaffAccess),
        (status = 400, description = "`bad_query`, `bad_hours`", body = ErrorBody),
        (status = 401, description = "`no_session`", body = ErrorBody),
        (status = 403, description = "`wrong_role`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = %staff.account().username))]
pub(super) async fn by_staff(
    State(s): State<AppState>,
    staff: Staff,
    ApiQuery(q): ApiQuery<StaffQuery>,
) -> Result<Json<StaffAccess>, ApiError> {
    need_regulator(&staff)?;
    let from = since(q.hours)?;
    let st = s.clone();
    blocking(move || {
        let reads: Vec<ReadView> = st
            .access_log
            .since(from)?
            .into_iter()
            .filter(|r| r.reader.username.as_deref() == Some(q.staff.as_str()))
            .map(|r| read_view(&st, r))
            .collect();
        let prescriptions = reads
            .iter()
            .map(|r| r.prescription)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        Ok(Json(StaffAccess {
            reads,
            prescriptions,
        }))
    })
    .await
}

/// The volume query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VolumeQuery {
    /// The window, in hours back from now (default 24).
    #[serde(default)]
    pub hours: Option<u32>,
    /// Flag a staff member who opened at least this many different
    /// prescriptions in the window (default 50).
    #[serde(default)]
    pub threshold: Option<usize>,
}

/// One staff member's reading volume.
#[derive(Serialize, utoipa::ToSchema)]
pub struct VolumeRow {
    /// Sign-in name.
    pub username: String,
    /// Display name.
    pub name: String,
    /// Organisation.
    pub org: Option<OrgId>,
    /// Role.
    pub role: String,
    /// Reads in the window.
    pub reads: usize,
    /// Different prescriptions read.
    pub prescriptions: usize,
    /// At or above the threshold.
    pub flagged: bool,
}

/// Reading volumes per staff member, most prescriptions first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Volumes {
    /// The threshold applied.
    pub threshold: usize,
    /// One row per staff member who read anything in the window.
    pub rows: Vec<VolumeRow>,
}

#[utoipa::path(
    get, path = "/v1/regulator/access/volumes", tag = "reports",
    params(VolumeQuery),
    responses(
        (status = 200, description = "Reads per staff member, unusual volumes flagged", body = Volumes),
        (status = 400, description = "`bad_query`, `bad_hours`, `bad_threshold`", body = ErrorBody),
        (status = 401, description = "`no_session`", body = ErrorBody),
        (status = 403, description = "`wrong_role`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = %staff.account().username))]
pub(super) async fn volumes(
    State(s): State<AppState>,
    staff: Staff,
    ApiQuery(q): ApiQuery<VolumeQuery>,
) -> Result<Json<Volumes>, ApiError> {
    need_regulator(&staff)?;
    let from = since(Some(q.hours.unwrap_or(24)))?;
    let threshold = q.threshold.unwrap_or(50);
    if threshold == 0 {
        return Err(ApiError::bad(
            "bad_threshold",
            "the threshold is at least 1",
        ));
    }
    let st = s.clone();
    blocking(move || {
        let mut by: std::collections::BTreeMap<
            String,
            (Reader, usize, std::collections::BTreeSet<PrescriptionId>),
        > = std::collections::BTreeMap::new();
        for r in st.access_log.since(from)? {
            let Some(u) = r.reader.username.clone() else {
                continue;
            };
            let e = by
                .entry(u)
                .or_insert_with(|| (r.reader.clone(), 0, Default::default()));
            e.1 += 1;
            e.2.insert(r.prescription);
        }
        let mut rows: Vec<VolumeRow> = by
            .into_iter()
            .map(|(username, (reader, reads, ids))| VolumeRow {
                username,
                name: reader.name,
                org: reader.org,
                role: reader.role,
                reads,
                prescriptions: ids.len(),
                flagged: ids.len() >= threshold,
            })
            .collect();
        rows.sort_by(|a, b| b.prescriptions.cmp(&a.prescriptions));
        Ok(Json(Volumes { threshold, rows }))
    })
    .await
}

/// The log checked against the chain.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LogCheck {
    /// The node.
    pub node: u64,
    /// Records checked.
    pub records: u64,
    /// The sequence number anchored on the chain.
    pub anchored_seq: u64,
}

#[utoipa::path(
    get, path = "/v1/regulator/access/verify", tag = "reports",
    responses(
        (status = 200, description = "The whole log links and agrees with the chain's anchor", body = LogCheck),
        (status = 401, description = "`no_session`", body = ErrorBody),
        (status = 403, description = "`wrong_role`", body = ErrorBody),
        (status = 409, description = "`access_log_tampered`: the log does not verify", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = %staff.account().username))]
pub(super) async fn verify(
    State(s): State<AppState>,
    staff: Staff,
) -> Result<Json<LogCheck>, ApiError> {
    need_regulator(&staff)?;
    let st = s.clone();
    blocking(move || {
        let anchor = crate::access_log::anchored(&st.chain, st.node_id);
        let anchored_seq = anchor.as_ref().map_or(0, |a| a.seq);
        match st.access_log.verify(anchor.map(|a| (a.seq, a.head))) {
            Ok(records) => Ok(Json(LogCheck {
                node: st.node_id,
                records,
                anchored_seq,
            })),
            Err(e @ (AccessLogError::Broken { .. } | AccessLogError::AnchorMismatch { .. })) => {
                Err(ApiError::Conflict {
                    code: "access_log_tampered",
                    message: e.to_string(),
                })
            }
            Err(e) => Err(e.into()),
        }
    })
    .await
}
