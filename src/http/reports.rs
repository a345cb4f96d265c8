//! The regulator's reports over HTTP: dispensing volumes grouped five ways,
//! the same fills as CSV, controlled-drug volumes, alerts (refused
//! attempts), the chain's head, and a full verification of this node's
//! chain on request.
//!
//! The handlers only check the caller and the query, run the projection
//! from [`crate::query`] (or [`crate::store::verify`]) on a blocking thread,
//! since a year of fills is many blocks to decode, and shape the answer.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rxchain_contracts::tx::Role;
use rxchain_contracts::{Hash, PrescriptionId, Timestamp, TxId};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::common::{blocking, query};
use super::rx::{describe, SignerView};
use super::session::{Staff, StaffCsrf};
use super::{ApiError, AppState};
use crate::accounts::Verification;
use crate::clock::now;
use crate::query::csv_export::dispensing_csv as csv_bytes;
use crate::query::day::{Day, DayRange};
use crate::query::reports::{self as projections, Controlled, Dispensing, GroupBy};
use crate::store::verify::verify_chain;

/// `/v1/reports/...`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/reports/dispensing", get(dispensing))
        .route("/v1/reports/dispensing.csv", get(dispensing_csv))
        .route("/v1/reports/controlled", get(controlled))
        .route("/v1/reports/alerts", get(alerts))
        .route("/v1/reports/chain", get(chain))
        .route("/v1/reports/verify", post(verify))
}

/// A report's range and grouping.
#[derive(Deserialize)]
pub struct RangeQuery {
    /// First day, `YYYY-MM-DD` (UTC); 30 days before `to` when absent.
    #[serde(default)]
    pub from: Option<String>,
    /// Last day, inclusive; today when absent.
    #[serde(default)]
    pub to: Option<String>,
    /// How to group the dispensing report.
    #[serde(default)]
    pub group_by: GroupBy,
}

/// Parses one of the range's days, naming the parameter in the refusal.
fn parse_day(field: &str, s: &str) -> Result<Day, ApiError> {
    Day::parse(s).map_err(|_| {
        ApiError::bad(
            "bad_date",
            format!("{field} must be a date written YYYY-MM-DD, not {s:?}"),
        )
    })
}

fn range(q: &RangeQuery) -> Result<DayRange, ApiError> {
    let to = match &q.to {
        Some(t) => parse_day("to", t)?,
        None => Day::today(),
    };
    let from = q
        .from
        .as_deref()
        .map(|f| parse_day("from", f))
        .transpose()?;
    DayRange::new(from, to).map_err(|e| ApiError::bad("bad_range", e.to_string()))
}

fn regulator(staff: &Staff, action: &str) -> Result<(), ApiError> {
    staff.require(&[Role::RegulatorOfficer], action)
}

