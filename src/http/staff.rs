//! The doctor's and the pharmacist's endpoints, signed on the server.
//!
//! A signed-in staff member never handles a key: the node opens their
//! signing key from its key store ([`crate::accounts`]), builds the
//! transaction with [`crate::txbuild`], signs it as them, and submits it
//! through the very same `/v1/tx` handler external clients use, so
//! forwarding to the leader, waiting for the commit, replays and refusals
//! behave identically. The chain still names the individual signer.
//!
//! Also here: the formulary search the prescription form uses, and QR
//! rendering of a payload (`/v1/qr`).

use std::convert::Infallible;
use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rxchain_contracts::privacy::{self, ContentKey, PatientDetails, PrivateContent, WrappedKey};
use rxchain_contracts::state::{PrescriptionRecord, PublicStatus};
use rxchain_contracts::tx::{
    CancelReason, DeliveryStatus, DispenseLine, Fulfilment, Item, Role, TxBody,
};
use rxchain_contracts::{Genesis, OrgId, PrescriptionId, SecretKey, SignedTx, Timestamp};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

use super::session::{Staff, StaffCsrf};
use super::{ApiError, ApiJson, AppState};
use crate::mempool::Receipt;
use crate::producer::now;
use crate::qr::QrPayload;
use crate::txbuild::{self, IssueInput};

/// The demo formulary: synthetic drug entries the prescription form offers.
const FORMULARY_JSON: &str = include_str!("../../fixtures/formulary.json");

/// Formulary answers at most this many matches.
const FORMULARY_MATCHES: usize = 20;

/// Pixels (PNG) or user units (SVG) per QR module: a version-4 code is
/// then 328 units wide with its quiet zone, sharp on screens and in print.
const QR_SCALE: u32 = 8;

/// Lists answer at most this many prescriptions unless `limit` says otherwise.
const DEFAULT_LIST: usize = 200;
const MAX_LIST: usize = 1000;

/// Doctor, pharmacist, formulary and QR routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/formulary", get(formulary))
        .route("/v1/qr", post(qr))
        .route("/v1/staff/prescriptions", post(issue).get(my_prescriptions))
        .route("/v1/staff/prescriptions/{id}/cancel", post(cancel))
        .route("/v1/staff/claim", post(claim))
        .route("/v1/staff/dispense", post(dispense))
        .route("/v1/staff/release", post(release))
        .route("/v1/staff/delivery", post(delivery))
        .route(
            "/v1/staff/pharmacy/prescriptions",
            get(pharmacy_prescriptions),
        )
}

// ---- shared helpers ------------------------------------------------------

/// Submits a signed transaction through the node's own `/v1/tx` handler and
/// answers exactly what it answers: 200 with the receipt, the rule's 4xx
/// with the refusal (recorded on the chain), 202 while the commit is slow,
/// 503 when nothing was committed.
pub async fn submit(s: &AppState, tx: &SignedTx) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(tx).map_err(ApiError::internal)?;
    let req = Request::post("/v1/tx")
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .map_err(ApiError::internal)?;
    let resp = super::tx::router()
        .with_state(s.clone())
        .oneshot(req)
        .await
        .map_err(|e: Infallible| -> ApiError { match e {} })?;
    Ok(resp)
}

/// Like [`submit`], but reads the receipt out of a 200; any other answer
/// is handed back untouched.
pub async fn submit_for_receipt(
    s: &AppState,
    tx: &SignedTx,
) -> Result<Result<Receipt, Response>, ApiError> {
    let resp = submit(s, tx).await?;
    if resp.status() != StatusCode::OK {
        return Ok(Err(resp));
    }
    let bytes = axum::body::to_bytes(resp.into_body(), 1024 * 1024)
        .await
        .map_err(ApiError::internal)?;
    Ok(Ok(
        serde_json::from_slice(&bytes).map_err(ApiError::internal)?
    ))
}

/// Signs `body` as the signed-in staff member and submits it.
async fn sign_and_submit(
    s: &AppState,
    staff: &Staff,
    build: impl FnOnce(&Genesis, &SecretKey) -> SignedTx,
) -> Result<Response, ApiError> {
    // One ECDSA signature is well under a millisecond: done inline, like
    // the signature check in `/v1/tx`.
    let key = staff.signing_key(s)?;
    let tx = build(&s.genesis, &key);
    tracing::info!(tx_id = %tx.tx.id(s.genesis.chain_id.as_str()), kind = tx.tx.body.kind(), "signed on behalf of staff");
    submit(s, &tx).await
}

