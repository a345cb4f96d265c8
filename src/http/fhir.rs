//! The HL7 FHIR R4 endpoint under `/fhir/r4/`: the CapabilityStatement,
//! prescriptions as MedicationRequest (read, and create from a hospital
//! system signed in as a doctor), fills as MedicationDispense (by
//! prescription, and the regulator's search by pharmacy and period with
//! paging), and each transaction's Provenance.
//!
//! The role rules are the JSON API's: what `/v1/prescriptions/{id}` shows
//! anyone, FHIR shows anyone; the patient's identity and the sealed text
//! are opened only for the issuing hospital's staff and regulators, with
//! the data key this node holds for their organisation (as the doctor's
//! list and the pharmacy's list open theirs); the regulator's search is
//! the reports' (regulator officers only). Every error is an
//! OperationOutcome with our stable code. The mapping itself is
//! [`crate::fhir`].

use axum::extract::{FromRequestParts, State};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rxchain_contracts::privacy::{self, ContentKey, PrivateContent};
use rxchain_contracts::state::PrescriptionRecord;
use rxchain_contracts::tx::{Role, TxBody};
use rxchain_contracts::{
    rules, AtcCode, ControlledList, OrgId, Outcome, PrescriptionId, Timestamp,
};
use serde::Serialize;
use serde_json::Value;

use super::common::{blocking, no_store, opened};
use super::idempotency::{sign_once, signed_before, HashedJson, IdempotencyKey, Signed};
use super::session::{Staff, StaffOrToken};
use super::{ApiError, ApiPath, ApiQuery, AppState};
use crate::clock::now;
use crate::fhir::export::{self, Party, RxView, TxProof};
use crate::fhir::import::{self, Drug, ImportError, Imported};
use crate::fhir::resources::{
    Bundle, BundleEntry, BundleLink, BundleSearch, Extension, Identifier, Resource,
};
use crate::fhir::{self as model, MEDIA_TYPE};
use crate::qr::QrPayload;
use crate::query::day::{Day, DayRange};
use crate::service::submit::{poll_url, submit, Submitted};
use crate::txbuild::{self, IssueInput};

/// `/fhir/r4/...`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/fhir/r4/metadata", get(metadata).fallback(not_allowed))
        .route(
            "/fhir/r4/MedicationRequest",
            axum::routing::post(create_request).fallback(not_allowed),
        )
        .route(
            "/fhir/r4/MedicationRequest/{id}",
            get(read_request).fallback(not_allowed),
        )
        .route(
            "/fhir/r4/MedicationDispense",
            get(search_dispenses).fallback(not_allowed),
        )
        .route(
            "/fhir/r4/Provenance",
            get(search_provenance).fallback(not_allowed),
        )
        .route("/fhir/r4", axum::routing::any(not_served))
        .route("/fhir/r4/", axum::routing::any(not_served))
        .route("/fhir/r4/{*rest}", axum::routing::any(not_served))
}

/// A path under `/fhir/r4/` that is not served: an OperationOutcome, as
/// FHIR clients expect, never the JSON API's error body.
async fn not_served(uri: axum::http::Uri) -> FhirError {
    ApiError::not_found(
        "not_supported",
        format!(
            "{} is not served here; /fhir/r4/metadata lists what is",
            uri.path()
        ),
    )
    .into()
}

/// A served FHIR path asked with a method it does not take.
async fn not_allowed() -> FhirError {
    ApiError::MethodNotAllowed.into()
}

/// A failure as an OperationOutcome: the JSON API's error with its status
/// and code, and the element at fault when there is one.
#[derive(Debug)]
pub struct FhirError {
    error: ApiError,
    expression: Option<String>,
}

impl From<ApiError> for FhirError {
    fn from(error: ApiError) -> Self {
        FhirError {
            error,
            expression: None,
        }
    }
}

impl From<ImportError> for FhirError {
    fn from(e: ImportError) -> Self {
        FhirError {
            error: ApiError::Unprocessable {
                code: e.code,
                message: e.to_string(),
            },
            expression: Some(e.expression),
        }
    }
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let status = self.error.status();
        if let ApiError::Internal(e) = &self.error {
            tracing::error!(error = %super::error::error_chain(e.as_ref()), "FHIR request failed");
        }
        let retry_after = self.error.retry_after_secs();
        let outcome = export::operation_outcome(
            status.as_u16(),
            self.error.code(),
            &self.error.to_string(),
            self.expression,
        );
        let mut resp = fhir_json(status, &outcome);
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

/// A FHIR JSON answer.
fn fhir_json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE))],
            bytes,
        )
            .into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// Who asks: a signed-in staff member, or anyone.
#[derive(Clone, Debug)]
pub(super) struct Who {
    org: OrgId,
    role: Role,
    account: crate::accounts::Account,
}

impl Who {
    fn of(staff: &Staff) -> Who {
        Who {
            org: staff.org().clone(),
            role: staff.account().role,
            account: staff.account().clone(),
        }
    }
}

/// The caller, when signed in; no session is anyone, a revoked one an error.
pub(super) struct Viewer(Option<Who>);

