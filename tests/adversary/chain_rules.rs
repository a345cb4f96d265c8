//! Attacks on the chain's own rules by signers it knows: ciphertext fields
//! past their bounds, a controlled drug declared "not controlled", a
//! courier recording a delivery nobody handed to its organisation, a claim
//! proof replayed after a refused claim, and a demo restart that would
//! re-send its staff registrations.

use std::time::Duration;

use reqwest::StatusCode;
use rxchain::demo::{staff_key, Demo};
use rxchain::qr::QrPayload;
use rxchain::test_support::register_demo_staff;
use rxchain::txbuild::{self, NewPrescription};
use rxchain_contracts::privacy::{self, ContentKey, Sealed};
use rxchain_contracts::tx::{limits, DeliveryStatus, DispenseLine, Fulfilment, IssueRx, TxBody};
use rxchain_contracts::{AtcCode, Label, OrgId, Quantity, SignedTx};
use serde_json::{json, Value};

use super::common::issue::{atorvastatin_issue, SyntheticPatient};
use super::common::{boot, start_demo_node, TestNode};
use super::post_signed;
use super::staff_client::{self, Staff};

fn org(s: &str) -> OrgId {
    OrgId::parse(s).unwrap()
}

/// A prescription of Atorvastatin by the demo doctor, not yet submitted.
fn new_rx(demo: &Demo, tag: &str) -> NewPrescription {
    txbuild::issue(
        &demo.genesis,
        &staff_key("dr.ada"),
        atorvastatin_issue(
            "hosp-north",
            30,
            0,
            SyntheticPatient {
                name: format!("Synthetic {tag}"),
                birth_date: "1970-01-01",
                identifier: format!("SYN-{tag}"),
            },
            "one tablet daily",
        ),
    )
    .unwrap()
}

/// The issue body of a signed issue transaction.
fn issue_body(tx: &SignedTx) -> IssueRx {
    match &tx.tx.body {
        TxBody::Issue(b) => b.clone(),
        other => panic!("not an issue: {other:?}"),
    }
}

/// Submits `tx` and asserts it was applied.
async fn applied(t: &TestNode, tx: &SignedTx) {
    let (s, body) = post_signed(&reqwest::Client::new(), &t.base, tx).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["outcome"]["result"], "applied", "{body}");
}

/// The prescription's history as the node shows it.
async fn history(t: &TestNode, id: &rxchain_contracts::PrescriptionId) -> Vec<Value> {
    let v: Value = t
        .client
        .get(&format!("/v1/prescriptions/{id}"))
        .await
        .expect("prescription view");
    v["history"].as_array().expect("a history").clone()
}

/// Asserts a refusal that was recorded on the chain: status, code, and a
/// receipt whose outcome is that refusal.
#[track_caller]
fn assert_recorded(got: &(u16, Value), status: u16, code: &str) {
    let (s, body) = got;
    assert_eq!((*s, body["code"].as_str()), (status, Some(code)), "{body}");
    assert_eq!(body["receipt"]["outcome"]["result"], "refused", "{body}");
}

