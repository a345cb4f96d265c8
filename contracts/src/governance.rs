//! Governance: the consortium changes itself by M-of-N decisions on chain.
//!
//! Genesis founds the consortium; after that its member organisations, their
//! keys, their nodes and the rule parameters change only through
//! [`Action`]s that a [`Proposal`] carries. An organisation's admin proposes
//! ([`crate::tx::Propose`]), other admins approve ([`crate::tx::Approve`]),
//! one approval per organisation, the proposer's included; when the
//! approvals reach [`threshold`] the action executes in that same
//! transaction. An organisation may also take its own node out alone
//! ([`crate::tx::LeaveNode`]).
//!
//! The result is the *effective consortium*: genesis with every executed
//! decision applied, stored whole under [`consortium_key`] by governance
//! alone and read back by [`effective`]. Every rule that looks up an
//! organisation, a key, a node or a parameter reads it, never genesis
//! directly; genesis stays the founding document that names the chain and
//! whose hash block 1 links to.

use serde::{Deserialize, Serialize};

use crate::crypto::PublicKey;
use crate::genesis::{Genesis, NodeDecl, OrgDecl, Params};
use crate::model::{NodeId, OrgId, Timestamp};
use crate::state::{CorruptState, Overlay};
use crate::tx::TxId;

/// What a governance proposal would change. The variant order is part of
/// the canonical encoding: append new actions at the end.
/// JSON: `{"action": "add_node", ...}`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    serde(tag = "action", rename_all = "snake_case")
)]
pub enum Action {
    /// Declare a new node for a member organisation: it may then join Raft
    /// and, once a voter, order blocks.
    AddNode {
        /// The organisation that runs it.
        org: OrgId,
        /// Its id and keys.
        node: NodeDecl,
    },
    /// Take a declared node out of the consortium (and so out of Raft).
    RemoveNode {
        /// Its id.
        node: NodeId,
    },
    /// Admit a new member organisation with its keys and nodes.
    AddOrg {
        /// Its declaration, as genesis would have written it.
        org: OrgDecl,
    },
    /// Replace an organisation's admin key.
    RotateAdminKey {
        /// The organisation.
        org: OrgId,
        /// Its admin key from now on.
        key: PublicKey,
    },
    /// Replace a node's keys: the declaration with the same id takes the
    /// place of the old one, whatever keys it carries.
    RotateNodeKeys {
        /// The node's new declaration (same id).
        node: NodeDecl,
    },
    /// Replace the rule parameters.
    SetParams {
        /// The parameters from now on.
        params: Params,
    },
}

crate::encoding::tagged_in_json!(Action, "Action", "action", {
    AddNode { org: OrgId, node: NodeDecl },
    RemoveNode { node: NodeId },
    AddOrg { org: OrgDecl },
    RotateAdminKey { org: OrgId, key: PublicKey },
    RotateNodeKeys { node: NodeDecl },
    SetParams { params: Params },
});

impl Action {
    /// The action's name in snake case, as in its JSON tag.
    pub fn name(&self) -> &'static str {
        match self {
            Action::AddNode { .. } => "add_node",
            Action::RemoveNode { .. } => "remove_node",
            Action::AddOrg { .. } => "add_org",
            Action::RotateAdminKey { .. } => "rotate_admin_key",
            Action::RotateNodeKeys { .. } => "rotate_node_keys",
            Action::SetParams { .. } => "set_params",
        }
    }
}

/// A proposal as stored: what it would do, who approved it, and whether it
/// was executed. Its id is the id of the `propose` transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Proposal {
    /// The id of the `propose` transaction.
    pub id: TxId,
    /// What it would change.
    pub action: Action,
    /// The proposing organisation; its approval is the first.
    pub proposer: OrgId,
    /// Block time of the proposal.
    pub proposed_at: Timestamp,
    /// From this block time on it can no longer be approved.
    pub expires_at: Timestamp,
    /// The organisations that approved, in order, each once.
    pub approvals: Vec<OrgId>,
    /// Block time at which the approvals reached the threshold and the
    /// action took effect.
    pub executed_at: Option<Timestamp>,
}

impl Proposal {
    /// Whether it may still be approved at `now`: not executed, not expired.
    pub fn is_open(&self, now: Timestamp) -> bool {
        self.executed_at.is_none() && now < self.expires_at
    }
}

/// The effective consortium as stored: organisations and parameters. The
/// chain id and founding time stay those of genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsortiumRecord {
    /// Member organisations with their keys and nodes.
    pub orgs: Vec<OrgDecl>,
    /// The rule parameters in force.
    pub params: Params,
}

/// Key of the effective consortium, once a decision changed it.
pub fn consortium_key() -> Vec<u8> {
    b"gov/consortium".to_vec()
}

/// Key of a proposal.
pub fn proposal_key(id: &TxId) -> Vec<u8> {
    [b"gov/proposal/".as_slice(), id.0.as_bytes()].concat()
}

/// Key of the list of every proposal id, in the order proposed, so that
/// proposals can be listed without scanning the state.
pub fn proposal_index_key() -> Vec<u8> {
    b"gov/proposals".to_vec()
}

/// The effective consortium: genesis with every executed decision applied.
pub fn effective(genesis: &Genesis, st: &Overlay<'_>) -> Result<Genesis, CorruptState> {
    Ok(match st.get::<ConsortiumRecord>(&consortium_key())? {
        Some(c) => Genesis {
            chain_id: genesis.chain_id.clone(),
            created_at: genesis.created_at,
            orgs: c.orgs,
            params: c.params,
        },
        None => genesis.clone(),
    })
}

/// How many organisations' approvals a proposal needs in `consortium`:
/// `params.governance_threshold`, or a majority of the member organisations
/// when it is 0, counted when each approval arrives.
pub fn threshold(consortium: &Genesis) -> usize {
    let orgs = consortium.orgs.len();
    match consortium.params.governance_threshold {
        0 => orgs / 2 + 1,
        t => (t as usize).min(orgs),
    }
}

/// Every node id the consortium declares, ascending: the nodes that may be
/// Raft voters.
pub fn declared_nodes(consortium: &Genesis) -> std::collections::BTreeSet<NodeId> {
    consortium
        .orgs
        .iter()
        .flat_map(|o| o.nodes.iter().map(|n| n.id))
        .collect()
}
