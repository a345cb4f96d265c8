//! The chain store on real sled: blocks built by the contracts' `propose`
//! are applied with `apply_block`, the database is reopened, and every read
//! and index is checked against what the blocks did, and the state digest
//! against the offline verifier's.

use std::sync::Arc;

use common::genesis::{org, synthetic_genesis, test_key as sk};
use rxchain::store::{self, NoObserver, Storage, StoreError};
use rxchain_contracts::block::{propose, Block, Tip};
use rxchain_contracts::cert::ClockProof;
use rxchain_contracts::genesis::OrgKind;
use rxchain_contracts::lifecycle::Rejection;
use rxchain_contracts::privacy::{self, AccessSecret};
use rxchain_contracts::state::RxStatus;
use rxchain_contracts::tx::{
    claim_proof_message, AssignRx, CancelReason, CancelRx, ClaimRx, DeliveryEvent, DeliveryStatus,
    DispenseLine, DispenseRx, Fulfilment, IssueRx, Item, RegisterStaff, Role, Transaction, TxBody,
    CLAIM_PROOF_TAG,
};
use rxchain_contracts::verify::verify_chain;
use rxchain_contracts::{
    AtcCode, Genesis, Label, OrgId, Outcome, PrescriptionId, Quantity, SecretKey, SignedTx,
    Timestamp, VerifiedTx,
};
use tempfile::TempDir;

mod common;

const T0: u64 = 1_700_000_000_000;
const DAY: u64 = Timestamp::DAY_MS;

fn label(s: &str) -> Label {
    Label::parse(s).expect("valid label")
}

fn org_id(s: &str) -> OrgId {
    OrgId::parse(s).expect("valid org id")
}

fn genesis(chain: &str) -> Genesis {
    synthetic_genesis(
        chain,
        Timestamp(T0 - DAY),
        &[
            org("hosp-a", OrgKind::Hospital, &[1]),
            org("pharm-b", OrgKind::Pharmacy, &[]),
            org("pharm-c", OrgKind::Pharmacy, &[]),
            org("regulator", OrgKind::Regulator, &[]),
        ],
    )
}

/// Builds signed transactions for one genesis.
struct Txs<'g> {
    g: &'g Genesis,
    nonce: u64,
}

impl<'g> Txs<'g> {
    fn sign(&mut self, key: &SecretKey, at: u64, body: TxBody) -> SignedTx {
        self.nonce += 1;
        Transaction {
            signer: key.public(),
            nonce: self.nonce,
            created_at: Timestamp(at),
            body,
        }
        .sign(self.g.chain_id.as_str(), key)
    }

    fn register(&mut self, org: &str, who: &SecretKey, role: Role, at: u64) -> SignedTx {
        let body = TxBody::RegisterStaff(RegisterStaff {
            org: org_id(org),
            key: who.public(),
            role,
            licence: label("LIC-1"),
            name: label("Staff Member"),
        });
        self.sign(&sk(&format!("{org}-admin")), at, body)
    }

