//! The access log: every read of a prescription's private content on this
//! node, who read it, for which organisation, when and why.
//!
//! Reads are not chain transactions (a read must not cost a Raft round, and
//! most of the consortium has no business knowing who read what). Each node
//! keeps its own append-only log in the sled tree `access`, never in a
//! block, a snapshot or a backup. Records form a hash chain: record `n`
//! carries the hash of record `n - 1`, and the node's head (`seq`, `hash`)
//! is anchored on the chain by an `anchor_access_log` transaction signed
//! with the node key (see `node::anchor`), at most once a second while
//! there are new records.
//!
//! What this gives, and what it does not:
//! * A read is recorded, and flushed to disk, before its content is
//!   answered: a crash never leaves an answered read unrecorded.
//! * Once anchored, the node cannot rewrite, reorder or drop a record up to
//!   the anchored sequence without [`AccessLog::verify`] failing against
//!   the chain, which every member holds.
//! * Records after the last anchor (at most about a second of reads) can be
//!   rewritten by whoever controls the node's disk until they are anchored.
//! * A node whose operator changes its code can skip recording; the log
//!   proves that a node's own account is consistent, not that a dishonest
//!   node was honest. Every honest node records every read it serves.

use std::sync::{Mutex, PoisonError};

use rxchain_contracts::{encoding, Hash, OrgId, PrescriptionId, PublicKey, Timestamp};
use serde::{Deserialize, Serialize};

/// The head of node `node`'s log as anchored on the chain, if ever. A
/// storage failure is logged and reads as no anchor.
pub fn anchored(
    chain: &crate::store::ChainStore,
    node: u64,
) -> Option<rxchain_contracts::state::AnchorRecord> {
    match chain.state_record(&rxchain_contracts::state::anchor_key(node)) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the anchored access-log head");
            None
        }
    }
}

/// Why private content was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// The holder of the QR code opened the patient page.
    PatientOpen,
    /// A staff list that shows patient names (the doctor's list).
    StaffList,
    /// A pharmacy's list opened the hand-over (QR payload, delivery address).
    PharmacyHandover,
    /// A FHIR export with the patient's identity.
    FhirExport,
    /// A grantee organisation read what the patient shared with it.
    SharedRead,
    /// A regulator's decrypted view.
    RegulatorView,
}

/// Who read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reader {
    /// The staff member's sign-in name; `None` for the patient.
    pub username: Option<String>,
    /// Display name ("the patient" for the QR code holder).
    pub name: String,
    /// The staff key that was active, if a staff member.
    pub key: Option<PublicKey>,
    /// The role, in the chain's words (`practitioner`, …, `patient`).
    pub role: String,
    /// The organisation the reader acted for.
    pub org: Option<OrgId>,
}

impl Reader {
    /// The holder of the QR code.
    pub fn patient() -> Reader {
        Reader {
            username: None,
            name: "the patient".into(),
            key: None,
            role: "patient".into(),
            org: None,
        }
    }
}

/// One read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    /// Position in this node's log, from 1.
    pub seq: u64,
    /// When (this node's clock).
    pub at: Timestamp,
    /// The node that served the read.
    pub node: u64,
    /// Which prescription.
    pub prescription: PrescriptionId,
    /// Who.
    pub reader: Reader,
    /// Why.
    pub purpose: Purpose,
    /// The hash of the previous record (zero for the first).
    pub prev: Hash,
}

impl AccessRecord {
    /// The record's link in the hash chain.
    pub fn hash(&self) -> Hash {
        Hash::of(&[
            b"rxchain-access-v1\0".as_slice(),
            encoding::to_bytes(self).as_slice(),
        ])
    }
}

/// Why the log could not be read or written, or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    /// The database failed.
    #[error("the access log's storage failed")]
    Sled(#[from] sled::Error),
    /// A stored record does not decode.
    #[error("access record {seq} is corrupt")]
    Corrupt {
        /// Which.
        seq: u64,
        /// Why.
        #[source]
        source: rxchain_contracts::encoding::DecodeError,
    },
    /// The hash chain is broken.
    #[error("access record {seq} does not link to the record before it")]
    Broken {
        /// The first record that does not link.
        seq: u64,
    },
    /// The log does not reach, or differs at, the anchored head.
    #[error("the access log differs from the head anchored on the chain at record {seq}")]
    AnchorMismatch {
        /// The anchored sequence number.
        seq: u64,
    },
}

