//! The one transition function: [`apply`] takes state, a verified transaction
//! and the block time, and either writes the transaction's effects or refuses
//! it with a named [`Rejection`].
//!
//! Refusals still leave a trace on purpose: the transaction id is marked seen
//! (so a replay gets the same outcome), and refusals about a prescription are
//! counted on it, wrong access proofs separately, so regulators see attempts.

use crate::crypto::PublicKey;
use crate::genesis::{Genesis, OrgDecl, OrgKind};
use crate::model::{OrgId, PrescriptionId, Timestamp};
use crate::state::{
    claim_nonce_key, rx_key, seen_key, staff_key, ClaimInfo, CorruptState, DeliveryRecord, Fill,
    Overlay, PrescriptionRecord, Revocation, RxStatus, StaffRecord,
};
use crate::tx::{
    claim_proof_message, DeliveryStatus, Fulfilment, Role, TxBody, VerifiedTx, CLAIM_PROOF_TAG,
};

/// Why a transaction was refused. Every variant is a rule of PRODUCT.md; the
/// code ([`Rejection::code`]) is stable and machine-readable, the `Display`
/// text is for people. JSON: `{"code": "wrong_secret", "attempts": 1}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
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
});

impl Rejection {
    /// The stable machine-readable code, e.g. `already_dispensed`.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Duplicate => "duplicate",
            Rejection::FromTheFuture => "from_the_future",
            Rejection::UnknownSigner => "unknown_signer",
            Rejection::SignerRevoked { .. } => "signer_revoked",
            Rejection::WrongRole { .. } => "wrong_role",
            Rejection::NotOrgAdmin { .. } => "not_org_admin",
            Rejection::UnknownOrg { .. } => "unknown_org",
            Rejection::WrongOrgKind { .. } => "wrong_org_kind",
            Rejection::StaffExists => "staff_exists",
            Rejection::UnknownStaff => "unknown_staff",
            Rejection::AlreadyRevoked => "already_revoked",
            Rejection::CannotRevokeAdmin => "cannot_revoke_admin",
            Rejection::PrescriptionExists => "prescription_exists",
            Rejection::UnknownPrescription => "unknown_prescription",
            Rejection::BadValidity => "bad_validity",
            Rejection::ValidityTooLong { .. } => "validity_too_long",
            Rejection::MissingKeyWrap { .. } => "missing_key_wrap",
            Rejection::BadAccessKey => "bad_access_key",
            Rejection::NotYetValid { .. } => "not_yet_valid",
            Rejection::Expired { .. } => "expired",
            Rejection::Cancelled { .. } => "cancelled",
            Rejection::AlreadyDispensed { .. } => "already_dispensed",
            Rejection::ClaimedByOther { .. } => "claimed_by_other",
            Rejection::AlreadyClaimed => "already_claimed",
            Rejection::NotClaimed => "not_claimed",
            Rejection::AssignedElsewhere { .. } => "assigned_elsewhere",
            Rejection::WrongSecret { .. } => "wrong_secret",
            Rejection::ProofReused => "proof_reused",
            Rejection::NotPrescriberOrPatient => "not_prescriber_or_patient",
            Rejection::NotPatient => "not_patient",
            Rejection::ClaimedCannotChange => "claimed_cannot_change",
            Rejection::DispensedCannotCancel => "dispensed_cannot_cancel",
            Rejection::BadItem { .. } => "bad_item",
            Rejection::ExceedsAllowance { .. } => "exceeds_allowance",
            Rejection::DeliveryOutOfOrder { .. } => "delivery_out_of_order",
            Rejection::WrongFulfilmentMode { .. } => "wrong_fulfilment_mode",
        }
    }
}

/// The result of one transaction, recorded in the block beside it.
///
/// JSON: `{"result": "applied"}` or `{"result": "refused", "reason": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The transaction took effect.
    Applied,
    /// The transaction was refused; it had no effect beyond being recorded.
    Refused {
        /// Why.
        reason: Rejection,
    },
}

crate::encoding::tagged_in_json!(Outcome, "Outcome", "result", {
    Applied,
    Refused { reason: Rejection },
});

impl Outcome {
    /// Whether it took effect.
    pub fn is_applied(&self) -> bool {
        matches!(self, Outcome::Applied)
    }
}

/// Who signed, as far as the rules care.
enum Signer<'g> {
    Admin(&'g OrgDecl),
    Staff(StaffRecord),
    /// Not a registered key: possibly a prescription's access key.
    Other,
}

