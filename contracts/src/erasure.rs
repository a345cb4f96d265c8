//! Erasure after retention (crypto-shredding): when a node deletes which key
//! wraps.
//!
//! A prescription's personal data (the patient's identity, the clinical
//! text, the delivery address) is on the chain only sealed under its content
//! key, and that key only in key wraps. Signatures, transaction ids, block
//! hashes and the state root cover a wrap by its digest alone
//! ([`crate::privacy::WrapBody`]), so every node can replace its copies of
//! the wraps by their digests when the retention period ends, and the chain
//! still verifies from genesis. The sealed data then opens for nobody: not
//! the hospital, not a pharmacy, not the holder of the QR code.
//!
//! * **Personal wraps** (the patient's, the hospital's, the pharmacy's
//!   hand-over of the access secret, every grantee's) fall due
//!   `personal_data_retention_days` after the prescription ended: completed,
//!   cancelled, or expired ([`PrescriptionRecord::ended_at`]).
//! * **Regulator wraps** fall due `regulator_retention_days` after the same
//!   end, so a regulator can still read what it must keep.
//! * A **refused** transaction's wraps fall due the same number of days
//!   after its own block: it started nothing that could end later.
//!
//! What the audit needs stays: drug codes, quantities, batches, dates,
//! signers, statuses and every hash. Execution never reads a wrap's
//! ciphertext, so replaying erased blocks gives the same outcomes and state.

use crate::genesis::Params;
use crate::model::Timestamp;
use crate::state::PrescriptionRecord;
use crate::tx::Erasure;

/// When the wraps of kind `which` of one transaction fall due.
///
/// `record` is the prescription the transaction is about (if it exists),
/// `refused_at` the block time if the transaction was refused. `None`
/// while the prescription is still open.
pub fn due_at(
    params: &Params,
    which: Erasure,
    record: Option<&PrescriptionRecord>,
    refused_at: Option<Timestamp>,
    now: Timestamp,
) -> Option<Timestamp> {
    let days = match which {
        Erasure::Regulator => params.regulator_retention_days,
        Erasure::Personal | Erasure::All => params.personal_data_retention_days,
    };
    match (refused_at, record) {
        (Some(at), _) => Some(at.plus_days(days)),
        (None, Some(r)) => r.erased_at(now, days),
        // An applied transaction about a prescription that does not exist
        // cannot happen; keep its wraps rather than guess.
        (None, None) => None,
    }
}

/// Whether they are due at `now`.
pub fn is_due(
    params: &Params,
    which: Erasure,
    record: Option<&PrescriptionRecord>,
    refused_at: Option<Timestamp>,
    now: Timestamp,
) -> bool {
    due_at(params, which, record, refused_at, now).is_some_and(|t| now >= t)
}
