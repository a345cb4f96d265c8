//! The regulator's reports over HTTP: dispensing volumes grouped five ways,
//! the same fills as CSV, controlled-drug volumes, alerts (refused
//! attempts), the chain's head, and a full verification of this node's
//! chain on request.
//!
//! The handlers only check the caller and the query, run the projection
//! from [`crate::query`] (or [`crate::store::verify`]) on a blocking thread,
//! since a year of fills is many blocks to decode, and shape the answer.

use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rxchain_contracts::tx::Role;
use rxchain_contracts::{Hash, PrescriptionId, Rejection, Timestamp, TxId};
use serde::{Deserialize, Serialize};

use super::common::blocking;
use super::error::ErrorBody;
use super::rx::{describe, SignerView};
use super::session::{Staff, StaffCsrf};
use super::{ApiError, ApiQuery, AppState};
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
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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

#[utoipa::path(
    get, path = "/v1/reports/dispensing", tag = "reports",
    params(RangeQuery),
    responses(
        (status = 200, description = "Dispensed volumes, grouped", body = Dispensing),
        (status = 400, description = "`bad_query`, `bad_date`, `bad_range`", body = ErrorBody),
        (status = 401, description = "`no_session`", body = ErrorBody),
        (status = 403, description = "`wrong_role`: regulators only", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = %staff.account().username))]
pub(super) async fn dispensing(
    State(s): State<AppState>,
    staff: Staff,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Result<Json<Dispensing>, ApiError> {
    regulator(&staff, "read dispensing reports")?;
    let r = range(&q)?;
    let chain = s.chain.clone();
    Ok(Json(
        blocking(move || {
            projections::dispensing(&chain, r, q.group_by).map_err(ApiError::internal)
        })
        .await?,
    ))
}

#[utoipa::path(
    get, path = "/v1/reports/dispensing.csv", tag = "reports",
    params(RangeQuery),
    responses(
        (status = 200, description = "Every dispensed line as CSV", body = String, content_type = "text/csv"),
        (status = 400, description = "`bad_query`, `bad_date`, `bad_range`", body = ErrorBody),
        (status = 401, description = "`no_session`", body = ErrorBody),
        (status = 403, description = "`wrong_role`: regulators only", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = %staff.account().username))]
pub(super) async fn dispensing_csv(
    State(s): State<AppState>,
    staff: Staff,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Result<Response, ApiError> {
    regulator(&staff, "export dispensing data")?;
    let r = range(&q)?;
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

#[utoipa::path(
    get, path = "/v1/reports/controlled", tag = "reports",
    params(RangeQuery),
    responses(
        (status = 200, description = "Controlled-drug volumes", body = Controlled),
        (status = 400, description = "`bad_query`, `bad_date`, `bad_range`", body = ErrorBody),
        (status = 401, description = "`no_session`", body = ErrorBody),
        (status = 403, description = "`wrong_role`: regulators only", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = %staff.account().username))]
pub(super) async fn controlled(
    State(s): State<AppState>,
    staff: Staff,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Result<Json<Controlled>, ApiError> {
    regulator(&staff, "read controlled-drug reports")?;
    let r = range(&q)?;
    let chain = s.chain.clone();
    Ok(Json(
        blocking(move || projections::controlled(&chain, r).map_err(ApiError::internal)).await?,
    ))
}

// ---- alerts --------------------------------------------------------------

/// How many alerts.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    /// At most this many, newest first; 100 when absent.
    #[serde(default)]
    pub limit: Option<usize>,
}

/// One refused attempt.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Alert {
    /// Block time.
    pub at: Timestamp,
    /// Block height.
    pub height: u64,
    /// The refused transaction.
    pub tx_id: TxId,
    /// Its kind, e.g. `dispense`.
    #[schema(value_type = String)]
    pub kind: &'static str,
    /// The refusal's code, e.g. `already_dispensed`.
    #[schema(value_type = String)]
    pub code: &'static str,
    /// The refusal for people (English).
    pub message: String,
    /// The refusal with its details (times as numbers, organisation ids),
    /// as in an error answer's `detail`: pages write its sentence in their
    /// own language.
    pub detail: Rejection,
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
                detail: r.detail,
                short_id: r.prescription.map(|p| p.short()),
                prescription: r.prescription,
            })
        })
        .collect()
}

#[utoipa::path(
    get, path = "/v1/reports/alerts", tag = "reports",
    params(AlertsQuery),
    responses(
        (status = 200, description = "Refused attempts, newest first", body = Vec<Alert>),
        (status = 400, description = "`bad_query`, `bad_limit`", body = ErrorBody),
        (status = 401, description = "`no_session`", body = ErrorBody),
        (status = 403, description = "`wrong_role`: regulators only", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = %staff.account().username))]
pub(super) async fn alerts(
    State(s): State<AppState>,
    staff: Staff,
    ApiQuery(q): ApiQuery<AlertsQuery>,
) -> Result<Json<Vec<Alert>>, ApiError> {
    regulator(&staff, "read alerts")?;
    let limit = match q.limit {
        None => 100,
        Some(n) if (1..=1000).contains(&n) => n,
        Some(_) => return Err(ApiError::bad("bad_limit", "limit is 1 to 1000")),
    };
    let st = s.clone();
    Ok(Json(blocking(move || alerts_list(&st, limit)).await?))
}

// ---- chain and verification ---------------------------------------------

/// The chain's head as the regulator sees it.
#[derive(Serialize, utoipa::ToSchema)]
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

#[utoipa::path(
    get, path = "/v1/reports/chain", tag = "reports",
    responses(
        (status = 200, description = "The head and the last verification", body = ChainReport),
        (status = 401, description = "`no_session`", body = ErrorBody),
        (status = 403, description = "`wrong_role`: regulators only", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = %staff.account().username))]
pub(super) async fn chain(
    State(s): State<AppState>,
    staff: Staff,
) -> Result<Json<ChainReport>, ApiError> {
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

/// The answer of `POST /v1/reports/verify`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct VerifyStarted {
    /// `started`, or `already_running` when one runs already.
    #[schema(value_type = String, example = "started")]
    pub status: &'static str,
    /// A sentence for people.
    pub message: &'static str,
}

#[utoipa::path(
    post, path = "/v1/reports/verify", tag = "reports",
    params(("x-csrf-token" = String, Header, description = "The session's CSRF token")),
    responses(
        (status = 202, description = "Started (or already running); the result appears in `/v1/reports/chain`", body = VerifyStarted),
        (status = 401, description = "`no_session`", body = ErrorBody),
        (status = 403, description = "`csrf_missing`, `csrf_mismatch`, `wrong_role`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = %staff.0.account().username))]
pub(super) async fn verify(
    State(s): State<AppState>,
    staff: StaffCsrf,
) -> Result<Response, ApiError> {
    regulator(&staff.0, "verify the chain")?;
    if !s.accounts.begin_verification() {
        return Ok((
            StatusCode::ACCEPTED,
            Json(VerifyStarted {
                status: "already_running",
                message:
                    "A verification is already running; its result appears in /v1/reports/chain.",
            }),
        )
            .into_response());
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
    Ok((
        StatusCode::ACCEPTED,
        Json(VerifyStarted {
            status: "started",
            message:
                "The verification runs in the background; its result appears in /v1/reports/chain.",
        }),
    )
        .into_response())
}
