//! Assignment: the patient, signing with the prescription's access key,
//! chooses pickup at a pharmacy or home delivery by one.

use super::checks::{check_open, load, need_org};
use super::{Ctx, Step};
use crate::genesis::OrgKind;
use crate::rejection::Rejection;
use crate::state::{rx_key, Overlay, RxStatus};
use crate::tx::AssignRx;

/// Assigns an open, unclaimed prescription to a member pharmacy. A new
/// assignment replaces the previous one.
pub(super) fn assign(cx: &Ctx<'_>, st: &mut Overlay<'_>, b: &AssignRx) -> Step {
    // The signer is the patient: `admission::authorize` checked it.
    let mut rx = load(st, &b.id)??;
    check_open(&rx, cx.now)?;
    if rx.status == RxStatus::Claimed {
        return Err(Rejection::ClaimedCannotChange.into());
    }
    need_org(cx.g, b.fulfilment.pharmacy(), OrgKind::Pharmacy)?;
    rx.fulfilment = Some(b.fulfilment.clone());
    rx.status = RxStatus::Assigned;
    st.put(rx_key(&b.id), &rx);
    Ok(())
}
