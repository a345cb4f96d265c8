//! The Raft RPC server: `POST /raft/append`, `/raft/vote` and
//! `/raft/snapshot`, for peers only; and the signing scheme every signed
//! node message uses (Raft RPCs here, cluster admin requests in
//! `crate::http::cluster`).
//!
//! ## Wire format (version 2)
//!
//! Every request carries five headers:
//!
//! - `x-rxchain-node`: the sender's node id (admin requests may name an
//!   organisation in `x-rxchain-org` instead);
//! - `x-rxchain-to`: the node id the request is addressed to;
//! - `x-rxchain-ts`: the sender's clock, Unix milliseconds, decimal;
//! - `x-rxchain-nonce`: 16 random bytes, 32 lowercase hex digits, fresh for
//!   every request;
//! - `x-rxchain-sig`: hex of the sender's secp256k1 signature (see
//!   `SecretKey::sign`) under the domain tag `raft-rpc-v2/<chain id>` over
//!   the message
//!
//! ```text
//! path || 0x00 || to || 0x00 || ts || 0x00 || nonce || 0x00 || origin || 0x00 || SHA3-256(body)
//! ```
//!
//! where `to` and `ts` are decimal ASCII, `nonce` is the 32 hex digits of
//! the header, `path` is the request path without the query, and `origin`
//! is empty except in a cluster admin request a node forwards for an
//! operator (see `crate::http::cluster`), where it is the operator's
//! signature headers. No field but the final 32-byte digest can contain a
//! 0x00 byte, so the layout is unambiguous. Version 1 (tag `raft-rpc/`,
//! without target and nonce) is no longer accepted.
//!
//! The receiver refuses a request addressed to another node (403
//! `wrong_target`), one whose time is more than [`MAX_CLOCK_SKEW_MS`] from
//! its clock (401 `stale_request`), and one whose nonce it already accepted
//! from that sender (401 `replayed_request`): it remembers every accepted
//! nonce ([`super::nonces`]) until the request's timestamp is stale anyway,
//! at most [`NONCE_CAP_PER_SIGNER`] per sender; a sender over that cap is
//! refused with 429 `replay_window_full` until its entries expire. So a
//! captured request can be played neither twice nor to another node. The
//! request's Raft vote must also name the sender, so one member node
//! cannot speak for another.
//!
//! A request is admitted in stages, cheapest first, so a stranger costs
//! this node as little as possible:
//!
//! 1. The headers alone ([`precheck`]): present, well-formed, naming a
//!    genesis node as sender and this node as target, with a timestamp
//!    inside [`MAX_CLOCK_SKEW_MS`] and a nonce not yet used. A request that
//!    fails here is refused before a single body byte is read.
//! 2. A `Content-Length` above [`MAX_RPC_BODY`] is refused with 413, unread.
//! 3. At most [`MAX_CONCURRENT_RPCS`] requests read their bodies and run at
//!    once; the others wait (inside their timeout) without reading.
//! 4. The body is read up to [`MAX_RPC_BODY`], then the signature over its
//!    digest is verified ([`Claim::verify`]); only then is the nonce
//!    recorded (so strangers cannot fill the memory, and of two copies of a
//!    request exactly one passes), the JSON decoded and handed to Raft.
//!
//! Stages 3 and 4 and the Raft call together run under one deadline
//! ([`rpc_timeout`]), and a panicking handler answers 500 instead of taking
//! the connection down.
//!
//! ## Body encoding
//!
//! Request and response bodies are openraft's own types in postcard
//! (`Content-Type: application/x-postcard`, [`Wire::Postcard`]), which is
//! what this node's client sends: a block's bytes travel as bytes, not as a
//! JSON array of numbers. A request with any other content type is read as
//! JSON and answered in JSON ([`Wire::Json`]), for people and tools poking
//! at a node. Either way the signature covers the body bytes exactly as
//! sent, and the headers are authenticated before any of them is read.
//! Failures are always JSON.
//!
//! Answers: 200 with the Raft response (postcard or JSON, as the request); 401 or 403 when the request
//! is not authenticated (or replayed, or addressed to another node); 429
//! when the sender has too many requests in the window; 400 when the body does not decode or cannot be
//! read; 408 when the deadline passes; 413 when the body is too large; 409
//! for a Raft API error and 503 when Raft has stopped, both with the
//! serialised openraft error in `raft` so the sender can hand it back to
//! openraft. Every failure is JSON `{code, message}`.

