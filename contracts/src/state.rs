//! World state: typed records over a small key-value storage trait.
//!
//! The contracts read through [`StateRead`] and collect writes in a
//! [`WriteSet`]; the node commits a block's write set atomically (sled batch),
//! tests use [`MemStore`]. Keys are `prefix/` followed by raw id bytes, so an
//! ordered store keeps records of one kind together.

use std::collections::BTreeMap;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::crypto::{Hash, PublicKey};
use crate::encoding::{self, DecodeError};
use crate::model::{Label, OrgId, PrescriptionId, Timestamp};
use crate::privacy::AccessSecret;
use crate::tx::{CancelReason, DeliveryStatus, Fulfilment, Item, RevokeReason, Role, TxId};

/// Read access to committed state.
pub trait StateRead {
    /// The value under `key`, if any.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
}

/// Ordered iteration over all state, for the state digest.
pub trait StateScan: StateRead {
    /// Every `(key, value)` pair in ascending key order.
    fn scan(&self) -> Box<dyn Iterator<Item = (Vec<u8>, Vec<u8>)> + '_>;
}

/// Writes produced by applying transactions; `None` deletes.
pub type WriteSet = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// An in-memory store, for tests and the offline verifier.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemStore(pub BTreeMap<Vec<u8>, Vec<u8>>);

impl MemStore {
    /// Applies a write set.
    pub fn commit(&mut self, writes: &WriteSet) {
        for (k, v) in writes {
            match v {
                Some(v) => {
                    self.0.insert(k.clone(), v.clone());
                }
                None => {
                    self.0.remove(k);
                }
            }
        }
    }
}

impl StateRead for MemStore {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get(key).cloned()
    }
}

impl StateScan for MemStore {
    fn scan(&self) -> Box<dyn Iterator<Item = (Vec<u8>, Vec<u8>)> + '_> {
        Box::new(self.0.iter().map(|(k, v)| (k.clone(), v.clone())))
    }
}

/// One hash over the whole state, so two nodes can compare state in one value:
/// SHA3-256 over `"rxchain-state-v1\0"` then, for each pair in key order, the
/// canonical encoding of `(key, value)`.
pub fn state_digest(store: &dyn StateScan) -> Hash {
    use sha3::{Digest, Sha3_256};
    let mut h = Sha3_256::new();
    h.update(b"rxchain-state-v1\0");
    for (k, v) in store.scan() {
        h.update(encoding::to_bytes(&(k.as_slice(), v.as_slice())));
    }
    Hash::from_bytes(h.finalize().into())
}

/// State that cannot be decoded: the store is corrupt or from another version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state record {key} is corrupt: {source}")]
pub struct CorruptState {
    /// The key, hex-encoded.
    pub key: String,
    /// The decode failure.
    pub source: DecodeError,
}

/// Reads through pending writes to the committed state.
pub struct Overlay<'a> {
    base: &'a dyn StateRead,
    /// Writes made so far.
    pub writes: WriteSet,
}

impl<'a> Overlay<'a> {
    /// An overlay with no writes yet.
    pub fn new(base: &'a dyn StateRead) -> Self {
        Overlay {
            base,
            writes: WriteSet::new(),
        }
    }

    /// Raw read.
    pub fn get_raw(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.writes.get(key) {
            Some(v) => v.clone(),
            None => self.base.get(key),
        }
    }

    /// Typed read.
    pub fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, CorruptState> {
        self.get_raw(key)
            .map(|b| {
                encoding::from_bytes(&b).map_err(|source| CorruptState {
                    key: hex::encode(key),
                    source,
                })
            })
            .transpose()
    }

    /// Typed write.
    pub fn put<T: Serialize>(&mut self, key: Vec<u8>, value: &T) {
        self.writes.insert(key, Some(encoding::to_bytes(value)));
    }
}

