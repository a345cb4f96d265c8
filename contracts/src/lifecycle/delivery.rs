//! Delivery and pickup events: ready-for-pickup for pickup prescriptions,
//! and the delivery order packed → dispatched → out for delivery →
//! delivered (or failed, then returned) for home delivery.

use super::checks::{cancelled, load};
use super::{Ctx, Signer, Step};
use crate::genesis::OrgKind;
use crate::rejection::Rejection;
use crate::state::{rx_key, DeliveryRecord, Overlay, RxStatus};
use crate::tx::{DeliveryEvent, DeliveryStatus, Fulfilment, Role};

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

/// Records a delivery or pickup event on a claimed prescription: by a
/// pharmacist or courier of the claiming pharmacy, or by a courier of a
/// logistics member (who may not pack: only the pharmacy packs).
pub(super) fn delivery(cx: &Ctx<'_>, st: &mut Overlay<'_>, b: &DeliveryEvent) -> Step {
    let action = "record delivery events";
    let staff = match &cx.signer {
        Signer::Staff(s) if matches!(s.role, Role::Pharmacist | Role::Courier) => s.clone(),
        Signer::Staff(s) => {
            return Err(Rejection::WrongRole {
                role: s.role.label().into(),
                action: action.into(),
            }
            .into())
        }
        // An admin key is known to the consortium; saying otherwise
        // would send the operator looking for a missing registration.
        Signer::Admin(_) => {
            return Err(Rejection::WrongRole {
                role: "organisation admin".into(),
                action: action.into(),
            }
            .into())
        }
        Signer::Other => return Err(Rejection::UnknownSigner.into()),
    };
    let mut rx = load(st, &b.id)??;
    let Some(claim) = rx.claim.clone() else {
        return Err(Rejection::NotClaimed.into());
    };
    let org_kind = cx.g.org(&staff.org).map(|o| o.kind);
    let may = staff.org == claim.pharmacy
        || (staff.role == Role::Courier && org_kind == Some(OrgKind::Logistics));
    if !may {
        return Err(Rejection::ClaimedByOther {
            pharmacy: claim.pharmacy,
            at: claim.at,
        }
        .into());
    }
    if rx.status == RxStatus::Cancelled {
        return Err(cancelled(&rx, cx.now).into());
    }
    let delivery_mode = matches!(rx.fulfilment, Some(Fulfilment::Delivery { .. }));
    let last = rx.delivery.last().map(|d| d.status);
    let ok = if b.status == DeliveryStatus::ReadyForPickup {
        if delivery_mode {
            return Err(Rejection::WrongFulfilmentMode {
                attempted: b.status,
                mode: "delivery".into(),
            }
            .into());
        }
        if staff.role != Role::Pharmacist {
            return Err(Rejection::WrongRole {
                role: staff.role.label().into(),
                action: "mark a prescription ready for pickup".into(),
            }
            .into());
        }
        last.is_none() && rx.status == RxStatus::Claimed
    } else {
        if !delivery_mode {
            return Err(Rejection::WrongFulfilmentMode {
                attempted: b.status,
                mode: "pickup".into(),
            }
            .into());
        }
        if b.status == DeliveryStatus::Packed && staff.org != claim.pharmacy {
            return Err(Rejection::ClaimedByOther {
                pharmacy: claim.pharmacy,
                at: claim.at,
            }
            .into());
        }
        // Nothing can be packed before something was dispensed.
        delivery_follows(last, b.status)
            && (b.status != DeliveryStatus::Packed || rx.any_dispensed())
    };
    if !ok {
        return Err(Rejection::DeliveryOutOfOrder {
            last,
            attempted: b.status,
        }
        .into());
    }
    rx.delivery.push(DeliveryRecord {
        status: b.status,
        by: cx.key,
        at: cx.now,
    });
    st.put(rx_key(&b.id), &rx);
    Ok(())
}
