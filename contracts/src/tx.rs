//! Transactions: what can be asked of the chain, who signs it, and the one
//! door ([`SignedTx::verify`]) through which a transaction becomes a
//! [`VerifiedTx`].

use serde::{Deserialize, Serialize};

use crate::crypto::{CryptoError, Hash, PublicKey, SecretKey, Signature};
use crate::encoding;
use crate::model::{AtcCode, Label, OrgId, PrescriptionId, Quantity, Timestamp};
use crate::privacy::{Sealed, WrappedKey};

/// A transaction id: the SHA3-256 of the transaction's signing bytes
/// (domain tag, chain id, kind and canonical encoding).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TxId(pub Hash);

impl core::fmt::Display for TxId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(&self.0, f)
    }
}

/// A staff member's role. The role decides which transactions a key may sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    /// A prescriber at a hospital.
    Practitioner,
    /// A pharmacist at a pharmacy.
    Pharmacist,
    /// A courier at a logistics organisation or a pharmacy.
    Courier,
    /// A regulator's officer.
    RegulatorOfficer,
    /// A person who manages their organisation's staff: their key may
    /// register and revoke staff keys of their own organisation only, and
    /// signs nothing else (no prescriptions, no dispenses, no governance).
    Admin,
    /// An insurer's reviewer: asks patients for access to a prescription
    /// and reads the ones shared with the insurer.
    ClaimsReviewer,
}

impl Role {
    /// The role in words, for sentences.
    pub fn label(self) -> &'static str {
        match self {
            Role::Practitioner => "practitioner",
            Role::Pharmacist => "pharmacist",
            Role::Courier => "courier",
            Role::RegulatorOfficer => "regulator officer",
            Role::Admin => "staff admin",
            Role::ClaimsReviewer => "claims reviewer",
        }
    }
}

/// One prescribed drug. Everything here may be plaintext: the rules need it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Item {
    /// ATC code of the drug.
    pub atc: AtcCode,
    /// Drug name.
    pub name: Label,
    /// Strength, e.g. "500 mg".
    pub strength: Label,
    /// Dose form, e.g. "tablet".
    pub form: Label,
    /// Prescribed quantity for one fill.
    pub quantity: Quantity,
    /// Unit of the quantity, e.g. "tablets".
    pub unit: Label,
    /// A controlled drug: shorter validity, reported separately.
    pub controlled: bool,
}

/// How the patient wants the prescription filled.
///
/// JSON: `{"mode": "pickup", ...}`; canonical encoding: the variant index
/// (see [`crate::encoding`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    serde(tag = "mode", rename_all = "snake_case")
)]
pub enum Fulfilment {
    /// Collect in person at a pharmacy.
    Pickup {
        /// The chosen pharmacy.
        pharmacy: OrgId,
    },
    /// Home delivery by a pharmacy.
    Delivery {
        /// The pharmacy that fills and ships.
        pharmacy: OrgId,
        /// The delivery address, sealed under the prescription's content key.
        address: Sealed,
    },
}

crate::encoding::tagged_in_json!(Fulfilment, "Fulfilment", "mode", {
    Pickup { pharmacy: OrgId },
    Delivery { pharmacy: OrgId, address: Sealed },
});

impl Fulfilment {
    /// The pharmacy named by either mode.
    pub fn pharmacy(&self) -> &OrgId {
        match self {
            Fulfilment::Pickup { pharmacy } | Fulfilment::Delivery { pharmacy, .. } => pharmacy,
        }
    }
}

/// Why a prescription is cancelled: a code, never clinical free text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CancelReason {
    /// The prescriber made a mistake.
    PrescriberError,
    /// The patient asked for it.
    PatientRequest,
    /// The treatment changed.
    TreatmentChanged,
    /// Another prescription replaces it.
    Duplicate,
    /// Anything else.
    Other,
}

/// Why a staff key is revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RevokeReason {
    /// The person left the organisation.
    LeftOrganisation,
    /// The key may be known to someone else.
    KeyCompromised,
    /// The licence was suspended or withdrawn.
    LicenceSuspended,
    /// Anything else.
    Other,
}

/// Delivery and pickup progress events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DeliveryStatus {
    /// Pickup mode: the medicine waits at the counter.
    ReadyForPickup,
    /// Delivery: packed at the pharmacy.
    Packed,
    /// Delivery: handed to the courier.
    Dispatched,
    /// Delivery: on the last leg.
    OutForDelivery,
    /// Delivery: handed to the patient.
    Delivered,
    /// Delivery: could not be delivered.
    Failed,
    /// Delivery: back at the pharmacy after a failure.
    Returned,
}

