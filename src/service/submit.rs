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
use serde::{Deserialize, Serialize};

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
    submit_checked(node, signed, None, origin).await
}

/// [`submit_from`] with the signature already checked (`verified`, the
/// same transaction), or not (`None`).
async fn submit_checked(
    node: &Node,
    signed: SignedTx,
    verified: Option<VerifiedTx>,
    origin: Origin,
) -> Result<Submitted, SubmitError> {
    let signer = signed.tx.signer;
    let result = submit_inner(node, signed, verified, origin).await;
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
    verified: Option<VerifiedTx>,
    origin: Origin,
) -> Result<Submitted, SubmitError> {
    let started = Instant::now();
    let wait = Duration::from_millis(node.api.commit_wait_ms);
    let deadline = started + wait;
    let id = signed.tx.id(node.genesis.chain_id.as_str());
    tracing::Span::current().record("tx_id", tracing::field::display(&id));
    if let Some((r, known)) = committed(node, &id)? {
        same_or_valid(node, &known, &signed)?;
        return Ok(Submitted::Committed(r));
    }
    node.throttle.check(&signed.tx.signer, origin)?;
    // Set once this node lost leadership while the transaction waited: its
    // block may still commit under the next leader, so the submission
    // follows the transaction there instead of failing.
    let mut deposed = false;
    // Verified once, even if this node is leader again after losing it.
    let mut verified = verified;
    loop {
        if !leader::is_leader(&node.raft, node.node_id) {
            let left = deadline.saturating_duration_since(Instant::now());
            match forward(node, &signed, left + Duration::from_secs(2)).await {
                Err(SubmitError::NoLeader(_)) if deposed && !left.is_zero() => {
                    // An election is under way; the transaction may commit
                    // in the block this node proposed.
                    if let Some(r) = committed_receipt(node, &id)? {
                        return Ok(Submitted::Committed(r));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(SubmitError::NoLeader(_)) if deposed => {
                    return Err(SubmitError::LostLeadership)
                }
                other => return other,
            }
        }
        let waiter = match node.mempool.subscribe_same(&signed) {
            Some(w) => w?,
            None => {
                // Signature checks are ~0.1 ms of CPU; done inline, once per
                // transaction, since the mempool then remembers the verified form.
                let vtx = match verified.take() {
                    Some(v) => v,
                    None => node.mempool.verify(signed.clone())?,
                };
                admit_signer(node, &vtx)?;
                verified = Some(vtx.clone());
                let w = node.mempool.admit(vtx)?;
                // It may have been committed between the first check and admission.
                if let Some(r) = committed_receipt(node, &id)? {
                    node.mempool.remove(&id);
                    return Ok(Submitted::Committed(r));
                }
                w
            }
        };
        match tokio::time::timeout_at(deadline.into(), waiter).await {
            Ok(Ok(receipt)) => {
                node.metrics
                    .commit_latency
                    .observe(started.elapsed().as_secs_f64());
                return Ok(Submitted::Committed(receipt));
            }
            Ok(Err(_closed)) => {
                // This node lost leadership (the mempool was cleared).
                if let Some(r) = committed_receipt(node, &id)? {
                    return Ok(Submitted::Committed(r));
                }
                if Instant::now() >= deadline {
                    return Err(SubmitError::LostLeadership);
                }
                deposed = true;
                tracing::debug!(
                    "lost leadership while waiting; following the transaction to the next leader"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_elapsed) => return Ok(Submitted::Pending(id)),
        }
    }
}

/// What became of one transaction of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Committed and applied.
    Applied,
    /// Refused by a chain rule (`receipt` says where it is recorded) or
    /// at admission (not on the chain); `code` says which rule.
    Refused,
    /// Admitted, not committed within the commit wait: poll `poll`.
    Pending,
    /// Not ordered: it did not decode or verify, the node was busy, or no
    /// leader confirmed it (`code`, `message`); nothing is known to be
    /// committed, and a retry is idempotent.
    Failed,
}

/// One transaction's answer in a batch. Every field is always present (a
/// `null` when it does not apply), in this order, so the same value
/// travels as JSON and as postcard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchItem {
    /// The transaction's position in the request, from 0.
    pub index: u32,
    /// Its id; `null` when it did not decode.
    pub tx_id: Option<TxId>,
    /// What became of it.
    pub status: ItemStatus,
    /// The status `POST /v1/tx` would have answered for it alone.
    pub http_status: u16,
    /// The machine-readable code of a refusal or failure.
    pub code: Option<String>,
    /// A sentence for people, for a refusal or failure.
    pub message: Option<String>,
    /// Where it was committed (applied, or refused by a chain rule).
    pub receipt: Option<Receipt>,
    /// Where to poll, when pending.
    pub poll: Option<String>,
}

/// The answer to a batch: one item per transaction, in request order.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchResponse {
    /// The transactions' answers, in request order.
    pub results: Vec<BatchItem>,
}

