//! Dispensing: the pharmacy holding the lock hands out medicine, in one or
//! several fills, never more per item than its allowance.

use super::checks::{check_window, holds_lock, load, need_role};
use super::{Ctx, Step};
use crate::rejection::Rejection;
use crate::state::{rx_key, Fill, Overlay, RxStatus};
use crate::tx::{DispenseRx, Role};

/// Records a fill. Reaching every item's allowance, or `complete`, completes
/// the prescription. A refused fill changes no count, not even for its
/// earlier lines.
pub(super) fn dispense(cx: &Ctx<'_>, st: &mut Overlay<'_>, b: &DispenseRx) -> Step {
    let staff = need_role(&cx.signer, Role::Pharmacist, "dispense")?;
    let mut rx = load(st, &b.id)??;
    holds_lock(&rx, &staff.org)?;
    check_window(&rx, cx.now)?;
    let mut dispensed = rx.dispensed.clone();
    for line in &b.lines {
        let i = usize::from(line.item);
        if i >= rx.items.len() {
            return Err(Rejection::BadItem { item: line.item }.into());
        }
        let after = u64::from(dispensed[i]) + u64::from(line.quantity.get());
        if after > rx.allowance(i) {
            // What remains on the prescription, not after the earlier
            // lines of this refused fill: none of them took effect.
            return Err(Rejection::ExceedsAllowance {
                item: line.item,
                remaining: rx.remaining(i),
            }
            .into());
        }
        // Fits in u32: the allowance is at most 1e6 * 13.
        dispensed[i] = after as u32;
    }
    rx.dispensed = dispensed;
    if !b.lines.is_empty() {
        rx.fills.push(Fill {
            pharmacy: staff.org.clone(),
            by: cx.key,
            at: cx.now,
            lines: b
                .lines
                .iter()
                .map(|l| (l.item, l.quantity.get(), l.batch.clone()))
                .collect(),
            tx: cx.tx,
        });
    }
    if b.complete || rx.fully_dispensed() {
        rx.status = RxStatus::Completed;
        rx.completed_at = Some(cx.now);
    }
    st.put(rx_key(&b.id), &rx);
    Ok(())
}