impl DeliveryStatus {
    /// The status in words, for sentences.
    pub fn label(self) -> &'static str {
        match self {
            DeliveryStatus::ReadyForPickup => "ready for pickup",
            DeliveryStatus::Packed => "packed",
            DeliveryStatus::Dispatched => "dispatched",
            DeliveryStatus::OutForDelivery => "out for delivery",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Returned => "returned",
        }
    }
}

/// Why a delivery failed, or why the parcel went back to the pharmacy.
/// Required on `failed` and `returned` events, refused on any other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DeliveryProblem {
    /// Nobody answered at the address.
    NoOneHome,
    /// The address could not be found or reached.
    AddressNotFound,
    /// The recipient refused the parcel.
    Refused,
    /// The parcel was damaged on the way.
    Damaged,
    /// A controlled medicine, and nobody at the address could take it in
    /// person.
    NeedsHandOverInPerson,
    /// Anything else.
    Other,
}

impl DeliveryProblem {
    /// The problem in words, for sentences.
    pub fn label(self) -> &'static str {
        match self {
            DeliveryProblem::NoOneHome => "no one was at home",
            DeliveryProblem::AddressNotFound => "the address could not be found",
            DeliveryProblem::Refused => "the parcel was refused",
            DeliveryProblem::Damaged => "the parcel was damaged",
            DeliveryProblem::NeedsHandOverInPerson => {
                "it must be handed over in person and no one could take it"
            }
            DeliveryProblem::Other => "another reason",
        }
    }
}

/// How a delivered parcel was handed over: the courier's proof of
/// delivery. Required on `delivered` events, refused on any other. It names
/// nobody: the chain is public to the consortium.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum HandOver {
    /// To the patient, in person.
    ToPatient,
    /// To another adult at the address, in person.
    ToHousehold,
    /// To a neighbour.
    ToNeighbour,
    /// Left in a safe place at the address.
    SafePlace,
    /// Into a parcel locker.
    ParcelLocker,
}

impl HandOver {
    /// The hand-over in words, for sentences.
    pub fn label(self) -> &'static str {
        match self {
            HandOver::ToPatient => "handed to the patient",
            HandOver::ToHousehold => "handed to someone at the address",
            HandOver::ToNeighbour => "left with a neighbour",
            HandOver::SafePlace => "left in a safe place",
            HandOver::ParcelLocker => "put in a parcel locker",
        }
    }

    /// Whether the parcel went from hand to hand at the address, the only
    /// hand-overs allowed for controlled medicines.
    pub fn in_person(self) -> bool {
        matches!(self, HandOver::ToPatient | HandOver::ToHousehold)
    }
}

/// One dispensed line: which item, how much, from which batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DispenseLine {
    /// Index into the prescription's items.
    pub item: u16,
    /// Units handed out in this fill.
    pub quantity: Quantity,
    /// The manufacturer's batch number, for recalls.
    pub batch: Label,
}

/// Issue a new prescription (practitioner).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssueRx {
    /// Chosen randomly by the prescriber's client.
    pub id: PrescriptionId,
    /// The drugs.
    pub items: Vec<Item>,
    /// How many repeat fills are allowed after the first.
    pub repeats: u8,
    /// When the prescription becomes valid.
    pub valid_from: Timestamp,
    /// When it stops being valid; `None` takes the default for its kind.
    pub valid_until: Option<Timestamp>,
    /// The public key derived from the QR access secret.
    pub access_key: PublicKey,
    /// Patient identity and clinical text, encrypted.
    pub sealed: Sealed,
    /// The content key wrapped for the access-secret holder.
    pub key_for_patient: WrappedKey,
    /// The content key wrapped for the issuing hospital's data key.
    pub key_for_hospital: WrappedKey,
    /// The content key wrapped for each regulator's data key.
    pub key_for_regulators: Vec<(OrgId, WrappedKey)>,
}

/// The patient chooses pickup or delivery (signed by the access key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AssignRx {
    /// Which prescription.
    pub id: PrescriptionId,
    /// Pickup or delivery.
    pub fulfilment: Fulfilment,
    /// The access secret wrapped for the chosen pharmacy's data key, so it can
    /// claim without seeing the QR code. Required for delivery.
    pub handover: Option<WrappedKey>,
}

