//! The regulator's reports: dispensing volumes grouped five ways, the same
//! fills as CSV, controlled-drug volumes, alerts (refused attempts), the
//! chain's head, and a full verification of this node's chain on request.
//!
//! Reports read what the chain already holds in plaintext (drug codes,
//! quantities, organisations, signers); nothing here needs a data key, and
//! no patient data is involved. Every scan runs on a blocking thread: a
//! year of fills is many blocks to decode.
//!
//! Days are UTC days, the chain's own `i/dy/` index (block time).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rxchain_contracts::tx::{Item, Role, TxBody};
use rxchain_contracts::verify::Verifier;
use rxchain_contracts::{
    Block, Hash, Label, OrgId, Outcome, PrescriptionId, PublicKey, Timestamp, TxId,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::common::{blocking, query};
use super::rx::{describe, SignerView};
use super::session::{Staff, StaffCsrf};
use super::{ApiError, AppState};
use crate::accounts::Verification;
use crate::clock::now;

/// The longest report range: a year, leap day included.
const MAX_RANGE_DAYS: u64 = 366;

/// Range used when `from` is absent: the last 30 days up to `to`.
const DEFAULT_RANGE_DAYS: u64 = 30;

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

// ---- dates ---------------------------------------------------------------

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Parses `YYYY-MM-DD` into a UTC day number.
fn parse_day(field: &str, s: &str) -> Result<u64, ApiError> {
    let bad = || {
        ApiError::bad(
            "bad_date",
            format!("{field} must be a date written YYYY-MM-DD, not {s:?}"),
        )
    };
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| {
        s.get(r)
            .filter(|p| p.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|p| p.parse::<i64>().ok())
    };
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return Err(bad());
    };
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let day = days_from_civil(y, m, d);
    // Rejects 31 April and 29 February of common years: they round-trip to another date.
    if civil_from_days(day) != (y, m, d) {
        return Err(bad());
    }
    u64::try_from(day).map_err(|_| bad())
}

/// A day number as `YYYY-MM-DD`.
fn fmt_day(day: u64) -> String {
    let (y, m, d) = civil_from_days(day as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A block time's UTC time of day as `HH:MM:SS`.
fn fmt_time(t: Timestamp) -> String {
    let secs = (t.0 % Timestamp::DAY_MS) / 1000;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

// ---- the fills -----------------------------------------------------------

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

/// The dispensing report's grouping.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// By UTC day.
    #[default]
    Day,
    /// By dispensing pharmacy.
    Pharmacy,
    /// By ATC code.
    Drug,
    /// By prescriber.
    Prescriber,
    /// By issuing hospital.
    Hospital,
}

/// A checked day range.
#[derive(Clone, Copy)]
struct Range {
    from: u64,
    to: u64,
}

fn range(q: &RangeQuery) -> Result<Range, ApiError> {
    let to = match &q.to {
        Some(t) => parse_day("to", t)?,
        None => now().day(),
    };
    let from = match &q.from {
        Some(f) => parse_day("from", f)?,
        None => to.saturating_sub(DEFAULT_RANGE_DAYS - 1),
    };
    if from > to {
        return Err(ApiError::bad("bad_range", "from must not be after to"));
    }
    if to - from + 1 > MAX_RANGE_DAYS {
        return Err(ApiError::bad(
            "bad_range",
            format!("a report covers at most {MAX_RANGE_DAYS} days"),
        ));
    }
    Ok(Range { from, to })
}

/// One dispensed line, with everything the reports show about it.
struct FillLine {
    at: Timestamp,
    tx: TxId,
    pharmacy: OrgId,
    pharmacist: PublicKey,
    rx: PrescriptionId,
    hospital: OrgId,
    prescriber: PublicKey,
    item: Item,
    quantity: u32,
    batch: Label,
}

/// Display names of staff keys, looked up once each.
struct Names<'a> {
    s: &'a AppState,
    cache: HashMap<PublicKey, String>,
}

impl Names<'_> {
    fn of(&mut self, key: &PublicKey) -> Result<String, ApiError> {
        if let Some(n) = self.cache.get(key) {
            return Ok(n.clone());
        }
        let n = match self.s.chain.staff(key)? {
            Some(st) => st.name.to_string(),
            None => format!("key {}", &key.to_hex()[..12]),
        };
        self.cache.insert(*key, n.clone());
        Ok(n)
    }
}

fn org_name(s: &AppState, org: &OrgId) -> String {
    s.genesis
        .org(org)
        .map_or_else(|| org.to_string(), |o| o.name.to_string())
}