impl FromRequestParts<AppState> for Viewer {
    type Rejection = FhirError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, FhirError> {
        match Staff::from_request_parts(parts, s).await {
            Ok(st) => Ok(Viewer(Some(Who::of(&st)))),
            Err(e) if e.code() == "no_session" => Ok(Viewer(None)),
            Err(e) => Err(e.into()),
        }
    }
}

/// The absolute base of this endpoint as the client reached it
/// (`http[s]://<Host>/fhir/r4`): FHIR wants absolute `fullUrl`s and links.
pub(super) struct FhirBase(String);

impl FromRequestParts<AppState> for FhirBase {
    type Rejection = FhirError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, FhirError> {
        let super::common::OverTls(tls) = super::common::OverTls::from_request_parts(parts, s)
            .await
            .unwrap_or_else(|never| match never {});
        let host = parts
            .headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| bad("bad_host", "send a Host header: links are absolute"))?;
        let scheme = if tls { "https" } else { "http" };
        Ok(FhirBase(format!("{scheme}://{host}/fhir/r4")))
    }
}

/// Opens a prescription's sealed content for `who` when the rules let
/// them see the patient and this node holds their organisation's data key.
fn content_for(
    s: &AppState,
    rec: &PrescriptionRecord,
    who: Option<&Who>,
) -> Result<Option<PrivateContent>, ApiError> {
    let Some(who) = who else { return Ok(None) };
    let regulator = who.role == Role::RegulatorOfficer;
    if !regulator && who.org != rec.hospital {
        return Ok(None);
    }
    let Some(key) = s.accounts.data_key(&who.org) else {
        return Ok(None);
    };
    let body = super::rx::issue_body(s, rec)?;
    let wrap = if regulator {
        body.key_for_regulators
            .iter()
            .find(|(o, _)| o == &who.org)
            .map(|(_, w)| w.clone())
    } else {
        Some(body.key_for_hospital.clone())
    };
    let Some(wrap) = wrap else { return Ok(None) };
    let ck = opened(
        "content key",
        &rec.id,
        privacy::unwrap_with_key(&key, &privacy::content_context(&rec.id), &wrap),
    )
    .map(ContentKey::from_bytes);
    let content = ck.and_then(|ck| {
        opened(
            "sealed content",
            &rec.id,
            privacy::open_content(&rec.id, &body.sealed, &ck),
        )
    });
    if content.is_some() {
        super::access::record_fhir(s, &rec.id, &who.account)?;
    }
    Ok(content)
}

/// A record with everything its export names.
struct Loaded {
    rec: PrescriptionRecord,
    prescriber: Party,
    hospital: Party,
    pharmacy: Option<Party>,
    fill_parties: Vec<(Party, Party)>,
    content: Option<PrivateContent>,
    at: Timestamp,
}

impl Loaded {
    fn view(&self) -> RxView<'_> {
        RxView {
            rec: &self.rec,
            status: self.rec.public_status(self.at),
            prescriber: self.prescriber.clone(),
            hospital: self.hospital.clone(),
            pharmacy: self.pharmacy.clone(),
            fill_parties: self.fill_parties.clone(),
            content: self.content.as_ref(),
        }
    }
}

fn org_party(s: &AppState, org: &OrgId) -> Party {
    Party {
        id: org.to_string(),
        name: s.consortium().org(org).map(|o| o.name.to_string()),
    }
}

fn key_party(
    s: &AppState,
    key: &rxchain_contracts::PublicKey,
    rec: &PrescriptionRecord,
) -> Result<Party, ApiError> {
    let v = super::rx::describe(s, key, Some(rec))?;
    Ok(Party {
        id: key.to_hex(),
        name: v.name,
    })
}

fn load(s: &AppState, rec: PrescriptionRecord, who: Option<&Who>) -> Result<Loaded, ApiError> {
    let pharmacy = rec
        .fulfilment
        .as_ref()
        .map(|f| f.pharmacy().clone())
        .or_else(|| rec.claim.as_ref().map(|c| c.pharmacy.clone()))
        .map(|o| org_party(s, &o));
    let mut fill_parties = Vec::with_capacity(rec.fills.len());
    for f in &rec.fills {
        fill_parties.push((org_party(s, &f.pharmacy), key_party(s, &f.by, &rec)?));
    }
    Ok(Loaded {
        prescriber: key_party(s, &rec.prescriber, &rec)?,
        hospital: org_party(s, &rec.hospital),
        pharmacy,
        fill_parties,
        content: content_for(s, &rec, who)?,
        at: now(),
        rec,
    })
}

fn bad(code: &'static str, message: impl Into<String>) -> FhirError {
    ApiError::bad(code, message).into()
}

/// The prescription and item a MedicationRequest id names.
fn request_target(id: &str) -> Result<(PrescriptionId, Option<usize>), FhirError> {
    export::parse_request_id(id).ok_or_else(|| {
        bad(
            "bad_resource_id",
            "a MedicationRequest id is a prescription id (32 hex characters), followed by -<item number> for prescriptions of several items",
        )
    })
}

const RESPONSES: &str = "Every answer is FHIR JSON (`application/fhir+json`); errors are OperationOutcome resources whose `issue[0].details.coding[0].code` is our stable code.";

