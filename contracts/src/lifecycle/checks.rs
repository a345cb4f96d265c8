//! The checks several transitions share: who signed, whether an organisation
//! fits, whether a prescription is open, and who holds its lock.

use super::Signer;
use crate::crypto::PublicKey;
use crate::genesis::{Genesis, OrgKind};
use crate::model::{OrgId, PrescriptionId, Timestamp};
use crate::rejection::Rejection;
use crate::state::{rx_key, CorruptState, Overlay, PrescriptionRecord, RxStatus, StaffRecord};
use crate::tx::Role;

/// The signer's staff record if it has `role`; otherwise the refusal names
/// what the signer is, since an admin or a stranger needs a different fix.
pub(super) fn need_role(
    signer: &Signer<'_>,
    role: Role,
    action: &str,
) -> Result<StaffRecord, Rejection> {
    need_one_of(signer, &[role], action)
}

/// The signer's staff record if it has one of `roles`; otherwise the
/// refusal names what the signer is. An admin key is known to the
/// consortium, so it gets `wrong_role` (saying "unknown" would send the
/// operator looking for a missing registration); a stranger
/// `unknown_signer`.
pub(super) fn need_one_of(
    signer: &Signer<'_>,
    roles: &[Role],
    action: &str,
) -> Result<StaffRecord, Rejection> {
    match signer {
        Signer::Staff(s) if roles.contains(&s.role) => Ok(s.clone()),
        Signer::Staff(s) => Err(Rejection::WrongRole {
            role: s.role.label().into(),
            action: action.into(),
        }),
        Signer::Admin(_) => Err(Rejection::WrongRole {
            role: "organisation admin".into(),
            action: action.into(),
        }),
        Signer::Other => Err(Rejection::UnknownSigner),
    }
}

/// Refuses unless `key` is the prescription's prescriber or its access key
/// (the patient).
pub(super) fn need_prescriber_or_patient(
    key: &PublicKey,
    rx: &PrescriptionRecord,
) -> Result<(), Rejection> {
    if key == &rx.access_key || key == &rx.prescriber {
        Ok(())
    } else {
        Err(Rejection::NotPrescriberOrPatient)
    }
}

/// Refuses unless `id` is a member organisation of kind `kind`.
pub(super) fn need_org(g: &Genesis, id: &OrgId, kind: OrgKind) -> Result<(), Rejection> {
    g.org_of_kind(id, kind).map(|_| ())
}

/// Loads a prescription, refusing an unknown id.
pub(super) fn load(
    st: &Overlay<'_>,
    id: &PrescriptionId,
) -> Result<Result<PrescriptionRecord, Rejection>, CorruptState> {
    Ok(st
        .get::<PrescriptionRecord>(&rx_key(id))?
        .ok_or(Rejection::UnknownPrescription))
}

/// The refusal for a completed prescription: where and when it was last
/// dispensed, or, if it was completed without a fill, who closed it.
pub(super) fn completed(rx: &PrescriptionRecord, now: Timestamp) -> Rejection {
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

/// The refusal for a cancelled prescription, naming when.
pub(super) fn cancelled(rx: &PrescriptionRecord, now: Timestamp) -> Rejection {
    Rejection::Cancelled {
        at: rx.cancelled.as_ref().map_or(now, |c| c.0),
    }
}

/// Refuses outside the validity window: `expired` from `valid_until` on,
/// `not_yet_valid` before `valid_from`.
pub(super) fn check_window(rx: &PrescriptionRecord, now: Timestamp) -> Result<(), Rejection> {
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

/// Refuses unless the prescription is open: not cancelled, completed or
/// outside its validity window.
pub(super) fn check_open(rx: &PrescriptionRecord, now: Timestamp) -> Result<(), Rejection> {
    match rx.status {
        RxStatus::Cancelled => return Err(cancelled(rx, now)),
        RxStatus::Completed => return Err(completed(rx, now)),
        _ => {}
    }
    check_window(rx, now)
}

/// Refuses unless `org` holds the claim lock on an open prescription.
pub(super) fn holds_lock(rx: &PrescriptionRecord, org: &OrgId) -> Result<(), Rejection> {
    match (rx.status, &rx.claim) {
        (RxStatus::Completed, _) => Err(completed(rx, Timestamp(0))),
        (RxStatus::Cancelled, _) => Err(cancelled(rx, Timestamp(0))),
        (RxStatus::Claimed, Some(c)) if &c.pharmacy == org => Ok(()),
        (RxStatus::Claimed, Some(c)) => Err(Rejection::ClaimedByOther {
            pharmacy: c.pharmacy.clone(),
            at: c.at,
        }),
        _ => Err(Rejection::NotClaimed),
    }
}

/// What a scan would answer: whether `pharmacy` could claim `rx` at `now`
/// given a valid proof. The claim transition runs the same checks after the
/// proof, and the node's scan verdict calls this, so the verdict and the
/// rules can never disagree.
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