use std::fmt::{self, Display};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures::StreamExt;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::Vote;
use rxchain_contracts::crypto::{Hash, SecretKey, Signature};
use rxchain_contracts::{Genesis, OrgId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;

pub use super::nonces::Nonce;
use super::nonces::{NonceError, Nonces};
use super::snapshot::{ReceiveError, SnapshotReceiver};
use super::{Faults, Raft, TypeConfig};

/// Header naming the sending node.
pub const HEADER_NODE: &str = "x-rxchain-node";
/// Header naming the node a request is addressed to.
pub const HEADER_TO: &str = "x-rxchain-to";
/// Header with the request's single-use nonce, 32 hex digits.
pub const HEADER_NONCE: &str = "x-rxchain-nonce";
/// Header with the sender's clock in Unix milliseconds.
pub const HEADER_TS: &str = "x-rxchain-ts";
/// Header with the hex signature.
pub const HEADER_SIG: &str = "x-rxchain-sig";
/// AppendEntries (replication and heartbeats).
pub const PATH_APPEND: &str = "/raft/append";
/// RequestVote.
pub const PATH_VOTE: &str = "/raft/vote";
/// InstallSnapshot, one chunk per request.
pub const PATH_SNAPSHOT: &str = "/raft/snapshot";
/// The content type of postcard bodies.
pub const POSTCARD: &str = "application/x-postcard";

/// How an RPC body is encoded (see the module doc, "Body encoding").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// JSON, for people and tools.
    Json,
    /// postcard 1.x, what nodes send each other.
    Postcard,
}

/// A body that does not encode or decode.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// As JSON.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// As postcard.
    #[error("postcard: {0}")]
    Postcard(#[from] postcard::Error),
}

impl Wire {
    /// The encoding a request's (or response's) `Content-Type` names:
    /// postcard for [`POSTCARD`], JSON otherwise.
    pub fn of(headers: &HeaderMap) -> Wire {
        let postcard = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(POSTCARD));
        if postcard {
            Wire::Postcard
        } else {
            Wire::Json
        }
    }

    /// The `Content-Type` of this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Wire::Json => "application/json",
            Wire::Postcard => POSTCARD,
        }
    }

    /// Encodes `v`.
    pub fn encode<T: Serialize>(self, v: &T) -> Result<Vec<u8>, WireError> {
        Ok(match self {
            Wire::Json => serde_json::to_vec(v)?,
            Wire::Postcard => postcard::to_allocvec(v)?,
        })
    }

    /// Decodes a whole body: trailing bytes are an error, so one body has
    /// one meaning.
    pub fn decode<T: DeserializeOwned>(self, body: &[u8]) -> Result<T, WireError> {
        match self {
            Wire::Json => Ok(serde_json::from_slice(body)?),
            Wire::Postcard => {
                let (v, rest) = postcard::take_from_bytes(body)?;
                if rest.is_empty() {
                    Ok(v)
                } else {
                    Err(WireError::Postcard(postcard::Error::DeserializeBadEncoding))
                }
            }
        }
    }

    /// A 200 answer with `v` in this encoding.
    fn ok<T: Serialize>(self, v: &T) -> Response {
        match self.encode(v) {
            Ok(bytes) => (
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, self.content_type())],
                bytes,
            )
                .into_response(),
            Err(e) => {
                tracing::error!(error = %e, "a Raft response does not encode");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(ErrorBody {
                        code: "unencodable_response".into(),
                        message: e.to_string(),
                        raft: None,
                    }),
                )
                    .into_response()
            }
        }
    }
}

/// How far a request's timestamp may be from this node's clock. It bounds
/// how long the receiver must remember a request's nonce.
pub const MAX_CLOCK_SKEW_MS: u64 = 60_000;
/// The largest RPC body accepted: room for a full batch of blocks in an
/// AppendEntries or a snapshot chunk, both as JSON.
pub const MAX_RPC_BODY: usize = 64 * 1024 * 1024;
/// How many RPCs may read their bodies and run at once. A node hears from
/// a handful of peers (one replication stream each, plus votes during an
/// election), so 16 leaves headroom for a large consortium while bounding
/// the memory held by bodies being read to 16 x [`MAX_RPC_BODY`].
pub const MAX_CONCURRENT_RPCS: usize = 16;
/// The shortest deadline for one RPC: waiting for a slot, reading the body
/// and the Raft call together.
pub const MIN_RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// How many live nonces each sender may have in the replay window. A
/// leader sends each follower one append at a time, so even a busy
/// loopback cluster stays far below this (about 3,000 requests a second
/// sustained over the window); the bound caps this node's nonce memory at
/// roughly 50 bytes x this, per genesis identity.
pub const NONCE_CAP_PER_SIGNER: usize = 200_000;

