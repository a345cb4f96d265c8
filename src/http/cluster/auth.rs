//! Authenticating cluster admin requests.
//!
//! Admin requests are signed like Raft RPCs ([`crate::raft::rpc`], wire
//! format version 2): `x-rxchain-to` (the node the request is sent to),
//! `x-rxchain-ts`, `x-rxchain-nonce` and `x-rxchain-sig` over path, target,
//! time, nonce and body, with either `x-rxchain-node` (a genesis node key; a
//! node may only ask for itself) or `x-rxchain-org` (an organisation's
//! genesis admin key, the operator). The receiving node refuses a request
//! addressed to another node (403 `wrong_target`), and remembers every
//! accepted nonce per signer until the request's time is stale (401
//! `replayed_request` for a second copy, 429 `replay_window_full` for a
//! signer over [`rpc::NONCE_CAP_PER_SIGNER`]).
//!
//! A follower cannot pass an operator's request on unchanged: it is
//! addressed to the follower, so the leader would refuse it. The follower
//! verifies it, records its nonce, then signs a new request to the leader
//! with its own node key ([`forwarded_headers`]), carrying the original
//! signer's authentication in four headers: `x-rxchain-origin` (`org:<id>`
//! or `node:<id>`), `x-rxchain-origin-ts`, `x-rxchain-origin-nonce` and
//! `x-rxchain-origin-sig`. The follower's signature covers them (the
//! message's `origin` field is `who SP to SP ts SP nonce SP sig`, with `to`
//! the follower's id). The leader checks both signatures, the original one
//! with the follower as its target, and records both nonces, so:
//!
//! - the operator's captured request replayed to the follower is a replay;
//! - sent to the leader (or any other node) it names the wrong target;
//! - the forwarded request replayed to the leader is a replay, and to any
//!   other node names the wrong target;
//! - even the forwarding node cannot replay the operator's request through
//!   itself, since the leader remembers the original nonce too.
//!
//! A forwarded request is never forwarded again: if leadership moved
//! meanwhile, the answer is 503 and the operator retries.

use axum::http::HeaderMap;
use rxchain_contracts::{Genesis, PublicKey, SecretKey, Signature};

use crate::http::ApiError;
use crate::raft::nonces::{NonceError, Nonces};
pub use crate::raft::rpc::Signer;
use crate::raft::rpc::{self, RpcError, Stamp, HEADER_NODE, HEADER_SIG};

/// Header naming the operator's organisation when an org admin key signs.
pub const HEADER_ORG: &str = "x-rxchain-org";
/// In a forwarded request: who signed the original (`org:<id>` or `node:<id>`).
pub const HEADER_ORIGIN: &str = "x-rxchain-origin";
/// In a forwarded request: the original's `x-rxchain-ts`.
pub const HEADER_ORIGIN_TS: &str = "x-rxchain-origin-ts";
/// In a forwarded request: the original's `x-rxchain-nonce`.
pub const HEADER_ORIGIN_NONCE: &str = "x-rxchain-origin-nonce";
/// In a forwarded request: the original's `x-rxchain-sig`.
pub const HEADER_ORIGIN_SIG: &str = "x-rxchain-origin-sig";

/// Finds which identity `key` is in `genesis`: an org admin key or a node key.
pub fn signer_for(genesis: &Genesis, key: &SecretKey) -> Option<Signer> {
    let public = key.public();
    for org in &genesis.orgs {
        if org.admin_key == public {
            return Some(Signer::Operator(org.id.clone()));
        }
        if let Some(n) = org.nodes.iter().find(|n| n.key == public) {
            return Some(Signer::Node(n.id));
        }
    }
    None
}

/// The headers that authenticate an admin request to `path` with `body`,
/// signed by `signer` with `key` for the node `to` it is sent to, with a
/// fresh nonce.
pub fn admin_headers(
    chain_id: &str,
    key: &SecretKey,
    signer: &Signer,
    to: u64,
    path: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let stamp = Stamp::fresh(to);
    let sig = rpc::sign(chain_id, key, path, &stamp, body);
    let who = match signer {
        Signer::Node(id) => (HEADER_NODE, id.to_string()),
        Signer::Operator(org) => (HEADER_ORG, org.to_string()),
    };
    let mut headers = vec![who];
    headers.extend(stamp.headers());
    headers.push((HEADER_SIG, sig.to_hex()));
    headers
}

/// One signer's authentication of a request as it reached a node: who,
/// the stamp and the signature.
#[derive(Clone, Debug)]
pub struct Origin {
    signer: Signer,
    stamp: Stamp,
    sig: Signature,
}

impl Origin {
    /// The `origin` field of the forwarder's signed message:
    /// `who SP to SP ts SP nonce SP sig`.
    fn field(&self) -> Vec<u8> {
        format!(
            "{} {} {} {} {}",
            self.signer,
            self.stamp.to,
            self.stamp.ts_ms,
            self.stamp.nonce.to_hex(),
            self.sig.to_hex()
        )
        .into_bytes()
    }

