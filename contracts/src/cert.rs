//! What a majority of the consortium's nodes vouch for: quorum certificates
//! over applied blocks, and the clock attestations that bound the leader's
//! block time.
//!
//! The nodes that count are the *declared* nodes of the consortium
//! ([`voters`]): those genesis names. A majority is `declared / 2 + 1`
//! ([`majority`]). Raft's own commit quorum (the current membership) is a
//! separate matter: a certificate or a clock bound speaks for the
//! organisations' declared nodes, whatever the membership is at the moment.
//!
//! * A [`CertVote`] is a node's signature (tag `cert/<chain id>`) over a
//!   block's header hash, given after the node applied the block. A
//!   [`QuorumCert`] holds votes from a majority of distinct declared nodes.
//! * A [`ClockAttestation`] is a node's signed reading of its clock together
//!   with the chain height it had applied (tag `clock/<chain id>`). A block
//!   carries a [`ClockProof`] and its header the `clock_bound` derived from
//!   it ([`ClockProof::bound`]): the m-th largest attested clock, m the
//!   majority, plus `Params::max_leader_skew_ms`. The block time may not
//!   pass it, so a leader whose clock runs ahead cannot move chain time
//!   further than the skew past what a majority's clocks read. Everything is
//!   in the block, so replaying the log gives the same verdict on every
//!   node, at any time.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::block::{BlockHeader, InclusionProof, SignedHeader};
use crate::crypto::{Hash, SecretKey, Signature};
use crate::encoding;
use crate::genesis::{Genesis, NodeDecl};
use crate::model::{NodeId, Timestamp};

/// The declared nodes whose signatures count for certificates and clock
/// bounds: every node of every organisation in genesis.
pub fn voters(g: &Genesis) -> impl Iterator<Item = &NodeDecl> {
    g.orgs.iter().flat_map(|o| o.nodes.iter())
}

/// How many of `declared` nodes make a majority: `declared / 2 + 1`.
pub fn majority(declared: usize) -> usize {
    declared / 2 + 1
}

fn voter(g: &Genesis, node: NodeId) -> Option<&NodeDecl> {
    voters(g).find(|n| n.id == node)
}

/// A node's vote that it applied the block with this header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CertVote {
    /// The voting node.
    pub node: NodeId,
    /// Its node-key signature, tag `cert/<chain id>`, over the header hash.
    pub signature: Signature,
}

impl CertVote {
    /// The domain tag of certificate votes.
    pub fn signing_tag(chain_id: &str) -> String {
        format!("cert/{chain_id}")
    }

    /// Signs the vote of `node` for the block whose header hash is `block_hash`.
    pub fn sign(chain_id: &str, node: NodeId, key: &SecretKey, block_hash: &Hash) -> CertVote {
        CertVote {
            node,
            signature: key.sign(&Self::signing_tag(chain_id), block_hash.as_bytes()),
        }
    }

    /// Checks the vote against the declared nodes and a header hash.
    pub fn verify(&self, g: &Genesis, block_hash: &Hash) -> Result<(), CertError> {
        let decl = voter(g, self.node).ok_or(CertError::UnknownVoter(self.node))?;
        decl.key
            .verify(
                &Self::signing_tag(g.chain_id.as_str()),
                block_hash.as_bytes(),
                &self.signature,
            )
            .map_err(|_| CertError::BadVoteSignature(self.node))
    }
}

/// Votes from a majority of the declared nodes for one block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuorumCert {
    /// The block's height.
    pub height: u64,
    /// The block's header hash.
    pub block_hash: Hash,
    /// The votes, one per node.
    pub votes: Vec<CertVote>,
}

/// How many declared nodes a valid certificate speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tally {
    /// Distinct valid votes.
    pub votes: usize,
    /// Declared nodes.
    pub declared: usize,
}

impl QuorumCert {
    /// Checks the certificate against `header`: same height and hash, every
    /// vote from a distinct declared node with a valid signature, and at
    /// least a majority of the declared nodes.
    pub fn verify(&self, g: &Genesis, header: &BlockHeader) -> Result<Tally, CertError> {
        self.verify_hash(g, header.height, &header.hash(g.chain_id.as_str()))
    }

