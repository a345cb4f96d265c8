//! Submitting a signed transaction: the one path every writer takes.
//!
//! `POST /v1/tx`, the staff and patient endpoints (which sign on the
//! server) and the in-process demo all call [`submit`]. It answers a
//! transaction already on the chain with its receipt, forwards to the
//! leader when this node does not lead, and otherwise verifies the
//! signature once, admits the transaction to the mempool and waits for the
//! block that holds it to commit (not merely to be acknowledged).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use rxchain_contracts::lifecycle::{self, Inadmissible};
use rxchain_contracts::state::CorruptState;
use rxchain_contracts::{Outcome, PublicKey, Rejection, SignedTx, TxError, TxId, VerifiedTx};

use super::leader::{self, PeerError, PeerRequest, Relayed};
use super::Node;
use crate::limiter::{retry_after_secs, SlidingWindow};
use crate::mempool::{AdmitError, Receipt};
use crate::raft::peers::FORWARDED_BY;
use crate::store::StoreError;

/// What became of a submission.
#[derive(Debug)]
pub enum Submitted {
    /// The transaction is in a committed block: applied, or refused by a
    /// chain rule (the refusal is on the chain too, so this is not an error
    /// of the submission).
    Committed(Receipt),
    /// Admitted but not committed within the commit wait; a retry or a
    /// poll of [`poll_url`] finds the receipt.
    Pending(TxId),
    /// Another node leads and answered something other than a receipt or a
    /// pending note (a malformed or badly signed transaction, say): relayed
    /// unchanged, so the client sees the leader's own answer.
    Relayed(Relayed),
}

