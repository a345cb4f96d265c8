//! The one transition function: [`apply`] takes state, a verified transaction
//! and the block time, and either writes the transaction's effects or refuses
//! it with a named [`Rejection`].
//!
//! Refusals still leave a trace on purpose: the transaction id is marked seen
//! (so a replay gets the same outcome), and refusals about a prescription are
//! counted on it, wrong access proofs separately, so regulators see attempts.
//!
//! [`apply`] checks what holds for every kind (clock skew, revoked signer),
//! then whether the signer may sign this kind at all (`admission`, the same
//! checks the mempool runs through [`admissible`]), and hands the body to
//! one private function per kind, in one file each: `staff` (registry),
//! `issue`, `assign`, `claim` (claim and release), `dispense`, `cancel`,
//! `delivery` (events and the hand-over to a carrier), `controlled` (the
//! controlled-drug list) and `consent` (grants, revocations, access
//! requests and access-log anchors). The checks they share are in `checks`.
//! docs/rules.md in the repository lists every rule with the function and
//! refusal that enforce it.

mod admission;
mod assign;
mod cancel;
mod checks;
mod claim;
mod consent;
mod controlled;
mod delivery;
mod dispense;
mod governance;
mod issue;
mod staff;

use std::cell::RefCell;

use crate::crypto::PublicKey;
use crate::genesis::{Genesis, OrgDecl};
use crate::model::Timestamp;
use crate::state::{
    rx_key, seen_key, staff_key, CorruptState, Overlay, PrescriptionRecord, StaffRecord, WriteSet,
};
use crate::tx::{TxBody, TxId, VerifiedTx};

pub use crate::rejection::Rejection;
pub use admission::{admissible, Inadmissible};
pub use checks::claimable_by;
pub use delivery::delivery_follows;

/// The result of one transaction, recorded in the block beside it.
///
/// JSON: `{"result": "applied"}` or `{"result": "refused", "reason": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    serde(tag = "result", rename_all = "snake_case")
)]
pub enum Outcome {
    /// The transaction took effect.
    Applied,
    /// The transaction was refused; it had no effect beyond being recorded.
    Refused {
        /// Why.
        reason: Rejection,
    },
}

crate::encoding::tagged_in_json!(Outcome, "Outcome", "result", {
    Applied,
    Refused { reason: Rejection },
});

impl Outcome {
    /// Whether it took effect.
    pub fn is_applied(&self) -> bool {
        matches!(self, Outcome::Applied)
    }
}

/// Who signed, as far as the rules care.
enum Signer<'g> {
    Admin(&'g OrgDecl),
    Staff(StaffRecord),
    /// Not a registered key: possibly a prescription's access key.
    Other,
}

fn resolve_signer<'g>(
    g: &'g Genesis,
    st: &Overlay<'_>,
    key: &PublicKey,
) -> Result<Signer<'g>, CorruptState> {
    if let Some(org) = g.org_by_admin(key) {
        return Ok(Signer::Admin(org));
    }
    Ok(match st.get::<StaffRecord>(&staff_key(key))? {
        Some(s) => Signer::Staff(s),
        None => Signer::Other,
    })
}

/// Why a transition stopped early: a rule refused it, or the stored state
/// could not be read. Both convert with `?`, so each transition reads as a
/// list of checks.
enum Stop {
    Refused(Rejection),
    Corrupt(CorruptState),
}

impl From<Rejection> for Stop {
    fn from(r: Rejection) -> Self {
        Stop::Refused(r)
    }
}

impl From<CorruptState> for Stop {
    fn from(e: CorruptState) -> Self {
        Stop::Corrupt(e)
    }
}

/// What one transition returns.
type Step = Result<(), Stop>;

/// What every transition needs besides its body and the state.
struct Ctx<'g> {
    g: &'g Genesis,
    /// The signer as the rules see it.
    signer: Signer<'g>,
    /// The signing key itself.
    key: PublicKey,
    /// The transaction's id.
    tx: TxId,
    /// The block time.
    now: Timestamp,
    /// Writes that stand whatever the outcome, such as a spent claim-proof
    /// nonce: a refusal discards the transition's other writes, not these.
    kept: RefCell<WriteSet>,
}

impl Ctx<'_> {
    /// Writes `key` so that it stands even if the transaction is refused.
    fn keep(&self, key: Vec<u8>, value: Vec<u8>) {
        self.kept.borrow_mut().insert(key, Some(value));
    }
}

