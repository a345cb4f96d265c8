//! Genesis: the consortium's founding declaration of organisations, their
//! admin and data keys, and the nodes allowed to order blocks.

use serde::{Deserialize, Serialize};

use crate::controlled::ControlledDrug;
use crate::crypto::{Hash, PublicKey};
use crate::encoding;
use crate::model::{Label, NodeId, OrgId, Timestamp};
use crate::rejection::Rejection;

/// What kind of organisation a consortium member is. The kind decides which
/// staff roles it may register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum OrgKind {
    /// Issues prescriptions.
    Hospital,
    /// Claims, dispenses and delivers prescriptions.
    Pharmacy,
    /// Watches dispensing and may revoke any staff key.
    Regulator,
    /// Carries home deliveries.
    Logistics,
    /// Reviews reimbursement of the prescriptions patients share with it
    /// (see [`crate::tx::GrantAccess`]); its staff sign access requests,
    /// nothing else.
    Insurer,
}

/// A node that may propose blocks and take part in Raft.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeDecl {
    /// The Raft node id, unique in the consortium.
    pub id: NodeId,
    /// The key that signs this node's blocks and Raft messages.
    pub key: PublicKey,
    /// SHA3-256 of the DER SubjectPublicKeyInfo of the node's TLS key. Peers
    /// accept a TLS connection as this node only if its certificate carries
    /// that key; it is separate from `key` because TLS cannot use secp256k1.
    /// Required: a genesis that does not pin its nodes' TLS keys would let
    /// anyone on the path pose as a node.
    pub tls: Hash,
}

/// One member organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrgDecl {
    /// Stable id used on the chain.
    pub id: OrgId,
    /// What the organisation does.
    pub kind: OrgKind,
    /// Display name.
    pub name: Label,
    /// Postal address, shown to patients choosing a pharmacy. Organisations'
    /// addresses are public, unlike patients'.
    pub address: Label,
    /// Signs staff registrations and revocations for this organisation.
    pub admin_key: PublicKey,
    /// Receives content keys by ECDH: hospitals and regulators read sealed
    /// prescriptions with it, pharmacies receive patients' hand-overs with it.
    pub data_key: PublicKey,
    /// The organisation's nodes.
    pub nodes: Vec<NodeDecl>,
}

/// Tunable rules, fixed at genesis so that every node applies the same ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Params {
    /// Default and maximum validity of a prescription with a controlled drug.
    pub controlled_validity_days: u32,
    /// Default validity of other prescriptions.
    pub default_validity_days: u32,
    /// Longest validity a prescriber may choose for other prescriptions.
    pub max_validity_days: u32,
    /// How far a transaction's `created_at` may lie after the block time, to
    /// tolerate clock skew between clients and the proposer.
    pub max_clock_skew_ms: u64,
    /// How far a block time may run ahead of the clocks of a majority of the
    /// declared nodes (see [`crate::cert::ClockProof::bound`]).
    #[serde(default = "default_max_leader_skew_ms")]
    pub max_leader_skew_ms: u64,
    /// The controlled drugs the chain starts with, by ATC code, each once.
    /// Regulator officers change the list later by transaction
    /// ([`crate::tx::SetControlled`]); [`crate::controlled::ControlledList::current`]
    /// reads the list in force. A genesis without the field has none.
    #[serde(default)]
    pub controlled: Vec<ControlledDrug>,
    /// How many member organisations must approve a governance proposal
    /// (see [`crate::governance`]); 0, the default, means a majority of the
    /// member organisations at the time of each approval. At most the
    /// number of organisations.
    #[serde(default)]
    pub governance_threshold: u32,
    /// The longest period a patient may share a prescription with an
    /// organisation for, in days ([`crate::tx::GrantAccess`]).
    #[serde(default = "default_max_grant_days")]
    pub max_grant_days: u32,
    /// Days after a prescription is completed, cancelled or expired at the
    /// end of which the organisations' nodes delete their key wraps for its
    /// personal data (crypto-shredding). From then on the chain refuses
    /// grants and access requests for it (`personal_data_erased`). 100 days,
    /// as Germany's E-Rezept keeps a redeemed prescription.
    #[serde(default = "default_personal_data_retention_days")]
    pub personal_data_retention_days: u32,
    /// The regulators' own, longer retention, in days after the same end:
    /// a regulator's node keeps its key wraps until then.
    #[serde(default = "default_regulator_retention_days")]
    pub regulator_retention_days: u32,
}

fn default_max_leader_skew_ms() -> u64 {
    30_000
}

fn default_max_grant_days() -> u32 {
    365
}

fn default_personal_data_retention_days() -> u32 {
    100
}

fn default_regulator_retention_days() -> u32 {
    3650
}

impl Default for Params {
    fn default() -> Self {
        Params {
            controlled_validity_days: 28,
            default_validity_days: 90,
            max_validity_days: 365,
            max_clock_skew_ms: 300_000,
            max_leader_skew_ms: default_max_leader_skew_ms(),
            controlled: Vec::new(),
            governance_threshold: 0,
            max_grant_days: default_max_grant_days(),
            personal_data_retention_days: default_personal_data_retention_days(),
            regulator_retention_days: default_regulator_retention_days(),
        }
    }
}

