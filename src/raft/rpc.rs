//! The Raft RPC server: `POST /raft/append`, `/raft/vote` and
//! `/raft/snapshot`, for peers only.
//!
//! Every request carries three headers: `x-rxchain-node` (the sender's node
//! id), `x-rxchain-ts` (its clock, Unix milliseconds) and `x-rxchain-sig`
//! (hex of the sender's node-key signature, tag `raft-rpc/<chain id>`, over
//! `path || 0x00 || ts in decimal || 0x00 || SHA3-256(body)`). The request's
//! Raft vote must also name the sender, so one member node cannot speak
//! for another.
//!
//! A request is admitted in stages, cheapest first, so a stranger costs
//! this node as little as possible:
//!
//! 1. The headers alone ([`precheck`]): present, well-formed, naming a
//!    genesis node, with a timestamp inside [`MAX_CLOCK_SKEW_MS`]. A request
//!    that fails here is refused before a single body byte is read.
//! 2. A `Content-Length` above [`MAX_RPC_BODY`] is refused with 413, unread.
//! 3. At most [`MAX_CONCURRENT_RPCS`] requests read their bodies and run at
//!    once; the others wait (inside their timeout) without reading.
//! 4. The body is read up to [`MAX_RPC_BODY`], then the signature over its
//!    digest is verified ([`Claim::verify`]), and only then is the JSON
//!    decoded and handed to Raft.
//!
//! Stages 3 and 4 and the Raft call together run under one deadline
//! ([`rpc_timeout`]), and a panicking handler answers 500 instead of taking
//! the connection down.
//!
//! Answers: 200 with the Raft response as JSON; 401 or 403 when the request
//! is not authenticated; 400 when the body does not decode or cannot be
//! read; 408 when the deadline passes; 413 when the body is too large; 409
//! for a Raft API error and 503 when Raft has stopped, both with the
//! serialised openraft error in `raft` so the sender can hand it back to
//! openraft. Every failure is JSON `{code, message}`.

use std::fmt::Display;
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
use rxchain_contracts::Genesis;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;

use super::{Faults, Raft, TypeConfig};

/// Header naming the sending node.
pub const HEADER_NODE: &str = "x-rxchain-node";
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
/// How far a request's timestamp may be from this node's clock. It bounds
/// how long a captured request could be replayed; Raft messages are
/// idempotent under their term anyway.
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

/// The signature domain tag of Raft RPCs in a consortium.
pub fn signing_tag(chain_id: &str) -> String {
    format!("raft-rpc/{chain_id}")
}

/// The signed message: `path || 0x00 || ts || 0x00 || SHA3-256(body)`.
pub fn signing_message(path: &str, ts_ms: u64, body: &[u8]) -> Vec<u8> {
    let digest = Hash::of(&[body]);
    [
        path.as_bytes(),
        &[0],
        ts_ms.to_string().as_bytes(),
        &[0],
        digest.as_bytes(),
    ]
    .concat()
}

