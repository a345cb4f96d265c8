//! Every rule of docs/rules.md that the contracts enforce, one test per rule or
//! refusal, driven through real signed transactions, real blocks and a real
//! `MemStore`.
//!
//! Each `Rejection` code is asserted by at least one test in this file; the
//! ledger at the end fails when a variant exists that no test asserts, so a
//! new refusal cannot be added without a test.

mod common;

use common::*;
use rxchain_contracts::block;
use rxchain_contracts::crypto::signing_digest;
use rxchain_contracts::crypto::SecretKey;
use rxchain_contracts::encoding;
use rxchain_contracts::genesis::{NodeDecl, OrgDecl, OrgKind};
use rxchain_contracts::governance::{self, Action};
use rxchain_contracts::lifecycle::{self, Outcome, Rejection};
use rxchain_contracts::model::{OrgId, Timestamp};
use rxchain_contracts::privacy::{self, AccessSecret, ContentKey, PrivacyError, WrappedKey};
use rxchain_contracts::state::{self, AccessRequest, GrantRecord, RequestStatus, StateRead};
use rxchain_contracts::state::{PublicStatus, RxStatus};
use rxchain_contracts::tx::{
    AnchorAccessLog, GrantAccess, RefuseRequest, RequestAccess, RevokeAccess,
};
use rxchain_contracts::tx::{Approve, LeaveNode, Propose};
use rxchain_contracts::tx::{
    AssignRx, DeliveryStatus, DispenseLine, DispenseRx, Fulfilment, Role, SignedTx, TxBody,
    TxError, TxId, CLAIM_PROOF_TAG,
};
use rxchain_contracts::verify;

fn tx_id(tx: &SignedTx) -> TxId {
    tx.tx.id(CHAIN_ID)
}

/// A world with `dr-north`'s prescription for 10 tablets already issued.
fn with_rx(seed: &str, spec: RxSpec) -> (World, Rx) {
    let mut w = World::staffed_with_seed(seed);
    let rx = w.issued(spec);
    (w, rx)
}

/// A world with a prescription claimed by `ph-a` for pharm-a.
fn claimed_by_a(seed: &str, spec: RxSpec) -> (World, Rx) {
    let (mut w, rx) = with_rx(seed, spec);
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    w.applied(c);
    (w, rx)
}

// ---- issue -------------------------------------------------------------

#[test]
fn practitioner_issues_with_the_90_day_default_and_the_record_names_no_patient() {
    let mut w = World::staffed();
    let (tx, rx) = w.issue(
        &staff("dr-south"),
        HOSP_SOUTH,
        RxSpec::simple(20).repeats(2),
    );
    let id = tx_id(&tx);
    w.applied(tx);
    let rec = w.rx(&rx.id);
    assert_eq!(rec.status, RxStatus::Issued);
    assert_eq!(
        rec.hospital,
        org(HOSP_SOUTH),
        "the hospital is the prescriber's own organisation"
    );
    assert_eq!(rec.prescriber, staff("dr-south").public());
    assert_eq!(rec.issue_tx, id);
    assert_eq!(rec.valid_from, w.now);
    assert_eq!(rec.valid_until, rec.valid_from.plus_days(90));
    assert!(!rec.controlled);
    assert_eq!(rec.allowance(0), 60, "quantity 20 times (1 + 2 repeats)");
    assert_eq!(rec.dispensed, vec![0]);
    assert_eq!(rec.access_key, rx.patient.public());
    assert_eq!(rec.public_status(w.now), PublicStatus::Issued);
}

#[test]
fn controlled_drugs_default_to_28_days_which_is_also_their_maximum() {
    let mut w = World::staffed();
    // 1. Without an explicit end, a controlled prescription runs 28 days.
    let rx = w.issued(RxSpec::controlled(10));
    let rec = w.rx(&rx.id);
    assert!(rec.controlled);
    assert_eq!(rec.valid_until, rec.valid_from.plus_days(28));

    // 2. One controlled item among others makes the whole prescription controlled.
    let mut spec = RxSpec::simple(10);
    spec.items.push(morphine(5));
    let rx = w.issued(spec);
    let rec = w.rx(&rx.id);
    assert!(rec.controlled);
    assert_eq!(rec.valid_until, rec.valid_from.plus_days(28));

    // 3. Exactly 28 days is allowed.
    let mut spec = RxSpec::controlled(10);
    spec.valid_until = Some(w.now.plus_days(28));
    w.issued(spec);

    // 4. One millisecond more is refused, naming the limit.
    let mut spec = RxSpec::controlled(10);
    spec.valid_until = Some(Timestamp(w.now.plus_days(28).0 + 1));
    let (tx, _) = w.issue(&staff("dr-north"), HOSP_NORTH, spec);
    assert_eq!(
        w.refused(tx, "validity_too_long"),
        Rejection::ValidityTooLong { max_days: 28 }
    );
}

#[test]
fn other_drugs_may_run_up_to_365_days_and_no_longer() {
    let mut w = World::staffed();
    let mut spec = RxSpec::simple(10);
    spec.valid_until = Some(w.now.plus_days(365));
    let rx = w.issued(spec);
    assert_eq!(
        w.rx(&rx.id).valid_until,
        w.rx(&rx.id).valid_from.plus_days(365)
    );

    let mut spec = RxSpec::simple(10);
    spec.valid_until = Some(Timestamp(w.now.plus_days(365).0 + 1));
    let (tx, _) = w.issue(&staff("dr-north"), HOSP_NORTH, spec);
    assert_eq!(
        w.refused(tx, "validity_too_long"),
        Rejection::ValidityTooLong { max_days: 365 }
    );
}

#[test]
fn empty_inverted_or_already_past_validity_windows_are_refused() {
    let mut w = World::staffed();
    // 1. An end equal to the start leaves no time to fill it.
    let mut spec = RxSpec::simple(10);
    spec.valid_until = Some(w.now);
    let (tx, _) = w.issue(&staff("dr-north"), HOSP_NORTH, spec);
    w.refused(tx, "bad_validity");

    // 2. An end before the start.
    let mut spec = RxSpec::simple(10);
    spec.valid_from = Some(w.now.plus_days(5));
    spec.valid_until = Some(w.now.plus_days(4));
    let (tx, _) = w.issue(&staff("dr-north"), HOSP_NORTH, spec);
    w.refused(tx, "bad_validity");

    // 3. A back-dated start whose default window already ended by block time.
    w.advance_days(200);
    let mut spec = RxSpec::simple(10);
    spec.valid_from = Some(Timestamp(w.now.0 - 100 * Timestamp::DAY_MS));
    let (tx, _) = w.issue(&staff("dr-north"), HOSP_NORTH, spec);
    w.refused(tx, "bad_validity");
}

#[test]
fn only_registered_unrevoked_practitioners_issue() {
    let mut w = World::staffed();
    // 1. A pharmacist, an officer and an org admin have the wrong role.
    let (tx, _) = w.issue(&staff("ph-a"), HOSP_NORTH, RxSpec::simple(1));
    let r = w.refused(tx, "wrong_role");
    assert_eq!(
        r,
        Rejection::WrongRole {
            role: "pharmacist".into(),
            action: "issue prescriptions".into()
        }
    );
    let (tx, _) = w.issue(&staff("officer"), HOSP_NORTH, RxSpec::simple(1));
    w.refused(tx, "wrong_role");
    let (tx, _) = w.issue(&admin_key(HOSP_NORTH), HOSP_NORTH, RxSpec::simple(1));
    let r = w.refused(tx, "wrong_role");
    assert!(r.to_string().contains("organisation admin"), "{r}");

    // 2. A key nobody registered.
    let (tx, _) = w.issue(&test_key("impostor"), HOSP_NORTH, RxSpec::simple(1));
    w.refused(tx, "unknown_signer");

    // 3. A revoked practitioner.
    let revoke = w.revoke(&admin_key(HOSP_NORTH), &staff("dr-north-2").public());
    w.applied(revoke);
    let revoked_at = w.tip.timestamp;
    let (tx, rx) = w.issue(&staff("dr-north-2"), HOSP_NORTH, RxSpec::simple(1));
    assert_eq!(
        w.refused(tx, "signer_revoked"),
        Rejection::SignerRevoked { at: revoked_at }
    );
    assert!(
        w.try_rx(&rx.id).is_none(),
        "a refused issue leaves no record"
    );
}

#[test]
fn a_prescription_id_is_issued_only_once() {
    let (mut w, rx) = with_rx("dup-id", RxSpec::simple(10));
    // Another prescriber reusing the id must not overwrite the first prescription.
    let tx = w.tx(&staff("dr-south"), TxBody::Issue(rx.body.clone()));
    w.refused(tx, "prescription_exists");
    assert_eq!(w.rx(&rx.id).prescriber, staff("dr-north").public());
}

#[test]
fn the_content_key_must_be_wrapped_for_the_patient_the_hospital_and_every_regulator() {
    let mut w = World::staffed();
    // 1. No regulator wrap.
    let mut rx = w.issue_body(HOSP_NORTH, RxSpec::simple(10));
    rx.body.key_for_regulators.clear();
    let tx = w.tx(&staff("dr-north"), TxBody::Issue(rx.body.clone()));
    let r = w.refused(tx, "missing_key_wrap");
    assert_eq!(
        r,
        Rejection::MissingKeyWrap {
            party: format!("regulator {REGULATOR}")
        }
    );

    // 2. A wrap under some other organisation's name does not count.
    let mut rx = w.issue_body(HOSP_NORTH, RxSpec::simple(10));
    rx.body.key_for_regulators[0].0 = org(PHARM_A);
    let tx = w.tx(&staff("dr-north"), TxBody::Issue(rx.body.clone()));
    w.refused(tx, "missing_key_wrap");

    // 3. A patient wrap in the form of an ECDH wrap, or a hospital wrap in
    //    the form of a secret wrap, cannot be what the parties need.
    let mut rx = w.issue_body(HOSP_NORTH, RxSpec::simple(10));
    rx.body.key_for_patient = rx.body.key_for_hospital.clone();
    let tx = w.tx(&staff("dr-north"), TxBody::Issue(rx.body.clone()));
    w.refused(tx, "missing_key_wrap");
    let mut rx = w.issue_body(HOSP_NORTH, RxSpec::simple(10));
    rx.body.key_for_hospital = rx.body.key_for_patient.clone();
    let tx = w.tx(&staff("dr-north"), TxBody::Issue(rx.body.clone()));
    w.refused(tx, "missing_key_wrap");
}

#[test]
fn the_access_key_may_not_be_the_prescribers_own_key() {
    let mut w = World::staffed();
    let mut rx = w.issue_body(HOSP_NORTH, RxSpec::simple(10));
    rx.body.access_key = staff("dr-north").public();
    let tx = w.tx(&staff("dr-north"), TxBody::Issue(rx.body.clone()));
    w.refused(tx, "bad_access_key");
}

#[test]
fn any_change_to_a_signed_prescription_breaks_its_signature() {
    let mut w = World::staffed();
    let (tx, _) = w.issue(&staff("dr-north"), HOSP_NORTH, RxSpec::simple(10));
    assert!(tx.clone().verify(CHAIN_ID).is_ok());
    type Change = Box<dyn Fn(&mut rxchain_contracts::tx::IssueRx)>;
    let changes: Vec<(&str, Change)> = vec![
        (
            "sealed content",
            Box::new(|b| b.sealed.ciphertext[3] ^= 0x20),
        ),
        (
            "quantity",
            Box::new(|b| b.items[0].quantity = rxchain_contracts::Quantity::new(99).unwrap()),
        ),
        ("repeats", Box::new(|b| b.repeats = 5)),
        (
            "validity",
            Box::new(|b| b.valid_until = Some(b.valid_from.plus_days(10))),
        ),
        (
            "access key",
            Box::new(|b| b.access_key = test_key("thief").public()),
        ),
        (
            "controlled flag",
            Box::new(|b| b.items[0].controlled = true),
        ),
        (
            "regulator wrap",
            Box::new(|b| match &mut b.key_for_regulators[0].1.sealed {
                privacy::WrapBody::Present(s) => s.nonce[0] ^= 1,
                privacy::WrapBody::Erased(_) => unreachable!("a new wrap is present"),
            }),
        ),
    ];
    for (what, change) in changes {
        let mut t = tx.clone();
        let TxBody::Issue(b) = &mut t.tx.body else {
            unreachable!()
        };
        change(b);
        assert_eq!(
            t.verify(CHAIN_ID),
            Err(TxError::BadSignature),
            "a change of the {what} went unnoticed"
        );
    }
}

// ---- assign --------------------------------------------------------------

#[test]
fn only_the_patient_assigns_pickup_or_delivery() {
    let (mut w, rx) = with_rx("assign-who", RxSpec::simple(10));
    // 1. The prescriber, a pharmacist and a stranger are not the patient.
    for signer in [staff("dr-north"), staff("ph-a"), test_key("stranger")] {
        let body = AssignRx {
            id: rx.id,
            fulfilment: Fulfilment::Pickup {
                pharmacy: org(PHARM_A),
            },
            handover: None,
        };
        let tx = w.tx(&signer, TxBody::Assign(body));
        w.refused(tx, "not_patient");
    }
    assert_eq!(w.rx(&rx.id).status, RxStatus::Issued);

    // 2. The patient's access key may, and may change its mind while unclaimed.
    let a = w.assign_pickup(&rx, PHARM_A);
    w.applied(a);
    assert_eq!(w.rx(&rx.id).status, RxStatus::Assigned);
    assert_eq!(w.rx(&rx.id).public_status(w.now), PublicStatus::Assigned);
    let a = w.assign_delivery(&rx, PHARM_B, "1 Synthetic Lane");
    w.applied(a);
    let rec = w.rx(&rx.id);
    assert!(
        matches!(&rec.fulfilment, Some(Fulfilment::Delivery { pharmacy, .. }) if pharmacy == &org(PHARM_B))
    );
}

#[test]
fn assignment_must_name_a_pharmacy_of_the_consortium() {
    let (mut w, rx) = with_rx("assign-org", RxSpec::simple(10));
    let assign_to = |w: &mut World, pharmacy: &str| {
        let body = AssignRx {
            id: rx.id,
            fulfilment: Fulfilment::Pickup {
                pharmacy: org(pharmacy),
            },
            handover: None,
        };
        w.tx(&rx.patient, TxBody::Assign(body))
    };
    let t = assign_to(&mut w, "pharm-nowhere");
    assert_eq!(
        w.refused(t, "unknown_org"),
        Rejection::UnknownOrg {
            org: org("pharm-nowhere")
        }
    );
    for not_a_pharmacy in [HOSP_NORTH, REGULATOR, LOGISTICS] {
        let t = assign_to(&mut w, not_a_pharmacy);
        let r = w.refused(t, "wrong_org_kind");
        assert_eq!(
            r,
            Rejection::WrongOrgKind {
                org: org(not_a_pharmacy),
                need: "pharmacy".into()
            }
        );
    }
    assert_eq!(w.rx(&rx.id).fulfilment, None);
}

#[test]
fn assignment_only_while_issued_or_assigned_and_valid() {
    // 1. Not before the validity window starts.
    let mut w = World::staffed_with_seed("assign-window");
    let mut spec = RxSpec::simple(10);
    spec.valid_from = Some(w.now.plus_days(2));
    let rx = w.issued(spec);
    let a = w.assign_pickup(&rx, PHARM_A);
    assert_eq!(
        w.refused(a, "not_yet_valid"),
        Rejection::NotYetValid {
            from: w.rx(&rx.id).valid_from
        }
    );
    w.advance_days(2);
    let a = w.assign_pickup(&rx, PHARM_A);
    w.applied(a);

    // 2. Not while claimed.
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    w.applied(c);
    let a = w.assign_pickup(&rx, PHARM_B);
    w.refused(a, "claimed_cannot_change");

    // 3. Not after completion.
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 10)], false);
    w.applied(d);
    let a = w.assign_pickup(&rx, PHARM_B);
    w.refused(a, "already_dispensed");

    // 4. Not after cancellation.
    let rx = w.issued(RxSpec::simple(10));
    let c = w.cancel(&rx.patient, rx.id);
    w.applied(c);
    let a = w.assign_pickup(&rx, PHARM_A);
    w.refused(a, "cancelled");

    // 5. Not after expiry.
    let rx = w.issued(RxSpec::simple(10));
    w.now = w.rx(&rx.id).valid_until;
    let a = w.assign_pickup(&rx, PHARM_A);
    assert_eq!(
        w.refused(a, "expired"),
        Rejection::Expired {
            at: w.rx(&rx.id).valid_until
        }
    );
}

#[test]
fn home_delivery_without_a_handover_is_malformed() {
    let (mut w, rx) = with_rx("no-handover", RxSpec::simple(10));
    let TxBody::Assign(mut body) = w.assign_delivery(&rx, PHARM_A, "1 Synthetic Lane").tx.body
    else {
        unreachable!()
    };
    body.handover = None;
    let tx = w.tx(&rx.patient, TxBody::Assign(body));
    assert!(matches!(tx.verify(CHAIN_ID), Err(TxError::Invalid(m)) if m.contains("handed over")));
}

// ---- claim ---------------------------------------------------------------

#[test]
fn a_claim_with_the_qr_proof_locks_the_prescription_for_one_pharmacy() {
    let (mut w, rx) = with_rx("claim-ok", RxSpec::simple(10));
    let c = w.claim(&staff("ph-b"), PHARM_B, &rx);
    w.applied(c);
    let rec = w.rx(&rx.id);
    assert_eq!(rec.status, RxStatus::Claimed);
    assert_eq!(rec.public_status(w.now), PublicStatus::Claimed);
    let claim = rec.claim.expect("the lock is recorded");
    assert_eq!(claim.pharmacy, org(PHARM_B));
    assert_eq!(claim.by, staff("ph-b").public());
    assert_eq!(claim.at, w.tip.timestamp);
}

