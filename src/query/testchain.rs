//! A small real chain for the query and verification tests: the demo
//! consortium in a temp dir, its staff registered, one prescription of two
//! items (one controlled) issued, claimed and fully dispensed at Central
//! Pharmacy, then a second dispense the chain refuses.

use std::sync::Arc;

use rxchain_contracts::block::propose;
use rxchain_contracts::cert::ClockProof;
use rxchain_contracts::privacy::{PatientDetails, PrivateContent};
use rxchain_contracts::tx::{DispenseLine, Item};
use rxchain_contracts::{
    AtcCode, Block, Genesis, Label, OrgId, PrescriptionId, Quantity, SignedTx,
};
use tempfile::TempDir;

use crate::clock::now;
use crate::demo::{admin_key, node_key, staff_key, Demo};
use crate::store::{self, NoObserver, Storage};
use crate::txbuild::{self, IssueInput};

/// The opened store and what was written to it.
pub(crate) struct TestChain {
    /// Keeps the database's directory alive.
    _dir: TempDir,
    /// The opened storage.
    pub storage: Storage,
    /// The prescription dispensed.
    pub rx: PrescriptionId,
}

fn item(atc: &str, name: &str, quantity: u32, controlled: bool) -> Item {
    Item {
        atc: AtcCode::parse(atc).unwrap(),
        name: Label::parse(name).unwrap(),
        strength: Label::parse("50 mg").unwrap(),
        form: Label::parse("capsule").unwrap(),
        quantity: Quantity::new(quantity).unwrap(),
        unit: Label::parse("capsules").unwrap(),
        controlled,
    }
}

fn line(item: u16, quantity: u32, batch: &str) -> DispenseLine {
    DispenseLine {
        item,
        quantity: Quantity::new(quantity).unwrap(),
        batch: Label::parse(batch).unwrap(),
    }
}

/// Proposes the next block on the stored tip, as node 1, and applies it.
fn append(storage: &Storage, txs: Vec<SignedTx>) -> Block {
    let chain = &storage.chain;
    let g = chain.genesis();
    let verified = txs
        .into_iter()
        .map(|t| t.verify(g.chain_id.as_str()).unwrap())
        .collect();
    let (block, exec) = propose(
        g,
        &chain.state(),
        &chain.tip(),
        verified,
        ClockProof::attested_by_all(g, chain.tip().height, now(), node_key),
        now(),
        1,
        &node_key(1),
    )
    .unwrap();
    chain.apply_block(&block, &exec, None).unwrap();
    block
}

/// Builds the chain described in the module docs: four blocks.
pub(crate) fn build() -> TestChain {
    let demo = Demo::load().unwrap();
    let g: &Genesis = &demo.genesis;
    let dir = TempDir::new().unwrap();
    let storage = store::open(dir.path(), Arc::new(g.clone()), Arc::new(NoObserver)).unwrap();
    let staff = demo
        .staff
        .iter()
        .map(|s| {
            txbuild::register_staff(
                g,
                &admin_key(&s.org),
                OrgId::parse(s.org.clone()).unwrap(),
                staff_key(&s.username).public(),
                s.role,
                Label::parse(s.licence.clone()).unwrap(),
                Label::parse(s.name.clone()).unwrap(),
            )
        })
        .collect();
    append(&storage, staff);
    let new = txbuild::issue(
        g,
        &staff_key("dr.ada"),
        IssueInput {
            hospital: OrgId::parse("hosp-north").unwrap(),
            items: vec![
                item("J01CA04", "Amoxicillin", 20, false),
                item("N02AX02", "Tramadol", 10, true),
            ],
            repeats: 0,
            valid_from: None,
            valid_until: None,
            content: PrivateContent {
                patient: PatientDetails {
                    name: "Query Synthetic".into(),
                    birth_date: "1970-01-01".into(),
                    identifier: "SYN-Q-1".into(),
                    email: None,
                },
                dosage: vec!["one capsule".into(), "one capsule".into()],
                notes: String::new(),
            },
        },
    )
    .unwrap();
    let rx = new.payload.id;
    let cara = staff_key("ph.cara");
    let central = OrgId::parse("pharm-central").unwrap();
    append(&storage, vec![new.tx]);
    append(
        &storage,
        vec![txbuild::claim(g, &cara, &central, &new.payload)],
    );
    let full = vec![line(0, 20, "=LOT-A1"), line(1, 10, "LOT-T2")];
    append(
        &storage,
        vec![
            txbuild::dispense(g, &cara, rx, full.clone(), true),
            txbuild::dispense(g, &cara, rx, full, true),
        ],
    );
    TestChain {
        _dir: dir,
        storage,
        rx,
    }
}