    fn issue(
        &mut self,
        doctor: &SecretKey,
        id: PrescriptionId,
        secret: &AccessSecret,
        at: u64,
    ) -> SignedTx {
        let mut counter = 0u8;
        let mut entropy = |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                counter = counter.wrapping_add(1);
                *b = counter;
            }
        };
        let content_key = [7u8; 32];
        let ctx = privacy::content_context(&id);
        let sealed = privacy::seal(&content_key, &ctx, b"patient details", &mut entropy);
        let key_for_patient = privacy::wrap_for_secret(secret, &ctx, &content_key, &mut entropy);
        let hospital = self.g.org(&org_id("hosp-a")).expect("hospital").data_key;
        let key_for_hospital = privacy::wrap_for_key(&hospital, &ctx, &content_key, &mut entropy)
            .expect("genesis data keys are valid points");
        let key_for_regulators = self
            .g
            .regulators()
            .map(|r| {
                (
                    r.id.clone(),
                    privacy::wrap_for_key(&r.data_key, &ctx, &content_key, &mut entropy)
                        .expect("genesis data keys are valid points"),
                )
            })
            .collect::<Vec<_>>();
        let body = TxBody::Issue(IssueRx {
            id,
            items: vec![Item {
                atc: AtcCode::parse("N02BE01").expect("valid ATC"),
                name: label("Paracetamol"),
                strength: label("500 mg"),
                form: label("tablet"),
                quantity: Quantity::new(20).expect("valid quantity"),
                unit: label("tablets"),
                controlled: false,
            }],
            repeats: 0,
            valid_from: Timestamp(at),
            valid_until: None,
            access_key: secret.signing_key().public(),
            sealed,
            key_for_patient,
            key_for_hospital,
            key_for_regulators,
        });
        self.sign(doctor, at, body)
    }

    fn claim(
        &mut self,
        pharmacist: &SecretKey,
        pharmacy: &str,
        id: PrescriptionId,
        secret: &AccessSecret,
        at: u64,
    ) -> SignedTx {
        let pharmacy = org_id(pharmacy);
        let nonce = [self.nonce as u8; 16];
        let msg = claim_proof_message(self.g.chain_id.as_str(), &id, &pharmacy, &nonce);
        let proof = secret.signing_key().sign(CLAIM_PROOF_TAG, &msg);
        self.sign(
            pharmacist,
            at,
            TxBody::Claim(ClaimRx {
                id,
                pharmacy,
                nonce,
                proof,
            }),
        )
    }

    fn dispense_all(&mut self, pharmacist: &SecretKey, id: PrescriptionId, at: u64) -> SignedTx {
        let line = DispenseLine {
            item: 0,
            quantity: Quantity::new(20).expect("valid quantity"),
            batch: label("B-42"),
        };
        self.sign(
            pharmacist,
            at,
            TxBody::Dispense(DispenseRx {
                id,
                lines: vec![line],
                complete: false,
            }),
        )
    }

    fn assign_delivery(
        &mut self,
        pharmacy: &str,
        id: PrescriptionId,
        secret: &AccessSecret,
        at: u64,
    ) -> SignedTx {
        let mut entropy = |buf: &mut [u8]| buf.fill(5);
        let address = privacy::seal(
            &[7u8; 32],
            &privacy::address_context(&id),
            b"1 Synthetic Street",
            &mut entropy,
        );
        let data_key = self.g.org(&org_id(pharmacy)).expect("pharmacy").data_key;
        let handover = privacy::wrap_for_key(
            &data_key,
            &privacy::handover_context(&id),
            secret.expose(),
            &mut entropy,
        )
        .expect("genesis data keys are valid points");
        let body = TxBody::Assign(AssignRx {
            id,
            fulfilment: Fulfilment::Delivery {
                pharmacy: org_id(pharmacy),
                address,
            },
            handover: Some(handover),
        });
        self.sign(&secret.signing_key(), at, body)
    }

    fn delivery(
        &mut self,
        who: &SecretKey,
        id: PrescriptionId,
        status: DeliveryStatus,
        at: u64,
    ) -> SignedTx {
        let event = DeliveryEvent {
            id,
            status,
            problem: matches!(status, DeliveryStatus::Failed | DeliveryStatus::Returned)
                .then_some(rxchain_contracts::tx::DeliveryProblem::NoOneHome),
            hand_over: (status == DeliveryStatus::Delivered)
                .then_some(rxchain_contracts::tx::HandOver::ToPatient),
        };
        self.sign(who, at, TxBody::Delivery(event))
    }

    fn cancel(&mut self, doctor: &SecretKey, id: PrescriptionId, at: u64) -> SignedTx {
        self.sign(
            doctor,
            at,
            TxBody::Cancel(CancelRx {
                id,
                reason: CancelReason::PrescriberError,
            }),
        )
    }
}

fn verified(g: &Genesis, txs: Vec<SignedTx>) -> Vec<VerifiedTx> {
    txs.into_iter()
        .map(|t| {
            t.verify(g.chain_id.as_str())
                .expect("test transactions verify")
        })
        .collect()
}

fn open(dir: &TempDir, g: &Genesis) -> Result<Storage, StoreError> {
    store::open(dir.path(), Arc::new(g.clone()), Arc::new(NoObserver))
}

/// Proposes the next block on the stored tip and applies it.
fn append(storage: &Storage, txs: Vec<SignedTx>, at: u64) -> Block {
    let chain = &storage.chain;
    let g = chain.genesis();
    let (block, exec) = propose(
        g,
        &chain.state(),
        &chain.tip(),
        verified(g, txs),
        ClockProof::attested_by_all(g, chain.tip().height, Timestamp(at), |n| {
            sk(&format!("node-{n}"))
        }),
        Timestamp(at),
        1,
        &sk("node-1"),
    )
    .expect("state decodes");
    chain
        .apply_block(&block, &exec, None)
        .expect("block applies");
    block
}