/// Applies one verified transaction at block time `now`.
///
/// `g` is the *effective* consortium ([`crate::governance::effective`]):
/// genesis with every executed governance decision applied. A governance
/// transaction may change it; the caller reads it again after one
/// ([`crate::block::execute`] does).
///
/// Returns the outcome; the overlay holds the effects. A refusal writes only
/// the seen marker and the prescription's refusal counters. `Err` means the
/// stored state itself is unreadable, which no transaction can cause.
pub fn apply(
    g: &Genesis,
    st: &mut Overlay<'_>,
    vtx: &VerifiedTx,
    now: Timestamp,
) -> Result<Outcome, CorruptState> {
    let seen = seen_key(&vtx.id());
    if st.get_raw(&seen).is_some() {
        // A replay changes nothing at all, not even counters.
        return Ok(Outcome::Refused {
            reason: Rejection::Duplicate,
        });
    }
    st.writes.insert(seen, Some(Vec::new()));
    // Effects are staged in a scratch overlay and merged only on success, so
    // a refusal can never leave half its writes behind.
    let (result, kept) = {
        let mut scratch = Overlay::new(&*st);
        let (r, kept) = apply_inner(g, &mut scratch, vtx, now)?;
        ((r, scratch.writes), kept)
    };
    st.writes.extend(kept);
    match result {
        (Ok(()), writes) => {
            st.writes.extend(writes);
            Ok(Outcome::Applied)
        }
        (Err(reason), _) => {
            if let Some(id) = vtx.tx().body.prescription() {
                if let Some(mut rx) = st.get::<PrescriptionRecord>(&rx_key(&id))? {
                    rx.refused_attempts += 1;
                    if let Rejection::WrongSecret { attempts } = reason {
                        rx.wrong_proofs = attempts;
                    }
                    st.put(rx_key(&id), &rx);
                }
            }
            Ok(Outcome::Refused { reason })
        }
    }
}

impl crate::state::StateRead for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.get_raw(key)
    }
}

/// The checks common to every kind, then the kind's own transition; with
/// the writes that stand whatever the outcome.
fn apply_inner(
    g: &Genesis,
    st: &mut Overlay<'_>,
    vtx: &VerifiedTx,
    now: Timestamp,
) -> Result<(Result<(), Rejection>, WriteSet), CorruptState> {
    let (step, kept) = match context(g, st, vtx, now) {
        Ok(cx) => {
            let step = dispatch(&cx, st, vtx);
            (step, cx.kept.into_inner())
        }
        Err(stop) => (Err(stop), WriteSet::new()),
    };
    match step {
        Ok(()) => Ok((Ok(()), kept)),
        Err(Stop::Refused(r)) => Ok((Err(r), kept)),
        Err(Stop::Corrupt(e)) => Err(e),
    }
}

/// The checks every kind shares (clock skew, a revoked signer, whether the
/// signer may sign this kind), and the context the transitions need. The
/// mempool's [`admissible`] runs exactly this.
fn context<'g>(
    g: &'g Genesis,
    st: &Overlay<'_>,
    vtx: &VerifiedTx,
    now: Timestamp,
) -> Result<Ctx<'g>, Stop> {
    let tx = vtx.tx();
    if tx.created_at.0 > now.0.saturating_add(g.params.max_clock_skew_ms) {
        return Err(Rejection::FromTheFuture.into());
    }
    let signer = resolve_signer(g, st, &tx.signer)?;
    if let Signer::Staff(s) = &signer {
        if let Some(r) = &s.revoked {
            return Err(Rejection::SignerRevoked { at: r.at }.into());
        }
    }
    let cx = Ctx {
        g,
        signer,
        key: tx.signer,
        tx: vtx.id(),
        now,
        kept: RefCell::new(WriteSet::new()),
    };
    admission::authorize(&cx, st, &tx.body)?;
    Ok(cx)
}

fn dispatch(cx: &Ctx<'_>, st: &mut Overlay<'_>, vtx: &VerifiedTx) -> Step {
    match &vtx.tx().body {
        TxBody::RegisterStaff(b) => staff::register(cx, st, b),
        TxBody::RevokeStaff(b) => staff::revoke(cx, st, b),
        TxBody::Issue(b) => issue::issue(cx, st, b),
        TxBody::Assign(b) => assign::assign(cx, st, b),
        TxBody::Claim(b) => claim::claim(cx, st, b),
        TxBody::Release(b) => claim::release(cx, st, b),
        TxBody::Dispense(b) => dispense::dispense(cx, st, b),
        TxBody::Cancel(b) => cancel::cancel(cx, st, b),
        TxBody::Delivery(b) => delivery::delivery(cx, st, b),
        TxBody::SetControlled(b) => controlled::set(cx, st, b),
        TxBody::HandToCarrier(b) => delivery::hand_to_carrier(cx, st, b),
        TxBody::Propose(b) => governance::propose(cx, st, b),
        TxBody::Approve(b) => governance::approve(cx, st, b),
        TxBody::LeaveNode(b) => governance::leave(cx, st, b),
        TxBody::GrantAccess(b) => consent::grant(cx, st, b),
        TxBody::RevokeAccess(b) => consent::revoke(cx, st, b),
        TxBody::RequestAccess(b) => consent::request(cx, st, b),
        TxBody::RefuseRequest(b) => consent::refuse(cx, st, b),
        TxBody::AnchorAccessLog(b) => consent::anchor(cx, st, b),
    }
}
