//! The controlled-drug list: a regulator officer adds a drug, changes its
//! schedule or takes it off the list (see [`crate::controlled`]).

use super::checks::need_role;
use super::{Ctx, Step};
use crate::controlled::ControlledList;
use crate::rejection::Rejection;
use crate::state::{controlled_key, Overlay};
use crate::tx::{Role, SetControlled};

/// Changes the list in force and stores it whole: a request that would
/// leave it as it is is refused, so every applied change is a real one.
pub(super) fn set(cx: &Ctx<'_>, st: &mut Overlay<'_>, b: &SetControlled) -> Step {
    need_role(
        &cx.signer,
        Role::RegulatorOfficer,
        "change the controlled-drug list",
    )?;
    let mut list = ControlledList::current(cx.g, st)?;
    if !list.set(b.atc.clone(), b.schedule.clone()) {
        return Err(Rejection::ControlledUnchanged { atc: b.atc.clone() }.into());
    }
    st.put(controlled_key(), &list);
    Ok(())
}
