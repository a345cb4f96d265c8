//! Who looked: the patient's view of the reads of their prescription, and
//! the regulator's queries over this node's access log (by staff member,
//! unusual volumes, and the log checked against its anchor on the chain).
//! The handlers that open private content record each read through
//! [`record`] before they answer.
//!
//! Every node keeps its own log, so the patient's "who looked" asks every
//! consortium node for its reads of the prescription: the node the patient
//! talks to sends each peer `POST /v1/node/access`, a node-only route
//! ([`node_access`]): signed with its node key like an admin request (and
//! over TLS sent on a connection with its node certificate), and signed
//! a second time with the prescription's access key, derived from the QR
//! code the patient just proved, so that a node cannot pull the reads of a
//! prescription whose patient did not ask. Each peer answers with a
//! [`Proof`] that is checked against the head the peer anchored on the
//! chain ([`crate::access_log::check`]); the answer merges every node's
//! reads and says which nodes answered, which did not, and how far each
//! one's reads are anchored.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rxchain_contracts::tx::Role;
use rxchain_contracts::{OrgId, PrescriptionId, Timestamp};
use serde::{Deserialize, Serialize};

use super::cluster::{authenticate, Signer};
use super::common::{blocking, no_store};
use super::error::ErrorBody;
use super::patient::authorise;
use super::session::Staff;
use super::{ApiBody, ApiError, ApiJson, ApiQuery, AppState};
use crate::access_log::{
    check, AccessLogError, AccessRecord, Proof, Purpose, Reader, Verdict, MAX_PROOF_RECORDS,
};
use crate::accounts::Account;
use crate::clock::now;
use crate::qr::QrPayload;
use crate::raft::peers::PeerRequest;
use crate::raft::rpc::{self, Stamp, HEADER_NODE, HEADER_SIG};

/// The patient's "who looked" and the regulator's access queries.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/patient/access", post(patient_access))
        .route("/v1/node/access", post(node_access))
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
    /// Whether the record is covered by its node's head anchored on the
    /// chain (for the patient: checked against it, see `nodes`).
    pub anchored: bool,
}

fn read_view(s: &AppState, r: AccessRecord, anchored: bool) -> ReadView {
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
        anchored,
    }
}

/// How one node's reads were checked against the chain.
#[derive(Serialize, Clone, Copy, PartialEq, Eq, Debug, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeCheck {
    /// The node has no read of this prescription.
    NoReads,
    /// Every read links to the head the node anchored on the chain.
    Anchored,
    /// The older reads link to the anchored head; the newest are not
    /// anchored yet (a node anchors about once a second).
    PartlyAnchored,
    /// None of the reads is anchored yet.
    NotYetAnchored,
    /// The first read is too far back in the node's log to check here.
    Unchecked,
    /// The reads do not link to the head the node anchored: its log was
    /// changed after it was anchored, or it answers falsely.
    DoesNotVerify,
    /// The node did not answer.
    NoAnswer,
}

/// What one consortium node said about the prescription.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NodeReads {
    /// The node.
    pub node: u64,
    /// Its organisation.
    pub org: OrgId,
    /// The organisation's display name.
    pub org_name: String,
    /// Whether it answered.
    pub answered: bool,
    /// How many reads of this prescription it served.
    pub reads: usize,
    /// Its reads checked against its head anchored on the chain.
    pub check: NodeCheck,
    /// How far its log is anchored on the chain, as this node sees it.
    pub anchored_seq: u64,
    /// Why it did not answer, for people.
    pub reason: Option<String>,
}

/// The patient's "who looked at this prescription".
#[derive(Serialize, utoipa::ToSchema)]
pub struct PatientAccess {
    /// Every read of its private content by any node that answered, oldest
    /// first.
    pub reads: Vec<ReadView>,
    /// The node that answers (and asked the others).
    pub node: u64,
    /// How far this node's log is anchored on the chain.
    pub anchored_seq: u64,
    /// Every consortium node: whether it answered and how its reads check.
    pub nodes: Vec<NodeReads>,
}