/// The signature domain tag of signed node messages in a consortium.
pub fn signing_tag(chain_id: &str) -> String {
    format!("raft-rpc-v2/{chain_id}")
}

/// Who signed a node message: a genesis node with its node key, or an
/// organisation's admin (an operator) with the org admin key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Signer {
    /// A genesis node, with its node key.
    Node(u64),
    /// An organisation's admin (an operator), with the org admin key.
    Operator(OrgId),
}

impl fmt::Display for Signer {
    /// `node:<id>` or `org:<org id>`, the form inside a forwarded
    /// request's origin.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signer::Node(id) => write!(f, "node:{id}"),
            Signer::Operator(org) => write!(f, "org:{org}"),
        }
    }
}

impl std::str::FromStr for Signer {
    type Err = BadSigner;

    fn from_str(s: &str) -> Result<Self, BadSigner> {
        if let Some(id) = s.strip_prefix("node:") {
            return id.parse().map(Signer::Node).map_err(|_| BadSigner);
        }
        if let Some(org) = s.strip_prefix("org:") {
            return OrgId::parse(org)
                .map(Signer::Operator)
                .map_err(|_| BadSigner);
        }
        Err(BadSigner)
    }
}

/// A signer that is neither `node:<id>` nor `org:<org id>`.
#[derive(Debug, thiserror::Error)]
#[error("a signer is written node:<id> or org:<org id>")]
pub struct BadSigner;

/// What a signed message binds besides its path and body: the node it is
/// addressed to, the sender's clock and a single-use nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The target node id.
    pub to: u64,
    /// The sender's clock, Unix milliseconds.
    pub ts_ms: u64,
    /// The single-use nonce.
    pub nonce: Nonce,
}

impl Stamp {
    /// A stamp for a request to `to`, now, with a fresh random nonce.
    pub fn fresh(to: u64) -> Stamp {
        Stamp {
            to,
            ts_ms: crate::clock::now_ms(),
            nonce: Nonce::random(),
        }
    }

    /// When the receiver may forget this request's nonce: its timestamp is
    /// refused as stale from then on.
    pub fn expires_ms(&self) -> u64 {
        self.ts_ms.saturating_add(MAX_CLOCK_SKEW_MS)
    }

