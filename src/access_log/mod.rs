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
//! * A [`Proof`] shows one prescription's records to another node (for the
//!   patient's "who looked") with only salted digests of the others, and
//!   [`check`] links the shown records to the anchored head: a shown read
//!   cannot have been changed after it was anchored. It cannot prove that
//!   none was withheld (a withheld record looks like any other digest).

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Random bytes, so that the [`body_digest`](Self::body_digest) of a
    /// record shown to nobody reveals nothing about it.
    pub salt: Hash,
    /// The hash of the previous record (zero for the first).
    pub prev: Hash,
}

impl AccessRecord {
    /// The digest of everything in the record but its link: what a node
    /// hands out in place of a record it does not show ([`Proof`]).
    pub fn body_digest(&self) -> Hash {
        let body = AccessRecord {
            prev: ZERO,
            ..self.clone()
        };
        Hash::of(&[
            b"rxchain-access-body-v2\0".as_slice(),
            encoding::to_bytes(&body).as_slice(),
        ])
    }

    /// The record's link in the hash chain: the previous link and this
    /// record's [`body_digest`](Self::body_digest).
    pub fn hash(&self) -> Hash {
        link(&self.prev, &self.body_digest())
    }
}

const ZERO: Hash = Hash::from_bytes([0; 32]);

/// A link of the hash chain from the previous link and a body digest.
pub fn link(prev: &Hash, body_digest: &Hash) -> Hash {
    Hash::of(&[
        b"rxchain-access-v2\0".as_slice(),
        prev.as_bytes().as_slice(),
        body_digest.as_bytes().as_slice(),
    ])
}

fn salt() -> Hash {
    let mut b = [0u8; 32];
    // No entropy at all is a broken machine; a zero salt then only makes
    // the hidden digests guessable, never the chain wrong.
    if let Err(e) = getrandom::fill(&mut b) {
        tracing::error!(error = %e, "no randomness for an access record's salt");
    }
    Hash::from_bytes(b)
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

/// The head of the log: the last sequence number and its hash. Named
/// `AccessLogHead` in the OpenAPI document, apart from the chain's `Head`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = AccessLogHead)]
pub struct Head {
    /// The last record's sequence number, 0 when empty.
    pub seq: u64,
    /// Its hash; zero when empty.
    pub hash: Hash,
}

/// The most body digests a [`Proof`] carries (about 1.3 MB of JSON): a
/// prescription whose first read on a node is further back than this many
/// records gets its records without the means to check them.
pub const MAX_PROOF_RECORDS: u64 = 20_000;

/// One node's account of the reads of one prescription, checkable against
/// the head that node anchored on the chain without showing any other
/// prescription's reads: the records themselves, and from the first of
/// them on, the [`AccessRecord::body_digest`] of every record of the log
/// (salted, so a digest reveals nothing), up to the node's head or
/// [`MAX_PROOF_RECORDS`] of them. Anyone holding the anchored head can then
/// recompute the links from the first record to it ([`check`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Proof {
    /// The node whose log it is.
    pub node: u64,
    /// The prescription's records, oldest first.
    pub records: Vec<AccessRecord>,
    /// The sequence number of `digests[0]`: the first record's.
    pub from: u64,
    /// The body digest of every record from `from` on, in order.
    pub digests: Vec<Hash>,
    /// The node's head when it answered.
    pub head: Head,
}

/// What [`check`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The node has no record of the prescription.
    Nothing,
    /// The records up to `seq` link to the head anchored at `seq`; any
    /// later ones are not anchored yet.
    Anchored {
        /// The anchored sequence number.
        seq: u64,
    },
    /// The anchor is older than the first record: nothing is anchored yet.
    NotYetAnchored,
    /// The anchor lies beyond the digests sent ([`MAX_PROOF_RECORDS`]).
    OutOfReach,
    /// The records do not link to each other or to the anchored head.
    Broken,
}