/// Key of a staff record.
pub fn staff_key(k: &PublicKey) -> Vec<u8> {
    [b"staff/".as_slice(), k.as_bytes()].concat()
}
/// Key of a prescription record.
pub fn rx_key(id: &PrescriptionId) -> Vec<u8> {
    [b"rx/".as_slice(), id.as_bytes()].concat()
}
/// Key marking a transaction id as seen (applied or refused).
pub fn seen_key(id: &TxId) -> Vec<u8> {
    [b"seen/".as_slice(), id.0.as_bytes()].concat()
}
/// Key of the controlled-drug list in force, once a regulator changed it
/// (see [`crate::controlled::ControlledList::current`]).
pub fn controlled_key() -> Vec<u8> {
    b"controlled".to_vec()
}
/// Key marking a claim nonce as used for a prescription.
pub fn claim_nonce_key(id: &PrescriptionId, nonce: &[u8; 16]) -> Vec<u8> {
    [b"cnonce/".as_slice(), id.as_bytes(), nonce].concat()
}

/// A registered staff member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StaffRecord {
    /// The staff key.
    pub key: PublicKey,
    /// Their organisation.
    pub org: OrgId,
    /// What they may sign.
    pub role: Role,
    /// Licence number.
    pub licence: Label,
    /// Display name.
    pub name: Label,
    /// When registered (block time).
    pub registered_at: Timestamp,
    /// Set once revoked; a revoked key signs nothing from then on.
    pub revoked: Option<Revocation>,
}

/// When and why a key was revoked, and by whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Revocation {
    /// Block time of the revocation.
    pub at: Timestamp,
    /// Why.
    pub reason: RevokeReason,
    /// The admin or regulator key that revoked.
    pub by: PublicKey,
}

/// Where a prescription is in its lifecycle. Expiry is not stored: it follows
/// from `valid_until` and the block time (see [`PrescriptionRecord::public_status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RxStatus {
    /// Issued, not assigned.
    Issued,
    /// The patient chose pickup or delivery.
    Assigned,
    /// Locked by one pharmacy.
    Claimed,
    /// Fully dispensed or closed by the pharmacy.
    Completed,
    /// Cancelled by prescriber or patient.
    Cancelled,
}

/// The status as people see it, including time-derived expiry and partial fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PublicStatus {
    /// Issued, not assigned.
    Issued,
    /// Assigned to a pharmacy or delivery.
    Assigned,
    /// Claimed, nothing dispensed yet.
    Claimed,
    /// Some dispensed, allowance remains.
    PartiallyDispensed,
    /// Closed after dispensing.
    Completed,
    /// Cancelled.
    Cancelled,
    /// Past its validity window without completion.
    Expired,
}

impl PublicStatus {
    /// Whether the prescription may still be acted on: not completed,
    /// cancelled or expired. The chain's own check (which also refuses a
    /// prescription that is not yet valid, and names the reason) is
    /// [`crate::lifecycle::claimable_by`].
    pub fn is_open(self) -> bool {
        !matches!(
            self,
            PublicStatus::Completed | PublicStatus::Cancelled | PublicStatus::Expired
        )
    }
}

/// The pharmacy holding the lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimInfo {
    /// The pharmacy.
    pub pharmacy: OrgId,
    /// The pharmacist who claimed.
    pub by: PublicKey,
    /// Block time.
    pub at: Timestamp,
}

/// One dispense.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Fill {
    /// Where.
    pub pharmacy: OrgId,
    /// Who.
    pub by: PublicKey,
    /// When (block time).
    pub at: Timestamp,
    /// What: `(item index, quantity, batch)`.
    pub lines: Vec<(u16, u32, Label)>,
    /// The transaction.
    pub tx: TxId,
}

/// One delivery or pickup event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryRecord {
    /// The status reached.
    pub status: DeliveryStatus,
    /// Who recorded it.
    pub by: PublicKey,
    /// When (block time).
    pub at: Timestamp,
}

