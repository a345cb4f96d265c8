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
use crate::tx::{
    CancelReason, DeliveryProblem, DeliveryStatus, Fulfilment, HandOver, Item, RevokeReason, Role,
    TxId,
};

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

/// Key of the grant of one prescription to one organisation.
pub fn grant_key(id: &PrescriptionId, org: &OrgId) -> Vec<u8> {
    [grant_prefix(id).as_slice(), org.as_str().as_bytes()].concat()
}
/// Prefix of every grant of one prescription.
pub fn grant_prefix(id: &PrescriptionId) -> Vec<u8> {
    [b"grant/".as_slice(), id.as_bytes()].concat()
}
/// Key marking that a prescription was ever shared with an organisation,
/// so an organisation's shared prescriptions can be listed.
pub fn grantee_key(org: &OrgId, id: &PrescriptionId) -> Vec<u8> {
    [grantee_prefix(org).as_slice(), id.as_bytes()].concat()
}
/// Prefix of every prescription ever shared with an organisation. The
/// organisation id ends with a `/`, which ids never contain, so one
/// organisation's prefix is never another's.
pub fn grantee_prefix(org: &OrgId) -> Vec<u8> {
    [b"grantee/".as_slice(), org.as_str().as_bytes(), b"/"].concat()
}
/// Key of one organisation's access request for one prescription.
pub fn request_key(id: &PrescriptionId, org: &OrgId) -> Vec<u8> {
    [request_prefix(id).as_slice(), org.as_str().as_bytes()].concat()
}
/// Prefix of every access request for one prescription.
pub fn request_prefix(id: &PrescriptionId) -> Vec<u8> {
    [b"areq/".as_slice(), id.as_bytes()].concat()
}

/// Key of a node's last anchored access-log head.
pub fn anchor_key(node: crate::model::NodeId) -> Vec<u8> {
    [b"alog/".as_slice(), &node.to_be_bytes()].concat()
}

/// The head of a node's access log as last anchored on the chain
/// ([`crate::tx::AnchorAccessLog`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AnchorRecord {
    /// The last anchored record's sequence number.
    pub seq: u64,
    /// Its hash.
    pub head: Hash,
    /// Block time of the anchor.
    pub at: Timestamp,
    /// The anchor transaction.
    pub tx: TxId,
}

/// A patient's grant of read access to one organisation
/// ([`crate::tx::GrantAccess`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GrantRecord {
    /// The organisation that may read.
    pub org: OrgId,
    /// Block time of the grant.
    pub granted_at: Timestamp,
    /// End of access (exclusive).
    pub until: Timestamp,
    /// The digest of the content key's wrap for the organisation's data
    /// key. The wrap itself is in the grant transaction (`tx`), where the
    /// nodes erase it after retention; state never holds ciphertext a node
    /// could delete, so every node's state root stays the same.
    pub key_for_org: crate::crypto::Hash,
    /// The grant transaction.
    pub tx: TxId,
    /// When the patient revoked it, if they did.
    pub revoked_at: Option<Timestamp>,
}

impl GrantRecord {
    /// Whether the organisation may read at `now`: not revoked, not ended.
    /// This is the check every node makes before it opens shared content,
    /// and the refusal names why not.
    pub fn check_active(&self, now: Timestamp) -> Result<(), crate::rejection::Rejection> {
        if let Some(at) = self.revoked_at {
            return Err(crate::rejection::Rejection::GrantRevoked {
                org: self.org.clone(),
                at,
            });
        }
        if now >= self.until {
            return Err(crate::rejection::Rejection::GrantExpired {
                org: self.org.clone(),
                at: self.until,
            });
        }
        Ok(())
    }
}

/// Where an access request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RequestStatus {
    /// Waiting for the patient.
    Pending,
    /// The patient granted access.
    Approved,
    /// The patient refused.
    Refused,
}

/// An organisation's request for access to one prescription
/// ([`crate::tx::RequestAccess`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessRequest {
    /// The asking organisation.
    pub org: OrgId,
    /// The staff key that asked.
    pub by: PublicKey,
    /// Block time of the request.
    pub at: Timestamp,
    /// Until when access is asked for.
    pub until: Timestamp,
    /// The request transaction.
    pub tx: TxId,
    /// Where it stands.
    pub status: RequestStatus,
    /// When the patient answered.
    pub answered_at: Option<Timestamp>,
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
    /// Why it failed or was returned.
    pub problem: Option<DeliveryProblem>,
    /// How it was handed over, when delivered.
    pub hand_over: Option<HandOver>,
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

    /// When the prescription ended: completed, cancelled, or the end of its
    /// validity window if it is still open then. `None` while it is open.
    pub fn ended_at(&self, now: Timestamp) -> Option<Timestamp> {
        match self.status {
            RxStatus::Completed => Some(self.completed_at.unwrap_or(self.valid_until)),
            RxStatus::Cancelled => Some(self.cancelled.as_ref().map_or(self.valid_until, |c| c.0)),
            _ if self.is_expired(now) => Some(self.valid_until),
            _ => None,
        }
    }

    /// When the retention of its personal data ends, `days` after it
    /// [ended](Self::ended_at); `None` while it is open.
    pub fn erased_at(&self, now: Timestamp, days: u32) -> Option<Timestamp> {
        self.ended_at(now).map(|t| t.plus_days(days))
    }

    /// Whether the retention of its personal data (`days` after the end) is
    /// over at `now`: the organisations' nodes have deleted their key wraps.
    pub fn is_erased(&self, now: Timestamp, days: u32) -> bool {
        self.erased_at(now, days).is_some_and(|t| now >= t)
    }
}