/// The head of the log: the last sequence number and its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The last record's sequence number, 0 when empty.
    pub seq: u64,
    /// Its hash; zero when empty.
    pub hash: Hash,
}

const HEAD: &[u8] = b"head";

fn record_key(seq: u64) -> Vec<u8> {
    [b"r/".as_slice(), &seq.to_be_bytes()].concat()
}

fn rx_index_key(id: &PrescriptionId, seq: u64) -> Vec<u8> {
    [b"p/".as_slice(), id.as_bytes(), &seq.to_be_bytes()].concat()
}

/// This node's access log.
pub struct AccessLog {
    tree: sled::Tree,
    node: u64,
    /// Appends are serialised so that each links to the one before. A std
    /// lock: held for one small batch, never across an await.
    head: Mutex<Head>,
}

impl AccessLog {
    /// Opens the `access` tree of `db` for node `node`.
    pub fn open(db: &sled::Db, node: u64) -> Result<AccessLog, AccessLogError> {
        let tree = db.open_tree("access")?;
        let head = match tree.get(HEAD)? {
            Some(v) => encoding::from_bytes(&v)
                .map_err(|source| AccessLogError::Corrupt { seq: 0, source })?,
            None => Head {
                seq: 0,
                hash: Hash::from_bytes([0; 32]),
            },
        };
        Ok(AccessLog {
            tree,
            node,
            head: Mutex::new(head),
        })
    }

    /// Records a read and flushes it to disk; call it before the content
    /// is answered. Blocking: call it off the async runtime.
    pub fn record(
        &self,
        prescription: PrescriptionId,
        reader: Reader,
        purpose: Purpose,
        at: Timestamp,
    ) -> Result<AccessRecord, AccessLogError> {
        let mut out = self.record_all(vec![(prescription, reader, purpose)], at)?;
        out.pop().ok_or(AccessLogError::Broken { seq: 0 })
    }

    /// Records several reads (a list view) in one batch with one flush.
    pub fn record_all(
        &self,
        reads: Vec<(PrescriptionId, Reader, Purpose)>,
        at: Timestamp,
    ) -> Result<Vec<AccessRecord>, AccessLogError> {
        if reads.is_empty() {
            return Ok(Vec::new());
        }
        let mut head = self.head.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = *head;
        let mut batch = sled::Batch::default();
        let mut out = Vec::with_capacity(reads.len());
        for (prescription, reader, purpose) in reads {
            let rec = AccessRecord {
                seq: next.seq + 1,
                at,
                node: self.node,
                prescription,
                reader,
                purpose,
                prev: next.hash,
            };
            next = Head {
                seq: rec.seq,
                hash: rec.hash(),
            };
            batch.insert(record_key(rec.seq), encoding::to_bytes(&rec));
            batch.insert(rx_index_key(&prescription, rec.seq), Vec::new());
            out.push(rec);
        }
        batch.insert(HEAD, encoding::to_bytes(&next));
        self.tree.apply_batch(batch)?;
        self.tree.flush()?;
        *head = next;
        Ok(out)
    }

    /// The head now.
    pub fn head(&self) -> Head {
        *self.head.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self, seq: u64) -> Result<Option<AccessRecord>, AccessLogError> {
        self.tree
            .get(record_key(seq))?
            .map(|v| {
                encoding::from_bytes(&v).map_err(|source| AccessLogError::Corrupt { seq, source })
            })
            .transpose()
    }