/// A pharmacy locks a prescription for itself (pharmacist).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimRx {
    /// Which prescription.
    pub id: PrescriptionId,
    /// The claiming pharmacy (the pharmacist's own).
    pub pharmacy: OrgId,
    /// Fresh per claim, so a proof cannot be reused.
    #[cfg_attr(feature = "openapi", schema(min_items = 16, max_items = 16))]
    pub nonce: [u8; 16],
    /// Signature by the access key over [`claim_proof_message`].
    pub proof: Signature,
}

/// Cancel a prescription (prescriber or patient).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CancelRx {
    /// Which prescription.
    pub id: PrescriptionId,
    /// Why.
    pub reason: CancelReason,
}

/// Return a claimed prescription (pharmacist of the claiming pharmacy).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseRx {
    /// Which prescription.
    pub id: PrescriptionId,
}

/// Hand out medicine (pharmacist of the claiming pharmacy).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DispenseRx {
    /// Which prescription.
    pub id: PrescriptionId,
    /// What was handed out; may be empty only when `complete` is set.
    pub lines: Vec<DispenseLine>,
    /// Close the prescription after this fill even if allowance remains.
    pub complete: bool,
}

/// Record delivery or pickup progress (pharmacist or courier).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryEvent {
    /// Which prescription.
    pub id: PrescriptionId,
    /// The new status.
    pub status: DeliveryStatus,
    /// Why, for `failed` and `returned` (required there, refused elsewhere).
    pub problem: Option<DeliveryProblem>,
    /// How it was handed over, for `delivered` (required there, refused
    /// elsewhere).
    pub hand_over: Option<HandOver>,
}

/// Register a staff key (the org admin key, or an active staff admin of
/// the same organisation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterStaff {
    /// The staff member's organisation (the admin's own).
    pub org: OrgId,
    /// The staff member's public key.
    pub key: PublicKey,
    /// What the key may sign.
    pub role: Role,
    /// Professional licence number.
    pub licence: Label,
    /// Display name, shown on prescriptions and reports.
    pub name: Label,
}

/// Revoke a staff key (its org's admin key or staff admin, or a regulator).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokeStaff {
    /// The key to revoke.
    pub key: PublicKey,
    /// Why.
    pub reason: RevokeReason,
}

/// Add a drug to the chain's controlled list, change its schedule, or take
/// it off the list (a registered regulator officer). See
/// [`crate::controlled`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetControlled {
    /// The drug.
    pub atc: AtcCode,
    /// Its schedule from now on; `None` takes it off the list.
    pub schedule: Option<Label>,
}

/// The claiming pharmacy hands a home delivery to a logistics member, whose
/// couriers may then record its progress (pharmacist of the claiming
/// pharmacy).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandToCarrier {
    /// Which prescription.
    pub id: PrescriptionId,
    /// The logistics organisation that carries it.
    pub carrier: OrgId,
}

/// Propose a governance decision (an organisation's admin). The proposal's
/// id is this transaction's id; the proposer's organisation is its first
/// approval. See [`crate::governance`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Propose {
    /// What would change.
    pub action: crate::governance::Action,
    /// From this block time on the proposal can no longer be approved.
    pub expires_at: Timestamp,
}

/// Approve an open governance proposal (an organisation's admin, once per
/// organisation). The approval that reaches the threshold executes it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approve {
    /// The proposal: the id of its `propose` transaction.
    pub proposal: TxId,
}

/// An organisation takes one of its own nodes out of the consortium, alone
/// and at once (its admin).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveNode {
    /// The node, declared by the signer's organisation.
    pub node: crate::model::NodeId,
}

/// The patient shares read access to one prescription with a member
/// organisation until `until` (signed by the prescription's access key).
/// It also approves that organisation's pending request, if any. A new
/// grant to the same organisation replaces the previous one.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantAccess {
    /// Which prescription.
    pub id: PrescriptionId,
    /// The organisation that may read it.
    pub org: OrgId,
    /// The end of the grant (block time, exclusive).
    pub until: Timestamp,
    /// The content key wrapped for the organisation's data key.
    pub key_for_org: WrappedKey,
}

/// The patient ends a grant (signed by the prescription's access key).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeAccess {
    /// Which prescription.
    pub id: PrescriptionId,
    /// The organisation whose grant ends.
    pub org: OrgId,
}