#[test]
fn a_wrong_qr_secret_is_refused_recorded_and_counted() {
    let (mut w, rx) = with_rx("wrong-secret", RxSpec::simple(10));
    let wrong = AccessSecret::from_bytes([0x42; 32]);
    // 1. A first wrong attempt is refused and counted.
    let c = w.claim_with_secret(&staff("ph-a"), PHARM_A, rx.id, &wrong);
    assert_eq!(
        w.refused(c, "wrong_secret"),
        Rejection::WrongSecret { attempts: 1 }
    );
    // 2. The refusal is in the block, beside the transaction, for regulators.
    let block = w.blocks.last().unwrap();
    assert!(matches!(
        &block.outcomes[0],
        Outcome::Refused {
            reason: Rejection::WrongSecret { .. }
        }
    ));
    // 3. A second one, by another pharmacy, counts on.
    let c = w.claim_with_secret(&staff("ph-b"), PHARM_B, rx.id, &wrong);
    assert_eq!(
        w.refused(c, "wrong_secret"),
        Rejection::WrongSecret { attempts: 2 }
    );
    let rec = w.rx(&rx.id);
    assert_eq!((rec.wrong_proofs, rec.refused_attempts), (2, 2));
    assert_eq!(rec.status, RxStatus::Issued);
    assert_eq!(rec.claim, None, "a wrong secret takes no lock");
    // 4. The right secret still works, and later wrong attempts keep counting.
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    w.applied(c);
    let c = w.claim_with_secret(&staff("ph-c"), PHARM_C, rx.id, &wrong);
    assert_eq!(
        w.refused(c, "wrong_secret"),
        Rejection::WrongSecret { attempts: 3 }
    );
    assert_eq!(w.rx(&rx.id).wrong_proofs, 3);
}

#[test]
fn a_claim_proof_is_bound_to_its_prescription_pharmacy_and_chain() {
    let (mut w, rx) = with_rx("proof-binding", RxSpec::simple(10));
    let other = w.issued(RxSpec::simple(10));
    let nonce = [9u8; 16];
    // 1. A proof made for another prescription.
    let proof = claim_proof(CHAIN_ID, &other.id, PHARM_A, &nonce, &other.secret);
    let c = w.claim_with_proof(&staff("ph-a"), PHARM_A, rx.id, nonce, proof);
    w.refused(c, "wrong_secret");
    // 2. A proof made for pharm-a, presented by pharm-b.
    let proof = claim_proof(CHAIN_ID, &rx.id, PHARM_A, &nonce, &rx.secret);
    let c = w.claim_with_proof(&staff("ph-b"), PHARM_B, rx.id, nonce, proof);
    w.refused(c, "wrong_secret");
    // 3. A proof made for another consortium.
    let proof = claim_proof("rxchain-other", &rx.id, PHARM_A, &nonce, &rx.secret);
    let c = w.claim_with_proof(&staff("ph-a"), PHARM_A, rx.id, nonce, proof);
    w.refused(c, "wrong_secret");
    // 4. The right message signed under another domain tag.
    let msg = rxchain_contracts::tx::claim_proof_message(CHAIN_ID, &rx.id, &org(PHARM_A), &nonce);
    let proof = rx.patient.sign("tx/rxchain-test/claim", &msg);
    let c = w.claim_with_proof(&staff("ph-a"), PHARM_A, rx.id, nonce, proof);
    w.refused(c, "wrong_secret");
    assert_eq!(w.rx(&rx.id).wrong_proofs, 4);
    // 5. The real thing.
    let proof = rx.patient.sign(CLAIM_PROOF_TAG, &msg);
    let c = w.claim_with_proof(&staff("ph-a"), PHARM_A, rx.id, nonce, proof);
    w.applied(c);
}

#[test]
fn a_claim_proof_cannot_be_used_twice() {
    let (mut w, rx) = with_rx("proof-reuse", RxSpec::simple(10));
    let nonce = [3u8; 16];
    let proof = claim_proof(CHAIN_ID, &rx.id, PHARM_A, &nonce, &rx.secret);
    // 1. Claim and release with one proof.
    let c = w.claim_with_proof(&staff("ph-a"), PHARM_A, rx.id, nonce, proof);
    w.applied(c);
    let r = w.release(&staff("ph-a"), rx.id);
    w.applied(r);
    // 2. The same proof, even in a new transaction by a colleague, is spent.
    let c = w.claim_with_proof(&staff("ph-a-2"), PHARM_A, rx.id, nonce, proof);
    w.refused(c, "proof_reused");
    assert_eq!(w.rx(&rx.id).status, RxStatus::Issued);
    // 3. A fresh proof from the QR code works.
    let c = w.claim(&staff("ph-a-2"), PHARM_A, &rx);
    w.applied(c);
}

#[test]
fn a_second_claim_names_the_pharmacy_holding_the_lock() {
    let (mut w, rx) = claimed_by_a("claimed-by-other", RxSpec::simple(10));
    let claimed_at = w.tip.timestamp;
    w.advance_ms(HOUR_MS);
    // 1. Another pharmacy is told who holds the lock and since when.
    let c = w.claim(&staff("ph-b"), PHARM_B, &rx);
    let r = w.refused(c, "claimed_by_other");
    assert_eq!(
        r,
        Rejection::ClaimedByOther {
            pharmacy: org(PHARM_A),
            at: claimed_at
        }
    );
    assert!(
        r.to_string().contains(PHARM_A),
        "the reason names the pharmacy: {r}"
    );
    // 2. The same pharmacy is told it already holds it.
    let c = w.claim(&staff("ph-a-2"), PHARM_A, &rx);
    w.refused(c, "already_claimed");
    // 3. The other pharmacy can neither dispense nor release it.
    let d = w.dispense(&staff("ph-b"), rx.id, &[(0, 1)], false);
    w.refused(d, "claimed_by_other");
    let rel = w.release(&staff("ph-b"), rx.id);
    w.refused(rel, "claimed_by_other");
    let rec = w.rx(&rx.id);
    assert_eq!(rec.claim.unwrap().pharmacy, org(PHARM_A));
    assert_eq!(rec.dispensed, vec![0]);
    assert_eq!(
        rec.refused_attempts, 4,
        "every refusal about the prescription is counted"
    );
}

#[test]
fn a_claim_after_completion_names_where_and_when_it_was_dispensed() {
    let (mut w, rx) = claimed_by_a("claim-after-complete", RxSpec::simple(10));
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 10)], false);
    w.applied(d);
    let dispensed_at = w.tip.timestamp;
    w.advance_days(1);
    for (pharmacist, pharmacy) in [("ph-b", PHARM_B), ("ph-a", PHARM_A)] {
        let c = w.claim(&staff(pharmacist), pharmacy, &rx);
        let r = w.refused(c, "already_dispensed");
        assert_eq!(
            r,
            Rejection::AlreadyDispensed {
                pharmacy: org(PHARM_A),
                at: dispensed_at
            }
        );
        assert!(
            r.to_string().contains(PHARM_A),
            "the reason names where: {r}"
        );
    }
}

#[test]
fn a_claim_for_another_pharmacy_than_the_assigned_one_is_refused() {
    let (mut w, rx) = with_rx("assigned-elsewhere", RxSpec::simple(10));
    let a = w.assign_pickup(&rx, PHARM_B);
    w.applied(a);
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    assert_eq!(
        w.refused(c, "assigned_elsewhere"),
        Rejection::AssignedElsewhere {
            pharmacy: org(PHARM_B)
        }
    );
    let c = w.claim(&staff("ph-b"), PHARM_B, &rx);
    w.applied(c);
}

/// The release rule (E-Rezept's "reject"): a pharmacy that returns a
/// prescription returns the patient's choice with it. The prescription is
/// back with the patient, who chooses again; a pharmacy the patient did not
/// choose then cannot claim it, even the one that released it and saw the code.
#[test]
fn a_released_prescription_goes_back_to_the_patient_to_choose_again() {
    let (mut w, rx) = with_rx("release-to-patient", RxSpec::simple(10));
    // 1. Chosen, claimed and released by pharm-a.
    let a = w.assign_pickup(&rx, PHARM_A);
    w.applied(a);
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    w.applied(c);
    let r = w.release(&staff("ph-a"), rx.id);
    w.applied(r);
    let rec = w.rx(&rx.id);
    assert_eq!(rec.status, RxStatus::Issued);
    assert_eq!(
        rec.fulfilment, None,
        "the patient's choice goes back with it"
    );
    assert_eq!(rec.claim, None);
    assert_eq!(rec.public_status(w.now), PublicStatus::Issued);
    // 2. The patient chooses pharm-b: pharm-a, which still knows the
    //    code, can no longer claim it; pharm-b can.
    let a = w.assign_pickup(&rx, PHARM_B);
    w.applied(a);
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    assert_eq!(
        w.refused(c, "assigned_elsewhere"),
        Rejection::AssignedElsewhere {
            pharmacy: org(PHARM_B)
        }
    );
    let c = w.claim(&staff("ph-b"), PHARM_B, &rx);
    w.applied(c);
    // 3. Once claimed, the patient's choice is fixed until a release.
    let a = w.assign_pickup(&rx, PHARM_A);
    w.refused(a, "claimed_cannot_change");
}

#[test]
fn a_pharmacist_claims_only_for_their_own_pharmacy() {
    let (mut w, rx) = with_rx("own-pharmacy", RxSpec::simple(10));
    let c = w.claim(&staff("ph-b"), PHARM_A, &rx);
    let r = w.refused(c, "wrong_org_kind");
    assert!(
        matches!(&r, Rejection::WrongOrgKind { org, .. } if org == &common::org(PHARM_A)),
        "{r:?}"
    );
    assert_eq!(w.rx(&rx.id).claim, None);
}

#[test]
fn only_pharmacists_claim_release_and_dispense() {
    let (mut w, rx) = with_rx("only-pharmacists", RxSpec::simple(10));
    for name in ["courier-a", "dr-north", "officer"] {
        let c = w.claim(&staff(name), PHARM_A, &rx);
        w.refused(c, "wrong_role");
    }
    let c = w.claim(&admin_key(PHARM_A), PHARM_A, &rx);
    w.refused(c, "wrong_role");
    let c = w.claim(&rx.patient.clone(), PHARM_A, &rx);
    w.refused(c, "unknown_signer");
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    w.applied(c);
    let d = w.dispense(&staff("courier-a"), rx.id, &[(0, 1)], false);
    w.refused(d, "wrong_role");
    let r = w.release(&staff("courier-a"), rx.id);
    w.refused(r, "wrong_role");
}

#[test]
fn nothing_is_claimed_before_or_after_the_validity_window() {
    let mut w = World::staffed_with_seed("claim-window");
    let mut spec = RxSpec::simple(10);
    spec.valid_from = Some(w.now.plus_days(1));
    let rx = w.issued(spec);
    let rec = w.rx(&rx.id);
    // 1. Before it starts.
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    assert_eq!(
        w.refused(c, "not_yet_valid"),
        Rejection::NotYetValid {
            from: rec.valid_from
        }
    );
    // 2. At the very end (the end is exclusive).
    w.now = rec.valid_until;
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    assert_eq!(
        w.refused(c, "expired"),
        Rejection::Expired {
            at: rec.valid_until
        }
    );
    assert_eq!(w.rx(&rx.id).public_status(w.now), PublicStatus::Expired);
    // 3. One millisecond before the end is still inside (on a fresh prescription).
    let mut w = World::staffed_with_seed("claim-window-2");
    let rx = w.issued(RxSpec::simple(10));
    w.now = Timestamp(w.rx(&rx.id).valid_until.0 - 1);
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    w.applied(c);
}

#[test]
fn a_cancelled_or_unknown_prescription_cannot_be_claimed() {
    let (mut w, rx) = with_rx("claim-cancelled", RxSpec::simple(10));
    let c = w.cancel(&staff("dr-north"), rx.id);
    w.applied(c);
    let cancelled_at = w.tip.timestamp;
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    assert_eq!(
        w.refused(c, "cancelled"),
        Rejection::Cancelled { at: cancelled_at }
    );

    let mut ghost = w.issue_body(HOSP_NORTH, RxSpec::simple(1));
    ghost.id = rxchain_contracts::PrescriptionId::from_bytes([0xee; 16]);
    let c = w.claim(&staff("ph-a"), PHARM_A, &ghost);
    w.refused(c, "unknown_prescription");
}

#[test]
fn every_kind_of_transaction_about_an_unknown_prescription_is_refused() {
    let mut w = World::staffed_with_seed("unknown-rx");
    let ghost = w.issue_body(HOSP_NORTH, RxSpec::simple(1));
    let txs = vec![
        w.assign_pickup(&ghost, PHARM_A),
        w.claim(&staff("ph-a"), PHARM_A, &ghost),
        w.release(&staff("ph-a"), ghost.id),
        w.dispense(&staff("ph-a"), ghost.id, &[(0, 1)], false),
        w.cancel(&ghost.patient, ghost.id),
        w.delivery(&staff("ph-a"), ghost.id, DeliveryStatus::Packed),
    ];
    for (o, kind) in w.run(txs).iter().zip([
        "assign", "claim", "release", "dispense", "cancel", "delivery",
    ]) {
        expect_refused(o, "unknown_prescription", kind);
    }
    assert!(
        w.try_rx(&ghost.id).is_none(),
        "refusals about nothing create nothing"
    );
}

#[test]
fn the_scan_verdict_agrees_with_the_claim_rule() {
    // `claimable_by` is what a pharmacist's scan shows; it must predict the
    // outcome of a claim with a valid proof in every state.
    let mut w = World::staffed_with_seed("verdict");
    let open = w.issued(RxSpec::simple(10));
    let assigned = w.issued(RxSpec::simple(10));
    let a = w.assign_pickup(&assigned, PHARM_B);
    w.applied(a);
    let taken = w.issued(RxSpec::simple(10));
    let c = w.claim(&staff("ph-b"), PHARM_B, &taken);
    w.applied(c);
    let done = w.issued(RxSpec::simple(10));
    let c = w.claim(&staff("ph-b"), PHARM_B, &done);
    w.applied(c);
    let d = w.dispense(&staff("ph-b"), done.id, &[], true);
    w.applied(d);
    let gone = w.issued(RxSpec::simple(10));
    let c = w.cancel(&gone.patient, gone.id);
    w.applied(c);
    let mut spec = RxSpec::simple(10);
    spec.valid_from = Some(w.now.plus_days(3));
    let later = w.issued(spec);
    for rx in [&open, &assigned, &taken, &done, &gone, &later] {
        let verdict = lifecycle::claimable_by(&w.rx(&rx.id), &org(PHARM_A), w.now);
        let c = w.claim(&staff("ph-a"), PHARM_A, rx);
        let outcome = w.run1(c);
        match (verdict, outcome) {
            (Ok(()), Outcome::Applied) => {}
            (Err(v), Outcome::Refused { reason }) => assert_eq!(v, reason),
            (v, o) => panic!("the scan said {v:?} but the claim gave {o:?}"),
        }
    }
}

// ---- release -------------------------------------------------------------

#[test]
fn a_released_prescription_is_available_again() {
    let (mut w, rx) = with_rx("release", RxSpec::simple(10));
    // 1. The patient picked pharm-a, which claims and then returns it.
    let a = w.assign_pickup(&rx, PHARM_A);
    w.applied(a);
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    w.applied(c);
    let r = w.release(&staff("ph-a-2"), rx.id);
    w.applied(r);
    let rec = w.rx(&rx.id);
    assert_eq!(rec.status, RxStatus::Issued);
    assert_eq!(rec.claim, None);
    assert_eq!(
        rec.fulfilment, None,
        "the returned assignment no longer binds the patient"
    );
    assert_eq!(rec.public_status(w.now), PublicStatus::Issued);
    // 2. Another pharmacy may now claim it.
    let c = w.claim(&staff("ph-c"), PHARM_C, &rx);
    w.applied(c);
    assert_eq!(w.rx(&rx.id).claim.unwrap().pharmacy, org(PHARM_C));
}

#[test]
fn only_the_lock_holder_releases() {
    let (mut w, rx) = with_rx("release-who", RxSpec::simple(10));
    let r = w.release(&staff("ph-a"), rx.id);
    w.refused(r, "not_claimed");
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    w.applied(c);
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 10)], false);
    w.applied(d);
    let r = w.release(&staff("ph-a"), rx.id);
    w.refused(r, "already_dispensed");
    assert_eq!(w.rx(&rx.id).status, RxStatus::Completed);
}

#[test]
fn a_partial_fill_survives_release_and_the_allowance_spans_pharmacies() {
    let (mut w, rx) = claimed_by_a("release-partial", RxSpec::simple(10).repeats(1));
    // 1. pharm-a hands out 15 of 20 and returns the prescription.
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 15)], false);
    w.applied(d);
    let r = w.release(&staff("ph-a"), rx.id);
    w.applied(r);
    assert_eq!(
        w.rx(&rx.id).public_status(w.now),
        PublicStatus::PartiallyDispensed
    );
    // 2. pharm-b takes over and may hand out only the 5 that remain.
    let c = w.claim(&staff("ph-b"), PHARM_B, &rx);
    w.applied(c);
    let d = w.dispense(&staff("ph-b"), rx.id, &[(0, 6)], false);
    assert_eq!(
        w.refused(d, "exceeds_allowance"),
        Rejection::ExceedsAllowance {
            item: 0,
            remaining: 5
        }
    );
    let d = w.dispense(&staff("ph-b"), rx.id, &[(0, 5)], false);
    w.applied(d);
    let rec = w.rx(&rx.id);
    assert_eq!(rec.status, RxStatus::Completed);
    assert_eq!(rec.dispensed, vec![20]);
    let places: Vec<&OrgId> = rec.fills.iter().map(|f| &f.pharmacy).collect();
    assert_eq!(places, vec![&org(PHARM_A), &org(PHARM_B)]);
}

