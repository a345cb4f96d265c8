//! Cancellation by the prescriber or the patient, while no pharmacy holds
//! the prescription and nothing has been dispensed.

use super::checks::{cancelled, completed, load};
use super::{Ctx, Step};
use crate::rejection::Rejection;
use crate::state::{rx_key, Overlay, RxStatus};
use crate::tx::CancelRx;

/// Cancels a prescription that is issued or assigned and undispensed.
pub(super) fn cancel(cx: &Ctx<'_>, st: &mut Overlay<'_>, b: &CancelRx) -> Step {
    // The signer is the prescriber or the patient: `admission::authorize`
    // checked it.
    let mut rx = load(st, &b.id)??;
    match rx.status {
        RxStatus::Cancelled => return Err(cancelled(&rx, cx.now).into()),
        RxStatus::Completed => return Err(completed(&rx, cx.now).into()),
        RxStatus::Claimed => return Err(Rejection::ClaimedCannotChange.into()),
        RxStatus::Issued | RxStatus::Assigned => {}
    }
    if rx.any_dispensed() {
        return Err(Rejection::DispensedCannotCancel.into());
    }
    rx.status = RxStatus::Cancelled;
    rx.cancelled = Some((cx.now, b.reason, cx.key));
    st.put(rx_key(&b.id), &rx);
    Ok(())
}