/// A staff member asks the patient to share a prescription with their
/// organisation until `until`; the patient approves with a
/// [`GrantAccess`] or refuses with a [`RefuseRequest`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestAccess {
    /// Which prescription.
    pub id: PrescriptionId,
    /// Until when access is asked for.
    pub until: Timestamp,
}

/// The patient refuses an organisation's pending access request (signed by
/// the prescription's access key).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefuseRequest {
    /// Which prescription.
    pub id: PrescriptionId,
    /// The organisation whose request is refused.
    pub org: OrgId,
}

/// A node anchors the head of its access log on the chain (signed by the
/// node's key): after this, the node cannot rewrite its log up to `seq`
/// without the difference showing against the chain.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorAccessLog {
    /// The node whose log it is.
    pub node: crate::model::NodeId,
    /// The last record's sequence number.
    pub seq: u64,
    /// The last record's hash.
    pub head: Hash,
}

/// Every kind of transaction. The variant order is part of the canonical
/// encoding: append new kinds at the end. JSON: `{"kind": "issue", ...}`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    serde(tag = "kind", rename_all = "snake_case")
)]
pub enum TxBody {
    /// See [`RegisterStaff`].
    RegisterStaff(RegisterStaff),
    /// See [`RevokeStaff`].
    RevokeStaff(RevokeStaff),
    /// See [`IssueRx`].
    Issue(IssueRx),
    /// See [`AssignRx`].
    Assign(AssignRx),
    /// See [`ClaimRx`].
    Claim(ClaimRx),
    /// See [`ReleaseRx`].
    Release(ReleaseRx),
    /// See [`DispenseRx`].
    Dispense(DispenseRx),
    /// See [`CancelRx`].
    Cancel(CancelRx),
    /// See [`DeliveryEvent`].
    Delivery(DeliveryEvent),
    /// See [`SetControlled`].
    SetControlled(SetControlled),
    /// See [`HandToCarrier`].
    HandToCarrier(HandToCarrier),
    /// See [`Propose`].
    Propose(Propose),
    /// See [`Approve`].
    Approve(Approve),
    /// See [`LeaveNode`].
    LeaveNode(LeaveNode),
    /// See [`GrantAccess`].
    GrantAccess(GrantAccess),
    /// See [`RevokeAccess`].
    RevokeAccess(RevokeAccess),
    /// See [`RequestAccess`].
    RequestAccess(RequestAccess),
    /// See [`RefuseRequest`].
    RefuseRequest(RefuseRequest),
    /// See [`AnchorAccessLog`].
    AnchorAccessLog(AnchorAccessLog),
}

crate::encoding::tagged_in_json!(TxBody, "TxBody", "kind", {
    RegisterStaff(RegisterStaff),
    RevokeStaff(RevokeStaff),
    Issue(IssueRx),
    Assign(AssignRx),
    Claim(ClaimRx),
    Release(ReleaseRx),
    Dispense(DispenseRx),
    Cancel(CancelRx),
    Delivery(DeliveryEvent),
    SetControlled(SetControlled),
    HandToCarrier(HandToCarrier),
    Propose(Propose),
    Approve(Approve),
    LeaveNode(LeaveNode),
    GrantAccess(GrantAccess),
    RevokeAccess(RevokeAccess),
    RequestAccess(RequestAccess),
    RefuseRequest(RefuseRequest),
    AnchorAccessLog(AnchorAccessLog),
});

