//! Why the chain refuses a transaction: [`Rejection`], one variant per rule,
//! each with a stable machine-readable code.
//!
//! The code is the variant name in snake case. It is derived, not written
//! out, so it cannot drift from the variant; the JSON form uses the same
//! name as its `code` tag (see [`crate::encoding`]), and the unit test below
//! pins every code so that a rename is noticed before clients are.

use crate::model::{AtcCode, NodeId, OrgId, Timestamp};
use crate::tx::{DeliveryStatus, HandOver};

/// Why a transaction was refused. Every variant is a rule of the chain
/// (docs/rules.md names the rule behind each); the code
/// ([`Rejection::code`]) is stable and machine-readable, the `Display` text
/// is for people. JSON: `{"code": "wrong_secret", "attempts": 1}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    serde(tag = "code", rename_all = "snake_case")
)]
pub enum Rejection {
    /// This exact transaction was already processed.
    #[error("this transaction was already submitted")]
    Duplicate,
    /// The transaction claims to be created far in the future.
    #[error("the transaction is dated in the future; check the client clock")]
    FromTheFuture,
    /// The signing key is not registered.
    #[error("the signing key is not registered with any organisation")]
    UnknownSigner,
    /// The signing key was revoked.
    #[error("the signing key was revoked on {at}")]
    SignerRevoked {
        /// Block time of revocation.
        at: Timestamp,
    },
    /// The signer's role may not do this.
    #[error("a {role} may not {action}")]
    WrongRole {
        /// The signer's role.
        role: String,
        /// What was attempted.
        action: String,
    },
    /// The signer is not the admin of the named organisation.
    #[error("only the admin of organisation {org} may do this")]
    NotOrgAdmin {
        /// The organisation.
        org: OrgId,
    },
    /// The named organisation is not in genesis.
    #[error("organisation {org} is not a consortium member")]
    UnknownOrg {
        /// The organisation.
        org: OrgId,
    },
    /// The organisation's kind does not fit.
    #[error("organisation {org} is not a {need}")]
    WrongOrgKind {
        /// The organisation.
        org: OrgId,
        /// The kind needed.
        need: String,
    },
    /// The staff key is already registered.
    #[error("this staff key is already registered")]
    StaffExists,
    /// The staff key is not registered.
    #[error("this staff key is not registered")]
    UnknownStaff,
    /// The staff key is already revoked.
    #[error("this staff key is already revoked")]
    AlreadyRevoked,
    /// Org admin keys are declared in genesis and cannot be revoked here.
    #[error("organisation admin keys cannot be revoked by transaction")]
    CannotRevokeAdmin,
    /// A prescription with this id exists.
    #[error("a prescription with this id already exists")]
    PrescriptionExists,
    /// No prescription has this id.
    #[error("no prescription has this id")]
    UnknownPrescription,
    /// The validity window is empty or inverted.
    #[error("the prescription must be valid for some time after it starts")]
    BadValidity,
    /// The validity window is longer than the rules allow.
    #[error("the validity window is longer than the {max_days} days allowed")]
    ValidityTooLong {
        /// The limit.
        max_days: u32,
    },
    /// The content key is not wrapped for a required party.
    #[error("the content key is not wrapped for {party}")]
    MissingKeyWrap {
        /// Who is missing.
        party: String,
    },
    /// The access key is the signer's: not derived from a fresh secret.
    #[error("the access key must come from a fresh QR secret")]
    BadAccessKey,
    /// The prescription is not valid yet.
    #[error("the prescription is not valid until {from}")]
    NotYetValid {
        /// Start of validity.
        from: Timestamp,
    },
    /// The prescription expired.
    #[error("the prescription expired at {at}")]
    Expired {
        /// End of validity.
        at: Timestamp,
    },
    /// The prescription was cancelled.
    #[error("the prescription was cancelled at {at}")]
    Cancelled {
        /// When.
        at: Timestamp,
    },
    /// The prescription was completed.
    #[error("the prescription was already dispensed at {pharmacy} at {at}")]
    AlreadyDispensed {
        /// Where it was dispensed last.
        pharmacy: OrgId,
        /// When.
        at: Timestamp,
    },
    /// Another pharmacy holds the lock.
    #[error("the prescription is claimed by {pharmacy} since {at}")]
    ClaimedByOther {
        /// The pharmacy holding the lock.
        pharmacy: OrgId,
        /// Since when.
        at: Timestamp,
    },
    /// This pharmacy already holds the lock.
    #[error("this pharmacy already claimed the prescription")]
    AlreadyClaimed,
    /// Nobody holds the lock.
    #[error("the prescription must be claimed by this pharmacy first")]
    NotClaimed,
    /// The patient directed it to another pharmacy.
    #[error("the patient assigned this prescription to {pharmacy}")]
    AssignedElsewhere {
        /// The chosen pharmacy.
        pharmacy: OrgId,
    },
    /// The claim's access proof is wrong: the pharmacy does not hold the QR code.
    #[error("the QR secret is wrong (attempt {attempts})")]
    WrongSecret {
        /// Wrong attempts so far, this one included.
        attempts: u32,
    },
    /// The claim nonce was used before.
    #[error("this claim proof was already used")]
    ProofReused,
    /// Only the prescriber or the patient may cancel.
    #[error("only the prescriber or the patient may cancel")]
    NotPrescriberOrPatient,
    /// Only the patient (the access key) may do this.
    #[error("only the patient may choose pickup or delivery")]
    NotPatient,
    /// A claimed prescription cannot be cancelled or reassigned.
    #[error("the prescription is claimed by a pharmacy and cannot be changed")]
    ClaimedCannotChange,
    /// Nothing can be cancelled after dispensing.
    #[error("the prescription has been dispensed and cannot be cancelled")]
    DispensedCannotCancel,
    /// An item index is out of range.
    #[error("item {item} does not exist on this prescription")]
    BadItem {
        /// The index.
        item: u16,
    },
    /// A dispense would exceed the allowance.
    #[error("item {item}: only {remaining} more may be dispensed")]
    ExceedsAllowance {
        /// The item.
        item: u16,
        /// What remains.
        remaining: u64,
    },
    /// The delivery event breaks the order.
    #[error("delivery event '{}' cannot follow '{}'", attempted.label(), last.map_or("nothing yet", |l| l.label()))]
    DeliveryOutOfOrder {
        /// The last recorded status.
        last: Option<DeliveryStatus>,
        /// The refused status.
        attempted: DeliveryStatus,
    },
    /// The event does not fit the fulfilment mode.
    #[error("delivery event '{}' does not fit a {mode} prescription", attempted.label())]
    WrongFulfilmentMode {
        /// The refused status.
        attempted: DeliveryStatus,
        /// "pickup" or "delivery".
        mode: String,
    },
    /// An item's controlled flag disagrees with the chain's controlled list.
    #[error("item {item} ({atc}) is {} the controlled-drug list, but flagged {}", if *listed { "on" } else { "not on" }, if *listed { "not controlled" } else { "controlled" })]
    ControlledMismatch {
        /// The item's index.
        item: u16,
        /// Its ATC code.
        atc: AtcCode,
        /// Whether the code is on the list.
        listed: bool,
    },
    /// The controlled-drug list already says what was asked.
    #[error("the controlled-drug list already says this about {atc}")]
    ControlledUnchanged {
        /// The drug.
        atc: AtcCode,
    },
    /// A courier of an organisation the delivery was not handed to.
    #[error("{}", match carrier { Some(c) => format!("the delivery was handed to {c}; only its couriers and the pharmacy's staff record it"), None => "the delivery was not handed to a carrier; only the pharmacy's staff record it".to_string() })]
    NotCarrier {
        /// The carrier it was handed to, if any.
        carrier: Option<OrgId>,
    },
    /// The prescription is not for home delivery.
    #[error("the prescription is not for home delivery")]
    NotADelivery,
    /// A controlled medicine may only be handed over in person.
    #[error("a controlled medicine must be handed over in person, to the patient or an adult at the address, not {}", hand_over.label())]
    HandOverInPerson {
        /// The hand-over that was refused.
        hand_over: HandOver,
    },
    /// No governance proposal has this id.
    #[error("no governance proposal has this id")]
    UnknownProposal,
    /// This organisation already approved the proposal.
    #[error("organisation {org} already approved this proposal")]
    AlreadyApproved {
        /// The organisation.
        org: OrgId,
    },
    /// The proposal can no longer be approved, or expires before it is made.
    #[error("the proposal expired at {at}")]
    ProposalExpired {
        /// Its expiry.
        at: Timestamp,
    },
    /// The proposal was already executed.
    #[error("the proposal was already executed at {at}")]
    ProposalExecuted {
        /// When.
        at: Timestamp,
    },
    /// The node is not declared in the consortium.
    #[error("node {node} is not declared in the consortium")]
    UnknownNode {
        /// The node.
        node: NodeId,
    },
    /// The node is declared by another organisation.
    #[error("node {node} belongs to {org}; an organisation takes only its own nodes out alone")]
    NotYourNode {
        /// The node.
        node: NodeId,
        /// The organisation that declares it.
        org: OrgId,
    },
    /// A node with this id or key is already declared.
    #[error("node {node}'s id or key is already declared")]
    NodeExists {
        /// The node.
        node: NodeId,
    },
    /// An organisation with this id is already a member.
    #[error("organisation {org} is already a member")]
    OrgExists {
        /// The organisation.
        org: OrgId,
    },
    /// The key is already an admin, data or staff key of the consortium.
    #[error("this key is already in use in the consortium")]
    KeyInUse,
    /// The decision would leave a consortium that breaks genesis's rules
    /// (no node left, no regulator, a threshold above the organisations).
    #[error("the decision would leave an invalid consortium: {reason}")]
    InvalidConsortium {
        /// What would be wrong.
        reason: String,
    },
    /// A grant or access request ends before the block time or later than
    /// the longest period the consortium allows.
    #[error("access may be shared from now for at most {max_days} days")]
    GrantPeriodInvalid {
        /// `Params::max_grant_days`.
        max_days: u32,
    },
    /// The patient never shared this prescription with the organisation.
    #[error("the prescription is not shared with {org}")]
    NoGrant {
        /// The organisation.
        org: OrgId,
    },
    /// The patient already revoked the organisation's access.
    #[error("access of {org} was revoked at {at}")]
    GrantRevoked {
        /// The organisation.
        org: OrgId,
        /// When.
        at: Timestamp,
    },
    /// The organisation's access already ended.
    #[error("access of {org} ended at {at}")]
    GrantExpired {
        /// The organisation.
        org: OrgId,
        /// When.
        at: Timestamp,
    },
    /// The prescription's retention period is over: its personal data was
    /// erased, so nothing can be shared or requested any more.
    #[error("the prescription's personal data was erased at {at}")]
    PersonalDataErased {
        /// When the retention period ended.
        at: Timestamp,
    },
    /// The organisation already has a request waiting for the patient.
    #[error("{org} already asked for access; the patient has not answered yet")]
    RequestPending {
        /// The organisation.
        org: OrgId,
    },
    /// The organisation already has access.
    #[error("{org} already has access until {until}")]
    AlreadyGranted {
        /// The organisation.
        org: OrgId,
        /// Until when.
        until: Timestamp,
    },
    /// No request of the organisation waits for an answer.
    #[error("{org} has no access request waiting for an answer")]
    NoPendingRequest {
        /// The organisation.
        org: OrgId,
    },
    /// An access-log anchor must move the node's anchored head forward.
    #[error("the node's access log is already anchored up to record {seq}")]
    AnchorNotNewer {
        /// The sequence number anchored so far.
        seq: u64,
    },
}

