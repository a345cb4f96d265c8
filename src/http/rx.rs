//! Prescriptions: public state, history, and the sealed content for holders
//! of a key.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use rxchain_contracts::state::{PrescriptionRecord, PublicStatus};
use rxchain_contracts::tx::{IssueRx, TxBody};
use rxchain_contracts::{Outcome, PrescriptionId, PublicKey, Timestamp, TxId};
use serde::Serialize;

use super::error::ErrorBody;
use super::{ApiError, ApiPath, AppState};
use crate::clock::now;

/// `GET /v1/prescriptions/{id}`, `GET /v1/prescriptions/{id}/sealed`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/prescriptions/{id}", get(prescription))
        .route("/v1/prescriptions/{id}/sealed", get(sealed))
}

/// Who signed a transaction, as far as the chain knows them.
#[derive(Serialize, Clone, utoipa::ToSchema)]
pub struct SignerView {
    /// The key.
    pub key: PublicKey,
    /// Display name, when the key is staff.
    pub name: Option<String>,
    /// Organisation, when the key is staff or an org admin.
    pub org: Option<String>,
    /// "practitioner", "pharmacist", …, "org_admin", or "patient" for the access key.
    pub role: String,
}

/// One step of a prescription's history.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// Transaction id.
    pub tx_id: TxId,
    /// Block height.
    pub height: u64,
    /// Position in the block.
    pub index: u32,
    /// Block time.
    pub at: Timestamp,
    /// Transaction kind.
    #[schema(value_type = String)]
    pub kind: &'static str,
    /// Who signed.
    pub signer: SignerView,
    /// Applied or refused with its reason.
    pub outcome: Outcome,
    /// The refusal's sentence, for people.
    pub message: Option<String>,
}

/// A prescription's public state. Nothing here names the patient.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PrescriptionView {
    /// Short id printed on slips.
    pub short_id: String,
    /// Status at this moment (expiry included).
    pub public_status: PublicStatus,
    /// The record.
    pub record: PrescriptionRecord,
    /// The prescriber.
    pub prescriber: SignerView,
    /// The issuing hospital's display name.
    pub hospital_name: String,
    /// Every transaction about it, refused ones included.
    pub history: Vec<HistoryEntry>,
    /// Per item, the most that may ever be dispensed (the chain's rule:
    /// quantity × (1 + repeats)).
    pub allowance: Vec<u64>,
    /// Per item, what may still be dispensed.
    pub remaining: Vec<u64>,
}

/// Describes a key for people.
pub fn describe(
    s: &AppState,
    key: &PublicKey,
    rx: Option<&PrescriptionRecord>,
) -> Result<SignerView, ApiError> {
    if let Some(org) = s.consortium().org_by_admin(key) {
        return Ok(SignerView {
            key: *key,
            name: Some(org.name.to_string()),
            org: Some(org.id.to_string()),
            role: "org_admin".into(),
        });
    }
    if let Some(st) = s.chain.staff(key)? {
        let role = serde_json::to_value(st.role)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        return Ok(SignerView {
            key: *key,
            name: Some(st.name.to_string()),
            org: Some(st.org.to_string()),
            role,
        });
    }
    let role = if rx.is_some_and(|r| &r.access_key == key) {
        "patient"
    } else {
        "unknown"
    };
    Ok(SignerView {
        key: *key,
        name: None,
        org: None,
        role: role.into(),
    })
}

fn parse_id(id: &str) -> Result<PrescriptionId, ApiError> {
    PrescriptionId::parse(id).map_err(|_| {
        ApiError::bad(
            "bad_prescription_id",
            "a prescription id is 32 hex characters",
        )
    })
}

/// Loads a prescription or answers 404.
pub fn load(s: &AppState, id: &PrescriptionId) -> Result<PrescriptionRecord, ApiError> {
    s.chain.prescription(id)?.ok_or_else(|| {
        ApiError::not_found(
            "unknown_prescription",
            "no prescription has this id on the chain",
        )
    })
}