impl TxBody {
    /// The kind's name, part of the signature's domain tag.
    pub fn kind(&self) -> &'static str {
        match self {
            TxBody::RegisterStaff(_) => "register_staff",
            TxBody::RevokeStaff(_) => "revoke_staff",
            TxBody::Issue(_) => "issue",
            TxBody::Assign(_) => "assign",
            TxBody::Claim(_) => "claim",
            TxBody::Release(_) => "release",
            TxBody::Dispense(_) => "dispense",
            TxBody::Cancel(_) => "cancel",
            TxBody::Delivery(_) => "delivery",
            TxBody::SetControlled(_) => "set_controlled",
            TxBody::HandToCarrier(_) => "hand_to_carrier",
            TxBody::Propose(_) => "propose",
            TxBody::Approve(_) => "approve",
            TxBody::LeaveNode(_) => "leave_node",
            TxBody::GrantAccess(_) => "grant_access",
            TxBody::RevokeAccess(_) => "revoke_access",
            TxBody::RequestAccess(_) => "request_access",
            TxBody::RefuseRequest(_) => "refuse_request",
            TxBody::AnchorAccessLog(_) => "anchor_access_log",
        }
    }

    /// Whether this kind may change the effective consortium
    /// ([`crate::governance`]).
    pub fn is_governance(&self) -> bool {
        matches!(
            self,
            TxBody::Propose(_) | TxBody::Approve(_) | TxBody::LeaveNode(_)
        )
    }

    /// The prescription this transaction is about, if any.
    pub fn prescription(&self) -> Option<PrescriptionId> {
        match self {
            TxBody::Issue(b) => Some(b.id),
            TxBody::Assign(b) => Some(b.id),
            TxBody::Claim(b) => Some(b.id),
            TxBody::Release(b) => Some(b.id),
            TxBody::Dispense(b) => Some(b.id),
            TxBody::Cancel(b) => Some(b.id),
            TxBody::Delivery(b) => Some(b.id),
            TxBody::HandToCarrier(b) => Some(b.id),
            TxBody::GrantAccess(b) => Some(b.id),
            TxBody::RevokeAccess(b) => Some(b.id),
            TxBody::RequestAccess(b) => Some(b.id),
            TxBody::RefuseRequest(b) => Some(b.id),
            TxBody::RegisterStaff(_)
            | TxBody::AnchorAccessLog(_)
            | TxBody::RevokeStaff(_)
            | TxBody::SetControlled(_)
            | TxBody::Propose(_)
            | TxBody::Approve(_)
            | TxBody::LeaveNode(_) => None,
        }
    }
}

/// Which key wraps a node erases when a retention period ends
/// ([`crate::erasure`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Erasure {
    /// The wraps of personal data for everyone but the regulators: the
    /// patient's, the hospital's, the pharmacy's hand-over, every grantee's.
    Personal,
    /// The regulators' wraps, kept for their longer retention.
    Regulator,
    /// Every wrap (the commitment form).
    All,
}

impl TxBody {
    /// Whether this kind carries key wraps at all.
    pub fn has_wraps(&self) -> bool {
        matches!(
            self,
            TxBody::Issue(_)
                | TxBody::GrantAccess(_)
                | TxBody::Assign(AssignRx {
                    handover: Some(_),
                    ..
                })
        )
    }

    /// The key wraps of one kind, to erase.
    pub fn wraps_mut(&mut self, which: Erasure) -> Vec<&mut WrappedKey> {
        let personal = matches!(which, Erasure::Personal | Erasure::All);
        let regulator = matches!(which, Erasure::Regulator | Erasure::All);
        let mut out = Vec::new();
        match self {
            TxBody::Issue(b) => {
                if personal {
                    out.push(&mut b.key_for_patient);
                    out.push(&mut b.key_for_hospital);
                }
                if regulator {
                    out.extend(b.key_for_regulators.iter_mut().map(|(_, w)| w));
                }
            }
            TxBody::Assign(b) if personal => out.extend(b.handover.as_mut()),
            TxBody::GrantAccess(b) if personal => out.push(&mut b.key_for_org),
            _ => {}
        }
        out
    }

    /// Erases the key wraps of one kind; how many were still present.
    pub fn erase_wraps(&mut self, which: Erasure) -> usize {
        self.wraps_mut(which)
            .into_iter()
            .filter_map(|w| w.sealed.erase().then_some(()))
            .count()
    }

    /// Whether any key wrap is erased: a node admits no new transaction
    /// like that, though blocks may hold them once retention ended.
    pub fn has_erased_wrap(&self) -> bool {
        if !self.has_wraps() {
            return false;
        }
        let mut body = self.clone();
        let erased = body.wraps_mut(Erasure::All).iter().any(|w| !w.is_present());
        erased
    }
}

/// An unsigned transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Transaction {
    /// Who signs: a staff key, an org admin key, or a prescription's access key.
    pub signer: PublicKey,
    /// Chosen by the client so that two otherwise equal requests differ.
    pub nonce: u64,
    /// The client's clock when it signed; refused if far in the future.
    pub created_at: Timestamp,
    /// What is asked.
    pub body: TxBody,
}

impl Transaction {
    /// The domain tag: binds the signature to the consortium and the kind.
    pub fn tag(&self, chain_id: &str) -> String {
        format!("tx/{chain_id}/{}", self.body.kind())
    }