    /// [`QuorumCert::verify`] against a block known only by its height and
    /// header hash (a snapshot check keeps no more of each block).
    pub fn verify_hash(
        &self,
        g: &Genesis,
        height: u64,
        block_hash: &Hash,
    ) -> Result<Tally, CertError> {
        if self.height != height {
            return Err(CertError::HeightMismatch {
                cert: self.height,
                header: height,
            });
        }
        if self.block_hash != *block_hash {
            return Err(CertError::HashMismatch);
        }
        let mut seen = BTreeSet::new();
        for v in &self.votes {
            if !seen.insert(v.node) {
                return Err(CertError::DuplicateVote(v.node));
            }
            v.verify(g, &self.block_hash)?;
        }
        let declared = voters(g).count();
        let need = majority(declared);
        if seen.len() < need {
            return Err(CertError::BelowQuorum {
                votes: seen.len(),
                need,
                declared,
            });
        }
        Ok(Tally {
            votes: seen.len(),
            declared,
        })
    }
}

/// Why a certificate, a vote or a receipt does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The certificate names another height than the header.
    #[error("the certificate is for height {cert}, the header for height {header}")]
    HeightMismatch {
        /// The certificate's height.
        cert: u64,
        /// The header's height.
        header: u64,
    },
    /// The certificate names another block hash than the header's.
    #[error("the certificate is for another block hash than this header's")]
    HashMismatch,
    /// A vote comes from a node the consortium does not declare.
    #[error("vote from node {0}, which the consortium does not declare")]
    UnknownVoter(NodeId),
    /// Two votes come from the same node.
    #[error("node {0} votes twice")]
    DuplicateVote(NodeId),
    /// A vote's signature does not verify under the node's declared key.
    #[error("node {0}'s vote does not verify under its declared node key")]
    BadVoteSignature(NodeId),
    /// Fewer distinct valid votes than a majority of the declared nodes.
    #[error("{votes} of {declared} declared nodes voted; a majority needs {need}")]
    BelowQuorum {
        /// Distinct valid votes.
        votes: usize,
        /// The majority.
        need: usize,
        /// Declared nodes.
        declared: usize,
    },
    /// The receipt has no certificate (the node had not collected one yet).
    #[error("the receipt carries no quorum certificate yet")]
    NoCertificate,
    /// The header's proposer signature does not verify.
    #[error("the header's proposer signature does not verify under node {0}'s declared key")]
    BadProposerSignature(NodeId),
    /// The proposer is not a declared node.
    #[error("the header's proposer, node {0}, is not declared")]
    UnknownProposer(NodeId),
    /// The inclusion proof does not lead to the header's roots.
    #[error("the inclusion proof does not match the header's merkle roots")]
    BadInclusionProof,
    /// The receipt's own fields disagree with its proof or header.
    #[error("the receipt disagrees with its proof or header: {0}")]
    Inconsistent(&'static str),
}

/// The parts of a `GET /v1/tx/{id}` answer that an offline check needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptParts {
    /// The transaction id the receipt is about.
    pub tx_id: crate::tx::TxId,
    /// The height it claims.
    pub height: u64,
    /// The position it claims.
    pub index: u32,
    /// The block hash it claims.
    pub block_hash: Hash,
    /// The outcome it claims.
    pub outcome: crate::lifecycle::Outcome,
}

/// Checks a receipt offline against genesis: the inclusion proof against
/// the header, the header's proposer signature, and the certificate (a
/// majority of the declared nodes applied this very header).
pub fn verify_receipt(
    g: &Genesis,
    receipt: &ReceiptParts,
    proof: &InclusionProof,
    header: &SignedHeader,
    cert: Option<&QuorumCert>,
) -> Result<Tally, CertError> {
    let chain_id = g.chain_id.as_str();
    let h = &header.header;
    if receipt.tx_id != proof.tx_id || receipt.outcome != proof.outcome {
        return Err(CertError::Inconsistent(
            "the proof is about another transaction or outcome",
        ));
    }
    if receipt.height != h.height || receipt.index != proof.index {
        return Err(CertError::Inconsistent(
            "the height or position differs from the header's and proof's",
        ));
    }
    if receipt.block_hash != h.hash(chain_id) {
        return Err(CertError::Inconsistent(
            "the block hash is not the header's hash",
        ));
    }
    if !proof.check(h) {
        return Err(CertError::BadInclusionProof);
    }
    let proposer = voter(g, h.proposer).ok_or(CertError::UnknownProposer(h.proposer))?;
    proposer
        .key
        .verify_digest(
            &crate::crypto::signing_digest(
                &BlockHeader::signing_tag(chain_id),
                h.hash(chain_id).as_bytes(),
            ),
            &header.signature,
        )
        .map_err(|_| CertError::BadProposerSignature(h.proposer))?;
    cert.ok_or(CertError::NoCertificate)?.verify(g, h)
}