    /// Reads the origin headers of a request forwarded by node `forwarder`
    /// (the original was addressed to it); `None` if there are none.
    fn read(headers: &HeaderMap, forwarder: u64) -> Result<Option<Origin>, ApiError> {
        let Some(who) = headers.get(HEADER_ORIGIN) else {
            return Ok(None);
        };
        let malformed = |name: &str| {
            unauthorized(
                "malformed_auth",
                format!("the {name} header is missing or malformed"),
            )
        };
        let text = |name: &'static str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| malformed(name))
        };
        let signer: Signer = who
            .to_str()
            .ok()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| malformed(HEADER_ORIGIN))?;
        let ts_ms = text(HEADER_ORIGIN_TS)?
            .parse()
            .map_err(|_| malformed(HEADER_ORIGIN_TS))?;
        let nonce = rpc::Nonce::parse_hex(text(HEADER_ORIGIN_NONCE)?)
            .map_err(|_| malformed(HEADER_ORIGIN_NONCE))?;
        let sig = rpc::parse_signature(text(HEADER_ORIGIN_SIG)?)
            .ok_or_else(|| malformed(HEADER_ORIGIN_SIG))?;
        Ok(Some(Origin {
            signer,
            stamp: Stamp {
                to: forwarder,
                ts_ms,
                nonce,
            },
            sig,
        }))
    }
}

/// An authenticated admin request.
#[derive(Clone, Debug)]
pub struct Admitted {
    /// Who the request acts for: the operator or node that signed the
    /// original, also when a node forwarded it.
    pub signer: Signer,
    /// The node that forwarded it to this one, if any.
    pub forwarded_by: Option<u64>,
    /// The original signer's authentication, as this node received it.
    origin: Origin,
}

/// The headers with which node `this` (key `key`) forwards the admitted
/// request `admitted` to `path` with `body` to the node `to` (the leader):
/// its own signature naming `to`, over the original signer's
/// authentication, which travels in the `x-rxchain-origin*` headers.
pub fn forwarded_headers(
    chain_id: &str,
    key: &SecretKey,
    this: u64,
    to: u64,
    admitted: &Admitted,
    path: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let origin = &admitted.origin;
    let stamp = Stamp::fresh(to);
    let sig = rpc::sign_with_origin(chain_id, key, path, &stamp, &origin.field(), body);
    let mut headers = vec![(HEADER_NODE, this.to_string())];
    headers.extend(stamp.headers());
    headers.push((HEADER_SIG, sig.to_hex()));
    headers.extend([
        (HEADER_ORIGIN, origin.signer.to_string()),
        (HEADER_ORIGIN_TS, origin.stamp.ts_ms.to_string()),
        (HEADER_ORIGIN_NONCE, origin.stamp.nonce.to_hex()),
        (HEADER_ORIGIN_SIG, origin.sig.to_hex()),
    ]);
    headers
}

fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::unauthorized(code, message)
}

fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::forbidden(code, message)
}

/// The API answer for a refusal of the shared signing scheme.
fn refusal(e: RpcError) -> ApiError {
    match e {
        RpcError::MissingHeader(h) => unauthorized(
            "missing_auth",
            format!("the {h} header is missing; sign admin requests with a node key or an org admin key (rxchain cluster does this)"),
        ),
        e @ (RpcError::UnknownNode(_) | RpcError::WrongTarget { .. }) => {
            forbidden(e.code(), e.to_string())
        }
        e @ RpcError::WindowFull { .. } => ApiError::RateLimited {
            code: e.code(),
            message: e.to_string(),
            retry_after_secs: 1,
        },
        e @ (RpcError::Stale { .. } | RpcError::BadSignature(_) | RpcError::Replayed(_)) => {
            unauthorized(e.code(), e.to_string())
        }
        e => unauthorized("malformed_auth", e.to_string()),
    }
}

fn nonce_refusal(signer: &Signer, e: NonceError) -> ApiError {
    match e {
        NonceError::Replayed => unauthorized(
            "replayed_request",
            format!("{signer} already sent this request (its nonce was used); a signed request is accepted once"),
        ),
        NonceError::Full { cap } => ApiError::RateLimited {
            code: "replay_window_full",
            message: format!(
                "{signer} has {cap} requests in the replay window already; retry shortly"
            ),
            retry_after_secs: 1,
        },
    }
}

/// The genesis key of `signer`, or the refusal of a stranger.
fn key_of(genesis: &Genesis, signer: &Signer) -> Result<PublicKey, ApiError> {
    match signer {
        Signer::Node(id) => genesis
            .node(*id)
            .map(|(_, decl)| decl.key)
            .ok_or_else(|| refusal(RpcError::UnknownNode(*id))),
        Signer::Operator(org) => genesis
            .org(org)
            .map(|decl| decl.admin_key)
            .ok_or_else(|| forbidden("unknown_org", format!("{org} is not a consortium member"))),
    }
}