/// Signs a Raft RPC with a node key.
pub fn sign(chain_id: &str, key: &SecretKey, path: &str, ts_ms: u64, body: &[u8]) -> Signature {
    key.sign(&signing_tag(chain_id), &signing_message(path, ts_ms, body))
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
    /// 400: the body is not the expected JSON.
    #[error("the body does not decode: {0}")]
    BadBody(#[source] serde_json::Error),
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
    fn status(&self) -> StatusCode {
        match self {
            RpcError::MissingHeader(_)
            | RpcError::BadHeader(_)
            | RpcError::Stale { .. }
            | RpcError::BadSignature(_) => StatusCode::UNAUTHORIZED,
            RpcError::UnknownNode(_) | RpcError::SenderMismatch { .. } => StatusCode::FORBIDDEN,
            RpcError::BadBody(_) | RpcError::Unreadable(_) => StatusCode::BAD_REQUEST,
            RpcError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RpcError::Timeout { .. } => StatusCode::REQUEST_TIMEOUT,
            RpcError::ShuttingDown | RpcError::Partitioned(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            RpcError::MissingHeader(_) => "missing_auth",
            RpcError::BadHeader(_) => "malformed_auth",
            RpcError::UnknownNode(_) => "unknown_node",
            RpcError::Stale { .. } => "stale_request",
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
    /// Bounds how many requests read bodies and run at once.
    slots: Arc<Semaphore>,
    /// The deadline of one request from its first slot wait to its answer.
    timeout: Duration,
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
/// partition in `faults`.
pub fn router_with_faults(
    raft: Raft,
    consortium: impl Into<crate::types::ConsortiumView>,
    faults: Arc<Faults>,
) -> Router {
    let timeout = rpc_timeout(raft.config());
    Router::new()
        .route(PATH_APPEND, post(append))
        .route(PATH_VOTE, post(vote))
        .route(PATH_SNAPSHOT, post(snapshot))
        .layer(CatchPanicLayer::custom(panicked))
        .with_state(RpcState {
            raft,
            consortium: consortium.into(),
            faults,
            slots: Arc::new(Semaphore::new(MAX_CONCURRENT_RPCS)),
            timeout,
        })
}

fn header<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, RpcError> {
    headers
        .get(name)
        .ok_or(RpcError::MissingHeader(name))?
        .to_str()
        .map_err(|_| RpcError::BadHeader(name))
}

/// What a request's headers claim once [`precheck`] accepted them: a
/// genesis node and a fresh timestamp. The signature is still unchecked,
/// because it covers the body's digest.
#[derive(Debug, Clone, Copy)]
pub struct Claim {
    node: u64,
    ts_ms: u64,
    sig: Signature,
}

impl Claim {
    /// The node the headers name.
    pub fn node(&self) -> u64 {
        self.node
    }

    /// Verifies the signature over `path` and the raw `body`, and returns
    /// the now authenticated sender.
    pub fn verify(&self, genesis: &Genesis, path: &str, body: &[u8]) -> Result<u64, RpcError> {
        let (_, decl) = genesis
            .node(self.node)
            .ok_or(RpcError::UnknownNode(self.node))?;
        decl.key
            .verify(
                &signing_tag(genesis.chain_id.as_str()),
                &signing_message(path, self.ts_ms, body),
                &self.sig,
            )
            .map_err(|_| RpcError::BadSignature(self.node))?;
        Ok(self.node)
    }
}

/// Checks everything the headers alone can tell: all three present and
/// well-formed, the sender a genesis node, the timestamp within
/// [`MAX_CLOCK_SKEW_MS`] of `now_ms`. Needs no body byte.
pub fn precheck(genesis: &Genesis, headers: &HeaderMap, now_ms: u64) -> Result<Claim, RpcError> {
    let node: u64 = header(headers, HEADER_NODE)?
        .parse()
        .map_err(|_| RpcError::BadHeader(HEADER_NODE))?;
    let ts_ms: u64 = header(headers, HEADER_TS)?
        .parse()
        .map_err(|_| RpcError::BadHeader(HEADER_TS))?;
    let sig_hex = header(headers, HEADER_SIG)?;
    let raw = hex::decode(sig_hex).map_err(|_| RpcError::BadHeader(HEADER_SIG))?;
    let sig_bytes: [u8; 64] = raw
        .try_into()
        .map_err(|_| RpcError::BadHeader(HEADER_SIG))?;
    let sig = Signature::parse(sig_bytes).map_err(|_| RpcError::BadHeader(HEADER_SIG))?;
    if genesis.node(node).is_none() {
        return Err(RpcError::UnknownNode(node));
    }
    let skew_ms = now_ms.abs_diff(ts_ms);
    if skew_ms > MAX_CLOCK_SKEW_MS {
        return Err(RpcError::Stale { skew_ms });
    }
    Ok(Claim { node, ts_ms, sig })
}

/// Checks the three headers against genesis and the raw body, and returns
/// the authenticated sender: [`precheck`] then [`Claim::verify`].
pub fn authenticate(
    genesis: &Genesis,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    now_ms: u64,
) -> Result<u64, RpcError> {
    precheck(genesis, headers, now_ms)?.verify(genesis, path, body)
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
    vote_of: impl Fn(&T) -> &Vote<u64>,
) -> Result<T, RpcError> {
    let sender = claim.verify(&s.consortium.get(), path, body)?;
    tracing::Span::current().record("from", sender);
    if s.faults.is_blocked(sender) {
        return Err(RpcError::Partitioned(sender));
    }
    let req: T = serde_json::from_slice(body).map_err(RpcError::BadBody)?;
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
    call: impl FnOnce(Raft, T) -> F,
) -> Response
where
    T: DeserializeOwned,
    F: Future<Output = Response>,
{
    // Stages 1 and 2 read no body byte and wait for nothing.
    let claim = match precheck(&s.consortium.get(), &headers, crate::clock::now_ms())
        .and_then(|c| refuse_declared_oversize(&body, MAX_RPC_BODY).map(|()| c))
    {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let work = async {
        let _slot = s
            .slots
            .acquire()
            .await
            .map_err(|_closed| RpcError::ShuttingDown)?;
        let body = read_limited(body, MAX_RPC_BODY).await?;
        let req = admit(&s, path, &claim, &body, vote_of)?;
        // The body is decoded; free it before the Raft call.
        drop(body);
        Ok::<_, RpcError>(call(s.raft.clone(), req).await)
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
        |raft, req| async move {
            match raft.append_entries(req).await {
                Ok(resp) => Json(resp).into_response(),
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
        |raft, req| async move {
            match raft.vote(req).await {
                Ok(resp) => Json(resp).into_response(),
                Err(e) => raft_failure(e),
            }
        },
    )
    .await
}

#[tracing::instrument(skip_all, fields(from))]
async fn snapshot(State(s): State<RpcState>, headers: HeaderMap, body: Body) -> Response {
    serve(
        s,
        PATH_SNAPSHOT,
        headers,
        body,
        |r: &InstallSnapshotRequest<TypeConfig>| &r.vote,
        |raft, req| async move {
            match raft.install_snapshot(req).await {
                Ok(resp) => Json(resp).into_response(),
                Err(e) => raft_failure::<InstallSnapshotError>(e),
            }
        },
    )
    .await
}
