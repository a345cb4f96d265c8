//! Sharing by consent: the patient (the prescription's access key) grants an
//! organisation read access for a period, revokes it, and answers the
//! access requests organisations' staff make.
//!
//! The chain records grants and requests; reading stays off chain. A
//! grant carries the content key wrapped for the organisation's data key,
//! and every node checks [`GrantRecord::check_active`] against its
//! committed state before it opens shared content, so a revocation stops
//! access on every honest node from the block that records it. What an
//! organisation already read cannot be unread.

use super::checks::load;
use super::{Ctx, Step};
use crate::model::Timestamp;
use crate::rejection::Rejection;
use crate::state::{anchor_key, AnchorRecord};
use crate::state::{
    grant_key, grantee_key, request_key, AccessRequest, GrantRecord, Overlay, PrescriptionRecord,
    RequestStatus,
};
use crate::tx::{AnchorAccessLog, GrantAccess, RefuseRequest, RequestAccess, RevokeAccess};

/// Refuses once the prescription's personal data is past retention.
fn not_erased(cx: &Ctx<'_>, rx: &PrescriptionRecord) -> Result<(), Rejection> {
    let days = cx.g.params.personal_data_retention_days;
    match rx.erased_at(cx.now, days) {
        Some(at) if cx.now >= at => Err(Rejection::PersonalDataErased { at }),
        _ => Ok(()),
    }
}

/// Refuses a period that ends before the block time or beyond
/// `Params::max_grant_days` from it.
fn check_period(cx: &Ctx<'_>, until: Timestamp) -> Result<(), Rejection> {
    let max_days = cx.g.params.max_grant_days;
    if until <= cx.now || until > cx.now.plus_days(max_days) {
        return Err(Rejection::GrantPeriodInvalid { max_days });
    }
    Ok(())
}

/// Shares the prescription with a member organisation until `until`,
/// replacing an earlier grant to it and approving its pending request.
pub(super) fn grant(cx: &Ctx<'_>, st: &mut Overlay<'_>, b: &GrantAccess) -> Step {
    // The signer is the patient: `admission::authorize` checked it.
    let rx = load(st, &b.id)??;
    not_erased(cx, &rx)?;
    if cx.g.org(&b.org).is_none() {
        return Err(Rejection::UnknownOrg { org: b.org.clone() }.into());
    }
    check_period(cx, b.until)?;
    st.put(
        grant_key(&b.id, &b.org),
        &GrantRecord {
            org: b.org.clone(),
            granted_at: cx.now,
            until: b.until,
            key_for_org: b.key_for_org.sealed.digest(),
            tx: cx.tx,
            revoked_at: None,
        },
    );
    st.put(grantee_key(&b.org, &b.id), &());
    let rk = request_key(&b.id, &b.org);
    if let Some(mut r) = st.get::<AccessRequest>(&rk)? {
        if r.status == RequestStatus::Pending {
            r.status = RequestStatus::Approved;
            r.answered_at = Some(cx.now);
            st.put(rk, &r);
        }
    }
    Ok(())
}

/// Ends an active grant from this block on.
pub(super) fn revoke(cx: &Ctx<'_>, st: &mut Overlay<'_>, b: &RevokeAccess) -> Step {
    load(st, &b.id)??;
    let key = grant_key(&b.id, &b.org);
    let mut g = st
        .get::<GrantRecord>(&key)?
        .ok_or_else(|| Rejection::NoGrant { org: b.org.clone() })?;
    g.check_active(cx.now)?;
    g.revoked_at = Some(cx.now);
    st.put(key, &g);
    Ok(())
}

/// Records a staff member's request for access on behalf of their
/// organisation.
pub(super) fn request(cx: &Ctx<'_>, st: &mut Overlay<'_>, b: &RequestAccess) -> Step {
    let super::Signer::Staff(staff) = &cx.signer else {
        // `admission::authorize` admits staff only.
        return Err(Rejection::UnknownSigner.into());
    };
    let org = staff.org.clone();
    let rx = load(st, &b.id)??;
    not_erased(cx, &rx)?;
    check_period(cx, b.until)?;
    if let Some(g) = st.get::<GrantRecord>(&grant_key(&b.id, &org))? {
        if g.check_active(cx.now).is_ok() {
            return Err(Rejection::AlreadyGranted {
                org,
                until: g.until,
            }
            .into());
        }
    }
    let rk = request_key(&b.id, &org);
    if let Some(r) = st.get::<AccessRequest>(&rk)? {
        if r.status == RequestStatus::Pending {
            return Err(Rejection::RequestPending { org }.into());
        }
    }
    st.put(
        rk,
        &AccessRequest {
            org,
            by: cx.key,
            at: cx.now,
            until: b.until,
            tx: cx.tx,
            status: RequestStatus::Pending,
            answered_at: None,
        },
    );
    Ok(())
}

/// The patient refuses a pending request.
pub(super) fn refuse(cx: &Ctx<'_>, st: &mut Overlay<'_>, b: &RefuseRequest) -> Step {
    load(st, &b.id)??;
    let rk = request_key(&b.id, &b.org);
    match st.get::<AccessRequest>(&rk)? {
        Some(mut r) if r.status == RequestStatus::Pending => {
            r.status = RequestStatus::Refused;
            r.answered_at = Some(cx.now);
            st.put(rk, &r);
            Ok(())
        }
        _ => Err(Rejection::NoPendingRequest { org: b.org.clone() }.into()),
    }
}

/// Moves a node's anchored access-log head forward (the signer is the
/// node's declared key: `admission::authorize` checked it).
pub(super) fn anchor(cx: &Ctx<'_>, st: &mut Overlay<'_>, b: &AnchorAccessLog) -> Step {
    let key = anchor_key(b.node);
    if let Some(prev) = st.get::<AnchorRecord>(&key)? {
        if b.seq <= prev.seq {
            return Err(Rejection::AnchorNotNewer { seq: prev.seq }.into());
        }
    }
    st.put(
        key,
        &AnchorRecord {
            seq: b.seq,
            head: b.head,
            at: cx.now,
            tx: cx.tx,
        },
    );
    Ok(())
}