fn resolve_signer<'g>(
    g: &'g Genesis,
    st: &Overlay<'_>,
    key: &PublicKey,
) -> Result<Signer<'g>, CorruptState> {
    if let Some(org) = g.org_by_admin(key) {
        return Ok(Signer::Admin(org));
    }
    Ok(match st.get::<StaffRecord>(&staff_key(key))? {
        Some(s) => Signer::Staff(s),
        None => Signer::Other,
    })
}

/// Applies one verified transaction at block time `now`.
///
/// Returns the outcome; the overlay holds the effects. A refusal writes only
/// the seen marker and the prescription's refusal counters. `Err` means the
/// stored state itself is unreadable, which no transaction can cause.
pub fn apply(
    g: &Genesis,
    st: &mut Overlay<'_>,
    vtx: &VerifiedTx,
    now: Timestamp,
) -> Result<Outcome, CorruptState> {
    let seen = seen_key(&vtx.id());
    if st.get_raw(&seen).is_some() {
        // A replay changes nothing at all, not even counters.
        return Ok(Outcome::Refused {
            reason: Rejection::Duplicate,
        });
    }
    st.writes.insert(seen, Some(Vec::new()));
    // Effects are staged in a scratch overlay and merged only on success, so
    // a refusal can never leave half its writes behind.
    let result = {
        let mut scratch = Overlay::new(&*st);
        let r = apply_inner(g, &mut scratch, vtx, now)?;
        (r, scratch.writes)
    };
    match result {
        (Ok(()), writes) => {
            st.writes.extend(writes);
            Ok(Outcome::Applied)
        }
        (Err(reason), _) => {
            if let Some(id) = vtx.tx().body.prescription() {
                if let Some(mut rx) = st.get::<PrescriptionRecord>(&rx_key(&id))? {
                    rx.refused_attempts += 1;
                    if let Rejection::WrongSecret { attempts } = reason {
                        rx.wrong_proofs = attempts;
                    }
                    st.put(rx_key(&id), &rx);
                }
            }
            Ok(Outcome::Refused { reason })
        }
    }
}

impl crate::state::StateRead for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.get_raw(key)
    }
}

type Step = Result<Result<(), Rejection>, CorruptState>;

fn refuse(r: Rejection) -> Step {
    Ok(Err(r))
}

