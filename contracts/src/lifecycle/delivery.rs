//! Delivery and pickup events: ready-for-pickup for pickup prescriptions,
//! and the delivery order packed → dispatched → out for delivery →
//! delivered (or failed, then returned) for home delivery; and the claiming
//! pharmacy's hand-over of a delivery to a logistics member, whose couriers
//! then record its progress. A failure or return names its problem and a
//! delivery how it was handed over (checked with the transaction's form);
//! a controlled medicine is handed over in person only.

use super::checks::{cancelled, load, need_one_of, need_org, need_role};
use super::{Ctx, Signer, Step};
use crate::genesis::OrgKind;
use crate::rejection::Rejection;
use crate::state::{rx_key, DeliveryRecord, Overlay, RxStatus, StaffRecord};
use crate::tx::{DeliveryEvent, DeliveryStatus, Fulfilment, HandToCarrier, Role};

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

/// Who may record delivery and pickup events at all: a pharmacist or a
/// courier. Which prescriptions they may record for depends on it: see
/// [`delivery`].
pub(super) fn recorder(signer: &Signer<'_>) -> Result<StaffRecord, Rejection> {
    need_one_of(
        signer,
        &[Role::Pharmacist, Role::Courier],
        "record delivery events",
    )
}

/// Records a delivery or pickup event on a claimed prescription: by a
/// pharmacist or courier of the claiming pharmacy, or by a courier of the
/// logistics member the pharmacy handed the delivery to (who may not pack:
/// only the pharmacy packs). A courier of any other logistics member is
/// refused with `not_carrier`.
pub(super) fn delivery(cx: &Ctx<'_>, st: &mut Overlay<'_>, b: &DeliveryEvent) -> Step {
    let staff = recorder(&cx.signer)?;
    let mut rx = load(st, &b.id)??;
    let Some(claim) = rx.claim.clone() else {
        return Err(Rejection::NotClaimed.into());
    };
    if staff.org != claim.pharmacy {
        let logistics_courier = staff.role == Role::Courier
            && cx.g.org(&staff.org).map(|o| o.kind) == Some(OrgKind::Logistics);
        if !logistics_courier {
            return Err(Rejection::ClaimedByOther {
                pharmacy: claim.pharmacy,
                at: claim.at,
            }
            .into());
        }
        if rx.carrier.as_ref() != Some(&staff.org) {
            return Err(Rejection::NotCarrier {
                carrier: rx.carrier,
            }
            .into());
        }
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
    if let Some(h) = b.hand_over {
        if rx.controlled && !h.in_person() {
            return Err(Rejection::HandOverInPerson { hand_over: h }.into());
        }
    }
    rx.delivery.push(DeliveryRecord {
        status: b.status,
        by: cx.key,
        at: cx.now,
        problem: b.problem,
        hand_over: b.hand_over,
    });
    st.put(rx_key(&b.id), &rx);
    Ok(())
}

/// Hands a home delivery to a logistics member: a pharmacist of the
/// claiming pharmacy names the carrier, whose couriers may then record the
/// delivery's progress. A new hand-over replaces the previous carrier; a
/// release clears it with the rest of the delivery trail.
pub(super) fn hand_to_carrier(cx: &Ctx<'_>, st: &mut Overlay<'_>, b: &HandToCarrier) -> Step {
    let staff = need_role(&cx.signer, Role::Pharmacist, "hand deliveries to a carrier")?;
    let mut rx = load(st, &b.id)??;
    if rx.status == RxStatus::Cancelled {
        return Err(cancelled(&rx, cx.now).into());
    }
    let Some(claim) = rx.claim.clone() else {
        return Err(Rejection::NotClaimed.into());
    };
    if staff.org != claim.pharmacy {
        return Err(Rejection::ClaimedByOther {
            pharmacy: claim.pharmacy,
            at: claim.at,
        }
        .into());
    }
    if !matches!(rx.fulfilment, Some(Fulfilment::Delivery { .. })) {
        return Err(Rejection::NotADelivery.into());
    }
    need_org(cx.g, &b.carrier, OrgKind::Logistics)?;
    rx.carrier = Some(b.carrier.clone());
    st.put(rx_key(&b.id), &rx);
    Ok(())
}