    /// The stamp's headers, `x-rxchain-to`, `-ts` and `-nonce`.
    pub fn headers(&self) -> [(&'static str, String); 3] {
        [
            (HEADER_TO, self.to.to_string()),
            (HEADER_TS, self.ts_ms.to_string()),
            (HEADER_NONCE, self.nonce.to_hex()),
        ]
    }
}

/// The signed message (see the module doc for the layout): `origin` is
/// empty but in a forwarded admin request.
pub fn signing_message(path: &str, stamp: &Stamp, origin: &[u8], body: &[u8]) -> Vec<u8> {
    let digest = Hash::of(&[body]);
    [
        path.as_bytes(),
        &[0],
        stamp.to.to_string().as_bytes(),
        &[0],
        stamp.ts_ms.to_string().as_bytes(),
        &[0],
        stamp.nonce.to_hex().as_bytes(),
        &[0],
        origin,
        &[0],
        digest.as_bytes(),
    ]
    .concat()
}

/// Signs a request to `path` with `body` under `stamp` (no origin).
pub fn sign(chain_id: &str, key: &SecretKey, path: &str, stamp: &Stamp, body: &[u8]) -> Signature {
    sign_with_origin(chain_id, key, path, stamp, &[], body)
}

/// Signs a request that carries an `origin` (a forwarded admin request).
pub fn sign_with_origin(
    chain_id: &str,
    key: &SecretKey,
    path: &str,
    stamp: &Stamp,
    origin: &[u8],
    body: &[u8],
) -> Signature {
    key.sign(
        &signing_tag(chain_id),
        &signing_message(path, stamp, origin, body),
    )
}

/// The complete headers of a request node `from` signs with its node key
/// `key` for node `to`: sender, target, time, a fresh nonce and the
/// signature.
pub fn signed_headers(
    chain_id: &str,
    key: &SecretKey,
    from: u64,
    to: u64,
    path: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let stamp = Stamp::fresh(to);
    let sig = sign(chain_id, key, path, &stamp, body);
    let mut headers = vec![(HEADER_NODE, from.to_string())];
    headers.extend(stamp.headers());
    headers.push((HEADER_SIG, sig.to_hex()));
    headers
}

fn header<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, RpcError> {
    headers
        .get(name)
        .ok_or(RpcError::MissingHeader(name))?
        .to_str()
        .map_err(|_| RpcError::BadHeader(name))
}

/// Reads the stamp (`x-rxchain-to`, `-ts`, `-nonce`) and the signature
/// (`x-rxchain-sig`) of a request, checking only that they are present and
/// well-formed.
pub fn read_stamp(headers: &HeaderMap) -> Result<(Stamp, Signature), RpcError> {
    let to: u64 = header(headers, HEADER_TO)?
        .parse()
        .map_err(|_| RpcError::BadHeader(HEADER_TO))?;
    let ts_ms: u64 = header(headers, HEADER_TS)?
        .parse()
        .map_err(|_| RpcError::BadHeader(HEADER_TS))?;
    let nonce = Nonce::parse_hex(header(headers, HEADER_NONCE)?)
        .map_err(|_| RpcError::BadHeader(HEADER_NONCE))?;
    let sig =
        parse_signature(header(headers, HEADER_SIG)?).ok_or(RpcError::BadHeader(HEADER_SIG))?;
    Ok((Stamp { to, ts_ms, nonce }, sig))
}

/// A 64-byte compact signature in hex, or `None`.
pub fn parse_signature(hex_sig: &str) -> Option<Signature> {
    let raw = hex::decode(hex_sig).ok()?;
    let bytes: [u8; 64] = raw.try_into().ok()?;
    Signature::parse(bytes).ok()
}

/// Checks a stamp against the receiving node `this` at `now_ms`: addressed
/// to it, and inside [`MAX_CLOCK_SKEW_MS`].
pub fn check_stamp(stamp: &Stamp, this: u64, now_ms: u64) -> Result<(), RpcError> {
    if stamp.to != this {
        return Err(RpcError::WrongTarget { to: stamp.to, this });
    }
    let skew_ms = now_ms.abs_diff(stamp.ts_ms);
    if skew_ms > MAX_CLOCK_SKEW_MS {
        return Err(RpcError::Stale { skew_ms });
    }
    Ok(())
}

/// The JSON body of every failure.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable machine-readable code.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The openraft error, for 409 and 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft: Option<serde_json::Value>,
}