#[test]
fn a_released_prescription_starts_a_fresh_pickup_or_delivery_trail() {
    use DeliveryStatus::*;
    // 1. Pickup: pharm-a marks it ready, the patient never comes, pharm-a
    //    returns it; pharm-b, chosen next, must be able to mark it ready.
    let (mut w, rx) = with_rx("release-trail", RxSpec::simple(10).repeats(1));
    let a = w.assign_pickup(&rx, PHARM_A);
    w.applied(a);
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    w.applied(c);
    let e = w.delivery(&staff("ph-a"), rx.id, ReadyForPickup);
    w.applied(e);
    let r = w.release(&staff("ph-a"), rx.id);
    w.applied(r);
    assert!(
        w.rx(&rx.id).delivery.is_empty(),
        "the trail belonged to the returned fulfilment"
    );
    let a = w.assign_pickup(&rx, PHARM_B);
    w.applied(a);
    let c = w.claim(&staff("ph-b"), PHARM_B, &rx);
    w.applied(c);
    let e = w.delivery(&staff("ph-b"), rx.id, ReadyForPickup);
    w.applied(e);

    // 2. Delivery: pharm-a packs part of it and returns it; pharm-b may not
    //    dispatch a parcel it never packed, and packs its own.
    let (mut w, rx) = with_rx("release-trail-2", RxSpec::simple(10).repeats(1));
    let a = w.assign_delivery(&rx, PHARM_A, "8 Synthetic Mews");
    w.applied(a);
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    w.applied(c);
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 5)], false);
    w.applied(d);
    let e = w.delivery(&staff("ph-a"), rx.id, Packed);
    w.applied(e);
    let r = w.release(&staff("ph-a"), rx.id);
    w.applied(r);
    let a = w.assign_delivery(&rx, PHARM_B, "8 Synthetic Mews");
    w.applied(a);
    let c = w.claim(&staff("ph-b"), PHARM_B, &rx);
    w.applied(c);
    let e = w.delivery(&staff("ph-b"), rx.id, Dispatched);
    assert_eq!(
        w.refused(e, "delivery_out_of_order"),
        Rejection::DeliveryOutOfOrder {
            last: None,
            attempted: Dispatched
        }
    );
    let d = w.dispense(&staff("ph-b"), rx.id, &[(0, 5)], false);
    w.applied(d);
    let e = w.delivery(&staff("ph-b"), rx.id, Packed);
    w.applied(e);
    // 3. The blocks still hold pharm-a's events for the audit.
    let packed_by_a = w
        .blocks
        .iter()
        .flat_map(|b| b.txs.iter().zip(&b.outcomes))
        .filter(|(t, o)| {
            o.is_applied()
                && t.tx.signer == staff("ph-a").public()
                && matches!(t.tx.body, TxBody::Delivery(_))
        });
    assert_eq!(packed_by_a.count(), 1);
}

// ---- dispense ------------------------------------------------------------

#[test]
fn partial_fills_add_up_to_the_allowance_and_never_past_it() {
    let (mut w, rx) = claimed_by_a("partial", RxSpec::simple(10).repeats(1));
    assert_eq!(w.rx(&rx.id).allowance(0), 20);
    // 1. Two partial fills.
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 4)], false);
    w.applied(d);
    assert_eq!(
        w.rx(&rx.id).public_status(w.now),
        PublicStatus::PartiallyDispensed
    );
    let d = w.dispense(&staff("ph-a-2"), rx.id, &[(0, 6)], false);
    w.applied(d);
    assert_eq!(w.rx(&rx.id).dispensed, vec![10]);
    // 2. Over the remaining 10, in one line or across two lines of one fill.
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 11)], false);
    assert_eq!(
        w.refused(d, "exceeds_allowance"),
        Rejection::ExceedsAllowance {
            item: 0,
            remaining: 10
        }
    );
    // The reason states what remains on the prescription, not what would
    // remain after the first line of the refused fill.
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 5), (0, 6)], false);
    assert_eq!(
        w.refused(d, "exceeds_allowance"),
        Rejection::ExceedsAllowance {
            item: 0,
            remaining: 10
        }
    );
    let rec = w.rx(&rx.id);
    assert_eq!(rec.dispensed, vec![10], "a refused fill changes nothing");
    assert_eq!(rec.fills.len(), 2);
    assert_eq!(rec.status, RxStatus::Claimed);
    // 3. Exactly the rest completes it.
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 10)], false);
    w.applied(d);
    let rec = w.rx(&rx.id);
    assert_eq!(rec.status, RxStatus::Completed);
    assert_eq!(rec.completed_at, Some(w.tip.timestamp));
    assert_eq!(rec.fills.iter().map(|f| f.lines[0].1).sum::<u32>(), 20);
    assert_eq!(
        rec.public_status(w.now.plus_days(1000)),
        PublicStatus::Completed,
        "completion outlives expiry"
    );
    // 4. Nothing more, ever.
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 1)], false);
    w.refused(d, "already_dispensed");
}

#[test]
fn each_item_has_its_own_allowance_and_completion_needs_all_of_them() {
    let mut spec = RxSpec::simple(10);
    spec.items.push(amoxicillin(5));
    let (mut w, rx) = claimed_by_a("multi-item", spec);
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 10)], false);
    w.applied(d);
    assert_eq!(
        w.rx(&rx.id).status,
        RxStatus::Claimed,
        "item 1 is still open"
    );
    let d = w.dispense(&staff("ph-a"), rx.id, &[(1, 6)], false);
    assert_eq!(
        w.refused(d, "exceeds_allowance"),
        Rejection::ExceedsAllowance {
            item: 1,
            remaining: 5
        }
    );
    let d = w.dispense(&staff("ph-a"), rx.id, &[(2, 1)], false);
    assert_eq!(w.refused(d, "bad_item"), Rejection::BadItem { item: 2 });
    let d = w.dispense(&staff("ph-a"), rx.id, &[(1, 5)], false);
    w.applied(d);
    assert_eq!(w.rx(&rx.id).status, RxStatus::Completed);
    assert_eq!(w.rx(&rx.id).dispensed, vec![10, 5]);
}

#[test]
fn the_allowance_holds_at_the_largest_quantity_and_repeat_count() {
    // 1,000,000 units times 13 fills is the largest allowance; it must neither
    // overflow nor be exceeded.
    let mut spec = RxSpec::simple(1_000_000);
    spec.repeats = rxchain_contracts::tx::limits::MAX_REPEATS;
    let (mut w, rx) = claimed_by_a("max-allowance", spec);
    assert_eq!(w.rx(&rx.id).allowance(0), 13_000_000);
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 1_000_000); 10], false);
    w.applied(d);
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 1_000_000); 4], false);
    assert_eq!(
        w.refused(d, "exceeds_allowance"),
        Rejection::ExceedsAllowance {
            item: 0,
            remaining: 3_000_000
        }
    );
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 1_000_000); 3], false);
    w.applied(d);
    assert_eq!(w.rx(&rx.id).dispensed, vec![13_000_000]);
    assert_eq!(w.rx(&rx.id).status, RxStatus::Completed);
}

#[test]
fn the_complete_flag_closes_a_prescription_before_its_allowance_is_used() {
    let (mut w, rx) = claimed_by_a("complete-flag", RxSpec::simple(10).repeats(3));
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 10)], true);
    w.applied(d);
    let rec = w.rx(&rx.id);
    assert_eq!(rec.status, RxStatus::Completed);
    assert_eq!(rec.dispensed, vec![10]);
    let c = w.claim(&staff("ph-b"), PHARM_B, &rx);
    w.refused(c, "already_dispensed");
}

#[test]
fn a_completion_without_any_fill_still_names_where_it_was_closed() {
    let (mut w, rx) = claimed_by_a("complete-empty", RxSpec::simple(10));
    let d = w.dispense(&staff("ph-a"), rx.id, &[], true);
    w.applied(d);
    let closed_at = w.tip.timestamp;
    assert!(w.rx(&rx.id).fills.is_empty());
    w.advance_ms(HOUR_MS);
    let c = w.claim(&staff("ph-b"), PHARM_B, &rx);
    assert_eq!(
        w.refused(c, "already_dispensed"),
        Rejection::AlreadyDispensed {
            pharmacy: org(PHARM_A),
            at: closed_at
        }
    );
}

#[test]
fn dispensing_needs_the_lock_and_the_validity_window() {
    let (mut w, rx) = with_rx("dispense-lock", RxSpec::simple(10));
    // 1. Without a claim.
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 1)], false);
    w.refused(d, "not_claimed");
    // 2. Claimed, but the window closed before the pharmacist dispensed.
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    w.applied(c);
    w.now = w.rx(&rx.id).valid_until;
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 1)], false);
    assert_eq!(
        w.refused(d, "expired"),
        Rejection::Expired {
            at: w.rx(&rx.id).valid_until
        }
    );
    assert_eq!(w.rx(&rx.id).dispensed, vec![0]);
    // 3. The pharmacy can still return it.
    let r = w.release(&staff("ph-a"), rx.id);
    w.applied(r);
}

// ---- cancel --------------------------------------------------------------

#[test]
fn the_prescriber_or_the_patient_cancels_an_unclaimed_prescription() {
    let mut w = World::staffed_with_seed("cancel-ok");
    // 1. The prescriber.
    let rx = w.issued(RxSpec::simple(10));
    let c = w.cancel(&staff("dr-north"), rx.id);
    w.applied(c);
    let rec = w.rx(&rx.id);
    assert_eq!(rec.status, RxStatus::Cancelled);
    assert_eq!(rec.public_status(w.now), PublicStatus::Cancelled);
    assert_eq!(
        rec.cancelled.as_ref().map(|c| c.2),
        Some(staff("dr-north").public())
    );
    // 2. The patient, after assigning it.
    let rx = w.issued(RxSpec::simple(10));
    let a = w.assign_pickup(&rx, PHARM_A);
    w.applied(a);
    let c = w.cancel(&rx.patient, rx.id);
    w.applied(c);
    assert_eq!(w.rx(&rx.id).status, RxStatus::Cancelled);
    // 3. Not twice.
    let c = w.cancel(&rx.patient, rx.id);
    w.refused(c, "cancelled");
}

#[test]
fn nobody_else_cancels() {
    let (mut w, rx) = with_rx("cancel-who", RxSpec::simple(10));
    for signer in [
        staff("dr-north-2"),
        staff("dr-south"),
        staff("ph-a"),
        staff("officer"),
        admin_key(HOSP_NORTH),
        test_key("stranger"),
    ] {
        let c = w.cancel(&signer, rx.id);
        w.refused(c, "not_prescriber_or_patient");
    }
    assert_eq!(w.rx(&rx.id).status, RxStatus::Issued);
}

#[test]
fn a_claimed_prescription_cannot_be_cancelled_by_anyone() {
    let (mut w, rx) = claimed_by_a("cancel-claimed", RxSpec::simple(10));
    let c = w.cancel(&staff("dr-north"), rx.id);
    w.refused(c, "claimed_cannot_change");
    let c = w.cancel(&rx.patient, rx.id);
    w.refused(c, "claimed_cannot_change");
    assert_eq!(w.rx(&rx.id).status, RxStatus::Claimed);
}

#[test]
fn nothing_is_cancelled_after_dispensing() {
    // 1. Completed: the refusal names where and when.
    let (mut w, rx) = claimed_by_a("cancel-dispensed", RxSpec::simple(10).repeats(1));
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 20)], false);
    w.applied(d);
    let c = w.cancel(&staff("dr-north"), rx.id);
    w.refused(c, "already_dispensed");
    // 2. Partly dispensed and released: unclaimed again, but still not cancellable.
    let (mut w, rx) = claimed_by_a("cancel-partial", RxSpec::simple(10).repeats(1));
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 3)], false);
    w.applied(d);
    let r = w.release(&staff("ph-a"), rx.id);
    w.applied(r);
    let c = w.cancel(&rx.patient, rx.id);
    w.refused(c, "dispensed_cannot_cancel");
    let c = w.cancel(&staff("dr-north"), rx.id);
    w.refused(c, "dispensed_cannot_cancel");
    assert_eq!(w.rx(&rx.id).status, RxStatus::Issued);
}

// ---- delivery ------------------------------------------------------------

/// A delivery prescription for pharm-a, claimed and fully dispensed.
fn dispensed_for_delivery(seed: &str) -> (World, Rx) {
    dispensed_for_delivery_of(seed, RxSpec::simple(10))
}

/// The same for a prescription of `spec` (10 units of its first item).
fn dispensed_for_delivery_of(seed: &str, spec: RxSpec) -> (World, Rx) {
    let (mut w, rx) = with_rx(seed, spec);
    let a = w.assign_delivery(&rx, PHARM_A, "7 Synthetic Road, Testtown");
    w.applied(a);
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    w.applied(c);
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 10)], false);
    w.applied(d);
    let h = w.hand_to_carrier(&staff("ph-a"), rx.id, LOGISTICS);
    w.applied(h);
    (w, rx)
}

#[test]
fn delivery_goes_packed_dispatched_out_for_delivery_delivered() {
    use DeliveryStatus::*;
    let (mut w, rx) = dispensed_for_delivery("delivery-happy");
    // 1. Only the claiming pharmacy packs; a logistics courier may not.
    let e = w.delivery(&staff("courier-log"), rx.id, Packed);
    w.refused(e, "claimed_by_other");
    let e = w.delivery(&staff("ph-a"), rx.id, Packed);
    w.applied(e);
    // 2. The logistics courier and the pharmacy's own courier carry it on.
    let e = w.delivery(&staff("courier-log"), rx.id, Dispatched);
    w.applied(e);
    let e = w.delivery(&staff("courier-a"), rx.id, OutForDelivery);
    w.applied(e);
    // 3. Another pharmacy's staff cannot record its progress.
    for name in ["ph-b", "courier-b"] {
        let e = w.delivery(&staff(name), rx.id, Delivered);
        w.refused(e, "claimed_by_other");
    }
    let e = w.delivery(&staff("courier-log"), rx.id, Delivered);
    w.applied(e);
    let rec = w.rx(&rx.id);
    let trail: Vec<DeliveryStatus> = rec.delivery.iter().map(|d| d.status).collect();
    assert_eq!(trail, vec![Packed, Dispatched, OutForDelivery, Delivered]);
    assert_eq!(rec.delivery[1].by, staff("courier-log").public());
    // 4. Delivered is final.
    for s in [
        Packed,
        Dispatched,
        OutForDelivery,
        Delivered,
        Failed,
        Returned,
    ] {
        let e = w.delivery(&staff("ph-a"), rx.id, s);
        let r = w.refused(e, "delivery_out_of_order");
        assert_eq!(
            r,
            Rejection::DeliveryOutOfOrder {
                last: Some(Delivered),
                attempted: s
            }
        );
    }
}

#[test]
fn a_failure_names_its_reason_and_a_delivery_its_hand_over() {
    use rxchain_contracts::tx::{DeliveryEvent, DeliveryProblem, HandOver};
    use DeliveryStatus::*;
    let (mut w, rx) = dispensed_for_delivery("delivery-detail");
    let event = |status, problem, hand_over| DeliveryEvent {
        id: rx.id,
        status,
        problem,
        hand_over,
    };
    // 1. The form is checked with the transaction, before any state: a
    //    failure or return without a reason, a delivery without its
    //    hand-over, and a detail on a step that takes none.
    for (e, says) in [
        (event(Failed, None, None), "say why the delivery failed"),
        (
            event(Returned, None, None),
            "say why the delivery was returned",
        ),
        (
            event(Delivered, None, None),
            "say how the parcel was handed over",
        ),
        (
            event(Packed, Some(DeliveryProblem::Damaged), None),
            "a 'packed' event takes no reason or hand-over",
        ),
        (
            event(
                Failed,
                Some(DeliveryProblem::NoOneHome),
                Some(HandOver::SafePlace),
            ),
            "a 'failed' event takes no reason or hand-over",
        ),
    ] {
        let tx = w.delivery_with(&staff("ph-a"), e);
        match tx.verify(CHAIN_ID) {
            Err(TxError::Invalid(m)) => assert_eq!(m, says),
            other => panic!("expected {says:?}, got {other:?}"),
        }
    }
    // 2. A failure and a return keep their reasons on the chain.
    for s in [Packed, Dispatched] {
        let e = w.delivery(&staff("ph-a"), rx.id, s);
        w.applied(e);
    }
    let e = w.delivery_with(
        &staff("courier-log"),
        event(Failed, Some(DeliveryProblem::AddressNotFound), None),
    );
    w.applied(e);
    let e = w.delivery_with(
        &staff("courier-log"),
        event(Returned, Some(DeliveryProblem::Refused), None),
    );
    w.applied(e);
    let rec = w.rx(&rx.id);
    assert_eq!(
        rec.delivery[2].problem,
        Some(DeliveryProblem::AddressNotFound)
    );
    assert_eq!(rec.delivery[3].problem, Some(DeliveryProblem::Refused));
    assert_eq!(rec.delivery[3].hand_over, None);

    // 3. An ordinary medicine may be left with a neighbour; the hand-over
    //    is the proof of delivery on the chain.
    let (mut w, rx) = dispensed_for_delivery("delivery-neighbour");
    for s in [Packed, Dispatched, OutForDelivery] {
        let e = w.delivery(&staff("ph-a"), rx.id, s);
        w.applied(e);
    }
    let e = w.delivery_with(
        &staff("courier-log"),
        DeliveryEvent {
            id: rx.id,
            status: Delivered,
            problem: None,
            hand_over: Some(HandOver::ToNeighbour),
        },
    );
    w.applied(e);
    assert_eq!(
        w.rx(&rx.id).delivery[3].hand_over,
        Some(HandOver::ToNeighbour)
    );
}