/// A node's signed clock reading, and the chain height it had applied when
/// it read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClockAttestation {
    /// The attesting node.
    pub node: NodeId,
    /// Its clock, Unix milliseconds.
    pub clock: Timestamp,
    /// The height of the chain tip it had applied.
    pub height: u64,
    /// Its node-key signature, tag `clock/<chain id>`, over
    /// `canonical((node, clock, height))`.
    pub signature: Signature,
}

impl ClockAttestation {
    /// The domain tag of clock attestations.
    pub fn signing_tag(chain_id: &str) -> String {
        format!("clock/{chain_id}")
    }

    fn message(node: NodeId, clock: Timestamp, height: u64) -> Vec<u8> {
        encoding::to_bytes(&(node, clock, height))
    }

    /// Signs `node`'s reading `clock` at tip height `height`.
    pub fn sign(
        chain_id: &str,
        node: NodeId,
        key: &SecretKey,
        clock: Timestamp,
        height: u64,
    ) -> ClockAttestation {
        ClockAttestation {
            node,
            clock,
            height,
            signature: key.sign(
                &Self::signing_tag(chain_id),
                &Self::message(node, clock, height),
            ),
        }
    }

    /// Checks the signature under the node's declared key.
    pub fn verify(&self, g: &Genesis) -> Result<(), ClockError> {
        let decl = voter(g, self.node).ok_or(ClockError::UnknownAttester(self.node))?;
        decl.key
            .verify(
                &Self::signing_tag(g.chain_id.as_str()),
                &Self::message(self.node, self.clock, self.height),
                &self.signature,
            )
            .map_err(|_| ClockError::BadAttestation(self.node))
    }
}

/// The clock attestations a block carries, at most one per declared node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClockProof(pub Vec<ClockAttestation>);

impl ClockProof {
    /// The `clock_bound` this proof gives a block on `tip_height` with tip
    /// time `tip_time`: every attestation must be from a distinct declared
    /// node, signed, and have seen no tip beyond `tip_height`. With
    /// attestations from a majority m of the declared nodes, the bound is the
    /// m-th largest attested clock plus `max_leader_skew_ms`: at least m
    /// nodes read a clock that far. With fewer, chain time may not advance
    /// and the bound is `tip_time`.
    pub fn bound(
        &self,
        g: &Genesis,
        tip_height: u64,
        tip_time: Timestamp,
    ) -> Result<Timestamp, ClockError> {
        let mut seen = BTreeSet::new();
        let mut clocks = Vec::with_capacity(self.0.len());
        for a in &self.0 {
            if !seen.insert(a.node) {
                return Err(ClockError::DuplicateAttester(a.node));
            }
            if a.height > tip_height {
                return Err(ClockError::AheadOfTip {
                    node: a.node,
                    height: a.height,
                    tip: tip_height,
                });
            }
            a.verify(g)?;
            clocks.push(a.clock);
        }
        let m = majority(voters(g).count());
        if clocks.len() < m {
            return Ok(tip_time);
        }
        clocks.sort_unstable_by(|a, b| b.cmp(a));
        Ok(Timestamp(
            clocks[m - 1].0.saturating_add(g.params.max_leader_skew_ms),
        ))
    }

    /// Attestations from every declared node, all reading `clock` at tip
    /// height `height`, signed with the keys `key_of` gives: for tools and
    /// tests that hold every node's key.
    pub fn attested_by_all(
        g: &Genesis,
        height: u64,
        clock: Timestamp,
        key_of: impl Fn(NodeId) -> SecretKey,
    ) -> ClockProof {
        ClockProof(
            voters(g)
                .map(|n| {
                    ClockAttestation::sign(g.chain_id.as_str(), n.id, &key_of(n.id), clock, height)
                })
                .collect(),
        )
    }