/// The CapabilityStatement.
#[utoipa::path(
    get, path = "/fhir/r4/metadata", tag = "fhir",
    description = "The FHIR R4 CapabilityStatement: exactly what this endpoint serves.",
    responses((status = 200, description = "CapabilityStatement", body = Object, content_type = "application/fhir+json"))
)]
pub(super) async fn metadata() -> Response {
    let date = crate::fhir::time::instant(now());
    fhir_json(
        StatusCode::OK,
        &model::capability_statement(env!("CARGO_PKG_VERSION"), &date),
    )
}

/// One prescription item.
#[utoipa::path(
    get, path = "/fhir/r4/MedicationRequest/{id}", tag = "fhir",
    description = RESPONSES,
    params(("id" = String, Path, description = "The prescription id, or `<id>-<n>` for item n of several")),
    responses(
        (status = 200, description = "MedicationRequest", body = Object, content_type = "application/fhir+json"),
        (status = 400, description = "OperationOutcome `bad_resource_id`, `bad_path`", body = Object, content_type = "application/fhir+json"),
        (status = 401, description = "OperationOutcome `staff_revoked`", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "OperationOutcome `unknown_prescription`, `unknown_item`, `several_items`", body = Object, content_type = "application/fhir+json"),
    )
)]
#[tracing::instrument(skip_all)]
pub(super) async fn read_request(
    State(s): State<AppState>,
    viewer: Viewer,
    id: Result<ApiPath<String>, ApiError>,
) -> Result<Response, FhirError> {
    let ApiPath(id) = id?;
    let (rx, item) = request_target(&id)?;
    let st = s.clone();
    let who = viewer.0;
    let (loaded, i) = blocking(move || {
        let rec = super::rx::load(&st, &rx)?;
        let n = rec.items.len();
        let i = match item {
            None if n == 1 => 0,
            None => {
                return Err(ApiError::not_found(
                    "several_items",
                    format!("this prescription has {n} items: read MedicationRequest/{rx}-1 to {rx}-{n}"),
                ))
            }
            Some(i) if i < n && n > 1 => i,
            Some(_) => {
                return Err(ApiError::not_found(
                    "unknown_item",
                    format!("this prescription has {n} item(s); a one-item prescription is read by its id alone"),
                ))
            }
        };
        Ok((load(&st, rec, who.as_ref())?, i))
    })
    .await?;
    let mut resource = export::medication_request(&loaded.view(), i);
    // The hospital's own order numbers go back to those who see identity.
    if loaded.content.is_some() {
        add_order_identifiers(&s, &rx, &mut resource).await?;
    }
    Ok(private(
        loaded.content.is_some(),
        fhir_json(StatusCode::OK, &resource),
    ))
}

/// Marks an answer naming a patient as never cached.
fn private(named: bool, resp: Response) -> Response {
    if named {
        no_store(resp)
    } else {
        resp
    }
}

/// Paging parameters.
struct Page {
    count: usize,
    offset: usize,
}

fn page(params: &[(String, String)]) -> Result<Page, FhirError> {
    let num = |name: &str, default: usize, max: usize| -> Result<usize, FhirError> {
        match params.iter().find(|(k, _)| k == name) {
            None => Ok(default),
            Some((_, v)) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| {
                    bad(
                        "bad_query",
                        format!("{name} must be a whole number up to {max}, not {v:?}"),
                    )
                }),
        }
    };
    let count = num("_count", 20, 100)?.max(1);
    Ok(Page {
        count,
        offset: num("_offset", 0, usize::MAX)?,
    })
}

/// A searchset page of `all`, with self, next and previous links built
/// from the search's own parameters.
fn searchset(
    base: &str,
    path: &str,
    params: &[(String, String)],
    p: &Page,
    all: Vec<Resource>,
) -> Bundle {
    let total = all.len();
    let kept: Vec<String> = params
        .iter()
        .filter(|(k, _)| k != "_offset" && k != "_count")
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    let link = |relation: &'static str, offset: usize| {
        let mut q = kept.clone();
        q.push(format!("_count={}", p.count));
        q.push(format!("_offset={offset}"));
        BundleLink {
            relation,
            url: format!("{base}/{path}?{}", q.join("&")),
        }
    };
    let mut links = vec![link("self", p.offset)];
    if p.offset + p.count < total {
        links.push(link("next", p.offset + p.count));
    }
    if p.offset > 0 {
        links.push(link("previous", p.offset.saturating_sub(p.count)));
    }
    let entry = all
        .into_iter()
        .skip(p.offset)
        .take(p.count)
        .map(|r| {
            let full_url = match &r {
                Resource::MedicationRequest(x) => format!("{base}/MedicationRequest/{}", x.id),
                Resource::MedicationDispense(x) => format!("{base}/MedicationDispense/{}", x.id),
                Resource::Provenance(x) => format!("{base}/Provenance/{}", x.id),
            };
            BundleEntry {
                full_url,
                resource: r,
                search: BundleSearch { mode: "match" },
            }
        })
        .collect();
    Bundle {
        resource_type: "Bundle",
        kind: "searchset",
        total: total as u64,
        link: links,
        entry,
    }
}