/// Every applied dispense line in the range, in chain order.
fn fills(s: &AppState, r: Range) -> Result<Vec<FillLine>, ApiError> {
    let chain_id = s.genesis.chain_id.as_str();
    let mut out = Vec::new();
    let mut block: Option<Block> = None;
    let mut records = HashMap::new();
    for (height, index) in s.chain.txs_in_days(r.from, r.to)? {
        // The day index lists a block's transactions together: decode each block once.
        if block.as_ref().map(|b| b.header.height) != Some(height) {
            block = s.chain.block(height)?;
        }
        let Some(b) = &block else {
            return Err(ApiError::internal(format!(
                "day index points at missing block {height}"
            )));
        };
        let (Some(t), Some(outcome)) = (b.txs.get(index as usize), b.outcomes.get(index as usize))
        else {
            return Err(ApiError::internal(format!(
                "day index points past block {height}"
            )));
        };
        let TxBody::Dispense(d) = &t.tx.body else {
            continue;
        };
        if !matches!(outcome, Outcome::Applied) {
            continue;
        }
        let rec =
            match records.entry(d.id) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(s.chain.prescription(&d.id)?.ok_or_else(|| {
                    ApiError::internal("an applied dispense names no prescription")
                })?),
            };
        let tx = t.tx.id(chain_id);
        // The fill records the pharmacy at the time; the signer's org is the fallback.
        let pharmacy = match rec.fills.iter().find(|f| f.tx == tx) {
            Some(f) => f.pharmacy.clone(),
            None => match s.chain.staff(&t.tx.signer)? {
                Some(st) => st.org,
                None => continue,
            },
        };
        for line in &d.lines {
            let Some(item) = rec.items.get(usize::from(line.item)) else {
                continue;
            };
            out.push(FillLine {
                at: b.header.timestamp,
                tx,
                pharmacy: pharmacy.clone(),
                pharmacist: t.tx.signer,
                rx: d.id,
                hospital: rec.hospital.clone(),
                prescriber: rec.prescriber,
                item: item.clone(),
                quantity: line.quantity.get(),
                batch: line.batch.clone(),
            });
        }
    }
    Ok(out)
}

// ---- dispensing ----------------------------------------------------------

/// One group of the dispensing report.
#[derive(Serialize, Clone, Debug, Default)]
pub struct Row {
    /// The group's key: a day, an org id, an ATC code or a key (hex).
    pub key: String,
    /// The group for people.
    pub label: String,
    /// Dispense transactions with a line in this group.
    pub fills: u64,
    /// Units dispensed.
    pub quantity: u64,
    /// Of which of controlled drugs.
    pub controlled_quantity: u64,
}

/// Totals over the range.
#[derive(Serialize, Clone, Debug, Default)]
pub struct Totals {
    /// Dispense transactions.
    pub fills: u64,
    /// Units dispensed.
    pub quantity: u64,
    /// Of which of controlled drugs.
    pub controlled_quantity: u64,
}

/// The dispensing report.
#[derive(Serialize)]
pub struct Dispensing {
    /// First day.
    pub from: String,
    /// Last day, inclusive.
    pub to: String,
    /// The grouping.
    pub group_by: GroupBy,
    /// The groups.
    pub rows: Vec<Row>,
    /// Totals.
    pub totals: Totals,
}

fn dispensing_report(s: &AppState, r: Range, group_by: GroupBy) -> Result<Dispensing, ApiError> {
    let lines = fills(s, r)?;
    let mut names = Names {
        s,
        cache: HashMap::new(),
    };
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut counted: HashSet<(String, TxId)> = HashSet::new();
    let mut totals = Totals::default();
    let mut txs = HashSet::new();
    for l in &lines {
        let (key, label) = match group_by {
            GroupBy::Day => (fmt_day(l.at.day()), fmt_day(l.at.day())),
            GroupBy::Pharmacy => (l.pharmacy.to_string(), org_name(s, &l.pharmacy)),
            GroupBy::Drug => (l.item.atc.to_string(), l.item.name.to_string()),
            GroupBy::Prescriber => (l.prescriber.to_hex(), names.of(&l.prescriber)?),
            GroupBy::Hospital => (l.hospital.to_string(), org_name(s, &l.hospital)),
        };
        let q = u64::from(l.quantity);
        let cq = if l.item.controlled { q } else { 0 };
        let row = rows.entry(key.clone()).or_insert_with(|| Row {
            key: key.clone(),
            label,
            ..Row::default()
        });
        row.quantity += q;
        row.controlled_quantity += cq;
        // A fill with two lines in one group is still one fill.
        if counted.insert((key, l.tx)) {
            row.fills += 1;
        }
        totals.quantity += q;
        totals.controlled_quantity += cq;
        if txs.insert(l.tx) {
            totals.fills += 1;
        }
    }
    let mut rows: Vec<Row> = rows.into_values().collect();
    if group_by != GroupBy::Day {
        rows.sort_by(|a, b| {
            b.quantity
                .cmp(&a.quantity)
                .then_with(|| a.label.cmp(&b.label))
        });
    }
    Ok(Dispensing {
        from: fmt_day(r.from),
        to: fmt_day(r.to),
        group_by,
        rows,
        totals,
    })
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
    let st = s.clone();
    Ok(Json(
        blocking(move || dispensing_report(&st, r, q.group_by)).await?,
    ))
}

