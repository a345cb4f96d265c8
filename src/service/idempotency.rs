//! Idempotency records: what a node signed for one `Idempotency-Key`, so a
//! retried request re-offers the same transaction instead of signing a new
//! one with a fresh nonce.
//!
//! Each record sits in the `idempotency` tree of the node's database under
//! a hash of the acting party's scope and the client's key. It holds the
//! fingerprint of the request (route and body hash), the signed transaction
//! and, for the doctor's issue, the QR payload. The payload carries the
//! prescription's access secret, so it is sealed with ChaCha20-Poly1305
//! under a key derived from the node key, bound to the record's key as
//! associated data; a copy of the database alone does not hand out codes.
//! Records live for [`TTL`] and are purged as new ones arrive.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use rxchain_contracts::{SecretKey, SignedTx, Timestamp};
use serde::{Deserialize, Serialize};
use sha3::{Digest, Sha3_256};

use crate::clock::now;
use crate::config::Secret;
use crate::keys::fill_random;
use crate::store::StoreError;

/// How long a key is remembered. A client retries within minutes; a day
/// covers a page left open overnight without keeping secrets for long.
pub const TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Expired records are swept at most this often, on an insert.
const PURGE_EVERY: Duration = Duration::from_secs(10 * 60);

/// A record's key in the tree: a hash of who acts and the client's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordKey([u8; 32]);

impl RecordKey {
    /// The key of `client_key` used by the party named by `scope` (staff:
    /// organisation and username; patient: the prescription id). Both parts
    /// are length-prefixed, so no two (scope, key) pairs share a hash input.
    pub fn new(scope: &[&str], client_key: &str) -> Self {
        let mut h = Sha3_256::new();
        h.update(b"rxchain-idempotency-key-v1\0");
        for part in scope.iter().chain(std::iter::once(&client_key)) {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        RecordKey(h.finalize().into())
    }
}

/// What a request was: its route, its path parameters and its body's hash.
/// The same key with another fingerprint is a client bug, not a retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

/// One remembered request.
#[derive(Debug)]
pub struct Record {
    /// The request it answers.
    pub fingerprint: Fingerprint,
    /// When it was first seen.
    pub created_at: Timestamp,
    /// The transaction signed for it.
    pub tx: SignedTx,
    /// Plaintext the handler needs to rebuild its answer (the doctor's QR
    /// payload); sealed at rest.
    pub secret: Option<Vec<u8>>,
}

/// A sealed blob as stored: nonce and ciphertext with its tag, hex.
#[derive(Serialize, Deserialize)]
struct Sealed {
    nonce: String,
    data: String,
}

/// A record as stored.
#[derive(Serialize, Deserialize)]
struct Stored {
    fingerprint: String,
    created_at: Timestamp,
    tx: SignedTx,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<Sealed>,
}

/// The idempotency records of one node. Shared as `Arc<Idempotency>`.
pub struct Idempotency {
    tree: sled::Tree,
    /// Seals the secrets records keep. Derived from the node key; never printed.
    seal_key: Secret<[u8; 32]>,
    /// When expired records were last swept (ms).
    last_purge: AtomicU64,
}

impl std::fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency").finish_non_exhaustive()
    }
}

fn corrupt(detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what: "idempotency record".into(),
        detail: detail.to_string(),
    }
}

impl Idempotency {
    /// Opens the `idempotency` tree of the node's database.
    pub fn open(db: &sled::Db, node_key: &SecretKey) -> Result<Self, StoreError> {
        let mut h = Sha3_256::new();
        h.update(b"rxchain-idempotency-seal-v1\0");
        h.update(node_key.to_bytes());
        Ok(Idempotency {
            tree: db.open_tree("idempotency")?,
            seal_key: Secret::new(h.finalize().into()),
            last_purge: AtomicU64::new(0),
        })
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(self.seal_key.expose().into())
    }

    fn encode(&self, key: &RecordKey, r: &Record) -> Result<Vec<u8>, StoreError> {
        let sealed = match &r.secret {
            None => None,
            Some(plain) => {
                let mut nonce = [0u8; 12];
                fill_random(&mut nonce);
                let data = self
                    .cipher()
                    .encrypt(
                        &nonce.into(),
                        Payload {
                            msg: plain,
                            aad: &key.0,
                        },
                    )
                    .map_err(|_| StoreError::Encode {
                        what: "idempotency record",
                        detail: "sealing failed".into(),
                    })?;
                Some(Sealed {
                    nonce: hex::encode(nonce),
                    data: hex::encode(data),
                })
            }
        };
        let stored = Stored {
            fingerprint: hex::encode(r.fingerprint.0),
            created_at: r.created_at,
            tx: r.tx.clone(),
            sealed,
        };
        serde_json::to_vec(&stored).map_err(|e| StoreError::Encode {
            what: "idempotency record",
            detail: e.to_string(),
        })
    }

    fn decode(&self, key: &RecordKey, bytes: &[u8]) -> Result<Record, StoreError> {
        let stored: Stored = serde_json::from_slice(bytes).map_err(corrupt)?;
        let fingerprint: [u8; 32] = hex::decode(&stored.fingerprint)
            .map_err(corrupt)?
            .try_into()
            .map_err(|_| corrupt("the fingerprint is not 32 bytes"))?;
        let secret = match stored.sealed {
            None => None,
            Some(s) => {
                let nonce: [u8; 12] = hex::decode(&s.nonce)
                    .map_err(corrupt)?
                    .try_into()
                    .map_err(|_| corrupt("the nonce is not 12 bytes"))?;
                let data = hex::decode(&s.data).map_err(corrupt)?;
                let plain = self
                    .cipher()
                    .decrypt(
                        &nonce.into(),
                        Payload {
                            msg: &data,
                            aad: &key.0,
                        },
                    )
                    .map_err(|_| corrupt("the sealed part does not open with this node's key"))?;
                Some(plain)
            }
        };
        Ok(Record {
            fingerprint: Fingerprint(fingerprint),
            created_at: stored.created_at,
            tx: stored.tx,
            secret,
        })
    }