/// Standard base64 with padding, as `data:` URLs and `atob` expect. The
/// encoder is base64ct's (constant-time), re-exported by the argon2 crate.
pub fn base64(bytes: &[u8]) -> Result<String, ApiError> {
    use argon2::password_hash::Encoding;
    let mut buf = vec![0u8; Encoding::B64.encoded_len(bytes)];
    let mut out = Encoding::B64
        .encode(bytes, &mut buf)
        .map_err(ApiError::internal)?
        .to_string();
    while out.len() % 4 != 0 {
        out.push('=');
    }
    Ok(out)
}

/// The QR code of `text` as an SVG document and a base64 PNG. Rendering is
/// CPU work, so it runs on a blocking thread.
pub async fn qr_images(text: String) -> Result<(String, String), ApiError> {
    tokio::task::spawn_blocking(move || {
        let svg = crate::qr::render_svg(&text, QR_SCALE).map_err(ApiError::internal)?;
        let png = crate::qr::render_png(&text, QR_SCALE).map_err(ApiError::internal)?;
        Ok((svg, base64(&png)?))
    })
    .await
    .map_err(ApiError::internal)?
}

/// Parses a scanned or typed QR payload, or a patient link holding one.
pub fn parse_payload(text: &str) -> Result<QrPayload, ApiError> {
    QrPayload::parse_scanned(text).map_err(|e| ApiError::bad("bad_qr_payload", e.to_string()))
}

/// Parses a prescription id from a path segment.
fn parse_id(id: &str) -> Result<PrescriptionId, ApiError> {
    PrescriptionId::parse(id).map_err(|_| {
        ApiError::bad(
            "bad_prescription_id",
            "a prescription id is 32 hex characters",
        )
    })
}

/// A query string, with failures as JSON 400s.
pub fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| ApiError::bad("bad_query", e.body_text()))
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

// ---- formulary -----------------------------------------------------------

/// One formulary entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FormularyEntry {
    /// ATC code.
    pub atc: String,
    /// Drug name.
    pub name: String,
    /// Strength, e.g. "500 mg".
    pub strength: String,
    /// Dose form, e.g. "capsule".
    pub form: String,
    /// Unit of quantities, e.g. "capsules".
    pub unit: String,
    /// Units in a pack; the form's default quantity.
    pub pack: u32,
    /// A controlled drug.
    pub controlled: bool,
}

/// The formulary, parsed once.
pub fn formulary_entries() -> Result<&'static [FormularyEntry], ApiError> {
    /// The file is a list of entries, or an object holding one (so a
    /// note can sit beside the list).
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum File {
        List(Vec<FormularyEntry>),
        Wrapped {
            #[serde(alias = "entries", alias = "formulary")]
            drugs: Vec<FormularyEntry>,
        },
    }
    static ENTRIES: LazyLock<Result<Vec<FormularyEntry>, String>> = LazyLock::new(|| {
        match serde_json::from_str::<File>(FORMULARY_JSON).map_err(|e| e.to_string())? {
            File::List(v) | File::Wrapped { drugs: v } => Ok(v),
        }
    });
    ENTRIES
        .as_deref()
        .map_err(|e| ApiError::internal(format!("fixtures/formulary.json does not parse: {e}")))
}

/// The formulary search.
#[derive(Deserialize)]
pub struct FormularyQuery {
    /// Start of a drug name or of an ATC code.
    #[serde(default)]
    pub q: String,
}

/// Matches the start of the name or of the ATC code first, then the start
/// of any later word of the name; at most [`FORMULARY_MATCHES`]. Matches
/// inside a word are left out on purpose: "amox" must not offer tamoxifen,
/// a look-alike name being a classic prescribing error.
pub fn search_formulary(entries: &[FormularyEntry], q: &str) -> Vec<FormularyEntry> {
    let q = q.trim().to_lowercase();
    let mut hits: Vec<(u8, &FormularyEntry)> = entries
        .iter()
        .filter_map(|e| {
            let name = e.name.to_lowercase();
            let rank =
                if q.is_empty() || name.starts_with(&q) || e.atc.to_lowercase().starts_with(&q) {
                    0
                } else if name
                    .split(|c: char| !c.is_alphanumeric())
                    .any(|w| w.starts_with(&q))
                {
                    1
                } else {
                    return None;
                };
            Some((rank, e))
        })
        .collect();
    hits.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1.name.cmp(&b.1.name))
            .then_with(|| a.1.strength.cmp(&b.1.strength))
    });
    hits.into_iter()
        .take(FORMULARY_MATCHES)
        .map(|(_, e)| e.clone())
        .collect()
}

#[tracing::instrument(skip_all)]
async fn formulary(
    _staff: Staff,
    q: Result<Query<FormularyQuery>, QueryRejection>,
) -> Result<Json<Vec<FormularyEntry>>, ApiError> {
    let q = query(q)?;
    if q.q.len() > 100 {
        return Err(ApiError::bad(
            "bad_query",
            "a formulary search has at most 100 characters",
        ));
    }
    Ok(Json(search_formulary(formulary_entries()?, &q.q)))
}

