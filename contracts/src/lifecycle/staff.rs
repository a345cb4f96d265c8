//! The staff registry: organisation admins register keys for their own
//! organisation, in roles that fit its kind; an admin or a regulator revokes
//! them.

use super::{Ctx, Signer, Step};
use crate::genesis::OrgKind;
use crate::rejection::Rejection;
use crate::state::{staff_key, Overlay, Revocation, StaffRecord};
use crate::tx::{RegisterStaff, RevokeStaff, Role};

/// Whether an organisation of `kind` may register staff in `role`.
fn role_fits(kind: OrgKind, role: Role) -> bool {
    matches!(
        (kind, role),
        (OrgKind::Hospital, Role::Practitioner)
            | (OrgKind::Pharmacy, Role::Pharmacist)
            | (OrgKind::Pharmacy, Role::Courier)
            | (OrgKind::Logistics, Role::Courier)
            | (OrgKind::Regulator, Role::RegulatorOfficer)
    )
}

/// Registers a staff key: signed by the admin of `b.org`, in a role that
/// fits the organisation, for a key not known yet (staff or admin).
pub(super) fn register(cx: &Ctx<'_>, st: &mut Overlay<'_>, b: &RegisterStaff) -> Step {
    let Signer::Admin(org) = cx.signer else {
        return Err(Rejection::NotOrgAdmin { org: b.org.clone() }.into());
    };
    if org.id != b.org {
        return Err(Rejection::NotOrgAdmin { org: b.org.clone() }.into());
    }
    if !role_fits(org.kind, b.role) {
        return Err(Rejection::WrongOrgKind {
            org: org.id.clone(),
            need: format!("fit for a {:?}", b.role).to_lowercase(),
        }
        .into());
    }
    if st.get_raw(&staff_key(&b.key)).is_some() || cx.g.org_by_admin(&b.key).is_some() {
        return Err(Rejection::StaffExists.into());
    }
    st.put(
        staff_key(&b.key),
        &StaffRecord {
            key: b.key,
            org: b.org.clone(),
            role: b.role,
            licence: b.licence.clone(),
            name: b.name.clone(),
            registered_at: cx.now,
            revoked: None,
        },
    );
    Ok(())
}

/// Revokes a staff key: signed by the admin of the key's organisation, by a
/// regulator's admin or by a regulator officer. Admin keys come from genesis
/// and cannot be revoked; a key is revoked once.
pub(super) fn revoke(cx: &Ctx<'_>, st: &mut Overlay<'_>, b: &RevokeStaff) -> Step {
    if cx.g.org_by_admin(&b.key).is_some() {
        return Err(Rejection::CannotRevokeAdmin.into());
    }
    let Some(mut target) = st.get::<StaffRecord>(&staff_key(&b.key))? else {
        return Err(Rejection::UnknownStaff.into());
    };
    let allowed = match &cx.signer {
        Signer::Admin(org) => org.id == target.org || org.kind == OrgKind::Regulator,
        Signer::Staff(s) => s.role == Role::RegulatorOfficer,
        Signer::Other => return Err(Rejection::UnknownSigner.into()),
    };
    if !allowed {
        return Err(Rejection::NotOrgAdmin {
            org: target.org.clone(),
        }
        .into());
    }
    if target.revoked.is_some() {
        return Err(Rejection::AlreadyRevoked.into());
    }
    target.revoked = Some(Revocation {
        at: cx.now,
        reason: b.reason,
        by: cx.key,
    });
    st.put(staff_key(&b.key), &target);
    Ok(())
}
