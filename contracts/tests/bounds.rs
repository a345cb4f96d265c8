//! Every variable-length field of a transaction has a limit in bytes, and
//! `SignedTx::verify` refuses a transaction just over it while accepting one
//! just at it: the key wraps, the sealed content and address, the counts of
//! items, wraps and lines, and the text fields whose types bound them. The
//! largest valid transaction encodes to exactly `limits::MAX_TX_BYTES`.

mod common;

use common::*;
use rxchain_contracts::crypto::SecretKey;
use rxchain_contracts::encoding;
use rxchain_contracts::model::{AtcCode, Label, OrgId, Quantity, Timestamp};
use rxchain_contracts::privacy::{Sealed, WrapBody, WrappedKey};
use rxchain_contracts::tx::{
    limits, DispenseLine, DispenseRx, Fulfilment, IssueRx, Item, SignedTx, Transaction, TxBody,
    TxError,
};

/// Signs `body` by `key` with the largest varints a client could choose.
fn signed(key: &SecretKey, body: TxBody) -> SignedTx {
    Transaction {
        signer: key.public(),
        nonce: u64::MAX,
        created_at: Timestamp(u64::MAX),
        body,
    }
    .sign(CHAIN_ID, key)
}

/// Verifies `body` signed by `key`: `Ok` or the sentence of the refusal.
fn check(key: &SecretKey, body: TxBody) -> Result<(), String> {
    match signed(key, body).verify(CHAIN_ID) {
        Ok(_) => Ok(()),
        Err(TxError::Invalid(s)) => Err(s),
        Err(e) => panic!("a structural check was expected, got {e:?}"),
    }
}

/// A key wrap whose ciphertext has `n` bytes.
fn wrap(n: usize, ephemeral: bool) -> WrappedKey {
    WrappedKey {
        ephemeral: ephemeral.then(|| test_key("ephemeral").public()),
        sealed: WrapBody::Present(Sealed {
            nonce: [1; 12],
            ciphertext: vec![2; n],
        }),
    }
}

/// A real issue body from the harness, so only the field under test differs.
fn issue_body() -> IssueRx {
    let mut w = World::staffed_with_seed("bounds");
    w.issue_body(HOSP_NORTH, RxSpec::simple(1)).body
}

fn issue(b: IssueRx) -> Result<(), String> {
    check(&staff("dr-north"), TxBody::Issue(b))
}

#[test]
fn every_key_wrap_is_exactly_a_wrapped_32_byte_key() {
    let base = issue_body();
    assert_eq!(
        base.key_for_patient
            .sealed
            .present()
            .unwrap()
            .ciphertext
            .len(),
        48
    );
    assert_eq!(issue(base.clone()), Ok(()));
    type Set = fn(&mut IssueRx, WrappedKey);
    let fields: [(&str, Set); 3] = [
        ("the patient's key wrap", |b, w| b.key_for_patient = w),
        ("the hospital's key wrap", |b, w| b.key_for_hospital = w),
        ("the key wrap for regulator", |b, w| {
            b.key_for_regulators[0].1 = w
        }),
    ];
    for (what, set) in fields {
        for n in [
            limits::WRAPPED_KEY_BYTES + 1,
            limits::WRAPPED_KEY_BYTES - 1,
            0,
        ] {
            let mut b = base.clone();
            set(&mut b, wrap(n, true));
            let e = issue(b).unwrap_err();
            assert!(e.starts_with(what), "{what}, {n} bytes: {e}");
            assert!(e.contains(&format!("got {n}")), "{e}");
        }
        let mut b = base.clone();
        set(&mut b, wrap(limits::WRAPPED_KEY_BYTES, true));
        // At the limit the structure passes (the chain's rules then decide
        // whether the wrap has the right form).
        assert_eq!(issue(b), Ok(()), "{what}");
    }
}