/// Why an RPC was refused before, or instead of, reaching Raft.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// 401: an authentication header is absent.
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    /// 401: an authentication header does not parse.
    #[error("the {0} header is malformed")]
    BadHeader(&'static str),
    /// 403: the sender is not a genesis node.
    #[error("node {0} is not declared in genesis")]
    UnknownNode(u64),
    /// 401: the timestamp is too far from this node's clock.
    #[error("the request time is {skew_ms} ms away from this node's clock (limit {MAX_CLOCK_SKEW_MS} ms)")]
    Stale {
        /// The distance.
        skew_ms: u64,
    },
    /// 403: the request is addressed to another node.
    #[error("the request is addressed to node {to}, not to this node ({this})")]
    WrongTarget {
        /// The target the request names.
        to: u64,
        /// This node.
        this: u64,
    },
    /// 401: the sender already used this request's nonce: a replay.
    #[error("node {0} already sent this request (its nonce was used); a signed request is accepted once")]
    Replayed(u64),
    /// 429: the sender has too many requests in the replay window.
    #[error("node {sender} has {cap} requests in the replay window already; retry shortly")]
    WindowFull {
        /// The sender.
        sender: u64,
        /// The cap per sender.
        cap: usize,
    },
    /// 401: the signature does not verify under the sender's genesis key.
    #[error("the signature does not verify under node {0}'s genesis key")]
    BadSignature(u64),
    /// 403: the Raft vote in the body names another node than the sender.
    #[error("node {sender} sent a message on behalf of node {claimed:?}")]
    SenderMismatch {
        /// The authenticated sender.
        sender: u64,
        /// The node the vote names.
        claimed: Option<u64>,
    },
    /// 400: the body is not the expected JSON or postcard.
    #[error("the body does not decode: {0}")]
    BadBody(#[source] WireError),
    /// 400: the body could not be read (the sender hung up or broke the
    /// framing).
    #[error("the request body could not be read")]
    Unreadable(#[source] axum::Error),
    /// 413: the body is (or declares itself) larger than allowed.
    #[error("the request body is larger than the {limit} bytes allowed")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 408: waiting for a slot, reading the body and Raft together took
    /// longer than the deadline.
    #[error("the request took longer than {} ms and was abandoned", .after.as_millis())]
    Timeout {
        /// The deadline.
        after: Duration,
    },
    /// 503: the RPC slots were closed because the node is stopping.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// 503: a test-only partition cuts this node off from the sender.
    #[error("node {0} is cut off by an injected test partition")]
    Partitioned(u64),
}

impl RpcError {
    /// The HTTP status of this refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            RpcError::MissingHeader(_)
            | RpcError::BadHeader(_)
            | RpcError::Stale { .. }
            | RpcError::Replayed(_)
            | RpcError::BadSignature(_) => StatusCode::UNAUTHORIZED,
            RpcError::UnknownNode(_)
            | RpcError::WrongTarget { .. }
            | RpcError::SenderMismatch { .. } => StatusCode::FORBIDDEN,
            RpcError::WindowFull { .. } => StatusCode::TOO_MANY_REQUESTS,
            RpcError::BadBody(_) | RpcError::Unreadable(_) => StatusCode::BAD_REQUEST,
            RpcError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RpcError::Timeout { .. } => StatusCode::REQUEST_TIMEOUT,
            RpcError::ShuttingDown | RpcError::Partitioned(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable machine-readable code of this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            RpcError::MissingHeader(_) => "missing_auth",
            RpcError::BadHeader(_) => "malformed_auth",
            RpcError::UnknownNode(_) => "unknown_node",
            RpcError::Stale { .. } => "stale_request",
            RpcError::WrongTarget { .. } => "wrong_target",
            RpcError::Replayed(_) => "replayed_request",
            RpcError::WindowFull { .. } => "replay_window_full",
            RpcError::BadSignature(_) => "bad_signature",
            RpcError::SenderMismatch { .. } => "sender_mismatch",
            RpcError::BadBody(_) => "bad_body",
            RpcError::Unreadable(_) => "unreadable_body",
            RpcError::TooLarge { .. } => "body_too_large",
            RpcError::Timeout { .. } => "timeout",
            RpcError::ShuttingDown => "shutting_down",
            RpcError::Partitioned(_) => "partitioned",
        }
    }
}

impl IntoResponse for RpcError {
    fn into_response(self) -> Response {
        tracing::warn!(error = %self, "raft rpc refused");
        let body = ErrorBody {
            code: self.code().into(),
            message: self.to_string(),
            raft: None,
        };
        (self.status(), Json(body)).into_response()
    }
}

/// Turns a Raft failure into 409 (API error) or 503 (Raft stopped), with the
/// openraft error serialised for the sender.
fn raft_failure<E: Serialize + Display + std::fmt::Debug>(e: RaftError<u64, E>) -> Response {
    let (status, code) = match &e {
        RaftError::APIError(_) => (StatusCode::CONFLICT, "raft_refused"),
        RaftError::Fatal(_) => (StatusCode::SERVICE_UNAVAILABLE, "raft_stopped"),
    };
    tracing::warn!(error = %e, "raft rpc failed");
    let raft = match serde_json::to_value(&e) {
        Ok(v) => Some(v),
        Err(ser) => {
            tracing::error!(error = %ser, "cannot serialise a raft error; the sender will see a plain network error");
            None
        }
    };
    (
        status,
        Json(ErrorBody {
            code: code.into(),
            message: e.to_string(),
            raft,
        }),
    )
        .into_response()
}

/// The 500 answer of a handler that panicked, in the same JSON shape as
/// every other failure so the sender's client can still decode it.
fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a raft rpc handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(ErrorBody {
            code: "internal".into(),
            message: "the RPC handler failed unexpectedly; the node's log has the details".into(),
            raft: None,
        }),
    )
        .into_response()
}

