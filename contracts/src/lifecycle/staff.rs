//! The staff registry: organisation admins register keys for their own
//! organisation, in roles that fit its kind; an admin or a regulator revokes
//! them.
//!
//! "Admin" here is either the organisation's admin key from the effective
//! consortium or a registered, unrevoked staff key in the [`Role::Admin`]
//! role of that same organisation (a person the organisation put in charge
//! of its staff). A staff admin acts for its own organisation only: it can
//! neither register nor revoke another organisation's keys, and, unlike a
//! regulator's admin key, a regulator's staff admin has no reach beyond its
//! own organisation either.

use super::{Ctx, Signer, Step, Stop};
use crate::genesis::{Genesis, OrgDecl, OrgKind};
use crate::model::OrgId;
use crate::rejection::Rejection;
use crate::state::{staff_key, Overlay, Revocation, StaffRecord};
use crate::tx::{RegisterStaff, RevokeStaff, Role};

/// Whether an organisation of `kind` may register staff in `role`. Every
/// kind of organisation has staff to manage, so any may have staff admins.
fn role_fits(kind: OrgKind, role: Role) -> bool {
    matches!(
        (kind, role),
        (OrgKind::Hospital, Role::Practitioner)
            | (OrgKind::Pharmacy, Role::Pharmacist)
            | (OrgKind::Pharmacy, Role::Courier)
            | (OrgKind::Logistics, Role::Courier)
            | (OrgKind::Regulator, Role::RegulatorOfficer)
            | (OrgKind::Insurer, Role::ClaimsReviewer)
    ) || role == Role::Admin
}

/// The organisation whose admin signs a registration for `org`: only its
/// own admin key, or a staff admin of `org` (whose revocation `context`
/// has checked already), may.
pub(super) fn registering_admin<'g>(
    g: &'g Genesis,
    signer: &Signer<'g>,
    org: &OrgId,
) -> Result<&'g OrgDecl, Rejection> {
    match signer {
        Signer::Admin(o) if &o.id == org => Ok(o),
        Signer::Staff(s) if s.role == Role::Admin && &s.org == org => g
            .org(org)
            .ok_or_else(|| Rejection::NotOrgAdmin { org: org.clone() }),
        _ => Err(Rejection::NotOrgAdmin { org: org.clone() }),
    }
}

/// Whether the signer may revoke `b.key`: the admin of the key's
/// organisation, a regulator's admin, or a regulator officer. For a key the
/// state does not know as staff, an admin or officer passes here and the
/// revocation is refused by its rules (`unknown_staff`,
/// `cannot_revoke_admin`); anyone else is refused with `unknown_staff`,
/// since no organisation can be named.
pub(super) fn may_revoke(cx: &Ctx<'_>, st: &Overlay<'_>, b: &RevokeStaff) -> Result<(), Stop> {
    let target_org = match cx.g.org_by_admin(&b.key) {
        Some(o) => Some(o.id.clone()),
        None => st.get::<StaffRecord>(&staff_key(&b.key))?.map(|t| t.org),
    };
    let allowed = match &cx.signer {
        Signer::Other => return Err(Rejection::UnknownSigner.into()),
        Signer::Staff(s) => {
            s.role == Role::RegulatorOfficer
                || (s.role == Role::Admin && target_org.as_ref() == Some(&s.org))
        }
        Signer::Admin(org) => {
            org.kind == OrgKind::Regulator || target_org.as_ref().is_none_or(|t| t == &org.id)
        }
    };
    match (allowed, target_org) {
        (true, _) => Ok(()),
        (false, Some(org)) => Err(Rejection::NotOrgAdmin { org }.into()),
        (false, None) => Err(Rejection::UnknownStaff.into()),
    }
}

/// Registers a staff key: signed by the admin of `b.org`, in a role that
/// fits the organisation, for a key not known yet (staff or admin).
pub(super) fn register(cx: &Ctx<'_>, st: &mut Overlay<'_>, b: &RegisterStaff) -> Step {
    let org = registering_admin(cx.g, &cx.signer, &b.org)?;
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
/// regulator's admin or by a regulator officer (checked by [`may_revoke`]
/// through `admission::authorize`). Admin keys come from genesis and cannot
/// be revoked; a key is revoked once.
pub(super) fn revoke(cx: &Ctx<'_>, st: &mut Overlay<'_>, b: &RevokeStaff) -> Step {
    if cx.g.org_by_admin(&b.key).is_some() {
        return Err(Rejection::CannotRevokeAdmin.into());
    }
    let Some(mut target) = st.get::<StaffRecord>(&staff_key(&b.key))? else {
        return Err(Rejection::UnknownStaff.into());
    };
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