/// Percent-encodes a query component (everything but unreserved characters).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn only_known(params: &[(String, String)], known: &[&str]) -> Result<(), FhirError> {
    match params.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some((k, _)) => Err(bad(
            "unsupported_search_parameter",
            format!("{k} is not a search parameter here; see /fhir/r4/metadata"),
        )),
    }
}

/// The prescription a `prescription` or `target` value names.
fn prescription_of(v: &str, prefix: &str) -> Result<PrescriptionId, FhirError> {
    let id = v.strip_prefix(prefix).unwrap_or(v);
    Ok(request_target(id)?.0)
}

/// Fills: every dispensed line of a prescription, or, for regulators, of a
/// pharmacy handed over within a period.
#[utoipa::path(
    get, path = "/fhir/r4/MedicationDispense", tag = "fhir",
    description = RESPONSES,
    params(
        ("prescription" = Option<String>, Query, description = "A prescription (or MedicationRequest) id"),
        ("performer" = Option<String>, Query, description = "Regulators: the pharmacy's consortium id"),
        ("whenhandedover" = Option<Vec<String>>, Query, description = "Regulators: `ge<date>` and `le<date>`, both required"),
        ("_count" = Option<usize>, Query, description = "Page size, 1 to 100 (default 20)"),
        ("_offset" = Option<usize>, Query, description = "Matches to skip"),
    ),
    responses(
        (status = 200, description = "A searchset Bundle of MedicationDispense", body = Object, content_type = "application/fhir+json"),
        (status = 400, description = "OperationOutcome `bad_host`, `bad_query`, `bad_date`, `bad_range`, `unsupported_search_parameter`, `missing_search_parameter`", body = Object, content_type = "application/fhir+json"),
        (status = 401, description = "OperationOutcome `no_session` (the regulator's search)", body = Object, content_type = "application/fhir+json"),
        (status = 403, description = "OperationOutcome `wrong_role`: the period search is for regulators", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "OperationOutcome `unknown_prescription`", body = Object, content_type = "application/fhir+json"),
    )
)]
#[tracing::instrument(skip_all)]
pub(super) async fn search_dispenses(
    State(s): State<AppState>,
    base: FhirBase,
    viewer: Viewer,
    q: Result<ApiQuery<Vec<(String, String)>>, ApiError>,
) -> Result<Response, FhirError> {
    let ApiQuery(params) = q?;
    only_known(
        &params,
        &[
            "prescription",
            "performer",
            "whenhandedover",
            "_count",
            "_offset",
        ],
    )?;
    let p = page(&params)?;
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let who = viewer.0;
    let st = s.clone();
    let (all, named) = if let Some(rx) = get("prescription") {
        let id = prescription_of(&rx, "MedicationRequest/")?;
        blocking(move || {
            let rec = super::rx::load(&st, &id)?;
            let l = load(&st, rec, who.as_ref())?;
            let all: Vec<Resource> = export::medication_dispenses(&l.view())
                .into_iter()
                .map(|d| Resource::MedicationDispense(Box::new(d)))
                .collect();
            Ok((all, l.content.is_some()))
        })
        .await?
    } else {
        let Some(who) = who else {
            return Err(super::session::no_session().into());
        };
        if who.role != Role::RegulatorOfficer {
            return Err(ApiError::forbidden(
                "wrong_role",
                "only regulator officers search dispensing by pharmacy and period; others search by prescription",
            )
            .into());
        }
        let performer = get("performer")
            .map(|v| {
                let v = v.strip_prefix("Organization/").unwrap_or(&v).to_string();
                OrgId::parse(v.clone()).map_err(|_| {
                    bad(
                        "bad_query",
                        format!("performer {v:?} is no organisation id"),
                    )
                })
            })
            .transpose()?;
        let (from, to) = handed_over_bounds(&params)?;
        let range = DayRange::new(Some(day(from)?), day(to)?)
            .map_err(|e| bad("bad_range", e.to_string()))?;
        blocking(move || regulator_search(&st, &who, performer.as_ref(), from, to, range)).await?
    };
    let bundle = searchset(&base.0, "MedicationDispense", &params, &p, all);
    Ok(private(named, fhir_json(StatusCode::OK, &bundle)))
}

fn day(t: Timestamp) -> Result<Day, FhirError> {
    Day::of(t).map_err(|e| bad("bad_date", e.to_string()))
}

/// The `whenhandedover` bounds: `ge` and `le`, both required; a date alone
/// as `le` means the end of that day.
fn handed_over_bounds(params: &[(String, String)]) -> Result<(Timestamp, Timestamp), FhirError> {
    let (mut ge, mut le) = (None, None);
    for (_, v) in params.iter().filter(|(k, _)| k == "whenhandedover") {
        let (prefix, text) = v.split_at(v.len().min(2));
        let t = crate::fhir::time::parse(text)
            .map_err(|e| bad("bad_date", format!("whenhandedover: {e}")))?;
        match prefix {
            "ge" => ge = Some(t),
            "le" if text.len() == 10 => le = Some(Timestamp(t.0 + Timestamp::DAY_MS - 1)),
            "le" => le = Some(t),
            _ => {
                return Err(bad(
                    "bad_query",
                    format!("whenhandedover takes the prefixes ge and le, not {v:?}"),
                ))
            }
        }
    }
    match (ge, le) {
        (Some(a), Some(b)) if a <= b => Ok((a, b)),
        (Some(_), Some(_)) => Err(bad("bad_range", "whenhandedover ge must not be after le")),
        _ => Err(bad(
            "missing_search_parameter",
            "give the period as whenhandedover=ge<date>&whenhandedover=le<date>",
        )),
    }
}

