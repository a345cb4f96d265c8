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

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use rxchain_contracts::privacy::{self, ContentKey, PatientDetails, PrivateContent, WrappedKey};
use rxchain_contracts::state::PublicStatus;
use rxchain_contracts::tx::{CancelReason, Item, Role, TxBody};
use rxchain_contracts::{Genesis, PrescriptionId, SecretKey, Timestamp};
use serde::{Deserialize, Serialize};

use super::common::{
    blocking, list_limit, no_store, parse_id, qr_images, query, sign_and_submit, ListQuery,
};
use super::session::{Staff, StaffCsrf};
use super::tx::receipt_response;
use super::{ApiError, ApiJson, AppState};
use crate::clock::now;
use crate::mempool::Receipt;
use crate::service::submit::{poll_url, submit, Submitted};
use crate::txbuild::{self, IssueInput};

/// The doctor's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/staff/prescriptions", post(issue).get(my_prescriptions))
        .route("/v1/staff/prescriptions/{id}/cancel", post(cancel))
}

/// What the prescription form sends.
#[derive(Deserialize)]
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
}

/// The answer to an issue. `payload` carries the access secret: shown to
/// the doctor once, for the patient.
#[derive(Serialize)]
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

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// A `YYYY-MM-DD` date that exists.
fn valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| {
        s.get(r)
            .filter(|p| p.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|p| p.parse::<u32>().ok())
    };
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1900..=2999).contains(&y) && (1..=days).contains(&d)
}

/// Checks the form beyond its JSON shape, with a sentence per problem.
fn check_issue(g: &Genesis, r: &IssueRequest) -> Result<(), ApiError> {
    use rxchain_contracts::tx::limits;
    let bad = |code: &'static str, m: String| Err(ApiError::bad(code, m));
    if r.items.is_empty() || r.items.len() > limits::MAX_ITEMS {
        return bad(
            "bad_items",
            format!("a prescription has 1 to {} items", limits::MAX_ITEMS),
        );
    }
    if r.dosage.len() != r.items.len() {
        return bad(
            "bad_dosage",
            format!(
                "give one dosage instruction per item: {} items, {} instructions",
                r.items.len(),
                r.dosage.len()
            ),
        );
    }
    if let Some(i) = r
        .dosage
        .iter()
        .position(|d| d.trim().is_empty() || chars(d) > 500)
    {
        return bad(
            "bad_dosage",
            format!("the dosage of item {} must have 1 to 500 characters", i + 1),
        );
    }
    if r.repeats > limits::MAX_REPEATS {
        return bad(
            "bad_repeats",
            format!("at most {} repeat fills", limits::MAX_REPEATS),
        );
    }
    let controlled = r.items.iter().any(|i| i.controlled);
    let max_days = if controlled {
        g.params.controlled_validity_days
    } else {
        g.params.max_validity_days
    };
    if let Some(d) = r.valid_days {
        if d == 0 || d > max_days {
            let kind = if controlled {
                "a prescription with a controlled drug"
            } else {
                "a prescription"
            };
            return bad(
                "bad_validity",
                format!("{kind} is valid for 1 to {max_days} days"),
            );
        }
    }
    let p = &r.patient;
    if p.name.trim().is_empty() || chars(&p.name) > 200 {
        return bad(
            "bad_patient",
            "the patient's name must have 1 to 200 characters".into(),
        );
    }
    if !valid_date(&p.birth_date) {
        return bad(
            "bad_patient",
            "the patient's date of birth must be a date written YYYY-MM-DD".into(),
        );
    }
    if p.identifier.trim().is_empty() || chars(&p.identifier) > 64 {
        return bad(
            "bad_patient",
            "the patient's identifier must have 1 to 64 characters".into(),
        );
    }
    if let Some(e) = &p.email {
        if chars(e) > 254 || !e.contains('@') || e.contains(char::is_whitespace) {
            return bad(
                "bad_patient",
                "the patient's e-mail address is not valid".into(),
            );
        }
    }
    if r.notes.as_deref().is_some_and(|n| chars(n) > 2000) {
        return bad("bad_notes", "notes have at most 2000 characters".into());
    }
    Ok(())
}

