//! The shared test harness of the contracts' integration tests and benches.
//!
//! It builds a synthetic consortium (two hospitals, three pharmacies, one
//! regulator, one logistics company) whose every key comes from
//! `SecretKey::derive("test", ...)`, so every run is reproducible and no real
//! key or patient ever appears. [`World`] plays the proposer: it signs
//! transactions, runs them through `block::propose`, commits each block's
//! write set into a `MemStore` and keeps the blocks, so a test reads like a
//! story and can hand the resulting chain to the offline verifier.
//!
//! Randomness (prescription ids, access secrets, content keys, AEAD nonces,
//! claim nonces) comes from [`DetRng`], a SHA3 counter stream, because the
//! contracts take entropy as an argument and tests must be repeatable.

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use rxchain_contracts::block::{self, Block, Tip};
use rxchain_contracts::cert::ClockProof;
use rxchain_contracts::controlled::ControlledDrug;
use rxchain_contracts::crypto::{Hash, PublicKey, SecretKey};
use rxchain_contracts::encoding;
use rxchain_contracts::genesis::{Genesis, NodeDecl, OrgDecl, OrgKind, Params};
use rxchain_contracts::lifecycle::{Outcome, Rejection};
use rxchain_contracts::model::{
    AtcCode, Label, NodeId, OrgId, PrescriptionId, Quantity, Timestamp,
};
use rxchain_contracts::privacy::{self, AccessSecret, ContentKey, PatientDetails, PrivateContent};
use rxchain_contracts::state::{self, MemStore, PrescriptionRecord, StaffRecord, StateRead};
use rxchain_contracts::tx::HandToCarrier;
use rxchain_contracts::tx::{
    claim_proof_message, AssignRx, CancelReason, CancelRx, ClaimRx, DeliveryEvent, DeliveryStatus,
    DispenseLine, DispenseRx, Fulfilment, IssueRx, Item, RegisterStaff, ReleaseRx, RevokeReason,
    RevokeStaff, Role, SetControlled, SignedTx, Transaction, TxBody, TxId, VerifiedTx,
    CLAIM_PROOF_TAG,
};

/// The chain id every test signature is bound to.
pub const CHAIN_ID: &str = "rxchain-test";

/// Genesis time: 2026-01-01T00:00:00Z. Block times start one hour later.
pub const T0: Timestamp = Timestamp(1_767_225_600_000);

/// One hour in milliseconds.
pub const HOUR_MS: u64 = 3_600_000;

pub const HOSP_NORTH: &str = "hosp-north";
pub const HOSP_SOUTH: &str = "hosp-south";
pub const PHARM_A: &str = "pharm-a";
pub const PHARM_B: &str = "pharm-b";
pub const PHARM_C: &str = "pharm-c";
pub const REGULATOR: &str = "regulator";
pub const LOGISTICS: &str = "logistics";

/// Every organisation of the synthetic consortium, with its kind.
pub const ORGS: [(&str, OrgKind); 7] = [
    (HOSP_NORTH, OrgKind::Hospital),
    (HOSP_SOUTH, OrgKind::Hospital),
    (PHARM_A, OrgKind::Pharmacy),
    (PHARM_B, OrgKind::Pharmacy),
    (PHARM_C, OrgKind::Pharmacy),
    (REGULATOR, OrgKind::Regulator),
    (LOGISTICS, OrgKind::Logistics),
];

/// The node that proposes every block the harness builds.
pub const PROPOSER: NodeId = 1;

/// The staff registered by [`World::staffed`]: name, organisation, role.
pub const ROSTER: [(&str, &str, Role); 11] = [
    ("dr-north", HOSP_NORTH, Role::Practitioner),
    ("dr-north-2", HOSP_NORTH, Role::Practitioner),
    ("dr-south", HOSP_SOUTH, Role::Practitioner),
    ("ph-a", PHARM_A, Role::Pharmacist),
    ("ph-a-2", PHARM_A, Role::Pharmacist),
    ("ph-b", PHARM_B, Role::Pharmacist),
    ("ph-c", PHARM_C, Role::Pharmacist),
    ("courier-a", PHARM_A, Role::Courier),
    ("courier-b", PHARM_B, Role::Courier),
    ("courier-log", LOGISTICS, Role::Courier),
    ("officer", REGULATOR, Role::RegulatorOfficer),
];