#[derive(Clone)]
struct RpcState {
    raft: Raft,
    /// Senders are checked against the effective consortium, so a node
    /// added by governance is heard and a removed one is not.
    consortium: crate::types::ConsortiumView,
    faults: Arc<Faults>,
    /// This node: the target every request must name.
    this: u64,
    /// The nonces accepted per sending node, for the replay window.
    nonces: Arc<Nonces<u64>>,
    /// Bounds how many requests read bodies and run at once.
    slots: Arc<Semaphore>,
    /// The deadline of one request from its first slot wait to its answer.
    timeout: Duration,
    /// Receives snapshot chunks and checks a finished snapshot before
    /// openraft installs it.
    snapshots: Arc<SnapshotReceiver>,
}

/// The deadline of one RPC under `config`: at least [`MIN_RPC_TIMEOUT`],
/// and three times openraft's snapshot install timeout, so a sender always
/// gives up on a slow snapshot chunk before this node abandons it.
pub fn rpc_timeout(config: &openraft::Config) -> Duration {
    MIN_RPC_TIMEOUT.max(Duration::from_millis(
        config.install_snapshot_timeout.saturating_mul(3),
    ))
}

/// The peer-facing Raft router, state applied.
pub fn router(raft: Raft, consortium: impl Into<crate::types::ConsortiumView>) -> Router {
    router_with_faults(raft, consortium, Faults::new(false))
}

/// The peer-facing Raft router, refusing senders cut off by a test-only
/// partition in `faults`. Snapshots are checked against the consortium's
/// value now as the chain's genesis: give a view of a chain with no
/// governance decision yet, or use [`router_with`].
pub fn router_with_faults(
    raft: Raft,
    consortium: impl Into<crate::types::ConsortiumView>,
    faults: Arc<Faults>,
) -> Router {
    let consortium = consortium.into();
    let snapshots = Arc::new(SnapshotReceiver::new(consortium.get(), Default::default()));
    router_with(raft, consortium, faults, snapshots)
}

/// The peer-facing Raft router with the node's snapshot receiver, whose
/// refusals count in the node's metrics.
pub fn router_with(
    raft: Raft,
    consortium: impl Into<crate::types::ConsortiumView>,
    faults: Arc<Faults>,
    snapshots: Arc<SnapshotReceiver>,
) -> Router {
    let timeout = rpc_timeout(raft.config());
    // Raft knows its own id; reading it here keeps the router's signature.
    let this = raft.metrics().borrow().id;
    Router::new()
        .route(PATH_APPEND, post(append))
        .route(PATH_VOTE, post(vote))
        .route(PATH_SNAPSHOT, post(snapshot))
        .layer(CatchPanicLayer::custom(panicked))
        .with_state(RpcState {
            raft,
            consortium: consortium.into(),
            faults,
            this,
            nonces: Arc::new(Nonces::new(NONCE_CAP_PER_SIGNER)),
            slots: Arc::new(Semaphore::new(MAX_CONCURRENT_RPCS)),
            timeout,
            snapshots,
        })
}

/// What a request's headers claim once [`precheck`] accepted them: a
/// genesis node, addressed to this node, a fresh timestamp and an unused
/// nonce. The signature is still unchecked, because it covers the body's
/// digest.
#[derive(Debug, Clone, Copy)]
pub struct Claim {
    node: u64,
    stamp: Stamp,
    sig: Signature,
}

impl Claim {
    /// The node the headers name.
    pub fn node(&self) -> u64 {
        self.node
    }

    /// The target, time and nonce the headers name.
    pub fn stamp(&self) -> &Stamp {
        &self.stamp
    }

    /// Verifies the signature over `path` and the raw `body`, and returns
    /// the now authenticated sender. Records nothing.
    pub fn verify(&self, genesis: &Genesis, path: &str, body: &[u8]) -> Result<u64, RpcError> {
        let (_, decl) = genesis
            .node(self.node)
            .ok_or(RpcError::UnknownNode(self.node))?;
        decl.key
            .verify(
                &signing_tag(genesis.chain_id.as_str()),
                &signing_message(path, &self.stamp, &[], body),
                &self.sig,
            )
            .map_err(|_| RpcError::BadSignature(self.node))?;
        Ok(self.node)
    }

