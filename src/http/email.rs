//! Patient e-mail endpoints: the doctor page's e-mail button, the
//! unsubscribe link, the patient page's switch, and the hospital's outbox
//! view. They answer only on the issuing hospital's node, the one that
//! holds the address (see `crate::email`).

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rxchain_contracts::tx::Role;
use rxchain_contracts::PrescriptionId;
use serde::{Deserialize, Serialize};

use super::common::blocking;
use super::error::ErrorBody;
use super::session::{Staff, StaffCsrf};
use super::{ApiError, ApiJson, ApiPath, ApiQuery, AppState};
use crate::email::{EmailError, Lang, MessageState};
use crate::qr::QrPayload;

/// The e-mail routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/staff/prescriptions/{id}/email", post(email_code))
        .route("/v1/staff/outbox", get(outbox))
        .route("/v1/email/unsubscribe", get(unsubscribe))
        .route("/v1/patient/email", post(patient_switch))
}

fn email_error(e: EmailError) -> ApiError {
    match e {
        EmailError::NoContact => ApiError::not_found(
            "no_email",
            "this node holds no e-mail address for the prescription (addresses are kept only on the issuing hospital's node, and deleted when a closed prescription's retention period ends)",
        ),
        EmailError::BadToken => ApiError::forbidden("bad_token", "the unsubscribe link is not valid"),
        e => ApiError::internal(e),
    }
}

/// The e-mail button: the QR payload shown to the doctor after issue.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct EmailCodeRequest {
    /// The `RX1:` payload of the prescription.
    pub payload: String,
}

/// Whether a message was queued.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Queued {
    /// False when the QR mail had been queued before (it is sent once).
    pub queued: bool,
}

/// E-mails the QR code to the patient's address given at issue.
#[utoipa::path(
    post, path = "/v1/staff/prescriptions/{id}/email", tag = "doctor",
    params(
        ("id" = String, Path, description = "Prescription id, 32 hex characters"),
        ("x-csrf-token" = String, Header, description = "The session's CSRF token"),
    ),
    request_body = EmailCodeRequest,
    responses(
        (status = 200, description = "Queued, or queued before", body = Queued),
        (status = 400, description = "`bad_qr_payload`, or a payload of another prescription", body = ErrorBody),
        (status = 401, description = "`no_session`", body = ErrorBody),
        (status = 403, description = "`csrf_missing`, `csrf_mismatch`, `wrong_role`, `wrong_org`, `wrong_secret`", body = ErrorBody),
        (status = 404, description = "`unknown_prescription`, `no_email`", body = ErrorBody),
    )
)]
pub(super) async fn email_code(
    State(s): State<AppState>,
    staff: StaffCsrf,
    ApiPath(id): ApiPath<PrescriptionId>,
    ApiJson(req): ApiJson<EmailCodeRequest>,
) -> Result<Json<Queued>, ApiError> {
    let staff = staff.0;
    staff.require(&[Role::Practitioner], "e-mail a prescription's code")?;
    let payload = QrPayload::parse(req.payload.trim())
        .map_err(|e| ApiError::bad("bad_qr_payload", e.to_string()))?;
    if payload.id != id {
        return Err(ApiError::bad(
            "bad_qr_payload",
            "the payload is for another prescription",
        ));
    }
    let org = staff.org().clone();
    let st = s.clone();
    let queued = blocking(move || {
        let rec = st
            .chain
            .prescription(&id)?
            .ok_or_else(|| ApiError::not_found("unknown_prescription", "no such prescription"))?;
        if rec.hospital != org {
            return Err(ApiError::forbidden(
                "wrong_org",
                "another hospital issued this prescription",
            ));
        }
        if !rec.secret_matches(&payload.secret) {
            return Err(ApiError::forbidden(
                "wrong_secret",
                "the payload's secret does not open this prescription",
            ));
        }
        st.outbox
            .queue_qr(&st.chain, &rec, payload.encode())
            .map_err(email_error)
    })
    .await?;
    Ok(Json(Queued { queued }))
}

/// The unsubscribe link's query.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct UnsubscribeQuery {
    /// The prescription id.
    pub rx: PrescriptionId,
    /// The token from the e-mail.
    pub token: String,
}