/// A key derived from a label with the `"test"` tag. Deriving costs a scalar
/// multiplication, which is slow in debug builds, so keys are cached.
pub fn test_key(label: &str) -> SecretKey {
    static CACHE: OnceLock<Mutex<HashMap<String, SecretKey>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = cache
        .lock()
        .expect("the key cache is never poisoned: derive does not panic");
    map.entry(label.to_string())
        .or_insert_with(|| SecretKey::derive("test", label.as_bytes()))
        .clone()
}

/// The admin key of an organisation.
pub fn admin_key(org: &str) -> SecretKey {
    test_key(&format!("admin/{org}"))
}

/// The data key of an organisation (receives content keys by ECDH).
pub fn data_key(org: &str) -> SecretKey {
    test_key(&format!("data/{org}"))
}

/// The node key of an organisation's only node.
pub fn node_key(org: &str) -> SecretKey {
    test_key(&format!("node/{org}"))
}

/// A staff member's key, by roster name (or any other name).
pub fn staff(name: &str) -> SecretKey {
    test_key(&format!("staff/{name}"))
}

/// Parses an organisation id the harness knows to be valid.
pub fn org(id: &str) -> OrgId {
    OrgId::parse(id).expect("harness org ids are valid")
}

/// Parses a label the harness knows to be valid.
pub fn label(s: &str) -> Label {
    Label::parse(s).expect("harness labels are valid")
}

/// The controlled drugs of the synthetic genesis: morphine ([`morphine`]),
/// schedule II.
pub fn controlled_drugs() -> Vec<ControlledDrug> {
    vec![ControlledDrug {
        atc: AtcCode::parse("N02AA01").expect("harness ATC codes are valid"),
        schedule: label("II"),
    }]
}

/// The synthetic genesis: seven organisations with one node each (node ids
/// 1..=7 in [`ORGS`] order), default parameters and [`controlled_drugs`].
pub fn genesis() -> Genesis {
    let orgs = ORGS
        .iter()
        .enumerate()
        .map(|(i, (id, kind))| OrgDecl {
            id: org(id),
            kind: *kind,
            name: label(&format!("Synthetic {id}")),
            address: label(&format!("{} Test Street, Testtown", i + 1)),
            admin_key: admin_key(id).public(),
            data_key: data_key(id).public(),
            nodes: vec![NodeDecl {
                id: i as NodeId + 1,
                key: node_key(id).public(),
                // Contract tests never open TLS connections; any distinct hash will do.
                tls: rxchain_contracts::Hash::of(&[b"contract-test-tls", id.as_bytes()]),
            }],
        })
        .collect();
    let g = Genesis {
        chain_id: label(CHAIN_ID),
        created_at: T0,
        orgs,
        params: Params {
            controlled: controlled_drugs(),
            ..Params::default()
        },
    };
    g.validate().expect("the synthetic genesis is consistent");
    g
}

/// A deterministic byte stream: SHA3-256(seed || counter) blocks. It stands
/// in for the OS random source the node passes as `privacy::Entropy`.
#[derive(Clone, Debug)]
pub struct DetRng {
    seed: Hash,
    counter: u64,
}

impl DetRng {
    /// A stream named by `seed`; equal seeds give equal streams.
    pub fn new(seed: &str) -> Self {
        DetRng {
            seed: Hash::of(&[b"rxchain-test-rng\0", seed.as_bytes()]),
            counter: 0,
        }
    }

    /// Fills `buf` with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(32) {
            let h = Hash::of(&[self.seed.as_bytes(), &self.counter.to_le_bytes()]);
            self.counter += 1;
            chunk.copy_from_slice(&h.as_bytes()[..chunk.len()]);
        }
    }

    /// The next `N` bytes.
    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        self.fill(&mut b);
        b
    }

    /// The next value below `n` (slightly biased, which tests do not mind).
    pub fn below(&mut self, n: u64) -> u64 {
        u64::from_le_bytes(self.bytes::<8>()) % n
    }
}