/// The most transactions one batch may carry.
pub const MAX_BATCH: usize = 1000;

/// Submits many signed transactions at once and waits for each one's
/// commit, like [`submit_from`] for each, concurrently; the answers come
/// back in the order of `txs`.
///
/// On the leader, the signatures of the transactions that are neither
/// committed nor waiting already are checked first, together, on the
/// blocking pool (in parallel chunks), so the async workers never spend
/// CPU on them; each is still checked at most once on this node. A
/// follower forwards each transaction to the leader, which checks it.
pub async fn submit_batch(
    node: &Node,
    txs: Vec<SignedTx>,
    origin: Origin,
) -> Vec<Result<Submitted, SubmitError>> {
    let mut verified: Vec<Option<Result<VerifiedTx, TxError>>> = vec![None; txs.len()];
    if leader::is_leader(&node.raft, node.node_id) {
        let chain_id = node.genesis.chain_id.to_string();
        let todo: Vec<(usize, SignedTx)> = txs
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                let id = t.tx.id(&chain_id);
                !node.mempool.contains(&id) && !matches!(node.chain.tx_location(&id), Ok(Some(_)))
            })
            .map(|(i, t)| (i, t.clone()))
            .collect();
        for (i, r) in verify_parallel(node.mempool.chain_id().to_string(), todo).await {
            verified[i] = Some(r);
        }
    }
    let runs = txs
        .into_iter()
        .zip(verified)
        .map(|(signed, checked)| async move {
            match checked {
                Some(Err(e)) => {
                    // Counted and throttled as a single submission would be.
                    let signer = signed.tx.signer;
                    let result = Err(SubmitError::Invalid(e));
                    if let Some(code) = unordered_refusal_code(&result) {
                        node.metrics.refused(code);
                    }
                    node.throttle.record(signer, origin);
                    result
                }
                Some(Ok(vtx)) => submit_checked(node, signed, Some(vtx), origin).await,
                None => submit_checked(node, signed, None, origin).await,
            }
        });
    futures::future::join_all(runs).await
}

/// Checks the signatures of `txs` on the blocking pool, in as many chunks
/// as the machine has cores (at most 8), and returns each result by index.
async fn verify_parallel(
    chain_id: String,
    txs: Vec<(usize, SignedTx)>,
) -> Vec<(usize, Result<VerifiedTx, TxError>)> {
    if txs.is_empty() {
        return Vec::new();
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let per = txs.len().div_ceil(cores);
    let chain_id = std::sync::Arc::new(chain_id);
    let mut txs = txs;
    let mut jobs = Vec::new();
    while !txs.is_empty() {
        let rest = txs.split_off(per.min(txs.len()));
        let chunk = std::mem::replace(&mut txs, rest);
        let chain_id = chain_id.clone();
        jobs.push(tokio::task::spawn_blocking(move || {
            let mut keys = crate::store::preverify::KeyMemo::default();
            chunk
                .into_iter()
                .map(|(i, mut t)| {
                    keys.prepare(&mut t);
                    (i, t.verify_new(&chain_id))
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut out = Vec::new();
    for j in jobs {
        match j.await {
            Ok(v) => out.extend(v),
            // A panicking check leaves those unchecked: they are checked
            // again inline by the ordinary path.
            Err(e) => tracing::error!(error = %e, "a signature-check task failed"),
        }
    }
    out
}

/// What a leader's refusal body holds that matters here.
#[derive(serde::Deserialize)]
struct RefusalBody {
    receipt: Option<Receipt>,
}

/// Sends the submission to the leader and reads its answer back into a
/// [`Submitted`].
async fn forward(
    node: &Node,
    signed: &SignedTx,
    timeout: Duration,
) -> Result<Submitted, SubmitError> {
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
                timeout,
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