/// The regulator's search: every dispensed line, by `performer` when
/// given, whose hand-over falls within `[from, to]`: a pickup at its
/// dispense, a delivery when it was delivered (possibly days after the
/// dispense, so the candidates are the prescriptions with either in the
/// days of the range). Ordered by hand-over time, then resource id, so
/// that pages are stable.
fn regulator_search(
    s: &AppState,
    who: &Who,
    performer: Option<&OrgId>,
    from: Timestamp,
    to: Timestamp,
    range: DayRange,
) -> Result<(Vec<Resource>, bool), ApiError> {
    let candidates = crate::query::reports::handed_over_candidates(&s.chain, range)
        .map_err(ApiError::internal)?;
    let mut found = Vec::new();
    let mut named = false;
    for rx in candidates {
        let rec = super::rx::load(s, &rx)?;
        let l = load(s, rec, Some(who))?;
        let mut any = false;
        for (f, fill) in l.rec.fills.iter().enumerate() {
            if performer.is_some_and(|p| p != &fill.pharmacy) {
                continue;
            }
            for d in export::fill_dispenses(&l.view(), f) {
                let handed = d
                    .when_handed_over
                    .as_deref()
                    .and_then(|t| crate::fhir::time::parse(t).ok());
                if let Some(t) = handed.filter(|t| *t >= from && *t <= to) {
                    any = true;
                    found.push((t, d));
                }
            }
        }
        named |= any && l.content.is_some();
    }
    found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
    let out = found
        .into_iter()
        .map(|(_, d)| Resource::MedicationDispense(Box::new(d)))
        .collect();
    Ok((out, named))
}

/// Every applied transaction about a prescription, with its block and the
/// block's signature and certificate.
#[utoipa::path(
    get, path = "/fhir/r4/Provenance", tag = "fhir",
    description = RESPONSES,
    params(
        ("target" = String, Query, description = "`MedicationRequest/<id>`"),
        ("_count" = Option<usize>, Query, description = "Page size, 1 to 100 (default 20)"),
        ("_offset" = Option<usize>, Query, description = "Matches to skip"),
    ),
    responses(
        (status = 200, description = "A searchset Bundle of Provenance", body = Object, content_type = "application/fhir+json"),
        (status = 400, description = "OperationOutcome `bad_host`, `bad_query`, `bad_resource_id`, `missing_search_parameter`, `unsupported_search_parameter`", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "OperationOutcome `unknown_prescription`", body = Object, content_type = "application/fhir+json"),
    )
)]
#[tracing::instrument(skip_all)]
pub(super) async fn search_provenance(
    State(s): State<AppState>,
    base: FhirBase,
    q: Result<ApiQuery<Vec<(String, String)>>, ApiError>,
) -> Result<Response, FhirError> {
    let ApiQuery(params) = q?;
    only_known(&params, &["target", "_count", "_offset"])?;
    let p = page(&params)?;
    let Some((_, target)) = params.iter().find(|(k, _)| k == "target") else {
        return Err(bad(
            "missing_search_parameter",
            "give target=MedicationRequest/<id>",
        ));
    };
    let id = prescription_of(target, "MedicationRequest/")?;
    let st = s.clone();
    let all = blocking(move || provenances(&st, &id)).await?;
    Ok(fhir_json(
        StatusCode::OK,
        &searchset(&base.0, "Provenance", &params, &p, all),
    ))
}

fn provenances(s: &AppState, id: &PrescriptionId) -> Result<Vec<Resource>, ApiError> {
    let rec = super::rx::load(s, id)?;
    let chain_id = s.genesis.chain_id.as_str();
    let requests: Vec<String> = (0..rec.items.len())
        .map(|i| format!("MedicationRequest/{}", export::request_id(&rec, i)))
        .collect();
    let mut out = Vec::new();
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
        if !matches!(outcome, Outcome::Applied) {
            continue;
        }
        let tx_id = t.tx.id(chain_id);
        let mut targets = requests.clone();
        if let TxBody::Dispense(_) = &t.tx.body {
            if let Some(f) = rec.fills.iter().position(|x| x.tx == tx_id) {
                for l in 0..rec.fills[f].lines.len() {
                    targets.push(format!(
                        "MedicationDispense/{}",
                        export::dispense_id(&rec.id, f, l)
                    ));
                }
            }
        }
        let signer = super::rx::describe(s, &t.tx.signer, Some(&rec))?;
        let certificate = s
            .chain
            .cert(height)?
            .map(|c| serde_json::to_vec(&c))
            .transpose()
            .map_err(ApiError::internal)?;
        let proof = TxProof {
            tx_id: tx_id.to_string(),
            kind: t.tx.body.kind(),
            height,
            block_hash: block.header.hash(chain_id).to_hex(),
            at: block.header.timestamp,
            signer_is_patient: signer.role == "patient",
            signer: Party {
                id: t.tx.signer.to_hex(),
                name: signer.name,
            },
            signer_org: signer
                .org
                .and_then(|o| OrgId::parse(o).ok())
                .map(|o| org_party(s, &o)),
            proposer: Party {
                id: block.header.proposer.to_string(),
                name: None,
            },
            block_signature: block.signature.as_bytes().to_vec(),
            certificate,
            targets,
        };
        out.push(Resource::Provenance(Box::new(export::provenance(&proof))));
    }
    Ok(out)
}