#[test]
fn a_controlled_medicine_is_handed_over_in_person_only() {
    use rxchain_contracts::tx::{DeliveryEvent, HandOver};
    use DeliveryStatus::*;
    let (mut w, rx) = dispensed_for_delivery_of("delivery-controlled", RxSpec::controlled(10));
    for s in [Packed, Dispatched, OutForDelivery] {
        let e = w.delivery(&staff("ph-a"), rx.id, s);
        w.applied(e);
    }
    let delivered = |h| DeliveryEvent {
        id: rx.id,
        status: Delivered,
        problem: None,
        hand_over: Some(h),
    };
    for h in [
        HandOver::ToNeighbour,
        HandOver::SafePlace,
        HandOver::ParcelLocker,
    ] {
        let e = w.delivery_with(&staff("ph-a"), delivered(h));
        assert_eq!(
            w.refused(e, "hand_over_in_person"),
            Rejection::HandOverInPerson { hand_over: h }
        );
    }
    assert_eq!(w.rx(&rx.id).delivery.len(), 3, "nothing was recorded");
    let e = w.delivery_with(&staff("ph-a"), delivered(HandOver::ToHousehold));
    w.applied(e);
    assert_eq!(w.rx(&rx.id).delivery[3].status, Delivered);
}

#[test]
fn a_failed_delivery_may_only_be_returned() {
    use DeliveryStatus::*;
    // Failure is possible after dispatch and on the last leg.
    for before_failure in [
        vec![Packed, Dispatched],
        vec![Packed, Dispatched, OutForDelivery],
    ] {
        let (mut w, rx) = dispensed_for_delivery("delivery-failed");
        for s in before_failure.iter().copied().chain([Failed]) {
            let e = w.delivery(&staff("ph-a"), rx.id, s);
            w.applied(e);
        }
        for s in [Delivered, OutForDelivery, Dispatched, Failed] {
            let e = w.delivery(&staff("courier-log"), rx.id, s);
            w.refused(e, "delivery_out_of_order");
        }
        let e = w.delivery(&staff("courier-log"), rx.id, Returned);
        w.applied(e);
        let e = w.delivery(&staff("ph-a"), rx.id, Returned);
        w.refused(e, "delivery_out_of_order");
    }
}

#[test]
fn out_of_order_and_duplicate_delivery_events_are_refused() {
    use DeliveryStatus::*;
    let (mut w, rx) = with_rx("delivery-order", RxSpec::simple(10));
    let a = w.assign_delivery(&rx, PHARM_A, "7 Synthetic Road, Testtown");
    w.applied(a);
    // 1. Before any claim there is nothing to deliver.
    let e = w.delivery(&staff("ph-a"), rx.id, Packed);
    w.refused(e, "not_claimed");
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    w.applied(c);
    // 2. Nothing is packed before something is dispensed.
    let e = w.delivery(&staff("ph-a"), rx.id, Packed);
    assert_eq!(
        w.refused(e, "delivery_out_of_order"),
        Rejection::DeliveryOutOfOrder {
            last: None,
            attempted: Packed
        }
    );
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 4)], false);
    w.applied(d);
    // 3. Skipping steps, failing before dispatch, returning without failure.
    for s in [Dispatched, OutForDelivery, Delivered, Failed, Returned] {
        let e = w.delivery(&staff("ph-a"), rx.id, s);
        w.refused(e, "delivery_out_of_order");
    }
    let e = w.delivery(&staff("ph-a"), rx.id, Packed);
    w.applied(e);
    // 4. A duplicate event (a new transaction, not a replay).
    let e = w.delivery(&staff("ph-a-2"), rx.id, Packed);
    assert_eq!(
        w.refused(e, "delivery_out_of_order"),
        Rejection::DeliveryOutOfOrder {
            last: Some(Packed),
            attempted: Packed
        }
    );
    for s in [Delivered, OutForDelivery, Returned] {
        let e = w.delivery(&staff("ph-a"), rx.id, s);
        w.refused(e, "delivery_out_of_order");
    }
    assert_eq!(w.rx(&rx.id).delivery.len(), 1);
}

#[test]
fn ready_for_pickup_only_in_pickup_mode_once_by_a_pharmacist() {
    use DeliveryStatus::*;
    // 1. A delivery prescription is never ready for pickup.
    let (mut w, rx) = dispensed_for_delivery("pickup-mode");
    let e = w.delivery(&staff("ph-a"), rx.id, ReadyForPickup);
    let r = w.refused(e, "wrong_fulfilment_mode");
    assert_eq!(
        r,
        Rejection::WrongFulfilmentMode {
            attempted: ReadyForPickup,
            mode: "delivery".into()
        }
    );

    // 2. A pickup prescription gets no delivery steps.
    let (mut w, rx) = with_rx("pickup-mode-2", RxSpec::simple(10));
    let a = w.assign_pickup(&rx, PHARM_A);
    w.applied(a);
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    w.applied(c);
    let e = w.delivery(&staff("ph-a"), rx.id, Packed);
    let r = w.refused(e, "wrong_fulfilment_mode");
    assert_eq!(
        r,
        Rejection::WrongFulfilmentMode {
            attempted: Packed,
            mode: "pickup".into()
        }
    );

    // 3. Couriers do not stand at the counter.
    let e = w.delivery(&staff("courier-a"), rx.id, ReadyForPickup);
    w.refused(e, "wrong_role");

    // 4. The pharmacist marks it ready once.
    let e = w.delivery(&staff("ph-a"), rx.id, ReadyForPickup);
    w.applied(e);
    let e = w.delivery(&staff("ph-a-2"), rx.id, ReadyForPickup);
    w.refused(e, "delivery_out_of_order");

    // 5. A walk-in claim without assignment is a pickup too.
    let (mut w, rx) = claimed_by_a("pickup-walk-in", RxSpec::simple(10));
    let e = w.delivery(&staff("ph-a"), rx.id, ReadyForPickup);
    w.applied(e);
}

#[test]
fn only_pharmacists_and_couriers_record_delivery_events() {
    use DeliveryStatus::*;
    let (mut w, rx) = dispensed_for_delivery("delivery-roles");
    for signer in [staff("dr-north"), staff("officer")] {
        let e = w.delivery(&signer, rx.id, Packed);
        w.refused(e, "wrong_role");
    }
    // An admin key is known to the consortium: the refusal must say that its
    // role is wrong, not that nobody knows the key.
    let e = w.delivery(&admin_key(PHARM_A), rx.id, Packed);
    let r = w.refused(e, "wrong_role");
    assert!(r.to_string().contains("organisation admin"), "{r}");
    let e = w.delivery(&rx.patient.clone(), rx.id, Packed);
    w.refused(e, "unknown_signer");
    assert!(w.rx(&rx.id).delivery.is_empty());
}

// ---- staff ---------------------------------------------------------------

#[test]
fn staff_roles_fit_their_organisation_kind() {
    use rxchain_contracts::OrgKind::*;
    let mut w = World::new();
    let roles = [
        Role::Practitioner,
        Role::Pharmacist,
        Role::Courier,
        Role::RegulatorOfficer,
    ];
    let mut cases = Vec::new();
    let mut txs = Vec::new();
    for (org_id, kind) in ORGS {
        for role in roles {
            let fits = matches!(
                (kind, role),
                (Hospital, Role::Practitioner)
                    | (Pharmacy, Role::Pharmacist)
                    | (Pharmacy, Role::Courier)
                    | (Logistics, Role::Courier)
                    | (Regulator, Role::RegulatorOfficer)
            );
            let key = test_key(&format!("matrix/{org_id}/{role:?}")).public();
            txs.push(w.register(org_id, &key, role));
            cases.push((org_id, role, fits, key));
        }
    }
    let outcomes = w.run(txs);
    for ((org_id, role, fits, key), outcome) in cases.into_iter().zip(outcomes) {
        if fits {
            assert!(
                outcome.is_applied(),
                "{role:?} at {org_id} was refused: {outcome:?}"
            );
            let rec = w.staff_record(&key).expect("registered");
            assert_eq!((rec.org, rec.role, rec.revoked), (org(org_id), role, None));
        } else {
            let r = expect_refused(&outcome, "wrong_org_kind", "a misfit registration");
            assert!(matches!(r, Rejection::WrongOrgKind { org: o, .. } if o == org(org_id)));
            assert!(w.staff_record(&key).is_none());
        }
    }
}

#[test]
fn only_the_organisations_own_admin_registers_its_staff() {
    let mut w = World::staffed();
    let newcomer = test_key("newcomer").public();
    for signer in [
        admin_key(PHARM_B),
        admin_key(REGULATOR),
        staff("ph-a"),
        staff("officer"),
        test_key("stranger"),
    ] {
        let t = w.register_by(&signer, PHARM_A, &newcomer, Role::Pharmacist);
        assert_eq!(
            w.refused(t, "not_org_admin"),
            Rejection::NotOrgAdmin { org: org(PHARM_A) }
        );
    }
    assert!(w.staff_record(&newcomer).is_none());
    let t = w.register(PHARM_A, &newcomer, Role::Pharmacist);
    w.applied(t);
}

#[test]
fn a_staff_admin_registers_and_revokes_for_its_own_organisation_only() {
    let mut w = World::staffed();
    // 1. The hospital's admin key registers a staff admin; so may that
    //    admin register a second one, and a doctor.
    let admin = test_key("staff-admin/north");
    let t = w.register(HOSP_NORTH, &admin.public(), Role::Admin);
    w.applied(t);
    let second = test_key("staff-admin/north-2");
    let t = w.register_by(&admin, HOSP_NORTH, &second.public(), Role::Admin);
    w.applied(t);
    let doctor = test_key("staff-admin/doctor");
    let t = w.register_by(&admin, HOSP_NORTH, &doctor.public(), Role::Practitioner);
    w.applied(t);
    let rec = w.staff_record(&doctor.public()).unwrap();
    assert_eq!((rec.org, rec.role), (org(HOSP_NORTH), Role::Practitioner));
    // Every kind of organisation may have a staff admin.
    let pharm_admin = test_key("staff-admin/pharm-a");
    let t = w.register(PHARM_A, &pharm_admin.public(), Role::Admin);
    w.applied(t);

    // 2. Not for another organisation, and the role must still fit.
    let t = w.register_by(&admin, PHARM_A, &test_key("x").public(), Role::Pharmacist);
    assert_eq!(
        w.refused(t, "not_org_admin"),
        Rejection::NotOrgAdmin { org: org(PHARM_A) }
    );
    let t = w.register_by(
        &admin,
        HOSP_NORTH,
        &test_key("y").public(),
        Role::Pharmacist,
    );
    w.refused(t, "wrong_org_kind");

    // 3. It revokes its own organisation's staff, not another's.
    let t = w.revoke(&admin, &staff("ph-a").public());
    assert_eq!(
        w.refused(t, "not_org_admin"),
        Rejection::NotOrgAdmin { org: org(PHARM_A) }
    );
    let t = w.revoke(&admin, &test_key("never-registered").public());
    w.refused(t, "unknown_staff");
    let t = w.revoke(&admin, &doctor.public());
    w.applied(t);
    let rev = w.staff_record(&doctor.public()).unwrap().revoked.unwrap();
    assert_eq!(rev.by, admin.public());

    // 4. It signs no prescription and no governance.
    let (tx, _) = w.issue(&admin, HOSP_NORTH, RxSpec::simple(1));
    let r = w.refused(tx, "wrong_role");
    assert!(r.to_string().contains("staff admin"), "{r}");

    // 5. Once revoked itself, it registers nothing more.
    let t = w.revoke(&second, &admin.public());
    w.applied(t);
    let t = w.register_by(
        &admin,
        HOSP_NORTH,
        &test_key("z").public(),
        Role::Practitioner,
    );
    w.refused(t, "signer_revoked");
}

#[test]
fn a_key_is_registered_once_and_admin_keys_never() {
    let mut w = World::staffed();
    // 1. The same key again, even for another organisation or role.
    let t = w.register(PHARM_B, &staff("ph-a").public(), Role::Pharmacist);
    w.refused(t, "staff_exists");
    let t = w.register(PHARM_A, &staff("ph-a").public(), Role::Courier);
    w.refused(t, "staff_exists");
    assert_eq!(
        w.staff_record(&staff("ph-a").public()).unwrap().org,
        org(PHARM_A)
    );
    // 2. An admin key cannot also become a staff key.
    let t = w.register(PHARM_A, &admin_key(PHARM_A).public(), Role::Pharmacist);
    w.refused(t, "staff_exists");
    let t = w.register(
        HOSP_NORTH,
        &admin_key(REGULATOR).public(),
        Role::Practitioner,
    );
    w.refused(t, "staff_exists");
}

#[test]
fn revocation_by_the_own_admin_a_regulator_admin_or_a_regulator_officer() {
    let mut w = World::staffed();
    // 1. The key's own organisation.
    let t = w.revoke(&admin_key(PHARM_A), &staff("ph-a-2").public());
    w.applied(t);
    let rec = w.staff_record(&staff("ph-a-2").public()).unwrap();
    let rev = rec.revoked.expect("revoked");
    assert_eq!(
        (rev.at, rev.by),
        (w.tip.timestamp, admin_key(PHARM_A).public())
    );
    // 2. The regulator's admin, for another organisation's staff.
    let t = w.revoke(&admin_key(REGULATOR), &staff("dr-south").public());
    w.applied(t);
    // 3. A regulator officer.
    let t = w.revoke(&staff("officer"), &staff("courier-b").public());
    w.applied(t);
    assert_eq!(
        w.staff_record(&staff("courier-b").public())
            .unwrap()
            .revoked
            .unwrap()
            .by,
        staff("officer").public()
    );
}

#[test]
fn nobody_else_revokes_and_nothing_is_revoked_twice() {
    let mut w = World::staffed();
    let target = staff("ph-b").public();
    // 1. Another member's admin, a pharmacist, a practitioner.
    for signer in [
        admin_key(PHARM_A),
        admin_key(HOSP_NORTH),
        admin_key(LOGISTICS),
        staff("ph-a"),
        staff("dr-north"),
    ] {
        let t = w.revoke(&signer, &target);
        assert_eq!(
            w.refused(t, "not_org_admin"),
            Rejection::NotOrgAdmin { org: org(PHARM_B) }
        );
    }
    // 2. A key the consortium does not know.
    let t = w.revoke(&test_key("stranger"), &target);
    w.refused(t, "unknown_signer");
    assert_eq!(w.staff_record(&target).unwrap().revoked, None);
    // 3. A key that was never registered, and admin keys, which only genesis changes.
    let t = w.revoke(
        &admin_key(REGULATOR),
        &test_key("never-registered").public(),
    );
    w.refused(t, "unknown_staff");
    let t = w.revoke(&admin_key(REGULATOR), &admin_key(PHARM_B).public());
    w.refused(t, "cannot_revoke_admin");
    let t = w.revoke(&admin_key(PHARM_B), &admin_key(PHARM_B).public());
    w.refused(t, "cannot_revoke_admin");
    // 4. Twice.
    let t = w.revoke(&admin_key(PHARM_B), &target);
    w.applied(t);
    let first = w.staff_record(&target).unwrap().revoked;
    let t = w.revoke(&staff("officer"), &target);
    w.refused(t, "already_revoked");
    assert_eq!(
        w.staff_record(&target).unwrap().revoked,
        first,
        "the first revocation stands"
    );
}