/// A four-block history with issues, a claim lock, a refused second claim,
/// a cancel, a full dispense and a replayed claim.
struct History {
    blocks: Vec<Block>,
    rx1: PrescriptionId,
    rx2: PrescriptionId,
    doctor: SecretKey,
    pharmacist_b: SecretKey,
    first_claim: SignedTx,
}

fn build_history(storage: &Storage, g: &Genesis) -> History {
    let mut t = Txs { g, nonce: 0 };
    let doctor = sk("doctor");
    let pharmacist_b = sk("pharmacist-b");
    let pharmacist_c = sk("pharmacist-c");
    let rx1 = PrescriptionId::from_bytes([1; 16]);
    let rx2 = PrescriptionId::from_bytes([2; 16]);
    let secret1 = AccessSecret::from_bytes([11; 32]);
    let secret2 = AccessSecret::from_bytes([22; 32]);

    // 1. Day 0: the three organisations register their staff.
    let b1 = append(
        storage,
        vec![
            t.register("hosp-a", &doctor, Role::Practitioner, T0),
            t.register("pharm-b", &pharmacist_b, Role::Pharmacist, T0),
            t.register("pharm-c", &pharmacist_c, Role::Pharmacist, T0),
        ],
        T0,
    );
    // 2. Day 1: the doctor issues two prescriptions.
    let d1 = T0 + DAY;
    let b2 = append(
        storage,
        vec![
            t.issue(&doctor, rx1, &secret1, d1),
            t.issue(&doctor, rx2, &secret2, d1),
        ],
        d1,
    );
    // 3. Day 1: pharmacy b claims rx1, pharmacy c is refused, rx2 is cancelled.
    let first_claim = t.claim(&pharmacist_b, "pharm-b", rx1, &secret1, d1 + 1);
    let b3 = append(
        storage,
        vec![
            first_claim.clone(),
            t.claim(&pharmacist_c, "pharm-c", rx1, &secret1, d1 + 1),
            t.cancel(&doctor, rx2, d1 + 1),
        ],
        d1 + 1,
    );
    // 4. Day 2: pharmacy b dispenses everything; the first claim is replayed.
    let d2 = T0 + 2 * DAY;
    let b4 = append(
        storage,
        vec![t.dispense_all(&pharmacist_b, rx1, d2), first_claim.clone()],
        d2,
    );
    History {
        blocks: vec![b1, b2, b3, b4],
        rx1,
        rx2,
        doctor,
        pharmacist_b,
        first_claim,
    }
}