/// A request carrying only the payload. `WhoLookedRequest` in the OpenAPI
/// document, apart from the chain's access request record.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = WhoLookedRequest)]
pub struct AccessRequest {
    /// The QR payload, or the patient link holding it.
    pub payload: String,
}

/// The node-only route a node asks its peers for their reads on.
pub const NODE_ACCESS: &str = "/v1/node/access";
/// The header carrying the access key's signature of a node-only request.
pub const HEADER_PATIENT_SIG: &str = "x-rxchain-patient-sig";
/// What the access key's signature binds besides path, stamp and body (the
/// `origin` field of [`rpc::signing_message`]), so that it can never pass
/// for a node's signature of the same request or the other way round.
const PATIENT_ORIGIN: &[u8] = b"patient-access-key";
/// How long the patient's page waits for each peer.
const PEER_WAIT: Duration = Duration::from_secs(3);

/// `POST /v1/node/access`.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeAccessAsk {
    /// The prescription whose reads are asked for.
    pub prescription: PrescriptionId,
}

/// The headers with which node `from` (key `node_key`) asks node `to` for
/// the reads of the prescription of `payload`, with `body`: its node
/// signature, and the access key's over the same stamp.
pub fn node_access_headers(
    chain_id: &str,
    node_key: &rxchain_contracts::SecretKey,
    from: u64,
    to: u64,
    payload: &QrPayload,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let stamp = Stamp::fresh(to);
    let node_sig = rpc::sign(chain_id, node_key, NODE_ACCESS, &stamp, body);
    let patient_sig = rpc::sign_with_origin(
        chain_id,
        &payload.secret.signing_key(),
        NODE_ACCESS,
        &stamp,
        PATIENT_ORIGIN,
        body,
    );
    let mut headers = vec![
        (HEADER_NODE, from.to_string()),
        ("content-type", "application/json".to_string()),
    ];
    headers.extend(stamp.headers());
    headers.push((HEADER_SIG, node_sig.to_hex()));
    headers.push((HEADER_PATIENT_SIG, patient_sig.to_hex()));
    headers
}