/// Issues a one-item prescription from a FHIR MedicationRequest, signed
/// with the signed-in doctor's key.
#[utoipa::path(
    post, path = "/fhir/r4/MedicationRequest", tag = "fhir",
    description = "Create from a hospital system acting as a doctor: an API token a staff admin issued (`Authorization: Bearer rxt_…`), or a session cookie and CSRF token. The answer is the created MedicationRequest with the QR payload and the patient link as extensions (`urn:rxchain:fhir:qr-payload`, `urn:rxchain:fhir:patient-link`), shown once. A retry with the same `Idempotency-Key` creates nothing new and answers the same prescription. `If-None-Exist: identifier=<system>|<value>` is conditional create: when this hospital already created a prescription for that order identifier, the answer is 200 with it and nothing is created.",
    params(
        ("x-csrf-token" = Option<String>, Header, description = "The session's CSRF token (not with an API token)"),
        ("Authorization" = Option<String>, Header, description = "`Bearer rxt_…`: an API token instead of a session"),
        ("If-None-Exist" = Option<String>, Header, description = "`identifier=<system>|<value>`: create only if this hospital has no prescription for that order"),
    ),
    request_body(content = Object, content_type = "application/fhir+json", description = "A FHIR R4 MedicationRequest with a contained Patient"),
    responses(
        (status = 200, description = "If-None-Exist matched: the existing MedicationRequest (its code only for the request that created it); nothing was created", body = Object, content_type = "application/fhir+json"),
        (status = 201, description = "MedicationRequest, committed", body = Object, content_type = "application/fhir+json"),
        (status = 202, description = "OperationOutcome: signed, the commit is slow; carries the QR payload and the poll URL", body = Object, content_type = "application/fhir+json"),
        (status = 400, description = "OperationOutcome: malformed JSON, `bad_idempotency_key`, a form check, `unsupported_search_parameter` or `bad_query` (an If-None-Exist we do not evaluate)", body = Object, content_type = "application/fhir+json"),
        (status = 401, description = "OperationOutcome `no_session`, `staff_revoked`, `bad_token`", body = Object, content_type = "application/fhir+json"),
        (status = 403, description = "OperationOutcome `csrf_missing`, `csrf_mismatch`, `wrong_role`, or a chain refusal", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "OperationOutcome: a chain refusal (unknown organisation)", body = Object, content_type = "application/fhir+json"),
        (status = 409, description = "OperationOutcome: a chain refusal (state conflict)", body = Object, content_type = "application/fhir+json"),
        (status = 410, description = "OperationOutcome: a chain refusal (expired)", body = Object, content_type = "application/fhir+json"),
        (status = 413, description = "OperationOutcome `body_too_large`", body = Object, content_type = "application/fhir+json"),
        (status = 415, description = "OperationOutcome `unsupported_media_type`: send FHIR JSON", body = Object, content_type = "application/fhir+json"),
        (status = 422, description = "OperationOutcome naming the element: `unsupported_element`, `unrepresentable_dosage`, `unknown_atc`, `foreign_code_system`, `missing_validity`, `missing_element`, `invalid_element`, `unsupported_value`, `unresolved_reference`, `idempotency_key_reused`, or a chain refusal", body = Object, content_type = "application/fhir+json"),
        (status = 429, description = "OperationOutcome: too many refusals", body = Object, content_type = "application/fhir+json"),
        (status = 503, description = "OperationOutcome `not_committed`: nothing was committed; retry", body = Object, content_type = "application/fhir+json"),
    )
)]
#[tracing::instrument(skip_all)]
pub(super) async fn create_request(
    State(s): State<AppState>,
    staff: Result<StaffOrToken, ApiError>,
    idem: Result<IdempotencyKey, ApiError>,
    headers: HeaderMap,
    body: Result<HashedJson<Value>, ApiError>,
) -> Result<Response, FhirError> {
    let staff = staff?.0;
    staff.require(&[Role::Practitioner], "issue prescriptions")?;
    let HashedJson(body, hash) = body?;
    let list =
        ControlledList::current(&s.consortium(), &s.chain.state()).map_err(ApiError::internal)?;
    let entries = super::formulary::formulary_entries()?;
    let lookup = |atc: &AtcCode| -> Option<Drug> {
        entries
            .iter()
            .find(|e| e.atc == atc.as_str())
            .map(|e| Drug {
                name: e.name.clone(),
                strength: e.strength.clone(),
                form: e.form.clone(),
                unit: e.unit.clone(),
                controlled: list.contains(atc),
            })
    };
    let imported = import::medication_request(body, &lookup)?;
    check_form(&s, &list, &imported)?;
    let condition = headers
        .get("if-none-exist")
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| bad("bad_query", "If-None-Exist must be visible ASCII text"))?;
    let order = condition.as_deref().map(order_condition).transpose()?;
    let idem = idem?.or_condition(condition.as_deref());
    let scoped = idem.for_staff(&staff, "fhir-medication-request", "", &hash);
    // Conditional create: an order this hospital already made a
    // prescription for answers that prescription (200), creating nothing.
    if let Some((system, value)) = order.clone() {
        let (st, org) = (s.clone(), staff.org().clone());
        let found = blocking(move || Ok(st.orders.find(&org, &system, &value)?)).await?;
        if let Some(rx) = found {
            let before = signed_before(&s, scoped.as_ref()).await?;
            return existing_request(&s, &staff, rx, before).await;
        }
    }
    let mut orders = imported.identifiers.clone();
    if let Some(o) = order {
        if !orders.contains(&o) {
            orders.push(o);
        }
    }
    let content = PrivateContent {
        patient: imported.patient.clone(),
        dosage: vec![imported.dosage.clone()],
        notes: imported.notes.clone(),
    };
    let signed = sign_once(&s, scoped.as_ref(), || build(&s, &staff, imported)).await?;
    let text = signed
        .secret
        .map(String::from_utf8)
        .transpose()
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal("an issue was signed without its payload"))?;
    let payload = QrPayload::parse(&text).map_err(ApiError::internal)?;
    let extensions = code_extensions(&text, &payload);
    match submit(&s, signed.tx).await.map_err(ApiError::from)? {
        Submitted::Committed(r) => match &r.outcome {
            Outcome::Applied => {}
            Outcome::Refused { reason } => {
                return Err(ApiError::Refused(reason.clone(), Some(r.clone())).into())
            }
        },
        Submitted::Pending(id) => {
            let mut outcome = export::operation_outcome(
                202,
                "pending",
                &format!(
                    "signed and admitted; the commit is slow: poll {}",
                    poll_url(&id)
                ),
                None,
            );
            outcome.extension = extensions;
            return Ok(no_store(fhir_json(StatusCode::ACCEPTED, &outcome)));
        }
        Submitted::Relayed(r) => return Err(ApiError::Relayed(r).into()),
    }
    if !orders.is_empty() {
        let (st, org, id) = (s.clone(), staff.org().clone(), payload.id);
        blocking(move || Ok(st.orders.record(&org, &id, &orders)?)).await?;
    }
    let who = Who::of(&staff);
    let st = s.clone();
    let id = payload.id;
    let mut loaded = blocking(move || {
        let rec = super::rx::load(&st, &id)?;
        load(&st, rec, Some(&who))
    })
    .await?;
    // The doctor wrote the content; without the hospital's data key on
    // this node it could not be opened, yet it is theirs to see.
    if loaded.content.is_none() {
        loaded.content = Some(content);
    }
    let mut resource = export::medication_request(&loaded.view(), 0);
    add_order_identifiers(&s, &id, &mut resource).await?;
    resource.extension = extensions;
    let mut resp = no_store(fhir_json(StatusCode::CREATED, &resource));
    if let Ok(v) = HeaderValue::from_str(&format!("/fhir/r4/MedicationRequest/{}", resource.id)) {
        resp.headers_mut().insert(LOCATION, v);
    }
    Ok(resp)
}