    /// [`Claim::verify`], then records the nonce in `nonces`, refusing the
    /// request if another copy was recorded first.
    pub fn admit(
        &self,
        genesis: &Genesis,
        nonces: &Nonces<u64>,
        path: &str,
        body: &[u8],
        now_ms: u64,
    ) -> Result<u64, RpcError> {
        let sender = self.verify(genesis, path, body)?;
        nonces
            .record(&sender, self.stamp.nonce, self.stamp.expires_ms(), now_ms)
            .map_err(|e| nonce_refusal(sender, e))?;
        Ok(sender)
    }
}

/// The refusal for a nonce the store does not admit from `sender`.
pub fn nonce_refusal(sender: u64, e: NonceError) -> RpcError {
    match e {
        NonceError::Replayed => RpcError::Replayed(sender),
        NonceError::Full { cap } => RpcError::WindowFull { sender, cap },
    }
}

/// Checks everything the headers alone can tell: all five present and
/// well-formed, the sender a genesis node, the target `this` node, the
/// timestamp within [`MAX_CLOCK_SKEW_MS`] of `now_ms`, the nonce not yet
/// used by the sender (and the sender under its cap) in `nonces`. Needs no
/// body byte and records nothing.
pub fn precheck(
    genesis: &Genesis,
    this: u64,
    nonces: &Nonces<u64>,
    headers: &HeaderMap,
    now_ms: u64,
) -> Result<Claim, RpcError> {
    let node: u64 = header(headers, HEADER_NODE)?
        .parse()
        .map_err(|_| RpcError::BadHeader(HEADER_NODE))?;
    let (stamp, sig) = read_stamp(headers)?;
    if genesis.node(node).is_none() {
        return Err(RpcError::UnknownNode(node));
    }
    check_stamp(&stamp, this, now_ms)?;
    nonces
        .check(&node, &stamp.nonce, now_ms)
        .map_err(|e| nonce_refusal(node, e))?;
    Ok(Claim { node, stamp, sig })
}

/// Checks a whole request signed with a node key against genesis, this
/// node's id and the nonces seen, records its nonce and returns the
/// authenticated sender: [`precheck`] then [`Claim::admit`].
pub fn authenticate(
    genesis: &Genesis,
    this: u64,
    nonces: &Nonces<u64>,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    now_ms: u64,
) -> Result<u64, RpcError> {
    precheck(genesis, this, nonces, headers, now_ms)?.admit(genesis, nonces, path, body, now_ms)
}

/// Refuses at once a body whose declared length (hyper takes the size hint
/// from `Content-Length`) is above `limit`, without reading it.
fn refuse_declared_oversize(body: &Body, limit: usize) -> Result<(), RpcError> {
    let declared = axum::body::HttpBody::size_hint(body).lower();
    if declared > limit as u64 {
        return Err(RpcError::TooLarge { limit });
    }
    Ok(())
}