#[utoipa::path(
    post, path = "/v1/patient/access", tag = "patient",
    request_body = AccessRequest,
    responses(
        (status = 200, description = "Who read this prescription's private content, on every node that answered", body = PatientAccess),
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
    let id = payload.id;
    let st = s.clone();
    let local = blocking(move || Ok(st.access_log.proof(&id, MAX_PROOF_RECORDS)?)).await?;
    let consortium = s.consortium();
    let nodes: Vec<(u64, OrgId, String)> = consortium
        .orgs
        .iter()
        .flat_map(|o| {
            o.nodes
                .iter()
                .map(move |n| (n.id, o.id.clone(), o.name.to_string()))
        })
        .collect();
    let asked = futures::future::join_all(
        nodes
            .iter()
            .filter(|(n, _, _)| *n != s.node_id)
            .map(|(n, _, _)| ask_peer(&s, *n, &payload)),
    )
    .await;
    let mut answers: BTreeMap<u64, Result<Proof, String>> = asked.into_iter().collect();
    answers.insert(s.node_id, Ok(local));

    let mut reads: BTreeMap<(u64, u64), ReadView> = BTreeMap::new();
    let mut views = Vec::with_capacity(nodes.len());
    for (node, org, org_name) in nodes {
        let anchor = crate::access_log::anchored(&s.chain, node);
        let anchored_seq = anchor.as_ref().map_or(0, |a| a.seq);
        let answer = answers
            .remove(&node)
            .unwrap_or_else(|| Err("it was not asked".into()));
        let view = match answer {
            Ok(proof) => {
                let verdict = check(&proof, anchor.map(|a| (a.seq, a.head)));
                let upto = match verdict {
                    Verdict::Anchored { seq } => seq,
                    _ => 0,
                };
                let mine: Vec<AccessRecord> = proof
                    .records
                    .into_iter()
                    .filter(|r| r.node == node && r.prescription == id)
                    .collect();
                let all_anchored = mine.iter().all(|r| r.seq <= upto);
                let count = mine.len();
                for r in mine {
                    let anchored = r.seq <= upto;
                    reads
                        .entry((r.node, r.seq))
                        .or_insert_with(|| read_view(&s, r, anchored));
                }
                NodeReads {
                    node,
                    org,
                    org_name,
                    answered: true,
                    reads: count,
                    check: match verdict {
                        Verdict::Nothing => NodeCheck::NoReads,
                        Verdict::Anchored { .. } if all_anchored => NodeCheck::Anchored,
                        Verdict::Anchored { .. } => NodeCheck::PartlyAnchored,
                        Verdict::NotYetAnchored => NodeCheck::NotYetAnchored,
                        Verdict::OutOfReach => NodeCheck::Unchecked,
                        Verdict::Broken => NodeCheck::DoesNotVerify,
                    },
                    anchored_seq,
                    reason: None,
                }
            }
            Err(reason) => NodeReads {
                node,
                org,
                org_name,
                answered: false,
                reads: 0,
                check: NodeCheck::NoAnswer,
                anchored_seq,
                reason: Some(reason),
            },
        };
        if view.check == NodeCheck::DoesNotVerify {
            tracing::warn!(node, prescription = %id, "a node's reads do not link to its anchored access-log head");
        }
        views.push(view);
    }
    let mut reads: Vec<ReadView> = reads.into_values().collect();
    reads.sort_by_key(|r| (r.at, r.node, r.seq));
    let v = PatientAccess {
        reads,
        node: s.node_id,
        anchored_seq: crate::access_log::anchored(&s.chain, s.node_id).map_or(0, |a| a.seq),
        nodes: views,
    };
    Ok(no_store(Json(v).into_response()))
}

/// Asks node `node` for its [`Proof`] of the reads of `payload`'s
/// prescription; a sentence for people if it does not answer.
async fn ask_peer(s: &AppState, node: u64, payload: &QrPayload) -> (u64, Result<Proof, String>) {
    let addr = {
        let m = s.raft.metrics().borrow().clone();
        m.membership_config
            .membership()
            .get_node(&node)
            .map(|n| n.addr.clone())
    };
    let Some(addr) = addr else {
        return (node, Err("it is not a member of the cluster".into()));
    };
    let body = match serde_json::to_vec(&NodeAccessAsk {
        prescription: payload.id,
    }) {
        Ok(b) => b,
        Err(e) => return (node, Err(format!("the request could not be written: {e}"))),
    };
    let headers = node_access_headers(
        s.genesis.chain_id.as_str(),
        &s.node_key,
        s.node_id,
        node,
        payload,
        &body,
    );
    let answer = s
        .peers
        .call(
            node,
            &addr,
            PeerRequest {
                method: reqwest::Method::POST,
                path: NODE_ACCESS,
                headers: &headers,
                body: body.into(),
                timeout: PEER_WAIT,
            },
        )
        .await;
    let result = match answer {
        Err(e) => {
            tracing::info!(node, error = ?e, "a node did not answer for its access log");
            Err("it could not be reached".into())
        }
        Ok(r) if r.status != 200 => {
            let code = serde_json::from_slice::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v["code"].as_str().map(str::to_owned))
                .unwrap_or_default();
            tracing::warn!(node, status = r.status, %code, "a node refused to give its access log");
            Err(format!("it refused ({} {code})", r.status))
        }
        Ok(r) => match serde_json::from_slice::<Proof>(&r.body) {
            Ok(p) if p.node == node => Ok(p),
            Ok(p) => Err(format!("it answered for node {}", p.node)),
            Err(e) => Err(format!("its answer does not parse: {e}")),
        },
    };
    (node, result)
}