// ---- QR ------------------------------------------------------------------

/// A payload to draw.
#[derive(Deserialize)]
pub struct QrRequest {
    /// The QR payload text.
    pub payload: String,
}

/// A drawn QR code.
#[derive(Serialize)]
pub struct QrImages {
    /// Standalone SVG document.
    pub svg: String,
    /// PNG, base64.
    pub png_base64: String,
}

/// Draws a payload's QR code. No session needed: the caller already holds
/// the payload, and drawing it reveals nothing more.
#[tracing::instrument(skip_all)]
async fn qr(ApiJson(req): ApiJson<QrRequest>) -> Result<Response, ApiError> {
    let payload = parse_payload(&req.payload)?;
    let (svg, png_base64) = qr_images(payload.encode()).await?;
    Ok(no_store(Json(QrImages { svg, png_base64 }).into_response()))
}

// ---- doctor --------------------------------------------------------------

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
    let (receipt, poll, status) = match submit_for_receipt(&s, &new.tx).await? {
        Ok(r) => (Some(r), None, StatusCode::OK),
        Err(resp) if resp.status() == StatusCode::ACCEPTED => {
            // The secret must reach the doctor even when the commit is
            // slow, or the prescription could never be used.
            let poll = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (None, poll, StatusCode::ACCEPTED)
        }
        Err(refused) => return Ok(refused),
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

/// A list's size.
#[derive(Deserialize)]
pub struct ListQuery {
    /// At most this many, newest first.
    #[serde(default)]
    pub limit: Option<usize>,
}

fn list_limit(q: &ListQuery) -> Result<usize, ApiError> {
    match q.limit {
        None => Ok(DEFAULT_LIST),
        Some(n) if (1..=MAX_LIST).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad(
            "bad_limit",
            format!("limit is 1 to {MAX_LIST}"),
        )),
    }
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

// ---- pharmacist ----------------------------------------------------------

/// A claim from a scanned code.
#[derive(Deserialize)]
pub struct ClaimRequest {
    /// The QR payload (or a patient link holding it).
    pub payload: String,
    /// The claiming pharmacy; optional, and when given it must be the session's.
    #[serde(default)]
    pub pharmacy: Option<OrgId>,
}

#[tracing::instrument(skip_all, fields(username = %staff.0.account().username))]
async fn claim(
    State(s): State<AppState>,
    staff: StaffCsrf,
    ApiJson(req): ApiJson<ClaimRequest>,
) -> Result<Response, ApiError> {
    let staff = staff.0;
    staff.require(&[Role::Pharmacist], "claim prescriptions")?;
    if let Some(p) = &req.pharmacy {
        staff.act_for(p)?;
    }
    let payload = parse_payload(&req.payload)?;
    let pharmacy = staff.org().clone();
    sign_and_submit(&s, &staff, |g, k| txbuild::claim(g, k, &pharmacy, &payload)).await
}

/// A dispense.
#[derive(Deserialize)]
pub struct DispenseRequest {
    /// Which prescription.
    pub id: PrescriptionId,
    /// What is handed out: `{item, quantity, batch}`.
    pub lines: Vec<DispenseLine>,
    /// Close the prescription after this fill.
    #[serde(default)]
    pub complete: bool,
}

#[tracing::instrument(skip_all, fields(username = %staff.0.account().username, id = %req.id))]
async fn dispense(
    State(s): State<AppState>,
    staff: StaffCsrf,
    ApiJson(req): ApiJson<DispenseRequest>,
) -> Result<Response, ApiError> {
    let staff = staff.0;
    staff.require(&[Role::Pharmacist], "dispense")?;
    if req.lines.is_empty() && !req.complete {
        return Err(ApiError::bad(
            "no_lines",
            "a dispense needs at least one line unless it completes the prescription",
        ));
    }
    if req.lines.len() > rxchain_contracts::tx::limits::MAX_LINES {
        return Err(ApiError::bad(
            "too_many_lines",
            format!(
                "at most {} lines per dispense",
                rxchain_contracts::tx::limits::MAX_LINES
            ),
        ));
    }
    let DispenseRequest {
        id,
        lines,
        complete,
    } = req;
    sign_and_submit(&s, &staff, |g, k| {
        txbuild::dispense(g, k, id, lines, complete)
    })
    .await
}

/// A release.
#[derive(Deserialize)]
pub struct ReleaseRequest {
    /// Which prescription.
    pub id: PrescriptionId,
}

#[tracing::instrument(skip_all, fields(username = %staff.0.account().username, id = %req.id))]
async fn release(
    State(s): State<AppState>,
    staff: StaffCsrf,
    ApiJson(req): ApiJson<ReleaseRequest>,
) -> Result<Response, ApiError> {
    let staff = staff.0;
    staff.require(&[Role::Pharmacist], "release prescriptions")?;
    sign_and_submit(&s, &staff, |g, k| txbuild::release(g, k, req.id)).await
}

/// A delivery or pickup event.
#[derive(Deserialize)]
pub struct DeliveryRequest {
    /// Which prescription.
    pub id: PrescriptionId,
    /// The status reached.
    pub status: DeliveryStatus,
}

#[tracing::instrument(skip_all, fields(username = %staff.0.account().username, id = %req.id))]
async fn delivery(
    State(s): State<AppState>,
    staff: StaffCsrf,
    ApiJson(req): ApiJson<DeliveryRequest>,
) -> Result<Response, ApiError> {
    let staff = staff.0;
    staff.require(&[Role::Pharmacist, Role::Courier], "record delivery events")?;
    sign_and_submit(&s, &staff, |g, k| {
        txbuild::delivery(g, k, req.id, req.status)
    })
    .await
}

/// A prescription in the pharmacy's list.
#[derive(Serialize)]
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
fn open_handover(
    s: &AppState,
    rec: &PrescriptionRecord,
    org: &OrgId,
    key: &SecretKey,
) -> Result<(Option<String>, Option<String>), ApiError> {
    let Some(wrap) = handover_for(s, rec, org)? else {
        return Ok((None, None));
    };
    let Ok(secret) = privacy::unwrap_with_key(key, &privacy::handover_context(&rec.id), &wrap)
    else {
        return Ok((None, None));
    };
    let payload = QrPayload::new(rec.id, privacy::AccessSecret::from_bytes(secret));
    // A hand-over is written by whoever holds the secret; only one that
    // matches the chain's access key is the patient's.
    if payload.secret.signing_key().public() != rec.access_key {
        return Ok((None, None));
    }
    let address = match &rec.fulfilment {
        Some(Fulfilment::Delivery { address, .. }) => {
            let body = super::rx::issue_body(s, rec)?;
            privacy::unwrap_with_secret(
                &payload.secret,
                &privacy::content_context(&rec.id),
                &body.key_for_patient,
            )
            .ok()
            .and_then(|ck| privacy::open(&ck, &privacy::address_context(&rec.id), address).ok())
            .and_then(|b| String::from_utf8(b).ok())
        }
        _ => None,
    };
    Ok((Some(payload.encode()), address))
}

/// Prescriptions assigned to or claimed by the session's pharmacy, newest first.
#[tracing::instrument(skip_all, fields(username = %staff.account().username))]
async fn pharmacy_prescriptions(
    State(s): State<AppState>,
    staff: Staff,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    staff.require(
        &[Role::Pharmacist, Role::Courier],
        "list a pharmacy's prescriptions",
    )?;
    let limit = list_limit(&query(q)?)?;
    let org = staff.org().clone();
    let data_key = s.accounts.data_key(&org);
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
        for (rec, assigned_here, claimed_here) in recs {
            let status = rec.public_status(t);
            let open = !matches!(
                status,
                PublicStatus::Completed | PublicStatus::Cancelled | PublicStatus::Expired
            );
            let (payload, delivery_address) = match &data_key {
                Some(k) if assigned_here && open => open_handover(&st, &rec, &org, k)?,
                _ => (None, None),
            };
            out.push(PharmacyPrescription {
                id: rec.id,
                short_id: rec.id.short(),
                public_status: status,
                hospital_name: st
                    .genesis
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
        Ok(out)
    })
    .await?;
    // Payloads and addresses are secrets and personal data.
    Ok(no_store(Json(rows).into_response()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_formulary_parses_and_searches() {
        let f = formulary_entries().expect("fixtures/formulary.json parses");
        assert!(!f.is_empty());
        let first = &f[0];
        let hits = search_formulary(f, &first.name[..3]);
        assert!(hits.iter().any(|h| h.name == first.name));
        assert!(search_formulary(f, "").len() <= FORMULARY_MATCHES);
        let by_atc = search_formulary(f, &first.atc[..3]);
        assert!(by_atc.iter().any(|h| h.atc == first.atc));
        assert!(search_formulary(f, "zzzzzz-no-such-drug").is_empty());
        assert!(
            search_formulary(f, "amox")
                .iter()
                .all(|h| !h.name.to_lowercase().starts_with("tam")),
            "no matches inside a word"
        );
    }

    #[test]
    fn dates_are_checked() {
        assert!(valid_date("1990-02-28"));
        assert!(valid_date("2000-02-29"));
        assert!(!valid_date("1900-02-29"));
        assert!(!valid_date("1990-13-01"));
        assert!(!valid_date("1990-1-01"));
        assert!(!valid_date("19a0-01-01"));
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b"f").unwrap(), "Zg==");
        assert_eq!(base64(b"fo").unwrap(), "Zm8=");
        assert_eq!(base64(b"foo").unwrap(), "Zm9v");
    }
}