/// Reads a body of at most `limit` bytes, stopping at the first byte past it
/// (a chunked body declares no length up front).
async fn read_limited(body: Body, limit: usize) -> Result<Bytes, RpcError> {
    // Reserve for the declared length only up to a small bound: the
    // declaration is the sender's word, not yet authenticated.
    const RESERVE_MAX: u64 = 1024 * 1024;
    let declared = axum::body::HttpBody::size_hint(&body).lower();
    let mut buf = Vec::with_capacity(declared.min(RESERVE_MAX) as usize);
    let mut frames = body.into_data_stream();
    while let Some(chunk) = frames.next().await {
        let chunk = chunk.map_err(RpcError::Unreadable)?;
        if buf.len() + chunk.len() > limit {
            return Err(RpcError::TooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// Authenticates the read body, decodes it, and checks that the vote names
/// the sender.
fn admit<T: DeserializeOwned>(
    s: &RpcState,
    path: &str,
    claim: &Claim,
    body: &[u8],
    wire: Wire,
    vote_of: impl Fn(&T) -> &Vote<u64>,
) -> Result<T, RpcError> {
    let sender = claim.admit(
        &s.consortium.get(),
        &s.nonces,
        path,
        body,
        crate::clock::now_ms(),
    )?;
    tracing::Span::current().record("from", sender);
    if s.faults.is_blocked(sender) {
        return Err(RpcError::Partitioned(sender));
    }
    let req: T = wire.decode(body).map_err(RpcError::BadBody)?;
    let claimed = vote_of(&req).leader_id.voted_for();
    if claimed != Some(sender) {
        return Err(RpcError::SenderMismatch { sender, claimed });
    }
    Ok(req)
}

/// Runs one RPC through the admission stages described in the module doc,
/// then `call` with the decoded request.
async fn serve<T, F>(
    s: RpcState,
    path: &'static str,
    headers: HeaderMap,
    body: Body,
    vote_of: fn(&T) -> &Vote<u64>,
    call: impl FnOnce(Raft, T, Wire) -> F,
) -> Response
where
    T: DeserializeOwned,
    F: Future<Output = Response>,
{
    // Stages 1 and 2 read no body byte and wait for nothing.
    let claim = match precheck(
        &s.consortium.get(),
        s.this,
        &s.nonces,
        &headers,
        crate::clock::now_ms(),
    )
    .and_then(|c| refuse_declared_oversize(&body, MAX_RPC_BODY).map(|()| c))
    {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let wire = Wire::of(&headers);
    let work = async {
        let _slot = s
            .slots
            .acquire()
            .await
            .map_err(|_closed| RpcError::ShuttingDown)?;
        let body = read_limited(body, MAX_RPC_BODY).await?;
        let req = admit(&s, path, &claim, &body, wire, vote_of)?;
        // The body is decoded; free it before the Raft call.
        drop(body);
        Ok::<_, RpcError>(call(s.raft.clone(), req, wire).await)
    };
    match tokio::time::timeout(s.timeout, work).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => e.into_response(),
        Err(_elapsed) => RpcError::Timeout { after: s.timeout }.into_response(),
    }
}

#[tracing::instrument(skip_all, fields(from))]
async fn append(State(s): State<RpcState>, headers: HeaderMap, body: Body) -> Response {
    serve(
        s,
        PATH_APPEND,
        headers,
        body,
        |r: &AppendEntriesRequest<TypeConfig>| &r.vote,
        |raft, req, wire| async move {
            match raft.append_entries(req).await {
                Ok(resp) => wire.ok(&resp),
                Err(e) => raft_failure(e),
            }
        },
    )
    .await
}

#[tracing::instrument(skip_all, fields(from))]
async fn vote(State(s): State<RpcState>, headers: HeaderMap, body: Body) -> Response {
    serve(
        s,
        PATH_VOTE,
        headers,
        body,
        |r: &VoteRequest<u64>| &r.vote,
        |raft, req, wire| async move {
            match raft.vote(req).await {
                Ok(resp) => wire.ok(&resp),
                Err(e) => raft_failure(e),
            }
        },
    )
    .await
}

#[tracing::instrument(skip_all, fields(from))]
async fn snapshot(State(s): State<RpcState>, headers: HeaderMap, body: Body) -> Response {
    let receiver = s.snapshots.clone();
    let consortium = s.consortium.get();
    serve(
        s,
        PATH_SNAPSHOT,
        headers,
        body,
        |r: &InstallSnapshotRequest<TypeConfig>| &r.vote,
        |raft, req, wire| async move {
            match receiver.receive(&raft, &consortium, req).await {
                Ok(resp) => wire.ok(&resp),
                Err(e) => snapshot_failure(e),
            }
        },
    )
    .await
}

/// The answer to a snapshot chunk that was not taken: openraft's errors as
/// for the other RPCs, 422 `snapshot_refused` for a snapshot that failed its
/// check (the sender retries, then gives up on that copy), 500 when the
/// received file could not be read.
fn snapshot_failure(e: ReceiveError) -> Response {
    let (status, code) = match e {
        ReceiveError::Raft(e) => return raft_failure::<InstallSnapshotError>(e),
        ReceiveError::Fatal(f) => return raft_failure::<InstallSnapshotError>(RaftError::Fatal(f)),
        ReceiveError::Refused { .. } | ReceiveError::AlreadyRefused(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "snapshot_refused")
        }
        ReceiveError::Io(_) | ReceiveError::Join(_) => {
            tracing::error!(error = %e, "a received snapshot could not be checked");
            (StatusCode::INTERNAL_SERVER_ERROR, "snapshot_unreadable")
        }
    };
    (
        status,
        Json(ErrorBody {
            code: code.into(),
            message: e.to_string(),
            raft: None,
        }),
    )
        .into_response()
}