#[utoipa::path(
    post, path = "/v1/node/access", tag = "cluster",
    params(
        ("x-rxchain-node" = String, Header, description = "The asking node's id; the request is signed with its node key, and over TLS sent with its node certificate"),
        ("x-rxchain-to" = String, Header, description = "The node id the request is sent to"),
        ("x-rxchain-ts" = String, Header, description = "Request time, ms since the epoch"),
        ("x-rxchain-nonce" = String, Header, description = "16 random bytes, hex; each request is accepted once"),
        ("x-rxchain-sig" = String, Header, description = "The node key's signature over path, target, time, nonce and body, hex"),
        ("x-rxchain-patient-sig" = String, Header, description = "The prescription's access key's signature over the same, with origin `patient-access-key`, hex"),
    ),
    request_body = NodeAccessAsk,
    responses(
        (status = 200, description = "This node's reads of the prescription, with the digests that link them to its anchored head", body = Proof),
        (status = 400, description = "`invalid_json`, `unreadable_body`", body = ErrorBody),
        (status = 401, description = "`missing_auth`, `malformed_auth`, `stale_request`, `bad_signature`, `replayed_request`, `peer_certificate_required`", body = ErrorBody),
        (status = 403, description = "`not_a_node`: signed by an organisation or forwarded; `unknown_node`, `wrong_target`, `peer_certificate_mismatch`, `not_patient`: the access key's signature does not verify", body = ErrorBody),
        (status = 404, description = "`unknown_prescription`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 429, description = "`replay_window_full`", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(super) async fn node_access(
    State(s): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> Result<Json<Proof>, ApiError> {
    let admitted = authenticate(
        &s.consortium(),
        s.node_id,
        &s.admin_nonces,
        uri.path(),
        &headers,
        &body,
    )?;
    let asker = match admitted.signer {
        Signer::Node(n) if admitted.forwarded_by.is_none() => n,
        _ => {
            return Err(ApiError::forbidden(
                "not_a_node",
                "only a consortium node asks for another node's access log, signed with its own node key",
            ))
        }
    };
    let req: NodeAccessAsk = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad("invalid_json", format!("the JSON does not fit: {e}")))?;
    let sig = headers
        .get(HEADER_PATIENT_SIG)
        .ok_or_else(|| {
            ApiError::unauthorized(
                "missing_auth",
                "the x-rxchain-patient-sig header is missing: sign with the prescription's access key",
            )
        })?
        .to_str()
        .ok()
        .and_then(rpc::parse_signature)
        .ok_or_else(|| {
            ApiError::unauthorized("malformed_auth", "the x-rxchain-patient-sig header is malformed")
        })?;
    let (stamp, _) = rpc::read_stamp(&headers)
        .map_err(|e| ApiError::unauthorized("malformed_auth", e.to_string()))?;
    let id = req.prescription;
    let st = s.clone();
    let path = uri.path().to_owned();
    let proof = blocking(move || {
        let rec = super::rx::load(&st, &req.prescription)?;
        rec.access_key
            .verify(
                &rpc::signing_tag(st.genesis.chain_id.as_str()),
                &rpc::signing_message(&path, &stamp, PATIENT_ORIGIN, &body),
                &sig,
            )
            .map_err(|_| {
                ApiError::forbidden(
                    "not_patient",
                    "the request is not signed with this prescription's access key",
                )
            })?;
        Ok(st.access_log.proof(&req.prescription, MAX_PROOF_RECORDS)?)
    })
    .await?;
    tracing::info!(asker, prescription = %id, reads = proof.records.len(), "a node asked for a prescription's reads for its patient");
    Ok(Json(proof))
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
        let anchored = crate::access_log::anchored(&st.chain, st.node_id).map_or(0, |a| a.seq);
        let reads: Vec<ReadView> = st
            .access_log
            .since(from)?
            .into_iter()
            .filter(|r| r.reader.username.as_deref() == Some(q.staff.as_str()))
            .map(|r| {
                let a = r.seq <= anchored;
                read_view(&st, r, a)
            })
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