    /// The canonical encoding that is signed: the commitment form, in which
    /// every key wrap's ciphertext is replaced by its digest
    /// ([`crate::privacy::WrapBody::committed`]). So a node may erase a wrap
    /// after retention and the id and signature still verify.
    pub fn signing_bytes(&self) -> Vec<u8> {
        if !self.body.has_wraps() {
            return encoding::to_bytes(self);
        }
        let mut committed = self.clone();
        for w in committed.body.wraps_mut(Erasure::All) {
            w.sealed = w.sealed.committed();
        }
        encoding::to_bytes(&committed)
    }

    /// The transaction id: the digest that is signed.
    pub fn id(&self, chain_id: &str) -> TxId {
        TxId(crate::crypto::signing_digest(
            &self.tag(chain_id),
            &self.signing_bytes(),
        ))
    }

    /// Signs with `key`, which must be the declared signer's.
    pub fn sign(self, chain_id: &str, key: &SecretKey) -> SignedTx {
        let id = self.id(chain_id);
        let signature = key.sign_digest(&id.0);
        SignedTx {
            tx: self,
            signature,
        }
    }
}

/// A transaction with its signature, as submitted and as stored in blocks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedTx {
    /// The transaction.
    pub tx: Transaction,
    /// The signer's signature over [`Transaction::id`].
    pub signature: Signature,
}

/// Why a transaction is not even admitted: it is malformed or its signature
/// is wrong. Rule violations are not errors here; they are [`crate::Rejection`]s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The signature does not verify under the declared signer.
    #[error("the signature does not verify for the declared signer")]
    BadSignature,
    /// A field breaks a structural rule.
    #[error("invalid transaction: {0}")]
    Invalid(String),
}

impl From<CryptoError> for TxError {
    fn from(_: CryptoError) -> Self {
        TxError::BadSignature
    }
}

/// Limits that keep transactions small, in items and in bytes.
///
/// Every variable-length field of every transaction is bounded: the counts
/// and ciphertext sizes here are checked by [`SignedTx::verify`], and the
/// text fields are bounded by their types ([`crate::Label`]: 120 characters,
/// so at most [`MAX_LABEL_BYTES`] bytes; [`crate::OrgId`]: 32 bytes;
/// [`crate::AtcCode`]: 7 bytes), which refuse longer values when a
/// transaction is decoded. Reasons are codes of fixed size. So no valid
/// transaction encodes to more than [`MAX_TX_BYTES`]. `docs/rules.md` lists
/// them all.
pub mod limits {
    /// Items per prescription.
    pub const MAX_ITEMS: usize = 10;
    /// Repeats per prescription.
    pub const MAX_REPEATS: u8 = 12;
    /// Lines per dispense.
    pub const MAX_LINES: usize = 10;
    /// Bytes of the sealed prescription content's ciphertext (tag included).
    pub const MAX_SEALED: usize = 16 * 1024;
    /// Bytes of a sealed delivery address's ciphertext (tag included). The
    /// longest address the rules accept, 500 characters of at most 4 bytes
    /// each, seals to 2016 bytes.
    pub const MAX_SEALED_ADDRESS: usize = 4 * 1024;
    /// Regulator wraps per issue.
    pub const MAX_REGULATOR_WRAPS: usize = 8;
    /// Bytes of every key wrap's ciphertext (`key_for_patient`,
    /// `key_for_hospital`, each regulator's, `handover`): a 32-byte key and
    /// the 16-byte AEAD tag, exactly.
    pub const WRAPPED_KEY_BYTES: usize = 32 + 16;
    /// Bytes of a label (drug names, strengths, forms, units, batch numbers,
    /// licences, staff names, schedules): 120 characters of at most 4 bytes.
    /// Enforced by [`crate::Label`] itself.
    pub const MAX_LABEL_BYTES: usize = 120 * 4;
    /// Nodes a new organisation may declare in one governance proposal.
    pub const MAX_ORG_NODES: usize = 16;
    /// Drugs a governance proposal's parameters may put on the controlled
    /// list.
    pub const MAX_PARAMS_CONTROLLED: usize = 64;
    /// Bytes of an organisation id, enforced by [`crate::OrgId`].
    pub const MAX_ORG_ID_BYTES: usize = 32;

