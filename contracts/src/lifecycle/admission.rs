//! Admission: only a signer the current state knows for a kind may put a
//! transaction of that kind before the chain.
//!
//! [`admissible`] is what the mempool asks before it accepts a transaction;
//! [`super::apply`] runs the very same checks (`authorize`, called from the
//! shared context) before each kind's own rules, so admission and the chain
//! cannot disagree. Per kind, the signer must be:
//!
//! | Kind | Signer |
//! |---|---|
//! | `register_staff` | the admin key of the organisation named, or a staff admin of it |
//! | `revoke_staff` | the admin key or a staff admin of the key's organisation, a regulator's admin, or a regulator officer |
//! | `issue` | a practitioner |
//! | `claim` | a pharmacist of the pharmacy named |
//! | `release`, `dispense`, `hand_to_carrier` | a pharmacist |
//! | `delivery` | a pharmacist or a courier |
//! | `set_controlled` | a regulator officer |
//! | `assign`, `grant_access`, `revoke_access`, `refuse_request` | the access key of the prescription named |
//! | `request_access` | a staff member of any role but staff admin (for their own organisation) |
//! | `anchor_access_log` | the declared key of the node named |
//! | `cancel` | the prescriber or the access key of the prescription named |
//! | `propose`, `approve`, `leave_node` | an organisation's admin (of the effective consortium) |
//!
//! Staff keys must be registered and unrevoked. The refusals are the
//! admission codes of [`Rejection::is_admission`], plus `from_the_future`
//! for a transaction dated too far ahead, `wrong_org_kind` for a
//! pharmacist claiming for another pharmacy, and `unknown_prescription` or
//! `unknown_staff` when the prescription or key named does not exist (yet),
//! so nobody is known who could sign for it. Whatever a legitimate signer
//! may still be refused for (a second dispense, a wrong QR proof, an
//! out-of-order delivery event, an expired prescription) is not checked
//! here: those refusals go on the chain as audit.

use super::checks::{load, need_one_of, need_prescriber_or_patient, need_role};
use super::{context, delivery, staff, Ctx, Stop};
use crate::genesis::Genesis;
use crate::model::Timestamp;
use crate::rejection::Rejection;
use crate::state::{CorruptState, Overlay, StateRead};
use crate::tx::{AssignRx, GrantAccess, RefuseRequest, RevokeAccess, Role, TxBody, VerifiedTx};

/// Why a transaction is not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Inadmissible {
    /// Its signer may not sign it; it must not reach the chain.
    #[error("not admitted: {0}")]
    Refused(#[from] Rejection),
    /// The state could not be read to decide.
    #[error(transparent)]
    Corrupt(#[from] CorruptState),
}

/// Whether `tx` may enter the mempool at `now` against `state` (`genesis`
/// is the founding document; the effective consortium is read from
/// `state`): its signer
/// is one the state knows for its kind (see the module docs). It decides
/// nothing else, so a legitimate signer's transaction that the rules will
/// refuse is admitted and its refusal recorded.
pub fn admissible(
    genesis: &Genesis,
    state: &impl StateRead,
    tx: &VerifiedTx,
    now: Timestamp,
) -> Result<(), Inadmissible> {
    let st = Overlay::new(state);
    let consortium = crate::governance::effective(genesis, &st)?;
    match context(&consortium, &st, tx, now) {
        Ok(_) => Ok(()),
        Err(Stop::Refused(r)) => Err(r.into()),
        Err(Stop::Corrupt(e)) => Err(e.into()),
    }
}

/// The signer checks of each kind; [`super::apply`] and [`admissible`] both
/// run them, through `context`.
pub(super) fn authorize(cx: &Ctx<'_>, st: &Overlay<'_>, body: &TxBody) -> Result<(), Stop> {
    match body {
        TxBody::RegisterStaff(b) => {
            staff::registering_admin(cx.g, &cx.signer, &b.org)?;
        }
        TxBody::RevokeStaff(b) => staff::may_revoke(cx, st, b)?,
        TxBody::Issue(_) => {
            need_role(&cx.signer, Role::Practitioner, "issue prescriptions")?;
        }
        TxBody::Claim(b) => {
            let staff = need_role(&cx.signer, Role::Pharmacist, "claim prescriptions")?;
            if staff.org != b.pharmacy {
                return Err(Rejection::WrongOrgKind {
                    org: b.pharmacy.clone(),
                    need: format!("the pharmacist's own pharmacy ({})", staff.org),
                }
                .into());
            }
        }
        TxBody::Release(_) => {
            need_role(&cx.signer, Role::Pharmacist, "release prescriptions")?;
        }
        TxBody::Dispense(_) => {
            need_role(&cx.signer, Role::Pharmacist, "dispense")?;
        }
        TxBody::HandToCarrier(_) => {
            need_role(&cx.signer, Role::Pharmacist, "hand deliveries to a carrier")?;
        }
        TxBody::Delivery(_) => {
            delivery::recorder(&cx.signer)?;
        }
        TxBody::SetControlled(_) => {
            need_role(
                &cx.signer,
                Role::RegulatorOfficer,
                "change the controlled-drug list",
            )?;
        }
        TxBody::Assign(AssignRx { id, .. })
        | TxBody::GrantAccess(GrantAccess { id, .. })
        | TxBody::RevokeAccess(RevokeAccess { id, .. })
        | TxBody::RefuseRequest(RefuseRequest { id, .. }) => {
            let rx = load(st, id)??;
            if cx.key != rx.access_key {
                return Err(Rejection::NotPatient.into());
            }
        }
        TxBody::AnchorAccessLog(b) => {
            if cx.g.node(b.node).map(|(_, n)| n.key) != Some(cx.key) {
                return Err(Rejection::UnknownSigner.into());
            }
        }
        TxBody::RequestAccess(_) => {
            need_one_of(
                &cx.signer,
                &[
                    Role::Practitioner,
                    Role::Pharmacist,
                    Role::Courier,
                    Role::RegulatorOfficer,
                    Role::ClaimsReviewer,
                ],
                "ask for access to a prescription",
            )?;
        }
        TxBody::Cancel(b) => {
            let rx = load(st, &b.id)??;
            need_prescriber_or_patient(&cx.key, &rx)?;
        }
        TxBody::Propose(_) | TxBody::Approve(_) | TxBody::LeaveNode(_) => {
            super::governance::need_admin(&cx.signer)?;
        }
    }
    Ok(())
}
