//! What a node does for quorum certificates and the bounded leader clock
//! (the rules are in `rxchain_contracts::cert`).
//!
//! * **Certificates.** After applying a block, this node signs a
//!   [`CertVote`] over its header hash and sends it to every other member
//!   (`POST /raft/cert-vote`, signed like the Raft RPCs); the answer carries
//!   the peer's own vote for the same height, so two nodes that talk once
//!   hold each other's votes. Once a majority of the declared nodes voted
//!   for the block this node applied, the [`QuorumCert`] is stored beside it
//!   ([`ChainStore::put_cert`]). Votes for blocks not applied yet are kept
//!   for a short window of heights, and only [`MAX_VOTE_HEIGHTS`] heights
//!   are remembered at all, so memory stays bounded whatever peers send.
//! * **Clock.** Every node answers `POST /raft/clock` with a signed
//!   [`ClockAttestation`] of its chain clock. The leader polls the members
//!   about every [`CLOCK_POLL`], keeps the newest attestation of each node
//!   (seeded from the tip block's own proof, so a new leader starts with the
//!   proof the chain already holds), and the producer puts them in each
//!   block ([`Quorum::clock_proof`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rxchain_contracts::cert::{majority, voters, ClockAttestation, ClockProof};
use rxchain_contracts::{CertVote, Genesis, Hash, QuorumCert, SecretKey};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::clock::ChainClock;
use crate::raft::peers::Peers;
use crate::raft::rpc;
use crate::store::{ChainStore, StoreError};
use crate::types::Raft;

/// `POST /raft/clock`: the node's signed clock attestation.
pub const PATH_CLOCK: &str = "/raft/clock";
/// `POST /raft/cert-vote`: a peer's vote for a block.
pub const PATH_CERT_VOTE: &str = "/raft/cert-vote";
/// How often the leader refreshes its peers' clock attestations.
pub const CLOCK_POLL: Duration = Duration::from_millis(500);
/// How long one clock poll or vote send may take.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the clock refresh before a block may take per peer.
pub const REFRESH_TIMEOUT: Duration = Duration::from_millis(300);
/// How many heights of votes are remembered, and how far ahead of this
/// node's tip a vote may be and still be kept.
pub const MAX_VOTE_HEIGHTS: u64 = 64;
/// How many of the newest blocks a node (re)votes for when it starts or
/// catches up, so a restart does not leave recent blocks uncertified.
const REVOTE_DEPTH: u64 = 16;
/// How many recent blocks' clock proofs are kept in memory: enough for the
/// blocks a leader has in flight ([`crate::config::BlockSettings::pipeline`]).
const TIP_CLOCKS_KEPT: usize = 16;

/// The body of `POST /raft/cert-vote`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VoteMsg {
    /// The block's height.
    pub height: u64,
    /// The header hash voted for.
    pub block_hash: Hash,
    /// The vote.
    pub vote: CertVote,
}