#[tracing::instrument(skip_all, fields(username = %staff.account().username))]
async fn dispensing(
    State(s): State<AppState>,
    staff: Staff,
    q: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Json<Dispensing>, ApiError> {
    regulator(&staff, "read dispensing reports")?;
    let q = query(q)?;
    let r = range(&q)?;
    let chain = s.chain.clone();
    Ok(Json(
        blocking(move || {
            projections::dispensing(&chain, r, q.group_by).map_err(ApiError::internal)
        })
        .await?,
    ))
}

#[tracing::instrument(skip_all, fields(username = %staff.account().username))]
async fn dispensing_csv(
    State(s): State<AppState>,
    staff: Staff,
    q: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    regulator(&staff, "export dispensing data")?;
    let r = range(&query(q)?)?;
    let chain = s.chain.clone();
    let bytes = blocking(move || csv_bytes(&chain, r).map_err(ApiError::internal)).await?;
    let disposition = format!(
        "attachment; filename=\"dispensing-{}-{}.csv\"",
        r.from(),
        r.to()
    );
    Ok((
        StatusCode::OK,
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

#[tracing::instrument(skip_all, fields(username = %staff.account().username))]
async fn controlled(
    State(s): State<AppState>,
    staff: Staff,
    q: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Json<Controlled>, ApiError> {
    regulator(&staff, "read controlled-drug reports")?;
    let r = range(&query(q)?)?;
    let chain = s.chain.clone();
    Ok(Json(
        blocking(move || projections::controlled(&chain, r).map_err(ApiError::internal)).await?,
    ))
}

// ---- alerts --------------------------------------------------------------

/// How many alerts.
#[derive(Deserialize)]
pub struct AlertsQuery {
    /// At most this many, newest first; 100 when absent.
    #[serde(default)]
    pub limit: Option<usize>,
}

/// One refused attempt.
#[derive(Serialize)]
pub struct Alert {
    /// Block time.
    pub at: Timestamp,
    /// Block height.
    pub height: u64,
    /// The refused transaction.
    pub tx_id: TxId,
    /// Its kind, e.g. `dispense`.
    pub kind: &'static str,
    /// The refusal's code, e.g. `already_dispensed`.
    pub code: &'static str,
    /// The refusal for people.
    pub message: String,
    /// The prescription it was about.
    pub prescription: Option<PrescriptionId>,
    /// Its short id.
    pub short_id: Option<String>,
    /// Who signed.
    pub signer: SignerView,
}

fn alerts_list(s: &AppState, limit: usize) -> Result<Vec<Alert>, ApiError> {
    projections::refusals(&s.chain, limit)
        .map_err(ApiError::internal)?
        .into_iter()
        .map(|r| {
            Ok(Alert {
                signer: describe(s, &r.signer, r.record.as_ref())?,
                at: r.at,
                height: r.height,
                tx_id: r.tx_id,
                kind: r.kind,
                code: r.code,
                message: r.message,
                short_id: r.prescription.map(|p| p.short()),
                prescription: r.prescription,
            })
        })
        .collect()
}

#[tracing::instrument(skip_all, fields(username = %staff.account().username))]
async fn alerts(
    State(s): State<AppState>,
    staff: Staff,
    q: Result<Query<AlertsQuery>, QueryRejection>,
) -> Result<Json<Vec<Alert>>, ApiError> {
    regulator(&staff, "read alerts")?;
    let limit = match query(q)?.limit {
        None => 100,
        Some(n) if (1..=1000).contains(&n) => n,
        Some(_) => return Err(ApiError::bad("bad_limit", "limit is 1 to 1000")),
    };
    let st = s.clone();
    Ok(Json(blocking(move || alerts_list(&st, limit)).await?))
}

// ---- chain and verification ---------------------------------------------

/// The chain's head as the regulator sees it.
#[derive(Serialize)]
pub struct ChainReport {
    /// Height of the last block.
    pub height: u64,
    /// Its hash.
    pub hash: Hash,
    /// Digest of the whole state.
    pub state_digest: Hash,
    /// The last full verification on this node, if any.
    pub last_verification: Option<Verification>,
    /// Whether a verification is running now.
    pub verification_running: bool,
}

#[tracing::instrument(skip_all, fields(username = %staff.account().username))]
async fn chain(State(s): State<AppState>, staff: Staff) -> Result<Json<ChainReport>, ApiError> {
    regulator(&staff, "read the chain report")?;
    let tip = s.chain.tip();
    let chain = s.chain.clone();
    let state_digest = blocking(move || Ok(chain.try_state_digest()?)).await?;
    Ok(Json(ChainReport {
        height: tip.height,
        hash: tip.hash,
        state_digest,
        last_verification: s.accounts.last_verification()?,
        verification_running: s.accounts.verification_running(),
    }))
}

/// Re-verifies this node's whole chain and words the result for the record.
fn verification(s: &AppState) -> Verification {
    match verify_chain(&s.chain, None) {
        Ok(v) => Verification {
            at: now(),
            ok: true,
            height: v.height,
            message: format!(
                "{} blocks and {} transactions verify: hash links, block signatures, every transaction signature, every outcome, and the stored state",
                v.height, v.txs
            ),
        },
        Err(e) => Verification {
            at: now(),
            ok: false,
            height: e.height(),
            message: e.to_string(),
        },
    }
}

#[tracing::instrument(skip_all, fields(username = %staff.0.account().username))]
async fn verify(State(s): State<AppState>, staff: StaffCsrf) -> Result<Response, ApiError> {
    regulator(&staff.0, "verify the chain")?;
    if !s.accounts.begin_verification() {
        return Ok((StatusCode::ACCEPTED, Json(json!({"status": "already_running",
            "message": "A verification is already running; its result appears in /v1/reports/chain."}))).into_response());
    }
    let st = s.clone();
    // Detached on purpose: the verification outlives the request and records
    // its own result; it is CPU work, so it runs on a blocking thread.
    tokio::spawn(async move {
        let worker = st.clone();
        let result = tokio::task::spawn_blocking(move || verification(&worker))
            .await
            .unwrap_or_else(|e| Verification {
                at: now(),
                ok: false,
                height: 0,
                message: format!("the verification stopped: {e}"),
            });
        if result.ok {
            tracing::info!(height = result.height, "chain verification passed");
        } else {
            tracing::error!(height = result.height, message = %result.message, "chain verification FAILED");
        }
        if let Err(e) = st.accounts.finish_verification(&result) {
            tracing::error!(error = %e, "recording the verification failed");
        }
    });
    Ok((StatusCode::ACCEPTED, Json(json!({"status": "started",
        "message": "The verification runs in the background; its result appears in /v1/reports/chain."}))).into_response())
}