/// A cell that a spreadsheet would run as a formula is prefixed with `'`,
/// the usual defence against CSV injection: drug names and batch numbers
/// are typed by staff of other organisations.
fn cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

/// The CSV header.
pub const CSV_HEADER: [&str; 13] = [
    "date",
    "time",
    "pharmacy",
    "pharmacist",
    "prescription",
    "hospital",
    "prescriber",
    "atc",
    "drug",
    "quantity",
    "unit",
    "batch",
    "controlled",
];

fn dispensing_csv_bytes(s: &AppState, r: Range) -> Result<Vec<u8>, ApiError> {
    let lines = fills(s, r)?;
    let mut names = Names {
        s,
        cache: HashMap::new(),
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER).map_err(ApiError::internal)?;
    for l in &lines {
        let drug = format!("{} {} {}", l.item.name, l.item.strength, l.item.form);
        w.write_record([
            fmt_day(l.at.day()),
            fmt_time(l.at),
            cell(&org_name(s, &l.pharmacy)),
            cell(&names.of(&l.pharmacist)?),
            l.rx.short(),
            cell(&org_name(s, &l.hospital)),
            cell(&names.of(&l.prescriber)?),
            l.item.atc.to_string(),
            cell(&drug),
            l.quantity.to_string(),
            cell(l.item.unit.as_str()),
            cell(l.batch.as_str()),
            l.item.controlled.to_string(),
        ])
        .map_err(ApiError::internal)?;
    }
    w.into_inner().map_err(ApiError::internal)
}