#[test]
fn reopened_chain_answers_every_read_and_index() {
    let dir = TempDir::new().expect("temp dir");
    let g = genesis("rx-chain-store");
    let chain_id = g.chain_id.as_str().to_owned();

    // 1. Build and apply four blocks, then close the database.
    let h = {
        let storage = open(&dir, &g).expect("storage opens");
        let h = build_history(&storage, &g);
        assert_eq!(
            h.blocks[2].outcomes[1],
            Outcome::Refused {
                reason: Rejection::ClaimedByOther {
                    pharmacy: org_id("pharm-b"),
                    at: h.blocks[2].header.timestamp
                }
            }
        );
        assert_eq!(
            h.blocks[3].outcomes[1],
            Outcome::Refused {
                reason: Rejection::Duplicate
            }
        );
        h
    };

    // 2. Reopen: the tip comes back from disk.
    let storage = open(&dir, &g).expect("storage reopens");
    let chain = &storage.chain;
    let last = &h.blocks[3];
    assert_eq!(
        chain.tip(),
        Tip {
            height: 4,
            hash: last.hash(&chain_id),
            timestamp: last.header.timestamp,
            state: rxchain_contracts::state_root::LtHash::of_state(&chain.state()),
        }
    );

    // 3. Blocks by height, by hash and in order.
    for b in &h.blocks {
        assert_eq!(
            chain.block(b.header.height).expect("read").as_ref(),
            Some(b)
        );
        assert_eq!(
            chain
                .block_by_hash(&b.hash(&chain_id))
                .expect("read")
                .as_ref(),
            Some(b)
        );
    }
    assert_eq!(chain.block(5).expect("read"), None);
    let all: Vec<Block> = chain
        .blocks(1)
        .collect::<Result<_, _>>()
        .expect("blocks read");
    assert_eq!(all, h.blocks);
    let tail: Vec<Block> = chain
        .blocks(3)
        .collect::<Result<_, _>>()
        .expect("blocks read");
    assert_eq!(tail, h.blocks[2..].to_vec());

    // 4. Every transaction is located; the replay keeps its first location.
    for b in &h.blocks[..3] {
        for (i, t) in b.txs.iter().enumerate() {
            assert_eq!(
                chain.tx_location(&t.tx.id(&chain_id)).expect("read"),
                Some((b.header.height, i as u32))
            );
        }
    }
    assert_eq!(
        chain
            .tx_location(&h.blocks[3].txs[0].tx.id(&chain_id))
            .expect("read"),
        Some((4, 0))
    );
    assert_eq!(
        chain
            .tx_location(&h.first_claim.tx.id(&chain_id))
            .expect("read"),
        Some((3, 0))
    );

    // 5. Records.
    let rx1 = chain
        .prescription(&h.rx1)
        .expect("read")
        .expect("rx1 exists");
    assert_eq!(rx1.status, RxStatus::Completed);
    assert_eq!(rx1.dispensed, vec![20]);
    assert_eq!(rx1.refused_attempts, 1, "the replay changes no counter");
    let rx2 = chain
        .prescription(&h.rx2)
        .expect("read")
        .expect("rx2 exists");
    assert_eq!(rx2.status, RxStatus::Cancelled);
    assert_eq!(
        chain
            .prescription(&PrescriptionId::from_bytes([9; 16]))
            .expect("read"),
        None
    );
    let staff = chain
        .staff(&h.pharmacist_b.public())
        .expect("read")
        .expect("registered");
    assert_eq!(staff.org, org_id("pharm-b"));
    assert_eq!(staff.role, Role::Pharmacist);
    assert_eq!(chain.all_staff().expect("read").len(), 3);
    assert_eq!(chain.staff(&sk("nobody").public()).expect("read"), None);

    // 6. Indexes.
    assert_eq!(
        chain.history(&h.rx1).expect("read"),
        vec![(2, 0), (3, 0), (3, 1), (4, 0), (4, 1)]
    );
    assert_eq!(chain.history(&h.rx2).expect("read"), vec![(2, 1), (3, 2)]);
    assert_eq!(
        chain.by_prescriber(&h.doctor.public()).expect("read"),
        vec![h.rx1, h.rx2]
    );
    assert_eq!(
        chain.by_prescriber(&h.pharmacist_b.public()).expect("read"),
        vec![]
    );
    assert_eq!(
        chain.by_pharmacy(&org_id("pharm-b")).expect("read"),
        vec![h.rx1]
    );
    assert_eq!(
        chain.by_pharmacy(&org_id("pharm-c")).expect("read"),
        vec![],
        "a refused claim indexes nothing"
    );
    assert_eq!(
        chain.by_status(RxStatus::Completed).expect("read"),
        vec![h.rx1]
    );
    assert_eq!(
        chain.by_status(RxStatus::Cancelled).expect("read"),
        vec![h.rx2]
    );
    assert_eq!(
        chain.by_status(RxStatus::Issued).expect("read"),
        vec![],
        "status entries move, not pile up"
    );
    assert_eq!(chain.by_status(RxStatus::Claimed).expect("read"), vec![]);
    let day0 = Timestamp(T0).day();
    assert_eq!(
        chain.txs_in_days(day0, day0).expect("read"),
        vec![(1, 0), (1, 1), (1, 2)]
    );
    assert_eq!(
        chain.txs_in_days(day0 + 1, day0 + 2).expect("read"),
        vec![(2, 0), (2, 1), (3, 0), (3, 1), (3, 2), (4, 0), (4, 1)]
    );
    assert_eq!(chain.txs_in_days(day0 + 3, day0 + 9).expect("read"), vec![]);
    assert_eq!(chain.txs_in_days(day0 + 2, day0).expect("read"), vec![]);
    // The day index holds one record per block (value: its tx count); a
    // chain written before format 4 (or a snapshot from such a node) holds
    // one empty record per transaction, and reads the same.
    let tree = storage.db.open_tree("chain").expect("chain tree");
    let day_records: Vec<_> = tree
        .scan_prefix(b"i/dy/")
        .map(|kv| kv.expect("read"))
        .collect();
    assert_eq!(day_records.len(), 4, "one record per block");
    let (k, v) = &day_records[1];
    assert_eq!(
        v.as_ref(),
        2u32.to_be_bytes(),
        "block 2 holds two transactions"
    );
    tree.remove(k).expect("remove");
    for i in 0u32..2 {
        let mut old = k.to_vec();
        old.extend_from_slice(&i.to_be_bytes());
        tree.insert(old, &[][..]).expect("insert");
    }
    assert_eq!(
        chain.txs_in_days(day0 + 1, day0 + 2).expect("read"),
        vec![(2, 0), (2, 1), (3, 0), (3, 1), (3, 2), (4, 0), (4, 1)]
    );
    tree.insert(b"i/dy/short", &[][..]).expect("insert");
    assert!(matches!(
        chain.txs_in_days(0, u64::MAX),
        Err(StoreError::Corrupt { .. })
    ));
    tree.remove(b"i/dy/short").expect("remove");
    assert_eq!(chain.refused(10).expect("read"), vec![(4, 1), (3, 1)]);
    assert_eq!(chain.refused(1).expect("read"), vec![(4, 1)]);

    // 7. The stored state is the state the offline verifier rebuilds.
    let report = verify_chain(&g, &h.blocks).expect("the chain verifies offline");
    assert_eq!(report.tip, chain.tip());
    assert_eq!(chain.state_digest(), report.state_digest);
    assert_eq!(
        chain.try_state_digest().expect("state reads"),
        report.state_digest
    );
}