/// Asserts a refusal that never reached the chain: status, code, no receipt.
#[track_caller]
fn assert_not_recorded(got: &(u16, Value), status: u16, code: &str) {
    let (s, body) = got;
    assert_eq!((*s, body["code"].as_str()), (status, Some(code)), "{body}");
    assert!(body.get("receipt").is_none(), "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_ciphertext_fields_are_refused_before_the_chain() {
    // 1. A demo node and the registered doctor.
    let t = start_demo_node().await;
    let g = &t.demo.genesis;
    let http = reqwest::Client::new();
    let height = t.node.chain.tip().height;

    // 2. An issue whose patient key wrap is 49 bytes instead of 48.
    let good = new_rx(&t.demo, "WRAP49");
    let mut body = issue_body(&good.tx);
    let mut erased = body.clone();
    match &mut body.key_for_patient.sealed {
        privacy::WrapBody::Present(s) => s.ciphertext.push(0),
        privacy::WrapBody::Erased(_) => unreachable!("a new wrap is present"),
    }
    assert_eq!(
        body.key_for_patient
            .sealed
            .present()
            .unwrap()
            .ciphertext
            .len(),
        limits::WRAPPED_KEY_BYTES + 1
    );
    let tx = txbuild::sign(g, &staff_key("dr.ada"), TxBody::Issue(body));
    let got = post_signed(&http, &t.base, &tx).await;
    assert_not_recorded(&got, 400, "invalid_transaction");

    // 2b. A new issue whose wraps are already erased (digests only): signed
    // correctly over the commitment form, but nobody could ever read it.
    erased.key_for_patient.sealed.erase();
    let tx = txbuild::sign(g, &staff_key("dr.ada"), TxBody::Issue(erased));
    let got = post_signed(&http, &t.base, &tx).await;
    assert_not_recorded(&got, 400, "invalid_transaction");
    assert!(
        got.1["message"].as_str().unwrap_or("").contains("erased"),
        "the sentence says why: {}",
        got.1
    );

    // 3. An issue whose sealed content is one byte past its bound.
    let mut body = issue_body(&good.tx);
    body.sealed.ciphertext = vec![7; limits::MAX_SEALED + 1];
    let tx = txbuild::sign(g, &staff_key("dr.ada"), TxBody::Issue(body));
    let got = post_signed(&http, &t.base, &tx).await;
    assert_not_recorded(&got, 400, "invalid_transaction");

    // 4. A home-delivery assignment whose sealed address is one byte past
    //    its bound, signed by the real access key of a real prescription.
    let rx = new_rx(&t.demo, "ADDR");
    applied(&t, &rx.tx).await;
    let height_after_issue = t.node.chain.tip().height;
    let mut assign = txbuild::assign_pickup(g, &rx.payload, &org("pharm-central")).unwrap();
    let TxBody::Assign(b) = &mut assign.tx.body else {
        unreachable!()
    };
    b.fulfilment = Fulfilment::Delivery {
        pharmacy: org("pharm-central"),
        address: Sealed {
            nonce: [0; 12],
            ciphertext: vec![7; limits::MAX_SEALED_ADDRESS + 1],
        },
    };
    let body = assign.tx.body.clone();
    let tx = txbuild::sign(g, &rx.payload.secret.signing_key(), body);
    let got = post_signed(&http, &t.base, &tx).await;
    assert_not_recorded(&got, 400, "invalid_transaction");

    // 5. None of it reached the chain; the prescription shows its issue only.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(t.node.chain.tip().height, height_after_issue);
    assert!(height_after_issue > height);
    assert_eq!(history(&t, &rx.payload.id).await.len(), 1);
    t.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn morphine_declared_not_controlled_is_refused() {
    // 1. A demo node with sign-in accounts; the doctor signs in.
    let t = staff_client::start().await;
    let ada = Staff::sign_in(&t.base, "dr.ada").await;
    let height = t.node.chain.tip().height;

    // 2. Through the doctor endpoint: morphine (N02AA01, controlled in the
    //    formulary and so on the chain's list) flagged not controlled is
    //    refused before anything is signed.
    let form = json!({
        "items": [
            {"atc": "N02AA01", "name": "Morphine", "strength": "10 mg", "form": "prolonged-release tablet", "quantity": 20, "unit": "tablets", "controlled": false}
        ],
        "dosage": ["one tablet twice a day"],
        "repeats": 0,
        "valid_days": 14,
        "patient": {"name": "Synthetic Morphine", "birth_date": "1980-05-17", "identifier": "SYNTH-MORPHINE", "email": null},
        "notes": ""
    });
    let (s, _, body) = ada.post("/v1/staff/prescriptions", &form).await;
    assert_not_recorded(&(s.as_u16(), body), 400, "controlled_mismatch");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(t.node.chain.tip().height, height, "nothing was signed");

    // 3. The same as a raw transaction signed by the registered doctor: a
    //    legitimate signer, so the chain records its refusal.
    let mut input = atorvastatin_issue(
        "hosp-north",
        20,
        0,
        SyntheticPatient {
            name: "Synthetic Morphine Raw".into(),
            birth_date: "1980-05-17",
            identifier: "SYNTH-MORPHINE-RAW".into(),
        },
        "one tablet twice a day",
    );
    input.items[0].atc = AtcCode::parse("N02AA01").unwrap();
    input.items[0].name = Label::parse("Morphine").unwrap();
    input.items[0].strength = Label::parse("10 mg").unwrap();
    input.items[0].form = Label::parse("prolonged-release tablet").unwrap();
    input.items[0].quantity = Quantity::new(20).unwrap();
    input.items[0].controlled = false;
    let rx = txbuild::issue(&t.demo.genesis, &staff_key("dr.ada"), input).unwrap();
    let got = post_signed(&reqwest::Client::new(), &t.base, &rx.tx).await;
    assert_recorded(&got, 422, "controlled_mismatch");
    assert_eq!(
        t.node.chain.tip().height,
        height + 1,
        "one block: the refusal"
    );
    let (s, _, _) = ada
        .get(&format!("/v1/prescriptions/{}", rx.payload.id))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no prescription was created");
    t.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_courier_not_handed_the_delivery_cannot_record_it() {
    // 1. A home delivery: issued, assigned to Central Pharmacy for
    //    delivery, claimed by its pharmacist, dispensed and packed by the pharmacy.
    let t = start_demo_node().await;
    let g = &t.demo.genesis;
    let http = reqwest::Client::new();
    let rx = new_rx(&t.demo, "DELIVERY");
    let id = rx.payload.id;
    let issue = issue_body(&rx.tx);
    let ck = ContentKey::from_bytes(
        privacy::unwrap_with_secret(
            &rx.payload.secret,
            &privacy::content_context(&id),
            &issue.key_for_patient,
        )
        .expect("the patient unwraps the content key"),
    );
    let central = org("pharm-central");
    let cara = staff_key("ph.cara");
    applied(&t, &rx.tx).await;
    applied(
        &t,
        &txbuild::assign_delivery(g, &rx.payload, &ck, &central, "1 Synthetic Lane").unwrap(),
    )
    .await;
    applied(&t, &txbuild::claim(g, &cara, &central, &rx.payload)).await;
    let line = DispenseLine {
        item: 0,
        quantity: Quantity::new(30).unwrap(),
        batch: Label::parse("SYN-BATCH-1").unwrap(),
    };
    applied(&t, &txbuild::dispense(g, &cara, id, vec![line], true)).await;
    applied(&t, &txbuild::delivery(g, &cara, id, DeliveryStatus::Packed)).await;
    let before = history(&t, &id).await;

    // 2. The logistics courier, whose organisation the pharmacy never
    //    handed the parcel to, records a dispatch: a known signer, so the
    //    refusal `not_carrier` is recorded, and the delivery did not move.
    let finn = staff_key("courier.finn");
    let got = post_signed(
        &http,
        &t.base,
        &txbuild::delivery(g, &finn, id, DeliveryStatus::Dispatched),
    )
    .await;
    assert_recorded(&got, 403, "not_carrier");
    let v: Value = t
        .client
        .get(&format!("/v1/prescriptions/{id}"))
        .await
        .unwrap();
    let after = v["history"].as_array().unwrap();
    assert_eq!(after[..before.len()], before[..], "the past is unchanged");
    assert_eq!(after.len(), before.len() + 1, "only the refusal was added");
    let last = &after[before.len()];
    assert_eq!(last["tx_id"], got.1["receipt"]["tx_id"], "{last}");
    assert_eq!(last["kind"], "delivery", "{last}");
    assert_eq!(last["outcome"]["result"], "refused", "{last}");
    assert_eq!(last["outcome"]["reason"]["code"], "not_carrier", "{last}");
    assert_eq!(
        v["record"]["delivery"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );

    // 3. Once the pharmacy hands it to Swift Couriers, the same courier's
    //    dispatch is applied.
    applied(
        &t,
        &txbuild::hand_to_carrier(g, &cara, id, org("logi-swift")),
    )
    .await;
    applied(
        &t,
        &txbuild::delivery(g, &finn, id, DeliveryStatus::Dispatched),
    )
    .await;
    t.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_proof_from_a_refused_claim_cannot_be_replayed() {
    // 1. A prescription claimed by Central Pharmacy.
    let t = start_demo_node().await;
    let g = &t.demo.genesis;
    let http = reqwest::Client::new();
    let rx = new_rx(&t.demo, "REPLAY");
    let payload: QrPayload = rx.payload.clone();
    let central = org("pharm-central");
    let harbour = org("pharm-harbour");
    let cara = staff_key("ph.cara");
    let dan = staff_key("ph.dan");
    applied(&t, &rx.tx).await;
    applied(&t, &txbuild::claim(g, &cara, &central, &payload)).await;

    // 2. Harbour Pharmacy claims with a good proof: refused, recorded, and
    //    the proof's nonce is spent.
    let first = txbuild::claim(g, &dan, &harbour, &payload);
    let got = post_signed(&http, &t.base, &first).await;
    let (s, body) = &got;
    assert_eq!(*s, 409, "{body}");
    assert_eq!(body["receipt"]["outcome"]["result"], "refused", "{body}");
    let refused_code = body["code"].as_str().unwrap().to_string();
    assert!(
        refused_code == "already_claimed" || refused_code == "claimed_by_other",
        "{body}"
    );

    // 3. Central releases it. The same proof, in a new transaction by the
    //    same pharmacist, would now succeed if the nonce were not spent:
    //    it is refused `proof_reused`.
    applied(&t, &txbuild::release(g, &cara, payload.id)).await;
    let replay = txbuild::sign(g, &dan, first.tx.body.clone());
    assert_ne!(
        replay.tx.id(g.chain_id.as_str()),
        first.tx.id(g.chain_id.as_str()),
        "a new transaction, not a resend"
    );
    let got = post_signed(&http, &t.base, &replay).await;
    assert_recorded(&got, 409, "proof_reused");
    let v: Value = t
        .client
        .get(&format!("/v1/prescriptions/{}", payload.id))
        .await
        .unwrap();
    assert!(
        v["record"]["claim"].is_null(),
        "the replay claimed nothing: {v}"
    );
    let last = v["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["tx_id"], got.1["receipt"]["tx_id"], "{last}");
    assert_eq!(last["outcome"]["reason"]["code"], "proof_reused", "{last}");

    // 4. A fresh proof from the QR code works.
    applied(&t, &txbuild::claim(g, &dan, &harbour, &payload)).await;
    t.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_restart_records_no_refused_registrations() {
    // 1. A demo node with its staff registered, then stopped.
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = Demo::load().expect("demo fixture");
    demo.write_files(dir.path(), &[1]).expect("demo files");
    let (node, base) = boot(dir.path(), |_| {}).await;
    let client = rxchain::client::Client::new(base);
    register_demo_staff(&demo, &client)
        .await
        .expect("staff registered");
    let height = node.chain.tip().height;
    assert!(height > 0, "the registrations are on the chain");
    node.stop().await;

    // 2. Started again on the same data directory, the demo registers its
    //    staff again: nothing is sent, so no refused `register_staff` (and no
    //    regulator alert) reaches the chain.
    let (node, base) = boot(dir.path(), |_| {}).await;
    let client = rxchain::client::Client::new(base);
    register_demo_staff(&demo, &client)
        .await
        .expect("staff registered again");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(node.chain.tip().height, height);
    node.stop().await;
}