#[test]
fn a_revoked_key_signs_nothing_from_then_on() {
    use DeliveryStatus::*;
    let mut w = World::staffed_with_seed("revoked");
    // 1. Within one block: what came before the revocation stands, what comes after is refused.
    let rx = w.issue_body(HOSP_NORTH, RxSpec::simple(10));
    let issue = w.tx(&staff("dr-north-2"), TxBody::Issue(rx.body.clone()));
    let claim = w.claim(&staff("ph-b"), PHARM_B, &rx);
    let revoke_ph_b = w.revoke(&admin_key(PHARM_B), &staff("ph-b").public());
    let dispense = w.dispense(&staff("ph-b"), rx.id, &[(0, 1)], false);
    let outcomes = w.run(vec![issue, claim, revoke_ph_b, dispense]);
    assert!(
        outcomes[..3].iter().all(Outcome::is_applied),
        "{outcomes:?}"
    );
    let at = w.tip.timestamp;
    assert_eq!(
        outcomes[3],
        Outcome::Refused {
            reason: Rejection::SignerRevoked { at }
        }
    );

    // 2. In later blocks, every kind of transaction the key could sign is refused.
    let txs = vec![
        w.release(&staff("ph-b"), rx.id),
        w.dispense(&staff("ph-b"), rx.id, &[(0, 1)], true),
        w.delivery(&staff("ph-b"), rx.id, ReadyForPickup),
        w.claim(&staff("ph-b"), PHARM_B, &rx),
    ];
    for o in w.run(txs) {
        assert_eq!(
            o,
            Outcome::Refused {
                reason: Rejection::SignerRevoked { at }
            }
        );
    }
    assert_eq!(w.rx(&rx.id).dispensed, vec![0]);

    // 3. A revoked prescriber can neither issue nor cancel their own prescription.
    let t = w.revoke(&staff("officer"), &staff("dr-north-2").public());
    w.applied(t);
    let (t, _) = w.issue(&staff("dr-north-2"), HOSP_NORTH, RxSpec::simple(1));
    w.refused(t, "signer_revoked");
    assert_eq!(w.rx(&rx.id).prescriber, staff("dr-north-2").public());
    let t = w.cancel(&staff("dr-north-2"), rx.id);
    w.refused(t, "signer_revoked");

    // 4. A revoked officer revokes nobody.
    let t = w.revoke(&admin_key(REGULATOR), &staff("officer").public());
    w.applied(t);
    let t = w.revoke(&staff("officer"), &staff("ph-c").public());
    w.refused(t, "signer_revoked");
    assert_eq!(
        w.staff_record(&staff("ph-c").public()).unwrap().revoked,
        None
    );

    // 5. A revoked key cannot come back by registering again.
    let t = w.register(PHARM_B, &staff("ph-b").public(), Role::Pharmacist);
    w.refused(t, "staff_exists");
    assert!(w
        .staff_record(&staff("ph-b").public())
        .unwrap()
        .revoked
        .is_some());

    // 6. The pharmacy's lock does not die with one pharmacist's key.
    let d = w.dispense(&staff("courier-b"), rx.id, &[(0, 1)], false);
    w.refused(d, "wrong_role");
    let t = w.register(PHARM_B, &test_key("ph-b-new").public(), Role::Pharmacist);
    w.applied(t);
    let d = w.dispense(&test_key("ph-b-new"), rx.id, &[(0, 10)], false);
    w.applied(d);
}

// ---- replay and time -----------------------------------------------------

#[test]
fn a_replayed_transaction_has_no_second_effect() {
    let (mut w, rx) = claimed_by_a("replay", RxSpec::simple(10).repeats(2));
    // 1. A dispense takes effect once.
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 4)], false);
    w.applied(d.clone());
    let digest = w.digest();
    // 2. Resubmitted in a later block, it is refused and writes nothing at all.
    let o = w.run1(d.clone());
    expect_refused(&o, "duplicate", "a replayed dispense");
    assert_eq!(w.digest(), digest, "a replay must not even bump counters");
    assert_eq!(w.rx(&rx.id).dispensed, vec![4]);
    // 3. Twice in one block: the first copy applies, the second does not.
    let d2 = w.dispense(&staff("ph-a"), rx.id, &[(0, 4)], false);
    let outcomes = w.run(vec![d2.clone(), d2]);
    assert_eq!(outcomes[0], Outcome::Applied);
    expect_refused(&outcomes[1], "duplicate", "a same-block replay");
    assert_eq!(w.rx(&rx.id).dispensed, vec![8]);
    // 4. A refused transaction, replayed, is not counted twice.
    let wrong = w.claim_with_secret(
        &staff("ph-b"),
        PHARM_B,
        rx.id,
        &AccessSecret::from_bytes([1; 32]),
    );
    w.refused(wrong.clone(), "wrong_secret");
    let digest = w.digest();
    let before = w.rx(&rx.id);
    let o = w.run1(wrong);
    expect_refused(&o, "duplicate", "a replayed wrong claim");
    assert_eq!(w.digest(), digest);
    assert_eq!(
        (w.rx(&rx.id).wrong_proofs, w.rx(&rx.id).refused_attempts),
        (before.wrong_proofs, before.refused_attempts)
    );
    // 5. The chain with the replays in it still verifies offline.
    let report = verify::verify_chain(&w.genesis, &w.blocks).expect("the chain verifies");
    assert_eq!(report.state_digest, w.digest());
}

#[test]
fn transactions_dated_beyond_the_allowed_clock_skew_are_refused() {
    let (mut w, rx) = with_rx("future", RxSpec::simple(10));
    let skew = w.genesis.params.max_clock_skew_ms;
    let at_skew = |w: &mut World, ms: u64| {
        let mut t = w.unsigned(
            &staff("ph-a"),
            TxBody::Release(rxchain_contracts::tx::ReleaseRx { id: rx.id }),
        );
        t.created_at = Timestamp(w.now.0 + ms);
        t.sign(CHAIN_ID, &staff("ph-a"))
    };
    // 1. Just beyond the tolerance: refused before any other rule is looked at.
    let t = at_skew(&mut w, skew + 1);
    w.refused(t, "from_the_future");
    // 2. At the tolerance: admitted to the rules (which then refuse it for their own reason).
    let t = at_skew(&mut w, skew);
    w.refused(t, "not_claimed");
}

// ---- structure and signatures --------------------------------------------

#[test]
fn structurally_invalid_transactions_never_verify() {
    let mut w = World::staffed_with_seed("structure");
    let doctor = staff("dr-north");
    let base = w.issue_body(HOSP_NORTH, RxSpec::simple(10)).body;
    let invalid = |w: &mut World, body: TxBody, needle: &str| {
        let t = w.tx(&doctor, body);
        match t.verify(CHAIN_ID) {
            Err(TxError::Invalid(m)) => {
                assert!(m.contains(needle), "{m:?} should mention {needle:?}")
            }
            other => panic!("expected an invalid transaction mentioning {needle:?}, got {other:?}"),
        }
    };
    let valid = |w: &mut World, body: TxBody| {
        let t = w.tx(&doctor, body);
        t.verify(CHAIN_ID).expect("the boundary case is valid");
    };
    // 1. Items: 1 to 10.
    let mut b = base.clone();
    b.items.clear();
    invalid(&mut w, TxBody::Issue(b), "items");
    let mut b = base.clone();
    b.items = vec![paracetamol(1); 11];
    invalid(&mut w, TxBody::Issue(b), "items");
    let mut b = base.clone();
    b.items = vec![paracetamol(1); 10];
    valid(&mut w, TxBody::Issue(b));
    // 2. Repeats: at most 12.
    let mut b = base.clone();
    b.repeats = 13;
    invalid(&mut w, TxBody::Issue(b), "repeats");
    let mut b = base.clone();
    b.repeats = 12;
    valid(&mut w, TxBody::Issue(b));
    // 3. Sealed content: at most 16 KiB.
    let mut b = base.clone();
    b.sealed.ciphertext = vec![0; 16 * 1024 + 1];
    invalid(&mut w, TxBody::Issue(b), "16 KiB");
    let mut b = base.clone();
    b.sealed.ciphertext = vec![0; 16 * 1024];
    valid(&mut w, TxBody::Issue(b));
    // 4. Regulator wraps: at most 8.
    let mut b = base.clone();
    b.key_for_regulators = vec![b.key_for_regulators[0].clone(); 9];
    invalid(&mut w, TxBody::Issue(b), "regulator");
    // 5. Delivery address: at most 16 KiB, and a handover is required.
    let rx = w.issue_body(HOSP_NORTH, RxSpec::simple(1));
    let TxBody::Assign(mut a) = w.assign_delivery(&rx, PHARM_A, "1 Synthetic Lane").tx.body else {
        unreachable!()
    };
    if let Fulfilment::Delivery { address, .. } = &mut a.fulfilment {
        address.ciphertext = vec![0; 16 * 1024 + 1];
    }
    invalid(&mut w, TxBody::Assign(a.clone()), "address");
    a.handover = None;
    if let Fulfilment::Delivery { address, .. } = &mut a.fulfilment {
        address.ciphertext = vec![0; 32];
    }
    invalid(&mut w, TxBody::Assign(a), "handed over");
    // 6. Dispense lines: 1 to 10, or none when completing.
    let line = DispenseLine {
        item: 0,
        quantity: rxchain_contracts::Quantity::new(1).unwrap(),
        batch: label("B1"),
    };
    invalid(
        &mut w,
        TxBody::Dispense(DispenseRx {
            id: rx.id,
            lines: vec![line.clone(); 11],
            complete: false,
        }),
        "10 lines",
    );
    valid(
        &mut w,
        TxBody::Dispense(DispenseRx {
            id: rx.id,
            lines: vec![line; 10],
            complete: false,
        }),
    );
    invalid(
        &mut w,
        TxBody::Dispense(DispenseRx {
            id: rx.id,
            lines: vec![],
            complete: false,
        }),
        "at least one line",
    );
    valid(
        &mut w,
        TxBody::Dispense(DispenseRx {
            id: rx.id,
            lines: vec![],
            complete: true,
        }),
    );
}

#[test]
fn a_signature_by_anyone_but_the_declared_signer_does_not_verify() {
    let mut w = World::staffed();
    let t = w.unsigned(
        &staff("ph-a"),
        TxBody::Release(rxchain_contracts::tx::ReleaseRx {
            id: rxchain_contracts::PrescriptionId::from_bytes([1; 16]),
        }),
    );
    // Signed by ph-b but declaring ph-a: an attempt to act in someone else's name.
    let forged = t.clone().sign(CHAIN_ID, &staff("ph-b"));
    assert_eq!(forged.verify(CHAIN_ID), Err(TxError::BadSignature));
    let genuine = t.sign(CHAIN_ID, &staff("ph-a"));
    assert!(genuine.verify(CHAIN_ID).is_ok());
}

#[test]
fn a_signature_made_for_another_chain_does_not_verify() {
    let mut w = World::staffed();
    let t = w.unsigned(
        &staff("ph-a"),
        TxBody::Release(rxchain_contracts::tx::ReleaseRx {
            id: rxchain_contracts::PrescriptionId::from_bytes([1; 16]),
        }),
    );
    assert_ne!(
        t.id("rxchain-other"),
        t.id(CHAIN_ID),
        "the id is bound to the chain"
    );
    let other_chain = t.clone().sign("rxchain-other", &staff("ph-a"));
    assert!(other_chain.clone().verify("rxchain-other").is_ok());
    assert_eq!(other_chain.verify(CHAIN_ID), Err(TxError::BadSignature));
}

#[test]
fn a_signature_made_for_another_kind_or_purpose_does_not_verify() {
    let mut w = World::staffed();
    let key = staff("ph-a");
    let t = w.unsigned(
        &key,
        TxBody::Release(rxchain_contracts::tx::ReleaseRx {
            id: rxchain_contracts::PrescriptionId::from_bytes([1; 16]),
        }),
    );
    let bytes = t.signing_bytes();
    // The same bytes signed under every other tag: other kinds, blocks, claim proofs, no tag.
    let other_tags = [
        "tx/rxchain-test/cancel".to_string(),
        "tx/rxchain-test/dispense".to_string(),
        "tx/rxchain-test/claim".to_string(),
        "block/rxchain-test".to_string(),
        CLAIM_PROOF_TAG.to_string(),
        String::new(),
    ];
    for tag in other_tags {
        let signature = key.sign_digest(&signing_digest(&tag, &bytes));
        let s = SignedTx {
            tx: t.clone(),
            signature,
        };
        assert_eq!(
            s.verify(CHAIN_ID),
            Err(TxError::BadSignature),
            "a signature under {tag:?} was accepted"
        );
    }
    let signature = key.sign_digest(&signing_digest("tx/rxchain-test/release", &bytes));
    assert!(SignedTx { tx: t, signature }.verify(CHAIN_ID).is_ok());
}

// ---- privacy -------------------------------------------------------------

/// The plaintext pieces that must never reach the chain.
fn secrets_of(rx: &Rx) -> Vec<Vec<u8>> {
    let p = &rx.content.patient;
    let mut v = vec![
        p.name.as_bytes().to_vec(),
        p.identifier.as_bytes().to_vec(),
        p.birth_date.as_bytes().to_vec(),
        p.email.clone().unwrap().into_bytes(),
        rx.content.notes.as_bytes().to_vec(),
        rx.secret.expose().to_vec(),
        rx.content_key.expose().to_vec(),
    ];
    v.extend(rx.content.dosage.iter().map(|d| d.as_bytes().to_vec()));
    // Distinctive fragments too, so a partial leak is caught.
    v.push(b"Quixby".to_vec());
    v.push(b"penicillin".to_vec());
    v
}

#[test]
fn patient_identity_and_clinical_text_never_appear_in_plaintext_on_the_chain() {
    let (mut w, rx) = with_rx("privacy-plain", RxSpec::simple(10));
    let address = "99 Confidential Avenue, Hometown";
    let a = w.assign_delivery(&rx, PHARM_A, address);
    let assign_bytes = a.to_bytes();
    w.applied(a);
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    w.applied(c);
    let issue_bytes = w.blocks[1].txs[0].to_bytes();
    let chain_bytes: Vec<u8> = w.blocks.iter().flat_map(encoding::to_bytes).collect();
    let state_bytes: Vec<u8> = w
        .store
        .0
        .iter()
        .flat_map(|(k, v)| k.iter().chain(v).copied().collect::<Vec<_>>())
        .collect();
    let json = serde_json::to_string(&w.blocks).unwrap();
    let mut needles = secrets_of(&rx);
    needles.push(address.as_bytes().to_vec());
    needles.push(b"Confidential".to_vec());
    for needle in &needles {
        let shown = String::from_utf8_lossy(needle);
        assert!(
            !contains(&issue_bytes, needle),
            "the issue transaction leaks {shown:?}"
        );
        assert!(
            !contains(&assign_bytes, needle),
            "the assignment leaks {shown:?}"
        );
        assert!(!contains(&chain_bytes, needle), "the chain leaks {shown:?}");
        assert!(!contains(&state_bytes, needle), "the state leaks {shown:?}");
        assert!(
            !contains(json.as_bytes(), needle),
            "the JSON form leaks {shown:?}"
        );
        assert!(
            !contains(json.as_bytes(), hex::encode(needle).as_bytes()),
            "the JSON form leaks hex of {shown:?}"
        );
    }
    // What the rules need stays readable.
    assert!(contains(&issue_bytes, b"N02BE01"));
    assert!(contains(&issue_bytes, b"Paracetamol"));
}

#[test]
fn the_hospital_the_regulator_and_the_qr_holder_open_the_content_and_nobody_else() {
    let (w, rx) = with_rx("privacy-open", RxSpec::simple(10));
    let TxBody::Issue(body) = &w.blocks[1].txs[0].tx.body else {
        panic!("block 2 holds the issue")
    };
    let ctx = privacy::content_context(&rx.id);
    let open_with =
        |ck: [u8; 32]| privacy::open_content(&rx.id, &body.sealed, &ContentKey::from_bytes(ck));
    // 1. The QR secret.
    let ck = privacy::unwrap_with_secret(&rx.secret, &ctx, &body.key_for_patient)
        .expect("the QR opens it");
    assert_eq!(open_with(ck).unwrap(), rx.content);
    // 2. The issuing hospital's data key.
    let ck = privacy::unwrap_with_key(&data_key(HOSP_NORTH), &ctx, &body.key_for_hospital)
        .expect("the hospital opens it");
    assert_eq!(open_with(ck).unwrap(), rx.content);
    // 3. The regulator's data key.
    let (reg, wrap) = &body.key_for_regulators[0];
    assert_eq!(reg, &org(REGULATOR));
    let ck =
        privacy::unwrap_with_key(&data_key(REGULATOR), &ctx, wrap).expect("the regulator opens it");
    assert_eq!(open_with(ck).unwrap(), rx.content);
    // 4. Nobody else: other members' data and admin keys, staff keys, a wrong secret.
    let wraps: [&WrappedKey; 2] = [&body.key_for_hospital, wrap];
    for org_id in [HOSP_SOUTH, PHARM_A, PHARM_B, PHARM_C, LOGISTICS] {
        for wrap in wraps {
            assert_eq!(
                privacy::unwrap_with_key(&data_key(org_id), &ctx, wrap),
                Err(PrivacyError::OpenFailed)
            );
            assert_eq!(
                privacy::unwrap_with_key(&admin_key(org_id), &ctx, wrap),
                Err(PrivacyError::OpenFailed)
            );
        }
    }
    assert_eq!(
        privacy::unwrap_with_key(&staff("dr-north"), &ctx, &body.key_for_hospital),
        Err(PrivacyError::OpenFailed)
    );
    assert_eq!(
        privacy::unwrap_with_secret(
            &AccessSecret::from_bytes([0; 32]),
            &ctx,
            &body.key_for_patient
        ),
        Err(PrivacyError::OpenFailed)
    );
    // 5. The QR secret does not open a wrap made for a data key.
    assert_eq!(
        privacy::unwrap_with_secret(&rx.secret, &ctx, &body.key_for_hospital),
        Err(PrivacyError::WrongWrapKind)
    );
    // 6. A wrong content key does not open the content.
    assert_eq!(open_with([7; 32]), Err(PrivacyError::OpenFailed));
}

