//! The canonical encoding round-trips everything that is stored, replicated
//! or verified offline, and the JSON form keeps the shape the HTTP API and
//! its clients read.
//!
//! Regression guard: `TxBody`, `Fulfilment`, `Outcome` and `Rejection` used to
//! be internally tagged for both forms, which postcard can encode but never
//! decode, so no block, signed transaction or assigned prescription record
//! could be read back.

mod common;

use common::*;
use rxchain_contracts::block::Block;
use rxchain_contracts::encoding;
use rxchain_contracts::lifecycle::{Outcome, Rejection};
use rxchain_contracts::model::Timestamp;
use rxchain_contracts::state::{PrescriptionRecord, StaffRecord};
use rxchain_contracts::tx::{DeliveryStatus, Fulfilment, SignedTx, TxBody};

/// A world whose chain holds every kind of transaction and some refusals.
fn busy_world() -> (World, Rx) {
    let mut w = World::staffed_with_seed("encoding");
    let rx = w.issued(RxSpec::simple(10));
    let other = w.issued(RxSpec::controlled(5));
    let txs = vec![
        w.assign_delivery(&rx, PHARM_A, "3 Synthetic Way"),
        w.assign_pickup(&other, PHARM_B),
        w.claim(&staff("ph-a"), PHARM_A, &rx),
        w.claim_with_secret(
            &staff("ph-b"),
            PHARM_B,
            other.id,
            &rxchain_contracts::privacy::AccessSecret::from_bytes([5; 32]),
        ),
        w.dispense(&staff("ph-a"), rx.id, &[(0, 10)], false),
        w.delivery(&staff("ph-a"), rx.id, DeliveryStatus::Packed),
        w.cancel(&other.patient, other.id),
        w.release(&staff("ph-c"), rx.id),
        w.revoke(&admin_key(PHARM_C), &staff("ph-c").public()),
    ];
    let outcomes = w.run(txs);
    assert!(
        outcomes.iter().any(|o| !o.is_applied()),
        "the busy block holds refusals too"
    );
    (w, rx)
}

#[test]
fn every_kind_of_signed_transaction_decodes_to_itself() {
    let (w, _) = busy_world();
    let mut kinds = std::collections::BTreeSet::new();
    for block in &w.blocks {
        for tx in &block.txs {
            let bytes = tx.to_bytes();
            let back: SignedTx =
                encoding::from_bytes(&bytes).expect("a signed transaction decodes");
            assert_eq!(&back, tx);
            assert_eq!(
                back.clone().verify(CHAIN_ID).map(|v| v.id()),
                Ok(tx.tx.id(CHAIN_ID))
            );
            kinds.insert(tx.tx.body.kind());
        }
    }
    assert_eq!(kinds.len(), 9, "the busy chain holds every kind: {kinds:?}");
}

#[test]
fn blocks_decode_to_themselves_and_trailing_bytes_are_refused() {
    let (w, _) = busy_world();
    for block in &w.blocks {
        let mut bytes = encoding::to_bytes(block);
        let back: Block = encoding::from_bytes(&bytes).expect("a block decodes");
        assert_eq!(&back, block);
        bytes.push(0);
        assert!(
            encoding::from_bytes::<Block>(&bytes).is_err(),
            "a trailing byte must not be ignored"
        );
    }
}

#[test]
fn every_stored_record_decodes() {
    let (w, rx) = busy_world();
    let rec = w.rx(&rx.id);
    assert!(
        matches!(rec.fulfilment, Some(Fulfilment::Delivery { .. })),
        "the record holds a fulfilment"
    );
    for (key, value) in &w.store.0 {
        if key.starts_with(b"rx/") {
            let r: PrescriptionRecord =
                encoding::from_bytes(value).expect("prescription records decode");
            assert_eq!(encoding::to_bytes(&r), *value);
        } else if key.starts_with(b"staff/") {
            let s: StaffRecord = encoding::from_bytes(value).expect("staff records decode");
            assert_eq!(encoding::to_bytes(&s), *value);
        }
    }
}

#[test]
fn enums_encode_as_their_variant_index_not_their_name() {
    // The encoding documentation promises variant indices; names in the
    // signed bytes would make the encoding depend on serde renames.
    assert_eq!(encoding::to_bytes(&Outcome::Applied), vec![0]);
    assert_eq!(
        encoding::to_bytes(&Outcome::Refused {
            reason: Rejection::Duplicate
        }),
        vec![1, 0]
    );
    assert_eq!(
        encoding::to_bytes(&Outcome::Refused {
            reason: Rejection::WrongSecret { attempts: 3 }
        }),
        vec![1, 26, 3]
    );
    let mut w = World::staffed();
    let tx = w.release(
        &staff("ph-a"),
        rxchain_contracts::PrescriptionId::from_bytes([0xab; 16]),
    );
    let body = encoding::to_bytes(&tx.tx.body);
    assert_eq!(body[0], 5, "release is the sixth kind");
    assert_eq!(&body[1..], &[0xab; 16]);
    assert!(!contains(&tx.tx.signing_bytes(), b"release"));
}

#[test]
fn json_keeps_the_tagged_shape_clients_read() {
    let (w, _) = busy_world();
    let block = w.blocks.last().unwrap();
    let v = serde_json::to_value(block).unwrap();
    assert_eq!(v["txs"][0]["tx"]["body"]["kind"], "assign");
    assert_eq!(v["txs"][0]["tx"]["body"]["fulfilment"]["mode"], "delivery");
    assert_eq!(v["outcomes"][0]["result"], "applied");
    let refused = v["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["result"] == "refused")
        .expect("a refusal");
    assert_eq!(refused["reason"]["code"], "wrong_secret");
    assert_eq!(refused["reason"]["attempts"], 1);
    // And it reads back.
    let back: Block = serde_json::from_value(v).unwrap();
    assert_eq!(&back, block);
    let r: Rejection =
        serde_json::from_str(r#"{"code":"already_dispensed","pharmacy":"pharm-a","at":5}"#)
            .unwrap();
    assert_eq!(
        r,
        Rejection::AlreadyDispensed {
            pharmacy: org(PHARM_A),
            at: Timestamp(5)
        }
    );
}

#[test]
fn a_transaction_body_reads_back_from_json() {
    let (w, _) = busy_world();
    for tx in &w.blocks.last().unwrap().txs {
        let json = serde_json::to_string(&tx.tx.body).unwrap();
        let back: TxBody = serde_json::from_str(&json).unwrap();
        assert_eq!(back, tx.tx.body);
    }
}