/// A prescription's public state. Nothing here names the patient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrescriptionRecord {
    /// Its id.
    pub id: PrescriptionId,
    /// The issuing hospital.
    pub hospital: OrgId,
    /// The prescriber's key.
    pub prescriber: PublicKey,
    /// The issue transaction, whose signature covers the whole content.
    pub issue_tx: TxId,
    /// Block time of issue.
    pub issued_at: Timestamp,
    /// Start of validity.
    pub valid_from: Timestamp,
    /// End of validity (exclusive).
    pub valid_until: Timestamp,
    /// The drugs.
    pub items: Vec<Item>,
    /// Repeat fills allowed after the first.
    pub repeats: u8,
    /// Whether any item is controlled.
    pub controlled: bool,
    /// Public key derived from the QR access secret.
    pub access_key: PublicKey,
    /// Stored lifecycle status.
    pub status: RxStatus,
    /// The patient's choice.
    pub fulfilment: Option<Fulfilment>,
    /// The current lock, kept after completion to show who completed it.
    pub claim: Option<ClaimInfo>,
    /// Units dispensed so far, per item.
    pub dispensed: Vec<u32>,
    /// Every fill.
    pub fills: Vec<Fill>,
    /// Delivery and pickup events.
    pub delivery: Vec<DeliveryRecord>,
    /// When it was completed.
    pub completed_at: Option<Timestamp>,
    /// When, why and by whom it was cancelled.
    pub cancelled: Option<(Timestamp, CancelReason, PublicKey)>,
    /// Claims refused for a wrong access proof.
    pub wrong_proofs: u32,
    /// All refused transactions about this prescription.
    pub refused_attempts: u32,
    /// The logistics member the claiming pharmacy handed the delivery to
    /// ([`crate::tx::HandToCarrier`]); only its couriers, besides the
    /// pharmacy's own staff, record the delivery's progress.
    pub carrier: Option<OrgId>,
}

impl PrescriptionRecord {
    /// The most that may ever be dispensed of item `i`: quantity × (1 + repeats).
    pub fn allowance(&self, i: usize) -> u64 {
        u64::from(self.items[i].quantity.get()) * (1 + u64::from(self.repeats))
    }

    /// What may still be dispensed of item `i`: its [allowance](Self::allowance)
    /// minus what was dispensed so far. The chain refuses a dispense that
    /// asks for more (`exceeds_allowance`, naming this number).
    pub fn remaining(&self, i: usize) -> u64 {
        self.allowance(i)
            .saturating_sub(u64::from(self.dispensed.get(i).copied().unwrap_or(0)))
    }

    /// [`remaining`](Self::remaining) for every item, in item order, so that
    /// clients need not repeat the formula.
    pub fn remaining_allowance(&self) -> Vec<u64> {
        (0..self.items.len()).map(|i| self.remaining(i)).collect()
    }

    /// Whether `secret` is this prescription's QR secret: its derived key is
    /// the access key recorded at issue. Anyone may check it; only the
    /// holder of the QR code can pass it.
    pub fn secret_matches(&self, secret: &AccessSecret) -> bool {
        secret.access_key() == self.access_key
    }

    /// Whether every item has reached its allowance.
    pub fn fully_dispensed(&self) -> bool {
        (0..self.items.len()).all(|i| u64::from(self.dispensed[i]) >= self.allowance(i))
    }

    /// Whether anything has been dispensed.
    pub fn any_dispensed(&self) -> bool {
        self.dispensed.iter().any(|&d| d > 0)
    }

    /// Whether `now` is past the validity window.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now >= self.valid_until
    }

    /// The status people see at `now`.
    pub fn public_status(&self, now: Timestamp) -> PublicStatus {
        match self.status {
            RxStatus::Cancelled => PublicStatus::Cancelled,
            RxStatus::Completed => PublicStatus::Completed,
            _ if self.is_expired(now) => PublicStatus::Expired,
            _ if self.any_dispensed() => PublicStatus::PartiallyDispensed,
            RxStatus::Claimed => PublicStatus::Claimed,
            RxStatus::Assigned => PublicStatus::Assigned,
            RxStatus::Issued => PublicStatus::Issued,
        }
    }

    /// The last fill, if any.
    pub fn last_fill(&self) -> Option<&Fill> {
        self.fills.last()
    }
}