#[test]
fn the_delivery_address_reaches_only_the_chosen_pharmacy() {
    let (mut w, rx) = with_rx("privacy-address", RxSpec::simple(10));
    let address = "12 Synthetic Close, Testtown";
    let a = w.assign_delivery(&rx, PHARM_B, address);
    w.applied(a);
    let rec = w.rx(&rx.id);
    let Some(Fulfilment::Delivery {
        address: sealed_address,
        ..
    }) = &rec.fulfilment
    else {
        panic!("delivery")
    };
    let TxBody::Assign(assign) = &w.blocks.last().unwrap().txs[0].tx.body else {
        panic!("assign")
    };
    let handover = assign.handover.as_ref().unwrap();
    let TxBody::Issue(issue) = &w.blocks[1].txs[0].tx.body else {
        panic!("issue")
    };
    // 1. pharm-b recovers the QR secret, then the content key, then the address.
    let secret = privacy::unwrap_with_key(
        &data_key(PHARM_B),
        &privacy::handover_context(&rx.id),
        handover,
    )
    .unwrap();
    let secret = AccessSecret::from_bytes(secret);
    assert_eq!(
        secret.signing_key().public(),
        rec.access_key,
        "the handed-over secret matches the access key"
    );
    let ck = privacy::unwrap_with_secret(
        &secret,
        &privacy::content_context(&rx.id),
        &issue.key_for_patient,
    )
    .unwrap();
    let opened = privacy::open(&ck, &privacy::address_context(&rx.id), sealed_address).unwrap();
    assert_eq!(opened, address.as_bytes());
    // 2. Other pharmacies get nothing from the handover.
    for other in [PHARM_A, PHARM_C] {
        assert_eq!(
            privacy::unwrap_with_key(
                &data_key(other),
                &privacy::handover_context(&rx.id),
                handover
            ),
            Err(PrivacyError::OpenFailed)
        );
    }
    // 3. A sealed address moved to another prescription does not open.
    assert_eq!(
        privacy::open(
            &ck,
            &privacy::address_context(&rxchain_contracts::PrescriptionId::from_bytes([0; 16])),
            sealed_address
        ),
        Err(PrivacyError::OpenFailed)
    );
}

#[test]
fn every_seal_draws_a_fresh_nonce_from_the_callers_entropy() {
    // ChaCha20-Poly1305 must never see one nonce twice under one key, and
    // the contracts take their randomness from the caller. So two seals of
    // the same content under the same key must differ, while replaying the
    // same entropy stream reproduces them (which keeps tests deterministic).
    let mut w = World::staffed();
    let rx = w.issue_body(HOSP_NORTH, RxSpec::simple(1));
    let seal_twice = |seed: &str| {
        let mut e = entropy(seed);
        let a = privacy::seal_content(&rx.id, &rx.content, &rx.content_key, &mut e);
        let b = privacy::seal_content(&rx.id, &rx.content, &rx.content_key, &mut e);
        (a, b)
    };
    let (a, b) = seal_twice("nonce-stream");
    assert_ne!(a.nonce, b.nonce);
    assert_ne!(a.ciphertext, b.ciphertext);
    assert_eq!(
        seal_twice("nonce-stream"),
        (a.clone(), b),
        "the same entropy reproduces the same seals"
    );
    assert_eq!(
        privacy::open_content(&rx.id, &a, &rx.content_key).unwrap(),
        rx.content
    );
}

// ---- shared rules the node calls -----------------------------------------

#[test]
fn remaining_allowance_counts_down_with_each_fill_and_matches_the_refusal() {
    let mut w = World::staffed_with_seed("remaining");
    let rx = w.issued(RxSpec::simple(10).repeats(1));
    assert_eq!(w.rx(&rx.id).remaining_allowance(), vec![20]);
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    w.applied(c);
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 7)], false);
    w.applied(d);
    let rec = w.rx(&rx.id);
    assert_eq!(rec.remaining_allowance(), vec![13]);
    assert_eq!(rec.remaining(0), rec.allowance(0) - 7);
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 14)], false);
    assert_eq!(
        w.run1(d),
        Outcome::Refused {
            reason: Rejection::ExceedsAllowance {
                item: 0,
                remaining: 13
            }
        }
    );
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 13)], false);
    w.applied(d);
    assert_eq!(w.rx(&rx.id).remaining_allowance(), vec![0]);
}

#[test]
fn only_the_qr_secret_matches_its_prescription() {
    let mut w = World::staffed_with_seed("secret-matches");
    let a = w.issued(RxSpec::simple(10));
    let b = w.issued(RxSpec::simple(10));
    assert!(w.rx(&a.id).secret_matches(&a.secret));
    assert!(!w.rx(&a.id).secret_matches(&b.secret));
    assert_eq!(a.secret.access_key(), w.rx(&a.id).access_key);
}

#[test]
fn open_statuses_are_those_still_to_act_on() {
    use PublicStatus::*;
    for s in [Issued, Assigned, Claimed, PartiallyDispensed] {
        assert!(s.is_open(), "{s:?}");
    }
    for s in [Completed, Cancelled, Expired] {
        assert!(!s.is_open(), "{s:?}");
    }
}

#[test]
fn pharmacies_are_told_apart_from_other_members_and_strangers() {
    let g = genesis();
    assert!(g.is_pharmacy(&org(PHARM_A)));
    assert!(!g.is_pharmacy(&org(HOSP_NORTH)));
    assert!(!g.is_pharmacy(&org("nowhere")));
    assert_eq!(
        g.org_of_kind(&org(PHARM_B), rxchain_contracts::OrgKind::Pharmacy)
            .map(|o| o.id.clone()),
        Ok(org(PHARM_B))
    );
    assert_eq!(
        g.org_of_kind(&org(LOGISTICS), rxchain_contracts::OrgKind::Pharmacy)
            .unwrap_err(),
        Rejection::WrongOrgKind {
            org: org(LOGISTICS),
            need: "pharmacy".into()
        }
    );
    assert_eq!(
        g.org_of_kind(&org("nowhere"), rxchain_contracts::OrgKind::Pharmacy)
            .unwrap_err(),
        Rejection::UnknownOrg {
            org: org("nowhere")
        }
    );
}

// ---- the controlled-drug list ----------------------------------------------

/// A spec of one item, with its controlled flag as given.
fn one_item(item: rxchain_contracts::tx::Item) -> RxSpec {
    let mut spec = RxSpec::simple(1);
    spec.items = vec![item];
    spec
}

#[test]
fn the_chain_list_not_the_client_flag_decides_what_is_controlled() {
    let mut w = World::staffed_with_seed("controlled-flag");
    // 1. Morphine is on the genesis list: flagged otherwise, it is refused.
    let mut m = morphine(10);
    m.controlled = false;
    let (t, _) = w.issue(&staff("dr-north"), HOSP_NORTH, one_item(m));
    assert_eq!(
        w.refused(t, "controlled_mismatch"),
        Rejection::ControlledMismatch {
            item: 0,
            atc: rxchain_contracts::AtcCode::parse("N02AA01").unwrap(),
            listed: true
        }
    );
    // 2. Paracetamol is not: flagged controlled, the second item is refused.
    let mut p = paracetamol(10);
    p.controlled = true;
    let mut spec = one_item(amoxicillin(5));
    spec.items.push(p);
    let (t, _) = w.issue(&staff("dr-north"), HOSP_NORTH, spec);
    let r = w.refused(t, "controlled_mismatch");
    assert!(
        matches!(
            r,
            Rejection::ControlledMismatch {
                item: 1,
                listed: false,
                ..
            }
        ),
        "{r:?}"
    );
    // 3. Flags that agree pass, and the list sets the validity.
    let rx = w.issued(RxSpec::controlled(10));
    let rec = w.rx(&rx.id);
    assert!(rec.controlled);
    assert_eq!(rec.valid_until, rec.valid_from.plus_days(28));
}

#[test]
fn a_regulator_officer_changes_the_controlled_list() {
    let mut w = World::staffed_with_seed("controlled-list");
    let before = w.issued(RxSpec::controlled(10));
    // 1. Nobody but a regulator officer changes it.
    for (signer, code) in [
        (staff("ph-a"), "wrong_role"),
        (staff("dr-north"), "wrong_role"),
        (admin_key(REGULATOR), "wrong_role"),
        (test_key("stranger"), "unknown_signer"),
    ] {
        let t = w.set_controlled(&signer, "N02BE01", Some("V"));
        w.refused(t, code);
    }
    // 2. Paracetamol goes on the list; morphine comes off.
    let t = w.set_controlled(&staff("officer"), "N02BE01", Some("V"));
    w.applied(t);
    let t = w.set_controlled(&staff("officer"), "N02AA01", None);
    w.applied(t);
    let list = rxchain_contracts::ControlledList::current(&w.genesis, &w.store).unwrap();
    let listed: Vec<(&str, &str)> = list
        .drugs()
        .iter()
        .map(|d| (d.atc.as_str(), d.schedule.as_str()))
        .collect();
    assert_eq!(listed, [("N02BE01", "V")]);
    // 3. A change that changes nothing is refused.
    let t = w.set_controlled(&staff("officer"), "N02AA01", None);
    assert_eq!(
        w.refused(t, "controlled_unchanged"),
        Rejection::ControlledUnchanged {
            atc: rxchain_contracts::AtcCode::parse("N02AA01").unwrap()
        }
    );
    let t = w.set_controlled(&staff("officer"), "N02BE01", Some("V"));
    w.refused(t, "controlled_unchanged");
    // 4. New prescriptions follow the new list, in both directions.
    let (t, _) = w.issue(&staff("dr-north"), HOSP_NORTH, RxSpec::simple(10));
    w.refused(t, "controlled_mismatch");
    let mut p = paracetamol(10);
    p.controlled = true;
    let rx = w.issued(one_item(p));
    let rec = w.rx(&rx.id);
    assert!(rec.controlled);
    assert_eq!(rec.valid_until, rec.valid_from.plus_days(28));
    let (t, _) = w.issue(&staff("dr-north"), HOSP_NORTH, RxSpec::controlled(10));
    w.refused(t, "controlled_mismatch");
    let mut m = morphine(10);
    m.controlled = false;
    let rx = w.issued(one_item(m));
    let rec = w.rx(&rx.id);
    assert!(!rec.controlled);
    assert_eq!(rec.valid_until, rec.valid_from.plus_days(90));
    // 5. A prescription issued before keeps what it was issued with.
    assert!(w.rx(&before.id).controlled);
    // 6. The offline verifier replays the changes to the same outcomes.
    verify::verify_chain(&w.genesis, &w.blocks).expect("the chain verifies");
}

// ---- carriers --------------------------------------------------------------

#[test]
fn only_couriers_of_the_carrier_handed_the_delivery_record_it() {
    use DeliveryStatus::*;
    // A second logistics member, with a courier of its own.
    let mut g = genesis();
    g.orgs.push(rxchain_contracts::OrgDecl {
        id: org("logistics-2"),
        kind: rxchain_contracts::OrgKind::Logistics,
        name: label("Synthetic logistics-2"),
        address: label("8 Test Street, Testtown"),
        admin_key: admin_key("logistics-2").public(),
        data_key: data_key("logistics-2").public(),
        nodes: Vec::new(),
    });
    let mut w = World::staffed_with_genesis(g);
    w.rng = common::DetRng::new("carriers");
    let t = w.register("logistics-2", &staff("courier-2").public(), Role::Courier);
    w.applied(t);
    let rx = w.issued(RxSpec::simple(10));
    let a = w.assign_delivery(&rx, PHARM_A, "7 Synthetic Road, Testtown");
    w.applied(a);
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    w.applied(c);
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 10)], false);
    w.applied(d);
    let e = w.delivery(&staff("ph-a"), rx.id, Packed);
    w.applied(e);
    // 1. Before any hand-over, no logistics courier records anything.
    let e = w.delivery(&staff("courier-log"), rx.id, Dispatched);
    assert_eq!(
        w.refused(e, "not_carrier"),
        Rejection::NotCarrier { carrier: None }
    );
    // 2. Only the claiming pharmacy's pharmacist hands over, to a
    // logistics member.
    let h = w.hand_to_carrier(&staff("ph-b"), rx.id, LOGISTICS);
    w.refused(h, "claimed_by_other");
    let h = w.hand_to_carrier(&staff("courier-a"), rx.id, LOGISTICS);
    w.refused(h, "wrong_role");
    let h = w.hand_to_carrier(&staff("ph-a"), rx.id, PHARM_B);
    w.refused(h, "wrong_org_kind");
    let h = w.hand_to_carrier(&staff("ph-a"), rx.id, "nobody");
    w.refused(h, "unknown_org");
    let h = w.hand_to_carrier(&staff("ph-a"), rx.id, LOGISTICS);
    w.applied(h);
    assert_eq!(w.rx(&rx.id).carrier, Some(org(LOGISTICS)));
    // 3. A courier of the other logistics member is refused, naming the
    // carrier; the carrier's courier and the pharmacy's own carry on.
    let e = w.delivery(&staff("courier-2"), rx.id, Dispatched);
    assert_eq!(
        w.refused(e, "not_carrier"),
        Rejection::NotCarrier {
            carrier: Some(org(LOGISTICS))
        }
    );
    let e = w.delivery(&staff("courier-log"), rx.id, Dispatched);
    w.applied(e);
    let e = w.delivery(&staff("courier-a"), rx.id, OutForDelivery);
    w.applied(e);
    // 4. A new hand-over moves the delivery to the other carrier.
    let h = w.hand_to_carrier(&staff("ph-a"), rx.id, "logistics-2");
    w.applied(h);
    let e = w.delivery(&staff("courier-log"), rx.id, Delivered);
    w.refused(e, "not_carrier");
    let e = w.delivery(&staff("courier-2"), rx.id, Delivered);
    w.applied(e);
}

#[test]
fn only_home_deliveries_are_handed_to_a_carrier_and_a_release_takes_it_back() {
    // 1. A pickup prescription has no carrier.
    let (mut w, rx) = with_rx("carrier-pickup", RxSpec::simple(10));
    let a = w.assign_pickup(&rx, PHARM_A);
    w.applied(a);
    let h = w.hand_to_carrier(&staff("ph-a"), rx.id, LOGISTICS);
    w.refused(h, "not_claimed");
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    w.applied(c);
    let h = w.hand_to_carrier(&staff("ph-a"), rx.id, LOGISTICS);
    assert_eq!(w.refused(h, "not_a_delivery"), Rejection::NotADelivery);
    // 2. A release clears the carrier with the rest of the delivery trail.
    let (mut w, rx) = with_rx("carrier-release", RxSpec::simple(10));
    let a = w.assign_delivery(&rx, PHARM_A, "7 Synthetic Road, Testtown");
    w.applied(a);
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    w.applied(c);
    let h = w.hand_to_carrier(&staff("ph-a"), rx.id, LOGISTICS);
    w.applied(h);
    assert_eq!(w.rx(&rx.id).carrier, Some(org(LOGISTICS)));
    let r = w.release(&staff("ph-a"), rx.id);
    w.applied(r);
    assert_eq!(w.rx(&rx.id).carrier, None);
}

// ---- spent claim proofs -------------------------------------------------------

#[test]
fn a_good_proof_is_spent_even_when_its_claim_is_refused() {
    let (mut w, rx) = with_rx("proof-spent", RxSpec::simple(10));
    let a = w.assign_pickup(&rx, PHARM_B);
    w.applied(a);
    // 1. pharm-a holds the QR code but the patient chose pharm-b: refused,
    // and the proof is now public on the chain.
    let nonce = [5u8; 16];
    let proof = claim_proof(CHAIN_ID, &rx.id, PHARM_A, &nonce, &rx.secret);
    let c = w.claim_with_proof(&staff("ph-a"), PHARM_A, rx.id, nonce, proof);
    w.refused(c, "assigned_elsewhere");
    // 2. Once the patient chooses pharm-a, the published proof is spent.
    let a = w.assign_pickup(&rx, PHARM_A);
    w.applied(a);
    let c = w.claim_with_proof(&staff("ph-a-2"), PHARM_A, rx.id, nonce, proof);
    assert_eq!(w.refused(c, "proof_reused"), Rejection::ProofReused);
    assert_eq!(w.rx(&rx.id).claim, None);
    // 3. A fresh proof works.
    let c = w.claim(&staff("ph-a"), PHARM_A, &rx);
    w.applied(c);
}

// ---- admission ------------------------------------------------------------------

/// What the mempool would answer for `t` against the committed state.
fn admit(w: &World, t: &SignedTx) -> Result<(), lifecycle::Inadmissible> {
    let v = t.clone().verify(CHAIN_ID).expect("well-formed and signed");
    lifecycle::admissible(&w.genesis, &w.store, &v, w.now)
}

#[test]
fn admission_refuses_signers_the_state_does_not_know_for_the_kind() {
    let (mut w, rx) = claimed_by_a("admission", RxSpec::simple(10));
    let r = w.revoke(&admin_key(PHARM_A), &staff("ph-a-2").public());
    w.applied(r);
    let revoked_at = w.tip.timestamp;
    let newcomer = test_key("newcomer").public();
    let cases: Vec<(SignedTx, Rejection)> = vec![
        (
            w.issue(&test_key("stranger"), HOSP_NORTH, RxSpec::simple(1))
                .0,
            Rejection::UnknownSigner,
        ),
        (
            w.issue(&staff("ph-a"), HOSP_NORTH, RxSpec::simple(1)).0,
            Rejection::WrongRole {
                role: "pharmacist".into(),
                action: "issue prescriptions".into(),
            },
        ),
        (
            w.dispense(&staff("ph-a-2"), rx.id, &[(0, 1)], false),
            Rejection::SignerRevoked { at: revoked_at },
        ),
        (
            w.register_by(&admin_key(PHARM_B), PHARM_A, &newcomer, Role::Pharmacist),
            Rejection::NotOrgAdmin { org: org(PHARM_A) },
        ),
        (
            w.revoke(&admin_key(PHARM_B), &staff("ph-a").public()),
            Rejection::NotOrgAdmin { org: org(PHARM_A) },
        ),
        (
            w.tx(
                &test_key("stranger"),
                TxBody::Assign(AssignRx {
                    id: rx.id,
                    fulfilment: Fulfilment::Pickup {
                        pharmacy: org(PHARM_A),
                    },
                    handover: None,
                }),
            ),
            Rejection::NotPatient,
        ),
        (
            w.cancel(&staff("dr-south"), rx.id),
            Rejection::NotPrescriberOrPatient,
        ),
        (
            w.delivery(&admin_key(PHARM_A), rx.id, DeliveryStatus::ReadyForPickup),
            Rejection::WrongRole {
                role: "organisation admin".into(),
                action: "record delivery events".into(),
            },
        ),
        (
            w.set_controlled(&staff("ph-a"), "N02BE01", Some("V")),
            Rejection::WrongRole {
                role: "pharmacist".into(),
                action: "change the controlled-drug list".into(),
            },
        ),
    ];
    for (t, expected) in cases {
        let kind = t.tx.body.kind();
        assert!(expected.is_admission(), "{expected:?} is an admission code");
        assert_eq!(
            admit(&w, &t),
            Err(lifecycle::Inadmissible::Refused(expected.clone())),
            "{kind}"
        );
        // The chain refuses it the same way, should it get there.
        let outcome = w.run1(t);
        assert_eq!(outcome, Outcome::Refused { reason: expected }, "{kind}");
    }
    // A pharmacist claiming for another pharmacy is not admitted either.
    let c = w.claim(&staff("ph-b"), PHARM_A, &rx);
    assert!(matches!(
        admit(&w, &c),
        Err(lifecycle::Inadmissible::Refused(
            Rejection::WrongOrgKind { .. }
        ))
    ));
}