crate::encoding::tagged_in_json!(Rejection, "Rejection", "code", {
    Duplicate,
    FromTheFuture,
    UnknownSigner,
    SignerRevoked { at: Timestamp },
    WrongRole { role: String, action: String },
    NotOrgAdmin { org: OrgId },
    UnknownOrg { org: OrgId },
    WrongOrgKind { org: OrgId, need: String },
    StaffExists,
    UnknownStaff,
    AlreadyRevoked,
    CannotRevokeAdmin,
    PrescriptionExists,
    UnknownPrescription,
    BadValidity,
    ValidityTooLong { max_days: u32 },
    MissingKeyWrap { party: String },
    BadAccessKey,
    NotYetValid { from: Timestamp },
    Expired { at: Timestamp },
    Cancelled { at: Timestamp },
    AlreadyDispensed { pharmacy: OrgId, at: Timestamp },
    ClaimedByOther { pharmacy: OrgId, at: Timestamp },
    AlreadyClaimed,
    NotClaimed,
    AssignedElsewhere { pharmacy: OrgId },
    WrongSecret { attempts: u32 },
    ProofReused,
    NotPrescriberOrPatient,
    NotPatient,
    ClaimedCannotChange,
    DispensedCannotCancel,
    BadItem { item: u16 },
    ExceedsAllowance { item: u16, remaining: u64 },
    DeliveryOutOfOrder { last: Option<DeliveryStatus>, attempted: DeliveryStatus },
    WrongFulfilmentMode { attempted: DeliveryStatus, mode: String },
    ControlledMismatch { item: u16, atc: AtcCode, listed: bool },
    ControlledUnchanged { atc: AtcCode },
    NotCarrier { carrier: Option<OrgId> },
    NotADelivery,
    HandOverInPerson { hand_over: HandOver },
    UnknownProposal,
    AlreadyApproved { org: OrgId },
    ProposalExpired { at: Timestamp },
    ProposalExecuted { at: Timestamp },
    UnknownNode { node: NodeId },
    NotYourNode { node: NodeId, org: OrgId },
    NodeExists { node: NodeId },
    OrgExists { org: OrgId },
    KeyInUse,
    InvalidConsortium { reason: String },
    GrantPeriodInvalid { max_days: u32 },
    NoGrant { org: OrgId },
    GrantRevoked { org: OrgId, at: Timestamp },
    GrantExpired { org: OrgId, at: Timestamp },
    PersonalDataErased { at: Timestamp },
    RequestPending { org: OrgId },
    AlreadyGranted { org: OrgId, until: Timestamp },
    NoPendingRequest { org: OrgId },
    AnchorNotNewer { seq: u64 },
});