/// The genesis document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// The consortium's chain id; every signature is bound to it.
    pub chain_id: Label,
    /// When the consortium was founded.
    pub created_at: Timestamp,
    /// Member organisations.
    pub orgs: Vec<OrgDecl>,
    /// Rule parameters.
    #[serde(default)]
    pub params: Params,
}

/// Why a genesis document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// Two organisations share an id.
    #[error("organisation id {0} appears twice")]
    DuplicateOrg(OrgId),
    /// Two nodes share an id or a key.
    #[error("node id or key {0} appears twice")]
    DuplicateNode(String),
    /// Two nodes declare the same TLS key, so a connection presenting it
    /// could not be told apart.
    #[error("TLS key hash {0} appears twice")]
    DuplicateTls(String),
    /// There is no regulator, so sealed content could not be wrapped for one.
    #[error("genesis needs at least one regulator organisation")]
    NoRegulator,
    /// There are no nodes at all.
    #[error("genesis needs at least one node")]
    NoNodes,
    /// More regulators than an issue may carry key wraps for, so nothing
    /// could ever be issued.
    #[error("genesis has more than {max} regulators", max = crate::tx::limits::MAX_REGULATOR_WRAPS)]
    TooManyRegulators,
    /// The controlled list names a drug twice.
    #[error("the controlled drug {0} appears twice")]
    DuplicateControlled(crate::model::AtcCode),
    /// The governance threshold asks for more organisations than there are.
    #[error("the governance threshold {threshold} is more than the {orgs} member organisations")]
    ThresholdTooHigh {
        /// The threshold.
        threshold: u32,
        /// How many organisations there are.
        orgs: usize,
    },
}

impl Genesis {
    /// The organisation `id`, if it is a member of kind `kind`. This is the
    /// rule the chain applies when a patient assigns a prescription to a
    /// pharmacy: an unknown id is `unknown_org`, another kind is
    /// `wrong_org_kind` (with `need` the kind in lower case, e.g. "pharmacy").
    pub fn org_of_kind(&self, id: &OrgId, kind: OrgKind) -> Result<&OrgDecl, Rejection> {
        match self.org(id) {
            None => Err(Rejection::UnknownOrg { org: id.clone() }),
            Some(o) if o.kind != kind => Err(Rejection::WrongOrgKind {
                org: id.clone(),
                need: format!("{kind:?}").to_lowercase(),
            }),
            Some(o) => Ok(o),
        }
    }

    /// Whether `id` is a member pharmacy: the only kind of organisation that
    /// may be assigned, claim and dispense prescriptions.
    pub fn is_pharmacy(&self, id: &OrgId) -> bool {
        self.org(id).is_some_and(|o| o.kind == OrgKind::Pharmacy)
    }

    /// Checks the document's own consistency.
    pub fn validate(&self) -> Result<(), GenesisError> {
        let mut orgs = std::collections::BTreeSet::new();
        let mut ids = std::collections::BTreeSet::new();
        let mut keys = std::collections::BTreeSet::new();
        let mut tls = std::collections::BTreeSet::new();
        for o in &self.orgs {
            if !orgs.insert(o.id.clone()) {
                return Err(GenesisError::DuplicateOrg(o.id.clone()));
            }
            for n in &o.nodes {
                if !ids.insert(n.id) {
                    return Err(GenesisError::DuplicateNode(n.id.to_string()));
                }
                if !keys.insert(n.key) {
                    return Err(GenesisError::DuplicateNode(n.key.to_hex()));
                }
                if !tls.insert(n.tls) {
                    return Err(GenesisError::DuplicateTls(n.tls.to_hex()));
                }
            }
        }
        if !self.orgs.iter().any(|o| o.kind == OrgKind::Regulator) {
            return Err(GenesisError::NoRegulator);
        }
        if self.regulators().count() > crate::tx::limits::MAX_REGULATOR_WRAPS {
            return Err(GenesisError::TooManyRegulators);
        }
        let mut atcs = std::collections::BTreeSet::new();
        for d in &self.params.controlled {
            if !atcs.insert(&d.atc) {
                return Err(GenesisError::DuplicateControlled(d.atc.clone()));
            }
        }
        if ids.is_empty() {
            return Err(GenesisError::NoNodes);
        }
        if self.params.governance_threshold as usize > self.orgs.len() {
            return Err(GenesisError::ThresholdTooHigh {
                threshold: self.params.governance_threshold,
                orgs: self.orgs.len(),
            });
        }
        Ok(())
    }

    /// The hash every chain starts from: block 1's `prev_hash`.
    pub fn hash(&self) -> Hash {
        Hash::of(&[b"rxchain-genesis-v1\0", &encoding::to_bytes(self)])
    }