#[test]
fn admission_lets_legitimate_signers_through_to_be_refused_on_the_chain() {
    let (mut w, rx) = claimed_by_a("admission-audit", RxSpec::simple(10));
    let d = w.dispense(&staff("ph-a"), rx.id, &[(0, 10)], false);
    w.applied(d);
    let other = w.issued(RxSpec::simple(10));
    let cases = vec![
        // A second dispense, by the pharmacy that completed it.
        (
            w.dispense(&staff("ph-a"), rx.id, &[(0, 1)], false),
            "already_dispensed",
        ),
        // A wrong QR proof.
        (
            w.claim_with_secret(
                &staff("ph-b"),
                PHARM_B,
                other.id,
                &AccessSecret::from_bytes([7; 32]),
            ),
            "wrong_secret",
        ),
        // An out-of-order delivery event.
        (
            w.delivery(&staff("ph-a"), rx.id, DeliveryStatus::Delivered),
            "wrong_fulfilment_mode",
        ),
        // A colleague's revocation the rules refuse.
        (
            w.revoke(&admin_key(REGULATOR), &admin_key(PHARM_A).public()),
            "cannot_revoke_admin",
        ),
        // The patient cancelling a completed prescription.
        (w.cancel(&rx.patient, rx.id), "already_dispensed"),
    ];
    for (t, code) in cases {
        assert_eq!(admit(&w, &t), Ok(()), "{code} is the chain's to record");
        let r = w.refused(t, code);
        assert!(!r.is_admission());
    }
    // An expired prescription: its claim is admitted and refused on the chain.
    w.advance_days(91);
    let c = w.claim(&staff("ph-b"), PHARM_B, &other);
    assert_eq!(admit(&w, &c), Ok(()));
    w.refused(c, "expired");
}

// ---- governance ----------------------------------------------------------

/// The consortium in force after the blocks so far.
fn consortium(w: &World) -> rxchain_contracts::Genesis {
    let st = rxchain_contracts::state::Overlay::new(&w.store);
    governance::effective(&w.genesis, &st).expect("the harness store is never corrupt")
}

/// `org`'s admin proposes `action`, open for a day.
fn propose(w: &mut World, by: &str, action: Action) -> SignedTx {
    let expires_at = w.now.plus_days(1);
    w.tx(
        &admin_key(by),
        TxBody::Propose(Propose { action, expires_at }),
    )
}

/// `org`'s admin approves `proposal`.
fn approve(w: &mut World, by: &str, proposal: TxId) -> SignedTx {
    w.tx(&admin_key(by), TxBody::Approve(Approve { proposal }))
}

/// The stored proposal.
fn proposal(w: &World, id: TxId) -> governance::Proposal {
    let st = rxchain_contracts::state::Overlay::new(&w.store);
    st.get(&governance::proposal_key(&id))
        .unwrap()
        .expect("the proposal is stored")
}

/// A new hospital with one node (id 8), its keys derived like the others.
fn new_hospital(id: &str) -> OrgDecl {
    OrgDecl {
        id: org(id),
        kind: OrgKind::Hospital,
        name: label("Synthetic new hospital"),
        address: label("8 Test Street, Testtown"),
        admin_key: admin_key(id).public(),
        data_key: data_key(id).public(),
        nodes: vec![NodeDecl {
            id: 8,
            key: node_key(id).public(),
            tls: rxchain_contracts::Hash::of(&[b"contract-test-tls", b"node-8"]),
        }],
    }
}

#[test]
fn one_organisation_alone_cannot_remove_another_organisations_voter_but_the_threshold_can() {
    let mut w = World::staffed_with_seed("gov-remove");
    // Seven organisations: the default threshold is a majority, four.
    assert_eq!(governance::threshold(&consortium(&w)), 4);
    let p = propose(&mut w, PHARM_A, Action::RemoveNode { node: 2 });
    let id = tx_id(&p);
    w.applied(p);
    assert!(
        consortium(&w).node(2).is_some(),
        "one approval removes nothing"
    );
    // The proposer's own approval already counts, once.
    let again = approve(&mut w, PHARM_A, id);
    assert_eq!(
        w.refused(again, "already_approved"),
        Rejection::AlreadyApproved { org: org(PHARM_A) }
    );
    let b = approve(&mut w, PHARM_B, id);
    w.applied(b);
    let c = approve(&mut w, PHARM_C, id);
    w.applied(c);
    assert!(
        consortium(&w).node(2).is_some(),
        "three of four remove nothing"
    );
    assert_eq!(proposal(&w, id).executed_at, None);
    let r = approve(&mut w, REGULATOR, id);
    w.applied(r);
    assert!(
        consortium(&w).node(2).is_none(),
        "the fourth approval executes it"
    );
    assert_eq!(proposal(&w, id).executed_at, Some(w.now));
    assert_eq!(
        proposal(&w, id).approvals,
        vec![org(PHARM_A), org(PHARM_B), org(PHARM_C), org(REGULATOR)]
    );
    let late = approve(&mut w, LOGISTICS, id);
    assert_eq!(
        w.refused(late, "proposal_executed"),
        Rejection::ProposalExecuted { at: w.now }
    );
    // A block proposed by the removed node no longer checks.
    let (block, _) = block::propose(
        &w.genesis,
        &w.store,
        &w.tip,
        vec![],
        rxchain_contracts::cert::ClockProof(Vec::new()),
        w.now,
        2,
        &node_key(HOSP_SOUTH),
    )
    .unwrap();
    assert_eq!(
        block::check_and_execute(&w.genesis, &w.store, &w.tip, &block, &w.known()).unwrap_err(),
        block::BlockError::UnknownProposer(2)
    );
}

#[test]
fn only_open_known_proposals_are_approved() {
    let mut w = World::staffed_with_seed("gov-open");
    let unknown = approve(
        &mut w,
        PHARM_A,
        TxId(rxchain_contracts::Hash::of(&[b"none"])),
    );
    w.refused(unknown, "unknown_proposal");
    // A proposal must expire after its own block.
    let now = w.now;
    let stale = w.tx(
        &admin_key(PHARM_A),
        TxBody::Propose(Propose {
            action: Action::RemoveNode { node: 2 },
            expires_at: now,
        }),
    );
    assert_eq!(
        w.refused(stale, "proposal_expired"),
        Rejection::ProposalExpired { at: now }
    );
    let p = propose(&mut w, PHARM_A, Action::RemoveNode { node: 2 });
    let id = tx_id(&p);
    w.applied(p);
    w.advance_days(2);
    let late = approve(&mut w, PHARM_B, id);
    assert!(matches!(
        w.refused(late, "proposal_expired"),
        Rejection::ProposalExpired { .. }
    ));
    assert!(consortium(&w).node(2).is_some());
}

#[test]
fn only_organisation_admins_take_part_in_governance() {
    let mut w = World::staffed_with_seed("gov-admins");
    let body = TxBody::Propose(Propose {
        action: Action::RemoveNode { node: 2 },
        expires_at: w.now.plus_days(1),
    });
    let by_staff = w.tx(&staff("ph-a"), body.clone());
    assert_eq!(
        w.refused(by_staff.clone(), "not_org_admin"),
        Rejection::NotOrgAdmin { org: org(PHARM_A) }
    );
    assert!(matches!(
        admit(&w, &by_staff),
        Err(lifecycle::Inadmissible::Refused(
            Rejection::NotOrgAdmin { .. }
        ))
    ));
    let by_stranger = w.tx(&test_key("stranger"), body);
    w.refused(by_stranger, "unknown_signer");
}

#[test]
fn an_organisation_takes_its_own_node_out_alone_and_only_its_own() {
    let mut w = World::staffed_with_seed("gov-leave");
    let other = w.tx(
        &admin_key(PHARM_A),
        TxBody::LeaveNode(LeaveNode { node: 2 }),
    );
    assert_eq!(
        w.refused(other, "not_your_node"),
        Rejection::NotYourNode {
            node: 2,
            org: org(HOSP_SOUTH)
        }
    );
    let unknown = w.tx(
        &admin_key(PHARM_A),
        TxBody::LeaveNode(LeaveNode { node: 99 }),
    );
    assert_eq!(
        w.refused(unknown, "unknown_node"),
        Rejection::UnknownNode { node: 99 }
    );
    // pharm-a declares node 3.
    let own = w.tx(
        &admin_key(PHARM_A),
        TxBody::LeaveNode(LeaveNode { node: 3 }),
    );
    w.applied(own);
    assert!(consortium(&w).node(3).is_none());
    assert!(consortium(&w).org(&org(PHARM_A)).unwrap().nodes.is_empty());
}

#[test]
fn a_new_hospital_joins_by_decision_and_its_doctor_issues() {
    let mut g = genesis();
    // One approval is enough in this consortium: the proposal executes at once.
    g.params.governance_threshold = 1;
    let mut w = World::staffed_with_genesis(g);
    w.rng = DetRng::new("gov-add-org");
    // Not a member yet: its admin registers nobody.
    let doctor = staff("dr-new");
    let early = w.register("hosp-new", &doctor.public(), Role::Practitioner);
    w.refused(early, "not_org_admin");
    let p = propose(
        &mut w,
        REGULATOR,
        Action::AddOrg {
            org: new_hospital("hosp-new"),
        },
    );
    let id = tx_id(&p);
    w.applied(p);
    assert!(proposal(&w, id).executed_at.is_some());
    assert_eq!(consortium(&w).node(8).unwrap().0.id, org("hosp-new"));
    let reg = w.register("hosp-new", &doctor.public(), Role::Practitioner);
    w.applied(reg);
    let (issue, _) = w.issue(&doctor, "hosp-new", RxSpec::simple(10));
    w.applied(issue);
    // The same organisation, or a node already declared, is not added twice.
    let twice = propose(
        &mut w,
        REGULATOR,
        Action::AddOrg {
            org: new_hospital("hosp-new"),
        },
    );
    assert_eq!(
        w.refused(twice, "org_exists"),
        Rejection::OrgExists {
            org: org("hosp-new")
        }
    );
    let mut clash = new_hospital("hosp-other");
    clash.nodes[0].key = node_key("hosp-other").public();
    clash.nodes[0].id = 1;
    let dup = propose(&mut w, REGULATOR, Action::AddOrg { org: clash });
    assert_eq!(
        w.refused(dup, "node_exists"),
        Rejection::NodeExists { node: 1 }
    );
    let dup_node = propose(
        &mut w,
        REGULATOR,
        Action::AddNode {
            org: org(PHARM_A),
            node: NodeDecl {
                id: 9,
                key: node_key(HOSP_NORTH).public(),
                tls: rxchain_contracts::Hash::of(&[b"contract-test-tls", b"node-9"]),
            },
        },
    );
    w.refused(dup_node, "node_exists");
    // Keys already serving the consortium are not reused.
    let mut reused = new_hospital("hosp-third");
    reused.nodes.clear();
    reused.admin_key = staff("dr-north").public();
    let reuse = propose(&mut w, REGULATOR, Action::AddOrg { org: reused });
    assert_eq!(w.refused(reuse, "key_in_use"), Rejection::KeyInUse);
}

#[test]
fn a_rotated_admin_key_replaces_the_old_one_at_once() {
    let mut g = genesis();
    g.params.governance_threshold = 1;
    let mut w = World::staffed_with_genesis(g);
    let new_key = test_key("admin/pharm-a/rotated");
    let p = propose(
        &mut w,
        PHARM_A,
        Action::RotateAdminKey {
            org: org(PHARM_A),
            key: new_key.public(),
        },
    );
    w.applied(p);
    let someone = test_key("staff/rotated-hire");
    // The old key is nobody's admin any more.
    let old = w.register(PHARM_A, &someone.public(), Role::Pharmacist);
    w.refused(old, "not_org_admin");
    let new = w.register_by(&new_key, PHARM_A, &someone.public(), Role::Pharmacist);
    w.applied(new);
}

#[test]
fn parameters_change_by_decision_but_never_into_an_invalid_consortium() {
    let mut g = genesis();
    g.params.governance_threshold = 1;
    let mut w = World::staffed_with_genesis(g);
    let mut params = consortium(&w).params;
    params.governance_threshold = 8;
    let too_high = propose(
        &mut w,
        REGULATOR,
        Action::SetParams {
            params: params.clone(),
        },
    );
    assert!(matches!(
        w.refused(too_high, "invalid_consortium"),
        Rejection::InvalidConsortium { .. }
    ));
    params.governance_threshold = 2;
    let ok = propose(&mut w, REGULATOR, Action::SetParams { params });
    w.applied(ok);
    assert_eq!(governance::threshold(&consortium(&w)), 2);
    // From now on one approval is no longer enough.
    let p = propose(&mut w, REGULATOR, Action::RemoveNode { node: 2 });
    let id = tx_id(&p);
    w.applied(p);
    assert!(consortium(&w).node(2).is_some());
    let a = approve(&mut w, HOSP_NORTH, id);
    w.applied(a);
    assert!(consortium(&w).node(2).is_none());
}

// ---- sharing by consent -------------------------------------------------

fn grant_tx(w: &mut World, rx: &Rx, to: &str, until: Timestamp) -> SignedTx {
    let mut e = entropy("grant");
    let key_for_org = privacy::wrap_for_key(
        &data_key(to).public(),
        &privacy::content_context(&rx.id),
        rx.content_key.expose(),
        &mut e,
    )
    .unwrap();
    w.tx(
        &rx.patient.clone(),
        TxBody::GrantAccess(GrantAccess {
            id: rx.id,
            org: org(to),
            until,
            key_for_org,
        }),
    )
}

fn grant_record(w: &World, rx: &Rx, to: &str) -> Option<GrantRecord> {
    w.store
        .get(&state::grant_key(&rx.id, &org(to)))
        .map(|b| encoding::from_bytes(&b).unwrap())
}

fn request_record(w: &World, rx: &Rx, from: &str) -> Option<AccessRequest> {
    w.store
        .get(&state::request_key(&rx.id, &org(from)))
        .map(|b| encoding::from_bytes(&b).unwrap())
}

#[test]
fn the_patient_grants_an_organisation_access_whose_wrap_opens_with_its_data_key_then_revokes() {
    let (mut w, rx) = with_rx("grant", RxSpec::simple(10));
    let until = w.now.plus_days(30);
    let g = grant_tx(&mut w, &rx, PHARM_B, until);
    let wrap = match &g.tx.body {
        TxBody::GrantAccess(b) => b.key_for_org.clone(),
        _ => unreachable!("grant_tx builds a grant"),
    };
    w.applied(g);
    let rec = grant_record(&w, &rx, PHARM_B).expect("the grant is recorded");
    // State keeps only the wrap's digest; the wrap is in the transaction.
    assert_eq!(rec.key_for_org, wrap.sealed.digest());
    assert_eq!(rec.until, until);
    assert_eq!(rec.revoked_at, None);
    assert_eq!(rec.check_active(w.now), Ok(()));
    // Only the grantee's data key opens the wrap, and it opens the content.
    let ck = privacy::unwrap_with_key(&data_key(PHARM_B), &privacy::content_context(&rx.id), &wrap)
        .unwrap();
    let content =
        privacy::open_content(&rx.id, &rx.body.sealed, &ContentKey::from_bytes(ck)).unwrap();
    assert_eq!(content, rx.content);
    assert_eq!(
        privacy::unwrap_with_key(&data_key(PHARM_C), &privacy::content_context(&rx.id), &wrap),
        Err(PrivacyError::OpenFailed)
    );
    // The grant is listed for the grantee.
    assert!(w
        .store
        .get(&state::grantee_key(&org(PHARM_B), &rx.id))
        .is_some());

    // Revoking ends it at the block time; a second revocation is refused.
    w.advance_ms(HOUR_MS);
    let revoke = w.tx(
        &rx.patient.clone(),
        TxBody::RevokeAccess(RevokeAccess {
            id: rx.id,
            org: org(PHARM_B),
        }),
    );
    w.applied(revoke);
    let rec = grant_record(&w, &rx, PHARM_B).unwrap();
    assert_eq!(rec.revoked_at, Some(w.now));
    assert!(matches!(
        rec.check_active(w.now),
        Err(Rejection::GrantRevoked { .. })
    ));
    let again = w.tx(
        &rx.patient.clone(),
        TxBody::RevokeAccess(RevokeAccess {
            id: rx.id,
            org: org(PHARM_B),
        }),
    );
    w.refused(again, "grant_revoked");
    let never = w.tx(
        &rx.patient.clone(),
        TxBody::RevokeAccess(RevokeAccess {
            id: rx.id,
            org: org(PHARM_C),
        }),
    );
    assert_eq!(
        w.refused(never, "no_grant"),
        Rejection::NoGrant { org: org(PHARM_C) }
    );
}