/// The QR payload and patient link as the extensions of an import's answer.
fn code_extensions(text: &str, payload: &QrPayload) -> Vec<Extension> {
    vec![
        Extension {
            url: export::EXT_QR_PAYLOAD.into(),
            value_string: text.to_string(),
        },
        Extension {
            url: export::EXT_PATIENT_LINK.into(),
            value_string: payload.patient_link(""),
        },
    ]
}

/// The If-None-Exist condition we evaluate: `identifier=<system>|<value>`,
/// the order's identifier; anything else is refused, not ignored (ignoring
/// it would create what the client asked us not to).
fn order_condition(condition: &str) -> Result<(String, String), FhirError> {
    let unsupported = || {
        bad(
            "unsupported_search_parameter",
            "If-None-Exist takes one condition, identifier=<system>|<value>",
        )
    };
    let token = condition
        .trim()
        .strip_prefix("identifier=")
        .ok_or_else(unsupported)?;
    if token.contains('&') {
        return Err(unsupported());
    }
    let token = percent_decode(token).ok_or_else(unsupported)?;
    match token.split_once('|') {
        Some((system, value)) if !system.is_empty() && !value.is_empty() => {
            Ok((system.to_string(), value.to_string()))
        }
        _ => Err(bad(
            "bad_query",
            "If-None-Exist: the identifier needs its system, as identifier=<system>|<value>",
        )),
    }
}

/// `%XX` escapes decoded, as UTF-8; `None` for a broken escape.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The order identifiers this node keeps for `rx`, added to `resource`.
async fn add_order_identifiers(
    s: &AppState,
    rx: &PrescriptionId,
    resource: &mut model::resources::MedicationRequest,
) -> Result<(), ApiError> {
    let (st, id) = (s.clone(), *rx);
    let orders = blocking(move || Ok(st.orders.of(&id)?)).await?;
    resource.identifier.extend(
        orders
            .iter()
            .map(|(system, value)| Identifier::new(system, value.as_str())),
    );
    Ok(())
}