impl Rejection {
    /// The stable machine-readable code, e.g. `already_dispensed`.
    pub fn code(&self) -> &'static str {
        self.into()
    }

    /// Whether this is an admission code: a refusal of the signer itself
    /// (unknown, revoked, of the wrong role, not the organisation's admin,
    /// not the prescription's patient or prescriber). The mempool refuses
    /// such a transaction with [`crate::lifecycle::admissible`] and it is
    /// never written to the chain; `apply` still refuses it the same way
    /// should one reach a block (a revocation between admission and the
    /// block, say). Every other code is a rule refusal of a legitimate
    /// signer, kept on the chain as audit.
    pub fn is_admission(&self) -> bool {
        matches!(
            self,
            Rejection::UnknownSigner
                | Rejection::SignerRevoked { .. }
                | Rejection::WrongRole { .. }
                | Rejection::NotOrgAdmin { .. }
                | Rejection::NotPatient
                | Rejection::NotPrescriberOrPatient
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One value of every variant, with the code clients rely on. Written out
    /// by hand on purpose: this is the contract with API clients.
    fn pinned() -> Vec<(Rejection, &'static str)> {
        let o = OrgId::parse("org").unwrap();
        let t = Timestamp(1);
        let s = DeliveryStatus::Packed;
        vec![
            (Rejection::Duplicate, "duplicate"),
            (Rejection::FromTheFuture, "from_the_future"),
            (Rejection::UnknownSigner, "unknown_signer"),
            (Rejection::SignerRevoked { at: t }, "signer_revoked"),
            (
                Rejection::WrongRole {
                    role: String::new(),
                    action: String::new(),
                },
                "wrong_role",
            ),
            (Rejection::NotOrgAdmin { org: o.clone() }, "not_org_admin"),
            (Rejection::UnknownOrg { org: o.clone() }, "unknown_org"),
            (
                Rejection::WrongOrgKind {
                    org: o.clone(),
                    need: String::new(),
                },
                "wrong_org_kind",
            ),
            (Rejection::StaffExists, "staff_exists"),
            (Rejection::UnknownStaff, "unknown_staff"),
            (Rejection::AlreadyRevoked, "already_revoked"),
            (Rejection::CannotRevokeAdmin, "cannot_revoke_admin"),
            (Rejection::PrescriptionExists, "prescription_exists"),
            (Rejection::UnknownPrescription, "unknown_prescription"),
            (Rejection::BadValidity, "bad_validity"),
            (
                Rejection::ValidityTooLong { max_days: 1 },
                "validity_too_long",
            ),
            (
                Rejection::MissingKeyWrap {
                    party: String::new(),
                },
                "missing_key_wrap",
            ),
            (Rejection::BadAccessKey, "bad_access_key"),
            (Rejection::NotYetValid { from: t }, "not_yet_valid"),
            (Rejection::Expired { at: t }, "expired"),
            (Rejection::Cancelled { at: t }, "cancelled"),
            (
                Rejection::AlreadyDispensed {
                    pharmacy: o.clone(),
                    at: t,
                },
                "already_dispensed",
            ),
            (
                Rejection::ClaimedByOther {
                    pharmacy: o.clone(),
                    at: t,
                },
                "claimed_by_other",
            ),
            (Rejection::AlreadyClaimed, "already_claimed"),
            (Rejection::NotClaimed, "not_claimed"),
            (
                Rejection::AssignedElsewhere {
                    pharmacy: o.clone(),
                },
                "assigned_elsewhere",
            ),
            (Rejection::WrongSecret { attempts: 1 }, "wrong_secret"),
            (Rejection::ProofReused, "proof_reused"),
            (
                Rejection::NotPrescriberOrPatient,
                "not_prescriber_or_patient",
            ),
            (Rejection::NotPatient, "not_patient"),
            (Rejection::ClaimedCannotChange, "claimed_cannot_change"),
            (Rejection::DispensedCannotCancel, "dispensed_cannot_cancel"),
            (Rejection::BadItem { item: 0 }, "bad_item"),
            (
                Rejection::ExceedsAllowance {
                    item: 0,
                    remaining: 0,
                },
                "exceeds_allowance",
            ),
            (
                Rejection::DeliveryOutOfOrder {
                    last: None,
                    attempted: s,
                },
                "delivery_out_of_order",
            ),
            (
                Rejection::WrongFulfilmentMode {
                    attempted: s,
                    mode: String::new(),
                },
                "wrong_fulfilment_mode",
            ),
            (
                Rejection::ControlledMismatch {
                    item: 0,
                    atc: AtcCode::parse("N02AA01").unwrap(),
                    listed: true,
                },
                "controlled_mismatch",
            ),
            (
                Rejection::ControlledUnchanged {
                    atc: AtcCode::parse("N02AA01").unwrap(),
                },
                "controlled_unchanged",
            ),
            (Rejection::NotCarrier { carrier: None }, "not_carrier"),
            (Rejection::NotADelivery, "not_a_delivery"),
            (
                Rejection::HandOverInPerson {
                    hand_over: HandOver::SafePlace,
                },
                "hand_over_in_person",
            ),
            (Rejection::UnknownProposal, "unknown_proposal"),
            (
                Rejection::AlreadyApproved { org: o.clone() },
                "already_approved",
            ),
            (Rejection::ProposalExpired { at: t }, "proposal_expired"),
            (Rejection::ProposalExecuted { at: t }, "proposal_executed"),
            (Rejection::UnknownNode { node: 1 }, "unknown_node"),
            (
                Rejection::NotYourNode {
                    node: 1,
                    org: o.clone(),
                },
                "not_your_node",
            ),
            (Rejection::NodeExists { node: 1 }, "node_exists"),
            (Rejection::OrgExists { org: o.clone() }, "org_exists"),
            (Rejection::KeyInUse, "key_in_use"),
            (
                Rejection::InvalidConsortium {
                    reason: String::new(),
                },
                "invalid_consortium",
            ),
            (
                Rejection::GrantPeriodInvalid { max_days: 1 },
                "grant_period_invalid",
            ),
            (Rejection::NoGrant { org: o.clone() }, "no_grant"),
            (
                Rejection::GrantRevoked {
                    org: o.clone(),
                    at: t,
                },
                "grant_revoked",
            ),
            (
                Rejection::GrantExpired {
                    org: o.clone(),
                    at: t,
                },
                "grant_expired",
            ),
            (
                Rejection::PersonalDataErased { at: t },
                "personal_data_erased",
            ),
            (
                Rejection::RequestPending { org: o.clone() },
                "request_pending",
            ),
            (
                Rejection::AlreadyGranted {
                    org: o.clone(),
                    until: t,
                },
                "already_granted",
            ),
            (
                Rejection::NoPendingRequest { org: o.clone() },
                "no_pending_request",
            ),
            (Rejection::AnchorNotNewer { seq: 1 }, "anchor_not_newer"),
        ]
    }

    #[test]
    fn every_code_is_pinned_byte_for_byte() {
        let all = pinned();
        // The ledger in tests/lifecycle.rs notices a new variant; this count
        // notices one dropped from this list.
        assert_eq!(all.len(), 60);
        for (r, code) in &all {
            assert_eq!(r.code(), *code, "the code of {r:?} changed");
        }
        let distinct: std::collections::BTreeSet<&str> = all.iter().map(|(_, c)| *c).collect();
        assert_eq!(distinct.len(), all.len(), "two variants share a code");
    }

    #[test]
    fn admission_codes_are_exactly_the_signer_refusals() {
        let admission: Vec<&str> = pinned()
            .into_iter()
            .filter(|(r, _)| r.is_admission())
            .map(|(_, c)| c)
            .collect();
        assert_eq!(
            admission,
            [
                "unknown_signer",
                "signer_revoked",
                "wrong_role",
                "not_org_admin",
                "not_prescriber_or_patient",
                "not_patient"
            ]
        );
    }

    #[test]
    fn the_json_tag_is_the_code() {
        for (r, code) in pinned() {
            let j = serde_json::to_value(&r).unwrap();
            assert_eq!(j["code"], code);
        }
    }
}