/// Issues a prescription signed by the doctor, sealed for the patient's QR
/// code, the hospital and the regulators.
#[tracing::instrument(skip_all, fields(username = %staff.0.account().username))]
async fn issue(
    State(s): State<AppState>,
    staff: StaffCsrf,
    ApiJson(req): ApiJson<IssueRequest>,
) -> Result<Response, ApiError> {
    let staff = staff.0;
    staff.require(&[Role::Practitioner], "issue prescriptions")?;
    check_issue(&s.genesis, &req)?;
    let key = staff.signing_key(&s)?;
    let genesis = s.genesis.clone();
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
    let TxBody::Issue(body) = &new.tx.tx.body else {
        return Err(ApiError::internal("txbuild::issue built another kind"));
    };
    let controlled = body.items.iter().any(|i| i.controlled);
    let default_days = if controlled {
        s.genesis.params.controlled_validity_days
    } else {
        s.genesis.params.default_validity_days
    };
    // The same rule the chain applies to an absent `valid_until`.
    let valid_until = body
        .valid_until
        .unwrap_or(body.valid_from.plus_days(default_days));
    tracing::info!(tx_id = %new.tx.tx.id(s.genesis.chain_id.as_str()), id = %new.payload.id, "issue signed on behalf of staff");
    let (receipt, poll, status) = match submit(&s, new.tx.clone()).await? {
        Submitted::Committed(r) if r.outcome.is_applied() => (Some(r), None, StatusCode::OK),
        // Refused by a chain rule: the refusal, with its receipt.
        Submitted::Committed(r) => return Ok(receipt_response(r)),
        // The secret must reach the doctor even when the commit is slow,
        // or the prescription could never be used.
        Submitted::Pending(id) => (None, Some(poll_url(&id)), StatusCode::ACCEPTED),
        Submitted::Relayed(r) => return Err(ApiError::Relayed(r)),
    };
    let text = new.payload.encode();
    let (qr_svg, qr_png_base64) = qr_images(text.clone()).await?;
    let answer = Issued {
        id: new.payload.id,
        short_id: new.payload.id.short(),
        receipt,
        poll,
        patient_link: new.payload.patient_link(""),
        payload: text,
        qr_svg,
        qr_png_base64,
        valid_until,
    };
    Ok(no_store((status, Json(answer)).into_response()))
}

/// One of the doctor's prescriptions.
#[derive(Serialize)]
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
    privacy::unwrap_with_key(key, &privacy::content_context(id), wrap)
        .ok()
        .map(ContentKey::from_bytes)
}

/// The signed-in doctor's prescriptions, newest first, with patient names.
#[tracing::instrument(skip_all, fields(username = %staff.account().username))]
async fn my_prescriptions(
    State(s): State<AppState>,
    staff: Staff,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<MyPrescription>>, ApiError> {
    staff.require(&[Role::Practitioner], "list a prescriber's prescriptions")?;
    let limit = list_limit(&query(q)?)?;
    let me = staff.account().public_key;
    let org = staff.org().clone();
    let data_key = s.accounts.data_key(&org);
    let st = s.clone();
    // Index scans and one ECDH per row: blocking work.
    let rows = blocking(move || {
        let mut recs = Vec::new();
        for id in st.chain.by_prescriber(&me)? {
            if let Some(r) = st.chain.prescription(&id)? {
                recs.push(r);
            }
        }
        recs.sort_by(|a, b| b.issued_at.cmp(&a.issued_at));
        recs.truncate(limit);
        let t = now();
        let mut out = Vec::with_capacity(recs.len());
        for rec in recs {
            // The hospital's wrap opens with the hospital's data key only;
            // a prescription from the doctor's earlier employer stays sealed.
            let name = match &data_key {
                Some(k) if rec.hospital == org => {
                    let body = super::rx::issue_body(&st, &rec)?;
                    content_with_key(&rec.id, &body.key_for_hospital, k)
                        .and_then(|ck| privacy::open_content(&rec.id, &body.sealed, &ck).ok())
                        .map(|c| c.patient.name)
                }
                _ => None,
            };
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
        Ok(out)
    })
    .await?;
    Ok(Json(rows))
}

/// A cancellation by the prescriber.
#[derive(Deserialize)]
pub struct CancelRequest {
    /// Why; `prescriber_error` when absent.
    #[serde(default)]
    pub reason: Option<CancelReason>,
}

#[tracing::instrument(skip_all, fields(username = %staff.0.account().username, %id))]
async fn cancel(
    State(s): State<AppState>,
    staff: StaffCsrf,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CancelRequest>,
) -> Result<Response, ApiError> {
    let staff = staff.0;
    staff.require(&[Role::Practitioner], "cancel prescriptions")?;
    let id = parse_id(&id)?;
    let rec = super::rx::load(&s, &id)?;
    // Another hospital's prescription is not this session's business; the
    // chain would refuse it too, but it need not be signed at all.
    staff.act_for(&rec.hospital)?;
    let reason = req.reason.unwrap_or(CancelReason::PrescriberError);
    sign_and_submit(&s, &staff, |g, k| txbuild::cancel(g, k, id, reason)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_checked() {
        assert!(valid_date("1990-02-28"));
        assert!(valid_date("2000-02-29"));
        assert!(!valid_date("1900-02-29"));
        assert!(!valid_date("1990-13-01"));
        assert!(!valid_date("1990-1-01"));
        assert!(!valid_date("19a0-01-01"));
    }
}