/// Conditional create's answer when the order exists: 200 with the
/// prescription, and its code only when this same doctor's same request
/// made it (the code is shown to whoever created it, never to others).
async fn existing_request(
    s: &AppState,
    staff: &Staff,
    rx: PrescriptionId,
    before: Option<Signed>,
) -> Result<Response, FhirError> {
    let who = Who::of(staff);
    let st = s.clone();
    let loaded = blocking(move || {
        let rec = super::rx::load(&st, &rx)?;
        load(&st, rec, Some(&who))
    })
    .await?;
    let mut resource = export::medication_request(&loaded.view(), 0);
    add_order_identifiers(s, &rx, &mut resource).await?;
    let text = before
        .and_then(|b| b.secret)
        .and_then(|t| String::from_utf8(t).ok());
    if let Some(text) = text {
        if let Ok(payload) = QrPayload::parse(&text) {
            if payload.id == rx {
                resource.extension = code_extensions(&text, &payload);
            }
        }
    }
    let mut resp = no_store(fhir_json(StatusCode::OK, &resource));
    if let Ok(v) = HeaderValue::from_str(&format!("/fhir/r4/MedicationRequest/{}", resource.id)) {
        resp.headers_mut().insert(LOCATION, v);
    }
    Ok(resp)
}

/// The prescription form's own checks (`rules::check_issue_form`), the
/// ones the JSON form passes, on the imported parts.
fn check_form(s: &AppState, list: &ControlledList, m: &Imported) -> Result<(), FhirError> {
    let valid_days = m.valid_until.map(|u| {
        let from = m.valid_from.unwrap_or_else(now);
        let days = u.0.saturating_sub(from.0).div_ceil(Timestamp::DAY_MS);
        u32::try_from(days).unwrap_or(u32::MAX)
    });
    let form = rules::IssueForm {
        items: std::slice::from_ref(&m.item),
        dosage: std::slice::from_ref(&m.dosage),
        repeats: m.repeats,
        valid_days,
        patient: &m.patient,
        notes: Some(&m.notes),
    };
    rules::check_issue_form(&s.consortium().params, list, &form).map_err(|e| FhirError {
        error: ApiError::Unprocessable {
            code: e.code(),
            message: e.to_string(),
        },
        expression: Some("MedicationRequest".into()),
    })
}

/// Builds and signs the issue, keeping its QR payload text as the secret.
async fn build(s: &AppState, staff: &Staff, m: Imported) -> Result<Signed, ApiError> {
    let key = staff.signing_key(s)?;
    let genesis = s.consortium();
    let input = IssueInput {
        hospital: staff.org().clone(),
        items: vec![m.item],
        repeats: m.repeats,
        valid_from: m.valid_from,
        valid_until: m.valid_until,
        content: PrivateContent {
            patient: m.patient,
            dosage: vec![m.dosage],
            notes: m.notes,
        },
    };
    // Sealing wraps the content key by ECDH for the hospital and every
    // regulator: off the runtime.
    let new = tokio::task::spawn_blocking(move || txbuild::issue(&genesis, &key, input))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::bad("unknown_org", e.to_string()))?;
    tracing::info!(id = %new.payload.id, "FHIR MedicationRequest signed on behalf of staff");
    Ok(Signed {
        tx: new.tx,
        secret: Some(new.payload.encode().into_bytes()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FHIR client told to come back later is told when, as the JSON API
    /// tells its clients: `Retry-After` on the OperationOutcome's 429 and 503.
    #[test]
    fn busy_and_throttled_outcomes_carry_retry_after() {
        let busy = ApiError::Busy {
            code: "not_committed",
            message: "nothing was committed".into(),
            retry_after_secs: 2,
        };
        let throttled = ApiError::RateLimited {
            code: "too_many_refusals",
            message: "too many refusals".into(),
            retry_after_secs: 30,
        };
        for (e, status, secs) in [(busy, 503, "2"), (throttled, 429, "30")] {
            let resp = FhirError::from(e).into_response();
            assert_eq!(resp.status().as_u16(), status);
            assert_eq!(resp.headers()[CONTENT_TYPE], MEDIA_TYPE);
            assert_eq!(resp.headers()[axum::http::header::RETRY_AFTER], secs);
        }
        let plain = FhirError::from(ApiError::MethodNotAllowed).into_response();
        assert!(plain
            .headers()
            .get(axum::http::header::RETRY_AFTER)
            .is_none());
    }

    #[test]
    fn only_an_identifier_condition_is_evaluated() {
        assert_eq!(
            order_condition("identifier=urn:oid:1.2.3%7CORD-1").unwrap(),
            ("urn:oid:1.2.3".to_string(), "ORD-1".to_string())
        );
        assert_eq!(
            order_condition(" identifier=http://x.example/ids|A B ").unwrap(),
            ("http://x.example/ids".to_string(), "A B".to_string())
        );
        for bad in [
            "",
            "identifier=",
            "identifier=|x",
            "identifier=sys|",
            "name=x",
            "identifier=a|b&c=d",
            "identifier=%zz|x",
        ] {
            assert!(order_condition(bad).is_err(), "{bad:?}");
        }
    }
}