/// A deterministic entropy closure for `privacy::*`, as the node would pass
/// its OS generator.
pub fn entropy(seed: &str) -> impl FnMut(&mut [u8]) {
    let mut rng = DetRng::new(seed);
    move |buf: &mut [u8]| rng.fill(buf)
}

/// An item that is not controlled.
pub fn paracetamol(quantity: u32) -> Item {
    item("N02BE01", "Paracetamol", "500 mg", quantity, false)
}

/// A second item that is not controlled.
pub fn amoxicillin(quantity: u32) -> Item {
    item("J01CA04", "Amoxicillin", "250 mg", quantity, false)
}

/// A controlled item (an opioid).
pub fn morphine(quantity: u32) -> Item {
    item("N02AA01", "Morphine", "10 mg", quantity, true)
}

fn item(atc: &str, name: &str, strength: &str, quantity: u32, controlled: bool) -> Item {
    Item {
        atc: AtcCode::parse(atc).expect("harness ATC codes are valid"),
        name: label(name),
        strength: label(strength),
        form: label("tablet"),
        quantity: Quantity::new(quantity).expect("harness quantities are valid"),
        unit: label("tablets"),
        controlled,
    }
}

/// What a prescriber asks for; the harness fills in ids, secrets and wraps.
#[derive(Clone, Debug)]
pub struct RxSpec {
    /// The drugs.
    pub items: Vec<Item>,
    /// Repeat fills after the first.
    pub repeats: u8,
    /// Start of validity; `None` means the current block time.
    pub valid_from: Option<Timestamp>,
    /// End of validity; `None` takes the rules' default.
    pub valid_until: Option<Timestamp>,
}

impl RxSpec {
    /// One non-controlled item of `quantity`, no repeats, default validity.
    pub fn simple(quantity: u32) -> Self {
        RxSpec {
            items: vec![paracetamol(quantity)],
            repeats: 0,
            valid_from: None,
            valid_until: None,
        }
    }

    /// One controlled item of `quantity`, no repeats, default validity.
    pub fn controlled(quantity: u32) -> Self {
        RxSpec {
            items: vec![morphine(quantity)],
            repeats: 0,
            valid_from: None,
            valid_until: None,
        }
    }

    /// The same with `repeats` repeat fills.
    pub fn repeats(mut self, repeats: u8) -> Self {
        self.repeats = repeats;
        self
    }
}

/// Everything the patient's QR code and the hospital know about one
/// prescription, kept by tests to act as patient, hospital or pharmacy.
#[derive(Clone, Debug)]
pub struct Rx {
    /// The prescription id.
    pub id: PrescriptionId,
    /// The QR access secret.
    pub secret: AccessSecret,
    /// The key derived from the secret; signs patient actions and claim proofs.
    pub patient: SecretKey,
    /// The content key that seals the private content.
    pub content_key: ContentKey,
    /// The plaintext that was sealed.
    pub content: PrivateContent,
    /// The issuing hospital.
    pub hospital: OrgId,
    /// The issue body as signed.
    pub body: IssueRx,
}

/// A synthetic consortium with a proposer, a committed state and its chain.
#[derive(Clone)]
pub struct World {
    /// The genesis every block builds on.
    pub genesis: Genesis,
    /// Committed state after the last block.
    pub store: MemStore,
    /// The last block.
    pub tip: Tip,
    /// Every block so far, in order.
    pub blocks: Vec<Block>,
    /// The block time of the next block and the `created_at` of new transactions.
    pub now: Timestamp,
    /// Where ids, secrets and nonces come from.
    pub rng: DetRng,
    nonce: u64,
    patients: u64,
    verified: HashMap<TxId, VerifiedTx>,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    /// Genesis only, no staff, clock one hour after genesis.
    pub fn new() -> World {
        World::with_genesis(genesis())
    }

    /// Like [`World::new`], on another genesis.
    pub fn with_genesis(genesis: Genesis) -> World {
        let tip = Tip::genesis(&genesis);
        World {
            genesis,
            store: MemStore::default(),
            tip,
            blocks: Vec::new(),
            now: Timestamp(T0.0 + HOUR_MS),
            rng: DetRng::new("world"),
            nonce: 0,
            patients: 0,
            verified: HashMap::new(),
        }
    }