fn apply_inner(g: &Genesis, st: &mut Overlay<'_>, vtx: &VerifiedTx, now: Timestamp) -> Step {
    let tx = vtx.tx();
    if tx.created_at.0 > now.0.saturating_add(g.params.max_clock_skew_ms) {
        return refuse(Rejection::FromTheFuture);
    }
    let signer = resolve_signer(g, st, &tx.signer)?;
    if let Signer::Staff(s) = &signer {
        if let Some(r) = &s.revoked {
            return refuse(Rejection::SignerRevoked { at: r.at });
        }
    }
    match &tx.body {
        TxBody::RegisterStaff(b) => {
            let Signer::Admin(org) = signer else {
                return refuse(Rejection::NotOrgAdmin { org: b.org.clone() });
            };
            if org.id != b.org {
                return refuse(Rejection::NotOrgAdmin { org: b.org.clone() });
            }
            let fits = matches!(
                (org.kind, b.role),
                (OrgKind::Hospital, Role::Practitioner)
                    | (OrgKind::Pharmacy, Role::Pharmacist)
                    | (OrgKind::Pharmacy, Role::Courier)
                    | (OrgKind::Logistics, Role::Courier)
                    | (OrgKind::Regulator, Role::RegulatorOfficer)
            );
            if !fits {
                return refuse(Rejection::WrongOrgKind {
                    org: org.id.clone(),
                    need: format!("fit for a {:?}", b.role).to_lowercase(),
                });
            }
            if st.get_raw(&staff_key(&b.key)).is_some() || g.org_by_admin(&b.key).is_some() {
                return refuse(Rejection::StaffExists);
            }
            st.put(
                staff_key(&b.key),
                &StaffRecord {
                    key: b.key,
                    org: b.org.clone(),
                    role: b.role,
                    licence: b.licence.clone(),
                    name: b.name.clone(),
                    registered_at: now,
                    revoked: None,
                },
            );
            Ok(Ok(()))
        }
        TxBody::RevokeStaff(b) => {
            if g.org_by_admin(&b.key).is_some() {
                return refuse(Rejection::CannotRevokeAdmin);
            }
            let Some(mut target) = st.get::<StaffRecord>(&staff_key(&b.key))? else {
                return refuse(Rejection::UnknownStaff);
            };
            let allowed = match &signer {
                Signer::Admin(org) => org.id == target.org || org.kind == OrgKind::Regulator,
                Signer::Staff(s) => s.role == Role::RegulatorOfficer,
                Signer::Other => return refuse(Rejection::UnknownSigner),
            };
            if !allowed {
                return refuse(Rejection::NotOrgAdmin {
                    org: target.org.clone(),
                });
            }
            if target.revoked.is_some() {
                return refuse(Rejection::AlreadyRevoked);
            }
            target.revoked = Some(Revocation {
                at: now,
                reason: b.reason,
                by: tx.signer,
            });
            st.put(staff_key(&b.key), &target);
            Ok(Ok(()))
        }
        TxBody::Issue(b) => {
            let staff = need_role(&signer, Role::Practitioner, "issue prescriptions")?;
            let staff = match staff {
                Ok(s) => s,
                Err(r) => return refuse(r),
            };
            let key = rx_key(&b.id);
            if st.get_raw(&key).is_some() {
                return refuse(Rejection::PrescriptionExists);
            }
            if b.access_key == tx.signer {
                return refuse(Rejection::BadAccessKey);
            }
            let controlled = b.items.iter().any(|i| i.controlled);
            let (default_days, max_days) = if controlled {
                (
                    g.params.controlled_validity_days,
                    g.params.controlled_validity_days,
                )
            } else {
                (g.params.default_validity_days, g.params.max_validity_days)
            };
            let valid_until = b
                .valid_until
                .unwrap_or(b.valid_from.plus_days(default_days));
            if valid_until <= b.valid_from || valid_until <= now {
                return refuse(Rejection::BadValidity);
            }
            if valid_until > b.valid_from.plus_days(max_days) {
                return refuse(Rejection::ValidityTooLong { max_days });
            }
            if let Some(reg) = g
                .regulators()
                .find(|r| !b.key_for_regulators.iter().any(|(o, _)| o == &r.id))
            {
                return refuse(Rejection::MissingKeyWrap {
                    party: format!("regulator {}", reg.id),
                });
            }
            if b.key_for_patient.ephemeral.is_some() || b.key_for_hospital.ephemeral.is_none() {
                return refuse(Rejection::MissingKeyWrap {
                    party: "patient and hospital".into(),
                });
            }
            st.put(
                key,
                &PrescriptionRecord {
                    id: b.id,
                    hospital: staff.org.clone(),
                    prescriber: tx.signer,
                    issue_tx: vtx.id(),
                    issued_at: now,
                    valid_from: b.valid_from,
                    valid_until,
                    items: b.items.clone(),
                    repeats: b.repeats,
                    controlled,
                    access_key: b.access_key,
                    status: RxStatus::Issued,
                    fulfilment: None,
                    claim: None,
                    dispensed: vec![0; b.items.len()],
                    fills: Vec::new(),
                    delivery: Vec::new(),
                    completed_at: None,
                    cancelled: None,
                    wrong_proofs: 0,
                    refused_attempts: 0,
                },
            );
            Ok(Ok(()))
        }
        TxBody::Assign(b) => {
            let Some(mut rx) = load(st, &b.id)? else {
                return refuse(Rejection::UnknownPrescription);
            };
            if tx.signer != rx.access_key {
                return refuse(Rejection::NotPatient);
            }
            if let Err(r) = check_open(&rx, now) {
                return refuse(r);
            }
            if rx.status == RxStatus::Claimed {
                return refuse(Rejection::ClaimedCannotChange);
            }
            let pharmacy = b.fulfilment.pharmacy();
            if let Err(r) = need_org(g, pharmacy, OrgKind::Pharmacy) {
                return refuse(r);
            }
            rx.fulfilment = Some(b.fulfilment.clone());
            rx.status = RxStatus::Assigned;
            st.put(rx_key(&b.id), &rx);
            Ok(Ok(()))
        }
        TxBody::Claim(b) => {
            let staff = match need_role(&signer, Role::Pharmacist, "claim prescriptions")? {
                Ok(s) => s,
                Err(r) => return refuse(r),
            };
            let Some(mut rx) = load(st, &b.id)? else {
                return refuse(Rejection::UnknownPrescription);
            };
            if staff.org != b.pharmacy {
                return refuse(Rejection::WrongOrgKind {
                    org: b.pharmacy.clone(),
                    need: format!("the pharmacist's own pharmacy ({})", staff.org),
                });
            }
            // The proof comes first: without the QR code, nothing else about
            // the prescription is the claimant's business.
            let msg = claim_proof_message(&g.chain_id.to_string(), &b.id, &b.pharmacy, &b.nonce);
            if rx
                .access_key
                .verify(CLAIM_PROOF_TAG, &msg, &b.proof)
                .is_err()
            {
                return refuse(Rejection::WrongSecret {
                    attempts: rx.wrong_proofs + 1,
                });
            }
            let nonce_key = claim_nonce_key(&b.id, &b.nonce);
            if st.get_raw(&nonce_key).is_some() {
                return refuse(Rejection::ProofReused);
            }
            if let Err(r) = check_open(&rx, now) {
                return refuse(r);
            }
            if let Some(c) = &rx.claim {
                if rx.status == RxStatus::Claimed {
                    return refuse(if c.pharmacy == b.pharmacy {
                        Rejection::AlreadyClaimed
                    } else {
                        Rejection::ClaimedByOther {
                            pharmacy: c.pharmacy.clone(),
                            at: c.at,
                        }
                    });
                }
            }
            if let Some(f) = &rx.fulfilment {
                if f.pharmacy() != &b.pharmacy {
                    return refuse(Rejection::AssignedElsewhere {
                        pharmacy: f.pharmacy().clone(),
                    });
                }
            }
            st.writes.insert(nonce_key, Some(Vec::new()));
            rx.claim = Some(ClaimInfo {
                pharmacy: b.pharmacy.clone(),
                by: tx.signer,
                at: now,
            });
            rx.status = RxStatus::Claimed;
            st.put(rx_key(&b.id), &rx);
            Ok(Ok(()))
        }
        TxBody::Release(b) => {
            let staff = match need_role(&signer, Role::Pharmacist, "release prescriptions")? {
                Ok(s) => s,
                Err(r) => return refuse(r),
            };
            let Some(mut rx) = load(st, &b.id)? else {
                return refuse(Rejection::UnknownPrescription);
            };
            if let Err(r) = holds_lock(&rx, &staff.org) {
                return refuse(r);
            }
            rx.claim = None;
            // A pharmacy that returns a prescription also returns the
            // patient's assignment to it; the patient may choose again.
            rx.fulfilment = None;
            // The pickup or delivery trail belonged to that fulfilment: the
            // next pharmacy starts its own (and cannot dispatch a parcel it
            // never packed). The blocks keep the old events for the audit.
            rx.delivery.clear();
            rx.status = RxStatus::Issued;
            st.put(rx_key(&b.id), &rx);
            Ok(Ok(()))
        }
        TxBody::Dispense(b) => {
            let staff = match need_role(&signer, Role::Pharmacist, "dispense")? {
                Ok(s) => s,
                Err(r) => return refuse(r),
            };
            let Some(mut rx) = load(st, &b.id)? else {
                return refuse(Rejection::UnknownPrescription);
            };
            if let Err(r) = holds_lock(&rx, &staff.org) {
                return refuse(r);
            }
            if rx.is_expired(now) {
                return refuse(Rejection::Expired { at: rx.valid_until });
            }
            if now < rx.valid_from {
                return refuse(Rejection::NotYetValid {
                    from: rx.valid_from,
                });
            }
            let mut dispensed = rx.dispensed.clone();
            for line in &b.lines {
                let i = usize::from(line.item);
                if i >= rx.items.len() {
                    return refuse(Rejection::BadItem { item: line.item });
                }
                let after = u64::from(dispensed[i]) + u64::from(line.quantity.get());
                if after > rx.allowance(i) {
                    // What remains on the prescription, not after the earlier
                    // lines of this refused fill: none of them took effect.
                    return refuse(Rejection::ExceedsAllowance {
                        item: line.item,
                        remaining: rx.allowance(i) - u64::from(rx.dispensed[i]),
                    });
                }
                // Fits in u32: the allowance is at most 1e6 * 13.
                dispensed[i] = after as u32;
            }
            rx.dispensed = dispensed;
            if !b.lines.is_empty() {
                rx.fills.push(Fill {
                    pharmacy: staff.org.clone(),
                    by: tx.signer,
                    at: now,
                    lines: b
                        .lines
                        .iter()
                        .map(|l| (l.item, l.quantity.get(), l.batch.clone()))
                        .collect(),
                    tx: vtx.id(),
                });
            }
            if b.complete || rx.fully_dispensed() {
                rx.status = RxStatus::Completed;
                rx.completed_at = Some(now);
            }
            st.put(rx_key(&b.id), &rx);
            Ok(Ok(()))
        }
        TxBody::Cancel(b) => {
            let Some(mut rx) = load(st, &b.id)? else {
                return refuse(Rejection::UnknownPrescription);
            };
            let is_patient = tx.signer == rx.access_key;
            let is_prescriber = tx.signer == rx.prescriber;
            if !is_patient && !is_prescriber {
                return refuse(Rejection::NotPrescriberOrPatient);
            }
            match rx.status {
                RxStatus::Cancelled => {
                    return refuse(Rejection::Cancelled {
                        at: rx.cancelled.as_ref().map_or(now, |c| c.0),
                    })
                }
                RxStatus::Completed => return refuse(completed(&rx, now)),
                RxStatus::Claimed => return refuse(Rejection::ClaimedCannotChange),
                RxStatus::Issued | RxStatus::Assigned => {}
            }
            if rx.any_dispensed() {
                return refuse(Rejection::DispensedCannotCancel);
            }
            rx.status = RxStatus::Cancelled;
            rx.cancelled = Some((now, b.reason, tx.signer));
            st.put(rx_key(&b.id), &rx);
            Ok(Ok(()))
        }
        TxBody::Delivery(b) => {
            let staff = match &signer {
                Signer::Staff(s) if matches!(s.role, Role::Pharmacist | Role::Courier) => s.clone(),
                Signer::Staff(s) => {
                    return refuse(Rejection::WrongRole {
                        role: s.role.label().into(),
                        action: "record delivery events".into(),
                    })
                }
                // An admin key is known to the consortium; saying otherwise
                // would send the operator looking for a missing registration.
                Signer::Admin(_) => {
                    return refuse(Rejection::WrongRole {
                        role: "organisation admin".into(),
                        action: "record delivery events".into(),
                    })
                }
                Signer::Other => return refuse(Rejection::UnknownSigner),
            };
            let Some(mut rx) = load(st, &b.id)? else {
                return refuse(Rejection::UnknownPrescription);
            };
            let Some(claim) = rx.claim.clone() else {
                return refuse(Rejection::NotClaimed);
            };
            let org_kind = g.org(&staff.org).map(|o| o.kind);
            let may = staff.org == claim.pharmacy
                || (staff.role == Role::Courier && org_kind == Some(OrgKind::Logistics));
            if !may {
                return refuse(Rejection::ClaimedByOther {
                    pharmacy: claim.pharmacy,
                    at: claim.at,
                });
            }
            if rx.status == RxStatus::Cancelled {
                return refuse(Rejection::Cancelled {
                    at: rx.cancelled.as_ref().map_or(now, |c| c.0),
                });
            }
            let delivery_mode = matches!(rx.fulfilment, Some(Fulfilment::Delivery { .. }));
            let last = rx.delivery.last().map(|d| d.status);
            let ok = if b.status == DeliveryStatus::ReadyForPickup {
                if delivery_mode {
                    return refuse(Rejection::WrongFulfilmentMode {
                        attempted: b.status,
                        mode: "delivery".into(),
                    });
                }
                if staff.role != Role::Pharmacist {
                    return refuse(Rejection::WrongRole {
                        role: staff.role.label().into(),
                        action: "mark a prescription ready for pickup".into(),
                    });
                }
                last.is_none() && rx.status == RxStatus::Claimed
            } else {
                if !delivery_mode {
                    return refuse(Rejection::WrongFulfilmentMode {
                        attempted: b.status,
                        mode: "pickup".into(),
                    });
                }
                if b.status == DeliveryStatus::Packed && staff.org != claim.pharmacy {
                    return refuse(Rejection::ClaimedByOther {
                        pharmacy: claim.pharmacy,
                        at: claim.at,
                    });
                }
                delivery_follows(last, b.status)
                    && (b.status != DeliveryStatus::Packed || rx.any_dispensed())
            };
            if !ok {
                return refuse(Rejection::DeliveryOutOfOrder {
                    last,
                    attempted: b.status,
                });
            }
            rx.delivery.push(DeliveryRecord {
                status: b.status,
                by: tx.signer,
                at: now,
            });
            st.put(rx_key(&b.id), &rx);
            Ok(Ok(()))
        }
    }
}