/// Why nothing is known to be committed.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The transaction is malformed or its signature does not verify.
    #[error(transparent)]
    Invalid(#[from] TxError),
    /// The mempool refused it (full).
    #[error("the transaction was not admitted: {0}")]
    NotAdmitted(#[from] AdmitError),
    /// No leader is reachable.
    #[error("no Raft leader is reachable; the transaction was not committed, retry")]
    NoLeader(#[source] Option<PeerError>),
    /// This node lost leadership while the transaction waited. The new
    /// leader may still commit the block this node proposed, so this cannot
    /// promise "not committed"; a retry is idempotent.
    #[error("the node lost leadership before the transaction's commit was confirmed; retry (a retry is idempotent and returns the receipt if it did commit)")]
    LostLeadership,
    /// The signer may not sign this kind of transaction (a stranger's key,
    /// a revoked key, the wrong role): refused before ordering, so nothing
    /// reaches the chain.
    #[error("not admitted: {0}")]
    Inadmissible(Rejection),
    /// The state needed to decide admission does not decode.
    #[error(transparent)]
    CorruptState(#[from] CorruptState),
    /// The leader's answer could not be understood.
    #[error("the leader's answer could not be read")]
    BadLeaderAnswer(#[source] serde_json::Error),
    /// The signer or client address had too many refused transactions
    /// lately; nothing was admitted.
    #[error("too many refused transactions from this {what}")]
    Throttled {
        /// `signer` or `client address`.
        what: &'static str,
        /// Seconds until another attempt is counted.
        retry_after_secs: u64,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a submission came from, for throttling refused attempts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Origin {
    /// The client's address, when the request came over the network from
    /// a client (not from a peer forwarding it, nor from in-process code).
    pub client: Option<IpAddr>,
}

/// Refused transactions allowed per signer inside [`REFUSAL_WINDOW`], by
/// default (`api.refusals_per_signer`).
pub const MAX_REFUSALS_PER_SIGNER: usize = crate::config::DEFAULT_REFUSALS_PER_SIGNER;
/// Refused transactions allowed per client address inside
/// [`REFUSAL_WINDOW`], by default (`api.refusals_per_address`).
pub const MAX_REFUSALS_PER_ADDRESS: usize = crate::config::DEFAULT_REFUSALS_PER_ADDRESS;
/// The sliding window over which refusals are counted.
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(60);

/// Counts refused transactions per signer and per client address, so that
/// nobody can fill blocks with refusals (each one is kept on the chain for
/// audit) or probe the node without limit.
pub struct Throttle {
    signers: SlidingWindow<PublicKey>,
    addresses: SlidingWindow<IpAddr>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(MAX_REFUSALS_PER_SIGNER, MAX_REFUSALS_PER_ADDRESS)
    }
}

impl Throttle {
    /// At most `per_signer` refusals per signer and `per_address` per
    /// client address inside [`REFUSAL_WINDOW`].
    pub fn new(per_signer: usize, per_address: usize) -> Self {
        Throttle {
            signers: SlidingWindow::new(per_signer, REFUSAL_WINDOW),
            addresses: SlidingWindow::new(per_address, REFUSAL_WINDOW),
        }
    }

    fn check(&self, signer: &PublicKey, origin: Origin) -> Result<(), SubmitError> {
        let throttled = |what, wait| SubmitError::Throttled {
            what,
            retry_after_secs: retry_after_secs(wait),
        };
        self.signers
            .check(signer)
            .map_err(|w| throttled("signer", w))?;
        if let Some(ip) = origin.client {
            self.addresses
                .check(&ip)
                .map_err(|w| throttled("client address", w))?;
        }
        Ok(())
    }

    fn record(&self, signer: PublicKey, origin: Origin) {
        self.signers.record(signer);
        if let Some(ip) = origin.client {
            self.addresses.record(ip);
        }
    }
}

/// Where a pending transaction's receipt can be polled.
pub fn poll_url(id: &TxId) -> String {
    format!("/v1/tx/{id}")
}

/// The receipt of a committed transaction, read back from the chain.
pub fn committed_receipt(node: &Node, id: &TxId) -> Result<Option<Receipt>, StoreError> {
    Ok(committed(node, id)?.map(|(r, _)| r))
}

/// A committed transaction's receipt and the signed transaction as stored.
fn committed(node: &Node, id: &TxId) -> Result<Option<(Receipt, SignedTx)>, StoreError> {
    let Some((height, index)) = node.chain.tx_location(id)? else {
        return Ok(None);
    };
    let block = node
        .chain
        .block(height)?
        .ok_or_else(|| StoreError::Corrupt {
            what: format!("tx index entry {id}"),
            detail: format!("points at missing block {height}"),
        })?;
    let past_end = || StoreError::Corrupt {
        what: format!("tx index entry {id}"),
        detail: format!("points past the end of block {height}"),
    };
    let outcome = block
        .outcomes
        .get(index as usize)
        .cloned()
        .ok_or_else(past_end)?;
    let stored = block
        .txs
        .get(index as usize)
        .cloned()
        .ok_or_else(past_end)?;
    Ok(Some((
        Receipt {
            tx_id: *id,
            height,
            index,
            block_hash: block.hash(node.genesis.chain_id.as_str()),
            outcome,
        },
        stored,
    )))
}

/// Admission control: only a signer the committed state knows for the
/// transaction's kind may put it in the mempool (the contracts' rule,
/// [`lifecycle::admissible`]). A stranger's transaction is answered with the
/// precise refusal and never reaches a block, so it cannot write to the
/// permanent chain, fill a prescription's history or raise an alert.
fn admit_signer(node: &Node, vtx: &VerifiedTx) -> Result<(), SubmitError> {
    let view = node.chain.state();
    let verdict = lifecycle::admissible(&node.genesis, &view, vtx, crate::clock::now());
    view.check()?;
    match verdict {
        Ok(()) => Ok(()),
        Err(Inadmissible::Refused(r)) => Err(SubmitError::Inadmissible(r)),
        Err(Inadmissible::Corrupt(e)) => Err(SubmitError::CorruptState(e)),
    }
}

/// A transaction whose id is known but whose signature bytes differ from
/// the known copy is checked on its own: the id covers the body, not the
/// signature, so a corrupted signature must not pass as a replay.
fn same_or_valid(node: &Node, known: &SignedTx, submitted: &SignedTx) -> Result<(), SubmitError> {
    if known.signature != submitted.signature {
        submitted.clone().verify(node.mempool.chain_id())?;
    }
    Ok(())
}

/// Submits a signed transaction and waits for its commit. A replay gets
/// the original outcome, never a second effect.
#[tracing::instrument(skip_all, fields(tx_id))]
pub async fn submit(node: &Node, signed: SignedTx) -> Result<Submitted, SubmitError> {
    submit_from(node, signed, Origin::default()).await
}

/// [`submit`], counting refusals against the signer and `origin`'s
/// client address: past [`MAX_REFUSALS_PER_SIGNER`] or
/// [`MAX_REFUSALS_PER_ADDRESS`] refusals inside [`REFUSAL_WINDOW`],
/// further submissions are turned away before admission.
pub async fn submit_from(
    node: &Node,
    signed: SignedTx,
    origin: Origin,
) -> Result<Submitted, SubmitError> {
    let signer = signed.tx.signer;
    let result = submit_inner(node, signed, origin).await;
    let refused = match &result {
        Ok(Submitted::Committed(r)) => matches!(r.outcome, Outcome::Refused { .. }),
        Err(SubmitError::Invalid(_) | SubmitError::Inadmissible(_)) => true,
        _ => false,
    };
    // Refusals in blocks are counted where the block commits (the
    // producer); these are the ones turned away before ordering.
    if let Some(code) = unordered_refusal_code(&result) {
        node.metrics.refused(code);
    }
    if refused {
        node.throttle.record(signer, origin);
    }
    result
}

/// The code of a submission turned away before it reached a block.
fn unordered_refusal_code(result: &Result<Submitted, SubmitError>) -> Option<&'static str> {
    match result {
        Err(SubmitError::Invalid(TxError::BadSignature)) => Some("bad_signature"),
        Err(SubmitError::Invalid(TxError::Invalid(_))) => Some("invalid_transaction"),
        Err(SubmitError::Inadmissible(r)) => Some(r.code()),
        Err(SubmitError::Throttled { .. }) => Some("too_many_refusals"),
        Err(SubmitError::NotAdmitted(_)) => Some("mempool_full"),
        _ => None,
    }
}

async fn submit_inner(
    node: &Node,
    signed: SignedTx,
    origin: Origin,
) -> Result<Submitted, SubmitError> {
    let started = Instant::now();
    let id = signed.tx.id(node.genesis.chain_id.as_str());
    tracing::Span::current().record("tx_id", tracing::field::display(&id));
    if let Some((r, known)) = committed(node, &id)? {
        same_or_valid(node, &known, &signed)?;
        return Ok(Submitted::Committed(r));
    }
    node.throttle.check(&signed.tx.signer, origin)?;
    if !leader::is_leader(&node.raft, node.node_id) {
        return forward(node, &signed).await;
    }
    let waiter = match node.mempool.subscribe_same(&signed) {
        Some(w) => w?,
        None => {
            // Signature checks are ~0.1 ms of CPU; done inline, once per
            // transaction, since the mempool then remembers the verified form.
            let vtx = node.mempool.verify(signed)?;
            admit_signer(node, &vtx)?;
            let w = node.mempool.admit(vtx)?;
            // It may have been committed between the first check and admission.
            if let Some(r) = committed_receipt(node, &id)? {
                node.mempool.remove(&id);
                return Ok(Submitted::Committed(r));
            }
            w
        }
    };
    match tokio::time::timeout(Duration::from_millis(node.api.commit_wait_ms), waiter).await {
        Ok(Ok(receipt)) => {
            node.metrics
                .commit_latency
                .observe(started.elapsed().as_secs_f64());
            Ok(Submitted::Committed(receipt))
        }
        Ok(Err(_closed)) => Err(SubmitError::LostLeadership),
        Err(_elapsed) => Ok(Submitted::Pending(id)),
    }
}

/// What a leader's refusal body holds that matters here.
#[derive(serde::Deserialize)]
struct RefusalBody {
    receipt: Option<Receipt>,
}

/// Sends the submission to the leader and reads its answer back into a
/// [`Submitted`].
async fn forward(node: &Node, signed: &SignedTx) -> Result<Submitted, SubmitError> {
    let (leader, addr) = leader::remote_leader(&node.raft, node.node_id, &node.faults)
        .ok_or(SubmitError::NoLeader(None))?;
    let body = serde_json::to_vec(signed).map_err(SubmitError::BadLeaderAnswer)?;
    let answer = node
        .peers
        .call(
            leader,
            &addr,
            PeerRequest {
                method: reqwest::Method::POST,
                path: "/v1/tx",
                headers: &[
                    ("content-type", "application/json".into()),
                    (FORWARDED_BY, node.node_id.to_string()),
                ],
                body: body.into(),
                timeout: Duration::from_millis(node.api.commit_wait_ms + 2_000),
            },
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = ?e, leader, "forwarding to the leader failed");
            SubmitError::NoLeader(Some(e))
        })?;
    match answer.status {
        200 => Ok(Submitted::Committed(
            serde_json::from_slice(&answer.body).map_err(SubmitError::BadLeaderAnswer)?,
        )),
        202 => Ok(Submitted::Pending(
            signed.tx.id(node.genesis.chain_id.as_str()),
        )),
        400..=499 => match serde_json::from_slice::<RefusalBody>(&answer.body) {
            // A refusal by a chain rule carries its receipt.
            Ok(RefusalBody { receipt: Some(r) }) => Ok(Submitted::Committed(r)),
            _ => Ok(Submitted::Relayed(answer)),
        },
        _ => Ok(Submitted::Relayed(answer)),
    }
}