    /// Genesis plus one block registering every member of [`ROSTER`].
    pub fn staffed() -> World {
        World::staffed_with_genesis(genesis())
    }

    /// Like [`World::staffed`], on another genesis that has the roster's
    /// organisations.
    pub fn staffed_with_genesis(genesis: Genesis) -> World {
        let mut w = World::with_genesis(genesis);
        let txs: Vec<SignedTx> = ROSTER
            .iter()
            .map(|(name, org_id, role)| {
                let key = staff(name).public();
                w.register(org_id, &key, *role)
            })
            .collect();
        let outcomes = w.run(txs);
        assert!(
            outcomes.iter().all(Outcome::is_applied),
            "roster registration refused: {outcomes:?}"
        );
        w
    }

    /// A staffed world whose random stream is named by `seed`, so that
    /// independent scenarios draw independent ids and secrets.
    pub fn staffed_with_seed(seed: &str) -> World {
        let mut w = Self::staffed();
        w.rng = DetRng::new(seed);
        w
    }

    /// Moves the clock forward.
    pub fn advance_ms(&mut self, ms: u64) {
        self.now = Timestamp(self.now.0 + ms);
    }

    /// Moves the clock forward by whole days.
    pub fn advance_days(&mut self, days: u32) {
        self.now = self.now.plus_days(days);
    }

    // ---- signing --------------------------------------------------------

    /// An unsigned transaction by `signer` at the current time with a fresh nonce.
    pub fn unsigned(&mut self, signer: &SecretKey, body: TxBody) -> Transaction {
        self.nonce += 1;
        Transaction {
            signer: signer.public(),
            nonce: self.nonce,
            created_at: self.now,
            body,
        }
    }

    /// A signed transaction by `signer` at the current time with a fresh nonce.
    pub fn tx(&mut self, signer: &SecretKey, body: TxBody) -> SignedTx {
        self.unsigned(signer, body).sign(CHAIN_ID, signer)
    }

    // ---- running blocks -------------------------------------------------

    /// Verifies `txs`, proposes one block at the current time, commits it and
    /// returns the outcomes in order.
    pub fn run(&mut self, txs: Vec<SignedTx>) -> Vec<Outcome> {
        let verified: Vec<VerifiedTx> = txs
            .into_iter()
            .map(|t| {
                t.verify(CHAIN_ID)
                    .expect("harness transactions are well-formed and signed")
            })
            .collect();
        self.run_verified(verified)
    }

    /// Proposes one block of already verified transactions and commits it.
    pub fn run_verified(&mut self, verified: Vec<VerifiedTx>) -> Vec<Outcome> {
        for v in &verified {
            self.verified.insert(v.id(), v.clone());
        }
        let (block, exec) = block::propose(
            &self.genesis,
            &self.store,
            &self.tip,
            verified,
            ClockProof::attested_by_all(&self.genesis, self.tip.height, self.now, |n| {
                node_key(ORGS[n as usize - 1].0)
            }),
            self.now,
            PROPOSER,
            &node_key(HOSP_NORTH),
        )
        .expect("the harness store is never corrupt");
        self.store.commit(&exec.writes);
        self.tip = Tip {
            height: block.header.height,
            hash: block.hash(CHAIN_ID),
            timestamp: block.header.timestamp,
            state: exec.state,
        };
        self.blocks.push(block);
        exec.outcomes
    }

    /// Runs one transaction in its own block.
    pub fn run1(&mut self, tx: SignedTx) -> Outcome {
        self.run(vec![tx])
            .pop()
            .expect("one transaction gives one outcome")
    }

    /// Runs one transaction and insists it took effect.
    pub fn applied(&mut self, tx: SignedTx) {
        let kind = tx.tx.body.kind();
        match self.run1(tx) {
            Outcome::Applied => {}
            Outcome::Refused { reason } => panic!("{kind} was refused: {reason:?} ({reason})"),
        }
    }

    /// Runs one transaction, insists it was refused with `code`, and returns
    /// the rejection so the caller can check its details.
    pub fn refused(&mut self, tx: SignedTx, code: &str) -> Rejection {
        let kind = tx.tx.body.kind();
        expect_refused(&self.run1(tx), code, kind)
    }