    /// Bytes of a length prefix (postcard varint) for lengths up to `n`.
    const fn len_prefix(n: usize) -> usize {
        if n < 1 << 7 {
            1
        } else if n < 1 << 14 {
            2
        } else if n < 1 << 21 {
            3
        } else {
            4
        }
    }
    /// A public key or signature: fixed-size, no prefix.
    const KEY: usize = 33;
    /// A `u64` varint at its longest.
    const U64: usize = 10;
    /// A label at its longest.
    const LABEL: usize = len_prefix(MAX_LABEL_BYTES) + MAX_LABEL_BYTES;
    /// An organisation id at its longest.
    const ORG: usize = len_prefix(MAX_ORG_ID_BYTES) + MAX_ORG_ID_BYTES;
    /// An item at its longest: ATC code, four labels, quantity (at most
    /// 1,000,000: a 3-byte varint) and the controlled flag.
    const ITEM: usize = (1 + 7) + 4 * LABEL + 3 + 1;
    /// A key wrap at its longest: optional ephemeral key, then the present
    /// form (variant byte, nonce, ciphertext).
    const WRAP: usize = (1 + KEY) + 1 + 12 + len_prefix(WRAPPED_KEY_BYTES) + WRAPPED_KEY_BYTES;
    /// The largest issue body, the largest kind: id, items, repeats, validity,
    /// access key, sealed content and the three kinds of wraps.
    const ISSUE: usize = 16
        + len_prefix(MAX_ITEMS)
        + MAX_ITEMS * ITEM
        + 1
        + U64
        + (1 + U64)
        + KEY
        + 12
        + len_prefix(MAX_SEALED)
        + MAX_SEALED
        + 2 * WRAP
        + len_prefix(MAX_REGULATOR_WRAPS)
        + MAX_REGULATOR_WRAPS * (ORG + WRAP);
    /// The largest encoded [`super::SignedTx`] that [`super::SignedTx::verify`]
    /// accepts: signer, nonce, creation time, kind tag and the largest issue
    /// body, then the 64-byte signature. Every other kind is smaller (a
    /// delivery assignment, the next largest, stays under 5 KiB). A node may
    /// refuse a longer submission before decoding it.
    pub const MAX_TX_BYTES: usize = KEY + U64 + U64 + 1 + ISSUE + 64;
}

impl SignedTx {
    /// Checks structure and signature, once; the only way to a [`VerifiedTx`].
    pub fn verify(self, chain_id: &str) -> Result<VerifiedTx, TxError> {
        check_structure(&self.tx.body)?;
        let bytes = self.tx.signing_bytes();
        // The field limits already bound the size; this guards a field added
        // later without one. The signed form shrinks wraps to digests, so
        // measure the stored form where they differ.
        let stored = if self.tx.body.has_wraps() {
            encoding::to_bytes(&self.tx).len()
        } else {
            bytes.len()
        };
        if stored + 64 > limits::MAX_TX_BYTES {
            return Err(TxError::Invalid(format!(
                "the transaction is larger than {} bytes",
                limits::MAX_TX_BYTES
            )));
        }
        let id = TxId(crate::crypto::signing_digest(
            &self.tx.tag(chain_id),
            &bytes,
        ));
        self.tx.signer.verify_digest(&id.0, &self.signature)?;
        Ok(VerifiedTx { signed: self, id })
    }

    /// [`SignedTx::verify`] for a transaction submitted now: besides, no key
    /// wrap may be erased. Blocks may hold erased wraps once a retention
    /// period ended ([`crate::erasure`]), but nobody signs a new one so.
    pub fn verify_new(self, chain_id: &str) -> Result<VerifiedTx, TxError> {
        if self.tx.body.has_erased_wrap() {
            return Err(TxError::Invalid(
                "a key wrap is erased; a new transaction carries every key wrap whole".into(),
            ));
        }
        self.verify(chain_id)
    }

    /// The canonical encoding of the signed transaction.
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::to_bytes(self)
    }
}

/// Refuses a key wrap whose ciphertext is not exactly a wrapped 32-byte key.
/// An erased wrap passes: its signer committed to the digest, which is all
/// that is left of it (see [`crate::privacy::WrapBody`]).
fn check_wrap(what: &str, w: &WrappedKey) -> Result<(), TxError> {
    match w.sealed.present() {
        Some(s) if s.ciphertext.len() != limits::WRAPPED_KEY_BYTES => {
            Err(TxError::Invalid(format!(
                "{what} must be a wrapped 32-byte key: {} bytes of ciphertext, got {}",
                limits::WRAPPED_KEY_BYTES,
                s.ciphertext.len()
            )))
        }
        _ => Ok(()),
    }
}