/// The delivery state machine: packed → dispatched → out for delivery →
/// delivered; failed after dispatch; returned after failure.
pub fn delivery_follows(last: Option<DeliveryStatus>, next: DeliveryStatus) -> bool {
    use DeliveryStatus::*;
    matches!(
        (last, next),
        (None, Packed)
            | (Some(Packed), Dispatched)
            | (Some(Dispatched), OutForDelivery)
            | (Some(OutForDelivery), Delivered)
            | (Some(Dispatched), Failed)
            | (Some(OutForDelivery), Failed)
            | (Some(Failed), Returned)
    )
}

fn need_role(
    signer: &Signer<'_>,
    role: Role,
    action: &str,
) -> Result<Result<StaffRecord, Rejection>, CorruptState> {
    Ok(match signer {
        Signer::Staff(s) if s.role == role => Ok(s.clone()),
        Signer::Staff(s) => Err(Rejection::WrongRole {
            role: s.role.label().into(),
            action: action.into(),
        }),
        Signer::Admin(_) => Err(Rejection::WrongRole {
            role: "organisation admin".into(),
            action: action.into(),
        }),
        Signer::Other => Err(Rejection::UnknownSigner),
    })
}

fn need_org(g: &Genesis, id: &OrgId, kind: OrgKind) -> Result<(), Rejection> {
    match g.org(id) {
        None => Err(Rejection::UnknownOrg { org: id.clone() }),
        Some(o) if o.kind != kind => Err(Rejection::WrongOrgKind {
            org: id.clone(),
            need: format!("{kind:?}").to_lowercase(),
        }),
        Some(_) => Ok(()),
    }
}