    /// Keeps, from `candidates`, the newest attestation of each declared
    /// node that is valid for a block on `tip_height`: what a proposer puts
    /// in its block. Invalid ones are dropped, so the result always passes
    /// [`ClockProof::bound`].
    pub fn select(
        g: &Genesis,
        tip_height: u64,
        candidates: impl IntoIterator<Item = ClockAttestation>,
    ) -> ClockProof {
        let mut best: std::collections::BTreeMap<NodeId, ClockAttestation> = Default::default();
        for a in candidates {
            if a.height > tip_height || a.verify(g).is_err() {
                continue;
            }
            match best.get(&a.node) {
                Some(b) if b.clock >= a.clock => {}
                _ => {
                    best.insert(a.node, a);
                }
            }
        }
        ClockProof(best.into_values().collect())
    }
}

/// Why a block's clock proof or clock bound is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// An attestation comes from a node the consortium does not declare.
    #[error("clock attestation from node {0}, which the consortium does not declare")]
    UnknownAttester(NodeId),
    /// Two attestations come from the same node.
    #[error("node {0} attests its clock twice")]
    DuplicateAttester(NodeId),
    /// An attestation's signature does not verify.
    #[error("node {0}'s clock attestation does not verify under its declared node key")]
    BadAttestation(NodeId),
    /// An attestation claims a tip beyond the block's parent.
    #[error("node {node}'s clock attestation saw height {height}, beyond the parent block {tip}")]
    AheadOfTip {
        /// The attester.
        node: NodeId,
        /// The height it claims to have seen.
        height: u64,
        /// The parent's height.
        tip: u64,
    },
    /// The header's `clock_bound` is not the one the proof gives.
    #[error("the header's clock bound {recorded} is not the proof's {computed}")]
    BoundMismatch {
        /// In the header.
        recorded: Timestamp,
        /// From the proof.
        computed: Timestamp,
    },
    /// The block time passes the clock bound.
    #[error("the block time {timestamp} passes the clock bound {bound}")]
    BeyondBound {
        /// The block time.
        timestamp: Timestamp,
        /// The bound.
        bound: Timestamp,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::{OrgDecl, OrgKind, Params};
    use crate::model::{Label, OrgId};

    fn key(n: NodeId) -> SecretKey {
        SecretKey::derive("cert-test", format!("node/{n}").as_bytes())
    }

    fn genesis(nodes: &[NodeId]) -> Genesis {
        let k = |w: &str| SecretKey::derive("cert-test", w.as_bytes()).public();
        Genesis {
            chain_id: Label::parse("cert-test").unwrap(),
            created_at: Timestamp(1_000),
            orgs: vec![OrgDecl {
                id: OrgId::parse("reg").unwrap(),
                kind: OrgKind::Regulator,
                name: Label::parse("Reg").unwrap(),
                address: Label::parse("1 Street").unwrap(),
                admin_key: k("admin"),
                data_key: k("data"),
                nodes: nodes
                    .iter()
                    .map(|&id| NodeDecl {
                        id,
                        key: key(id).public(),
                        tls: Hash::of(&[b"cert-test-tls", &id.to_be_bytes()]),
                    })
                    .collect(),
            }],
            params: Params::default(),
        }
    }

    fn att(g: &Genesis, n: NodeId, clock: u64) -> ClockAttestation {
        ClockAttestation::sign(g.chain_id.as_str(), n, &key(n), Timestamp(clock), 0)
    }

    #[test]
    fn the_bound_is_the_majoritys_clock_plus_the_skew() {
        let g = genesis(&[1, 2, 3]);
        let skew = g.params.max_leader_skew_ms;
        let day = Timestamp::DAY_MS;
        // A leader a day ahead cannot lift the bound past the others.
        let p = ClockProof(vec![
            att(&g, 1, 10_000 + day),
            att(&g, 2, 10_000),
            att(&g, 3, 9_000),
        ]);
        assert_eq!(p.bound(&g, 0, Timestamp(1)), Ok(Timestamp(10_000 + skew)));
        // Leaving the lower one out does not help it either.
        let p = ClockProof(vec![att(&g, 1, 10_000 + day), att(&g, 3, 9_000)]);
        assert_eq!(p.bound(&g, 0, Timestamp(1)), Ok(Timestamp(9_000 + skew)));
        // Alone, it is no majority: time stays at the tip.
        let p = ClockProof(vec![att(&g, 1, 10_000 + day)]);
        assert_eq!(p.bound(&g, 0, Timestamp(5)), Ok(Timestamp(5)));
        // Duplicates, strangers, forgeries and attestations from the future are refused.
        let p = ClockProof(vec![att(&g, 2, 10_000), att(&g, 2, 10_001)]);
        assert_eq!(
            p.bound(&g, 0, Timestamp(1)),
            Err(ClockError::DuplicateAttester(2))
        );
        let stranger = ClockAttestation::sign("cert-test", 9, &key(9), Timestamp(1), 0);
        assert_eq!(
            ClockProof(vec![stranger]).bound(&g, 0, Timestamp(1)),
            Err(ClockError::UnknownAttester(9))
        );
        let mut forged = att(&g, 2, 10_000);
        forged.clock = Timestamp(10_000 + day);
        assert_eq!(
            ClockProof(vec![forged]).bound(&g, 0, Timestamp(1)),
            Err(ClockError::BadAttestation(2))
        );
        let ahead = ClockAttestation::sign("cert-test", 2, &key(2), Timestamp(1), 7);
        assert_eq!(
            ClockProof(vec![ahead]).bound(&g, 6, Timestamp(1)),
            Err(ClockError::AheadOfTip {
                node: 2,
                height: 7,
                tip: 6
            })
        );
        // A one-node consortium's own attestation is a majority of one.
        let one = genesis(&[1]);
        let p = ClockProof(vec![att(&one, 1, 10_000)]);
        assert_eq!(p.bound(&one, 0, Timestamp(1)), Ok(Timestamp(10_000 + skew)));
    }

    #[test]
    fn select_keeps_the_newest_valid_attestation_per_node() {
        let g = genesis(&[1, 2, 3]);
        let stranger = ClockAttestation::sign("cert-test", 9, &key(9), Timestamp(1), 0);
        let p = ClockProof::select(
            &g,
            0,
            [
                att(&g, 2, 5),
                att(&g, 2, 7),
                att(&g, 1, 3),
                stranger,
                ClockAttestation::sign("cert-test", 3, &key(3), Timestamp(9), 4),
            ],
        );
        assert_eq!(p, ClockProof(vec![att(&g, 1, 3), att(&g, 2, 7)]));
    }

    #[test]
    fn a_certificate_needs_a_majority_of_distinct_declared_valid_votes() {
        let g = genesis(&[1, 2, 3]);
        let header = BlockHeader {
            height: 1,
            prev_hash: g.hash(),
            timestamp: Timestamp(1_000),
            clock_bound: Timestamp(1_000),
            tx_root: Hash::ZERO,
            outcomes_root: Hash::ZERO,
            state_root: Hash::ZERO,
            tx_count: 0,
            proposer: 1,
        };
        let hash = header.hash("cert-test");
        let vote = |n: NodeId| CertVote::sign("cert-test", n, &key(n), &hash);
        let cert = |votes: Vec<CertVote>| QuorumCert {
            height: 1,
            block_hash: hash,
            votes,
        };
        assert_eq!(
            cert(vec![vote(1), vote(3)]).verify(&g, &header),
            Ok(Tally {
                votes: 2,
                declared: 3
            })
        );
        assert_eq!(
            cert(vec![vote(1)]).verify(&g, &header),
            Err(CertError::BelowQuorum {
                votes: 1,
                need: 2,
                declared: 3
            })
        );
        assert_eq!(
            cert(vec![vote(1), vote(1)]).verify(&g, &header),
            Err(CertError::DuplicateVote(1))
        );
        let mut other = header.clone();
        other.timestamp = Timestamp(2_000);
        assert_eq!(
            cert(vec![vote(1), vote(2)]).verify(&g, &other),
            Err(CertError::HashMismatch)
        );
        let mut bad = vote(2);
        bad.signature = vote(3).signature;
        assert_eq!(
            cert(vec![vote(1), bad]).verify(&g, &header),
            Err(CertError::BadVoteSignature(2))
        );
        let stranger = CertVote::sign("cert-test", 9, &key(9), &hash);
        assert_eq!(
            cert(vec![vote(1), stranger]).verify(&g, &header),
            Err(CertError::UnknownVoter(9))
        );
    }
}