/// Checks `proof` against the head its node anchored on the chain
/// (`anchored`: sequence number and hash), if any.
pub fn check(proof: &Proof, anchored: Option<(u64, Hash)>) -> Verdict {
    let Some(first) = proof.records.first() else {
        return Verdict::Nothing;
    };
    let len = proof.digests.len() as u64;
    if first.seq != proof.from || len == 0 {
        return Verdict::Broken;
    }
    // Records in order, of this node, each matching its digest.
    let mut last = 0;
    for r in &proof.records {
        if r.node != proof.node || r.seq <= last {
            return Verdict::Broken;
        }
        last = r.seq;
        if let Some(d) = r
            .seq
            .checked_sub(proof.from)
            .and_then(|i| proof.digests.get(i as usize))
        {
            if *d != r.body_digest() {
                return Verdict::Broken;
            }
        }
    }
    // Walk the links; a record's own `prev` must be the link before it.
    let mut records = proof.records.iter().peekable();
    let mut prev = first.prev;
    let mut at_anchor = None;
    for (i, d) in proof.digests.iter().enumerate() {
        let seq = proof.from + i as u64;
        if let Some(r) = records.next_if(|r| r.seq == seq) {
            if r.prev != prev {
                return Verdict::Broken;
            }
        }
        prev = link(&prev, d);
        if anchored.is_some_and(|(a, _)| a == seq) {
            at_anchor = Some(prev);
        }
    }
    match anchored {
        None => Verdict::NotYetAnchored,
        Some((a, _)) if a < proof.from => Verdict::NotYetAnchored,
        Some((a, _)) if a >= proof.from + len => Verdict::OutOfReach,
        Some((a, h)) if at_anchor == Some(h) => Verdict::Anchored { seq: a },
        Some(_) => Verdict::Broken,
    }
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
                salt: salt(),
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

    /// This node's [`Proof`] for the reads of one prescription: at most
    /// `max` digests.
    pub fn proof(&self, id: &PrescriptionId, max: u64) -> Result<Proof, AccessLogError> {
        let head = self.head();
        let records = self.of_prescription(id)?;
        let Some(first) = records.first().map(|r| r.seq) else {
            return Ok(Proof {
                node: self.node,
                records,
                from: 0,
                digests: Vec::new(),
                head,
            });
        };
        let to = head.seq.min(first.saturating_add(max.max(1) - 1));
        let mut digests = Vec::new();
        for r in self.tree.range(record_key(first)..=record_key(to)) {
            let (k, v) = r?;
            let seq = k
                .get(2..)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            let rec: AccessRecord = encoding::from_bytes(&v)
                .map_err(|source| AccessLogError::Corrupt { seq, source })?;
            digests.push(rec.body_digest());
        }
        Ok(Proof {
            node: self.node,
            records,
            from: first,
            digests,
            head,
        })
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

    #[test]
    fn a_proof_shows_one_prescriptions_reads_and_checks_against_the_anchor() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let log = AccessLog::open(&db, 2).unwrap();
        let a = PrescriptionId::from_bytes([1; 16]);
        let b = PrescriptionId::from_bytes([2; 16]);
        let c = PrescriptionId::from_bytes([3; 16]);
        // b, a, b, b, a, b: a's reads are seq 2 and 5.
        for (i, id) in [b, a, b, b, a, b].iter().enumerate() {
            log.record(*id, reader("x"), Purpose::StaffList, Timestamp(i as u64))
                .unwrap();
        }
        let head = log.head();
        assert_eq!(head.seq, 6);
        let p = log.proof(&a, MAX_PROOF_RECORDS).unwrap();
        assert_eq!(
            p.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![2, 5]
        );
        assert_eq!((p.from, p.digests.len()), (2, 5));
        // Only a's records are shown; the others are bare digests.
        assert!(p.records.iter().all(|r| r.prescription == a));
        assert_eq!(
            check(&p, Some((head.seq, head.hash))),
            Verdict::Anchored { seq: 6 }
        );
        // Anchored in the middle: the first record is checked, the second
        // is not anchored yet.
        let mid = log.read(3).unwrap().unwrap().hash();
        assert_eq!(check(&p, Some((3, mid))), Verdict::Anchored { seq: 3 });
        assert_eq!(check(&p, Some((3, head.hash))), Verdict::Broken);
        // An anchor before the first record, or none: not anchored yet.
        let one = log.read(1).unwrap().unwrap().hash();
        assert_eq!(check(&p, Some((1, one))), Verdict::NotYetAnchored);
        assert_eq!(check(&p, None), Verdict::NotYetAnchored);
        // Fewer digests than reach the anchor: out of reach, not wrong.
        let short = log.proof(&a, 2).unwrap();
        assert_eq!(short.digests.len(), 2);
        assert_eq!(
            check(&short, Some((head.seq, head.hash))),
            Verdict::OutOfReach
        );
        assert_eq!(check(&short, Some((3, mid))), Verdict::Anchored { seq: 3 });
        // A reader renamed, a record dropped, a digest changed, another
        // node's record: all broken.
        let mut renamed = p.clone();
        renamed.records[1].reader.name = "someone else".into();
        assert_eq!(
            check(&renamed, Some((head.seq, head.hash))),
            Verdict::Broken
        );
        let mut renamed_and_digest = renamed.clone();
        renamed_and_digest.digests[3] = renamed.records[1].body_digest();
        assert_eq!(
            check(&renamed_and_digest, Some((head.seq, head.hash))),
            Verdict::Broken
        );
        let mut dropped = p.clone();
        dropped.records.remove(0);
        assert_eq!(
            check(&dropped, Some((head.seq, head.hash))),
            Verdict::Broken
        );
        let mut other = p.clone();
        other.node = 3;
        assert_eq!(check(&other, Some((head.seq, head.hash))), Verdict::Broken);
        // No reads at all.
        let none = log.proof(&c, MAX_PROOF_RECORDS).unwrap();
        assert!(none.records.is_empty() && none.digests.is_empty());
        assert_eq!(check(&none, Some((head.seq, head.hash))), Verdict::Nothing);
        // The salt hides a record: two otherwise equal reads differ.
        let x = log
            .record(c, reader("y"), Purpose::StaffList, Timestamp(9))
            .unwrap();
        let mut y = x.clone();
        y.salt = salt();
        assert_ne!(x.body_digest(), y.body_digest());
    }
}