fn load(st: &Overlay<'_>, id: &PrescriptionId) -> Result<Option<PrescriptionRecord>, CorruptState> {
    st.get(&rx_key(id))
}

fn completed(rx: &PrescriptionRecord, now: Timestamp) -> Rejection {
    match rx.last_fill() {
        Some(f) => Rejection::AlreadyDispensed {
            pharmacy: f.pharmacy.clone(),
            at: f.at,
        },
        None => Rejection::AlreadyDispensed {
            pharmacy: rx
                .claim
                .as_ref()
                .map_or_else(|| rx.hospital.clone(), |c| c.pharmacy.clone()),
            at: rx.completed_at.unwrap_or(now),
        },
    }
}

/// Refuses unless the prescription is open: not cancelled, completed or
/// outside its validity window.
fn check_open(rx: &PrescriptionRecord, now: Timestamp) -> Result<(), Rejection> {
    match rx.status {
        RxStatus::Cancelled => {
            return Err(Rejection::Cancelled {
                at: rx.cancelled.as_ref().map_or(now, |c| c.0),
            })
        }
        RxStatus::Completed => return Err(completed(rx, now)),
        _ => {}
    }
    if rx.is_expired(now) {
        return Err(Rejection::Expired { at: rx.valid_until });
    }
    if now < rx.valid_from {
        return Err(Rejection::NotYetValid {
            from: rx.valid_from,
        });
    }
    Ok(())
}