/// Stops status e-mail for one prescription (the link in each status mail).
#[utoipa::path(
    get, path = "/v1/email/unsubscribe", tag = "patient",
    params(UnsubscribeQuery),
    responses(
        (status = 200, description = "A page saying status mail stopped", content_type = "text/html", body = String),
        (status = 400, description = "`bad_query`", body = ErrorBody),
        (status = 403, description = "`bad_token`", body = ErrorBody),
        (status = 404, description = "`no_email`", body = ErrorBody),
    )
)]
pub(super) async fn unsubscribe(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<UnsubscribeQuery>,
) -> Result<Response, ApiError> {
    let outbox = s.outbox.clone();
    let rx = q.rx;
    blocking(move || {
        outbox
            .set_subscribed(&rx, &q.token, false)
            .map_err(email_error)
    })
    .await?;
    let page = format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Unsubscribed</title>\
         <p>Status e-mails for prescription {} are stopped. 此处方的状态邮件已停止。</p></html>",
        rx.short()
    );
    Ok(([(CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response())
}

/// The patient page's switch.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct PatientEmailRequest {
    /// The `RX1:` payload (proves the holder).
    pub payload: String,
    /// Status mail on or off.
    pub subscribed: bool,
}

/// The switch's state.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Subscription {
    /// Status mail on.
    pub subscribed: bool,
}

/// Turns status e-mail on or off for the holder of the QR code.
#[utoipa::path(
    post, path = "/v1/patient/email", tag = "patient",
    request_body = PatientEmailRequest,
    responses(
        (status = 200, description = "The new state", body = Subscription),
        (status = 400, description = "`bad_qr_payload`", body = ErrorBody),
        (status = 403, description = "`wrong_secret`", body = ErrorBody),
        (status = 404, description = "`unknown_prescription`, `no_email` (ask the issuing hospital's node)", body = ErrorBody),
    )
)]
pub(super) async fn patient_switch(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<PatientEmailRequest>,
) -> Result<Json<Subscription>, ApiError> {
    let payload = QrPayload::parse(req.payload.trim())
        .map_err(|e| ApiError::bad("bad_qr_payload", e.to_string()))?;
    let st = s.clone();
    let on = req.subscribed;
    blocking(move || {
        let rec = st
            .chain
            .prescription(&payload.id)?
            .ok_or_else(|| ApiError::not_found("unknown_prescription", "no such prescription"))?;
        if !rec.secret_matches(&payload.secret) {
            return Err(ApiError::forbidden(
                "wrong_secret",
                "the code does not open this prescription",
            ));
        }
        st.outbox
            .set_subscribed_by_holder(&payload.id, on)
            .map_err(email_error)
    })
    .await?;
    Ok(Json(Subscription { subscribed: on }))
}

/// One outbox message, without the address's local part or any secret.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OutboxRow {
    /// The prescription.
    pub rx: PrescriptionId,
    /// Its short id.
    pub short_id: String,
    /// The event (`qr`, `claimed`, ...).
    pub kind: String,
    /// The language.
    pub lang: Lang,
    /// Where it stands.
    pub state: MessageState,
    /// Attempts made.
    pub attempts: u32,
    /// The last failure.
    pub last_error: Option<String>,
    /// The recipient's domain only.
    pub to_domain: String,
    /// The stable Message-ID.
    pub message_id: String,
    /// When queued, ms since the epoch.
    pub queued_at_ms: u64,
    /// When sent.
    pub sent_at_ms: Option<u64>,
}

/// The outbox of this node's hospital, newest first (the `/admin/outbox`
/// page). Only the staff admins of this node's organisation may read it:
/// it shows which prescriptions' patients were mailed, and when.
#[utoipa::path(
    get, path = "/v1/staff/outbox", tag = "doctor",
    responses(
        (status = 200, description = "Newest first, at most 500", body = Vec<OutboxRow>),
        (status = 401, description = "`no_session`", body = ErrorBody),
        (status = 403, description = "`wrong_role` (not a staff admin) or `wrong_org`", body = ErrorBody),
    )
)]
pub(super) async fn outbox(
    State(s): State<AppState>,
    staff: Staff,
) -> Result<Json<Vec<OutboxRow>>, ApiError> {
    staff.require(&[Role::Admin], "read the e-mail outbox")?;
    let mine = s.consortium().node(s.node_id).map(|(o, _)| o.id.clone());
    if mine.as_ref() != Some(staff.org()) {
        return Err(ApiError::forbidden(
            "wrong_org",
            "the outbox is shown to this node's organisation only",
        ));
    }
    let outbox = s.outbox.clone();
    let rows = blocking(move || outbox.list(500).map_err(email_error)).await?;
    Ok(Json(
        rows.into_iter()
            .map(|(state, m)| OutboxRow {
                rx: m.rx,
                short_id: m.short_id,
                kind: m.event.kind().to_string(),
                lang: m.lang,
                state,
                attempts: m.attempts,
                last_error: m.last_error,
                to_domain: m
                    .to
                    .rsplit_once('@')
                    .map_or(String::new(), |(_, d)| d.to_string()),
                message_id: m.message_id,
                queued_at_ms: m.queued_at_ms,
                sent_at_ms: m.sent_at_ms,
            })
            .collect(),
    ))
}