    /// Looks an organisation up by id.
    pub fn org(&self, id: &OrgId) -> Option<&OrgDecl> {
        self.orgs.iter().find(|o| &o.id == id)
    }

    /// The organisation that declares node `id`.
    pub fn org_of_node(&self, id: NodeId) -> Option<&OrgDecl> {
        self.node(id).map(|(o, _)| o)
    }

    /// The organisation whose admin key this is.
    pub fn org_by_admin(&self, key: &PublicKey) -> Option<&OrgDecl> {
        self.orgs.iter().find(|o| &o.admin_key == key)
    }

    /// A node declaration by id, with its organisation.
    pub fn node(&self, id: NodeId) -> Option<(&OrgDecl, &NodeDecl)> {
        self.orgs
            .iter()
            .flat_map(|o| o.nodes.iter().map(move |n| (o, n)))
            .find(|(_, n)| n.id == id)
    }

    /// The node whose declared TLS key hash is `tls`, with its organisation.
    pub fn node_by_tls(&self, tls: &Hash) -> Option<(&OrgDecl, &NodeDecl)> {
        self.orgs
            .iter()
            .flat_map(|o| o.nodes.iter().map(move |n| (o, n)))
            .find(|(_, n)| &n.tls == tls)
    }

    /// Every regulator organisation.
    pub fn regulators(&self) -> impl Iterator<Item = &OrgDecl> {
        self.orgs.iter().filter(|o| o.kind == OrgKind::Regulator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;
    use crate::model::AtcCode;

    fn org(id: &str, kind: OrgKind, node: Option<NodeId>) -> OrgDecl {
        let key = |what: &str| {
            SecretKey::derive("genesis-test", format!("{id}/{what}").as_bytes()).public()
        };
        OrgDecl {
            id: OrgId::parse(id).unwrap(),
            kind,
            name: Label::parse(id).unwrap(),
            address: Label::parse("1 Test Street").unwrap(),
            admin_key: key("admin"),
            data_key: key("data"),
            nodes: node
                .map(|n| NodeDecl {
                    id: n,
                    key: key("node"),
                    tls: Hash::of(&[b"genesis-test-tls", id.as_bytes()]),
                })
                .into_iter()
                .collect(),
        }
    }

    fn genesis(regulators: usize) -> Genesis {
        let mut orgs = vec![org("hosp", OrgKind::Hospital, Some(1))];
        for i in 0..regulators {
            orgs.push(org(&format!("reg-{i}"), OrgKind::Regulator, None));
        }
        Genesis {
            chain_id: Label::parse("genesis-test").unwrap(),
            created_at: Timestamp(0),
            orgs,
            params: Params::default(),
        }
    }

    #[test]
    fn at_most_as_many_regulators_as_an_issue_can_wrap_for() {
        let max = crate::tx::limits::MAX_REGULATOR_WRAPS;
        assert_eq!(genesis(max).validate(), Ok(()));
        assert_eq!(
            genesis(max + 1).validate(),
            Err(GenesisError::TooManyRegulators)
        );
    }

    #[test]
    fn two_nodes_may_not_share_a_tls_key_and_each_is_found_by_it() {
        let mut g = genesis(1);
        let mut second = org("hosp-2", OrgKind::Hospital, Some(2));
        assert_eq!(g.validate(), Ok(()));
        let first_tls = g.orgs[0].nodes[0].tls;
        assert_eq!(g.node_by_tls(&first_tls).map(|(_, n)| n.id), Some(1));
        assert!(g.node_by_tls(&Hash::of(&[b"stranger"])).is_none());
        second.nodes[0].tls = first_tls;
        g.orgs.push(second);
        assert_eq!(
            g.validate(),
            Err(GenesisError::DuplicateTls(first_tls.to_hex()))
        );
        // The field is required: a node without it does not decode.
        let mut j = serde_json::to_value(genesis(1)).unwrap();
        j["orgs"][0]["nodes"][0]
            .as_object_mut()
            .unwrap()
            .remove("tls");
        assert!(serde_json::from_value::<Genesis>(j).is_err());
    }

    #[test]
    fn the_controlled_list_names_each_drug_once() {
        let drug = |atc: &str, schedule: &str| ControlledDrug {
            atc: AtcCode::parse(atc).unwrap(),
            schedule: Label::parse(schedule).unwrap(),
        };
        let mut g = genesis(1);
        g.params.controlled = vec![drug("N02AA01", "II"), drug("N05BA01", "IV")];
        assert_eq!(g.validate(), Ok(()));
        g.params.controlled.push(drug("N02AA01", "III"));
        assert_eq!(
            g.validate(),
            Err(GenesisError::DuplicateControlled(
                AtcCode::parse("N02AA01").unwrap()
            ))
        );
        // A genesis document without the field has no controlled drugs.
        let mut j = serde_json::to_value(genesis(1)).unwrap();
        j["params"].as_object_mut().unwrap().remove("controlled");
        let back: Genesis = serde_json::from_value(j).unwrap();
        assert!(back.params.controlled.is_empty());
    }
}
