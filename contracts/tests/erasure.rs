//! Erasure after retention (crypto-shredding): a chain whose key wraps were
//! replaced by their digests still verifies from genesis, replays to the
//! same state, and no longer opens the sealed content for anyone.

mod common;

use common::*;
use rxchain_contracts::block::Block;
use rxchain_contracts::crypto::Hash;
use rxchain_contracts::encoding;
use rxchain_contracts::erasure;
use rxchain_contracts::lifecycle::Outcome;
use rxchain_contracts::privacy::{self, ErasedWrap, PrivacyError, WrapBody};
use rxchain_contracts::tx::{Erasure, TxBody};
use rxchain_contracts::verify;

/// Whether `needle` occurs in `hay`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A chain with a delivered, completed prescription, an open one, and a
/// refused issue (its id already taken).
fn chain() -> (World, Rx, Rx) {
    let mut w = World::staffed_with_seed("erasure");
    let (i1, done) = w.issue(&staff("dr-north"), HOSP_NORTH, RxSpec::simple(10));
    let (i2, open) = w.issue(&staff("dr-south"), HOSP_SOUTH, RxSpec::simple(4));
    let again = i1.clone();
    assert!(w.run(vec![i1, i2]).iter().all(Outcome::is_applied));
    let txs = vec![
        w.assign_delivery(&done, PHARM_A, "4 Synthetic Square, Testtown"),
        w.claim(&staff("ph-a"), PHARM_A, &done),
    ];
    w.advance_ms(HOUR_MS);
    assert!(w.run(txs).iter().all(Outcome::is_applied));
    let fill = w.dispense(&staff("ph-a"), done.id, &[(0, 10)], true);
    w.advance_ms(HOUR_MS);
    w.applied(fill);
    w.advance_ms(HOUR_MS);
    assert!(!w.run1(again).is_applied(), "a replayed issue is refused");
    (w, done, open)
}

/// Every block with the wraps of `which` erased in every transaction.
fn erased(blocks: &[Block], which: Erasure) -> (Vec<Block>, usize) {
    let mut n = 0;
    let blocks = blocks
        .iter()
        .cloned()
        .map(|mut b| {
            for t in &mut b.txs {
                n += t.tx.body.erase_wraps(which);
            }
            b
        })
        .collect();
    (blocks, n)
}

#[test]
fn an_erased_chain_keeps_every_id_and_hash_verifies_and_replays_to_the_same_state() {
    let (w, done, _) = chain();
    let before = verify::verify_chain(&w.genesis, &w.blocks).expect("the chain verifies");
    let (personal, n) = erased(&w.blocks, Erasure::Personal);
    // Two issues (patient and hospital each), the refused copy of one, and
    // the delivery's hand-over of the access secret.
    assert_eq!(n, 2 * 3 + 1, "personal wraps erased");
    let (all, m) = erased(&personal, Erasure::Regulator);
    assert_eq!(m, 3, "one regulator wrap per issue");
    for stage in [&personal, &all] {
        for (a, b) in w.blocks.iter().zip(stage) {
            assert_eq!(
                a.hash(CHAIN_ID),
                b.hash(CHAIN_ID),
                "the header is untouched"
            );
            for (x, y) in a.txs.iter().zip(&b.txs) {
                assert_eq!(x.tx.id(CHAIN_ID), y.tx.id(CHAIN_ID), "the id is the same");
            }
        }
        let after = verify::verify_chain(&w.genesis, stage).expect("the erased chain verifies");
        assert_eq!(
            after.state_digest, before.state_digest,
            "replay gives the same state"
        );
        assert_eq!(after.tip, before.tip);
        assert_eq!(after.txs, before.txs);
        assert_eq!(after.refused, before.refused);
    }
    // The wraps' ciphertext is gone from the stored bytes; the sealed
    // content stays (it is unreadable without a wrap).
    let issue = &done.body;
    let patient_wrap = issue
        .key_for_patient
        .sealed
        .present()
        .unwrap()
        .ciphertext
        .clone();
    let regulator_wrap = issue.key_for_regulators[0]
        .1
        .sealed
        .present()
        .unwrap()
        .ciphertext
        .clone();
    let original = encoding::to_bytes(&w.blocks[1]);
    let stored = encoding::to_bytes(&all[1]);
    assert!(contains(&original, &patient_wrap));
    assert!(
        !contains(&stored, &patient_wrap),
        "the patient's wrap is erased"
    );
    assert!(
        !contains(&stored, &regulator_wrap),
        "the regulator's wrap is erased"
    );
    assert!(contains(&stored, &issue.sealed.ciphertext));
    // Regulators keep theirs through the personal stage.
    assert!(contains(&encoding::to_bytes(&personal[1]), &regulator_wrap));
}