    fn expired(r: &Record, t: Timestamp) -> bool {
        r.created_at.0.saturating_add(TTL.as_millis() as u64) <= t.0
    }

    /// The live record under `key`, if any.
    pub fn get(&self, key: &RecordKey) -> Result<Option<Record>, StoreError> {
        let Some(bytes) = self.tree.get(key.0)? else {
            return Ok(None);
        };
        let r = self.decode(key, &bytes)?;
        Ok((!Self::expired(&r, now())).then_some(r))
    }

    /// Stores `record` under `key` unless a live record is there already,
    /// atomically: of two concurrent first requests exactly one stores its
    /// transaction, and the other gets that one back. Answers `None` when
    /// `record` was stored, or the record that was there.
    pub fn insert(&self, key: &RecordKey, record: &Record) -> Result<Option<Record>, StoreError> {
        self.purge_now_and_then()?;
        let new = self.encode(key, record)?;
        loop {
            let current = self.tree.get(key.0)?;
            if let Some(bytes) = &current {
                let r = self.decode(key, bytes)?;
                if !Self::expired(&r, now()) {
                    return Ok(Some(r));
                }
            }
            // An expired record is replaced; a record that appeared or
            // changed meanwhile is read again.
            match self
                .tree
                .compare_and_swap(key.0, current, Some(new.clone()))?
            {
                Ok(()) => {
                    self.tree.flush()?;
                    return Ok(None);
                }
                Err(_) => continue,
            }
        }
    }

    /// Removes records older than [`TTL`], at most once per [`PURGE_EVERY`].
    fn purge_now_and_then(&self) -> Result<(), StoreError> {
        let t = now().0;
        let last = self.last_purge.load(Ordering::Relaxed);
        if t < last.saturating_add(PURGE_EVERY.as_millis() as u64)
            || self
                .last_purge
                .compare_exchange(last, t, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return Ok(());
        }
        self.purge_expired(Timestamp(t)).map(|_| ())
    }

    /// Removes every record expired at `t`; answers how many.
    pub fn purge_expired(&self, t: Timestamp) -> Result<usize, StoreError> {
        let mut removed = 0;
        for item in self.tree.iter() {
            let (k, v) = item?;
            // Only the timestamp matters here, and an unreadable record is
            // of no use to anyone: it goes too.
            let created = serde_json::from_slice::<Stored>(&v)
                .map(|s| s.created_at)
                .unwrap_or(Timestamp(0));
            if created.0.saturating_add(TTL.as_millis() as u64) <= t.0 {
                // Removed only if unchanged, so a fresh record written
                // meanwhile under the same key survives.
                if self
                    .tree
                    .compare_and_swap(&k, Some(v), None::<sled::IVec>)?
                    .is_ok()
                {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rxchain_contracts::tx::CancelReason;
    use rxchain_contracts::{Genesis, PrescriptionId};

    fn some_tx(g: &Genesis) -> SignedTx {
        let key = SecretKey::derive("test", b"idem");
        crate::txbuild::cancel(
            g,
            &key,
            PrescriptionId::from_bytes([7; 16]),
            CancelReason::PatientRequest,
        )
    }

    fn store(node: &str) -> (tempfile::TempDir, sled::Db, Idempotency) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let idem = Idempotency::open(&db, &SecretKey::derive("test", node.as_bytes())).unwrap();
        (dir, db, idem)
    }

    #[test]
    fn the_first_record_wins_secrets_are_sealed_and_old_ones_are_purged() {
        let demo = crate::demo::Demo::load().unwrap();
        let (_dir, db, idem) = store("a");
        let key = RecordKey::new(&["staff", "org", "dr.ada"], "k1");
        assert_ne!(key, RecordKey::new(&["staff", "org", "dr.ad"], "ak1"));
        let first = Record {
            fingerprint: Fingerprint([1; 32]),
            created_at: now(),
            tx: some_tx(&demo.genesis),
            secret: Some(b"RX1:secret".to_vec()),
        };
        assert!(idem.insert(&key, &first).unwrap().is_none());
        let second = Record {
            fingerprint: Fingerprint([2; 32]),
            secret: None,
            ..first
        };
        let kept = idem
            .insert(&key, &second)
            .unwrap()
            .expect("the first stays");
        assert_eq!(kept.fingerprint, Fingerprint([1; 32]));
        assert_eq!(kept.secret.as_deref(), Some(b"RX1:secret".as_slice()));
        // The secret is not in the database in plaintext.
        let raw = db
            .open_tree("idempotency")
            .unwrap()
            .get(key.0)
            .unwrap()
            .unwrap();
        assert!(!raw.windows(10).any(|w| w == b"RX1:secret"));
        // Another node key cannot open it.
        let other = Idempotency::open(&db, &SecretKey::derive("test", b"b")).unwrap();
        assert!(matches!(other.get(&key), Err(StoreError::Corrupt { .. })));
        // A day later it is gone.
        let later = Timestamp(now().0 + TTL.as_millis() as u64 + 1);
        assert_eq!(idem.purge_expired(later).unwrap(), 1);
        assert!(idem.get(&key).unwrap().is_none());
    }
}