    /// Every transaction verified so far, by id: the `known` callback a node
    /// would pass to `block::check_and_execute` from its mempool.
    pub fn known(&self) -> impl Fn(&TxId) -> Option<VerifiedTx> + '_ {
        move |id| self.verified.get(id).cloned()
    }

    // ---- reading state --------------------------------------------------

    /// The prescription record; panics if there is none.
    pub fn rx(&self, id: &PrescriptionId) -> PrescriptionRecord {
        self.try_rx(id).expect("the prescription exists")
    }

    /// The prescription record, if any.
    pub fn try_rx(&self, id: &PrescriptionId) -> Option<PrescriptionRecord> {
        self.store
            .get(&state::rx_key(id))
            .map(|b| encoding::from_bytes(&b).expect("records decode"))
    }

    /// The staff record of a key, if any.
    pub fn staff_record(&self, key: &PublicKey) -> Option<StaffRecord> {
        self.store
            .get(&state::staff_key(key))
            .map(|b| encoding::from_bytes(&b).expect("records decode"))
    }

    /// The digest of the committed state.
    pub fn digest(&self) -> Hash {
        state::state_digest(&self.store)
    }

    // ---- transaction builders -------------------------------------------

    /// `org`'s admin registers `key` with `role`.
    pub fn register(&mut self, org_id: &str, key: &PublicKey, role: Role) -> SignedTx {
        self.register_by(&admin_key(org_id), org_id, key, role)
    }

    /// `signer` registers `key` with `role` for `org_id`.
    pub fn register_by(
        &mut self,
        signer: &SecretKey,
        org_id: &str,
        key: &PublicKey,
        role: Role,
    ) -> SignedTx {
        let body = TxBody::RegisterStaff(RegisterStaff {
            org: org(org_id),
            key: *key,
            role,
            licence: label("LIC-TEST-0001"),
            name: label("Synthetic Staff Member"),
        });
        self.tx(signer, body)
    }

    /// `signer` revokes `key`.
    pub fn revoke(&mut self, signer: &SecretKey, key: &PublicKey) -> SignedTx {
        self.tx(
            signer,
            TxBody::RevokeStaff(RevokeStaff {
                key: *key,
                reason: RevokeReason::KeyCompromised,
            }),
        )
    }

    /// Builds an issue body with real sealed content and the three key wraps
    /// (QR secret, the hospital's data key, every regulator's data key).
    pub fn issue_body(&mut self, hospital: &str, spec: RxSpec) -> Rx {
        self.patients += 1;
        let id = PrescriptionId::from_bytes(self.rng.bytes());
        let tag = hex::encode(self.rng.bytes::<4>());
        let rng = &mut self.rng;
        let mut e = |b: &mut [u8]| rng.fill(b);
        let secret = AccessSecret::random(&mut e);
        let content_key = ContentKey::random(&mut e);
        let content = PrivateContent {
            patient: PatientDetails {
                name: format!("Synthpatient Quixby-{tag}"),
                birth_date: "1961-07-23".into(),
                identifier: format!("INS-ZZ-{tag}-{:04}", self.patients),
                email: Some(format!("synth-{tag}@example.invalid")),
            },
            dosage: spec
                .items
                .iter()
                .map(|i| format!("Take one {} tablet after breakfast ({tag})", i.name))
                .collect(),
            notes: format!("Clinical note: synthetic allergy to penicillin, case {tag}"),
        };
        let ctx = privacy::content_context(&id);
        let sealed = privacy::seal_content(&id, &content, &content_key, &mut e);
        let key_for_patient = privacy::wrap_for_secret(&secret, &ctx, content_key.expose(), &mut e);
        let key_for_hospital = privacy::wrap_for_key(
            &data_key(hospital).public(),
            &ctx,
            content_key.expose(),
            &mut e,
        )
        .expect("genesis data keys are valid points");
        let regulators: Vec<OrgDecl> = self.genesis.regulators().cloned().collect();
        let key_for_regulators = regulators
            .iter()
            .map(|r| {
                (
                    r.id.clone(),
                    privacy::wrap_for_key(&r.data_key, &ctx, content_key.expose(), &mut e)
                        .expect("genesis data keys are valid points"),
                )
            })
            .collect();
        let patient = secret.signing_key();
        let body = IssueRx {
            id,
            items: spec.items,
            repeats: spec.repeats,
            valid_from: spec.valid_from.unwrap_or(self.now),
            valid_until: spec.valid_until,
            access_key: patient.public(),
            sealed,
            key_for_patient,
            key_for_hospital,
            key_for_regulators,
        };
        Rx {
            id,
            secret,
            patient,
            content_key,
            content,
            hospital: org(hospital),
            body,
        }
    }

    /// A prescriber at `hospital` issues a prescription built from `spec`.
    pub fn issue(
        &mut self,
        prescriber: &SecretKey,
        hospital: &str,
        spec: RxSpec,
    ) -> (SignedTx, Rx) {
        let rx = self.issue_body(hospital, spec);
        let tx = self.tx(prescriber, TxBody::Issue(rx.body.clone()));
        (tx, rx)
    }

    /// Issues and commits a prescription by `dr-north`, insisting it applies.
    pub fn issued(&mut self, spec: RxSpec) -> Rx {
        let (tx, rx) = self.issue(&staff("dr-north"), HOSP_NORTH, spec);
        self.applied(tx);
        rx
    }

    /// The patient chooses pickup at `pharmacy`.
    pub fn assign_pickup(&mut self, rx: &Rx, pharmacy: &str) -> SignedTx {
        let body = AssignRx {
            id: rx.id,
            fulfilment: Fulfilment::Pickup {
                pharmacy: org(pharmacy),
            },
            handover: None,
        };
        let patient = rx.patient.clone();
        self.tx(&patient, TxBody::Assign(body))
    }

    /// The patient chooses home delivery by `pharmacy` to `address`: the
    /// address is sealed under the content key and the access secret is
    /// wrapped for the pharmacy's data key.
    pub fn assign_delivery(&mut self, rx: &Rx, pharmacy: &str, address: &str) -> SignedTx {
        let rng = &mut self.rng;
        let mut e = |b: &mut [u8]| rng.fill(b);
        let sealed_address = privacy::seal(
            rx.content_key.expose(),
            &privacy::address_context(&rx.id),
            address.as_bytes(),
            &mut e,
        );
        let handover = privacy::wrap_for_key(
            &data_key(pharmacy).public(),
            &privacy::handover_context(&rx.id),
            rx.secret.expose(),
            &mut e,
        )
        .expect("genesis data keys are valid points");
        let body = AssignRx {
            id: rx.id,
            fulfilment: Fulfilment::Delivery {
                pharmacy: org(pharmacy),
                address: sealed_address,
            },
            handover: Some(handover),
        };
        let patient = rx.patient.clone();
        self.tx(&patient, TxBody::Assign(body))
    }

    /// A claim by `pharmacist` for `pharmacy` with a real proof from the QR secret.
    pub fn claim(&mut self, pharmacist: &SecretKey, pharmacy: &str, rx: &Rx) -> SignedTx {
        let secret = rx.secret.clone();
        self.claim_with_secret(pharmacist, pharmacy, rx.id, &secret)
    }

    /// A claim whose proof is made with `secret`, right or wrong.
    pub fn claim_with_secret(
        &mut self,
        pharmacist: &SecretKey,
        pharmacy: &str,
        id: PrescriptionId,
        secret: &AccessSecret,
    ) -> SignedTx {
        let nonce = self.rng.bytes();
        let proof = claim_proof(CHAIN_ID, &id, pharmacy, &nonce, secret);
        self.claim_with_proof(pharmacist, pharmacy, id, nonce, proof)
    }

    /// A claim carrying exactly the given nonce and proof.
    pub fn claim_with_proof(
        &mut self,
        pharmacist: &SecretKey,
        pharmacy: &str,
        id: PrescriptionId,
        nonce: [u8; 16],
        proof: rxchain_contracts::Signature,
    ) -> SignedTx {
        self.tx(
            pharmacist,
            TxBody::Claim(ClaimRx {
                id,
                pharmacy: org(pharmacy),
                nonce,
                proof,
            }),
        )
    }

    /// The lock holder returns the prescription.
    pub fn release(&mut self, pharmacist: &SecretKey, id: PrescriptionId) -> SignedTx {
        self.tx(pharmacist, TxBody::Release(ReleaseRx { id }))
    }

    /// A dispense of `(item, quantity)` lines.
    pub fn dispense(
        &mut self,
        pharmacist: &SecretKey,
        id: PrescriptionId,
        lines: &[(u16, u32)],
        complete: bool,
    ) -> SignedTx {
        let lines = lines
            .iter()
            .map(|&(item, q)| DispenseLine {
                item,
                quantity: Quantity::new(q).expect("harness quantities are valid"),
                batch: label("BATCH-2026-001"),
            })
            .collect();
        self.tx(
            pharmacist,
            TxBody::Dispense(DispenseRx {
                id,
                lines,
                complete,
            }),
        )
    }

    /// A cancellation by `signer`.
    pub fn cancel(&mut self, signer: &SecretKey, id: PrescriptionId) -> SignedTx {
        self.tx(
            signer,
            TxBody::Cancel(CancelRx {
                id,
                reason: CancelReason::TreatmentChanged,
            }),
        )
    }

    /// A delivery or pickup progress event, with the detail its status
    /// needs: "no one home" for a failure or return, "to the patient" for
    /// a delivery (see [`World::delivery_with`] for others).
    pub fn delivery(
        &mut self,
        signer: &SecretKey,
        id: PrescriptionId,
        status: DeliveryStatus,
    ) -> SignedTx {
        self.tx(signer, TxBody::Delivery(usual_delivery(id, status)))
    }

    /// A delivery event exactly as given.
    pub fn delivery_with(&mut self, signer: &SecretKey, event: DeliveryEvent) -> SignedTx {
        self.tx(signer, TxBody::Delivery(event))
    }

    /// The claiming pharmacy's pharmacist hands a delivery to `carrier`.
    pub fn hand_to_carrier(
        &mut self,
        pharmacist: &SecretKey,
        id: PrescriptionId,
        carrier: &str,
    ) -> SignedTx {
        self.tx(
            pharmacist,
            TxBody::HandToCarrier(HandToCarrier {
                id,
                carrier: org(carrier),
            }),
        )
    }

    /// A change of the controlled list by `signer`: `schedule` puts `atc`
    /// on it, `None` takes it off.
    pub fn set_controlled(
        &mut self,
        signer: &SecretKey,
        atc: &str,
        schedule: Option<&str>,
    ) -> SignedTx {
        self.tx(
            signer,
            TxBody::SetControlled(SetControlled {
                atc: AtcCode::parse(atc).expect("harness ATC codes are valid"),
                schedule: schedule.map(label),
            }),
        )
    }
}