/// Checks everything about one signer's authentication but the signature:
/// a genesis identity, addressed to `to`, fresh, nonce unused.
fn precheck(
    genesis: &Genesis,
    nonces: &Nonces<Signer>,
    origin: &Origin,
    to: u64,
    now_ms: u64,
) -> Result<PublicKey, ApiError> {
    let key = key_of(genesis, &origin.signer)?;
    rpc::check_stamp(&origin.stamp, to, now_ms).map_err(refusal)?;
    nonces
        .check(&origin.signer, &origin.stamp.nonce, now_ms)
        .map_err(|e| nonce_refusal(&origin.signer, e))?;
    Ok(key)
}

fn verify(
    genesis: &Genesis,
    key: &PublicKey,
    origin: &Origin,
    field: &[u8],
    path: &str,
    body: &[u8],
) -> Result<(), ApiError> {
    key.verify(
        &rpc::signing_tag(genesis.chain_id.as_str()),
        &rpc::signing_message(path, &origin.stamp, field, body),
        &origin.sig,
    )
    .map_err(|_| {
        unauthorized(
            "bad_signature",
            format!(
                "the signature does not verify under the genesis key of {}",
                origin.signer
            ),
        )
    })
}

/// Checks an admin request received by node `this` against genesis and the
/// nonces it accepted before, records its nonce (and, for a forwarded
/// request, the original's), and says who it acts for.
pub fn authenticate(
    genesis: &Genesis,
    this: u64,
    nonces: &Nonces<Signer>,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Admitted, ApiError> {
    let now_ms = crate::clock::now_ms();
    let signer = if let Some(org) = headers.get(HEADER_ORG) {
        let org = org
            .to_str()
            .ok()
            .and_then(|o| rxchain_contracts::OrgId::parse(o).ok())
            .ok_or_else(|| {
                unauthorized("malformed_auth", "the x-rxchain-org header is malformed")
            })?;
        Signer::Operator(org)
    } else {
        let id = headers
            .get(HEADER_NODE)
            .ok_or_else(|| refusal(RpcError::MissingHeader(HEADER_NODE)))?
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| refusal(RpcError::BadHeader(HEADER_NODE)))?;
        Signer::Node(id)
    };
    let (stamp, sig) = rpc::read_stamp(headers).map_err(refusal)?;
    let outer = Origin { signer, stamp, sig };
    let key = precheck(genesis, nonces, &outer, this, now_ms)?;
    let Some(original) = forwarded_origin(headers, &outer)? else {
        verify(genesis, &key, &outer, &[], path, body)?;
        record(nonces, &outer, now_ms)?;
        return Ok(Admitted {
            signer: outer.signer.clone(),
            forwarded_by: None,
            origin: outer,
        });
    };
    // A forwarded request: the forwarder's signature covers the original's
    // authentication, which was addressed to the forwarder.
    let original_key = precheck(genesis, nonces, &original, original.stamp.to, now_ms)?;
    verify(genesis, &key, &outer, &original.field(), path, body)?;
    verify(genesis, &original_key, &original, &[], path, body)?;
    record(nonces, &outer, now_ms)?;
    record(nonces, &original, now_ms)?;
    Ok(Admitted {
        signer: original.signer.clone(),
        forwarded_by: Some(original.stamp.to),
        origin: original,
    })
}

/// The original's authentication in a forwarded request; only a node may
/// forward.
fn forwarded_origin(headers: &HeaderMap, outer: &Origin) -> Result<Option<Origin>, ApiError> {
    if !headers.contains_key(HEADER_ORIGIN) {
        return Ok(None);
    }
    let Signer::Node(forwarder) = outer.signer else {
        return Err(forbidden(
            "not_a_node",
            "only a node forwards requests for others; an operator signs its own",
        ));
    };
    Origin::read(headers, forwarder)
}

fn record(nonces: &Nonces<Signer>, origin: &Origin, now_ms: u64) -> Result<(), ApiError> {
    nonces
        .record(
            &origin.signer,
            origin.stamp.nonce,
            origin.stamp.expires_ms(),
            now_ms,
        )
        .map_err(|e| nonce_refusal(&origin.signer, e))
}

/// A node key may only add, promote or remove its own node.
pub(super) fn may_act_on(signer: &Signer, id: u64) -> Result<(), ApiError> {
    match signer {
        Signer::Node(n) if *n != id => Err(forbidden(
            "not_your_node",
            format!("node {n}'s key may only change its own membership, not node {id}'s; use an org admin key"),
        )),
        _ => Ok(()),
    }
}