#[test]
fn apply_block_refuses_a_block_that_does_not_extend_the_tip() {
    let dir = TempDir::new().expect("temp dir");
    let g = genesis("rx-not-next");
    let storage = open(&dir, &g).expect("storage opens");
    let h = build_history(&storage, &g);
    let digest = storage.chain.state_digest();
    let exec = rxchain_contracts::block::Execution {
        outcomes: h.blocks[3].outcomes.clone(),
        writes: Default::default(),
        state: Default::default(),
    };
    let err = storage
        .chain
        .apply_block(&h.blocks[3], &exec, None)
        .expect_err("a replayed block is refused");
    assert!(
        matches!(err, StoreError::NotNext { height: 4, tip: 4 }),
        "{err:?}"
    );
    assert_eq!(storage.chain.tip().height, 4);
    assert_eq!(storage.chain.state_digest(), digest, "nothing was written");
}

#[test]
fn a_database_refuses_another_genesis() {
    let dir = TempDir::new().expect("temp dir");
    drop(open(&dir, &genesis("rx-first")).expect("storage opens"));
    match open(&dir, &genesis("rx-second")) {
        Err(StoreError::GenesisMismatch { .. }) => {}
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a database of another genesis opened"),
    }
}

/// Guards the pharmacy and status indexes for assigned prescriptions, and
/// with them that a record holding a `Fulfilment` decodes from the
/// canonical encoding (it did not while the enum was internally tagged).
#[test]
fn assigned_prescription_is_indexed_under_its_pharmacy() {
    use rxchain_contracts::tx::{AssignRx, Fulfilment};
    let dir = TempDir::new().expect("temp dir");
    let g = genesis("rx-assign");
    let storage = open(&dir, &g).expect("storage opens");
    let mut t = Txs { g: &g, nonce: 100 };
    let doctor = sk("doctor");
    let rx = PrescriptionId::from_bytes([3; 16]);
    let secret = AccessSecret::from_bytes([33; 32]);
    append(
        &storage,
        vec![t.register("hosp-a", &doctor, Role::Practitioner, T0)],
        T0,
    );
    append(&storage, vec![t.issue(&doctor, rx, &secret, T0)], T0);
    let assign = t.sign(
        &secret.signing_key(),
        T0,
        TxBody::Assign(AssignRx {
            id: rx,
            fulfilment: Fulfilment::Pickup {
                pharmacy: org_id("pharm-b"),
            },
            handover: None,
        }),
    );
    let chain = &storage.chain;
    let (block, exec) = propose(
        &g,
        &chain.state(),
        &chain.tip(),
        verified(&g, vec![assign]),
        ClockProof::attested_by_all(&g, chain.tip().height, Timestamp(T0), |n| {
            sk(&format!("node-{n}"))
        }),
        Timestamp(T0),
        1,
        &sk("node-1"),
    )
    .expect("state decodes");
    chain
        .apply_block(&block, &exec, None)
        .expect("block applies");
    assert_eq!(
        chain.by_pharmacy(&org_id("pharm-b")).expect("read"),
        vec![rx]
    );
    assert_eq!(chain.by_status(RxStatus::Assigned).expect("read"), vec![rx]);
}