/// The claim proof a holder of `secret` signs for `pharmacy`.
pub fn claim_proof(
    chain_id: &str,
    id: &PrescriptionId,
    pharmacy: &str,
    nonce: &[u8; 16],
    secret: &AccessSecret,
) -> rxchain_contracts::Signature {
    let msg = claim_proof_message(chain_id, id, &org(pharmacy), nonce);
    secret.signing_key().sign(CLAIM_PROOF_TAG, &msg)
}

/// Insists `outcome` is a refusal with `code` and returns the rejection.
pub fn expect_refused(outcome: &Outcome, code: &str, what: &str) -> Rejection {
    match outcome {
        Outcome::Refused { reason } => {
            assert_eq!(
                reason.code(),
                code,
                "{what} was refused for the wrong reason: {reason:?} ({reason})"
            );
            reason.clone()
        }
        Outcome::Applied => panic!("{what} was applied, but it should be refused with {code}"),
    }
}

/// Whether `needle` occurs anywhere in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// A delivery event with the detail its status needs: "no one home" for a
/// failure or return, "to the patient" for a delivery, nothing otherwise.
pub fn usual_delivery(id: PrescriptionId, status: DeliveryStatus) -> DeliveryEvent {
    use rxchain_contracts::tx::{DeliveryProblem, HandOver};
    DeliveryEvent {
        id,
        status,
        problem: matches!(status, DeliveryStatus::Failed | DeliveryStatus::Returned)
            .then_some(DeliveryProblem::NoOneHome),
        hand_over: (status == DeliveryStatus::Delivered).then_some(HandOver::ToPatient),
    }
}