fn check_structure(body: &TxBody) -> Result<(), TxError> {
    let bad = |s: &str| Err(TxError::Invalid(s.to_string()));
    match body {
        TxBody::Issue(b) => {
            if b.items.is_empty() || b.items.len() > limits::MAX_ITEMS {
                return bad("a prescription has 1 to 10 items");
            }
            if b.repeats > limits::MAX_REPEATS {
                return bad("at most 12 repeats");
            }
            if b.sealed.ciphertext.len() > limits::MAX_SEALED {
                return bad("sealed content is larger than 16 KiB");
            }
            if b.key_for_regulators.len() > limits::MAX_REGULATOR_WRAPS {
                return bad("too many regulator key wraps");
            }
            check_wrap("the patient's key wrap", &b.key_for_patient)?;
            check_wrap("the hospital's key wrap", &b.key_for_hospital)?;
            for (org, w) in &b.key_for_regulators {
                check_wrap(&format!("the key wrap for regulator {org}"), w)?;
            }
        }
        TxBody::Assign(b) => {
            if let Fulfilment::Delivery { address, .. } = &b.fulfilment {
                if address.ciphertext.len() > limits::MAX_SEALED_ADDRESS {
                    return bad("sealed address is larger than 4 KiB");
                }
                if b.handover.is_none() {
                    return bad(
                        "home delivery needs the access secret handed over to the pharmacy",
                    );
                }
            }
            if let Some(h) = &b.handover {
                check_wrap("the hand-over of the access secret", h)?;
            }
        }
        TxBody::Dispense(b) => {
            crate::rules::check_dispense_lines(&b.lines, b.complete)
                .map_err(|e| TxError::Invalid(e.to_string()))?;
        }
        TxBody::Propose(p) => match &p.action {
            crate::governance::Action::AddOrg { org }
                if org.nodes.len() > limits::MAX_ORG_NODES =>
            {
                return bad("a new organisation declares at most 16 nodes");
            }
            crate::governance::Action::SetParams { params }
                if params.controlled.len() > limits::MAX_PARAMS_CONTROLLED =>
            {
                return bad("parameters list at most 64 controlled drugs");
            }
            _ => {}
        },
        TxBody::GrantAccess(b) => {
            check_wrap("the grantee's key wrap", &b.key_for_org)?;
        }
        TxBody::Delivery(b) => {
            crate::rules::check_delivery_detail(b).map_err(|e| TxError::Invalid(e.to_string()))?
        }
        TxBody::RegisterStaff(_)
        | TxBody::RevokeAccess(_)
        | TxBody::AnchorAccessLog(_)
        | TxBody::RequestAccess(_)
        | TxBody::RefuseRequest(_)
        | TxBody::RevokeStaff(_)
        | TxBody::Approve(_)
        | TxBody::LeaveNode(_)
        | TxBody::Claim(_)
        | TxBody::Release(_)
        | TxBody::Cancel(_)
        | TxBody::SetControlled(_)
        | TxBody::HandToCarrier(_) => {}
    }
    Ok(())
}

/// A transaction whose structure and signature have been checked.
///
/// Its fields are private and it is not deserialisable: the only way to get
/// one is [`SignedTx::verify`], so holding one is proof of verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTx {
    signed: SignedTx,
    id: TxId,
}

impl VerifiedTx {
    /// The transaction id.
    pub fn id(&self) -> TxId {
        self.id
    }
    /// The transaction.
    pub fn tx(&self) -> &Transaction {
        &self.signed.tx
    }
    /// The signed form.
    pub fn signed(&self) -> &SignedTx {
        &self.signed
    }
    /// Gives the signed form back.
    pub fn into_signed(self) -> SignedTx {
        self.signed
    }
}

/// The message an access key signs to prove a pharmacy holds the QR code:
/// the canonical encoding of `(chain_id, prescription id, pharmacy, nonce)`.
pub fn claim_proof_message(
    chain_id: &str,
    id: &PrescriptionId,
    pharmacy: &OrgId,
    nonce: &[u8; 16],
) -> Vec<u8> {
    encoding::to_bytes(&(chain_id, id, pharmacy, nonce))
}

/// The domain tag of claim proofs.
pub const CLAIM_PROOF_TAG: &str = "claim-proof";