    /// Every read of one prescription on this node, oldest first.
    pub fn of_prescription(
        &self,
        id: &PrescriptionId,
    ) -> Result<Vec<AccessRecord>, AccessLogError> {
        let prefix = [b"p/".as_slice(), id.as_bytes()].concat();
        let mut out = Vec::new();
        for r in self.tree.scan_prefix(&prefix) {
            let (k, _) = r?;
            let seq = k
                .get(prefix.len()..)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            if let Some(rec) = self.read(seq)? {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// Every record from `since` on (this node's clock), oldest first.
    pub fn since(&self, since: Timestamp) -> Result<Vec<AccessRecord>, AccessLogError> {
        let mut out = Vec::new();
        for r in self.tree.scan_prefix(b"r/") {
            let (k, v) = r?;
            let seq = k
                .get(2..)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            let rec: AccessRecord = encoding::from_bytes(&v)
                .map_err(|source| AccessLogError::Corrupt { seq, source })?;
            if rec.at >= since {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// Walks the whole hash chain and checks it against the head anchored
    /// on the chain (`anchored`: sequence number and hash), if any. Returns
    /// the number of records checked.
    pub fn verify(&self, anchored: Option<(u64, Hash)>) -> Result<u64, AccessLogError> {
        let head = self.head();
        let mut prev = Hash::from_bytes([0; 32]);
        for seq in 1..=head.seq {
            let rec = self.read(seq)?.ok_or(AccessLogError::Broken { seq })?;
            if rec.seq != seq || rec.prev != prev {
                return Err(AccessLogError::Broken { seq });
            }
            prev = rec.hash();
            if let Some((a, h)) = anchored {
                if a == seq && h != prev {
                    return Err(AccessLogError::AnchorMismatch { seq: a });
                }
            }
        }
        if prev != head.hash {
            return Err(AccessLogError::Broken { seq: head.seq });
        }
        if let Some((a, _)) = anchored {
            if a > head.seq {
                return Err(AccessLogError::AnchorMismatch { seq: a });
            }
        }
        Ok(head.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(name: &str) -> Reader {
        Reader {
            username: Some(name.into()),
            name: name.into(),
            key: None,
            role: "pharmacist".into(),
            org: Some(OrgId::parse("pharm-a").unwrap()),
        }
    }

    #[test]
    fn records_link_survive_a_reopen_and_tampering_breaks_the_anchor() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let log = AccessLog::open(&db, 7).unwrap();
        let a = PrescriptionId::from_bytes([1; 16]);
        let b = PrescriptionId::from_bytes([2; 16]);
        log.record(a, reader("x"), Purpose::StaffList, Timestamp(10))
            .unwrap();
        log.record(b, reader("y"), Purpose::FhirExport, Timestamp(20))
            .unwrap();
        let third = log
            .record(a, Reader::patient(), Purpose::PatientOpen, Timestamp(30))
            .unwrap();
        assert_eq!(third.seq, 3);
        assert_eq!(third.node, 7);
        let anchored = (log.head().seq, log.head().hash);
        assert_eq!(log.verify(Some(anchored)).unwrap(), 3);
        let of_a = log.of_prescription(&a).unwrap();
        assert_eq!(of_a.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(log.since(Timestamp(15)).unwrap().len(), 2);
        drop(log);

        // Reopened, the head and the chain continue.
        let log = AccessLog::open(&db, 7).unwrap();
        assert_eq!(log.head().seq, 3);
        let fourth = log
            .record(b, reader("z"), Purpose::SharedRead, Timestamp(40))
            .unwrap();
        assert_eq!(fourth.prev, third.hash());
        assert_eq!(log.verify(Some(anchored)).unwrap(), 4);
        // A list view's reads go in as one batch, linked like single ones.
        let many = log
            .record_all(
                vec![
                    (a, reader("w"), Purpose::StaffList),
                    (b, reader("w"), Purpose::StaffList),
                ],
                Timestamp(50),
            )
            .unwrap();
        assert_eq!(many.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![5, 6]);
        assert_eq!(many[0].prev, fourth.hash());
        assert_eq!(many[1].prev, many[0].hash());
        assert_eq!(log.verify(Some(anchored)).unwrap(), 6);
        assert!(log
            .record_all(Vec::new(), Timestamp(60))
            .unwrap()
            .is_empty());

        // Rewriting an anchored record (another reader's name) is caught.
        let tree = db.open_tree("access").unwrap();
        let mut forged = log.read(2).unwrap().unwrap();
        forged.reader.name = "someone else".into();
        tree.insert(record_key(2), encoding::to_bytes(&forged))
            .unwrap();
        assert!(matches!(
            log.verify(Some(anchored)),
            Err(AccessLogError::Broken { seq: 3 })
        ));
        // Even rewritten consistently up to the head, the anchor differs.
        let mut prev = log.read(1).unwrap().unwrap().hash();
        for seq in 2..=6 {
            let mut r = if seq == 2 {
                forged.clone()
            } else {
                log.read(seq).unwrap().unwrap()
            };
            r.prev = prev;
            prev = r.hash();
            tree.insert(record_key(seq), encoding::to_bytes(&r))
                .unwrap();
        }
        tree.insert(HEAD, encoding::to_bytes(&Head { seq: 6, hash: prev }))
            .unwrap();
        let log = AccessLog::open(&db, 7).unwrap();
        assert!(matches!(
            log.verify(Some(anchored)),
            Err(AccessLogError::AnchorMismatch { seq: 3 })
        ));
        assert_eq!(log.verify(None).unwrap(), 6);
    }
}