#[tracing::instrument(skip_all, fields(username = %staff.account().username))]
async fn dispensing_csv(
    State(s): State<AppState>,
    staff: Staff,
    q: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    regulator(&staff, "export dispensing data")?;
    let r = range(&query(q)?)?;
    let st = s.clone();
    let bytes = blocking(move || dispensing_csv_bytes(&st, r)).await?;
    let disposition = format!(
        "attachment; filename=\"dispensing-{}-{}.csv\"",
        fmt_day(r.from),
        fmt_day(r.to)
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

// ---- controlled ----------------------------------------------------------

/// Controlled-drug volume of one drug at one pharmacy.
#[derive(Serialize, Debug)]
pub struct ControlledRow {
    /// ATC code.
    pub atc: String,
    /// Drug name.
    pub drug: String,
    /// Pharmacy id.
    pub pharmacy: OrgId,
    /// Pharmacy name.
    pub pharmacy_name: String,
    /// Dispense transactions.
    pub fills: u64,
    /// Units dispensed.
    pub quantity: u64,
    /// Unit of the quantity.
    pub unit: String,
}

/// The controlled-drug report.
#[derive(Serialize)]
pub struct Controlled {
    /// First day.
    pub from: String,
    /// Last day, inclusive.
    pub to: String,
    /// By drug, then pharmacy.
    pub rows: Vec<ControlledRow>,
    /// Units over all rows.
    pub total_quantity: u64,
}

fn controlled_report(s: &AppState, r: Range) -> Result<Controlled, ApiError> {
    let mut rows: BTreeMap<(String, OrgId), ControlledRow> = BTreeMap::new();
    let mut counted = HashSet::new();
    let mut total = 0;
    for l in fills(s, r)?.into_iter().filter(|l| l.item.controlled) {
        let key = (l.item.atc.to_string(), l.pharmacy.clone());
        let row = rows.entry(key.clone()).or_insert_with(|| ControlledRow {
            atc: l.item.atc.to_string(),
            drug: l.item.name.to_string(),
            pharmacy: l.pharmacy.clone(),
            pharmacy_name: org_name(s, &l.pharmacy),
            fills: 0,
            quantity: 0,
            unit: l.item.unit.to_string(),
        });
        row.quantity += u64::from(l.quantity);
        total += u64::from(l.quantity);
        if counted.insert((key, l.tx)) {
            row.fills += 1;
        }
    }
    Ok(Controlled {
        from: fmt_day(r.from),
        to: fmt_day(r.to),
        rows: rows.into_values().collect(),
        total_quantity: total,
    })
}

#[tracing::instrument(skip_all, fields(username = %staff.account().username))]
async fn controlled(
    State(s): State<AppState>,
    staff: Staff,
    q: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Json<Controlled>, ApiError> {
    regulator(&staff, "read controlled-drug reports")?;
    let r = range(&query(q)?)?;
    let st = s.clone();
    Ok(Json(blocking(move || controlled_report(&st, r)).await?))
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
    let chain_id = s.genesis.chain_id.as_str();
    let mut out = Vec::new();
    let mut block: Option<Block> = None;
    for (height, index) in s.chain.refused(limit)? {
        if block.as_ref().map(|b| b.header.height) != Some(height) {
            block = s.chain.block(height)?;
        }
        let Some(b) = &block else {
            return Err(ApiError::internal(format!(
                "refusal index points at missing block {height}"
            )));
        };
        let (Some(t), Some(Outcome::Refused { reason })) =
            (b.txs.get(index as usize), b.outcomes.get(index as usize))
        else {
            return Err(ApiError::internal(format!(
                "refusal index points at a non-refusal in block {height}"
            )));
        };
        let prescription = t.tx.body.prescription();
        let rec = match &prescription {
            Some(id) => s.chain.prescription(id)?,
            None => None,
        };
        out.push(Alert {
            at: b.header.timestamp,
            height,
            tx_id: t.tx.id(chain_id),
            kind: t.tx.body.kind(),
            code: reason.code(),
            message: reason.to_string(),
            short_id: prescription.map(|p| p.short()),
            prescription,
            signer: describe(s, &t.tx.signer, rec.as_ref())?,
        });
    }
    Ok(out)
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

/// Re-verifies this node's whole chain with the contracts' verifier: hash
/// links, block signatures, every transaction signature, every outcome by
/// re-execution, and the stored state against the recomputed one.
///
/// The node keeps committing while this runs, so the state is compared at
/// a moment when the tip stood still around the digest, catching up block
/// by block until it does.
fn verify_chain(s: &AppState) -> Verification {
    let fail = |height: u64, message: String| Verification {
        at: now(),
        ok: false,
        height,
        message,
    };
    let mut v = Verifier::new(&s.genesis);
    let mut height = 0;
    let mut txs = 0u64;
    let mut mismatches = 0;
    for _attempt in 0..20 {
        let tip = s.chain.tip();
        for b in s.chain.blocks(height + 1) {
            let b = match b {
                Ok(b) => b,
                Err(e) => {
                    return fail(
                        height + 1,
                        format!("block {} cannot be read: {e}", height + 1),
                    )
                }
            };
            if b.header.height > tip.height {
                break;
            }
            if let Err(e) = v.push(&b) {
                return fail(e.height, e.to_string());
            }
            txs += b.txs.len() as u64;
            height = b.header.height;
        }
        if height != tip.height {
            return fail(
                height,
                format!(
                    "the node's tip is at height {} but its blocks end at {height}",
                    tip.height
                ),
            );
        }
        let before = s.chain.tip();
        let stored = match s.chain.try_state_digest() {
            Ok(d) => d,
            Err(e) => return fail(height, format!("the stored state cannot be read: {e}")),
        };
        if before != tip || s.chain.tip() != tip {
            continue;
        }
        let rebuilt = rxchain_contracts::state::state_digest(v.state());
        if stored == rebuilt {
            return Verification {
                at: now(),
                ok: true,
                height,
                message: format!(
                    "{height} blocks and {txs} transactions verify: hash links, block signatures, every transaction signature, every outcome, and the stored state"
                ),
            };
        }
        // A block applied between the digest and the tip read looks like a
        // mismatch; only one that repeats at a standing tip is real.
        mismatches += 1;
        if mismatches >= 2 {
            return fail(height, format!("the node's stored state (digest {stored}) differs from the state recomputed from its blocks ({rebuilt})"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    fail(
        height,
        "the chain kept growing; the stored state could not be compared at a standing tip, retry"
            .into(),
    )
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
        let result = tokio::task::spawn_blocking(move || verify_chain(&worker))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip() {
        assert_eq!(parse_day("d", "1970-01-01").unwrap(), 0);
        assert_eq!(
            parse_day("d", "2026-01-01").unwrap(),
            1_767_225_600_000 / Timestamp::DAY_MS
        );
        for d in [0u64, 59, 365, 11_016, 20_454, 30_000] {
            assert_eq!(parse_day("d", &fmt_day(d)).unwrap(), d);
        }
        assert!(parse_day("d", "2025-02-29").is_err());
        assert!(parse_day("d", "2024-02-29").is_ok());
        assert!(parse_day("d", "2024-04-31").is_err());
        assert!(parse_day("d", "24-04-01").is_err());
        assert_eq!(fmt_time(Timestamp(3_723_000)), "01:02:03");
    }

    #[test]
    fn formula_cells_are_defused() {
        assert_eq!(cell("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(cell("B-12"), "B-12");
    }
}