/// Why a peer's vote was not taken.
#[derive(Debug, thiserror::Error)]
pub enum VoteError {
    /// The vote's node is not the authenticated sender.
    #[error("node {sender} sent a vote on behalf of node {claimed}")]
    NotSender {
        /// The authenticated sender.
        sender: u64,
        /// The node the vote names.
        claimed: u64,
    },
    /// The signature does not verify.
    #[error(transparent)]
    Invalid(#[from] rxchain_contracts::cert::CertError),
    /// The vote is for another block than the one this node applied.
    #[error("the vote is for another block at height {0} than this node applied")]
    OtherBlock(u64),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Votes received for one height: by voter, the hash voted for.
type HeightVotes = BTreeMap<u64, (Hash, CertVote)>;

/// A node's certificate and clock duties.
pub struct Quorum {
    genesis: Arc<Genesis>,
    node_id: u64,
    key: Arc<SecretKey>,
    chain: Arc<ChainStore>,
    clock: ChainClock,
    raft: Raft,
    peers: Peers,
    /// Votes of heights whose certificate is not complete, by height.
    votes: Mutex<BTreeMap<u64, HeightVotes>>,
    /// The newest clock attestation of each node.
    attestations: Mutex<BTreeMap<u64, ClockAttestation>>,
    /// Header hashes of recently applied blocks, by height, so a vote is
    /// checked without decoding a whole block.
    hashes: Mutex<BTreeMap<u64, Hash>>,
    /// The clock proofs of recent blocks, by height, with the block's header
    /// hash, so the next block's proof is built without decoding the tip.
    tip_clocks: Mutex<BTreeMap<u64, (Hash, Vec<ClockAttestation>)>>,
    /// When the clocks were last refreshed before a block.
    last_refresh: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Both maps hold plain values replaced whole, valid after any panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Quorum {
    /// The duties of node `node_id` over `chain`, reading `clock`, reaching
    /// the members of `raft` through `peers`.
    pub fn new(
        node_id: u64,
        key: Arc<SecretKey>,
        chain: Arc<ChainStore>,
        clock: ChainClock,
        raft: Raft,
        peers: &Peers,
    ) -> Arc<Self> {
        Arc::new(Quorum {
            genesis: chain.genesis_arc().clone(),
            node_id,
            key,
            chain,
            clock,
            raft,
            peers: peers.clone(),
            votes: Mutex::new(BTreeMap::new()),
            attestations: Mutex::new(BTreeMap::new()),
            hashes: Mutex::new(BTreeMap::new()),
            tip_clocks: Mutex::new(BTreeMap::new()),
            last_refresh: Mutex::new(None),
        })
    }

    /// The genesis.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The consortium in force: genesis plus governance decisions applied.
    pub fn consortium(&self) -> Arc<Genesis> {
        self.chain.consortium()
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// This node's signed reading of its chain clock now, at its tip.
    pub fn attest(&self) -> ClockAttestation {
        ClockAttestation::sign(
            self.genesis.chain_id.as_str(),
            self.node_id,
            &self.key,
            self.clock.now(),
            self.chain.tip().height,
        )
    }

    /// The chain clock's reading now.
    pub fn now(&self) -> rxchain_contracts::Timestamp {
        self.clock.now()
    }

    /// Remembers `a` if it is valid and newer than what is held for its node.
    fn keep_attestation(&self, a: ClockAttestation) {
        if a.verify(&self.chain.consortium()).is_err() {
            return;
        }
        let mut held = lock(&self.attestations);
        match held.get(&a.node) {
            Some(b) if b.clock >= a.clock => {}
            _ => {
                held.insert(a.node, a);
            }
        }
    }

    /// What the producer puts in the next block: this node's fresh
    /// attestation, the newest one held from every other node, and those in
    /// the tip block (the chain's own latest proof). The contracts keep the
    /// newest valid one of each node.
    pub fn clock_proof(&self) -> Result<ClockProof, StoreError> {
        let tip = self.chain.tip();
        let mut all: Vec<ClockAttestation> = lock(&self.attestations).values().copied().collect();
        if tip.height > 0 {
            all.extend(self.clock_of(tip.height, &tip.hash)?);
        }
        all.push(self.attest());
        Ok(ClockProof::select(
            &self.chain.consortium(),
            tip.height,
            all,
        ))
    }

    /// Whether `proof` holds a majority of the declared nodes' clocks.
    pub fn is_clock_majority(&self, proof: &ClockProof) -> bool {
        proof.0.len() >= majority(voters(&self.chain.consortium()).count())
    }

    /// Remembers the clock proof of the block `hash` at `height` (one this
    /// node just proposed), so it is not decoded again once it is the tip.
    pub fn remember_clock(&self, height: u64, hash: Hash, proof: &ClockProof) {
        let mut held = lock(&self.tip_clocks);
        held.insert(height, (hash, proof.0.clone()));
        while held.len() > TIP_CLOCKS_KEPT {
            held.pop_first();
        }
    }

    /// The clock proof in the applied block at `height`, whose header hash
    /// is `hash`: from memory when this node proposed or already read it.
    fn clock_of(&self, height: u64, hash: &Hash) -> Result<Vec<ClockAttestation>, StoreError> {
        if let Some((h, proof)) = lock(&self.tip_clocks).get(&height) {
            if h == hash {
                return Ok(proof.clone());
            }
        }
        let Some(b) = self.chain.block(height)? else {
            return Ok(Vec::new());
        };
        let proof = b.clock;
        self.remember_clock(height, *hash, &proof);
        Ok(proof.0)
    }

    /// Asks the members for fresh clock attestations before a block, unless
    /// that was done within the last [`CLOCK_POLL`] (a dead peer must not
    /// slow every block down). Each request gives up after [`REFRESH_TIMEOUT`].
    pub async fn refresh_before_block(self: &Arc<Self>) {
        {
            let mut last = lock(&self.last_refresh);
            if last.is_some_and(|t| t.elapsed() < CLOCK_POLL) {
                return;
            }
            *last = Some(Instant::now());
        }
        self.refresh_clocks(REFRESH_TIMEOUT).await;
    }

    /// Asks every member for a fresh clock attestation now, and keeps the
    /// valid ones. Each request gives up after `timeout`.
    async fn refresh_clocks(self: &Arc<Self>, timeout: Duration) {
        let polls = self.peers().into_iter().map(|(id, addr)| {
            let q = self.clone();
            async move {
                match post::<ClockAttestation>(&q, id, &addr, PATH_CLOCK, b"{}".to_vec(), timeout)
                    .await
                {
                    Ok(a) if a.node == id => q.keep_attestation(a),
                    Ok(a) => {
                        tracing::warn!(
                            peer = id,
                            claimed = a.node,
                            "clock attestation names another node"
                        )
                    }
                    Err(e) => tracing::debug!(peer = id, error = %e, "clock poll failed"),
                }
            }
        });
        futures::future::join_all(polls).await;
    }

    /// The other declared nodes in the current membership, with their addresses.
    fn peers(&self) -> Vec<(u64, String)> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        m.membership()
            .nodes()
            .filter(|(id, _)| **id != self.node_id && self.chain.consortium().node(**id).is_some())
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect()
    }

    /// The header hash of the block this node applied at `height`.
    fn hash_at(&self, height: u64) -> Result<Option<Hash>, StoreError> {
        if let Some(h) = lock(&self.hashes).get(&height) {
            return Ok(Some(*h));
        }
        let Some(b) = self.chain.block(height)? else {
            return Ok(None);
        };
        let hash = b.hash(self.genesis.chain_id.as_str());
        let mut hashes = lock(&self.hashes);
        hashes.insert(height, hash);
        // Keep only the newest heights: votes only arrive for those.
        while hashes.len() as u64 > 2 * MAX_VOTE_HEIGHTS {
            hashes.pop_first();
        }
        Ok(Some(hash))
    }

    /// This node's vote for the block at `height`, if it applied one.
    fn own_vote(&self, height: u64) -> Result<Option<(Hash, CertVote)>, StoreError> {
        let chain_id = self.genesis.chain_id.as_str();
        Ok(self.hash_at(height)?.map(|hash| {
            (
                hash,
                CertVote::sign(chain_id, self.node_id, &self.key, &hash),
            )
        }))
    }

    /// Takes a peer's vote (already authenticated as from `sender`) and
    /// answers with this node's own vote for the same height, if it has one.
    pub fn receive(&self, sender: u64, msg: VoteMsg) -> Result<Option<CertVote>, VoteError> {
        if msg.vote.node != sender {
            return Err(VoteError::NotSender {
                sender,
                claimed: msg.vote.node,
            });
        }
        msg.vote.verify(&self.chain.consortium(), &msg.block_hash)?;
        let own = self.own_vote(msg.height)?;
        if let Some((hash, _)) = &own {
            if *hash != msg.block_hash {
                return Err(VoteError::OtherBlock(msg.height));
            }
        }
        let tip = self.chain.tip().height;
        if msg.height <= tip + MAX_VOTE_HEIGHTS && self.chain.cert(msg.height)?.is_none() {
            lock(&self.votes)
                .entry(msg.height)
                .or_default()
                .insert(sender, (msg.block_hash, msg.vote));
            self.prune(tip);
            self.try_complete(msg.height)?;
        }
        Ok(own.map(|(_, v)| v))
    }

    /// Forgets votes of heights far below the tip (their certificates will
    /// not complete any more) and beyond the window.
    fn prune(&self, tip: u64) {
        let mut votes = lock(&self.votes);
        let low = tip.saturating_sub(MAX_VOTE_HEIGHTS);
        votes.retain(|h, _| *h >= low && *h <= tip + MAX_VOTE_HEIGHTS);
    }

    /// Stores the certificate of `height` once a majority voted for the
    /// block this node applied there.
    fn try_complete(&self, height: u64) -> Result<(), StoreError> {
        let Some(hash) = self.hash_at(height)? else {
            return Ok(());
        };
        let need = majority(voters(&self.chain.consortium()).count());
        let cert = {
            let mut votes = lock(&self.votes);
            let Some(at) = votes.get(&height) else {
                return Ok(());
            };
            let good: Vec<CertVote> = at
                .values()
                .filter(|(h, _)| *h == hash)
                .map(|(_, v)| *v)
                .take(need)
                .collect();
            if good.len() < need {
                return Ok(());
            }
            votes.remove(&height);
            QuorumCert {
                height,
                block_hash: hash,
                votes: good,
            }
        };
        self.chain.put_cert(&cert)?;
        tracing::debug!(height, "quorum certificate stored");
        Ok(())
    }

    /// Signs this node's vote for `height`, records it, and returns the
    /// message to send to peers.
    fn vote_for(&self, height: u64) -> Result<Option<VoteMsg>, StoreError> {
        if self.chain.cert(height)?.is_some() {
            return Ok(None);
        }
        let Some((hash, vote)) = self.own_vote(height)? else {
            return Ok(None);
        };
        lock(&self.votes)
            .entry(height)
            .or_default()
            .insert(self.node_id, (hash, vote));
        self.try_complete(height)?;
        Ok(Some(VoteMsg {
            height,
            block_hash: hash,
            vote,
        }))
    }
}

/// The signed headers of a node request to `path` with `body`.
fn signed_headers(q: &Quorum, to: u64, path: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    rpc::signed_headers(
        q.genesis.chain_id.as_str(),
        &q.key,
        q.node_id,
        to,
        path,
        body,
    )
}

/// Why a request to a peer failed.
#[derive(Debug, thiserror::Error)]
enum PeerError {
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Client(#[from] crate::raft::peers::PeerClientError),
    #[error("peer answered {0}")]
    Status(reqwest::StatusCode),
    #[error("cannot encode the request: {0}")]
    Encode(#[source] serde_json::Error),
}

/// Posts a signed JSON body to `path` on the peer at `addr`.
async fn post<T: serde::de::DeserializeOwned>(
    q: &Quorum,
    to: u64,
    addr: &str,
    path: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<T, PeerError> {
    let mut req = q
        .peers
        .client(to)?
        .post(q.peers.url(addr, path))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .timeout(timeout);
    for (k, v) in signed_headers(q, to, path, &body) {
        req = req.header(k, v);
    }
    let resp = req.body(body).send().await?;
    if !resp.status().is_success() {
        return Err(PeerError::Status(resp.status()));
    }
    Ok(resp.json().await?)
}

/// Votes for every block this node applies and sends the votes to its
/// peers, until `shutdown` flips to true.
pub async fn vote_on_apply(q: Arc<Quorum>, mut shutdown: watch::Receiver<bool>) {
    let mut metrics = q.raft.metrics();
    let mut voted = q.chain.tip().height.saturating_sub(REVOTE_DEPTH);
    loop {
        let tip = q.chain.tip().height;
        // After a snapshot install the gap can be large; only the newest
        // blocks can still gather votes.
        let from = (voted + 1).max(tip.saturating_sub(REVOTE_DEPTH) + 1);
        for height in from..=tip {
            let msg = {
                let q = q.clone();
                tokio::task::spawn_blocking(move || q.vote_for(height)).await
            };
            match msg {
                Ok(Ok(Some(msg))) => send_vote(&q, msg),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::warn!(height, error = %e, "cannot vote for a block"),
                Err(e) => tracing::warn!(height, error = %e, "vote task failed"),
            }
        }
        voted = voted.max(tip);
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

/// Sends `msg` to every peer in the background, taking each answer's vote.
fn send_vote(q: &Arc<Quorum>, msg: VoteMsg) {
    let body = match serde_json::to_vec(&msg) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %PeerError::Encode(e), "cannot encode a vote");
            return;
        }
    };
    for (id, addr) in q.peers() {
        let (q, body) = (q.clone(), body.clone());
        let (height, hash) = (msg.height, msg.block_hash);
        tokio::spawn(async move {
            match post::<Option<CertVote>>(&q, id, &addr, PATH_CERT_VOTE, body, PEER_TIMEOUT).await
            {
                Ok(Some(vote)) if vote.node == id => {
                    let back = VoteMsg {
                        height,
                        block_hash: hash,
                        vote,
                    };
                    let q2 = q.clone();
                    let taken = tokio::task::spawn_blocking(move || q2.receive(id, back)).await;
                    if let Ok(Err(e)) = taken {
                        tracing::debug!(peer = id, height, error = %e, "peer's vote not taken");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(peer = id, height, error = %e, "vote not delivered"),
            }
        });
    }
}

/// While this node leads, refreshes the peers' clock attestations every
/// [`CLOCK_POLL`], until `shutdown` flips to true.
pub async fn poll_clocks(q: Arc<Quorum>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CLOCK_POLL) => {}
            _ = shutdown.changed() => return,
        }
        if q.raft.metrics().borrow().current_leader == Some(q.node_id) {
            q.refresh_clocks(PEER_TIMEOUT).await;
        }
    }
}
