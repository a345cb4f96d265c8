//! Authenticating cluster admin requests.
//!
//! Changes are signed like Raft RPCs ([`crate::raft::rpc`]): the same
//! `x-rxchain-ts` and `x-rxchain-sig` headers over path, time and body, with
//! either `x-rxchain-node` (a genesis node key; a node may only ask for
//! itself) or `x-rxchain-org` (an organisation's genesis admin key, the
//! operator).

use axum::http::HeaderMap;
use rxchain_contracts::{Genesis, OrgId, SecretKey, Signature};

use crate::http::ApiError;
use crate::raft::rpc::{self, HEADER_NODE, HEADER_SIG, HEADER_TS};

/// Header naming the operator's organisation when an org admin key signs.
pub const HEADER_ORG: &str = "x-rxchain-org";

/// Who signed an admin request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signer {
    /// A genesis node, with its node key; it may only act on itself.
    Node(u64),
    /// An organisation's admin (an operator), with the org admin key.
    Operator(OrgId),
}

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

/// The headers that authenticate an admin request to `path` with `body`.
pub fn admin_headers(
    chain_id: &str,
    key: &SecretKey,
    signer: &Signer,
    path: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let ts = crate::clock::now_ms();
    let sig = rpc::sign(chain_id, key, path, ts, body);
    let who = match signer {
        Signer::Node(id) => (HEADER_NODE, id.to_string()),
        Signer::Operator(org) => (HEADER_ORG, org.to_string()),
    };
    vec![who, (HEADER_TS, ts.to_string()), (HEADER_SIG, sig.to_hex())]
}

fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::unauthorized(code, message)
}

fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::forbidden(code, message)
}

/// Checks an admin request's signature against genesis.
pub fn authenticate(
    genesis: &Genesis,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Signer, ApiError> {
    let Some(org) = headers.get(HEADER_ORG) else {
        // A node key: exactly the Raft RPC scheme.
        return match rpc::authenticate(genesis, path, headers, body, crate::clock::now_ms()) {
            Ok(id) => Ok(Signer::Node(id)),
            Err(rpc::RpcError::MissingHeader(h)) => Err(unauthorized(
                "missing_auth",
                format!("the {h} header is missing; sign admin requests with a node key or an org admin key (rxchain cluster does this)"),
            )),
            Err(e @ rpc::RpcError::UnknownNode(_)) => Err(forbidden("unknown_node", e.to_string())),
            Err(e @ rpc::RpcError::Stale { .. }) => Err(unauthorized("stale_request", e.to_string())),
            Err(e @ rpc::RpcError::BadSignature(_)) => Err(unauthorized("bad_signature", e.to_string())),
            Err(e) => Err(unauthorized("malformed_auth", e.to_string())),
        };
    };
    let org = org
        .to_str()
        .ok()
        .and_then(|o| OrgId::parse(o).ok())
        .ok_or_else(|| unauthorized("malformed_auth", "the x-rxchain-org header is malformed"))?;
    let decl = genesis
        .org(&org)
        .ok_or_else(|| forbidden("unknown_org", format!("{org} is not a consortium member")))?;
    let header = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                unauthorized(
                    "missing_auth",
                    format!("the {name} header is missing or malformed"),
                )
            })
    };
    let ts: u64 = header(HEADER_TS)?
        .parse()
        .map_err(|_| unauthorized("malformed_auth", "the x-rxchain-ts header is malformed"))?;
    let raw = hex::decode(header(HEADER_SIG)?)
        .map_err(|_| unauthorized("malformed_auth", "the x-rxchain-sig header is not hex"))?;
    let bytes: [u8; 64] = raw
        .try_into()
        .map_err(|_| unauthorized("malformed_auth", "the x-rxchain-sig header is not 64 bytes"))?;
    let sig = Signature::parse(bytes).map_err(|_| {
        unauthorized(
            "malformed_auth",
            "the x-rxchain-sig header is not a signature",
        )
    })?;
    let skew_ms = crate::clock::now_ms().abs_diff(ts);
    if skew_ms > rpc::MAX_CLOCK_SKEW_MS {
        return Err(unauthorized(
            "stale_request",
            format!("the request time is {skew_ms} ms away from this node's clock"),
        ));
    }
    decl.admin_key
        .verify(
            &rpc::signing_tag(genesis.chain_id.as_str()),
            &rpc::signing_message(path, ts, body),
            &sig,
        )
        .map_err(|_| {
            unauthorized(
                "bad_signature",
                format!("the signature does not verify under {org}'s genesis admin key"),
            )
        })?;
    Ok(Signer::Operator(org))
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
