//! Issuing: a registered practitioner creates a prescription whose validity
//! window follows [`crate::rules`] and whose content key is wrapped for the
//! patient, the hospital and every regulator.

use super::checks::need_role;
use super::{Ctx, Step};
use crate::controlled::ControlledList;
use crate::rejection::Rejection;
use crate::rules;
use crate::state::{rx_key, Overlay, PrescriptionRecord, RxStatus};
use crate::tx::{IssueRx, Role};

/// Issues a prescription. The signature over the whole body (and so over the
/// hash of the sealed content) is the issue transaction's, recorded as
/// `issue_tx`.
pub(super) fn issue(cx: &Ctx<'_>, st: &mut Overlay<'_>, b: &IssueRx) -> Step {
    let staff = need_role(&cx.signer, Role::Practitioner, "issue prescriptions")?;
    let key = rx_key(&b.id);
    if st.get_raw(&key).is_some() {
        return Err(Rejection::PrescriptionExists.into());
    }
    if b.access_key == cx.key {
        return Err(Rejection::BadAccessKey.into());
    }
    let params = &cx.g.params;
    // What is controlled is the chain's list, not the client's flag: the
    // flags must agree with it, so records and reports can rely on them.
    let list = ControlledList::current(cx.g, st)?;
    rules::check_controlled_flags(&list, &b.items)?;
    let controlled = rules::is_controlled(&list, &b.items);
    let max_days = rules::max_validity_days(params, controlled);
    let valid_until = rules::valid_until(params, controlled, b.valid_from, b.valid_until);
    if valid_until <= b.valid_from || valid_until <= cx.now {
        return Err(Rejection::BadValidity.into());
    }
    if valid_until > b.valid_from.plus_days(max_days) {
        return Err(Rejection::ValidityTooLong { max_days }.into());
    }
    if let Some(reg) =
        cx.g.regulators()
            .find(|r| !b.key_for_regulators.iter().any(|(o, _)| o == &r.id))
    {
        return Err(Rejection::MissingKeyWrap {
            party: format!("regulator {}", reg.id),
        }
        .into());
    }
    // The patient's wrap is under the QR secret (no ephemeral key); the
    // hospital's is by ECDH to its data key (with one).
    if b.key_for_patient.ephemeral.is_some() || b.key_for_hospital.ephemeral.is_none() {
        return Err(Rejection::MissingKeyWrap {
            party: "patient and hospital".into(),
        }
        .into());
    }
    st.put(
        key,
        &PrescriptionRecord {
            id: b.id,
            hospital: staff.org.clone(),
            prescriber: cx.key,
            issue_tx: cx.tx,
            issued_at: cx.now,
            valid_from: b.valid_from,
            valid_until,
            items: b.items.clone(),
            repeats: b.repeats,
            controlled,
            access_key: b.access_key,
            status: RxStatus::Issued,
            fulfilment: None,
            claim: None,
            dispensed: vec![0; b.items.len()],
            fills: Vec::new(),
            delivery: Vec::new(),
            completed_at: None,
            cancelled: None,
            wrong_proofs: 0,
            refused_attempts: 0,
            carrier: None,
        },
    );
    Ok(())
}