#[test]
fn the_handover_is_a_wrapped_key_and_the_sealed_address_at_most_4_kib() {
    let mut w = World::staffed_with_seed("bounds-assign");
    let rx = w.issued(RxSpec::simple(1));
    let TxBody::Assign(base) = w.assign_delivery(&rx, PHARM_A, "1 Lane").tx.body else {
        unreachable!()
    };
    let assign = |a| check(&rx.patient, TxBody::Assign(a));
    assert_eq!(assign(base.clone()), Ok(()));
    // 1. The hand-over.
    let mut a = base.clone();
    a.handover = Some(wrap(limits::WRAPPED_KEY_BYTES + 1, true));
    let e = assign(a).unwrap_err();
    assert!(e.starts_with("the hand-over of the access secret"), "{e}");
    // 2. The sealed address: at the limit, and one byte over.
    let with_address = |n: usize| {
        let mut a = base.clone();
        if let Fulfilment::Delivery { address, .. } = &mut a.fulfilment {
            address.ciphertext = vec![0; n];
        }
        a
    };
    assert_eq!(assign(with_address(limits::MAX_SEALED_ADDRESS)), Ok(()));
    assert_eq!(
        assign(with_address(limits::MAX_SEALED_ADDRESS + 1)),
        Err("sealed address is larger than 4 KiB".into())
    );
    // 3. The longest address the node accepts seals well within it.
    let longest = "\u{10348}".repeat(rxchain_contracts::rules::MAX_ADDRESS_CHARS);
    assert!(longest.len() + 16 <= limits::MAX_SEALED_ADDRESS);
}

#[test]
fn the_sealed_content_is_at_most_16_kib_and_the_node_never_signs_more() {
    let base = issue_body();
    let with = |n: usize| {
        let mut b = base.clone();
        b.sealed.ciphertext = vec![0; n];
        b
    };
    assert_eq!(issue(with(limits::MAX_SEALED)), Ok(()));
    assert_eq!(
        issue(with(limits::MAX_SEALED + 1)),
        Err("sealed content is larger than 16 KiB".into())
    );
    // The node's form rule refuses content that would not fit: every field
    // at its character limit, in four-byte characters.
    let big = |n: usize| "\u{10348}".repeat(n);
    let patient = rxchain_contracts::privacy::PatientDetails {
        name: big(rxchain_contracts::rules::MAX_PATIENT_NAME_CHARS),
        birth_date: "1980-01-01".into(),
        identifier: big(rxchain_contracts::rules::MAX_PATIENT_IDENTIFIER_CHARS),
        email: None,
    };
    let items = vec![paracetamol(1); limits::MAX_ITEMS];
    let dosage = vec![big(rxchain_contracts::rules::MAX_DOSAGE_CHARS); limits::MAX_ITEMS];
    let notes = big(rxchain_contracts::rules::MAX_NOTES_CHARS);
    let list = rxchain_contracts::ControlledList::from_genesis(&genesis());
    let form = |dosage: &[String], notes: &str| {
        rxchain_contracts::rules::check_issue_form(
            &rxchain_contracts::genesis::Params::default(),
            &list,
            &rxchain_contracts::rules::IssueForm {
                items: &items,
                dosage,
                repeats: 0,
                valid_days: None,
                patient: &patient,
                notes: Some(notes),
            },
        )
    };
    let e = form(&dosage, &notes).unwrap_err();
    assert_eq!(e.code(), "bad_notes");
    assert_eq!(
        e.to_string(),
        "the patient's details, dosage and notes are too long together"
    );
    // The same form in ASCII fits.
    let ascii_dosage =
        vec!["d".repeat(rxchain_contracts::rules::MAX_DOSAGE_CHARS); limits::MAX_ITEMS];
    let ascii_notes = "n".repeat(rxchain_contracts::rules::MAX_NOTES_CHARS);
    let mut ascii_patient = patient.clone();
    ascii_patient.name = "a".repeat(rxchain_contracts::rules::MAX_PATIENT_NAME_CHARS);
    ascii_patient.identifier = "1".repeat(rxchain_contracts::rules::MAX_PATIENT_IDENTIFIER_CHARS);
    assert_eq!(
        rxchain_contracts::rules::check_issue_form(
            &rxchain_contracts::genesis::Params::default(),
            &list,
            &rxchain_contracts::rules::IssueForm {
                items: &items,
                dosage: &ascii_dosage,
                repeats: 0,
                valid_days: None,
                patient: &ascii_patient,
                notes: Some(&ascii_notes),
            },
        ),
        Ok(())
    );
}