fn holds_lock(rx: &PrescriptionRecord, org: &OrgId) -> Result<(), Rejection> {
    match (rx.status, &rx.claim) {
        (RxStatus::Completed, _) => Err(completed(rx, Timestamp(0))),
        (RxStatus::Cancelled, _) => Err(Rejection::Cancelled {
            at: rx.cancelled.as_ref().map_or(Timestamp(0), |c| c.0),
        }),
        (RxStatus::Claimed, Some(c)) if &c.pharmacy == org => Ok(()),
        (RxStatus::Claimed, Some(c)) => Err(Rejection::ClaimedByOther {
            pharmacy: c.pharmacy.clone(),
            at: c.at,
        }),
        _ => Err(Rejection::NotClaimed),
    }
}

/// What a scan would answer: whether `pharmacy` could claim `rx` at `now`
/// given a valid proof. Used by the node's scan verdict, so the verdict and
/// the rules can never disagree.
pub fn claimable_by(
    rx: &PrescriptionRecord,
    pharmacy: &OrgId,
    now: Timestamp,
) -> Result<(), Rejection> {
    check_open(rx, now)?;
    if let (RxStatus::Claimed, Some(c)) = (rx.status, &rx.claim) {
        return Err(if &c.pharmacy == pharmacy {
            Rejection::AlreadyClaimed
        } else {
            Rejection::ClaimedByOther {
                pharmacy: c.pharmacy.clone(),
                at: c.at,
            }
        });
    }
    if let Some(f) = &rx.fulfilment {
        if f.pharmacy() != pharmacy {
            return Err(Rejection::AssignedElsewhere {
                pharmacy: f.pharmacy().clone(),
            });
        }
    }
    Ok(())
}