#[test]
fn bad_grants_are_refused_and_change_nothing() {
    let (mut w, rx) = with_rx("bad-grants", RxSpec::simple(10));
    // 1. An unknown organisation.
    let mut e = entropy("x");
    let key_for_org = privacy::wrap_for_key(
        &data_key(PHARM_B).public(),
        &privacy::content_context(&rx.id),
        rx.content_key.expose(),
        &mut e,
    )
    .unwrap();
    let unknown = w.tx(
        &rx.patient.clone(),
        TxBody::GrantAccess(GrantAccess {
            id: rx.id,
            org: org("nobody"),
            until: w.now.plus_days(1),
            key_for_org: key_for_org.clone(),
        }),
    );
    w.refused(unknown, "unknown_org");
    // 2. A period that already ended, and one beyond the maximum.
    let now = w.now;
    let past = grant_tx(&mut w, &rx, PHARM_B, now);
    assert_eq!(
        w.refused(past, "grant_period_invalid"),
        Rejection::GrantPeriodInvalid { max_days: 365 }
    );
    let long = grant_tx(&mut w, &rx, PHARM_B, Timestamp(now.plus_days(365).0 + 1));
    w.refused(long, "grant_period_invalid");
    // 3. Signed with another key than the prescription's access key.
    let stranger = test_key("stranger");
    let forged = w.tx(
        &stranger,
        TxBody::GrantAccess(GrantAccess {
            id: rx.id,
            org: org(PHARM_B),
            until: now.plus_days(1),
            key_for_org,
        }),
    );
    w.refused(forged, "not_patient");
    // 4. A prescriber is not the patient either.
    let by_doctor = w.tx(
        &staff("dr-north"),
        TxBody::RevokeAccess(RevokeAccess {
            id: rx.id,
            org: org(PHARM_B),
        }),
    );
    w.refused(by_doctor, "not_patient");
    assert_eq!(grant_record(&w, &rx, PHARM_B), None);
    assert!(w
        .store
        .get(&state::grantee_key(&org(PHARM_B), &rx.id))
        .is_none());
}

#[test]
fn a_grant_ends_on_its_own_and_an_ended_grant_cannot_be_revoked() {
    let (mut w, rx) = with_rx("grant-ends", RxSpec::simple(10));
    let until = w.now.plus_days(2);
    let g = grant_tx(&mut w, &rx, HOSP_SOUTH, until);
    w.applied(g);
    w.advance_days(2);
    let rec = grant_record(&w, &rx, HOSP_SOUTH).unwrap();
    assert_eq!(
        rec.check_active(w.now),
        Err(Rejection::GrantExpired {
            org: org(HOSP_SOUTH),
            at: until
        })
    );
    let revoke = w.tx(
        &rx.patient.clone(),
        TxBody::RevokeAccess(RevokeAccess {
            id: rx.id,
            org: org(HOSP_SOUTH),
        }),
    );
    w.refused(revoke, "grant_expired");
}

#[test]
fn staff_ask_for_access_the_patient_refuses_or_approves_with_a_grant() {
    let (mut w, rx) = with_rx("requests", RxSpec::simple(10));
    let ask = |w: &mut World, who: &str, days: u32| {
        let until = w.now.plus_days(days);
        w.tx(
            &staff(who),
            TxBody::RequestAccess(RequestAccess { id: rx.id, until }),
        )
    };
    // 1. A pharmacist of pharm-b asks; asking again while pending is refused.
    let a = ask(&mut w, "ph-b", 10);
    w.applied(a);
    let r = request_record(&w, &rx, PHARM_B).unwrap();
    assert_eq!(r.status, RequestStatus::Pending);
    assert_eq!(r.by, staff("ph-b").public());
    let again = ask(&mut w, "ph-b", 10);
    assert_eq!(
        w.refused(again, "request_pending"),
        Rejection::RequestPending { org: org(PHARM_B) }
    );
    // An admin key may not ask; nor a period beyond the maximum.
    let by_admin = w.tx(
        &admin_key(PHARM_C),
        TxBody::RequestAccess(RequestAccess {
            id: rx.id,
            until: w.now.plus_days(1),
        }),
    );
    w.refused(by_admin, "wrong_role");
    let long = ask(&mut w, "ph-c", 400);
    w.refused(long, "grant_period_invalid");

    // 2. The patient refuses; refusing again is refused.
    let refuse = |w: &mut World, from: &str| {
        w.tx(
            &rx.patient.clone(),
            TxBody::RefuseRequest(RefuseRequest {
                id: rx.id,
                org: org(from),
            }),
        )
    };
    let no = refuse(&mut w, PHARM_B);
    w.applied(no);
    let r = request_record(&w, &rx, PHARM_B).unwrap();
    assert_eq!(r.status, RequestStatus::Refused);
    assert_eq!(r.answered_at, Some(w.now));
    let no_again = refuse(&mut w, PHARM_B);
    w.refused(no_again, "no_pending_request");

    // 3. Asked again, the patient approves by granting.
    let a = ask(&mut w, "ph-b", 10);
    w.applied(a);
    let until = w.now.plus_days(10);
    let g = grant_tx(&mut w, &rx, PHARM_B, until);
    w.applied(g);
    assert_eq!(
        request_record(&w, &rx, PHARM_B).unwrap().status,
        RequestStatus::Approved
    );
    // While access lasts, asking is refused as already granted.
    let more = ask(&mut w, "ph-b", 5);
    assert_eq!(
        w.refused(more, "already_granted"),
        Rejection::AlreadyGranted {
            org: org(PHARM_B),
            until
        }
    );
}

#[test]
fn after_retention_a_prescription_can_be_neither_shared_nor_requested() {
    let (mut w, rx) = with_rx("erased", RxSpec::simple(10));
    let cancel = w.tx(
        &rx.patient.clone(),
        TxBody::Cancel(rxchain_contracts::tx::CancelRx {
            id: rx.id,
            reason: rxchain_contracts::tx::CancelReason::PatientRequest,
        }),
    );
    w.applied(cancel);
    let ended = w.now;
    // 1. Within the 100 days a grant is still possible (a reimbursement
    //    review of a cancelled prescription, say).
    w.advance_days(99);
    let now = w.now;
    let g = grant_tx(&mut w, &rx, PHARM_B, now.plus_days(1));
    w.applied(g);
    // 2. From day 100 on, both are refused, naming when the data was erased.
    w.advance_days(1);
    let rec = w.rx(&rx.id);
    assert!(rec.is_erased(w.now, 100));
    assert_eq!(rec.erased_at(w.now, 100), Some(ended.plus_days(100)));
    let now = w.now;
    let g = grant_tx(&mut w, &rx, PHARM_C, now.plus_days(1));
    assert_eq!(
        w.refused(g, "personal_data_erased"),
        Rejection::PersonalDataErased {
            at: ended.plus_days(100)
        }
    );
    let ask = w.tx(
        &staff("ph-c"),
        TxBody::RequestAccess(RequestAccess {
            id: rx.id,
            until: now.plus_days(1),
        }),
    );
    w.refused(ask, "personal_data_erased");
    assert_eq!(grant_record(&w, &rx, PHARM_C), None);
    assert_eq!(request_record(&w, &rx, PHARM_C), None);
}

#[test]
fn a_node_anchors_its_access_log_forward_only_and_only_with_its_own_key() {
    let mut w = World::staffed();
    let anchor = |w: &mut World, signer: &SecretKey, seq: u64| {
        w.tx(
            signer,
            TxBody::AnchorAccessLog(AnchorAccessLog {
                node: PROPOSER,
                seq,
                head: rxchain_contracts::crypto::Hash::of(&[&seq.to_be_bytes()]),
            }),
        )
    };
    let a = anchor(&mut w, &node_key(HOSP_NORTH), 3);
    w.applied(a);
    let rec: state::AnchorRecord =
        encoding::from_bytes(&w.store.get(&state::anchor_key(PROPOSER)).unwrap()).unwrap();
    assert_eq!(rec.seq, 3);
    let same = anchor(&mut w, &node_key(HOSP_NORTH), 3);
    assert_eq!(
        w.refused(same, "anchor_not_newer"),
        Rejection::AnchorNotNewer { seq: 3 }
    );
    // Another node's key cannot anchor node 1's log.
    let other = anchor(&mut w, &node_key(PHARM_A), 9);
    w.refused(other, "unknown_signer");
    let next = anchor(&mut w, &node_key(HOSP_NORTH), 4);
    w.applied(next);
}

// ---- coverage ledger ----------------------------------------------------
//
// Everything below this marker is bookkeeping, not a test of a rule: the
// ledger test reads the source above it to find which codes are asserted.

/// One value of every `Rejection` variant. The exhaustive `match` in
/// [`ledger_entry`] refuses to compile when a variant is added, which points
/// here; the serde check in the ledger test catches a variant that is missing
/// from this list at run time.
fn every_rejection() -> Vec<Rejection> {
    let o = org(PHARM_A);
    let t = Timestamp(0);
    let s = DeliveryStatus::Packed;
    vec![
        Rejection::Duplicate,
        Rejection::FromTheFuture,
        Rejection::UnknownSigner,
        Rejection::SignerRevoked { at: t },
        Rejection::WrongRole {
            role: String::new(),
            action: String::new(),
        },
        Rejection::NotOrgAdmin { org: o.clone() },
        Rejection::UnknownOrg { org: o.clone() },
        Rejection::WrongOrgKind {
            org: o.clone(),
            need: String::new(),
        },
        Rejection::StaffExists,
        Rejection::UnknownStaff,
        Rejection::AlreadyRevoked,
        Rejection::CannotRevokeAdmin,
        Rejection::PrescriptionExists,
        Rejection::UnknownPrescription,
        Rejection::BadValidity,
        Rejection::ValidityTooLong { max_days: 0 },
        Rejection::MissingKeyWrap {
            party: String::new(),
        },
        Rejection::BadAccessKey,
        Rejection::NotYetValid { from: t },
        Rejection::Expired { at: t },
        Rejection::Cancelled { at: t },
        Rejection::AlreadyDispensed {
            pharmacy: o.clone(),
            at: t,
        },
        Rejection::ClaimedByOther {
            pharmacy: o.clone(),
            at: t,
        },
        Rejection::AlreadyClaimed,
        Rejection::NotClaimed,
        Rejection::AssignedElsewhere { pharmacy: o },
        Rejection::WrongSecret { attempts: 0 },
        Rejection::ProofReused,
        Rejection::NotPrescriberOrPatient,
        Rejection::NotPatient,
        Rejection::ClaimedCannotChange,
        Rejection::DispensedCannotCancel,
        Rejection::BadItem { item: 0 },
        Rejection::ExceedsAllowance {
            item: 0,
            remaining: 0,
        },
        Rejection::DeliveryOutOfOrder {
            last: None,
            attempted: s,
        },
        Rejection::WrongFulfilmentMode {
            attempted: s,
            mode: String::new(),
        },
        Rejection::ControlledMismatch {
            item: 0,
            atc: rxchain_contracts::AtcCode::parse("N02AA01").unwrap(),
            listed: true,
        },
        Rejection::ControlledUnchanged {
            atc: rxchain_contracts::AtcCode::parse("N02AA01").unwrap(),
        },
        Rejection::NotCarrier { carrier: None },
        Rejection::NotADelivery,
        Rejection::HandOverInPerson {
            hand_over: rxchain_contracts::tx::HandOver::ParcelLocker,
        },
        Rejection::UnknownProposal,
        Rejection::AlreadyApproved { org: org(PHARM_B) },
        Rejection::ProposalExpired { at: t },
        Rejection::ProposalExecuted { at: t },
        Rejection::UnknownNode { node: 1 },
        Rejection::NotYourNode {
            node: 1,
            org: org(PHARM_B),
        },
        Rejection::NodeExists { node: 1 },
        Rejection::OrgExists { org: org(PHARM_B) },
        Rejection::KeyInUse,
        Rejection::InvalidConsortium {
            reason: String::new(),
        },
        Rejection::GrantPeriodInvalid { max_days: 1 },
        Rejection::NoGrant { org: org(PHARM_B) },
        Rejection::GrantRevoked {
            org: org(PHARM_B),
            at: t,
        },
        Rejection::GrantExpired {
            org: org(PHARM_B),
            at: t,
        },
        Rejection::PersonalDataErased { at: t },
        Rejection::RequestPending { org: org(PHARM_B) },
        Rejection::AlreadyGranted {
            org: org(PHARM_B),
            until: t,
        },
        Rejection::NoPendingRequest { org: org(PHARM_B) },
        Rejection::AnchorNotNewer { seq: 1 },
    ]
}

/// Compile-time guard: a new variant makes this match non-exhaustive.
fn ledger_entry(r: &Rejection) -> &'static str {
    match r {
        Rejection::Duplicate
        | Rejection::FromTheFuture
        | Rejection::UnknownSigner
        | Rejection::SignerRevoked { .. }
        | Rejection::WrongRole { .. }
        | Rejection::NotOrgAdmin { .. }
        | Rejection::UnknownOrg { .. }
        | Rejection::WrongOrgKind { .. }
        | Rejection::StaffExists
        | Rejection::UnknownStaff
        | Rejection::AlreadyRevoked
        | Rejection::CannotRevokeAdmin
        | Rejection::PrescriptionExists
        | Rejection::UnknownPrescription
        | Rejection::BadValidity
        | Rejection::ValidityTooLong { .. }
        | Rejection::MissingKeyWrap { .. }
        | Rejection::BadAccessKey
        | Rejection::NotYetValid { .. }
        | Rejection::Expired { .. }
        | Rejection::Cancelled { .. }
        | Rejection::AlreadyDispensed { .. }
        | Rejection::ClaimedByOther { .. }
        | Rejection::AlreadyClaimed
        | Rejection::NotClaimed
        | Rejection::AssignedElsewhere { .. }
        | Rejection::WrongSecret { .. }
        | Rejection::ProofReused
        | Rejection::NotPrescriberOrPatient
        | Rejection::NotPatient
        | Rejection::ClaimedCannotChange
        | Rejection::DispensedCannotCancel
        | Rejection::BadItem { .. }
        | Rejection::ExceedsAllowance { .. }
        | Rejection::DeliveryOutOfOrder { .. }
        | Rejection::WrongFulfilmentMode { .. }
        | Rejection::ControlledMismatch { .. }
        | Rejection::ControlledUnchanged { .. }
        | Rejection::NotCarrier { .. }
        | Rejection::NotADelivery
        | Rejection::HandOverInPerson { .. }
        | Rejection::UnknownProposal
        | Rejection::AlreadyApproved { .. }
        | Rejection::ProposalExpired { .. }
        | Rejection::ProposalExecuted { .. }
        | Rejection::UnknownNode { .. }
        | Rejection::NotYourNode { .. }
        | Rejection::NodeExists { .. }
        | Rejection::OrgExists { .. }
        | Rejection::KeyInUse
        | Rejection::InvalidConsortium { .. }
        | Rejection::GrantPeriodInvalid { .. }
        | Rejection::NoGrant { .. }
        | Rejection::GrantRevoked { .. }
        | Rejection::GrantExpired { .. }
        | Rejection::PersonalDataErased { .. }
        | Rejection::RequestPending { .. }
        | Rejection::AlreadyGranted { .. }
        | Rejection::NoPendingRequest { .. }
        | Rejection::AnchorNotNewer { .. } => r.code(),
    }
}

/// The variant names serde knows, read from its "unknown variant" message,
/// so that a variant missing from [`every_rejection`] is noticed at run time.
fn serde_variant_names() -> Vec<String> {
    let err = serde_json::from_str::<Rejection>(r#"{"code":"no-such-code"}"#)
        .unwrap_err()
        .to_string();
    let list = err
        .split("expected one of")
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected serde message: {err}"));
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn every_rejection_code_is_asserted_by_a_test() {
    let source = include_str!("lifecycle.rs");
    let tests = source.split("// ---- coverage ledger").next().unwrap();
    let all = every_rejection();
    let codes: std::collections::BTreeSet<&str> = all.iter().map(ledger_entry).collect();
    assert_eq!(
        codes.len(),
        all.len(),
        "every_rejection lists a variant twice"
    );

    // The list is complete: serde knows no variant it lacks.
    let names = serde_variant_names();
    assert_eq!(
        names.len(),
        all.len(),
        "every_rejection misses a variant; serde knows {names:?}"
    );
    for n in &names {
        assert!(
            codes.contains(n.as_str()),
            "variant {n} is missing from every_rejection"
        );
    }

    // Every code is asserted somewhere above the ledger.
    let uncovered: Vec<&str> = codes
        .iter()
        .copied()
        .filter(|c| !tests.contains(&format!("\"{c}\"")))
        .collect();
    assert!(
        uncovered.is_empty(),
        "no test asserts these rejection codes: {uncovered:?}"
    );
}

#[test]
fn every_rejection_reads_back_from_both_encodings_and_its_json_code_is_its_code() {
    for r in every_rejection() {
        let o = Outcome::Refused { reason: r.clone() };
        assert_eq!(
            encoding::from_bytes::<Outcome>(&encoding::to_bytes(&o)),
            Ok(o)
        );
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(
            j["code"],
            r.code(),
            "clients read the JSON code as the stable code"
        );
        assert_eq!(serde_json::from_value::<Rejection>(j).unwrap(), r);
    }
}