#[test]
fn counts_are_bounded_at_their_limits() {
    let base = issue_body();
    // Items.
    let mut b = base.clone();
    b.items = vec![paracetamol(1); limits::MAX_ITEMS];
    assert_eq!(issue(b.clone()), Ok(()));
    b.items.push(paracetamol(1));
    assert_eq!(issue(b), Err("a prescription has 1 to 10 items".into()));
    // Regulator wraps.
    let mut b = base.clone();
    b.key_for_regulators = vec![b.key_for_regulators[0].clone(); limits::MAX_REGULATOR_WRAPS];
    assert_eq!(issue(b.clone()), Ok(()));
    b.key_for_regulators.push(b.key_for_regulators[0].clone());
    assert_eq!(issue(b), Err("too many regulator key wraps".into()));
    // Dispense lines.
    let line = DispenseLine {
        item: 0,
        quantity: Quantity::new(1).unwrap(),
        batch: label("B1"),
    };
    let dispense = |n: usize| {
        check(
            &staff("ph-a"),
            TxBody::Dispense(DispenseRx {
                id: base.id,
                lines: vec![line.clone(); n],
                complete: false,
            }),
        )
    };
    assert_eq!(dispense(limits::MAX_LINES), Ok(()));
    assert_eq!(
        dispense(limits::MAX_LINES + 1),
        Err("at most 10 lines per dispense".into())
    );
}

#[test]
fn labels_and_org_ids_are_bounded_by_their_types_when_decoded() {
    // A label: 120 characters, at most 480 bytes.
    let at_limit = "\u{10348}".repeat(120);
    assert_eq!(at_limit.len(), limits::MAX_LABEL_BYTES);
    assert!(Label::parse(at_limit.as_str()).is_ok());
    let over = format!("{at_limit}x");
    assert_eq!(over.len(), limits::MAX_LABEL_BYTES + 1);
    assert!(Label::parse(over.as_str()).is_err());
    // An organisation id: 32 bytes.
    assert!(OrgId::parse("a".repeat(limits::MAX_ORG_ID_BYTES)).is_ok());
    assert!(OrgId::parse("a".repeat(limits::MAX_ORG_ID_BYTES + 1)).is_err());
    // A transaction carrying an over-long batch number does not decode,
    // from either encoding: the label's rule runs in its deserialiser.
    let mut w = World::staffed_with_seed("bounds-labels");
    let id = w.issued(RxSpec::simple(1)).id;
    let t = w.dispense(&staff("ph-a"), id, &[(0, 1)], false);
    let json = serde_json::to_string(&t)
        .unwrap()
        .replace("BATCH-2026-001", &over);
    assert!(serde_json::from_str::<SignedTx>(&json).is_err());
    let short = encoding::to_bytes(&t);
    let mut long = t.clone();
    if let TxBody::Dispense(d) = &mut long.tx.body {
        // Build the bytes of an over-long label by hand: encode a valid one
        // and splice in the longer string with its length prefix.
        let good = Label::parse(at_limit.as_str()).unwrap();
        d.lines[0].batch = good;
    }
    let mut bytes = encoding::to_bytes(&long);
    let needle = at_limit.as_bytes();
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the label is in the encoding");
    // 480 has a two-byte varint prefix, and so has 481.
    bytes[at - 2..at].copy_from_slice(&[0xe1, 0x03]);
    bytes.insert(at + needle.len(), b'x');
    assert!(encoding::from_bytes::<SignedTx>(&bytes).is_err());
    assert!(encoding::from_bytes::<SignedTx>(&short).is_ok());
}

/// An item with every label at its longest.
fn longest_item() -> Item {
    let l = Label::parse("\u{10348}".repeat(120)).unwrap();
    Item {
        atc: AtcCode::parse("N02BE01").unwrap(),
        name: l.clone(),
        strength: l.clone(),
        form: l.clone(),
        quantity: Quantity::new(Quantity::MAX).unwrap(),
        unit: l,
        controlled: false,
    }
}

#[test]
fn the_largest_valid_transaction_is_exactly_max_tx_bytes() {
    let base = issue_body();
    let regulator = OrgId::parse("r".repeat(limits::MAX_ORG_ID_BYTES)).unwrap();
    let b = IssueRx {
        items: vec![longest_item(); limits::MAX_ITEMS],
        repeats: limits::MAX_REPEATS,
        valid_from: Timestamp(u64::MAX),
        valid_until: Some(Timestamp(u64::MAX)),
        sealed: Sealed {
            nonce: [0; 12],
            ciphertext: vec![0; limits::MAX_SEALED],
        },
        key_for_patient: wrap(limits::WRAPPED_KEY_BYTES, true),
        key_for_hospital: wrap(limits::WRAPPED_KEY_BYTES, true),
        key_for_regulators: vec![
            (regulator, wrap(limits::WRAPPED_KEY_BYTES, true));
            limits::MAX_REGULATOR_WRAPS
        ],
        ..base
    };
    let t = signed(&staff("dr-north"), TxBody::Issue(b));
    assert_eq!(t.to_bytes().len(), limits::MAX_TX_BYTES);
    t.verify(CHAIN_ID)
        .expect("the largest transaction is valid");
}