/// The regulator's "handed over in this period" (FHIR `whenhandedover`): a
/// delivery dispensed on day 1 and delivered on day 3 is a candidate for a
/// period of day 3 alone, where no dispense happened (the search then keeps
/// the lines whose hand-over time lies in the period).
#[test]
fn a_delivery_dispensed_before_a_period_and_delivered_in_it_is_a_candidate_of_the_period() {
    use rxchain::query::day::{Day, DayRange};
    use rxchain::query::reports::{fills, handed_over_candidates};
    let dir = TempDir::new().expect("temp dir");
    let g = genesis("rx-handed-over");
    let storage = open(&dir, &g).expect("storage opens");
    let mut t = Txs { g: &g, nonce: 0 };
    let doctor = sk("doctor");
    let pharmacist = sk("pharmacist-b");
    let rx = PrescriptionId::from_bytes([9; 16]);
    let secret = AccessSecret::from_bytes([99; 32]);
    append(
        &storage,
        vec![
            t.register("hosp-a", &doctor, Role::Practitioner, T0),
            t.register("pharm-b", &pharmacist, Role::Pharmacist, T0),
        ],
        T0,
    );
    // Day 1: issued, sent for delivery by pharmacy b, claimed, dispensed, packed.
    let d1 = T0 + DAY;
    append(&storage, vec![t.issue(&doctor, rx, &secret, d1)], d1);
    append(
        &storage,
        vec![t.assign_delivery("pharm-b", rx, &secret, d1 + 1)],
        d1 + 1,
    );
    append(
        &storage,
        vec![t.claim(&pharmacist, "pharm-b", rx, &secret, d1 + 2)],
        d1 + 2,
    );
    append(
        &storage,
        vec![t.dispense_all(&pharmacist, rx, d1 + 3)],
        d1 + 3,
    );
    append(
        &storage,
        vec![t.delivery(&pharmacist, rx, DeliveryStatus::Packed, d1 + 4)],
        d1 + 4,
    );
    // Day 3: dispatched and delivered.
    let d3 = T0 + 3 * DAY;
    for (i, status) in [
        DeliveryStatus::Dispatched,
        DeliveryStatus::OutForDelivery,
        DeliveryStatus::Delivered,
    ]
    .into_iter()
    .enumerate()
    {
        let at = d3 + i as u64;
        let b = append(&storage, vec![t.delivery(&pharmacist, rx, status, at)], at);
        assert_eq!(b.outcomes, vec![Outcome::Applied], "{status:?}");
    }
    let chain = &storage.chain;
    let rec = chain.prescription(&rx).expect("reads").expect("exists");
    assert_eq!(rec.status, RxStatus::Completed);
    let days = |from: u64, to: u64| {
        DayRange::new(
            Some(Day::of(Timestamp(from)).expect("day")),
            Day::of(Timestamp(to)).expect("day"),
        )
        .expect("range")
    };
    // Day 3 has no dispense, yet the hand-over is in it.
    assert!(fills(chain, days(d3, d3)).expect("reads").is_empty());
    assert_eq!(
        handed_over_candidates(chain, days(d3, d3)).expect("reads"),
        vec![rx]
    );
    // Day 1 has the dispense (its hand-over time then keeps it out of a
    // day-1 search); day 2 has nothing.
    assert_eq!(
        handed_over_candidates(chain, days(d1, d1)).expect("reads"),
        vec![rx]
    );
    let d2 = T0 + 2 * DAY;
    assert!(handed_over_candidates(chain, days(d2, d2))
        .expect("reads")
        .is_empty());
    // Over all three days it is listed once.
    assert_eq!(
        handed_over_candidates(chain, days(d1, d3)).expect("reads"),
        vec![rx]
    );
}
