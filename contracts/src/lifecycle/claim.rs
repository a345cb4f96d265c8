//! The claim lock: a pharmacist claims a prescription for their pharmacy
//! with proof that it holds the QR code, and may release it again.

use super::checks::{claimable_by, holds_lock, load, need_role};
use super::{Ctx, Step};
use crate::rejection::Rejection;
use crate::state::{claim_nonce_key, rx_key, ClaimInfo, Overlay, RxStatus};
use crate::tx::{claim_proof_message, ClaimRx, ReleaseRx, Role, CLAIM_PROOF_TAG};

/// Claims a prescription for the pharmacist's own pharmacy (the signer and
/// the pharmacy were checked by `admission::authorize`). The access proof is
/// checked before anything else about the prescription, and a good proof's
/// nonce is spent the first time the proof is checked, whatever the outcome:
/// a refused claim's proof is public on the chain and must not work later.
/// A wrong proof spends nothing, since it proves nothing.
pub(super) fn claim(cx: &Ctx<'_>, st: &mut Overlay<'_>, b: &ClaimRx) -> Step {
    let mut rx = load(st, &b.id)??;
    // The proof comes first: without the QR code, nothing else about
    // the prescription is the claimant's business.
    let msg = claim_proof_message(cx.g.chain_id.as_str(), &b.id, &b.pharmacy, &b.nonce);
    if rx
        .access_key
        .verify(CLAIM_PROOF_TAG, &msg, &b.proof)
        .is_err()
    {
        return Err(Rejection::WrongSecret {
            attempts: rx.wrong_proofs + 1,
        }
        .into());
    }
    let nonce_key = claim_nonce_key(&b.id, &b.nonce);
    if st.get_raw(&nonce_key).is_some() {
        return Err(Rejection::ProofReused.into());
    }
    // Spent from here on, even if the claim is refused below.
    cx.keep(nonce_key, Vec::new());
    claimable_by(&rx, &b.pharmacy, cx.now)?;
    rx.claim = Some(ClaimInfo {
        pharmacy: b.pharmacy.clone(),
        by: cx.key,
        at: cx.now,
    });
    rx.status = RxStatus::Claimed;
    st.put(rx_key(&b.id), &rx);
    Ok(())
}

/// Releases the lock held by the pharmacist's pharmacy: the prescription is
/// available again, and the patient may choose anew.
pub(super) fn release(cx: &Ctx<'_>, st: &mut Overlay<'_>, b: &ReleaseRx) -> Step {
    let staff = need_role(&cx.signer, Role::Pharmacist, "release prescriptions")?;
    let mut rx = load(st, &b.id)??;
    holds_lock(&rx, &staff.org)?;
    rx.claim = None;
    // A pharmacy that returns a prescription also returns the
    // patient's assignment to it; the patient may choose again.
    rx.fulfilment = None;
    // The pickup or delivery trail belonged to that fulfilment: the
    // next pharmacy starts its own (and cannot dispatch a parcel it
    // never packed). The blocks keep the old events for the audit.
    rx.delivery.clear();
    rx.carrier = None;
    rx.status = RxStatus::Issued;
    st.put(rx_key(&b.id), &rx);
    Ok(())
}