#[test]
fn an_erased_wrap_opens_for_nobody_not_even_the_qr_holder() {
    let (w, done, _) = chain();
    let ctx = privacy::content_context(&done.id);
    let (all, _) = erased(&w.blocks, Erasure::Personal);
    let issue = all
        .iter()
        .flat_map(|b| &b.txs)
        .find_map(|t| match &t.tx.body {
            TxBody::Issue(b) if b.id == done.id => Some(b.clone()),
            _ => None,
        })
        .unwrap();
    // Before: the QR secret opens the content.
    let ck = privacy::unwrap_with_secret(&done.secret, &ctx, &done.body.key_for_patient).unwrap();
    assert_eq!(
        privacy::open_content(
            &done.id,
            &done.body.sealed,
            &privacy::ContentKey::from_bytes(ck)
        )
        .unwrap(),
        done.content
    );
    // After: neither the QR secret nor the hospital's data key.
    assert_eq!(
        privacy::unwrap_with_secret(&done.secret, &ctx, &issue.key_for_patient),
        Err(PrivacyError::Erased)
    );
    assert_eq!(
        privacy::unwrap_with_key(&data_key(HOSP_NORTH), &ctx, &issue.key_for_hospital),
        Err(PrivacyError::Erased)
    );
    assert!(issue.key_for_regulators[0].1.is_present());
}

#[test]
fn an_erased_wrap_cannot_be_swapped_for_another_digest() {
    let (w, _, _) = chain();
    let (mut all, _) = erased(&w.blocks, Erasure::Personal);
    let t = &mut all[1].txs[0];
    let TxBody::Issue(b) = &mut t.tx.body else {
        panic!("block 1 starts with an issue");
    };
    b.key_for_patient.sealed = WrapBody::Erased(ErasedWrap {
        erased: Hash::of(&[b"another wrap"]),
    });
    assert!(
        t.clone().verify(CHAIN_ID).is_err(),
        "the signature covers the digest"
    );
    assert!(verify::verify_chain(&w.genesis, &all).is_err());
}

#[test]
fn wraps_fall_due_after_the_end_personal_first_regulators_later_refusals_from_their_block() {
    let (mut w, done, open) = chain();
    let params = w.genesis.params.clone();
    let personal = params.personal_data_retention_days;
    let regulator = params.regulator_retention_days;
    assert_eq!(personal, 100, "the default follows E-Rezept");
    assert!(regulator > personal, "the regulator keeps longer");
    let rec = w.rx(&done.id);
    let ended = rec.ended_at(w.now).expect("completed");
    let due = |which, rec, now| erasure::due_at(&params, which, rec, None, now);
    assert_eq!(
        due(Erasure::Personal, Some(&rec), w.now),
        Some(ended.plus_days(personal))
    );
    assert_eq!(
        due(Erasure::Regulator, Some(&rec), w.now),
        Some(ended.plus_days(regulator))
    );
    // Still open: nothing falls due; once it expires, from its validity end.
    let open_rec = w.rx(&open.id);
    assert_eq!(due(Erasure::Personal, Some(&open_rec), w.now), None);
    let after_expiry = open_rec.valid_until.plus_days(1);
    assert_eq!(
        due(Erasure::Personal, Some(&open_rec), after_expiry),
        Some(open_rec.valid_until.plus_days(personal))
    );
    // A refused transaction: from its own block.
    let refused_at = w.now;
    assert_eq!(
        erasure::due_at(&params, Erasure::Personal, None, Some(refused_at), w.now),
        Some(refused_at.plus_days(personal))
    );
    // is_due is the boundary, inclusive.
    let at = ended.plus_days(personal);
    w.now = at;
    assert!(erasure::is_due(
        &params,
        Erasure::Personal,
        Some(&rec),
        None,
        at
    ));
    assert!(!erasure::is_due(
        &params,
        Erasure::Regulator,
        Some(&rec),
        None,
        at
    ));
}

#[test]
fn a_new_transaction_with_an_erased_wrap_is_recognisable_before_admission() {
    let mut w = World::staffed_with_seed("erasure-admission");
    let (mut issue, _) = w.issue(&staff("dr-north"), HOSP_NORTH, RxSpec::simple(1));
    assert!(!issue.tx.body.has_erased_wrap());
    assert_eq!(issue.tx.body.erase_wraps(Erasure::Personal), 2);
    assert!(issue.tx.body.has_erased_wrap());
    assert_eq!(issue.tx.body.erase_wraps(Erasure::Personal), 0, "only once");
}