/// The public view of a prescription with its history.
pub fn view(s: &AppState, rec: PrescriptionRecord) -> Result<PrescriptionView, ApiError> {
    let chain_id = s.genesis.chain_id.as_str();
    let mut history = Vec::new();
    for (height, index) in s.chain.history(&rec.id)? {
        let block = s
            .chain
            .block(height)?
            .ok_or_else(|| ApiError::internal("history points at a missing block"))?;
        let (Some(t), Some(outcome)) = (
            block.txs.get(index as usize),
            block.outcomes.get(index as usize),
        ) else {
            return Err(ApiError::internal("history points past a block"));
        };
        let message = match outcome {
            Outcome::Refused { reason } => Some(reason.to_string()),
            Outcome::Applied => None,
        };
        history.push(HistoryEntry {
            tx_id: t.tx.id(chain_id),
            height,
            index,
            at: block.header.timestamp,
            kind: t.tx.body.kind(),
            signer: describe(s, &t.tx.signer, Some(&rec))?,
            outcome: outcome.clone(),
            message,
        });
    }
    let hospital_name = s
        .consortium()
        .org(&rec.hospital)
        .map(|o| o.name.to_string())
        .unwrap_or_default();
    Ok(PrescriptionView {
        short_id: rec.id.short(),
        public_status: rec.public_status(now()),
        prescriber: describe(s, &rec.prescriber, Some(&rec))?,
        hospital_name,
        history,
        allowance: (0..rec.items.len()).map(|i| rec.allowance(i)).collect(),
        remaining: rec.remaining_allowance(),
        record: rec,
    })
}

/// A prescription's public state and history.
#[utoipa::path(
    get, path = "/v1/prescriptions/{id}", tag = "prescriptions",
    params(("id" = String, Path, description = "Prescription id, 32 hex characters")),
    responses(
        (status = 200, description = "The prescription", body = PrescriptionView),
        (status = 400, description = "`bad_prescription_id`", body = ErrorBody),
        (status = 404, description = "`unknown_prescription`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip(s))]
pub(super) async fn prescription(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<PrescriptionView>, ApiError> {
    let id = parse_id(&id)?;
    let rec = load(&s, &id)?;
    Ok(Json(view(&s, rec)?))
}

/// The issue transaction's sealed parts: ciphertext and key wraps. Only key
/// holders can open them; they are on the chain for everyone anyway.
#[utoipa::path(
    get, path = "/v1/prescriptions/{id}/sealed", tag = "prescriptions",
    params(("id" = String, Path, description = "Prescription id, 32 hex characters")),
    responses(
        (status = 200, description = "The issue transaction's body", body = IssueRx),
        (status = 400, description = "`bad_prescription_id`", body = ErrorBody),
        (status = 404, description = "`unknown_prescription`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip(s))]
pub(super) async fn sealed(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<IssueRx>, ApiError> {
    let id = parse_id(&id)?;
    let rec = load(&s, &id)?;
    Ok(Json(issue_body(&s, &rec)?))
}

/// When the retention period of `rec`'s personal data ended, if it has by
/// now (the later of this node's clock and the tip's block time): its key
/// wraps are then erased, or will be at this node's next sweep, and no one
/// is served its personal data any more (`store::erase`).
pub fn personal_data_erased_at(s: &AppState, rec: &PrescriptionRecord) -> Option<Timestamp> {
    let t = now().max(s.chain.tip().timestamp);
    let days = s.chain.consortium().params.personal_data_retention_days;
    rec.erased_at(t, days).filter(|at| t >= *at)
}

/// 410 `personal_data_erased` once the retention period of `rec`'s personal
/// data is over.
pub fn check_not_erased(s: &AppState, rec: &PrescriptionRecord) -> Result<(), ApiError> {
    match personal_data_erased_at(s, rec) {
        Some(at) => Err(erased(at)),
        None => Ok(()),
    }
}

/// The 410 for personal data erased at `at`.
pub fn erased(at: Timestamp) -> ApiError {
    ApiError::NotAdmitted(rxchain_contracts::Rejection::PersonalDataErased { at })
}

/// The issue transaction's body.
pub fn issue_body(s: &AppState, rec: &PrescriptionRecord) -> Result<IssueRx, ApiError> {
    let tx = s
        .chain
        .committed_tx(&rec.issue_tx)?
        .ok_or_else(|| ApiError::internal("issue tx not indexed"))?;
    match tx.tx.body {
        TxBody::Issue(b) => Ok(b),
        _ => Err(ApiError::internal("issue tx index points at another kind")),
    }
}
